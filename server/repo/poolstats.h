/*
 * poolstats.h - the stats of a pool shared by several front-ends
 * (docs/STORAGE.md, "Stats on a shared pool").
 *
 * What GET /api/v1/stats and /metrics show is split in two:
 *   pool facts   read from the pool by any front-end alike: the
 *                snapshots and clients (already adopted from the pool),
 *                the packs and their bytes (listed in the pool), and the
 *                chunks and unique bytes, counted here in the shared
 *                index (never a sum over front-ends: a chunk is counted
 *                once whoever stored it);
 *   flows        what only the front-end it went through knows: its
 *                backups in progress. Each front-end publishes its own in
 *                "stats/<fe>" (a small JSON object, rewritten every tick)
 *                and sums the others' last published ones with its own.
 *
 * The shared index is counted again at a tick when a front-end's published
 * local index counters changed (it stored new chunks or collected some),
 * and at least every POOLSTATS_RECOUNT_SEC, but never sooner than
 * POOLSTATS_COUNT_SHARE times the last count's duration after it.
 * Everything read from the pool is checked: an object larger than
 * POOLSTATS_OBJ_MAX, not JSON, or of another shape is skipped with a log
 * line (once per content: not again every tick).
 * Thread-safe: the tick (serve's loop) and the routes may run at once.
 */
#ifndef SRV_POOLSTATS_H
#define SRV_POOLSTATS_H

#include <stdbool.h>
#include <stdint.h>
#include "backend.h"

#define POOLSTATS_PREFIX "stats/"
#define POOLSTATS_OBJ_MAX 4096
#define POOLSTATS_VERSION 1
#define POOLSTATS_RECOUNT_SEC 60
/* After a count that took d seconds, the next waits at least this many
 * times d (a pool of millions of chunks is not counted every tick). */
#define POOLSTATS_COUNT_SHARE 9
/* At most this many other front-ends are read (the rest are skipped). */
#define POOLSTATS_PEERS_MAX 1024
/* Up to this many front-end numbers given, the others' stats objects are
 * read by number, one read each; past it, found by listing the pool. */
#define POOLSTATS_BY_NUMBER 64

struct store;
struct poolstats;

/* What the routes show for the pool. */
struct poolstats_view {
	bool counted;               /* the shared index was counted */
	uint64_t chunks, bytes_unique;   /* the shared index */
	int64_t index_as_of;        /* unix time of that count */
	unsigned frontends;         /* live ones, this one included */
	uint64_t peer_backups;      /* others' backups in progress */
	int64_t peers_as_of;        /* oldest of their publications (0:
	                             * no other front-end is live) */
};

/* For front-end `fe` of the shared store `st` (borrowed: it outlives
 * the poolstats). */
int poolstats_new(struct poolstats **out, struct store *st, uint32_t fe);
/* Removes this front-end's stats/<fe> (it is gone) and frees. NULL: no-op. */
void poolstats_free(struct poolstats *p);

/*
 * One tick: publishes stats/<fe> with `open_sessions` and this front-end's
 * local index counters, reads the others', counts the shared index again
 * when they changed. Returns a negative errno (with a reason) when the
 * pool could not be written or listed; a damaged peer object is no error.
 */
int poolstats_tick(struct poolstats *p, unsigned open_sessions);

/* The last tick's figures. p NULL (one front-end): all zero. */
void poolstats_view(struct poolstats *p, struct poolstats_view *out);

#endif
