/*
 * store_shared.c - the chunk index shared by every front-end of a pool
 * (docs/STORAGE.md, "Several front-ends on one pool"): which chunks exist
 * and where, in STORE_SHARDS objects "index/XX" (XX: the id's first byte
 * in hex) whose omap maps the id's 64 hex digits to its encoded location
 * (dd_chunk_loc_encode, the LevelDB value). The local LevelDB index is
 * this front-end's cache of it; dedup-domain memberships are not shared,
 * and an entry cached from here is held by no domain until its clients
 * upload it through this front-end (domains_cache_learn).
 */
#include "store_impl.h"

#define SHARD_FMT "index/%02x"
#define SHARD_NAME_MAX 16
/* Marks a pool whose shared index holds every chunk of the local index
 * of the front-end that wrote it (a repository made before the shared
 * index is published once, by its first front-end to start). */
#define SHARED_SEEDED "index/seeded"

static void shard_name(char out[SHARD_NAME_MAX], unsigned shard)
{
	snprintf(out, SHARD_NAME_MAX, SHARD_FMT, shard & 0xffu);
}

static char shard_names_v[STORE_SHARDS][SHARD_NAME_MAX];

static void shard_names_init(void)
{
	unsigned i;

	for (i = 0; i < STORE_SHARDS; i++)
		shard_name(shard_names_v[i], i);
}

bool store_shared_on(const struct store *s)
{
	return s->shared;
}

/* ---- writing ---- */

struct shared_item {
	struct dd_id id;
	uint8_t val[DD_CHUNK_LOC_MAX];
	size_t vlen;
	char key[DD_ID_HEX_LEN + 1];
};

static int shared_item_cmp(const void *a, const void *b)
{
	const struct shared_item *x = a, *y = b;

	return memcmp(x->id.b, y->id.b, DD_ID_LEN);
}

/* Names of the shards, for the batches of store_shared_put. */
static const char *shard_names(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, shard_names_init);
	return &shard_names_v[0][0];
}

int store_shared_put(struct store *s, const struct dd_id *ids,
		     const struct dd_chunk_loc *locs, size_t n)
{
	struct backend_omap_batch *bv = NULL;
	struct backend_kv *kv = NULL;
	struct shared_item *it;
	size_t i, start, nb = 0;
	int rc = 0;

	if (!s->shared || n == 0)
		return 0;
	it = malloc(n * sizeof(*it));
	kv = malloc(n * sizeof(*kv));
	bv = malloc(n * sizeof(*bv));
	if (!it || !kv || !bv) {
		free(it);
		free(kv);
		free(bv);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		it[i].id = ids[i];
		it[i].vlen = dd_chunk_loc_encode(it[i].val, &locs[i]);
		dd_id_to_hex(it[i].key, &ids[i]);
	}
	qsort(it, n, sizeof(*it), shared_item_cmp);
	for (i = 0; i < n; i++) {
		kv[i].key = it[i].key;
		kv[i].val = it[i].val;
		kv[i].vlen = it[i].vlen;
	}
	/* one batch per shard (at most BACKEND_KV_BATCH pairs each), all
	 * sent at once: one round trip for the ingest batch */
	for (start = 0, i = 1; i <= n; i++) {
		if (i == n || it[i].id.b[0] != it[start].id.b[0] ||
		    i - start == BACKEND_KV_BATCH) {
			bv[nb].name = shard_names() +
				(size_t)it[start].id.b[0] * SHARD_NAME_MAX;
			bv[nb].kv = kv + start;
			bv[nb].n = i - start;
			nb++;
			start = i;
		}
	}
	rc = backend_omap_set_multi(s->be, bv, nb);
	free(it);
	free(kv);
	free(bv);
	return rc;
}

int store_shared_rm(struct store *s, const struct dd_id *ids, size_t n)
{
	char (*keys)[DD_ID_HEX_LEN + 1];
	const char *kp[256];
	char name[SHARD_NAME_MAX];
	struct dd_id *sorted;
	size_t i, start, k;
	int rc = 0;

	if (!s->shared || n == 0)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	keys = malloc(n * sizeof(*keys));
	if (!sorted || !keys) {
		free(sorted);
		free(keys);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	memcpy(sorted, ids, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), shared_item_cmp);
	for (i = 0; i < n; i++)
		dd_id_to_hex(keys[i], &sorted[i]);
	for (start = 0; start < n && rc == 0; start = i) {
		shard_name(name, sorted[start].b[0]);
		for (i = start, k = 0; i < n && k < 256 &&
		     sorted[i].b[0] == sorted[start].b[0]; i++)
			kp[k++] = keys[i];
		rc = backend_omap_rm(s->be, name, kp, k);
		if (rc == -ENOENT) {
			dd_error_clear();
			rc = 0;
		}
	}
	free(sorted);
	free(keys);
	return rc;
}

/* ---- reading ---- */

struct shared_fill {
	struct store *s;
	leveldb_writebatch_t *batch;
	const struct dd_id *ids;
	const size_t *idx;       /* ids of this shard, by key */
	size_t n;
	uint8_t *absent;         /* bit i cleared when ids[i] is found */
	size_t found;
	struct dd_chunk_loc last; /* the last location found */
};

static int shared_fill_cb(const char *key, const void *val, size_t vlen,
			  void *payload)
{
	struct shared_fill *f = payload;
	uint8_t k[1 + DD_ID_LEN];
	struct dd_chunk_loc loc;
	struct dd_id id;
	size_t i;
	int rc;

	if (dd_hex_decode(id.b, DD_ID_LEN, key, strlen(key)) < 0 ||
	    dd_chunk_loc_decode(&loc, val, vlen) < 0)
		return 0;  /* check reports it */
	/* held by no domain here unless this front-end had it there */
	rc = domains_cache_learn(f->s, f->batch, &id, val, vlen);
	if (rc < 0)
		return rc;
	for (i = 0; i < f->n; i++) {
		if (!dd_id_eq(&f->ids[f->idx[i]], &id))
			continue;
		f->absent[f->idx[i] / 8] &= (uint8_t)~(1u << (f->idx[i] % 8));
		break;
	}
	store_id_key(k, &id);
	leveldb_writebatch_put(f->batch, (const char *)k, sizeof(k), val,
			       vlen);
	f->last = loc;
	f->found++;
	return 0;
}

/* Writes the batch of cache fills, unsynced (the shared index is the
 * durable copy). */
static void shared_cache_write(struct store *s, leveldb_writebatch_t *b)
{
	char *err = NULL;

	if (s->flags & STORE_OPEN_READONLY)
		return;
	pthread_rwlock_rdlock(&s->db_lock);
	if (s->db)
		leveldb_write(s->db, s->wopts_nosync, b, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err) {
		log_warning("cannot cache shared index entries: %s", err);
		leveldb_free(err);
	}
}

/* Looks up ids[idx[0..n)] (one shard) in the shared index. */
static int shared_get_shard(struct store *s, const struct dd_id *ids,
			    const size_t *idx, size_t n, uint8_t *absent,
			    leveldb_writebatch_t *batch,
			    struct dd_chunk_loc *last)
{
	struct shared_fill f = { s, batch, ids, idx, n, absent, 0, { 0 } };
	char (*keys)[DD_ID_HEX_LEN + 1] = malloc(n * sizeof(*keys));
	const char **kp = malloc(n * sizeof(*kp));
	char name[SHARD_NAME_MAX];
	size_t i;
	int rc;

	if (!keys || !kp) {
		free(keys);
		free(kp);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		dd_id_to_hex(keys[i], &ids[idx[i]]);
		kp[i] = keys[i];
	}
	shard_name(name, ids[idx[0]].b[0]);
	rc = backend_omap_get(s->be, name, kp, n, shared_fill_cb, &f);
	free(keys);
	free(kp);
	if (last)
		*last = f.last;
	return rc;
}

/* Orders idx[0..n) by the shard of ids[idx[i]] (a counting sort). */
static int shared_by_shard(const struct dd_id *ids, size_t *idx, size_t n)
{
	size_t count[STORE_SHARDS + 1] = { 0 }, i;
	size_t *out = malloc(n * sizeof(*out));

	if (!out)
		return dd_error_set(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		count[ids[idx[i]].b[0] + 1]++;
	for (i = 1; i <= STORE_SHARDS; i++)
		count[i] += count[i - 1];
	for (i = 0; i < n; i++)
		out[count[ids[idx[i]].b[0]]++] = idx[i];
	memcpy(idx, out, n * sizeof(*idx));
	free(out);
	return 0;
}

/* The ids in the shared index, by shard; with use_local, those the
 * local index holds are taken as present without asking the pool. */
static int shared_lookup_batch(struct store *s, const struct dd_id *ids,
			       size_t n, uint8_t *absent, bool use_local)
{
	leveldb_writebatch_t *batch = NULL;
	struct dd_chunk_loc loc;
	size_t *idx, nmiss = 0, i, start;
	int rc = 0;

	memset(absent, 0, (n + 7) / 8);
	if (!s->shared || n == 0)
		return 0;
	idx = malloc(n * sizeof(*idx));
	if (!idx)
		return dd_error_set(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		rc = use_local ? store_lookup_raw(s, &ids[i], &loc) : -ENOENT;
		if (rc == -ENOENT) {
			idx[nmiss++] = i;
			absent[i / 8] |= (uint8_t)(1u << (i % 8));
			rc = 0;
		} else if (rc < 0) {
			goto cleanup;
		}
	}
	if (nmiss == 0)
		goto cleanup;
	rc = shared_by_shard(ids, idx, nmiss);
	if (rc < 0)
		goto cleanup;
	batch = leveldb_writebatch_create();
	for (start = 0, i = 1; i <= nmiss && rc == 0; i++) {
		if (i == nmiss || ids[idx[i]].b[0] != ids[idx[start]].b[0]) {
			size_t k, m = i - start;

			for (k = 0; k < m && rc == 0; k += BACKEND_KV_BATCH)
				rc = shared_get_shard(s, ids, idx + start + k,
					m - k < BACKEND_KV_BATCH ? m - k :
					BACKEND_KV_BATCH, absent, batch, NULL);
			start = i;
		}
	}
	if (rc == 0)
		shared_cache_write(s, batch);
cleanup:
	if (batch)
		leveldb_writebatch_destroy(batch);
	free(idx);
	return rc;
}

int store_prefetch(struct store *s, const struct dd_id *ids, size_t n,
		   uint8_t *absent)
{
	return shared_lookup_batch(s, ids, n, absent, true);
}

int store_shared_get(struct store *s, const struct dd_id *id,
		     struct dd_chunk_loc *loc)
{
	uint8_t absent = 0;
	int rc;

	if (!s->shared)
		return -ENOENT;
	rc = store_prefetch(s, id, 1, &absent);
	if (rc < 0)
		return rc;
	if (absent)
		return -ENOENT;
	return store_lookup_raw(s, id, loc);
}

int store_shared_get_fresh(struct store *s, const struct dd_id *id,
			   struct dd_chunk_loc *loc)
{
	leveldb_writebatch_t *batch;
	uint8_t absent = 1;
	size_t idx = 0;
	int rc;

	if (!s->shared)
		return -ENOENT;
	batch = leveldb_writebatch_create();
	rc = shared_get_shard(s, id, &idx, 1, &absent, batch, loc);
	if (rc == 0 && !absent)
		shared_cache_write(s, batch);
	leveldb_writebatch_destroy(batch);
	if (rc < 0)
		return rc;
	return absent ? -ENOENT : 0;
}

/* ---- the whole index ---- */

struct shared_pull {
	struct store *s;
	leveldb_writebatch_t *batch;
	size_t inbatch;
	uint64_t n;
};

static int shared_pull_cb(const char *key, const void *val, size_t vlen,
			  void *payload)
{
	struct shared_pull *p = payload;
	uint8_t k[1 + DD_ID_LEN];
	struct dd_chunk_loc loc;
	struct dd_id id;
	int rc;

	if (dd_hex_decode(id.b, DD_ID_LEN, key, strlen(key)) < 0 ||
	    dd_chunk_loc_decode(&loc, val, vlen) < 0)
		return 0;
	rc = domains_cache_learn(p->s, p->batch, &id, val, vlen);
	if (rc < 0)
		return rc;
	store_id_key(k, &id);
	leveldb_writebatch_put(p->batch, (const char *)k, sizeof(k), val,
			       vlen);
	p->n++;
	if (++p->inbatch >= 10000) {
		shared_cache_write(p->s, p->batch);
		leveldb_writebatch_clear(p->batch);
		p->inbatch = 0;
	}
	return 0;
}

int store_shared_pull(struct store *s, uint64_t *entries)
{
	struct shared_pull p = { s, NULL, 0, 0 };
	char name[SHARD_NAME_MAX];
	unsigned shard;
	int rc = 0;

	*entries = 0;
	if (!s->shared)
		return 0;
	p.batch = leveldb_writebatch_create();
	for (shard = 0; shard < STORE_SHARDS && rc == 0; shard++) {
		shard_name(name, shard);
		rc = backend_omap_list(s->be, name, shared_pull_cb, &p);
	}
	if (rc == 0)
		shared_cache_write(s, p.batch);
	leveldb_writebatch_destroy(p.batch);
	*entries = p.n;
	if (rc == 0 && !(s->flags & STORE_OPEN_READONLY))
		rc = store_recount(s);
	return rc;
}

struct shared_count {
	uint64_t chunks, bytes;
};

static int shared_count_cb(const char *key, const void *val, size_t vlen,
			   void *payload)
{
	struct shared_count *c = payload;
	struct dd_chunk_loc loc;

	if (strlen(key) != DD_ID_HEX_LEN ||
	    dd_chunk_loc_decode(&loc, val, vlen) < 0)
		return 0;
	c->chunks++;
	c->bytes += loc.plain_len;
	return 0;
}

int store_shared_count(struct store *s, uint64_t *chunks,
		       uint64_t *bytes_unique)
{
	struct shared_count c = { 0, 0 };
	char name[SHARD_NAME_MAX];
	unsigned shard;
	int rc = 0;

	*chunks = 0;
	*bytes_unique = 0;
	if (!s->shared)
		return 0;
	for (shard = 0; shard < STORE_SHARDS && rc == 0; shard++) {
		shard_name(name, shard);
		rc = backend_omap_list(s->be, name, shared_count_cb, &c);
		if (rc == -ENOENT) {  /* a shard nothing was put in yet */
			dd_error_clear();
			rc = 0;
		}
	}
	if (rc == 0) {
		*chunks = c.chunks;
		*bytes_unique = c.bytes;
	}
	return rc;
}

struct shared_seed {
	struct store *s;
	struct dd_id ids[1024];
	struct dd_chunk_loc locs[1024];
	size_t n;
	uint64_t total;
};

static int shared_seed_cb(void *payload, const uint8_t *key, size_t klen,
			  const uint8_t *val, size_t vlen)
{
	struct shared_seed *sd = payload;
	int rc = 0;

	if (klen != 1 + DD_ID_LEN || key[0] != 'c' ||
	    dd_chunk_loc_decode(&sd->locs[sd->n], val, vlen) < 0)
		return 0;
	memcpy(sd->ids[sd->n].b, key + 1, DD_ID_LEN);
	sd->total++;
	if (++sd->n == 1024) {
		rc = store_shared_put(sd->s, sd->ids, sd->locs, sd->n);
		sd->n = 0;
	}
	return rc;
}

int store_shared_seed(struct store *s)
{
	struct shared_seed *sd;
	uint64_t size;
	int rc;

	if (!s->shared || (s->flags & STORE_OPEN_READONLY))
		return 0;
	rc = backend_stat(s->be, SHARED_SEEDED, &size);
	if (rc != -ENOENT)
		return rc;
	dd_error_clear();
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return dd_error_set(-ENOMEM, "out of memory");
	sd->s = s;
	rc = store_index_scan(s, "c", 1, shared_seed_cb, sd);
	if (rc == 0)
		rc = store_shared_put(s, sd->ids, sd->locs, sd->n);
	if (rc == 0) {
		rc = backend_put(s->be, SHARED_SEEDED, "1\n", 2);
		if (rc == -EEXIST) {
			dd_error_clear();
			rc = 0;
		}
	}
	if (rc == 0 && sd->total)
		log_info("published %llu chunk(s) of the local index to the "
			 "shared index", (unsigned long long)sd->total);
	free(sd);
	return rc;
}

/* ---- the cache and the gc epoch ---- */

int store_cache_epoch_load(struct store *s)
{
	char *err = NULL, *v;
	size_t vlen = 0;

	s->cache_epoch_known = false;
	s->cache_epoch = 0;
	if (!s->shared)
		return 0;
	pthread_rwlock_rdlock(&s->db_lock);
	v = s->db ? leveldb_get(s->db, s->ropts, STORE_CACHE_EPOCH_KEY,
				strlen(STORE_CACHE_EPOCH_KEY), &vlen, &err)
		  : NULL;
	pthread_rwlock_unlock(&s->db_lock);
	if (err)
		return store_db_error(err, "read the index");
	if (v && vlen == 8) {
		s->cache_epoch = dd_le64((const uint8_t *)v);
		s->cache_epoch_known = true;
	}
	leveldb_free(v);
	return 0;
}

/* cache_lock held: whether the cache may hold entries that a collection
 * of another front-end removed by epoch n (bumped last by `by`). */
static bool cache_stale_for(const struct store *s, uint64_t n, uint32_t by)
{
	if (!s->cache_epoch_known)
		return n > 0;
	if (n <= s->cache_epoch)
		return false;
	return !(n == s->cache_epoch + 1 && by == s->fe);
}

/* cache_lock held: records epoch n without dropping anything (unsynced:
 * a record lost in a crash only makes the next start drop the cache). */
static void cache_epoch_record(struct store *s, uint64_t n)
{
	leveldb_writebatch_t *b;
	uint8_t val[8];

	if (s->cache_epoch_known && s->cache_epoch == n)
		return;
	s->cache_epoch = n;
	s->cache_epoch_known = true;
	if (s->flags & STORE_OPEN_READONLY)
		return;
	b = leveldb_writebatch_create();
	if (!b)
		return;
	dd_put_le64(val, n);
	leveldb_writebatch_put(b, STORE_CACHE_EPOCH_KEY,
			       strlen(STORE_CACHE_EPOCH_KEY),
			       (const char *)val, sizeof(val));
	shared_cache_write(s, b);
	leveldb_writebatch_destroy(b);
}

bool store_cache_reflects(struct store *s, uint64_t n, uint32_t by)
{
	bool ok;

	if (!s->shared)
		return true;
	pthread_mutex_lock(&s->cache_lock);
	ok = !cache_stale_for(s, n, by);
	pthread_mutex_unlock(&s->cache_lock);
	return ok;
}

/* cache_lock held, and gc_lock (the caller's or this store's collection
 * in its first step): brings the cache up to epoch n. */
static int cache_bring_up(struct store *s, uint64_t n, uint32_t by,
			  uint64_t *dropped)
{
	int rc;

	if (!cache_stale_for(s, n, by)) {
		cache_epoch_record(s, n);
		return 0;
	}
	if (s->flags & STORE_OPEN_READONLY)
		return dd_error_set(-EROFS, "the local index is a stale cache "
				    "of the shared one and is open read-only");
	rc = store_cache_drop_to(s, n, dropped);
	if (rc == 0)
		log_info("a collection ran on another front-end: dropped "
			 "%llu cached index entries (gc epoch %llu)",
			 (unsigned long long)*dropped, (unsigned long long)n);
	return rc;
}

/* One attempt: 1 when this store's collection holds gc_lock and the
 * cache is still stale (nothing done). */
static int cache_observe_once(struct store *s, uint64_t n, uint32_t by,
			      uint64_t *dropped)
{
	int rc = 0;

	pthread_mutex_lock(&s->cache_lock);
	if (!cache_stale_for(s, n, by)) {
		cache_epoch_record(s, n);
	} else if (pthread_mutex_trylock(&s->gc_lock) != 0) {
		rc = 1;
	} else {
		rc = cache_bring_up(s, n, by, dropped);
		pthread_mutex_unlock(&s->gc_lock);
	}
	pthread_mutex_unlock(&s->cache_lock);
	return rc;
}

int store_cache_observe(struct store *s, uint64_t n, uint32_t by,
			double wait_sec, uint64_t *dropped)
{
	double until = dd_monotonic() + wait_sec;
	uint64_t none;
	int rc;

	if (!dropped)
		dropped = &none;
	*dropped = 0;
	if (!s->shared)
		return 0;
	/* never drop under this store's collection: it works from the
	 * local index, and would take what it no longer sees for dead; it
	 * brings the cache up itself before it reads it */
	while ((rc = cache_observe_once(s, n, by, dropped)) == 1 &&
	       dd_monotonic() < until)
		usleep(50 * 1000);
	if (rc == 1)
		return dd_error_set(-EBUSY, "the local index cache is stale "
				    "(a collection ran on another front-end) "
				    "and this front-end's own collection holds "
				    "it: try again in a moment");
	return rc;
}

int store_gc_cache_refresh(struct store *s, uint64_t n, uint32_t by,
			   uint64_t *dropped)
{
	int rc;

	*dropped = 0;
	if (!s->shared)
		return 0;
	pthread_mutex_lock(&s->cache_lock);
	rc = cache_bring_up(s, n, by, dropped);
	pthread_mutex_unlock(&s->cache_lock);
	return rc;
}

int store_shared_verify(struct store *s, const struct dd_id *ids, size_t n,
			uint8_t *absent)
{
	return shared_lookup_batch(s, ids, n, absent, false);
}
