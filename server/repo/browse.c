/*
 * browse.c - a snapshot's tree for the status page: listings, file bytes
 * and pax archives, all read from the catalog in one forward pass.
 */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

#include "catalog.h"
#include "tarnames.h"
#include "util.h"
#include "browse.h"
#include "catsource.h"
#include "log.h"
#include "store.h"

/* Bytes handed to libarchive or a reader at a time: bounds the archive's
 * output buffer. */
#define BROWSE_PIECE (1u << 20)
/* Catalog entries the hard links of one tar download may make it read
 * beside its own pass (browse_tar_link_source): a few seconds of CPU. */
#define BROWSE_SIDE_MAX 8000000u
/* The bytes of holes one .tar download may pass through the archive
 * writer, which takes a sparse file's zeros to skip them: about 2 CPU
 * seconds at 30 us a GiB. A hostile catalog can name a petabyte of holes
 * in 14 MB; without this one download held a core for minutes, after its
 * client had gone. */
#define BROWSE_HOLE_MAX (64ull << 40)

static const uint8_t browse_zeros[256 * 1024];

/* ---- paths ---- */

int browse_path_norm(char *out, size_t outsz, const char *in)
{
	size_t n = 0, len = strlen(in);
	const char *p = in, *end = in + len;

	if (len == 0 || in[0] != '/' || len > BROWSE_PATH_MAX ||
	    outsz < len + 1)
		return dd_error_set(-EINVAL, "path must start with '/' and be "
				    "at most %u bytes", BROWSE_PATH_MAX);
	while (p < end) {
		const char *c;
		size_t clen;

		while (p < end && *p == '/')
			p++;
		if (p == end)
			break;
		c = p;
		while (p < end && *p != '/')
			p++;
		clen = (size_t)(p - c);
		if ((clen == 1 && c[0] == '.') ||
		    (clen == 2 && c[0] == '.' && c[1] == '.'))
			return dd_error_set(-EINVAL, "path must not have '.' "
					    "or '..' components");
		if (n)
			out[n++] = '/';
		memcpy(out + n, c, clen);
		n += clen;
	}
	out[n] = '\0';
	return 0;
}

/* Whether `path` is strictly under `dir` ("" is the root); *rest is the
 * part after "dir/". */
static bool browse_under(const char *path, size_t plen, const char *dir,
			 size_t dlen, const char **rest, size_t *rlen)
{
	if (dlen == 0) {
		*rest = path;
		*rlen = plen;
		return true;
	}
	if (plen <= dlen + 1 || path[dlen] != '/' ||
	    memcmp(path, dir, dlen) != 0)
		return false;
	*rest = path + dlen + 1;
	*rlen = plen - dlen - 1;
	return true;
}

/* Whether the catalog, being in order, can hold nothing more under dir
 * from entry `e` on. */
static bool browse_past(const struct dd_entry *e, const char *dir,
			size_t dlen)
{
	const char *rest;
	size_t rlen;

	if (dlen == 0)
		return false;
	return dd_catalog_path_cmp(e->path, e->path_len, dir, dlen) > 0 &&
	       !browse_under(e->path, e->path_len, dir, dlen, &rest, &rlen);
}

static bool browse_is(const struct dd_entry *e, const char *path,
		      size_t len)
{
	return e->path_len == len && memcmp(e->path, path, len) == 0;
}

static int browse_not_found(const char *path)
{
	char q[256];

	return dd_error_set(-ENOENT, "no '/%s' in this snapshot",
			    dd_quote(q, sizeof(q), path, strlen(path)));
}

/* catsource_next, with a missing catalog chunk an I/O error: -ENOENT
 * means a path that is not in the snapshot here. */
static int browse_next(struct catsource *src, struct dd_entry *e)
{
	int rc = catsource_next(src, e);

	return rc == -ENOENT ? -EIO : rc;
}

/* ---- marks: where to start reading a catalog ----
 *
 * A pass over a catalog notes, for each catalog chunk, where an entry
 * that starts in it begins and its path (catsource_entry_pos). The next
 * request for a path of the same catalog starts at the last mark at or
 * before that path in catalog order, not at the catalog's start: paging
 * through a directory late in a catalog of millions of entries no longer
 * reads them all again for every page. Marks are kept for the catalogs
 * read last (BROWSE_MARK_SETS, keyed by the SHA-256 of their chunk ids:
 * a catalog's bytes never change), each set bounded in bytes; a path
 * longer than BROWSE_MARK_PATH makes no mark (the next entry does).
 */
#define BROWSE_MARK_SETS 8u
#define BROWSE_MARK_SET_BYTES (4u << 20)
#define BROWSE_MARK_PATH 1024u
/* What a mark holds: its slot (twice, for an array that doubles) and its
 * path with the allocator's overhead. */
#define BROWSE_MARK_COST(path_len) \
	(2 * sizeof(struct browse_mark) + (((path_len) + 16 + 15) & ~(size_t)15))

struct browse_mark {
	struct catsource_pos pos;
	char *path;
	uint32_t path_len;
};

struct browse_marks {
	struct dd_id key;
	uint32_t version;
	struct browse_mark *v;     /* increasing positions (and paths) */
	size_t n, alloc, bytes;
	uint64_t used;             /* LRU clock */
	bool live;
};

static struct {
	pthread_mutex_t mu;
	struct browse_marks sets[BROWSE_MARK_SETS];
	uint64_t clock;
} browse_cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A scan of a catalog from a mark, noting new marks as it goes. */
struct browse_scan {
	struct catsource *src;
	struct dd_id key;
	size_t start_chunk;        /* the chunk of the mark it started at */
	size_t last_chunk;         /* marks are new past this chunk */
	bool from_start;
	uint32_t version;          /* the catalog's, once an entry was read */
	struct browse_marks found; /* marks to publish (v, n, bytes) */
};

static void browse_marks_clear(struct browse_marks *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = m->alloc = m->bytes = 0;
}

static void browse_catalog_key(struct dd_id *key, const struct dd_id *ids,
			       size_t n)
{
	dd_sha256(key, ids, n * sizeof(*ids));
}

/* The set of `key`, or NULL. Cache locked. */
static struct browse_marks *browse_marks_find(const struct dd_id *key)
{
	for (size_t i = 0; i < BROWSE_MARK_SETS; i++)
		if (browse_cache.sets[i].live &&
		    dd_id_eq(&browse_cache.sets[i].key, key))
			return &browse_cache.sets[i];
	return NULL;
}

/* Opens `sc->src` at the last mark at or before `path` (plen bytes) in
 * catalog order, or at the catalog's start. */
static int browse_scan_open(struct browse_scan *sc, struct store *st,
			    const struct dd_id *ids, size_t n,
			    const char *path, size_t plen)
{
	struct browse_marks *m;
	struct catsource_pos at = { 0, 0 };
	char *start_path = NULL;
	uint32_t version = 0;
	size_t set_last = 0;
	int rc;

	memset(sc, 0, sizeof(*sc));
	browse_catalog_key(&sc->key, ids, n);
	pthread_mutex_lock(&browse_cache.mu);
	m = browse_marks_find(&sc->key);
	if (m) {
		size_t lo = 0, hi = m->n;

		m->used = ++browse_cache.clock;
		while (lo < hi) {          /* first mark after path */
			size_t mid = lo + (hi - lo) / 2;

			if (dd_catalog_path_cmp(m->v[mid].path,
						m->v[mid].path_len, path,
						plen) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0) {
			at = m->v[lo - 1].pos;
			version = m->version;
			start_path = m->v[lo - 1].path;
		}
		/* only marks past the set's are new */
		if (m->n)
			set_last = m->v[m->n - 1].pos.chunk;
	}
	pthread_mutex_unlock(&browse_cache.mu);
	if (!start_path) {
		sc->from_start = true;
		sc->last_chunk = set_last;
		return catsource_new(&sc->src, st, ids, n);
	}
	sc->start_chunk = at.chunk;
	sc->last_chunk = set_last > at.chunk ? set_last : at.chunk;
	rc = catsource_new_at(&sc->src, st, ids, n, version, &at);
	return rc;
}

/* Notes the entry just read as a mark if it starts in a chunk past the
 * last one marked. */
static void browse_scan_note(struct browse_scan *sc, const struct dd_entry *e)
{
	struct browse_marks *f = &sc->found;
	struct catsource_pos pos;
	struct browse_mark *mk;

	if (catsource_entry_pos(sc->src, &pos) < 0 ||
	    pos.chunk <= sc->last_chunk || e->path_len > BROWSE_MARK_PATH ||
	    f->bytes + BROWSE_MARK_COST(e->path_len) > BROWSE_MARK_SET_BYTES)
		return;
	if (f->n == f->alloc) {
		size_t a = f->alloc ? 2 * f->alloc : 64;
		struct browse_mark *v = realloc(f->v, a * sizeof(*v));

		if (!v)
			return;
		f->v = v;
		f->alloc = a;
	}
	mk = &f->v[f->n];
	if (!(mk->path = malloc(e->path_len ? e->path_len : 1)))
		return;
	memcpy(mk->path, e->path, e->path_len);
	mk->path_len = (uint32_t)e->path_len;
	mk->pos = pos;
	f->n++;
	f->bytes += BROWSE_MARK_COST(e->path_len);
	sc->last_chunk = pos.chunk;
}

/* browse_next, noting marks. */
static int browse_scan_next(struct browse_scan *sc, struct dd_entry *e)
{
	int rc = browse_next(sc->src, e);

	if (rc == 1) {
		sc->version = catsource_version(sc->src);
		browse_scan_note(sc, e);
	}
	return rc;
}

/* Adds the marks found to the cache (those past its set's last, when the
 * scan started within what the set covers) and closes the scan. */
static void browse_scan_close(struct browse_scan *sc)
{
	struct browse_marks *f = &sc->found, *m;
	uint32_t version = sc->version;
	size_t i = 0;

	pthread_mutex_lock(&browse_cache.mu);
	m = browse_marks_find(&sc->key);
	if (!m && sc->from_start && f->n && version) {
		struct browse_marks *old = &browse_cache.sets[0];

		for (size_t k = 0; k < BROWSE_MARK_SETS; k++) {
			struct browse_marks *c = &browse_cache.sets[k];

			if (!c->live || c->used < old->used)
				old = c;
			if (!c->live)
				break;
		}
		browse_marks_clear(old);
		old->live = true;
		old->key = sc->key;
		old->version = version;
		m = old;
	}
	if (m && version == m->version) {
		size_t last = m->n ? m->v[m->n - 1].pos.chunk : 0;
		/* a scan that started past the set's last mark (the set was
		 * made again meanwhile) would leave a gap */
		bool contiguous = sc->from_start ||
			(m->n && sc->start_chunk <= last);

		m->used = ++browse_cache.clock;
		for (; contiguous && i < f->n; i++) {
			struct browse_mark *mk = &f->v[i];

			if ((m->n && mk->pos.chunk <= last) ||
			    m->bytes + BROWSE_MARK_COST(mk->path_len) >
			    BROWSE_MARK_SET_BYTES)
				continue;
			if (m->n == m->alloc) {
				size_t a = m->alloc ? 2 * m->alloc : 64;
				struct browse_mark *v = realloc(m->v,
								a * sizeof(*v));

				if (!v)
					break;
				m->v = v;
				m->alloc = a;
			}
			m->v[m->n++] = *mk;
			m->bytes += BROWSE_MARK_COST(mk->path_len);
			last = mk->pos.chunk;
			mk->path = NULL;      /* the set owns it now */
		}
	}
	pthread_mutex_unlock(&browse_cache.mu);
	for (i = 0; i < f->n; i++)
		free(f->v[i].path);
	free(f->v);
	catsource_free(sc->src);
	memset(sc, 0, sizeof(*sc));
}

/* ---- listing ---- */

static const char *browse_type_name(uint8_t type)
{
	switch (type) {
	case DD_ENTRY_FILE: return "file";
	case DD_ENTRY_DIR: return "dir";
	case DD_ENTRY_SYMLINK: return "symlink";
	case DD_ENTRY_HARDLINK: return "hardlink";
	case DD_ENTRY_FIFO: return "fifo";
	case DD_ENTRY_CHR: return "chr";
	case DD_ENTRY_BLK: return "blk";
	default: return "unknown";
	}
}

/* Sets obj[key] to the bytes as a string, or obj[key_hex] when they are
 * not UTF-8 (JSON strings must be). */
static int browse_set_bytes(json_t *obj, const char *key,
			    const char *key_hex, const char *p, size_t n)
{
	json_t *s = json_stringn(p, n);
	char *hex;

	if (s)
		return json_object_set_new(obj, key, s) == 0 ? 0 : -ENOMEM;
	if (!(hex = malloc(2 * n + 1)))
		return -ENOMEM;
	dd_hex_encode(hex, (const uint8_t *)p, n);
	s = json_string(hex);
	free(hex);
	return s && json_object_set_new(obj, key_hex, s) == 0 ? 0 : -ENOMEM;
}

/* One child: the entry itself (`e`, when the child is the entry) or a
 * directory only known from the entries under it. */
static json_t *browse_child(const char *name, size_t nlen,
			    const struct dd_entry *e)
{
	json_t *o = json_object();

	if (!o || browse_set_bytes(o, "name", "name_hex", name, nlen) < 0)
		goto fail;
	if (!e) {
		if (json_object_set_new(o, "type", json_string("dir")) ||
		    json_object_set_new(o, "implicit", json_true()))
			goto fail;
		return o;
	}
	if (json_object_set_new(o, "type",
				json_string(browse_type_name(e->type))) ||
	    json_object_set_new(o, "size", json_integer((json_int_t)e->size)) ||
	    json_object_set_new(o, "mode", json_integer(e->mode & 07777)) ||
	    json_object_set_new(o, "mtime", json_integer(e->mtime_sec)))
		goto fail;
	if ((e->type == DD_ENTRY_SYMLINK || e->type == DD_ENTRY_HARDLINK) &&
	    browse_set_bytes(o, "link", "link_hex", e->link, e->link_len) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* Bytewise name order, shorter first on a common prefix: the order the
 * children of one directory come in the catalog. */
static int browse_name_cmp(const char *a, size_t alen, const uint8_t *b,
			   size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

struct browse_lister {
	const char *dir;
	size_t dlen;
	const uint8_t *after;
	size_t after_len;
	size_t limit;
	json_t *entries;
	char *last;             /* the last child seen (name) */
	size_t last_len;
	char *cursor;           /* the last child listed */
	size_t cursor_len;
	bool have_last, found, more;
	uint64_t scanned;
};

/* Takes one catalog entry: 1 to go on, 0 when the page is complete, or a
 * negative error. */
static int browse_list_entry(struct browse_lister *l,
			     const struct dd_entry *e)
{
	const char *rest, *slash;
	size_t rlen, clen;
	json_t *child;

	if (l->dlen && browse_is(e, l->dir, l->dlen)) {
		l->found = true;
		if (e->type != DD_ENTRY_DIR)
			return dd_error_set(-ENOTDIR, "'/%s' is not a "
					    "directory", l->dir);
		return 1;
	}
	if (browse_past(e, l->dir, l->dlen))
		return 0;
	if (!browse_under(e->path, e->path_len, l->dir, l->dlen, &rest,
			  &rlen))
		return 1;
	l->found = true;
	slash = memchr(rest, '/', rlen);
	clen = slash ? (size_t)(slash - rest) : rlen;
	if (l->have_last && clen == l->last_len &&
	    memcmp(rest, l->last, clen) == 0)
		return 1;       /* under a child already taken */
	memcpy(l->last, rest, clen);
	l->last_len = clen;
	l->have_last = true;
	if (l->after_len &&
	    browse_name_cmp(rest, clen, l->after, l->after_len) <= 0)
		return 1;
	if (json_array_size(l->entries) == l->limit) {
		l->more = true;
		return 0;
	}
	child = browse_child(rest, clen, slash ? NULL : e);
	if (!child || json_array_append_new(l->entries, child) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	memcpy(l->cursor, rest, clen);
	l->cursor_len = clen;
	return 1;
}

/* The cursor after the page's last child: the hex of its name. */
static json_t *browse_next_cursor(const struct browse_lister *l)
{
	char *hex;
	json_t *s;

	if (!l->more)
		return json_null();
	if (!(hex = malloc(2 * l->cursor_len + 1)))
		return NULL;
	dd_hex_encode(hex, (const uint8_t *)l->cursor, l->cursor_len);
	s = json_string(hex);
	free(hex);
	return s;
}

int browse_list(json_t **out, struct store *st, const struct dd_id *ids,
		size_t n, const char *dir, const uint8_t *after,
		size_t after_len, size_t limit)
{
	struct browse_lister l = {
		.dir = dir, .dlen = strlen(dir), .after = after,
		.after_len = after_len, .limit = limit,
	};
	struct browse_scan sc = { 0 };
	struct dd_entry e;
	char *shown = NULL, *from = NULL;
	size_t flen = 0;
	json_t *res = NULL, *next;
	int rc;

	*out = NULL;
	if (limit < 1 || limit > BROWSE_PAGE_MAX)
		return dd_error_set(-EINVAL, "limit must be 1 to %d",
				    BROWSE_PAGE_MAX);
	l.entries = json_array();
	l.last = malloc(DD_CATALOG_PATH_MAX);
	l.cursor = malloc(DD_CATALOG_PATH_MAX);
	shown = malloc(l.dlen + 2);
	if (!l.entries || !l.last || !l.cursor || !shown) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	/* Nothing before the directory matters, nor, for a page after
	 * the first, before its child `after` (an entry between the two is
	 * under the directory: the page still finds it). */
	if (!(from = malloc(l.dlen + 1 + after_len + 1))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	memcpy(from, dir, l.dlen);
	flen = l.dlen;
	if (after_len) {
		if (l.dlen)
			from[flen++] = '/';
		memcpy(from + flen, after, after_len);
		flen += after_len;
	}
	if ((rc = browse_scan_open(&sc, st, ids, n, from, flen)) < 0)
		goto cleanup;
	while ((rc = browse_scan_next(&sc, &e)) == 1) {
		l.scanned++;
		if ((rc = browse_list_entry(&l, &e)) <= 0)
			break;
	}
	if (rc < 0)
		goto cleanup;
	if (!l.found && l.dlen) {
		rc = browse_not_found(dir);
		goto cleanup;
	}
	snprintf(shown, l.dlen + 2, "/%s", dir);
	next = browse_next_cursor(&l);
	res = json_object();
	if (!res || !next ||
	    browse_set_bytes(res, "path", "path_hex", shown,
			     strlen(shown)) < 0 ||
	    json_object_set(res, "entries", l.entries) ||
	    json_object_set_new(res, "next", next) ||
	    json_object_set_new(res, "scanned",
				json_integer((json_int_t)l.scanned))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	*out = res;
	res = NULL;
	rc = 0;
cleanup:
	json_decref(res);
	json_decref(l.entries);
	browse_scan_close(&sc);
	free(l.last);
	free(l.cursor);
	free(shown);
	free(from);
	return rc;
}

/* ---- a file's bytes ---- */

/* The bytes of one chunk list, a piece at a time. */
struct browse_data {
	struct store *st;
	const struct dd_chunk_ref *refs;
	uint64_t n, i;
	struct dd_buf plain, scratch;
	ZSTD_DCtx *dctx;
	size_t pos;
	uint64_t hole_left;
};

static int browse_data_init(struct browse_data *d, struct store *st)
{
	memset(d, 0, sizeof(*d));
	d->st = st;
	dd_buf_init(&d->plain, 0);
	dd_buf_init(&d->scratch, 0);
	if (!(d->dctx = ZSTD_createDCtx()))
		return dd_error_set(-ENOMEM, "out of memory");
	return 0;
}

static void browse_data_start(struct browse_data *d,
			      const struct dd_entry *e)
{
	d->refs = e->chunks;
	d->n = e->nchunks;
	d->i = 0;
	d->pos = 0;
	d->hole_left = 0;
	dd_buf_reset(&d->plain);
}

static void browse_data_release(struct browse_data *d)
{
	dd_buf_release(&d->plain);
	dd_buf_release(&d->scratch);
	ZSTD_freeDCtx(d->dctx);
	d->dctx = NULL;
}

/* The next piece of at most `max` bytes: 1 and the piece in *p, *len (borrowed until
 * the next call), 0 at the end, or a negative error. */
static int browse_data_piece(struct browse_data *d, const uint8_t **p,
			     size_t *len, size_t max)
{
	for (;;) {
		const struct dd_chunk_ref *ref;
		size_t k;
		int rc;

		if (d->hole_left) {
			k = sizeof(browse_zeros) < max ? sizeof(browse_zeros)
							: max;
			if (d->hole_left < k)
				k = (size_t)d->hole_left;
			d->hole_left -= k;
			*p = browse_zeros;
			*len = k;
			return 1;
		}
		if (d->pos < d->plain.len) {
			k = d->plain.len - d->pos < max ? d->plain.len - d->pos
							: max;
			*p = d->plain.data + d->pos;
			*len = k;
			d->pos += k;
			return 1;
		}
		if (d->i == d->n)
			return 0;
		ref = &d->refs[d->i++];
		d->pos = 0;
		dd_buf_reset(&d->plain);
		if (dd_chunk_ref_is_hole(ref)) {
			d->hole_left = ref->plain_len;
			continue;
		}
		rc = store_read_plain(d->st, &ref->id, &d->plain, &d->scratch,
				      d->dctx);
		if (rc < 0) {
			char hex[DD_ID_HEX_LEN + 1];

			dd_id_to_hex(hex, &ref->id);
			return dd_error_set(-EIO,
					    "cannot read chunk %s: %s", hex,
					    log_reason(rc));
		}
		if (d->plain.len != ref->plain_len)
			return dd_error_set(-EBADMSG, "chunk has %zu bytes, the "
					    "catalog says %u", d->plain.len,
					    ref->plain_len);
	}
}

struct browse_file {
	struct dd_id *ids;
	struct catsource *src;  /* kept open: `e` points into it */
	struct dd_entry e;
	struct browse_data data;
};

static int browse_copy_ids(struct dd_id **out, const struct dd_id *ids,
			   size_t n)
{
	*out = malloc(n ? n * sizeof(*ids) : 1);
	if (!*out)
		return dd_error_set(-ENOMEM, "out of memory");
	memcpy(*out, ids, n * sizeof(*ids));
	return 0;
}

/*
 * Moves `*src` (a new source over ids) to the entry at `path`: 1 found
 * (in *e), or -ENOENT, or -EISDIR when `path` has entries under it.
 */
static int browse_seek_on(struct catsource *src, const char *path,
			  struct dd_entry *e, uint64_t *steps);

static int browse_seek(struct catsource **src, struct store *st,
		       const struct dd_id *ids, size_t n, const char *path,
		       struct dd_entry *e)
{
	struct browse_scan sc;
	const char *rest;
	size_t plen = strlen(path), rlen;
	int rc = browse_scan_open(&sc, st, ids, n, path, plen);

	/* browse_seek_on, noting marks (the source then goes on alone) */
	while (rc == 0 && (rc = browse_scan_next(&sc, e)) == 1) {
		if (browse_is(e, path, plen))
			break;
		if (browse_under(e->path, e->path_len, path, plen, &rest,
				 &rlen))
			rc = dd_error_set(-EISDIR, "'/%s' is a directory",
					  path);
		else if (plen && browse_past(e, path, plen))
			rc = browse_not_found(path);
		else
			rc = 0;
	}
	if (rc == 0)
		rc = browse_not_found(path);
	*src = sc.src;
	sc.src = NULL;
	browse_scan_close(&sc);
	return rc;
}

/* browse_seek from where `src` stands (before `path`), counting the
 * entries read in *steps (NULL: not counted). */
static int browse_seek_on(struct catsource *src, const char *path,
			  struct dd_entry *e, uint64_t *steps)
{
	size_t plen = strlen(path);
	const char *rest;
	size_t rlen;
	int rc;

	while ((rc = browse_next(src, e)) == 1) {
		if (steps)
			++*steps;
		if (browse_is(e, path, plen))
			return 1;
		if (browse_under(e->path, e->path_len, path, plen, &rest,
				 &rlen))
			return dd_error_set(-EISDIR, "'/%s' is a directory",
					    path);
		if (plen && browse_past(e, path, plen))
			break;
	}
	return rc < 0 ? rc : browse_not_found(path);
}

int browse_file_open(struct browse_file **out, struct store *st,
		     const struct dd_id *ids, size_t n, const char *path)
{
	struct browse_file *f = calloc(1, sizeof(*f));
	char *target = NULL;
	int rc;

	*out = NULL;
	if (!f)
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = browse_copy_ids(&f->ids, ids, n)) < 0 ||
	    (rc = browse_data_init(&f->data, st)) < 0)
		goto fail;
	if (!*path) {
		rc = dd_error_set(-EISDIR, "'/' is a directory");
		goto fail;
	}
	if ((rc = browse_seek(&f->src, st, f->ids, n, path, &f->e)) < 0)
		goto fail;
	if (f->e.type == DD_ENTRY_HARDLINK) {
		/* Its first path comes earlier in the catalog: look again. */
		if (!(target = strndup(f->e.link, f->e.link_len))) {
			rc = dd_error_set(-ENOMEM, "out of memory");
			goto fail;
		}
		catsource_free(f->src);
		f->src = NULL;
		if ((rc = browse_seek(&f->src, st, f->ids, n, target,
				      &f->e)) < 0)
			goto fail;
	}
	if (f->e.type != DD_ENTRY_FILE) {
		rc = dd_error_set(-EISDIR, "'/%s' is not a regular file", path);
		goto fail;
	}
	browse_data_start(&f->data, &f->e);
	free(target);
	*out = f;
	return 0;
fail:
	free(target);
	browse_file_free(f);
	return rc;
}

uint64_t browse_file_size(const struct browse_file *f)
{
	return f->e.size;
}

ssize_t browse_file_read(struct browse_file *f, uint8_t *buf, size_t max)
{
	const uint8_t *p;
	size_t len;
	int rc = browse_data_piece(&f->data, &p, &len, max);

	if (rc <= 0)
		return rc;
	memcpy(buf, p, len);
	return (ssize_t)len;
}

void browse_file_free(struct browse_file *f)
{
	if (!f)
		return;
	browse_data_release(&f->data);
	catsource_free(f->src);
	free(f->ids);
	free(f);
}

/* ---- a directory as a pax archive ---- */

/*
 * The archive names of the copies written for hard links whose first
 * path is outside the directory, by that path (its SHA-256): a later
 * link to the same path becomes a link to the copy, so each link group
 * stays one inode when extracted, as GNU tar archives it. Bounded, as
 * a download's memory must be whatever its catalog holds
 * (BROWSE_COPIES_MAX paths, BROWSE_COPIES_BYTES of names: about 10 MiB
 * in all, the table's keys and pointers included); past that, later links get copies of their own. Open
 * addressing; a slot is free while its name is NULL.
 */
#define BROWSE_COPIES_MAX 65536
#define BROWSE_COPIES_BYTES (4u << 20)

struct browse_copies {
	struct dd_id *keys;
	char **names;
	size_t cap, n;
	size_t bytes;           /* of the names held */
	size_t max_bytes;       /* BROWSE_COPIES_BYTES, or the test hook's */
};

static size_t browse_copies_slot(const struct browse_copies *c,
				 const struct dd_id *k)
{
	size_t i;

	memcpy(&i, k->b, sizeof(i));
	for (i &= c->cap - 1; c->names[i] && !dd_id_eq(&c->keys[i], k);
	     i = (i + 1) & (c->cap - 1))
		;
	return i;
}

/* The copy's archive name for first path p, or NULL. */
static const char *browse_copies_find(const struct browse_copies *c,
				      const char *p, size_t len)
{
	struct dd_id k;

	if (!c->n)
		return NULL;
	dd_sha256(&k, p, len);
	return c->names[browse_copies_slot(c, &k)];
}

/* Remembers `name` as the copy of first path p; best effort (a link
 * after a failure here gets a copy of its own). */
static void browse_copies_add(struct browse_copies *c, const char *p,
			      size_t len, const char *name)
{
	struct dd_id k;
	size_t i, nlen = strlen(name) + 1;

	if (c->n >= BROWSE_COPIES_MAX || c->bytes + nlen > c->max_bytes)
		return;
	if ((c->n + 1) * 2 > c->cap) {
		struct browse_copies g = { 0 };

		g.cap = c->cap ? c->cap * 2 : 64;
		g.keys = malloc(g.cap * sizeof(*g.keys));
		g.names = calloc(g.cap, sizeof(*g.names));
		if (!g.keys || !g.names) {
			free(g.keys);
			free(g.names);
			return;
		}
		for (i = 0; i < c->cap; i++)
			if (c->names[i]) {
				size_t j = browse_copies_slot(&g, &c->keys[i]);

				g.keys[j] = c->keys[i];
				g.names[j] = c->names[i];
			}
		g.n = c->n;
		g.bytes = c->bytes;
		g.max_bytes = c->max_bytes;
		free(c->keys);
		free(c->names);
		*c = g;
	}
	dd_sha256(&k, p, len);
	i = browse_copies_slot(c, &k);
	if (c->names[i] || !(c->names[i] = strdup(name)))
		return;
	c->keys[i] = k;
	c->n++;
	c->bytes += nlen;
}

static void browse_copies_release(struct browse_copies *c)
{
	for (size_t i = 0; i < c->cap; i++)
		free(c->names[i]);
	free(c->keys);
	free(c->names);
	memset(c, 0, sizeof(*c));
}

struct browse_tar {
	struct store *st;
	struct dd_id *ids;
	size_t n;
	char *dir;              /* normalised; "" for the root */
	size_t dlen;
	size_t base_off;        /* where the archive's names start in dir */
	struct catsource *src;
	struct catsource *side; /* a hard link's first path, elsewhere */
	char *side_at;          /* the path side stands at: side_e */
	struct dd_entry side_e;
	uint64_t side_steps;    /* entries side has read: BROWSE_SIDE_MAX */
	uint64_t hole_bytes;    /* passed to the writer: BROWSE_HOLE_MAX */
	struct dd_entry pending;
	bool have_pending, in_data, done;
	struct archive *aw;
	struct archive_entry *ae;
	struct dd_buf out;      /* archive bytes not yet read */
	size_t out_pos;
	struct browse_data data;
	char *name, *link;      /* the entry's names in the archive */
	char *scratch;          /* NUL-terminated copies of ext values */
	struct dd_owner_names *names;   /* a hard link's owner names */
	struct browse_copies copies;    /* links' first paths outside */
};

#define BROWSE_NAME_MAX (2 * DD_CATALOG_PATH_MAX + 2)

static la_ssize_t browse_tar_write(struct archive *a, void *cls,
				   const void *buf, size_t n)
{
	struct browse_tar *t = cls;

	if (dd_buf_append(&t->out, buf, n) < 0) {
		archive_set_error(a, ENOMEM, "out of memory");
		return -1;
	}
	return (la_ssize_t)n;
}

static int browse_tar_error(struct browse_tar *t, const char *what)
{
	return dd_error_set(-EIO, "cannot archive %s: %s", what,
			    archive_error_string(t->aw) ?
			    archive_error_string(t->aw) : "unknown error");
}

/* The archive name of catalog path p: from the directory's own name on. */
static void browse_tar_name(const struct browse_tar *t, char *out,
			    const char *p, size_t plen)
{
	size_t skip = t->base_off < plen ? t->base_off : plen;

	memcpy(out, p + skip, plen - skip);
	out[plen - skip] = '\0';
}

/* A copy of n bytes as a C string, in t->scratch (ext values, links);
 * NULL when longer than it holds (DD_CATALOG_LINK_MAX: the reader bounds
 * links and version 2 ext values below that; a version 1 ext area is
 * never read, but nothing here trusts that). */
static const char *browse_tar_cstr(struct browse_tar *t, const void *p,
				   size_t n)
{
	if (n > DD_CATALOG_LINK_MAX)
		return NULL;
	memcpy(t->scratch, p, n);
	t->scratch[n] = '\0';
	return t->scratch;
}

/*
 * libarchive converts names from the locale's charset to UTF-8 for pax
 * records; the server runs in the C locale, where it could not. Every
 * call into it runs with this thread (only) in C.UTF-8; a name that is
 * not UTF-8 is then stored as raw bytes (hdrcharset=BINARY), which tar
 * extracts as the same bytes. Returns the locale to restore, or 0.
 */
static locale_t browse_utf8_enter(void)
{
	static locale_t utf8;
	locale_t l = __atomic_load_n(&utf8, __ATOMIC_ACQUIRE);

	if (!l) {
		locale_t fresh = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);

		if (!fresh)
			return (locale_t)0;
		if (!__atomic_compare_exchange_n(&utf8, &l, fresh, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			freelocale(fresh);      /* another thread won */
		else
			l = fresh;
	}
	return uselocale(l);
}

static void browse_utf8_leave(locale_t old)
{
	if (old)
		uselocale(old);
}

static void browse_tar_ext(struct browse_tar *t, const struct dd_entry *e)
{
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	struct dd_acl_entry a;
	const char *nm;
	const uint8_t *val;
	size_t nlen, vlen;
	uint32_t maj, min;

	/* a version 1 catalog's ext area is reserved: ignored when read
	 * (docs/FORMAT.md), and unchecked by the reader */
	if (catsource_version(t->src) < 2)
		return;
	dd_ext_iter_init(&it, e);
	while (dd_ext_next(&it, &rec) == 1) {
		if (rec.tag == DD_EXT_UNAME &&
		    (nm = browse_tar_cstr(t, rec.v, rec.len)))
			archive_entry_copy_uname(t->ae, nm);
		else if (rec.tag == DD_EXT_GNAME &&
			 (nm = browse_tar_cstr(t, rec.v, rec.len)))
			archive_entry_copy_gname(t->ae, nm);
		else if (rec.tag == DD_EXT_RDEV &&
			 dd_ext_get_rdev(&rec, &maj, &min) == 0) {
			archive_entry_set_rdevmajor(t->ae, maj);
			archive_entry_set_rdevminor(t->ae, min);
		} else if (rec.tag == DD_EXT_XATTR &&
			   dd_ext_get_xattr(&rec, &nm, &nlen, &val, &vlen) == 0 &&
			   (nm = browse_tar_cstr(t, nm, nlen)))
			archive_entry_xattr_add_entry(t->ae, nm, val, vlen);
		else if (rec.tag == DD_EXT_ACL && dd_ext_get_acl(&rec, &a) == 0) {
			static const int tags[] = {
				[DD_ACL_USER_OBJ] = ARCHIVE_ENTRY_ACL_USER_OBJ,
				[DD_ACL_USER] = ARCHIVE_ENTRY_ACL_USER,
				[DD_ACL_GROUP_OBJ] = ARCHIVE_ENTRY_ACL_GROUP_OBJ,
				[DD_ACL_GROUP] = ARCHIVE_ENTRY_ACL_GROUP,
				[DD_ACL_MASK] = ARCHIVE_ENTRY_ACL_MASK,
				[DD_ACL_OTHER] = ARCHIVE_ENTRY_ACL_OTHER,
			};
			bool named = a.tag == DD_ACL_USER ||
				     a.tag == DD_ACL_GROUP;

			if (a.tag < 1 || a.tag > DD_ACL_OTHER)
				continue;
			archive_entry_acl_add_entry(t->ae,
				a.kind == DD_ACL_DEFAULT ?
				ARCHIVE_ENTRY_ACL_TYPE_DEFAULT :
				ARCHIVE_ENTRY_ACL_TYPE_ACCESS,
				a.perm, tags[a.tag], named ? (int)a.id : -1,
				named && a.name_len ?
				browse_tar_cstr(t, a.name, a.name_len) : NULL);
		}
	}
}

static void browse_tar_sparse_add(void *payload, uint64_t off,
				  uint64_t len)
{
	archive_entry_sparse_add_entry(payload, (la_int64_t)off,
				       (la_int64_t)len);
}

/* A file with holes gets a sparse map of its data runs (pax GNU.sparse
 * 1.0, runs on 512-byte boundaries: dd_sparse_runs): libarchive then
 * drops the holes' zeros it is given. */

static void browse_tar_sparse(struct archive_entry *ae,
			      const struct dd_entry *e)
{
	bool holes = false;

	for (uint64_t j = 0; j < e->nchunks && !holes; j++)
		holes = dd_chunk_ref_is_hole(&e->chunks[j]);
	if (holes)
		dd_sparse_runs(e->chunks, e->nchunks, e->size,
			       browse_tar_sparse_add, ae);
}

/*
 * Fills t->ae for entry `e` under the archive name t->name. `data` is
 * the entry whose bytes follow (e itself, or a hard link's first path
 * stored as a copy), NULL for none; t->link is the hard link's archive
 * name when `e` is kept as a link.
 */
static void browse_tar_fill(struct browse_tar *t, const struct dd_entry *e,
			    const struct dd_entry *data)
{
	int64_t psec;
	long pnsec;
	unsigned type;

	switch (e->type) {
	case DD_ENTRY_DIR: type = AE_IFDIR; break;
	case DD_ENTRY_SYMLINK: type = AE_IFLNK; break;
	case DD_ENTRY_FIFO: type = AE_IFIFO; break;
	case DD_ENTRY_CHR: type = AE_IFCHR; break;
	case DD_ENTRY_BLK: type = AE_IFBLK; break;
	default: type = AE_IFREG; break;
	}
	archive_entry_clear(t->ae);
	archive_entry_copy_pathname(t->ae, t->name);
	archive_entry_set_mode(t->ae, type | (e->mode & 07777));
	archive_entry_set_uid(t->ae, e->uid);
	archive_entry_set_gid(t->ae, e->gid);
	dd_pax_time(e->mtime_sec, (long)e->mtime_nsec, &psec, &pnsec);
	archive_entry_set_mtime(t->ae, (time_t)psec, pnsec);
	archive_entry_set_size(t->ae, data ? (la_int64_t)data->size : 0);
	if (e->type == DD_ENTRY_SYMLINK)
		archive_entry_copy_symlink(t->ae, e->link_len <=
					   DD_CATALOG_LINK_MAX ?
					   browse_tar_cstr(t, e->link,
							   e->link_len) : "");
	if (e->type == DD_ENTRY_HARDLINK && !data)
		archive_entry_copy_hardlink(t->ae, t->link);
	browse_tar_ext(t, e);
	dd_owner_names_to_entry(t->names, e, t->ae);
	if (data)
		browse_tar_sparse(t->ae, data);
}

/* BROWSE_HOLE_MAX, or the test hook DEDUP_TEST_BROWSE_HOLE_MAX. */
static uint64_t browse_hole_max(void)
{
	return dd_test_hook_u64("DEDUP_TEST_BROWSE_HOLE_MAX", 1, UINT64_MAX,
				BROWSE_HOLE_MAX);
}

/* BROWSE_SIDE_MAX, or the test hook DEDUP_TEST_BROWSE_SIDE_MAX
 * (docs/OPERATIONS.md) to reach it with a small tree. */
static uint64_t browse_side_max(void)
{
	return dd_test_hook_u64("DEDUP_TEST_BROWSE_SIDE_MAX", 1, UINT64_MAX,
				BROWSE_SIDE_MAX);
}

/*
 * A hard link whose first path is outside the directory: that file's
 * entry, from a second reader (in *out, valid until the next call). The
 * reader goes forward while the links name their files in catalog order
 * (each file read once in all) and starts again only for one behind it;
 * the same file again costs nothing. What a download's links make it
 * read is bounded (BROWSE_SIDE_MAX entries): links that send it back
 * and forth over a big catalog would cost their count times its size.
 */
static int browse_tar_link_source(struct browse_tar *t,
				  const struct dd_entry *e,
				  struct dd_entry *out)
{
	char *target = strndup(e->link, e->link_len);
	int rc;

	if (!target)
		return dd_error_set(-ENOMEM, "out of memory");
	if (t->side_at && strcmp(t->side_at, target) == 0) {
		free(target);
		*out = t->side_e;
		return 0;
	}
	if (t->side && t->side_at &&
	    dd_catalog_path_cmp(t->side_at, strlen(t->side_at), target,
				strlen(target)) < 0) {
		rc = browse_seek_on(t->side, target, out, &t->side_steps);
	} else {
		catsource_free(t->side);
		t->side = NULL;
		rc = catsource_new(&t->side, t->st, t->ids, t->n);
		if (rc == 0)
			rc = browse_seek_on(t->side, target, out,
					    &t->side_steps);
	}
	free(t->side_at);
	t->side_at = NULL;
	if (rc >= 0 && (out->type == DD_ENTRY_DIR ||
			out->type == DD_ENTRY_HARDLINK))
		rc = dd_error_set(-EBADMSG, "a hard link names a %s",
				  out->type == DD_ENTRY_DIR ? "directory" :
				  "hard link");
	if (rc >= 0 && t->side_steps > browse_side_max())
		rc = dd_error_set(-E2BIG, "the hard links in '/%s' send the "
				  "archive back and forth over the catalog "
				  "too often; restore it with dedup-agent",
				  t->dir);
	if (rc < 0) {
		free(target);
		return rc;
	}
	t->side_at = target;
	t->side_e = *out;
	return 0;
}

/* Writes the header of one entry in the directory, and starts its data. */
static int browse_tar_entry(struct browse_tar *t, const struct dd_entry *e)
{
	const struct dd_entry *data = NULL;
	struct dd_entry src;
	const char *rest;
	const char *copy;
	size_t rlen;
	int rc, ar;

	browse_tar_name(t, t->name, e->path, e->path_len);
	if (e->type == DD_ENTRY_FILE) {
		data = e;
	} else if (e->type == DD_ENTRY_HARDLINK) {
		if (browse_under(e->link, e->link_len, t->dir, t->dlen, &rest,
				 &rlen)) {
			browse_tar_name(t, t->link, e->link, e->link_len);
		} else if ((copy = browse_copies_find(&t->copies, e->link,
						      e->link_len))) {
			/* an earlier link of its group holds the copy */
			snprintf(t->link, BROWSE_NAME_MAX, "%s", copy);
		} else {
			if ((rc = browse_tar_link_source(t, e, &src)) < 0)
				return rc;
			browse_copies_add(&t->copies, e->link, e->link_len,
					  t->name);
			/* a copy of what it names under its own name, with
			 * its metadata (names, xattrs, ACLs): a file's data,
			 * or a symlink or special file */
			if (src.type == DD_ENTRY_FILE)
				data = &src;
			e = &src;
		}
	}
	browse_tar_fill(t, e, data);
	ar = archive_write_header(t->aw, t->ae);
	if (ar < ARCHIVE_WARN)
		return browse_tar_error(t, t->name);
	if (data) {
		browse_data_start(&t->data, data);
		t->in_data = true;
	}
	return 0;
}

/* One step: a piece of file data, or the next entry, or the end. */
static int browse_tar_step(struct browse_tar *t)
{
	struct dd_entry e;
	const uint8_t *p;
	size_t len;
	int rc;

	if (t->in_data) {
		rc = browse_data_piece(&t->data, &p, &len, BROWSE_PIECE);
		if (rc < 0)
			return rc;
		if (rc == 1 && p == browse_zeros &&
		    (t->hole_bytes += len) > browse_hole_max())
			return dd_error_set(-E2BIG, "the holes in '/%s' add up "
					    "to more than %llu bytes; restore "
					    "it with dedup-agent", t->dir,
					    (unsigned long long)browse_hole_max());
		if (rc == 1) {
			if (archive_write_data(t->aw, p, len) != (la_ssize_t)len)
				return browse_tar_error(t, t->name);
			return 0;
		}
		t->in_data = false;
		if (archive_write_finish_entry(t->aw) < ARCHIVE_WARN)
			return browse_tar_error(t, t->name);
		return 0;
	}
	if (t->have_pending) {
		t->have_pending = false;
		return browse_tar_entry(t, &t->pending);
	}
	rc = browse_next(t->src, &e);
	if (rc < 0)
		return rc;
	if (rc == 0 || browse_past(&e, t->dir, t->dlen)) {
		if (archive_write_close(t->aw) != ARCHIVE_OK)
			return browse_tar_error(t, "the end");
		t->done = true;
		return 0;
	}
	return browse_tar_entry(t, &e);
}

/* Reads up to the directory's first entry (kept pending): -ENOENT when
 * the snapshot has nothing at dir, -ENOTDIR when it is not a directory. */
static int browse_tar_find(struct browse_tar *t)
{
	const char *rest;
	size_t rlen;
	int rc;

	while ((rc = browse_next(t->src, &t->pending)) == 1) {
		if (t->dlen && browse_is(&t->pending, t->dir, t->dlen)) {
			if (t->pending.type != DD_ENTRY_DIR)
				return dd_error_set(-ENOTDIR, "'/%s' is not a "
						    "directory", t->dir);
			break;
		}
		if (browse_under(t->pending.path, t->pending.path_len, t->dir,
				 t->dlen, &rest, &rlen))
			break;
		if (browse_past(&t->pending, t->dir, t->dlen))
			return browse_not_found(t->dir);
	}
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (t->dlen)
			return browse_not_found(t->dir);
		t->have_pending = false;        /* an empty snapshot */
		return 0;
	}
	t->have_pending = true;
	return 0;
}

/* The archive's source, from the last mark before its folder. */
static int browse_tar_source(struct browse_tar *t, struct store *st, size_t n)
{
	struct browse_scan sc;
	int rc = browse_scan_open(&sc, st, t->ids, n, t->dir, t->dlen);

	t->src = sc.src;
	sc.src = NULL;
	browse_scan_close(&sc);
	return rc;
}

static int browse_tar_open_in(struct browse_tar **out, struct store *st,
			      const struct dd_id *ids, size_t n,
			      const char *dir)
{
	struct browse_tar *t = calloc(1, sizeof(*t));
	const char *slash;
	int rc;

	*out = NULL;
	if (!t)
		return dd_error_set(-ENOMEM, "out of memory");
	t->st = st;
	t->n = n;
	dd_buf_init(&t->out, 0);
	if ((rc = browse_copy_ids(&t->ids, ids, n)) < 0 ||
	    (rc = browse_data_init(&t->data, st)) < 0)
		goto fail;
	t->dir = strdup(dir);
	t->name = malloc(BROWSE_NAME_MAX);
	t->link = malloc(BROWSE_NAME_MAX);
	t->scratch = malloc(DD_CATALOG_LINK_MAX + 1);
	t->aw = archive_write_new();
	t->ae = archive_entry_new();
	t->names = dd_owner_names_new();
	/* lowered by DEDUP_TEST_BROWSE_COPIES_BYTES (docs/OPERATIONS.md) */
	t->copies.max_bytes = (size_t)dd_test_hook_u64(
		"DEDUP_TEST_BROWSE_COPIES_BYTES", 1, BROWSE_COPIES_BYTES,
		BROWSE_COPIES_BYTES);
	if (!t->dir || !t->name || !t->link || !t->scratch || !t->aw ||
	    !t->ae || !t->names) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto fail;
	}
	t->dlen = strlen(dir);
	slash = strrchr(dir, '/');
	t->base_off = slash ? (size_t)(slash - dir) + 1 : 0;
	if ((rc = browse_tar_source(t, st, n)) < 0 ||
	    (rc = browse_tar_find(t)) < 0)
		goto fail;
	if (archive_write_set_format_pax(t->aw) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(t->aw, 1) != ARCHIVE_OK ||
	    archive_write_open(t->aw, t, NULL, browse_tar_write, NULL) !=
	    ARCHIVE_OK) {
		rc = browse_tar_error(t, "the start");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	browse_tar_free(t);
	return rc;
}

int browse_tar_open(struct browse_tar **out, struct store *st,
		    const struct dd_id *ids, size_t n, const char *dir)
{
	locale_t old = browse_utf8_enter();
	int rc = browse_tar_open_in(out, st, ids, n, dir);

	browse_utf8_leave(old);
	return rc;
}

static ssize_t browse_tar_read_in(struct browse_tar *t, uint8_t *buf,
				  size_t max)
{
	size_t k;
	int rc;

	while (t->out_pos == t->out.len) {
		if (t->done)
			return 0;
		dd_buf_reset(&t->out);
		t->out_pos = 0;
		if ((rc = browse_tar_step(t)) < 0)
			return rc;
	}
	k = t->out.len - t->out_pos < max ? t->out.len - t->out_pos : max;
	memcpy(buf, t->out.data + t->out_pos, k);
	t->out_pos += k;
	return (ssize_t)k;
}

ssize_t browse_tar_read(struct browse_tar *t, uint8_t *buf, size_t max)
{
	locale_t old = browse_utf8_enter();
	ssize_t n = browse_tar_read_in(t, buf, max);

	browse_utf8_leave(old);
	return n;
}

void browse_tar_free(struct browse_tar *t)
{
	locale_t old;

	if (!t)
		return;
	old = browse_utf8_enter();
	if (t->aw)
		archive_write_free(t->aw);      /* closes an open archive */
	browse_utf8_leave(old);
	archive_entry_free(t->ae);
	dd_owner_names_free(t->names);
	browse_copies_release(&t->copies);
	browse_data_release(&t->data);
	catsource_free(t->side);
	free(t->side_at);
	catsource_free(t->src);
	dd_buf_release(&t->out);
	free(t->ids);
	free(t->dir);
	free(t->name);
	free(t->link);
	free(t->scratch);
	free(t);
}
