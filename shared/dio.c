/*
 * dio.c - see dio.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "dio.h"

static bool dio_zeros(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int dio_pwrite_sparse(int fd, const uint8_t *p, size_t n, uint64_t off,
		      size_t blk, uint64_t *end)
{
	size_t i = 0, run = 0;
	bool pending = false;
	int err;

	if (!blk) {
		if ((err = dd_pwrite_all(fd, p, n, (off_t)off)) < 0)
			return err;
		if (n && off + n > *end)
			*end = off + n;
		return 0;
	}
	while (i <= n) {
		size_t piece = i < n ? blk - (size_t)((off + i) % blk) : 0;
		bool zero;

		if (piece > n - i)
			piece = n - i;
		zero = i == n || dio_zeros(p + i, piece);
		if (zero && pending) {
			if ((err = dd_pwrite_all(fd, p + run, i - run,
						 (off_t)(off + run))) < 0)
				return err;
			if (off + i > *end)
				*end = off + i;
			pending = false;
		} else if (!zero && !pending) {
			run = i;
			pending = true;
		}
		if (i == n)
			break;
		i += piece;
	}
	return 0;
}

int dio_writer_init(struct dio_writer *w, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (!cap || cap % DIO_BUF_ALIGN)
		return 0;
	if (posix_memalign((void **)&w->buf, DIO_BUF_ALIGN, cap) != 0) {
		w->buf = NULL;
		return -ENOMEM;
	}
	w->cap = cap;
	return 0;
}

void dio_writer_release(struct dio_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->cap = 0;
}

/* Sets or clears O_DIRECT on the file. */
static int dio_set(struct dio_writer *w, bool on)
{
	int fl;

	if (w->direct == on)
		return 0;
	if ((fl = fcntl(w->fd, F_GETFL)) < 0 ||
	    fcntl(w->fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0)
		return -errno;
	w->direct = on;
	return 0;
}

size_t dio_alignment(int fd, size_t blk, size_t cap)
{
	struct statx stx;
	long page = sysconf(_SC_PAGESIZE);
	size_t a;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 ||
	    !(stx.stx_mask & STATX_DIOALIGN) || !stx.stx_dio_offset_align ||
	    !stx.stx_dio_mem_align)
		return 0;
	a = stx.stx_dio_offset_align > stx.stx_dio_mem_align ?
		stx.stx_dio_offset_align : stx.stx_dio_mem_align;
	/* whole pages: a page the cached path wrote is then never one a
	 * direct write shares */
	if (page > 0 && a < (size_t)page)
		a = (size_t)page;
	/* A power of two within the buffer's alignment, and no larger than
	 * the hole block: a direct block holding data and a zero piece of
	 * `blk` would write that piece, where the cached path leaves a hole
	 * (64 KiB pages over 4 KiB file system blocks). */
	if (a > DIO_BUF_ALIGN || (a & (a - 1)) || !cap || cap % a ||
	    blk % a)
		return 0;
	return a;
}

void dio_begin(struct dio_writer *w, int fd, size_t blk, bool direct)
{
	size_t a;

	w->fd = fd;
	w->blk = blk;
	w->align = 0;
	w->direct = false;
	w->len = 0;
	w->base = 0;
	w->end = 0;
	if (!direct || !w->buf || !(a = dio_alignment(fd, blk, w->cap)) ||
	    dio_set(w, true) < 0)
		return;
	w->align = a;
}

/* Through the page cache from here on. */
static int dio_give_up(struct dio_writer *w)
{
	w->align = 0;
	return dio_set(w, false);
}

/* `n` bytes at `off`, through the page cache. */
static int dio_buffered(struct dio_writer *w, const uint8_t *p, size_t n,
			uint64_t off)
{
	int rc = dio_set(w, false);

	return rc < 0 ? rc :
		dio_pwrite_sparse(w->fd, p, n, off, w->blk, &w->end);
}

/* The first `n` staged bytes (a multiple of align), with O_DIRECT. A
 * refused direct write (EINVAL: the file system would not after all) is
 * written again through the page cache, and so is the rest of the file. */
static int dio_put(struct dio_writer *w, size_t n)
{
	int rc = dio_set(w, true);

	if (rc == 0)
		rc = dio_pwrite_sparse(w->fd, w->buf, n, w->base, w->blk,
				       &w->end);
	if (rc == -EINVAL) {
		if ((rc = dio_give_up(w)) == 0)
			rc = dio_buffered(w, w->buf, n, w->base);
		return rc;
	}
	if (rc == 0)
		w->direct_bytes += n;
	return rc;
}

/* `n` bytes (a multiple of align) at `off` (aligned) straight from `p`
 * (aligned in memory too), with O_DIRECT; refused, as dio_put. */
static int dio_put_from(struct dio_writer *w, const uint8_t *p, size_t n,
			uint64_t off)
{
	int rc = dio_set(w, true);

	if (rc == 0)
		rc = dio_pwrite_sparse(w->fd, p, n, off, w->blk, &w->end);
	if (rc == -EINVAL) {
		if ((rc = dio_give_up(w)) == 0)
			rc = dio_buffered(w, p, n, off);
		return rc;
	}
	if (rc == 0)
		w->direct_bytes += n;
	return rc;
}

/* Writes everything staged: whole blocks direct, the rest cached. */
static int dio_flush(struct dio_writer *w)
{
	size_t whole = w->align ? w->len / w->align * w->align : 0;
	int rc = 0;

	if (whole)
		rc = dio_put(w, whole);
	if (rc == 0 && w->len > whole)
		rc = dio_buffered(w, w->buf + whole, w->len - whole,
				  w->base + whole);
	w->base += w->len;
	w->len = 0;
	return rc;
}

int dio_write(struct dio_writer *w, const void *data, size_t n, uint64_t off)
{
	const uint8_t *p = data;
	int rc;

	if (w->len && (!w->align || off != w->base + w->len) &&
	    (rc = dio_flush(w)) < 0)
		return rc;
	if (!w->align)
		return dio_buffered(w, p, n, off);
	while (n) {
		size_t k;

		if (!w->len) {
			size_t head = off % w->align ?
				w->align - (size_t)(off % w->align) : 0;

			if (head) {
				/* up to the next aligned offset, cached */
				if (head > n)
					head = n;
				if ((rc = dio_buffered(w, p, head, off)) < 0)
					return rc;
				p += head;
				off += head;
				n -= head;
				continue;
			}
			if (n >= w->align &&
			    !((uintptr_t)p & (uintptr_t)(w->align - 1))) {
				/* the caller's bytes lie in memory as they
				 * will in the file: no staging copy */
				size_t whole = n / w->align * w->align;

				if ((rc = dio_put_from(w, p, whole, off)) < 0)
					return rc;
				p += whole;
				off += whole;
				n -= whole;
				if (!w->align && n)
					return dio_buffered(w, p, n, off);
				continue;
			}
			w->base = off;
		}
		k = w->cap - w->len < n ? w->cap - w->len : n;
		memcpy(w->buf + w->len, p, k);
		w->len += k;
		p += k;
		off += k;
		n -= k;
		if (w->len == w->cap && (rc = dio_flush(w)) < 0)
			return rc;
		if (!w->align && n)
			return dio_buffered(w, p, n, off);
	}
	return 0;
}

int dio_finish(struct dio_writer *w)
{
	int rc = w->len ? dio_flush(w) : 0;
	int rc2 = dio_set(w, false);

	return rc < 0 ? rc : rc2;
}
