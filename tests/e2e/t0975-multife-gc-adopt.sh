#!/usr/bin/env bash
# test: quiet (a Ceph cluster whose OSDs it pauses)
# A collection on one front-end never sweeps the chunks of a snapshot that
# another front-end acknowledged and this one has not adopted yet (its
# tick adopts the pool's manifests every 2 s; the `gc` verb of a stopped
# front-end never does). Made deterministic: front-end A is stopped
# before B's backup, so A's directory does not know B's snapshot when
# `dedup-server gc --repo A` runs. Before the fix that collection swept
# every chunk only B's snapshot used from the shared index (what t0970
# saw under load: "in pack but not in the index", a failed restore, and
# the next collection's "Bad message" on that snapshot's catalog).
# A failed collection (the OSDs paused) deletes nothing.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ceph_up
C=$CEPH_DIR
export CEPH_ARGS="--rados_osd_op_timeout=5"
NS=t0975
omap_keys() {
	local s n=0
	for s in $(rados -p "$CEPH_POOL" -N "$NS" ls 2>/dev/null | grep '^index/[0-9a-f][0-9a-f]$'); do
		n=$((n + $(rados -p "$CEPH_POOL" -N "$NS" listomapkeys "$s" 2>/dev/null | wc -l)))
	done
	echo "$n"
}
# heartbeat_idle FE: the front-end's heartbeat says no session is open
heartbeat_idle() {
	rados -p "$CEPH_POOL" -N "$NS" get "active/$1" - 2>/dev/null | grep -q ' 0$'
}

RA=$T/fa RB=$T/fb
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
check "init --join adds front-end B" "$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null
A1=$(token_add "$RA" alice)

# 1. a first snapshot through A, known to both
SRC=$T/src
mkdir -p "$SRC"
prand first 3000000 > "$SRC/first.bin"
server_start "$RA" || exit 1
URL_A=$URL CA_A=$CA
out=$(agent "$A1" backup --json "$SRC")
check "a first backup through A" test $? = 0
ID1=$(json_get "$out" snapshot_id)
server_stop

# 2. A stopped: a second snapshot through B, with chunks no other uses
server_start "$RB" || exit 1
URL_B=$URL CA_B=$CA PID_B=$SERVER_PID
tok_ok() { api_status "$A1" GET /api/v1/snapshots | grep -q '^200$'; }
check "alice's token works on B" poll_until 10 tok_ok
mkdir -p "$T/bsrc"
prand bonly 4000000 > "$T/bsrc/bonly.bin"
out=$(agent "$A1" backup --json "$T/bsrc")
check "a backup through B while A is stopped" test $? = 0
IDB=$(json_get "$out" snapshot_id)
check "its manifest is in the pool" rados -p "$CEPH_POOL" -N "$NS" stat "snapshots/$IDB.json"
check "A's directory does not know it" test ! -e "$RA/snapshots/$IDB.json"
check "B's heartbeat shows its session closed" poll_until 10 heartbeat_idle 1
keys0=$(omap_keys)

# 3. a collection while the OSDs do not serve fails within the op
# timeout and deletes nothing
check "the OSDs pause" bash "$ROOT/tests/ceph/osd.sh" "$C" pause
timeout 120 "$SERVER" gc --repo "$RA" >"$T/gc0.out" 2>&1
check "gc on A while they are paused fails" test $? != 0
check "the OSDs serve again" bash "$ROOT/tests/ceph/osd.sh" "$C" unpause
check_eq "and the shared index keeps every entry" "$keys0" "$(omap_keys)"

# 4. gc on the stopped A: it must mark from B's snapshot too
out=$("$SERVER" gc --repo "$RA" 2>&1)
check "gc on A succeeds" test $? = 0
echo "$out" | sed 's/^/# /'
removed=$(sed -n 's/^gc: \([0-9]*\) unreferenced chunk(s) removed.*/\1/p' <<<"$out")
check_eq "gc on A removes no chunk (every one is referenced)" 0 "$removed"
check_eq "the shared index keeps every entry" "$keys0" "$(omap_keys)"
check "A adopted B's snapshot from the pool" test -e "$RA/snapshots/$IDB.json"

# 5. B's snapshot restores through B (after dropping its cache for the
# collection's epoch) and through A; check --read-data on A is clean
dropped() { grep -q "dropped .* cached index entries" "$T/server.log"; }
check "B drops its cache after A's collection" poll_until 10 dropped
rm -rf "$T/rb"
agent "$A1" restore "$IDB" --target "$T/rb" 2>"$T/rb.err"
check "B's snapshot restores through B" cmp -s "$T/bsrc/bonly.bin" "$T/rb/$T/bsrc/bonly.bin"
server_stop
server_start "$RA" || exit 1
rm -rf "$T/ra"
agent "$A1" restore "$IDB" --target "$T/ra" 2>"$T/ra.err"
check "and through A" cmp -s "$T/bsrc/bonly.bin" "$T/ra/$T/bsrc/bonly.bin"
rm -rf "$T/r1"
agent "$A1" restore "$ID1" --target "$T/r1" 2>/dev/null
check "A's first snapshot restores too" cmp -s "$SRC/first.bin" "$T/r1/$SRC/first.bin"
server_stop
check "check --read-data on A is clean" "$SERVER" check --repo "$RA" --read-data --quiet
check "check --read-data on B is clean" "$SERVER" check --repo "$RB" --read-data --quiet
finish
