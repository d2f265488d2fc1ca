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
${CC:-cc} -shared -fPIC -o "$T/slowsync.so" "$T/slowsync.c" -ldl ||
	{ echo "# cannot build the slow-sync shim"; exit 1; }
PRELOAD=$T/slowsync.so
# Under the sanitizers the ASan runtime must come first.
if grep -qa __asan_init "$SERVER"; then
	PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $PRELOAD"
fi

R=$T/repo
repo_init "$R"
LD_PRELOAD=$PRELOAD server_start "$R" || exit 1
TOK=$(token_add "$R" up)
OPS=$(token_add "$R" ops --admin)

# The uploader (tests/e2e/group_upload.py), bundles of 8 fresh chunks of
# 64 KiB (stored raw: 512 KiB and 384 bytes of pack records a bundle), at
# most 2,000 a connection when killing.
up() { python3 "$E2E_DIR/group_upload.py" "$@" 8 65536 2000; }

metric() { # NAME: its value in $T/metrics.txt
	awk -v n="$1" '$1 == n { printf "%d\n", $2 }' "$T/metrics.txt"
}

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
prand samechunk 600000 > "$T/same.bin"
SID=$(sha256sum "$T/same.bin" | cut -c1-64)
bundle_raw "$SID" "$T/same.bin" > "$T/same.bundle"
pids=()
for k in $(seq 1 4); do
	( api "$TOK" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/same.bundle" > "$T/same.$k" ) &
	pids+=($!)
done
wait "${pids[@]}"
stored=0; okn=0
for k in $(seq 1 4); do
	[ "$(tail -n1 "$T/same.$k")" = 200 ] && okn=$((okn + 1))
	stored=$((stored + $(json_get "$(head -n1 "$T/same.$k")" stored)))
done
check_eq "4 simultaneous uploads of one big chunk all succeed" 4 "$okn"
check_eq "exactly one of them stored it" 1 "$stored"
save stats "$OPS" GET /api/v1/stats
check_eq "the chunk counter counts it once" 385 "$(json_get "$(cat "$T/stats.json")" chunks)"

# ---- kill -9 in the middle of concurrent big uploads
res=$(up kill "$URL" "$CA" "$TOK" 4 0 "$T/acked2" "$SERVER_PID" 20)
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
check "the server was killed after 20 acknowledged uploads ($res)" \
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
