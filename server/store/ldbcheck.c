/*
 * ldbcheck.c - see ldbcheck.h. The table format is LevelDB's
 * doc/table_format.md: blocks, each followed by a 5-byte trailer (u8
 * compression type, u32 masked CRC-32C of the block and that byte), and a
 * 48-byte footer (metaindex handle, index handle, padding, u64 magic).
 * A handle is two varint64: offset, size (without the trailer).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ldbcheck.h"
#include "util.h"

#define LDB_FOOTER_LEN 48u
#define LDB_TRAILER_LEN 5u
#define LDB_MAGIC 0xdb4775248b80fb57ull
#define LDB_MASK_DELTA 0xa282ead8u
/* Tables are at most about 32 MiB (STORE_TABLE_BYTES; 2 MiB in indexes
 * written before it); anything far larger is not one of ours. */
#define LDB_TABLE_MAX (512u * 1024 * 1024)

/* CRC-32C tables for slicing by 8 (polynomial 0x82f63b78, reflected):
 * tab[0] is the byte-wise table, tab[k] advances k more zero bytes. */
static void ldb_crc_init(uint32_t tab[8][256])
{
	uint32_t c;
	int i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		tab[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			tab[k][i] = (tab[k - 1][i] >> 8) ^
				    tab[0][tab[k - 1][i] & 0xff];
}

/* CRC-32C (Castagnoli), as LevelDB's crc32c::Value. */
static uint32_t ldb_crc32c(const uint32_t tab[8][256], const uint8_t *p,
			   size_t n)
{
	uint32_t c = 0xffffffffu, lo, hi;

	for (; n >= 8; n -= 8, p += 8) {
		lo = dd_le32(p) ^ c;
		hi = dd_le32(p + 4);
		c = tab[7][lo & 0xff] ^ tab[6][(lo >> 8) & 0xff] ^
		    tab[5][(lo >> 16) & 0xff] ^ tab[4][lo >> 24] ^
		    tab[3][hi & 0xff] ^ tab[2][(hi >> 8) & 0xff] ^
		    tab[1][(hi >> 16) & 0xff] ^ tab[0][hi >> 24];
	}
	while (n--)
		c = tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static uint32_t ldb_unmask(uint32_t m)
{
	uint32_t rot = m - LDB_MASK_DELTA;

	return (rot >> 17) | (rot << 15);
}

/* A varint64 from [*p, end); false if it runs off the end or is too long. */
static bool ldb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	int shift;

	for (shift = 0; shift <= 63 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return true;
		}
	}
	return false;
}

struct ldb_table {
	const uint32_t (*crc)[256];
	const char *name;
	const uint8_t *data;
	size_t len;
	struct ldbcheck_stats *st;
};

/* Checks the block at (off, size) and gives its contents (NULL if it is
 * compressed: its CRC is still checked, its entries cannot be read). */
static int ldb_block(struct ldb_table *t, uint64_t off, uint64_t size,
		     const uint8_t **contents)
{
	const uint8_t *b;
	uint32_t want, got;

	if (off > t->len || size > t->len - off ||
	    LDB_TRAILER_LEN > t->len - off - size)
		return dd_error_set(-EBADMSG, "table '%s': a block at %llu of "
				    "%llu bytes lies outside the file", t->name,
				    (unsigned long long)off,
				    (unsigned long long)size);
	b = t->data + off;
	want = ldb_unmask(dd_le32(b + size + 1));
	got = ldb_crc32c(t->crc, b, size + 1);
	if (want != got)
		return dd_error_set(-EBADMSG, "table '%s': checksum mismatch "
				    "in the block at offset %llu", t->name,
				    (unsigned long long)off);
	t->st->blocks++;
	*contents = b[size] == 0 ? b : NULL;
	return 0;
}

/*
 * Walks the entries of a block whose values are block handles (the index
 * and metaindex blocks) and checks each block they point at. Restart
 * points are not needed to walk: entries follow each other.
 */
static int ldb_handles(struct ldb_table *t, const uint8_t *blk, uint64_t size)
{
	const uint8_t *p = blk, *end, *v;
	uint64_t nrestarts, shared, unshared, vlen, off, bsize;
	const uint8_t *dummy;
	int rc;

	if (size < 4)
		goto bad;
	nrestarts = dd_le32(blk + size - 4);
	if (nrestarts > (size - 4) / 4)
		goto bad;
	end = blk + size - 4 - 4 * nrestarts;
	while (p < end) {
		if (!ldb_varint(&p, end, &shared) ||
		    !ldb_varint(&p, end, &unshared) ||
		    !ldb_varint(&p, end, &vlen) ||
		    unshared > (uint64_t)(end - p) ||
		    vlen > (uint64_t)(end - p) - unshared)
			goto bad;
		v = p + unshared;
		p = v + vlen;
		if (!ldb_varint(&v, p, &off) || !ldb_varint(&v, p, &bsize))
			goto bad;
		rc = ldb_block(t, off, bsize, &dummy);
		if (rc < 0)
			return rc;
	}
	return 0;
bad:
	return dd_error_set(-EBADMSG, "table '%s': a block list is "
			    "malformed", t->name);
}

static int ldb_table_check(struct ldb_table *t)
{
	const uint8_t *f, *fend, *meta, *index;
	uint64_t moff, msize, ioff, isize;
	int rc;

	if (t->len < LDB_FOOTER_LEN)
		return dd_error_set(-EBADMSG, "table '%s' is truncated (%zu "
				    "bytes)", t->name, t->len);
	f = t->data + t->len - LDB_FOOTER_LEN;
	fend = f + LDB_FOOTER_LEN - 8;
	if (dd_le64(fend) != LDB_MAGIC)
		return dd_error_set(-EBADMSG, "table '%s' is truncated or "
				    "damaged (no table footer)", t->name);
	if (!ldb_varint(&f, fend, &moff) || !ldb_varint(&f, fend, &msize) ||
	    !ldb_varint(&f, fend, &ioff) || !ldb_varint(&f, fend, &isize))
		return dd_error_set(-EBADMSG, "table '%s': its footer is "
				    "malformed", t->name);
	/* LevelDB pads the handles with zeros: the footer has no checksum,
	 * so this is how a flip there shows. */
	for (; f < fend; f++)
		if (*f)
			return dd_error_set(-EBADMSG, "table '%s': its footer "
					    "is damaged", t->name);
	rc = ldb_block(t, moff, msize, &meta);
	if (rc == 0)
		rc = ldb_block(t, ioff, isize, &index);
	if (rc == 0 && meta)
		rc = ldb_handles(t, meta, msize);
	if (rc == 0 && index)
		rc = ldb_handles(t, index, isize);
	return rc;
}

/* ---- the live tables, from the MANIFEST ---- */

/* A table the MANIFEST lists: number and size. */
struct ldb_live {
	uint64_t num;
	uint64_t size;
	bool dead;
};

struct ldb_manifest {
	const uint32_t (*crc)[256];
	const char *name;
	struct ldb_live *v;
	size_t n, a;
	struct dd_buf rec;      /* a record being assembled from fragments */
};

static bool ldb_slice(const uint8_t **p, const uint8_t *end)
{
	uint64_t len;

	if (!ldb_varint(p, end, &len) || len > (uint64_t)(end - *p))
		return false;
	*p += len;
	return true;
}

static int ldb_live_add(struct ldb_manifest *m, uint64_t num, uint64_t size)
{
	if (m->n == m->a) {
		size_t na = m->a ? m->a * 2 : 64;
		struct ldb_live *v = realloc(m->v, na * sizeof(*v));

		if (!v)
			return dd_error_set(-ENOMEM, "out of memory");
		m->v = v;
		m->a = na;
	}
	m->v[m->n].num = num;
	m->v[m->n].size = size;
	m->v[m->n].dead = false;
	m->n++;
	return 0;
}

static void ldb_live_del(struct ldb_manifest *m, uint64_t num)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->v[i].num == num)
			m->v[i].dead = true;
}

/* One VersionEdit (LevelDB db/version_edit.cc): tagged fields; only new
 * and deleted files matter here. */
static int ldb_edit(struct ldb_manifest *m, const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	uint64_t tag, level, num, size, skip;
	int rc;

	while (p < end) {
		if (!ldb_varint(&p, end, &tag))
			goto bad;
		switch (tag) {
		case 1:                              /* comparator */
			if (!ldb_slice(&p, end))
				goto bad;
			break;
		case 2: case 3: case 4: case 9:      /* numbers */
			if (!ldb_varint(&p, end, &skip))
				goto bad;
			break;
		case 5:                              /* compact pointer */
			if (!ldb_varint(&p, end, &level) ||
			    !ldb_slice(&p, end))
				goto bad;
			break;
		case 6:                              /* deleted file */
			if (!ldb_varint(&p, end, &level) ||
			    !ldb_varint(&p, end, &num))
				goto bad;
			ldb_live_del(m, num);
			break;
		case 7:                              /* new file */
			if (!ldb_varint(&p, end, &level) ||
			    !ldb_varint(&p, end, &num) ||
			    !ldb_varint(&p, end, &size) ||
			    !ldb_slice(&p, end) || !ldb_slice(&p, end))
				goto bad;
			if ((rc = ldb_live_add(m, num, size)) < 0)
				return rc;
			break;
		default:
			goto bad;
		}
	}
	return 0;
bad:
	return dd_error_set(-EBADMSG, "'%s' holds a malformed record",
			    m->name);
}

/*
 * The log format of LevelDB's doc/log_format.md: 32 KiB blocks of records,
 * each "u32 masked crc | u16 length | u8 type | data", type FULL(1) or a
 * FIRST(2), MIDDLE(3)..., LAST(4) run. A torn record at the end is where
 * the log ends (LevelDB reads it so too).
 */
static int ldb_manifest_parse(struct ldb_manifest *m, const uint8_t *d,
			      size_t len)
{
	size_t off = 0, left, n;
	uint8_t type;
	int rc;

	while (off < len) {
		left = 32768 - off % 32768;
		if (left < 7 || len - off < 7) {
			off += left;             /* block trailer padding */
			continue;
		}
		n = (size_t)d[off + 4] | (size_t)d[off + 5] << 8;
		type = d[off + 6];
		if (type == 0 && n == 0) {       /* preallocated zeros */
			off += left;
			continue;
		}
		if (7 + n > left || 7 + n > len - off)
			break;                   /* torn at the end */
		if (ldb_unmask(dd_le32(d + off)) !=
		    ldb_crc32c(m->crc, d + off + 6, n + 1))
			return dd_error_set(-EBADMSG, "'%s' is damaged "
					    "(checksum mismatch at offset %zu)",
					    m->name, off);
		if (type == 1 || type == 2)
			dd_buf_reset(&m->rec);
		if (type < 1 || type > 4)
			return dd_error_set(-EBADMSG, "'%s' is damaged (record "
					    "type %u)", m->name, type);
		if ((rc = dd_buf_append(&m->rec, d + off + 7, n)) < 0)
			return rc;
		if ((type == 1 || type == 4) &&
		    (rc = ldb_edit(m, m->rec.data, m->rec.len)) < 0)
			return rc;
		off += 7 + n;
	}
	return 0;
}

/* The live tables of the index in `dir`, as CURRENT's MANIFEST lists them.
 * 0 with m->n == 0 when there is no CURRENT (LevelDB makes a new index,
 * or refuses to open: not for this scan to say). */
static int ldb_manifest_load(struct ldb_manifest *m, const char *dir)
{
	char path[4400];
	uint8_t *cur = NULL, *data = NULL;
	size_t len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/CURRENT", dir);
	rc = dd_read_file(path, 4096, &cur, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc == -ENOMEM ? rc : dd_error_set(-EBADMSG, "cannot read "
							 "'%s'", path);
	while (len && (cur[len - 1] == '\n' || cur[len - 1] == '\r'))
		cur[--len] = '\0';
	if (len < 10 || strncmp((char *)cur, "MANIFEST-", 9) != 0 ||
	    strchr((char *)cur, '/')) {
		free(cur);
		return dd_error_set(-EBADMSG, "'%s' does not name a MANIFEST",
				    path);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, (char *)cur);
	m->name = strrchr(path, '/') + 1;
	rc = dd_read_file(path, LDB_TABLE_MAX, &data, &len);
	free(cur);
	if (rc < 0)
		return rc == -ENOMEM ? rc : dd_error_set(-EBADMSG, "cannot read "
							 "'%s'", path);
	rc = ldb_manifest_parse(m, data, len);
	m->name = NULL;      /* pointed into path */
	free(data);
	return rc;
}

/* Reads and checks live table `num` of `size` bytes (.ldb, or the older
 * .sst name). */
static int ldb_file(const uint32_t crc[8][256], const char *dir,
		    uint64_t num, uint64_t size, struct ldbcheck_stats *st)
{
	char path[4400], name[32];
	struct ldb_table t;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	snprintf(name, sizeof(name), "%06llu.ldb", (unsigned long long)num);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rc = dd_read_file(path, LDB_TABLE_MAX, &data, &len);
	if (rc == -ENOENT) {
		snprintf(name, sizeof(name), "%06llu.sst",
			 (unsigned long long)num);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		rc = dd_read_file(path, LDB_TABLE_MAX, &data, &len);
	}
	if (rc == -ENOENT)
		return dd_error_set(-EBADMSG, "table %06llu.ldb is missing",
				    (unsigned long long)num);
	if (rc < 0)
		return rc == -ENOMEM ? rc : dd_error_set(-EIO, "cannot read "
							 "index table '%s'",
							 path);
	if (len != size) {
		free(data);
		return dd_error_set(-EBADMSG, "table '%s' has %zu bytes, its "
				    "MANIFEST says %llu (truncated or "
				    "damaged)", name, len,
				    (unsigned long long)size);
	}
	t.crc = crc;
	t.name = name;
	t.data = data;
	t.len = len;
	t.st = st;
	rc = ldb_table_check(&t);
	free(data);
	if (rc == 0) {
		st->tables++;
		st->bytes += len;
	}
	return rc;
}

int ldbcheck_dir(const char *dir, struct ldbcheck_stats *st)
{
	struct ldbcheck_stats local;
	uint32_t crc[8][256];
	struct ldb_manifest m;
	struct stat sb;
	size_t i;
	int rc;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (stat(dir, &sb) < 0)
		return dd_error_set(errno == ENOENT ? -ENOENT : -EIO,
				    "cannot open '%s': %s", dir,
				    strerror(errno));
	ldb_crc_init(crc);
	memset(&m, 0, sizeof(m));
	m.crc = crc;
	dd_buf_init(&m.rec, 0);
	rc = ldb_manifest_load(&m, dir);
	for (i = 0; rc == 0 && i < m.n; i++)
		if (!m.v[i].dead)
			rc = ldb_file(crc, dir, m.v[i].num, m.v[i].size, st);
	dd_buf_release(&m.rec);
	free(m.v);
	return rc;
}
