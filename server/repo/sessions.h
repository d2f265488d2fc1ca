/*
 * sessions.h - backups in progress. An agent opens a session when a backup
 * starts (POST /api/v1/sessions), may report progress on it, and the
 * snapshot create that ends the backup closes it
 * (POST /api/v1/snapshots?session=ID). The server adds what it sees
 * itself: chunk uploads of a client count towards its most recently active
 * open session. A session with no activity for `timeout_sec` is closed as
 * failed ("abandoned").
 *
 * Sessions live in memory only: a restart forgets backups in progress and
 * the last result of each client (the status then falls back to the
 * snapshots on disk). The table is bounded: SESSIONS_MAX open sessions,
 * SESSIONS_PER_CLIENT per client, SESSIONS_RESULTS remembered results.
 *
 * All functions are thread-safe. Errors: -ENOENT unknown session (or
 * another client's), -EAGAIN the table is full, -ENOMEM.
 */
#ifndef SRV_SESSIONS_H
#define SRV_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "hash.h"
#include "proto.h"

#define SESSIONS_ID_LEN 32          /* hex digits */
#define SESSIONS_MAX 256
#define SESSIONS_PER_CLIENT 16
#define SESSIONS_RESULTS 4096
#define SESSIONS_HOST_MAX 255
#define SESSIONS_ERROR_MAX 300
#define SESSIONS_CONFIG_MAX 64      /* hex digits of a configuration key */
#define SESSIONS_REPLACED "abandoned: a new backup of the same configuration started"

struct sessions;

/* What an agent may report; a field < 0 is left as it was. */
struct sessions_progress {
	int64_t files;
	int64_t bytes_done;         /* plain bytes read so far */
	int64_t bytes_new;          /* plain bytes the server lacked */
	int64_t bytes_sent;         /* bytes uploaded (compressed) */
	const char *phase;          /* NULL: unchanged; <= 15 chars */
};

/* The last finished backup of a client, as far as this process knows. */
struct sessions_result {
	bool ok;
	int64_t time;               /* unix seconds, server clock */
	char snapshot[DD_ID_HEX_LEN + 1];   /* when ok and known */
	char error[SESSIONS_ERROR_MAX + 1]; /* when failed */
};

int sessions_new(struct sessions **out, unsigned timeout_sec);
void sessions_free(struct sessions *s);

/*
 * Opens a session; `paths` is a JSON array (a reference is taken) and
 * `expected_bytes` the size of the client's previous backup of the same
 * paths (0 if none), for a progress estimate.
 *
 * `config` (NULL or 1..SESSIONS_CONFIG_MAX hex digits) names the agent's
 * configuration. An agent runs one backup per configuration at a time, so
 * a new session with the same key means the older ones of that client
 * belong to runs that died: they are closed first, as failed with
 * SESSIONS_REPLACED, and do not count towards the per-client limit.
 * *replaced (when not NULL) gets their number.
 */
int sessions_open(struct sessions *s, const char *client, const char *host,
		  json_t *paths, const char *config, uint64_t expected_bytes,
		  char id[SESSIONS_ID_LEN + 1], unsigned *replaced);
int sessions_update(struct sessions *s, const char *id, const char *client,
		    const struct sessions_progress *p);
/* Closes a session: ok with the snapshot's id, or failed with a reason. */
int sessions_end(struct sessions *s, const char *id, const char *client,
		 bool ok, const char *detail);
/* Records how a backup of `client` ended when no session was involved
 * (a snapshot create without ?session=). */
void sessions_note_result(struct sessions *s, const char *client, bool ok,
			  const char *detail);
/* Counts an upload of `client` towards its most recently active open
 * session; nothing happens when it has none. */
void sessions_note_upload(struct sessions *s, const char *client,
			  uint64_t chunks_new, uint64_t plain_new,
			  uint64_t stored_new, uint64_t body_bytes);

/* JSON array of the open sessions `client` may see (admin: all), oldest
 * first; NULL on out of memory. */
json_t *sessions_list(struct sessions *s, const char *client, bool admin);
/* One open session as JSON, or NULL when unknown / not visible. */
json_t *sessions_get(struct sessions *s, const char *id, const char *client,
		     bool admin);
/* Open sessions, in total or of one client (client != NULL). */
unsigned sessions_active(struct sessions *s, const char *client);
/* The last result recorded for `client`; false when none. */
bool sessions_last_result(struct sessions *s, const char *client,
			  struct sessions_result *out);
/* The dd_monotonic() time at which the oldest open session was opened,
 * or HUGE_VAL when none is open (sessions idle past the timeout are
 * closed first). The garbage collector keeps every chunk vouched for
 * since then (store.h, "Collection support"). */
double sessions_oldest_open(struct sessions *s);
/* Open sessions now (the heartbeat other front-ends' collections read,
 * server/repo/frontends.h). */
unsigned sessions_open_count(struct sessions *s);
/*
 * Called by sessions_open once a session is open, before it returns, with
 * the number now open (several front-ends on one pool: the heartbeat that
 * other front-ends' collections read is written there and then, and a
 * collection in progress is waited for). It sets *epoch to the pool's gc
 * epoch the session's answers are true as of, which the session keeps
 * (sessions_epoch). A negative return fails the open: the session is
 * closed again as failed and the code returned.
 */
typedef int (*sessions_open_hook)(void *payload, unsigned open_now,
				  uint64_t *epoch);
/* The gc epoch the open hook gave session `id` of `client`: -ENOENT when
 * the session is unknown or no hook gave one. */
int sessions_epoch(struct sessions *s, const char *id, const char *client,
		   uint64_t *epoch);
void sessions_set_open_hook(struct sessions *s, sessions_open_hook fn,
			    void *payload);
/* Sessions ended since the server started. */
void sessions_totals(struct sessions *s, uint64_t *ok, uint64_t *failed);

#endif
