#!/usr/bin/env bash
# Stops the Ceph daemons that tests/ceph/up.sh started under DIR, by the
# PIDs in their pid files (TERM, then KILL after 10 s), and deletes DIR.
#   tests/ceph/down.sh [DIR] [--keep]     DIR defaults to CEPH_DIR;
#                                         --keep leaves DIR (for its logs)
# Refuses a directory that up.sh did not make.
set -u
D=${1:-${CEPH_DIR:-}}
keep=${2:-}
if [ -z "$D" ] || [ ! -e "$D/.dedup-ceph" ]; then
	echo "down.sh: '${D}' is not a directory made by tests/ceph/up.sh" >&2
	exit 2
fi
D=$(cd "$D" && pwd)   # as up.sh named it in CEPH_CONF
pids=()
for f in "$D"/run/*.pid; do
	[ -f "$f" ] || continue
	p=$(cat "$f")
	case "$p" in '' | *[!0-9]*) continue ;; esac
	# only a ceph daemon of this cluster: its pid file could be stale, and
	# the PID another cluster's daemon by now (up.sh starts them with
	# CEPH_CONF naming this directory's file)
	grep -qa -- "^ceph-" "/proc/$p/cmdline" 2>/dev/null || continue
	tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null |
		grep -qxF -- "CEPH_CONF=$D/ceph.conf" || continue
	kill -TERM "$p" 2>/dev/null && pids+=("$p")
done
for _ in $(seq 1 100); do
	alive=0
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
	[ "$alive" = 0 ] && break
	sleep 0.1
done
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p"; done
[ "$keep" = --keep ] || rm -rf "$D"
exit 0
