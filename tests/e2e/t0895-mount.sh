#!/usr/bin/env bash
# dedup-agent mount: a snapshot as a read-only FUSE file system. A mixed
# tree (small files, a 40 MiB file, nested dirs, symlinks, empty files, a
# 0600 file, a hard link, an xattr) is backed up and mounted; `ls -lR`
# matches the source, every file compares equal, `cp -a` out gives the
# same tree, random-offset reads of the large file (dd) match the source
# at the same offsets while the chunk cache stays within --cache-size,
# writes fail with EROFS; `fusermount3 -u` ends the agent with 0. A second
# mount loses its token, then its server: a read fails with EIO (not a
# hang) and a log line, the mount keeps answering, and SIGTERM ends it
# with 0.
. "$(dirname "$0")/lib.sh"

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	echo "skipped: /dev/fuse or fusermount3 absent (FUSE mount test needs both)"
	finish
fi

MNT=$T/mnt
MPID=
# Never leave a mount behind: lib.sh's cleanup removes $T recursively.
mount_cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	if ours "$MPID"; then
		kill -TERM "$MPID" 2>/dev/null
		wait "$MPID" 2>/dev/null
	fi
	cleanup
}
trap mount_cleanup EXIT

# wait_mounted: bounded poll for the mount to appear (and the agent alive).
wait_mounted() {
	local i
	for i in $(seq 1 300); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$MPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# wait_exit: bounded wait for the agent to end; sets MRC to its exit code
# ("running" if it did not end).
wait_exit() {
	local i
	MRC=running
	for i in $(seq 1 300); do
		kill -0 "$MPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$MPID" 2>/dev/null && return
	wait "$MPID"
	MRC=$?
	MPID=
}
# exit_log LOG: after a mount that did not end with 0, what the agent said
# (a sanitizer's report included), for the run's output.
exit_log() {
	[ "$MRC" = 0 ] || { echo "# the agent's last words ($1):"; tail -n 40 "$1" | sed 's/^/#   /'; }
}
# listing DIR: `ls -lRn` with what a FUSE directory cannot share with the
# source's file system taken out: "total" block counts and directory sizes.
listing() {
	(cd "$1" && LC_ALL=C ls -lRn --time-style=+%s.%N .) |
		awk '/^total /{next} /^d/{$5="-"} {print}'
}
# attrs DIR: one line per entry: path, type, mode, owner, links, mtime,
# size (not for directories), link target.
attrs() {
	(cd "$1" && LC_ALL=C find . -printf '%p %y %m %U:%G %n %T@ %l\n' | sort)
	(cd "$1" && LC_ALL=C find . ! -type d -printf '%p %s\n' | sort)
}

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
server_start "$R" || exit 1

S=$T/tree
DD_TEST_SMALL_FILES=200 make_mixed_tree "$S" 40
ln "$S/src/notes.txt" "$S/hard link to notes"
ln -s src/notes.txt "$S/symlink1"
ln "$S/symlink1" "$S/hard link to symlink1"     # link(2) of a symlink
mkfifo "$S/fifo1"
ln "$S/fifo1" "$S/hard link to fifo1"
chmod 0600 "$S/bin/mixed.bin"
# A sparse file: its holes are recorded as holes (catalog version 3) and
# read back as zeros through the mount, with data around them.
truncate -s 64M "$S/sparse.img"
printf 'x' | dd of="$S/sparse.img" bs=1 seek=1000 conv=notrunc status=none
prand sparse-mid 300000 | dd of="$S/sparse.img" bs=1M seek=40 conv=notrunc status=none
setfattr -n user.colour -v blue "$S/src/numbers.txt"
SNAP=$(json_get "$(agent "$A" backup --json "$S")" snapshot_id)
check "backup of the tree" test -n "$SNAP"
V=$MNT$S

# ---- usage and refusals ----
mkdir -p "$MNT"
agent "$A" mount "$SNAP" "$S/empty" >/dev/null 2>"$T/err"; rc=$?
check_eq "a mount point that is not a directory is a usage error" 2 "$rc"
check "it says so" grep -q "is not a directory" "$T/err"
agent "$A" mount 00000000deadbeef "$MNT" >/dev/null 2>"$T/err"; rc=$?
check_eq "an unknown snapshot is an error" 1 "$rc"
check "it names the snapshot" grep -q "00000000deadbeef" "$T/err"
"$AGENT" --server "$URL" --token nosuchtoken --ca "$CA" mount latest "$MNT" >/dev/null 2>"$T/err"; rc=$?
check_eq "a rejected token is an error before mounting" 1 "$rc"
check "nothing was mounted" not mountpoint -q "$MNT"
agent "$A" mount --cache-size 12Q latest "$MNT" >/dev/null 2>"$T/err"; rc=$?
check_eq "a bad --cache-size is a usage error" 2 "$rc"
check "mount --help names --cache-size" sh -c "'$AGENT' mount --help | grep -q -- --cache-size"

# The agent itself in the background (not lib.sh's agent function, whose
# subshell would take the signals meant for the agent).
mount_bg() {
	"$AGENT" --server "$URL" --token "$A" --ca "$CA" mount "$@" &
	MPID=$!
}
# fetched LOG: "CHUNKS REQUESTS BYTES" from the agent's closing line.
fetched() {
	sed -n 's/.* \([0-9]*\) chunks fetched (\(.*\)) in \([0-9]*\) requests.*/\1 \3 \2/p' "$1"
}
BIG="big file.img"

# ---- mount 0: a random read fetches only what covers it; a sequential
# read of the whole file is fetched with read-ahead ----
mount_bg "$SNAP" "$MNT" 2>"$T/mount0.log"
check "the snapshot mounts (full id)" wait_mounted
SNAPTIME=$(json_get "$(api "$A" GET "/api/v1/snapshots/$SNAP" | head -n -1)" unix_time)
FIRST=${S#/}
FIRST=${FIRST%%/*}
check_eq "a directory the catalog only implies has the snapshot's time" \
	"$SNAPTIME" "$(stat -c %Y "$MNT/$FIRST")"
a=$(dd if="$S/$BIG" iflag=skip_bytes,count_bytes skip=30000000 count=1 2>/dev/null | od -An -tx1)
b=$(dd if="$V/$BIG" iflag=skip_bytes,count_bytes skip=30000000 count=1 2>/dev/null | od -An -tx1)
check_eq "a one-byte read at 30,000,000 gives the source's byte" "$a" "$b"
fusermount3 -u "$MNT"
wait_exit
read -r nch nreq <<<"$(fetched "$T/mount0.log")"
check "it fetched at most 3 chunks (the kernel reads up to 128 KiB; fetched ${nch:-?})" test "${nch:-99}" -le 3
mount_bg "$SNAP" "$MNT" 2>"$T/mount0.log"
check "the snapshot mounts again" wait_mounted
check "cat reads the large file whole" sh -c "cat '$V/$BIG' | cmp -s - '$S/$BIG'"
fusermount3 -u "$MNT"
wait_exit
read -r nch nreq nbytes <<<"$(fetched "$T/mount0.log")"
check_eq "a sequential read fetches each chunk once" "40.0 MiB" "${nbytes:-}"
check "in few requests thanks to read-ahead (${nreq:-?} for ${nch:-?} chunks)" test "${nreq:-99999}" -le $(( ${nch:-0} / 4 ))

# ---- mount 1: a 4 MiB cache, random reads first ----
CACHE=$((4 * 1024 * 1024))
mount_bg --cache-size 4M "${SNAP:0:12}" "$MNT" 2>"$T/mount1.log"
check "the snapshot mounts (prefix id)" wait_mounted

SIZE=$(stat -c %s "$S/$BIG")
check_eq "the large file has its size" "$SIZE" "$(stat -c %s "$V/$BIG")"
bad=0
# offsets spread over the file (deterministic), odd lengths, the very
# start, and reads running past the end
for spec in 0:1 1:4095 12345:70000 1048575:2 $((SIZE - 10)):100 \
	$((SIZE - 200000)):300000 $((SIZE / 2)):1 \
	$(python3 -c 'import random
r = random.Random(7)
print(" ".join("%d:%d" % (r.randrange(41943040), r.randrange(1, 600000)) for _ in range(25)))'); do
	off=${spec%%:*} len=${spec##*:}
	a=$(dd if="$S/$BIG" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=65536 2>/dev/null | sha256sum)
	b=$(dd if="$V/$BIG" iflag=skip_bytes,count_bytes skip="$off" count="$len" bs=65536 2>/dev/null | sha256sum)
	[ "$a" = "$b" ] || { bad=$((bad + 1)); echo "# differs at $off+$len"; }
done
check_eq "32 random-offset reads of the large file match the source" 0 "$bad"

check "ls -lR of the mount matches the source" diff <(listing "$S") <(listing "$V")
check "types, modes, owners, link counts, times and sizes match" diff <(attrs "$S") <(attrs "$V")
bad=0
while IFS= read -r -d '' f; do
	cmp -s "$S/$f" "$V/$f" || { bad=$((bad + 1)); echo "# differs: $f"; }
done < <(cd "$S" && find . -type f -print0)
check_eq "every file compares equal (cmp)" 0 "$bad"
check "the sparse file reads back whole: zeros in its holes" cmp -s "$S/sparse.img" "$V/sparse.img"
check "a read inside its hole gives zeros" cmp -s \
	<(dd if="$V/sparse.img" bs=4096 skip=5000 count=1 status=none) <(head -c 4096 /dev/zero)
check_eq "the 0600 file keeps its mode" 600 "$(stat -c %a "$V/bin/mixed.bin")"
check_eq "a hard link is the same inode" "$(stat -c %i "$V/src/notes.txt")" "$(stat -c %i "$V/hard link to notes")"
check_eq "a symlink reads its target" "src/notes.txt" "$(readlink "$V/link-to-notes")"
check_eq "a hard link to a symlink is the same inode" "$(stat -c %i "$V/symlink1")" "$(stat -c %i "$V/hard link to symlink1")"
check_eq "... and reads the symlink's target" "src/notes.txt" "$(readlink "$V/hard link to symlink1")"
check_eq "a hard link to a fifo is the fifo (same inode)" "fifo $(stat -c %i "$V/fifo1")" "$(stat -c %F "$V/hard link to fifo1" | cut -c1-4) $(stat -c %i "$V/hard link to fifo1")"
check_eq "an xattr is shown" "blue" "$(getfattr --only-values -n user.colour "$V/src/numbers.txt" 2>/dev/null)"
check "listxattr names it" sh -c "getfattr -d '$V/src/numbers.txt' 2>/dev/null | grep -q user.colour"
check "implied parent directories list the backed-up root" test -d "$MNT${S%/*}"
check "a missing name is ENOENT" not stat "$V/no such file"

check "cp -a out of the mount" cp -a "$V" "$T/copy"
check "the copy equals the source" diff <(tree_manifest "$S") <(tree_manifest "$T/copy")

echo x 2>"$T/err" > "$V/src/notes.txt"; rc=$?
check "writing a file is refused" test "$rc" != 0
check "with EROFS" grep -q "Read-only file system" "$T/err"
check "creating a file is refused" not touch "$V/new"
check "removing a file is refused" not rm -f "$V/empty"
check "the source's file was not touched" cmp -s "$S/src/notes.txt" "$V/src/notes.txt"

check "fusermount3 -u unmounts" fusermount3 -u "$MNT"
wait_exit
check_eq "the agent exits 0 after the unmount" 0 "$MRC"
exit_log "$T/mount1.log"
check "nothing is mounted any more" not mountpoint -q "$MNT"
peak=$(sed -n 's/.*cache peak .* (\([0-9]*\) bytes).*/\1/p' "$T/mount1.log")
check "the agent reports its cache use" test -n "$peak"
check "the chunk cache stayed within --cache-size 4M (peak ${peak:-?})" test "${peak:-99999999999}" -le "$CACHE"
check "no read failed" grep -q "(0 failed)" "$T/mount1.log"

# ---- mount 2: the server goes away ----
mount_bg latest "$MNT" 2>"$T/mount2.log"
check "the snapshot mounts again (latest)" wait_mounted
check "a file reads while the server is up" cmp -s "$S/src/numbers.txt" "$V/src/numbers.txt"
"$SERVER" token revoke --repo "$R" alice >/dev/null 2>&1
cat "$V/bin/random.bin" >/dev/null 2>"$T/err"; rc=$?
check "a read after the token is revoked fails" test "$rc" != 0
check "with EIO" grep -q "Input/output error" "$T/err"
check "the agent logs the file and the refusal" grep -q "cannot read '/.*random.bin'.*401" "$T/mount2.log"
server_stop
t0=$(date +%s)
timeout 60 cat "$V/$BIG" >/dev/null 2>"$T/err"; rc=$?
t1=$(date +%s)
check "a read with the server stopped fails" test "$rc" != 0
check "and does not hang (rc $rc, $((t1 - t0)) s)" test "$rc" != 124
check "with EIO" grep -q "Input/output error" "$T/err"
check "the agent logs which file failed" grep -q "cannot read '/.*big file.img'" "$T/mount2.log"
t0=$(date +%s)
timeout 60 cat "$V/small/f1" >/dev/null 2>"$T/err"; rc=$?
t1=$(date +%s)
check "another read right after fails at once ($((t1 - t0)) s), not after the retries again" \
	test "$rc" = 1 -a "$((t1 - t0))" -le 3
check "the mount still answers metadata" test -f "$V/src/notes.txt"
check "the agent is still running" kill -0 "$MPID"
kill -TERM "$MPID"
wait_exit
check_eq "SIGTERM ends the agent with 0" 0 "$MRC"
exit_log "$T/mount2.log"
check "and unmounts" not mountpoint -q "$MNT"


# ---- mount 3: a catalog that gives one chunk two lengths ----
# What a server the agent does not trust can serve (or a compromised
# client holding the key, through an encrypted catalog the server cannot
# check): chunk X (1000 bytes) named by evil/a as 1000 bytes, by evil/b
# as 10 and by evil/c as 16 MiB. Restore refuses b and c; the mount served
# b's 10 bytes from the cached chunk and read 16 MiB past it for c (heap
# over-read, a crash). Here a proxy in front of the real server swaps a
# snapshot's catalog list for the hand-made catalog's id (its chunks are
# uploaded as chunks; the server never checks it, no snapshot names it).
server_start "$R" || exit 1
A=$(token_add "$R" alice2)
mkdir -p "$T/two" "$T/hm"
echo tiny > "$T/two/f"
SID2=$(json_get "$(agent "$A" backup --json "$T/two")" snapshot_id)
EVILCAT=$(python3 - "$T/hm" <<'PY'
import hashlib, os, struct, sys, time
sys.path.insert(0, os.environ["E2E_DIR"])
from handmade import add_entry, catalog, ref, write_snapshot
x = b"A" * 1000
cat = catalog(2)
add_entry(cat, 2, b"evil")
add_entry(cat, 1, b"evil/a", 1000, [ref(x, 1000)])
add_entry(cat, 1, b"evil/b", 10, [ref(x, 10)])
add_entry(cat, 1, b"evil/c", 16 << 20, [ref(x, 16 << 20)])
print(write_snapshot(sys.argv[1], {hashlib.sha256(x).digest(): x},
                     cat).hex())
PY
)
check_eq "the hand-made chunks are stored" 200 \
	"$(api_status "$A" POST /api/v1/chunks --data-binary @"$T/hm/bundle.bin" -H 'Content-Type: application/octet-stream')"
cat > "$T/swap.py" <<'PY'
import json, os, sys
sys.path.insert(0, os.environ["E2E_DIR"])
from tlsproxy import serve
portfile, upstream, upca, cert, key, sid, evil = sys.argv[1:8]
def handler(method, path, body, headers, forward):
    status, ctype, data = forward(method, path, body, headers)
    if path.split("?")[0].endswith("/snapshots/" + sid) and status == 200:
        m = json.loads(data)
        m["catalog"] = [evil]
        data = json.dumps(m).encode()
    return status, ctype, data
serve(portfile, upstream, upca, cert, key, handler)
PY
python3 "$T/swap.py" "$T/swap.port" "$URL" "$CA" "$R/tls/cert.pem" "$R/tls/key.pem" \
	"$SID2" "$EVILCAT" 2>>"$T/swap.log" &
SWAP_PID=$!
for _ in $(seq 1 200); do [ -s "$T/swap.port" ] && break; sleep 0.05; done
"$AGENT" --server "https://127.0.0.1:$(cat "$T/swap.port")" --token "$A" --ca "$CA" \
	mount "$SID2" "$MNT" 2>"$T/mount3.log" &
MPID=$!
check "the swapped snapshot mounts" wait_mounted
check_eq "a, named rightly, reads" 1000 "$(cat "$MNT/evil/a" | wc -c)"
cat "$MNT/evil/b" > "$T/b.out" 2>"$T/err"; rc=$?
check "b, named as 10 bytes of the cached 1000-byte chunk, fails" test "$rc" != 0
check "with EIO" grep -q "Input/output error" "$T/err"
dd if="$MNT/evil/c" of=/dev/null bs=128k count=1 2>"$T/err"; rc=$?
check "c, named as 16 MiB of it, fails" test "$rc" != 0
check "with EIO, not a crash" grep -q "Input/output error" "$T/err"
check "the agent says which lengths disagree" grep -q "has 1000 bytes, the catalog says" "$T/mount3.log"
check "the agent is still running" kill -0 "$MPID"
fusermount3 -u "$MNT"
wait_exit
check_eq "and ends with 0 when unmounted" 0 "$MRC"
exit_log "$T/mount3.log"
# verify through the same proxy: each reference's length is checked
# against the chunk, whichever reference came first (it took the first
# one's length for all: a, named rightly, was blamed, or none was).
"$AGENT" --server "https://127.0.0.1:$(cat "$T/swap.port")" --token "$A" --ca "$CA" \
	verify "$SID2" > "$T/verify3.out" 2>&1
check_eq "verify finds the snapshot damaged" 1 "$?"
check_eq "naming b and c, not a" "/evil/b /evil/c" \
	"$(sed -n 's/^damaged: \([^:]*\):.*/\1/p' "$T/verify3.out" | sort | tr '\n' ' ' | sed 's/ $//')"
check "with the lengths" grep -q "has 1000 bytes, the catalog says 10\$" "$T/verify3.out"
kill "$SWAP_PID" 2>/dev/null
wait "$SWAP_PID" 2>/dev/null
server_stop

finish
