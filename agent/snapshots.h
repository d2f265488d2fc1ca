/*
 * snapshots.h - finding a snapshot by what the user typed: a full id, a
 * unique prefix of at least 8 hex digits, or "latest".
 */
#ifndef DD_AGENT_SNAPSHOTS_H
#define DD_AGENT_SNAPSHOTS_H

#include <stdbool.h>
#include <jansson.h>

struct client;

#define SNAPSHOTS_MIN_PREFIX 8
/* Items asked for per GET /snapshots page (the server's maximum). */
#define SNAPSHOTS_PAGE 1000

/*
 * Resolves `spec` to the snapshot's manifest (the caller owns *out).
 * "latest" is the newest snapshot the token can see (a client token sees
 * only its own). -EINVAL for a malformed spec, -ENOENT when nothing
 * matches, -EEXIST when a prefix matches several snapshots.
 */
int snapshots_resolve(json_t **out, struct client *c, const char *spec);

/* The snapshots the token can see, oldest first (server time): a JSON
 * array of summaries, manifests without their catalog (the caller owns
 * *out). Read page by page. */
int snapshots_list(json_t **out, struct client *c);

/*
 * Calls fn for each snapshot summary the token can see, page by page,
 * oldest or newest first; fn's nonzero return stops the walk and is
 * returned (use 1 for "found"). m is borrowed for the call.
 */
typedef int (*snapshots_each_fn)(void *payload, json_t *m);
int snapshots_each(struct client *c, bool newest_first, snapshots_each_fn fn,
		   void *payload);

/* The full manifest of snapshot `id` (64 hex), catalog included. */
int snapshots_fetch(json_t **out, struct client *c, const char *id);

#endif
