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

/*
 * Several front-ends on one pool (docs/SECURITY.md, "Dedup domains on
 * several front-ends"). A front-end's memberships are its own, and an
 * entry it learns from the shared index is held by no domain here; so a
 * snapshot another front-end made, once adopted here, gives its client's
 * domain the chunks it references, as regrant_run does after a rebuild:
 * the other front-end created it only when that domain held every chunk
 * there, so this gives back no more than the domain holds in the pool,
 * and the client can restore (or verify, or use as a parent) its snapshot
 * through any front-end, not only those it backed up through.
 *
 * regrant_adopt_mark: before a snapshot `id` (64 hex) is adopted, records
 * in the index that its memberships are due here ("g" + id[32], synced),
 * so that a crash between the adoption and the grant loses nothing.
 * Nothing when no domain is in use. 0 or -EIO etc.
 * regrant_adopted: gives every snapshot so marked its memberships and
 * deletes the mark; a mark whose snapshot is gone (forgotten meanwhile)
 * is deleted; one whose client this front-end does not know (yet) stays
 * for the next call. Run on a thread of its own (frontends.c): a big
 * snapshot whose entries this front-end must first learn from the shared
 * index takes a while. It stops with -ECANCELED, the marks it has not
 * deleted kept, once *cancel (may be NULL) is set. *granted: memberships
 * written (may be NULL). 0 or -EIO etc.
 */
#define REGRANT_ADOPTED_PREFIX 'g'
int regrant_adopt_mark(struct store *st, const char *id);
int regrant_adopted(struct store *st, struct snapshots *snaps,
		    const char *repo, const int *cancel, uint64_t *granted);

#endif
