/*
 * util.c - the building blocks declared in util.h: error message, capped
 * buffer, cursor, hex, strict parsing, durable file helpers, clocks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "util.h"

/* ---- error message ---- */

static __thread char dd_error_buf[512];
static __thread bool dd_error_isset;

int dd_error_set(int code, const char *fmt, ...)
{
	char tmp[sizeof(dd_error_buf)];
	va_list ap;

	/* Format into a temporary first: the arguments may point into the
	 * current message (wrapping a lower layer's reason). */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(dd_error_buf, tmp, sizeof(tmp));
	dd_error_isset = true;
	return code;
}

const char *dd_error_last(void)
{
	return dd_error_isset ? dd_error_buf : "unknown error";
}

void dd_error_clear(void)
{
	dd_error_isset = false;
	dd_error_buf[0] = '\0';
}

/* ---- buffer ---- */

void dd_buf_init(struct dd_buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap ? cap : SIZE_MAX;
}

void dd_buf_release(struct dd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

void dd_buf_reset(struct dd_buf *b)
{
	b->len = 0;
}

int dd_buf_reserve(struct dd_buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : SIZE_MAX;
	size_t need, nalloc;
	uint8_t *p;

	if (extra > cap || b->len > cap - extra)
		return dd_error_set(-E2BIG, "buffer limit of %zu bytes reached",
				    cap);
	need = b->len + extra;
	if (need <= b->alloc)
		return 0;
	nalloc = b->alloc ? b->alloc : 256;
	while (nalloc < need) {
		if (nalloc > SIZE_MAX / 2) {
			nalloc = need;
			break;
		}
		nalloc *= 2;
	}
	if (nalloc > cap)
		nalloc = cap;
	p = realloc(b->data, nalloc);
	if (!p)
		return dd_error_set(-ENOMEM, "out of memory (%zu bytes)", nalloc);
	b->data = p;
	b->alloc = nalloc;
	return 0;
}

int dd_buf_append(struct dd_buf *b, const void *p, size_t n)
{
	int err;

	if (n == 0)
		return 0;
	err = dd_buf_reserve(b, n);
	if (err < 0)
		return err;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int dd_buf_append_u8(struct dd_buf *b, uint8_t v)
{
	return dd_buf_append(b, &v, 1);
}

int dd_buf_append_le32(struct dd_buf *b, uint32_t v)
{
	uint8_t tmp[4];

	dd_put_le32(tmp, v);
	return dd_buf_append(b, tmp, sizeof(tmp));
}

int dd_buf_append_le64(struct dd_buf *b, uint64_t v)
{
	uint8_t tmp[8];

	dd_put_le64(tmp, v);
	return dd_buf_append(b, tmp, sizeof(tmp));
}

uint8_t *dd_buf_detach(struct dd_buf *b, size_t *len_out)
{
	uint8_t *p = b->data;

	/* Never hand back NULL for an empty buffer: NULL means no memory. */
	if (!p)
		p = malloc(1);
	if (len_out)
		*len_out = p ? b->len : 0;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

/* ---- cursor ---- */

int dd_cursor_take(struct dd_cursor *c, const uint8_t **out, size_t n)
{
	if (n > c->left)
		return dd_error_set(-EBADMSG,
				    "truncated data: %zu bytes needed, %zu left",
				    n, c->left);
	*out = c->p;
	c->p += n;
	c->left -= n;
	return 0;
}

int dd_cursor_get(struct dd_cursor *c, void *out, size_t n)
{
	const uint8_t *p = NULL;
	int err = dd_cursor_take(c, &p, n);

	if (err < 0)
		return err;
	if (n)
		memcpy(out, p, n);
	return 0;
}

int dd_cursor_get_u8(struct dd_cursor *c, uint8_t *out)
{
	return dd_cursor_get(c, out, 1);
}

int dd_cursor_get_le32(struct dd_cursor *c, uint32_t *out)
{
	const uint8_t *p = NULL;
	int err = dd_cursor_take(c, &p, 4);

	if (err < 0)
		return err;
	*out = dd_le32(p);
	return 0;
}

int dd_cursor_get_le64(struct dd_cursor *c, uint64_t *out)
{
	const uint8_t *p = NULL;
	int err = dd_cursor_take(c, &p, 8);

	if (err < 0)
		return err;
	*out = dd_le64(p);
	return 0;
}

/* ---- hex ---- */

void dd_hex_encode(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void dd_pax_time(int64_t sec, long nsec, int64_t *out_sec, long *out_nsec)
{
	*out_sec = sec;
	*out_nsec = nsec;
	if (sec >= 0 || nsec <= 0)
		return;
	if (sec == -1) {
		*out_nsec = 0;
		return;
	}
	/* sec + nsec/1e9 = -(|sec + 1| + (1e9 - nsec)/1e9) */
	*out_sec = sec + 1;
	*out_nsec = 1000000000L - nsec;
}

bool dd_hex_lower(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int dd_hex_decode(uint8_t *out, size_t n, const char *s, size_t slen)
{
	size_t i;

	if (n > SIZE_MAX / 2 || slen != 2 * n)
		return dd_error_set(-EINVAL, "expected %zu hex digits, got %zu",
				    2 * n, slen);
	for (i = 0; i < n; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return dd_error_set(-EINVAL, "not a hex digit at %zu",
					    hi < 0 ? 2 * i : 2 * i + 1);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- parsing ---- */

int dd_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (!s || !*s)
		return dd_error_set(-EINVAL, "empty number");
	for (p = s; *p; p++) {
		unsigned d;

		if (*p < '0' || *p > '9')
			return dd_error_set(-EINVAL, "not a decimal number: '%s'",
					    s);
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return dd_error_set(-ERANGE, "number too large: '%s'", s);
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

uint64_t dd_test_hook_u64(const char *name, uint64_t min, uint64_t max,
			  uint64_t dflt)
{
	const char *v = getenv(name);
	uint64_t n;

	return v && *v && dd_parse_u64(v, &n) == 0 && n >= min && n <= max ?
		n : dflt;
}

int dd_parse_bytes(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;
	uint64_t x;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	switch (s[n - 1]) {
	case 'K': shift = 10; n--; break;
	case 'M': shift = 20; n--; break;
	case 'G': shift = 30; n--; break;
	case 'T': shift = 40; n--; break;
	default: break;
	}
	memcpy(num, s, n);
	num[n] = '\0';
	if (dd_parse_u64(num, &x) < 0 || x > (UINT64_MAX >> 1) >> shift)
		return -EINVAL;
	*out = x << shift;
	return 0;
}

/* ---- file system ---- */

int dd_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t w = write(fd, q, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return dd_error_set(-errno, "write failed: %s",
					    strerror(errno));
		}
		if (w == 0)
			return dd_error_set(-EIO, "write made no progress");
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int dd_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const uint8_t *q = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, q, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return dd_error_set(-errno, "write failed: %s",
					    strerror(errno));
		}
		if (w == 0)
			return dd_error_set(-EIO, "write made no progress");
		q += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int dd_pread_all(int fd, void *p, size_t n, off_t off)
{
	uint8_t *q = p;

	while (n > 0) {
		ssize_t r = pread(fd, q, n, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return dd_error_set(-errno, "read failed: %s",
					    strerror(errno));
		}
		if (r == 0)
			return dd_error_set(-EBADMSG,
					    "file too short: %zu bytes missing "
					    "at offset %lld", n, (long long)off);
		q += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

ssize_t dd_read_full(int fd, void *p, size_t n)
{
	uint8_t *q = p;
	size_t got = 0;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	while (got < n) {
		ssize_t r = read(fd, q + got, n - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return dd_error_set(-errno, "read failed: %s",
					    strerror(errno));
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int dd_fsync_dir(const char *dir)
{
	int fd, err = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dd_error_set(-errno, "cannot open directory '%s': %s",
				    dir, strerror(errno));
	if (fsync(fd) < 0)
		err = dd_error_set(-errno, "cannot sync directory '%s': %s",
				   dir, strerror(errno));
	close(fd);
	return err;
}

int dd_fsync_dir_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int err = 0;

	if (!d)
		return dd_error_set(-errno, "cannot open directory '%s': %s",
				    dir, strerror(errno));
	while (err == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW |
			    O_CLOEXEC);
		if (fd < 0) {
			if (errno != ENOENT)   /* removed meanwhile: fine */
				err = dd_error_set(-errno, "cannot open '%s/%s': "
						   "%s", dir, de->d_name,
						   strerror(errno));
			continue;
		}
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    fsync(fd) < 0)
			err = dd_error_set(-errno, "cannot sync '%s/%s': %s",
					   dir, de->d_name, strerror(errno));
		close(fd);
	}
	closedir(d);
	return err < 0 ? err : dd_fsync_dir(dir);
}

/* The directory holding `path` ("." for a bare name), malloc'ed. */
static char *parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n;
	char *d;

	if (!slash)
		return strdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	n = slash == path ? 1 : (size_t)(slash - path);
	d = malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, path, n);
	d[n] = '\0';
	return d;
}

static int write_file_atomic(const char *path, const void *data, size_t len,
			     mode_t mode, bool replace)
{
	char *tmp = NULL, *dir = NULL;
	size_t plen = strlen(path);
	bool renamed = false;
	int fd = -1, err = 0;

	tmp = malloc(plen + 48);
	dir = parent_dir(path);
	if (!tmp || !dir) {
		err = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	/* A temporary of this writer's own: two writers of one path at once
	 * (two threads adopting one manifest) never rename each other's
	 * half-written file into place. A name left by a crashed process
	 * of the same pid is skipped (O_EXCL). */
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		static unsigned long seq;

		snprintf(tmp, plen + 48, "%s.tmp-%ld-%lu", path,
			 (long)getpid(),
			 __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
		fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
		if (fd < 0 && errno != EEXIST) {
			err = dd_error_set(-errno, "cannot create '%s': %s",
					   tmp, strerror(errno));
			free(tmp);
			tmp = NULL;   /* not ours: nothing to remove */
			goto cleanup;
		}
	}
	if (fd < 0) {
		err = dd_error_set(-EEXIST, "cannot create a temporary file "
				   "beside '%s'", path);
		free(tmp);
		tmp = NULL;
		goto cleanup;
	}
	err = dd_write_all(fd, data, len);
	if (err < 0) {
		dd_error_set(err, "cannot write '%s': %s", tmp, strerror(-err));
		goto cleanup;
	}
	if (fsync(fd) < 0) {
		err = dd_error_set(-errno, "cannot sync '%s': %s", tmp,
				   strerror(errno));
		goto cleanup;
	}
	if (close(fd) < 0) {
		fd = -1;
		err = dd_error_set(-errno, "cannot close '%s': %s", tmp,
				   strerror(errno));
		goto cleanup;
	}
	fd = -1;
	if (!replace) {
		/* link fails if the name exists, whenever it came: a check
		 * made before could be overtaken (the temporary goes) */
		if (link(tmp, path) < 0) {
			if (errno == EEXIST)
				err = dd_error_set(-EEXIST, "'%s' exists; not "
						   "overwritten", path);
			else
				err = dd_error_set(-errno, "cannot create "
						   "'%s': %s", path,
						   strerror(errno));
			goto cleanup;
		}
		unlink(tmp);
		renamed = true;
		err = dd_fsync_dir(dir);
		goto cleanup;
	}
	if (rename(tmp, path) < 0) {
		err = dd_error_set(-errno, "cannot rename '%s' to '%s': %s",
				   tmp, path, strerror(errno));
		goto cleanup;
	}
	renamed = true;
	err = dd_fsync_dir(dir);

cleanup:
	if (fd >= 0)
		close(fd);
	if (err < 0 && tmp && !renamed)
		unlink(tmp);
	free(tmp);
	free(dir);
	return err;
}

int dd_write_file_atomic(const char *path, const void *data, size_t len,
			 mode_t mode)
{
	return write_file_atomic(path, data, len, mode, true);
}

int dd_write_file_new(const char *path, const void *data, size_t len,
		      mode_t mode)
{
	return write_file_atomic(path, data, len, mode, false);
}

int dd_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct dd_buf b;
	struct stat st;
	int fd, err = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dd_error_set(-errno, "cannot open '%s': %s", path,
				    strerror(errno));
	dd_buf_init(&b, max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX);
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size > max) {
		err = dd_error_set(-E2BIG, "'%s' is larger than %zu bytes",
				   path, max);
		goto cleanup;
	}
	/* Pipes and /proc files have no useful size: read until end of file,
	 * one byte past the limit at most. */
	for (;;) {
		size_t room;
		ssize_t r;

		if (b.len > max) {
			err = dd_error_set(-E2BIG, "'%s' is larger than %zu "
					   "bytes", path, max);
			goto cleanup;
		}
		err = dd_buf_reserve(&b, b.len + 65536 <= b.cap ?
				     65536 : b.cap - b.len);
		if (err < 0)
			goto cleanup;
		room = b.alloc - b.len;
		r = dd_read_full(fd, b.data + b.len, room);
		if (r < 0) {
			err = dd_error_set((int)r, "cannot read '%s': %s", path,
					   strerror((int)-r));
			goto cleanup;
		}
		b.len += (size_t)r;
		if ((size_t)r < room)
			break;
	}
	if (b.len > max) {
		err = dd_error_set(-E2BIG, "'%s' is larger than %zu bytes",
				   path, max);
		goto cleanup;
	}
	/* The NUL is outside the counted bytes but inside the allocation. */
	if (b.len == b.alloc) {
		b.cap = SIZE_MAX;
		err = dd_buf_reserve(&b, 1);
		if (err < 0)
			goto cleanup;
	}
	b.data[b.len] = '\0';
	*len = b.len;
	*out = dd_buf_detach(&b, NULL);

cleanup:
	close(fd);
	dd_buf_release(&b);
	return err;
}

int dd_mkdir_p(const char *path, mode_t mode)
{
	struct stat st;
	char *p, *q;
	int err = 0;

	if (!*path)
		return dd_error_set(-EINVAL, "empty directory name");
	p = strdup(path);
	if (!p)
		return dd_error_set(-ENOMEM, "out of memory");
	for (q = p + 1; ; q++) {
		char saved = *q;

		if (saved != '/' && saved != '\0')
			continue;
		*q = '\0';
		if (q[-1] != '/' && mkdir(p, mode) < 0 && errno != EEXIST) {
			err = dd_error_set(-errno, "cannot create directory "
					   "'%s': %s", p, strerror(errno));
			goto cleanup;
		}
		*q = saved;
		if (saved == '\0')
			break;
	}
	if (stat(path, &st) < 0) {
		err = dd_error_set(-errno, "cannot stat '%s': %s", path,
				   strerror(errno));
		goto cleanup;
	}
	if (!S_ISDIR(st.st_mode))
		err = dd_error_set(-ENOTDIR, "'%s' is not a directory", path);

cleanup:
	free(p);
	return err;
}

/* ---- clocks ---- */

int64_t dd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

double dd_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void dd_format_time(char out[32], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((int64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "invalid-time");
}

/* ---- randomness ---- */

int dd_random(void *out, size_t n)
{
	uint8_t *p = out;

	while (n > 0) {
		int step = n > INT32_MAX ? INT32_MAX : (int)n;

		if (RAND_bytes(p, step) != 1)
			return dd_error_set(-EIO, "the random generator failed");
		p += step;
		n -= (size_t)step;
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0. */
static size_t dd_utf8_len(const unsigned char *s, size_t n)
{
	size_t need, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need;
}

/*
 * Whether the UTF-8 sequence of k bytes at s is a character a terminal
 * acts on or that reorders what is shown: a C1 control (U+0080..U+009F;
 * U+009B is a CSI on many terminals) or a bidirectional override or
 * isolate (U+202A..U+202E, U+2066..U+2069).
 */
static bool dd_quote_invisible(const unsigned char *s, size_t k)
{
	if (k == 2)
		return s[0] == 0xc2 && s[1] <= 0x9f;
	if (k == 3 && s[0] == 0xe2)
		return (s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) ||
		       (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9);
	return false;
}

const char *dd_quote(char *out, size_t outsz, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0;

	while (i < len) {
		char tmp[8];
		size_t k = dd_utf8_len(p + i, len - i), tl;

		if (k > 1 && dd_quote_invisible(p + i, k)) {
			/* Escaped byte by byte, like bytes that are not UTF-8. */
			tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);
			k = 1;
		} else if (k == 1 && (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')) {
			if (p[i] == '\n')
				tl = (size_t)snprintf(tmp, sizeof(tmp), "\\n");
			else if (p[i] == '\t')
				tl = (size_t)snprintf(tmp, sizeof(tmp), "\\t");
			else if (p[i] == '\\')
				tl = (size_t)snprintf(tmp, sizeof(tmp), "\\\\");
			else
				tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);
			k = 1;
		} else if (k == 0) {
			tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);
			k = 1;
		} else {
			memcpy(tmp, p + i, k);
			tl = k;
		}
		/* Room is kept for "..." and the NUL. */
		if (o + tl + 4 > outsz) {
			if (o + 4 <= outsz) {
				memcpy(out + o, "...", 4);
				return out;
			}
			break;
		}
		memcpy(out + o, tmp, tl);
		o += tl;
		i += k;
	}
	if (outsz)
		out[o < outsz ? o : outsz - 1] = '\0';
	return out;
}

int dd_path_join(char *out, size_t outsz, const char *dir, const char *name)
{
	int n = snprintf(out, outsz, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= outsz)
		return dd_error_set(-ENAMETOOLONG, "path too long: '%s/%s'",
				    dir, name);
	return 0;
}

struct dd_ticker {
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* on CLOCK_MONOTONIC */
	pthread_t thread;
	bool stopping;
	unsigned ms;
	void (*fn)(void *);
	void *arg;
};

static void *dd_ticker_main(void *p)
{
	struct dd_ticker *t = p;
	struct timespec until;

	pthread_mutex_lock(&t->lock);
	while (!t->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += t->ms / 1000;
		until.tv_nsec += (long)(t->ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!t->stopping &&
		       pthread_cond_timedwait(&t->wake, &t->lock, &until) !=
		       ETIMEDOUT)
			;
		if (t->stopping)
			break;
		pthread_mutex_unlock(&t->lock);
		t->fn(t->arg);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int dd_ticker_start(struct dd_ticker **out, unsigned ms, void (*fn)(void *),
		    void *arg)
{
	pthread_condattr_t ca;
	struct dd_ticker *t;
	int rc;

	*out = NULL;
	if (!(t = calloc(1, sizeof(*t))))
		return dd_error_set(-ENOMEM, "out of memory");
	t->ms = ms;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&t->thread, NULL, dd_ticker_main, t);
	if (rc != 0) {
		pthread_cond_destroy(&t->wake);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return dd_error_set(-rc, "cannot start a thread: %s",
				    strerror(rc));
	}
	*out = t;
	return 0;
}

void dd_ticker_stop(struct dd_ticker *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
