/*
 * test_catalog.c - the catalog: golden samples, path rules, a streaming
 * reader fed in small pieces, and rejection of every malformed field,
 * truncation and read error.
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

static void build_golden(struct dd_buf *b)
{
	int i;

	CHECK_EQ(dd_catalog_begin(b), 0);
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
		"catalog-bad-truncated.bin",
	};
	struct dd_buf b;
	struct dd_entry e = golden_entries[1];
	uint8_t *g = NULL;
	size_t glen = 0, i;

	/* a file at "home/xx/etc", then "xx" patched to ".." */
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
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

static void test_fields(void)
{
	size_t dir = 8, file = dir + E_DIR_LEN, link = golden_ends[2];
	size_t fpath = file + 84, chunk1 = file + 84 + 14;

	expect_bad(0, "DDCX", 4);
	expect_bad32(4, 2);                              /* version */
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

	/* an extension area travels untouched */
	e = golden_entries[0];
	e.ext = ext;
	e.ext_len = sizeof(ext);
	CHECK_EQ(dd_catalog_add(&b, &e), 0);
	CHECK_EQ(read_all(b.data, b.len, 5, &e, 1), 1);

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
	e[0].ext = ext;
	e[0].ext_len = DD_CATALOG_EXT_MAX;
	e[1] = golden_entries[3];
	dd_buf_init(&b, 0);
	CHECK_EQ(dd_catalog_begin(&b), 0);
	CHECK_EQ(dd_catalog_add(&b, &e[0]), 0);
	CHECK_EQ(dd_catalog_add(&b, &e[1]), 0);
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

int main(void)
{
	fixture_chunks(fx, fx_text, fx_bytes);
	setup_golden();
	UNIT_RUN(test_golden);
	UNIT_RUN(test_golden_bad);
	UNIT_RUN(test_paths);
	UNIT_RUN(test_truncations);
	UNIT_RUN(test_fields);
	UNIT_RUN(test_fuzz_bytes);
	UNIT_RUN(test_read_errors);
	UNIT_RUN(test_writer);
	UNIT_RUN(test_big_entries);
	UNIT_RUN(test_path_order);
	UNIT_DONE();
}
