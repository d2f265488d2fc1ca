/*
 * golden.h - access to the checked-in sample files of tests/golden/.
 *
 * The directory comes from DD_GOLDEN_DIR (default "tests/golden", relative
 * to the repository root the tests run from). With DD_GOLDEN_WRITE=1 the
 * tests (re)write the samples from their fixed inputs instead of comparing:
 * do that only on purpose, when the format version changes.
 */
#ifndef DD_GOLDEN_H
#define DD_GOLDEN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static inline const char *golden_dir(void)
{
	const char *d = getenv("DD_GOLDEN_DIR");

	return d && *d ? d : "tests/golden";
}

static inline int golden_writing(void)
{
	const char *w = getenv("DD_GOLDEN_WRITE");

	return w && strcmp(w, "1") == 0;
}

static inline void golden_path(char *out, size_t outsz, const char *name)
{
	snprintf(out, outsz, "%s/%s", golden_dir(), name);
}

/* Reads a golden file (caller frees *data); 0 or a negative error. */
static inline int golden_read(const char *name, uint8_t **data, size_t *len)
{
	char path[4096];

	golden_path(path, sizeof(path), name);
	return dd_read_file(path, 1 << 20, data, len);
}

/*
 * Compares freshly encoded bytes with the golden file `name`; in write
 * mode stores them instead. Returns 1 when they match (or were written).
 */
static inline int golden_same(const char *name, const void *data, size_t len)
{
	uint8_t *g = NULL;
	size_t glen = 0;
	int same;

	if (golden_writing()) {
		char path[4096];

		golden_path(path, sizeof(path), name);
		if (dd_write_file_atomic(path, data, len, 0644) < 0) {
			fprintf(stderr, "cannot write %s: %s\n", path,
				dd_error_last());
			return 0;
		}
		fprintf(stderr, "wrote %s (%zu bytes)\n", path, len);
		return 1;
	}
	if (golden_read(name, &g, &glen) < 0) {
		fprintf(stderr, "cannot read golden %s: %s\n", name,
			dd_error_last());
		return 0;
	}
	same = glen == len && memcmp(g, data, len) == 0;
	if (!same)
		fprintf(stderr, "golden %s differs from the encoder's output "
			"(%zu vs %zu bytes)\n", name, glen, len);
	free(g);
	return same;
}

#endif
