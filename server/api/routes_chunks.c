/*
 * routes_chunks.c - chunks: the missing-query, uploads, GET of one
 * chunk and batched fetches, each answered for the caller's dedup domain
 * (server/store/domains.h); and the per-client storage quota.
 */
#include "routes_impl.h"
#include "compress.h"

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

struct routes_keyed_id {
	struct dd_id id;
	uint32_t at;                /* its place in the request */
};

static int routes_keyed_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DD_ID_LEN);
}

/* Whether the k-th id in key order repeats the one before it (never
 * without an order). */
static bool routes_id_repeat(const struct routes_keyed_id *order, size_t k)
{
	return order && k > 0 &&
	       memcmp(&order[k].id, &order[k - 1].id, DD_ID_LEN) == 0;
}

/* The request's ids in key order (NULL when out of memory: then request
 * order, which answers the same). In key order successive lookups walk
 * the index's tables, index blocks and bloom filters forwards instead of
 * at random. */
static struct routes_keyed_id *routes_id_order(const struct http_request *req,
					       size_t n)
{
	struct routes_keyed_id *v = malloc(n * sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		routes_id_at(&v[i].id, req, i);
		v[i].at = (uint32_t)i;
	}
	qsort(v, n, sizeof(*v), routes_keyed_id_cmp);
	return v;
}

/* The ids of a missing-query the local index lacks, looked up in the
 * pool's shared index in one batch (store_prefetch): a bitmap of those in
 * neither, or NULL after failing the request. */
static uint8_t *routes_prefetch(struct routes_ctx *ctx,
				const struct http_request *req, size_t n,
				struct http_reply *rep)
{
	uint8_t *absent = calloc((n + 7) / 8 + 1, 1);
	struct dd_id *ids = NULL;
	size_t i;
	int rc = -ENOMEM;

	if (absent && store_shared_on(ctx->store) &&
	    (ids = malloc(n * sizeof(*ids))) != NULL) {
		for (i = 0; i < n; i++)
			routes_id_at(&ids[i], req, i);
		rc = store_prefetch(ctx->store, ids, n, absent);
	} else if (absent && !store_shared_on(ctx->store)) {
		rc = 0;
	}
	free(ids);
	if (rc < 0) {
		free(absent);
		routes_fail(rep, rc == -ENOMEM || backend_unavailable(rc) ?
			    rc : -EIO);
		return NULL;
	}
	return absent;
}

/* The ids of a missing-query that this front-end holds but the client's
 * domain does not here: asked of the pool's shared index together. */
struct routes_ask {
	struct dd_id *ids;
	struct dd_chunk_loc *locs;
	size_t *at;              /* their places in the request */
	size_t n;
};

static struct routes_ask *routes_ask_new(size_t n)
{
	struct routes_ask *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->ids = malloc(n * sizeof(*a->ids));
	a->locs = malloc(n * sizeof(*a->locs));
	a->at = malloc(n * sizeof(*a->at));
	if (!a->ids || !a->locs || !a->at) {
		free(a->ids);
		free(a->locs);
		free(a->at);
		free(a);
		return NULL;
	}
	return a;
}

static void routes_ask_free(struct routes_ask *a)
{
	if (!a)
		return;
	free(a->ids);
	free(a->locs);
	free(a->at);
	free(a);
}

static void routes_ask_add(struct routes_ask *a, const struct dd_id *id,
			   const struct dd_chunk_loc *loc, size_t at)
{
	a->ids[a->n] = *id;
	a->locs[a->n] = *loc;
	a->at[a->n++] = at;
}

/* Clears the missing bit of each asked id the pool says the domain
 * holds where this front-end has it. */
static int routes_ask_pool(struct routes_ctx *ctx,
			   const struct domains_tag *dom,
			   struct routes_ask *a, uint8_t *bits)
{
	uint8_t *granted = malloc((a->n + 7) / 8);
	size_t i;
	int rc;

	if (!granted)
		return -ENOMEM;
	rc = store_shared_grant(ctx->store, dom, a->ids, a->locs, a->n,
				granted);
	for (i = 0; rc == 0 && i < a->n; i++)
		if (granted[i / 8] & (1u << (i % 8)))
			bits[a->at[i] / 8] &= (uint8_t)~(1u << (a->at[i] % 8));
	free(granted);
	return rc;
}

/* Answers for the client's domain only: a chunk that another domain
 * stored is "missing" until this client uploads it (domains.h). A sealed
 * chunk is "missing" to a query without `?sealed=1` (a plain client's),
 * so a plain client is never told that bytes the server could not verify
 * are its chunk; its upload then replaces them (store_ingest). */
void route_missing(void *payload, const struct http_request *req,
		   struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_chunk_loc loc;
	struct dd_id id;
	uint8_t *bits, *absent;
	struct routes_keyed_id *order;
	struct routes_ask *ask = NULL;
	const char *arg;
	bool sealed_ok;
	size_t n, k, i;
	int rc = 0;

	if (!routes_ids(req, rep, &n))
		return;
	if (!routes_missing_allowed(ctx, req, rep, n))
		return;
	dom = routes_domain(ctx, req, &buf);
	arg = http_request_arg(req, "sealed");
	sealed_ok = arg && strcmp(arg, "1") == 0;
	bits = calloc((n + 7) / 8, 1);
	if (!bits) {
		routes_fail(rep, -ENOMEM);
		return;
	}
	absent = routes_prefetch(ctx, req, n, rep);
	if (!absent) {
		free(bits);
		return;
	}
	if (dom && store_shared_on(ctx->store) &&
	    !(ask = routes_ask_new(n))) {
		free(bits);
		free(absent);
		routes_fail(rep, -ENOMEM);
		return;
	}
	order = routes_id_order(req, n);
	for (k = 0; k < n; k++) {
		i = order ? order[k].at : k;
		/* An id asked again (next to its first in key order) gets
		 * the first's answer, below, not another lookup: repeats
		 * would make a chunk another domain stores slower to answer
		 * than an absent one, a timing that tells it apart. */
		if (routes_id_repeat(order, k))
			continue;
		if (absent[i / 8] & (1u << (i % 8))) {
			/* in neither the local nor the shared index */
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
			continue;
		}
		routes_id_at(&id, req, i);
		rc = store_lookup(ctx->store, &id, &loc);
		if (rc == 0 && (loc.flags & DD_COMP_SEALED) && !sealed_ok)
			rc = -ENOENT;
		if (rc == 0 && dom) {
			rc = domains_is_member(ctx->store, dom, &id);
			if (rc == 0 && ask)
				routes_ask_add(ask, &id, &loc, i);
			rc = rc == 1 ? 0 : rc == 0 ? -ENOENT : rc;
		}
		if (rc == -ENOENT) {
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
			rc = 0;
		} else if (rc < 0) {
			break;
		}
	}
	/* stored here, but not by the client's domain: through another
	 * front-end, perhaps (store_shared_grant) */
	if (rc == 0 && ask && ask->n)
		rc = routes_ask_pool(ctx, dom, ask, bits);
	for (k = 1; rc == 0 && k < n; k++) {
		size_t j;

		if (!routes_id_repeat(order, k))
			continue;
		i = order[k].at;
		j = order[k - 1].at;
		if (bits[j / 8] & (1u << (j % 8)))
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	free(order);
	free(absent);
	routes_ask_free(ask);
	if (rc < 0) {
		free(bits);
		routes_fail(rep, rc);
		return;
	}
	/* "present" is an acknowledgement too */
	if (!routes_fence_ok(ctx, rep)) {
		free(bits);
		return;
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
bool routes_quota_ok(struct routes_ctx *ctx, const char *client,
		     struct http_reply *rep)
{
	uint64_t quota, used = 0;
	bool saved;
	int rc;

	quota = ctx->cfg ? config_client_quota(ctx->cfg, client) : 0;
	if (!quota)
		return true;
	/* while the first count after a start runs, the last run's saved
	 * figures; -EAGAIN only when there are none (usage.h) */
	rc = usage_client_bytes(ctx->usage, ctx->snapshots, ctx->store,
				client, &used, &saved);
	if (rc == -EAGAIN) {
		/* the first count after a start: the agent waits and asks
		 * again (docs/API.md, "Limits") */
		http_reply_error(rep, 503, "%s", log_reason(rc));
		rep->retry_after = ROUTES_USAGE_RETRY;
		return false;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		return false;
	}
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

void route_upload(void *payload, const struct http_request *req,
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
	if (!routes_fence_ok(ctx, rep) ||
	    !routes_quota_ok(ctx, req->who->name, rep))
		goto cleanup;
	if (routes_upload_parse(req, rep, &recs, &n) < 0)
		goto cleanup;
	dctx = ZSTD_createDCtx();
	if (!dctx) {
		routes_fail(rep, -ENOMEM);
		goto cleanup;
	}
	/* Never trust an id: decode and re-hash every record before any of
	 * them is stored (a raw one is hashed where it lies), several at a
	 * time (store_verify_records). Decoding writes at most plain_len
	 * bytes per record, and at most 4 MiB beyond one record at once. */
	rc = store_verify_records(recs, n, &plain, dctx);
	if (rc == -ENOMEM) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	if (rc < 0) {
		http_reply_error(rep, 400, "%s; nothing was stored",
				 log_reason(rc));
		goto cleanup;
	}
	dd_buf_release(&plain);
	/* For the counters: what is new to this client's domain, as far as
	 * the index knows now. The reply, too, counts a chunk that another
	 * domain stored as stored, so it tells nothing about other domains. */
	dom = routes_domain(ctx, req, &buf);
	for (i = 0; i < n; i++) {
		/* on a shared pool the local index (a cache) is enough for
		 * counters: one pool round trip per chunk is not */
		if ((dom || !store_shared_on(ctx->store) ?
		     domains_lookup(ctx->store, dom, &recs[i].id, &loc) :
		     store_lookup_cached(ctx->store, &recs[i].id, &loc)) ==
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
	/* stored, but not acknowledged while fenced: the retry finds the
	 * chunks present once the heartbeat is written again */
	if (!routes_fence_ok(ctx, rep))
		goto cleanup;
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

void route_chunk(void *payload, const struct http_request *req,
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
	} else if (rc == -ENOTSUP) {
		http_reply_error(rep, 409, "%s", log_reason(rc));
	} else if (rc < 0) {
		routes_fail(rep, rc);
	} else {
		data = dd_buf_detach(&plain, &len);
		http_reply_take(rep, 200, ROUTES_OCTETS, data, len);
	}
	dd_buf_release(&plain);
}

/* ---- POST /api/v1/chunks/fetch ---- */

/* A pack record's header is this much longer than a bundle record's: read
 * in place, it starts that far before the end of the reply so far, over
 * the bundle's own header at least. */
#define ROUTES_FETCH_OVERLAP \
	(DD_PACK_RECORD_HEADER_LEN - DD_BUNDLE_RECORD_HEADER_LEN)
_Static_assert(DD_PACK_RECORD_HEADER_LEN >= DD_BUNDLE_RECORD_HEADER_LEN &&
	       ROUTES_FETCH_OVERLAP <= DD_BUNDLE_HEADER_LEN,
	       "a pack record header must fit over the bundle's end");

/* One fetch request's state, shared by the readers below. */
struct routes_fetch {
	struct routes_ctx *ctx;
	const struct http_request *req;
	struct dd_buf plain;        /* scratch for decoding */
	ZSTD_DCtx *dctx;
	uint64_t reads;             /* pack reads made */
	bool client_checks;         /* ?verify=client: the caller re-hashes */
};

/* Checks a chunk's stored bytes before they are sent: a damaged one is
 * made missing (store.h) and fails the request. Skipped when the caller
 * said it checks every chunk itself (?verify=client): it then reports
 * what fails to POST /chunks/check (docs/API.md, "Damaged chunks"). */
static int routes_fetch_check(struct routes_fetch *f, const struct dd_id *id,
			      const struct dd_chunk_loc *loc,
			      const uint8_t *stored, size_t len)
{
	int rc;

	if (f->client_checks)
		return 0;
	rc = store_verify(id, loc->flags, loc->plain_len, stored, len,
			  &f->plain, f->dctx);
	if (rc == -EBADMSG)
		store_forget(f->ctx->store, id, loc);
	return rc;
}

/* A record that could not be read. One whose header is not the chunk's
 * (-EBADMSG: packs are never rewritten in place, so the record the index
 * names is damaged) is made missing, as bytes that fail the check are, so
 * that the next backup stores the chunk again; the request fails. */
static int routes_fetch_unreadable(struct routes_fetch *f,
				   const struct dd_id *id,
				   const struct dd_chunk_loc *loc, int rc)
{
	if (rc == -EBADMSG)
		store_forget(f->ctx->store, id, loc);
	return rc;
}

/*
 * Appends the chunk to the reply bundle `out` with no copy of its bytes:
 * the pack record is read so that its stored bytes land where the bundle
 * record's go, its longer header over the last bytes of the reply so far,
 * which are put back once it is checked; then the bundle record's header
 * is written in front of the bytes. -EAGAIN (nothing added) if the chunk
 * moved to a record of another size.
 */
static int routes_fetch_in_place(struct routes_fetch *f, const struct dd_id *id,
				 const struct dd_chunk_loc *loc,
				 struct dd_buf *out)
{
	uint8_t keep[ROUTES_FETCH_OVERLAP], *rec;
	const uint8_t *bytes;
	int rc;

	rc = dd_buf_reserve(out, DD_BUNDLE_RECORD_HEADER_LEN +
			    (size_t)loc->stored_len);
	if (rc < 0)
		return rc;
	rec = out->data + out->len - ROUTES_FETCH_OVERLAP;
	bytes = rec + DD_PACK_RECORD_HEADER_LEN;
	memcpy(keep, rec, sizeof(keep));
	rc = store_read_stored_to(f->ctx->store, id, loc, rec);
	memcpy(rec, keep, sizeof(keep));
	if (rc < 0)
		return routes_fetch_unreadable(f, id, loc, rc);
	rc = routes_fetch_check(f, id, loc, bytes, loc->stored_len);
	if (rc < 0)
		return rc;
	return dd_bundle_add_in_place(out, id, loc->flags, loc->plain_len,
				      loc->stored_len);
}

/* The same through a copy, for a chunk that moved to a record of another
 * size since it was looked up. */
static int routes_fetch_copy(struct routes_fetch *f, const struct dd_id *id,
			     const struct dd_chunk_loc *loc, struct dd_buf *out,
			     struct dd_buf *stored)
{
	int rc = store_read_stored(f->ctx->store, id, loc, stored);

	if (rc < 0)
		return routes_fetch_unreadable(f, id, loc, rc);
	rc = routes_fetch_check(f, id, loc, stored->data, stored->len);
	if (rc == 0)
		rc = dd_bundle_add(out, id, loc->flags, loc->plain_len,
				   stored->data, (uint32_t)stored->len);
	return rc;
}

/* The records one at a time into the bundle `out` (its header in): one
 * read each, into place where the record keeps its size. */
static int routes_fetch_each(struct routes_fetch *f,
			     const struct dd_chunk_loc *locs, size_t n,
			     struct dd_buf *out)
{
	struct dd_buf stored;
	struct dd_id id;
	size_t i;
	int rc = 0;

	dd_buf_init(&stored, 0);
	for (i = 0; i < n && rc == 0; i++) {
		routes_id_at(&id, f->req, i);
		rc = routes_fetch_in_place(f, &id, &locs[i], out);
		if (rc == -EAGAIN) {  /* moved to a record of another size */
			rc = routes_fetch_copy(f, &id, &locs[i], out, &stored);
			f->reads++;
		}
		f->reads++;
	}
	dd_buf_release(&stored);
	return rc;
}

/*
 * The whole reply with one backend read per pack span (docs/STORAGE.md,
 * "Restore from RADOS"): every record is read as it lies in its pack to
 * where it would lie if the requested records were one pack, so that
 * records adjacent in a pack and in the request are one read, and all
 * the reads are in flight at once (store_read_records); then each is
 * verified there and moved down to its place in the bundle (a pack record
 * header is longer than a bundle record's, so every record moves towards
 * the start, over bytes already used). `out` holds the bundle header.
 * -EAGAIN (out begun again, nothing sent) when the reads failed: the
 * caller reads the records one at a time, which finds a chunk a
 * collection moved and words the error; other errors fail the request.
 */
static int routes_fetch_spans(struct routes_fetch *f,
			      const struct dd_chunk_loc *locs, size_t n,
			      struct dd_buf *out)
{
	struct dd_id *ids = malloc(n * sizeof(*ids));
	uint8_t **dst = malloc(n * sizeof(*dst));
	uint64_t span = DD_BUNDLE_HEADER_LEN;
	size_t i;
	int rc = -ENOMEM;

	if (!ids || !dst)
		goto cleanup;
	for (i = 0; i < n; i++)
		span += DD_PACK_RECORD_HEADER_LEN + (uint64_t)locs[i].stored_len;
	if ((rc = dd_buf_reserve(out, (size_t)span - out->len)) < 0)
		goto cleanup;
	for (i = 0, span = DD_BUNDLE_HEADER_LEN; i < n; i++) {
		routes_id_at(&ids[i], f->req, i);
		dst[i] = out->data + span;
		span += DD_PACK_RECORD_HEADER_LEN + (uint64_t)locs[i].stored_len;
	}
	rc = store_read_records(f->ctx->store, ids, locs, dst, n);
	if (backend_unavailable(rc))
		goto cleanup;   /* the one-by-one pass would wait again */
	if (rc < 0) {
		dd_error_clear();
		rc = dd_bundle_begin(out) < 0 ? -ENOMEM : -EAGAIN;
		goto cleanup;
	}
	f->reads += (uint64_t)rc;
	for (i = 0, rc = 0; i < n && rc == 0; i++) {
		const uint8_t *bytes = dst[i] + DD_PACK_RECORD_HEADER_LEN;

		rc = routes_fetch_check(f, &ids[i], &locs[i], bytes,
					locs[i].stored_len);
		if (rc == 0) {
			memmove(out->data + out->len +
				DD_BUNDLE_RECORD_HEADER_LEN, bytes,
				locs[i].stored_len);
			rc = dd_bundle_add_in_place(out, &ids[i], locs[i].flags,
						    locs[i].plain_len,
						    locs[i].stored_len);
		}
	}
cleanup:
	free(ids);
	free(dst);
	return rc;
}

/* 413 when the chunks of a request the server checks decode to more
 * than it checks for one request (their plain bytes, each id counted as
 * often as it is asked for): true when the request is answered. */
static bool routes_check_too_big(struct http_reply *rep, uint64_t plain)
{
	if (plain <= DD_MAX_CHECK_PLAIN)
		return false;
	http_reply_error(rep, 413, "the chunks decode to %llu bytes, more than "
			 "the %u the server checks for one request; ask for "
			 "fewer", (unsigned long long)plain,
			 DD_MAX_CHECK_PLAIN);
	return true;
}

/* The largest fetch reply: DD_MAX_FETCH_RESPONSE, or lower through the
 * test hook DEDUP_TEST_MAX_FETCH_RESPONSE (docs/OPERATIONS.md), so that a
 * test reaches the 413 a client's large catalog chunks can meet. */
static uint64_t routes_fetch_max(void)
{
	return dd_test_hook_u64("DEDUP_TEST_MAX_FETCH_RESPONSE", 1024,
				DD_MAX_FETCH_RESPONSE, DD_MAX_FETCH_RESPONSE);
}

/* The request's n ids looked up for domain dom in one batch
 * (domains_lookup_many): (*rcs)[i] is 0 with locs[i], or -ENOENT; *rcs is
 * malloc'ed (the caller frees it, also after a failure). */
static int routes_lookup_ids(struct routes_ctx *ctx,
			     const struct http_request *req,
			     const struct domains_tag *dom, size_t n,
			     struct dd_chunk_loc *locs, int **rcs)
{
	struct dd_id *ids = malloc(n * sizeof(*ids));
	int rc = -ENOMEM;

	*rcs = malloc(n * sizeof(**rcs));
	if (ids && *rcs) {
		for (size_t i = 0; i < n; i++)
			routes_id_at(&ids[i], req, i);
		rc = domains_lookup_many(ctx->store, dom, ids, n, locs, *rcs);
	}
	free(ids);
	return rc;
}

void route_fetch(void *payload, const struct http_request *req,
		 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	struct routes_fetch f = { .ctx = ctx, .req = req };
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_chunk_loc *locs = NULL;
	int *rcs = NULL;
	struct dd_buf out;
	struct dd_id id;
	char hex[DD_ID_HEX_LEN + 1];
	uint64_t total = DD_BUNDLE_HEADER_LEN, plain = 0;
	const char *verify;
	uint8_t *data;
	size_t n, i, len;
	int rc;

	/* room for the records as they lie in packs (routes_fetch_spans) */
	dd_buf_init(&out, DD_MAX_FETCH_RESPONSE + (size_t)DD_MAX_IDS_PER_QUERY *
		    ROUTES_FETCH_OVERLAP);
	dd_buf_init(&f.plain, 0);
	if (!routes_ids(req, rep, &n))
		return;
	verify = http_request_arg(req, "verify");
	if (verify && strcmp(verify, "client") != 0 &&
	    strcmp(verify, "server") != 0) {
		http_reply_error(rep, 400, "verify must be 'client' or "
				 "'server'");
		return;
	}
	f.client_checks = verify && strcmp(verify, "client") == 0;
	locs = malloc(n * sizeof(*locs));
	f.dctx = ZSTD_createDCtx();
	if (!locs || !f.dctx) {
		routes_fail(rep, -ENOMEM);
		goto cleanup;
	}
	/* Know every id and the reply's size before reading a byte; another
	 * domain's chunk is answered exactly as an absent one. In one batch:
	 * on a shared pool a chunk held here for others, or not here yet, is
	 * asked of the pool (a snapshot made through another front-end is
	 * restored through this one before its tick adopts it). */
	dom = routes_read_domain(ctx, req, &buf);
	rc = routes_lookup_ids(ctx, req, dom, n, locs, &rcs);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		routes_id_at(&id, req, i);
		rc = rcs[i];
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
		plain += locs[i].plain_len;
	}
	if (total > routes_fetch_max()) {
		http_reply_error(rep, 413, "reply would be %llu bytes, more than "
				 "the limit of %llu; ask for fewer chunks",
				 (unsigned long long)total,
				 (unsigned long long)routes_fetch_max());
		goto cleanup;
	}
	if (!f.client_checks && routes_check_too_big(rep, plain))
		goto cleanup;
	rc = dd_buf_reserve(&out, (size_t)total);
	if (rc == 0)
		rc = dd_bundle_begin(&out);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	rc = store_reads_overlap(ctx->store) ?
		routes_fetch_spans(&f, locs, n, &out) : -EAGAIN;
	if (rc == -EAGAIN)
		rc = routes_fetch_each(&f, locs, n, &out);
	if (rc == 0)
		rc = dd_bundle_finish(&out);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	metrics_fetch(ctx->metrics, n, f.reads, f.client_checks);
	data = dd_buf_detach(&out, &len);
	http_reply_take(rep, 200, ROUTES_OCTETS, data, len);
cleanup:
	ZSTD_freeDCtx(f.dctx);
	free(locs);
	free(rcs);
	dd_buf_release(&out);
	dd_buf_release(&f.plain);
}

/* ---- POST /api/v1/chunks/check ---- */

/*
 * Re-hashes the stored bytes of each id the caller's domain can read: a
 * client that fetched with ?verify=client and found a chunk that does not
 * match its id says so here, and the server drops a damaged one from its
 * index as a fetch it checked would have (store_forget), so that the next
 * backup sends it again. What the client claims changes nothing by
 * itself: only the server's own check drops a chunk. Each id is checked
 * once however often it is listed; the stored bytes of one request are
 * bounded as a fetch reply's are, their plain bytes as a checked fetch's
 * (413). A sealed chunk's bytes need the client's key: the server checks
 * its layout only, and lists one that passes as `sealed`.
 */
void route_check(void *payload, const struct http_request *req,
		 struct http_reply *rep)
{
	struct routes_ctx *ctx = payload;
	const struct domains_tag *dom;
	struct domains_tag buf;
	struct dd_chunk_loc loc;
	struct dd_buf stored, plain;
	ZSTD_DCtx *dctx = NULL;
	json_t *damaged = NULL, *unknown = NULL, *sealed = NULL;
	char hex[DD_ID_HEX_LEN + 1];
	uint64_t total = 0, checked = 0;
	struct dd_id *ids;
	struct dd_chunk_loc *locs;
	int *rcs;
	uint64_t plain_total = 0;
	size_t n, i;
	int rc = 0;

	if (!routes_ids(req, rep, &n))
		return;
	if (!(ids = malloc(n * sizeof(*ids)))) {
		routes_fail(rep, -ENOMEM);
		return;
	}
	for (i = 0; i < n; i++)
		routes_id_at(&ids[i], req, i);
	n = dd_ids_sort_unique(ids, n);   /* each id once, in key order */
	dd_buf_init(&stored, 0);
	dd_buf_init(&plain, 0);
	dom = routes_read_domain(ctx, req, &buf);
	/* one batch, which also asks a shared pool (route_fetch); the reads
	 * below then find what it granted in the local index */
	locs = malloc(n * sizeof(*locs));
	rcs = malloc(n * sizeof(*rcs));
	rc = locs && rcs ? domains_lookup_many(ctx->store, dom, ids, n, locs,
					       rcs) : -ENOMEM;
	for (i = 0; rc == 0 && i < n; i++) {
		if (rcs[i] == 0) {
			total += locs[i].stored_len;
			plain_total += locs[i].plain_len;
		}
	}
	free(locs);
	free(rcs);
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	if (total > DD_MAX_FETCH_RESPONSE) {
		http_reply_error(rep, 413, "the chunks hold %llu bytes, more "
				 "than the limit of %u; ask about fewer",
				 (unsigned long long)total,
				 DD_MAX_FETCH_RESPONSE);
		goto cleanup;
	}
	if (routes_check_too_big(rep, plain_total))
		goto cleanup;
	damaged = json_array();
	unknown = json_array();
	sealed = json_array();
	dctx = ZSTD_createDCtx();
	if (!damaged || !unknown || !sealed || !dctx) {
		routes_fail(rep, -ENOMEM);
		goto cleanup;
	}
	for (i = 0; i < n && rc == 0; i++) {
		json_t *to = NULL;

		dd_id_to_hex(hex, &ids[i]);
		rc = domains_lookup(ctx->store, dom, &ids[i], &loc);
		if (rc == 0)
			rc = store_read_stored(ctx->store, &ids[i], &loc,
					       &stored);
		if (rc == 0) {
			checked++;
			rc = store_verify(&ids[i], loc.flags, loc.plain_len,
					  stored.data, stored.len, &plain,
					  dctx);
		}
		if (rc == -EBADMSG) {
			/* a bad header (store_read_stored) or bad bytes */
			store_forget(ctx->store, &ids[i], &loc);
			to = damaged;
		} else if (rc == -ENOENT) {
			to = unknown;
		} else if (rc == 0 && (loc.flags & DD_COMP_SEALED)) {
			/* its layout is all the server can check */
			to = sealed;
		}
		if (to)
			rc = json_array_append_new(to, json_string(hex)) ?
				-ENOMEM : 0;
	}
	if (rc < 0) {
		routes_fail(rep, rc);
		goto cleanup;
	}
	metrics_check(ctx->metrics, checked, json_array_size(damaged));
	http_reply_json(rep, 200, json_pack("{s:I, s:o, s:o, s:o}",
					    "checked", (json_int_t)checked,
					    "damaged", damaged,
					    "unknown", unknown,
					    "sealed", sealed));
	damaged = unknown = sealed = NULL;
cleanup:
	json_decref(damaged);
	json_decref(unknown);
	json_decref(sealed);
	ZSTD_freeDCtx(dctx);
	dd_buf_release(&stored);
	dd_buf_release(&plain);
	free(ids);
}
