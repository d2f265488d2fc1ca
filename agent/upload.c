/*
 * upload.c - batching, missing-chunk queries, compression and bundle
 * upload of the chunks a backup produces, on worker threads.
 *
 * Batches cycle between three places: the one the caller fills (`cur`),
 * the pending list (full, waiting for a worker), and the free list. There
 * are workers + 1 of them, allocated once.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "bundle.h"
#include "chunker.h"
#include "compress.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "idset.h"
#include "key.h"
#include "upload.h"

struct upload_item {
	struct dd_id id;
	size_t off;            /* into batch->plain */
	uint32_t len;
	bool asked;            /* the server said it lacks it: not re-asked */
};

struct upload_batch {
	struct dd_buf plain;
	struct upload_item *items;
	size_t nitems;
	size_t copying;        /* adders copying into it now (q->mu) */
	bool full;             /* taken off `cur`: submit once copied */
	bool unsealed;         /* never sealed (upload_queue_plain) */
	struct upload_batch *next;
};

struct upload_worker {
	struct upload_queue *q;
	pthread_t thread;
	bool started;
	struct client *client;
	ZSTD_CCtx *cctx;
	struct dd_buf query;         /* ids for /chunks/missing */
	struct dd_buf bitmap;
	struct dd_buf reply;
	struct dd_buf stored;        /* one compressed chunk */
	struct dd_buf sealed;        /* and sealed (key.h) */
	struct dd_buf bundle;
	uint32_t bundle_count;
	struct upload_stats batch;   /* counters of the batch in progress */
	struct upload_stats stats;   /* totals, guarded by q->mu */
};

/* A connection of its own for upload_queue_add_window's questions. */
struct upload_asker {
	struct client *client;
	struct dd_buf query;
	struct dd_buf bitmap;
	size_t *fresh;               /* indices of the window's new chunks */
	size_t fresh_alloc;
	struct upload_asker *next;
};

struct upload_queue {
	struct upload_limits lim;

	/* Everything below is guarded by mu; adders copy chunk bytes into
	 * the room they took in `cur` without holding it. */
	pthread_mutex_t mu;
	struct idset *seen;
	struct upload_batch *cur;    /* NULL while a full one is handed over */
	uint64_t chunks_repeat;
	struct upload_stats asked;   /* answers to the askers' questions */
	uint64_t bytes_copied;       /* chunk bytes copied into batches */
	struct upload_asker *askers; /* free ones */
	pthread_cond_t work_cv;      /* a batch is pending, or stop */
	pthread_cond_t done_cv;      /* a batch came back */
	pthread_cond_t cur_cv;       /* `cur` is set again, or copies ended */
	struct upload_batch *pending, *pending_tail;
	struct upload_batch *free_list;
	size_t busy;                 /* pending or being processed */
	bool plain;                  /* upload_queue_plain was called */
	bool stop;
	int err;
	char errmsg[1024];

	struct upload_batch *batches;
	size_t nbatches;
	struct upload_worker *workers;
	size_t nworkers;
	struct upload_asker *asker_mem;
	size_t naskers;

	/* Windows started and not yet taken by an asker thread; `windows`
	 * counts those not yet queued (taken ones too). */
	struct upload_window *win_head, *win_tail;
	size_t windows;
	pthread_cond_t win_cv;       /* a window was started, or stop */
	pthread_cond_t win_done_cv;  /* a window is queued */
	pthread_t *win_threads;
	size_t nwin_threads;
};

static int upload_window_threads_start(struct upload_queue *q);

/* ---- the worker's side ---- */

static void upload_stats_add(struct upload_stats *to,
			     const struct upload_stats *s)
{
	to->chunks_new += s->chunks_new;
	to->bytes_new += s->bytes_new;
	to->bytes_sent += s->bytes_sent;
	to->chunks_known += s->chunks_known;
	to->chunks_repeat += s->chunks_repeat;
	to->requests += s->requests;
	to->bytes_copied += s->bytes_copied;
}

/*
 * Asks the server which of the `n` ids in `query` it lacks; the answer is
 * a bitmap of n bits in `bitmap`. `sealed`: the chunks are sealed
 * (routes_chunks.c tells sealed chunks present to a sealing agent only;
 * a plain chunk under a keyed id cannot exist).
 */
static int upload_query(struct client *c, bool sealed,
			const struct dd_buf *query, struct dd_buf *bitmap,
			size_t n)
{
	int rc;

	rc = client_request(c, "POST", sealed ?
			    DD_API_PREFIX "/chunks/missing?sealed=1" :
			    DD_API_PREFIX "/chunks/missing",
			    "application/octet-stream", query->data,
			    query->len, bitmap);
	if (rc < 0)
		return agent_error_wrap(rc, "cannot query missing chunks");
	if (bitmap->len != (n + 7) / 8)
		return dd_error_set(-EBADMSG,
				    "server '%s' answered /chunks/missing with %zu bytes for %zu ids",
				    client_server(c), bitmap->len, n);
	return 0;
}

static bool upload_bit(const struct dd_buf *bitmap, size_t i)
{
	return bitmap->data[i / 8] & (1u << (i % 8));
}

/* Test hook DEDUP_TEST_STOP_AFTER_UPLOAD=1 (docs/OPERATIONS.md): the
 * agent stops itself (SIGSTOP) once, right after its first bundle is
 * stored, so that a test acts while a backup is surely in progress. */
static void upload_test_stop(void)
{
	static int stopped;

	if (dd_test_hook_u64("DEDUP_TEST_STOP_AFTER_UPLOAD", 1, 1, 0) &&
	    !__atomic_exchange_n(&stopped, 1, __ATOMIC_SEQ_CST))
		raise(SIGSTOP);
}

static int upload_send_bundle(struct upload_worker *w)
{
	int rc;

	if (w->bundle_count == 0)
		return 0;
	if ((rc = dd_bundle_finish(&w->bundle)) < 0)
		return agent_error_wrap(rc, "cannot build chunk bundle");
	rc = client_request(w->client, "POST", DD_API_PREFIX "/chunks",
			    "application/octet-stream", w->bundle.data,
			    w->bundle.len, &w->reply);
	w->batch.requests++;
	if (rc < 0)
		return agent_error_wrap(rc, "cannot upload chunks");
	w->bundle_count = 0;
	dd_buf_reset(&w->bundle);
	upload_test_stop();
	return 0;
}

static int upload_add_to_bundle(struct upload_worker *w,
				const struct upload_batch *b,
				const struct upload_item *it)
{
	const struct upload_limits *lim = &w->q->lim;
	const struct dd_buf *out = &w->stored;
	const struct dd_crypt *k = b->unsealed ? NULL : client_crypt(w->client);
	const uint8_t *plain = b->plain.data + it->off;
	size_t room = DD_BUNDLE_RECORD_HEADER_LEN + (size_t)it->len, stored;
	int flags, rc;

	/* A chunk that fits the open bundle even raw is compressed straight
	 * into it (one copy of its bytes fewer). One that might not, or that
	 * is sealed, is compressed aside first, so that a bundle is sent only
	 * when a record's stored bytes really do not fit, as always. */
	if (!k && w->bundle_count > 0 &&
	    w->bundle_count < DD_BUNDLE_MAX_COUNT &&
	    w->bundle.len + room <= lim->bundle_bytes) {
		if ((rc = dd_buf_reserve(&w->bundle, room)) < 0)
			return agent_error_wrap(rc, "cannot build chunk bundle");
		flags = dd_compress_to(w->bundle.data + w->bundle.len +
				       DD_BUNDLE_RECORD_HEADER_LEN, &stored,
				       plain, it->len, lim->level, w->cctx);
		if (flags < 0)
			return agent_error_wrap(flags, "cannot compress chunk");
		rc = dd_bundle_add_in_place(&w->bundle, &it->id,
					    (uint32_t)flags, it->len,
					    (uint32_t)stored);
		if (rc < 0)
			return agent_error_wrap(rc, "cannot build chunk bundle");
		goto added;
	}
	flags = dd_compress(&w->stored, plain, it->len, lim->level, w->cctx);
	if (flags < 0)
		return agent_error_wrap(flags, "cannot compress chunk");
	if (k) {
		flags = key_seal_chunk(k, &w->sealed, &it->id, (uint32_t)flags,
				       it->len, w->stored.data, w->stored.len);
		if (flags < 0)
			return agent_error_wrap(flags, "cannot seal chunk");
		out = &w->sealed;
	}
	if (w->bundle_count > 0 &&
	    (w->bundle.len + DD_BUNDLE_RECORD_HEADER_LEN + out->len >
	     lim->bundle_bytes || w->bundle_count >= DD_BUNDLE_MAX_COUNT) &&
	    (rc = upload_send_bundle(w)) < 0)
		return rc;
	if (w->bundle_count == 0 && (rc = dd_bundle_begin(&w->bundle)) < 0)
		return agent_error_wrap(rc, "cannot build chunk bundle");
	rc = dd_bundle_add(&w->bundle, &it->id, (uint32_t)flags, it->len,
			   out->data, (uint32_t)out->len);
	if (rc < 0)
		return agent_error_wrap(rc, "cannot build chunk bundle");
	stored = out->len;
added:
	w->bundle_count++;
	w->batch.chunks_new++;
	w->batch.bytes_new += it->len;
	w->batch.bytes_sent += stored;
	return 0;
}

/* Asks which chunks of the batch the server lacks (but those an asker
 * was told of already) and sends those. */
static int upload_process(struct upload_worker *w,
			  const struct upload_batch *b)
{
	size_t nq = 0, j = 0;
	int rc;

	dd_buf_reset(&w->query);
	for (size_t i = 0; i < b->nitems; i++) {
		if (b->items[i].asked)
			continue;
		if ((rc = dd_buf_append(&w->query, b->items[i].id.b,
					DD_ID_LEN)) < 0)
			return dd_error_set(rc, "out of memory");
		nq++;
	}
	if (nq > 0) {
		rc = upload_query(w->client,
				  client_crypt(w->client) && !b->unsealed,
				  &w->query, &w->bitmap, nq);
		w->batch.requests++;
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < b->nitems; i++) {
		if (!b->items[i].asked && !upload_bit(&w->bitmap, j++)) {
			w->batch.chunks_known++;
			continue;
		}
		if ((rc = upload_add_to_bundle(w, b, &b->items[i])) < 0)
			return rc;
	}
	return upload_send_bundle(w);
}

static void *upload_worker_main(void *arg)
{
	struct upload_worker *w = arg;
	struct upload_queue *q = w->q;
	struct upload_batch *b;
	int rc;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->stop && !q->pending)
			pthread_cond_wait(&q->work_cv, &q->mu);
		if (q->stop)
			break;
		b = q->pending;
		q->pending = b->next;
		if (!q->pending)
			q->pending_tail = NULL;
		rc = q->err;    /* after a failure, batches are dropped */
		pthread_mutex_unlock(&q->mu);

		memset(&w->batch, 0, sizeof(w->batch));
		if (rc == 0) {
			rc = upload_process(w, b);
			if (rc < 0)
				w->bundle_count = 0;
		}

		pthread_mutex_lock(&q->mu);
		if (rc < 0 && q->err == 0) {
			q->err = rc;
			snprintf(q->errmsg, sizeof(q->errmsg), "%s",
				 dd_error_last());
		}
		upload_stats_add(&w->stats, &w->batch);
		b->nitems = 0;
		b->full = false;
		dd_buf_reset(&b->plain);
		b->next = q->free_list;
		q->free_list = b;
		q->busy--;
		pthread_cond_broadcast(&q->done_cv);
		if (q->err)    /* adders waiting for `cur` must see it */
			pthread_cond_broadcast(&q->cur_cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* ---- the caller's side ---- */

/* Returns the queue's failure, re-recorded on this thread. Call locked. */
static int upload_failed(struct upload_queue *q)
{
	return dd_error_set(q->err, "%s", q->errmsg);
}

/*
 * Hands the full batch `b` (no longer `cur`, every copy into it done) to
 * the workers and makes a free one `cur`, waiting for one if needed.
 * Called and returns with q->mu held.
 */
static int upload_submit_locked(struct upload_queue *q, struct upload_batch *b)
{
	assert(b->copying == 0 && q->cur == NULL);
	if (q->err)
		return upload_failed(q);
	b->next = NULL;
	b->unsealed = q->plain;
	if (q->pending_tail)
		q->pending_tail->next = b;
	else
		q->pending = b;
	q->pending_tail = b;
	q->busy++;
	pthread_cond_signal(&q->work_cv);
	while (!q->free_list && !q->err)
		pthread_cond_wait(&q->done_cv, &q->mu);
	if (q->err) {
		pthread_cond_broadcast(&q->cur_cv);
		return upload_failed(q);
	}
	q->cur = q->free_list;
	q->free_list = q->cur->next;
	pthread_cond_broadcast(&q->cur_cv);
	return 0;
}

/* Waits until `cur` is set (an adder may be handing a full batch over);
 * the queue's failure if it failed. Called with q->mu held. Whoever sets
 * `cur` or q->err broadcasts cur_cv. */
static int upload_wait_cur(struct upload_queue *q)
{
	while (!q->cur && !q->err)
		pthread_cond_wait(&q->cur_cv, &q->mu);
	return q->err ? upload_failed(q) : 0;
}

static void upload_worker_release(struct upload_worker *w)
{
	client_free(w->client);
	ZSTD_freeCCtx(w->cctx);
	dd_buf_release(&w->query);
	dd_buf_release(&w->bitmap);
	dd_buf_release(&w->reply);
	dd_buf_release(&w->stored);
	dd_buf_release(&w->sealed);
	dd_buf_release(&w->bundle);
}

static void upload_asker_release(struct upload_asker *a)
{
	client_free(a->client);
	dd_buf_release(&a->query);
	dd_buf_release(&a->bitmap);
	free(a->fresh);
}

/* The askers, on the free list; each connects on its first question. */
static int upload_askers_init(struct upload_queue *q, const struct settings *s)
{
	int rc;

	if (q->lim.askers == 0)
		return 0;
	if (!(q->asker_mem = calloc(q->lim.askers, sizeof(*q->asker_mem))))
		return dd_error_set(-ENOMEM, "out of memory");
	for (; q->naskers < q->lim.askers; q->naskers++) {
		struct upload_asker *a = &q->asker_mem[q->naskers];

		dd_buf_init(&a->query, 0);
		dd_buf_init(&a->bitmap, 0);
		if ((rc = client_new(&a->client, s)) < 0)
			return rc;
		a->next = q->askers;
		q->askers = a;
	}
	return 0;
}

static int upload_worker_init(struct upload_worker *w, struct upload_queue *q,
			      const struct settings *s)
{
	int rc;

	w->q = q;
	dd_buf_init(&w->query, 0);
	dd_buf_init(&w->bitmap, DD_MAX_IDS_PER_QUERY / 8);
	dd_buf_init(&w->reply, 1024 * 1024);
	dd_buf_init(&w->stored, 0);
	dd_buf_init(&w->sealed, 0);
	dd_buf_init(&w->bundle, 0);
	if ((rc = client_new(&w->client, s)) < 0)
		return rc;
	if (!(w->cctx = ZSTD_createCCtx()))
		return dd_error_set(-ENOMEM, "out of memory");
	/* Reserve once so the big buffers never move or double past need. */
	if ((rc = dd_buf_reserve(&w->bundle, q->lim.bundle_bytes)) < 0 ||
	    (rc = dd_buf_reserve(&w->query, q->lim.batch_ids * DD_ID_LEN)) < 0)
		return dd_error_set(rc, "out of memory");
	return 0;
}

int upload_queue_new(struct upload_queue **out, const struct settings *s,
		     const struct upload_limits *lim)
{
	struct upload_queue *q;
	int rc = -ENOMEM;

	assert(lim->batch_ids > 0 && lim->batch_ids <= DD_MAX_IDS_PER_QUERY);
	assert(lim->workers > 0);
	/* A bundle holds at most one batch: the server refuses more plain
	 * bytes than this per request. */
	assert(lim->batch_bytes + DD_CHUNK_SIZE_LIMIT <= DD_MAX_UPLOAD_PLAIN);
	/* A bundle must hold the largest chunk, stored raw. */
	assert(lim->bundle_bytes >= DD_BUNDLE_HEADER_LEN +
	       DD_BUNDLE_RECORD_HEADER_LEN + DD_CHUNK_SIZE_LIMIT);
	*out = NULL;
	if (!(q = calloc(1, sizeof(*q))))
		return dd_error_set(-ENOMEM, "out of memory");
	q->lim = *lim;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work_cv, NULL);
	pthread_cond_init(&q->done_cv, NULL);
	pthread_cond_init(&q->cur_cv, NULL);
	pthread_cond_init(&q->win_cv, NULL);
	pthread_cond_init(&q->win_done_cv, NULL);
	q->nbatches = lim->workers + 1;
	q->nworkers = lim->workers;
	if ((rc = idset_new(&q->seen)) < 0)
		goto fail;
	rc = -ENOMEM;
	if (!(q->batches = calloc(q->nbatches, sizeof(*q->batches))) ||
	    !(q->workers = calloc(q->nworkers, sizeof(*q->workers))))
		goto fail_nomem;
	for (size_t i = 0; i < q->nbatches; i++) {
		struct upload_batch *b = &q->batches[i];

		dd_buf_init(&b->plain, 0);
		if (!(b->items = calloc(lim->batch_ids, sizeof(*b->items))) ||
		    dd_buf_reserve(&b->plain, lim->batch_bytes +
				   DD_CHUNK_SIZE_LIMIT) < 0)
			goto fail_nomem;
		if (i == 0) {
			q->cur = b;
		} else {
			b->next = q->free_list;
			q->free_list = b;
		}
	}
	for (size_t i = 0; i < q->nworkers; i++)
		if ((rc = upload_worker_init(&q->workers[i], q, s)) < 0)
			goto fail;
	if ((rc = upload_askers_init(q, s)) < 0)
		goto fail;
	for (size_t i = 0; i < q->nworkers; i++) {
		if ((rc = pthread_create(&q->workers[i].thread, NULL,
					 upload_worker_main, &q->workers[i]))) {
			rc = dd_error_set(-rc, "cannot start upload thread: %s",
					  strerror(rc));
			goto fail;
		}
		q->workers[i].started = true;
	}
	if ((rc = upload_window_threads_start(q)) < 0)
		goto fail;
	*out = q;
	return 0;
fail_nomem:
	rc = dd_error_set(-ENOMEM, "out of memory");
fail:
	upload_queue_free(q);
	return rc;
}

void upload_queue_free(struct upload_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	/* Every window started was waited for: the asker threads idle. */
	assert(q->windows == 0);
	q->stop = true;
	pthread_cond_broadcast(&q->work_cv);
	pthread_cond_broadcast(&q->win_cv);
	pthread_mutex_unlock(&q->mu);
	for (size_t i = 0; i < q->nwin_threads; i++)
		pthread_join(q->win_threads[i], NULL);
	free(q->win_threads);
	for (size_t i = 0; q->workers && i < q->nworkers; i++) {
		if (q->workers[i].started)
			pthread_join(q->workers[i].thread, NULL);
		upload_worker_release(&q->workers[i]);
	}
	for (size_t i = 0; q->batches && i < q->nbatches; i++) {
		dd_buf_release(&q->batches[i].plain);
		free(q->batches[i].items);
	}
	for (size_t i = 0; i < q->naskers; i++)
		upload_asker_release(&q->asker_mem[i]);
	free(q->asker_mem);
	free(q->workers);
	free(q->batches);
	idset_free(q->seen);
	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->done_cv);
	pthread_cond_destroy(&q->cur_cv);
	pthread_cond_destroy(&q->win_cv);
	pthread_cond_destroy(&q->win_done_cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/*
 * Takes room for the chunk in the batch being filled, copies its bytes
 * there and hands the batch on once it is full and every copy into it is
 * done. `asked`: the server said it lacks the chunk (not asked again).
 * Called with q->mu held, returns with it held; the copy runs unlocked,
 * so readers fill a batch side by side. The room was reserved when the
 * batch was made (batch_bytes plus the largest chunk): it never moves.
 */
static int upload_put_locked(struct upload_queue *q, const struct dd_id *id,
			     const void *data, size_t len, bool asked)
{
	struct upload_batch *b;
	struct upload_item *it;
	size_t off;
	int rc;

	if ((rc = upload_wait_cur(q)) < 0)
		return rc;
	b = q->cur;
	off = b->plain.len;
	assert(off + len <= b->plain.alloc);
	b->plain.len += len;
	it = &b->items[b->nitems++];
	it->id = *id;
	it->off = off;
	it->len = (uint32_t)len;
	it->asked = asked;
	b->copying++;
	q->bytes_copied += len;
	if (b->nitems >= q->lim.batch_ids || b->plain.len >= q->lim.batch_bytes) {
		b->full = true;
		q->cur = NULL;
	}
	pthread_mutex_unlock(&q->mu);

	memcpy(b->plain.data + off, data, len);

	pthread_mutex_lock(&q->mu);
	if (--b->copying > 0)
		return 0;
	if (b->full)
		return upload_submit_locked(q, b);
	pthread_cond_broadcast(&q->cur_cv);
	return 0;
}

/* Whether the chunk is new to this run (and now seen): 1 new, 0 seen
 * before (counted), negative out of memory. Call locked. */
static int upload_first_seen(struct upload_queue *q, const struct dd_id *id)
{
	int rc = idset_insert(q->seen, id, 0, NULL);

	if (rc == 0)
		q->chunks_repeat++;
	return rc;
}

int upload_queue_add(struct upload_queue *q, const struct dd_id *id,
		     const void *data, size_t len)
{
	int rc;

	assert(len > 0 && len <= DD_CHUNK_SIZE_LIMIT);
	pthread_mutex_lock(&q->mu);
	rc = q->err ? upload_failed(q) : upload_first_seen(q, id);
	if (rc > 0)
		rc = upload_put_locked(q, id, data, len, false);
	pthread_mutex_unlock(&q->mu);
	return rc < 0 ? rc : 0;
}

/* Room for `n` indices in the asker's list. */
static int upload_asker_grow(struct upload_asker *a, size_t n)
{
	size_t *p;

	if (n <= a->fresh_alloc)
		return 0;
	if (!(p = realloc(a->fresh, n * sizeof(*p))))
		return dd_error_set(-ENOMEM, "out of memory");
	a->fresh = p;
	a->fresh_alloc = n;
	return 0;
}

/* Marks the window's chunks seen and lists the new ones in a->fresh,
 * *nfresh of them. Call locked. */
static int upload_window_fresh(struct upload_queue *q, struct upload_asker *a,
			       const struct upload_chunk *c, size_t n,
			       size_t *nfresh)
{
	int rc;

	*nfresh = 0;
	if ((rc = upload_asker_grow(a, n)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		assert(c[i].len > 0 && c[i].len <= DD_CHUNK_SIZE_LIMIT);
		if ((rc = upload_first_seen(q, &c[i].id)) < 0)
			return rc;
		if (rc == 0)
			continue;
		a->fresh[(*nfresh)++] = i;
	}
	return 0;
}

/* Asks the server which of the window's new chunks it lacks, on the
 * asker's own connection (unlocked): the answer is in a->bitmap. */
static int upload_window_ask(struct upload_queue *q, struct upload_asker *a,
			     const struct upload_chunk *c, size_t nfresh,
			     bool sealed)
{
	int rc;

	dd_buf_reset(&a->query);
	for (size_t j = 0; j < nfresh; j++)
		if ((rc = dd_buf_append(&a->query, c[a->fresh[j]].id.b,
					DD_ID_LEN)) < 0)
			return dd_error_set(rc, "out of memory");
	return upload_query(a->client, sealed, &a->query, &a->bitmap, nfresh);
}

/* Records the queue's first failure (the workers' rule): later calls
 * return it. Call locked. */
static int upload_fail_locked(struct upload_queue *q, int rc)
{
	if (q->err == 0) {
		q->err = rc;
		snprintf(q->errmsg, sizeof(q->errmsg), "%s", dd_error_last());
		pthread_cond_broadcast(&q->cur_cv);
	}
	return upload_failed(q);
}

/*
 * Queues at most batch_ids chunks of a window (one question) with the
 * asker `a`, taken: with `ask`, the new ones are asked about first and
 * only those the server lacks are copied; without, they are copied at
 * once, as upload_queue_add does. Called and returns with q->mu held.
 */
static int upload_window_slice(struct upload_queue *q, struct upload_asker *a,
			       const struct upload_chunk *c, size_t n, bool ask)
{
	size_t nfresh = 0;
	bool sealed = client_crypt(a->client) && !q->plain;
	int rc;

	assert(n <= q->lim.batch_ids);
	rc = q->err ? upload_failed(q) :
		upload_window_fresh(q, a, c, n, &nfresh);
	ask = ask && rc == 0 && nfresh > 0;
	if (ask) {
		pthread_mutex_unlock(&q->mu);
		rc = upload_window_ask(q, a, c, nfresh, sealed);
		pthread_mutex_lock(&q->mu);
		if (rc < 0)
			rc = upload_fail_locked(q, rc);
		else
			q->asked.requests++;
	}
	for (size_t j = 0; rc >= 0 && j < nfresh; j++) {
		const struct upload_chunk *k = &c[a->fresh[j]];

		if (ask && !upload_bit(&a->bitmap, j))
			q->asked.chunks_known++;
		else
			rc = upload_put_locked(q, &k->id, k->data, k->len, ask);
	}
	return rc < 0 ? rc : 0;
}

/* A window of more chunks than one question may name (the server's
 * max_ids_per_query) is asked about in slices. A window not to ask about
 * takes no asker (the asker threads must find theirs free); without a
 * free asker the window is copied. Called and returns with q->mu held. */
static int upload_window_locked(struct upload_queue *q,
				const struct upload_chunk *c, size_t n,
				bool ask)
{
	size_t step = q->lim.batch_ids;
	struct upload_asker *a;
	int rc = 0;

	if (!ask || !(a = q->askers)) {
		pthread_mutex_unlock(&q->mu);
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = upload_queue_add(q, &c[i].id, c[i].data,
					      c[i].len);
		pthread_mutex_lock(&q->mu);
		return rc;
	}
	q->askers = a->next;
	for (size_t off = 0; rc == 0 && off < n; off += step)
		rc = upload_window_slice(q, a, c + off,
					 n - off < step ? n - off : step, ask);
	a->next = q->askers;
	q->askers = a;
	return rc;
}

int upload_queue_add_window(struct upload_queue *q,
			    const struct upload_chunk *c, size_t n, bool ask)
{
	int rc = 0;

	if (!ask) {
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = upload_queue_add(q, &c[i].id, c[i].data,
					      c[i].len);
		return rc;
	}
	pthread_mutex_lock(&q->mu);
	rc = upload_window_locked(q, c, n, ask);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

/* ---- windows queued on asker threads ---- */

/* An asker thread: queues the windows started, in order, until stopped
 * (upload_queue_free, once every window was waited for). */
static void *upload_window_main(void *arg)
{
	struct upload_queue *q = arg;
	struct upload_window *w;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->stop && !q->win_head)
			pthread_cond_wait(&q->win_cv, &q->mu);
		if (!(w = q->win_head))
			break;
		if (!(q->win_head = w->next))
			q->win_tail = NULL;
		w->rc = upload_window_locked(q, w->c, w->n, w->ask);
		/* A failure of its own (out of memory) fails the queue: its
		 * chunks may be marked seen and not queued, and the flush
		 * reports only the queue's failure. */
		if (w->rc < 0)
			upload_fail_locked(q, w->rc);
		w->busy = false;
		q->windows--;
		pthread_cond_broadcast(&q->win_done_cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* One asker thread for each asker's connection. */
static int upload_window_threads_start(struct upload_queue *q)
{
	int rc;

	if (q->naskers == 0)
		return 0;
	if (!(q->win_threads = calloc(q->naskers, sizeof(*q->win_threads))))
		return dd_error_set(-ENOMEM, "out of memory");
	for (; q->nwin_threads < q->naskers; q->nwin_threads++)
		if ((rc = pthread_create(&q->win_threads[q->nwin_threads],
					 NULL, upload_window_main, q)))
			return dd_error_set(-rc, "cannot start upload thread: %s",
					    strerror(rc));
	return 0;
}

int upload_queue_window_start(struct upload_queue *q, struct upload_window *w,
			      const struct upload_chunk *c, size_t n, bool ask)
{
	int rc;

	assert(!w->busy);
	if (q->nwin_threads == 0) {
		w->rc = upload_queue_add_window(q, c, n, ask);
		return w->rc;
	}
	pthread_mutex_lock(&q->mu);
	if (q->err) {
		rc = upload_failed(q);
		pthread_mutex_unlock(&q->mu);
		return rc;
	}
	w->c = c;
	w->n = n;
	w->ask = ask;
	w->busy = true;
	w->rc = 0;
	w->next = NULL;
	if (q->win_tail)
		q->win_tail->next = w;
	else
		q->win_head = w;
	q->win_tail = w;
	q->windows++;
	pthread_cond_signal(&q->win_cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

int upload_queue_window_wait(struct upload_queue *q, struct upload_window *w)
{
	int rc;

	pthread_mutex_lock(&q->mu);
	while (w->busy)
		pthread_cond_wait(&q->win_done_cv, &q->mu);
	rc = w->rc < 0 ? (q->err ? upload_failed(q) : w->rc) : 0;
	w->rc = 0;
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int upload_queue_flush(struct upload_queue *q)
{
	struct upload_batch *b;
	int rc;

	pthread_mutex_lock(&q->mu);
	while (q->windows > 0)
		pthread_cond_wait(&q->win_done_cv, &q->mu);
	if ((rc = upload_wait_cur(q)) < 0)
		goto out;
	b = q->cur;
	while (b->copying > 0)
		pthread_cond_wait(&q->cur_cv, &q->mu);
	/* An adder may have filled and handed it over meanwhile. */
	if (q->cur == b && b->nitems > 0) {
		q->cur = NULL;
		if ((rc = upload_submit_locked(q, b)) < 0)
			goto out;
	}
	while (q->busy > 0)
		pthread_cond_wait(&q->done_cv, &q->mu);
	rc = q->err ? upload_failed(q) : 0;
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

void upload_queue_stats(struct upload_queue *q, struct upload_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->nworkers; i++)
		upload_stats_add(out, &q->workers[i].stats);
	upload_stats_add(out, &q->asked);
	out->chunks_repeat = q->chunks_repeat;
	out->bytes_copied = q->bytes_copied;
	pthread_mutex_unlock(&q->mu);
}

void upload_queue_plain(struct upload_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->plain = true;
	pthread_mutex_unlock(&q->mu);
}
