/*
 * store_ingest.c - storing verified chunks: pack bytes synced, then
 * entries, memberships and counters in one synced batch.
 */
#include "store_impl.h"

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

/* A verified plain record takes the id of a sealed one: the server could
 * not check the sealed bytes, and an honest sealed chunk's id is keyed
 * (docs/ENCRYPTION.md), so it equals a plain chunk's SHA-256 only if
 * someone forged it. A sealed record never takes a plain chunk's id. */
static bool store_plain_replaces(const struct dd_chunk_loc *have,
				 const struct dd_bundle_record *r)
{
	return (have->flags & DD_COMP_SEALED) && !(r->flags & DD_COMP_SEALED);
}

/* On a shared pool: room for the new entries to publish. The shared
 * index is not asked again here: the missing-query that preceded the
 * upload did (store_prefetch), and a chunk another front-end stored in
 * between is only stored twice (both copies whole; gc reclaims the one
 * the shared index does not name). */
static int store_ingest_alloc(struct store *s, size_t n, struct dd_id **ids,
			      struct dd_chunk_loc **locs)
{
	*ids = NULL;
	*locs = NULL;
	if (!store_shared_on(s))
		return 0;
	*ids = malloc(n * sizeof(**ids));
	*locs = malloc(n * sizeof(**locs));
	if (!*ids || !*locs)
		return -ENOMEM;
	return 0;
}

int store_ingest(struct store *s, const struct domains_tag *dom,
		 const struct dd_bundle_record *recs, size_t n,
		 uint32_t *stored, uint32_t *duplicates)
{
	struct store_idset set = { NULL, 0 };
	uint32_t *todo = NULL;
	size_t ntodo = 0, njoin = 0, i;
	leveldb_writebatch_t *batch = NULL;
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_MAX];
	size_t vlen;
	uint8_t meta[STORE_META_LEN];
	uint64_t add_bytes = 0, incoming = 0, chunks, bytes;
	uint64_t nreplaced = 0, replaced_bytes = 0;
	struct dd_chunk_loc loc, *locs = NULL;
	struct dd_id *ids = NULL;
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
	rc = store_ingest_alloc(s, n, &ids, &locs);
	if (rc < 0) {
		free(ids);
		free(locs);
		free(todo);
		free(set.slots);
		return rc;
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
		/* the local index only (see store_ingest_alloc) */
		rc = store_lookup_cached(s, &recs[i].id, &loc);
		if (rc == 0 && store_plain_replaces(&loc, &recs[i])) {
			nreplaced++;
			replaced_bytes += loc.plain_len;
			todo[ntodo++] = (uint32_t)i;
			continue;
		}
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
	    dd_pack_writer_size(s->writer) + incoming > s->pack_target)
		store_seal_writer(s);
	if (!s->writer) {
		uint64_t seq = s->next_seq++;

		dd_error_clear();
		rc = packio_writer_new(s->be, seq, &s->writer);
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
		if (ids) {
			ids[i] = r->id;
			locs[i] = loc;
		}
		store_id_key(key, &r->id);
		vlen = dd_chunk_loc_encode(val, &loc);
		leveldb_writebatch_put(batch, (const char *)key, sizeof(key),
				       (const char *)val, vlen);
		rc = domains_batch_new(s, batch, dom, &r->id);
		if (rc < 0)
			goto write_failed;
		add_bytes += r->plain_len;
	}
	dd_error_clear();
	rc = dd_pack_writer_sync(s->writer);
	if (rc < 0)
		goto write_failed;
	/* The pack bytes are durable: publish the entries to every
	 * front-end before acknowledging (docs/STORAGE.md). */
	rc = store_shared_put(s, ids, locs, ntodo);
	if (rc < 0)
		goto write_failed;

	store_counters(s, &chunks, &bytes);
	store_meta_encode(meta, chunks + ntodo - nreplaced,
			  bytes + add_bytes - replaced_bytes);
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
	s->chunks += ntodo - nreplaced;
	s->bytes_unique += add_bytes - replaced_bytes;
	pthread_mutex_unlock(&s->counters_lock);
	*stored = (uint32_t)(ntodo + njoin);
	/* Still under ingest_lock, which a sweep also takes. */
	for (i = 0; i < ntodo; i++)
		store_vouch(s, &recs[todo[i]].id);

	if (s->writer && dd_pack_writer_size(s->writer) >= s->pack_target)
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
	free(ids);
	free(locs);
	return rc;
}
