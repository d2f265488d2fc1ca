#!/usr/bin/env bash
# tests/fuzz/run.sh - builds the libFuzzer harnesses with clang (ASan +
# UBSan + coverage) and runs each for FUZZ_SECONDS (default 20), starting
# from the seeds in tests/fuzz/corpus/<harness>/. New inputs go to
# $O/fuzz/corpus/<harness>/, crashes to $O/fuzz/artifacts/. Exits 1 if any
# harness fails to build or finds a crash. `make fuzz` runs this.
#   O=build FUZZ_SECONDS=20 [FUZZ_ONLY="pack catalog"] bash tests/fuzz/run.sh
set -u
cd "$(dirname "$0")/../.."
O=${O:-build}
SECS=${FUZZ_SECONDS:-20}
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

# compile SRC...: objects in $F/obj, rebuilt when the source or a header
# is newer (headers: any in shared/ or server/).
newest_header=$(ls -t shared/*.h server/*.h server/*/*.h | head -n1)
compile() {
	local src obj
	for src in "$@"; do
		obj=$F/obj/$(echo "$src" | tr '/' '_' ).o
		if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
			$CLANG $CFLAGS -c -o "$obj" "$src" || return 1
		fi
		echo "$obj"
	done
}

LIB_OBJS=$(compile shared/*.c) || exit 1
SRV_SRC=$(ls server/*.c server/*/*.c | grep -v -e '^server/main\.c$' -e '^server/store/backend_rados\.c$')
if [ ! -e "$O/web_assets.c" ]; then
	sh tests/embed.sh web/* > "$O/web_assets.c"
fi
status=0
for h in $HARNESSES; do
	case $h in
	pack|catalog|bundle) objs=$LIB_OBJS ;;
	*) objs="$(compile $SRV_SRC "$O/web_assets.c") $LIB_OBJS" || { status=1; continue; } ;;
	esac
	if ! $CLANG $CFLAGS -fsanitize=fuzzer -o "$F/fuzz_$h" "tests/fuzz/fuzz_$h.c" $objs $LIBS; then
		echo "fuzz $h: build failed"; status=1; continue
	fi
done
[ "$SECS" = 0 ] && exit $status

for h in $HARNESSES; do
	[ -x "$F/fuzz_$h" ] || continue
	mkdir -p "$F/corpus/$h"
	log=$F/fuzz_$h.log
	DD_FUZZ_TMP=$F/tmp ASAN_OPTIONS=detect_leaks=1 \
		"$F/fuzz_$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 -artifact_prefix="$F/artifacts/$h-" \
		"$F/corpus/$h" "tests/fuzz/corpus/$h" > "$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1)
	if [ "$rc" = 0 ]; then
		echo "fuzz $h: ok, ${execs:-?} execs in ${SECS}s, ${cov:-cov: ?}"
	else
		echo "fuzz $h: FAILED (exit $rc), see $log"
		grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -n 5
		status=1
	fi
	rm -rf "$F"/tmp/dd-fuzz-"$h"-*
done
exit $status
