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
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "httpc.h"
#include "log.h"
#include "repo.h"
#include "snapshots.h"
#include "store.h"
#include "sync.h"
#include "syncask.h"
#include "syncwire.h"
#include "tokens.h"

const char cmd_sync_usage[] =
	"usage: dedup-server sync --repo DIR --from URL\n"
	"                         (--token TOKEN | --token-file FILE)\n"
	"                         [--ca FILE | --fingerprint SHA256]\n"
	"                         [--client NAME]... [--newer-than DATE]\n"
	"                         [--max-clients N] [--json]\n"
	"       dedup-server sync --repo DIR [--wait SECONDS] [--json]\n"
	"\n"
	"Copies snapshots from the dedup-server at URL into the repository\n"
	"DIR, fetching only the chunks DIR lacks and verifying each one; a\n"
	"snapshot appears once all its chunks are stored, so a run that was\n"
	"killed is completed by the next. With --from, DIR's server must be\n"
	"stopped. Without it, the dedup-server serving DIR runs the sync\n"
	"configured in its server.conf (sync_from) now, and this waits for\n"
	"its result: for a systemd timer (docs/REPLICATION.md).\n"
	"--from         the source, https://HOST:PORT\n"
	"--token        a token of the source (admin: every client)\n"
	"--token-file   read the token from FILE instead\n"
	"--ca           the source's certificate or CA (PEM)\n"
	"--fingerprint  the source certificate's SHA-256 (dedup-server cert\n"
	"               show on the source)\n"
	"--client       only this client's snapshots (repeatable)\n"
	"--newer-than   only snapshots the source wrote since DATE:\n"
	"               YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or an age (7d, 12h)\n"
	"--max-clients  copy snapshots of at most N client names that have\n"
	"               no token here (1 to 100000, default 1000; those with\n"
	"               snapshots here count)\n"
	"--json         print the report as JSON\n"
	"--wait         without --from: how long to wait for the serving\n"
	"               process's result (default 86400 s)\n"
	"Exit: 0 all copied, 1 some snapshots not copied or a local error,\n"
	"2 usage, 3 source unreachable / TLS / not a dedup server,\n"
	"4 token refused.\n";

struct sync_args {
	const char *repo, *token_file;
	struct sync_opts o;
	const char **clients;
	bool json;
	uint64_t wait;               /* seconds, asking a serving process */
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
		{ "max-clients", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	a->wait = 86400;
	while ((c = getopt_long(argc, argv, "r:f:t:T:C:F:c:n:m:jw:h", opts,
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
		case 'm':
			if (dd_parse_u64(optarg, &a->o.max_clients) < 0 ||
			    a->o.max_clients < 1 ||
			    a->o.max_clients > 100000) {
				log_error("invalid --max-clients '%s' (want 1 "
					  "to 100000)", optarg);
				return CMD_USAGE;
			}
			break;
		case 'w':
			if (dd_parse_u64(optarg, &a->wait) < 0 ||
			    a->wait < 1 || a->wait > 7 * 86400) {
				log_error("invalid --wait '%s' (want 1 to "
					  "604800 seconds)", optarg);
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
	if (optind == argc && a->repo && !a->o.from && !a->o.token &&
	    !a->token_file && !a->o.ca && !a->o.fingerprint &&
	    !a->o.nclients && !a->o.newer_than && !a->o.max_clients)
		return 0;    /* ask the serving process */
	if (optind != argc || !a->repo || !a->o.from ||
	    !a->o.token == !a->token_file) {
		log_error("sync needs --repo, --from and one of --token or "
			  "--token-file (or --repo alone, to ask the server "
			  "serving DIR)");
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
		       "%llu, \"snapshots_failed\": %llu, \"snapshots_gone\": "
		       "%llu, \"chunks_copied\": "
		       "%llu, \"bytes_copied\": %llu, \"bytes_received\": "
		       "%llu, \"seconds\": %lld}\n",
		       r->rc == 0 ? "ok" : r->rc == -EBADMSG ? "partial" :
		       "failed", (unsigned long long)r->listed,
		       (unsigned long long)r->copied,
		       (unsigned long long)r->present,
		       (unsigned long long)r->failed,
		       (unsigned long long)r->gone,
		       (unsigned long long)r->chunks_copied,
		       (unsigned long long)r->bytes_copied,
		       (unsigned long long)r->bytes_received,
		       (long long)(r->finished - r->started));
		return;
	}
	printf("snapshots: %llu selected, %llu copied, %llu already here, "
	       "%llu not copied, %llu forgotten on the source meanwhile\n",
	       (unsigned long long)r->listed,
	       (unsigned long long)r->copied, (unsigned long long)r->present,
	       (unsigned long long)r->failed, (unsigned long long)r->gone);
	printf("chunks copied: %llu (%llu bytes, %llu bytes received)\n",
	       (unsigned long long)r->chunks_copied,
	       (unsigned long long)r->bytes_copied,
	       (unsigned long long)r->bytes_received);
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
	fflush(stdout);
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

/* True (after saying what to do instead) when a server serves DIR. */
static bool sync_served(const char *repo)
{
	int fd = -1;

	if (repo_lock_server(&fd, repo) == -EBUSY) {
		log_error("repository '%s' is served by a running dedup-server: "
			  "set sync_from in its server.conf and run `dedup-server "
			  "sync --repo %s` without --from to have it sync now "
			  "(docs/REPLICATION.md)", repo, repo);
		return true;
	}
	if (fd >= 0)
		close(fd);
	return false;
}

static void sync_print_state(json_t *j, bool json)
{
	json_t *e = json_object_get(j, "error");
	char *text;

	if (json) {
		text = json_dumps(j, JSON_COMPACT);
		if (text)
			puts(text);
		free(text);
		return;
	}
	printf("sync from %s: %s\n",
	       json_string_value(json_object_get(j, "from")),
	       json_string_value(json_object_get(j, "result")));
	printf("snapshots: %lld selected, %lld copied, %lld already here, "
	       "%lld not copied, %lld forgotten on the source meanwhile\n",
	       (long long)json_integer_value(json_object_get(j,
						"snapshots_listed")),
	       (long long)json_integer_value(json_object_get(j,
						"snapshots_copied")),
	       (long long)json_integer_value(json_object_get(j,
						"snapshots_present")),
	       (long long)json_integer_value(json_object_get(j,
						"snapshots_failed")),
	       (long long)json_integer_value(json_object_get(j,
						"snapshots_gone")));
	printf("chunks copied: %lld (%lld bytes, %lld bytes received)\n",
	       (long long)json_integer_value(json_object_get(j,
						"chunks_copied")),
	       (long long)json_integer_value(json_object_get(j, "bytes_copied")),
	       (long long)json_integer_value(json_object_get(j,
						"bytes_received")));
	if (json_is_string(e))
		log_error("sync: %s", json_string_value(e));
}

/*
 * Without --from: asks the dedup-server serving DIR to run its configured
 * sync now (a request of its own, syncask.h) and waits for the answer.
 */
static int sync_ask(struct sync_args *a)
{
	struct timespec tick = { 0, 200 * 1000 * 1000 };
	struct syncask_id id;
	json_t *j = NULL;
	int64_t until;
	int fd = -1, rc;

	rc = repo_lock_server(&fd, a->repo);
	if (rc == 0) {
		close(fd);
		log_error("no dedup-server is serving '%s': give --from and "
			  "--token to sync it directly", a->repo);
		return CMD_ERROR;
	}
	if (rc != -EBUSY || (rc = syncask_write(a->repo, &id)) < 0) {
		log_error("cannot ask the dedup-server serving '%s': %s",
			  a->repo, log_reason(rc));
		return CMD_ERROR;
	}
	until = dd_now() + (int64_t)a->wait;
	while ((rc = syncask_read(a->repo, &id, &j)) == 0) {
		if (dd_now() >= until) {
			log_error("the dedup-server serving '%s' did not answer "
				  "within %llu s; the request stays and is run "
				  "for when the server can (after its restart, "
				  "if it was stopped)", a->repo,
				  (unsigned long long)a->wait);
			return CMD_ERROR;
		}
		nanosleep(&tick, NULL);
	}
	if (rc == -ENOENT) {
		log_error("the dedup-server serving '%s' ran the sync but could "
			  "not write its answer (a full disk?): its log and "
			  "/health say why", a->repo);
		return CMD_ERROR;
	}
	if (rc < 0) {
		log_error("cannot read the answer: %s", log_reason(rc));
		return CMD_ERROR;
	}
	syncask_remove(a->repo, &id);
	sync_print_state(j, a->json);
	rc = (int)json_integer_value(json_object_get(j, "exit_code"));
	json_decref(j);
	return rc;
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
	/* the token file is read as the caller (it may be root's alone);
	 * everything in DIR, its lock first, as DIR's owner */
	if (a.o.from && a.token_file && sync_read_token(&a) < 0) {
		log_error("%s", log_reason(-EINVAL));
		rc = CMD_USAGE;
	} else if (cmd_as_repo_owner(a.repo) < 0) {
		rc = CMD_ERROR;
	} else if (!a.o.from) {
		rc = sync_ask(&a);
	} else if (sync_served(a.repo) ||
		   cmd_lock_repo(&fd, a.repo, "sync --from") < 0) {
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
