/*
 * snapshots.c - the table of snapshots (see snapshots.h): listing and
 * paging, reading a manifest, removing one, loading the directory at
 * start, and adopting the manifests other front-ends wrote to the pool.
 * A new snapshot is checked and written by snap_create.c.
 */
#define _GNU_SOURCE     /* pthread_rwlockattr_setkind_np, timegm */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backend.h"
#include "log.h"
#include "proto.h"
#include "repo.h"
#include "snapshots_impl.h"
#include "tokens.h"


static void snap_rwlock_init(pthread_rwlock_t *l)
{
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	/* glibc's default lets readers overtake a waiting writer forever. */
	pthread_rwlockattr_setkind_np(&a,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(l, &a);
	pthread_rwlockattr_destroy(&a);
}

static int snap_key_cmp(int64_t ans, const char *aid, int64_t bns,
			const char *bid)
{
	if (ans != bns)
		return ans < bns ? -1 : 1;
	return strcmp(aid, bid);
}

/* The first index whose key is > (ns, id) (or >= when `inclusive`). */
static size_t snap_bound(const struct snapshots *s, int64_t ns,
			 const char *id, bool inclusive)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = snap_key_cmp(s->v[mid].written_ns, s->v[mid].id, ns,
				     id);

		if (c < 0 || (c == 0 && !inclusive))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Room for one more entry, in v and in byid. */
static int snapshots_reserve(struct snapshots *s)
{
	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 64;
		struct snap *v = realloc(s->v, na * sizeof(*v));
		struct snap_byid *b;

		if (!v)
			return -ENOMEM;
		s->v = v;
		b = realloc(s->byid, na * sizeof(*b));
		if (!b)
			return -ENOMEM;
		s->byid = b;
		s->alloc = na;
	}
	return 0;
}

/* The first place in byid whose id is >= id. */
static size_t snap_byid_bound(const struct snapshots *s, const char *id)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(s->byid[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int snap_byid_cmp(const void *a, const void *b)
{
	const struct snap_byid *x = a, *y = b;

	return strcmp(x->id, y->id);
}

/* byid made again from v's n entries (loading at start). */
static void snap_byid_build(struct snapshots *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		memcpy(s->byid[i].id, s->v[i].id, sizeof(s->byid[i].id));
		s->byid[i].written_ns = s->v[i].written_ns;
	}
	if (s->n)
		qsort(s->byid, s->n, sizeof(*s->byid), snap_byid_cmp);
}

/* With the write lock held: inserts *e in order. */
int snapshots_insert(struct snapshots *s, const struct snap *e)
{
	size_t at;

	if (snapshots_reserve(s) < 0)
		return -ENOMEM;
	at = snap_bound(s, e->written_ns, e->id, true);
	memmove(&s->v[at + 1], &s->v[at], (s->n - at) * sizeof(*e));
	s->v[at] = *e;
	at = snap_byid_bound(s, e->id);
	memmove(&s->byid[at + 1], &s->byid[at],
		(s->n - at) * sizeof(*s->byid));
	memcpy(s->byid[at].id, e->id, sizeof(s->byid[at].id));
	s->byid[at].written_ns = e->written_ns;
	s->n++;
	s->bytes_logical += e->bytes_total;
	s->bytes_catalog += e->catalog_bytes;
	return 0;
}

static int snap_order_cmp(const void *a, const void *b)
{
	const struct snap *x = a, *y = b;

	return snap_key_cmp(x->written_ns, x->id, y->written_ns, y->id);
}

/* With a lock held: the snapshot with this (lowercase) id, or NULL. Its
 * place in byid gives its key, and the key its place in v. */
const struct snap *snap_find(const struct snapshots *s, const char *id)
{
	size_t b = snap_byid_bound(s, id), at;

	if (b == s->n || strcmp(s->byid[b].id, id) != 0)
		return NULL;
	at = snap_bound(s, s->byid[b].written_ns, id, true);
	assert(at < s->n && strcmp(s->v[at].id, id) == 0);
	return &s->v[at];
}

/* With the write lock held: entry e (of v) leaves the table. */
static void snap_take(struct snapshots *s, const struct snap *e)
{
	size_t at = (size_t)(e - s->v), b = snap_byid_bound(s, e->id);

	s->bytes_logical -= e->bytes_total;
	s->bytes_catalog -= e->catalog_bytes;
	memmove(&s->byid[b], &s->byid[b + 1],
		(s->n - b - 1) * sizeof(*s->byid));
	memmove(&s->v[at], &s->v[at + 1], (s->n - at - 1) * sizeof(*s->v));
	s->n--;
}

static bool snap_visible(const struct snap *e, const char *client, bool admin)
{
	return admin || strcmp(e->client, client) == 0;
}

void snapshots_set_max_per_client(struct snapshots *s, uint64_t max)
{
	pthread_rwlock_wrlock(&s->lock);
	s->max_per_client = max;
	pthread_rwlock_unlock(&s->lock);
}

/* ---- digests of the paths and the host ---- */

static int snap_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* SHA-256 over (u64 length, bytes) of `host` (if any) and each path,
 * paths sorted. */
static int snap_digest(const char *host, json_t *paths, struct dd_id *out)
{
	size_t n = json_array_size(paths), i;
	const char **v = calloc(n + 1, sizeof(*v));
	struct dd_buf b;
	uint8_t len8[8];
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		v[i] = json_string_value(json_array_get(paths, i));
		if (!v[i])
			v[i] = "";
	}
	if (n)
		qsort(v, n, sizeof(*v), snap_str_cmp);
	dd_buf_init(&b, 0);
	if (host) {
		dd_put_le64(len8, strlen(host));
		rc = dd_buf_append(&b, len8, 8);
		if (rc == 0)
			rc = dd_buf_append(&b, host, strlen(host));
	}
	for (i = 0; rc == 0 && i < n; i++) {
		dd_put_le64(len8, strlen(v[i]));
		rc = dd_buf_append(&b, len8, 8);
		if (rc == 0)
			rc = dd_buf_append(&b, v[i], strlen(v[i]));
	}
	if (rc == 0)
		dd_sha256(out, b.data ? (const void *)b.data : "", b.len);
	dd_buf_release(&b);
	free(v);
	return rc;
}

int snapshots_paths_digest(json_t *paths, struct dd_id *out)
{
	return snap_digest(NULL, paths, out);
}

/* Fills the digests of *e from a manifest's host and paths. */
int snap_digests(struct snap *e, json_t *m)
{
	json_t *paths = json_object_get(m, "paths");
	const char *host = json_string_value(json_object_get(m, "host"));
	int rc = snap_digest(NULL, paths, &e->paths_digest);

	if (rc == 0)
		rc = snap_digest(host ? host : "", paths, &e->group_digest);
	return rc;
}

void snapshots_set_mirror(struct snapshots *s, struct backend *be)
{
	s->mirror = be;
}

void snapshots_set_adopt_hook(struct snapshots *s, snapshots_adopt_fn fn,
			      void *payload)
{
	s->adopt_fn = fn;
	s->adopt_payload = payload;
}

int snap_dump(json_t *m, char **out, size_t *out_len)
{
	char *text = json_dumps(m, JSON_COMPACT);

	if (!text)
		return -ENOMEM;
	*out = text;
	*out_len = strlen(text);
	return 0;
}

void snap_pool_changed(struct snapshots *s)
{
	/* One byte is one RADOS append operation, atomic, so appends of
	 * several front-ends at once do not mix (backend_append's one
	 * writer rule is about appends split into several operations). */
	if (s->mirror && backend_append(s->mirror, SNAPSHOTS_CHANGED, "\n",
					1) < 0) {
		log_warning("cannot mark the pool's snapshots changed: %s (the "
			    "other front-ends see the change within a minute)",
			    dd_error_last());
		dd_error_clear();
	}
}

/* ---- manifests a failed create may have left in the pool ---- */

/* Its place in the list, or -1; `lock` held. */
static ssize_t snap_unsure_find(const struct snapshots *s, const char *id)
{
	for (size_t i = 0; i < s->nunsure; i++)
		if (strcmp(s->unsure[i].id, id) == 0)
			return (ssize_t)i;
	return -1;
}

static bool snap_unsure_has(const struct snapshots *s, const char *id)
{
	return snap_unsure_find(s, id) >= 0;
}

/* The list into DIR/SNAP_UNSURE_FILE (removed when empty): a copy taken
 * under `lock`, written outside it, in order (unsure_file_lock). */
static int snap_unsure_save(struct snapshots *s)
{
	char path[4200], *text = NULL;
	size_t i, n, len = 0;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", s->dir, SNAP_UNSURE_FILE);
	pthread_mutex_lock(&s->unsure_file_lock);
	pthread_rwlock_rdlock(&s->lock);
	n = s->nunsure;
	if (n && (text = malloc(n * SNAP_UNSURE_LINE + 1)) != NULL)
		for (i = 0; i < n; i++)
			len += (size_t)snprintf(text + len, SNAP_UNSURE_LINE + 1,
						"%s %lld\n", s->unsure[i].id,
						(long long)s->unsure[i].at);
	pthread_rwlock_unlock(&s->lock);
	if (n && !text)
		rc = -ENOMEM;
	else if (n)
		rc = dd_write_file_atomic(path, text, len, 0600);
	else if (unlink(path) < 0 && errno != ENOENT)
		rc = dd_error_set(-errno, "cannot remove '%s': %s", path,
				  strerror(errno));
	pthread_mutex_unlock(&s->unsure_file_lock);
	free(text);
	return rc;
}

/* `lock` held for writing. */
static int snap_unsure_push(struct snapshots *s, const char *id, int64_t at)
{
	if (snap_unsure_has(s, id))
		return 0;
	if (s->nunsure == SNAP_UNSURE_MAX)
		return dd_error_set(-ENOSPC, "%u manifests wait already",
				    SNAP_UNSURE_MAX);
	if (!s->unsure) {
		s->unsure = calloc(SNAP_UNSURE_MAX, sizeof(*s->unsure));
		if (!s->unsure)
			return -ENOMEM;
	}
	snprintf(s->unsure[s->nunsure].id, DD_ID_HEX_LEN + 1, "%s", id);
	s->unsure[s->nunsure++].at = at;
	return 0;
}

bool snap_unsure_noted(struct snapshots *s, const char *id)
{
	bool noted;

	pthread_rwlock_rdlock(&s->lock);
	noted = snap_unsure_has(s, id);
	pthread_rwlock_unlock(&s->lock);
	return noted;
}

void snap_unsure_add(struct snapshots *s, const char *id)
{
	int rc;

	pthread_rwlock_wrlock(&s->lock);
	rc = snap_unsure_push(s, id, (int64_t)dd_now());
	pthread_rwlock_unlock(&s->lock);
	if (rc < 0) {
		log_error("snapshot %s failed, but the pool may hold its "
			  "manifest, and it cannot be noted for removal (%s): "
			  "forget it if it is listed", id, log_reason(rc));
		return;
	}
	rc = snap_unsure_save(s);
	if (rc < 0)
		log_error("snapshot %s failed, but the pool may hold its "
			  "manifest: noted for removal, but not in '%s/%s' "
			  "(%s): after a restart, forget it if it is listed",
			  id, s->dir, SNAP_UNSURE_FILE, log_reason(rc));
}

/* DIR/SNAP_UNSURE_FILE read back at start. Advisory: what cannot be read
 * is warned about and skipped, the start goes on. */
static void snap_unsure_load(struct snapshots *s)
{
	char path[4200], id[DD_ID_HEX_LEN + 1];
	uint8_t *data = NULL;
	size_t len = 0, at = 0, end;
	long long when;
	char *stop;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", s->dir, SNAP_UNSURE_FILE);
	rc = dd_read_file(path, (size_t)SNAP_UNSURE_MAX * SNAP_UNSURE_LINE,
			  &data, &len);
	if (rc < 0) {
		if (rc != -ENOENT)
			log_warning("cannot read '%s' (%s): manifests that "
				    "failed creates may have left in the pool "
				    "are not removed", path, log_reason(rc));
		dd_error_clear();
		return;
	}
	for (; at < len; at = end + 1) {
		for (end = at; end < len && data[end] != '\n'; end++)
			;
		when = -1;
		if (end - at > DD_ID_HEX_LEN + 1 && end - at < SNAP_UNSURE_LINE &&
		    data[at + DD_ID_HEX_LEN] == ' ') {
			char num[24];

			memcpy(num, data + at + DD_ID_HEX_LEN + 1,
			       end - at - DD_ID_HEX_LEN - 1);
			num[end - at - DD_ID_HEX_LEN - 1] = '\0';
			errno = 0;
			when = strtoll(num, &stop, 10);
			if (errno || *stop || stop == num || when < 0)
				when = -1;
		}
		memcpy(id, data + at, DD_ID_HEX_LEN < end - at ?
		       DD_ID_HEX_LEN : end - at);
		id[DD_ID_HEX_LEN < end - at ? DD_ID_HEX_LEN : end - at] = '\0';
		if (when < 0 || !snap_is_hex64(id)) {
			log_warning("'%s': skipping a line that is not "
				    "\"<snapshot id> <time>\"", path);
			continue;
		}
		if (snap_unsure_push(s, id, when) < 0) {
			log_warning("'%s': %s", path, log_reason(-ENOSPC));
			dd_error_clear();
			break;
		}
	}
	free(data);
}

int snapshots_sweep_unsure(struct snapshots *s)
{
	struct snap_unsure *v = NULL;
	char name[128];
	int64_t now = (int64_t)dd_now();
	size_t n, i, nforget = 0;
	bool *forget;
	int rc = 0, one;

	pthread_rwlock_rdlock(&s->lock);
	n = s->nunsure;
	if (n && s->mirror && (v = malloc(n * sizeof(*v))) != NULL)
		memcpy(v, s->unsure, n * sizeof(*v));
	pthread_rwlock_unlock(&s->lock);
	if (!v)
		return n && s->mirror ? -ENOMEM : 0;
	forget = calloc(n, sizeof(*forget));
	for (i = 0; forget && i < n; i++) {
		/* Indexed means acknowledged: never removed (a noted id is
		 * refused by create, import and adoption alike, so this is
		 * only a guard). */
		if (snapshots_has(s, v[i].id)) {
			log_warning("snapshot %s was noted as failed but is "
				    "listed: its note is dropped", v[i].id);
			forget[i] = true;
			nforget++;
			continue;
		}
		snap_object(name, sizeof(name), v[i].id);
		one = backend_remove(s->mirror, name);
		if (one == 0) {
			log_info("snapshot %s had failed, but the pool held "
				 "its manifest: removed", v[i].id);
			snap_pool_changed(s);
		}
		if (one == 0 || one == -ENOENT) {
			dd_error_clear();
			/* a write the pool was slow to apply may land
			 * late: looked for again until the keep passed */
			if (now - v[i].at >= s->unsure_keep_sec) {
				forget[i] = true;
				nforget++;
			}
			continue;
		}
		if (rc == 0)
			rc = one;
		if (backend_unavailable(one))
			break;  /* the rest would wait as long each */
	}
	if (!forget) {
		free(v);
		return -ENOMEM;
	}
	if (nforget) {
		pthread_rwlock_wrlock(&s->lock);
		for (i = 0; i < n; i++) {
			ssize_t k;

			if (!forget[i] || (k = snap_unsure_find(s, v[i].id)) < 0)
				continue;
			memmove(&s->unsure[k], &s->unsure[k + 1],
				(s->nunsure - (size_t)k - 1) *
				sizeof(*s->unsure));
			s->nunsure--;
		}
		pthread_rwlock_unlock(&s->lock);
		one = snap_unsure_save(s);
		if (rc == 0)
			rc = one;
	}
	free(v);
	free(forget);
	return rc;
}

/* Test hook (docs/OPERATIONS.md): DEDUP_TEST_UNSURE_KEEP_SEC=N (0 to
 * 3600) replaces SNAP_UNSURE_KEEP_SEC. */
static int64_t snap_unsure_keep_sec(void)
{
	return (int64_t)dd_test_hook_u64("DEDUP_TEST_UNSURE_KEEP_SEC", 0, 3600,
					 SNAP_UNSURE_KEEP_SEC);
}

/* "snapshots/<id>.json" */
void snap_object(char *out, size_t outsz, const char *id)
{
	snprintf(out, outsz, "%s/%s.json", REPO_SNAPSHOTS, id);
}

/* The pending state of `id` (0: none); `lock` held. */
int snap_pending_get(const struct snapshots *s, const char *id)
{
	for (size_t i = 0; i < s->npending; i++)
		if (strcmp(s->pending[i].id, id) == 0)
			return s->pending[i].state;
	return 0;
}

/* Sets (state > 0) or clears (0) the pending state of `id`; `lock` held
 * for writing. When the table is full, the oldest refused id makes room;
 * a table full of running creates (more than SNAP_PENDING_MAX guarded
 * creates at once) leaves this one unmarked. */
void snap_pending_set(struct snapshots *s, const char *id, int state)
{
	size_t i;

	for (i = 0; i < s->npending; i++)
		if (strcmp(s->pending[i].id, id) == 0)
			break;
	if (i == s->npending && state == 0)
		return;
	if (i == s->npending && s->npending == SNAP_PENDING_MAX) {
		for (i = 0; i < s->npending; i++)
			if (s->pending[i].state == SNAP_PENDING_REFUSED)
				break;
		if (i == s->npending)
			return;
		memmove(&s->pending[i], &s->pending[i + 1],
			(s->npending - i - 1) * sizeof(s->pending[0]));
		i = --s->npending;
	}
	if (state == 0) {
		memmove(&s->pending[i], &s->pending[i + 1],
			(s->npending - i - 1) * sizeof(s->pending[0]));
		s->npending--;
		return;
	}
	if (i == s->npending) {
		snprintf(s->pending[i].id, sizeof(s->pending[i].id), "%s", id);
		s->npending++;
	}
	s->pending[i].state = (uint8_t)state;
}

int snapshots_remove(struct snapshots *s, const char *id)
{
	char want[DD_ID_HEX_LEN + 1], path[4200];
	const struct snap *e;
	struct dd_id raw;
	bool pool_changed = false;
	int rc = -ENOENT;

	if (strlen(id) != DD_ID_HEX_LEN || dd_id_from_hex(&raw, id) < 0)
		return -ENOENT;
	dd_id_to_hex(want, &raw);
	pthread_rwlock_wrlock(&s->lock);
	e = snap_find(s, want);
	do {            /* once, for the breaks */
		if (!e)
			break;
		snprintf(path, sizeof(path), "%s/%s.json", s->dir, want);
		/* The store's copy first: a manifest removed here but left
		 * there would come back with a recovery, its chunks gone. */
		if (s->mirror) {
			char name[128];

			snap_object(name, sizeof(name), want);
			rc = backend_remove(s->mirror, name);
			pool_changed = rc == 0;
			if (rc < 0 && rc != -ENOENT) {
				rc = -EIO;
				break;
			}
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			rc = dd_error_set(-EIO, "cannot remove '%s': %s", path,
					  strerror(errno));
			break;
		}
		rc = dd_fsync_dir(s->dir);
		if (rc < 0 && rc != -ENOMEM)
			rc = -EIO;
		/* Gone from disk (whether or not the directory sync worked):
		 * gone from the index too. */
		snap_take(s, e);
	} while (0);
	pthread_rwlock_unlock(&s->lock);
	if (pool_changed)       /* not under the lock: one more operation */
		snap_pool_changed(s);
	return rc;
}

/* ---- reading manifests ---- */

/* "2026-11-21T16:40:00Z" -> unix seconds; -1 if it is not one. */
static int64_t snap_parse_time(const char *t)
{
	struct tm tm;
	const char *end;

	if (!t)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(t, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	return (int64_t)timegm(&tm);
}

/* Reads and parses one manifest file; -EBADMSG with a reason if it is not
 * a manifest we wrote for `id`. */
static int snap_read_file(const char *path, const char *id, json_t **out)
{
	uint8_t *data = NULL;
	size_t len;
	json_t *m, *v;
	json_error_t jerr;
	int rc;

	*out = NULL;
	rc = dd_read_file(path, SNAPSHOTS_FILE_MAX, &data, &len);
	if (rc < 0)
		return rc;
	m = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (!m)
		return dd_error_set(-EBADMSG, "%s (line %d)", jerr.text,
				    jerr.line);
	if (!json_is_object(m) ||
	    !json_is_integer(json_object_get(m, "version")) ||
	    json_integer_value(json_object_get(m, "version")) != 1) {
		json_decref(m);
		return dd_error_set(-EBADMSG, "not a version 1 manifest");
	}
	v = json_object_get(m, "id");
	if (!json_is_string(v) || strcmp(json_string_value(v), id) != 0) {
		json_decref(m);
		return dd_error_set(-EBADMSG, "its id does not match its file "
				    "name");
	}
	*out = m;
	return 0;
}

static int snap_read(const struct snapshots *s, const char *id, json_t **out)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s.json", s->dir, id);
	return snap_read_file(path, id, out);
}

int snapshots_load(struct snapshots *s, const char *id, json_t **out)
{
	const struct snap *e;
	int64_t written = 0;
	int rc;

	*out = NULL;
	pthread_rwlock_rdlock(&s->lock);
	e = snap_find(s, id);
	if (e)
		written = e->written_ns;
	pthread_rwlock_unlock(&s->lock);
	if (!e)
		return -ENOENT;
	rc = snap_read(s, id, out);
	if (rc < 0)
		return rc;
	json_object_set_new(*out, "unix_written",
			    json_integer(written / SNAPSHOTS_NS));
	return 0;
}

int snapshots_manifest_catalog(json_t *m, struct dd_id **ids, size_t *n)
{
	json_t *cat = json_object_get(m, "catalog"), *x;
	size_t i;

	*ids = NULL;
	*n = 0;
	if (!json_is_array(cat))
		return dd_error_set(-EBADMSG, "the manifest has no catalog");
	*ids = calloc(json_array_size(cat) + 1, sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	json_array_foreach(cat, i, x) {
		if (!json_is_string(x) ||
		    dd_id_from_hex(&(*ids)[i], json_string_value(x)) < 0) {
			free(*ids);
			*ids = NULL;
			return dd_error_set(-EBADMSG, "the manifest has an "
					    "invalid catalog id");
		}
	}
	*n = json_array_size(cat);
	return 0;
}

/* ---- queries ---- */

int snapshots_cursor_parse(struct snapshots_query *q, const char *cursor)
{
	const char *dash = strchr(cursor, '-');
	char num[24];
	uint64_t ns;
	struct dd_id raw;

	if (!dash || dash == cursor || (size_t)(dash - cursor) >= sizeof(num) ||
	    strlen(dash + 1) != DD_ID_HEX_LEN ||
	    dd_id_from_hex(&raw, dash + 1) < 0)
		return dd_error_set(-EINVAL, "invalid cursor: give the "
				    "'cursor' of the last item of a page");
	memcpy(num, cursor, (size_t)(dash - cursor));
	num[dash - cursor] = '\0';
	if (dd_parse_u64(num, &ns) < 0 || ns > INT64_MAX)
		return dd_error_set(-EINVAL, "invalid cursor: give the "
				    "'cursor' of the last item of a page");
	q->have_after = true;
	q->after_ns = (int64_t)ns;
	dd_id_to_hex(q->after_id, &raw);
	return 0;
}

/* Under the read lock: copies of the page's index entries, in order. */
static size_t snap_page_pick(struct snapshots *s,
			     const struct snapshots_query *q, struct snap *out)
{
	size_t n = 0, i;

	if (!q->newest_first) {
		i = q->have_after ? snap_bound(s, q->after_ns, q->after_id,
					       false) : 0;
		for (; i < s->n && n < q->limit; i++)
			if (!q->client || !strcmp(s->v[i].client, q->client))
				out[n++] = s->v[i];
		return n;
	}
	i = q->have_after ? snap_bound(s, q->after_ns, q->after_id, true) :
			    s->n;
	for (; i > 0 && n < q->limit; i--)
		if (!q->client || !strcmp(s->v[i - 1].client, q->client))
			out[n++] = s->v[i - 1];
	return n;
}

/* What the index knows of a snapshot whose manifest cannot be read: the
 * item keeps its place in the list, marked damaged. */
static json_t *snap_damaged_item(const struct snap *e, int rc)
{
	char t[32];

	dd_format_time(t, e->unix_time);
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:s}",
			 "id", e->id, "client", e->client, "time", t,
			 "unix_time", (json_int_t)e->unix_time,
			 "bytes_total", (json_int_t)e->bytes_total,
			 "damaged", 1, "error", log_reason(rc));
}

/* One listed item: the manifest without its catalog, with its place. 0
 * and nothing appended if the snapshot was removed meanwhile. */
static int snap_summary(struct snapshots *s, const struct snap *e,
			struct dd_buf *b, bool comma)
{
	json_t *m = NULL;
	char cursor[24 + DD_ID_HEX_LEN + 1], *text = NULL;
	size_t tlen;
	int rc;

	dd_error_clear();
	rc = snap_read(s, e->id, &m);
	if (rc == -ENOENT)
		return 0;
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		log_warning("listing snapshot %s: %s", e->id, log_reason(rc));
		m = snap_damaged_item(e, rc);
		if (!m)
			return -ENOMEM;
	}
	json_object_set_new(m, "catalog_chunks", json_integer((json_int_t)
							      e->ncatalog));
	json_object_del(m, "catalog");
	/* An encrypted snapshot's sealed part can be megabytes: a summary
	 * only says it is there (docs/ENCRYPTION.md). */
	if (json_object_get(m, "sealed")) {
		json_object_del(m, "sealed");
		json_object_set_new(m, "encrypted", json_true());
	}
	json_object_set_new(m, "unix_written",
			    json_integer(e->written_ns / SNAPSHOTS_NS));
	snprintf(cursor, sizeof(cursor), "%lld-%s", (long long)e->written_ns,
		 e->id);
	json_object_set_new(m, "cursor", json_string(cursor));
	rc = snap_dump(m, &text, &tlen);
	json_decref(m);
	if (rc == 0 && comma)
		rc = dd_buf_append(b, ",", 1);
	if (rc == 0)
		rc = dd_buf_append(b, text, tlen);
	free(text);
	return rc;
}

int snapshots_list(struct snapshots *s, const struct snapshots_query *q,
		   char **out, size_t *out_len)
{
	struct snap *page;
	struct dd_buf b;
	size_t n, i, before;
	int rc;

	*out = NULL;
	*out_len = 0;
	assert(q->limit >= 1 && q->limit <= SNAPSHOTS_PAGE_MAX);
	page = malloc(q->limit * sizeof(*page));
	if (!page)
		return -ENOMEM;
	pthread_rwlock_rdlock(&s->lock);
	n = snap_page_pick(s, q, page);
	pthread_rwlock_unlock(&s->lock);
	dd_buf_init(&b, 0);
	rc = dd_buf_append(&b, "[", 1);
	before = b.len;
	for (i = 0; rc == 0 && i < n; i++)
		rc = snap_summary(s, &page[i], &b, b.len > before);
	free(page);
	if (rc == 0)
		rc = dd_buf_append(&b, "]\n", 2);
	if (rc < 0) {
		dd_buf_release(&b);
		return rc;
	}
	*out = (char *)dd_buf_detach(&b, out_len);
	return 0;
}

int snapshots_adopt(struct snapshots *s, const char *id, const void *data,
		    size_t len);

/* A manifest this directory lacks, taken from the store when it has it
 * (a pool shared by several front-ends). Quiet: a miss stays a miss. */
static void snap_adopt_from_mirror(struct snapshots *s, const char *id)
{
	char name[128];
	uint8_t *data;
	size_t size;

	if (!s->mirror)
		return;
	snap_object(name, sizeof(name), id);
	if (backend_get(s->mirror, name, 16u * 1024 * 1024, &data,
			&size) == 0 &&
	    (!s->adopt_fn || s->adopt_fn(s->adopt_payload, id) >= 0))
		snapshots_adopt(s, id, data, size);
	free(data);
	dd_error_clear();
}

int snapshots_get(struct snapshots *s, const char *id, const char *client,
		  bool admin, char **out, size_t *out_len)
{
	char want[DD_ID_HEX_LEN + 1], *text = NULL;
	const struct snap *e;
	struct dd_id raw;
	json_t *m = NULL;
	size_t tlen = 0;
	bool ok;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (strlen(id) != DD_ID_HEX_LEN || dd_id_from_hex(&raw, id) < 0)
		return -ENOENT;
	dd_id_to_hex(want, &raw);   /* lowercase */
	/* several front-ends: one made through another may not be adopted
	 * yet (frontends.h, every 2 s); the pool has it already */
	if (!snapshots_has(s, want))
		snap_adopt_from_mirror(s, want);
	pthread_rwlock_rdlock(&s->lock);
	e = snap_find(s, want);
	ok = e && snap_visible(e, client, admin);
	pthread_rwlock_unlock(&s->lock);
	if (!ok)
		return -ENOENT;
	rc = snapshots_load(s, want, &m);
	if (rc == 0)
		rc = snap_dump(m, &text, &tlen);
	json_decref(m);
	if (rc < 0)
		return rc;
	*out = realloc(text, tlen + 2);
	if (!*out) {
		free(text);
		return -ENOMEM;
	}
	(*out)[tlen] = '\n';
	(*out)[tlen + 1] = '\0';
	*out_len = tlen + 1;
	return 0;
}

void snapshots_totals(struct snapshots *s, uint64_t *count,
		      uint64_t *bytes_logical, uint64_t *bytes_catalog)
{
	pthread_rwlock_rdlock(&s->lock);
	*count = s->n;
	*bytes_logical = s->bytes_logical;
	*bytes_catalog = s->bytes_catalog;
	pthread_rwlock_unlock(&s->lock);
}

bool snapshots_has(struct snapshots *s, const char *id)
{
	bool have;

	pthread_rwlock_rdlock(&s->lock);
	have = snap_find(s, id) != NULL;
	pthread_rwlock_unlock(&s->lock);
	return have;
}

/* Where `name` is or would go in the sorted set. */
static size_t snap_name_bound(const struct snapshots_names *set,
			      const char *name, bool *found)
{
	size_t lo = 0, hi = set->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(set->v[mid], name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int snapshots_names_add(struct snapshots_names *set, const char *name)
{
	bool found;
	size_t at = snap_name_bound(set, name, &found);

	if (found)
		return 0;
	if (set->n == set->alloc) {
		size_t na = set->alloc ? 2 * set->alloc : 16;
		snapshots_client_name *p = realloc(set->v, na * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		set->v = p;
		set->alloc = na;
	}
	memmove(set->v + at + 1, set->v + at, (set->n - at) * sizeof(*set->v));
	snprintf(set->v[at], sizeof(set->v[at]), "%s", name);
	set->n++;
	return 1;
}

bool snapshots_names_has(const struct snapshots_names *set, const char *name)
{
	bool found;

	snap_name_bound(set, name, &found);
	return found;
}

void snapshots_names_remove(struct snapshots_names *set, const char *name)
{
	bool found;
	size_t at = snap_name_bound(set, name, &found);

	if (!found)
		return;
	memmove(set->v + at, set->v + at + 1,
		(set->n - at - 1) * sizeof(*set->v));
	set->n--;
}

void snapshots_names_release(struct snapshots_names *set)
{
	free(set->v);
	memset(set, 0, sizeof(*set));
}

int snapshots_client_names(struct snapshots *s, struct snapshots_names *out)
{
	size_t i;
	int rc = 0;

	snapshots_names_release(out);
	pthread_rwlock_rdlock(&s->lock);
	for (i = 0; i < s->n && rc >= 0; i++) {
		const char *name = s->v[i].client;

		/* a client's snapshots often come in a row */
		if (out->n && strcmp(out->v[out->n - 1], name) == 0)
			continue;
		rc = snapshots_names_add(out, name);
	}
	pthread_rwlock_unlock(&s->lock);
	if (rc < 0)
		snapshots_names_release(out);
	return rc < 0 ? rc : 0;
}

uint64_t snapshots_count(struct snapshots *s, const char *client)
{
	uint64_t n = 0;
	size_t i;

	pthread_rwlock_rdlock(&s->lock);
	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].client, client) == 0)
			n++;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

int snapshots_foreach(struct snapshots *s, snapshots_each_fn fn,
		      void *payload)
{
	struct snapshots_item it;
	size_t i;
	int rc = 0;

	pthread_rwlock_rdlock(&s->lock);
	for (i = 0; rc == 0 && i < s->n; i++) {
		const struct snap *e = &s->v[i];

		it.id = e->id;
		it.client = e->client;
		it.unix_time = e->unix_time;
		it.written_ns = e->written_ns;
		it.bytes_total = e->bytes_total;
		it.bytes_new = e->bytes_new;
		it.bytes_sent = e->bytes_sent;
		it.catalog_chunks = e->ncatalog;
		it.catalog_bytes = e->catalog_bytes;
		it.paths_digest = e->paths_digest;
		it.group_digest = e->group_digest;
		rc = fn(payload, &it);
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* ---- loading the index ---- */

/* The server's write time of a manifest: `written_ns`; for manifests
 * from before it, `time_end` (the server's clock too) with the file's
 * sub-second mtime when it is the same second; else the mtime. */
static int64_t snap_written(json_t *m, const struct stat *st)
{
	json_t *v = json_object_get(m, "written_ns");
	int64_t mtime = (int64_t)st->st_mtim.tv_sec * SNAPSHOTS_NS +
			st->st_mtim.tv_nsec;
	int64_t end;

	if (json_is_integer(v) && json_integer_value(v) > 0)
		return json_integer_value(v);
	end = snap_parse_time(json_string_value(json_object_get(m,
								"time_end")));
	/* Past 2262 a time in ns overflows: such a file is dated by mtime. */
	if (end < 0 || end > INT64_MAX / SNAPSHOTS_NS)
		return mtime;
	if (end == (int64_t)st->st_mtim.tv_sec)
		return mtime;
	return end * SNAPSHOTS_NS;
}

/* Indexes one manifest file into *e; -EBADMSG with a reason if it is not
 * a manifest we wrote. */
static int snap_load_file(struct snap *e, const char *path, const char *id,
			  const struct stat *st)
{
	json_t *m = NULL, *v;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = snap_read_file(path, id, &m);
	if (rc < 0)
		return rc;
	rc = -EBADMSG;
	v = json_object_get(m, "client");
	if (!json_is_string(v) || !tokens_name_valid(json_string_value(v))) {
		dd_error_set(rc, "no valid client name");
		goto cleanup;
	}
	snprintf(e->client, sizeof(e->client), "%s", json_string_value(v));
	v = json_object_get(m, "unix_time");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		dd_error_set(rc, "no valid unix_time");
		goto cleanup;
	}
	e->unix_time = json_integer_value(v);
	v = json_object_get(m, "bytes_total");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		dd_error_set(rc, "no valid bytes_total");
		goto cleanup;
	}
	e->bytes_total = (uint64_t)json_integer_value(v);
	/* Reported by the agent; absent or odd values count as 0. */
	v = json_object_get(m, "bytes_new");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		e->bytes_new = (uint64_t)json_integer_value(v);
	v = json_object_get(m, "bytes_sent");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		e->bytes_sent = (uint64_t)json_integer_value(v);
	v = json_object_get(m, "catalog_bytes");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		e->catalog_bytes = (uint64_t)json_integer_value(v);
	v = json_object_get(m, "catalog");
	if (!json_is_array(v)) {
		dd_error_set(rc, "no catalog");
		goto cleanup;
	}
	e->ncatalog = json_array_size(v);
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->written_ns = snap_written(m, st);
	rc = snap_digests(e, m);
cleanup:
	json_decref(m);
	return rc;
}

int snapshots_open(struct snapshots **out, const char *repo)
{
	struct snapshots *s;
	struct dirent *de;
	struct snap e;
	struct stat st;
	char path[4400], id[DD_ID_HEX_LEN + 1];
	DIR *d;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snap_rwlock_init(&s->lock);
	snap_rwlock_init(&s->commit_lock);
	pthread_mutex_init(&s->unsure_file_lock, NULL);
	s->unsure_keep_sec = snap_unsure_keep_sec();
	pthread_mutex_init(&s->busy_lock, NULL);
	s->max_per_client = SNAPSHOTS_PER_CLIENT_DEFAULT;
	rc = repo_path(s->dir, sizeof(s->dir), repo, REPO_SNAPSHOTS);
	if (rc < 0)
		goto fail;
	d = opendir(s->dir);
	if (!d) {
		rc = dd_error_set(-errno, "cannot open '%s': %s", s->dir,
				  strerror(errno));
		goto fail;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n != DD_ID_HEX_LEN + 5 ||
		    strcmp(de->d_name + DD_ID_HEX_LEN, ".json") != 0)
			continue;     /* temporary files and the like */
		memcpy(id, de->d_name, DD_ID_HEX_LEN);
		id[DD_ID_HEX_LEN] = '\0';
		snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
		if (!snap_is_hex64(id)) {
			log_warning("ignoring snapshot file '%s': not named "
				    "<id>.json", path);
			continue;
		}
		if (stat(path, &st) < 0)
			continue;     /* gone meanwhile */
		dd_error_clear();
		rc = snap_load_file(&e, path, id, &st);
		if (rc == -ENOMEM) {
			closedir(d);
			goto fail;
		}
		if (rc < 0) {
			log_warning("ignoring snapshot file '%s': %s", path,
				    log_reason(rc));
			continue;
		}
		/* appended, sorted once at the end: inserting each in order
		 * moved half the table a manifest (82% of a start with
		 * 50,000 snapshots) */
		rc = snapshots_reserve(s);
		if (rc < 0) {
			closedir(d);
			goto fail;
		}
		s->v[s->n++] = e;
		s->bytes_logical += e.bytes_total;
		s->bytes_catalog += e.catalog_bytes;
	}
	closedir(d);
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), snap_order_cmp);
	snap_byid_build(s);
	snap_unsure_load(s);
	*out = s;
	return 0;
fail:
	snapshots_free(s);
	return rc;
}

void snapshots_free(struct snapshots *s)
{
	if (!s)
		return;
	free(s->v);
	free(s->byid);
	free(s->unsure);
	free(s->busy);
	pthread_rwlock_destroy(&s->lock);
	pthread_rwlock_destroy(&s->commit_lock);
	pthread_mutex_destroy(&s->busy_lock);
	pthread_mutex_destroy(&s->unsure_file_lock);
	free(s);
}

/* ---- several front-ends on one pool (server/repo/frontends.h) ---- */

int snapshots_adopt(struct snapshots *s, const char *id, const void *data,
		    size_t len)
{
	char path[4200];
	struct snap e;
	struct stat st;
	bool known;
	int rc, pending;

	if (!snap_is_hex64(id))
		return dd_error_set(-EINVAL, "not a snapshot id");
	/* A create of this front-end's own that is not done yet lists or
	 * removes it itself; one that failed leaving it maybe in the pool
	 * has it removed (snapshots_sweep_unsure). */
	pthread_rwlock_rdlock(&s->lock);
	known = snap_find(s, id) != NULL || snap_pending_get(s, id) != 0 ||
		snap_unsure_has(s, id);
	pthread_rwlock_unlock(&s->lock);
	if (known)
		return 0;
	snprintf(path, sizeof(path), "%s/%s.json", s->dir, id);
	rc = dd_write_file_atomic(path, data, len, 0600);
	if (rc == 0 && stat(path, &st) < 0)
		rc = dd_error_set(-errno, "cannot stat '%s'", path);
	if (rc == 0)
		rc = snap_load_file(&e, path, id, &st);
	if (rc < 0) {
		unlink(path);
		return rc;
	}
	pthread_rwlock_wrlock(&s->lock);
	pending = snap_pending_get(s, id);
	if (pending == SNAP_PENDING_REFUSED || snap_unsure_has(s, id))
		unlink(path);   /* written after its create removed its own */
	known = pending != 0 || snap_find(s, id) != NULL ||
		snap_unsure_has(s, id);
	rc = known ? 0 : snapshots_insert(s, &e);
	pthread_rwlock_unlock(&s->lock);
	return rc < 0 ? rc : !known;
}

int snapshots_drop_local(struct snapshots *s, const char *id,
			 int64_t older_than_ns)
{
	char path[4200];
	const struct snap *e;
	int rc = 0;

	pthread_rwlock_wrlock(&s->lock);
	e = snap_find(s, id);
	/* one written lately may still be on its way to the pool */
	if (e && e->written_ns < older_than_ns) {
		snprintf(path, sizeof(path), "%s/%s.json", s->dir, id);
		unlink(path);
		snap_take(s, e);
		rc = 1;
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

