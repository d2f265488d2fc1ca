/*
 * catsource.h - a stored snapshot's catalog, entry by entry. Its chunks
 * are read from the store one after the other, each verified against its
 * id, and streamed through the shared catalog reader, so a catalog of any
 * size is read in bounded memory. Used by snapshot creation, garbage
 * collection and the per-client usage figures. (The offline checker reads
 * packs itself and has its own source.)
 */
#ifndef DD_SERVER_CATSOURCE_H
#define DD_SERVER_CATSOURCE_H

#include <stddef.h>

#include "catalog.h"
#include "hash.h"

struct store;
struct catsource;

/* `ids` (the catalog's chunk ids, in order) and `st` are borrowed and
 * must outlive the source. */
int catsource_new(struct catsource **out, struct store *st,
		  const struct dd_id *ids, size_t n);
void catsource_free(struct catsource *s);

/* Where an entry starts: the catalog chunk holding its first byte and
 * the offset of that byte in the chunk's plain bytes. */
struct catsource_pos {
	size_t chunk;
	uint32_t off;
};

/* A source that starts with the entry at `at` (found by an earlier pass
 * over the same catalog with catsource_entry_pos; `version` is that
 * catalog's, catsource_version). -EINVAL for a position past the end,
 * -EIO when the chunk cannot be read. */
int catsource_new_at(struct catsource **out, struct store *st,
		     const struct dd_id *ids, size_t n, uint32_t version,
		     const struct catsource_pos *at);
/* The position of the entry catsource_next() returned last; -ERANGE for
 * an entry that began more than a chunk back (one larger than a chunk),
 * which has none here. */
int catsource_entry_pos(const struct catsource *s, struct catsource_pos *out);
/* The catalog's version, once the first entry was read. */
uint32_t catsource_version(const struct catsource *s);

/*
 * The next entry: 1 = *e filled (valid until the next call), 0 = end.
 * Failures, each with a message:
 *   -ENOENT   a catalog chunk is not stored
 *             ("snapshot references missing chunk <id>")
 *   -EIO      a catalog chunk could not be read or is damaged
 *   -EBADMSG  the catalog bytes are malformed (the reader's reason), or
 *             a catalog chunk is sealed (client-encrypted: unreadable)
 *   -ENOMEM
 */
int catsource_next(struct catsource *s, struct dd_entry *e);

/*
 * Calls fn(arg, ref) for every file chunk the catalog's entries reference,
 * in catalog order, holes skipped (the catalog chunks themselves are the
 * caller's: `ids`). Stops at fn's first negative return and returns it;
 * otherwise 0, or catsource_next's failure.
 */
typedef int (*catsource_chunk_fn)(void *arg, const struct dd_chunk_ref *ref);
int catsource_each_chunk(struct store *st, const struct dd_id *ids, size_t n,
			 catsource_chunk_fn fn, void *arg);

#endif
