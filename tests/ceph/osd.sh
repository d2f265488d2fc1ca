#!/usr/bin/env bash
# Makes the OSDs of a cluster from tests/ceph/up.sh stop serving for a
# while, and serve again: `ceph osd pause` sets the pauserd and pausewr
# flags, so every client read and write waits (until the client's
# rados_osd_op_timeout, then -ETIMEDOUT) as when the OSDs are down, and
# nothing is lost (the memstore OSD keeps running; stopping its process
# would drop its RAM-backed data).
#   tests/ceph/osd.sh DIR pause|unpause
set -euo pipefail
D=${1:?usage: osd.sh DIR pause|unpause}
what=${2:?usage: osd.sh DIR pause|unpause}
[ -e "$D/.dedup-ceph" ] || { echo "osd.sh: '$D' is not a cluster of up.sh" >&2; exit 2; }
export CEPH_CONF=$D/ceph.conf
case "$what" in
pause | unpause) timeout 60 ceph osd "$what" >/dev/null 2>&1 ;;
*) echo "osd.sh: pause or unpause, not '$what'" >&2; exit 2 ;;
esac
