/*
 * sealsnap.h - what an encrypted backup adds at its end (docs/ENCRYPTION.md,
 * "Encrypted snapshots"). While the backup runs it notes every chunk the
 * snapshot references (each entry's chunks and the sealed catalog's own);
 * at the end it
 *   1. seals the real host, paths and catalog chunk ids into the request's
 *      "sealed" field (key_manifest_seal),
 *   2. writes the reference list: the sorted, unique referenced ids as a
 *      plain catalog of synthetic file entries ("r0000000000", ...; each
 *      lists up to SEALSNAP_REFS_PER_ENTRY chunks), cut with the
 *      repository's chunker and uploaded unsealed, so the server reads it
 *      as any catalog for its reference checks, gc, usage and regrant,
 *   3. puts that list's ids in the request's "catalog", and keyed
 *      pseudonyms (key_pseudonym) in "host" and "paths".
 * Memory: 36 bytes a referenced chunk until the end.
 */
#ifndef DD_AGENT_SEALSNAP_H
#define DD_AGENT_SEALSNAP_H

#include <stdint.h>
#include <jansson.h>

#include "catalog.h"
#include "chunker.h"
#include "crypt.h"
#include "hash.h"

#define SEALSNAP_REFS_PER_ENTRY 4096u

struct sealsnap;
struct upload_queue;

int sealsnap_new(struct sealsnap **out, const struct dd_crypt *k);
void sealsnap_free(struct sealsnap *s);

/* Notes e's chunks (holes skipped) / one chunk. No-ops when s is NULL. */
int sealsnap_note_entry(struct sealsnap *s, const struct dd_entry *e);
int sealsnap_note_chunk(struct sealsnap *s, const struct dd_id *id,
			uint32_t plain_len);

/*
 * Steps 1-3 above on `req` (a snapshot-create request holding host, paths
 * and catalog). `uq` must be flushed; after this call it uploads unsealed.
 * Negative with a message on failure (nothing is half-changed that a
 * retry would trip over: the request is not sent).
 */
int sealsnap_finish(struct sealsnap *s, json_t *req, struct upload_queue *uq,
		    const struct dd_chunker *ck);

#endif
