/*
 * proto.h - constants both sides of the wire agree on. The routes and
 * bodies are documented in docs/API.md.
 */
#ifndef DD_PROTO_H
#define DD_PROTO_H

#define DD_VERSION "0.1.0"
#define DD_API_PREFIX "/api/v1"

/* Request body caps enforced by the server before reading a body. */
#define DD_MAX_UPLOAD_BODY (64u * 1024 * 1024)   /* POST /chunks */
/* Plain bytes one POST /chunks may declare (the sum of its records'
 * plain_len), checked before anything is decompressed: it bounds the
 * decompression and hashing one request can cost. The agent's batches
 * stay under it (at most 32 MiB plus one chunk). */
#define DD_MAX_UPLOAD_PLAIN (128u * 1024 * 1024)
/* Plain bytes the server decodes and re-hashes for one POST /chunks/fetch
 * that it checks (verify=server) or one POST /chunks/check, each id
 * counted as often as it is asked for: the bound of an upload, checked
 * before a byte is read (413). The agent's fetch batches stay under it
 * (16 MiB plus one chunk). */
#define DD_MAX_CHECK_PLAIN DD_MAX_UPLOAD_PLAIN
#define DD_MAX_IDS_PER_QUERY 65536u              /* /chunks/missing, /fetch */
#define DD_MAX_FETCH_RESPONSE (64u * 1024 * 1024)/* /chunks/fetch reply */
#define DD_MAX_JSON_BODY (16u * 1024 * 1024)     /* POST /snapshots */
#define DD_MAX_CATALOG_CHUNKS 65536u             /* ids in one manifest */

/* Client names: [A-Za-z0-9._-]{1,64}, not starting with '.'. */
#define DD_CLIENT_NAME_MAX 64

/* Agent exit codes (docs/OPERATIONS.md). */
#define DD_EXIT_OK 0
#define DD_EXIT_ERROR 1
#define DD_EXIT_USAGE 2
#define DD_EXIT_PARTIAL 3
#define DD_EXIT_LOCKED 4

#endif
