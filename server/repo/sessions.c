/*
 * sessions.c - see sessions.h.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessions.h"
#include "util.h"

struct sess {
	bool used;
	char id[SESSIONS_ID_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	char host[SESSIONS_HOST_MAX + 1];
	char config[SESSIONS_CONFIG_MAX + 1];   /* "" when not given */
	json_t *paths;
	int64_t started;            /* unix seconds */
	int64_t updated;            /* unix seconds of the last activity */
	double active_mono;         /* dd_monotonic() of the last activity */
	double opened_mono;         /* dd_monotonic() when it was opened */
	uint64_t order;             /* opening order */
	int64_t files, bytes_done, bytes_new, bytes_sent;
	char phase[16];
	uint64_t up_requests, up_chunks, up_plain, up_stored, up_body;
	uint64_t expected;
	uint64_t epoch;             /* from the open hook, when epoch_known */
	bool epoch_known;
};

struct sess_result {
	char client[DD_CLIENT_NAME_MAX + 1];
	struct sessions_result r;
};

struct sessions {
	pthread_mutex_t lock;
	unsigned timeout_sec;
	struct sess v[SESSIONS_MAX];
	uint64_t next_order;
	struct sess_result *results;
	size_t nresults;
	uint64_t ended_ok, ended_failed;
	sessions_open_hook hook;
	void *hook_payload;
};

int sessions_new(struct sessions **out, unsigned timeout_sec)
{
	struct sessions *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->results = calloc(SESSIONS_RESULTS, sizeof(*s->results));
	if (!s->results) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->timeout_sec = timeout_sec;
	*out = s;
	return 0;
}

void sessions_free(struct sessions *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < SESSIONS_MAX; i++)
		json_decref(s->v[i].paths);
	free(s->results);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* With the lock held: remembers how a backup of `client` ended. */
static void sessions_record(struct sessions *s, const char *client, bool ok,
			    const char *detail)
{
	struct sess_result *slot = NULL;
	size_t i, oldest = 0;

	if (ok)
		s->ended_ok++;
	else
		s->ended_failed++;
	for (i = 0; i < s->nresults; i++) {
		if (strcmp(s->results[i].client, client) == 0) {
			slot = &s->results[i];
			break;
		}
		if (s->results[i].r.time < s->results[oldest].r.time)
			oldest = i;
	}
	if (!slot) {
		if (s->nresults < SESSIONS_RESULTS)
			slot = &s->results[s->nresults++];
		else
			slot = &s->results[oldest];
	}
	memset(slot, 0, sizeof(*slot));
	snprintf(slot->client, sizeof(slot->client), "%s", client);
	slot->r.ok = ok;
	slot->r.time = dd_now();
	if (ok)
		snprintf(slot->r.snapshot, sizeof(slot->r.snapshot), "%s",
			 detail ? detail : "");
	else
		snprintf(slot->r.error, sizeof(slot->r.error), "%s",
			 detail ? detail : "failed");
}

static void sessions_close_slot(struct sessions *s, struct sess *e, bool ok,
				const char *detail)
{
	sessions_record(s, e->client, ok, detail);
	json_decref(e->paths);
	memset(e, 0, sizeof(*e));
}

/* With the lock held: closes sessions idle for longer than the timeout. */
static void sessions_expire(struct sessions *s)
{
	double now = dd_monotonic();
	char why[96];
	size_t i;

	snprintf(why, sizeof(why), "abandoned: no activity for %u s",
		 s->timeout_sec);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (s->v[i].used && now - s->v[i].active_mono > s->timeout_sec)
			sessions_close_slot(s, &s->v[i], false, why);
}

static struct sess *sessions_find(struct sessions *s, const char *id,
				  const char *client, bool admin)
{
	size_t i;

	if (strlen(id) != SESSIONS_ID_LEN)
		return NULL;
	for (i = 0; i < SESSIONS_MAX; i++) {
		struct sess *e = &s->v[i];

		if (e->used && strcmp(e->id, id) == 0)
			return admin || strcmp(e->client, client) == 0 ? e
								       : NULL;
	}
	return NULL;
}

static void sessions_touch(struct sess *e)
{
	e->active_mono = dd_monotonic();
	e->updated = dd_now();
}

/* With the lock held: closes the open sessions of `client` that another
 * run of the same configuration left behind. Returns how many. */
static unsigned sessions_replace(struct sessions *s, const char *client,
				 const char *config)
{
	unsigned n = 0;

	if (!config || !*config)
		return 0;
	for (size_t i = 0; i < SESSIONS_MAX; i++) {
		struct sess *e = &s->v[i];

		if (e->used && strcmp(e->client, client) == 0 &&
		    strcmp(e->config, config) == 0) {
			sessions_close_slot(s, e, false, SESSIONS_REPLACED);
			n++;
		}
	}
	return n;
}

/* Records the open hook's epoch on session `id` (if still open). */
static void sessions_set_epoch(struct sessions *s, const char *id,
			       uint64_t epoch)
{
	size_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < SESSIONS_MAX; i++) {
		if (s->v[i].used && strcmp(s->v[i].id, id) == 0) {
			s->v[i].epoch = epoch;
			s->v[i].epoch_known = true;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

int sessions_open(struct sessions *s, const char *client, const char *host,
		  json_t *paths, const char *config, uint64_t expected_bytes,
		  char id[SESSIONS_ID_LEN + 1], unsigned *replaced)
{
	struct sess *slot = NULL;
	uint8_t raw[SESSIONS_ID_LEN / 2];
	unsigned mine = 0, gone;
	size_t i;
	int rc;

	if (replaced)
		*replaced = 0;
	if (config && strlen(config) > SESSIONS_CONFIG_MAX)
		return dd_error_set(-EINVAL, "configuration key too long");
	rc = dd_random(raw, sizeof(raw));
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	gone = sessions_replace(s, client, config);
	if (replaced)
		*replaced = gone;
	for (i = 0; i < SESSIONS_MAX; i++) {
		if (!s->v[i].used) {
			if (!slot)
				slot = &s->v[i];
		} else if (strcmp(s->v[i].client, client) == 0) {
			mine++;
		}
	}
	if (!slot || mine >= SESSIONS_PER_CLIENT) {
		pthread_mutex_unlock(&s->lock);
		return dd_error_set(-EAGAIN, "too many backups in progress "
				    "(%s)", slot ? "for this client" :
				    "on this server");
	}
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	dd_hex_encode(slot->id, raw, sizeof(raw));
	snprintf(slot->client, sizeof(slot->client), "%s", client);
	snprintf(slot->host, sizeof(slot->host), "%s", host);
	snprintf(slot->config, sizeof(slot->config), "%s", config ? config : "");
	slot->paths = json_incref(paths);
	slot->started = dd_now();
	slot->order = s->next_order++;
	slot->expected = expected_bytes;
	slot->files = slot->bytes_done = slot->bytes_new = slot->bytes_sent = 0;
	snprintf(slot->phase, sizeof(slot->phase), "started");
	sessions_touch(slot);
	slot->opened_mono = slot->active_mono;
	memcpy(id, slot->id, SESSIONS_ID_LEN + 1);
	pthread_mutex_unlock(&s->lock);
	if (s->hook) {
		uint64_t epoch = 0;

		rc = s->hook(s->hook_payload, sessions_open_count(s), &epoch);
		if (rc < 0) {
			char why[SESSIONS_ERROR_MAX + 1];

			snprintf(why, sizeof(why), "%s", dd_error_last());
			sessions_end(s, id, client, false, why);
			return dd_error_set(rc, "%s", why);
		}
		sessions_set_epoch(s, id, epoch);
	}
	return 0;
}

int sessions_epoch(struct sessions *s, const char *id, const char *client,
		   uint64_t *epoch)
{
	struct sess *e;
	int rc = -ENOENT;

	pthread_mutex_lock(&s->lock);
	e = sessions_find(s, id, client, false);
	if (e && e->epoch_known) {
		*epoch = e->epoch;
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void sessions_set_open_hook(struct sessions *s, sessions_open_hook fn,
			    void *payload)
{
	s->hook = fn;
	s->hook_payload = payload;
}

int sessions_update(struct sessions *s, const char *id, const char *client,
		    const struct sessions_progress *p)
{
	struct sess *e;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	e = sessions_find(s, id, client, false);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	if (p->files >= 0)
		e->files = p->files;
	if (p->bytes_done >= 0)
		e->bytes_done = p->bytes_done;
	if (p->bytes_new >= 0)
		e->bytes_new = p->bytes_new;
	if (p->bytes_sent >= 0)
		e->bytes_sent = p->bytes_sent;
	if (p->phase)
		snprintf(e->phase, sizeof(e->phase), "%s", p->phase);
	sessions_touch(e);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int sessions_end(struct sessions *s, const char *id, const char *client,
		 bool ok, const char *detail)
{
	struct sess *e;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	e = sessions_find(s, id, client, false);
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return -ENOENT;
	}
	sessions_close_slot(s, e, ok, detail);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void sessions_note_result(struct sessions *s, const char *client, bool ok,
			  const char *detail)
{
	pthread_mutex_lock(&s->lock);
	sessions_record(s, client, ok, detail);
	pthread_mutex_unlock(&s->lock);
}

void sessions_note_upload(struct sessions *s, const char *client,
			  uint64_t chunks_new, uint64_t plain_new,
			  uint64_t stored_new, uint64_t body_bytes)
{
	struct sess *best = NULL;
	size_t i;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	for (i = 0; i < SESSIONS_MAX; i++) {
		struct sess *e = &s->v[i];

		if (e->used && strcmp(e->client, client) == 0 &&
		    (!best || e->active_mono > best->active_mono))
			best = e;
	}
	if (best) {
		best->up_requests++;
		best->up_chunks += chunks_new;
		best->up_plain += plain_new;
		best->up_stored += stored_new;
		best->up_body += body_bytes;
		sessions_touch(best);
	}
	pthread_mutex_unlock(&s->lock);
}

static json_t *sessions_json(const struct sess *e)
{
	char started[32], updated[32];
	json_t *progress;
	int64_t now = dd_now();

	dd_format_time(started, e->started);
	dd_format_time(updated, e->updated);
	if (e->expected > 0) {
		double f = (double)e->bytes_done / (double)e->expected;

		/* Only the snapshot makes a backup complete. */
		progress = json_real(f > 0.99 ? 0.99 : f);
	} else {
		progress = json_null();
	}
	return json_pack("{s:s, s:s, s:s, s:O, s:s, s:I, s:s, s:I, s:I, s:s, "
			 "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
			 "id", e->id,
			 "client", e->client,
			 "host", e->host,
			 "paths", e->paths,
			 "started", started,
			 "unix_started", (json_int_t)e->started,
			 "updated", updated,
			 "elapsed_seconds", (json_int_t)(now - e->started),
			 "idle_seconds", (json_int_t)(now - e->updated),
			 "phase", e->phase,
			 "files", (json_int_t)e->files,
			 "bytes_done", (json_int_t)e->bytes_done,
			 "bytes_new", (json_int_t)e->bytes_new,
			 "bytes_sent", (json_int_t)e->bytes_sent,
			 "upload_requests", (json_int_t)e->up_requests,
			 "uploaded_chunks", (json_int_t)e->up_chunks,
			 "uploaded_bytes", (json_int_t)e->up_body,
			 "stored_bytes", (json_int_t)e->up_stored,
			 "expected_bytes", (json_int_t)e->expected,
			 "progress", progress);
}

json_t *sessions_list(struct sessions *s, const char *client, bool admin)
{
	const struct sess *order[SESSIONS_MAX];
	json_t *arr = json_array();
	size_t i, j, n = 0;

	if (!arr)
		return NULL;
	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	for (i = 0; i < SESSIONS_MAX; i++) {
		const struct sess *e = &s->v[i];

		if (!e->used || (!admin && strcmp(e->client, client) != 0))
			continue;
		/* Insertion sort by opening order: n is small. */
		for (j = n; j > 0 && order[j - 1]->order > e->order; j--)
			order[j] = order[j - 1];
		order[j] = e;
		n++;
	}
	for (i = 0; i < n; i++) {
		if (json_array_append_new(arr, sessions_json(order[i])) < 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return arr;
}

json_t *sessions_get(struct sessions *s, const char *id, const char *client,
		     bool admin)
{
	struct sess *e;
	json_t *j = NULL;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	e = sessions_find(s, id, client, admin);
	if (e)
		j = sessions_json(e);
	pthread_mutex_unlock(&s->lock);
	return j;
}

unsigned sessions_active(struct sessions *s, const char *client)
{
	unsigned n = 0;
	size_t i;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (s->v[i].used &&
		    (!client || strcmp(s->v[i].client, client) == 0))
			n++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

bool sessions_last_result(struct sessions *s, const char *client,
			  struct sessions_result *out)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	for (i = 0; i < s->nresults; i++) {
		if (strcmp(s->results[i].client, client) == 0) {
			*out = s->results[i].r;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

void sessions_totals(struct sessions *s, uint64_t *ok, uint64_t *failed)
{
	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	*ok = s->ended_ok;
	*failed = s->ended_failed;
	pthread_mutex_unlock(&s->lock);
}

double sessions_oldest_open(struct sessions *s)
{
	double oldest = HUGE_VAL;
	size_t i;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (s->v[i].used && s->v[i].opened_mono < oldest)
			oldest = s->v[i].opened_mono;
	pthread_mutex_unlock(&s->lock);
	return oldest;
}

unsigned sessions_open_count(struct sessions *s)
{
	unsigned n = 0;
	size_t i;

	pthread_mutex_lock(&s->lock);
	sessions_expire(s);
	for (i = 0; i < SESSIONS_MAX; i++)
		if (s->v[i].used)
			n++;
	pthread_mutex_unlock(&s->lock);
	return n;
}
