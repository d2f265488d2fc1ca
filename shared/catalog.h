/*
 * catalog.h - the binary list of a snapshot's entries (its tree). The
 * catalog is itself cut into chunks and stored like file data, so an
 * unchanged tree records almost nothing new. Layout in docs/FORMAT.md
 * ("Catalog").
 *
 *   header: "DDCT" | u32 version (1 or 2; the writer writes 2)
 *   entry:  u8 type | u8 0 | u16 0 | u32 mode | u32 uid | u32 gid
 *           | i64 mtime_sec | u32 mtime_nsec | i64 ctime_sec | u32 ctime_nsec
 *           | u64 ino | u64 dev | u64 size
 *           | u32 path_len | u32 link_len | u32 ext_len | u64 nchunks
 *           | path | link | ext | nchunks x (id[32] | u32 plain_len)
 *
 * Paths are relative ('/'-separated, no leading '/', no empty, "." or ".."
 * component, no NUL); a directory's entry comes before its children.
 *
 * Version 2 adds entry types (hard link, fifo, character and block
 * device) and gives the extension area a meaning: a list of records
 * (owner and group names, device numbers, extended attributes, POSIX ACL
 * entries), each `u8 tag | u32 len | value`, validated as strictly as the
 * fixed part. A version 1 catalog is still read: types 1..3 only, and its
 * extension area is opaque (callers ignore it, dd_catalog_version() says
 * which version a reader is reading).
 *
 * Version 3 adds holes: in a file's chunk list, a reference whose id is
 * all zero bytes is a hole of plain_len bytes (1..DD_HOLE_MAX) that reads
 * as zeros and has no chunk behind it. The chunk list still covers the
 * file in order, so the lengths add up to the size; a hole follows another
 * only when that one is DD_HOLE_MAX long (one run of zeros, split because
 * it is longer than a reference can say). A version 1 or 2 catalog with an all-zero id is corrupt (no
 * chunk can have that id), so every reader may test refs with
 * dd_chunk_ref_is_hole() whatever the version.
 */
#ifndef DD_CATALOG_H
#define DD_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include "hash.h"
#include "util.h"

#define DD_CATALOG_VERSION 3u          /* what the writer writes */
#define DD_CATALOG_VERSION_MIN 1u      /* the oldest the reader reads */
#define DD_CATALOG_HEADER_LEN 8u
#define DD_CATALOG_ENTRY_FIXED_LEN 84u
#define DD_CATALOG_PATH_MAX 65536u     /* bytes in one path */
#define DD_CATALOG_LINK_MAX 65536u     /* bytes in a symlink target */
#define DD_CATALOG_EXT_MAX (1u << 20)  /* extension area (xattrs, ACLs) */
#define DD_HOLE_MAX UINT32_MAX         /* bytes in one hole reference */
/* References (chunks and holes) of one entry: 64 MiB of them. */
#define DD_CATALOG_REFS_MAX ((64u << 20) / 36u)

enum dd_entry_type {
	DD_ENTRY_FILE = 1,
	DD_ENTRY_DIR = 2,
	DD_ENTRY_SYMLINK = 3,
	/* version 2: */
	DD_ENTRY_HARDLINK = 4,   /* link = an earlier path of the same inode */
	DD_ENTRY_FIFO = 5,
	DD_ENTRY_CHR = 6,        /* device numbers in a DD_EXT_RDEV record */
	DD_ENTRY_BLK = 7,
};

/* Extension record tags (version 2). Records come in non-decreasing tag
 * order; each tag's value is checked by the reader and the writer. */
enum dd_ext_tag {
	DD_EXT_UNAME = 1,   /* owner's name: 1..255 bytes, no NUL; once */
	DD_EXT_GNAME = 2,   /* group's name: same */
	DD_EXT_RDEV = 3,    /* u32 major | u32 minor; exactly once for a
			     * device, never for other types */
	DD_EXT_XATTR = 4,   /* u8 name_len | name | value; names 1..255
			     * bytes without NUL, strictly increasing,
			     * value <= 64 KiB; POSIX ACLs are not xattrs */
	DD_EXT_ACL = 5,     /* u8 kind | u8 tag | u8 perm | u8 0 | u32 id
			     * | name (0..255 bytes, no NUL) */
};
#define DD_EXT_NAME_MAX 255u
#define DD_EXT_XATTR_VALUE_MAX 65536u

/* A POSIX ACL entry as DD_EXT_ACL records it. */
enum dd_acl_kind { DD_ACL_ACCESS = 1, DD_ACL_DEFAULT = 2 };
enum dd_acl_tag {
	DD_ACL_USER_OBJ = 1, DD_ACL_USER = 2, DD_ACL_GROUP_OBJ = 3,
	DD_ACL_GROUP = 4, DD_ACL_MASK = 5, DD_ACL_OTHER = 6,
};
struct dd_acl_entry {
	uint8_t kind;        /* enum dd_acl_kind; DEFAULT only on a dir */
	uint8_t tag;         /* enum dd_acl_tag */
	uint8_t perm;        /* r 4, w 2, x 1 */
	uint32_t id;         /* uid/gid for USER/GROUP, else 0 */
	const char *name;    /* USER/GROUP only: the name, or name_len 0 */
	size_t name_len;
};

/* A run of a file: a chunk, or (version 3) a hole when id is all zeros. */
struct dd_chunk_ref {
	struct dd_id id;
	uint32_t plain_len;
};

/* Whether `ref` is a hole (version 3): nothing to fetch, zeros to read. */
static inline bool dd_chunk_ref_is_hole(const struct dd_chunk_ref *ref)
{
	static const uint8_t zero[DD_ID_LEN];

	return memcmp(ref->id.b, zero, DD_ID_LEN) == 0;
}

/*
 * The data runs of a file's `n` references (holes between them), as a tar
 * sparse map wants them: each run widened to 512-byte boundaries (the end
 * within the file's `size`) and merged with the next that it then meets,
 * because GNU tar reads each run from a 512-byte boundary. fn(payload,
 * offset, length) for each; a file that is all hole gets one empty run at
 * its end. The archive's data stays the file's bytes, zeros of widened
 * holes included. Returns the runs given.
 */
size_t dd_sparse_runs(const struct dd_chunk_ref *refs, uint64_t n,
		      uint64_t size,
		      void (*fn)(void *payload, uint64_t off, uint64_t len),
		      void *payload);

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
	const char *link;        /* symlink target, or a hard link's first
				  * path (an earlier entry's path) */
	uint32_t link_len;
	const uint8_t *ext;      /* extension records (v2); opaque in v1 */
	uint32_t ext_len;
	uint64_t nchunks;        /* chunk and hole references */
	const struct dd_chunk_ref *chunks;  /* file only */
};

/* Writer: appends to a dd_buf, always in the current version. */
int dd_catalog_begin(struct dd_buf *out);
/* Validates the entry (path rules, lengths, file: sum of chunk and hole
 * plain_len == size, chunks 1..16 MiB, holes 1..DD_HOLE_MAX and after a
 * hole only if it is DD_HOLE_MAX long; non-files: nchunks == 0) before appending; -EINVAL with a
 * reason, `out` unchanged. One entry's chunk list is at most 64 MiB
 * (1,864,135 chunks: about 2 TiB at the default average chunk size). */
int dd_catalog_add(struct dd_buf *out, const struct dd_entry *e);

/* The chunks of e's chunk list, holes left out (what a restore fetches
 * and chunks_total counts). */
uint64_t dd_entry_data_chunks(const struct dd_entry *e);

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
/* 1 = *e filled, 0 = clean end of stream, negative = error: -EBADMSG
 * with the reason for malformed bytes, including an entry whose path does
 * not sort strictly after the previous entry's (out of order or a repeated
 * path), -ENOMEM, or the read function's error. */
int dd_catalog_next(struct dd_catalog_reader *r, struct dd_entry *e);
void dd_catalog_reader_free(struct dd_catalog_reader *r);
/* The version of the catalog being read: 0 until the first
 * dd_catalog_next() read the header. In version 1 the extension area is
 * opaque and must not be parsed. */
uint32_t dd_catalog_version(const struct dd_catalog_reader *r);
/* Where the entry dd_catalog_next() handed out last starts in the stream
 * (the first entry of a catalog at DD_CATALOG_HEADER_LEN). A reader fed
 * a header of the same version and then the bytes from there on reads
 * the same entries from that one on. */
uint64_t dd_catalog_entry_offset(const struct dd_catalog_reader *r);

/* ---- extension records (version 2) ---- */

struct dd_ext_rec {
	uint8_t tag;              /* enum dd_ext_tag */
	const uint8_t *v;
	uint32_t len;
};
struct dd_ext_iter {
	const uint8_t *p;
	size_t left;
};
/* Iterates over e->ext. The reader validated every record already, so
 * dd_ext_next only fails (-EBADMSG) on bytes that did not come from it. */
void dd_ext_iter_init(struct dd_ext_iter *it, const struct dd_entry *e);
/* 1 = *rec filled, 0 = end, negative = malformed. */
int dd_ext_next(struct dd_ext_iter *it, struct dd_ext_rec *rec);

/* Decoders for one record of the matching tag; 0 or -EBADMSG. */
int dd_ext_get_rdev(const struct dd_ext_rec *rec, uint32_t *major,
		    uint32_t *minor);
int dd_ext_get_xattr(const struct dd_ext_rec *rec, const char **name,
		     size_t *name_len, const uint8_t **value,
		     size_t *value_len);
int dd_ext_get_acl(const struct dd_ext_rec *rec, struct dd_acl_entry *out);

/* Encoders: append one record to `out` (which becomes an entry's ext).
 * The caller appends in tag order and xattrs in increasing name order
 * (dd_catalog_add checks it); -EINVAL for a value out of range. */
int dd_ext_put_name(struct dd_buf *out, uint8_t tag, const char *name,
		    size_t len);
int dd_ext_put_rdev(struct dd_buf *out, uint32_t major, uint32_t minor);
int dd_ext_put_xattr(struct dd_buf *out, const char *name, size_t name_len,
		     const void *value, size_t value_len);
int dd_ext_put_acl(struct dd_buf *out, const struct dd_acl_entry *a);

/*
 * The owner and group names seen so far in a catalog, by number. A hard
 * link's entry records none (its inode's are on its first path, which a
 * catalog lists before it), so what shows names (`ls`, the tar exports)
 * gives it the names the same numbers had there. A few distinct numbers
 * only (DD_OWNER_NAMES_KEPT each); past that, a link shows numbers.
 */
#define DD_OWNER_NAMES_KEPT 64
struct dd_owner_names;
struct dd_owner_names *dd_owner_names_new(void);       /* NULL: no memory */
void dd_owner_names_free(struct dd_owner_names *t);
/* For an entry read in catalog order with *uname and *gname (NULL or ""
 * when it records none): a hard link's missing ones are set to the names
 * its numbers had (or left as they are when unknown); any other entry's
 * are noted. */
void dd_owner_names_apply(struct dd_owner_names *t, const struct dd_entry *e,
			  const char **uname, const char **gname);

/* A read function over a memory range, for callers holding the catalog. */
struct dd_catalog_mem {
	const uint8_t *p;
	size_t left;
};
ssize_t dd_catalog_mem_read(void *payload, void *buf, size_t len);

#endif
