/*
 * parent.h - the previous snapshot of the same paths, which lets an
 * incremental backup reuse the chunk list of every file that has not
 * changed, without opening it.
 *
 * The walk visits entries in catalog order and the parent's catalog was
 * written in that order too, so one forward pass over both pairs each file
 * with the parent's entry of the same path: constant memory whatever the
 * size of the tree.
 */
#ifndef DD_AGENT_PARENT_H
#define DD_AGENT_PARENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <jansson.h>

#include "catalog.h"

struct client;
struct parent;

/*
 * Finds the newest snapshot visible to the token whose host is `host` and
 * whose paths are exactly `roots` (in any order). *out is its manifest, or
 * NULL when there is none; the caller owns it.
 */
int parent_find(json_t **out, struct client *c, const char *host,
		char *const *roots, size_t nroots);

/* Starts reading the catalog of `manifest` (fetched lazily over `c`). */
int parent_open(struct parent **out, struct client *c, const json_t *manifest,
		size_t per_fetch);
void parent_free(struct parent *p);

/*
 * Whether the file at `path` (asked in catalog order) is unchanged since
 * the parent: a regular file of the same path, size, mtime, ctime, inode
 * and permission bits. On 1, *out is the parent's entry (its chunk list
 * and extension area), valid until the next call. 0 otherwise, including
 * after the parent catalog failed to read (a warning is printed once and
 * the backup goes on reading every file).
 */
int parent_match(struct parent *p, const char *path, size_t len,
		 const struct stat *st, const struct dd_entry **out);

/*
 * Whether a matched entry's extension area (xattrs, ACLs, owner names)
 * may be reused as it is: the parent catalog is version 2 or later (a
 * version 1 catalog recorded none). Changing xattrs or ACLs changes the
 * ctime, which a match requires to be equal.
 */
bool parent_meta_reusable(const struct parent *p);

/* Files matched so far. */
uint64_t parent_matched(const struct parent *p);

#endif
