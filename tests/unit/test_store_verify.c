/* test_store_verify.c - store_verify_records (server/store/store_packs.c):
 * an upload's records checked several at a time, their plain bytes hashed
 * as one batch, give exactly what store_verify gives record by record:
 * 0 when every record is its id, else the first failing record's error,
 * same code and same words, wherever it lies (first group, later group,
 * a group cut short by its 4 MiB of decoded bytes) and whatever is wrong
 * (raw bytes, a compressed record's id, its stream, a sealed record's
 * layout, unknown flags). Links the server's objects. */
#include <errno.h>
#include <stdlib.h>

#include <zstd.h>

#include "unit.h"
#include "bundle.h"
#include "compress.h"
#include "hash.h"
#include "store.h"
#include "util.h"

#define NREC 24

/* The bytes every record points into, kept until the test ends. */
static uint8_t *arena;
static size_t arena_len;

static uint8_t *arena_put(const void *p, size_t n)
{
	uint8_t *at = arena + arena_len;

	memcpy(at, p, n);
	arena_len += n;
	return at;
}

static void noise(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 56);
	}
}

/* Record k of a mixed upload, `len` plain bytes: raw, compressed or
 * sealed by turns (k % 3). */
static void make_rec(struct dd_bundle_record *r, size_t k, size_t len)
{
	uint8_t *plain = malloc(len);
	struct dd_buf z;

	CHECK(plain != NULL);
	noise(plain, len, k + 1);
	memset(r, 0, sizeof(*r));
	dd_sha256(&r->id, plain, len);
	r->plain_len = (uint32_t)len;
	switch (k % 3) {
	case 0:         /* raw */
		r->flags = DD_COMP_NONE;
		r->data = arena_put(plain, len);
		r->stored_len = (uint32_t)len;
		break;
	case 1:         /* compressible: every other byte zero */
		for (size_t i = 0; i < len; i += 2)
			plain[i] = 0;
		dd_sha256(&r->id, plain, len);
		dd_buf_init(&z, 0);
		CHECK_EQ(dd_compress(&z, plain, len, 3, NULL), DD_COMP_ZSTD);
		r->flags = DD_COMP_ZSTD;
		r->data = arena_put(z.data, z.len);
		r->stored_len = (uint32_t)z.len;
		dd_buf_release(&z);
		break;
	default:        /* sealed: only its layout can be checked */
		r->flags = DD_COMP_SEALED | DD_COMP_NONE;
		r->data = arena_put(plain, len);
		arena_put(plain, DD_COMP_SEALED_OVERHEAD);
		r->stored_len = (uint32_t)(len + DD_COMP_SEALED_OVERHEAD);
		break;
	}
	free(plain);
}

/* What store_verify says of recs, one by one: its code and words. */
static int one_by_one(const struct dd_bundle_record *recs, size_t n,
		      char *msg, size_t msg_len, void *dctx)
{
	struct dd_buf scratch;
	int rc = 0;

	dd_buf_init(&scratch, 0);
	msg[0] = '\0';
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = store_verify(&recs[i].id, recs[i].flags,
				  recs[i].plain_len, recs[i].data,
				  recs[i].stored_len, &scratch, dctx);
	if (rc < 0)
		snprintf(msg, msg_len, "%s", dd_error_last());
	dd_buf_release(&scratch);
	return rc;
}

static void check_same(const struct dd_bundle_record *recs, size_t n,
		       void *dctx, bool want_ok)
{
	char want[512];
	struct dd_buf scratch;
	int rc_one = one_by_one(recs, n, want, sizeof(want), dctx), rc;

	dd_buf_init(&scratch, 0);
	rc = store_verify_records(recs, n, &scratch, dctx);
	CHECK_EQ(rc, rc_one);
	CHECK_EQ(rc == 0, want_ok);
	if (rc < 0)
		CHECK(strcmp(dd_error_last(), want) == 0);
	dd_buf_release(&scratch);
}

/* Damage kind d to record r (a copy in the arena, the original kept). */
static bool damage(struct dd_bundle_record *r, int d)
{
	uint8_t *copy;

	switch (d) {
	case 0:         /* the bytes: a raw or compressed record's first */
		if (r->flags & DD_COMP_SEALED)
			return false;
		copy = arena_put(r->data, r->stored_len);
		copy[r->stored_len / 2] ^= 0x40;
		r->data = copy;
		return true;
	case 1:         /* the id */
		if (r->flags & DD_COMP_SEALED)
			return false;
		r->id.b[DD_ID_LEN - 1] ^= 1;
		return true;
	case 2:         /* the length: sealed too short, others lie */
		if (r->flags & DD_COMP_SEALED)
			r->stored_len = DD_COMP_SEALED_OVERHEAD - 1;
		else
			r->plain_len += 1;
		return true;
	default:        /* unknown flags */
		r->flags |= 0x100;
		return true;
	}
}

static void test_mixed(void)
{
	struct dd_bundle_record recs[NREC], bad[NREC];
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	size_t cases = 0;

	for (size_t k = 0; k < NREC; k++)
		make_rec(&recs[k], k, k % 5 == 4 ? 1u << 20 :
			 1 + (k * 7919) % 300000);
	check_same(recs, NREC, dctx, true);
	check_same(recs, 1, dctx, true);
	check_same(recs, 0, dctx, true);
	for (size_t at = 0; at < NREC; at++)
		for (int d = 0; d < 4; d++) {
			memcpy(bad, recs, sizeof(bad));
			if (!damage(&bad[at], d))
				continue;
			check_same(bad, NREC, dctx, false);
			/* and a second fault later: the first is named */
			if (at + 3 < NREC && damage(&bad[at + 3], 3))
				check_same(bad, NREC, dctx, false);
			cases++;
		}
	CHECK(cases >= NREC * 3);
	ZSTD_freeDCtx(dctx);
}

/* Compressed records of 3 MiB: a group holds one or two of them (4 MiB
 * of decoded bytes beyond the first), so faults fall in later groups. */
static void test_big_groups(void)
{
	struct dd_bundle_record recs[12], bad[12];
	ZSTD_DCtx *dctx = ZSTD_createDCtx();

	for (size_t k = 0; k < 12; k++)
		make_rec(&recs[k], 3 * k + 1, 3u << 20);   /* compressed */
	check_same(recs, 12, dctx, true);
	for (size_t at = 0; at < 12; at++) {
		memcpy(bad, recs, sizeof(bad));
		damage(&bad[at], at % 2);
		check_same(bad, 12, dctx, false);
	}
	ZSTD_freeDCtx(dctx);
}

int main(void)
{
	arena = malloc(arena_len = 256u << 20);
	if (!arena)
		return 1;
	arena_len = 0;
	UNIT_RUN(test_mixed);
	UNIT_RUN(test_big_groups);
	free(arena);
	UNIT_DONE();
}
