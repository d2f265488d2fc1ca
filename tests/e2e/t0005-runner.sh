#!/usr/bin/env bash
# The test runner (tests/run.sh) on a fake suite of five scripts: the
# longest expected (tests/e2e/durations; a script not in the table counts
# as long) start first in the two lanes, "# test: quiet" scripts run one
# at a time from the start beside the other lane, a "# test: alone"
# script runs last by itself, every summary is counted, the times of the run are
# written for the table, and a python3 that is a version manager's shim
# is started once by the runner, not at every python3 of every script;
# a "# test: plain-only" script is left out of the sanitizer build.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$T/e2e" "$T/shim" "$T/o"
# The shim: counts its starts, then runs the real interpreter.
REAL_PY=$(command -v python3)
cat >"$T/shim/python3" <<EOF
#!/usr/bin/env bash
echo x >>"$T/shim.count"
exec "$REAL_PY" "\$@"
EOF
chmod +x "$T/shim/python3"

# fake NAME [alone|quiet]: a script that logs its start (and in
# "events" its start and end), asks python3 which interpreter it is, and
# passes one check.
fake() {
	{
		echo '#!/usr/bin/env bash'
		[ -n "${2:-}" ] && echo "# test: $2 (the runner test)"
		echo "echo $1 >>\"$T/starts\""
		echo "echo \"start $1\" >>\"$T/events\""
		echo "python3 -c 'import sys; print(sys.executable)' >\"$T/py.$1\""
		echo 'sleep 0.3'
		echo "echo \"end $1\" >>\"$T/events\""
		echo "echo '$1: 1 passed, 0 failed'"
	} >"$T/e2e/$1.sh"
}
fake t0001-fake-short
fake t0002-fake-mid
fake t0003-fake-long
fake t0004-fake-new
fake t0009-fake-alone alone
printf '# a comment line\nt0001-fake-short 1\nt0002-fake-mid 5\nt0003-fake-long 9\n' >"$T/durations"

PATH="$T/shim:$PATH" DD_E2E_DIR="$T/e2e" DD_TEST_DURATIONS="$T/durations" \
	DD_TEST_JOBS=2 O="$T/o" bash "$ROOT/tests/run.sh" fake >"$T/run.out" 2>&1
check_eq "the fake suite passes" 0 $?
check_eq "its five checks are counted" "5 passed, 0 failed" "$(tail -n1 "$T/run.out")"

mapfile -t S < <(cat "$T/starts" 2>/dev/null)
check_eq "five scripts started" 5 "${#S[@]}"
first_two=$(printf '%s\n' "${S[@]:0:2}" | sort | tr '\n' ' ')
check_eq "the new and the longest start first" "t0003-fake-long t0004-fake-new " "$first_two"
check_eq "then the middle one" t0002-fake-mid "${S[2]:-}"
check_eq "the shortest last of the lanes" t0001-fake-short "${S[3]:-}"
check_eq "the alone script after them all" t0009-fake-alone "${S[4]:-}"

check_eq "the shim ran once, for the runner" 1 "$(cat "$T/shim.count" 2>/dev/null | wc -l)"
check "no script's python3 was the shim" not grep -q "$T/shim" "$T"/py.*
check_eq "every script ran python3" 5 "$(cat "$T"/py.* | grep -c .)"

# The events of a run ("start NAME", "end NAME" a line): prints the
# most scripts running at once, then the words that held: "quiet-overlap"
# (a quiet script started beside another quiet one), "alone-beside" (an
# alone script beside anything), "mixed" (a quiet script beside another).
overlaps() {
	awk '$1 == "start" { n++; if (n > max) max = n
		if ($2 ~ /quiet/ && q) f["quiet-overlap"] = 1
		if ($2 ~ /alone/ && n > 1) f["alone-beside"] = 1
		if (n > 1 && ($2 ~ /quiet/ || q)) f["mixed"] = 1
		if ($2 ~ /quiet/) q = 1 }
	     $1 == "end" { n--; if ($2 ~ /quiet/) q = 0 }
	     END { out = max; for (w in f) out = out " " w; print out }' "$1"
}
check_eq "two scripts at most at once, the alone one by itself" 2 "$(overlaps "$T/events")"

check "the run's times are written" test -s "$T/o/tests/durations"
check "with the table's comment" grep -q '^# a comment line$' "$T/o/tests/durations"
check_eq "a line for each script" 5 "$(grep -c '^t000[0-9]-fake-[a-z]* [0-9][0-9]*$' "$T/o/tests/durations")"

# Three quiet scripts beside four others: the longest quiet one starts
# at once beside the longest other (though the second quiet one is longer
# than that), never two quiet ones at a time, and the other lane runs the
# rest meanwhile.
rm -f "$T/events" "$T/starts"
mkdir -p "$T/e2e3"
mv "$T/e2e"/*.sh "$T/e2e3/" && rmdir "$T/e2e" && mv "$T/e2e3" "$T/e2e"
rm "$T/e2e/t0009-fake-alone.sh"
fake t0011-fake-quiet-a quiet
fake t0012-fake-quiet-b quiet
fake t0013-fake-quiet-c quiet
printf 't0001-fake-short 1\nt0002-fake-mid 5\nt0003-fake-long 7\nt0004-fake-new 3\nt0011-fake-quiet-a 2\nt0012-fake-quiet-b 9\nt0013-fake-quiet-c 8\n' >"$T/durations"
DD_E2E_DIR="$T/e2e" DD_TEST_DURATIONS="$T/durations" DD_TEST_JOBS=2 O="$T/o" \
	bash "$ROOT/tests/run.sh" fake >"$T/run.q" 2>&1
check_eq "the suite with quiet scripts passes" "7 passed, 0 failed" "$(tail -n1 "$T/run.q")"
mapfile -t S < <(cat "$T/starts" 2>/dev/null)
first_two=$(printf '%s\n' "${S[@]:0:2}" | sort | tr '\n' ' ')
check_eq "the longest quiet and the longest other start first" \
	"t0003-fake-long t0012-fake-quiet-b " "$first_two"
check_eq "two at most at once, never two quiet ones, quiet beside others" \
	"2 mixed" "$(overlaps "$T/events")"
mapfile -t Q < <(grep -o 't001[1-3]-fake-quiet-[a-c]' "$T/starts")
check_eq "the quiet ones in their order, longest first" \
	"t0012-fake-quiet-b t0013-fake-quiet-c t0011-fake-quiet-a" "${Q[*]}"

# A "# test: plain-only" script runs in the plain build and is left out
# where the binaries are sanitized (their server has __asan_init).
mkdir -p "$T/e2e2" "$T/plain" "$T/asan"
cat >"$T/e2e2/t0001-fake-plainonly.sh" <<'EOF'
#!/usr/bin/env bash
# test: plain-only (the runner test)
echo ran >"$DD_BUILD/plain-only.ran"
echo 't0001-fake-plainonly: 1 passed, 0 failed'
EOF
printf '#!/usr/bin/env bash\necho "t0002-fake-any: 1 passed, 0 failed"\n' >"$T/e2e2/t0002-fake-any.sh"
printf 'not a binary\n' >"$T/plain/dedup-server"
printf 'not a binary but it names __asan_init\n' >"$T/asan/dedup-server"
for b in plain asan; do
	DD_E2E_DIR="$T/e2e2" DD_TEST_DURATIONS=/dev/null O="$T/$b" \
		bash "$ROOT/tests/run.sh" fake >"$T/run.$b" 2>&1
done
check_eq "the plain build runs the plain-only script" "2 passed, 0 failed" "$(tail -n1 "$T/run.plain")"
check "there it ran" test -e "$T/plain/plain-only.ran"
check_eq "the sanitized build leaves it out" "1 passed, 0 failed" "$(tail -n1 "$T/run.asan")"
check "and did not run it" test ! -e "$T/asan/plain-only.ran"
check "and says so" grep -q '^e2e t0001-fake-plainonly.sh: plain-only, not run under the sanitizers$' "$T/run.asan"
finish
