/*
 * backup_read.c - the reading half of `dedup-agent backup`: reader threads
 * take the files to read from the walk's ring (reorder.h), read them by
 * windows (two a reader, so that one is read while the upload queue asks
 * the server about the other's chunks), cut them with the chunker and hash
 * the chunks, with helper threads sharing a window's hashing; sparse files
 * are read by their data runs (holes.h). What a read found stays in its
 * record for the walk thread (backup.c) to record in walk order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "chunker.h"
#include "hash.h"
#include "util.h"
#include "client.h"
#include "holes.h"
#include "key.h"
#include "sha256x.h"
#include "meta.h"
#include "reorder.h"
#include "upload.h"
#include "backup_impl.h"

/* Read this much at a time beyond the max_size window. */
#define BACKUP_READ_BLOCK (8u * 1024 * 1024)

/* ---- reading files ---- */

/* Whether the file changed while it was read: its size or times now
 * differ from those taken when it was opened. */
static bool backup_changed(int fd, const struct stat *st)
{
	struct stat now;

	if (fstat(fd, &now) < 0)
		return false;
	return now.st_size != st->st_size ||
	       now.st_mtim.tv_sec != st->st_mtim.tv_sec ||
	       now.st_mtim.tv_nsec != st->st_mtim.tv_nsec ||
	       now.st_ctim.tv_sec != st->st_ctim.tv_sec ||
	       now.st_ctim.tv_nsec != st->st_ctim.tv_nsec || now.st_nlink == 0;
}

/* Appends a hole of `len` bytes to the file's list, as one reference or
 * (beyond DD_HOLE_MAX) several full ones and a last. */
static int backup_push_hole(struct backup_rec *rec, uint64_t len)
{
	static const struct dd_id zero;
	int rc;

	rec->size += len;
	rec->bytes_holes += len;
	while (len > 0) {
		uint32_t n = len > DD_HOLE_MAX ? DD_HOLE_MAX : (uint32_t)len;

		if ((rc = backup_rec_push_ref(rec, &zero, n)) < 0)
			return rc;
		len -= n;
	}
	return 0;
}

/* ---- hashing the chunks of one window on several threads ---- */

/* One chunk cut in a reader's window, and its id once hashed. */
struct backup_cut {
	size_t off;
	size_t len;
	struct dd_id id;
};

/* A window's chunks offered to the helpers: taken by index, counted back. */
struct backup_hashjob {
	const uint8_t *base;
	struct backup_cut *cuts;
	size_t n, next, done;
};

/*
 * How many of a window's `left` unclaimed chunks a thread takes at once.
 * Where two chunks are hashed side by side (SHA-256 with the CPU's SHA
 * extensions, no key: dd_sha256_batch), up to 4, so that the two lanes
 * refill from them, and otherwise its share of what is left among the
 * reader and the helpers, but 2 at least: two chunks on one core cost
 * less CPU than one on each. Elsewhere one at a time, as every thread
 * hashes at the same speed alone.
 */
#define BACKUP_HASH_CLAIM 4

static size_t backup_hash_claim(const struct backup *b, size_t left)
{
	size_t k;

	if (client_crypt(b->client) || !dd_sha256x_ni_usable())
		return left > 0 ? 1 : 0;
	k = (left + b->nhelpers) / (b->nhelpers + 1);
	if (k < 2)
		k = left < 2 ? left : 2;
	return k > BACKUP_HASH_CLAIM ? BACKUP_HASH_CLAIM : k;
}

/* Hashes cuts[0..n), n <= BACKUP_HASH_CLAIM, on this thread. */
static void backup_hash_some(const struct backup *b, const uint8_t *base,
			     struct backup_cut *cuts, size_t n)
{
	struct dd_sha256_job jobs[BACKUP_HASH_CLAIM];

	for (size_t i = 0; i < n; i++)
		jobs[i] = (struct dd_sha256_job){ base + cuts[i].off,
						  cuts[i].len, &cuts[i].id };
	key_chunk_ids(client_crypt(b->client), jobs, n);
}

/* Hashes the chunks of a window: on the helpers too when they are free
 * (another reader's window may hold them), else on this thread alone. */
static void backup_hash_cuts(struct backup *b, const uint8_t *base,
			     struct backup_cut *cuts, size_t n)
{
	struct backup_hashjob job = { .base = base, .cuts = cuts, .n = n };

	if (b->nhelpers > 0 && n > 1) {
		pthread_mutex_lock(&b->h_mu);
		if (!b->hjob) {
			b->hjob = &job;
			pthread_cond_broadcast(&b->h_work_cv);
			while (job.next < job.n) {
				size_t i = job.next;
				size_t k = backup_hash_claim(b, job.n - i);

				job.next += k;
				pthread_mutex_unlock(&b->h_mu);
				backup_hash_some(b, base, cuts + i, k);
				pthread_mutex_lock(&b->h_mu);
				job.done += k;
			}
			while (job.done < job.n)
				pthread_cond_wait(&b->h_done_cv, &b->h_mu);
			b->hjob = NULL;
			pthread_mutex_unlock(&b->h_mu);
			return;
		}
		pthread_mutex_unlock(&b->h_mu);
	}
	for (size_t i = 0; i < n; i += BACKUP_HASH_CLAIM)
		backup_hash_some(b, base, cuts + i,
				 n - i < BACKUP_HASH_CLAIM ? n - i :
				 BACKUP_HASH_CLAIM);
}

/* A helper: hashes chunks of whichever window is offered, until stopped.
 * So a large file read by one reader is hashed on every core. */
static void *backup_helper_main(void *arg)
{
	struct backup *b = arg;

	pthread_mutex_lock(&b->h_mu);
	for (;;) {
		struct backup_hashjob *job;
		size_t i, k;

		while (!b->h_stop && !(b->hjob && b->hjob->next < b->hjob->n))
			pthread_cond_wait(&b->h_work_cv, &b->h_mu);
		if (b->h_stop)
			break;
		job = b->hjob;
		i = job->next;
		k = backup_hash_claim(b, job->n - i);
		job->next += k;
		pthread_mutex_unlock(&b->h_mu);
		backup_hash_some(b, job->base, job->cuts + i, k);
		pthread_mutex_lock(&b->h_mu);
		if ((job->done += k) == job->n)
			pthread_cond_signal(&b->h_done_cv);
	}
	pthread_mutex_unlock(&b->h_mu);
	return NULL;
}

/* Room for one more cut in the reader's list. */
static int backup_cuts_grow(struct backup_reader *r, size_t n)
{
	struct backup_cut *p;
	size_t a;

	if (n < r->cuts_alloc)
		return 0;
	a = r->cuts_alloc ? r->cuts_alloc * 2 : 64;
	if (!(p = realloc(r->cuts, a * sizeof(*p))))
		return dd_error_set(-ENOMEM, "out of memory");
	r->cuts = p;
	r->cuts_alloc = a;
	return 0;
}

/*
 * Reads up to `want` bytes from the file at offset `pos`. A read that
 * stops short exactly at the size stat'ed is taken as the end, without
 * one more read to see 0 (a read per file: most files being smaller than
 * the window); a file that grew meanwhile is caught by backup_changed.
 * The count read, or -errno.
 */
static ssize_t backup_read_upto(int fd, uint8_t *p, size_t want, uint64_t pos,
				uint64_t size)
{
	size_t got = 0;

	while (got < want) {
		ssize_t n = read(fd, p + got, want - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (pos + got == size)
			break;
	}
	return (ssize_t)got;
}

/* Reads into the window after the `avail` bytes kept (moved to its
 * start), at most `*left` bytes; sets *eof when the run or the file ends.
 * -EIO with the error noted in the record. */
static int backup_fill(struct backup_reader *r, struct backup_rec *rec,
		       size_t start, size_t *avail, uint64_t *left, bool *eof)
{
	uint8_t *buf = r->w[r->cur].buf;
	size_t want = r->rcap - *avail;
	ssize_t got;

	if (want > *left)
		want = (size_t)*left;
	if (start > 0 && *avail > 0)
		memmove(buf, buf + start, *avail);
	got = backup_read_upto(rec->fd, buf + *avail, want, rec->pos,
			       (uint64_t)rec->st.st_size);
	if (got < 0) {
		rec->read_err = (int)-got;
		rec->read_what = "read";
		return -EIO;
	}
	if ((size_t)got < want || (*left -= (size_t)got) == 0)
		*eof = true;
	*avail += (size_t)got;
	rec->pos += (uint64_t)got;
	rec->bytes_read += (uint64_t)got;
	return 0;
}

/* Waits until the upload queue is done with the reader's window `i`. */
static int backup_rwin_wait(struct backup_reader *r, unsigned i)
{
	return upload_queue_window_wait(r->b->uq, &r->w[i].win);
}

/*
 * Makes the other window (allocated) the one read, with the `avail`
 * bytes after `*start` not cut yet moved over to its start, once the
 * queue is done with it; the queue's failure if it failed.
 */
static int backup_rwin_switch(struct backup_reader *r, size_t *start,
			      size_t avail)
{
	struct backup_rwin *from = &r->w[r->cur], *to = &r->w[r->cur ^ 1];
	/* done with it, failed or not: the window read from now on is never
	 * one in flight, whatever the reader does after a failure */
	int rc = backup_rwin_wait(r, r->cur ^ 1);

	if (avail > 0)
		memcpy(to->buf, from->buf + *start, avail);
	*start = 0;
	r->cur ^= 1;
	return rc;
}

/*
 * Queues the `n` chunks cut in the reader's window of the record's file,
 * while the window is alive. For a large file the upload queue asks which
 * it lacks before it copies (upload.h), on an asker thread, and the next
 * window is read in the other buffer meanwhile (the `avail` bytes after
 * `*start` moved there); a small file's chunks are copied at once.
 */
static int backup_queue_window(struct backup_reader *r,
			       const struct backup_rec *rec, size_t n,
			       size_t *start, size_t avail)
{
	struct backup_rwin *w = &r->w[r->cur];
	bool ask = (uint64_t)rec->st.st_size >= r->b->ask_bytes;
	int rc;

	if (n > w->up_alloc) {
		size_t a = r->cuts_alloc;
		struct upload_chunk *u = realloc(w->up, a * sizeof(*u));

		if (!u)
			return dd_error_set(-ENOMEM, "out of memory");
		w->up = u;
		w->up_alloc = a;
	}
	for (size_t i = 0; i < n; i++) {
		w->up[i].id = r->cuts[i].id;
		w->up[i].data = w->buf + r->cuts[i].off;
		w->up[i].len = r->cuts[i].len;
	}
	if (!ask)
		return upload_queue_add_window(r->b->uq, w->up, n, false);
	/* the other buffer first: once the window is handed over, the
	 * switch must not fail before it */
	if (!r->w[r->cur ^ 1].buf &&
	    !(r->w[r->cur ^ 1].buf = malloc(r->rcap)))
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = upload_queue_window_start(r->b->uq, &w->win, w->up, n,
					    true)) < 0)
		return rc;
	return backup_rwin_switch(r, start, avail);
}

/*
 * Reads, cuts, hashes and queues `len` bytes of the record's file from its
 * current offset (UINT64_MAX: up to its end). The run is cut as a stream
 * of its own: its end ends a chunk. Each window read is cut first, every
 * chunk that starts with max_size bytes after it (or the run's end) in
 * view, exactly as one chunk at a time would cut; then its chunks are
 * hashed together (backup_hash_cuts) and queued in order. 1 = the run was
 * read whole, 0 = the file ended first, negative = an error; a read error
 * is noted in the record (read_err: the file is left out) and returned as
 * -EIO.
 */
static int backup_read_run(struct backup_reader *r, struct backup_rec *rec,
			   uint64_t len)
{
	struct backup *b = r->b;
	size_t max = b->chunker.params.max_size;
	size_t start = 0, avail = 0, n;
	uint64_t left = len;
	bool eof = false;
	int rc;

	for (;;) {
		if (__atomic_load_n(&b->stopping, __ATOMIC_RELAXED))
			return dd_error_set(-ECANCELED, "the backup stopped");
		/* Keep at least max_size bytes ahead unless the run ends. */
		if (!eof && avail < max) {
			if ((rc = backup_fill(r, rec, start, &avail, &left,
					      &eof)) < 0)
				return rc;
			start = 0;
		}
		if (avail == 0)
			break;
		n = 0;
		while (avail > 0 && (eof || avail >= max)) {
			size_t c = dd_chunker_cut(&b->chunker,
						  r->w[r->cur].buf + start,
						  avail);

			if ((rc = backup_cuts_grow(r, n)) < 0)
				return rc;
			r->cuts[n].off = start;
			r->cuts[n++].len = c;
			start += c;
			avail -= c;
		}
		backup_hash_cuts(b, r->w[r->cur].buf, r->cuts, n);
		if ((rc = backup_queue_window(r, rec, n, &start, avail)) < 0)
			return rc;
		for (size_t i = 0; i < n; i++) {
			const struct backup_cut *k = &r->cuts[i];

			if ((rc = backup_rec_push_ref(rec, &k->id, k->len)) < 0)
				return rc;
			rec->size += k->len;
		}
	}
	return left == 0 ? 1 : 0;
}

/* Moves to `off` of the file; a failure is noted like a read error. */
static int backup_seek(struct backup_rec *rec, uint64_t off)
{
	if (lseek(rec->fd, (off_t)off, SEEK_SET) >= 0) {
		rec->pos = off;
		return 0;
	}
	rec->read_err = errno;
	rec->read_what = "read";
	return -EIO;
}

/*
 * Reads a file that may have holes: its data runs (holes.h) are read,
 * the holes between them recorded without a read. Where the file system
 * cannot tell, the rest is read as data. Same returns as backup_read_run.
 */
static int backup_read_sparse(struct backup_reader *r, struct backup_rec *rec)
{
	uint64_t off = 0, start, end, fsize = (uint64_t)rec->st.st_size;
	int rc;

	for (;;) {
		rc = holes_next_run(rec->fd, off, &start, &end);
		if (rc < 0 || (rc == 1 && end <= start)) {
			/* No answer: read on from here. */
			if ((rc = backup_seek(rec, off)) < 0)
				return rc;
			return backup_read_run(r, rec, UINT64_MAX);
		}
		if (rc == 0)    /* the rest is a hole, up to the size stat'ed */
			return fsize > off ? backup_push_hole(rec, fsize - off) : 0;
		if (start > off && (rc = backup_push_hole(rec, start - off)) < 0)
			return rc;
		if ((rc = backup_seek(rec, start)) < 0)
			return rc;
		rc = backup_read_run(r, rec, end - start);
		if (rc <= 0)
			return rc;
		off = end;
	}
}

/*
 * Reads the file's metadata records (meta.h) through its descriptor into
 * the record, with the reader's own meta reader: what cannot be read is
 * noted, for a warning in the file's turn (backup_read_outcome), as the
 * walk thread gives it for other entries.
 */
static int backup_read_meta(struct backup_reader *r, struct backup_rec *rec)
{
	const char *slash = strrchr(rec->path, '/');

	if (meta_read(r->meta, &r->ext, DD_ENTRY_FILE, rec->fd, -1,
		      slash ? slash + 1 : rec->path, &rec->st) < 0) {
		rec->meta_failed = true;
		rec->meta_errmsg = strdup(dd_error_last());
		dd_error_clear();
		/* What was read is recorded, but the next backup must not
		 * take it as the file's whole metadata from this entry:
		 * not to be trusted, as a racily clean one */
		if (rec->e.ctime_sec == rec->st.st_ctim.tv_sec)
			rec->e.ctime_sec--;
	}
	rec->e.ext = r->ext.len ? r->ext.data : NULL;
	rec->e.ext_len = (uint32_t)r->ext.len;
	return backup_rec_keep_ext(rec);
}

/* Reads the record's file (its metadata, then its data: read, cut,
 * hashed) and closes it; how it went is left in the record for
 * backup_emit. Safe on any reader thread. */
void backup_read_file(struct backup_reader *r, struct backup_rec *rec)
{
	int rc = backup_read_meta(r, rec);

	if (rc == 0 && holes_maybe(&rec->st))
		rc = backup_read_sparse(r, rec);
	else if (rc == 0)
		rc = backup_read_run(r, rec, UINT64_MAX);
	if (rc < 0 && !rec->read_err) {
		rec->rc = rc;
		rec->errmsg = strdup(dd_error_last());
		dd_error_clear();
	} else if (!rec->read_err) {
		rec->changed = backup_changed(rec->fd, &rec->st);
	}
	close(rec->fd);
	rec->fd = -1;
}

static void *backup_reader_main(void *arg)
{
	struct backup_reader *r = arg;
	void *item;
	uint64_t seq;

	while (reorder_take(r->b->ring, &item, &seq) == 1) {
		backup_read_file(r, item);
		reorder_done(r->b->ring, seq);
	}
	/* A failure is the queue's, which the flush reports. */
	backup_rwin_wait(r, 0);
	backup_rwin_wait(r, 1);
	return NULL;
}

static int backup_reader_init(struct backup_reader *r, struct backup *b)
{
	int rc;

	r->b = b;
	r->rcap = b->chunker.params.max_size + b->read_block;
	dd_buf_init(&r->ext, DD_CATALOG_EXT_MAX);
	if ((rc = meta_reader_new(&r->meta)) < 0)
		return rc;
	if (!(r->w[0].buf = malloc(r->rcap)))
		return dd_error_set(-ENOMEM, "out of memory");
	return 0;
}

/* `n` threads that help the readers hash a large file's chunks. */
static int backup_helpers_start(struct backup *b, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (!(b->helpers = calloc(n, sizeof(*b->helpers))))
		return dd_error_set(-ENOMEM, "out of memory");
	for (; b->nhelpers < n; b->nhelpers++)
		if ((rc = pthread_create(&b->helpers[b->nhelpers], NULL,
					 backup_helper_main, b)) != 0)
			return dd_error_set(-rc, "cannot start a hashing thread: %s",
					    strerror(rc));
	return 0;
}

static void backup_helpers_stop(struct backup *b)
{
	pthread_mutex_lock(&b->h_mu);
	b->h_stop = true;
	pthread_cond_broadcast(&b->h_work_cv);
	pthread_mutex_unlock(&b->h_mu);
	for (size_t i = 0; i < b->nhelpers; i++)
		pthread_join(b->helpers[i], NULL);
	free(b->helpers);
	b->helpers = NULL;
	b->nhelpers = 0;
}

/*
 * Starts the readers: `threads` of them, or none with one thread (the
 * walk thread then reads each file itself). Each holds a read window of
 * max_size plus a block that shrinks as threads are added, so the windows
 * together stay near 8 MiB beyond the max_size ones.
 */
int backup_readers_start(struct backup *b, unsigned threads)
{
	size_t blk = BACKUP_READ_BLOCK / (threads ? threads : 1);
	int rc;

	if (blk < b->chunker.params.max_size)
		blk = b->chunker.params.max_size;
	b->read_block = blk;
	if (!(b->inline_reader = calloc(1, sizeof(*b->inline_reader))))
		return dd_error_set(-ENOMEM, "out of memory");
	if (threads <= 1)
		return backup_reader_init(b->inline_reader, b);
	if (!(b->readers = calloc(threads, sizeof(*b->readers))))
		return dd_error_set(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < threads; i++) {
		struct backup_reader *r = &b->readers[i];

		if ((rc = backup_reader_init(r, b)) < 0)
			return rc;
		b->nreaders++;
		if ((rc = pthread_create(&r->thread, NULL, backup_reader_main,
					 r)) != 0)
			return dd_error_set(-rc, "cannot start a reading thread: %s",
					    strerror(rc));
		r->started = true;
	}
	return backup_helpers_start(b, threads - 1);
}

/* Frees a reader's buffers once the upload queue is done with them (a
 * failure is the queue's, which its flush reports). */
static void backup_reader_release(struct backup_reader *r)
{
	for (unsigned i = 0; i < 2; i++) {
		if (r->b && r->b->uq)
			backup_rwin_wait(r, i);
		free(r->w[i].buf);
		free(r->w[i].up);
	}
	free(r->cuts);
	meta_reader_free(r->meta);
	dd_buf_release(&r->ext);
}

/* Stops and joins the readers and frees what the ring still holds. */
void backup_readers_stop(struct backup *b)
{
	void *item;

	if (b->ring)
		reorder_stop(b->ring);
	for (size_t i = 0; i < b->nreaders; i++)
		if (b->readers[i].started)
			pthread_join(b->readers[i].thread, NULL);
	backup_helpers_stop(b);
	for (size_t i = 0; i < b->nreaders; i++)
		backup_reader_release(&b->readers[i]);
	free(b->readers);
	b->readers = NULL;
	b->nreaders = 0;
	if (b->inline_reader)
		backup_reader_release(b->inline_reader);
	free(b->inline_reader);
	b->inline_reader = NULL;
	while (b->ring && reorder_pop(b->ring, REORDER_ANY, &item) == 1)
		backup_rec_free(item);
	reorder_free(b->ring);
	b->ring = NULL;
}
