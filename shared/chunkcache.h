/*
 * chunkcache.h - a least-recently-used cache of verified plain chunks,
 * bounded in bytes. `dedup-agent mount` keeps the chunks its reads fetched
 * here, so a read of the same region (or of a neighbouring one in the same
 * chunk) is not fetched again.
 *
 * The cache copies what it is given and never holds more than its bound,
 * counting each chunk's bytes and DD_CHUNKCACHE_NODE_COST for its
 * bookkeeping (tiny chunks would otherwise hold many times the bound:
 * 100,000 chunks of 4 bytes took 25 MB under a 1 MiB bound); a chunk as
 * large as the bound is kept alone, its bookkeeping past it. A chunk
 * larger than the bound is not kept. Not thread-safe: the caller
 * serialises every call.
 */
#ifndef DD_CHUNKCACHE_H
#define DD_CHUNKCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct dd_chunkcache;

/* What a chunk costs the cache beyond its bytes: its node and malloc's
 * header. */
#define DD_CHUNKCACHE_NODE_COST 96u

struct dd_chunkcache_stats {
	uint64_t bytes, peak_bytes;   /* held now, at most so far: chunk bytes
				       * and DD_CHUNKCACHE_NODE_COST each */
	uint64_t max_bytes;           /* the bound */
	uint64_t chunks;              /* chunks held now */
	uint64_t hits, misses, evictions;
};

/* A cache holding at most `max_bytes` (> 0) of chunk bytes; -ENOMEM. */
int dd_chunkcache_new(struct dd_chunkcache **out, size_t max_bytes);
void dd_chunkcache_free(struct dd_chunkcache *c);

/*
 * The bytes of chunk `id`, or NULL when not held (counted as a miss). A
 * hit becomes the most recently used. The pointer is borrowed: valid until
 * the next dd_chunkcache_put() or dd_chunkcache_free().
 */
const uint8_t *dd_chunkcache_get(struct dd_chunkcache *c,
				 const struct dd_id *id, size_t *len);

/* Whether chunk `id` is held; changes neither recency nor counters. */
bool dd_chunkcache_has(const struct dd_chunkcache *c, const struct dd_id *id);

/*
 * Keeps a copy of `len` bytes as chunk `id` (already verified by the
 * caller), evicting the least recently used chunks to stay within the
 * bound. A chunk already held or larger than the bound is not stored (0).
 * -ENOMEM leaves the cache as it was, minus what was evicted.
 */
int dd_chunkcache_put(struct dd_chunkcache *c, const struct dd_id *id,
		      const void *data, size_t len);

void dd_chunkcache_get_stats(const struct dd_chunkcache *c,
			     struct dd_chunkcache_stats *out);

#endif
