/*
 * hash.h - chunk ids. A chunk id is the SHA-256 of the chunk's plain
 * (uncompressed) bytes; ids are compared as 32 raw bytes and printed as 64
 * lowercase hex digits.
 */
#ifndef DD_HASH_H
#define DD_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#define DD_ID_LEN 32
#define DD_ID_HEX_LEN 64

struct dd_id {
	uint8_t b[DD_ID_LEN];
};

void dd_sha256(struct dd_id *out, const void *data, size_t len);

/* One chunk of a batch: its bytes, and where its id goes. */
struct dd_sha256_job {
	const void *data;
	size_t len;
	struct dd_id *out;
};
/*
 * The ids of n chunks, exactly dd_sha256's: where the CPU has SHA
 * extensions two chunks are hashed side by side on this thread, about a
 * third faster than one at a time (sha256x.c); else one after the other.
 * Each job's `out` is its own and overlaps no job's data.
 */
void dd_sha256_batch(const struct dd_sha256_job *jobs, size_t n);

/* Incremental SHA-256 (wraps an OpenSSL EVP_MD_CTX). */
struct dd_sha256_ctx;
struct dd_sha256_ctx *dd_sha256_new(void);
void dd_sha256_update(struct dd_sha256_ctx *c, const void *p, size_t n);
void dd_sha256_final(struct dd_sha256_ctx *c, struct dd_id *out); /* resets */
void dd_sha256_free(struct dd_sha256_ctx *c);

static inline bool dd_id_eq(const struct dd_id *a, const struct dd_id *b)
{
	return memcmp(a->b, b->b, DD_ID_LEN) == 0;
}
/* out must hold DD_ID_HEX_LEN + 1 bytes. */
void dd_id_to_hex(char *out, const struct dd_id *id);
/* Exactly 64 hex digits; -EINVAL otherwise. */
int dd_id_from_hex(struct dd_id *out, const char *hex);
/* Verifies that `data` hashes to `id`; -EBADMSG if not. */
int dd_id_verify(const struct dd_id *id, const void *data, size_t len);
/* Sorts ids[0..n) and moves each id once to the front: the count kept. */
size_t dd_ids_sort_unique(struct dd_id *ids, size_t n);

#endif
