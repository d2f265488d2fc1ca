/*
 * test_backend.c - one contract test for the storage backends
 * (server/store/backend.h), run against the directory backend always and
 * against RADOS when DEDUP_TEST_CEPH_CONF (and DEDUP_TEST_CEPH_POOL,
 * default "dedup") name a cluster: tests/ceph/up.sh starts one, and
 * tests/e2e/t0900-rados-backend.sh runs this with it. Each RADOS run uses
 * its own namespace, so runs never see each other's objects.
 *
 * The RADOS module is loaded from DEDUP_BACKEND_DIR, or else from the
 * build directory (DD_BUILD, set by tests/run.sh, or "build").
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "dio.h"
#include "util.h"
#include "unit.h"

static char spec[512];
static struct backend_opts opts;
static int is_rados;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct backend *open_or_die(void)
{
	struct backend *b = NULL;
	int rc = backend_open(&b, spec, &opts);

	if (rc < 0) {
		fprintf(stderr, "FAIL cannot open '%s': %s\n", spec, dd_error_last());
		exit(1);
	}
	return b;
}

/* Deterministic filler: byte i of stream `seed`. */
static void fill(uint8_t *p, size_t len, size_t start, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(((start + i) * 2654435761u + seed) >> 13);
}

static void test_names(void)
{
	static const char *bad[] = { "", "../x", "/abs", "a//b", ".hidden",
		"a/.b", "a/", "a/../b", "sp ace", "a\\b", "x/./y" };
	struct backend *b = open_or_die();
	char longname[BACKEND_NAME_MAX + 2];

	for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++)
		CHECK_EQ(backend_put(b, bad[i], "x", 1), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_EQ(backend_stat(b, longname, &(uint64_t){0}), -EINVAL);
	CHECK_EQ(backend_put(b, "big", "x", (size_t)BACKEND_PUT_MAX + 1), -EFBIG);
	backend_free(b);
}

static void test_put_once(void)
{
	struct backend *b = open_or_die();
	char buf[64] = "";
	uint64_t size = 0;

	CHECK_EQ(backend_put(b, "config.json", "{\"v\":1}", 7), 0);
	CHECK_EQ(backend_put(b, "config.json", "{\"v\":2}", 7), -EEXIST);
	CHECK(strstr(dd_error_last(), "config.json") != NULL);
	CHECK_EQ(backend_read(b, "config.json", 0, buf, 7), 0);
	CHECK(memcmp(buf, "{\"v\":1}", 7) == 0);
	CHECK_EQ(backend_stat(b, "config.json", &size), 0);
	CHECK_EQ(size, 7);
	CHECK_EQ(backend_put(b, "snapshots/empty.json", "", 0), 0);
	CHECK_EQ(backend_stat(b, "snapshots/empty.json", &size), 0);
	CHECK_EQ(size, 0);
	CHECK_EQ(backend_stat(b, "nothing/here", &size), -ENOENT);
	CHECK_EQ(backend_read(b, "nothing/here", 0, buf, 1), -ENOENT);
	backend_free(b);
}

/* Appends of 1 byte, 100 KiB and 9 MiB (several RADOS pieces in flight),
 * then reads back whole and by ranges that cross the appends' seams. */
static void test_append_read(void)
{
	static const size_t parts[] = { 1, 100 * 1024, 9 * 1024 * 1024 + 17 };
	const char *name = "packs/0000000000000012.pack";
	struct backend *b = open_or_die();
	size_t total = 0, off = 0;
	uint8_t *want, *got;
	uint64_t size = 0;

	for (size_t i = 0; i < DD_ARRAY_SIZE(parts); i++)
		total += parts[i];
	want = malloc(total);
	got = malloc(total + 10);
	fill(want, total, 0, 7);
	for (size_t i = 0; i < DD_ARRAY_SIZE(parts); i++) {
		CHECK_EQ(backend_append(b, name, want + off, parts[i]), 0);
		off += parts[i];
		CHECK_EQ(backend_stat(b, name, &size), 0);
		CHECK_EQ(size, off);
	}
	memset(got, 0, total);
	CHECK_EQ(backend_read(b, name, 0, got, total), 0);
	CHECK(memcmp(got, want, total) == 0);
	/* ranges: inside the first append, across seams, the last byte */
	{
		static const size_t at[][2] = { { 0, 1 }, { 0, 2 }, { 1, 100 * 1024 },
			{ 50000, 4 * 1024 * 1024 + 3 }, { 4 * 1024 * 1024 - 1, 2 } };

		for (size_t i = 0; i < DD_ARRAY_SIZE(at); i++) {
			memset(got, 0, at[i][1]);
			CHECK_EQ(backend_read(b, name, at[i][0], got, at[i][1]), 0);
			CHECK(memcmp(got, want + at[i][0], at[i][1]) == 0);
		}
		CHECK_EQ(backend_read(b, name, total - 1, got, 1), 0);
		CHECK_EQ(got[0], want[total - 1]);
	}
	/* short reads: past the end, and one starting at the end */
	CHECK_EQ(backend_read(b, name, total - 5, got, 10), -ENODATA);
	CHECK(strstr(dd_error_last(), "short read") != NULL);
	CHECK(strstr(dd_error_last(), "5 of 10") != NULL);
	CHECK(memcmp(got, want + total - 5, 5) == 0);
	CHECK_EQ(backend_read(b, name, total, got, 1), -ENODATA);
	CHECK_EQ(backend_read(b, name, 0, got, total + 1), -ENODATA);
	free(want);
	free(got);
	backend_free(b);
}

struct counts {
	int n;
	int stop_at;
	unsigned char seen[1000];
	int dup, foreign, locks;
};

/* Several ranges at once: across the 4 MiB pieces and over two objects,
 * each range's own result (a short one -ENODATA, a missing object
 * -ENOENT) with the others read whole; and the reads are counted. */
static void test_read_multi(void)
{
	const char *a = "packs/0000000000000021.pack";
	const char *c = "packs/0000000000000022.pack";
	size_t total = 9 * 1024 * 1024 + 5, small = 1000;
	struct backend *b = open_or_die();
	struct backend_range v[5];
	uint8_t *want = malloc(total), *got = malloc(total + small * 4);
	uint64_t reads;

	fill(want, total, 0, 11);
	CHECK_EQ(backend_append(b, a, want, total), 0);
	CHECK_EQ(backend_append(b, c, want, small), 0);
	memset(got, 0, total + small * 4);
	v[0] = (struct backend_range){ a, 3, got, total - 3, 1 };
	v[1] = (struct backend_range){ c, 10, got + total, small - 10, 1 };
	v[2] = (struct backend_range){ a, 0, got + total + small, 1, 1 };
	reads = backend_reads_count(b);
	CHECK_EQ(backend_read_multi(b, v, 3), 0);
	CHECK_EQ(backend_reads_count(b) - reads, 3);
	CHECK(v[0].rc == 0 && v[1].rc == 0 && v[2].rc == 0);
	CHECK(memcmp(got, want + 3, total - 3) == 0);
	CHECK(memcmp(got + total, want + 10, small - 10) == 0);
	CHECK_EQ(got[total + small], want[0]);
	/* one short, one missing: the others are still read */
	memset(got, 0, total + small * 4);
	v[0] = (struct backend_range){ c, small - 4, got, 8, 1 };
	v[1] = (struct backend_range){ "packs/0000000000000023.pack", 0,
				       got + 8, 8, 1 };
	v[2] = (struct backend_range){ a, total - 100, got + 16, 100, 1 };
	CHECK(backend_read_multi(b, v, 3) < 0);
	CHECK_EQ(v[0].rc, -ENODATA);
	CHECK_EQ(v[1].rc, -ENOENT);
	CHECK_EQ(v[2].rc, 0);
	CHECK(memcmp(got + 16, want + total - 100, 100) == 0);
	CHECK(strstr(dd_error_last(), "0000000000000022") != NULL);
	/* bad names and empty ranges are refused before anything is read */
	v[0] = (struct backend_range){ "../x", 0, got, 1, 1 };
	CHECK_EQ(backend_read_multi(b, v, 1), -EINVAL);
	v[0] = (struct backend_range){ a, 0, got, 0, 1 };
	CHECK_EQ(backend_read_multi(b, v, 1), -EINVAL);
	CHECK_EQ(backend_read_multi(b, v, 0), 0);
	CHECK_EQ(backend_reads_overlap(b), 1);   /* dir: test_dir_direct */
	free(want);
	free(got);
	backend_free(b);
}

static int count_cb(const char *name, void *payload)
{
	struct counts *c = payload;
	unsigned i;

	if (sscanf(name, "snapshots/s%4u.json", &i) == 1 && i < 1000) {
		if (c->seen[i]++)
			c->dup++;
	} else if (strncmp(name, "snapshots/", 10) == 0) {
		c->foreign++;
	}
	if (strstr(name, "lock") || strstr(name, "gc") || name[0] == '.')
		c->locks++;
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

static void test_list_remove(void)
{
	struct backend *b = open_or_die();
	struct counts c;
	char name[64];
	int ok = 1;

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "snapshots/s%04d.json", i);
		ok &= backend_put(b, name, name, strlen(name)) == 0;
	}
	CHECK(ok);
	CHECK_EQ(backend_put(b, "other/snapshots-not", "x", 1), 0);
	memset(&c, 0, sizeof(c));
	CHECK_EQ(backend_list(b, "snapshots/s", count_cb, &c), 0);
	CHECK_EQ(c.n, 300);
	CHECK_EQ(c.dup, 0);
	memset(&c, 0, sizeof(c));
	CHECK_EQ(backend_list(b, "snapshots/s01", count_cb, &c), 0);
	CHECK_EQ(c.n, 100);
	memset(&c, 0, sizeof(c));
	CHECK_EQ(backend_list(b, "nope/", count_cb, &c), 0);
	CHECK_EQ(c.n, 0);
	memset(&c, 0, sizeof(c));
	c.stop_at = 10;
	CHECK_EQ(backend_list(b, "snapshots/", count_cb, &c), 42);
	CHECK_EQ(c.n, 10);

	CHECK_EQ(backend_remove(b, "snapshots/s0007.json"), 0);
	CHECK_EQ(backend_stat(b, "snapshots/s0007.json", &(uint64_t){0}), -ENOENT);
	CHECK_EQ(backend_remove(b, "snapshots/s0007.json"), -ENOENT);
	memset(&c, 0, sizeof(c));
	CHECK_EQ(backend_list(b, "snapshots/s", count_cb, &c), 0);
	CHECK_EQ(c.n, 299);
	CHECK_EQ(c.seen[7], 0);
	/* a removed name can be put again */
	CHECK_EQ(backend_put(b, "snapshots/s0007.json", "again", 5), 0);
	backend_free(b);
}

static void test_lock(void)
{
	struct backend *a = open_or_die(), *b = open_or_die();
	struct counts c;

	CHECK_EQ(backend_lock(a, "gc", 30000), 0);
	CHECK_EQ(backend_lock(b, "gc", 30000), -EBUSY);
	CHECK(strstr(dd_error_last(), "gc") != NULL);
	CHECK_EQ(backend_lock(a, "gc", 30000), 0);          /* renewal */
	CHECK_EQ(backend_lock(b, "prune", 30000), 0);       /* another lock */
	CHECK_EQ(backend_unlock(a, "gc"), 0);
	CHECK_EQ(backend_unlock(a, "gc"), -ENOENT);
	CHECK_EQ(backend_lock(b, "gc", 30000), 0);
	CHECK_EQ(backend_lock(a, "gc", 30000), -EBUSY);
	/* the holder goes away: its locks go with it */
	backend_free(b);
	CHECK_EQ(backend_lock(a, "gc", 30000), 0);
	CHECK_EQ(backend_lock(a, "prune", 30000), 0);
	/* locks are not objects */
	memset(&c, 0, sizeof(c));
	CHECK_EQ(backend_list(a, "", count_cb, &c), 0);
	CHECK(c.n > 300);
	CHECK_EQ(c.locks, 0);
	CHECK_EQ(backend_stat(a, "gc", &(uint64_t){0}), -ENOENT);
	backend_free(a);
}

/* RADOS: a holder that stops renewing loses the lock when its lease ends
 * (a dead front-end does not block GC forever). The directory backend
 * ignores leases; there a dead process' flock is dropped by the kernel,
 * checked with a child that exits holding the lock. */
static void test_lease(void)
{
	struct backend *a = open_or_die(), *b = open_or_die();
	double t0, waited;
	int rc = -EBUSY;

	if (is_rados) {
		CHECK_EQ(backend_lock(a, "lease", 1500), 0);
		t0 = now_s();
		CHECK_EQ(backend_lock(b, "lease", 1500), -EBUSY);
		while (rc == -EBUSY && now_s() - t0 < 15) {
			usleep(100 * 1000);
			rc = backend_lock(b, "lease", 1500);
		}
		waited = now_s() - t0;
		CHECK_EQ(rc, 0);
		CHECK(waited > 1.0);
		CHECK(waited < 10.0);
		printf("lease of 1.5 s expired after %.2f s\n", waited);
		/* the old holder's renewal now fails: it must know it lost it */
		CHECK_EQ(backend_lock(a, "lease", 1500), -EBUSY);
		/* a holder that renews within its lease keeps the lock */
		CHECK_EQ(backend_unlock(b, "lease"), 0);
		CHECK_EQ(backend_lock(a, "renewed", 1500), 0);
		rc = 0;
		for (t0 = now_s(); now_s() - t0 < 3.5;) {
			usleep(400 * 1000);
			if (backend_lock(b, "renewed", 1500) != -EBUSY)
				rc = -1;
			if (backend_lock(a, "renewed", 1500) != 0)
				rc = -2;
		}
		CHECK_EQ(rc, 0);
	} else {
		pid_t pid = fork();
		int status = 0;

		if (pid == 0) {
			struct backend *child = open_or_die();

			_exit(backend_lock(child, "lease", 1000) == 0 ? 0 : 1);
		}
		CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		CHECK_EQ(backend_lock(b, "lease", 1000), 0);
	}
	backend_free(a);
	backend_free(b);
}

struct incr {
	struct backend *b;
	int rounds, conflicts, errors;
};

/* Adds 1 to the counter object `rounds` times by read + CAS, retrying on
 * conflict. */
static void *incr_thread(void *arg)
{
	struct incr *x = arg;

	for (int i = 0; i < x->rounds; i++) {
		for (;;) {
			char cur[32] = "", next[32];
			uint64_t size = 0;
			int rc;

			if (backend_stat(x->b, "state/counter", &size) < 0 ||
			    size >= sizeof(cur) ||
			    backend_read(x->b, "state/counter", 0, cur, size) < 0) {
				if (++x->errors > 100)
					return NULL;
				continue;
			}
			snprintf(next, sizeof(next), "%ld", strtol(cur, NULL, 10) + 1);
			rc = backend_cas(x->b, "state/counter", cur, size, next,
					 strlen(next));
			if (rc == 0)
				break;
			if (rc == -ECANCELED)
				x->conflicts++;
			else if (++x->errors > 100)
				return NULL;
		}
	}
	return NULL;
}

static void test_cas(void)
{
	struct backend *a = open_or_die(), *b = open_or_die();
	struct incr xs[2] = { { a, 40, 0, 0 }, { b, 40, 0, 0 } };
	pthread_t th[2];
	char buf[32] = "";

	CHECK_EQ(backend_cas(a, "state/leader", NULL, 0, "v1", 2), 0);
	CHECK_EQ(backend_cas(b, "state/leader", NULL, 0, "v9", 2), -EEXIST);
	CHECK_EQ(backend_cas(b, "state/leader", "v1", 2, "v2", 2), 0);
	CHECK_EQ(backend_cas(a, "state/leader", "v1", 2, "v3", 2), -ECANCELED);
	CHECK(strstr(dd_error_last(), "state/leader") != NULL);
	CHECK_EQ(backend_cas(a, "state/leader", "v", 1, "v3", 2), -ECANCELED);
	CHECK_EQ(backend_cas(a, "state/leader", "v2x", 3, "v3", 2), -ECANCELED);
	CHECK_EQ(backend_read(a, "state/leader", 0, buf, 2), 0);
	CHECK(memcmp(buf, "v2", 2) == 0);
	CHECK_EQ(backend_cas(a, "state/leader", "v2", 2, "longer value", 12), 0);
	CHECK_EQ(backend_stat(a, "state/leader", &(uint64_t){0}), 0);
	CHECK_EQ(backend_cas(a, "state/none", "v1", 2, "v2", 2), -ENOENT);

	/* two handles race 40 increments each: none is lost */
	CHECK_EQ(backend_cas(a, "state/counter", NULL, 0, "0", 1), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, incr_thread, &xs[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(backend_read(a, "state/counter", 0, buf, 2), 0);
	CHECK(memcmp(buf, "80", 2) == 0);
	CHECK_EQ(xs[0].errors + xs[1].errors, 0);
	printf("cas race: 80 increments, %d conflicts retried\n",
	       xs[0].conflicts + xs[1].conflicts);
	backend_free(a);
	backend_free(b);
}

/* The directory backend keeps today's layout: an object is a file. */
static void test_dir_layout(const char *root)
{
	char path[600];
	struct stat st;
	struct counts c;
	struct backend *b = open_or_die();

	snprintf(path, sizeof(path), "%s/packs/0000000000000012.pack", root);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
	snprintf(path, sizeof(path), "%s/config.json", root);
	CHECK(stat(path, &st) == 0 && st.st_size == 7);
	memset(&c, 0, sizeof(c));
	CHECK_EQ(backend_list(b, "snapshots/", count_cb, &c), 0);
	CHECK_EQ(c.foreign, 1);   /* empty.json; no temporary file shows */
	backend_free(b);
}

/* RADOS refuses objects past osd_max_object_size: an append that would
 * pass it fails with -EFBIG and says to use smaller packs. Run when the
 * cluster was started with a small limit (tests/ceph/up.sh with
 * CEPH_MAX_OBJECT_MB, given here as DEDUP_TEST_CEPH_MAX_OBJECT_MB). */
static void test_max_object(void)
{
	const char *mb = getenv("DEDUP_TEST_CEPH_MAX_OBJECT_MB");
	size_t max = mb ? strtoul(mb, NULL, 10) << 20 : 0;
	struct backend *b;
	uint8_t *buf;
	uint64_t size = 0;

	if (!is_rados || !max || max > 64u << 20)
		return;
	b = open_or_die();
	buf = calloc(1, max);
	CHECK_EQ(backend_append(b, "packs/full.pack", buf, max - 4096), 0);
	CHECK_EQ(backend_append(b, "packs/full.pack", buf, 8192), -EFBIG);
	CHECK(strstr(dd_error_last(), "osd_max_object_size") != NULL);
	CHECK_EQ(backend_stat(b, "packs/full.pack", &size), 0);
	CHECK_EQ(size, max - 4096);     /* nothing of the refused append */
	CHECK_EQ(backend_append(b, "packs/full.pack", buf, 4096), 0);
	printf("append past osd_max_object_size (%zu MiB): refused\n", max >> 20);
	free(buf);
	backend_free(b);
}

/* Temporary files left by a crashed process that had this pid (before a
 * reboot) do not make a put fail. Runs first: the backend's temporary
 * names count from 0 in each process. */
static void test_dir_stale_temp(void)
{
	char root[] = "/tmp/dd-stale.XXXXXX", path[600], cmd[600];
	struct backend *b = NULL;

	CHECK(mkdtemp(root) != NULL);
	for (int i = 0; i < 5; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/.tmp-%ld-%d", root, (long)getpid(), i);
		f = fopen(path, "w");
		if (f)
			fclose(f);
	}
	snprintf(path, sizeof(path), "dir:%s", root);
	CHECK_EQ(backend_open(&b, path, NULL), 0);
	if (b) {
		CHECK_EQ(backend_put(b, "config.json", "{}", 2), 0);
		CHECK_EQ(backend_cas(b, "config.json", "{}", 2, "{1}", 3), 0);
	}
	backend_free(b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	CHECK(system(cmd) == 0);
}

struct kv_seen {
	unsigned n;
	char last[BACKEND_KEY_MAX + 1];
	int order_ok;
	char val_of_k7[32];
};

static int kv_cb(const char *key, const void *val, size_t vlen, void *p)
{
	struct kv_seen *s = p;

	if (s->n && strcmp(s->last, key) >= 0)
		s->order_ok = 0;
	snprintf(s->last, sizeof(s->last), "%s", key);
	if (strcmp(key, "k0007") == 0 && vlen < sizeof(s->val_of_k7))
		memcpy(s->val_of_k7, val, vlen);
	s->n++;
	return 0;
}

/* Key/value maps: RADOS omap in batches (set, get by keys, list past a
 * page of 1000, remove); the directory backend says -EOPNOTSUPP. */
static void test_omap(void)
{
	struct backend *b = open_or_die();
	static struct backend_kv kv[2500];
	static char keys[2500][8], vals[2500][16];
	const char *want[3] = { "k0007", "nope", "k2499" };
	struct kv_seen seen = { 0, "", 1, "" };
	unsigned i;

	for (i = 0; i < 2500; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%04u", i);
		snprintf(vals[i], sizeof(vals[i]), "v%u", i * 3);
		kv[i].key = keys[i];
		kv[i].val = vals[i];
		kv[i].vlen = strlen(vals[i]);
	}
	if (!is_rados) {
		CHECK(!backend_has_omap(b));
		CHECK_EQ(backend_omap_set(b, "index/00", kv, 1), -EOPNOTSUPP);
		CHECK(strstr(dd_error_last(), "no key/value maps") != NULL);
		backend_free(b);
		return;
	}
	CHECK(backend_has_omap(b));
	CHECK_EQ(backend_omap_set(b, "index/00", kv, 2500), 0);
	CHECK_EQ(backend_omap_get(b, "index/00", want, 3, kv_cb, &seen), 0);
	CHECK_EQ(seen.n, 2);
	CHECK(strcmp(seen.val_of_k7, "v21") == 0);
	memset(&seen, 0, sizeof(seen));
	seen.order_ok = 1;
	CHECK_EQ(backend_omap_get(b, "index/none", want, 3, kv_cb, &seen), 0);
	CHECK_EQ(seen.n, 0);
	CHECK_EQ(backend_omap_list(b, "index/00", kv_cb, &seen), 0);
	CHECK_EQ(seen.n, 2500);
	CHECK(seen.order_ok);
	CHECK_EQ(backend_omap_rm(b, "index/00", want, 3), 0);
	memset(&seen, 0, sizeof(seen));
	CHECK_EQ(backend_omap_list(b, "index/00", kv_cb, &seen), 0);
	CHECK_EQ(seen.n, 2498);
	CHECK_EQ(backend_omap_rm(b, "index/none", want, 1), -ENOENT);
	CHECK(backend_ops_count(b) >= 6);
	backend_free(b);
}

static void run_contract(void)
{
	UNIT_RUN(test_names);
	UNIT_RUN(test_put_once);
	UNIT_RUN(test_append_read);
	UNIT_RUN(test_read_multi);
	UNIT_RUN(test_list_remove);
	UNIT_RUN(test_lock);
	UNIT_RUN(test_lease);
	UNIT_RUN(test_cas);
	UNIT_RUN(test_max_object);
	UNIT_RUN(test_omap);
}

static void test_specs(void)
{
	struct backend *b = NULL;

	CHECK_EQ(backend_open(&b, "s3:bucket", NULL), -EINVAL);
	CHECK(strstr(dd_error_last(), "dir:PATH or rados:POOL") != NULL);
	CHECK_EQ(backend_open(&b, "dir:", NULL), -EINVAL);
	CHECK_EQ(backend_open(&b, NULL, NULL), -EINVAL);
	CHECK(b == NULL);
}

/* A "rados:" spec without the module says what is missing and what to
 * install. */
static void test_module_missing(void)
{
	char empty[] = "/tmp/dd-nomodule.XXXXXX";
	const char *saved = getenv("DEDUP_BACKEND_DIR");
	char *keep = saved ? strdup(saved) : NULL;
	struct backend *b = NULL;

	CHECK(mkdtemp(empty) != NULL);
	setenv("DEDUP_BACKEND_DIR", empty, 1);
	CHECK_EQ(backend_open(&b, "rados:dedup", NULL), -ENOENT);
	CHECK(b == NULL);
	CHECK(strstr(dd_error_last(), "dedup-backend-rados.so") != NULL);
	CHECK(strstr(dd_error_last(), "install the package dedup-server-rados") != NULL);
	CHECK(strstr(dd_error_last(), empty) != NULL);
	/* a file that does not load (here: not an ELF file; in life: librados
	 * missing) says so and names the package too */
	{
		char junk[600];
		FILE *f;

		snprintf(junk, sizeof(junk), "%s/%s", empty, BACKEND_MODULE_FILE);
		f = fopen(junk, "w");
		CHECK(f != NULL);
		if (f) {
			fputs("not a module\n", f);
			fclose(f);
		}
		CHECK_EQ(backend_open(&b, "rados:dedup", NULL), -ENOENT);
		CHECK(strstr(dd_error_last(), "cannot load the RADOS backend module") != NULL);
		CHECK(strstr(dd_error_last(), "reinstall the package dedup-server-rados") != NULL);
		unlink(junk);
	}
	rmdir(empty);
	if (keep)
		setenv("DEDUP_BACKEND_DIR", keep, 1);
	free(keep);
}

static void test_rados_missing_pool(void)
{
	struct backend *b = NULL;
	char s[300];

	snprintf(s, sizeof(s), "rados:no-such-pool-%ld", (long)getpid());
	CHECK_EQ(backend_open(&b, s, &opts), -ENOENT);
	CHECK(strstr(dd_error_last(), "no such pool") != NULL);
}

/* Pages of the file at `path` in the page cache, and its pages in all. */
static void resident(const char *path, size_t *in, size_t *all)
{
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	unsigned char *vec;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*in = *all = 0;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	*all = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	vec = malloc(*all);
	if (map != MAP_FAILED && vec && mincore(map, (size_t)st.st_size, vec) == 0)
		for (size_t i = 0; i < *all; i++)
			*in += vec[i] & 1;
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	free(vec);
	close(fd);
}

/* What this process has read so far (/proc/self/io rchar), 0 unknown. */
static uint64_t self_rchar(void)
{
	unsigned long long v = 0;
	char line[128];
	FILE *f = fopen("/proc/self/io", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %llu", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* The direct I/O alignment of the file at `path` (statx), 0 when its
 * file system offers none. */
static size_t dir_dio_align(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t a = fd >= 0 ? dio_alignment(fd, 0, DIO_BUF_ALIGN) : 0;

	if (fd >= 0)
		close(fd);
	return a;
}

/*
 * The directory backend's direct I/O (backend_dir_direct_appends), on a
 * disk (the build directory, as test_dio: a tmpfs offers none): appends
 * of every size at every offset, one pack and a second one alternating,
 * read back whole and in many ranges at once through read_multi's window
 * (ranges inside one window, across windows, larger than the staging
 * buffer, past the end); pack data appended direct leaves the page cache
 * alone, and the same appends with it off fill it. Then every read is the
 * same with direct I/O off.
 */
static const char *disk_root;

static void test_dir_direct(void)
{
	const char *root = disk_root;
	const char *name[2] = { "packs/0000000000000031.pack",
				"packs/0000000000000032.pack" };
	size_t cap = 24u << 20, size[2] = { 0, 0 };
	uint8_t *want[2] = { malloc(cap), malloc(cap) }, *got = malloc(cap);
	struct backend_range v[64];
	char path[600];
	struct backend *b;
	uint64_t x = 0x2545f4914f6cdd1dull;
	size_t in, all;

	snprintf(spec, sizeof(spec), "dir:%s", root);
	b = open_or_die();
	CHECK(want[0] && want[1] && got);
	if (!want[0] || !want[1] || !got)
		goto out;
	backend_dir_direct_appends(true);
	CHECK_EQ(backend_reads_overlap(b), 1);
	for (int i = 0; i < 40; i++) {
		int f = i % 3 == 2;
		size_t n;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		n = i < 4 ? (size_t[]){ 1, 65536, 65535, 3 << 20 }[i] :
			x % 4 == 0 ? 1 + x % 5000 : 1 + x % (1536 * 1024);
		if (size[f] + n > cap)
			break;
		fill(want[f] + size[f], n, size[f], 40 + 0x9e3779u * (unsigned)f);
		CHECK_EQ(backend_append(b, name[f], want[f] + size[f], n), 0);
		size[f] += n;
	}
	snprintf(path, sizeof(path), "%s/%s", root, name[0]);
	resident(path, &in, &all);
	printf("# direct appends: %zu of %zu pages of the pack cached\n", in, all);
	if (!dir_dio_align(path))
		printf("# (no direct I/O on this file system)\n");
	else
		CHECK(in * 8 < all);
	for (int f = 0; f < 2; f++) {
		uint64_t sz = 0;

		CHECK_EQ(backend_stat(b, name[f], &sz), 0);
		CHECK_EQ(sz, size[f]);
		memset(got, 0, size[f]);
		CHECK_EQ(backend_read(b, name[f], 0, got, size[f]), 0);
		CHECK(memcmp(got, want[f], size[f]) == 0);
	}
	for (int pass = 0; pass < 2; pass++) {
		size_t used = 0, k = 0;

		backend_dir_direct_appends(pass == 0);
		CHECK_EQ(backend_reads_overlap(b), pass == 0);
		for (int j = 0; j < 40 && k < DD_ARRAY_SIZE(v) - 5; j++) {
			int f = j % 5 == 4;
			size_t off, len;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			len = j == 0 ? (5u << 20) + 3 : j % 4 == 0 ?
				1 + x % (600 * 1024) : 1 + x % 9000;
			if (len > size[f])
				len = size[f];
			off = (size_t)((x >> 20) % (size[f] - len + 1));
			if (used + len > cap)
				break;
			v[k++] = (struct backend_range){ name[f], off, got + used,
							 len, 1 };
			used += len;
		}
		/* the same offset of the two packs in turn: no window is
		 * taken for the other pack's */
		for (int f = 0; f < 3 && used + 3000 <= cap; f++) {
			v[k++] = (struct backend_range){ name[f % 2], 70000,
							 got + used, 3000, 1 };
			used += 3000;
		}
		/* one that ends past the end, one that starts there */
		v[k++] = (struct backend_range){ name[1], size[1] - 2, got + used,
						 4, 1 };
		v[k++] = (struct backend_range){ name[0], size[0], got + used + 4,
						 1, 1 };
		CHECK(backend_read_multi(b, v, k) < 0);
		CHECK_EQ(v[k - 2].rc, -ENODATA);
		CHECK_EQ(v[k - 1].rc, -ENODATA);
		for (size_t r = 0; r + 2 < k; r++) {
			int f = v[r].name == name[1];

			CHECK_EQ(v[r].rc, 0);
			CHECK(memcmp(v[r].buf, want[f] + v[r].off, v[r].len) == 0);
		}
	}
	/* Small ranges scattered over both packs, asked in shuffled order:
	 * each pack opened once and read in pack order, every range within
	 * a few aligned blocks of what it asks (no readahead-sized window
	 * each; rchar counts what the preads returned). */
	{
		size_t k = 0, asked = 0, a;
		uint64_t r0 = self_rchar(), r1;

		backend_dir_direct_appends(true);
		for (size_t j = 0; j < 48; j++) {
			int f = (int)(j % 2);
			size_t at = (size_t)((j * 7919u) % 48) *
				    (size_t)((size[f] - 600) / 48);

			v[k++] = (struct backend_range){ name[f], at,
				got + asked, 300, 1 };
			asked += 300;
		}
		CHECK_EQ(backend_read_multi(b, v, k), 0);
		r1 = self_rchar();
		for (size_t r = 0; r < k; r++) {
			int f = v[r].name == name[1];

			CHECK(memcmp(v[r].buf, want[f] + v[r].off, 300) == 0);
		}
		printf("# 48 scattered ranges of 300 bytes: %llu bytes read\n",
		       (unsigned long long)(r1 - r0));
		if (r0 && (a = dir_dio_align(path)))
			CHECK(r1 - r0 <= 48u * 2 * a);
	}
	/* the same appends through the cache fill it */
	backend_dir_direct_appends(false);
	CHECK_EQ(backend_append(b, "packs/0000000000000033.pack", want[0],
				size[0]), 0);
	snprintf(path, sizeof(path), "%s/packs/0000000000000033.pack", root);
	resident(path, &in, &all);
	printf("# cached appends: %zu of %zu pages cached\n", in, all);
	CHECK(in * 2 > all);
	backend_dir_direct_appends(true);
out:
	free(want[0]);
	free(want[1]);
	free(got);
	backend_free(b);
}

int main(int argc, char **argv)
{
	char disk[400], *slash;
	const char *conf = getenv("DEDUP_TEST_CEPH_CONF");
	const char *pool = getenv("DEDUP_TEST_CEPH_POOL");
	char root[] = "/tmp/dd-backend.XXXXXX";
	char cmd[600];

	if (!getenv("DEDUP_BACKEND_DIR")) {
		const char *build = getenv("DD_BUILD");

		setenv("DEDUP_BACKEND_DIR", build ? build : "build", 1);
	}
	UNIT_RUN(test_dir_stale_temp);
	UNIT_RUN(test_specs);
	UNIT_RUN(test_module_missing);

	if (!mkdtemp(root))
		return 1;
	snprintf(spec, sizeof(spec), "dir:%s", root);
	run_contract();
	test_dir_layout(root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: cannot remove %s\n", root);
	/* beside the binary (the build, a disk), as test_dio */
	snprintf(disk, sizeof(disk), "%s", argc > 0 ? argv[0] : "./x");
	if ((slash = strrchr(disk, '/')))
		snprintf(slash, sizeof(disk) - (size_t)(slash - disk),
			 "/backend.XXXXXX");
	else
		snprintf(disk, sizeof(disk), "backend.XXXXXX");
	if (!mkdtemp(disk))
		return 1;
	disk_root = disk;
	UNIT_RUN(test_dir_direct);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", disk);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: cannot remove %s\n", disk);

	if (conf && conf[0]) {
		is_rados = 1;
		opts.ceph_conf = conf;
		snprintf(spec, sizeof(spec), "rados:%s/test-%ld-%ld",
			 pool && pool[0] ? pool : "dedup", (long)getpid(),
			 (long)time(NULL));
		printf("rados half: %s (ceph.conf %s)\n", spec, conf);
		UNIT_RUN(test_rados_missing_pool);
		run_contract();
	} else {
		printf("rados half skipped: DEDUP_TEST_CEPH_CONF not set "
		       "(tests/e2e/t0900-rados-backend.sh starts a cluster)\n");
	}
	UNIT_DONE();
}
