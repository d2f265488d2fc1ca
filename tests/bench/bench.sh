#!/usr/bin/env bash
# tests/bench/bench.sh - dedup against restic and borg on the same generated
# data in the same run. `make bench` runs it; gen.c makes the data, report.py
# the markdown report.
#
#   O=build bash tests/bench/bench.sh
#
# Environment:
#   DD_BENCH_DIR          work dir (data, repositories, logs, raw TSV);
#                         default /var/tmp/dedup-bench
#   DD_BENCH_SCALE        data size factor, default 1.0 (~1.5 GB mixed tree,
#                         ~300 MB x 11 generations, 2 x 512 MB images);
#                         0.05 is a smoke run of a few minutes
#   DD_BENCH_TOOLS        subset of "dedup restic borg" (the default)
#   DD_BENCH_SEED         data seed, default 1
#   DD_BENCH_GENERATIONS  generations after gen-0, default 10
#   DD_BENCH_STEP_TIMEOUT seconds any single tool command may take, default 3600
#   DD_BENCH_CHUNKER      dedup chunk sizes MIN,AVG,MAX (dedup-server init
#                         --chunker), default: the repository default
#   DD_BENCH_ENCRYPTED    1 (default) = also time dedup's encrypted first
#                         backup and restore of the mixed tree, 0 = skip
#   DD_BENCH_SETTLE       seconds to wait after sync before each first
#                         backup and restore, default 3
#   DD_BENCH_RESTORE_FS   1 (default) = as root, restore into (and extract
#                         the tar floor into) a fresh ext4 made for the run
#                         on a loop device; 0 = into the work dir
#   DD_BENCH_DOCS         1 = write docs/BENCHMARKS.md, 0 = never; default:
#                         only for a full run (scale 1, all three tools).
#                         The report is always written to $DD_BENCH_DIR.
#
# Every tool gets one fresh repository that holds everything, in this order:
# mixed tree (first backup, unchanged re-backup, a copy of it at a second
# path, restore + diff -r),
# generations gen-0..gen-N backed up from one fixed path, then disk image A
# and image B backed up from one fixed path.
set -u -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
O=${O:-build}
case $O in /*) BUILD=$O ;; *) BUILD=$TOP/$O ;; esac
AGENT=$BUILD/dedup-agent
SERVER=$BUILD/dedup-server

W=${DD_BENCH_DIR:-/var/tmp/dedup-bench}
SCALE=${DD_BENCH_SCALE:-1.0}
TOOLS=${DD_BENCH_TOOLS:-dedup restic borg}
SEED=${DD_BENCH_SEED:-1}
NGEN=${DD_BENCH_GENERATIONS:-10}
STEP_TIMEOUT=${DD_BENCH_STEP_TIMEOUT:-3600}
DOCS=${DD_BENCH_DOCS:-auto}
TIME=/usr/bin/time

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "== $(date +%H:%M:%S) $*"; }
loud() {
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
	echo "!!! $*" >&2
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

# ---------------------------------------------------------------- checks

if ! [[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v s="$SCALE" 'BEGIN{exit !(s > 0 && s <= 10)}'; then
	die "DD_BENCH_SCALE must be a number in (0, 10], got '$SCALE'"
fi
[[ $SEED =~ ^[0-9]+$ ]] || die "DD_BENCH_SEED must be an integer"
if ! [[ $NGEN =~ ^[0-9]+$ ]] || [ "$NGEN" -lt 1 ] || [ "$NGEN" -gt 100 ]; then
	die "DD_BENCH_GENERATIONS must be 1..100"
fi
[[ $STEP_TIMEOUT =~ ^[0-9]+$ ]] || die "DD_BENCH_STEP_TIMEOUT must be seconds"
read -r -a TOOL_LIST <<<"$TOOLS"
[ ${#TOOL_LIST[@]} -gt 0 ] || die "DD_BENCH_TOOLS is empty"
for t in "${TOOL_LIST[@]}"; do
	case $t in
	dedup) if [ ! -x "$AGENT" ] || [ ! -x "$SERVER" ]; then
		die "dedup binaries missing ($AGENT, $SERVER): run make"
	fi ;;
	restic | borg) command -v "$t" >/dev/null || die "$t is not installed" ;;
	*) die "unknown tool '$t' (choose from: dedup restic borg)" ;;
	esac
done
[ -x "$TIME" ] || die "$TIME (GNU time) is needed for peak RSS"
command -v python3 >/dev/null || die "python3 is needed for the report"
command -v cc >/dev/null || die "a C compiler (cc) is needed for the data generator"

mkdir -p "$W" || die "cannot create $W"
W=$(cd "$W" && pwd)
avail_kb=$(df -Pk "$W" | awk 'NR==2{print $4}')
need_kb=$(awk -v s="$SCALE" 'BEGIN{printf "%d", s * 16 * 1024 * 1024}')
if [ "${avail_kb:-0}" -lt "$need_kb" ]; then
	echo "bench: warning: $W has $((avail_kb / 1024)) MiB free; a run at scale $SCALE" \
		"needs about $((need_kb / 1024)) MiB" >&2
fi

# Run private copies of the dedup binaries, so a rebuild during the run
# cannot swap them mid-benchmark.
case " $TOOLS " in
*" dedup "*)
	if ! { mkdir -p "$W/bin" && cp -f "$AGENT" "$W/bin/dedup-agent" &&
		cp -f "$SERVER" "$W/bin/dedup-server"; }; then
		die "cannot copy the dedup binaries into $W/bin"
	fi
	AGENT=$W/bin/dedup-agent
	SERVER=$W/bin/dedup-server
	;;
esac

RUN_ID=$(date +%Y%m%d-%H%M%S)
D=$W/data
RUN=$W/run
LOGS=$W/logs/$RUN_ID
TSV=$W/results-$RUN_ID.tsv
GENCUR=$W/gen-current
IMGCUR=$W/img-current
# Nothing is deleted while tools are timed: ext4 without a journal skips
# inodes freed in the last seconds to minutes when it allocates new ones,
# which slows creating files after a large delete (GNU tar extracting the
# mixed tree 2 s after deleting 62,000 files: 8.9 s instead of 5.5 s).
# So the last run's files are moved aside now and deleted at the end, with
# the restored trees of this run.
TRASH=$W/trash-$RUN_ID
if [ -e "$RUN" ]; then
	mv "$RUN" "$TRASH" || die "cannot move the last run's files aside"
fi
mkdir -p "$LOGS" "$RUN"
printf 'tool\tkind\tstep\tseconds\trss_kib\trc\tvalue\tnote\n' >"$TSV"
ln -sfn "$(basename "$TSV")" "$W/results-latest.tsv"

# record TOOL KIND STEP SECONDS RSS_KIB RC VALUE NOTE
record() {
	local IFS=$'\t'
	printf '%s\n' "$*" | tr -d '\n' >>"$TSV"
	printf '\n' >>"$TSV"
}
meta() { record meta meta "$1" "" "" 0 "$2" ""; }

# ------------------------------------------------------------------ data

say "compiling the data generator"
cc -O2 -o "$W/gen" "$HERE/gen.c" -lm || die "cannot compile $HERE/gen.c"
GEN=$W/gen
STAMP="gen.c=$(sha256sum "$HERE/gen.c" | cut -c1-16) seed=$SEED scale=$SCALE generations=$NGEN"
if [ "$(cat "$D/stamp" 2>/dev/null)" = "$STAMP" ]; then
	say "reusing data in $D ($STAMP)"
else
	say "generating data in $D ($STAMP)"
	if [ -e "$D" ]; then
		mv "$D" "$TRASH-data" || die "cannot move the old data aside"
	fi
	mkdir -p "$D"
	t0=$EPOCHREALTIME
	timeout 3600 "$GEN" mixed "$D/mixed" "$SEED" "$SCALE" >"$D/mixed.log" ||
		die "generating the mixed tree failed"
	timeout 3600 "$GEN" generations "$D/gens" "$SEED" "$NGEN" "$SCALE" >"$D/gens.log" ||
		die "generating the generations failed"
	timeout 3600 "$GEN" images "$D/images" "$SEED" "$SCALE" >"$D/images.log" ||
		die "generating the images failed"
	echo "$STAMP" >"$D/stamp"
	say "data generated in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
fi
MIXED=$D/mixed
# The mixed tree again at a second path (a second machine built from the
# same template): every chunk is known after the first backup, but no tool
# has a parent snapshot or files cache entry for these paths.
MIXCOPY=$W/mixed-copy
if [ "$(cat "$MIXCOPY.stamp" 2>/dev/null)" != "$STAMP" ]; then
	say "copying the mixed tree to $MIXCOPY"
	rm -rf "$MIXCOPY"
	cp -a "$MIXED" "$MIXCOPY" || die "cannot copy the mixed tree"
	echo "$STAMP" >"$MIXCOPY.stamp"
fi

tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END{printf "%d", s}'; }
tree_files() { find "$1" -type f | wc -l; }
MIXED_BYTES=$(tree_bytes "$MIXED")
MIXED_FILES=$(tree_files "$MIXED")
GEN0_BYTES=$(tree_bytes "$D/gens/gen-0")
GEN0_FILES=$(tree_files "$D/gens/gen-0")
GENN_BYTES=$(tree_bytes "$D/gens/gen-$NGEN")
IMG_BYTES=$(stat -c %s "$D/images/a.img")
[ "$MIXED_BYTES" -gt 0 ] || die "empty mixed tree"

meta scale "$SCALE"
meta seed "$SEED"
meta generations "$NGEN"
meta tools "$TOOLS"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta nproc "$(nproc)"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
meta ram_kib "$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
meta kernel "$(uname -sr)"
meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC1091
meta os "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
meta fs "$(df -PT "$W" | awk 'NR==2{print $2}') at $W"

# ------------------------------------------------------- restore targets

# The restored trees and the `tar x` floor go to a file system made for
# this run, when root can make one: a fresh ext4 with a journal on a loop
# device (direct I/O, so that its writes reach the disk as the work dir's
# do) over a sparse file in the work dir, removed at the end. The work
# dir's own history then cannot move the restore rows: ext4 without a
# journal (these machines' work disk) scans the inodes freed in the last
# minutes when it makes a file, and whatever deleted files before the run
# (the last run's cleanup, another job) slowed the restores it then timed
# by up to half (docs/FLOORS.md, "An ext4 without a journal after a large
# delete"). Elsewhere, or with DD_BENCH_RESTORE_FS=0, into the work dir.
RFS=$W/restore-fs
RFS_IMG=$W/restore-fs.img
RFS_DEV=
restore_fs_down() {
	local dev
	if mountpoint -q "$RFS" 2>/dev/null; then
		umount "$RFS" || loud "cannot unmount $RFS"
	fi
	for dev in $RFS_DEV $(losetup -j "$RFS_IMG" 2>/dev/null | cut -d: -f1); do
		losetup -d "$dev" 2>/dev/null
	done
	RFS_DEV=
	rm -f "$RFS_IMG"
	rmdir "$RFS" 2>/dev/null
	return 0
}
restore_fs_up() {
	local mib=$((MIXED_BYTES * 6 / 1048576 + 4096))
	[ "${DD_BENCH_RESTORE_FS:-1}" = 1 ] && [ "$(id -u)" = 0 ] || return 1
	command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null &&
		command -v mountpoint >/dev/null || return 1
	restore_fs_down     # what an interrupted run left
	truncate -s "${mib}M" "$RFS_IMG" || { rm -f "$RFS_IMG"; return 1; }
	RFS_DEV=$(losetup --direct-io=on -f --show "$RFS_IMG" 2>/dev/null) ||
		{ RFS_DEV=; rm -f "$RFS_IMG"; return 1; }
	# inode tables and journal written now, not by a background thread
	# while tools are timed
	if ! mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 \
		"$RFS_DEV" >/dev/null 2>&1 || ! mkdir -p "$RFS" ||
		! mount "$RFS_DEV" "$RFS"; then
		restore_fs_down
		return 1
	fi
}
trap restore_fs_down EXIT     # replaced by cleanup (below), which does it too
if restore_fs_up; then
	RT=$RFS
	meta restore_fs "a fresh ext4 (with a journal) on a loop device, made for the run"
	say "restores go to a fresh ext4 on $RFS_DEV"
else
	RT=$RUN/restores
	mkdir -p "$RT"
	meta restore_fs "the work dir"
	say "restores go to the work dir"
fi
meta mixed_bytes "$MIXED_BYTES"
meta mixed_files "$MIXED_FILES"
meta gen0_bytes "$GEN0_BYTES"
meta gen0_files "$GEN0_FILES"
meta genN_bytes "$GENN_BYTES"
meta image_bytes "$IMG_BYTES"
meta gens_log "$(tr '\n' ';' <"$D/gens.log")"
meta images_log "$(tr '\n' ';' <"$D/images.log")"
meta dedup_version "$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)"
command -v restic >/dev/null && meta restic_version "$(restic version 2>/dev/null | head -n1)"
command -v borg >/dev/null && meta borg_version "$(borg --version 2>/dev/null | head -n1)"

# --------------------------------------------------------------- measuring

# measure TOOL STEP OUT cmd...: runs cmd under GNU time and timeout,
# stdout to OUT; sets M_SECS, M_RSS (KiB), M_RC.
measure() {
	local tool=$1 step=$2 out=$3
	shift 3
	local tf=$LOGS/$tool.$step.time err=$LOGS/$tool.$step.err t0 t1
	t0=$EPOCHREALTIME
	"$TIME" -v -o "$tf" timeout -k 30 "$STEP_TIMEOUT" "$@" >"$out" 2>"$err"
	M_RC=$?
	t1=$EPOCHREALTIME
	M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
	M_RSS=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$tf" 2>/dev/null)
	M_RSS=${M_RSS:-0}
	M_CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/{s+=$2} END{printf "%.2f", s}' "$tf" 2>/dev/null)
	if [ "$M_RC" != 0 ]; then
		local why="exit $M_RC"
		[ "$M_RC" = 124 ] && why="timed out after ${STEP_TIMEOUT} s"
		loud "$tool $step FAILED ($why); last lines of $err:"
		tail -n 15 "$err" >&2
	fi
	printf '   %-7s %-9s %8.2f s  %7d MiB rss  %7.2f s cpu%s\n' "$tool" "$step" "$M_SECS" \
		"$((M_RSS / 1024))" "${M_CPU:-0}" "$([ "$M_RC" = 0 ] || echo "  FAILED rc=$M_RC")"
}

repo_bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

# ----------------------------------------------------------------- dedup

SRV_PID=
SRV_TIME_PID=
SRV_RSS_HWM=0

dedup_server_start() {
	local ready=$RUN/dedup/ready pidf=$RUN/dedup/server.pid
	rm -f "$ready" "$pidf"
	# GNU time runs a shell that records its pid and execs the server, so the
	# server's own pid is known for SIGTERM and time reports its peak RSS.
	# shellcheck disable=SC2016
	"$TIME" -v -o "$RUN/dedup/server.time" \
		bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidf" \
		"$SERVER" serve --repo "$DREPO" --listen 127.0.0.1:0 --ready-file "$ready" \
		>>"$LOGS/dedup.server.log" 2>&1 &
	SRV_TIME_PID=$!
	for _ in $(seq 1 600); do
		[ -s "$ready" ] && break
		kill -0 "$SRV_TIME_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$pidf" ] && SRV_PID=$(cat "$pidf")
	if [ ! -s "$ready" ]; then
		loud "dedup-server did not become ready; log:"
		tail -n 20 "$LOGS/dedup.server.log" >&2
		return 1
	fi
	URL=$(head -n1 "$ready")
	case $URL in
	https://127.0.0.1:*) ;;
	*) loud "dedup-server ready file says '$URL', expected https://127.0.0.1:PORT"; return 1 ;;
	esac
	export DEDUP_SERVER=$URL DEDUP_TOKEN=$DTOKEN DEDUP_CA=$DREPO/tls/cert.pem
}

dedup_server_alive() { [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; }

# The server's CPU seconds so far (user + system, from /proc), or empty.
dedup_server_cpu() {
	[ -n "$SRV_PID" ] || return 0
	awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' \
		"/proc/$SRV_PID/stat" 2>/dev/null
}

dedup_server_hwm() {
	local h
	if [ -n "$SRV_PID" ] && h=$(awk '/^VmHWM:/{print $2}' "/proc/$SRV_PID/status" 2>/dev/null) &&
		[ -n "$h" ] && [ "$h" -gt "$SRV_RSS_HWM" ]; then
		SRV_RSS_HWM=$h
	fi
}

# Stops only the server this script started; sets SRV_RSS (KiB).
dedup_server_stop() {
	SRV_RSS=0
	[ -n "$SRV_TIME_PID" ] || return 0
	dedup_server_hwm
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -TERM "$SRV_PID" 2>/dev/null
		for _ in $(seq 1 300); do
			kill -0 "$SRV_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$SRV_PID" 2>/dev/null; then
			loud "dedup-server ignored SIGTERM for 30 s; sending SIGKILL"
			kill -KILL "$SRV_PID" 2>/dev/null
		fi
	fi
	for _ in $(seq 1 100); do
		kill -0 "$SRV_TIME_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$SRV_TIME_PID" 2>/dev/null && kill -KILL "$SRV_TIME_PID" 2>/dev/null
	wait "$SRV_TIME_PID" 2>/dev/null
	SRV_RSS=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' \
		"$RUN/dedup/server.time" 2>/dev/null)
	[ -n "$SRV_RSS" ] && [ "$SRV_RSS" -gt 0 ] || SRV_RSS=$SRV_RSS_HWM
	SRV_PID=
	SRV_TIME_PID=
}

dedup_setup() {
	DREPO=$RUN/dedup/repo
	DHOME=$RUN/dedup/home
	mkdir -p "$DHOME"
	"$SERVER" init --repo "$DREPO" ${DD_BENCH_CHUNKER:+--chunker "$DD_BENCH_CHUNKER"} >"$LOGS/dedup.init.log" 2>&1 ||
		{ loud "dedup-server init failed"; cat "$LOGS/dedup.init.log" >&2; return 1; }
	DTOKEN=$("$SERVER" token add --repo "$DREPO" bench 2>>"$LOGS/dedup.init.log") ||
		{ loud "dedup-server token add failed"; return 1; }
	dedup_server_start
}

dedup_repo() { echo "$DREPO"; }

# The agent gets a private HOME and XDG dirs inside the work dir for any
# cache it keeps; connection settings come from DEDUP_* (see dedup_server_start).
dedup_agent() {
	DAGENT=(env HOME="$DHOME" XDG_CACHE_HOME="$DHOME/.cache" XDG_CONFIG_HOME="$DHOME/.config"
		"$AGENT")
}

# dedup_backup STEP PATH: sets SNAP, NOTE
dedup_backup() {
	local out=$LOGS/dedup.$1.out
	dedup_server_alive || { loud "dedup-server is not running"; M_RC=99; M_SECS=0; M_RSS=0; return; }
	local c0 c1
	dedup_agent
	c0=$(dedup_server_cpu)
	measure dedup "$1" "$out" "${DAGENT[@]}" backup --json "$2"
	c1=$(dedup_server_cpu)
	# the server's share of the same CPUs during the step
	[ -n "$c0" ] && [ -n "$c1" ] &&
		record dedup server-cpu "$1" "$M_SECS" 0 "$M_RC" \
			"$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b - a}')" ""
	dedup_server_hwm
	SNAP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot_id"])' "$out" 2>/dev/null)
	NOTE=$(tr -d '\n\t' <"$out" | cut -c1-400)
	if [ "$M_RC" = 0 ] && [ -z "$SNAP" ]; then
		loud "dedup backup $1 printed no snapshot_id"
		M_RC=98
	fi
}

dedup_restore() { # SNAP TARGET
	dedup_agent
	measure dedup restore "$LOGS/dedup.restore.out" \
		"${DAGENT[@]}" restore "$1" --target "$2"
	dedup_server_hwm
}

dedup_teardown() {
	dedup_server_stop
	local cpu
	cpu=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/{s+=$2} END{printf "%.1f", s}' \
		"$RUN/dedup/server.time" 2>/dev/null)
	record dedup server server 0 "$SRV_RSS" 0 "$cpu" "peak RSS and CPU seconds (user+sys) of dedup-server over the whole run"
}

# ---------------------------------------------------------------- restic

restic_setup() {
	export RESTIC_REPOSITORY=$RUN/restic/repo RESTIC_PASSWORD=dedup-bench
	export RESTIC_CACHE_DIR=$RUN/restic/cache
	unset RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
	restic init --repository-version 2 >"$LOGS/restic.init.log" 2>&1 ||
		{ loud "restic init failed"; cat "$LOGS/restic.init.log" >&2; return 1; }
}
restic_repo() { echo "$RESTIC_REPOSITORY"; }
restic_backup() {
	local out=$LOGS/restic.$1.out
	measure restic "$1" "$out" restic backup --json --quiet --host dedup-bench \
		--compression auto "$2"
	SNAP=$(python3 -c '
import json, sys
sid = ""
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("message_type") == "summary":
        sid = m.get("snapshot_id", "")
print(sid)' "$out" 2>/dev/null)
	NOTE=$(grep '"summary"' "$out" | tail -n1 | tr -d '\t' | cut -c1-400)
	if [ "$M_RC" = 0 ] && [ -z "$SNAP" ]; then
		loud "restic backup $1 printed no snapshot_id"
		M_RC=98
	fi
}
restic_restore() {
	measure restic restore "$LOGS/restic.restore.out" \
		restic restore "$1" --target "$2"
}
restic_teardown() { :; }

# ------------------------------------------------------------------ borg

borg_setup() {
	export BORG_REPO=$RUN/borg/repo BORG_BASE_DIR=$RUN/borg/home
	export BORG_PASSPHRASE='' BORG_DISPLAY_PASSPHRASE=no
	export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
	export BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=NO
	unset BORG_PASSCOMMAND BORG_PASSPHRASE_FD BORG_CACHE_DIR BORG_CONFIG_DIR BORG_SECURITY_DIR BORG_KEYS_DIR
	mkdir -p "$BORG_BASE_DIR"
	borg init -e none >"$LOGS/borg.init.log" 2>&1 ||
		{ loud "borg init failed"; cat "$LOGS/borg.init.log" >&2; return 1; }
}
borg_repo() { echo "$BORG_REPO"; }
borg_backup() {
	measure borg "$1" "$LOGS/borg.$1.out" borg create --compression zstd "::$1" "$2"
	SNAP=$1
	NOTE=
}
borg_restore() {
	mkdir -p "$2"
	# shellcheck disable=SC2016
	measure borg restore "$LOGS/borg.restore.out" \
		bash -c 'cd "$1" && exec borg extract "::$2"' _ "$2" "$1"
}
borg_teardown() { :; }

# ------------------------------------------------------------------ runs

cleanup() {
	dedup_server_stop 2>/dev/null
	restore_fs_down
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

# bk TOOL STEP PATH: one backup, recorded (value: its CPU seconds)
bk() {
	SNAP=
	NOTE=
	"$1_backup" "$2" "$3"
	record "$1" backup "$2" "$M_SECS" "$M_RSS" "$M_RC" "$M_CPU" "${NOTE:-}"
}

run_tool() {
	local tool=$1 t_start=$EPOCHREALTIME repo target snap_mixed k rc
	say "$tool: fresh repository in $RUN/$tool"
	rm -rf "${RUN:?}/$tool"
	mkdir -p "$RUN/$tool"
	if ! "${tool}_setup"; then
		record "$tool" setup setup 0 0 1 "" "setup failed"
		"${tool}_teardown"
		return 1
	fi
	repo=$("${tool}_repo")

	say "$tool: mixed tree, first backup and unchanged re-backup"
	settle
	warm "$MIXED"
	bk "$tool" mixed-1 "$MIXED"
	snap_mixed=$SNAP
	bk "$tool" mixed-2 "$MIXED"
	say "$tool: the copy of the mixed tree at a second path (all chunks known)"
	warm "$MIXCOPY"
	bk "$tool" mixed-copy "$MIXCOPY"

	say "$tool: restore of the first mixed-tree snapshot, then diff -r"
	target=$RT/$tool-restore
	rm -rf "$target"
	mkdir -p "$target"
	if [ -n "$snap_mixed" ]; then
		settle
		"${tool}_restore" "$snap_mixed" "$target"
		record "$tool" restore restore "$M_SECS" "$M_RSS" "$M_RC" "" ""
		if [ -d "$target/${MIXED#/}" ] &&
			timeout 3600 diff -r --no-dereference "$MIXED" "$target/${MIXED#/}" \
				>"$LOGS/$tool.diff" 2>&1; then
			record "$tool" verify restore-diff 0 0 0 "" "identical"
			echo "   $tool restore: diff -r identical"
		else
			rc=1
			loud "$tool RESTORE MISMATCH: diff -r $MIXED $target/${MIXED#/} differs ($(wc -l <"$LOGS/$tool.diff") lines in $LOGS/$tool.diff)"
			head -n 10 "$LOGS/$tool.diff" >&2
			record "$tool" verify restore-diff 0 0 "$rc" "" "MISMATCH"
		fi
	else
		loud "$tool: no snapshot of the mixed tree, restore skipped"
		record "$tool" restore restore 0 0 97 "" "no snapshot"
		record "$tool" verify restore-diff 0 0 1 "" "not restored"
	fi

	say "$tool: generations gen-0..gen-$NGEN from $GENCUR"
	rm -rf "$GENCUR"
	for k in $(seq 0 "$NGEN"); do
		"$GEN" sync "$D/gens/gen-$k" "$GENCUR" >"$LOGS/$tool.sync-$k.log" ||
			die "syncing gen-$k into $GENCUR failed"
		bk "$tool" "gen-$k" "$GENCUR"
	done
	record "$tool" size repo-after-generations 0 0 0 "$(repo_bytes "$repo")" ""

	say "$tool: disk images A then B at $IMGCUR/disk.img"
	rm -rf "$IMGCUR"
	mkdir -p "$IMGCUR"
	ln "$D/images/a.img" "$IMGCUR/disk.img" || cp -a "$D/images/a.img" "$IMGCUR/disk.img"
	warm "$IMGCUR"
	bk "$tool" img-a "$IMGCUR"
	record "$tool" size repo-after-img-a 0 0 0 "$(repo_bytes "$repo")" ""
	rm -f "$IMGCUR/disk.img"
	ln "$D/images/b.img" "$IMGCUR/disk.img" || cp -a "$D/images/b.img" "$IMGCUR/disk.img"
	warm "$IMGCUR"
	bk "$tool" img-b "$IMGCUR"
	record "$tool" size repo-after-img-b 0 0 0 "$(repo_bytes "$repo")" ""
	rm -rf "$IMGCUR"

	"${tool}_teardown"
	record "$tool" size repo-final 0 0 0 "$(repo_bytes "$repo")" ""
	say "$tool: done in $(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s"
}

# ------------------------------------------------------- dedup encrypted

# The mixed tree's first backup and restore again, with client-side
# encryption (docs/ENCRYPTION.md), against a repository and server of
# their own so the plain run's repository figures stay comparable.
dedup_encrypted() {
	local er=$RUN/dedup-enc ready pid tok target env_agent out
	rm -rf "$er"
	mkdir -p "$er/home"
	ready=$er/ready
	"$SERVER" init --repo "$er/repo" ${DD_BENCH_CHUNKER:+--chunker "$DD_BENCH_CHUNKER"} \
		>"$LOGS/dedup-enc.init.log" 2>&1 || { loud "dedup-enc: init failed"; return 1; }
	tok=$("$SERVER" token add --repo "$er/repo" bench-enc 2>>"$LOGS/dedup-enc.init.log")
	"$SERVER" serve --config /dev/null --repo "$er/repo" --listen 127.0.0.1:0 \
		--ready-file "$ready" >>"$LOGS/dedup-enc.server.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do
		[ -s "$ready" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$ready" ] || { loud "dedup-enc: server did not start"; return 1; }
	echo "dedup-bench passphrase" > "$er/pass"
	env_agent=(env HOME="$er/home" DEDUP_SERVER="$(head -n1 "$ready")" DEDUP_TOKEN="$tok"
		DEDUP_CA="$er/repo/tls/cert.pem" DEDUP_KEY_FILE="$er/key"
		DEDUP_PASSPHRASE_FILE="$er/pass" "$AGENT")
	"${env_agent[@]}" key init >/dev/null 2>>"$LOGS/dedup-enc.init.log" ||
		{ loud "dedup-enc: key init failed"; kill -TERM "$pid"; wait "$pid"; return 1; }
	say "dedup: encrypted first backup and restore of the mixed tree"
	settle
	warm "$MIXED"
	out=$LOGS/dedup.mixed-1-enc.out
	measure dedup mixed-1-enc "$out" "${env_agent[@]}" backup --json "$MIXED"
	record dedup backup mixed-1-enc "$M_SECS" "$M_RSS" "$M_RC" "" "$(tr -d '\n\t' <"$out" | cut -c1-400)"
	SNAP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot_id"])' "$out" 2>/dev/null)
	target=$RT/dedup-enc-restore
	rm -rf "$target"
	mkdir -p "$target"
	settle
	measure dedup restore-enc "$LOGS/dedup.restore-enc.out" "${env_agent[@]}" restore "${SNAP:-none}" --target "$target"
	record dedup restore restore-enc "$M_SECS" "$M_RSS" "$M_RC" "" ""
	if [ -d "$target/${MIXED#/}" ] && diff -r --no-dereference "$MIXED" "$target/${MIXED#/}" >"$LOGS/dedup-enc.diff" 2>&1; then
		record dedup verify restore-enc-diff 0 0 0 "" "identical"
	else
		loud "dedup encrypted RESTORE MISMATCH (see $LOGS/dedup-enc.diff)"
		record dedup verify restore-enc-diff 0 0 1 "" "MISMATCH"
	fi
	rm -rf "$target"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# --------------------------------------------------------------- floors

# settle: lets writeback of earlier steps finish, so each timed step
# starts from the same state of the page cache and the file system.
settle() { sync; sleep "${DD_BENCH_SETTLE:-3}"; }

# warm DIR: reads every file once, so a timed backup starts with its input
# in the page cache whichever tool goes first (the machine may reclaim idle
# page cache proactively: data read a minute ago can be gone).
warm() { find "$1" -type f -print0 | xargs -0 -r cat >/dev/null; }

# What one thread of this machine does with the mixed tree, whatever the
# tool: the context for the throughput ratios (docs/BENCHMARKS.md,
# "Floors"). The tree is read from a tar in /dev/shm, so the disk is not
# measured: GNU tar extracting it is the cost of creating the files; zstd
# level 3 on 256 KiB blocks (-B, like chunks) and OpenSSL's SHA-256 are the
# per-byte work every chunk needs.
floors() {
	local tarf=/dev/shm/dedup-bench-floor.$$.tar out=$RT/floor-extract need_kb free_kb
	need_kb=$((MIXED_BYTES / 1024 * 11 / 10 + 65536))
	free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2{print $4}')
	if [ "${free_kb:-0}" -lt "$need_kb" ]; then
		echo "bench: floors skipped: /dev/shm has ${free_kb:-0} KiB free, needs $need_kb" >&2
		return 0
	fi
	say "floors: tar x, zstd -b1/-b3, sha256 of the mixed tree on one thread"
	tar cf "$tarf" -C "$MIXED" . 2>"$LOGS/floor.tar.err" || { rm -f "$tarf"; return 0; }
	rm -rf "$out"
	mkdir -p "$out"
	settle
	measure floor tar-x "$LOGS/floor.tar-x.out" tar xf "$tarf" -C "$out"
	record floor floor tar-x "$M_SECS" "$M_RSS" "$M_RC" "" "GNU tar extracting the mixed tree from /dev/shm"
	local z l
	for l in 1 3; do
		z=$(zstd -b"$l" -i3 -B262144 "$tarf" 2>&1 | tr '\r' '\n' | grep 'MB/s.*MB/s' | tail -n1)
		# "...name : IN -> OUT (xR), C MB/s, D MB/s"
		meta "floor_zstd$l" "$(sed -n 's/.*: *\([0-9]*\) -> *\([0-9]*\) .*, *\([0-9.]*\) MB\/s, *\([0-9.]*\) MB\/s.*/\1 \2 \3 \4/p' <<<"$z")"
	done
	local t0 t1
	t0=$EPOCHREALTIME
	openssl dgst -sha256 "$tarf" >/dev/null 2>&1
	t1=$EPOCHREALTIME
	meta floor_sha256_mbs "$(awk -v a="$t0" -v b="$t1" -v n="$(stat -c %s "$tarf")" 'BEGIN{printf "%.0f", n/1e6/(b-a)}')"
	rm -f "$tarf"
}
if command -v zstd >/dev/null && command -v openssl >/dev/null; then
	floors
else
	echo "bench: floors skipped: zstd or openssl missing" >&2
fi

T_ALL=$EPOCHREALTIME
say "data: mixed $MIXED_FILES files / $MIXED_BYTES bytes; gen-0 $GEN0_FILES files / $GEN0_BYTES bytes, $NGEN generations; images 2 x $IMG_BYTES bytes"
for t in "${TOOL_LIST[@]}"; do
	run_tool "$t"
	[ "$t" = dedup ] && [ "${DD_BENCH_ENCRYPTED:-1}" = 1 ] && dedup_encrypted
done
rm -rf "$GENCUR"
# The deletes that were held back (see TRASH above): restored trees and the
# last run's files.
say "removing the restored trees and the last run's files"
rm -rf "$TRASH" "$TRASH-data" "$RUN/restores"
restore_fs_down
meta total_seconds "$(awk -v a="$T_ALL" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}')"

# ---------------------------------------------------------------- report

write_docs=0
case $DOCS in
1 | yes) write_docs=1 ;;
0 | no) write_docs=0 ;;
*) if awk -v s="$SCALE" 'BEGIN{exit !(s == 1)}' && [ "${#TOOL_LIST[@]}" = 3 ]; then
	write_docs=1
fi ;;
esac
out=("$W/BENCHMARKS.md")
[ "$write_docs" = 1 ] && out+=("$TOP/docs/BENCHMARKS.md")
# The section `make bench-server` wrote (server_report.py) stays.
keep=$(sed -n '/^<!-- server-bench:/,/^<!-- \/server-bench -->/p' \
	"$TOP/docs/BENCHMARKS.md" 2>/dev/null)
python3 "$HERE/report.py" "$TSV" "${out[@]}" || die "report failed"
if [ "$write_docs" = 1 ] && [ -n "$keep" ]; then
	printf '\n%s\n' "$keep" >> "$TOP/docs/BENCHMARKS.md"
fi
echo
echo "raw timings: $TSV"
echo "report:      ${out[*]}"
[ "$write_docs" = 1 ] || echo "(docs/BENCHMARKS.md not written: not a full run; DD_BENCH_DOCS=1 forces it)"
# A failed step or a restore mismatch makes the run fail.
! awk -F'\t' 'NR > 1 && $1 != "meta" && $6 != 0 {bad = 1} END {exit !bad}' "$TSV"
