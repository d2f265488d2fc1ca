/*
 * markset.c - see markset.h.
 *
 * A blocked bloom filter: an id picks one 64-byte block (one cache line),
 * and its MARKSET_HASHES bits all lie in that block, so an add or a test
 * costs one cache miss, not one a bit. Ids are SHA-256 digests, already
 * uniform: the seed is mixed in so that each collection uses different
 * bits, not to spread bad keys.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "markset.h"

_Static_assert(MARKSET_HASHES <= 14, "two 64-bit words give 14 positions");

#define MARKSET_BLOCK_WORDS 8          /* 512 bits */
#define MARKSET_BLOCK_BYTES (MARKSET_BLOCK_WORDS * 8)

#define MARKSET_HUGE (2u * 1024 * 1024)

struct markset {
	uint64_t *bits;
	size_t map_len;             /* bits is a mapping of this length */
	uint64_t nblocks;
	uint64_t seed;
	uint64_t count;
};

/* splitmix64's finaliser: every output bit depends on every input bit. */
static uint64_t markset_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The block of id and the 9-bit positions of its bits inside it, taken
 * from two words of id mixed with the seed (128 bits: 14 positions). */
struct markset_pos {
	uint64_t *block;
	uint64_t lo, hi;
};

static struct markset_pos markset_pos(const struct markset *m,
				      const struct dd_id *id)
{
	struct markset_pos p;
	uint64_t w[3], h;

	memcpy(w, id->b, sizeof(w));
	h = markset_mix(w[0] ^ m->seed);
	/* h * nblocks / 2^64: uniform over any block count */
	p.block = m->bits + MARKSET_BLOCK_WORDS *
		(uint64_t)(((unsigned __int128)h * m->nblocks) >> 64);
	p.lo = markset_mix(w[1] ^ (m->seed * 0x9e3779b97f4a7c15ull));
	p.hi = markset_mix(w[2] ^ (m->seed * 0xc2b2ae3d27d4eb4full));
	return p;
}

/* The i-th position (i < MARKSET_HASHES <= 14). */
static unsigned markset_bit(const struct markset_pos *p, unsigned i)
{
	return i < 7 ? (unsigned)(p->lo >> (9 * i)) & 511 :
		       (unsigned)(p->hi >> (9 * (i - 7))) & 511;
}

/*
 * Zeroed pages, backed only where a bit is set (a read elsewhere sees the
 * shared zero page). Every test lands in a random block, so with 4 KiB
 * pages nearly every one misses the TLB: huge pages are asked for (a
 * hint; transparent huge pages in "madvise" or "always" mode grant it).
 */
static int markset_map(struct markset *m, uint64_t bytes)
{
	size_t len = (size_t)((bytes + MARKSET_HUGE - 1) / MARKSET_HUGE *
			      MARKSET_HUGE);
	void *p;

	if (bytes < MARKSET_HUGE) {
		m->bits = calloc(1, (size_t)bytes);
		return m->bits ? 0 : -ENOMEM;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, len, MADV_HUGEPAGE);   /* a hint: fine if refused */
#endif
	m->bits = p;
	m->map_len = len;
	return 0;
}

int markset_new(struct markset **out, uint64_t expect, size_t max_bytes,
		uint64_t seed)
{
	struct markset *m;
	uint64_t bytes = expect > UINT64_MAX / MARKSET_BITS_PER_ID ?
		UINT64_MAX : expect * MARKSET_BITS_PER_ID / 8;

	*out = NULL;
	if (max_bytes == 0)
		max_bytes = MARKSET_DEFAULT_MAX;
	if (bytes < MARKSET_MIN_BYTES)
		bytes = MARKSET_MIN_BYTES;
	if (bytes > max_bytes)
		bytes = max_bytes;
	if (bytes < MARKSET_BLOCK_BYTES)
		bytes = MARKSET_BLOCK_BYTES;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nblocks = bytes / MARKSET_BLOCK_BYTES;
	m->seed = seed;
	if (markset_map(m, bytes) < 0) {
		free(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

void markset_free(struct markset *m)
{
	if (!m)
		return;
	if (m->map_len)
		munmap(m->bits, m->map_len);
	else
		free(m->bits);
	free(m);
}

bool markset_add(struct markset *m, const struct dd_id *id)
{
	struct markset_pos p = markset_pos(m, id);
	bool fresh = false;
	unsigned i;

	for (i = 0; i < MARKSET_HASHES; i++) {
		unsigned b = markset_bit(&p, i);
		uint64_t bit = 1ull << (b & 63);

		if (!(p.block[b >> 6] & bit)) {
			p.block[b >> 6] |= bit;
			fresh = true;
		}
	}
	if (fresh)
		m->count++;
	return fresh;
}

bool markset_has(const struct markset *m, const struct dd_id *id)
{
	struct markset_pos p;
	unsigned i, b;

	if (!m->count)
		return false;       /* nothing marked: no need to look */
	p = markset_pos(m, id);
	for (i = 0; i < MARKSET_HASHES; i++) {
		b = markset_bit(&p, i);
		if (!(p.block[b >> 6] & (1ull << (b & 63))))
			return false;
	}
	return true;
}

uint64_t markset_count(const struct markset *m)
{
	return m->count;
}

size_t markset_bytes(const struct markset *m)
{
	return sizeof(*m) + m->nblocks * MARKSET_BLOCK_BYTES;
}

/*
 * The chance that an id never added finds all its bits set: the mean over
 * the blocks of (bits set / 512)^MARKSET_HASHES. Read off the filter itself
 * (one pass over it), so it also holds for a filter capped too small.
 */
double markset_fp_rate(const struct markset *m)
{
	double sum = 0;
	uint64_t i;

	for (i = 0; i < m->nblocks; i++) {
		const uint64_t *w = m->bits + i * MARKSET_BLOCK_WORDS;
		double fill = 0, p = 1;
		unsigned j;

		for (j = 0; j < MARKSET_BLOCK_WORDS; j++)
			fill += __builtin_popcountll(w[j]);
		fill /= 512;
		for (j = 0; j < MARKSET_HASHES; j++)
			p *= fill;
		sum += p;
	}
	return sum / (double)m->nblocks;
}
