/*
 * metrics.c - see metrics.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* Distinct (method, status) pairs kept; later pairs count as "other". */
#define METRICS_PAIRS 64
#define METRICS_METHODS 5

static const char *const metrics_methods[METRICS_METHODS] = {
	"GET", "HEAD", "POST", "DELETE", "other"
};

/* Upper bounds of the ingest latency buckets, seconds; +Inf is implied. */
static const double metrics_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
};
#define METRICS_NBUCKETS DD_ARRAY_SIZE(metrics_buckets)

struct metrics_pair {
	unsigned method;       /* index into metrics_methods */
	unsigned status;       /* 0 = other */
	uint64_t count;
};

struct metrics {
	pthread_mutex_t lock;
	struct metrics_pair pairs[METRICS_PAIRS];
	size_t npairs;
	uint64_t bytes_in, bytes_out;
	uint64_t chunks_stored, chunks_dup, ingest_plain, ingest_packed;
	uint64_t buckets[METRICS_NBUCKETS + 1];
	double ingest_sum;
	uint64_t ingest_count;
	uint64_t fetch_chunks, fetch_reads, fetch_unchecked;
	uint64_t checked, check_damaged;
};

int metrics_new(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static unsigned metrics_method_index(const char *method)
{
	unsigned i;

	for (i = 0; i + 1 < METRICS_METHODS; i++)
		if (strcmp(method, metrics_methods[i]) == 0)
			return i;
	return METRICS_METHODS - 1;
}

static size_t metrics_find(const struct metrics *m, unsigned method,
			   unsigned status)
{
	size_t i;

	for (i = 0; i < m->npairs; i++)
		if (m->pairs[i].method == method && m->pairs[i].status == status)
			break;
	return i;
}

void metrics_request(struct metrics *m, const char *method, unsigned status,
		     uint64_t bytes_in, uint64_t bytes_out)
{
	unsigned mi = metrics_method_index(method);
	size_t i;

	if (status < 100 || status > 599)
		status = 0;
	pthread_mutex_lock(&m->lock);
	m->bytes_in += bytes_in;
	m->bytes_out += bytes_out;
	i = metrics_find(m, mi, status);
	if (i == m->npairs && m->npairs >= METRICS_PAIRS - 1) {
		/* Full: the last slot counts every further pair. */
		mi = METRICS_METHODS - 1;
		status = 0;
		i = metrics_find(m, mi, status);
	}
	if (i == m->npairs) {
		m->pairs[i].method = mi;
		m->pairs[i].status = status;
		m->npairs++;
	}
	m->pairs[i].count++;
	pthread_mutex_unlock(&m->lock);
}

void metrics_ingest(struct metrics *m, double seconds, uint32_t stored,
		    uint32_t dups, uint64_t plain, uint64_t packed)
{
	size_t b;

	if (seconds < 0)
		seconds = 0;
	for (b = 0; b < METRICS_NBUCKETS; b++)
		if (seconds <= metrics_buckets[b])
			break;
	pthread_mutex_lock(&m->lock);
	m->chunks_stored += stored;
	m->chunks_dup += dups;
	m->ingest_plain += plain;
	m->ingest_packed += packed;
	m->buckets[b]++;
	m->ingest_sum += seconds;
	m->ingest_count++;
	pthread_mutex_unlock(&m->lock);
}

void metrics_fetch(struct metrics *m, uint64_t chunks, uint64_t reads,
		   bool unchecked)
{
	pthread_mutex_lock(&m->lock);
	m->fetch_chunks += chunks;
	m->fetch_reads += reads;
	if (unchecked)
		m->fetch_unchecked += chunks;
	pthread_mutex_unlock(&m->lock);
}

void metrics_check(struct metrics *m, uint64_t checked, uint64_t damaged)
{
	pthread_mutex_lock(&m->lock);
	m->checked += checked;
	m->check_damaged += damaged;
	pthread_mutex_unlock(&m->lock);
}

static int metrics_printf(struct dd_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int metrics_printf(struct dd_buf *out, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	return dd_buf_append(out, line, (size_t)n);
}

int metrics_header(struct dd_buf *out, const char *name, const char *type,
		   const char *help)
{
	return metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			      name, type);
}

/* Prometheus wants integers without an exponent where it can. */
static void metrics_number(char out[64], double v)
{
	if (v == (double)(int64_t)v && v > -9.0e15 && v < 9.0e15)
		snprintf(out, 64, "%lld", (long long)v);
	else
		snprintf(out, 64, "%.17g", v);
}

int metrics_one(struct dd_buf *out, const char *name, const char *type,
		const char *help, double v)
{
	int rc = metrics_header(out, name, type, help);

	return rc ? rc : metrics_sample(out, name, NULL, NULL, v);
}

int metrics_sample(struct dd_buf *out, const char *name, const char *label,
		   const char *value, double v)
{
	char num[64], esc[300];
	size_t i, n = 0;

	metrics_number(num, v);
	if (!label)
		return metrics_printf(out, "%s %s\n", name, num);
	for (i = 0; value[i] && n + 3 < sizeof(esc); i++) {
		char c = value[i];

		if (c == '\\' || c == '"') {
			esc[n++] = '\\';
			esc[n++] = c;
		} else if (c == '\n') {
			esc[n++] = '\\';
			esc[n++] = 'n';
		} else {
			esc[n++] = c;
		}
	}
	esc[n] = '\0';
	return metrics_printf(out, "%s{%s=\"%s\"} %s\n", name, label, esc, num);
}

int metrics_render(struct metrics *m, struct dd_buf *out)
{
	struct metrics copy;
	uint64_t cum = 0;
	char le[64];
	size_t i;
	int rc;

	pthread_mutex_lock(&m->lock);
	copy = *m;
	pthread_mutex_unlock(&m->lock);

	rc = metrics_header(out, "dedup_http_requests_total", "counter",
			    "HTTP requests answered, by method and status code");
	for (i = 0; rc == 0 && i < copy.npairs; i++) {
		char st[16];

		if (copy.pairs[i].status)
			snprintf(st, sizeof(st), "%u", copy.pairs[i].status);
		else
			snprintf(st, sizeof(st), "other");
		rc = metrics_printf(out, "dedup_http_requests_total{method=\"%s\","
				    "code=\"%s\"} %llu\n",
				    metrics_methods[copy.pairs[i].method], st,
				    (unsigned long long)copy.pairs[i].count);
	}
	if (rc == 0)
		rc = metrics_one(out, "dedup_http_received_bytes_total",
				 "counter",
				 "request body bytes received",
				 (double)copy.bytes_in);
	if (rc == 0)
		rc = metrics_one(out, "dedup_http_sent_bytes_total", "counter",
				 "reply body bytes sent",
				 (double)copy.bytes_out);
	if (rc == 0)
		rc = metrics_one(out, "dedup_chunks_stored_total", "counter",
				 "new chunks stored by uploads",
				 (double)copy.chunks_stored);
	if (rc == 0)
		rc = metrics_one(out, "dedup_chunks_duplicate_total", "counter",
				 "uploaded chunks that were already stored",
				 (double)copy.chunks_dup);
	if (rc == 0)
		rc = metrics_one(out, "dedup_ingest_plain_bytes_total",
				 "counter",
				 "plain bytes of new chunks stored",
				 (double)copy.ingest_plain);
	if (rc == 0)
		rc = metrics_one(out, "dedup_ingest_stored_bytes_total",
				 "counter",
				 "bytes of new chunks as stored (compressed)",
				 (double)copy.ingest_packed);
	if (rc == 0)
		rc = metrics_one(out, "dedup_fetch_chunks_total", "counter",
				 "chunks sent by batched fetches (POST "
				 "/api/v1/chunks/fetch)",
				 (double)copy.fetch_chunks);
	if (rc == 0)
		rc = metrics_one(out, "dedup_fetch_pack_reads_total", "counter",
				 "reads of pack data made for them (one per "
				 "pack span on RADOS)",
				 (double)copy.fetch_reads);
	if (rc == 0)
		rc = metrics_one(out, "dedup_fetch_client_checked_chunks_total",
				 "counter", "of those, chunks sent to a caller "
				 "that checks them itself (?verify=client)",
				 (double)copy.fetch_unchecked);
	if (rc == 0)
		rc = metrics_one(out, "dedup_check_chunks_total", "counter",
				 "chunks re-hashed for POST "
				 "/api/v1/chunks/check",
				 (double)copy.checked);
	if (rc == 0)
		rc = metrics_one(out, "dedup_check_damaged_total", "counter",
				 "of those, chunks found damaged (and dropped "
				 "from the index)",
				 (double)copy.check_damaged);
	if (rc == 0)
		rc = metrics_header(out, "dedup_ingest_duration_seconds",
				    "histogram", "time to verify and store one "
				    "chunk upload (POST /api/v1/chunks)");
	for (i = 0; rc == 0 && i <= METRICS_NBUCKETS; i++) {
		cum += copy.buckets[i];
		if (i < METRICS_NBUCKETS)
			snprintf(le, sizeof(le), "%g", metrics_buckets[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		rc = metrics_printf(out, "dedup_ingest_duration_seconds_bucket"
				    "{le=\"%s\"} %llu\n", le,
				    (unsigned long long)cum);
	}
	if (rc == 0)
		rc = metrics_printf(out, "dedup_ingest_duration_seconds_sum "
				    "%.6f\n", copy.ingest_sum);
	if (rc == 0)
		rc = metrics_printf(out, "dedup_ingest_duration_seconds_count "
				    "%llu\n",
				    (unsigned long long)copy.ingest_count);
	return rc;
}
