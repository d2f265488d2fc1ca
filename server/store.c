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
#include <unistd.h>

#include <leveldb/c.h>
#include <zstd.h>

#include "compress.h"
#include "log.h"
#include "repo.h"
#include "store.h"

#define STORE_CACHE_BYTES (64u * 1024 * 1024)
#define STORE_FD_SLOTS 64
#define STORE_META_KEY "mstats"
#define STORE_META_LEN 17u

struct store_fd {
	uint64_t seq;
	int fd;            /* -1: free slot */
	unsigned refs;
	uint64_t used;     /* for least-recently-used eviction */
};

struct store {
	char packs_dir[4096];
	char index_dir[4096];

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

	/* Ingest state, under ingest_lock. */
	pthread_mutex_t ingest_lock;
	struct dd_pack_writer *writer;
	uint64_t next_seq;
	bool db_failed;

	/* Counters, under counters_lock (read by /stats while ingesting). */
	pthread_mutex_t counters_lock;
	uint64_t chunks;
	uint64_t bytes_unique;

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
	leveldb_options_set_create_if_missing(s->opts, 1);
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
	uint64_t added, bad;
	int err;
};

static int store_rebuild_record(void *payload, const struct dd_id *id,
				const struct dd_chunk_loc *loc,
				const uint8_t *stored)
{
	struct store_rebuild *r = payload;
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_LEN];
	struct dd_chunk_loc have;
	char *err = NULL;
	int rc;

	if (store_lookup(r->s, id, &have) == 0)
		return 0;          /* a copy in an earlier pack wins */
	rc = store_decode(&r->plain, id, loc->flags, loc->plain_len, stored,
			  loc->stored_len, r->dctx);
	if (rc < 0) {
		r->bad++;
		return 0;
	}
	store_id_key(key, id);
	dd_chunk_loc_encode(val, loc);
	leveldb_put(r->s->db, r->s->wopts_nosync, (const char *)key,
		    sizeof(key), (const char *)val, sizeof(val), &err);
	if (err) {
		r->err = store_db_error(err, "write the index");
		return 1;
	}
	r->added++;
	return 0;
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
		dd_pack_path(path, sizeof(path), s->packs_dir, seqs.v[i]);
		dd_error_clear();
		rc = dd_pack_scan(path, store_rebuild_record, &r, &sealed);
		if (r.err) {
			rc = r.err;
			break;
		}
		if (rc < 0)
			log_warning("pack '%s': %s (indexed what could be read)",
				    path, log_reason(rc));
		rc = 0;
	}
	if (r.bad)
		log_warning("%llu corrupt record(s) were left out of the index",
			    (unsigned long long)r.bad);
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
		log_warning("index counters are invalid: recounting");
		leveldb_free(v);
	}
	rc = store_count_entries(s, &s->chunks, &s->bytes_unique);
	if (rc == 0 && s->chunks == 0) {
		rc = store_rebuild(s);
		if (rc == 0)
			rc = store_count_entries(s, &s->chunks,
						 &s->bytes_unique);
	}
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

int store_open(struct store **out, const char *repo)
{
	struct store *s;
	uint64_t max = 0;
	int rc, i;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_rwlock_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->ingest_lock, NULL);
	pthread_mutex_init(&s->counters_lock, NULL);
	pthread_mutex_init(&s->fd_lock, NULL);
	for (i = 0; i < STORE_FD_SLOTS; i++)
		s->fds[i].fd = -1;

	rc = repo_path(s->packs_dir, sizeof(s->packs_dir), repo, REPO_PACKS);
	if (rc == 0)
		rc = repo_path(s->index_dir, sizeof(s->index_dir), repo,
			       REPO_INDEX);
	if (rc < 0)
		goto fail;
	rc = store_options_init(s);
	if (rc < 0)
		goto fail;
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
	free(s);
}

/* ---- lookups ---- */

int store_lookup(struct store *s, const struct dd_id *id,
		 struct dd_chunk_loc *loc)
{
	uint8_t key[1 + DD_ID_LEN];
	char *err = NULL, *v;
	size_t vlen = 0;
	int rc;

	store_id_key(key, id);
	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return dd_error_set(-EIO, "the index is not open");
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

/* ---- reading packs ---- */

/* An fd for pack `seq`, cached; *slot is what store_fd_release needs. */
static int store_fd_acquire(struct store *s, uint64_t seq, int *slot)
{
	char path[4200];
	int i, fd, victim = -1;

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].fd >= 0 && s->fds[i].seq == seq) {
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
		if (s->fds[i].fd >= 0 && s->fds[i].seq == seq) {
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
	pthread_mutex_unlock(&s->fd_lock);
}

int store_read_stored(struct store *s, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	char hex[DD_ID_HEX_LEN + 1], path[4200];
	int fd, slot = -1, rc;

	fd = store_fd_acquire(s, loc->pack_seq, &slot);
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
	if (rc < 0)
		return rc;
	return store_decode(plain, id, loc.flags, loc.plain_len,
			    scratch->data, scratch->len, dctx);
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

/* With ingest_lock held: reopen the index after a failed write (LevelDB
 * keeps some write errors sticky until it is reopened). */
static int store_db_reopen(struct store *s)
{
	int rc;

	pthread_rwlock_wrlock(&s->db_lock);
	store_db_release(s);
	rc = store_db_open(s);
	pthread_rwlock_unlock(&s->db_lock);
	if (rc == 0)
		s->db_failed = false;
	return rc;
}

int store_ingest(struct store *s, const struct dd_bundle_record *recs,
		 size_t n, uint32_t *stored, uint32_t *duplicates)
{
	struct store_idset set = { NULL, 0 };
	uint32_t *todo = NULL;
	size_t ntodo = 0, i;
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
	todo = malloc(n * sizeof(*todo));
	if (!todo) {
		free(set.slots);
		return -ENOMEM;
	}

	pthread_mutex_lock(&s->ingest_lock);
	if (s->db_failed) {
		rc = store_db_reopen(s);
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
		if (rc == 0) {
			(*duplicates)++;
			continue;
		}
		if (rc != -ENOENT)
			goto cleanup;
		todo[ntodo++] = (uint32_t)i;
	}
	rc = 0;
	if (ntodo == 0)
		goto cleanup;

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
	batch = leveldb_writebatch_create();
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
	pthread_rwlock_rdlock(&s->db_lock);
	leveldb_write(s->db, s->wopts_sync, batch, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err) {
		rc = store_db_error(err, "write the index");
		s->db_failed = true;
		store_abandon_writer(s);
		goto cleanup;
	}

	pthread_mutex_lock(&s->counters_lock);
	s->chunks += ntodo;
	s->bytes_unique += add_bytes;
	pthread_mutex_unlock(&s->counters_lock);
	*stored = (uint32_t)ntodo;

	if (dd_pack_writer_size(s->writer) >= STORE_PACK_TARGET)
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
