#!/usr/bin/env bash
# Client-side encryption (docs/ENCRYPTION.md): an encrypted backup restores
# identical and leaves no plaintext in the repository; incremental backups
# pair with their parent; two clients with one key dedup, another key does
# not; plain and encrypted clients share a server and never take each
# other's chunks; gc after forget keeps what encrypted snapshots reference;
# wrong passphrase, wrong key and a damaged sealed chunk are clear errors;
# key export/import round trip.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
B=$(token_add "$R" bob)
C=$(token_add "$R" carol)
P=$(token_add "$R" plainpete)
ADM=$(token_add "$R" boss --admin)
server_start "$R" || exit 1

export DEDUP_PASSPHRASE_FILE=$T/pass
echo "correct horse battery staple" > "$T/pass"
chmod 600 "$T/pass"
unset DEDUP_PASSPHRASE DEDUP_NEW_PASSPHRASE DEDUP_KEY_FILE
K1=$T/k1.key
K2=$T/k2.key
# an encrypted agent: TOKEN KEYFILE args...
eagent() {
	local tok=$1 key=$2; shift 2
	"$AGENT" --config /dev/null --server "$URL" --token "$tok" --ca "$CA" \
		--key-file "$key" "$@"
}

# ---- key init / show / export / import ----
"$AGENT" --config /dev/null key init --key-file "$K1" >"$T/fpr1" 2>"$T/init.err"
check "key init creates a key file" test -s "$K1"
check_eq "key file is mode 0600" 600 "$(stat -c %a "$K1")"
check "key init warns lost key = lost data" grep -q "lost key = lost data" "$T/init.err"
check_eq "key init prints a 32-digit fingerprint" 32 "$(tr -d '\n' < "$T/fpr1" | wc -c)"
check "key init refuses to overwrite" not "$AGENT" --config /dev/null key init --key-file "$K1"
check_eq "key show prints the same fingerprint" "$(cat "$T/fpr1")" \
	"$("$AGENT" --config /dev/null key show --key-file "$K1")"
check "key --help says lost key = lost data" sh -c "'$AGENT' key --help | grep -q 'LOST KEY = LOST DATA'"
echo "another passphrase" > "$T/pass2"
chmod 600 "$T/pass2"
"$AGENT" --config /dev/null key export --key-file "$K1" --output "$T/exp.key" \
	--new-passphrase-file "$T/pass2" >/dev/null
check "key export with a new passphrase" test -s "$T/exp.key"
check "the export does not open with the old passphrase" \
	not "$AGENT" --config /dev/null key show --key-file "$T/exp.key"
DEDUP_PASSPHRASE_FILE=$T/pass2 "$AGENT" --config /dev/null key import \
	--key-file "$T/imp.key" --input "$T/exp.key" --new-passphrase-file "$T/pass" >/dev/null
check_eq "key import round trip keeps the key" "$(cat "$T/fpr1")" \
	"$("$AGENT" --config /dev/null key show --key-file "$T/imp.key")"
"$AGENT" --config /dev/null key init --key-file "$K2" >/dev/null 2>&1

# ---- encrypted backup and restore ----
SRC=$T/src
mkdir -p "$SRC/sub"
MARK=ZEBRAMARKER7f3a9c
NAME=secret-budget-plan-4711.txt
for i in $(seq 1 4000); do echo "$MARK line $i of the plain text"; done > "$SRC/sub/$NAME"
prand crypt1 3000000 > "$SRC/big"
prand crypt2 700000 > "$SRC/sub/other"
ln -s "$NAME" "$SRC/sub/link"
age_tree "$SRC"
S1=$(json_get "$(eagent "$A" "$K1" backup --json "$SRC")" snapshot_id)
check "encrypted backup made a snapshot" test -n "$S1"
eagent "$A" "$K1" restore "$S1" --target "$T/r1" >/dev/null 2>"$T/r1.err"
check "encrypted restore is identical" diff -r "$SRC" "$T/r1$SRC"
check "the marker is nowhere in the repository" not grep -rqa "$MARK" "$R"
check "the file name is nowhere in the repository" not grep -rqa "$NAME" "$R"
check "the source path is nowhere in the repository" not grep -rqa "$SRC" "$R"
check "the manifest carries a sealed part" grep -q '"sealed"' "$R/snapshots/$S1.json"
api "$A" GET /api/v1/snapshots | sed '$d' > "$T/list.json"
check "a listing marks it encrypted, without the sealed part" python3 -c '
import json, sys
items = json.load(open(sys.argv[1]))
it = [i for i in items if i["id"] == sys.argv[2]][0]
sys.exit(0 if it.get("encrypted") is True and "sealed" not in it else 1)' "$T/list.json" "$S1"
eagent "$A" "$K1" restore "$S1" --format tar --output "$T/r1.tar" >/dev/null 2>&1
check "encrypted --format tar holds the file" sh -c "tar -xOf '$T/r1.tar' '${SRC#/}/sub/$NAME' | cmp -s - '$SRC/sub/$NAME'"
check "encrypted verify passes" eagent "$A" "$K1" verify "$S1"
check "encrypted ls lists the file" sh -c "$(declare -f eagent); AGENT='$AGENT' URL='$URL' CA='$CA' eagent '$A' '$K1' ls '$S1' | grep -q '$NAME'"

# ---- incremental ----
echo "appended" >> "$SRC/sub/other"
eagent "$A" "$K1" backup --json "$SRC" > "$T/inc.json"
S2=$(json_get "$(cat "$T/inc.json")" snapshot_id)
check_eq "incremental reuses the two unchanged files" 2 "$(json_get "$(cat "$T/inc.json")" files_unchanged)"
check "incremental parent is the first snapshot" grep -q "\"parent\": *\"$S1\"" "$R/snapshots/$S2.json"
rm -rf "$T/r2"
eagent "$A" "$K1" restore "$S2" --target "$T/r2" >/dev/null 2>&1
check "incremental restore is identical" diff -r "$SRC" "$T/r2$SRC"

# ---- mount (where FUSE is available) ----
MNT=$T/mnt
MPID=
crypt_cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	ours "$MPID" && kill -TERM "$MPID" && wait "$MPID"
	cleanup
}
trap crypt_cleanup EXIT
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
	mkdir -p "$MNT"
	"$AGENT" --config /dev/null --server "$URL" --token "$A" --ca "$CA" \
		--key-file "$K1" mount "$S2" "$MNT" 2>"$T/mount.log" &
	MPID=$!
	for i in $(seq 1 300); do
		mountpoint -q "$MNT" && break
		kill -0 "$MPID" 2>/dev/null || break
		sleep 0.1
	done
	check "an encrypted snapshot mounts" mountpoint -q "$MNT"
	check "a file reads back through the mount" cmp "$SRC/sub/$NAME" "$MNT$SRC/sub/$NAME"
	check "the large file reads back through the mount" cmp "$SRC/big" "$MNT$SRC/big"
	fusermount3 -u "$MNT"
	wait "$MPID"
	check_eq "the mount ends with 0 after fusermount3 -u" 0 "$?"
	MPID=
else
	echo "skipped: mount checks (/dev/fuse or fusermount3 absent)"
fi

# ---- a second client with the same key dedups; another key does not ----
SENT=$(json_get "$(eagent "$B" "$K1" backup --json "$SRC")" bytes_sent)
TOT=$(du -sb "$SRC" | cut -f1)
check "same key: second client sends <1% ($SENT of $TOT)" test "$SENT" -lt $((TOT / 100))
SENT2=$(json_get "$(eagent "$C" "$K2" backup --json "$SRC")" bytes_sent)
check "other key: no dedup ($SENT2 of $TOT sent)" test "$SENT2" -gt $((TOT / 2))
# The same client and paths with the first key: its last snapshot is
# there, sealed with the other key; the note says so, not "gone".
eagent "$C" "$K1" backup --json "$SRC" > /dev/null 2>"$T/k1-after-k2.err"
check "another key's last snapshot: the note names the key" \
	grep -q "made with another key" "$T/k1-after-k2.err"
check "and does not call it gone" not grep -q "is gone" "$T/k1-after-k2.err"

# ---- plain and encrypted clients on one server ----
SP=$(json_get "$(agent "$P" backup --json "$SRC")" snapshot_id)
rm -rf "$T/rp"
agent "$P" restore "$SP" --target "$T/rp" >/dev/null 2>&1
check "plain client alongside restores identical" diff -r "$SRC" "$T/rp$SRC"
check "the plain client's snapshot is unsealed" not grep -q '"sealed"' "$R/snapshots/$SP.json"
check_eq "browsing an encrypted snapshot is 409" 409 "$(api_status "$A" GET "/api/v1/tree/$S1?path=/")"
check_eq "browsing the plain snapshot works" 200 "$(api_status "$P" GET "/api/v1/tree/$SP?path=/")"
# The server answers "missing" to a plain query for a sealed chunk.
SID=$(python3 - "$R" "$S1" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/snapshots/{sys.argv[2]}.json"))
print(m["catalog"][0])
PY
)
# a sealed id: any data chunk of the encrypted snapshot (not the plain
# reference list): take one from an encrypted fetch of the reference list
RID=$(python3 - "$R" <<'PY'
import os, struct, sys
# scan packs for the first record with the sealed flag (2)
d = sys.argv[1] + "/packs"
for f in sorted(os.listdir(d)):
    b = open(os.path.join(d, f), "rb").read()
    off = 16
    while off + 48 <= len(b) and b[off:off+4] == b"DDRC":
        rid = b[off+4:off+36]; flags, pl, sl = struct.unpack("<III", b[off+36:off+48])
        if flags & 2:
            print(rid.hex()); sys.exit(0)
        off += 48 + sl
PY
)
check "a sealed record is in the packs" test -n "$RID"
printf '%s' "$RID" | xxd -r -p > "$T/rid.bin"
api "$P" POST /api/v1/chunks/missing --data-binary @"$T/rid.bin" \
	-H 'Content-Type: application/octet-stream' -o "$T/bits" >/dev/null
check_eq "a plain query is told a sealed chunk is missing" 01 "$(xxd -p "$T/bits")"
api "$A" POST "/api/v1/chunks/missing?sealed=1" --data-binary @"$T/rid.bin" \
	-H 'Content-Type: application/octet-stream' -o "$T/bits" >/dev/null
check_eq "an encrypted query is told it is present" 00 "$(xxd -p "$T/bits")"
check_eq "the server will not serve a sealed chunk as plain bytes" 409 \
	"$(api_status "$A" GET "/api/v1/chunks/$RID")"
printf '{"host":"h","paths":["/x"],"catalog":["%s"],"time_start":%s}' "$RID" "$(date +%s)" > "$T/sealcat.json"
check_eq "a snapshot cannot name a sealed chunk as its catalog (400)" 400 \
	"$(api_status "$A" POST /api/v1/snapshots --data-binary @"$T/sealcat.json" -H 'Content-Type: application/json')"
# A forged sealed record under a plain chunk's SHA-256 id: the server
# cannot check it, so a plain client is told the chunk is missing and its
# verified upload replaces the forgery.
mkdir -p "$T/forge"
prand forged 5000 > "$T/forge/f"
FID=$(sha256sum "$T/forge/f" | cut -c1-64)
{ printf 'DDBN'; le32 1; le32 1; hexbytes "$FID"; le32 2; le32 5000; le32 5028
  head -c 5028 /dev/zero; } > "$T/forged.bin"
check_eq "a sealed record is accepted by its layout" 200 "$(api_status "$C" POST /api/v1/chunks \
	--data-binary @"$T/forged.bin" -H 'Content-Type: application/octet-stream')"
printf '%s' "$FID" | xxd -r -p > "$T/fid.bin"
api "$P" POST /api/v1/chunks/missing --data-binary @"$T/fid.bin" \
	-H 'Content-Type: application/octet-stream' -o "$T/bits" >/dev/null
check_eq "the forged chunk is missing to a plain client" 01 "$(xxd -p "$T/bits")"
SF=$(json_get "$(agent "$P" backup --json "$T/forge")" snapshot_id)
rm -rf "$T/rf"
agent "$P" restore "$SF" --target "$T/rf" >/dev/null 2>"$T/rf.err"
check "the plain upload replaced the forgery (restore identical)" cmp "$T/forge/f" "$T/rf$T/forge/f"
bad_len=$( { printf 'DDBN'; le32 1; le32 1; hexbytes "$FID"; le32 2; le32 5000; le32 20
  head -c 20 /dev/zero; } > "$T/short.bin"; api_status "$C" POST /api/v1/chunks \
	--data-binary @"$T/short.bin" -H 'Content-Type: application/octet-stream')
check_eq "a sealed record shorter than nonce + tag is refused" 400 "$bad_len"
check "a plain agent cannot read the encrypted snapshot" \
	not agent "$A" restore "$S1" --target "$T/nokey"
check "without a key: error says it is encrypted" sh -c \
	"'$AGENT' --config /dev/null --server '$URL' --token '$A' --ca '$CA' restore '$S1' --target '$T/nokey' 2>&1 | grep -q 'encrypted'"

# ---- wrong passphrase / wrong key ----
echo "wrong" > "$T/badpass"
DEDUP_PASSPHRASE_FILE=$T/badpass eagent "$A" "$K1" restore "$S1" --target "$T/wp" >/dev/null 2>"$T/wp.err"
check_eq "wrong passphrase exits 1" 1 "$?"
check "wrong passphrase says so" grep -q "wrong passphrase" "$T/wp.err"
check "wrong passphrase writes nothing" test ! -e "$T/wp"
eagent "$ADM" "$K2" restore "$S1" --target "$T/wk" >/dev/null 2>"$T/wk.err"
check_eq "wrong key exits 1" 1 "$?"
check "wrong key is named" grep -q "does not open with this key" "$T/wk.err"
check "wrong key writes nothing" test ! -e "$T/wk$SRC/big"

# ---- check --read-data ----
server_stop
"$SERVER" check --repo "$R" --read-data > "$T/check.out" 2>&1
check_eq "check --read-data passes with sealed chunks" 0 "$?"
check "check says sealed chunks cannot be verified" grep -q "contents cannot be" "$T/check.out"

# ---- a sealed part moved to another manifest does not open ----
# What a hostile server could try: S1's sealed host, paths and catalog
# shown under S2 (same key, same client). The part is bound to its own
# manifest's start time and reference list.
cp "$R/snapshots/$S2.json" "$T/s2.json"
python3 - "$R/snapshots/$S1.json" "$R/snapshots/$S2.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
b["sealed"] = a["sealed"]
json.dump(b, open(sys.argv[2], "w"))
PY
server_start "$R" || exit 1
eagent "$A" "$K1" restore "$S2" --target "$T/sw" >/dev/null 2>"$T/sw.err"
check_eq "a moved sealed part: restore exits 1" 1 "$?"
check "a moved sealed part does not open" grep -q "does not open" "$T/sw.err"
check "a moved sealed part: nothing restored" test ! -e "$T/sw$SRC"
server_stop
cp "$T/s2.json" "$R/snapshots/$S2.json"
server_start "$R" || exit 1

# ---- a plain manifest in place of an encrypted one is refused ----
# What a hostile server could try: S2 (alice's, encrypted) replaced by a
# plain manifest of its own choosing (here plainpete's backup of the same
# tree, under S2's id, client and times). An agent with a key reads only
# encrypted snapshots unless told --allow-plain.
SP2=$(json_get "$(agent "$P" backup --json "$SRC")" snapshot_id)
server_stop
cp "$R/snapshots/$S2.json" "$T/s2.keep"
python3 - "$R/snapshots/$SP2.json" "$R/snapshots/$S2.json" <<'PY'
import json, sys
evil = json.load(open(sys.argv[1]))
real = json.load(open(sys.argv[2]))
for k in ("id", "client", "unix_time", "time_start", "time_end"):
    if k in real:
        evil[k] = real[k]
json.dump(evil, open(sys.argv[2], "w"))
PY
server_start "$R" || exit 1
rm -rf "$T/dg"
eagent "$A" "$K1" restore "$S2" --target "$T/dg" >/dev/null 2>"$T/dg.err"
check_eq "a plain manifest under an encrypted id: restore exits 1" 1 "$?"
check "it says the snapshot is not encrypted" grep -q "is not encrypted, but a key is configured" "$T/dg.err"
check "nothing was restored" test ! -e "$T/dg$SRC"
check "verify refuses it too" not eagent "$A" "$K1" verify "$S2"
check "ls refuses it too" not eagent "$A" "$K1" ls "$S2"
eagent "$A" "$K1" --allow-plain restore "$S2" --target "$T/dg" >/dev/null 2>&1
check "--allow-plain reads a plain snapshot with a key configured" diff -r "$SRC" "$T/dg$SRC"
server_stop
cp "$T/s2.keep" "$R/snapshots/$S2.json"
server_start "$R" || exit 1
rm -rf "$T/dg"
eagent "$A" "$K1" restore "$S2" --target "$T/dg" >/dev/null 2>&1
check "the encrypted one restores again" diff -r "$SRC" "$T/dg$SRC"

# ---- gc after forget keeps what encrypted snapshots need ----
agent "$ADM" forget "$S1" "$SP" >/dev/null
agent "$ADM" gc --json > "$T/gc.json"
check "gc removed something" test "$(json_get "$(cat "$T/gc.json")" chunks_removed)" -gt 0
rm -rf "$T/r3"
eagent "$A" "$K1" restore "$S2" --target "$T/r3" >/dev/null 2>"$T/r3.err"
check "restore after gc is identical" diff -r "$SRC" "$T/r3$SRC"

# ---- replication copies an encrypted snapshot ----
# The second server cannot re-hash sealed chunks: it checks their layout,
# keeps the sealed part, and the agent with the key verifies on restore.
D=$T/dest
repo_init "$D"
printf '%s\n' "$ADM" > "$T/sync.token"
chmod 600 "$T/sync.token"
"$SERVER" sync --repo "$D" --from "$URL" --token-file "$T/sync.token" \
	--ca "$CA" --json > "$T/sync.out" 2> "$T/sync.err"
check_eq "sync of encrypted snapshots exits 0" 0 "$?"
check "the copied manifest keeps its sealed part" grep -q '"sealed"' "$D/snapshots/$S2.json"
"$SERVER" check --repo "$D" --read-data > "$T/dcheck.out" 2>&1
check_eq "check --read-data on the copy passes" 0 "$?"
DA=$(token_add "$D" alice)
SURL=$URL SCA=$CA SPID=$SERVER_PID
server_start "$D" || exit 1
rm -rf "$T/rd"
eagent "$DA" "$K1" restore "$S2" --target "$T/rd" >/dev/null 2>"$T/rd.err"
check "the encrypted snapshot restores identical from the copy" diff -r "$SRC" "$T/rd$SRC"
server_stop
SERVER_PID=$SPID URL=$SURL CA=$SCA

# ---- a damaged sealed chunk: restore names it, writes nothing bad ----
server_stop
python3 - "$R" "$T/hit" <<'PY'
import os, struct, sys
d = sys.argv[1] + "/packs"
for f in sorted(os.listdir(d)):
    p = os.path.join(d, f)
    b = bytearray(open(p, "rb").read())
    off = 16
    while off + 48 <= len(b) and b[off:off+4] == b"DDRC":
        flags, pl, sl = struct.unpack("<III", b[off+36:off+48])
        if flags & 2 and pl > 100000:
            b[off + 48 + sl // 2] ^= 0x55
            open(p, "wb").write(b)
            open(sys.argv[2], "w").write(b[off+4:off+36].hex())
            sys.exit(0)
        off += 48 + sl
PY
server_start "$R" || exit 1
HIT=$(cat "$T/hit")
# A backup made now is told the damaged chunk is present (the server
# cannot check it) and references it: what the heal below must undo.
eagent "$A" "$K1" backup "$SRC" >/dev/null 2>&1
rm -rf "$T/r4"
eagent "$A" "$K1" restore "$S2" --target "$T/r4" >/dev/null 2>"$T/r4.err"
check "a damaged sealed chunk fails the restore" test "$?" -ne 0
check "the error names the chunk" grep -q "chunk ${HIT:-none}" "$T/r4.err"
# The agent reported it (POST /chunks/check): the server can check only a
# sealed chunk's layout, so it keeps it and says so, and the agent does
# not blame the way or its memory (docs/ENCRYPTION.md, "Damaged sealed
# chunks").
check "the agent says the server cannot check it" \
	grep -q "1 sealed chunk(s) failed their check here" "$T/r4.err"
check "and does not call it intact on the server" \
	not grep -q "intact on the server" "$T/r4.err"
check "the server kept it" not grep -q "chunk ${HIT:-none} is damaged" "$T/server.log"
hexbytes "${HIT:-00}" > "$T/hit.bin"
out=$(api "$A" POST /api/v1/chunks/check -H 'Content-Type: application/octet-stream' \
	--data-binary @"$T/hit.bin")
check_eq "/chunks/check lists it as sealed" "[\"$HIT\"]" \
	"$(json_get "$(head -n1 <<<"$out")" sealed)"
check_eq "not damaged" "[]" "$(json_get "$(head -n1 <<<"$out")" damaged)"
check_eq "and counts it checked" 1 "$(json_get "$(head -n1 <<<"$out")" checked)"
r4_ok() { # every regular file the failed restore left equals its source
	local f
	[ -d "$T/r4$SRC" ] || return 0
	while IFS= read -r f; do
		cmp -s "$f" "$SRC${f#"$T/r4$SRC"}" || return 1
	done < <(find "$T/r4$SRC" -type f)
}
check "nothing was written as if good" r4_ok

# The agent remembered the chunk (its state directory, per key) and its
# next backup stores those bytes under a variant id the server does not
# hold, reading again the file whose parent entry named it.
DAMAGED=$DEDUP_STATE_DIR/damaged.$(id -u).$(cat "$T/fpr1")
check "the damaged chunk is remembered" grep -qx "${HIT:-none}" "$DAMAGED"
eagent "$A" "$K1" backup --json "$SRC" > "$T/heal.json" 2>"$T/heal.err"
check "the next backup succeeds" test "$?" -eq 0
SH=$(json_get "$(cat "$T/heal.json")" snapshot_id)
check "it stores chunks anew" test "$(json_get "$(cat "$T/heal.json")" chunks_new)" -ge 1
check_eq "reading that one file again" 2 "$(json_get "$(cat "$T/heal.json")" files_unchanged)"
HITF=$(sed -n "s/^error: cannot restore '\(.*\)': chunk .*/\1/p" "$T/r4.err")
check_eq "and only it" "$(stat -c %s "${HITF:-/dev/null}")" \
	"$(json_get "$(cat "$T/heal.json")" bytes_read)"
rm -rf "$T/r5"
eagent "$A" "$K1" restore "$SH" --target "$T/r5" >/dev/null 2>"$T/r5.err"
check "the new snapshot restores identical" diff -r "$SRC" "$T/r5$SRC"
check "and verifies" eagent "$A" "$K1" verify "$SH"
check "it does not name the damaged chunk" not grep -q "${HIT:-none}" \
	<(eagent "$A" "$K1" restore "$SH" --format tar --output - 2>&1 >/dev/null)
check "the old snapshot still fails" not eagent "$A" "$K1" verify "$S2"
eagent "$A" "$K1" backup --json "$SRC" > "$T/heal2.json"
check_eq "a backup after it stores nothing new" 0 "$(json_get "$(cat "$T/heal2.json")" chunks_new)"
# The list survives a torn line (a crash mid-write, two agents at once):
# ids after it are still read. A backup reading every file then gives the
# damaged bytes their variant again, and its snapshot restores.
cp "$DAMAGED" "$T/damaged.keep"
{ printf 'dedup-agent damaged 1\n0123abc'; printf '\n%s\n' "${HIT:-00}"; } > "$DAMAGED"
eagent "$A" "$K1" backup --force-read --json "$SRC" > "$T/torn.json" 2>"$T/torn.err"
check "a torn line is skipped and said" grep -q "1 line(s) that are not a chunk id skipped" "$T/torn.err"
rm -rf "$T/r6"
eagent "$A" "$K1" restore "$(json_get "$(cat "$T/torn.json")" snapshot_id)" \
	--target "$T/r6" >/dev/null 2>&1
check "the id after it is still avoided: the snapshot restores" diff -r "$SRC" "$T/r6$SRC"
# A list without its first line (its creator died before writing it).
printf '\n%s\n' "${HIT:-00}" > "$DAMAGED"
eagent "$A" "$K1" backup --force-read --json "$SRC" > "$T/nohead.json" 2>"$T/nohead.err"
rm -rf "$T/r7"
eagent "$A" "$K1" restore "$(json_get "$(cat "$T/nohead.json")" snapshot_id)" \
	--target "$T/r7" >/dev/null 2>&1
check "a list without its first line is read" diff -r "$SRC" "$T/r7$SRC"
check "without a warning" not grep -q "damaged" "$T/nohead.err"
# More ids than the limit: the rest is said, not read.
python3 - "$DAMAGED" <<'PY'
import os, sys
with open(sys.argv[1], "w") as f:
    f.write("dedup-agent damaged 1\n")
    for i in range(65537):
        f.write(os.urandom(32).hex() + "\n")
PY
eagent "$A" "$K1" verify "$SH" >/dev/null 2>"$T/cap.err"
check "a list past the limit is said" grep -q "names more than 65536 damaged chunks: 1 not read" "$T/cap.err"
# A list too large to be ours, or not a regular file, is neither read nor
# written (a FIFO there must not hang the agent).
head -c 20000000 /dev/zero | tr '\0' 'a' > "$DAMAGED"
eagent "$A" "$K1" verify "$S2" >/dev/null 2>"$T/big.err"
check "a list too large is not used" grep -q "not a list of damaged chunks this agent can use" "$T/big.err"
check_eq "nor written to" 20000000 "$(stat -c %s "$DAMAGED")"
rm -f "$DAMAGED"
mkfifo "$DAMAGED"
timeout 60 "$AGENT" --config /dev/null --server "$URL" --token "$A" --ca "$CA" \
	--key-file "$K1" verify "$SH" >/dev/null 2>"$T/fifo.err"
check "a FIFO in its place does not hang the agent" test "$?" -eq 0
check "and is said" grep -q "not a list of damaged chunks this agent can use" "$T/fifo.err"
rm -f "$DAMAGED"
cp "$T/damaged.keep" "$DAMAGED"


# ---- a new key cuts with a chunker seed of its own ----
# Its chunk lengths are not the repository's, so whoever holds the
# repository's seed cannot match a known file's lengths against them; a
# key made before (version 1, the checked-in one) keeps the repository's
# cuts. Each backup's new records are told apart by listing the packs
# before and after.
packrecs() { # id plain_len of every record with plain_len >= 64 KiB
	python3 - "$R/packs" <<'PY'
import os, struct, sys
d = sys.argv[1]
for f in sorted(os.listdir(d)):
    b = open(os.path.join(d, f), "rb").read()
    off = 16
    while off + 48 <= len(b) and b[off:off+4] == b"DDRC":
        flags, pl, sl = struct.unpack("<III", b[off+36:off+48])
        if pl >= 65536:
            print(b[off+4:off+36].hex(), pl)
        off += 48 + sl
PY
}
new_lens() { # BEFORE AFTER: sorted plain lengths of records new in AFTER
	sort "$1" > "$1.s"; sort "$2" > "$2.s"
	comm -13 "$1.s" "$2.s" | awk '{print $2}' | sort -n | tr '\n' ' '
}
KS=$T/seedsrc
mkdir -p "$KS"
prand keyseed 4000000 > "$KS/data"
cp "$E2E_DIR/../golden/key-v1.key" "$T/kv1.key"
chmod 600 "$T/kv1.key"
echo "golden passphrase" > "$T/kv1.pass"
chmod 600 "$T/kv1.pass"
packrecs > "$T/pk0"
agent "$P" backup --force-read "$KS" >/dev/null
packrecs > "$T/pk1"
eagent "$A" "$K1" backup --force-read "$KS" >/dev/null
packrecs > "$T/pk2"
DEDUP_PASSPHRASE_FILE=$T/kv1.pass eagent "$C" "$T/kv1.key" backup --force-read "$KS" >/dev/null
packrecs > "$T/pk3"
LP=$(new_lens "$T/pk0" "$T/pk1")
LA=$(new_lens "$T/pk1" "$T/pk2")
LC=$(new_lens "$T/pk2" "$T/pk3")
check "the plain backup stored chunks" test -n "$LP"
check_eq "a version 1 key cuts as the repository does" "$LP" "$LC"
check "a new key cuts elsewhere" test "$LA" != "$LP"
check "a new key file is version 2 (128 bytes)" test "$(stat -c %s "$K1")" -eq 128
rm -rf "$T/ks"
eagent "$A" "$K1" restore latest --target "$T/ks" >/dev/null 2>&1
check "a backup cut with the key's seed restores identical" cmp "$KS/data" "$T/ks$KS/data"

# ---- key files: never overwritten, loose modes said ----
# key init checks the path, asks for the passphrase, then writes: a key
# made at that path meanwhile must stay. The passphrase comes from a FIFO:
# opening its write end returns once init opened it, i.e. after its check.
mkfifo "$T/pfifo"
"$AGENT" --config /dev/null key init --key-file "$T/race.key" \
	--new-passphrase-file "$T/pfifo" >"$T/race.out" 2>"$T/race.err" &
XP=$!
exec 7>"$T/pfifo"
"$AGENT" --config /dev/null key init --key-file "$T/race.key" >/dev/null 2>&1
cp "$T/race.key" "$T/race.first"
echo "another passphrase" >&7
exec 7>&-
wait "$XP"
check "a key init overtaken by another fails" test "$?" -ne 0
check "saying the file exists" grep -q "exists; not overwritten" "$T/race.err"
check "the first key is kept" cmp -s "$T/race.key" "$T/race.first"
check "no temporary is left" test -z "$(ls "$T" | grep 'race.key.tmp')"
cp "$K1" "$T/loose.key"
chmod 644 "$T/loose.key" "$T/pass"
"$AGENT" --config /dev/null key show --key-file "$T/loose.key" >/dev/null 2>"$T/loose.err"
check "a key file others can read is used" test "$?" -eq 0
check "with a warning about the key file" grep -q "key file '$T/loose.key' is open to others" "$T/loose.err"
check "and about the passphrase file" grep -q "passphrase file '$T/pass' is open to others" "$T/loose.err"
chmod 600 "$T/pass"
"$AGENT" --config /dev/null key show --key-file "$K1" >/dev/null 2>"$T/tight.err"
check "mode 0600 files: no warning" not grep -q "open to others" "$T/tight.err"

# ---- an encrypted client's failure reaches the server without its paths ----
# The server sees pseudonyms only; an error text names real files. A
# quota makes a backup fail after its session opened, deterministically.
server_stop
server_start "$R" --set client.carol.quota_bytes=1 --set client.plainpete.quota_bytes=1 || exit 1
QS=$T/quota-secret-dir
mkdir -p "$QS"
prand quota1 300000 > "$QS/one"
DEDUP_PASSPHRASE_FILE=$T/kv1.pass eagent "$C" "$T/kv1.key" backup "$QS" >/dev/null 2>"$T/q1.err"
prand quota2 300000 > "$QS/two"
DEDUP_PASSPHRASE_FILE=$T/kv1.pass eagent "$C" "$T/kv1.key" backup "$QS" >/dev/null 2>"$T/q2.err"
check "an encrypted backup over its quota fails" test "$?" -ne 0
agent "$P" backup "$QS" >/dev/null 2>&1
prand quota3 300000 > "$QS/three"
agent "$P" backup "$QS" >/dev/null 2>"$T/q3.err"
check "so does a plain one" test "$?" -ne 0
api "$ADM" GET /api/v1/clients | sed '$d' > "$T/clients.json"
lasterr() {
	python3 -c '
import json, sys
for c in json.load(open(sys.argv[1]))["clients"]:
    if c["name"] == sys.argv[2]:
        print(c.get("last_result"), "|", c.get("last_error"))' "$T/clients.json" "$1"
}
check "the plain client's error is shown as it is" sh -c "echo '$(lasterr plainpete)' | grep -q '^failed | .*quota'"
check "the encrypted client's failure is shown" sh -c "echo '$(lasterr carol)' | grep -q '^failed | the backup failed (an encrypted client'"
check "without its error text" not grep -q "quota" <<<"$(lasterr carol)"
check "its paths are nowhere in the repository" not grep -rqa "quota-secret-dir" "$R"

finish
