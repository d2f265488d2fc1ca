#!/usr/bin/env bash
# Group commit with big uploads (docs/GROUP-COMMIT.md, "Big groups
# commit in place"), every sync made slow: a group of
# STORE_GROUP_OVERLAP_BYTES (256 KiB) of pack bytes or more is made
# durable holding the ingest lock, from the pack writer's own buffer, as
# one upload a sync was. 4 connections sending bundles of 512 KiB at once
# are therefore acknowledged by one commit each (grouping them cost more
# server CPU than the syncs it saved), the same chunk sent by all of them
# is still stored once, and a kill -9 in the middle of concurrent big
# uploads loses no acknowledged chunk.
. "$(dirname "$0")/lib.sh"

# Every fdatasync of the server made 40 ms slower (an LD_PRELOAD shim),
# so that uploads surely arrive while a commit runs: with overlapping
# commits they would join its successor's group.
cat > "$T/slowsync.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
int fdatasync(int fd)
{
	static int (*real)(int);
	struct timespec ts = { 0, 40 * 1000 * 1000 };

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	nanosleep(&ts, NULL);
	return real(fd);
}
C
shim_preload slowsync

R=$T/repo
repo_init "$R"
LD_PRELOAD=$PRELOAD server_start "$R" || exit 1
TOK=$(token_add "$R" up)
OPS=$(token_add "$R" ops --admin)

# The uploader (tests/e2e/group_upload.py), bundles of 8 fresh chunks of
# 64 KiB (stored raw: 512 KiB and 384 bytes of pack records a bundle), at
# most 2,000 a connection when killing.
up() { python3 "$E2E_DIR/group_upload.py" "$@" 8 65536 2000; }

. "$E2E_DIR/group_commit_lib.sh"

# ---- 4 connections, 12 big uploads each
res=$(up count "$URL" "$CA" "$TOK" 4 12 "$T/acked1" 0 0)
check_eq "48 big uploads over 4 connections all answered 200" 48 "$(json_get "$res" ok)"
check_eq "their 384 chunks were all stored" 384 "$(json_get "$res" stored)"
api "$OPS" GET /metrics > "$T/metrics.txt"
commits=$(metric dedup_ingest_commits_total)
members=$(metric dedup_ingest_committed_total)
echo "# 48 big uploads: ${commits:-?} commits (pack syncs), ${members:-?} acknowledged by them"
check_eq "every upload was acknowledged by one commit" 48 "${members:-none}"
check_eq "each big upload was committed on its own (one sync each)" 48 "${commits:-none}"

# ---- the same big chunk sent by all 4 at once: stored once, still
same_chunk_once 4 600000 385 "big chunk"

# ---- kill -9 in the middle of concurrent big uploads
kill_mid_uploads 4 20
finish
