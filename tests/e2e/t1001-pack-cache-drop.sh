#!/usr/bin/env bash
# Pack data and the page cache (server/store/backend_dir.c; fincore
# counts the packs' resident pages). By default (pack_direct_io = 1) a
# backup's appends are written with O_DIRECT and never enter the cache
# but for each append's first and last partial page; with
# pack_direct_io = 0 they are written through it and stay, which is what
# makes the other checks able to fail; with that and pack_cache_drop = 1
# they leave it once synced. Restores (read past the cache in spans, or
# through it) and checks read the packs back unchanged either way.
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

for mode in direct cached drop; do
	R=$D/repo-$mode
	repo_init "$R"
	TOK=$(token_add "$R" alice)
	case $mode in
	direct) server_start "$R" || exit 1 ;;     # the default
	cached) server_start "$R" --set pack_direct_io=0 || exit 1 ;;
	drop) server_start "$R" --set pack_direct_io=0 \
		--set pack_cache_drop=1 || exit 1 ;;
	esac
	agent "$TOK" backup "$T/src" >/dev/null
	check_eq "backup ($mode)" 0 "$?"
	res=$(resident "$R"); total=$(packbytes "$R"); n=$(npacks "$R")
	echo "# $mode: $res of $total bytes of $n packs cached"
	check "fincore reports the packs" test -n "$res"
	if [ "$mode" = cached ]; then
		check "through the cache: most of the packs stay cached" \
			test "${res:-0}" -ge $((total / 2))
	elif [ "$mode" = direct ]; then
		# each append's partial first and last pages (an upload's
		# bundle, up to 8 MiB, is an append), and the catalog
		check "direct: the packs stay out of the cache" \
			test "${res:-1000000000}" -le $((total / 8))
	else
		# what stays: each pack's partial last page, and what the
		# snapshot's create read back (its catalog, a few KiB)
		check "dropped: a page or two a pack and the catalog stay cached" \
			test "${res:-1000000000}" -le $((n * 8192 + 65536))
	fi
	rm -rf "$T/out$mode"
	agent "$TOK" restore latest --target "$T/out$mode" >/dev/null
	check_eq "restore ($mode)" 0 "$?"
	check "identical" diff -r "$T/src" "$T/out$mode/${T#/}/src"
	server_stop
	"$SERVER" check --repo "$R" --read-data >/dev/null 2>&1
	check_eq "check --read-data clean" 0 "$?"
done
finish
