/*
 * idset.c - see idset.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"

/*
 * One array of ids, probed linearly from the hash: a free slot holds the
 * all-zero id, so a probe reads one slot, not a flag and then the slot
 * (a lookup in a set larger than the caches costs one miss, not two).
 * The all-zero id itself, which no digest is in practice but a client
 * may name, is kept aside in `zero`.
 */
struct idset {
	struct dd_id *slots;
	size_t cap, n, max;      /* cap: a power of two, or 0; n counts zero */
	bool zero;               /* the all-zero id is in the set */
};

static const struct dd_id idset_free_slot;

static bool idset_is_free(const struct dd_id *id)
{
	uint64_t w[4];

	memcpy(w, id->b, sizeof(w));
	return (w[0] | w[1] | w[2] | w[3]) == 0;
}

/* Ids are SHA-256 digests: any 8 bytes are uniform. */
static size_t idset_hash(const struct dd_id *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)h;
}

int idset_new(struct idset **out, size_t max)
{
	struct idset *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->max = max;
	*out = s;
	return 0;
}

void idset_free(struct idset *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s);
}

static int idset_grow(struct idset *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024, i, j;
	struct dd_id *slots = calloc(ncap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < s->cap; i++) {
		if (idset_is_free(&s->slots[i]))
			continue;
		j = idset_hash(&s->slots[i]) & (ncap - 1);
		while (!idset_is_free(&slots[j]))
			j = (j + 1) & (ncap - 1);
		slots[j] = s->slots[i];
	}
	free(s->slots);
	s->slots = slots;
	s->cap = ncap;
	return 0;
}

int idset_add(struct idset *s, const struct dd_id *id)
{
	size_t j;
	int rc;

	if (idset_has(s, id))
		return 0;
	if (s->max && s->n >= s->max)
		return -E2BIG;
	if (idset_is_free(id)) {
		s->zero = true;
		s->n++;
		return 0;
	}
	if ((s->n + 1) * 2 > s->cap && (rc = idset_grow(s)) < 0)
		return rc;
	j = idset_hash(id) & (s->cap - 1);
	while (!idset_is_free(&s->slots[j]))
		j = (j + 1) & (s->cap - 1);
	s->slots[j] = *id;
	s->n++;
	return 0;
}

bool idset_has(const struct idset *s, const struct dd_id *id)
{
	size_t j;

	if (idset_is_free(id))
		return s->zero;
	if (!s->cap)
		return false;
	j = idset_hash(id) & (s->cap - 1);
	while (!idset_is_free(&s->slots[j])) {
		if (dd_id_eq(&s->slots[j], id))
			return true;
		j = (j + 1) & (s->cap - 1);
	}
	return false;
}

size_t idset_count(const struct idset *s)
{
	return s->n;
}

void idset_clear(struct idset *s)
{
	if (s->cap)
		memset(s->slots, 0, s->cap * sizeof(*s->slots));
	s->zero = false;
	s->n = 0;
}

void idset_foreach(const struct idset *s,
		   void (*cb)(void *payload, const struct dd_id *id),
		   void *payload)
{
	size_t i;

	if (s->zero)
		cb(payload, &idset_free_slot);
	for (i = 0; i < s->cap; i++)
		if (!idset_is_free(&s->slots[i]))
			cb(payload, &s->slots[i]);
}

size_t idset_bytes(const struct idset *s)
{
	return sizeof(*s) + s->cap * sizeof(*s->slots);
}
