/*
 * key.h - the agent's side of client-side encryption (docs/ENCRYPTION.md):
 * loading the key file named by the settings, the points where the
 * backup pipeline computes a chunk's id and seals or opens its bytes,
 * and the `dedup-agent key` verb.
 *
 * The key is unwrapped once per process (the passphrase is asked once)
 * and kept until exit; every client of the process borrows it. Without a
 * key_file setting everything here is the plain path: SHA-256 ids and
 * unsealed chunks, exactly as before encryption existed.
 */
#ifndef DD_AGENT_KEY_H
#define DD_AGENT_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "crypt.h"
#include "hash.h"
#include "util.h"
#include "settings.h"

/*
 * The process's key: *out NULL when s->key_file is not set. The first
 * call reads the passphrase (passphrase_file, else DEDUP_PASSPHRASE, else
 * a prompt on the terminal) and unwraps the file; later calls return the
 * same key. -EACCES for a wrong passphrase, -ENOENT for a missing file,
 * -EBADMSG for a file that is not a key file; messages name the file.
 */
int key_load(const struct dd_crypt **out, const struct settings *s);

/*
 * Damaged sealed chunks. The server cannot check a sealed chunk, so it
 * keeps one that fails the agent's check and would answer "present" to
 * every later backup of the same bytes. The agent remembers the ids of
 * the sealed chunks that failed its check (any read: restore, verify,
 * ls, mount, a parent's catalog) in its state directory, as
 * "damaged.<uid>.<key fingerprint>", and a backup with that key stores
 * such bytes under a variant of their id (the keyed id with its last
 * byte xor 1..255, the first not remembered), which the server does not
 * hold: the data is uploaded anew. Every read accepts a variant id of a
 * chunk's keyed id. key_load reads the file; key_avoided tells whether
 * an id is remembered (an unchanged file whose parent entry names one is
 * read again).
 */
bool key_avoided(const struct dd_id *id);
/* How many ids are remembered (0: nothing to look up). */
size_t key_avoid_count(void);

/* A chunk's id: HMAC-SHA-256 under k, or SHA-256 when k is NULL. */
void key_chunk_id(const struct dd_crypt *k, struct dd_id *out,
		  const void *data, size_t len);
/* The ids of n chunks, as key_chunk_id on each; without a key two at a
 * time on this thread where the CPU can (dd_sha256_batch). */
void key_chunk_ids(const struct dd_crypt *k, const struct dd_sha256_job *jobs,
		   size_t n);

/*
 * Seals a compressed chunk: `stored` (`flags`, DD_COMP_NONE or ZSTD) into
 * out; returns the record's flags (flags | DD_COMP_SEALED) or negative.
 */
int key_seal_chunk(const struct dd_crypt *k, struct dd_buf *out,
		   const struct dd_id *id, uint32_t flags, uint32_t plain_len,
		   const void *stored, size_t stored_len);

/*
 * Decodes a fetched record into dst (plain_len bytes) and verifies it:
 * a sealed record is opened with k (its id, flags and length are the
 * associated data), decompressed, and its keyed id recomputed; a plain
 * record is decompressed and its SHA-256 checked. -EBADMSG naming the
 * chunk when anything fails (a sealed chunk without a key included).
 * `tmp` is scratch.
 */
int key_decode_chunk(const struct dd_crypt *k, void *dst,
		     const struct dd_id *id, uint32_t flags,
		     const void *stored, size_t stored_len,
		     uint32_t plain_len, struct dd_buf *tmp, void *dctx);

/*
 * An encrypted snapshot's manifest carries "sealed": the hex of
 * sealed JSON {"host", "paths", "catalog"} (the real catalog's chunk
 * ids). key_manifest_open gives that object (the caller owns *out); *out
 * is NULL for a plain manifest, which a client with a key accepts only
 * after key_allow_plain(true) (-EPERM otherwise: a server could put a
 * plain manifest of its choosing in place of an encrypted one). -EBADMSG when it does not open (wrong
 * key, or a sealed part moved from another snapshot: it is bound to the
 * manifest's "unix_time" and reference list `refs`, the "catalog" the
 * request will carry, with the request's "time_start"), -EACCES when
 * there is no key.
 */
void key_allow_plain(bool allow);
int key_manifest_seal(const struct dd_crypt *k, json_t *req,
		      const json_t *refs);
int key_manifest_open(const struct dd_crypt *k, const json_t *manifest,
		      json_t **out);

/*
 * What an encrypted snapshot shows the server instead of its host and
 * paths: "encrypted-<32 hex>" and "/encrypted/<32 hex>", keyed hashes, so
 * the server can still pair a backup with its parent (same host, same
 * paths) without learning either.
 */
int key_pseudonym(const struct dd_crypt *k, char *out, size_t outsz,
		  bool path, const char *value);

#endif
