/*
 * catalog.c - the snapshot catalog (docs/FORMAT.md, "Catalog"): a writer
 * that refuses entries a reader would reject, and a streaming reader that
 * holds at most one entry (plus one read block) in memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "chunker.h"

#define CATALOG_MAGIC "DDCT"
#define CHUNK_REF_LEN 36u
/* Chunk list bytes of one entry: 64 MiB, about 1.8 million chunks. */
#define CHUNK_LIST_MAX (64u << 20)
#define CHUNKS_MAX (CHUNK_LIST_MAX / CHUNK_REF_LEN)
#define ENTRY_MAX ((size_t)DD_CATALOG_ENTRY_FIXED_LEN + DD_CATALOG_PATH_MAX + \
		   DD_CATALOG_LINK_MAX + DD_CATALOG_EXT_MAX + CHUNK_LIST_MAX)
#define READ_BLOCK 65536u

struct dd_catalog_reader {
	dd_catalog_read_fn read;
	void *payload;
	struct dd_buf buf;     /* bytes pulled from `read` */
	size_t pos;            /* first unconsumed byte in buf */
	size_t last_len;       /* bytes of the entry handed out last */
	bool eof;
	bool header_done;
	int err;               /* sticky: once broken, always broken */
	uint64_t index;        /* entries handed out, for messages */
	struct dd_chunk_ref *chunks;
	size_t achunks;
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

/* Everything both the writer and the reader require of an entry;
 * -EINVAL with a reason. */
static int entry_check(const struct dd_entry *e)
{
	uint64_t sum = 0, i;
	int err;

	if (e->type != DD_ENTRY_FILE && e->type != DD_ENTRY_DIR &&
	    e->type != DD_ENTRY_SYMLINK)
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
	} else if (e->link_len) {
		return dd_error_set(-EINVAL, "'%.*s': only a symlink has a link "
				    "target", (int)e->path_len, e->path);
	}
	if (e->ext_len > DD_CATALOG_EXT_MAX)
		return dd_error_set(-EINVAL, "'%.*s': extension area of %u "
				    "bytes is above %u", (int)e->path_len,
				    e->path, e->ext_len, DD_CATALOG_EXT_MAX);
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
		uint32_t n = e->chunks[i].plain_len;

		if (n == 0 || n > DD_CHUNK_SIZE_LIMIT)
			return dd_error_set(-EINVAL, "'%.*s': chunk %llu has a "
					    "bad length %u", (int)e->path_len,
					    e->path, (unsigned long long)i, n);
		sum += n;
	}
	if (sum != e->size)
		return dd_error_set(-EINVAL, "'%.*s': chunks add up to %llu "
				    "bytes, size is %llu", (int)e->path_len,
				    e->path, (unsigned long long)sum,
				    (unsigned long long)e->size);
	return 0;
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

	err = entry_check(e);
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
	if (dd_le32(p + 4) != DD_CATALOG_VERSION)
		return dd_error_set(-EBADMSG, "unsupported catalog version %u",
				    dd_le32(p + 4));
	r->pos += DD_CATALOG_HEADER_LEN;
	r->header_done = true;
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
	err = entry_check(e);
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
