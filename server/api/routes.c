/*
 * routes.c - the route table (docs/API.md), what every route file shares
 * (errors, ids, the caller's dedup domain) and the web page's files.
 */
#include "routes_impl.h"

/* 500 for internal failures, 507 for a full disk, 503 for what passes
 * (the index being reopened), with the reason. Storage that did not
 * answer in time (backend_unavailable) is a 503 with Retry-After: the
 * agent waits and sends the request again. */
void routes_fail(struct http_reply *rep, int rc)
{
	if (rc == -ENOSPC || rc == -EDQUOT)
		http_reply_error(rep, 507, "repository disk is full: %s",
				 log_reason(rc));
	else if (rc == -ENOMEM)
		http_reply_error(rep, 503, "out of memory");
	else if (rc == -EAGAIN)
		http_reply_error(rep, 503, "%s", log_reason(rc));
	else if (backend_unavailable(rc)) {
		http_reply_error(rep, 503, "storage unavailable: %s",
				 log_reason(rc));
		rep->retry_after = ROUTES_STORE_RETRY;
	} else
		http_reply_error(rep, 500, "%s", log_reason(rc));
}

bool routes_fence_ok(struct routes_ctx *ctx, struct http_reply *rep)
{
	int rc = frontends_fenced(ctx->fronts);

	if (rc == 0)
		return true;
	http_reply_error(rep, 503, "%s", log_reason(rc));
	rep->retry_after = ROUTES_FENCE_RETRY;
	return false;
}

/* N x 32-byte ids, 1 <= N <= DD_MAX_IDS_PER_QUERY; false after a 400. */
bool routes_ids(const struct http_request *req, struct http_reply *rep,
		size_t *n)
{
	if (req->body_len == 0 || req->body_len % DD_ID_LEN != 0 ||
	    req->body_len / DD_ID_LEN > DD_MAX_IDS_PER_QUERY) {
		http_reply_error(rep, 400, "body must be 1 to %u ids of %d "
				 "bytes each", DD_MAX_IDS_PER_QUERY, DD_ID_LEN);
		return false;
	}
	*n = req->body_len / DD_ID_LEN;
	return true;
}

void routes_id_at(struct dd_id *id, const struct http_request *req,
		  size_t i)
{
	memcpy(id->b, req->body + i * DD_ID_LEN, DD_ID_LEN);
}

/* The dedup domain of the client making the request, in *buf; NULL when
 * no client ever had one (clients.json): then every chunk is the default
 * domain's and domains_lookup() is a plain store_lookup(), as fast as it
 * was before domains existed. */
const struct domains_tag *routes_domain(struct routes_ctx *ctx,
					const struct http_request *req,
					struct domains_tag *buf)
{
	if (!tokens_domains_used(ctx->tokens))
		return NULL;
	/* what the store caches from a shared index depends on it */
	store_domains_note(ctx->store);
	domains_tag_of(buf, req->who->domain[0] ? req->who->domain :
			    TOKENS_DEFAULT_DOMAIN);
	return buf;
}

/* The domain whose chunks the request may read (GET /chunks/ID, /chunks/
 * fetch): a client reads only what its own domain holds, as
 * /chunks/missing tells it (docs/SECURITY.md, "Dedup domains"; after an
 * index rebuild the memberships come back from the snapshots, regrant.h,
 * so a client's own snapshots stay readable); an admin reads every chunk
 * (NULL), as it may restore any client's snapshot. */
const struct domains_tag *routes_read_domain(struct routes_ctx *ctx,
					     const struct http_request *req,
					     struct domains_tag *buf)
{
	return req->who->admin ? NULL : routes_domain(ctx, req, buf);
}

/* ---- the table ---- */

#define API DD_API_PREFIX

/* auth: any valid token; admin: an admin token (403 for a client). What a
 * client token sees of each route is decided in its handler. */
const struct http_route routes_table[] = {
	{ .method = "GET", .path = API "/health", .fn = route_health },
	{ .method = "GET", .path = API "/config", .auth = true,
	  .fn = route_config },
	{ .method = "POST", .path = API "/chunks/missing", .auth = true,
	  .body_cap = ROUTES_IDS_CAP, .fn = route_missing },
	{ .method = "POST", .path = API "/chunks/fetch", .auth = true,
	  .body_cap = ROUTES_IDS_CAP, .fn = route_fetch },
	{ .method = "POST", .path = API "/chunks", .auth = true,
	  .body_cap = DD_MAX_UPLOAD_BODY, .fn = route_upload },
	{ .method = "GET", .path = API "/chunks/", .prefix = true,
	  .auth = true, .fn = route_chunk },
	{ .method = "POST", .path = API "/snapshots", .auth = true,
	  .body_cap = DD_MAX_JSON_BODY, .fn = route_snapshot_create },
	{ .method = "GET", .path = API "/snapshots", .auth = true,
	  .fn = route_snapshot_list },
	{ .method = "GET", .path = API "/snapshots/", .prefix = true,
	  .auth = true, .fn = route_snapshot_get },
	{ .method = "DELETE", .path = API "/snapshots/", .prefix = true,
	  .auth = true, .admin = true, .fn = route_snapshot_delete },
	{ .method = "POST", .path = API "/prune", .auth = true, .admin = true,
	  .body_cap = DD_MAX_JSON_BODY, .fn = route_prune },
	{ .method = "POST", .path = API "/gc", .auth = true, .admin = true,
	  .body_cap = ROUTES_SESSION_CAP, .fn = route_gc },
	{ .method = "GET", .path = API "/stats", .auth = true,
	  .fn = route_stats },
	{ .method = "GET", .path = API "/clients", .auth = true,
	  .admin = true, .fn = route_clients },
	{ .method = "GET", .path = API "/history", .auth = true,
	  .fn = route_history },
	{ .method = "POST", .path = API "/sessions", .auth = true,
	  .body_cap = ROUTES_SESSION_CAP, .fn = route_session_open },
	{ .method = "GET", .path = API "/sessions", .auth = true,
	  .fn = route_session_list },
	{ .method = "GET", .path = API "/sessions/", .prefix = true,
	  .auth = true, .fn = route_session_get },
	{ .method = "POST", .path = API "/sessions/", .prefix = true,
	  .auth = true, .body_cap = ROUTES_SESSION_CAP,
	  .fn = route_session_update },
	/* Restore from the browser (routes_browse.c): a download is
	 * opened by its ticket, not a token. */
	{ .method = "GET", .path = API "/tree/", .prefix = true,
	  .auth = true, .fn = route_browse_tree },
	{ .method = "POST", .path = API "/tickets/", .prefix = true,
	  .auth = true, .body_cap = ROUTES_SESSION_CAP,
	  .fn = route_browse_ticket },
	{ .method = "GET", .path = API "/download/", .prefix = true,
	  .fn = route_browse_download },
	{ .method = "GET", .path = "/metrics", .auth = true, .admin = true,
	  .fn = route_metrics },
	{ .method = "GET", .path = API "/sync", .auth = true, .admin = true,
	  .fn = route_sync },
	/* last, so that the fuzzing seeds' route numbers stay */
	{ .method = "POST", .path = API "/chunks/check", .auth = true,
	  .body_cap = ROUTES_IDS_CAP, .fn = route_check },
};

const size_t routes_count = DD_ARRAY_SIZE(routes_table);

void routes_fallback(void *payload, const struct http_request *req,
		     struct http_reply *rep)
{
	const char *path = req->url;
	const struct dd_web_asset *a;

	(void)payload;
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	/* Browsers ask for /favicon.ico whatever the page links: the same
	 * icon, so no view logs a 404. */
	if (strcmp(path, "/favicon.ico") == 0)
		path = "/favicon.svg";
	if (strncmp(path, "/api/", 5) != 0) {
		for (a = dd_web_assets; a->path; a++) {
			if (strcmp(a->path, path) != 0)
				continue;
			if (strcmp(req->method, "GET") != 0 &&
			    strcmp(req->method, "HEAD") != 0) {
				http_reply_error(rep, 405, "method not allowed");
				return;
			}
			http_reply_static(rep, 200, a->content_type, a->data,
					  a->len);
			rep->cacheable = true;
			return;
		}
	}
	http_reply_error(rep, 404, "not found");
}
