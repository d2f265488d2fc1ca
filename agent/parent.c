/*
 * parent.c - pairing the walk with the parent snapshot's catalog.
 */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "util.h"
#include "agent.h"
#include "catstream.h"
#include "client.h"
#include "key.h"
#include "parent.h"
#include "snapshots.h"

struct parent {
	struct catstream *cs;
	struct dd_entry cur;     /* the parent's next unpaired entry */
	bool have;               /* cur is valid */
	bool done;               /* end of the catalog, or it failed */
	uint64_t matched;
};

static int parent_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether the manifest's "paths" are exactly `sorted` (sorted strings). */
static bool parent_same_paths(const json_t *m, const char *const *sorted,
			      size_t n)
{
	const json_t *paths = json_object_get(m, "paths");
	const char **have;
	bool same = true;

	if (!json_is_array(paths) || json_array_size(paths) != n)
		return false;
	if (!(have = calloc(n ? n : 1, sizeof(*have))))
		return false;
	for (size_t i = 0; i < n && same; i++)
		same = (have[i] = json_string_value(json_array_get(paths, i)));
	if (same) {
		qsort(have, n, sizeof(*have), parent_cmp_str);
		for (size_t i = 0; i < n && same; i++)
			same = strcmp(have[i], sorted[i]) == 0;
	}
	free(have);
	return same;
}

struct parent_search {
	const char *host;
	const char *const *sorted;
	size_t n;
	char id[DD_ID_HEX_LEN + 1];
};

static int parent_match_cb(void *payload, json_t *m)
{
	struct parent_search *ps = payload;
	const char *h = json_string_value(json_object_get(m, "host"));
	const char *id = json_string_value(json_object_get(m, "id"));

	if (!id || !h || strcmp(h, ps->host) != 0 ||
	    !parent_same_paths(m, ps->sorted, ps->n))
		return 0;
	snprintf(ps->id, sizeof(ps->id), "%s", id);
	return 1;
}

int parent_find(json_t **out, struct client *c, const char *host,
		char *const *roots, size_t nroots)
{
	struct parent_search ps;
	const char **sorted = NULL;
	int rc;

	const struct dd_crypt *k = client_crypt(c);
	char (*pseudo)[64] = NULL;
	char phost[64];

	*out = NULL;
	if (!(sorted = calloc(nroots ? nroots : 1, sizeof(*sorted))) ||
	    (k && !(pseudo = calloc(nroots ? nroots : 1, sizeof(*pseudo))))) {
		free(sorted);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	/* An encrypted snapshot shows keyed pseudonyms (sealsnap.h). */
	for (size_t i = 0; i < nroots; i++) {
		sorted[i] = roots[i];
		if (k && (rc = key_pseudonym(k, pseudo[i], sizeof(pseudo[i]),
					     true, roots[i])) == 0)
			sorted[i] = pseudo[i];
	}
	if (k && key_pseudonym(k, phost, sizeof(phost), false, host) == 0)
		host = phost;
	qsort(sorted, nroots, sizeof(*sorted), parent_cmp_str);
	memset(&ps, 0, sizeof(ps));
	ps.host = host;
	ps.sorted = sorted;
	ps.n = nroots;
	/* Newest first (the server's order): usually the first page has it. */
	rc = snapshots_each(c, true, parent_match_cb, &ps);
	free(sorted);
	free(pseudo);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return 0;
	return snapshots_fetch(out, c, ps.id);
}

int parent_open(struct parent **out, struct client *c, const json_t *manifest,
		size_t per_fetch)
{
	struct parent *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return dd_error_set(-ENOMEM, "out of memory");
	if ((rc = catstream_new(&p->cs, c, manifest, per_fetch)) < 0) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void parent_free(struct parent *p)
{
	if (!p)
		return;
	catstream_free(p->cs);
	free(p);
}

uint64_t parent_matched(const struct parent *p)
{
	return p ? p->matched : 0;
}

/* Moves to the parent's next entry; on a read failure the parent is given
 * up for the rest of the backup. */
static void parent_advance(struct parent *p)
{
	int rc = catstream_next(p->cs, &p->cur);

	p->have = rc > 0;
	if (rc <= 0)
		p->done = true;
	if (rc < 0)
		agent_warn("cannot read the parent snapshot's catalog (%s); "
			   "reading every file", dd_error_last());
}

int parent_match(struct parent *p, const char *path, size_t len,
		 const struct stat *st, const struct dd_entry **out)
{
	const struct dd_entry *e = &p->cur;
	int cmp = 1;

	if (!p->have && !p->done)
		parent_advance(p);
	/* Skip the parent's entries that sort before this path: they were
	 * deleted, or are directories and symlinks the walk passed. */
	while (p->have &&
	       (cmp = dd_catalog_path_cmp(e->path, e->path_len, path, len)) < 0)
		parent_advance(p);
	if (!p->have || cmp != 0 || e->type != DD_ENTRY_FILE)
		return 0;
	if (e->size != (uint64_t)st->st_size ||
	    e->mtime_sec != st->st_mtim.tv_sec ||
	    e->mtime_nsec != (uint32_t)st->st_mtim.tv_nsec ||
	    e->ctime_sec != st->st_ctim.tv_sec ||
	    e->ctime_nsec != (uint32_t)st->st_ctim.tv_nsec ||
	    e->ino != (uint64_t)st->st_ino ||
	    e->mode != (st->st_mode & 07777))
		return 0;
	/* a chunk of it found damaged since (key.h): read it again, so
	 * that its bytes are stored anew */
	if (key_avoid_count())
		for (uint32_t i = 0; i < e->nchunks; i++)
			if (key_avoided(&e->chunks[i].id))
				return 0;
	*out = e;
	p->matched++;
	return 1;
}

bool parent_meta_reusable(const struct parent *p)
{
	return catstream_version(p->cs) >= 2;
}

/* ---- the record of the last snapshot this agent made ---- */

#define PARENT_RECORD_MAGIC "dedup-agent parent 1\n"
#define PARENT_RECORD_MAX 512

int agent_state_dir(char *out, size_t size)
{
	const char *env = getenv("DEDUP_STATE_DIR");
	struct passwd *pw;
	int n;

	if (env && *env)
		n = snprintf(out, size, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, size, "/var/lib/dedup-agent");
	else if ((env = getenv("XDG_STATE_HOME")) && env[0] == '/')
		n = snprintf(out, size, "%s/dedup-agent", env);
	else if (((env = getenv("HOME")) && env[0] == '/') ||
		 ((pw = getpwuid(geteuid())) && (env = pw->pw_dir) &&
		  env[0] == '/'))
		n = snprintf(out, size, "%s/.local/state/dedup-agent", env);
	else
		return dd_error_set(-ENOENT,
				    "no place for the agent's state: set DEDUP_STATE_DIR or HOME");
	if (n < 0 || (size_t)n >= size)
		return dd_error_set(-ENAMETOOLONG, "state directory path too long");
	return 0;
}

static void parent_hash_str(struct dd_sha256_ctx *ctx, const char *s)
{
	dd_sha256_update(ctx, s, strlen(s));
	dd_sha256_update(ctx, "\n", 1);
}

/* The record's key: server, token, host and the sorted paths. */
static int parent_record_key(char *hex, const char *server, const char *token,
			     const char *host, char *const *roots,
			     size_t nroots)
{
	struct dd_sha256_ctx *ctx = dd_sha256_new();
	const char **sorted = calloc(nroots ? nroots : 1, sizeof(*sorted));
	struct dd_id id;

	if (!ctx || !sorted) {
		dd_sha256_free(ctx);
		free(sorted);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nroots; i++)
		sorted[i] = roots[i];
	qsort(sorted, nroots, sizeof(*sorted), parent_cmp_str);
	parent_hash_str(ctx, server);
	parent_hash_str(ctx, token);
	parent_hash_str(ctx, host);
	for (size_t i = 0; i < nroots; i++)
		parent_hash_str(ctx, sorted[i]);
	dd_sha256_final(ctx, &id);
	dd_sha256_free(ctx);
	free(sorted);
	dd_id_to_hex(hex, &id);
	return 0;
}

/* Parses "MAGIC" "id <hex>\n" "catalog <hex>\n". */
static int parent_record_parse(struct parent_record *r, const char *text)
{
	char id[DD_ID_HEX_LEN + 1], dig[DD_ID_HEX_LEN + 1];
	size_t ml = strlen(PARENT_RECORD_MAGIC);
	int used = 0;

	if (strncmp(text, PARENT_RECORD_MAGIC, ml) != 0 ||
	    sscanf(text + ml, "id %64[0-9a-f]\ncatalog %64[0-9a-f]\n%n",
		   id, dig, &used) != 2 || used == 0 ||
	    text[ml + used] != '\0' || strlen(id) != DD_ID_HEX_LEN ||
	    dd_id_from_hex(&r->digest, dig) < 0)
		return -EBADMSG;
	memcpy(r->id, id, sizeof(r->id));
	r->have = true;
	return 0;
}

int parent_record_load(struct parent_record *r, const char *server,
		       const char *token, const char *host,
		       char *const *roots, size_t nroots)
{
	char dir[4096 - 128], key[DD_ID_HEX_LEN + 1];
	uint8_t *text = NULL;
	size_t len;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = parent_record_key(key, server, token, host, roots, nroots)) < 0)
		return rc;
	if (agent_state_dir(dir, sizeof(dir)) < 0) {
		agent_warn("%s; every backup reads every file", dd_error_last());
		dd_error_clear();
		return 0;
	}
	snprintf(r->path, sizeof(r->path), "%s/parent.%lu.%.32s", dir,
		 (unsigned long)geteuid(), key);
	rc = dd_read_file(r->path, PARENT_RECORD_MAX, &text, &len);
	if (rc == -ENOENT) {
		dd_error_clear();
		return 0;
	}
	if (rc < 0 || parent_record_parse(r, (const char *)text) < 0) {
		agent_warn("cannot use the agent's record of its last snapshot '%s' (%s); reading every file",
			   r->path, rc < 0 ? dd_error_last() : "malformed");
		dd_error_clear();
		r->have = false;
	}
	free(text);
	return 0;
}

/* SHA-256 over the catalog chunk ids, in order. */
static int parent_digest_ids(struct dd_id *out, const struct dd_id *ids,
			     size_t n)
{
	struct dd_sha256_ctx *ctx = dd_sha256_new();

	if (!ctx)
		return dd_error_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		dd_sha256_update(ctx, ids[i].b, sizeof(ids[i].b));
	dd_sha256_final(ctx, out);
	dd_sha256_free(ctx);
	return 0;
}

/* The same digest over a manifest's "catalog" list; -EBADMSG if bad. */
static int parent_digest_manifest(struct dd_id *out, const json_t *m)
{
	const json_t *cat = json_object_get(m, "catalog");
	struct dd_sha256_ctx *ctx;
	struct dd_id id;
	size_t i;
	json_t *v;

	if (!json_is_array(cat))
		return -EBADMSG;
	if (!(ctx = dd_sha256_new()))
		return dd_error_set(-ENOMEM, "out of memory");
	json_array_foreach(cat, i, v) {
		const char *hex = json_string_value(v);

		if (!hex || strlen(hex) != DD_ID_HEX_LEN ||
		    dd_id_from_hex(&id, hex) < 0) {
			dd_sha256_free(ctx);
			return -EBADMSG;
		}
		dd_sha256_update(ctx, id.b, sizeof(id.b));
	}
	dd_sha256_final(ctx, out);
	dd_sha256_free(ctx);
	return 0;
}

/* The digest of the catalog the agent wrote: an encrypted snapshot's is
 * in its sealed part. */
static int parent_digest_sealed(struct dd_id *out, const json_t *m,
				struct client *c)
{
	json_t *sealed = NULL;
	int rc = key_manifest_open(client_crypt(c), m, &sealed);

	if (rc == 0)
		rc = parent_digest_manifest(out, sealed ? sealed : m);
	json_decref(sealed);
	return rc;
}

int parent_record_save(const struct parent_record *r, const char *id,
		       const struct dd_id *cat_ids, size_t ncat)
{
	char text[PARENT_RECORD_MAX], hex[DD_ID_HEX_LEN + 1], dir[4096];
	struct dd_id dig;
	char *slash;
	int rc, n;

	if (!r->path[0])
		return 0;
	if ((rc = parent_digest_ids(&dig, cat_ids, ncat)) < 0)
		return rc;
	dd_id_to_hex(hex, &dig);
	n = snprintf(text, sizeof(text), PARENT_RECORD_MAGIC "id %s\ncatalog %s\n",
		     id, hex);
	if (n < 0 || (size_t)n >= sizeof(text))
		return dd_error_set(-EINVAL, "bad snapshot id");
	snprintf(dir, sizeof(dir), "%s", r->path);
	if ((slash = strrchr(dir, '/')))
		*slash = '\0';
	if ((rc = dd_mkdir_p(dir, 0700)) < 0 ||
	    (rc = dd_write_file_atomic(r->path, text, (size_t)n, 0600)) < 0)
		return agent_error_wrap(rc, "cannot record the snapshot in '%s'",
					r->path);
	return 0;
}

/* Whether the recorded snapshot is still there (1), or gone (0). */
static int parent_record_exists(const struct parent_record *r,
				struct client *c)
{
	json_t *m = NULL;
	int rc = snapshots_fetch(&m, c, r->id);

	json_decref(m);
	dd_error_clear();
	return rc >= 0;
}

int parent_trusted(const struct parent_record *r, const json_t *manifest,
		   struct client *c)
{
	const char *id = manifest ?
		json_string_value(json_object_get(manifest, "id")) : NULL;
	struct dd_id dig;

	if (!r->have)
		return 0;
	if ((!id || strcmp(id, r->id) != 0) && !parent_record_exists(r, c)) {
		fprintf(stderr, "note: the last snapshot this agent made of these paths (%s) is gone (forgotten or pruned?); reading every file\n",
			r->id);
		return 0;
	}
	if (!id) {
		/* there, but not found as this configuration's: sealed with
		 * another key, most likely */
		fprintf(stderr, "note: the last snapshot this agent made of these paths (%s) cannot be read with this configuration (made with another key?); reading every file\n",
			r->id);
		return 0;
	}
	if (strcmp(id, r->id) != 0) {
		agent_warn("snapshot %s is not the last one this agent made of these paths (%s): not used as parent, reading every file",
			   id, r->id);
		return 0;
	}
	if (parent_digest_sealed(&dig, manifest, c) < 0 ||
	    !dd_id_eq(&dig, &r->digest)) {
		dd_error_clear();
		agent_warn("snapshot %s's catalog is not the one this agent wrote; not used as parent, reading every file",
			   id);
		return 0;
	}
	return 1;
}
