/*
 * hash.c - SHA-256 chunk ids: one buffer through the CPU's SHA extensions
 * where it has them (sha256x.c, one lane: OpenSSL's EVP_Digest costs a
 * context and a provider lookup a call, half the speed on a 512-byte
 * chunk), else and for streams through OpenSSL's EVP interface.
 *
 * The digest functions return void: SHA-256 over memory cannot fail except
 * when OpenSSL cannot allocate its context, and a wrong id would be worse
 * than stopping, so that case aborts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "hash.h"
#include "sha256x.h"
#include "util.h"

struct dd_sha256_ctx {
	EVP_MD_CTX *md;
};

void dd_sha256(struct dd_id *out, const void *data, size_t len)
{
	unsigned int n = 0;

	if (dd_sha256x_ni_usable()) {
		struct dd_sha256_job job = { data, len, out };

		dd_sha256x_ni(&job, 1);
		return;
	}
	if (EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL) != 1 ||
	    n != DD_ID_LEN)
		abort();
}

struct dd_sha256_ctx *dd_sha256_new(void)
{
	struct dd_sha256_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c->md);
		free(c);
		return NULL;
	}
	return c;
}

void dd_sha256_update(struct dd_sha256_ctx *c, const void *p, size_t n)
{
	if (EVP_DigestUpdate(c->md, p, n) != 1)
		abort();
}

void dd_sha256_final(struct dd_sha256_ctx *c, struct dd_id *out)
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(c->md, out->b, &n) != 1 || n != DD_ID_LEN ||
	    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		abort();
}

void dd_sha256_free(struct dd_sha256_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

void dd_id_to_hex(char *out, const struct dd_id *id)
{
	dd_hex_encode(out, id->b, DD_ID_LEN);
}

int dd_id_from_hex(struct dd_id *out, const char *hex)
{
	size_t n = strnlen(hex, DD_ID_HEX_LEN + 1);

	if (n != DD_ID_HEX_LEN)
		return dd_error_set(-EINVAL, "a chunk id has 64 hex digits");
	if (dd_hex_decode(out->b, DD_ID_LEN, hex, n) < 0)
		return dd_error_set(-EINVAL, "not a chunk id: '%.64s'", hex);
	return 0;
}

int dd_id_verify(const struct dd_id *id, const void *data, size_t len)
{
	struct dd_id got;
	char want_hex[DD_ID_HEX_LEN + 1], got_hex[DD_ID_HEX_LEN + 1];

	dd_sha256(&got, data, len);
	if (dd_id_eq(&got, id))
		return 0;
	dd_id_to_hex(want_hex, id);
	dd_id_to_hex(got_hex, &got);
	return dd_error_set(-EBADMSG, "chunk %s: content hashes to %s",
			    want_hex, got_hex);
}

static int dd_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DD_ID_LEN);
}

size_t dd_ids_sort_unique(struct dd_id *ids, size_t n)
{
	size_t i, u = 0;

	if (n == 0)     /* qsort(NULL, 0, ...) is undefined */
		return 0;
	qsort(ids, n, sizeof(*ids), dd_id_cmp);
	for (i = 0; i < n; i++)
		if (u == 0 || !dd_id_eq(&ids[u - 1], &ids[i]))
			ids[u++] = ids[i];
	return u;
}
