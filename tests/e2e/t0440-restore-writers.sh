#!/usr/bin/env bash
# Restore's writer threads: with 1 and with 4 writers a tree comes back
# identical (contents, modes, times, xattrs, holes, hard links, a file
# replaced by a directory or a symlink in the way); a restore into a disk
# that fills up ends by itself with an error naming the files, and a
# restore that stops inside a file does not leave that file half written.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
server_start "$R" || exit 1

SRC=$T/tree
mkdir -p "$SRC"
for d in 1 2 3 4 5 6; do
	mkdir -p "$SRC/d$d"
	for i in $(seq 1 150); do printf 'dir %d file %d\n' "$d" "$i" > "$SRC/d$d/f$i"; done
done
prand big1 9000000 > "$SRC/d1/big.bin"       # streamed to a worker
prand big2 3000000 > "$SRC/d2/mid.bin"
{ prand s1 300000; head -c 3000000 /dev/zero; prand s2 300000; head -c 2000000 /dev/zero; } > "$SRC/d3/sparse.img"
chmod 0444 "$SRC/d1/f1"
chmod 0750 "$SRC/d2/f2"
chmod 0600 "$SRC/d3/f3"
ln "$SRC/d4/f4" "$SRC/d5/hardlink-to-f4"
ln -s ../d1/f1 "$SRC/d6/link"
xattrs=true
if setfattr -n user.color -v blue "$SRC/d4/f7" 2>/dev/null; then
	setfattr -n user.note -v "restored by a writer" "$SRC/d1/big.bin"
else
	xattrs=false
fi
touch -d '2004-05-06 07:08:09.123456789' "$SRC/d2/f9" "$SRC/d1/big.bin"

agent "$A" backup --json "$SRC" > "$T/b.json" 2>"$T/b.err"
check_eq "the backup succeeds" 0 $?
ID=$(json_get "$(cat "$T/b.json")" snapshot_id)

tree_manifest "$SRC" > "$T/m.src"
for w in 1 4; do
	DEDUP_RESTORE_WRITERS=$w agent "$A" restore "$ID" --target "$T/r$w" 2>"$T/r$w.err"
	check_eq "restore with $w writer(s) succeeds" 0 $?
	tree_manifest "$T/r$w/${SRC#/}" > "$T/m.r$w"
	check "with $w writer(s): contents, modes and times are the source's" cmp "$T/m.src" "$T/m.r$w"
	check "with $w writer(s): the hard link is one inode" \
		test "$(stat -c %i "$T/r$w/${SRC#/}/d4/f4")" = "$(stat -c %i "$T/r$w/${SRC#/}/d5/hardlink-to-f4")"
	blocks=$(stat -c %b "$T/r$w/${SRC#/}/d3/sparse.img")
	check "with $w writer(s): the zero runs are holes ($blocks blocks of 512 for 5.6 MB, dense 10900)" \
		test "$blocks" -lt 8000
	if $xattrs; then
		check_eq "with $w writer(s): a small file's xattr" "blue" \
			"$(getfattr --only-values -n user.color "$T/r$w/${SRC#/}/d4/f7" 2>/dev/null)"
		check_eq "with $w writer(s): a large file's xattr" "restored by a writer" \
			"$(getfattr --only-values -n user.note "$T/r$w/${SRC#/}/d1/big.bin" 2>/dev/null)"
	fi
done
$xattrs || ok "skipped xattr checks: this file system has no user xattrs"

# Files of 1 MiB and more go past the page cache where the file system
# offers direct I/O (agent/dio.h): their descriptor gets O_DIRECT; with
# DEDUP_RESTORE_DIRECT=0 none does. Either way the tree is the same,
# holes included.
# direct_writes TRACE: how many pwrite64 calls wrote whole pages in full
# on a descriptor while it had O_DIRECT (strace -ff -o TRACE of fcntl and
# pwrite64: a file a thread, so no call is split across lines).
direct_writes() {
	python3 - "$1".* <<'PY'
import re, sys
n = 0
for path in sys.argv[1:]:
    on = set()
    for line in open(path):
        m = re.match(r"fcntl\((\d+), F_SETFL, (.*)\)\s*= 0", line)
        if m:
            (on.add if "O_DIRECT" in m.group(2) else on.discard)(m.group(1))
            continue
        m = re.match(r"pwrite64\((\d+), .*, (\d+), (\d+)\)\s*= (\d+)", line)
        if m and m.group(1) in on:
            size, off, ret = int(m.group(2)), int(m.group(3)), int(m.group(4))
            n += size == ret and size % 4096 == 0 and off % 4096 == 0
print(n)
PY
}
# (LeakSanitizer cannot run under ptrace: off for the traced runs.)
for d in 1 0; do
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	DEDUP_RESTORE_DIRECT=$d strace -ff -qq -e trace=fcntl,pwrite64 -e abbrev=all \
		-s 0 -o "$T/dio$d.trace" \
		"$AGENT" --server "$URL" --token "$A" --ca "$CA" \
		restore "$ID" --target "$T/rd$d" 2>"$T/rd$d.err"
	check_eq "restore with DEDUP_RESTORE_DIRECT=$d succeeds" 0 $?
	tree_manifest "$T/rd$d/${SRC#/}" > "$T/m.rd$d"
	check "with DEDUP_RESTORE_DIRECT=$d: contents, modes and times are the source's" \
		cmp "$T/m.src" "$T/m.rd$d"
	check "with DEDUP_RESTORE_DIRECT=$d: the zero runs are holes" \
		test "$(stat -c %b "$T/rd$d/${SRC#/}/d3/sparse.img")" -lt 8000
done
case $(stat -f -c %T "$T") in
ext2/ext3 | xfs | btrfs)
	check "large files are written with O_DIRECT" test "$(direct_writes "$T/dio1.trace")" -gt 0 ;;
*)
	ok "skipped the O_DIRECT check: $(stat -f -c %T "$T") offers no direct I/O" ;;
esac
check "with DEDUP_RESTORE_DIRECT=0 no descriptor gets O_DIRECT" not grep -q "O_DIRECT" "$T"/dio0.trace.*

# Whatever is in the way of a file is replaced, never followed: a
# directory, a symlink to a file outside the target.
RT=$T/rway/${SRC#/}
mkdir -p "$RT/d2/f5/sub" "$RT/d1"
echo canary > "$T/outside"
ln -s "$T/outside" "$RT/d1/big.bin"
rmdir "$RT/d2/f5/sub"
agent "$A" restore "$ID" --target "$T/rway" 2>"$T/rway.err"
check_eq "a restore over things in the way succeeds" 0 $?
check_eq "the file outside the target is untouched" canary "$(cat "$T/outside")"
check "the symlink in the way became the file" cmp "$SRC/d1/big.bin" "$RT/d1/big.bin"
check "the empty directory in the way became the file" cmp "$SRC/d2/f5" "$RT/d2/f5"

# A disk that fills up: every writer reports, the restore ends by itself.
MNT=$T/small
mkdir -p "$MNT"
if mount -t tmpfs -o size=6m dedup-test "$MNT" 2>"$T/mount.err"; then
	timeout 120 env DEDUP_RESTORE_WRITERS=2 "$AGENT" --server "$URL" --token "$A" --ca "$CA" \
		restore "$ID" --target "$MNT/r" 2>"$T/full.err"
	rc=$?
	check "a restore into a full disk ends by itself" test "$rc" != 124
	check "and fails" test "$rc" != 0
	check "naming a file that could not be written" grep -q "cannot .*No space left on device" "$T/full.err"
	check "and counting the failures" grep -qE "[0-9]+ failed" "$T/full.err"
	umount "$MNT" 2>/dev/null || umount -l "$MNT"
else
	ok "skipped disk-full restore: cannot mount a tmpfs here ($(head -c 200 "$T/mount.err"))"
fi

# The same on a small ext4, which offers direct I/O: the large files'
# direct writes meet the full disk too.
IMG=$T/small.img
MNT2=$T/small-ext4
mkdir -p "$MNT2"
if truncate -s 8M "$IMG" && mkfs.ext4 -q -F "$IMG" >/dev/null 2>&1 &&
	mount -o loop "$IMG" "$MNT2" 2>"$T/mount2.err"; then
	timeout 120 env DEDUP_RESTORE_WRITERS=2 \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -ff -qq -e trace=fcntl,pwrite64 \
		-e abbrev=all -s 0 -o "$T/full2.trace" \
		"$AGENT" --server "$URL" --token "$A" --ca "$CA" \
		restore "$ID" --target "$MNT2/r" 2>"$T/full2.err"
	rc=$?
	check "a restore into a full ext4 ends by itself" test "$rc" != 124
	check "and fails" test "$rc" != 0
	check "naming a file that could not be written" \
		grep -q "cannot .*No space left on device" "$T/full2.err"
	check "after writing with O_DIRECT" test "$(direct_writes "$T/full2.trace")" -gt 0
	umount "$MNT2" 2>/dev/null || umount -l "$MNT2"
else
	ok "skipped the full ext4: cannot make or mount one here ($(head -c 200 "$T/mount2.err" 2>/dev/null))"
fi

# A restore that stops inside a file (a damaged chunk in its middle) does
# not leave that file looking complete.
server_stop TERM
R2=$T/repo2
repo_init "$R2"
B=$(token_add "$R2" bob)
server_start "$R2" || exit 1
mkdir -p "$T/src2"
prand huge 40000000 > "$T/src2/huge.bin"
agent "$B" backup --json "$T/src2" > "$T/b2.json" 2>/dev/null
check_eq "a 40 MB file is backed up" 0 $?
ID2=$(json_get "$(cat "$T/b2.json")" snapshot_id)
server_stop TERM
"$SERVER" debug list-records --repo "$R2" > "$T/records"
# The repository holds that file and a small catalog: damage the middle one
# of the large records.
read -r _ vpack voff _ vstored < <(awk '$5 > 100000' "$T/records" | sort -k2,2 -k3n | awk '{l[NR]=$0} END {print l[int((NR+1)/2)]}')
python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); d=bytearray(open(p,"rb").read()); d[o]^=0xff; open(p,"wb").write(d)' \
	"$R2/packs/$vpack.pack" $((voff + 48 + vstored / 2))
server_start "$R2" || exit 1
agent "$B" restore "$ID2" --target "$T/rstop" 2>"$T/rstop.err"
check "a restore that meets a damaged chunk fails" test $? != 0
check "it names the file" grep -q "huge.bin" "$T/rstop.err"
check "the file it was writing is not left behind" test ! -e "$T/rstop/${T#/}/src2/huge.bin"

finish
