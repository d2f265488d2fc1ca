/*
 * frontends.c - see frontends.h.
 */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "frontends.h"
#include "log.h"
#include "poolstats.h"
#include "regrant.h"
#include "repo.h"
#include "sessions.h"
#include "snapshots.h"
#include "store.h"
#include "util.h"

#define SMALL_MAX (1u * 1024 * 1024)

struct frontends {
	pthread_mutex_t lock;   /* hb_ok, hb_ok_known, *_logged */
	/* Held around counting the sessions and writing the heartbeat, so
	 * that a count taken before a session opened is never written after
	 * the heartbeat that session's open wrote. */
	pthread_mutex_t hb_lock;
	/* Under hb_lock: when the last heartbeat write that failed ended
	 * (dd_monotonic(); 0: none) and its error, so that a caller that
	 * waited for it fails at once instead of waiting for a write of its
	 * own (frontends_heartbeat). */
	double hb_failed_at;
	int hb_failed_rc;
	char hb_failed_why[256];
	struct sessions *sessions;  /* NULL: no sessions counted */
	char repo[4096];
	struct store *st;
	struct backend *be;
	struct snapshots *snaps;
	struct poolstats *stats;    /* stats/<fe> and the pool's figures */
	uint32_t fe;
	double next;
	/* Under `lock`: dd_monotonic() when the last heartbeat that was
	 * written was composed (its time is what other front-ends judge),
	 * and whether one was written at all. */
	double hb_ok;
	bool hb_ok_known;
	bool fence_logged;      /* the fence was announced in the log */
	bool hb_fail_logged;    /* a failed heartbeat, too (under `lock`) */
	/* Writes the heartbeat every FRONTENDS_TICK_SEC on its own thread,
	 * whatever the tick is busy with (dropping a stale cache can take
	 * longer than the alive bound): frontends_hb_tick. */
	struct dd_ticker *hb_ticker;
	bool stale_logged;      /* a cache that could not be dropped, too */
	/* The tick's thread giving adopted snapshots their dedup-domain
	 * memberships (regrant_adopted): running, finished (atomic), and
	 * the request to stop (atomic). */
	pthread_t grant_thr;
	bool grant_running;
	int grant_done;
	int grant_cancel;
	/* The tick's view of the pool's manifests: the size of
	 * SNAPSHOTS_CHANGED when it last listed them (if it did), and when
	 * it lists them next whatever that size says (dd_monotonic()). */
	uint64_t snaps_mark;
	bool snaps_listed;
	double snaps_list_by;
	double unsure_log_at;   /* the sweep's warning: not before then */
};

static int frontends_check_epoch(struct frontends *f);
static int frontends_heartbeat(struct frontends *f);
static void frontends_hb_tick(void *arg);

/* A whole small object into *out (NUL-terminated, caller frees). */
static int pool_get(struct backend *be, const char *name, uint8_t **out,
		    size_t *len)
{
	return backend_get(be, name, SMALL_MAX, out, len);
}

int frontends_pool_replace(struct backend *be, const char *name,
			   const void *data, size_t len)
{
	uint8_t *cur;
	size_t clen;
	int rc = -ECANCELED, tries;

	for (tries = 0; tries < 5 && rc == -ECANCELED; tries++) {
		rc = pool_get(be, name, &cur, &clen);
		if (rc == -ENOENT) {
			dd_error_clear();
			rc = backend_cas(be, name, NULL, 0, data, len);
			if (rc == -EEXIST)
				rc = -ECANCELED;
			continue;
		}
		if (rc == 0)
			rc = backend_cas(be, name, cur, clen, data, len);
		free(cur);
	}
	return rc;
}

int frontends_id(const char *repo, uint32_t *fe)
{
	char path[4200], *end;
	uint8_t *data = NULL;
	unsigned long v;
	size_t len;
	int rc = repo_path(path, sizeof(path), repo, FRONTENDS_FILE);

	*fe = 0;
	if (rc == 0)
		rc = dd_read_file(path, 64, &data, &len);
	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	data[len ? len - 1 : 0] = data[len ? len - 1 : 0] == '\n' ? '\0' :
		data[len ? len - 1 : 0];
	errno = 0;
	v = strtoul((const char *)data, &end, 10);
	if (errno || end == (char *)data || (*end && *end != '\n') ||
	    v >= 65536)
		rc = dd_error_set(-EBADMSG, "'%s' holds no front-end number",
				  path);
	else
		*fe = (uint32_t)v;
	free(data);
	return rc;
}

int frontends_numbers(struct backend *be, uint32_t *n)
{
	uint8_t *cur = NULL;
	unsigned long v;
	size_t len;
	int rc = pool_get(be, FRONTENDS_COUNTER, &cur, &len);

	*n = 1;
	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	v = strtoul((const char *)cur, NULL, 10);
	free(cur);
	if (v == 0 || v > 65535)
		return dd_error_set(-EBADMSG, "the pool's '%s' is not a "
				    "front-end counter", FRONTENDS_COUNTER);
	*n = (uint32_t)v;
	return 0;
}

int frontends_join(struct backend *be, const char *repo, uint32_t *fe)
{
	char path[4200], next[32], line[32];
	uint8_t *cur = NULL;
	unsigned long v = 1;
	size_t clen;
	int rc = -ECANCELED, tries;

	for (tries = 0; tries < 20 && rc == -ECANCELED; tries++) {
		free(cur);
		cur = NULL;
		rc = pool_get(be, FRONTENDS_COUNTER, &cur, &clen);
		if (rc == -ENOENT) {
			/* front-end 0 is the one init --store made */
			dd_error_clear();
			v = 1;
			snprintf(next, sizeof(next), "%lu\n", v + 1);
			rc = backend_cas(be, FRONTENDS_COUNTER, NULL, 0, next,
					 strlen(next));
			if (rc == -EEXIST)
				rc = -ECANCELED;
			continue;
		}
		if (rc < 0)
			break;
		v = strtoul((const char *)cur, NULL, 10);
		if (v == 0 || v >= 65535) {
			rc = dd_error_set(-EBADMSG, "the pool's '%s' is not a "
					  "front-end counter", FRONTENDS_COUNTER);
			break;
		}
		snprintf(next, sizeof(next), "%lu\n", v + 1);
		rc = backend_cas(be, FRONTENDS_COUNTER, cur, clen, next,
				 strlen(next));
	}
	free(cur);
	if (rc < 0)
		return rc;
	*fe = (uint32_t)v;
	snprintf(line, sizeof(line), "%lu\n", v);
	rc = repo_path(path, sizeof(path), repo, FRONTENDS_FILE);
	if (rc == 0)
		rc = dd_write_file_atomic(path, line, strlen(line), 0644);
	return rc;
}

int frontends_clients_pull(struct backend *be, const char *repo,
			   bool *changed, uint8_t **seen, size_t *seen_len)
{
	char path[4200];
	uint8_t *pool = NULL, *local = NULL;
	size_t plen, llen = 0;
	int rc = pool_get(be, FRONTENDS_CLIENTS, &pool, &plen);

	*changed = false;
	if (seen) {
		*seen = NULL;
		*seen_len = 0;
	}
	if (rc < 0)
		return rc;
	rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);
	if (rc == 0 && dd_read_file(path, SMALL_MAX, &local, &llen) < 0) {
		dd_error_clear();
		llen = (size_t)-1;
	}
	if (rc == 0 && (llen != plen || memcmp(local, pool, plen) != 0)) {
		rc = dd_write_file_atomic(path, pool, plen, 0600);
		*changed = rc == 0;
	}
	free(local);
	if (rc == 0 && seen) {
		*seen = pool;
		*seen_len = plen;
		return 0;
	}
	free(pool);
	return rc;
}

int frontends_clients_push(struct backend *be, const char *repo,
			   const uint8_t *expect, size_t expect_len)
{
	char path[4200];
	uint8_t *data = NULL;
	size_t len;
	int rc = repo_path(path, sizeof(path), repo, REPO_CLIENTS);

	if (rc == 0)
		rc = dd_read_file(path, SMALL_MAX, &data, &len);
	if (rc == 0)
		rc = backend_cas(be, FRONTENDS_CLIENTS, expect, expect_len,
				 data, len);
	free(data);
	if (rc == -ECANCELED || rc == -EEXIST)
		rc = dd_error_set(-ECANCELED, "clients.json was changed "
				  "through another front-end meanwhile: run "
				  "the command again");
	return rc;
}

/* ---- serve's tick ---- */

int frontends_new(struct frontends **out, const char *repo,
		  struct store *st, struct snapshots *snaps)
{
	struct frontends *f;
	int rc;

	*out = NULL;
	if (!store_shared_on(st))
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->hb_lock, NULL);
	snprintf(f->repo, sizeof(f->repo), "%s", repo);
	f->st = st;
	f->be = store_backend(st);
	f->snaps = snaps;
	rc = frontends_id(repo, &f->fe);
	if (rc == 0)
		rc = poolstats_new(&f->stats, st, f->fe);
	if (rc < 0) {
		free(f);
		return rc;
	}
	/* before the first request: a cache that collections elsewhere made
	 * stale while this front-end was stopped is dropped, and the first
	 * heartbeat lifts the fence (the tick retries what fails here) */
	rc = frontends_check_epoch(f);
	if (rc == 0)
		rc = frontends_heartbeat(f);
	if (rc < 0)
		log_warning("cannot sync with the other front-ends: %s",
			    log_reason(rc));
	rc = dd_ticker_start(&f->hb_ticker, FRONTENDS_TICK_SEC * 1000,
			     frontends_hb_tick, f);
	if (rc < 0) {
		frontends_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void frontends_free(struct frontends *f)
{
	if (!f)
		return;
	/* first: no heartbeat may be written after the one removed below */
	dd_ticker_stop(f->hb_ticker);
	if (f->grant_running) {
		__atomic_store_n(&f->grant_cancel, 1, __ATOMIC_RELAXED);
		pthread_join(f->grant_thr, NULL);
	}
	/* gone: a collection need not wait for this one's sessions */
	{
		char name[64];

		snprintf(name, sizeof(name), FRONTENDS_ACTIVE_PREFIX "%u",
			 f->fe);
		backend_remove(f->be, name);
		dd_error_clear();
	}
	poolstats_free(f->stats);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->hb_lock);
	free(f);
}

struct pool_ids {
	char (*v)[DD_ID_HEX_LEN + 1];
	size_t n, a;
};

static int pool_ids_cb(const char *name, void *payload)
{
	struct pool_ids *l = payload;
	const char *id = name + strlen(REPO_SNAPSHOTS "/");

	if (strlen(id) != DD_ID_HEX_LEN + 5 ||
	    strcmp(id + DD_ID_HEX_LEN, ".json") != 0)
		return 0;
	if (l->n == l->a) {
		size_t na = l->a ? l->a * 2 : 64;
		void *v = realloc(l->v, na * sizeof(*l->v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->a = na;
	}
	memcpy(l->v[l->n], id, DD_ID_HEX_LEN);
	l->v[l->n][DD_ID_HEX_LEN] = '\0';
	l->n++;
	return 0;
}

static int pool_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

struct local_ids {
	const struct pool_ids *pool;    /* sorted */
	int64_t before;         /* FRONTENDS_SNAPSHOT_GRACE_SEC ago, ns */
	char (*gone)[DD_ID_HEX_LEN + 1];
	size_t n, a;
	size_t young;           /* gone ones written since `before` */
};

static int local_ids_cb(void *payload, const struct snapshots_item *it)
{
	struct local_ids *l = payload;

	if (l->pool->n && bsearch(it->id, l->pool->v, l->pool->n,
				  sizeof(*l->pool->v), pool_id_cmp))
		return 0;
	if (it->written_ns >= l->before)
		l->young++;
	if (l->n == l->a) {
		size_t na = l->a ? l->a * 2 : 16;
		void *v = realloc(l->gone, na * sizeof(*l->gone));

		if (!v)
			return -ENOMEM;
		l->gone = v;
		l->a = na;
	}
	snprintf(l->gone[l->n++], DD_ID_HEX_LEN + 1, "%s", it->id);
	return 0;
}

/* The manifests of the pool this directory lacks, copied into it (the
 * ids listed in *p, for the caller to drop what the pool lacks), each
 * marked first for its dedup-domain memberships (regrant.h). */
static int adopt_listed(struct store *st, struct snapshots *snaps,
			struct pool_ids *p)
{
	struct backend *be = store_backend(st);
	char name[128];
	uint8_t *data;
	size_t i, len;
	int rc = backend_list(be, REPO_SNAPSHOTS "/", pool_ids_cb, p);

	for (i = 0; rc == 0 && i < p->n; i++) {
		snprintf(name, sizeof(name), REPO_SNAPSHOTS "/%s.json",
			 p->v[i]);
		if (snapshots_has(snaps, p->v[i]))
			continue;
		rc = pool_get(be, name, &data, &len);
		if (rc == -ENOENT) {
			dd_error_clear();
			rc = 0;  /* forgotten meanwhile */
			continue;
		}
		if (rc == 0)
			rc = regrant_adopt_mark(st, p->v[i]);
		if (rc == 0)
			rc = snapshots_adopt(snaps, p->v[i], data, len);
		free(data);
		if (rc > 0)
			rc = 0;
	}
	return rc;
}

int frontends_adopt_snapshots(struct store *st, struct snapshots *snaps)
{
	struct pool_ids p = { NULL, 0, 0 };
	int rc = adopt_listed(st, snaps, &p);

	free(p.v);
	return rc;
}

/* Adopts the manifests other front-ends wrote, drops those they forgot:
 * when SNAPSHOTS_CHANGED says the pool's manifests changed since the
 * last listing, or FRONTENDS_SNAPSHOTS_LIST_SEC passed (a put whose mark
 * was lost, a front-end of an older version). */
static int frontends_sync_snapshots(struct frontends *f)
{
	struct pool_ids p = { NULL, 0, 0 };
	int64_t before = (int64_t)(dd_now() - FRONTENDS_SNAPSHOT_GRACE_SEC) *
		1000000000LL;
	struct local_ids l = { &p, before, NULL, 0, 0, 0 };
	size_t i;
	double now = dd_monotonic();
	uint64_t mark = 0;
	int rc = backend_stat(f->be, SNAPSHOTS_CHANGED, &mark);

	if (rc == -ENOENT) {
		dd_error_clear();
		rc = 0;
		mark = 0;
	}
	if (rc < 0)
		return rc;
	if (f->snaps_listed && mark == f->snaps_mark &&
	    now < f->snaps_list_by)
		return 0;
	rc = adopt_listed(f->st, f->snaps, &p);

	/* a lookup each of the local ids: sorted, not n * n compares (two
	 * seconds a tick at 50,000 snapshots) */
	if (rc == 0 && p.n)
		qsort(p.v, p.n, sizeof(*p.v), pool_id_cmp);
	if (rc == 0)
		rc = snapshots_foreach(f->snaps, local_ids_cb, &l);
	for (i = 0; rc == 0 && i < l.n; i++)
		snapshots_drop_local(f->snaps, l.gone[i], before);
	/* What the listing saw is what the mark said before it. A manifest
	 * missing from the pool but written too lately to be dropped (on its
	 * way there, or removed right after it was made) is looked for
	 * again at the next tick. */
	if (rc == 0 && l.young == 0) {
		f->snaps_mark = mark;
		f->snaps_listed = true;
		f->snaps_list_by = now + FRONTENDS_SNAPSHOTS_LIST_SEC;
	}
	free(p.v);
	free(l.gone);
	return rc;
}


unsigned frontends_alive_sec(void)
{
	const char *v = getenv("DEDUP_TEST_ALIVE_SEC");
	unsigned long n;
	char *end;

	if (v && *v) {
		errno = 0;
		n = strtoul(v, &end, 10);
		if (errno == 0 && *end == 0 && n >= 2 && n <= 3600)
			return (unsigned)n;
	}
	return FRONTENDS_ALIVE_SEC;
}

double frontends_fence_sec(void)
{
	return frontends_alive_sec() / 2.0;
}

/* Test hook (docs/OPERATIONS.md): while the file named by
 * DEDUP_TEST_HEARTBEAT_FAIL exists, heartbeat writes fail. */
static int heartbeat_test_fault(void)
{
	const char *path = getenv("DEDUP_TEST_HEARTBEAT_FAIL");

	if (path && *path && access(path, F_OK) == 0)
		return dd_error_set(-EIO, "cannot write the heartbeat: test "
				    "fault (DEDUP_TEST_HEARTBEAT_FAIL)");
	return 0;
}

/* Test hook (docs/OPERATIONS.md): DEDUP_TEST_CLOCK_SKEW_SEC seconds
 * (-3600..3600) added to the time this front-end writes in its
 * heartbeat, as a clock set that far off would. */
static long long heartbeat_test_skew(void)
{
	const char *v = getenv("DEDUP_TEST_CLOCK_SKEW_SEC");
	long long n;
	char *end;

	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno == 0 && *end == 0 && n >= -3600 && n <= 3600 ? n : 0;
}

/* Test hook (docs/OPERATIONS.md): while the file named by
 * DEDUP_TEST_TICK_STALL exists, serve's tick waits (at most 120 s), as
 * one dropping a large stale cache would. */
static void tick_test_stall(void)
{
	const char *path = getenv("DEDUP_TEST_TICK_STALL");

	for (int i = 0; path && *path && i < 1200 &&
	     access(path, F_OK) == 0; i++)
		usleep(100 * 1000);
}

/* Writes this front-end's heartbeat with the sessions open now, counted
 * under hb_lock: heartbeats are written in the order their counts were
 * taken, so the last one never misses a session whose open was already
 * announced. A heartbeat written lifts the fence (frontends_fenced). */
static int frontends_heartbeat(struct frontends *f)
{
	char name[64], text[96];
	unsigned open_sessions;
	double composed, arrived;
	int rc;

	snprintf(name, sizeof(name), FRONTENDS_ACTIVE_PREFIX "%u", f->fe);
	arrived = dd_monotonic();
	pthread_mutex_lock(&f->hb_lock);
	/* A write that was under way when this call came failed meanwhile
	 * (the pool did not answer within its op timeout): fail with it. A
	 * write of our own would wait as long again, so a session open
	 * while the pool hangs would take two op timeouts, not one. */
	if (f->hb_failed_at > arrived) {
		rc = dd_error_set(f->hb_failed_rc, "%s", f->hb_failed_why);
		pthread_mutex_unlock(&f->hb_lock);
		return rc;
	}
	open_sessions = f->sessions ? sessions_open_count(f->sessions) : 0;
	composed = dd_monotonic();
	snprintf(text, sizeof(text), "%lld %u\n",
		 (long long)dd_now() + heartbeat_test_skew(), open_sessions);
	rc = heartbeat_test_fault();
	if (rc == 0)
		rc = frontends_pool_replace(f->be, name, text, strlen(text));
	if (rc < 0) {
		f->hb_failed_at = dd_monotonic();
		f->hb_failed_rc = rc;
		snprintf(f->hb_failed_why, sizeof(f->hb_failed_why), "%s",
			 dd_error_last());
	}
	pthread_mutex_unlock(&f->hb_lock);
	pthread_mutex_lock(&f->lock);
	if (rc == 0 && (!f->hb_ok_known || composed > f->hb_ok)) {
		f->hb_ok = composed;
		f->hb_ok_known = true;
		if (f->fence_logged)
			log_info("the heartbeat is written again: chunks and "
				 "snapshots are acknowledged again");
		f->fence_logged = false;
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* Whether this front-end has fenced itself (frontends_fenced), quietly. */
static bool frontends_fence_up(struct frontends *f)
{
	double bound = frontends_fence_sec();
	bool up;

	pthread_mutex_lock(&f->lock);
	up = !f->hb_ok_known || dd_monotonic() - f->hb_ok > bound;
	pthread_mutex_unlock(&f->lock);
	return up;
}

/* The heartbeat thread's call. While fenced, the local cache is first
 * brought up to the gc epoch (a collection elsewhere may have taken this
 * front-end for dead and deleted), so that the heartbeat that lifts the
 * fence lets no answer come from a stale cache, as at the start. A
 * failure is logged once until one is written again (frontends_heartbeat
 * says so when the fence lifts). */
static void frontends_hb_tick(void *arg)
{
	struct frontends *f = arg;
	int rc = frontends_fence_up(f) ? frontends_check_epoch(f) : 0;
	bool first;

	if (rc == 0)
		rc = frontends_heartbeat(f);

	pthread_mutex_lock(&f->lock);
	first = rc < 0 && !f->hb_fail_logged;
	f->hb_fail_logged = rc < 0;
	pthread_mutex_unlock(&f->lock);
	if (first)
		log_warning("cannot write this front-end's heartbeat (tried "
			    "again every %d s): %s", FRONTENDS_TICK_SEC,
			    log_reason(rc));
	dd_error_clear();
}

int frontends_fenced(struct frontends *f)
{
	double age, bound = frontends_fence_sec();
	bool first;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->lock);
	age = f->hb_ok_known ? dd_monotonic() - f->hb_ok : HUGE_VAL;
	first = age > bound && !f->fence_logged;
	if (age > bound)
		f->fence_logged = true;
	pthread_mutex_unlock(&f->lock);
	if (age <= bound)
		return 0;
	if (first)
		log_warning("the heartbeat has not been written for more than "
			    "%.0f s: acknowledging no chunk or snapshot until "
			    "it is (other front-ends take this one for dead "
			    "after %u s)", bound, frontends_alive_sec());
	if (age == HUGE_VAL)
		return dd_error_set(-EAGAIN, "this front-end has not yet "
				    "written its heartbeat to the pool: try "
				    "again in a moment");
	return dd_error_set(-EAGAIN, "this front-end cannot write its "
			    "heartbeat to the pool (last written %.0f s ago): "
			    "it acknowledges nothing until it can; try again "
			    "later", age);
}

void frontends_attach_sessions(struct frontends *f, struct sessions *ss)
{
	if (!f)
		return;
	f->sessions = ss;
	sessions_set_open_hook(ss, frontends_session_opened, f);
}

int frontends_epoch_get(struct backend *be, struct frontends_epoch *e)
{
	char state[16] = "";
	long long since = 0;
	unsigned long long n = 0;
	unsigned by = 0;
	uint8_t *data;
	size_t len;
	int rc = pool_get(be, FRONTENDS_EPOCH, &data, &len);

	memset(e, 0, sizeof(*e));
	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	if (sscanf((const char *)data, "%llu %15s %lld %u", &n, state,
		   &since, &by) >= 1) {
		e->n = n;
		e->running = strcmp(state, "running") == 0;
		e->since = since;
		e->by = by;
	}
	free(data);
	return 0;
}

/* Brings the local cache up to the pool's epoch e (store.h): waits up
 * to wait_sec while this front-end's own collection holds it. */
static int frontends_epoch_seen(struct frontends *f,
				const struct frontends_epoch *e,
				double wait_sec)
{
	int rc = store_cache_observe(f->st, e->n, e->by, wait_sec, NULL);
	bool first;

	pthread_mutex_lock(&f->lock);
	first = rc == -EBUSY && !f->stale_logged;
	f->stale_logged = rc == -EBUSY;
	pthread_mutex_unlock(&f->lock);
	if (first)
		log_warning("%s (the next tick tries again)", dd_error_last());
	return rc;
}

static int frontends_check_epoch(struct frontends *f)
{
	struct frontends_epoch e;
	int rc = frontends_epoch_get(f->be, &e);

	if (rc < 0)
		return rc;
	rc = frontends_epoch_seen(f, &e, 0);
	return rc == -EBUSY ? 0 : rc;
}

unsigned frontends_gc_lease_sec(void)
{
	return (unsigned)dd_test_hook_u64("DEDUP_TEST_GC_LEASE_SEC", 2, 3600,
					  FRONTENDS_GC_LEASE_SEC);
}

/* A collection whose start time (renewed every third of the lease while
 * it runs) is older than its lock's lease died. */
static bool epoch_live_gc(const struct frontends_epoch *e)
{
	return e->running &&
		e->since + (int64_t)frontends_gc_lease_sec() >=
		(int64_t)dd_now();
}

/* Waits (at most FRONTENDS_GC_WAIT_SEC, else -EAGAIN) while another
 * front-end's collection is deleting; *e is the epoch then. */
static int frontends_wait_gc(struct frontends *f, struct frontends_epoch *e)
{
	double until = dd_monotonic() + FRONTENDS_GC_WAIT_SEC;
	int rc;

	for (;;) {
		rc = frontends_epoch_get(f->be, e);
		/* this front-end's own collection: its vouch journal
		 * protects the session (store.h) */
		if (rc < 0 || !epoch_live_gc(e) || e->by == f->fe)
			return rc;
		if (dd_monotonic() > until)
			return dd_error_set(-EAGAIN, "a collection is running on "
					    "another front-end: try again later");
		usleep(200 * 1000);
	}
}

int frontends_session_opened(void *payload, unsigned open_now,
			     uint64_t *epoch)
{
	struct frontends *f = payload;
	struct frontends_epoch e;
	int rc;

	/* the heartbeat first: a collection that reads it after this sees
	 * the session; one that read it before has set its epoch running,
	 * which the read below sees */
	(void)open_now;  /* counted again under hb_lock */
	rc = frontends_heartbeat(f);
	if (rc == 0)
		rc = frontends_wait_gc(f, &e);
	if (rc == -EAGAIN)
		return rc;
	/* the session's "present" answers come from the cache: never from
	 * one that a collection elsewhere made stale */
	if (rc == 0)
		rc = frontends_epoch_seen(f, &e, FRONTENDS_GC_WAIT_SEC);
	if (rc == -EBUSY)
		return dd_error_set(-EAGAIN, "%s", dd_error_last());
	if (rc < 0)
		return log_wrap(backend_unavailable(rc) ? rc : -EIO,
				"cannot reach the pool shared with the "
				"other front-ends");
	/* Another front-end's collection still marked running that was not
	 * waited for: its lease looks expired by this machine's clock,
	 * which may be set otherwise than the collector's. The session may
	 * then run beside its deletions, so it takes the epoch before: its
	 * snapshot is checked against the shared index at commit whatever
	 * the epoch is then (frontends_snapshot_commit), even if the
	 * collection ends without another bump. */
	*epoch = e.running && e.by != f->fe ? e.n - 1 : e.n;
	return 0;
}

int frontends_snapshot_commit(void *payload)
{
	const struct frontends_commit *c = payload;
	struct frontends_epoch e;
	int rc;

	if (!c || !c->f)
		return 0;
	/* the manifest is in the pool now: a collection that sets the
	 * epoch running after the read below marks from it */
	rc = frontends_wait_gc(c->f, &e);
	if (rc == -EAGAIN)
		return rc;
	if (rc < 0)
		return log_wrap(backend_unavailable(rc) ? rc : -EIO,
				"cannot reach the pool shared with the "
				"other front-ends");
	if (c->epoch_known && e.n == c->epoch)
		return 0;
	log_info("a collection ran since this backup began (gc epoch %llu, "
		 "now %llu): checking its chunks against the shared index",
		 c->epoch_known ? (unsigned long long)c->epoch : 0ull,
		 (unsigned long long)e.n);
	return 1;
}

static void *frontends_grant_main(void *payload)
{
	struct frontends *f = payload;
	uint64_t granted = 0;
	int rc;

	dd_error_clear();
	rc = regrant_adopted(f->st, f->snaps, f->repo, &f->grant_cancel,
			     &granted);
	if (rc < 0 && rc != -ECANCELED)
		log_warning("cannot give adopted snapshots their dedup-domain "
			    "memberships (the next tick tries again): %s",
			    log_reason(rc));
	__atomic_store_n(&f->grant_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Reaps the grant thread once it finished, and starts it again while a
 * domain is in use (it ends at once when no snapshot is marked). The
 * test hook DEDUP_TEST_NO_ADOPT_GRANT=1 leaves adopted snapshots marked
 * and ungranted, so that a test sees what the pool's memberships alone
 * grant (tests/e2e/t1002-pool-memberships.sh). */
static void frontends_grant_step(struct frontends *f)
{
	const char *hook = getenv("DEDUP_TEST_NO_ADOPT_GRANT");

	if (hook && strcmp(hook, "1") == 0)
		return;
	if (f->grant_running) {
		if (!__atomic_load_n(&f->grant_done, __ATOMIC_ACQUIRE))
			return;
		pthread_join(f->grant_thr, NULL);
		f->grant_running = false;
	}
	if (!(store_flags(f->st) & STORE_DOMAINS_USED))
		return;
	f->grant_done = 0;
	if (pthread_create(&f->grant_thr, NULL, frontends_grant_main, f) == 0)
		f->grant_running = true;
}

void frontends_tick(struct frontends *f)
{
	double now = dd_monotonic();
	bool changed;
	int rc;

	if (!f || now < f->next)
		return;
	f->next = now + FRONTENDS_TICK_SEC;
	dd_error_clear();
	tick_test_stall();
	/* the heartbeat has its own thread (frontends_hb_tick) */
	rc = frontends_check_epoch(f);
	if (rc == 0) {
		rc = frontends_clients_pull(f->be, f->repo, &changed, NULL,
					    NULL);
		if (rc == -ENOENT)
			rc = 0;
	}
	/* before the listing, which must not adopt what it removes */
	if (rc == 0) {
		int swept = snapshots_sweep_unsure(f->snaps);

		if (swept < 0 && now >= f->unsure_log_at) {
			log_warning("cannot remove from the pool the manifests "
				    "of creates that failed: %s (tried again "
				    "every tick)", log_reason(swept));
			f->unsure_log_at = now + 60;
		}
		dd_error_clear();
	}
	if (rc == 0)
		rc = frontends_sync_snapshots(f);
	if (rc == 0)
		frontends_grant_step(f);
	if (rc == 0)
		rc = poolstats_tick(f->stats, f->sessions ?
				    sessions_open_count(f->sessions) : 0);
	if (rc < 0)
		log_warning("cannot sync with the other front-ends: %s",
			    log_reason(rc));
}

struct poolstats *frontends_poolstats(struct frontends *f)
{
	return f ? f->stats : NULL;
}

/* ---- for gc ---- */

/* A peer whose heartbeat says it has sessions open: alive (busy) once its
 * heartbeat changes, taken for dead when it has not changed for the
 * alive bound of this machine's monotonic clock (frontends_peers_busy).
 * The time it wrote is not compared with this machine's clock, which
 * may be set otherwise, except to word the message. */
struct suspect {
	char *name;
	uint8_t *data;
	size_t len;
	bool stale;      /* its time is older than the bound by our clock */
};

struct peers {
	struct backend *be;
	uint32_t self;
	bool busy;
	char *who;
	size_t whysz;
	struct suspect *sus;
	size_t nsus, asus;
};

/* The heartbeat's "time open" (open 0 when it cannot be read). */
static void peers_parse(const uint8_t *data, size_t len, long long *t,
			unsigned *open)
{
	char text[96];

	snprintf(text, sizeof(text), "%.*s", (int)(len < 95 ? len : 95),
		 (const char *)data);
	if (sscanf(text, "%lld %u", t, open) != 2)
		*open = 0;
}

static void peers_busy(struct peers *p, const char *num, unsigned open,
		       const char *why)
{
	p->busy = true;
	snprintf(p->who, p->whysz, "front-end %s has %u backup session(s) "
		 "open%s", num, open, why);
}

/* A heartbeat that cannot be read: one removed belongs to a front-end
 * that stopped (frontends_free), with no session open; any other error
 * tells nothing, so the front-end is taken for busy (the collection
 * defers its deletions rather than guess). */
static void peers_unread(struct peers *p, const char *num, int rc)
{
	if (rc != -ENOENT && !p->busy) {
		p->busy = true;
		snprintf(p->who, p->whysz, "the heartbeat of front-end %s "
			 "cannot be read (%s)", num, log_reason(rc));
	}
	dd_error_clear();
}

static int peers_cb(const char *name, void *payload)
{
	struct peers *p = payload;
	const char *num = name + strlen(FRONTENDS_ACTIVE_PREFIX);
	long long t = 0;
	unsigned open = 0;
	uint8_t *data;
	size_t len;
	int rc;

	if ((uint32_t)strtoul(num, NULL, 10) == p->self)
		return 0;
	if ((rc = pool_get(p->be, name, &data, &len)) < 0) {
		peers_unread(p, num, rc);
		return 0;
	}
	peers_parse(data, len, &t, &open);
	if (open > 0) {
		if (p->nsus == p->asus) {
			size_t a = p->asus ? 2 * p->asus : 4;
			struct suspect *v = realloc(p->sus, a * sizeof(*v));

			if (!v) {
				free(data);
				return dd_error_set(-ENOMEM, "out of memory");
			}
			p->sus = v;
			p->asus = a;
		}
		if (!(p->sus[p->nsus].name = strdup(name))) {
			free(data);
			return dd_error_set(-ENOMEM, "out of memory");
		}
		p->sus[p->nsus].data = data;
		p->sus[p->nsus].len = len;
		p->sus[p->nsus++].stale = t + (long long)frontends_alive_sec() <
			(long long)dd_now();
		return 0;
	}
	free(data);
	return 0;
}

/*
 * Watches the suspects' heartbeats for the alive bound of this machine's
 * monotonic clock, four times a second:
 * one that changes and still has sessions open makes the peers busy
 * (a live front-end writes its heartbeat every FRONTENDS_TICK_SEC). So
 * a front-end whose clock is behind this one's (its heartbeats look old
 * here) is not taken for dead while it writes them, and one whose clock
 * is ahead is not waited for after it died: only the clocks' rates
 * matter, not their settings.
 */
static void peers_watch(struct peers *p)
{
	double end = dd_monotonic() + frontends_alive_sec();

	while (!p->busy && p->nsus > 0 && dd_monotonic() < end) {
		usleep(250 * 1000);
		for (size_t i = 0; i < p->nsus && !p->busy; i++) {
			struct suspect *s = &p->sus[i];
			long long t = 0;
			unsigned open = 0;
			uint8_t *data;
			size_t len;
			int rc = pool_get(p->be, s->name, &data, &len);

			if (rc < 0) {
				peers_unread(p, s->name +
					     strlen(FRONTENDS_ACTIVE_PREFIX),
					     rc);
				open = 0;   /* removed: stopped, not a suspect */
			} else if (len == s->len &&
				   memcmp(data, s->data, len) == 0) {
				free(data);
				continue;
			} else {
				peers_parse(data, len, &t, &open);
				free(data);
			}
			if (open > 0)
				peers_busy(p, s->name +
					   strlen(FRONTENDS_ACTIVE_PREFIX),
					   open, s->stale ? " (its heartbeat "
					   "is written, though its clock is "
					   "behind this one's)" : "");
			/* with none open it is no longer a suspect */
			free(s->name);
			free(s->data);
			p->sus[i--] = p->sus[--p->nsus];
		}
	}
}

int frontends_peers_busy(struct backend *be, uint32_t self, bool *busy,
			 char *who, size_t whysz)
{
	struct peers p = { .be = be, .self = self, .who = who,
			   .whysz = whysz };
	int rc = backend_list(be, FRONTENDS_ACTIVE_PREFIX, peers_cb, &p);

	if (rc == 0 && p.nsus > 0) {
		log_info("gc: %zu other front-end(s) have backup sessions "
			 "open: watching their heartbeats (at most %u s) for "
			 "whether they are alive", p.nsus,
			 frontends_alive_sec());
		peers_watch(&p);
	}
	*busy = p.busy;
	for (size_t i = 0; i < p.nsus; i++) {
		free(p.sus[i].name);
		free(p.sus[i].data);
	}
	free(p.sus);
	return rc;
}

enum epoch_write { EPOCH_START, EPOCH_DONE, EPOCH_RENEW };

/* Rewrites `gc-epoch` by compare-and-swap: a collection starting (N + 1
 * running), done (N done), or renewing its start time (N running, only
 * while the epoch is still this front-end's running collection: else
 * -ESTALE). */
static int frontends_epoch_write(struct backend *be, uint32_t self,
				 enum epoch_write w)
{
	uint8_t *cur = NULL;
	size_t clen = 0;
	char next[96];
	int rc = -ECANCELED, tries;

	for (tries = 0; tries < 20 && rc == -ECANCELED; tries++) {
		unsigned long long n = 0;
		char state[16] = "";
		long long since = 0;
		unsigned by = 0;

		rc = pool_get(be, FRONTENDS_EPOCH, &cur, &clen);
		if (rc == -ENOENT && w != EPOCH_RENEW) {
			dd_error_clear();
			snprintf(next, sizeof(next), "1 %s %lld %u\n",
				 w == EPOCH_START ? "running" : "done",
				 (long long)dd_now(), (unsigned)self);
			rc = backend_cas(be, FRONTENDS_EPOCH, NULL, 0, next,
					 strlen(next));
			if (rc == -EEXIST)
				rc = -ECANCELED;
			continue;
		}
		if (rc == -ENOENT ||
		    (rc == 0 && w == EPOCH_RENEW &&
		     (sscanf((const char *)cur, "%llu %15s %lld %u", &n, state,
			     &since, &by) != 4 ||
		      strcmp(state, "running") != 0 || by != self)))
			rc = dd_error_set(-ESTALE, "the gc epoch is no longer "
					  "this front-end's running "
					  "collection");
		if (rc == 0) {
			n = strtoull((const char *)cur, NULL, 10);
			snprintf(next, sizeof(next), "%llu %s %lld %u\n",
				 w == EPOCH_START ? n + 1 : n,
				 w == EPOCH_DONE ? "done" : "running",
				 (long long)dd_now(), (unsigned)self);
			rc = backend_cas(be, FRONTENDS_EPOCH, cur, clen, next,
					 strlen(next));
		}
		free(cur);
		cur = NULL;
	}
	return rc;
}

int frontends_epoch_renew(struct backend *be, uint32_t self)
{
	return frontends_epoch_write(be, self, EPOCH_RENEW);
}

int frontends_epoch_set(struct backend *be, bool running, uint32_t self)
{
	return frontends_epoch_write(be, self,
				     running ? EPOCH_START : EPOCH_DONE);
}
