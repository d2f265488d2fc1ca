#!/usr/bin/env bash
# pack_cache_drop = 1 (server/store/backend_dir.c): what a backup appends
# to the packs leaves the page cache once synced (fincore counts the
# packs' resident pages), and restores and checks read it back from the
# disk unchanged. Without it (the default) the packs stay cached, which
# is what makes the first check able to fail.
. "$(dirname "$0")/lib.sh"

command -v fincore >/dev/null || { echo "not ok - fincore (util-linux) missing"; exit 1; }
# resident R: bytes of R's packs in the page cache
resident() {
	fincore --bytes --noheadings --output RES "$1"/packs/*.pack |
		awk '{s += $1} END {print s + 0}'
}
packbytes() { cat "$1"/packs/*.pack | wc -c; }

mkdir -p "$T/src"
prand big 24000000 > "$T/src/big.bin"
seq 1 400000 > "$T/src/text.txt"

for mode in 0 1; do
	R=$T/repo$mode
	repo_init "$R"
	TOK=$(token_add "$R" alice)
	server_start "$R" --set "pack_cache_drop=$mode" || exit 1
	agent "$TOK" backup "$T/src" >/dev/null
	check_eq "backup with pack_cache_drop=$mode" 0 "$?"
	res=$(resident "$R"); total=$(packbytes "$R")
	echo "# pack_cache_drop=$mode: $res of $total pack bytes cached"
	if [ "$mode" = 0 ]; then
		check "kept: most of the packs stay cached" test "$res" -ge $((total / 2))
	else
		check "dropped: at most a page a pack append stays cached" \
			test "$res" -le $((total / 100 + 65536))
	fi
	rm -rf "$T/out$mode"
	agent "$TOK" restore latest --target "$T/out$mode" >/dev/null
	check_eq "restore with pack_cache_drop=$mode" 0 "$?"
	check "identical" diff -r "$T/src" "$T/out$mode/${T#/}/src"
	server_stop
	"$SERVER" check --repo "$R" --read-data >/dev/null 2>&1
	check_eq "check --read-data clean" 0 "$?"
done
finish
