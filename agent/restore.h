/*
 * restore.h - reading a snapshot for restore: its catalog streamed, the
 * selected entries handed in order to a sink, each file's chunks fetched
 * in batches (one batch fetched in the background while the previous one
 * is written) and verified before the sink sees a byte.
 *
 * Sinks: the disk writer (restore.c) and the tar writer (export.c).
 */
#ifndef DD_AGENT_RESTORE_H
#define DD_AGENT_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "catalog.h"

struct client;
struct settings;
struct pattern_list;

/* A catalog entry copied out of the reader: e's pointers point to the
 * NUL-terminated copies below. */
struct restore_entry {
	struct dd_entry e;
	char *path;
	char *link;
	uint8_t *ext;
	struct dd_chunk_ref *chunks;
	bool with_ext;           /* catalog version >= 2: ext is records */
};

struct restore_sink {
	void *ctx;
	/* An entry, in catalog order: 1 = pass me its data, 0 = skip it
	 * (refused or failed; the sink reported it), negative = stop. */
	int (*begin)(void *ctx, const struct restore_entry *re);
	/* `n` verified bytes at offset `off` of the file begun last. */
	int (*data)(void *ctx, const struct restore_entry *re,
		    const uint8_t *p, size_t n, uint64_t off);
	/* A hole of the catalog: `n` bytes of zeros at `off`, given nowhere
	 * else (data() skips them). NULL: nothing to do (a file written by
	 * offset gets its size at end()). */
	int (*hole)(void *ctx, const struct restore_entry *re, uint64_t n,
		    uint64_t off);
	/* After the data of an entry begin() accepted. */
	int (*end)(void *ctx, const struct restore_entry *re);
	/* An entry the selection (--include) leaves out, before it is
	 * dropped: negative = stop. NULL: nothing to do. */
	int (*unselected)(void *ctx, const struct restore_entry *re);
};

/*
 * Streams the snapshot of `manifest` to `sink`: every entry `include`
 * selects (pattern.h; NULL or empty: all). Returns 0 or the first fatal
 * error (a fetch, a corrupt chunk or catalog, or the sink's).
 */
int restore_stream(struct client *c, const struct settings *s,
		   const json_t *manifest, const struct pattern_list *include,
		   const struct restore_sink *sink);

/* `restore --format tar`: the selected entries as a pax archive written
 * to `output` ("-" for stdout). An exit code or a negative error. */
int export_tar(struct client *c, const struct settings *s,
	       const json_t *manifest, const struct pattern_list *include,
	       const char *output, bool quiet);

#endif
