#!/usr/bin/env bash
# tests/bench/rados-bench.sh - raw RADOS throughput and the storage
# backend's own, on one throw-away single-node Ceph (tests/ceph/up.sh), in
# the same run, so the ratios issue 12 asks for can be measured:
#   rados bench write (4 MiB objects, 16 in flight) and seq, MB/s
#   backend append and read (backend-bench: pack objects grown by appends)
#
#   O=build bash tests/bench/rados-bench.sh
# Env: DD_RB_SECONDS rados bench duration (default 10), DD_RB_MIB backend
# data (default 1024), DD_RB_APPEND_MIB (16), DD_RB_OBJECT_MIB (64),
# DD_RB_THREADS (1 2: one run per count), DD_RB_OUT result file (default
# $O/bench/rados-bench.txt). Memstore keeps the objects in RAM: the cluster
# gets CEPH_MEMSTORE_MB (default 6144) and objects are removed between runs.
set -euo pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=${O:-build}
case $O in /*) BUILD=$O ;; *) BUILD=$TOP/$O ;; esac
SECS=${DD_RB_SECONDS:-10}
MIB=${DD_RB_MIB:-1024}
APP=${DD_RB_APPEND_MIB:-16}
OBJ=${DD_RB_OBJECT_MIB:-64}
THREADS=${DD_RB_THREADS:-1 2}
OUT=${DD_RB_OUT:-$BUILD/bench/rados-bench.txt}

make -C "$TOP" -s O="$O" "$O/bench/backend-bench" "$O/dedup-backend-rados.so"
D=$(mktemp -d "${TMPDIR:-/tmp}/dedup-rb.XXXXXX")
trap 'bash "$TOP/tests/ceph/down.sh" "$D" >/dev/null 2>&1 || rm -rf "$D"' EXIT
CEPH_MEMSTORE_MB=${CEPH_MEMSTORE_MB:-6144} bash "$TOP/tests/ceph/up.sh" "$D" >/dev/null
# shellcheck disable=SC1091
. "$D/env"

bw() { sed -n 's/^Bandwidth (MB\/sec): *//p' | tail -n1; }
rados -p "$CEPH_POOL" bench "$SECS" write -b 4194304 -t 16 --no-cleanup >"$D/write.log"
w=$(bw <"$D/write.log")
rados -p "$CEPH_POOL" bench "$SECS" seq -t 16 >"$D/seq.log"
r=$(bw <"$D/seq.log")
rados -p "$CEPH_POOL" cleanup >/dev/null

mkdir -p "$(dirname "$OUT")"
{
	echo "# $(date -u +%FT%TZ) $(nproc) cores; single-node Ceph, 1 memstore OSD, size 1"
	echo "rados bench write 4MiB x16: $w MB/s"
	echo "rados bench seq   4MiB x16: $r MB/s"
	for t in $THREADS; do
		res=$(DEDUP_BACKEND_DIR=$BUILD "$BUILD/bench/backend-bench" \
			"rados:$CEPH_POOL/bench" "$MIB" "$APP" "$OBJ" "$t")
		a=$(sed -n 's/^append MB\/s \([0-9.]*\).*/\1/p' <<<"$res")
		rd=$(sed -n 's/^read MB\/s \([0-9.]*\).*/\1/p' <<<"$res")
		echo "backend append ${APP}MiB calls, ${OBJ}MiB objects, $t thread(s): $a MB/s (ratio to write $(awk -v a="$a" -v b="$w" 'BEGIN{printf "%.2f", a/b}'))"
		echo "backend read   ${APP}MiB ranges, $t thread(s): $rd MB/s (ratio to seq $(awk -v a="$rd" -v b="$r" 'BEGIN{printf "%.2f", a/b}'))"
	done
} | tee "$OUT"
