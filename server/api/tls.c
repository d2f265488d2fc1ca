/*
 * tls.c - see tls.h. Uses only OpenSSL 3 EVP/X509 APIs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

#define TLS_VALID_DAYS 3650
#define TLS_PEM_MAX (1u << 20)

/* The last OpenSSL error as a reason for messages. */
static int tls_fail(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown OpenSSL error");
	ERR_clear_error();
	return dd_error_set(-EIO, "cannot %s: %s", what, buf);
}

/* True for a host name we can put in a DNS SAN: letters, digits, '-' and
 * '.', not empty, not "localhost" (already there). */
static int tls_dns_name_ok(const char *h)
{
	size_t i, n = strlen(h);

	if (n == 0 || n > 253 || strcmp(h, "localhost") == 0 || h[0] == '.' ||
	    h[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

static bool tls_is_ip(const char *name)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, name, buf) == 1 ||
	       inet_pton(AF_INET6, name, buf) == 1;
}

int tls_name_check(const char *name)
{
	if (tls_is_ip(name) || tls_dns_name_ok(name) ||
	    strcmp(name, "localhost") == 0)
		return 0;
	return dd_error_set(-EINVAL, "'%.100s' is neither an IP address nor "
			    "a DNS name (letters, digits, '-' and '.')", name);
}

int tls_names_add(const char **names, size_t *n, const char *name)
{
	int rc;

	if (*n >= TLS_NAMES_MAX)
		return dd_error_set(-E2BIG, "more than %d names",
				    TLS_NAMES_MAX);
	if ((rc = tls_name_check(name)) < 0)
		return rc;
	names[(*n)++] = name;
	return 0;
}

/* The subjectAltName value: the defaults, then names[] (checked). */
static int tls_san(struct dd_buf *b, const char *hostname,
		   const char *const *names, size_t nnames)
{
	const char *dflt = "DNS:localhost,IP:127.0.0.1,IP:::1";
	size_t i;
	int rc;

	if (nnames > TLS_NAMES_MAX)
		return dd_error_set(-E2BIG, "more than %d names",
				    TLS_NAMES_MAX);
	rc = dd_buf_append(b, dflt, strlen(dflt));
	if (rc == 0 && (tls_is_ip(hostname) || tls_dns_name_ok(hostname))) {
		const char *kind = tls_is_ip(hostname) ? ",IP:" : ",DNS:";

		rc = dd_buf_append(b, kind, strlen(kind)) ||
		     dd_buf_append(b, hostname, strlen(hostname)) ? -ENOMEM : 0;
	}
	for (i = 0; rc == 0 && i < nnames; i++) {
		const char *kind = tls_is_ip(names[i]) ? ",IP:" : ",DNS:";

		if ((rc = tls_name_check(names[i])) < 0)
			break;
		if (strcmp(names[i], "localhost") == 0 ||
		    strcmp(names[i], hostname) == 0)
			continue;
		if (dd_buf_append(b, kind, strlen(kind)) < 0 ||
		    dd_buf_append(b, names[i], strlen(names[i])) < 0)
			rc = -ENOMEM;
	}
	if (rc == 0)
		rc = dd_buf_append_u8(b, 0);
	return rc;
}

static int tls_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (!ext)
		return tls_fail("build certificate extension");
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok)
		return tls_fail("add certificate extension");
	return 0;
}

static int tls_write_bio(BIO *bio, const char *path, mode_t mode)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	int rc;

	if (len <= 0)
		return dd_error_set(-EIO, "cannot encode '%s'", path);
	rc = dd_write_file_atomic(path, data, (size_t)len, mode);
	return rc;
}

/*
 * The key, then the certificate, each replaced atomically. Replacing a
 * pair (cert new): the old key is kept aside until the certificate is in
 * place, and put back if it cannot be, so a failure leaves the old pair,
 * never a new key beside the old certificate.
 */
static int tls_write_pair(BIO *kbio, const char *key_path, BIO *cbio,
			  const char *cert_path)
{
	char old[4200];
	bool kept;
	int rc;

	if (snprintf(old, sizeof(old), "%s.old", key_path) >= (int)sizeof(old))
		return dd_error_set(-ENAMETOOLONG, "path too long");
	unlink(old);
	kept = link(key_path, old) == 0;
	if (!kept && errno != ENOENT)
		return dd_error_set(-errno, "cannot keep '%s' aside: %s",
				    key_path, strerror(errno));
	rc = tls_write_bio(kbio, key_path, 0600);
	if (rc == 0)
		rc = tls_write_bio(cbio, cert_path, 0644);
	if (rc < 0 && kept && rename(old, key_path) == 0)
		kept = false;
	if (kept)
		unlink(old);
	return rc;
}

int tls_generate(const char *cert_path, const char *key_path,
		 const char *hostname, const char *const *names,
		 size_t nnames)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	BIO *kbio = NULL, *cbio = NULL;
	X509V3_CTX v3;
	unsigned char serial_bytes[16];
	char cn[300];
	struct dd_buf san;
	int rc;

	dd_buf_init(&san, 0);
	if ((rc = tls_san(&san, hostname, names, nnames)) < 0)
		goto cleanup;
	pkey = EVP_EC_gen("P-256");
	if (!pkey) {
		rc = tls_fail("generate an EC key");
		goto cleanup;
	}
	x = X509_new();
	if (!x) {
		rc = tls_fail("allocate a certificate");
		goto cleanup;
	}
	if (!X509_set_version(x, X509_VERSION_3)) {
		rc = tls_fail("set certificate version");
		goto cleanup;
	}

	/* A random positive 127-bit serial number. */
	rc = dd_random(serial_bytes, sizeof(serial_bytes));
	if (rc < 0)
		goto cleanup;
	serial_bytes[0] &= 0x7f;
	serial_bytes[0] |= 0x01;
	bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), NULL);
	serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (!serial || !X509_set_serialNumber(x, serial)) {
		rc = tls_fail("set certificate serial");
		goto cleanup;
	}

	if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), TLS_VALID_DAYS, 0, NULL)) {
		rc = tls_fail("set certificate validity");
		goto cleanup;
	}
	if (!X509_set_pubkey(x, pkey)) {
		rc = tls_fail("set certificate key");
		goto cleanup;
	}

	snprintf(cn, sizeof(cn), "dedup-server %s",
		 tls_dns_name_ok(hostname) ? hostname : "localhost");
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					(const unsigned char *)"dedup", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name)) {
		rc = tls_fail("set certificate name");
		goto cleanup;
	}

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	/* A leaf, not a CA: whoever trusts it as agents do (--ca) trusts
	 * this one certificate, not anything its key might sign. */
	rc = tls_add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
	if (rc == 0)
		rc = tls_add_ext(x, &v3, NID_key_usage,
				 "critical,digitalSignature");
	if (rc == 0)
		rc = tls_add_ext(x, &v3, NID_ext_key_usage, "serverAuth");
	if (rc == 0)
		rc = tls_add_ext(x, &v3, NID_subject_alt_name,
				 (const char *)san.data);
	if (rc == 0)
		rc = tls_add_ext(x, &v3, NID_subject_key_identifier, "hash");
	if (rc == 0)
		rc = tls_add_ext(x, &v3, NID_authority_key_identifier,
				 "keyid:always");
	if (rc < 0)
		goto cleanup;

	if (!X509_sign(x, pkey, EVP_sha256())) {
		rc = tls_fail("sign the certificate");
		goto cleanup;
	}

	kbio = BIO_new(BIO_s_mem());
	cbio = BIO_new(BIO_s_mem());
	if (!kbio || !cbio ||
	    !PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cbio, x)) {
		rc = tls_fail("encode the key and certificate");
		goto cleanup;
	}
	rc = tls_write_pair(kbio, key_path, cbio, cert_path);
cleanup:
	dd_buf_release(&san);
	BIO_free(kbio);
	BIO_free(cbio);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

int tls_read_pem(char **out, const char *path)
{
	uint8_t *data = NULL;
	size_t len;
	int rc;

	*out = NULL;
	rc = dd_read_file(path, TLS_PEM_MAX, &data, &len);
	if (rc < 0)
		return rc;
	if (len == 0 || memchr(data, '\0', len)) {
		free(data);
		return dd_error_set(-EBADMSG, "'%s' is not a PEM file", path);
	}
	*out = (char *)data;
	return 0;
}

/* Never ask for a passphrase (OpenSSL's default reads the terminal): an
 * encrypted key simply fails to load. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static X509 *tls_parse_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)
		: NULL;

	BIO_free(bio);
	ERR_clear_error();
	return x;
}

int tls_fingerprint(char out[65], const char *cert_pem)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	X509 *x = tls_parse_cert(cert_pem);
	int ok;

	if (!x)
		return dd_error_set(-EBADMSG, "no PEM certificate found");
	ok = X509_digest(x, EVP_sha256(), md, &len);
	X509_free(x);
	if (!ok || len != 32)
		return tls_fail("compute the certificate fingerprint");
	dd_hex_encode(out, md, len);
	return 0;
}

int tls_check_pair(const char *cert_pem, const char *key_pem,
		   const char *cert_path, const char *key_path)
{
	X509 *x = tls_parse_cert(cert_pem);
	EVP_PKEY *k = NULL;
	BIO *bio = NULL;
	int rc = 0;

	if (!x)
		return dd_error_set(-EBADMSG, "'%s' holds no PEM certificate",
				    cert_path);
	bio = BIO_new_mem_buf(key_pem, -1);
	k = bio ? PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL)
		: NULL;
	ERR_clear_error();
	if (!k) {
		rc = dd_error_set(-EBADMSG, "'%s' holds no (unencrypted) PEM "
				  "private key", key_path);
		goto cleanup;
	}
	if (X509_check_private_key(x, k) != 1) {
		ERR_clear_error();
		rc = dd_error_set(-EBADMSG, "the key in '%s' does not belong to "
				  "the certificate in '%s'", key_path,
				  cert_path);
		goto cleanup;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
		rc = dd_error_set(-EBADMSG, "the certificate in '%s' has "
				  "expired", cert_path);
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0)
		rc = dd_error_set(-EBADMSG, "the certificate in '%s' is not "
				  "valid yet", cert_path);
cleanup:
	EVP_PKEY_free(k);
	BIO_free(bio);
	X509_free(x);
	return rc;
}
