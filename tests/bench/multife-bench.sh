#!/usr/bin/env bash
# tests/bench/multife-bench.sh - several front-ends on one pool (docs/
# STORAGE.md, "Several front-ends on one pool"), on a throw-away single-node
# Ceph (tests/ceph/up.sh): for N = 1, 2, 3 front-ends (init --store, then
# init --join), N agents at once, one per front-end, each backing up its
# own DD_MF_MIB MiB of unique (incompressible) data. Reports per N:
#   aggregate ingest MB/s (all bytes / wall time of the slowest agent),
#   CPU seconds per GB ingested on each front-end (user + system),
#   backend operations per GB stored (every front-end's count, which each
#   serve logs at exit: appends, omap batches, reads, heartbeats...).
#
#   O=build bash tests/bench/multife-bench.sh
# Env: DD_MF_MIB (default 256), DD_MF_COUNTS (default "1 2 3"), DD_MF_OUT
# (default $O/bench/multife-bench.txt).
set -euo pipefail
export LC_ALL=C
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
O=${O:-build}
case $O in /*) BUILD=$O ;; *) BUILD=$TOP/$O ;; esac
MIB=${DD_MF_MIB:-256}
COUNTS=${DD_MF_COUNTS:-1 2 3}
OUT=${DD_MF_OUT:-$BUILD/bench/multife-bench.txt}
mkdir -p "$(dirname "$OUT")"

make -C "$TOP" -s O="$O" "$O/dedup-backend-rados.so" "$O/dedup-server" "$O/dedup-agent"
D=$(mktemp -d "${TMPDIR:-/tmp}/dedup-mf.XXXXXX")
PIDS=()
stop_all() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
trap 'stop_all; bash "$TOP/tests/ceph/down.sh" "$D/ceph" >/dev/null 2>&1; rm -rf "$D"' EXIT
CEPH_MEMSTORE_MB=${CEPH_MEMSTORE_MB:-6144} bash "$TOP/tests/ceph/up.sh" "$D/ceph" >/dev/null
# shellcheck disable=SC1091
. "$D/ceph/env"
export DEDUP_BACKEND_DIR=$BUILD
S=$BUILD/dedup-server
TCK=$(getconf CLK_TCK)

gen() { # gen DIR SEED: MIB MiB of unique bytes in 64 MiB files
	mkdir -p "$1"
	local i
	for i in $(seq 1 $(( (MIB + 63) / 64 ))); do
		head -c $((64 << 20)) /dev/zero |
			openssl enc -aes-128-ctr -K "$(printf '%016x%016x' "$2" "$i")" -iv 0 -nosalt 2>/dev/null \
			> "$1/f$i.bin"
	done
}
cpu_s() { awk -v t="$TCK" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

{
echo "# multife-bench: $(date -u +%FT%TZ), $(nproc) cores, $MIB MiB unique a agent"
for n in $COUNTS; do
	W=$D/n$n
	mkdir -p "$W"
	NS=mf$n
	"$S" init --repo "$W/fe0" --store "rados:$CEPH_POOL/$NS" --config /dev/null >/dev/null
	for f in $(seq 1 $((n - 1))); do
		"$S" init --repo "$W/fe$f" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null >/dev/null
	done
	toks=()
	for f in $(seq 0 $((n - 1))); do toks+=("$("$S" token add --repo "$W/fe0" "c$f")"); done
	urls=()
	for f in $(seq 0 $((n - 1))); do
		"$S" serve --config /dev/null --repo "$W/fe$f" --listen 127.0.0.1:0 \
			--ready-file "$W/ready$f" 2>"$W/log$f" &
		PIDS+=($!)
	done
	for f in $(seq 0 $((n - 1))); do
		for _ in $(seq 1 200); do [ -s "$W/ready$f" ] && break; sleep 0.05; done
		urls+=("$(cat "$W/ready$f")")
		gen "$W/src$f" $((n * 10 + f))
	done
	sleep 3   # tokens reach every front-end (2 s tick)
	cpu0=()
	for f in $(seq 0 $((n - 1))); do cpu0+=("$(cpu_s "${PIDS[$f]}")"); done
	t0=$(date +%s.%N)
	apids=()
	for f in $(seq 0 $((n - 1))); do
		DEDUP_STATE_DIR=$W/state$f "$BUILD/dedup-agent" --server "${urls[$f]}" \
			--token "${toks[$f]}" --ca "$W/fe$f/tls/cert.pem" backup --json "$W/src$f" \
			> "$W/out$f" 2>"$W/err$f" &
		apids+=($!)
	done
	for p in "${apids[@]}"; do wait "$p" || { echo "multife-bench: a backup failed" >&2; cat "$W"/err*; exit 1; }; done
	t1=$(date +%s.%N)
	bytes=$(du -sbc "$W"/src* | tail -n1 | cut -f1)
	cpus=
	for f in $(seq 0 $((n - 1))); do
		c=$(awk -v a="${cpu0[$f]}" -v b="$(cpu_s "${PIDS[$f]}")" -v g="$(du -sb "$W/src$f" | cut -f1)" \
			'BEGIN{printf "%.1f", (b - a) / (g / 1e9)}')
		cpus="$cpus fe$f=$c"
	done
	stop_all
	ops=0
	for f in $(seq 0 $((n - 1))); do
		o=$(sed -n 's/.*storage: \([0-9]*\) backend operation.*/\1/p' "$W/log$f" | tail -n1)
		ops=$((ops + ${o:-0}))
	done
	stored=$(rados -p "$CEPH_POOL" -N "$NS" ls | grep '^packs/' |
		while read -r o; do rados -p "$CEPH_POOL" -N "$NS" stat "$o"; done |
		awk '{s += $NF} END {print s + 0}')
	echo "front-ends=$n agents=$n bytes=$bytes ingest_MBps=$(awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN{printf "%.0f", b/1e6/(c-a)}') cpu_s_per_GB:$cpus backend_ops=$ops stored=$stored ops_per_GB=$(awk -v o="$ops" -v s="$stored" 'BEGIN{printf "%.0f", o/(s/1e9)}')"
	rm -rf "$W"/src*
	rados -p "$CEPH_POOL" -N "$NS" ls | while read -r o; do rados -p "$CEPH_POOL" -N "$NS" rm "$o"; done
done
} | tee "$OUT"
