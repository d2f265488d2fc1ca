/*
 * main.c - dedup-agent: global options and the verb table.
 *
 * Global options may stand before the verb and after it (they are taken
 * out of the verb's arguments, up to a "--"); everything else is the
 * verb's to parse.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "key.h"
#include "lock.h"
#include "progress.h"

static int cmd_help(int argc, char **argv, const struct agent_globals *g,
		    const struct agent_verb *self);

static const struct agent_verb verbs[] = {
	{ "backup", cmd_backup, "backup [--json] [--force-read] [--exclude PATTERN]... [--exclude-file FILE]... [--one-file-system] [--include-caches] [--threads N] PATH...",
	  "Back up files and directories; prints the new snapshot's id." },
	{ "restore", cmd_restore, "restore SNAPSHOT|latest (--target DIR [--same-privileges] [--no-setuid] [--no-devices] [--no-special-xattrs] | --format tar --output FILE|-) [--include PATTERN]...",
	  "Restore a snapshot (id, 8+ digit prefix, 'latest') into DIR.\n"
	  "Another client's snapshot (an admin's restore) is restored without\n"
	  "setuid/setgid bits, device nodes and security.*/trusted.*/system.*\n"
	  "xattrs unless --same-privileges; --no-setuid, --no-devices and\n"
	  "--no-special-xattrs leave them out of any snapshot. A hard link is\n"
	  "only made to a file this restore created." },
	{ "ls", cmd_ls, "ls [--json] SNAPSHOT [PATH]...",
	  "List a snapshot's entries (those under PATH, a path or pattern)." },
	{ "mount", cmd_mount, "mount [--cache-size SIZE] [-f] SNAPSHOT|latest DIR",
	  "Show a snapshot as a read-only file system at DIR (FUSE).\n"
	  "Runs in the foreground (-f is the default and changes nothing)\n"
	  "until `fusermount3 -u DIR`, SIGINT or SIGTERM, then exits 0.\n"
	  "The catalog is loaded once; file data is fetched as it is read,\n"
	  "only the chunks a read covers (plus read-ahead when sequential),\n"
	  "kept in a chunk cache of at most SIZE bytes (K, M, G; default\n"
	  "64M). A read the server cannot serve fails with EIO and a log\n"
	  "line; the mount stays up." },
	{ "verify", cmd_verify, "verify SNAPSHOT",
	  "Fetch and re-hash every chunk of a snapshot; name damaged files." },
	{ "snapshots", cmd_snapshots, "snapshots [--json]",
	  "List this client's snapshots, oldest first." },
	{ "stats", cmd_stats, "stats [--json]",
	  "Show the repository's statistics." },
	{ "forget", cmd_forget,
	  "forget [--dry-run] [--prune] [--json] [--client NAME] [--keep-* N]... [SNAPSHOT]...",
	  "Admin: remove snapshots (named, or by keep rules); --prune also runs gc." },
	{ "gc", cmd_gc, "gc [--dry-run] [--json]",
	  "Admin: delete chunks no snapshot uses; report the bytes freed." },
	{ "key", cmd_key,
	  "key (init|show|export --output F|import --input F) [--key-file F] [--new-passphrase-file F]",
	  "Client-side encryption key: create, show its fingerprint, copy.\n"
	  "init writes a new key file (mode 0600) sealed with a passphrase\n"
	  "(scrypt, AES-256-GCM); with key_file set, backups are encrypted.\n"
	  "LOST KEY = LOST DATA: nobody, not the server's admin, can read\n"
	  "the backups without the key file and its passphrase. Keep a copy\n"
	  "(export) elsewhere. export/import copy the key, read with the\n"
	  "passphrase (--passphrase-file, DEDUP_PASSPHRASE_FILE,\n"
	  "DEDUP_PASSPHRASE or the terminal), written with a new one if\n"
	  "--new-passphrase-file or DEDUP_NEW_PASSPHRASE is given.\n"
	  "Exit codes: 0 ok, 1 error (wrong passphrase, missing or\n"
	  "malformed file, target exists), 2 usage." },
	{ "help", cmd_help, "help [COMMAND]", "Show help." },
};

static void main_usage(FILE *f)
{
	fprintf(f, "usage: dedup-agent [OPTIONS] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < DD_ARRAY_SIZE(verbs); i++)
		/* The summary's first line; `COMMAND --help` shows the rest. */
		fprintf(f, "  %-38s %.*s\n", verbs[i].usage,
			(int)strcspn(verbs[i].summary, "\n"), verbs[i].summary);
	fprintf(f,
		"\noptions (before or after the command):\n"
		"  --server URL     the server, https://HOST:PORT (env DEDUP_SERVER)\n"
		"  --token TOKEN    this client's token (env DEDUP_TOKEN)\n"
		"  --ca FILE        CA certificate that signed the server's (env DEDUP_CA)\n"
		"  --fingerprint sha256:HEX  pin the server's certificate instead of a CA\n"
		"                   (env DEDUP_FINGERPRINT; see dedup-server cert show)\n"
		"  --config FILE    settings file (default %s)\n"
		"  --key-file FILE  encrypt: the key of `key init` (env DEDUP_KEY_FILE)\n"
		"  --passphrase-file FILE  its passphrase (env DEDUP_PASSPHRASE_FILE;\n"
		"                   else DEDUP_PASSPHRASE, else the terminal)\n"
		"  --allow-plain    with a key: read plain (unencrypted) snapshots too\n"
		"  -q, --quiet      print nothing on success; no progress display\n"
		"  -h, --help       this help\n"
		"  --version        print the version\n"
		"\nSettings: flags win over the environment, the environment over the\n"
		"config file (keys server, token, ca, fingerprint, key_file,\n"
		"passphrase_file). Lost key = lost data: see docs/ENCRYPTION.md.\n"
		"\nexit codes: 0 success, 1 error, 2 usage error, 3 partial backup (some\n"
		"files could not be read), 4 another backup with the same configuration\n"
		"is still running. See dedup-agent(1).\n",
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

/* Verbs that run under the configuration's lock (lock.h): the ones that
 * must not run twice at once. */
static bool main_verb_locks(const struct agent_verb *v)
{
	return v->run == cmd_backup;
}

/* Whether the verb's arguments ask for its help (before any "--"). */
static bool main_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

/*
 * Takes the lock of the configuration the settings resolve to (lock.h).
 * Settings that do not resolve take no lock: the verb then reports them
 * with its own message. Returns 0 (with *out possibly NULL) or a negative
 * code, -EWOULDBLOCK when another run holds the lock.
 */
static int main_lock(struct lock **out, const struct agent_globals *g)
{
	struct settings s;
	int rc;

	*out = NULL;
	if (settings_load(&s, &g->src) < 0) {
		dd_error_clear();
		return 0;
	}
	rc = lock_take(out, s.server, s.token);
	settings_release(&s);
	return rc;
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
		{ "--fingerprint", offsetof(struct settings_source, fingerprint) },
		{ "--config", offsetof(struct settings_source, config) },
		{ "--key-file", offsetof(struct settings_source, key_file) },
		{ "--passphrase-file",
		  offsetof(struct settings_source, passphrase_file) },
	};
	const char *a = argv[i];

	if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
		g->quiet = true;
		return 1;
	}
	if (strcmp(a, "--allow-plain") == 0) {
		key_allow_plain(true);
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
	struct lock *lock = NULL;
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

	/* A usage error or a help request is answered even while another
	 * run holds the lock. */
	if (main_verb_locks(verb) && vargc > 1 && !main_wants_help(vargc, vargv) &&
	    (rc = main_lock(&lock, &g)) < 0) {
		fprintf(stderr, "error: %s\n", dd_error_last());
		free(vargv);
		return rc == -EWOULDBLOCK ? DD_EXIT_LOCKED : DD_EXIT_ERROR;
	}
	if (client_global_init() < 0) {
		fprintf(stderr, "error: %s\n", dd_error_last());
		lock_free(lock);
		free(vargv);
		return DD_EXIT_ERROR;
	}
	rc = verb->run(vargc, vargv, &g, verb);
	client_global_cleanup();
	free(vargv);
	progress_interrupt();
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "error: cannot write to standard output\n");
		rc = DD_EXIT_ERROR;
	} else if (rc < 0) {
		fprintf(stderr, "error: %s\n", dd_error_last());
		rc = DD_EXIT_ERROR;
	}
	/* Held until here: the exit code is final. */
	lock_free(lock);
	return rc;

usage:
	main_usage(stderr);
	free(vargv);
	return DD_EXIT_USAGE;
}
