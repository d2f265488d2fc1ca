/*
 * fuzz_manifest.c - loading snapshot manifests from disk (the JSON the
 * server reads back at start): the input is written as one manifest file,
 * then the snapshot table is opened, listed and queried.
 */
#include <stdint.h>
#include "fuzz_srv.h"
#include "repo.h"
#include "snapshots.h"

#define FZ_ID "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char repo[4200], path[4400];
	struct snapshots *s = NULL;
	struct snapshots_query q = { .client = NULL, .limit = 10 };
	uint64_t n, bytes, catalogs;
	char *out = NULL;
	size_t len;

	if (!repo[0]) {
		snprintf(repo, sizeof(repo), "%s", fz_repo("manifest"));
		snprintf(path, sizeof(path), "%s/%s/%s.json", repo,
			 REPO_SNAPSHOTS, FZ_ID);
	}
	fz_write(path, data, size);
	if (snapshots_open(&s, repo) < 0)
		return 0;
	snapshots_totals(s, &n, &bytes, &catalogs);
	if (snapshots_list(s, &q, &out, &len) == 0)
		free(out);
	out = NULL;
	if (snapshots_get(s, FZ_ID, "fuzz", false, &out, &len) == 0)
		free(out);
	snapshots_free(s);
	return 0;
}
