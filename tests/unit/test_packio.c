/*
 * test_packio.c - packs through a storage backend (server/store/packio.h)
 * on the directory backend: the pack written through the backend is byte
 * for byte the golden sample (the format and the file name are unchanged),
 * each sync is one durable append of the whole batch, the list finds packs
 * by name only, scan / salvage / record reads go through backend readers,
 * and a pack sequence number cannot be taken twice (put-once).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "fixtures.h"
#include "golden.h"
#include "pack.h"
#include "packio.h"
#include "unit.h"

static struct fixture_chunk fx[FIXTURE_NCHUNKS];
static char fx_text[FIXTURE_TEXT_LEN + 1];
static uint8_t fx_bytes[256];
static char tmpdir[256];
static struct backend *be;

static int count_cb(void *payload, const struct dd_id *id,
		    const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	int *n = payload;

	(void)id;
	(void)stored;
	if (*n < FIXTURE_NCHUNKS && loc->stored_len == fx[*n].stored_len &&
	    memcmp(stored, fx[*n].stored, loc->stored_len) == 0)
		(*n)++;
	else
		*n += 100;
	return 0;
}

static int salvage_cb(void *payload, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	(void)count_cb(payload, id, loc, stored);
	return DD_PACK_SALVAGE_TAKEN;
}

/* The golden sealed pack (seq 0x1234) written through the backend. */
static void test_golden_through_backend(void)
{
	struct dd_pack_writer *w = NULL;
	struct dd_chunk_loc loc;
	char path[512];
	uint8_t *data = NULL;
	size_t len = 0;
	int i;

	CHECK_EQ(packio_writer_new(be, 0x1234, &w), 0);
	if (!w)
		return;
	for (i = 0; i < FIXTURE_NCHUNKS; i++)
		CHECK_EQ(dd_pack_writer_append(w, &fx[i].id, fx[i].flags,
					       fx[i].plain_len, fx[i].stored,
					       fx[i].stored_len, &loc), 0);
	/* nothing reaches the object before the sync: one append per batch */
	snprintf(path, sizeof(path), "%s/packs/0000000000001234.pack", tmpdir);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	CHECK_EQ(len, DD_PACK_HEADER_LEN);
	free(data);
	CHECK_EQ(dd_pack_writer_sync(w), 0);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	CHECK_EQ(len, 530);
	free(data);
	CHECK_EQ(dd_pack_writer_seal(w), 0);
	CHECK_EQ(dd_read_file(path, 1 << 20, &data, &len), 0);
	CHECK(data && golden_same("pack-v1-sealed.pack", data, len));
	free(data);

	/* the sequence number is taken: put-once */
	w = NULL;
	CHECK_EQ(packio_writer_new(be, 0x1234, &w), -EEXIST);
	CHECK(w == NULL);
}

static void test_read_paths(void)
{
	struct backend_reader *rd = NULL;
	struct dd_chunk_loc loc = { 0x1234, 16, 0, 0, 0 };
	struct dd_buf out;
	uint64_t *seqs = NULL, size = 0;
	size_t n = 0;
	bool sealed = false;
	char path[512];
	int seen = 0;

	/* a file that is not a pack by name is not listed */
	snprintf(path, sizeof(path), "%s/packs/notes.txt", tmpdir);
	CHECK_EQ(dd_write_file_atomic(path, "x", 1, 0644), 0);
	CHECK_EQ(packio_seqs(be, &seqs, &n), 0);
	CHECK_EQ(n, 1);
	CHECK(n == 1 && seqs[0] == 0x1234);
	free(seqs);
	CHECK_EQ(packio_size(be, 0x1234, &size), 0);
	CHECK_EQ(size, 530u + 8u + 3u * 52u + 44u);

	CHECK_EQ(packio_scan(be, 0x1234, count_cb, &seen, &sealed), 0);
	CHECK(sealed);
	CHECK_EQ(seen, FIXTURE_NCHUNKS);
	seen = 0;
	CHECK_EQ(packio_salvage(be, 0x1234, 0, salvage_cb, &seen), 0);
	CHECK_EQ(seen, FIXTURE_NCHUNKS);

	dd_buf_init(&out, 0);
	CHECK_EQ(backend_reader_open(be, "packs/0000000000001234.pack", &rd), 0);
	loc.flags = fx[1].flags;
	loc.plain_len = fx[1].plain_len;
	loc.stored_len = fx[1].stored_len;
	loc.offset = 77;
	CHECK_EQ(packio_read_record(rd, &fx[1].id, &loc, &out), 0);
	CHECK(out.len == fx[1].stored_len &&
	      memcmp(out.data, fx[1].stored, out.len) == 0);
	/* the wrong id at that place */
	CHECK_EQ(packio_read_record(rd, &fx[0].id, &loc, &out), -EBADMSG);
	/* a record past the end of the object */
	loc.offset = 4000;
	CHECK_EQ(packio_read_record(rd, &fx[1].id, &loc, &out), -EBADMSG);
	backend_reader_close(rd);
	dd_buf_release(&out);
	CHECK_EQ(backend_reader_open(be, "packs/0000000000000099.pack", &rd),
		 -ENOENT);

	CHECK_EQ(packio_remove(be, 0x1234), 0);
	CHECK_EQ(packio_size(be, 0x1234, &size), -ENOENT);
	unlink(path);
}

/* A torn append on the directory is cut off again: the pack stays a whole
 * unsealed one. */
static void test_cut(void)
{
	char name[PACKIO_NAME_MAX];
	uint64_t size = 0;

	packio_name(name, 5);
	CHECK_EQ(strcmp(name, "packs/0000000000000005.pack"), 0);
	CHECK_EQ(backend_append(be, name, "DDPK....", 8), 0);
	CHECK_EQ(backend_truncate(be, name, 3), 0);
	CHECK_EQ(backend_stat(be, name, &size), 0);
	CHECK_EQ(size, 3);
	CHECK_EQ(backend_remove(be, name), 0);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char spec[300];

	fixture_chunks(fx, fx_text, fx_bytes);
	snprintf(tmpdir, sizeof(tmpdir), "%s/dd-packio-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(spec, sizeof(spec), "dir:%s", tmpdir);
	if (backend_open(&be, spec, NULL) < 0)
		return 1;
	UNIT_RUN(test_golden_through_backend);
	UNIT_RUN(test_read_paths);
	UNIT_RUN(test_cut);
	backend_free(be);
	rmdir(tmpdir);
	UNIT_DONE();
}
