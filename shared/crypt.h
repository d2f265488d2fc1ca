/*
 * crypt.h - optional client-side encryption (docs/ENCRYPTION.md): one
 * small interface over OpenSSL.
 *
 *   derive  a key file's master secrets are sealed under a key derived
 *           from a passphrase with scrypt (memory-hard; N, r, p and the
 *           salt are stored in the file);
 *   id      a chunk's id is HMAC-SHA-256(id_key, plain bytes), so an id
 *           says nothing about the bytes to anyone without the key, and
 *           equal bytes still get equal ids under one key (dedup);
 *   seal    AES-256-GCM with a random 96-bit nonce; a sealed blob is
 *           nonce[12] | ciphertext | tag[16]; the associated data binds a
 *           chunk's id, flags and plain length, so a sealed chunk cannot be
 *           served under another id;
 *   open    the reverse; any change to a byte or to the associated data
 *           is -EBADMSG.
 *
 * Why a random nonce: two agents may compress the same chunk differently
 * (another zstd level or version), so a nonce derived from the id could
 * repeat with different plaintexts, which breaks GCM. A random 96-bit
 * nonce is safe for 2^32 seals under one key (NIST SP 800-38D), i.e. a
 * petabyte of 256 KiB chunks.
 *
 * A struct dd_crypt holds secrets; it is immutable after creation, so
 * threads may share one. dd_crypt_free wipes it.
 */
#ifndef DD_CRYPT_H
#define DD_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

#define DD_CRYPT_KEY_LEN 32
#define DD_CRYPT_NONCE_LEN 12
#define DD_CRYPT_TAG_LEN 16
#define DD_CRYPT_OVERHEAD (DD_CRYPT_NONCE_LEN + DD_CRYPT_TAG_LEN)
/* Fingerprint: the first 16 bytes of a hash of the secrets, in hex. */
#define DD_CRYPT_FPR_HEX_LEN 32

/* scrypt cost of a new key file: N = 2^15, r = 8, p = 1 (32 MiB, about
 * 0.1 s here). A file may carry N from 2^14 to 2^20, r 1..32, p 1..16,
 * with 128 * N * r at most 1 GiB. */
#define DD_CRYPT_SCRYPT_LOG_N 15u
#define DD_CRYPT_SCRYPT_R 8u
#define DD_CRYPT_SCRYPT_P 1u

struct dd_crypt;

/* New random master secrets (RAND_bytes). */
int dd_crypt_generate(struct dd_crypt **out);
void dd_crypt_free(struct dd_crypt *k);

/* "<32 hex>": names the key without revealing it; out holds
 * DD_CRYPT_FPR_HEX_LEN + 1 bytes. */
void dd_crypt_fingerprint(char *out, const struct dd_crypt *k);

/*
 * The key file (JSON, docs/ENCRYPTION.md). dd_crypt_wrap writes it into
 * `out` for `pass` with scrypt 2^log_n, r, p; dd_crypt_unwrap reads it:
 * -EACCES for a wrong passphrase (or a file whose sealed part was
 * changed: the two cannot be told apart), -EBADMSG for a malformed file
 * or parameters out of bounds. Messages via dd_error_set.
 */
int dd_crypt_wrap(struct dd_buf *out, const struct dd_crypt *k,
		  const char *pass, size_t pass_len, unsigned log_n,
		  unsigned r, unsigned p);
int dd_crypt_unwrap(struct dd_crypt **out, const void *file, size_t len,
		    const char *pass, size_t pass_len);

/* The chunker seed of a key made since version 2 of the key file (true),
 * which the agent uses in place of the repository's so that chunk lengths
 * say nothing about known files to whoever holds the repository's seed;
 * false for an older key (the repository's seed stays). */
bool dd_crypt_chunker_seed(const struct dd_crypt *k, uint64_t *seed);
/* The keyed chunk id of `len` bytes. */
void dd_crypt_id(const struct dd_crypt *k, struct dd_id *out,
		 const void *data, size_t len);

/*
 * Seals `len` bytes into out (replacing it): nonce | ciphertext | tag,
 * len + DD_CRYPT_OVERHEAD bytes. `ad` is the associated data (may be
 * NULL when ad_len is 0). dd_crypt_open checks and decrypts into out:
 * -EBADMSG when the blob is too short or does not authenticate.
 */
int dd_crypt_seal(const struct dd_crypt *k, struct dd_buf *out,
		  const void *ad, size_t ad_len, const void *data, size_t len);
int dd_crypt_open(const struct dd_crypt *k, struct dd_buf *out,
		  const void *ad, size_t ad_len, const void *sealed,
		  size_t len);

/* The associated data of a sealed chunk: "DDSC" | id | u32 inner flags |
 * u32 plain_len (DD_CRYPT_CHUNK_AD_LEN bytes). */
#define DD_CRYPT_CHUNK_AD_LEN (4 + DD_ID_LEN + 4 + 4)
void dd_crypt_chunk_ad(uint8_t *ad, const struct dd_id *id, uint32_t flags,
		       uint32_t plain_len);

/* Primitives, exposed for the known-answer tests. */
int dd_crypt_hmac_sha256(uint8_t out[32], const void *key, size_t key_len,
			 const void *data, size_t len);
int dd_crypt_gcm_seal_raw(uint8_t *ct, uint8_t tag[DD_CRYPT_TAG_LEN],
			  const uint8_t key[DD_CRYPT_KEY_LEN],
			  const uint8_t nonce[DD_CRYPT_NONCE_LEN],
			  const void *ad, size_t ad_len, const void *pt,
			  size_t len);
int dd_crypt_scrypt(uint8_t *out, size_t out_len, const char *pass,
		    size_t pass_len, const uint8_t *salt, size_t salt_len,
		    uint64_t n, unsigned r, unsigned p);

#endif
