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

#include "backend.h"
#include "cmd.h"
#include "config.h"
#include "gc.h"
#include "log.h"
#include "storage.h"
#include "tokens.h"

const char cmd_gc_usage[] =
	"usage: dedup-server gc [--repo DIR] [--config FILE] [--dry-run]\n"
	"                       [--threshold PERCENT] [--filter-mib MIB]\n"
	"\n"
	"Deletes the chunks no snapshot uses and rewrites the packs that are\n"
	"at least PERCENT dead, then reports the bytes freed. The server must\n"
	"be stopped; while it runs, use `dedup-agent gc` with an admin token\n"
	"instead.\n"
	"--config FILE  settings file (default " CONFIG_DEFAULT_PATH "): repo,\n"
	"               gc_repack_threshold, gc_filter_max_mib, pack_cache_drop,\n"
	"               pack_direct_io, ceph_conf, ceph_user; the options below\n"
	"               win\n"
	"--dry-run      report what would be done; change nothing\n"
	"--threshold    default gc_repack_threshold (30)\n"
	"--filter-mib   cap of the mark filter, 2 bytes a chunk (default\n"
	"               gc_filter_max_mib, 256)\n";

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

const char *cmd_default_repo(const char *repo)
{
	static char from_file[4096];
	struct config cfg;

	if (repo || config_init(&cfg) < 0)
		return repo;
	if (config_load(&cfg, CONFIG_DEFAULT_PATH, false) == 0 && cfg.repo &&
	    strlen(cfg.repo) < sizeof(from_file)) {
		snprintf(from_file, sizeof(from_file), "%s", cfg.repo);
		repo = from_file;
	}
	config_release(&cfg);
	return repo;
}

int cmd_load_config(struct config *cfg, const char *config,
		    const char **repo, const char *usage)
{
	int rc;

	dd_error_clear();
	rc = config_load(cfg, config ? config : CONFIG_DEFAULT_PATH,
			 config != NULL);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		return CMD_ERROR;
	}
	if (!*repo)
		*repo = cfg->repo;
	if (!*repo) {
		log_error("no repository: give --repo DIR");
		fputs(usage, stderr);
		return CMD_USAGE;
	}
	if (repo_storage_set_opts(cfg->ceph_conf, cfg->ceph_user) < 0) {
		log_error("%s", dd_error_last());
		return CMD_ERROR;
	}
	return CMD_OK;
}

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "threshold", required_argument, NULL, 't' },
		{ "filter-mib", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct gc_opts o = { 0 };
	struct store *st = NULL;
	struct snapshots *snaps = NULL;
	const char *repo = NULL, *config = NULL;
	uint64_t threshold = 0, filter_mib = 0;
	int c, fd = -1, ret = CMD_ERROR;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:c:nt:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 't':
			if (dd_parse_u64(optarg, &threshold) < 0 ||
			    threshold < 1 || threshold > 100) {
				log_error("invalid --threshold '%s' (want 1 to "
					  "100)", optarg);
				fputs(cmd_gc_usage, stderr);
				return CMD_USAGE;
			}
			break;
		case 'f':
			if (dd_parse_u64(optarg, &filter_mib) < 0 ||
			    filter_mib < 1 || filter_mib > 65536) {
				log_error("invalid --filter-mib '%s' (want 1 to "
					  "65536)", optarg);
				fputs(cmd_gc_usage, stderr);
				return CMD_USAGE;
			}
			break;
		case 'h':
			fputs(cmd_gc_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_gc_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc) {
		fputs(cmd_gc_usage, stderr);
		return CMD_USAGE;
	}
	if (config_init(&cfg) < 0) {
		log_error("out of memory");
		return CMD_ERROR;
	}
	/* the settings a running server collects with, as prune reads them */
	if ((ret = cmd_load_config(&cfg, config, &repo, cmd_gc_usage)) !=
	    CMD_OK)
		goto cleanup;
	ret = CMD_ERROR;
	o.threshold = threshold ? (unsigned)threshold :
		cfg.gc_repack_threshold;
	o.filter_max_bytes = (size_t)(filter_mib ? filter_mib :
				      cfg.gc_filter_max_mib) << 20;
	backend_dir_drop_appended(cfg.pack_cache_drop);   /* its repacks */
	backend_dir_direct_appends(cfg.pack_direct_io);
	if (cmd_lock_repo(&fd, repo, "gc") < 0) {
		fprintf(stderr, "hint: a running server collects with "
			"`dedup-agent gc` (admin token)\n");
		goto cleanup;
	}
	if (cmd_open_repo(repo, &st, &snaps) == 0 &&
	    cmd_gc_run(repo, st, snaps, &o) == 0)
		ret = CMD_OK;
cleanup:
	snapshots_free(snaps);
	store_close(st);
	if (fd >= 0)
		close(fd);
	config_release(&cfg);
	return ret;
}
