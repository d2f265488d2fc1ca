/*
 * server_bench.c - the server's side of a backup, measured alone: N
 * concurrent clients send bundles built before the clock starts, so the
 * figures are the server's work (TLS, parsing, decompressing, hashing,
 * pack writes and syncs, index batches), not an agent's reading and
 * compressing. Driven by tests/bench/server-bench.sh.
 *
 *   server-bench upload  URL CA TOKEN CLIENTS MIB [SEED]
 *   server-bench missing URL CA TOKEN CLIENTS IDS present|absent
 *                        INDEX_CHUNKS [SEED]
 *   server-bench fetch   URL CA TOKEN CLIENTS MIB [SEED]
 *   server-bench floor   DIR MIB [SEED]
 *
 * upload: MIB MiB of unique chunks (64 KiB..1 MiB, about 1.6x
 *   compressible, zstd level 3) are split over CLIENTS threads, each
 *   with its own keep-alive HTTPS connection; each bundle (at most
 *   BENCH_BUNDLE_PLAIN plain bytes) is first asked about with POST
 *   /chunks/missing, then sent with POST /chunks, as the agent does.
 * missing: CLIENTS threads ask POST /chunks/missing about IDS ids in all,
 *   in requests of BENCH_MISSING_BATCH: present ids of a synthetic index
 *   of INDEX_CHUNKS chunks (synth_ids.h, random i) or absent ids. Every
 *   answer is checked (all present or all missing).
 * fetch: the restore side of `upload` with the same CLIENTS, MIB and SEED
 *   (run after it): each thread asks POST /chunks/fetch?verify=client (as
 *   the agent's restore does: it checks every chunk, the server sends them
 *   as stored) for its bundles' ids, one request a bundle, and checks that
 *   every record comes back in order with exactly the stored bytes it
 *   sent. DD_BENCH_FETCH_VERIFY=server asks the server to check them too
 *   (plain /chunks/fetch, as the agent's verify and mount do).
 *   DD_BENCH_BUNDLE_KIB (environment) makes small bundles instead: at
 *   most that many KiB each, of chunks of 16..64 KiB (the tail of a
 *   backup, or a small incremental one; docs/GROUP-COMMIT.md).
 * floor: what any server must do with the same data, on one thread:
 *   zstd decompress, SHA-256, write to a file in DIR and fdatasync once a
 *   bundle, as the server syncs a pack once a request.
 *
 * Each prints one JSON object on stdout: wall seconds, plain MB, wire MB
 * (the bundles' bytes: compressed chunks and their headers), ids, the
 * CPU seconds of this process, and per route the request count and the
 * latency percentiles (p50, p90, p99, max) in milliseconds. Exit 1 when a
 * request fails or an answer is wrong.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bundle.h"
#include "compress.h"
#include "hash.h"
#include "synth_ids.h"
#include "util.h"

#define BENCH_BUNDLE_PLAIN (8u * 1024 * 1024)
#define BENCH_MISSING_BATCH 4096u
/* 8 MiB of chunks of at least 64 KiB, or 1 MiB of at least 16 KiB. */
#define BENCH_BUNDLE_IDS 128u
#define BENCH_SMALL_MAX_KIB 1024u
#define BENCH_ZSTD_LEVEL 3

/* ---- deterministic data ---- */

static uint64_t bench_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A chunk of `len` bytes: runs of random bytes between runs of words,
 * about 1.6x compressible at zstd level 3, like the mixed tree. */
static void bench_fill(uint8_t *p, size_t len, uint64_t seed)
{
	static const char words[] = "the quick brown fox jumps over the "
				    "lazy dog; int main(void) { return 0; }\n";
	uint64_t s = seed;
	size_t off = 0;

	while (off < len) {
		uint64_t r = bench_splitmix(&s);
		size_t run = 256 + (size_t)(r % 2048), k;

		if (run > len - off)
			run = len - off;
		if (r & (1ull << 40)) {
			for (k = 0; k < run; k++)
				p[off + k] = (uint8_t)bench_splitmix(&s);
		} else {
			for (k = 0; k < run; k++)
				p[off + k] = (uint8_t)words[(k + (r >> 20)) %
							   (sizeof(words) - 1)];
		}
		off += run;
	}
}

/* A bundle built before timing, with its ids for the missing-query. */
struct bench_bundle {
	struct dd_buf body;
	struct dd_id *ids;
	uint32_t n;
	uint64_t plain;
};

/* A bundle's plain bytes at most: DD_BENCH_BUNDLE_KIB (1 to
 * BENCH_SMALL_MAX_KIB) for small bundles, else BENCH_BUNDLE_PLAIN. */
static uint64_t bench_bundle_plain(void)
{
	const char *v = getenv("DD_BENCH_BUNDLE_KIB");
	unsigned long kib;
	char *end;

	if (!v || !*v)
		return BENCH_BUNDLE_PLAIN;
	kib = strtoul(v, &end, 10);
	if (*end || kib == 0 || kib > BENCH_SMALL_MAX_KIB)
		return BENCH_BUNDLE_PLAIN;
	return (uint64_t)kib * 1024;
}

/* The next chunk's length: 64 KiB..1 MiB, or 16..64 KiB in small
 * bundles. */
static size_t bench_chunk_len(uint64_t *s)
{
	if (bench_bundle_plain() < BENCH_BUNDLE_PLAIN)
		return 16 * 1024 + (size_t)(bench_splitmix(s) % (48 * 1024));
	return 64 * 1024 + (size_t)(bench_splitmix(s) % (960 * 1024));
}

/* The bundles of client `c`: `bytes` plain bytes of chunks whose sizes
 * and contents follow from (seed, c). */
static int bench_build(struct bench_bundle **out, size_t *nout,
		       uint64_t seed, unsigned c, uint64_t bytes)
{
	struct bench_bundle *v = NULL, *b = NULL;
	struct dd_buf comp;
	uint8_t *plain = malloc(1024 * 1024);
	uint64_t s = seed * 1000003u + c, done = 0;
	size_t n = 0;
	int rc = plain ? 0 : -ENOMEM;

	dd_buf_init(&comp, 0);
	while (rc == 0 && done < bytes) {
		size_t len = bench_chunk_len(&s);
		struct dd_id id;
		int flags;

		if (len > bytes - done)
			len = (size_t)(bytes - done);
		if (!b || b->plain + len > bench_bundle_plain()) {
			struct bench_bundle *nv = realloc(v, (n + 1) * sizeof(*v));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
			b = &v[n++];
			memset(b, 0, sizeof(*b));
			dd_buf_init(&b->body, 0);
			rc = dd_bundle_begin(&b->body);
			b->ids = malloc(BENCH_BUNDLE_IDS * sizeof(*b->ids));
			if (rc == 0 && !b->ids)
				rc = -ENOMEM;
			if (rc < 0)
				break;
		}
		bench_fill(plain, len, bench_splitmix(&s));
		dd_sha256(&id, plain, len);
		flags = dd_compress(&comp, plain, len, BENCH_ZSTD_LEVEL, NULL);
		if (flags < 0 || b->n == BENCH_BUNDLE_IDS) {
			rc = flags < 0 ? flags : -E2BIG;
			break;
		}
		rc = dd_bundle_add(&b->body, &id, (uint32_t)flags,
				   (uint32_t)len, comp.data,
				   (uint32_t)comp.len);
		b->ids[b->n++] = id;
		b->plain += len;
		done += len;
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = dd_bundle_finish(&v[i].body);
	dd_buf_release(&comp);
	free(plain);
	*out = v;
	*nout = n;
	return rc;
}

static void bench_bundles_free(struct bench_bundle *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		dd_buf_release(&v[i].body);
		free(v[i].ids);
	}
	free(v);
}

/* ---- latencies ---- */

struct bench_lat {
	double *ms;
	size_t n, cap;
};

static int bench_lat_add(struct bench_lat *l, double ms)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		double *v = realloc(l->ms, nc * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->ms = v;
		l->cap = nc;
	}
	l->ms[l->n++] = ms;
	return 0;
}

static int bench_lat_merge(struct bench_lat *into, const struct bench_lat *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (bench_lat_add(into, l->ms[i]) < 0)
			return -ENOMEM;
	return 0;
}

static int bench_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double bench_pct(const struct bench_lat *l, double p)
{
	size_t i;

	if (!l->n)
		return 0;
	i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
	return l->ms[i < l->n ? i : l->n - 1];
}

static void bench_lat_print(const char *route, struct bench_lat *l,
			    bool comma)
{
	qsort(l->ms, l->n, sizeof(double), bench_dbl_cmp);
	printf("\"%s\": {\"requests\": %zu, \"p50_ms\": %.2f, "
	       "\"p90_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f}%s",
	       route, l->n, bench_pct(l, 50), bench_pct(l, 90),
	       bench_pct(l, 99), l->n ? l->ms[l->n - 1] : 0.0,
	       comma ? ", " : "");
}

static double bench_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- HTTPS ---- */

struct bench_conn {
	CURL *curl;
	struct curl_slist *hdrs;
	struct dd_buf reply;
	char url[512];
};

static size_t bench_write_cb(char *p, size_t sz, size_t n, void *payload)
{
	struct dd_buf *b = payload;

	return dd_buf_append(b, p, sz * n) == 0 ? sz * n : 0;
}

static int bench_conn_init(struct bench_conn *c, const char *ca,
			   const char *token)
{
	char auth[600];

	memset(c, 0, sizeof(*c));
	dd_buf_init(&c->reply, 0);
	c->curl = curl_easy_init();
	if (!c->curl)
		return -ENOMEM;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	c->hdrs = curl_slist_append(NULL, auth);
	c->hdrs = curl_slist_append(c->hdrs,
				    "Content-Type: application/octet-stream");
	c->hdrs = curl_slist_append(c->hdrs, "Expect:");
	curl_easy_setopt(c->curl, CURLOPT_CAINFO, ca);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, bench_write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->reply);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 600L);
	return 0;
}

static void bench_conn_release(struct bench_conn *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdrs);
	dd_buf_release(&c->reply);
}

/* POSTs body to base+path; 0 on a 200 (reply in c->reply), else -EIO
 * with the status and reply on stderr. *ms: the request's latency. */
static int bench_post(struct bench_conn *c, const char *base,
		      const char *path, const void *body, size_t len,
		      double *ms)
{
	long status = 0;
	double t0 = dd_monotonic();
	CURLcode cc;

	snprintf(c->url, sizeof(c->url), "%s%s", base, path);
	dd_buf_reset(&c->reply);
	curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)len);
	cc = curl_easy_perform(c->curl);
	*ms = (dd_monotonic() - t0) * 1000.0;
	if (cc == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK || status != 200) {
		fprintf(stderr, "error: POST %s: %s, status %ld: %.*s\n", path,
			curl_easy_strerror(cc), status,
			(int)(c->reply.len < 300 ? c->reply.len : 300),
			c->reply.data ? (const char *)c->reply.data : "");
		return -EIO;
	}
	return 0;
}

/* ---- one client thread ---- */

struct bench_client {
	const char *url, *ca, *token;
	/* upload */
	struct bench_bundle *bundles;
	size_t nbundles;
	/* missing */
	uint64_t ids, index_chunks, seed, first;
	bool present;
	pthread_barrier_t *go;      /* every thread ready: the clock starts */
	/* results */
	struct bench_lat lat_missing, lat_upload, lat_fetch;
	uint64_t asked;
	int rc;
};

/* A missing-query of n ids: every bit must say `want_missing`. */
static int bench_ask(struct bench_client *cl, struct bench_conn *conn,
		     const struct dd_id *ids, uint32_t n, bool want_missing)
{
	double ms;
	int rc = bench_post(conn, cl->url, "/api/v1/chunks/missing", ids,
			    (size_t)n * DD_ID_LEN, &ms);

	if (rc == 0)
		rc = bench_lat_add(&cl->lat_missing, ms);
	if (rc == 0 && conn->reply.len != (n + 7) / 8u)
		rc = -EBADMSG;
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		bool missing = conn->reply.data[i / 8] & (1u << (i % 8));

		if (missing != want_missing) {
			fprintf(stderr, "error: id %u of a query answered %s\n",
				i, missing ? "missing" : "present");
			rc = -EBADMSG;
		}
	}
	cl->asked += n;
	return rc;
}

static void *bench_upload_thread(void *arg)
{
	struct bench_client *cl = arg;
	struct bench_conn conn;
	double ms;
	int rc = bench_conn_init(&conn, cl->ca, cl->token);

	pthread_barrier_wait(cl->go);
	for (size_t i = 0; rc == 0 && i < cl->nbundles; i++) {
		struct bench_bundle *b = &cl->bundles[i];

		rc = bench_ask(cl, &conn, b->ids, b->n, true);
		if (rc == 0)
			rc = bench_post(&conn, cl->url, "/api/v1/chunks",
					b->body.data, b->body.len, &ms);
		if (rc == 0)
			rc = bench_lat_add(&cl->lat_upload, ms);
	}
	bench_conn_release(&conn);
	cl->rc = rc;
	return NULL;
}

/* One fetched bundle against the bundle that was uploaded: the same
 * records, in order, with the same stored bytes. */
static int bench_fetched_same(const struct bench_bundle *sent,
			      const struct dd_buf *got)
{
	struct dd_bundle_reader rs, rg;
	struct dd_bundle_record a, b;
	uint32_t n = 0;
	int ra, rb, rc;

	rc = dd_bundle_reader_init(&rs, sent->body.data, sent->body.len);
	if (rc == 0)
		rc = dd_bundle_reader_init(&rg, got->data, got->len);
	while (rc == 0) {
		ra = dd_bundle_next(&rs, &a);
		rb = dd_bundle_next(&rg, &b);
		if (ra < 0 || rb < 0 || ra != rb)
			return -EBADMSG;
		if (ra == 0)
			break;
		if (memcmp(a.id.b, b.id.b, DD_ID_LEN) ||
		    a.stored_len != b.stored_len ||
		    a.plain_len != b.plain_len ||
		    memcmp(a.data, b.data, a.stored_len))
			return -EBADMSG;
		n++;
	}
	if (rc == 0 && n != sent->n)
		rc = -EBADMSG;
	if (rc < 0)
		fprintf(stderr, "error: a fetched bundle differs from the "
			"one uploaded (after %u records)\n", n);
	return rc;
}


/* The fetch route as the agent's restore asks it, or with the server's
 * check too (DD_BENCH_FETCH_VERIFY=server). */
static const char *bench_fetch_path(void)
{
	const char *v = getenv("DD_BENCH_FETCH_VERIFY");

	return v && strcmp(v, "server") == 0 ? "/api/v1/chunks/fetch" :
		"/api/v1/chunks/fetch?verify=client";
}

static void *bench_fetch_thread(void *arg)
{
	struct bench_client *cl = arg;
	struct bench_conn conn;
	double ms;
	int rc = bench_conn_init(&conn, cl->ca, cl->token);

	pthread_barrier_wait(cl->go);
	for (size_t i = 0; rc == 0 && i < cl->nbundles; i++) {
		struct bench_bundle *b = &cl->bundles[i];

		rc = bench_post(&conn, cl->url, bench_fetch_path(), b->ids,
				(size_t)b->n * DD_ID_LEN, &ms);
		if (rc == 0)
			rc = bench_lat_add(&cl->lat_fetch, ms);
		if (rc == 0)
			rc = bench_fetched_same(b, &conn.reply);
	}
	bench_conn_release(&conn);
	cl->rc = rc;
	return NULL;
}

/* The thread's ids, made before the clock starts (hashing them would
 * take the load generator's CPU from the server on a shared machine). */
static struct dd_id *bench_missing_ids(const struct bench_client *cl)
{
	struct dd_id *ids = malloc((cl->ids ? cl->ids : 1) * sizeof(*ids));
	uint64_t s = cl->seed ^ (cl->first * 0x9e3779b97f4a7c15ull);

	for (uint64_t j = 0; ids && j < cl->ids; j++) {
		if (cl->present)
			synth_present_id(&ids[j], cl->seed, cl->index_chunks,
					 bench_splitmix(&s) %
					 cl->index_chunks);
		else
			synth_absent_id(&ids[j], cl->seed, cl->first + j);
	}
	return ids;
}

static void *bench_missing_thread(void *arg)
{
	struct bench_client *cl = arg;
	struct bench_conn conn;
	struct dd_id *ids = bench_missing_ids(cl);
	uint64_t j = 0;
	int rc = bench_conn_init(&conn, cl->ca, cl->token);

	if (rc == 0 && !ids)
		rc = -ENOMEM;
	pthread_barrier_wait(cl->go);
	while (rc == 0 && j < cl->ids) {
		uint32_t n = cl->ids - j < BENCH_MISSING_BATCH ?
			     (uint32_t)(cl->ids - j) : BENCH_MISSING_BATCH;

		rc = bench_ask(cl, &conn, ids + j, n, !cl->present);
		j += n;
	}
	free(ids);
	bench_conn_release(&conn);
	cl->rc = rc;
	return NULL;
}

/* Runs every client's thread, prints the JSON result. */
static int bench_run(struct bench_client *cl, unsigned nc,
		     void *(*fn)(void *), const char *mode, uint64_t plain,
		     uint64_t wire)
{
	pthread_t *th = calloc(nc, sizeof(*th));
	struct bench_lat miss = { 0 }, up = { 0 }, fe = { 0 };
	pthread_barrier_t go;
	uint64_t asked = 0;
	double t0, wall, cpu0;
	unsigned i, started = 0;
	int rc = th ? 0 : -ENOMEM;

	if (rc == 0 && pthread_barrier_init(&go, NULL, nc + 1) != 0)
		rc = -ENOMEM;
	for (i = 0; rc == 0 && i < nc; i++) {
		cl[i].go = &go;
		if (pthread_create(&th[i], NULL, fn, &cl[i]) != 0)
			rc = -EAGAIN;
		else
			started++;
	}
	if (rc < 0 && started) {
		/* The started threads wait for nc + 1: stop here. */
		fprintf(stderr, "error: cannot start %u threads\n", nc);
		exit(1);
	}
	if (rc == 0)
		pthread_barrier_wait(&go);
	t0 = dd_monotonic();
	cpu0 = bench_cpu_seconds();
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	wall = dd_monotonic() - t0;
	if (th && rc == 0)
		pthread_barrier_destroy(&go);
	for (i = 0; i < started; i++) {
		if (cl[i].rc < 0 && rc == 0)
			rc = cl[i].rc;
		asked += cl[i].asked;
		if (bench_lat_merge(&miss, &cl[i].lat_missing) < 0 ||
		    bench_lat_merge(&up, &cl[i].lat_upload) < 0 ||
		    bench_lat_merge(&fe, &cl[i].lat_fetch) < 0)
			rc = -ENOMEM;
	}
	printf("{\"mode\": \"%s\", \"clients\": %u, \"ok\": %s, "
	       "\"seconds\": %.3f, \"plain_mb\": %.1f, \"mb_per_s\": %.1f, "
	       "\"wire_mb\": %.1f, "
	       "\"ids\": %llu, \"ids_per_s\": %.0f, \"load_cpu_s\": %.2f, ",
	       mode, nc, rc == 0 ? "true" : "false", wall, plain / 1e6,
	       plain / 1e6 / wall, wire / 1e6, (unsigned long long)asked,
	       (double)asked / wall, bench_cpu_seconds() - cpu0);
	bench_lat_print("missing", &miss, up.n > 0 || fe.n > 0);
	if (up.n)
		bench_lat_print("upload", &up, fe.n > 0);
	if (fe.n)
		bench_lat_print("fetch", &fe, false);
	printf("}\n");
	free(miss.ms);
	free(up.ms);
	free(fe.ms);
	free(th);
	return rc;
}

static int bench_parse(const char *s, uint64_t *v, const char *what)
{
	if (dd_parse_u64(s, v) == 0)
		return 0;
	fprintf(stderr, "error: %s must be a number, not '%s'\n", what, s);
	return -EINVAL;
}

/* upload and fetch: the same bundles from (CLIENTS, MIB, SEED). */
static int cmd_bundles(int argc, char **argv, bool fetch)
{
	struct bench_client *cl;
	uint64_t nc, mib, seed = 1, plain = 0, wire = 0;
	unsigned i;
	int rc;

	if (argc < 7 || bench_parse(argv[5], &nc, "CLIENTS") < 0 ||
	    bench_parse(argv[6], &mib, "MIB") < 0 ||
	    (argc > 7 && bench_parse(argv[7], &seed, "SEED") < 0) ||
	    nc == 0 || nc > 1024)
		return -EINVAL;
	cl = calloc(nc, sizeof(*cl));
	if (!cl)
		return -ENOMEM;
	for (i = 0, rc = 0; rc == 0 && i < nc; i++) {
		cl[i].url = argv[2];
		cl[i].ca = argv[3];
		cl[i].token = argv[4];
		rc = bench_build(&cl[i].bundles, &cl[i].nbundles, seed, i,
				 mib * 1024 * 1024 / nc);
		for (size_t k = 0; k < cl[i].nbundles; k++) {
			plain += cl[i].bundles[k].plain;
			wire += cl[i].bundles[k].body.len;
		}
	}
	if (rc == 0)
		rc = bench_run(cl, (unsigned)nc,
			       fetch ? bench_fetch_thread : bench_upload_thread,
			       fetch ? "fetch" : "upload", plain, wire);
	for (i = 0; i < nc; i++) {
		bench_bundles_free(cl[i].bundles, cl[i].nbundles);
		free(cl[i].lat_missing.ms);
		free(cl[i].lat_upload.ms);
		free(cl[i].lat_fetch.ms);
	}
	free(cl);
	return rc;
}

static int cmd_missing(int argc, char **argv)
{
	struct bench_client *cl;
	uint64_t nc, ids, chunks, seed = 1;
	unsigned i;
	int rc;

	if (argc < 9 || bench_parse(argv[5], &nc, "CLIENTS") < 0 ||
	    bench_parse(argv[6], &ids, "IDS") < 0 ||
	    bench_parse(argv[8], &chunks, "INDEX_CHUNKS") < 0 ||
	    (argc > 9 && bench_parse(argv[9], &seed, "SEED") < 0) ||
	    nc == 0 || nc > 1024 ||
	    (strcmp(argv[7], "present") && strcmp(argv[7], "absent")) ||
	    (!strcmp(argv[7], "present") && chunks == 0))
		return -EINVAL;
	cl = calloc(nc, sizeof(*cl));
	if (!cl)
		return -ENOMEM;
	for (i = 0; i < nc; i++) {
		cl[i].url = argv[2];
		cl[i].ca = argv[3];
		cl[i].token = argv[4];
		cl[i].ids = ids / nc + (i < ids % nc);
		cl[i].first = (uint64_t)i << 40;
		cl[i].present = !strcmp(argv[7], "present");
		cl[i].index_chunks = chunks;
		cl[i].seed = seed;
	}
	rc = bench_run(cl, (unsigned)nc, bench_missing_thread, argv[7], 0, 0);
	for (i = 0; i < nc; i++)
		free(cl[i].lat_missing.ms);
	free(cl);
	return rc;
}

/* ---- the floor ---- */

/* Decompresses, hashes and writes one bundle to fd, then fdatasync. */
static int floor_bundle(int fd, const struct bench_bundle *b,
			struct dd_buf *plain, void *dctx)
{
	struct dd_bundle_reader r;
	struct dd_bundle_record rec;
	struct dd_id id;
	int rc = dd_bundle_reader_init(&r, b->body.data, b->body.len);

	while (rc == 0 && (rc = dd_bundle_next(&r, &rec)) == 1) {
		rc = dd_decompress(plain, rec.flags, rec.data, rec.stored_len,
				   rec.plain_len, dctx);
		if (rc == 0) {
			dd_sha256(&id, plain->data, plain->len);
			rc = memcmp(id.b, rec.id.b, DD_ID_LEN) ? -EBADMSG : 0;
		}
		if (rc == 0)
			rc = dd_write_all(fd, rec.data, rec.stored_len);
	}
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	return rc;
}

static int cmd_floor(int argc, char **argv)
{
	struct bench_bundle *v = NULL;
	struct dd_buf plain;
	char path[4096];
	uint64_t mib, seed = 1, bytes = 0;
	size_t n = 0;
	double t0, cpu0;
	void *dctx = NULL;
	int fd, rc;

	if (argc < 4 || bench_parse(argv[3], &mib, "MIB") < 0 ||
	    (argc > 4 && bench_parse(argv[4], &seed, "SEED") < 0))
		return -EINVAL;
	if (dd_path_join(path, sizeof(path), argv[2], "floor.data") < 0)
		return -ENAMETOOLONG;
	rc = bench_build(&v, &n, seed, 0, mib * 1024 * 1024);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && rc == 0)
		rc = -errno;
	dd_buf_init(&plain, 0);
	t0 = dd_monotonic();
	cpu0 = bench_cpu_seconds();
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = floor_bundle(fd, &v[i], &plain, dctx);
		bytes += v[i].plain;
	}
	if (rc == 0)
		printf("{\"mode\": \"floor\", \"seconds\": %.3f, "
		       "\"cpu_s\": %.3f, \"plain_mb\": %.1f, "
		       "\"mb_per_s\": %.1f}\n", dd_monotonic() - t0,
		       bench_cpu_seconds() - cpu0, bytes / 1e6,
		       bytes / 1e6 / (dd_monotonic() - t0));
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	dd_buf_release(&plain);
	bench_bundles_free(v, n);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = -EINVAL;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (argc > 1 && !strcmp(argv[1], "upload"))
		rc = cmd_bundles(argc, argv, false);
	else if (argc > 1 && !strcmp(argv[1], "fetch"))
		rc = cmd_bundles(argc, argv, true);
	else if (argc > 1 && !strcmp(argv[1], "missing"))
		rc = cmd_missing(argc, argv);
	else if (argc > 1 && !strcmp(argv[1], "floor"))
		rc = cmd_floor(argc, argv);
	if (rc == -EINVAL)
		fputs("usage: server-bench upload URL CA TOKEN CLIENTS MIB "
		      "[SEED]\n"
		      "       server-bench fetch URL CA TOKEN CLIENTS MIB "
		      "[SEED]\n"
		      "       server-bench missing URL CA TOKEN CLIENTS IDS "
		      "present|absent INDEX_CHUNKS [SEED]\n"
		      "       server-bench floor DIR MIB [SEED]\n", stderr);
	else if (rc < 0)
		fprintf(stderr, "error: %s\n", dd_error_last() ?
			dd_error_last() : strerror(-rc));
	curl_global_cleanup();
	return rc == 0 ? 0 : 1;
}
