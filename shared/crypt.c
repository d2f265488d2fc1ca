/*
 * crypt.c - key file, keyed ids and AES-256-GCM sealing (crypt.h). All
 * cryptography is OpenSSL's; this file only arranges it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypt.h"

/* The key file: "DDKY" | u32 version | u8 log2(N) | u8 r | u8 p | u8 0 |
 * salt[16] | nonce[12] | sealed secrets | tag[16]. The secrets are the id
 * and encryption keys (version 1, 64 bytes), then the chunker's seed
 * (version 2, 72 bytes: keys made since). */
#define CRYPT_FILE_MAGIC "DDKY"
#define CRYPT_SALT_LEN 16
#define CRYPT_SECRETS_V1 (2 * DD_CRYPT_KEY_LEN)
#define CRYPT_SECRETS_V2 (CRYPT_SECRETS_V1 + CRYPT_SEED_LEN)
#define CRYPT_SEED_LEN 8
#define CRYPT_FILE_HEAD 12
#define CRYPT_FILE_LEN(secrets) (CRYPT_FILE_HEAD + CRYPT_SALT_LEN + \
				 DD_CRYPT_OVERHEAD + (secrets))

struct dd_crypt {
	/* CRYPT_SECRETS_V2 bytes, as sealed in the key file */
	uint8_t id_key[DD_CRYPT_KEY_LEN];
	uint8_t enc_key[DD_CRYPT_KEY_LEN];
	uint8_t chunker_seed[CRYPT_SEED_LEN];
	/* version 2: chunker_seed keys the chunker's gear table */
	bool has_seed;
};

static struct dd_crypt *crypt_alloc(void)
{
	return OPENSSL_secure_zalloc(sizeof(struct dd_crypt));
}

int dd_crypt_generate(struct dd_crypt **out)
{
	struct dd_crypt *k = crypt_alloc();
	int rc;

	*out = NULL;
	if (!k)
		return dd_error_set(-ENOMEM, "out of memory");
	rc = dd_random(k, CRYPT_SECRETS_V2);
	k->has_seed = true;
	if (rc < 0) {
		dd_crypt_free(k);
		return dd_error_set(rc, "no random bytes for a key");
	}
	*out = k;
	return 0;
}

void dd_crypt_free(struct dd_crypt *k)
{
	if (!k)
		return;
	OPENSSL_secure_clear_free(k, sizeof(*k));
}

void dd_crypt_fingerprint(char *out, const struct dd_crypt *k)
{
	static const char label[] = "dedup key fingerprint";
	uint8_t mac[32];

	dd_crypt_hmac_sha256(mac, k->id_key, sizeof(k->id_key), label,
			     sizeof(label) - 1);
	dd_hex_encode(out, mac, DD_CRYPT_FPR_HEX_LEN / 2);
}

bool dd_crypt_chunker_seed(const struct dd_crypt *k, uint64_t *seed)
{
	if (!k->has_seed)
		return false;
	*seed = dd_le64(k->chunker_seed);
	return true;
}

/* ---- primitives ---- */

int dd_crypt_hmac_sha256(uint8_t out[32], const void *key, size_t key_len,
			 const void *data, size_t len)
{
	unsigned int n = 0;

	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) ||
	    n != 32)
		return dd_error_set(-EIO, "HMAC-SHA-256 failed");
	return 0;
}

int dd_crypt_scrypt(uint8_t *out, size_t out_len, const char *pass,
		    size_t pass_len, const uint8_t *salt, size_t salt_len,
		    uint64_t n, unsigned r, unsigned p)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SCRYPT, NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	uint32_t r32 = r, p32 = p;
	uint64_t maxmem = (uint64_t)1 << 31;
	OSSL_PARAM params[7];
	int rc = 0;

	params[0] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_PASSWORD, (void *)pass, pass_len);
	params[1] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32);
	params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
						&maxmem);
	params[6] = OSSL_PARAM_construct_end();
	if (!ctx || EVP_KDF_derive(ctx, out, out_len, params) != 1)
		rc = dd_error_set(-ENOMEM, "scrypt failed (out of memory?)");
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

int dd_crypt_gcm_seal_raw(uint8_t *ct, uint8_t tag[DD_CRYPT_TAG_LEN],
			  const uint8_t key[DD_CRYPT_KEY_LEN],
			  const uint8_t nonce[DD_CRYPT_NONCE_LEN],
			  const void *ad, size_t ad_len, const void *pt,
			  size_t len)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok;

	ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce);
	if (ok && ad_len)
		ok = EVP_EncryptUpdate(c, NULL, &n, ad, (int)ad_len);
	if (ok && len)
		ok = EVP_EncryptUpdate(c, ct, &n, pt, (int)len);
	ok = ok && EVP_EncryptFinal_ex(c, ct + len, &n) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, DD_CRYPT_TAG_LEN,
				 tag);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : dd_error_set(-EIO, "AES-256-GCM failed");
}

/* 0, or -EBADMSG when the tag does not match. */
static int crypt_gcm_open_raw(uint8_t *pt, const uint8_t *key,
			      const uint8_t *nonce, const void *ad,
			      size_t ad_len, const uint8_t *ct, size_t len,
			      const uint8_t *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok;

	if (!c)
		return dd_error_set(-ENOMEM, "out of memory");
	ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce);
	if (ok && ad_len)
		ok = EVP_DecryptUpdate(c, NULL, &n, ad, (int)ad_len);
	if (ok && len)
		ok = EVP_DecryptUpdate(c, pt, &n, ct, (int)len);
	ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG,
				       DD_CRYPT_TAG_LEN, (void *)tag) &&
	     EVP_DecryptFinal_ex(c, pt + len, &n) > 0;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -EBADMSG;
}

/* ---- sealing ---- */

static int crypt_seal_with(const uint8_t *key, struct dd_buf *out,
			   const void *ad, size_t ad_len, const void *data,
			   size_t len)
{
	uint8_t *p;
	int rc;

	if (len > INT32_MAX)
		return dd_error_set(-E2BIG, "too much to seal at once");
	dd_buf_reset(out);
	if (dd_buf_reserve(out, len + DD_CRYPT_OVERHEAD) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	p = out->data;
	if ((rc = dd_random(p, DD_CRYPT_NONCE_LEN)) < 0)
		return dd_error_set(rc, "no random bytes for a nonce");
	rc = dd_crypt_gcm_seal_raw(p + DD_CRYPT_NONCE_LEN,
				   p + DD_CRYPT_NONCE_LEN + len, key, p, ad,
				   ad_len, data, len);
	if (rc == 0)
		out->len = len + DD_CRYPT_OVERHEAD;
	return rc;
}

static int crypt_open_with(const uint8_t *key, struct dd_buf *out,
			   const void *ad, size_t ad_len, const void *sealed,
			   size_t len)
{
	const uint8_t *s = sealed;
	size_t n;

	if (len < DD_CRYPT_OVERHEAD || len - DD_CRYPT_OVERHEAD > INT32_MAX)
		return dd_error_set(-EBADMSG, "sealed blob of %zu bytes is "
				    "malformed", len);
	n = len - DD_CRYPT_OVERHEAD;
	dd_buf_reset(out);
	if (dd_buf_reserve(out, n ? n : 1) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	if (crypt_gcm_open_raw(out->data, key, s, ad, ad_len,
			       s + DD_CRYPT_NONCE_LEN, n,
			       s + DD_CRYPT_NONCE_LEN + n) < 0)
		return dd_error_set(-EBADMSG, "sealed blob does not "
				    "authenticate (wrong key or damaged)");
	out->len = n;
	return 0;
}

int dd_crypt_seal(const struct dd_crypt *k, struct dd_buf *out,
		  const void *ad, size_t ad_len, const void *data, size_t len)
{
	return crypt_seal_with(k->enc_key, out, ad, ad_len, data, len);
}

int dd_crypt_open(const struct dd_crypt *k, struct dd_buf *out,
		  const void *ad, size_t ad_len, const void *sealed,
		  size_t len)
{
	return crypt_open_with(k->enc_key, out, ad, ad_len, sealed, len);
}

void dd_crypt_chunk_ad(uint8_t *ad, const struct dd_id *id, uint32_t flags,
		       uint32_t plain_len)
{
	memcpy(ad, "DDSC", 4);
	memcpy(ad + 4, id->b, DD_ID_LEN);
	dd_put_le32(ad + 4 + DD_ID_LEN, flags);
	dd_put_le32(ad + 8 + DD_ID_LEN, plain_len);
}

void dd_crypt_id(const struct dd_crypt *k, struct dd_id *out,
		 const void *data, size_t len)
{
	/* HMAC over memory cannot fail short of a broken library. */
	if (dd_crypt_hmac_sha256(out->b, k->id_key, sizeof(k->id_key), data,
				 len) < 0)
		abort();
}

/* ---- the key file ---- */

static int crypt_kek(uint8_t kek[DD_CRYPT_KEY_LEN], const char *pass,
		     size_t pass_len, const uint8_t *salt, unsigned log_n,
		     unsigned r, unsigned p)
{
	return dd_crypt_scrypt(kek, DD_CRYPT_KEY_LEN, pass, pass_len, salt,
			       CRYPT_SALT_LEN, (uint64_t)1 << log_n, r, p);
}

/* Bounds on what a key file may ask: scrypt needs 128 * N * r bytes, at
 * most 1 GiB here, so a hostile file cannot exhaust memory. */
static bool crypt_params_ok(unsigned log_n, unsigned r, unsigned p)
{
	return log_n >= 14 && log_n <= 20 && r >= 1 && r <= 32 && p >= 1 &&
	       p <= 16 && ((uint64_t)128 << log_n) * r <= ((uint64_t)1 << 30);
}

int dd_crypt_wrap(struct dd_buf *out, const struct dd_crypt *k,
		  const char *pass, size_t pass_len, unsigned log_n,
		  unsigned r, unsigned p)
{
	uint8_t head[CRYPT_FILE_HEAD + CRYPT_SALT_LEN];
	uint8_t kek[DD_CRYPT_KEY_LEN];
	struct dd_buf sealed;
	int rc;

	if (!crypt_params_ok(log_n, r, p))
		return dd_error_set(-EINVAL, "scrypt parameters out of bounds");
	memcpy(head, CRYPT_FILE_MAGIC, 4);
	dd_put_le32(head + 4, k->has_seed ? 2 : 1);
	head[8] = (uint8_t)log_n;
	head[9] = (uint8_t)r;
	head[10] = (uint8_t)p;
	head[11] = 0;
	if ((rc = dd_random(head + CRYPT_FILE_HEAD, CRYPT_SALT_LEN)) < 0)
		return dd_error_set(rc, "no random bytes for a salt");
	rc = crypt_kek(kek, pass, pass_len, head + CRYPT_FILE_HEAD, log_n, r,
		       p);
	if (rc < 0)
		return rc;
	dd_buf_init(&sealed, 0);
	/* The header is associated data: changing N or the salt fails. */
	rc = crypt_seal_with(kek, &sealed, head, sizeof(head), k,
			     k->has_seed ? CRYPT_SECRETS_V2 : CRYPT_SECRETS_V1);
	OPENSSL_cleanse(kek, sizeof(kek));
	dd_buf_reset(out);
	if (rc == 0 && (dd_buf_append(out, head, sizeof(head)) < 0 ||
			dd_buf_append(out, sealed.data, sealed.len) < 0))
		rc = dd_error_set(-ENOMEM, "out of memory");
	dd_buf_release(&sealed);
	return rc;
}

int dd_crypt_unwrap(struct dd_crypt **out, const void *file, size_t len,
		    const char *pass, size_t pass_len)
{
	const uint8_t *f = file;
	uint8_t kek[DD_CRYPT_KEY_LEN];
	const size_t hl = CRYPT_FILE_HEAD + CRYPT_SALT_LEN;
	struct dd_crypt *k;
	struct dd_buf plain;
	size_t secrets = 0;
	int rc;

	*out = NULL;
	if (len >= CRYPT_FILE_HEAD && memcmp(f, CRYPT_FILE_MAGIC, 4) == 0)
		secrets = dd_le32(f + 4) == 1 ? CRYPT_SECRETS_V1 :
			dd_le32(f + 4) == 2 ? CRYPT_SECRETS_V2 : 0;
	if (!secrets || len != CRYPT_FILE_LEN(secrets) || f[11] != 0)
		return dd_error_set(-EBADMSG, "not a dedup key file");
	if (!crypt_params_ok(f[8], f[9], f[10]))
		return dd_error_set(-EBADMSG, "key file has scrypt parameters "
				    "out of bounds");
	rc = crypt_kek(kek, pass, pass_len, f + CRYPT_FILE_HEAD, f[8], f[9],
		       f[10]);
	if (rc < 0)
		return rc;
	dd_buf_init(&plain, 0);
	rc = crypt_open_with(kek, &plain, f, hl, f + hl, len - hl);
	OPENSSL_cleanse(kek, sizeof(kek));
	if (rc == -EBADMSG)
		rc = dd_error_set(-EACCES, "wrong passphrase for the key "
				  "file (or the file was changed)");
	if (rc == 0 && plain.len != secrets)
		rc = dd_error_set(-EBADMSG, "not a dedup key file");
	if (rc == 0 && !(k = crypt_alloc()))
		rc = dd_error_set(-ENOMEM, "out of memory");
	if (rc == 0) {
		memcpy(k, plain.data, secrets);
		k->has_seed = secrets == CRYPT_SECRETS_V2;
		*out = k;
	}
	if (plain.data)
		OPENSSL_cleanse(plain.data, plain.len);
	dd_buf_release(&plain);
	return rc;
}
