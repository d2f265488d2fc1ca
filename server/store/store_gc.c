/*
 * store_gc.c - what garbage collection needs from the store: the vouch
 * journal, sweeping entries, relocating chunks into new packs.
 */
#include "store_impl.h"

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

	store_ingest_lock(s);
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
	struct dd_id *gone;
	char *err = NULL;
	size_t i;
	int rc = 0;

	*removed = 0;
	*bytes = 0;
	if (n == 0)
		return 0;
	gone = malloc(n * sizeof(*gone));
	if (!gone)
		return -ENOMEM;
	batch = leveldb_writebatch_create();
	store_ingest_lock(s);
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
		gone[cnt] = ids[i];
		cnt++;
		plain += loc.plain_len;
	}
	pthread_mutex_unlock(&s->track_lock);
	/* The shared index first: a crash between leaves local entries
	 * the next collection sweeps again. */
	if (rc == 0 && cnt)
		rc = store_shared_rm(s, gone, cnt);
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
			__atomic_store_n(&s->chunks, chunks, __ATOMIC_RELAXED);
			s->bytes_unique = ubytes;
			pthread_mutex_unlock(&s->counters_lock);
			*removed = cnt;
			*bytes = plain;
		}
	}
	pthread_rwlock_unlock(&s->sweep_lock);
	pthread_mutex_unlock(&s->ingest_lock);
	leveldb_writebatch_destroy(batch);
	free(gone);
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
	rc = packio_writer_new(s->be, seq, out);
	if (rc < 0)
		*out = NULL;
	return rc;
}

/* On a shared pool with domains in use: the memberships this front-end
 * holds of the n chunks that move from from[] to to[], published with
 * their new entries so that the other front-ends still grant them
 * (store_shared_grant; a membership names the location it was made
 * for). The default domain's is not published for a chunk that was in
 * another front-end's pack: an index an earlier version filled may hold
 * such entries without their "r" key (domains.h, domains_cache_audit).
 * Memberships not published are lost to the other front-ends (their
 * domains upload the chunk once more there). */
static int store_gc_members(struct store *s, const struct dd_id *ids,
			    const struct dd_chunk_loc *from,
			    const struct dd_chunk_loc *to, size_t n,
			    struct store_member **out, size_t *nout)
{
	struct domains_tag *tags;
	struct store_member *mv = NULL, *g;
	size_t i, j, k, nm = 0, cap = 0;
	bool theirs;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (!s->shared || !(store_flags(s) & STORE_DOMAINS_USED))
		return 0;
	tags = malloc(STORE_POOL_TAGS * sizeof(*tags));
	if (!tags)
		return -ENOMEM;
	for (i = 0; i < n && rc == 0; i++) {
		rc = domains_members_of(s, &ids[i], tags, STORE_POOL_TAGS, &k);
		if (rc < 0 || k == 0)
			continue;
		if (nm + k > cap) {
			cap = cap ? cap * 2 : 1024;
			if (cap < nm + k)
				cap = nm + k;
			g = realloc(mv, cap * sizeof(*mv));
			if (!g) {
				rc = -ENOMEM;
				break;
			}
			mv = g;
		}
		theirs = store_seq_frontend(from[i].pack_seq) != s->fe;
		for (j = 0; j < k; j++) {
			if (theirs && domains_is_default(&tags[j]))
				continue;
			mv[nm].id = ids[i];
			mv[nm].loc = to[i];
			mv[nm++].tag = tags[j];
		}
	}
	free(tags);
	if (rc < 0) {
		free(mv);
		return rc;
	}
	*out = mv;
	*nout = nm;
	return 0;
}

int store_gc_relocate(struct store *s, const struct store_move *m, size_t n,
		      uint64_t *moved)
{
	leveldb_writebatch_t *batch;
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_MAX];
	size_t vlen;
	struct dd_chunk_loc have;
	char *err = NULL;
	size_t i;
	uint64_t cnt = 0;
	struct dd_id *ids;
	struct dd_chunk_loc *to, *from;
	struct store_member *mv = NULL;
	size_t nm = 0;
	int rc = 0;

	*moved = 0;
	if (n == 0)
		return 0;
	ids = malloc(n * sizeof(*ids));
	to = malloc(n * sizeof(*to));
	from = malloc(n * sizeof(*from));
	if (!ids || !to || !from) {
		free(ids);
		free(to);
		free(from);
		return -ENOMEM;
	}
	batch = leveldb_writebatch_create();
	store_ingest_lock(s);
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
		vlen = dd_chunk_loc_encode(val, &m[i].to);
		leveldb_writebatch_put(batch, (const char *)key, sizeof(key),
				       (const char *)val, vlen);
		ids[cnt] = m[i].id;
		to[cnt] = m[i].to;
		from[cnt] = m[i].from;
		cnt++;
	}
	if (rc == 0 && cnt)
		rc = store_gc_members(s, ids, from, to, cnt, &mv, &nm);
	if (rc == 0 && cnt)
		rc = store_shared_put(s, ids, to, cnt, mv, nm);
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
	free(ids);
	free(to);
	free(from);
	free(mv);
	if (rc == 0)
		*moved = cnt;
	return rc;
}

int store_gc_remove_pack(struct store *s, uint64_t seq)
{
	int rc;

	store_readers_drop(s, seq);
	rc = packio_remove(s->be, seq);
	return rc == -ENOENT ? 0 : rc;
}

int store_gc_lookup(struct store *s, const struct dd_id *id,
		    struct dd_chunk_loc *loc)
{
	return store_lookup_raw(s, id, loc);
}
