/*
 * ldbcheck.h - verifies the checksum of every block of every LevelDB table
 * file (*.ldb, *.sst) in the index directory, without LevelDB.
 *
 * LevelDB checks a block's CRC only when a read asks for it, and never
 * the index and filter blocks of a table unless paranoid checks are on
 * (which would also refuse a log a crash tore). So a flipped byte in a
 * table goes unnoticed until a lookup lands on it, and then reads as a
 * missing chunk or a lookup error. This scan reads each table once, from
 * its footer: the index block lists the data blocks, the metaindex block
 * the filter block; each block's masked CRC-32C is checked, and the
 * blocks must lie inside the file. Cost: one sequential read of the
 * tables (docs/OPERATIONS.md gives figures).
 *
 * Run it before LevelDB opens the directory: a table that a compaction is
 * still writing has no footer yet and would read as damaged. (The store
 * and `check` scan first, then open.)
 */
#ifndef SRV_LDBCHECK_H
#define SRV_LDBCHECK_H

#include <stdint.h>

struct ldbcheck_stats {
	uint64_t tables;
	uint64_t blocks;
	uint64_t bytes;
};

/* 0 when every table of `dir` is intact; -EBADMSG naming the table and
 * what is wrong; -ENOENT if `dir` does not exist; -EIO (or -ENOMEM) when
 * a file cannot be read. `st` may be NULL. */
int ldbcheck_dir(const char *dir, struct ldbcheck_stats *st);

#endif
