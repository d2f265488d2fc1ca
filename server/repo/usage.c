/*
 * usage.c - see usage.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zstd.h>

#include "catalog.h"
#include "log.h"
#include "catsource.h"
#include "usage.h"
#include "util.h"

#define USAGE_SHARED (-1)
/* Seconds a request waits for a recount that started this recently. */
#define USAGE_REBUILD_WAIT 0.5
/* Seconds before a failed recount is tried again. */
#define USAGE_RETRY_AFTER 30.0
/* The saved counts: at most this many bytes and clients, saved again at
 * most this often while snapshots are added (usage_set_file). */
#define USAGE_SAVED_MAX (16u * 1024 * 1024)
#define USAGE_SAVED_CLIENTS 100000u
#define USAGE_SAVE_EVERY 60.0
/* From a stop on, a save (the stop's own, or a tick's that was running)
 * counts the snapshots created since the last one for at most this many
 * seconds in all, and saves nothing past it (the next start then counts
 * afresh): a stop does not wait on a minute's worth of catalogs.
 * DEDUP_TEST_USAGE_FINAL_SECONDS sets another bound. */
#define USAGE_FINAL_SECONDS 10.0

/* One distinct chunk; owner is a client index or USAGE_SHARED. An empty
 * slot has len 0 (no chunk is empty). */
struct usage_slot {
	struct dd_id id;
	uint32_t len;
	int32_t owner;
};

/* The counts of a set of snapshots. */
struct usage_map {
	struct usage_slot *map;
	size_t cap, used;           /* cap is a power of two */
	struct usage_client *clients;
	size_t nclients;
	char (*done)[DD_ID_HEX_LEN + 1];   /* snapshots already counted,
					    * sorted */
	size_t ndone;
};

struct usage {
	pthread_mutex_t lock;       /* `cur` and the fields below */
	struct usage_map cur;
	/* The recount after a snapshot went away, on a thread of its own
	 * (usage_rebuild_main) that reads every catalog without the lock:
	 * meanwhile `cur` answers (usage.h). */
	pthread_t thread;
	bool thread_joinable;
	bool rebuilding;
	bool counted;               /* `cur` holds a whole count */
	bool stop;
	double rebuild_started;     /* dd_monotonic() */
	double rebuild_failed;      /* when the last one failed, or 0 */
	pthread_cond_t rebuilt_cv;  /* the recount ended */
	struct snapshots *snaps;    /* borrowed, for the thread */
	struct store *st;
	unsigned test_delay_ms;     /* DEDUP_TEST_USAGE_REBUILD_MS */
	double final_seconds;       /* USAGE_FINAL_SECONDS, or the test's */
	double stop_by;             /* dd_monotonic(): counts give up after
				     * it; 0 until the stop (atomic) */
	/* The counts of the last whole count, kept in `save_path` for the
	 * next start: until its own first count ends, the quota checks
	 * use them (usage_client_bytes). */
	char *save_path;
	struct usage_client *saved;
	size_t nsaved;
	bool have_saved;            /* and they count today's snapshots */
	char (*saved_ids)[DD_ID_HEX_LEN + 1];   /* those snapshots, sorted */
	size_t nsaved_ids;
	bool saved_stale;           /* one of them is gone: saved not used */
	bool first_done;            /* this run counted: saved not used */
	double saved_at;            /* dd_monotonic() of the last save */
	bool dirty;                 /* `cur` changed since it was saved */
	bool save_soon;             /* a count ended: save at the next tick */
	struct dd_ticker *saver;    /* usage_tick, every second */
};

/* A snapshot to read: its client and catalog ids. */
struct usage_todo {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	struct dd_id *catalog;
	size_t ncatalog;
};

int usage_new(struct usage **out)
{
	struct usage *u = calloc(1, sizeof(*u));
	const char *env = getenv("DEDUP_TEST_USAGE_REBUILD_MS");

	*out = NULL;
	if (!u)
		return -ENOMEM;
	pthread_condattr_t ca;

	pthread_mutex_init(&u->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->rebuilt_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (env)
		u->test_delay_ms = (unsigned)strtoul(env, NULL, 10);
	env = getenv("DEDUP_TEST_USAGE_FINAL_SECONDS");
	u->final_seconds = env ? strtod(env, NULL) : USAGE_FINAL_SECONDS;
	*out = u;
	return 0;
}

static void usage_reset(struct usage_map *m)
{
	free(m->map);
	free(m->clients);
	free(m->done);
	memset(m, 0, sizeof(*m));
}

/* ---- the saved counts ---- */

static int usage_update(struct usage *u, struct snapshots *snaps,
			struct store *st, const double *deadline);
static int usage_cmp_done(const void *a, const void *b);

/* The digest of a set of snapshot ids, sorted: n ids of 65 bytes (64
 * hex digits and a NUL) hashed as one run. */
static void usage_set_digest(const char (*ids)[DD_ID_HEX_LEN + 1], size_t n,
			     char hex[DD_ID_HEX_LEN + 1])
{
	struct dd_id d;

	dd_sha256(&d, n ? (const void *)ids : "", n * sizeof(ids[0]));
	dd_id_to_hex(hex, &d);
}

/*
 * `cur`'s clients and the set of snapshots they count, as the text of
 * usage.json; NULL when there is nothing whole to save or no memory.
 * Called locked.
 */
static char *usage_save_text(struct usage *u)
{
	char set[DD_ID_HEX_LEN + 1];
	json_t *root, *arr = json_array();
	char *text = NULL;
	size_t i;

	if (!u->counted || !arr) {
		json_decref(arr);
		return NULL;
	}
	for (i = 0; i < u->cur.nclients; i++) {
		const struct usage_client *c = &u->cur.clients[i];

		if (json_array_append_new(arr, json_pack(
			    "{s:s, s:I, s:I}", "name", c->name,
			    "bytes_unique", (json_int_t)c->bytes_unique,
			    "chunks_unique",
			    (json_int_t)c->chunks_unique)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	usage_set_digest((const char (*)[DD_ID_HEX_LEN + 1])u->cur.done,
			 u->cur.ndone, set);
	root = json_pack("{s:i, s:I, s:s, s:o}", "version", 1, "snapshots",
			 (json_int_t)u->cur.ndone, "snapshot_set", set,
			 "clients", arr);
	if (root)
		text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

/* Writes the text usage_save_text made (only the saver does: one writer
 * at a time). A failure is logged; the next save tries again. */
static void usage_save_write(struct usage *u, char *text)
{
	if (dd_write_file_atomic(u->save_path, text, strlen(text), 0600) < 0) {
		log_warning("usage: cannot save the counts to %s: %s",
			    u->save_path, dd_error_last());
		pthread_mutex_lock(&u->lock);
		u->dirty = true;
		pthread_mutex_unlock(&u->lock);
	}
	free(text);
}

/*
 * Brings `cur` up to date (the snapshots created since the last request)
 * and saves it when it changed: right after a count, else at most every
 * USAGE_SAVE_EVERY seconds; `final` at the stop. Never on a request's
 * path: on the saver's tick (and at the stop).
 */
static void usage_save_now(struct usage *u, bool final)
{
	char *text = NULL;
	double now = dd_monotonic();
	int rc;

	pthread_mutex_lock(&u->lock);
	if (u->counted &&
	    (final || u->save_soon || now - u->saved_at >= USAGE_SAVE_EVERY)) {
		u->saved_at = now;
		rc = usage_update(u, u->snaps, u->st, &u->stop_by);
		if (rc == 0 && u->dirty && (text = usage_save_text(u)))
			u->dirty = u->save_soon = false;
		if (rc == -ECANCELED)
			log_warning("usage: the counts were not saved at the "
				    "stop: counting the newest snapshots took "
				    "over %g s (the next start counts "
				    "afresh)", u->final_seconds);
	}
	pthread_mutex_unlock(&u->lock);
	if (text)
		usage_save_write(u, text);
}

static void usage_tick(void *arg)
{
	usage_save_now(arg, false);
}

/* Parses saved counts; -EBADMSG with a reason if they are not sane. */
static int usage_parse_saved(const char *text, size_t len,
			     struct usage_client **out, size_t *nout,
			     char set[DD_ID_HEX_LEN + 1])
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr), *arr, *c, *js;
	struct usage_client *v = NULL;
	size_t i, n;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	arr = root ? json_object_get(root, "clients") : NULL;
	js = root ? json_object_get(root, "snapshot_set") : NULL;
	if (!root || json_integer_value(json_object_get(root, "version")) !=
	    1 || !json_is_array(arr) ||
	    (n = json_array_size(arr)) > USAGE_SAVED_CLIENTS ||
	    !json_is_string(js) || json_string_length(js) != DD_ID_HEX_LEN) {
		json_decref(root);
		return dd_error_set(-EBADMSG, "not a usage file of version 1");
	}
	snprintf(set, DD_ID_HEX_LEN + 1, "%s", json_string_value(js));
	if (n && !(v = calloc(n, sizeof(*v))))
		rc = -ENOMEM;
	json_array_foreach(arr, i, c) {
		json_t *name = json_object_get(c, "name");
		json_t *b = json_object_get(c, "bytes_unique");
		json_t *k = json_object_get(c, "chunks_unique");

		if (rc < 0)
			break;
		if (!json_is_string(name) ||
		    json_string_length(name) == 0 ||
		    json_string_length(name) > DD_CLIENT_NAME_MAX ||
		    !json_is_integer(b) || json_integer_value(b) < 0 ||
		    !json_is_integer(k) || json_integer_value(k) < 0) {
			rc = dd_error_set(-EBADMSG, "client %zu of the usage "
					  "file is malformed", i);
			break;
		}
		snprintf(v[i].name, sizeof(v[i].name), "%s",
			 json_string_value(name));
		v[i].bytes_unique = (uint64_t)json_integer_value(b);
		v[i].chunks_unique = (uint64_t)json_integer_value(k);
	}
	json_decref(root);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Collects the ids of the snapshots there are now. */
struct usage_ids {
	char (*ids)[DD_ID_HEX_LEN + 1];
	size_t n, alloc;
};

static int usage_ids_cb(void *payload, const struct snapshots_item *it)
{
	struct usage_ids *v = payload;

	if (v->n == v->alloc) {
		size_t na = v->alloc ? v->alloc * 2 : 256;
		void *p = realloc(v->ids, na * sizeof(v->ids[0]));

		if (!p)
			return -ENOMEM;
		v->ids = p;
		v->alloc = na;
	}
	memset(v->ids[v->n], 0, sizeof(v->ids[0]));
	snprintf(v->ids[v->n++], sizeof(v->ids[0]), "%s", it->id);
	return 0;
}

int usage_set_file(struct usage *u, const char *path, struct snapshots *snaps)
{
	struct usage_ids now = { NULL, 0, 0 };
	char set[DD_ID_HEX_LEN + 1], set_now[DD_ID_HEX_LEN + 1];
	uint8_t *text = NULL;
	size_t len = 0;
	int rc;

	free(u->save_path);
	if (!(u->save_path = strdup(path)))
		return -ENOMEM;
	rc = dd_read_file(path, USAGE_SAVED_MAX, &text, &len);
	if (rc == -ENOENT)
		return 0;       /* never counted here: nothing to go by */
	if (rc == 0)
		rc = usage_parse_saved((const char *)text, len, &u->saved,
				       &u->nsaved, set);
	free(text);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		log_warning("usage: ignoring %s: %s (quota checks wait for the "
			    "first count)", path, dd_error_last());
		return 0;
	}
	/* Only the very set of snapshots they counted: one forgotten, made
	 * or copied in since (a prune, another front-end) makes them wrong. */
	rc = snapshots_foreach(snaps, usage_ids_cb, &now);
	if (rc == 0) {
		if (now.n)
			qsort(now.ids, now.n, sizeof(now.ids[0]),
			      usage_cmp_done);
		usage_set_digest((const char (*)[DD_ID_HEX_LEN + 1])now.ids,
				 now.n, set_now);
		if (strcmp(set, set_now) == 0) {
			u->have_saved = true;
			u->saved_ids = now.ids;         /* kept */
			u->nsaved_ids = now.n;
			now.ids = NULL;
		} else
			log_info("usage: %s counts another set of snapshots "
				 "than there is now: not used (quota checks "
				 "wait for the first count)", path);
	}
	free(now.ids);
	return rc == -ENOMEM ? rc : 0;
}

void usage_free(struct usage *u)
{
	bool joinable;
	double by;

	if (!u)
		return;
	/* Bounds the count of a tick running now as well as the stop's, and
	 * no recount starts from here on. */
	by = dd_monotonic() + u->final_seconds;
	__atomic_store(&u->stop_by, &by, __ATOMIC_RELAXED);
	__atomic_store_n(&u->stop, true, __ATOMIC_RELAXED);
	dd_ticker_stop(u->saver);       /* no save runs after this */
	pthread_mutex_lock(&u->lock);
	joinable = u->thread_joinable;
	pthread_mutex_unlock(&u->lock);
	if (joinable)
		pthread_join(u->thread, NULL);
	if (u->save_path)
		usage_save_now(u, true);
	usage_reset(&u->cur);
	free(u->saved);
	free(u->saved_ids);
	free(u->save_path);
	pthread_cond_destroy(&u->rebuilt_cv);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* ---- the chunk map ---- */

static size_t usage_hash(const struct dd_id *id)
{
	uint64_t h;

	/* Ids are SHA-256 digests: any 8 bytes are uniform. */
	memcpy(&h, id->b, sizeof(h));
	return (size_t)h;
}

static int usage_grow(struct usage_map *u)
{
	size_t ncap = u->cap ? u->cap * 2 : 4096, i;
	struct usage_slot *nmap = calloc(ncap, sizeof(*nmap));

	if (!nmap)
		return -ENOMEM;
	for (i = 0; i < u->cap; i++) {
		const struct usage_slot *e = &u->map[i];
		size_t j;

		if (!e->len)
			continue;
		j = usage_hash(&e->id) & (ncap - 1);
		while (nmap[j].len)
			j = (j + 1) & (ncap - 1);
		nmap[j] = *e;
	}
	free(u->map);
	u->map = nmap;
	u->cap = ncap;
	return 0;
}

/* Counts one reference of `owner` to a chunk of `len` bytes. */
static int usage_add(struct usage_map *u, const struct dd_id *id,
		     uint32_t len, int32_t owner)
{
	struct usage_slot *e;
	size_t j;
	int rc;

	if (len == 0)
		return 0;
	if ((u->used + 1) * 2 > u->cap && (rc = usage_grow(u)) < 0)
		return rc;
	j = usage_hash(id) & (u->cap - 1);
	for (;;) {
		e = &u->map[j];
		if (!e->len) {
			e->id = *id;
			e->len = len;
			e->owner = owner;
			u->used++;
			u->clients[owner].bytes_unique += len;
			u->clients[owner].chunks_unique++;
			return 0;
		}
		if (dd_id_eq(&e->id, id))
			break;
		j = (j + 1) & (u->cap - 1);
	}
	if (e->owner != USAGE_SHARED && e->owner != owner) {
		u->clients[e->owner].bytes_unique -= e->len;
		u->clients[e->owner].chunks_unique--;
		e->owner = USAGE_SHARED;
	}
	return 0;
}

static int usage_client_index(struct usage_map *u, const char *name,
			      int32_t *out)
{
	struct usage_client *v;
	size_t i;

	for (i = 0; i < u->nclients; i++) {
		if (strcmp(u->clients[i].name, name) == 0) {
			*out = (int32_t)i;
			return 0;
		}
	}
	v = realloc(u->clients, (u->nclients + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	u->clients = v;
	memset(&v[u->nclients], 0, sizeof(v[0]));
	snprintf(v[u->nclients].name, sizeof(v[0].name), "%s", name);
	*out = (int32_t)u->nclients++;
	return 0;
}

/* ---- reading one catalog ---- */

/* When a count gives up: the stop flag is set, or past the deadline
 * (dd_monotonic(), read atomically: usage.stop_by; 0 for none). */
struct usage_halt {
	const bool *stop;
	const double *deadline;
};

static bool usage_halted(const struct usage_halt *h)
{
	double by = 0;

	if (h->stop && __atomic_load_n(h->stop, __ATOMIC_RELAXED))
		return true;
	if (h->deadline)
		__atomic_load(h->deadline, &by, __ATOMIC_RELAXED);
	return by > 0 && dd_monotonic() > by;
}

struct usage_of {
	struct usage_map *u;
	int32_t owner;
	const struct usage_halt *halt;
	unsigned n;
};

static int usage_add_chunk(void *arg, const struct dd_chunk_ref *ref)
{
	struct usage_of *of = arg;

	if ((++of->n & 4095) == 0 && usage_halted(of->halt))
		return -ECANCELED;
	return usage_add(of->u, &ref->id, ref->plain_len, of->owner);
}

static int usage_read_catalog(struct usage_map *u, struct store *st,
			      const struct usage_todo *t, int32_t owner,
			      const struct usage_halt *halt)
{
	struct usage_of of = { u, owner, halt, 0 };
	struct dd_chunk_loc loc;
	size_t i;
	int rc;

	for (i = 0; i < t->ncatalog; i++) {
		rc = store_lookup(st, &t->catalog[i], &loc);
		if (rc == 0)
			rc = usage_add(u, &t->catalog[i], loc.plain_len, owner);
		if (rc < 0)
			return rc;
	}
	return catsource_each_chunk(st, t->catalog, t->ncatalog,
				    usage_add_chunk, &of);
}

/* ---- finding what changed ---- */

static int usage_cmp_done(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool usage_is_done(const struct usage_map *u, const char *id)
{
	return u->ndone && bsearch(id, u->done, u->ndone, sizeof(u->done[0]),
				   usage_cmp_done) != NULL;
}

struct usage_scan {
	struct usage_map *u;
	bool all;                   /* collect every snapshot */
	size_t seen_done;           /* snapshots already counted that exist */
	struct usage_todo *todo;
	size_t ntodo, alloc;
	int err;
};

/* The catalog ids of snapshot t, from its manifest. */
static int usage_load_catalog(struct snapshots *snaps, struct usage_todo *t)
{
	json_t *m = NULL;
	int rc = snapshots_load(snaps, t->id, &m);

	if (rc == 0)
		rc = snapshots_manifest_catalog(m, &t->catalog, &t->ncatalog);
	json_decref(m);
	return rc;
}

static int usage_scan_cb(void *payload, const struct snapshots_item *it)
{
	struct usage_scan *sc = payload;
	struct usage_todo *t;

	if (usage_is_done(sc->u, it->id)) {
		sc->seen_done++;
		if (!sc->all)
			return 0;
	}
	if (sc->ntodo == sc->alloc) {
		size_t na = sc->alloc ? sc->alloc * 2 : 64;
		struct usage_todo *v = realloc(sc->todo, na * sizeof(*v));

		if (!v)
			return sc->err = -ENOMEM;
		sc->todo = v;
		sc->alloc = na;
	}
	t = &sc->todo[sc->ntodo];
	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", it->id);
	snprintf(t->client, sizeof(t->client), "%s", it->client);
	sc->ntodo++;
	return 0;
}

static void usage_scan_release(struct usage_scan *sc)
{
	size_t i;

	for (i = 0; i < sc->ntodo; i++)
		free(sc->todo[i].catalog);
	free(sc->todo);
	sc->todo = NULL;
	sc->ntodo = sc->alloc = 0;
}

/* Counts the snapshots of the scan into the map (their catalogs read
 * one by one); a catalog that cannot be read is logged and left out. */
static int usage_count(struct usage_map *u, struct usage_scan *sc,
		       struct snapshots *snaps, struct store *st,
		       const struct usage_halt *halt)
{
	size_t i;
	int rc;

	if (sc->ntodo) {
		void *nd = realloc(u->done, (u->ndone + sc->ntodo) *
				   sizeof(u->done[0]));

		if (!nd)
			return -ENOMEM;
		u->done = nd;
	}
	for (i = 0; i < sc->ntodo; i++) {
		struct usage_todo *t = &sc->todo[i];
		int32_t owner;

		if (usage_halted(halt))
			return -ECANCELED;
		rc = usage_client_index(u, t->client, &owner);
		if (rc < 0)
			return rc;
		dd_error_clear();
		rc = usage_load_catalog(snaps, t);
		if (rc == 0)
			rc = usage_read_catalog(u, st, t, owner, halt);
		free(t->catalog);
		t->catalog = NULL;
		if (rc == -ENOMEM || rc == -ECANCELED)
			return rc;
		if (rc < 0)
			log_warning("usage: cannot read the catalog of snapshot "
				    "%s: %s; its chunks are not counted", t->id,
				    log_reason(rc));
		memcpy(u->done[u->ndone++], t->id, DD_ID_HEX_LEN + 1);
	}
	if (u->ndone)       /* qsort(NULL, 0, ...) is undefined */
		qsort(u->done, u->ndone, sizeof(u->done[0]), usage_cmp_done);
	return 0;
}

/* The recount from nothing: every snapshot listed now, without the lock;
 * the result replaces `cur` (which went on answering meanwhile). */
static void *usage_rebuild_main(void *arg)
{
	struct usage *u = arg;
	struct usage_halt halt = { &u->stop, NULL };
	struct usage_map m;
	struct usage_scan sc;
	int rc;

	memset(&m, 0, sizeof(m));
	memset(&sc, 0, sizeof(sc));
	sc.u = &m;
	sc.all = true;
	rc = snapshots_foreach(u->snaps, usage_scan_cb, &sc);
	if (rc == 0 && sc.err)
		rc = sc.err;
	if (rc == 0)
		rc = usage_count(&m, &sc, u->snaps, u->st, &halt);
	usage_scan_release(&sc);
	for (unsigned ms = 0; ms < u->test_delay_ms; ms += 10) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (__atomic_load_n(&u->stop, __ATOMIC_RELAXED))
			break;
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&u->lock);
	if (rc == 0 && !u->stop) {
		usage_reset(&u->cur);
		u->cur = m;
		u->counted = true;
		u->rebuild_failed = 0;
		/* the saver writes it at its next tick; the saved counts of
		 * the last run are not gone by any more */
		u->dirty = u->save_soon = true;
		__atomic_store_n(&u->first_done, true, __ATOMIC_RELAXED);
	} else {
		u->rebuild_failed = dd_monotonic();
		if (rc < 0 && rc != -ECANCELED)
			log_warning("usage: the recount failed: %s (the counts "
				    "stay as they were; the next request "
				    "tries again)", log_reason(rc));
		usage_reset(&m);
	}
	u->rebuilding = false;
	pthread_cond_broadcast(&u->rebuilt_cv);
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Starts the recount unless one runs. Called locked. */
static void usage_rebuild_start(struct usage *u, struct snapshots *snaps,
				struct store *st)
{
	int rc;

	if (u->rebuilding || u->stop ||
	    (u->rebuild_failed &&
	     dd_monotonic() - u->rebuild_failed < USAGE_RETRY_AFTER))
		return;
	if (u->thread_joinable) {
		/* Finished (it cleared `rebuilding`): only its return is
		 * left, which does not take the lock. */
		pthread_join(u->thread, NULL);
		u->thread_joinable = false;
	}
	u->snaps = snaps;   /* the thread reads them: set before it runs */
	u->st = st;
	rc = pthread_create(&u->thread, NULL, usage_rebuild_main, u);
	if (rc != 0) {
		log_warning("usage: cannot start the recount: %s",
			    strerror(rc));
		u->rebuild_failed = dd_monotonic();
		return;
	}
	u->thread_joinable = true;
	u->rebuilding = true;
	u->rebuild_started = dd_monotonic();
}

/* Waits for the recount while it is young (USAGE_REBUILD_WAIT): a small
 * repository's is done by then and answered exactly, a large one's goes
 * on while the old counts answer. Whether it ended. Called locked. */
static bool usage_rebuild_wait(struct usage *u)
{
	double deadline = u->rebuild_started + USAGE_REBUILD_WAIT;

	while (u->rebuilding) {
		struct timespec ts;
		double left = deadline - dd_monotonic();

		if (left <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)left;
		ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&u->rebuilt_cv, &u->lock, &ts);
	}
	return !u->rebuilding;
}

/*
 * Counts the snapshots created since the last call into `cur`. When one
 * went away, its chunks may now belong to another client alone: the map
 * is counted again from nothing on a thread of its own, and `cur`
 * answers meanwhile (with the removed snapshots still counted). Gives
 * up with -ECANCELED (and `cur` reset) past *deadline when one is given
 * and set (usage.stop_by). Called locked.
 */
static int usage_update(struct usage *u, struct snapshots *snaps,
			struct store *st, const double *deadline)
{
	struct usage_halt halt = { NULL, deadline };
	struct usage_scan sc;
	int rc;

	memset(&sc, 0, sizeof(sc));
	sc.u = &u->cur;
	rc = snapshots_foreach(snaps, usage_scan_cb, &sc);
	if (rc == 0 && sc.err)
		rc = sc.err;
	if (rc == 0 && sc.seen_done != u->cur.ndone)
		usage_rebuild_start(u, snaps, st);
	if (rc == 0)
		rc = usage_count(&u->cur, &sc, snaps, st, &halt);
	if (rc == 0 && sc.ntodo)
		u->dirty = true;
	if (rc < 0) {
		usage_reset(&u->cur);   /* a half-counted map would mislead */
		u->counted = false;     /* the next call counts on the thread */
	}
	usage_scan_release(&sc);
	return rc;
}

/* The saver's tick, once (with a file to save to). */
static void usage_saver_start(struct usage *u)
{
	int rc;

	pthread_mutex_lock(&u->lock);
	if (u->save_path && !u->saver && !u->stop &&
	    (rc = dd_ticker_start(&u->saver, 1000, usage_tick, u)) < 0)
		log_warning("usage: cannot start saving the counts: %s",
			    log_reason(rc));
	pthread_mutex_unlock(&u->lock);
}

void usage_start(struct usage *u, struct snapshots *snaps, struct store *st)
{
	pthread_mutex_lock(&u->lock);
	if (!u->counted)
		usage_rebuild_start(u, snaps, st);
	pthread_mutex_unlock(&u->lock);
	usage_saver_start(u);
}

int usage_get(struct usage *u, struct snapshots *snaps, struct store *st,
	      struct usage_client **out, size_t *n)
{
	int rc = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&u->lock);
	/* The first count reads every catalog: on its thread, as a
	 * recount, never inside a request. */
	if (!u->counted) {
		usage_rebuild_start(u, snaps, st);
		if (u->rebuilding)
			usage_rebuild_wait(u);
		if (!u->counted && u->rebuilding)
			rc = dd_error_set(-EAGAIN, "the usage counts are being "
					  "computed (every catalog is read "
					  "once after the server starts); "
					  "try again shortly");
		else if (!u->counted)
			rc = dd_error_set(-EAGAIN, "the usage counts could not "
					  "be computed (see the server's log); "
					  "they are tried again within %.0f s",
					  USAGE_RETRY_AFTER);
	}
	if (rc == 0)
		rc = usage_update(u, snaps, st, NULL);
	/* A recount that ended meanwhile missed the snapshots created
	 * since it listed them: counted now. */
	if (rc == 0 && u->rebuilding && usage_rebuild_wait(u))
		rc = usage_update(u, snaps, st, NULL);
	if (rc == 0 && u->cur.nclients) {
		*out = malloc(u->cur.nclients * sizeof(**out));
		if (*out) {
			memcpy(*out, u->cur.clients,
			       u->cur.nclients * sizeof(**out));
			*n = u->cur.nclients;
		} else {
			rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&u->lock);
	if (rc == 0)
		usage_saver_start(u);   /* a count begun by a request */
	return rc;
}

/* Counts the snapshots listed now that the saved counts counted. */
struct usage_still {
	const struct usage *u;
	size_t found;
};

static int usage_still_cb(void *payload, const struct snapshots_item *it)
{
	struct usage_still *st = payload;

	if (bsearch(it->id, st->u->saved_ids, st->u->nsaved_ids,
		    sizeof(st->u->saved_ids[0]), usage_cmp_done))
		st->found++;
	return 0;
}

/* The saved counts still hold for the snapshots there are: none of those
 * they counted is gone (forgotten here or by another front-end since the
 * start; one made since is missing from them, as from any count). Once
 * one is gone they are never gone by again. */
static bool usage_saved_hold(struct usage *u, struct snapshots *snaps)
{
	struct usage_still still = { u, 0 };

	if (!u->have_saved || __atomic_load_n(&u->first_done, __ATOMIC_RELAXED)
	    || __atomic_load_n(&u->saved_stale, __ATOMIC_RELAXED))
		return false;
	if (snapshots_foreach(snaps, usage_still_cb, &still) < 0)
		return false;
	if (still.found == u->nsaved_ids)
		return true;
	__atomic_store_n(&u->saved_stale, true, __ATOMIC_RELAXED);
	log_info("usage: a snapshot the saved counts counted is gone: quota "
		 "checks wait for the first count");
	return false;
}

int usage_client_bytes(struct usage *u, struct snapshots *snaps,
		       struct store *st, const char *client, uint64_t *bytes,
		       bool *saved)
{
	struct usage_client *v = NULL;
	size_t n = 0, i;
	int rc = usage_get(u, snaps, st, &v, &n);

	*bytes = 0;
	*saved = false;
	if (rc == -EAGAIN && usage_saved_hold(u, snaps)) {
		/* the first count runs: the last one's figures, read once
		 * at the start and never changed since */
		v = u->saved;
		n = u->nsaved;
		*saved = true;
		rc = 0;
	}
	for (i = 0; rc == 0 && i < n; i++)
		if (strcmp(v[i].name, client) == 0)
			*bytes = v[i].bytes_unique;
	if (!*saved)
		free(v);
	return rc;
}
