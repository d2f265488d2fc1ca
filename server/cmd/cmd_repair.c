/*
 * cmd_repair.c - `dedup-server repair --rebuild-index`: rebuilds the
 * LevelDB index from the packs alone (store_rebuild_index, the same code
 * the server runs when it starts with an empty index). Every record is
 * re-hashed, so damaged chunks are left out of the new index and count as
 * missing: the next backup that has their bytes stores them again. With
 * dedup domains in use, each domain then gets back the chunks its
 * clients' snapshots use (regrant.h). Needs the server stopped, like
 * `check`.
 */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "log.h"
#include "tokens.h"
#include "regrant.h"
#include "snapshots.h"
#include "storage.h"
#include "store.h"
#include "util.h"

const char cmd_repair_usage[] =
	"usage: dedup-server repair --repo DIR --rebuild-index\n"
	"\n"
	"--rebuild-index  rebuild the index from the packs: every record is\n"
	"                 decompressed and re-hashed, damaged ones are left\n"
	"                 out (a later backup with the same data stores them\n"
	"                 again); packs with damaged headers or trailers are\n"
	"                 salvaged record by record\n"
	"The server must be stopped.\n";

/* The dedup-domain memberships, from the snapshots (regrant.h). */
static int repair_regrant(const char *repo)
{
	struct snapshots *snaps = NULL;
	struct store *st = NULL;
	int rc;

	rc = repo_store_open(&st, repo, tokens_store_flags(repo));
	if (rc == 0)
		rc = snapshots_open(&snaps, repo);
	if (rc == 0)
		rc = regrant_run(st, snaps, repo, NULL);
	snapshots_free(snaps);
	store_close(st);
	return rc;
}

int cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "rebuild-index", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL;
	bool rebuild = false;
	uint64_t chunks = 0, bad = 0;
	int c, fd = -1, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:ih", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'i':
			rebuild = true;
			break;
		case 'h':
			fputs(cmd_repair_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_repair_usage, stderr);
			return CMD_USAGE;
		}
	}
	repo = cmd_default_repo(repo);
	if (optind != argc || !repo || !rebuild) {
		if (!repo)
			log_error("no repository: give --repo DIR (or set repo "
				  "in " CONFIG_DEFAULT_PATH ")");
		else if (!rebuild)
			log_error("nothing to do: give --rebuild-index");
		fputs(cmd_repair_usage, stderr);
		return CMD_USAGE;
	}
	if (cmd_lock_repo(&fd, repo, "repair") < 0)
		return CMD_ERROR;
	dd_error_clear();
	rc = repo_store_rebuild_index(repo, tokens_store_flags(repo), &chunks,
				      &bad);
	if (rc == 0)
		rc = repair_regrant(repo);
	close(fd);
	if (rc < 0) {
		log_error("cannot rebuild the index: %s", log_reason(rc));
		return CMD_ERROR;
	}
	printf("index rebuilt from the packs: %llu chunk(s)",
	       (unsigned long long)chunks);
	if (bad)
		printf("; %llu damaged record(s) left out", (unsigned long long)bad);
	printf("\n");
	return CMD_OK;
}
