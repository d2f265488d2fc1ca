#!/usr/bin/env bash
# Restoring what others wrote (docs/SECURITY.md, "Restoring snapshots you do
# not fully trust"):
#  - another client's snapshot, restored by an admin, loses setuid/setgid
#    bits, device nodes and security.*/trusted.* xattrs unless
#    --same-privileges, with a warning line per kind; a client restoring its
#    own keeps them unless --no-setuid/--no-devices/--no-special-xattrs;
#  - a hard link is only made to a file this restore created, never to one
#    that was in the target before;
#  - restore --format tar never writes through a symlink or hard link
#    planted at FILE.tmp;
#  - a hostile server claiming 16 MiB for every chunk of a fetch is refused
#    before the agent sets memory aside for it;
#  - a chunk damaged on the way (the server's copy intact) fails the
#    restore naming it, and the agent's report to /chunks/check makes the
#    server find it intact and keep it, which the agent says;
#  - names from the catalog, the snapshot list and the server's error text
#    reach the terminal with their control bytes escaped.
. "$(dirname "$0")/lib.sh"

is_root() { [ "$(id -u)" = 0 ]; }
ESC=$'\x1b'

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
ADM=$(token_add "$T/repo" boss --admin)
server_start "$T/repo" || exit 1

# ---- item 8: privileges of another client's snapshot ----

SRC=$T/src
mkdir -p "$SRC/d"
echo plain > "$SRC/d/plain"
echo su > "$SRC/d/suid"; chmod 4755 "$SRC/d/suid"
echo sg > "$SRC/d/sgid"; chmod 2711 "$SRC/d/sgid"
mkdir "$SRC/d/sgdir"; chmod 2775 "$SRC/d/sgdir"
echo x > "$SRC/d/xattrs"
setfattr -n user.keep -v kept "$SRC/d/xattrs"
if is_root; then
	mknod -m 0666 "$SRC/d/null" c 1 3
	ln "$SRC/d/null" "$SRC/d/null2"     # a hard link to a device node
	setfattr -n trusted.evil -v 1 "$SRC/d/xattrs"
	setcap cap_net_raw+ep "$SRC/d/suid2" 2>/dev/null ||
		{ echo cap > "$SRC/d/suid2"; setcap cap_net_raw+ep "$SRC/d/suid2"; }
fi
ID=$(agent "$A" backup --json "$SRC" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')
check "alice backs up a tree with privileged metadata" grep -qE '^[0-9a-f]{64}$' <<<"$ID"

# restored KEY TARGET: facts about the restored tree, one per line.
restored() {
	local r=$2/${SRC#/}/d
	case $1 in
	suid) stat -c %a "$r/suid" ;;
	sgid) stat -c %a "$r/sgid" ;;
	sgdir) stat -c %a "$r/sgdir" ;;
	dev) test -c "$r/null" && echo yes || echo no ;;
	user) getfattr --only-values -n user.keep "$r/xattrs" 2>/dev/null ;;
	trusted) getfattr --only-values -n trusted.evil "$r/xattrs" 2>/dev/null || echo none ;;
	cap) getcap "$r/suid2" 2>/dev/null | grep -q cap_net_raw && echo yes || echo no ;;
	esac
}

agent "$A" restore "$ID" --target "$T/own" 2>"$T/own.err"
check_eq "alice restores her own snapshot" 0 "$?"
check_eq "her setuid bit is kept" 4755 "$(restored suid "$T/own")"
check_eq "her setgid bit is kept" 2711 "$(restored sgid "$T/own")"
check "nothing was left out, nothing said" not grep -q "left out" "$T/own.err"

agent "$ADM" restore "$ID" --target "$T/foreign" 2>"$T/foreign.err"
check_eq "an admin restores alice's snapshot" 0 "$?"
cat "$T/foreign.err"
check_eq "without the setuid bit" 755 "$(restored suid "$T/foreign")"
check_eq "without the setgid bit of a file" 711 "$(restored sgid "$T/foreign")"
check_eq "a directory keeps its setgid bit" 2775 "$(restored sgdir "$T/foreign")"
check_eq "user.* xattrs are kept" kept "$(restored user "$T/foreign")"
check "a warning counts the setuid/setgid bits left out, names the first" \
	grep -q "left out the setuid/setgid bits of 2 entries, first '${SRC#/}/d/s[ug]id' (the snapshot is another client's; --same-privileges" "$T/foreign.err"

agent "$ADM" restore "$ID" --target "$T/same" --same-privileges 2>"$T/same.err"
check_eq "with --same-privileges" 0 "$?"
check_eq "the setuid bit is restored" 4755 "$(restored suid "$T/same")"
check "and nothing is said to be left out" not grep -q "left out" "$T/same.err"

agent "$A" restore "$ID" --target "$T/asked" --no-setuid --no-devices --no-special-xattrs 2>"$T/asked.err"
check_eq "her own with --no-setuid --no-devices --no-special-xattrs" 0 "$?"
check_eq "the setuid bit is left out as asked" 755 "$(restored suid "$T/asked")"
check "the warning says it was asked" grep -q "left out the setuid/setgid bits of 2 entries, .* (as asked)" "$T/asked.err"

agent "$A" restore "$ID" --format tar --output "$T/x.tar" --same-privileges 2>/dev/null
check_eq "privilege options with --format tar are a usage error" 2 "$?"

if is_root; then
	check_eq "root's own restore: the device node is made" yes "$(restored dev "$T/own")"
	check_eq "root's own restore: trusted.* is kept" 1 "$(restored trusted "$T/own")"
	check_eq "root's own restore: security.capability is kept" yes "$(restored cap "$T/own")"
	check_eq "another client's: no device node" no "$(restored dev "$T/foreign")"
	check_eq "another client's: no trusted.* xattr" none "$(restored trusted "$T/foreign")"
	check_eq "another client's: no security.capability" no "$(restored cap "$T/foreign")"
	check "a warning counts the device nodes and names one" \
		grep -q "left out 1 device nodes, first '${SRC#/}/d/null'" "$T/foreign.err"
	check "... its hard link is left out with it, not refused as unsafe" \
		not grep -q "refus" "$T/foreign.err" "$T/asked.err"
	check "... and not made" test ! -e "$T/asked/${SRC#/}/d/null2"
	check_eq "--same-privileges: the device's hard link is one inode with it" \
		"$(stat -c %i "$T/same/${SRC#/}/d/null")" "$(stat -c %i "$T/same/${SRC#/}/d/null2")"
	check "a warning counts the special xattrs and names one" \
		grep -qE "left out 2 security.\*, trusted.\* or system.\* extended attributes, first (security.capability of '${SRC#/}/d/suid2'|trusted.evil of '${SRC#/}/d/xattrs')" "$T/foreign.err"
	check_eq "--same-privileges: the device node" yes "$(restored dev "$T/same")"
	check_eq "--same-privileges: trusted.*" 1 "$(restored trusted "$T/same")"
	check_eq "--same-privileges: security.capability" yes "$(restored cap "$T/same")"
	check_eq "--no-devices on her own" no "$(restored dev "$T/asked")"
	# --include of the device's later link alone: with --no-devices it is
	# that device, left out as asked (adding the first path would restore
	# nothing more); without, the first path is what the selection lacks.
	agent "$A" restore "$ID" --target "$T/inc" --no-devices \
		--include "${SRC#/}/d/null2" 2>"$T/inc.err"
	check_eq "--no-devices --include of a device's later link only: exit 0" 0 "$?"
	check "... counted once as a device node left out" \
		grep -q "left out 1 device nodes, first '${SRC#/}/d/null2' (as asked)" "$T/inc.err"
	check "... not reported as a link whose first path is left out" \
		not grep -q "selection leaves out" "$T/inc.err"
	check "... and not made" test ! -e "$T/inc/${SRC#/}/d/null2"
	agent "$A" restore "$ID" --target "$T/inc2" --include "${SRC#/}/d/null2" 2>"$T/inc2.err"
	check_eq "without --no-devices the same selection exits 1" 1 "$?"
	check "... naming the first path to add" grep -q "add --include '${SRC#/}/d/null'" "$T/inc2.err"
	check_eq "--no-special-xattrs on her own" none "$(restored trusted "$T/asked")"
	check_eq "--no-special-xattrs keeps user.*" kept "$(restored user "$T/asked")"
else
	echo "# skipped: device nodes, trusted.* and security.capability need root"
fi

# A hard link to a file that was in the target before the restore: the
# server accepts it (the source sorts first), the restore must refuse it.
cat > "$T/mk.py" <<'PY'
# mk.py OUTDIR SPEC: OUTDIR/bundle.bin (every chunk, raw) and
# OUTDIR/snap.json for a version 2 catalog of SPEC, a list of
# (type, path, link, data, mode).
import hashlib, json, os, struct, sys, time
out, spec = sys.argv[1], eval(sys.argv[2])
T = {"file": 1, "dir": 2, "symlink": 3, "hardlink": 4}
cat = bytearray(b"DDCT" + struct.pack("<I", 2))
chunks = {}
for typ, path, link, data, mode in spec:
    refs, n = b"", 0
    if data:
        cid = hashlib.sha256(data).digest()
        chunks[cid] = data
        refs, n = cid + struct.pack("<I", len(data)), 1
    cat += struct.pack("<BBHIIIqIqIQQQIIIQ", T[typ], 0, 0, mode, 0, 0,
                       int(time.time()), 0, int(time.time()), 0, 1, 1,
                       len(data), len(path), len(link), 0, n)
    cat += path + link + refs
sys.path.insert(0, os.environ["E2E_DIR"])
from handmade import write_snapshot
write_snapshot(out, chunks, cat)
PY
crafted() { # NAME SPEC: posts the snapshot as alice; prints its id
	local dir=$T/c.$1
	mkdir -p "$dir"
	python3 "$T/mk.py" "$dir" "$2" || return 1
	api "$A" POST /api/v1/chunks --data-binary @"$dir/bundle.bin" -H 'Content-Type: application/octet-stream' >/dev/null
	api "$A" POST /api/v1/snapshots --data-binary @"$dir/snap.json" -H 'Content-Type: application/json' | head -n1 |
		python3 -c 'import json,sys; print(json.load(sys.stdin).get("id", ""))'
}
HL=$(crafted hl "[('file', b'a-restored', b'', b'mine', 0o644),
 ('hardlink', b'b-to-restored', b'a-restored', b'', 0o644),
 ('hardlink', b'evil-to-secret', b'aaa-secret', b'', 0o644)]")
check "a catalog with a hard link to a path it does not hold is accepted" grep -qE '^[0-9a-f]{64}$' <<<"$HL"
mkdir -p "$T/hlt"
echo SECRET > "$T/hlt/aaa-secret"; chmod 600 "$T/hlt/aaa-secret"
agent "$A" restore "$HL" --target "$T/hlt" 2>"$T/hl.err"
check_eq "the restore reports the refused entry" 1 "$?"
check "the link to a file it did not create is refused, by name" \
	grep -q "refusing entry 'evil-to-secret': the hard link's source was not restored by this restore" "$T/hl.err"
check "no link to the pre-existing file was made" test ! -e "$T/hlt/evil-to-secret"
check_eq "the pre-existing file has one link" 1 "$(stat -c %h "$T/hlt/aaa-secret")"
check_eq "a link to a file the restore made is made" \
	"$(stat -c %i "$T/hlt/a-restored")" "$(stat -c %i "$T/hlt/b-to-restored" 2>/dev/null)"

# ---- item 9: FILE.tmp of --format tar ----

echo VICTIM > "$T/victim"
ln -s "$T/victim" "$T/out.tar.tmp"
agent "$A" restore "$ID" --format tar --output "$T/out.tar" 2>"$T/tar.err"
check_eq "a tar export with a symlink planted at FILE.tmp succeeds" 0 "$?"
check_eq "the symlink's target is untouched" VICTIM "$(head -c 40 "$T/victim" | tr -d "\\0")"
check "the output is a regular file, not the planted symlink" test -f "$T/out.tar" -a ! -L "$T/out.tar"
check "it is a tar of the snapshot" sh -c "tar -tf '$T/out.tar' | grep -q 'd/plain\$'"
echo VICTIM2 > "$T/victim2"
ln "$T/victim2" "$T/out2.tar.tmp"
agent "$A" restore "$ID" --format tar --output "$T/out2.tar" 2>/dev/null
check_eq "a hard link planted at FILE.tmp: the export succeeds" 0 "$?"
check_eq "and the linked file is untouched" VICTIM2 "$(head -c 40 "$T/victim2" | tr -d "\\0")"

# ---- item 11 and 10: a hostile server, through a TLS proxy ----

cat > "$T/proxy.py" <<'PY'
# proxy.py PORTFILE UPSTREAM CA CERT KEY MODE ZFRAME: forwards HTTPS
# requests to the real server. MODE bigplain: every record of a chunk fetch
# of more than one id becomes a zstd frame claiming 16 MiB of plain bytes;
# flip: one byte of the first record of every chunk fetch for a restore's
# files (?verify=client) is flipped;
# ctrlerr: every request gets a 500 whose error text holds terminal escapes.
import json, os, struct, sys
sys.path.insert(0, os.environ["E2E_DIR"])
from tlsproxy import serve
portfile, upstream, ca, cert, key, mode, zpath = sys.argv[1:8]
zframe = open(zpath, "rb").read()

def rewrite(body):
    magic, ver, n = body[:4], *struct.unpack("<II", body[4:12])
    out, off = bytearray(body[:12]), 12
    for _ in range(n):
        cid = body[off:off + 32]
        flags, plain, stored = struct.unpack("<III", body[off + 32:off + 44])
        off += 44 + stored
        out += cid + struct.pack("<III", 1, 16 << 20, len(zframe)) + zframe
    return bytes(out)

def flip(body):
    # one byte of the first record's stored bytes, as a bad link would
    n = struct.unpack("<I", body[8:12])[0]
    stored = struct.unpack("<I", body[12 + 40:12 + 44])[0]
    if n == 0 or stored == 0:
        return body
    out = bytearray(body)
    out[12 + 44 + stored // 2] ^= 0x40
    return bytes(out)

def handler(method, path, body, headers, forward):
    if mode == "ctrlerr":
        return 500, "application/json", json.dumps(
            {"error": "bad \x1b]2;owned\x07\x1b[2J\x9b31m thing"}).encode()
    status, ctype, data = forward(method, path, body, headers)
    if path.split("?")[0].endswith("/chunks/fetch") and status == 200:
        if mode == "bigplain" and len(body or b"") > 32:
            data = rewrite(data)
        elif mode == "flip" and "verify=client" in path:
            data = flip(data)
    return status, ctype, data

serve(portfile, upstream, ca, cert, key, handler)
PY
head -c $((16 << 20)) /dev/zero | zstd -q -19 -c > "$T/z.bin"
PROXY_PIDS=()
proxy_start() { # MODE: sets PURL
	local pf=$T/proxy.$1.port i
	python3 "$T/proxy.py" "$pf" "$URL" "$CA" "$T/repo/tls/cert.pem" "$T/repo/tls/key.pem" "$1" "$T/z.bin" 2>>"$T/proxy.log" &
	PROXY_PIDS+=($!)
	for i in $(seq 1 200); do [ -s "$pf" ] && break; sleep 0.05; done
	PURL=https://127.0.0.1:$(cat "$pf")
}
trap 'for p in "${PROXY_PIDS[@]}"; do ours "$p" && kill "$p" 2>/dev/null; done; cleanup' EXIT

mkdir -p "$T/small"
for i in $(seq 1 300); do echo "small file number $i" > "$T/small/f$i"; done
SID=$(agent "$A" backup --json "$T/small" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')
proxy_start bigplain
# The agent's address space is capped so that, should it try to reserve
# 300 x 16 MiB, it fails instead of eating the machine's memory (not under
# AddressSanitizer, whose shadow memory needs far more address space).
ASAN=0
ldd "$AGENT" 2>/dev/null | grep -q libasan && ASAN=1
python3 - "$AGENT" "$PURL" "$A" "$CA" "$SID" "$T/big" "$ASAN" > "$T/big.out" 2> "$T/big.err" <<'PY'
import resource, subprocess, sys
agent, url, tok, ca, sid, target, asan = sys.argv[1:8]
def cap():
    if asan == "0":
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
p = subprocess.run([agent, "--server", url, "--token", tok, "--ca", ca,
                    "restore", sid, "--target", target],
                   preexec_fn=cap, stderr=subprocess.PIPE, timeout=300)
sys.stderr.write(p.stderr.decode(errors="replace"))
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
PY
read -r big_rc big_rss < "$T/big.out"
cat "$T/big.err"
check_eq "a fetch reply claiming 16 MiB per chunk fails the restore" 1 "$big_rc"
check "with an error naming the chunk and both lengths" \
	grep -qE "sent chunk [0-9a-f]{64} as 16777216 bytes, the catalog says [0-9]+" "$T/big.err"
check "not with running out of memory" not grep -q "out of memory" "$T/big.err"
if [ "$ASAN" = 0 ]; then
	check "the agent's peak RSS stays small (${big_rss} MiB < 200)" test "${big_rss:-9999}" -lt 200
fi
check "nothing was written from the forged chunks" test -z "$(find "$T/big" -type f -size +1k 2>/dev/null)"

# A chunk damaged on the way (the server's copy intact): the restore,
# which checks every chunk itself (?verify=client), fails naming it; its
# report makes the server check the chunk, find it intact and keep it.
proxy_start flip
"$AGENT" --server "$PURL" --token "$A" --ca "$CA" restore "$SID" \
	--target "$T/flipped" > /dev/null 2> "$T/flip.err"
check_eq "a chunk damaged on the way fails the restore" 1 "$?"
sed 's/^/# /' "$T/flip.err" | tail -n 3
check "naming the chunk" grep -qE "chunk [0-9a-f]{64} is corrupt" "$T/flip.err"
check "and saying the server's copy is intact" \
	grep -q "intact on the server: they were damaged on the way" "$T/flip.err"
check "the server dropped nothing" not grep -q "is damaged" "$T/server.log"
agent "$A" restore "$SID" --target "$T/unflipped" 2>/dev/null
check "the same restore straight from the server succeeds" \
	diff -r "$T/small" "$T/unflipped/${T#/}/small"

proxy_start ctrlerr
"$AGENT" --server "$PURL" --token "$A" --ca "$CA" snapshots > "$T/ctl.out" 2> "$T/ctl.err"
check_eq "a server error fails the command" 1 "$?"
check "the server's error text is shown" grep -q "bad .*thing" "$T/ctl.err"
check "with its escape bytes escaped" grep -qF 'bad \x1b]2;owned\x07\x1b[2J\xc2\x9b31m thing' "$T/ctl.err"
check "no raw control byte reaches the terminal" not grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$T/ctl.err"

# A host name with escapes, recorded through the API by a client.
# (The list gives summaries; the catalog is in the manifest by id.)
SID=$(agent "$A" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
CAT=$(api "$A" GET "/api/v1/snapshots/$SID" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["catalog"][0])')
python3 - "$CAT" > "$T/evilhost.json" <<'PY'
import json, sys, time
print(json.dumps({"host": "pc\x1b]2;pwned\x07\x1b[31m", "paths": ["/x\x1b[1m"],
                  "catalog": [sys.argv[1]], "time_start": int(time.time())}))
PY
check_eq "a snapshot with escapes in its host is accepted" 201 "$(api_status "$A" POST /api/v1/snapshots --data-binary @"$T/evilhost.json" -H 'Content-Type: application/json')"
agent "$A" snapshots > "$T/list.out"
check "the snapshot list shows the host escaped" grep -qF 'pc\x1b]2;pwned\x07\x1b[31m' "$T/list.out"
check "and the path escaped" grep -qF '/x\x1b[1m' "$T/list.out"
check "no raw escape byte in the list" not grep -q "$ESC" "$T/list.out"

# An owner name with escapes, as the backup host's passwd said.
if is_root && unshare -m true 2>/dev/null; then
	mkdir -p "$T/owned"
	echo o > "$T/owned/f"; chown 4242:4242 "$T/owned/f"
	{ cat /etc/passwd; printf 'ev\x1b[31mil:x:4242:4242::/:/bin/false\n'; } > "$T/passwd"
	{ cat /etc/group; printf 'gr\x1b]2;x\x07p:x:4242:\n'; } > "$T/group"
	OID=$(unshare -m sh -c 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"' \
		sh "$T/passwd" "$T/group" "$AGENT" --server "$URL" --token "$A" --ca "$CA" backup --json "$T/owned" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])')
	agent "$A" ls "$OID" > "$T/ls.out"
	check "ls shows the owner name escaped" grep -qF 'ev\x1b[31mil/gr\x1b]2;x\x07p' "$T/ls.out"
	check "no raw escape byte in the listing" not grep -q "$ESC" "$T/ls.out"
else
	echo "# skipped: owner names with escapes need root and mount namespaces"
fi
finish
