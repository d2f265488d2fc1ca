/*
 * pack.c - append-only pack files (docs/FORMAT.md, "Pack file").
 *
 * The writer only ever appends at the offset it tracks, so a failed or
 * short write is overwritten by the next append instead of leaving a hole;
 * after a failed fdatasync the writer refuses further work (the kernel may
 * have dropped the dirty pages, so nothing written since the last good sync
 * can be acknowledged). Readers check every length against the file and the
 * chunk limits before using it.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunker.h"
#include "compress.h"
#include "pack.h"

#define PACK_MAGIC "DDPK"
#define RECORD_MAGIC "DDRC"
#define TRAILER_MAGIC "DDTR"
#define TRAILER_END_MAGIC "DDPE"
/* "DDTR" | u32 count */
#define TRAILER_HEAD_LEN 8u
/* sha256 | u64 trailer_offset | "DDPE" */
#define TRAILER_TAIL_LEN (32u + 8u + 4u)
#define TRAILER_MIN_LEN (TRAILER_HEAD_LEN + TRAILER_TAIL_LEN)
/* Trailer entries read per pread while scanning a sealed pack. */
#define SCAN_ENTRY_BLOCK 1024u
/* A run of pending records starts where its address is congruent to its
 * file offset modulo this (a page; dio.h's alignments divide it). */
#define PACK_PENDING_ALIGN 4096u

struct trailer_entry {
	struct dd_id id;
	uint64_t offset;
	uint32_t flags;
	uint32_t plain_len;
	uint32_t stored_len;
};

struct dd_pack_writer {
	struct dd_pack_sink sink;
	int failed;           /* sticky error after a failed flush */
	bool created;         /* the sink made the header durable */
	uint64_t seq;
	uint64_t size;        /* where the next record goes */
	uint64_t durable;     /* bytes the sink has made durable */
	struct dd_buf pending;/* records appended since the last sync, */
	size_t pad;           /* after this many filler bytes */
	size_t detached_pad;  /* the same of the detached run */
	struct dd_buf *lender;/* gets pending's memory back (lend_buf) */
	char *path;           /* the sink's name, for messages */
	struct trailer_entry *ents;
	size_t nents, aents;
};

/* The file sink of dd_pack_writer_new: a pack file in a directory. */
struct file_sink {
	int fd;
	uint64_t off;
	char *dir;
	char *path;
	bool created;
};

/* The limits every record, loc and trailer entry must respect. */
static int check_chunk(uint32_t flags, uint32_t plain_len,
		       uint32_t stored_len, int code, const char *what)
{
	if (plain_len > DD_CHUNK_SIZE_LIMIT)
		return dd_error_set(code, "%s of %u bytes is above the chunk "
				    "limit", what, plain_len);
	if (dd_stored_len_check(flags, plain_len, stored_len) < 0)
		return dd_error_set(code, "%s %s", what, dd_error_last());
	return 0;
}

static void id_hex(char out[DD_ID_HEX_LEN + 1], const struct dd_id *id)
{
	dd_id_to_hex(out, id);
}

/* ---- index value ---- */

static size_t loc_put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* A varint of at most `bits` bits from b[*off..len); -EBADMSG past the
 * end or the width. */
static int loc_get_varint(const uint8_t *b, size_t len, size_t *off,
			  unsigned bits, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;

	for (;;) {
		uint8_t c;

		if (*off >= len || shift >= bits)
			return -EBADMSG;
		c = b[(*off)++];
		if (shift == 63 && (c & 0x7e))
			return -EBADMSG;
		v |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
		if (!(c & 0x80))
			break;
	}
	if (bits < 64 && v >> bits)
		return -EBADMSG;
	*out = v;
	return 0;
}

size_t dd_chunk_loc_encode(uint8_t out[DD_CHUNK_LOC_MAX],
			   const struct dd_chunk_loc *loc)
{
	size_t n = 0;

	out[n++] = 2;
	n += loc_put_varint(out + n, loc->pack_seq);
	n += loc_put_varint(out + n, loc->offset);
	n += loc_put_varint(out + n, loc->flags);
	n += loc_put_varint(out + n, loc->plain_len);
	n += loc_put_varint(out + n, loc->stored_len);
	return n;
}

static int loc_decode_v1(struct dd_chunk_loc *loc, const uint8_t *b,
			 size_t len)
{
	if (len != DD_CHUNK_LOC_V1_LEN)
		return dd_error_set(-EBADMSG, "chunk location has %zu bytes, "
				    "expected %u", len, DD_CHUNK_LOC_V1_LEN);
	loc->pack_seq = dd_le64(b + 1);
	loc->offset = dd_le64(b + 9);
	loc->flags = dd_le32(b + 17);
	loc->plain_len = dd_le32(b + 21);
	loc->stored_len = dd_le32(b + 25);
	return 0;
}

static int loc_decode_v2(struct dd_chunk_loc *loc, const uint8_t *b,
			 size_t len)
{
	uint64_t v[5];
	size_t off = 1;
	int i;

	for (i = 0; i < 5; i++)
		if (loc_get_varint(b, len, &off, i < 2 ? 64 : 32, &v[i]) < 0)
			return dd_error_set(-EBADMSG, "chunk location field %d "
					    "is cut short or too wide", i);
	if (off != len)
		return dd_error_set(-EBADMSG, "chunk location has %zu bytes "
				    "after its fields", len - off);
	loc->pack_seq = v[0];
	loc->offset = v[1];
	loc->flags = (uint32_t)v[2];
	loc->plain_len = (uint32_t)v[3];
	loc->stored_len = (uint32_t)v[4];
	return 0;
}

int dd_chunk_loc_decode(struct dd_chunk_loc *out, const void *p, size_t len)
{
	const uint8_t *b = p;
	struct dd_chunk_loc loc;
	int err;

	if (len == 0)
		return dd_error_set(-EBADMSG, "chunk location is empty");
	if (b[0] == 1)
		err = loc_decode_v1(&loc, b, len);
	else if (b[0] == 2)
		err = loc_decode_v2(&loc, b, len);
	else
		err = dd_error_set(-EBADMSG, "unknown chunk location version "
				   "%u", b[0]);
	if (err < 0)
		return err;
	err = check_chunk(loc.flags, loc.plain_len, loc.stored_len, -EBADMSG,
			  "chunk location");
	if (err < 0)
		return err;
	if (loc.offset < DD_PACK_HEADER_LEN || loc.offset > (uint64_t)INT64_MAX)
		return dd_error_set(-EBADMSG, "chunk location has a bad offset "
				    "%llu", (unsigned long long)loc.offset);
	*out = loc;
	return 0;
}

void dd_pack_path(char *out, size_t outsz, const char *dir, uint64_t seq)
{
	snprintf(out, outsz, "%s/%016llx.pack", dir, (unsigned long long)seq);
}

/* ---- writer ---- */

static int file_sink_create(void *ctx, const void *hdr, size_t len)
{
	struct file_sink *f = ctx;
	int err;

	f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (f->fd < 0)
		return dd_error_set(-errno, "cannot create pack '%s': %s",
				    f->path, strerror(errno));
	f->created = true;
	err = dd_pwrite_all(f->fd, hdr, len, 0);
	if (err < 0)
		return dd_error_set(err, "cannot write pack '%s': %s", f->path,
				    strerror(-err));
	if (fdatasync(f->fd) < 0)
		return dd_error_set(-errno, "cannot sync pack '%s': %s",
				    f->path, strerror(errno));
	f->off = len;
	return dd_fsync_dir(f->dir);
}

/* pwrite at the tracked end, then fdatasync: the bytes are durable. */
static int file_sink_append(void *ctx, const void *data, size_t len)
{
	struct file_sink *f = ctx;
	int err = dd_pwrite_all(f->fd, data, len, (off_t)f->off);

	if (err < 0)
		return dd_error_set(err, "cannot write pack '%s': %s", f->path,
				    strerror(-err));
	if (fdatasync(f->fd) < 0)
		return dd_error_set(-errno, "cannot sync pack '%s': %s",
				    f->path, strerror(errno));
	f->off += len;
	return 0;
}

static int file_sink_cut(void *ctx, uint64_t size)
{
	struct file_sink *f = ctx;

	if (ftruncate(f->fd, (off_t)size) < 0 || fdatasync(f->fd) < 0)
		return -errno;
	f->off = size;
	return 0;
}

static void file_sink_close(void *ctx, bool failed)
{
	struct file_sink *f = ctx;

	if (f->fd >= 0)
		close(f->fd);
	/* A pack whose header never became durable holds nothing. */
	if (failed && f->created)
		unlink(f->path);
	free(f->dir);
	free(f->path);
	free(f);
}

int dd_pack_writer_new(struct dd_pack_writer **out, const char *dir,
		       uint64_t seq)
{
	struct dd_pack_sink sink;
	struct file_sink *f;
	size_t plen = strlen(dir) + 24;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return dd_error_set(-ENOMEM, "out of memory");
	f->fd = -1;
	f->dir = strdup(dir);
	f->path = malloc(plen);
	if (!f->dir || !f->path) {
		file_sink_close(f, false);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	dd_pack_path(f->path, plen, dir, seq);
	sink.name = f->path;
	sink.create = file_sink_create;
	sink.append = file_sink_append;
	sink.cut = file_sink_cut;
	sink.close = file_sink_close;
	sink.ctx = f;
	return dd_pack_writer_open(out, &sink, seq);
}

int dd_pack_writer_open(struct dd_pack_writer **out,
			const struct dd_pack_sink *sink, uint64_t seq)
{
	struct dd_pack_writer *w;
	uint8_t hdr[DD_PACK_HEADER_LEN];
	int err;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w) {
		if (sink->close)
			sink->close(sink->ctx, false);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	w->sink = *sink;
	w->seq = seq;
	w->size = DD_PACK_HEADER_LEN;
	w->durable = DD_PACK_HEADER_LEN;
	dd_buf_init(&w->pending, 0);
	w->path = strdup(sink->name ? sink->name : "pack");
	if (!w->path) {
		err = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	memcpy(hdr, PACK_MAGIC, 4);
	dd_put_le32(hdr + 4, DD_PACK_VERSION);
	dd_put_le64(hdr + 8, seq);
	err = sink->create(sink->ctx, hdr, sizeof(hdr));
	if (err < 0)
		goto cleanup;
	w->created = true;
	*out = w;
	return 0;

cleanup:
	w->failed = err;
	dd_pack_writer_free(w);
	return err;
}

int dd_pack_writer_append(struct dd_pack_writer *w, const struct dd_id *id,
			  uint32_t flags, uint32_t plain_len,
			  const void *stored, uint32_t stored_len,
			  struct dd_chunk_loc *loc)
{
	uint8_t hdr[DD_PACK_RECORD_HEADER_LEN];
	struct trailer_entry *e;
	int err;

	if (w->failed)
		return dd_error_set(w->failed, "pack '%s' failed earlier (%s) "
				    "and accepts no more records", w->path,
				    strerror(-w->failed));
	err = check_chunk(flags, plain_len, stored_len, -EINVAL, "record");
	if (err < 0)
		return err;
	if (w->nents >= UINT32_MAX)
		return dd_error_set(-E2BIG, "pack '%s' is full", w->path);
	if (w->size > (uint64_t)INT64_MAX - DD_PACK_RECORD_HEADER_LEN -
		      stored_len)
		return dd_error_set(-E2BIG, "pack '%s' is full", w->path);
	/* Grow the trailer list first so nothing fails after the write. */
	if (w->nents == w->aents) {
		size_t n = w->aents ? w->aents * 2 : 64;

		e = realloc(w->ents, n * sizeof(*e));
		if (!e)
			return dd_error_set(-ENOMEM, "out of memory");
		w->ents = e;
		w->aents = n;
	}
	if (w->pending.len == 0) {
		/* The run's first byte goes where its address is congruent
		 * to its file offset, so that a sink writing past the page
		 * cache writes whole blocks straight from here (dio.h);
		 * kept while the buffer does not move (lend_buf). */
		err = dd_buf_reserve(&w->pending, PACK_PENDING_ALIGN - 1 +
				     sizeof(hdr) + stored_len);
		if (err < 0)
			return dd_error_set(err, "out of memory");
		w->pad = (size_t)((w->size - (uintptr_t)w->pending.data) &
				  (PACK_PENDING_ALIGN - 1));
		w->pending.len = w->pad;
	}
	err = dd_buf_reserve(&w->pending, sizeof(hdr) + stored_len);
	if (err < 0)
		return dd_error_set(err, "out of memory");
	memcpy(hdr, RECORD_MAGIC, 4);
	memcpy(hdr + 4, id->b, DD_ID_LEN);
	dd_put_le32(hdr + 36, flags);
	dd_put_le32(hdr + 40, plain_len);
	dd_put_le32(hdr + 44, stored_len);
	dd_buf_append(&w->pending, hdr, sizeof(hdr));
	if (stored_len)
		dd_buf_append(&w->pending, stored, stored_len);
	e = &w->ents[w->nents++];
	e->id = *id;
	e->offset = w->size;
	e->flags = flags;
	e->plain_len = plain_len;
	e->stored_len = stored_len;
	if (loc) {
		loc->pack_seq = w->seq;
		loc->offset = w->size;
		loc->flags = flags;
		loc->plain_len = plain_len;
		loc->stored_len = stored_len;
	}
	w->size += sizeof(hdr) + stored_len;
	return 0;
}

/* Hands the pending records (and `extra`, the trailer) to the sink in one
 * durable append. On failure the writer refuses further work, and a sink
 * that can cut takes the torn part off again. */
static int writer_flush(struct dd_pack_writer *w, const void *extra,
			size_t extra_len)
{
	int err;

	if (extra_len) {
		err = dd_buf_reserve(&w->pending, extra_len);
		if (err < 0)
			return dd_error_set(err, "out of memory");
		dd_buf_append(&w->pending, extra, extra_len);
	}
	if (w->pending.len == w->pad) {
		dd_buf_reset(&w->pending);
		w->pad = 0;
		return 0;
	}
	err = w->sink.append(w->sink.ctx, w->pending.data + w->pad,
			     w->pending.len - w->pad);
	if (err < 0) {
		w->failed = err;
		if (w->sink.cut)
			(void)w->sink.cut(w->sink.ctx, w->durable);
		w->pending.len = extra_len <= w->pending.len ?
				 w->pending.len - extra_len : 0;
		return err;
	}
	w->durable += w->pending.len - w->pad - extra_len;
	dd_buf_reset(&w->pending);
	w->pad = 0;
	return 0;
}

int dd_pack_writer_sync(struct dd_pack_writer *w)
{
	if (w->failed)
		return dd_error_set(w->failed, "pack '%s' failed earlier (%s)",
				    w->path, strerror(-w->failed));
	return writer_flush(w, NULL, 0);
}

int dd_pack_writer_detach(struct dd_pack_writer *w, struct dd_buf *out)
{
	struct dd_buf spare = *out;

	if (w->failed)
		return dd_error_set(w->failed, "pack '%s' failed earlier (%s)",
				    w->path, strerror(-w->failed));
	dd_buf_reset(&spare);
	*out = w->pending;
	w->detached_pad = w->pad;
	w->pending = spare;
	w->pad = 0;
	return 0;
}

int dd_pack_writer_write_detached(struct dd_pack_writer *w,
				  const struct dd_buf *buf)
{
	if (buf->len <= w->detached_pad)
		return 0;
	return w->sink.append(w->sink.ctx, buf->data + w->detached_pad,
			      buf->len - w->detached_pad);
}

void dd_pack_writer_detached_done(struct dd_pack_writer *w, size_t len,
				  int err)
{
	if (err == 0) {
		w->durable += len > w->detached_pad ? len - w->detached_pad : 0;
		return;
	}
	w->failed = err;
	if (w->sink.cut)
		(void)w->sink.cut(w->sink.ctx, w->durable);
}

void dd_pack_writer_lend_buf(struct dd_pack_writer *w, struct dd_buf *buf)
{
	struct dd_buf mine = w->pending;

	assert(!w->lender && mine.len == 0);
	dd_buf_reset(buf);
	w->pending = *buf;
	*buf = mine;
	w->lender = buf;
}

uint64_t dd_pack_writer_size(const struct dd_pack_writer *w)
{
	return w->size;
}

uint64_t dd_pack_writer_seq(const struct dd_pack_writer *w)
{
	return w->seq;
}

int dd_pack_writer_seal(struct dd_pack_writer *w)
{
	struct dd_buf t;
	struct dd_id sum;
	size_t i;
	int err;

	dd_buf_init(&t, 0);
	if (w->failed) {
		err = dd_error_set(w->failed, "pack '%s' failed earlier (%s) "
				   "and cannot be sealed", w->path,
				   strerror(-w->failed));
		goto cleanup;
	}
	err = dd_buf_reserve(&t, DD_PACK_TRAILER_LEN(w->nents));
	if (err < 0)
		goto cleanup;
	dd_buf_append(&t, TRAILER_MAGIC, 4);
	dd_buf_append_le32(&t, (uint32_t)w->nents);
	for (i = 0; i < w->nents; i++) {
		const struct trailer_entry *e = &w->ents[i];

		dd_buf_append(&t, e->id.b, DD_ID_LEN);
		dd_buf_append_le64(&t, e->offset);
		dd_buf_append_le32(&t, e->flags);
		dd_buf_append_le32(&t, e->plain_len);
		dd_buf_append_le32(&t, e->stored_len);
	}
	dd_sha256(&sum, t.data, t.len);
	dd_buf_append(&t, sum.b, DD_ID_LEN);
	dd_buf_append_le64(&t, w->size);
	dd_buf_append(&t, TRAILER_END_MAGIC, 4);
	/* A trailer cut short (a full disk) would make the pack read as
	 * damaged: a sink that can cut takes the torn part off, so it stays
	 * a whole unsealed pack, which is valid. */
	err = writer_flush(w, t.data, t.len);
	if (err < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", dd_error_last());
		dd_error_set(err, "cannot write the trailer of pack '%s': %s",
			     w->path, why);
		goto cleanup;
	}

cleanup:
	dd_buf_release(&t);
	dd_pack_writer_free(w);
	return err;
}

void dd_pack_writer_free(struct dd_pack_writer *w)
{
	if (!w)
		return;
	/* Records never synced still go out, not durable (the pack stays
	 * readable by scanning); after a failure nothing more is written. */
	if (!w->failed && w->pending.len)
		(void)writer_flush(w, NULL, 0);
	if (w->sink.close)
		w->sink.close(w->sink.ctx, !w->created);
	if (w->lender) {
		struct dd_buf back = *w->lender;

		dd_buf_reset(&w->pending);
		*w->lender = w->pending;
		w->pending = back;
	}
	dd_buf_release(&w->pending);
	free(w->ents);
	free(w->path);
	free(w);
}

/* ---- reading ---- */

/* The file source of the path and fd entry points. */
static int fd_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return dd_pread_all(*(int *)ctx, buf, len, (off_t)off);
}

/* Opens a pack file as a source: *fd is the caller's to close. */
static int fd_src_open(struct dd_pack_src *src, int *fd, const char *path)
{
	struct stat st;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return dd_error_set(-errno, "cannot open pack '%s': %s", path,
				    strerror(errno));
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(*fd);
		*fd = -1;
		return dd_error_set(-EBADMSG, "pack '%s' is not a regular file",
				    path);
	}
	src->name = path;
	src->size = (uint64_t)st.st_size;
	src->read = fd_src_read;
	src->ctx = fd;
	return 0;
}

/* Reads exactly len bytes at off; -EBADMSG when the pack ends first. */
static int src_read(const struct dd_pack_src *src, void *buf, size_t len,
		    uint64_t off)
{
	if (off > src->size || src->size - off < len)
		return dd_error_set(-EBADMSG, "file too short");
	return src->read(src->ctx, buf, len, off);
}

/* Checks a record header read at loc->offset against *id and *loc. */
static int check_record_header(const uint8_t *hdr, const char *hex,
			       const struct dd_id *id,
			       const struct dd_chunk_loc *loc)
{
	if (memcmp(hdr, RECORD_MAGIC, 4) != 0)
		return dd_error_set(-EBADMSG, "chunk %s: no record at pack "
				    "offset %llu", hex,
				    (unsigned long long)loc->offset);
	if (memcmp(hdr + 4, id->b, DD_ID_LEN) != 0)
		return dd_error_set(-EBADMSG, "chunk %s: pack record at offset "
				    "%llu holds another chunk", hex,
				    (unsigned long long)loc->offset);
	if (dd_le32(hdr + 36) != loc->flags ||
	    dd_le32(hdr + 40) != loc->plain_len ||
	    dd_le32(hdr + 44) != loc->stored_len)
		return dd_error_set(-EBADMSG, "chunk %s: pack record at offset "
				    "%llu does not match the index", hex,
				    (unsigned long long)loc->offset);
	return 0;
}

static int check_loc(const char *hex, const struct dd_chunk_loc *loc)
{
	int err = check_chunk(loc->flags, loc->plain_len, loc->stored_len,
			      -EBADMSG, "chunk location");

	if (err < 0)
		return err;
	if (loc->offset < DD_PACK_HEADER_LEN ||
	    loc->offset > (uint64_t)INT64_MAX - DD_PACK_RECORD_HEADER_LEN -
			  loc->stored_len)
		return dd_error_set(-EBADMSG, "chunk %s: bad pack offset %llu",
				    hex, (unsigned long long)loc->offset);
	return 0;
}

int dd_pack_loc_check(const struct dd_id *id, const struct dd_chunk_loc *loc)
{
	char hex[DD_ID_HEX_LEN + 1];

	id_hex(hex, id);
	return check_loc(hex, loc);
}

int dd_pack_record_check(const uint8_t *rec, const struct dd_id *id,
			 const struct dd_chunk_loc *loc)
{
	char hex[DD_ID_HEX_LEN + 1];

	id_hex(hex, id);
	return check_record_header(rec, hex, id, loc);
}

int dd_pack_read_record_to(dd_pack_read_fn read, void *ctx,
			   const struct dd_id *id,
			   const struct dd_chunk_loc *loc, uint8_t *buf)
{
	char hex[DD_ID_HEX_LEN + 1];
	int err;

	id_hex(hex, id);
	err = check_loc(hex, loc);
	if (err < 0)
		return err;
	/* Header and bytes in one read (one round trip on a remote store). */
	err = read(ctx, buf, DD_PACK_RECORD_HEADER_LEN + loc->stored_len,
		   loc->offset);
	if (err == -EBADMSG)
		return dd_error_set(err, "chunk %s: pack ends inside the record "
				    "at offset %llu", hex,
				    (unsigned long long)loc->offset);
	if (err < 0)
		return dd_error_set(err, "chunk %s: cannot read pack at offset "
				    "%llu: %s", hex,
				    (unsigned long long)loc->offset,
				    strerror(-err));
	return check_record_header(buf, hex, id, loc);
}

int dd_pack_read_record_with(dd_pack_read_fn read, void *ctx,
			     const struct dd_id *id,
			     const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	char hex[DD_ID_HEX_LEN + 1];
	int err;

	dd_buf_reset(out);
	id_hex(hex, id);
	err = check_loc(hex, loc);
	if (err < 0)
		return err;
	err = dd_buf_reserve(out, DD_PACK_RECORD_HEADER_LEN + loc->stored_len);
	if (err < 0)
		return err;
	err = dd_pack_read_record_to(read, ctx, id, loc, out->data);
	if (err < 0)
		return err;
	/* The bytes moved down over the header. */
	memmove(out->data, out->data + DD_PACK_RECORD_HEADER_LEN,
		loc->stored_len);
	out->len = loc->stored_len;
	return 0;
}

int dd_pack_read_record(int fd, const struct dd_id *id,
			const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	return dd_pack_read_record_with(fd_src_read, &fd, id, loc, out);
}

/*
 * Looks for a trailer at the end of the file. Returns 1 and fills *toff and
 * *count when one is present and its checksum holds, 0 when the file does
 * not end in a trailer (unsealed), -EBADMSG when it does but the checksum
 * fails. A trailer counts as present only when "DDPE" ends the file, its
 * offset points at "DDTR" and the count accounts for every byte in between:
 * an unsealed pack whose last chunk merely ends in "DDPE" stays unsealed.
 */
static int find_trailer(const struct dd_pack_src *src, uint64_t *toff,
			uint32_t *count)
{
	uint8_t tail[TRAILER_TAIL_LEN], head[TRAILER_HEAD_LEN];
	uint8_t block[16384];
	struct dd_sha256_ctx *sha = NULL;
	struct dd_id sum;
	const char *path = src->name;
	uint64_t size = src->size, off, end, n;
	int err;

	if (size < DD_PACK_HEADER_LEN + TRAILER_MIN_LEN)
		return 0;
	err = src_read(src, tail, sizeof(tail), size - sizeof(tail));
	if (err < 0)
		return err;
	if (memcmp(tail + 40, TRAILER_END_MAGIC, 4) != 0)
		return 0;
	off = dd_le64(tail + 32);
	if (off < DD_PACK_HEADER_LEN || off > size - TRAILER_MIN_LEN)
		return 0;
	err = src_read(src, head, sizeof(head), off);
	if (err < 0)
		return err;
	if (memcmp(head, TRAILER_MAGIC, 4) != 0)
		return 0;
	n = dd_le32(head + 4);
	if ((size - off - TRAILER_MIN_LEN) != n * DD_PACK_TRAILER_ENTRY_LEN)
		return 0;

	sha = dd_sha256_new();
	if (!sha)
		return dd_error_set(-ENOMEM, "out of memory");
	end = size - TRAILER_TAIL_LEN;
	for (; off < end; ) {
		size_t step = end - off < sizeof(block) ?
			      (size_t)(end - off) : sizeof(block);

		err = src_read(src, block, step, off);
		if (err < 0)
			goto cleanup;
		dd_sha256_update(sha, block, step);
		off += step;
	}
	dd_sha256_final(sha, &sum);
	if (memcmp(sum.b, tail, DD_ID_LEN) != 0) {
		err = dd_error_set(-EBADMSG, "pack '%s': trailer checksum "
				   "mismatch", path);
		goto cleanup;
	}
	*toff = dd_le64(tail + 32);
	*count = (uint32_t)n;
	err = 1;

cleanup:
	dd_sha256_free(sha);
	return err;
}

/* The sequence number a canonical pack name ("<16 hex>.pack") carries;
 * false for any other name. */
static bool seq_from_name(const char *path, uint64_t *seq)
{
	const char *base = strrchr(path, '/');
	uint64_t v = 0;
	int i;

	base = base ? base + 1 : path;
	if (strlen(base) != 21 || strcmp(base + 16, ".pack") != 0)
		return false;
	for (i = 0; i < 16; i++) {
		char ch = base[i];
		unsigned d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*seq = v;
	return true;
}

int dd_pack_scan(const char *path, dd_pack_scan_cb cb, void *payload,
		 bool *sealed)
{
	struct dd_pack_src src;
	int fd, err;

	if (sealed)
		*sealed = false;
	err = fd_src_open(&src, &fd, path);
	if (err < 0)
		return err;
	err = dd_pack_scan_src(&src, cb, payload, sealed);
	close(fd);
	return err;
}

int dd_pack_scan_src(const struct dd_pack_src *src, dd_pack_scan_cb cb,
		     void *payload, bool *sealed)
{
	const char *path = src->name;
	uint64_t name_seq;
	uint8_t hdr[DD_PACK_RECORD_HEADER_LEN];
	uint8_t *ents = NULL;
	struct dd_buf data;
	uint64_t seq, size, end, off, toff = 0;
	uint32_t count = 0, i = 0, version;
	bool is_sealed = false, torn = false;
	int err = 0;

	if (sealed)
		*sealed = false;
	dd_buf_init(&data, dd_stored_len_bound(DD_CHUNK_SIZE_LIMIT));
	size = src->size;
	if (size < DD_PACK_HEADER_LEN) {
		err = dd_error_set(-EBADMSG, "pack '%s' is shorter than its "
				   "header", path);
		goto cleanup;
	}
	err = src_read(src, hdr, DD_PACK_HEADER_LEN, 0);
	if (err < 0)
		goto cleanup;
	version = dd_le32(hdr + 4);
	seq = dd_le64(hdr + 8);
	if (memcmp(hdr, PACK_MAGIC, 4) != 0 || version != DD_PACK_VERSION) {
		err = dd_error_set(-EBADMSG, "pack '%s' has a bad header", path);
		goto cleanup;
	}
	/* Nothing else covers the header's sequence number: check it against
	 * the name, which is what the index and the store go by. */
	if (seq_from_name(path, &name_seq) && name_seq != seq) {
		err = dd_error_set(-EBADMSG, "pack '%s' says it is pack %016llx",
				   path, (unsigned long long)seq);
		goto cleanup;
	}

	err = find_trailer(src, &toff, &count);
	if (err < 0)
		goto cleanup;
	is_sealed = err == 1;
	err = 0;
	end = is_sealed ? toff : size;
	if (is_sealed) {
		ents = malloc(SCAN_ENTRY_BLOCK * DD_PACK_TRAILER_ENTRY_LEN);
		if (!ents) {
			err = dd_error_set(-ENOMEM, "out of memory");
			goto cleanup;
		}
	}

	/* In a sealed pack every record up to the trailer must be whole and
	 * listed; in an unsealed one the first bad record ends the scan.
	 * Records are reported as they are read, so a sealed pack whose
	 * trailer disagrees late may have reported some records first. */
	for (off = DD_PACK_HEADER_LEN; off < end; i++) {
		struct dd_chunk_loc loc;
		struct dd_id id;
		const uint8_t *ent;

		if (end - off < DD_PACK_RECORD_HEADER_LEN) {
			torn = true;
			break;
		}
		err = src_read(src, hdr, sizeof(hdr), off);
		if (err < 0)
			goto cleanup;
		if (memcmp(hdr, RECORD_MAGIC, 4) != 0) {
			torn = true;
			break;
		}
		memcpy(id.b, hdr + 4, DD_ID_LEN);
		loc.pack_seq = seq;
		loc.offset = off;
		loc.flags = dd_le32(hdr + 36);
		loc.plain_len = dd_le32(hdr + 40);
		loc.stored_len = dd_le32(hdr + 44);
		if (check_chunk(loc.flags, loc.plain_len, loc.stored_len,
				-EBADMSG, "pack record") < 0 ||
		    end - off - DD_PACK_RECORD_HEADER_LEN < loc.stored_len) {
			torn = true;
			break;
		}
		if (is_sealed) {
			if (i >= count) {
				err = dd_error_set(-EBADMSG, "pack '%s': record "
						   "at offset %llu is not in "
						   "the trailer", path,
						   (unsigned long long)off);
				goto cleanup;
			}
			if (i % SCAN_ENTRY_BLOCK == 0) {
				uint32_t k = count - i < SCAN_ENTRY_BLOCK ?
					     count - i : SCAN_ENTRY_BLOCK;

				err = src_read(src, ents,
					       (size_t)k *
					       DD_PACK_TRAILER_ENTRY_LEN,
					       toff + TRAILER_HEAD_LEN +
					       (uint64_t)i *
					       DD_PACK_TRAILER_ENTRY_LEN);
				if (err < 0)
					goto cleanup;
			}
			ent = ents + (size_t)(i % SCAN_ENTRY_BLOCK) *
				     DD_PACK_TRAILER_ENTRY_LEN;
			if (memcmp(ent, id.b, DD_ID_LEN) != 0 ||
			    dd_le64(ent + 32) != off ||
			    dd_le32(ent + 40) != loc.flags ||
			    dd_le32(ent + 44) != loc.plain_len ||
			    dd_le32(ent + 48) != loc.stored_len) {
				err = dd_error_set(-EBADMSG, "pack '%s': trailer "
						   "entry %u does not match the "
						   "record at offset %llu",
						   path, i,
						   (unsigned long long)off);
				goto cleanup;
			}
		}
		dd_buf_reset(&data);
		err = dd_buf_reserve(&data, loc.stored_len ? loc.stored_len : 1);
		if (err < 0)
			goto cleanup;
		if (loc.stored_len) {
			err = src_read(src, data.data, loc.stored_len,
				       off + DD_PACK_RECORD_HEADER_LEN);
			if (err < 0)
				goto cleanup;
		}
		err = cb(payload, &id, &loc, data.data);
		if (err)
			goto cleanup;
		off += DD_PACK_RECORD_HEADER_LEN + loc.stored_len;
	}
	/* An unsealed pack ends at its first torn record: the quiet case. */
	if (torn && is_sealed) {
		err = dd_error_set(-EBADMSG, "pack '%s': bad record at offset "
				   "%llu before the trailer", path,
				   (unsigned long long)off);
		goto cleanup;
	}
	if (is_sealed && i != count) {
		err = dd_error_set(-EBADMSG, "pack '%s': trailer lists %u "
				   "records, found %u", path, count, i);
		goto cleanup;
	}
	if (sealed)
		*sealed = is_sealed;

cleanup:
	free(ents);
	dd_buf_release(&data);
	return err;
}

/* ---- salvage ---- */

#define SALVAGE_BLOCK (1u << 20)

/* The first record magic in p[0..n), or NULL. */
static const uint8_t *find_record_magic(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n, *q = p;

	while (end - q >= 4 && (q = memchr(q, 'D', (size_t)(end - q - 3)))) {
		if (memcmp(q, RECORD_MAGIC, 4) == 0)
			return q;
		q++;
	}
	return NULL;
}

int dd_pack_salvage(const char *path, uint64_t seq, uint64_t from,
		    dd_pack_scan_cb cb, void *payload)
{
	struct dd_pack_src src;
	int fd, err;

	err = fd_src_open(&src, &fd, path);
	if (err < 0)
		return err;
	err = dd_pack_salvage_src(&src, seq, from, cb, payload);
	close(fd);
	return err;
}

int dd_pack_salvage_src(const struct dd_pack_src *src, uint64_t seq,
			uint64_t from, dd_pack_scan_cb cb, void *payload)
{
	uint8_t hdr[DD_PACK_RECORD_HEADER_LEN];
	uint8_t *block = NULL;
	struct dd_buf data;
	uint64_t size, pos;
	int err = 0;

	dd_buf_init(&data, dd_stored_len_bound(DD_CHUNK_SIZE_LIMIT));
	size = src->size;
	block = malloc(size < SALVAGE_BLOCK ? (size_t)size + 1 : SALVAGE_BLOCK);
	if (!block) {
		err = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	pos = from < DD_PACK_HEADER_LEN ? DD_PACK_HEADER_LEN : from;
	while (pos + DD_PACK_RECORD_HEADER_LEN <= size) {
		size_t want = size - pos < SALVAGE_BLOCK ?
			      (size_t)(size - pos) : SALVAGE_BLOCK;
		struct dd_chunk_loc loc;
		struct dd_id id;
		const uint8_t *hit;
		uint64_t off;

		err = src_read(src, block, want, pos);
		if (err < 0)
			goto cleanup;
		hit = find_record_magic(block, want);
		if (!hit) {
			/* A magic may straddle the block's end. */
			if (want < SALVAGE_BLOCK)
				break;
			pos += want - 3;
			continue;
		}
		off = pos + (uint64_t)(hit - block);
		pos = off + 1;
		if (off + DD_PACK_RECORD_HEADER_LEN > size)
			break;
		err = src_read(src, hdr, sizeof(hdr), off);
		if (err < 0)
			goto cleanup;
		memcpy(id.b, hdr + 4, DD_ID_LEN);
		loc.pack_seq = seq;
		loc.offset = off;
		loc.flags = dd_le32(hdr + 36);
		loc.plain_len = dd_le32(hdr + 40);
		loc.stored_len = dd_le32(hdr + 44);
		if (check_chunk(loc.flags, loc.plain_len, loc.stored_len,
				-EBADMSG, "pack record") < 0 ||
		    size - off - DD_PACK_RECORD_HEADER_LEN < loc.stored_len)
			continue;
		dd_buf_reset(&data);
		err = dd_buf_reserve(&data, loc.stored_len ? loc.stored_len : 1);
		if (err < 0)
			goto cleanup;
		if (loc.stored_len) {
			err = src_read(src, data.data, loc.stored_len,
				       off + DD_PACK_RECORD_HEADER_LEN);
			if (err < 0)
				goto cleanup;
		}
		err = cb(payload, &id, &loc, data.data);
		if (err < 0)
			goto cleanup;
		if (err == DD_PACK_SALVAGE_TAKEN)
			pos = off + DD_PACK_RECORD_HEADER_LEN + loc.stored_len;
		err = 0;
	}
	dd_error_clear();

cleanup:
	free(block);
	dd_buf_release(&data);
	return err;
}
