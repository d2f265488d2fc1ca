#!/usr/bin/env bash
# The xattrs and ACLs of a file to read are read on the reader threads
# (issue 13), each with its own meta reader, through the file's
# descriptor: the catalog is byte-identical with 1 and with 4 threads for
# a tree of files with xattrs (set in scrambled order), ACLs and neither,
# the 4-thread snapshot restores them, and a file whose metadata cannot
# be read is warned about in its turn: the warnings come out in walk
# order, as with one thread (a metadata warning of a later file never
# before the read warning of an earlier one).
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
SRC=$T/src
mkdir -p "$SRC/d1" "$SRC/d2/sub"
if ! setfattr -n user.probe -v 1 "$T" 2>/dev/null; then
	echo "# no user xattrs on $T: skipped"
	finish
fi
for d in d1 d2/sub; do
	for i in $(seq 1 120); do
		f=$SRC/$d/f$(printf %03d "$i")
		printf 'file %s %d\n' "$d" "$i" > "$f"
		case $((i % 4)) in
		1) setfattr -n user.zeta -v "z$i" "$f"
		   setfattr -n user.alpha -v "a$i" "$f"
		   setfattr -n user.mid -v "m$i" "$f" ;;
		2) setfacl -m u:nobody:r,g:nogroup:rw "$f" ;;
		3) setfattr -n user.only -v "$i" "$f"
		   setfacl -m u:nobody:rw "$f" ;;
		esac
	done
done
prand big 3000000 > "$SRC/d1/big.bin"
setfattr -n user.big -v large "$SRC/d1/big.bin"
setfacl -d -m u:nobody:rx "$SRC/d2"

server_start "$R" || exit 1
snap_catalog() {
	api "$A" GET "/api/v1/snapshots/$1" | head -n1 |
		python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["catalog"]))'
}

# 1. the same catalog with 1 and 4 threads; the 4-thread one restores
out1=$(agent "$A" backup --json --force-read --threads 1 "$SRC" 2>"$T/err1")
check_eq "--threads 1: exit 0" 0 $?
out4=$(agent "$A" backup --json --force-read --threads 4 "$SRC" 2>"$T/err4")
check_eq "--threads 4: exit 0" 0 $?
check_eq "byte-identical catalogs" "$(snap_catalog "$(json_get "$out1" snapshot_id)")" \
	"$(snap_catalog "$(json_get "$out4" snapshot_id)")"
check "no warnings" test ! -s "$T/err1" -a ! -s "$T/err4"
agent "$A" restore "$(json_get "$out4" snapshot_id)" --target "$T/r" 2>"$T/r.err"
check_eq "restore exits 0" 0 $?
RT=$T/r/${SRC#/}
xattrs() { (cd "$1" && getfattr -R -d -m 'user\.' . 2>/dev/null | grep -v '^$' | sort); }
acls() { (cd "$1" && getfacl -R -p . 2>/dev/null | grep -v '^$' | grep -v '^# owner\|^# group' | sort); }
check "xattrs restored" test "$(xattrs "$SRC" | wc -l)" -gt 300
check "the same xattrs" diff <(xattrs "$SRC") <(xattrs "$RT")
check "the same ACLs" diff <(acls "$SRC") <(acls "$RT")

# 2. warnings in walk order: d1/f010 cannot be read (its metadata nor its
# data), then d1/f011 neither; every warning of f010 comes first
inject() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -qq -o /dev/null -P "$SRC/d1/f010" -P "$SRC/d1/f011" \
		-e trace=flistxattr,read -e inject=flistxattr:error=EIO \
		-e inject=read:error=EIO \
		"$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json --force-read "$@"
}
for th in 1 4; do
	out=$(inject --threads $th "$SRC" 2>"$T/w$th")
	check_eq "faults, $th thread(s): exit 3" 3 $?
	check_eq "faults, $th thread(s): 4 unreadable (metadata and data of each)" 4 "$(json_get "$out" unreadable)"
	grep -o "of '/[^']*'\|cannot read '/[^']*'" "$T/w$th" | sed "s|/${SRC#/}/||" > "$T/order$th"
done
printf '%s\n' "of 'd1/f010'" "cannot read 'd1/f010'" "of 'd1/f011'" "cannot read 'd1/f011'" > "$T/order.want"
check "1 thread: warnings in walk order" cmp -s "$T/order.want" "$T/order1"
check "4 threads: warnings in walk order" cmp -s "$T/order.want" "$T/order4"
check "4 threads: the metadata warning names the reason" \
	grep -q "cannot read the metadata (xattrs, ACLs) of '/${SRC#/}/d1/f010'" "$T/w4"

finish
