/*
 * fetch.c - batched, verified chunk downloads.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zstd.h>

#include "compress.h"
#include "proto.h"
#include "agent.h"
#include "client.h"
#include "fetch.h"
#include "key.h"

void fetch_batch_init(struct fetch_batch *b)
{
	memset(b, 0, sizeof(*b));
	/* The server caps its reply at DD_MAX_FETCH_RESPONSE; leave room for
	 * the bundle framing. */
	dd_buf_init(&b->body, DD_MAX_FETCH_RESPONSE + 1024 * 1024);
	dd_buf_init(&b->query, 0);
	dd_buf_init(&b->plain, 0);
}

void fetch_batch_release(struct fetch_batch *b)
{
	dd_buf_release(&b->body);
	dd_buf_release(&b->query);
	dd_buf_release(&b->plain);
	free(b->plain_off);
	free(b->jobs);
	free(b->got);
	free(b->recs);
	memset(b, 0, sizeof(*b));
}

int fetch_batch_get(struct fetch_batch *b, struct client *c,
		    const struct dd_id *ids, const uint32_t *plain_lens,
		    size_t n)
{
	struct dd_bundle_reader r;
	char hex[DD_ID_HEX_LEN + 1];
	int rc;

	if (n == 0 || n > DD_MAX_IDS_PER_QUERY)
		return dd_error_set(-EINVAL, "bad fetch batch of %zu ids", n);
	b->nrecs = 0;
	b->decoded = false;
	b->crypt = client_crypt(c);
	if (n > b->alloc) {
		struct dd_bundle_record *p = realloc(b->recs, n * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		b->recs = p;
		b->alloc = n;
	}
	dd_buf_reset(&b->query);
	if ((rc = dd_buf_append(&b->query, ids, n * sizeof(*ids))) < 0)
		return dd_error_set(rc, "out of memory");
	rc = client_request(c, "POST", b->client_checks ?
			    DD_API_PREFIX "/chunks/fetch?verify=client" :
			    DD_API_PREFIX "/chunks/fetch",
			    "application/octet-stream", b->query.data,
			    b->query.len, &b->body);
	if (rc < 0)
		return rc;

	if ((rc = dd_bundle_reader_init(&r, b->body.data, b->body.len)) < 0)
		return agent_error_wrap(rc, "server '%s' sent a bad chunk bundle",
					client_server(c));
	for (;;) {
		struct dd_bundle_record rec;

		rc = dd_bundle_next(&r, &rec);
		if (rc < 0)
			return agent_error_wrap(rc, "server '%s' sent a bad chunk bundle",
						client_server(c));
		if (rc == 0)
			break;
		if (b->nrecs >= n || !dd_id_eq(&rec.id, &ids[b->nrecs])) {
			dd_id_to_hex(hex, &rec.id);
			return dd_error_set(-EBADMSG,
					    "server '%s' sent chunk %s out of order",
					    client_server(c), hex);
		}
		if (plain_lens && rec.plain_len != plain_lens[b->nrecs]) {
			dd_id_to_hex(hex, &rec.id);
			return dd_error_set(-EBADMSG,
					    "server '%s' sent chunk %s as %u bytes, "
					    "the catalog says %u", client_server(c),
					    hex, rec.plain_len,
					    plain_lens[b->nrecs]);
		}
		b->recs[b->nrecs++] = rec;
	}
	if (b->nrecs != n)
		return dd_error_set(-EBADMSG,
				    "server '%s' sent %zu of %zu requested chunks",
				    client_server(c), b->nrecs, n);
	return 0;
}

/* A record stored raw (incompressible, not sealed): its stored bytes are
 * its plain bytes. */
static bool fetch_record_raw(const struct dd_bundle_record *rec)
{
	return rec->flags == DD_COMP_NONE && rec->stored_len == rec->plain_len;
}

/* Room for the decode of n records. */
static int fetch_batch_grow(struct fetch_batch *b, size_t n)
{
	size_t *off;
	struct dd_sha256_job *jobs;
	struct dd_id *got;

	if (n <= b->plain_alloc)
		return 0;
	if ((off = realloc(b->plain_off, n * sizeof(*off))))
		b->plain_off = off;
	if ((jobs = realloc(b->jobs, n * sizeof(*jobs))))
		b->jobs = jobs;
	if ((got = realloc(b->got, n * sizeof(*got))))
		b->got = got;
	if (!off || !jobs || !got)
		return dd_error_set(-ENOMEM, "out of memory");
	b->plain_alloc = n;
	return 0;
}

/*
 * Decodes every record of a fetched batch into b->plain (a raw one is
 * only verified, where it lies in the body: no copy), in place, and
 * hashes the plain bytes of all of them as one batch; a record that
 * fails is left for fetch_batch_chunk to decode (and report) in context.
 * A sealed record is opened and checked by key_decode_chunk (its id is
 * keyed, not a plain SHA-256).
 */
static int fetch_batch_decode(struct fetch_batch *b, void *dctx)
{
	struct dd_buf tmp;
	size_t total = 0, nj = 0;

	b->decoded = false;
	if (fetch_batch_grow(b, b->nrecs) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < b->nrecs; i++)
		if (!fetch_record_raw(&b->recs[i]))
			total += b->recs[i].plain_len;
	dd_buf_reset(&b->plain);
	if (dd_buf_reserve(&b->plain, total ? total : 1) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	dd_buf_init(&tmp, 0);
	for (size_t i = 0; i < b->nrecs; i++) {
		const struct dd_bundle_record *rec = &b->recs[i];
		uint8_t *dst = b->plain.data + b->plain.len;

		b->plain_off[i] = FETCH_NOT_DECODED;
		if (fetch_record_raw(rec)) {
			/* its bytes are its plain bytes: hashed in the body */
			b->jobs[nj++] = (struct dd_sha256_job){
				rec->data, rec->stored_len, &b->got[i] };
			b->plain_off[i] = FETCH_IN_BODY;
			continue;
		}
		if (rec->flags & DD_COMP_SEALED) {
			if (key_decode_chunk(b->crypt, dst, &rec->id,
					     rec->flags, rec->data,
					     rec->stored_len, rec->plain_len,
					     &tmp, dctx) < 0)
				continue;
		} else {
			if (dd_decompress_to(dst, rec->flags, rec->data,
					     rec->stored_len, rec->plain_len,
					     dctx) < 0)
				continue;
			b->jobs[nj++] = (struct dd_sha256_job){
				dst, rec->plain_len, &b->got[i] };
		}
		b->plain_off[i] = b->plain.len;
		b->plain.len += rec->plain_len;
	}
	dd_buf_release(&tmp);
	dd_sha256_batch(b->jobs, nj);
	for (size_t j = 0; j < nj; j++) {
		size_t i = (size_t)(b->jobs[j].out - b->got);

		if (!dd_id_eq(&b->got[i], &b->recs[i].id))
			b->plain_off[i] = FETCH_NOT_DECODED;
	}
	dd_error_clear();
	b->decoded = true;
	return 0;
}

int fetch_batch_chunk_ref(struct fetch_batch *b, size_t i, uint32_t plain_len,
			  const uint8_t **data, struct dd_buf *scratch,
			  void *dctx)
{
	const struct dd_bundle_record *rec = &b->recs[i];
	char hex[DD_ID_HEX_LEN + 1];
	struct dd_buf tmp;
	int rc;

	dd_id_to_hex(hex, &rec->id);
	if (plain_len && rec->plain_len != plain_len)
		return dd_error_set(-EBADMSG,
				    "chunk %s has %u bytes, the catalog says %u",
				    hex, rec->plain_len, plain_len);
	if (b->decoded && b->plain_off[i] == FETCH_IN_BODY) {
		*data = rec->data;
		return 0;
	}
	if (b->decoded && b->plain_off[i] != FETCH_NOT_DECODED) {
		*data = b->plain.data + b->plain_off[i];
		return 0;
	}
	dd_buf_reset(scratch);
	if (dd_buf_reserve(scratch, rec->plain_len ? rec->plain_len : 1) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	dd_buf_init(&tmp, 0);
	rc = key_decode_chunk(b->crypt, scratch->data, &rec->id, rec->flags,
			      rec->data, rec->stored_len, rec->plain_len, &tmp,
			      dctx);
	dd_buf_release(&tmp);
	if (rc < 0)
		return rc;
	scratch->len = rec->plain_len;
	*data = scratch->data;
	return 0;
}

int fetch_batch_chunk(struct fetch_batch *b, size_t i, uint32_t plain_len,
		      struct dd_buf *out, void *dctx)
{
	const uint8_t *p;
	int rc = fetch_batch_chunk_ref(b, i, plain_len, &p, out, dctx);

	if (rc < 0 || p == out->data)
		return rc;
	dd_buf_reset(out);
	return dd_buf_append(out, p, b->recs[i].plain_len);
}

int fetch_report_damaged(struct client *c, const struct dd_id *ids, size_t n,
			 struct fetch_check *out)
{
	struct dd_buf resp;
	json_error_t jerr;
	json_t *reply = NULL, *checked, *damaged, *unknown, *sealed;
	int rc;

	memset(out, 0, sizeof(*out));
	dd_buf_init(&resp, 0);
	rc = client_request(c, "POST", DD_API_PREFIX "/chunks/check",
			    "application/octet-stream", ids, n * sizeof(*ids),
			    &resp);
	if (rc == 0 && !(reply = json_loadb((const char *)resp.data, resp.len,
					    0, &jerr)))
		rc = dd_error_set(-EBADMSG, "server '%s' sent a bad reply to "
				  "a chunk check: %s", client_server(c),
				  jerr.text);
	if (rc == 0) {
		checked = json_object_get(reply, "checked");
		damaged = json_object_get(reply, "damaged");
		unknown = json_object_get(reply, "unknown");
		sealed = json_object_get(reply, "sealed"); /* newer servers */
		out->damaged = json_array_size(damaged);
		out->unknown = json_array_size(unknown);
		out->sealed = json_array_size(sealed);
		/* checked counts the damaged and sealed ones too */
		if (!json_is_integer(checked) || !json_is_array(damaged) ||
		    !json_is_array(unknown) ||
		    (sealed && !json_is_array(sealed)) ||
		    json_integer_value(checked) < 0 ||
		    (uint64_t)json_integer_value(checked) >
		    (uint64_t)n - out->unknown ||
		    (size_t)json_integer_value(checked) <
		    out->damaged + out->sealed)
			rc = dd_error_set(-EBADMSG, "server '%s' sent a bad "
					  "reply to a chunk check",
					  client_server(c));
		else
			out->intact = (size_t)json_integer_value(checked) -
				out->damaged - out->sealed;
	}
	json_decref(reply);
	dd_buf_release(&resp);
	return rc;
}

/* ---- background fetcher ---- */

struct fetcher {
	struct client *client;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* the job; guarded by mu */
	struct fetch_batch *batch;
	const struct dd_id *ids;
	const uint32_t *plain_lens;
	size_t n;
	bool pending;          /* started, not yet finished */
	bool stop;
	int rc;
	char msg[1024];
	ZSTD_DCtx *dctx;
};

/* The records of a decoded batch that failed their check, told to the
 * server. A failure to tell it is only a warning: the caller's error
 * about the chunk comes when it uses the record (fetch_batch_chunk). */
static void fetcher_report(struct fetcher *f)
{
	struct fetch_batch *b = f->batch;
	struct dd_id *bad = NULL;
	struct fetch_check got;
	size_t n = 0;

	for (size_t i = 0; i < b->nrecs; i++) {
		if (b->plain_off[i] != FETCH_NOT_DECODED)
			continue;
		if (!bad && !(bad = malloc(b->nrecs * sizeof(*bad)))) {
			agent_warn("cannot tell the server of chunks that "
				   "failed their check: out of memory");
			return;
		}
		bad[n++] = b->recs[i].id;
	}
	/* a batch names each chunk once (fetch.h) */
	if (n > 0 && fetch_report_damaged(f->client, bad, n, &got) < 0) {
		agent_warn("cannot tell the server of %zu chunk(s) that failed "
			   "their check: %s", n, dd_error_last());
		dd_error_clear();
	} else if (n > 0) {
		if (got.intact)
			agent_warn("%zu chunk(s) that failed their check here "
				   "are intact on the server: they were damaged "
				   "on the way or in this machine's memory",
				   got.intact);
		if (got.sealed)
			agent_warn("%zu sealed chunk(s) failed their check "
				   "here: the server cannot check them without "
				   "the key and keeps them; this agent's next "
				   "backup stores their bytes anew "
				   "(docs/ENCRYPTION.md, \"Damaged sealed "
				   "chunks\")", got.sealed);
	}
	free(bad);
}

static void *fetcher_main(void *arg)
{
	struct fetcher *f = arg;
	int rc;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->stop && !(f->pending && f->batch))
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->stop)
			break;
		pthread_mutex_unlock(&f->mu);
		f->batch->client_checks = true;
		rc = fetch_batch_get(f->batch, f->client, f->ids,
				     f->plain_lens, f->n);
		if (rc == 0)
			rc = fetch_batch_decode(f->batch, f->dctx);
		if (rc == 0)
			fetcher_report(f);
		pthread_mutex_lock(&f->mu);
		f->rc = rc;
		if (rc < 0)
			snprintf(f->msg, sizeof(f->msg), "%s", dd_error_last());
		f->batch = NULL;
		f->pending = false;
		pthread_cond_broadcast(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int fetcher_new(struct fetcher **out, const struct settings *s)
{
	struct fetcher *f;
	int rc;

	*out = NULL;
	if (!(f = calloc(1, sizeof(*f))))
		return dd_error_set(-ENOMEM, "out of memory");
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if ((rc = client_new(&f->client, s)) < 0)
		goto fail;
	if (!(f->dctx = ZSTD_createDCtx())) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = pthread_create(&f->thread, NULL, fetcher_main, f))) {
		rc = dd_error_set(-rc, "cannot start fetch thread: %s",
				  strerror(rc));
		goto fail;
	}
	f->started = true;
	*out = f;
	return 0;
fail:
	fetcher_free(f);
	return rc;
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	while (f->pending)
		pthread_cond_wait(&f->cv, &f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (f->started)
		pthread_join(f->thread, NULL);
	client_free(f->client);
	ZSTD_freeDCtx(f->dctx);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void fetcher_start(struct fetcher *f, struct fetch_batch *b,
		   const struct dd_id *ids, const uint32_t *plain_lens,
		   size_t n)
{
	pthread_mutex_lock(&f->mu);
	assert(!f->pending);
	f->batch = b;
	f->ids = ids;
	f->plain_lens = plain_lens;
	f->n = n;
	f->rc = 0;
	f->pending = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

int fetcher_wait(struct fetcher *f)
{
	int rc;

	pthread_mutex_lock(&f->mu);
	while (f->pending)
		pthread_cond_wait(&f->cv, &f->mu);
	rc = f->rc;
	if (rc < 0)
		dd_error_set(rc, "%s", f->msg);
	pthread_mutex_unlock(&f->mu);
	return rc;
}
