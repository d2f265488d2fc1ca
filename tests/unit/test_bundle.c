/*
 * test_bundle.c - the chunk bundle: golden samples, writer limits, and a
 * reader that rejects every truncation and malformed field.
 */
#include <errno.h>
#include <stdlib.h>

#include "bundle.h"
#include "chunker.h"
#include "compress.h"
#include "fixtures.h"
#include "golden.h"
#include "unit.h"

static struct fixture_chunk fx[FIXTURE_NCHUNKS];
static char fx_text[FIXTURE_TEXT_LEN + 1];
static uint8_t fx_bytes[256];

/* sha256("hello, dedup\n"): pins the fixture itself */
static const char hello_hex[] =
	"01a2618ef4456ac6f53967537e28c950babf855bc0c78a3d2113722b4712edc1";

static void build_golden(struct dd_buf *b)
{
	int i;

	CHECK_EQ(dd_bundle_begin(b), 0);
	for (i = 0; i < FIXTURE_NCHUNKS; i++)
		CHECK_EQ(dd_bundle_add(b, &fx[i].id, fx[i].flags,
				       fx[i].plain_len, fx[i].stored,
				       fx[i].stored_len), 0);
	CHECK_EQ(dd_bundle_finish(b), 0);
}

/* Reads a whole body; returns records read, or the error. */
static int read_all(const uint8_t *p, size_t len)
{
	struct dd_bundle_reader r;
	struct dd_bundle_record rec;
	int rc, n = 0;

	rc = dd_bundle_reader_init(&r, p, len);
	if (rc < 0)
		return rc;
	while ((rc = dd_bundle_next(&r, &rec)) == 1) {
		/* whatever was accepted lies inside the body */
		if (rec.data < p || rec.data + rec.stored_len > p + len)
			return -999;
		n++;
	}
	return rc < 0 ? rc : n;
}

static void test_golden(void)
{
	struct dd_bundle_reader r;
	struct dd_bundle_record rec;
	struct dd_buf b, plain;
	uint8_t *g = NULL;
	size_t glen = 0;
	char hex[DD_ID_HEX_LEN + 1];
	int i;

	dd_buf_init(&b, 0);
	dd_buf_init(&plain, 0);
	build_golden(&b);
	CHECK_EQ(b.len, 12 + 3 * 44 + 13 + 101 + 256);
	CHECK(golden_same("bundle-v1.bin", b.data, b.len));

	CHECK_EQ(golden_read("bundle-v1.bin", &g, &glen), 0);
	CHECK_EQ(glen, 514);
	if (!g || glen < 12)
		goto cleanup;
	CHECK(memcmp(g, "DDBN\1\0\0\0\3\0\0\0", 12) == 0);
	CHECK_EQ(dd_bundle_reader_init(&r, g, glen), 0);
	CHECK_EQ(r.count, 3);
	for (i = 0; i < FIXTURE_NCHUNKS; i++) {
		CHECK_EQ(dd_bundle_next(&r, &rec), 1);
		CHECK(dd_id_eq(&rec.id, &fx[i].id));
		CHECK_EQ(rec.flags, fx[i].flags);
		CHECK_EQ(rec.plain_len, fx[i].plain_len);
		CHECK_EQ(rec.stored_len, fx[i].stored_len);
		CHECK(memcmp(rec.data, fx[i].stored, rec.stored_len) == 0);
		CHECK_EQ(dd_decompress(&plain, rec.flags, rec.data,
				       rec.stored_len, rec.plain_len, NULL), 0);
		CHECK_EQ(dd_id_verify(&rec.id, plain.data, plain.len), 0);
	}
	dd_id_to_hex(hex, &fx[0].id);
	CHECK(strcmp(hex, hello_hex) == 0);
	CHECK_EQ(dd_bundle_next(&r, &rec), 0);
	CHECK_EQ(dd_bundle_next(&r, &rec), 0);

cleanup:
	free(g);
	dd_buf_release(&b);
	dd_buf_release(&plain);
}

static void test_golden_bad(void)
{
	struct dd_buf b;
	uint8_t *g = NULL;
	size_t glen = 0;

	/* derived from the good sample: one extra byte, a lost tail */
	dd_buf_init(&b, 0);
	build_golden(&b);
	dd_buf_append_u8(&b, 0);
	CHECK(golden_same("bundle-bad-trailing.bin", b.data, b.len));
	CHECK(golden_same("bundle-bad-truncated.bin", b.data, b.len - 11));
	dd_buf_release(&b);

	CHECK_EQ(golden_read("bundle-bad-trailing.bin", &g, &glen), 0);
	CHECK_EQ(read_all(g, glen), -EBADMSG);
	CHECK(strstr(dd_error_last(), "trailing") != NULL);
	free(g);
	CHECK_EQ(golden_read("bundle-bad-truncated.bin", &g, &glen), 0);
	CHECK_EQ(read_all(g, glen), -EBADMSG);
	free(g);
}

static void test_truncations(void)
{
	struct dd_buf b;
	size_t n, accepted = 0;

	dd_buf_init(&b, 0);
	build_golden(&b);
	CHECK_EQ(read_all(b.data, b.len), 3);
	/* every proper prefix is rejected, none read out of bounds (the
	 * copy makes ASan see the end) */
	for (n = 0; n < b.len; n++) {
		uint8_t *p = malloc(n ? n : 1);

		memcpy(p, b.data, n);
		if (read_all(p, n) >= 0)
			accepted++;
		free(p);
	}
	CHECK_EQ(accepted, 0);
	dd_buf_release(&b);
}

static void patch_read(const struct dd_buf *good, size_t off, uint32_t v,
		       int want)
{
	uint8_t *p = malloc(good->len);

	memcpy(p, good->data, good->len);
	dd_put_le32(p + off, v);
	if (read_all(p, good->len) != want)
		fprintf(stderr, "patch at %zu to %u: not %d\n", off, v, want);
	CHECK_EQ(read_all(p, good->len), want);
	free(p);
}

static void test_fields(void)
{
	struct dd_buf b;
	size_t rec1 = 12 + 44 + 13;   /* the zstd record */
	size_t rec2 = rec1 + 44 + 101;

	dd_buf_init(&b, 0);
	build_golden(&b);
	patch_read(&b, 0, 0x4444424e, -EBADMSG);          /* "NBDD" */
	patch_read(&b, 4, 2, -EBADMSG);                    /* version */
	patch_read(&b, 8, 4, -EBADMSG);                    /* count too big */
	patch_read(&b, 8, 2, -EBADMSG);                    /* trailing rec */
	patch_read(&b, 8, DD_BUNDLE_MAX_COUNT + 1, -EBADMSG);
	patch_read(&b, 8, UINT32_MAX, -EBADMSG);
	patch_read(&b, rec1 + 32, 2, -EBADMSG);            /* flags */
	patch_read(&b, rec1 + 36, DD_CHUNK_SIZE_LIMIT + 1, -EBADMSG);
	patch_read(&b, rec1 + 36, 0, -EBADMSG);            /* bound(0) < 101 */
	patch_read(&b, rec1 + 40, 100, -EBADMSG);          /* stored_len */
	patch_read(&b, rec1 + 40, UINT32_MAX, -EBADMSG);
	patch_read(&b, rec2 + 32, DD_COMP_ZSTD, 3);        /* accepted here;
							      decoding fails */
	patch_read(&b, rec2 + 36, 255, -EBADMSG);          /* raw mismatch */
	patch_read(&b, rec2 + 40, 257, -EBADMSG);
	dd_buf_release(&b);
}

static void test_writer(void)
{
	struct dd_buf b, capped;
	struct dd_id id;
	uint32_t i;
	int rc = 0;

	dd_sha256(&id, "", 0);
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_bundle_add(&b, &id, 0, 0, "", 0), -EINVAL);  /* no begin */
	CHECK_EQ(dd_bundle_finish(&b), -EINVAL);
	CHECK_EQ(dd_bundle_begin(&b), 0);
	CHECK_EQ(dd_bundle_finish(&b), 0);
	CHECK_EQ(read_all(b.data, b.len), 0);                    /* empty ok */
	CHECK_EQ(dd_bundle_add(&b, &id, 2, 3, "abc", 3), -EINVAL);
	CHECK_EQ(dd_bundle_add(&b, &id, 0, 4, "abc", 3), -EINVAL);
	CHECK_EQ(dd_bundle_add(&b, &id, 1, DD_CHUNK_SIZE_LIMIT + 1, "abc", 3),
		 -EINVAL);
	CHECK_EQ(b.len, DD_BUNDLE_HEADER_LEN);
	/* begin starts over on a used buffer */
	CHECK_EQ(dd_bundle_add(&b, &id, 0, 0, "", 0), 0);
	CHECK_EQ(dd_bundle_begin(&b), 0);
	CHECK_EQ(b.len, DD_BUNDLE_HEADER_LEN);
	for (i = 0; i < DD_BUNDLE_MAX_COUNT && rc == 0; i++)
		rc = dd_bundle_add(&b, &id, 0, 0, "", 0);
	CHECK_EQ(rc, 0);
	CHECK_EQ(dd_bundle_add(&b, &id, 0, 0, "", 0), -E2BIG);
	CHECK_EQ(dd_bundle_finish(&b), 0);
	CHECK_EQ(read_all(b.data, b.len), (int)DD_BUNDLE_MAX_COUNT);
	dd_buf_release(&b);

	/* a capped body refuses a record and stays well formed */
	dd_buf_init(&capped, 100);
	CHECK_EQ(dd_bundle_begin(&capped), 0);
	CHECK_EQ(dd_bundle_add(&capped, &id, 0, 40, fx_bytes, 40), 0);
	CHECK_EQ(dd_bundle_add(&capped, &id, 0, 40, fx_bytes, 40), -E2BIG);
	CHECK_EQ(read_all(capped.data, capped.len), 1);
	dd_buf_release(&capped);
}

/* A record whose bytes were written in place gives the same body as one
 * copied in; the same checks refuse a bad one, and one past the room. */
static void test_in_place(void)
{
	struct dd_buf a, b;
	struct dd_id id;
	int i;

	dd_buf_init(&a, 0);
	dd_buf_init(&b, 0);
	build_golden(&a);
	CHECK_EQ(dd_bundle_begin(&b), 0);
	for (i = 0; i < FIXTURE_NCHUNKS; i++) {
		CHECK_EQ(dd_buf_reserve(&b, DD_BUNDLE_RECORD_HEADER_LEN +
					fx[i].stored_len), 0);
		memcpy(b.data + b.len + DD_BUNDLE_RECORD_HEADER_LEN,
		       fx[i].stored, fx[i].stored_len);
		CHECK_EQ(dd_bundle_add_in_place(&b, &fx[i].id, fx[i].flags,
						fx[i].plain_len,
						fx[i].stored_len), 0);
	}
	CHECK_EQ(dd_bundle_finish(&b), 0);
	CHECK_EQ(b.len, a.len);
	CHECK(b.len == a.len && memcmp(a.data, b.data, a.len) == 0);

	dd_sha256(&id, "", 0);
	CHECK_EQ(dd_bundle_add_in_place(&b, &id, 2, 3, 3), -EINVAL);
	CHECK_EQ(dd_bundle_add_in_place(&b, &id, 0, 4, 3), -EINVAL);
	CHECK_EQ(dd_bundle_add_in_place(&b, &id, 0, (uint32_t)b.alloc,
					(uint32_t)b.alloc), -EINVAL);
	CHECK_EQ(b.len, a.len);
	CHECK_EQ(read_all(b.data, b.len), FIXTURE_NCHUNKS);
	dd_buf_release(&b);
	CHECK_EQ(dd_bundle_add_in_place(&b, &id, 0, 0, 0), -EINVAL);
	dd_buf_release(&a);
}

static void test_fuzz_bytes(void)
{
	struct dd_buf b;
	size_t off, crashes = 0;
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	size_t k;

	dd_buf_init(&b, 0);
	build_golden(&b);
	for (off = 0; off < b.len; off++) {
		for (k = 0; k < sizeof(flips); k++) {
			uint8_t *p = malloc(b.len);
			int rc;

			memcpy(p, b.data, b.len);
			p[off] ^= flips[k];
			rc = read_all(p, b.len);
			if (rc == -999 || (rc >= 0 && rc != 3))
				crashes++;
			free(p);
		}
	}
	CHECK_EQ(crashes, 0);
	dd_buf_release(&b);
}

int main(void)
{
	fixture_chunks(fx, fx_text, fx_bytes);
	UNIT_RUN(test_golden);
	UNIT_RUN(test_golden_bad);
	UNIT_RUN(test_truncations);
	UNIT_RUN(test_fields);
	UNIT_RUN(test_writer);
	UNIT_RUN(test_in_place);
	UNIT_RUN(test_fuzz_bytes);
	UNIT_DONE();
}
