#!/usr/bin/env bash
# Garbage collection with a mark filter far too small for the repository
# (the test hook DEDUP_TEST_GC_FILTER_BYTES, docs/OPERATIONS.md): false
# positives are frequent, yet no chunk a snapshot uses is ever deleted
# (check --read-data is clean and the kept snapshot restores identical
# after each run), and two runs (each with its own seed) free nearly every
# dead chunk. Also: the report names the filter's size and rate.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
ADM=$(token_add "$R" boss --admin)

# many_files DIR TAG COUNT: COUNT files of 3-6 KiB of distinct data, each
# a chunk of its own.
many_files() {
	python3 - "$1" "$2" "$3" <<'PY'
import hashlib, os, sys
d, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(n):
    seed = hashlib.sha256(f"{tag}/{i}".encode()).digest()
    size = 3072 + seed[0] * 12
    out, k = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(seed + k.to_bytes(4, "little")).digest()
        k += 1
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(out[:size])
PY
}

# gc_line FILE REGEX: the first number of the report line matching REGEX.
gc_num() { grep -E "$2" "$1" | head -1 | grep -oE '[0-9]+' | head -1; }

many_files "$T/keep" keep 1500
many_files "$T/gone" gone 1500
server_start "$R" || exit 1
KEEP=$(json_get "$(agent "$A" backup --json "$T/keep")" snapshot_id)
GONE=$(json_get "$(agent "$A" backup --json "$T/gone")" snapshot_id)
check "two backups made" test -n "$KEEP" -a -n "$GONE"
agent "$ADM" forget "$GONE" >/dev/null
check_eq "the forgotten snapshot is gone" 404 "$(api_status "$ADM" GET "/api/v1/snapshots/$GONE")"
server_stop TERM

# restored_ok: the kept snapshot restores identical (a server for it).
restored_ok() {
	server_start "$R" || return 1
	rm -rf "$T/r"
	agent "$ADM" restore "$KEEP" --target "$T/r" >/dev/null 2>>"$T/restore.err"
	local rc=$?
	server_stop TERM
	[ $rc = 0 ] && diff -r "$T/keep" "$T/r$T/keep" >/dev/null
}

# The figures at full size: live chunks, dead ones.
"$SERVER" gc --repo "$R" --dry-run > "$T/dry" 2>&1
check_eq "a dry run exits 0" 0 $?
LIVE=$(grep -E "snapshot\(s\) use" "$T/dry" | grep -oE '[0-9]+ chunk' | grep -oE '[0-9]+')
DEAD=$(gc_num "$T/dry" "unreferenced chunk\(s\) would be removed")
echo "# $LIVE live chunk(s), $DEAD dead"
check "at least 1500 live chunks ($LIVE)" test "${LIVE:-0}" -ge 1500
check "at least 1500 dead chunks ($DEAD)" test "${DEAD:-0}" -ge 1500
check "the report names the filter" grep -qE "mark filter [0-9.]+ MiB, [0-9.]+% false positives" "$T/dry"

# A filter of 6 bits a live chunk (16 is the default): about 15% false
# positives with 11 hashes.
FB=$((LIVE * 6 / 8))
export DEDUP_TEST_GC_FILTER_BYTES=$FB
"$SERVER" gc --repo "$R" > "$T/gc1" 2>&1
check_eq "gc with a ${FB}-byte filter exits 0" 0 $?
R1=$(gc_num "$T/gc1" "unreferenced chunk\(s\) removed")
FP1=$(grep -oE "[0-9.]+% false positives" "$T/gc1" | grep -oE '^[0-9.]+')
echo "# run 1: $R1 of $DEAD dead chunk(s) removed, filter rate $FP1%"
check "its rate is high ($FP1%)" python3 -c "import sys; sys.exit(not float('$FP1') > 3)" 2>/dev/null
check "so some dead chunks stay ($R1 of $DEAD removed)" test "$R1" -lt "$DEAD"
check "but most go ($R1 of $DEAD)" test "$((R1 * 2))" -gt "$DEAD"
"$SERVER" check --repo "$R" --read-data > "$T/check1" 2>&1
check_eq "check --read-data is clean after it" 0 $?
check "the kept snapshot restores identical" restored_ok

"$SERVER" gc --repo "$R" > "$T/gc2" 2>&1
check_eq "a second run exits 0" 0 $?
R2=$(gc_num "$T/gc2" "unreferenced chunk\(s\) removed")
echo "# run 2 (another seed): $R2 more removed; $((DEAD - R1 - R2)) left"
check "the two runs free at least 90% of the dead chunks ($((R1 + R2)) of $DEAD)" \
	test "$(((R1 + R2) * 10))" -ge "$((DEAD * 9))"
"$SERVER" check --repo "$R" --read-data > "$T/check2" 2>&1
check_eq "check --read-data is clean after it" 0 $?
check "the kept snapshot restores identical" restored_ok
unset DEDUP_TEST_GC_FILTER_BYTES

# At full size the rest goes, and still nothing live.
"$SERVER" gc --repo "$R" > "$T/gc3" 2>&1
R3=$(gc_num "$T/gc3" "unreferenced chunk\(s\) removed")
check_eq "a full-size run removes the rest" "$DEAD" "$((R1 + R2 + R3))"
"$SERVER" check --repo "$R" --read-data > "$T/check3" 2>&1
check_eq "check --read-data is clean" 0 $?
check "the kept snapshot restores identical" restored_ok
finish
