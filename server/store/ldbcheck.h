/*
 * ldbcheck.h - verifies the checksum of every block of every live LevelDB
 * table of the index directory, without LevelDB. The live tables are the
 * ones CURRENT's MANIFEST lists (its records checksummed too); each must
 * exist with the size the MANIFEST gives. A table file it does not list
 * (one a crash left half written) is not looked at: LevelDB deletes it.
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
 * Run it before LevelDB opens the directory, so that no compaction changes
 * the set of tables meanwhile. (The store and `check` scan first, then
 * open.) Without CURRENT there is nothing to check (0): LevelDB then
 * makes a new index or refuses to open, which its caller reports.
 */
#ifndef SRV_LDBCHECK_H
#define SRV_LDBCHECK_H

#include <stdint.h>

struct ldbcheck_stats {
	uint64_t tables;
	uint64_t blocks;
	uint64_t bytes;
};

/* 0 when every live table of `dir` is intact; -EBADMSG naming the table
 * (or the MANIFEST) and what is wrong; -ENOENT if `dir` does not exist; -EIO (or -ENOMEM) when
 * a file cannot be read. `st` may be NULL. */
int ldbcheck_dir(const char *dir, struct ldbcheck_stats *st);

#endif
