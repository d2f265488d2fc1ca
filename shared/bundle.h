/*
 * bundle.h - the binary body that carries chunks over the wire, in both
 * directions: POST /api/v1/chunks (upload) and POST /api/v1/chunks/fetch
 * (download). Layout in docs/FORMAT.md ("Chunk bundle").
 *
 *   header:  "DDBN" | u32 version=1 | u32 count
 *   record:  id[32] | u32 flags | u32 plain_len | u32 stored_len | bytes
 *
 * All integers little-endian.
 */
#ifndef DD_BUNDLE_H
#define DD_BUNDLE_H

#include <stddef.h>
#include <stdint.h>
#include "hash.h"
#include "util.h"

#define DD_BUNDLE_MAGIC "DDBN"
#define DD_BUNDLE_VERSION 1u
#define DD_BUNDLE_HEADER_LEN 12u
#define DD_BUNDLE_RECORD_HEADER_LEN 44u
#define DD_BUNDLE_MAX_COUNT 65536u

struct dd_bundle_record {
	struct dd_id id;
	uint32_t flags;        /* DD_COMP_* */
	uint32_t plain_len;
	uint32_t stored_len;
	const uint8_t *data;   /* borrowed: points into the bundle body */
};

/* Writer: start (empties `b`: the body is the whole buffer), then add
 * records, then finish. The count in the header is kept current by each
 * add; add refuses records the reader would reject (-EINVAL) and a record
 * past DD_BUNDLE_MAX_COUNT (-E2BIG), leaving `b` unchanged. */
int dd_bundle_begin(struct dd_buf *b);
int dd_bundle_add(struct dd_buf *b, const struct dd_id *id, uint32_t flags,
		  uint32_t plain_len, const void *stored, uint32_t stored_len);
/* Adds a record whose `stored_len` bytes the caller already wrote past
 * the end of `b`, at b->data + b->len + DD_BUNDLE_RECORD_HEADER_LEN
 * (within b->alloc, reserved beforehand): writes its header in front of
 * them and counts it. Same checks as dd_bundle_add; -EINVAL if the bytes
 * do not fit the allocation. Lets a record be read straight into the
 * bundle instead of copied in. */
int dd_bundle_add_in_place(struct dd_buf *b, const struct dd_id *id,
			   uint32_t flags, uint32_t plain_len,
			   uint32_t stored_len);
int dd_bundle_finish(struct dd_buf *b);

/* Reader over a complete body. Validates magic, version, count <=
 * DD_BUNDLE_MAX_COUNT, and for each record: known flags, plain_len <=
 * DD_CHUNK_SIZE_LIMIT, stored_len <= dd_stored_len_bound(plain_len), bytes
 * inside the body, and no trailing bytes after the last record.
 * Does NOT decompress or hash; the caller verifies ids. */
struct dd_bundle_reader {
	struct dd_cursor cur;
	uint32_t count;
	uint32_t index;
};
int dd_bundle_reader_init(struct dd_bundle_reader *r, const void *body,
			  size_t len);
/* 1 = a record in *rec, 0 = end (all `count` records read and no trailing
 * bytes), negative = malformed (-EBADMSG with a reason). */
int dd_bundle_next(struct dd_bundle_reader *r, struct dd_bundle_record *rec);

#endif
