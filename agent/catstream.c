/*
 * catstream.c - a snapshot's catalog, fetched chunk by chunk as the
 * catalog reader asks for bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "catalog.h"
#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "catstream.h"
#include "client.h"
#include "fetch.h"
#include "key.h"

struct catstream {
	struct client *client;
	struct dd_id *ids;
	size_t n, next;
	size_t per_fetch;
	struct fetch_batch fb;
	size_t fb_pos;
	struct dd_buf plain;
	size_t off;
	ZSTD_DCtx *dctx;
	struct dd_catalog_reader *cr;
	char err[512];       /* our reason, if the reader failed on our read */
};

static int catstream_ids_of(struct catstream *s, const json_t *manifest);

static ssize_t catstream_read(void *payload, void *buf, size_t len)
{
	struct catstream *s = payload;
	size_t n;
	int rc;

	while (s->off == s->plain.len) {
		if (s->fb_pos == s->fb.nrecs) {
			size_t k = s->n - s->next;

			if (k == 0)
				return 0;
			if (k > s->per_fetch)
				k = s->per_fetch;
			rc = fetch_batch_get(&s->fb, s->client, s->ids + s->next, NULL, k);
			/* A catalog is cut by its client: its chunks may be
			 * larger than the batch was sized for, and the reply
			 * too large for the server (413). Fewer at a time,
			 * down to one (a chunk is at most 16 MiB, a reply
			 * may hold 64). */
			if (rc == -E2BIG && k > 1) {
				dd_error_clear();
				s->per_fetch = k / 2;
				s->fb_pos = s->fb.nrecs;    /* none: ask again */
				continue;
			}
			if (rc < 0)
				goto fail;
			s->next += k;
			s->fb_pos = 0;
		}
		rc = fetch_batch_chunk(&s->fb, s->fb_pos++, 0, &s->plain, s->dctx);
		if (rc < 0)
			goto fail;
		s->off = 0;
	}
	n = s->plain.len - s->off;
	if (n > len)
		n = len;
	memcpy(buf, s->plain.data + s->off, n);
	s->off += n;
	return (ssize_t)n;
fail:
	snprintf(s->err, sizeof(s->err), "%s", dd_error_last());
	return rc;
}

/* An encrypted snapshot's catalog is the one its sealed part lists; the
 * manifest's own list is the server's reference list (key.h). */
static int catstream_ids(struct catstream *s, const json_t *manifest)
{
	json_t *sealed = NULL;
	int rc = key_manifest_open(client_crypt(s->client), manifest, &sealed);

	if (rc < 0)
		return rc;
	rc = catstream_ids_of(s, sealed ? sealed : manifest);
	json_decref(sealed);
	return rc;
}

static int catstream_ids_of(struct catstream *s, const json_t *manifest)
{
	json_t *cat = json_object_get(manifest, "catalog"), *v;
	size_t i;

	if (!json_is_array(cat) || json_array_size(cat) == 0 ||
	    json_array_size(cat) > DD_MAX_CATALOG_CHUNKS)
		return dd_error_set(-EBADMSG, "the manifest has no valid catalog list");
	if (!(s->ids = calloc(json_array_size(cat), sizeof(*s->ids))))
		return dd_error_set(-ENOMEM, "out of memory");
	json_array_foreach(cat, i, v) {
		const char *hex = json_string_value(v);

		if (!hex || dd_id_from_hex(&s->ids[i], hex) < 0)
			return dd_error_set(-EBADMSG,
					    "the manifest's catalog list has a bad id");
	}
	s->n = json_array_size(cat);
	return 0;
}

int catstream_new(struct catstream **out, struct client *c,
		  const json_t *manifest, size_t per_fetch)
{
	struct catstream *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return dd_error_set(-ENOMEM, "out of memory");
	s->client = c;
	s->per_fetch = per_fetch ? per_fetch : 1;
	fetch_batch_init(&s->fb);
	dd_buf_init(&s->plain, 0);
	if ((rc = catstream_ids(s, manifest)) < 0)
		goto fail;
	if (!(s->dctx = ZSTD_createDCtx())) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = dd_catalog_reader_new(&s->cr, catstream_read, s)) < 0) {
		rc = agent_error_wrap(rc, "cannot read the catalog");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	catstream_free(s);
	return rc;
}

int catstream_next(struct catstream *s, struct dd_entry *e)
{
	int rc = dd_catalog_next(s->cr, e);

	if (rc < 0) {
		if (s->err[0])
			return dd_error_set(rc, "%s", s->err);
		return agent_error_wrap(rc, "the snapshot's catalog is corrupt");
	}
	return rc;
}

uint32_t catstream_version(const struct catstream *s)
{
	return dd_catalog_version(s->cr);
}

void catstream_free(struct catstream *s)
{
	if (!s)
		return;
	dd_catalog_reader_free(s->cr);
	fetch_batch_release(&s->fb);
	dd_buf_release(&s->plain);
	free(s->ids);
	ZSTD_freeDCtx(s->dctx);
	free(s);
}
