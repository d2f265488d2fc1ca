"""handmade.py - what a test's hand-built snapshot posts (t0430, t0860,
t0890, t0999): the bundle of its chunks, every one raw, and the snapshot
request naming its catalog, which is one chunk."""
import hashlib, json, os, struct, time


def write_snapshot(out, chunks, cat, host="mallory", paths=("/evil",)):
    """Writes OUT/bundle.bin (chunks, a dict id -> bytes, and the catalog
    CAT) and OUT/snap.json; returns the catalog's id."""
    cid = hashlib.sha256(bytes(cat)).digest()
    chunks = dict(chunks)
    chunks[cid] = bytes(cat)
    b = bytearray(b"DDBN" + struct.pack("<II", 1, len(chunks)))
    for k, v in chunks.items():
        b += k + struct.pack("<III", 0, len(v), len(v)) + v
    with open(os.path.join(out, "bundle.bin"), "wb") as f:
        f.write(b)
    with open(os.path.join(out, "snap.json"), "w") as f:
        json.dump({"host": host, "paths": list(paths), "catalog": [cid.hex()],
                   "time_start": int(time.time())}, f)
    return cid
