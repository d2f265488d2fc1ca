/*
 * regrant.c - dedup-domain memberships given back from the snapshots
 * (regrant.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <leveldb/c.h>

#include "backend.h"
#include "catalog.h"
#include "catsource.h"
#include "domains.h"
#include "log.h"
#include "regrant.h"
#include "repo.h"
#include "snapshots.h"
#include "store.h"
#include "tokens.h"

/* Memberships written per synced batch. */
#define REGRANT_BATCH 16384u

struct regrant_snap {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
};

struct regrant {
	struct store *st;
	leveldb_writebatch_t *batch;
	size_t pending;
	uint64_t granted;
	struct regrant_snap *v;    /* every snapshot, from the walk */
	size_t n;
	const int *cancel;         /* set: stop with -ECANCELED */
};

static int regrant_collect_cb(void *payload, const struct snapshots_item *it)
{
	struct regrant *g = payload;
	struct regrant_snap *v;

	v = realloc(g->v, (g->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	g->v = v;
	snprintf(v[g->n].id, sizeof(v[g->n].id), "%s", it->id);
	snprintf(v[g->n].client, sizeof(v[g->n].client), "%s", it->client);
	g->n++;
	return 0;
}

static int regrant_apply_locked(void *payload)
{
	struct regrant *g = payload;

	return store_index_apply(g->st, g->batch);
}

static int regrant_flush(struct regrant *g)
{
	int rc;

	if (!g->pending)
		return 0;
	rc = store_with_ingest_lock(g->st, regrant_apply_locked, g);
	leveldb_writebatch_clear(g->batch);
	g->pending = 0;
	return rc;
}

/* t becomes a member of id if id is stored (no orphan is made). */
static int regrant_one(struct regrant *g, const struct domains_tag *t,
		       const struct dd_id *id)
{
	struct dd_chunk_loc loc;
	int rc;

	if (g->cancel && __atomic_load_n(g->cancel, __ATOMIC_RELAXED))
		return -ECANCELED;
	rc = store_lookup(g->st, id, &loc);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	domains_batch_join(g->batch, t, id);
	g->granted++;
	if (++g->pending < REGRANT_BATCH)
		return 0;
	return regrant_flush(g);
}

struct regrant_to {
	struct regrant *g;
	const struct domains_tag *t;
};

static int regrant_chunk(void *arg, const struct dd_chunk_ref *ref)
{
	struct regrant_to *to = arg;

	return regrant_one(to->g, to->t, &ref->id);
}

/* Every chunk of one snapshot's catalog and files, for domain t. A
 * catalog that cannot be read is a warning, not a stop: check names it,
 * and the other snapshots still get their memberships. */
static int regrant_snapshot(struct regrant *g, struct snapshots *snaps,
			    const struct regrant_snap *sn,
			    const struct domains_tag *t)
{
	struct regrant_to to = { g, t };
	struct dd_id *cat = NULL;
	json_t *m = NULL;
	size_t ncat = 0, k;
	int rc;

	dd_error_clear();
	rc = snapshots_load(snaps, sn->id, &m);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = snapshots_manifest_catalog(m, &cat, &ncat);
	json_decref(m);
	for (k = 0; rc == 0 && k < ncat; k++)
		rc = regrant_one(g, t, &cat[k]);
	if (rc == 0)
		rc = catsource_each_chunk(g->st, cat, ncat, regrant_chunk, &to);
	free(cat);
	if (rc == -EBADMSG || rc == -ENOENT || rc == -EINVAL) {
		log_warning("snapshot %s (client %s): %s; its chunks stay held "
			    "by no dedup domain", sn->id, sn->client,
			    log_reason(rc));
		return 0;
	}
	return rc;
}

/* The domain of `client` in *t; false if the client is gone. */
static bool regrant_domain_of(const struct tokens_list *l, const char *client,
			      struct domains_tag *t)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, client) == 0) {
			domains_tag_of(t, l->v[i].domain);
			return true;
		}
	return false;
}

static int regrant_load_clients(struct tokens_list *l, const char *repo)
{
	char path[4200];
	int rc;

	memset(l, 0, sizeof(*l));
	rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);
	if (rc == 0)
		rc = tokens_list_load(l, path);
	if (rc == -ENOENT) {
		dd_error_clear();
		rc = 0;
	}
	return rc;
}

/* ---- snapshots adopted from the pool (several front-ends) ---- */

static void regrant_mark_key(uint8_t key[1 + DD_ID_LEN],
			     const struct dd_id *id)
{
	key[0] = REGRANT_ADOPTED_PREFIX;
	memcpy(key + 1, id->b, DD_ID_LEN);
}

int regrant_adopt_mark(struct store *st, const char *id)
{
	static const char one = 1;
	struct regrant g = { .st = st };
	uint8_t key[1 + DD_ID_LEN];
	struct dd_id sid;
	int rc;

	if (!(store_flags(st) & STORE_DOMAINS_USED))
		return 0;
	if (dd_id_from_hex(&sid, id) < 0)
		return dd_error_set(-EINVAL, "bad snapshot id '%.64s'", id);
	regrant_mark_key(key, &sid);
	if (!(g.batch = leveldb_writebatch_create()))
		return dd_error_set(-ENOMEM, "out of memory");
	leveldb_writebatch_put(g.batch, (const char *)key, sizeof(key), &one,
			       1);
	g.pending = 1;
	rc = regrant_flush(&g);
	leveldb_writebatch_destroy(g.batch);
	return rc;
}

static int regrant_marks_cb(void *payload, const uint8_t *key, size_t klen,
			    const uint8_t *val, size_t vlen)
{
	struct regrant *g = payload;
	struct regrant_snap *v;

	(void)val;
	(void)vlen;
	if (klen != 1 + DD_ID_LEN)
		return 0;
	v = realloc(g->v, (g->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	g->v = v;
	dd_hex_encode(v[g->n].id, key + 1, DD_ID_LEN);
	v[g->n].client[0] = '\0';
	g->n++;
	return 0;
}

/* Whether the pool holds snapshot id's manifest (a store whose backend
 * is not the directory): a manifest a lookup takes from the pool is
 * marked before this directory adopts it, so a mark may be read in
 * between; it is kept for the next tick then. */
static bool regrant_in_pool(struct store *st, const char *id)
{
	struct backend *be = store_backend(st);
	char name[128];
	uint64_t size;
	int rc;

	if (strcmp(backend_kind(be), "dir") == 0)
		return false;
	snprintf(name, sizeof(name), REPO_SNAPSHOTS "/%s.json", id);
	rc = backend_stat(be, name, &size);
	dd_error_clear();
	return rc == 0;
}

/* The client that made snapshot sn->id into sn->client: 1, or 0 when the
 * snapshot is gone, or -EIO etc. */
static int regrant_client_of(struct snapshots *snaps, struct regrant_snap *sn)
{
	json_t *m = NULL;
	const char *client;
	int rc = snapshots_load(snaps, sn->id, &m);

	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	client = json_string_value(json_object_get(m, "client"));
	snprintf(sn->client, sizeof(sn->client), "%s", client ? client : "");
	json_decref(m);
	return 1;
}

int regrant_adopted(struct store *st, struct snapshots *snaps,
		    const char *repo, const int *cancel, uint64_t *granted)
{
	const uint8_t prefix = REGRANT_ADOPTED_PREFIX;
	struct regrant g = { .st = st, .cancel = cancel };
	struct tokens_list clients;
	uint8_t key[1 + DD_ID_LEN];
	struct domains_tag t;
	struct dd_id sid;
	size_t i, done = 0;
	int rc;

	if (granted)
		*granted = 0;
	rc = store_index_scan(st, &prefix, 1, regrant_marks_cb, &g);
	if (rc < 0 || !g.n) {
		free(g.v);
		return rc;
	}
	rc = regrant_load_clients(&clients, repo);
	if (rc < 0) {
		free(g.v);
		return rc;
	}
	if (!(g.batch = leveldb_writebatch_create()))
		rc = dd_error_set(-ENOMEM, "out of memory");
	for (i = 0; rc == 0 && i < g.n; i++) {
		rc = regrant_client_of(snaps, &g.v[i]);
		if (rc > 0 && !regrant_domain_of(&clients, g.v[i].client, &t)) {
			rc = 0;
			continue;       /* a client not known here yet */
		}
		if (rc == 0 && regrant_in_pool(st, g.v[i].id))
			continue;       /* being adopted: the next tick */
		if (rc > 0)
			rc = regrant_snapshot(&g, snaps, &g.v[i], &t);
		if (rc < 0)
			break;
		(void)dd_id_from_hex(&sid, g.v[i].id);
		regrant_mark_key(key, &sid);
		leveldb_writebatch_delete(g.batch, (const char *)key,
					  sizeof(key));
		g.pending++;
		done++;
	}
	if (rc == 0)
		rc = regrant_flush(&g);
	if (rc == 0 && g.granted)
		log_info("dedup domains: %llu membership(s) given from %zu "
			 "snapshot(s) adopted from the pool",
			 (unsigned long long)g.granted, done);
	if (granted)
		*granted = g.granted;
	if (g.batch)
		leveldb_writebatch_destroy(g.batch);
	free(g.v);
	tokens_list_release(&clients);
	return rc;
}

int regrant_run(struct store *st, struct snapshots *snaps, const char *repo,
		uint64_t *granted)
{
	struct regrant g = { .st = st };
	struct tokens_list clients;
	struct domains_tag t;
	size_t i;
	int rc;

	if (granted)
		*granted = 0;
	rc = domains_regrant_pending(st);
	if (rc <= 0)
		return rc;
	rc = regrant_load_clients(&clients, repo);
	if (rc < 0)
		return rc;
	g.batch = leveldb_writebatch_create();
	rc = snapshots_foreach(snaps, regrant_collect_cb, &g);
	for (i = 0; rc == 0 && i < g.n; i++)
		if (regrant_domain_of(&clients, g.v[i].client, &t))
			rc = regrant_snapshot(&g, snaps, &g.v[i], &t);
	if (rc == 0)
		rc = regrant_flush(&g);
	if (rc == 0)
		rc = domains_regrant_done(st);
	if (rc == 0)
		log_info("dedup domains: %llu membership(s) given back from "
			 "%zu snapshot(s) after the index rebuild",
			 (unsigned long long)g.granted, g.n);
	if (granted)
		*granted = g.granted;
	leveldb_writebatch_destroy(g.batch);
	free(g.v);
	tokens_list_release(&clients);
	return rc;
}
