/*
 * sealsnap.c - the reference list and sealed metadata of an encrypted
 * snapshot (sealsnap.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"
#include "agent.h"
#include "key.h"
#include "sealsnap.h"
#include "upload.h"

struct sealsnap {
	const struct dd_crypt *k;
	struct dd_chunk_ref *refs;
	size_t n, alloc;
};

int sealsnap_new(struct sealsnap **out, const struct dd_crypt *k)
{
	struct sealsnap *s = calloc(1, sizeof(*s));

	*out = s;
	if (!s)
		return dd_error_set(-ENOMEM, "out of memory");
	s->k = k;
	return 0;
}

void sealsnap_free(struct sealsnap *s)
{
	if (!s)
		return;
	free(s->refs);
	free(s);
}

int sealsnap_note_chunk(struct sealsnap *s, const struct dd_id *id,
			uint32_t plain_len)
{
	if (!s)
		return 0;
	if (s->n == s->alloc) {
		size_t a = s->alloc ? s->alloc * 2 : 4096;
		struct dd_chunk_ref *p = realloc(s->refs, a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		s->refs = p;
		s->alloc = a;
	}
	s->refs[s->n].id = *id;
	s->refs[s->n].plain_len = plain_len;
	s->n++;
	return 0;
}

int sealsnap_note_entry(struct sealsnap *s, const struct dd_entry *e)
{
	int rc = 0;

	for (uint64_t i = 0; s && i < e->nchunks && rc == 0; i++)
		if (!dd_chunk_ref_is_hole(&e->chunks[i]))
			rc = sealsnap_note_chunk(s, &e->chunks[i].id,
						 e->chunks[i].plain_len);
	return rc;
}

static int sealsnap_ref_cmp(const void *a, const void *b)
{
	return memcmp(((const struct dd_chunk_ref *)a)->id.b,
		      ((const struct dd_chunk_ref *)b)->id.b, DD_ID_LEN);
}

/* Sorts and drops repeats. */
static void sealsnap_unique(struct sealsnap *s)
{
	size_t k = 0;

	qsort(s->refs, s->n, sizeof(*s->refs), sealsnap_ref_cmp);
	for (size_t i = 0; i < s->n; i++)
		if (k == 0 || !dd_id_eq(&s->refs[k - 1].id, &s->refs[i].id))
			s->refs[k++] = s->refs[i];
	s->n = k;
}

/* The reference list as catalog bytes. */
static int sealsnap_catalog(const struct sealsnap *s, struct dd_buf *cat)
{
	char path[16];
	int rc = dd_catalog_begin(cat);

	for (size_t at = 0, nr = 0; rc == 0 && at < s->n; nr++) {
		struct dd_entry e = { 0 };
		size_t k = s->n - at;

		if (k > SEALSNAP_REFS_PER_ENTRY)
			k = SEALSNAP_REFS_PER_ENTRY;
		snprintf(path, sizeof(path), "r%010zu", nr);
		e.type = DD_ENTRY_FILE;
		e.mode = 0400;
		e.path = path;
		e.path_len = strlen(path);
		e.nchunks = k;
		e.chunks = s->refs + at;
		for (size_t i = 0; i < k; i++)
			e.size += s->refs[at + i].plain_len;
		rc = dd_catalog_add(cat, &e);
		at += k;
	}
	return rc < 0 ? agent_error_wrap(rc, "cannot write the reference list")
		      : 0;
}

/* Cuts, queues and uploads the list (unsealed); its ids into `ids`. */
static int sealsnap_upload(const struct dd_buf *cat, struct upload_queue *uq,
			   const struct dd_chunker *ck, json_t *ids)
{
	char hex[DD_ID_HEX_LEN + 1];
	size_t off = 0;
	int rc = 0;

	upload_queue_plain(uq);
	while (rc == 0 && off < cat->len) {
		size_t n = dd_chunker_cut(ck, cat->data + off, cat->len - off);
		struct dd_id id;

		dd_sha256(&id, cat->data + off, n);
		dd_id_to_hex(hex, &id);
		if (json_array_size(ids) >= DD_MAX_CATALOG_CHUNKS)
			return dd_error_set(-E2BIG, "the reference list exceeds "
					    "%u chunks", DD_MAX_CATALOG_CHUNKS);
		if (json_array_append_new(ids, json_string(hex)) < 0)
			return dd_error_set(-ENOMEM, "out of memory");
		rc = upload_queue_add(uq, &id, cat->data + off, n);
		off += n;
	}
	return rc < 0 ? rc : upload_queue_flush(uq);
}

/* host and paths replaced by their keyed pseudonyms. */
static int sealsnap_pseudonyms(const struct sealsnap *s, json_t *req)
{
	const json_t *paths = json_object_get(req, "paths"), *v;
	json_t *np = json_array();
	char buf[64];
	size_t i;
	int rc;

	if (!np)
		return dd_error_set(-ENOMEM, "out of memory");
	json_array_foreach(paths, i, v) {
		if ((rc = key_pseudonym(s->k, buf, sizeof(buf), true,
					json_string_value(v))) < 0 ||
		    json_array_append_new(np, json_string(buf)) < 0) {
			json_decref(np);
			return dd_error_set(-ENOMEM, "out of memory");
		}
	}
	if ((rc = key_pseudonym(s->k, buf, sizeof(buf), false,
				json_string_value(json_object_get(req, "host"))))
	    < 0 || json_object_set_new(req, "paths", np) < 0 ||
	    json_object_set_new(req, "host", json_string(buf)) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	return 0;
}

int sealsnap_finish(struct sealsnap *s, json_t *req, struct upload_queue *uq,
		    const struct dd_chunker *ck)
{
	struct dd_buf cat;
	json_t *ids = json_array();
	int rc;

	dd_buf_init(&cat, 0);
	if (!ids)
		return dd_error_set(-ENOMEM, "out of memory");
	sealsnap_unique(s);
	if ((rc = sealsnap_catalog(s, &cat)) < 0 ||
	    (rc = sealsnap_upload(&cat, uq, ck, ids)) < 0 ||
	    (rc = key_manifest_seal(s->k, req, ids)) < 0)
		goto cleanup;
	if (json_object_set(req, "catalog", ids) < 0) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	rc = sealsnap_pseudonyms(s, req);
cleanup:
	json_decref(ids);
	dd_buf_release(&cat);
	return rc;
}
