/*
 * test_pack_salvage.c - dd_pack_salvage: on the golden sealed pack it
 * finds every record (and nothing in the trailer); with a record's header
 * or bytes damaged, or the pack header or trailer damaged, it still finds
 * every intact record, once, when the callback verifies hashes; `from`
 * skips what is before it; a stop from the callback is passed back.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "compress.h"
#include "fixtures.h"
#include "golden.h"
#include "pack.h"
#include "unit.h"

static struct fixture_chunk fx[FIXTURE_NCHUNKS];
static char fx_text[FIXTURE_TEXT_LEN + 1];
static uint8_t fx_bytes[256];
static char path[512];
static const uint64_t fx_offset[FIXTURE_NCHUNKS] = { 16, 77, 226 };

struct found {
	int n;
	int mask;        /* bit i: fixture record i found at its offset */
	int other;       /* verified records that are not fixtures */
	int stop_after;  /* return -ECANCELED after this many (0: never) */
};

/* Accepts a record only if its bytes decode and hash to its id. */
static int verify_cb(void *payload, const struct dd_id *id,
		     const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	struct found *f = payload;
	struct dd_buf plain;
	int i, rc;

	dd_buf_init(&plain, 0);
	rc = dd_decompress(&plain, loc->flags, stored, loc->stored_len,
			   loc->plain_len, NULL);
	if (rc >= 0)
		rc = dd_id_verify(id, plain.data, plain.len);
	dd_buf_release(&plain);
	if (rc < 0)
		return 0;
	f->n++;
	for (i = 0; i < FIXTURE_NCHUNKS; i++)
		if (dd_id_eq(id, &fx[i].id) && loc->offset == fx_offset[i] &&
		    loc->pack_seq == 7)
			break;
	if (i < FIXTURE_NCHUNKS)
		f->mask |= 1 << i;
	else
		f->other++;
	if (f->stop_after && f->n >= f->stop_after)
		return -ECANCELED;
	return DD_PACK_SALVAGE_TAKEN;
}

static int salvage(const uint8_t *p, size_t len, uint64_t from,
		   struct found *f)
{
	if (dd_write_file_atomic(path, p, len, 0644) < 0)
		return -9999;
	return dd_pack_salvage(path, 7, from, verify_cb, f);
}

static uint8_t *golden(size_t *len)
{
	uint8_t *d = NULL;

	CHECK_EQ(golden_read("pack-v1-sealed.pack", &d, len), 0);
	return d;
}

static void test_intact(void)
{
	struct found f = { 0 };
	size_t len;
	uint8_t *d = golden(&len);

	if (!d)
		return;
	CHECK_EQ(salvage(d, len, 0, &f), 0);
	CHECK_EQ(f.mask, 7);
	CHECK_EQ(f.n, 3);
	CHECK_EQ(f.other, 0);
	memset(&f, 0, sizeof(f));
	CHECK_EQ(salvage(d, len, 77, &f), 0);
	CHECK_EQ(f.mask, 6);
	memset(&f, 0, sizeof(f));
	f.stop_after = 2;
	CHECK_EQ(salvage(d, len, 0, &f), -ECANCELED);
	CHECK_EQ(f.n, 2);
	free(d);
}

/* A flip anywhere: every record whose bytes are untouched is found. */
static void test_flips(void)
{
	size_t len, pos;
	uint8_t *d = golden(&len);
	int i, want, bad = 0;

	if (!d)
		return;
	for (pos = 0; pos < len; pos++) {
		struct found f = { 0 };

		d[pos] ^= 0x20;
		want = 0;
		for (i = 0; i < FIXTURE_NCHUNKS; i++)
			if (pos < fx_offset[i] ||
			    pos >= fx_offset[i] + DD_PACK_RECORD_HEADER_LEN +
				   fx[i].stored_len)
				want |= 1 << i;
		if (salvage(d, len, 0, &f) != 0 || f.mask != want ||
		    f.other != 0)
			bad++;
		d[pos] ^= 0x20;
	}
	CHECK_EQ(bad, 0);
	free(d);
}

/* Truncated anywhere: the records wholly before the cut are found. */
static void test_truncations(void)
{
	size_t len, cut;
	uint8_t *d = golden(&len);
	int i, want, bad = 0;

	if (!d)
		return;
	for (cut = 0; cut <= len; cut++) {
		struct found f = { 0 };

		want = 0;
		for (i = 0; i < FIXTURE_NCHUNKS; i++)
			if (fx_offset[i] + DD_PACK_RECORD_HEADER_LEN +
			    fx[i].stored_len <= cut)
				want |= 1 << i;
		if (salvage(d, cut, 0, &f) != 0 || f.mask != want)
			bad++;
	}
	CHECK_EQ(bad, 0);
	free(d);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char dir[256];

	fixture_chunks(fx, fx_text, fx_bytes);
	snprintf(dir, sizeof(dir), "%s/dd-salvage-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/0000000000000007.pack", dir);
	UNIT_RUN(test_intact);
	UNIT_RUN(test_flips);
	UNIT_RUN(test_truncations);
	unlink(path);
	rmdir(dir);
	UNIT_DONE();
}
