/*
 * cmd_gc.c - `dedup-server gc`: garbage collection of a stopped server's
 * repository (gc.h). A running server does the same through
 * POST /api/v1/gc (`dedup-agent gc` with an admin token).
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "cmd.h"
#include "gc.h"
#include "log.h"
#include "storage.h"
#include "tokens.h"

const char cmd_gc_usage[] =
	"usage: dedup-server gc --repo DIR [--dry-run] [--threshold PERCENT]\n"
	"                       [--filter-mib MIB]\n"
	"\n"
	"Deletes the chunks no snapshot uses and rewrites the packs that are\n"
	"at least PERCENT dead (default 30), then reports the bytes freed.\n"
	"The server must be stopped; while it runs, use `dedup-agent gc` with\n"
	"an admin token instead.\n"
	"--dry-run     report what would be done; change nothing\n"
	"--filter-mib  cap of the mark filter, 2 bytes a chunk (default 256)\n";

/* gc_opts.since offline: the server is stopped, so no backup is in
 * progress and nothing vouched for before this run needs keeping. */
static double cmd_gc_no_backup(void *payload)
{
	(void)payload;
	return HUGE_VAL;
}

/* Opens the store and the snapshots of a locked repository and runs a
 * collection, printing its report. For gc and prune. */
int cmd_gc_run(const char *repo, struct store *st, struct snapshots *snaps,
	       const struct gc_opts *o)
{
	struct gc_opts oo = *o;
	struct gc_report r;
	int rc;

	(void)repo;
	oo.since = cmd_gc_no_backup;
	dd_error_clear();
	rc = gc_run(st, snaps, &oo, &r);
	if (rc < 0) {
		log_error("gc: %s", log_reason(rc));
		return rc;
	}
	gc_report_print(stdout, &r, oo.dry_run);
	return 0;
}

int cmd_open_repo(const char *repo, struct store **st,
		  struct snapshots **snaps)
{
	int rc;

	*st = NULL;
	*snaps = NULL;
	dd_error_clear();
	rc = repo_store_open(st, repo, tokens_store_flags(repo));
	if (rc == 0)
		rc = snapshots_open(snaps, repo);
	if (rc == 0)
		repo_storage_mirror(*snaps, *st);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		store_close(*st);
		*st = NULL;
	}
	return rc;
}

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "threshold", required_argument, NULL, 't' },
		{ "filter-mib", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gc_opts o = { .threshold = GC_DEFAULT_THRESHOLD };
	struct store *st = NULL;
	struct snapshots *snaps = NULL;
	const char *repo = NULL;
	uint64_t x;
	int c, fd = -1, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:nt:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 't':
			if (dd_parse_u64(optarg, &x) < 0 || x < 1 || x > 100) {
				log_error("invalid --threshold '%s' (want 1 to "
					  "100)", optarg);
				fputs(cmd_gc_usage, stderr);
				return CMD_USAGE;
			}
			o.threshold = (unsigned)x;
			break;
		case 'f':
			if (dd_parse_u64(optarg, &x) < 0 || x < 1 || x > 65536) {
				log_error("invalid --filter-mib '%s' (want 1 to "
					  "65536)", optarg);
				fputs(cmd_gc_usage, stderr);
				return CMD_USAGE;
			}
			o.filter_max_bytes = (size_t)x << 20;
			break;
		case 'h':
			fputs(cmd_gc_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_gc_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc || !repo) {
		if (!repo)
			log_error("no repository: give --repo DIR");
		fputs(cmd_gc_usage, stderr);
		return CMD_USAGE;
	}
	if (cmd_lock_repo(&fd, repo, "gc") < 0) {
		fprintf(stderr, "hint: a running server collects with "
			"`dedup-agent gc` (admin token)\n");
		return CMD_ERROR;
	}
	rc = cmd_open_repo(repo, &st, &snaps);
	if (rc == 0)
		rc = cmd_gc_run(repo, st, snaps, &o);
	snapshots_free(snaps);
	store_close(st);
	close(fd);
	return rc < 0 ? CMD_ERROR : CMD_OK;
}
