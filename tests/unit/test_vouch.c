/* test_vouch.c - the vouch journal (server/store/vouch.c): generations kept and
 * dropped by time, the exact set turning into a bloom filter, merging
 * beyond the generation cap, and no id ever lost while its generation is
 * kept. The server's sources are compiled in: the unit tests link only
 * libdedup. */
#include <math.h>

#include "unit.h"
#include "fixtures.h"
#include "../../server/store/idset.c"
#include "../../server/store/vouch.c"

#define make_id fixture_id

static void add_range(struct vouch *v, uint64_t from, uint64_t to)
{
	struct dd_id id;

	for (; from < to; from++) {
		make_id(&id, from);
		vouch_add(v, &id);
	}
}

static bool has_range(const struct vouch *v, uint64_t from, uint64_t to)
{
	struct dd_id id;

	for (; from < to; from++) {
		make_id(&id, from);
		if (!vouch_has(v, &id))
			return false;
	}
	return true;
}

static uint64_t count_has(const struct vouch *v, uint64_t from, uint64_t to)
{
	struct dd_id id;
	uint64_t n = 0;

	for (; from < to; from++) {
		make_id(&id, from);
		n += vouch_has(v, &id);
	}
	return n;
}

static void test_drop_by_time(void)
{
	struct vouch *v;
	struct vouch_stats st;

	CHECK_EQ(vouch_new(&v, 0), 0);
	add_range(v, 0, 100);
	CHECK(has_range(v, 0, 100));
	CHECK(!has_range(v, 100, 101));
	/* A backup opened at t=0.5: the generation ending at 1 stays. */
	vouch_rotate(v, 1.0, 0.5);
	add_range(v, 100, 200);
	vouch_rotate(v, 2.0, 0.5);
	add_range(v, 200, 300);
	CHECK(has_range(v, 0, 300));
	vouch_get_stats(v, &st);
	CHECK_EQ(st.generations, 3);
	CHECK_EQ(st.ids, 300);
	CHECK(!st.filtered);
	/* The oldest backup now began at 1.5: the generation that ended at 1
	 * goes, the one that ended at 2 stays. */
	vouch_rotate(v, 3.0, 1.5);
	CHECK_EQ(count_has(v, 0, 100), 0);
	CHECK(has_range(v, 100, 300));
	/* No backup in progress: only the new generation remains. */
	vouch_rotate(v, 4.0, HUGE_VAL);
	CHECK_EQ(count_has(v, 0, 300), 0);
	vouch_get_stats(v, &st);
	CHECK_EQ(st.generations, 1);
	add_range(v, 300, 310);
	CHECK(has_range(v, 300, 310));
	/* since == 0 keeps everything. */
	vouch_rotate(v, 5.0, 0);
	CHECK(has_range(v, 300, 310));
	vouch_free(v);
	vouch_free(NULL);
}

static void test_filter(void)
{
	struct vouch *v;
	struct vouch_stats st;

	CHECK_EQ(vouch_new(&v, 64), 0);
	add_range(v, 0, 64);
	vouch_get_stats(v, &st);
	CHECK(!st.filtered);
	/* Past the bound: a filter, never an error, nothing forgotten. */
	add_range(v, 64, 5000);
	vouch_get_stats(v, &st);
	CHECK(st.filtered);
	CHECK(!st.saturated);
	CHECK(st.ids >= 4990 && st.ids <= 5000);
	CHECK(st.bytes >= VOUCH_FILTER_BITS / 8);
	CHECK(has_range(v, 0, 5000));
	/* 5000 ids in 2^27 bits: practically no false positives. */
	CHECK(count_has(v, 100000, 200000) < 5);
	vouch_rotate(v, 1.0, 0);
	CHECK(has_range(v, 0, 5000));
	vouch_rotate(v, 2.0, HUGE_VAL);
	CHECK(count_has(v, 0, 5000) < 5);
	vouch_free(v);
}

static void test_merge(void)
{
	struct vouch *v;
	struct vouch_stats st;
	uint64_t g;

	/* Exact sets that fit merge into an exact set. */
	CHECK_EQ(vouch_new(&v, 0), 0);
	for (g = 0; g < 10; g++) {
		add_range(v, g * 100, g * 100 + 100);
		vouch_rotate(v, 1.0 + (double)g, 0.5);
		vouch_get_stats(v, &st);
		CHECK(st.generations <= VOUCH_GENERATIONS_MAX);
	}
	CHECK(has_range(v, 0, 1000));
	vouch_get_stats(v, &st);
	CHECK(!st.filtered);
	CHECK_EQ(st.ids, 1000);
	/* The merged oldest generation lives as long as its newest part. */
	vouch_rotate(v, 20.0, 6.5);
	CHECK(has_range(v, 0, 1000));
	/* That rotation merged again: the oldest now ended at 9. */
	vouch_rotate(v, 21.0, 9.5);
	CHECK_EQ(count_has(v, 0, 900), 0);
	CHECK(has_range(v, 900, 1000));
	vouch_free(v);

	/* Exact sets that do not fit, and filters, merge into a filter. */
	CHECK_EQ(vouch_new(&v, 50), 0);
	for (g = 0; g < 8; g++) {
		add_range(v, g * 40, g * 40 + 40);
		if (g == 3)
			add_range(v, 10000, 10200);
		vouch_rotate(v, 1.0 + (double)g, 0.5);
	}
	vouch_get_stats(v, &st);
	CHECK_EQ(st.generations, VOUCH_GENERATIONS_MAX);
	CHECK(st.filtered);
	CHECK(has_range(v, 0, 320));
	CHECK(has_range(v, 10000, 10200));
	vouch_free(v);
}

int main(void)
{
	UNIT_RUN(test_drop_by_time);
	UNIT_RUN(test_filter);
	UNIT_RUN(test_merge);
	UNIT_DONE();
}
