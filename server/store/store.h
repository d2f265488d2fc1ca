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
 * Concurrent ingests share commits (group commit, store_commit.c): each
 * appends its records and index entries under one mutex (which also makes
 * concurrent uploads of the same chunk leave one entry: a chunk appended
 * but not yet committed is found there), then one thread makes the pack
 * bytes of every ingest waiting durable with one sync and writes all
 * their entries in one synced batch; each returns only after the commit
 * that covers it. A lone upload of 256 KiB or more of pack bytes is
 * committed holding the mutex, one sync of its own (overlapping big
 * uploads cost more CPU than the syncs they share: docs/GROUP-COMMIT.md).
 * The order above holds for every group. All functions are thread-safe;
 * lookups and reads run in parallel; whatever else takes the ingest mutex
 * (collection, recount, domain upkeep) first lets every pending commit
 * finish.
 */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "bundle.h"
#include "hash.h"
#include "pack.h"
#include "util.h"

/* The store's two directories inside a repository. */
#define STORE_PACKS_DIR "packs"
#define STORE_INDEX_DIR "index"

/* A pack on the directory backend is sealed once it grows past this
 * (RADOS: PACKIO_TARGET_RADOS, packio.h). */
#define STORE_PACK_TARGET (128ull * 1024 * 1024)

struct store;

/* Creates an empty index (fails if one exists); used by `init`. */
int store_index_create(const char *index_dir);

/* Opens the index (creating it if missing) and scans packs/ for the next
 * sequence number; a new pack is created only when something is stored. */
int store_open(struct store **out, const char *repo);

/*
 * For `check` and `debug`: opens an existing index for reading only: no
 * index is created (-ENOENT if there is none), nothing is rebuilt or
 * recounted, nothing is written by the store (LevelDB itself may replay
 * its log), and every block read is checksummed. store_ingest() and
 * store_forget() must not be called on such a store.
 */
#define STORE_OPEN_READONLY 1u
/*
 * The repository has had dedup domains (clients.json: "domains_used",
 * tokens_repo_domains_used()): an index rebuilt or recounted at open then
 * marks every chunk as held by no domain (domains_after_rebuild). The
 * caller says so, since the store knows nothing of clients.
 */
#define STORE_DOMAINS_USED 2u
int store_open_ex(struct store **out, const char *repo, unsigned flags);
/*
 * The same with the packs in storage backend `be` (backend.h), which the
 * store takes over (freed by store_close, or here on failure): every pack
 * is an object "packs/<16 hex>.pack" written, read, listed and removed
 * only through it. store_open and store_open_ex use the directory backend
 * on `repo` itself (its packs/ as always). The index stays in
 * <repo>/index either way.
 */
struct backend;
int store_open_be(struct store **out, const char *repo, struct backend *be,
		  unsigned flags);
/*
 * The same as front-end number `fe` of a pool shared by several
 * front-ends (docs/STORAGE.md, "Several front-ends on one pool"): its new
 * packs are numbered (fe << 48) + 1, 2, ..., so no two front-ends ever
 * name a pack alike (front-end 0 names them as a lone server always
 * did). On a backend with key/value maps (RADOS) the store also keeps the
 * shared chunk index (store_shared_*): every chunk it stores is published
 * there before it is acknowledged, and a chunk the local index lacks is
 * looked up there (and cached locally).
 */
int store_open_fe(struct store **out, const char *repo, struct backend *be,
		  unsigned flags, uint32_t fe);
/* This store's front-end number. */
uint32_t store_frontend(const struct store *s);
/* The front-end number of a pack sequence number. */
uint32_t store_seq_frontend(uint64_t seq);
/* Whether the store keeps the shared index (a RADOS store). */
bool store_shared_on(const struct store *s);
/*
 * For a batch of ids (a missing-query): looks those the local index
 * lacks up in the shared index with one omap read per shard, caches what
 * it finds in the local index (with dedup domains in use, as held by no
 * domain: domains_cache_learn), and sets bit i of absent[(n + 7) / 8] for
 * each id in neither (the caller answers those missing without another
 * lookup). Without a shared index the bits are all clear. -EIO etc. with
 * a reason when the pool cannot be read.
 */
int store_prefetch(struct store *s, const struct dd_id *ids, size_t n,
		   uint8_t *absent);
/* Copies every entry of the shared index into the local one (gc's first
 * step on a shared pool; *entries counts them); an entry new here is held
 * by no dedup domain (domains_cache_learn) but by those whose memberships
 * the shared index holds at its location, which the pull takes (with
 * domains in use), and it records the domains it met for the sweep's
 * deletes (store_shared_rm). With prune (a collection that deletes),
 * memberships of entries removed or moved since they were made are
 * deleted from the pool, 65,536 a shard at most a run. */
int store_shared_pull(struct store *s, uint64_t *entries, bool prune);
/*
 * For ids[0..n) stored at locs[i] in the local index and not held by
 * domain t here: whether the shared index says that t holds them at
 * that location (a client of t uploaded them through another front-end,
 * or t joined them there: store_ingest publishes its memberships with
 * the entries). Those granted get t's membership in the local index
 * (unsynced: the pool keeps the durable copy) and their bit set in
 * `granted` ((n + 7) / 8 bytes). A membership made for another location
 * (the chunk moved, or died and was stored afresh) grants nothing. One
 * read a shard; nothing without a shared index or for t NULL. 0, or
 * -EIO etc. with a reason when the pool cannot be read.
 */
struct domains_tag;
int store_shared_grant(struct store *s, const struct domains_tag *t,
		       const struct dd_id *ids,
		       const struct dd_chunk_loc *locs, size_t n,
		       uint8_t *granted);
/* Counts the shared index, the pool's record of its chunks: *chunks
 * entries and the sum of their plain lengths (docs/STORAGE.md, "Stats on
 * a shared pool"). Reads every shard (one omap listing each); changes
 * nothing. An entry that does not decode is not counted. 0 with zeros
 * when the store is not shared. */
int store_shared_count(struct store *s, uint64_t *chunks,
		       uint64_t *bytes_unique);
/*
 * The local index as a cache of the shared one, kept in step with the
 * pool's gc epoch (docs/STORAGE.md, "The cache and the gc epoch"): a
 * collection on another front-end removes entries from the shared index
 * that this cache may still hold, and a cache that answers "present" for
 * them loses data. The cache records, under STORE_CACHE_EPOCH_KEY, the
 * epoch it reflects; the record survives restarts, and an index without
 * it (older, new, rebuilt from the packs) reflects no known epoch.
 *
 * store_cache_observe: the pool's epoch is n, last bumped by front-end
 * `by`. If a collection of another front-end may have run since the
 * epoch the cache reflects (n is more than one past it, or one past it
 * and not bumped by this front-end, or the cache's epoch is unknown and
 * n > 0), every chunk entry is dropped (counters unchanged; the
 * dedup-domain memberships stay, with the location each entry had,
 * domains_cache_keep, so that they stand when the same entry comes back
 * from the shared index) and n is recorded in the same synced batch;
 * otherwise n is only recorded. A
 * collection of this store holds the gc lock: then the call waits up to
 * `wait_sec` for that collection to bring the cache up itself
 * (store_gc_cache_refresh, its first step) or to end, and returns -EBUSY
 * with a reason when neither happened: the cache is stale and must not
 * answer (the caller fails its request, or tries again later). *dropped
 * (may be NULL) counts the entries dropped. Not shared: 0, nothing done.
 */
#define STORE_CACHE_EPOCH_KEY "mcache-epoch"
/* Present from before a rebuild of the index writes its first entry
 * until the counters are written with the rebuild done (one batch): an
 * index that has it was left half built, and the next start builds it
 * again (check reports it). */
#define STORE_REBUILD_KEY "mrebuild"
int store_cache_observe(struct store *s, uint64_t n, uint32_t by,
			double wait_sec, uint64_t *dropped);
/* The same from the collection itself, which holds the gc lock
 * (store_gc_begin) and calls it before it reads the local index. */
int store_gc_cache_refresh(struct store *s, uint64_t n, uint32_t by,
			   uint64_t *dropped);
/* Whether the cache reflects gc epoch n (store_cache_observe would drop
 * nothing). */
bool store_cache_reflects(struct store *s, uint64_t n, uint32_t by);
/*
 * Looks every id up in the shared index itself, never in the local cache
 * (which it refreshes with what it finds), with one omap read per shard
 * and BACKEND_KV_BATCH ids: bit i of absent[(n + 7) / 8] set for each id
 * the pool does not hold. For a snapshot whose chunks a collection on
 * another front-end may have removed while its backup ran.
 */
int store_shared_verify(struct store *s, const struct dd_id *ids, size_t n,
			uint8_t *absent);

/* The STORE_* flags s was opened with, plus STORE_DOMAINS_USED once
 * store_domains_note() was called. */
unsigned store_flags(const struct store *s);
/* The repository's clients.json now says "domains_used" (a token with a
 * domain was added while the store is open, perhaps through another
 * front-end): from now on the store behaves as if opened with
 * STORE_DOMAINS_USED (the flag is sticky, as the file's is). Thread-safe;
 * the server calls it whenever it sees the flag. */
void store_domains_note(struct store *s);
/* The test hook DEDUP_TEST_FILLS_UNMARKED was set at the open
 * (domains_cache_learn). */
bool store_test_fills_unmarked(const struct store *s);

/*
 * `repair --rebuild-index`: builds a new index from the packs alone into
 * index.new/ (every record decoded and re-hashed; damaged records are left
 * out, and a pack whose scan fails part way is salvaged record by record),
 * then swaps it for index/ (index.old/ in between, removed at the end). A
 * crash at any point leaves either index or nothing, and an empty or
 * missing index is rebuilt when the server starts. The caller holds the
 * server lock. *chunks and *bad: chunks indexed, damaged records skipped.
 * flags: STORE_DOMAINS_USED or 0.
 */
int store_rebuild_index(const char *repo, unsigned flags, uint64_t *chunks,
			uint64_t *bad);
/* The same from the packs of backend `be` (taken over, as by
 * store_open_be). */
int store_rebuild_index_be(const char *repo, struct backend *be,
			   unsigned flags, uint64_t *chunks, uint64_t *bad);

/*
 * Drops the index entry of a chunk found damaged at *loc (its bytes do not
 * hash to its id, or its record does not match), so that the chunk counts
 * as missing: /chunks/missing asks for it again and the next backup that
 * has the bytes stores a good copy. Nothing is deleted from the packs. A
 * no-op (0) when the entry no longer points at *loc (a good copy was
 * stored meanwhile). Logs a warning naming the chunk.
 */
int store_forget(struct store *s, const struct dd_id *id,
		 const struct dd_chunk_loc *loc);

/* The backend the packs live in (borrowed; server/store/packio.h reads
 * and lists them). */
struct backend *store_backend(const struct store *s);
/* Whether the backend overlaps many reads (backend_reads_overlap): then
 * store_read_records is the way to read a fetch's records. */
bool store_reads_overlap(const struct store *s);
/* The sequence numbers of every pack, ascending; caller frees *out. */
int store_pack_seqs(struct store *s, uint64_t **out, size_t *n);

/*
 * Calls cb for every key of the index in key order (chunk entries are "c"
 * + id, the counters "mstats"); a non-zero return stops the walk and is
 * passed back. -EBADMSG with a reason if LevelDB reports corruption.
 */
typedef int (*store_entry_cb)(void *payload, const uint8_t *key, size_t klen,
			      const uint8_t *val, size_t vlen);
int store_index_foreach(struct store *s, store_entry_cb cb, void *payload);
/* The counters as stored in the index: *present false if the key is
 * missing or invalid. */
int store_index_meta(struct store *s, bool *present, uint64_t *chunks,
		     uint64_t *bytes_unique);
/*
 * The index after a failed write. LevelDB refuses every write once one
 * failed (a full disk, an I/O error) until it is reopened; the store then
 * keeps the failed handle for lookups and reads (restores go on), refuses
 * ingest before writing any pack byte, and reopens the index by itself
 * (on the next ingest, lookup or health query, at most once per backoff
 * of 0.5 s doubling to 8 s) as soon as a probe shows there is room for
 * the reopen. 0 when the index is writable; otherwise -ENOSPC (no room),
 * -EAGAIN (closed: a reopen failed, lookups fail until one succeeds) or
 * -EIO, with the reason in `why` (may be NULL). Never waits for an
 * ingest in progress.
 */
int store_index_health(struct store *s, char *why, size_t whysz);

/* Seals the open pack, closes the index. NULL is a no-op. */
void store_close(struct store *s);

/* 0 and *loc filled, -ENOENT if the id is not stored, -EIO (with a
 * reason) if the index cannot be read, -EAGAIN if it is closed after a
 * failed reopen (store_index_health). This is whether the chunk is on
 * disk, whoever stored it: what a client may be told goes through
 * domains_lookup() (server/store/domains.h). */
int store_lookup(struct store *s, const struct dd_id *id,
		 struct dd_chunk_loc *loc);

/* store_lookup() of n ids at once (any order, repeats allowed), in one
 * pass over the index in key order: what a snapshot create does with the
 * chunks its catalog names, for a fraction of the cost of n lookups (on a
 * shared pool, the local misses are asked of the pool in one batch).
 * rcs[i] is 0 with locs[i] filled, or -ENOENT. Returns 0, or a negative
 * error (the index or the pool could not be read; rcs and locs are then
 * undefined, and a pass that read every block may fail where the lookups
 * one by one would not: a caller that must tell which id failed goes id
 * by id then). */
int store_lookup_many(struct store *s, const struct dd_id *ids, size_t n,
		      struct dd_chunk_loc *locs, int *rcs);

/* store_lookup in the local index only: on a pool shared by several
 * front-ends, a miss is not looked up in the shared index (for what may
 * be approximate, such as an upload's counters). Otherwise the same. */
int store_lookup_cached(struct store *s, const struct dd_id *id,
			struct dd_chunk_loc *loc);

/*
 * Stores the records that are not yet stored, for dedup domain `dom`
 * (NULL: the repository has no domains; server/store/domains.h). The caller has
 * verified every record (decompressed and re-hashed). Records the domain
 * already holds, and repeats of an id within `recs`, are counted in
 * *duplicates; the others in *stored, including those another domain
 * stored, which are not written again: the domain only becomes a member.
 * On success everything is durable: pack bytes synced, then entries,
 * memberships and counters in one synced batch. On failure nothing is
 * acknowledged and nothing is indexed: -ENOSPC when the disk (or quota) is
 * full (also while the index cannot be reopened after such a failure),
 * -EIO otherwise, with a reason.
 */
struct domains_tag;
int store_ingest(struct store *s, const struct domains_tag *dom,
		 const struct dd_bundle_record *recs, size_t n,
		 uint32_t *stored, uint32_t *duplicates);

/*
 * Raw index access for server/store/domains.c, whose keys live in the same
 * index. store_key_exists: 1 if `key` is in the index, 0 if not, -EIO
 * (store_key_matches: below).
 * store_index_scan: cb for every key starting with `prefix`, in key order
 * (as store_index_foreach). store_index_apply: writes a LevelDB batch
 * (leveldb_writebatch_t) synced; called inside store_with_ingest_lock()
 * (or while the store opens), since a failed write marks the index for a
 * reopen as store_ingest's do. store_with_ingest_lock: runs fn with the
 * ingest lock held, so that no chunk is stored meanwhile.
 */
int store_key_exists(struct store *s, const void *key, size_t klen);
/* 1 if `key` is in the index with exactly the value val[0..vlen) (any
 * value when val is NULL), 0 if it is not or has another value, -EIO
 * etc. */
int store_key_matches(struct store *s, const void *key, size_t klen,
		      const void *val, size_t vlen);
int store_index_scan(struct store *s, const void *prefix, size_t plen,
		     store_entry_cb cb, void *payload);
int store_index_apply(struct store *s, void *batch);
int store_with_ingest_lock(struct store *s, int (*fn)(void *payload),
			   void *payload);

/* The stored (possibly compressed) bytes of a chunk at *loc into out,
 * with the pack record header checked. -EBADMSG (naming the chunk) on a
 * mismatch, -EIO if the pack cannot be read. */
int store_read_stored(struct store *s, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, struct dd_buf *out);
/* The same without a copy: the record as it is in the pack into `buf`,
 * which has room for DD_PACK_RECORD_HEADER_LEN + loc->stored_len bytes;
 * the stored bytes are left after the header. -EAGAIN (nothing read) if
 * the chunk moved to a record of another length: use store_read_stored. */
int store_read_stored_to(struct store *s, const struct dd_id *id,
			 const struct dd_chunk_loc *loc, uint8_t *buf);

/*
 * Reads the records of ids[i] at locs[i] (i < n), each as it is in its
 * pack (header, then stored bytes) into dst[i], which has room for
 * DD_PACK_RECORD_HEADER_LEN + locs[i].stored_len bytes, and checks every
 * header. Records that follow each other both in a pack and in memory
 * (dst[i] right after record i - 1) are read as one span, and all spans
 * are read at once (backend_read_multi: on RADOS one round trip for the
 * lot, not one per chunk). The number of reads (spans) made, or the
 * first failure (-EBADMSG for a bad
 * location or header; a missing pack -ENOENT, ...): then nothing is known
 * about any record, and the caller reads them one at a time
 * (store_read_stored*), which also follows a chunk a collection moved.
 * Does not decode or verify the bytes.
 */
int store_read_records(struct store *s, const struct dd_id *ids,
		       const struct dd_chunk_loc *locs, uint8_t *const *dst,
		       size_t n);

/* Checks that stored bytes are the chunk `id` (what store_decode checks)
 * without keeping the plain bytes: a raw record (DD_COMP_NONE) is hashed
 * where it lies, with no copy; others are decoded into `scratch`. 0 or
 * -EBADMSG naming the chunk. */
int store_verify(const struct dd_id *id, uint32_t flags, uint32_t plain_len,
		 const void *stored, size_t stored_len, struct dd_buf *scratch,
		 void *dctx);
/*
 * store_verify of recs[0..n) in order, the plain bytes of several hashed
 * at once (dd_sha256_batch): a few records at a time are decoded into
 * `scratch` (at most 4 MiB of plain bytes beyond one record). 0, or the
 * error store_verify gives for the first record that fails (-ENOMEM).
 */
int store_verify_records(const struct dd_bundle_record *recs, size_t n,
			 struct dd_buf *scratch, void *dctx);

/* Decodes stored bytes into plain bytes and checks they hash to id;
 * -EBADMSG naming the chunk if not. `dctx` is an optional ZSTD_DCtx*.
 * A sealed record (DD_COMP_SEALED) cannot be decoded: only its layout is
 * checked (dd_stored_len_check) and *plain is left empty. */
int store_decode(struct dd_buf *plain, const struct dd_id *id,
		 uint32_t flags, uint32_t plain_len, const void *stored,
		 size_t stored_len, void *dctx);

/* Lookup + read + decode + verify: the chunk's plain bytes in plain.
 * `scratch` holds the stored bytes; -ENOENT, -EBADMSG, -EIO. A chunk found
 * damaged (-EBADMSG) is dropped from the index (store_forget) unless the
 * store is read-only. A sealed chunk is -ENOTSUP: its bytes are the
 * client's to read. */
int store_read_plain(struct store *s, const struct dd_id *id,
		     struct dd_buf *plain, struct dd_buf *scratch, void *dctx);

/*
 * Collection support (server/repo/gc.c; docs/OPERATIONS.md, "Garbage
 * collection"). One collection at a time: store_gc_begin() fails with
 * -EBUSY while another runs, store_gc_end() ends it.
 *
 * The store records every chunk id it vouches for, at all times, in its
 * vouch journal (vouch.h): each store_lookup() that finds a chunk (a
 * /chunks/missing answer "present", an upload's duplicate check, a
 * snapshot's reference check, a read) and each chunk ingested. The
 * journal is bounded in memory and never overflows into a cancel.
 *
 * store_gc_track() seals the open pack (so it can be collected; new chunks
 * go to packs numbered *first_new_seq or higher) and starts a new
 * generation of the journal. It asks since(payload) (under the journal's
 * lock) when the oldest backup still in progress began (dd_monotonic()
 * seconds; HUGE_VAL: none) and drops the generations that ended before
 * then; since == NULL keeps them all. The sweep never deletes an id a
 * kept generation holds: what a backup in progress was told exists, or
 * uploaded, stays until that backup ends, whatever number of collections
 * run meanwhile; and chunks stored since tracking began are vouched for.
 * Lookups and the sweep exclude each other, so no id is reported present
 * and then deleted without being recorded.
 */
typedef double (*store_since_cb)(void *payload);
struct vouch_stats;
int store_gc_begin(struct store *s);
int store_gc_track(struct store *s, bool seal, store_since_cb since,
		   void *payload, uint64_t *first_new_seq);
void store_gc_end(struct store *s);
bool store_gc_vouched(struct store *s, const struct dd_id *id);
/* What the journal holds now. */
void store_gc_vouch_stats(struct store *s, struct vouch_stats *out);
/* Deletes the index entries of `ids` that are stored and not vouched
 * for, in one synced batch with the counters. Only between
 * store_gc_track() and store_gc_end() (else -EINVAL). */
int store_gc_sweep(struct store *s, const struct dd_id *ids, size_t n,
		   uint64_t *removed, uint64_t *bytes);
/* A new pack for the collector's copies (its own sequence number). */
int store_gc_new_pack(struct store *s, struct dd_pack_writer **out);
/* Points each entry still at m[i].from to m[i].to, in one synced batch;
 * the new pack must be synced first. *moved counts the entries moved. */
struct store_move {
	struct dd_id id;
	struct dd_chunk_loc from, to;
};
int store_gc_relocate(struct store *s, const struct store_move *m, size_t n,
		      uint64_t *moved);
/* Deletes a pack no entry points at (the caller made sure), closing its
 * cached readers; durable on return (backend_remove). */
int store_gc_remove_pack(struct store *s, uint64_t seq);
/* A lookup that vouches for nothing (for the collector itself). */
int store_gc_lookup(struct store *s, const struct dd_id *id,
		    struct dd_chunk_loc *loc);

/* Counters kept in the index. */
void store_counters(struct store *s, uint64_t *chunks,
		    uint64_t *bytes_unique);
/* Group commit (docs/GROUP-COMMIT.md): the commits since the store
 * opened that wrote something (each one pack sync and one synced index
 * write), and the ingests they answered; members / commits is the mean
 * group size. */
void store_commit_stats(struct store *s, uint64_t *commits,
			uint64_t *members);
/* Number and total size of the packs. */
int store_pack_usage(struct store *s, uint64_t *packs, uint64_t *bytes);
/* The same for the stats routes: in a directory, counted each call; in
 * a store elsewhere (RADOS: a listing of the pool and a stat a pack), at
 * most every STORE_USAGE_RECENT_SEC, in between the last count's (or
 * store_pack_usage's) figures. */
#define STORE_USAGE_RECENT_SEC 30
int store_pack_usage_recent(struct store *s, uint64_t *packs,
			    uint64_t *bytes);

#endif
