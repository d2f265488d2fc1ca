/*
 * main.c - dedup-server's entry point: a table of verbs, each in its own
 * cmd_<verb>.c (see cmd.h).
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ldbenv.h"
#include "log.h"
#include "proto.h"

struct verb {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	const char *summary;
};

static const struct verb verbs[] = {
	{ "init", cmd_init, cmd_init_usage, "create a repository" },
	{ "token", cmd_token, cmd_token_usage,
	  "add, list or revoke client tokens" },
	{ "serve", cmd_serve, cmd_serve_usage,
	  "serve a repository over HTTPS" },
	{ "cert", cmd_cert, cmd_cert_usage,
	  "show the TLS certificate's fingerprint, or make a new one" },
	{ "check", cmd_check, cmd_check_usage,
	  "verify the index, packs and snapshots" },
	{ "repair", cmd_repair, cmd_repair_usage,
	  "rebuild the index from the packs" },
	{ "prune", cmd_prune, cmd_prune_usage,
	  "remove snapshots by the retention policies, then gc" },
	{ "gc", cmd_gc, cmd_gc_usage,
	  "delete unused chunks and rewrite mostly dead packs" },
	{ "sync", cmd_sync, cmd_sync_usage,
	  "copy snapshots from another dedup-server" },
	/* Hidden (summary NULL): for tests and inspection. */
	{ "debug", cmd_debug, cmd_debug_usage, NULL },
};

static void usage(FILE *out)
{
	size_t i;

	fputs("usage: dedup-server VERB [OPTIONS]\n"
	      "       dedup-server help [VERB]\n"
	      "       dedup-server --version\n"
	      "\n"
	      "verbs:\n", out);
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].summary)
			fprintf(out, "  %-8s %s\n", verbs[i].name,
				verbs[i].summary);
	fputs("  help     show this text, or a verb's options\n"
	      "\n"
	      "dedup-server keeps one deduplicated chunk store for many\n"
	      "dedup-agent clients and serves it over HTTPS.\n", out);
}

static const struct verb *find_verb(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct verb *v;

	if (argc < 2) {
		usage(stderr);
		return CMD_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CMD_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("dedup-server %s\n", DD_VERSION);
		return CMD_OK;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc == 2) {
			usage(stdout);
			return CMD_OK;
		}
		v = find_verb(argv[2]);
		if (!v || argc > 3) {
			log_error("unknown verb '%s'", argv[2]);
			usage(stderr);
			return CMD_USAGE;
		}
		fputs(v->usage, stdout);
		return CMD_OK;
	}
	v = find_verb(argv[1]);
	/* Before any verb opens the index (ldbenv.h). */
	ldbenv_setup();
	if (!v) {
		char clean[200];

		log_sanitize(clean, sizeof(clean), argv[1], (size_t)-1);
		log_error("unknown verb '%s'", clean);
		usage(stderr);
		return CMD_USAGE;
	}
	return v->fn(argc - 1, argv + 1);
}
