/*
 * session.c - see session.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>

#include <jansson.h>

#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "session.h"
#include "key.h"

/* Seconds between progress reports. */
#define SESSION_INTERVAL 2.0
/* The server keeps error texts to this length. */
#define SESSION_ERROR_MAX 300
/* Hex digits of the configuration key sent. */
#define SESSION_CONFIG_HEX 32

struct session {
	struct client *client;
	char path[128];        /* the progress URL path */
	char snap_path[128];   /* the snapshot create path */
	double last;           /* dd_monotonic() of the last report */
	bool broken;           /* a report failed: stop reporting */
};

/* Keeps the caller's error message across a request of ours. */
struct session_saved {
	char msg[1024];
};

static void session_save(struct session_saved *sv)
{
	snprintf(sv->msg, sizeof(sv->msg), "%s", dd_error_last());
}

static void session_restore(const struct session_saved *sv)
{
	dd_error_set(0, "%s", sv->msg);
}

/* The configuration key: 32 hex digits of SHA-256 over the host name and
 * the lock file's path (which holds the user and a hash of server and
 * token): the same for every run that would take the same lock here. */
static void session_config_key(char out[SESSION_CONFIG_HEX + 1],
			       const char *host, const char *lock)
{
	char hex[DD_ID_HEX_LEN + 1];
	struct dd_sha256_ctx *ctx = dd_sha256_new();
	struct dd_id id;

	out[0] = '\0';
	if (!ctx)
		return;
	dd_sha256_update(ctx, "dedup-agent session\n", 20);
	dd_sha256_update(ctx, host, strlen(host));
	dd_sha256_update(ctx, "\n", 1);
	dd_sha256_update(ctx, lock, strlen(lock));
	dd_sha256_final(ctx, &id);
	dd_sha256_free(ctx);
	dd_id_to_hex(hex, &id);
	memcpy(out, hex, SESSION_CONFIG_HEX);
	out[SESSION_CONFIG_HEX] = '\0';
}

/* What the server is shown of a host or path: an encrypted client's
 * keyed pseudonym (key.h), as in its snapshots. */
static const char *session_shown(struct client *c, char *buf, size_t n,
				 bool path, const char *value)
{
	const struct dd_crypt *k = client_crypt(c);

	if (k && key_pseudonym(k, buf, n, path, value) == 0)
		return buf;
	return value;
}

void session_open(struct session **out, struct client *c, const char *lock,
		  char *const *paths, size_t npaths)
{
	char pseudo[64];
	struct session_saved sv;
	struct session *s = NULL;
	char host[HOST_NAME_MAX + 1] = "", key[SESSION_CONFIG_HEX + 1] = "";
	json_t *req = NULL, *arr, *rep = NULL;
	const char *id;
	size_t i;
	int rc;

	*out = NULL;
	session_save(&sv);
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "unknown");
	/* an encrypted client's key is of its host's pseudonym: the
	 * server must not guess the name from it */
	if (lock)
		session_config_key(key, session_shown(c, pseudo, sizeof(pseudo),
						      false, host), lock);
	arr = json_array();
	for (i = 0; arr && i < npaths; i++)
		if (json_array_append_new(arr, json_string(
			session_shown(c, pseudo, sizeof(pseudo), true,
				      paths[i]))) < 0)
			goto cleanup;
	req = arr ? json_pack("{s:s, s:O}", "host",
			      session_shown(c, pseudo, sizeof(pseudo), false,
					    host),
			      "paths", arr) : NULL;
	if (req && key[0] &&
	    json_object_set_new(req, "config", json_string(key)) < 0)
		goto cleanup;
	if (!req)
		goto cleanup;
	rc = client_post_json(c, DD_API_PREFIX "/sessions", req, &rep);
	if (rc == -ENOENT)       /* a server without sessions */
		goto cleanup;
	if (rc < 0) {
		agent_warn("the server does not show this backup as in "
			   "progress: %s", dd_error_last());
		goto cleanup;
	}
	id = json_string_value(json_object_get(rep, "id"));
	if (!id || strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
		goto cleanup;
	if (!(s = calloc(1, sizeof(*s))))
		goto cleanup;
	s->client = c;
	s->last = dd_monotonic();
	snprintf(s->path, sizeof(s->path), DD_API_PREFIX "/sessions/%s", id);
	snprintf(s->snap_path, sizeof(s->snap_path),
		 DD_API_PREFIX "/snapshots?session=%s", id);
	*out = s;
cleanup:
	json_decref(arr);
	json_decref(req);
	json_decref(rep);
	session_restore(&sv);
}

void session_progress(struct session *s, uint64_t files, uint64_t bytes_done)
{
	struct session_saved sv;
	double now;
	json_t *req;

	if (!s || s->broken)
		return;
	now = dd_monotonic();
	if (now - s->last < SESSION_INTERVAL)
		return;
	s->last = now;
	session_save(&sv);
	req = json_pack("{s:I, s:I, s:s}", "files", (json_int_t)files,
			"bytes_done", (json_int_t)bytes_done,
			"phase", "backup");
	if (!req || client_post_json(s->client, s->path, req, NULL) < 0)
		s->broken = true;
	json_decref(req);
	session_restore(&sv);
}

const char *session_snapshot_path(const struct session *s)
{
	return s ? s->snap_path : DD_API_PREFIX "/snapshots";
}

void session_close(struct session *s, int rc)
{
	struct session_saved sv;
	char why[SESSION_ERROR_MAX + 1];
	json_t *req;
	size_t n;

	if (!s)
		return;
	if (rc < 0) {
		session_save(&sv);
		/* Cut at a character boundary: the server wants UTF-8. */
		n = strlen(sv.msg);
		if (n > SESSION_ERROR_MAX) {
			n = SESSION_ERROR_MAX;
			while (n > 0 && ((unsigned char)sv.msg[n] & 0xc0) == 0x80)
				n--;
		}
		memcpy(why, sv.msg, n);
		why[n] = '\0';
		/* An encrypted client's errors name its files: the server,
		 * which sees only pseudonyms, is told no more than that. */
		if (client_crypt(s->client))
			snprintf(why, sizeof(why), "the backup failed (an "
				 "encrypted client: the error is shown on the "
				 "client only)");
		req = json_pack("{s:s, s:s}", "state", "failed", "error", why);
		/* 404 when the snapshot create already closed it: fine. */
		if (req)
			client_post_json(s->client, s->path, req, NULL);
		json_decref(req);
		session_restore(&sv);
	}
	free(s);
}
