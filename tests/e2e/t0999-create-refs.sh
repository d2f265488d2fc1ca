#!/usr/bin/env bash
# A snapshot create checks the chunks its catalog names in batches of
# 16,384 (server/repo/snap_create.c, one pass over the index in key order a
# batch: store_lookup_many). Catalogs of 20,000 files, each with its own
# chunk, built by hand and posted as a client would: every reference is
# checked wherever it falls (the first batch or the second), the first bad
# reference in catalog order is the one named, a length mismatch names its
# entry, and a reference's error comes before that of an entry after it.
. "$(dirname "$0")/lib.sh"

repo_init "$T/repo"
A=$(token_add "$T/repo" mallory)
server_start "$T/repo" || exit 1

N=20000
# mk.py OUTDIR SPEC: OUTDIR/bundle.bin (the chunks, raw; those SPEC leaves
# out are not in it; the chunks' bytes name OUTDIR) and OUTDIR/snap.json, a catalog of version 2 of N
# files f00000.. with a chunk each. SPEC is a Python dict: "skip" (file
# numbers whose chunk is not uploaded), "len" (file numbers whose entry
# claims one byte more than their chunk holds), "badtype" (file numbers
# written with an unknown entry type), "same" (every file names chunk 0).
cat > "$T/mk.py" <<'PY'
import hashlib, json, os, struct, sys, time
out, n, spec = sys.argv[1], int(sys.argv[2]), eval(sys.argv[3])
salt = os.path.basename(out).encode()
skip, longer = set(spec.get("skip", [])), set(spec.get("len", []))
badtype, same = set(spec.get("badtype", [])), spec.get("same", False)
cat = bytearray(b"DDCT" + struct.pack("<I", 2))
chunks = {}
now = int(time.time())
for i in range(n):
    data = b"file %d of %s\n" % (0 if same else i, salt)
    cid = hashlib.sha256(data).digest()
    if (0 if same else i) not in skip:
        chunks[cid] = data
    size = len(data) + (1 if i in longer else 0)
    path = b"f%05d" % i
    cat += struct.pack("<BBHIIIqIqIQQQIIIQ", 99 if i in badtype else 1, 0,
                       0, 0o644, 0, 0, now, 0, now, 0, 1, 1, size,
                       len(path), 0, 0, 1)
    cat += path + cid + struct.pack("<I", size)
sys.path.insert(0, os.environ["E2E_DIR"])
from handmade import write_snapshot
write_snapshot(out, chunks, cat, paths=["/c"])
PY
# create NAME SPEC: uploads and asks for the snapshot; $T/c.NAME/snap.out
# holds the answer, the status is printed.
create() {
	local dir=$T/c.$1
	mkdir -p "$dir"
	python3 "$T/mk.py" "$dir" "$N" "$2" || return 1
	api_status "$A" POST /api/v1/chunks --data-binary @"$dir/bundle.bin" \
		-H 'Content-Type: application/octet-stream' > "$dir/chunks.status"
	api "$A" POST /api/v1/snapshots --data-binary @"$dir/snap.json" \
		-H 'Content-Type: application/json' > "$dir/snap.out"
	tail -n1 "$dir/snap.out"
}
# chunk_hex NAME I: the id of file I's chunk in create NAME
chunk_hex() { printf 'file %d of c.%s\n' "$2" "$1" | sha256sum | cut -c1-64; }

check_eq "20,000 files, every chunk stored: created" 201 "$(create all '{}')"
check_eq "the upload was taken" 200 "$(cat "$T/c.all/chunks.status")"
check "the manifest counts every file" grep -q '"files": *20000' "$T/c.all/snap.out"

# Each create's chunks are its own (its name is in their bytes), so that a
# chunk left out is really absent.
check_eq "one chunk missing in the second batch: refused" 409 \
	"$(create miss2 '{"skip": [18000]}')"
check "the answer names that chunk" grep -q "missing chunk $(chunk_hex miss2 18000)" "$T/c.miss2/snap.out"
check_eq "chunks missing in both batches: refused" 409 \
	"$(create miss12 '{"skip": [19999, 7]}')"
check "the first in catalog order is named" grep -q "missing chunk $(chunk_hex miss12 7)" "$T/c.miss12/snap.out"

check_eq "an entry claiming one byte more than its chunk: refused" 400 \
	"$(create len '{"len": [17777]}')"
check "the answer names the entry and the chunk" \
	grep -q "entry 'f17777' gives chunk $(chunk_hex len 17777) length" "$T/c.len/snap.out"
check_eq "a length mismatch before a missing chunk: the mismatch" 400 \
	"$(create lenmiss '{"len": [100], "skip": [200]}')"
check "it names the first entry" grep -q "entry 'f00100'" "$T/c.lenmiss/snap.out"

check_eq "a missing chunk before an entry of unknown type: 409" 409 \
	"$(create missbad '{"skip": [10], "badtype": [20]}')"
check "the missing chunk is named" grep -q "missing chunk $(chunk_hex missbad 10)" "$T/c.missbad/snap.out"
check_eq "an entry of unknown type before a missing chunk: 400" 400 \
	"$(create badmiss '{"badtype": [10], "skip": [20]}')"
check "the entry type is named" grep -q "unknown entry type 99" "$T/c.badmiss/snap.out"

check_eq "20,000 files naming one chunk: created" 201 "$(create same '{"same": True}')"
check_eq "the same with that chunk missing: refused" 409 \
	"$(create samemiss '{"same": True, "skip": [0]}')"

check "the server still answers" test "$(api_status "$A" GET /api/v1/snapshots)" = 200
check_eq "two snapshots in all" 2 "$(api "$A" GET /api/v1/snapshots | sed '$d' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
finish
