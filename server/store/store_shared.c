/*
 * store_shared.c - the chunk index shared by every front-end of a pool
 * (docs/STORAGE.md, "Several front-ends on one pool"): which chunks exist
 * and where, in STORE_SHARDS objects "index/XX" (XX: the id's first byte
 * in hex) whose omap maps the id's 64 hex digits to its encoded location
 * (dd_chunk_loc_encode, the LevelDB value), and with dedup domains in
 * use "<id>.<tag>" to the location a domain's membership was made for.
 * The local LevelDB index is this front-end's cache of it; an entry
 * cached from here is held by no domain (domains_cache_learn) until a
 * client of the domain uploads it through this front-end or the pool's
 * membership is granted for it (store_shared_grant, a pull).
 */
#include "store_impl.h"

#define SHARD_FMT "index/%02x"
#define SHARD_NAME_MAX 16
/* Marks a pool whose shared index holds every chunk of the local index
 * of the front-end that wrote it (a repository made before the shared
 * index is published once, by its first front-end to start). */
#define SHARED_SEEDED "index/seeded"

static void shard_name(char out[SHARD_NAME_MAX], unsigned shard)
{
	snprintf(out, SHARD_NAME_MAX, SHARD_FMT, shard & 0xffu);
}

static char shard_names_v[STORE_SHARDS][SHARD_NAME_MAX];

static void shard_names_init(void)
{
	unsigned i;

	for (i = 0; i < STORE_SHARDS; i++)
		shard_name(shard_names_v[i], i);
}

bool store_shared_on(const struct store *s)
{
	return s->shared;
}

/* ---- membership keys ---- */

/*
 * Beside each entry, the dedup domains that hold its chunk (domains.h):
 * "<64 hex of the id>.<16 hex of the domain's tag>", valued by the
 * location of the entry the membership was made for. '.' sorts before
 * every hex digit, so a chunk's keys follow its entry in a listing, and
 * readers that know only entries (strlen 64) pass them by.
 */
#define SHARED_MEMBER_KEY_LEN (DD_ID_HEX_LEN + 1 + 2 * DOMAINS_TAG_LEN)
#define SHARED_KEY_MAX (SHARED_MEMBER_KEY_LEN + 1)

static void shared_member_key(char out[SHARED_KEY_MAX], const struct dd_id *id,
			      const struct domains_tag *t)
{
	dd_id_to_hex(out, id);
	out[DD_ID_HEX_LEN] = '.';
	dd_hex_encode(out + DD_ID_HEX_LEN + 1, t->b, DOMAINS_TAG_LEN);
}

/* 1 and *id, *t for a membership key, 0 for anything else. */
static int shared_member_parse(const char *key, struct dd_id *id,
			       struct domains_tag *t)
{
	if (strlen(key) != SHARED_MEMBER_KEY_LEN || key[DD_ID_HEX_LEN] != '.')
		return 0;
	if (dd_hex_decode(id->b, DD_ID_LEN, key, DD_ID_HEX_LEN) < 0 ||
	    dd_hex_decode(t->b, DOMAINS_TAG_LEN, key + DD_ID_HEX_LEN + 1,
			  2 * DOMAINS_TAG_LEN) < 0) {
		dd_error_clear();
		return 0;
	}
	return 1;
}

static bool shared_loc_eq(const struct dd_chunk_loc *a,
			  const struct dd_chunk_loc *b)
{
	return a->pack_seq == b->pack_seq && a->offset == b->offset &&
	       a->flags == b->flags && a->plain_len == b->plain_len &&
	       a->stored_len == b->stored_len;
}

/* ---- writing ---- */

struct shared_item {
	struct dd_id id;
	uint8_t val[DD_CHUNK_LOC_MAX];
	size_t vlen;
	char key[SHARED_KEY_MAX];
};

static int shared_item_cmp(const void *a, const void *b)
{
	const struct shared_item *x = a, *y = b;

	return strcmp(x->key, y->key);
}

static int shared_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DD_ID_LEN);
}

/* Names of the shards, for the batches of store_shared_put. */
static const char *shard_names(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, shard_names_init);
	return &shard_names_v[0][0];
}

int store_shared_put(struct store *s, const struct dd_id *ids,
		     const struct dd_chunk_loc *locs, size_t n,
		     const struct store_member *mv, size_t nm)
{
	struct backend_omap_batch *bv = NULL;
	struct backend_kv *kv = NULL;
	struct shared_item *it;
	size_t i, start, nb = 0, nt = n + nm;
	int rc = 0;

	if (!s->shared || nt == 0)
		return 0;
	it = malloc(nt * sizeof(*it));
	kv = malloc(nt * sizeof(*kv));
	bv = malloc(nt * sizeof(*bv));
	if (!it || !kv || !bv) {
		free(it);
		free(kv);
		free(bv);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		it[i].id = ids[i];
		it[i].vlen = dd_chunk_loc_encode(it[i].val, &locs[i]);
		dd_id_to_hex(it[i].key, &ids[i]);
	}
	for (i = 0; i < nm; i++) {
		it[n + i].id = mv[i].id;
		it[n + i].vlen = dd_chunk_loc_encode(it[n + i].val, &mv[i].loc);
		shared_member_key(it[n + i].key, &mv[i].id, &mv[i].tag);
	}
	qsort(it, nt, sizeof(*it), shared_item_cmp);
	for (i = 0; i < nt; i++) {
		kv[i].key = it[i].key;
		kv[i].val = it[i].val;
		kv[i].vlen = it[i].vlen;
	}
	/* one batch per shard (at most BACKEND_KV_BATCH pairs each), all
	 * sent at once: one round trip for the ingest batch; an entry and
	 * its memberships go in one batch (one shard, atomically) unless
	 * the shard's pairs fill more than one */
	for (start = 0, i = 1; i <= nt; i++) {
		if (i == nt || it[i].id.b[0] != it[start].id.b[0] ||
		    i - start == BACKEND_KV_BATCH) {
			bv[nb].name = shard_names() +
				(size_t)it[start].id.b[0] * SHARD_NAME_MAX;
			bv[nb].kv = kv + start;
			bv[nb].n = i - start;
			nb++;
			start = i;
		}
	}
	rc = backend_omap_set_multi(s->be, bv, nb);
	free(it);
	free(kv);
	free(bv);
	return rc;
}

/* Deletes n keys of shard `shard`; absent keys, or an absent object,
 * are no error. */
static int shared_rm_keys(struct store *s, unsigned shard, const char **kp,
			  size_t n)
{
	char name[SHARD_NAME_MAX];
	int rc;

	if (n == 0)
		return 0;
	shard_name(name, shard);
	rc = backend_omap_rm(s->be, name, kp, n);
	if (rc == -ENOENT) {
		dd_error_clear();
		rc = 0;
	}
	return rc;
}

int store_shared_rm(struct store *s, const struct dd_id *ids, size_t n)
{
	struct domains_tag tags[STORE_POOL_TAGS];
	char (*keys)[SHARED_KEY_MAX];
	const char **kp;
	struct dd_id *sorted;
	size_t i, j, k = 0, ntags;
	unsigned shard = 0;
	int rc = 0;

	if (!s->shared || n == 0)
		return 0;
	/* with the entries, the memberships of the domains the last pull
	 * met (the next pull deletes any other as stale) */
	pthread_mutex_lock(&s->tags_lock);
	ntags = s->npool_tags;
	memcpy(tags, s->pool_tags, ntags * sizeof(tags[0]));
	pthread_mutex_unlock(&s->tags_lock);
	sorted = malloc(n * sizeof(*sorted));
	keys = malloc(BACKEND_KV_BATCH * sizeof(*keys));
	kp = malloc(BACKEND_KV_BATCH * sizeof(*kp));
	if (!sorted || !keys || !kp) {
		free(sorted);
		free(keys);
		free(kp);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	memcpy(sorted, ids, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), shared_id_cmp);
	/* k < BACKEND_KV_BATCH whenever a key is added: a full kp is sent
	 * at once */
	for (i = 0; i < n && rc == 0; i++) {
		if (k && (sorted[i].b[0] != shard || k + 1 + ntags > BACKEND_KV_BATCH)) {
			rc = shared_rm_keys(s, shard, kp, k);
			k = 0;
			if (rc < 0)
				break;
		}
		shard = sorted[i].b[0];
		dd_id_to_hex(keys[k], &sorted[i]);
		kp[k] = keys[k];
		k++;
		for (j = 0; j < ntags && rc == 0; j++) {
			if (k == BACKEND_KV_BATCH) {
				rc = shared_rm_keys(s, shard, kp, k);
				k = 0;
				if (rc < 0)
					break;
			}
			shared_member_key(keys[k], &sorted[i], &tags[j]);
			kp[k] = keys[k];
			k++;
		}
	}
	if (rc == 0)
		rc = shared_rm_keys(s, shard, kp, k);
	free(sorted);
	free(keys);
	free(kp);
	return rc;
}

/* ---- reading ---- */

/* Writes the batch of cache fills, unsynced (the shared index is the
 * durable copy). */
static void shared_cache_write(struct store *s, leveldb_writebatch_t *b)
{
	char *err = NULL;

	if (s->flags & STORE_OPEN_READONLY)
		return;
	pthread_rwlock_rdlock(&s->db_lock);
	if (s->db)
		leveldb_write(s->db, s->wopts_nosync, b, &err);
	pthread_rwlock_unlock(&s->db_lock);
	if (err) {
		log_warning("cannot cache shared index entries: %s", err);
		leveldb_free(err);
	}
}

/*
 * What a read of the shared index learned, cached in the local index in
 * one step under learn_lock (store_impl.h): each entry's memberships
 * decided (domains_cache_learn) and the entry put, then the memberships
 * the pool grants for it, in order, and the batch written. Deciding and
 * writing in one step under the lock keeps a fill from undoing a
 * membership written meanwhile (a grant, or the regrant of an adopted
 * snapshot, which first fills the entry itself): the later fill sees
 * the entry cached and keeps what is there.
 */
struct fill_item {
	struct dd_id id;
	struct domains_tag tag;   /* a membership's */
	uint8_t val[DD_CHUNK_LOC_MAX];
	uint8_t vlen;
	bool member;              /* else an entry */
};

struct fill_list {
	struct fill_item *v;
	size_t n, cap;
};

static struct fill_item *fill_next(struct fill_list *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct fill_item *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		l->v = v;
		l->cap = cap;
	}
	return &l->v[l->n++];
}

static int fill_add_entry(struct fill_list *l, const struct dd_id *id,
			  const void *val, size_t vlen)
{
	struct fill_item *it = vlen <= DD_CHUNK_LOC_MAX ? fill_next(l) : NULL;

	if (!it)
		return dd_error_set(-ENOMEM, "out of memory");
	it->id = *id;
	memcpy(it->val, val, vlen);
	it->vlen = (uint8_t)vlen;
	it->member = false;
	return 0;
}

/* A membership of domain t in chunk id at loc (a pull's: taken only
 * while the chunk is there and no upload is storing it afresh). */
static int fill_add_member(struct fill_list *l, const struct dd_id *id,
			   const struct domains_tag *t,
			   const struct dd_chunk_loc *loc)
{
	struct fill_item *it = fill_next(l);

	if (!it)
		return dd_error_set(-ENOMEM, "out of memory");
	it->id = *id;
	it->tag = *t;
	it->vlen = (uint8_t)dd_chunk_loc_encode(it->val, loc);
	it->member = true;
	return 0;
}

/* Items decided and written a step: learn_lock is let go between steps,
 * so a grant waits for one step, not a whole prefetch. */
#define FILL_STEP 4096u

struct fill_apply {
	struct store *s;
	struct fill_list *l;
	bool members;            /* ingest_lock held: memberships taken */
};

/* Whether a pull's membership item stands: the chunk is where it says
 * (the entry item just before it, or the local index), and no upload is
 * storing the chunk afresh (its batch forgets what it saw). */
static bool fill_member_ok(struct store *s, const struct fill_item *it,
			   const struct fill_item *entry)
{
	struct dd_chunk_loc want, have;

	if (dd_chunk_loc_decode(&want, it->val, it->vlen) < 0 ||
	    store_pend_find(s, &it->id))
		return false;
	if (entry && dd_id_eq(&entry->id, &it->id))
		return dd_chunk_loc_decode(&have, entry->val, entry->vlen) == 0 &&
		       shared_loc_eq(&have, &want);
	return store_lookup_raw(s, &it->id, &have) == 0 &&
	       shared_loc_eq(&have, &want);
}

static int fill_apply_cb(void *payload)
{
	struct fill_apply *a = payload;
	struct store *s = a->s;
	struct fill_list *l = a->l;
	const struct fill_item *entry = NULL;
	leveldb_writebatch_t *batch = leveldb_writebatch_create();
	uint8_t k[1 + DD_ID_LEN];
	size_t i = 0, end;
	int rc = 0;

	while (i < l->n && rc == 0) {
		end = l->n - i > FILL_STEP ? i + FILL_STEP : l->n;
		leveldb_writebatch_clear(batch);
		pthread_mutex_lock(&s->learn_lock);
		for (; i < end && rc == 0; i++) {
			const struct fill_item *it = &l->v[i];

			if (it->member) {
				if (a->members && fill_member_ok(s, it, entry))
					domains_batch_join(batch, &it->tag,
							   &it->id);
				continue;
			}
			/* held by no domain here unless this front-end had
			 * it there (not cached on an error) */
			rc = domains_cache_learn(s, batch, &it->id, it->val,
						 it->vlen);
			store_id_key(k, &it->id);
			leveldb_writebatch_put(batch, (const char *)k,
					       sizeof(k),
					       (const char *)it->val,
					       it->vlen);
			entry = it;
		}
		if (rc == 0)
			shared_cache_write(s, batch);
		pthread_mutex_unlock(&s->learn_lock);
	}
	dd_error_clear();
	leveldb_writebatch_destroy(batch);
	return rc;
}

/* Caches what l holds (see struct fill_item) and empties it. A list
 * with memberships (a pull's) is applied under ingest_lock. */
static int fill_flush(struct store *s, struct fill_list *l)
{
	struct fill_apply a = { s, l, false };
	size_t i;
	int rc;

	if (l->n == 0 || (s->flags & STORE_OPEN_READONLY)) {
		l->n = 0;
		return 0;
	}
	for (i = 0; i < l->n && !a.members; i++)
		a.members = l->v[i].member;
	rc = a.members ? store_with_ingest_lock(s, fill_apply_cb, &a) :
			 fill_apply_cb(&a);
	l->n = 0;
	return rc;
}

static void fill_release(struct fill_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

struct shared_fill {
	struct fill_list *list;
	const struct dd_id *ids;
	const size_t *idx;       /* ids of this shard, by key */
	size_t n;
	uint8_t *absent;         /* bit i cleared when ids[i] is found */
	size_t found;
	struct dd_chunk_loc last; /* the last location found */
};

static int shared_fill_cb(const char *key, const void *val, size_t vlen,
			  void *payload)
{
	struct shared_fill *f = payload;
	struct dd_chunk_loc loc;
	struct dd_id id;
	size_t i;
	int rc;

	if (dd_hex_decode(id.b, DD_ID_LEN, key, strlen(key)) < 0 ||
	    dd_chunk_loc_decode(&loc, val, vlen) < 0)
		return 0;  /* check reports it */
	rc = fill_add_entry(f->list, &id, val, vlen);
	if (rc < 0)
		return rc;
	/* every place that names it: a request may name an id again */
	for (i = 0; i < f->n; i++)
		if (dd_id_eq(&f->ids[f->idx[i]], &id))
			f->absent[f->idx[i] / 8] &=
				(uint8_t)~(1u << (f->idx[i] % 8));
	f->last = loc;
	f->found++;
	return 0;
}

/* Looks up ids[idx[0..n)] (one shard) in the shared index; what it
 * finds goes to `list`. */
static int shared_get_shard(struct store *s, const struct dd_id *ids,
			    const size_t *idx, size_t n, uint8_t *absent,
			    struct fill_list *list,
			    struct dd_chunk_loc *last)
{
	struct shared_fill f = { list, ids, idx, n, absent, 0, { 0 } };
	char (*keys)[DD_ID_HEX_LEN + 1] = malloc(n * sizeof(*keys));
	const char **kp = malloc(n * sizeof(*kp));
	char name[SHARD_NAME_MAX];
	size_t i;
	int rc;

	if (!keys || !kp) {
		free(keys);
		free(kp);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		dd_id_to_hex(keys[i], &ids[idx[i]]);
		kp[i] = keys[i];
	}
	shard_name(name, ids[idx[0]].b[0]);
	rc = backend_omap_get(s->be, name, kp, n, shared_fill_cb, &f);
	free(keys);
	free(kp);
	if (last)
		*last = f.last;
	return rc;
}

/* Orders idx[0..n) by the shard of ids[idx[i]] (a counting sort). */
static int shared_by_shard(const struct dd_id *ids, size_t *idx, size_t n)
{
	size_t count[STORE_SHARDS + 1] = { 0 }, i;
	size_t *out = malloc(n * sizeof(*out));

	if (!out)
		return dd_error_set(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		count[ids[idx[i]].b[0] + 1]++;
	for (i = 1; i <= STORE_SHARDS; i++)
		count[i] += count[i - 1];
	for (i = 0; i < n; i++)
		out[count[ids[idx[i]].b[0]]++] = idx[i];
	memcpy(idx, out, n * sizeof(*idx));
	free(out);
	return 0;
}

/* The ids in the shared index, by shard; with use_local, those the
 * local index holds are taken as present without asking the pool. */
static int shared_lookup_batch(struct store *s, const struct dd_id *ids,
			       size_t n, uint8_t *absent, bool use_local)
{
	struct fill_list list = { NULL, 0, 0 };
	struct dd_chunk_loc loc;
	size_t *idx, nmiss = 0, i, start;
	int rc = 0;

	memset(absent, 0, (n + 7) / 8);
	if (!s->shared || n == 0)
		return 0;
	idx = malloc(n * sizeof(*idx));
	if (!idx)
		return dd_error_set(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		rc = use_local ? store_lookup_raw(s, &ids[i], &loc) : -ENOENT;
		if (rc == -ENOENT) {
			idx[nmiss++] = i;
			absent[i / 8] |= (uint8_t)(1u << (i % 8));
			rc = 0;
		} else if (rc < 0) {
			goto cleanup;
		}
	}
	if (nmiss == 0)
		goto cleanup;
	rc = shared_by_shard(ids, idx, nmiss);
	if (rc < 0)
		goto cleanup;
	for (start = 0, i = 1; i <= nmiss && rc == 0; i++) {
		if (i == nmiss || ids[idx[i]].b[0] != ids[idx[start]].b[0]) {
			size_t k, m = i - start;

			for (k = 0; k < m && rc == 0; k += BACKEND_KV_BATCH)
				rc = shared_get_shard(s, ids, idx + start + k,
					m - k < BACKEND_KV_BATCH ? m - k :
					BACKEND_KV_BATCH, absent, &list, NULL);
			start = i;
		}
	}
	if (rc == 0)
		rc = fill_flush(s, &list);
cleanup:
	fill_release(&list);
	free(idx);
	return rc;
}

int store_prefetch(struct store *s, const struct dd_id *ids, size_t n,
		   uint8_t *absent)
{
	return shared_lookup_batch(s, ids, n, absent, true);
}

int store_shared_get(struct store *s, const struct dd_id *id,
		     struct dd_chunk_loc *loc)
{
	uint8_t absent = 0;
	int rc;

	if (!s->shared)
		return -ENOENT;
	rc = store_prefetch(s, id, 1, &absent);
	if (rc < 0)
		return rc;
	if (absent)
		return -ENOENT;
	return store_lookup_raw(s, id, loc);
}

int store_shared_get_fresh(struct store *s, const struct dd_id *id,
			   struct dd_chunk_loc *loc)
{
	struct fill_list list = { NULL, 0, 0 };
	uint8_t absent = 1;
	size_t idx = 0;
	int rc;

	if (!s->shared)
		return -ENOENT;
	rc = shared_get_shard(s, id, &idx, 1, &absent, &list, loc);
	if (rc == 0 && !absent)
		rc = fill_flush(s, &list);
	fill_release(&list);
	if (rc < 0)
		return rc;
	return absent ? -ENOENT : 0;
}

/* ---- memberships ---- */

struct grant_item {
	struct dd_id id;         /* first: shared_id_cmp orders these */
	size_t at;               /* its place in the caller's arrays */
	char key[SHARED_KEY_MAX];
};

struct shared_grant {
	struct store *s;
	const struct domains_tag *t;
	leveldb_writebatch_t *batch;
	const struct dd_chunk_loc *locs;
	const struct grant_item *it;   /* this read's, by id */
	size_t n;
	uint8_t *granted;
};

static int shared_grant_cb(const char *key, const void *val, size_t vlen,
			   void *payload)
{
	struct shared_grant *g = payload;
	struct dd_chunk_loc loc;
	struct domains_tag t;
	struct dd_id id;
	size_t lo = 0, hi = g->n, i;

	if (!shared_member_parse(key, &id, &t) ||
	    memcmp(t.b, g->t->b, DOMAINS_TAG_LEN) != 0 ||
	    dd_chunk_loc_decode(&loc, val, vlen) < 0)
		return 0;
	while (lo < hi) {      /* the first item of id */
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(g->it[mid].id.b, id.b, DD_ID_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < g->n && dd_id_eq(&g->it[i].id, &id); i++) {
		size_t k = g->it[i].at;

		/* the membership stands for the entry it was made for only:
		 * a chunk that died and was stored afresh, or moved, is
		 * elsewhere */
		if (shared_loc_eq(&g->locs[k], &loc))
			g->granted[k / 8] |= (uint8_t)(1u << (k % 8));
	}
	return 0;
}

/* With the ingest lock held: writes the memberships granted, each only if
 * the entry is still where the caller found it and no upload is storing
 * the chunk afresh (whose batch forgets the memberships it saw). */
static int shared_grant_locked(void *payload)
{
	struct shared_grant *g = payload;
	struct dd_chunk_loc cur;
	size_t i, k, any = 0;

	/* decided and written in one step, as fills are (fill_flush) */
	pthread_mutex_lock(&g->s->learn_lock);
	for (i = 0; i < g->n; i++) {
		k = g->it[i].at;
		if (!(g->granted[k / 8] & (1u << (k % 8))))
			continue;
		if (store_pend_find(g->s, &g->it[i].id) ||
		    store_lookup_raw(g->s, &g->it[i].id, &cur) != 0 ||
		    !shared_loc_eq(&cur, &g->locs[k])) {
			g->granted[k / 8] &= (uint8_t)~(1u << (k % 8));
			continue;
		}
		domains_batch_join(g->batch, g->t, &g->it[i].id);
		any++;
	}
	dd_error_clear();
	if (any)
		shared_cache_write(g->s, g->batch);
	pthread_mutex_unlock(&g->s->learn_lock);
	return 0;
}

int store_shared_grant(struct store *s, const struct domains_tag *t,
		       const struct dd_id *ids,
		       const struct dd_chunk_loc *locs, size_t n,
		       uint8_t *granted)
{
	struct shared_grant g = { s, t, NULL, locs, NULL, 0, granted };
	struct grant_item *it = NULL;
	const char **kp = NULL;
	char name[SHARD_NAME_MAX];
	size_t i, start, k;
	int rc = 0;

	memset(granted, 0, (n + 7) / 8);
	if (!s->shared || !t || n == 0)
		return 0;
	it = malloc(n * sizeof(*it));
	kp = malloc(n * sizeof(*kp));
	g.batch = leveldb_writebatch_create();
	if (!it || !kp || !g.batch) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	for (i = 0; i < n; i++) {
		it[i].id = ids[i];
		it[i].at = i;
	}
	qsort(it, n, sizeof(*it), shared_id_cmp);
	for (i = 0; i < n; i++) {
		shared_member_key(it[i].key, &it[i].id, t);
		kp[i] = it[i].key;
	}
	/* one read a shard (BACKEND_KV_BATCH keys at most) */
	for (start = 0; start < n && rc == 0; start = i) {
		for (i = start + 1; i < n && i - start < BACKEND_KV_BATCH &&
		     it[i].id.b[0] == it[start].id.b[0]; i++)
			;
		/* a read cut by BACKEND_KV_BATCH may split an id's repeats:
		 * each part is answered for its own */
		g.it = it + start;
		g.n = i - start;
		shard_name(name, it[start].id.b[0]);
		rc = backend_omap_get(s->be, name, kp + start, i - start,
				      shared_grant_cb, &g);
	}
	for (k = 0; rc == 0 && k < (n + 7) / 8 && !granted[k]; k++)
		;
	if (rc == 0 && k < (n + 7) / 8) {
		g.it = it;
		g.n = n;
		rc = store_with_ingest_lock(s, shared_grant_locked, &g);
	}
	if (rc < 0)
		memset(granted, 0, (n + 7) / 8);
cleanup:
	if (g.batch)
		leveldb_writebatch_destroy(g.batch);
	free(it);
	free(kp);
	return rc;
}

/* ---- the whole index ---- */

/* Stale memberships a pull deletes from a shard at most (the rest wait
 * for the next collection): 65,536 keys of 82 bytes. */
#define SHARED_STALE_MAX 65536u

struct shared_pull {
	struct store *s;
	struct fill_list list;   /* flushed every 10,000 items */
	uint64_t n;
	bool members;            /* domains in use: take memberships */
	bool prune;              /* delete stale memberships from the pool */
	struct dd_id last;       /* the last entry listed */
	struct dd_chunk_loc last_loc;
	bool have_last;
	char (*stale)[SHARED_KEY_MAX];
	size_t nstale;
	uint64_t pruned;
	struct domains_tag tags[STORE_POOL_TAGS];   /* the domains met */
	size_t ntags;
};

/* Records tag t among the domains the pull met. */
static void shared_pull_tag(struct shared_pull *p, const struct domains_tag *t)
{
	size_t i;

	for (i = 0; i < p->ntags; i++)
		if (memcmp(p->tags[i].b, t->b, DOMAINS_TAG_LEN) == 0)
			return;
	if (p->ntags < STORE_POOL_TAGS)
		p->tags[p->ntags++] = *t;
}

/* A membership key met in a pull: taken when it names the entry listed
 * just before it (a shard lists an entry's memberships right after it),
 * at the same location; stale otherwise (its chunk was removed or moved
 * since), and then deleted by a collection's pull. */
static int shared_pull_member(struct shared_pull *p, const char *key,
			      const void *val, size_t vlen)
{
	struct dd_chunk_loc loc;
	struct domains_tag t;
	struct dd_id id;

	if (!shared_member_parse(key, &id, &t))
		return 0;       /* neither an entry nor a membership */
	shared_pull_tag(p, &t);
	if (p->have_last && dd_id_eq(&p->last, &id) &&
	    dd_chunk_loc_decode(&loc, val, vlen) == 0 &&
	    shared_loc_eq(&loc, &p->last_loc))
		return p->members ? fill_add_member(&p->list, &id, &t, &loc) : 0;
	dd_error_clear();
	if (p->prune && p->nstale < SHARED_STALE_MAX)
		memcpy(p->stale[p->nstale++], key, SHARED_MEMBER_KEY_LEN + 1);
	return 0;
}

static int shared_pull_cb(const char *key, const void *val, size_t vlen,
			  void *payload)
{
	struct shared_pull *p = payload;
	struct dd_chunk_loc loc;
	struct dd_id id;
	int rc;

	if (strlen(key) != DD_ID_HEX_LEN) {
		rc = shared_pull_member(p, key, val, vlen);
	} else {
		if (dd_hex_decode(id.b, DD_ID_LEN, key, DD_ID_HEX_LEN) < 0 ||
		    dd_chunk_loc_decode(&loc, val, vlen) < 0) {
			dd_error_clear();
			p->have_last = false;
			return 0;  /* check reports it */
		}
		rc = fill_add_entry(&p->list, &id, val, vlen);
		p->last = id;
		p->last_loc = loc;
		p->have_last = true;
		p->n++;
	}
	if (rc == 0 && p->list.n >= 10000)
		rc = fill_flush(p->s, &p->list);
	return rc;
}

/* Deletes the stale memberships a pull found in shard `name`. */
static int shared_pull_prune(struct shared_pull *p, const char *name)
{
	const char *kp[256];
	size_t i, k;
	int rc = 0;

	for (i = 0; i < p->nstale && rc == 0; i += k) {
		for (k = 0; k < 256 && i + k < p->nstale; k++)
			kp[k] = p->stale[i + k];
		rc = backend_omap_rm(p->s->be, name, kp, k);
	}
	if (rc == 0)
		p->pruned += p->nstale;
	p->nstale = 0;
	return rc;
}

int store_shared_pull(struct store *s, uint64_t *entries, bool prune)
{
	struct shared_pull p = { .s = s };
	char name[SHARD_NAME_MAX];
	unsigned shard;
	int rc = 0;

	*entries = 0;
	if (!s->shared)
		return 0;
	p.members = (store_flags(s) & STORE_DOMAINS_USED) != 0;
	p.prune = prune && !(s->flags & STORE_OPEN_READONLY);
	if (p.prune && !(p.stale = malloc(SHARED_STALE_MAX *
					  sizeof(*p.stale))))
		rc = dd_error_set(-ENOMEM, "out of memory");
	for (shard = 0; shard < STORE_SHARDS && rc == 0; shard++) {
		shard_name(name, shard);
		p.have_last = false;
		rc = backend_omap_list(s->be, name, shared_pull_cb, &p);
		if (rc == 0 && p.nstale)
			rc = shared_pull_prune(&p, name);
	}
	if (rc == 0)
		rc = fill_flush(s, &p.list);
	if (rc == 0) {
		pthread_mutex_lock(&s->tags_lock);
		memcpy(s->pool_tags, p.tags, p.ntags * sizeof(p.tags[0]));
		s->npool_tags = p.ntags;
		pthread_mutex_unlock(&s->tags_lock);
	}
	fill_release(&p.list);
	free(p.stale);
	*entries = p.n;
	if (p.pruned)
		log_info("deleted %llu stale domain membership(s) from the "
			 "shared index", (unsigned long long)p.pruned);
	if (rc == 0 && !(s->flags & STORE_OPEN_READONLY))
		rc = store_recount(s);
	return rc;
}

struct shared_count {
	uint64_t chunks, bytes;
};

static int shared_count_cb(const char *key, const void *val, size_t vlen,
			   void *payload)
{
	struct shared_count *c = payload;
	struct dd_chunk_loc loc;

	if (strlen(key) != DD_ID_HEX_LEN ||
	    dd_chunk_loc_decode(&loc, val, vlen) < 0)
		return 0;
	c->chunks++;
	c->bytes += loc.plain_len;
	return 0;
}

int store_shared_count(struct store *s, uint64_t *chunks,
		       uint64_t *bytes_unique)
{
	struct shared_count c = { 0, 0 };
	char name[SHARD_NAME_MAX];
	unsigned shard;
	int rc = 0;

	*chunks = 0;
	*bytes_unique = 0;
	if (!s->shared)
		return 0;
	for (shard = 0; shard < STORE_SHARDS && rc == 0; shard++) {
		shard_name(name, shard);
		rc = backend_omap_list(s->be, name, shared_count_cb, &c);
		if (rc == -ENOENT) {  /* a shard nothing was put in yet */
			dd_error_clear();
			rc = 0;
		}
	}
	if (rc == 0) {
		*chunks = c.chunks;
		*bytes_unique = c.bytes;
	}
	return rc;
}

struct shared_seed {
	struct store *s;
	struct dd_id ids[1024];
	struct dd_chunk_loc locs[1024];
	size_t n;
	uint64_t total;
};

static int shared_seed_cb(void *payload, const uint8_t *key, size_t klen,
			  const uint8_t *val, size_t vlen)
{
	struct shared_seed *sd = payload;
	int rc = 0;

	if (klen != 1 + DD_ID_LEN || key[0] != 'c' ||
	    dd_chunk_loc_decode(&sd->locs[sd->n], val, vlen) < 0)
		return 0;
	memcpy(sd->ids[sd->n].b, key + 1, DD_ID_LEN);
	sd->total++;
	if (++sd->n == 1024) {
		rc = store_shared_put(sd->s, sd->ids, sd->locs, sd->n, NULL, 0);
		sd->n = 0;
	}
	return rc;
}

int store_shared_seed(struct store *s)
{
	struct shared_seed *sd;
	uint64_t size;
	int rc;

	if (!s->shared || (s->flags & STORE_OPEN_READONLY))
		return 0;
	rc = backend_stat(s->be, SHARED_SEEDED, &size);
	if (rc != -ENOENT)
		return rc;
	dd_error_clear();
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return dd_error_set(-ENOMEM, "out of memory");
	sd->s = s;
	rc = store_index_scan(s, "c", 1, shared_seed_cb, sd);
	if (rc == 0)
		rc = store_shared_put(s, sd->ids, sd->locs, sd->n, NULL, 0);
	if (rc == 0) {
		rc = backend_put(s->be, SHARED_SEEDED, "1\n", 2);
		if (rc == -EEXIST) {
			dd_error_clear();
			rc = 0;
		}
	}
	if (rc == 0 && sd->total)
		log_info("published %llu chunk(s) of the local index to the "
			 "shared index", (unsigned long long)sd->total);
	free(sd);
	return rc;
}

/* ---- the cache and the gc epoch ---- */

int store_cache_epoch_load(struct store *s)
{
	char *err = NULL, *v;
	size_t vlen = 0;

	s->cache_epoch_known = false;
	s->cache_epoch = 0;
	if (!s->shared)
		return 0;
	pthread_rwlock_rdlock(&s->db_lock);
	v = s->db ? leveldb_get(s->db, s->ropts, STORE_CACHE_EPOCH_KEY,
				strlen(STORE_CACHE_EPOCH_KEY), &vlen, &err)
		  : NULL;
	pthread_rwlock_unlock(&s->db_lock);
	if (err)
		return store_db_error(err, "read the index");
	if (v && vlen == 8) {
		s->cache_epoch = dd_le64((const uint8_t *)v);
		s->cache_epoch_known = true;
	}
	leveldb_free(v);
	return 0;
}

/* cache_lock held: whether the cache may hold entries that a collection
 * of another front-end removed by epoch n (bumped last by `by`). */
static bool cache_stale_for(const struct store *s, uint64_t n, uint32_t by)
{
	if (!s->cache_epoch_known)
		return n > 0;
	if (n <= s->cache_epoch)
		return false;
	return !(n == s->cache_epoch + 1 && by == s->fe);
}

/* cache_lock held: records epoch n without dropping anything (unsynced:
 * a record lost in a crash only makes the next start drop the cache). */
static void cache_epoch_record(struct store *s, uint64_t n)
{
	leveldb_writebatch_t *b;
	uint8_t val[8];

	if (s->cache_epoch_known && s->cache_epoch == n)
		return;
	s->cache_epoch = n;
	s->cache_epoch_known = true;
	if (s->flags & STORE_OPEN_READONLY)
		return;
	b = leveldb_writebatch_create();
	if (!b)
		return;
	dd_put_le64(val, n);
	leveldb_writebatch_put(b, STORE_CACHE_EPOCH_KEY,
			       strlen(STORE_CACHE_EPOCH_KEY),
			       (const char *)val, sizeof(val));
	shared_cache_write(s, b);
	leveldb_writebatch_destroy(b);
}

bool store_cache_reflects(struct store *s, uint64_t n, uint32_t by)
{
	bool ok;

	if (!s->shared)
		return true;
	pthread_mutex_lock(&s->cache_lock);
	ok = !cache_stale_for(s, n, by);
	pthread_mutex_unlock(&s->cache_lock);
	return ok;
}

/* cache_lock held, and gc_lock (the caller's or this store's collection
 * in its first step): brings the cache up to epoch n. */
static int cache_bring_up(struct store *s, uint64_t n, uint32_t by,
			  uint64_t *dropped)
{
	int rc;

	if (!cache_stale_for(s, n, by)) {
		cache_epoch_record(s, n);
		return 0;
	}
	if (s->flags & STORE_OPEN_READONLY)
		return dd_error_set(-EROFS, "the local index is a stale cache "
				    "of the shared one and is open read-only");
	rc = store_cache_drop_to(s, n, dropped);
	if (rc == 0)
		log_info("a collection ran on another front-end: dropped "
			 "%llu cached index entries (gc epoch %llu)",
			 (unsigned long long)*dropped, (unsigned long long)n);
	return rc;
}

/* One attempt: 1 when this store's collection holds gc_lock and the
 * cache is still stale (nothing done). */
static int cache_observe_once(struct store *s, uint64_t n, uint32_t by,
			      uint64_t *dropped)
{
	int rc = 0;

	pthread_mutex_lock(&s->cache_lock);
	if (!cache_stale_for(s, n, by)) {
		cache_epoch_record(s, n);
	} else if (pthread_mutex_trylock(&s->gc_lock) != 0) {
		rc = 1;
	} else {
		rc = cache_bring_up(s, n, by, dropped);
		pthread_mutex_unlock(&s->gc_lock);
	}
	pthread_mutex_unlock(&s->cache_lock);
	return rc;
}

int store_cache_observe(struct store *s, uint64_t n, uint32_t by,
			double wait_sec, uint64_t *dropped)
{
	double until = dd_monotonic() + wait_sec;
	uint64_t none;
	int rc;

	if (!dropped)
		dropped = &none;
	*dropped = 0;
	if (!s->shared)
		return 0;
	/* never drop under this store's collection: it works from the
	 * local index, and would take what it no longer sees for dead; it
	 * brings the cache up itself before it reads it */
	while ((rc = cache_observe_once(s, n, by, dropped)) == 1 &&
	       dd_monotonic() < until)
		usleep(50 * 1000);
	if (rc == 1)
		return dd_error_set(-EBUSY, "the local index cache is stale "
				    "(a collection ran on another front-end) "
				    "and this front-end's own collection holds "
				    "it: try again in a moment");
	return rc;
}

int store_gc_cache_refresh(struct store *s, uint64_t n, uint32_t by,
			   uint64_t *dropped)
{
	int rc;

	*dropped = 0;
	if (!s->shared)
		return 0;
	pthread_mutex_lock(&s->cache_lock);
	rc = cache_bring_up(s, n, by, dropped);
	pthread_mutex_unlock(&s->cache_lock);
	return rc;
}

int store_shared_verify(struct store *s, const struct dd_id *ids, size_t n,
			uint8_t *absent)
{
	return shared_lookup_batch(s, ids, n, absent, false);
}
