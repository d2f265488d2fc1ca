/*
 * vouch.c - see vouch.h.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "vouch.h"

/* One generation holds an exact set, or (past exact_max ids) a filter,
 * or, once memory ran out, everything. */
struct vouch_gen {
	struct idset *exact;       /* NULL while empty or once a filter */
	uint64_t *bits;            /* the bloom filter, or NULL */
	uint64_t ids;              /* ids added (a filter: newly set ones) */
	bool all;                  /* out of memory: holds every id */
	double ended;              /* dd_monotonic() when closed; 0: open */
};

struct vouch {
	/* Oldest first; gen[n - 1] is the open one. One spare slot: a
	 * rotation opens a generation before it merges. */
	struct vouch_gen gen[VOUCH_GENERATIONS_MAX + 1];
	size_t n;
	size_t exact_max;
};

#define VOUCH_FILTER_WORDS (VOUCH_FILTER_BITS / 64)

/* ---- the bloom filter ---- */

/* Ids are SHA-256 digests, so any bytes are uniform; the exact set hashes
 * bytes 0-7, the filter uses 8-23 (double hashing). */
static uint64_t vouch_bit(const struct dd_id *id, unsigned i)
{
	uint64_t h1, h2;

	memcpy(&h1, id->b + 8, sizeof(h1));
	memcpy(&h2, id->b + 16, sizeof(h2));
	return (h1 + (uint64_t)i * (h2 | 1)) & (VOUCH_FILTER_BITS - 1);
}

/* Sets the bits of id; true if any was clear (id is new, surely). */
static bool vouch_filter_set(uint64_t *bits, const struct dd_id *id)
{
	bool fresh = false;
	unsigned i;

	for (i = 0; i < VOUCH_FILTER_HASHES; i++) {
		uint64_t b = vouch_bit(id, i), m = 1ull << (b & 63);

		if (!(bits[b >> 6] & m)) {
			bits[b >> 6] |= m;
			fresh = true;
		}
	}
	return fresh;
}

static bool vouch_filter_test(const uint64_t *bits, const struct dd_id *id)
{
	unsigned i;

	for (i = 0; i < VOUCH_FILTER_HASHES; i++) {
		uint64_t b = vouch_bit(id, i);

		if (!(bits[b >> 6] & (1ull << (b & 63))))
			return false;
	}
	return true;
}

/* ---- one generation ---- */

static void vouch_gen_release(struct vouch_gen *g)
{
	idset_free(g->exact);
	free(g->bits);
	memset(g, 0, sizeof(*g));
}

/* Out of memory: the generation keeps every id, safely. */
static void vouch_gen_saturate(struct vouch_gen *g)
{
	double ended = g->ended;
	uint64_t ids = g->ids;

	vouch_gen_release(g);
	g->all = true;
	g->ended = ended;
	g->ids = ids;
}

static void vouch_filter_add_cb(void *payload, const struct dd_id *id)
{
	vouch_filter_set(payload, id);
}

/* Turns the generation into a filter holding the same ids. */
static void vouch_gen_to_filter(struct vouch_gen *g)
{
	if (g->all || g->bits)
		return;
	g->bits = calloc(VOUCH_FILTER_WORDS, sizeof(*g->bits));
	if (!g->bits) {
		vouch_gen_saturate(g);
		return;
	}
	if (g->exact) {
		idset_foreach(g->exact, vouch_filter_add_cb, g->bits);
		idset_free(g->exact);
		g->exact = NULL;
	}
}

static void vouch_gen_add(struct vouch_gen *g, size_t exact_max,
			  const struct dd_id *id)
{
	int rc;

	if (g->all)
		return;
	if (!g->bits) {
		if (!g->exact && idset_new(&g->exact, exact_max) < 0) {
			vouch_gen_saturate(g);
			return;
		}
		rc = idset_add(g->exact, id);
		if (rc == 0) {
			g->ids = idset_count(g->exact);
			return;
		}
		if (rc != -E2BIG) {
			vouch_gen_saturate(g);
			return;
		}
		vouch_gen_to_filter(g);
		if (g->all)
			return;
	}
	if (vouch_filter_set(g->bits, id))
		g->ids++;
}

static bool vouch_gen_has(const struct vouch_gen *g, const struct dd_id *id)
{
	if (g->all)
		return true;
	if (g->bits)
		return vouch_filter_test(g->bits, id);
	return g->exact && idset_has(g->exact, id);
}

struct vouch_merge {
	struct vouch_gen *into;
	size_t exact_max;
};

static void vouch_merge_cb(void *payload, const struct dd_id *id)
{
	struct vouch_merge *m = payload;

	vouch_gen_add(m->into, m->exact_max, id);
}

/* a (older) becomes the union of a and b, kept as long as b would be;
 * b is emptied. */
static void vouch_gen_merge(struct vouch_gen *a, struct vouch_gen *b,
			    size_t exact_max)
{
	struct vouch_merge m = { a, exact_max };
	size_t i;

	if (b->all) {
		vouch_gen_saturate(a);
	} else if (b->bits) {
		vouch_gen_to_filter(a);
		if (a->bits) {
			for (i = 0; i < VOUCH_FILTER_WORDS; i++)
				a->bits[i] |= b->bits[i];
			a->ids += b->ids;
		}
	} else if (b->exact) {
		idset_foreach(b->exact, vouch_merge_cb, &m);
	}
	a->ended = b->ended;
	vouch_gen_release(b);
}

/* ---- the journal ---- */

int vouch_new(struct vouch **out, size_t exact_max)
{
	struct vouch *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	v->exact_max = exact_max ? exact_max : VOUCH_EXACT_MAX;
	v->n = 1;
	*out = v;
	return 0;
}

void vouch_free(struct vouch *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++)
		vouch_gen_release(&v->gen[i]);
	free(v);
}

void vouch_add(struct vouch *v, const struct dd_id *id)
{
	vouch_gen_add(&v->gen[v->n - 1], v->exact_max, id);
}

bool vouch_has(const struct vouch *v, const struct dd_id *id)
{
	size_t i;

	for (i = v->n; i > 0; i--)
		if (vouch_gen_has(&v->gen[i - 1], id))
			return true;
	return false;
}

/* Removes gen[i], shifting the newer ones down. */
static void vouch_remove(struct vouch *v, size_t i)
{
	vouch_gen_release(&v->gen[i]);
	memmove(&v->gen[i], &v->gen[i + 1], (v->n - i - 1) * sizeof(v->gen[0]));
	v->n--;
	memset(&v->gen[v->n], 0, sizeof(v->gen[0]));
}

void vouch_rotate(struct vouch *v, double now, double since)
{
	static_assert(VOUCH_GENERATIONS_MAX >= 2, "merging needs two");
	assert(v->n >= 1 && v->n <= VOUCH_GENERATIONS_MAX);

	v->gen[v->n - 1].ended = now;
	/* Closed generations end in order: drop from the oldest. */
	while (v->n > 0 && v->gen[0].ended < since)
		vouch_remove(v, 0);
	memset(&v->gen[v->n], 0, sizeof(v->gen[0]));
	v->n++;
	while (v->n > VOUCH_GENERATIONS_MAX) {
		vouch_gen_merge(&v->gen[0], &v->gen[1], v->exact_max);
		vouch_remove(v, 1);
	}
}

void vouch_get_stats(const struct vouch *v, struct vouch_stats *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	out->generations = (unsigned)v->n;
	for (i = 0; i < v->n; i++) {
		const struct vouch_gen *g = &v->gen[i];

		out->ids += g->ids;
		if (g->bits) {
			out->filtered = true;
			out->bytes += VOUCH_FILTER_WORDS * sizeof(uint64_t);
		}
		if (g->exact)
			out->bytes += idset_bytes(g->exact);
		if (g->all)
			out->saturated = true;
	}
}
