/*
 * snapshots_impl.h - what snapshots.c (the table of snapshots: listing,
 * reading, removing, loading, adopting the pool's) and snap_create.c
 * (checking and writing a new snapshot, and importing one) share. Not
 * for the rest of the server: it uses snapshots.h.
 */
#ifndef DEDUP_SNAPSHOTS_IMPL_H
#define DEDUP_SNAPSHOTS_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "proto.h"
#include "snapshots.h"

/* A manifest with the most paths and catalog ids is ~10 MB. */
#define SNAPSHOTS_FILE_MAX (32u * 1024 * 1024)
/* Up to year 9999, so times always format. */
#define SNAPSHOTS_TIME_MAX 253402300799LL
#define SNAPSHOTS_NS 1000000000LL

/* What the index keeps of one manifest: small and fixed. */
struct snap {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	int64_t unix_time;    /* the agent's time_start */
	int64_t written_ns;   /* the server's clock: the order */
	uint64_t bytes_total;
	uint64_t catalog_bytes;  /* plain bytes of its catalog chunks */
	uint64_t bytes_new;   /* agent-reported, for status reports */
	uint64_t bytes_sent;
	uint64_t ncatalog;
	struct dd_id paths_digest, group_digest;
};

#define SNAP_PENDING_MAX 256
enum { SNAP_PENDING_RUNNING = 1, SNAP_PENDING_REFUSED = 2 };

struct snapshots {
	char dir[4096];
	pthread_rwlock_t lock;
	/* Held shared by each create from before it checks its chunks until
	 * its manifest is visible; snapshots_barrier() takes it exclusively.
	 * Writer-preferring, so the barrier is never starved. */
	pthread_rwlock_t commit_lock;
	struct snap *v;       /* oldest first: (written_ns, id) */
	/* The same n entries by id (snap_find): each id with the key of
	 * its place in v, sorted by id; as much room as v. */
	struct snap_byid {
		char id[DD_ID_HEX_LEN + 1];
		int64_t written_ns;
	} *byid;
	size_t n, alloc;
	uint64_t bytes_logical;
	uint64_t bytes_catalog;
	uint64_t max_per_client;
	/* The store's backend when it is not the repository directory: each
	 * manifest is also the object "snapshots/<id>.json" there
	 * (snapshots_set_mirror). Borrowed. */
	struct backend *mirror;
	snapshots_adopt_fn adopt_fn;   /* snapshots_set_adopt_hook */
	void *adopt_payload;
	/* Clients with a create running (snap_client_enter): one at a time
	 * each, so that a client whose catalogs cost much to check (up to
	 * SNAPSHOTS_CATALOG_BYTES_MAX, compressed to almost nothing) keeps
	 * at most one thread busy with them. */
	pthread_mutex_t busy_lock;
	char (*busy)[DD_CLIENT_NAME_MAX + 1];
	size_t nbusy, abusy;
	/* Under `lock`: creates whose manifest may be in the pool and not
	 * yet listed here (SNAP_PENDING_RUNNING), or refused after it was
	 * (SNAP_PENDING_REFUSED, the oldest forgotten first): the tick's
	 * adoption of the pool's manifests (snapshots_adopt) leaves them to
	 * their create, which lists or removes them itself. */
	struct snap_pending {
		char id[DD_ID_HEX_LEN + 1];
		uint8_t state;
	} pending[SNAP_PENDING_MAX];
	size_t npending;
	/* Under `lock`: manifests a create may have left in the pool
	 * although it failed (a put, or the removal of a refused one, that
	 * the pool did not confirm: timed out, done or not), each with when
	 * it was noted (unix seconds), to be removed from the pool by
	 * snapshots_sweep_unsure and forgotten once SNAP_UNSURE_KEEP_SEC
	 * passed (a write the pool was slow to apply may land late); kept
	 * in DIR/snapshots/SNAP_UNSURE_FILE too ("<id> <time>" a line), so
	 * that a restart goes on. unsure_file_lock orders the file's
	 * writes (made outside `lock`). */
	struct snap_unsure {
		char id[DD_ID_HEX_LEN + 1];
		int64_t at;
	} *unsure;
	size_t nunsure;
	pthread_mutex_t unsure_file_lock;
	int64_t unsure_keep_sec;
};

#define SNAP_UNSURE_FILE "unsure"
#define SNAP_UNSURE_MAX 4096
#define SNAP_UNSURE_LINE (DD_ID_HEX_LEN + 22)
#define SNAP_UNSURE_KEEP_SEC 600

/* ---- snapshots.c ---- */

/* Inserts e in (written_ns, id) order; `lock` held for writing. */
int snapshots_insert(struct snapshots *s, const struct snap *e);
/* The entry of id, or NULL; `lock` held. O(log n). */
const struct snap *snap_find(const struct snapshots *s, const char *id);
/* e's digests of its paths and host from its manifest m. */
int snap_digests(struct snap *e, json_t *m);
/* "snapshots/<id>.json": a manifest's object in the store. */
void snap_object(char *out, size_t outsz, const char *id);
/* The pending state of `id` (0: none); `lock` held. */
int snap_pending_get(const struct snapshots *s, const char *id);
/* Sets (state > 0) or clears (0) it; `lock` held for writing. */
void snap_pending_set(struct snapshots *s, const char *id, int state);
/* After a manifest was put into the mirror or removed from it:
 * SNAPSHOTS_CHANGED grows by a byte (snapshots.h). */
void snap_pool_changed(struct snapshots *s);
/* Notes that the pool may hold manifest `id` although its create
 * failed (snapshots_sweep_unsure removes it); logs when it cannot. */
void snap_unsure_add(struct snapshots *s, const char *id);
/* Whether `id` is noted so (takes `lock`). */
bool snap_unsure_noted(struct snapshots *s, const char *id);
/* m as compact JSON text (malloc'ed) in *out, its length in *out_len. */
int snap_dump(json_t *m, char **out, size_t *out_len);

/* ---- snap_create.c ---- */

/* 64 lower-case hex digits. */
bool snap_is_hex64(const char *s);

#endif
