/*
 * walk.h - the backup's tree walk. Depth-first, a directory before its
 * children, names sorted bytewise; lstat only, symlinks are never
 * followed (O_NOFOLLOW opens, *at() calls relative to the open parent).
 *
 * The callbacks get the path as the catalog records it: the absolute path
 * without its leading '/', NUL-terminated. Entries of other types (fifo,
 * socket, device) and entries that cannot be read are skipped with a
 * warning on stderr and counted. A callback returning a negative code
 * stops the walk with that code.
 */
#ifndef DD_AGENT_WALK_H
#define DD_AGENT_WALK_H

#include <stddef.h>
#include <sys/stat.h>

struct walk_ops {
	/* Optional, called for a regular file before it is opened, with its
	 * lstat: return 1 if the callback recorded the file itself (it is
	 * then neither opened nor read), 0 to have it opened and passed to
	 * `file`, negative to stop the walk. */
	int (*file_known)(void *payload, const char *path, size_t path_len,
			  const struct stat *st);
	/* A regular file, open read-only at `fd` (the walker closes it);
	 * `st` is its fstat. The callback reads it. */
	int (*file)(void *payload, const char *path, size_t path_len, int fd,
		    const struct stat *st);
	int (*dir)(void *payload, const char *path, size_t path_len,
		   const struct stat *st);
	int (*symlink)(void *payload, const char *path, size_t path_len,
		       const struct stat *st, const char *target,
		       size_t target_len);
};

struct walk_stats {
	unsigned long skipped_type;    /* fifo, socket, device */
	unsigned long skipped_error;   /* unreadable entries */
};

/*
 * Turns `arg` into a lexically normalised absolute path (relative to the
 * working directory, "." and ".." resolved by text, no symlink resolution)
 * in a malloc'ed string in *out.
 */
int walk_normalize(char **out, const char *arg);

/*
 * Sorts normalised roots into catalog order (dd_catalog_path_cmp) and
 * deduplicates them in place: a root equal to or inside another root is
 * dropped. Returns the new count. Walking the roots in this order writes
 * the whole catalog in catalog order.
 */
size_t walk_roots_prune(char **roots, size_t n);

/*
 * Walks one normalised absolute root. A root that cannot be stat'ed is an
 * error (-errno with a reason); below it, problems are warnings.
 */
int walk_root(const char *root, const struct walk_ops *ops, void *payload,
	      struct walk_stats *stats);

#endif
