/*
 * ldbenv.h - the process-wide settings of LevelDB's environment, made
 * once before the first LevelDB call.
 *
 * LevelDB 1.23 maps up to 1,000 table files with mmap and reads lookups
 * straight from the mapping, so every table page a lookup has touched
 * counts in the server's RSS until the table is closed: 2.9 GB of a
 * 50-million-chunk index (docs/SERVER-SCALE.md). Here it reads tables
 * with pread instead: data blocks go through its block cache
 * (STORE_CACHE_BYTES), or, for scans and for lookups in an index bigger
 * than that cache, a buffer freed at once (store_ropts_lookup); the
 * tables' pages stay in the page cache, shared and reclaimable. The
 * server's memory is then its own: the open tables' index and filter
 * blocks (about 2.6 bytes a chunk, which LevelDB keeps in memory for
 * every open table), the block cache, and its requests.
 */
#ifndef DD_LDBENV_H
#define DD_LDBENV_H

#include <stdbool.h>

#define LDBENV_NOFILE 65536
#define LDBENV_NOFILE_LOW 4096

/* Once, first thing in main(), before the process's first LevelDB call
 * (the first leveldb_options_create() creates the environment, which
 * reads its limits then). Raises the soft limit of open files towards
 * the hard one, at most LDBENV_NOFILE: read with pread, each open table
 * (up to STORE_OPEN_TABLES) holds a descriptor, beside the connections
 * and the packs being read, and LevelDB keeps at most a fifth of the
 * limit for its tables (it reopens the others on every read). Then asks
 * LevelDB to read
 * tables with pread. Returns false when this build cannot ask (LevelDB
 * linked as a shared library, which does not export the switch): its
 * tables are then mapped. */
bool ldbenv_setup(void);

/* Logs what ldbenv_setup() chose ("index tables read with pread", or
 * mmap), and a warning when the open-files limit stayed under
 * LDBENV_NOFILE_LOW. */
void ldbenv_log(void);

#endif
