/*
 * notify.h - telling people about stale and failed backups
 * (docs/OPERATIONS.md, "Notifications").
 *
 * Each client is in one of three states: OK, STALE (no snapshot written
 * for stale_after seconds, or none ever: an admin token that never backed
 * up is someone's browser and has no state) or FAILED (the last backup
 * attempt this server saw failed, after the last snapshot). Every
 * `interval` seconds the server works the states out; a change is an
 * event ("stale", "failed", or "recovered" when a client is OK again),
 * and a client still STALE or FAILED is reminded every `repeat` seconds
 * (0: never). Each event runs the configured hooks, at most `timeout`
 * seconds each (then killed), without blocking the server:
 *   - `notify_command`: /bin/sh -c COMMAND with DEDUP_EVENT, DEDUP_CLIENT,
 *     DEDUP_DETAIL, DEDUP_SINCE (unix seconds) and DEDUP_REPO in its
 *     environment and the message on its standard input;
 *   - `notify_email`: the message as an e-mail to that address, through
 *     `sendmail -t -oi` (path `sendmail`).
 * What was last sent per client is kept in DIR/notify.json (0600), so a
 * restart neither repeats nor forgets an event.
 */
#ifndef SRV_NOTIFY_H
#define SRV_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "sessions.h"

enum notify_state { NOTIFY_NONE, NOTIFY_OK, NOTIFY_STALE, NOTIFY_FAILED };

/* The state of a client (see above). res: its last result, or NULL. */
enum notify_state notify_state_of(bool admin, uint64_t snapshots,
				  int64_t last_written,
				  const struct sessions_result *res,
				  int64_t now, unsigned stale_after);

struct notify_opts {
	const char *command;        /* NULL: none */
	const char *email;          /* NULL: none */
	const char *sendmail;       /* path of sendmail */
	unsigned stale_after;       /* seconds */
	unsigned interval;          /* seconds between evaluations */
	unsigned repeat;            /* seconds between reminders; 0: none */
	unsigned timeout;           /* seconds a hook may run */
};

struct notify_counts {
	uint64_t events[4];         /* by enum notify_state of the event:
				     * OK counts "recovered" */
	uint64_t hook_failures;     /* hooks that exited non-zero, were
				     * killed or did not start */
};

struct notify;
struct snapshots;
struct tokens;

/* Loads DIR/notify.json (a missing file is an empty state; a damaged one
 * is logged and replaced). The options' strings are borrowed. */
int notify_new(struct notify **out, const char *repo,
	       const struct notify_opts *o);
/* Waits for (at most `timeout` s, then kills) hooks still running. */
void notify_free(struct notify *n);

/*
 * Called from the server's main loop, about once a second: reaps hooks
 * that ended (and kills those past their time), and every `interval`
 * seconds evaluates every client and sends what is due. Never blocks
 * on a hook.
 */
void notify_tick(struct notify *n, struct snapshots *snaps,
		 struct sessions *sessions, struct tokens *tokens,
		 int64_t now);

void notify_counts(struct notify *n, struct notify_counts *out);

#endif
