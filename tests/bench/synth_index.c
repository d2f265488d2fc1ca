/*
 * synth_index.c - a synthetic repository index of many chunks, written
 * straight into the LevelDB of a repository made by `dedup-server init`,
 * for the index-at-scale measurements of tests/bench/server-bench.sh.
 *
 *   synth-index REPO CHUNKS [SEED]
 *
 * Writes CHUNKS entries "c" + id -> location (docs/FORMAT.md, "Index")
 * with the ids of synth_ids.h, in key order, then the "mstats" counters in
 * a last synced write, so the server opens the index without recounting.
 * The locations name pack files that do not exist (sequence numbers from
 * 1, 128 MiB packs of 256 KiB chunks): the index is for lookups (the
 * missing-query, /stats, RSS, bytes per chunk) and for the mark and scan
 * phases of `gc --dry-run`; reading a chunk of it answers that its pack is
 * missing. The options are the server's (server/store/store_impl.h):
 * STORE_BLOOM_BITS bloom filter bits a key, no compression, its write
 * buffer and its table size (STORE_TABLE_BYTES). For before/after
 * figures, DD_BENCH_TABLE_MIB and DD_BENCH_BLOOM_BITS set others, and
 * DD_BENCH_LOC_V1 set writes version 1 locations, which servers before
 * version 2 read. Keys written in order would leave every table where
 * its memtable flush put it; a whole-range compaction at the end gives
 * the shape of a long-lived index instead: nearly everything in the last
 * level, in tables of the table size, no log.
 * Prints one line: "chunks N seconds S compact_seconds C".
 */
#include <errno.h>
#include <stdbool.h>
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pack.h"
#include "synth_ids.h"
#include "util.h"

#define SYNTH_BATCH 100000u
#define SYNTH_CHUNK_PLAIN (256u * 1024)
#define SYNTH_CHUNK_STORED (150u * 1024)
#define SYNTH_PACK_BYTES (128ull * 1024 * 1024)
/* The server's (server/store/store_impl.h). */
#define SYNTH_WRITE_BUFFER (8u * 1024 * 1024)
#define SYNTH_TABLE_MIB 32u
#define SYNTH_BLOOM_BITS 16

/* Where the synthetic chunk i lives: packs filled in id order. */
static void synth_loc(struct dd_chunk_loc *loc, uint64_t i)
{
	uint64_t rec = DD_PACK_RECORD_HEADER_LEN + SYNTH_CHUNK_STORED;
	uint64_t per_pack = (SYNTH_PACK_BYTES - DD_PACK_HEADER_LEN) / rec;

	loc->pack_seq = 1 + i / per_pack;
	loc->offset = DD_PACK_HEADER_LEN + (i % per_pack) * rec;
	loc->flags = 1;
	loc->plain_len = SYNTH_CHUNK_PLAIN;
	loc->stored_len = SYNTH_CHUNK_STORED;
}

/* The location as servers before version 2 wrote it (docs/FORMAT.md),
 * for a before/after comparison with such a server. */
static size_t synth_loc_v1(uint8_t *out, const struct dd_chunk_loc *loc)
{
	out[0] = 1;
	dd_put_le64(out + 1, loc->pack_seq);
	dd_put_le64(out + 9, loc->offset);
	dd_put_le32(out + 17, loc->flags);
	dd_put_le32(out + 21, loc->plain_len);
	dd_put_le32(out + 25, loc->stored_len);
	return DD_CHUNK_LOC_V1_LEN;
}

static int synth_write(leveldb_t *db, uint64_t n, uint64_t seed, bool v1)
{
	leveldb_writeoptions_t *w = leveldb_writeoptions_create();
	leveldb_writebatch_t *b = leveldb_writebatch_create();
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_MAX], meta[17];
	size_t vlen;
	struct dd_chunk_loc loc;
	struct dd_id id;
	char *err = NULL;
	uint64_t i;

	key[0] = 'c';
	for (i = 0; i < n && !err; i++) {
		synth_present_id(&id, seed, n, i);
		memcpy(key + 1, id.b, DD_ID_LEN);
		synth_loc(&loc, i);
		vlen = v1 ? synth_loc_v1(val, &loc) :
			    dd_chunk_loc_encode(val, &loc);
		leveldb_writebatch_put(b, (const char *)key, sizeof(key),
				       (const char *)val, vlen);
		if ((i + 1) % SYNTH_BATCH == 0 || i + 1 == n) {
			leveldb_write(db, w, b, &err);
			leveldb_writebatch_clear(b);
		}
	}
	if (!err) {
		/* The counters, as store_meta_encode() writes them. */
		meta[0] = 1;
		dd_put_le64(meta + 1, n);
		dd_put_le64(meta + 9, n * SYNTH_CHUNK_PLAIN);
		leveldb_writeoptions_set_sync(w, 1);
		leveldb_put(db, w, "mstats", 6, (const char *)meta,
			    sizeof(meta), &err);
	}
	leveldb_writebatch_destroy(b);
	leveldb_writeoptions_destroy(w);
	if (err) {
		fprintf(stderr, "error: cannot write the index: %s\n", err);
		leveldb_free(err);
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	leveldb_options_t *o;
	leveldb_filterpolicy_t *bloom;
	leveldb_t *db;
	char dir[4096], *err = NULL;
	uint64_t n, seed = 1;
	const char *env = getenv("DD_BENCH_TABLE_MIB");
	uint64_t table_mib = SYNTH_TABLE_MIB, bloom_bits = SYNTH_BLOOM_BITS;
	double t0, t1 = 0;
	int rc;

	if (argc < 3 || argc > 4 || dd_parse_u64(argv[2], &n) < 0 ||
	    (argc == 4 && dd_parse_u64(argv[3], &seed) < 0)) {
		fputs("usage: synth-index REPO CHUNKS [SEED]\n", stderr);
		return 2;
	}
	if (env && (dd_parse_u64(env, &table_mib) < 0 || table_mib == 0 ||
		    table_mib > 1024)) {
		fputs("error: DD_BENCH_TABLE_MIB must be 1..1024\n", stderr);
		return 2;
	}
	env = getenv("DD_BENCH_BLOOM_BITS");
	if (env && (dd_parse_u64(env, &bloom_bits) < 0 || bloom_bits == 0 ||
		    bloom_bits > 64)) {
		fputs("error: DD_BENCH_BLOOM_BITS must be 1..64\n", stderr);
		return 2;
	}
	if (dd_path_join(dir, sizeof(dir), argv[1], "index") < 0) {
		fputs("error: repository path too long\n", stderr);
		return 1;
	}
	o = leveldb_options_create();
	bloom = leveldb_filterpolicy_create_bloom((int)bloom_bits);
	leveldb_options_set_filter_policy(o, bloom);
	leveldb_options_set_compression(o, leveldb_no_compression);
	leveldb_options_set_write_buffer_size(o, SYNTH_WRITE_BUFFER);
	leveldb_options_set_max_open_files(o, 1000);
	leveldb_options_set_max_file_size(o, (size_t)table_mib << 20);
	t0 = dd_monotonic();
	db = leveldb_open(o, dir, &err);
	if (!db || err) {
		fprintf(stderr, "error: cannot open index '%s': %s\n", dir,
			err ? err : "unknown error");
		leveldb_free(err);
		rc = -EIO;
	} else {
		rc = synth_write(db, n, seed, getenv("DD_BENCH_LOC_V1") != NULL);
		t1 = dd_monotonic();
		if (rc == 0)
			leveldb_compact_range(db, NULL, 0, NULL, 0);
		leveldb_close(db);
	}
	leveldb_options_destroy(o);
	leveldb_filterpolicy_destroy(bloom);
	if (rc == 0)
		printf("chunks %llu seconds %.2f compact_seconds %.2f\n",
		       (unsigned long long)n, dd_monotonic() - t0,
		       dd_monotonic() - t1);
	return rc == 0 ? 0 : 1;
}
