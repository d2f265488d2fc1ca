#!/usr/bin/env bash
# A backup whose pipeline fails part-way (the server is killed, or the token
# is revoked, while chunks are in flight) stops with exit 1 and an error
# line, creates no snapshot from partial data, and a later backup of the
# same tree succeeds and restores.
. "$(dirname "$0")/lib.sh"
# Retries would only delay the failure this script is about (t0620 tests
# that agents ride out a server restart).
export DEDUP_AGENT_RETRIES=0

SRC=$T/tree
mkdir -p "$SRC"
for i in 1 2 3 4 5 6; do prand "abort$i" $((64 * 1024 * 1024)) > "$SRC/part$i.bin"; done

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
server_start "$T/repo" || exit 1

# wait_for_chunks BYTES: until the packs hold more than BYTES (bounded).
# Not the stats API: while uploads are stored a stats request may take
# seconds, long enough for the whole backup to finish.
packs_bytes() { du -sb "$T/repo/packs" | cut -f1; }
wait_for_chunks() {
	local i
	for i in $(seq 1 1000); do
		[ "$(packs_bytes)" -gt "$1" ] && return 0
		sleep 0.02
	done
	return 1
}
snapshot_count() {
	api "$1" GET /api/v1/snapshots | head -n1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# 1. the server dies with SIGKILL in the middle of the upload
before=$(packs_bytes)
agent "$A" backup "$SRC" > "$T/out1" 2> "$T/err1" &
apid=$!
check "chunks start arriving" wait_for_chunks "$before"
server_stop KILL
timeout 300 tail --pid="$apid" -f /dev/null
wait "$apid"; rc=$?
check_eq "the backup exits 1" 1 "$rc"
check "it says why on stderr" grep -q '^error: ' "$T/err1"
check "it printed no snapshot id" test ! -s "$T/out1"
server_start "$T/repo" || exit 1
check_eq "no snapshot was created" 0 "$(snapshot_count "$A")"

# 2. the token is revoked in the middle of the upload. Bob's tree is his
# own: had the first case stored most of $SRC before the kill, a backup of
# it would have little left to send and could end before the revoke.
B=$(token_add "$T/repo" bob)
SRCB=$T/tree-bob
mkdir -p "$SRCB"
for i in 1 2 3 4; do prand "abort-bob$i" $((64 * 1024 * 1024)) > "$SRCB/part$i.bin"; done
before=$(packs_bytes)
agent "$B" backup "$SRCB" > "$T/out2" 2> "$T/err2" &
apid=$!
wait_for_chunks "$before"
"$SERVER" token revoke --repo "$T/repo" bob >/dev/null
timeout 300 tail --pid="$apid" -f /dev/null
wait "$apid"; rc=$?
check_eq "the backup with a revoked token exits 1" 1 "$rc"
check "it names the token problem" grep -qi 'token' "$T/err2"
check "it printed no snapshot id" test ! -s "$T/out2"
check_eq "bob's revoked token sees nothing" 401 "$(api_status "$B" GET /api/v1/snapshots)"
check_eq "still no snapshot in the repository" 0 "$(snapshot_count "$A")"

# 3. a later backup completes and restores
out=$(agent "$A" backup --json "$SRC")
ID=$(json_get "$out" snapshot_id)
check "a later backup succeeds" grep -qE '^[0-9a-f]{64}$' <<<"$ID"
agent "$A" restore "$ID" --target "$T/r" 2>/dev/null
check "and restores bit-identical" diff -r "$SRC" "$T/r/${SRC#/}"
finish
