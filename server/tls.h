/*
 * tls.h - the repository's TLS identity: a self-signed certificate that is
 * also its own CA, so agents pin it with `--cacert tls/cert.pem`
 * (libcurl/OpenSSL verify it as a trust anchor).
 */
#ifndef SRV_TLS_H
#define SRV_TLS_H

#include <stddef.h>

/*
 * Generates an EC P-256 key and an X.509 v3 certificate valid for 10
 * years, subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1 and
 * DNS:<hostname> (when `hostname` is a usable DNS name), CA:TRUE
 * (critical), keyUsage digitalSignature + keyCertSign, signed with
 * SHA-256. Writes both PEM files durably; the key with mode 0600.
 */
int tls_generate(const char *cert_path, const char *key_path,
		 const char *hostname);

/* Reads a PEM file (<= 1 MiB) as a NUL-terminated string; caller frees. */
int tls_read_pem(char **out, const char *path);

#endif
