/*
 * backend.h - where the repository's objects live: one small interface, two
 * implementations (a local directory, a Ceph RADOS pool). docs/STORAGE.md
 * gives the durability argument per backend.
 *
 * An object is a byte string named by a short relative name such as
 * "packs/0000000000000012.pack", "snapshots/ID.json" or "config.json":
 * 1..BACKEND_NAME_MAX bytes of [A-Za-z0-9._-] in components separated by
 * single '/', no component empty, "." or "..", and none starting with '.'
 * (the directory backend keeps its temporary and lock files there). Names
 * are checked here, once, for every backend: a bad name is -EINVAL.
 *
 * Every function returns 0 (or what it says) on success and a negative
 * errno on failure; the reason (which object, what the backend said) is
 * recorded with dd_error_set() for this thread, so the caller logs
 * dd_error_last() (server: log_reason(rc)). Codes a caller may act on:
 *   -ENOENT   the object (or the module for a "rados:" spec) does not exist
 *   -EEXIST   put-once / create found the object already there
 *   -ENODATA  a read ran past the end of the object (short read)
 *   -ECANCELED a compare-and-swap found other content than expected
 *   -EBUSY    the lock is held by another handle
 *   -EFBIG    the object would exceed the backend's maximum object size
 *   -EINVAL   bad name, bad spec, bad argument
 *   -ETIMEDOUT the storage did not answer in time (RADOS: an operation or
 *             monitor command past its timeout; OSDs or monitors down,
 *             the cluster paused): transient, see backend_unavailable()
 * Others (-EIO, -ENOSPC, ...) are passed up unchanged.
 *
 * A handle is thread-safe: several threads may call any operation on it at
 * once (the directory backend uses no shared state; librados handles are
 * thread-safe). Locks belong to the handle that took them.
 *
 * The spec string chooses the backend:
 *   "dir:PATH"              a directory (created by backend_open if missing)
 *   "rados:POOL"            a RADOS pool, default namespace
 *   "rados:POOL/NAMESPACE"  a RADOS pool, objects in that namespace
 * The RADOS backend is a separate module, dedup-backend-rados.so, loaded
 * with dlopen from $DEDUP_BACKEND_DIR if set, else from BACKEND_MODULE_DIR
 * (the build's $(LIBDIR)/dedup); the server itself never links librados.
 */
#ifndef SRV_BACKEND_H
#define SRV_BACKEND_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True for an error that says the storage did not answer in time, not
 * that something is wrong with what it holds. Callers that wrap an error
 * keep this one (not -EIO), so that a client is told to come back later
 * (503 with Retry-After) rather than that its request failed. */
static inline bool backend_unavailable(int rc)
{
	return rc == -ETIMEDOUT;
}

#define BACKEND_NAME_MAX 200
/* The largest object backend_put() writes in one call (both backends).
 * Larger objects (packs) grow by backend_append(). */
#define BACKEND_PUT_MAX (64u * 1024 * 1024)
/* The largest object backend_cas() handles (it reads the whole object). */
#define BACKEND_CAS_MAX (1u * 1024 * 1024)

struct backend;

/* Options a spec string cannot carry (server.conf); NULL fields take the
 * defaults. Only the RADOS backend reads them. */
struct backend_opts {
	const char *ceph_conf;  /* ceph.conf path; NULL: librados' search */
	const char *ceph_user;  /* cephx user without "client.", NULL: admin */
};

/*
 * Opens the backend named by `spec` (see above) into *out (the caller
 * frees it with backend_free). -EINVAL for an unknown or malformed spec;
 * for "rados:" -ENOENT when the module is missing, with a reason naming
 * the file looked for and the package to install (dedup-server-rados);
 * else whatever connecting to the cluster returned (-ETIMEDOUT, -ENOENT for
 * a missing pool, ...).
 */
int backend_open(struct backend **out, const char *spec,
		 const struct backend_opts *opts);
/* Closes the handle; its locks are released (RADOS: unlocked; dir: the
 * lock files' flocks go with their descriptors). NULL is a no-op. */
void backend_free(struct backend *b);
/* "dir" or "rados": for messages and metrics. Borrowed. */
const char *backend_kind(const struct backend *b);
/* The spec after its "dir:" or "rados:": the directory, or POOL[/NS].
 * Borrowed. */
const char *backend_where(const struct backend *b);

/*
 * Put-once: creates object `name` holding exactly data[0..len). -EEXIST if
 * it exists already (its content is left as it was). Durable on return:
 * after 0, a crash of this machine (dir) or of any replica short of the
 * pool's min_size (RADOS) cannot lose it. A reader sees either no object
 * or the whole content, never a part. len <= BACKEND_PUT_MAX, else -EFBIG.
 */
int backend_put(struct backend *b, const char *name, const void *data,
		size_t len);

/*
 * Appends data[0..len) at the end of object `name`, creating it if it does
 * not exist. Returns only when the bytes are durable (dir: fdatasync;
 * RADOS: every aio completion reported complete, i.e. on every replica).
 * On failure the object may hold any prefix of the new bytes: the caller
 * (the pack writer) learns the real end with backend_stat and its formats
 * are self-delimiting. Only one writer may append to an object at a time
 * (the caller's rule; nothing here enforces it). -EFBIG when the object
 * would exceed the backend's maximum object size (RADOS: osd_max_object_size,
 * 128 MiB by default).
 */
int backend_append(struct backend *b, const char *name, const void *data,
		   size_t len);

/*
 * Reads exactly len bytes at offset off of object `name` into buf.
 * -ENOENT when it does not exist; -ENODATA when the object ends before
 * off + len (a short read: buf holds what there was, and the reason says
 * how many bytes); len 0 reads nothing and only checks the object exists.
 */
int backend_read(struct backend *b, const char *name, uint64_t off,
		 void *buf, size_t len);

/*
 * The whole of a small object: *out (malloc'd, NUL-terminated so a JSON
 * object reads as text; the caller frees) and *len. -EFBIG (with the
 * name) when it holds more than `max` bytes; else as backend_stat and
 * backend_read.
 */
int backend_get(struct backend *b, const char *name, size_t max,
		uint8_t **out, size_t *len);

/*
 * An object opened for many reads (the store's pack cache): the directory
 * backend keeps one descriptor (one pread per read, as fast as a file),
 * RADOS one read per call. Readers are for objects that only grow (packs):
 * a directory reader keeps reading what the object held when it was opened
 * if it is removed meanwhile, a RADOS one gets -ENOENT. backend_reader_open
 * returns -ENOENT when the object does not exist; backend_reader_read
 * follows backend_read. A reader may be used by several threads at once;
 * it must be closed before its backend is freed.
 */
struct backend_reader;
int backend_reader_open(struct backend *b, const char *name,
			struct backend_reader **out);
int backend_reader_read(struct backend_reader *r, uint64_t off, void *buf,
			size_t len);
void backend_reader_close(struct backend_reader *r);

/*
 * Several ranges read at once: v[i] asks for exactly v[i].len bytes at
 * v[i].off of object v[i].name into v[i].buf, and gets its own result in
 * v[i].rc (0, or as backend_read: -ENOENT, -ENODATA, ...). RADOS puts the
 * reads in flight together (BACKEND_READ_INFLIGHT operations at most, a
 * range over 4 MiB in pieces) and waits for them, so n ranges cost about
 * one round trip instead of n; the directory reads them one after the
 * other. Returns 0 when every range was read, else the first failure's rc
 * (its reason recorded; the others' rc say which failed). Buffers must not
 * overlap.
 */
struct backend_range {
	const char *name;
	uint64_t off;
	void *buf;
	size_t len;
	int rc;                 /* out */
};
#define BACKEND_READ_INFLIGHT 32
int backend_read_multi(struct backend *b, struct backend_range *v, size_t n);
/* Whether a fetch should read its spans with backend_read_multi: RADOS
 * overlaps them (one round trip for many); the directory reads them past
 * the page cache when its appends are (backend_dir_reads_spans), and
 * else one pread a record from the cache does better. */
int backend_reads_overlap(const struct backend *b);

/* The object's size into *size; -ENOENT when it does not exist. */
int backend_stat(struct backend *b, const char *name, uint64_t *size);

/*
 * Calls fn(name, payload) for every object whose name starts with
 * `prefix` ("" for all; "packs/" for the packs), in no particular order.
 * A non-zero return of fn stops the listing and is returned. Objects put
 * or removed while listing may or may not be seen.
 */
typedef int (*backend_list_fn)(const char *name, void *payload);
int backend_list(struct backend *b, const char *prefix, backend_list_fn fn,
		 void *payload);

/*
 * Cuts object `name` back to `size` bytes (no larger than it is), durable
 * on return: the pack writer takes a torn append off again, so a pack
 * whose trailer could not be written whole (a full disk) stays a valid
 * unsealed pack. -EOPNOTSUPP where the backend cannot (RADOS: the writer
 * then leaves the torn tail, which a scan stops at).
 */
int backend_truncate(struct backend *b, const char *name, uint64_t size);

/* Removes object `name`; durable on return. -ENOENT when it does not
 * exist. */
int backend_remove(struct backend *b, const char *name);

/*
 * Takes the exclusive lock `name` (a name as above, in its own space: it
 * is not an object a listing shows) for this handle. -EBUSY when another
 * handle, in this process or any other, holds it. Taking it again from
 * the same handle renews the lease.
 * lease_ms: RADOS lets the lock expire lease_ms after it was last taken or
 * renewed, so a holder that dies (or loses the network) frees it; the
 * holder must renew well within the lease and must treat a failed renewal
 * as having lost the lock. 0 means no expiry. The directory backend
 * ignores the lease: its flock lives exactly as long as the process.
 */
int backend_lock(struct backend *b, const char *name, uint32_t lease_ms);
/* Releases the lock `name`; -ENOENT if this handle does not hold it (e.g.
 * its lease expired and another took it). */
int backend_unlock(struct backend *b, const char *name);

/*
 * Create-or-compare-and-swap of a small object (<= BACKEND_CAS_MAX bytes):
 * with expect == NULL, creates `name` holding data (-EEXIST if it exists);
 * otherwise replaces its whole content by data only if its content is
 * exactly expect[0..expect_len) at that moment, atomically with respect to
 * every other backend_cas on it, from any handle or process (RADOS: with
 * respect to every write, by the object's version) (-ECANCELED when it
 * differs, -ENOENT when it does not exist). Durable on return; a reader
 * sees the old or the new content, never a mix. An object meant for
 * swapping is written by backend_cas only (create, then swaps).
 */
int backend_cas(struct backend *b, const char *name, const void *expect,
		size_t expect_len, const void *data, size_t len);

/*
 * Key/value maps attached to an object (RADOS: its omap): small entries
 * read and written in batches, atomically per call and per object. The
 * shared chunk index (docs/STORAGE.md, "Several front-ends") keeps its
 * shards here. Keys are NUL-terminated strings of 1..BACKEND_KEY_MAX
 * bytes; values 0..BACKEND_VAL_MAX bytes; at most BACKEND_KV_BATCH pairs a
 * call. The directory backend has no such maps: every call there is
 * -EOPNOTSUPP (a directory repository has one front-end, whose LevelDB
 * index is the whole index).
 *
 * backend_omap_set: sets the pairs (creating the object if missing),
 *   durable on return (every replica).
 * backend_omap_rm: removes the keys (absent ones are no error); -ENOENT
 *   only when the object does not exist.
 * backend_omap_get: calls fn for each of `keys` that is set (in no
 *   particular order); absent keys, or an absent object, call nothing.
 * backend_omap_list: calls fn for every pair of the object, in key order;
 *   an absent object calls nothing. A non-zero return of fn stops either
 *   and is returned.
 */
#define BACKEND_KEY_MAX 128
#define BACKEND_VAL_MAX 4096
#define BACKEND_KV_BATCH 4096
struct backend_kv {
	const char *key;
	const void *val;
	size_t vlen;
};
typedef int (*backend_kv_fn)(const char *key, const void *val, size_t vlen,
			     void *payload);
int backend_omap_set(struct backend *b, const char *name,
		     const struct backend_kv *kv, size_t n);
/* Several objects' sets at once (RADOS: all in flight together, then
 * waited for): what an ingest batch publishes to its shards in one round
 * trip instead of one per shard. Each set is atomic on its object; on
 * failure any of them may or may not have been applied. */
struct backend_omap_batch {
	const char *name;
	const struct backend_kv *kv;
	size_t n;
};
int backend_omap_set_multi(struct backend *b,
			   const struct backend_omap_batch *v, size_t n);
int backend_omap_rm(struct backend *b, const char *name,
		    const char *const *keys, size_t n);
int backend_omap_get(struct backend *b, const char *name,
		     const char *const *keys, size_t n, backend_kv_fn fn,
		     void *payload);
int backend_omap_list(struct backend *b, const char *name, backend_kv_fn fn,
		      void *payload);
/* Whether this backend has key/value maps (false: the calls above are
 * -EOPNOTSUPP). */
int backend_has_omap(const struct backend *b);
/* Operations issued through this handle since it was opened (each call
 * above counts its round trips to the storage: one per append piece,
 * read piece, omap batch...): for the benchmarks' "operations per GB". */
uint64_t backend_ops_count(const struct backend *b);
/* Of those, the reads of object data (backend_read, backend_get, reader
 * reads, each range of backend_read_multi): for /metrics and the tests'
 * "reads per restored chunk". */
uint64_t backend_reads_count(const struct backend *b);

/*
 * ---- for implementations only ----
 *
 * An implementation fills an ops table; the wrappers above check names and
 * arguments, then call it. Each op returns 0 or a negative errno and, on
 * failure, may write a reason into why (BACKEND_WHY bytes, NUL-terminated;
 * an empty why is replaced by strerror). `impl` is the implementation's
 * own handle. The RADOS module exports backend_rados_module (see
 * BACKEND_MODULE_SYMBOL), checked against BACKEND_ABI when loaded.
 */
#define BACKEND_WHY 256
#define BACKEND_ABI 3
#define BACKEND_MODULE_FILE "dedup-backend-rados.so"
#define BACKEND_MODULE_SYMBOL "backend_rados_module"
#define BACKEND_MODULE_PACKAGE "dedup-server-rados"

struct backend_ops {
	const char *kind;
	int (*open)(void **impl, const char *where,
		    const struct backend_opts *opts, char *why);
	void (*close)(void *impl);
	int (*put)(void *impl, const char *name, const void *data, size_t len,
		   char *why);
	int (*append)(void *impl, const char *name, const void *data,
		      size_t len, char *why);
	/* Returns the bytes read (< len at the end of the object) or < 0. */
	int64_t (*read)(void *impl, const char *name, uint64_t off, void *buf,
			size_t len, char *why);
	int (*stat)(void *impl, const char *name, uint64_t *size, char *why);
	int (*list)(void *impl, const char *prefix, backend_list_fn fn,
		    void *payload, char *why);
	int (*remove)(void *impl, const char *name, char *why);
	int (*lock)(void *impl, const char *name, uint32_t lease_ms,
		    char *why);
	int (*unlock)(void *impl, const char *name, char *why);
	int (*cas)(void *impl, const char *name, const void *expect,
		   size_t expect_len, const void *data, size_t len,
		   char *why);
	/* Optional (NULL: -EOPNOTSUPP). */
	int (*truncate)(void *impl, const char *name, uint64_t size,
			char *why);
	/* Optional readers (NULL: each read goes to read above). rread
	 * returns the bytes read, as read does. */
	int (*ropen)(void *impl, const char *name, void **rd, char *why);
	int64_t (*rread)(void *rd, uint64_t off, void *buf, size_t len,
			 char *why);
	void (*rclose)(void *rd);
	/* Optional (NULL: read one range after the other): every range of
	 * v read, each range's result (0 or < 0, a short read -ENODATA) in
	 * its rc; returns 0 or the first failure, whose reason goes in why. */
	int (*read_multi)(void *impl, struct backend_range *v, size_t n,
			  char *why);
	/* Optional key/value maps (NULL: -EOPNOTSUPP). */
	int (*omap_set)(void *impl, const char *name,
			const struct backend_kv *kv, size_t n, char *why);
	/* Optional (NULL: omap_set one object after the other). */
	int (*omap_set_multi)(void *impl, const struct backend_omap_batch *v,
			      size_t n, char *why);
	int (*omap_rm)(void *impl, const char *name,
		       const char *const *keys, size_t n, char *why);
	int (*omap_get)(void *impl, const char *name,
			const char *const *keys, size_t n, backend_kv_fn fn,
			void *payload, char *why);
	int (*omap_list)(void *impl, const char *name, backend_kv_fn fn,
			 void *payload, char *why);
};

struct backend_module {
	int abi;                        /* BACKEND_ABI */
	const struct backend_ops *ops;
};

/* The directory backend, compiled into the server. */
extern const struct backend_ops backend_dir_ops;

/* The directory backend drops what it appends (pack data) from the page
 * cache once it is synced, for the whole process (server.conf
 * `pack_cache_drop`; docs/OPERATIONS.md). Off by default. */
void backend_dir_drop_appended(bool on);

/* The directory backend writes appends of 64 KiB and more (pack data)
 * past the page cache, with O_DIRECT where the file system offers it
 * (`pack_direct_io`; docs/OPERATIONS.md). On by default. */
void backend_dir_direct_appends(bool on);
/* Whether its fetches are then read in spans past the page cache too
 * (backend_read_multi; backend_reads_overlap says so). */
bool backend_dir_reads_spans(void);

#endif
