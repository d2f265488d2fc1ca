/*
 * compress.h - chunk compression. A chunk is stored either raw or as one
 * zstd frame; the flag travels with it on the wire and in packs.
 */
#ifndef DD_COMPRESS_H
#define DD_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define DD_COMP_NONE 0u
#define DD_COMP_ZSTD 1u
/* Bit 1: the stored bytes are sealed by the client (docs/ENCRYPTION.md):
 * nonce[12] | AES-256-GCM ciphertext | tag[16], the ciphertext being the
 * raw or zstd bytes that bit 0 says. Nobody without the key can decode
 * them; dd_decompress refuses them. */
#define DD_COMP_SEALED 2u
#define DD_COMP_SEALED_OVERHEAD 28u
#define DD_COMP_KNOWN (DD_COMP_ZSTD | DD_COMP_SEALED)

/*
 * Compresses `len` bytes at zstd `level` into out (replacing its contents).
 * If compression saves nothing, out holds the raw bytes. Returns the flag
 * actually used (DD_COMP_NONE or DD_COMP_ZSTD) or a negative error.
 * `cctx` is an optional reusable ZSTD_CCtx* (NULL: a temporary one).
 */
int dd_compress(struct dd_buf *out, const void *data, size_t len, int level,
		void *cctx);
/* The same into `dst`, which has room for `len` bytes (the raw
 * fallback's); *out_len is the stored length. */
int dd_compress_to(void *dst, size_t *out_len, const void *data, size_t len,
		   int level, void *cctx);

/*
 * Decodes a stored chunk into out (replacing its contents). The result must
 * be exactly `plain_len` bytes (<= DD_CHUNK_SIZE_LIMIT), else -EBADMSG.
 * `dctx` is an optional reusable ZSTD_DCtx*.
 */
int dd_decompress(struct dd_buf *out, uint32_t flags, const void *data,
		  size_t len, uint32_t plain_len, void *dctx);
/* The same into `dst`, which has room for plain_len bytes (written only
 * in part when the chunk is bad). */
int dd_decompress_to(void *dst, uint32_t flags, const void *data, size_t len,
		     uint32_t plain_len, void *dctx);

/* The largest stored length accepted for a chunk of plain_len bytes. */
size_t dd_stored_len_bound(uint32_t plain_len);

/*
 * Whether flags and lengths agree, as every reader of a record checks
 * them: known flags; raw bytes exactly plain_len; zstd bytes at most
 * dd_stored_len_bound; a sealed record DD_COMP_SEALED_OVERHEAD more than
 * what its inner encoding allows. 0, or -EBADMSG with the reason (that
 * starts with "has ..." or "stores ..." to follow the caller's subject).
 */
int dd_stored_len_check(uint32_t flags, uint32_t plain_len,
			uint32_t stored_len);

#endif
