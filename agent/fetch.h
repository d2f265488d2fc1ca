/*
 * fetch.h - downloading chunks for restore: one POST /api/v1/chunks/fetch
 * per batch, and per chunk the decompression and the hash check. A chunk
 * whose bytes do not hash to its id is an error naming the id; nothing
 * unverified is ever handed to the caller.
 */
#ifndef DD_AGENT_FETCH_H
#define DD_AGENT_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "hash.h"
#include "util.h"
#include "settings.h"

struct client;

struct fetch_batch {
	struct dd_buf body;              /* the reply bundle */
	struct dd_bundle_record *recs;   /* point into body */
	size_t nrecs, alloc;
	struct dd_buf query;
	/* Filled by the background fetcher: every record decoded and
	 * verified ahead of use. plain_off[i] is record i's offset in
	 * `plain`, FETCH_IN_BODY (a raw record, verified where it lies in
	 * `body`), or FETCH_NOT_DECODED (the caller then decodes it itself
	 * and gets the error naming the chunk). */
	struct dd_buf plain;
	size_t *plain_off;
	size_t plain_alloc;
	/* The SHA-256 of each record's plain bytes, hashed as one batch
	 * (dd_sha256_batch) and compared with its id. */
	struct dd_sha256_job *jobs;
	struct dd_id *got;
	bool decoded;
	/* The key of the client that fetched it (client_crypt): sealed
	 * records are opened and checked with it (key_decode_chunk). */
	const struct dd_crypt *crypt;
	/* Set by the background fetcher, which checks every record itself:
	 * the server is asked not to check them again (?verify=client) and
	 * told of any that fail (fetch_report_damaged). */
	bool client_checks;
};
#define FETCH_NOT_DECODED ((size_t)-1)
#define FETCH_IN_BODY ((size_t)-2)

void fetch_batch_init(struct fetch_batch *b);
void fetch_batch_release(struct fetch_batch *b);

/*
 * Fetches `n` ids (1..DD_MAX_IDS_PER_QUERY). The reply must hold exactly
 * those records in request order (-EBADMSG otherwise). `plain_lens`, when
 * not NULL, holds the plain length the catalog gives each id: a record
 * claiming another length is refused here, before any memory is set aside
 * for its plain bytes, so a hostile server cannot make the agent reserve
 * more than what it planned (-EBADMSG naming the chunk).
 */
int fetch_batch_get(struct fetch_batch *b, struct client *c,
		    const struct dd_id *ids, const uint32_t *plain_lens,
		    size_t n);

/*
 * Decodes record `i` into `out` (replacing its contents) and verifies it:
 * the plain length must be `plain_len` (when not 0) and the bytes must hash
 * to the record's id. `dctx` is a reusable ZSTD_DCtx* or NULL.
 */
int fetch_batch_chunk(struct fetch_batch *b, size_t i, uint32_t plain_len,
		      struct dd_buf *out, void *dctx);
/*
 * The same without a copy: *data points to the verified bytes, inside the
 * batch when the fetcher decoded it (valid until the batch is reused),
 * else in `scratch`, where the record is decoded now.
 */
int fetch_batch_chunk_ref(struct fetch_batch *b, size_t i, uint32_t plain_len,
			  const uint8_t **data, struct dd_buf *scratch,
			  void *dctx);

/* What the server found of the chunks a client reported. */
struct fetch_check {
	size_t intact;    /* re-hashed and found good: damaged on the way */
	size_t damaged;   /* dropped from its index */
	size_t sealed;    /* client-side encrypted: only their layout checked */
	size_t unknown;   /* not held for this client (any more) */
};

/*
 * Tells the server that the `n` distinct ids fetched with ?verify=client
 * failed their check here (POST /api/v1/chunks/check): it re-hashes them
 * and drops a damaged one from its index, so the next backup that has its
 * bytes sends it again (docs/API.md, "Damaged chunks"). Fills *out from
 * its reply. 0 or a negative errno with a reason (a reply without those
 * counts is -EBADMSG).
 */
int fetch_report_damaged(struct client *c, const struct dd_id *ids, size_t n,
			 struct fetch_check *out);

/*
 * A thread that runs fetch_batch_get() in the background, on its own
 * connection, one batch at a time, and then decompresses and verifies
 * every record of the batch: restore plans, fetches and decodes the next
 * batch while it writes the current one, so decompression and hashing run
 * on another core than the writes.
 */
struct fetcher;
int fetcher_new(struct fetcher **out, const struct settings *s);
/* Waits for a fetch in progress, stops the thread, frees. */
void fetcher_free(struct fetcher *f);
/* Starts fetching `ids` (whose plain lengths are `plain_lens`, see
 * fetch_batch_get) into `b`; none may be touched until fetcher_wait()
 * returns. One fetch at a time. */
void fetcher_start(struct fetcher *f, struct fetch_batch *b,
		   const struct dd_id *ids, const uint32_t *plain_lens,
		   size_t n);
/* Waits for the fetch started last; its result, with its message recorded
 * on the calling thread. */
int fetcher_wait(struct fetcher *f);

#endif
