#!/usr/bin/env bash
# test: quiet (three front-ends and a Ceph cluster whose OSDs it pauses)
# test: plain-only (timing batteries over the multi-front-end code that t0975, t0977, t0980 and t0985 run under the sanitizers)
# Three front-ends (dedup-server serve, each its own directory) on one
# RADOS pool (tests/ceph/up.sh): init --store makes A, init --join adds B
# and C; a token made through A works on every front-end; agents spread
# over them; a chunk stored through one is present for the others
# (cross-front-end dedup sends < 1%); a snapshot made through A is listed
# and restored through C; gc on one front-end while another ingests
# deletes nothing another front-end's backup can use, then check
# --read-data is clean and every snapshot restores; a gc with no backups
# in progress collects what a forget freed; kill -9 of one front-end
# mid-upload fails its agents cleanly, loses nothing acknowledged, and the
# others keep serving. Outside CI a machine without Ceph skips.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ceph_up
C=$CEPH_DIR
# an operation the paused OSDs cannot serve fails after 5 s (not 60)
export CEPH_ARGS="--rados_osd_op_timeout=5"
NS=t0970
rados_ls() { rados -p "$CEPH_POOL" -N "$NS" ls 2>/dev/null | sort; }
rados_ls_has() { rados_ls | grep -qx "$1"; }

RA=$T/fa RB=$T/fb RC=$T/fc
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
out=$("$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null 2>&1)
check "init --join adds front-end B" test $? = 0
check "as front-end 1" grep -q "front-end 1" <<<"$out"
out=$("$SERVER" init --repo "$RC" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null 2>&1)
check "and C as front-end 2" grep -q "front-end 2" <<<"$out"
check_eq "the same repository id" "$(json_get "$(cat "$RA/config.json")" repo_id)" "$(json_get "$(cat "$RC/config.json")" repo_id)"

A1=$(token_add "$RA" alice)
A2=$(token_add "$RB" bob)
ADM=$(token_add "$RA" admin --admin)
SIX=()
for i in 1 2 3 4 5 6; do SIX+=("$(token_add "$RA" "c$i")"); done
check "clients.json is in the pool" rados_ls_has clients.json

# fe NAME: point the agent at front-end NAME
fe_start "$RA" A
fe_start "$RB" B
fe_start "$RC" C
tok_ok() { on "$1" api_status "$2" GET /api/v1/snapshots | grep -q '^200$'; }
check "bob's token (made through B) works on A" poll_until 10 tok_ok A "$A2"
check "alice's token (made through A) works on C" poll_until 10 tok_ok C "$A1"
check "and on B" poll_until 10 tok_ok B "$A1"

# 1. cross-front-end dedup: alice backs up through A, bob the same through B
SRC=$T/src
mkdir -p "$SRC/d"
prand one 6000000 > "$SRC/one.bin"
prand two 3000000 > "$SRC/d/two.bin"
seq 1 100000 > "$SRC/d/numbers.txt"
out=$(on A agent "$A1" backup --json "$SRC")
check "alice's backup through A" test $? = 0
IDA=$(json_get "$out" snapshot_id)
sentA=$(json_get "$out" bytes_sent)
mkdir -p "$T/bobsrc"
cp -a "$SRC/one.bin" "$SRC/d" "$T/bobsrc/"
out=$(on B agent "$A2" backup --json "$T/bobsrc")
check "bob's backup through B" test $? = 0
sentB=$(json_get "$out" bytes_sent)
IDB=$(json_get "$out" snapshot_id)
check "bob's backup of the same data through B sends < 1% ($sentB of $sentA bytes)" test "$((sentB * 100))" -lt "$sentA"
check "packs of front-ends 0 and 1 in the pool" test "$(rados_ls | grep -c '^packs/0001')" -ge 1
check "the shared index has shards" test "$(rados_ls | grep -c '^index/[0-9a-f][0-9a-f]$')" -ge 16

# 2. a snapshot made through A is listed and restored through C
listed() { on C agent "$A1" snapshots 2>/dev/null | grep -q "${IDA:0:12}"; }
check "A's snapshot is listed through C" poll_until 10 listed
rm -rf "$T/r1"
on C agent "$A1" restore "$IDA" --target "$T/r1" 2>"$T/r1.err"
check "and restores through C" test $? = 0
tree_manifest "$SRC" > "$T/m.src"
tree_manifest "$T/r1/${SRC#/}" > "$T/m.r1"
check "bit-identical" cmp -s "$T/m.src" "$T/m.r1"

# 3. six agents over the three front-ends at once
for i in 1 2 3 4 5 6; do
	mkdir -p "$T/s$i"
	prand "six$i" 1500000 > "$T/s$i/own.bin"
	cp "$SRC/d/two.bin" "$T/s$i/shared.bin"
done
fes=(A B C A B C)
pids=()
for i in 1 2 3 4 5 6; do
	( on "${fes[$((i - 1))]}" agent "${SIX[$((i - 1))]}" backup --json "$T/s$i" > "$T/six.$i" 2>"$T/six.$i.err" ) &
	pids+=($!)
done
wait "${pids[@]}"
n6=0
for i in 1 2 3 4 5 6; do
	[ -n "$(json_get "$(cat "$T/six.$i")" snapshot_id 2>/dev/null)" ] && n6=$((n6 + 1))
done
check_eq "six agents over three front-ends all finish" 6 "$n6"

# 4. gc on A while B ingests: B's backup in progress keeps its chunks
on A agent "$ADM" forget "$IDB" >/dev/null
(
	for r in 1 2 3; do
		prand "gc$r" 1500000 > "$SRC/gc$r.bin"
		on B agent "$A1" backup --json "$SRC" > "$T/gcb.$r" 2>>"$T/gcb.err" || echo "$r" >> "$T/gcb.failed"
	done
) &
BK=$!
gcs=0
for r in 1 2 3; do
	on A agent "$ADM" gc >/dev/null 2>>"$T/gc.err" && gcs=$((gcs + 1))
	sleep 0.3
done
wait "$BK"
check_eq "three gc runs on A beside B's backups" 3 "$gcs"
check "every backup through B beside gc succeeded" test ! -e "$T/gcb.failed"
IDG=$(json_get "$(cat "$T/gcb.3")" snapshot_id)
tree_manifest "$SRC" > "$T/m.g"
# a gc with no backup anywhere collects what a forget freed
mkdir -p "$T/u"
prand uniq 2000000 > "$T/u/u.bin"
IDU=$(json_get "$(on C agent "${SIX[0]}" backup --json "$T/u")" snapshot_id)
seen_on_a() { on A agent "$ADM" snapshots 2>/dev/null | grep -q "${IDU:0:12}"; }
check "C's snapshot reaches A's list" poll_until 10 seen_on_a
check "forget through A of a snapshot made through C" on A agent "$ADM" forget "$IDU"
sleep 3
out=$(on A agent "$ADM" gc --json 2>&1)
check "a gc with no backup in progress defers nothing" not grep -q deferred <<<"$out"
check "and deletes what the forget freed" test "$(json_get "$out" chunks_removed)" -gt 0
rm -rf "$T/r3"
gone() { ! on C agent "$ADM" snapshots 2>/dev/null | grep -q "${IDB:0:12}"; }
check "the forgotten snapshot leaves C's list" poll_until 10 gone
sleep 2.5
on C agent "$A1" restore "$IDG" --target "$T/r3" 2>/dev/null
tree_manifest "$T/r3/${SRC#/}" > "$T/m.r3"
check "B's last backup beside gc restores identical through C" cmp -s "$T/m.g" "$T/m.r3"
bad=0
for i in 1 2 3 4 5 6; do
	id=$(json_get "$(cat "$T/six.$i")" snapshot_id)
	rm -rf "$T/o6"
	on "${fes[$((i - 1))]}" agent "${SIX[$((i - 1))]}" restore "$id" --target "$T/o6" 2>/dev/null &&
		cmp -s "$T/s$i/own.bin" "$T/o6/$T/s$i/own.bin" || bad=$((bad + 1))
done
check_eq "every one of the six snapshots restores after gc" 0 "$bad"

# 5. kill -9 of B mid-upload: its agent fails cleanly, A and C serve on
mkdir -p "$T/k"
prand kill 120000000 > "$T/k/big.bin"
( on B agent "$A1" backup --json "$T/k" > "$T/k/out" 2>"$T/k/err"; echo $? > "$T/k/rc" ) &
KB=$!
# kill once B has stored part of the upload (its session shows it)
uploading() { on B api "$A1" GET /api/v1/sessions | grep -q '"uploaded_chunks": *[1-9]'; }
check "B's session shows the upload under way" poll_until 60 uploading
kill -9 "$PID_B"
wait "$KB"
# Either the agent fails cleanly (the usual case), or its snapshot was
# acknowledged just before the kill and must then be whole.
krc=$(cat "$T/k/rc")
if [ "$krc" = 0 ]; then
	IDKB=$(json_get "$(cat "$T/k/out")" snapshot_id)
	rm -rf "$T/k/ob"
	on C agent "$A1" restore "$IDKB" --target "$T/k/ob" 2>/dev/null
	check "the snapshot B acknowledged before the kill restores through C" \
		cmp -s "$T/k/big.bin" "$T/k/ob/$T/k/big.bin"
else
	check "the agent on B fails cleanly (exit $krc, no snapshot)" \
		not grep -q snapshot_id "$T/k/out"
fi
check "A keeps serving" tok_ok A "$A1"
out=$(on C agent "$A1" backup --json "$T/k")
check "the same backup through C succeeds" test $? = 0
IDK=$(json_get "$out" snapshot_id)
rm -rf "$T/k/o"
on A agent "$A1" restore "$IDK" --target "$T/k/o" 2>/dev/null
check "and restores through A" cmp -s "$T/k/big.bin" "$T/k/o/$T/k/big.bin"

# 6. the OSDs stop serving: a backup meanwhile fails cleanly (a 5xx within
# the op timeout, not a hang), the front-ends keep answering, backups work
# again once the OSDs are back, and nothing is damaged
mkdir -p "$T/o"
prand osd 20000000 > "$T/o/big.bin"
check "the OSDs pause" bash "$ROOT/tests/ceph/osd.sh" "$C" pause
# A's heartbeat thread writes every 2 s: by now one write is stuck on the
# paused OSDs, and the backup's session open must not wait for it and
# then for a write of its own (two op timeouts, about 120 s here).
sleep 3
t0=$(date +%s)
# two retries: the bound is the server's failure (op timeouts), not the agent's retry schedule (slower under the sanitizers);
# no waiting out the 503s (t1004 checks that a backup that does resumes)
DEDUP_AGENT_WAIT=0 DEDUP_AGENT_RETRIES=2 on A agent "${SIX[1]}" backup --json "$T/o" > "$T/o.out" 2>"$T/o.err"
orc=$?
dt=$(( $(date +%s) - t0 ))
check "a backup while they are paused fails (exit $orc)" test "$orc" != 0
# the bound: one op timeout (60 s, tests/ceph/up.sh) and a margin; a
# session open that waited for the stuck heartbeat write and then for its
# own took 88 s
check "within a bound, not a hang (${dt} s)" test "$dt" -lt 75
head -n 2 "$T/o.err"
check "A still answers (the list is local)" tok_ok A "${SIX[1]}"
check "the OSDs serve again" bash "$ROOT/tests/ceph/osd.sh" "$C" unpause
out=$(on A agent "${SIX[1]}" backup --json "$T/o")
check "the backup works again once they are back" test $? = 0
IDO=$(json_get "$out" snapshot_id)
rm -rf "$T/o/r"
on C agent "${SIX[1]}" restore "$IDO" --target "$T/o/r" 2>/dev/null
check "and restores identical through C" cmp -s "$T/o/big.bin" "$T/o/r/$T/o/big.bin"

for p in "$PID_A" "$PID_C"; do kill "$p"; done
for p in "$PID_A" "$PID_C"; do wait "$p" 2>/dev/null; done
SERVER_PIDS=()
SERVER_PID=
check "check --read-data on A is clean" "$SERVER" check --repo "$RA" --read-data --quiet
check "check --read-data on C is clean" "$SERVER" check --repo "$RC" --read-data --quiet
finish
