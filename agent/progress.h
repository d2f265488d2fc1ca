/*
 * progress.h - the one-line progress display of a backup: files, bytes,
 * rate and, when a total is known, the time left, e.g.
 *
 *     1234 files  1.5 GiB  88.2 MiB/s  ETA 0:42
 *
 * It is drawn on stderr, and only when stderr is a terminal and -q was not
 * given; under cron (no terminal) nothing is ever written. A disabled
 * display is a NULL pointer and every function accepts NULL, so callers
 * need no checks. It redraws at most every PROGRESS_INTERVAL seconds, so
 * progress_update() may be called for every chunk.
 *
 * Only one display draws at a time (there is one stderr); agent_warn()
 * erases its line before printing (progress_interrupt) and the next update
 * draws it again. All functions are for one thread, except
 * progress_interrupt, which any thread may call.
 */
#ifndef DD_AGENT_PROGRESS_H
#define DD_AGENT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define PROGRESS_INTERVAL 0.25

struct progress;

/*
 * *out is a display, or NULL when `quiet` is set or stderr is not a
 * terminal. 0, or -ENOMEM with a reason.
 */
int progress_new(struct progress **out, bool quiet);

/* The expected totals (e.g. the parent snapshot's), for the ETA; 0 bytes
 * means unknown. The ETA is hidden once the count passes the estimate. */
void progress_total(struct progress *p, uint64_t files, uint64_t bytes);

/* The files and bytes done so far (cumulative, not increments). */
void progress_update(struct progress *p, uint64_t files, uint64_t bytes);

/* Erases the line and draws no more; call before printing the result. */
void progress_end(struct progress *p);

/* Erases the line (if drawn) and frees the display; NULL is a no-op. */
void progress_free(struct progress *p);

/* Erases the line of the display currently drawing, if any, so that a
 * message can be printed; the next update draws it again. */
void progress_interrupt(void);

#endif
