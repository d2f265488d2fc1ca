/*
 * holes.c - data runs of a sparse file (holes.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "holes.h"

bool holes_maybe(const struct stat *st)
{
	return st->st_size >= (off_t)HOLES_MIN &&
	       (uint64_t)st->st_blocks * 512u < (uint64_t)st->st_size;
}

/* lseek that reports ENXIO (no data / no hole past off) as 0 in *found. */
static int holes_seek(int fd, uint64_t off, int whence, uint64_t *out,
		      bool *found)
{
	off_t r = lseek(fd, (off_t)off, whence);

	*out = 0;
	if (r < 0) {
		if (errno != ENXIO)
			return -errno;
		*found = false;
		return 0;
	}
	*out = (uint64_t)r;
	*found = true;
	return 0;
}

int holes_next_run(int fd, uint64_t off, uint64_t *start, uint64_t *end)
{
	uint64_t data, hole, next, eof;
	bool found;
	int rc;

	if ((rc = holes_seek(fd, off, SEEK_DATA, &data, &found)) < 0)
		return rc;
	if (!found)
		return 0;
	if (data - off < HOLES_MIN)
		data = off;
	*start = data;
	for (;;) {
		if ((rc = holes_seek(fd, data, SEEK_HOLE, &hole, &found)) < 0)
			return rc;
		if (!found)         /* the file shrank under us: stop there */
			hole = data;
		if ((rc = holes_seek(fd, hole, SEEK_DATA, &next, &found)) < 0)
			return rc;
		if (!found) {
			/* Only a hole up to the end: read a short one. */
			off_t r = lseek(fd, 0, SEEK_END);

			if (r < 0)
				return -errno;
			eof = (uint64_t)r;
			if (eof > hole && eof - hole < HOLES_MIN)
				hole = eof;
			break;
		}
		/* A long hole ends the run; a short one (or a file that
		 * changes under us and gives no progress) does not loop. */
		if (next - hole >= HOLES_MIN || next <= data)
			break;
		data = next;
	}
	*end = hole;
	return 1;
}
