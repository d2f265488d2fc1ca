/*
 * cmd_prune.c - `dedup-server prune`: applies the retention policies of
 * server.conf (prune.h) to a stopped server's repository, then collects
 * garbage (gc.h). A running server does the same through
 * POST /api/v1/prune (`dedup-agent forget --prune` with an admin token).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "backend.h"
#include "cmd.h"
#include "config.h"
#include "storage.h"
#include "gc.h"
#include "log.h"
#include "prune.h"
#include "tokens.h"

const char cmd_prune_usage[] =
	"usage: dedup-server prune [--repo DIR] [--config FILE] [--dry-run]\n"
	"                          [--client NAME] [--no-gc]\n"
	"\n"
	"Removes the snapshots the retention policies of the config file\n"
	"(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly,\n"
	"keep_yearly, keep_within; client.NAME.keep_* per client) do not\n"
	"keep, printing each snapshot kept or removed and why, then collects\n"
	"garbage. A client with no policy keeps everything. The server must\n"
	"be stopped; while it runs, use `dedup-agent forget --prune` with an\n"
	"admin token.\n"
	"--config FILE  settings file (default " CONFIG_DEFAULT_PATH ")\n"
	"--dry-run      print the plan; change nothing\n"
	"--client NAME  only that client's snapshots\n"
	"--no-gc        remove snapshots only\n";

int cmd_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "client", required_argument, NULL, 'C' },
		{ "no-gc", no_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cfg;
	struct prune_plan plan = { 0 };
	struct gc_opts go = { .threshold = GC_DEFAULT_THRESHOLD };
	struct store *st = NULL;
	struct snapshots *snaps = NULL;
	const char *repo = NULL, *config = NULL, *client = NULL;
	bool dry = false, gc = true;
	int c, fd = -1, rc, ret = CMD_ERROR;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:c:nC:Gh", opts, NULL)) != -1) {
		switch (c) {
		case 'r': repo = optarg; break;
		case 'c': config = optarg; break;
		case 'n': dry = true; break;
		case 'C': client = optarg; break;
		case 'G': gc = false; break;
		case 'h':
			fputs(cmd_prune_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_prune_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc) {
		fputs(cmd_prune_usage, stderr);
		return CMD_USAGE;
	}
	if (client && !tokens_name_valid(client)) {
		log_error("invalid client name '%s'", client);
		return CMD_USAGE;
	}
	if (config_init(&cfg) < 0) {
		log_error("out of memory");
		return CMD_ERROR;
	}
	if ((ret = cmd_load_config(&cfg, config, &repo, cmd_prune_usage)) !=
	    CMD_OK)
		goto cleanup;
	ret = CMD_ERROR;
	go.dry_run = dry;
	go.threshold = cfg.gc_repack_threshold;
	go.filter_max_bytes = (size_t)cfg.gc_filter_max_mib << 20;
	backend_dir_drop_appended(cfg.pack_cache_drop);   /* its repacks */
	backend_dir_direct_appends(cfg.pack_direct_io);
	if (cmd_lock_repo(&fd, repo, "prune") < 0) {
		fprintf(stderr, "hint: a running server prunes with "
			"`dedup-agent forget --prune` (admin token)%s\n",
			dry ? "; `dedup-agent forget --dry-run --prune` "
			"shows its plan" : "");
		goto cleanup;
	}
	if (cmd_open_repo(repo, &st, &snaps) < 0)
		goto cleanup;
	dd_error_clear();
	rc = dry ? 0 : prune_pool_lock(st);
	if (rc < 0) {
		log_error("prune: %s", log_reason(rc));
		goto cleanup;
	}
	rc = prune_plan_make(&plan, snaps, &cfg, NULL, client);
	if (rc < 0) {
		log_error("prune: %s", log_reason(rc));
		if (!dry)
			prune_pool_unlock(st);
		goto cleanup;
	}
	if (!dry)
		rc = prune_apply(&plan, snaps);
	if (!dry)
		prune_pool_unlock(st);
	prune_plan_print(stdout, &plan, dry);
	/* a dry run's estimate: as if the plan's snapshots were gone */
	if (rc == 0 && dry && gc && (rc = prune_plan_drops_index(&plan)) == 0) {
		go.without = prune_plan_drops;
		go.without_payload = &plan;
	}
	if (rc < 0) {
		log_error("prune: %s", log_reason(rc));
		goto cleanup;
	}
	if (gc && cmd_gc_run(repo, st, snaps, &go) < 0)
		goto cleanup;
	ret = CMD_OK;
cleanup:
	prune_plan_release(&plan);
	snapshots_free(snaps);
	store_close(st);
	if (fd >= 0)
		close(fd);
	config_release(&cfg);
	return ret;
}
