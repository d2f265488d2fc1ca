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

metric() { # NAME: its value in $T/metrics.txt
	awk -v n="$1" '$1 == n { printf "%d\n", $2 }' "$T/metrics.txt"
}

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
prand samechunk 300000 > "$T/same.bin"
SID=$(sha256sum "$T/same.bin" | cut -c1-64)
bundle_raw "$SID" "$T/same.bin" > "$T/same.bundle"
pids=()
for k in $(seq 1 8); do
	( api "$TOK" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/same.bundle" > "$T/same.$k" ) &
	pids+=($!)
done
wait "${pids[@]}"
stored=0; okn=0
for k in $(seq 1 8); do
	[ "$(tail -n1 "$T/same.$k")" = 200 ] && okn=$((okn + 1))
	stored=$((stored + $(json_get "$(head -n1 "$T/same.$k")" stored)))
done
check_eq "8 simultaneous uploads of one chunk all succeed" 8 "$okn"
check_eq "exactly one of them stored it" 1 "$stored"
save stats "$OPS" GET /api/v1/stats
check_eq "the chunk counter counts it once" 801 "$(json_get "$(cat "$T/stats.json")" chunks)"

# ---- kill -9 in the middle of concurrent grouped uploads
res=$(up kill "$URL" "$CA" "$TOK" 8 0 "$T/acked2" "$SERVER_PID" 40)
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
check "the server was killed after 40 acknowledged uploads ($res)" \
	test "$(json_get "$res" killed)" = True
nacked=$(wc -l < "$T/acked2")
check "at least 160 chunks were acknowledged before the kill ($nacked)" test "$nacked" -ge 160
"$SERVER" debug list-chunks --repo "$R" > "$T/ids"
sort -u "$T/ids" > "$T/ids.sorted"
sort -u "$T/acked1" "$T/acked2" > "$T/acked.sorted"
missing=$(comm -23 "$T/acked.sorted" "$T/ids.sorted" | wc -l)
check_eq "every acknowledged chunk is in the index after the kill" 0 "$missing"
"$SERVER" check --repo "$R" --read-data > "$T/check.out" 2>&1
check_eq "check --read-data is clean after the kill" 0 $?

server_start "$R" || exit 1
n=0
for id in $(shuf -n 20 --random-source=<(prand pick 100000) "$T/acked2"); do
	[ "$(api_status "$TOK" GET "/api/v1/chunks/$id")" = 200 ] && n=$((n + 1))
done
check_eq "20 acknowledged chunks picked at random read back after a restart" 20 "$n"
server_stop TERM
finish
