/*
 * bundle.c - the chunk bundle of docs/FORMAT.md. The writer keeps the
 * header's count current after every record, so a body is well formed
 * between calls; the reader trusts nothing it has not bounds-checked.
 */
#include <errno.h>
#include <string.h>

#include "bundle.h"
#include "chunker.h"
#include "compress.h"

/* Shared by writer and reader: the limits one record must respect. */
static int check_record(uint32_t flags, uint32_t plain_len,
			uint32_t stored_len, int code)
{
	if (plain_len > DD_CHUNK_SIZE_LIMIT)
		return dd_error_set(code, "bundle record of %u bytes is above "
				    "the chunk limit", plain_len);
	if (dd_stored_len_check(flags, plain_len, stored_len) < 0)
		return dd_error_set(code, "bundle record %s", dd_error_last());
	return 0;
}

int dd_bundle_begin(struct dd_buf *b)
{
	uint8_t hdr[DD_BUNDLE_HEADER_LEN];

	memcpy(hdr, DD_BUNDLE_MAGIC, 4);
	dd_put_le32(hdr + 4, DD_BUNDLE_VERSION);
	dd_put_le32(hdr + 8, 0);
	dd_buf_reset(b);
	return dd_buf_append(b, hdr, sizeof(hdr));
}

/* Whether a record may be added to `b`; *count: the records it holds. */
static int bundle_can_add(const struct dd_buf *b, uint32_t flags,
			  uint32_t plain_len, uint32_t stored_len,
			  uint32_t *count)
{
	if (b->len < DD_BUNDLE_HEADER_LEN ||
	    memcmp(b->data, DD_BUNDLE_MAGIC, 4) != 0)
		return dd_error_set(-EINVAL, "bundle not begun");
	*count = dd_le32(b->data + 8);
	if (*count >= DD_BUNDLE_MAX_COUNT)
		return dd_error_set(-E2BIG, "a bundle holds at most %u records",
				    DD_BUNDLE_MAX_COUNT);
	return check_record(flags, plain_len, stored_len, -EINVAL);
}

/* Writes the header of a record whose bytes already follow it, then
 * counts the record (room checked by the caller). */
static void bundle_put_record(struct dd_buf *b, const struct dd_id *id,
			      uint32_t flags, uint32_t plain_len,
			      uint32_t stored_len, uint32_t count)
{
	uint8_t *hdr = b->data + b->len;

	memcpy(hdr, id->b, DD_ID_LEN);
	dd_put_le32(hdr + 32, flags);
	dd_put_le32(hdr + 36, plain_len);
	dd_put_le32(hdr + 40, stored_len);
	b->len += DD_BUNDLE_RECORD_HEADER_LEN + (size_t)stored_len;
	dd_put_le32(b->data + 8, count + 1);
}

int dd_bundle_add(struct dd_buf *b, const struct dd_id *id, uint32_t flags,
		  uint32_t plain_len, const void *stored, uint32_t stored_len)
{
	uint32_t count;
	int err = bundle_can_add(b, flags, plain_len, stored_len, &count);

	if (err == 0)
		err = dd_buf_reserve(b, DD_BUNDLE_RECORD_HEADER_LEN +
				     (size_t)stored_len);
	if (err < 0)
		return err;
	if (stored_len)
		memcpy(b->data + b->len + DD_BUNDLE_RECORD_HEADER_LEN, stored,
		       stored_len);
	bundle_put_record(b, id, flags, plain_len, stored_len, count);
	return 0;
}

int dd_bundle_add_in_place(struct dd_buf *b, const struct dd_id *id,
			   uint32_t flags, uint32_t plain_len,
			   uint32_t stored_len)
{
	uint32_t count;
	int err = bundle_can_add(b, flags, plain_len, stored_len, &count);

	if (err < 0)
		return err;
	if (b->alloc - b->len < DD_BUNDLE_RECORD_HEADER_LEN + (size_t)stored_len)
		return dd_error_set(-EINVAL, "no room for the record's bytes");
	bundle_put_record(b, id, flags, plain_len, stored_len, count);
	return 0;
}

int dd_bundle_finish(struct dd_buf *b)
{
	if (b->len < DD_BUNDLE_HEADER_LEN ||
	    memcmp(b->data, DD_BUNDLE_MAGIC, 4) != 0)
		return dd_error_set(-EINVAL, "bundle not begun");
	/* The count is already current (dd_bundle_add keeps it so). */
	return 0;
}

int dd_bundle_reader_init(struct dd_bundle_reader *r, const void *body,
			  size_t len)
{
	const uint8_t *hdr;
	uint32_t version;

	r->cur.p = body;
	r->cur.left = len;
	r->count = 0;
	r->index = 0;
	if (dd_cursor_take(&r->cur, &hdr, DD_BUNDLE_HEADER_LEN) < 0)
		return dd_error_set(-EBADMSG, "bundle shorter than its header "
				    "(%zu bytes)", len);
	if (memcmp(hdr, DD_BUNDLE_MAGIC, 4) != 0)
		return dd_error_set(-EBADMSG, "not a chunk bundle (bad magic)");
	version = dd_le32(hdr + 4);
	if (version != DD_BUNDLE_VERSION)
		return dd_error_set(-EBADMSG, "unsupported bundle version %u",
				    version);
	r->count = dd_le32(hdr + 8);
	if (r->count > DD_BUNDLE_MAX_COUNT)
		return dd_error_set(-EBADMSG, "bundle claims %u records, the "
				    "limit is %u", r->count,
				    DD_BUNDLE_MAX_COUNT);
	if ((uint64_t)r->count * DD_BUNDLE_RECORD_HEADER_LEN > r->cur.left)
		return dd_error_set(-EBADMSG, "bundle claims %u records but has "
				    "only %zu bytes", r->count, len);
	return 0;
}

int dd_bundle_next(struct dd_bundle_reader *r, struct dd_bundle_record *rec)
{
	const uint8_t *hdr;
	int err;

	if (r->index >= r->count) {
		if (r->cur.left)
			return dd_error_set(-EBADMSG, "%zu trailing bytes after "
					    "the last bundle record",
					    r->cur.left);
		return 0;
	}
	if (dd_cursor_take(&r->cur, &hdr, DD_BUNDLE_RECORD_HEADER_LEN) < 0)
		return dd_error_set(-EBADMSG, "bundle record %u is truncated",
				    r->index);
	memcpy(rec->id.b, hdr, DD_ID_LEN);
	rec->flags = dd_le32(hdr + 32);
	rec->plain_len = dd_le32(hdr + 36);
	rec->stored_len = dd_le32(hdr + 40);
	err = check_record(rec->flags, rec->plain_len, rec->stored_len,
			   -EBADMSG);
	if (err < 0)
		return err;
	if (dd_cursor_take(&r->cur, &rec->data, rec->stored_len) < 0)
		return dd_error_set(-EBADMSG, "bundle record %u: %u stored "
				    "bytes but only %zu left", r->index,
				    rec->stored_len, r->cur.left);
	r->index++;
	return 1;
}
