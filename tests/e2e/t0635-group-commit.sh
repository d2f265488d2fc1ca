#!/usr/bin/env bash
# Group commit (docs/GROUP-COMMIT.md): 8 connections uploading at once
# share pack syncs (the /metrics counters show far fewer commits than
# uploads, each upload acknowledged by exactly one commit), the same chunk
# sent by all of them at once is still stored once, and a kill -9 in the
# middle of concurrent grouped uploads loses no acknowledged chunk.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
server_start "$R" || exit 1
TOK=$(token_add "$R" up)
OPS=$(token_add "$R" ops --admin)

# The uploader (tests/e2e/group_upload.py), bundles of 4 fresh chunks of
# 16 KiB, at most 5,000 a connection when killing.
up() { python3 "$E2E_DIR/group_upload.py" "$@" 4 16384 5000; }

. "$E2E_DIR/group_commit_lib.sh"

# ---- 8 connections, 25 uploads each
res=$(up count "$URL" "$CA" "$TOK" 8 25 "$T/acked1" 0 0)
check_eq "200 uploads over 8 connections all answered 200" 200 "$(json_get "$res" ok)"
check_eq "their 800 chunks were all stored" 800 "$(json_get "$res" stored)"
api "$OPS" GET /metrics > "$T/metrics.txt"
commits=$(metric dedup_ingest_commits_total)
members=$(metric dedup_ingest_committed_total)
echo "# 200 uploads: ${commits:-?} commits (pack syncs), ${members:-?} acknowledged by them"
check_eq "every upload was acknowledged by one commit" 200 "${members:-none}"
check "far fewer commits than uploads (${commits:-none} for 200: at most 140)" \
	test "${commits:-999}" -le 140 -a "${commits:-0}" -ge 1

# ---- the same chunk sent by all 8 at once: stored once, still
same_chunk_once 8 300000 801 "chunk"

# ---- kill -9 in the middle of concurrent grouped uploads
kill_mid_uploads 8 40
finish
