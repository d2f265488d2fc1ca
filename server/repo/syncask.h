/*
 * syncask.h - asking the serving process for a sync run, and its answer
 * (`dedup-server sync --repo DIR` without --from; docs/REPLICATION.md).
 *
 * Each ask is a file of its own, <repo>/SYNCASK_DIR/<id> (32 hex), so two
 * askers never share one. The asker creates it durably (written, fsynced,
 * then linked in) holding "pending" padded to SYNCASK_ROOM bytes; the
 * serving process finds it (syncask_scan), runs, and writes the run's
 * report over those bytes in place (syncask_answer): the file's blocks
 * are already there, so an answer needs no new space even on a disk the
 * run just filled. The asker reads its file (syncask_read) until it holds
 * a JSON answer, then removes it. A request stays until it is answered:
 * a server stopped or killed during the run finds it again at its next
 * start and runs for it then.
 */
#ifndef SRV_SYNCASK_H
#define SRV_SYNCASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define SYNCASK_DIR "sync.requests"
#define SYNCASK_ID_LEN 32
/* A request file's size: the room its answer has. */
#define SYNCASK_ROOM 8192
/* Requests one scan returns at most (more wait for a later run). */
#define SYNCASK_MAX 64
/* An answered request its asker never removed (it gave up or was
 * killed) is removed by the serving process after this long (an asker
 * reads its answer within 0.2 s; answers left over must not pile up
 * against SYNCASK_SCAN_ENTRIES). */
#define SYNCASK_STALE_SEC 3600

struct syncask_id {
	char s[SYNCASK_ID_LEN + 1];
};

/* The asker: a new pending request of a fresh id. */
int syncask_write(const char *repo, struct syncask_id *id);
/*
 * The asker: 1 with *answer (the caller decrefs) once `id` is answered,
 * 0 while it is pending (or being answered), -ENOENT when the request is
 * gone unanswered (the serving process could not write the answer and
 * removed it: see its log), another negative errno if it cannot be read.
 */
int syncask_read(const char *repo, const struct syncask_id *id,
		 json_t **answer);
/* The asker: removes its request (read, or given up). */
void syncask_remove(const char *repo, const struct syncask_id *id);

/*
 * The serving process: the pending requests, at most `max` of them, in
 * ids[], their count in *n. Answered requests older than
 * SYNCASK_STALE_SEC (by the file's time) are removed on the way; a file
 * whose answer was cut short (a crash while it was written) counts as
 * pending again. 0, or a negative errno if the directory cannot be read
 * (none yet is no error).
 */
int syncask_scan(const char *repo, struct syncask_id *ids, size_t max,
		 size_t *n);
/*
 * The serving process: writes `report` (an object; "request" is set to
 * the id) over the request's bytes. An answer longer than the room keeps
 * "result", "exit_code" and a shortened "error". If it cannot be written
 * the request is removed (its asker then reports that) and the error is
 * returned.
 */
int syncask_answer(const char *repo, const struct syncask_id *id,
		   json_t *report);

bool syncask_id_valid(const char *s, size_t len);

#endif
