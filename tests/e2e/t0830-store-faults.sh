#!/usr/bin/env bash
# Store faults (issue 11, items 2, 13, 16):
#  1. bounded work per upload: a bundle repeating one id (each a tiny zstd
#     frame that expands to 16 MiB) is refused before anything is
#     decompressed, naming the id; a bundle declaring more plain bytes than
#     the per-request cap is refused (413); a frame that expands past its
#     declared length is refused. The server keeps serving.
#  1b. bounded work per snapshot create: a 512 MiB catalog naming one
#     2-byte chunk 15 million times (52 KB uploaded) costs one lookup per
#     distinct chunk, and two creates of one client at once are one run,
#     one 429 with Retry-After (on the code before both ran, ~4 s each).
#  2. a full disk during gc: lookups and restores keep working from the
#     index while it cannot be written, /health says "degraded" and why
#     (503), and the index heals by itself once space is back, without a
#     restart. Needs root (tmpfs); skipped with a note otherwise.
#  3. index damage noticed at start: a flipped byte in a table file stops
#     the server with one error pointing to repair; `check` on an index
#     that cannot be read prints one line about it (not one per chunk);
#     a truncated sealed pack is a problem, not a note.
. "$(dirname "$0")/lib.sh"

# mkbundle.py OUT KIND: hostile bundles.
#   repeat N      N records of one id, each a zstd frame of 16 MiB of zeros
#   overcap N     N distinct 16 MiB chunks (compressible), one record each
#   liar          a frame of 16 MiB declared as 1,000 plain bytes
cat > "$T/mkbundle.py" <<'PY'
import hashlib, struct, subprocess, sys
out, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0
MB16 = 16 * 1024 * 1024
def frame(data):
    return subprocess.run(["zstd", "-q", "-19", "-c"], input=data,
                          stdout=subprocess.PIPE, check=True).stdout
recs = []
if kind == "repeat":
    plain = bytes(MB16)
    f = frame(plain)
    recs = [(hashlib.sha256(plain).digest(), MB16, f)] * n
elif kind == "overcap":
    for i in range(n):
        plain = struct.pack("<I", i + 1) + bytes(MB16 - 4)
        recs.append((hashlib.sha256(plain).digest(), MB16, frame(plain)))
elif kind == "liar":
    plain = bytes(MB16)
    recs = [(hashlib.sha256(plain[:1000]).digest(), 1000, frame(plain))]
b = bytearray(b"DDBN" + struct.pack("<II", 1, len(recs)))
for cid, plen, f in recs:
    b += cid + struct.pack("<III", 1, plen, len(f)) + f
open(out, "wb").write(b)
if recs:
    print(recs[0][0].hex())
PY

upload() { # TOKEN FILE MAXTIME: body line, then status, then seconds
	curl -sS --cacert "$CA" -H "Authorization: Bearer $1" --max-time "$3" -o "$T/up.body" \
		-H 'Content-Type: application/octet-stream' --data-binary @"$2" \
		-w '%{http_code}\n%{time_total}\n' "$URL/api/v1/chunks" > "$T/up.meta"
	head -n1 "$T/up.body" 2>/dev/null | tr -d '\n'; echo
	cat "$T/up.meta"
	rm -f "$T/up.body"
}

# ---- 1. bounded work per upload ----
section_upload() {
local R A RID code secs cfg
R=$T/repo
repo_init "$R"
A=$(token_add "$R" mallory)
server_start "$R" || exit 1

RID=$(python3 "$T/mkbundle.py" "$T/repeat.bin" repeat 4096)
upload "$A" "$T/repeat.bin" 20 > "$T/repeat.reply"
code=$(sed -n 2p "$T/repeat.reply")
secs=$(sed -n 3p "$T/repeat.reply")
echo "# 4,096 repeats of a 16 MiB chunk ($(stat -c %s "$T/repeat.bin") bytes): HTTP $code in $secs s"
check_eq "a bundle repeating one id 4,096 times is refused" 400 "$code"
check "the error names the repeated id" grep -q "chunk $RID appears more than once" "$T/repeat.reply"
check "and answers at once (under 2 s, not 64 GiB of decompression)" \
	python3 -c "import sys; sys.exit(0 if float('${secs:-99}') < 2 else 1)"
hexbytes "$RID" > "$T/rid.bin"
api "$A" POST /api/v1/chunks/missing --data-binary @"$T/rid.bin" > "$T/miss.reply"
check_eq "nothing of it was stored" 01 "$(head -c1 "$T/miss.reply" | xxd -p)"

python3 "$T/mkbundle.py" "$T/overcap.bin" overcap 9 > /dev/null
upload "$A" "$T/overcap.bin" 30 > "$T/overcap.reply"
code=$(sed -n 2p "$T/overcap.reply")
echo "# 9 distinct 16 MiB chunks ($(stat -c %s "$T/overcap.bin") bytes, 144 MiB plain): HTTP $code in $(sed -n 3p "$T/overcap.reply") s"
check_eq "a bundle declaring 144 MiB of plain bytes is refused" 413 "$code"
check "the error gives the cap" grep -q "more than 134217728 plain bytes" "$T/overcap.reply"
python3 "$T/mkbundle.py" "$T/undercap.bin" overcap 7 > /dev/null
upload "$A" "$T/undercap.bin" 60 > "$T/undercap.reply"
check_eq "7 distinct 16 MiB chunks (112 MiB) are still accepted" 200 "$(sed -n 2p "$T/undercap.reply")"

python3 "$T/mkbundle.py" "$T/liar.bin" liar > /dev/null
upload "$A" "$T/liar.bin" 20 > "$T/liar.reply"
check_eq "a frame that expands past its declared 1,000 bytes is refused" 400 "$(sed -n 2p "$T/liar.reply")"
check_eq "the server keeps serving" 200 "$(api_status "" GET /api/v1/health)"
cfg=$(api "$A" GET /api/v1/config | head -n1)
check_eq "/config gives the plain-byte cap" 134217728 "$(json_get "$cfg" limits.max_upload_plain)"
server_stop TERM
}

# ---- 1b. bounded work per snapshot create ----
# A catalog naming one 2-byte chunk millions of times is within the
# catalog's size bound (in plain bytes) yet compresses to almost nothing:
# its references are each checked once (the same chunk again costs no
# lookup), and one client's creates run one at a time, so that such
# catalogs keep at most one server thread busy (another create of the
# same client meanwhile is 429 with Retry-After; the agent waits it out).
cat > "$T/mkcatalog.py" <<'PY'
import hashlib, json, struct, subprocess, sys, time
out_bundle, out_body, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = b"hi"; did = hashlib.sha256(data).digest()
def entry(typ, path, refs=()):
    size = sum(n for _, n in refs)
    return struct.pack("<BBHIIIqIqIQQQIIIQ", typ, 0, 0, 0o755 if typ == 2 else 0o644,
                       0, 0, 1, 0, 1, 0, 1, 1, size, len(path), 0, 0, len(refs)) + \
        path + b"".join(i + struct.pack("<I", n) for i, n in refs)
nent = (mib << 20) // 36 // 1500000 + 1   # an entry names 1.8M at most
nref = (mib << 20) // 36 // nent
cat = bytearray(b"DDCT" + struct.pack("<I", 2)) + entry(2, b"d")
for i in range(nent):
    cat += entry(1, b"d/f%03d" % i, [(did, 2)] * nref)
cat += entry(1, b"d/zz", [(hashlib.sha256(b"absent").digest(), 6)])
pieces, pos = [], 0
while pos < len(cat):   # sizes differ, so that no two pieces are one chunk
    n = (16 << 20) - 64 - len(pieces)
    pieces.append(bytes(cat[pos:pos + n]))
    pos += n
recs = [(did, data)] + [(hashlib.sha256(p).digest(), p) for p in pieces]
for k in range(0, len(recs), 7):   # bundles under the 128 MiB plain cap
    b = bytearray(b"DDBN" + struct.pack("<II", 1, len(recs[k:k + 7])))
    for cid, plain in recs[k:k + 7]:
        z = subprocess.run(["zstd", "-q", "-3", "-c"], input=plain,
                           stdout=subprocess.PIPE, check=True).stdout
        b += cid + struct.pack("<III", 1, len(plain), len(z)) + z
    open("%s.%03d" % (out_bundle, k // 7), "wb").write(b)
json.dump({"host": "h", "paths": ["/d"], "catalog": [hashlib.sha256(p).hexdigest() for p in pieces],
           "time_start": int(time.time())}, open(out_body, "w"))
print(len(cat))
PY
section_catalog() {
local R A code plain t0 t1 k other
R=$T/repo-cat
repo_init "$R"
A=$(token_add "$R" mallory)
server_start "$R" || exit 1
plain=$(python3 "$T/mkcatalog.py" "$T/cat.bin" "$T/cat.json" 512)
local f codes=
for f in "$T"/cat.bin.*; do
	upload "$A" "$f" 60 > "$T/cat.reply"
	codes="$codes$(sed -n 2p "$T/cat.reply") "
done
check_eq "a catalog of $plain plain bytes uploads in $(cat "$T"/cat.bin.* | wc -c) bytes" \
	"200 200 200 200 200 " "$codes"
# create N: a create of the costly catalog; its status, headers and body
create() {
	curl -sS --cacert "$CA" -H "Authorization: Bearer $A" -D "$T/create$1.headers" \
		-o "$T/create$1.body" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary @"$T/cat.json" "$URL/api/v1/snapshots" > "$T/create$1.code"
}
# Two at once (a few rounds, in case one ended before the other began):
# one runs and is refused for its missing chunk, the other is told to wait.
local round busy=
for round in 1 2 3 4 5; do
	t0=$EPOCHREALTIME
	create 1 & local p1=$!
	create 2 & local p2=$!
	wait "$p1" "$p2"
	t1=$EPOCHREALTIME
	echo "# round $round: $(cat "$T/create1.code") and $(cat "$T/create2.code") in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"
	for k in 1 2; do
		[ "$(cat "$T/create$k.code")" = 429 ] && busy=$k
	done
	[ -n "$busy" ] && break
done
other=$((3 - ${busy:-2}))
check_eq "of two creates of one client at once, one runs: 409 for its missing chunk" 409 "$(cat "$T/create$other.code")"
check_eq "the other is 429" 429 "$(cat "$T/create${busy:-1}.code")"
check "with Retry-After" grep -qi '^retry-after: 1' "$T/create${busy:-1}.headers"
check "saying why" grep -q "is being created" "$T/create${busy:-1}.body"
mkdir -p "$T/csrc" && echo "a small tree" > "$T/csrc/f"
agent "$A" backup "$T/csrc" > /dev/null 2>&1
check "then the client's next backup succeeds" test $? = 0
check_eq "the server keeps serving" 200 "$(api_status "" GET /api/v1/health)"
server_stop TERM
}

# ---- 2. gc on a full disk: the index heals without a restart ----
section_diskfull() {
	local MNT=$T/small R2 A2 ADM ID1 ID2 i code h pid
	mkdir -p "$MNT"
	if ! mount -t tmpfs -o size=40m dedup-test "$MNT" 2>"$T/mount.err"; then
		ok "skipped: cannot mount a tmpfs here ($(head -c 200 "$T/mount.err"))"
		return 0
	fi
	MOUNTED=$MNT
	R2=$MNT/repo
	repo_init "$R2"
	A2=$(token_add "$R2" alice)
	ADM=$(token_add "$R2" boss --admin)
	server_start "$R2" || return 1
	pid=$SERVER_PID
	# Two snapshots of many distinct small files: forgetting the first
	# leaves thousands of index entries for gc to delete.
	mkdir -p "$T/one" "$T/two"
	for i in $(seq 1 1500); do echo "one: file $i" > "$T/one/f$i"; done
	for i in $(seq 1 300); do echo "two: file $i" > "$T/two/f$i"; done
	prand two 1500000 > "$T/two/big.bin"
	ID1=$(json_get "$(agent "$A2" backup --json "$T/one")" snapshot_id)
	ID2=$(json_get "$(agent "$A2" backup --json "$T/two")" snapshot_id)
	agent "$ADM" forget "$ID1" > /dev/null
	# Fill the disk to the last page.
	dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
	dd if=/dev/zero of="$MNT/filler2" bs=4k 2>/dev/null
	agent "$ADM" gc --json > "$T/gc.out" 2> "$T/gc.err"
	check "gc on the full disk fails" test $? -ne 0
	check "saying the disk is full" grep -q "disk is full" "$T/gc.err"

	# While the disk is full: lookups, fetches and restores go on.
	prand lone 100000 > "$T/lone.bin"
	LID=$(sha256sum "$T/lone.bin" | cut -c1-64)
	bundle_raw "$LID" "$T/lone.bin" > "$T/lone.bundle"
	code=$(api_status "$A2" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/lone.bundle")
	check_eq "an upload while the index cannot be written gets 507" 507 "$code"
	hexbytes "$LID" > "$T/lone.id"
	api "$A2" POST /api/v1/chunks/missing --data-binary @"$T/lone.id" > "$T/m1"
	check_eq "/chunks/missing still answers on the full disk" 200 "$(tail -n1 "$T/m1")"
	check_eq "and the chunk it refused is missing" 01 "$(head -c1 "$T/m1" | xxd -p)"
	rm -rf "$T/rt"
	agent "$A2" restore "$ID2" --target "$T/rt" > /dev/null 2> "$T/rt.err"
	check_eq "a snapshot restores while the disk is full" 0 $?
	check "bit-identical" diff -r "$T/two" "$T/rt/${T#/}/two"
	save h1 "" GET /api/v1/health
	echo "# /health on the full disk: $(cat "$T/h1.json")"
	pycheck <<'PY'
h = J("h1")
check_eq("/health answers 200 while degraded", 200, S("h1"))
check_eq("/health says degraded", "degraded", h.get("status"))
check_eq("and not writable", False, h.get("writable"))
check("with a reason", bool(h.get("reason")), h.get("reason"))
PY

	# 256 KiB come back: not enough to reopen the index. /health must
	# not say writable because the disk is no longer at 0 bytes free.
	truncate -s -256K "$MNT/filler"
	sleep 0.6   # one backoff, so that this query tries a reopen
	save h2 "" GET /api/v1/health
	echo "# /health with $(df -B1 --output=avail "$MNT" | tail -n1 | tr -d ' ') bytes free: $(cat "$T/h2.json")"
	pycheck <<'PY'
h = J("h2")
check_eq("with 256 KiB free, /health still says not writable", False, h.get("writable"))
check("because the index cannot be reopened yet", "index" in h.get("reason", ""), h.get("reason"))
PY
	api "$A2" POST /api/v1/chunks/missing --data-binary @"$T/lone.id" > "$T/m1b"
	check_eq "and /chunks/missing still answers" 200 "$(tail -n1 "$T/m1b")"

	# Space comes back: the same server heals by itself.
	rm -f "$MNT/filler"
	for i in $(seq 1 80); do
		h=$(api "" GET /api/v1/health | head -n1)
		[ "$(json_get "$h" writable)" = True ] && break
		sleep 0.25
	done
	check_eq "/health says writable again once space is back" True "$(json_get "$h" writable)"
	api "$A2" POST /api/v1/chunks/missing --data-binary @"$T/lone.id" > "$T/m2"
	check_eq "/chunks/missing answers after the disk was full" 200 "$(tail -n1 "$T/m2")"
	code=$(api_status "$A2" POST /api/v1/chunks -H 'Content-Type: application/octet-stream' --data-binary @"$T/lone.bundle")
	check_eq "the refused upload now succeeds" 200 "$code"
	agent "$ADM" gc --json > "$T/gc2.out" 2> "$T/gc2.err"
	check_eq "gc now succeeds" 0 $?
	out=$(agent "$A2" backup --json "$T/one" 2> "$T/b3.err")
	check_eq "a backup succeeds" 0 $?
	rm -rf "$T/rt"
	agent "$A2" restore "$(json_get "$out" snapshot_id)" --target "$T/rt" > /dev/null 2>&1
	check "and restores bit-identical" diff -r "$T/one" "$T/rt/${T#/}/one"
	check "all without a restart" test "$pid" = "$SERVER_PID" -a -d "/proc/$pid"
	server_stop TERM
	"$SERVER" check --repo "$R2" --read-data > "$T/check.out" 2>&1
	code=$?
	check_eq "check --read-data is clean afterwards" 0 "$code"
	[ "$code" = 0 ] || grep -E '^(problem|damaged|missing)' "$T/check.out" | head -n 5
	grep -E "index cannot be written|writable again" "$T/server.log" | sed 's/^/# server: /' | head -n 4
}
MOUNTED=
store_cleanup() {
	signal_tracked TERM
	[ -n "$MOUNTED" ] && { umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED"; }
	cleanup
}
trap store_cleanup EXIT

# ---- 3. index damage is noticed at start; check says it in one line ----
section_index() {
	local P=$T/pristine R3 f code i
	export DD_TEST_BIG_MB=2 DD_TEST_SMALL_FILES=400
	make_mixed_tree "$T/mixed" > /dev/null
	repo_init "$P"
	A3=$(token_add "$P" carol)
	server_start "$P" || return 1
	agent "$A3" backup --json "$T/mixed" > /dev/null
	server_stop TERM
	# A second start turns the index log into a table file.
	server_start "$P" || return 1
	server_stop TERM
	check "the index holds table files" compgen -G "$P/index/*.ldb"
	"$SERVER" check --repo "$P" --read-data > "$T/c0" 2>&1
	check_eq "the repository checks clean" 0 $?

	for kind in flip truncate; do
		R3=$T/r-$kind
		cp -a "$P" "$R3"
		f=$(ls -S "$R3"/index/*.ldb | head -n1)
		case $kind in
		flip) python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[len(d)//2]^=0x04; open(p,"wb").write(d)' "$f" ;;
		truncate) truncate -s $(( $(stat -c %s "$f") / 2 )) "$f" ;;
		esac
		rm -f "$T/ready.x"
		"$SERVER" serve --config /dev/null --repo "$R3" --listen 127.0.0.1:0 \
			--ready-file "$T/ready.x" > "$T/serve.$kind" 2>&1 &
		pid=$!
		track_pid "$pid"
		for i in $(seq 1 100); do
			[ -s "$T/ready.x" ] && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		check "index $kind: the server refuses to start" test ! -s "$T/ready.x"
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		untrack_pid "$pid"
		check "index $kind: it says the index is damaged and how to repair" \
			grep -q "the index is damaged: .*repair --rebuild-index" "$T/serve.$kind"
		"$SERVER" check --repo "$R3" > "$T/c.$kind" 2>&1
		code=$?
		check_eq "index $kind: check exits 1" 1 "$code"
		check_eq "index $kind: check reports one problem line" 1 \
			"$(grep -cE '^(problem|damaged|missing|note)' "$T/c.$kind")"
		check "index $kind: it says the index cannot be read and how to repair" \
			grep -q "^problem: the index cannot be read: .*repair --rebuild-index" "$T/c.$kind"
		echo "# index $kind: check printed $(wc -l < "$T/c.$kind") line(s)"
		"$SERVER" repair --repo "$R3" --rebuild-index > /dev/null 2>&1
		"$SERVER" check --repo "$R3" --quiet > /dev/null 2>&1
		check_eq "index $kind: repair --rebuild-index makes it clean" 0 $?
		server_start "$R3" || not_ok "index $kind: the repaired server starts"
		rm -rf "$T/rr"
		agent "$A3" restore "$(ls "$R3/snapshots" | sed -n '1s/\.json$//p')" --target "$T/rr" > /dev/null 2>&1
		check "index $kind: and restores bit-identical" diff -r --no-dereference "$T/mixed" "$T/rr/${T#/}/mixed"
		server_stop TERM
		rm -rf "$R3"
	done

	# A flipped bit anywhere in a table: in a data block, the filter, the
	# index block, a block trailer or the footer.
	local where got=0 n=0
	R3=$T/r-spots
	for where in 0 1/3 1/2 2/3 -300 -120 -60 -20 -5; do
		rm -rf "$R3"
		cp -a "$P" "$R3"
		f=$(ls -S "$R3"/index/*.ldb | head -n1)
		python3 -c 'import sys; p, w = sys.argv[1], sys.argv[2]; d = bytearray(open(p, "rb").read()); n = len(d)
i = int(w) % n if "/" not in w else n * int(w.split("/")[0]) // int(w.split("/")[1])
d[i] ^= 0x20; open(p, "wb").write(d)' "$f" "$where"
		n=$((n + 1))
		"$SERVER" check --repo "$R3" --quiet > "$T/c.spot" 2>&1
		if [ $? = 1 ] && grep -q "^problem: the index cannot be read" "$T/c.spot"; then
			got=$((got + 1))
		else
			echo "# a flip at $where of the table was not reported:"; head -n 3 "$T/c.spot"
		fi
	done
	check_eq "a flipped bit anywhere in a table is found ($got of $n spots)" "$n" "$got"
	rm -rf "$R3"

	# A table a crash left half written is not in the MANIFEST: LevelDB
	# deletes it when it opens, and it is no reason to refuse.
	R3=$T/r-orphan
	cp -a "$P" "$R3"
	f=$(ls -S "$R3"/index/*.ldb | head -n1)
	head -c 5000 "$f" > "$R3/index/999999.ldb"
	"$SERVER" check --repo "$R3" --quiet > "$T/c.orphan" 2>&1
	check_eq "a half-written table left by a crash: check is clean" 0 $?
	server_start "$R3" || not_ok "a half-written table left by a crash: the server starts"
	check_eq "the server serves" 200 "$(api_status "" GET /api/v1/health)"
	server_stop TERM
	rm -rf "$R3"

	# A sealed pack cut short: a problem, not an interrupted write.
	R3=$T/r-cut
	cp -a "$P" "$R3"
	f=$(ls "$R3"/packs/*.pack | head -n1)
	truncate -s $(( $(stat -c %s "$f") * 2 / 3 )) "$f"
	"$SERVER" check --repo "$R3" > "$T/c.cut" 2>&1
	check_eq "a truncated sealed pack: check exits 1" 1 $?
	check "it is a problem naming the pack as truncated" \
		grep -q "^problem: pack '.*$(basename "$f")' is truncated" "$T/c.cut"
	check "not a note about an interrupted write" \
		not grep -q "^note: pack .*interrupted write" "$T/c.cut"
	rm -rf "$R3"
}
# T0830_SECTIONS picks sections (for debugging); all by default.
for sec in ${T0830_SECTIONS:-upload catalog diskfull index}; do
	"section_$sec"
done
finish
