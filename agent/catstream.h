/*
 * catstream.h - a snapshot's catalog as a stream of entries. The catalog's
 * chunks (listed in the manifest) are fetched in batches only as the
 * reader asks for bytes, each one decompressed and verified, so a catalog
 * of any size is read in bounded memory. Used by restore and by an
 * incremental backup reading its parent.
 */
#ifndef DD_AGENT_CATSTREAM_H
#define DD_AGENT_CATSTREAM_H

#include <stddef.h>
#include <jansson.h>

#include "catalog.h"

struct client;
struct catstream;

/*
 * Opens the catalog of `manifest`, fetching up to `per_fetch` catalog
 * chunks per request over `c` (borrowed; it must outlive the stream).
 * -EBADMSG if the manifest's catalog list is malformed.
 */
int catstream_new(struct catstream **out, struct client *c,
		  const json_t *manifest, size_t per_fetch);
void catstream_free(struct catstream *s);

/*
 * The next entry: 1 = *e filled (valid until the next call), 0 = end,
 * negative = error with a message naming what failed (a fetch, a corrupt
 * chunk, or a malformed catalog).
 */
int catstream_next(struct catstream *s, struct dd_entry *e);

/* The catalog's format version, known after the first catstream_next()
 * (0 before): in version 1 an entry's extension area is opaque. */
uint32_t catstream_version(const struct catstream *s);

#endif
