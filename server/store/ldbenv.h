/*
 * ldbenv.h - the process-wide settings of LevelDB's environment, made
 * once before the first LevelDB call.
 *
 * LevelDB 1.23 maps up to 1,000 table files with mmap and reads lookups
 * straight from the mapping, so every table page a lookup has touched
 * counts in the server's RSS until the table is closed: 2.9 GB of a
 * 50-million-chunk index (docs/SERVER-SCALE.md). Here it reads tables
 * with pread instead: data blocks go through its block cache
 * (STORE_CACHE_BYTES) or, for point lookups, a buffer freed at once
 * (store_impl.h, ropts_lookup), and the tables' pages stay in the page
 * cache, shared and reclaimable. The server's memory is then its own: the
 * open tables' index and filter blocks (about 2.6 bytes a chunk, which
 * LevelDB keeps in memory for every open table), the block cache, and
 * its requests.
 */
#ifndef DD_LDBENV_H
#define DD_LDBENV_H

#include <stdbool.h>

/* Raises the soft limit of open files towards the hard one (at most
 * 65536: the index keeps up to STORE_OPEN_TABLES tables open, each with
 * a descriptor when read with pread, beside the connections and the
 * packs being read; LevelDB lets its tables take a fifth of the limit it
 * finds when its environment is created), then asks LevelDB to read
 * tables with pread. Must run before the process's first LevelDB call
 * (the first leveldb_options_create() creates the environment). Returns
 * false when this build cannot ask (LevelDB linked as a shared library,
 * which does not export the switch): its tables are then mapped. */
bool ldbenv_setup(void);

/* What ldbenv_setup() chose: "pread" or "mmap". */
const char *ldbenv_reads(void);

#endif
