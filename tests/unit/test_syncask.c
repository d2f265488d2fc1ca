/*
 * test_syncask.c - requests for a sync run and their answers
 * (server/repo/syncask.h): one file a request, found by the serving
 * process's scan, answered in place within the room it was created with.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "../../server/repo/syncask.c"

static char repo[] = "/tmp/test_syncask.XXXXXX";

static void path_of(char *out, size_t outsz, const char *name)
{
	snprintf(out, outsz, "%s/%s/%s", repo, SYNCASK_DIR, name);
}

static json_t *report(const char *result, int exit_code)
{
	return json_pack("{s:s, s:i, s:I, s:n}", "result", result,
			 "exit_code", exit_code, "snapshots_copied",
			 (json_int_t)3, "error");
}

static void age(const char *name, int64_t seconds)
{
	char path[4400];
	struct timespec t[2];

	path_of(path, sizeof(path), name);
	t[0].tv_sec = t[1].tv_sec = (time_t)(dd_now() - seconds);
	t[0].tv_nsec = t[1].tv_nsec = 0;
	CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
}

static bool scan_has(const struct syncask_id *id)
{
	struct syncask_id ids[SYNCASK_MAX];
	size_t n = 0, i;

	CHECK_EQ(syncask_scan(repo, ids, SYNCASK_MAX, &n), 0);
	for (i = 0; i < n; i++)
		if (strcmp(ids[i].s, id->s) == 0)
			return true;
	return false;
}

static void test_ask_and_answer(void)
{
	struct syncask_id a, b;
	struct stat before, after;
	char path[4400];
	json_t *j = NULL, *r;

	CHECK_EQ(syncask_write(repo, &a), 0);
	CHECK_EQ(syncask_write(repo, &b), 0);
	CHECK(strcmp(a.s, b.s) != 0);
	CHECK(syncask_id_valid(a.s, strlen(a.s)));
	CHECK_EQ(syncask_read(repo, &a, &j), 0);   /* pending */
	CHECK(j == NULL);
	CHECK(scan_has(&a));
	CHECK(scan_has(&b));

	path_of(path, sizeof(path), a.s);
	CHECK_EQ(stat(path, &before), 0);
	CHECK_EQ(before.st_size, SYNCASK_ROOM);
	r = report("ok", 0);
	CHECK_EQ(syncask_answer(repo, &a, r), 0);
	json_decref(r);
	CHECK_EQ(stat(path, &after), 0);
	/* in place: the same file, size and blocks */
	CHECK_EQ(after.st_ino, before.st_ino);
	CHECK_EQ(after.st_size, SYNCASK_ROOM);
	CHECK_EQ(after.st_blocks, before.st_blocks);

	CHECK_EQ(syncask_read(repo, &a, &j), 1);
	CHECK(json_is_object(j));
	CHECK(strcmp(json_string_value(json_object_get(j, "request")),
		     a.s) == 0);
	CHECK_EQ(json_integer_value(json_object_get(j, "snapshots_copied")),
		 3);
	CHECK(strcmp(json_string_value(json_object_get(j, "result")),
		     "ok") == 0);
	json_decref(j);
	/* answered: no longer pending; b still is */
	CHECK(!scan_has(&a));
	CHECK(scan_has(&b));
	syncask_remove(repo, &a);
	CHECK_EQ(syncask_read(repo, &a, &j), -ENOENT);

	/* an answer to a request withdrawn meanwhile is no error */
	r = report("failed", 1);
	CHECK_EQ(syncask_answer(repo, &a, r), 0);
	CHECK_EQ(syncask_read(repo, &a, &j), -ENOENT);
	json_decref(r);
	syncask_remove(repo, &b);
}

static void test_long_answer(void)
{
	struct syncask_id a;
	char *big = malloc(3 * SYNCASK_ROOM);
	json_t *j = NULL, *r;

	CHECK(big != NULL);
	memset(big, 'x', 3 * SYNCASK_ROOM - 1);
	big[3 * SYNCASK_ROOM - 1] = '\0';
	CHECK_EQ(syncask_write(repo, &a), 0);
	r = json_pack("{s:s, s:i, s:s, s:s}", "result", "partial",
		      "exit_code", 1, "error", big, "from", big);
	CHECK_EQ(syncask_answer(repo, &a, r), 0);
	json_decref(r);
	CHECK_EQ(syncask_read(repo, &a, &j), 1);
	CHECK(strcmp(json_string_value(json_object_get(j, "result")),
		     "partial") == 0);
	CHECK_EQ(json_integer_value(json_object_get(j, "exit_code")), 1);
	CHECK(strcmp(json_string_value(json_object_get(j, "request")),
		     a.s) == 0);
	CHECK(json_string_length(json_object_get(j, "error")) > 100);
	CHECK(json_string_length(json_object_get(j, "error")) < SYNCASK_ROOM);
	json_decref(j);
	syncask_remove(repo, &a);

	/* an error of multi-byte characters, cut to the short answer's size,
	 * is cut at a whole character (JSON wants UTF-8) */
	big[0] = 'x';      /* so that a cut at any size can halve one */
	for (size_t i = 1; i + 3 < 3 * SYNCASK_ROOM; i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3);
	big[1 + (3 * SYNCASK_ROOM - 5) / 3 * 3] = '\0';
	CHECK_EQ(syncask_write(repo, &a), 0);
	r = json_pack("{s:s, s:i, s:s}", "result", "failed", "exit_code", 1,
		      "error", big);
	CHECK(r != NULL);
	CHECK_EQ(syncask_answer(repo, &a, r), 0);
	json_decref(r);
	CHECK_EQ(syncask_read(repo, &a, &j), 1);
	CHECK(json_string_length(json_object_get(j, "error")) > 100);
	json_decref(j);
	syncask_remove(repo, &a);
	free(big);
}

/* A crash while an answer was written leaves neither "pending" nor JSON:
 * the server runs for it again; the asker waits. */
static void test_torn_answer(void)
{
	struct syncask_id a;
	char path[4400];
	json_t *j = NULL;
	int fd;

	CHECK_EQ(syncask_write(repo, &a), 0);
	path_of(path, sizeof(path), a.s);
	fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK_EQ(pwrite(fd, "{\"result\":\"o", 12, 0), 12);
	close(fd);
	CHECK(scan_has(&a));
	CHECK_EQ(syncask_read(repo, &a, &j), 0);
	syncask_remove(repo, &a);
}

static void test_stale_and_foreign(void)
{
	struct syncask_id a, old, pend;
	char path[4400], tmp[128];
	json_t *j = NULL, *r;
	int fd;

	CHECK_EQ(syncask_write(repo, &a), 0);
	CHECK_EQ(syncask_write(repo, &old), 0);
	CHECK_EQ(syncask_write(repo, &pend), 0);
	r = report("ok", 0);
	CHECK_EQ(syncask_answer(repo, &a, r), 0);
	CHECK_EQ(syncask_answer(repo, &old, r), 0);
	json_decref(r);
	age(old.s, SYNCASK_STALE_SEC + 60);
	age(pend.s, SYNCASK_STALE_SEC + 60);   /* pending: never stale */
	/* a killed asker's temporary, an old one and a new one */
	snprintf(tmp, sizeof(tmp), "%s.tmp-1-1", a.s);
	path_of(path, sizeof(path), tmp);
	CHECK((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	age(tmp, SYNCASK_STALE_SEC + 60);
	snprintf(tmp, sizeof(tmp), "%s.tmp-1-2", a.s);
	path_of(path, sizeof(path), tmp);
	CHECK((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	/* names that are not requests are left alone */
	path_of(path, sizeof(path), "README");
	CHECK((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	age("README", SYNCASK_STALE_SEC + 60);

	CHECK(scan_has(&pend));
	CHECK(!scan_has(&a));
	CHECK_EQ(syncask_read(repo, &a, &j), 1);     /* answered, kept */
	json_decref(j);
	CHECK_EQ(syncask_read(repo, &old, &j), -ENOENT);  /* stale: gone */
	snprintf(tmp, sizeof(tmp), "%s.tmp-1-1", a.s);
	path_of(path, sizeof(path), tmp);
	CHECK(access(path, F_OK) < 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp-1-2", a.s);
	path_of(path, sizeof(path), tmp);
	CHECK(access(path, F_OK) == 0);
	unlink(path);
	path_of(path, sizeof(path), "README");
	CHECK(access(path, F_OK) == 0);
	unlink(path);
	syncask_remove(repo, &a);
	syncask_remove(repo, &pend);
}

/* A scan returns at most `max`; the rest wait for the next. */
static void test_scan_bound(void)
{
	struct syncask_id ids[10], got[SYNCASK_MAX];
	size_t n = 0, i;

	for (i = 0; i < 10; i++)
		CHECK_EQ(syncask_write(repo, &ids[i]), 0);
	CHECK_EQ(syncask_scan(repo, got, 4, &n), 0);
	CHECK_EQ(n, 4);
	CHECK_EQ(syncask_scan(repo, got, SYNCASK_MAX, &n), 0);
	CHECK_EQ(n, 10);
	for (i = 0; i < 10; i++)
		syncask_remove(repo, &ids[i]);
	CHECK_EQ(syncask_scan(repo, got, SYNCASK_MAX, &n), 0);
	CHECK_EQ(n, 0);
}

/* An answer that cannot be written removes the request, so that its
 * asker stops waiting and says so. */
static void test_answer_fails(void)
{
	struct syncask_id a;
	char path[4400];
	json_t *j = NULL, *r;

	snprintf(a.s, sizeof(a.s), "%032d", 7);
	path_of(path, sizeof(path), a.s);
	CHECK_EQ(mkdir(path, 0700), 0);     /* open(O_WRONLY) fails */
	r = report("ok", 0);
	CHECK(syncask_answer(repo, &a, r) < 0);
	json_decref(r);
	rmdir(path);
	CHECK_EQ(syncask_read(repo, &a, &j), -ENOENT);
}

int main(void)
{
	char dir[64];

	if (!mkdtemp(repo)) {
		perror("mkdtemp");
		return 1;
	}
	/* no directory yet: nothing pending, no error */
	{
		struct syncask_id ids[1];
		size_t n = 5;

		CHECK_EQ(syncask_scan(repo, ids, 1, &n), 0);
		CHECK_EQ(n, 0);
	}
	UNIT_RUN(test_ask_and_answer);
	UNIT_RUN(test_long_answer);
	UNIT_RUN(test_torn_answer);
	UNIT_RUN(test_stale_and_foreign);
	UNIT_RUN(test_scan_bound);
	UNIT_RUN(test_answer_fails);
	snprintf(dir, sizeof(dir), "%s/%s", repo, SYNCASK_DIR);
	rmdir(dir);
	rmdir(repo);
	UNIT_DONE();
}
