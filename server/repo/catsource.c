/*
 * catsource.c - a stored catalog streamed through the catalog reader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "backend.h"
#include "util.h"
#include "catsource.h"
#include "log.h"
#include "store.h"

struct catsource {
	struct store *st;
	const struct dd_id *ids;
	size_t n, next, pos;
	/* The stream offset of byte 0 of chunk `next - 1` (the one in
	 * `plain`) and of the one before. The reader pulls the rest of the
	 * current chunk at most beyond the entry it needs, so an entry it
	 * hands out starts in one of the two, or further back only when it
	 * is larger than a chunk (no position is then given). */
	int64_t cur_start, prev_start;
	uint64_t delivered;   /* bytes handed to the reader */
	/* catsource_new_at: a catalog header handed out first. */
	uint8_t hdr[DD_CATALOG_HEADER_LEN];
	size_t hdr_left;
	struct dd_buf plain, scratch;
	ZSTD_DCtx *dctx;
	struct dd_catalog_reader *r;
	int err;              /* a store failure, not a catalog format error */
	char why[512];
};

/* dd_catalog_read_fn: the catalog chunks' plain bytes, one after the
 * other, each verified against its id as it is loaded. */
static ssize_t catsource_read(void *payload, void *buf, size_t len)
{
	struct catsource *src = payload;
	size_t n;
	int rc;

	if (src->hdr_left) {
		n = len < src->hdr_left ? len : src->hdr_left;
		memcpy(buf, src->hdr + sizeof(src->hdr) - src->hdr_left, n);
		src->hdr_left -= n;
		src->delivered += n;
		return (ssize_t)n;
	}
	while (src->pos == src->plain.len) {
		if (src->next == src->n)
			return 0;
		rc = store_read_plain(src->st, &src->ids[src->next],
				      &src->plain, &src->scratch, src->dctx);
		if (rc < 0) {
			char hex[DD_ID_HEX_LEN + 1];

			dd_id_to_hex(hex, &src->ids[src->next]);
			if (rc == -ENOENT)
				snprintf(src->why, sizeof(src->why),
					 "snapshot references missing chunk %s",
					 hex);
			else
				snprintf(src->why, sizeof(src->why), "%s",
					 log_reason(rc));
			/* A sealed chunk cannot be a catalog the server reads:
			 * an encrypted snapshot names its plain reference list
			 * (docs/ENCRYPTION.md). */
			src->err = rc == -ENOENT ? -ENOENT :
				   rc == -ENOTSUP ? -EBADMSG :
				   backend_unavailable(rc) ? rc : -EIO;
			return -EIO;
		}
		src->next++;
		src->prev_start = src->cur_start;
		src->cur_start = (int64_t)src->delivered;
		src->pos = 0;
	}
	n = src->plain.len - src->pos;
	if (n > len)
		n = len;
	memcpy(buf, src->plain.data + src->pos, n);
	src->pos += n;
	src->delivered += n;
	return (ssize_t)n;
}

int catsource_new(struct catsource **out, struct store *st,
		  const struct dd_id *ids, size_t n)
{
	struct catsource *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return dd_error_set(-ENOMEM, "out of memory");
	s->st = st;
	s->ids = ids;
	s->n = n;
	dd_buf_init(&s->plain, 0);
	dd_buf_init(&s->scratch, 0);
	if (!(s->dctx = ZSTD_createDCtx())) {
		catsource_free(s);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	if ((rc = dd_catalog_reader_new(&s->r, catsource_read, s)) < 0) {
		catsource_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int catsource_new_at(struct catsource **out, struct store *st,
		     const struct dd_id *ids, size_t n, uint32_t version,
		     const struct catsource_pos *at)
{
	struct catsource *s;
	int rc;

	*out = NULL;
	if (at->chunk >= n)
		return dd_error_set(-EINVAL, "catalog position past its end");
	if ((rc = catsource_new(&s, st, ids, n)) < 0)
		return rc;
	memcpy(s->hdr, "DDCT", 4);
	dd_put_le32(s->hdr + 4, version);
	s->hdr_left = sizeof(s->hdr);
	/* chunk `at->chunk` is read whole, its first at->off bytes skipped:
	 * as if the header were its last bytes before the entry */
	rc = store_read_plain(st, &ids[at->chunk], &s->plain, &s->scratch,
			      s->dctx);
	if (rc == 0 && at->off >= s->plain.len)
		rc = dd_error_set(-EINVAL, "catalog position past its chunk");
	if (rc < 0) {
		catsource_free(s);
		/* as catsource_read tells its failures */
		if (rc == -ENOTSUP)
			return dd_error_set(-EBADMSG, "a catalog chunk is "
					    "sealed");
		return rc == -EINVAL || rc == -ENOMEM ? rc :
		       dd_error_set(-EIO, "%s", log_reason(rc));
	}
	s->next = at->chunk + 1;
	s->pos = at->off;
	s->cur_start = (int64_t)DD_CATALOG_HEADER_LEN - (int64_t)at->off;
	s->prev_start = INT64_MIN;
	*out = s;
	return 0;
}

int catsource_entry_pos(const struct catsource *s, struct catsource_pos *out)
{
	int64_t e = (int64_t)dd_catalog_entry_offset(s->r);

	if (s->next > 0 && e >= s->cur_start) {
		out->chunk = s->next - 1;
		out->off = (uint32_t)(e - s->cur_start);
		return 0;
	}
	if (s->next > 1 && s->prev_start != INT64_MIN && e >= s->prev_start) {
		out->chunk = s->next - 2;
		out->off = (uint32_t)(e - s->prev_start);
		return 0;
	}
	return -ERANGE;
}

uint32_t catsource_version(const struct catsource *s)
{
	return dd_catalog_version(s->r);
}

int catsource_next(struct catsource *s, struct dd_entry *e)
{
	int rc;

	dd_error_clear();
	rc = dd_catalog_next(s->r, e);
	if (rc >= 0)
		return rc;
	if (s->err)
		return dd_error_set(s->err, "%s", s->why);
	if (rc == -ENOMEM)
		return rc;
	/* The reader recorded why the bytes are malformed. */
	return -EBADMSG;
}

int catsource_each_chunk(struct store *st, const struct dd_id *ids, size_t n,
			 catsource_chunk_fn fn, void *arg)
{
	struct catsource *src = NULL;
	struct dd_entry e;
	uint64_t i;
	int rc;

	rc = catsource_new(&src, st, ids, n);
	while (rc == 0) {
		rc = catsource_next(src, &e);
		if (rc <= 0)
			break;
		rc = 0;
		for (i = 0; rc == 0 && i < e.nchunks; i++)
			if (!dd_chunk_ref_is_hole(&e.chunks[i]))
				rc = fn(arg, &e.chunks[i]);
	}
	catsource_free(src);
	return rc;
}

void catsource_free(struct catsource *s)
{
	if (!s)
		return;
	dd_catalog_reader_free(s->r);
	ZSTD_freeDCtx(s->dctx);
	dd_buf_release(&s->plain);
	dd_buf_release(&s->scratch);
	free(s);
}
