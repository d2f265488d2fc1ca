#!/usr/bin/env bash
# test: quiet (two front-ends on a Ceph cluster; timings of a 4 s fence)
# Several front-ends on one pool: a front-end that another takes for dead
# never acknowledges the loss of what its sessions were told exists.
#   1. heartbeat writes fail (test hook): after half the alive bound the
#      front-end refuses missing-queries, uploads and snapshots (503); a
#      collection elsewhere then sweeps its session's chunks, and once the
#      heartbeat is back the session's snapshot is refused with 409
#      "missing chunk", even with a cache that could not yet be dropped
#      (its own collection holds the gc lock: the snapshot is re-checked
#      against the shared index);
#   2. the front-end stalls (SIGSTOP) past the alive bound: the same, with
#      nothing injected;
#   3. a session opened while the front-end's own collection holds its gc
#      lock and a collection elsewhere made the cache stale waits for the
#      cache to be dropped, and is then told the swept chunk is missing;
#   4. a front-end stopped while another collects drops its stale cache
#      when it starts again;
#   5. an agent whose front-end fences itself mid-backup waits (503 with
#      Retry-After) and completes once the heartbeat is written again;
#   6. a front-end whose clock is 120 s behind (test hook), so that its
#      heartbeats look older than the alive bound to the others, is not
#      taken for dead while it writes them: a collection elsewhere watches
#      its heartbeat change and deletes nothing, and its session's
#      snapshot is acknowledged (on the code before, its chunks were
#      swept and the snapshot refused);
#   7. a front-end whose tick stalls past the alive bound (test hook: as
#      a long cache drop would) keeps writing its heartbeat on its own
#      thread: a collection elsewhere defers, its snapshot is
#      acknowledged (on the code before, the heartbeat stopped with the
#      tick: the front-end fenced itself and its chunks were swept);
#   8. a collection held past its lock's lease (4 s here) renews it: a
#      session opened elsewhere meanwhile waits for it (on the code
#      before, the lease ran out and the session went ahead).
# Every refused snapshot leaves nothing behind; at the end a collection on
# A marks from every snapshot in the pool and check --read-data is clean
# on both front-ends (on the code before, the stalled or restarted
# front-end's snapshot was acknowledged over swept chunks, and that
# collection failed on its catalog).
# The alive bound is shortened with DEDUP_TEST_ALIVE_SEC; T0980_ALIVE sets
# the wait (30 for a build without the hook, whose bound is fixed).
. "$(dirname "$0")/lib.sh"
ceph_up
export CEPH_ARGS="--rados_osd_op_timeout=5"
NS=t0980
ALIVE=${T0980_ALIVE:-8}
export DEDUP_TEST_ALIVE_SEC=$ALIVE
export DEDUP_TEST_HEARTBEAT_FAIL=$T/hbfail DEDUP_TEST_GC_HOLD=$T/gchold

# hb_older FE SECONDS: front-end FE's heartbeat in the pool is older
hb_older() {
	local t
	t=$(rados -p "$CEPH_POOL" -N "$NS" get "active/$1" - 2>/dev/null | cut -d' ' -f1)
	[ -n "$t" ] && [ $(( $(date +%s) - t )) -gt "$2" ]
}
# mk NAME: $T/NAME/bundle.bin (a data chunk and the catalog of one file
# holding it), snap.json, x.id (the data chunk's raw id) and x.hex
cat > "$T/mk.py" <<'PY'
import hashlib, json, os, struct, sys, time
out, seed = sys.argv[1], sys.argv[2].encode()
data = b"".join(hashlib.sha256(seed + struct.pack("<I", i)).digest()
                for i in range(2048))
xid = hashlib.sha256(data).digest()
path = b"f-" + seed
cat = bytearray(b"DDCT" + struct.pack("<I", 2))
cat += struct.pack("<BBHIIIqIqIQQQIIIQ", 1, 0, 0, 0o644, 0, 0,
                   int(time.time()), 0, int(time.time()), 0, 1, 1,
                   len(data), len(path), 0, 0, 1)
cat += path + xid + struct.pack("<I", len(data))
cid = hashlib.sha256(bytes(cat)).digest()
b = bytearray(b"DDBN" + struct.pack("<II", 1, 2))
for k, v in ((xid, data), (cid, bytes(cat))):
    b += k + struct.pack("<III", 0, len(v), len(v)) + v
open(os.path.join(out, "bundle.bin"), "wb").write(b)
open(os.path.join(out, "x.id"), "wb").write(xid)
open(os.path.join(out, "x.hex"), "w").write(xid.hex())
json.dump({"host": "h", "paths": ["/f"], "catalog": [cid.hex()],
           "time_start": int(time.time())},
          open(os.path.join(out, "snap.json"), "w"))
PY
mk() { mkdir -p "$T/$1" && python3 "$T/mk.py" "$T/$1" "$1"; }
session_open() {
	api "$C1" POST /api/v1/sessions -H 'Content-Type: application/json' \
		--data '{"host": "h", "paths": ["/f"]}' > "$T/sess.out"
	[ "$(tail -n1 "$T/sess.out")" = 201 ] || return 1
	json_get "$(sed '$d' "$T/sess.out")" id
}
upload() {
	api_status "$C1" POST /api/v1/chunks --data-binary @"$T/$1/bundle.bin" \
		-H 'Content-Type: application/octet-stream'
}
# missing NAME: prints the status, then "missing" or "present" for x
missing() {
	api "$C1" POST /api/v1/chunks/missing --data-binary @"$T/$1/x.id" \
		-H 'Content-Type: application/octet-stream' > "$T/miss.out"
	local st
	st=$(tail -n1 "$T/miss.out")
	if [ "$st" = 200 ]; then
		[ "$(head -c1 "$T/miss.out" | xxd -p)" = 01 ] && echo "200 missing" || echo "200 present"
	else
		echo "$st"
	fi
}
snapshot() {
	api "$C1" POST "/api/v1/snapshots?session=$2" --data-binary @"$T/$1/snap.json" \
		-H 'Content-Type: application/json' > "$T/snap.out"
	tail -n1 "$T/snap.out"
}
# gc_a: a collection on A (the verb); prints how many chunks it removed,
# nothing when it deferred (its report then counts what it would remove)
gc_a() {
	env -u DEDUP_TEST_GC_HOLD "$SERVER" gc --repo "$RA" >"$T/gca.out" 2>&1 || return 1
	grep -q "deleting nothing" "$T/gca.out" && return 0
	sed -n 's/^gc: \([0-9]*\) unreferenced chunk(s) removed.*/\1/p' "$T/gca.out"
}
# heartbeat_idle FE: the front-end's heartbeat says no session is open
heartbeat_idle() {
	rados -p "$CEPH_POOL" -N "$NS" get "active/$1" - 2>/dev/null | grep -q ' 0$'
}
pool_snapshots() {
	rados -p "$CEPH_POOL" -N "$NS" ls | grep -c '^snapshots/'
}

RA=$T/fa RB=$T/fb
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
check "init --join adds front-end B" "$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null
C1=$(token_add "$RA" carol)
ADM=$(token_add "$RA" root --admin)
server_start "$RB" || exit 1
PID_B=$SERVER_PID
tok_ok() { api_status "$C1" GET /api/v1/snapshots | grep -q '^200$'; }
check "the tokens work on B" poll_until 10 tok_ok

# ---- 1. heartbeat writes fail; B's own collection holds its gc lock ----
mk s1
S1=$(session_open)
check "a session opens on B" test -n "$S1"
check_eq "its chunks upload through B" 200 "$(upload s1)"
check_eq "and are present for it" "200 present" "$(missing s1)"
touch "$T/gchold"
api "$ADM" POST /api/v1/gc > "$T/gcb1.out" 2>&1 &
GCB=$!
held() { grep -q "gc: test hold while" "$T/server.log"; }
check "B's own collection holds its gc lock (test hook)" poll_until 20 held
touch "$T/hbfail"
t0=$(date +%s.%N)
fenced() { [ "$(missing s1)" = 503 ]; }
check "B refuses a missing-query once it cannot write its heartbeat" poll_until 30 fenced
t1=$(date +%s.%N)
echo "# fenced $(echo "$t1 - $t0" | bc) s after the heartbeat writes began to fail (alive bound $ALIVE s)"
check "before another front-end may take it for dead" test "$(echo "$t1 - $t0 < $ALIVE" | bc)" = 1
check "the 503 says why" grep -q "cannot write its heartbeat" "$T/miss.out"
check_eq "B refuses an upload meanwhile" 503 "$(upload s1)"
check_eq "and the session's snapshot" 503 "$(snapshot s1 "$S1")"
check "B's heartbeat goes stale" poll_until 60 hb_older 1 "$ALIVE"
removed=$(gc_a)
check "A's collection takes B for dead and sweeps the session's chunks" test "${removed:-0}" -ge 2
rm -f "$T/hbfail"
unfenced() { [ "$(missing s1)" != 503 ]; }
check "B answers again once its heartbeat is written" poll_until 30 unfenced
check_eq "B's snapshot of the swept chunks is refused" 409 "$(snapshot s1 "$S1")"
check "with 'missing chunk'" grep -q "missing chunk" "$T/snap.out"
check "found by re-checking against the shared index" grep -q "checking its chunks against the shared index" "$T/server.log"
check_eq "and leaves no manifest in the pool" 0 "$(pool_snapshots)"
rm -f "$T/gchold"
wait "$GCB"
check_eq "B's held collection then runs" 200 "$(tail -n1 "$T/gcb1.out")"
check_eq "and B's cache no longer says present" "200 missing" "$(missing s1)"
S1b=$(session_open)
check_eq "the backup run again uploads" 200 "$(upload s1)"
check_eq "and its snapshot is acknowledged" 201 "$(snapshot s1 "$S1b")"
ID1=$(json_get "$(sed '$d' "$T/snap.out")" id)

# ---- 2. B stalls past the alive bound ----
mk s2
S2=$(session_open)
check_eq "a second session uploads through B" 200 "$(upload s2)"
kill -STOP "$PID_B"
check "B stalls: its heartbeat goes stale" poll_until 60 hb_older 1 "$((ALIVE + 1))"
removed=$(gc_a)
check "A's collection sweeps the stalled session's chunks" test "${removed:-0}" -ge 2
kill -CONT "$PID_B"
not_503() { st=$(snapshot s2 "$S2"); [ "$st" != 503 ]; }
poll_until 30 not_503
check_eq "the stalled session's snapshot is refused, not acknowledged" 409 "$(tail -n1 "$T/snap.out")"
check_eq "and leaves no manifest in the pool" 1 "$(pool_snapshots)"

# ---- 3. a session opens while B's own collection holds its gc lock ----
mk s3
S3=$(session_open)
check_eq "a third session uploads through B" 200 "$(upload s3)"
api_status "$C1" POST "/api/v1/sessions/$S3" -H 'Content-Type: application/json' \
	--data '{"state": "failed"}' >/dev/null
check_eq "then fails: its chunks are garbage B has cached" "200 present" "$(missing s3)"
touch "$T/gchold"
api "$ADM" POST /api/v1/gc > "$T/gcb3.out" 2>&1 &
GCB=$!
held2() { [ "$(grep -c "gc: test hold while" "$T/server.log")" -ge 2 ]; }
check "B's own collection holds its gc lock again" poll_until 20 held2
check "B's heartbeat shows the failed session closed" poll_until 20 heartbeat_idle 1
removed=$(gc_a)
check "A's collection sweeps them" test "${removed:-0}" -ge 2
session_open > "$T/s3b.id" &
OPEN=$!
sleep 1
kill -0 "$OPEN" 2>/dev/null
check "a session open on B waits for the stale cache to be dropped" test $? = 0
rm -f "$T/gchold"
wait "$OPEN"
S3b=$(cat "$T/s3b.id")
check "it opens once B's collection dropped it" test -n "$S3b"
check_eq "and is told the swept chunk is missing" "200 missing" "$(missing s3)"
wait "$GCB"
check_eq "B's collection succeeds" 200 "$(tail -n1 "$T/gcb3.out")"

# ---- 4. B stopped while A collects ----
mk s4
S4=$(session_open)
check_eq "a fourth session uploads through B" 200 "$(upload s4)"
api_status "$C1" POST "/api/v1/sessions/$S4" -H 'Content-Type: application/json' \
	--data '{"state": "failed"}' >/dev/null
server_stop
removed=$(gc_a)
check "B stopped: A's collection sweeps the failed session's chunks" test "${removed:-0}" -ge 2
server_start "$RB" || exit 1
S4b=$(session_open)
check_eq "B restarted tells a new session they are missing" "200 missing" "$(missing s4)"
check_eq "and refuses a snapshot of them" 409 "$(snapshot s4 "$S4b")"

# ---- 5. the agent waits out a fenced front-end (503 + Retry-After) ----
mkdir -p "$T/src5"
prand s5 96000000 > "$T/src5/big.bin"
# the agent itself in the background (not a subshell): SIGSTOP reaches it
"$AGENT" --server "$URL" --token "$C1" --ca "$CA" backup --json "$T/src5" \
	> "$T/b5.out" 2>"$T/b5.err" &
AG=$!
# stopped as soon as its session is open: it still has every chunk to
# ask about and send
opened() { api "$C1" GET /api/v1/sessions | grep -q '"id"'; }
check "an agent's backup through B opens its session" poll_until 60 opened
kill -STOP "$AG"
touch "$T/hbfail"
check "B fences itself meanwhile" poll_until 30 fenced
n503() {
	api "$ADM" GET /metrics | sed -n 's/^dedup_http_requests_total{method="POST",code="503"} //p'
}
n0=$(n503)
kill -CONT "$AG"
more503() { [ "$(n503)" -gt "$n0" ]; }
check "the agent's next request is refused with 503" poll_until 30 more503
rm -f "$T/hbfail"
wait "$AG"
check "the agent waits it out and its backup completes" test $? = 0
ID5=$(json_get "$(cat "$T/b5.out")" snapshot_id)
check "its snapshot is in the pool" rados -p "$CEPH_POOL" -N "$NS" stat "snapshots/$ID5.json"
server_stop

# ---- 6. B's clock is behind: its heartbeats look stale, it is alive ----
DEDUP_TEST_CLOCK_SKEW_SEC=-120 server_start "$RB" || exit 1
mk s6
S6=$(session_open)
check "a session opens on B, whose clock is 120 s behind" test -n "$S6"
check_eq "its chunks upload through B" 200 "$(upload s6)"
removed=$(gc_a)
sed -n 's/^/# /; /watching\|deleting nothing/p' "$T/gca.out"
check "A's collection does not take B for dead" test -z "$removed"
check "it watched B's heartbeat and saw it written" grep -q "clock is behind" "$T/gca.out"
check_eq "the chunks are still present for B" "200 present" "$(missing s6)"
check_eq "and B's snapshot of them is acknowledged" 201 "$(snapshot s6 "$S6")"
server_stop

# ---- 7. B's tick stalls (a long cache drop): its heartbeat goes on ----
DEDUP_TEST_TICK_STALL=$T/tickstall server_start "$RB" || exit 1
mk s7
S7=$(session_open)
check "a session opens on B" test -n "$S7"
check_eq "its chunks upload through B" 200 "$(upload s7)"
touch "$T/tickstall"
removed=$(gc_a)
sed -n 's/^/# /; /deleting nothing/p' "$T/gca.out"
check "A's collection does not take B for dead while B's tick stalls" test -z "$removed"
check "it saw B's heartbeat written" grep -q "deleting nothing: front-end" "$T/gca.out"
check_eq "the chunks are still present for B" "200 present" "$(missing s7)"
check_eq "and B's snapshot of them is acknowledged" 201 "$(snapshot s7 "$S7")"
rm -f "$T/tickstall"
server_stop

# ---- 8. a collection longer than its lease renews it ----
# The lock's lease (4 s here, 10 minutes otherwise) is renewed every third
# of it while the collection runs, and the gc epoch's start time with it:
# a session opened on B while A's collection is held (test hook) past
# several leases still waits for it, rather than taking it for dead and
# answering from an index the collection may be sweeping.
export DEDUP_TEST_GC_LEASE_SEC=4
server_start "$RB" || exit 1
touch "$T/runhold"
DEDUP_TEST_GC_HOLD_RUNNING=$T/runhold env -u DEDUP_TEST_GC_HOLD \
	"$SERVER" gc --repo "$RA" >"$T/gc8.out" 2>&1 &
gc8=$!
for _ in $(seq 1 200); do
	grep -q "test hold while '$T/runhold'" "$T/gc8.out" 2>/dev/null && break
	sleep 0.05
done
check "A's collection is held with the epoch running" grep -q "test hold while '$T/runhold'" "$T/gc8.out"
( session_open > "$T/s8.id" ) &
s8=$!
waited=0
for _ in $(seq 1 35); do   # 7 s: past the 4 s lease, renewed meanwhile
	kill -0 "$s8" 2>/dev/null || break
	sleep 0.2
	waited=$((waited + 1))
done
check "a session open on B waits past the lease (7 s)" test "$waited" = 35
rm -f "$T/runhold"
wait "$gc8"
check_eq "the collection ends well" 0 "$?"
wait "$s8"
check "and then the session opens" test -s "$T/s8.id"
check "the collection renewed nothing it lost" not grep -q "cannot renew" "$T/gc8.out"
server_stop
unset DEDUP_TEST_GC_LEASE_SEC

# every snapshot in the pool is whole: A adopts them all and marks from
# them (a snapshot acknowledged over swept chunks fails this collection:
# its catalog is gone), then check reads every chunk they reference
removed=$(gc_a)
check "a last collection on A marks from every snapshot of the pool" test $? = 0 -a -n "$removed"
sed 's/^/# /' "$T/gca.out"
check_eq "A knows every snapshot of the pool" "$(pool_snapshots)" "$(ls "$RA/snapshots" | grep -c '\.json$')"
check "check --read-data on A is clean" "$SERVER" check --repo "$RA" --read-data --quiet
check "check --read-data on B is clean" "$SERVER" check --repo "$RB" --read-data --quiet
server_start "$RA" || exit 1
api "$ADM" GET "/api/v1/snapshots/$ID1" > "$T/g1.out"
check_eq "the acknowledged snapshot is known to A" 200 "$(tail -n1 "$T/g1.out")"
rm -rf "$T/r1" "$T/r5"
agent "$ADM" restore "$ID1" --target "$T/r1" 2>"$T/r1.err"
check_eq "and restores through A" 65536 "$(find "$T/r1" -name f-s1 -type f -printf '%s')"
agent "$ADM" restore "$ID5" --target "$T/r5" 2>"$T/r5.err"
check "the agent's snapshot restores through A" cmp -s "$T/src5/big.bin" "$T/r5/$T/src5/big.bin"
server_stop
finish
