#!/usr/bin/env bash
# Corruption battery: bit flips, zeroed ranges and truncations injected
# into packs (sealed and unsealed) and into the index. `check --read-data`
# must name exactly the chunks whose bytes changed (no more, no fewer);
# damage outside any chunk (pack header, trailer) is a pack problem naming
# no chunk. A damaged chunk is never served; after `repair --rebuild-index`
# (or the server noticing it) a backup with the same bytes heals the
# repository. DD_LONG=1 runs more seeds.
. "$(dirname "$0")/lib.sh"

export DD_TEST_BIG_MB=3 DD_TEST_SMALL_FILES=60
SRC=$T/data/tree
make_mixed_tree "$SRC" >/dev/null
SRC2=$T/data/two
mkdir -p "$SRC2"
prand two 2500000 > "$SRC2/two.bin"
seq 1 300000 > "$SRC2/seq.txt"
for i in $(seq 1 40); do echo "file $i of tree two" > "$SRC2/f$i"; done

# The pristine repository: pack 1 sealed (clean stop), pack 2 left
# unsealed by a SIGKILL.
P=$T/pristine
repo_init "$P"
A=$(token_add "$P" alice)
server_start "$P" || exit 1
ID_A=$(json_get "$(agent "$A" backup --json "$SRC")" snapshot_id)
server_stop TERM
server_start "$P" || exit 1
ID_B=$(json_get "$(agent "$A" backup --json "$SRC2")" snapshot_id)
server_stop KILL
"$SERVER" check --repo "$P" --read-data >"$T/out" 2>&1
check_eq "the pristine repository checks clean" 0 $?
"$SERVER" debug list-records --repo "$P" > "$T/records"
"$SERVER" debug list-chunks --repo "$P" > "$T/ids.pristine"
check "two packs" test "$(ls "$P/packs" | wc -l)" = 2
check "every record is indexed once" test "$(cut -d' ' -f1 "$T/records" | sort -u | wc -l)" = "$(wc -l < "$T/ids.pristine")"

cat > "$T/inject.py" <<'PY'
# inject.py REPO RECORDS KIND SEED: damages a pack, prints the chunk ids
# whose record bytes changed (or were cut off), then "pack-problem" when
# the pack header or a sealed pack's trailer was touched.
import os, random, sys
repo, records, kind, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random("%s/%d" % (kind, seed))
recs = {}
for line in open(records):
    cid, pack, off, plain, stored = line.split()
    recs.setdefault(pack, []).append((cid, int(off), 48 + int(stored)))
packs = sorted(recs)
sealed, unsealed = packs[0], packs[1]
def path(p): return os.path.join(repo, "packs", p + ".pack")
def body_end(p): return max(o + n for _, o, n in recs[p])
def pick_record(p, part):
    cid, o, n = rng.choice(recs[p])
    if part == "header": return o + rng.randrange(48)
    return o + 48 + rng.randrange(n - 48) if n > 48 else o + rng.randrange(48)
changes = []   # (pack, new bytes dict or truncate size)
data = {p: bytearray(open(path(p), "rb").read()) for p in packs}
orig = {p: bytes(data[p]) for p in packs}
cut = {}
def flip(p, pos): data[p][pos] ^= 1 << rng.randrange(8)
if kind == "flip-data-sealed": flip(sealed, pick_record(sealed, "data"))
elif kind == "flip-header-sealed": flip(sealed, pick_record(sealed, "header"))
elif kind == "flip-data-unsealed": flip(unsealed, pick_record(unsealed, "data"))
elif kind == "flip-header-unsealed": flip(unsealed, pick_record(unsealed, "header"))
elif kind in ("zero-sealed", "zero-unsealed"):
    p = sealed if kind == "zero-sealed" else unsealed
    n = rng.randrange(1, 9000)
    s = rng.randrange(16, body_end(p) - 1)
    for i in range(s, min(s + n, body_end(p))): data[p][i] = 0
elif kind in ("truncate-sealed", "truncate-unsealed"):
    p = sealed if kind == "truncate-sealed" else unsealed
    cut[p] = rng.randrange(17, body_end(p))
elif kind == "flip-trailer":
    flip(sealed, rng.randrange(body_end(sealed), len(data[sealed])))
elif kind == "torn-seal":
    # the server killed while it appended the trailer: a whole unsealed
    # pack with a cut trailer after it, no damage
    cut[sealed] = rng.choice([body_end(sealed) + rng.randrange(1, 8),
                              rng.randrange(body_end(sealed) + 8, len(data[sealed]))])
elif kind == "flip-packheader":
    flip(rng.choice(packs), rng.randrange(16))
elif kind == "multi":
    for _ in range(6):
        p = rng.choice(packs)
        flip(p, rng.randrange(len(data[p])))
else:
    sys.exit("unknown kind " + kind)
bad, problem = set(), False
for p in packs:
    d = data[p][:cut[p]] if p in cut else data[p]
    with open(path(p), "wb") as f: f.write(d)
    for cid, o, n in recs[p]:
        if o + n > len(d) or d[o:o + n] != orig[p][o:o + n]: bad.add(cid)
    if d[:16] != orig[p][:16]: problem = True
    if p == sealed and p not in cut and d[body_end(p):] != orig[p][body_end(p):]: problem = True
for cid in sorted(bad): print(cid)
if problem: print("pack-problem")
PY

ncases=0; exact=0; codes=0
seeds="1 2"
[ "${DD_LONG:-0}" = 1 ] && seeds="1 2 3 4 5 6 7 8 9 10"
for kind in flip-data-sealed flip-header-sealed flip-data-unsealed flip-header-unsealed \
	zero-sealed zero-unsealed truncate-sealed truncate-unsealed flip-trailer torn-seal \
	flip-packheader multi; do
	for seed in $seeds; do
		R=$T/r-$kind-$seed
		cp -a "$P" "$R"
		python3 "$T/inject.py" "$R" "$T/records" "$kind" "$seed" > "$T/expect.all"
		grep -E '^[0-9a-f]{64}$' "$T/expect.all" > "$T/expect" || true
		"$SERVER" check --repo "$R" --read-data > "$T/got.out" 2>&1
		rc=$?
		grep -oE '^damaged chunk [0-9a-f]{64}' "$T/got.out" | cut -d' ' -f3 | sort -u > "$T/got"
		ncases=$((ncases + 1))
		if cmp -s "$T/expect" "$T/got"; then
			exact=$((exact + 1))
		else
			echo "# $kind seed $seed: expected $(wc -l < "$T/expect") ids, got $(wc -l < "$T/got")"
			diff "$T/expect" "$T/got" | head -n 5
			sed -n 1,20p "$T/got.out"
		fi
		want=0
		[ -s "$T/expect.all" ] && want=1
		if [ "$rc" = "$want" ]; then codes=$((codes + 1)); else
			echo "# $kind seed $seed: exit $rc, expected $want"; sed -n 1,20p "$T/got.out"; fi
		# Each case's chunks come back by a rebuild: nothing but the
		# damaged ids is lost.
		if [ "$seed" = 1 ]; then
			"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
			"$SERVER" debug list-chunks --repo "$R" > "$T/ids.after"
			comm -23 "$T/ids.pristine" "$T/ids.after" > "$T/lost"
			check "$kind: a rebuild keeps every intact chunk and drops the damaged" cmp -s "$T/lost" "$T/expect"
		fi
		rm -rf "$R"
	done
done
check_eq "check --read-data names exactly the damaged chunks ($exact of $ncases cases)" "$ncases" "$exact"
check_eq "check exits 1 exactly when something was damaged ($codes of $ncases)" "$ncases" "$codes"

# Without --read-data, damage in record headers is still found, and
# nothing intact is ever named.
R=$T/r-nodata
cp -a "$P" "$R"
python3 "$T/inject.py" "$R" "$T/records" flip-header-sealed 3 > "$T/expect"
"$SERVER" check --repo "$R" > "$T/got.out" 2>&1
check_eq "check finds a damaged record header without --read-data" 1 $?
grep -oE '^damaged chunk [0-9a-f]{64}' "$T/got.out" | cut -d' ' -f3 | sort -u > "$T/got"
check "and names that chunk" cmp -s "$T/got" "$T/expect"
rm -rf "$R"

# ---- the index ----
for kind in ldb manifest current; do
	R=$T/r-index-$kind
	cp -a "$P" "$R"
	case $kind in
	ldb)
		f=$(ls -S "$R"/index/*.ldb | head -n1)
		python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[100]^=0x10; d[101]^=0x01; open(p,"wb").write(d)' "$f" ;;
	manifest)
		f=$(ls "$R"/index/MANIFEST-*)
		head -c 20 "$f" > "$f.x" && mv "$f.x" "$f" ;;
	current)
		rm -f "$R/index/CURRENT" ;;
	esac
	"$SERVER" check --repo "$R" > "$T/got.out" 2>&1
	check_eq "index damage ($kind): check exits 1" 1 $?
	check "index damage ($kind): the report points to repair" grep -q "repair --rebuild-index" "$T/got.out"
	check "index damage ($kind): no intact chunk is called damaged" not grep -q '^damaged chunk' "$T/got.out"
	"$SERVER" repair --repo "$R" --rebuild-index >/dev/null 2>&1
	"$SERVER" debug list-chunks --repo "$R" > "$T/ids.after"
	check "index damage ($kind): repair brings back the same ids" cmp -s "$T/ids.pristine" "$T/ids.after"
	"$SERVER" check --repo "$R" --read-data --quiet >/dev/null 2>&1
	check_eq "index damage ($kind): then check is clean" 0 $?
	rm -rf "$R"
done
check "the index holds table files (the ldb case damaged one)" true

# ---- a damaged chunk is never served, and a backup heals it ----
R=$T/heal
cp -a "$P" "$R"
# Damage the data of the biggest record of the sealed pack (part of
# 'big file.img' or bin/: a file chunk, not a catalog).
pack1=$(cut -d' ' -f2 "$T/records" | sort -u | head -n1)
read -r vid _ voff _ vstored < <(awk -v p="$pack1" '$2 == p' "$T/records" | sort -k5 -n | tail -n1)
python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); d=bytearray(open(p,"rb").read()); d[o]^=0xff; open(p,"wb").write(d)' \
	"$R/packs/$pack1.pack" $((voff + 48 + vstored / 2))
"$SERVER" check --repo "$R" --read-data > "$T/got.out" 2>&1
check_eq "a damaged file chunk: check exits 1" 1 $?
check "it names the chunk" grep -q "^damaged chunk $vid: pack" "$T/got.out"
file=$(grep "^damaged chunk $vid: used by snapshot $ID_A (client alice), file '" "$T/got.out" | head -n1 | sed "s/.*file '\(.*\)'$/\1/")
check "it names the snapshot and the file that use it" test -n "$file"
server_start "$R" || exit 1
agent "$A" restore "$ID_A" --target "$T/restore.bad" > /dev/null 2>"$T/restore.err"
rc=$?
check "restore of the affected snapshot fails" test "$rc" != 0
check "the restore error names the damaged chunk" grep -q "$vid" "$T/restore.err"
bn=$(basename "$file")
check "the restore error names the file ($bn)" grep -qF "$bn" "$T/restore.err"
check "the damaged bytes were not written as the file" not cmp -s "$SRC/$(sed "s|^${SRC#/}/||" <<<"$file")" "$T/restore.bad/$file"
check "the server log names the damaged chunk" grep -q "chunk $vid is damaged" "$T/server.log"
hexbytes "$vid" > "$T/vid.bin"
api "$A" POST /api/v1/chunks/missing -H 'Content-Type: application/octet-stream' --data-binary @"$T/vid.bin" > "$T/miss"
check_eq "the server now reports the damaged chunk missing" 01 "$(head -c1 "$T/miss" | xxd -p)"
check_eq "and GET of it is 404, never its bytes" 404 "$(api_status "$A" GET "/api/v1/chunks/$vid")"
# The server dropped it from its index: the next backup that reads the
# file sends it again (--force-read: an incremental backup would take the
# unchanged file's chunk list from its parent without reading it).
out=$(agent "$A" backup --json --force-read "$SRC")
check "a backup with the same bytes succeeds" test -n "$(json_get "$out" snapshot_id)"
check "and sends the chunk again" test "$(json_get "$out" chunks_new)" -ge 1
agent "$A" restore "$ID_A" --target "$T/restore.healed" 2>/dev/null
check "then the old snapshot restores again" diff -r --no-dereference "$SRC" "$T/restore.healed/${SRC#/}"
server_stop TERM
"$SERVER" check --repo "$R" --read-data > "$T/got.out" 2>&1
check_eq "and check --read-data is clean" 0 $?

# The operator's way: check, repair, backup.
R=$T/heal2
cp -a "$P" "$R"
python3 -c 'import sys; p=sys.argv[1]; o=int(sys.argv[2]); d=bytearray(open(p,"rb").read()); d[o]^=0x01; open(p,"wb").write(d)' \
	"$R/packs/$pack1.pack" $((voff + 48 + 7))
server_start "$R" || exit 1
check_eq "GET of a damaged chunk is refused" 500 "$(api_status "$A" GET "/api/v1/chunks/$vid")"
check_eq "and then it is missing" 404 "$(api_status "$A" GET "/api/v1/chunks/$vid")"
server_stop TERM
"$SERVER" repair --repo "$R" --rebuild-index > "$T/out" 2>&1
check "repair leaves the damaged record out" grep -q "1 damaged record(s) left out" "$T/out"
"$SERVER" check --repo "$R" --read-data > "$T/got.out" 2>&1
check_eq "after repair the chunk is missing: check exits 1" 1 $?
check "and names it missing with its file" grep -q "^missing chunk $vid: used by snapshot $ID_A (client alice), file '$file'" "$T/got.out"
server_start "$R" || exit 1
agent "$A" backup --json "$SRC" >"$T/out" 2>"$T/err"
check "an incremental backup after repair succeeds" test $? = 0
# This server listens on a new port: the agent has no record of a snapshot
# it made there (agent/parent.h), so it reads every file from the start;
# with a record it would take the parent, get 409 and read again.
check "it read every file again" test "$(json_get "$(cat "$T/out")" files_unchanged)" = 0
check "and sent the missing chunk" test "$(json_get "$(cat "$T/out")" chunks_new)" -ge 1
agent "$A" backup --force-read "$SRC" >/dev/null 2>&1
check "a --force-read backup after repair succeeds" test $? = 0
server_stop TERM
"$SERVER" check --repo "$R" --read-data > "$T/got.out" 2>&1
check_eq "and heals the repository" 0 $?
finish
