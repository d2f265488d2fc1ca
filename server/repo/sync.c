/*
 * sync.c - copying snapshots from another dedup-server (sync.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "catsource.h"
#include "compress.h"
#include "domains.h"
#include "httpc.h"
#include "log.h"
#include "snapshots.h"
#include "store.h"
#include "sync.h"
#include "syncask.h"
#include "syncwire.h"
#include "tokens.h"

/* File chunk ids gathered from a catalog before they are looked up. */
#define SYNC_WALK_BATCH 4096
/* A source snapshot list page. */
#define SYNC_PAGE 100
/* One request to the source at most this long (DEDUP_TEST_SYNC_TIMEOUT_SEC
 * for the tests). */
#define SYNC_REQUEST_TIMEOUT_SEC 600L
/* The JSON values a source's reply may hold, counted before it is parsed
 * (dd_httpc_get_json_bounded: parsing allocates a node for each, so a
 * reply of tiny values costs ~80 times its bytes): a listing page
 * (SYNC_PAGE summaries, each at most SNAPSHOTS_PATHS_MAX paths and a few
 * dozen other values), a manifest (DD_MAX_CATALOG_CHUNKS catalog ids,
 * the paths and the rest), /health and /config (1 MiB at most). */
#define SYNC_PAGE_VALUES (SYNC_PAGE * (SNAPSHOTS_PATHS_MAX + 64u))
#define SYNC_MANIFEST_VALUES (DD_MAX_CATALOG_CHUNKS + SNAPSHOTS_PATHS_MAX + 4096u)
#define SYNC_SMALL_BYTES (1u << 20)
#define SYNC_SMALL_VALUES 4096u

struct sync_ctx {
	struct store *st;
	struct snapshots *snaps;
	struct tokens_list clients;  /* this repository's, for domains */
	/* Client names with snapshots here, without a token, sorted: those
	 * of the run's start and those it brought (sync_client_admit). */
	struct snapshots_names names;
	uint64_t refused_names;      /* snapshots refused for a new name */
	bool domains_used;
	struct dd_httpc *src;
	const struct sync_opts *o;
	struct sync_report *r;
	ZSTD_DCtx *dctx;
	struct dd_buf plain, resp;
	const struct domains_tag *dom;  /* of the snapshot being copied */
	struct domains_tag dom_buf;
	char chunk_error[512];       /* the failing chunk's reason */
	size_t batch;                /* ids per fetch */
	uint64_t fetches;            /* fetches stored so far */
	uint64_t kill_after;         /* test hook; 0: off */
	/* Whether the chunks being fetched may be sealed: the file chunks
	 * of an encrypted snapshot; never a catalog's, never a plain
	 * snapshot's (syncwire_check_bundle). */
	bool sealed_ok;
	/* The snapshots not copied (the first SYNC_MISSED_MAX), looked for
	 * in the source's list again at the end (sync_recheck): one that is
	 * no longer listed was forgotten there, and is gone, not failed. */
	struct sync_missed *missed;
	size_t nmissed;
	bool rechecking;             /* sync_list marks, does not copy */
	char error_id[DD_ID_HEX_LEN + 1];  /* whose failure r->error names */
};

struct sync_missed {
	char id[DD_ID_HEX_LEN + 1];
	int64_t written;             /* the source's time (clamped) */
	bool listed;                 /* still in the list at the end */
};

#define SYNC_MISSED_MAX 4096u

/* Test hooks (tests/e2e/t0930-sync.sh): DEDUP_TEST_SYNC_BATCH=N ids per
 * fetch; DEDUP_TEST_SYNC_KILL_AFTER=N: SIGKILL this process once N
 * fetches are stored, as a kill at that point would. */
static uint64_t sync_test_env(const char *name, uint64_t max)
{
	const char *v = getenv(name);
	uint64_t n;

	if (v && dd_parse_u64(v, &n) == 0 && n >= 1 && n <= max)
		return n;
	return 0;
}

static bool sync_stopped(const struct sync_ctx *c)
{
	return c->o->stop && c->o->stop(c->o->stop_payload);
}

static void sync_note_error(struct sync_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The first error, as printable ASCII: it may quote what a source sent
 * (any bytes), and it goes into JSON, which wants whole UTF-8 characters
 * (cut at the size, a character could be halved). */
static void sync_note_error(struct sync_report *r, const char *fmt, ...)
{
	char raw[sizeof(r->error)];
	va_list ap;

	if (r->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_sanitize(r->error, sizeof(r->error), raw, (size_t)-1);
}

/* Errors that end the run rather than one snapshot. */
/* Snapshots refused for sync_max_clients that get a log line each. */
#define SYNC_REFUSED_LOGGED 10u

static bool sync_fatal(int rc)
{
	return rc == -ECONNREFUSED || rc == -EACCES || rc == -ENOSPC ||
	       rc == -ENOMEM || rc == -EINTR || rc == -EIO ||
	       backend_unavailable(rc);
}

/* ---- chunks ---- */

/* One POST /chunks/fetch of n ids, checked, then stored. */
static int sync_fetch_once(struct sync_ctx *c, const struct dd_id *ids,
			   size_t n)
{
	struct dd_bundle_record *recs;
	uint32_t stored = 0, dups = 0;
	size_t bad, i;
	int rc;

	recs = malloc(n * sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	dd_error_clear();
	rc = dd_httpc_request(c->src, "POST", DD_API_PREFIX "/chunks/fetch",
			      "application/octet-stream", ids,
			      n * sizeof(*ids), &c->resp);
	if (rc == 0)
		rc = syncwire_check_bundle(c->resp.data, c->resp.len, ids, n,
					   c->sealed_ok,
					   recs, &bad, &c->plain, c->dctx);
	if (rc == 0) {
		dd_error_clear();
		rc = store_ingest(c->st, c->dom, recs, n, &stored, &dups);
		/* this repository, not the source */
		if (rc == -EIO || backend_unavailable(rc))
			rc = log_wrap(rc, "cannot store chunks");
	}
	if (rc == 0 && c->kill_after && ++c->fetches >= c->kill_after)
		raise(SIGKILL);
	if (rc == 0) {
		c->r->chunks_copied += n;
		for (i = 0; i < n; i++) {
			c->r->bytes_copied += recs[i].plain_len;
			c->r->bytes_received += recs[i].stored_len;
		}
	}
	free(recs);
	return rc;
}

/*
 * Fetches and stores ids[0..n). A batch the source refuses or sends
 * damaged is split in halves, down to the first chunk at fault, storing
 * the good halves met on the way; the error names the bad chunk.
 */
static int sync_fetch(struct sync_ctx *c, const struct dd_id *ids, size_t n)
{
	char hex[DD_ID_HEX_LEN + 1];
	int rc, rc2;

	if (sync_stopped(c))
		return dd_error_set(-EINTR, "interrupted");
	rc = sync_fetch_once(c, ids, n);
	if (rc == 0 || sync_fatal(rc))
		return rc;
	if (n == 1) {
		dd_id_to_hex(hex, &ids[0]);
		/* -EBADMSG: what it sent failed our check; else the source
		 * would not send it (one it found damaged is dropped from
		 * its index: then "unknown chunk"). */
		snprintf(c->chunk_error, sizeof(c->chunk_error),
			 rc == -EBADMSG ? "chunk %s refused: %s" :
			 "chunk %s: the source cannot send it: %s", hex,
			 log_reason(rc));
		return rc;
	}
	/* The first chunk at fault fails the snapshot: no need to look for
	 * more (a source failing every request costs ~2 log2(n) of them). */
	rc = sync_fetch(c, ids, n / 2);
	if (rc < 0)
		return rc;
	rc2 = sync_fetch(c, ids + n / 2, n - n / 2);
	return rc2;
}

/* Stores those of ids[0..n) this repository lacks for c->dom. */
static int sync_need(struct sync_ctx *c, const struct dd_id *ids, size_t n)
{
	struct dd_chunk_loc loc;
	struct dd_id *miss;
	size_t i, m = 0, at;
	int rc = 0;

	if (n == 0)
		return 0;
	miss = malloc(n * sizeof(*miss));
	if (!miss)
		return -ENOMEM;
	for (i = 0; i < n && rc == 0; i++) {
		rc = domains_lookup(c->st, c->dom, &ids[i], &loc);
		/* a sealed copy here is no plain chunk's: the plain one
		 * replaces it when stored, as an upload's does */
		if (rc == -ENOENT || (rc == 0 && !c->sealed_ok &&
				      (loc.flags & DD_COMP_SEALED))) {
			miss[m++] = ids[i];
			rc = 0;
		}
	}
	for (at = 0; rc == 0 && at < m; at += c->batch)
		rc = sync_fetch(c, miss + at, m - at < c->batch ?
				m - at : c->batch);
	free(miss);
	return rc;
}

/* sync_need over a gathered batch, each id once. */
static int sync_need_batch(struct sync_ctx *c, struct dd_id *ids, size_t *n)
{
	int rc = sync_need(c, ids, dd_ids_sort_unique(ids, *n));

	*n = 0;
	return rc;
}

/* The file chunks the catalog (stored here already) names. */
static int sync_need_files(struct sync_ctx *c, const struct dd_id *cat,
			   size_t ncat)
{
	struct catsource *src = NULL;
	struct dd_entry e;
	struct dd_id *batch;
	size_t n = 0;
	uint64_t i;
	int rc;

	batch = malloc(SYNC_WALK_BATCH * sizeof(*batch));
	if (!batch)
		return -ENOMEM;
	rc = catsource_new(&src, c->st, cat, ncat);
	while (rc == 0) {
		rc = catsource_next(src, &e);
		if (rc <= 0)
			break;
		rc = 0;
		for (i = 0; i < e.nchunks && rc == 0; i++) {
			if (dd_chunk_ref_is_hole(&e.chunks[i]))
				continue;
			batch[n++] = e.chunks[i].id;
			if (n == SYNC_WALK_BATCH)
				rc = sync_need_batch(c, batch, &n);
		}
	}
	if (rc == 0)
		rc = sync_need_batch(c, batch, &n);
	catsource_free(src);
	free(batch);
	return rc;
}

/* ---- snapshots ---- */

/* The dedup domain of `client` here, as an upload of its would have. */
static void sync_set_domain(struct sync_ctx *c, const char *client)
{
	ssize_t at;

	if (!c->domains_used) {
		c->dom = NULL;
		return;
	}
	at = tokens_list_find(&c->clients, client);
	domains_tag_of(&c->dom_buf, at >= 0 ? c->clients.v[at].domain :
			TOKENS_DEFAULT_DOMAIN);
	c->dom = &c->dom_buf;
}

/* GET /snapshots/ID: the manifest, checked to be the one listed. */
static int sync_get_manifest(struct sync_ctx *c,
			     const struct syncwire_item *it, json_t **out)
{
	char path[160];
	json_t *m = NULL;
	int rc;

	snprintf(path, sizeof(path), DD_API_PREFIX "/snapshots/%s", it->id);
	rc = dd_httpc_get_json_bounded(c->src, path, DD_HTTPC_MAX_RESPONSE,
				       SYNC_MANIFEST_VALUES, &m);
	if (rc < 0)
		return rc;
	if (!json_is_object(m) ||
	    !json_is_string(json_object_get(m, "id")) ||
	    strcmp(json_string_value(json_object_get(m, "id")), it->id) != 0 ||
	    !json_is_string(json_object_get(m, "client")) ||
	    strcmp(json_string_value(json_object_get(m, "client")),
		   it->client) != 0) {
		json_decref(m);
		return dd_error_set(-EBADMSG, "the source's manifest does not "
				    "match its listing");
	}
	*out = m;
	return 0;
}

/* Copies one snapshot: catalog chunks, file chunks, then the manifest. */
static int sync_copy(struct sync_ctx *c, const struct syncwire_item *it)
{
	struct dd_id *cat = NULL;
	json_t *m = NULL;
	size_t ncat = 0;
	int rc;

	c->chunk_error[0] = '\0';
	sync_set_domain(c, it->client);
	rc = sync_get_manifest(c, it, &m);
	if (rc == 0)
		rc = snapshots_manifest_catalog(m, &cat, &ncat);
	/* the catalog (an encrypted snapshot's reference list too) is
	 * plain; the files' chunks are sealed only in an encrypted one */
	c->sealed_ok = false;
	if (rc == 0)
		rc = sync_need(c, cat, ncat);
	c->sealed_ok = rc == 0 && json_object_get(m, "sealed") != NULL;
	if (rc == 0)
		rc = sync_need_files(c, cat, ncat);
	/* "already here" (sync_one) is the import's to say: a 409 from the
	 * source (httpc's -EEXIST) is the source failing */
	if (rc == -EEXIST)
		rc = dd_error_set(-EPROTO, "the source answered 409: %s",
				  dd_error_last());
	if (rc == 0) {
		dd_error_clear();
		rc = snapshots_import(c->snaps, c->st, c->dom, it->client, m);
	}
	if (rc < 0 && c->chunk_error[0])
		dd_error_set(rc, "%s", c->chunk_error);
	free(cat);
	json_decref(m);
	return rc;
}

/* The names of the clients without a token here that have snapshots
 * (sync_open). */
static int sync_names_load(struct sync_ctx *c)
{
	struct snapshots_names *set = &c->names;
	size_t i, k = 0;
	int rc = snapshots_client_names(c->snaps, set);

	if (rc < 0)
		return rc;
	for (i = 0; i < set->n; i++)   /* stays sorted */
		if (tokens_list_find(&c->clients, set->v[i]) < 0)
			memcpy(set->v[k++], set->v[i], sizeof(set->v[i]));
	set->n = k;
	return 0;
}

/* Whether a snapshot of `client` may be copied here: a client with a
 * token or with snapshots here may; a new name only while fewer than
 * max_clients names without a token have snapshots here (a source read
 * with an admin token could otherwise list any number of them). 1: a new
 * name, now counted (sync_client_unadmit if nothing was copied). */
static int sync_client_admit(struct sync_ctx *c, const char *client)
{
	uint64_t max = c->o->max_clients ? c->o->max_clients :
		SYNC_MAX_CLIENTS_DEFAULT;

	if (tokens_list_find(&c->clients, client) >= 0 ||
	    snapshots_names_has(&c->names, client))
		return 0;
	if (c->names.n >= max)
		return dd_error_set(-EDQUOT, "client '%s' has no token and no "
				    "snapshot here, and %zu client names "
				    "without a token have snapshots here "
				    "already (sync_max_clients %llu)", client,
				    c->names.n, (unsigned long long)max);
	return snapshots_names_add(&c->names, client);
}

/* A new name whose snapshot was not copied no longer counts (unless
 * another of its snapshots is here by now). */
static void sync_client_unadmit(struct sync_ctx *c, const char *client)
{
	if (snapshots_count(c->snaps, client) == 0)
		snapshots_names_remove(&c->names, client);
}

static void sync_pending_at(struct sync_report *r, int64_t written)
{
	if (!r->oldest_pending || written < r->oldest_pending)
		r->oldest_pending = written;
}

/* Keeps a snapshot not copied for sync_recheck; false if no room. */
static bool sync_missed_add(struct sync_ctx *c, const char *id,
			    int64_t written)
{
	struct sync_missed *m;

	if (c->nmissed >= SYNC_MISSED_MAX)
		return false;
	if (!c->missed &&
	    !(c->missed = calloc(SYNC_MISSED_MAX, sizeof(*c->missed))))
		return false;
	m = &c->missed[c->nmissed++];
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->written = written;
	m->listed = false;
	return true;
}

static int sync_missed_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sync_missed *)a)->id,
		      ((const struct sync_missed *)b)->id);
}

/* sync_recheck's part of a listing: marks the snapshots still listed
 * (c->missed sorted by id). */
static void sync_recheck_item(struct sync_ctx *c,
			      const struct syncwire_item *it)
{
	struct sync_missed key, *m, *end = c->missed + c->nmissed;

	memcpy(key.id, it->id, sizeof(key.id));
	m = bsearch(&key, c->missed, c->nmissed, sizeof(*c->missed),
		    sync_missed_cmp);
	if (!m)
		return;
	/* an id a source listed twice failed twice: both are still listed */
	while (m > c->missed && sync_missed_cmp(m - 1, &key) == 0)
		m--;
	for (; m < end && sync_missed_cmp(m, &key) == 0; m++)
		m->listed = true;
}

/* One listed snapshot: skipped, present, copied or failed. */
static int sync_one(struct sync_ctx *c, const struct syncwire_item *it)
{
	int64_t written;
	int rc, admitted;

	if (c->o->newer_than && it->unix_written < c->o->newer_than)
		return 0;
	c->r->listed++;
	if (snapshots_has(c->snaps, it->id)) {
		c->r->present++;
		return 0;
	}
	admitted = sync_client_admit(c, it->client);
	if ((rc = admitted) < 0)
		;       /* reported as not copied, below */
	else if (it->damaged)
		rc = dd_error_set(-EBADMSG, "the source cannot read its "
				  "manifest");
	else
		rc = sync_copy(c, it);
	if (admitted == 1 && rc < 0 && rc != -EEXIST)
		sync_client_unadmit(c, it->client);
	if (rc == -EEXIST) {
		c->r->present++;
		return 0;
	}
	if (rc == 0) {
		c->r->copied++;
		log_info("sync: copied snapshot %s of client '%s'", it->id,
			 it->client);
		return 0;
	}
	if (sync_fatal(rc))
		return rc;
	c->r->failed++;
	/* the source's time, never later than this clock's: a source that
	 * says "written in the future" does not hide the lag */
	written = it->unix_written < dd_now() ? it->unix_written : dd_now();
	if (!sync_missed_add(c, it->id, written))
		sync_pending_at(c->r, written);
	if (!c->r->error[0])
		snprintf(c->error_id, sizeof(c->error_id), "%s", it->id);
	/* a source may list millions of new names: a few lines, then a
	 * count at the end of the run */
	if (admitted != -EDQUOT || ++c->refused_names <= SYNC_REFUSED_LOGGED)
		log_warning("sync: snapshot %s of client '%s' not copied: %s",
			    it->id, it->client, log_reason(rc));
	sync_note_error(c->r, "snapshot %s of client '%s' not copied: %s",
			it->id, it->client, log_reason(rc));
	return 0;
}

/* The position of the last item listed: the next must come after it. */
static int sync_list_order(struct snapshots_query *at,
			   const struct syncwire_item *it)
{
	struct snapshots_query q;
	int cmp;

	memset(&q, 0, sizeof(q));
	if (snapshots_cursor_parse(&q, it->cursor) < 0)
		return dd_error_set(-EPROTO, "the source listed a snapshot "
				    "with a bad cursor");
	cmp = !at->have_after ? 1 : q.after_ns != at->after_ns ?
		(q.after_ns > at->after_ns ? 1 : -1) :
		strcmp(q.after_id, at->after_id);
	if (cmp <= 0)
		return dd_error_set(-EPROTO, "the source's list goes back "
				    "(snapshot %s)", it->id);
	*at = q;
	return 0;
}

/* Every page of the source's list (of one client, or all). */
static int sync_list(struct sync_ctx *c, const char *client)
{
	char path[512], cursor[128] = "";
	struct syncwire_item it;
	struct snapshots_query at;
	json_t *page = NULL, *item;
	size_t i;
	int rc;

	memset(&at, 0, sizeof(at));

	for (;;) {
		snprintf(path, sizeof(path), DD_API_PREFIX "/snapshots?limit=%d"
			 "%s%s%s%s", SYNC_PAGE, client ? "&client=" : "",
			 client ? client : "", cursor[0] ? "&after=" : "",
			 cursor);
		rc = dd_httpc_get_json_bounded(c->src, path,
					       DD_HTTPC_MAX_RESPONSE,
					       SYNC_PAGE_VALUES, &page);
		if (rc < 0)
			return rc;
		if (!json_is_array(page) || json_array_size(page) > SYNC_PAGE) {
			json_decref(page);
			return dd_error_set(-EPROTO, "the source's snapshot "
					    "list is not a JSON array of at "
					    "most %d items", SYNC_PAGE);
		}
		if (json_array_size(page) == 0)
			break;
		json_array_foreach(page, i, item) {
			rc = syncwire_item_parse(item, tokens_name_valid, &it);
			if (rc < 0)
				rc = -EPROTO;
			/* each item after the one before, in the list's
			 * order: a source that pages backwards or repeats
			 * itself would keep the run going for ever */
			if (rc == 0)
				rc = sync_list_order(&at, &it);
			if (rc == 0 && client && strcmp(it.client, client) != 0)
				rc = dd_error_set(-EPROTO, "the source listed "
						  "a snapshot of client '%s' "
						  "when asked for '%s'",
						  it.client, client);
			if (rc == 0 && c->rechecking)
				/* stopping: the run's failures stay failures */
				rc = sync_stopped(c) ?
				     dd_error_set(-EINTR, "interrupted") :
				     (sync_recheck_item(c, &it), 0);
			else if (rc == 0)
				rc = sync_stopped(c) ?
				     dd_error_set(-EINTR, "interrupted") :
				     sync_one(c, &it);
			if (rc < 0)
				goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", it.cursor);
		json_decref(page);
		page = NULL;
	}
out:
	json_decref(page);
	return rc;
}

/* ---- the source ---- */

/* Refuses what is not a dedup server or does not take the token. */
static int sync_check_source(struct sync_ctx *c)
{
	json_t *j = NULL;
	int rc;

	rc = dd_httpc_get_json_bounded(c->src, DD_API_PREFIX "/health",
				       SYNC_SMALL_BYTES, SYNC_SMALL_VALUES, &j);
	if (rc == 0 && (!json_is_object(j) ||
			!json_is_true(json_object_get(j, "up")) ||
			!json_is_string(json_object_get(j, "version"))))
		rc = dd_error_set(-EPROTO, "no dedup health answer");
	json_decref(j);
	j = NULL;
	/* An HTTP answer that is not dedup's (httpc.h: a status error's
	 * reason starts "server: "), or no JSON: another kind of server. */
	if (rc == -ENOENT || rc == -EBADMSG || rc == -EACCES ||
	    (rc == -EPROTO && strncmp(dd_error_last(), "server: ", 8) == 0))
		return dd_error_set(-EPROTO, "'%s' is not a dedup server: %s",
				    c->o->from, dd_error_last());
	if (rc < 0)
		return rc;
	rc = dd_httpc_get_json_bounded(c->src, DD_API_PREFIX "/config",
				       SYNC_SMALL_BYTES, SYNC_SMALL_VALUES, &j);
	json_decref(j);
	if (rc == -EACCES)
		return dd_error_set(-EACCES, "the source '%s' rejected the "
				    "token: %s", c->o->from, dd_error_last());
	return rc == -EBADMSG ? -EPROTO : rc;
}

static int sync_open(struct sync_ctx *c, struct tokens *tok)
{
	struct dd_httpc_opts ho = {
		.server = c->o->from, .token = c->o->token, .ca = c->o->ca,
		.fingerprint = c->o->fingerprint,
		.user_agent = "dedup-server-sync/" DD_VERSION, .retries = -1,
		.cancel = c->o->stop, .cancel_payload = c->o->stop_payload,
		/* a source that trickles bytes must not hold a run for ever
		 * (a 64 MiB fetch then needs 110 KB/s) */
		.timeout_sec = (long)sync_test_env("DEDUP_TEST_SYNC_TIMEOUT_SEC",
						   86400),
	};
	int rc;

	dd_buf_init(&c->plain, 0);
	dd_buf_init(&c->resp, DD_MAX_FETCH_RESPONSE + 4096);
	c->batch = sync_test_env("DEDUP_TEST_SYNC_BATCH", SYNC_FETCH_BATCH);
	if (!c->batch)
		c->batch = SYNC_FETCH_BATCH;
	c->kill_after = sync_test_env("DEDUP_TEST_SYNC_KILL_AFTER", 1000000);
	if (!ho.timeout_sec)
		ho.timeout_sec = SYNC_REQUEST_TIMEOUT_SEC;
	if (strncmp(c->o->from, "https://", 8) != 0)
		return dd_error_set(-EPROTO, "source URL '%s' is not https://",
				    c->o->from);
	if (!(c->dctx = ZSTD_createDCtx()))
		return -ENOMEM;
	if (tok) {
		rc = tokens_copy(tok, &c->clients);
		if (rc < 0)
			return rc;
		c->domains_used = tokens_domains_used(tok);
	}
	if ((rc = sync_names_load(c)) < 0)
		return rc;
	return dd_httpc_new(&c->src, &ho);
}

static void sync_close(struct sync_ctx *c)
{
	dd_httpc_free(c->src);
	ZSTD_freeDCtx(c->dctx);
	dd_buf_release(&c->plain);
	dd_buf_release(&c->resp);
	tokens_list_release(&c->clients);
	snapshots_names_release(&c->names);
}

/* The source's whole list (all clients, or the run's). */
static int sync_list_all(struct sync_ctx *c)
{
	size_t i;
	int rc = 0;

	if (c->o->nclients == 0)
		return sync_list(c, NULL);
	for (i = 0; rc == 0 && i < c->o->nclients; i++)
		rc = sync_list(c, c->o->clients[i]);
	return rc;
}

/*
 * After a run that left snapshots behind: the source's list once more. A
 * snapshot it no longer lists was forgotten there during the run (a
 * forget or prune raced the copy): gone, neither failed nor lag. One it
 * still lists stays failed, whatever the source answered for it (a source
 * that lists what it cannot serve is failing). If the list cannot be
 * read now, every one stays failed.
 */
static void sync_recheck(struct sync_ctx *c)
{
	struct sync_report *r = c->r;
	bool error_gone = false;
	size_t i;

	if (!c->nmissed)
		return;
	qsort(c->missed, c->nmissed, sizeof(*c->missed), sync_missed_cmp);
	c->rechecking = true;
	if (sync_list_all(c) < 0) {
		log_warning("sync: cannot list the source again to tell a "
			    "forgotten snapshot from a failure: %s",
			    dd_error_last());
		for (i = 0; i < c->nmissed; i++)
			c->missed[i].listed = true;
	}
	c->rechecking = false;
	for (i = 0; i < c->nmissed; i++) {
		struct sync_missed *m = &c->missed[i];

		if (m->listed) {
			sync_pending_at(r, m->written);
			continue;
		}
		r->failed--;
		r->gone++;
		if (strcmp(m->id, c->error_id) == 0)
			error_gone = true;
		log_info("sync: snapshot %s was forgotten on the source "
			 "during the run (gone, not copied)", m->id);
	}
	if (error_gone) {
		r->error[0] = '\0';
		if (r->failed)
			sync_note_error(r, "%llu snapshots not copied (the "
					"log names each)",
					(unsigned long long)r->failed);
	}
}

int sync_run(struct store *st, struct snapshots *snaps, struct tokens *tok,
	     const struct sync_opts *o, struct sync_report *r)
{
	struct sync_ctx c;
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&c, 0, sizeof(c));
	r->started = dd_now();
	c.st = st;
	c.snaps = snaps;
	c.o = o;
	c.r = r;
	dd_error_clear();
	rc = sync_open(&c, tok);
	if (rc == 0)
		rc = sync_check_source(&c);
	if (rc == 0)
		rc = sync_list_all(&c);
	if (rc == 0)
		sync_recheck(&c);
	if (c.refused_names > SYNC_REFUSED_LOGGED)
		log_warning("sync: %llu more snapshots of client names new "
			    "here not copied (sync_max_clients)",
			    (unsigned long long)(c.refused_names -
						 SYNC_REFUSED_LOGGED));
	if (rc < 0) {
		r->error[0] = '\0';
		sync_note_error(r, "%s", log_reason(rc));
	} else if (r->failed) {
		rc = -EBADMSG;
	}
	free(c.missed);
	sync_close(&c);
	r->rc = rc;
	r->finished = dd_now();
	return rc;
}

/* ---- <repo>/sync.json ---- */

static void sync_state_path(char *out, size_t outsz, const char *repo)
{
	snprintf(out, outsz, "%s/%s", repo, SYNC_STATE_FILE);
}

/* The file's "last_ok_unix", or 0. */
static int64_t sync_state_last_ok(const char *repo)
{
	json_t *j = NULL, *v;
	int64_t t = 0;

	if (sync_state_load(repo, 0, &j) < 0)
		return 0;
	v = json_object_get(j, "last_ok_unix");
	if (json_is_integer(v))
		t = (int64_t)json_integer_value(v);
	json_decref(j);
	return t;
}

static const char *sync_result_name(int rc)
{
	if (rc == 0)
		return "ok";
	return rc == -EBADMSG ? "partial" : "failed";
}

int sync_exit_code(int rc)
{
	switch (rc) {
	case 0: return SYNC_EXIT_OK;
	case -ECONNREFUSED:
	case -EPROTO: return SYNC_EXIT_UNREACHABLE;
	case -EACCES: return SYNC_EXIT_TOKEN;
	default: return SYNC_EXIT_FAILED;
	}
}

/* A run's report as sync.json holds it (and its asker's answer). */
static json_t *sync_state_json(const char *repo, const char *from,
			       const struct sync_report *r)
{
	char t0[32], t1[32];
	int64_t last_ok = r->rc == 0 ? r->finished : sync_state_last_ok(repo);

	dd_format_time(t0, r->started);
	dd_format_time(t1, r->finished);
	return json_pack("{s:i, s:s, s:s, s:I, s:s, s:I, s:s, s:s?, s:I, "
			 "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:i}",
			 "version", 1, "from", from,
			 "started", t0, "started_unix", (json_int_t)r->started,
			 "finished", t1,
			 "finished_unix", (json_int_t)r->finished,
			 "result", sync_result_name(r->rc),
			 "error", r->error[0] ? r->error : NULL,
			 "snapshots_listed", (json_int_t)r->listed,
			 "snapshots_copied", (json_int_t)r->copied,
			 "snapshots_present", (json_int_t)r->present,
			 "snapshots_failed", (json_int_t)r->failed,
			 "snapshots_gone", (json_int_t)r->gone,
			 "chunks_copied", (json_int_t)r->chunks_copied,
			 "bytes_copied", (json_int_t)r->bytes_copied,
			 "bytes_received", (json_int_t)r->bytes_received,
			 "last_ok_unix", last_ok ? json_integer(last_ok) :
						  json_null(),
			 "oldest_pending_unix", r->oldest_pending ?
				 json_integer(r->oldest_pending) : json_null(),
			 "exit_code", sync_exit_code(r->rc));
}

static int sync_state_write(const char *repo, json_t *j)
{
	char path[4200];
	char *text;
	int rc;

	sync_state_path(path, sizeof(path), repo);
	text = json_dumps(j, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	rc = dd_write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	return rc;
}

int sync_state_save(const char *repo, const char *from,
		    const struct sync_report *r)
{
	json_t *j = sync_state_json(repo, from, r);
	int rc;

	if (!j)
		return -ENOMEM;
	rc = sync_state_write(repo, j);
	json_decref(j);
	return rc;
}

/* lag_seconds (sync.h). */
static json_t *sync_lag(json_t *j, int64_t now)
{
	json_t *pending = json_object_get(j, "oldest_pending_unix");
	json_t *ok = json_object_get(j, "last_ok_unix");
	int64_t since;

	if (json_is_integer(pending))
		since = (int64_t)json_integer_value(pending);
	else if (json_is_integer(ok))
		since = (int64_t)json_integer_value(ok);
	else
		return json_null();
	return json_integer(now > since ? now - since : 0);
}

int sync_state_load(const char *repo, int64_t now, json_t **out)
{
	char path[4200];
	uint8_t *data = NULL;
	size_t len = 0;
	json_t *j;
	int rc;

	*out = NULL;
	sync_state_path(path, sizeof(path), repo);
	rc = dd_read_file(path, 1 << 20, &data, &len);
	if (rc < 0)
		return rc;
	j = json_loadb((const char *)data, len, 0, NULL);
	free(data);
	if (!json_is_object(j)) {
		json_decref(j);
		return dd_error_set(-EBADMSG, "%s is damaged", path);
	}
	if (now && json_object_set_new(j, "lag_seconds", sync_lag(j, now)) < 0) {
		json_decref(j);
		return -ENOMEM;
	}
	*out = j;
	return 0;
}

/* ---- the serving process's thread ---- */

struct sync_daemon {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit;
	const char *repo;
	struct store *st;
	struct snapshots *snaps;
	struct tokens *tok;
	struct sync_opts o;
	unsigned interval;
	bool asked;                  /* run again now */
	/* Requests (syncask.h) found and not yet answered: those the next
	 * run answers, and those the run in progress will. */
	struct syncask_id next[SYNCASK_MAX], running[SYNCASK_MAX];
	size_t nnext, nrunning;
};

static bool sync_daemon_quitting(void *payload)
{
	struct sync_daemon *d = payload;
	bool q;

	pthread_mutex_lock(&d->mu);
	q = d->quit;
	pthread_mutex_unlock(&d->mu);
	return q;
}

/* Answers each of ids[] with `report`; logs what cannot be written. */
static void sync_answer_all(const char *repo, const struct syncask_id *ids,
			    size_t n, json_t *report)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (syncask_answer(repo, &ids[i], report) < 0)
			log_warning("sync: cannot answer request %s (removed "
				    "unanswered): %s", ids[i].s,
				    dd_error_last());
}

/* One run, its result logged, saved and given to those who asked. */
static void sync_daemon_run(struct sync_daemon *d)
{
	struct sync_report r;
	json_t *j;
	int rc;

	pthread_mutex_lock(&d->mu);
	memcpy(d->running, d->next, d->nnext * sizeof(d->next[0]));
	d->nrunning = d->nnext;
	d->nnext = 0;
	d->asked = false;
	pthread_mutex_unlock(&d->mu);
	sync_run(d->st, d->snaps, d->tok, &d->o, &r);
	if (r.rc == -EINTR)
		return;      /* stopping: the last result stands, and the
			      * requests are run for at the next start */
	if (r.rc == 0)
		log_info("sync from %s: %llu snapshots copied, %llu present, "
			 "%llu chunks (%llu bytes) fetched", d->o.from,
			 (unsigned long long)r.copied,
			 (unsigned long long)r.present,
			 (unsigned long long)r.chunks_copied,
			 (unsigned long long)r.bytes_received);
	else
		log_warning("sync from %s: %s", d->o.from, r.error);
	j = sync_state_json(d->repo, d->o.from, &r);
	rc = j ? sync_state_write(d->repo, j) : -ENOMEM;
	if (rc < 0)
		log_warning("sync: cannot write %s: %s", SYNC_STATE_FILE,
			    log_reason(rc));
	/* whatever happened, those who asked hear of this run: a request
	 * left pending would be run for again and again */
	if (!j)
		j = json_pack("{s:s, s:i, s:s}", "result", "failed",
			      "exit_code", SYNC_EXIT_FAILED, "error",
			      "the run's report could not be made (see the "
			      "server's log)");
	pthread_mutex_lock(&d->mu);
	if (j)
		sync_answer_all(d->repo, d->running, d->nrunning, j);
	d->nrunning = 0;
	pthread_mutex_unlock(&d->mu);
	json_decref(j);
}

/* Waits for the next run: the interval (0: forever), a request or quit. */
static void sync_daemon_wait(struct sync_daemon *d)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += d->interval;
	pthread_mutex_lock(&d->mu);
	while (!d->quit && !d->asked) {
		if (!d->interval)
			pthread_cond_wait(&d->cv, &d->mu);
		else if (pthread_cond_timedwait(&d->cv, &d->mu, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&d->mu);
}

static void *sync_daemon_main(void *arg)
{
	struct sync_daemon *d = arg;
	bool first = true;

	for (;;) {
		if (!first || !d->interval)
			sync_daemon_wait(d);
		first = false;
		if (sync_daemon_quitting(d))
			break;
		sync_daemon_run(d);
	}
	return NULL;
}

static bool sync_ids_have(const struct syncask_id *ids, size_t n,
			  const struct syncask_id *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(ids[i].s, id->s) == 0)
			return true;
	return false;
}

/* Without sync_from: each request is answered at once, as failed. */
static void sync_refuse_requests(const char *repo)
{
	struct syncask_id ids[SYNCASK_MAX];
	struct sync_report r;
	size_t n = 0;
	json_t *j;

	if (syncask_scan(repo, ids, SYNCASK_MAX, &n) < 0 || n == 0)
		return;
	memset(&r, 0, sizeof(r));
	r.started = r.finished = dd_now();
	r.rc = -EINVAL;
	snprintf(r.error, sizeof(r.error), "sync_from is not set in this "
		 "server's configuration");
	j = sync_state_json(repo, "", &r);
	if (!j || sync_state_write(repo, j) < 0)
		log_warning("sync: cannot write %s", SYNC_STATE_FILE);
	if (j)
		sync_answer_all(repo, ids, n, j);
	json_decref(j);
}

void sync_daemon_poll(struct sync_daemon *d, const char *repo)
{
	struct syncask_id ids[SYNCASK_MAX];
	size_t n = 0, i;
	int rc;

	if (!d) {
		sync_refuse_requests(repo);
		return;
	}
	/* under the lock: a run answering its requests meanwhile would
	 * otherwise leave one seen as pending here, and run for it again */
	pthread_mutex_lock(&d->mu);
	rc = syncask_scan(repo, ids, SYNCASK_MAX, &n);
	for (i = 0; rc == 0 && i < n && d->nnext < SYNCASK_MAX; i++) {
		if (sync_ids_have(d->next, d->nnext, &ids[i]) ||
		    sync_ids_have(d->running, d->nrunning, &ids[i]))
			continue;
		d->next[d->nnext++] = ids[i];
		d->asked = true;
	}
	if (d->asked)
		pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (rc < 0)
		log_warning("sync: %s", dd_error_last());
}

int sync_daemon_start(struct sync_daemon **out, const char *repo,
		      struct store *st, struct snapshots *snaps,
		      struct tokens *tok, const struct sync_opts *o,
		      unsigned interval)
{
	struct sync_daemon *d;

	*out = NULL;
	if (!(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	d->repo = repo;
	d->st = st;
	d->snaps = snaps;
	d->tok = tok;
	d->o = *o;
	d->o.stop = sync_daemon_quitting;
	d->o.stop_payload = d;
	d->interval = interval;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	/* requests left by a stop or a kill during a run: the first run
	 * answers them */
	sync_daemon_poll(d, repo);
	if (pthread_create(&d->thread, NULL, sync_daemon_main, d) != 0) {
		pthread_mutex_destroy(&d->mu);
		pthread_cond_destroy(&d->cv);
		free(d);
		return dd_error_set(-EAGAIN, "cannot start the sync thread");
	}
	*out = d;
	return 0;
}

void sync_daemon_free(struct sync_daemon *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->quit = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
}
