#!/usr/bin/env bash
# Brings up a throw-away single-node Ceph on 127.0.0.1 for the RADOS
# backend's tests and benchmark: 1 mon, 1 mgr, 1 memstore OSD (RAM-backed),
# auth none, one pool. Everything lives under one directory; the monitor's
# ports are chosen free, so two runs (or a leftover) do not collide. Stop
# it with tests/ceph/down.sh DIR (by the PIDs it started).
#
#   tests/ceph/up.sh [DIR]        DIR: new or empty (default: CEPH_DIR, else
#                                 a new /tmp/dedup-ceph.XXXXXX)
# Env: CEPH_POOL (default dedup), CEPH_MEMSTORE_MB (default 2048),
#      CEPH_UP_TIMEOUT seconds for the cluster to take a write (default 90),
#      CEPH_MAX_OBJECT_MB osd_max_object_size (default: Ceph's, 128 MiB).
# Prints "export ..." lines (CEPH_DIR, CEPH_CONF, CEPH_POOL and the
# DEDUP_TEST_CEPH_* the tests read), also written to DIR/env for sourcing.
# Exit 0: the pool took a write. Non-zero: what failed, the daemons' log
# tails, and the daemons it started are stopped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=${1:-${CEPH_DIR:-}}
if [ -z "$D" ]; then
	D=$(mktemp -d "${TMPDIR:-/tmp}/dedup-ceph.XXXXXX")
elif [ -e "$D" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ]; then
	echo "up.sh: '$D' is not empty (a cluster still there? run tests/ceph/down.sh '$D')" >&2
	exit 2
fi
mkdir -p "$D"
D=$(cd "$D" && pwd)
POOL=${CEPH_POOL:-dedup}
WAIT=${CEPH_UP_TIMEOUT:-90}
T0=$(date +%s.%N)
say() { printf 'up.sh [%5.2fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }

for tool in ceph-mon ceph-mgr ceph-osd ceph monmaptool rados; do
	command -v "$tool" >/dev/null || {
		echo "up.sh: $tool not found: install ceph-mon ceph-mgr ceph-osd ceph-common" >&2
		rmdir "$D" 2>/dev/null || true
		exit 3
	}
done
touch "$D/.dedup-ceph"   # down.sh deletes only a directory marked so
mkdir -p "$D"/{mon.a,mgr.x,osd.0,run,log,crash}

fail() {
	echo "up.sh: $*" >&2
	for f in "$D"/log/*.log; do
		[ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }
	done
	bash "$here/down.sh" "$D" --keep >&2 || true
	exit 1
}

# Two free TCP ports for the monitor (v2, v1): bound by the kernel, then
# released; a race with another process is caught by the mon's start.
free_ports() {
	python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}
read -r MON_V2 MON_V1 < <(free_ports)

FSID=$(cat /proc/sys/kernel/random/uuid)
cat >"$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
crash dir = $D/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000
mon warn on insecure global id reclaim allowed = false
client mount timeout = 30
rados osd op timeout = 60
paxos propose interval = 0.1
mgr stats period = 1
mon mgr digest period = 1
$([ -n "${CEPH_MAX_OBJECT_MB:-}" ] && echo "osd max object size = $((CEPH_MAX_OBJECT_MB * 1024 * 1024))")
[mon]
mon data = $D/\$name
[mgr]
mgr data = $D/\$name
[osd]
osd data = $D/\$name
osd objectstore = memstore
memstore device bytes = $(( ${CEPH_MEMSTORE_MB:-2048} * 1024 * 1024 ))
CONF
export CEPH_CONF=$D/ceph.conf
say "config written (mon on 127.0.0.1:$MON_V2/$MON_V1)"

monmaptool --create --fsid "$FSID" \
	--addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" || fail "ceph-mon --mkfs failed"
ceph-mon -i a || fail "ceph-mon did not start"
say "mon started"
ceph-mgr -i x || fail "ceph-mgr did not start"
say "mgr started"

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(timeout "$WAIT" ceph --connect-timeout 30 osd new "$OSD_UUID") ||
	fail "the monitor did not answer 'osd new'"
ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >/dev/null 2>&1 ||
	fail "ceph-osd --mkfs failed"
ceph-osd -i "$OSD_ID" 2>>"$D/log/start.err" || fail "ceph-osd did not start"
say "osd.$OSD_ID started"

timeout "$WAIT" ceph osd pool create "$POOL" 8 8 >/dev/null 2>&1 ||
	fail "cannot create pool $POOL"
timeout "$WAIT" ceph osd pool application enable "$POOL" rados >/dev/null 2>&1 ||
	fail "cannot tag pool $POOL"
# the first write blocks until the placement groups are active
echo probe | timeout "$WAIT" rados -p "$POOL" --rados-osd-op-timeout "$WAIT" \
	put .up-probe - || fail "pool $POOL took no write within ${WAIT}s"
rados -p "$POOL" rm .up-probe
say "pool $POOL took a write"

# HEALTH_OK needs the mgr's first report; bounded, and not fatal: the pool
# works already (a HEALTH_WARN is printed for the log).
health=
for _ in $(seq 1 40); do
	health=$(timeout 10 ceph health 2>/dev/null || true)
	case "$health" in HEALTH_OK*) break ;; esac
	sleep 0.25
done
say "health: ${health:-no answer}"

cat >"$D/env" <<ENV
export CEPH_DIR=$D
export CEPH_CONF=$D/ceph.conf
export CEPH_POOL=$POOL
export DEDUP_TEST_CEPH_CONF=$D/ceph.conf
export DEDUP_TEST_CEPH_POOL=$POOL
ENV
cat "$D/env"
