/*
 * tls.h - the repository's TLS identity: a self-signed leaf certificate
 * (CA:FALSE), which agents trust directly with `--ca tls/cert.pem`
 * (OpenSSL accepts a self-signed certificate found in the trust store as
 * its own anchor) or pin with `--fingerprint`. It cannot sign others, so
 * trusting it trusts nothing else.
 */
#ifndef SRV_TLS_H
#define SRV_TLS_H

#include <stddef.h>

/* Names a certificate may carry besides the defaults, at most. */
#define TLS_NAMES_MAX 32

/*
 * Generates an EC P-256 key and an X.509 v3 certificate valid for 10
 * years, subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1,
 * DNS:<hostname> (when `hostname` is a usable DNS name) and each of
 * names[] (an IPv4 or IPv6 address, or a DNS name; tls_name_check),
 * CA:FALSE (critical), keyUsage digitalSignature (critical),
 * extendedKeyUsage serverAuth, self-signed with SHA-256. (Repositories
 * made before kept their CA:TRUE certificate; both work.) Writes both PEM
 * files durably, the key first, with mode 0600.
 */
int tls_generate(const char *cert_path, const char *key_path,
		 const char *hostname, const char *const *names,
		 size_t nnames);
/* -EINVAL with a reason unless `name` is an IP address or a DNS name
 * (letters, digits, '-' and '.'). */
int tls_name_check(const char *name);
/* Appends `name` (checked, borrowed) to names[*n], which holds
 * TLS_NAMES_MAX; -E2BIG past that. */
int tls_names_add(const char **names, size_t *n, const char *name);

/* Reads a PEM file (<= 1 MiB) as a NUL-terminated string; caller frees. */
int tls_read_pem(char **out, const char *path);

/*
 * The SHA-256 of the first certificate in `cert_pem` (its DER encoding),
 * as 64 lowercase hex digits: what `openssl x509 -fingerprint -sha256`
 * shows, and what agents pin with --fingerprint sha256:<hex>.
 * -EBADMSG if the text holds no certificate.
 */
int tls_fingerprint(char out[65], const char *cert_pem);

/*
 * Checks that `cert_pem` holds a certificate that is valid now and
 * `key_pem` the private key that belongs to it. The paths only name the
 * files in the reason (-EBADMSG).
 */
int tls_check_pair(const char *cert_pem, const char *key_pem,
		   const char *cert_path, const char *key_path);

#endif
