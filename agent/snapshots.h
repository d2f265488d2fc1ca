/*
 * snapshots.h - finding a snapshot by what the user typed: a full id, a
 * unique prefix of at least 8 hex digits, or "latest".
 */
#ifndef DD_AGENT_SNAPSHOTS_H
#define DD_AGENT_SNAPSHOTS_H

#include <jansson.h>

struct client;

#define SNAPSHOTS_MIN_PREFIX 8

/*
 * Resolves `spec` to the snapshot's manifest (the caller owns *out).
 * "latest" is the newest snapshot the token can see (a client token sees
 * only its own). -EINVAL for a malformed spec, -ENOENT when nothing
 * matches, -EEXIST when a prefix matches several snapshots.
 */
int snapshots_resolve(json_t **out, struct client *c, const char *spec);

/* The snapshots the token can see, oldest first: a JSON array of
 * manifests (the caller owns *out). */
int snapshots_list(json_t **out, struct client *c);

#endif
