#!/usr/bin/env bash
# Runs every unit test binary and every end-to-end script, then prints the
# closing line "N passed, N failed". Each check counts once.
#   O=build bash tests/run.sh [e2e-script-pattern]
set -u
cd "$(dirname "$0")/.."
O=${O:-build}
export DD_BUILD=$PWD/$O
export DD_GOLDEN_DIR=$PWD/tests/golden
pattern=${1:-}
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

if [ -z "$pattern" ]; then
	for t in "$O"/tests/test_*; do
		[ -x "$t" ] || continue
		out=$(timeout 300 "$t" 2>&1)
		line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n1)
		grep '^FAIL' <<<"$out" || true
		echo "unit $(basename "$t"): ${line:-crashed (no summary)}"
		add_counts "$line" "$(basename "$t")"
	done
fi

# End-to-end scripts. DD_TEST_JOBS=N runs up to N at once (default: 2 on
# a machine with 2 or more CPUs, else 1; each script has its
# own temporary directory, free loopback ports and, for Ceph, its own
# throw-away cluster); a script whose header says "# test: alone" runs by
# itself afterwards (kill batteries and multi-process timing that another
# script's load would distort). Summaries print as scripts finish.
JOBS=${DD_TEST_JOBS:-$(( $(nproc 2>/dev/null || echo 1) >= 2 ? 2 : 1 ))}
[[ $JOBS =~ ^[1-9][0-9]?$ ]] || { echo "DD_TEST_JOBS must be 1..99, got '$JOBS'"; exit 2; }
OUTS=$(mktemp -d "${TMPDIR:-/tmp}/dedup-run.XXXXXX")
trap 'rm -rf "$OUTS"' EXIT

run_script() { # SCRIPT: runs it, leaving its output and "rc seconds" in $OUTS
	local s=$1 n start rc
	n=$(basename "$s")
	start=$(date +%s)
	timeout 900 bash "$s" >"$OUTS/$n.out" 2>&1
	rc=$?
	echo "$rc $(( $(date +%s) - start ))" >"$OUTS/$n.rc"
}

report_script() { # SCRIPT: prints its summary (its tail when it failed) and counts it
	local s=$1 n out rc secs line
	n=$(basename "$s")
	out=$(cat "$OUTS/$n.out")
	read -r rc secs <"$OUTS/$n.rc"
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

declare -A running=()
reap_one() { # waits for one running script and reports it
	local pid
	wait -n -p pid "${!running[@]}"
	report_script "${running[$pid]}"
	unset "running[$pid]"
}

alone=()
for s in tests/e2e/t[0-9]*-*.sh; do
	case "$s" in *"$pattern"*) ;; *) continue ;; esac
	if [ "$JOBS" -gt 1 ] && grep -q '^# test: alone' "$s"; then
		alone+=("$s")
		continue
	fi
	while [ ${#running[@]} -ge "$JOBS" ]; do reap_one; done
	run_script "$s" &
	running[$!]=$s
done
while [ ${#running[@]} -gt 0 ]; do reap_one; done
for s in "${alone[@]}"; do
	run_script "$s"
	report_script "$s"
done

[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
