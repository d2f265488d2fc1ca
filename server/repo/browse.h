/*
 * browse.h - one stored snapshot's tree for the status page: a
 * directory's children a page at a time, one file's bytes, a directory as
 * a pax archive. Everything is read from the catalog with catsource.h,
 * entry by entry in catalog order, so memory stays bounded whatever the
 * size of the snapshot: a page holds its own entries, a download one
 * chunk (at most 16 MiB plain) and libarchive's block.
 *
 * Cost: the catalog has no index; a call reads it up to the entries it
 * needs (a listing stops after the last child of its directory, a
 * download after its subtree), from its start the first time and then
 * from the last mark an earlier call left before its path (browse.c,
 * "marks"). docs/BROWSE.md ("What a page costs") gives the figures.
 *
 * Paths are given normalised (browse_path_norm): relative, as the catalog
 * records them, "" for the root. Errors: -ENOENT the path is not in the
 * snapshot, -ENOTDIR a listing or archive of something that is not a
 * directory, -EISDIR a file download of something that is not a file (or
 * a hard link to one), -EINVAL a bad argument, and the catalog's own
 * (-EIO, -EBADMSG, -ENOMEM, catsource.h), each with a message.
 */
#ifndef SRV_BROWSE_H
#define SRV_BROWSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#include "hash.h"

struct store;

/* Listing pages: entries per page by default and at most. */
#define BROWSE_PAGE_DEFAULT 500
#define BROWSE_PAGE_MAX 5000
/* The longest path a request may name (bytes, before normalising). */
#define BROWSE_PATH_MAX 4096

/*
 * Normalises an absolute path from a request ("/a//b/" -> "a/b", "/" ->
 * "") into out (size outsz, NUL-terminated). -EINVAL when it does not
 * start with '/', is longer than BROWSE_PATH_MAX, or has a "." or ".."
 * component: nothing is resolved, so no path can leave the snapshot.
 */
int browse_path_norm(char *out, size_t outsz, const char *in);

/*
 * One page of the children of directory `dir` (normalised), in catalog
 * order (bytewise by name), those after the name `after` (after_len 0:
 * from the first), at most `limit` (1..BROWSE_PAGE_MAX). A directory the
 * catalog holds no entry for but has entries under is listed too (type
 * "dir", "implicit": true). *out (caller decrefs):
 *   {"path": "/a/b", "entries": [{"name", "type", "size", "mode",
 *    "mtime", "link"?}...], "next": cursor or null, "scanned": n}
 * where a name or link that is not UTF-8 is given as "name_hex" /
 * "link_hex", and `next` is the hex of the page's last name (the `after`
 * of the next page) when more children follow.
 */
int browse_list(json_t **out, struct store *st, const struct dd_id *ids,
		size_t n, const char *dir, const uint8_t *after,
		size_t after_len, size_t limit);

/*
 * A file's bytes, read as they are sent: chunks fetched and verified one
 * at a time, holes as zeros. A hard link is followed to its first path.
 * `ids` is copied. browse_file_read returns the count (> 0), 0 at the end
 * or a negative error (a chunk missing or damaged).
 */
struct browse_file;
int browse_file_open(struct browse_file **out, struct store *st,
		     const struct dd_id *ids, size_t n, const char *path);
uint64_t browse_file_size(const struct browse_file *f);
ssize_t browse_file_read(struct browse_file *f, uint8_t *buf, size_t max);
void browse_file_free(struct browse_file *f);

/*
 * Directory `dir` and everything under it as a POSIX pax archive (as
 * `dedup-agent restore --format tar` writes: long names, owner names,
 * nanosecond times, xattrs, ACLs, symlinks, devices, hard links as link
 * entries, holes as a GNU.sparse 1.0 map), made while it is read. Names
 * start at the directory's own name ("/a/b" gives "b/..."); the root
 * gives the catalog's paths. A hard link whose first path is outside the
 * directory is stored as a copy of that file. `ids` is copied.
 * browse_tar_read as browse_file_read.
 */
struct browse_tar;
int browse_tar_open(struct browse_tar **out, struct store *st,
		    const struct dd_id *ids, size_t n, const char *dir);
ssize_t browse_tar_read(struct browse_tar *t, uint8_t *buf, size_t max);
void browse_tar_free(struct browse_tar *t);

#endif
