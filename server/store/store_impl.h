/*
 * store_impl.h - what the files of the chunk store (store*.c) share;
 * private to server/store/. store.h is the store's API: its contract
 * comments hold for the functions these files define.
 */
#ifndef SRV_STORE_IMPL_H
#define SRV_STORE_IMPL_H

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <leveldb/c.h>
#include <zstd.h>

#include "backend.h"
#include "compress.h"
#include "domains.h"
#include "ldbcheck.h"
#include "log.h"
#include "packio.h"
#include "store.h"
#include "vouch.h"

#define STORE_CACHE_BYTES (64u * 1024 * 1024)
/* The most chunks whose index entries fit in the block cache (at most 64
 * bytes a chunk on disk, docs/SERVER-SCALE.md): up to this many, lookups
 * keep the blocks they read (a second backup of a tree asks about the
 * same ids again); past it they do not (store_ropts_lookup). */
#define STORE_CACHE_CHUNKS (STORE_CACHE_BYTES / 64u)
/* LevelDB's table size. Its default, 2 MiB, makes 1,500 tables of a
 * 50-million-chunk index; 32 MiB makes about 220, which the table cache
 * (STORE_OPEN_TABLES) keeps open: a table that is not open has to be
 * mapped again and its index and filter blocks read before a lookup,
 * present or absent, can use it (docs/SERVER-SCALE.md). */
#define STORE_TABLE_BYTES (32u * 1024 * 1024)
/* LevelDB's max_open_files: its table cache holds this many tables less
 * 10, in 16 shards of an equal share, so a shard overflows (and closes
 * and reopens tables on every few lookups) long before the total is
 * reached: 256 gave 15 a shard, too few for the 217 tables of 50 million
 * chunks. 1000 (62 a shard) keeps about 700 tables (20 GiB of index,
 * 350 million chunks) open. Each open table holds its index and filter
 * blocks in memory (about 2.6 bytes a chunk) and, read with pread
 * (ldbenv.h), a file descriptor: ldbenv_setup() raises the open-files
 * limit first, and LevelDB gives its tables a fifth of it. */
#define STORE_OPEN_TABLES 1000
/* Bloom filter bits a key. With LevelDB's usual 10 (1% false
 * positives), an absent id checked against the 3 or 4 levels of a big
 * index reads a data block once in 30 lookups: at 50 million chunks that
 * doubled the CPU of a missing-query and mapped in a data page a false
 * positive (docs/SERVER-SCALE.md). 16 bits (0.05%) cost 0.75 byte of
 * index a chunk. Tables written with another figure keep their filters,
 * which stay valid (the policy's name does not change). */
#define STORE_BLOOM_BITS 16
#define STORE_FD_SLOTS 64
#define STORE_META_KEY "mstats"
#define STORE_META_LEN 17u

/* Reopening an index whose writes failed: at most one attempt per backoff,
 * which doubles from MIN to MAX while the disk stays full. */
#define STORE_HEAL_BACKOFF_MIN 0.5
#define STORE_HEAL_BACKOFF_MAX 8.0
/* Room an index reopen needs beyond its log and MANIFEST (a new MANIFEST
 * and log, and slack). */
#define STORE_HEAL_MARGIN (1024u * 1024)
#define STORE_HEAL_PROBE "heal-probe.tmp"

struct store_fd {
	uint64_t seq;
	struct backend_reader *rd;  /* NULL: free slot */
	unsigned refs;
	uint64_t used;     /* for least-recently-used eviction */
	bool dead;         /* the pack was deleted: close at the last release */
};

/* Test hook (docs/OPERATIONS.md): DEDUP_TEST_VOUCH_MAX=N bounds each
 * exact set of the vouch journal at N ids, so that tests reach its bloom
 * filters with a few thousand chunks. */
#define STORE_TEST_VOUCH_MAX "DEDUP_TEST_VOUCH_MAX"
#define STORE_TEST_DROP_BATCH "DEDUP_TEST_DROP_BATCH"
/* Test hook (docs/OPERATIONS.md): DEDUP_TEST_FILLS_UNMARKED=1 makes a
 * shared store fill its cache as the code before domains_cache_learn did
 * (no membership keys, no audit), so that a test can build the index an
 * older front-end left and check that the upgrade corrects it. */
#define STORE_TEST_FILLS_UNMARKED "DEDUP_TEST_FILLS_UNMARKED"

/* Internal open flag: a new index in a directory that must not exist
 * yet, always rebuilt from the packs (repair). */
#define STORE_OPEN_FRESH 0x100u

/* Shards of the shared chunk index (store_shared.c): one object per
 * leading byte of the id. */
#define STORE_SHARDS 256u
/* A front-end's number sits in the top bits of its pack sequence
 * numbers, so that front-ends on one pool never name a pack alike. */
#define STORE_FE_SHIFT 48

/*
 * Group commit (store_commit.c). An ingest appends its records to the
 * open pack and its index entries to the open group's batch, then waits;
 * one thread at a time (the leader) takes the open group, makes the pack
 * bytes durable with one sync and writes the group's batch in one synced
 * LevelDB write, outside ingest_lock, while the next group fills. Every
 * member is answered only after the commit that covers its bytes.
 *
 * store_pend: a record appended but not yet indexed, findable by id so
 * that a concurrent upload of the same chunk is not written twice. It
 * lives in its waiter's array, in a bucket of store.pend until its group
 * is done.
 */
struct store_pend {
	struct dd_id id;
	struct store_pend *next, **pprev;
	struct domains_tag dom;   /* the domain that stored it */
	bool has_dom;             /* false: stored with no domain (NULL) */
	uint32_t flags;
	uint32_t plain_len;
};

/* A dedup domain's membership published with the entries: domain `tag`
 * holds chunk `id`, stored at `loc` (the entry's location when it was
 * made). */
struct store_member {
	struct dd_id id;
	struct dd_chunk_loc loc;
	struct domains_tag tag;
};

#define STORE_POOL_TAGS 256u

struct store_waiter {
	struct store_waiter *next;
	struct store_pend *pend;  /* its new records (npend of them) */
	size_t npend;
	const struct dd_id *ids;  /* for the shared index (NULL: none) */
	const struct dd_chunk_loc *locs;
	/* the memberships to publish with them (the uploader's domain's,
	 * of its new and joined chunks; domains in use only) */
	struct store_member *members;
	size_t nmembers;
	bool done;                /* set by the leader, under ingest_lock */
	int rc;
	char why[256];            /* the reason of a failure */
};

struct store_group {
	struct store_waiter *head, **tail;
	leveldb_writebatch_t *batch;   /* NULL until a member adds to it */
	int64_t dchunks, dbytes;       /* the counters' change */
	size_t members;                /* uploads that joined it */
	size_t nrecords;               /* pack records its members appended */
	uint64_t bytes;                /* and their pack bytes */
};

/* The pack bytes a group takes while a commit runs, besides its first
 * member's (store_group_full). */
#define STORE_GROUP_BYTES (4u * 1024 * 1024)

/* A group of one upload with at least this many pack bytes is committed
 * in place: ingest_lock is kept through its I/O and the writer's own
 * buffer synced, as one upload a sync was; nothing appends or joins
 * meanwhile. Only smaller groups, and groups that several uploads joined,
 * let the next group fill while they commit. Measured
 * (docs/GROUP-COMMIT.md): with big uploads the overlap cost more server
 * CPU (page faults from the detached buffers) than the syncs it saved;
 * with small ones the sync is most of an upload's cost. */
#define STORE_GROUP_OVERLAP_BYTES (256u * 1024)

#define STORE_PEND_BUCKETS 4096u

struct store {
	struct backend *be;       /* where the packs are (owned) */
	bool shared;              /* the backend has the shared index */
	uint32_t fe;              /* this front-end's number (0: the first) */
	uint64_t pack_target;     /* packio_target(be) */
	char index_dir[4096];
	unsigned flags;           /* STORE_OPEN_* */
	/* clients.json came to say that domains are used after the open
	 * (store_domains_note; read and set atomically) */
	int domains_noted;
	/* test hook DEDUP_TEST_FILLS_UNMARKED: fills as before domains
	 * were kept per front-end (domains.h) */
	bool fills_unmarked;
	uint64_t rebuild_bad;     /* damaged records the last rebuild skipped */

	/* The index. `db_lock` is held shared around every use of `db` and
	 * exclusively to reopen it after a failed write. */
	pthread_rwlock_t db_lock;
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_filterpolicy_t *bloom;
	leveldb_cache_t *cache;
	leveldb_readoptions_t *ropts;
	/* Scans of the whole index (store_index_foreach, store_index_scan),
	 * and lookups (store_ropts_lookup: an id, a create's references, a
	 * domain membership) once the index outgrows the block cache
	 * (STORE_CACHE_CHUNKS): they do not fill the cache. A
	 * scan reads every block once, and ids are hashes, so on a big
	 * index each lookup lands in a random block: caching those only
	 * churns the cache (and the heap) for no hits. Where LevelDB maps
	 * its tables the cache is not used at all (ldbenv.h,
	 * docs/SERVER-SCALE.md). */
	leveldb_readoptions_t *ropts_nofill;
	leveldb_writeoptions_t *wopts_sync;
	leveldb_writeoptions_t *wopts_nosync;

	/* Ingest state, under ingest_lock. `db_failed`: a write to the index
	 * failed, LevelDB refuses every later write until it is reopened,
	 * and reads still work (store_db_heal). */
	pthread_mutex_t ingest_lock;
	struct dd_pack_writer *writer;
	uint64_t next_seq;
	bool db_failed;
	double heal_next;         /* monotonic time of the next attempt */
	double heal_backoff;      /* seconds until the one after */
	/* Group commit (above), under ingest_lock: the group filling now,
	 * whether a leader is committing the one before (with ingest_lock
	 * released), whether a drain keeps new ingests out, and the cond
	 * every waiter and drainer sleeps on (with ingest_lock). The open
	 * writer is never sealed, freed or synced while `committing`. */
	struct store_group open;
	bool committing;
	bool draining;
	pthread_cond_t commit_cond;
	struct store_pend *pend[STORE_PEND_BUCKETS];
	/* The leader's buffer for the detached pack bytes, kept between
	 * commits so that it and the writer's swap memory instead of
	 * growing a new buffer for every group. */
	struct dd_buf commit_buf;
	/* Lent to each new pack writer for its pending records and given
	 * back when it is sealed (dd_pack_writer_lend_buf). */
	struct dd_buf pack_buf;
	/* Under counters_lock: groups committed that wrote something (one
	 * pack sync and one index write each), and the ingests they
	 * answered (store_commit_stats). */
	uint64_t commits;
	uint64_t commit_members;

	/* What /health reports, under heal_lock (never waits for an ingest):
	 * a copy of db_failed / db == NULL and why. */
	pthread_mutex_t heal_lock;
	bool idx_failed;
	bool idx_closed;
	int idx_rc;
	char idx_reason[512];

	/* Counters, under counters_lock (read by /stats while ingesting). */
	pthread_mutex_t counters_lock;
	uint64_t chunks;
	uint64_t bytes_unique;
	/* The last pack count of a store not in a directory
	 * (store_pack_usage_recent): when (dd_monotonic(), 0: never) and
	 * what; usage_lock makes one count at a time. */
	pthread_mutex_t usage_lock;
	double usage_at;
	uint64_t usage_packs, usage_bytes;
	/* the last count that failed: when it ended, its error (under
	 * usage_lock) */
	double usage_failed_at;
	int usage_failed_rc;
	char usage_failed_why[256];

	/* Garbage collection (store.h, "Collection support"). `sweep_lock`
	 * is held shared by every lookup that may vouch for a chunk and
	 * exclusively by a sweep batch, so a chunk found present is either
	 * recorded in `vouched` before the sweep looks, or is already gone. */
	pthread_mutex_t gc_lock;      /* one collection at a time */
	pthread_rwlock_t sweep_lock;
	pthread_mutex_t track_lock;   /* vouched, tracking */
	struct vouch *vouched;        /* the vouch journal (vouch.h) */
	bool tracking;                /* a collection is past its start */

	/* The local index as a cache of the shared one (store_shared.c):
	 * the gc epoch it reflects, as recorded under STORE_CACHE_EPOCH_KEY
	 * (unknown: an index older than that record, new or rebuilt). Under
	 * cache_lock, which is never held while waiting for gc_lock. */
	pthread_mutex_t cache_lock;
	uint64_t cache_epoch;
	bool cache_epoch_known;
	/* The dedup domains whose memberships the last pull of the shared
	 * index met (at most STORE_POOL_TAGS): a sweep deletes their keys
	 * of the chunks it removes (store_shared_rm). Under tags_lock, a
	 * leaf (store_shared_rm runs under ingest_lock when a damaged chunk
	 * is dropped, and cache_lock is taken before ingest_lock). */
	pthread_mutex_t tags_lock;
	struct domains_tag pool_tags[STORE_POOL_TAGS];
	size_t npool_tags;
	/* Held while what a read of the shared index learned is decided
	 * and written to the local index (fill_flush, store_shared_grant):
	 * a fill that decided before a membership was written must not
	 * write after it. Taken after ingest_lock, before db_lock. */
	pthread_mutex_t learn_lock;

	/* Packs open for reading (backend readers). */
	pthread_mutex_t fd_lock;
	struct store_fd fds[STORE_FD_SLOTS];
	uint64_t fd_clock;
};


/* store_commit.c */
void store_commit_init(struct store *s);
void store_commit_release(struct store *s);
void store_ingest_lock(struct store *s);
void store_commit_drain(struct store *s);
struct store_pend *store_pend_find(struct store *s, const struct dd_id *id);
void store_pend_add(struct store *s, struct store_pend *p);
void store_pend_remove(struct store_pend *p);
leveldb_writebatch_t *store_group_batch(struct store *s);
void store_group_join(struct store *s, struct store_waiter *w);
int store_commit_wait(struct store *s, struct store_waiter *w);
void store_writer_abandon(struct store *s);
int store_ingest_errno(int rc);
void store_group_fail_open(struct store *s, int rc, const char *why);

/* store_index.c */
int store_db_error(char *err, const char *what);
void store_meta_encode(uint8_t out[STORE_META_LEN], uint64_t chunks,
		       uint64_t bytes);
void store_id_key(uint8_t key[1 + DD_ID_LEN], const struct dd_id *id);
void store_db_release(struct store *s);
int store_db_open(struct store *s);
int store_options_init(struct store *s);
void store_options_release(struct store *s);
leveldb_readoptions_t *store_ropts_lookup(struct store *s);
void store_db_write_failed(struct store *s, int rc);
int store_db_heal(struct store *s);
int store_lookup_raw(struct store *s, const struct dd_id *id,
		     struct dd_chunk_loc *loc);
void store_vouch(struct store *s, const struct dd_id *id);


/* store.c */
int store_recount(struct store *s);

/* store_shared.c */
/* Publishes n entries and nm memberships to the shared index (nothing
 * when the store is not shared), durable on return. */
int store_shared_put(struct store *s, const struct dd_id *ids,
		     const struct dd_chunk_loc *locs, size_t n,
		     const struct store_member *mv, size_t nm);
int store_shared_rm(struct store *s, const struct dd_id *ids, size_t n);
int store_shared_get(struct store *s, const struct dd_id *id,
		     struct dd_chunk_loc *loc);
int store_shared_seed(struct store *s);
/* Reads the recorded cache epoch into s (store open). */
int store_cache_epoch_load(struct store *s);
/* store_index.c: drops the cache, recording `epoch` (gc_lock and
 * cache_lock held). */
int store_cache_drop_to(struct store *s, uint64_t epoch, uint64_t *dropped);
/* The shared index's entry of id, bypassing the local cache (which it
 * then updates): a location the cache gave failed to read. */
int store_shared_get_fresh(struct store *s, const struct dd_id *id,
			   struct dd_chunk_loc *loc);

/* store_packs.c */
int store_max_seq_cb(void *payload, uint64_t seq);
void store_seal_writer(struct store *s);
void store_readers_drop(struct store *s, uint64_t seq);
void store_readers_close(struct store *s);

#endif
