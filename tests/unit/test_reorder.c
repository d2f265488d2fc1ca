/*
 * test_reorder.c - agent/reorder.c: items come back in push order however
 * the workers finish them, items pushed done pass through, the capacity
 * holds, a stop wakes the workers, REORDER_ANY empties the ring after
 * a stop, and reorder_wait_done() returns only once the oldest items it
 * waits for are all done.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "reorder.h"
#include "unit.h"

/* Pushes and pops without workers: done items, NOWAIT on a queued head. */
static void test_order_without_workers(void)
{
	struct reorder *r;
	int a = 1, b = 2, c = 3;
	void *item = NULL;
	uint64_t seq;

	CHECK_EQ(reorder_new(&r, 3), 0);
	CHECK(!reorder_full(r));
	CHECK_EQ(reorder_push(r, &a, false), 0);
	CHECK_EQ(reorder_push(r, &b, true), 1);
	CHECK_EQ(reorder_push(r, &c, false), 2);
	CHECK(reorder_full(r));
	CHECK_EQ(reorder_held(r), 3);
	CHECK_EQ(reorder_pop(r, REORDER_NOWAIT, &item), 1);
	CHECK(item == &a);
	/* b is not done: c, done, must not overtake it. */
	CHECK_EQ(reorder_pop(r, REORDER_NOWAIT, &item), 0);
	CHECK_EQ(reorder_take(r, &item, &seq), 1);
	CHECK(item == &b);
	CHECK_EQ(seq, 1);
	CHECK_EQ(reorder_pop(r, REORDER_NOWAIT, &item), 0);
	reorder_done(r, seq);
	CHECK_EQ(reorder_pop(r, REORDER_NOWAIT, &item), 1);
	CHECK(item == &b);
	CHECK_EQ(reorder_pop(r, REORDER_WAIT, &item), 1);
	CHECK(item == &c);
	CHECK_EQ(reorder_pop(r, REORDER_WAIT, &item), 0);   /* empty */
	CHECK_EQ(reorder_held(r), 0);
	reorder_free(r);
	reorder_free(NULL);
}

struct job {
	uint64_t n;          /* the work: spin this many rounds */
	uint64_t out;
	int worked;
};

static struct reorder *ring;

static void *worker(void *arg)
{
	void *item;
	uint64_t seq;

	(void)arg;
	while (reorder_take(ring, &item, &seq) == 1) {
		struct job *j = item;
		uint64_t x = j->n;

		for (uint64_t i = 0; i < j->n; i++)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
		j->out = x;
		j->worked++;
		reorder_done(ring, seq);
	}
	return NULL;
}

/* The ring is empty: stops it, joins the `n` workers, frees it. */
static void ring_finish(pthread_t *t, int n)
{
	CHECK_EQ(reorder_held(ring), 0);
	reorder_stop(ring);
	for (int i = 0; i < n; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	reorder_free(ring);
}

/* 4 workers, jobs of very different lengths (later ones often finish
 * first), a ring of 8: every job comes back once, in order, worked once
 * when it needed work. */
static void test_order_with_workers(void)
{
	enum { NJOBS = 5000, NWORKERS = 4 };
	struct job *jobs = calloc(NJOBS, sizeof(*jobs));
	pthread_t t[NWORKERS];
	size_t next = 0, popped = 0, max_held = 0;
	int in_order = 1, worked_ok = 1;
	void *item;

	CHECK(jobs != NULL);
	CHECK_EQ(reorder_new(&ring, 8), 0);
	for (int i = 0; i < NWORKERS; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, worker, NULL), 0);
	while (popped < NJOBS) {
		if (next < NJOBS && !reorder_full(ring)) {
			jobs[next].n = (next % 7 == 0) ? 20000 : next % 13;
			reorder_push(ring, &jobs[next], next % 5 != 0);
			next++;
			if (reorder_held(ring) > max_held)
				max_held = reorder_held(ring);
			continue;
		}
		CHECK_EQ(reorder_pop(ring, REORDER_WAIT, &item), 1);
		if (item != &jobs[popped])
			in_order = 0;
		if (((struct job *)item)->worked != (popped % 5 != 0))
			worked_ok = 0;
		popped++;
	}
	CHECK(in_order);
	CHECK(worked_ok);
	CHECK(max_held <= 8);
	ring_finish(t, NWORKERS);
	free(jobs);
}

/* The owner waits for batches: after reorder_wait_done(16) the 16 oldest
 * items (every held one, when fewer) pop without waiting, in order; an
 * empty ring returns at once. */
static void test_wait_done_batches(void)
{
	enum { NJOBS = 3000, NWORKERS = 2, CAP = 64, BATCH = 16 };
	struct job *jobs = calloc(NJOBS, sizeof(*jobs));
	pthread_t t[NWORKERS];
	size_t next = 0, popped = 0, waits = 0, short_batches = 0;
	int in_order = 1;
	void *item;

	CHECK(jobs != NULL);
	CHECK_EQ(reorder_new(&ring, CAP), 0);
	reorder_wait_done(ring, BATCH);         /* empty: returns at once */
	for (int i = 0; i < NWORKERS; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, worker, NULL), 0);
	while (popped < NJOBS) {
		size_t held, want, got = 0;

		while (next < NJOBS && !reorder_full(ring)) {
			jobs[next].n = (next % 11 == 0) ? 30000 : next % 17;
			reorder_push(ring, &jobs[next], next % 3 != 0);
			next++;
		}
		held = reorder_held(ring);
		want = held < BATCH ? held : BATCH;
		reorder_wait_done(ring, BATCH);
		waits++;
		while (reorder_pop(ring, REORDER_NOWAIT, &item) == 1) {
			if (item != &jobs[popped])
				in_order = 0;
			popped++;
			got++;
		}
		if (got < want)
			short_batches++;
	}
	CHECK(in_order);
	CHECK_EQ(short_batches, 0);
	CHECK(waits <= NJOBS / BATCH + 1);
	ring_finish(t, NWORKERS);
	free(jobs);
}

/* A stop wakes waiting workers; the items never taken are still held and
 * REORDER_ANY gives them back, in order. */
static void test_stop_and_drop(void)
{
	pthread_t t;
	int a = 1, b = 2;
	void *item;

	CHECK_EQ(reorder_new(&ring, 4), 0);
	CHECK_EQ(pthread_create(&t, NULL, worker, NULL), 0);
	reorder_stop(ring);
	CHECK_EQ(pthread_join(t, NULL), 0);
	reorder_push(ring, &a, true);
	reorder_push(ring, &b, true);
	CHECK_EQ(reorder_pop(ring, REORDER_NOWAIT, &item), 0);
	CHECK_EQ(reorder_pop(ring, REORDER_ANY, &item), 1);
	CHECK(item == &a);
	CHECK_EQ(reorder_pop(ring, REORDER_ANY, &item), 1);
	CHECK(item == &b);
	CHECK_EQ(reorder_pop(ring, REORDER_ANY, &item), 0);
	reorder_free(ring);
}

int main(void)
{
	UNIT_RUN(test_order_without_workers);
	UNIT_RUN(test_order_with_workers);
	UNIT_RUN(test_wait_done_batches);
	UNIT_RUN(test_stop_and_drop);
	UNIT_DONE();
}
