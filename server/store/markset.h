/*
 * markset.h - the garbage collector's mark set: a blocked bloom filter of
 * the chunk ids the snapshots use, whose memory is fixed when it is made
 * (server/repo/gc.c; docs/OPERATIONS.md, "Garbage collection").
 *
 * markset_has() never answers false for an id that was added (no false
 * negatives: a live chunk is never judged dead). It answers true for an id
 * that was not added with a small probability (a false positive: that dead
 * chunk is kept by this collection). With MARKSET_BITS_PER_ID bits an id
 * and MARKSET_HASHES bits set in one 512-bit block, the rate is about
 * 0.1%; a filter capped below that size has a higher rate
 * (markset_fp_rate() says which). The seed picks the hash functions: a
 * new one each collection keeps a dead chunk from being a false positive
 * run after run.
 *
 * Not thread-safe: the owner locks.
 */
#ifndef SRV_MARKSET_H
#define SRV_MARKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hash.h"

#define MARKSET_BITS_PER_ID 16
#define MARKSET_HASHES 11
#define MARKSET_MIN_BYTES (64u * 1024)
/* The default cap: 134 million ids at full precision. */
#define MARKSET_DEFAULT_MAX (256u * 1024 * 1024)

struct markset;

/*
 * A filter for about `expect` ids: MARKSET_BITS_PER_ID bits each, at least
 * MARKSET_MIN_BYTES and at most max_bytes (0: MARKSET_DEFAULT_MAX; a cap
 * below one block is raised to one block). -ENOMEM.
 */
int markset_new(struct markset **out, uint64_t expect, size_t max_bytes,
		uint64_t seed);
void markset_free(struct markset *m);
/* Adds id; true when it was surely not there (a bit was clear). */
bool markset_add(struct markset *m, const struct dd_id *id);
bool markset_has(const struct markset *m, const struct dd_id *id);
/* Ids added that were not there yet: the distinct ids added, less those
 * that were false positives when added (an estimate, low by about the
 * false-positive rate). */
uint64_t markset_count(const struct markset *m);
/* The filter's memory, in bytes (fixed at markset_new). */
size_t markset_bytes(const struct markset *m);
/* The false-positive rate of the filter as it is now (0..1): the chance
 * that an id not added is reported present. One pass over the filter. */
double markset_fp_rate(const struct markset *m);

#endif
