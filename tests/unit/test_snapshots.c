/* test_snapshots.c - the table of snapshots (server/repo/snapshots.c)
 * found by id through its sorted by-id index (snap_find, O(log n)) after
 * every way in and out: loading a directory at start, adopting a
 * manifest (as from the pool), removing one, dropping one the pool forgot.
 * A reference set of ids is kept beside the table and every id of it,
 * and ids that were never there or are gone, are asked after each step;
 * many manifests share their write time, so the table's order (written
 * time, then id) and the by-id order differ. Links the server's objects. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "unit.h"
#include "snapshots.h"

#define N_LOADED 1500
#define N_ADOPTED 300
#define N_MAX (N_LOADED + N_ADOPTED)

static char dir[] = "/tmp/dedup-snapshots.XXXXXX";
static char ids[N_MAX][65];
static int64_t written[N_MAX];
static int present[N_MAX];
static unsigned long long rng = 88172645463325252ULL;

static unsigned long long next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void make_id(char *out)
{
	for (int i = 0; i < 64; i++)
		out[i] = "0123456789abcdef"[next_rand() % 16];
	out[64] = '\0';
}

static int manifest(char *buf, size_t bufsz, int k)
{
	return snprintf(buf, bufsz, "{\"version\": 1, \"id\": \"%s\", "
			"\"client\": \"c%d\", \"host\": \"h\", \"paths\": "
			"[\"/x\"], \"unix_time\": 1700000000, "
			"\"bytes_total\": %d, \"catalog\": [], "
			"\"written_ns\": %lld}", ids[k], k % 7, k,
			(long long)written[k]);
}

/* After each step: every id the reference set holds is found, every
 * other is not, the count agrees and the walk is in write order. */
struct walk {
	int64_t last_ns;
	char last_id[65];
	size_t n;
	int ordered;
};

static int walk_cb(void *payload, const struct snapshots_item *it)
{
	struct walk *w = payload;

	if (w->n && (it->written_ns < w->last_ns ||
		     (it->written_ns == w->last_ns &&
		      strcmp(it->id, w->last_id) <= 0)))
		w->ordered = 0;
	w->last_ns = it->written_ns;
	snprintf(w->last_id, sizeof(w->last_id), "%s", it->id);
	w->n++;
	return 0;
}

static void check_table(struct snapshots *s, int upto)
{
	struct walk w = { 0, "", 0, 1 };
	uint64_t count = 0, bytes = 0, catalog = 0;
	int k, want = 0, wrong = 0;
	char absent[65];

	for (k = 0; k < upto; k++) {
		want += present[k];
		if (snapshots_has(s, ids[k]) != (present[k] != 0))
			wrong++;
	}
	CHECK_EQ(wrong, 0);
	for (k = 0; k < 200; k++) {
		make_id(absent);
		wrong += snapshots_has(s, absent);
	}
	CHECK_EQ(wrong, 0);
	CHECK_EQ(snapshots_foreach(s, walk_cb, &w), 0);
	CHECK_EQ(w.n, want);
	CHECK(w.ordered);
	snapshots_totals(s, &count, &bytes, &catalog);
	CHECK_EQ(count, want);
}

static void test_table(void)
{
	struct snapshots *s = NULL;
	char path[256], buf[512], *out = NULL;
	size_t outlen = 0;
	int k, len;
	FILE *f;

	for (k = 0; k < N_MAX; k++) {
		make_id(ids[k]);
		/* three manifests a write time: ties ordered by id */
		written[k] = 1700000000000000000LL + (int64_t)(k / 3) * 1000;
	}
	/* a directory of manifests, loaded at start */
	for (k = 0; k < N_LOADED; k++) {
		snprintf(path, sizeof(path), "%s/snapshots/%.64s.json", dir,
			 ids[k]);
		len = manifest(buf, sizeof(buf), k);
		f = fopen(path, "w");
		CHECK(f != NULL);
		if (!f)
			return;
		CHECK_EQ(fwrite(buf, 1, (size_t)len, f), (size_t)len);
		fclose(f);
		present[k] = 1;
	}
	CHECK_EQ(snapshots_open(&s, dir), 0);
	if (!s)
		return;
	check_table(s, N_LOADED);
	/* adopted one by one, as from the pool; again: known already */
	for (k = N_LOADED; k < N_MAX; k++) {
		len = manifest(buf, sizeof(buf), k);
		CHECK_EQ(snapshots_adopt(s, ids[k], buf, (size_t)len), 1);
		present[k] = 1;
	}
	len = manifest(buf, sizeof(buf), N_LOADED);
	CHECK_EQ(snapshots_adopt(s, ids[N_LOADED], buf, (size_t)len), 0);
	check_table(s, N_MAX);
	/* removed: every fifth of the loaded and of the adopted */
	for (k = 0; k < N_MAX; k += 5) {
		CHECK_EQ(snapshots_remove(s, ids[k]), 0);
		present[k] = 0;
	}
	CHECK_EQ(snapshots_remove(s, ids[0]), -ENOENT);
	check_table(s, N_MAX);
	/* dropped as the pool forgot them, unless written too lately */
	for (k = 1; k < N_MAX; k += 7) {
		int dropped = snapshots_drop_local(s, ids[k], written[k]);

		CHECK_EQ(dropped, 0);      /* written at the bound: kept */
		dropped = snapshots_drop_local(s, ids[k], written[k] + 1);
		CHECK_EQ(dropped, present[k]);
		present[k] = 0;
	}
	check_table(s, N_MAX);
	/* a remaining one read back whole, a dropped one not */
	for (k = 2; !present[k]; k++)
		;
	CHECK_EQ(snapshots_get(s, ids[k], "admin", true, &out, &outlen), 0);
	CHECK(out && strstr(out, ids[k]) != NULL);
	free(out);
	out = NULL;
	CHECK_EQ(snapshots_get(s, ids[1], "admin", true, &out, &outlen),
		 -ENOENT);
	free(out);
	snapshots_free(s);
	/* loaded again from what the steps left in the directory */
	s = NULL;
	CHECK_EQ(snapshots_open(&s, dir), 0);
	if (s)
		check_table(s, N_MAX);
	snapshots_free(s);
}

/* Ids a failed create may have left in the pool ("unsure": "<id> <time>"
 * lines read back at start; a line that is no id, or without its time,
 * skipped) are never adopted. */
static void test_unsure(void)
{
	struct snapshots *s = NULL;
	json_t *m;
	char path[256], buf[512];
	int len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/snapshots/unsure", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	make_id(ids[0]);
	make_id(ids[1]);
	fprintf(f, "not an id\n%s 1800000000\n%.63sX 5\n%s\n", ids[0],
		ids[1], ids[1]);
	fclose(f);
	written[0] = written[1] = 1800000000000000000LL;
	CHECK_EQ(snapshots_open(&s, dir), 0);
	if (!s)
		return;
	len = manifest(buf, sizeof(buf), 0);
	CHECK_EQ(snapshots_adopt(s, ids[0], buf, (size_t)len), 0);
	CHECK(!snapshots_has(s, ids[0]));
	snprintf(path, sizeof(path), "%s/snapshots/%.64s.json", dir, ids[0]);
	CHECK(access(path, F_OK) != 0);         /* not left in the directory */
	len = manifest(buf, sizeof(buf), 1);
	CHECK_EQ(snapshots_adopt(s, ids[1], buf, (size_t)len), 1);
	CHECK(snapshots_has(s, ids[1]));
	/* an import of the noted id (dedup-server sync) is refused: its
	 * failed copy is still being removed (the store is not reached) */
	m = json_pack("{s:s}", "id", ids[0]);
	CHECK(m != NULL);
	CHECK_EQ(snapshots_import(s, NULL, NULL, "c0", m), -EAGAIN);
	json_decref(m);
	/* no pool here: nothing to remove, the note stays */
	CHECK_EQ(snapshots_sweep_unsure(s), 0);
	snapshots_free(s);
}

int main(void)
{
	char sub[128];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sub, sizeof(sub), "%s/snapshots", dir);
	if (mkdir(sub, 0700) < 0) {
		perror("mkdir");
		return 1;
	}
	UNIT_RUN(test_table);
	snprintf(sub, sizeof(sub), "rm -rf %s/snapshots/*", dir);
	if (system(sub) != 0)
		fprintf(stderr, "cannot empty %s/snapshots\n", dir);
	UNIT_RUN(test_unsure);
	snprintf(sub, sizeof(sub), "rm -rf %s", dir);
	if (system(sub) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	UNIT_DONE();
}
