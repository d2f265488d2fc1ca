/*
 * dio.h - writing data past the page cache: a restored file's (the agent),
 * a pack's appends (the server's directory backend).
 *
 * A restore writes each byte once and reads none of it back; so does the
 * server that appends to a pack. Through the
 * page cache the kernel copies every byte into a page it must first
 * allocate; on machines whose memory is backed by a host only when first
 * touched (docs/FLOORS.md, "Why the restore floor moves fourfold") that
 * copy is most of a restore's time. With O_DIRECT the device reads the
 * bytes from our buffer instead: no page to allocate, no copy by the
 * kernel, and the restored tree does not push the machine's working set
 * out of its cache.
 *
 * A dio_writer stages a file's data (given at increasing offsets) in one
 * aligned buffer and writes it in whole aligned blocks with O_DIRECT
 * (straight from the caller's memory, no staging, where that lies
 * aligned as the file offsets do: a pack writer's records, pack.h);
 * what cannot be aligned (the start after a gap, the end) goes through
 * the page cache. Either way every piece of zeros cut at multiples of the
 * hole block is left unwritten, a hole; a hole block of 0 writes every
 * byte (a pack: dense, its size grown by the writes themselves). A file on a file system that
 * offers no direct I/O (statx reports no alignment, or the flag or a
 * write is refused) is written through the page cache throughout, as
 * before.
 *
 * One writer serves one thread, one file at a time.
 */
#ifndef DD_DIO_H
#define DD_DIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The staging buffer's alignment: the largest direct I/O alignment a
 * file system may ask for and still get direct writes. */
#define DIO_BUF_ALIGN (64u * 1024)

struct dio_writer {
	uint8_t *buf;      /* `cap` bytes aligned to DIO_BUF_ALIGN, or NULL */
	size_t cap;
	int fd;
	size_t blk;        /* holes: zero pieces cut at multiples of this */
	size_t align;      /* direct I/O alignment (divides blk); 0: through
			    * the cache */
	bool direct;       /* O_DIRECT is set on fd */
	uint64_t base;     /* the file offset of buf[0] (aligned) */
	size_t len;        /* bytes staged */
	uint64_t end;      /* past the last byte written */
	uint64_t direct_bytes; /* written with O_DIRECT (all files) */
};

/* Allocates the buffer (cap: a multiple of DIO_BUF_ALIGN; 0 writes
 * everything through the page cache). -ENOMEM. */
int dio_writer_init(struct dio_writer *w, size_t cap);
void dio_writer_release(struct dio_writer *w);

/* The alignment direct writes to `fd` take (a power of two of a page or
 * more, dividing `blk` unless it is 0, and `cap`), or 0 when this file is written through
 * the page cache: no direct I/O offered (statx), or an alignment the
 * holes or the buffer cannot take. */
size_t dio_alignment(int fd, size_t blk, size_t cap);

/* Starts a file open for writing on `fd`: with `direct`, its aligned
 * blocks go past the page cache if the file system allows it. */
void dio_begin(struct dio_writer *w, int fd, size_t blk, bool direct);

/* `n` bytes at `off`: written, or staged until a whole block is. 0 or a
 * negative errno. */
int dio_write(struct dio_writer *w, const void *p, size_t n, uint64_t off);

/* Writes what is staged; then w->end is past the file's last byte
 * written, and fd is as it was given (O_DIRECT cleared). 0 or a negative
 * errno. */
int dio_finish(struct dio_writer *w);

/*
 * Writes `n` bytes at `off` of `fd`, leaving out every piece that is all
 * zeros, where pieces end at multiples of `blk` (file offsets; 0: none
 * left out, every byte written): the
 * unwritten blocks stay holes, and a block cut by a chunk's edge is a hole
 * if both its sides are zeros. *end moves past the last byte written. 0 or
 * a negative errno.
 */
int dio_pwrite_sparse(int fd, const uint8_t *p, size_t n, uint64_t off,
		      size_t blk, uint64_t *end);

#endif
