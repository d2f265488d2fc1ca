/*
 * walk.h - the backup's tree walk. Depth-first, a directory before its
 * children, names sorted bytewise; lstat only, symlinks are never
 * followed (O_NOFOLLOW opens, *at() calls relative to the open parent, so
 * a path may be longer than PATH_MAX as a whole).
 *
 * The callbacks get the path as the catalog records it: the absolute path
 * without its leading '/', NUL-terminated. Sockets are skipped with a
 * warning. Problems are warnings on stderr, counted in walk_stats: an entry
 * that vanished between the listing and its use is `vanished` (the tree
 * changed: not an error), one that cannot be read is `unreadable` (the
 * snapshot is partial). A callback returning a negative code stops the
 * walk with that code.
 */
#ifndef DD_AGENT_WALK_H
#define DD_AGENT_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct pattern_list;

/* What the walk hands a callback; every pointer is borrowed for the call. */
struct walk_item {
	const char *path;        /* catalog path */
	size_t path_len;
	int dirfd;               /* the open parent directory ... */
	const char *name;        /* ... and the entry's name in it */
	int fd;                  /* file: open O_RDONLY; dir: open
				  * O_DIRECTORY; else -1 */
	const struct stat *st;   /* file: fstat of fd; else lstat */
	const char *target;      /* symlink target (NUL-terminated) */
	size_t target_len;
};

struct walk_ops {
	/* Optional, called for a regular file before it is opened (fd -1;
	 * with open_files_first, after: it->st is then the fstat):
	 * return 1 if the callback recorded the file itself (it is then
	 * neither opened nor read), 0 to have it opened and passed to
	 * `file`, negative to stop the walk. */
	int (*file_known)(void *payload, const struct walk_item *it);
	/* A regular file, open read-only at it->fd. The callback owns the
	 * descriptor whatever it returns: it closes it, now or later (a
	 * reader thread may keep it), so no duplicate is made per file. */
	int (*file)(void *payload, const struct walk_item *it);
	/* A directory, before its children; it->fd is -1 when it cannot be
	 * opened (its children are then skipped). */
	int (*dir)(void *payload, const struct walk_item *it);
	int (*symlink)(void *payload, const struct walk_item *it);
	/* A fifo, character or block device (never opened). */
	int (*special)(void *payload, const struct walk_item *it);
};

struct walk_options {
	const struct pattern_list *exclude;   /* NULL: nothing excluded */
	bool one_file_system;    /* do not enter other file systems */
	bool exclude_caches;     /* skip the contents of tagged caches */
	/* A name the directory listing calls a regular file is opened and
	 * fstat'ed with no lstat before: one system call a file less, for a
	 * walker whose file_known needs no stat before the open (no parent
	 * snapshot to match). As with the lstat first, an entry replaced
	 * between the listing and the open is opened O_NONBLOCK|O_NOFOLLOW
	 * and skipped unless it is still a regular file. */
	bool open_files_first;
	/* Every path given (normalised, "/a/b"): the walk marks in
	 * `given_seen` those it records, so that a path the walk of
	 * another does not reach (an exclude, a cache, a vanished one) is
	 * said rather than missing silently (walk_roots_unseen). A given
	 * path on another file system is entered despite
	 * one_file_system: the user asked for it. */
	char *const *given;
	bool *given_seen;
	size_t ngiven;
};

struct walk_stats {
	unsigned long skipped_type;    /* sockets */
	unsigned long unreadable;      /* partial snapshot */
	unsigned long vanished;        /* warnings only */
	unsigned long excluded;        /* patterns, caches, mount points */
};

/* The walk's message for a file that cannot be read: "warning: cannot
 * <what> '/<path>': <strerror(err)>; skipped", counted as unreadable or,
 * for ENOENT, as vanished. For the callbacks' own reads. */
void walk_report(struct walk_stats *stats, const char *path, const char *what,
		 int err);

/*
 * Turns `arg` into a normalised absolute path (relative to the working
 * directory) in a malloc'ed string in *out: "." and repeated slashes
 * dropped; the part up to its last ".." resolved as the kernel would
 * (realpath: a symlink before a ".." is followed, as the shell's `cd
 * -P` and every system call do), the rest kept as written, so that a
 * symlink given as a path is recorded as a symlink. -ENOENT (naming arg)
 * when the part up to the last ".." does not exist.
 */
int walk_normalize(char **out, const char *arg);

/*
 * Sorts normalised roots into catalog order (dd_catalog_path_cmp) and
 * moves a root equal to or inside another root past the returned count
 * (the caller still owns all n): the outer root's walk records it.
 * Walking the kept roots in this order writes the whole catalog in
 * catalog order. -EINVAL (returned as a negative count through *err)
 * when the walk of the outer root could not reach an inner one: a
 * directory on the way is a symlink or not a directory, which the outer
 * walk records as it is.
 */
size_t walk_roots_prune(char **roots, size_t n, int *err);

/* After the walks: warns about every given path the walks did not
 * record (options.given) and returns how many. */
size_t walk_roots_unseen(const struct walk_options *opts);

/*
 * Walks one normalised absolute root. A root that cannot be stat'ed is an
 * error (-errno with a reason); below it, problems are warnings.
 */
int walk_root(const char *root, const struct walk_ops *ops,
	      const struct walk_options *opts, void *payload,
	      struct walk_stats *stats);

#endif
