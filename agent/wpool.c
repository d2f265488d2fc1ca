/*
 * wpool.c - regular files of a restore, written by worker threads (see
 * wpool.h).
 *
 * One lock guards the queues. A job (one file) is queued when it is
 * complete or, for a large file, once it holds WPOOL_STREAM_BYTES, so a
 * small file is taken whole and its worker never waits for data. Only the
 * job being filled can be incomplete, and every job before it is complete,
 * so a worker that waits for data always waits for the restore thread,
 * never the other way round: wpool_data() waits only for bytes that some
 * worker can write.
 *
 * Each worker has its own queue. Creating a file locks its directory, so
 * two threads creating small files in one directory mostly wait for each
 * other: the small files of a directory go to one worker, and the next
 * directory to the least busy one. Large files go to the least busy
 * worker; their time is in copying data, which does not contend.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "agent.h"
#include "dio.h"
#include "meta.h"
#include "wpool.h"

#define WPOOL_MAX_WORKERS 16u
/* A file is handed to a worker before it is complete once this much of
 * its data is queued. */
#define WPOOL_STREAM_BYTES (1024u * 1024)
/* Each worker's staging buffer for files written past the page cache
 * (dio.h): files of WPOOL_STREAM_BYTES and more. */
#define WPOOL_DIRECT_BUF (1024u * 1024)

struct wseg {
	struct wseg *next;
	uint64_t off;
	size_t len;
	uint8_t data[];
};

/* A directory the files of consecutive jobs are created in: one
 * duplicate of the restore's descriptor, shared, closed with its last
 * user (refs is atomic). */
struct wdir {
	int fd;
	unsigned refs;
};

struct wjob {
	struct wjob *next;       /* in the pool's queue */
	struct wdir *dir;
	int dirfd;               /* dir->fd */
	char *name;              /* inside dirfd */
	char *path;              /* the catalog path, for warnings */
	struct dd_entry e;       /* e.ext points to `ext`; no path/chunks */
	uint8_t *ext;
	bool with_ext;
	struct wseg *segs, **segs_tail;
	size_t held;             /* bytes in segs */
	bool small;              /* below WPOOL_STREAM_BYTES */
	bool same_dir;           /* in the directory of the file before */
	unsigned worker;         /* the queue it went to */
	bool queued, complete;
	bool abandoned;          /* the restore stopped inside this file */
};

struct wqueue {
	struct wjob *head, **tail;
	size_t jobs;             /* queued or being written */
};

struct wpool {
	pthread_mutex_t lock;
	pthread_cond_t work;     /* a job was queued, or stop */
	pthread_cond_t data;     /* the job being filled got data or ended */
	pthread_cond_t room;     /* data was written, or a job finished */
	struct wqueue q[WPOOL_MAX_WORKERS];
	unsigned small_worker;   /* where the last small file went */
	char *dir;               /* the directory of the last file begun */
	size_t dir_len, dir_alloc;
	struct wdir *last_dir;   /* its descriptor (a reference) */
	int last_dirfd;          /* the caller's descriptor it duplicates */
	struct wjob *cur;        /* being filled by the restore thread */
	size_t bytes, max_bytes; /* data held in all jobs */
	size_t open;             /* jobs begun and not finished */
	bool stop;
	pthread_t threads[WPOOL_MAX_WORKERS];
	unsigned nthreads;
	struct wpool_stats st;
	struct meta_drop *drop;  /* what metadata is left out; borrowed */
	size_t hole_block;       /* zero runs this long (aligned) are holes */
	bool direct;             /* large files past the page cache */
};

static void wdir_unref(struct wdir *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(d->fd);
		free(d);
	}
}

static void wjob_free(struct wjob *j)
{
	struct wseg *s, *next;

	if (!j)
		return;
	for (s = j->segs; s; s = next) {
		next = s->next;
		free(s);
	}
	wdir_unref(j->dir);
	free(j->name);
	free(j->path);
	free(j->ext);
	free(j);
}

/* Puts a job on a worker's queue (lock held). */
static void wpool_enqueue(struct wpool *p, struct wjob *j)
{
	unsigned w = 0;

	if (j->small && j->same_dir) {
		w = p->small_worker;
	} else {
		for (unsigned i = 1; i < p->nthreads; i++)
			if (p->q[i].jobs < p->q[w].jobs)
				w = i;
	}
	if (j->small)
		p->small_worker = w;
	j->worker = w;
	j->queued = true;
	j->next = NULL;
	*p->q[w].tail = j;
	p->q[w].tail = &j->next;
	p->q[w].jobs++;
	pthread_cond_broadcast(&p->work);
}

static void wjob_warn(const struct wjob *j, const char *what, int err)
{
	char q[512];

	agent_warn("cannot restore '%s': %s%s%s",
		   dd_quote(q, sizeof(q), j->path, strlen(j->path)), what,
		   err ? ": " : "", err ? strerror(err) : "");
}

/* Creates the file, replacing (never following) whatever is in the way:
 * the descriptor, or -1 (warned). */
static int wjob_create(const struct wjob *j)
{
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	struct stat st;
	int fd;

	fd = openat(j->dirfd, j->name, flags, 0600);
	if (fd < 0 && errno == EEXIST &&
	    fstatat(j->dirfd, j->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (unlinkat(j->dirfd, j->name,
			     S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
			wjob_warn(j, "cannot remove what is in the way", errno);
			return -1;
		}
		fd = openat(j->dirfd, j->name, flags, 0600);
	}
	if (fd < 0)
		wjob_warn(j, "cannot create the file", errno);
	return fd;
}

/* Writes one job: its data as it arrives (through `w`), then its
 * metadata. */
static void wjob_run(struct wpool *p, struct wjob *j, struct dio_writer *w)
{
	int fd = wjob_create(j), err = 0;
	bool ok = fd >= 0;

	if (ok)
		dio_begin(w, fd, p->hole_block, p->direct && !j->small);
	for (;;) {
		struct wseg *s;

		pthread_mutex_lock(&p->lock);
		while (!j->segs && !j->complete)
			pthread_cond_wait(&p->data, &p->lock);
		s = j->segs;
		if (s) {
			j->segs = s->next;
			if (!j->segs)
				j->segs_tail = &j->segs;
			j->held -= s->len;
		}
		pthread_mutex_unlock(&p->lock);
		if (!s)
			break;
		if (ok && (err = dio_write(w, s->data, s->len, s->off)) < 0) {
			wjob_warn(j, "cannot write", -err);
			ok = false;
		}
		pthread_mutex_lock(&p->lock);
		p->bytes -= s->len;
		pthread_cond_signal(&p->room);
		pthread_mutex_unlock(&p->lock);
		free(s);
	}
	if (ok && (err = dio_finish(w)) < 0) {
		wjob_warn(j, "cannot write", -err);
		ok = false;
	}
	/* A file the restore gave up on is not left looking complete. */
	if (j->abandoned) {
		if (fd >= 0) {
			close(fd);
			(void)unlinkat(j->dirfd, j->name, 0);
		}
		fd = -1;
		ok = false;
	}
	/* The size, for a file that ends in a hole (zeros not written). */
	if (ok && w->end < j->e.size && ftruncate(fd, (off_t)j->e.size) < 0) {
		wjob_warn(j, "cannot set the size", errno);
		ok = false;
	}
	if (ok) {
		char q[512];

		dd_quote(q, sizeof(q), j->path, strlen(j->path));
		ok = meta_apply(fd, &j->e, j->with_ext, q, p->drop) == 0;
	}
	if (fd >= 0 && close(fd) < 0 && ok) {
		wjob_warn(j, "cannot write", errno);
		ok = false;
	}
	pthread_mutex_lock(&p->lock);
	if (ok) {
		p->st.files++;
		p->st.bytes += j->e.size;
	} else {
		p->st.failed++;
	}
	p->st.direct_bytes += w->direct_bytes;
	w->direct_bytes = 0;
	p->open--;
	p->q[j->worker].jobs--;
	pthread_cond_broadcast(&p->room);
	pthread_mutex_unlock(&p->lock);
	wjob_free(j);
}

struct wpool_worker_arg {
	struct wpool *p;
	unsigned i;
};

static void *wpool_worker(void *arg)
{
	struct wpool *p = ((struct wpool_worker_arg *)arg)->p;
	struct wqueue *q = &p->q[((struct wpool_worker_arg *)arg)->i];
	struct dio_writer w;

	free(arg);
	/* Without its buffer the worker writes through the page cache. */
	if (dio_writer_init(&w, p->direct ? WPOOL_DIRECT_BUF : 0) < 0)
		dio_writer_init(&w, 0);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct wjob *j;

		while (!q->head && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (!q->head)
			break;
		j = q->head;
		q->head = j->next;
		if (!q->head)
			q->tail = &q->head;
		pthread_mutex_unlock(&p->lock);
		wjob_run(p, j, &w);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	dio_writer_release(&w);
	return NULL;
}

int wpool_new(struct wpool **out, unsigned workers, size_t max_bytes,
	      struct meta_drop *drop, bool direct)
{
	struct wpool *p;
	int rc;

	*out = NULL;
	if (workers < 1 || workers > WPOOL_MAX_WORKERS)
		return dd_error_set(-EINVAL, "bad number of writers: %u", workers);
	if (!(p = calloc(1, sizeof(*p))))
		return dd_error_set(-ENOMEM, "out of memory");
	/* The data passes through malloc: keep chunk-sized blocks on the heap
	 * and the heap mapped, so the same memory is reused instead of being
	 * returned to the kernel and faulted in again for every chunk. */
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 2 * (int)max_bytes + 64 * 1024 * 1024);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->data, NULL);
	pthread_cond_init(&p->room, NULL);
	for (unsigned i = 0; i < WPOOL_MAX_WORKERS; i++)
		p->q[i].tail = &p->q[i].head;
	p->max_bytes = max_bytes;
	p->drop = drop;
	p->hole_block = WPOOL_HOLE_BLOCK;
	p->direct = direct;
	for (unsigned i = 0; i < workers; i++) {
		struct wpool_worker_arg *a = malloc(sizeof(*a));

		if (!a) {
			wpool_free(p);
			return dd_error_set(-ENOMEM, "out of memory");
		}
		a->p = p;
		a->i = i;
		if ((rc = pthread_create(&p->threads[i], NULL, wpool_worker, a))) {
			free(a);
			wpool_free(p);
			return dd_error_set(-rc, "cannot start a writer thread: %s",
					    strerror(rc));
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

/*
 * Gives the job its directory: the last one's when the file is in the
 * same directory, given by the same descriptor (one duplicate serves a
 * directory's files: two system calls less a file), else a new duplicate.
 */
static int wpool_dir_for(struct wpool *p, struct wjob *j, int dirfd)
{
	struct wdir *d = p->last_dir;

	if (!d || !j->same_dir || p->last_dirfd != dirfd) {
		if (!(d = malloc(sizeof(*d))))
			return dd_error_set(-ENOMEM, "out of memory");
		if ((d->fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3)) < 0) {
			int err = errno;

			free(d);
			return dd_error_set(-err, "cannot duplicate a descriptor: %s",
					    strerror(err));
		}
		d->refs = 1;     /* the pool's */
		wdir_unref(p->last_dir);
		p->last_dir = d;
		p->last_dirfd = dirfd;
	}
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_ACQ_REL);
	j->dir = d;
	j->dirfd = d->fd;
	return 0;
}

int wpool_begin(struct wpool *p, int dirfd, const char *name,
		const char *path, const struct dd_entry *e, bool with_ext)
{
	struct wjob *j = calloc(1, sizeof(*j));
	const char *slash = strrchr(path, '/');
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	int rc;

	if (!j)
		return dd_error_set(-ENOMEM, "out of memory");
	if (dlen + 1 > p->dir_alloc) {
		char *d = realloc(p->dir, dlen + 1);

		if (!d) {
			free(j);
			return dd_error_set(-ENOMEM, "out of memory");
		}
		p->dir = d;
		p->dir_alloc = dlen + 1;
	}
	j->same_dir = p->dir_len == dlen && p->dir &&
		memcmp(p->dir, path, dlen) == 0;
	if (!j->same_dir) {
		memcpy(p->dir, path, dlen);
		p->dir_len = dlen;
	}
	j->dirfd = -1;
	j->small = e->size < WPOOL_STREAM_BYTES;
	j->segs_tail = &j->segs;
	j->e = *e;
	j->e.path = NULL;
	j->e.path_len = 0;
	j->e.link = NULL;
	j->e.link_len = 0;
	j->e.chunks = NULL;
	j->e.ext = NULL;
	j->e.ext_len = 0;
	j->with_ext = with_ext;
	if (!(j->name = strdup(name)) || !(j->path = strdup(path)))
		goto nomem;
	if (e->ext_len) {
		if (!(j->ext = malloc(e->ext_len)))
			goto nomem;
		memcpy(j->ext, e->ext, e->ext_len);
		j->e.ext = j->ext;
		j->e.ext_len = e->ext_len;
	}
	if ((rc = wpool_dir_for(p, j, dirfd)) < 0) {
		wjob_free(j);
		return rc;
	}
	pthread_mutex_lock(&p->lock);
	p->cur = j;
	p->open++;
	pthread_mutex_unlock(&p->lock);
	return 0;
nomem:
	wjob_free(j);
	return dd_error_set(-ENOMEM, "out of memory");
}

int wpool_data(struct wpool *p, const void *data, size_t n, uint64_t off)
{
	struct wjob *j = p->cur;
	struct wseg *s;

	if (!j || n == 0)
		return 0;
	if (!(s = malloc(sizeof(*s) + n)))
		return dd_error_set(-ENOMEM, "out of memory");
	s->next = NULL;
	s->off = off;
	s->len = n;
	memcpy(s->data, data, n);

	pthread_mutex_lock(&p->lock);
	/* Wait for room; whatever is held belongs to queued jobs. */
	if (p->bytes + n > p->max_bytes && !j->queued && j->held)
		wpool_enqueue(p, j);
	while (p->bytes > 0 && p->bytes + n > p->max_bytes)
		pthread_cond_wait(&p->room, &p->lock);
	*j->segs_tail = s;
	j->segs_tail = &s->next;
	j->held += n;
	p->bytes += n;
	if (!j->queued && j->held >= WPOOL_STREAM_BYTES)
		wpool_enqueue(p, j);
	pthread_cond_broadcast(&p->data);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int wpool_end(struct wpool *p)
{
	struct wjob *j = p->cur;

	if (!j)
		return 0;
	pthread_mutex_lock(&p->lock);
	j->complete = true;
	if (!j->queued)
		wpool_enqueue(p, j);
	p->cur = NULL;
	pthread_cond_broadcast(&p->data);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void wpool_drain(struct wpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	while (p->open > 0)
		pthread_cond_wait(&p->room, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void wpool_get_stats(struct wpool *p, struct wpool_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
}

void wpool_free(struct wpool *p)
{
	if (!p)
		return;
	/* A file begun and never ended: the restore stopped inside it. */
	if (p->cur) {
		pthread_mutex_lock(&p->lock);
		p->cur->abandoned = true;
		pthread_mutex_unlock(&p->lock);
		wpool_end(p);
	}
	wpool_drain(p);
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->data);
	pthread_cond_destroy(&p->room);
	wdir_unref(p->last_dir);
	free(p->dir);
	free(p);
}

void wpool_set_hole_block(struct wpool *p, size_t blk)
{
	assert(blk > 0);
	pthread_mutex_lock(&p->lock);
	p->hole_block = blk;
	pthread_mutex_unlock(&p->lock);
}
