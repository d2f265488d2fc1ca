/*
 * snap_create.c - a new snapshot (snapshots_create, _create_guarded,
 * snapshots_barrier) and one imported from another server
 * (snapshots_import): the request's fields, its catalog's references
 * looked up in batches, the manifest written and copied to the pool,
 * the last check on a shared pool. See snapshots.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backend.h"
#include "catalog.h"
#include "log.h"
#include "proto.h"
#include "catsource.h"
#include "domains.h"
#include "snapshots_impl.h"

/* ---- JSON field checks ---- */

bool snap_is_hex64(const char *s)
{
	return strlen(s) == DD_ID_HEX_LEN && dd_hex_lower(s, DD_ID_HEX_LEN);
}

/* An integer >= 0 (and <= max); missing is `def` when optional. */
static int snap_get_uint(json_t *o, const char *key, bool required,
			 int64_t max, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (required)
			return dd_error_set(-EINVAL, "missing field '%s'", key);
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return dd_error_set(-EINVAL, "field '%s' must be an integer",
				    key);
	if (json_integer_value(v) < 0 || json_integer_value(v) > max)
		return dd_error_set(-EINVAL, "field '%s' is out of range", key);
	*out = json_integer_value(v);
	return 0;
}

/* A request, validated. */
struct snap_request {
	const char *host;
	json_t *paths;
	struct dd_id *catalog;
	size_t ncatalog;
	const char *parent;        /* NULL for none */
	const char *sealed;        /* hex, NULL for a plain snapshot */
	int64_t time_start;
	int64_t bytes_new, chunks_new, bytes_sent;
};

/* An encrypted snapshot's sealed metadata: checked for shape only. */
static bool snap_is_sealed_hex(const json_t *v)
{
	const char *p = json_string_value(v);
	size_t n = json_string_length(v);

	if (!p || n < 2 || n > SNAPSHOTS_SEALED_MAX || n % 2)
		return false;
	return strspn(p, "0123456789abcdef") == n;
}

static int snap_parse_request(struct snap_request *rq, json_t *root)
{
	json_t *v, *item;
	size_t i, n;
	int rc;

	memset(rq, 0, sizeof(*rq));
	if (!json_is_object(root))
		return dd_error_set(-EINVAL, "request must be a JSON object");

	v = json_object_get(root, "host");
	if (!json_is_string(v))
		return dd_error_set(-EINVAL, "field 'host' must be a string");
	n = json_string_length(v);
	if (n < 1 || n > SNAPSHOTS_HOST_MAX)
		return dd_error_set(-EINVAL, "field 'host' must be 1 to %d bytes",
				    SNAPSHOTS_HOST_MAX);
	rq->host = json_string_value(v);

	v = json_object_get(root, "paths");
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > SNAPSHOTS_PATHS_MAX)
		return dd_error_set(-EINVAL, "field 'paths' must be an array "
				    "of 1 to %d paths", SNAPSHOTS_PATHS_MAX);
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) || json_string_length(item) < 1 ||
		    json_string_length(item) > SNAPSHOTS_PATH_MAX ||
		    json_string_value(item)[0] != '/')
			return dd_error_set(-EINVAL, "paths[%zu] must be an "
					    "absolute path of at most %d bytes",
					    i, SNAPSHOTS_PATH_MAX);
	}
	rq->paths = v;

	v = json_object_get(root, "catalog");
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > DD_MAX_CATALOG_CHUNKS)
		return dd_error_set(-EINVAL, "field 'catalog' must be an array "
				    "of 1 to %u chunk ids",
				    DD_MAX_CATALOG_CHUNKS);
	rq->ncatalog = json_array_size(v);
	rq->catalog = malloc(rq->ncatalog * sizeof(*rq->catalog));
	if (!rq->catalog)
		return -ENOMEM;
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) ||
		    json_string_length(item) != DD_ID_HEX_LEN ||
		    dd_id_from_hex(&rq->catalog[i], json_string_value(item)) < 0)
			return dd_error_set(-EINVAL, "catalog[%zu] is not a chunk "
					    "id (64 hex digits)", i);
	}

	v = json_object_get(root, "parent");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || !snap_is_hex64(json_string_value(v)))
			return dd_error_set(-EINVAL, "field 'parent' must be null "
					    "or a snapshot id");
		rq->parent = json_string_value(v);
	}

	v = json_object_get(root, "sealed");
	if (v && !json_is_null(v)) {
		if (!snap_is_sealed_hex(v))
			return dd_error_set(-EINVAL, "field 'sealed' must be an "
					    "even number of hex digits, at most "
					    "%u", SNAPSHOTS_SEALED_MAX);
		rq->sealed = json_string_value(v);
	}

	rc = snap_get_uint(root, "time_start", true, SNAPSHOTS_TIME_MAX,
			   &rq->time_start);
	if (rc == 0)
		rc = snap_get_uint(root, "bytes_new", false, INT64_MAX,
				   &rq->bytes_new);
	if (rc == 0)
		rc = snap_get_uint(root, "chunks_new", false, INT64_MAX,
				   &rq->chunks_new);
	if (rc == 0)
		rc = snap_get_uint(root, "bytes_sent", false, INT64_MAX,
				   &rq->bytes_sent);
	return rc;
}

struct snap_counts {
	uint64_t files, dirs, symlinks, bytes_total, chunks_total;
};

/* References checked in one create, remembered so that a chunk named
 * again is not looked up again: files share chunks, and a hostile
 * catalog can name one chunk millions of times (its size is bounded in
 * plain bytes, which such a catalog compresses to almost nothing). */
#define SNAP_SEEN_SLOTS 4096u

struct snap_seen {
	struct dd_id id;
	uint32_t plain_len;
	bool used;
};

/* References waiting to be looked up together (domains_lookup_many, one
 * pass over the index in key order instead of a lookup each), in catalog
 * order, each with the length its entry claims and that entry's number
 * (to name it in an error). 1.4 MiB, malloc'ed a create. */
#define SNAP_REFS_BATCH 16384u

struct snap_refs {
	struct snap_seen seen[SNAP_SEEN_SLOTS];
	struct dd_id ids[SNAP_REFS_BATCH];
	struct dd_chunk_loc locs[SNAP_REFS_BATCH];
	int rcs[SNAP_REFS_BATCH];
	uint32_t plain_len[SNAP_REFS_BATCH];
	uint64_t entry[SNAP_REFS_BATCH];
	size_t n;
};

/* The path of the catalog's entry number `entry`, for an error message
 * ("?" when it cannot be read again). */
static void snap_entry_path(struct store *st, const struct snap_request *rq,
			    uint64_t entry, char *out, size_t outsz)
{
	struct catsource *src = NULL;
	struct dd_entry e;
	uint64_t k = 0;
	int rc = catsource_new(&src, st, rq->catalog, rq->ncatalog);

	snprintf(out, outsz, "?");
	while (rc == 0 && (rc = catsource_next(src, &e)) > 0) {
		if (k++ == entry) {
			log_sanitize(out, outsz, e.path, e.path_len);
			break;
		}
		rc = 0;
	}
	catsource_free(src);
}

/* The verdict on waiting reference i, looked up as rc and loc: 0, or
 * the error that fails the create. */
static int snap_ref_verdict(struct store *st, const struct snap_request *rq,
			    const struct snap_refs *r, size_t i, int rc,
			    const struct dd_chunk_loc *loc)
{
	char hex[DD_ID_HEX_LEN + 1], path[200];

	if (rc == -ENOENT) {
		dd_id_to_hex(hex, &r->ids[i]);
		return dd_error_set(-ENOENT, "snapshot references missing "
				    "chunk %s", hex);
	}
	if (rc < 0 || loc->plain_len == r->plain_len[i])
		return rc;
	dd_id_to_hex(hex, &r->ids[i]);
	snap_entry_path(st, rq, r->entry[i], path, sizeof(path));
	return dd_error_set(-EINVAL, "invalid catalog: entry '%s' gives chunk "
			    "%s length %u, stored length is %u", path, hex,
			    r->plain_len[i], loc->plain_len);
}

/* Looks the waiting references up; the first in catalog order that is
 * missing or stored with another length fails the create. After a read
 * error (or out of memory) the batch goes again one by one, as creates
 * always did, so that an earlier reference's fault is named first, and a
 * block the batch's pass read but no lookup needs fails nothing. Storage
 * that did not answer (the pool's shared index, asked for the chunks this
 * front-end holds for other domains) fails the create at once with its
 * own error: never as a missing chunk, which the one-by-one pass (local
 * only) would make of a chunk the pool would have granted, and which
 * sends the agent to read and upload everything again. */
static int snap_refs_check(struct store *st, const struct domains_tag *dom,
			   const struct snap_request *rq, struct snap_refs *r)
{
	size_t i, n = r->n;
	int rc;

	r->n = 0;
	rc = domains_lookup_many(st, dom, r->ids, n, r->locs, r->rcs);
	if (backend_unavailable(rc))
		return rc;
	if (rc < 0) {
		for (i = 0, rc = 0; rc == 0 && i < n; i++)
			rc = snap_ref_verdict(st, rq, r, i,
					      domains_lookup(st, dom, &r->ids[i],
							     &r->locs[i]),
					      &r->locs[i]);
		return rc;
	}
	for (i = 0; rc == 0 && i < n; i++)
		rc = snap_ref_verdict(st, rq, r, i, r->rcs[i], &r->locs[i]);
	return rc;
}

/* Queues a reference of entry number `entry` unless the create has
 * queued it already; checks the queue when it is full. */
static int snap_refs_add(struct store *st, const struct domains_tag *dom,
			 const struct snap_request *rq, struct snap_refs *r,
			 const struct dd_chunk_ref *ref, uint64_t entry)
{
	struct snap_seen *slot;
	uint32_t h;

	memcpy(&h, ref->id.b, sizeof(h));  /* ids are uniform: any 4 bytes */
	slot = &r->seen[h % SNAP_SEEN_SLOTS];
	if (slot->used && dd_id_eq(&slot->id, &ref->id) &&
	    slot->plain_len == ref->plain_len)
		return 0;               /* queued already */
	slot->id = ref->id;
	slot->plain_len = ref->plain_len;
	slot->used = true;
	r->ids[r->n] = ref->id;
	r->plain_len[r->n] = ref->plain_len;
	r->entry[r->n] = entry;
	if (++r->n < SNAP_REFS_BATCH)
		return 0;
	return snap_refs_check(st, dom, rq, r);
}

/* Adds an entry to the counts. */
static int snap_count_entry(const struct dd_entry *e, struct snap_counts *cnt)
{
	switch (e->type) {
	case DD_ENTRY_FILE:
		cnt->files++;
		cnt->bytes_total += e->size;
		cnt->chunks_total += dd_entry_data_chunks(e);
		return 0;
	case DD_ENTRY_DIR:
		cnt->dirs++;
		return 0;
	case DD_ENTRY_SYMLINK:
		cnt->symlinks++;
		return 0;
	case DD_ENTRY_HARDLINK:  /* catalog version 2: not counted */
	case DD_ENTRY_FIFO:
	case DD_ENTRY_CHR:
	case DD_ENTRY_BLK:
		return 0;
	default:
		return dd_error_set(-EINVAL, "invalid catalog: unknown entry "
				    "type %u", e->type);
	}
}

/* Reads every entry, counts, and checks each file chunk is stored with
 * the length the catalog claims. A reference's error comes before the
 * error of an entry after it, as if each were checked where it is read. */
static int snap_check_catalog(struct store *st, const struct domains_tag *dom,
			      const struct snap_request *rq,
			      struct snap_counts *cnt)
{
	struct catsource *src = NULL;
	struct snap_refs *refs = malloc(sizeof(*refs));
	struct dd_entry e;
	uint64_t i, entry;
	int rc, ref_rc;

	memset(cnt, 0, sizeof(*cnt));
	if (!refs)
		return -ENOMEM;
	memset(refs->seen, 0, sizeof(refs->seen));
	refs->n = 0;
	rc = catsource_new(&src, st, rq->catalog, rq->ncatalog);
	for (entry = 0; rc == 0; entry++) {
		rc = catsource_next(src, &e);
		if (rc == 0)
			break;
		/* A missing or unreadable chunk keeps its message. */
		if (rc == -EBADMSG)
			rc = log_wrap(-EINVAL, "invalid catalog");
		if (rc > 0)
			rc = snap_count_entry(&e, cnt);
		for (i = 0; rc == 0 && i < e.nchunks; i++) {
			if (dd_chunk_ref_is_hole(&e.chunks[i]))
				continue;    /* catalog version 3: no chunk */
			rc = snap_refs_add(st, dom, rq, refs, &e.chunks[i],
					   entry);
		}
	}
	if (refs->n) {
		char why[512];

		snprintf(why, sizeof(why), "%s", dd_error_last());
		ref_rc = snap_refs_check(st, dom, rq, refs);
		if (ref_rc < 0)
			rc = ref_rc;
		else if (rc < 0)
			dd_error_set(rc, "%s", why);
	}
	catsource_free(src);
	free(refs);
	return rc;
}

/* ---- create ---- */

/* The manifest's copy in the store: put-once (a copy already there is the
 * same manifest: its id is its digest). */
static int snap_mirror_put(struct snapshots *s, const char *id,
			   const char *buf, size_t len)
{
	char name[128];
	int rc;

	if (!s->mirror)
		return 0;
	snap_object(name, sizeof(name), id);
	dd_error_clear();
	rc = backend_put(s->mirror, name, buf, len);
	if (rc == 0)
		snap_pool_changed(s);
	if (rc == -EEXIST)
		return 0;
	return rc < 0 && rc != -ENOMEM && !backend_unavailable(rc) ? -EIO : rc;
}

/* Removes the manifest of a snapshot that was not acknowledged, and
 * makes that durable: one left behind would be listed after a restart
 * although its client was told it failed (and no collection marked its
 * chunks meanwhile). A failure is logged loudly, naming the file. */
static void snap_unlink(struct snapshots *s, const char *id, const char *path)
{
	char why[256] = "";

	if (unlink(path) < 0 && errno != ENOENT)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else if (dd_fsync_dir(s->dir) < 0)
		snprintf(why, sizeof(why), "%s", dd_error_last());
	if (why[0])
		log_error("snapshot %s was refused but its manifest may stay "
			  "(%s): remove '%s' with the server stopped", id, why,
			  path);
}

/* Writes text + "\n" to path durably, and to the store's copy; on a
 * failure nothing is left of a manifest that was not there before. */
static int snap_write(struct snapshots *s, const char *id, const char *path,
		      const char *text, size_t len)
{
	char *buf = malloc(len + 1);
	bool existed = access(path, F_OK) == 0;
	int rc;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, text, len);
	buf[len] = '\n';
	dd_error_clear();
	/* A failure after its rename (the directory's fsync) leaves the
	 * file in place: removed below like a failed pool copy. */
	rc = dd_write_file_atomic(path, buf, len + 1, 0600);
	/* Acknowledged only once the store holds it too, so the pool alone
	 * can give back every acknowledged snapshot. */
	if (rc == 0) {
		rc = snap_mirror_put(s, id, buf, len + 1);
		/* timed out: maybe in the pool all the same */
		if (backend_unavailable(rc)) {
			char why[512];

			snprintf(why, sizeof(why), "%s", dd_error_last());
			snap_unsure_add(s, id);
			dd_error_set(rc, "%s", why);
		}
	}
	if (rc < 0 && !existed) {
		char why[512];

		snprintf(why, sizeof(why), "%s", dd_error_last());
		snap_unlink(s, id, path);
		dd_error_set(rc, "%s", why);
	}
	free(buf);
	/* Its message names the file. */
	if (rc == -ENOSPC || rc == -EDQUOT)
		rc = -ENOSPC;
	else if (rc < 0 && rc != -ENOMEM && !backend_unavailable(rc))
		rc = -EIO;
	return rc;
}

static int snap_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct dd_id));
}

/* A catalog naming one chunk twice would make a create read it again and
 * again (65,536 times at most) while it holds off the collector. */
static int snap_check_distinct(const struct snap_request *rq)
{
	struct dd_id *v = malloc(rq->ncatalog * sizeof(*v));
	char hex[DD_ID_HEX_LEN + 1];
	size_t i;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	memcpy(v, rq->catalog, rq->ncatalog * sizeof(*v));
	qsort(v, rq->ncatalog, sizeof(*v), snap_id_cmp);
	for (i = 1; i < rq->ncatalog; i++) {
		if (dd_id_eq(&v[i - 1], &v[i])) {
			dd_id_to_hex(hex, &v[i]);
			rc = dd_error_set(-EINVAL, "field 'catalog' names chunk "
					  "%s more than once", hex);
			break;
		}
	}
	free(v);
	return rc;
}

/* The agent's clock may be a little ahead of ours, not more. */
static int snap_check_time(const struct snap_request *rq, int64_t now)
{
	if (rq->time_start > now + SNAPSHOTS_CLOCK_SKEW)
		return dd_error_set(-EINVAL, "field 'time_start' is %lld s "
				    "ahead of the server's clock (at most %d s "
				    "allowed): check the client's clock",
				    (long long)(rq->time_start - now),
				    SNAPSHOTS_CLOCK_SKEW);
	return 0;
}

static int snap_check_limit(struct snapshots *s, const char *client)
{
	uint64_t have = snapshots_count(s, client), max;

	pthread_rwlock_rdlock(&s->lock);
	max = s->max_per_client;
	pthread_rwlock_unlock(&s->lock);
	if (max && have >= max)
		return dd_error_set(-EDQUOT, "client '%s' has %llu snapshots, "
				    "the limit is %llu "
				    "(max_snapshots_per_client): forget old "
				    "ones first", client,
				    (unsigned long long)have,
				    (unsigned long long)max);
	return 0;
}

/* Every catalog chunk must be stored (for the client's domain: on a
 * shared pool a chunk held here for others is asked of the pool, as the
 * file chunks are) before we read any, and together within the bound;
 * *cat is their ids as a JSON array. */
static int snap_lookup_catalog(struct store *st, const struct domains_tag *dom,
			       const struct snap_request *rq, json_t *cat,
			       uint64_t *catalog_bytes)
{
	struct dd_chunk_loc *locs = malloc(rq->ncatalog * sizeof(*locs));
	int *rcs = malloc(rq->ncatalog * sizeof(*rcs));
	char hex[DD_ID_HEX_LEN + 1];
	size_t i;
	int rc = -ENOMEM;

	*catalog_bytes = 0;
	if (locs && rcs)
		rc = domains_lookup_many(st, dom, rq->catalog, rq->ncatalog,
					 locs, rcs);
	for (i = 0; rc == 0 && i < rq->ncatalog; i++) {
		dd_id_to_hex(hex, &rq->catalog[i]);
		if (rcs[i] == -ENOENT) {
			rc = dd_error_set(-ENOENT, "snapshot references "
					  "missing chunk %s", hex);
			break;
		}
		if ((rc = rcs[i]) < 0)
			break;
		*catalog_bytes += locs[i].plain_len;
		if (*catalog_bytes > SNAPSHOTS_CATALOG_BYTES_MAX)
			rc = dd_error_set(-EINVAL, "catalog is larger than "
					  "%llu bytes", (unsigned long long)
					  SNAPSHOTS_CATALOG_BYTES_MAX);
		else if (json_array_append_new(cat, json_string(hex)) < 0)
			rc = -ENOMEM;
	}
	free(locs);
	free(rcs);
	return rc;
}

/* snap_manifest without the sealed part. */
static json_t *snap_manifest_clear(const struct snap *e,
				   const struct snap_request *rq, json_t *cat,
				   uint64_t catalog_bytes,
				   const struct snap_counts *cnt)
{
	char t0[32], t1[32];

	dd_format_time(t0, rq->time_start);
	dd_format_time(t1, e->written_ns / SNAPSHOTS_NS);
	return json_pack("{s:i, s:s, s:s, s:s, s:O, s:s, s:I, s:s, s:I, s:I, "
			 "s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I}",
			 "version", 1,
			 "id", e->id,
			 "client", e->client,
			 "host", rq->host,
			 "paths", rq->paths,
			 "time", t0,
			 "unix_time", (json_int_t)rq->time_start,
			 "time_end", t1,
			 "unix_written", (json_int_t)(e->written_ns /
						      SNAPSHOTS_NS),
			 "written_ns", (json_int_t)e->written_ns,
			 "parent", rq->parent ? json_string(rq->parent) :
						json_null(),
			 "catalog", cat,
			 "catalog_bytes", (json_int_t)catalog_bytes,
			 "files", (json_int_t)cnt->files,
			 "dirs", (json_int_t)cnt->dirs,
			 "symlinks", (json_int_t)cnt->symlinks,
			 "bytes_total", (json_int_t)cnt->bytes_total,
			 "chunks_total", (json_int_t)cnt->chunks_total,
			 "bytes_new", (json_int_t)rq->bytes_new,
			 "chunks_new", (json_int_t)rq->chunks_new,
			 "bytes_sent", (json_int_t)rq->bytes_sent);
}

/* The manifest of e; it takes the reference to cat, even on failure. An
 * encrypted snapshot's sealed part is kept as the client sent it. */
static json_t *snap_manifest(const struct snap *e, const struct snap_request *rq,
			     json_t *cat, uint64_t catalog_bytes,
			     const struct snap_counts *cnt)
{
	json_t *m = snap_manifest_clear(e, rq, cat, catalog_bytes, cnt);

	if (m && rq->sealed &&
	    json_object_set_new(m, "sealed", json_string(rq->sealed)) < 0) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* What the index keeps of a snapshot, from its request and its counts. */
static void snap_fill(struct snap *e, const struct snap_request *rq,
		      const struct snap_counts *cnt, uint64_t catalog_bytes)
{
	e->unix_time = rq->time_start;
	e->bytes_total = cnt->bytes_total;
	e->catalog_bytes = catalog_bytes;
	e->bytes_new = (uint64_t)rq->bytes_new;
	e->bytes_sent = (uint64_t)rq->bytes_sent;
	e->ncatalog = rq->ncatalog;
}

/* Digests e's manifest m, and writes it durably (*text: its bytes, the
 * caller frees). Not yet in the index. */
static int snap_persist(struct snapshots *s, struct snap *e, json_t *m,
			char **text, size_t *tlen)
{
	char path[4200];
	int rc = snap_digests(e, m);

	if (rc == 0)
		rc = snap_dump(m, text, tlen);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s.json", s->dir, e->id);
	return snap_write(s, e->id, path, *text, *tlen);
}

static int64_t snap_now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * SNAPSHOTS_NS + now.tv_nsec;
}

/*
 * What a create and an import share, under the commit lock: checks the
 * request's catalog against the store and builds e's manifest (*out). e
 * comes with its id and client; its written_ns is `written_ns`, or the
 * time the check ended when that is 0. A nonzero `synced_ns` is written
 * as the manifest's "synced_ns" (an imported copy: when this server wrote
 * it).
 */
static int snap_build(struct store *st, const struct domains_tag *dom,
		      const struct snap_request *rq, struct snap *e,
		      int64_t written_ns, int64_t synced_ns, json_t **out)
{
	struct snap_counts cnt;
	uint64_t catalog_bytes = 0;
	json_t *cat = json_array(), *m;
	int rc;

	*out = NULL;
	if (!cat)
		return -ENOMEM;
	rc = snap_lookup_catalog(st, dom, rq, cat, &catalog_bytes);
	if (rc == 0)
		rc = snap_check_catalog(st, dom, rq, &cnt);
	if (rc < 0) {
		json_decref(cat);
		return rc;
	}
	e->written_ns = written_ns ? written_ns : snap_now_ns();
	snap_fill(e, rq, &cnt, catalog_bytes);
	m = snap_manifest(e, rq, cat, catalog_bytes, &cnt); /* takes cat */
	if (m && synced_ns &&
	    json_object_set_new(m, "synced_ns",
				json_integer((json_int_t)synced_ns)) < 0) {
		json_decref(m);
		m = NULL;
	}
	*out = m;
	return m ? 0 : -ENOMEM;
}

/* Parses and checks what can be checked without the store. */
static int snap_parse_body(struct snapshots *s, const char *client,
			   const uint8_t *body, size_t len, json_t **root,
			   struct snap_request *rq)
{
	json_error_t jerr;
	int rc;

	if (!body || len == 0)
		return dd_error_set(-EINVAL, "empty request body");
	*root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
			   &jerr);
	if (!*root) {
		char clean[200];

		log_sanitize(clean, sizeof(clean), jerr.text, (size_t)-1);
		return dd_error_set(-EINVAL, "invalid JSON: %s (line %d)", clean,
				    jerr.line);
	}
	rc = snap_parse_request(rq, *root);
	if (rc == 0)
		rc = snap_check_time(rq, dd_now());
	if (rc == 0)
		rc = snap_check_distinct(rq);
	if (rc == 0)
		rc = snap_check_limit(s, client);
	return rc;
}

/* ---- the last check on a shared pool ---- */

#define SNAP_VERIFY_BATCH 4096

/* Ids waiting to be checked against the shared index. */
struct snap_verify {
	struct store *st;
	struct dd_id ids[SNAP_VERIFY_BATCH];
	uint8_t absent[SNAP_VERIFY_BATCH / 8];
	size_t n;
};

static int snap_verify_flush(struct snap_verify *v)
{
	char hex[DD_ID_HEX_LEN + 1];
	size_t i;
	int rc;

	if (!v->n)
		return 0;
	rc = store_shared_verify(v->st, v->ids, v->n, v->absent);
	for (i = 0; rc == 0 && i < v->n; i++) {
		if (!(v->absent[i / 8] & (1u << (i % 8))))
			continue;
		dd_id_to_hex(hex, &v->ids[i]);
		rc = dd_error_set(-ENOENT, "snapshot references missing chunk "
				  "%s: a collection on another front-end "
				  "removed it while this backup ran; run the "
				  "backup again", hex);
	}
	v->n = 0;
	return rc;
}

static int snap_verify_add(struct snap_verify *v, const struct dd_id *id)
{
	v->ids[v->n++] = *id;
	return v->n == SNAP_VERIFY_BATCH ? snap_verify_flush(v) : 0;
}

static int snap_verify_chunk(void *v, const struct dd_chunk_ref *ref)
{
	return snap_verify_add(v, &ref->id);
}

/* Every chunk the request references, checked in the shared index: the
 * catalog's own chunks first, then its entries' chunks. */
static int snap_recheck(struct store *st, const struct snap_request *rq)
{
	struct snap_verify *v = calloc(1, sizeof(*v));
	size_t k;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	v->st = st;
	for (k = 0; rc == 0 && k < rq->ncatalog; k++)
		rc = snap_verify_add(v, &rq->catalog[k]);
	if (rc == 0)
		rc = snap_verify_flush(v);
	if (rc == 0)
		rc = catsource_each_chunk(st, rq->catalog, rq->ncatalog,
					  snap_verify_chunk, v);
	if (rc == 0)
		rc = snap_verify_flush(v);
	free(v);
	return rc;
}

/* Removes the manifest a guard refused (the pool's copy first). */
static void snap_unwrite(struct snapshots *s, const char *id)
{
	char name[128], path[4200];
	int rc;

	if (s->mirror) {
		snap_object(name, sizeof(name), id);
		rc = backend_remove(s->mirror, name);
		if (rc == 0)
			snap_pool_changed(s);
		else if (rc != -ENOENT)
			snap_unsure_add(s, id);  /* removed by the tick */
	}
	snprintf(path, sizeof(path), "%s/%s.json", s->dir, id);
	snap_unlink(s, id, path);
}

/* The guard of snapshots_create_guarded, for a persisted manifest. */
static int snap_guard(struct snapshots *s, struct store *st,
		      const struct snapshots_guard *g,
		      const struct snap_request *rq, const char *id)
{
	char why[512];
	int rc = g->commit(g->payload);

	if (rc == 1)
		rc = snap_recheck(st, rq);
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s", dd_error_last());
		snap_unwrite(s, id);
		dd_error_set(rc, "%s", why);
	}
	return rc;
}

int snapshots_create(struct snapshots *s, struct store *st,
		     const struct domains_tag *dom, const char *client,
		     const uint8_t *body, size_t len, char **out,
		     size_t *out_len)
{
	return snapshots_create_guarded(s, st, dom, client, body, len, NULL,
					out, out_len);
}

/* Marks a create of `client` running: -EBUSY when one is already. */
static int snap_client_enter(struct snapshots *s, const char *client)
{
	int rc = 0;

	pthread_mutex_lock(&s->busy_lock);
	for (size_t i = 0; i < s->nbusy && rc == 0; i++)
		if (strcmp(s->busy[i], client) == 0)
			rc = dd_error_set(-EBUSY, "a snapshot of client '%s' "
					  "is being created: try again when it "
					  "is done", client);
	if (rc == 0 && s->nbusy == s->abusy) {
		size_t a = s->abusy ? 2 * s->abusy : 8;
		void *v = realloc(s->busy, a * sizeof(*s->busy));

		if (v) {
			s->busy = v;
			s->abusy = a;
		} else {
			rc = -ENOMEM;
		}
	}
	if (rc == 0)
		snprintf(s->busy[s->nbusy++], sizeof(s->busy[0]), "%s",
			 client);
	pthread_mutex_unlock(&s->busy_lock);
	return rc;
}

static void snap_client_leave(struct snapshots *s, const char *client)
{
	pthread_mutex_lock(&s->busy_lock);
	for (size_t i = 0; i < s->nbusy; i++)
		if (strcmp(s->busy[i], client) == 0) {
			memcpy(s->busy[i], s->busy[--s->nbusy],
			       sizeof(s->busy[0]));
			break;
		}
	pthread_mutex_unlock(&s->busy_lock);
}

static int snap_create_one(struct snapshots *s, struct store *st,
			   const struct domains_tag *dom, const char *client,
			   const uint8_t *body, size_t len,
			   const struct snapshots_guard *g, char **out,
			   size_t *out_len);

int snapshots_create_guarded(struct snapshots *s, struct store *st,
			     const struct domains_tag *dom, const char *client,
			     const uint8_t *body, size_t len,
			     const struct snapshots_guard *g, char **out,
			     size_t *out_len)
{
	int rc;

	*out = NULL;
	*out_len = 0;
	if ((rc = snap_client_enter(s, client)) < 0)
		return rc;
	rc = snap_create_one(s, st, dom, client, body, len, g, out, out_len);
	snap_client_leave(s, client);
	return rc;
}

static int snap_create_one(struct snapshots *s, struct store *st,
			     const struct domains_tag *dom, const char *client,
			     const uint8_t *body, size_t len,
			     const struct snapshots_guard *g, char **out,
			     size_t *out_len)
{
	struct snap_request rq;
	struct snap e;
	json_t *root = NULL, *m = NULL;
	uint8_t raw[32];
	char *text = NULL;
	size_t tlen = 0;
	bool locked = false;
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&rq, 0, sizeof(rq));
	memset(&e, 0, sizeof(e));
	rc = snap_parse_body(s, client, body, len, &root, &rq);
	if (rc == 0)
		rc = dd_random(raw, sizeof(raw));
	if (rc < 0)
		goto cleanup;
	dd_hex_encode(e.id, raw, sizeof(raw));
	snprintf(e.client, sizeof(e.client), "%s", client);
	pthread_rwlock_rdlock(&s->commit_lock);
	locked = true;
	if ((rc = snap_build(st, dom, &rq, &e, 0, 0, &m)) < 0)
		goto cleanup;
	/* From before its pool copy exists: the tick's adoption leaves it
	 * to this create (snapshots_adopt). */
	pthread_rwlock_wrlock(&s->lock);
	snap_pending_set(s, e.id, SNAP_PENDING_RUNNING);
	pthread_rwlock_unlock(&s->lock);
	rc = snap_persist(s, &e, m, &text, &tlen);
	if (rc == 0 && g)
		rc = snap_guard(s, st, g, &rq, e.id);
	pthread_rwlock_wrlock(&s->lock);
	snap_pending_set(s, e.id, rc < 0 ? SNAP_PENDING_REFUSED : 0);
	/* Durable: now visible (once, whatever was adopted meanwhile). */
	if (rc == 0 && !snap_find(s, e.id))
		rc = snapshots_insert(s, &e);
	pthread_rwlock_unlock(&s->lock);
	if (rc < 0)
		goto cleanup;
	*out = text;
	*out_len = tlen;
	text = NULL;
cleanup:
	if (locked)
		pthread_rwlock_unlock(&s->commit_lock);
	free(text);
	json_decref(m);
	json_decref(root);
	free(rq.catalog);
	return rc;
}

int snapshots_barrier(struct snapshots *s, int (*fn)(void *payload),
		      void *payload)
{
	int rc;

	pthread_rwlock_wrlock(&s->commit_lock);
	rc = fn(payload);
	pthread_rwlock_unlock(&s->commit_lock);
	return rc;
}

/* ---- import (dedup-server sync, server/repo/sync.h) ---- */

/* A create request made of a source manifest's fields, for
 * snap_parse_request (the manifest says unix_time, a request time_start). */
static json_t *snap_import_request(json_t *m)
{
	json_t *rq = json_object(), *v;
	static const char *const keep[] = { "host", "paths", "catalog",
		"parent", "bytes_new", "chunks_new", "bytes_sent", "sealed" };
	size_t i;

	if (!rq)
		return NULL;
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		v = json_object_get(m, keep[i]);
		if (v && json_object_set(rq, keep[i], v) < 0)
			goto fail;
	}
	v = json_object_get(m, "unix_time");
	if (v && json_object_set(rq, "time_start", v) < 0)
		goto fail;
	return rq;
fail:
	json_decref(rq);
	return NULL;
}

/* The source's write time: written_ns, else unix_written in seconds. */
static int snap_import_written(json_t *m, int64_t now_ns, int64_t *out)
{
	json_t *ns = json_object_get(m, "written_ns");
	json_t *s = json_object_get(m, "unix_written");

	if (json_is_integer(ns) && json_integer_value(ns) > 0)
		*out = (int64_t)json_integer_value(ns);
	else if (json_is_integer(s) && json_integer_value(s) > 0 &&
		 json_integer_value(s) < SNAPSHOTS_TIME_MAX)
		*out = (int64_t)json_integer_value(s) * SNAPSHOTS_NS;
	else
		return dd_error_set(-EINVAL, "manifest has no valid "
				    "'written_ns' or 'unix_written'");
	if (*out > now_ns + (int64_t)SNAPSHOTS_CLOCK_SKEW * SNAPSHOTS_NS)
		return dd_error_set(-EINVAL, "manifest was written %lld s "
				    "ahead of this server's clock",
				    (long long)((*out - now_ns) /
						SNAPSHOTS_NS));
	return 0;
}

int snapshots_import(struct snapshots *s, struct store *st,
		     const struct domains_tag *dom, const char *client,
		     json_t *manifest)
{
	struct snap_request rq;
	struct snap e;
	json_t *req = NULL, *m = NULL, *v;
	int64_t now_ns = snap_now_ns(), written_ns = 0;
	char *text = NULL;
	size_t tlen = 0;
	bool locked = false;
	int rc;

	memset(&rq, 0, sizeof(rq));
	memset(&e, 0, sizeof(e));
	v = json_object_get(manifest, "id");
	if (!json_is_string(v) || !snap_is_hex64(json_string_value(v)))
		return dd_error_set(-EINVAL, "manifest has no valid 'id'");
	snprintf(e.id, sizeof(e.id), "%s", json_string_value(v));
	snprintf(e.client, sizeof(e.client), "%s", client);
	if (snapshots_has(s, e.id))
		return -EEXIST;
	/* its copy in the pool, from an import that failed, is being
	 * removed (snapshots_sweep_unsure): not made again meanwhile */
	if (snap_unsure_noted(s, e.id))
		return dd_error_set(-EAGAIN, "snapshot %s: an earlier copy "
				    "that failed is still being removed from "
				    "the pool; try again later", e.id);
	if (!(req = snap_import_request(manifest)))
		return -ENOMEM;
	rc = snap_parse_request(&rq, req);
	if (rc == 0)
		rc = snap_import_written(manifest, now_ns, &written_ns);
	if (rc == 0)
		rc = snap_check_time(&rq, dd_now());
	if (rc == 0)
		rc = snap_check_distinct(&rq);
	if (rc == 0)
		rc = snap_check_limit(s, client);
	if (rc < 0)
		goto cleanup;
	pthread_rwlock_rdlock(&s->commit_lock);
	locked = true;
	rc = snap_build(st, dom, &rq, &e, written_ns, now_ns, &m);
	if (rc == 0)
		rc = snap_persist(s, &e, m, &text, &tlen);
	if (rc < 0)
		goto cleanup;
	pthread_rwlock_wrlock(&s->lock);
	rc = snap_find(s, e.id) ? -EEXIST : snapshots_insert(s, &e);
	pthread_rwlock_unlock(&s->lock);
cleanup:
	if (locked)
		pthread_rwlock_unlock(&s->commit_lock);
	free(text);
	json_decref(m);
	json_decref(req);
	free(rq.catalog);
	return rc;
}
