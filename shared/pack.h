/*
 * pack.h - append-only pack files, the server's chunk store on disk.
 * Layout in docs/FORMAT.md ("Pack file").
 *
 *   header:  "DDPK" | u32 version=1 | u64 pack_seq                (16 bytes)
 *   record:  "DDRC" | id[32] | u32 flags | u32 plain_len | u32 stored_len
 *            | bytes                                              (48 + n)
 *   trailer: "DDTR" | u32 count | count x (id[32] | u64 offset | u32 flags
 *            | u32 plain_len | u32 stored_len) | sha256 of the trailer so far
 *            | u64 trailer_offset | "DDPE"
 *
 * A pack is written only by appending. Records become durable with
 * dd_pack_writer_sync(); a pack is sealed (trailer appended) when it is
 * full or when the server stops. An unsealed pack (crash) is still readable
 * record by record: the scanner stops at the first torn record.
 */
#ifndef DD_PACK_H
#define DD_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "hash.h"
#include "util.h"

#define DD_PACK_VERSION 1u
#define DD_PACK_HEADER_LEN 16u
#define DD_PACK_RECORD_HEADER_LEN 48u
/* id[32] + u64 offset + u32 flags + u32 plain_len + u32 stored_len */
#define DD_PACK_TRAILER_ENTRY_LEN 52u
/* A trailer: "DDTR", u32 count, the entries, sha256, u64 offset, "DDPE" */
#define DD_PACK_TRAILER_LEN(count) \
	(8u + (uint64_t)(count) * DD_PACK_TRAILER_ENTRY_LEN + 32u + 8u + 4u)

/* Where a chunk lives: what the index stores. */
struct dd_chunk_loc {
	uint64_t pack_seq;
	uint64_t offset;      /* of the record header within the pack */
	uint32_t flags;
	uint32_t plain_len;
	uint32_t stored_len;
};
/*
 * The index value encoding of a location (docs/FORMAT.md, "Index").
 * Version 2, what dd_chunk_loc_encode writes: u8 2, then pack_seq, offset,
 * flags, plain_len, stored_len as LEB128 varints (7 bits a byte, low
 * first): 13 to 17 bytes for the sizes a repository has, at most
 * DD_CHUNK_LOC_MAX. Version 1, still read: u8 1 | u64 pack_seq | u64
 * offset | u32 flags | u32 plain_len | u32 stored_len, little-endian
 * (DD_CHUNK_LOC_V1_LEN bytes). Returns the length written.
 */
#define DD_CHUNK_LOC_V1_LEN 29u
#define DD_CHUNK_LOC_MAX 36u
size_t dd_chunk_loc_encode(uint8_t out[DD_CHUNK_LOC_MAX],
			   const struct dd_chunk_loc *loc);
/* Either version; -EBADMSG (with a reason) for anything else: a short or
 * long value, an unknown version, a varint past its field's width, or
 * values no chunk has. */
int dd_chunk_loc_decode(struct dd_chunk_loc *out, const void *p, size_t len);

/* "<dir>/<16 hex digits of seq>.pack" into out (size >= strlen(dir)+24). */
void dd_pack_path(char *out, size_t outsz, const char *dir, uint64_t seq);

/*
 * Where a writer puts a pack: a file (dd_pack_writer_new) or any store of
 * objects (the server's backend, server/store/). Each returns 0 or a
 * negative errno with a reason (dd_error_set).
 *   create  makes the pack holding exactly the header, durable; -EEXIST
 *           when it exists already (nothing is overwritten).
 *   append  adds bytes at the end, durable on return; on failure any
 *           prefix of them may have landed.
 *   cut     (optional, may be NULL) takes the pack back to `size` bytes,
 *           so a torn append does not stay behind.
 *   close   (optional) releases ctx; header_failed: create never
 *           succeeded, so what it left may be removed.
 */
struct dd_pack_sink {
	const char *name;     /* for messages (copied) */
	int (*create)(void *ctx, const void *hdr, size_t len);
	int (*append)(void *ctx, const void *data, size_t len);
	int (*cut)(void *ctx, uint64_t size);
	void (*close)(void *ctx, bool header_failed);
	void *ctx;
};

struct dd_pack_writer;
/* Creates a new pack file (O_EXCL) with its header, synced. */
int dd_pack_writer_new(struct dd_pack_writer **out, const char *dir,
		       uint64_t seq);
/* The same through a sink; the writer owns the sink's ctx from here on
 * (closed by seal or free, or here on failure). */
int dd_pack_writer_open(struct dd_pack_writer **out,
			const struct dd_pack_sink *sink, uint64_t seq);
/* Appends one record; fills *loc. Not yet durable: records are kept in
 * memory until dd_pack_writer_sync hands them to the sink in ONE append
 * (one round trip on a remote store). */
int dd_pack_writer_append(struct dd_pack_writer *w, const struct dd_id *id,
			  uint32_t flags, uint32_t plain_len,
			  const void *stored, uint32_t stored_len,
			  struct dd_chunk_loc *loc);
/* Makes everything appended so far durable (the sink's append). After a
 * failure the writer refuses every further call but free. */
int dd_pack_writer_sync(struct dd_pack_writer *w);
/*
 * Group commit (a server's many connections sharing one sync): the same
 * as dd_pack_writer_sync in three steps, so that other threads may go on
 * appending while the bytes are made durable.
 *   detach   moves the records appended so far into *out (emptied
 *            first; its memory is swapped with the writer's buffer);
 *            later appends go after them. -EIO if the writer failed.
 *            The records start after up to 4095 filler bytes that
 *            place them in memory as they will lie in the file (modulo
 *            a page), so that a sink writing past the page cache needs
 *            no staging copy; pass out->len to done as it is.
 *   write    hands the detached bytes to the sink (durable on return);
 *            it touches only the sink, so it may run while another
 *            thread appends, but never beside a sync, seal, free or
 *            another write of the same writer.
 *   done     records the outcome of the write (with the caller's lock,
 *            like every other call): on success the bytes count as
 *            durable; on failure the writer fails as a failed sync does
 *            (a sink that can cut takes the torn part off).
 * At most one detached run at a time, the caller's locking sees to it.
 */
int dd_pack_writer_detach(struct dd_pack_writer *w, struct dd_buf *out);
int dd_pack_writer_write_detached(struct dd_pack_writer *w,
				  const struct dd_buf *buf);
void dd_pack_writer_detached_done(struct dd_pack_writer *w, size_t len,
				  int err);
/* Lends the writer `buf`'s memory for the records it keeps until a sync
 * (contents dropped; buf gets the writer's empty buffer meanwhile) and
 * gives it back to `buf` when the writer is sealed or freed: one who
 * writes pack after pack grows one buffer, not one per pack (whose
 * growth copies, and whose fresh pages the kernel zeroes). Right after
 * open; `buf` must outlive the writer. */
void dd_pack_writer_lend_buf(struct dd_pack_writer *w, struct dd_buf *buf);
uint64_t dd_pack_writer_size(const struct dd_pack_writer *w);
uint64_t dd_pack_writer_seq(const struct dd_pack_writer *w);
/* Appends the trailer, syncs, closes. The writer is freed either way. A
 * trailer that cannot be written whole (a full disk) is cut off again: the
 * pack stays a valid unsealed pack. */
int dd_pack_writer_seal(struct dd_pack_writer *w);
/* Closes without sealing (the pack stays readable by scanning); records
 * not synced yet are still written, without waiting for durability,
 * unless the writer failed. */
void dd_pack_writer_free(struct dd_pack_writer *w);

/*
 * Reads the record at loc->offset from an open pack fd, checks the record
 * header against *id and *loc, and returns the stored bytes in out
 * (replacing its contents). -EBADMSG on any mismatch. Does not decompress.
 */
int dd_pack_read_record(int fd, const struct dd_id *id,
			const struct dd_chunk_loc *loc, struct dd_buf *out);

/*
 * A pack to read from anywhere: `size` bytes, read(ctx, buf, len, off)
 * returning 0 when it read exactly len bytes, -EBADMSG when the pack ends
 * first, another negative errno on failure (reason with dd_error_set).
 * `name` names it in messages; a canonical last component
 * ("<16 hex>.pack") is checked against the header by the scan.
 */
typedef int (*dd_pack_read_fn)(void *ctx, void *buf, size_t len,
			       uint64_t off);
struct dd_pack_src {
	const char *name;
	uint64_t size;
	dd_pack_read_fn read;
	void *ctx;
};

/* For a caller that reads records itself (several in one read, e.g. the
 * server's fetch of a pack span): dd_pack_loc_check says whether *loc is
 * a location a record can have (before reading it), dd_pack_record_check
 * whether the record header at `rec` (DD_PACK_RECORD_HEADER_LEN bytes)
 * is the one of `id` at *loc, as dd_pack_read_record_to checks. 0, or
 * -EBADMSG naming the chunk. */
int dd_pack_loc_check(const struct dd_id *id, const struct dd_chunk_loc *loc);
int dd_pack_record_check(const uint8_t *rec, const struct dd_id *id,
			 const struct dd_chunk_loc *loc);

/* The same into `buf`, which has room for DD_PACK_RECORD_HEADER_LEN +
 * loc->stored_len bytes: the record as it is in the pack, its header
 * checked; the stored bytes are at buf + DD_PACK_RECORD_HEADER_LEN (no
 * copy: a caller can read a record straight to where its bytes go). */
int dd_pack_read_record_to(dd_pack_read_fn read, void *ctx,
			   const struct dd_id *id,
			   const struct dd_chunk_loc *loc, uint8_t *buf);
/* dd_pack_read_record through a read function: header and bytes in one
 * read. */
int dd_pack_read_record_with(dd_pack_read_fn read, void *ctx,
			     const struct dd_id *id,
			     const struct dd_chunk_loc *loc, struct dd_buf *out);

/* Called by dd_pack_scan for each record: return 0 to go on, non-zero to
 * stop (passed back). `stored` is only valid during the call. */
typedef int (*dd_pack_scan_cb)(void *payload, const struct dd_id *id,
			       const struct dd_chunk_loc *loc,
			       const uint8_t *stored);
/*
 * Walks every record of a pack file in order (sealed or not). Stops
 * quietly at a torn tail of an unsealed pack; *sealed tells whether a valid
 * trailer was found (its entries must then match the records, else
 * -EBADMSG). Record bytes are passed to the callback without decompressing.
 * Records are reported as they are read, so a sealed pack found corrupt
 * late may have reported some records before the error. When the file has
 * a canonical name ("<16 hex>.pack") the header's sequence number must
 * match it (-EBADMSG otherwise); loc->pack_seq comes from the header.
 */
int dd_pack_scan(const char *path, dd_pack_scan_cb cb, void *payload,
		 bool *sealed);
/* The same over a source. */
int dd_pack_scan_src(const struct dd_pack_src *src, dd_pack_scan_cb cb,
		     void *payload, bool *sealed);

/*
 * Salvage for a damaged pack: finds every plausible record in the file
 * ("DDRC", known flags, lengths within the chunk limits and within the
 * file), in offset order from `from` (at least the header's end), and
 * passes it to cb as dd_pack_scan does, with loc->pack_seq = `seq`. Neither
 * the pack header nor the trailer nor the record order is trusted, so a
 * match may lie inside another record's bytes: the callback must verify
 * that the bytes hash to the id. It returns DD_PACK_SALVAGE_TAKEN to
 * accept the record (the search goes on after its end), 0 to reject it
 * (the search goes on one byte after its magic), or a negative code to
 * stop (passed back). Used to rebuild the index from packs whose scan
 * failed part way, and by `check`.
 */
#define DD_PACK_SALVAGE_TAKEN 1
int dd_pack_salvage(const char *path, uint64_t seq, uint64_t from,
		    dd_pack_scan_cb cb, void *payload);
int dd_pack_salvage_src(const struct dd_pack_src *src, uint64_t seq,
			uint64_t from, dd_pack_scan_cb cb, void *payload);

#endif
