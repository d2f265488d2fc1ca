/*
 * cmd_sync.c - `dedup-server sync`: copies snapshots from another
 * dedup-server into a stopped server's repository (sync.h,
 * docs/REPLICATION.md). A serving process does the same by itself with
 * sync_from in server.conf.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "httpc.h"
#include "log.h"
#include "repo.h"
#include "snapshots.h"
#include "store.h"
#include "sync.h"
#include "syncwire.h"
#include "tokens.h"

/* Exit codes beyond cmd.h's (docs/REPLICATION.md). */
#define CMD_SYNC_UNREACHABLE 3   /* connect, TLS, not a dedup server */
#define CMD_SYNC_TOKEN 4         /* the source refused the token */

const char cmd_sync_usage[] =
	"usage: dedup-server sync --repo DIR --from URL\n"
	"                         (--token TOKEN | --token-file FILE)\n"
	"                         [--ca FILE | --fingerprint SHA256]\n"
	"                         [--client NAME]... [--newer-than DATE]\n"
	"                         [--json]\n"
	"\n"
	"Copies snapshots from the dedup-server at URL into the repository\n"
	"DIR, fetching only the chunks DIR lacks and verifying each one; a\n"
	"snapshot appears once all its chunks are stored, so a run that was\n"
	"killed is completed by the next. The server of DIR must be stopped;\n"
	"a serving one syncs by itself with sync_from in server.conf\n"
	"(docs/REPLICATION.md).\n"
	"--from         the source, https://HOST:PORT\n"
	"--token        a token of the source (admin: every client)\n"
	"--token-file   read the token from FILE instead\n"
	"--ca           the source's certificate or CA (PEM)\n"
	"--fingerprint  the source certificate's SHA-256 (dedup-server cert\n"
	"               show on the source)\n"
	"--client       only this client's snapshots (repeatable)\n"
	"--newer-than   only snapshots the source wrote since DATE:\n"
	"               YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or an age (7d, 12h)\n"
	"--json         print the report as JSON\n"
	"Exit: 0 all copied, 1 some snapshots not copied or a local error,\n"
	"2 usage, 3 source unreachable / TLS / not a dedup server,\n"
	"4 token refused.\n";

struct sync_args {
	const char *repo, *token_file;
	struct sync_opts o;
	const char **clients;
	bool json;
	char *token;                 /* read from --token-file */
};

/* The token in FILE: its first line. */
static int sync_read_token(struct sync_args *a)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	rc = dd_read_file(a->token_file, 4096, &data, &len);
	if (rc < 0)
		return log_wrap(rc, "cannot read token file '%s'",
				a->token_file);
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' ||
		       data[len - 1] == ' '))
		len--;
	if (len == 0 || memchr(data, '\n', len) || memchr(data, '\0', len)) {
		free(data);
		return dd_error_set(-EINVAL, "token file '%s' does not hold "
				    "one token", a->token_file);
	}
	a->token = malloc(len + 1);
	if (!a->token) {
		free(data);
		return -ENOMEM;
	}
	memcpy(a->token, data, len);
	a->token[len] = '\0';
	free(data);
	a->o.token = a->token;
	return 0;
}

/* Returns 0, or CMD_USAGE after printing why. */
static int sync_parse(struct sync_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "from", required_argument, NULL, 'f' },
		{ "token", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "ca", required_argument, NULL, 'C' },
		{ "fingerprint", required_argument, NULL, 'F' },
		{ "client", required_argument, NULL, 'c' },
		{ "newer-than", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:f:t:T:C:F:c:n:jh", opts,
				NULL)) != -1) {
		switch (c) {
		case 'r': a->repo = optarg; break;
		case 'f': a->o.from = optarg; break;
		case 't': a->o.token = optarg; break;
		case 'T': a->token_file = optarg; break;
		case 'C': a->o.ca = optarg; break;
		case 'F': a->o.fingerprint = optarg; break;
		case 'j': a->json = true; break;
		case 'c':
			if (!tokens_name_valid(optarg)) {
				log_error("invalid client name '%s'", optarg);
				return CMD_USAGE;
			}
			a->clients[a->o.nclients++] = optarg;
			break;
		case 'n':
			if (syncwire_parse_since(optarg, dd_now(),
						 &a->o.newer_than) < 0) {
				log_error("%s", log_reason(-EINVAL));
				return CMD_USAGE;
			}
			break;
		case 'h':
			fputs(cmd_sync_usage, stdout);
			return -1;
		default:
			fputs(cmd_sync_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc || !a->repo || !a->o.from ||
	    !a->o.token == !a->token_file) {
		log_error("sync needs --repo, --from and one of --token or "
			  "--token-file");
		fputs(cmd_sync_usage, stderr);
		return CMD_USAGE;
	}
	if (a->o.fingerprint && (strlen(a->o.fingerprint) != 64 ||
				 strspn(a->o.fingerprint, "0123456789abcdef"
					"ABCDEF") != 64)) {
		log_error("--fingerprint wants 64 hex digits");
		return CMD_USAGE;
	}
	a->o.clients = a->clients;
	return 0;
}

static void sync_print(const struct sync_report *r, bool json)
{
	if (json) {
		printf("{\"result\": \"%s\", \"snapshots_listed\": %llu, "
		       "\"snapshots_copied\": %llu, \"snapshots_present\": "
		       "%llu, \"snapshots_failed\": %llu, \"chunks_copied\": "
		       "%llu, \"bytes_copied\": %llu, \"bytes_received\": "
		       "%llu, \"seconds\": %lld}\n",
		       r->rc == 0 ? "ok" : r->rc == -EBADMSG ? "partial" :
		       "failed", (unsigned long long)r->listed,
		       (unsigned long long)r->copied,
		       (unsigned long long)r->present,
		       (unsigned long long)r->failed,
		       (unsigned long long)r->chunks_copied,
		       (unsigned long long)r->bytes_copied,
		       (unsigned long long)r->bytes_received,
		       (long long)(r->finished - r->started));
		return;
	}
	printf("snapshots: %llu selected, %llu copied, %llu already here, "
	       "%llu not copied\n", (unsigned long long)r->listed,
	       (unsigned long long)r->copied, (unsigned long long)r->present,
	       (unsigned long long)r->failed);
	printf("chunks copied: %llu (%llu bytes, %llu bytes received)\n",
	       (unsigned long long)r->chunks_copied,
	       (unsigned long long)r->bytes_copied,
	       (unsigned long long)r->bytes_received);
}

static int sync_exit_code(int rc)
{
	switch (rc) {
	case 0: return CMD_OK;
	case -ECONNREFUSED:
	case -EPROTO: return CMD_SYNC_UNREACHABLE;
	case -EACCES: return CMD_SYNC_TOKEN;
	default: return CMD_ERROR;
	}
}

/* Opens DIR (its lock held by the caller), syncs, saves the state. */
static int sync_repo(struct sync_args *a)
{
	struct store *st = NULL;
	struct snapshots *snaps = NULL;
	struct tokens *tok = NULL;
	struct sync_report r;
	char path[4200];
	int rc;

	rc = repo_path(path, sizeof(path), a->repo, REPO_CLIENTS);
	if (rc == 0)
		rc = tokens_new(&tok, path);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		return CMD_ERROR;
	}
	if (dd_httpc_global_init() < 0 ||
	    cmd_open_repo(a->repo, &st, &snaps) < 0) {
		tokens_free(tok);
		return CMD_ERROR;
	}
	rc = sync_run(st, snaps, tok, &a->o, &r);
	sync_print(&r, a->json);
	if (rc < 0)
		log_error("sync from %s: %s", a->o.from, r.error);
	if (sync_state_save(a->repo, a->o.from, &r) < 0)
		log_warning("cannot write %s/%s", a->repo, SYNC_STATE_FILE);
	store_close(st);
	snapshots_free(snaps);
	tokens_free(tok);
	dd_httpc_global_cleanup();
	return sync_exit_code(rc);
}

int cmd_sync(int argc, char **argv)
{
	struct sync_args a;
	int fd = -1, rc;

	memset(&a, 0, sizeof(a));
	a.clients = calloc((size_t)argc + 1, sizeof(*a.clients));
	if (!a.clients) {
		log_error("out of memory");
		return CMD_ERROR;
	}
	rc = sync_parse(&a, argc, argv);
	if (rc != 0) {
		free(a.clients);
		return rc < 0 ? CMD_OK : rc;
	}
	if (a.token_file && sync_read_token(&a) < 0) {
		log_error("%s", log_reason(-EINVAL));
		rc = CMD_USAGE;
	} else if (cmd_lock_repo(&fd, a.repo, "sync (or set sync_from in "
				 "server.conf: docs/REPLICATION.md)") < 0) {
		rc = CMD_ERROR;
	} else {
		rc = sync_repo(&a);
	}
	if (fd >= 0)
		close(fd);
	free(a.token);
	free(a.clients);
	return rc;
}
