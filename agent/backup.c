/*
 * backup.c - `dedup-agent backup [--json] PATH...`
 *
 * Walks the given paths, cuts every regular file into content-defined
 * chunks, hands the chunks to the upload queue (which sends only what the
 * server lacks), records every entry in the catalog, uploads the catalog
 * as chunks too, and finally asks the server to create the snapshot.
 *
 * The catalog is cut while it is being written: as soon as max_size bytes
 * are pending, the chunker's contract holds and a chunk can be cut and
 * queued. This gives the same chunks as cutting the finished catalog, and
 * keeps memory bounded however many files the tree holds. The snapshot is
 * only created after every queued chunk (data and catalog) was flushed and
 * acknowledged.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "catalog.h"
#include "chunker.h"
#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "parent.h"
#include "repo_config.h"
#include "upload.h"
#include "walk.h"

/* Plain bytes held in all upload batches together; one batch is this
 * divided by (workers + 1), at most BACKUP_BATCH_BYTES. */
#define BACKUP_BATCH_BUDGET (48u * 1024 * 1024)
#define BACKUP_BATCH_BYTES (32u * 1024 * 1024)
#define BACKUP_WORKERS_MAX 3
#define BACKUP_BATCH_IDS 4096u
#define BACKUP_BUNDLE_BYTES (32u * 1024 * 1024)
#define BACKUP_BUNDLE_MIN (DD_CHUNK_SIZE_LIMIT + 1024u * 1024)
#define BACKUP_ZSTD_LEVEL 3
/* Read this much at a time beyond the max_size window. */
#define BACKUP_READ_BLOCK (8u * 1024 * 1024)
/* Parent catalog chunks fetched per request. */
#define BACKUP_PARENT_FETCH 16u

struct backup {
	struct client *client;
	struct upload_queue *uq;
	struct dd_chunker chunker;
	char host[HOST_NAME_MAX + 1];
	struct parent *parent;         /* NULL: read every file */
	json_t *parent_manifest;

	uint8_t *rbuf;                 /* file read window */
	size_t rcap;
	struct dd_chunk_ref *refs;     /* chunks of the current file */
	size_t nrefs, refs_alloc;

	struct dd_buf cat;             /* catalog bytes not yet cut */
	struct dd_id *cat_ids;         /* catalog chunks, in order */
	size_t ncat, cat_alloc;

	uint64_t files, dirs, symlinks;
	uint64_t bytes_total, chunks_total;
	struct walk_stats ws;
};

/* ---- catalog ---- */

static int backup_push_catalog_id(struct backup *b, const struct dd_id *id)
{
	if (b->ncat >= DD_MAX_CATALOG_CHUNKS)
		return dd_error_set(-E2BIG,
				    "the catalog exceeds %u chunks; back up fewer files at once",
				    DD_MAX_CATALOG_CHUNKS);
	if (b->ncat == b->cat_alloc) {
		size_t a = b->cat_alloc ? b->cat_alloc * 2 : 64;
		struct dd_id *p = realloc(b->cat_ids, a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		b->cat_ids = p;
		b->cat_alloc = a;
	}
	b->cat_ids[b->ncat++] = *id;
	return 0;
}

/* Cuts and queues catalog chunks: while a full max_size window is pending,
 * or everything when `final`. */
static int backup_catalog_cut(struct backup *b, bool final)
{
	size_t want = final ? 1 : b->chunker.params.max_size;
	size_t off = 0;
	int rc = 0;

	while (b->cat.len - off >= want) {
		const uint8_t *p = b->cat.data + off;
		size_t n = dd_chunker_cut(&b->chunker, p, b->cat.len - off);
		struct dd_id id;

		dd_sha256(&id, p, n);
		if ((rc = upload_queue_add(b->uq, &id, p, n)) < 0 ||
		    (rc = backup_push_catalog_id(b, &id)) < 0)
			break;
		off += n;
	}
	if (off > 0) {
		memmove(b->cat.data, b->cat.data + off, b->cat.len - off);
		b->cat.len -= off;
	}
	return rc;
}

static void backup_entry_from_stat(struct dd_entry *e, uint8_t type,
				   const char *path, size_t path_len,
				   const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->ctime_sec = st->st_ctim.tv_sec;
	e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	e->path = path;
	e->path_len = (uint32_t)path_len;
}

static int backup_catalog_add(struct backup *b, const struct dd_entry *e)
{
	int rc = dd_catalog_add(&b->cat, e);

	if (rc < 0)
		return agent_error_wrap(rc, "cannot record '/%.*s' in the catalog",
					(int)e->path_len, e->path);
	return backup_catalog_cut(b, false);
}

/* ---- walk callbacks ---- */

static int backup_push_ref(struct backup *b, const struct dd_id *id,
			   size_t len)
{
	if (b->nrefs == b->refs_alloc) {
		size_t a = b->refs_alloc ? b->refs_alloc * 2 : 256;
		struct dd_chunk_ref *p = realloc(b->refs, a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		b->refs = p;
		b->refs_alloc = a;
	}
	b->refs[b->nrefs].id = *id;
	b->refs[b->nrefs].plain_len = (uint32_t)len;
	b->nrefs++;
	return 0;
}

static int backup_file(void *payload, const char *path, size_t path_len,
		       int fd, const struct stat *st)
{
	struct backup *b = payload;
	size_t max = b->chunker.params.max_size;
	size_t start = 0, avail = 0;
	uint64_t size = 0;
	bool eof = false;
	struct dd_entry e;
	int rc;

	b->nrefs = 0;
	for (;;) {
		struct dd_id id;
		size_t n;

		/* Keep at least max_size bytes ahead unless the file ends. */
		if (!eof && avail < max) {
			ssize_t got;

			if (start > 0 && avail > 0)
				memmove(b->rbuf, b->rbuf + start, avail);
			start = 0;
			got = dd_read_full(fd, b->rbuf + avail, b->rcap - avail);
			if (got < 0) {
				agent_warn("cannot read '/%s': %s; skipped",
					   path, strerror((int)-got));
				b->ws.skipped_error++;
				return 0;
			}
			if ((size_t)got < b->rcap - avail)
				eof = true;
			avail += (size_t)got;
		}
		if (avail == 0)
			break;
		n = dd_chunker_cut(&b->chunker, b->rbuf + start, avail);
		dd_sha256(&id, b->rbuf + start, n);
		if ((rc = upload_queue_add(b->uq, &id, b->rbuf + start, n)) < 0 ||
		    (rc = backup_push_ref(b, &id, n)) < 0)
			return rc;
		start += n;
		avail -= n;
		size += n;
	}

	backup_entry_from_stat(&e, DD_ENTRY_FILE, path, path_len, st);
	e.size = size;
	e.nchunks = b->nrefs;
	e.chunks = b->refs;
	if ((rc = backup_catalog_add(b, &e)) < 0)
		return rc;
	b->files++;
	b->bytes_total += size;
	b->chunks_total += b->nrefs;
	return 0;
}

/* A file the parent snapshot has with the same size, times, inode and
 * mode: record the parent's chunk list without opening the file. */
static int backup_file_known(void *payload, const char *path, size_t path_len,
			     const struct stat *st)
{
	struct backup *b = payload;
	const struct dd_chunk_ref *chunks;
	uint64_t nchunks;
	struct dd_entry e;
	int rc;

	if (!b->parent ||
	    parent_match(b->parent, path, path_len, st, &chunks, &nchunks) <= 0)
		return 0;
	backup_entry_from_stat(&e, DD_ENTRY_FILE, path, path_len, st);
	e.size = (uint64_t)st->st_size;
	e.nchunks = nchunks;
	e.chunks = chunks;
	if ((rc = backup_catalog_add(b, &e)) < 0)
		return rc;
	b->files++;
	b->bytes_total += e.size;
	b->chunks_total += nchunks;
	return 1;
}

static int backup_dir(void *payload, const char *path, size_t path_len,
		      const struct stat *st)
{
	struct backup *b = payload;
	struct dd_entry e;
	int rc;

	backup_entry_from_stat(&e, DD_ENTRY_DIR, path, path_len, st);
	if ((rc = backup_catalog_add(b, &e)) < 0)
		return rc;
	b->dirs++;
	return 0;
}

static int backup_symlink(void *payload, const char *path, size_t path_len,
			  const struct stat *st, const char *target,
			  size_t target_len)
{
	struct backup *b = payload;
	struct dd_entry e;
	int rc;

	backup_entry_from_stat(&e, DD_ENTRY_SYMLINK, path, path_len, st);
	e.link = target;
	e.link_len = (uint32_t)target_len;
	if ((rc = backup_catalog_add(b, &e)) < 0)
		return rc;
	b->symlinks++;
	return 0;
}

static const struct walk_ops backup_walk_ops = {
	.file_known = backup_file_known,
	.file = backup_file,
	.dir = backup_dir,
	.symlink = backup_symlink,
};

/* ---- the verb ---- */

static void backup_release(struct backup *b)
{
	upload_queue_free(b->uq);
	parent_free(b->parent);
	json_decref(b->parent_manifest);
	free(b->rbuf);
	free(b->refs);
	free(b->cat_ids);
	dd_buf_release(&b->cat);
}

/* Finds the parent snapshot (same host, same paths) and opens its
 * catalog. Without one, every file is read. */
static int backup_find_parent(struct backup *b, char *const *roots,
			      size_t nroots)
{
	int rc = parent_find(&b->parent_manifest, b->client, b->host, roots,
			     nroots);

	if (rc < 0 || !b->parent_manifest)
		return rc;
	return parent_open(&b->parent, b->client, b->parent_manifest,
			   BACKUP_PARENT_FETCH);
}

static int backup_setup(struct backup *b, struct client *c,
			const struct settings *s)
{
	struct repo_config cfg;
	struct upload_limits lim = {
		.batch_ids = BACKUP_BATCH_IDS,
		.bundle_bytes = BACKUP_BUNDLE_BYTES,
		.level = BACKUP_ZSTD_LEVEL,
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *env;
	uint64_t n;
	int rc;

	/* Compression is the costly part of a first backup: one worker a
	 * core, at least two so the network wait overlaps with work. */
	lim.workers = ncpu < 2 ? 2 : ncpu > BACKUP_WORKERS_MAX ?
		BACKUP_WORKERS_MAX : (size_t)ncpu;
	/* Overrides for benchmarks. */
	if ((env = getenv("DEDUP_UPLOAD_WORKERS")) &&
	    dd_parse_u64(env, &n) == 0 && n >= 1 && n <= 16)
		lim.workers = (size_t)n;
	if ((env = getenv("DEDUP_ZSTD_LEVEL")) &&
	    dd_parse_u64(env, &n) == 0 && n >= 1 && n <= 19)
		lim.level = (int)n;
	lim.batch_bytes = BACKUP_BATCH_BUDGET / (lim.workers + 1);
	if (lim.batch_bytes > BACKUP_BATCH_BYTES)
		lim.batch_bytes = BACKUP_BATCH_BYTES;

	b->client = c;
	if (gethostname(b->host, sizeof(b->host) - 1) < 0)
		snprintf(b->host, sizeof(b->host), "unknown");
	dd_buf_init(&b->cat, 0);
	if ((rc = repo_config_fetch(&cfg, c)) < 0)
		return rc;
	if ((rc = dd_chunker_init(&b->chunker, &cfg.chunker)) < 0)
		return agent_error_wrap(rc, "server '%s' sent unusable chunker parameters",
					client_server(c));
	if (cfg.max_ids_per_query && lim.batch_ids > cfg.max_ids_per_query)
		lim.batch_ids = cfg.max_ids_per_query;
	if (cfg.max_upload_body && lim.bundle_bytes > cfg.max_upload_body)
		lim.bundle_bytes = cfg.max_upload_body;
	/* One bundle must hold the largest possible chunk. */
	if (lim.bundle_bytes < BACKUP_BUNDLE_MIN)
		return dd_error_set(-EPROTO,
				    "server '%s' accepts uploads of only %zu bytes",
				    client_server(c), lim.bundle_bytes);
	if ((rc = upload_queue_new(&b->uq, s, &lim)) < 0)
		return rc;
	b->rcap = b->chunker.params.max_size +
		(b->chunker.params.max_size > BACKUP_READ_BLOCK ?
		 b->chunker.params.max_size : BACKUP_READ_BLOCK);
	if (!(b->rbuf = malloc(b->rcap)))
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = dd_catalog_begin(&b->cat)) < 0)
		return agent_error_wrap(rc, "cannot start the catalog");
	return 0;
}

static int backup_create_snapshot(struct backup *b, char **roots,
				  size_t nroots, int64_t time_start,
				  json_t **manifest)
{
	struct upload_stats us;
	json_t *paths = json_array(), *cat = json_array(), *req = NULL;
	json_t *parent = json_null();
	int rc = -ENOMEM;

	if (!paths || !cat)
		goto cleanup;
	if (b->parent_manifest)
		parent = json_object_get(b->parent_manifest, "id");
	for (size_t i = 0; i < nroots; i++)
		if (json_array_append_new(paths, json_string(roots[i])) < 0)
			goto cleanup;
	for (size_t i = 0; i < b->ncat; i++) {
		char hex[DD_ID_HEX_LEN + 1];

		dd_id_to_hex(hex, &b->cat_ids[i]);
		if (json_array_append_new(cat, json_string(hex)) < 0)
			goto cleanup;
	}
	upload_queue_stats(b->uq, &us);
	req = json_pack("{s:s, s:O, s:O, s:I, s:O, s:I, s:I, s:I}",
			"host", b->host, "paths", paths, "catalog", cat,
			"time_start", (json_int_t)time_start, "parent", parent,
			"bytes_new", (json_int_t)us.bytes_new,
			"chunks_new", (json_int_t)us.chunks_new,
			"bytes_sent", (json_int_t)us.bytes_sent);
	if (!req)
		goto cleanup;
	rc = client_post_json(b->client, DD_API_PREFIX "/snapshots", req,
			      manifest);
	if (rc < 0)
		rc = agent_error_wrap(rc, "cannot create the snapshot");
	else
		rc = 0;
cleanup:
	if (rc == -ENOMEM)
		dd_error_set(rc, "out of memory");
	json_decref(paths);
	json_decref(cat);
	json_decref(req);
	return rc;
}

static int backup_print(struct backup *b, const json_t *manifest,
			bool as_json, double seconds)
{
	const char *id = json_string_value(json_object_get(manifest, "id"));
	struct upload_stats us;
	json_t *out;

	if (!id || strlen(id) != DD_ID_HEX_LEN)
		return dd_error_set(-EBADMSG,
				    "server '%s' created a snapshot but sent no id",
				    client_server(b->client));
	if (!as_json) {
		printf("%s\n", id);
		return 0;
	}
	upload_queue_stats(b->uq, &us);
	out = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
			"snapshot_id", id,
			"files", (json_int_t)b->files,
			"files_unchanged", (json_int_t)parent_matched(b->parent),
			"bytes_total", (json_int_t)b->bytes_total,
			"bytes_new", (json_int_t)us.bytes_new,
			"bytes_sent", (json_int_t)us.bytes_sent,
			"chunks_total", (json_int_t)b->chunks_total,
			"chunks_new", (json_int_t)us.chunks_new,
			"seconds", seconds);
	if (!out)
		return dd_error_set(-ENOMEM, "out of memory");
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	return 0;
}

int cmd_backup(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "force-read", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct backup b = { 0 };
	struct settings s = { 0 };
	struct client *c = NULL;
	json_t *manifest = NULL, *probe;
	char **roots = NULL;
	size_t nroots = 0;
	bool as_json = false, force_read = false;
	double t0 = dd_monotonic();
	int64_t time_start = dd_now();
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			as_json = true;
			break;
		case 'F':
			force_read = true;
			break;
		case 'h':
			return agent_usage_help(self);
		default:
			return agent_usage_error(self, "unknown option '%s'",
						 argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return agent_usage_error(self, "no PATH given");

	if (!(roots = calloc((size_t)(argc - optind), sizeof(*roots))))
		return dd_error_set(-ENOMEM, "out of memory");
	for (int i = optind; i < argc; i++) {
		struct stat st;

		if ((rc = walk_normalize(&roots[nroots], argv[i])) < 0)
			goto cleanup;
		nroots++;
		if (lstat(roots[nroots - 1], &st) < 0) {
			rc = dd_error_set(-errno, "cannot stat '%s': %s",
					  argv[i], strerror(errno));
			goto cleanup;
		}
		/* The manifest lists the paths in JSON, which needs UTF-8. */
		if (!(probe = json_string(roots[nroots - 1]))) {
			rc = dd_error_set(-EINVAL,
					  "path '%s' is not valid UTF-8; back up its parent instead",
					  argv[i]);
			goto cleanup;
		}
		json_decref(probe);
	}
	nroots = walk_roots_prune(roots, nroots);

	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0 ||
	    (rc = backup_setup(&b, c, &s)) < 0 ||
	    (!force_read && (rc = backup_find_parent(&b, roots, nroots)) < 0))
		goto cleanup;
	for (size_t i = 0; i < nroots; i++)
		if ((rc = walk_root(roots[i], &backup_walk_ops, &b, &b.ws)) < 0)
			goto cleanup;
	if ((rc = backup_catalog_cut(&b, true)) < 0 ||
	    (rc = upload_queue_flush(b.uq)) < 0 ||
	    (rc = backup_create_snapshot(&b, roots, nroots, time_start,
					 &manifest)) < 0 ||
	    (rc = backup_print(&b, manifest, as_json,
			       dd_monotonic() - t0)) < 0)
		goto cleanup;
	rc = DD_EXIT_OK;
cleanup:
	json_decref(manifest);
	backup_release(&b);
	client_free(c);
	settings_release(&s);
	for (size_t i = 0; i < nroots; i++)
		free(roots[i]);
	free(roots);
	return rc;
}
