/*
 * walk.c - depth-first tree walk for backup.
 */
#define _GNU_SOURCE     /* O_NOATIME */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "util.h"
#include "agent.h"
#include "pattern.h"
#include "walk.h"

/* The signature that marks a cache directory (bford.net/cachedir). */
#define CACHEDIR_TAG "CACHEDIR.TAG"
#define CACHEDIR_SIG "Signature: 8a477f597d28d172789f06886806bc55"

/* Files of this size and more are read with the sequential hint. */
#define WALK_FADVISE_MIN (1024 * 1024)

struct walker {
	const struct walk_ops *ops;
	const struct walk_options *opts;
	void *payload;
	struct walk_stats *stats;
	char *path;          /* the catalog path of the current entry */
	size_t len;
	size_t alloc;
	dev_t root_dev;      /* for one_file_system */
};

int walk_normalize(char **out, const char *arg)
{
	char *cwd = NULL, *src = NULL, *res = NULL;
	size_t srclen, n = 0;
	int rc = 0;

	*out = NULL;
	if (!*arg)
		return dd_error_set(-EINVAL, "empty path");
	if (arg[0] == '/') {
		src = strdup(arg);
	} else {
		if (!(cwd = getcwd(NULL, 0)))
			return dd_error_set(-errno,
					    "cannot get the working directory: %s",
					    strerror(errno));
		srclen = strlen(cwd) + strlen(arg) + 2;
		if ((src = malloc(srclen)))
			snprintf(src, srclen, "%s/%s", cwd, arg);
	}
	if (!src) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	/* The part up to the last ".." is resolved by the kernel: "link/.."
	 * is the parent of link's target, not the directory holding link. */
	for (char *p = src, *last = NULL;; p++) {
		if ((p == src || p[-1] == '/') && p[0] == '.' && p[1] == '.' &&
		    (p[2] == '/' || p[2] == '\0'))
			last = p + 2;
		if (*p)
			continue;
		if (last) {
			char keep = *last, *real, *joined;
			size_t need;

			*last = '\0';
			real = realpath(src, NULL);
			*last = keep;
			if (!real) {
				rc = dd_error_set(-errno, "cannot resolve '%s': "
						  "%s", arg, strerror(errno));
				goto cleanup;
			}
			need = strlen(real) + strlen(last) + 2;
			joined = malloc(need);
			if (joined)
				snprintf(joined, need, "%s/%s", real, last);
			free(real);
			free(src);
			if (!(src = joined)) {
				rc = dd_error_set(-ENOMEM, "out of memory");
				goto cleanup;
			}
		}
		break;
	}
	if (!(res = malloc(strlen(src) + 2))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}

	/* res holds "/a/b" without a trailing slash; n is its length. */
	for (char *p = src; *p;) {
		char *comp = p;
		size_t clen;

		while (*p && *p != '/')
			p++;
		clen = (size_t)(p - comp);
		while (*p == '/')
			p++;
		if (clen == 0 || (clen == 1 && comp[0] == '.'))
			continue;
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			while (n > 0 && res[n - 1] != '/')
				n--;
			if (n > 0)
				n--;     /* the slash before the component */
			continue;
		}
		res[n++] = '/';
		memcpy(res + n, comp, clen);
		n += clen;
	}
	if (n == 0)
		res[n++] = '/';
	res[n] = '\0';
	*out = res;
	res = NULL;
cleanup:
	free(res);
	free(src);
	free(cwd);
	return rc;
}

/* A directory's entry as readdir gave it. */
struct walk_name {
	char *name;
	unsigned char type;      /* d_type: DT_REG, ... or DT_UNKNOWN */
};

static int walk_cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct walk_name *)a)->name,
		      ((const struct walk_name *)b)->name);
}

static int walk_cmp_path(const void *a, const void *b)
{
	const char *pa = *(char *const *)a, *pb = *(char *const *)b;

	return dd_catalog_path_cmp(pa, strlen(pa), pb, strlen(pb));
}

/* Whether `inner` equals `outer` or lies below it. */
static bool walk_covers(const char *outer, const char *inner)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(outer, inner, n) == 0 &&
	       (inner[n] == '\0' || inner[n] == '/');
}

/* Whether the walk of `outer` reaches `inner` below it: every directory
 * between them is a directory, not a symlink (lstat). -EINVAL naming the
 * one that is not. */
static int walk_reaches(const char *outer, const char *inner)
{
	size_t n = strcmp(outer, "/") == 0 ? 0 : strlen(outer);
	char *p;
	struct stat st;
	int rc = 0;

	if (strlen(inner) <= n + 1)
		return 0;           /* the same path */
	if (!(p = strdup(inner)))
		return dd_error_set(-ENOMEM, "out of memory");
	/* from the outer path itself (n > 0: not "/") down to inner's
	 * parent */
	for (char *s = n ? p + n : strchr(p + 1, '/'); s && rc == 0;
	     s = strchr(s + 1, '/')) {
		*s = '\0';
		if (lstat(p, &st) == 0 && !S_ISDIR(st.st_mode))
			rc = dd_error_set(-EINVAL, "cannot back up '%s' with "
					  "'%s': '%s' on its way is %s, which "
					  "the backup of '%s' records as it "
					  "is; give '%s' in a backup of its "
					  "own, or by its real path", inner,
					  outer, p, S_ISLNK(st.st_mode) ?
					  "a symlink" : "not a directory",
					  outer, inner);
		*s = '/';
	}
	free(p);
	return rc;
}

size_t walk_roots_prune(char **roots, size_t n, int *err)
{
	size_t kept = 0, left = n;   /* roots[kept..left): still to look at */
	int rc = 0;

	qsort(roots, n, sizeof(*roots), walk_cmp_path);
	while (kept < left) {
		char *r = roots[kept];
		size_t k;

		for (k = 0; k < kept && !walk_covers(roots[k], r); k++)
			;
		if (k == kept) {
			kept++;
			continue;
		}
		if (rc == 0)
			rc = walk_reaches(roots[k], r);
		/* to the tail, the rest keeping its order */
		memmove(&roots[kept], &roots[kept + 1],
			(n - kept - 1) * sizeof(*roots));
		roots[n - 1] = r;
		left--;
	}
	*err = rc;
	return kept;
}

/* Marks the current path as recorded if it is one given. */
static void walk_mark_given(struct walker *w)
{
	const struct walk_options *o = w->opts;

	for (size_t i = 0; o && i < o->ngiven; i++)
		if (!o->given_seen[i] && strcmp(o->given[i] + 1, w->path) == 0)
			o->given_seen[i] = true;
}

/* Whether the current path is one given (a mount point the user named). */
static bool walk_is_given(const struct walker *w)
{
	const struct walk_options *o = w->opts;

	for (size_t i = 0; o && i < o->ngiven; i++)
		if (strcmp(o->given[i] + 1, w->path) == 0)
			return true;
	return false;
}

size_t walk_roots_unseen(const struct walk_options *opts)
{
	size_t unseen = 0;

	for (size_t i = 0; i < opts->ngiven; i++) {
		if (opts->given_seen[i] || strcmp(opts->given[i], "/") == 0)
			continue;
		agent_warn("'%s' is not in the snapshot: the walk did not "
			   "record it (an exclude pattern, a tagged cache, or "
			   "it vanished)", opts->given[i]);
		unseen++;
	}
	return unseen;
}

/* Appends "/name" (or "name" at the top) to the current path. */
static int walk_push(struct walker *w, const char *name, size_t *saved)
{
	size_t nlen = strlen(name);
	size_t need = w->len + 1 + nlen + 1;

	*saved = w->len;
	if (need > w->alloc) {
		size_t a = w->alloc ? w->alloc : 256;
		char *p;

		while (a < need)
			a *= 2;
		if (!(p = realloc(w->path, a)))
			return dd_error_set(-ENOMEM, "out of memory");
		w->path = p;
		w->alloc = a;
	}
	if (w->len > 0)
		w->path[w->len++] = '/';
	memcpy(w->path + w->len, name, nlen + 1);
	w->len += nlen;
	return 0;
}

static void walk_pop(struct walker *w, size_t saved)
{
	w->len = saved;
	w->path[saved] = '\0';
}

void walk_report(struct walk_stats *stats, const char *path, const char *what,
		 int err)
{
	if (err == ENOENT) {
		agent_warn("'/%s' vanished while being read; skipped", path);
		stats->vanished++;
		return;
	}
	agent_warn("cannot %s '/%s': %s; skipped", what, path, strerror(err));
	stats->unreadable++;
}

static void walk_skip(struct walker *w, const char *what, int err)
{
	walk_report(w->stats, w->path, what, err);
}

static void walk_item_init(struct walk_item *it, const struct walker *w,
			   int dirfd, const char *name, int fd,
			   const struct stat *st)
{
	memset(it, 0, sizeof(*it));
	it->path = w->path;
	it->path_len = w->len;
	it->dirfd = dirfd;
	it->name = name;
	it->fd = fd;
	it->st = st;
}

static int walk_entry(struct walker *w, int dirfd, const char *name,
		      unsigned char dtype);

/* Opens a regular file to read: never follows a link, never blocks on a
 * fifo or takes a terminal, leaves the access time where it can. */
static int walk_open_file(int dirfd, const char *name)
{
	int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd = openat(dirfd, name, flags | O_NOATIME);

	if (fd < 0 && errno == EPERM)    /* O_NOATIME needs ownership */
		fd = openat(dirfd, name, flags);
	return fd;
}

/* Hands the open regular file to the callbacks (which own fd from here). */
static int walk_file_opened(struct walker *w, int dirfd, const char *name,
			    int fd, const struct stat *st)
{
	struct walk_item it;

	/* A small file is read in one go: the hint would be a system call
	 * per file for nothing. */
	if (st->st_size >= WALK_FADVISE_MIN)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	walk_item_init(&it, w, dirfd, name, fd, st);
	return w->ops->file(w->payload, &it);
}

/*
 * opts->open_files_first: a name readdir calls a regular file is opened
 * and fstat'ed without an lstat before (one system call a file less).
 * WALK_FALLBACK when that cannot be done (the open or fstat failed, or the
 * entry is not a regular file now): the caller takes the lstat path, which
 * reports what is wrong as usual.
 */
#define WALK_FALLBACK 1
static int walk_file_first(struct walker *w, int dirfd, const char *name)
{
	struct walk_item it;
	struct stat st;
	int fd, rc;

	if ((fd = walk_open_file(dirfd, name)) < 0)
		return WALK_FALLBACK;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return WALK_FALLBACK;
	}
	if (w->ops->file_known) {
		walk_item_init(&it, w, dirfd, name, -1, &st);
		if ((rc = w->ops->file_known(w->payload, &it)) != 0) {
			close(fd);
			return rc < 0 ? rc : 0;
		}
	}
	rc = walk_file_opened(w, dirfd, name, fd, &st);
	return rc < 0 ? rc : 0;
}

static int walk_file(struct walker *w, int dirfd, const char *name,
		     const struct stat *lst)
{
	struct walk_item it;
	struct stat st;
	int fd, rc;

	if (w->ops->file_known) {
		walk_item_init(&it, w, dirfd, name, -1, lst);
		rc = w->ops->file_known(w->payload, &it);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	fd = walk_open_file(dirfd, name);
	if (fd < 0) {
		walk_skip(w, "open", errno);
		return 0;
	}
	if (fstat(fd, &st) < 0) {
		walk_skip(w, "stat", errno);
		close(fd);
		return 0;
	}
	if (!S_ISREG(st.st_mode) || st.st_ino != lst->st_ino ||
	    st.st_dev != lst->st_dev) {
		agent_warn("'/%s' was replaced while being read; skipped",
			   w->path);
		w->stats->vanished++;
		close(fd);
		return 0;
	}
	return walk_file_opened(w, dirfd, name, fd, &st);
}

static int walk_symlink(struct walker *w, int dirfd, const char *name,
			const struct stat *st)
{
	size_t size = st->st_size > 0 && st->st_size < DD_CATALOG_LINK_MAX ?
		(size_t)st->st_size + 1 : 256;
	struct walk_item it;
	char *buf = NULL;
	ssize_t n;
	int rc;

	for (;;) {
		char *p = realloc(buf, size);

		if (!p) {
			free(buf);
			return dd_error_set(-ENOMEM, "out of memory");
		}
		buf = p;
		n = readlinkat(dirfd, name, buf, size);
		if (n < 0) {
			walk_skip(w, "read symlink", errno);
			free(buf);
			return 0;
		}
		if ((size_t)n < size)
			break;
		if (size > DD_CATALOG_LINK_MAX) {
			walk_skip(w, "record symlink", ENAMETOOLONG);
			free(buf);
			return 0;
		}
		size *= 2;
	}
	buf[n] = '\0';
	walk_item_init(&it, w, dirfd, name, -1, st);
	it.target = buf;
	it.target_len = (size_t)n;
	rc = w->ops->symlink(w->payload, &it);
	free(buf);
	return rc;
}

/* Whether the open directory holds a CACHEDIR.TAG with the signature. */
static bool walk_is_cache(int dfd)
{
	char buf[sizeof(CACHEDIR_SIG) - 1];
	struct stat st;
	bool yes = false;
	int fd;

	fd = openat(dfd, CACHEDIR_TAG, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
		    O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    dd_read_full(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
		yes = memcmp(buf, CACHEDIR_SIG, sizeof(buf)) == 0;
	close(fd);
	return yes;
}

/* Lists and walks the children of the open directory `dfd` (closed here).
 * `only`, when set, is the one name to walk (a cache's tag). */
static int walk_dir_children(struct walker *w, int dfd, const char *only)
{
	struct walk_name *names = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (!(d = fdopendir(dfd))) {
		walk_skip(w, "list directory", errno);
		close(dfd);
		return 0;
	}
	for (;;) {
		errno = 0;
		if (!(de = readdir(d))) {
			if (errno) {
				walk_skip(w, "list directory", errno);
				goto cleanup;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (only && strcmp(de->d_name, only) != 0)
			continue;
		if (n == alloc) {
			size_t a = alloc ? alloc * 2 : 64;
			struct walk_name *p = realloc(names, a * sizeof(*names));

			if (!p) {
				rc = dd_error_set(-ENOMEM, "out of memory");
				goto cleanup;
			}
			names = p;
			alloc = a;
		}
		if (!(names[n].name = strdup(de->d_name))) {
			rc = dd_error_set(-ENOMEM, "out of memory");
			goto cleanup;
		}
		names[n++].type = de->d_type;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), walk_cmp_name);
	for (size_t i = 0; i < n && rc >= 0; i++)
		rc = walk_entry(w, dirfd(d), names[i].name, names[i].type);
cleanup:
	for (size_t i = 0; i < n; i++)
		free(names[i].name);
	free(names);
	closedir(d);
	return rc;
}

static int walk_dir(struct walker *w, int dirfd, const char *name,
		    const struct stat *lst)
{
	struct stat st = *lst;
	struct walk_item it;
	const char *only = NULL;
	int dfd, open_err, rc;

	dfd = openat(dirfd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	open_err = errno;
	if (dfd >= 0 && fstat(dfd, &st) < 0)
		st = *lst;
	/* The directory is recorded even when its contents cannot be read,
	 * so a restore recreates it with its owner, mode and times. */
	walk_item_init(&it, w, dirfd, name, dfd, &st);
	if ((rc = w->ops->dir(w->payload, &it)) < 0) {
		if (dfd >= 0)
			close(dfd);
		return rc;
	}
	if (dfd < 0) {
		if (open_err == ENOENT) {
			walk_skip(w, "open directory", open_err);
			return 0;
		}
		agent_warn("cannot open directory '/%s': %s; its contents are skipped",
			   w->path, strerror(open_err));
		w->stats->unreadable++;
		return 0;
	}
	/* A mount point is recorded, its contents are not (like tar), but
	 * for one the user named: its own file system is walked. */
	if (w->opts && w->opts->one_file_system && st.st_dev != w->root_dev) {
		dev_t outer = w->root_dev;

		if (!walk_is_given(w)) {
			w->stats->excluded++;
			close(dfd);
			return 0;
		}
		w->root_dev = st.st_dev;
		rc = walk_dir_children(w, dfd, NULL);
		w->root_dev = outer;
		return rc;
	}
	/* A tagged cache keeps its tag, so a restore still marks it. */
	if (w->opts && w->opts->exclude_caches && walk_is_cache(dfd)) {
		w->stats->excluded++;
		only = CACHEDIR_TAG;
	}
	return walk_dir_children(w, dfd, only);
}

/* One entry of the open directory `dirfd`; `dtype` is readdir's d_type
 * (DT_UNKNOWN: not known). */
static int walk_entry(struct walker *w, int dirfd, const char *name,
		      unsigned char dtype)
{
	struct walk_item it;
	struct stat st;
	size_t saved;
	int rc;

	if ((rc = walk_push(w, name, &saved)) < 0)
		return rc;
	if (w->len > DD_CATALOG_PATH_MAX) {
		walk_skip(w, "record", ENAMETOOLONG);
		goto done;
	}
	if (w->opts && pattern_excludes(w->opts->exclude, w->path)) {
		w->stats->excluded++;
		goto done;
	}
	walk_mark_given(w);
	if (dtype == DT_REG && w->opts && w->opts->open_files_first &&
	    (rc = walk_file_first(w, dirfd, name)) != WALK_FALLBACK)
		goto done;
	rc = 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		walk_skip(w, "stat", errno);
		goto done;
	}
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		rc = walk_file(w, dirfd, name, &st);
		break;
	case S_IFDIR:
		rc = walk_dir(w, dirfd, name, &st);
		break;
	case S_IFLNK:
		rc = walk_symlink(w, dirfd, name, &st);
		break;
	case S_IFIFO:
	case S_IFCHR:
	case S_IFBLK:
		walk_item_init(&it, w, dirfd, name, -1, &st);
		rc = w->ops->special(w->payload, &it);
		break;
	default:
		agent_warn("'/%s' is a %s; skipped", w->path,
			   S_ISSOCK(st.st_mode) ? "socket" :
			   "file of unknown type");
		w->stats->skipped_type++;
		break;
	}
done:
	walk_pop(w, saved);
	return rc;
}

int walk_root(const char *root, const struct walk_ops *ops,
	      const struct walk_options *opts, void *payload,
	      struct walk_stats *stats)
{
	struct walker w = { .ops = ops, .opts = opts, .payload = payload,
			    .stats = stats };
	const char *slash = strrchr(root, '/');
	char *parent = NULL;
	struct stat st;
	int pfd = -1, rc;

	if (root[0] != '/' || !slash)
		return dd_error_set(-EINVAL, "path '%s' is not absolute", root);

	if (strcmp(root, "/") == 0) {
		/* The root directory has no catalog path of its own: record
		 * its children ("bin", "etc", ...). */
		pfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			return dd_error_set(-errno, "cannot open '/': %s",
					    strerror(errno));
		if (fstat(pfd, &st) == 0)
			w.root_dev = st.st_dev;
		if (!(w.path = calloc(1, 256))) {
			close(pfd);
			return dd_error_set(-ENOMEM, "out of memory");
		}
		w.alloc = 256;
		rc = walk_dir_children(&w, pfd, NULL);   /* closes pfd */
		free(w.path);
		return rc;
	}

	if (!(parent = strndup(root, slash == root ? 1 : (size_t)(slash - root))))
		return dd_error_set(-ENOMEM, "out of memory");
	/* The walk's paths start with the parent's, without its '/'. */
	w.len = strlen(parent + 1);
	w.alloc = w.len + 256;
	if (!(w.path = malloc(w.alloc))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	memcpy(w.path, parent + 1, w.len + 1);
	/* O_PATH: the parent is only searched, never listed, so a parent
	 * the user may enter but not read (a home directory of mode 0711)
	 * is no obstacle, as for tar */
	pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		rc = dd_error_set(-errno, "cannot open '%s': %s", parent,
				  strerror(errno));
		goto cleanup;
	}
	if (fstatat(pfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = dd_error_set(-errno, "cannot stat '%s': %s", root,
				  strerror(errno));
		goto cleanup;
	}
	w.root_dev = st.st_dev;
	rc = walk_entry(&w, pfd, slash + 1, DT_UNKNOWN);
cleanup:
	if (pfd >= 0)
		close(pfd);
	free(parent);
	free(w.path);
	return rc;
}
