/*
 * fuzz_bundle.c - the chunk bundle reader (both directions of the wire),
 * and decompression of each record it accepts, as the server does before
 * re-hashing.
 */
#include <stdint.h>
#include "bundle.h"
#include "compress.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dd_buf plain;
	struct dd_bundle_reader r;
	struct dd_bundle_record rec;

	if (dd_bundle_reader_init(&r, data, size) < 0)
		return 0;
	while (dd_bundle_next(&r, &rec) == 1) {
		if (rec.plain_len > (1u << 20))
			continue;
		dd_decompress(&plain, rec.flags, rec.data, rec.stored_len,
			      rec.plain_len, NULL);
		dd_id_verify(&rec.id, plain.data, plain.len);
	}
	dd_buf_release(&plain);
	return 0;
}
