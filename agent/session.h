/*
 * session.h - tells the server a backup is running, so its status page
 * and /metrics show it with its progress (docs/API.md, "Backups in
 * progress"). Best effort throughout: a server without sessions, or any
 * failure here, only means no progress is shown; the backup never fails
 * because of a session, and the thread's error message (dd_error_last)
 * is left as it was.
 *
 * A session names the agent's configuration (session_open's `lock`), so
 * that the server closes the sessions that killed runs of the same
 * configuration left open instead of showing them as backups in progress
 * (and counting them against the client's limit) for session_timeout.
 *
 * Use from the backup's main thread, with its client:
 *   session_open(&s, c, lock, roots, n);      after connecting
 *   session_progress(s, files, bytes);        as often as you like
 *   client_post_json(c, session_snapshot_path(s), ...)   closes it
 *   session_close(s, rc);                     always; rc < 0 reports why
 */
#ifndef DD_AGENT_SESSION_H
#define DD_AGENT_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct client;
struct session;

/*
 * Opens a session for a backup of `paths` (absolute). `lock` is the path
 * of the configuration's lock file, which this run holds (lock.h): the
 * server is sent a key derived from it and the host name ("config"), never
 * the path. *out is NULL when the server took none; every other function
 * accepts NULL. A refusal other than "no such route" (an older server) is
 * a warning: the backup goes on, not shown as in progress.
 */
void session_open(struct session **out, struct client *c, const char *lock,
		  char *const *paths, size_t npaths);
/* Reports files and plain bytes done so far, at most every
 * SESSION_INTERVAL seconds (otherwise returns at once). */
void session_progress(struct session *s, uint64_t files, uint64_t bytes_done);
/* The path of the snapshot create that ends the session:
 * "/api/v1/snapshots?session=ID", or "/api/v1/snapshots" without one.
 * Borrowed, valid until session_close. */
const char *session_snapshot_path(const struct session *s);
/* Ends the session. rc < 0: the backup failed, and the server is told
 * dd_error_last() as the reason (unless the snapshot create already
 * closed it). Frees s. */
void session_close(struct session *s, int rc);

#endif
