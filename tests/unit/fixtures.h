/*
 * fixtures.h - the fixed chunks behind the golden bundle and pack samples.
 * The zstd chunk is a frozen frame (not recompressed at test time), so the
 * samples do not depend on the zstd version that happens to be installed.
 */
#ifndef DD_FIXTURES_H
#define DD_FIXTURES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "compress.h"
#include "hash.h"

#define FIXTURE_TEXT_LEN 592u

/* 16 lines of 37 bytes: "golden line NN: dedup keeps one copy\n". */
/* Deterministic uniform ids (splitmix64), as SHA-256 ids are. */
static inline void fixture_id(struct dd_id *id, uint64_t n)
{
	size_t i;

	for (i = 0; i < sizeof(id->b); i += 8) {
		uint64_t z = (n * 4 + i / 8 + 1) * 0x9e3779b97f4a7c15ull;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(id->b + i, &z, 8);
	}
}

static inline void fixture_text(char out[FIXTURE_TEXT_LEN + 1])
{
	size_t n = 0;
	int i;

	for (i = 0; i < 16; i++)
		n += (size_t)snprintf(out + n, FIXTURE_TEXT_LEN + 1 - n,
				      "golden line %02d: dedup keeps one copy\n",
				      i);
}

/* fixture_text() compressed by zstd 1.5 at level 3. */
static const uint8_t fixture_frame[101] __attribute__((unused)) = {
	0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x50, 0x01, 0xdd, 0x02, 0x00, 0x54, 0x03,
	0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x20, 0x6c, 0x69, 0x6e, 0x65, 0x20,
	0x30, 0x30, 0x3a, 0x20, 0x64, 0x65, 0x64, 0x75, 0x70, 0x20, 0x6b, 0x65,
	0x65, 0x70, 0x73, 0x20, 0x6f, 0x6e, 0x65, 0x20, 0x63, 0x6f, 0x70, 0x79,
	0x0a, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x31, 0x30,
	0x31, 0x32, 0x33, 0x34, 0x35, 0x10, 0x00, 0xa0, 0x96, 0x80, 0xbc, 0x80,
	0x64, 0x01, 0x29, 0x01, 0x79, 0x03, 0x12, 0x01, 0x92, 0x05, 0xa4, 0x04,
	0xe4, 0x05, 0x24, 0x0b, 0x48, 0x09, 0xc8, 0x0b, 0x48, 0x16, 0x90, 0x12,
	0x90, 0xb7, 0xe8, 0x50, 0x4f,
};

struct fixture_chunk {
	struct dd_id id;          /* sha256 of plain */
	uint32_t flags;
	uint32_t plain_len;
	const uint8_t *stored;
	uint32_t stored_len;
	const uint8_t *plain;
};

#define FIXTURE_NCHUNKS 3

/* Fills three chunks: raw text, the zstd frame, raw bytes 0..255. The
 * storage in `text` and `bytes` must outlive the chunks. */
static inline void fixture_chunks(struct fixture_chunk c[FIXTURE_NCHUNKS],
			   char text[FIXTURE_TEXT_LEN + 1],
			   uint8_t bytes[256])
{
	static const char hello[] = "hello, dedup\n";
	int i;

	fixture_text(text);
	for (i = 0; i < 256; i++)
		bytes[i] = (uint8_t)i;
	c[0].flags = DD_COMP_NONE;
	c[0].plain = (const uint8_t *)hello;
	c[0].plain_len = sizeof(hello) - 1;
	c[0].stored = c[0].plain;
	c[0].stored_len = c[0].plain_len;
	c[1].flags = DD_COMP_ZSTD;
	c[1].plain = (const uint8_t *)text;
	c[1].plain_len = FIXTURE_TEXT_LEN;
	c[1].stored = fixture_frame;
	c[1].stored_len = sizeof(fixture_frame);
	c[2].flags = DD_COMP_NONE;
	c[2].plain = bytes;
	c[2].plain_len = 256;
	c[2].stored = bytes;
	c[2].stored_len = 256;
	for (i = 0; i < FIXTURE_NCHUNKS; i++)
		dd_sha256(&c[i].id, c[i].plain, c[i].plain_len);
}

#endif
