#!/usr/bin/env python3
"""tests/bench/report.py - turns the raw TSV of tests/bench/bench.sh into the
markdown report (docs/BENCHMARKS.md). Usage: report.py RESULTS.tsv OUT.md..."""
import csv
import sys

TOOLS = ["dedup", "restic", "borg"]
PEERS = ["restic", "borg"]


def load(path):
    rows, meta = [], {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if r["tool"] == "meta":
                meta[r["step"]] = r["value"]
            else:
                rows.append(r)
    return rows, meta


def num(s, default=0.0):
    try:
        return float(s)
    except (TypeError, ValueError):
        return default


def floors_section(rows, meta, res, ran, mixed):
    """What one thread of the machine does with the mixed tree, and the
    bounds that follow for any tool on nproc cores."""
    tarx = next((r for r in rows if r["tool"] == "floor" and r["step"] == "tar-x"), None)
    z = meta.get("floor_zstd3", "").split()
    z1 = meta.get("floor_zstd1", "").split()
    sha = num(meta.get("floor_sha256_mbs"))
    ncpu = max(1, int(num(meta.get("nproc"), 1)))
    if not tarx or tarx["rc"] != "0" or len(z) != 4 or sha <= 0 or mixed <= 0:
        return ["## Floors\n", "Not measured in this run (needs zstd, openssl and room "
                "in /dev/shm).\n"]
    mb = mixed / 1e6
    tsec = num(tarx["seconds"])
    zin, zout, zc, zd = num(z[0]), num(z[1]), num(z[2]), num(z[3])
    out = ["## Floors\n",
           "What one thread of this machine does with the same mixed tree (read from a tar "
           "in `/dev/shm`, so no disk is involved), measured in this run:\n",
           "| work on the %.1f MB mixed tree, one thread | seconds | MB/s |" % mb,
           "|---|---:|---:|",
           "| create its files: GNU `tar x` (what every restore must make the kernel do) "
           "| %.2f | %.0f |" % (tsec, mb / tsec if tsec > 0 else 0),
           "| zstd level 3 compression on 256 KiB blocks (`zstd -b3 -B262144`; "
           "ratio %.3f) | %.2f | %.0f |" % (zin / zout if zout else 0, mb / zc if zc else 0, zc),
           "| zstd decompression of the same | %.2f | %.0f |" % (mb / zd if zd else 0, zd),
           "| zstd level 1 compression, same blocks (ratio %.3f) | %.2f | %.0f |" % (
               zin / num(z1[1]) if len(z1) == 4 and num(z1[1]) else 0,
               mb / num(z1[2]) if len(z1) == 4 and num(z1[2]) else 0,
               num(z1[2]) if len(z1) == 4 else 0),
           "| SHA-256 (`openssl dgst -sha256`) | %.2f | %.0f |" % (mb / sha, sha),
           ""]
    best = lambda m: max([v for t, (v, f) in res.get(m, {}).items()
                          if t != "dedup" and v is not None and not f] or [0])
    first_peer, restore_peer = best("first"), best("restore")
    # A first backup compresses every byte once, and the chunk is hashed
    # by the agent and again by the server after decompressing it: a lower
    # bound on CPU time that leaves out chunking, TLS and system calls.
    cpu = (mb / zc if zc else 0) + (mb / zd if zd else 0) + 2 * mb / sha
    wall = cpu / ncpu
    if first_peer > 0 and wall > 0:
        out.append(
            "- **First backup**: compressing at level 3, hashing on both sides and "
            "decompressing to verify costs at least %.2f CPU-seconds for this tree, so at "
            "best %.2f s on %d cores = %.0f MB/s, %.2fx the faster peer (%.1f MB/s), before "
            "chunking, TLS, reading and writing. %s" % (
                cpu, wall, ncpu, mb / wall, mb / wall / first_peer, first_peer,
                ("4x the peer (%.0f MB/s) is above that bound: out of reach without "
                 "compressing less (level 1, in the table, trades compression time for a "
                 "larger repository)." % (4 * first_peer)) if mb / wall < 4 * first_peer else
                ("4x the peer (%.0f MB/s) is within that bound." % (4 * first_peer))))
    if restore_peer > 0 and tsec > 0:
        rbest = tsec / ncpu
        out.append(
            "- **Restore**: creating the files alone takes %.2f s (nearly all of it in the kernel) on one "
            "thread; even split perfectly over %d cores that is %.2f s = %.0f MB/s, %.2fx the "
            "faster peer (%.1f MB/s), before fetching, decompressing and verifying a byte. "
            "%s" % (
                tsec, ncpu, rbest, mb / rbest, mb / rbest / restore_peer, restore_peer,
                ("4x the peer (%.0f MB/s) is above that bound: out of reach on this kernel "
                 "and file system." % (4 * restore_peer)) if mb / rbest < 4 * restore_peer else
                ("4x the peer (%.0f MB/s) is within that bound." % (4 * restore_peer))))
    out.append("")
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: report.py RESULTS.tsv OUT.md...")
    rows, meta = load(sys.argv[1])
    ran = [t for t in TOOLS if any(r["tool"] == t for r in rows)]
    ngen = int(meta.get("generations", "10"))
    mixed = num(meta.get("mixed_bytes"))

    def find(tool, step, kind=None):
        for r in rows:
            if r["tool"] == tool and r["step"] == step and \
                    (kind or r["kind"]) == r["kind"] and \
                    (kind or r["kind"] != "server-cpu"):
                return r
        return None

    # metric -> tool -> (value or None, flag text)
    res = {}

    def put(metric, tool, value, flag=""):
        res.setdefault(metric, {})[tool] = (value, flag)

    for t in ran:
        r = find(t, "mixed-1")
        if r and r["rc"] == "0" and num(r["seconds"]) > 0:
            put("first", t, mixed / 1e6 / num(r["seconds"]))
        else:
            put("first", t, None, "FAIL")
        r = find(t, "mixed-copy")
        if r and r["rc"] == "0" and num(r["seconds"]) > 0:
            put("copy", t, mixed / 1e6 / num(r["seconds"]))
            put("copycpu", t, num(r["value"]) / num(r["seconds"]) if r["value"] else None,
                "" if r["value"] else "n/a")
        else:
            put("copy", t, None, "FAIL" if r else "not run")
            put("copycpu", t, None, "FAIL" if r else "not run")
        r, c = find(t, "mixed-copy"), find(t, "mixed-copy", "server-cpu")
        if t == "dedup" and r and c and r["rc"] == "0" and r["value"] and \
                num(r["seconds"]) > 0:
            put("copycpuall", t, (num(r["value"]) + num(c["value"])) /
                num(r["seconds"]))
        else:
            put("copycpuall", t, None, "n/a")
        r = find(t, "mixed-2")
        put("rebackup", t, *((num(r["seconds"]),) if r and r["rc"] == "0" else (None, "FAIL")))
        gens = [find(t, "gen-%d" % k) for k in range(1, ngen + 1)]
        ok = [num(g["seconds"]) for g in gens if g and g["rc"] == "0"]
        if ok:
            put("gen", t, sum(ok) / len(ok), "" if len(ok) == ngen else
                "%d of %d failed" % (ngen - len(ok), ngen))
        else:
            put("gen", t, None, "FAIL")
        r = find(t, "restore")
        v = find(t, "restore-diff")
        if r and r["rc"] == "0" and num(r["seconds"]) > 0:
            flag = "" if v and v["rc"] == "0" else "RESTORE MISMATCH (diff -r)"
            put("restore", t, mixed / 1e6 / num(r["seconds"]), flag)
        else:
            put("restore", t, None, "FAIL" + ("" if not v or v["rc"] == "0" else
                                               ", RESTORE MISMATCH"))
        r, v = find(t, "mixed-1-enc"), find(t, "restore-enc-diff")
        if t == "dedup" and r:
            put("first_enc", t, mixed / 1e6 / num(r["seconds"]) if r["rc"] == "0" and
                num(r["seconds"]) > 0 else None, "" if r["rc"] == "0" else "FAIL")
            r = find(t, "restore-enc")
            if r and r["rc"] == "0" and num(r["seconds"]) > 0:
                put("restore_enc", t, mixed / 1e6 / num(r["seconds"]),
                    "" if v and v["rc"] == "0" else "RESTORE MISMATCH (diff -r)")
            else:
                put("restore_enc", t, None, "FAIL")
        r = find(t, "repo-final")
        put("repo", t, num(r["value"]) if r and r["value"] else None, "" if r else "n/a")
        a, b = find(t, "repo-after-img-a"), find(t, "repo-after-img-b")
        ib = find(t, "img-b")
        if a and b and ib and ib["rc"] == "0":
            put("imgb", t, num(b["value"]) - num(a["value"]))
        else:
            put("imgb", t, None, "FAIL")
        rss = [num(x["rss_kib"]) for x in rows
               if x["tool"] == t and x["kind"] in ("backup", "restore")]
        put("rss", t, max(rss) / 1024 if rss else None)
        if t == "dedup":
            s = find(t, "server")
            put("srss", t, num(s["rss_kib"]) / 1024 if s and num(s["rss_kib"]) > 0 else None,
                "" if s and num(s["rss_kib"]) > 0 else "n/a")
        failed = [x["step"] for x in rows if x["tool"] == t and x["rc"] != "0"]
        if failed:
            put("failed", t, None, ", ".join(failed))

    def fmt(metric, tool):
        if tool not in ran:
            return "not run"
        if metric in ("srss", "copycpuall") and tool != "dedup":
            return "-"
        v, flag = res.get(metric, {}).get(tool, (None, "n/a"))
        if v is None:
            return "**%s**" % (flag or "n/a")
        if metric in ("first_enc", "restore_enc") and tool != "dedup":
            return "-"
        if metric in ("first", "restore", "first_enc", "restore_enc", "copy"):
            s = "%.1f" % v
        elif metric in ("copycpu", "copycpuall"):
            s = "%.2f" % v
        elif metric in ("rebackup", "gen"):
            s = "%.2f" % v if v < 10 else "%.1f" % v
        elif metric in ("repo", "imgb"):
            s = "%.1f MB" % (v / 1e6)
        else:
            s = "%.0f" % v
        return s + (" **%s**" % flag if flag else "")

    def ratio(metric, kind):
        if "dedup" not in ran:
            return "n/a"
        # values carrying a flag (failed steps, restore mismatch) are not compared
        d, dflag = res.get(metric, {}).get("dedup", (None, ""))
        peers = [res.get(metric, {}).get(p, (None, "")) for p in PEERS if p in ran]
        peers = [v for v, flag in peers if v is not None and not flag]
        if d is None or dflag or not peers:
            return "n/a"
        if kind == "throughput":
            best = max(peers)
            return "%.2fx" % (d / best) if best > 0 else "n/a"
        if kind == "time":
            best = min(peers)
            if d <= 0 or best <= 0:
                return "n/a"
            return ("%.2fx faster" % (best / d)) if best >= d else ("%.2fx slower" % (d / best))
        smallest = min(peers)
        return "%.2fx" % (d / smallest) if smallest > 0 else "n/a"

    metrics = [
        ("first", "first backup of the mixed tree, MB/s", "throughput"),
        ("rebackup", "unchanged re-backup of the mixed tree, s", "time"),
        ("copy", "the mixed tree copied to a second path, backed up after the first "
         "(all chunks known), MB/s", "throughput"),
        ("copycpu", "the same, CPU seconds / wall seconds of the client", "none"),
        ("copycpuall", "the same, client + dedup-server CPU seconds / wall seconds "
         "(both on this machine's CPUs)", "none"),
        ("gen", "next-generation backup, s (mean of gen-1..gen-%d)" % ngen, "time"),
        ("restore", "restore of the mixed tree, MB/s (then `diff -r`)", "throughput"),
        ("first_enc", "first backup, encrypted (dedup only; docs/ENCRYPTION.md), MB/s", "none"),
        ("restore_enc", "restore, encrypted (dedup only), MB/s", "none"),
        ("repo", "repository bytes after all backups (generations + images)", "bytes"),
        ("imgb", "bytes added by disk image B after A", "bytes"),
        ("rss", "peak RSS agent/client, MiB (max over backups and restores)", "bytes"),
        ("srss", "peak RSS server, MiB (dedup only)", "none"),
    ]
    lines = ["| | dedup | restic | borg | dedup vs faster peer |",
             "|---|---:|---:|---:|---:|"]
    for m, label, kind in metrics:
        lines.append("| %s | %s | %s | %s | %s |" % (
            label, fmt(m, "dedup"), fmt(m, "restic"), fmt(m, "borg"),
            ratio(m, kind) if kind != "none" else "n/a"))
    if "failed" in res:
        lines.append("| **FAILED STEPS** | %s | %s | %s | |" % tuple(
            ("**%s**" % res["failed"][t][1]) if t in res["failed"] else "" for t in TOOLS))
    table = "\n".join(lines)

    # per-step seconds
    steps = ["mixed-1", "mixed-2", "mixed-copy", "restore", "mixed-1-enc", "restore-enc"] + ["gen-%d" % k for k in range(ngen + 1)] + \
        ["img-a", "img-b"]
    det = ["| step | " + " | ".join(ran) + " |", "|---|" + "---:|" * len(ran)]
    for s in steps:
        cells = []
        for t in ran:
            r = find(t, s)
            if not r:
                cells.append("-")
            elif r["rc"] != "0":
                cells.append("**FAIL rc=%s**" % r["rc"])
            else:
                c = find(t, s, "server-cpu")
                cells.append("%.2f s / %d MiB" % (num(r["seconds"]), num(r["rss_kib"]) / 1024) +
                             (" / %.2f s CPU" % num(r["value"]) if r["kind"] == "backup" and
                              r["value"] else "") +
                             (" (+ %.2f s server)" % num(c["value"]) if c and c["value"]
                              else ""))
        det.append("| %s | %s |" % (s, " | ".join(cells)))
    for s in ["repo-after-generations", "repo-after-img-a", "repo-after-img-b"]:
        cells = []
        for t in ran:
            r = find(t, s)
            cells.append("%.1f MB" % (num(r["value"]) / 1e6) if r and r["value"] else "-")
        det.append("| %s | %s |" % (s, " | ".join(cells)))
    srv = find("dedup", "server")
    if srv and srv["value"]:
        det.append("| dedup-server CPU (user+sys) over the whole run | %s s |%s" % (
            srv["value"], " |" * (len(ran) - 1)))
    details = "\n".join(det)

    ram_gib = num(meta.get("ram_kib")) / 1024 / 1024
    scale = meta.get("scale", "1.0")
    gens_log = [x for x in meta.get("gens_log", "").split(";") if x]
    img_log = meta.get("images_log", "").strip(";")
    full = num(scale) == 1.0 and len(ran) == 3
    doc = []
    doc.append("# Benchmarks: dedup, restic and borg\n")
    doc.append("Written by `make bench` (`tests/bench/bench.sh`); do not edit by hand.%s\n" % (
        "" if full else " **This is a reduced run (scale %s, tools: %s), not the full "
        "benchmark.**" % (scale, ", ".join(ran))))
    doc.append("- Date: %s" % meta.get("date", "?"))
    doc.append("- Machine: %s CPUs (`nproc`), %s, %.1f GiB RAM; %s; %s; work dir on %s" % (
        meta.get("nproc", "?"), meta.get("cpu", "?"), ram_gib, meta.get("os", "?"),
        # The filesystem type only: the work directory's path is this
        # machine's business.
        meta.get("kernel", "?"), meta.get("fs", "?").split(" at ")[0]))
    doc.append("- Load average when the run started: %s (1, 5, 15 min; anything well above 0 "
               "means other work competed for the CPUs)" % meta.get("loadavg", "?"))
    doc.append("- Versions: dedup %s; %s; %s" % (
        meta.get("dedup_version", "?"), meta.get("restic_version", "restic ?"),
        meta.get("borg_version", "borg ?")))
    doc.append("- Data (seed %s, scale %s, generated by `tests/bench/gen.c`):" % (
        meta.get("seed", "?"), scale))
    doc.append("  - mixed tree: %d files, %.1f MB (small files in nested dirs, source-like "
               "text, binary-like files, random/compressed data, three large mixed files, "
               "~1%% duplicate files)" % (num(meta.get("mixed_files")), mixed / 1e6))
    doc.append("  - generations: gen-0 %d files, %.1f MB; %d generations each derived from "
               "the previous by inserting, deleting and overwriting byte ranges inside files "
               "and adding/removing files; gen-%d %.1f MB" % (
                   num(meta.get("gen0_files")), num(meta.get("gen0_bytes")) / 1e6, ngen, ngen,
                   num(meta.get("genN_bytes")) / 1e6))
    doc.append("  - disk images: A and B of %.1f MB each; B is A with unaligned inserts, "
               "deletes, overwrites and new zero runs (%s)" % (
                   num(meta.get("image_bytes")) / 1e6, img_log))
    doc.append("- Whole run: %s s\n" % meta.get("total_seconds", "?"))
    doc.append(table + "\n")
    doc.append("MB = 10^6 bytes, MiB = 2^20 bytes. Ratio column: throughput = dedup / best "
               "peer; times = best peer time / dedup time (\"Nx faster\", or \"Nx slower\" "
               "when dedup is slower); bytes and RSS = dedup / smallest peer (below 1 = "
               "dedup smaller).\n")
    doc.extend(floors_section(rows, meta, res, ran, mixed))
    doc.append("## Method\n")
    doc.append(
        "- Every tool gets **one fresh repository for everything**, filled in this order: "
        "the mixed tree (first backup, then an unchanged re-backup, then a copy of the tree "
        "made with `cp -a` at a second path: no parent snapshot or files cache applies, "
        "every chunk is known), a restore of the first "
        "snapshot into an empty directory checked with `diff -r --no-dereference`, the "
        "generations gen-0..gen-%d, then disk image A and image B. One repository per tool "
        "is how each tool is used in practice (and how dedup's cross-client index works), "
        "so the final repository size includes cross-dataset effects; the image B row is the "
        "repository growth caused by B alone." % ngen)
    doc.append(
        "- The generations are backed up from one fixed path (`gen-current`): before each "
        "backup, only the files whose size or mtime differ are copied in from gen-k, and "
        "removed files are deleted, so every tool sees the same directory changing over "
        "time and can use its parent snapshot / files cache. The images are backed up as one "
        "fixed path `img-current/disk.img`.")
    doc.append(
        "- Times are wall-clock seconds of the client process (dedup-agent, restic, borg); "
        "the dedup-server runs on 127.0.0.1 over HTTPS for the whole run, started before the "
        "first backup. Peak RSS is GNU time's \"Maximum resident set size\"; the server's is "
        "read after SIGTERM.")
    doc.append(
        "- Settings: dedup defaults (repository from `dedup-server init`, token, self-signed "
        "CA). restic: local repository, `init --repository-version 2`, `backup --compression "
        "auto`. borg: `init -e none`, `create --compression zstd`. Caches of all tools "
        "(restic cache, borg cache/security dirs, the agent's HOME/XDG dirs) live inside the "
        "work dir and start empty.")
    doc.append(
        "- Every tool's first backup and each image backup starts right after its input "
        "was read once (the machine may reclaim idle page cache, so data read a minute "
        "earlier can be gone) and after `sync` and a short pause; nothing is deleted "
        "while tools are timed (the last run's files and the restored trees are removed "
        "at the end), because ext4 without a journal creates files more slowly right after "
        "a large delete. So the numbers measure CPU and software overheads rather than the "
        "disk, and every tool sees the same conditions in the same run.")
    doc.append(
        "- Every restore, and the `tar x` floor, writes into %s%s.\n" % (
            meta.get("restore_fs", "the work dir"),
            "" if meta.get("restore_fs", "the work dir") == "the work dir" else
            " (so that files deleted on the work dir before the run cannot slow "
            "creating files: docs/FLOORS.md, \"An ext4 without a journal after a "
            "large delete\")"))
    doc.append("## Every step (wall seconds / peak RSS / client CPU seconds, user+sys; for dedup, the server's CPU seconds over the same step)\n")
    doc.append(details + "\n")
    if gens_log:
        doc.append("## Generated generations\n")
        doc.append("```")
        doc.extend(gens_log)
        doc.append("```\n")
    text = "\n".join(doc)
    for p in sys.argv[2:]:
        with open(p, "w") as f:
            f.write(text)
    print()
    print(table)


if __name__ == "__main__":
    main()
