/*
 * domains.h - dedup domains: which clients may learn that a chunk is
 * stored (docs/SECURITY.md, "Dedup domains").
 *
 * Every client belongs to one domain (clients.json, server/repo/tokens.h); the
 * default domain is shared by every client added without one. A chunk is
 * stored once on disk whoever stores it, but a client is told a chunk is
 * present (by /chunks/missing and by the upload reply) only if a client of
 * its own domain stored it. Any other client must upload the bytes once;
 * the server verifies them as any upload and its domain becomes a member.
 *
 * Membership lives in the index, next to the chunk entries (docs/FORMAT.md):
 *
 *   "d" + id[32] + tag[8]  the domain with that tag holds the chunk
 *   "r" + id[32]           the default domain does NOT hold the chunk
 *
 * so the default domain holds a chunk unless an "r" key says otherwise: an
 * index written before domains existed means what it always meant, and a
 * missing-query of the default domain costs one extra lookup of a key that
 * is almost never there (answered by the bloom filter). A membership is
 * written in the same synced batch as the entry it belongs to (on a
 * shared pool, see domains_cache_learn below for entries learned from
 * the shared index). A
 * membership whose chunk is no longer stored (an "orphan": the collector
 * deletes memberships after the entries, a damaged chunk is dropped) never
 * makes anything present: lookups check the entry first, and storing the
 * chunk afresh deletes every old membership in its batch.
 *
 * A tag is the first 8 bytes of SHA-256("dedup-domain:" + name); the
 * default domain's is all zeros and never written.
 *
 * Every function taking a tag accepts NULL, which says that the repository
 * has never had a client outside the default domain (clients.json,
 * "domains_used"; tokens_domains_used()): then no membership key exists,
 * every chunk is the default domain's, and lookups and ingest read and
 * write nothing more than they did before domains existed.
 */
#ifndef SRV_DOMAINS_H
#define SRV_DOMAINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hash.h"
#include "pack.h"
#include "store.h"

/* The name of the domain of every client added without one. */
#define DOMAINS_DEFAULT "default"
#define DOMAINS_TAG_LEN 8
#define DOMAINS_MEMBER_KEY_LEN (1 + DD_ID_LEN + DOMAINS_TAG_LEN)
#define DOMAINS_RESTRICT_KEY_LEN (1 + DD_ID_LEN)
#define DOMAINS_KEPT_KEY_LEN (1 + DD_ID_LEN)

struct domains_tag {
	uint8_t b[DOMAINS_TAG_LEN];
};

/* The tag of a domain name (tokens_name_valid); "default" gives zeros. */
void domains_tag_of(struct domains_tag *out, const char *name);
/* True for the default domain (and for NULL). */
bool domains_is_default(const struct domains_tag *t);

/* For a chunk the caller found stored: 1 if domain t holds it (always for
 * NULL), 0 if not, -EIO with a reason. */
int domains_is_member(struct store *s, const struct domains_tag *t,
		      const struct dd_id *id);
/* store_lookup() as domain t sees it: 0 and *loc, or -ENOENT when the
 * chunk is not stored or t does not hold it; -EIO. For NULL a plain
 * store_lookup(). */
int domains_lookup(struct store *s, const struct domains_tag *t,
		   const struct dd_id *id, struct dd_chunk_loc *loc);

/* domains_lookup() of n ids at once (store_lookup_many): rcs[i] is 0 with
 * locs[i], or -ENOENT. On a shared pool, the chunks stored here that t
 * does not hold here are asked of the pool in one batch, and taken when
 * t holds them there at the same location (store_shared_grant). Returns
 * 0 or a negative error. */
int domains_lookup_many(struct store *s, const struct domains_tag *t,
			const struct dd_id *ids, size_t n,
			struct dd_chunk_loc *locs, int *rcs);

/* The domains that hold chunk id here (the default one's tag, zeros,
 * unless an "r" key says otherwise), at most max of them into out[];
 * none when domains are not in use. For a collection that moves the
 * chunk: it publishes them at the new location. 0 or -EIO. */
int domains_members_of(struct store *s, const struct dd_id *id,
		       struct domains_tag *out, size_t max, size_t *n);

/*
 * For store_ingest(), with its ingest lock held, adding to the batch that
 * writes the entries (a leveldb_writebatch_t). domains_batch_new: chunk
 * `id` is being stored afresh by t: deletes any membership left from an
 * earlier life of the chunk and records t's. domains_batch_join: t becomes
 * a member of a chunk already stored. Both add nothing for NULL.
 */
int domains_batch_new(struct store *s, void *batch,
		      const struct domains_tag *t, const struct dd_id *id);
void domains_batch_join(void *batch, const struct domains_tag *t,
			const struct dd_id *id);

/*
 * Deletes the memberships of those `ids` that are no longer stored (the
 * collector calls it after a sweep), under the ingest lock and in one
 * synced batch. *dropped counts the keys deleted.
 */
int domains_drop_gone(struct store *s, const struct dd_id *ids, size_t n,
		      uint64_t *dropped);
/* Finds every orphan membership in the index and deletes it (as above). */
int domains_drop_orphans(struct store *s, uint64_t *dropped);

/*
 * Called when the index was rebuilt from the packs or recounted (the
 * counters were missing), before the counters are written: packs do not
 * record who stored a chunk, so if the repository has ever had a client
 * outside the default domain (clients.json, "domains_used"), every chunk
 * is marked as not held by the default domain: every chunk then counts as
 * absent to every domain until regrant_run() gives each domain back what
 * its clients' snapshots use, or a client of it uploads it again. If no
 * client ever had a domain, nothing changes: every chunk is the default
 * domain's, as it was.
 */
int domains_after_rebuild(struct store *s);

/*
 * The memberships a rebuild took away come back from the snapshots
 * (server/repo/regrant.h): domains_after_rebuild() first writes the index key
 * DOMAINS_REGRANT_KEY, and domains_regrant_done() deletes it once that is
 * done, so a crash in between does it again. domains_regrant_pending: 1
 * if the key is there, 0 if not, -EIO.
 */
#define DOMAINS_REGRANT_KEY "mregrant"
int domains_regrant_pending(struct store *s);
int domains_regrant_done(struct store *s);

/*
 * A front-end's index on a pool shared by several front-ends is a cache of
 * the shared index (docs/SECURITY.md, "Dedup domains on several
 * front-ends"). With domains in use, an entry it learns from the shared
 * index (store_prefetch, a lookup's miss, gc's pull, a re-read after a
 * failed read) is held by NO domain here, the default one included ("r"
 * written, every "d" deleted), until a client of the domain uploads the
 * chunk through this front-end (which verifies the bytes and writes
 * nothing to the pool: the chunk is stored once), or the domain's
 * membership in the shared index, made through another front-end for
 * the entry's very location, is granted here (store_shared_grant, for a
 * missing-query or a snapshot's references; a collection's pull takes
 * every such one). The exception is an entry this front-end already had
 * at exactly that location: its "c" entry, or the "k" key below when the
 * cache was dropped for another front-end's collection:
 *
 *   "k" + id[32]  value: the location the entry had when the cache was
 *                 dropped (dd_chunk_loc_encode)
 *
 * The chunk did not move nor die meanwhile (a chunk stored afresh after a
 * collection removed it has a new location), so its memberships here
 * stand.
 *
 * domains_cache_learn: for an entry (value val) of chunk id that `batch`
 * puts into the local index from the shared one: adds what is said above
 * to the batch (and deletes the "k" key). 0, or -EIO etc. (the caller must
 * then not cache the entry). Adds nothing when domains are not in use:
 * every chunk is the default domain's, as before.
 * domains_cache_keep: for store_cache_observe's drop, which deletes entry id
 * (value val): records the "k" key in the same batch (nothing when
 * domains are not in use). A "k" key whose chunk the shared index no
 * longer holds is an orphan as the others are (domains_drop_orphans).
 */
int domains_cache_learn(struct store *s, void *batch, const struct dd_id *id,
			const void *val, size_t vlen);
void domains_cache_keep(struct store *s, void *batch, const struct dd_id *id,
			const void *val, size_t vlen);
/*
 * Once per index, when a shared store opens (before it serves): an index
 * filled by an earlier version holds entries learned from the shared
 * index without an "r" key, i.e. held by the default domain. With
 * domains in use, every entry located in another front-end's pack that
 * has no "r" key gets one (a join by a default-domain client through this
 * front-end is lost with them: it uploads once more). Then the marker
 * DOMAINS_FILLS_KEY says that fills keep memberships, whether or not
 * domains are in use (an index filled while none was holds only the
 * default domain's chunks, rightly). 0, or -EIO etc. with a reason.
 * Entries an earlier version learned and this front-end's own gc moved
 * into its own packs look like its own and are not corrected.
 */
#define DOMAINS_FILLS_KEY "mfills"
int domains_cache_audit(struct store *s);

/*
 * Classifies an index key: 1 a membership ("d", *id and *tag filled), 2 a
 * default-domain exclusion ("r", *id filled), 3 a location kept across a
 * cache drop ("k", *id filled), 0 not a domains key, -EBADMSG a "d"/"r"/
 * "k" key of the wrong length. For check.
 */
int domains_key_parse(const uint8_t *key, size_t klen, struct dd_id *id,
		      struct domains_tag *tag);

#endif
