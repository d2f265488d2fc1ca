/*
 * routes.c - see routes.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "bundle.h"
#include "domains.h"
#include "gc.h"
#include "log.h"
#include "prune.h"
#include "proto.h"
#include "routes.h"
#include "web_assets.h"

#define ROUTES_OCTETS "application/octet-stream"
#define ROUTES_IDS_CAP ((size_t)DD_MAX_IDS_PER_QUERY * DD_ID_LEN)
/* Session bodies: a host, paths, a few numbers. */
#define ROUTES_SESSION_CAP (64u * 1024)
#define ROUTES_HISTORY_DEFAULT 30
#define ROUTES_HISTORY_MAX 3650

/* 500 for internal failures, 507 for a full disk, 503 for what passes
 * (the index being reopened), with the reason. */
static void routes_fail(struct http_reply *rep, int rc)
{
	if (rc == -ENOSPC || rc == -EDQUOT)
		http_reply_error(rep, 507, "repository disk is full: %s",
				 log_reason(rc));
	else if (rc == -ENOMEM)
		http_reply_error(rep, 503, "out of memory");
	else if (rc == -EAGAIN)
		http_reply_error(rep, 503, "%s", log_reason(rc));
	else
		http_reply_error(rep, 500, "%s", log_reason(rc));
}

/* N x 32-byte ids, 1 <= N <= DD_MAX_IDS_PER_QUERY; false after a 400. */
static bool routes_ids(const struct http_request *req, struct http_reply *rep,
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

static void routes_id_at(struct dd_id *id, const struct http_request *req,
			 size_t i)
{
	memcpy(id->b, req->body + i * DD_ID_LEN, DD_ID_LEN);
}

/* ---- GET /api/v1/health ---- */

/* Free and total bytes of the file system holding the repository. */
static int routes_disk(const struct routes_ctx *ctx, uint64_t *free_b,
		       uint64_t *total_b, bool *read_only)
{
	struct statvfs vfs;

	if (statvfs(ctx->repo, &vfs) < 0)
		return -errno;
	*free_b = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	*total_b = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	*read_only = (vfs.f_flag & ST_RDONLY) != 0;
	return 0;
}

/* Can new chunks and snapshots be written? The directories exist and are
 * writable, the file system is not read-only and has room, and the index
 * takes writes. false with the reason in `why`. */
static bool routes_writable(const struct routes_ctx *ctx, char *why,
			    size_t whysz)
{
	static const char *const dirs[] = { REPO_PACKS, REPO_SNAPSHOTS,
					    REPO_INDEX };
	char path[4200];
	uint64_t free_b = 0, total_b = 0;
	bool ro = true;
	size_t i;

	for (i = 0; i < DD_ARRAY_SIZE(dirs); i++) {
		if (repo_path(path, sizeof(path), ctx->repo, dirs[i]) < 0 ||
		    access(path, W_OK | X_OK) < 0) {
			snprintf(why, whysz, "cannot write to the "
				 "repository's %s/", dirs[i]);
			return false;
		}
	}
	if (routes_disk(ctx, &free_b, &total_b, &ro) < 0 || ro) {
		snprintf(why, whysz, "the repository file system is "
			 "read-only");
		return false;
	}
	if (free_b == 0) {
		snprintf(why, whysz, "the repository disk is full");
		return false;
	}
	return store_index_health(ctx->store, why, whysz) == 0;
}

/* Liveness and writability. Always 200 while the server serves (reads and
 * restores go on when it cannot write); "status" says "degraded" and
 * "reason" why when new backups cannot be written. */
static void route_health(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char why[600] = "";
	bool w = routes_writable(ctx, why, sizeof(why));
	char *abs = realpath(ctx->repo, NULL);
	json_t *j;

	(void)req;
	/* "repository" lets the sign-in hint print a token command that works
	 * as written; docs/SECURITY.md says why showing it is acceptable. */
	j = json_pack("{s:s, s:b, s:s, s:b, s:s}", "status",
		      w ? "ok" : "degraded", "up", 1, "version", DD_VERSION,
		      "writable", w, "repository", abs ? abs : ctx->repo);
	free(abs);
	if (j && !w)
		json_object_set_new(j, "reason", json_string(why));
	http_reply_json(rep, 200, j);
}

/* ---- GET /api/v1/config ---- */

static void route_config(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct repo_config *c = &ctx->config;
	char seed[17];

	(void)req;
	snprintf(seed, sizeof(seed), "%016llx",
		 (unsigned long long)c->chunker.seed);
	http_reply_json(rep, 200, json_pack(
		"{s:i, s:s, s:{s:I, s:I, s:I, s:s}, "
		"s:{s:I, s:I, s:I, s:I, s:I}}",
		"format", REPO_FORMAT,
		"repo_id", c->repo_id,
		"chunker",
		"min_size", (json_int_t)c->chunker.min_size,
		"avg_size", (json_int_t)c->chunker.avg_size,
		"max_size", (json_int_t)c->chunker.max_size,
		"seed", seed,
		"limits",
		"max_upload_body", (json_int_t)DD_MAX_UPLOAD_BODY,
		"max_upload_plain", (json_int_t)DD_MAX_UPLOAD_PLAIN,
		"max_ids_per_query", (json_int_t)DD_MAX_IDS_PER_QUERY,
		"max_fetch_response", (json_int_t)DD_MAX_FETCH_RESPONSE,
		"max_json_body", (json_int_t)DD_MAX_JSON_BODY));
}

/* The dedup domain of the client making the request, in *buf; NULL when
 * no client ever had one (clients.json): then every chunk is the default
 * domain's and domains_lookup() is a plain store_lookup(), as fast as it
 * was before domains existed. */
static const struct domains_tag *routes_domain(struct routes_ctx *ctx,
					       const struct http_request *req,
					       struct domains_tag *buf)
{
	if (!tokens_domains_used(ctx->tokens))
		return NULL;
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
static const struct domains_tag *routes_read_domain(struct routes_ctx *ctx,
						    const struct http_request *req,
						    struct domains_tag *buf)
{
	return req->who->admin ? NULL : routes_domain(ctx, req, buf);
}

/* ---- POST /api/v1/chunks/missing ---- */

/* The client's bucket of ids (ratelimit.h); false after a 429. */
static bool routes_missing_allowed(struct routes_ctx *ctx,
				   const struct http_request *req,
				   struct http_reply *rep, size_t n)
{
	unsigned wait = 0;
	int rc;

	rc = ratelimit_take(ctx->missing_limit, req->who->name, (double)n,
			    dd_monotonic(), &wait);
	if (rc == -EAGAIN) {
		http_reply_error(rep, 429, "too many chunk ids asked about: "
				 "at most %u a second (missing_ids_per_second)"
				 "; retry after %u s",
				 ctx->cfg ? ctx->cfg->missing_ids_per_second :
				 0, wait);
		rep->retry_after = wait;
		return false;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		return false;
	}
	return true;
}

/* Answers for the client's domain only: a chunk that another domain
 * stored is "missing" until this client uploads it (domains.h). */
static void route_missing(void *payload, const struct http_request *req,
			  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_chunk_loc loc;
	struct dd_id id;
	uint8_t *bits;
	size_t n, i;
	int rc;

	if (!routes_ids(req, rep, &n))
		return;
	if (!routes_missing_allowed(ctx, req, rep, n))
		return;
	dom = routes_domain(ctx, req, &buf);
	bits = calloc((n + 7) / 8, 1);
	if (!bits) {
		routes_fail(rep, -ENOMEM);
		return;
	}
	for (i = 0; i < n; i++) {
		routes_id_at(&id, req, i);
		rc = domains_lookup(ctx->store, dom, &id, &loc);
		if (rc == -ENOENT) {
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
		} else if (rc < 0) {
			free(bits);
			routes_fail(rep, rc);
			return;
		}
	}
	http_reply_take(rep, 200, ROUTES_OCTETS, bits, (n + 7) / 8);
}

/* ---- per-client storage quota ---- */

/*
 * Whether `client` may store more: its bytes_unique (usage.h: the plain
 * bytes only its snapshots reference) is below its quota_bytes. A client
 * at or over it gets 507 naming both figures; the backup that crosses the
 * quota completes, the next one is refused.
 */
static bool routes_quota_ok(struct routes_ctx *ctx, const char *client,
			    struct http_reply *rep)
{
	struct usage_client *u = NULL;
	uint64_t quota, used = 0;
	size_t n = 0, i;
	int rc;

	quota = ctx->cfg ? config_client_quota(ctx->cfg, client) : 0;
	if (!quota)
		return true;
	rc = usage_get(ctx->usage, ctx->snapshots, ctx->store, &u, &n);
	if (rc < 0) {
		routes_fail(rep, rc);
		return false;
	}
	for (i = 0; i < n; i++)
		if (strcmp(u[i].name, client) == 0)
			used = u[i].bytes_unique;
	free(u);
	if (used < quota)
		return true;
	http_reply_error(rep, 507, "storage quota exceeded: client '%s' uses "
			 "%llu bytes, its quota is %llu bytes (quota_bytes); "
			 "forget old snapshots and collect garbage, or ask "
			 "for a larger quota", client,
			 (unsigned long long)used, (unsigned long long)quota);
	return false;
}

/* ---- POST /api/v1/chunks ---- */

/* Orders record pointers by id, to find a repeated one. */
static int routes_rec_cmp(const void *pa, const void *pb)
{
	const struct dd_bundle_record *a = *(const struct dd_bundle_record *
					     const *)pa;
	const struct dd_bundle_record *b = *(const struct dd_bundle_record *
					     const *)pb;

	return memcmp(a->id.b, b->id.b, DD_ID_LEN);
}

/* 1 and the id in *dup if an id appears twice in recs, 0 if not; -ENOMEM.
 * Sorting pointers costs n log n comparisons, nothing near the
 * decompression a repeat would cost. */
static int routes_bundle_repeat(const struct dd_bundle_record *recs,
				size_t n, struct dd_id *dup)
{
	const struct dd_bundle_record **v;
	size_t i;
	int found = 0;

	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		v[i] = &recs[i];
	qsort(v, n, sizeof(*v), routes_rec_cmp);
	for (i = 1; i < n && !found; i++) {
		if (dd_id_eq(&v[i - 1]->id, &v[i]->id)) {
			*dup = v[i]->id;
			found = 1;
		}
	}
	free(v);
	return found;
}

/*
 * Parses an upload body into *recs (caller frees) without decompressing
 * anything, and refuses what would cost more than it is worth: a bundle
 * that carries one id twice (400, naming it), or whose declared plain
 * bytes add up past DD_MAX_UPLOAD_PLAIN (413). Parsing reads only the
 * record headers, so both are decided before any decompression. 0, or
 * negative after the reply was set.
 */
static int routes_upload_parse(const struct http_request *req,
			       struct http_reply *rep,
			       struct dd_bundle_record **recs, size_t *nrecs)
{
	struct dd_bundle_reader r;
	struct dd_bundle_record *v;
	uint64_t plain = 0;
	struct dd_id dup;
	size_t n = 0;
	int rc;

	*recs = NULL;
	*nrecs = 0;
	rc = dd_bundle_reader_init(&r, req->body, req->body_len);
	if (rc < 0) {
		http_reply_error(rep, 400, "invalid chunk bundle: %s",
				 log_reason(rc));
		return rc;
	}
	/* One spare slot: the call that reports the end gets one too. */
	v = malloc(((size_t)r.count + 1) * sizeof(*v));
	if (!v) {
		routes_fail(rep, -ENOMEM);
		return -ENOMEM;
	}
	for (;;) {
		dd_error_clear();
		rc = dd_bundle_next(&r, &v[n]);
		if (rc == 0)
			break;
		if (rc < 0) {
			http_reply_error(rep, 400, "invalid chunk bundle: "
					 "record %zu: %s", n, log_reason(rc));
			goto fail;
		}
		plain += v[n].plain_len;
		if (++n > r.count) {
			rc = -EBADMSG;
			http_reply_error(rep, 400, "invalid chunk bundle: more "
					 "records than its count");
			goto fail;
		}
	}
	rc = routes_bundle_repeat(v, n, &dup);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto fail;
	}
	if (rc > 0) {
		char hex[DD_ID_HEX_LEN + 1];

		dd_id_to_hex(hex, &dup);
		rc = -EBADMSG;
		http_reply_error(rep, 400, "invalid chunk bundle: chunk %s "
				 "appears more than once; nothing was stored",
				 hex);
		goto fail;
	}
	if (plain > DD_MAX_UPLOAD_PLAIN) {
		rc = -E2BIG;
		http_reply_error(rep, 413, "chunk bundle declares %llu plain "
				 "bytes, more than %u plain bytes per request; "
				 "send fewer chunks per request",
				 (unsigned long long)plain, DD_MAX_UPLOAD_PLAIN);
		goto fail;
	}
	*recs = v;
	*nrecs = n;
	return 0;
fail:
	free(v);
	return rc;
}

static void route_upload(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_bundle_record *recs = NULL;
	struct dd_buf plain;
	struct dd_chunk_loc loc;
	ZSTD_DCtx *dctx = NULL;
	uint32_t stored, dups;
	uint64_t new_plain = 0, new_packed = 0;
	double t0 = dd_monotonic();
	size_t n = 0, i;
	int rc;

	dd_buf_init(&plain, 0);
	if (!routes_quota_ok(ctx, req->who->name, rep))
		goto cleanup;
	if (routes_upload_parse(req, rep, &recs, &n) < 0)
		goto cleanup;
	dctx = ZSTD_createDCtx();
	if (!dctx) {
		routes_fail(rep, -ENOMEM);
		goto cleanup;
	}
	/* Never trust an id: decode and re-hash every record before any of
	 * them is stored. Decoding writes at most plain_len bytes per record
	 * (dd_decompress), and the plain_len sum is capped above. */
	for (i = 0; i < n; i++) {
		rc = store_decode(&plain, &recs[i].id, recs[i].flags,
				  recs[i].plain_len, recs[i].data,
				  recs[i].stored_len, dctx);
		if (rc == -ENOMEM) {
			routes_fail(rep, rc);
			goto cleanup;
		}
		if (rc < 0) {
			http_reply_error(rep, 400, "%s; nothing was stored",
					 log_reason(rc));
			goto cleanup;
		}
	}
	dd_buf_release(&plain);
	/* For the counters: what is new to this client's domain, as far as
	 * the index knows now. The reply, too, counts a chunk that another
	 * domain stored as stored, so it tells nothing about other domains. */
	dom = routes_domain(ctx, req, &buf);
	for (i = 0; i < n; i++) {
		if (domains_lookup(ctx->store, dom, &recs[i].id, &loc) ==
		    -ENOENT) {
			new_plain += recs[i].plain_len;
			new_packed += recs[i].stored_len;
		}
	}
	rc = store_ingest(ctx->store, dom, recs, n, &stored, &dups);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	metrics_ingest(ctx->metrics, dd_monotonic() - t0, stored, dups,
		       new_plain, new_packed);
	sessions_note_upload(ctx->sessions, req->who->name, stored, new_plain,
			     new_packed, req->body_len);
	http_reply_json(rep, 200, json_pack("{s:I, s:I}",
					    "stored", (json_int_t)stored,
					    "duplicates", (json_int_t)dups));
cleanup:
	ZSTD_freeDCtx(dctx);
	dd_buf_release(&plain);
	free(recs);
}

/* ---- GET /api/v1/chunks/<id> ---- */

static void route_chunk(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_chunk_loc loc;
	struct dd_buf plain, scratch;
	struct dd_id id;
	uint8_t *data;
	size_t len;
	int rc;

	if (strlen(req->param) != DD_ID_HEX_LEN ||
	    dd_id_from_hex(&id, req->param) < 0) {
		http_reply_error(rep, 404, "not a chunk id");
		return;
	}
	dd_buf_init(&plain, 0);
	dd_buf_init(&scratch, 0);
	/* Another domain's chunk is answered exactly as an absent one. */
	dom = routes_read_domain(ctx, req, &buf);
	rc = dom ? domains_lookup(ctx->store, dom, &id, &loc) : 0;
	if (rc == 0)
		rc = store_read_plain(ctx->store, &id, &plain, &scratch, NULL);
	dd_buf_release(&scratch);
	if (rc == -ENOENT) {
		char hex[DD_ID_HEX_LEN + 1];

		dd_id_to_hex(hex, &id);
		http_reply_error(rep, 404, "unknown chunk %s", hex);
	} else if (rc < 0) {
		routes_fail(rep, rc);
	} else {
		data = dd_buf_detach(&plain, &len);
		http_reply_take(rep, 200, ROUTES_OCTETS, data, len);
	}
	dd_buf_release(&plain);
}

/* ---- POST /api/v1/chunks/fetch ---- */

static void route_fetch(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_chunk_loc *locs = NULL;
	struct dd_buf out, stored, plain;
	ZSTD_DCtx *dctx = NULL;
	struct dd_id id;
	char hex[DD_ID_HEX_LEN + 1];
	uint64_t total = DD_BUNDLE_HEADER_LEN;
	uint8_t *data;
	size_t n, i, len;
	int rc;

	dd_buf_init(&out, DD_MAX_FETCH_RESPONSE);
	dd_buf_init(&stored, 0);
	dd_buf_init(&plain, 0);
	if (!routes_ids(req, rep, &n))
		return;
	locs = malloc(n * sizeof(*locs));
	dctx = ZSTD_createDCtx();
	if (!locs || !dctx) {
		routes_fail(rep, -ENOMEM);
		goto cleanup;
	}
	/* Know every id and the reply's size before reading a byte; another
	 * domain's chunk is answered exactly as an absent one. */
	dom = routes_read_domain(ctx, req, &buf);
	for (i = 0; i < n; i++) {
		routes_id_at(&id, req, i);
		rc = domains_lookup(ctx->store, dom, &id, &locs[i]);
		if (rc == -ENOENT) {
			dd_id_to_hex(hex, &id);
			http_reply_error(rep, 404, "unknown chunk %s", hex);
			goto cleanup;
		}
		if (rc < 0) {
			routes_fail(rep, rc);
			goto cleanup;
		}
		total += DD_BUNDLE_RECORD_HEADER_LEN + locs[i].stored_len;
	}
	if (total > DD_MAX_FETCH_RESPONSE) {
		http_reply_error(rep, 413, "reply would be %llu bytes, more than "
				 "the limit of %u; ask for fewer chunks",
				 (unsigned long long)total,
				 DD_MAX_FETCH_RESPONSE);
		goto cleanup;
	}
	rc = dd_buf_reserve(&out, (size_t)total);
	if (rc == 0)
		rc = dd_bundle_begin(&out);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		routes_id_at(&id, req, i);
		rc = store_read_stored(ctx->store, &id, &locs[i], &stored);
		if (rc == 0)
			rc = store_decode(&plain, &id, locs[i].flags,
					  locs[i].plain_len, stored.data,
					  stored.len, dctx);
		if (rc == -EBADMSG)   /* damaged: make it missing (store.h) */
			store_forget(ctx->store, &id, &locs[i]);
		if (rc == 0)
			rc = dd_bundle_add(&out, &id, locs[i].flags,
					   locs[i].plain_len, stored.data,
					   (uint32_t)stored.len);
		if (rc < 0) {
			routes_fail(rep, rc);
			goto cleanup;
		}
	}
	rc = dd_bundle_finish(&out);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	data = dd_buf_detach(&out, &len);
	http_reply_take(rep, 200, ROUTES_OCTETS, data, len);
cleanup:
	ZSTD_freeDCtx(dctx);
	free(locs);
	dd_buf_release(&out);
	dd_buf_release(&stored);
	dd_buf_release(&plain);
}

/* ---- snapshots ---- */

/* A session id from ?session=: 32 lowercase hex digits. */
static bool routes_session_id_ok(const char *id)
{
	size_t i;

	if (strlen(id) != SESSIONS_ID_LEN)
		return false;
	for (i = 0; i < SESSIONS_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
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

static void route_snapshot_create(void *payload,
				  const struct http_request *req,
				  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const char *session = http_request_arg(req, "session");
	const char *client = req->who->name;
	struct domains_tag dom;
	char *text = NULL, why[SESSIONS_ERROR_MAX + 1];
	json_t *m;
	size_t len = 0;
	int rc;

	if (session && !routes_session_id_ok(session)) {
		http_reply_error(rep, 400, "invalid session id");
		return;
	}
	if (!routes_quota_ok(ctx, client, rep)) {
		routes_backup_ended(ctx, client, session, false,
				    "snapshot refused: storage quota exceeded");
		return;
	}
	rc = snapshots_create(ctx->snapshots, ctx->store,
			      routes_domain(ctx, req, &dom), client, req->body,
			      req->body_len, &text, &len);
	if (rc < 0) {
		snprintf(why, sizeof(why), "snapshot refused: %s",
			 log_reason(rc));
		if (rc == -EDQUOT)
			http_reply_error(rep, 507, "%s", log_reason(rc));
		else if (rc == -EINVAL)
			http_reply_error(rep, 400, "%s", log_reason(rc));
		else if (rc == -ENOENT)
			http_reply_error(rep, 409, "%s", log_reason(rc));
		else
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
static bool routes_client_arg(const struct http_request *req,
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

static void route_snapshot_list(void *payload, const struct http_request *req,
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

static void route_snapshot_get(void *payload, const struct http_request *req,
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

/* ---- GET /api/v1/stats ---- */

/*
 * A client token sees its own figures only, domains or not: its
 * snapshots, their logical and catalog bytes, the bytes only it
 * references (usage.h, what its quota counts), its quota and its own
 * backups in progress. The store's counters (chunks, packs, unique and
 * stored bytes, disk space) and the clients count would tell whether an
 * upload was written or was already there, stored by someone else.
 */
struct routes_own {
	const char *client;
	uint64_t snapshots, logical, catalogs;
};

static int routes_own_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_own *o = payload;

	if (strcmp(it->client, o->client) == 0) {
		o->snapshots++;
		o->logical += it->bytes_total;
		o->catalogs += it->catalog_bytes;
	}
	return 0;
}

static void routes_stats_client(struct routes_ctx *ctx, const char *client,
				struct http_reply *rep)
{
	struct routes_own o = { .client = client };
	struct usage_client *u = NULL;
	uint64_t only = 0, quota;
	size_t n = 0, i;
	json_t *j;
	int rc;

	rc = snapshots_foreach(ctx->snapshots, routes_own_cb, &o);
	if (rc == 0)
		rc = usage_get(ctx->usage, ctx->snapshots, ctx->store, &u, &n);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	for (i = 0; i < n; i++)
		if (strcmp(u[i].name, client) == 0)
			only = u[i].bytes_unique;
	free(u);
	quota = ctx->cfg ? config_client_quota(ctx->cfg, client) : 0;
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:I}",
		      "scope", "client", "client", client,
		      "snapshots", (json_int_t)o.snapshots,
		      "bytes_logical", (json_int_t)o.logical,
		      "bytes_catalog", (json_int_t)o.catalogs,
		      "bytes_only_client", (json_int_t)only,
		      "quota_bytes", quota ? json_integer((json_int_t)quota)
					   : json_null(),
		      "backups_in_progress",
		      (json_int_t)sessions_active(ctx->sessions, client));
	http_reply_json(rep, 200, j);
}

static void route_stats(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	json_t *j;
	uint64_t snaps, logical, catalogs, chunks, unique, packs = 0;
	uint64_t stored = 0, disk_free = 0, disk_total = 0;
	bool ro;
	int rc;

	if (!req->who->admin) {
		routes_stats_client(ctx, req->who->name, rep);
		return;
	}
	snapshots_totals(ctx->snapshots, &snaps, &logical, &catalogs);
	store_counters(ctx->store, &chunks, &unique);
	rc = store_pack_usage(ctx->store, &packs, &stored);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	rc = routes_disk(ctx, &disk_free, &disk_total, &ro);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	/* The ratio counts the catalogs on both sides: they are stored as
	 * chunks too, so a first backup reads 1.00, not below. */
	j = json_pack(
		"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, "
		"s:I, s:I}",
		"scope", "repository",
		"snapshots", (json_int_t)snaps,
		"chunks", (json_int_t)chunks,
		"packs", (json_int_t)packs,
		"clients", (json_int_t)tokens_count(ctx->tokens),
		"bytes_logical", (json_int_t)logical,
		"bytes_catalog", (json_int_t)catalogs,
		"bytes_unique", (json_int_t)unique,
		"bytes_stored", (json_int_t)stored,
		"dedup_ratio", unique ? (double)(logical + catalogs) /
			(double)unique : 0.0,
		"compression_ratio",
		stored ? (double)unique / (double)stored : 0.0,
		"disk_free", (json_int_t)disk_free,
		"disk_total", (json_int_t)disk_total,
		"backups_in_progress",
		(json_int_t)sessions_active(ctx->sessions, NULL));
	http_reply_json(rep, 200, j);
}

/* ---- per-client summaries from the manifests ---- */

struct routes_client_sum {
	char name[DD_CLIENT_NAME_MAX + 1];
	uint64_t snapshots;
	char last_id[DD_ID_HEX_LEN + 1];   /* "" when none */
	int64_t last_start;                /* unix_time of the last one */
	int64_t last_written;              /* unix seconds, server clock */
	uint64_t last_total, last_new;
};

struct routes_sums {
	struct routes_client_sum *v;
	size_t n, alloc;
};

static struct routes_client_sum *routes_sum_get(struct routes_sums *s,
						const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return &s->v[i];
	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 16;
		struct routes_client_sum *v = realloc(s->v, na * sizeof(*v));

		if (!v)
			return NULL;
		s->v = v;
		s->alloc = na;
	}
	memset(&s->v[s->n], 0, sizeof(s->v[0]));
	snprintf(s->v[s->n].name, sizeof(s->v[0].name), "%s", name);
	return &s->v[s->n++];
}

static int routes_sum_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_client_sum *c = routes_sum_get(payload, it->client);

	if (!c)
		return -ENOMEM;
	/* Oldest first: the last one seen is the latest. */
	c->snapshots++;
	snprintf(c->last_id, sizeof(c->last_id), "%s", it->id);
	c->last_start = it->unix_time;
	c->last_written = it->written_ns / 1000000000;
	c->last_total = it->bytes_total;
	c->last_new = it->bytes_new;
	return 0;
}

/* Every client with snapshots, plus every client in the token table. */
static int routes_sums(struct routes_ctx *ctx, struct routes_sums *out,
		       struct tokens_list *tl)
{
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = tokens_copy(ctx->tokens, tl);
	if (rc == 0)
		rc = snapshots_foreach(ctx->snapshots, routes_sum_cb, out);
	for (i = 0; rc == 0 && i < tl->n; i++)
		if (!routes_sum_get(out, tl->v[i].name))
			rc = -ENOMEM;
	if (rc < 0) {
		free(out->v);
		memset(out, 0, sizeof(*out));
		tokens_list_release(tl);
	}
	return rc;
}

static int routes_sum_cmp(const void *a, const void *b)
{
	const struct routes_client_sum *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* ---- GET /api/v1/clients (admin) ---- */

static json_t *routes_time_or_null(int64_t t)
{
	char buf[32];

	if (t <= 0)
		return json_null();
	dd_format_time(buf, t);
	return json_string(buf);
}

/* "quota_bytes" (null: none), "quota_used_percent", "over_quota",
 * "snapshots_limit" (null: none). */
static void routes_client_limits(struct routes_ctx *ctx, json_t *o,
				 const char *name, uint64_t used)
{
	uint64_t quota = ctx->cfg ? config_client_quota(ctx->cfg, name) : 0;
	unsigned limit = ctx->cfg ? ctx->cfg->max_snapshots_per_client : 0;

	json_object_set_new(o, "quota_bytes", quota ?
			    json_integer((json_int_t)quota) : json_null());
	json_object_set_new(o, "quota_used_percent", quota ?
			    json_real(100.0 * (double)used / (double)quota) :
			    json_null());
	json_object_set_new(o, "over_quota", json_boolean(quota &&
							  used >= quota));
	json_object_set_new(o, "snapshots_limit", limit ?
			    json_integer(limit) : json_null());
}

static json_t *routes_client_json(struct routes_ctx *ctx,
				  const struct routes_client_sum *c,
				  const struct tokens_list *tl,
				  const struct usage_client *u, size_t nu,
				  int64_t now)
{
	struct sessions_result res;
	const struct tokens_client *tc = NULL;
	const struct usage_client *uc = NULL;
	bool have_res, stale;
	int64_t age = c->snapshots ? now - c->last_written : -1;
	json_t *o;
	ssize_t at;
	size_t i;

	at = tokens_list_find(tl, c->name);
	if (at >= 0)
		tc = &tl->v[at];
	for (i = 0; i < nu; i++)
		if (strcmp(u[i].name, c->name) == 0)
			uc = &u[i];
	have_res = sessions_last_result(ctx->sessions, c->name, &res);
	if (age < 0 && c->snapshots)
		age = 0;
	/* An admin token that never backed up is someone's browser, not a
	 * machine that stopped backing up. */
	stale = c->snapshots ? age > (int64_t)ctx->stale_after
			     : !(tc && tc->admin);
	o = json_pack("{s:s, s:o, s:b, s:o, s:I, s:o, s:o, s:o, s:o, s:o, "
		      "s:o, s:b, s:I, s:I, s:I}",
		      "name", c->name,
		      "role", tc ? json_string(tc->admin ? "admin" : "client")
				 : json_null(),
		      "revoked", !tc,
		      "created", tc && tc->created[0] ?
				 json_string(tc->created) : json_null(),
		      "snapshots", (json_int_t)c->snapshots,
		      "last_snapshot", c->snapshots ? json_string(c->last_id)
						    : json_null(),
		      "last_backup_time", routes_time_or_null(
			      c->snapshots ? c->last_written : 0),
		      "last_backup_unix", c->snapshots ?
			      json_integer(c->last_written) : json_null(),
		      "last_backup_age_seconds", c->snapshots ?
			      json_integer(age) : json_null(),
		      "last_backup_bytes_total", c->snapshots ?
			      json_integer((json_int_t)c->last_total) :
			      json_null(),
		      "last_backup_bytes_new", c->snapshots ?
			      json_integer((json_int_t)c->last_new) :
			      json_null(),
		      "stale", stale,
		      "in_progress",
		      (json_int_t)sessions_active(ctx->sessions, c->name),
		      "bytes_unique", (json_int_t)(uc ? uc->bytes_unique : 0),
		      "chunks_unique", (json_int_t)(uc ? uc->chunks_unique : 0));
	if (!o)
		return NULL;
	routes_client_limits(ctx, o, c->name, uc ? uc->bytes_unique : 0);
	/* The result of the last attempt this server saw, else what the
	 * snapshots on disk say. */
	if (have_res) {
		json_object_set_new(o, "last_result",
				    json_string(res.ok ? "ok" : "failed"));
		json_object_set_new(o, "last_result_time",
				    routes_time_or_null(res.time));
		json_object_set_new(o, "last_error", res.ok ? json_null() :
				    json_string(res.error));
	} else {
		json_object_set_new(o, "last_result", c->snapshots ?
				    json_string("ok") : json_null());
		json_object_set_new(o, "last_result_time", routes_time_or_null(
					    c->snapshots ? c->last_written : 0));
		json_object_set_new(o, "last_error", json_null());
	}
	return o;
}

static void route_clients(void *payload, const struct http_request *req,
			  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_sums sums;
	struct tokens_list tl = { NULL, 0, false };
	struct usage_client *u = NULL;
	size_t nu = 0, i;
	int64_t now = dd_now();
	json_t *arr = NULL, *o;
	int rc;

	(void)req;
	rc = routes_sums(ctx, &sums, &tl);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	rc = usage_get(ctx->usage, ctx->snapshots, ctx->store, &u, &nu);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	if (sums.n)   /* qsort(NULL, 0, ...) is undefined */
		qsort(sums.v, sums.n, sizeof(sums.v[0]), routes_sum_cmp);
	arr = json_array();
	for (i = 0; arr && i < sums.n; i++) {
		o = routes_client_json(ctx, &sums.v[i], &tl, u, nu, now);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	http_reply_json(rep, 200, arr ? json_pack("{s:I, s:I, s:o}",
		"now", (json_int_t)now,
		"stale_after_seconds", (json_int_t)ctx->stale_after,
		"clients", arr) : NULL);
cleanup:
	free(u);
	free(sums.v);
	tokens_list_release(&tl);
}

/* ---- GET /api/v1/history ---- */

struct routes_day {
	uint64_t snapshots, ingested, new_bytes, stored;
};

struct routes_history {
	const char *client;         /* NULL: all */
	int64_t first, today;       /* day numbers (unix days) */
	struct routes_day *days;
	struct routes_day before;
};

static int routes_history_cb(void *payload, const struct snapshots_item *it)
{
	struct routes_history *h = payload;
	struct routes_day *d;
	int64_t day = it->written_ns / 1000000000 / 86400;

	if (h->client && strcmp(h->client, it->client) != 0)
		return 0;
	if (day > h->today)
		day = h->today;
	d = day < h->first ? &h->before : &h->days[day - h->first];
	d->snapshots++;
	d->ingested += it->bytes_total;
	d->new_bytes += it->bytes_new;
	d->stored += it->bytes_sent;
	return 0;
}

static void route_history(void *payload, const struct http_request *req,
			  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_history h;
	const char *days_s = http_request_arg(req, "days"), *only;
	uint64_t ndays = ROUTES_HISTORY_DEFAULT, tot_in, tot_st;
	json_t *arr;
	int64_t i;
	int rc;

	if (!routes_client_arg(req, rep, &only))
		return;
	if (days_s && (dd_parse_u64(days_s, &ndays) < 0 || ndays < 1 ||
		       ndays > ROUTES_HISTORY_MAX)) {
		http_reply_error(rep, 400, "days must be 1 to %d",
				 ROUTES_HISTORY_MAX);
		return;
	}
	memset(&h, 0, sizeof(h));
	h.client = only ? only : req->who->admin ? NULL : req->who->name;
	h.today = dd_now() / 86400;
	h.first = h.today - (int64_t)ndays + 1;
	h.days = calloc(ndays, sizeof(*h.days));
	if (!h.days) {
		routes_fail(rep, -ENOMEM);
		return;
	}
	rc = snapshots_foreach(ctx->snapshots, routes_history_cb, &h);
	if (rc < 0) {
		free(h.days);
		routes_fail(rep, rc);
		return;
	}
	tot_in = h.before.ingested;
	tot_st = h.before.stored;
	arr = json_array();
	for (i = 0; arr && i < (int64_t)ndays; i++) {
		const struct routes_day *d = &h.days[i];
		time_t t = (time_t)((h.first + i) * 86400);
		struct tm tm;
		char date[16];

		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		tot_in += d->ingested;
		tot_st += d->stored;
		if (json_array_append_new(arr, json_pack(
			    "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
			    "date", date,
			    "snapshots", (json_int_t)d->snapshots,
			    "bytes_ingested", (json_int_t)d->ingested,
			    "bytes_new", (json_int_t)d->new_bytes,
			    "bytes_stored", (json_int_t)d->stored,
			    "total_ingested", (json_int_t)tot_in,
			    "total_stored", (json_int_t)tot_st)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(h.days);
	http_reply_json(rep, 200, arr ? json_pack("{s:o, s:o}",
		"client", h.client ? json_string(h.client) : json_null(),
		"days", arr) : NULL);
}

/* ---- sessions: backups in progress ---- */

/* Parses a JSON object body; false after a 400. */
static bool routes_json_body(const struct http_request *req,
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

static void route_session_open(void *payload, const struct http_request *req,
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

static void route_session_list(void *payload, const struct http_request *req,
			       struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;

	http_reply_json(rep, 200, sessions_list(ctx->sessions, req->who->name,
						req->who->admin));
}

static void route_session_get(void *payload, const struct http_request *req,
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

static void route_session_update(void *payload,
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

/* ---- GET /metrics (admin) ---- */

static int routes_gauge(struct dd_buf *b, const char *name, const char *help,
			double v)
{
	int rc = metrics_header(b, name, "gauge", help);

	return rc ? rc : metrics_sample(b, name, NULL, NULL, v);
}

static void route_metrics(void *payload, const struct http_request *req,
			  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_sums sums;
	struct tokens_list tl = { NULL, 0, false };
	struct dd_buf b;
	char why[600];
	uint64_t snaps, logical, catalogs, chunks, unique, packs = 0;
	uint64_t stored = 0;
	uint64_t disk_free = 0, disk_total = 0, ok = 0, failed = 0;
	int64_t now = dd_now();
	uint8_t *data;
	size_t i, len;
	bool ro;
	int rc;

	(void)req;
	dd_buf_init(&b, 0);
	snapshots_totals(ctx->snapshots, &snaps, &logical, &catalogs);
	store_counters(ctx->store, &chunks, &unique);
	rc = store_pack_usage(ctx->store, &packs, &stored);
	if (rc == 0)
		rc = routes_disk(ctx, &disk_free, &disk_total, &ro);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	rc = routes_sums(ctx, &sums, &tl);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	if (sums.n)   /* qsort(NULL, 0, ...) is undefined */
		qsort(sums.v, sums.n, sizeof(sums.v[0]), routes_sum_cmp);
	sessions_totals(ctx->sessions, &ok, &failed);

	rc = metrics_header(&b, "dedup_build_info", "gauge",
			    "the server's version");
	if (rc == 0)
		rc = metrics_sample(&b, "dedup_build_info", "version",
				    DD_VERSION, 1);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_start_time_seconds",
				  "when the server started (unix time)",
				  (double)ctx->started);
	if (rc == 0)
		rc = metrics_render(ctx->metrics, &b);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_backups_in_flight",
				  "backups in progress (open sessions)",
				  sessions_active(ctx->sessions, NULL));
	if (rc == 0)
		rc = metrics_header(&b, "dedup_backups_finished_total",
				    "counter", "backups that ended since the "
				    "server started, by result");
	if (rc == 0)
		rc = metrics_sample(&b, "dedup_backups_finished_total",
				    "result", "ok", (double)ok);
	if (rc == 0)
		rc = metrics_sample(&b, "dedup_backups_finished_total",
				    "result", "failed", (double)failed);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_snapshots", "snapshots stored",
				  (double)snaps);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_chunks", "distinct chunks stored",
				  (double)chunks);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_packs", "pack files",
				  (double)packs);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_logical_bytes",
				  "sum of the sizes of all snapshots",
				  (double)logical);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_catalog_bytes",
				  "sum of the catalog sizes of all snapshots",
				  (double)catalogs);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_unique_bytes",
				  "plain bytes of the distinct chunks",
				  (double)unique);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_stored_bytes",
				  "bytes of pack files on disk",
				  (double)stored);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_clients",
				  "clients with a token",
				  (double)tl.n);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_disk_free_bytes",
				  "free bytes on the repository's file system",
				  (double)disk_free);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_disk_total_bytes",
				  "size of the repository's file system",
				  (double)disk_total);
	if (rc == 0)
		rc = routes_gauge(&b, "dedup_repository_writable",
				  "1 if new backups can be written",
				  routes_writable(ctx, why, sizeof(why)) ? 1 :
				  0);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_client_snapshots", "gauge",
				    "snapshots per client");
	for (i = 0; rc == 0 && i < sums.n; i++)
		rc = metrics_sample(&b, "dedup_client_snapshots", "client",
				    sums.v[i].name, (double)sums.v[i].snapshots);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_last_backup_timestamp_seconds",
				    "gauge", "when each client's last snapshot "
				    "was written (unix time)");
	for (i = 0; rc == 0 && i < sums.n; i++)
		if (sums.v[i].snapshots)
			rc = metrics_sample(&b,
					    "dedup_last_backup_timestamp_seconds",
					    "client", sums.v[i].name,
					    (double)sums.v[i].last_written);
	if (rc == 0)
		rc = metrics_header(&b, "dedup_last_backup_age_seconds",
				    "gauge", "seconds since each client's last "
				    "snapshot");
	for (i = 0; rc == 0 && i < sums.n; i++)
		if (sums.v[i].snapshots)
			rc = metrics_sample(&b, "dedup_last_backup_age_seconds",
					    "client", sums.v[i].name,
					    (double)(now - sums.v[i].last_written));
	free(sums.v);
	tokens_list_release(&tl);
	if (rc < 0) {
		dd_buf_release(&b);
		routes_fail(rep, rc);
		return;
	}
	data = dd_buf_detach(&b, &len);
	http_reply_take(rep, 200, "text/plain; version=0.0.4; charset=utf-8",
			data, len);
}

void routes_observe(void *payload, const struct http_observation *o)
{
	struct routes_ctx *ctx = payload;

	metrics_request(ctx->metrics, o->method, o->status, o->bytes_in,
			o->bytes_out);
}

/* ---- retention and garbage collection (admin only) ---- */

/* A JSON body that may be empty ({}); false after a 400. */
static bool routes_json_body_opt(const struct http_request *req,
				 struct http_reply *rep, json_t **out)
{
	if (req->body_len == 0) {
		*out = json_object();
		if (!*out) {
			routes_fail(rep, -ENOMEM);
			return false;
		}
		return true;
	}
	return routes_json_body(req, rep, out);
}

/* An optional boolean field; false after a 400. */
static bool routes_bool_field(json_t *o, const char *key, bool *out,
			      struct http_reply *rep)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return true;
	if (!json_is_boolean(v)) {
		http_reply_error(rep, 400, "field '%s' must be true or false",
				 key);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

/* For gc_opts.since: a collection keeps what backups in progress use,
 * for gc_protect_max seconds at most when that is set. */
static double routes_oldest_session(void *payload)
{
	struct routes_ctx *ctx = payload;
	double since = sessions_oldest_open(ctx->sessions), limit;

	if (ctx->cfg && ctx->cfg->gc_protect_max) {
		limit = dd_monotonic() - ctx->cfg->gc_protect_max;
		if (since < limit)
			since = limit;
	}
	return since;
}

static void routes_gc_opts(struct gc_opts *o, struct routes_ctx *ctx)
{
	memset(o, 0, sizeof(*o));
	o->threshold = ctx->cfg ? ctx->cfg->gc_repack_threshold :
		GC_DEFAULT_THRESHOLD;
	o->since = routes_oldest_session;
	o->since_payload = ctx;
}

static void routes_gc_reply(struct http_reply *rep, int rc)
{
	if (rc == -EBUSY)
		http_reply_error(rep, 409, "%s", log_reason(rc));
	else if (rc == -EBADMSG)
		http_reply_error(rep, 409, "%s", log_reason(rc));
	else
		routes_fail(rep, rc);
}

static void route_gc(void *payload, const struct http_request *req,
		     struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct gc_opts o;
	struct gc_report r;
	json_t *body;
	int rc;

	routes_gc_opts(&o, ctx);
	if (!routes_json_body_opt(req, rep, &body))
		return;
	if (!routes_bool_field(body, "dry_run", &o.dry_run, rep)) {
		json_decref(body);
		return;
	}
	json_decref(body);
	dd_error_clear();
	rc = gc_run(ctx->store, ctx->snapshots, &o, &r);
	if (rc < 0) {
		routes_gc_reply(rep, rc);
		return;
	}
	log_info("gc by '%s': %llu chunk(s) removed, %llu pack(s) deleted, "
		 "%llu rewritten, %llu bytes freed%s", req->who->name,
		 (unsigned long long)r.chunks_removed,
		 (unsigned long long)r.packs_deleted,
		 (unsigned long long)r.packs_rewritten,
		 (unsigned long long)r.bytes_freed,
		 o.dry_run ? " (dry run)" : "");
	http_reply_json(rep, 200, gc_report_json(&r, o.dry_run));
}

/* The "policy" object: keep_* keys, each a number (keep_within: a
 * duration string or seconds). false after a 400. */
static bool routes_policy(json_t *v, struct retention_policy *p,
			  struct http_reply *rep)
{
	const char *key;
	json_t *x;
	char val[64], clean[80];

	memset(p, 0, sizeof(*p));
	if (!json_is_object(v)) {
		http_reply_error(rep, 400, "field 'policy' must be an object");
		return false;
	}
	json_object_foreach(v, key, x) {
		log_sanitize(clean, sizeof(clean), key, (size_t)-1);
		if (json_is_integer(x) && json_integer_value(x) >= 0)
			snprintf(val, sizeof(val), "%lld%s",
				 (long long)json_integer_value(x),
				 strstr(key, "within") &&
				 json_integer_value(x) ? "s" : "");
		else if (json_is_string(x) && json_string_length(x) < 32)
			snprintf(val, sizeof(val), "%s", json_string_value(x));
		else {
			http_reply_error(rep, 400, "policy '%s' must be a "
					 "number", clean);
			return false;
		}
		dd_error_clear();
		switch (retention_set(p, key, val, NULL)) {
		case 0:
			break;
		case -ENOENT:
			http_reply_error(rep, 400, "unknown policy '%s'", clean);
			return false;
		default:
			http_reply_error(rep, 400, "invalid policy '%s': %s",
					 clean, dd_error_last());
			return false;
		}
	}
	return true;
}

static void route_prune(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct gc_opts go;
	struct retention_policy pol;
	struct prune_plan plan;
	struct gc_report r;
	const char **ids = NULL;
	const char *client = NULL;
	json_t *body, *v, *x, *out = NULL;
	bool dry = false, gc = false, have_pol = false;
	size_t i, nids = 0;
	int rc;

	memset(&plan, 0, sizeof(plan));
	routes_gc_opts(&go, ctx);
	if (!routes_json_body_opt(req, rep, &body))
		return;
	if (!routes_bool_field(body, "dry_run", &dry, rep) ||
	    !routes_bool_field(body, "gc", &gc, rep))
		goto cleanup;
	v = json_object_get(body, "client");
	if (v) {
		if (!json_is_string(v) || !tokens_name_valid(json_string_value(v))) {
			http_reply_error(rep, 400, "field 'client' must be a "
					 "client name");
			goto cleanup;
		}
		client = json_string_value(v);
	}
	v = json_object_get(body, "policy");
	if (v) {
		if (!routes_policy(v, &pol, rep))
			goto cleanup;
		have_pol = true;
	}
	v = json_object_get(body, "snapshots");
	if (v) {
		if (!json_is_array(v) || json_array_size(v) < 1 ||
		    json_array_size(v) > 10000 || have_pol || client) {
			http_reply_error(rep, 400, "field 'snapshots' must be an "
					 "array of 1 to 10000 ids, without "
					 "'policy' or 'client'");
			goto cleanup;
		}
		nids = json_array_size(v);
		ids = calloc(nids, sizeof(*ids));
		if (!ids) {
			routes_fail(rep, -ENOMEM);
			goto cleanup;
		}
		json_array_foreach(v, i, x) {
			if (!json_is_string(x) ||
			    json_string_length(x) != DD_ID_HEX_LEN) {
				http_reply_error(rep, 400, "snapshots[%zu] is "
						 "not a snapshot id", i);
				goto cleanup;
			}
			ids[i] = json_string_value(x);
		}
	}
	dd_error_clear();
	if (ids)
		rc = prune_plan_ids(&plan, ctx->snapshots, ids, nids);
	else
		rc = prune_plan_make(&plan, ctx->snapshots, ctx->cfg,
				     have_pol ? &pol : NULL, client);
	if (rc == -ENOENT) {
		http_reply_error(rep, 404, "%s", log_reason(rc));
		goto cleanup;
	}
	if (rc == 0 && !dry)
		rc = prune_apply(&plan, ctx->snapshots);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	if (!dry && plan.removed)
		log_info("prune by '%s': %zu snapshot(s) removed, %zu kept",
			 req->who->name, plan.removed, plan.keep);
	out = prune_plan_json(&plan, dry);
	if (out && gc) {
		go.dry_run = dry;
		dd_error_clear();
		rc = gc_run(ctx->store, ctx->snapshots, &go, &r);
		if (rc < 0) {
			json_decref(out);
			out = NULL;
			routes_gc_reply(rep, rc);
			goto cleanup;
		}
		json_object_set_new(out, "gc", gc_report_json(&r, dry));
	}
	http_reply_json(rep, 200, out);
cleanup:
	free(ids);
	prune_plan_release(&plan);
	json_decref(body);
}

static void route_snapshot_delete(void *payload,
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
	{ .method = "GET", .path = "/metrics", .auth = true, .admin = true,
	  .fn = route_metrics },
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
