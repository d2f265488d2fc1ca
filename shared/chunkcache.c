/*
 * chunkcache.c - LRU chunk cache: a chained hash table on the id (already
 * a uniform hash) threaded by a doubly linked recency list.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chunkcache.h"

/* Buckets per byte of bound: one per 4 KiB keeps chains short for any
 * chunk size the chunker produces, with a floor for tiny bounds. */
#define CHUNKCACHE_BYTES_PER_BUCKET 4096u
#define CHUNKCACHE_MIN_BUCKETS 64u

struct cc_node {
	struct dd_id id;
	struct cc_node *hnext;          /* hash chain */
	struct cc_node *prev, *next;    /* recency: head = most recent */
	size_t len;
	uint8_t data[];
};
_Static_assert(sizeof(struct cc_node) + 16 <= DD_CHUNKCACHE_NODE_COST,
	       "DD_CHUNKCACHE_NODE_COST covers a node and malloc's header");

struct dd_chunkcache {
	struct cc_node **buckets;
	size_t nbuckets;                /* a power of two */
	struct cc_node *head, *tail;
	struct dd_chunkcache_stats st;
};

static size_t cc_bucket(const struct dd_chunkcache *c, const struct dd_id *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)h & (c->nbuckets - 1);
}

int dd_chunkcache_new(struct dd_chunkcache **out, size_t max_bytes)
{
	struct dd_chunkcache *c;
	size_t want = max_bytes / CHUNKCACHE_BYTES_PER_BUCKET, n = CHUNKCACHE_MIN_BUCKETS;

	*out = NULL;
	if (max_bytes == 0)
		return -EINVAL;
	while (n < want && n < ((size_t)1 << 24))
		n <<= 1;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	if (!(c->buckets = calloc(n, sizeof(*c->buckets)))) {
		free(c);
		return -ENOMEM;
	}
	c->nbuckets = n;
	c->st.max_bytes = max_bytes;
	*out = c;
	return 0;
}

void dd_chunkcache_free(struct dd_chunkcache *c)
{
	struct cc_node *n, *next;

	if (!c)
		return;
	for (n = c->head; n; n = next) {
		next = n->next;
		free(n);
	}
	free(c->buckets);
	free(c);
}

static void cc_unlink(struct dd_chunkcache *c, struct cc_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		c->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		c->tail = n->prev;
	n->prev = n->next = NULL;
}

static void cc_push_front(struct dd_chunkcache *c, struct cc_node *n)
{
	n->prev = NULL;
	n->next = c->head;
	if (c->head)
		c->head->prev = n;
	c->head = n;
	if (!c->tail)
		c->tail = n;
}

static struct cc_node *cc_find(const struct dd_chunkcache *c,
			       const struct dd_id *id)
{
	struct cc_node *n = c->buckets[cc_bucket(c, id)];

	while (n && !dd_id_eq(&n->id, id))
		n = n->hnext;
	return n;
}

static void cc_evict_lru(struct dd_chunkcache *c)
{
	struct cc_node *n = c->tail, **pp;

	cc_unlink(c, n);
	for (pp = &c->buckets[cc_bucket(c, &n->id)]; *pp != n; pp = &(*pp)->hnext)
		;
	*pp = n->hnext;
	c->st.bytes -= n->len + DD_CHUNKCACHE_NODE_COST;
	c->st.chunks--;
	c->st.evictions++;
	free(n);
}

const uint8_t *dd_chunkcache_get(struct dd_chunkcache *c,
				 const struct dd_id *id, size_t *len)
{
	struct cc_node *n = cc_find(c, id);

	if (!n) {
		c->st.misses++;
		return NULL;
	}
	c->st.hits++;
	cc_unlink(c, n);
	cc_push_front(c, n);
	*len = n->len;
	return n->data;
}

bool dd_chunkcache_has(const struct dd_chunkcache *c, const struct dd_id *id)
{
	return cc_find(c, id) != NULL;
}

int dd_chunkcache_put(struct dd_chunkcache *c, const struct dd_id *id,
		      const void *data, size_t len)
{
	struct cc_node *n;
	size_t b;

	if (len > c->st.max_bytes || cc_find(c, id))
		return 0;
	/* a chunk as large as the bound is kept alone, its bookkeeping
	 * past the bound: --cache-size 1M still holds a 1 MiB chunk */
	while (c->st.chunks &&
	       c->st.bytes + len + DD_CHUNKCACHE_NODE_COST > c->st.max_bytes)
		cc_evict_lru(c);
	if (!(n = malloc(sizeof(*n) + len)))
		return -ENOMEM;
	n->id = *id;
	n->len = len;
	memcpy(n->data, data, len);
	b = cc_bucket(c, id);
	n->hnext = c->buckets[b];
	c->buckets[b] = n;
	cc_push_front(c, n);
	c->st.bytes += len + DD_CHUNKCACHE_NODE_COST;
	c->st.chunks++;
	if (c->st.bytes > c->st.peak_bytes)
		c->st.peak_bytes = c->st.bytes;
	return 0;
}

void dd_chunkcache_get_stats(const struct dd_chunkcache *c,
			     struct dd_chunkcache_stats *out)
{
	*out = c->st;
}
