#!/usr/bin/env bash
# pack_cache_drop = 1 (server/store/backend_dir.c): what a backup appends
# to the packs leaves the page cache once synced, up to each pack's
# partial last page (fincore counts the packs' resident pages), and
# restores and checks read it back from the disk unchanged. By default
# the packs stay cached, which is what makes the drop's check able to
# fail.
. "$(dirname "$0")/lib.sh"

command -v fincore >/dev/null || { echo "not ok - fincore (util-linux) missing"; exit 1; }
# The page cache of tmpfs is the file itself: nothing to drop there. The
# repositories then live on the disk that holds /var/tmp.
D=$T
case $(stat -f -c %T "$T") in
tmpfs | ramfs)
	D=$(mktemp -d /var/tmp/dedup-t1001.XXXXXX) || exit 1
	trap 'rm -rf "$D"; cleanup' EXIT ;;
esac
# resident R: bytes of R's packs in the page cache ("" if fincore
# printed nothing)
resident() {
	fincore --bytes --noheadings --output RES "$1"/packs/*.pack |
		awk '{s += $1; n++} END {if (n) print s}'
}
packbytes() { cat "$1"/packs/*.pack | wc -c; }
npacks() { ls "$1"/packs/*.pack | wc -l; }

mkdir -p "$T/src"
prand big 24000000 > "$T/src/big.bin"
seq 1 400000 > "$T/src/text.txt"

for mode in 0 1; do
	R=$D/repo$mode
	repo_init "$R"
	TOK=$(token_add "$R" alice)
	if [ "$mode" = 1 ]; then
		server_start "$R" --set pack_cache_drop=1 || exit 1
	else
		server_start "$R" || exit 1     # the default
	fi
	agent "$TOK" backup "$T/src" >/dev/null
	check_eq "backup with pack_cache_drop=$mode" 0 "$?"
	res=$(resident "$R"); total=$(packbytes "$R"); n=$(npacks "$R")
	echo "# pack_cache_drop=$mode: $res of $total bytes of $n packs cached"
	check "fincore reports the packs" test -n "$res"
	if [ "$mode" = 0 ]; then
		check "kept by default: most of the packs stay cached" \
			test "${res:-0}" -ge $((total / 2))
	else
		# what stays: each pack's partial last page, and what the
		# snapshot's create read back (its catalog, a few KiB)
		check "dropped: a page or two a pack and the catalog stay cached" \
			test "${res:-1000000000}" -le $((n * 8192 + 65536))
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
