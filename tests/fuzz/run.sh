#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer harnesses with clang (ASan +
# UBSan + coverage) and runs each for FUZZ_SECONDS (default 20), starting
# from the seeds in tests/fuzz/corpus/<harness>/. New inputs go to
# $O/fuzz/corpus/<harness>/, crashes to $O/fuzz/artifacts/. Exits 1 if any
# harness fails to build or finds a crash. `make fuzz` runs this.
# FUZZ_JOBS compiles and fuzzes that many at once (default: 2 on a
# machine with 2 or more CPUs, else 1); each harness fuzzes for
# FUZZ_SECONDS either way.
#   O=build FUZZ_SECONDS=20 [FUZZ_ONLY="pack catalog"] bash tests/fuzz/run.sh
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
SECS=${FUZZ_SECONDS:-20}
JOBS=${FUZZ_JOBS:-$(( $(nproc 2>/dev/null || echo 1) >= 2 ? 2 : 1 ))}
[[ $JOBS =~ ^[1-9][0-9]?$ ]] || { echo "FUZZ_JOBS must be 1..99, got '$JOBS'"; exit 2; }
CLANG=${FUZZ_CC:-clang}
HARNESSES=${FUZZ_ONLY:-pack catalog bundle manifest snapshot routes}
F=$PWD/$O/fuzz
mkdir -p "$F/obj" "$F/artifacts" "$F/tmp"

PKGS="libmicrohttpd jansson libzstd libarchive libcurl openssl"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer $SAN -fsanitize=fuzzer-no-link \
	-Ishared -Iserver -Iserver/store -Iserver/repo -Iserver/api -Iserver/cmd -Itests/fuzz -I$O -D_FILE_OFFSET_BITS=64 \
	-DDD_SYSCONFDIR=\"/etc\" $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs libzstd openssl jansson libmicrohttpd libcurl libarchive) -lleveldb -ldl -pthread"

if ! command -v "$CLANG" >/dev/null; then
	echo "fuzz: $CLANG not found (apt-get install clang libclang-rt-14-dev)"
	exit 1
fi

# throttle: waits until fewer than $JOBS of this shell's background jobs run.
throttle() {
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
}

# compile SRC...: objects in $F/obj, rebuilt ($JOBS at a time) when the
# source or a header is newer (headers: any in shared/ or server/); prints
# their names; fails when one does not compile.
newest_header=$(ls -t shared/*.h server/*.h server/*/*.h | head -n1)
compile() {
	local src obj failed=$F/compile.failed
	rm -f "$failed"
	for src in "$@"; do
		obj=$F/obj/$(echo "$src" | tr '/' '_' ).o
		if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
			throttle
			{ $CLANG $CFLAGS -c -o "$obj" "$src" >&2 || { rm -f "$obj"; : >"$failed"; }; } &
		fi
		echo "$obj"
	done
	wait
	[ ! -e "$failed" ]
}

LIB_OBJS=$(compile shared/*.c) || exit 1
SRV_SRC=$(ls server/*.c server/*/*.c | grep -v -e '^server/main\.c$' -e '^server/store/backend_rados\.c$')
if [ ! -e "$O/web_assets.c" ]; then
	sh tests/embed.sh web/* > "$O/web_assets.c"
fi
status=0
SRV_OBJS=
for h in $HARNESSES; do
	case $h in pack|catalog|bundle) ;; *)
		SRV_OBJS=$(compile $SRV_SRC "$O/web_assets.c") || status=1
		break ;;
	esac
done
# link H: the harness binary $F/fuzz_H, or "fuzz H: build failed".
link() {
	local h=$1 objs=$LIB_OBJS
	case $h in pack|catalog|bundle) ;; *) objs="$SRV_OBJS $LIB_OBJS" ;; esac
	rm -f "$F/fuzz_$h"
	$CLANG $CFLAGS -fsanitize=fuzzer -o "$F/fuzz_$h" "tests/fuzz/fuzz_$h.c" $objs $LIBS ||
		echo "fuzz $h: build failed"
}
for h in $HARNESSES; do
	case $h in pack|catalog|bundle) ;; *) [ -n "$SRV_OBJS" ] || continue ;; esac
	throttle
	link "$h" >"$F/fuzz_$h.build" 2>&1 &
done
wait
for h in $HARNESSES; do
	[ -s "$F/fuzz_$h.build" ] && cat "$F/fuzz_$h.build"
	[ -x "$F/fuzz_$h" ] || status=1
done
[ "$SECS" = 0 ] && exit $status

# fuzz H: runs the harness for $SECS; its summary goes to $F/fuzz_H.result
# (first line "ok" or "failed").
fuzz() {
	local h=$1 log=$F/fuzz_$1.log rc execs cov
	mkdir -p "$F/corpus/$h"
	DD_FUZZ_TMP=$F/tmp ASAN_OPTIONS=detect_leaks=1 \
		"$F/fuzz_$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 -artifact_prefix="$F/artifacts/$h-" \
		"$F/corpus/$h" "tests/fuzz/corpus/$h" > "$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1)
	if [ "$rc" = 0 ]; then
		echo ok
		echo "fuzz $h: ok, ${execs:-?} execs in ${SECS}s, ${cov:-cov: ?}"
	else
		echo failed
		echo "fuzz $h: FAILED (exit $rc), see $log"
		grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -n 5
	fi
	rm -rf "$F"/tmp/dd-fuzz-"$h"-*
}
for h in $HARNESSES; do
	rm -f "$F/fuzz_$h.result"
	[ -x "$F/fuzz_$h" ] || continue
	throttle
	fuzz "$h" >"$F/fuzz_$h.result" &
done
wait
for h in $HARNESSES; do
	[ -s "$F/fuzz_$h.result" ] || continue
	tail -n +2 "$F/fuzz_$h.result"
	[ "$(head -n1 "$F/fuzz_$h.result")" = ok ] || status=1
done
exit $status
