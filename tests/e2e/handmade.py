"""handmade.py - what a test's hand-built snapshot posts (t0430, t0860,
t0890, t0999 and others): the bundle of its chunks, every one raw, and the
snapshot request naming its catalog, which is one chunk; and the catalog's
entries (catalog, add_entry, ref)."""
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


def catalog(version):
    """A catalog of VERSION (docs/FORMAT.md), to fill with add_entry."""
    return bytearray(b"DDCT" + struct.pack("<I", version))


def add_entry(cat, typ, path, size=0, refs=(), link=b"", ext=b"", ino=1):
    """Appends one entry: TYP 1 file, 2 dir, 3 symlink, 4 hard link; REFS
    are packed references (id + u32 plain_len; an all-zero id is a hole).
    Mode 0755 for a directory, else 0644; times now. No rule is checked."""
    now = int(time.time())
    cat.extend(struct.pack("<BBHIIIqIqIQQQIIIQ", typ, 0, 0,
                           0o755 if typ == 2 else 0o644, 0, 0, now, 0, now,
                           0, ino, 1, size, len(path), len(link), len(ext),
                           len(refs)))
    cat.extend(path + link + ext + b"".join(refs))


def ref(data_or_none, length):
    """A packed reference: the SHA-256 of DATA, or a hole (None)."""
    cid = b"\0" * 32 if data_or_none is None else \
        hashlib.sha256(data_or_none).digest()
    return cid + struct.pack("<I", length)
