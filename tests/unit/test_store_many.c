/* test_store_many.c - store_lookup_many (server/store/store_index.c): many
 * ids looked up in one pass over the index in key order answer exactly
 * what store_lookup answers for each, whatever the order and repeats of
 * the query, for ids that share their first 8 bytes (the radix sort's
 * ties), absent ids between present ones, and both ways of moving over
 * the index (stepping when the query is dense, seeking when sparse). A
 * corrupt index entry fails the batch, and a snapshot create then names
 * the first fault in catalog order, as when it looked ids up one by one
 * (server/repo/snap_create.c). Links the server's objects. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <leveldb/c.h>

#include "unit.h"
#include "catalog.h"
#include "compress.h"
#include "hash.h"
#include "ldbenv.h"
#include "pack.h"
#include "repo.h"
#include "snapshots.h"
#include "store.h"
#include "util.h"

static char dir[] = "/tmp/dedup-store-many.XXXXXX";

/* id number k: random-looking bytes; k >= 1000000 share their first 8
 * bytes (a run of ties), differing only in the last one */
static void make_id(struct dd_id *id, uint32_t k)
{
	uint64_t x = k * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < DD_ID_LEN; i++) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ull;
		id->b[i] = (uint8_t)(x >> 56);
	}
	if (k >= 1000000) {
		memset(id->b, 0x5a, 8);
		id->b[DD_ID_LEN - 1] = (uint8_t)(k - 1000000);
	}
}

/* Stores ids k for which present(k), with k + 1 plain bytes each. */
static void fill(struct store *st, uint32_t from, uint32_t to,
		 bool (*present)(uint32_t))
{
	static uint8_t data[4096];
	struct dd_bundle_record rec;
	uint32_t stored, dups;

	for (uint32_t k = from; k < to; k++) {
		if (!present(k))
			continue;
		memset(&rec, 0, sizeof(rec));
		make_id(&rec.id, k);
		rec.flags = DD_COMP_NONE;
		rec.plain_len = rec.stored_len = k % 4000 + 1;
		rec.data = data;
		CHECK_EQ(store_ingest(st, NULL, &rec, 1, &stored, &dups), 0);
	}
}

static bool even(uint32_t k) { return k % 2 == 0; }

/* Looks up ids[0..n) both ways and compares every answer. */
static void compare(struct store *st, const struct dd_id *ids, size_t n,
		    size_t *found)
{
	struct dd_chunk_loc *locs = calloc(n, sizeof(*locs)), one;
	int *rcs = calloc(n, sizeof(*rcs)), rc;
	size_t bad = 0;

	*found = 0;
	CHECK(locs && rcs);
	if (!locs || !rcs)
		goto out;
	CHECK_EQ(store_lookup_many(st, ids, n, locs, rcs), 0);
	for (size_t i = 0; i < n; i++) {
		memset(&one, 0, sizeof(one));
		rc = store_lookup(st, &ids[i], &one);
		if (rc != rcs[i] ||
		    (rc == 0 && (one.pack_seq != locs[i].pack_seq ||
				 one.offset != locs[i].offset ||
				 one.plain_len != locs[i].plain_len ||
				 one.stored_len != locs[i].stored_len)))
			bad++;
		if (rcs[i] == 0)
			(*found)++;
	}
	CHECK_EQ(bad, 0);
out:
	free(locs);
	free(rcs);
}

static void shuffle(struct dd_id *ids, size_t n, unsigned seed)
{
	srand(seed);
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		struct dd_id t = ids[i];

		ids[i] = ids[j];
		ids[j] = t;
	}
}

static struct store *st;

/* Every even id of 0..4000 stored, plus 50 of a run of ties: the whole
 * range asked (dense: the lookup steps), in a shuffled order, with
 * repeats. */
static void test_dense(void)
{
	size_t n = 0, found;
	struct dd_id *ids = malloc(9000 * sizeof(*ids));

	if (!ids)
		return;
	for (uint32_t k = 0; k < 4000; k++)
		make_id(&ids[n++], k);
	for (uint32_t k = 1000000; k < 1000100; k++)
		make_id(&ids[n++], k);
	for (uint32_t k = 0; k < 500; k += 7)
		make_id(&ids[n++], k);          /* repeats */
	shuffle(ids, n, 1);
	compare(st, ids, n, &found);
	/* 2000 even ids, 50 ties, and the even repeats among 0, 7, ..., 497 */
	CHECK_EQ(found, 2000 + 50 + 36);
	free(ids);
}

/* A few ids against the whole index (sparse: the lookup seeks). */
static void test_sparse(void)
{
	struct dd_id ids[12];
	uint32_t ks[12] = { 3998, 2, 1000098, 1000001, 5, 3999, 0, 77, 1000000,
			    1000099, 2, 123456 };
	size_t found;

	for (size_t i = 0; i < 12; i++)
		make_id(&ids[i], ks[i]);
	compare(st, ids, 12, &found);
	CHECK_EQ(found, 6);       /* 3998, 2, 1000098, 0, 1000000, 2 again */
}

/* Nothing asked: nothing done. */
static void test_empty(void)
{
	CHECK_EQ(store_lookup_many(st, NULL, 0, NULL, NULL), 0);
}

/* ---- a create's faults, in catalog order ---- */

static void chunk_of(struct dd_id *id, char *buf, size_t bufsz,
		     const char *salt, unsigned i)
{
	snprintf(buf, bufsz, "file %u of %s", i, salt);
	dd_sha256(id, buf, strlen(buf));
}

/* Stores the raw chunk. */
static void put_chunk(const struct dd_id *id, const void *p, size_t n)
{
	struct dd_bundle_record rec;
	uint32_t stored, dups;

	memset(&rec, 0, sizeof(rec));
	rec.id = *id;
	rec.flags = DD_COMP_NONE;
	rec.plain_len = rec.stored_len = (uint32_t)n;
	rec.data = p;
	CHECK_EQ(store_ingest(st, NULL, &rec, 1, &stored, &dups), 0);
}

/* Overwrites chunk id's index entry with bytes no location decodes from. */
static void corrupt_entry(const struct dd_id *id)
{
	leveldb_writebatch_t *b = leveldb_writebatch_create();
	char key[1 + DD_ID_LEN];

	key[0] = 'c';
	memcpy(key + 1, id->b, DD_ID_LEN);
	leveldb_writebatch_put(b, key, sizeof(key), "zz", 2);
	CHECK_EQ(store_index_apply(st, b), 0);
	leveldb_writebatch_destroy(b);
}

/* A catalog of 100 files f000.. with a chunk each (salt in their bytes):
 * file `skip`'s chunk is not stored, file `bad`'s entry is corrupt. The
 * create's result, its message in why. */
static int create_with(struct snapshots *snaps, const char *salt,
		       unsigned skip, unsigned bad, char *why, size_t whysz)
{
	struct dd_chunk_ref refs[100];
	struct dd_entry e;
	struct dd_buf cat;
	struct dd_id cid;
	char buf[64], path[8], hex[DD_ID_HEX_LEN + 1], body[512], *out = NULL;
	size_t outlen = 0;
	int rc;

	dd_buf_init(&cat, 0);
	CHECK_EQ(dd_catalog_begin(&cat), 0);
	for (unsigned i = 0; i < 100; i++) {
		chunk_of(&refs[i].id, buf, sizeof(buf), salt, i);
		refs[i].plain_len = (uint32_t)strlen(buf);
		if (i != skip)
			put_chunk(&refs[i].id, buf, strlen(buf));
		snprintf(path, sizeof(path), "f%03u", i);
		memset(&e, 0, sizeof(e));
		e.type = DD_ENTRY_FILE;
		e.mode = 0644;
		e.path = path;
		e.path_len = strlen(path);
		e.size = refs[i].plain_len;
		e.nchunks = 1;
		e.chunks = &refs[i];
		CHECK_EQ(dd_catalog_add(&cat, &e), 0);
	}
	corrupt_entry(&refs[bad].id);
	dd_sha256(&cid, cat.data, cat.len);
	put_chunk(&cid, cat.data, cat.len);
	dd_buf_release(&cat);
	dd_id_to_hex(hex, &cid);
	snprintf(body, sizeof(body), "{\"host\": \"h\", \"paths\": [\"/x\"], "
		 "\"catalog\": [\"%s\"], \"time_start\": %lld}", hex,
		 (long long)time(NULL));
	dd_error_clear();
	rc = snapshots_create(snaps, st, NULL, "mallory", (const uint8_t *)body,
			      strlen(body), &out, &outlen);
	snprintf(why, whysz, "%s", rc < 0 ? dd_error_last() : "");
	free(out);
	return rc;
}

static void test_create_order(void)
{
	struct snapshots *snaps = NULL;
	struct dd_chunk_loc locs[2];
	struct dd_id id, ids[2];
	char buf[64], hex[DD_ID_HEX_LEN + 1], why[600];
	int rcs[2];

	CHECK_EQ(snapshots_open(&snaps, dir), 0);
	if (!snaps)
		return;
	/* the missing chunk (file 10) comes first: named, as before */
	CHECK_EQ(create_with(snaps, "a", 10, 20, why, sizeof(why)), -ENOENT);
	chunk_of(&id, buf, sizeof(buf), "a", 10);
	dd_id_to_hex(hex, &id);
	CHECK(strstr(why, "missing chunk") && strstr(why, hex));
	/* the corrupt entry (file 10) comes first: its error */
	CHECK_EQ(create_with(snaps, "b", 20, 10, why, sizeof(why)), -EIO);
	chunk_of(&id, buf, sizeof(buf), "b", 10);
	dd_id_to_hex(hex, &id);
	CHECK(strstr(why, "corrupt") && strstr(why, hex));
	/* the batch lookup itself fails on the corrupt entry */
	ids[0] = id;
	chunk_of(&ids[1], buf, sizeof(buf), "b", 11);
	CHECK_EQ(store_lookup_many(st, ids, 2, locs, rcs), -EIO);
	snapshots_free(snaps);
}

int main(void)
{
	ldbenv_setup();         /* the tables read as the server reads them */
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (store_open(&st, dir) < 0) {
		fprintf(stderr, "store_open: %s\n", dd_error_last());
		return 1;
	}
	fill(st, 0, 4000, even);
	fill(st, 1000000, 1000100, even);
	UNIT_RUN(test_dense);
	UNIT_RUN(test_sparse);
	UNIT_RUN(test_empty);
	{
		char sd[sizeof(dir) + 16];

		snprintf(sd, sizeof(sd), "%s/%s", dir, REPO_SNAPSHOTS);
		mkdir(sd, 0700);
	}
	UNIT_RUN(test_create_order);
	store_close(st);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	UNIT_DONE();
}
