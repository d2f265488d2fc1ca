#!/usr/bin/env python3
"""server_report.py - the markdown report of tests/bench/server-bench.sh.

Usage: server_report.py RESULTS.jsonl OUT.md [DOCS.md]

OUT.md gets the report alone. DOCS.md (docs/BENCHMARKS.md) gets it as the
section between the markers below, replaced in place, or appended when the
file has none; the rest of the file is left as it is."""
import json
import sys

BEGIN = "<!-- server-bench: written by make bench-server -->"
END = "<!-- /server-bench -->"
TARGETS = {"absent": 500000, "present": 100000}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def one(rows, kind):
    for r in rows:
        if r["kind"] == kind:
            return r
    return None


def lat(r, route):
    v = r.get(route)
    if not v:
        return "-"
    return "%.1f / %.1f / %.1f / %.1f" % (v["p50_ms"], v["p90_ms"],
                                          v["p99_ms"], v["max_ms"])


def clients_table(rows, floor):
    fl_gb = floor["cpu_s"] / (floor["plain_mb"] / 1000.0)
    out = ["| clients | unique MB/s | server CPU s/GB | x floor | "
           "missing ids/s (absent, small index) | "
           "missing p50/p90/p99/max ms | upload p50/p90/p99/max ms | "
           "server peak RSS MiB |",
           "|---:|---:|---:|---:|---:|---|---|---:|"]
    small = {r["clients"]: r for r in rows if r["kind"] == "missing-small"}
    for r in rows:
        if r["kind"] != "upload":
            continue
        per_gb = r["server_cpu_s"] / (r["plain_mb"] / 1000.0)
        m = small.get(r["clients"])
        out.append("| %d | %.1f | %.2f | %.2fx | %s | %s | %s | %.0f |" % (
            r["clients"], r["mb_per_s"], per_gb, per_gb / fl_gb,
            "%.0f" % m["ids_per_s"] if m else "-", lat(r, "missing"),
            lat(r, "upload"), r["server_hwm_mib"]))
    return out, fl_gb


def index_table(rows, prefix="index-"):
    out = ["| query | clients | ids/s | target | server CPU s | "
           "ids per server CPU s | p50/p90/p99/max ms (4096 ids a "
           "request) | server RSS MiB (anonymous) |",
           "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if not r["kind"].startswith(prefix):
            continue
        q = r["kind"][len(prefix):]
        out.append("| %s ids | %d | %.0f | %d %s | %.2f | %.0f | %s | "
                   "%.0f (%.0f) |" % (
                       q, r["clients"], r["ids_per_s"], TARGETS[q],
                       "met" if r["ids_per_s"] >= TARGETS[q] else "MISSED",
                       r["server_cpu_s"],
                       r["ids"] / max(r["server_cpu_s"], 0.01),
                       lat(r, "missing"), r["server_rss_mib"],
                       r.get("server_anon_mib", 0)))
    return out


def mapped_text(opened):
    """What a server's RSS holds beyond its anonymous memory."""
    if (opened or {}).get("reads") == "pread":
        return ("the files it maps, its binary and libraries (LevelDB "
                "reads the index tables with pread, not mmap: "
                "docs/SERVER-SCALE.md)")
    return ("LevelDB's tables mapped with mmap (page cache the kernel "
            "may take back)")


def report(rows):
    meta = one(rows, "meta")
    floor = one(rows, "floor")
    synth = one(rows, "synth")
    opened = one(rows, "open")
    gc = one(rows, "gc")
    capped = one(rows, "capped")
    out = [BEGIN, "", "## The server alone (`make bench-server`)", "",
           "Written by `make bench-server` (`tests/bench/server-bench.sh`);"
           " do not edit by hand.", "",
           "- Date: %s; dedup %s" % (meta["date"], meta["version"]),
           "- Machine: %d CPUs, %s, %.1f GiB RAM; work dir on %s" % (
               meta["nproc"], meta["cpu"], meta["mem_gib"], meta["fs"]),
           "- Load average when the run started: %s (1, 5, 15 min; "
           "other work shared the CPUs when it is well above 0)" %
           meta["load_start"],
           "- Clients: the load generator (`tests/bench/server_bench.c`) "
           "on the same machine, one keep-alive HTTPS connection and one "
           "thread each; every bundle built before the clock starts "
           "(%d MiB of unique chunks of 64 KiB..1 MiB in all, split "
           "evenly over the clients, about 1.6x compressible at zstd "
           "level 3, bundles of at most 8 MiB), each asked about with "
           "`/chunks/missing` and then sent with `POST /chunks`, as the "
           "agent does. A fresh repository for each client count. The "
           "server runs with `missing_ids_per_second=0`, "
           "`per_ip_connections=0`, `max_connections=512`, "
           "`body_memory=0`, `per_client_body_memory=0` so that no "
           "limit is measured; its CPU is read from /proc." % meta["mb"],
           ""]
    if floor:
        t, fl_gb = clients_table(rows, floor)
        out += ["### N concurrent clients", ""] + t + [""]
        out += ["Floor (`server-bench floor`, the same bundles, one "
                "thread): zstd decompress + SHA-256 + write + fdatasync "
                "once a bundle on the same disk: %.2f CPU s for %.0f MB = "
                "**%.2f CPU s/GB**, %.0f MB/s wall. \"x floor\" is the "
                "server's CPU per GB over that. The missing-query column "
                "asks %d absent ids in all over N connections against the "
                "small index just written." % (
                    floor["cpu_s"], floor["plain_mb"], fl_gb,
                    floor["mb_per_s"], meta["ids"]), ""]
    if synth:
        per = synth["index_bytes"] / float(synth["chunks"])
        out += ["### Index at scale", "",
                "A synthetic index of **%d chunks** written straight into "
                "LevelDB by `tests/bench/synth_index.c` (server options: "
                "bloom filter of 16 bits a key, 32 MiB tables, no "
                "compression; ids in key order, then compacted; "
                "locations naming packs that do not exist, so no chunk "
                "can be read) in %.0f s (writer peak RSS %d MiB)." % (
                    synth["chunks"], synth["seconds"],
                    synth["tool_rss_mib"]), "",
                "- Index on disk: %d bytes in %d tables = **%.1f bytes a "
                "chunk** (target at most 64: %s)" % (
                    synth["index_bytes"], synth["files"], per,
                    "met" if per <= 64 else "MISSED"),
                "- Server start to ready: %.1f s, RSS then %d MiB" % (
                    opened["seconds"], opened["server_rss_mib"]), ""]
        out += index_table(rows) + [""]
        idx = [r for r in rows if r["kind"].startswith("index-")]
        mapped = mapped_text(opened)
        peak = max([r["server_hwm_mib"] for r in idx] or [0])
        anon = max([r.get("server_anon_mib", 0) for r in idx] or [0])
        out += ["Server peak RSS over the index runs: **%.0f MiB**, of "
                "which at most %.0f MiB anonymous at the end of a run; "
                "the rest is %s. Target under 256: %s." % (
                    peak, anon, mapped, "met" if peak < 256 else
                    "MISSED (anonymous: %s)" % (
                        "met" if anon < 256 else "missed")), ""]
    if capped and "skipped" in capped:
        out += ["The runs with the server in a %d MiB memory cgroup were "
                "skipped: %s." % (capped["cap_mib"], capped["skipped"]), ""]
    elif capped:
        idx = [r for r in rows if r["kind"].startswith("capped-")]
        peak = max([r["server_hwm_mib"] for r in idx] or [0])
        out += ["#### The same index, the server held to %d MiB" %
                capped["cap_mib"], "",
                "The server restarted in a memory cgroup of %d MiB, which "
                "counts its anonymous memory and the page cache it reads, "
                "the index tables' pages included (the tables dropped "
                "from the page cache first, so that its reads are charged "
                "there); the kernel takes pages back to stay under "
                "the limit. %d ids a run (the load generator runs outside "
                "the cgroup)." % (capped["cap_mib"], capped["ids"]), ""]
        out += index_table(rows, "capped-") + [""]
        if "failed" in capped:
            out += ["Run stopped at %s." % capped["failed"], ""]
        fast = all(r["ids_per_s"] >= TARGETS[r["kind"][7:]]
                   for r in idx) and "failed" not in capped
        out += ["Server peak RSS over these runs: **%.0f MiB**; the "
                "cgroup's peak usage (anonymous + page cache + kernel "
                "memory charged to it): %d MiB. Under 256 MiB together "
                "with the ids/s targets: %s." % (
                    peak, capped["peak_mib"],
                    "met" if peak < 256 and fast else "MISSED"), ""]
    if gc:
        own = ""
        if "anon_mib" in gc:
            own = (", of which **%d MiB** anonymous (the collector's own "
                   "memory, a %.1f MiB mark filter included; the rest is "
                   "%s)" % (gc["anon_mib"], gc.get("filter_mib", 0),
                            mapped_text(opened)))
        out += ["`dedup-server gc --dry-run` on that index (no snapshots, "
                "so the mark phase marks nothing and the scan judges every "
                "entry dead): **%.0f s**, peak RSS **%d MiB**%s. What this "
                "measures and what a full GC holds: docs/SERVER-SCALE.md." % (
                    gc["seconds"], gc["rss_mib"], own), ""]
    out += [END]
    return "\n".join(out) + "\n"


def put_section(path, text):
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    text = report(load(sys.argv[1]))
    with open(sys.argv[2], "w") as f:
        f.write(text)
    for p in sys.argv[3:]:
        put_section(p, text)


if __name__ == "__main__":
    main()
