/*
 * main.c - dedup-agent: global options and the verb table.
 *
 * Global options may stand before the verb and after it (they are taken
 * out of the verb's arguments, up to a "--"); everything else is the
 * verb's to parse.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"

static int cmd_help(int argc, char **argv, const struct agent_globals *g,
		    const struct agent_verb *self);

static const struct agent_verb verbs[] = {
	{ "backup", cmd_backup, "backup [--json] PATH...",
	  "Back up files and directories; prints the new snapshot's id." },
	{ "restore", cmd_restore, "restore SNAPSHOT|latest --target DIR",
	  "Restore a snapshot (id, 8+ digit prefix, 'latest') into DIR." },
	{ "snapshots", cmd_snapshots, "snapshots [--json]",
	  "List this client's snapshots, oldest first." },
	{ "stats", cmd_stats, "stats [--json]",
	  "Show the repository's statistics." },
	{ "help", cmd_help, "help [COMMAND]", "Show help." },
};

static void main_usage(FILE *f)
{
	fprintf(f, "usage: dedup-agent [OPTIONS] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < DD_ARRAY_SIZE(verbs); i++)
		fprintf(f, "  %-38s %s\n", verbs[i].usage, verbs[i].summary);
	fprintf(f,
		"\noptions (before or after the command):\n"
		"  --server URL     the server, https://HOST:PORT (env DEDUP_SERVER)\n"
		"  --token TOKEN    this client's token (env DEDUP_TOKEN)\n"
		"  --ca FILE        CA certificate that signed the server's (env DEDUP_CA)\n"
		"  --config FILE    settings file (default %s)\n"
		"  -q, --quiet      no summary on stderr\n"
		"  -h, --help       this help\n"
		"  --version        print the version\n"
		"\nSettings: flags win over the environment, the environment over the\n"
		"config file (keys server, token, ca).\n",
		SETTINGS_DEFAULT_CONFIG);
}

static const struct agent_verb *main_find_verb(const char *name)
{
	for (size_t i = 0; i < DD_ARRAY_SIZE(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

static int cmd_help(int argc, char **argv, const struct agent_globals *g,
		    const struct agent_verb *self)
{
	const struct agent_verb *v;

	if (argc < 2) {
		main_usage(stdout);
		return DD_EXIT_OK;
	}
	if (!(v = main_find_verb(argv[1])))
		return agent_usage_error(self, "unknown command '%s'", argv[1]);
	return agent_usage_help(v);
}

/*
 * Takes a global option at argv[i] into *g. Returns the number of
 * arguments used (0: not a global option) or -1 on a missing value.
 */
static int main_global_option(struct agent_globals *g, int argc, char **argv,
			      int i)
{
	static const struct {
		const char *name;
		size_t off;
	} valued[] = {
		{ "--server", offsetof(struct settings_source, server) },
		{ "--token", offsetof(struct settings_source, token) },
		{ "--ca", offsetof(struct settings_source, ca) },
		{ "--config", offsetof(struct settings_source, config) },
	};
	const char *a = argv[i];

	if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
		g->quiet = true;
		return 1;
	}
	for (size_t k = 0; k < DD_ARRAY_SIZE(valued); k++) {
		size_t n = strlen(valued[k].name);
		const char **slot = (const char **)((char *)&g->src +
						    valued[k].off);

		if (strncmp(a, valued[k].name, n) != 0)
			continue;
		if (a[n] == '=') {
			*slot = a + n + 1;
			return 1;
		}
		if (a[n] != '\0')
			continue;
		if (i + 1 >= argc) {
			fprintf(stderr, "error: option '%s' needs a value\n", a);
			return -1;
		}
		*slot = argv[i + 1];
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct agent_globals g = { 0 };
	const struct agent_verb *verb = NULL;
	char **vargv;
	int vargc = 0, i, n, rc;
	bool dashdash = false;

	if (!(vargv = calloc((size_t)argc + 1, sizeof(*vargv)))) {
		fprintf(stderr, "error: out of memory\n");
		return DD_EXIT_ERROR;
	}
	for (i = 1; i < argc; i += n) {
		n = 1;
		if (!verb) {
			if ((n = main_global_option(&g, argc, argv, i)) < 0)
				goto usage;
			if (n > 0)
				continue;
			n = 1;
			if (strcmp(argv[i], "-h") == 0 ||
			    strcmp(argv[i], "--help") == 0) {
				main_usage(stdout);
				free(vargv);
				return DD_EXIT_OK;
			}
			if (strcmp(argv[i], "--version") == 0) {
				printf("dedup-agent %s\n", DD_VERSION);
				free(vargv);
				return DD_EXIT_OK;
			}
			if (argv[i][0] == '-') {
				fprintf(stderr, "error: unknown option '%s'\n",
					argv[i]);
				goto usage;
			}
			if (!(verb = main_find_verb(argv[i]))) {
				fprintf(stderr, "error: unknown command '%s'\n",
					argv[i]);
				goto usage;
			}
			vargv[vargc++] = argv[i];
			continue;
		}
		if (!dashdash) {
			if (strcmp(argv[i], "--") == 0)
				dashdash = true;
			else if ((n = main_global_option(&g, argc, argv, i)) < 0)
				goto usage;
			else if (n > 0)
				continue;
			n = 1;
		}
		vargv[vargc++] = argv[i];
	}
	if (!verb) {
		fprintf(stderr, "error: no command given\n");
		goto usage;
	}

	if (client_global_init() < 0) {
		fprintf(stderr, "error: %s\n", dd_error_last());
		free(vargv);
		return DD_EXIT_ERROR;
	}
	rc = verb->run(vargc, vargv, &g, verb);
	client_global_cleanup();
	free(vargv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "error: cannot write to standard output\n");
		return DD_EXIT_ERROR;
	}
	if (rc < 0) {
		fprintf(stderr, "error: %s\n", dd_error_last());
		return DD_EXIT_ERROR;
	}
	return rc;

usage:
	main_usage(stderr);
	free(vargv);
	return DD_EXIT_USAGE;
}
