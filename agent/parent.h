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
#include "hash.h"

struct client;
struct parent;

/*
 * Finds the newest snapshot visible to the token whose host is `host` and
 * whose paths are exactly `roots` (in any order). *out is its manifest, or
 * NULL when there is none; the caller owns it.
 */
int parent_find(json_t **out, struct client *c, const char *host,
		char *const *roots, size_t nroots);

/*
 * Only a snapshot this agent made itself may be a parent: anyone holding
 * the client's token can create a snapshot with the same host and paths,
 * and a parent's chunk lists are reused without reading the files. The
 * agent remembers, on the client, the id of the last snapshot it made per
 * configuration and a digest of its catalog (SHA-256 over the catalog
 * chunk ids in order; each chunk is verified against its id when read, so
 * this covers the catalog bytes).
 *
 * The record lives in $DEDUP_STATE_DIR if set, else /var/lib/dedup-agent
 * for root, else $XDG_STATE_HOME/dedup-agent or
 * ~/.local/state/dedup-agent (HOME, or the user's home directory from the
 * password database; directory created 0700), as
 * "parent.<uid>.<key>", the key a hash of server, token, host and the
 * sorted paths; file 0600, written atomically (fsync, rename).
 */
struct parent_record {
	bool have;                     /* a record was read */
	char id[DD_ID_HEX_LEN + 1];    /* the snapshot it names */
	struct dd_id digest;           /* of its catalog chunk ids */
	char path[4096];               /* the record file */
};

/* The agent's state directory, where its records live (above); -ENOENT
 * when there is none. Not created here. */
int agent_state_dir(char *out, size_t size);

/*
 * Reads the record of this configuration. No file is not an error
 * (r->have false); an unreadable or malformed one is a warning and counts
 * as none; so is having no state directory (r->path stays empty and
 * nothing is saved). Negative only when out of memory.
 */
int parent_record_load(struct parent_record *r, const char *server,
		       const char *token, const char *host,
		       char *const *roots, size_t nroots);

/* Remembers snapshot `id` with catalog `cat_ids` as the next parent. */
int parent_record_save(const struct parent_record *r, const char *id,
		       const struct dd_id *cat_ids, size_t ncat);

/*
 * Whether the candidate `manifest` (NULL: none) is the snapshot recorded
 * in `r`, with the recorded catalog: 1 to use it as parent, 0 to read
 * every file. A foreign snapshot or a changed catalog is a warning naming
 * it; a recorded snapshot no longer found (asked over `c`) is a note
 * instead; with no record (a
 * first backup, or lost state) nothing is said.
 */
int parent_trusted(const struct parent_record *r, const json_t *manifest,
		   struct client *c);

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
