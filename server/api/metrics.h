/*
 * metrics.h - the server's own counters since it started (requests, bytes
 * in and out, chunks stored, ingest latency) and their rendering in the
 * Prometheus text format (version 0.0.4) for GET /metrics. Repository
 * gauges (sizes, snapshots, per-client ages) are added by the route from
 * the store and the snapshots; this module only formats them.
 *
 * All functions are thread-safe.
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdint.h>
#include "util.h"

struct metrics;

int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);

/* One answered HTTP request. */
void metrics_request(struct metrics *m, const char *method, unsigned status,
		     uint64_t bytes_in, uint64_t bytes_out);
/* One POST /chunks that stored `stored` new chunks (`plain` bytes, `packed`
 * bytes in packs) and found `dups` already stored, in `seconds`. */
void metrics_ingest(struct metrics *m, double seconds, uint32_t stored,
		    uint32_t dups, uint64_t plain, uint64_t packed);

/* One POST /chunks/fetch answered with `chunks` records, for which the
 * server made `reads` reads of pack data (one per record, or one per pack
 * span where the backend overlaps reads: docs/STORAGE.md); `unchecked`
 * when the caller checks them itself (?verify=client). */
void metrics_fetch(struct metrics *m, uint64_t chunks, uint64_t reads,
		   bool unchecked);
/* One POST /chunks/check: `checked` records re-hashed, `damaged` of them
 * found damaged. */
void metrics_check(struct metrics *m, uint64_t checked, uint64_t damaged);

/* Appends the counters above (with HELP and TYPE lines) to out. */
int metrics_render(struct metrics *m, struct dd_buf *out);

/* Appends "# HELP name help\n# TYPE name type\n". */
int metrics_header(struct dd_buf *out, const char *name, const char *type,
		   const char *help);
/* Appends one sample: name{label="value"} v, or name v when label is NULL.
 * The label value is escaped as the format wants. */
int metrics_sample(struct dd_buf *out, const char *name, const char *label,
		   const char *value, double v);

/* A metric with one unlabelled sample: its header, then name v. */
int metrics_one(struct dd_buf *out, const char *name, const char *type,
		const char *help, double v);
#endif
