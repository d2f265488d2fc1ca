/*
 * frontends.h - several `dedup-server serve` on one RADOS pool
 * (docs/STORAGE.md, "Several front-ends on one pool"). Each front-end has
 * its own directory (LevelDB index as a cache, TLS, logs) and a number:
 * 0 for the one `init --store` made, 1, 2, ... for those `init --join`
 * added (allocated by compare-and-swap on the pool object "frontends",
 * kept in DIR/frontend). The number is in the top bits of its pack
 * numbers, so front-ends never name a pack alike.
 *
 * What the front-ends share through the pool, besides the packs, the
 * manifests and the shared chunk index (store.h):
 *   clients.json  the pool's copy is the one `token` changes (by CAS) and
 *                 every front-end copies into its directory (tick);
 *   snapshots/    each front-end adopts the manifests the others wrote
 *                 and drops those they forgot (tick);
 *   active/<fe>   each front-end's heartbeat: unix time and open backup
 *                 sessions, rewritten every tick; a collection deletes
 *                 nothing while another live front-end has sessions open;
 *   stats/<fe>    each front-end's figures for GET /api/v1/stats
 *                 (poolstats.h), rewritten every tick;
 *   gc-epoch      "N running|done T FE": a collection sets it running (N+1)
 *                 before it reads the heartbeats and deletes, and done
 *                 at its end; a session open on another front-end
 *                 writes its heartbeat, then waits while one is running;
 *                 every reading brings the local cache up to N
 *                 (store_cache_observe), and a snapshot whose session
 *                 began at another N is re-checked against the shared
 *                 index before it is acknowledged.
 * A front-end that cannot write its heartbeat fences itself (below).
 * Errors: negative errno with a reason (dd_error_set).
 */
#ifndef SRV_FRONTENDS_H
#define SRV_FRONTENDS_H

#include <stdbool.h>
#include <stdint.h>
#include "backend.h"

#define FRONTENDS_FILE "frontend"
#define FRONTENDS_COUNTER "frontends"
#define FRONTENDS_CLIENTS "clients.json"
#define FRONTENDS_EPOCH "gc-epoch"
#define FRONTENDS_ACTIVE_PREFIX "active/"
/* A heartbeat older than this by the reader's clock, and then unchanged
 * for as long by the reader's monotonic clock, is a front-end that is
 * gone (seconds; frontends_peers_busy). */
#define FRONTENDS_ALIVE_SEC 30
/* A collection's lock lease (gc.c), and how long a session open waits
 * for a collection in progress on another front-end (seconds). */
#define FRONTENDS_GC_LEASE_SEC 600
/* FRONTENDS_GC_LEASE_SEC, or the test hook DEDUP_TEST_GC_LEASE_SEC
 * (2..3600; docs/OPERATIONS.md): every front-end and gc of the pool must
 * get the same. A collection renews its lock and the epoch's start time
 * every third of it. */
unsigned frontends_gc_lease_sec(void);
#define FRONTENDS_GC_WAIT_SEC 60
/* A manifest of this directory missing from the pool is dropped only if
 * older than this: a create writes it here first, then to the pool,
 * before it is acknowledged (seconds). */
#define FRONTENDS_SNAPSHOT_GRACE_SEC 10
/* How often the tick syncs with the pool (seconds). */
#define FRONTENDS_TICK_SEC 2
/* The tick lists the pool's manifests when SNAPSHOTS_CHANGED moved, and
 * at least this often. */
#define FRONTENDS_SNAPSHOTS_LIST_SEC 60

/* The alive bound in use: FRONTENDS_ALIVE_SEC, or the test hook
 * DEDUP_TEST_ALIVE_SEC (docs/OPERATIONS.md; every front-end of the pool
 * must use the same). */
unsigned frontends_alive_sec(void);
/* The fence (frontends_fenced): half the alive bound of this front-end's
 * monotonic clock, so that a request answered within the other half
 * cannot be acknowledged by a front-end that another already takes for
 * dead (seconds). */
double frontends_fence_sec(void);

/* Replaces the whole content of a small pool object, whatever it held
 * (get then compare-and-swap, retried a few times: -ECANCELED when other
 * writers kept changing it). */
int frontends_pool_replace(struct backend *be, const char *name,
			   const void *data, size_t len);

/* This directory's front-end number (DIR/frontend; 0 when absent). */
int frontends_id(const char *repo, uint32_t *fe);
/* init --join: allocates the next number in the pool and writes it to
 * DIR/frontend. */
int frontends_join(struct backend *be, const char *repo, uint32_t *fe);
/* How many front-end numbers the pool has given (0 .. *n - 1): the
 * counter init --join moves, 1 when there is none (only init --store's
 * front-end 0). -EBADMSG when the counter is not one. */
int frontends_numbers(struct backend *be, uint32_t *n);

/* The pool's clients.json into DIR/clients.json when they differ
 * (*changed). -ENOENT (quiet) when the pool has none yet. The content
 * copied is returned in *seen (caller frees; may be NULL). */
int frontends_clients_pull(struct backend *be, const char *repo,
			   bool *changed, uint8_t **seen, size_t *seen_len);
/* DIR/clients.json to the pool, replacing exactly `expect` (NULL: the
 * pool had none): -ECANCELED when another front-end changed it meanwhile. */
int frontends_clients_push(struct backend *be, const char *repo,
			   const uint8_t *expect, size_t expect_len);

/* For serve's loop: at most once per FRONTENDS_TICK_SEC, the sync above
 * (clients, snapshots, heartbeat with the sessions open, gc epoch). Logs
 * its failures; never fails the server. */
struct store;
struct snapshots;
struct sessions;
struct frontends;
int frontends_new(struct frontends **out, const char *repo,
		  struct store *st, struct snapshots *snaps);
/* The heartbeats count the sessions of `ss` (at the moment each is
 * written, under one lock: a tick's count taken before a session opened
 * is never written after the heartbeat of that open), and the open hook
 * below is installed on ss. f NULL (one front-end): nothing. */
void frontends_attach_sessions(struct frontends *f, struct sessions *ss);
void frontends_tick(struct frontends *f);
void frontends_free(struct frontends *f);
/* The pool's stats this front-end publishes and reads at each tick
 * (poolstats.h; borrowed, lives as long as f). f NULL: NULL. */
struct poolstats *frontends_poolstats(struct frontends *f);

/*
 * For gc on a shared pool: whether another front-end that is alive has
 * backup sessions open (*busy, naming it in who[whysz]); one whose
 * heartbeat looks stale is watched for the alive bound first (it may
 * only have a clock behind this one's), and the gc epoch:
 * running (N + 1) before the heartbeats are read, done at the end (every
 * other front-end then drops its cached index).
 */
int frontends_peers_busy(struct backend *be, uint32_t self, bool *busy,
			 char *who, size_t whysz);
int frontends_epoch_set(struct backend *be, bool running, uint32_t self);
/* The running collection's own renewal of its start time (the others
 * judge its lease from it): -ESTALE when the epoch is no longer this
 * front-end's running collection. */
int frontends_epoch_renew(struct backend *be, uint32_t self);
/*
 * For gc on a shared pool: copies into `snaps` every manifest of the pool
 * it lacks (drops nothing). A collection calls it after it has read the
 * heartbeats: a backup another front-end finished had its manifest in the
 * pool before its session closed, so the collection marks from it even
 * when this front-end's tick has not adopted it yet. Each is marked for
 * its dedup-domain memberships first (regrant_adopt_mark), which the
 * serving front-end's tick then gives on a thread of its own.
 */
int frontends_adopt_snapshots(struct store *st, struct snapshots *snaps);
/*
 * Self-fencing: -EAGAIN with a reason when this front-end has not
 * written its heartbeat for longer than frontends_fence_sec() (or not
 * yet), 0 otherwise (and for f NULL). Serve then acknowledges no chunk
 * upload, no missing-query and no snapshot (503): a collection on another
 * front-end may soon take it for dead and delete what its sessions were
 * told exists.
 */
struct frontends;
int frontends_fenced(struct frontends *f);

/* The pool's gc epoch: "N running|done T FE" (n 0 when there is none). */
struct frontends_epoch {
	uint64_t n;
	bool running;       /* a collection is deleting */
	int64_t since;      /* unix time it started */
	uint32_t by;        /* on which front-end */
};
int frontends_epoch_get(struct backend *be, struct frontends_epoch *e);

/* sessions_open_hook for serve (sessions.h): writes this front-end's
 * heartbeat at once, then waits (at most FRONTENDS_GC_WAIT_SEC, else
 * -EAGAIN) while another front-end's collection is deleting, brings the
 * local cache up to the epoch (store_cache_observe: waiting as long again
 * while this front-end's own collection holds it, else -EAGAIN; never
 * answering from a stale cache) and gives the epoch in *epoch: the
 * session's "present" answers are true as of it. `payload` is the
 * frontends. */
int frontends_session_opened(void *payload, unsigned open_now,
			     uint64_t *epoch);

/*
 * For a snapshot create on a shared pool (snapshots_guard.commit, called
 * once its manifest is in the pool and before it is acknowledged):
 * `payload` is a struct frontends_commit, the epoch its session opened at
 * (epoch_known false: no session, or one that did not say). Waits (as
 * above, else -EAGAIN) while a collection of another front-end runs;
 * then 0 when the epoch is the session's (no collection began since its
 * chunks were vouched for, and one that begins now marks from the
 * manifest), 1 when it moved (the snapshot's chunks must be checked
 * against the shared index: a collection elsewhere that took this
 * front-end for dead may have removed some), -EIO when the pool cannot
 * be read. f NULL: 0.
 */
struct frontends_commit {
	struct frontends *f;
	bool epoch_known;
	uint64_t epoch;
};
int frontends_snapshot_commit(void *payload);

#endif
