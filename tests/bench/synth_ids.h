/*
 * synth_ids.h - the ids of a synthetic index (tests/bench/synth_index.c)
 * and of the queries that measure it (tests/bench/server_bench.c), so
 * both sides name the same chunks without a list of 50 million ids.
 *
 * Present id i of a synthetic index of `n` chunks (0 <= i < n): its first
 * 8 bytes are i * floor(2^64 / n) big-endian, so the ids ascend with i
 * (the index is written in key order, which LevelDB takes without
 * rewriting), and its other 24 bytes are SHA-256("synth" | seed | i). The
 * ids are as evenly spread over the key space as random ones, and no
 * absent id (synth_absent_id: a full SHA-256) is one of them but with
 * probability about n / 2^192.
 */
#ifndef DD_BENCH_SYNTH_IDS_H
#define DD_BENCH_SYNTH_IDS_H

#include <stdint.h>
#include <string.h>
#include "hash.h"

static inline void synth_put_be64(uint8_t *p, uint64_t v)
{
	int k;

	for (k = 7; k >= 0; k--) {
		p[k] = (uint8_t)v;
		v >>= 8;
	}
}

static inline void synth_present_id(struct dd_id *out, uint64_t seed,
				    uint64_t n, uint64_t i)
{
	uint8_t msg[5 + 16];
	struct dd_id h;

	memcpy(msg, "synth", 5);
	synth_put_be64(msg + 5, seed);
	synth_put_be64(msg + 13, i);
	dd_sha256(&h, msg, sizeof(msg));
	synth_put_be64(out->b, i * (UINT64_MAX / (n ? n : 1)));
	memcpy(out->b + 8, h.b, DD_ID_LEN - 8);
}

static inline void synth_absent_id(struct dd_id *out, uint64_t seed,
				   uint64_t j)
{
	uint8_t msg[6 + 16];

	memcpy(msg, "absent", 6);
	synth_put_be64(msg + 6, seed);
	synth_put_be64(msg + 14, j);
	dd_sha256(out, msg, sizeof(msg));
}

#endif
