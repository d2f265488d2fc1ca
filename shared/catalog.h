/*
 * catalog.h - the binary list of a snapshot's entries (its tree). The
 * catalog is itself cut into chunks and stored like file data, so an
 * unchanged tree records almost nothing new. Layout in docs/FORMAT.md
 * ("Catalog").
 *
 *   header: "DDCT" | u32 version=1
 *   entry:  u8 type | u8 0 | u16 0 | u32 mode | u32 uid | u32 gid
 *           | i64 mtime_sec | u32 mtime_nsec | i64 ctime_sec | u32 ctime_nsec
 *           | u64 ino | u64 dev | u64 size
 *           | u32 path_len | u32 link_len | u32 ext_len | u64 nchunks
 *           | path | link | ext | nchunks x (id[32] | u32 plain_len)
 *
 * Paths are relative ('/'-separated, no leading '/', no empty, "." or ".."
 * component, no NUL); a directory's entry comes before its children.
 */
#ifndef DD_CATALOG_H
#define DD_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "hash.h"
#include "util.h"

#define DD_CATALOG_VERSION 1u
#define DD_CATALOG_HEADER_LEN 8u
#define DD_CATALOG_ENTRY_FIXED_LEN 84u
#define DD_CATALOG_PATH_MAX 65536u     /* bytes in one path */
#define DD_CATALOG_LINK_MAX 65536u     /* bytes in a symlink target */
#define DD_CATALOG_EXT_MAX (1u << 20)  /* extension area (xattrs, ACLs) */

enum dd_entry_type {
	DD_ENTRY_FILE = 1,
	DD_ENTRY_DIR = 2,
	DD_ENTRY_SYMLINK = 3,
};

struct dd_chunk_ref {
	struct dd_id id;
	uint32_t plain_len;
};

struct dd_entry {
	uint8_t type;            /* enum dd_entry_type */
	uint32_t mode;           /* permission bits (07777) */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	int64_t ctime_sec;
	uint32_t ctime_nsec;
	uint64_t ino, dev;
	uint64_t size;           /* file: bytes; others: 0 */
	const char *path;        /* not NUL-terminated in the stream */
	uint32_t path_len;
	const char *link;        /* symlink target */
	uint32_t link_len;
	const uint8_t *ext;      /* opaque extension bytes, empty in v1 */
	uint32_t ext_len;
	uint64_t nchunks;
	const struct dd_chunk_ref *chunks;  /* file only */
};

/* Writer: appends to a dd_buf. */
int dd_catalog_begin(struct dd_buf *out);
/* Validates the entry (path rules, lengths, file: sum of chunk plain_len
 * == size; non-files: nchunks == 0) before appending; -EINVAL with a
 * reason, `out` unchanged. One entry's chunk list is at most 64 MiB
 * (1,864,135 chunks: about 2 TiB at the default average chunk size). */
int dd_catalog_add(struct dd_buf *out, const struct dd_entry *e);

/* Checks a relative path per the rules above; 0 or -EINVAL. */
int dd_catalog_path_check(const char *path, size_t len);

/*
 * Catalog order: the order of a depth-first walk that visits a directory
 * before its children and children in bytewise name order. It is bytewise
 * order with '/' sorting before every other byte, so that "a/x" < "a-b"
 * and "a" < "a/x". Returns <0, 0 or >0 like memcmp. Catalogs are written in
 * this order, which lets a backup merge its walk with the parent's catalog
 * in one pass.
 */
int dd_catalog_path_cmp(const char *a, size_t alen, const char *b,
			size_t blen);

/*
 * Streaming reader. It pulls bytes from `read` (which returns the count
 * read, 0 at end, negative on error) and yields entries whose pointers stay
 * valid until the next call. Every field is validated like the writer does,
 * plus: path_len/link_len/ext_len within their maxima, nchunks bounded by
 * size (each chunk >= 1 byte), known type. -EBADMSG with a reason on any
 * violation, including a stream that ends inside an entry.
 */
typedef ssize_t (*dd_catalog_read_fn)(void *payload, void *buf, size_t len);
struct dd_catalog_reader;
int dd_catalog_reader_new(struct dd_catalog_reader **out,
			  dd_catalog_read_fn read, void *payload);
/* 1 = *e filled, 0 = clean end of stream, negative = error. */
int dd_catalog_next(struct dd_catalog_reader *r, struct dd_entry *e);
void dd_catalog_reader_free(struct dd_catalog_reader *r);

/* A read function over a memory range, for callers holding the catalog. */
struct dd_catalog_mem {
	const uint8_t *p;
	size_t left;
};
ssize_t dd_catalog_mem_read(void *payload, void *buf, size_t len);

#endif
