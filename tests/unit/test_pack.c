/*
 * test_pack.c - pack files: golden sealed, torn and bad-trailer samples,
 * the index value codec, record reads checked against their location, and
 * a scanner that survives every truncation and byte flip.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunker.h"
#include "compress.h"
#include "fixtures.h"
#include "golden.h"
#include "pack.h"
#include "unit.h"

static struct fixture_chunk fx[FIXTURE_NCHUNKS];
static char fx_text[FIXTURE_TEXT_LEN + 1];
static uint8_t fx_bytes[256];
static char tmpdir[256];

/* Record offsets in the samples: 16, then + 48 + stored_len. */
static const uint64_t fx_offset[FIXTURE_NCHUNKS] = { 16, 77, 226 };
#define SEALED_LEN (530u + 8u + 3u * 52u + 44u)

struct seen {
	int n;
	int stop_at;            /* return 1 from this record on, 0: never */
	struct dd_id id[8];
	struct dd_chunk_loc loc[8];
	uint8_t first[8];       /* first stored byte */
	int stored_ok;          /* stored bytes matched the fixture */
};

static int seen_cb(void *payload, const struct dd_id *id,
		   const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	struct seen *s = payload;

	if (s->n < 8) {
		s->id[s->n] = *id;
		s->loc[s->n] = *loc;
		s->first[s->n] = loc->stored_len ? stored[0] : 0;
		if (s->n < FIXTURE_NCHUNKS &&
		    loc->stored_len == fx[s->n].stored_len &&
		    memcmp(stored, fx[s->n].stored, loc->stored_len) == 0)
			s->stored_ok++;
	}
	s->n++;
	return s->stop_at && s->n >= s->stop_at ? 1 : 0;
}

static void make_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/dd-pack-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir))
		abort();
}

/* Writes a pack with the fixture chunks; sealed or left open. Returns the
 * file's bytes (caller frees). */
static uint8_t *write_fixture_pack(uint64_t seq, bool seal, size_t *len)
{
	struct dd_pack_writer *w = NULL;
	struct dd_chunk_loc loc;
	char path[512];
	uint8_t *data = NULL;
	int i;

	*len = 0;
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, seq), 0);
	if (!w)
		return NULL;
	CHECK_EQ(dd_pack_writer_seq(w), seq);
	CHECK_EQ(dd_pack_writer_size(w), DD_PACK_HEADER_LEN);
	for (i = 0; i < FIXTURE_NCHUNKS; i++) {
		CHECK_EQ(dd_pack_writer_append(w, &fx[i].id, fx[i].flags,
					       fx[i].plain_len, fx[i].stored,
					       fx[i].stored_len, &loc), 0);
		CHECK_EQ(loc.pack_seq, seq);
		CHECK_EQ(loc.offset, fx_offset[i]);
		CHECK_EQ(loc.stored_len, fx[i].stored_len);
	}
	CHECK_EQ(dd_pack_writer_size(w), 530);
	CHECK_EQ(dd_pack_writer_sync(w), 0);
	if (seal)
		CHECK_EQ(dd_pack_writer_seal(w), 0);
	else
		dd_pack_writer_free(w);
	dd_pack_path(path, sizeof(path), tmpdir, seq);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, len), 0);
	unlink(path);
	return data;
}

/* Scans bytes written to a scratch file. */
static int scan_bytes(const uint8_t *p, size_t len, struct seen *s,
		      bool *sealed)
{
	char path[512];
	int rc;

	/* the name of pack 1, as the scan checks a canonical name against
	 * the header */
	snprintf(path, sizeof(path), "%s/0000000000000001.pack", tmpdir);
	if (dd_write_file_atomic(path, p, len, 0644) < 0)
		return -9999;
	rc = dd_pack_scan(path, seen_cb, s, sealed);
	unlink(path);
	return rc;
}

static void check_fixture_records(const struct seen *s, int n)
{
	int i;

	CHECK_EQ(s->n, n);
	CHECK_EQ(s->stored_ok, n);
	for (i = 0; i < n && i < 8; i++) {
		CHECK(dd_id_eq(&s->id[i], &fx[i].id));
		CHECK_EQ(s->loc[i].offset, fx_offset[i]);
		CHECK_EQ(s->loc[i].flags, fx[i].flags);
		CHECK_EQ(s->loc[i].plain_len, fx[i].plain_len);
		CHECK_EQ(s->loc[i].stored_len, fx[i].stored_len);
	}
}

static void test_golden_sealed(void)
{
	uint8_t *p, *g = NULL;
	size_t len, glen = 0;
	struct seen s = { 0 };
	bool sealed = false;
	char path[4096];
	int i;

	p = write_fixture_pack(0x1234, true, &len);
	CHECK_EQ(len, SEALED_LEN);
	CHECK(p && golden_same("pack-v1-sealed.pack", p, len));
	free(p);

	CHECK_EQ(golden_read("pack-v1-sealed.pack", &g, &glen), 0);
	CHECK_EQ(glen, SEALED_LEN);
	if (glen == SEALED_LEN) {
		CHECK(memcmp(g, "DDPK\1\0\0\0\x34\x12\0\0\0\0\0\0", 16) == 0);
		CHECK(memcmp(g + 530, "DDTR\3\0\0\0", 8) == 0);
		CHECK(memcmp(g + glen - 4, "DDPE", 4) == 0);
		CHECK_EQ(dd_le64(g + glen - 12), 530);
	}
	free(g);
	golden_path(path, sizeof(path), "pack-v1-sealed.pack");
	CHECK_EQ(dd_pack_scan(path, seen_cb, &s, &sealed), 0);
	CHECK(sealed);
	check_fixture_records(&s, 3);
	for (i = 0; i < 3; i++)
		CHECK_EQ(s.loc[i].pack_seq, 0x1234);
}

static void test_golden_torn(void)
{
	uint8_t *p, *g = NULL;
	size_t len, glen = 0;
	struct seen s = { 0 };
	bool sealed = true;
	char path[4096];

	p = write_fixture_pack(0x1235, false, &len);
	CHECK_EQ(len, 530);
	/* the crash: the last record lost its final 100 bytes */
	CHECK(p && golden_same("pack-v1-torn.pack", p, len - 100));
	free(p);
	CHECK_EQ(golden_read("pack-v1-torn.pack", &g, &glen), 0);
	CHECK_EQ(glen, 430);
	free(g);
	golden_path(path, sizeof(path), "pack-v1-torn.pack");
	CHECK_EQ(dd_pack_scan(path, seen_cb, &s, &sealed), 0);
	CHECK(!sealed);
	check_fixture_records(&s, 2);
	CHECK_EQ(s.loc[1].pack_seq, 0x1235);
}

/* Recomputes the trailer checksum of a sealed pack held in memory. */
static void reseal(uint8_t *p, size_t len)
{
	uint64_t toff = dd_le64(p + len - 12);
	struct dd_id sum;

	dd_sha256(&sum, p + toff, len - 44 - toff);
	memcpy(p + len - 44, sum.b, 32);
}

static void test_golden_bad_trailer(void)
{
	uint8_t *p, *g = NULL;
	size_t len, glen = 0;
	struct seen s = { 0 };
	bool sealed = true;
	char path[4096];

	p = write_fixture_pack(0x1236, true, &len);
	if (!p)
		return;
	/* the first trailer entry's offset, 16 -> 17: checksum fails */
	p[530 + 8 + 32] ^= 1;
	CHECK(golden_same("pack-bad-trailer.pack", p, len));
	free(p);
	CHECK_EQ(golden_read("pack-bad-trailer.pack", &g, &glen), 0);
	free(g);
	golden_path(path, sizeof(path), "pack-bad-trailer.pack");
	CHECK_EQ(dd_pack_scan(path, seen_cb, &s, &sealed), -EBADMSG);
	CHECK(strstr(dd_error_last(), "checksum") != NULL);
	CHECK(!sealed);
}

static void test_trailer_mismatch(void)
{
	uint8_t *p;
	size_t len;
	struct seen s;
	bool sealed;

	p = write_fixture_pack(1, true, &len);
	if (!p)
		return;
	/* an entry that disagrees with its record, checksum made valid */
	p[530 + 8 + 52 + 32] ^= 1;     /* second entry's offset */
	reseal(p, len);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(scan_bytes(p, len, &s, &sealed), -EBADMSG);
	p[530 + 8 + 52 + 32] ^= 1;
	p[530 + 8 + 52 + 44] ^= 1;     /* second entry's plain_len */
	reseal(p, len);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(scan_bytes(p, len, &s, &sealed), -EBADMSG);
	p[530 + 8 + 52 + 44] ^= 1;
	p[530 + 8 + 52] ^= 1;          /* second entry's id */
	reseal(p, len);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(scan_bytes(p, len, &s, &sealed), -EBADMSG);
	p[530 + 8 + 52] ^= 1;
	reseal(p, len);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(scan_bytes(p, len, &s, &sealed), 0);
	CHECK(sealed);
	check_fixture_records(&s, 3);
	/* a record the trailer does not list (count patched to 2, the
	 * trailer shortened to match) */
	{
		uint8_t *q = malloc(len);
		size_t qlen = len - 52;

		memcpy(q, p, 530 + 8 + 104);
		memcpy(q + 530 + 8 + 104, p + 530 + 8 + 156, 44);
		dd_put_le32(q + 534, 2);
		reseal(q, qlen);
		memset(&s, 0, sizeof(s));
		CHECK_EQ(scan_bytes(q, qlen, &s, &sealed), -EBADMSG);
		free(q);
	}
	free(p);
}

static void test_scan_edges(void)
{
	static const uint8_t hdr[16] = "DDPK\1\0\0\0\1\0\0\0\0\0\0";
	struct dd_pack_writer *w = NULL;
	struct seen s;
	bool sealed = true;
	char path[512];
	uint8_t *p, chunk[100];
	struct dd_id id;
	size_t len;

	memset(&s, 0, sizeof(s));
	snprintf(path, sizeof(path), "%s/none.pack", tmpdir);
	CHECK_EQ(dd_pack_scan(path, seen_cb, &s, &sealed), -ENOENT);
	/* header only: an empty unsealed pack */
	CHECK_EQ(scan_bytes(hdr, 16, &s, &sealed), 0);
	CHECK(!sealed);
	CHECK_EQ(s.n, 0);
	CHECK_EQ(scan_bytes(hdr, 15, &s, &sealed), -EBADMSG);
	CHECK_EQ(scan_bytes((const uint8_t *)"DDPX\1\0\0\0\1\0\0\0\0\0\0\0", 16,
			    &s, &sealed), -EBADMSG);
	CHECK_EQ(scan_bytes((const uint8_t *)"DDPK\2\0\0\0\1\0\0\0\0\0\0\0", 16,
			    &s, &sealed), -EBADMSG);
	/* pack 2's header in the file named for pack 1 */
	CHECK_EQ(scan_bytes((const uint8_t *)"DDPK\1\0\0\0\2\0\0\0\0\0\0\0", 16,
			    &s, &sealed), -EBADMSG);
	CHECK(strstr(dd_error_last(), "0000000000000002") != NULL);

	/* a sealed pack without records */
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 99), 0);
	CHECK_EQ(dd_pack_writer_seal(w), 0);
	dd_pack_path(path, sizeof(path), tmpdir, 99);
	CHECK_EQ(dd_pack_scan(path, seen_cb, &s, &sealed), 0);
	CHECK(sealed);
	CHECK_EQ(s.n, 0);
	/* the sequence number is taken: O_EXCL */
	w = NULL;
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 99), -EEXIST);
	CHECK(w == NULL);
	unlink(path);

	/* an unsealed pack whose last chunk happens to end in "DDPE" */
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk + 88, "\x10\0\0\0\0\0\0\0DDPE", 12);
	dd_sha256(&id, chunk, sizeof(chunk));
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 100), 0);
	CHECK_EQ(dd_pack_writer_append(w, &id, 0, 100, chunk, 100, NULL), 0);
	CHECK_EQ(dd_pack_writer_append(w, &id, 0, 100, chunk, 100, NULL), 0);
	dd_pack_writer_free(w);
	dd_pack_path(path, sizeof(path), tmpdir, 100);
	memset(&s, 0, sizeof(s));
	CHECK_EQ(dd_pack_scan(path, seen_cb, &s, &sealed), 0);
	CHECK(!sealed);
	CHECK_EQ(s.n, 2);
	unlink(path);

	/* the callback's stop value comes back */
	p = write_fixture_pack(1, true, &len);
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	CHECK_EQ(scan_bytes(p, len, &s, &sealed), 1);
	CHECK_EQ(s.n, 2);
	/* garbage after an unsealed pack's records ends the scan quietly */
	p[530] = 'X';     /* "DDTR" -> "XDTR": no trailer, a bad record */
	memset(&s, 0, sizeof(s));
	CHECK_EQ(scan_bytes(p, len, &s, &sealed), 0);
	CHECK(!sealed);
	CHECK_EQ(s.n, 3);
	free(p);

	/* writer refuses a malformed record */
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 101), 0);
	CHECK_EQ(dd_pack_writer_append(w, &id, 2, 100, chunk, 100, NULL),
		 -EINVAL);
	CHECK_EQ(dd_pack_writer_append(w, &id, 0, 99, chunk, 100, NULL),
		 -EINVAL);
	CHECK_EQ(dd_pack_writer_size(w), 16);
	dd_pack_writer_free(w);
	dd_pack_writer_free(NULL);
}

static void test_scan_truncations(void)
{
	uint8_t *p;
	size_t len, n, bad = 0;
	struct seen s;
	bool sealed;

	p = write_fixture_pack(1, true, &len);
	if (!p)
		return;
	for (n = 0; n < len; n++) {
		int rc;

		memset(&s, 0, sizeof(s));
		rc = scan_bytes(p, n, &s, &sealed);
		if (n < 16) {
			bad += rc != -EBADMSG;
			continue;
		}
		/* a cut pack is never sealed and yields the whole records
		 * before the cut */
		if (rc != 0 || sealed || s.stored_ok != s.n ||
		    s.n != (n >= 530 ? 3 : n >= 226 ? 2 : n >= 77 ? 1 : 0))
			bad++;
	}
	CHECK_EQ(bad, 0);
	free(p);
}

static bool in_stored_bytes(size_t off)
{
	int i;

	for (i = 0; i < FIXTURE_NCHUNKS; i++)
		if (off >= fx_offset[i] + 48 &&
		    off < fx_offset[i] + 48 + fx[i].stored_len)
			return true;
	return false;
}

static void test_scan_flips(void)
{
	uint8_t *p;
	size_t len, off, bad = 0, rejected = 0;
	struct seen s;
	bool sealed;

	p = write_fixture_pack(1, true, &len);
	if (!p)
		return;
	for (off = 0; off < len; off++) {
		int rc;

		p[off] ^= 0x41;
		memset(&s, 0, sizeof(s));
		rc = scan_bytes(p, len, &s, &sealed);
		p[off] ^= 0x41;
		if (rc < 0) {
			rejected++;
			continue;
		}
		/* accepted: as an unsealed pack of whole records, or sealed
		 * when only stored bytes changed (their ids are checked by
		 * whoever decodes them, not by the scan) */
		if (rc != 0 || s.n > 3 || (sealed && !in_stored_bytes(off))) {
			fprintf(stderr, "flip at %zu: rc %d, %d records, "
				"sealed %d\n", off, rc, s.n, sealed);
			bad++;
		}
	}
	CHECK_EQ(bad, 0);
	CHECK(rejected > 0);
	free(p);
}

static void test_read_record(void)
{
	struct dd_buf out;
	struct dd_chunk_loc loc;
	struct dd_id other;
	char path[4096];
	int fd, i;

	golden_path(path, sizeof(path), "pack-v1-sealed.pack");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	dd_buf_init(&out, 0);
	for (i = 0; i < FIXTURE_NCHUNKS; i++) {
		loc.pack_seq = 0x1234;
		loc.offset = fx_offset[i];
		loc.flags = fx[i].flags;
		loc.plain_len = fx[i].plain_len;
		loc.stored_len = fx[i].stored_len;
		CHECK_EQ(dd_pack_read_record(fd, &fx[i].id, &loc, &out), 0);
		CHECK_EQ(out.len, fx[i].stored_len);
		CHECK(memcmp(out.data, fx[i].stored, out.len) == 0);
	}
	/* loc = third record */
	dd_sha256(&other, "other", 5);
	CHECK_EQ(dd_pack_read_record(fd, &other, &loc, &out), -EBADMSG);
	CHECK_EQ(out.len, 0);
	loc.offset = 17;
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.offset = 16;        /* a real record, but another chunk */
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.offset = fx_offset[2];
	loc.plain_len = 255;
	loc.stored_len = 255;
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.flags = DD_COMP_ZSTD;
	loc.plain_len = 256;
	loc.stored_len = 256;
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.flags = 5;
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.flags = DD_COMP_NONE;
	loc.offset = 700;       /* runs past the end of the file */
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.offset = 8;         /* inside the header */
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	loc.offset = UINT64_MAX - 10;
	CHECK_EQ(dd_pack_read_record(fd, &fx[2].id, &loc, &out), -EBADMSG);
	close(fd);
	dd_buf_release(&out);
}

/* Field by field: the struct's padding is whatever the stack held
 * (memcmp of it failed under the sanitizer build's stack layout). */
static bool loc_eq(const struct dd_chunk_loc *a, const struct dd_chunk_loc *b)
{
	return a->pack_seq == b->pack_seq && a->offset == b->offset &&
	       a->flags == b->flags && a->plain_len == b->plain_len &&
	       a->stored_len == b->stored_len;
}

static void test_loc_codec(void)
{
	struct dd_chunk_loc a = { 0x0102030405060708ull, 0x1122334455667788ull,
				  DD_COMP_ZSTD, 1000, 500 }, b;
	/* Version 1, as indexes written before version 2 hold it. */
	static const uint8_t v1[DD_CHUNK_LOC_V1_LEN] = {
		1, 8, 7, 6, 5, 4, 3, 2, 1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33,
		0x22, 0x11, 1, 0, 0, 0, 0xe8, 3, 0, 0, 0xf4, 1, 0, 0,
	};
	/* Version 2 of a typical location: pack 3, offset 70000, zstd,
	 * 262144 plain bytes stored in 150000. */
	static const uint8_t v2[] = {
		2, 3, 0xf0, 0xa2, 0x04, 1, 0x80, 0x80, 0x10, 0xf0, 0x93, 0x09,
	};
	struct dd_chunk_loc t = { 3, 70000, DD_COMP_ZSTD, 262144, 150000 };
	uint8_t enc[DD_CHUNK_LOC_MAX], bad[DD_CHUNK_LOC_MAX + 4];
	size_t n;
	char path[64];

	CHECK_EQ(dd_chunk_loc_decode(&b, v1, sizeof(v1)), 0);
	CHECK(loc_eq(&a, &b));
	CHECK_EQ(dd_chunk_loc_decode(&b, v1, sizeof(v1) - 1), -EBADMSG);
	CHECK_EQ(dd_chunk_loc_decode(&b, v1, 0), -EBADMSG);
	memcpy(bad, v1, sizeof(v1));
	bad[0] = 3;                                   /* version */
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v1)), -EBADMSG);
	memcpy(bad, v1, sizeof(v1));
	dd_put_le32(bad + 17, 4);        /* flags: unknown (3 is sealed zstd) */
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v1)), -EBADMSG);
	memcpy(bad, v1, sizeof(v1));
	dd_put_le32(bad + 21, DD_CHUNK_SIZE_LIMIT + 1);
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v1)), -EBADMSG);
	memcpy(bad, v1, sizeof(v1));
	dd_put_le32(bad + 25, 2000);                  /* stored > bound */
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v1)), -EBADMSG);
	memcpy(bad, v1, sizeof(v1));
	dd_put_le32(bad + 17, DD_COMP_NONE);          /* raw: 500 != 1000 */
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v1)), -EBADMSG);
	memcpy(bad, v1, sizeof(v1));
	dd_put_le64(bad + 9, 3);                      /* inside the header */
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v1)), -EBADMSG);

	/* What is written is version 2, and reads back. */
	n = dd_chunk_loc_encode(enc, &t);
	CHECK_EQ(n, sizeof(v2));
	CHECK(memcmp(enc, v2, sizeof(v2)) == 0);
	CHECK_EQ(dd_chunk_loc_decode(&b, enc, n), 0);
	CHECK(loc_eq(&t, &b));
	n = dd_chunk_loc_encode(enc, &a);
	CHECK(n <= DD_CHUNK_LOC_MAX);
	CHECK_EQ(dd_chunk_loc_decode(&b, enc, n), 0);
	CHECK(loc_eq(&a, &b));
	a.pack_seq = UINT64_MAX;
	a.offset = INT64_MAX;
	a.flags = DD_COMP_NONE;
	a.plain_len = a.stored_len = DD_CHUNK_SIZE_LIMIT;
	n = dd_chunk_loc_encode(enc, &a);
	CHECK(n <= DD_CHUNK_LOC_MAX);
	CHECK_EQ(dd_chunk_loc_decode(&b, enc, n), 0);
	CHECK(loc_eq(&a, &b));
	/* Cut short anywhere, or with a byte after it: refused. */
	for (size_t k = 1; k < sizeof(v2); k++)
		CHECK_EQ(dd_chunk_loc_decode(&b, v2, k), -EBADMSG);
	memcpy(bad, v2, sizeof(v2));
	bad[sizeof(v2)] = 0;
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v2) + 1), -EBADMSG);
	/* A 32-bit field of 2^32: too wide. */
	static const uint8_t wide[] = { 2, 3, 0xf0, 0xa2, 0x04,
					0x80, 0x80, 0x80, 0x80, 0x10,
					0x80, 0x80, 0x10, 0xf0, 0x93, 0x09 };
	CHECK_EQ(dd_chunk_loc_decode(&b, wide, sizeof(wide)), -EBADMSG);
	/* A 64-bit field of eleven bytes. */
	memset(bad, 0x80, sizeof(bad));
	bad[0] = 2;
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(bad)), -EBADMSG);
	/* The checks of version 1 hold for version 2: raw 150000 != 262144. */
	memcpy(bad, v2, sizeof(v2));
	bad[5] = DD_COMP_NONE;
	CHECK_EQ(dd_chunk_loc_decode(&b, bad, sizeof(v2)), -EBADMSG);

	dd_pack_path(path, sizeof(path), "/srv/repo/packs", 0x1a2b);
	CHECK(strcmp(path, "/srv/repo/packs/0000000000001a2b.pack") == 0);
	dd_pack_path(path, sizeof(path), "p", UINT64_MAX);
	CHECK(strcmp(path, "p/ffffffffffffffff.pack") == 0);
	CHECK_EQ(strlen(path), strlen("p") + 22);
}

/* Group commit: records detached and written while more are appended
 * land in order; a failed detached write fails the writer. */
static void test_detached_write(void)
{
	struct dd_pack_writer *w = NULL;
	struct dd_buf buf;
	struct seen s = { 0 };
	char path[512];
	uint8_t *data = NULL;
	size_t len = 0;
	bool sealed = true;
	int i;

	dd_buf_init(&buf, 0);
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 1), 0);
	if (!w)
		return;
	CHECK_EQ(dd_pack_writer_append(w, &fx[0].id, fx[0].flags,
				       fx[0].plain_len, fx[0].stored,
				       fx[0].stored_len, NULL), 0);
	CHECK_EQ(dd_pack_writer_detach(w, &buf), 0);
	/* the record, after filler that puts it where its address is
	 * congruent to its file offset (modulo a page) */
	CHECK(buf.len >= fx_offset[1] - fx_offset[0]);
	CHECK(buf.len - (fx_offset[1] - fx_offset[0]) < 4096);
	CHECK_EQ((uintptr_t)(buf.data + buf.len -
			     (fx_offset[1] - fx_offset[0])) % 4096,
		 (uintptr_t)fx_offset[0] % 4096);
	for (i = 1; i < FIXTURE_NCHUNKS; i++)
		CHECK_EQ(dd_pack_writer_append(w, &fx[i].id, fx[i].flags,
					       fx[i].plain_len, fx[i].stored,
					       fx[i].stored_len, NULL), 0);
	CHECK_EQ(dd_pack_writer_write_detached(w, &buf), 0);
	dd_pack_writer_detached_done(w, buf.len, 0);
	CHECK_EQ(dd_pack_writer_sync(w), 0);
	dd_pack_writer_free(w);
	dd_pack_path(path, sizeof(path), tmpdir, 1);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	unlink(path);
	CHECK_EQ(len, 530);
	CHECK_EQ(scan_bytes(data, len, &s, &sealed), 0);
	CHECK(!sealed);
	check_fixture_records(&s, FIXTURE_NCHUNKS);
	free(data);

	/* the write failed: the writer refuses more, and nothing is cut
	 * back past what was durable */
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 2), 0);
	if (!w)
		return;
	CHECK_EQ(dd_pack_writer_append(w, &fx[0].id, fx[0].flags,
				       fx[0].plain_len, fx[0].stored,
				       fx[0].stored_len, NULL), 0);
	CHECK_EQ(dd_pack_writer_detach(w, &buf), 0);
	dd_pack_writer_detached_done(w, buf.len, -EIO);
	CHECK_EQ(dd_pack_writer_append(w, &fx[1].id, fx[1].flags,
				       fx[1].plain_len, fx[1].stored,
				       fx[1].stored_len, NULL), -EIO);
	CHECK_EQ(dd_pack_writer_detach(w, &buf), -EIO);
	CHECK_EQ(dd_pack_writer_sync(w), -EIO);
	dd_pack_writer_free(w);
	dd_pack_path(path, sizeof(path), tmpdir, 2);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	unlink(path);
	CHECK_EQ(len, DD_PACK_HEADER_LEN);
	free(data);
	dd_buf_release(&buf);
}

/* A lent buffer holds the records, and comes back, emptied, at the seal
 * (also after detached writes swapped it) or at a free. */
static void test_lend_buf(void)
{
	struct dd_pack_writer *w = NULL;
	struct dd_buf lent, spare;
	struct seen s = { 0 };
	char path[512];
	uint8_t *data = NULL, *mem;
	size_t len = 0;
	bool sealed = false;
	int i;

	dd_buf_init(&lent, 0);
	dd_buf_init(&spare, 0);
	CHECK_EQ(dd_buf_append(&lent, "left over", 9), 0);
	CHECK_EQ(dd_buf_reserve(&lent, 4096), 0);
	mem = lent.data;
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 1), 0);
	if (!w)
		return;
	dd_pack_writer_lend_buf(w, &lent);
	CHECK(lent.data != mem);
	CHECK_EQ(lent.len, 0);
	for (i = 0; i < FIXTURE_NCHUNKS; i++)
		CHECK_EQ(dd_pack_writer_append(w, &fx[i].id, fx[i].flags,
					       fx[i].plain_len, fx[i].stored,
					       fx[i].stored_len, NULL), 0);
	CHECK_EQ(dd_pack_writer_sync(w), 0);
	CHECK_EQ(dd_pack_writer_seal(w), 0);
	CHECK(lent.data == mem);
	CHECK_EQ(lent.len, 0);
	dd_pack_path(path, sizeof(path), tmpdir, 1);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	unlink(path);
	CHECK_EQ(scan_bytes(data, len, &s, &sealed), 0);
	CHECK(sealed);
	check_fixture_records(&s, FIXTURE_NCHUNKS);
	free(data);

	/* detached writes swap it with the caller's spare: one of the two
	 * comes back, the other stays the caller's; a free gives it back
	 * too */
	CHECK_EQ(dd_pack_writer_new(&w, tmpdir, 1), 0);
	if (!w)
		return;
	dd_pack_writer_lend_buf(w, &lent);
	CHECK_EQ(dd_pack_writer_append(w, &fx[0].id, fx[0].flags,
				       fx[0].plain_len, fx[0].stored,
				       fx[0].stored_len, NULL), 0);
	CHECK_EQ(dd_pack_writer_detach(w, &spare), 0);
	CHECK(spare.data == mem);
	CHECK_EQ(dd_pack_writer_append(w, &fx[1].id, fx[1].flags,
				       fx[1].plain_len, fx[1].stored,
				       fx[1].stored_len, NULL), 0);
	CHECK_EQ(dd_pack_writer_write_detached(w, &spare), 0);
	dd_pack_writer_detached_done(w, spare.len, 0);
	dd_pack_writer_free(w);
	CHECK(lent.data != NULL && lent.data != mem);
	CHECK_EQ(lent.len, 0);
	memset(&s, 0, sizeof(s));
	dd_pack_path(path, sizeof(path), tmpdir, 1);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	unlink(path);
	CHECK_EQ(scan_bytes(data, len, &s, &sealed), 0);
	CHECK(!sealed);
	check_fixture_records(&s, 2);
	free(data);
	dd_buf_release(&lent);
	dd_buf_release(&spare);
}

static void cleanup_tmpdir(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* A sink that records where each append's bytes lie in memory. */
struct where_sink {
	uint64_t off;          /* the file offset of the next byte */
	int appends, congruent;
};

static int where_create(void *ctx, const void *hdr, size_t len)
{
	struct where_sink *ws = ctx;

	(void)hdr;
	ws->off = len;
	return 0;
}

static int where_append(void *ctx, const void *data, size_t len)
{
	struct where_sink *ws = ctx;

	ws->appends++;
	if ((uintptr_t)data % 4096 == ws->off % 4096)
		ws->congruent++;
	ws->off += len;
	return 0;
}

/* Every run a sink is handed (synced, detached, sealed) lies in memory
 * as it will in the file, modulo a page: runs of one and two records of
 * many lengths, at every offset, the buffers large enough not to move. */
static void test_pending_congruent(void)
{
	struct where_sink ws = { 0 };
	struct dd_pack_sink sink = { "where.pack", where_create, where_append,
				     NULL, NULL, &ws };
	struct dd_pack_writer *w = NULL;
	struct dd_buf lent, spare;
	uint8_t *chunk = malloc(70000);
	struct dd_id id;
	int runs = 0;

	CHECK(chunk != NULL);
	if (!chunk)
		return;
	memset(chunk, 'c', 70000);
	dd_buf_init(&lent, 0);
	dd_buf_init(&spare, 0);
	CHECK_EQ(dd_buf_reserve(&lent, 1 << 20), 0);
	CHECK_EQ(dd_buf_reserve(&spare, 1 << 20), 0);
	CHECK_EQ(dd_pack_writer_open(&w, &sink, 9), 0);
	if (!w) {
		free(chunk);
		return;
	}
	dd_pack_writer_lend_buf(w, &lent);
	for (int i = 0; i < 90; i++) {
		uint32_t n = 1 + (uint32_t)(i * 7919u % 70000u);

		dd_sha256(&id, chunk, n);
		CHECK_EQ(dd_pack_writer_append(w, &id, DD_COMP_NONE, n, chunk,
					       n, NULL), 0);
		if (i % 3 == 0) {
			CHECK_EQ(dd_pack_writer_sync(w), 0);
			runs++;
		} else if (i % 3 == 1) {
			CHECK_EQ(dd_pack_writer_detach(w, &spare), 0);
			CHECK_EQ(dd_pack_writer_write_detached(w, &spare), 0);
			dd_pack_writer_detached_done(w, spare.len, 0);
			runs++;
		}
	}
	CHECK_EQ(dd_pack_writer_append(w, &id, DD_COMP_NONE, 5, chunk, 5,
				       NULL), 0);
	CHECK_EQ(dd_pack_writer_seal(w), 0);
	runs++;
	CHECK_EQ(ws.appends, runs);
	CHECK_EQ(ws.congruent, runs);
	dd_buf_release(&lent);
	dd_buf_release(&spare);
	free(chunk);
}

/* A sink whose appends fail as a full disk does. */
static int full_create(void *ctx, const void *hdr, size_t len)
{
	(void)ctx, (void)hdr, (void)len;
	return 0;
}

static int full_append(void *ctx, const void *data, size_t len)
{
	(void)ctx, (void)data, (void)len;
	return dd_error_set(-ENOSPC, "cannot append: No space left on device");
}

/* After a failed append every later call names the first failure's
 * cause: a collection that filled the disk said only that its pack
 * "failed earlier and cannot be sealed". */
static void test_failed_says_why(void)
{
	struct dd_pack_sink sink = { "full.pack", full_create, full_append,
				     NULL, NULL, NULL };
	struct dd_pack_writer *w = NULL;
	struct dd_chunk_loc loc;
	struct dd_id id;
	uint8_t data[100];

	memset(data, 7, sizeof(data));
	dd_sha256(&id, data, sizeof(data));
	CHECK_EQ(dd_pack_writer_open(&w, &sink, 5), 0);
	if (!w)
		return;
	CHECK_EQ(dd_pack_writer_append(w, &id, DD_COMP_NONE, sizeof(data),
				       data, sizeof(data), &loc), 0);
	CHECK_EQ(dd_pack_writer_sync(w), -ENOSPC);
	CHECK_EQ(dd_pack_writer_sync(w), -ENOSPC);
	CHECK(strstr(dd_error_last(), "No space left on device") != NULL);
	CHECK_EQ(dd_pack_writer_append(w, &id, DD_COMP_NONE, sizeof(data),
				       data, sizeof(data), &loc), -ENOSPC);
	CHECK(strstr(dd_error_last(), "No space left on device") != NULL);
	CHECK_EQ(dd_pack_writer_seal(w), -ENOSPC);
	CHECK(strstr(dd_error_last(), "cannot be sealed") != NULL);
	CHECK(strstr(dd_error_last(), "No space left on device") != NULL);
}

int main(void)
{
	fixture_chunks(fx, fx_text, fx_bytes);
	make_tmpdir();
	UNIT_RUN(test_golden_sealed);
	UNIT_RUN(test_golden_torn);
	UNIT_RUN(test_golden_bad_trailer);
	UNIT_RUN(test_trailer_mismatch);
	UNIT_RUN(test_scan_edges);
	UNIT_RUN(test_scan_truncations);
	UNIT_RUN(test_scan_flips);
	UNIT_RUN(test_read_record);
	UNIT_RUN(test_loc_codec);
	UNIT_RUN(test_lend_buf);
	UNIT_RUN(test_pending_congruent);
	UNIT_RUN(test_detached_write);
	UNIT_RUN(test_failed_says_why);
	cleanup_tmpdir();
	UNIT_DONE();
}
