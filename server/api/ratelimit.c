/*
 * ratelimit.c - see ratelimit.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "ratelimit.h"

struct ratelimit_bucket {
	char name[DD_CLIENT_NAME_MAX + 1];
	double level;       /* units available; may be negative */
	double when;        /* monotonic seconds of `level` */
};

struct ratelimit {
	double rate, burst;
	pthread_mutex_t lock;
	struct ratelimit_bucket *v;
	size_t n, alloc;
};

int ratelimit_new(struct ratelimit **out, double rate, double burst)
{
	struct ratelimit *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->rate = rate > 0 ? rate : 0;
	r->burst = burst >= 1 ? burst : 1;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

void ratelimit_free(struct ratelimit *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->v);
	free(r);
}

/* With r->lock held: the bucket of `name`, a full one if new; NULL on
 * ENOMEM. */
static struct ratelimit_bucket *ratelimit_find(struct ratelimit *r,
					       const char *name, double now)
{
	struct ratelimit_bucket *b;
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->v[i].name, name) == 0)
			return &r->v[i];
	if (r->n == r->alloc) {
		size_t na = r->alloc ? r->alloc * 2 : 16;

		b = realloc(r->v, na * sizeof(*b));
		if (!b)
			return NULL;
		r->v = b;
		r->alloc = na;
	}
	b = &r->v[r->n++];
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->level = r->burst;
	b->when = now;
	return b;
}

int ratelimit_take(struct ratelimit *r, const char *name, double n,
		   double now, unsigned *retry_after)
{
	struct ratelimit_bucket *b;
	double need, wait;
	int rc = 0;

	*retry_after = 0;
	if (!r || r->rate <= 0)
		return 0;
	need = n < r->burst ? n : r->burst;
	pthread_mutex_lock(&r->lock);
	b = ratelimit_find(r, name, now);
	if (!b) {
		rc = -ENOMEM;
		goto cleanup;
	}
	if (now > b->when) {
		b->level += (now - b->when) * r->rate;
		if (b->level > r->burst)
			b->level = r->burst;
		b->when = now;
	}
	if (b->level >= need) {
		b->level -= n;
		goto cleanup;
	}
	wait = (need - b->level) / r->rate;
	*retry_after = wait > 86400 ? 86400 : (unsigned)wait;
	if (*retry_after < wait || *retry_after == 0)
		(*retry_after)++;       /* rounded up, at least 1 */
	rc = -EAGAIN;
cleanup:
	pthread_mutex_unlock(&r->lock);
	return rc;
}
