/*
 * store.c - see store.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <leveldb/c.h>
#include <zstd.h>

#include "compress.h"
#include "domains.h"
#include "ldbcheck.h"
#include "log.h"
#include "repo.h"
#include "store.h"
#include "vouch.h"

#define STORE_CACHE_BYTES (64u * 1024 * 1024)
#define STORE_FD_SLOTS 64
#define STORE_META_KEY "mstats"
#define STORE_META_LEN 17u
/* Reopening an index whose writes failed: at most one attempt per backoff,
 * which doubles from MIN to MAX while the disk stays full. */
#define STORE_HEAL_BACKOFF_MIN 0.5
#define STORE_HEAL_BACKOFF_MAX 8.0
/* Room an index reopen needs beyond its log and MANIFEST (a new MANIFEST
 * and log, and slack). */
#define STORE_HEAL_MARGIN (1024u * 1024)
#define STORE_HEAL_PROBE "heal-probe.tmp"

struct store_fd {
	uint64_t seq;
	int fd;            /* -1: free slot */
	unsigned refs;
	uint64_t used;     /* for least-recently-used eviction */
	bool dead;         /* the pack was deleted: close at the last release */
};

/* Test hook (docs/OPERATIONS.md): DEDUP_TEST_VOUCH_MAX=N bounds each
 * exact set of the vouch journal at N ids, so that tests reach its bloom
 * filters with a few thousand chunks. */
#define STORE_TEST_VOUCH_MAX "DEDUP_TEST_VOUCH_MAX"

/* Internal open flag: a new index in a directory that must not exist
 * yet, always rebuilt from the packs (repair). */
#define STORE_OPEN_FRESH 0x100u

struct store {
	char packs_dir[4096];
	char index_dir[4096];
	unsigned flags;           /* STORE_OPEN_* */
	uint64_t rebuild_bad;     /* damaged records the last rebuild skipped */

	/* The index. `db_lock` is held shared around every use of `db` and
	 * exclusively to reopen it after a failed write. */
	pthread_rwlock_t db_lock;
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_filterpolicy_t *bloom;
	leveldb_cache_t *cache;
	leveldb_readoptions_t *ropts;
	leveldb_writeoptions_t *wopts_sync;
	leveldb_writeoptions_t *wopts_nosync;

	/* Ingest state, under ingest_lock. `db_failed`: a write to the index
	 * failed, LevelDB refuses every later write until it is reopened,
	 * and reads still work (store_db_heal). */
	pthread_mutex_t ingest_lock;
	struct dd_pack_writer *writer;
	uint64_t next_seq;
	bool db_failed;
	double heal_next;         /* monotonic time of the next attempt */
	double heal_backoff;      /* seconds until the one after */

	/* What /health reports, under heal_lock (never waits for an ingest):
	 * a copy of db_failed / db == NULL and why. */
	pthread_mutex_t heal_lock;
	bool idx_failed;
	bool idx_closed;
	int idx_rc;
	char idx_reason[512];

	/* Counters, under counters_lock (read by /stats while ingesting). */
	pthread_mutex_t counters_lock;
	uint64_t chunks;
	uint64_t bytes_unique;

	/* Garbage collection (store.h, "Collection support"). `sweep_lock`
	 * is held shared by every lookup that may vouch for a chunk and
	 * exclusively by a sweep batch, so a chunk found present is either
	 * recorded in `vouched` before the sweep looks, or is already gone. */
	pthread_mutex_t gc_lock;      /* one collection at a time */
	pthread_rwlock_t sweep_lock;
	pthread_mutex_t track_lock;   /* vouched, tracking */
	struct vouch *vouched;        /* the vouch journal (vouch.h) */
	bool tracking;                /* a collection is past its start */

	/* Open pack files for reading. */
	pthread_mutex_t fd_lock;
	struct store_fd fds[STORE_FD_SLOTS];
	uint64_t fd_clock;
};

/* ---- LevelDB helpers ---- */

/* Turns a LevelDB error string into an errno code and a message, and frees
 * it. LevelDB reports only text, so a full disk is recognised by the
 * strerror() text its Posix env embeds. */
static int store_db_error(char *err, const char *what)
{
	int rc = -EIO;

	if (err && (strstr(err, strerror(ENOSPC)) ||
		    strstr(err, strerror(EDQUOT))))
		rc = -ENOSPC;
	dd_error_set(rc, "cannot %s: %s", what, err ? err : "unknown error");
	leveldb_free(err);
	return rc;
}

static void store_meta_encode(uint8_t out[STORE_META_LEN], uint64_t chunks,
			      uint64_t bytes)
{
	out[0] = 1;
	dd_put_le64(out + 1, chunks);
	dd_put_le64(out + 9, bytes);
}

static void store_id_key(uint8_t key[1 + DD_ID_LEN], const struct dd_id *id)
{
	key[0] = 'c';
	memcpy(key + 1, id->b, DD_ID_LEN);
}

static void store_db_release(struct store *s)
{
	if (s->db)
		leveldb_close(s->db);
	s->db = NULL;
}

static int store_db_open(struct store *s)
{
	char *err = NULL;

	s->db = leveldb_open(s->opts, s->index_dir, &err);
	if (!s->db || err) {
		char what[4200];

		s->db = NULL;
		snprintf(what, sizeof(what), "open index '%s'", s->index_dir);
		return store_db_error(err, what);
	}
	return 0;
}

static int store_options_init(struct store *s)
{
	s->opts = leveldb_options_create();
	s->bloom = leveldb_filterpolicy_create_bloom(10);
	s->cache = leveldb_cache_create_lru(STORE_CACHE_BYTES);
	s->ropts = leveldb_readoptions_create();
	s->wopts_sync = leveldb_writeoptions_create();
	s->wopts_nosync = leveldb_writeoptions_create();
	if (!s->opts || !s->bloom || !s->cache || !s->ropts ||
	    !s->wopts_sync || !s->wopts_nosync)
		return -ENOMEM;
	leveldb_options_set_create_if_missing(s->opts,
		(s->flags & STORE_OPEN_READONLY) ? 0 : 1);
	if (s->flags & STORE_OPEN_FRESH)
		leveldb_options_set_error_if_exists(s->opts, 1);
	if (s->flags & STORE_OPEN_READONLY) {
		/* check: report corrupt blocks instead of reading past them.
		 * Not paranoid_checks: that would also refuse a log whose
		 * last record a crash tore, which the server's own open
		 * drops (that write was never acknowledged). */
		leveldb_readoptions_set_verify_checksums(s->ropts, 1);
		leveldb_readoptions_set_fill_cache(s->ropts, 0);
	}
	leveldb_options_set_filter_policy(s->opts, s->bloom);
	leveldb_options_set_cache(s->opts, s->cache);
	/* Keys are hashes and values mostly incompressible. */
	leveldb_options_set_compression(s->opts, leveldb_no_compression);
	leveldb_options_set_max_open_files(s->opts, 256);
	leveldb_options_set_write_buffer_size(s->opts, 8u * 1024 * 1024);
	leveldb_writeoptions_set_sync(s->wopts_sync, 1);
	leveldb_writeoptions_set_sync(s->wopts_nosync, 0);
	return 0;
}

static void store_options_release(struct store *s)
{
	if (s->opts)
		leveldb_options_destroy(s->opts);
	if (s->bloom)
		leveldb_filterpolicy_destroy(s->bloom);
	if (s->cache)
		leveldb_cache_destroy(s->cache);
	if (s->ropts)
		leveldb_readoptions_destroy(s->ropts);
	if (s->wopts_sync)
		leveldb_writeoptions_destroy(s->wopts_sync);
	if (s->wopts_nosync)
		leveldb_writeoptions_destroy(s->wopts_nosync);
}

int store_index_create(const char *index_dir)
{
	leveldb_options_t *o = leveldb_options_create();
	leveldb_writeoptions_t *w = leveldb_writeoptions_create();
	leveldb_t *db;
	uint8_t meta[STORE_META_LEN];
	char *err = NULL;
	int rc = 0;

	leveldb_options_set_create_if_missing(o, 1);
	leveldb_options_set_error_if_exists(o, 1);
	leveldb_writeoptions_set_sync(w, 1);
	db = leveldb_open(o, index_dir, &err);
	if (!db || err) {
		rc = store_db_error(err, "create the index");
		goto cleanup;
	}
	store_meta_encode(meta, 0, 0);
	leveldb_put(db, w, STORE_META_KEY, strlen(STORE_META_KEY),
		    (const char *)meta, sizeof(meta), &err);
	if (err)
		rc = store_db_error(err, "write the index");
	leveldb_close(db);
cleanup:
	leveldb_writeoptions_destroy(w);
	leveldb_options_destroy(o);
	return rc;
}

/* ---- packs on disk ---- */

/* Parses "<16 hex>.pack"; false for any other name. */
static bool store_pack_name(const char *name, uint64_t *seq)
{
	uint8_t b[8];
	int i;

	if (strlen(name) != 21 || strcmp(name + 16, ".pack") != 0 ||
	    dd_hex_decode(b, 8, name, 16) < 0)
		return false;
	*seq = 0;
	for (i = 0; i < 8; i++)
		*seq = *seq << 8 | b[i];
	return true;
}

/* Calls cb for each pack file name in the packs directory. */
static int store_list_packs(const char *dir,
			    int (*cb)(void *payload, uint64_t seq,
				      const char *name),
			    void *payload)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t seq;
	int rc = 0;

	if (!d)
		return dd_error_set(-errno, "cannot open '%s': %s", dir,
				    strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (!store_pack_name(de->d_name, &seq))
			continue;
		rc = cb(payload, seq, de->d_name);
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

static int store_max_seq_cb(void *payload, uint64_t seq, const char *name)
{
	uint64_t *max = payload;

	(void)name;
	if (seq > *max)
		*max = seq;
	return 0;
}

struct store_usage {
	const char *dir;
	uint64_t packs;
	uint64_t bytes;
};

static int store_usage_cb(void *payload, uint64_t seq, const char *name)
{
	struct store_usage *u = payload;
	char path[4200];
	struct stat st;

	(void)seq;
	snprintf(path, sizeof(path), "%s/%s", u->dir, name);
	if (stat(path, &st) == 0) {
		u->packs++;
		u->bytes += (uint64_t)st.st_size;
	}
	return 0;
}

int store_pack_usage(struct store *s, uint64_t *packs, uint64_t *bytes)
{
	struct store_usage u = { s->packs_dir, 0, 0 };
	int rc = store_list_packs(s->packs_dir, store_usage_cb, &u);

	*packs = u.packs;
	*bytes = u.bytes;
	return rc;
}

/* With ingest_lock held (or at close): seal the open pack. Everything in
 * it is durable and indexed already, so a failed seal loses nothing: the
 * pack stays readable by scanning. */
static void store_seal_writer(struct store *s)
{
	char path[4200];
	int rc;

	if (!s->writer)
		return;
	dd_pack_path(path, sizeof(path), s->packs_dir,
		     dd_pack_writer_seq(s->writer));
	dd_error_clear();
	rc = dd_pack_writer_seal(s->writer);
	s->writer = NULL;
	if (rc < 0)
		log_error("cannot seal pack '%s': %s", path, log_reason(rc));
}

/* ---- opening: counters and index rebuild ---- */

/* Counts the 'c' entries of the index. */
static int store_count_entries(struct store *s, uint64_t *chunks,
			       uint64_t *bytes)
{
	leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
	struct dd_chunk_loc loc;
	const char *k, *v;
	size_t klen, vlen;
	char *err = NULL;

	*chunks = 0;
	*bytes = 0;
	for (leveldb_iter_seek(it, "c", 1); leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < 1 || k[0] != 'c')
			break;
		v = leveldb_iter_value(it, &vlen);
		if (klen != 1 + DD_ID_LEN ||
		    dd_chunk_loc_decode(&loc, v, vlen) < 0)
			continue;
		(*chunks)++;
		*bytes += loc.plain_len;
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	if (err)
		return store_db_error(err, "read the index");
	return 0;
}

struct store_rebuild {
	struct store *s;
	struct dd_buf plain;
	ZSTD_DCtx *dctx;
	uint64_t added, bad, salvaged;
	uint64_t end;         /* end of the last record the scan reported */
	int err;
};

/* With the index open for rebuilding: adds id -> loc. */
static int store_rebuild_put(struct store_rebuild *r, const struct dd_id *id,
			     const struct dd_chunk_loc *loc)
{
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_LEN];
	char *err = NULL;

	store_id_key(key, id);
	dd_chunk_loc_encode(val, loc);
	leveldb_put(r->s->db, r->s->wopts_nosync, (const char *)key,
		    sizeof(key), (const char *)val, sizeof(val), &err);
	if (err) {
		r->err = store_db_error(err, "write the index");
		return -1;
	}
	r->added++;
	return 0;
}

static int store_rebuild_record(void *payload, const struct dd_id *id,
				const struct dd_chunk_loc *loc,
				const uint8_t *stored)
{
	struct store_rebuild *r = payload;
	struct dd_chunk_loc have;
	int rc;

	r->end = loc->offset + DD_PACK_RECORD_HEADER_LEN + loc->stored_len;
	if (store_lookup(r->s, id, &have) == 0)
		return 0;          /* a copy in an earlier pack wins */
	rc = store_decode(&r->plain, id, loc->flags, loc->plain_len, stored,
			  loc->stored_len, r->dctx);
	if (rc < 0) {
		r->bad++;
		return 0;
	}
	return store_rebuild_put(r, id, loc) < 0 ? 1 : 0;
}

/* dd_pack_salvage callback: only records whose bytes hash to their id
 * are records (a match may lie inside another record's bytes). */
static int store_salvage_record(void *payload, const struct dd_id *id,
				const struct dd_chunk_loc *loc,
				const uint8_t *stored)
{
	struct store_rebuild *r = payload;
	struct dd_chunk_loc have;

	if (store_decode(&r->plain, id, loc->flags, loc->plain_len, stored,
			 loc->stored_len, r->dctx) < 0)
		return 0;
	if (store_lookup(r->s, id, &have) == 0)
		return DD_PACK_SALVAGE_TAKEN;
	if (store_rebuild_put(r, id, loc) < 0)
		return r->err;
	r->salvaged++;
	return DD_PACK_SALVAGE_TAKEN;
}

struct store_seqs {
	uint64_t *v;
	size_t n;
};

static int store_collect_seq_cb(void *payload, uint64_t seq,
				const char *name)
{
	struct store_seqs *l = payload;
	uint64_t *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	(void)name;
	if (!v)
		return -ENOMEM;
	v[l->n++] = seq;
	l->v = v;
	return 0;
}

static int store_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Rebuilds the index from every pack, oldest first, verifying each
 * record. Used when the index is empty but packs exist. */
static int store_rebuild(struct store *s)
{
	struct store_seqs seqs = { NULL, 0 };
	struct store_rebuild r;
	char path[4200];
	size_t n, i;
	bool sealed;
	int rc;

	rc = store_list_packs(s->packs_dir, store_collect_seq_cb, &seqs);
	n = seqs.n;
	if (rc < 0 || n == 0) {
		free(seqs.v);
		return rc;
	}
	qsort(seqs.v, n, sizeof(uint64_t), store_cmp_u64);
	log_info("index is empty: rebuilding it from %zu pack(s)", n);
	memset(&r, 0, sizeof(r));
	r.s = s;
	dd_buf_init(&r.plain, 0);
	r.dctx = ZSTD_createDCtx();
	for (i = 0; i < n; i++) {
		struct stat st;

		dd_pack_path(path, sizeof(path), s->packs_dir, seqs.v[i]);
		dd_error_clear();
		r.end = DD_PACK_HEADER_LEN;
		rc = dd_pack_scan(path, store_rebuild_record, &r, &sealed);
		if (r.err) {
			rc = r.err;
			break;
		}
		/* A scan that failed part way, or an unsealed pack that does
		 * not end with its last record (a torn write, or damage in the
		 * middle): look for intact records after what was read. */
		if (rc < 0 || (!sealed && stat(path, &st) == 0 &&
			       (uint64_t)st.st_size > r.end)) {
			if (rc < 0)
				log_warning("pack '%s': %s (salvaging its "
					    "records)", path, log_reason(rc));
			dd_error_clear();
			rc = dd_pack_salvage(path, seqs.v[i], r.end,
					     store_salvage_record, &r);
			if (r.err) {
				rc = r.err;
				break;
			}
			if (rc < 0)
				log_warning("pack '%s': %s (indexed what could "
					    "be read)", path, log_reason(rc));
		}
		rc = 0;
	}
	if (r.salvaged)
		log_warning("%llu record(s) were salvaged from damaged packs",
			    (unsigned long long)r.salvaged);
	if (r.bad)
		log_warning("%llu corrupt record(s) were left out of the index",
			    (unsigned long long)r.bad);
	s->rebuild_bad = r.bad;
	if (rc == 0)
		log_info("index rebuilt: %llu chunk(s)",
			 (unsigned long long)r.added);
	dd_buf_release(&r.plain);
	ZSTD_freeDCtx(r.dctx);
	free(seqs.v);
	return rc;
}

/* Loads the counters, recounting (and rebuilding) when the meta key is
 * missing. */
static int store_load_counters(struct store *s)
{
	uint8_t meta[STORE_META_LEN];
	char *err = NULL, *v;
	size_t vlen;
	int rc;

	v = leveldb_get(s->db, s->ropts, STORE_META_KEY,
			strlen(STORE_META_KEY), &vlen, &err);
	if (err)
		return store_db_error(err, "read the index");
	if (v && vlen == STORE_META_LEN && (uint8_t)v[0] == 1) {
		s->chunks = dd_le64((const uint8_t *)v + 1);
		s->bytes_unique = dd_le64((const uint8_t *)v + 9);
		leveldb_free(v);
		return 0;
	}
	if (v) {
		if (!(s->flags & STORE_OPEN_READONLY))
			log_warning("index counters are invalid: recounting");
		leveldb_free(v);
	}
	rc = store_count_entries(s, &s->chunks, &s->bytes_unique);
	if (s->flags & STORE_OPEN_READONLY)
		return rc;
	if (rc == 0 && s->chunks == 0) {
		rc = store_rebuild(s);
		if (rc == 0)
			rc = store_count_entries(s, &s->chunks,
						 &s->bytes_unique);
	}
	/* Before the counters are written, so a crash retries it. */
	if (rc == 0)
		rc = domains_after_rebuild(s);
	if (rc < 0)
		return rc;
	store_meta_encode(meta, s->chunks, s->bytes_unique);
	leveldb_put(s->db, s->wopts_sync, STORE_META_KEY,
		    strlen(STORE_META_KEY), (const char *)meta, sizeof(meta),
		    &err);
	if (err)
		return store_db_error(err, "write the index");
	return 0;
}

/* The server's open: a table with a bad block would go unnoticed until a
 * lookup lands on it (ldbcheck.h), so every table is checked first, and a
 * damaged index stops the start with one clear error. */
static int store_verify_tables(struct store *s)
{
	struct ldbcheck_stats st;
	double t0 = dd_monotonic();
	int rc;

	dd_error_clear();
	rc = ldbcheck_dir(s->index_dir, &st);
	if (rc == -ENOENT)
		return 0;           /* a new index */
	if (rc == -EBADMSG)
		return dd_error_set(rc, "the index is damaged: %s; run "
				    "`dedup-server repair --rebuild-index` "
				    "(with the server stopped)",
				    dd_error_last());
	if (rc < 0)
		return rc;
	log_info("index tables verified: %llu table(s), %llu block(s), "
		 "%.1f MiB in %.2f s", (unsigned long long)st.tables,
		 (unsigned long long)st.blocks,
		 (double)st.bytes / (1024.0 * 1024.0), dd_monotonic() - t0);
	return 0;
}

/* The exact bound of the vouch journal: 0 (the default) unless a test
 * sets DEDUP_TEST_VOUCH_MAX. */
static size_t store_test_vouch_max(void)
{
	const char *v = getenv(STORE_TEST_VOUCH_MAX);
	uint64_t n;

	if (!v || dd_parse_u64(v, &n) < 0 || n == 0 || n > VOUCH_EXACT_MAX)
		return 0;
	return (size_t)n;
}

/* Opens the store of `repo` with its index in `index_dir` (NULL: the
 * repository's index/). */
static int store_open_dir(struct store **out, const char *repo,
			  const char *index_dir, unsigned flags)
{
	struct store *s;
	uint64_t max = 0;
	int rc, i;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->flags = flags;
	pthread_rwlock_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->ingest_lock, NULL);
	pthread_mutex_init(&s->counters_lock, NULL);
	pthread_mutex_init(&s->fd_lock, NULL);
	pthread_mutex_init(&s->gc_lock, NULL);
	pthread_rwlock_init(&s->sweep_lock, NULL);
	pthread_mutex_init(&s->track_lock, NULL);
	pthread_mutex_init(&s->heal_lock, NULL);
	s->heal_backoff = STORE_HEAL_BACKOFF_MIN;
	for (i = 0; i < STORE_FD_SLOTS; i++)
		s->fds[i].fd = -1;
	rc = vouch_new(&s->vouched, store_test_vouch_max());
	if (rc < 0)
		goto fail;

	rc = repo_path(s->packs_dir, sizeof(s->packs_dir), repo, REPO_PACKS);
	if (rc == 0 && index_dir &&
	    snprintf(s->index_dir, sizeof(s->index_dir), "%s", index_dir) >=
	    (int)sizeof(s->index_dir))
		rc = dd_error_set(-ENAMETOOLONG, "path too long: '%s'",
				  index_dir);
	else if (rc == 0 && !index_dir)
		rc = repo_path(s->index_dir, sizeof(s->index_dir), repo,
			       REPO_INDEX);
	if (rc < 0)
		goto fail;
	rc = store_options_init(s);
	if (rc < 0)
		goto fail;
	if (flags & STORE_OPEN_READONLY) {
		struct stat st;

		if (stat(s->index_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			rc = dd_error_set(-ENOENT, "there is no index '%s'",
					  s->index_dir);
			goto fail;
		}
	}
	if (!(flags & (STORE_OPEN_READONLY | STORE_OPEN_FRESH))) {
		rc = store_verify_tables(s);
		if (rc < 0)
			goto fail;
	}
	rc = store_db_open(s);
	if (rc < 0)
		goto fail;
	rc = store_list_packs(s->packs_dir, store_max_seq_cb, &max);
	if (rc < 0)
		goto fail;
	/* Never append to an existing pack, sealed or not. */
	s->next_seq = max + 1;
	rc = store_load_counters(s);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

int store_open(struct store **out, const char *repo)
{
	return store_open_dir(out, repo, NULL, 0);
}

int store_open_ex(struct store **out, const char *repo, unsigned flags)
{
	return store_open_dir(out, repo, NULL, flags & STORE_OPEN_READONLY);
}

const char *store_packs_dir(const struct store *s)
{
	return s->packs_dir;
}

int store_pack_seqs(struct store *s, uint64_t **out, size_t *n)
{
	struct store_seqs seqs = { NULL, 0 };
	int rc;

	*out = NULL;
	*n = 0;
	rc = store_list_packs(s->packs_dir, store_collect_seq_cb, &seqs);
	if (rc < 0) {
		free(seqs.v);
		return rc;
	}
	if (seqs.n)
		qsort(seqs.v, seqs.n, sizeof(uint64_t), store_cmp_u64);
	*out = seqs.v;
	*n = seqs.n;
	return 0;
}

int store_index_foreach(struct store *s, store_entry_cb cb, void *payload)
{
	leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
	const char *k, *v;
	size_t klen, vlen;
	char *err = NULL;
	int rc = 0;

	for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		v = leveldb_iter_value(it, &vlen);
		rc = cb(payload, (const uint8_t *)k, klen,
			(const uint8_t *)v, vlen);
		if (rc)
			break;
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	if (err && rc == 0) {
		rc = dd_error_set(-EBADMSG, "cannot read the index '%s': %s",
				  s->index_dir, err);
		leveldb_free(err);
	} else if (err) {
		leveldb_free(err);
	}
	return rc;
}

int store_index_meta(struct store *s, bool *present, uint64_t *chunks,
		     uint64_t *bytes_unique)
{
	char *err = NULL, *v;
	size_t vlen;

	*present = false;
	*chunks = 0;
	*bytes_unique = 0;
	v = leveldb_get(s->db, s->ropts, STORE_META_KEY,
			strlen(STORE_META_KEY), &vlen, &err);
	if (err) {
		int rc = dd_error_set(-EBADMSG, "cannot read the index '%s': %s",
				      s->index_dir, err);

		leveldb_free(err);
		return rc;
	}
	if (v && vlen == STORE_META_LEN && (uint8_t)v[0] == 1) {
		*present = true;
		*chunks = dd_le64((const uint8_t *)v + 1);
		*bytes_unique = dd_le64((const uint8_t *)v + 9);
	}
	leveldb_free(v);
	return 0;
}

/* Removes a LevelDB directory (flat: files only) and the directory;
 * 0 if it does not exist. */
static int store_remove_dir(const char *dir)
{
	char path[4400];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 :
			dd_error_set(-errno, "cannot open '%s': %s", dir,
				     strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0 && errno != ENOENT) {
			int rc = -errno;

			closedir(d);
			return dd_error_set(rc, "cannot remove '%s': %s", path,
					    strerror(-rc));
		}
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		return dd_error_set(-errno, "cannot remove '%s': %s", dir,
				    strerror(errno));
	return 0;
}

int store_rebuild_index(const char *repo, uint64_t *chunks, uint64_t *bad)
{
	char idx[4096], nidx[4200], oidx[4200];
	struct store *s = NULL;
	uint64_t bytes;
	int rc;

	*chunks = 0;
	*bad = 0;
	rc = repo_path(idx, sizeof(idx), repo, REPO_INDEX);
	if (rc < 0)
		return rc;
	snprintf(nidx, sizeof(nidx), "%s.new", idx);
	snprintf(oidx, sizeof(oidx), "%s.old", idx);
	/* Leftovers of an interrupted repair are of no use. */
	rc = store_remove_dir(nidx);
	if (rc == 0)
		rc = store_remove_dir(oidx);
	if (rc < 0)
		return rc;
	rc = store_open_dir(&s, repo, nidx, STORE_OPEN_FRESH);
	if (rc < 0)
		return rc;
	store_counters(s, chunks, &bytes);
	*bad = s->rebuild_bad;
	store_close(s);
	rc = dd_fsync_dir(nidx);
	if (rc < 0)
		return rc;
	if (rename(idx, oidx) < 0 && errno != ENOENT)
		return dd_error_set(-errno, "cannot rename '%s': %s", idx,
				    strerror(errno));
	if (rename(nidx, idx) < 0)
		return dd_error_set(-errno, "cannot rename '%s': %s", nidx,
				    strerror(errno));
	rc = dd_fsync_dir(repo);
	if (rc < 0)
		return rc;
	return store_remove_dir(oidx);
}

void store_close(struct store *s)
{
	int i;

	if (!s)
		return;
	store_seal_writer(s);
	store_db_release(s);
	store_options_release(s);
	for (i = 0; i < STORE_FD_SLOTS; i++)
		if (s->fds[i].fd >= 0)
			close(s->fds[i].fd);
	pthread_rwlock_destroy(&s->db_lock);
	pthread_mutex_destroy(&s->ingest_lock);
	pthread_mutex_destroy(&s->counters_lock);
	pthread_mutex_destroy(&s->fd_lock);
	pthread_mutex_destroy(&s->gc_lock);
	pthread_rwlock_destroy(&s->sweep_lock);
	pthread_mutex_destroy(&s->track_lock);
	pthread_mutex_destroy(&s->heal_lock);
	vouch_free(s->vouched);
	free(s);
}

/* ---- healing the index after a failed write ---- */

/* Copies the index state for store_index_health(); ingest_lock held. */
static void store_heal_publish(struct store *s, int rc, const char *why)
{
	pthread_mutex_lock(&s->heal_lock);
	s->idx_failed = s->db_failed;
	s->idx_closed = s->db == NULL;
	s->idx_rc = rc;
	if (why)
		snprintf(s->idx_reason, sizeof(s->idx_reason), "%s", why);
	else if (!s->db_failed && s->db)
		s->idx_reason[0] = '\0';
	pthread_mutex_unlock(&s->heal_lock);
}

/* ingest_lock held: a write to the index failed with rc (message set). */
static void store_db_write_failed(struct store *s, int rc)
{
	s->db_failed = true;
	s->heal_next = dd_monotonic() + s->heal_backoff;
	log_error("the index cannot be written: %s; lookups and restores go "
		  "on, writes are refused until it can be reopened",
		  dd_error_last());
	store_heal_publish(s, rc, dd_error_last());
}

static int store_closed_error(struct store *s)
{
	char why[512];
	int rc;

	pthread_mutex_lock(&s->heal_lock);
	snprintf(why, sizeof(why), "%s", s->idx_reason[0] ? s->idx_reason :
		 "it was never opened");
	pthread_mutex_unlock(&s->heal_lock);
	rc = dd_error_set(-EAGAIN, "the index is not open (%s); it is "
			  "reopened as soon as it can be written", why);
	return rc;
}

/* Bytes of the index files a reopen rewrites (its logs are turned into a
 * table, its MANIFEST into a new one), plus a margin. */
static uint64_t store_heal_need(const struct store *s)
{
	char path[4400];
	struct stat st;
	struct dirent *de;
	uint64_t need = STORE_HEAL_MARGIN;
	DIR *d = opendir(s->index_dir);

	if (!d)
		return need;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (!((len > 4 && strcmp(de->d_name + len - 4, ".log") == 0) ||
		      strncmp(de->d_name, "MANIFEST-", 9) == 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", s->index_dir,
			 de->d_name);
		if (stat(path, &st) == 0)
			need += (uint64_t)st.st_size;
	}
	closedir(d);
	return need;
}

/*
 * Is there room to reopen the index? Reserves `need` bytes in a probe file
 * beside it (so a quota or a tmpfs counts as the real write would), then
 * removes it. Where the file system cannot reserve, its free space is
 * compared instead. 0, or -ENOSPC / -EIO with a reason.
 */
static int store_heal_probe(const struct store *s, uint64_t need)
{
	char path[4400];
	struct statvfs vfs;
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", s->index_dir, STORE_HEAL_PROBE);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = errno;
		if (err == ENOSPC || err == EDQUOT)
			return dd_error_set(-ENOSPC, "no space for the index "
					    "(cannot create a file in '%s')",
					    s->index_dir);
		return dd_error_set(-EIO, "cannot create '%s': %s", path,
				    strerror(err));
	}
	err = posix_fallocate(fd, 0, (off_t)need);
	close(fd);
	unlink(path);
	if (err == EOPNOTSUPP || err == EINVAL) {
		if (statvfs(s->index_dir, &vfs) < 0)
			return dd_error_set(-EIO, "cannot stat '%s': %s",
					    s->index_dir, strerror(errno));
		if ((uint64_t)vfs.f_bavail * vfs.f_frsize >= need)
			return 0;
		err = ENOSPC;
	}
	if (err == ENOSPC || err == EDQUOT)
		return dd_error_set(-ENOSPC, "no space for the index: "
				    "reopening it needs %llu bytes free",
				    (unsigned long long)need);
	if (err)
		return dd_error_set(-EIO, "cannot reserve space in '%s': %s",
				    s->index_dir, strerror(err));
	return 0;
}

/*
 * With ingest_lock held: reopens the index after a failed write (LevelDB
 * refuses every write after one failed, until it is reopened), at most
 * once per backoff. The failed handle stays open, and reads keep working,
 * until a probe shows the reopen can write; only then is it closed and
 * opened again. 0 when the index is writable again; otherwise the error
 * of the last attempt, with its reason.
 */
static int store_db_heal(struct store *s)
{
	double now = dd_monotonic();
	int rc;

	if (!s->db_failed && s->db)
		return 0;
	if (now < s->heal_next) {
		pthread_mutex_lock(&s->heal_lock);
		rc = s->idx_rc ? s->idx_rc : -EIO;
		dd_error_set(rc, "the index cannot be written (%s); it is "
			     "reopened as soon as it can be",
			     s->idx_reason[0] ? s->idx_reason :
			     "a write failed");
		pthread_mutex_unlock(&s->heal_lock);
		return rc;
	}
	dd_error_clear();
	rc = store_heal_probe(s, store_heal_need(s));
	if (rc == 0) {
		pthread_rwlock_wrlock(&s->db_lock);
		store_db_release(s);
		rc = store_db_open(s);
		pthread_rwlock_unlock(&s->db_lock);
	}
	if (rc < 0) {
		s->heal_next = now + s->heal_backoff;
		if (s->heal_backoff < STORE_HEAL_BACKOFF_MAX)
			s->heal_backoff *= 2;
		store_heal_publish(s, rc, dd_error_last());
		return rc;
	}
	s->db_failed = false;
	s->heal_backoff = STORE_HEAL_BACKOFF_MIN;
	s->heal_next = 0;
	store_heal_publish(s, 0, NULL);
	log_info("the index is writable again: writes resume");
	return 0;
}

/* A heal attempt from a path that may already hold ingest_lock (a
 * lookup): skipped when the lock is busy. */
static void store_heal_try(struct store *s)
{
	if (pthread_mutex_trylock(&s->ingest_lock) != 0)
		return;
	store_db_heal(s);
	pthread_mutex_unlock(&s->ingest_lock);
}

int store_index_health(struct store *s, char *why, size_t whysz)
{
	int rc = 0;

	/* Also the moment to notice a failure the collector recorded, and
	 * to try a reopen that is due. Never waits for an ingest. */
	if (pthread_mutex_trylock(&s->ingest_lock) == 0) {
		if (s->db_failed || !s->db)
			store_db_heal(s);
		pthread_mutex_lock(&s->heal_lock);
		s->idx_failed = s->db_failed;
		s->idx_closed = s->db == NULL;
		pthread_mutex_unlock(&s->heal_lock);
		pthread_mutex_unlock(&s->ingest_lock);
	}
	pthread_mutex_lock(&s->heal_lock);
	if (s->idx_closed)
		rc = -EAGAIN;
	else if (s->idx_failed)
		rc = s->idx_rc ? s->idx_rc : -EIO;
	if (why && whysz)
		snprintf(why, whysz, "%s", rc == 0 ? "" : s->idx_reason[0] ?
			 s->idx_reason : "a write to the index failed");
	pthread_mutex_unlock(&s->heal_lock);
	return rc;
}

/* ---- lookups ---- */

static int store_lookup_raw(struct store *s, const struct dd_id *id,
			    struct dd_chunk_loc *loc)
{
	uint8_t key[1 + DD_ID_LEN];
	char *err = NULL, *v;
	size_t vlen = 0;
	int rc;

	store_id_key(key, id);
	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		/* A reopen after a failed write failed too: try again when
		 * due, unless this thread is in the middle of a write. */
		pthread_rwlock_unlock(&s->db_lock);
		store_heal_try(s);
		pthread_rwlock_rdlock(&s->db_lock);
	}
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return store_closed_error(s);
	}
	v = leveldb_get(s->db, s->ropts, (const char *)key, sizeof(key),
			&vlen, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err)
		return store_db_error(err, "read the index");
	if (!v)
		return -ENOENT;
	rc = dd_chunk_loc_decode(loc, v, vlen);
	leveldb_free(v);
	if (rc < 0) {
		char hex[DD_ID_HEX_LEN + 1];

		dd_id_to_hex(hex, id);
		return dd_error_set(-EIO, "index entry of chunk %s is corrupt",
				    hex);
	}
	return 0;
}

/* Records that `id` was found present or stored (a collection keeps it
 * while its generation of the journal is kept). */
static void store_vouch(struct store *s, const struct dd_id *id)
{
	pthread_mutex_lock(&s->track_lock);
	vouch_add(s->vouched, id);
	pthread_mutex_unlock(&s->track_lock);
}

int store_lookup(struct store *s, const struct dd_id *id,
		 struct dd_chunk_loc *loc)
{
	int rc;

	pthread_rwlock_rdlock(&s->sweep_lock);
	rc = store_lookup_raw(s, id, loc);
	if (rc == 0)
		store_vouch(s, id);
	pthread_rwlock_unlock(&s->sweep_lock);
	return rc;
}

int store_key_exists(struct store *s, const void *key, size_t klen)
{
	char *err = NULL, *v;
	size_t vlen = 0;

	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return store_closed_error(s);
	}
	v = leveldb_get(s->db, s->ropts, key, klen, &vlen, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err)
		return store_db_error(err, "read the index");
	leveldb_free(v);
	return v != NULL;
}

int store_index_scan(struct store *s, const void *prefix, size_t plen,
		     store_entry_cb cb, void *payload)
{
	leveldb_iterator_t *it;
	const char *k, *v;
	size_t klen, vlen;
	char *err = NULL;
	int rc = 0;

	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return store_closed_error(s);
	}
	it = leveldb_create_iterator(s->db, s->ropts);
	for (leveldb_iter_seek(it, prefix, plen); leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		v = leveldb_iter_value(it, &vlen);
		rc = cb(payload, (const uint8_t *)k, klen,
			(const uint8_t *)v, vlen);
		if (rc)
			break;
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	pthread_rwlock_unlock(&s->db_lock);
	if (err && rc == 0)
		return store_db_error(err, "read the index");
	leveldb_free(err);
	return rc;
}

int store_index_apply(struct store *s, void *batch)
{
	char *err = NULL;
	int rc = 0;

	if (s->flags & STORE_OPEN_READONLY)
		return dd_error_set(-EROFS, "the store is open read-only");
	pthread_rwlock_rdlock(&s->db_lock);
	if (s->db)
		leveldb_write(s->db, s->wopts_sync, batch, &err);
	else
		rc = store_closed_error(s);
	pthread_rwlock_unlock(&s->db_lock);
	if (err) {
		rc = store_db_error(err, "write the index");
		store_db_write_failed(s, rc);
	}
	return rc;
}

int store_with_ingest_lock(struct store *s, int (*fn)(void *payload),
			   void *payload)
{
	int rc;

	pthread_mutex_lock(&s->ingest_lock);
	rc = fn(payload);
	pthread_mutex_unlock(&s->ingest_lock);
	return rc;
}

/* ---- reading packs ---- */

/* An fd for pack `seq`, cached; *slot is what store_fd_release needs. */
static int store_fd_acquire(struct store *s, uint64_t seq, int *slot)
{
	char path[4200];
	int i, fd, victim = -1;

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].fd >= 0 && s->fds[i].seq == seq &&
		    !s->fds[i].dead) {
			s->fds[i].refs++;
			s->fds[i].used = ++s->fd_clock;
			*slot = i;
			fd = s->fds[i].fd;
			pthread_mutex_unlock(&s->fd_lock);
			return fd;
		}
	}
	pthread_mutex_unlock(&s->fd_lock);

	dd_pack_path(path, sizeof(path), s->packs_dir, seq);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dd_error_set(-EIO, "cannot open pack '%s': %s", path,
				    strerror(errno));

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].fd >= 0 && s->fds[i].seq == seq &&
		    !s->fds[i].dead) {
			/* Another thread opened it meanwhile. */
			close(fd);
			s->fds[i].refs++;
			s->fds[i].used = ++s->fd_clock;
			*slot = i;
			fd = s->fds[i].fd;
			pthread_mutex_unlock(&s->fd_lock);
			return fd;
		}
		if (s->fds[i].refs == 0 &&
		    (victim < 0 || s->fds[i].fd < 0 ||
		     (s->fds[victim].fd >= 0 &&
		      s->fds[i].used < s->fds[victim].used)))
			victim = i;
	}
	if (victim < 0) {
		/* Every slot busy: use this fd once, uncached. */
		*slot = -1;
	} else {
		if (s->fds[victim].fd >= 0)
			close(s->fds[victim].fd);
		s->fds[victim].fd = fd;
		s->fds[victim].seq = seq;
		s->fds[victim].refs = 1;
		s->fds[victim].dead = false;
		s->fds[victim].used = ++s->fd_clock;
		*slot = victim;
	}
	pthread_mutex_unlock(&s->fd_lock);
	return fd;
}

static void store_fd_release(struct store *s, int fd, int slot)
{
	if (slot < 0) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&s->fd_lock);
	s->fds[slot].refs--;
	if (s->fds[slot].refs == 0 && s->fds[slot].dead) {
		close(s->fds[slot].fd);
		s->fds[slot].fd = -1;
		s->fds[slot].dead = false;
	}
	pthread_mutex_unlock(&s->fd_lock);
}

int store_read_stored(struct store *s, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	char hex[DD_ID_HEX_LEN + 1], path[4200];
	struct dd_chunk_loc moved;
	int fd, slot = -1, rc;

	fd = store_fd_acquire(s, loc->pack_seq, &slot);
	/* A collection may have moved the chunk to a new pack and deleted
	 * the old one since the caller looked it up: follow it once. */
	if (fd < 0 && store_lookup_raw(s, id, &moved) == 0 &&
	    (moved.pack_seq != loc->pack_seq || moved.offset != loc->offset) &&
	    moved.stored_len == loc->stored_len) {
		loc = &moved;
		dd_error_clear();
		fd = store_fd_acquire(s, loc->pack_seq, &slot);
	}
	if (fd < 0) {
		dd_id_to_hex(hex, id);
		return log_wrap(-EIO, "chunk %s", hex);
	}
	dd_error_clear();
	rc = dd_pack_read_record(fd, id, loc, out);
	store_fd_release(s, fd, slot);
	if (rc < 0 && rc != -ENOMEM) {
		/* The reason names the chunk; add the pack. */
		dd_pack_path(path, sizeof(path), s->packs_dir, loc->pack_seq);
		return log_wrap(rc == -EBADMSG ? rc : -EIO,
				"cannot read pack '%s'", path);
	}
	return rc;
}

int store_decode(struct dd_buf *plain, const struct dd_id *id,
		 uint32_t flags, uint32_t plain_len, const void *stored,
		 size_t stored_len, void *dctx)
{
	char hex[DD_ID_HEX_LEN + 1];
	int rc;

	dd_error_clear();
	rc = dd_decompress(plain, flags, stored, stored_len, plain_len, dctx);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		dd_id_to_hex(hex, id);
		return log_wrap(-EBADMSG, "chunk %s", hex);
	}
	/* Its message names the chunk and what its bytes hash to. */
	return dd_id_verify(id, plain->data, plain->len);
}

int store_read_plain(struct store *s, const struct dd_id *id,
		     struct dd_buf *plain, struct dd_buf *scratch, void *dctx)
{
	struct dd_chunk_loc loc;
	int rc;

	rc = store_lookup(s, id, &loc);
	if (rc < 0)
		return rc;
	rc = store_read_stored(s, id, &loc, scratch);
	if (rc == 0)
		rc = store_decode(plain, id, loc.flags, loc.plain_len,
				  scratch->data, scratch->len, dctx);
	if (rc == -EBADMSG)
		store_forget(s, id, &loc);
	return rc;
}

int store_forget(struct store *s, const struct dd_id *id,
		 const struct dd_chunk_loc *loc)
{
	char why[1024], hex[DD_ID_HEX_LEN + 1];
	uint8_t key[1 + DD_ID_LEN], meta[STORE_META_LEN];
	leveldb_writebatch_t *batch;
	struct dd_chunk_loc have;
	uint64_t chunks, bytes;
	char *err = NULL;
	int rc;

	if (s->flags & STORE_OPEN_READONLY)
		return 0;
	/* Keep the caller's reason for the damage. */
	snprintf(why, sizeof(why), "%s", dd_error_last());
	dd_id_to_hex(hex, id);
	pthread_mutex_lock(&s->ingest_lock);
	rc = store_lookup(s, id, &have);
	if (rc == -ENOENT || (rc == 0 &&
	    (have.pack_seq != loc->pack_seq || have.offset != loc->offset))) {
		rc = 0;
		goto cleanup;
	}
	if (rc < 0)
		goto cleanup;
	if (s->db_failed && (rc = store_db_heal(s)) < 0)
		goto cleanup;
	batch = leveldb_writebatch_create();
	store_id_key(key, id);
	leveldb_writebatch_delete(batch, (const char *)key, sizeof(key));
	store_counters(s, &chunks, &bytes);
	store_meta_encode(meta, chunks ? chunks - 1 : 0,
			  bytes >= have.plain_len ? bytes - have.plain_len : 0);
	leveldb_writebatch_put(batch, STORE_META_KEY, strlen(STORE_META_KEY),
			       (const char *)meta, sizeof(meta));
	pthread_rwlock_rdlock(&s->db_lock);
	leveldb_write(s->db, s->wopts_sync, batch, &err);
	pthread_rwlock_unlock(&s->db_lock);
	leveldb_writebatch_destroy(batch);
	if (err) {
		rc = store_db_error(err, "write the index");
		store_db_write_failed(s, rc);
		log_error("chunk %s is damaged but cannot be dropped from the "
			  "index: %s", hex, log_reason(rc));
		goto cleanup;
	}
	pthread_mutex_lock(&s->counters_lock);
	s->chunks = chunks ? chunks - 1 : 0;
	s->bytes_unique = bytes >= have.plain_len ? bytes - have.plain_len : 0;
	pthread_mutex_unlock(&s->counters_lock);
	log_warning("chunk %s is damaged in pack %016llx at offset %llu (%s): "
		    "dropped it from the index; the next backup that has its "
		    "bytes stores it again", hex,
		    (unsigned long long)loc->pack_seq,
		    (unsigned long long)loc->offset, why);
cleanup:
	pthread_mutex_unlock(&s->ingest_lock);
	dd_error_set(-EBADMSG, "%s", why);
	return rc;
}

void store_counters(struct store *s, uint64_t *chunks, uint64_t *bytes_unique)
{
	pthread_mutex_lock(&s->counters_lock);
	*chunks = s->chunks;
	*bytes_unique = s->bytes_unique;
	pthread_mutex_unlock(&s->counters_lock);
}

/* ---- ingest ---- */

/* A set of record indices keyed by id, to find repeats within a request. */
struct store_idset {
	uint32_t *slots;    /* index + 1; 0 = empty */
	size_t mask;
};

static int store_idset_init(struct store_idset *set, size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size <<= 1;
	set->slots = calloc(size, sizeof(*set->slots));
	set->mask = size - 1;
	return set->slots ? 0 : -ENOMEM;
}

/* Adds recs[i]; false if an equal id is already in the set. */
static bool store_idset_add(struct store_idset *set,
			    const struct dd_bundle_record *recs, uint32_t i)
{
	size_t h = (size_t)dd_le64(recs[i].id.b) & set->mask;

	while (set->slots[h]) {
		if (dd_id_eq(&recs[set->slots[h] - 1].id, &recs[i].id))
			return false;
		h = (h + 1) & set->mask;
	}
	set->slots[h] = i + 1;
	return true;
}

static bool store_is_enospc(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

/* With ingest_lock held: drop the pack being written after a failure; the
 * next ingest starts a new pack. What it holds stays readable (and is
 * garbage if it was never indexed). */
static void store_abandon_writer(struct store *s)
{
	if (s->writer) {
		dd_pack_writer_free(s->writer);
		s->writer = NULL;
	}
}

int store_ingest(struct store *s, const struct domains_tag *dom,
		 const struct dd_bundle_record *recs, size_t n,
		 uint32_t *stored, uint32_t *duplicates)
{
	struct store_idset set = { NULL, 0 };
	uint32_t *todo = NULL;
	size_t ntodo = 0, njoin = 0, i;
	leveldb_writebatch_t *batch = NULL;
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_LEN];
	uint8_t meta[STORE_META_LEN];
	uint64_t add_bytes = 0, incoming = 0, chunks, bytes;
	struct dd_chunk_loc loc;
	char *err = NULL;
	int rc;

	*stored = 0;
	*duplicates = 0;
	if (n == 0)
		return 0;
	if (store_idset_init(&set, n) < 0)
		return -ENOMEM;
	/* todo[0..ntodo) are new chunks; todo[n - njoin..n) chunks stored
	 * by another domain that `dom` joins. */
	todo = malloc(n * sizeof(*todo));
	if (!todo) {
		free(set.slots);
		return -ENOMEM;
	}

	pthread_mutex_lock(&s->ingest_lock);
	if (s->db_failed || !s->db) {
		/* Before any pack byte is written: nothing could be
		 * indexed. */
		rc = store_db_heal(s);
		if (rc < 0)
			goto cleanup;
	}

	/* Under the lock, so a chunk uploaded by two agents at once is
	 * written once. */
	for (i = 0; i < n; i++) {
		if (!store_idset_add(&set, recs, (uint32_t)i)) {
			(*duplicates)++;
			continue;
		}
		rc = store_lookup(s, &recs[i].id, &loc);
		if (rc == 0)
			rc = domains_is_member(s, dom, &recs[i].id);
		if (rc == 1) {
			(*duplicates)++;
			continue;
		}
		if (rc == 0) {
			todo[n - ++njoin] = (uint32_t)i;
			continue;
		}
		if (rc != -ENOENT)
			goto cleanup;
		todo[ntodo++] = (uint32_t)i;
	}
	rc = 0;
	if (ntodo == 0 && njoin == 0)
		goto cleanup;
	batch = leveldb_writebatch_create();
	for (i = n - njoin; i < n; i++)
		domains_batch_join(batch, dom, &recs[todo[i]].id);
	if (ntodo == 0)
		goto write_index;

	/* Keep packs near the target: if this request would push the open
	 * pack past it, seal that pack first (all of it is durable and
	 * indexed) and start a new one. */
	for (i = 0; i < ntodo; i++)
		incoming += DD_PACK_RECORD_HEADER_LEN + recs[todo[i]].stored_len;
	if (s->writer && dd_pack_writer_size(s->writer) > DD_PACK_HEADER_LEN &&
	    dd_pack_writer_size(s->writer) + incoming > STORE_PACK_TARGET)
		store_seal_writer(s);
	if (!s->writer) {
		uint64_t seq = s->next_seq++;

		dd_error_clear();
		rc = dd_pack_writer_new(&s->writer, s->packs_dir, seq);
		if (rc < 0) {
			/* The message names the pack already. */
			s->writer = NULL;
			if (store_is_enospc(rc))
				rc = -ENOSPC;
			else if (rc != -ENOMEM)
				rc = -EIO;
			goto cleanup;
		}
	}
	for (i = 0; i < ntodo; i++) {
		const struct dd_bundle_record *r = &recs[todo[i]];

		dd_error_clear();
		rc = dd_pack_writer_append(s->writer, &r->id, r->flags,
					   r->plain_len, r->data, r->stored_len,
					   &loc);
		if (rc < 0)
			goto write_failed;
		store_id_key(key, &r->id);
		dd_chunk_loc_encode(val, &loc);
		leveldb_writebatch_put(batch, (const char *)key, sizeof(key),
				       (const char *)val, sizeof(val));
		rc = domains_batch_new(s, batch, dom, &r->id);
		if (rc < 0)
			goto write_failed;
		add_bytes += r->plain_len;
	}
	dd_error_clear();
	rc = dd_pack_writer_sync(s->writer);
	if (rc < 0)
		goto write_failed;

	store_counters(s, &chunks, &bytes);
	store_meta_encode(meta, chunks + ntodo, bytes + add_bytes);
	leveldb_writebatch_put(batch, STORE_META_KEY, strlen(STORE_META_KEY),
			       (const char *)meta, sizeof(meta));
write_index:
	pthread_rwlock_rdlock(&s->db_lock);
	leveldb_write(s->db, s->wopts_sync, batch, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err) {
		rc = store_db_error(err, "write the index");
		store_db_write_failed(s, rc);
		store_abandon_writer(s);
		goto cleanup;
	}

	pthread_mutex_lock(&s->counters_lock);
	s->chunks += ntodo;
	s->bytes_unique += add_bytes;
	pthread_mutex_unlock(&s->counters_lock);
	*stored = (uint32_t)(ntodo + njoin);
	/* Still under ingest_lock, which a sweep also takes. */
	for (i = 0; i < ntodo; i++)
		store_vouch(s, &recs[todo[i]].id);

	if (s->writer && dd_pack_writer_size(s->writer) >= STORE_PACK_TARGET)
		store_seal_writer(s);
	rc = 0;
	goto cleanup;

write_failed:
	/* The message names the pack already. */
	if (store_is_enospc(rc))
		rc = -ENOSPC;
	else if (rc != -ENOMEM)
		rc = -EIO;
	store_abandon_writer(s);
cleanup:
	pthread_mutex_unlock(&s->ingest_lock);
	if (rc < 0) {
		*stored = 0;
		*duplicates = 0;
	}
	if (batch)
		leveldb_writebatch_destroy(batch);
	free(todo);
	free(set.slots);
	return rc;
}

/* ---- collection support ---- */

int store_gc_begin(struct store *s)
{
	if (s->flags & STORE_OPEN_READONLY)
		return dd_error_set(-EROFS, "the store is open read-only");
	if (pthread_mutex_trylock(&s->gc_lock) != 0)
		return dd_error_set(-EBUSY, "a garbage collection is already "
				    "running");
	return 0;
}

int store_gc_track(struct store *s, bool seal, store_since_cb since,
		   void *payload, uint64_t *first_new_seq)
{
	double keep_since;

	pthread_mutex_lock(&s->ingest_lock);
	pthread_mutex_lock(&s->track_lock);
	/* Asked under track_lock: a backup that opens after this vouches
	 * for nothing before the new generation starts. */
	keep_since = since ? since(payload) : 0;
	vouch_rotate(s->vouched, dd_monotonic(), keep_since);
	s->tracking = true;
	pthread_mutex_unlock(&s->track_lock);
	/* The open pack is sealed so that it can be collected too; new
	 * chunks go to packs numbered from here on, never collected by this
	 * run. */
	if (seal)
		store_seal_writer(s);
	*first_new_seq = s->writer ? dd_pack_writer_seq(s->writer) :
		s->next_seq;
	pthread_mutex_unlock(&s->ingest_lock);
	return 0;
}

void store_gc_end(struct store *s)
{
	pthread_mutex_lock(&s->track_lock);
	s->tracking = false;
	pthread_mutex_unlock(&s->track_lock);
	pthread_mutex_unlock(&s->gc_lock);
}

void store_gc_vouch_stats(struct store *s, struct vouch_stats *out)
{
	pthread_mutex_lock(&s->track_lock);
	vouch_get_stats(s->vouched, out);
	pthread_mutex_unlock(&s->track_lock);
}

bool store_gc_vouched(struct store *s, const struct dd_id *id)
{
	bool v;

	pthread_mutex_lock(&s->track_lock);
	v = vouch_has(s->vouched, id);
	pthread_mutex_unlock(&s->track_lock);
	return v;
}

int store_gc_sweep(struct store *s, const struct dd_id *ids, size_t n,
		   uint64_t *removed, uint64_t *bytes)
{
	leveldb_writebatch_t *batch;
	uint8_t key[1 + DD_ID_LEN], meta[STORE_META_LEN];
	struct dd_chunk_loc loc;
	uint64_t chunks, ubytes, cnt = 0, plain = 0;
	char *err = NULL;
	size_t i;
	int rc = 0;

	*removed = 0;
	*bytes = 0;
	if (n == 0)
		return 0;
	batch = leveldb_writebatch_create();
	pthread_mutex_lock(&s->ingest_lock);
	pthread_rwlock_wrlock(&s->sweep_lock);
	pthread_mutex_lock(&s->track_lock);
	if (!s->tracking)
		rc = dd_error_set(-EINVAL, "a sweep outside a collection");
	for (i = 0; rc == 0 && i < n; i++) {
		if (vouch_has(s->vouched, &ids[i]))
			continue;
		rc = store_lookup_raw(s, &ids[i], &loc);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		store_id_key(key, &ids[i]);
		leveldb_writebatch_delete(batch, (const char *)key,
					  sizeof(key));
		cnt++;
		plain += loc.plain_len;
	}
	pthread_mutex_unlock(&s->track_lock);
	if (rc == 0 && cnt) {
		store_counters(s, &chunks, &ubytes);
		chunks = chunks >= cnt ? chunks - cnt : 0;
		ubytes = ubytes >= plain ? ubytes - plain : 0;
		store_meta_encode(meta, chunks, ubytes);
		leveldb_writebatch_put(batch, STORE_META_KEY,
				       strlen(STORE_META_KEY),
				       (const char *)meta, sizeof(meta));
		pthread_rwlock_rdlock(&s->db_lock);
		leveldb_write(s->db, s->wopts_sync, batch, &err);
		pthread_rwlock_unlock(&s->db_lock);
		if (err) {
			rc = store_db_error(err, "write the index");
			s->db_failed = true;
		} else {
			pthread_mutex_lock(&s->counters_lock);
			s->chunks = chunks;
			s->bytes_unique = ubytes;
			pthread_mutex_unlock(&s->counters_lock);
			*removed = cnt;
			*bytes = plain;
		}
	}
	pthread_rwlock_unlock(&s->sweep_lock);
	pthread_mutex_unlock(&s->ingest_lock);
	leveldb_writebatch_destroy(batch);
	return rc;
}

int store_gc_new_pack(struct store *s, struct dd_pack_writer **out)
{
	uint64_t seq;
	int rc;

	pthread_mutex_lock(&s->ingest_lock);
	seq = s->next_seq++;
	pthread_mutex_unlock(&s->ingest_lock);
	dd_error_clear();
	rc = dd_pack_writer_new(out, s->packs_dir, seq);
	if (rc < 0)
		*out = NULL;
	return rc;
}

int store_gc_relocate(struct store *s, const struct store_move *m, size_t n,
		      uint64_t *moved)
{
	leveldb_writebatch_t *batch;
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_LEN];
	struct dd_chunk_loc have;
	char *err = NULL;
	size_t i;
	uint64_t cnt = 0;
	int rc = 0;

	*moved = 0;
	if (n == 0)
		return 0;
	batch = leveldb_writebatch_create();
	pthread_mutex_lock(&s->ingest_lock);
	for (i = 0; i < n; i++) {
		rc = store_lookup_raw(s, &m[i].id, &have);
		if (rc == -ENOENT) {
			rc = 0;
			continue;       /* dropped as damaged meanwhile */
		}
		if (rc < 0)
			break;
		if (have.pack_seq != m[i].from.pack_seq ||
		    have.offset != m[i].from.offset)
			continue;
		store_id_key(key, &m[i].id);
		dd_chunk_loc_encode(val, &m[i].to);
		leveldb_writebatch_put(batch, (const char *)key, sizeof(key),
				       (const char *)val, sizeof(val));
		cnt++;
	}
	if (rc == 0 && cnt) {
		pthread_rwlock_rdlock(&s->db_lock);
		leveldb_write(s->db, s->wopts_sync, batch, &err);
		pthread_rwlock_unlock(&s->db_lock);
		if (err) {
			rc = store_db_error(err, "write the index");
			s->db_failed = true;
		}
	}
	pthread_mutex_unlock(&s->ingest_lock);
	leveldb_writebatch_destroy(batch);
	if (rc == 0)
		*moved = cnt;
	return rc;
}

int store_gc_remove_pack(struct store *s, uint64_t seq)
{
	char path[4200];
	int i;

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].fd < 0 || s->fds[i].seq != seq)
			continue;
		if (s->fds[i].refs == 0) {
			close(s->fds[i].fd);
			s->fds[i].fd = -1;
		} else {
			s->fds[i].dead = true;
		}
	}
	pthread_mutex_unlock(&s->fd_lock);
	dd_pack_path(path, sizeof(path), s->packs_dir, seq);
	if (unlink(path) < 0 && errno != ENOENT)
		return dd_error_set(-errno, "cannot remove pack '%s': %s", path,
				    strerror(errno));
	return dd_fsync_dir(s->packs_dir);
}

int store_gc_lookup(struct store *s, const struct dd_id *id,
		    struct dd_chunk_loc *loc)
{
	return store_lookup_raw(s, id, loc);
}
