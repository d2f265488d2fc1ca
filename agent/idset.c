/*
 * idset.c - open-addressing hash map of chunk ids.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "idset.h"

#define IDSET_MIN_SLOTS 1024u

struct idset_slot {
	struct dd_id id;
	uint32_t value;
	bool used;
};

struct idset {
	struct idset_slot *slots;
	size_t nslots;    /* a power of two */
	size_t count;
};

static size_t idset_hash(const struct dd_id *id)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)h;
}

int idset_new(struct idset **out)
{
	struct idset *s;

	*out = NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return dd_error_set(-ENOMEM, "out of memory");
	s->nslots = IDSET_MIN_SLOTS;
	if (!(s->slots = calloc(s->nslots, sizeof(*s->slots)))) {
		free(s);
		return dd_error_set(-ENOMEM, "out of memory");
	}
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

static struct idset_slot *idset_find(const struct idset *s,
				     const struct dd_id *id)
{
	size_t mask = s->nslots - 1;
	size_t i = idset_hash(id) & mask;

	while (s->slots[i].used && !dd_id_eq(&s->slots[i].id, id))
		i = (i + 1) & mask;
	return &s->slots[i];
}

static int idset_grow(struct idset *s)
{
	struct idset_slot *old = s->slots;
	size_t oldn = s->nslots;

	s->slots = calloc(oldn * 2, sizeof(*s->slots));
	if (!s->slots) {
		s->slots = old;
		return dd_error_set(-ENOMEM, "out of memory");
	}
	s->nslots = oldn * 2;
	for (size_t i = 0; i < oldn; i++)
		if (old[i].used)
			*idset_find(s, &old[i].id) = old[i];
	free(old);
	return 0;
}

int idset_insert(struct idset *s, const struct dd_id *id, uint32_t value,
		 uint32_t *existing)
{
	struct idset_slot *slot;
	int rc;

	/* Keep the load factor under 1/2 so probes stay short. */
	if ((s->count + 1) * 2 > s->nslots && (rc = idset_grow(s)) < 0)
		return rc;
	slot = idset_find(s, id);
	if (slot->used) {
		if (existing)
			*existing = slot->value;
		return 0;
	}
	slot->id = *id;
	slot->value = value;
	slot->used = true;
	s->count++;
	return 1;
}

int idset_set(struct idset *s, const struct dd_id *id, uint32_t value)
{
	int rc = idset_insert(s, id, value, NULL);

	if (rc == 0)
		idset_find(s, id)->value = value;
	return rc < 0 ? rc : 0;
}

int idset_lookup(const struct idset *s, const struct dd_id *id,
		 uint32_t *value)
{
	const struct idset_slot *slot = idset_find(s, id);

	if (!slot->used)
		return 0;
	if (value)
		*value = slot->value;
	return 1;
}

size_t idset_count(const struct idset *s)
{
	return s->count;
}

void idset_clear(struct idset *s)
{
	if (s->count)
		memset(s->slots, 0, s->nslots * sizeof(*s->slots));
	s->count = 0;
}
