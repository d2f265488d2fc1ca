/*
 * routes.c - see routes.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "bundle.h"
#include "log.h"
#include "proto.h"
#include "routes.h"
#include "web_assets.h"

#define ROUTES_OCTETS "application/octet-stream"
#define ROUTES_IDS_CAP ((size_t)DD_MAX_IDS_PER_QUERY * DD_ID_LEN)

/* 500 for internal failures, 507 for a full disk, with the reason. */
static void routes_fail(struct http_reply *rep, int rc)
{
	if (rc == -ENOSPC || rc == -EDQUOT)
		http_reply_error(rep, 507, "repository disk is full: %s",
				 log_reason(rc));
	else if (rc == -ENOMEM)
		http_reply_error(rep, 503, "out of memory");
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

static void route_health(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	static const char body[] =
		"{\"status\":\"ok\",\"version\":\"" DD_VERSION "\"}\n";

	(void)payload;
	(void)req;
	http_reply_static(rep, 200, "application/json", body, sizeof(body) - 1);
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
		"{s:i, s:s, s:{s:I, s:I, s:I, s:s}, s:{s:I, s:I, s:I, s:I}}",
		"format", REPO_FORMAT,
		"repo_id", c->repo_id,
		"chunker",
		"min_size", (json_int_t)c->chunker.min_size,
		"avg_size", (json_int_t)c->chunker.avg_size,
		"max_size", (json_int_t)c->chunker.max_size,
		"seed", seed,
		"limits",
		"max_upload_body", (json_int_t)DD_MAX_UPLOAD_BODY,
		"max_ids_per_query", (json_int_t)DD_MAX_IDS_PER_QUERY,
		"max_fetch_response", (json_int_t)DD_MAX_FETCH_RESPONSE,
		"max_json_body", (json_int_t)DD_MAX_JSON_BODY));
}

/* ---- POST /api/v1/chunks/missing ---- */

static void route_missing(void *payload, const struct http_request *req,
			  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct dd_chunk_loc loc;
	struct dd_id id;
	uint8_t *bits;
	size_t n, i;
	int rc;

	if (!routes_ids(req, rep, &n))
		return;
	bits = calloc((n + 7) / 8, 1);
	if (!bits) {
		routes_fail(rep, -ENOMEM);
		return;
	}
	for (i = 0; i < n; i++) {
		routes_id_at(&id, req, i);
		rc = store_lookup(ctx->store, &id, &loc);
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

/* ---- POST /api/v1/chunks ---- */

static void route_upload(void *payload, const struct http_request *req,
			 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct dd_bundle_reader r;
	struct dd_bundle_record *recs = NULL;
	struct dd_buf plain;
	ZSTD_DCtx *dctx = NULL;
	uint32_t stored, dups;
	size_t n = 0, i;
	int rc;

	dd_buf_init(&plain, 0);
	rc = dd_bundle_reader_init(&r, req->body, req->body_len);
	if (rc < 0) {
		http_reply_error(rep, 400, "invalid chunk bundle: %s",
				 log_reason(rc));
		goto cleanup;
	}
	/* One spare slot: the call that reports the end gets one too. */
	recs = malloc(((size_t)r.count + 1) * sizeof(*recs));
	dctx = ZSTD_createDCtx();
	if (!recs || !dctx) {
		routes_fail(rep, -ENOMEM);
		goto cleanup;
	}
	for (;;) {
		dd_error_clear();
		rc = dd_bundle_next(&r, &recs[n]);
		if (rc == 0)
			break;
		if (rc < 0) {
			http_reply_error(rep, 400, "invalid chunk bundle: "
					 "record %zu: %s", n, log_reason(rc));
			goto cleanup;
		}
		if (++n > r.count) {
			http_reply_error(rep, 400, "invalid chunk bundle: more "
					 "records than its count");
			goto cleanup;
		}
	}
	/* Never trust an id: decode and re-hash every record before any of
	 * them is stored. */
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
	rc = store_ingest(ctx->store, recs, n, &stored, &dups);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
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
	/* Know every id and the reply's size before reading a byte. */
	for (i = 0; i < n; i++) {
		routes_id_at(&id, req, i);
		rc = store_lookup(ctx->store, &id, &locs[i]);
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

static void route_snapshot_create(void *payload,
				  const struct http_request *req,
				  struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = snapshots_create(ctx->snapshots, ctx->store, req->who->name,
			      req->body, req->body_len, &text, &len);
	if (rc == -EINVAL) {
		http_reply_error(rep, 400, "%s", log_reason(rc));
		return;
	}
	if (rc == -ENOENT) {
		http_reply_error(rep, 409, "%s", log_reason(rc));
		return;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
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

static void route_snapshot_list(void *payload, const struct http_request *req,
				struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	char *text;
	size_t len;
	int rc;

	rc = snapshots_list(ctx->snapshots, req->who->name, req->who->admin,
			    &text, &len);
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

static void route_stats(void *payload, const struct http_request *req,
			struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	uint64_t snaps, logical, chunks, unique, packs = 0, stored = 0;
	int rc;

	(void)req;
	snapshots_totals(ctx->snapshots, &snaps, &logical);
	store_counters(ctx->store, &chunks, &unique);
	rc = store_pack_usage(ctx->store, &packs, &stored);
	if (rc < 0) {
		routes_fail(rep, rc);
		return;
	}
	http_reply_json(rep, 200, json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
		"snapshots", (json_int_t)snaps,
		"chunks", (json_int_t)chunks,
		"packs", (json_int_t)packs,
		"clients", (json_int_t)tokens_count(ctx->tokens),
		"bytes_logical", (json_int_t)logical,
		"bytes_unique", (json_int_t)unique,
		"bytes_stored", (json_int_t)stored,
		"dedup_ratio", unique ? (double)logical / (double)unique : 0.0,
		"compression_ratio",
		stored ? (double)unique / (double)stored : 0.0));
}

/* ---- the table ---- */

#define API DD_API_PREFIX

const struct http_route routes_table[] = {
	{ "GET", API "/health", false, false, 0, route_health },
	{ "GET", API "/config", false, true, 0, route_config },
	{ "POST", API "/chunks/missing", false, true, ROUTES_IDS_CAP,
	  route_missing },
	{ "POST", API "/chunks/fetch", false, true, ROUTES_IDS_CAP,
	  route_fetch },
	{ "POST", API "/chunks", false, true, DD_MAX_UPLOAD_BODY, route_upload },
	{ "GET", API "/chunks/", true, true, 0, route_chunk },
	{ "POST", API "/snapshots", false, true, DD_MAX_JSON_BODY,
	  route_snapshot_create },
	{ "GET", API "/snapshots", false, true, 0, route_snapshot_list },
	{ "GET", API "/snapshots/", true, true, 0, route_snapshot_get },
	{ "GET", API "/stats", false, true, 0, route_stats },
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
