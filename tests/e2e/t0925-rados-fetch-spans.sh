#!/usr/bin/env bash
# A restore from a RADOS repository reads the packs by span, not by chunk
# (docs/STORAGE.md, "Restore from RADOS"): records that follow each other
# in a pack and in a fetch are one backend read, all of a fetch's reads in
# flight at once. Counted, not timed: the fetches' pack reads per chunk
# sent (/metrics) and the backend operations of a server that only
# restored (its exit line), both far below one per chunk (before: one read
# per chunk, and every read waited for the one before). The restore is
# bit-identical, a chunk reused from another file (not adjacent) comes
# back too, and a chunk damaged in its RADOS pack object is still caught:
# the restore fails naming it, the server drops it and keeps serving, and
# the next backup stores it again; so is a record whose header is damaged,
# which the server finds itself. Needs Ceph (skips outside CI without).
. "$(dirname "$0")/lib.sh"
ceph_up
NS=t0925
R=$T/repo
check "init --store rados with small chunks" "$SERVER" init --repo "$R" \
	--store "rados:$CEPH_POOL/$NS" --chunker 16K,64K,256K --config /dev/null
A=$(token_add "$R" alice)
ADM=$(token_add "$R" admin --admin)
server_start "$R" || exit 1

SRC=$T/src
mkdir -p "$SRC/d"
prand one 16000000 > "$SRC/one.bin"
prand two 8000000 > "$SRC/d/two.bin"
head -c 3000000 "$SRC/one.bin" > "$SRC/d/head-of-one.bin"  # reused chunks
for i in $(seq 1 20); do echo "small $i" > "$SRC/d/s$i"; done
# one reader: the packs hold each file's chunks in order
out=$(agent "$A" backup --json --threads 1 "$SRC")
check "backup exits 0" test $? = 0
ID=$(json_get "$out" snapshot_id)
NEW=$(json_get "$out" chunks_new)

# metric NAME: its value in /metrics
metric() {
	api "$ADM" GET /metrics | sed -n "s/^$1 \([0-9.e+]*\)$/\1/p" | head -n1
}
# 1. a restore through a freshly started server: count what it does
server_stop
server_start "$R" || exit 1
c0=$(metric dedup_fetch_chunks_total)
r0=$(metric dedup_fetch_pack_reads_total)
c0=${c0%.*} r0=${r0%.*}
check "/metrics counts the fetches' chunks and pack reads" test -n "$c0" -a -n "$r0"
agent "$A" restore "$ID" --target "$T/r1" 2>"$T/r1.err"
check "restore exits 0" test $? = 0
tree_manifest "$SRC" > "$T/m.src"
tree_manifest "$T/r1/${SRC#/}" > "$T/m.r1"
check "restore is bit-identical" cmp -s "$T/m.src" "$T/m.r1"
c1=$(metric dedup_fetch_chunks_total)
r1=$(metric dedup_fetch_pack_reads_total)
c1=${c1%.*} r1=${r1%.*}
chunks=$(( ${c1:-0} - ${c0:-0} ))
reads=$(( ${r1:-0} - ${r0:-0} ))
echo "# fetches sent $chunks chunks with $reads pack reads (the backup stored $NEW)"
check "the fetches sent every chunk stored ($chunks of $NEW, over 200)" \
	test "$chunks" -ge "$NEW" -a "$NEW" -gt 200
check "with at most one pack read per 20 chunks ($reads for $chunks)" \
	test "$reads" -gt 0 -a "$((reads * 20))" -le "$chunks"
server_stop
all=$(sed -n 's/.*storage: [0-9]* backend operation(s), \([0-9]*\) read.*/\1/p' "$T/server.log" | tail -n1)
echo "# the restoring server made ${all:-no counted} backend reads in all"
check "its backend reads in all (${all:-none counted}, startup's included) are under a 20th of the chunks" \
	test "$((${all:-999999} * 20))" -lt "$NEW"

# 2. a chunk damaged in its pack object is still caught on this path
server_start "$R" || exit 1
pack=$(rados -p "$CEPH_POOL" -N "$NS" ls | grep '^packs/' | sort | head -n1)
rados -p "$CEPH_POOL" -N "$NS" get "$pack" "$T/pack"
# records.py PACK: each record's offset, id and stored length (a pack
# header of 16 bytes, then records: "DDRC", id 32, flags, plain and stored
# lengths 4 each, the stored bytes; docs/FORMAT.md)
cat > "$T/records.py" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
off = 16
while off + 48 <= len(b) and b[off:off + 4] == b"DDRC":
    stored = struct.unpack_from("<I", b, off + 44)[0]
    print(off, b[off + 4:off + 36].hex(), stored)
    off += 48 + stored
EOF
# flip OFFSET: inverts the byte at OFFSET of the pack object (through
# its copy $T/pack, read just before)
flip() {
	python3 - "$T/pack" "$1" <<'EOF'
import sys
p, at = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[at] ^= 0xff
open(p, "wb").write(b)
EOF
	rados -p "$CEPH_POOL" -N "$NS" put "$pack" "$T/pack"
}
# flip a byte inside the stored bytes of the first record of 200 bytes
# or more (small files' records can come first: the uploads run at once)
read -r off id len < <(python3 "$T/records.py" "$T/pack" | awk '$3 >= 200' | head -n1)
flip "$((off + 48 + 100))"
agent "$A" restore "$ID" --target "$T/r2" >"$T/r2.out" 2>&1
check "a restore over the damaged chunk fails" test $? != 0
sed 's/^/# /' "$T/r2.out" | tail -n 5
check "naming the chunk whose bytes do not match its id" \
	grep -Eq "chunk [0-9a-f]{64} is corrupt: its bytes do not match its id" "$T/r2.out"
# the agent checked it (the restore fetches with ?verify=client) and told
# the server, which checked it again and dropped it
check "the server dropped the damaged chunk from its index" \
	grep -q "is damaged in pack" "$T/server.log"
check_eq "and keeps serving" "$(api_status "" GET /api/v1/health)" 200
# heals N: the next backup (an agent state of its own, $T/stateN: no
# chunk it knows from before) stores the dropped chunk again, and its
# snapshot ($IDH) restores bit-identical
heals() {
	local out
	out=$(DEDUP_STATE_DIR=$T/state$1 agent "$A" backup --json "$SRC")
	check "the next backup (asking about every chunk) exits 0" test $? = 0
	check "and stores the damaged chunk again (sent $(json_get "$out" bytes_sent) bytes)" \
		test "$(json_get "$out" bytes_sent)" -gt 0
	IDH=$(json_get "$out" snapshot_id)
	agent "$A" restore "$IDH" --target "$T/h$1" 2>"$T/h$1.err"
	check "whose snapshot restores" test $? = 0
	tree_manifest "$T/h$1/${SRC#/}" > "$T/m.h$1"
	check "bit-identical" cmp -s "$T/m.src" "$T/m.h$1"
}
heals 2
ID2=$IDH

# 3. a record whose header is damaged (not its bytes): the server reading
# it finds another chunk's id there, drops the chunk itself (the agent
# never receives it to check), and the next backup stores it again
rados -p "$CEPH_POOL" -N "$NS" get "$pack" "$T/pack"
read -r off2 id2 len2 < <(python3 "$T/records.py" "$T/pack" | awk -v d="$id" '$2 != d' | head -n1)
flip "$((off2 + 4 + 5))"
agent "$A" restore "$ID2" --target "$T/r4" >"$T/r4.out" 2>&1
check "a restore over the damaged header fails" test $? != 0
check "the server says the record holds another chunk" grep -q "holds another chunk" "$T/r4.out"
check "and dropped that chunk from its index" grep -q "chunk $id2 is damaged in pack" "$T/server.log"
heals 3
finish
