/*
 * backend_bench.c - the storage backend's own append and read throughput,
 * for tests/bench/rados-bench.sh to set beside `rados bench` on the same
 * cluster.
 *
 *   backend-bench SPEC TOTAL_MIB [APPEND_MIB [OBJECT_MIB [THREADS]]]
 *
 * Each of THREADS threads writes its share of TOTAL_MIB into its own pack
 * objects ("bench/T-N.pack", OBJECT_MIB each) by backend_append calls of
 * APPEND_MIB, then reads everything back in APPEND_MIB ranges, checks it,
 * and removes the objects. Prints one line per phase:
 *   append MB/s <n>    read MB/s <n>
 * (MB = 10^6 bytes, like rados bench). The ceph.conf path comes from
 * CEPH_CONF; the module from DEDUP_BACKEND_DIR.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "util.h"

struct job {
	struct backend *b;
	int id;
	size_t total, append, object;
	int rc;
};

static int phase_read;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(unsigned char *p, size_t len, size_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		unsigned long long v = (seed + i) * 0x9E3779B97F4A7C15ull;

		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	unsigned char *buf = malloc(j->append), *want = malloc(j->append);
	char name[64];
	size_t done = 0;

	j->rc = buf && want ? 0 : -ENOMEM;
	while (j->rc == 0 && done < j->total) {
		size_t n = j->total - done < j->append ? j->total - done : j->append;
		uint64_t off = done % j->object;

		snprintf(name, sizeof(name), "bench/%d-%zu.pack", j->id,
			 done / j->object);
		fill(want, n, done + (size_t)j->id * 131);
		if (phase_read) {
			j->rc = backend_read(j->b, name, off, buf, n);
			if (j->rc == 0 && memcmp(buf, want, n) != 0)
				j->rc = -EBADMSG;
		} else {
			j->rc = backend_append(j->b, name, want, n);
		}
		done += n;
	}
	free(buf);
	free(want);
	return NULL;
}

static int run_phase(struct job *jobs, int threads, const char *what,
		     size_t total)
{
	pthread_t th[64];
	double t0 = now_s(), secs;

	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, run_job, &jobs[i]);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	secs = now_s() - t0;
	for (int i = 0; i < threads; i++) {
		if (jobs[i].rc < 0) {
			fprintf(stderr, "backend-bench: %s failed: %s\n", what,
				dd_error_last());
			return 1;
		}
	}
	printf("%s MB/s %.1f (%zu MiB in %.2f s)\n", what,
	       (double)total / 1e6 / secs, total >> 20, secs);
	return 0;
}

static int remove_cb(const char *name, void *payload)
{
	return backend_remove(payload, name);
}

int main(int argc, char **argv)
{
	struct backend_opts opts = { .ceph_conf = getenv("CEPH_CONF") };
	size_t total, append, object;
	struct job jobs[64];
	struct backend *b;
	int threads, rc;

	if (argc < 3) {
		fprintf(stderr, "usage: backend-bench SPEC TOTAL_MIB [APPEND_MIB "
			"[OBJECT_MIB [THREADS]]]\n");
		return 2;
	}
	total = strtoul(argv[2], NULL, 10) << 20;
	append = (argc > 3 ? strtoul(argv[3], NULL, 10) : 16) << 20;
	object = (argc > 4 ? strtoul(argv[4], NULL, 10) : 64) << 20;
	threads = argc > 5 ? (int)strtol(argv[5], NULL, 10) : 1;
	if (!total || !append || object < append || object % append ||
	    threads < 1 || threads > 64) {
		fprintf(stderr, "backend-bench: bad sizes\n");
		return 2;
	}
	if (backend_open(&b, argv[1], &opts) < 0) {
		fprintf(stderr, "backend-bench: %s\n", dd_error_last());
		return 1;
	}
	for (int i = 0; i < threads; i++)
		jobs[i] = (struct job){ b, i, total / (size_t)threads, append,
					object, 0 };
	total = total / (size_t)threads * (size_t)threads;
	rc = run_phase(jobs, threads, "append", total);
	phase_read = 1;
	if (rc == 0)
		rc = run_phase(jobs, threads, "read", total);
	backend_list(b, "bench/", remove_cb, b);
	backend_free(b);
	return rc;
}
