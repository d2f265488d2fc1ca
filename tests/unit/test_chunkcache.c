/*
 * test_chunkcache.c - the mount's chunk cache: hits return the bytes put,
 * the bound is never exceeded, the least recently used chunk goes first.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkcache.h"
#include "hash.h"
#include "unit.h"

static void make_chunk(uint8_t *buf, size_t len, unsigned seed, struct dd_id *id)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31u + i * 7u);
	dd_sha256(id, buf, len);
}

static void test_hit_and_miss(void)
{
	struct dd_chunkcache *c;
	struct dd_chunkcache_stats st;
	uint8_t buf[1000];
	struct dd_id id, other;
	const uint8_t *p;
	size_t len = 0;

	CHECK_EQ(dd_chunkcache_new(&c, 4096), 0);
	make_chunk(buf, sizeof(buf), 1, &id);
	make_chunk(buf, 10, 2, &other);
	make_chunk(buf, sizeof(buf), 1, &id);
	CHECK(dd_chunkcache_get(c, &id, &len) == NULL);
	CHECK_EQ(dd_chunkcache_put(c, &id, buf, sizeof(buf)), 0);
	p = dd_chunkcache_get(c, &id, &len);
	CHECK(p != NULL);
	CHECK_EQ(len, sizeof(buf));
	CHECK(p && memcmp(p, buf, sizeof(buf)) == 0);
	CHECK(dd_chunkcache_get(c, &other, &len) == NULL);
	CHECK(dd_chunkcache_has(c, &id));
	CHECK(!dd_chunkcache_has(c, &other));
	/* a second put of the same id changes nothing */
	CHECK_EQ(dd_chunkcache_put(c, &id, buf, sizeof(buf)), 0);
	dd_chunkcache_get_stats(c, &st);
	CHECK_EQ(st.chunks, 1);
	CHECK_EQ(st.bytes, sizeof(buf) + DD_CHUNKCACHE_NODE_COST);
	CHECK_EQ(st.hits, 1);
	CHECK_EQ(st.misses, 2);
	dd_chunkcache_free(c);
	dd_chunkcache_free(NULL);
}

static void test_bound_and_lru(void)
{
	enum { N = 200, LEN = 1000,
	       BOUND = 10 * (1000 + DD_CHUNKCACHE_NODE_COST) + 50 };
	struct dd_chunkcache *c;
	struct dd_chunkcache_stats st;
	static uint8_t buf[LEN];
	struct dd_id ids[N];
	size_t len;
	bool over = false;

	CHECK_EQ(dd_chunkcache_new(&c, BOUND), 0);
	for (unsigned i = 0; i < N; i++) {
		make_chunk(buf, LEN, i, &ids[i]);
		CHECK_EQ(dd_chunkcache_put(c, &ids[i], buf, LEN), 0);
		/* keep chunk 0 recently used: it must survive */
		CHECK(dd_chunkcache_get(c, &ids[0], &len) != NULL);
		dd_chunkcache_get_stats(c, &st);
		over |= st.bytes > BOUND;
	}
	CHECK(!over);
	dd_chunkcache_get_stats(c, &st);
	CHECK_EQ(st.chunks, 10);
	CHECK(st.peak_bytes <= BOUND);
	CHECK_EQ(st.evictions, N - 10);
	CHECK(dd_chunkcache_get(c, &ids[N - 1], &len) != NULL);
	CHECK(dd_chunkcache_get(c, &ids[1], &len) == NULL);
	CHECK(dd_chunkcache_get(c, &ids[N - 10], &len) == NULL);
	/* the chunk 0 kept is still the right bytes */
	make_chunk(buf, LEN, 0, &ids[0]);
	CHECK(memcmp(dd_chunkcache_get(c, &ids[0], &len), buf, LEN) == 0);
	dd_chunkcache_free(c);
}

static void test_too_large(void)
{
	struct dd_chunkcache *c;
	struct dd_chunkcache_stats st;
	static uint8_t buf[5000];
	struct dd_id id;
	size_t len;

	CHECK_EQ(dd_chunkcache_new(&c, 4096), 0);
	/* a chunk as large as the bound is kept, alone */
	make_chunk(buf, 4096, 4, &id);
	CHECK_EQ(dd_chunkcache_put(c, &id, buf, 4096), 0);
	CHECK(dd_chunkcache_get(c, &id, &len) != NULL && len == 4096);
	dd_chunkcache_get_stats(c, &st);
	CHECK_EQ(st.chunks, 1);
	dd_chunkcache_free(c);
	CHECK_EQ(dd_chunkcache_new(&c, 4096), 0);
	make_chunk(buf, sizeof(buf), 3, &id);
	CHECK_EQ(dd_chunkcache_put(c, &id, buf, sizeof(buf)), 0);
	CHECK(dd_chunkcache_get(c, &id, &len) == NULL);
	dd_chunkcache_get_stats(c, &st);
	CHECK_EQ(st.bytes, 0);
	dd_chunkcache_free(c);
	CHECK(dd_chunkcache_new(&c, 0) < 0);
	CHECK(c == NULL);
}

/* Tiny chunks: the bound counts their bookkeeping too, so a 64 KiB
 * cache holds at most 64 KiB / (4 + DD_CHUNKCACHE_NODE_COST) of them. */
static void test_tiny_chunks(void)
{
	enum { N = 5000, BOUND = 64 * 1024 };
	struct dd_chunkcache *c;
	struct dd_chunkcache_stats st;
	uint8_t buf[4];
	struct dd_id id;

	CHECK_EQ(dd_chunkcache_new(&c, BOUND), 0);
	for (unsigned i = 0; i < N; i++) {
		memcpy(buf, &i, sizeof(buf));       /* N distinct chunks */
		dd_sha256(&id, buf, sizeof(buf));
		CHECK_EQ(dd_chunkcache_put(c, &id, buf, sizeof(buf)), 0);
	}
	dd_chunkcache_get_stats(c, &st);
	CHECK_EQ(st.chunks, BOUND / (4 + DD_CHUNKCACHE_NODE_COST));
	CHECK(st.peak_bytes <= BOUND);
	dd_chunkcache_free(c);
}

int main(void)
{
	UNIT_RUN(test_hit_and_miss);
	UNIT_RUN(test_bound_and_lru);
	UNIT_RUN(test_too_large);
	UNIT_RUN(test_tiny_chunks);
	UNIT_DONE();
}
