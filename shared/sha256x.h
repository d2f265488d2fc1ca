/*
 * sha256x.h - the interleaved SHA-256 behind dd_sha256_batch (hash.h),
 * visible for its tests: they compare it with OpenSSL's on the machines
 * that have it, whatever dd_sha256_batch chose.
 */
#ifndef DD_SHA256X_H
#define DD_SHA256X_H

#include <stdbool.h>
#include <stddef.h>

#include "hash.h"

/* The CPU has the SHA extensions (and SSSE3, SSE4.1) and this build can
 * use them. */
bool dd_sha256x_ni_usable(void);
/* dd_sha256_batch with them, two chunks interleaved; only when usable. */
void dd_sha256x_ni(const struct dd_sha256_job *jobs, size_t n);

#endif
