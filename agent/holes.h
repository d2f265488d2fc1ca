/*
 * holes.h - where a sparse file's data is, by SEEK_DATA / SEEK_HOLE, so a
 * backup reads and hashes the data and records the holes as holes
 * (catalog version 3) without reading them.
 *
 * Holes shorter than HOLES_MIN are read as data: recording them would
 * cost a catalog reference and cut chunks early for no saving worth it.
 */
#ifndef DD_AGENT_HOLES_H
#define DD_AGENT_HOLES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#define HOLES_MIN (64u * 1024)

/* Whether the file of `st` may hold a hole worth looking for: it has
 * fewer blocks than its size needs (the cheap test GNU tar uses too). */
bool holes_maybe(const struct stat *st);

/*
 * The next run of data to read in `fd` at or after `off`: [*start, *end),
 * where shorter holes than HOLES_MIN (between runs, before the run, or
 * before the end of the file) are part of the run. Returns 1 with a run,
 * 0 when no data follows `off` (the rest of the file is a hole), or a
 * negative errno when the file system cannot tell (-EINVAL, -EOPNOTSUPP:
 * read the rest as data) or the calls fail. Moves the file offset: seek
 * to *start before reading.
 */
int holes_next_run(int fd, uint64_t off, uint64_t *start, uint64_t *end);

#endif
