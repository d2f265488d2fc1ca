/*
 * wpool.h - regular files of a restore, written by worker threads.
 *
 * A restore spends most of its time in the kernel: creating inodes and
 * copying data into the page cache. With one writing thread the other
 * cores wait, so the disk writer (restore.c) hands each regular file to
 * this pool once it has opened the file's parent safely: a worker creates
 * the file by name inside that directory (O_CREAT | O_EXCL | O_NOFOLLOW,
 * after unlinking whatever is in the way, never following it), writes its
 * data (pieces of zeros, cut at multiples of the hole block, become
 * holes: wpool_set_hole_block), sets its size, then its owner,
 * mode, xattrs, ACL and times through the descriptor.
 *
 * Files are started in the order they are given, and a large file's data
 * may still be arriving while a worker writes its beginning. The data
 * queued is bounded: wpool_data() waits while more than `max_bytes` are
 * held. Problems with one file are warnings (counted in `failed`); only
 * running out of memory is an error.
 */
#ifndef DD_AGENT_WPOOL_H
#define DD_AGENT_WPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

struct wpool;

struct wpool_stats {
	uint64_t files;          /* written completely, metadata set */
	uint64_t bytes;          /* their sizes */
	unsigned long failed;    /* files with a problem (warned) */
	uint64_t direct_bytes;   /* of those, written past the page cache */
};

struct meta_drop;

/* `workers` threads (1..16), at most `max_bytes` of data queued. Files get
 * their metadata less what `drop` leaves out (meta.h; NULL: nothing),
 * which must outlive the pool. With `direct`, files of 1 MiB and more are
 * written past the page cache where the file system allows (dio.h). */
int wpool_new(struct wpool **out, unsigned workers, size_t max_bytes,
	      struct meta_drop *drop, bool direct);

/*
 * Starts the file `name` inside the open directory `dirfd` (the pool
 * takes a duplicate; the caller keeps its own), described by `e` (its
 * ext area and the strings are copied; `path` names it in warnings).
 * The previous file must have been ended.
 */
int wpool_begin(struct wpool *p, int dirfd, const char *name,
		const char *path, const struct dd_entry *e, bool with_ext);
/* Zero runs of at least 4 KiB are left as holes by default. */
#define WPOOL_HOLE_BLOCK 4096u

/* Leaves pieces of zeros as holes cut at multiples of `blk` (> 0) bytes,
 * the target file system's block size: call before the first file. */
void wpool_set_hole_block(struct wpool *p, size_t blk);

/* `n` bytes at offset `off` of the file begun last (copied). */
int wpool_data(struct wpool *p, const void *data, size_t n, uint64_t off);
/* The file begun last has all its data. */
int wpool_end(struct wpool *p);
/* Waits until every file given is finished. */
void wpool_drain(struct wpool *p);
void wpool_get_stats(struct wpool *p, struct wpool_stats *st);
/* Drains, stops the workers and frees the pool (NULL is fine). */
void wpool_free(struct wpool *p);

#endif
