/*
 * regrant.h - dedup-domain memberships given back from the snapshots
 * after the index was rebuilt from the packs (docs/SECURITY.md, "Dedup
 * domains").
 *
 * Packs do not record which domain stored a chunk, so an index rebuilt
 * while domains are in use (repair --rebuild-index, or an index found
 * empty at start) begins with every chunk held by no domain, and a marker
 * key (domains_after_rebuild, server/store/domains.h). regrant_run() then reads
 * every snapshot: the domain of the client that made it (clients.json)
 * becomes a member of every stored chunk the snapshot references (its
 * catalog chunks and the chunks of its files); the marker is deleted
 * last, so a crash part way runs it again at the next start.
 *
 * A client thus keeps reading (restoring, verifying, using as a parent)
 * its own snapshots and learns of no chunk it did not reference itself
 * (a snapshot is only created when its domain held every chunk, so this
 * gives back at most what the domain held). Chunks of unfinished backups,
 * or referenced only by snapshots of a revoked client, stay held by no
 * domain until a client uploads them again (they are not stored twice).
 */
#ifndef SRV_REGRANT_H
#define SRV_REGRANT_H

#include <stdint.h>

struct store;
struct snapshots;

/*
 * Does the above when the marker is set; 0 at once when it is not. The
 * caller holds the repository (server lock) and serves nothing yet.
 * *granted: memberships written (may be NULL). A snapshot whose catalog
 * cannot be read is skipped with a warning (check names it); -EIO and
 * the like when the index cannot be written (the marker stays).
 */
int regrant_run(struct store *st, struct snapshots *snaps, const char *repo,
		uint64_t *granted);

#endif
