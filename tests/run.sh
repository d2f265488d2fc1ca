#!/usr/bin/env bash
# Runs every unit test and every end-to-end script, then prints the
# closing line "N passed, N failed". Each check counts once.
#   O=build bash tests/run.sh [e2e-script-pattern]
# DD_E2E_DIR (default tests/e2e) is where the scripts are and
# DD_TEST_DURATIONS (default DD_E2E_DIR/durations) their expected times;
# tests/e2e/t0005-runner.sh points both at a fake suite.
set -u
cd "$(dirname "$0")/.."
O=${O:-build}
case $O in /*) DD_BUILD=$O ;; *) DD_BUILD=$PWD/$O ;; esac
export DD_BUILD
export DD_GOLDEN_DIR=$PWD/tests/golden
pattern=${1:-}
E2E=${DD_E2E_DIR:-tests/e2e}
DURATIONS=${DD_TEST_DURATIONS:-$E2E/durations}
passed=0
failed=0
failed_names=()

add_counts() { # $1 = "N passed, M failed" line, $2 = name
	local p f
	p=$(sed -n 's/.*\b\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1/p' <<<"$1" | tail -n1)
	f=$(sed -n 's/.*\b\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\2/p' <<<"$1" | tail -n1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0}))
	if [ -z "$p" ] || [ "${f:-1}" != 0 ]; then
		failed_names+=("$2")
		[ -z "$p" ] && failed=$((failed + 1))
	fi
}

# End-to-end scripts. DD_TEST_JOBS=N runs up to N at once (default: 2 on
# a machine with 2 or more CPUs, else 1; each script has its
# own temporary directory, free loopback ports and, for Ceph, its own
# throw-away cluster). A script whose header says "# test: quiet" (kill
# batteries, multi-process timing) never runs beside another quiet one:
# the quiet scripts take one lane of their own, one after another, from
# the start, beside the other lanes' scripts. A script whose header says
# "# test: alone" (it changes the machine for everything else) runs by
# itself at the end. Summaries print as scripts finish.
JOBS=${DD_TEST_JOBS:-$(( $(nproc 2>/dev/null || echo 1) >= 2 ? 2 : 1 ))}
[[ $JOBS =~ ^[1-9][0-9]?$ ]] || { echo "DD_TEST_JOBS must be 1..99, got '$JOBS'"; exit 2; }
OUTS=$(mktemp -d "${TMPDIR:-/tmp}/dedup-run.XXXXXX")
trap 'rm -rf "$OUTS"' EXIT
: >"$OUTS/durations"

# A version manager's python3 (pyenv's shim) is a shell script that
# spends about half a second of CPU choosing the interpreter at every
# start, and the scripts start python3 hundreds of times: choose it once
# here and put that interpreter first in PATH for every script.
use_resolved_python() {
	local py
	py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || return 0
	[ -x "$py" ] && [ "$(command -v python3)" != "$py" ] || return 0
	mkdir -p "$OUTS/bin" && ln -s "$py" "$OUTS/bin/python3" &&
		export PATH="$OUTS/bin:$PATH"
}
use_resolved_python

# The unit test binaries, one after another: one job in a lane beside the
# scripts. Prints "unit NAME: SUMMARY" per binary.
run_units() {
	local t out line
	for t in "$O"/tests/test_*; do
		[ -x "$t" ] || continue
		out=$(timeout 300 "$t" 2>&1)
		line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
		grep '^FAIL' <<<"$out" || true
		echo "unit $(basename "$t"): ${line:-crashed (no summary)}"
	done
}

run_script() { # SCRIPT: runs it, leaving its output and "rc seconds" in $OUTS
	local s=$1 n start rc
	n=$(basename "$s")
	start=$(date +%s)
	if [ "$s" = unit ]; then
		run_units >"$OUTS/$n.out" 2>&1
	else
		timeout 900 bash "$s" >"$OUTS/$n.out" 2>&1
	fi
	rc=$?
	echo "$rc $(( $(date +%s) - start ))" >"$OUTS/$n.rc"
}

report_units() { # prints and counts the unit tests' summaries
	local line name
	while IFS= read -r line; do
		echo "$line"
		case $line in
		"unit "*) name=${line#unit }; add_counts "${name#*: }" "${name%%:*}" ;;
		esac
	done <"$OUTS/unit.out"
}

report_script() { # SCRIPT: prints its summary (its tail when it failed) and counts it
	local s=$1 n out rc secs line
	n=$(basename "$s")
	read -r rc secs <"$OUTS/$n.rc"
	echo "${n%.sh} $secs" >>"$OUTS/durations"
	[ "$s" = unit ] && { report_units; return; }
	out=$(cat "$OUTS/$n.out")
	line=$(grep -E '^[a-z0-9-]*:? *[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n1)
	if [ "$rc" != 0 ] || [ -z "$line" ] || ! grep -q ' 0 failed$' <<<"$line"; then
		echo "$out" | tail -n 60
		[ -z "$line" ] && line="0 passed, 1 failed" && echo "$s: exited $rc without a summary"
	else
		grep '^not ok' <<<"$out" || true
	fi
	echo "e2e $n: $line (${secs}s)"
	add_counts "$line" "$n"
}

# longest_first JOB...: the jobs, longest expected first (the seconds in
# $DURATIONS, "NAME SECONDS" a line; a job not there counts as 60 s, so a
# new script starts early rather than last). Starting the long ones first
# keeps a long script from starting late and leaving the other lanes idle.
longest_first() {
	local j n
	for j in "$@"; do
		n=$(basename "$j" .sh)
		echo "$(awk -v n="$n" '$1 == n { s = $2 } END { print s + 0 ? s : 60 }' \
			"$DURATIONS" 2>/dev/null || echo 60) $j"
	done | sort -s -k1,1nr | cut -d' ' -f2-
}

declare -A running=()
reap_one() { # waits for one running job and reports it
	local pid
	wait -n -p pid "${!running[@]}"
	report_script "${running[$pid]}"
	unset "running[$pid]"
	[ "$pid" != "${quiet_pid:-}" ] || quiet_pid=
}

# Under the sanitizers (make asan) a script whose header says
# "# test: plain-only (why)" is left out: it runs no C code that the rest
# of the suite does not already run under ASan (docs/HACKING.md lists
# them). The plain run keeps every script.
SANITIZED=
grep -qa __asan_init "$O/dedup-server" 2>/dev/null && SANITIZED=1

# header_says WORD SCRIPT: the script's first comment lines (its header)
# have "# test: WORD".
header_says() {
	sed -n '1,/^[^#]/p' "$2" | grep -q "^# test: $1"
}

jobs_=()
quiet=()
alone=()
[ -z "$pattern" ] && jobs_+=(unit)
for s in "$E2E"/t[0-9]*-*.sh; do
	[ -e "$s" ] || continue
	case "$s" in *"$pattern"*) ;; *) continue ;; esac
	if [ -n "$SANITIZED" ] && header_says plain-only "$s"; then
		echo "e2e $(basename "$s"): plain-only, not run under the sanitizers"
		continue
	fi
	if [ "$JOBS" -gt 1 ] && header_says alone "$s"; then
		alone+=("$s")
	elif [ "$JOBS" -gt 1 ] && header_says quiet "$s"; then
		quiet+=("$s")
	else
		jobs_+=("$s")
	fi
done
mapfile -t jobs_ < <(longest_first "${jobs_[@]}")
mapfile -t quiet < <(longest_first "${quiet[@]}")

# start_next: starts the next quiet script if none is running, else the
# next other one; fails when neither may start now.
next_job=0 next_quiet=0 quiet_pid=
start_next() {
	if [ -z "$quiet_pid" ] && [ "$next_quiet" -lt ${#quiet[@]} ]; then
		run_script "${quiet[$next_quiet]}" &
		quiet_pid=$!
		running[$!]=${quiet[$next_quiet]}
		next_quiet=$((next_quiet + 1))
	elif [ "$next_job" -lt ${#jobs_[@]} ]; then
		run_script "${jobs_[$next_job]}" &
		running[$!]=${jobs_[$next_job]}
		next_job=$((next_job + 1))
	else
		return 1
	fi
}
while :; do
	while [ ${#running[@]} -lt "$JOBS" ] && start_next; do :; done
	[ ${#running[@]} -gt 0 ] || break
	reap_one
done
for s in "${alone[@]}"; do
	run_script "$s"
	report_script "$s"
done

# The times of this run, merged into the table's: after a full run,
# copying $O/tests/durations over tests/e2e/durations refreshes it.
if [ -d "$O/tests" ] || mkdir -p "$O/tests" 2>/dev/null; then
	{
		grep '^#' "$DURATIONS" 2>/dev/null
		awk 'FILENAME == ARGV[1] { t[$1] = $2; next }
		     /^#/ || NF < 2 { next } !($1 in t) { t[$1] = $2 }
		     END { for (n in t) print n, t[n] }' "$OUTS/durations" "$DURATIONS" 2>/dev/null |
			sort -k2,2nr -k1,1
	} >"$O/tests/durations"
fi

[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
