#!/usr/bin/env bash
# `make bench-server` at a tiny scale, so that its tools do not rot: the
# load generator's uploads are stored (the server's counters say so), its
# missing-queries check every answer (a query whose answer is wrong fails
# the run), the synthetic index is what the server opens (its counters,
# lookups of its ids), the whole script runs and its report carries every
# table, and the report's section in docs/BENCHMARKS.md is replaced in
# place, leaving the rest of the file as it was.
. "$(dirname "$0")/lib.sh"

LOAD=$DD_BUILD/bench/server-bench
SYNTH=$DD_BUILD/bench/synth-index
TOP=$(cd "$(dirname "$0")/../.." && pwd)
check "the load generator is built" test -x "$LOAD"
check "the synthetic index writer is built" test -x "$SYNTH"

# stat_field TOKEN FIELD: a field of GET /api/v1/stats.
stat_field() { json_get "$(api "$1" GET /api/v1/stats | sed '$d')" "$2"; }

# ---- uploads: 6 MiB from 3 clients are stored, and asked about after
R=$T/repo
repo_init "$R"
TOK=$(token_add "$R" bench --admin)
server_start "$R" --set missing_ids_per_second=0
out=$("$LOAD" upload "$URL" "$CA" "$TOK" 3 6 7)
check "upload with 3 clients succeeds" test $? = 0
check_eq "its report says ok" True "$(json_get "$out" ok)"
check_eq "3 clients" 3 "$(json_get "$out" clients)"
mb=$(json_get "$out" plain_mb)
check "about 6 MiB sent ($mb MB)" python3 -c "import sys; sys.exit(not 6.0 < $mb < 6.7)"
n=$(json_get "$out" upload.requests)
check "every bundle sent once ($n requests)" test "$n" -ge 3
check_eq "one missing-query a bundle" "$n" "$(json_get "$out" missing.requests)"
check "the server counts the bytes" python3 -c "import sys; sys.exit(abs($(stat_field "$TOK" bytes_unique) / 1e6 - $mb) > 0.1)"
out=$("$LOAD" upload "$URL" "$CA" "$TOK" 3 6 7 2>"$T/again.err")
check "the same bundles again fail: the generator checks they are missing" test $? = 1
check "and says which answer was wrong" grep -q "answered present" "$T/again.err"
out=$("$LOAD" missing "$URL" "$CA" "$TOK" 2 10000 absent 0 3)
check_eq "10000 absent ids asked, all missing" 10000 "$(json_get "$out" ids)"
"$LOAD" missing "$URL" "$CA" "$TOK" 1 100 present 1000 3 2>"$T/present.err"
check "present ids of an index that lacks them fail the run" test $? = 1
check "bad arguments are refused with the usage" not "$LOAD" missing "$URL" "$CA" "$TOK" 0 10 absent 0
server_stop

# ---- the synthetic index is what the server opens
S=$T/synth
repo_init "$S"
STOK=$(token_add "$S" bench --admin)
check "synth-index writes 30000 entries" "$SYNTH" "$S" 30000 5
check "synth-index refuses a missing count" not "$SYNTH" "$S"
server_start "$S" --set missing_ids_per_second=0
check_eq "the server counts 30000 chunks" 30000 "$(stat_field "$STOK" chunks)"
out=$("$LOAD" missing "$URL" "$CA" "$STOK" 2 20000 present 30000 5)
check_eq "20000 of its ids are present" 20000 "$(json_get "$out" ids)"
"$LOAD" missing "$URL" "$CA" "$STOK" 1 1000 present 30000 6 2>/dev/null
check "ids of another seed are not" test $? = 1
out=$("$LOAD" missing "$URL" "$CA" "$STOK" 1 5000 absent 0 5)
check_eq "absent ids are missing" 5000 "$(json_get "$out" ids)"
# One query mixing present and absent ids out of key order: the server
# looks them up in key order and must still answer each in its place.
python3 - "$T/mixed.bin" "$T/mixed.want" <<'PY'
import hashlib, os, struct, sys
n, seed, ids, want = 30000, 5, b"", bytearray(1000 // 8)
for j in range(1000):
    if j % 3 == 0:
        i = (j * 7919) % n
        h = hashlib.sha256(b"synth" + struct.pack(">QQ", seed, i)).digest()
        ids += struct.pack(">Q", (i * ((2**64 - 1) // n)) % 2**64) + h[:24]
    else:
        ids += hashlib.sha256(b"mixed %d" % j).digest()
        want[j // 8] |= 1 << (j % 8)
open(sys.argv[1], "wb").write(ids)
open(sys.argv[2], "wb").write(want)
PY
api "$STOK" POST /api/v1/chunks/missing --data-binary @"$T/mixed.bin" \
	-H 'Content-Type: application/octet-stream' > "$T/mixed.out"
check_eq "a mixed query answers 200" 200 "$(tail -n1 "$T/mixed.out")"
head -c 125 "$T/mixed.out" > "$T/mixed.got"
check "each id of a mixed query is answered in its place" cmp -s "$T/mixed.got" "$T/mixed.want"
server_stop
check "gc --dry-run reads the synthetic index" "$SERVER" gc --repo "$S" --dry-run

# ---- the floor
out=$("$LOAD" floor "$T" 4 1)
check "the floor runs" test $? = 0
check "and reports CPU seconds" python3 -c "import sys; sys.exit(not $(json_get "$out" cpu_s) >= 0)"
check "and leaves no file" test ! -e "$T/floor.data"

# ---- the whole script, tiny, and its report
export DD_BENCH_DIR=$T/sb DD_BENCH_CLIENTS="1 2" DD_BENCH_MB=4 \
	DD_BENCH_CHUNKS=20000 DD_BENCH_IDS=8192 DD_BENCH_DOCS=0
O=$DD_BUILD bash "$TOP/tests/bench/server-bench.sh" > "$T/sb.out" 2>&1
rc=$?
check "server-bench.sh runs (rc $rc)" test "$rc" = 0
[ "$rc" = 0 ] || tail -5 "$T/sb.out"
MD=$T/sb/server-bench.md
for kind in floor upload missing-small synth open index-absent index-present gc; do
	check "results have $kind" grep -q "\"kind\": \"$kind\"" "$T/sb/results.jsonl"
done
check "every run is ok" not grep -q '"ok": false' "$T/sb/results.jsonl"
check "the report has the client table" grep -q '^| 2 | ' "$MD"
check "the report has the index table" grep -q '^| present ids | 4 | ' "$MD"
check "the report names the bytes a chunk" grep -q 'bytes a chunk' "$MD"
check "the report names the gc" grep -q 'gc --dry-run' "$MD"

# ---- the section in docs/BENCHMARKS.md is replaced in place
cp "$TOP/docs/BENCHMARKS.md" "$T/B.md"
python3 "$TOP/tests/bench/server_report.py" "$T/sb/results.jsonl" "$T/r1.md" "$T/B.md"
python3 "$TOP/tests/bench/server_report.py" "$T/sb/results.jsonl" "$T/r2.md" "$T/B.md"
check_eq "one section after two reports" 1 "$(grep -c '^<!-- server-bench:' "$T/B.md")"
sed '/^<!-- server-bench:/,/^<!-- \/server-bench -->/d' "$T/B.md" > "$T/B.rest"
sed '/^<!-- server-bench:/,/^<!-- \/server-bench -->/d' "$TOP/docs/BENCHMARKS.md" > "$T/B.orig"
trimmed() { python3 -c 'import sys; print(open(sys.argv[1]).read().rstrip())' "$1"; }
check "the rest of the file is as it was" cmp -s <(trimmed "$T/B.rest") <(trimmed "$T/B.orig")

finish
