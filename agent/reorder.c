/*
 * reorder.c - the ring of reorder.h: a slot per sequence number modulo
 * the capacity, one mutex, a condition for the workers and one for the
 * owner.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "util.h"
#include "reorder.h"

/* Queued items that wake a sleeping worker: one wake-up (two futex calls
 * and a context switch) per item cost more than reading a small file. */
#define REORDER_WAKE_BATCH 8u

enum reorder_state {
	REORDER_QUEUED = 1,    /* waits for a worker */
	REORDER_TAKEN,         /* a worker has it */
	REORDER_DONE,          /* the owner may pop it */
};

struct reorder_slot {
	void *item;
	enum reorder_state state;
};

struct reorder {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;      /* an item was queued, or stop */
	pthread_cond_t done_cv;      /* an item is done */
	struct reorder_slot *slots;
	size_t cap;
	uint64_t head;               /* oldest held item */
	uint64_t tail;               /* the next push */
	uint64_t next;               /* no item before it is queued */
	uint64_t done_to;            /* every item before it is done */
	uint64_t want;               /* the owner sleeps until done_to >= want */
	size_t nqueued;              /* items queued, not taken */
	size_t wake_batch;           /* wake workers at this many queued */
	bool stop;
};

int reorder_new(struct reorder **out, size_t cap)
{
	struct reorder *r;

	assert(cap >= 1);
	*out = NULL;
	if (!(r = calloc(1, sizeof(*r))) ||
	    !(r->slots = calloc(cap, sizeof(*r->slots)))) {
		free(r);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	r->cap = cap;
	r->wake_batch = cap / 2 < REORDER_WAKE_BATCH ? (cap + 1) / 2 :
		REORDER_WAKE_BATCH;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->work_cv, NULL);
	pthread_cond_init(&r->done_cv, NULL);
	*out = r;
	return 0;
}

void reorder_free(struct reorder *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->work_cv);
	pthread_cond_destroy(&r->done_cv);
	free(r->slots);
	free(r);
}

static struct reorder_slot *reorder_slot(struct reorder *r, uint64_t seq)
{
	return &r->slots[seq % r->cap];
}

bool reorder_full(struct reorder *r)
{
	return reorder_held(r) >= r->cap;
}

size_t reorder_held(struct reorder *r)
{
	size_t n;

	pthread_mutex_lock(&r->mu);
	n = (size_t)(r->tail - r->head);
	pthread_mutex_unlock(&r->mu);
	return n;
}

uint64_t reorder_push(struct reorder *r, void *item, bool needs_work)
{
	struct reorder_slot *s;
	uint64_t seq;

	pthread_mutex_lock(&r->mu);
	assert(r->tail - r->head < r->cap);
	seq = r->tail++;
	s = reorder_slot(r, seq);
	s->item = item;
	s->state = needs_work ? REORDER_QUEUED : REORDER_DONE;
	if (needs_work && ++r->nqueued >= r->wake_batch)
		pthread_cond_signal(&r->work_cv);
	pthread_mutex_unlock(&r->mu);
	return seq;
}

void reorder_kick(struct reorder *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->nqueued > 0)
		pthread_cond_broadcast(&r->work_cv);
	pthread_mutex_unlock(&r->mu);
}

int reorder_pop(struct reorder *r, enum reorder_wait how, void **item)
{
	struct reorder_slot *s;
	int got = 0;

	pthread_mutex_lock(&r->mu);
	while (r->head < r->tail) {
		s = reorder_slot(r, r->head);
		if (s->state == REORDER_DONE || how == REORDER_ANY) {
			*item = s->item;
			s->item = NULL;
			s->state = 0;
			r->head++;
			got = 1;
			break;
		}
		if (how == REORDER_NOWAIT)
			break;
		/* Items short of a wake batch must not wait for more. */
		if (r->nqueued > 0)
			pthread_cond_broadcast(&r->work_cv);
		pthread_cond_wait(&r->done_cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return got;
}

/* Moves r->done_to past the items done from the head on. */
static void reorder_advance_done(struct reorder *r)
{
	if (r->done_to < r->head)
		r->done_to = r->head;
	while (r->done_to < r->tail &&
	       reorder_slot(r, r->done_to)->state == REORDER_DONE)
		r->done_to++;
}

void reorder_wait_done(struct reorder *r, size_t n)
{
	pthread_mutex_lock(&r->mu);
	if (n > r->tail - r->head)
		n = (size_t)(r->tail - r->head);
	r->want = r->head + n;
	for (;;) {
		reorder_advance_done(r);
		if (r->done_to >= r->want)
			break;
		/* Items short of a wake batch must not wait for more. */
		if (r->nqueued > 0)
			pthread_cond_broadcast(&r->work_cv);
		pthread_cond_wait(&r->done_cv, &r->mu);
	}
	r->want = 0;
	pthread_mutex_unlock(&r->mu);
}

/* Moves r->next to the oldest queued item; whether there is one. */
static bool reorder_find_queued(struct reorder *r)
{
	if (r->next < r->head)
		r->next = r->head;
	while (r->next < r->tail &&
	       reorder_slot(r, r->next)->state != REORDER_QUEUED)
		r->next++;
	return r->next < r->tail;
}

int reorder_take(struct reorder *r, void **item, uint64_t *seq)
{
	int got = 0;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		if (r->stop)
			break;
		if (reorder_find_queued(r)) {
			struct reorder_slot *s = reorder_slot(r, r->next);

			s->state = REORDER_TAKEN;
			r->nqueued--;
			*item = s->item;
			*seq = r->next++;
			got = 1;
			break;
		}
		pthread_cond_wait(&r->work_cv, &r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return got;
}

void reorder_done(struct reorder *r, uint64_t seq)
{
	pthread_mutex_lock(&r->mu);
	assert(seq >= r->head && seq < r->tail);
	assert(reorder_slot(r, seq)->state == REORDER_TAKEN);
	reorder_slot(r, seq)->state = REORDER_DONE;
	if (r->want > 0) {
		/* The owner waits for many: woken once, when all are done. */
		reorder_advance_done(r);
		if (r->done_to >= r->want)
			pthread_cond_signal(&r->done_cv);
	} else if (seq == r->head) {
		pthread_cond_signal(&r->done_cv);
	}
	pthread_mutex_unlock(&r->mu);
}

void reorder_stop(struct reorder *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->work_cv);
	pthread_mutex_unlock(&r->mu);
}
