/*
 * poolstats.c - see poolstats.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "frontends.h"
#include "log.h"
#include "poolstats.h"
#include "store.h"
#include "util.h"

struct poolstats {
	pthread_mutex_t lock;       /* view */
	struct store *st;
	struct backend *be;
	uint32_t fe;
	struct poolstats_view view;
	uint64_t sig;               /* the counters the last count saw */
	double next_count;          /* monotonic: no count before this */
	uint64_t damaged_sig;       /* the damaged objects last logged */
};

/* One front-end's publication, as checked. */
struct poolstats_pub {
	uint32_t fe;
	int64_t time;
	uint64_t backups, chunks, bytes;
};

int poolstats_new(struct poolstats **out, struct store *st, uint32_t fe)
{
	struct poolstats *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return dd_error_set(-ENOMEM, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	p->st = st;
	p->be = store_backend(st);
	p->fe = fe;
	*out = p;
	return 0;
}

void poolstats_free(struct poolstats *p)
{
	char name[64];

	if (!p)
		return;
	snprintf(name, sizeof(name), POOLSTATS_PREFIX "%u", p->fe);
	backend_remove(p->be, name);
	dd_error_clear();
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void poolstats_view(struct poolstats *p, struct poolstats_view *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	*out = p->view;
	pthread_mutex_unlock(&p->lock);
}

/* ---- publishing ---- */

static int poolstats_publish(struct poolstats *p, unsigned open_sessions,
			     const struct poolstats_pub *own)
{
	char name[64];
	json_t *j;
	char *text;
	int rc;

	snprintf(name, sizeof(name), POOLSTATS_PREFIX "%u", p->fe);
	j = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I}",
		      "version", POOLSTATS_VERSION,
		      "frontend", (json_int_t)p->fe,
		      "time", (json_int_t)own->time,
		      "backups_in_progress", (json_int_t)open_sessions,
		      "local_chunks", (json_int_t)own->chunks,
		      "local_bytes", (json_int_t)own->bytes);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return dd_error_set(-ENOMEM, "out of memory");
	rc = frontends_pool_replace(p->be, name, text, strlen(text));
	free(text);
	return rc;
}

/* ---- reading the others ---- */

static bool pub_u64(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* Checks one object's text: 0, or -EBADMSG with *why set. */
static int pub_parse(const char *name, const uint8_t *data, size_t len,
		     struct poolstats_pub *pub, const char **why)
{
	const char *num = name + strlen(POOLSTATS_PREFIX);
	uint64_t version = 0, fe = 0, t = 0;
	unsigned long named;
	json_error_t err;
	char *end;
	json_t *o;
	int rc = -EBADMSG;

	errno = 0;
	named = strtoul(num, &end, 10);
	if (errno || end == num || *end || named >= 65536) {
		*why = "not named by a front-end number";
		return rc;
	}
	o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(o))
		*why = "not a JSON object";
	else if (!pub_u64(o, "version", &version) ||
		 version != POOLSTATS_VERSION)
		*why = "of an unknown version";
	else if (!pub_u64(o, "frontend", &fe) || fe != named)
		*why = "of another front-end";
	else if (!pub_u64(o, "time", &t) || t == 0 || t > INT64_MAX / 2 ||
		 !pub_u64(o, "backups_in_progress", &pub->backups) ||
		 pub->backups > 1000000 ||
		 !pub_u64(o, "local_chunks", &pub->chunks) ||
		 !pub_u64(o, "local_bytes", &pub->bytes))
		*why = "missing a figure or out of range";
	else
		rc = 0;
	json_decref(o);
	pub->fe = (uint32_t)named;
	pub->time = (int64_t)t;
	return rc;
}

/* FNV-1a of one publication's index counters: a front-end's change
 * shows in the sum of them all, whatever order they are listed in. */
static uint64_t pub_sig(const struct poolstats_pub *pub)
{
	uint64_t v[3] = { pub->fe, pub->chunks, pub->bytes };
	uint64_t h = 1469598103934665603ULL;
	const uint8_t *b = (const uint8_t *)v;
	size_t i;

	for (i = 0; i < sizeof(v); i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

struct peers_read {
	struct poolstats *p;
	int64_t now;
	size_t seen;
	unsigned live;
	uint64_t backups, sig, damaged_sig;
	int64_t oldest;
	bool log_damaged;           /* second pass: log them */
};

static void peer_damaged(struct peers_read *r, const char *name,
			 const uint8_t *data, size_t len, const char *why)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; name[i]; i++)
		h = (h ^ (uint8_t)name[i]) * 1099511628211ULL;
	for (i = 0; data && i < len; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	r->damaged_sig += h;
	if (r->log_damaged)
		log_warning("skipping the pool's stats object '%s': %s",
			    name, why);
}

static int peers_cb(const char *name, void *payload)
{
	struct peers_read *r = payload;
	struct poolstats_pub pub;
	const char *why = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	if (++r->seen > POOLSTATS_PEERS_MAX)
		return 0;
	rc = backend_get(r->p->be, name, POOLSTATS_OBJ_MAX, &data, &len);
	if (rc == -ENOENT) {  /* its front-end stopped meanwhile */
		dd_error_clear();
		return 0;
	}
	if (rc < 0) {
		why = rc == -EFBIG || rc == -E2BIG ? "too large" :
			log_reason(rc);
		peer_damaged(r, name, NULL, 0, why);
		dd_error_clear();
		return 0;
	}
	rc = pub_parse(name, data, len, &pub, &why);
	if (rc < 0)
		peer_damaged(r, name, data, len, why);
	free(data);
	if (rc < 0 || pub.fe == r->p->fe ||
	    pub.time + FRONTENDS_ALIVE_SEC < r->now)
		return 0;
	r->live++;
	r->backups += pub.backups;
	r->sig += pub_sig(&pub);
	if (!r->oldest || pub.time < r->oldest)
		r->oldest = pub.time;
	return 0;
}

/* Calls peers_cb with the publication of every front-end number the
 * pool has given but this one's: read by name, not found by listing the
 * pool (a pass over all its objects, packs included, each tick); past
 * POOLSTATS_BY_NUMBER numbers (front-ends joined and retired over the
 * years), by the listing. */
static int poolstats_each_peer(struct poolstats *p, struct peers_read *r)
{
	char name[64];
	uint32_t n, i;
	int rc = frontends_numbers(p->be, &n);

	if (rc == 0 && n > POOLSTATS_BY_NUMBER)
		return backend_list(p->be, POOLSTATS_PREFIX, peers_cb, r);
	for (i = 0; rc == 0 && i < n; i++) {
		if (i == p->fe)
			continue;
		snprintf(name, sizeof(name), POOLSTATS_PREFIX "%u", i);
		rc = peers_cb(name, r);
	}
	return rc;
}

/* Reads every other front-end's publication; logs the damaged ones when
 * they differ from the last tick's. */
static int poolstats_read_peers(struct poolstats *p, struct peers_read *r)
{
	int rc = poolstats_each_peer(p, r);

	if (rc == 0 && r->damaged_sig && r->damaged_sig != p->damaged_sig) {
		struct peers_read again = { .p = p, .now = r->now,
					    .log_damaged = true };

		rc = poolstats_each_peer(p, &again);
	}
	if (rc == 0)
		p->damaged_sig = r->damaged_sig;
	return rc;
}

int poolstats_tick(struct poolstats *p, unsigned open_sessions)
{
	struct poolstats_pub own = { .fe = p->fe, .time = dd_now() };
	struct peers_read r = { .p = p, .now = own.time };
	uint64_t chunks = 0, bytes = 0;
	bool recount;
	int rc;

	store_counters(p->st, &own.chunks, &own.bytes);
	rc = poolstats_publish(p, open_sessions, &own);
	if (rc == 0)
		rc = poolstats_read_peers(p, &r);
	if (rc < 0)
		return rc;
	r.sig += pub_sig(&own);
	recount = !p->view.counted ||
		(dd_monotonic() >= p->next_count && (r.sig != p->sig ||
		 own.time - p->view.index_as_of >= POOLSTATS_RECOUNT_SEC));
	if (recount) {
		double t0 = dd_monotonic();

		rc = store_shared_count(p->st, &chunks, &bytes);
		/* a large index is counted less often: at most 1/10 of
		 * the time goes to counting */
		p->next_count = dd_monotonic() +
			POOLSTATS_COUNT_SHARE * (dd_monotonic() - t0);
	}
	pthread_mutex_lock(&p->lock);
	p->view.frontends = r.live + 1;
	p->view.peer_backups = r.backups;
	p->view.peers_as_of = r.oldest;
	if (recount && rc == 0) {
		p->view.counted = true;
		p->view.chunks = chunks;
		p->view.bytes_unique = bytes;
		p->view.index_as_of = own.time;
		p->sig = r.sig;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}
