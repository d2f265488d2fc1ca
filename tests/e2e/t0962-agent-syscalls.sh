#!/usr/bin/env bash
# The agent's cost per file when every chunk is already on the server (issue
# 13, item 1: the "copy of the mixed tree" case, where system calls and
# thread hand-offs are most of what is left besides hashing). Counted with
# strace on a --force-read backup of a tree of small files whose chunks the
# server holds, as the difference between a tree of 2,200 and one of 200
# files (so the fixed cost of a backup cancels out):
#   - at most 6.5 system calls per file, futexes aside (it was 13: an lstat
#     before the open, a dup and its close, a sequential hint, a read to
#     see EOF, a second fstat and an ACL lookup per file; docs/PARALLEL.md);
#   - no descriptor duplicated, no hint, one read per small file;
#   - under one futex call per file (it was about 3: a reader woken per
#     file);
# and the backup still records every file, a file's xattrs and ACL too.
. "$(dirname "$0")/lib.sh"

if ! command -v strace >/dev/null; then
	echo "# strace is not installed: skipped"
	finish
fi

R=$T/repo
repo_init "$R"
server_start "$R" || exit 1
A=$(token_add "$R" alice)

# small N DIR: N small files (1..3 KB, distinct) in 4 directories.
small() {
	python3 - "$1" "$2" <<'PY'
import os, sys
n, top = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    d = os.path.join(top, "d%d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write((b"file %d of %s\n" % (i, top.encode())) * (40 + i % 80))
PY
}
small 200 "$T/s200"
small 2200 "$T/s2200"
echo attr > "$T/s200/with-meta"
xattr_ok=0
if setfattr -n user.note -v hello "$T/s200/with-meta" 2>/dev/null &&
   setfacl -m u:12345:r "$T/s200/with-meta" 2>/dev/null; then
	xattr_ok=1
fi

# count DIR: a --force-read backup of DIR (its chunks already stored) under
# strace -c; leaves "calls futex" in $T/count.DIR.
count() {
	local name
	name=$(basename "$1")
	agent "$A" backup -q "$1" >/dev/null 2>&1 || return 1
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -c -o "$T/strace.$name" "$AGENT" --server "$URL" \
		--token "$A" --ca "$CA" backup -q --force-read --threads 2 "$1" \
		>/dev/null 2>"$T/err.$name" || return 1
	# strace -c: "% time seconds usecs/call calls [errors] syscall"
	awk '$NF == "futex" { f = $4 }
	     $NF != "total" && $NF != "futex" && $4 ~ /^[0-9]+$/ { c += $4 }
	     $NF == "fcntl" || $NF == "fadvise64" || $NF == "read" { s[$NF] = $4 }
	     END { printf "%d %d %d %d %d\n", c, f, s["fcntl"], s["fadvise64"], s["read"] }' \
		"$T/strace.$name" > "$T/count.$name"
}
check "a backup of 200 files under strace" count "$T/s200"
check "a backup of 2,200 files under strace" count "$T/s2200"
read -r c1 f1 d1 h1 r1 < "$T/count.s200"
read -r c2 f2 d2 h2 r2 < "$T/count.s2200"
per_file() { echo "scale=2; ($2 - $1) / 2000" | bc; }
echo "# per file: $(per_file "$c1" "$c2") system calls, $(per_file "$f1" "$f2") futex," \
     "$(per_file "$d1" "$d2") fcntl, $(per_file "$h1" "$h2") fadvise64, $(per_file "$r1" "$r2") read"
check "at most 6.5 system calls per file (futexes aside)" \
	test $((c2 - c1)) -le 13000
check "no descriptor duplicated per file" test $((d2 - d1)) -lt 200
check "no sequential hint for a small file" test $((h2 - h1)) -lt 200
check "one read per small file" test $((r2 - r1)) -le 2200
check "under one futex call per file" test $((f2 - f1)) -lt 2000

# Still every file, and the metadata of one that has some.
ID=$(agent "$A" backup --json --force-read "$T/s2200" 2>/dev/null)
ID=$(json_get "$ID" snapshot_id)
check_eq "every file is recorded" 2200 \
	"$(agent "$A" ls "$ID" | grep -c '/f[0-9]*$')"
if [ "$xattr_ok" = 1 ]; then
	out=$(agent "$A" backup --json --force-read "$T/s200" 2>/dev/null)
	mkdir -p "$T/restored"
	agent "$A" restore "$(json_get "$out" snapshot_id)" --target "$T/restored" >/dev/null 2>&1
	got=$(find "$T/restored" -name with-meta | head -n1)
	check_eq "a file's xattr is kept" hello \
		"$(getfattr --only-values -n user.note "$got" 2>/dev/null)"
	check "a file's ACL is kept" grep -q "user:12345:r" \
		<(getfacl -p "$got" 2>/dev/null)
else
	echo "# setfattr/setfacl unavailable here: metadata not checked"
fi
finish
