#!/usr/bin/env bash
# tests/bench/rados-bench.sh - raw RADOS throughput and the storage
# backend's own, on one throw-away single-node Ceph (tests/ceph/up.sh), in
# the same run, so the ratios issue 12 asks for can be measured:
#   rados bench write (4 MiB objects, 16 in flight) and seq, MB/s
#   backend append and read (backend-bench: pack objects grown by appends)
#   dedup: a first backup of unique data into a repository on the pool
#   (init --store rados:POOL/NS) and its restore, as ratios of write/seq
#   the server alone: server-bench's pre-built bundles uploaded and
#   fetched back, as ratios of write/seq
#
#   O=build bash tests/bench/rados-bench.sh
# Env: DD_RB_SECONDS rados bench duration (default 10), DD_RB_MIB backend
# data (default 1024), DD_RB_APPEND_MIB (16), DD_RB_OBJECT_MIB (64),
# DD_RB_THREADS (1 2: one run per count), DD_RB_OUT result file (default
# $O/bench/rados-bench.txt), DD_RB_DEDUP_MIB data backed up (default 512),
# DD_RB_CLIENTS the load generator's connections (default 4). Memstore
# keeps the objects in RAM: the cluster
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

make -C "$TOP" -s O="$O" "$O/bench/backend-bench" "$O/dedup-backend-rados.so" \
	"$O/dedup-server" "$O/dedup-agent"
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

# dedup itself: one agent, a first backup of unique (incompressible) data
# into a repository on the pool, then its restore, both timed end to end.
DMIB=${DD_RB_DEDUP_MIB:-512}
W=$D/dedup
mkdir -p "$W/src"
for i in $(seq 1 $((DMIB / 64))); do
	head -c $((64 << 20)) /dev/zero |
		openssl enc -aes-128-ctr -K "$(printf '%032x' "$i")" -iv 0 -nosalt 2>/dev/null \
		> "$W/src/f$i.bin"
done
bytes=$(du -sb "$W/src" | cut -f1)
export DEDUP_BACKEND_DIR=$BUILD DEDUP_STATE_DIR=$W/state
"$BUILD/dedup-server" init --repo "$W/repo" --store "rados:$CEPH_POOL/dedup" --config /dev/null >/dev/null
tok=$("$BUILD/dedup-server" token add --repo "$W/repo" bench)
"$BUILD/dedup-server" serve --config /dev/null --repo "$W/repo" --listen 127.0.0.1:0 \
	--ready-file "$W/ready" 2>"$W/server.log" &
spid=$!
trap 'kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; bash "$TOP/tests/ceph/down.sh" "$D" >/dev/null 2>&1 || rm -rf "$D"' EXIT
for _ in $(seq 1 200); do [ -s "$W/ready" ] && break; sleep 0.05; done
ag() { "$BUILD/dedup-agent" --server "$(cat "$W/ready")" --token "$tok" --ca "$W/repo/tls/cert.pem" "$@"; }
t0=$(date +%s.%N)
id=$(ag backup --json "$W/src" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')
t1=$(date +%s.%N)
ag restore "$id" --target "$W/out" >/dev/null
t2=$(date +%s.%N)
cmp -s "$W/src/f1.bin" "$W/out/$W/src/f1.bin" || { echo "rados-bench: the restore differs" >&2; exit 1; }
ing=$(awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN{printf "%.0f", b/1e6/(c-a)}')
rst=$(awk -v b="$bytes" -v a="$t1" -v c="$t2" 'BEGIN{printf "%.0f", b/1e6/(c-a)}')
{
	echo "dedup first backup, $DMIB MiB unique, 1 agent: $ing MB/s (ratio to write $(awk -v a="$ing" -v b="$w" 'BEGIN{printf "%.2f", a/b}'))"
	echo "dedup restore of it:                          $rst MB/s (ratio to seq $(awk -v a="$rst" -v b="$r" 'BEGIN{printf "%.2f", a/b}'))"
} | tee -a "$OUT"

# The server alone (agent's reading, chunking, hashing and compressing
# left out: on 2 shared cores they compete with the server): the load
# generator's pre-built bundles, DD_RB_CLIENTS connections (default 4),
# uploaded into a second repository on the pool, then fetched back (every
# record compared with what was sent). Ratios use the bytes RADOS stores
# (the compressed chunks, "wire" MB) and, beside them, the plain MB.
kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
NC=${DD_RB_CLIENTS:-4}
make -C "$TOP" -s O="$O" "$O/bench/server-bench"
"$BUILD/dedup-server" init --repo "$W/srv" --store "rados:$CEPH_POOL/srv" --config /dev/null >/dev/null
tok=$("$BUILD/dedup-server" token add --repo "$W/srv" bench)
rm -f "$W/ready"
"$BUILD/dedup-server" serve --config /dev/null --repo "$W/srv" --listen 127.0.0.1:0 \
	--ready-file "$W/ready" --set per_ip_connections=0 --set missing_ids_per_second=0 \
	2>"$W/srv.log" &
spid=$!
for _ in $(seq 1 200); do [ -s "$W/ready" ] && break; sleep 0.05; done
sb() { "$BUILD/bench/server-bench" "$1" "$(cat "$W/ready")" "$W/srv/tls/cert.pem" "$tok" "$NC" "$DMIB"; }
up=$(sb upload) || { echo "rados-bench: server-bench upload failed" >&2; exit 1; }
fe=$(sb fetch) || { echo "rados-bench: server-bench fetch failed" >&2; exit 1; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
wmb() { awk -v m="$(field "$1" wire_mb)" -v s="$(field "$1" seconds)" 'BEGIN{printf "%.0f", m/s}'; }
uw=$(wmb "$up"); fw=$(wmb "$fe")
{
	echo "server alone, ingest, $NC connections: $uw MB/s stored ($(field "$up" mb_per_s) MB/s plain) (ratio to write $(ratio "$uw" "$w"))"
	echo "server alone, fetch,  $NC connections: $fw MB/s stored ($(field "$fe" mb_per_s) MB/s plain) (ratio to seq $(ratio "$fw" "$r"))"
} | tee -a "$OUT"
