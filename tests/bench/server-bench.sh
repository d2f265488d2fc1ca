#!/usr/bin/env bash
# tests/bench/server-bench.sh - the server alone, under many clients and
# with a big index. `make bench-server` runs it; server_bench.c plays the
# clients (bundles built before the clock starts) and measures the floor,
# synth_index.c writes the synthetic index.
#
#   O=build bash tests/bench/server-bench.sh
#
# Environment:
#   DD_BENCH_DIR      work dir (repositories, logs, results); default
#                     /var/tmp/dedup-bench-server (the disk measured)
#   DD_BENCH_CLIENTS  concurrent clients, default "1 4 16 64" ("" none)
#   DD_BENCH_MB       MiB of unique chunks each client count sends in all,
#                     default 512
#   DD_BENCH_CHUNKS   chunks of the synthetic index, default 50000000
#   DD_BENCH_IDS      ids asked per missing-query run, default 4000000
#   DD_BENCH_GC       1 = time `gc --dry-run` on the synthetic index
#                     (default 1)
#   DD_BENCH_MEMCAP_MIB  the synthetic index asked again with the server in
#                     a memory cgroup of this size (anonymous memory and
#                     page cache, the index tables' pages included),
#                     default 256, 0 = skip; needs a writable memory
#                     cgroup (root), skipped with a note otherwise
#   DD_BENCH_MEMCAP_IDS  ids asked per run in the cgroup, default 500000
#   DD_BENCH_DOCS     1 = put the report in docs/BENCHMARKS.md (section
#                     "The server alone"); default: only a full run
#                     (DD_BENCH_CHUNKS >= 50000000, all four client counts)
#
# Writes $DD_BENCH_DIR/results.jsonl (one JSON object a measurement) and
# $DD_BENCH_DIR/server-bench.md; exits 1 when any step fails.
set -u -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
O=${O:-build}
case $O in /*) BUILD=$O ;; *) BUILD=$TOP/$O ;; esac
# DD_BENCH_SERVER: another dedup-server binary (a before/after comparison).
SERVER=${DD_BENCH_SERVER:-$BUILD/dedup-server}
LOAD=$BUILD/bench/server-bench
SYNTH=$BUILD/bench/synth-index

W=${DD_BENCH_DIR:-/var/tmp/dedup-bench-server}
CLIENTS=${DD_BENCH_CLIENTS-1 4 16 64}
MB=${DD_BENCH_MB:-512}
CHUNKS=${DD_BENCH_CHUNKS:-50000000}
IDS=${DD_BENCH_IDS:-4000000}
GC=${DD_BENCH_GC:-1}
DOCS=${DD_BENCH_DOCS:-}
MEMCAP=${DD_BENCH_MEMCAP_MIB:-256}
MEMCAP_IDS=${DD_BENCH_MEMCAP_IDS:-500000}
SEED=1
TICK=$(getconf CLK_TCK)

die() { echo "server-bench: $*" >&2; exit 1; }
for b in "$SERVER" "$LOAD" "$SYNTH"; do
	[ -x "$b" ] || die "missing $b (make all tests)"
done
rm -rf "$W"
mkdir -p "$W" || die "cannot make $W"
RES=$W/results.jsonl
: > "$RES"
SERVER_PID=
CG=       # a memory cgroup this script made (memcg_make), or empty
CGPROCS=  # when set, start() puts the server in that cgroup first
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; memcg_remove' EXIT

note() { printf '%s\n' "$1" >> "$RES"; }

# server_cpu PID: user+system CPU seconds so far.
server_cpu() {
	awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$1/stat"
}
# server_kib PID FIELD: VmRSS or VmHWM in KiB.
server_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# start REPO LOG: a server on a free loopback port, limits lifted so that
# only the server's work is measured; sets SERVER_PID and URL.
start() {
	local ready=$W/ready i
	rm -f "$ready"
	# A shell that joins the cgroup (when one is set) and execs the
	# server, so that $! is the server's own pid.
	# shellcheck disable=SC2016
	sh -c 'if [ -n "$0" ]; then echo $$ > "$0" || exit 1; fi; exec "$@"' \
		"$CGPROCS" "$SERVER" serve --config /dev/null --repo "$1" \
		--listen 127.0.0.1:0 --ready-file "$ready" \
		--set max_connections=512 --set per_ip_connections=0 \
		--set missing_ids_per_second=0 --set body_memory=0 \
		--set per_client_body_memory=0 2>>"$2" &
	SERVER_PID=$!
	for i in $(seq 1 600); do
		[ -s "$ready" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$ready" ] || die "the server did not start: $(tail -3 "$2")"
	URL=$(cat "$ready")
}

stop() {
	local i
	kill -TERM "$SERVER_PID" 2>/dev/null
	for i in $(seq 1 600); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID" 2>/dev/null
	SERVER_PID=
}

# memcg_make MIB: a fresh memory cgroup below this shell's own, limited
# to MIB MiB (cgroup v1 `memory.limit_in_bytes`, or v2 `memory.max`);
# sets CG, CGPROCS and CGPEAK (the file of its peak usage). Returns 1,
# leaving them empty, where no such cgroup can be made.
memcg_make() {
	local bytes=$(($1 * 1048576)) own dir
	own=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
	if [ -n "$own" ] && [ -w "/sys/fs/cgroup/memory$own" ]; then
		dir=/sys/fs/cgroup/memory$own/dedup-bench-$$
		mkdir "$dir" 2>/dev/null || return 1
		CG=$dir
		echo "$bytes" > "$dir/memory.limit_in_bytes" 2>/dev/null ||
			{ memcg_remove; return 1; }
		CGPEAK=$dir/memory.max_usage_in_bytes
	else
		own=$(sed -n 's/^0:://p' /proc/self/cgroup)
		dir=/sys/fs/cgroup$own/dedup-bench-$$
		[ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] || return 1
		mkdir "$dir" 2>/dev/null || return 1
		CG=$dir
		{ echo "$bytes" > "$dir/memory.max" && [ -r "$dir/memory.peak" ]; } \
			2>/dev/null || { memcg_remove; return 1; }
		CGPEAK=$dir/memory.peak
	fi
	CGPROCS=$CG/cgroup.procs
}

# Removes the cgroup memcg_make made (its processes have ended).
memcg_remove() {
	[ -n "$CG" ] && rmdir "$CG" 2>/dev/null
	CG=
	CGPROCS=
}

# measure KIND JSON-FROM-LOAD CPU0: the load's object with the server's
# CPU seconds and memory added.
measure() {
	local cpu1 rss hwm anon
	cpu1=$(server_cpu "$SERVER_PID")
	rss=$(server_kib "$SERVER_PID" VmRSS)
	hwm=$(server_kib "$SERVER_PID" VmHWM)
	anon=$(server_kib "$SERVER_PID" RssAnon)
	python3 -c 'import json,sys
o = json.loads(sys.argv[2]); o["kind"] = sys.argv[1]
o["server_cpu_s"] = round(float(sys.argv[4]) - float(sys.argv[3]), 2)
o["server_rss_mib"] = round(int(sys.argv[5]) / 1024, 1)
o["server_hwm_mib"] = round(int(sys.argv[6]) / 1024, 1)
o["server_anon_mib"] = round(int(sys.argv[7]) / 1024, 1)
print(json.dumps(o))' "$1" "$2" "$3" "$cpu1" "$rss" "$hwm" "$anon" >> "$RES"
}

note "{\"kind\": \"meta\", \"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\", \
\"load_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"nproc\": $(nproc), \
\"cpu\": \"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\", \
\"mem_gib\": $(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo), \
\"fs\": \"$(df -T "$W" | awk 'NR == 2 {print $2}')\", \
\"version\": \"$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)\", \
\"mb\": $MB, \"chunks\": $CHUNKS, \"ids\": $IDS}"

# ---- the floor: decompress + SHA-256 + write + fdatasync, one thread
out=$("$LOAD" floor "$W" "$MB" "$SEED") || die "floor failed"
note "${out%\}}, \"kind\": \"floor\"}"
echo "floor: $out"

# ---- N concurrent clients on a fresh repository each
for n in $CLIENTS; do
	R=$W/repo-$n
	"$SERVER" init --repo "$R" >/dev/null || die "init failed"
	TOK=$("$SERVER" token add --repo "$R" "bench") || die "token failed"
	start "$R" "$W/server-$n.log"
	cpu0=$(server_cpu "$SERVER_PID")
	out=$("$LOAD" upload "$URL" "$R/tls/cert.pem" "$TOK" "$n" "$MB" \
		"$SEED") || die "upload with $n clients failed: $out"
	measure upload "$out" "$cpu0"
	echo "upload N=$n: $(tail -1 "$RES")"
	cpu0=$(server_cpu "$SERVER_PID")
	out=$("$LOAD" missing "$URL" "$R/tls/cert.pem" "$TOK" "$n" "$IDS" \
		absent 0 "$SEED") || die "missing-query with $n clients failed"
	measure missing-small "$out" "$cpu0"
	echo "missing N=$n: $(tail -1 "$RES")"
	stop
	rm -rf "$R"
done

# ---- the synthetic index
R=$W/repo-synth
"$SERVER" init --repo "$R" >/dev/null || die "init failed"
TOK=$("$SERVER" token add --repo "$R" "bench") || die "token failed"
/usr/bin/time -f '%e %M' -o "$W/synth.time" \
	"$SYNTH" "$R" "$CHUNKS" "$SEED" > "$W/synth.out" || die "synth-index failed"
read -r st sk < "$W/synth.time"
ib=$(du -sb "$R/index" | cut -f1)
note "{\"kind\": \"synth\", \"chunks\": $CHUNKS, \"seconds\": $st, \
\"tool_rss_mib\": $((sk / 1024)), \"index_bytes\": $ib, \
\"files\": $(ls "$R/index" | grep -c '\.ldb$')}"
echo "synthetic index: $(tail -1 "$RES")"
t0=$(date +%s.%N)
start "$R" "$W/server-synth.log"
# How the server reads the index's tables (server/store/ldbenv.h): its log
# says "pread", or "mmap" for a build linked with LevelDB's shared library.
reads=$(sed -n 's/.*index tables read with \([a-z]*\).*/\1/p' \
	"$W/server-synth.log" | tail -n 1)
note "{\"kind\": \"open\", \"reads\": \"${reads:-unknown}\", \"seconds\": $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'), \
\"server_rss_mib\": $(( $(server_kib "$SERVER_PID" VmRSS) / 1024 ))}"
for kind in absent present; do
	for n in 1 4; do
		cpu0=$(server_cpu "$SERVER_PID")
		out=$("$LOAD" missing "$URL" "$R/tls/cert.pem" "$TOK" "$n" \
			"$IDS" "$kind" "$CHUNKS" "$SEED") ||
			die "missing-query ($kind, $n clients) failed"
		measure "index-$kind" "$out" "$cpu0"
		echo "index $kind N=$n: $(tail -1 "$RES")"
	done
done
stop

# ---- the same index, the server held to MEMCAP MiB in a memory cgroup:
# its anonymous memory and the page cache it reads (the index tables)
# are charged there, and the kernel takes pages back to stay under. The
# tables are first dropped from the page cache (filled by the writer and
# the runs above, so charged elsewhere) so that the server's reads are
# charged to its cgroup.
if [ "$MEMCAP" -gt 0 ] 2>/dev/null; then
	if memcg_make "$MEMCAP"; then
		for f in "$R"/index/*.ldb; do
			dd if="$f" iflag=nocache count=0 status=none 2>/dev/null
		done
		start "$R" "$W/server-capped.log"
		failed=
		for kind in absent present; do
			for n in 1 4; do
				[ -z "$failed" ] || break
				cpu0=$(server_cpu "$SERVER_PID")
				if out=$(timeout 300 "$LOAD" missing "$URL" \
					"$R/tls/cert.pem" "$TOK" "$n" "$MEMCAP_IDS" \
					"$kind" "$CHUNKS" "$SEED"); then
					measure "capped-$kind" "$out" "$cpu0"
					echo "capped $kind N=$n: $(tail -1 "$RES")"
				elif kill -0 "$SERVER_PID" 2>/dev/null; then
					# Reported, not fatal: what a server held this
					# tight does is the measurement.
					failed="$kind ids, $n clients: not answered within 300 s"
					echo "capped $kind N=$n: $failed"
				else
					failed="$kind ids, $n clients: the server was killed (out of memory in its cgroup)"
					echo "capped $kind N=$n: $failed"
				fi
			done
		done
		peak=$(( $(cat "$CGPEAK") / 1048576 ))
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			stop
		else
			wait "$SERVER_PID" 2>/dev/null
			SERVER_PID=
		fi
		note "{\"kind\": \"capped\", \"cap_mib\": $MEMCAP, \
\"peak_mib\": $peak, \"ids\": $MEMCAP_IDS${failed:+, \"failed\": \"$failed\"}}"
		memcg_remove
	else
		note "{\"kind\": \"capped\", \"cap_mib\": $MEMCAP, \"skipped\": \"no writable memory cgroup\"}"
		echo "capped runs skipped: no writable memory cgroup here"
	fi
fi
# The collector's own memory is its anonymous RSS (RssAnon), sampled
# while it runs; its peak RSS also counts the files it maps (the index
# tables too, where LevelDB maps them).
if [ "$GC" = 1 ]; then
	/usr/bin/time -f '%e %M' -o "$W/gc.time" \
		"$SERVER" gc --repo "$R" --dry-run > "$W/gc.out" 2>&1 &
	gpid=$!
	anon=0
	while kill -0 "$gpid" 2>/dev/null; do
		for p in $(pgrep -P "$gpid") "$gpid"; do
			a=$(server_kib "$p" RssAnon 2>/dev/null)
			[ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
		done
		sleep 0.05
	done
	wait "$gpid" || die "gc failed: $(tail -3 "$W/gc.out")"
	read -r gs gk < <(tail -1 "$W/gc.time")
	fb=$(sed -n 's/^gc: mark filter \([0-9.]*\) MiB.*/\1/p' "$W/gc.out")
	note "{\"kind\": \"gc\", \"seconds\": $gs, \"rss_mib\": $((gk / 1024)), \
\"anon_mib\": $((anon / 1024)), \"filter_mib\": ${fb:-0}}"
	echo "gc --dry-run: $(tail -1 "$RES")"
fi
rm -rf "$R"

# ---- the report
full=0
[ "$CHUNKS" -ge 50000000 ] && [ "$CLIENTS" = "1 4 16 64" ] && full=1
case $DOCS in 1 | yes) full=1 ;; 0 | no) full=0 ;; esac
docs=()
[ "$full" = 1 ] && docs=("$TOP/docs/BENCHMARKS.md")
python3 "$HERE/server_report.py" "$RES" "$W/server-bench.md" "${docs[@]}" ||
	die "report failed"
echo "results: $RES"
echo "report:  $W/server-bench.md ${docs[*]}"
