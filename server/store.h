/*
 * store.h - the chunk store: append-only pack files under packs/ and the
 * LevelDB index under index/ that maps a chunk id to its place in a pack.
 *
 * Durability order (docs/DESIGN.md, "Rules the data depends on"): pack
 * bytes are fdatasync'ed, then the index entries and the updated counters
 * are written in ONE synced LevelDB batch, and only then does
 * store_ingest() return success. A crash in between leaves records in a
 * pack that the index does not know: harmless, collected later.
 *
 * The index also holds one meta key, "m" + "stats" -> u8 version=1 |
 * u64 chunks | u64 bytes_unique (plain bytes of distinct chunks), updated in
 * the same batch as the entries. If it is missing when the store opens, it
 * is recounted from the entries; if the index is empty while packs exist
 * (index/ deleted), the index is rebuilt from the packs first.
 *
 * All functions are thread-safe. Ingest is serialised by one mutex (which
 * also makes concurrent uploads of the same chunk leave one entry);
 * lookups and reads run in parallel.
 */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "bundle.h"
#include "hash.h"
#include "pack.h"
#include "util.h"

/* A pack is sealed once it grows past this. */
#define STORE_PACK_TARGET (128ull * 1024 * 1024)

struct store;

/* Creates an empty index (fails if one exists); used by `init`. */
int store_index_create(const char *index_dir);

/* Opens the index (creating it if missing) and scans packs/ for the next
 * sequence number; a new pack is created only when something is stored. */
int store_open(struct store **out, const char *repo);
/* Seals the open pack, closes the index. NULL is a no-op. */
void store_close(struct store *s);

/* 0 and *loc filled, -ENOENT if the id is not stored, -EIO (with a
 * reason) if the index cannot be read. */
int store_lookup(struct store *s, const struct dd_id *id,
		 struct dd_chunk_loc *loc);

/*
 * Stores the records that are not yet stored. The caller has verified
 * every record (decompressed and re-hashed). Records already in the index,
 * and repeats of an id within `recs`, are counted in *duplicates. On
 * success everything is durable. On failure nothing is acknowledged and
 * nothing is indexed: -ENOSPC when the disk (or quota) is full, -EIO
 * otherwise, with a reason.
 */
int store_ingest(struct store *s, const struct dd_bundle_record *recs,
		 size_t n, uint32_t *stored, uint32_t *duplicates);

/* The stored (possibly compressed) bytes of a chunk at *loc into out,
 * with the pack record header checked. -EBADMSG (naming the chunk) on a
 * mismatch, -EIO if the pack cannot be read. */
int store_read_stored(struct store *s, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, struct dd_buf *out);

/* Decodes stored bytes into plain bytes and checks they hash to id;
 * -EBADMSG naming the chunk if not. `dctx` is an optional ZSTD_DCtx*. */
int store_decode(struct dd_buf *plain, const struct dd_id *id,
		 uint32_t flags, uint32_t plain_len, const void *stored,
		 size_t stored_len, void *dctx);

/* Lookup + read + decode + verify: the chunk's plain bytes in plain.
 * `scratch` holds the stored bytes; -ENOENT, -EBADMSG, -EIO. */
int store_read_plain(struct store *s, const struct dd_id *id,
		     struct dd_buf *plain, struct dd_buf *scratch, void *dctx);

/* Counters kept in the index. */
void store_counters(struct store *s, uint64_t *chunks,
		    uint64_t *bytes_unique);
/* Number and total size of pack files on disk. */
int store_pack_usage(struct store *s, uint64_t *packs, uint64_t *bytes);

#endif
