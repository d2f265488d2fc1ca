/*
 * test_chunker.c - FastCDC cut points: agreement with a plain reference
 * written from docs/FORMAT.md, pinned values, bounds, tails, boundary
 * resynchronisation after an insertion, and the average size. Data comes
 * from a seeded PRNG so every run sees the same bytes.
 */
#include <errno.h>
#include <stdlib.h>

#include "chunker.h"
#include "hash.h"
#include "unit.h"
#include "util.h"

static uint64_t xs_state;

static uint64_t xs_next(void)
{
	xs_state ^= xs_state << 13;
	xs_state ^= xs_state >> 7;
	xs_state ^= xs_state << 17;
	return xs_state;
}

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n);
	size_t i;

	xs_state = seed ? seed : 1;
	for (i = 0; i < n; i++) {
		if (i % 8 == 0)
			xs_next();
		p[i] = (uint8_t)(xs_state >> (8 * (i % 8)));
	}
	return p;
}

/* The format's description, byte by byte, independent of chunker.c. */
static size_t ref_cut(const struct dd_chunker_params *p, const uint8_t *d,
		      size_t len)
{
	uint64_t gear[256], st = p->seed, h = 0, ms, ml;
	unsigned b = 0;
	size_t i, end;

	for (i = 0; i < 256; i++) {
		uint64_t z = (st += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		gear[i] = z ^ (z >> 31);
	}
	while ((1u << b) < p->avg_size)
		b++;
	ms = ~0ull << (64 - (b + 2));
	ml = ~0ull << (64 - (b - 2));
	if (len <= p->min_size)
		return len;
	end = len < p->max_size ? len : p->max_size;
	for (i = p->min_size; i < end; i++) {
		h = (h << 1) + gear[d[i]];
		if (!(h & (i < p->avg_size ? ms : ml)))
			return i + 1;
	}
	return end;
}

static const struct dd_chunker_params small = {
	.min_size = 2048, .avg_size = 8192, .max_size = 32768, .seed = 7,
};

/* Cuts all of data (windows of at most max_size, as a streaming caller
 * would pass) into lens[]; returns the count. */
static size_t cut_all(const struct dd_chunker *c, const uint8_t *d, size_t n,
		      size_t *lens, size_t maxn)
{
	size_t off = 0, k = 0;

	while (off < n && k < maxn) {
		size_t win = n - off > c->params.max_size ?
			     c->params.max_size : n - off;
		size_t l = dd_chunker_cut(c, d + off, win);

		lens[k++] = l;
		off += l;
	}
	return k;
}

static void test_params(void)
{
	struct dd_chunker_params p;
	struct dd_chunker c;

	dd_chunker_params_default(&p);
	CHECK_EQ(p.min_size, 64 * 1024);
	CHECK_EQ(p.avg_size, 256 * 1024);
	CHECK_EQ(p.max_size, 1024 * 1024);
	CHECK_EQ(p.seed, 0);
	CHECK_EQ(dd_chunker_params_check(&p), 0);
	CHECK_EQ(dd_chunker_init(&c, &p), 0);
	/* b = 18: top 20 bits below avg, top 16 bits from avg on */
	CHECK(c.mask_small == 0xfffff00000000000ull);
	CHECK(c.mask_large == 0xffff000000000000ull);
	/* splitmix64 seeded with 0: its well-known first outputs */
	CHECK(c.gear[0] == 0xe220a8397b1dcdafull);
	CHECK(c.gear[1] == 0x6e789e6aa1b965f4ull);

	p.avg_size = 3u << 19;
	CHECK_EQ(dd_chunker_params_check(&p), -EINVAL);
	CHECK_EQ(dd_chunker_init(&c, &p), -EINVAL);
	dd_chunker_params_default(&p);
	p.min_size = 63;
	CHECK_EQ(dd_chunker_params_check(&p), -EINVAL);
	dd_chunker_params_default(&p);
	p.min_size = p.avg_size;
	CHECK_EQ(dd_chunker_params_check(&p), -EINVAL);
	dd_chunker_params_default(&p);
	p.max_size = p.avg_size;
	CHECK_EQ(dd_chunker_params_check(&p), -EINVAL);
	dd_chunker_params_default(&p);
	p.max_size = DD_CHUNK_SIZE_LIMIT + 1;
	CHECK_EQ(dd_chunker_params_check(&p), -EINVAL);
	p.max_size = DD_CHUNK_SIZE_LIMIT;
	CHECK_EQ(dd_chunker_params_check(&p), 0);
	p.min_size = 64;
	p.avg_size = 128;
	p.max_size = 129;
	CHECK_EQ(dd_chunker_params_check(&p), 0);
}

static void test_reference(void)
{
	static const struct dd_chunker_params cases[] = {
		{ 2048, 8192, 32768, 7 },
		{ 64, 128, 1000, 0 },
		{ 4096, 16384, 16385, 0xdeadbeefull },
		{ 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 42 },
	};
	size_t n = 12u << 20, k;
	uint8_t *d = random_bytes(n, 99);
	struct dd_chunker c;

	for (k = 0; k < DD_ARRAY_SIZE(cases); k++) {
		size_t off = 0, bad = 0, count = 0;

		CHECK_EQ(dd_chunker_init(&c, &cases[k]), 0);
		while (off < n) {
			size_t l = dd_chunker_cut(&c, d + off, n - off);

			if (l != ref_cut(&cases[k], d + off, n - off))
				bad++;
			off += l;
			count++;
		}
		CHECK_EQ(bad, 0);
		CHECK(count > 1);
	}
	free(d);
}

/* Pins the cut points of a fixed input: a change here means existing
 * repositories stop deduplicating against new backups. */
static void test_pinned(void)
{
	static const size_t want[] = { 8299, 18495, 8352, 12407, 9494, 8432,
				       8953, 13117, 9539, 8302 };
	size_t lens[10];
	uint8_t *d = random_bytes(1 << 20, 12345);
	struct dd_chunker c;
	size_t k, n;

	CHECK_EQ(dd_chunker_init(&c, &small), 0);
	n = cut_all(&c, d, 1 << 20, lens, 10);
	CHECK_EQ(n, 10);
	for (k = 0; k < n; k++) {
		if (lens[k] != want[k])
			fprintf(stderr, "cut %zu: %zu (pinned %zu)\n", k, lens[k],
				want[k]);
		CHECK_EQ(lens[k], want[k]);
	}
	free(d);
}

static void test_bounds_and_determinism(void)
{
	size_t n = 4u << 20, maxn = n / 2048 + 2, k, k2, total = 0;
	size_t out_of_bounds = 0;
	size_t *a = malloc(maxn * sizeof(*a)), *b = malloc(maxn * sizeof(*b));
	uint8_t *d = random_bytes(n, 5);
	struct dd_chunker c, c2;

	CHECK_EQ(dd_chunker_init(&c, &small), 0);
	CHECK_EQ(dd_chunker_init(&c2, &small), 0);
	k = cut_all(&c, d, n, a, maxn);
	k2 = cut_all(&c2, d, n, b, maxn);
	CHECK_EQ(k, k2);
	CHECK(memcmp(a, b, k * sizeof(*a)) == 0);
	for (size_t i = 0; i < k; i++) {
		total += a[i];
		if (i + 1 < k && (a[i] <= small.min_size ||
				  a[i] > small.max_size))
			out_of_bounds++;
	}
	CHECK_EQ(out_of_bounds, 0);
	CHECK_EQ(total, n);
	CHECK(k > 100);

	/* A window longer than max_size changes nothing. */
	CHECK_EQ(dd_chunker_cut(&c, d, n), a[0]);

	/* All-zero input never matches (gear[0] repeats): forced cuts. */
	memset(d, 0, small.max_size * 2);
	CHECK_EQ(dd_chunker_cut(&c, d, small.max_size * 2), small.max_size);
	free(a);
	free(b);
	free(d);
}

static void test_tails(void)
{
	uint8_t *d = random_bytes(small.max_size, 77);
	struct dd_chunker c;
	size_t l;

	CHECK_EQ(dd_chunker_init(&c, &small), 0);
	CHECK_EQ(dd_chunker_cut(&c, d, 0), 0);
	CHECK_EQ(dd_chunker_cut(&c, d, 1), 1);
	CHECK_EQ(dd_chunker_cut(&c, d, small.min_size), small.min_size);
	/* a tail between min and max is cut where the hash says, or whole */
	l = dd_chunker_cut(&c, d, small.min_size + 100);
	CHECK(l > small.min_size && l <= small.min_size + 100);
	l = dd_chunker_cut(&c, d, small.max_size - 1);
	CHECK(l > small.min_size && l <= small.max_size - 1);
	free(d);
}

/* Chunk ids of data, sorted for lookup. */
static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, DD_ID_LEN);
}

static size_t chunk_ids(const struct dd_chunker *c, const uint8_t *d, size_t n,
			struct dd_id *ids, size_t maxn)
{
	size_t off = 0, k = 0;

	while (off < n && k < maxn) {
		size_t l = dd_chunker_cut(c, d + off, n - off);

		dd_sha256(&ids[k++], d + off, l);
		off += l;
	}
	return k;
}

static void test_resync(void)
{
	size_t n = 8u << 20, maxn = n / 2048 + 8, ka, kb, shared = 0, i;
	uint8_t *a = random_bytes(n, 2024), *b = malloc(n + 100);
	struct dd_id *ia = malloc(maxn * sizeof(*ia));
	struct dd_id *ib = malloc(maxn * sizeof(*ib));
	struct dd_chunker c;

	/* b = a with 100 bytes inserted in the middle */
	memcpy(b, a, n / 2);
	memset(b + n / 2, 0x5a, 100);
	memcpy(b + n / 2 + 100, a + n / 2, n - n / 2);
	CHECK_EQ(dd_chunker_init(&c, &small), 0);
	ka = chunk_ids(&c, a, n, ia, maxn);
	kb = chunk_ids(&c, b, n + 100, ib, maxn);
	qsort(ia, ka, sizeof(*ia), cmp_id);
	for (i = 0; i < kb; i++)
		if (bsearch(&ib[i], ia, ka, sizeof(*ia), cmp_id))
			shared++;
	/* Only the chunks around the edit differ. */
	CHECK(kb - shared <= 4);
	CHECK(shared + 4 >= ka);
	free(a);
	free(b);
	free(ia);
	free(ib);
}

static void test_average(void)
{
	size_t n = 16u << 20, maxn = n / 2048 + 2, k;
	size_t *lens = malloc(maxn * sizeof(*lens));
	uint8_t *d = random_bytes(n, 31337);
	struct dd_chunker_params p;
	struct dd_chunker c;
	double mean;

	CHECK_EQ(dd_chunker_init(&c, &small), 0);
	k = cut_all(&c, d, n, lens, maxn);
	mean = (double)n / (double)k;
	fprintf(stderr, "small params: %zu chunks, mean %.0f (avg %u)\n", k,
		mean, small.avg_size);
	CHECK(mean > 0.8 * small.avg_size && mean < 1.4 * small.avg_size);

	/* the defaults, over 64 MiB: about 220 chunks */
	free(d);
	n = 64u << 20;
	d = random_bytes(n, 4242);
	dd_chunker_params_default(&p);
	p.seed = 0x0123456789abcdefull;
	CHECK_EQ(dd_chunker_init(&c, &p), 0);
	k = cut_all(&c, d, n, lens, maxn);
	mean = (double)n / (double)k;
	fprintf(stderr, "default params: %zu chunks, mean %.0f (avg %u)\n", k,
		mean, p.avg_size);
	CHECK(mean > 0.75 * p.avg_size && mean < 1.5 * p.avg_size);
	free(lens);
	free(d);
}

static void test_seed_matters(void)
{
	struct dd_chunker_params p = small;
	size_t n = 1 << 20, la[64], lb[64], ka, kb;
	uint8_t *d = random_bytes(n, 8);
	struct dd_chunker c;

	CHECK_EQ(dd_chunker_init(&c, &p), 0);
	ka = cut_all(&c, d, n, la, 64);
	p.seed = 8;
	CHECK_EQ(dd_chunker_init(&c, &p), 0);
	kb = cut_all(&c, d, n, lb, 64);
	CHECK(ka != kb || memcmp(la, lb, ka * sizeof(*la)) != 0);
	free(d);
}

int main(void)
{
	UNIT_RUN(test_params);
	UNIT_RUN(test_reference);
	UNIT_RUN(test_pinned);
	UNIT_RUN(test_bounds_and_determinism);
	UNIT_RUN(test_tails);
	UNIT_RUN(test_resync);
	UNIT_RUN(test_average);
	UNIT_RUN(test_seed_matters);
	UNIT_DONE();
}
