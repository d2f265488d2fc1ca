/*
 * upload.h - the queue that gets chunks to the server. The backup hands it
 * every chunk it cuts (id + plain bytes); the queue
 *
 *   1. drops a chunk whose id it already saw in this run (queued, sent, or
 *      known present), so a repeated chunk is neither asked about nor sent
 *      twice;
 *   2. batches the rest (up to `batch_bytes` of plain data or `batch_ids`
 *      ids) and asks POST /chunks/missing which the server lacks;
 *   3. compresses only the missing ones (zstd) and sends them in bundles of
 *      at most `bundle_bytes` via POST /chunks.
 *
 * Steps 2 and 3 run on `workers` threads, each with its own connection, so
 * reading and hashing, compression, and the server's work overlap. The
 * caller's thread only fills batches; it blocks when every batch is in
 * flight, which bounds memory at about (workers + 1) batches and `workers`
 * bundles.
 *
 * A chunk counts as stored once upload_queue_flush() has returned 0; the
 * caller flushes before it names chunks in a snapshot. The first failure
 * of any worker stops the queue: later calls return it, with its message.
 *
 * upload_queue_add() may be called from several threads at once: each
 * takes room in the batch being filled under the queue's lock and copies
 * its chunk's bytes without it, so readers do not wait for each other's
 * copies; the batch goes to a worker once its last copy is done. flush,
 * plain and stats are for one thread, with no add running.
 *
 * upload_queue_add_window() takes the chunks of a reader's window while
 * the window is still alive: asked to, it has one of `askers` connections
 * ask /chunks/missing about the new ones first, and copies into a batch
 * only the chunks the server lacks (which are not asked about again). The
 * backup asks for the windows of large files: on a tree the server
 * already holds their bytes are never copied (docs/PARALLEL.md); a small
 * file's chunks are copied as before, a question per file costing more
 * than its copy. upload_queue_window_start() does the same on one of
 * `askers` threads, so that the question's round trip overlaps the
 * reader's next window instead of stalling it.
 */
#ifndef DD_AGENT_UPLOAD_H
#define DD_AGENT_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "settings.h"

struct upload_queue;

struct upload_limits {
	size_t batch_bytes;    /* plain bytes in one batch */
	size_t batch_ids;      /* ids per /chunks/missing query */
	size_t bundle_bytes;   /* body of one POST /chunks */
	size_t workers;        /* upload threads, >= 1 */
	int level;             /* zstd level */
	size_t askers;         /* connections (and threads) for windows; 0:
				* always copy */
};

struct upload_stats {
	uint64_t chunks_new;   /* chunks uploaded */
	uint64_t bytes_new;    /* their plain bytes */
	uint64_t bytes_sent;   /* their stored (compressed) bytes */
	uint64_t chunks_known; /* chunks the server already had */
	uint64_t chunks_repeat;/* chunks repeated within this run */
	uint64_t requests;     /* HTTP requests made */
	uint64_t bytes_copied; /* chunk bytes copied into upload batches */
};

/* One chunk of a window: its id and bytes (borrowed for the call). */
struct upload_chunk {
	struct dd_id id;
	const void *data;
	size_t len;
};

/* Starts the workers, each with its own client made from `s`. */
int upload_queue_new(struct upload_queue **out, const struct settings *s,
		     const struct upload_limits *lim);
/* Stops the workers (dropping what was not flushed) and frees the queue. */
void upload_queue_free(struct upload_queue *q);

/* Queues one chunk (the bytes are copied before it returns). May wait
 * for a free batch. Thread-safe. */
int upload_queue_add(struct upload_queue *q, const struct dd_id *id,
		     const void *data, size_t len);
/* Queues the `n` chunks of a window, in order, like n calls of
 * upload_queue_add; with `ask`, asks the server first which of the new
 * ones it lacks and copies only those (above). The question blocks (one
 * round trip a window, on an asker's own connection; with none free the
 * window is copied). A failed question fails the queue. Thread-safe. */
int upload_queue_add_window(struct upload_queue *q,
			    const struct upload_chunk *c, size_t n, bool ask);
/*
 * A window handed to an asker thread by upload_queue_window_start(), so
 * that the caller reads and hashes its next window during the question's
 * round trip. The caller owns it (zeroed before its first use) and keeps
 * it, the array of chunks and their bytes alive and unchanged until
 * upload_queue_window_wait() has returned.
 */
struct upload_window {
	const struct upload_chunk *c;
	size_t n;
	bool ask;
	bool busy;             /* handed over, not yet queued (queue's lock) */
	int rc;
	struct upload_window *next;
};

/* upload_queue_add_window() of the `n` chunks `c` on an asker thread:
 * returns at once (the previous use of `w` must have been waited for).
 * Thread-safe. */
int upload_queue_window_start(struct upload_queue *q, struct upload_window *w,
			      const struct upload_chunk *c, size_t n, bool ask);
/* Waits until the window's chunks are queued (at once if it was never
 * started or was waited for); its result, or the queue's failure. */
int upload_queue_window_wait(struct upload_queue *q, struct upload_window *w);

/* Returns once everything queued is acknowledged by the server (windows
 * started included). */
int upload_queue_flush(struct upload_queue *q);

/* With a key (client_crypt), chunks are sealed; after this call, batches
 * submitted go unsealed: for an encrypted snapshot's reference list,
 * which the server must read (docs/ENCRYPTION.md). Call after a flush. */
void upload_queue_plain(struct upload_queue *q);

/* Totals so far (exact after a successful flush). */
void upload_queue_stats(struct upload_queue *q, struct upload_stats *out);

#endif
