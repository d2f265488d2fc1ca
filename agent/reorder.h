/*
 * reorder.h - a bounded ring that hands work out to threads and gives the
 * results back in the order the work was given.
 *
 * One owner thread pushes items in sequence; items that need work are
 * taken by worker threads (oldest first) and marked done in any order;
 * the owner pops items strictly in push order, each once it is done. The
 * ring holds at most `cap` items, which bounds the memory and the open
 * files the items may hold: the owner checks reorder_full() before a push
 * and pops (waiting) to make room. Items are borrowed pointers: the ring
 * never frees them.
 *
 * The backup uses it to read, cut and hash files on several threads while
 * the catalog is still written in walk order (backup.c).
 */
#ifndef DD_AGENT_REORDER_H
#define DD_AGENT_REORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reorder;

/* A ring of `cap` (>= 1) items. -ENOMEM with a message. */
int reorder_new(struct reorder **out, size_t cap);
/* Frees the ring (NULL is fine); the workers must have returned. */
void reorder_free(struct reorder *r);

/* Owner: whether a push would exceed the capacity. */
bool reorder_full(struct reorder *r);
/* Owner: how many items are held (pushed, not popped). */
size_t reorder_held(struct reorder *r);

/* Owner: appends `item`; it waits for a worker when `needs_work`, else it
 * is done already. The ring must not be full. Returns its sequence number
 * (0, 1, 2, ... in push order). Sleeping workers are woken only once a
 * few items (at most 8, at most half the capacity) are queued, or by
 * reorder_kick(), or when the owner waits in reorder_pop(): one wake-up
 * per small item cost more than its work. */
uint64_t reorder_push(struct reorder *r, void *item, bool needs_work);
/* Owner: wakes the workers for whatever is queued now (after pushing an
 * item worth starting at once, such as a large file). */
void reorder_kick(struct reorder *r);

enum reorder_wait {
	REORDER_NOWAIT,   /* the oldest item only if it is done */
	REORDER_WAIT,     /* the oldest item, waiting until it is done */
	REORDER_ANY,      /* the oldest item, done or not: only once every
			   * worker has returned (cleanup after a stop) */
};

/* Owner: pops the oldest item into *item: 1 popped, 0 nothing (the ring is
 * empty, or with REORDER_NOWAIT the oldest item is not done yet). */
int reorder_pop(struct reorder *r, enum reorder_wait how, void **item);

/* Owner: waits until the `n` oldest items (all held, if fewer) are done,
 * then pops nothing: the reorder_pop(REORDER_NOWAIT) calls that follow
 * find them. One wake-up for `n` items, where waiting in reorder_pop()
 * for each in turn may sleep once an item when the workers are the
 * slower side. */
void reorder_wait_done(struct reorder *r, size_t n);

/* Worker: waits for the oldest item that needs work and takes it: 1 with
 * *item and its *seq, 0 once the ring is stopped. */
int reorder_take(struct reorder *r, void **item, uint64_t *seq);
/* Worker: the item taken as `seq` is done. */
void reorder_done(struct reorder *r, uint64_t seq);

/* Makes every reorder_take() return 0 (items not taken stay held). */
void reorder_stop(struct reorder *r);

#endif
