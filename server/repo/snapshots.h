/*
 * snapshots.h - snapshot manifests: creating them from an agent's request
 * (after verifying its catalog against the store), keeping them on disk as
 * snapshots/<id>.json, and an index of their small fixed fields in memory
 * (id, client, times, sizes, digests of host and paths) for listing,
 * retention and the status figures. A manifest's full text (its catalog
 * ids, its paths) is read from disk when it is asked for.
 *
 * Time: snapshots are ordered by the time the server wrote them
 * (`written_ns`, the server's clock, stored in the manifest), never by the
 * agent's `time_start`, so a client cannot make a snapshot the "latest" or
 * push others out of a retention rule by lying about its clock. A
 * time_start more than SNAPSHOTS_CLOCK_SKEW seconds ahead of the server's
 * clock is refused. Manifests written before `written_ns` existed fall back
 * to their `time_end` (also the server's clock), then to the file's mtime.
 *
 * Visibility: a client sees only the manifests it created; an admin sees
 * all. Errors use the server's codes: -EINVAL a bad request (400),
 * -ENOENT a reference to a chunk that is not stored (409), -EDQUOT the
 * client is at its snapshot limit (507), -ENOSPC a full disk (507),
 * anything else an internal error (500); the reason is in dd_error_last().
 */
#ifndef SRV_SNAPSHOTS_H
#define SRV_SNAPSHOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "hash.h"
#include "proto.h"
#include "store.h"

#define SNAPSHOTS_HOST_MAX 255
#define SNAPSHOTS_PATHS_MAX 1024
#define SNAPSHOTS_PATH_MAX 4096
/* The hex digits of an encrypted snapshot's sealed metadata ("sealed",
 * docs/ENCRYPTION.md): opaque to the server, stored as it came. */
#define SNAPSHOTS_SEALED_MAX (10u * 1024 * 1024)
/* How far ahead of the server's clock a time_start may be (seconds). */
#define SNAPSHOTS_CLOCK_SKEW 3600
/* The plain bytes of one snapshot's catalog chunks, together: a bound on
 * the work one create does while it holds off garbage collection. */
#define SNAPSHOTS_CATALOG_BYTES_MAX (4ull << 30)
/* GET /snapshots: items per page, by default and at most. */
#define SNAPSHOTS_PAGE_DEFAULT 1000
#define SNAPSHOTS_PAGE_MAX 1000
/* Default of max_snapshots_per_client (server.conf). */
#define SNAPSHOTS_PER_CLIENT_DEFAULT 10000

struct snapshots;

/* Indexes every snapshots/<64 hex>.json; a corrupt or foreign file is
 * logged and skipped, never fatal. */
int snapshots_open(struct snapshots **out, const char *repo);
void snapshots_free(struct snapshots *s);

/*
 * A repository whose packs are not in its directory (a RADOS store) keeps
 * each manifest in the store too, as "snapshots/<id>.json" (put-once;
 * docs/STORAGE.md), so that a front-end whose directory is lost recovers
 * its snapshots from the pool (init --recover). From this call on, a
 * create is acknowledged only when the store holds the copy (else -EIO,
 * and the local file is removed again), and a remove removes the store's
 * copy first (if that fails, nothing is removed). `be` is borrowed (the
 * store's, store_backend()); NULL turns it off.
 */
struct backend;
void snapshots_set_mirror(struct snapshots *s, struct backend *be);
/*
 * The store object that grows by a byte after each manifest this server
 * puts into the mirror or removes from it (best effort: a failed append
 * is logged; a put or removal that failed, maybe done, adds none). The
 * other front-ends list the pool's manifests when its size moved, and
 * once a minute whatever it says (frontends.c), not every tick: a
 * listing is a pass over every object of the pool. Never read.
 */
#define SNAPSHOTS_CHANGED "snapshots-changed"
/* Called with the id of each manifest a lookup takes from the mirror
 * (an id this directory lacks, asked for before the front-end's tick
 * adopted it), before it is adopted; a negative return leaves it in the
 * pool. The repository marks it there for its dedup-domain memberships,
 * as the tick's adoption does (regrant_adopt_mark). */
typedef int (*snapshots_adopt_fn)(void *payload, const char *id);
void snapshots_set_adopt_hook(struct snapshots *s, snapshots_adopt_fn fn,
			      void *payload);

/* How many snapshots one client may have (0: no limit); creates beyond it
 * fail with -EDQUOT. Concurrent creates of one client may each pass the
 * check, so the limit can be passed by at most the number of those. */
void snapshots_set_max_per_client(struct snapshots *s, uint64_t max);

/*
 * Validates a create request (JSON, docs/API.md): distinct catalog ids
 * whose chunks add up to at most SNAPSHOTS_CATALOG_BYTES_MAX, a time_start
 * not ahead of the server's clock by more than SNAPSHOTS_CLOCK_SKEW; reads
 * and checks the catalog from the store (entries in order, each chunk
 * stored and held by the client's dedup domain `dom`: a chunk only
 * another domain stored counts as missing, -ENOENT, exactly as an absent
 * one; NULL when the repository has no domains, server/store/domains.h), then
 * writes the manifest durably with the server's time. *out is the
 * manifest as JSON text (malloc'ed, caller frees). One create of a
 * client runs at a time: another of the same client meanwhile fails with
 * -EBUSY at once (the route answers 429 with Retry-After).
 */
struct domains_tag;
int snapshots_create(struct snapshots *s, struct store *st,
		     const struct domains_tag *dom, const char *client,
		     const uint8_t *body, size_t len, char **out,
		     size_t *out_len);
/*
 * The same with a last check before the snapshot is acknowledged (several
 * front-ends on one pool, frontends_snapshot_commit): once the manifest
 * is durable here and in the pool, and before it is visible, g->commit
 * (g->payload) is called: 0 goes on; 1 first checks every chunk the
 * snapshot references (catalog and files) against the pool's shared
 * index itself, not the local cache (store_shared_verify), and fails
 * with -ENOENT "snapshot references missing chunk ..." when one is gone;
 * negative fails with that code. A failure removes the manifest again
 * (the pool's copy first). g NULL: snapshots_create.
 */
struct snapshots_guard {
	int (*commit)(void *payload);
	void *payload;
};
int snapshots_create_guarded(struct snapshots *s, struct store *st,
			     const struct domains_tag *dom, const char *client,
			     const uint8_t *body, size_t len,
			     const struct snapshots_guard *g, char **out,
			     size_t *out_len);

/*
 * Creates a copy of another server's snapshot (dedup-server sync,
 * docs/REPLICATION.md) from its manifest as that server's GET
 * /snapshots/ID gives it: the same id, client, host, paths, times
 * (unix_time, and written_ns, which orders it and drives retention here
 * as there), parent and reported bytes_new/chunks_new/bytes_sent. The
 * catalog is checked exactly as for a create (every chunk stored and held
 * by `dom`, else -ENOENT naming it) and the counts are computed here; the
 * manifest also gets "synced_ns", this server's clock when it wrote the
 * copy. -EEXIST if a snapshot with that id exists (nothing is written),
 * -EINVAL for a manifest a create would refuse or one written more than
 * SNAPSHOTS_CLOCK_SKEW ahead of this clock, -EDQUOT at the client's
 * snapshot limit, -ENOSPC, -EIO. `client` must be a valid client name.
 */
int snapshots_import(struct snapshots *s, struct store *st,
		     const struct domains_tag *dom, const char *client,
		     json_t *manifest);

/*
 * Deletes a snapshot: its manifest file (then the directory is synced)
 * and its place in the index. -ENOENT if unknown. The chunks it used stay
 * until a garbage collection finds nobody else uses them.
 */
int snapshots_remove(struct snapshots *s, const char *id);

/*
 * Waits until no create is between checking its chunks and making its
 * manifest visible, runs fn with creates held off, and returns its
 * result. The collector starts recording vouched chunks here, so every
 * create either is in the list it reads next or has its chunk lookups
 * recorded. The lock prefers the waiting collector: creates that arrive
 * after it wait, so a stream of creates cannot starve it.
 */
int snapshots_barrier(struct snapshots *s, int (*fn)(void *payload),
		      void *payload);

/* Which page of the list GET /snapshots asks for. */
struct snapshots_query {
	const char *client;         /* whose; NULL: all (admin only) */
	size_t limit;               /* 1..SNAPSHOTS_PAGE_MAX */
	bool newest_first;
	bool have_after;            /* start after this position */
	int64_t after_ns;
	char after_id[DD_ID_HEX_LEN + 1];
};

/* Parses a cursor ("<written_ns>-<id>", the `cursor` field of a listed
 * item) into q; -EINVAL if malformed. */
int snapshots_cursor_parse(struct snapshots_query *q, const char *cursor);

/*
 * A JSON array of at most q->limit snapshot summaries in server time
 * order (oldest first unless q->newest_first), after q's cursor: each the
 * manifest without its "catalog" (which GET /snapshots/ID gives), plus
 * "catalog_chunks", "unix_written" and "cursor". A snapshot removed while
 * its page is read is left out (so the page may be short); one whose
 * manifest cannot be read is listed from the index with "damaged": true
 * and "error". An empty page is the end.
 */
int snapshots_list(struct snapshots *s, const struct snapshots_query *q,
		   char **out, size_t *out_len);

/* One manifest by id (64 hex), read from disk; -ENOENT if malformed,
 * unknown or not visible to `client`, so nothing tells another client's
 * ids apart. */
int snapshots_get(struct snapshots *s, const char *id, const char *client,
		  bool admin, char **out, size_t *out_len);

/*
 * The manifest of snapshot `id` as stored, parsed (*out: caller decrefs),
 * with "unix_written" set from the index. -ENOENT if it is not (or no
 * longer) indexed or its file is gone; -EBADMSG if the file is damaged.
 */
int snapshots_load(struct snapshots *s, const char *id, json_t **out);

/* The catalog chunk ids of a manifest (*ids malloc'ed, caller frees);
 * -EBADMSG if it has no valid catalog array. */
int snapshots_manifest_catalog(json_t *m, struct dd_id **ids, size_t *n);

/* A digest of a set of paths (sorted first; order does not matter), as
 * snapshots_item.paths_digest holds it; -ENOMEM. */
int snapshots_paths_digest(json_t *paths, struct dd_id *out);

/* Number of snapshots, the sum of their bytes_total (file data) and of
 * their catalog_bytes (the catalogs: names and metadata). */
void snapshots_totals(struct snapshots *s, uint64_t *count,
		      uint64_t *bytes_logical, uint64_t *bytes_catalog);

/* True if snapshot `id` (64 hex) is indexed (in memory; no file read). */
bool snapshots_has(struct snapshots *s, const char *id);

/* Number of snapshots of one client. */
uint64_t snapshots_count(struct snapshots *s, const char *client);

/* A client's name as the snapshots keep it. */
typedef char snapshots_client_name[DD_CLIENT_NAME_MAX + 1];

/* A set of client names, kept sorted (strcmp); zeroed is empty. */
struct snapshots_names {
	snapshots_client_name *v;
	size_t n, alloc;
};
/* 1 if name was added, 0 if it was there, -ENOMEM (with a message). */
int snapshots_names_add(struct snapshots_names *set, const char *name);
bool snapshots_names_has(const struct snapshots_names *set,
			 const char *name);
/* Removes name if it is there. */
void snapshots_names_remove(struct snapshots_names *set, const char *name);
void snapshots_names_release(struct snapshots_names *set);

/* The names of the clients with a snapshot here, into *out (emptied
 * first). -ENOMEM leaves it empty. */
int snapshots_client_names(struct snapshots *s, struct snapshots_names *out);

/* One indexed snapshot as snapshots_foreach shows it; every pointer is
 * borrowed and valid only during the callback. */
struct snapshots_item {
	const char *id;            /* 64 hex */
	const char *client;
	int64_t unix_time;         /* time_start, as the agent gave it */
	int64_t written_ns;        /* when the server wrote the manifest */
	uint64_t bytes_total;
	uint64_t bytes_new;        /* as the agent reported them */
	uint64_t bytes_sent;
	uint64_t catalog_chunks;
	uint64_t catalog_bytes;    /* plain bytes of its catalog chunks */
	struct dd_id paths_digest; /* snapshots_paths_digest of its paths */
	struct dd_id group_digest; /* of its host and paths: a retention
				    * group within its client */
};

/*
 * Calls fn for every snapshot, oldest first (server time), under the
 * read lock: fn must be quick and must not call back into `s` (read a
 * manifest after the walk, with snapshots_load). Stops at the first
 * nonzero return of fn and returns it; 0 after the last one.
 */
typedef int (*snapshots_each_fn)(void *payload,
				 const struct snapshots_item *it);
int snapshots_foreach(struct snapshots *s, snapshots_each_fn fn,
		      void *payload);

/*
 * Several front-ends on one pool (server/repo/frontends.h): a manifest
 * another front-end wrote, copied from the pool (data[0..len)) into this
 * directory and the index (1; 0 when it is known already); and a
 * manifest no longer in the pool (another front-end forgot it) dropped
 * from this directory and the index (1; 0 when unknown or written at or
 * after older_than_ns, which may still be on its way to the pool).
 */
int snapshots_adopt(struct snapshots *s, const char *id, const void *data,
		    size_t len);
int snapshots_drop_local(struct snapshots *s, const char *id,
			 int64_t older_than_ns);
/*
 * A create that failed after its manifest's put timed out (or after its
 * refused manifest's removal failed) may have left the manifest in the
 * pool: the other front-ends would list it, and this one after a
 * restart, beside the snapshot the agent's retry makes. Such ids are
 * noted (in memory and in the snapshots directory's "unsure" file) and
 * never adopted; this removes each from the pool (the tick calls it),
 * forgetting those removed or never there. 0, or the storage's error
 * (the rest are tried again next time).
 */
int snapshots_sweep_unsure(struct snapshots *s);

#endif
