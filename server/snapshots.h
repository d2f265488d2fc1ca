/*
 * snapshots.h - snapshot manifests: creating them from an agent's request
 * (after verifying its catalog against the store), keeping them on disk as
 * snapshots/<id>.json and in memory for listing.
 *
 * Visibility: a client sees only the manifests it created; an admin sees
 * all. Errors use the server's codes: -EINVAL a bad request (400),
 * -ENOENT a reference to a chunk that is not stored (409), -ENOSPC a full
 * disk (507), anything else an internal error (500); the reason is in
 * dd_error_last().
 */
#ifndef SRV_SNAPSHOTS_H
#define SRV_SNAPSHOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store.h"

#define SNAPSHOTS_HOST_MAX 255
#define SNAPSHOTS_PATHS_MAX 1024
#define SNAPSHOTS_PATH_MAX 4096

struct snapshots;

/* Loads every snapshots/<64 hex>.json; a corrupt or foreign file is
 * logged and skipped, never fatal. */
int snapshots_open(struct snapshots **out, const char *repo);
void snapshots_free(struct snapshots *s);

/*
 * Validates a create request (JSON, docs/API.md), reads and checks the
 * catalog from the store, counts its entries, checks every chunk it names
 * is stored, then writes the manifest durably. *out is the manifest as
 * JSON text (malloc'ed, caller frees).
 */
int snapshots_create(struct snapshots *s, struct store *st,
		     const char *client, const uint8_t *body, size_t len,
		     char **out, size_t *out_len);

/*
 * Deletes a snapshot: its manifest file (then the directory is synced)
 * and its place in the list. -ENOENT if unknown. The chunks it used stay
 * until a garbage collection finds nobody else uses them.
 */
int snapshots_remove(struct snapshots *s, const char *id);

/*
 * Waits until no create is between checking its chunks and making its
 * manifest visible, runs fn with creates held off, and returns its
 * result. The collector starts recording vouched chunks here, so every
 * create either is in the list it reads next or has its chunk lookups
 * recorded.
 */
int snapshots_barrier(struct snapshots *s, int (*fn)(void *payload),
		      void *payload);

/* A JSON array of the manifests `client` may see, oldest first. */
int snapshots_list(struct snapshots *s, const char *client, bool admin,
		   char **out, size_t *out_len);

/* One manifest by id (64 hex); -ENOENT if malformed, unknown or not
 * visible to `client`, so nothing tells another client's ids apart. */
int snapshots_get(struct snapshots *s, const char *id, const char *client,
		  bool admin, char **out, size_t *out_len);

/* Number of snapshots, the sum of their bytes_total (file data) and of
 * their catalog_bytes (the catalogs: names and metadata). */
void snapshots_totals(struct snapshots *s, uint64_t *count,
		      uint64_t *bytes_logical, uint64_t *bytes_catalog);

/* One manifest as snapshots_foreach shows it; every pointer is borrowed
 * and valid only during the callback. */
struct snapshots_item {
	const char *id;            /* 64 hex */
	const char *client;
	int64_t unix_time;         /* time_start, as the agent gave it */
	int64_t written_ns;        /* when the server wrote the manifest */
	uint64_t bytes_total;
	uint64_t bytes_new;        /* as the agent reported them */
	uint64_t bytes_sent;
	const char *json;          /* the compact manifest, no newline */
	size_t json_len;
};

/*
 * Calls fn for every manifest, oldest first, under the read lock: fn must
 * be quick and must not call back into `s`. Stops at the first nonzero
 * return of fn and returns it; 0 after the last manifest.
 */
typedef int (*snapshots_each_fn)(void *payload,
				 const struct snapshots_item *it);
int snapshots_foreach(struct snapshots *s, snapshots_each_fn fn,
		      void *payload);

#endif
