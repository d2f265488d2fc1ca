/*
 * idset.h - an in-memory hash map from chunk id to a 32-bit value (open
 * addressing, linear probing). Used by backup to remember the chunks
 * already sent or known present in this run, and by restore to fold
 * repeated ids of one fetch batch into one request slot.
 *
 * Chunk ids are SHA-256 digests, so their first bytes are a good hash.
 */
#ifndef DD_AGENT_IDSET_H
#define DD_AGENT_IDSET_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct idset;

int idset_new(struct idset **out);
void idset_free(struct idset *s);

/* Adds id -> value if id is absent: returns 1. If present, returns 0 and
 * stores the existing value in *existing (when not NULL). -ENOMEM. */
int idset_insert(struct idset *s, const struct dd_id *id, uint32_t value,
		 uint32_t *existing);
/* Sets id -> value, added or replaced: 0, or -ENOMEM. */
int idset_set(struct idset *s, const struct dd_id *id, uint32_t value);
/* 1 and *value if present, 0 if absent. */
int idset_lookup(const struct idset *s, const struct dd_id *id,
		 uint32_t *value);
size_t idset_count(const struct idset *s);
/* Empties the set, keeping its memory. */
void idset_clear(struct idset *s);

#endif
