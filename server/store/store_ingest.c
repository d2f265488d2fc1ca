/*
 * store_ingest.c - storing verified chunks: sorting a request's records
 * into new, duplicate and joined ones, appending the new ones to the open
 * pack and their entries to the open group, then waiting for the group
 * commit (store_commit.c) that syncs the pack bytes and writes entries,
 * memberships and counters in one synced batch.
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

/* A verified plain record takes the id of a sealed one: the server could
 * not check the sealed bytes, and an honest sealed chunk's id is keyed
 * (docs/ENCRYPTION.md), so it equals a plain chunk's SHA-256 only if
 * someone forged it. A sealed record never takes a plain chunk's id. */
static bool store_plain_replaces(uint32_t have_flags,
				 const struct dd_bundle_record *r)
{
	return (have_flags & DD_COMP_SEALED) && !(r->flags & DD_COMP_SEALED);
}

/* Whether a record proves nothing about a stored chunk: the server
 * cannot check a sealed record's bytes against its id, so a sealed
 * record never makes its domain a member of a plain chunk that another
 * domain stored (it would then be told the chunk is present and read
 * its bytes: docs/SECURITY.md, "Sealed records and domains"). */
static bool store_sealed_claims_plain(uint32_t have_flags,
				      const struct dd_bundle_record *r)
{
	return (r->flags & DD_COMP_SEALED) && !(have_flags & DD_COMP_SEALED);
}

/* Whether domain `dom` holds a chunk appended but not yet committed (as
 * domains_is_member for a stored one). */
static bool store_pend_holds(const struct store_pend *p,
			     const struct domains_tag *dom)
{
	if (!dom)
		return true;
	return p->has_dom && memcmp(p->dom.b, dom->b, sizeof(dom->b)) == 0;
}

/* What one ingest found and will do. todo[0..ntodo) are new chunks;
 * todo[n - njoin..n) chunks stored by another domain that `dom` joins. */
struct store_plan {
	struct store_idset set;
	uint32_t *todo;
	size_t ntodo, njoin;
	uint32_t duplicates;
	/* sealed records of plain chunks the domain does not hold: answered
	 * "stored" as a new sealed chunk is, nothing written */
	uint32_t nclaimed;
	uint64_t nreplaced, replaced_bytes;
	bool relies;   /* some record is pending in an uncommitted group */
};

static int store_plan_init(struct store_plan *pl, size_t n)
{
	memset(pl, 0, sizeof(*pl));
	pl->todo = malloc(n * sizeof(*pl->todo));
	if (!pl->todo || store_idset_init(&pl->set, n) < 0)
		return -ENOMEM;
	return 0;
}

static void store_plan_release(struct store_plan *pl)
{
	free(pl->todo);
	free(pl->set.slots);
}

/* Record i is pending (appended by an ingest whose commit has not
 * finished): this ingest waits for that commit too. */
static void store_plan_pending(struct store_plan *pl,
			       const struct store_pend *p,
			       const struct domains_tag *dom,
			       const struct dd_bundle_record *recs,
			       size_t n, uint32_t i)
{
	pl->relies = true;
	if (store_plain_replaces(p->flags, &recs[i])) {
		pl->nreplaced++;
		pl->replaced_bytes += p->plain_len;
		pl->todo[pl->ntodo++] = i;
	} else if (store_pend_holds(p, dom)) {
		pl->duplicates++;
	} else if (store_sealed_claims_plain(p->flags, &recs[i])) {
		pl->nclaimed++;
	} else {
		pl->todo[n - ++pl->njoin] = i;
	}
}

/* Sorts the records into new, joined and duplicate ones, under
 * ingest_lock so that a chunk uploaded by two agents at once is written
 * once: the index, and the records appended but not yet committed. */
static int store_plan_make(struct store *s, struct store_plan *pl,
			   const struct domains_tag *dom,
			   const struct dd_bundle_record *recs, size_t n)
{
	struct dd_chunk_loc loc;
	struct store_pend *p;
	uint32_t i;
	int rc;

	pl->ntodo = pl->njoin = 0;
	pl->duplicates = pl->nclaimed = 0;
	pl->nreplaced = pl->replaced_bytes = 0;
	pl->relies = false;
	memset(pl->set.slots, 0, (pl->set.mask + 1) * sizeof(*pl->set.slots));
	for (i = 0; i < n; i++) {
		if (!store_idset_add(&pl->set, recs, i)) {
			pl->duplicates++;
			continue;
		}
		p = store_pend_find(s, &recs[i].id);
		if (p) {
			store_plan_pending(pl, p, dom, recs, n, i);
			continue;
		}
		/* the local index only (see store_ingest_alloc) */
		rc = store_lookup_cached(s, &recs[i].id, &loc);
		if (rc == 0 && store_plain_replaces(loc.flags, &recs[i])) {
			pl->nreplaced++;
			pl->replaced_bytes += loc.plain_len;
			pl->todo[pl->ntodo++] = i;
			continue;
		}
		if (rc == 0)
			rc = domains_is_member(s, dom, &recs[i].id);
		if (rc == 1) {
			pl->duplicates++;
			continue;
		}
		if (rc == 0 && store_sealed_claims_plain(loc.flags, &recs[i])) {
			pl->nclaimed++;
			continue;
		}
		if (rc == 0) {
			pl->todo[n - ++pl->njoin] = i;
			continue;
		}
		if (rc != -ENOENT)
			return rc;
		pl->todo[pl->ntodo++] = i;
	}
	return 0;
}

/* On a shared pool: room for the new entries to publish. The shared
 * index is not asked again here: the missing-query that preceded the
 * upload did (store_prefetch), and a chunk another front-end stored in
 * between is only stored twice (both copies whole; gc reclaims the one
 * the shared index does not name). */
static int store_ingest_alloc(struct store *s, size_t n,
			      const struct domains_tag *dom,
			      struct store_waiter *w, struct dd_id **ids,
			      struct dd_chunk_loc **locs)
{
	*ids = NULL;
	*locs = NULL;
	memset(w, 0, sizeof(*w));
	w->pend = calloc(n, sizeof(*w->pend));
	if (!w->pend)
		return -ENOMEM;
	if (!store_shared_on(s))
		return 0;
	*ids = malloc(n * sizeof(**ids));
	*locs = malloc(n * sizeof(**locs));
	if (!*ids || !*locs)
		return -ENOMEM;
	w->ids = *ids;
	w->locs = *locs;
	/* a domain's memberships go to the pool with the entries, so that
	 * the other front-ends can tell its clients what it holds
	 * (store_shared_grant) */
	if (dom && !(w->members = malloc(n * sizeof(*w->members))))
		return -ENOMEM;
	return 0;
}

/* The pack bytes of the plan's new records. */
static uint64_t store_plan_bytes(const struct store_plan *pl,
				 const struct dd_bundle_record *recs)
{
	uint64_t bytes = 0;
	size_t i;

	for (i = 0; i < pl->ntodo; i++)
		bytes += DD_PACK_RECORD_HEADER_LEN +
			 recs[pl->todo[i]].stored_len;
	return bytes;
}

/* Whether `incoming` more bytes should wait for the commit running now
 * instead of joining the open group: a group holds at most
 * STORE_GROUP_BYTES (besides its first member), since its bytes wait in
 * memory until the leader writes them, and a big buffer written long
 * after it was filled costs more CPU than the syncs it saves. */
static bool store_group_full(const struct store *s, uint64_t incoming)
{
	return s->committing && s->open.bytes &&
	       s->open.bytes + incoming > STORE_GROUP_BYTES;
}

/* Makes room in the open pack for the plan's new records: a pack this
 * request would push past the target is sealed first (all of it durable
 * and indexed), and a new one started. -EAGAIN: records of other ingests
 * wait in the pack, so the caller lets them commit and plans again. */
static int store_make_room(struct store *s, const struct store_plan *pl,
			   const struct dd_bundle_record *recs)
{
	uint64_t incoming = store_plan_bytes(pl, recs), seq;
	int rc;

	if (s->writer && dd_pack_writer_size(s->writer) > DD_PACK_HEADER_LEN &&
	    dd_pack_writer_size(s->writer) + incoming > s->pack_target) {
		if (s->committing || s->open.head)
			return -EAGAIN;
		store_seal_writer(s);
	}
	if (s->writer)
		return 0;
	seq = s->next_seq++;
	dd_error_clear();
	rc = packio_writer_new(s->be, seq, &s->writer);
	if (rc < 0) {
		/* The message names the pack already. */
		s->writer = NULL;
		return store_ingest_errno(rc);
	}
	dd_pack_writer_lend_buf(s->writer, &s->pack_buf);
	return 0;
}

/* Adds domain dom's membership of chunk id, stored at loc, to what w
 * publishes (one per record of the ingest at most: room for all). */
static void store_member_add(struct store_waiter *w,
			     const struct domains_tag *dom,
			     const struct dd_id *id,
			     const struct dd_chunk_loc *loc)
{
	struct store_member *m = &w->members[w->nmembers++];

	m->id = *id;
	m->loc = *loc;
	m->tag = *dom;
}

/* Appends the plan's new records to the open pack and their entries and
 * memberships to `batch`; each becomes pending (findable by id) until
 * its commit. *add_bytes: their plain bytes. */
static int store_append(struct store *s, const struct store_plan *pl,
			const struct domains_tag *dom,
			const struct dd_bundle_record *recs,
			leveldb_writebatch_t *batch, struct store_waiter *w,
			struct dd_id *ids, struct dd_chunk_loc *locs,
			uint64_t *add_bytes)
{
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_MAX];
	struct dd_chunk_loc loc;
	struct store_pend *p;
	size_t i, vlen;
	int rc;

	*add_bytes = 0;
	for (i = 0; i < pl->ntodo; i++) {
		const struct dd_bundle_record *r = &recs[pl->todo[i]];

		dd_error_clear();
		rc = dd_pack_writer_append(s->writer, &r->id, r->flags,
					   r->plain_len, r->data, r->stored_len,
					   &loc);
		if (rc < 0)
			return store_ingest_errno(rc);
		p = &w->pend[w->npend++];
		p->id = r->id;
		p->has_dom = dom != NULL;
		if (dom)
			p->dom = *dom;
		p->flags = r->flags;
		p->plain_len = r->plain_len;
		store_pend_add(s, p);
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
			return store_ingest_errno(rc);
		if (w->members)
			store_member_add(w, dom, &r->id, &loc);
		*add_bytes += r->plain_len;
	}
	return 0;
}

/* The joins of the plan: dom becomes a member of each, in the index
 * batch, and on a shared pool in what w publishes. A join of a record
 * still pending (another domain's upload of it has not committed) is
 * not published: its location is not final until then (the domain
 * then uploads it once more through other front-ends). */
static void store_joins(struct store *s, const struct store_plan *pl,
			const struct domains_tag *dom,
			const struct dd_bundle_record *recs, size_t n,
			leveldb_writebatch_t *batch, struct store_waiter *w)
{
	struct dd_chunk_loc loc;
	size_t i;

	for (i = n - pl->njoin; i < n; i++) {
		const struct dd_id *id = &recs[pl->todo[i]].id;

		domains_batch_join(batch, dom, id);
		if (w->members && !store_pend_find(s, id) &&
		    store_lookup_raw(s, id, &loc) == 0)
			store_member_add(w, dom, id, &loc);
	}
	dd_error_clear();
}

/* Forgets the pending records of an ingest that failed before joining a
 * group; their bytes may still reach the pack, never indexed (garbage,
 * as after a crash). */
static void store_append_undo(struct store_waiter *w)
{
	size_t i;

	for (i = 0; i < w->npend; i++)
		store_pend_remove(&w->pend[i]);
	w->npend = 0;
}

/* ingest_lock held: plans, makes room, appends and joins the open group;
 * *joined says whether the caller must wait for a commit. */
static int store_ingest_locked(struct store *s, const struct domains_tag *dom,
			       const struct dd_bundle_record *recs, size_t n,
			       struct store_plan *pl, struct store_waiter *w,
			       struct dd_id *ids, struct dd_chunk_loc *locs,
			       bool *joined)
{
	leveldb_writebatch_t *batch;
	uint64_t add_bytes = 0;
	int rc;

	*joined = false;
	if (s->db_failed || !s->db) {
		/* Before any pack byte is written: nothing could be
		 * indexed. */
		rc = store_db_heal(s);
		if (rc < 0)
			return rc;
	}
	for (;;) {
		/* Whenever the lock was let go, plan again: what others
		 * stored meanwhile is no longer new. */
		if (s->draining) {
			pthread_cond_wait(&s->commit_cond, &s->ingest_lock);
			continue;
		}
		rc = store_plan_make(s, pl, dom, recs, n);
		if (rc < 0)
			return rc;
		if (pl->ntodo == 0)
			break;
		if (store_group_full(s, store_plan_bytes(pl, recs))) {
			pthread_cond_wait(&s->commit_cond, &s->ingest_lock);
			continue;
		}
		rc = store_make_room(s, pl, recs);
		if (rc != -EAGAIN)
			break;
		/* Let the records in the pack commit first. */
		store_commit_drain(s);
	}
	if (rc < 0)
		return rc;
	if (pl->ntodo == 0 && pl->njoin == 0 && !pl->relies)
		return 0;
	batch = leveldb_writebatch_create();
	w->nmembers = 0;
	store_joins(s, pl, dom, recs, n, batch, w);
	rc = store_append(s, pl, dom, recs, batch, w, ids, locs, &add_bytes);
	if (rc < 0) {
		store_append_undo(w);
		leveldb_writebatch_destroy(batch);
		return rc;
	}
	if (pl->ntodo || pl->njoin)
		leveldb_writebatch_append(store_group_batch(s), batch);
	leveldb_writebatch_destroy(batch);
	s->open.dchunks += (int64_t)(pl->ntodo - pl->nreplaced);
	s->open.dbytes += (int64_t)(add_bytes - pl->replaced_bytes);
	s->open.bytes += store_plan_bytes(pl, recs);
	store_group_join(s, w);
	*joined = true;
	return 0;
}

/* On a shared pool: the sealed records' ids are looked up in the shared
 * index first (store_prefetch caches what it finds), so that the plan
 * sees a plain chunk another front-end stored: a sealed record never
 * replaces it there (the pool's entry would name the sealed copy, and a
 * collection would reclaim the plain one) nor joins it. Plain records
 * need not be: a plain copy stored twice is whole either way. */
static int store_ingest_sealed_prefetch(struct store *s,
					const struct dd_bundle_record *recs,
					size_t n)
{
	struct dd_id *ids;
	uint8_t *absent;
	size_t i, m = 0;
	int rc = 0;

	if (!store_shared_on(s))
		return 0;
	for (i = 0; i < n; i++)
		m += (recs[i].flags & DD_COMP_SEALED) != 0;
	if (m == 0)
		return 0;
	ids = malloc(m * sizeof(*ids));
	absent = malloc((m + 7) / 8);
	if (!ids || !absent) {
		rc = -ENOMEM;
	} else {
		for (i = 0, m = 0; i < n; i++)
			if (recs[i].flags & DD_COMP_SEALED)
				ids[m++] = recs[i].id;
		rc = store_prefetch(s, ids, m, absent);
	}
	free(ids);
	free(absent);
	return rc < 0 ? store_ingest_errno(rc) : 0;
}

int store_ingest(struct store *s, const struct domains_tag *dom,
		 const struct dd_bundle_record *recs, size_t n,
		 uint32_t *stored, uint32_t *duplicates)
{
	struct store_plan pl;
	struct store_waiter w;
	struct dd_chunk_loc *locs = NULL;
	struct dd_id *ids = NULL;
	bool joined = false;
	int rc;

	*stored = 0;
	*duplicates = 0;
	if (n == 0)
		return 0;
	rc = store_ingest_sealed_prefetch(s, recs, n);
	if (rc < 0)
		return rc;
	rc = store_plan_init(&pl, n);
	if (rc == 0)
		rc = store_ingest_alloc(s, n, dom, &w, &ids, &locs);
	else
		memset(&w, 0, sizeof(w));
	if (rc < 0)
		goto cleanup;

	pthread_mutex_lock(&s->ingest_lock);
	rc = store_ingest_locked(s, dom, recs, n, &pl, &w, ids, locs,
				 &joined);
	if (rc == 0 && joined)
		rc = store_commit_wait(s, &w);
	pthread_mutex_unlock(&s->ingest_lock);
	if (rc == 0) {
		*stored = (uint32_t)(pl.ntodo + pl.njoin + pl.nclaimed);
		*duplicates = pl.duplicates;
	}

cleanup:
	store_plan_release(&pl);
	free(w.pend);
	free(w.members);
	free(ids);
	free(locs);
	return rc;
}
