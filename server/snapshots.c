/*
 * snapshots.c - see snapshots.h.
 */
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
#include <zstd.h>

#include "catalog.h"
#include "log.h"
#include "proto.h"
#include "repo.h"
#include "catsource.h"
#include "snapshots.h"
#include "tokens.h"

/* A manifest with the most paths and catalog ids is ~10 MB. */
#define SNAPSHOTS_FILE_MAX (32u * 1024 * 1024)
/* Up to year 9999, so times always format. */
#define SNAPSHOTS_TIME_MAX 253402300799LL

struct snap {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	int64_t unix_time;
	int64_t written_ns;   /* when the manifest was written: orders
			       * snapshots started in the same second */
	uint64_t bytes_total;
	uint64_t catalog_bytes;  /* plain bytes of its catalog chunks */
	uint64_t bytes_new;   /* agent-reported, for status reports */
	uint64_t bytes_sent;
	char *json;           /* compact manifest text, no newline */
	size_t json_len;
};

struct snapshots {
	char dir[4096];
	pthread_rwlock_t lock;
	/* Held shared by each create from before it checks its chunks until
	 * its manifest is visible; snapshots_barrier() takes it exclusively. */
	pthread_rwlock_t commit_lock;
	struct snap *v;       /* oldest first: (unix_time, written_ns, id) */
	size_t n, alloc;
	uint64_t bytes_logical;
	uint64_t bytes_catalog;
};

static int snap_cmp(const struct snap *a, const struct snap *b)
{
	if (a->unix_time != b->unix_time)
		return a->unix_time < b->unix_time ? -1 : 1;
	if (a->written_ns != b->written_ns)
		return a->written_ns < b->written_ns ? -1 : 1;
	return strcmp(a->id, b->id);
}

/* With the write lock held: inserts *e in order; takes its json. */
static int snapshots_insert(struct snapshots *s, const struct snap *e)
{
	size_t lo = 0, hi = s->n;

	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 64;
		struct snap *v = realloc(s->v, na * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->alloc = na;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (snap_cmp(&s->v[mid], e) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&s->v[lo + 1], &s->v[lo], (s->n - lo) * sizeof(*e));
	s->v[lo] = *e;
	s->n++;
	s->bytes_logical += e->bytes_total;
	s->bytes_catalog += e->catalog_bytes;
	return 0;
}

/* ---- JSON field checks ---- */

static bool snap_is_hex64(const char *s)
{
	size_t i;

	if (strlen(s) != DD_ID_HEX_LEN)
		return false;
	for (i = 0; i < DD_ID_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* An integer >= 0 (and <= max); missing is `def` when optional. */
static int snap_get_uint(json_t *o, const char *key, bool required,
			 int64_t max, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (required)
			return dd_error_set(-EINVAL, "missing field '%s'", key);
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return dd_error_set(-EINVAL, "field '%s' must be an integer",
				    key);
	if (json_integer_value(v) < 0 || json_integer_value(v) > max)
		return dd_error_set(-EINVAL, "field '%s' is out of range", key);
	*out = json_integer_value(v);
	return 0;
}

/* A request, validated. */
struct snap_request {
	const char *host;
	json_t *paths;
	struct dd_id *catalog;
	size_t ncatalog;
	const char *parent;        /* NULL for none */
	int64_t time_start;
	int64_t bytes_new, chunks_new, bytes_sent;
};

static int snap_parse_request(struct snap_request *rq, json_t *root)
{
	json_t *v, *item;
	size_t i, n;
	int rc;

	memset(rq, 0, sizeof(*rq));
	if (!json_is_object(root))
		return dd_error_set(-EINVAL, "request must be a JSON object");

	v = json_object_get(root, "host");
	if (!json_is_string(v))
		return dd_error_set(-EINVAL, "field 'host' must be a string");
	n = json_string_length(v);
	if (n < 1 || n > SNAPSHOTS_HOST_MAX)
		return dd_error_set(-EINVAL, "field 'host' must be 1 to %d bytes",
				    SNAPSHOTS_HOST_MAX);
	rq->host = json_string_value(v);

	v = json_object_get(root, "paths");
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > SNAPSHOTS_PATHS_MAX)
		return dd_error_set(-EINVAL, "field 'paths' must be an array "
				    "of 1 to %d paths", SNAPSHOTS_PATHS_MAX);
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) || json_string_length(item) < 1 ||
		    json_string_length(item) > SNAPSHOTS_PATH_MAX ||
		    json_string_value(item)[0] != '/')
			return dd_error_set(-EINVAL, "paths[%zu] must be an "
					    "absolute path of at most %d bytes",
					    i, SNAPSHOTS_PATH_MAX);
	}
	rq->paths = v;

	v = json_object_get(root, "catalog");
	if (!json_is_array(v) || json_array_size(v) < 1 ||
	    json_array_size(v) > DD_MAX_CATALOG_CHUNKS)
		return dd_error_set(-EINVAL, "field 'catalog' must be an array "
				    "of 1 to %u chunk ids",
				    DD_MAX_CATALOG_CHUNKS);
	rq->ncatalog = json_array_size(v);
	rq->catalog = malloc(rq->ncatalog * sizeof(*rq->catalog));
	if (!rq->catalog)
		return -ENOMEM;
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) ||
		    json_string_length(item) != DD_ID_HEX_LEN ||
		    dd_id_from_hex(&rq->catalog[i], json_string_value(item)) < 0)
			return dd_error_set(-EINVAL, "catalog[%zu] is not a chunk "
					    "id (64 hex digits)", i);
	}

	v = json_object_get(root, "parent");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || !snap_is_hex64(json_string_value(v)))
			return dd_error_set(-EINVAL, "field 'parent' must be null "
					    "or a snapshot id");
		rq->parent = json_string_value(v);
	}

	rc = snap_get_uint(root, "time_start", true, SNAPSHOTS_TIME_MAX,
			   &rq->time_start);
	if (rc == 0)
		rc = snap_get_uint(root, "bytes_new", false, INT64_MAX,
				   &rq->bytes_new);
	if (rc == 0)
		rc = snap_get_uint(root, "chunks_new", false, INT64_MAX,
				   &rq->chunks_new);
	if (rc == 0)
		rc = snap_get_uint(root, "bytes_sent", false, INT64_MAX,
				   &rq->bytes_sent);
	return rc;
}

struct snap_counts {
	uint64_t files, dirs, symlinks, bytes_total, chunks_total;
};

/* Reads every entry, counts, and checks each file chunk is stored with
 * the length the catalog claims. */
static int snap_check_catalog(struct store *st, const struct snap_request *rq,
			      struct snap_counts *cnt)
{
	struct catsource *src = NULL;
	struct dd_entry e;
	struct dd_chunk_loc loc;
	char hex[DD_ID_HEX_LEN + 1], path[200];
	uint64_t i;
	int rc;

	memset(cnt, 0, sizeof(*cnt));
	rc = catsource_new(&src, st, rq->catalog, rq->ncatalog);
	if (rc < 0)
		goto cleanup;
	for (;;) {
		rc = catsource_next(src, &e);
		if (rc == 0)
			break;
		if (rc < 0) {
			/* A missing or unreadable chunk keeps its message. */
			if (rc == -EBADMSG)
				rc = log_wrap(-EINVAL, "invalid catalog");
			goto cleanup;
		}
		switch (e.type) {
		case DD_ENTRY_FILE:
			cnt->files++;
			cnt->bytes_total += e.size;
			cnt->chunks_total += e.nchunks;
			break;
		case DD_ENTRY_DIR:
			cnt->dirs++;
			break;
		case DD_ENTRY_SYMLINK:
			cnt->symlinks++;
			break;
		case DD_ENTRY_HARDLINK:  /* catalog version 2: not counted */
		case DD_ENTRY_FIFO:
		case DD_ENTRY_CHR:
		case DD_ENTRY_BLK:
			break;
		default:
			rc = dd_error_set(-EINVAL, "invalid catalog: unknown "
					  "entry type %u", e.type);
			goto cleanup;
		}
		for (i = 0; i < e.nchunks; i++) {
			const struct dd_chunk_ref *ref = &e.chunks[i];

			rc = store_lookup(st, &ref->id, &loc);
			if (rc == -ENOENT) {
				dd_id_to_hex(hex, &ref->id);
				rc = dd_error_set(-ENOENT, "snapshot references "
						  "missing chunk %s", hex);
				goto cleanup;
			}
			if (rc < 0)
				goto cleanup;
			if (loc.plain_len != ref->plain_len) {
				dd_id_to_hex(hex, &ref->id);
				log_sanitize(path, sizeof(path), e.path,
					     e.path_len);
				rc = dd_error_set(-EINVAL, "invalid catalog: "
						  "entry '%s' gives chunk %s "
						  "length %u, stored length "
						  "is %u", path, hex,
						  ref->plain_len,
						  loc.plain_len);
				goto cleanup;
			}
		}
	}
	rc = 0;
cleanup:
	catsource_free(src);
	return rc;
}

/* ---- create ---- */

static int snap_dump(json_t *m, char **out, size_t *out_len)
{
	char *text = json_dumps(m, JSON_COMPACT);

	if (!text)
		return -ENOMEM;
	*out = text;
	*out_len = strlen(text);
	return 0;
}

/* Writes text + "\n" to path durably. */
static int snap_write(const char *path, const char *text, size_t len)
{
	char *buf = malloc(len + 1);
	int rc;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, text, len);
	buf[len] = '\n';
	dd_error_clear();
	rc = dd_write_file_atomic(path, buf, len + 1, 0600);
	free(buf);
	/* Its message names the file. */
	if (rc == -ENOSPC || rc == -EDQUOT)
		rc = -ENOSPC;
	else if (rc < 0 && rc != -ENOMEM)
		rc = -EIO;
	return rc;
}

int snapshots_create(struct snapshots *s, struct store *st,
		     const char *client, const uint8_t *body, size_t len,
		     char **out, size_t *out_len)
{
	struct snap_request rq;
	struct snap_counts cnt;
	struct snap e;
	struct dd_chunk_loc loc;
	json_t *root = NULL, *m = NULL, *cat = NULL;
	json_error_t jerr;
	uint8_t raw[32];
	uint64_t catalog_bytes = 0;
	struct timespec now;
	char hex[DD_ID_HEX_LEN + 1], t0[32], t1[32], path[4200];
	char *text = NULL;
	size_t i, tlen = 0;
	int rc;

	*out = NULL;
	*out_len = 0;
	memset(&rq, 0, sizeof(rq));
	memset(&e, 0, sizeof(e));
	if (!body || len == 0)
		return dd_error_set(-EINVAL, "empty request body");
	pthread_rwlock_rdlock(&s->commit_lock);
	root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
			  &jerr);
	if (!root) {
		char clean[200];

		log_sanitize(clean, sizeof(clean), jerr.text, (size_t)-1);
		rc = dd_error_set(-EINVAL, "invalid JSON: %s (line %d)", clean,
				  jerr.line);
		goto cleanup;
	}
	rc = snap_parse_request(&rq, root);
	if (rc < 0)
		goto cleanup;

	/* Every catalog chunk must be stored before we read any. */
	cat = json_array();
	if (!cat) {
		rc = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < rq.ncatalog; i++) {
		dd_id_to_hex(hex, &rq.catalog[i]);
		rc = store_lookup(st, &rq.catalog[i], &loc);
		if (rc == -ENOENT) {
			rc = dd_error_set(-ENOENT, "snapshot references missing "
					  "chunk %s", hex);
			goto cleanup;
		}
		if (rc < 0)
			goto cleanup;
		catalog_bytes += loc.plain_len;
		if (json_array_append_new(cat, json_string(hex)) < 0) {
			rc = -ENOMEM;
			goto cleanup;
		}
	}
	rc = snap_check_catalog(st, &rq, &cnt);
	if (rc < 0)
		goto cleanup;

	rc = dd_random(raw, sizeof(raw));
	if (rc < 0)
		goto cleanup;
	dd_hex_encode(e.id, raw, sizeof(raw));
	snprintf(e.client, sizeof(e.client), "%s", client);
	e.unix_time = rq.time_start;
	e.bytes_total = cnt.bytes_total;
	e.catalog_bytes = catalog_bytes;
	e.bytes_new = (uint64_t)rq.bytes_new;
	e.bytes_sent = (uint64_t)rq.bytes_sent;
	dd_format_time(t0, rq.time_start);
	dd_format_time(t1, dd_now());

	m = json_pack("{s:i, s:s, s:s, s:s, s:O, s:s, s:I, s:s, s:o, s:O, "
		      "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		      "version", 1,
		      "id", e.id,
		      "client", client,
		      "host", rq.host,
		      "paths", rq.paths,
		      "time", t0,
		      "unix_time", (json_int_t)rq.time_start,
		      "time_end", t1,
		      "parent", rq.parent ? json_string(rq.parent) : json_null(),
		      "catalog", cat,
		      "catalog_bytes", (json_int_t)catalog_bytes,
		      "files", (json_int_t)cnt.files,
		      "dirs", (json_int_t)cnt.dirs,
		      "symlinks", (json_int_t)cnt.symlinks,
		      "bytes_total", (json_int_t)cnt.bytes_total,
		      "chunks_total", (json_int_t)cnt.chunks_total,
		      "bytes_new", (json_int_t)rq.bytes_new,
		      "chunks_new", (json_int_t)rq.chunks_new,
		      "bytes_sent", (json_int_t)rq.bytes_sent);
	if (!m) {
		rc = -ENOMEM;
		goto cleanup;
	}
	rc = snap_dump(m, &text, &tlen);
	if (rc < 0)
		goto cleanup;
	snprintf(path, sizeof(path), "%s/%s.json", s->dir, e.id);
	rc = snap_write(path, text, tlen);
	if (rc < 0)
		goto cleanup;

	/* Durable: now visible. */
	clock_gettime(CLOCK_REALTIME, &now);
	e.written_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	e.json = strdup(text);
	if (!e.json) {
		rc = -ENOMEM;
		goto cleanup;
	}
	e.json_len = tlen;
	pthread_rwlock_wrlock(&s->lock);
	rc = snapshots_insert(s, &e);
	pthread_rwlock_unlock(&s->lock);
	if (rc < 0) {
		free(e.json);
		goto cleanup;
	}
	*out = text;
	*out_len = tlen;
	text = NULL;
cleanup:
	pthread_rwlock_unlock(&s->commit_lock);
	free(text);
	json_decref(m);
	json_decref(cat);
	json_decref(root);
	free(rq.catalog);
	return rc;
}

int snapshots_barrier(struct snapshots *s, int (*fn)(void *payload),
		      void *payload)
{
	int rc;

	pthread_rwlock_wrlock(&s->commit_lock);
	rc = fn(payload);
	pthread_rwlock_unlock(&s->commit_lock);
	return rc;
}

int snapshots_remove(struct snapshots *s, const char *id)
{
	char want[DD_ID_HEX_LEN + 1], path[4200];
	struct dd_id raw;
	size_t i;
	int rc = -ENOENT;

	if (strlen(id) != DD_ID_HEX_LEN || dd_id_from_hex(&raw, id) < 0)
		return -ENOENT;
	dd_id_to_hex(want, &raw);
	pthread_rwlock_wrlock(&s->lock);
	for (i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].id, want) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s.json", s->dir, want);
		if (unlink(path) < 0 && errno != ENOENT) {
			rc = dd_error_set(-EIO, "cannot remove '%s': %s", path,
					  strerror(errno));
			break;
		}
		rc = dd_fsync_dir(s->dir);
		if (rc < 0 && rc != -ENOMEM)
			rc = -EIO;
		/* Gone from disk (whether or not the directory sync worked):
		 * gone from the list too. */
		s->bytes_logical -= s->v[i].bytes_total;
		s->bytes_catalog -= s->v[i].catalog_bytes;
		free(s->v[i].json);
		memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
		s->n--;
		break;
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* ---- queries ---- */

static bool snap_visible(const struct snap *e, const char *client, bool admin)
{
	return admin || strcmp(e->client, client) == 0;
}

int snapshots_list(struct snapshots *s, const char *client, bool admin,
		   char **out, size_t *out_len)
{
	struct dd_buf b;
	size_t i, nout = 0;
	int rc = 0;

	*out = NULL;
	*out_len = 0;
	dd_buf_init(&b, 0);
	pthread_rwlock_rdlock(&s->lock);
	rc = dd_buf_append(&b, "[", 1);
	for (i = 0; rc == 0 && i < s->n; i++) {
		if (!snap_visible(&s->v[i], client, admin))
			continue;
		if (nout++)
			rc = dd_buf_append(&b, ",", 1);
		if (rc == 0)
			rc = dd_buf_append(&b, s->v[i].json, s->v[i].json_len);
	}
	pthread_rwlock_unlock(&s->lock);
	if (rc == 0)
		rc = dd_buf_append(&b, "]\n", 2);
	if (rc < 0) {
		dd_buf_release(&b);
		return rc;
	}
	*out = (char *)dd_buf_detach(&b, out_len);
	return 0;
}

int snapshots_get(struct snapshots *s, const char *id, const char *client,
		  bool admin, char **out, size_t *out_len)
{
	char want[DD_ID_HEX_LEN + 1];
	struct dd_id raw;
	size_t i;
	int rc = -ENOENT;

	*out = NULL;
	*out_len = 0;
	if (strlen(id) != DD_ID_HEX_LEN || dd_id_from_hex(&raw, id) < 0)
		return -ENOENT;
	dd_id_to_hex(want, &raw);   /* lowercase */
	pthread_rwlock_rdlock(&s->lock);
	for (i = 0; i < s->n; i++) {
		const struct snap *e = &s->v[i];

		if (strcmp(e->id, want) != 0)
			continue;
		if (!snap_visible(e, client, admin))
			break;
		*out = malloc(e->json_len + 2);
		if (!*out) {
			rc = -ENOMEM;
			break;
		}
		memcpy(*out, e->json, e->json_len);
		(*out)[e->json_len] = '\n';
		(*out)[e->json_len + 1] = '\0';
		*out_len = e->json_len + 1;
		rc = 0;
		break;
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
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
		it.json = e->json;
		it.json_len = e->json_len;
		rc = fn(payload, &it);
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* ---- loading ---- */

/* Loads one manifest file into *e; -EBADMSG with a reason if it is not a
 * manifest we wrote. `written_ns` is its mtime, which orders snapshots
 * started in the same second as they were created. */
static int snap_load_file(struct snap *e, const char *path, const char *id,
			  int64_t written_ns)
{
	uint8_t *data = NULL;
	size_t len;
	json_t *m = NULL, *v;
	json_error_t jerr;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = dd_read_file(path, SNAPSHOTS_FILE_MAX, &data, &len);
	if (rc < 0)
		return rc;
	m = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	free(data);
	if (!m)
		return dd_error_set(-EBADMSG, "%s (line %d)", jerr.text,
				    jerr.line);
	rc = -EBADMSG;
	if (!json_is_object(m) ||
	    !json_is_integer(json_object_get(m, "version")) ||
	    json_integer_value(json_object_get(m, "version")) != 1) {
		dd_error_set(rc, "not a version 1 manifest");
		goto cleanup;
	}
	v = json_object_get(m, "id");
	if (!json_is_string(v) || strcmp(json_string_value(v), id) != 0) {
		dd_error_set(rc, "its id does not match its file name");
		goto cleanup;
	}
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
	if (!json_is_array(json_object_get(m, "catalog"))) {
		dd_error_set(rc, "no catalog");
		goto cleanup;
	}
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->written_ns = written_ns;
	rc = snap_dump(m, &e->json, &e->json_len);
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
	pthread_rwlock_init(&s->lock, NULL);
	pthread_rwlock_init(&s->commit_lock, NULL);
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
		rc = snap_load_file(&e, path, id,
				    (int64_t)st.st_mtim.tv_sec * 1000000000 +
				    st.st_mtim.tv_nsec);
		if (rc == -ENOMEM) {
			closedir(d);
			goto fail;
		}
		if (rc < 0) {
			log_warning("ignoring snapshot file '%s': %s", path,
				    log_reason(rc));
			continue;
		}
		rc = snapshots_insert(s, &e);
		if (rc < 0) {
			free(e.json);
			closedir(d);
			goto fail;
		}
	}
	closedir(d);
	*out = s;
	return 0;
fail:
	snapshots_free(s);
	return rc;
}

void snapshots_free(struct snapshots *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		free(s->v[i].json);
	free(s->v);
	pthread_rwlock_destroy(&s->lock);
	pthread_rwlock_destroy(&s->commit_lock);
	free(s);
}
