/*
 * fuzz_snapshot.c - POST /api/v1/snapshots as snapshots_create sees it:
 * the request JSON's validation, then the catalog it names read from the
 * store and checked. The store holds one small catalog (a directory, a
 * file of one chunk, a symlink) and that chunk, so a request naming the
 * catalog (see the seeds) reaches the catalog checks and the manifest
 * write. With DD_FUZZ_PRINT=1 it prints the catalog's id.
 */
#include <dirent.h>
#include <stdint.h>
#include "catalog.h"
#include "compress.h"
#include "fuzz_srv.h"
#include "log.h"
#include "repo.h"
#include "snapshots.h"
#include "store.h"

static char repo[4200];
static struct store *st;
static struct snapshots *snaps;
static unsigned created;

static void fz_add_chunk(const void *p, size_t n, struct dd_id *id)
{
	struct dd_bundle_record rec;
	uint32_t stored, dups;

	dd_sha256(id, p, n);
	memset(&rec, 0, sizeof(rec));
	rec.id = *id;
	rec.flags = DD_COMP_NONE;
	rec.plain_len = (uint32_t)n;
	rec.stored_len = (uint32_t)n;
	rec.data = p;
	if (store_ingest(st, NULL, &rec, 1, &stored, &dups) < 0)
		abort();
}

static void fz_setup(void)
{
	static const char hello[] = "hello, fuzzer\n";
	struct dd_chunk_ref ref;
	struct dd_entry e;
	struct dd_buf cat;
	struct dd_id cid;
	char hex[DD_ID_HEX_LEN + 1];

	snprintf(repo, sizeof(repo), "%s", fz_repo("snapshot"));
	if (store_open(&st, repo) < 0 || snapshots_open(&snaps, repo) < 0)
		abort();
	fz_add_chunk(hello, sizeof(hello) - 1, &ref.id);
	ref.plain_len = sizeof(hello) - 1;
	dd_buf_init(&cat, 0);
	dd_catalog_begin(&cat);
	memset(&e, 0, sizeof(e));
	e.type = DD_ENTRY_DIR;
	e.mode = 0755;
	e.path = "fz";
	e.path_len = 2;
	if (dd_catalog_add(&cat, &e) < 0)
		abort();
	e.type = DD_ENTRY_FILE;
	e.mode = 0644;
	e.path = "fz/a";
	e.path_len = 4;
	e.size = ref.plain_len;
	e.nchunks = 1;
	e.chunks = &ref;
	if (dd_catalog_add(&cat, &e) < 0)
		abort();
	memset(&e, 0, sizeof(e));
	e.type = DD_ENTRY_SYMLINK;
	e.mode = 0777;
	e.path = "fz/l";
	e.path_len = 4;
	e.link = "a";
	e.link_len = 1;
	if (dd_catalog_add(&cat, &e) < 0)
		abort();
	fz_add_chunk(cat.data, cat.len, &cid);
	dd_buf_release(&cat);
	if (getenv("DD_FUZZ_PRINT")) {
		dd_id_to_hex(hex, &cid);
		fprintf(stderr, "catalog %s\n", hex);
		dd_id_to_hex(hex, &ref.id);
		fprintf(stderr, "file chunk %s\n", hex);
	}
}

/* Keeps the table and the directory small over a long run. */
static void fz_reset_snapshots(void)
{
	char dir[4400], path[4700];
	struct dirent *de;
	DIR *d;

	snapshots_free(snaps);
	snprintf(dir, sizeof(dir), "%s/%s", repo, REPO_SNAPSHOTS);
	d = opendir(dir);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	if (snapshots_open(&snaps, repo) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = NULL;
	size_t len = 0;

	if (!st)
		fz_setup();
	if (snapshots_create(snaps, st, NULL, "fuzz", data, size, &out, &len) == 0) {
		free(out);
		if (++created % 256 == 0)
			fz_reset_snapshots();
	}
	return 0;
}
