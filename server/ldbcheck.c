/*
 * ldbcheck.c - see ldbcheck.h. The table format is LevelDB's
 * doc/table_format.md: blocks, each followed by a 5-byte trailer (u8
 * compression type, u32 masked CRC-32C of the block and that byte), and a
 * 48-byte footer (metaindex handle, index handle, padding, u64 magic).
 * A handle is two varint64: offset, size (without the trailer).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldbcheck.h"
#include "util.h"

#define LDB_FOOTER_LEN 48u
#define LDB_TRAILER_LEN 5u
#define LDB_MAGIC 0xdb4775248b80fb57ull
#define LDB_MASK_DELTA 0xa282ead8u
/* Tables are about 2 MiB (LevelDB's max_file_size); anything far larger
 * is not one of ours. */
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

static bool ldb_is_table(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && (strcmp(name + n - 4, ".ldb") == 0 ||
			 strcmp(name + n - 4, ".sst") == 0);
}

static int ldb_file(const uint32_t crc[8][256], const char *dir,
		    const char *name, struct ldbcheck_stats *st)
{
	char path[4400];
	struct ldb_table t;
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return dd_error_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	rc = dd_read_file(path, LDB_TABLE_MAX, &data, &len);
	if (rc == -ENOENT)
		return 0;         /* gone since the listing */
	if (rc < 0)
		return rc == -ENOMEM ? rc : dd_error_set(-EIO, "cannot read "
							 "index table '%s'",
							 path);
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
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	ldb_crc_init(crc);
	d = opendir(dir);
	if (!d)
		return dd_error_set(errno == ENOENT ? -ENOENT : -EIO,
				    "cannot open '%s': %s", dir,
				    strerror(errno));
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (ldb_is_table(de->d_name))
			rc = ldb_file(crc, dir, de->d_name, st);
	}
	closedir(d);
	return rc;
}
