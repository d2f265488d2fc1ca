/*
 * store_packs.c - pack files on disk: listing them, and reading chunks
 * back through a small cache of open files.
 */
#include "store_impl.h"
#include "chunker.h"

/* ---- packs in the backend ---- */

int store_max_seq_cb(void *payload, uint64_t seq)
{
	uint64_t *max = payload;

	if (seq > *max)
		*max = seq;
	return 0;
}

struct store_usage {
	struct backend *be;
	uint64_t packs;
	uint64_t bytes;
};

static int store_usage_cb(void *payload, uint64_t seq)
{
	struct store_usage *u = payload;
	uint64_t size;

	if (packio_size(u->be, seq, &size) == 0) {
		u->packs++;
		u->bytes += size;
	}
	return 0;
}

int store_pack_usage(struct store *s, uint64_t *packs, uint64_t *bytes)
{
	struct store_usage u = { s->be, 0, 0 };
	int rc = packio_list(s->be, store_usage_cb, &u);

	*packs = u.packs;
	*bytes = u.bytes;
	if (rc == 0) {
		pthread_mutex_lock(&s->counters_lock);
		s->usage_at = dd_monotonic();
		s->usage_packs = u.packs;
		s->usage_bytes = u.bytes;
		pthread_mutex_unlock(&s->counters_lock);
	}
	return rc;
}

/* The last count, if it is recent: true with *packs and *bytes. */
static bool store_usage_cached(struct store *s, uint64_t *packs,
			       uint64_t *bytes)
{
	bool ok;

	pthread_mutex_lock(&s->counters_lock);
	ok = s->usage_at > 0 &&
	     dd_monotonic() - s->usage_at < STORE_USAGE_RECENT_SEC;
	*packs = s->usage_packs;
	*bytes = s->usage_bytes;
	pthread_mutex_unlock(&s->counters_lock);
	return ok;
}

int store_pack_usage_recent(struct store *s, uint64_t *packs,
			    uint64_t *bytes)
{
	double asked = dd_monotonic();
	int rc = 0;

	if (strcmp(backend_kind(s->be), "dir") == 0)
		return store_pack_usage(s, packs, bytes);
	if (store_usage_cached(s, packs, bytes))
		return 0;
	/* One count at a time: the requests that waited for it take its
	 * figures, or its error (storage that does not answer fails each
	 * waiter at once, not after a count of its own). */
	pthread_mutex_lock(&s->usage_lock);
	if (store_usage_cached(s, packs, bytes)) {
		rc = 0;
	} else if (s->usage_failed_at >= asked) {
		rc = dd_error_set(s->usage_failed_rc, "%s",
				  s->usage_failed_why);
	} else {
		rc = store_pack_usage(s, packs, bytes);
		if (rc < 0) {
			s->usage_failed_at = dd_monotonic();
			s->usage_failed_rc = rc;
			snprintf(s->usage_failed_why,
				 sizeof(s->usage_failed_why), "%s",
				 dd_error_last());
		}
	}
	pthread_mutex_unlock(&s->usage_lock);
	return rc;
}

/* With ingest_lock held, no commit running and no record waiting for one
 * (store_commit_drain, or a leader whose next group is empty), or at
 * close: seal the open pack. Everything in it is durable and indexed
 * already, so a failed seal loses nothing: the pack stays readable by
 * scanning. */
void store_seal_writer(struct store *s)
{
	char path[600];
	int rc;

	if (!s->writer)
		return;
	packio_display(path, sizeof(path), s->be,
		       dd_pack_writer_seq(s->writer));
	dd_error_clear();
	rc = dd_pack_writer_seal(s->writer);
	s->writer = NULL;
	if (rc < 0)
		log_error("cannot seal pack '%s': %s", path, log_reason(rc));
}

/* ---- reading packs ---- */

/* A reader for pack `seq`, cached; *slot is what store_reader_release
 * needs. */
static struct backend_reader *store_reader_find(struct store *s,
						uint64_t seq, int *slot)
{
	int i;

	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].rd && s->fds[i].seq == seq && !s->fds[i].dead) {
			s->fds[i].refs++;
			s->fds[i].used = ++s->fd_clock;
			*slot = i;
			return s->fds[i].rd;
		}
	}
	return NULL;
}

static int store_reader_acquire(struct store *s, uint64_t seq, int *slot,
				struct backend_reader **out)
{
	struct backend_reader *rd, *have;
	char name[PACKIO_NAME_MAX];
	int i, rc, victim = -1;

	pthread_mutex_lock(&s->fd_lock);
	have = store_reader_find(s, seq, slot);
	pthread_mutex_unlock(&s->fd_lock);
	if (have) {
		*out = have;
		return 0;
	}
	packio_name(name, seq);
	rc = backend_reader_open(s->be, name, &rd);
	if (rc < 0)
		return rc;

	pthread_mutex_lock(&s->fd_lock);
	have = store_reader_find(s, seq, slot);
	if (have) {
		/* Another thread opened it meanwhile. */
		pthread_mutex_unlock(&s->fd_lock);
		backend_reader_close(rd);
		*out = have;
		return 0;
	}
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].refs == 0 &&
		    (victim < 0 || !s->fds[i].rd ||
		     (s->fds[victim].rd &&
		      s->fds[i].used < s->fds[victim].used)))
			victim = i;
	}
	if (victim < 0) {
		/* Every slot busy: use this reader once, uncached. */
		*slot = -1;
	} else {
		backend_reader_close(s->fds[victim].rd);
		s->fds[victim].rd = rd;
		s->fds[victim].seq = seq;
		s->fds[victim].refs = 1;
		s->fds[victim].dead = false;
		s->fds[victim].used = ++s->fd_clock;
		*slot = victim;
	}
	pthread_mutex_unlock(&s->fd_lock);
	*out = rd;
	return 0;
}

static void store_reader_release(struct store *s, struct backend_reader *rd,
				 int slot)
{
	if (slot < 0) {
		backend_reader_close(rd);
		return;
	}
	pthread_mutex_lock(&s->fd_lock);
	s->fds[slot].refs--;
	if (s->fds[slot].refs == 0 && s->fds[slot].dead) {
		backend_reader_close(s->fds[slot].rd);
		s->fds[slot].rd = NULL;
		s->fds[slot].dead = false;
	}
	pthread_mutex_unlock(&s->fd_lock);
}

/* Pack `seq` was removed: its cached readers close (at their last
 * release if in use). */
void store_readers_drop(struct store *s, uint64_t seq)
{
	int i;

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (!s->fds[i].rd || s->fds[i].seq != seq)
			continue;
		if (s->fds[i].refs == 0) {
			backend_reader_close(s->fds[i].rd);
			s->fds[i].rd = NULL;
		} else {
			s->fds[i].dead = true;
		}
	}
	pthread_mutex_unlock(&s->fd_lock);
}

void store_readers_close(struct store *s)
{
	int i;

	for (i = 0; i < STORE_FD_SLOTS; i++) {
		backend_reader_close(s->fds[i].rd);
		s->fds[i].rd = NULL;
	}
}

/*
 * Reads the record of `id` at *loc into `out` (its stored bytes) or, with
 * out == NULL, into `buf` as it is in the pack (store_read_stored_to).
 * A collection may have moved the chunk to a new pack and deleted the old
 * one since the caller looked it up: the read follows it once; into
 * `buf`, sized from *loc, only to a record of the same length (-EAGAIN
 * otherwise).
 */
static int store_read_record(struct store *s, const struct dd_id *id,
			     const struct dd_chunk_loc *loc, struct dd_buf *out,
			     uint8_t *buf)
{
	char hex[DD_ID_HEX_LEN + 1], path[600];
	struct dd_chunk_loc moved;
	struct backend_reader *rd = NULL;
	int slot = -1, rc;

	rc = store_reader_acquire(s, loc->pack_seq, &slot, &rd);
	if (rc < 0 && s->shared && store_shared_get_fresh(s, id, &moved) == 0 &&
	    (moved.pack_seq != loc->pack_seq || moved.offset != loc->offset)) {
		if (!out && moved.stored_len != loc->stored_len)
			return -EAGAIN;
		loc = &moved;
		dd_error_clear();
		rc = store_reader_acquire(s, loc->pack_seq, &slot, &rd);
	} else if (rc < 0 && store_lookup_raw(s, id, &moved) == 0 &&
	    (moved.pack_seq != loc->pack_seq || moved.offset != loc->offset) &&
	    moved.stored_len == loc->stored_len) {
		loc = &moved;
		dd_error_clear();
		rc = store_reader_acquire(s, loc->pack_seq, &slot, &rd);
	}
	if (rc < 0) {
		dd_id_to_hex(hex, id);
		return log_wrap(backend_unavailable(rc) ? rc : -EIO,
				"chunk %s", hex);
	}
	dd_error_clear();
	rc = out ? packio_read_record(rd, id, loc, out) :
		packio_read_record_to(rd, id, loc, buf);
	store_reader_release(s, rd, slot);
	if (rc < 0 && rc != -ENOMEM) {
		/* The reason names the chunk; add the pack. */
		packio_display(path, sizeof(path), s->be, loc->pack_seq);
		return log_wrap(rc == -EBADMSG || backend_unavailable(rc) ?
				rc : -EIO, "cannot read pack '%s'", path);
	}
	return rc;
}

int store_read_stored(struct store *s, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	return store_read_record(s, id, loc, out, NULL);
}

int store_read_stored_to(struct store *s, const struct dd_id *id,
			 const struct dd_chunk_loc *loc, uint8_t *buf)
{
	return store_read_record(s, id, loc, NULL, buf);
}

/* Whether record i continues record i - 1 both in its pack and in the
 * caller's memory: then one read serves both. */
static bool store_record_follows(const struct dd_chunk_loc *locs,
				 uint8_t *const *dst, size_t i)
{
	const struct dd_chunk_loc *a = &locs[i - 1], *b = &locs[i];
	uint64_t step = DD_PACK_RECORD_HEADER_LEN + (uint64_t)a->stored_len;

	return a->pack_seq == b->pack_seq && b->offset == a->offset + step &&
	       dst[i] == dst[i - 1] + step;
}

/* The spans of store_read_records into *out (caller frees): ranges with
 * the pack names in `names` (one per span). */
static int store_plan_spans(const struct dd_id *ids,
			    const struct dd_chunk_loc *locs,
			    uint8_t *const *dst, size_t n,
			    struct backend_range **out,
			    char (**names)[PACKIO_NAME_MAX], size_t *nspans)
{
	struct backend_range *v = calloc(n ? n : 1, sizeof(*v));
	char (*nm)[PACKIO_NAME_MAX] = calloc(n ? n : 1, sizeof(*nm));
	size_t i, k = 0;
	int rc;

	if (!v || !nm) {
		free(v);
		free(nm);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		if ((rc = dd_pack_loc_check(&ids[i], &locs[i])) < 0) {
			free(v);
			free(nm);
			return rc;
		}
		if (i > 0 && store_record_follows(locs, dst, i)) {
			v[k - 1].len += DD_PACK_RECORD_HEADER_LEN +
					(size_t)locs[i].stored_len;
			continue;
		}
		packio_name(nm[k], locs[i].pack_seq);
		v[k].name = nm[k];
		v[k].off = locs[i].offset;
		v[k].buf = dst[i];
		v[k].len = DD_PACK_RECORD_HEADER_LEN + (size_t)locs[i].stored_len;
		k++;
	}
	*out = v;
	*names = nm;
	*nspans = k;
	return 0;
}

int store_read_records(struct store *s, const struct dd_id *ids,
		       const struct dd_chunk_loc *locs, uint8_t *const *dst,
		       size_t n)
{
	struct backend_range *v = NULL;
	char (*names)[PACKIO_NAME_MAX] = NULL;
	size_t nspans = 0, i;
	int rc;

	rc = store_plan_spans(ids, locs, dst, n, &v, &names, &nspans);
	if (rc < 0)
		return rc;
	rc = backend_read_multi(s->be, v, nspans);
	for (i = 0; i < n && rc == 0; i++)
		rc = dd_pack_record_check(dst[i], &ids[i], &locs[i]);
	free(v);
	free(names);
	return rc < 0 ? rc : (int)nspans;
}

int store_verify(const struct dd_id *id, uint32_t flags, uint32_t plain_len,
		 const void *stored, size_t stored_len, struct dd_buf *scratch,
		 void *dctx)
{
	/* A raw record is its plain bytes: hash them where they are. Any
	 * other case (and a raw one that is malformed, for its message)
	 * goes through store_decode. */
	if (flags == DD_COMP_NONE && stored_len == plain_len &&
	    plain_len <= DD_CHUNK_SIZE_LIMIT) {
		dd_error_clear();
		return dd_id_verify(id, stored, stored_len);
	}
	return store_decode(scratch, id, flags, plain_len, stored, stored_len,
			    dctx);
}

/* Records a group of store_verify_records hashes together, and the plain
 * bytes it decodes for them beyond its first record. */
#define STORE_VERIFY_GROUP 8
#define STORE_VERIFY_SCRATCH (4u * 1024 * 1024)

/* A raw record store_verify hashes where it lies. */
static bool store_verify_raw(const struct dd_bundle_record *r)
{
	return r->flags == DD_COMP_NONE && r->stored_len == r->plain_len &&
	       r->plain_len <= DD_CHUNK_SIZE_LIMIT;
}

/* The plain bytes a record takes in the group's scratch: those of a
 * compressed record of a sane size; a sealed one is not decoded, and
 * anything else is left to store_verify to word. */
static size_t store_verify_room(const struct dd_bundle_record *r)
{
	if (store_verify_raw(r) || (r->flags & DD_COMP_SEALED) ||
	    r->plain_len > DD_CHUNK_SIZE_LIMIT)
		return 0;
	return r->plain_len;
}

/* Decodes and hashes recs[0..n) as one batch: true when every one is
 * its id. False sends the group through store_verify one by one. */
static bool store_verify_group(const struct dd_bundle_record *recs, size_t n,
			       uint8_t *scratch, void *dctx)
{
	struct dd_sha256_job jobs[STORE_VERIFY_GROUP] = { { NULL, 0, NULL } };
	struct dd_id got[STORE_VERIFY_GROUP];
	size_t nj = 0, off = 0;

	for (size_t k = 0; k < n; k++) {
		const struct dd_bundle_record *r = &recs[k];
		size_t room = store_verify_room(r);

		if (store_verify_raw(r)) {
			jobs[nj] = (struct dd_sha256_job){ r->data,
							   r->stored_len,
							   &got[nj] };
			nj++;
		} else if (room > 0) {
			if (dd_decompress_to(scratch + off, r->flags, r->data,
					     r->stored_len, r->plain_len,
					     dctx) < 0)
				return false;
			jobs[nj] = (struct dd_sha256_job){ scratch + off, room,
							   &got[nj] };
			nj++;
			off += room;
		} else if (r->flags & DD_COMP_SEALED) {
			struct dd_buf none;     /* a sealed record: its layout */
			int rc;

			dd_buf_init(&none, 0);
			rc = store_verify(&r->id, r->flags, r->plain_len,
					  r->data, r->stored_len, &none, dctx);
			dd_buf_release(&none);
			if (rc < 0)
				return false;
		} else {
			return false;   /* malformed: store_verify words it */
		}
	}
	dd_sha256_batch(jobs, nj);
	for (size_t j = 0, k = 0; k < n; k++) {
		if (!store_verify_raw(&recs[k]) && !store_verify_room(&recs[k]))
			continue;
		if (!dd_id_eq(&got[j++], &recs[k].id))
			return false;
	}
	return true;
}

int store_verify_records(const struct dd_bundle_record *recs, size_t n,
			 struct dd_buf *scratch, void *dctx)
{
	size_t i = 0;
	int rc;

	while (i < n) {
		size_t end = i + 1, first = store_verify_room(&recs[i]);
		size_t need = first;

		/* up to STORE_VERIFY_SCRATCH decoded bytes beyond the first
		 * record's; records that need none always fit */
		while (end < n && end - i < STORE_VERIFY_GROUP) {
			size_t room = store_verify_room(&recs[end]);

			if (room > 0 &&
			    need - first + room > STORE_VERIFY_SCRATCH)
				break;
			need += room;
			end++;
		}
		dd_buf_reset(scratch);
		if (dd_buf_reserve(scratch, need ? need : 1) < 0)
			return dd_error_set(-ENOMEM, "out of memory");
		if (!store_verify_group(recs + i, end - i, scratch->data,
					dctx)) {
			/* the first failure, worded as store_verify words it */
			for (; i < end; i++) {
				const struct dd_bundle_record *r = &recs[i];

				rc = store_verify(&r->id, r->flags,
						  r->plain_len, r->data,
						  r->stored_len, scratch,
						  dctx);
				if (rc < 0)
					return rc;
			}
		}
		i = end;
	}
	dd_error_clear();
	return 0;
}

int store_decode(struct dd_buf *plain, const struct dd_id *id,
		 uint32_t flags, uint32_t plain_len, const void *stored,
		 size_t stored_len, void *dctx)
{
	char hex[DD_ID_HEX_LEN + 1];
	int rc;

	dd_error_clear();
	if (flags & DD_COMP_SEALED) {
		/* Sealed by a client: nothing to decode or re-hash here; the
		 * layout is all the server can check (docs/ENCRYPTION.md). */
		dd_buf_reset(plain);
		if (stored_len > UINT32_MAX ||
		    dd_stored_len_check(flags, plain_len,
					(uint32_t)stored_len) < 0) {
			dd_id_to_hex(hex, id);
			return dd_error_set(-EBADMSG, "sealed chunk %s %s", hex,
					    dd_error_last());
		}
		return 0;
	}
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
	if (loc.flags & DD_COMP_SEALED) {
		char hex[DD_ID_HEX_LEN + 1];

		dd_id_to_hex(hex, id);
		return dd_error_set(-ENOTSUP, "chunk %s is sealed (client-side "
				    "encrypted): the server cannot read it", hex);
	}
	rc = store_read_stored(s, id, &loc, scratch);
	if (rc == 0)
		rc = store_decode(plain, id, loc.flags, loc.plain_len,
				  scratch->data, scratch->len, dctx);
	if (rc == -EBADMSG)
		store_forget(s, id, &loc);
	return rc;
}

/* The pool's shared index (several front-ends) drops the damaged record
 * too when it names that record, or the next backup would be told the
 * chunk is present (on RADOS every lookup that misses the local cache
 * asks the shard). An entry naming another record (a copy stored through
 * another front-end) is left: that copy may be whole. Before the local
 * entry goes, since the fresh lookup caches what it finds. */
static int store_forget_shared(struct store *s, const struct dd_id *id,
			       const struct dd_chunk_loc *loc)
{
	struct dd_chunk_loc sh;
	int rc;

	if (!store_shared_on(s))
		return 0;
	rc = store_shared_get_fresh(s, id, &sh);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (sh.pack_seq != loc->pack_seq || sh.offset != loc->offset)
		return 0;
	return store_shared_rm(s, id, 1);
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
	store_ingest_lock(s);
	rc = store_lookup(s, id, &have);
	if (rc == -ENOENT || (rc == 0 &&
	    (have.pack_seq != loc->pack_seq || have.offset != loc->offset))) {
		rc = 0;
		goto cleanup;
	}
	if (rc < 0)
		goto cleanup;
	if ((rc = store_forget_shared(s, id, loc)) < 0) {
		log_error("chunk %s is damaged but cannot be dropped from the "
			  "pool's index: %s", hex, log_reason(rc));
		goto cleanup;
	}
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
	__atomic_store_n(&s->chunks, chunks ? chunks - 1 : 0,
			 __ATOMIC_RELAXED);
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
