/*
 * util.h - small building blocks of libdedup: a capped growable buffer,
 * the thread-local error message, little-endian codecs, hex, and durable
 * file-system helpers.
 *
 * Conventions for all of libdedup: functions return 0 (or a count) on
 * success and a negative errno-style code on failure (-ENOMEM, -EIO,
 * -EBADMSG for corrupt/invalid input, -ENOENT, -EEXIST, -E2BIG when a cap
 * is hit). A failing function may record a human-readable reason with
 * dd_error_set(); callers print dd_error_last(). The library never prints
 * and never exits.
 */
#ifndef DD_UTIL_H
#define DD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define DD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error message (thread-local, like libgit2's git_error_last) ---- */

/* Records a printf-style reason for the last failure of this thread and
 * returns `code` unchanged, so `return dd_error_set(-EBADMSG, "...")` works. */
int dd_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The last reason recorded on this thread, or "unknown error"; never NULL. */
const char *dd_error_last(void);
void dd_error_clear(void);

/* ---- growable byte buffer with a hard cap ---- */

struct dd_buf {
	uint8_t *data;
	size_t len;
	size_t alloc;
	size_t cap;     /* hard limit on len; 0 = SIZE_MAX */
};

void dd_buf_init(struct dd_buf *b, size_t cap);
void dd_buf_release(struct dd_buf *b);          /* frees data, keeps cap */
void dd_buf_reset(struct dd_buf *b);            /* len = 0, keeps memory */
/* Make room for `extra` more bytes; -E2BIG past the cap, -ENOMEM. */
int dd_buf_reserve(struct dd_buf *b, size_t extra);
int dd_buf_append(struct dd_buf *b, const void *p, size_t n);
int dd_buf_append_u8(struct dd_buf *b, uint8_t v);
int dd_buf_append_le32(struct dd_buf *b, uint32_t v);
int dd_buf_append_le64(struct dd_buf *b, uint64_t v);
/* Hands the bytes to the caller (who frees them); the buffer becomes empty. */
uint8_t *dd_buf_detach(struct dd_buf *b, size_t *len_out);

/* ---- little-endian codecs ---- */

static inline uint32_t dd_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline uint64_t dd_le64(const uint8_t *p)
{
	return (uint64_t)dd_le32(p) | (uint64_t)dd_le32(p + 4) << 32;
}
static inline void dd_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void dd_put_le64(uint8_t *p, uint64_t v)
{
	dd_put_le32(p, (uint32_t)v);
	dd_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A bounds-checked reader over a byte range; every get fails with
 * -EBADMSG instead of reading past the end. */
struct dd_cursor {
	const uint8_t *p;
	size_t left;
};
int dd_cursor_get(struct dd_cursor *c, void *out, size_t n);
int dd_cursor_get_u8(struct dd_cursor *c, uint8_t *out);
int dd_cursor_get_le32(struct dd_cursor *c, uint32_t *out);
int dd_cursor_get_le64(struct dd_cursor *c, uint64_t *out);
/* Borrow n bytes in place (no copy). */
int dd_cursor_take(struct dd_cursor *c, const uint8_t **out, size_t n);

/* ---- hex ---- */

/*
 * A time (seconds and nanoseconds, as stat gives it: nsec >= 0 also before
 * 1970) as the pair to hand libarchive's pax writer, which prints "sec.nsec"
 * as it is given, and readers take "-1.25" as minus 1.25 s: so -1.25 s
 * (sec -2, nsec 750000000) is given as sec -1, nsec 250000000. A time
 * within the last second before 1970 cannot be printed at all ("0.25"
 * would be after it): it is given as -1, a fraction of a second early.
 */
void dd_pax_time(int64_t sec, long nsec, int64_t *out_sec, long *out_nsec);

/* Writes 2*n lowercase hex digits and a NUL into out (size >= 2*n+1). */
void dd_hex_encode(char *out, const uint8_t *p, size_t n);
/* Whether s starts with n lowercase hex digits (what dd_hex_encode
 * writes; ids, tokens and names made of them); s holds at least n chars
 * or a NUL before, which fails. */
bool dd_hex_lower(const char *s, size_t n);
/* Parses exactly 2*n hex digits (either case) from s of length slen;
 * -EINVAL on a wrong length or a non-hex digit. */
int dd_hex_decode(uint8_t *out, size_t n, const char *s, size_t slen);

/*
 * `len` bytes of `s` (untrusted: a file name, a name from a catalog, a
 * server's message) made safe to print on one line of a terminal: the
 * backslash, control bytes (C0, DEL, and the C1 controls and bidi
 * overrides of UTF-8) and bytes that are not UTF-8 become \\, \n, \t,
 * \xNN; other UTF-8 passes. Cut with "..." to fit `out`. Returns out.
 */
const char *dd_quote(char *out, size_t outsz, const char *s, size_t len);

/* ---- parsing ---- */

/* Strict decimal parse of a whole string into uint64 (no sign, no spaces,
 * no trailing bytes); -EINVAL otherwise, -ERANGE on overflow. */
int dd_parse_u64(const char *s, uint64_t *out);
/* A test hook's number (docs/OPERATIONS.md lists them): the environment
 * variable `name` when it holds a number from min to max, else dflt. */
uint64_t dd_test_hook_u64(const char *name, uint64_t min, uint64_t max,
			  uint64_t dflt);
/* A byte count: decimal with an optional K, M, G or T suffix (powers of
 * 1024): "0", "500000", "64M"; -EINVAL for anything else or past 2^63. */
int dd_parse_bytes(const char *s, uint64_t *out);

/* ---- file system ---- */

/* out = dir + "/" + name; -ENAMETOOLONG (with a reason) if it does not
 * fit in outsz. */
int dd_path_join(char *out, size_t outsz, const char *dir, const char *name);

/* Writes `len` bytes to `path` durably: a temporary of this call's own
 * (path.tmp-PID-N), fsync, rename, fsync of
 * the directory. Never leaves a half-written `path`. */
int dd_write_file_atomic(const char *path, const void *data, size_t len,
			 mode_t mode);
/* The same for a file that must not exist yet: published with link(2),
 * so a file created at `path` meanwhile, however late, is never replaced
 * (-EEXIST, "'path' exists; not overwritten"). */
int dd_write_file_new(const char *path, const void *data, size_t len,
		      mode_t mode);
/* Reads a whole file of at most `max` bytes; -E2BIG if larger. Caller frees
 * *out (NUL-terminated for convenience; *len excludes the NUL). */
int dd_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
int dd_fsync_dir(const char *dir);
/* fsync(2) of every regular file directly in `dir` (one removed
 * meanwhile is skipped), then of `dir` itself. */
int dd_fsync_dir_files(const char *dir);
/* mkdir -p with `mode` for created components; existing dirs are fine. */
int dd_mkdir_p(const char *path, mode_t mode);
/* Full write/read loops that retry on EINTR and short counts. */
int dd_write_all(int fd, const void *p, size_t n);
int dd_pwrite_all(int fd, const void *p, size_t n, off_t off);
/* Reads exactly n bytes at off; -EBADMSG on a short file. */
int dd_pread_all(int fd, void *p, size_t n, off_t off);
/* Reads up to n bytes, stopping early only at end of file; returns count. */
ssize_t dd_read_full(int fd, void *p, size_t n);

/* Wall-clock seconds (CLOCK_REALTIME) and a monotonic clock in seconds. */
int64_t dd_now(void);
double dd_monotonic(void);
/* Formats unix seconds as RFC 3339 UTC ("2026-11-21T16:40:00Z"). */
void dd_format_time(char out[32], int64_t t);

/* Random bytes from OpenSSL's CSPRNG. */
int dd_random(void *out, size_t n);

/* A thread that calls fn(arg) every `ms` milliseconds of the monotonic
 * clock (the first call `ms` after the start) until stopped. */
struct dd_ticker;
int dd_ticker_start(struct dd_ticker **out, unsigned ms, void (*fn)(void *),
		    void *arg);
/* Waits for a call in progress to return, then ends the thread and frees
 * the ticker (NULL is fine): fn is not called after this returns. */
void dd_ticker_stop(struct dd_ticker *t);

#endif
