/*
 * compress.c - a chunk is stored raw or as exactly one zstd frame whose
 * decoded size is the chunk's plain_len. Decoding never produces more than
 * plain_len bytes, whatever the frame claims.
 */
#include <errno.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "chunker.h"
#include "compress.h"

int dd_compress_to(void *dst, size_t *out_len, const void *data, size_t len,
		   int level, void *cctx)
{
	ZSTD_CCtx *own = NULL, *cc = cctx;
	size_t n;

	/* A frame is only kept when smaller, so it fits in len - 1 bytes and
	 * zstd stops early otherwise; then the raw bytes. */
	if (len >= 2) {
		if (!cc) {
			own = ZSTD_createCCtx();
			if (!own)
				return dd_error_set(-ENOMEM, "cannot create a "
						    "zstd context");
			cc = own;
		}
		n = ZSTD_compressCCtx(cc, dst, len - 1, data, len, level);
		ZSTD_freeCCtx(own);
		if (!ZSTD_isError(n)) {
			*out_len = n;
			return DD_COMP_ZSTD;
		}
		if (ZSTD_getErrorCode(n) != ZSTD_error_dstSize_tooSmall)
			return dd_error_set(-EIO, "zstd compression failed: %s",
					    ZSTD_getErrorName(n));
	}
	if (len)
		memcpy(dst, data, len);
	*out_len = len;
	return DD_COMP_NONE;
}

int dd_compress(struct dd_buf *out, const void *data, size_t len, int level,
		void *cctx)
{
	size_t n = 0;
	int err;

	dd_buf_reset(out);
	err = dd_buf_reserve(out, len ? len : 1);
	if (err < 0)
		return err;
	err = dd_compress_to(out->data, &n, data, len, level, cctx);
	if (err >= 0)
		out->len = n;
	return err;
}

int dd_decompress_to(void *dst, uint32_t flags, const void *data, size_t len,
		     uint32_t plain_len, void *dctx)
{
	ZSTD_DCtx *own = NULL, *dc = dctx;
	unsigned long long content;
	size_t n;

	if (plain_len > DD_CHUNK_SIZE_LIMIT)
		return dd_error_set(-EBADMSG, "chunk of %u bytes is above the "
				    "limit", plain_len);
	if (flags == DD_COMP_NONE) {
		if (len != plain_len)
			return dd_error_set(-EBADMSG, "raw chunk has %zu bytes, "
					    "expected %u", len, plain_len);
		if (len)
			memcpy(dst, data, len);
		return 0;
	}
	if (flags & DD_COMP_SEALED)
		return dd_error_set(-EBADMSG, "the chunk is sealed (client-side "
				    "encrypted): it needs the key");
	if (flags != DD_COMP_ZSTD)
		return dd_error_set(-EBADMSG, "unknown chunk encoding %u", flags);
	if (len > dd_stored_len_bound(plain_len))
		return dd_error_set(-EBADMSG, "zstd chunk of %zu bytes is too "
				    "large for %u plain bytes", len, plain_len);
	/* Exactly one frame, no trailing frames or bytes. */
	n = ZSTD_findFrameCompressedSize(data, len);
	if (ZSTD_isError(n) || n != len)
		return dd_error_set(-EBADMSG, "not a single zstd frame");
	content = ZSTD_getFrameContentSize(data, len);
	if (content == ZSTD_CONTENTSIZE_ERROR)
		return dd_error_set(-EBADMSG, "bad zstd frame header");
	if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != plain_len)
		return dd_error_set(-EBADMSG, "zstd frame holds %llu bytes, "
				    "expected %u", content, plain_len);
	if (!dc) {
		own = ZSTD_createDCtx();
		if (!own)
			return dd_error_set(-ENOMEM, "cannot create a zstd "
					    "context");
		dc = own;
	}
	/* The destination is exactly plain_len: a frame that decodes to more
	 * fails with dstSize_tooSmall instead of growing the output. */
	n = ZSTD_decompressDCtx(dc, dst, plain_len, data, len);
	ZSTD_freeDCtx(own);
	if (ZSTD_isError(n))
		return dd_error_set(-EBADMSG, "corrupt zstd frame: %s",
				    ZSTD_getErrorName(n));
	if (n != plain_len)
		return dd_error_set(-EBADMSG, "zstd frame decoded to %zu bytes, "
				    "expected %u", n, plain_len);
	return 0;
}

int dd_decompress(struct dd_buf *out, uint32_t flags, const void *data,
		  size_t len, uint32_t plain_len, void *dctx)
{
	int rc;

	dd_buf_reset(out);
	if (plain_len > DD_CHUNK_SIZE_LIMIT)
		return dd_error_set(-EBADMSG, "chunk of %u bytes is above the "
				    "limit", plain_len);
	if ((rc = dd_buf_reserve(out, plain_len ? plain_len : 1)) < 0)
		return rc;
	if ((rc = dd_decompress_to(out->data, flags, data, len, plain_len,
				   dctx)) < 0)
		return rc;
	out->len = plain_len;
	return 0;
}

size_t dd_stored_len_bound(uint32_t plain_len)
{
	return ZSTD_COMPRESSBOUND((size_t)plain_len);
}

int dd_stored_len_check(uint32_t flags, uint32_t plain_len,
			uint32_t stored_len)
{
	uint32_t inner = stored_len;

	if (flags & ~DD_COMP_KNOWN)
		return dd_error_set(-EBADMSG, "has unknown flags %u", flags);
	if (flags & DD_COMP_SEALED) {
		if (stored_len < DD_COMP_SEALED_OVERHEAD)
			return dd_error_set(-EBADMSG, "stores %u bytes, too "
					    "few for a sealed chunk",
					    stored_len);
		inner -= DD_COMP_SEALED_OVERHEAD;
	}
	if (inner > dd_stored_len_bound(plain_len))
		return dd_error_set(-EBADMSG, "stores %u bytes for %u plain "
				    "bytes", stored_len, plain_len);
	if (!(flags & DD_COMP_ZSTD) && inner != plain_len)
		return dd_error_set(-EBADMSG, "stores %u bytes for %u plain "
				    "bytes, raw", stored_len, plain_len);
	return 0;
}
