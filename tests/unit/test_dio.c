/*
 * test_dio.c - a restored file's data written past the page cache
 * (agent/dio.c): random files of data and zero runs, given in random
 * pieces with gaps (holes a catalog names), come out with the same bytes
 * and the same holes as through the page cache, whatever the staging
 * buffer's size; whole blocks really go direct where the file system
 * offers it (statx), and a file system that does not gets the cached
 * path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dio.h"
#include "unit.h"
#include "util.h"

static char dir[4096];

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Data with zero runs of every kind: short, block-sized and long, at
 * aligned and unaligned places. */
static void fill(uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t run = 1 + next() % (next() % 4 == 0 ? 40000 : 9000);

		if (run > n - i)
			run = n - i;
		if (next() % 3 == 0)
			memset(p + i, 0, run);
		else
			for (size_t k = 0; k < run; k++)
				p[i + k] = (uint8_t)(next() | 1);
		i += run;
	}
}

/* A file's pieces as the restore gives them: offsets in order, some
 * ranges given by no piece (holes a catalog names). */
struct piece {
	uint64_t off;
	size_t len;
	bool given;
};

static size_t cut(struct piece *v, size_t max, size_t size, bool gaps,
		  uint8_t *hole)
{
	uint64_t off = 0;
	size_t n = 0;

	memset(hole, 0, size);
	while (off < size && n < max) {
		size_t len = 1 + next() % (next() % 2 ? 300000 : 9000);

		if (len > size - off || n + 1 == max)
			len = size - off;
		v[n].off = off;
		v[n].len = len;
		v[n].given = !gaps || next() % 5 != 0;
		if (!v[n].given)
			memset(hole + off, 1, len);
		off += len;
		n++;
	}
	return n;
}

/* One file written as the pool writes it: its pieces in order,
 * dio_finish, then the size set if it ends in a hole. */
static int write_file(const char *path, const uint8_t *data, size_t size,
		      const struct piece *v, size_t n, struct dio_writer *w,
		      bool direct)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;

	if (fd < 0)
		return -errno;
	dio_begin(w, fd, 4096, direct);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (v[i].given)
			rc = dio_write(w, data + v[i].off, v[i].len, v[i].off);
	if (rc == 0)
		rc = dio_finish(w);
	if (rc == 0 && w->end < size && ftruncate(fd, (off_t)size) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* The data/hole map of a file: SEEK_DATA/SEEK_HOLE boundaries. */
static size_t map(const char *path, off_t *v, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size, pos = 0;
	size_t n = 0;

	if (fd < 0)
		return 0;
	size = lseek(fd, 0, SEEK_END);
	while (pos < size && n + 2 <= max) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		v[n++] = d;
		v[n++] = h;
		pos = h;
	}
	close(fd);
	return n;
}

static bool same_bytes(const char *path, const uint8_t *want,
		       const uint8_t *hole, size_t size)
{
	uint8_t *got = malloc(size + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = fd < 0 || !got ? -1 : pread(fd, got, size + 1, 0);
	bool ok = r == (ssize_t)size;

	for (size_t i = 0; ok && i < size; i++)
		ok = got[i] == (hole[i] ? 0 : want[i]);
	if (fd >= 0)
		close(fd);
	free(got);
	return ok;
}

static void test_random_files(void)
{
	struct dio_writer small, big, cached;
	char a[4200], b[4200];
	size_t max = 5u << 20, files = 60;
	uint8_t *data = malloc(max), *hole = malloc(max);
	struct piece *v = malloc(4096 * sizeof(*v));
	off_t ma[4096], mb[4096];

	CHECK(data && hole && v);
	if (!data || !hole || !v)
		return;
	CHECK_EQ(dio_writer_init(&small, DIO_BUF_ALIGN), 0);
	CHECK_EQ(dio_writer_init(&big, 16 * DIO_BUF_ALIGN), 0);
	CHECK_EQ(dio_writer_init(&cached, 0), 0);
	rng = 0x9e3779b97f4a7c15ull;
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	for (size_t f = 0; f < files; f++) {
		size_t size = f == 0 ? 0 : f == 1 ? 1 : next() % max;
		struct dio_writer *w = f % 2 ? &small : &big;
		size_t np, na, nb;

		fill(data, size);
		/* a third of the files have ranges no piece covers */
		np = cut(v, 4096, size, f % 3 == 0, hole);
		CHECK_EQ(write_file(a, data, size, v, np, w, true), 0);
		CHECK_EQ(write_file(b, data, size, v, np, &cached, false), 0);
		CHECK(same_bytes(a, data, hole, size));
		CHECK(same_bytes(b, data, hole, size));
		na = map(a, ma, 4096);
		nb = map(b, mb, 4096);
		CHECK_EQ(na, nb);
		CHECK(na == nb && memcmp(ma, mb, na * sizeof(*ma)) == 0);
	}
	CHECK_EQ(cached.direct_bytes, 0);
	{
		int fd = open(a, O_RDONLY | O_CLOEXEC);
		bool dio = fd >= 0 && dio_alignment(fd, 4096, DIO_BUF_ALIGN);

		if (fd >= 0)
			close(fd);
		if (dio) {
			/* whole blocks really went direct */
			CHECK(small.direct_bytes > 0);
			CHECK(big.direct_bytes > 0);
		} else {
			printf("note: %s offers no direct I/O: the cached path "
			       "only\n", dir);
			CHECK_EQ(small.direct_bytes + big.direct_bytes, 0);
		}
	}
	unlink(a);
	unlink(b);
	dio_writer_release(&small);
	dio_writer_release(&big);
	dio_writer_release(&cached);
	free(data);
	free(hole);
	free(v);
}

/* A hole block smaller than the direct alignment (a page here): a direct
 * block would write zero pieces the cached path leaves as holes, so the
 * file goes through the cache, with the same holes. */
static void test_small_hole_block(void)
{
	struct dio_writer w, cached;
	char a[4200], b[4200];
	size_t size = 3u << 20;
	uint8_t *data = malloc(size), *hole = malloc(size);
	struct piece *v = malloc(4096 * sizeof(*v));
	off_t ma[4096], mb[4096];
	size_t np, na, nb;
	int fd;

	CHECK(data && hole && v);
	if (!data || !hole || !v)
		return;
	snprintf(a, sizeof(a), "%s/sa", dir);
	snprintf(b, sizeof(b), "%s/sb", dir);
	CHECK_EQ(dio_writer_init(&w, DIO_BUF_ALIGN), 0);
	CHECK_EQ(dio_writer_init(&cached, 0), 0);
	/* data and zeros alternating every 2 KiB */
	for (size_t i = 0; i < size; i++)
		data[i] = (i / 2048) % 2 ? 0 : (uint8_t)(next() | 1);
	np = cut(v, 4096, size, false, hole);
	for (int k = 0; k < 2; k++) {
		const char *path = k ? b : a;
		struct dio_writer *x = k ? &cached : &w;
		int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		CHECK(f >= 0);
		dio_begin(x, f, 2048, k == 0);
		CHECK_EQ(x->align, 0);
		for (size_t i = 0; i < np; i++)
			CHECK_EQ(dio_write(x, data + v[i].off, v[i].len, v[i].off), 0);
		CHECK_EQ(dio_finish(x), 0);
		CHECK(x->end == size || ftruncate(f, (off_t)size) == 0);
		close(f);
	}
	CHECK_EQ(w.direct_bytes, 0);
	CHECK(same_bytes(a, data, hole, size));
	na = map(a, ma, 4096);
	nb = map(b, mb, 4096);
	CHECK_EQ(na, nb);
	CHECK(na == nb && memcmp(ma, mb, na * sizeof(*ma)) == 0);
	fd = open(a, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(dio_alignment(fd, 2048, DIO_BUF_ALIGN), 0);
	close(fd);
	unlink(a);
	unlink(b);
	dio_writer_release(&w);
	dio_writer_release(&cached);
	free(data);
	free(hole);
	free(v);
}

/* A writer without a buffer, or told not to, never sets O_DIRECT. */
static void test_cached_only(void)
{
	struct dio_writer w;
	char path[4200];
	uint8_t buf[3 * 4096];
	int fd, fl;

	snprintf(path, sizeof(path), "%s/c", dir);
	memset(buf, 'x', sizeof(buf));
	CHECK_EQ(dio_writer_init(&w, DIO_BUF_ALIGN), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	dio_begin(&w, fd, 4096, false);
	CHECK_EQ(dio_write(&w, buf, sizeof(buf), 0), 0);
	fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0 && !(fl & O_DIRECT));
	CHECK_EQ(dio_finish(&w), 0);
	CHECK_EQ(w.direct_bytes, 0);
	CHECK_EQ(w.end, sizeof(buf));
	/* and after a direct file, the descriptor is left as it was given */
	dio_begin(&w, fd, 4096, true);
	CHECK_EQ(dio_write(&w, buf, sizeof(buf), 0), 0);
	CHECK_EQ(dio_finish(&w), 0);
	fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0 && !(fl & O_DIRECT));
	close(fd);
	unlink(path);
	dio_writer_release(&w);
}

/* A hole block of 0 (a pack's appends, server/store/backend_dir.c):
 * every byte written, zero runs too, so the file holds no hole and its
 * size is where the last append ended; appends start anywhere. */
static void test_dense(void)
{
	struct dio_writer w;
	char path[4200];
	size_t max = 3u << 20, total = 0;
	uint8_t *data = malloc(16u << 20), *got = malloc(16u << 20);
	uint64_t direct = 0;
	int fd;

	CHECK(data && got);
	if (!data || !got) {
		free(data);
		free(got);
		return;
	}
	rng = 0x51ed2701u;
	snprintf(path, sizeof(path), "%s/d", dir);
	CHECK_EQ(dio_writer_init(&w, 2 * DIO_BUF_ALIGN), 0);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	for (int i = 0; i < 12 && fd >= 0; i++) {
		size_t n = i == 0 ? 5 : 1 + next() % max;

		if (total + n > (16u << 20))
			break;
		fill(data + total, n);
		if (i % 4 == 3)         /* all zeros: still written */
			memset(data + total, 0, n);
		dio_begin(&w, fd, 0, true);
		CHECK_EQ(dio_write(&w, data + total, n, total), 0);
		CHECK_EQ(dio_finish(&w), 0);
		total += n;
		CHECK_EQ(w.end, total);
	}
	direct = w.direct_bytes;
	CHECK_EQ((uint64_t)lseek(fd, 0, SEEK_END), total);
	CHECK_EQ((uint64_t)lseek(fd, 0, SEEK_HOLE), total);
	CHECK_EQ(dd_pread_all(fd, got, total, 0), 0);
	CHECK(memcmp(got, data, total) == 0);
	if (dio_alignment(fd, 0, w.cap))
		CHECK(direct > total / 2);
	else
		printf("# no direct I/O in %s: the dense writes went cached\n",
		       dir);
	close(fd);
	unlink(path);
	dio_writer_release(&w);
	free(data);
	free(got);
}

/* A caller whose bytes lie in memory as in the file (a pack writer's
 * records, pack.h) has its whole blocks written straight from its memory:
 * the staging buffer holds at most a tail, the rest of it untouched, and
 * the bytes are the same. */
static void test_congruent(void)
{
	struct dio_writer w;
	char path[4200];
	size_t total = 0, sizes[] = { (1u << 20) + 100, (2u << 20) + 37,
				      5000, 3 * 4096 };
	uint8_t *data = NULL, *got = malloc(8u << 20);
	uint64_t direct = 0;
	int fd;

	CHECK(got && posix_memalign((void **)&data, DIO_BUF_ALIGN,
				    8u << 20) == 0);
	if (!got || !data) {
		free(got);
		return;
	}
	rng = 0xc0ffee11u;
	fill(data, 8u << 20);
	snprintf(path, sizeof(path), "%s/c", dir);
	CHECK_EQ(dio_writer_init(&w, 2 * DIO_BUF_ALIGN), 0);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && fd >= 0;
	     i++) {
		size_t n = sizes[i];

		memset(w.buf, 0xa5, w.cap);
		dio_begin(&w, fd, 0, true);
		CHECK_EQ(dio_write(&w, data + total, n, total), 0);
		CHECK_EQ(dio_finish(&w), 0);
		if (w.align) {
			size_t k = 4096;

			while (k < w.cap && w.buf[k] == 0xa5)
				k++;
			CHECK_EQ(k, w.cap);
		}
		total += n;
		CHECK_EQ(w.end, total);
	}
	direct = w.direct_bytes;
	CHECK_EQ(dd_pread_all(fd, got, total, 0), 0);
	CHECK(memcmp(got, data, total) == 0);
	if (dio_alignment(fd, 0, w.cap))
		CHECK(direct >= (3u << 20) - 4096);
	else
		printf("# no direct I/O in %s: the writes went cached\n", dir);
	close(fd);
	unlink(path);
	dio_writer_release(&w);
	free(data);
	free(got);
}

int main(int argc, char **argv)
{
	const char *env = getenv("DD_TEST_DISK_DIR");
	char self[3000], *slash;

	/* Beside the test binary (the build, not a tmpfs: the direct path
	 * wants a disk), unless told otherwise. */
	snprintf(self, sizeof(self), "%s", argc > 0 ? argv[0] : ".");
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(self, sizeof(self), ".");
	snprintf(dir, sizeof(dir), "%s/dio.XXXXXX", env && *env ? env : self);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	UNIT_RUN(test_random_files);
	UNIT_RUN(test_small_hole_block);
	UNIT_RUN(test_cached_only);
	UNIT_RUN(test_dense);
	UNIT_RUN(test_congruent);
	rmdir(dir);
	UNIT_DONE();
}
