#!/usr/bin/env python3
# The group-commit scripts' uploader (t0635, t0636):
#   group_upload.py MODE URL CA TOKEN THREADS UPLOADS OUT PID KILL_AFTER
#                   CHUNKS CHUNK_BYTES KILL_MAX
# THREADS connections, each sending bundles of CHUNKS fresh chunks of
# CHUNK_BYTES (deterministic bytes, stored raw). Mode "count": each sends
# UPLOADS bundles, then the sums are printed as JSON. Mode "kill": each
# sends until the server goes away (at most KILL_MAX bundles), and the id
# of every chunk acknowledged with a 200 is written to OUT; once
# KILL_AFTER uploads are acknowledged the server PID is killed with
# SIGKILL.
import hashlib, http.client, json, os, random, signal, ssl, struct, sys
import threading, urllib.parse

(mode, url, ca, tok, threads, uploads, out, pid, kill_after, nchunks,
 chunk_bytes, kill_max) = sys.argv[1:13]
threads, uploads, kill_after = int(threads), int(uploads), int(kill_after)
nchunks, chunk_bytes, kill_max = int(nchunks), int(chunk_bytes), int(kill_max)
u = urllib.parse.urlparse(url)
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
lock = threading.Lock()
acked = []
sums = {"ok": 0, "bad": 0, "stored": 0, "duplicates": 0}
killed = threading.Event()

def bundle(seed):
    rng = random.Random(seed)
    recs, ids = [], []
    for _ in range(nchunks):
        data = rng.randbytes(chunk_bytes)
        cid = hashlib.sha256(data).digest()
        ids.append(cid.hex())
        recs.append(cid + struct.pack("<III", 0, len(data), len(data)) + data)
    return b"DDBN" + struct.pack("<II", 1, len(recs)) + b"".join(recs), ids

def worker(k):
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx,
                                       timeout=60)
    hdr = {"Authorization": "Bearer " + tok,
           "Content-Type": "application/octet-stream"}
    i = 0
    while mode == "kill" or i < uploads:
        body, ids = bundle("%s-%d-%d" % (mode, k, i))
        i += 1
        try:
            conn.request("POST", "/api/v1/chunks", body, hdr)
            r = conn.getresponse()
            reply = r.read()
        except Exception:
            if mode == "kill":
                return
            with lock:
                sums["bad"] += 1
            conn = http.client.HTTPSConnection(u.hostname, u.port,
                                               context=ctx, timeout=60)
            continue
        with lock:
            if r.status != 200:
                sums["bad"] += 1
                continue
            j = json.loads(reply)
            sums["ok"] += 1
            sums["stored"] += j["stored"]
            sums["duplicates"] += j["duplicates"]
            acked.extend(ids)
            if mode == "kill" and sums["ok"] >= kill_after and \
               not killed.is_set():
                killed.set()
                os.kill(int(pid), signal.SIGKILL)
        if mode == "kill" and i > kill_max:
            return

ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(out, "w") as f:
    f.write("".join(x + "\n" for x in acked))
sums["killed"] = killed.is_set()
print(json.dumps(sums))
