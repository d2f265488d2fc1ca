#!/usr/bin/env bash
# The memory of a collection does not grow with the chunk count: `gc
# --dry-run` of a synthetic index of 5 million chunks (bench/synth-index,
# no snapshots: the scan judges every entry dead) runs within a 128 MiB
# data limit (RLIMIT_DATA: the heap and private mappings; LevelDB's tables
# are read with pread, so their index and filter blocks, about 2.6 bytes a
# chunk, are on the heap and counted, their data blocks are not). The
# mark filter takes 16 bits a chunk, 10 MB here; a collector that listed
# the dead ids (32 bytes each, 160 MB) or held an exact mark set needs
# more and fails with "out of memory". The same limit suffices for an index
# of 30,000 chunks: what is left of the 128 MiB is the store's own.
. "$(dirname "$0")/lib.sh"

SYNTH=$DD_BUILD/bench/synth-index
N=${DD_GC_MEM_CHUNKS:-5000000}
LIMIT_KIB=131072
check "the synthetic index writer is built" test -x "$SYNTH"

# Under AddressSanitizer the server maps terabytes of shadow memory at
# start, which no data limit allows: there the collection runs unlimited
# and only what it reports is checked; the limit is the plain build's.
LIMIT="ulimit -d $LIMIT_KIB"
if ldd "$SERVER" 2>/dev/null | grep -q libasan; then
	LIMIT=true
	echo "# AddressSanitizer build: the data limit is not applied"
fi
within() { # WHAT RC: the dry run within the limit (not checkable under ASan)
	if [ "$LIMIT" = true ]; then
		ok "$1: not checked under AddressSanitizer"
	else
		check_eq "$1: gc --dry-run within $((LIMIT_KIB / 1024)) MiB" 0 "$2"
	fi
}

# gc_limited REPO OUT: a dry run under the data limit.
gc_limited() {
	($LIMIT && "$SERVER" gc --repo "$1" --dry-run) > "$2" 2>&1
}

S=$T/small
repo_init "$S"
"$SYNTH" "$S" 30000 5 >/dev/null
gc_limited "$S" "$T/small.out"
within "30000 chunks" $?

B=$T/big
repo_init "$B"
"$SYNTH" "$B" "$N" 5 > "$T/synth.out"
check "synth-index writes $N entries" grep -q "chunks $N " "$T/synth.out"
/usr/bin/time -f '%e %M' -o "$T/time" bash -c \
	"$LIMIT && exec '$SERVER' gc --repo '$B' --dry-run" \
	> "$T/big.out" 2>&1
rc=$?
read -r secs kib < <(tail -1 "$T/time")
echo "# $N chunks: gc --dry-run rc $rc, $secs s, peak RSS $((kib / 1024)) MiB"
[ $rc = 0 ] || sed 's/^/# /' "$T/big.out" | tail -3
within "$N chunks" "$rc"
[ "$LIMIT" = true ] && check_eq "$N chunks: gc --dry-run succeeds" 0 "$rc"
check "it judges every entry" grep -q "^gc: $N unreferenced chunk(s) would be removed" "$T/big.out"
check "its filter is 2 bytes a chunk" grep -qE "mark filter $(python3 -c "print(f'{$N * 2 / 1048576:.1f}')") MiB" "$T/big.out"
finish
