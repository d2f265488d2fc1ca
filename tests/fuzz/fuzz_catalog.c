/*
 * fuzz_catalog.c - the streaming catalog reader. The first byte sets how
 * many bytes each read returns (1 to 256), so entries straddle reads at
 * every offset; the rest is the catalog.
 */
#include <stdint.h>
#include "catalog.h"
#include "fuzz.h"

struct src {
	const uint8_t *p;
	size_t left;
	size_t step;
};

static ssize_t src_read(void *payload, void *buf, size_t len)
{
	struct src *s = payload;
	size_t n = len < s->step ? len : s->step;

	if (n > s->left)
		n = s->left;
	memcpy(buf, s->p, n);
	s->p += n;
	s->left -= n;
	return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_catalog_reader *r = NULL;
	struct dd_entry e;
	struct src s;
	volatile uint64_t sink = 0;
	uint64_t i;

	if (size < 1)
		return 0;
	s.step = (size_t)data[0] + 1;
	s.p = data + 1;
	s.left = size - 1;
	if (dd_catalog_reader_new(&r, src_read, &s) < 0)
		return 0;
	while (dd_catalog_next(r, &e) == 1) {
		sink += e.size + e.path_len + e.link_len + e.ext_len;
		if (e.path_len)
			sink += (uint8_t)e.path[e.path_len - 1];
		for (i = 0; i < e.nchunks; i++)
			sink += e.chunks[i].plain_len + e.chunks[i].id.b[31];
		dd_catalog_path_check(e.path, e.path_len);
	}
	dd_catalog_reader_free(r);
	(void)sink;
	return 0;
}
