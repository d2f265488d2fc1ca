/*
 * test_holes.c - agent/holes.c on real sparse files in a temporary
 * directory: runs of data and the holes between them, short holes read as
 * data, a hole at the start, at the end, a file that is all hole. Skipped
 * (with a message) where the file system keeps no holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "holes.h"
#include "unit.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)

static char dir[256];
static int nfile;

/* A new file of `size` bytes with 1 KiB of data at each of `at[0..n)`. */
static int mkfile(uint64_t size, const uint64_t *at, int n)
{
	char path[300], data[1024];
	int fd;

	memset(data, 'x', sizeof(data));
	snprintf(path, sizeof(path), "%s/f%d", dir, nfile++);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, (off_t)size), 0);
	for (int i = 0; i < n; i++)
		CHECK_EQ(pwrite(fd, data, sizeof(data), (off_t)at[i]),
			 (ssize_t)sizeof(data));
	CHECK_EQ(fsync(fd), 0);
	return fd;
}

/* Whether the file system here keeps a hole and reports it. */
static bool fs_has_holes(void)
{
	uint64_t at = 0, s, e;
	int fd = mkfile(4 * MiB, &at, 1);
	bool yes = holes_next_run(fd, 0, &s, &e) == 1 && e < 4 * MiB;

	close(fd);
	return yes;
}

static void test_runs(void)
{
	uint64_t s = 0, e = 0;
	struct stat st;
	int fd;

	/* one byte... one KiB at the start of 64 MiB */
	{
		uint64_t at[] = { 0 };

		fd = mkfile(64 * MiB, at, 1);
		CHECK_EQ(fstat(fd, &st), 0);
		CHECK(holes_maybe(&st));
		CHECK_EQ(holes_next_run(fd, 0, &s, &e), 1);
		CHECK_EQ(s, 0);
		CHECK(e >= KiB && e <= 64 * KiB);
		CHECK_EQ(holes_next_run(fd, e, &s, &e), 0);   /* rest: hole */
		close(fd);
	}
	/* a hole at the start, data at 8 MiB */
	{
		uint64_t at[] = { 8 * MiB };

		fd = mkfile(8 * MiB + KiB, at, 1);
		CHECK_EQ(holes_next_run(fd, 0, &s, &e), 1);
		CHECK(s <= 8 * MiB && s > 8 * MiB - 64 * KiB);
		CHECK_EQ(e, 8 * MiB + KiB);
		close(fd);
	}
	/* data, a short hole (read as data), data, a long hole, data */
	{
		uint64_t at[] = { 0, 32 * KiB, 4 * MiB };

		fd = mkfile(4 * MiB + KiB, at, 3);
		CHECK_EQ(holes_next_run(fd, 0, &s, &e), 1);
		CHECK_EQ(s, 0);
		CHECK(e >= 33 * KiB && e <= 96 * KiB);
		CHECK_EQ(holes_next_run(fd, e, &s, &e), 1);
		CHECK(s > 3 * MiB && s <= 4 * MiB);
		CHECK_EQ(e, 4 * MiB + KiB);
		CHECK_EQ(holes_next_run(fd, e, &s, &e), 0);
		close(fd);
	}
	/* a short hole at the end is part of the last run */
	{
		uint64_t at[] = { 0 };

		fd = mkfile(40 * KiB, at, 1);
		CHECK_EQ(fstat(fd, &st), 0);
		CHECK(!holes_maybe(&st));                      /* too small */
		CHECK_EQ(holes_next_run(fd, 0, &s, &e), 1);
		CHECK_EQ(s, 0);
		CHECK_EQ(e, 40 * KiB);
		close(fd);
	}
	/* all hole */
	{
		fd = mkfile(32 * MiB, NULL, 0);
		CHECK_EQ(fstat(fd, &st), 0);
		CHECK(holes_maybe(&st));
		CHECK_EQ(holes_next_run(fd, 0, &s, &e), 0);
		close(fd);
	}
	/* no hole at all */
	{
		char buf[64 * 1024];
		char path[300];

		memset(buf, 'y', sizeof(buf));
		snprintf(path, sizeof(path), "%s/dense", dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		for (int i = 0; i < 4; i++)
			CHECK_EQ(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
		CHECK_EQ(fsync(fd), 0);
		CHECK_EQ(fstat(fd, &st), 0);
		CHECK(!holes_maybe(&st));
		CHECK_EQ(holes_next_run(fd, 0, &s, &e), 1);
		CHECK_EQ(s, 0);
		CHECK_EQ(e, 4 * sizeof(buf));
		close(fd);
	}
}

/* What is not a file system question: a bad descriptor is an error. */
static void test_errors(void)
{
	uint64_t s, e;

	CHECK_EQ(holes_next_run(-1, 0, &s, &e), -EBADF);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[320];

	snprintf(dir, sizeof(dir), "%s/dedup-holes.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	UNIT_RUN(test_errors);
	if (fs_has_holes())
		UNIT_RUN(test_runs);
	else
		printf("test_holes: the file system of %s keeps no holes; "
		       "hole tests skipped\n", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	UNIT_DONE();
}
