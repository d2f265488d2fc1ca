/*
 * chunker.h - FastCDC content-defined chunking with normalised chunking
 * (two masks) and a gear table derived from a per-repository seed.
 *
 * The parameters belong to the repository: the server publishes them and
 * every agent cuts with them, otherwise cross-client dedup silently fails.
 * The chunker is stateless between calls: the caller hands it a window that
 * starts at the beginning of a chunk and gets back the chunk's length.
 */
#ifndef DD_CHUNKER_H
#define DD_CHUNKER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Hard limit on any chunk of any repository (wire and pack formats). */
#define DD_CHUNK_SIZE_LIMIT (16u * 1024 * 1024)

struct dd_chunker_params {
	uint32_t min_size;   /* no cut before this many bytes */
	uint32_t avg_size;   /* normal size, a power of two */
	uint32_t max_size;   /* forced cut here */
	uint64_t seed;       /* gear table seed */
};

/* The defaults `dedup-server init` writes (see docs/FORMAT.md). */
void dd_chunker_params_default(struct dd_chunker_params *p);
/* 64 <= min < avg < max <= DD_CHUNK_SIZE_LIMIT, avg a power of two;
 * -EINVAL with a reason otherwise. */
int dd_chunker_params_check(const struct dd_chunker_params *p);

struct dd_chunker {
	struct dd_chunker_params params;
	uint64_t mask_small;     /* used below avg_size: harder to match */
	uint64_t mask_large;     /* used from avg_size on: easier to match */
	uint64_t gear[256];
};

/* Derives masks and the gear table (splitmix64 of the seed). */
int dd_chunker_init(struct dd_chunker *c, const struct dd_chunker_params *p);

/*
 * Returns the length of the chunk that starts at data[0]: a value in
 * [1, len]. The caller must pass len >= max_size unless the window reaches
 * the end of the input (eof); at eof a tail shorter than min_size is one
 * chunk. len == 0 returns 0.
 */
size_t dd_chunker_cut(const struct dd_chunker *c, const uint8_t *data,
		      size_t len);

#endif
