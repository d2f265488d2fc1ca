/* test_crypt.c - client-side encryption: known-answer vectors (RFC 4231
 * HMAC-SHA-256, the GCM specification's AES-256 cases as NIST publishes
 * them, RFC 7914 scrypt), key file wrap/unwrap, seal/open and tamper
 * detection, keyed ids, and the sealed record lengths. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "compress.h"
#include "crypt.h"
#include "hash.h"
#include "util.h"
#include "golden.h"
#include "unit.h"

static void unhex(uint8_t *out, const char *hex)
{
	CHECK_EQ(dd_hex_decode(out, strlen(hex) / 2, hex, strlen(hex)), 0);
}

static bool eq_hex(const uint8_t *p, size_t n, const char *hex)
{
	char buf[256];

	if (2 * n >= sizeof(buf) || strlen(hex) != 2 * n)
		return false;
	dd_hex_encode(buf, p, n);
	return strcmp(buf, hex) == 0;
}

static void test_hmac_rfc4231(void)
{
	uint8_t key[20], out[32];

	memset(key, 0x0b, sizeof(key));
	CHECK_EQ(dd_crypt_hmac_sha256(out, key, 20, "Hi There", 8), 0);
	CHECK(eq_hex(out, 32, "b0344c61d8db38535ca8afceaf0bf12b"
		     "881dc200c9833da726e9376c2e32cff7"));
	CHECK_EQ(dd_crypt_hmac_sha256(out, "Jefe", 4,
				      "what do ya want for nothing?", 28), 0);
	CHECK(eq_hex(out, 32, "5bdcc146bf60754e6a042426089575c7"
		     "5a003f089d2739839dec58b964ec3843"));
}

static void test_gcm_vectors(void)
{
	uint8_t key[32] = { 0 }, iv[12] = { 0 }, pt[64] = { 0 }, ct[64];
	uint8_t tag[16], ad[20];

	/* Test case 13: empty plaintext. */
	CHECK_EQ(dd_crypt_gcm_seal_raw(ct, tag, key, iv, NULL, 0, pt, 0), 0);
	CHECK(eq_hex(tag, 16, "530f8afbc74536b9a963b4f1c4cb738b"));
	/* Test case 14: one zero block. */
	CHECK_EQ(dd_crypt_gcm_seal_raw(ct, tag, key, iv, NULL, 0, pt, 16), 0);
	CHECK(eq_hex(ct, 16, "cea7403d4d606b6e074ec5d3baf39d18"));
	CHECK(eq_hex(tag, 16, "d0d1c8a799996bf0265b98b5d48ab919"));
	/* Test case 16: associated data and a partial block. */
	unhex(key, "feffe9928665731c6d6a8f9467308308"
	      "feffe9928665731c6d6a8f9467308308");
	unhex(iv, "cafebabefacedbaddecaf888");
	unhex(pt, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
	      "8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
	      "ba637b39");
	unhex(ad, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
	CHECK_EQ(dd_crypt_gcm_seal_raw(ct, tag, key, iv, ad, 20, pt, 60), 0);
	CHECK(eq_hex(ct, 60, "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c9"
		     "7598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e"
		     "6393ba7a0abcc9f662"));
	CHECK(eq_hex(tag, 16, "76fc6ece0f4e1768cddf8853bb2d551b"));
}

static void test_scrypt_rfc7914(void)
{
	uint8_t out[64];

	CHECK_EQ(dd_crypt_scrypt(out, 64, "", 0, (const uint8_t *)"", 0, 16,
				 1, 1), 0);
	CHECK(eq_hex(out, 64, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8"
		     "dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0"
		     "fb2e0d3628cf35e20c38d18906"));
	CHECK_EQ(dd_crypt_scrypt(out, 64, "password", 8,
				 (const uint8_t *)"NaCl", 4, 1024, 8, 16), 0);
	CHECK(eq_hex(out, 64, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830"
		     "e77376634b3731622eaf30d92e22a3886ff109279d9830dac727af"
		     "b94a83ee6d8360cbdfa2cc0640"));
}

static void test_wrap_unwrap(void)
{
	struct dd_crypt *k = NULL, *k2 = NULL, *k3 = NULL;
	char f1[DD_CRYPT_FPR_HEX_LEN + 1], f2[DD_CRYPT_FPR_HEX_LEN + 1];
	struct dd_buf file;
	struct dd_id a, b;

	dd_buf_init(&file, 0);
	CHECK_EQ(dd_crypt_generate(&k), 0);
	/* The smallest cost a file may carry keeps the test quick. */
	CHECK_EQ(dd_crypt_wrap(&file, k, "pw", 2, 14, 8, 1), 0);
	CHECK_EQ(dd_crypt_unwrap(&k2, file.data, file.len, "pw", 2), 0);
	dd_crypt_fingerprint(f1, k);
	dd_crypt_fingerprint(f2, k2);
	CHECK(strcmp(f1, f2) == 0);
	dd_crypt_id(k, &a, "chunk", 5);
	dd_crypt_id(k2, &b, "chunk", 5);
	CHECK(dd_id_eq(&a, &b));
	/* A new key is a version 2 file (128 bytes) with a chunker seed of
	 * its own, which the round trip keeps. */
	CHECK_EQ(file.len, 128);
	CHECK_EQ(dd_le32(file.data + 4), 2);
	{
		uint64_t s1 = 0, s2 = 1, s3 = 2;

		CHECK(dd_crypt_chunker_seed(k, &s1));
		CHECK(dd_crypt_chunker_seed(k2, &s2));
		CHECK(s1 == s2);
		CHECK_EQ(dd_crypt_generate(&k3), 0);
		CHECK(dd_crypt_chunker_seed(k3, &s3) && s3 != s1);
		dd_crypt_free(k3);
		k3 = NULL;
	}
	/* A keyed id is not the SHA-256 and depends on the key. */
	dd_sha256(&b, "chunk", 5);
	CHECK(!dd_id_eq(&a, &b));
	CHECK_EQ(dd_crypt_generate(&k3), 0);
	dd_crypt_id(k3, &b, "chunk", 5);
	CHECK(!dd_id_eq(&a, &b));
	dd_crypt_free(k3);
	/* Wrong passphrase; a changed byte anywhere; bad parameters. */
	CHECK_EQ(dd_crypt_unwrap(&k3 + 0, file.data, file.len, "px", 2),
		 -EACCES);
	CHECK(k3 == NULL);
	for (size_t i = 12; i < file.len; i += 17) {
		file.data[i] ^= 1;
		CHECK(dd_crypt_unwrap(&k3, file.data, file.len, "pw", 2) < 0);
		file.data[i] ^= 1;
	}
	file.data[8] = 20;     /* N = 2^20, r = 32: 4 GiB */
	file.data[9] = 32;
	CHECK_EQ(dd_crypt_unwrap(&k3, file.data, file.len, "pw", 2),
		 -EBADMSG);
	file.data[9] = 8;
	file.data[8] = 40;     /* N = 2^40 */
	CHECK_EQ(dd_crypt_unwrap(&k3, file.data, file.len, "pw", 2),
		 -EBADMSG);
	CHECK_EQ(dd_crypt_unwrap(&k3, file.data, file.len - 1, "pw", 2),
		 -EBADMSG);
	CHECK_EQ(dd_crypt_wrap(&file, k, "pw", 2, 30, 8, 1), -EINVAL);
	dd_crypt_free(k);
	dd_crypt_free(k2);
	dd_crypt_free(k3);
	dd_crypt_free(NULL);
	dd_buf_release(&file);
}

static void test_seal_open(void)
{
	struct dd_crypt *k = NULL, *other = NULL;
	struct dd_buf s1, s2, out;
	uint8_t ad[DD_CRYPT_CHUNK_AD_LEN], ad2[DD_CRYPT_CHUNK_AD_LEN];
	const char msg[] = "the quick brown fox";
	struct dd_id id, id2;

	dd_buf_init(&s1, 0);
	dd_buf_init(&s2, 0);
	dd_buf_init(&out, 0);
	CHECK_EQ(dd_crypt_generate(&k), 0);
	CHECK_EQ(dd_crypt_generate(&other), 0);
	dd_crypt_id(k, &id, msg, sizeof(msg));
	dd_crypt_chunk_ad(ad, &id, DD_COMP_NONE, sizeof(msg));
	CHECK_EQ(dd_crypt_seal(k, &s1, ad, sizeof(ad), msg, sizeof(msg)), 0);
	CHECK_EQ(s1.len, sizeof(msg) + DD_CRYPT_OVERHEAD);
	CHECK(memmem(s1.data, s1.len, "quick", 5) == NULL);
	/* Random nonces: the same bytes seal differently. */
	CHECK_EQ(dd_crypt_seal(k, &s2, ad, sizeof(ad), msg, sizeof(msg)), 0);
	CHECK(memcmp(s1.data, s2.data, s1.len) != 0);
	CHECK_EQ(dd_crypt_open(k, &out, ad, sizeof(ad), s1.data, s1.len), 0);
	CHECK_EQ(out.len, sizeof(msg));
	CHECK(memcmp(out.data, msg, sizeof(msg)) == 0);
	/* Every flipped byte is caught: nonce, ciphertext, tag. */
	for (size_t i = 0; i < s1.len; i++) {
		s1.data[i] ^= 0x80;
		CHECK_EQ(dd_crypt_open(k, &out, ad, sizeof(ad), s1.data,
				       s1.len), -EBADMSG);
		s1.data[i] ^= 0x80;
	}
	/* Another id, other flags, another length, another key. */
	dd_sha256(&id2, msg, sizeof(msg));
	dd_crypt_chunk_ad(ad2, &id2, DD_COMP_NONE, sizeof(msg));
	CHECK_EQ(dd_crypt_open(k, &out, ad2, sizeof(ad2), s1.data, s1.len),
		 -EBADMSG);
	dd_crypt_chunk_ad(ad2, &id, DD_COMP_ZSTD, sizeof(msg));
	CHECK_EQ(dd_crypt_open(k, &out, ad2, sizeof(ad2), s1.data, s1.len),
		 -EBADMSG);
	dd_crypt_chunk_ad(ad2, &id, DD_COMP_NONE, sizeof(msg) + 1);
	CHECK_EQ(dd_crypt_open(k, &out, ad2, sizeof(ad2), s1.data, s1.len),
		 -EBADMSG);
	CHECK_EQ(dd_crypt_open(other, &out, ad, sizeof(ad), s1.data, s1.len),
		 -EBADMSG);
	/* Truncated below nonce + tag. */
	CHECK_EQ(dd_crypt_open(k, &out, ad, sizeof(ad), s1.data,
			       DD_CRYPT_OVERHEAD - 1), -EBADMSG);
	CHECK_EQ(dd_crypt_open(k, &out, ad, sizeof(ad), s1.data, s1.len - 1),
		 -EBADMSG);
	dd_crypt_free(k);
	dd_crypt_free(other);
	dd_buf_release(&s1);
	dd_buf_release(&s2);
	dd_buf_release(&out);
}

static void test_sealed_lengths(void)
{
	const uint32_t S = DD_COMP_SEALED, O = DD_COMP_SEALED_OVERHEAD;

	CHECK_EQ(dd_stored_len_check(S, 100, 100 + O), 0);
	CHECK_EQ(dd_stored_len_check(S, 100, 99 + O), -EBADMSG);
	CHECK_EQ(dd_stored_len_check(S, 100, 101 + O), -EBADMSG);
	CHECK_EQ(dd_stored_len_check(S, 0, O), 0);
	CHECK_EQ(dd_stored_len_check(S, 0, O - 1), -EBADMSG);
	CHECK_EQ(dd_stored_len_check(S | DD_COMP_ZSTD, 100000, 20 + O), 0);
	CHECK_EQ(dd_stored_len_check(S | DD_COMP_ZSTD, 100,
				     (uint32_t)dd_stored_len_bound(100) + O + 1),
		 -EBADMSG);
	CHECK_EQ(dd_stored_len_check(4, 100, 100), -EBADMSG);
	CHECK_EQ(dd_stored_len_check(DD_COMP_NONE, 100, 100), 0);
	/* dd_decompress never takes a sealed record for plain bytes. */
	{
		uint8_t dst[200] = { 0 };

		CHECK_EQ(dd_decompress_to(dst, S, dst, 100 + O, 100, NULL),
			 -EBADMSG);
	}
}

/* A sealed record goes through the bundle writer and reader (the wire
 * format the server checks) with its flags and bytes intact. */
static void test_sealed_bundle(void)
{
	struct dd_crypt *k = NULL;
	struct dd_buf b, sealed;
	struct dd_bundle_reader r;
	struct dd_bundle_record rec;
	uint8_t ad[DD_CRYPT_CHUNK_AD_LEN];
	const char msg[] = "sealed record payload";
	struct dd_id id;

	dd_buf_init(&b, 0);
	dd_buf_init(&sealed, 0);
	CHECK_EQ(dd_crypt_generate(&k), 0);
	dd_crypt_id(k, &id, msg, sizeof(msg));
	dd_crypt_chunk_ad(ad, &id, DD_COMP_NONE, sizeof(msg));
	CHECK_EQ(dd_crypt_seal(k, &sealed, ad, sizeof(ad), msg, sizeof(msg)), 0);
	CHECK_EQ(dd_bundle_begin(&b), 0);
	CHECK_EQ(dd_bundle_add(&b, &id, DD_COMP_SEALED, sizeof(msg),
			       sealed.data, (uint32_t)sealed.len), 0);
	/* One byte short of nonce + tag + plain: refused by the writer. */
	CHECK_EQ(dd_bundle_add(&b, &id, DD_COMP_SEALED, sizeof(msg),
			       sealed.data, (uint32_t)sealed.len - 1), -EINVAL);
	CHECK_EQ(dd_bundle_finish(&b), 0);
	CHECK_EQ(dd_bundle_reader_init(&r, b.data, b.len), 0);
	CHECK_EQ(dd_bundle_next(&r, &rec), 1);
	CHECK_EQ(rec.flags, DD_COMP_SEALED);
	CHECK(dd_id_eq(&rec.id, &id));
	CHECK_EQ(dd_crypt_open(k, &sealed, ad, sizeof(ad),
			       rec.data, rec.stored_len), 0);
	CHECK(memcmp(sealed.data, msg, sizeof(msg)) == 0);
	CHECK_EQ(dd_bundle_next(&r, &rec), 0);
	dd_crypt_free(k);
	dd_buf_release(&b);
	dd_buf_release(&sealed);
}

/* The checked-in key file (made by `dedup-agent key init`, passphrase
 * "golden passphrase") still opens to the same key: the file format is
 * stable. */
#define GOLDEN_KEY_FPR "3b95e3ec3756b426d85e0b9c6cb231fc"

static void test_golden_key(void)
{
	struct dd_crypt *k = NULL;
	char fpr[DD_CRYPT_FPR_HEX_LEN + 1];
	uint8_t *data = NULL;
	size_t len = 0;

	CHECK_EQ(golden_read("key-v1.key", &data, &len), 0);
	if (!data)
		return;
	CHECK_EQ(len, 120);
	CHECK_EQ(dd_crypt_unwrap(&k, data, len, "golden passphrase", 17), 0);
	if (k) {
		dd_crypt_fingerprint(fpr, k);
		CHECK(strcmp(fpr, GOLDEN_KEY_FPR) == 0);
	}
	/* A version 1 key has no chunker seed (its backups keep the
	 * repository's cuts), and wrapped again it stays version 1. */
	if (k) {
		struct dd_crypt *k2 = NULL;
		struct dd_buf file;
		uint64_t seed = 7;

		CHECK(!dd_crypt_chunker_seed(k, &seed));
		CHECK(seed == 7);
		dd_buf_init(&file, 0);
		CHECK_EQ(dd_crypt_wrap(&file, k, "pw", 2, 14, 8, 1), 0);
		CHECK_EQ(file.len, 120);
		CHECK_EQ(dd_crypt_unwrap(&k2, file.data, file.len, "pw", 2),
			 0);
		CHECK(k2 && !dd_crypt_chunker_seed(k2, &seed));
		dd_crypt_free(k2);
		dd_buf_release(&file);
	}
	dd_crypt_free(k);
	CHECK_EQ(dd_crypt_unwrap(&k, data, len, "golden passphrasE", 17),
		 -EACCES);
	dd_crypt_free(k);
	free(data);
}

/* The same for a version 2 key file (with its chunker seed). */
#define GOLDEN_KEY2_FPR "0facb7d667340925a747d5359733facd"
#define GOLDEN_KEY2_SEED 0x1f0541f206f9f8b0ull

static void test_golden_key_v2(void)
{
	struct dd_crypt *k = NULL;
	char fpr[DD_CRYPT_FPR_HEX_LEN + 1];
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t seed = 0;

	CHECK_EQ(golden_read("key-v2.key", &data, &len), 0);
	if (!data)
		return;
	CHECK_EQ(len, 128);
	CHECK_EQ(dd_crypt_unwrap(&k, data, len, "golden passphrase", 17), 0);
	if (k) {
		dd_crypt_fingerprint(fpr, k);
		CHECK(strcmp(fpr, GOLDEN_KEY2_FPR) == 0);
		CHECK(dd_crypt_chunker_seed(k, &seed));
		CHECK(seed == GOLDEN_KEY2_SEED);
	}
	dd_crypt_free(k);
	free(data);
}

int main(void)
{
	UNIT_RUN(test_hmac_rfc4231);
	UNIT_RUN(test_gcm_vectors);
	UNIT_RUN(test_scrypt_rfc7914);
	UNIT_RUN(test_wrap_unwrap);
	UNIT_RUN(test_golden_key_v2);
	UNIT_RUN(test_seal_open);
	UNIT_RUN(test_sealed_lengths);
	UNIT_RUN(test_sealed_bundle);
	UNIT_RUN(test_golden_key);
	UNIT_DONE();
}
