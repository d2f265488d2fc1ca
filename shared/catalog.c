/*
 * catalog.c - the snapshot catalog (docs/FORMAT.md, "Catalog"): a writer
 * that refuses entries a reader would reject, and a streaming reader that
 * holds at most one entry (plus one read block) in memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "chunker.h"

#define CATALOG_MAGIC "DDCT"
#define CHUNK_REF_LEN 36u
/* Chunk list bytes of one entry: 64 MiB, about 1.8 million chunks. */
#define CHUNK_LIST_MAX (64u << 20)
#define CHUNKS_MAX DD_CATALOG_REFS_MAX
_Static_assert(DD_CATALOG_REFS_MAX == CHUNK_LIST_MAX / CHUNK_REF_LEN,
	       "catalog.h's DD_CATALOG_REFS_MAX");
#define ENTRY_MAX ((size_t)DD_CATALOG_ENTRY_FIXED_LEN + DD_CATALOG_PATH_MAX + \
		   DD_CATALOG_LINK_MAX + DD_CATALOG_EXT_MAX + CHUNK_LIST_MAX)
#define READ_BLOCK 65536u

struct dd_catalog_reader {
	dd_catalog_read_fn read;
	void *payload;
	struct dd_buf buf;     /* bytes pulled from `read` */
	size_t pos;            /* first unconsumed byte in buf */
	uint64_t base;         /* stream offset of buf's first byte */
	uint64_t entry_off;    /* stream offset of the last entry handed out */
	size_t last_len;       /* bytes of the entry handed out last */
	bool eof;
	bool header_done;
	uint32_t version;      /* of the catalog being read, once known */
	int err;               /* sticky: once broken, always broken */
	uint64_t index;        /* entries handed out, for messages */
	struct dd_chunk_ref *chunks;
	size_t achunks;
	/* The previous entry's path: each must sort strictly after it. */
	char *prev;
	size_t prev_len, prev_alloc;
};

int dd_catalog_path_check(const char *path, size_t len)
{
	size_t i, start = 0;

	if (len == 0 || len > DD_CATALOG_PATH_MAX)
		return dd_error_set(-EINVAL, "path length %zu is not within "
				    "1..%u", len, DD_CATALOG_PATH_MAX);
	if (memchr(path, '\0', len))
		return dd_error_set(-EINVAL, "path contains a NUL byte");
	if (path[0] == '/')
		return dd_error_set(-EINVAL, "path '%.*s' is absolute",
				    (int)(len > 200 ? 200 : len), path);
	for (i = 0; i <= len; i++) {
		size_t n;

		if (i < len && path[i] != '/')
			continue;
		n = i - start;
		if (n == 0 || (n == 1 && path[start] == '.') ||
		    (n == 2 && path[start] == '.' && path[start + 1] == '.'))
			return dd_error_set(-EINVAL, "path '%.*s' has an empty, "
					    "'.' or '..' component",
					    (int)(len > 200 ? 200 : len), path);
		start = i + 1;
	}
	return 0;
}

int dd_catalog_path_cmp(const char *a, size_t alen, const char *b,
			size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned ca = (unsigned char)a[i], cb = (unsigned char)b[i];

		if (ca == cb)
			continue;
		/* '/' ends a component: it sorts before any name byte. */
		ca = ca == '/' ? 0 : ca;
		cb = cb == '/' ? 0 : cb;
		return ca < cb ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

#define EXT_HDR_LEN 5u
#define ACL_FIXED_LEN 8u

static const char *const acl_xattrs[] = {
	"system.posix_acl_access", "system.posix_acl_default",
};

static int ext_bad(const struct dd_entry *e, const char *why)
{
	return dd_error_set(-EINVAL, "'%.*s': extension area: %s",
			    (int)(e->path_len > 200 ? 200 : e->path_len),
			    e->path, why);
}

/* The extension records of a version 2 entry: known tags in
 * non-decreasing order, each value within its rules. -EINVAL. */
static int ext_check(const struct dd_entry *e)
{
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	const uint8_t *prev_name = NULL;
	size_t prev_len = 0;
	int prev_tag = 0, rc;
	bool have_rdev = false;
	bool device = e->type == DD_ENTRY_CHR || e->type == DD_ENTRY_BLK;

	if (e->type == DD_ENTRY_HARDLINK && e->ext_len)
		return ext_bad(e, "a hard link has no records of its own");
	dd_ext_iter_init(&it, e);
	while ((rc = dd_ext_next(&it, &rec)) == 1) {
		if (rec.tag < prev_tag ||
		    (rec.tag == prev_tag && rec.tag != DD_EXT_XATTR &&
		     rec.tag != DD_EXT_ACL))
			return ext_bad(e, "records out of order or repeated");
		prev_tag = rec.tag;
		switch (rec.tag) {
		case DD_EXT_UNAME:
		case DD_EXT_GNAME:
			if (rec.len == 0 || rec.len > DD_EXT_NAME_MAX ||
			    memchr(rec.v, '\0', rec.len))
				return ext_bad(e, "bad owner or group name");
			break;
		case DD_EXT_RDEV:
			if (rec.len != 8 || !device)
				return ext_bad(e, "bad device numbers");
			have_rdev = true;
			break;
		case DD_EXT_XATTR: {
			const char *name;
			const uint8_t *val;
			size_t nlen, vlen, n;
			int cmp;

			if (dd_ext_get_xattr(&rec, &name, &nlen, &val, &vlen) < 0)
				return ext_bad(e, "bad extended attribute");
			for (size_t i = 0; i < DD_ARRAY_SIZE(acl_xattrs); i++)
				if (nlen == strlen(acl_xattrs[i]) &&
				    memcmp(name, acl_xattrs[i], nlen) == 0)
					return ext_bad(e, "an ACL recorded as an "
						       "extended attribute");
			if (prev_name) {
				n = nlen < prev_len ? nlen : prev_len;
				cmp = memcmp(prev_name, name, n);
				if (cmp > 0 || (cmp == 0 && prev_len >= nlen))
					return ext_bad(e, "extended attributes "
						       "out of order or repeated");
			}
			prev_name = (const uint8_t *)name;
			prev_len = nlen;
			break;
		}
		case DD_EXT_ACL: {
			struct dd_acl_entry a;

			if (dd_ext_get_acl(&rec, &a) < 0)
				return ext_bad(e, "bad ACL entry");
			if (a.kind == DD_ACL_DEFAULT && e->type != DD_ENTRY_DIR)
				return ext_bad(e, "a default ACL on a "
					       "non-directory");
			break;
		}
		default:
			return ext_bad(e, "unknown record tag");
		}
	}
	if (rc < 0)
		return ext_bad(e, "truncated record");
	if (device && !have_rdev)
		return ext_bad(e, "a device without device numbers");
	return 0;
}

/* Chunk reference i of file e in a catalog of `version`: a chunk of
 * 1..16 MiB, or (version 3) a hole of 1..DD_HOLE_MAX bytes that follows
 * another hole only if that one is DD_HOLE_MAX long. -EINVAL. */
static int ref_check(const struct dd_entry *e, const struct dd_chunk_ref *ref,
		     uint64_t i, uint32_t version)
{
	uint32_t n = ref->plain_len;
	int plen = (int)(e->path_len > 200 ? 200 : e->path_len);

	if (!dd_chunk_ref_is_hole(ref)) {
		if (n == 0 || n > DD_CHUNK_SIZE_LIMIT)
			return dd_error_set(-EINVAL, "'%.*s': chunk %llu has a "
					    "bad length %u", plen, e->path,
					    (unsigned long long)i, n);
		return 0;
	}
	if (version < 3)
		return dd_error_set(-EINVAL, "'%.*s': chunk %llu has an all-zero "
				    "id (a hole, which version %u does not "
				    "have)", plen, e->path,
				    (unsigned long long)i, version);
	if (n == 0)
		return dd_error_set(-EINVAL, "'%.*s': hole %llu is empty", plen,
				    e->path, (unsigned long long)i);
	/* One run of zeros is one hole, split only where it is too long
	 * for one reference: the form is canonical. */
	if (i > 0 && dd_chunk_ref_is_hole(&e->chunks[i - 1]) &&
	    e->chunks[i - 1].plain_len != DD_HOLE_MAX)
		return dd_error_set(-EINVAL, "'%.*s': hole %llu follows a hole "
				    "shorter than %u bytes", plen, e->path,
				    (unsigned long long)i, DD_HOLE_MAX);
	return 0;
}

/* Everything both the writer and the reader require of an entry of
 * catalog version `version`; -EINVAL with a reason. */
static int entry_check(const struct dd_entry *e, uint32_t version)
{
	uint64_t sum = 0, i;
	uint8_t max_type = version >= 2 ? DD_ENTRY_BLK : DD_ENTRY_SYMLINK;
	int err;

	if (e->type < DD_ENTRY_FILE || e->type > max_type)
		return dd_error_set(-EINVAL, "unknown entry type %u", e->type);
	err = dd_catalog_path_check(e->path, e->path_len);
	if (err < 0)
		return err;
	if (e->mode & ~07777u)
		return dd_error_set(-EINVAL, "'%.*s': mode %o has bits beyond "
				    "07777", (int)e->path_len, e->path, e->mode);
	if (e->mtime_nsec >= 1000000000u || e->ctime_nsec >= 1000000000u)
		return dd_error_set(-EINVAL, "'%.*s': nanoseconds out of range",
				    (int)e->path_len, e->path);
	if (e->type == DD_ENTRY_SYMLINK) {
		if (e->link_len == 0 || e->link_len > DD_CATALOG_LINK_MAX)
			return dd_error_set(-EINVAL, "'%.*s': link target "
					    "length %u is not within 1..%u",
					    (int)e->path_len, e->path,
					    e->link_len, DD_CATALOG_LINK_MAX);
		if (memchr(e->link, '\0', e->link_len))
			return dd_error_set(-EINVAL, "'%.*s': link target "
					    "contains a NUL byte",
					    (int)e->path_len, e->path);
	} else if (e->type == DD_ENTRY_HARDLINK) {
		/* The first path of the inode: a catalog path written
		 * earlier, so it sorts strictly before this one. */
		if (dd_catalog_path_check(e->link, e->link_len) < 0)
			return dd_error_set(-EINVAL, "'%.*s': hard link source "
					    "is not a valid path",
					    (int)e->path_len, e->path);
		if (dd_catalog_path_cmp(e->link, e->link_len, e->path,
					e->path_len) >= 0)
			return dd_error_set(-EINVAL, "'%.*s': hard link source "
					    "does not come before the link",
					    (int)e->path_len, e->path);
	} else if (e->link_len) {
		return dd_error_set(-EINVAL, "'%.*s': only a symlink or a hard "
				    "link has a link target", (int)e->path_len,
				    e->path);
	}
	if (e->ext_len > DD_CATALOG_EXT_MAX)
		return dd_error_set(-EINVAL, "'%.*s': extension area of %u "
				    "bytes is above %u", (int)e->path_len,
				    e->path, e->ext_len, DD_CATALOG_EXT_MAX);
	if (version >= 2 && (err = ext_check(e)) < 0)
		return err;
	if (e->type != DD_ENTRY_FILE) {
		if (e->size || e->nchunks)
			return dd_error_set(-EINVAL, "'%.*s': only a file has a "
					    "size and chunks", (int)e->path_len,
					    e->path);
		return 0;
	}
	if (e->nchunks > e->size || e->nchunks > CHUNKS_MAX)
		return dd_error_set(-EINVAL, "'%.*s': %llu chunks for %llu bytes",
				    (int)e->path_len, e->path,
				    (unsigned long long)e->nchunks,
				    (unsigned long long)e->size);
	for (i = 0; i < e->nchunks; i++) {
		const struct dd_chunk_ref *ref = &e->chunks[i];

		if ((err = ref_check(e, ref, i, version)) < 0)
			return err;
		sum += ref->plain_len;
	}
	if (sum != e->size)
		return dd_error_set(-EINVAL, "'%.*s': chunks add up to %llu "
				    "bytes, size is %llu", (int)e->path_len,
				    e->path, (unsigned long long)sum,
				    (unsigned long long)e->size);
	return 0;
}

uint64_t dd_entry_data_chunks(const struct dd_entry *e)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < e->nchunks; i++)
		n += !dd_chunk_ref_is_hole(&e->chunks[i]);
	return n;
}

/* ---- extension records ---- */

void dd_ext_iter_init(struct dd_ext_iter *it, const struct dd_entry *e)
{
	it->p = e->ext;
	it->left = e->ext ? e->ext_len : 0;
}

int dd_ext_next(struct dd_ext_iter *it, struct dd_ext_rec *rec)
{
	uint32_t len;

	if (it->left == 0)
		return 0;
	if (it->left < EXT_HDR_LEN)
		return -EBADMSG;
	len = dd_le32(it->p + 1);
	if (len > it->left - EXT_HDR_LEN)
		return -EBADMSG;
	rec->tag = it->p[0];
	rec->v = it->p + EXT_HDR_LEN;
	rec->len = len;
	it->p += EXT_HDR_LEN + len;
	it->left -= EXT_HDR_LEN + len;
	return 1;
}

int dd_ext_get_rdev(const struct dd_ext_rec *rec, uint32_t *major,
		    uint32_t *minor)
{
	if (rec->tag != DD_EXT_RDEV || rec->len != 8)
		return -EBADMSG;
	*major = dd_le32(rec->v);
	*minor = dd_le32(rec->v + 4);
	return 0;
}

int dd_ext_get_xattr(const struct dd_ext_rec *rec, const char **name,
		     size_t *name_len, const uint8_t **value,
		     size_t *value_len)
{
	size_t n;

	if (rec->tag != DD_EXT_XATTR || rec->len < 2)
		return -EBADMSG;
	n = rec->v[0];
	if (n == 0 || 1 + n > rec->len || memchr(rec->v + 1, '\0', n) ||
	    rec->len - 1 - n > DD_EXT_XATTR_VALUE_MAX)
		return -EBADMSG;
	*name = (const char *)rec->v + 1;
	*name_len = n;
	*value = rec->v + 1 + n;
	*value_len = rec->len - 1 - n;
	return 0;
}

static bool acl_tag_named(uint8_t tag)
{
	return tag == DD_ACL_USER || tag == DD_ACL_GROUP;
}

int dd_ext_get_acl(const struct dd_ext_rec *rec, struct dd_acl_entry *out)
{
	const uint8_t *v = rec->v;

	if (rec->tag != DD_EXT_ACL || rec->len < ACL_FIXED_LEN ||
	    rec->len > ACL_FIXED_LEN + DD_EXT_NAME_MAX)
		return -EBADMSG;
	out->kind = v[0];
	out->tag = v[1];
	out->perm = v[2];
	out->id = dd_le32(v + 4);
	out->name = (const char *)v + ACL_FIXED_LEN;
	out->name_len = rec->len - ACL_FIXED_LEN;
	if ((out->kind != DD_ACL_ACCESS && out->kind != DD_ACL_DEFAULT) ||
	    out->tag < DD_ACL_USER_OBJ || out->tag > DD_ACL_OTHER ||
	    out->perm > 7 || v[3] ||
	    (!acl_tag_named(out->tag) && (out->id || out->name_len)) ||
	    memchr(out->name, '\0', out->name_len))
		return -EBADMSG;
	return 0;
}

static int ext_put(struct dd_buf *out, uint8_t tag, const void *a,
		   size_t alen, const void *b, size_t blen)
{
	uint8_t hdr[EXT_HDR_LEN];
	int rc;

	if (alen + blen > DD_CATALOG_EXT_MAX)
		return dd_error_set(-EINVAL, "extension record too large");
	hdr[0] = tag;
	dd_put_le32(hdr + 1, (uint32_t)(alen + blen));
	if ((rc = dd_buf_reserve(out, sizeof(hdr) + alen + blen)) < 0)
		return rc;
	dd_buf_append(out, hdr, sizeof(hdr));
	dd_buf_append(out, a, alen);
	dd_buf_append(out, b, blen);
	return 0;
}

int dd_ext_put_name(struct dd_buf *out, uint8_t tag, const char *name,
		    size_t len)
{
	if ((tag != DD_EXT_UNAME && tag != DD_EXT_GNAME) || len == 0 ||
	    len > DD_EXT_NAME_MAX || memchr(name, '\0', len))
		return dd_error_set(-EINVAL, "bad owner or group name");
	return ext_put(out, tag, name, len, NULL, 0);
}

int dd_ext_put_rdev(struct dd_buf *out, uint32_t major, uint32_t minor)
{
	uint8_t v[8];

	dd_put_le32(v, major);
	dd_put_le32(v + 4, minor);
	return ext_put(out, DD_EXT_RDEV, v, sizeof(v), NULL, 0);
}

int dd_ext_put_xattr(struct dd_buf *out, const char *name, size_t name_len,
		     const void *value, size_t value_len)
{
	uint8_t v[1 + DD_EXT_NAME_MAX];

	if (name_len == 0 || name_len > DD_EXT_NAME_MAX ||
	    memchr(name, '\0', name_len) || value_len > DD_EXT_XATTR_VALUE_MAX)
		return dd_error_set(-EINVAL, "bad extended attribute");
	v[0] = (uint8_t)name_len;
	memcpy(v + 1, name, name_len);
	return ext_put(out, DD_EXT_XATTR, v, 1 + name_len, value, value_len);
}

int dd_ext_put_acl(struct dd_buf *out, const struct dd_acl_entry *a)
{
	uint8_t v[ACL_FIXED_LEN];
	struct dd_ext_rec rec;
	struct dd_acl_entry chk;
	uint8_t tmp[ACL_FIXED_LEN + DD_EXT_NAME_MAX];

	if (a->name_len > DD_EXT_NAME_MAX)
		return dd_error_set(-EINVAL, "bad ACL entry");
	v[0] = a->kind;
	v[1] = a->tag;
	v[2] = a->perm;
	v[3] = 0;
	dd_put_le32(v + 4, a->id);
	memcpy(tmp, v, sizeof(v));
	if (a->name_len)
		memcpy(tmp + sizeof(v), a->name, a->name_len);
	rec.tag = DD_EXT_ACL;
	rec.v = tmp;
	rec.len = (uint32_t)(sizeof(v) + a->name_len);
	if (dd_ext_get_acl(&rec, &chk) < 0)
		return dd_error_set(-EINVAL, "bad ACL entry");
	return ext_put(out, DD_EXT_ACL, v, sizeof(v), a->name, a->name_len);
}

/* ---- writer ---- */

int dd_catalog_begin(struct dd_buf *out)
{
	uint8_t hdr[DD_CATALOG_HEADER_LEN];

	memcpy(hdr, CATALOG_MAGIC, 4);
	dd_put_le32(hdr + 4, DD_CATALOG_VERSION);
	return dd_buf_append(out, hdr, sizeof(hdr));
}

int dd_catalog_add(struct dd_buf *out, const struct dd_entry *e)
{
	uint8_t fx[DD_CATALOG_ENTRY_FIXED_LEN];
	size_t total;
	uint64_t i;
	int err;

	err = entry_check(e, DD_CATALOG_VERSION);
	if (err < 0)
		return err;
	total = sizeof(fx) + (size_t)e->path_len + e->link_len + e->ext_len +
		(size_t)e->nchunks * CHUNK_REF_LEN;
	err = dd_buf_reserve(out, total);
	if (err < 0)
		return err;
	fx[0] = e->type;
	fx[1] = 0;
	fx[2] = 0;
	fx[3] = 0;
	dd_put_le32(fx + 4, e->mode);
	dd_put_le32(fx + 8, e->uid);
	dd_put_le32(fx + 12, e->gid);
	dd_put_le64(fx + 16, (uint64_t)e->mtime_sec);
	dd_put_le32(fx + 24, e->mtime_nsec);
	dd_put_le64(fx + 28, (uint64_t)e->ctime_sec);
	dd_put_le32(fx + 36, e->ctime_nsec);
	dd_put_le64(fx + 40, e->ino);
	dd_put_le64(fx + 48, e->dev);
	dd_put_le64(fx + 56, e->size);
	dd_put_le32(fx + 64, e->path_len);
	dd_put_le32(fx + 68, e->link_len);
	dd_put_le32(fx + 72, e->ext_len);
	dd_put_le64(fx + 76, e->nchunks);
	/* Room is reserved: none of these appends can fail. */
	dd_buf_append(out, fx, sizeof(fx));
	dd_buf_append(out, e->path, e->path_len);
	dd_buf_append(out, e->link, e->link_len);
	dd_buf_append(out, e->ext, e->ext_len);
	for (i = 0; i < e->nchunks; i++) {
		uint8_t ref[CHUNK_REF_LEN];

		memcpy(ref, e->chunks[i].id.b, DD_ID_LEN);
		dd_put_le32(ref + DD_ID_LEN, e->chunks[i].plain_len);
		dd_buf_append(out, ref, sizeof(ref));
	}
	return 0;
}

/* ---- reader ---- */

ssize_t dd_catalog_mem_read(void *payload, void *buf, size_t len)
{
	struct dd_catalog_mem *m = payload;
	size_t n = len < m->left ? len : m->left;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	if (n) {
		memcpy(buf, m->p, n);
		m->p += n;
		m->left -= n;
	}
	return (ssize_t)n;
}

int dd_catalog_reader_new(struct dd_catalog_reader **out,
			  dd_catalog_read_fn read, void *payload)
{
	struct dd_catalog_reader *r;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return dd_error_set(-ENOMEM, "out of memory");
	r->read = read;
	r->payload = payload;
	dd_buf_init(&r->buf, ENTRY_MAX + READ_BLOCK);
	*out = r;
	return 0;
}

void dd_catalog_reader_free(struct dd_catalog_reader *r)
{
	if (!r)
		return;
	dd_buf_release(&r->buf);
	free(r->chunks);
	free(r->prev);
	free(r);
}

/* Makes `need` unconsumed bytes available unless the stream ends first.
 * Returns the number available (maybe < need at end), or an error. */
static ssize_t reader_fill(struct dd_catalog_reader *r, size_t need)
{
	size_t avail = r->buf.len - r->pos;

	if (avail >= need || r->eof)
		return (ssize_t)avail;
	if (r->pos) {
		memmove(r->buf.data, r->buf.data + r->pos, avail);
		r->buf.len = avail;
		r->base += r->pos;
		r->pos = 0;
	}
	while (avail < need && !r->eof) {
		size_t room, want = need - avail;
		ssize_t got;
		int err;

		if (want < READ_BLOCK)
			want = READ_BLOCK;
		err = dd_buf_reserve(&r->buf, want);
		if (err < 0)
			return err;
		room = r->buf.alloc - r->buf.len;
		got = r->read(r->payload, r->buf.data + r->buf.len, room);
		if (got < 0)
			return got;
		if ((size_t)got > room)
			return dd_error_set(-EIO, "catalog read function "
					    "returned too much");
		if (got == 0)
			r->eof = true;
		r->buf.len += (size_t)got;
		avail += (size_t)got;
	}
	return (ssize_t)avail;
}

static int reader_header(struct dd_catalog_reader *r)
{
	const uint8_t *p;
	ssize_t n;

	n = reader_fill(r, DD_CATALOG_HEADER_LEN);
	if (n < 0)
		return (int)n;
	if ((size_t)n < DD_CATALOG_HEADER_LEN)
		return dd_error_set(-EBADMSG, "catalog is shorter than its "
				    "header");
	p = r->buf.data + r->pos;
	if (memcmp(p, CATALOG_MAGIC, 4) != 0)
		return dd_error_set(-EBADMSG, "not a catalog (bad magic)");
	if (dd_le32(p + 4) < DD_CATALOG_VERSION_MIN ||
	    dd_le32(p + 4) > DD_CATALOG_VERSION)
		return dd_error_set(-EBADMSG, "unsupported catalog version %u",
				    dd_le32(p + 4));
	r->version = dd_le32(p + 4);
	r->pos += DD_CATALOG_HEADER_LEN;
	r->header_done = true;
	return 0;
}

/* Catalog order (dd_catalog_path_cmp) is strict: an entry that sorts
 * before the previous one, or repeats its path, makes the catalog invalid
 * (a restore would write the path twice, an incremental backup could not
 * pair its walk with it). Remembers e's path for the next entry. */
static int reader_order(struct dd_catalog_reader *r, const struct dd_entry *e)
{
	if (r->index > 0 &&
	    dd_catalog_path_cmp(r->prev, r->prev_len, e->path,
				e->path_len) >= 0) {
		int same = r->prev_len == e->path_len &&
			   memcmp(r->prev, e->path, e->path_len) == 0;

		return dd_error_set(-EINVAL, "'%.*s' %s", (int)(e->path_len >
				    200 ? 200 : e->path_len), e->path,
				    same ? "repeats the previous entry's path" :
				    "is out of order (catalog order is "
				    "sorted by path)");
	}
	if (e->path_len > r->prev_alloc) {
		char *p = realloc(r->prev, e->path_len);

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		r->prev = p;
		r->prev_alloc = e->path_len;
	}
	memcpy(r->prev, e->path, e->path_len);
	r->prev_len = e->path_len;
	return 0;
}

static int reader_entry(struct dd_catalog_reader *r, struct dd_entry *e)
{
	const uint8_t *p;
	uint64_t i, nchunks, size;
	uint32_t path_len, link_len, ext_len;
	size_t var;
	ssize_t n;
	int err;

	n = reader_fill(r, 1);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 0;
	r->entry_off = r->base + r->pos;
	n = reader_fill(r, DD_CATALOG_ENTRY_FIXED_LEN);
	if (n < 0)
		return (int)n;
	if ((size_t)n < DD_CATALOG_ENTRY_FIXED_LEN)
		return dd_error_set(-EBADMSG, "catalog ends inside entry %llu",
				    (unsigned long long)r->index);
	p = r->buf.data + r->pos;
	if (p[1] || p[2] || p[3])
		return dd_error_set(-EBADMSG, "catalog entry %llu: reserved "
				    "bytes are not zero",
				    (unsigned long long)r->index);
	size = dd_le64(p + 56);
	path_len = dd_le32(p + 64);
	link_len = dd_le32(p + 68);
	ext_len = dd_le32(p + 72);
	nchunks = dd_le64(p + 76);
	/* Bound the variable part before pulling it in. */
	if (path_len > DD_CATALOG_PATH_MAX || link_len > DD_CATALOG_LINK_MAX ||
	    ext_len > DD_CATALOG_EXT_MAX)
		return dd_error_set(-EBADMSG, "catalog entry %llu: a length is "
				    "out of range (path %u, link %u, ext %u)",
				    (unsigned long long)r->index, path_len,
				    link_len, ext_len);
	if (nchunks > size || nchunks > CHUNKS_MAX)
		return dd_error_set(-EBADMSG, "catalog entry %llu: %llu chunks "
				    "for %llu bytes", (unsigned long long)r->index,
				    (unsigned long long)nchunks,
				    (unsigned long long)size);
	var = (size_t)path_len + link_len + ext_len +
	      (size_t)nchunks * CHUNK_REF_LEN;
	n = reader_fill(r, DD_CATALOG_ENTRY_FIXED_LEN + var);
	if (n < 0)
		return (int)n;
	if ((size_t)n < DD_CATALOG_ENTRY_FIXED_LEN + var)
		return dd_error_set(-EBADMSG, "catalog ends inside entry %llu",
				    (unsigned long long)r->index);
	p = r->buf.data + r->pos;    /* the fill may have moved the bytes */

	if (nchunks > r->achunks) {
		struct dd_chunk_ref *c;

		c = realloc(r->chunks, (size_t)nchunks * sizeof(*c));
		if (!c)
			return dd_error_set(-ENOMEM, "out of memory");
		r->chunks = c;
		r->achunks = (size_t)nchunks;
	}
	memset(e, 0, sizeof(*e));
	e->type = p[0];
	e->mode = dd_le32(p + 4);
	e->uid = dd_le32(p + 8);
	e->gid = dd_le32(p + 12);
	e->mtime_sec = (int64_t)dd_le64(p + 16);
	e->mtime_nsec = dd_le32(p + 24);
	e->ctime_sec = (int64_t)dd_le64(p + 28);
	e->ctime_nsec = dd_le32(p + 36);
	e->ino = dd_le64(p + 40);
	e->dev = dd_le64(p + 48);
	e->size = size;
	e->path_len = path_len;
	e->link_len = link_len;
	e->ext_len = ext_len;
	e->nchunks = nchunks;
	p += DD_CATALOG_ENTRY_FIXED_LEN;
	e->path = (const char *)p;
	p += path_len;
	e->link = (const char *)p;
	p += link_len;
	e->ext = p;
	p += ext_len;
	for (i = 0; i < nchunks; i++, p += CHUNK_REF_LEN) {
		memcpy(r->chunks[i].id.b, p, DD_ID_LEN);
		r->chunks[i].plain_len = dd_le32(p + DD_ID_LEN);
	}
	e->chunks = nchunks ? r->chunks : NULL;
	err = entry_check(e, r->version);
	if (err == 0)
		err = reader_order(r, e);
	if (err == -ENOMEM)
		return err;
	if (err < 0)
		return dd_error_set(-EBADMSG, "catalog entry %llu: %s",
				    (unsigned long long)r->index,
				    dd_error_last());
	r->last_len = DD_CATALOG_ENTRY_FIXED_LEN + var;
	r->index++;
	return 1;
}

int dd_catalog_next(struct dd_catalog_reader *r, struct dd_entry *e)
{
	int ret;

	if (r->err)
		return r->err;
	/* The previous entry's pointers die here. */
	r->pos += r->last_len;
	r->last_len = 0;
	if (!r->header_done) {
		ret = reader_header(r);
		if (ret < 0)
			goto fail;
	}
	ret = reader_entry(r, e);
	if (ret < 0)
		goto fail;
	return ret;

fail:
	r->err = ret;
	return ret;
}

uint32_t dd_catalog_version(const struct dd_catalog_reader *r)
{
	return r->header_done ? r->version : 0;
}

uint64_t dd_catalog_entry_offset(const struct dd_catalog_reader *r)
{
	return r->entry_off;
}

size_t dd_sparse_runs(const struct dd_chunk_ref *refs, uint64_t n,
		      uint64_t size,
		      void (*fn)(void *payload, uint64_t off, uint64_t len),
		      void *payload)
{
	uint64_t off = 0, run = 0, ps = 0, pe = 0;
	bool pending = false;
	size_t count = 0;

	for (uint64_t j = 0; j <= n; j++) {
		if (j == n || dd_chunk_ref_is_hole(&refs[j])) {
			if (off > run) {
				uint64_t s = run & ~(uint64_t)511;
				uint64_t e = off > size - (size % 512) ? size :
					(off + 511) & ~(uint64_t)511;

				if (pending && s <= pe) {
					if (e > pe)
						pe = e;
				} else {
					if (pending) {
						fn(payload, ps, pe - ps);
						count++;
					}
					ps = s;
					pe = e;
					pending = true;
				}
			}
			if (j == n)
				break;
			run = off + refs[j].plain_len;
		}
		off += refs[j].plain_len;
	}
	if (pending) {
		fn(payload, ps, pe - ps);
		count++;
	}
	if (!count) {
		fn(payload, off, 0);
		count++;
	}
	return count;
}

/* ---- owner names for hard links ---- */

struct dd_owner_table {
	uint32_t id[DD_OWNER_NAMES_KEPT];
	char name[DD_OWNER_NAMES_KEPT][DD_EXT_NAME_MAX + 1];
	size_t n;
};

struct dd_owner_names {
	struct dd_owner_table users, groups;
};

struct dd_owner_names *dd_owner_names_new(void)
{
	return calloc(1, sizeof(struct dd_owner_names));
}

void dd_owner_names_free(struct dd_owner_names *t)
{
	free(t);
}

static const char *owner_find(const struct dd_owner_table *t, uint32_t id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->id[i] == id)
			return t->name[i];
	return NULL;
}

static void owner_note(struct dd_owner_table *t, uint32_t id,
		       const char *name)
{
	if (!name || !name[0] || t->n >= DD_OWNER_NAMES_KEPT ||
	    owner_find(t, id))
		return;
	t->id[t->n] = id;
	snprintf(t->name[t->n], sizeof(t->name[0]), "%s", name);
	t->n++;
}

void dd_owner_names_apply(struct dd_owner_names *t, const struct dd_entry *e,
			  const char **uname, const char **gname)
{
	const char *u, *g;

	if (e->type != DD_ENTRY_HARDLINK) {
		owner_note(&t->users, e->uid, *uname);
		owner_note(&t->groups, e->gid, *gname);
		return;
	}
	if ((!*uname || !**uname) && (u = owner_find(&t->users, e->uid)))
		*uname = u;
	if ((!*gname || !**gname) && (g = owner_find(&t->groups, e->gid)))
		*gname = g;
}
