/*
 * domains.c - see domains.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "domains.h"
#include "log.h"
#include "proto.h"

#define DOMAINS_PREFIX "dedup-domain:"
/* Keys per synced batch when a whole index is walked. */
#define DOMAINS_BATCH_KEYS 16384u

static const uint8_t domains_value[1] = { 1 };

void domains_tag_of(struct domains_tag *out, const char *name)
{
	char buf[sizeof(DOMAINS_PREFIX) + DD_CLIENT_NAME_MAX + 1];
	struct dd_id h;
	size_t i;
	bool zero = true;

	memset(out, 0, sizeof(*out));
	if (strcmp(name, DOMAINS_DEFAULT) == 0)
		return;
	snprintf(buf, sizeof(buf), "%s%s", DOMAINS_PREFIX, name);
	dd_sha256(&h, buf, strlen(buf));
	memcpy(out->b, h.b, DOMAINS_TAG_LEN);
	for (i = 0; i < DOMAINS_TAG_LEN; i++)
		zero = zero && out->b[i] == 0;
	if (zero)       /* never the default's tag */
		out->b[0] = 1;
}

bool domains_is_default(const struct domains_tag *t)
{
	static const struct domains_tag zero;

	return !t || memcmp(t->b, zero.b, DOMAINS_TAG_LEN) == 0;
}

static void domains_member_key(uint8_t key[DOMAINS_MEMBER_KEY_LEN],
			       const struct domains_tag *t,
			       const struct dd_id *id)
{
	key[0] = 'd';
	memcpy(key + 1, id->b, DD_ID_LEN);
	memcpy(key + 1 + DD_ID_LEN, t->b, DOMAINS_TAG_LEN);
}

static void domains_restrict_key(uint8_t key[DOMAINS_RESTRICT_KEY_LEN],
				 const struct dd_id *id)
{
	key[0] = 'r';
	memcpy(key + 1, id->b, DD_ID_LEN);
}

static void domains_chunk_key(uint8_t key[1 + DD_ID_LEN],
			      const struct dd_id *id)
{
	key[0] = 'c';
	memcpy(key + 1, id->b, DD_ID_LEN);
}

static void domains_kept_key(uint8_t key[DOMAINS_KEPT_KEY_LEN],
			     const struct dd_id *id)
{
	key[0] = 'k';
	memcpy(key + 1, id->b, DD_ID_LEN);
}

/* Whether the repository has had a domain other than the default (the
 * opener's STORE_DOMAINS_USED, from clients.json, or store_domains_note). */
static bool domains_used(struct store *s)
{
	return (store_flags(s) & STORE_DOMAINS_USED) != 0;
}

int domains_is_member(struct store *s, const struct domains_tag *t,
		      const struct dd_id *id)
{
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];
	int rc;

	if (!t)
		return 1;
	if (domains_is_default(t)) {
		domains_restrict_key(key, id);
		rc = store_key_exists(s, key, DOMAINS_RESTRICT_KEY_LEN);
		return rc < 0 ? rc : !rc;
	}
	domains_member_key(key, t, id);
	return store_key_exists(s, key, sizeof(key));
}

int domains_lookup(struct store *s, const struct domains_tag *t,
		   const struct dd_id *id, struct dd_chunk_loc *loc)
{
	int rc = store_lookup(s, id, loc);

	if (rc < 0 || !t)
		return rc;
	rc = domains_is_member(s, t, id);
	if (rc < 0)
		return rc;
	return rc ? 0 : -ENOENT;
}

/* For domains_lookup_many: asks the shared index about the nask stored
 * chunks ids[ask[..]] that t does not hold here (store_shared_grant) and
 * sets rcs[] of those it grants to 0. */
static int domains_ask_pool(struct store *s, const struct domains_tag *t,
			    const struct dd_id *ids,
			    const struct dd_chunk_loc *locs, int *rcs,
			    const size_t *ask, size_t nask)
{
	struct dd_chunk_loc *al = malloc(nask * sizeof(*al));
	struct dd_id *ai = malloc(nask * sizeof(*ai));
	uint8_t *granted = malloc((nask + 7) / 8);
	size_t i;
	int rc = -ENOMEM;

	if (al && ai && granted) {
		for (i = 0; i < nask; i++) {
			ai[i] = ids[ask[i]];
			al[i] = locs[ask[i]];
		}
		rc = store_shared_grant(s, t, ai, al, nask, granted);
		for (i = 0; rc == 0 && i < nask; i++)
			if (granted[i / 8] & (1u << (i % 8)))
				rcs[ask[i]] = 0;
	}
	free(al);
	free(ai);
	free(granted);
	return rc;
}

/* domains_lookup_many of distinct ids. */
static int domains_lookup_distinct(struct store *s, const struct domains_tag *t,
				   const struct dd_id *ids, size_t n,
				   struct dd_chunk_loc *locs, int *rcs)
{
	int rc = store_lookup_many(s, ids, n, locs, rcs);
	size_t *ask = NULL, nask = 0;

	if (rc == 0 && t && store_shared_on(s) &&
	    !(ask = malloc(n * sizeof(*ask))))
		return -ENOMEM;
	for (size_t i = 0; rc == 0 && t && i < n; i++) {
		if (rcs[i] < 0)
			continue;
		rc = domains_is_member(s, t, &ids[i]);
		if (rc == 0 && ask)
			ask[nask++] = i;
		if (rc >= 0) {
			rcs[i] = rc ? 0 : -ENOENT;
			rc = 0;
		}
	}
	/* stored, but not by t here: perhaps through another front-end */
	if (rc == 0 && nask)
		rc = domains_ask_pool(s, t, ids, locs, rcs, ask, nask);
	free(ask);
	return rc;
}

struct domains_keyed_id {
	struct dd_id id;
	size_t at;
};

static int domains_keyed_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DD_ID_LEN);
}

/*
 * For a domain, an id named again is looked up once: each lookup of a
 * chunk that is stored (if by another domain) costs a membership read an
 * absent one does not, so a request naming one id thousands of times
 * would time the difference into a confirmation that another domain
 * holds it (found by review: 18 ms against 10 ms for 65,536 repeats).
 */
int domains_lookup_many(struct store *s, const struct domains_tag *t,
			const struct dd_id *ids, size_t n,
			struct dd_chunk_loc *locs, int *rcs)
{
	struct domains_keyed_id *v;
	struct dd_id *u;
	struct dd_chunk_loc *ulocs;
	size_t *map, nu = 0, i;
	int *urcs, rc;

	if (!t || n < 2)
		return domains_lookup_distinct(s, t, ids, n, locs, rcs);
	v = malloc(n * sizeof(*v));
	map = malloc(n * sizeof(*map));
	u = malloc(n * sizeof(*u));
	ulocs = malloc(n * sizeof(*ulocs));
	urcs = malloc(n * sizeof(*urcs));
	rc = v && map && u && ulocs && urcs ? 0 : -ENOMEM;
	if (rc == 0) {
		for (i = 0; i < n; i++) {
			v[i].id = ids[i];
			v[i].at = i;
		}
		qsort(v, n, sizeof(*v), domains_keyed_id_cmp);
		for (i = 0; i < n; i++) {
			if (i == 0 || !dd_id_eq(&v[i].id, &v[i - 1].id))
				u[nu++] = v[i].id;
			map[v[i].at] = nu - 1;
		}
		rc = nu == n ?
		     domains_lookup_distinct(s, t, ids, n, locs, rcs) :
		     domains_lookup_distinct(s, t, u, nu, ulocs, urcs);
	}
	for (i = 0; rc == 0 && nu < n && i < n; i++) {
		locs[i] = ulocs[map[i]];
		rcs[i] = urcs[map[i]];
	}
	free(v);
	free(map);
	free(u);
	free(ulocs);
	free(urcs);
	return rc;
}

struct domains_tags {
	struct domains_tag *v;
	size_t n, max;
};

static int domains_tags_cb(void *payload, const uint8_t *key, size_t klen,
			   const uint8_t *val, size_t vlen)
{
	struct domains_tags *l = payload;

	(void)val;
	(void)vlen;
	if (klen == DOMAINS_MEMBER_KEY_LEN && l->n < l->max)
		memcpy(l->v[l->n++].b, key + 1 + DD_ID_LEN, DOMAINS_TAG_LEN);
	return 0;
}

int domains_members_of(struct store *s, const struct dd_id *id,
		       struct domains_tag *out, size_t max, size_t *n)
{
	struct domains_tags l = { out, 0, max };
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];
	int rc;

	*n = 0;
	if (!domains_used(s) || max == 0)
		return 0;
	domains_restrict_key(key, id);
	rc = store_key_exists(s, key, DOMAINS_RESTRICT_KEY_LEN);
	if (rc < 0)
		return rc;
	if (rc == 0)    /* the default domain's */
		memset(out[l.n++].b, 0, DOMAINS_TAG_LEN);
	key[0] = 'd';
	rc = store_index_scan(s, key, 1 + DD_ID_LEN, domains_tags_cb, &l);
	*n = l.n;
	return rc;
}

/* ---- writing ---- */

void domains_batch_join(void *batch, const struct domains_tag *t,
			const struct dd_id *id)
{
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];

	if (!t)
		return;
	if (domains_is_default(t)) {
		domains_restrict_key(key, id);
		leveldb_writebatch_delete(batch, (const char *)key,
					  DOMAINS_RESTRICT_KEY_LEN);
		return;
	}
	domains_member_key(key, t, id);
	leveldb_writebatch_put(batch, (const char *)key, sizeof(key),
			       (const char *)domains_value,
			       sizeof(domains_value));
}

/* Adds a delete of every key seen to the batch. */
static int domains_delete_cb(void *payload, const uint8_t *key, size_t klen,
			     const uint8_t *val, size_t vlen)
{
	(void)val;
	(void)vlen;
	leveldb_writebatch_delete(payload, (const char *)key, klen);
	return 0;
}

/* Deletes every membership of id ("d" keys, the "r" key, and the "k"
 * key that would let them stand after a cache drop). The "k" key is
 * deleted only if it is there: "k" keys sort between the "d" keys and
 * the rest, and every delete leaves a tombstone that each "d" scan below
 * (one a chunk stored or learned) would step over until the next
 * compaction: a fill of 20,000 entries took 10 s with one a chunk. */
static int domains_batch_forget(struct store *s, void *batch,
				const struct dd_id *id)
{
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];
	int rc;

	domains_restrict_key(key, id);
	leveldb_writebatch_delete(batch, (const char *)key,
				  DOMAINS_RESTRICT_KEY_LEN);
	domains_kept_key(key, id);
	rc = store_key_exists(s, key, DOMAINS_KEPT_KEY_LEN);
	if (rc < 0)
		return rc;
	if (rc)
		leveldb_writebatch_delete(batch, (const char *)key,
					  DOMAINS_KEPT_KEY_LEN);
	key[0] = 'd';
	return store_index_scan(s, key, 1 + DD_ID_LEN, domains_delete_cb,
				batch);
}

int domains_batch_new(struct store *s, void *batch,
		      const struct domains_tag *t, const struct dd_id *id)
{
	uint8_t key[DOMAINS_RESTRICT_KEY_LEN];
	int rc;

	if (!t)
		return 0;
	rc = domains_batch_forget(s, batch, id);
	if (rc < 0 || domains_is_default(t))
		return rc;
	/* Not the default domain's until one of its clients uploads it. */
	domains_restrict_key(key, id);
	leveldb_writebatch_put(batch, (const char *)key, sizeof(key),
			       (const char *)domains_value,
			       sizeof(domains_value));
	domains_batch_join(batch, t, id);
	return 0;
}

struct domains_drop {
	struct store *s;
	const struct dd_id *ids;
	size_t n;
	uint64_t dropped;
};

static int domains_count_cb(void *payload, const uint8_t *key, size_t klen,
			    const uint8_t *val, size_t vlen)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(*(uint64_t *)payload)++;
	return 0;
}

/* Adds the deletes of every membership of a chunk no longer stored;
 * *n counts them. */
static int domains_drop_one(struct domains_drop *d, void *batch,
			    const struct dd_id *id, uint64_t *n)
{
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];
	int rc;

	domains_restrict_key(key, id);
	rc = store_key_exists(d->s, key, DOMAINS_RESTRICT_KEY_LEN);
	if (rc < 0)
		return rc;
	*n += (uint64_t)rc;
	domains_kept_key(key, id);
	rc = store_key_exists(d->s, key, DOMAINS_KEPT_KEY_LEN);
	if (rc < 0)
		return rc;
	*n += (uint64_t)rc;
	key[0] = 'd';
	rc = store_index_scan(d->s, key, 1 + DD_ID_LEN, domains_count_cb, n);
	if (rc == 0)
		rc = domains_batch_forget(d->s, batch, id);
	return rc;
}

/* With the ingest lock held: checks each id again and deletes. */
static int domains_drop_locked(void *payload)
{
	struct domains_drop *d = payload;
	leveldb_writebatch_t *batch = leveldb_writebatch_create();
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];
	uint64_t n = 0;
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < d->n; i++) {
		domains_chunk_key(key, &d->ids[i]);
		rc = store_key_exists(d->s, key, 1 + DD_ID_LEN);
		if (rc == 1)
			rc = 0;         /* stored again meanwhile: keep */
		else if (rc == 0)
			rc = domains_drop_one(d, batch, &d->ids[i], &n);
	}
	if (rc == 0 && n)
		rc = store_index_apply(d->s, batch);
	if (rc == 0)
		d->dropped += n;
	leveldb_writebatch_destroy(batch);
	return rc;
}

int domains_drop_gone(struct store *s, const struct dd_id *ids, size_t n,
		      uint64_t *dropped)
{
	struct domains_drop d = { s, NULL, 0, 0 };
	size_t i;
	int rc = 0;

	*dropped = 0;
	for (i = 0; rc == 0 && i < n; i += DOMAINS_BATCH_KEYS / 4) {
		d.ids = ids + i;
		d.n = n - i < DOMAINS_BATCH_KEYS / 4 ? n - i :
		      DOMAINS_BATCH_KEYS / 4;
		rc = store_with_ingest_lock(s, domains_drop_locked, &d);
	}
	*dropped = d.dropped;
	return rc;
}

/* ---- whole-index walks ---- */

struct domains_ids {
	struct dd_id *v;
	size_t n, alloc;
};

static int domains_ids_add(struct domains_ids *l, const uint8_t *id)
{
	if (l->n && memcmp(l->v[l->n - 1].b, id, DD_ID_LEN) == 0)
		return 0;       /* keys come in order: repeats are adjacent */
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 1024;
		struct dd_id *v = realloc(l->v, na * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->alloc = na;
	}
	memcpy(l->v[l->n++].b, id, DD_ID_LEN);
	return 0;
}

static int domains_collect_cb(void *payload, const uint8_t *key, size_t klen,
			      const uint8_t *val, size_t vlen)
{
	(void)val;
	(void)vlen;
	if (klen < 1 + DD_ID_LEN)
		return 0;
	return domains_ids_add(payload, key + 1);
}

static int domains_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DD_ID_LEN);
}

int domains_drop_orphans(struct store *s, uint64_t *dropped)
{
	struct domains_ids all = { NULL, 0, 0 }, orphans = { NULL, 0, 0 };
	uint8_t key[1 + DD_ID_LEN];
	size_t i;
	int rc;

	*dropped = 0;
	rc = store_index_scan(s, "d", 1, domains_collect_cb, &all);
	if (rc == 0)
		rc = store_index_scan(s, "r", 1, domains_collect_cb, &all);
	if (rc == 0)
		rc = store_index_scan(s, "k", 1, domains_collect_cb, &all);
	/* Only the ids without an entry now; domains_drop_gone checks
	 * again under the lock. */
	if (rc == 0 && all.n)
		qsort(all.v, all.n, sizeof(all.v[0]), domains_id_cmp);
	for (i = 0; rc == 0 && i < all.n; i++) {
		domains_chunk_key(key, &all.v[i]);
		rc = store_key_exists(s, key, sizeof(key));
		if (rc == 0)
			rc = domains_ids_add(&orphans, all.v[i].b);
		else if (rc == 1)
			rc = 0;
	}
	if (rc == 0 && orphans.n)
		rc = domains_drop_gone(s, orphans.v, orphans.n, dropped);
	free(all.v);
	free(orphans.v);
	return rc;
}

struct domains_restrict {
	struct store *s;
	leveldb_writebatch_t *batch;
	size_t pending;
	uint64_t done;
};

static int domains_restrict_cb(void *payload, const uint8_t *key,
			       size_t klen, const uint8_t *val, size_t vlen)
{
	struct domains_restrict *r = payload;
	uint8_t rkey[DOMAINS_RESTRICT_KEY_LEN];
	int rc;

	(void)val;
	(void)vlen;
	if (klen != 1 + DD_ID_LEN)
		return 0;
	memcpy(rkey, key, sizeof(rkey));
	rkey[0] = 'r';
	leveldb_writebatch_put(r->batch, (const char *)rkey, sizeof(rkey),
			       (const char *)domains_value,
			       sizeof(domains_value));
	r->done++;
	if (++r->pending < DOMAINS_BATCH_KEYS)
		return 0;
	rc = store_index_apply(r->s, r->batch);
	leveldb_writebatch_clear(r->batch);
	r->pending = 0;
	return rc;
}

/* The marker: set with the first restriction, deleted by
 * domains_regrant_done() once the snapshots gave memberships back. */
static int domains_regrant_mark(struct store *s, bool set)
{
	leveldb_writebatch_t *b = leveldb_writebatch_create();
	int rc;

	if (set)
		leveldb_writebatch_put(b, DOMAINS_REGRANT_KEY,
				       strlen(DOMAINS_REGRANT_KEY),
				       (const char *)domains_value,
				       sizeof(domains_value));
	else
		leveldb_writebatch_delete(b, DOMAINS_REGRANT_KEY,
					  strlen(DOMAINS_REGRANT_KEY));
	rc = store_index_apply(s, b);
	leveldb_writebatch_destroy(b);
	return rc;
}

int domains_after_rebuild(struct store *s)
{
	struct domains_restrict r = { s, NULL, 0, 0 };
	int rc;

	if (!domains_used(s))
		return 0;
	rc = domains_regrant_mark(s, true);
	if (rc < 0)
		return rc;
	r.batch = leveldb_writebatch_create();
	rc = store_index_scan(s, "c", 1, domains_restrict_cb, &r);
	if (rc == 0 && r.pending)
		rc = store_index_apply(s, r.batch);
	leveldb_writebatch_destroy(r.batch);
	if (rc == 0 && r.done)
		log_warning("dedup domains are in use and the index was "
			    "rebuilt: %llu chunk(s) count as absent to every "
			    "domain until the snapshots give each domain back "
			    "the chunks its clients' snapshots use (at the "
			    "next start of the server); any other chunk a "
			    "client uploads again (it is not stored twice)",
			    (unsigned long long)r.done);
	return rc;
}

int domains_regrant_pending(struct store *s)
{
	return store_key_exists(s, DOMAINS_REGRANT_KEY,
				strlen(DOMAINS_REGRANT_KEY));
}

static int domains_regrant_clear(void *payload)
{
	return domains_regrant_mark(payload, false);
}

int domains_regrant_done(struct store *s)
{
	return store_with_ingest_lock(s, domains_regrant_clear, s);
}

int domains_key_parse(const uint8_t *key, size_t klen, struct dd_id *id,
		      struct domains_tag *tag)
{
	if (klen < 1 || (key[0] != 'd' && key[0] != 'r' && key[0] != 'k'))
		return 0;
	if (key[0] == 'k' && klen == DOMAINS_KEPT_KEY_LEN) {
		memcpy(id->b, key + 1, DD_ID_LEN);
		return 3;
	}
	if (key[0] == 'd' && klen == DOMAINS_MEMBER_KEY_LEN) {
		memcpy(id->b, key + 1, DD_ID_LEN);
		memcpy(tag->b, key + 1 + DD_ID_LEN, DOMAINS_TAG_LEN);
		return 1;
	}
	if (key[0] == 'r' && klen == DOMAINS_RESTRICT_KEY_LEN) {
		memcpy(id->b, key + 1, DD_ID_LEN);
		return 2;
	}
	return -EBADMSG;
}

/* ---- a front-end's cache of the shared index ---- */

void domains_cache_keep(struct store *s, void *batch, const struct dd_id *id,
			const void *val, size_t vlen)
{
	uint8_t key[DOMAINS_KEPT_KEY_LEN];

	if (!domains_used(s) || store_test_fills_unmarked(s))
		return;
	domains_kept_key(key, id);
	leveldb_writebatch_put(batch, (const char *)key, sizeof(key), val,
			       vlen);
}

int domains_cache_learn(struct store *s, void *batch, const struct dd_id *id,
			const void *val, size_t vlen)
{
	uint8_t key[DOMAINS_MEMBER_KEY_LEN];
	int rc;

	if (!domains_used(s) || store_test_fills_unmarked(s))
		return 0;
	/* cached here already, at that very place: nothing new is learned */
	domains_chunk_key(key, id);
	rc = store_key_matches(s, key, 1 + DD_ID_LEN, val, vlen);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	/* cached here before a drop, at that very place: the chunk lived on
	 * meanwhile, so the memberships it had here stand (the "k" key is
	 * deleted only if it is there: see domains_batch_forget) */
	domains_kept_key(key, id);
	rc = store_key_exists(s, key, DOMAINS_KEPT_KEY_LEN);
	if (rc == 1) {
		rc = store_key_matches(s, key, DOMAINS_KEPT_KEY_LEN, val, vlen);
		leveldb_writebatch_delete(batch, (const char *)key,
					  DOMAINS_KEPT_KEY_LEN);
	}
	if (rc < 0)
		return rc;
	if (rc == 1)
		return 0;
	/* learned from another front-end (or moved, or stored afresh after
	 * a collection): held by no domain here, whatever keys an earlier
	 * life of the chunk left */
	rc = domains_batch_forget(s, batch, id);
	if (rc < 0)
		return rc;
	domains_restrict_key(key, id);
	leveldb_writebatch_put(batch, (const char *)key,
			       DOMAINS_RESTRICT_KEY_LEN,
			       (const char *)domains_value,
			       sizeof(domains_value));
	return 0;
}

struct domains_audit {
	struct store *s;
	leveldb_writebatch_t *batch;
	size_t pending;
	uint64_t done;
};

/* An entry in another front-end's pack that the default domain holds:
 * restricted (the front-end cannot tell a fill from a join). */
static int domains_audit_cb(void *payload, const uint8_t *key, size_t klen,
			    const uint8_t *val, size_t vlen)
{
	struct domains_audit *a = payload;
	uint8_t rkey[DOMAINS_RESTRICT_KEY_LEN];
	struct dd_chunk_loc loc;
	int rc;

	if (klen != 1 + DD_ID_LEN || dd_chunk_loc_decode(&loc, val, vlen) < 0 ||
	    store_seq_frontend(loc.pack_seq) == store_frontend(a->s))
		return 0;
	memcpy(rkey, key, sizeof(rkey));
	rkey[0] = 'r';
	rc = store_key_exists(a->s, rkey, sizeof(rkey));
	if (rc != 0)
		return rc < 0 ? rc : 0;
	leveldb_writebatch_put(a->batch, (const char *)rkey, sizeof(rkey),
			       (const char *)domains_value,
			       sizeof(domains_value));
	a->done++;
	if (++a->pending < DOMAINS_BATCH_KEYS)
		return 0;
	rc = store_index_apply(a->s, a->batch);
	leveldb_writebatch_clear(a->batch);
	a->pending = 0;
	return rc;
}

int domains_cache_audit(struct store *s)
{
	struct domains_audit a = { s, NULL, 0, 0 };
	int rc;

	a.batch = leveldb_writebatch_create();
	if (store_test_fills_unmarked(s)) {
		/* an index as an earlier version left it: no marker */
		leveldb_writebatch_delete(a.batch, DOMAINS_FILLS_KEY,
					  strlen(DOMAINS_FILLS_KEY));
		rc = store_index_apply(s, a.batch);
		leveldb_writebatch_destroy(a.batch);
		return rc;
	}
	rc = store_key_exists(s, DOMAINS_FILLS_KEY, strlen(DOMAINS_FILLS_KEY));
	if (rc != 0) {
		leveldb_writebatch_destroy(a.batch);
		return rc < 0 ? rc : 0;
	}
	if (domains_used(s))
		rc = store_index_scan(s, "c", 1, domains_audit_cb, &a);
	if (rc == 0)
		leveldb_writebatch_put(a.batch, DOMAINS_FILLS_KEY,
				       strlen(DOMAINS_FILLS_KEY),
				       (const char *)domains_value,
				       sizeof(domains_value));
	if (rc == 0)
		rc = store_index_apply(s, a.batch);
	leveldb_writebatch_destroy(a.batch);
	if (rc == 0 && a.done)
		log_warning("dedup domains: %llu cached entr%s of chunks stored "
			    "through other front-ends no longer count as held "
			    "by the default domain here (an earlier version "
			    "cached them so); its clients upload them once "
			    "more (they are not stored twice)",
			    (unsigned long long)a.done,
			    a.done == 1 ? "y" : "ies");
	return rc;
}
