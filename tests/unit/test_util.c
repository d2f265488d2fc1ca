/* test_util.c - buffer caps, cursor bounds, hex, strict parsing, durable
 * file helpers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "util.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/dd-util-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir))
		abort();
}

static void test_quote(void)
{
	char out[64];
	/* ESC, a C1 CSI (U+009B), an RLO bidi override (U+202E), a byte that
	 * is not UTF-8, then ordinary UTF-8 that passes. */
	const char in[] = "a\x1b[2J\xc2\x9b" "1m\xe2\x80\xae" "x\xff\\\n\xc3\xa9";

	CHECK(strcmp(dd_quote(out, sizeof(out), in, sizeof(in) - 1),
		     "a\\x1b[2J\\xc2\\x9b1m\\xe2\\x80\\xaex\\xff\\\\\\n\xc3\xa9") == 0);
	/* Cut with "..." to fit, never inside an escape. */
	CHECK(strcmp(dd_quote(out, 10, "\x01\x02\x03", 3), "\\x01...") == 0);
	CHECK(strcmp(dd_quote(out, sizeof(out), "", 0), "") == 0);
}

static void test_error(void)
{
	dd_error_clear();
	CHECK(strcmp(dd_error_last(), "unknown error") == 0);
	CHECK_EQ(dd_error_set(-EBADMSG, "bad %s at %d", "thing", 7), -EBADMSG);
	CHECK(strcmp(dd_error_last(), "bad thing at 7") == 0);
	/* Wrapping the current message must not corrupt it. */
	dd_error_set(-EIO, "outer: %s", dd_error_last());
	CHECK(strcmp(dd_error_last(), "outer: bad thing at 7") == 0);
	dd_error_clear();
	CHECK(strcmp(dd_error_last(), "unknown error") == 0);
}

static void test_buf(void)
{
	struct dd_buf b;
	uint8_t *p;
	size_t len = 99;
	int i, fails;

	dd_buf_init(&b, 10);
	CHECK_EQ(dd_buf_append(&b, "0123456789", 10), 0);
	CHECK_EQ(b.len, 10);
	CHECK_EQ(dd_buf_append_u8(&b, 1), -E2BIG);
	CHECK_EQ(b.len, 10);
	CHECK_EQ(dd_buf_reserve(&b, SIZE_MAX), -E2BIG);
	dd_buf_reset(&b);
	CHECK_EQ(b.len, 0);
	CHECK_EQ(dd_buf_append_le32(&b, 0x04030201), 0);
	CHECK_EQ(dd_buf_append_le32(&b, 0), 0);
	CHECK_EQ(dd_buf_append_le64(&b, 1), -E2BIG);
	CHECK_EQ(b.data[0], 1);
	CHECK_EQ(b.data[3], 4);
	dd_buf_release(&b);
	CHECK(b.data == NULL);
	CHECK_EQ(b.cap, 10);

	dd_buf_init(&b, 0);
	for (i = 0, fails = 0; i < 100000; i++)
		fails += dd_buf_append_u8(&b, (uint8_t)i) != 0;
	CHECK_EQ(fails, 0);
	CHECK_EQ(b.len, 100000);
	CHECK_EQ(b.data[99999], (uint8_t)99999);
	CHECK_EQ(dd_buf_append_le64(&b, 0x0807060504030201ull), 0);
	CHECK_EQ(dd_le64(b.data + 100000), 0x0807060504030201ll);
	p = dd_buf_detach(&b, &len);
	CHECK(p != NULL);
	CHECK_EQ(len, 100008);
	CHECK(b.data == NULL && b.len == 0);
	free(p);
	/* An empty buffer still detaches to a pointer that can be freed. */
	p = dd_buf_detach(&b, &len);
	CHECK(p != NULL);
	CHECK_EQ(len, 0);
	free(p);
	dd_buf_release(&b);
}

static void test_cursor(void)
{
	const uint8_t data[12] = { 1, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0 };
	struct dd_cursor c = { data, sizeof(data) };
	const uint8_t *p;
	uint64_t v64;
	uint32_t v32;
	uint8_t v8;

	CHECK_EQ(dd_cursor_get_u8(&c, &v8), 0);
	CHECK_EQ(v8, 1);
	CHECK_EQ(dd_cursor_get_le32(&c, &v32), 0);
	CHECK_EQ(v32, 2);
	CHECK_EQ(dd_cursor_get_le64(&c, &v64), -EBADMSG);
	CHECK_EQ(c.left, 7);        /* a failed get does not advance */
	CHECK_EQ(dd_cursor_take(&c, &p, 7), 0);
	CHECK_EQ(p[0], 3);
	CHECK_EQ(c.left, 0);
	CHECK_EQ(dd_cursor_get_u8(&c, &v8), -EBADMSG);
	CHECK_EQ(dd_cursor_get(&c, &v8, 0), 0);
}

static void test_hex(void)
{
	const uint8_t in[4] = { 0x00, 0xab, 0x7f, 0xff };
	uint8_t out[4];
	char hex[9];

	dd_hex_encode(hex, in, 4);
	CHECK(strcmp(hex, "00ab7fff") == 0);
	CHECK_EQ(dd_hex_decode(out, 4, "00AB7ffF", 8), 0);
	CHECK(memcmp(out, in, 4) == 0);
	CHECK_EQ(dd_hex_decode(out, 4, "00ab7ff", 7), -EINVAL);
	CHECK_EQ(dd_hex_decode(out, 4, "00ab7fff0", 9), -EINVAL);
	CHECK_EQ(dd_hex_decode(out, 4, "00ag7fff", 8), -EINVAL);
	CHECK_EQ(dd_hex_decode(out, 4, "00 b7fff", 8), -EINVAL);
	/* lowercase only, n digits, a NUL before them fails */
	CHECK(dd_hex_lower(hex, 8));
	CHECK(dd_hex_lower("0123456789abcdef", 16));
	CHECK(dd_hex_lower("00ab.json", 4));
	CHECK(!dd_hex_lower("00AB7fff", 8));
	CHECK(!dd_hex_lower("00ab7fg0", 8));
	CHECK(!dd_hex_lower("00ab", 8));
	CHECK(!dd_hex_lower("/0ab", 4));
	CHECK(!dd_hex_lower(":0ab", 4));
	CHECK(!dd_hex_lower("`0ab", 4));
	CHECK(!dd_hex_lower("g0ab", 4));
	CHECK(dd_hex_lower("", 0));
}

/* The pair libarchive prints as "sec.nsec" for a time as stat gives it. */
static void test_pax_time(void)
{
	int64_t s;
	long ns;

	dd_pax_time(1796662319, 555700387, &s, &ns);    /* after 1970: as is */
	CHECK_EQ(s, 1796662319);
	CHECK_EQ(ns, 555700387);
	dd_pax_time(-5, 0, &s, &ns);                     /* whole: as is */
	CHECK_EQ(s, -5);
	CHECK_EQ(ns, 0);
	dd_pax_time(-2, 500000000, &s, &ns);             /* -1.5: "-1.5" */
	CHECK_EQ(s, -1);
	CHECK_EQ(ns, 500000000);
	dd_pax_time(-2147472000, 750000000, &s, &ns);    /* "-2147471999.25" */
	CHECK_EQ(s, -2147471999);
	CHECK_EQ(ns, 250000000);
	dd_pax_time(-14182940, 123456789, &s, &ns);      /* "-14182939.876543211" */
	CHECK_EQ(s, -14182939);
	CHECK_EQ(ns, 876543211);
	dd_pax_time(-1, 250000000, &s, &ns);             /* -0.75: -1 */
	CHECK_EQ(s, -1);
	CHECK_EQ(ns, 0);
}

static void test_parse(void)
{
	uint64_t v = 0;

	CHECK_EQ(dd_parse_u64("0", &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(dd_parse_u64("1048576", &v), 0);
	CHECK_EQ(v, 1048576);
	CHECK_EQ(dd_parse_u64("18446744073709551615", &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_EQ(dd_parse_u64("18446744073709551616", &v), -ERANGE);
	CHECK_EQ(dd_parse_u64("99999999999999999999", &v), -ERANGE);
	CHECK_EQ(dd_parse_u64("", &v), -EINVAL);
	CHECK_EQ(dd_parse_u64(" 1", &v), -EINVAL);
	CHECK_EQ(dd_parse_u64("1 ", &v), -EINVAL);
	CHECK_EQ(dd_parse_u64("-1", &v), -EINVAL);
	CHECK_EQ(dd_parse_u64("+1", &v), -EINVAL);
	CHECK_EQ(dd_parse_u64("12k", &v), -EINVAL);
	CHECK_EQ(dd_parse_u64("0x10", &v), -EINVAL);
	/* byte counts with a suffix (mount --cache-size, server sizes) */
	CHECK_EQ(dd_parse_bytes("64M", &v), 0);
	CHECK_EQ(v, 64ull << 20);
	CHECK_EQ(dd_parse_bytes("3K", &v), 0);
	CHECK_EQ(v, 3072);
	CHECK_EQ(dd_parse_bytes("2T", &v), 0);
	CHECK_EQ(v, 2ull << 40);
	CHECK_EQ(dd_parse_bytes("500000", &v), 0);
	CHECK_EQ(v, 500000);
	CHECK_EQ(dd_parse_bytes("12Q", &v), -EINVAL);
	CHECK_EQ(dd_parse_bytes("M", &v), -EINVAL);
	CHECK_EQ(dd_parse_bytes("", &v), -EINVAL);
	CHECK_EQ(dd_parse_bytes("9000000000G", &v), -EINVAL);
}

/* Entries of `dir` whose names start with `prefix`. */
static int dir_count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) != NULL)
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

struct atomic_writer {
	const char *path;
	char fill;
	size_t len;
	int failed;
};

static void *atomic_writer_main(void *arg)
{
	struct atomic_writer *w = arg;
	char *buf = malloc(w->len);

	memset(buf, w->fill, w->len);
	for (int i = 0; i < 150; i++)
		w->failed += dd_write_file_atomic(w->path, buf, w->len,
						  0600) != 0;
	free(buf);
	return NULL;
}

/* Whether `data` is, whole, what one writer writes. */
static bool atomic_whole(const uint8_t *data, size_t len)
{
	bool ok = (len == 100000 && data[0] == 'a') ||
		  (len == 50000 && data[0] == 'b');

	for (size_t i = 1; ok && i < len; i++)
		ok = data[i] == data[0];
	return ok;
}

/* Two threads writing one path at once: every read sees one writer's
 * whole file, and no temporary is left. */
static void test_atomic_concurrent(void)
{
	struct atomic_writer w[2];
	pthread_t th[2];
	char path[512];
	int bad = 0, reads = 0;

	snprintf(path, sizeof(path), "%s/both", tmpdir);
	CHECK_EQ(dd_write_file_atomic(path, "b", 1, 0600), 0);
	w[0] = (struct atomic_writer){ path, 'a', 100000, 0 };
	w[1] = (struct atomic_writer){ path, 'b', 50000, 0 };
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, atomic_writer_main,
					&w[i]), 0);
	while (reads < 2000) {     /* reads while the writers run */
		uint8_t *data = NULL;
		size_t len = 0;

		/* the first content is one byte: the writers have not
		 * replaced it yet */
		if (dd_read_file(path, 1 << 20, &data, &len) == 0 &&
		    len != 1 && !atomic_whole(data, len))
			bad++;
		free(data);
		reads++;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(w[0].failed + w[1].failed, 0);
	CHECK_EQ(bad, 0);
	{
		uint8_t *data = NULL;
		size_t len = 0;

		CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
		CHECK(data && atomic_whole(data, len));
		free(data);
	}
	CHECK_EQ(dir_count_prefix(tmpdir, "both.tmp"), 0);
}

static void test_files(void)
{
	char path[512], sub[512];
	uint8_t *data = NULL;
	size_t len = 0;
	struct stat st;
	uint8_t buf[16];
	int fd;

	snprintf(path, sizeof(path), "%s/file", tmpdir);
	CHECK_EQ(dd_write_file_atomic(path, "first", 5, 0600), 0);
	CHECK_EQ(dd_write_file_atomic(path, "second", 6, 0600), 0);
	CHECK_EQ(dd_read_file(path, 100, &data, &len), 0);
	CHECK_EQ(len, 6);
	CHECK(data && memcmp(data, "second", 7) == 0);   /* NUL included */
	free(data);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(dir_count_prefix(tmpdir, "file.tmp"), 0);

	CHECK_EQ(dd_read_file(path, 5, &data, &len), -E2BIG);
	CHECK(data == NULL);
	CHECK_EQ(dd_read_file(path, 6, &data, &len), 0);
	free(data);
	snprintf(sub, sizeof(sub), "%s/missing", tmpdir);
	CHECK_EQ(dd_read_file(sub, 6, &data, &len), -ENOENT);
	/* Files without a useful size (devices, /proc) are read to the end. */
	CHECK_EQ(dd_read_file("/dev/null", 10, &data, &len), 0);
	CHECK_EQ(len, 0);
	free(data);
	CHECK_EQ(dd_read_file("/proc/self/stat", 1 << 16, &data, &len), 0);
	CHECK(len > 10);
	free(data);
	CHECK_EQ(dd_read_file("/proc/self/stat", 4, &data, &len), -E2BIG);

	/* Test hooks: a number within bounds, else the default. */
	setenv("DD_UNIT_HOOK", "42", 1);
	CHECK_EQ(dd_test_hook_u64("DD_UNIT_HOOK", 1, 100, 7), 42);
	CHECK_EQ(dd_test_hook_u64("DD_UNIT_HOOK", 43, 100, 7), 7);
	CHECK_EQ(dd_test_hook_u64("DD_UNIT_HOOK", 1, 41, 7), 7);
	setenv("DD_UNIT_HOOK", "4x", 1);
	CHECK_EQ(dd_test_hook_u64("DD_UNIT_HOOK", 1, 100, 7), 7);
	setenv("DD_UNIT_HOOK", "", 1);
	CHECK_EQ(dd_test_hook_u64("DD_UNIT_HOOK", 0, 100, 7), 7);
	unsetenv("DD_UNIT_HOOK");
	CHECK_EQ(dd_test_hook_u64("DD_UNIT_HOOK", 0, 100, 7), 7);

	/* A new file is never written over an existing one. */
	snprintf(sub, sizeof(sub), "%s/new", tmpdir);
	CHECK_EQ(dd_write_file_new(sub, "one", 3, 0600), 0);
	CHECK_EQ(dd_write_file_new(sub, "two", 3, 0600), -EEXIST);
	CHECK(strstr(dd_error_last(), "exists; not overwritten") != NULL);
	CHECK_EQ(dd_read_file(sub, 100, &data, &len), 0);
	CHECK(data && len == 3 && memcmp(data, "one", 3) == 0);
	free(data);
	CHECK_EQ(stat(sub, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(st.st_nlink, 1);           /* the temporary is gone */
	CHECK_EQ(dir_count_prefix(tmpdir, "new.tmp"), 0);

	/* An atomic write into a missing directory fails cleanly. */
	snprintf(sub, sizeof(sub), "%s/nodir/file", tmpdir);
	CHECK_EQ(dd_write_file_atomic(sub, "x", 1, 0644), -ENOENT);

	snprintf(sub, sizeof(sub), "%s/a/b//c/", tmpdir);
	CHECK_EQ(dd_mkdir_p(sub, 0755), 0);
	CHECK_EQ(dd_mkdir_p(sub, 0755), 0);
	snprintf(sub, sizeof(sub), "%s/a/b/c", tmpdir);
	CHECK_EQ(stat(sub, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(dd_fsync_dir(sub), 0);
	snprintf(sub, sizeof(sub), "%s/file/x", tmpdir);
	CHECK(dd_mkdir_p(sub, 0755) < 0);
	CHECK(dd_mkdir_p(path, 0755) < 0);
	CHECK_EQ(dd_mkdir_p("", 0755), -EINVAL);

	snprintf(sub, sizeof(sub), "%s/rw", tmpdir);
	fd = open(sub, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(dd_write_all(fd, "abcdef", 6), 0);
	CHECK_EQ(dd_pwrite_all(fd, "XY", 2, 1), 0);
	CHECK_EQ(dd_pread_all(fd, buf, 6, 0), 0);
	CHECK(memcmp(buf, "aXYdef", 6) == 0);
	CHECK_EQ(dd_pread_all(fd, buf, 6, 1), -EBADMSG);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	CHECK_EQ(dd_read_full(fd, buf, sizeof(buf)), 6);
	CHECK_EQ(dd_read_full(fd, buf, sizeof(buf)), 0);
	close(fd);
}

static void test_time_random(void)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };
	char t[32];
	double m0, m1;

	dd_format_time(t, 0);
	CHECK(strcmp(t, "1970-01-01T00:00:00Z") == 0);
	dd_format_time(t, 1795279200);
	CHECK(strcmp(t, "2026-11-21T16:40:00Z") == 0);
	CHECK(dd_now() > 1600000000);
	m0 = dd_monotonic();
	m1 = dd_monotonic();
	CHECK(m1 >= m0);
	CHECK_EQ(dd_random(a, sizeof(a)), 0);
	CHECK_EQ(dd_random(b, sizeof(b)), 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK_EQ(dd_random(a, 0), 0);
}

static void cleanup_tmpdir(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

struct tick_probe {
	int calls;          /* atomic */
	int in_call;        /* atomic: inside the callback now */
	unsigned slow_ms;   /* each call sleeps this long */
};

static void tick_fn(void *arg)
{
	struct tick_probe *p = arg;

	__atomic_store_n(&p->in_call, 1, __ATOMIC_SEQ_CST);
	if (p->slow_ms)
		usleep(p->slow_ms * 1000);
	__atomic_add_fetch(&p->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&p->in_call, 0, __ATOMIC_SEQ_CST);
}

/* Waits (at most 10 s) until the probe saw `n` calls. */
static bool tick_wait(struct tick_probe *p, int n)
{
	double end = dd_monotonic() + 10;

	while (__atomic_load_n(&p->calls, __ATOMIC_SEQ_CST) < n &&
	       dd_monotonic() < end)
		usleep(1000);
	return __atomic_load_n(&p->calls, __ATOMIC_SEQ_CST) >= n;
}

static void test_ticker(void)
{
	struct tick_probe p = { 0 };
	struct dd_ticker *t;
	double t0 = dd_monotonic();
	int seen;

	dd_ticker_stop(NULL);
	CHECK_EQ(dd_ticker_start(&t, 20, tick_fn, &p), 0);
	CHECK(tick_wait(&p, 3));
	/* never sooner than its period: three calls take 60 ms at least */
	CHECK(dd_monotonic() - t0 >= 0.059);
	dd_ticker_stop(t);
	seen = __atomic_load_n(&p.calls, __ATOMIC_SEQ_CST);
	usleep(100 * 1000);
	CHECK_EQ(__atomic_load_n(&p.calls, __ATOMIC_SEQ_CST), seen);

	/* a stop during a call waits for it to return */
	memset(&p, 0, sizeof(p));
	p.slow_ms = 200;
	CHECK_EQ(dd_ticker_start(&t, 1, tick_fn, &p), 0);
	while (!__atomic_load_n(&p.in_call, __ATOMIC_SEQ_CST) &&
	       dd_monotonic() < t0 + 20)
		usleep(1000);
	CHECK_EQ(__atomic_load_n(&p.in_call, __ATOMIC_SEQ_CST), 1);
	dd_ticker_stop(t);
	CHECK_EQ(__atomic_load_n(&p.in_call, __ATOMIC_SEQ_CST), 0);
	CHECK(__atomic_load_n(&p.calls, __ATOMIC_SEQ_CST) >= 1);

	/* a long period: a stop does not wait for the next call */
	memset(&p, 0, sizeof(p));
	t0 = dd_monotonic();
	CHECK_EQ(dd_ticker_start(&t, 60000, tick_fn, &p), 0);
	dd_ticker_stop(t);
	CHECK(dd_monotonic() - t0 < 30);
	CHECK_EQ(p.calls, 0);
}

int main(void)
{
	make_tmpdir();
	UNIT_RUN(test_error);
	UNIT_RUN(test_quote);
	UNIT_RUN(test_buf);
	UNIT_RUN(test_cursor);
	UNIT_RUN(test_hex);
	UNIT_RUN(test_pax_time);
	UNIT_RUN(test_parse);
	UNIT_RUN(test_files);
	UNIT_RUN(test_atomic_concurrent);
	UNIT_RUN(test_time_random);
	UNIT_RUN(test_ticker);
	cleanup_tmpdir();
	UNIT_DONE();
}
