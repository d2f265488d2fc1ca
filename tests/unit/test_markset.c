/* test_markset.c - the garbage collector's mark set (server/store/
 * markset.c): no id added is ever reported absent, over millions of ids;
 * the false-positive rate stays within its bound at the full size and is
 * what markset_fp_rate() says when capped; the size follows the expected
 * count within its floor and cap; another seed gives other false
 * positives, so a dead chunk kept by one collection is freed by a later
 * one. The server's sources are compiled in: the unit tests link only
 * libdedup. */
#include "unit.h"
#include "fixtures.h"
#include "../../server/store/markset.c"

#define make_id fixture_id

static void add_range(struct markset *m, uint64_t from, uint64_t to)
{
	struct dd_id id;

	for (; from < to; from++) {
		make_id(&id, from);
		markset_add(m, &id);
	}
}

static uint64_t count_has(const struct markset *m, uint64_t from,
			  uint64_t to)
{
	struct dd_id id;
	uint64_t n = 0;

	for (; from < to; from++) {
		make_id(&id, from);
		n += markset_has(m, &id);
	}
	return n;
}

#define N_IDS 4000000ull

/* Full size: 4 million ids, none lost, under 0.2% false positives. */
static void test_full_size(void)
{
	struct markset *m = NULL;
	uint64_t fp;
	double rate, est;

	CHECK_EQ(markset_new(&m, N_IDS, 0, 7), 0);
	CHECK_EQ(markset_bytes(m) - sizeof(*m), N_IDS * MARKSET_BITS_PER_ID / 8);
	add_range(m, 0, N_IDS);
	CHECK_EQ(count_has(m, 0, N_IDS), N_IDS);
	fp = count_has(m, N_IDS, 2 * N_IDS);
	rate = (double)fp / N_IDS;
	est = markset_fp_rate(m);
	printf("# %llu ids in %zu bytes: %llu false positives in %llu "
	       "(%.4f%%, estimated %.4f%%), count %llu\n",
	       (unsigned long long)N_IDS, markset_bytes(m),
	       (unsigned long long)fp, (unsigned long long)N_IDS,
	       100 * rate, 100 * est,
	       (unsigned long long)markset_count(m));
	CHECK(rate < 0.002);
	CHECK(est < 0.002);
	CHECK(rate < 1.5 * est && est < 1.5 * rate);
	/* the count: distinct adds less the few false positives at add */
	CHECK(markset_count(m) <= N_IDS);
	CHECK(markset_count(m) > N_IDS - N_IDS / 500);
	/* adding again changes nothing */
	CHECK(!markset_add(m, &(struct dd_id){ { 0 } }) ||
	      markset_has(m, &(struct dd_id){ { 0 } }));
	markset_free(m);
}

/* Capped far below the ids it holds: false positives are frequent, but
 * still no id added is reported absent, and the estimate holds. */
static void test_capped(void)
{
	struct markset *m = NULL;
	uint64_t n = 1000000, fp;
	double rate, est;

	CHECK_EQ(markset_new(&m, n, 256 * 1024, 3), 0);
	CHECK_EQ(markset_bytes(m) - sizeof(*m), 256 * 1024);
	add_range(m, 0, n);
	CHECK_EQ(count_has(m, 0, n), n);
	fp = count_has(m, n, 2 * n);
	rate = (double)fp / n;
	est = markset_fp_rate(m);
	printf("# capped: %llu ids in %zu bytes: %.2f%% false positives "
	       "(estimated %.2f%%)\n", (unsigned long long)n,
	       markset_bytes(m), 100 * rate, 100 * est);
	CHECK(rate > 0.05);
	CHECK(rate < 1.2 * est && est < 1.2 * rate);
	markset_free(m);
}

/* The size: a floor for small repositories, the cap, one block at
 * least. */
static void test_sizing(void)
{
	struct markset *m = NULL;

	CHECK_EQ(markset_new(&m, 0, 0, 1), 0);
	CHECK_EQ(markset_bytes(m) - sizeof(*m), MARKSET_MIN_BYTES);
	CHECK(!count_has(m, 0, 1000));
	CHECK(markset_fp_rate(m) == 0);
	markset_free(m);
	CHECK_EQ(markset_new(&m, 50000000000ull, 0, 1), 0);
	CHECK_EQ(markset_bytes(m) - sizeof(*m), MARKSET_DEFAULT_MAX);
	markset_free(m);
	CHECK_EQ(markset_new(&m, 1000, 1, 1), 0);
	CHECK_EQ(markset_bytes(m) - sizeof(*m), 64);
	add_range(m, 0, 1000);
	CHECK_EQ(count_has(m, 0, 1000), 1000);
	markset_free(m);
	markset_free(NULL);
}

/* Two seeds: the ids that are false positives under both are about the
 * product of the rates, so what one run keeps by mistake the next frees. */
static void test_seeds(void)
{
	struct markset *a = NULL, *b = NULL;
	uint64_t n = 200000, i, fa = 0, both = 0;
	struct dd_id id;

	/* 6.5 bits an id: a few percent of false positives */
	CHECK_EQ(markset_new(&a, n, 160 * 1024, 11), 0);
	CHECK_EQ(markset_new(&b, n, 160 * 1024, 12), 0);
	add_range(a, 0, n);
	add_range(b, 0, n);
	for (i = n; i < 2 * n; i++) {
		make_id(&id, i);
		if (markset_has(a, &id)) {
			fa++;
			both += markset_has(b, &id);
		}
	}
	printf("# seeds: %llu false positives under one, %llu under both\n",
	       (unsigned long long)fa, (unsigned long long)both);
	CHECK(fa > n / 50);
	CHECK(both < fa / 4);
	markset_free(a);
	markset_free(b);
}

int main(void)
{
	UNIT_RUN(test_full_size);
	UNIT_RUN(test_capped);
	UNIT_RUN(test_sizing);
	UNIT_RUN(test_seeds);
	UNIT_DONE();
}
