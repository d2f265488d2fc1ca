/*
 * usage.h - which client's snapshots reference which chunks, to answer
 * "how many bytes does only this client reference" (what deleting all of
 * its snapshots would free, before compression).
 *
 * The answer needs every snapshot's catalog: usage reads them from the
 * store once and keeps a map chunk -> (plain length, owning client or
 * "shared"). That first count runs on a thread of its own, started with
 * the server (usage_start): until it ends, calls answer -EAGAIN (after
 * waiting for it at most half a second after it started, so a small
 * repository's count is simply awaited). Later calls only read the
 * catalogs of snapshots created since. When a snapshot disappeared the
 * map is counted again from nothing on that thread (minutes on a large
 * repository): a call waits for it at most half a second after it
 * started, then answers with the counts from before (the removed
 * snapshots still counted) until it ends. The recount builds a second
 * map beside the one answering: memory doubles while it runs. One that
 * failed (out of memory) is tried again 30 s later, the old counts
 * answering meanwhile (the first count: -EAGAIN meanwhile). Catalog
 * chunks count as referenced by their snapshot's client.
 *
 * The counts are kept in a file (usage_set_file: the repository's
 * usage.json) with the digest of the set of snapshots they count, by a
 * ticker of their own, never on a request's path: when a count or
 * recount ends, at most every minute while snapshots are added (each
 * save first counts the snapshots created since), and when the server
 * stops. At the next start, if the snapshots are still that very set,
 * a quota check goes by them (usage_client_bytes) until the first count
 * ends, instead of waiting for it: the exact figures of the snapshots
 * there are, which lack, as every count does, what the backups running
 * meanwhile add.
 *
 * Thread-safe: one computation at a time, others wait for it; the
 * recount runs beside them. usage_free() stops and joins it: call it
 * before the store and the snapshots are closed.
 */
#ifndef SRV_USAGE_H
#define SRV_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proto.h"
#include "snapshots.h"
#include "store.h"

struct usage_client {
	char name[DD_CLIENT_NAME_MAX + 1];
	uint64_t bytes_unique;      /* plain bytes only this client references */
	uint64_t chunks_unique;
};

struct usage;

int usage_new(struct usage **out);
void usage_free(struct usage *u);

/* Starts the first count on its thread (the server, once at start). */
void usage_start(struct usage *u, struct snapshots *snaps, struct store *st);

/*
 * Brings the map up to date and returns one entry per client that has
 * snapshots (*out malloc'ed, caller frees). A catalog that cannot be read
 * is logged and left out (its chunks then count for nobody); only
 * out-of-memory fails the call, and -EAGAIN (with a message) while the
 * first count after the start runs.
 */
int usage_get(struct usage *u, struct snapshots *snaps, struct store *st,
	      struct usage_client **out, size_t *n);

/*
 * Where the counts are saved; reads what the last count saved there, to
 * be gone by only if it counted the very snapshots there are now (a
 * missing file is no error; a malformed one, or one that counted
 * another set, is logged and ignored). Call once, before usage_start.
 * -ENOMEM only.
 */
int usage_set_file(struct usage *u, const char *path, struct snapshots *snaps);

/*
 * The bytes only `client` references, for its quota: usage_get's, or,
 * while the first count after the start runs, those saved by the last
 * count before it (*saved true), as long as no snapshot they counted is
 * gone. -EAGAIN when there are neither.
 */
int usage_client_bytes(struct usage *u, struct snapshots *snaps,
		       struct store *st, const char *client, uint64_t *bytes,
		       bool *saved);

#endif
