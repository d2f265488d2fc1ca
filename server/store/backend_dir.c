/*
 * backend_dir.c - the local directory backend (backend.h): an object is a
 * file under the root, a '/' in its name a subdirectory (today's repository
 * layout: packs/, snapshots/, config.json).
 *
 * put:    temporary file, fsync, link() to the name (fails if it exists:
 *         put-once without a race), unlink the temporary, fsync the dir.
 * append: O_APPEND write, fdatasync (and the dir's fsync if it created it);
 *         64 KiB and more: written at the end past the page cache, with
 *         O_DIRECT where offered (dir_append_direct), then fdatasync.
 * read_multi: a fetch's spans, past the page cache as appends are.
 * lock:   flock(LOCK_EX|LOCK_NB) on .locks/NAME; the lease is ignored, the
 *         kernel drops the lock when the process dies.
 * cas:    under flock of .locks/.cas: compare, temporary file, fsync,
 *         rename over the name, fsync the dir.
 * Temporary and lock files start with '.', which no object name does, so
 * listings never show them. A temporary file left by a crash is garbage
 * that nothing reads.
 */
#define _GNU_SOURCE
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
#include "dio.h"

#define LOCK_DIR ".locks"

/* Appends this large or larger go past the page cache where the file
 * system offers direct I/O (dir_append_direct); smaller ones (a pack's
 * header, a marker's byte) through it. */
#define DIR_DIRECT_MIN (64u * 1024)
/* The staging buffer of a direct append, and how many the backend keeps
 * for the next appends (one per append at once: a buffer used once is
 * memory the next append finds already faulted in). */
#define DIR_DIRECT_BUF (2u * 1024 * 1024)
#define DIR_DIRECT_KEEP 4

struct dir_lock {
	struct dir_lock *next;
	int fd;
	char name[];
};

struct dirb {
	int rootfd;
	pthread_mutex_t mu;          /* guards locks and stages */
	struct dir_lock *locks;
	struct dio_writer *stages[DIR_DIRECT_KEEP]; /* idle, for appends */
	size_t nstages;
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
	while (d->nstages) {
		struct dio_writer *w = d->stages[--d->nstages];

		dio_writer_release(w);
		free(w);
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

/* Opens `name` for appending (O_APPEND with `append`, else for writes
 * at its end), creating it (and its directories) if needed; *created
 * says whether the directory entry is new. */
static int open_append(struct dirb *d, const char *name, bool append,
		       int *created)
{
	int flags = O_WRONLY | O_CLOEXEC | (append ? O_APPEND : 0);
	int fd, rc;

	*created = 0;
	for (;;) {
		fd = openat(d->rootfd, name, flags);
		if (fd >= 0 || errno != ENOENT)
			return fd >= 0 ? fd : errno_rc();
		rc = make_parents(d, name);
		if (rc < 0)
			return rc;
		fd = openat(d->rootfd, name, flags | O_CREAT | O_EXCL, 0644);
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
	struct stat st;
	off_t end, from, to;

	if (fstat(fd, &st) < 0 || (end = st.st_size) < (off_t)len || page <= 0)
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

/* A staging buffer for a direct append: an idle one, or a new one;
 * NULL when there is no memory for it. */
static struct dio_writer *dir_stage_take(struct dirb *d)
{
	struct dio_writer *w = NULL;

	pthread_mutex_lock(&d->mu);
	if (d->nstages)
		w = d->stages[--d->nstages];
	pthread_mutex_unlock(&d->mu);
	if (w)
		return w;
	if (!(w = malloc(sizeof(*w))))
		return NULL;
	if (dio_writer_init(w, DIR_DIRECT_BUF) < 0 || !w->buf) {
		free(w);
		return NULL;
	}
	return w;
}

static void dir_stage_give(struct dirb *d, struct dio_writer *w)
{
	pthread_mutex_lock(&d->mu);
	if (d->nstages < DIR_DIRECT_KEEP) {
		d->stages[d->nstages++] = w;
		w = NULL;
	}
	pthread_mutex_unlock(&d->mu);
	if (w) {
		dio_writer_release(w);
		free(w);
	}
}

static atomic_bool dir_direct_off;

void backend_dir_direct_appends(bool on)
{
	atomic_store(&dir_direct_off, !on);
}

/*
 * Appends data at the end of the file open on fd (not O_APPEND: pwrite
 * at the end, the one-writer rule of backend_append makes that the
 * end) past the page cache: whole aligned blocks with O_DIRECT from a
 * staging buffer, the bytes up to the first aligned offset and after
 * the last through the cache (dio.h). Pack data is written once and read
 * seldom; through the cache the kernel allocates a page for every byte
 * and copies it there, which on virtual machines whose freed memory goes
 * back to the host costs a host fault a page (docs/FLOORS.md, "Pack
 * pages past the page cache"). -EAGAIN when this file cannot be written
 * so (no staging memory): the caller appends through the cache.
 */
static int dir_append_direct(struct dirb *d, int fd, const void *data,
			     size_t len)
{
	struct dio_writer *w;
	struct stat st;
	int rc, rc2;

	if (fstat(fd, &st) < 0)
		return errno_rc();
	if (!(w = dir_stage_take(d)))
		return -EAGAIN;
	dio_begin(w, fd, 0, true);
	rc = dio_write(w, data, len, (uint64_t)st.st_size);
	rc2 = dio_finish(w);
	dir_stage_give(d, w);
	return rc < 0 ? rc : rc2;
}

static int dir_append(void *impl, const char *name, const void *data,
		      size_t len, char *why)
{
	struct dirb *d = impl;
	bool direct = len >= DIR_DIRECT_MIN && !atomic_load(&dir_direct_off);
	int created, fd, rc;

	fd = open_append(d, name, !direct, &created);
	if (fd < 0)
		return fd;
	rc = direct ? dir_append_direct(d, fd, data, len) : -EAGAIN;
	if (rc == -EAGAIN)
		rc = direct && lseek(fd, 0, SEEK_END) < 0 ? errno_rc() :
			write_all(fd, data, len);
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

/* A window read with O_DIRECT takes in the ranges after the one it is
 * read for (in pack order) as long as each starts within this many bytes
 * of the one before it ends: one device read for the records of a pack
 * area, where reading the gaps costs less than another read; ranges
 * further apart get windows of their own, so a fetch of records
 * scattered over large packs reads little more than the records. */
#define DIR_READ_GAP (64u * 1024)

/* A window of a file read with O_DIRECT: bytes [base, base + len) in
 * the staging buffer. */
struct dir_window {
	struct dio_writer *w;   /* its buf and cap */
	size_t align;
	uint64_t base;
	size_t len;
};

/* The ranges of a read_multi in pack order, and where each was asked. */
struct dir_order {
	const struct backend_range *r;
	size_t at;
};

static int dir_order_cmp(const void *pa, const void *pb)
{
	const struct dir_order *a = pa, *b = pb;
	int c = strcmp(a->r->name, b->r->name);

	if (c)
		return c;
	if (a->r->off != b->r->off)
		return a->r->off < b->r->off ? -1 : 1;
	return a->at < b->at ? -1 : a->at > b->at;
}

/* The end of the window to read at `base` for ord[i]: past ord[i] and the
 * ranges of the same file after it that start within DIR_READ_GAP of the
 * one before, as far as the staging buffer holds them. */
static uint64_t dir_window_end(const struct dir_window *win,
			       const struct dir_order *ord, size_t i, size_t n,
			       uint64_t base)
{
	uint64_t end = ord[i].r->off + ord[i].r->len;

	for (size_t j = i + 1; j < n; j++) {
		const struct backend_range *q = ord[j].r;
		uint64_t qend = q->off + q->len;

		if (strcmp(q->name, ord[i].r->name) != 0 ||
		    q->off > end + DIR_READ_GAP)
			break;
		if (qend > end) {
			if (qend - base > win->w->cap)
				break;
			end = qend;
		}
	}
	return end;
}

/* Range ord[i] from fd (open with O_DIRECT) through the window. */
static int dir_read_window(int fd, struct dir_window *win,
			   const struct dir_order *ord, size_t i, size_t n)
{
	const struct backend_range *r = ord[i].r;
	uint8_t *dst = r->buf;
	uint64_t off = r->off;
	size_t left = r->len;

	while (left) {
		uint64_t base, end;
		size_t want;
		ssize_t got;

		if (off >= win->base && off < win->base + win->len) {
			size_t k = (size_t)(win->base + win->len - off);

			if (k > left)
				k = left;
			memcpy(dst, win->w->buf + (off - win->base), k);
			dst += k;
			off += k;
			left -= k;
			continue;
		}
		base = off & ~(uint64_t)(win->align - 1);
		end = off == r->off ? dir_window_end(win, ord, i, n, base) :
			off + left;
		end = (end + win->align - 1) & ~(uint64_t)(win->align - 1);
		want = end - base > win->w->cap ? win->w->cap :
			(size_t)(end - base);
		win->len = 0;
		do
			got = pread(fd, win->w->buf, want, (off_t)base);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return errno_rc();
		win->base = base;
		win->len = (size_t)got;
		if (off >= base + (uint64_t)got)
			return -ENODATA;        /* the file ends before */
	}
	return 0;
}

/* Range r from fd through the page cache. */
static int dir_read_cached(int fd, const struct backend_range *r)
{
	int64_t got = dir_rread(&fd, r->off, r->buf, r->len, NULL);

	return got < 0 ? (int)got : (size_t)got < r->len ? -ENODATA : 0;
}

/*
 * The spans of a fetch (store_read_records), read past the page cache
 * when appends are (backend_dir_direct_appends): the packs were written
 * so, and a read through the cache would allocate a page for every byte
 * read (the cost direct appends avoid; docs/FLOORS.md). The ranges are
 * taken in pack order, each pack opened once; each is copied out of an
 * aligned window read with O_DIRECT, which also takes in the ranges
 * close after it (DIR_READ_GAP). A file system without direct I/O, or
 * one that refuses it (EINVAL), is read through the cache. Every range
 * was committed before this call (its location came from the index), so
 * a window read here holds its bytes as they stay.
 */
static int dir_read_multi(void *impl, struct backend_range *v, size_t n,
			  char *why)
{
	struct dirb *d = impl;
	struct dir_window win = { 0 };
	struct dir_order *ord = malloc((n ? n : 1) * sizeof(*ord));
	const char *name = NULL;
	int fd = -1, rc = 0;
	size_t i;

	(void)why;
	if (!ord)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		ord[i] = (struct dir_order){ &v[i], i };
	qsort(ord, n, sizeof(*ord), dir_order_cmp);
	if (!atomic_load(&dir_direct_off))
		win.w = dir_stage_take(d);
	for (i = 0; i < n; i++) {
		struct backend_range *r = &v[ord[i].at];

		if (!name || strcmp(name, r->name) != 0) {
			if (fd >= 0)
				close(fd);
			name = NULL;
			win.len = 0;
			win.align = 0;
			fd = openat(d->rootfd, r->name, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				r->rc = errno_rc();
				goto next;
			}
			name = r->name;
			if (win.w && (win.align = dio_alignment(fd, 0,
							win.w->cap)) &&
			    fcntl(fd, F_SETFL, O_RDONLY | O_DIRECT) < 0)
				win.align = 0;
		}
		r->rc = win.align ? dir_read_window(fd, &win, ord, i, n) :
			-EINVAL;
		if (r->rc == -EINVAL) {
			if (win.align)    /* refused after all: cached */
				(void)fcntl(fd, F_SETFL, O_RDONLY);
			win.align = 0;
			r->rc = dir_read_cached(fd, r);
		}
next:
		if (r->rc < 0 && rc == 0)
			rc = r->rc;
	}
	if (fd >= 0)
		close(fd);
	if (win.w)
		dir_stage_give(d, win.w);
	free(ord);
	return rc;
}

/* Whether fetches should read in spans (backend_reads_overlap): only
 * when they are read past the page cache. */
bool backend_dir_reads_spans(void)
{
	return !atomic_load(&dir_direct_off);
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
	.read_multi = dir_read_multi,
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
