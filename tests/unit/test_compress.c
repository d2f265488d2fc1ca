/* test_compress.c - zstd or raw, and a decoder that yields exactly
 * plain_len bytes or refuses. */
#include <errno.h>
#include <stdlib.h>

#include <zstd.h>

#include "chunker.h"
#include "compress.h"
#include "fixtures.h"
#include "unit.h"

static uint8_t *pseudo_random(size_t n, uint64_t s)
{
	uint8_t *p = malloc(n);
	size_t i;

	for (i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(s >> 56);
	}
	return p;
}

static void test_roundtrip(void)
{
	char text[FIXTURE_TEXT_LEN + 1];
	size_t n = 200000, i;
	uint8_t *plain = malloc(n);
	struct dd_buf z, back;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();

	fixture_text(text);
	for (i = 0; i < n; i++)
		plain[i] = (uint8_t)text[i % FIXTURE_TEXT_LEN];
	dd_buf_init(&z, 0);
	dd_buf_init(&back, 0);
	/* with and without a reusable context */
	CHECK_EQ(dd_compress(&z, plain, n, 3, NULL), DD_COMP_ZSTD);
	CHECK(z.len < n / 10);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, z.data, z.len,
			       (uint32_t)n, NULL), 0);
	CHECK_EQ(back.len, n);
	CHECK(memcmp(back.data, plain, n) == 0);
	CHECK_EQ(dd_compress(&z, plain, n, 1, cc), DD_COMP_ZSTD);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, z.data, z.len,
			       (uint32_t)n, dc), 0);
	CHECK(back.len == n && memcmp(back.data, plain, n) == 0);
	/* a frame decodes only to its own length */
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, z.data, z.len,
			       (uint32_t)n - 1, dc), -EBADMSG);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, z.data, z.len,
			       (uint32_t)n + 1, dc), -EBADMSG);
	CHECK_EQ(back.len, 0);
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
	dd_buf_release(&z);
	dd_buf_release(&back);
	free(plain);
}

static void test_incompressible(void)
{
	size_t n = 65536;
	uint8_t *plain = pseudo_random(n, 1);
	struct dd_buf z, back;

	dd_buf_init(&z, 0);
	dd_buf_init(&back, 0);
	CHECK_EQ(dd_compress(&z, plain, n, 3, NULL), DD_COMP_NONE);
	CHECK_EQ(z.len, n);
	CHECK(memcmp(z.data, plain, n) == 0);
	CHECK_EQ(dd_decompress(&back, DD_COMP_NONE, z.data, z.len,
			       (uint32_t)n, NULL), 0);
	CHECK(back.len == n && memcmp(back.data, plain, n) == 0);
	/* tiny inputs never grow */
	CHECK_EQ(dd_compress(&z, plain, 0, 3, NULL), DD_COMP_NONE);
	CHECK_EQ(z.len, 0);
	CHECK_EQ(dd_compress(&z, "a", 1, 3, NULL), DD_COMP_NONE);
	CHECK_EQ(z.len, 1);
	CHECK_EQ(dd_compress(&z, "aaaaaaaa", 8, 3, NULL), DD_COMP_NONE);
	CHECK_EQ(z.len, 8);
	CHECK_EQ(dd_decompress(&back, DD_COMP_NONE, "", 0, 0, NULL), 0);
	CHECK_EQ(back.len, 0);
	/* the output buffer's cap is honoured */
	dd_buf_release(&z);
	dd_buf_init(&z, 100);
	CHECK_EQ(dd_compress(&z, plain, n, 3, NULL), -E2BIG);
	dd_buf_release(&z);
	dd_buf_release(&back);
	free(plain);
}

static void test_frozen_frame(void)
{
	char text[FIXTURE_TEXT_LEN + 1];
	struct dd_buf back;

	fixture_text(text);
	dd_buf_init(&back, 0);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, fixture_frame,
			       sizeof(fixture_frame), FIXTURE_TEXT_LEN, NULL), 0);
	CHECK_EQ(back.len, FIXTURE_TEXT_LEN);
	CHECK(memcmp(back.data, text, FIXTURE_TEXT_LEN) == 0);
	dd_buf_release(&back);
}

static void test_reject(void)
{
	char text[FIXTURE_TEXT_LEN + 1];
	uint8_t two[2 * sizeof(fixture_frame)], bad[sizeof(fixture_frame) + 1];
	uint8_t nosize[1024];
	struct dd_buf back;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t n;

	fixture_text(text);
	dd_buf_init(&back, 0);
	/* raw with a length mismatch, unknown flags, over the limit */
	CHECK_EQ(dd_decompress(&back, DD_COMP_NONE, "abc", 3, 4, NULL),
		 -EBADMSG);
	CHECK_EQ(dd_decompress(&back, 2, "abc", 3, 3, NULL), -EBADMSG);
	CHECK_EQ(dd_decompress(&back, DD_COMP_NONE, "abc", 3,
			       DD_CHUNK_SIZE_LIMIT + 1, NULL), -EBADMSG);
	/* truncated frame, trailing garbage, two frames, not a frame */
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, fixture_frame,
			       sizeof(fixture_frame) - 1, FIXTURE_TEXT_LEN,
			       NULL), -EBADMSG);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, fixture_frame, 3,
			       FIXTURE_TEXT_LEN, NULL), -EBADMSG);
	memcpy(bad, fixture_frame, sizeof(fixture_frame));
	bad[sizeof(fixture_frame)] = 0;
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, bad, sizeof(bad),
			       FIXTURE_TEXT_LEN, NULL), -EBADMSG);
	memcpy(two, fixture_frame, sizeof(fixture_frame));
	memcpy(two + sizeof(fixture_frame), fixture_frame,
	       sizeof(fixture_frame));
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, two, sizeof(two),
			       2 * FIXTURE_TEXT_LEN, NULL), -EBADMSG);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, text, 40, 40, NULL),
		 -EBADMSG);
	/* stored bytes larger than any frame of plain_len bytes */
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, text, FIXTURE_TEXT_LEN,
			       10, NULL), -EBADMSG);
	/* a corrupt frame header (reserved bit set) */
	memcpy(bad, fixture_frame, sizeof(fixture_frame));
	bad[4] |= 0x08;
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, bad, sizeof(fixture_frame),
			       FIXTURE_TEXT_LEN, NULL), -EBADMSG);

	/* A frame that does not state its size is still capped: decoding
	 * stops at plain_len, and a short result is refused. */
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	n = ZSTD_compress2(cc, nosize, sizeof(nosize), text, FIXTURE_TEXT_LEN);
	CHECK(!ZSTD_isError(n));
	CHECK(ZSTD_getFrameContentSize(nosize, n) == ZSTD_CONTENTSIZE_UNKNOWN);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, nosize, n,
			       FIXTURE_TEXT_LEN, NULL), 0);
	CHECK(back.len == FIXTURE_TEXT_LEN &&
	      memcmp(back.data, text, FIXTURE_TEXT_LEN) == 0);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, nosize, n,
			       FIXTURE_TEXT_LEN - 1, NULL), -EBADMSG);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, nosize, n,
			       FIXTURE_TEXT_LEN + 1, NULL), -EBADMSG);
	/* and never needs more room than plain_len */
	dd_buf_release(&back);
	dd_buf_init(&back, FIXTURE_TEXT_LEN);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, nosize, n,
			       FIXTURE_TEXT_LEN, NULL), 0);
	CHECK_EQ(dd_decompress(&back, DD_COMP_ZSTD, fixture_frame,
			       sizeof(fixture_frame), FIXTURE_TEXT_LEN, NULL), 0);
	ZSTD_freeCCtx(cc);
	dd_buf_release(&back);
}

static void test_bound(void)
{
	CHECK_EQ(dd_stored_len_bound(1u << 20), ZSTD_compressBound(1u << 20));
	CHECK(dd_stored_len_bound(0) > 0);
	CHECK(dd_stored_len_bound(DD_CHUNK_SIZE_LIMIT) > DD_CHUNK_SIZE_LIMIT);
	CHECK(dd_stored_len_bound(DD_CHUNK_SIZE_LIMIT) <
	      DD_CHUNK_SIZE_LIMIT + DD_CHUNK_SIZE_LIMIT / 128);
}

/* Decoding in place: exactly plain_len bytes, nothing past them. */
static void test_decompress_to(void)
{
	char text[FIXTURE_TEXT_LEN + 1];
	size_t n = 100000;
	uint8_t *plain = malloc(n), *dst = malloc(n + 16);
	struct dd_buf z;

	fixture_text(text);
	for (size_t i = 0; i < n; i++)
		plain[i] = (uint8_t)text[i % FIXTURE_TEXT_LEN];
	dd_buf_init(&z, 0);
	CHECK_EQ(dd_compress(&z, plain, n, 3, NULL), DD_COMP_ZSTD);
	memset(dst, 0xa5, n + 16);
	CHECK_EQ(dd_decompress_to(dst, DD_COMP_ZSTD, z.data, z.len,
				  (uint32_t)n, NULL), 0);
	CHECK(memcmp(dst, plain, n) == 0);
	CHECK(dst[n] == 0xa5 && dst[n + 15] == 0xa5);
	/* a frame that holds more than the room fails, nothing past it */
	memset(dst, 0xa5, n + 16);
	CHECK_EQ(dd_decompress_to(dst, DD_COMP_ZSTD, z.data, z.len,
				  (uint32_t)n - 10, NULL), -EBADMSG);
	CHECK(dst[n - 10] == 0xa5);
	/* raw chunks are copied; a wrong length is refused */
	CHECK_EQ(dd_decompress_to(dst, DD_COMP_NONE, plain, 100, 100, NULL), 0);
	CHECK(memcmp(dst, plain, 100) == 0);
	CHECK_EQ(dd_decompress_to(dst, DD_COMP_NONE, plain, 100, 99, NULL),
		 -EBADMSG);
	CHECK_EQ(dd_decompress_to(dst, 7, plain, 100, 100, NULL), -EBADMSG);
	dd_buf_release(&z);
	free(plain);
	free(dst);
}

/* dd_compress_to writes within `len` bytes exactly what dd_compress
 * keeps: a frame for text, the raw bytes for noise and tiny inputs; the
 * byte after the room is never touched. */
static void test_compress_to(void)
{
	char text[FIXTURE_TEXT_LEN + 1];
	size_t sizes[] = { 0, 1, 2, 8, 100, 4096, 65536, 300000 };
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	struct dd_buf z;

	fixture_text(text);
	dd_buf_init(&z, 0);
	for (int kind = 0; kind < 2; kind++)
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			size_t n = sizes[si], got = 12345;
			uint8_t *plain = kind ? pseudo_random(n + 1, n) :
				malloc(n + 1);
			uint8_t *dst = malloc(n + 1);
			int f1, f2;

			if (!kind)
				for (size_t i = 0; i < n; i++)
					plain[i] = (uint8_t)
						text[i % FIXTURE_TEXT_LEN];
			dst[n] = 0xa5;
			f1 = dd_compress_to(dst, &got, plain, n, 3,
					    si % 2 ? cc : NULL);
			f2 = dd_compress(&z, plain, n, 3, NULL);
			CHECK_EQ(f1, f2);
			CHECK_EQ(got, z.len);
			CHECK(got <= n && memcmp(dst, z.data, got) == 0);
			CHECK_EQ(dst[n], 0xa5);
			CHECK_EQ(f1, kind || n < 100 ? DD_COMP_NONE :
				 DD_COMP_ZSTD);
			free(plain);
			free(dst);
		}
	ZSTD_freeCCtx(cc);
	dd_buf_release(&z);
}

int main(void)
{
	UNIT_RUN(test_roundtrip);
	UNIT_RUN(test_decompress_to);
	UNIT_RUN(test_incompressible);
	UNIT_RUN(test_compress_to);
	UNIT_RUN(test_frozen_frame);
	UNIT_RUN(test_reject);
	UNIT_RUN(test_bound);
	UNIT_DONE();
}
