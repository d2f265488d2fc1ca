/*
 * idset.h - a growable set of chunk ids (open addressing), for the garbage
 * collector's mark set and the exact part of the vouch journal (vouch.h).
 * Not thread-safe: the owner locks.
 *
 * `max` bounds the set: an add that would grow it past `max` ids fails
 * with -E2BIG (and -ENOMEM when memory runs out), so a caller can give up
 * safely instead of exhausting memory. 0 means no bound.
 */
#ifndef SRV_IDSET_H
#define SRV_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include "hash.h"

struct idset;

int idset_new(struct idset **out, size_t max);
void idset_free(struct idset *s);
/* Adds id; 0 also when it was there already. -E2BIG, -ENOMEM. */
int idset_add(struct idset *s, const struct dd_id *id);
bool idset_has(const struct idset *s, const struct dd_id *id);
size_t idset_count(const struct idset *s);
/* Empties the set, keeping its memory. */
void idset_clear(struct idset *s);
/* Calls cb for every id, in no particular order; cb must not change s. */
void idset_foreach(const struct idset *s,
		   void (*cb)(void *payload, const struct dd_id *id),
		   void *payload);
/* The memory the set holds, in bytes. */
size_t idset_bytes(const struct idset *s);

#endif
