/*
 * sync.h - replication: copying snapshots from another dedup-server
 * (the source) into this repository (docs/REPLICATION.md).
 *
 * The source is read over its REST API with the agent's HTTPS client
 * (shared/httpc.h, same TLS rules): its snapshot list page by page, each
 * manifest not yet here, and only the chunks this repository lacks for
 * the snapshot's client's dedup domain, fetched in batches and verified
 * (syncwire.h: SHA-256 of the plain bytes = id) before anything is
 * stored. A snapshot is created here (snapshots_import: same id, client
 * and times) only once every chunk it names is stored, so a run killed at
 * any point leaves chunks without a snapshot, which the next run finds
 * present and does not fetch again. A snapshot that cannot be copied (a
 * damaged chunk at the source) is reported and skipped; the others are
 * copied.
 *
 * The same code runs from `dedup-server sync` on a stopped server's
 * repository and from the serving process's own thread (sync_from in
 * server.conf, sync_daemon_*), both writing the result to
 * <repo>/sync.json, which the status page and /metrics read.
 */
#ifndef SRV_SYNC_H
#define SRV_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define SYNC_STATE_FILE "sync.json"

/* Exit codes of `dedup-server sync` by a run's rc, also kept in
 * sync.json ("exit_code") for the runs a serving process made. */
#define SYNC_EXIT_OK 0
#define SYNC_EXIT_FAILED 1           /* snapshots not copied, local error */
#define SYNC_EXIT_UNREACHABLE 3      /* connect, TLS, not a dedup server */
#define SYNC_EXIT_TOKEN 4            /* the source refused the token */
int sync_exit_code(int rc);
/* sync_max_clients: a source read with an admin token lists snapshots
 * of any client names, each up to max_snapshots_per_client of them. */
#define SYNC_MAX_CLIENTS_DEFAULT 1000u

/* Ids per POST /chunks/fetch (halved while the source answers 413). */
#define SYNC_FETCH_BATCH 1024

struct store;
struct snapshots;
struct tokens;

struct sync_opts {
	const char *from;            /* the source's https:// URL */
	const char *token;           /* its token (admin: every client) */
	const char *ca;              /* CA file, or NULL */
	const char *fingerprint;     /* pinned certificate (64 hex), or NULL */
	const char *const *clients;  /* only these clients; NULL: all */
	size_t nclients;
	int64_t newer_than;          /* only snapshots the source wrote at or
				      * after this (unix s); 0: all */
	/* Client names without a token here that may have snapshots in this
	 * repository: a listed snapshot of another new name is not copied
	 * once that many have some (0: SYNC_MAX_CLIENTS_DEFAULT). */
	uint64_t max_clients;
	/* Asked between batches; true makes the run stop early (as failed:
	 * "interrupted"). NULL: never. */
	bool (*stop)(void *payload);
	void *stop_payload;
};

struct sync_report {
	int64_t started, finished;   /* unix seconds */
	/* 0: every selected snapshot is here now. Negative: the run could
	 * not go on (source unreachable -ECONNREFUSED, TLS or not a dedup
	 * server -EPROTO, token refused -EACCES, this repository -ENOSPC or
	 * -EIO, -EINTR stopped). -EBADMSG: it went through but `failed`
	 * snapshots could not be copied. */
	int rc;
	char error[512];             /* the first error; "" for none */
	uint64_t listed;             /* source snapshots selected */
	uint64_t copied, present, failed;
	/* not copied, and no longer in the source's list when the run
	 * looked again at its end: forgotten there meanwhile (not failed) */
	uint64_t gone;
	uint64_t chunks_copied;      /* chunks fetched and stored */
	uint64_t bytes_copied;       /* their plain bytes */
	uint64_t bytes_received;     /* their bytes as sent (compressed) */
	int64_t oldest_pending;      /* the source's write time of the
				      * oldest snapshot not copied; 0: none */
};

/*
 * One run against `st` and `snaps` (borrowed; opened on this repository),
 * with `tok` (borrowed) giving each client's dedup domain here (a client
 * with no token here is in the default domain). Fills *r; returns r->rc.
 */
int sync_run(struct store *st, struct snapshots *snaps, struct tokens *tok,
	     const struct sync_opts *o, struct sync_report *r);

/* Writes <repo>/sync.json (0600, atomically): this run's report, and
 * the time of the last run with rc 0 (kept from the previous file when
 * this one failed). */
int sync_state_save(const char *repo, const char *from,
		    const struct sync_report *r);
/*
 * The state for the status page and /metrics: sync.json as written, plus
 * "lag_seconds": now minus the source's write time of the oldest snapshot
 * the last run left behind, or, when it left none, now minus the end of
 * the last successful run (null if there never was one). -ENOENT if no
 * sync ever ran here. The caller decrefs *out.
 */
int sync_state_load(const char *repo, int64_t now, json_t **out);

/*
 * The serving process's sync thread: runs sync_run at start and then every
 * `interval` seconds (0: only when asked), and when asked (syncask.h),
 * until freed; the options' strings are borrowed. Requests left
 * unanswered by a stop or a kill are answered by its first run.
 */
struct sync_daemon;
int sync_daemon_start(struct sync_daemon **out, const char *repo,
		      struct store *st, struct snapshots *snaps,
		      struct tokens *tok, const struct sync_opts *o,
		      unsigned interval);
/*
 * For the serving process's main loop (once a second): finds the pending
 * requests (syncask.h) and has `d` run for those it has not seen (one run
 * after the one in progress answers them all). Without a daemon (d NULL:
 * no sync_from) each is answered at once as failed, "sync_from is not
 * set", in sync.json too.
 */
void sync_daemon_poll(struct sync_daemon *d, const char *repo);
/* Stops the thread (a run in progress stops at its next batch) and frees
 * it. NULL is a no-op. */
void sync_daemon_free(struct sync_daemon *d);

#endif
