/*
 * gc.c - see gc.h.
 *
 * Order of a collection (each step durable before the next):
 *   1. start a new generation of the vouch journal (store_gc_track) at a
 *      snapshot barrier, dropping the generations no backup in progress
 *      needs, and note the first pack number written from now on;
 *   2. mark: every catalog chunk and every file chunk of every snapshot,
 *      into a bloom filter of fixed size (markset.h);
 *   3. sweep: scan the index in key order and delete the entries of
 *      chunks neither marked nor vouched for, in synced batches as the
 *      scan goes (pack bytes are untouched); a false positive of the
 *      filter keeps a dead chunk, never the other way;
 *   4. count what stays in each pack (a second scan), then for each older
 *      pack: nothing live -> delete it; dead share above the threshold ->
 *      list its records and keep those the index still points at, copy
 *      them (re-hashed) into a new pack, sync it, point the index at the
 *      copies in one synced batch, then delete the old pack. One pack at
 *      a time.
 * On a pool shared by several front-ends, step 1 is preceded by
 * gc_shared_begin: the lock, the pull of the shared index, the epoch set
 * running, the other front-ends' heartbeats, and then the pool's
 * manifests this directory lacks (adopted, so that step 2 marks from
 * every snapshot another front-end acknowledged before its heartbeat).
 * Memory: the filter (MARKSET_BITS_PER_ID bits a chunk of the index, at
 * most gc_opts.filter_max_bytes), a counter a pack, one sweep batch and
 * one pack's records; nothing else grows with the chunk count.
 * A crash anywhere leaves every indexed chunk readable: before the batch
 * of step 4 the old records are indexed, after it the new ones; a copy
 * nobody indexes, or an old pack nobody points at, is collected next time.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "catalog.h"
#include "catsource.h"
#include "domains.h"
#include "gc.h"
#include "markset.h"
#include "proto.h"
#include "log.h"
#include "packio.h"
#include "vouch.h"
#include "frontends.h"
#include "backend.h"

#define GC_SWEEP_BATCH 20000

/* Test hook (docs/OPERATIONS.md): DEDUP_TEST_GC_CRASH=<point> kills the
 * process with SIGKILL there, to test that a crash loses nothing. */
static void gc_test_point(const char *name)
{
	const char *want = getenv("DEDUP_TEST_GC_CRASH");

	if (want && strcmp(want, name) == 0) {
		fprintf(stderr, "gc: test crash at '%s'\n", name);
		fflush(stderr);
		raise(SIGKILL);
	}
}

/* Test hooks (docs/OPERATIONS.md): DEDUP_TEST_GC_HOLD=<file> holds a
 * collection right after it took this store's gc lock, and
 * DEDUP_TEST_GC_HOLD_RUNNING=<file> once the pool's gc epoch says it is
 * running (before it marks), while the file exists (at most 120 s), to
 * test what a session open meets then. */
static void gc_test_hold(const char *var)
{
	const char *path = getenv(var);
	double until = dd_monotonic() + 120;

	if (!path || !*path || access(path, F_OK) != 0)
		return;
	log_info("gc: test hold while '%s' exists", path);
	while (access(path, F_OK) == 0 && dd_monotonic() < until)
		usleep(50 * 1000);
	log_info("gc: test hold released");
}

#define GC_LOCK "gc"
/* The collection lock's lease, and its renewal while the collection
 * runs: the lock is taken again and the gc epoch's start time rewritten
 * every third of the lease, so that neither another collection nor a
 * session open on another front-end takes a long collection for dead.
 * A renewal that fails stops the collection before its next deletion. */
struct gc_lease {
	struct backend *be;
	uint32_t self;
	bool epoch;                  /* this run set the epoch running */
	int lost;                    /* atomic */
	struct dd_ticker *ticker;
};

static unsigned gc_lease_ms(void)
{
	return frontends_gc_lease_sec() * 1000u;
}

static void gc_lease_renew(void *arg)
{
	struct gc_lease *l = arg;
	int rc = backend_lock(l->be, GC_LOCK, gc_lease_ms());

	if (rc == 0 && __atomic_load_n(&l->epoch, __ATOMIC_ACQUIRE))
		rc = frontends_epoch_renew(l->be, l->self);
	if (rc < 0 && !__atomic_exchange_n(&l->lost, 1, __ATOMIC_ACQ_REL))
		log_warning("gc: cannot renew the collection lock's lease: %s; "
			    "deleting nothing more", log_reason(rc));
	dd_error_clear();
}

static int gc_lease_check(struct gc_lease *l)
{
	if (l && __atomic_load_n(&l->lost, __ATOMIC_ACQUIRE))
		return dd_error_set(-EIO, "gc: the collection lock's lease "
				    "could not be renewed; stopped before "
				    "deleting more");
	return 0;
}

/* ---- the snapshots to mark from ---- */

struct gc_snap {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	struct dd_id *catalog;
	size_t ncatalog;
};

struct gc_snaps {
	struct gc_snap *v;
	size_t n;
	int err;
	const struct gc_opts *o;     /* its `without`, in a dry run */
};

/* Under the snapshots' read lock: only names; the catalogs are read from
 * the manifests afterwards, one snapshot at a time. */
static int gc_collect_cb(void *payload, const struct snapshots_item *it)
{
	struct gc_snaps *l = payload;
	struct gc_snap *v, *e;

	if (l->o && l->o->dry_run && l->o->without &&
	    l->o->without(l->o->without_payload, it->id))
		return 0;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->v = v;
	e = &v[l->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", it->id);
	snprintf(e->client, sizeof(e->client), "%s", it->client);
	return 0;
}

/* Reads sn's catalog ids from its manifest. 1 if the snapshot was
 * removed meanwhile (nothing to mark), 0, or an error. */
static int gc_load_catalog(struct snapshots *snaps, struct gc_snap *sn)
{
	json_t *m = NULL;
	int rc;

	dd_error_clear();
	rc = snapshots_load(snaps, sn->id, &m);
	/* Removed meanwhile, or its file gone while it is still listed:
	 * that one must not be taken for "nothing to mark". */
	if (rc == -ENOENT && !snapshots_has(snaps, sn->id))
		return 1;
	if (rc == 0)
		rc = snapshots_manifest_catalog(m, &sn->catalog, &sn->ncatalog);
	json_decref(m);
	if (rc < 0 && rc != -ENOMEM)
		rc = log_wrap(-EBADMSG, "cannot read the manifest of snapshot "
			      "%s (client %s); nothing was deleted", sn->id,
			      sn->client);
	return rc;
}

static void gc_snaps_release(struct gc_snaps *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].catalog);
	free(l->v);
}

/* ---- mark ---- */

static int gc_mark_chunk(void *marked, const struct dd_chunk_ref *ref)
{
	markset_add(marked, &ref->id);
	return 0;
}

static int gc_mark_snapshot(struct store *st, const struct gc_snap *sn,
			    struct markset *marked)
{
	size_t k;
	int rc;

	for (k = 0; k < sn->ncatalog; k++)
		markset_add(marked, &sn->catalog[k]);
	rc = catsource_each_chunk(st, sn->catalog, sn->ncatalog,
				  gc_mark_chunk, marked);
	if (rc < 0 && rc != -ENOMEM)
		rc = log_wrap(-EBADMSG, "cannot read the catalog of snapshot "
			      "%s (client %s); nothing was deleted: run "
			      "`dedup-server check`, then heal or forget that "
			      "snapshot", sn->id, sn->client);
	return rc < 0 ? rc : 0;
}

/* ---- the index, seen from the packs ---- */

struct gc_entry {
	struct dd_id id;
	struct dd_chunk_loc loc;
};

/* What the index points at in one pack: memory a pack, not a chunk. */
struct gc_pack {
	uint64_t seq;
	uint64_t live;              /* entries */
	uint64_t live_bytes;        /* their records */
};

struct gc_packs {
	struct gc_pack *v;          /* by seq, ascending */
	size_t n;
};

static int gc_packs_load(struct gc_packs *p, const uint64_t *seqs, size_t n)
{
	size_t i;

	p->v = calloc(n ? n : 1, sizeof(*p->v));
	if (!p->v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		p->v[i].seq = seqs[i];
	p->n = n;
	return 0;
}

static void gc_packs_zero(struct gc_packs *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		p->v[i].live = p->v[i].live_bytes = 0;
}

/* The pack seq, or NULL when no such pack is listed (check reports an
 * entry that points at a missing pack; it decides nothing here). */
static struct gc_pack *gc_packs_find(struct gc_packs *p, uint64_t seq)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->v[mid].seq == seq)
			return &p->v[mid];
		if (p->v[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void gc_packs_count(struct gc_packs *p, const struct dd_chunk_loc *loc)
{
	struct gc_pack *pk = gc_packs_find(p, loc->pack_seq);

	if (pk) {
		pk->live++;
		pk->live_bytes += DD_PACK_RECORD_HEADER_LEN + loc->stored_len;
	}
}

/*
 * One pass over the index. judge: each entry is dead unless marked or
 * vouched for; dead ones are counted and (sweep) deleted in batches of
 * GC_SWEEP_BATCH as the scan goes, live ones counted in their pack. Not
 * judge: every entry is counted in its pack (what stays after a sweep).
 */
struct gc_scan {
	struct store *st;
	const struct markset *marked;
	struct gc_packs *packs;
	bool judge, sweep;
	struct gc_lease *lease;      /* on a shared pool, else NULL */
	/* Entries whose location does not decode: left alone, and since
	 * their packs cannot be known, no pack is deleted or rewritten in
	 * that run (one could be their only copy). */
	uint64_t undecodable;
	struct dd_id *batch;         /* GC_SWEEP_BATCH ids */
	size_t nbatch;
	uint64_t dead, dead_bytes, in_use, removed, removed_bytes;
};

static int gc_scan_flush(struct gc_scan *sc)
{
	uint64_t removed, bytes;
	int rc;

	if (!sc->nbatch)
		return 0;
	if ((rc = gc_lease_check(sc->lease)) < 0)
		return rc;
	rc = store_gc_sweep(sc->st, sc->batch, sc->nbatch, &removed, &bytes);
	sc->nbatch = 0;
	if (rc < 0)
		return rc;
	sc->removed += removed;
	sc->removed_bytes += bytes;
	return 0;
}

static int gc_scan_cb(void *payload, const uint8_t *key, size_t klen,
		      const uint8_t *val, size_t vlen)
{
	struct gc_scan *sc = payload;
	struct gc_entry e;

	if (klen != 1 + DD_ID_LEN || key[0] != 'c')
		return 0;
	memcpy(e.id.b, key + 1, DD_ID_LEN);
	if (dd_chunk_loc_decode(&e.loc, val, vlen) < 0) {
		sc->undecodable++;
		return 0;      /* check reports it; the sweep leaves it */
	}
	if (!sc->judge || markset_has(sc->marked, &e.id)) {
		gc_packs_count(sc->packs, &e.loc);
		return 0;
	}
	/* Chunks stored since tracking began are vouched for; older ones
	 * in the open pack (a dry run does not seal it) are judged too. */
	if (store_gc_vouched(sc->st, &e.id)) {
		sc->in_use++;
		gc_packs_count(sc->packs, &e.loc);
		return 0;
	}
	sc->dead++;
	sc->dead_bytes += e.loc.plain_len;
	if (!sc->sweep)
		return 0;
	sc->batch[sc->nbatch++] = e.id;
	return sc->nbatch == GC_SWEEP_BATCH ? gc_scan_flush(sc) : 0;
}

/* Judges and (unless a dry run) sweeps the whole index: see gc_scan. */
static int gc_sweep(struct store *st, struct gc_scan *sc, struct gc_report *r,
		    bool dry_run)
{
	int rc;

	sc->judge = true;
	sc->sweep = !dry_run;
	rc = store_index_foreach(st, gc_scan_cb, sc);
	if (rc == 0)
		rc = gc_scan_flush(sc);
	r->chunks_in_use = sc->in_use;
	r->chunks_removed = dry_run ? sc->dead : sc->removed;
	r->bytes_removed = dry_run ? sc->dead_bytes : sc->removed_bytes;
	return rc;
}

/* Records of pack `seq` that the index still points at, listed from the
 * pack itself (memory one pack's records). */
struct gc_list {
	struct store *st;
	struct gc_entry *v;
	size_t n, a;
};

static int gc_list_cb(void *payload, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	struct gc_list *l = payload;
	struct dd_chunk_loc have;
	int rc;

	(void)stored;
	rc = store_gc_lookup(l->st, id, &have);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (have.pack_seq != loc->pack_seq || have.offset != loc->offset)
		return 0;
	if (l->n == l->a) {
		size_t na = l->a ? l->a * 2 : 1024;
		struct gc_entry *v = realloc(l->v, na * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->a = na;
	}
	l->v[l->n].id = *id;
	l->v[l->n++].loc = have;
	return 0;
}

/* Pack `seq` cannot be read through (rc): it is left as it is, counted,
 * and the caller moves on (1). */
static int gc_keep_damaged(struct gc_report *r, uint64_t seq, int rc)
{
	log_warning("gc: pack %016llx left as it is: %s",
		    (unsigned long long)seq, log_reason(rc));
	r->packs_kept_damaged++;
	return 1;
}

/* Lists pack `seq`'s live records into l. 1 when the pack is to be left
 * as it is: it cannot be read through, or the index points at records
 * the listing did not find (want: entries counted by the scan). */
static int gc_list_pack(struct gc_list *l, uint64_t seq, uint64_t want,
			struct gc_report *r)
{
	bool sealed = false;
	int rc;

	l->n = 0;
	dd_error_clear();
	rc = packio_scan(store_backend(l->st), seq, gc_list_cb, l, &sealed);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return gc_keep_damaged(r, seq, rc);
	if (l->n != want) {
		log_warning("gc: pack %016llx left as it is: the index points "
			    "at %llu of its records, its listing found %llu",
			    (unsigned long long)seq, (unsigned long long)want,
			    (unsigned long long)l->n);
		return 1;
	}
	return 0;
}

static uint64_t gc_trailer_len(uint64_t count)
{
	return 8 + DD_PACK_TRAILER_ENTRY_LEN * count + 32 + 8 + 4;
}

/* ---- repack ---- */

struct gc_repack {
	struct store *st;
	struct dd_pack_writer *out;
	struct dd_buf stored, plain;
	ZSTD_DCtx *dctx;
	struct store_move *moves;
	size_t amoves;
};

/* Seals the output pack first when the records e[0..n) would take it past
 * the pack target: on RADOS a pack must stay below the largest object. */
static void gc_make_room(struct gc_repack *rp, const struct gc_entry *e,
			 size_t n)
{
	uint64_t incoming = 0, size;
	size_t i;
	int rc;

	if (!rp->out)
		return;
	for (i = 0; i < n; i++)
		incoming += DD_PACK_RECORD_HEADER_LEN + e[i].loc.stored_len;
	size = dd_pack_writer_size(rp->out);
	if (size <= DD_PACK_HEADER_LEN ||
	    size + incoming <= packio_target(store_backend(rp->st)))
		return;
	rc = dd_pack_writer_seal(rp->out);
	rp->out = NULL;
	if (rc < 0)
		log_warning("gc: cannot seal a new pack: %s", log_reason(rc));
}

/* Copies the live records e[0..n) of one pack into the output pack and
 * points the index at the copies; then deletes the old pack. 1 when the
 * pack was left alone (a damaged record: check will name it). */
static int gc_repack_one(struct gc_repack *rp, uint64_t seq,
			 const struct gc_entry *e, size_t n,
			 struct gc_report *r)
{
	struct dd_chunk_loc have;
	uint64_t moved;
	size_t i;
	int rc;

	if (n > rp->amoves) {
		struct store_move *v = realloc(rp->moves, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		rp->moves = v;
		rp->amoves = n;
	}
	gc_make_room(rp, e, n);
	if (!rp->out && (rc = store_gc_new_pack(rp->st, &rp->out)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		struct dd_chunk_loc loc = e[i].loc;

		dd_error_clear();
		rc = store_read_stored(rp->st, &e[i].id, &loc, &rp->stored);
		if (rc == 0)
			rc = store_decode(&rp->plain, &e[i].id, loc.flags,
					  loc.plain_len, rp->stored.data,
					  rp->stored.len, rp->dctx);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			return gc_keep_damaged(r, seq, rc);
		rp->moves[i].id = e[i].id;
		rp->moves[i].from = e[i].loc;
		dd_error_clear();
		rc = dd_pack_writer_append(rp->out, &e[i].id, loc.flags,
					   loc.plain_len, rp->stored.data,
					   (uint32_t)rp->stored.len,
					   &rp->moves[i].to);
		if (rc < 0)
			return rc;
	}
	dd_error_clear();
	rc = dd_pack_writer_sync(rp->out);
	if (rc < 0)
		return rc;
	gc_test_point("repack-copied");
	rc = store_gc_relocate(rp->st, rp->moves, n, &moved);
	if (rc < 0)
		return rc;
	gc_test_point("repack-indexed");
	/* Nothing may point at the old pack any more. */
	for (i = 0; i < n; i++) {
		if (store_gc_lookup(rp->st, &e[i].id, &have) == 0 &&
		    have.pack_seq == seq) {
			log_warning("gc: pack %016llx still holds chunks in "
				    "use; left as it is",
				    (unsigned long long)seq);
			return 1;
		}
	}
	rc = store_gc_remove_pack(rp->st, seq);
	if (rc < 0)
		return rc;
	gc_test_point("repack-deleted");
	r->chunks_moved += moved;
	r->packs_rewritten++;
	if (dd_pack_writer_size(rp->out) >=
	    packio_target(store_backend(rp->st))) {
		rc = dd_pack_writer_seal(rp->out);
		rp->out = NULL;
		if (rc < 0)
			log_warning("gc: cannot seal a new pack: %s",
				    log_reason(rc));
	}
	return 0;
}

/* ---- the run ---- */

struct gc_track {
	struct store *st;
	const struct gc_opts *o;
	uint64_t first_new;
};

static int gc_track_cb(void *payload)
{
	struct gc_track *t = payload;
	int rc = store_gc_track(t->st, !t->o->dry_run, t->o->since,
				t->o->since_payload, &t->first_new);

	/* A real run seals the open pack and judges it with the others; a
	 * dry run leaves it open but estimates it the same way. */
	if (rc == 0 && t->o->dry_run)
		t->first_new++;
	return rc;
}

static void gc_report_vouch(struct store *st, struct gc_report *r)
{
	struct vouch_stats vs;

	store_gc_vouch_stats(st, &vs);
	r->vouch_generations = vs.generations;
	r->vouch_ids = vs.ids;
	r->vouch_filtered = vs.filtered || vs.saturated;
}

static int gc_pack_size(struct store *st, uint64_t seq, uint64_t *size)
{
	return packio_size(store_backend(st), seq, size);
}

/* The dedup-domain memberships of chunks no longer stored: those just
 * swept, and any an interrupted run left (server/store/domains.h). */
static int gc_drop_memberships(struct store *st)
{
	uint64_t dropped = 0;
	int rc = domains_drop_orphans(st, &dropped);

	if (rc == 0 && dropped)
		log_info("gc: dropped %llu dedup-domain membership(s) of "
			 "chunks no longer stored",
			 (unsigned long long)dropped);
	return rc;
}

/* ---- a pool shared by several front-ends ---- */

#define GC_MAX_FE 64

/* Each other front-end's highest pack when the collection began: that one
 * may be open for appends, and later ones are unknown to the pull. */
struct gc_fe_max {
	uint32_t fe[GC_MAX_FE];
	uint64_t max[GC_MAX_FE];
	size_t n;
	bool overflow;
};

static int gc_fe_max_cb(void *payload, uint64_t seq)
{
	struct gc_fe_max *m = payload;
	uint32_t fe = store_seq_frontend(seq);
	size_t i;

	for (i = 0; i < m->n; i++) {
		if (m->fe[i] == fe) {
			if (seq > m->max[i])
				m->max[i] = seq;
			return 0;
		}
	}
	if (m->n == GC_MAX_FE) {
		m->overflow = true;
		return 0;
	}
	m->fe[m->n] = fe;
	m->max[m->n++] = seq;
	return 0;
}

/* Whether the collection may judge pack `seq` of another front-end. */
static bool gc_fe_pack_ok(const struct gc_fe_max *m, uint64_t seq)
{
	uint32_t fe = store_seq_frontend(seq);
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->fe[i] == fe)
			return seq < m->max[i];
	return false;
}

/* The local cache brought up to the pool's gc epoch (store.h) before
 * the collection reads it: a collection that ran on another front-end
 * since this one's cache last saw the epoch removed entries it may hold.
 * The RADOS lock is held, so no other collection runs until this ends
 * and the cache stays up to date (a session open waiting for the drop
 * sees that). */
static int gc_shared_cache(struct store *st)
{
	struct frontends_epoch e;
	uint64_t dropped = 0;
	int rc = frontends_epoch_get(store_backend(st), &e);

	if (rc == 0)
		rc = store_gc_cache_refresh(st, e.n, e.by, &dropped);
	if (rc == 0 && dropped)
		log_info("gc: dropped %llu cached index entries first (a "
			 "collection ran on another front-end)",
			 (unsigned long long)dropped);
	return rc;
}

/*
 * The start of a collection on a shared pool: the RADOS lock (one
 * collection in the pool at a time; its lease frees it if this process
 * dies), the local cache brought up to the gc epoch, the other
 * front-ends' packs, every entry of the shared index in the local one,
 * and whether another front-end has backups in progress (then nothing is
 * deleted: r->deferred). Otherwise the gc epoch is bumped before
 * anything is deleted, so the others drop their cached entries.
 */
static int gc_shared_begin(struct store *st, struct snapshots *snaps,
			   struct gc_fe_max *fm, uint32_t self,
			   struct gc_report *r, bool dry_run,
			   struct gc_lease *lease)
{
	struct backend *be = store_backend(st);
	uint64_t pulled;
	bool busy = false;
	int rc = backend_lock(be, GC_LOCK, gc_lease_ms());

	if (rc == -EBUSY)
		return log_wrap(-EBUSY, "another front-end is collecting");
	lease->be = be;
	lease->self = self;
	if (rc == 0)
		rc = dd_ticker_start(&lease->ticker, gc_lease_ms() / 3,
				     gc_lease_renew, lease);
	if (rc == 0)
		rc = gc_shared_cache(st);
	if (rc == 0)
		rc = packio_list(be, gc_fe_max_cb, fm);
	if (rc == 0)
		rc = store_shared_pull(st, &pulled, !dry_run);
	/* running before the heartbeats are read: a session opened on
	 * another front-end after this waits for the end */
	if (rc == 0 && !dry_run) {
		rc = frontends_epoch_set(be, true, self);
		__atomic_store_n(&lease->epoch, rc == 0, __ATOMIC_RELEASE);
	}
	if (rc == 0)
		rc = frontends_peers_busy(be, self, &busy, r->deferred_why,
					  sizeof(r->deferred_why));
	/* after the heartbeats: a backup that another front-end finished
	 * had its manifest in the pool before its session closed, so every
	 * snapshot a heartbeat without sessions vouches for is adopted here
	 * and marked, even if this front-end's tick has not seen it yet */
	if (rc == 0)
		rc = frontends_adopt_snapshots(st, snaps);
	if (rc == 0 && busy) {
		r->deferred = true;
		log_info("gc: deleting nothing: %s", r->deferred_why);
	}
	return rc;
}

/* ---- the mark set ---- */

/* A new seed each run: a dead chunk that is a false positive of this
 * run's filter is very likely not one of the next run's. */
static uint64_t gc_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint64_t)(dd_monotonic() * 1e9) ^ (uint64_t)getpid();
	return seed;
}

/* The filter's cap: o->filter_max_bytes, or the test hook
 * DEDUP_TEST_GC_FILTER_BYTES (docs/OPERATIONS.md) to make it tiny. */
static size_t gc_filter_max(const struct gc_opts *o)
{
	const char *v = getenv("DEDUP_TEST_GC_FILTER_BYTES");
	unsigned long long n;
	char *end;

	if (v && *v) {
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno == 0 && *end == 0 && n > 0)
			return (size_t)n;
	}
	return o->filter_max_bytes;
}

/* Marks every chunk of every snapshot into a filter sized from the
 * index's chunk count. */
static int gc_mark(struct store *st, struct snapshots *snaps,
		   const struct gc_opts *o, struct markset **out,
		   struct gc_report *r)
{
	struct gc_snaps snl = { NULL, 0, 0, o };
	uint64_t chunks, ubytes;
	size_t i;
	int rc;

	store_counters(st, &chunks, &ubytes);
	rc = markset_new(out, chunks, gc_filter_max(o), gc_seed());
	if (rc == 0)
		rc = snapshots_foreach(snaps, gc_collect_cb, &snl);
	r->snapshots = snl.n;
	for (i = 0; rc == 0 && i < snl.n; i++) {
		rc = gc_load_catalog(snaps, &snl.v[i]);
		if (rc == 0)
			rc = gc_mark_snapshot(st, &snl.v[i], *out);
		else if (rc == 1)
			rc = 0;
		free(snl.v[i].catalog);
		snl.v[i].catalog = NULL;
	}
	gc_snaps_release(&snl);
	if (*out) {
		r->chunks_marked = markset_count(*out);
		r->filter_bytes = markset_bytes(*out);
		r->filter_fp_rate = markset_fp_rate(*out);
	}
	return rc;
}

int gc_run(struct store *st, struct snapshots *snaps,
	   const struct gc_opts *o_in, struct gc_report *r)
{
	struct gc_opts oo = *o_in;
	const struct gc_opts *o = &oo;
	struct gc_fe_max fm;
	bool shared = store_shared_on(st), locked = false;
	uint32_t self = 0;
	struct gc_scan sc;
	struct gc_packs pk = { NULL, 0 };
	struct gc_list ls;
	struct gc_lease lease;
	struct gc_track tr = { st, o, 0 };
	struct gc_repack rp;
	struct markset *marked = NULL;
	ZSTD_DCtx *dctx = NULL;
	uint64_t *seqs = NULL, packs;
	size_t nseqs = 0, i;
	double t0 = dd_monotonic();
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&sc, 0, sizeof(sc));
	memset(&lease, 0, sizeof(lease));
	memset(&rp, 0, sizeof(rp));
	memset(&ls, 0, sizeof(ls));
	dd_buf_init(&rp.stored, 0);
	dd_buf_init(&rp.plain, 0);
	memset(&fm, 0, sizeof(fm));
	rc = store_gc_begin(st);
	if (rc < 0)
		return rc;
	gc_test_hold("DEDUP_TEST_GC_HOLD");
	if (shared) {
		self = store_frontend(st);
		rc = gc_shared_begin(st, snaps, &fm, self, r, o->dry_run,
				     &lease);
		locked = rc == 0 || rc != -EBUSY;
		if (rc < 0) {
			dd_ticker_stop(lease.ticker);
			store_gc_end(st);
			if (locked && lease.epoch)   /* nothing was deleted */
				(void)frontends_epoch_set(store_backend(st),
							  false, self);
			if (locked)
				backend_unlock(store_backend(st), GC_LOCK);
			return rc;
		}
		sc.lease = &lease;
		gc_test_hold("DEDUP_TEST_GC_HOLD_RUNNING");
		if (r->deferred)
			oo.dry_run = true;
	}
	dctx = ZSTD_createDCtx();
	rp.dctx = dctx;
	sc.batch = malloc(GC_SWEEP_BATCH * sizeof(*sc.batch));
	if (!dctx || !sc.batch)
		rc = -ENOMEM;
	if (rc == 0)
		rc = store_pack_usage(st, &packs, &r->pack_bytes_before);
	if (rc == 0)
		rc = snapshots_barrier(snaps, gc_track_cb, &tr);
	if (rc == 0)
		rc = gc_mark(st, snaps, o, &marked, r);
	if (rc < 0)
		goto cleanup;

	/* Sweep, and what stays in each pack. The packs are listed first:
	 * one written after that is new to this run anyway. */
	rc = store_pack_seqs(st, &seqs, &nseqs);
	if (rc == 0)
		rc = gc_packs_load(&pk, seqs, nseqs);
	if (rc < 0)
		goto cleanup;
	sc.st = st;
	sc.marked = marked;
	sc.packs = &pk;
	rc = gc_sweep(st, &sc, r, o->dry_run);
	if (rc < 0)
		goto cleanup;
	if (!o->dry_run) {
		gc_test_point("swept");
		rc = gc_drop_memberships(st);
		if (rc < 0)
			goto cleanup;
		/* What stays, as the index says now. */
		gc_packs_zero(&pk);
		sc.judge = false;
		sc.undecodable = 0;
		rc = store_index_foreach(st, gc_scan_cb, &sc);
		if (rc < 0)
			goto cleanup;
	}

	/* Packs. */
	rp.st = st;
	ls.st = st;
	if (sc.undecodable) {
		log_warning("gc: %llu index entr%s cannot be decoded: no pack "
			    "is deleted or rewritten this time (run check; "
			    "repair --rebuild-index rebuilds them from the "
			    "packs)", (unsigned long long)sc.undecodable,
			    sc.undecodable == 1 ? "y" : "ies");
		pk.n = 0;
	}
	for (i = 0; i < pk.n; i++) {
		uint64_t seq = pk.v[i].seq, size, live, dead;

		if (shared && store_seq_frontend(seq) != self) {
			if (!gc_fe_pack_ok(&fm, seq))
				continue;
		} else if (seq >= tr.first_new) {
			continue;
		}
		if (gc_pack_size(st, seq, &size) < 0)
			continue;
		live = pk.v[i].live ? pk.v[i].live_bytes + DD_PACK_HEADER_LEN +
			gc_trailer_len(pk.v[i].live) : 0;
		dead = size > live ? size - live : 0;
		if (!pk.v[i].live) {
			/* Nothing live. */
			r->bytes_freed += size;
			r->packs_deleted++;
			if (!o->dry_run &&
			    ((rc = gc_lease_check(sc.lease)) < 0 ||
			     (rc = store_gc_remove_pack(st, seq)) < 0))
				goto cleanup;
			continue;
		}
		if (dead * 100 < (uint64_t)o->threshold * size || dead == 0)
			continue;
		if (o->dry_run) {
			r->packs_rewritten++;
			r->chunks_moved += pk.v[i].live;
			r->bytes_freed += dead;
			continue;
		}
		rc = gc_lease_check(sc.lease);
		if (rc == 0)
			rc = gc_list_pack(&ls, seq, pk.v[i].live, r);
		if (rc == 0)
			rc = gc_repack_one(&rp, seq, ls.v, ls.n, r);
		if (rc < 0)
			goto cleanup;
	}
	rc = 0;
cleanup:
	if (rp.out) {
		int src = dd_pack_writer_seal(rp.out);

		if (src < 0)
			log_warning("gc: cannot seal a new pack: %s",
				    log_reason(src));
	}
	if (!o->dry_run &&
	    store_pack_usage(st, &packs, &r->pack_bytes_after) == 0)
		r->bytes_freed = r->pack_bytes_before > r->pack_bytes_after ?
			r->pack_bytes_before - r->pack_bytes_after : 0;
	else if (o->dry_run)
		r->pack_bytes_after = r->pack_bytes_before - r->bytes_freed;
	gc_report_vouch(st, r);
	store_gc_end(st);
	dd_ticker_stop(lease.ticker);
	if (locked) {
		if (!o_in->dry_run &&
		    frontends_epoch_set(store_backend(st), false, self) < 0)
			log_warning("gc: cannot mark the collection done: %s "
				    "(other front-ends wait out its lease)",
				    log_reason(-EIO));
		dd_error_clear();
		backend_unlock(store_backend(st), GC_LOCK);
	}
	r->seconds = dd_monotonic() - t0;
	markset_free(marked);
	ZSTD_freeDCtx(dctx);
	free(sc.batch);
	free(pk.v);
	free(ls.v);
	free(seqs);
	free(rp.moves);
	dd_buf_release(&rp.stored);
	dd_buf_release(&rp.plain);
	return rc;
}

json_t *gc_report_json(const struct gc_report *r, bool dry_run)
{
	json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I, s:I, s:I, s:I, s:I, s:b, s:f}",
			 "dry_run", dry_run,
			 "snapshots", (json_int_t)r->snapshots,
			 "chunks_referenced", (json_int_t)r->chunks_marked,
			 "chunks_in_use", (json_int_t)r->chunks_in_use,
			 "chunks_removed", (json_int_t)r->chunks_removed,
			 "bytes_removed", (json_int_t)r->bytes_removed,
			 "packs_deleted", (json_int_t)r->packs_deleted,
			 "packs_rewritten", (json_int_t)r->packs_rewritten,
			 "chunks_moved", (json_int_t)r->chunks_moved,
			 "packs_damaged", (json_int_t)r->packs_kept_damaged,
			 "pack_bytes_before", (json_int_t)r->pack_bytes_before,
			 "pack_bytes_after", (json_int_t)r->pack_bytes_after,
			 "bytes_freed", (json_int_t)r->bytes_freed,
			 "vouch_generations", (json_int_t)r->vouch_generations,
			 "vouch_ids", (json_int_t)r->vouch_ids,
			 "vouch_filtered", r->vouch_filtered,
			 "seconds", r->seconds);

	if (j) {
		json_object_set_new(j, "filter_bytes",
				    json_integer((json_int_t)r->filter_bytes));
		json_object_set_new(j, "filter_fp_rate",
				    json_real(r->filter_fp_rate));
	}
	/* a shared pool: deleting was put off for another front-end */
	if (j && r->deferred)
		json_object_set_new(j, "deferred", json_string(r->deferred_why));
	return j;
}

void gc_report_print(FILE *f, const struct gc_report *r, bool dry_run)
{
	const char *w = dry_run ? "would be " : "";

	fprintf(f, "gc: %llu snapshot(s) use %llu chunk(s)\n",
		(unsigned long long)r->snapshots,
		(unsigned long long)r->chunks_marked);
	if (r->chunks_in_use)
		fprintf(f, "gc: %llu unreferenced chunk(s) kept: backups in "
			"progress use them\n",
			(unsigned long long)r->chunks_in_use);
	fprintf(f, "gc: %llu unreferenced chunk(s) %sremoved (%llu bytes)\n",
		(unsigned long long)r->chunks_removed, w,
		(unsigned long long)r->bytes_removed);
	fprintf(f, "gc: %llu pack(s) %sdeleted, %llu %srewritten (%llu "
		"chunk(s) %scopied)\n",
		(unsigned long long)r->packs_deleted, w,
		(unsigned long long)r->packs_rewritten, w,
		(unsigned long long)r->chunks_moved, dry_run ? "would be " : "");
	fprintf(f, "gc: mark filter %.1f MiB, %.3f%% false positives (as "
		"many of the unreferenced chunks stay until a later run)\n",
		(double)r->filter_bytes / (1024 * 1024),
		100 * r->filter_fp_rate);
	if (r->vouch_filtered)
		fprintf(f, "gc: about %llu chunk id(s) vouched for by backups in "
			"progress, partly in bloom filters: a few unused chunks "
			"may stay until a later run\n",
			(unsigned long long)r->vouch_ids);
	if (r->packs_kept_damaged)
		fprintf(f, "gc: %llu damaged pack(s) left as they are: run "
			"`dedup-server check --read-data`\n",
			(unsigned long long)r->packs_kept_damaged);
	fprintf(f, "gc: pack bytes %llu -> %llu, %llu bytes %sfreed "
		"(%.1fs)\n",
		(unsigned long long)r->pack_bytes_before,
		(unsigned long long)r->pack_bytes_after,
		(unsigned long long)r->bytes_freed, w, r->seconds);
}
