/* test_idset.c - the server's set of chunk ids (server/store/idset.c):
 * membership through growth, the all-zero id (which marks a free slot
 * inside the table and is kept aside), ids that share their hash bits,
 * the bound, clearing, and a walk that yields every id once. */
#include "unit.h"
#include "fixtures.h"
#include "../../server/store/idset.c"

#define make_id fixture_id

static void count_cb(void *payload, const struct dd_id *id)
{
	size_t *n = payload;

	(void)id;
	(*n)++;
}

struct seen {
	size_t zero, other;
};

static void zero_cb(void *payload, const struct dd_id *id)
{
	struct seen *s = payload;
	static const struct dd_id z;

	if (dd_id_eq(id, &z))
		s->zero++;
	else
		s->other++;
}

static void test_grow(void)
{
	struct idset *s;
	struct dd_id id;
	size_t n = 0, missing = 0, extra = 0, bad = 0;

	CHECK_EQ(idset_new(&s, 0), 0);
	for (uint64_t i = 0; i < 50000; i++) {
		make_id(&id, i);
		bad += idset_add(s, &id) != 0;
	}
	/* Adding again changes nothing. */
	for (uint64_t i = 0; i < 1000; i++) {
		make_id(&id, i);
		bad += idset_add(s, &id) != 0;
	}
	CHECK_EQ(bad, 0u);
	CHECK_EQ(idset_count(s), 50000u);
	for (uint64_t i = 0; i < 50000; i++) {
		make_id(&id, i);
		missing += !idset_has(s, &id);
	}
	for (uint64_t i = 50000; i < 100000; i++) {
		make_id(&id, i);
		extra += idset_has(s, &id);
	}
	CHECK_EQ(missing, 0u);
	CHECK_EQ(extra, 0u);
	idset_foreach(s, count_cb, &n);
	CHECK_EQ(n, 50000u);
	/* Half full at most: 50,000 ids in 131,072 slots of 32 bytes. */
	CHECK(idset_bytes(s) <= sizeof(struct idset) + 131072u * 32);
	idset_free(s);
}

static void test_zero_id(void)
{
	struct idset *s;
	struct dd_id zero, id;
	struct seen seen = { 0, 0 };
	size_t bad = 0;

	memset(&zero, 0, sizeof(zero));
	CHECK_EQ(idset_new(&s, 0), 0);
	CHECK(!idset_has(s, &zero));
	CHECK_EQ(idset_add(s, &zero), 0);
	CHECK(idset_has(s, &zero));
	CHECK_EQ(idset_count(s), 1u);
	CHECK_EQ(idset_add(s, &zero), 0);
	CHECK_EQ(idset_count(s), 1u);
	/* An id that is zero but for its last byte is an id like any. */
	zero.b[DD_ID_LEN - 1] = 1;
	CHECK(!idset_has(s, &zero));
	CHECK_EQ(idset_add(s, &zero), 0);
	CHECK(idset_has(s, &zero));
	for (uint64_t i = 0; i < 3000; i++) {   /* through two growths */
		make_id(&id, i);
		bad += idset_add(s, &id) != 0;
	}
	CHECK_EQ(bad, 0u);
	memset(&zero, 0, sizeof(zero));
	CHECK(idset_has(s, &zero));
	idset_foreach(s, zero_cb, &seen);
	CHECK_EQ(seen.zero, 1u);
	CHECK_EQ(seen.other, 3001u);
	CHECK_EQ(idset_count(s), 3002u);
	idset_clear(s);
	CHECK(!idset_has(s, &zero));
	CHECK_EQ(idset_count(s), 0u);
	idset_free(s);
}

/* Ids with the same first 8 bytes land on the same slot and probe on. */
static void test_collisions(void)
{
	struct idset *s;
	struct dd_id id;
	size_t missing = 0, bad = 0;

	CHECK_EQ(idset_new(&s, 0), 0);
	for (uint64_t i = 0; i < 600; i++) {
		memset(&id, 0x5a, sizeof(id));
		memcpy(id.b + 8, &i, sizeof(i));
		bad += idset_add(s, &id) != 0;
	}
	CHECK_EQ(bad, 0u);
	for (uint64_t i = 0; i < 600; i++) {
		memset(&id, 0x5a, sizeof(id));
		memcpy(id.b + 8, &i, sizeof(i));
		missing += !idset_has(s, &id);
	}
	CHECK_EQ(missing, 0u);
	memset(&id, 0x5a, sizeof(id));
	id.b[20] = 1;
	CHECK(!idset_has(s, &id));
	idset_free(s);
}

static void test_bound_and_clear(void)
{
	struct idset *s;
	struct dd_id id;
	size_t bad = 0;

	CHECK_EQ(idset_new(&s, 100), 0);
	for (uint64_t i = 0; i < 100; i++) {
		make_id(&id, i);
		bad += idset_add(s, &id) != 0;
	}
	CHECK_EQ(bad, 0u);
	make_id(&id, 100);
	CHECK_EQ(idset_add(s, &id), -E2BIG);
	CHECK(!idset_has(s, &id));
	make_id(&id, 7);                 /* present: not an addition */
	CHECK_EQ(idset_add(s, &id), 0);
	idset_clear(s);
	CHECK_EQ(idset_count(s), 0u);
	CHECK(!idset_has(s, &id));
	make_id(&id, 100);
	CHECK_EQ(idset_add(s, &id), 0);
	CHECK(idset_has(s, &id));
	idset_free(s);
}

int main(void)
{
	UNIT_RUN(test_grow);
	UNIT_RUN(test_zero_id);
	UNIT_RUN(test_collisions);
	UNIT_RUN(test_bound_and_clear);
	UNIT_DONE();
}
