/*
 * fuzz.h - helpers shared by the libFuzzer harnesses: a private scratch
 * directory per process (under $DD_FUZZ_TMP, else $TMPDIR, else /tmp),
 * and writing a whole file. Harnesses never print; a failure to set up is
 * an abort, which libFuzzer reports.
 */
#ifndef DD_FUZZ_H
#define DD_FUZZ_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A new directory "<base>/dd-fuzz-<name>-XXXXXX"; the path is static. */
static inline const char *fz_scratch(const char *name)
{
	static char dir[4096];
	const char *base = getenv("DD_FUZZ_TMP");

	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	snprintf(dir, sizeof(dir), "%s/dd-fuzz-%s-XXXXXX", base, name);
	if (!mkdtemp(dir))
		abort();
	return dir;
}

static inline void fz_write(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const unsigned char *b = p;

	if (fd < 0)
		abort();
	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w <= 0)
			abort();
		b += w;
		n -= (size_t)w;
	}
	close(fd);
}

#endif
