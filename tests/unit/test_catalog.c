/*
 * test_catalog.c - the catalog: golden samples of both versions, path
 * rules, a streaming reader fed in small pieces, and rejection of every
 * malformed field, extension record, truncation and read error.
 */
#include <errno.h>
#include <stdlib.h>

#include "catalog.h"
#include "chunker.h"
#include "fixtures.h"
#include "golden.h"
#include "unit.h"

static struct fixture_chunk fx[FIXTURE_NCHUNKS];
static char fx_text[FIXTURE_TEXT_LEN + 1];
static uint8_t fx_bytes[256];
static struct dd_chunk_ref file_chunks[2];

#define NGOLDEN 4
static struct dd_entry golden_entries[NGOLDEN];
/* where each entry ends in the sample */
static size_t golden_ends[NGOLDEN];
#define E_DIR_LEN (84 + 8)
#define E_FILE_LEN (84 + 14 + 2 * 36)
#define E_EMPTY_LEN (84 + 14)
#define E_LINK_LEN (84 + 13 + 5)
#define GOLDEN_LEN (8 + E_DIR_LEN + E_FILE_LEN + E_EMPTY_LEN + E_LINK_LEN)

static void setup_golden(void)
{
	struct dd_entry *e = golden_entries;

	file_chunks[0].id = fx[0].id;
	file_chunks[0].plain_len = fx[0].plain_len;
	file_chunks[1].id = fx[1].id;
	file_chunks[1].plain_len = fx[1].plain_len;
	memset(e, 0, sizeof(golden_entries));

	e[0].type = DD_ENTRY_DIR;
	e[0].mode = 0755;
	e[0].uid = 1000;
	e[0].gid = 1000;
	e[0].mtime_sec = 1795279200;
	e[0].mtime_nsec = 123456789;
	e[0].ctime_sec = 1795279201;
	e[0].ctime_nsec = 500000000;
	e[0].ino = 1001;
	e[0].dev = 0x803;
	e[0].path = "home/ann";
	e[0].path_len = 8;

	e[1] = e[0];
	e[1].type = DD_ENTRY_FILE;
	e[1].mode = 04644;
	e[1].ino = 1002;
	e[1].size = 13 + FIXTURE_TEXT_LEN;
	e[1].path = "home/ann/a.txt";
	e[1].path_len = 14;
	e[1].nchunks = 2;
	e[1].chunks = file_chunks;

	e[2] = e[0];
	e[2].type = DD_ENTRY_FILE;
	e[2].mode = 0600;
	e[2].uid = 0;
	e[2].gid = 4294967295u;
	e[2].ino = 1003;
	e[2].path = "home/ann/empty";
	e[2].path_len = 14;

	e[3] = e[0];
	e[3].type = DD_ENTRY_SYMLINK;
	e[3].mode = 0777;
	e[3].mtime_sec = -1;           /* before the epoch */
	e[3].mtime_nsec = 999999999;
	e[3].ino = 0xffffffffffffffffull;
	e[3].path = "home/ann/link";
	e[3].path_len = 13;
	e[3].link = "a.txt";
	e[3].link_len = 5;

	golden_ends[0] = 8 + E_DIR_LEN;
	golden_ends[1] = golden_ends[0] + E_FILE_LEN;
	golden_ends[2] = golden_ends[1] + E_EMPTY_LEN;
	golden_ends[3] = golden_ends[2] + E_LINK_LEN;
}

/* The version 1 sample: its entries are valid in version 2 too, so the
 * writer encodes them and the header is patched to say 1. */
static void build_golden(struct dd_buf *b)
{
	int i;

	CHECK_EQ(dd_catalog_begin(b), 0);
	dd_put_le32(b->data + b->len - 4, 1);
	for (i = 0; i < NGOLDEN; i++)
		CHECK_EQ(dd_catalog_add(b, &golden_entries[i]), 0);
}

static bool entry_same(const struct dd_entry *a, const struct dd_entry *b)
{
	uint64_t i;

	if (a->type != b->type || a->mode != b->mode || a->uid != b->uid ||
	    a->gid != b->gid || a->mtime_sec != b->mtime_sec ||
	    a->mtime_nsec != b->mtime_nsec || a->ctime_sec != b->ctime_sec ||
	    a->ctime_nsec != b->ctime_nsec || a->ino != b->ino ||
	    a->dev != b->dev || a->size != b->size ||
	    a->path_len != b->path_len || a->link_len != b->link_len ||
	    a->ext_len != b->ext_len || a->nchunks != b->nchunks)
		return false;
	if (memcmp(a->path, b->path, a->path_len) != 0 ||
	    (a->link_len && memcmp(a->link, b->link, a->link_len) != 0) ||
	    (a->ext_len && memcmp(a->ext, b->ext, a->ext_len) != 0))
		return false;
	for (i = 0; i < a->nchunks; i++)
		if (!dd_id_eq(&a->chunks[i].id, &b->chunks[i].id) ||
		    a->chunks[i].plain_len != b->chunks[i].plain_len)
			return false;
	return true;
}

/* A read function that hands out at most `step` bytes a call and can be
 * told to fail. */
struct slow {
	struct dd_catalog_mem mem;
	size_t step;
	size_t fail_after;      /* bytes; 0 = never */
	size_t given;
	bool overrun;           /* claim one byte more than asked */
};

static ssize_t slow_read(void *payload, void *buf, size_t len)
{
	struct slow *s = payload;

	if (s->overrun)
		return (ssize_t)len + 1;
	if (s->fail_after && s->given >= s->fail_after)
		return -EIO;
	if (len > s->step)
		len = s->step;
	len = (size_t)dd_catalog_mem_read(&s->mem, buf, len);
	s->given += len;
	return (ssize_t)len;
}

/* Reads a whole catalog; returns entries read or the error. Optionally
 * compares with `want`. */
static int read_all(const uint8_t *p, size_t len, size_t step,
		    const struct dd_entry *want, int nwant)
{
	struct slow s = { { p, len }, step, 0, 0, false };
	struct dd_catalog_reader *r = NULL;
	struct dd_entry e;
	int rc, n = 0;

	rc = dd_catalog_reader_new(&r, slow_read, &s);
	if (rc < 0)
		return rc;
	while ((rc = dd_catalog_next(r, &e)) == 1) {
		if (want && (n >= nwant || !entry_same(&e, &want[n]))) {
			rc = -1000 - n;
			break;
		}
		n++;
	}
	dd_catalog_reader_free(r);
	return rc < 0 ? rc : n;
}

/* Encodes an entry without any check, as a hostile writer would. */
static void raw_entry(struct dd_buf *b, const struct dd_entry *e)
{
	uint8_t fx84[84] = { 0 };

	fx84[0] = e->type;
	dd_put_le32(fx84 + 4, e->mode);
	dd_put_le32(fx84 + 8, e->uid);
	dd_put_le32(fx84 + 12, e->gid);
	dd_put_le64(fx84 + 16, (uint64_t)e->mtime_sec);
	dd_put_le32(fx84 + 24, e->mtime_nsec);
	dd_put_le64(fx84 + 28, (uint64_t)e->ctime_sec);
	dd_put_le32(fx84 + 36, e->ctime_nsec);
	dd_put_le64(fx84 + 40, e->ino);
	dd_put_le64(fx84 + 48, e->dev);
	dd_put_le64(fx84 + 56, e->size);
	dd_put_le32(fx84 + 64, e->path_len);
	dd_put_le32(fx84 + 68, e->link_len);
	dd_put_le32(fx84 + 72, e->ext_len);
	dd_put_le64(fx84 + 76, e->nchunks);
	CHECK_EQ(dd_buf_append(b, fx84, sizeof(fx84)), 0);
	CHECK_EQ(dd_buf_append(b, e->path, e->path_len), 0);
	CHECK_EQ(dd_buf_append(b, e->link, e->link_len), 0);
	CHECK_EQ(dd_buf_append(b, e->ext, e->ext_len), 0);
	for (uint64_t i = 0; i < e->nchunks; i++) {
		CHECK_EQ(dd_buf_append(b, e->chunks[i].id.b, DD_ID_LEN), 0);
		CHECK_EQ(dd_buf_append_le32(b, e->chunks[i].plain_len), 0);
	}
}

/* ---- version 2 ---- */

#define NGOLDEN2 8
static struct dd_entry g2[NGOLDEN2];
static struct dd_buf g2ext[NGOLDEN2];

static void acl(struct dd_buf *b, uint8_t kind, uint8_t tag, uint8_t perm,
		uint32_t id, const char *name)
{
	struct dd_acl_entry a = { kind, tag, perm, id, name,
				  name ? strlen(name) : 0 };

	CHECK_EQ(dd_ext_put_acl(b, &a), 0);
}

static void setup_golden2(void)
{
	struct dd_buf *x = g2ext;
	int i;

	for (i = 0; i < NGOLDEN2; i++) {
		dd_buf_init(&x[i], 0);
		g2[i] = golden_entries[0];
	}
	/* a directory with owner names, an xattr and a default ACL */
	CHECK_EQ(dd_ext_put_name(&x[0], DD_EXT_UNAME, "ann", 3), 0);
	CHECK_EQ(dd_ext_put_name(&x[0], DD_EXT_GNAME, "staff", 5), 0);
	CHECK_EQ(dd_ext_put_xattr(&x[0], "user.dir", 8, "d", 1), 0);
	acl(&x[0], DD_ACL_ACCESS, DD_ACL_USER_OBJ, 7, 0, NULL);
	acl(&x[0], DD_ACL_ACCESS, DD_ACL_GROUP_OBJ, 5, 0, NULL);
	acl(&x[0], DD_ACL_ACCESS, DD_ACL_OTHER, 5, 0, NULL);
	acl(&x[0], DD_ACL_DEFAULT, DD_ACL_USER_OBJ, 7, 0, NULL);
	acl(&x[0], DD_ACL_DEFAULT, DD_ACL_USER, 5, 1001, "bob");
	acl(&x[0], DD_ACL_DEFAULT, DD_ACL_GROUP_OBJ, 5, 0, NULL);
	acl(&x[0], DD_ACL_DEFAULT, DD_ACL_MASK, 5, 0, NULL);
	acl(&x[0], DD_ACL_DEFAULT, DD_ACL_OTHER, 0, 0, NULL);
	/* a setuid file with two xattrs (one empty) and an access ACL */
	g2[1] = golden_entries[1];
	g2[1].mode = 04755;
	CHECK_EQ(dd_ext_put_name(&x[1], DD_EXT_UNAME, "ann", 3), 0);
	CHECK_EQ(dd_ext_put_xattr(&x[1], "user.b", 6, "hello", 5), 0);
	CHECK_EQ(dd_ext_put_xattr(&x[1], "user.c", 6, "", 0), 0);
	acl(&x[1], DD_ACL_ACCESS, DD_ACL_USER_OBJ, 7, 0, NULL);
	acl(&x[1], DD_ACL_ACCESS, DD_ACL_USER, 6, 1001, "bob");
	acl(&x[1], DD_ACL_ACCESS, DD_ACL_GROUP, 4, 50, NULL);
	/* a hard link to it */
	g2[2] = golden_entries[1];
	g2[2].type = DD_ENTRY_HARDLINK;
	g2[2].size = 0;
	g2[2].nchunks = 0;
	g2[2].chunks = NULL;
	g2[2].path = "home/ann/b.txt";
	g2[2].path_len = 14;
	g2[2].link = "home/ann/a.txt";
	g2[2].link_len = 14;
	/* fifo, character and block device */
	g2[3].type = DD_ENTRY_FIFO;
	g2[3].mode = 0640;
	g2[3].path = "home/ann/fifo";
	g2[3].path_len = 13;
	g2[4] = golden_entries[3];
	g2[5].type = DD_ENTRY_CHR;
	g2[5].mode = 0666;
	g2[5].path = "home/ann/null";
	g2[5].path_len = 13;
	CHECK_EQ(dd_ext_put_name(&x[5], DD_EXT_UNAME, "root", 4), 0);
	CHECK_EQ(dd_ext_put_name(&x[5], DD_EXT_GNAME, "root", 4), 0);
	CHECK_EQ(dd_ext_put_rdev(&x[5], 1, 3), 0);
	g2[6].type = DD_ENTRY_BLK;
	g2[6].mode = 0660;
	g2[6].path = "home/ann/sda";
	g2[6].path_len = 12;
	CHECK_EQ(dd_ext_put_rdev(&x[6], 259, 0x12345), 0);
	/* a name with a newline and bytes that are not UTF-8, sticky */
	g2[7].mode = 01777;
	g2[7].path = "home/ann/x\n\xff\xfe";
	g2[7].path_len = 13;
	for (i = 0; i < NGOLDEN2; i++) {
		g2[i].ext = x[i].len ? x[i].data : NULL;
		g2[i].ext_len = (uint32_t)x[i].len;
	}
}

static size_t mkrec(uint8_t *out, uint8_t tag, const void *v, size_t n);

/* The version 2 samples: their entries are valid in version 3 too, so
 * the writer encodes them and the header is patched to say 2. */
static void begin_v2(struct dd_buf *b)
{
	CHECK_EQ(dd_catalog_begin(b), 0);
	dd_put_le32(b->data + b->len - 4, 2);
}

static void build_golden2(struct dd_buf *b)
{
	begin_v2(b);
	for (int i = 0; i < NGOLDEN2; i++)
		CHECK_EQ(dd_catalog_add(b, &g2[i]), 0);
}

static void test_golden2(void)
{
	struct dd_buf b;
	uint8_t *g = NULL;
	size_t glen = 0;
	struct dd_catalog_reader *r = NULL;
	struct dd_catalog_mem mem;
	struct dd_entry e;
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	struct dd_acl_entry a;
	const char *name;
	const uint8_t *val;
	size_t nlen, vlen;
	uint32_t maj, min;

	dd_buf_init(&b, 0);
	build_golden2(&b);
	CHECK(golden_same("catalog-v2.bin", b.data, b.len));
	dd_buf_release(&b);
	CHECK_EQ(golden_read("catalog-v2.bin", &g, &glen), 0);
	if (!g)
		return;
	CHECK(memcmp(g, "DDCT\2\0\0\0", 8) == 0);
	CHECK_EQ(read_all(g, glen, SIZE_MAX, g2, NGOLDEN2), NGOLDEN2);
	CHECK_EQ(read_all(g, glen, 1, g2, NGOLDEN2), NGOLDEN2);
	CHECK_EQ(read_all(g, glen, 11, g2, NGOLDEN2), NGOLDEN2);

	mem.p = g;
	mem.left = glen;
	CHECK_EQ(dd_catalog_reader_new(&r, dd_catalog_mem_read, &mem), 0);
	CHECK_EQ(dd_catalog_version(r), 0);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(dd_catalog_version(r), 2);
	dd_ext_iter_init(&it, &e);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK(rec.tag == DD_EXT_UNAME && rec.len == 3 &&
	      memcmp(rec.v, "ann", 3) == 0);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK(rec.tag == DD_EXT_GNAME && rec.len == 5);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_get_xattr(&rec, &name, &nlen, &val, &vlen), 0);
	CHECK(nlen == 8 && memcmp(name, "user.dir", 8) == 0 && vlen == 1 &&
	      val[0] == 'd');
	for (int i = 0; i < 5; i++)
		CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_get_acl(&rec, &a), 0);
	CHECK(a.kind == DD_ACL_DEFAULT && a.tag == DD_ACL_USER &&
	      a.perm == 5 && a.id == 1001 && a.name_len == 3 &&
	      memcmp(a.name, "bob", 3) == 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_next(&it, &rec), 0);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.mode, 04755);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_HARDLINK);
	CHECK(e.link_len == 14 && memcmp(e.link, "home/ann/a.txt", 14) == 0);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_FIFO);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_SYMLINK);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_CHR);
	dd_ext_iter_init(&it, &e);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_get_rdev(&rec, &maj, &min), 0);
	CHECK(maj == 1 && min == 3);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_BLK);
	dd_ext_iter_init(&it, &e);
	CHECK_EQ(dd_ext_next(&it, &rec), 1);
	CHECK_EQ(dd_ext_get_rdev(&rec, &maj, &min), 0);
	CHECK(maj == 259 && min == 0x12345);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK(e.path_len == 13 && memcmp(e.path, "home/ann/x\n\xff\xfe", 13) == 0);
	CHECK_EQ(e.mode, 01777);
	CHECK_EQ(dd_catalog_next(r, &e), 0);
	dd_catalog_reader_free(r);

	/* every cut that is not an entry boundary is refused */
	for (size_t n = 9, bad = 0; n < glen; n++) {
		int rc = read_all(g, n, 17, NULL, 0);

		if (rc != -EBADMSG && (rc < 0 || rc > NGOLDEN2))
			bad++;
		if (n == glen - 1)
			CHECK_EQ(bad, 0);
	}
	/* checked-in bad samples: a hard link to a path that comes later,
	 * and xattrs out of order */
	{
		struct dd_entry h = g2[2], f = g2[1];
		uint8_t x[40];
		size_t n;
		uint8_t *bad = NULL;
		size_t blen = 0;

		dd_buf_init(&b, 0);
		begin_v2(&b);
		h.link = "home/ann/c.txt";
		raw_entry(&b, &h);
		CHECK(golden_same("catalog-bad-v2-hardlink.bin", b.data, b.len));
		dd_buf_reset(&b);
		begin_v2(&b);
		n = mkrec(x, DD_EXT_XATTR, "user.ba", 8);
		n += mkrec(x + n, DD_EXT_XATTR, "user.ab", 8);
		f.ext = x;
		f.ext_len = (uint32_t)n;
		raw_entry(&b, &f);
		CHECK(golden_same("catalog-bad-v2-xattr-order.bin", b.data, b.len));
		dd_buf_release(&b);
		CHECK_EQ(golden_read("catalog-bad-v2-hardlink.bin", &bad, &blen), 0);
		CHECK_EQ(read_all(bad, blen, SIZE_MAX, NULL, 0), -EBADMSG);
		CHECK(strstr(dd_error_last(), "does not come before") != NULL);
		free(bad);
		bad = NULL;
		CHECK_EQ(golden_read("catalog-bad-v2-xattr-order.bin", &bad, &blen), 0);
		CHECK_EQ(read_all(bad, blen, SIZE_MAX, NULL, 0), -EBADMSG);
		CHECK(strstr(dd_error_last(), "out of order") != NULL);
		free(bad);
	}
	/* a version 1 reader's view: the new types are unknown */
	dd_put_le32(g + 4, 1);
	CHECK_EQ(read_all(g, glen, SIZE_MAX, NULL, 0), -EBADMSG);
	free(g);
}

/* One entry `e` with the raw extension bytes `ext`, as version 2: the
 * reader's answer (entries read or an error). */
static int read_one_v2(const struct dd_entry *e, const void *ext, size_t n)
{
	struct dd_entry c = *e;
	struct dd_buf b;
	int rc;

	c.ext = ext;
	c.ext_len = (uint32_t)n;
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	raw_entry(&b, &c);
	rc = read_all(b.data, b.len, 3, NULL, 0);
	if (rc >= 0 && n) {
		/* the writer agrees with the reader */
		dd_buf_reset(&b);
		CHECK_EQ(dd_catalog_add(&b, &c), 0);
	} else if (rc < 0) {
		CHECK_EQ(dd_catalog_add(&b, &c), -EINVAL);
	}
	dd_buf_release(&b);
	return rc;
}

/* One record: tag, len, value. */
static size_t mkrec(uint8_t *out, uint8_t tag, const void *v, size_t n)
{
	out[0] = tag;
	dd_put_le32(out + 1, (uint32_t)n);
	memcpy(out + 5, v, n);
	return 5 + n;
}

static void test_v2_fields(void)
{
	struct dd_entry dir = g2[0], file = g2[1], hl = g2[2], chr = g2[5];
	struct dd_entry fifo = g2[3];
	uint8_t x[600], v[300];
	size_t n;

	dir.ext = file.ext = chr.ext = NULL;
	dir.ext_len = file.ext_len = chr.ext_len = 0;
	CHECK_EQ(read_one_v2(&dir, NULL, 0), 1);
	/* types */
	dir.type = 8;
	CHECK_EQ(read_one_v2(&dir, NULL, 0), -EBADMSG);
	dir.type = DD_ENTRY_DIR;
	/* records: unknown tag, truncated header, length beyond the area */
	CHECK_EQ(read_one_v2(&dir, "\x09\0\0\0\0", 5), -EBADMSG);
	CHECK_EQ(read_one_v2(&dir, "\x01\1\0\0", 4), -EBADMSG);
	CHECK_EQ(read_one_v2(&dir, "\x01\2\0\0\0a", 6), -EBADMSG);
	CHECK_EQ(read_one_v2(&dir, "\x01\1\0\0\0a", 6), 1);
	/* names: empty, NUL, 256 bytes, repeated, out of order */
	CHECK_EQ(read_one_v2(&dir, "\x01\0\0\0\0", 5), -EBADMSG);
	CHECK_EQ(read_one_v2(&dir, "\x01\2\0\0\0a\0", 7), -EBADMSG);
	memset(v, 'n', sizeof(v));
	n = mkrec(x, DD_EXT_UNAME, v, 255);
	CHECK_EQ(read_one_v2(&dir, x, n), 1);
	n = mkrec(x, DD_EXT_UNAME, v, 256);
	CHECK_EQ(read_one_v2(&dir, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_UNAME, "a", 1);
	n += mkrec(x + n, DD_EXT_UNAME, "b", 1);
	CHECK_EQ(read_one_v2(&dir, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_GNAME, "a", 1);
	n += mkrec(x + n, DD_EXT_UNAME, "b", 1);
	CHECK_EQ(read_one_v2(&dir, x, n), -EBADMSG);
	/* rdev: only on devices, exactly 8 bytes, required there */
	n = mkrec(x, DD_EXT_RDEV, "\1\0\0\0\3\0\0\0", 8);
	CHECK_EQ(read_one_v2(&chr, x, n), 1);
	CHECK_EQ(read_one_v2(&chr, NULL, 0), -EBADMSG);
	CHECK_EQ(read_one_v2(&dir, x, n), -EBADMSG);
	CHECK_EQ(read_one_v2(&fifo, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_RDEV, "\1\0\0\0\3\0\0", 7);
	CHECK_EQ(read_one_v2(&chr, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_RDEV, "\1\0\0\0\3\0\0\0", 8);
	n += mkrec(x + n, DD_EXT_RDEV, "\1\0\0\0\3\0\0\0", 8);
	CHECK_EQ(read_one_v2(&chr, x, n), -EBADMSG);
	/* xattrs: name length 0, beyond the record, NUL in the name, order,
	 * duplicates, ACLs disguised as xattrs, value over 64 KiB */
	n = mkrec(x, DD_EXT_XATTR, "\6user.av", 8);
	CHECK_EQ(read_one_v2(&file, x, n), 1);
	n = mkrec(x, DD_EXT_XATTR, "\0v", 2);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_XATTR, "\7user.a", 7);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_XATTR, "\6us\0r.av", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_XATTR, "\6user.b", 7);
	n += mkrec(x + n, DD_EXT_XATTR, "\6user.a", 7);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_XATTR, "\6user.a", 7);
	n += mkrec(x + n, DD_EXT_XATTR, "\6user.a", 7);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_XATTR, "\6user.a", 7);
	n += mkrec(x + n, DD_EXT_XATTR, "\7user.ab", 8);
	CHECK_EQ(read_one_v2(&file, x, n), 1);
	n = mkrec(x, DD_EXT_XATTR, "\x17system.posix_acl_access", 24);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	{
		size_t big = 1 + 1 + DD_EXT_XATTR_VALUE_MAX + 1;
		uint8_t *bx = calloc(1, big + 5);

		bx[5] = 1;
		bx[6] = 'u';
		bx[0] = DD_EXT_XATTR;
		dd_put_le32(bx + 1, (uint32_t)big);
		CHECK_EQ(read_one_v2(&file, bx, big + 5), -EBADMSG);
		dd_put_le32(bx + 1, (uint32_t)big - 1);
		CHECK_EQ(read_one_v2(&file, bx, big + 4), 1);
		free(bx);
	}
	/* ACL entries: kind, tag, perm, reserved byte, id or name on an
	 * unnamed tag, NUL in a name, default ACL on a file */
	n = mkrec(x, DD_EXT_ACL, "\1\2\6\0\x10\0\0\0bob", 11);
	CHECK_EQ(read_one_v2(&file, x, n), 1);
	n = mkrec(x, DD_EXT_ACL, "\3\2\6\0\x10\0\0\0", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\1\7\6\0\x10\0\0\0", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\1\2\x08\0\x10\0\0\0", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\1\2\6\1\x10\0\0\0", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\1\1\6\0\x10\0\0\0", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\1\1\6\0\0\0\0\0bob", 11);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\1\2\6\0\x10\0\0\0b\0b", 11);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	n = mkrec(x, DD_EXT_ACL, "\2\1\6\0\0\0\0\0", 8);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	CHECK_EQ(read_one_v2(&dir, x, n), 1);
	n = mkrec(x, DD_EXT_ACL, "\1\2\6\0\x10\0\0", 7);
	CHECK_EQ(read_one_v2(&file, x, n), -EBADMSG);
	/* hard links: a valid, earlier path; no records of its own */
	CHECK_EQ(read_one_v2(&hl, NULL, 0), 1);
	n = mkrec(x, DD_EXT_UNAME, "a", 1);
	CHECK_EQ(read_one_v2(&hl, x, n), -EBADMSG);
	hl.link = "home/ann/c.txt";            /* sorts after the link */
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	hl.link = "home/ann/b.txt";            /* itself */
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	hl.link = "../../etc/pas";
	hl.link_len = 13;
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	hl.link = "/etc/passwd";
	hl.link_len = 11;
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	hl.link = "home/a\0n";
	hl.link_len = 8;
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	hl.link_len = 0;
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	hl = g2[2];
	hl.size = 1;
	CHECK_EQ(read_one_v2(&hl, NULL, 0), -EBADMSG);
	/* a fifo or device has no link and no data */
	fifo.link = "x";
	fifo.link_len = 1;
	CHECK_EQ(read_one_v2(&fifo, NULL, 0), -EBADMSG);
	/* encoders refuse what the reader would */
	{
		struct dd_buf b;
		struct dd_acl_entry a = { DD_ACL_ACCESS, DD_ACL_OTHER, 4, 7,
					  NULL, 0 };

		dd_buf_init(&b, 0);
		CHECK_EQ(dd_ext_put_name(&b, DD_EXT_UNAME, "", 0), -EINVAL);
		CHECK_EQ(dd_ext_put_name(&b, DD_EXT_RDEV, "a", 1), -EINVAL);
		CHECK_EQ(dd_ext_put_xattr(&b, "a\0b", 3, "", 0), -EINVAL);
		CHECK_EQ(dd_ext_put_acl(&b, &a), -EINVAL);
		CHECK_EQ(b.len, 0);
		dd_buf_release(&b);
	}
}

static void test_golden(void)
{
	struct dd_buf b;
	uint8_t *g = NULL;
	size_t glen = 0;
	struct dd_catalog_reader *r = NULL;
	struct dd_catalog_mem mem;
	struct dd_entry e;

	dd_buf_init(&b, 0);
	build_golden(&b);
	CHECK_EQ(b.len, GOLDEN_LEN);
	CHECK(golden_same("catalog-v1.bin", b.data, b.len));
	dd_buf_release(&b);

	CHECK_EQ(golden_read("catalog-v1.bin", &g, &glen), 0);
	CHECK_EQ(glen, GOLDEN_LEN);
	if (!g)
		return;
	CHECK(memcmp(g, "DDCT\1\0\0\0", 8) == 0);
	/* in one piece, and in pieces of 1, 7 and 100 bytes */
	CHECK_EQ(read_all(g, glen, SIZE_MAX, golden_entries, NGOLDEN), NGOLDEN);
	CHECK_EQ(read_all(g, glen, 1, golden_entries, NGOLDEN), NGOLDEN);
	CHECK_EQ(read_all(g, glen, 7, golden_entries, NGOLDEN), NGOLDEN);
	CHECK_EQ(read_all(g, glen, 100, golden_entries, NGOLDEN), NGOLDEN);

	/* the exact decoded values, spelled out */
	mem.p = g;
	mem.left = glen;
	CHECK_EQ(dd_catalog_reader_new(&r, dd_catalog_mem_read, &mem), 0);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_DIR);
	CHECK(e.path_len == 8 && memcmp(e.path, "home/ann", 8) == 0);
	CHECK_EQ(e.mode, 0755);
	CHECK_EQ(e.mtime_sec, 1795279200);
	CHECK_EQ(e.mtime_nsec, 123456789);
	CHECK_EQ(e.dev, 0x803);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_FILE);
	CHECK(e.path_len == 14 && memcmp(e.path, "home/ann/a.txt", 14) == 0);
	CHECK_EQ(e.mode, 04644);
	CHECK_EQ(e.size, 605);
	CHECK_EQ(e.nchunks, 2);
	CHECK(dd_id_eq(&e.chunks[0].id, &fx[0].id));
	CHECK_EQ(e.chunks[0].plain_len, 13);
	CHECK(dd_id_eq(&e.chunks[1].id, &fx[1].id));
	CHECK_EQ(e.chunks[1].plain_len, 592);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK(e.path_len == 14 && memcmp(e.path, "home/ann/empty", 14) == 0);
	CHECK_EQ(e.size, 0);
	CHECK_EQ(e.nchunks, 0);
	CHECK_EQ(e.gid, 4294967295u);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(e.type, DD_ENTRY_SYMLINK);
	CHECK(e.path_len == 13 && memcmp(e.path, "home/ann/link", 13) == 0);
	CHECK(e.link_len == 5 && memcmp(e.link, "a.txt", 5) == 0);
	CHECK_EQ(e.mtime_sec, -1);
	CHECK(e.ino == 0xffffffffffffffffull);
	CHECK_EQ(dd_catalog_next(r, &e), 0);
	CHECK_EQ(dd_catalog_next(r, &e), 0);
	dd_catalog_reader_free(r);
	dd_catalog_reader_free(NULL);
	free(g);
}

static void test_golden_bad(void)
{
	static const char *const bad[] = {
		"catalog-bad-dotdot.bin", "catalog-bad-sum.bin",
		"catalog-bad-truncated.bin", "catalog-bad-order.bin",
		"catalog-bad-repeat.bin",
	};
	struct dd_buf b;
	struct dd_entry e = golden_entries[1];
	uint8_t *g = NULL;
	size_t glen = 0, i;

	/* a file at "home/xx/etc", then "xx" patched to ".." */
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	dd_put_le32(b.data + 4, 1);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[0]), 0);
	e.path = "home/xx/etc";
	e.path_len = 11;
	CHECK_EQ(dd_catalog_add(&b, &e), 0);
	memcpy(b.data + 8 + E_DIR_LEN + 84 + 5, "..", 2);
	CHECK(golden_same("catalog-bad-dotdot.bin", b.data, b.len));
	dd_buf_release(&b);

	/* the golden file entry's size one byte larger than its chunks */
	build_golden(&b);
	dd_put_le64(b.data + 8 + E_DIR_LEN + 56, 606);
	CHECK(golden_same("catalog-bad-sum.bin", b.data, b.len));
	dd_buf_reset(&b);

	/* the stream ends inside the symlink entry */
	build_golden(&b);
	CHECK(golden_same("catalog-bad-truncated.bin", b.data, b.len - 1));
	dd_buf_reset(&b);

	/* the directory, then "empty" before "a.txt": out of order */
	CHECK_EQ(dd_catalog_begin(&b), 0);
	dd_put_le32(b.data + 4, 1);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[0]), 0);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[2]), 0);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[1]), 0);
	CHECK(golden_same("catalog-bad-order.bin", b.data, b.len));
	dd_buf_reset(&b);

	/* the directory, then the same file twice */
	CHECK_EQ(dd_catalog_begin(&b), 0);
	dd_put_le32(b.data + 4, 1);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[0]), 0);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[1]), 0);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[1]), 0);
	CHECK(golden_same("catalog-bad-repeat.bin", b.data, b.len));
	dd_buf_release(&b);

	for (i = 0; i < DD_ARRAY_SIZE(bad); i++) {
		CHECK_EQ(golden_read(bad[i], &g, &glen), 0);
		CHECK_EQ(read_all(g, glen, SIZE_MAX, NULL, 0), -EBADMSG);
		free(g);
		g = NULL;
	}
	CHECK_EQ(golden_read("catalog-bad-dotdot.bin", &g, &glen), 0);
	CHECK_EQ(read_all(g, glen, SIZE_MAX, NULL, 0), -EBADMSG);
	CHECK(strstr(dd_error_last(), "'..'") != NULL);
	free(g);
	g = NULL;

	/* the reader names the entry and what is wrong with it, and hands
	 * out the entries before it */
	CHECK_EQ(golden_read("catalog-bad-order.bin", &g, &glen), 0);
	CHECK_EQ(read_all(g, glen, 7, NULL, 0), -EBADMSG);
	CHECK(strstr(dd_error_last(), "catalog entry 2: 'home/ann/a.txt' is "
		     "out of order") != NULL);
	free(g);
	g = NULL;
	CHECK_EQ(golden_read("catalog-bad-repeat.bin", &g, &glen), 0);
	CHECK_EQ(read_all(g, glen, SIZE_MAX, NULL, 0), -EBADMSG);
	CHECK(strstr(dd_error_last(), "catalog entry 2: 'home/ann/a.txt' "
		     "repeats the previous entry's path") != NULL);
	CHECK_EQ(read_all(g, glen - E_FILE_LEN, SIZE_MAX, golden_entries, 2),
		 2);
	free(g);
}

static void test_paths(void)
{
	static const char *const good[] = {
		"a", "home/ann/src", "..a", "a..", ".hidden", "a/.b/c..",
		"with space/ and\ttab", "\xff\xfe",
	};
	static const char *const badp[] = {
		"/abs", "a//b", "a/", "./a", "a/.", "a/./b", "..", "a/../b",
		"a/..", ".", "/",
	};
	char *big;
	size_t i;

	for (i = 0; i < DD_ARRAY_SIZE(good); i++)
		CHECK_EQ(dd_catalog_path_check(good[i], strlen(good[i])), 0);
	for (i = 0; i < DD_ARRAY_SIZE(badp); i++)
		CHECK_EQ(dd_catalog_path_check(badp[i], strlen(badp[i])),
			 -EINVAL);
	CHECK_EQ(dd_catalog_path_check("", 0), -EINVAL);
	CHECK_EQ(dd_catalog_path_check("a\0b", 3), -EINVAL);
	big = malloc(DD_CATALOG_PATH_MAX + 1);
	memset(big, 'x', DD_CATALOG_PATH_MAX + 1);
	CHECK_EQ(dd_catalog_path_check(big, DD_CATALOG_PATH_MAX), 0);
	CHECK_EQ(dd_catalog_path_check(big, DD_CATALOG_PATH_MAX + 1), -EINVAL);
	free(big);
}

static void test_truncations(void)
{
	struct dd_buf b;
	size_t n, bad = 0;

	dd_buf_init(&b, 0);
	build_golden(&b);
	CHECK_EQ(read_all(b.data, 0, SIZE_MAX, NULL, 0), -EBADMSG);
	CHECK_EQ(read_all(b.data, 8, SIZE_MAX, NULL, 0), 0);
	for (n = 0; n < b.len; n++) {
		uint8_t *p = malloc(n ? n : 1);
		int rc, k, want = -EBADMSG;

		memcpy(p, b.data, n);
		/* a cut at an entry boundary is a shorter, valid catalog */
		if (n == 8)
			want = 0;
		for (k = 0; k < NGOLDEN; k++)
			if (n == golden_ends[k])
				want = k + 1;
		rc = read_all(p, n, 13, golden_entries, NGOLDEN);
		if (rc != want) {
			fprintf(stderr, "cut at %zu: %d, want %d\n", n, rc, want);
			bad++;
		}
		free(p);
	}
	CHECK_EQ(bad, 0);
	dd_buf_release(&b);
}

/* Patches a copy of the golden catalog and expects rejection. */
static void expect_bad(size_t off, const void *v, size_t n)
{
	struct dd_buf b;
	int rc;

	dd_buf_init(&b, 0);
	build_golden(&b);
	memcpy(b.data + off, v, n);
	rc = read_all(b.data, b.len, SIZE_MAX, NULL, 0);
	if (rc != -EBADMSG)
		fprintf(stderr, "patch at %zu accepted (%d)\n", off, rc);
	CHECK_EQ(rc, -EBADMSG);
	dd_buf_release(&b);
}

static void expect_bad32(size_t off, uint32_t v)
{
	uint8_t le[4];

	dd_put_le32(le, v);
	expect_bad(off, le, 4);
}

static void expect_bad64(size_t off, uint64_t v)
{
	uint8_t le[8];

	dd_put_le64(le, v);
	expect_bad(off, le, 8);
}

static const uint8_t zero_id[DD_ID_LEN];

static void test_fields(void)
{
	size_t dir = 8, file = dir + E_DIR_LEN, link = golden_ends[2];
	size_t fpath = file + 84, chunk1 = file + 84 + 14;

	expect_bad(0, "DDCX", 4);
	expect_bad32(4, 0);                              /* version */
	expect_bad32(4, DD_CATALOG_VERSION + 1);
	expect_bad(dir, "\0", 1);                        /* type 0 */
	expect_bad(dir, "\4", 1);                        /* type 4 */
	expect_bad(dir + 1, "\1", 1);                    /* reserved */
	expect_bad(dir + 3, "\1", 1);
	expect_bad32(dir + 4, 010000);                   /* mode */
	expect_bad32(dir + 24, 1000000000);              /* mtime_nsec */
	expect_bad32(dir + 36, 1000000000);              /* ctime_nsec */
	expect_bad64(dir + 56, 1);                       /* dir with size */
	expect_bad32(dir + 64, 0);                       /* path_len 0 */
	expect_bad32(dir + 64, DD_CATALOG_PATH_MAX + 1);
	expect_bad32(dir + 64, UINT32_MAX);
	expect_bad32(dir + 68, 1);                       /* link on a dir */
	expect_bad32(dir + 72, DD_CATALOG_EXT_MAX + 1);
	expect_bad32(dir + 72, UINT32_MAX);
	expect_bad64(dir + 76, 1);                       /* dir with chunks */
	expect_bad(dir + 84, "/", 1);                    /* absolute */
	expect_bad(dir + 84 + 4, "\0", 1);               /* NUL in path */
	expect_bad(dir + 84 + 7, "/", 1);                /* trailing '/' */
	expect_bad(fpath + 4, "/./", 3);                 /* "home/./n/a.txt" */
	expect_bad64(file + 76, 3);                      /* nchunks */
	expect_bad64(file + 76, 606);                    /* nchunks > size */
	expect_bad64(file + 76, UINT64_MAX);
	expect_bad64(file + 56, UINT64_MAX);             /* size vs chunks */
	expect_bad64(file + 56, 604);
	expect_bad32(chunk1 + 32, 0);                    /* chunk length 0 */
	expect_bad32(chunk1 + 32, 14);                   /* sum 606 */
	expect_bad32(chunk1 + 32, DD_CHUNK_SIZE_LIMIT + 1);
	expect_bad(chunk1, zero_id, DD_ID_LEN);          /* a hole in v1 */
	expect_bad32(link + 68, 0);                      /* symlink, no link */
	expect_bad(link + 84 + 13 + 1, "\0", 1);         /* NUL in link */
	expect_bad32(link + 68, DD_CATALOG_LINK_MAX + 1);
}

static void test_fuzz_bytes(void)
{
	struct dd_buf b;
	size_t off, bad = 0;

	dd_buf_init(&b, 0);
	build_golden(&b);
	for (off = 0; off < b.len; off++) {
		static const uint8_t flips[] = { 0x01, 0x80, 0xff };
		size_t k;

		for (k = 0; k < sizeof(flips); k++) {
			uint8_t *p = malloc(b.len);
			int rc;

			memcpy(p, b.data, b.len);
			p[off] ^= flips[k];
			rc = read_all(p, b.len, 29, NULL, 0);
			if (rc != -EBADMSG && (rc < 0 || rc > NGOLDEN))
				bad++;
			free(p);
		}
	}
	CHECK_EQ(bad, 0);
	dd_buf_release(&b);
}

static void test_read_errors(void)
{
	struct dd_buf b;
	struct slow s;
	struct dd_catalog_reader *r = NULL;
	struct dd_entry e;

	dd_buf_init(&b, 0);
	build_golden(&b);
	memset(&s, 0, sizeof(s));
	s.mem.p = b.data;
	s.mem.left = b.len;
	s.step = 50;
	s.fail_after = 150;
	CHECK_EQ(dd_catalog_reader_new(&r, slow_read, &s), 0);
	CHECK_EQ(dd_catalog_next(r, &e), 1);
	CHECK_EQ(dd_catalog_next(r, &e), -EIO);
	CHECK_EQ(dd_catalog_next(r, &e), -EIO);          /* sticky */
	dd_catalog_reader_free(r);

	memset(&s, 0, sizeof(s));
	s.mem.p = b.data;
	s.mem.left = b.len;
	s.step = 50;
	s.overrun = true;
	CHECK_EQ(dd_catalog_reader_new(&r, slow_read, &s), 0);
	CHECK_EQ(dd_catalog_next(r, &e), -EIO);
	dd_catalog_reader_free(r);
	dd_buf_release(&b);
}

static void test_writer(void)
{
	struct dd_buf b;
	struct dd_entry e;
	size_t before;
	uint8_t ext[16] = { 1, 2, 3 };

	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	before = b.len;
	e = golden_entries[1];
	e.size = 606;
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	e = golden_entries[1];
	e.path = "../x";
	e.path_len = 4;
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	e = golden_entries[0];
	e.link = "x";
	e.link_len = 1;
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	e = golden_entries[3];
	e.link_len = 0;
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	e = golden_entries[0];
	e.type = 9;
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	e = golden_entries[0];
	e.mode = 0100755;         /* S_IFREG bits do not belong here */
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	e = golden_entries[0];
	e.ext_len = DD_CATALOG_EXT_MAX + 1;
	e.ext = ext;
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	CHECK_EQ(b.len, before);

	/* version 2 gives the extension area rules: these bytes are no
	 * valid record list */
	e = golden_entries[0];
	e.ext = ext;
	e.ext_len = sizeof(ext);
	CHECK_EQ(dd_catalog_add(&b, &e), -EINVAL);
	CHECK_EQ(b.len, before);

	/* a capped buffer refuses the entry and keeps what it had */
	dd_buf_release(&b);
	dd_buf_init(&b, 100);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[0]), 0);
	before = b.len;
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[0]), -E2BIG);
	CHECK_EQ(b.len, before);
	dd_buf_release(&b);
}

static void test_big_entries(void)
{
	size_t n = 100000, i;
	struct dd_chunk_ref *c = malloc(n * sizeof(*c));
	char *path = malloc(DD_CATALOG_PATH_MAX);
	uint8_t *ext = calloc(1, DD_CATALOG_EXT_MAX);
	struct dd_entry e[2];
	struct dd_buf b;

	for (i = 0; i < n; i++) {
		dd_sha256(&c[i].id, &i, sizeof(i));
		c[i].plain_len = (uint32_t)(i % 1000 + 1);
	}
	memset(path, 'p', DD_CATALOG_PATH_MAX);
	e[0] = golden_entries[1];
	e[0].nchunks = n;
	e[0].chunks = c;
	e[0].size = 0;
	for (i = 0; i < n; i++)
		e[0].size += c[i].plain_len;
	e[0].path = path;
	e[0].path_len = DD_CATALOG_PATH_MAX;
	/* the largest extension area: one record of 1 MiB - 5 bytes, an
	 * unknown tag, which only version 1 carries (opaquely) */
	ext[0] = 9;
	dd_put_le32(ext + 1, DD_CATALOG_EXT_MAX - 5);
	e[0].ext = ext;
	e[0].ext_len = DD_CATALOG_EXT_MAX;
	e[1] = golden_entries[3];
	e[1].path = "q";              /* sorts after "ppp..." */
	e[1].path_len = 1;
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	CHECK_EQ(dd_catalog_add(&b, &e[0]), -EINVAL);
	raw_entry(&b, &e[0]);
	CHECK_EQ(dd_catalog_add(&b, &e[1]), 0);
	/* rejected as version 2, read as version 1 */
	CHECK_EQ(read_all(b.data, b.len, 4096, NULL, 0), -EBADMSG);
	dd_put_le32(b.data + 4, 1);
	CHECK_EQ(read_all(b.data, b.len, 4096, e, 2), 2);
	CHECK_EQ(read_all(b.data, b.len, SIZE_MAX, e, 2), 2);
	/* a chunk list over 64 MiB is refused before it is read */
	dd_put_le64(b.data + 8 + 56, UINT64_MAX);
	dd_put_le64(b.data + 8 + 76, (64u << 20) / 36 + 1);
	CHECK_EQ(read_all(b.data, b.len, SIZE_MAX, NULL, 0), -EBADMSG);
	dd_buf_release(&b);
	free(c);
	free(path);
	free(ext);
}

/* dd_catalog_entry_offset: where each entry starts, whatever the read
 * sizes; a header of the same version followed by the bytes from an
 * entry's offset reads the same entries from that one on. */
static void test_entry_offsets(void)
{
	enum { N = 300 };
	struct dd_entry e[N];
	char paths[N][16];
	uint64_t off[N];
	size_t steps[] = { 1, 7, 100, 4096, SIZE_MAX };
	struct dd_catalog_reader *r;
	struct dd_entry got;
	struct dd_buf b, part;
	size_t bad = 0;

	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	for (int i = 0; i < N; i++) {
		e[i] = golden_entries[3];
		snprintf(paths[i], sizeof(paths[i]), "d/%05d", i);
		e[i].path = paths[i];
		e[i].path_len = strlen(paths[i]);
		off[i] = b.len;
		CHECK_EQ(dd_catalog_add(&b, &e[i]), 0);
	}
	CHECK_EQ(off[0], (uint64_t)DD_CATALOG_HEADER_LEN);
	for (size_t k = 0; k < DD_ARRAY_SIZE(steps); k++) {
		struct slow sl = { { b.data, b.len }, steps[k], 0, 0, false };
		int i = 0;

		CHECK_EQ(dd_catalog_reader_new(&r, slow_read, &sl), 0);
		while (dd_catalog_next(r, &got) == 1 && i < N)
			bad += dd_catalog_entry_offset(r) != off[i++];
		CHECK_EQ(i, N);
		dd_catalog_reader_free(r);
	}
	CHECK_EQ(bad, 0u);
	/* resume at entry 123 */
	dd_buf_init(&part, 0);
	CHECK_EQ(dd_buf_append(&part, b.data, DD_CATALOG_HEADER_LEN), 0);
	CHECK_EQ(dd_buf_append(&part, b.data + off[123], b.len - off[123]), 0);
	CHECK_EQ(read_all(part.data, part.len, 50, e + 123, N - 123), N - 123);
	dd_buf_release(&part);
	dd_buf_release(&b);
}

static int cmp_s(const char *a, const char *b)
{
	int r = dd_catalog_path_cmp(a, strlen(a), b, strlen(b));

	return r < 0 ? -1 : r > 0 ? 1 : 0;
}

/* Catalog order is the order of a sorted depth-first walk. */
static void test_path_order(void)
{
	/* The order a walk of this tree produces: a, a/b, a/b/c, a/x, a-b,
	 * a0, ab. */
	static const char *walk[] = { "a", "a/b", "a/b/c", "a/x", "a-b",
				      "a-b/z", "a0", "ab", "b" };

	for (size_t i = 0; i < DD_ARRAY_SIZE(walk); i++) {
		CHECK_EQ(cmp_s(walk[i], walk[i]), 0);
		for (size_t j = i + 1; j < DD_ARRAY_SIZE(walk); j++) {
			CHECK_EQ(cmp_s(walk[i], walk[j]), -1);
			CHECK_EQ(cmp_s(walk[j], walk[i]), 1);
		}
	}
	/* Plain strcmp gets this pair the other way round. */
	CHECK(strcmp("a/x", "a-b") > 0);
	CHECK_EQ(cmp_s("a/x", "a-b"), -1);
	/* High bytes (UTF-8) sort after ASCII, as bytes. */
	CHECK_EQ(cmp_s("z", "\xc3\xa9"), -1);
}

/* ---- version 3: holes ---- */

/* A sparse file: hole, chunk, the largest hole, chunk, hole at the end. */
static struct dd_chunk_ref holes_refs[5];
static struct dd_entry holes_entry;

static void setup_holes(void)
{
	struct dd_entry *e = &holes_entry;

	memset(holes_refs, 0, sizeof(holes_refs));
	holes_refs[0].plain_len = 4096;
	holes_refs[1] = file_chunks[0];
	holes_refs[2].plain_len = DD_HOLE_MAX;
	holes_refs[3] = file_chunks[1];
	holes_refs[4].plain_len = 1;
	*e = golden_entries[1];
	e->path = "home/ann/sparse";
	e->path_len = 15;
	e->nchunks = 5;
	e->chunks = holes_refs;
	e->size = 0;
	for (int i = 0; i < 5; i++)
		e->size += holes_refs[i].plain_len;
}

/* One entry with refs `refs`/`n` and size `size`, encoded without checks
 * under a header of `version`: the reader's answer (entries or error),
 * after checking the writer agrees (version 3 only). */
static int read_refs(uint32_t version, const struct dd_chunk_ref *refs,
		     uint64_t n, uint64_t size)
{
	struct dd_entry e = holes_entry;
	struct dd_buf b;
	int rc;

	e.chunks = refs;
	e.nchunks = n;
	e.size = size;
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	dd_put_le32(b.data + 4, version);
	raw_entry(&b, &e);
	rc = read_all(b.data, b.len, 7, NULL, 0);
	if (version == DD_CATALOG_VERSION) {
		dd_buf_reset(&b);
		CHECK_EQ(dd_catalog_add(&b, &e), rc == 1 ? 0 : -EINVAL);
	}
	dd_buf_release(&b);
	return rc;
}

static void test_holes(void)
{
	struct dd_buf b;
	uint8_t *g = NULL;
	size_t glen = 0;
	struct dd_chunk_ref r[3];

	/* the golden sample: written, checked in, read back */
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	CHECK_EQ(dd_catalog_add(&b, &golden_entries[0]), 0);
	CHECK_EQ(dd_catalog_add(&b, &holes_entry), 0);
	CHECK(golden_same("catalog-v3.bin", b.data, b.len));
	dd_buf_release(&b);
	CHECK_EQ(golden_read("catalog-v3.bin", &g, &glen), 0);
	if (g) {
		struct dd_entry want[2] = { golden_entries[0], holes_entry };

		CHECK(memcmp(g, "DDCT\3\0\0\0", 8) == 0);
		CHECK_EQ(read_all(g, glen, SIZE_MAX, want, 2), 2);
		CHECK_EQ(read_all(g, glen, 5, want, 2), 2);
		/* the same bytes as version 2 are corrupt: no holes there */
		dd_put_le32(g + 4, 2);
		CHECK_EQ(read_all(g, glen, SIZE_MAX, NULL, 0), -EBADMSG);
		CHECK(strstr(dd_error_last(), "all-zero id") != NULL);
		free(g);
	}
	CHECK(dd_chunk_ref_is_hole(&holes_refs[0]));
	CHECK(!dd_chunk_ref_is_hole(&holes_refs[1]));

	/* a file that is all hole, and a hole as the only ref */
	memset(r, 0, sizeof(r));
	r[0].plain_len = 1;
	CHECK_EQ(read_refs(3, r, 1, 1), 1);
	r[0].plain_len = DD_HOLE_MAX;
	CHECK_EQ(read_refs(3, r, 1, DD_HOLE_MAX), 1);
	/* sizes must add up */
	CHECK_EQ(read_refs(3, r, 1, DD_HOLE_MAX - 1ull), -EBADMSG);
	CHECK_EQ(read_refs(3, r, 1, DD_HOLE_MAX + 1ull), -EBADMSG);
	/* an empty hole */
	r[0].plain_len = 0;
	CHECK_EQ(read_refs(3, r, 1, 0), -EBADMSG);
	r[0].plain_len = 0;
	r[1] = file_chunks[0];
	CHECK_EQ(read_refs(3, r, 2, file_chunks[0].plain_len), -EBADMSG);
	CHECK(strstr(dd_error_last(), "empty") != NULL);
	/* two holes in a row (not merged) */
	r[0].plain_len = 10;
	r[1] = r[0];
	CHECK_EQ(read_refs(3, r, 2, 20), -EBADMSG);
	CHECK(strstr(dd_error_last(), "follows a hole") != NULL);
	/* ... unless the first is as long as a hole can be */
	r[0].plain_len = DD_HOLE_MAX;
	CHECK_EQ(read_refs(3, r, 2, DD_HOLE_MAX + 10ull), 1);
	r[1].plain_len = DD_HOLE_MAX;
	r[0].plain_len = 10;
	CHECK_EQ(read_refs(3, r, 2, DD_HOLE_MAX + 10ull), -EBADMSG);
	r[0].plain_len = 10;
	/* hole, chunk, hole is fine; a chunk still has its bounds */
	r[1] = file_chunks[0];
	r[2] = r[0];
	CHECK_EQ(read_refs(3, r, 3, 20 + file_chunks[0].plain_len), 1);
	r[1].plain_len = DD_CHUNK_SIZE_LIMIT + 1;
	CHECK_EQ(read_refs(3, r, 3, 20 + DD_CHUNK_SIZE_LIMIT + 1ull),
		 -EBADMSG);
	/* more refs than bytes is still refused before any is read */
	r[1] = file_chunks[0];
	CHECK_EQ(read_refs(3, r, 3, 2), -EBADMSG);
	/* a hole in a version 2 or 1 catalog */
	r[0].plain_len = 10;
	CHECK_EQ(read_refs(2, r, 1, 10), -EBADMSG);
	CHECK_EQ(read_refs(1, r, 1, 10), -EBADMSG);
	/* a hole in a directory */
	{
		struct dd_entry d = golden_entries[0];

		d.chunks = r;
		d.nchunks = 1;
		d.size = 10;
		dd_buf_init(&b, 0);
		CHECK_EQ(dd_catalog_add(&b, &d), -EINVAL);
		dd_buf_release(&b);
	}
}

struct runs { uint64_t v[16]; size_t n; };

static void runs_add(void *payload, uint64_t off, uint64_t len)
{
	struct runs *r = payload;

	if (r->n + 2 <= 16) {
		r->v[r->n++] = off;
		r->v[r->n++] = len;
	}
}

static void ref_set(struct dd_chunk_ref *r, bool hole, uint32_t len)
{
	memset(r->id.b, hole ? 0 : 0xab, sizeof(r->id.b));
	r->plain_len = len;
}

/* Sparse maps on 512-byte boundaries: GNU tar reads each data run from
 * one, so runs are widened (within the file) and merged when they meet. */
static void test_sparse_runs(void)
{
	struct dd_chunk_ref refs[5];
	struct runs r = { 0 };

	/* 1000 data, 5000 hole, 1000 data: [0,1024) [5632,7000) */
	ref_set(&refs[0], false, 1000);
	ref_set(&refs[1], true, 5000);
	ref_set(&refs[2], false, 1000);
	CHECK_EQ(dd_sparse_runs(refs, 3, 7000, runs_add, &r), 2);
	CHECK_EQ(r.v[0], 0);
	CHECK_EQ(r.v[1], 1024);
	CHECK_EQ(r.v[2], 5632);
	CHECK_EQ(r.v[3], 7000 - 5632);
	/* a hole of 100 between data: one run, the whole file */
	memset(&r, 0, sizeof(r));
	ref_set(&refs[1], true, 100);
	CHECK_EQ(dd_sparse_runs(refs, 3, 2100, runs_add, &r), 1);
	CHECK_EQ(r.v[0], 0);
	CHECK_EQ(r.v[1], 2100);
	/* aligned runs stay as they are; a trailing hole stays a hole */
	memset(&r, 0, sizeof(r));
	ref_set(&refs[0], true, 4096);
	ref_set(&refs[1], false, 4096);
	ref_set(&refs[2], true, 8192);
	CHECK_EQ(dd_sparse_runs(refs, 3, 16384, runs_add, &r), 1);
	CHECK_EQ(r.v[0], 4096);
	CHECK_EQ(r.v[1], 4096);
	/* all hole: one empty run at the end */
	memset(&r, 0, sizeof(r));
	CHECK_EQ(dd_sparse_runs(refs, 1, 4096, runs_add, &r), 1);
	CHECK_EQ(r.v[0], 4096);
	CHECK_EQ(r.v[1], 0);
}

/* A hard link's owner names come from the entries before it: the names
 * its numbers had, its own when it has some, none for numbers not seen;
 * DD_OWNER_NAMES_KEPT numbers each at most. */
static void test_owner_names(void)
{
	struct dd_owner_names *t = dd_owner_names_new();
	struct dd_entry f = { .type = DD_ENTRY_FILE, .uid = 7, .gid = 8 };
	struct dd_entry l = { .type = DD_ENTRY_HARDLINK, .uid = 7, .gid = 8 };
	const char *u = "alice", *g = "staff";
	char name[32];

	CHECK(t != NULL);
	if (!t)
		return;
	u = g = NULL;
	dd_owner_names_apply(t, &l, &u, &g);     /* nothing seen yet */
	CHECK(u == NULL && g == NULL);
	u = "alice", g = "staff";
	dd_owner_names_apply(t, &f, &u, &g);     /* noted */
	u = NULL, g = "";
	dd_owner_names_apply(t, &l, &u, &g);
	CHECK(u && strcmp(u, "alice") == 0);
	CHECK(g && strcmp(g, "staff") == 0);
	u = "own", g = NULL;                     /* its own name stays */
	dd_owner_names_apply(t, &l, &u, &g);
	CHECK(strcmp(u, "own") == 0 && strcmp(g, "staff") == 0);
	u = "bob", g = "other";                  /* the first name stays */
	dd_owner_names_apply(t, &f, &u, &g);
	u = g = NULL;
	dd_owner_names_apply(t, &l, &u, &g);
	CHECK(strcmp(u, "alice") == 0 && strcmp(g, "staff") == 0);
	l.uid = 9;                               /* a number not seen */
	u = g = NULL;
	dd_owner_names_apply(t, &l, &u, &g);
	CHECK(u == NULL && strcmp(g, "staff") == 0);
	for (uint32_t id = 100; id < 100 + 2 * DD_OWNER_NAMES_KEPT; id++) {
		snprintf(name, sizeof(name), "u%u", id);
		f.uid = id;
		u = name, g = NULL;
		dd_owner_names_apply(t, &f, &u, &g);
	}
	l.uid = 100 + DD_OWNER_NAMES_KEPT - 2;   /* kept (7 came first) */
	u = g = NULL;
	dd_owner_names_apply(t, &l, &u, &g);
	snprintf(name, sizeof(name), "u%u", l.uid);
	CHECK(u && strcmp(u, name) == 0);
	l.uid = 100 + DD_OWNER_NAMES_KEPT;       /* past the table */
	u = g = NULL;
	dd_owner_names_apply(t, &l, &u, &g);
	CHECK(u == NULL);
	dd_owner_names_free(t);
}

int main(void)
{
	fixture_chunks(fx, fx_text, fx_bytes);
	setup_golden();
	UNIT_RUN(test_sparse_runs);
	setup_golden2();
	setup_holes();
	UNIT_RUN(test_golden);
	UNIT_RUN(test_golden2);
	UNIT_RUN(test_v2_fields);
	UNIT_RUN(test_golden_bad);
	UNIT_RUN(test_paths);
	UNIT_RUN(test_truncations);
	UNIT_RUN(test_fields);
	UNIT_RUN(test_fuzz_bytes);
	UNIT_RUN(test_read_errors);
	UNIT_RUN(test_writer);
	UNIT_RUN(test_big_entries);
	UNIT_RUN(test_entry_offsets);
	UNIT_RUN(test_path_order);
	UNIT_RUN(test_holes);
	UNIT_RUN(test_owner_names);
	for (int i = 0; i < NGOLDEN2; i++)
		dd_buf_release(&g2ext[i]);
	UNIT_DONE();
}
