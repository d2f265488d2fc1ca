/* test_store_many.c - store_lookup_many (server/store/store_index.c): many
 * ids looked up in one pass over the index in key order answer exactly
 * what store_lookup answers for each, whatever the order and repeats of
 * the query, for ids that share their first 8 bytes (the radix sort's
 * ties), absent ids between present ones, and both ways of moving over
 * the index (stepping when the query is dense, seeking when sparse). Links
 * the server's objects. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "unit.h"
#include "compress.h"
#include "pack.h"
#include "store.h"
#include "util.h"

static char dir[] = "/tmp/dedup-store-many.XXXXXX";

/* id number k: random-looking bytes; k >= 1000000 share their first 8
 * bytes (a run of ties), differing only in the last one */
static void make_id(struct dd_id *id, uint32_t k)
{
	uint64_t x = k * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < DD_ID_LEN; i++) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ull;
		id->b[i] = (uint8_t)(x >> 56);
	}
	if (k >= 1000000) {
		memset(id->b, 0x5a, 8);
		id->b[DD_ID_LEN - 1] = (uint8_t)(k - 1000000);
	}
}

/* Stores ids k for which present(k), with k + 1 plain bytes each. */
static void fill(struct store *st, uint32_t from, uint32_t to,
		 bool (*present)(uint32_t))
{
	static uint8_t data[4096];
	struct dd_bundle_record rec;
	uint32_t stored, dups;

	for (uint32_t k = from; k < to; k++) {
		if (!present(k))
			continue;
		memset(&rec, 0, sizeof(rec));
		make_id(&rec.id, k);
		rec.flags = DD_COMP_NONE;
		rec.plain_len = rec.stored_len = k % 4000 + 1;
		rec.data = data;
		CHECK_EQ(store_ingest(st, NULL, &rec, 1, &stored, &dups), 0);
	}
}

static bool even(uint32_t k) { return k % 2 == 0; }

/* Looks up ids[0..n) both ways and compares every answer. */
static void compare(struct store *st, const struct dd_id *ids, size_t n,
		    size_t *found)
{
	struct dd_chunk_loc *locs = calloc(n, sizeof(*locs)), one;
	int *rcs = calloc(n, sizeof(*rcs)), rc;
	size_t bad = 0;

	*found = 0;
	CHECK(locs && rcs);
	if (!locs || !rcs)
		goto out;
	CHECK_EQ(store_lookup_many(st, ids, n, locs, rcs), 0);
	for (size_t i = 0; i < n; i++) {
		memset(&one, 0, sizeof(one));
		rc = store_lookup(st, &ids[i], &one);
		if (rc != rcs[i] ||
		    (rc == 0 && (one.pack_seq != locs[i].pack_seq ||
				 one.offset != locs[i].offset ||
				 one.plain_len != locs[i].plain_len ||
				 one.stored_len != locs[i].stored_len)))
			bad++;
		if (rcs[i] == 0)
			(*found)++;
	}
	CHECK_EQ(bad, 0);
out:
	free(locs);
	free(rcs);
}

static void shuffle(struct dd_id *ids, size_t n, unsigned seed)
{
	srand(seed);
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		struct dd_id t = ids[i];

		ids[i] = ids[j];
		ids[j] = t;
	}
}

static struct store *st;

/* Every even id of 0..4000 stored, plus 50 of a run of ties: the whole
 * range asked (dense: the lookup steps), in a shuffled order, with
 * repeats. */
static void test_dense(void)
{
	size_t n = 0, found;
	struct dd_id *ids = malloc(9000 * sizeof(*ids));

	if (!ids)
		return;
	for (uint32_t k = 0; k < 4000; k++)
		make_id(&ids[n++], k);
	for (uint32_t k = 1000000; k < 1000100; k++)
		make_id(&ids[n++], k);
	for (uint32_t k = 0; k < 500; k += 7)
		make_id(&ids[n++], k);          /* repeats */
	shuffle(ids, n, 1);
	compare(st, ids, n, &found);
	/* 2000 even ids, 50 ties, and the even repeats among 0, 7, ..., 497 */
	CHECK_EQ(found, 2000 + 50 + 36);
	free(ids);
}

/* A few ids against the whole index (sparse: the lookup seeks). */
static void test_sparse(void)
{
	struct dd_id ids[12];
	uint32_t ks[12] = { 3998, 2, 1000098, 1000001, 5, 3999, 0, 77, 1000000,
			    1000099, 2, 123456 };
	size_t found;

	for (size_t i = 0; i < 12; i++)
		make_id(&ids[i], ks[i]);
	compare(st, ids, 12, &found);
	CHECK_EQ(found, 6);       /* 3998, 2, 1000098, 0, 1000000, 2 again */
}

/* Nothing asked: nothing done. */
static void test_empty(void)
{
	CHECK_EQ(store_lookup_many(st, NULL, 0, NULL, NULL), 0);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (store_open(&st, dir) < 0) {
		fprintf(stderr, "store_open: %s\n", dd_error_last());
		return 1;
	}
	fill(st, 0, 4000, even);
	fill(st, 1000000, 1000100, even);
	UNIT_RUN(test_dense);
	UNIT_RUN(test_sparse);
	UNIT_RUN(test_empty);
	store_close(st);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	UNIT_DONE();
}
