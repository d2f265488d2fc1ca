/*
 * packio.h - pack files as objects of a storage backend (backend.h):
 * their names ("packs/<16 hex>.pack", the directory backend's files
 * REPO/packs/<16 hex>.pack exactly as before), listing, scanning and
 * salvaging them through shared/pack.c's sources, and writing them through
 * its sinks. The store (store*.c) and `check` (server/repo/check.c) read
 * and write packs only through these.
 *
 * Errors are negative errno with a reason (dd_error_set) naming the pack
 * as packio_display() does.
 */
#ifndef SRV_PACKIO_H
#define SRV_PACKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "backend.h"
#include "pack.h"

#define PACKIO_PREFIX "packs/"
#define PACKIO_NAME_MAX 32
/* The size past which a pack is sealed: the directory backend keeps
 * today's 128 MiB; RADOS stays well below osd_max_object_size (128 MiB by
 * default), a batch beyond the target included. */
#define PACKIO_TARGET_DIR (128ull * 1024 * 1024)
#define PACKIO_TARGET_RADOS (64ull * 1024 * 1024)

/* "packs/<16 hex>.pack" into out[PACKIO_NAME_MAX]. */
void packio_name(char *out, uint64_t seq);
/* How messages name a pack: the file's path for the directory backend
 * ("/srv/repo/packs/...pack"), "rados:POOL[/NS]:packs/...pack" else. */
void packio_display(char *out, size_t outsz, struct backend *be,
		    uint64_t seq);
/* The pack target of this backend (PACKIO_TARGET_*). */
uint64_t packio_target(struct backend *be);

/* Calls cb(payload, seq) for every pack, in no particular order; a
 * non-zero return stops and is returned. */
int packio_list(struct backend *be, int (*cb)(void *payload, uint64_t seq),
		void *payload);
/* Every pack's sequence number, ascending; caller frees *out. */
int packio_seqs(struct backend *be, uint64_t **out, size_t *n);

int packio_size(struct backend *be, uint64_t seq, uint64_t *size);

/* A source over pack `seq` (its size taken now). Close with
 * packio_src_close. */
struct packio_src {
	struct dd_pack_src src;
	struct backend_reader *rd;
	char display[512];
	/* Read-ahead for scans: a window of the object, so that walking a
	 * pack costs one backend read per PACKIO_WINDOW bytes, not two per
	 * record (each a network round trip on RADOS). */
	uint8_t *win;
	uint64_t win_off;
	size_t win_len;
};
#define PACKIO_WINDOW (4u * 1024 * 1024)
int packio_src_open(struct packio_src *ps, struct backend *be, uint64_t seq);
void packio_src_close(struct packio_src *ps);
/* dd_pack_scan / dd_pack_salvage of pack `seq`. */
int packio_scan(struct backend *be, uint64_t seq, dd_pack_scan_cb cb,
		void *payload, bool *sealed);
int packio_salvage(struct backend *be, uint64_t seq, uint64_t from,
		   dd_pack_scan_cb cb, void *payload);
/* Reads the record at *loc of an open reader (dd_pack_read_record). */
int packio_read_record(struct backend_reader *rd, const struct dd_id *id,
		       const struct dd_chunk_loc *loc, struct dd_buf *out);
/* The same into `buf` (dd_pack_read_record_to: the record as it is in the
 * pack, stored bytes after its header). */
int packio_read_record_to(struct backend_reader *rd, const struct dd_id *id,
			  const struct dd_chunk_loc *loc, uint8_t *buf);

/* A new pack `seq` (put-once: -EEXIST if it exists) and its writer: one
 * backend_append per dd_pack_writer_sync. */
int packio_writer_new(struct backend *be, uint64_t seq,
		      struct dd_pack_writer **out);

/* Removes pack `seq`, durably. */
int packio_remove(struct backend *be, uint64_t seq);

#endif
