/*
 * syncwire.h - what dedup-server sync reads from its source, checked
 * before anything is stored (docs/REPLICATION.md): the chunk bundles of
 * POST /api/v1/chunks/fetch, the items of GET /api/v1/snapshots, and the
 * --newer-than date. No I/O here, so each check is unit-tested
 * (tests/unit/test_syncwire.c).
 */
#ifndef SRV_SYNCWIRE_H
#define SRV_SYNCWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "bundle.h"
#include "hash.h"
#include "proto.h"
#include "util.h"

/*
 * Checks a fetch reply against the n ids asked for: a valid bundle of
 * exactly n records, record i carrying want[i], each one's bytes
 * decompressing to plain_len bytes that hash to its id (the source is not
 * trusted). A sealed record (client-side encrypted: only its layout can
 * be checked) passes only when `sealed_ok` (a file chunk of an encrypted
 * snapshot). recs[0..n) then point into body. On failure -EBADMSG with a
 * reason naming the chunk when one record is at fault (then *bad is its
 * index), else *bad = n. `plain` is scratch; `dctx` an optional
 * ZSTD_DCtx*.
 */
int syncwire_check_bundle(const void *body, size_t len,
			  const struct dd_id *want, size_t n, bool sealed_ok,
			  struct dd_bundle_record *recs, size_t *bad,
			  struct dd_buf *plain, void *dctx);

/* One item of a GET /api/v1/snapshots page. Strings are copied. */
struct syncwire_item {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	char cursor[128];
	int64_t unix_written;
	bool damaged;               /* the source cannot read its manifest */
};

/* -EBADMSG with a reason when the item lacks a valid id, client name
 * (`valid_name` decides), unix_written or cursor (1..127 of
 * [A-Za-z0-9._-]: it goes back into a URL). */
int syncwire_item_parse(json_t *item, bool (*valid_name)(const char *),
			struct syncwire_item *out);

/*
 * --newer-than: "YYYY-MM-DD" (UTC midnight), "YYYY-MM-DDTHH:MM:SSZ", or an
 * age "N" followed by s, m, h or d (now - N). -EINVAL otherwise.
 */
int syncwire_parse_since(const char *s, int64_t now, int64_t *out);

#endif
