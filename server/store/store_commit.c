/*
 * store_commit.c - group commit: the ingests of many connections share
 * one pack sync and one synced index write (store_impl.h, "Group
 * commit"; docs/GROUP-COMMIT.md).
 *
 * The order every commit keeps is the one store.h promises for each
 * ingest: the group's pack bytes are durable before its index batch is
 * written, and no member is answered before both are. A group closes
 * when its leader takes it, which is as soon as the commit before it has
 * finished: a lone client waits for no one.
 */
#include "store_impl.h"

void store_commit_init(struct store *s)
{
	memset(&s->open, 0, sizeof(s->open));
	s->open.tail = &s->open.head;
	dd_buf_init(&s->commit_buf, 0);
	dd_buf_init(&s->pack_buf, 0);
	pthread_cond_init(&s->commit_cond, NULL);
}

void store_commit_release(struct store *s)
{
	assert(!s->committing && !s->open.head);
	if (s->open.batch)
		leveldb_writebatch_destroy(s->open.batch);
	s->open.batch = NULL;
	dd_buf_release(&s->commit_buf);
	dd_buf_release(&s->pack_buf);
	pthread_cond_destroy(&s->commit_cond);
}

/* ---- records appended but not yet indexed ---- */

static struct store_pend **store_pend_bucket(struct store *s,
					     const struct dd_id *id)
{
	return &s->pend[dd_le64(id->b) & (STORE_PEND_BUCKETS - 1)];
}

/* The newest pending record of `id` (ingest_lock held), or NULL. */
struct store_pend *store_pend_find(struct store *s, const struct dd_id *id)
{
	struct store_pend *p;

	for (p = *store_pend_bucket(s, id); p; p = p->next)
		if (dd_id_eq(&p->id, id))
			return p;
	return NULL;
}

void store_pend_add(struct store *s, struct store_pend *p)
{
	struct store_pend **b = store_pend_bucket(s, &p->id);

	p->next = *b;
	if (*b)
		(*b)->pprev = &p->next;
	*b = p;
	p->pprev = b;
}

void store_pend_remove(struct store_pend *p)
{
	*p->pprev = p->next;
	if (p->next)
		p->next->pprev = p->pprev;
}

/* ---- the open group ---- */

leveldb_writebatch_t *store_group_batch(struct store *s)
{
	if (!s->open.batch)
		s->open.batch = leveldb_writebatch_create();
	return s->open.batch;
}

void store_group_join(struct store *s, struct store_waiter *w)
{
	w->next = NULL;
	w->done = false;
	w->rc = 0;
	*s->open.tail = w;
	s->open.tail = &w->next;
	s->open.nrecords += w->npend;
	s->open.members++;
}

/* Moves the open group into *g and starts an empty one. */
static void store_group_take(struct store *s, struct store_group *g)
{
	*g = s->open;
	if (!g->head)
		g->tail = &g->head;
	memset(&s->open, 0, sizeof(s->open));
	s->open.tail = &s->open.head;
}

/* Answers every member of g with rc (and the reason of a failure), and
 * forgets its pending records; returns how many members it had.
 * ingest_lock held. */
static size_t store_group_finish(struct store *s, struct store_group *g,
				 int rc, const char *why)
{
	struct store_waiter *w, *next;
	size_t i, members = 0;

	for (w = g->head; w; w = next) {
		next = w->next;
		for (i = 0; i < w->npend; i++) {
			if (rc == 0)   /* still under ingest_lock, as a sweep */
				store_vouch(s, &w->pend[i].id);
			store_pend_remove(&w->pend[i]);
		}
		w->rc = rc;
		if (rc < 0)
			snprintf(w->why, sizeof(w->why), "%s", why);
		w->done = true;
		members++;
	}
	if (g->batch)
		leveldb_writebatch_destroy(g->batch);
	g->batch = NULL;
	return members;
}

/* With ingest_lock held: drop the pack being written after a failure; the
 * next ingest starts a new pack. What it holds stays readable (and is
 * garbage if it was never indexed). */
void store_writer_abandon(struct store *s)
{
	if (s->writer) {
		dd_pack_writer_free(s->writer);
		s->writer = NULL;
	}
}

/* The error an ingest reports for a failed pack write: -ENOSPC for a full
 * disk or quota, -ENOMEM, storage that did not answer (the client comes
 * back later), else -EIO (the message names the pack). */
int store_ingest_errno(int rc)
{
	if (rc == -ENOSPC || rc == -EDQUOT)
		return -ENOSPC;
	return rc == -ENOMEM || backend_unavailable(rc) ? rc : -EIO;
}

/* Answers the open group's members with a failure: their records went
 * to a pack that was just abandoned. ingest_lock held. */
void store_group_fail_open(struct store *s, int rc, const char *why)
{
	struct store_group g;

	store_group_take(s, &g);
	store_group_finish(s, &g, rc, why);
}

/* The updated counters, last in the group's batch. */
static void store_group_meta(struct store *s, struct store_group *g)
{
	uint8_t meta[STORE_META_LEN];
	uint64_t chunks, bytes;

	if (!g->batch)
		return;
	store_counters(s, &chunks, &bytes);
	store_meta_encode(meta, chunks + (uint64_t)g->dchunks,
			  bytes + (uint64_t)g->dbytes);
	leveldb_writebatch_put(g->batch, STORE_META_KEY,
			       strlen(STORE_META_KEY), (const char *)meta,
			       sizeof(meta));
}

/* The leader's I/O: the pack bytes made durable, the entries published to
 * a shared index (docs/STORAGE.md), then the batch in one synced write.
 * `bytes`: the detached pack bytes, written without ingest_lock; NULL:
 * the writer's own buffer is synced in place, ingest_lock held. *pack_rc
 * is a detached write's own result; *db_err says the index write
 * failed. */
static int store_group_write(struct store *s, struct store_group *g,
			     struct dd_pack_writer *wr,
			     const struct dd_buf *bytes, int *pack_rc,
			     bool *db_err)
{
	struct store_waiter *w;
	char *err = NULL;
	bool closed;
	int rc;

	if (!bytes && g->nrecords) {
		/* In place, ingest_lock held (store_commit_overlaps). */
		rc = dd_pack_writer_sync(wr);
		if (rc < 0)
			return store_ingest_errno(rc);
	} else if (bytes && bytes->len) {
		rc = dd_pack_writer_write_detached(wr, bytes);
		*pack_rc = rc;
		if (rc < 0)
			return store_ingest_errno(rc);
	}
	for (w = g->head; w; w = w->next) {
		if (!w->ids || (!w->npend && !w->nmembers))
			continue;
		rc = store_shared_put(s, w->ids, w->locs, w->npend,
				      w->members, w->nmembers);
		if (rc < 0)
			return store_ingest_errno(rc);
	}
	if (!g->batch)
		return 0;
	pthread_rwlock_rdlock(&s->db_lock);
	closed = !s->db;
	if (!closed)
		leveldb_write(s->db, s->wopts_sync, g->batch, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (closed)
		return dd_error_set(-EIO, "the index is closed");
	if (err) {
		*db_err = true;
		return store_db_error(err, "write the index");
	}
	return 0;
}

/* Whether a commit of group g lets go of ingest_lock for its I/O, so
 * that the next group fills meanwhile: not for a lone upload of
 * STORE_GROUP_OVERLAP_BYTES or more, which is synced in place from the
 * writer's own buffer, holding the lock, as one upload a sync was:
 * overlapping big uploads cost more CPU than the syncs they save
 * (docs/GROUP-COMMIT.md). */
static bool store_commit_overlaps(const struct store_group *g)
{
	return g->members > 1 || g->bytes < STORE_GROUP_OVERLAP_BYTES;
}

/*
 * With ingest_lock held and no commit running: commits the open group.
 * Its I/O runs without ingest_lock (held again on return), other
 * ingests appending to the pack and filling the next group meanwhile (a
 * failure fails that group too, since its records went to the same
 * pack); but a lone big upload's keeps the lock (store_commit_overlaps).
 */
static void store_commit_lead(struct store *s)
{
	struct dd_pack_writer *wr = s->writer;
	struct store_group g;
	struct dd_buf bytes;
	char why[256];
	bool db_err = false, overlap;
	int rc = 0, pack_rc = 0;

	assert(!s->committing);
	store_group_take(s, &g);
	store_group_meta(s, &g);
	s->committing = true;
	overlap = store_commit_overlaps(&g);
	bytes = s->commit_buf;
	dd_buf_init(&s->commit_buf, 0);
	dd_error_clear();
	if (g.nrecords && overlap) {
		assert(wr);
		rc = dd_pack_writer_detach(wr, &bytes);
		if (rc < 0)
			rc = store_ingest_errno(rc);
	}
	if (overlap)
		pthread_mutex_unlock(&s->ingest_lock);
	if (rc == 0)
		rc = store_group_write(s, &g, wr, overlap ? &bytes : NULL,
				       &pack_rc, &db_err);
	if (overlap)
		pthread_mutex_lock(&s->ingest_lock);
	assert(s->writer == wr || !g.nrecords);
	if (bytes.len)
		dd_pack_writer_detached_done(wr, bytes.len, pack_rc);
	dd_buf_reset(&bytes);
	s->commit_buf = bytes;
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s", dd_error_last());
		if (db_err)
			store_db_write_failed(s, rc);
		store_writer_abandon(s);
		store_group_finish(s, &g, rc, why);
		store_group_fail_open(s, rc, why);
	} else {
		bool wrote = g.nrecords || g.batch;
		size_t members = store_group_finish(s, &g, 0, NULL);

		pthread_mutex_lock(&s->counters_lock);
		/* Atomic: store_ropts_lookup() reads it unlocked. */
		__atomic_store_n(&s->chunks, s->chunks + (uint64_t)g.dchunks,
				 __ATOMIC_RELAXED);
		s->bytes_unique += (uint64_t)g.dbytes;
		if (wrote) {
			s->commits++;
			s->commit_members += members;
		}
		pthread_mutex_unlock(&s->counters_lock);
		/* A full pack is sealed once nothing in it waits for a
		 * commit (else the next ingest that would overflow it). */
		if (s->writer && !s->open.nrecords &&
		    dd_pack_writer_size(s->writer) >= s->pack_target)
			store_seal_writer(s);
	}
	s->committing = false;
	pthread_cond_broadcast(&s->commit_cond);
}

int store_commit_wait(struct store *s, struct store_waiter *w)
{
	while (!w->done) {
		if (!s->committing)
			store_commit_lead(s);
		else
			pthread_cond_wait(&s->commit_cond, &s->ingest_lock);
	}
	if (w->rc < 0)
		dd_error_set(w->rc, "%s", w->why);
	return w->rc;
}

/* ingest_lock held: commits everything appended so far, keeping new
 * ingests out meanwhile, so that the caller holds the lock with no
 * record pending and no commit running. */
void store_commit_drain(struct store *s)
{
	s->draining = true;
	while (s->committing || s->open.head) {
		if (!s->committing)
			store_commit_lead(s);
		else
			pthread_cond_wait(&s->commit_cond, &s->ingest_lock);
	}
	s->draining = false;
	pthread_cond_broadcast(&s->commit_cond);
}

void store_ingest_lock(struct store *s)
{
	pthread_mutex_lock(&s->ingest_lock);
	store_commit_drain(s);
}

void store_commit_stats(struct store *s, uint64_t *commits,
			uint64_t *members)
{
	pthread_mutex_lock(&s->counters_lock);
	*commits = s->commits;
	*members = s->commit_members;
	pthread_mutex_unlock(&s->counters_lock);
}
