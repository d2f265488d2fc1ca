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

for s in tests/e2e/t[0-9]*-*.sh; do
	case "$s" in *"$pattern"*) ;; *) continue ;; esac
	start=$(date +%s)
	out=$(timeout 900 bash "$s" 2>&1)
	rc=$?
	line=$(grep -E '^[a-z0-9-]*:? *[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n1)
	if [ "$rc" != 0 ] || [ -z "$line" ] || ! grep -q ' 0 failed$' <<<"$line"; then
		echo "$out" | tail -n 60
		[ -z "$line" ] && line="0 passed, 1 failed" && echo "$s: exited $rc without a summary"
	else
		grep '^not ok' <<<"$out" || true
	fi
	echo "e2e $(basename "$s"): $line ($(( $(date +%s) - start ))s)"
	add_counts "$line" "$(basename "$s")"
done

[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
