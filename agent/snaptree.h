/*
 * snaptree.h - a snapshot's catalog held in memory for `dedup-agent
 * mount`: every entry copied once at mount time (the catalog streamed,
 * fetched and verified by catstream.h), then looked up by path with a
 * binary search on catalog order (catalog.h), so no further request is
 * made for metadata.
 *
 * A directory's descendants are one contiguous run right after it in
 * catalog order, which gives listings without a separate tree. A
 * directory the catalog does not record but whose descendants it does
 * (the parents of a backed-up path, the root) is "implied": it exists,
 * with mode 0755, owner root and the snapshot's time.
 *
 * Each file keeps the start offset of each of its chunks, so the chunks
 * covering a byte range are found by a binary search too. Memory: the
 * entries' bytes plus 44 bytes a chunk.
 */
#ifndef DD_AGENT_SNAPTREE_H
#define DD_AGENT_SNAPTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "catalog.h"

struct client;

struct snaptree_node {
	struct dd_entry e;       /* path, link (NUL-terminated), ext and
				  * chunks point to the node's own copies */
	uint64_t *offs;          /* file: offset of each chunk */
	size_t target;           /* a hard link: the file it names; else
				  * the node itself */
	uint32_t nlink;          /* file: 1 + its hard links; dir: 2 +
				  * its subdirectories */
};

struct snaptree {
	struct snaptree_node *n; /* in catalog order */
	size_t count;
	bool with_ext;           /* catalog version >= 2: ext is records */
	int64_t time;            /* the backup's start, for implied dirs */
	uint64_t total_bytes;    /* sum of file sizes */
};

/* What a path is. */
enum snaptree_kind {
	SNAPTREE_NONE = 0,
	SNAPTREE_ENTRY,          /* a catalog entry: *idx is it */
	SNAPTREE_IMPLIED,        /* an implied directory (or the root "") */
};

/*
 * Reads the catalog of `manifest` over `c` (borrowed for the call).
 * Hard links whose first path is missing or not a file become empty
 * files, with a warning. The caller frees *out; negative with the
 * reason on a fetch or catalog error.
 */
int snaptree_load(struct snaptree **out, struct client *c,
		  const json_t *manifest);
void snaptree_free(struct snaptree *t);

/* `path` is relative, without a leading '/' ("" = the root). *idx: the
 * entry, or for an implied directory the index where its descendants
 * begin. */
enum snaptree_kind snaptree_lookup(const struct snaptree *t, const char *path,
				   size_t len, size_t *idx);

/*
 * Iterating over the children of directory `dir` (len bytes, "" = root)
 * whose descendants begin at index `i` (the entry's index + 1, or the
 * implied index from snaptree_lookup): while i < count and
 * snaptree_child(t, dir, len, i, &name, &nlen, &kind) is true, the child
 * is named name[0..nlen), is an entry (kind ENTRY, at index i) or an
 * implied directory; then i = snaptree_next_child(...) moves past its
 * descendants.
 */
bool snaptree_child(const struct snaptree *t, const char *dir, size_t len,
		    size_t i, const char **name, size_t *nlen,
		    enum snaptree_kind *kind);
size_t snaptree_next_child(const struct snaptree *t, const char *dir,
			   size_t len, size_t i);

/* The index of the chunk of file `n` holding byte `off` (< size). */
uint64_t snaptree_chunk_at(const struct snaptree_node *n, uint64_t off);

#endif
