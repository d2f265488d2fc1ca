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

/* A JSON array of the manifests `client` may see, oldest first. */
int snapshots_list(struct snapshots *s, const char *client, bool admin,
		   char **out, size_t *out_len);

/* One manifest by id (64 hex); -ENOENT if malformed, unknown or not
 * visible to `client`, so nothing tells another client's ids apart. */
int snapshots_get(struct snapshots *s, const char *id, const char *client,
		  bool admin, char **out, size_t *out_len);

/* Number of snapshots and the sum of their bytes_total. */
void snapshots_totals(struct snapshots *s, uint64_t *count,
		      uint64_t *bytes_logical);

#endif
