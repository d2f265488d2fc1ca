/*
 * routes_snapshots.c - snapshots (create, list, get, delete) and
 * sessions (backups in progress).
 */
#include "routes_impl.h"

/* ---- snapshots ---- */

/* A session id from ?session=: 32 lowercase hex digits. */
static bool routes_session_id_ok(const char *id)
{
	return strlen(id) == SESSIONS_ID_LEN &&
	       dd_hex_lower(id, SESSIONS_ID_LEN);
}

/* Records how a backup ended: on its session if it named one (and the
 * session is still open), else as the client's last result. */
static void routes_backup_ended(struct routes_ctx *ctx, const char *client,
				const char *session, bool ok,
				const char *detail)
{
	char clean[SESSIONS_ERROR_MAX + 1];

	/* Shown as JSON later, which must be UTF-8. */
	log_sanitize(clean, sizeof(clean), detail ? detail : "", (size_t)-1);
	if (session &&
	    sessions_end(ctx->sessions, session, client, ok, clean) == 0)
		return;
	sessions_note_result(ctx->sessions, client, ok, clean);
}

void route_snapshot_create(void *payload,
			   const struct http_request *req,
			   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const char *session = http_request_arg(req, "session");
	const char *client = req->who->name;
	struct domains_tag dom;
	struct frontends_commit fc = { ctx->fronts, false, 0 };
	struct snapshots_guard guard = { frontends_snapshot_commit, &fc };
	char *text = NULL, why[SESSIONS_ERROR_MAX + 1];
	json_t *m;
	size_t len = 0;
	int rc;

	if (session && !routes_session_id_ok(session)) {
		http_reply_error(rep, 400, "invalid session id");
		return;
	}
	/* fenced: refused before anything is written; the agent retries
	 * (its session stays open) */
	if (!routes_fence_ok(ctx, rep))
		return;
	fc.epoch_known = session &&
		sessions_epoch(ctx->sessions, session, client, &fc.epoch) == 0;
	if (!routes_quota_ok(ctx, client, rep)) {
		/* 503 with Retry-After: the usage is not counted yet after a
		 * start; the agent asks again and its session stays open */
		if (rep->retry_after)
			return;
		routes_backup_ended(ctx, client, session, false,
				    rep->status == 507 ?
				    "snapshot refused: storage quota exceeded" :
				    "snapshot refused: the storage quota could "
				    "not be checked");
		return;
	}
	rc = snapshots_create_guarded(ctx->snapshots, ctx->store,
				      routes_domain(ctx, req, &dom), client,
				      req->body, req->body_len,
				      ctx->fronts ? &guard : NULL, &text, &len);
	if (rc < 0) {
		snprintf(why, sizeof(why), "snapshot refused: %s",
			 log_reason(rc));
		if (rc == -EDQUOT)
			http_reply_error(rep, 507, "%s", log_reason(rc));
		else if (rc == -EINVAL)
			http_reply_error(rep, 400, "%s", log_reason(rc));
		else if (rc == -ENOENT)
			http_reply_error(rep, 409, "%s", log_reason(rc));
		else if (rc == -EAGAIN) {
			/* a collection elsewhere outlasted the wait: the
			 * session stays open for the agent's retry */
			http_reply_error(rep, 503, "%s", log_reason(rc));
			rep->retry_after = ROUTES_FENCE_RETRY;
			return;
		} else if (backend_unavailable(rc)) {
			/* the storage did not answer: the same */
			routes_fail(rep, rc);
			return;
		} else if (rc == -EBUSY) {
			/* another create of this client runs: the same */
			http_reply_error(rep, 429, "%s", log_reason(rc));
			rep->retry_after = 1;
			return;
		} else
			routes_fail(rep, rc);
		routes_backup_ended(ctx, client, session, false, why);
		return;
	}
	m = json_loadb(text, len, 0, NULL);
	routes_backup_ended(ctx, client, session, true,
			    json_string_value(json_object_get(m, "id")));
	json_decref(m);
	/* text has room only for its NUL: add the newline in its place. */
	{
		char *t = realloc(text, len + 2);

		if (t) {
			text = t;
			text[len++] = '\n';
			text[len] = '\0';
		}
	}
	http_reply_take(rep, 201, "application/json", (uint8_t *)text, len);
}

/*
 * ?client=NAME: whose snapshots a request means. Clients may only name
 * themselves. Fills *name (NULL: everything the caller may see) or
 * answers 400/403 and returns false.
 */
bool routes_client_arg(const struct http_request *req,
		       struct http_reply *rep, const char **name)
{
	const char *c = http_request_arg(req, "client");

	*name = NULL;
	if (!c)
		return true;
	if (!tokens_name_valid(c)) {
		http_reply_error(rep, 400, "invalid client name");
		return false;
	}
	if (!req->who->admin && strcmp(c, req->who->name) != 0) {
		http_reply_error(rep, 403, "a client token sees only its own "
				 "snapshots");
		return false;
	}
	*name = c;
	return true;
}

/* ?limit=N&after=CURSOR&order=newest|oldest; false after a 400. */
static bool routes_page_args(const struct http_request *req,
			     struct http_reply *rep, struct snapshots_query *q)
{
	const char *limit = http_request_arg(req, "limit");
	const char *after = http_request_arg(req, "after");
	const char *order = http_request_arg(req, "order");
	uint64_t n;

	q->limit = SNAPSHOTS_PAGE_DEFAULT;
	if (limit && (dd_parse_u64(limit, &n) < 0 || n < 1 ||
		      n > SNAPSHOTS_PAGE_MAX)) {
		http_reply_error(rep, 400, "limit must be 1 to %d",
				 SNAPSHOTS_PAGE_MAX);
		return false;
	}
	if (limit)
		q->limit = (size_t)n;
	if (order && strcmp(order, "newest") != 0 &&
	    strcmp(order, "oldest") != 0) {
		http_reply_error(rep, 400, "order must be 'oldest' or 'newest'");
		return false;
	}
	q->newest_first = order && strcmp(order, "newest") == 0;
	if (after && snapshots_cursor_parse(q, after) < 0) {
		http_reply_error(rep, 400, "%s", log_reason(-EINVAL));
		return false;
	}
	return true;
}

void route_snapshot_list(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct snapshots_query q;
	const char *only;
	char *text;
	size_t len;
	int rc;

	memset(&q, 0, sizeof(q));
	if (!routes_client_arg(req, rep, &only) ||
	    !routes_page_args(req, rep, &q))
		return;
	q.client = only ? only : req->who->admin ? NULL : req->who->name;
	rc = snapshots_list(ctx->snapshots, &q, &text, &len);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	http_reply_take(rep, 200, "application/json", (uint8_t *)text, len);
}

void route_snapshot_get(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char *text;
	size_t len;
	int rc;

	rc = snapshots_get(ctx->snapshots, req->param, req->who->name,
			   req->who->admin, &text, &len);
	if (rc == -ENOENT) {
		http_reply_error(rep, 404, "unknown snapshot");
		return;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	http_reply_take(rep, 200, "application/json", (uint8_t *)text, len);
}

/* ---- sessions: backups in progress ---- */

/* Parses a JSON object body; false after a 400. */
bool routes_json_body(const struct http_request *req,
		      struct http_reply *rep, json_t **out)
{
	json_error_t jerr;
	char clean[200];

	*out = NULL;
	if (!req->body) {
		http_reply_error(rep, 400, "empty request body");
		return false;
	}
	*out = json_loadb((const char *)req->body, req->body_len,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!*out) {
		log_sanitize(clean, sizeof(clean), jerr.text, (size_t)-1);
		http_reply_error(rep, 400, "invalid JSON: %s (line %d)", clean,
				 jerr.line);
		return false;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		http_reply_error(rep, 400, "request must be a JSON object");
		return false;
	}
	return true;
}

struct routes_expect {
	const char *client;
	struct dd_id paths;         /* snapshots_paths_digest */
	uint64_t bytes;
};

static int routes_expect_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_expect *e = payload;

	if (strcmp(e->client, it->client) == 0 &&
	    dd_id_eq(&e->paths, &it->paths_digest))
		e->bytes = it->bytes_total;     /* the latest wins */
	return 0;
}

void route_session_open(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_expect ex;
	char id[SESSIONS_ID_LEN + 1];
	json_t *body, *host, *paths, *item, *config;
	const char *cfg = NULL;
	unsigned replaced = 0;
	size_t i;
	int rc;

	if (!routes_json_body(req, rep, &body))
		return;
	host = json_object_get(body, "host");
	paths = json_object_get(body, "paths");
	config = json_object_get(body, "config");
	if (config) {
		cfg = json_string_value(config);
		if (!cfg || !*cfg || strlen(cfg) > SESSIONS_CONFIG_MAX ||
		    strspn(cfg, "0123456789abcdef") != strlen(cfg)) {
			http_reply_error(rep, 400, "field 'config' must be 1 to "
					 "%d lowercase hex digits",
					 SESSIONS_CONFIG_MAX);
			goto cleanup;
		}
	}
	if (!json_is_string(host) || json_string_length(host) < 1 ||
	    json_string_length(host) > SESSIONS_HOST_MAX) {
		http_reply_error(rep, 400, "field 'host' must be a string of "
				 "1 to %d bytes", SESSIONS_HOST_MAX);
		goto cleanup;
	}
	if (!json_is_array(paths) || json_array_size(paths) < 1 ||
	    json_array_size(paths) > SNAPSHOTS_PATHS_MAX) {
		http_reply_error(rep, 400, "field 'paths' must be an array of "
				 "1 to %d paths", SNAPSHOTS_PATHS_MAX);
		goto cleanup;
	}
	json_array_foreach(paths, i, item) {
		if (!json_is_string(item) || json_string_length(item) < 1 ||
		    json_string_length(item) > SNAPSHOTS_PATH_MAX ||
		    json_string_value(item)[0] != '/') {
			http_reply_error(rep, 400, "paths[%zu] must be an "
					 "absolute path", i);
			goto cleanup;
		}
	}
	ex.client = req->who->name;
	ex.bytes = 0;
	rc = snapshots_paths_digest(paths, &ex.paths);
	if (rc == 0)
		rc = snapshots_foreach(ctx->snapshots, routes_expect_cb, &ex);
	if (rc == 0)
		rc = sessions_open(ctx->sessions, req->who->name,
				   json_string_value(host), paths, cfg, ex.bytes,
				   id, &replaced);
	if (replaced)
		log_info("client '%s': %u backup(s) in progress closed: %s",
			 req->who->name, replaced, SESSIONS_REPLACED);
	if (rc == -EAGAIN)
		http_reply_error(rep, 429, "%s", log_reason(rc));
	else if (rc < 0)
		routes_fail(rep, rc);
	else
		http_reply_json(rep, 201, json_pack("{s:s, s:I}", "id", id,
						    "expected_bytes",
						    (json_int_t)ex.bytes));
cleanup:
	json_decref(body);
}

void route_session_list(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;

	http_reply_json(rep, 200, sessions_list(ctx->sessions, req->who->name,
						req->who->admin));
}

void route_session_get(void *payload, const struct http_request *req,
		       struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	json_t *j = sessions_get(ctx->sessions, req->param, req->who->name,
				 req->who->admin);

	if (!j)
		http_reply_error(rep, 404, "unknown session");
	else
		http_reply_json(rep, 200, j);
}

/* An optional count field: -1 when absent; false after a 400. */
static bool routes_count_field(json_t *o, const char *key, int64_t *out,
			       struct http_reply *rep)
{
	json_t *v = json_object_get(o, key);

	*out = -1;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		http_reply_error(rep, 400, "field '%s' must be an integer >= 0",
				 key);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

void route_session_update(void *payload,
			  const struct http_request *req,
			  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct sessions_progress p;
	json_t *body, *state, *phase, *err;
	char why[SESSIONS_ERROR_MAX + 1];
	const char *ph = NULL;
	size_t i;
	int rc;

	if (!routes_json_body(req, rep, &body))
		return;
	state = json_object_get(body, "state");
	phase = json_object_get(body, "phase");
	err = json_object_get(body, "error");
	if (state && !(json_is_string(state) &&
		       (strcmp(json_string_value(state), "running") == 0 ||
			strcmp(json_string_value(state), "failed") == 0))) {
		http_reply_error(rep, 400, "field 'state' must be \"running\" "
				 "or \"failed\"");
		goto cleanup;
	}
	if (phase) {
		ph = json_is_string(phase) ? json_string_value(phase) : "";
		for (i = 0; ph[i]; i++)
			if (!(ph[i] >= 'a' && ph[i] <= 'z') && ph[i] != '-')
				break;
		if (i == 0 || ph[i] || i > 15) {
			http_reply_error(rep, 400, "field 'phase' must be 1 to "
					 "15 of [a-z-]");
			goto cleanup;
		}
	}
	if (err && (!json_is_string(err) ||
		    json_string_length(err) > SESSIONS_ERROR_MAX)) {
		http_reply_error(rep, 400, "field 'error' must be a string of "
				 "at most %d bytes", SESSIONS_ERROR_MAX);
		goto cleanup;
	}
	if (!routes_count_field(body, "files", &p.files, rep) ||
	    !routes_count_field(body, "bytes_done", &p.bytes_done, rep) ||
	    !routes_count_field(body, "bytes_new", &p.bytes_new, rep) ||
	    !routes_count_field(body, "bytes_sent", &p.bytes_sent, rep))
		goto cleanup;
	p.phase = ph;
	if (state && strcmp(json_string_value(state), "failed") == 0) {
		log_sanitize(why, sizeof(why),
			     err ? json_string_value(err) : "failed",
			     (size_t)-1);
		rc = sessions_end(ctx->sessions, req->param, req->who->name,
				  false, why);
		if (rc == 0) {
			http_reply_json(rep, 200, json_pack("{s:s, s:s}", "id",
							    req->param, "state",
							    "failed"));
			goto cleanup;
		}
	} else {
		rc = sessions_update(ctx->sessions, req->param, req->who->name,
				     &p);
		if (rc == 0) {
			route_session_get(payload, req, rep);
			goto cleanup;
		}
	}
	http_reply_error(rep, 404, "unknown session");
cleanup:
	json_decref(body);
}

void route_snapshot_delete(void *payload,
			   const struct http_request *req,
			   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	int rc;

	dd_error_clear();
	rc = snapshots_remove(ctx->snapshots, req->param);
	if (rc == -ENOENT) {
		http_reply_error(rep, 404, "unknown snapshot");
		return;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	log_info("snapshot %s removed by '%s'", req->param, req->who->name);
	http_reply_json(rep, 200, json_pack("{s:s}", "removed", req->param));
}
