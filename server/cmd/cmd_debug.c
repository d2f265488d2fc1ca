/*
 * cmd_debug.c - `dedup-server debug`, for tests and for people looking
 * into a repository; not listed in the help. The server must be stopped.
 *   list-chunks    the chunk ids of the index, sorted, one a line
 *   list-records   every record of every pack: id, pack, offset, plain
 *                  and stored length (the packs as they are, duplicates
 *                  and unindexed records included)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "pack.h"
#include "packio.h"
#include "storage.h"
#include "store.h"
#include "util.h"

const char cmd_debug_usage[] =
	"usage: dedup-server debug list-chunks --repo DIR\n"
	"       dedup-server debug list-records --repo DIR\n";

static int debug_chunk_cb(void *payload, const uint8_t *key, size_t klen,
			  const uint8_t *val, size_t vlen)
{
	char hex[DD_ID_HEX_LEN + 1];

	(void)payload;
	(void)val;
	(void)vlen;
	if (klen != 1 + DD_ID_LEN || key[0] != 'c')
		return 0;
	dd_hex_encode(hex, key + 1, DD_ID_LEN);
	puts(hex);
	return 0;
}

static int debug_record_cb(void *payload, const struct dd_id *id,
			   const struct dd_chunk_loc *loc,
			   const uint8_t *stored)
{
	char hex[DD_ID_HEX_LEN + 1];

	(void)payload;
	(void)stored;
	dd_id_to_hex(hex, id);
	printf("%s %016" PRIx64 " %" PRIu64 " %u %u\n", hex, loc->pack_seq,
	       loc->offset, loc->plain_len, loc->stored_len);
	return 0;
}

static int debug_run(const char *what, const char *repo)
{
	struct store *st = NULL;
	uint64_t *seqs = NULL;
	size_t n = 0, i;
	bool sealed;
	int rc;

	dd_error_clear();
	rc = repo_store_open(&st, repo, STORE_OPEN_READONLY);
	if (rc < 0)
		return rc;
	if (strcmp(what, "list-chunks") == 0) {
		rc = store_index_foreach(st, debug_chunk_cb, NULL);
	} else {
		rc = store_pack_seqs(st, &seqs, &n);
		for (i = 0; rc == 0 && i < n; i++) {
			rc = packio_scan(store_backend(st), seqs[i],
					 debug_record_cb, NULL, &sealed);
			if (rc < 0)
				log_warning("%s", log_reason(rc));
			rc = 0;
		}
		free(seqs);
	}
	store_close(st);
	return rc;
}

int cmd_debug(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL, *what;
	int c, fd = -1, rc;

	if (argc < 2 || (strcmp(argv[1], "list-chunks") != 0 &&
			 strcmp(argv[1], "list-records") != 0)) {
		fputs(cmd_debug_usage, stderr);
		return CMD_USAGE;
	}
	what = argv[1];
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'h':
			fputs(cmd_debug_usage, stdout);
			return CMD_OK;
		default:
			fputs(cmd_debug_usage, stderr);
			return CMD_USAGE;
		}
	}
	if (optind != argc - 1 || !repo) {
		fputs(cmd_debug_usage, stderr);
		return CMD_USAGE;
	}
	if (cmd_lock_repo(&fd, repo, "debug") < 0)
		return CMD_ERROR;
	rc = debug_run(what, repo);
	close(fd);
	if (rc < 0) {
		log_error("%s", log_reason(rc));
		return CMD_ERROR;
	}
	return CMD_OK;
}
