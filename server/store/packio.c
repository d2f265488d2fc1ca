/*
 * packio.c - packs as backend objects (packio.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packio.h"
#include "util.h"

void packio_name(char *out, uint64_t seq)
{
	snprintf(out, PACKIO_NAME_MAX, PACKIO_PREFIX "%016llx.pack",
		 (unsigned long long)seq);
}

void packio_display(char *out, size_t outsz, struct backend *be,
		    uint64_t seq)
{
	char name[PACKIO_NAME_MAX];

	packio_name(name, seq);
	if (strcmp(backend_kind(be), "dir") == 0)
		snprintf(out, outsz, "%s/%s", backend_where(be), name);
	else
		snprintf(out, outsz, "%s:%s:%s", backend_kind(be),
			 backend_where(be), name);
}

uint64_t packio_target(struct backend *be)
{
	return strcmp(backend_kind(be), "dir") == 0 ? PACKIO_TARGET_DIR :
		PACKIO_TARGET_RADOS;
}

/* Parses "packs/<16 hex>.pack"; false for any other name. */
static bool packio_parse(const char *name, uint64_t *seq)
{
	size_t pl = strlen(PACKIO_PREFIX);
	uint8_t b[8];
	int i;

	if (strncmp(name, PACKIO_PREFIX, pl) != 0)
		return false;
	name += pl;
	if (strlen(name) != 21 || strcmp(name + 16, ".pack") != 0 ||
	    dd_hex_decode(b, 8, name, 16) < 0)
		return false;
	*seq = 0;
	for (i = 0; i < 8; i++)
		*seq = *seq << 8 | b[i];
	return true;
}

struct packio_list_ctx {
	int (*cb)(void *payload, uint64_t seq);
	void *payload;
};

static int packio_list_cb(const char *name, void *payload)
{
	struct packio_list_ctx *l = payload;
	uint64_t seq;

	if (!packio_parse(name, &seq))
		return 0;
	return l->cb(l->payload, seq);
}

int packio_list(struct backend *be, int (*cb)(void *payload, uint64_t seq),
		void *payload)
{
	struct packio_list_ctx l = { cb, payload };

	return backend_list(be, PACKIO_PREFIX, packio_list_cb, &l);
}

struct packio_seqv {
	uint64_t *v;
	size_t n, a;
};

static int packio_collect(void *payload, uint64_t seq)
{
	struct packio_seqv *s = payload;

	if (s->n == s->a) {
		size_t a = s->a ? s->a * 2 : 64;
		uint64_t *v = realloc(s->v, a * sizeof(*v));

		if (!v)
			return dd_error_set(-ENOMEM, "out of memory");
		s->v = v;
		s->a = a;
	}
	s->v[s->n++] = seq;
	return 0;
}

static int packio_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int packio_seqs(struct backend *be, uint64_t **out, size_t *n)
{
	struct packio_seqv s = { NULL, 0, 0 };
	int rc = packio_list(be, packio_collect, &s);

	*out = NULL;
	*n = 0;
	if (rc < 0) {
		free(s.v);
		return rc;
	}
	if (s.n)
		qsort(s.v, s.n, sizeof(*s.v), packio_cmp);
	*out = s.v;
	*n = s.n;
	return 0;
}

int packio_size(struct backend *be, uint64_t seq, uint64_t *size)
{
	char name[PACKIO_NAME_MAX];

	packio_name(name, seq);
	return backend_stat(be, name, size);
}

/* dd_pack_src's read over a backend reader: -ENODATA (the object ends
 * first) is the pack code's -EBADMSG. */
static int packio_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	int rc = backend_reader_read(ctx, off, buf, len);

	return rc == -ENODATA ? -EBADMSG : rc;
}

/* dd_pack_src's read through the window: a read that fits a window is
 * served from it (refilled from `off` when it does not hold the range);
 * a larger one goes to the backend directly. */
static int packio_win_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct packio_src *ps = ctx;
	uint64_t avail;
	size_t want;
	int rc;

	if (len > PACKIO_WINDOW || !ps->win)
		return packio_src_read(ps->rd, buf, len, off);
	if (off < ps->win_off || off + len > ps->win_off + ps->win_len) {
		if (off >= ps->src.size)
			return dd_error_set(-EBADMSG, "file too short");
		avail = ps->src.size - off;
		want = avail < PACKIO_WINDOW ? (size_t)avail : PACKIO_WINDOW;
		ps->win_len = 0;
		rc = packio_src_read(ps->rd, ps->win, want, off);
		if (rc < 0)
			return rc;
		ps->win_off = off;
		ps->win_len = want;
		if (off + len > off + want)
			return dd_error_set(-EBADMSG, "file too short");
	}
	memcpy(buf, ps->win + (off - ps->win_off), len);
	return 0;
}

int packio_src_open(struct packio_src *ps, struct backend *be, uint64_t seq)
{
	char name[PACKIO_NAME_MAX];
	int rc;

	memset(ps, 0, sizeof(*ps));
	packio_name(name, seq);
	packio_display(ps->display, sizeof(ps->display), be, seq);
	rc = backend_reader_open(be, name, &ps->rd);
	if (rc == 0)
		rc = backend_stat(be, name, &ps->src.size);
	if (rc < 0) {
		backend_reader_close(ps->rd);
		ps->rd = NULL;
		return rc;
	}
	ps->win = malloc(PACKIO_WINDOW);  /* NULL: read without it */
	ps->src.name = ps->display;
	ps->src.read = packio_win_read;
	ps->src.ctx = ps;
	return 0;
}

void packio_src_close(struct packio_src *ps)
{
	backend_reader_close(ps->rd);
	ps->rd = NULL;
	free(ps->win);
	ps->win = NULL;
}

int packio_scan(struct backend *be, uint64_t seq, dd_pack_scan_cb cb,
		void *payload, bool *sealed)
{
	struct packio_src ps;
	int rc;

	if (sealed)
		*sealed = false;
	rc = packio_src_open(&ps, be, seq);
	if (rc < 0)
		return rc;
	rc = dd_pack_scan_src(&ps.src, cb, payload, sealed);
	packio_src_close(&ps);
	return rc;
}

int packio_salvage(struct backend *be, uint64_t seq, uint64_t from,
		   dd_pack_scan_cb cb, void *payload)
{
	struct packio_src ps;
	int rc;

	rc = packio_src_open(&ps, be, seq);
	if (rc < 0)
		return rc;
	rc = dd_pack_salvage_src(&ps.src, seq, from, cb, payload);
	packio_src_close(&ps);
	return rc;
}

int packio_read_record(struct backend_reader *rd, const struct dd_id *id,
		       const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	return dd_pack_read_record_with(packio_src_read, rd, id, loc, out);
}

int packio_read_record_to(struct backend_reader *rd, const struct dd_id *id,
			  const struct dd_chunk_loc *loc, uint8_t *buf)
{
	return dd_pack_read_record_to(packio_src_read, rd, id, loc, buf);
}

/* ---- writing ---- */

struct packio_sink {
	struct backend *be;
	char name[PACKIO_NAME_MAX];
};

static int packio_sink_create(void *ctx, const void *hdr, size_t len)
{
	struct packio_sink *k = ctx;

	return backend_put(k->be, k->name, hdr, len);
}

static int packio_sink_append(void *ctx, const void *data, size_t len)
{
	struct packio_sink *k = ctx;

	return backend_append(k->be, k->name, data, len);
}

static int packio_sink_cut(void *ctx, uint64_t size)
{
	struct packio_sink *k = ctx;

	return backend_truncate(k->be, k->name, size);
}

static void packio_sink_close(void *ctx, bool header_failed)
{
	(void)header_failed;  /* put-once leaves nothing on failure */
	free(ctx);
}

int packio_writer_new(struct backend *be, uint64_t seq,
		      struct dd_pack_writer **out)
{
	struct dd_pack_sink sink;
	struct packio_sink *k;
	char display[512];

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return dd_error_set(-ENOMEM, "out of memory");
	k->be = be;
	packio_name(k->name, seq);
	packio_display(display, sizeof(display), be, seq);
	sink.name = display;
	sink.create = packio_sink_create;
	sink.append = packio_sink_append;
	sink.cut = packio_sink_cut;
	sink.close = packio_sink_close;
	sink.ctx = k;
	return dd_pack_writer_open(out, &sink, seq);
}

int packio_remove(struct backend *be, uint64_t seq)
{
	char name[PACKIO_NAME_MAX];

	packio_name(name, seq);
	return backend_remove(be, name);
}
