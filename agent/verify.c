/*
 * verify.c - `dedup-agent verify SNAPSHOT`
 *
 * Fetches every chunk of the snapshot - its catalog's and every file's -
 * decompresses it and re-hashes it against its id, writing nothing. Each
 * file with a chunk that is missing, corrupt or of the wrong length is
 * reported by name on stdout ("damaged: PATH: reason"); the exit code is
 * then non-zero. A catalog that cannot be read is an error.
 *
 * Chunks are fetched in batches of unique ids. When the server refuses a
 * batch (a chunk it cannot serve: 404 unknown, 500 damaged), each chunk of
 * the batch is fetched on its own to find the bad ones; a transport
 * failure (server gone) stops the verify.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zstd.h>

#include "catalog.h"
#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "catstream.h"
#include "client.h"
#include "fetch.h"
#include "idset.h"
#include "meta.h"
#include "repo_config.h"
#include "snapshots.h"

#define VERIFY_BATCH_BYTES (16u * 1024 * 1024)
#define VERIFY_BATCH_IDS 4096u
#define VERIFY_CATALOG_IDS 16u
/* Files and references held for one batch: files sharing chunks add
 * references but no unique ids, so these bound the batch too. */
#define VERIFY_BATCH_FILES 8192u
#define VERIFY_BATCH_REFS 262144u

struct vfile {
	char *path;
	char *why;            /* first problem found, or NULL */
};

struct vref {
	uint32_t uid;         /* index into uids */
	uint32_t file;        /* index into files */
	uint32_t len;         /* the length this reference gives the chunk */
};

struct verify {
	struct client *client;
	size_t batch_bytes, batch_ids;
	struct fetch_batch fb;
	struct idset *uniq;
	struct dd_id *uids;
	uint32_t *ulen;        /* each unique id's length: the first claim,
				* then what its record holds */
	char **ubad;           /* per unique id: NULL or a reason */
	size_t nuids, uids_alloc, bytes;
	struct vref *refs;
	size_t nrefs, refs_alloc;
	struct vfile *files;
	size_t nfiles, files_alloc;
	bool last_open;        /* files[nfiles-1] has chunks still to come */
	struct dd_buf plain;
	ZSTD_DCtx *dctx;
	uint64_t nverified, ndamaged, bytes_verified;
};

static void *verify_grow(void *p, size_t *alloc, size_t need, size_t size)
{
	size_t a = *alloc ? *alloc : 64;

	if (need <= *alloc)
		return p;
	while (a < need)
		a *= 2;
	if (!(p = realloc(p, a * size)))
		return NULL;
	*alloc = a;
	return p;
}

/* Whether a failed fetch is about the chunks (the server answered with an
 * error) rather than about reaching the server. */
static bool verify_chunk_error(int rc)
{
	return rc == -ENOENT || rc == -EPROTO || rc == -EBADMSG || rc == -E2BIG;
}

static int verify_mark(struct verify *v, size_t u, const char *why)
{
	char hex[DD_ID_HEX_LEN + 1];
	size_t n;

	if (v->ubad[u])
		return 0;
	dd_id_to_hex(hex, &v->uids[u]);
	n = strlen(why) + DD_ID_HEX_LEN + 16;
	if (!(v->ubad[u] = malloc(n)))
		return dd_error_set(-ENOMEM, "out of memory");
	snprintf(v->ubad[u], n, "chunk %.16s: %s", hex, why);
	return 0;
}

/* Checks record i of the batch as unique id u: its bytes against its
 * id, whatever length it has (each reference's length is compared with
 * it in verify_flush); v->ulen[u] becomes that length. */
static int verify_record(struct verify *v, size_t i, size_t u)
{
	if (fetch_batch_chunk(&v->fb, i, 0, &v->plain, v->dctx) < 0)
		return verify_mark(v, u, dd_error_last());
	v->ulen[u] = v->fb.recs[i].plain_len;
	return 0;
}

/* The chunk a refused batch's reason names ("chunk <64 hex>: ..."): the
 * server drops a damaged chunk as it refuses it, so asked again alone it
 * is "unknown"; the batch's reason says what it was. */
static bool verify_named(const char *reason, const struct dd_id *id)
{
	char hex[DD_ID_HEX_LEN + 1];
	const char *p = strstr(reason, "chunk ");

	dd_id_to_hex(hex, id);
	return p && strncmp(p + 6, hex, DD_ID_HEX_LEN) == 0;
}

/* Fetches and checks the batch's unique ids, filling v->ubad. */
static int verify_fetch(struct verify *v)
{
	int rc = fetch_batch_get(&v->fb, v->client, v->uids, NULL, v->nuids);
	char *batch_why = NULL;

	if (rc == 0) {
		for (size_t u = 0; u < v->nuids; u++)
			if ((rc = verify_record(v, u, u)) < 0)
				return rc;
		return 0;
	}
	if (!verify_chunk_error(rc))
		return rc;
	if (rc != -ENOENT && !(batch_why = strdup(dd_error_last())))
		return dd_error_set(-ENOMEM, "out of memory");
	/* Find the chunks the server cannot serve, one by one. */
	for (size_t u = 0; u < v->nuids; u++) {
		const char *why;

		rc = fetch_batch_get(&v->fb, v->client, &v->uids[u], NULL, 1);
		if (rc == 0) {
			if ((rc = verify_record(v, 0, u)) < 0)
				goto out;
			continue;
		}
		if (!verify_chunk_error(rc))
			goto out;
		why = rc == -ENOENT && batch_why &&
		      verify_named(batch_why, &v->uids[u]) ? batch_why :
		      dd_error_last();
		if ((rc = verify_mark(v, u, why)) < 0)
			goto out;
	}
	rc = 0;
out:
	free(batch_why);
	return rc;
}

static void verify_report(struct verify *v, struct vfile *f)
{
	char q[1024];

	v->nverified++;
	if (f->why) {
		v->ndamaged++;
		printf("damaged: /%s: %s\n",
		       dd_quote(q, sizeof(q), f->path, strlen(f->path)),
		       f->why);
	}
	free(f->path);
	free(f->why);
	f->path = f->why = NULL;
}

/* Fetches the pending batch, assigns problems to files, reports the
 * files that are complete. */
static int verify_flush(struct verify *v)
{
	size_t keep;
	int rc;

	if (v->nuids && (rc = verify_fetch(v)) < 0)
		return rc;
	for (size_t i = 0; i < v->nrefs; i++) {
		const struct vref *r = &v->refs[i];
		struct vfile *f = &v->files[r->file];
		const char *why = v->ubad[r->uid];

		if (f->why)
			continue;
		if (why && !(f->why = strdup(why)))
			return dd_error_set(-ENOMEM, "out of memory");
		if (!why && r->len != v->ulen[r->uid]) {
			char hex[DD_ID_HEX_LEN + 1];
			size_t n = 2 * DD_ID_HEX_LEN + 96;

			dd_id_to_hex(hex, &v->uids[r->uid]);
			if (!(f->why = malloc(n)))
				return dd_error_set(-ENOMEM, "out of memory");
			snprintf(f->why, n, "chunk %.16s: chunk %s has %u bytes, "
				 "the catalog says %u", hex, hex,
				 v->ulen[r->uid], r->len);
		}
	}
	keep = v->last_open && v->nfiles ? 1 : 0;
	for (size_t i = 0; i + keep < v->nfiles; i++)
		verify_report(v, &v->files[i]);
	if (keep) {
		v->files[0] = v->files[v->nfiles - 1];
		v->files[v->nfiles - 1].path = NULL;
		v->files[v->nfiles - 1].why = NULL;
	}
	v->nfiles = keep;
	for (size_t u = 0; u < v->nuids; u++) {
		free(v->ubad[u]);
		v->ubad[u] = NULL;
	}
	v->nuids = v->nrefs = v->bytes = 0;
	idset_clear(v->uniq);
	return 0;
}

/* Room for one more unique id in uids, ulen and ubad. */
static int verify_grow_ids(struct verify *v)
{
	size_t a = v->uids_alloc ? v->uids_alloc * 2 : 256;
	void *p;

	if (!(p = realloc(v->uids, a * sizeof(*v->uids))))
		return dd_error_set(-ENOMEM, "out of memory");
	v->uids = p;
	if (!(p = realloc(v->ulen, a * sizeof(*v->ulen))))
		return dd_error_set(-ENOMEM, "out of memory");
	v->ulen = p;
	if (!(p = realloc(v->ubad, a * sizeof(*v->ubad))))
		return dd_error_set(-ENOMEM, "out of memory");
	v->ubad = p;
	v->uids_alloc = a;
	return 0;
}

static int verify_file(struct verify *v, const struct dd_entry *e)
{
	struct vfile *f;
	void *p;
	int rc;

	if (v->nfiles >= VERIFY_BATCH_FILES && (rc = verify_flush(v)) < 0)
		return rc;
	if (!(p = verify_grow(v->files, &v->files_alloc, v->nfiles + 1,
			      sizeof(*v->files))))
		return dd_error_set(-ENOMEM, "out of memory");
	v->files = p;
	f = &v->files[v->nfiles];
	f->why = NULL;
	if (!(f->path = strndup(e->path, e->path_len)))
		return dd_error_set(-ENOMEM, "out of memory");
	v->nfiles++;
	v->last_open = true;
	for (uint64_t j = 0; j < e->nchunks; j++) {
		const struct dd_chunk_ref *ref = &e->chunks[j];
		uint32_t u;

		if (dd_chunk_ref_is_hole(ref))
			continue;       /* zeros: nothing stored to check */
		if (v->nrefs && (v->nuids >= v->batch_ids ||
				 v->nrefs >= VERIFY_BATCH_REFS ||
				 v->bytes + ref->plain_len > v->batch_bytes)) {
			if ((rc = verify_flush(v)) < 0)
				return rc;
		}
		rc = idset_insert(v->uniq, &ref->id, (uint32_t)v->nuids, &u);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (v->nuids == v->uids_alloc &&
			    (rc = verify_grow_ids(v)) < 0)
				return rc;
			u = (uint32_t)v->nuids++;
			v->uids[u] = ref->id;
			v->ulen[u] = ref->plain_len;
			v->ubad[u] = NULL;
			v->bytes += ref->plain_len;
		}
		if (!(p = verify_grow(v->refs, &v->refs_alloc, v->nrefs + 1,
				      sizeof(*v->refs))))
			return dd_error_set(-ENOMEM, "out of memory");
		v->refs = p;
		v->refs[v->nrefs].uid = u;
		v->refs[v->nrefs].file = (uint32_t)(v->nfiles - 1);
		v->refs[v->nrefs].len = ref->plain_len;
		v->nrefs++;
	}
	v->last_open = false;
	v->bytes_verified += e->size;
	return 0;
}

int cmd_verify(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct verify v = { 0 };
	struct settings s = { 0 };
	struct client *c = NULL;
	struct catstream *cs = NULL;
	struct repo_config cfg;
	json_t *manifest = NULL;
	struct dd_entry e;
	char human[32];
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h')
			return agent_usage_help(self);
		return agent_usage_error(self, "unknown option '%s'",
					 argv[optind - 1]);
	}
	if (optind >= argc)
		return agent_usage_error(self, "no snapshot given");
	if (optind + 1 < argc)
		return agent_usage_error(self, "unexpected argument '%s'",
					 argv[optind + 1]);
	fetch_batch_init(&v.fb);
	dd_buf_init(&v.plain, 0);
	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0 ||
	    (rc = snapshots_resolve(&manifest, c, argv[optind])) < 0 ||
	    (rc = repo_config_fetch(&cfg, c)) < 0 ||
	    (rc = idset_new(&v.uniq)) < 0 ||
	    (rc = catstream_new(&cs, c, manifest, VERIFY_CATALOG_IDS)) < 0)
		goto cleanup;
	if (!(v.dctx = ZSTD_createDCtx())) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	v.client = c;
	v.batch_bytes = VERIFY_BATCH_BYTES;
	if (cfg.max_fetch_response && v.batch_bytes > cfg.max_fetch_response / 2)
		v.batch_bytes = cfg.max_fetch_response / 2;
	v.batch_ids = VERIFY_BATCH_IDS;
	if (cfg.max_ids_per_query && v.batch_ids > cfg.max_ids_per_query)
		v.batch_ids = cfg.max_ids_per_query;
	while ((rc = catstream_next(cs, &e)) == 1)
		if (e.type == DD_ENTRY_FILE && (rc = verify_file(&v, &e)) < 0)
			goto cleanup;
	if (rc < 0 || (rc = verify_flush(&v)) < 0)
		goto cleanup;
	if (!g->quiet) {
		agent_fmt_bytes(human, v.bytes_verified);
		fprintf(stderr, "verified %llu files (%s): %llu damaged\n",
			(unsigned long long)v.nverified, human,
			(unsigned long long)v.ndamaged);
	}
	rc = DD_EXIT_OK;
	if (v.ndamaged)
		rc = dd_error_set(-EBADMSG, "%llu files of the snapshot are damaged",
				  (unsigned long long)v.ndamaged);
cleanup:
	for (size_t i = 0; i < v.nfiles; i++) {
		free(v.files[i].path);
		free(v.files[i].why);
	}
	for (size_t u = 0; u < v.nuids; u++)
		free(v.ubad[u]);
	free(v.files);
	free(v.refs);
	free(v.uids);
	free(v.ulen);
	free(v.ubad);
	idset_free(v.uniq);
	fetch_batch_release(&v.fb);
	dd_buf_release(&v.plain);
	ZSTD_freeDCtx(v.dctx);
	catstream_free(cs);
	json_decref(manifest);
	client_free(c);
	settings_release(&s);
	return rc;
}
