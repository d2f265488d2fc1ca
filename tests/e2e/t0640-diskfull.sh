#!/usr/bin/env bash
# Disk full: a repository on a size-limited tmpfs. Ingest that does not fit
# answers 507 with a clear message, acknowledges nothing it did not store
# (the failed chunks stay missing, check stays clean), the server keeps
# serving, and everything resumes once there is space again. Needs root
# (mount -t tmpfs); skipped with a note otherwise.
. "$(dirname "$0")/lib.sh"

MNT=$T/small
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=24m dedup-test "$MNT" 2>"$T/mount.err"; then
	ok "skipped: cannot mount a tmpfs here ($(head -c 200 "$T/mount.err"))"
	finish
fi
h6_cleanup() {
	signal_tracked TERM
	umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	cleanup
}
trap h6_cleanup EXIT

R=$MNT/repo
repo_init "$R"
A=$(token_add "$R" alice)
server_start "$R" || exit 1
SRC=$T/tree
mkdir -p "$SRC"
for i in 1 2 3; do prand "full$i" 10000000 > "$SRC/big$i.bin"; done
echo "small" > "$SRC/small.txt"

# 1. a backup that does not fit
agent "$A" backup --json "$SRC" > "$T/out1" 2> "$T/err1"
check_eq "the backup fails with exit 1" 1 $?
check "the error says the repository disk is full" grep -q "repository disk is full" "$T/err1"
check "and gives the status 507" grep -q "507" "$T/err1"
check "no snapshot id was printed" test ! -s "$T/out1"
check_eq "the server keeps serving" 200 "$(api_status "" GET /api/v1/health)"

# 2. one chunk that does not fit: 507, and it stays missing
prand onechunk 3000000 > "$T/one.bin"
dd if=/dev/zero of="$MNT/filler" bs=1M count=100 2>/dev/null
OID=$(sha256sum "$T/one.bin" | cut -c1-64)
bundle_raw "$OID" "$T/one.bin" > "$T/one.bundle"
api "$A" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/one.bundle" > "$T/one.reply"
check_eq "an upload on a full disk gets 507" 507 "$(tail -n1 "$T/one.reply")"
check "with a JSON error naming the cause" grep -q '"error":"repository disk is full' "$T/one.reply"
hexbytes "$OID" > "$T/one.id"
api "$A" POST /api/v1/chunks/missing -H 'Content-Type: application/octet-stream' --data-binary @"$T/one.id" > "$T/miss.reply"
check_eq "the chunk it could not store is still missing" 01 "$(head -c1 "$T/miss.reply" | xxd -p)"
check_eq "no snapshot exists" "[]" "$(api "$A" GET /api/v1/snapshots | head -n1)"

# 3. check on the full disk says what is wrong (LevelDB writes when it
# opens the index)
server_stop TERM
"$SERVER" check --repo "$R" > "$T/check0" 2>&1
check_eq "check on a full disk exits 1" 1 $?
check "and says the disk is full" grep -q "the disk is full" "$T/check0"

# 4. space returns: what was acknowledged is intact, and everything
# resumes
rm -f "$MNT/filler"
mount -o remount,size=120m "$MNT"
"$SERVER" check --repo "$R" --read-data > "$T/check1" 2>&1
check_eq "check --read-data of what the full disk kept is clean" 0 $?
grep -E '^(problem|damaged|missing)' "$T/check1" | head -n 5
server_start "$R" || exit 1
api "$A" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/one.bundle" > "$T/one.reply"
check_eq "the same upload now succeeds" 200 "$(tail -n1 "$T/one.reply")"
out=$(agent "$A" backup --json "$SRC" 2>"$T/err2")
check_eq "the backup now succeeds" 0 $?
ID=$(json_get "$out" snapshot_id)
agent "$A" restore "$ID" --target "$T/r" 2>/dev/null
check "and restores bit-identical" diff -r "$SRC" "$T/r/${SRC#/}"
server_stop TERM
"$SERVER" check --repo "$R" --read-data > "$T/check2" 2>&1
check_eq "check --read-data afterwards is clean" 0 $?
finish
