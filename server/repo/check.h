/*
 * check.h - the repository checker behind `dedup-server check`: the index,
 * the packs and the snapshot manifests must agree, and every chunk a
 * snapshot uses (its catalog chunks and every file chunk its catalog
 * lists) must be indexed and readable.
 *
 * What it verifies:
 *   tables     every block of every index table has its checksum
 *              (ldbcheck.h); an index that cannot be opened or read is
 *              one problem line, and the index and snapshot passes are
 *              skipped (without the index every chunk would be a line)
 *   packs      every pack scans cleanly (header, records, trailer of a
 *              sealed pack); an unsealed pack may end in a torn record
 *              (an interrupted write), which is a note, not a problem,
 *              unless index entries point past its end: then it was cut
 *              (a problem, "is truncated")
 *   index      every entry decodes and points at a record of its pack
 *              with the same id, flags and lengths; the counters match
 *   snapshots  every manifest parses; every catalog chunk is indexed and
 *              hashes to its id; every catalog entry is valid; every file
 *              chunk is indexed with the length the catalog gives; the
 *              manifest's counts match the catalog
 *   read_data  additionally, every record of every pack is decompressed
 *              and re-hashed; each damaged chunk is named with the
 *              snapshots and files that use it
 *
 * It reads only: the caller holds the server lock, so no server writes
 * meanwhile. The report goes to stdout, one line per finding:
 *   damaged chunk <id>: <reason>
 *   damaged chunk <id>: used by snapshot <sid> (client <name>), file '<path>'
 *   missing chunk <id>: used by snapshot <sid> (client <name>), file '<path>'
 *   problem: <anything else>
 *   note: <harmless findings>
 * and a last line "no problems found" or "N problem(s) found".
 */
#ifndef SRV_CHECK_H
#define SRV_CHECK_H

#include <stdbool.h>
#include <stdint.h>

struct check_opts {
	bool read_data;      /* decompress and re-hash every record */
	bool quiet;          /* only problems and the summary */
};

struct check_result {
	uint64_t problems;           /* everything that makes check fail */
	uint64_t damaged_chunks;     /* distinct indexed chunks found damaged */
	uint64_t missing_refs;       /* references to chunks not stored */
	uint64_t packs, records, index_entries, snapshots;
};

/* Checks the repository in `repo`; 0 when the check ran (problems or
 * not: see res->problems), negative when it could not run at all. */
int check_repo(const char *repo, const struct check_opts *o,
	       struct check_result *res);

#endif
