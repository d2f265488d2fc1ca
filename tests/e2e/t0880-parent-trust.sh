#!/bin/bash
# t0880-parent-trust.sh - a stolen client token cannot poison later backups
# (issue 17, item 3). The attacker reads the client's latest snapshot,
# points one file's chunk list at other bytes of the same length, uploads
# that catalog and creates a snapshot with the same host and paths. The
# real agent's next backup must not take it as its parent: it warns naming
# it, reads the file, and records the real bytes. Also: the state file's
# place and modes, a first backup / lost state (quiet full read), and a
# forgotten remembered parent (a note, full read).
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
TOK=$(token_add "$R" laptop)
ADM=$(token_add "$R" boss --admin)
server_start "$R" || exit 1

S=$T/src
mkdir -p "$S/docs"
{ echo "the real contract, page 1"; head -c 3000 /dev/zero | tr '\0' x; } > "$S/docs/contract.txt"
prand other 5000 > "$S/docs/other.bin"
age_tree "$S"
REAL=$(sha256sum < "$S/docs/contract.txt" | cut -c1-64)

backup() { agent "$TOK" backup --json "$S" 2>"$T/backup.err"; }

# ---- the real agent's first and second backups ----
OUT1=$(backup)
check "first backup succeeds" test -n "$OUT1"
check_eq "first backup reads every file" 0 "$(json_get "$OUT1" files_unchanged)"
check "first backup is quiet (no parent yet)" not test -s "$T/backup.err"
STATE=$(ls "$DEDUP_STATE_DIR"/parent.* 2>/dev/null | head -n1)
check "the agent recorded its snapshot in DEDUP_STATE_DIR" test -f "$STATE"
check_eq "state directory is 0700" 700 "$(stat -c %a "$DEDUP_STATE_DIR")"
check_eq "state file is 0600" 600 "$(stat -c %a "$STATE")"
ID1=$(json_get "$OUT1" snapshot_id)
check "the record names the snapshot" grep -q "^id $ID1\$" "$STATE"
OUT2=$(backup)
check_eq "second backup trusts its own parent (2 files unchanged)" 2 "$(json_get "$OUT2" files_unchanged)"
ID2=$(json_get "$OUT2" snapshot_id)

# ---- the attacker, with the client's token only ----
cat > "$T/attack.py" <<'PY'
import hashlib, json, os, ssl, struct, sys, time, urllib.request

def req(method, path, body=None):
    ctx = ssl.create_default_context(cafile=os.environ["CA"])
    r = urllib.request.Request(os.environ["URL"] + path, data=body, method=method,
                               headers={"Authorization": "Bearer " + os.environ["TOK"]})
    with urllib.request.urlopen(r, context=ctx, timeout=60) as f:
        return f.read()

snap_id, real_hex = sys.argv[1], sys.argv[2]
m = json.loads(req("GET", "/api/v1/snapshots/" + snap_id))
real = bytes.fromhex(real_hex)
cats = [req("GET", "/api/v1/chunks/" + c) for c in m["catalog"]]
data = [c for c in cats if real in c]
assert len(data) == 1 and data[0].count(real) == 1, "real chunk id not in the catalog"
# other content of the same length, uploaded under its own id
size = len(req("GET", "/api/v1/chunks/" + real_hex))
fake = (b"POISONED BY THE ATTACKER\n" * (size // 25 + 1))[:size]
fid = hashlib.sha256(fake).digest()
new_ids, chunks = [], {fid: fake}
for c in cats:
    c2 = c.replace(real, fid)
    cid = hashlib.sha256(c2).digest()
    chunks[cid] = c2
    new_ids.append(cid.hex())
b = bytearray(b"DDBN" + struct.pack("<II", 1, len(chunks)))
for k, v in chunks.items():
    b += k + struct.pack("<III", 0, len(v), len(v)) + v
req("POST", "/api/v1/chunks", bytes(b))
body = json.dumps({"host": m["host"], "paths": m["paths"], "catalog": new_ids,
                   "time_start": int(time.time()) + 60}).encode()
print(json.loads(req("POST", "/api/v1/snapshots", body))["id"])
PY
FAKE=$(TOK=$TOK python3 "$T/attack.py" "$ID2" "$REAL" 2>"$T/attack.err")
check "the attacker creates a snapshot with the same host and paths" test -n "$FAKE"
[ -n "$FAKE" ] || cat "$T/attack.err"
rm -rf "$T/rf"
agent "$TOK" restore "$FAKE" --target "$T/rf" >/dev/null 2>"$T/rf.err"
check "the fake snapshot does carry other bytes" \
	grep -q POISONED "$T/rf$S/docs/contract.txt"

# ---- the real agent's next backup ----
OUT3=$(backup)
ID3=$(json_get "$OUT3" snapshot_id)
check "next backup succeeds" test -n "$ID3"
check "it warns naming the foreign snapshot" grep -q "warning: snapshot $FAKE .*not used as parent" "$T/backup.err"
check_eq "it reads every file (none taken from the fake)" 0 "$(json_get "$OUT3" files_unchanged)"
rm -rf "$T/r3"
agent "$TOK" restore "$ID3" --target "$T/r3" >/dev/null 2>"$T/restore.err"
check "the new snapshot restores the real bytes" \
	cmp -s "$S/docs/contract.txt" "$T/r3$S/docs/contract.txt"
check "and its parent field is not the fake" \
	python3 -c 'import json,sys; m=json.loads(sys.stdin.read().rsplit("\n",2)[0]); sys.exit(m.get("parent") == sys.argv[1])' "$FAKE" \
	< <(api "$TOK" GET "/api/v1/snapshots/$ID3")
OUT4=$(backup)
check_eq "the backup after that trusts the agent's own snapshot again" 2 "$(json_get "$OUT4" files_unchanged)"
check "quietly" not test -s "$T/backup.err"
ID4=$(json_get "$OUT4" snapshot_id)

# ---- a damaged record file counts as none (warning, full read) ----
echo garbage > "$STATE"
OUT5=$(backup)
check_eq "a damaged record: every file read" 0 "$(json_get "$OUT5" files_unchanged)"
check "with a warning naming the record file" grep -q "warning: .*$(basename "$STATE")" "$T/backup.err"

# ---- lost state: a quiet full read, like a first backup ----
rm -rf "$DEDUP_STATE_DIR"
OUT6=$(backup)
check_eq "lost state: every file read" 0 "$(json_get "$OUT6" files_unchanged)"
check "lost state: quietly" not test -s "$T/backup.err"
ID6=$(json_get "$OUT6" snapshot_id)

# ---- the remembered snapshot forgotten: a note, a full read ----
agent "$ADM" forget "$ID6" >/dev/null 2>&1
check_eq "the remembered snapshot is forgotten" 404 "$(api_status "$TOK" GET "/api/v1/snapshots/$ID6")"
OUT7=$(backup)
check_eq "forgotten parent: every file read" 0 "$(json_get "$OUT7" files_unchanged)"
check "with a note naming it" grep -q "note: .*$ID6" "$T/backup.err"

# ---- --force-read still reads everything, and is remembered ----
OUT8=$(agent "$TOK" backup --json --force-read "$S" 2>/dev/null)
check_eq "--force-read reads every file" 0 "$(json_get "$OUT8" files_unchanged)"
check_eq "and the next backup uses it as parent" 2 "$(json_get "$(backup)" files_unchanged)"

finish
