#!/usr/bin/env bash
# The RADOS storage backend against a real, throw-away Ceph: tests/ceph/up.sh
# brings up 1 mon, 1 mgr and 1 memstore OSD on 127.0.0.1 under this test's
# directory, the backend contract test (tests/unit/test_backend.c) runs its
# RADOS half against it, and tests/ceph/down.sh stops it by its PIDs.
# Also: the server binary does not link librados (the backend is a module),
# and a second cluster started beside the first does not collide with it.
# Outside CI a machine without Ceph skips with a message; under CI (CI set)
# a missing Ceph fails.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UP=$ROOT/tests/ceph/up.sh
DOWN=$ROOT/tests/ceph/down.sh
C1=$T/c1
C2=$T/c2

down_all() {
	local d
	for d in "$C1" "$C2"; do
		[ -e "$d/.dedup-ceph" ] && bash "$DOWN" "$d"
	done
	cleanup
}
trap down_all EXIT

need_ceph

check "the server binary does not link librados" \
	not grep -q librados <(ldd "$SERVER")
check "the server binary holds the module loader" \
	grep -q dedup-backend-rados.so <(strings "$SERVER")
check "the RADOS module links librados" grep -q librados <(ldd "$DD_BUILD/dedup-backend-rados.so")

t0=$(date +%s.%N)
# a small osd_max_object_size, so the contract test can pass it cheaply
if CEPH_MAX_OBJECT_MB=16 bash "$UP" "$C1" >"$T/up1.out" 2>"$T/up1.err"; then
	ok "a single-node Ceph comes up ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s)"
else
	not_ok "a single-node Ceph comes up"; cat "$T/up1.err"; finish
fi
check "up.sh wrote the env file" grep -q "DEDUP_TEST_CEPH_CONF=$C1/ceph.conf" "$C1/env"

# shellcheck disable=SC1091
out=$( . "$C1/env" && DEDUP_TEST_CEPH_MAX_OBJECT_MB=16 DEDUP_BACKEND_DIR=$DD_BUILD \
	timeout 300 "$DD_BUILD/tests/test_backend" 2>&1)
rc=$?
echo "$out" | grep -E '^(FAIL|rados|lease|cas|append)' | head -n 40
check_eq "the backend contract test passes on dir and RADOS" 0 "$rc"
check "its RADOS half ran (not skipped)" grep -q '^rados half: rados:' <<<"$out"
check "an append past osd_max_object_size was refused" \
	grep -q '^append past osd_max_object_size (16 MiB): refused' <<<"$out"
n=$(sed -n 's/.*: \([0-9]*\) passed, 0 failed$/\1/p' <<<"$out")
check "it made more than 200 checks (got ${n:-none})" test "${n:-0}" -gt 200

# a second cluster beside the first: its own ports, its own daemons
if bash "$UP" "$C2" >"$T/up2.out" 2>"$T/up2.err"; then
	ok "a second cluster comes up beside the first"
else
	not_ok "a second cluster comes up beside the first"; cat "$T/up2.err"
fi
p1=$(sed -n 's/^mon host = .*127.0.0.1:\([0-9]*\),.*/\1/p' "$C1/ceph.conf")
p2=$(sed -n 's/^mon host = .*127.0.0.1:\([0-9]*\),.*/\1/p' "$C2/ceph.conf")
check "with another monitor port ($p1, $p2)" test -n "$p1" -a "$p1" != "$p2"
check "both answer" bash -c ". '$C1/env' && timeout 30 rados -p dedup ls >/dev/null &&
	. '$C2/env' && timeout 30 rados -p dedup ls >/dev/null"

pids=$(cat "$C2"/run/*.pid 2>/dev/null | tr '\n' ' ')
check "the second cluster has 3 daemons ($pids)" test "$(wc -w <<<"$pids")" = 3
bash "$DOWN" "$C2"
alive=0
for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
check_eq "down.sh stopped every daemon it started" 0 "$alive"
check "and removed its directory" test ! -e "$C2"
check "the first cluster still answers" bash -c ". '$C1/env' && timeout 30 rados -p dedup ls >/dev/null"
check "down.sh refuses a directory up.sh did not make" not bash "$DOWN" "$T"
finish
