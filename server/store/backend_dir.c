/*
 * backend_dir.c - the local directory backend (backend.h): an object is a
 * file under the root, a '/' in its name a subdirectory (today's repository
 * layout: packs/, snapshots/, config.json).
 *
 * put:    temporary file, fsync, link() to the name (fails if it exists:
 *         put-once without a race), unlink the temporary, fsync the dir.
 * append: O_APPEND write, fdatasync (and the dir's fsync if it created it).
 * lock:   flock(LOCK_EX|LOCK_NB) on .locks/NAME; the lease is ignored, the
 *         kernel drops the lock when the process dies.
 * cas:    under flock of .locks/.cas: compare, temporary file, fsync,
 *         rename over the name, fsync the dir.
 * Temporary and lock files start with '.', which no object name does, so
 * listings never show them. A temporary file left by a crash is garbage
 * that nothing reads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

#define LOCK_DIR ".locks"

struct dir_lock {
	struct dir_lock *next;
	int fd;
	char name[];
};

struct dirb {
	int rootfd;
	pthread_mutex_t mu;          /* guards locks */
	struct dir_lock *locks;
};

static atomic_ulong tmp_seq;

static int errno_rc(void)
{
	return errno ? -errno : -EIO;
}

__attribute__((format(printf, 3, 4)))
static int why_set(char *why, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, BACKEND_WHY, fmt, ap);
	va_end(ap);
	return rc;
}

/* fsyncs the directory that holds `name` (the root when it has no '/'). */
static int sync_parent(struct dirb *d, const char *name)
{
	const char *slash = strrchr(name, '/');
	char dir[BACKEND_NAME_MAX + 1];
	int fd, rc = 0;

	if (!slash)
		return fsync(d->rootfd) < 0 ? errno_rc() : 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - name), name);
	fd = openat(d->rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno_rc();
	if (fsync(fd) < 0)
		rc = errno_rc();
	close(fd);
	return rc;
}

/* Creates the directories leading to `name`, each made durable in its
 * parent. */
static int make_parents(struct dirb *d, const char *name)
{
	char path[BACKEND_NAME_MAX + 1];
	char *p;
	int rc;

	snprintf(path, sizeof(path), "%s", name);
	for (p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdirat(d->rootfd, path, 0755) == 0) {
			rc = sync_parent(d, path);
			if (rc < 0)
				return rc;
		} else if (errno != EEXIST) {
			return errno_rc();
		}
		*p = '/';
	}
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno_rc();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes data into a new durable temporary file beside `name`; its name
 * into tmp. */
static int write_temp(struct dirb *d, const char *name, const void *data,
		      size_t len, char *tmp, size_t tmpsz)
{
	const char *slash = strrchr(name, '/');
	int fd = -1, rc, tries;

	rc = make_parents(d, name);
	if (rc < 0)
		return rc;
	/* a name left by a crashed process of the same pid is skipped */
	for (tries = 0; fd < 0 && tries < 100; tries++) {
		snprintf(tmp, tmpsz, "%.*s.tmp-%ld-%lu",
			 slash ? (int)(slash - name + 1) : 0, name,
			 (long)getpid(), atomic_fetch_add(&tmp_seq, 1));
		fd = openat(d->rootfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return errno_rc();
	}
	if (fd < 0)
		return -EIO;
	rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = errno_rc();
	if (close(fd) < 0 && rc == 0)
		rc = errno_rc();
	if (rc < 0)
		unlinkat(d->rootfd, tmp, 0);
	return rc;
}

static int dir_open(void **impl, const char *where,
		    const struct backend_opts *opts, char *why)
{
	struct dirb *d;
	int rc;

	if (mkdir(where, 0755) < 0 && errno != EEXIST)
		return why_set(why, errno_rc(), "cannot create directory '%s': %s",
			       where, strerror(errno));
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->rootfd = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->rootfd < 0) {
		rc = why_set(why, errno_rc(), "cannot open directory '%s': %s",
			     where, strerror(errno));
		free(d);
		return rc;
	}
	pthread_mutex_init(&d->mu, NULL);
	*impl = d;
	return 0;
}

static void dir_close(void *impl)
{
	struct dirb *d = impl;
	struct dir_lock *l, *next;

	for (l = d->locks; l; l = next) {
		next = l->next;
		close(l->fd);
		free(l);
	}
	pthread_mutex_destroy(&d->mu);
	close(d->rootfd);
	free(d);
}

static int dir_put(void *impl, const char *name, const void *data,
		   size_t len, char *why)
{
	struct dirb *d = impl;
	char tmp[BACKEND_NAME_MAX + 64];
	int rc;

	rc = write_temp(d, name, data, len, tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	rc = linkat(d->rootfd, tmp, d->rootfd, name, 0) < 0 ? errno_rc() : 0;
	unlinkat(d->rootfd, tmp, 0);
	if (rc == -EEXIST)
		return why_set(why, rc, "it exists already");
	if (rc < 0)
		return rc;
	return sync_parent(d, name);
}

/* Opens `name` for appending, creating it (and its directories) if needed;
 * *created says whether the directory entry is new. */
static int open_append(struct dirb *d, const char *name, int *created)
{
	int fd, rc;

	*created = 0;
	for (;;) {
		fd = openat(d->rootfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			return fd >= 0 ? fd : errno_rc();
		rc = make_parents(d, name);
		if (rc < 0)
			return rc;
		fd = openat(d->rootfd, name,
			    O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			*created = 1;
			return fd;
		}
		if (errno != EEXIST)
			return errno_rc();
	}
}

/* The largest page-cache folio of a file (a PMD: 2 MiB on x86-64). */
#define DIR_FOLIO_MAX (2u << 20)

static atomic_bool dir_drop_appended;

void backend_dir_drop_appended(bool on)
{
	atomic_store(&dir_drop_appended, on);
}

/*
 * Appends are pack data, written once and read seldom (a restore, a
 * collection's repack, `check --read-data`). With pack_cache_drop, once
 * synced their pages leave the page cache (they are clean: this only
 * drops them), which keeps the cache for the index, and lets the next
 * append reuse the pages just freed: on virtual machines that give the
 * memory the guest frees back to the host, every fresh page-cache page
 * costs a fault in the host as well (docs/FLOORS.md, "Pack pages out of
 * the page cache"). Best effort: a failure leaves the pages cached.
 */
static void dir_drop_cached(int fd, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	off_t end = lseek(fd, 0, SEEK_CUR), from, to;

	if (end < (off_t)len || page <= 0)
		return;
	/* The kernel drops only folios wholly in the range, and a file's
	 * folios may be up to DIR_FOLIO_MAX: starting at the folio that
	 * holds the append's first byte (all of it synced before) leaves
	 * none of them behind. The partial last page stays, so that the
	 * next append does not read it back from the disk. */
	from = (end - (off_t)len) & ~(off_t)(DIR_FOLIO_MAX - 1);
	to = end & ~(off_t)(page - 1);
	if (to > from)
		(void)posix_fadvise(fd, from, to - from, POSIX_FADV_DONTNEED);
}

static int dir_append(void *impl, const char *name, const void *data,
		      size_t len, char *why)
{
	struct dirb *d = impl;
	int created, fd, rc;

	fd = open_append(d, name, &created);
	if (fd < 0)
		return fd;
	rc = write_all(fd, data, len);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = errno_rc();
	if (rc == 0 && atomic_load(&dir_drop_appended))
		dir_drop_cached(fd, len);
	close(fd);
	if (rc == 0 && created)
		rc = sync_parent(d, name);
	return rc;
}

static int64_t dir_read(void *impl, const char *name, uint64_t off,
			void *buf, size_t len, char *why)
{
	struct dirb *d = impl;
	size_t got = 0;
	int fd;

	fd = openat(d->rootfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno_rc();
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = errno_rc();

			close(fd);
			return rc;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return (int64_t)got;
}

static int dir_ropen(void *impl, const char *name, void **rd, char *why)
{
	struct dirb *d = impl;
	int *fd = malloc(sizeof(*fd));

	if (!fd)
		return -ENOMEM;
	*fd = openat(d->rootfd, name, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		int rc = errno_rc();

		free(fd);
		return rc;
	}
	*rd = fd;
	return 0;
}

static int64_t dir_rread(void *rd, uint64_t off, void *buf, size_t len,
			 char *why)
{
	int fd = *(int *)rd;
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno_rc();
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (int64_t)got;
}

static void dir_rclose(void *rd)
{
	close(*(int *)rd);
	free(rd);
}

static int dir_stat(void *impl, const char *name, uint64_t *size, char *why)
{
	struct dirb *d = impl;
	struct stat st;

	if (fstatat(d->rootfd, name, &st, 0) < 0)
		return errno_rc();
	if (!S_ISREG(st.st_mode))
		return why_set(why, -ENOENT, "not a regular file");
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Whether a walk below directory `dir` (no trailing '/'; "" for the root)
 * can reach names starting with prefix. */
static int may_hold(const char *dir, const char *prefix)
{
	size_t dl = strlen(dir), pl = strlen(prefix);

	if (dl == 0)
		return 1;
	if (pl <= dl)
		return strncmp(dir, prefix, pl) == 0;
	return strncmp(dir, prefix, dl) == 0 && prefix[dl] == '/';
}

static int list_dir(struct dirb *d, const char *dir, const char *prefix,
		    backend_list_fn fn, void *payload)
{
	char full[BACKEND_NAME_MAX + 2];
	struct dirent *e;
	DIR *dp;
	int fd, rc = 0;

	fd = openat(d->rootfd, dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : errno_rc();
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return errno_rc();
	}
	while (rc == 0 && (e = readdir(dp))) {
		struct stat st;
		int n;

		if (e->d_name[0] == '.')
			continue;
		n = snprintf(full, sizeof(full), "%s%s%s", dir, dir[0] ? "/" : "",
			     e->d_name);
		if (n < 0 || (size_t)n > BACKEND_NAME_MAX)
			continue;
		if (fstatat(d->rootfd, full, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;  /* removed while listing */
		if (S_ISDIR(st.st_mode)) {
			if (may_hold(full, prefix))
				rc = list_dir(d, full, prefix, fn, payload);
		} else if (S_ISREG(st.st_mode) &&
			   strncmp(full, prefix, strlen(prefix)) == 0) {
			rc = fn(full, payload);
		}
	}
	closedir(dp);
	return rc;
}

static int dir_list(void *impl, const char *prefix, backend_list_fn fn,
		    void *payload, char *why)
{
	const char *slash = strrchr(prefix, '/');
	char dir[BACKEND_NAME_MAX + 1];

	/* start at the deepest directory the prefix names */
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - prefix) : 0, prefix);
	return list_dir(impl, dir, prefix, fn, payload);
}

static int dir_truncate(void *impl, const char *name, uint64_t size,
			char *why)
{
	struct dirb *d = impl;
	int fd, rc = 0;

	fd = openat(d->rootfd, name, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno_rc();
	if (ftruncate(fd, (off_t)size) < 0 || fdatasync(fd) < 0)
		rc = errno_rc();
	close(fd);
	return rc;
}

static int dir_remove(void *impl, const char *name, char *why)
{
	struct dirb *d = impl;

	if (unlinkat(d->rootfd, name, 0) < 0)
		return errno_rc();
	return sync_parent(d, name);
}

/* Opens (creating) .locks/NAME, '/' in NAME becoming '+'. */
static int open_lock_file(struct dirb *d, const char *name)
{
	char path[BACKEND_NAME_MAX + sizeof(LOCK_DIR) + 2];
	char *p;
	int fd;

	if (mkdirat(d->rootfd, LOCK_DIR, 0755) < 0 && errno != EEXIST)
		return errno_rc();
	snprintf(path, sizeof(path), "%s/%s", LOCK_DIR, name);
	for (p = path + sizeof(LOCK_DIR); *p; p++)
		if (*p == '/')
			*p = '+';
	fd = openat(d->rootfd, path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? errno_rc() : fd;
}

static struct dir_lock **find_lock(struct dirb *d, const char *name)
{
	struct dir_lock **l;

	for (l = &d->locks; *l; l = &(*l)->next)
		if (strcmp((*l)->name, name) == 0)
			break;
	return l;
}

static int dir_lock(void *impl, const char *name, uint32_t lease_ms,
		    char *why)
{
	struct dirb *d = impl;
	struct dir_lock *l;
	int fd, rc = 0;

	pthread_mutex_lock(&d->mu);
	if (*find_lock(d, name))
		goto out;  /* held by this handle: a renewal */
	fd = open_lock_file(d, name);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ?
		     why_set(why, -EBUSY, "held by another handle") :
		     errno_rc();
		close(fd);
		goto out;
	}
	l = malloc(sizeof(*l) + strlen(name) + 1);
	if (!l) {
		close(fd);
		rc = -ENOMEM;
		goto out;
	}
	l->fd = fd;
	memcpy(l->name, name, strlen(name) + 1);
	l->next = d->locks;
	d->locks = l;
out:
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static int dir_unlock(void *impl, const char *name, char *why)
{
	struct dirb *d = impl;
	struct dir_lock **lp, *l;

	pthread_mutex_lock(&d->mu);
	lp = find_lock(d, name);
	l = *lp;
	if (l)
		*lp = l->next;
	pthread_mutex_unlock(&d->mu);
	if (!l)
		return why_set(why, -ENOENT, "not held by this handle");
	close(l->fd);
	free(l);
	return 0;
}

/* Compares the object's whole content with expect: 0 equal, -ECANCELED
 * different, -ENOENT missing. */
static int compare_content(struct dirb *d, const char *name,
			   const void *expect, size_t expect_len, char *why)
{
	char *cur = malloc(expect_len + 1);
	int64_t got;
	int rc;

	if (!cur)
		return -ENOMEM;
	got = dir_read(d, name, 0, cur, expect_len + 1, why);
	if (got < 0)
		rc = (int)got;
	else if ((size_t)got != expect_len || memcmp(cur, expect, expect_len))
		rc = why_set(why, -ECANCELED,
			     "its content is not the expected one");
	else
		rc = 0;
	free(cur);
	return rc;
}

static int dir_cas(void *impl, const char *name, const void *expect,
		   size_t expect_len, const void *data, size_t len, char *why)
{
	struct dirb *d = impl;
	char tmp[BACKEND_NAME_MAX + 64];
	int fd, rc;

	if (!expect)
		return dir_put(impl, name, data, len, why);
	fd = open_lock_file(d, ".cas");
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX) < 0) {
		rc = errno_rc();
		goto out;
	}
	rc = compare_content(d, name, expect, expect_len, why);
	if (rc < 0)
		goto out;
	rc = write_temp(d, name, data, len, tmp, sizeof(tmp));
	if (rc < 0)
		goto out;
	if (renameat(d->rootfd, tmp, d->rootfd, name) < 0) {
		rc = errno_rc();
		unlinkat(d->rootfd, tmp, 0);
		goto out;
	}
	rc = sync_parent(d, name);
out:
	close(fd);  /* drops the flock */
	return rc;
}

const struct backend_ops backend_dir_ops = {
	.kind = "dir",
	.open = dir_open,
	.close = dir_close,
	.put = dir_put,
	.append = dir_append,
	.read = dir_read,
	.stat = dir_stat,
	.list = dir_list,
	.remove = dir_remove,
	.truncate = dir_truncate,
	.lock = dir_lock,
	.unlock = dir_unlock,
	.cas = dir_cas,
	.ropen = dir_ropen,
	.rread = dir_rread,
	.rclose = dir_rclose,
};
