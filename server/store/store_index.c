/*
 * store_index.c - the LevelDB index: options, lookups, raw access for
 * the dedup domains, and healing the index after a failed write.
 */
#include "store_impl.h"

/* ---- LevelDB helpers ---- */

/* Turns a LevelDB error string into an errno code and a message, and frees
 * it. LevelDB reports only text, so a full disk is recognised by the
 * strerror() text its Posix env embeds. */
int store_db_error(char *err, const char *what)
{
	int rc = -EIO;

	if (err && (strstr(err, strerror(ENOSPC)) ||
		    strstr(err, strerror(EDQUOT))))
		rc = -ENOSPC;
	dd_error_set(rc, "cannot %s: %s", what, err ? err : "unknown error");
	leveldb_free(err);
	return rc;
}

void store_meta_encode(uint8_t out[STORE_META_LEN], uint64_t chunks,
		       uint64_t bytes)
{
	out[0] = 1;
	dd_put_le64(out + 1, chunks);
	dd_put_le64(out + 9, bytes);
}

void store_id_key(uint8_t key[1 + DD_ID_LEN], const struct dd_id *id)
{
	key[0] = 'c';
	memcpy(key + 1, id->b, DD_ID_LEN);
}

void store_db_release(struct store *s)
{
	if (s->db)
		leveldb_close(s->db);
	s->db = NULL;
}

int store_db_open(struct store *s)
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

int store_options_init(struct store *s)
{
	s->opts = leveldb_options_create();
	s->bloom = leveldb_filterpolicy_create_bloom(STORE_BLOOM_BITS);
	s->cache = leveldb_cache_create_lru(STORE_CACHE_BYTES);
	s->ropts = leveldb_readoptions_create();
	s->ropts_nofill = leveldb_readoptions_create();
	s->wopts_sync = leveldb_writeoptions_create();
	s->wopts_nosync = leveldb_writeoptions_create();
	if (!s->opts || !s->bloom || !s->cache || !s->ropts ||
	    !s->ropts_nofill || !s->wopts_sync || !s->wopts_nosync)
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
		leveldb_readoptions_set_verify_checksums(s->ropts_nofill, 1);
	}
	leveldb_readoptions_set_fill_cache(s->ropts_nofill, 0);
	leveldb_options_set_filter_policy(s->opts, s->bloom);
	leveldb_options_set_cache(s->opts, s->cache);
	/* Keys are hashes and values mostly incompressible. */
	leveldb_options_set_compression(s->opts, leveldb_no_compression);
	leveldb_options_set_max_open_files(s->opts, STORE_OPEN_TABLES);
	leveldb_options_set_max_file_size(s->opts, STORE_TABLE_BYTES);
	leveldb_options_set_write_buffer_size(s->opts, 8u * 1024 * 1024);
	leveldb_writeoptions_set_sync(s->wopts_sync, 1);
	leveldb_writeoptions_set_sync(s->wopts_nosync, 0);
	return 0;
}

void store_options_release(struct store *s)
{
	if (s->opts)
		leveldb_options_destroy(s->opts);
	if (s->bloom)
		leveldb_filterpolicy_destroy(s->bloom);
	if (s->cache)
		leveldb_cache_destroy(s->cache);
	if (s->ropts)
		leveldb_readoptions_destroy(s->ropts);
	if (s->ropts_nofill)
		leveldb_readoptions_destroy(s->ropts_nofill);
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
void store_db_write_failed(struct store *s, int rc)
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
int store_db_heal(struct store *s)
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

/* Ends a pass of `it` begun under db_lock (read): the iterator's own
 * error, if any and rc is 0, is the result. */
static int store_iter_end(struct store *s, leveldb_iterator_t *it, int rc)
{
	char *err = NULL;

	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	pthread_rwlock_unlock(&s->db_lock);
	if (err && rc == 0)
		return store_db_error(err, "read the index");
	leveldb_free(err);
	return rc;
}

/* The read options of a lookup: filling the block cache while the whole
 * index fits in it (STORE_CACHE_CHUNKS), not past that (ropts_nofill).
 * Reads the chunk count unlocked (its writers store it atomically): a
 * lookup that races a commit may choose by the count before it. */
leveldb_readoptions_t *store_ropts_lookup(struct store *s)
{
	return __atomic_load_n(&s->chunks, __ATOMIC_RELAXED) <=
	       STORE_CACHE_CHUNKS ? s->ropts : s->ropts_nofill;
}

/* The index entry of chunk id could not be decoded. */
static int store_entry_corrupt(const struct dd_id *id)
{
	char hex[DD_ID_HEX_LEN + 1];

	dd_id_to_hex(hex, id);
	return dd_error_set(-EIO, "index entry of chunk %s is corrupt", hex);
}

int store_lookup_raw(struct store *s, const struct dd_id *id,
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
	v = leveldb_get(s->db, store_ropts_lookup(s), (const char *)key,
			sizeof(key), &vlen, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err)
		return store_db_error(err, "read the index");
	if (!v)
		return -ENOENT;
	rc = dd_chunk_loc_decode(loc, v, vlen);
	leveldb_free(v);
	return rc < 0 ? store_entry_corrupt(id) : 0;
}

/* Records that `id` was found present or stored (a collection keeps it
 * while its generation of the journal is kept). */
void store_vouch(struct store *s, const struct dd_id *id)
{
	pthread_mutex_lock(&s->track_lock);
	vouch_add(s->vouched, id);
	pthread_mutex_unlock(&s->track_lock);
}

int store_lookup_cached(struct store *s, const struct dd_id *id,
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

int store_lookup(struct store *s, const struct dd_id *id,
		 struct dd_chunk_loc *loc)
{
	int rc;

	pthread_rwlock_rdlock(&s->sweep_lock);
	rc = store_lookup_raw(s, id, loc);
	if (rc == -ENOENT && s->shared)
		rc = store_shared_get(s, id, loc);
	if (rc == 0)
		store_vouch(s, id);
	pthread_rwlock_unlock(&s->sweep_lock);
	return rc;
}

/* ---- many lookups in one pass ---- */

/* An id of store_lookup_many's in key order: its first 8 bytes read
 * big-endian (compared as one number), the whole id for ties. */
struct store_key_order {
	uint64_t hi;
	const struct dd_id *id;
	size_t at;
};

static uint64_t store_key_hi(const struct dd_id *id)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v = v << 8 | id->b[i];
	return v;
}

static int store_key_order_cmp(const void *a, const void *b)
{
	const struct store_key_order *x = a, *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return memcmp(x->id->b, y->id->b, DD_ID_LEN);
}

/* The entries between two successive ids of a lookup, on average, below
 * which it steps to the next entry rather than seeking: a step costs
 * about a tenth of a seek (both on the merged view of every table). */
#define STORE_MANY_STEP_GAP 4u

/* Sorts v into key order: a radix sort on hi (eight passes of a byte,
 * stable), then each run of equal hi, which only chosen ids make long,
 * by qsort. -ENOMEM, or 0. */
static int store_key_sort(struct store_key_order *v, size_t n)
{
	struct store_key_order *tmp = malloc(n * sizeof(*tmp)), *a = v, *b;
	size_t i, j, count[257];

	if (!tmp)
		return -ENOMEM;
	b = tmp;
	for (unsigned shift = 0; shift < 64; shift += 8) {
		struct store_key_order *t;

		memset(count, 0, sizeof(count));
		for (i = 0; i < n; i++)
			count[((a[i].hi >> shift) & 255) + 1]++;
		for (i = 1; i < 257; i++)
			count[i] += count[i - 1];
		for (i = 0; i < n; i++)
			b[count[(a[i].hi >> shift) & 255]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	free(tmp);       /* an even number of passes: the result is in v */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && v[j].hi == v[i].hi; j++)
			;
		if (j - i > 1)
			qsort(v + i, j - i, sizeof(*v), store_key_order_cmp);
	}
	return 0;
}

/* Bytewise order, LevelDB's: a key of 1 + DD_ID_LEN bytes against k. */
static int store_key_cmp(const char *k, size_t klen, const uint8_t *key)
{
	size_t m = klen < 1 + DD_ID_LEN ? klen : 1 + DD_ID_LEN;
	int c = memcmp(k, key, m);

	if (c)
		return c;
	return klen < 1 + DD_ID_LEN ? -1 : klen > 1 + DD_ID_LEN;
}

/* Positions `it` on the first entry at or after key, stepping forward
 * when allowed and near, seeking otherwise. The key sequence only grows,
 * so an entry already at or past the key is where a seek would land. */
static void store_many_seek(leveldb_iterator_t *it, const uint8_t *key,
			    bool step)
{
	unsigned n = 0;
	const char *k;
	size_t klen;

	while (leveldb_iter_valid(it)) {
		k = leveldb_iter_key(it, &klen);
		if (store_key_cmp(k, klen, key) >= 0)
			return;
		if (!step || ++n > STORE_MANY_STEP_GAP)
			break;
		leveldb_iter_next(it);
	}
	leveldb_iter_seek(it, (const char *)key, 1 + DD_ID_LEN);
}

/* The local half of store_lookup_many: one iterator, the ids in key
 * order. -EAGAIN when the index is closed (the caller then goes id by
 * id, through the reopen store_lookup_raw tries). */
static int store_lookup_many_local(struct store *s,
				   const struct store_key_order *ord, size_t n,
				   struct dd_chunk_loc *locs, int *rcs)
{
	uint8_t key[1 + DD_ID_LEN];
	leveldb_iterator_t *it;
	uint64_t chunks, bytes;
	const char *k, *v;
	size_t klen, vlen, i;
	bool step;
	int rc = 0;

	store_counters(s, &chunks, &bytes);
	step = chunks <= (uint64_t)n * STORE_MANY_STEP_GAP;
	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return -EAGAIN;
	}
	it = leveldb_create_iterator(s->db, store_ropts_lookup(s));
	leveldb_iter_seek(it, "c", 1);
	for (i = 0; i < n && rc == 0; i++) {
		size_t at = ord[i].at;

		store_id_key(key, ord[i].id);
		store_many_seek(it, key, step);
		rcs[at] = -ENOENT;
		if (!leveldb_iter_valid(it))
			continue;
		k = leveldb_iter_key(it, &klen);
		if (klen != sizeof(key) || memcmp(k, key, sizeof(key)) != 0)
			continue;
		v = leveldb_iter_value(it, &vlen);
		rcs[at] = dd_chunk_loc_decode(&locs[at], v, vlen);
		if (rcs[at] < 0)
			rc = store_entry_corrupt(ord[i].id);
	}
	return store_iter_end(s, it, rc);
}

/* The local pass's misses on a shared pool: asked of the pool's index in
 * one batch (store_prefetch: a read a shard, what it finds cached here),
 * then each one found as store_lookup would (vouched). Not under the
 * local pass's lock hold: a collection's sweep waits for neither. */
static int store_lookup_many_shared(struct store *s, const struct dd_id *ids,
				    size_t n, struct dd_chunk_loc *locs,
				    int *rcs)
{
	struct dd_id *miss = NULL;
	size_t *at = NULL, nmiss = 0, i, k;
	uint8_t *absent = NULL;
	int rc = 0;

	for (i = 0; i < n; i++)
		nmiss += rcs[i] == -ENOENT;
	if (!nmiss)
		return 0;
	miss = malloc(nmiss * sizeof(*miss));
	at = malloc(nmiss * sizeof(*at));
	absent = calloc((nmiss + 7) / 8, 1);
	if (!miss || !at || !absent) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0, k = 0; i < n; i++) {
		if (rcs[i] != -ENOENT)
			continue;
		miss[k] = ids[i];
		at[k++] = i;
	}
	rc = store_prefetch(s, miss, nmiss, absent);
	for (k = 0; rc == 0 && k < nmiss; k++) {
		if (absent[k / 8] & (1u << (k % 8)))
			continue;           /* in neither index: -ENOENT */
		i = at[k];
		rcs[i] = store_lookup(s, &ids[i], &locs[i]);
		if (rcs[i] < 0 && rcs[i] != -ENOENT)
			rc = rcs[i];
	}
out:
	free(miss);
	free(at);
	free(absent);
	return rc;
}

int store_lookup_many(struct store *s, const struct dd_id *ids, size_t n,
		      struct dd_chunk_loc *locs, int *rcs)
{
	struct store_key_order *ord;
	bool closed;
	size_t i;
	int rc;

	if (!n)
		return 0;
	ord = malloc(n * sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ord[i].hi = store_key_hi(&ids[i]);
		ord[i].id = &ids[i];
		ord[i].at = i;
	}
	if (store_key_sort(ord, n) < 0) {
		free(ord);
		return -ENOMEM;
	}
	pthread_rwlock_rdlock(&s->sweep_lock);
	rc = store_lookup_many_local(s, ord, n, locs, rcs);
	if (rc == 0) {
		pthread_mutex_lock(&s->track_lock);
		for (i = 0; i < n; i++)
			if (rcs[i] == 0)
				vouch_add(s->vouched, &ids[i]);
		pthread_mutex_unlock(&s->track_lock);
	}
	pthread_rwlock_unlock(&s->sweep_lock);
	free(ord);
	/* An index closed after a failed write: id by id, as store_lookup
	 * (which tries the reopen). */
	closed = rc == -EAGAIN;
	if (closed)
		rc = 0;
	for (i = 0; rc == 0 && closed && i < n; i++) {
		rcs[i] = store_lookup(s, &ids[i], &locs[i]);
		if (rcs[i] < 0 && rcs[i] != -ENOENT)
			rc = rcs[i];
	}
	if (rc == 0 && !closed && s->shared)
		rc = store_lookup_many_shared(s, ids, n, locs, rcs);
	return rc;
}

int store_key_exists(struct store *s, const void *key, size_t klen)
{
	return store_key_matches(s, key, klen, NULL, 0);
}

int store_key_matches(struct store *s, const void *key, size_t klen,
		      const void *val, size_t vlen)
{
	char *err = NULL, *v;
	size_t have = 0;
	int rc;

	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return store_closed_error(s);
	}
	v = leveldb_get(s->db, store_ropts_lookup(s), key, klen, &have,
			&err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err)
		return store_db_error(err, "read the index");
	rc = v && (!val || (have == vlen && memcmp(v, val, vlen) == 0));
	leveldb_free(v);
	return rc;
}

int store_index_scan(struct store *s, const void *prefix, size_t plen,
		     store_entry_cb cb, void *payload)
{
	leveldb_iterator_t *it;
	const char *k, *v;
	size_t klen, vlen;
	int rc = 0;

	pthread_rwlock_rdlock(&s->db_lock);
	if (!s->db) {
		pthread_rwlock_unlock(&s->db_lock);
		return store_closed_error(s);
	}
	/* A one-byte prefix is a whole kind of entry: a scan of the index,
	 * which would only churn the block cache. */
	it = leveldb_create_iterator(s->db, plen <= 1 ? s->ropts_nofill :
							s->ropts);
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
	return store_iter_end(s, it, rc);
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

	store_ingest_lock(s);
	rc = fn(payload);
	pthread_mutex_unlock(&s->ingest_lock);
	return rc;
}

/* ---- the local index as a cache of the shared one ---- */

/* Entries a drop deletes a batch: its memory stays bounded (some 80
 * bytes an entry) whatever the cache holds. DEDUP_TEST_DROP_BATCH sets
 * another, for tests. */
#define STORE_DROP_BATCH 100000u

struct store_drop {
	struct store *s;
	leveldb_writebatch_t *batch;
	uint64_t n;
	size_t inbatch, max;
	char *err;              /* a failed write of a full batch */
};

static int store_drop_cb(void *payload, const uint8_t *key, size_t klen,
			 const uint8_t *val, size_t vlen)
{
	struct store_drop *d = payload;
	struct dd_id id;

	if (klen != 1 + DD_ID_LEN)
		return 0;
	leveldb_writebatch_delete(d->batch, (const char *)key, klen);
	/* so that its memberships stand if it comes back unmoved */
	memcpy(id.b, key + 1, DD_ID_LEN);
	domains_cache_keep(d->s, d->batch, &id, val, vlen);
	d->n++;
	if (++d->inbatch < d->max)
		return 0;
	/* db_lock is held (read) by the scan: s->db stays open. Unsynced:
	 * the last batch, which records the epoch, is synced, and a crash
	 * before it leaves the old epoch, so the next start drops again. */
	leveldb_write(d->s->db, d->s->wopts_nosync, d->batch, &d->err);
	if (d->err)
		return -EIO;
	leveldb_writebatch_clear(d->batch);
	d->inbatch = 0;
	return 0;
}

static size_t store_drop_batch(void)
{
	const char *v = getenv(STORE_TEST_DROP_BATCH);
	uint64_t n;

	if (!v || dd_parse_u64(v, &n) < 0 || n == 0 || n > STORE_DROP_BATCH)
		return STORE_DROP_BATCH;
	return (size_t)n;
}

/* Drops every chunk entry of the local index, in batches of
 * STORE_DROP_BATCH, and records gc epoch `epoch` in the last, synced.
 * The caller holds gc_lock (so no collection of this store works from
 * the index meanwhile) and cache_lock; a failure part of the way leaves
 * fewer entries cached (each a lookup of the shared index again) and the
 * old epoch, so the drop is made again. */
int store_cache_drop_to(struct store *s, uint64_t epoch, uint64_t *dropped)
{
	struct store_drop d = { s, NULL, 0, 0, store_drop_batch(), NULL };
	uint8_t val[8];
	int rc;

	*dropped = 0;
	d.batch = leveldb_writebatch_create();
	if (!d.batch)
		return -ENOMEM;
	dd_put_le64(val, epoch);
	store_ingest_lock(s);
	pthread_rwlock_wrlock(&s->sweep_lock);
	rc = store_index_scan(s, "c", 1, store_drop_cb, &d);
	if (d.err) {
		rc = store_db_error(d.err, "write the index");
		store_db_write_failed(s, rc);
	}
	leveldb_writebatch_put(d.batch, STORE_CACHE_EPOCH_KEY,
			       strlen(STORE_CACHE_EPOCH_KEY),
			       (const char *)val, sizeof(val));
	if (rc == 0)
		rc = store_index_apply(s, d.batch);
	pthread_rwlock_unlock(&s->sweep_lock);
	pthread_mutex_unlock(&s->ingest_lock);
	leveldb_writebatch_destroy(d.batch);
	if (rc == 0) {
		s->cache_epoch = epoch;
		s->cache_epoch_known = true;
		*dropped = d.n;
	}
	return rc;
}
