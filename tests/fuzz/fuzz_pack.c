/*
 * fuzz_pack.c - the pack reader: dd_pack_scan and dd_pack_salvage over a
 * file holding the input, and dd_pack_read_record at a location taken
 * from the input's first bytes.
 */
#include <stdint.h>
#include "fuzz.h"
#include "pack.h"

static int scan_cb(void *payload, const struct dd_id *id,
		   const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	volatile uint8_t sink = 0;

	(void)payload;
	(void)id;
	if (loc->stored_len)
		sink ^= stored[0] ^ stored[loc->stored_len - 1];
	(void)sink;
	return 0;
}

/* Takes every other record, so both ways on through the file run. */
static int salvage_cb(void *payload, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	unsigned *n = payload;

	scan_cb(NULL, id, loc, stored);
	return (*n)++ % 2 ? DD_PACK_SALVAGE_TAKEN : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[4200];
	static struct dd_buf out;
	struct dd_chunk_loc loc;
	struct dd_id id;
	uint8_t enc[DD_CHUNK_LOC_V1_LEN];
	unsigned n = 0;
	bool sealed;
	int fd;

	if (!path[0]) {
		snprintf(path, sizeof(path), "%s/0000000000000001.pack",
			 fz_scratch("pack"));
		dd_buf_init(&out, 0);
	}
	fz_write(path, data, size);
	dd_pack_scan(path, scan_cb, NULL, &sealed);
	dd_pack_salvage(path, 1, 0, salvage_cb, &n);

	/* A location from the first 60 bytes: u64 offset | u32 flags |
	 * u32 plain | u32 stored | id[32]. */
	if (size >= 60) {
		enc[0] = 1;
		dd_put_le64(enc + 1, 1);
		memcpy(enc + 9, data, 20);
		memcpy(id.b, data + 20, 32);
		if (dd_chunk_loc_decode(&loc, enc, sizeof(enc)) == 0 &&
		    loc.stored_len <= (1u << 20)) {
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				dd_pack_read_record(fd, &id, &loc, &out);
				close(fd);
			}
		}
	}
	dd_buf_reset(&out);
	return 0;
}
