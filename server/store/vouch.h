/*
 * vouch.h - the vouch journal: every chunk id the store vouched for (a
 * lookup that found it, an upload, a reference check, a read), kept in
 * generations so that a garbage collection spares what a backup still in
 * progress relied on, however many collections run meanwhile
 * (docs/OPERATIONS.md, "Garbage collection").
 *
 * A generation holds the ids vouched for between two collection starts:
 * an exact set up to `exact_max` ids, then a fixed-size bloom filter of
 * VOUCH_FILTER_BITS bits (a false positive only keeps a garbage chunk
 * until a later collection: never unsafe). vouch_rotate() closes the
 * current generation, drops the closed ones that ended before a given
 * time (the opening of the oldest backup still in progress) and opens a
 * new one. At most VOUCH_GENERATIONS_MAX generations are kept: beyond
 * that the two oldest are merged (union; kept as long as the newer one).
 *
 * Memory: at most VOUCH_GENERATIONS_MAX x max(exact set, filter), about
 * 4 x 16.5 MiB with the default bounds, plus one filter for a moment
 * while a set turns into a filter or two generations merge.
 *
 * Adding never fails: when memory runs out, the generation counts every
 * id as vouched (nothing is swept while it is kept). Not thread-safe: the
 * owner locks.
 */
#ifndef SRV_VOUCH_H
#define SRV_VOUCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hash.h"

#define VOUCH_EXACT_MAX (256u * 1024)          /* ids per exact set */
#define VOUCH_FILTER_BITS (128ull * 1024 * 1024) /* 16 MiB, a power of 2 */
#define VOUCH_FILTER_HASHES 7
#define VOUCH_GENERATIONS_MAX 4

struct vouch;

/* What the journal holds now (for the collection report). */
struct vouch_stats {
	unsigned generations;      /* kept, the current one included */
	uint64_t ids;              /* ids recorded (filters: estimated) */
	bool filtered;             /* some generation is a bloom filter */
	bool saturated;            /* out of memory: every id counts */
	uint64_t bytes;            /* memory held */
};

/* An empty journal with one open generation; exact_max 0 means
 * VOUCH_EXACT_MAX. -ENOMEM. */
int vouch_new(struct vouch **out, size_t exact_max);
void vouch_free(struct vouch *v);

/* Records id in the current generation. */
void vouch_add(struct vouch *v, const struct dd_id *id);

/* True if a kept generation holds id (or may: a filter). */
bool vouch_has(const struct vouch *v, const struct dd_id *id);

/*
 * Closes the current generation at `now` and opens a new one; then drops
 * every closed generation that ended before `since` (HUGE_VAL drops them
 * all, 0 keeps them all), and merges the oldest two while more than
 * VOUCH_GENERATIONS_MAX remain. Times are dd_monotonic() seconds.
 */
void vouch_rotate(struct vouch *v, double now, double since);

void vouch_get_stats(const struct vouch *v, struct vouch_stats *out);

#endif
