/*
 * log.h - the server's messages on stderr and small error helpers.
 *
 * Messages follow git's style: "error: cannot open pack '%s': %s" -
 * lowercase, subject quoted, no full stop. Each message is written with a
 * single write(2) so lines from concurrent threads never interleave.
 */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <stddef.h>

/* "error: ..." */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "warning: ..." */
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "dedup-server: ..." */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The reason for a failure `rc` (negative errno) of this thread: the
 * message libdedup recorded with dd_error_set(), or strerror(-rc) when none
 * was recorded. Borrowed, valid until the next dd_error_* call.
 */
const char *log_reason(int rc);

/*
 * Records "<fmt ...>: <reason for rc>" as this thread's error message and
 * returns rc unchanged, so a layer can add its context (which pack, which
 * chunk) without losing the lower layer's reason.
 */
int log_wrap(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copies `s` (at most `len` bytes, or up to its NUL when len is
 * (size_t)-1) into out as printable ASCII: other bytes become \xNN, and the
 * copy is cut to fit outsz. Used for untrusted names in messages.
 */
void log_sanitize(char *out, size_t outsz, const char *s, size_t len);

#endif
