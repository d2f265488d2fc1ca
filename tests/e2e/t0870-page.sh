#!/usr/bin/env bash
# The status page as a newcomer meets it, in a real headless Chromium
# driven over the DevTools protocol (--remote-debugging-pipe, no extra
# package): the sign-in hint prints a token command that works as written;
# no request of any view answers 404 (/favicon.ico included) and the
# console stays clean; every time reads UTC, 24-hour, labelled; at
# 1280x800 every stat card's value in a row sits at the same height and no
# label wraps. Signed in as a client, the page shows that client's own
# numbers, never the repository's (docs/API.md, "The status page"). Right
# after a restart, while the server counts usage, both views say
# "counting" where the counts go.
. "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
if [ -z "$CHROMIUM" ]; then
	not_ok "chromium is not installed (packaging/deps.sh installs it)"
	finish
fi

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
B=$(token_add "$T/repo" bob)
OPS=$(token_add "$T/repo" ops --admin)
token_add "$T/repo" carl >/dev/null     # never backs up: stale
printf 'client.alice.quota_bytes = 1G\n' > "$T/server.conf"
server_start "$T/repo" --config "$T/server.conf" || exit 1
mkdir -p "$T/d1" "$T/d2"
prand page1 400000 > "$T/d1/random"
prand page2 300000 > "$T/d2/random"
agent "$A" backup "$T/d1" >/dev/null
agent "$B" backup "$T/d2" >/dev/null
agent "$B" backup "$T/d1" >/dev/null
# bob's next backup gives up: its last result is "failed".
SID=$(json_get "$(api "$B" POST /api/v1/sessions -H 'Content-Type: application/json' \
	-d '{"host": "h", "paths": ["/x"]}' | head -n -1)" id)
api "$B" POST "/api/v1/sessions/$SID" -H 'Content-Type: application/json' \
	-d '{"state": "failed", "error": "disk on fire"}' >/dev/null
save stats_a "$A" GET /api/v1/stats
save stats_ops "$OPS" GET /api/v1/stats
curl -sS --cacert "$CA" -o "$T/fav.bin" -w '%{http_code} %{content_type}\n' "$URL/favicon.ico" > "$T/fav.status"

# view.py URL OUT [TOKEN]: opens URL (with #token=TOKEN) in a fresh headless
# Chromium at 1280x800, waits (bounded) until the page is "login" or
# "ready", and writes what it saw as JSON: every response's status, the
# console's errors, the stat cards' boxes, the texts the checks need.
cat > "$T/view.py" <<'PY'
import json, os, sys, time
sys.path.insert(0, os.environ["E2E_DIR"])
from cdp import Browser
chromium, url, out = sys.argv[1], sys.argv[2], sys.argv[3]
with Browser(chromium, 40, log=os.path.join(os.environ["T"], "chromium.log")) as b:
    call, events = b.call, b.events
    js = b.js
    s = b.page("Network.enable", "Runtime.enable", "Log.enable", "Page.enable")
    call("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800,
         "deviceScaleFactor": 1, "mobile": False}, s)
    call("Page.navigate", {"url": url}, s)
    state = None
    while time.time() < b.deadline:
        state = js("document.body && document.body.dataset.state", s)
        if state in ("login", "ready") and js("document.getElementById('version').textContent", s):
            break
        time.sleep(0.1)
    # the icon the page links, fetched as the browser would
    icon = js("""(() => { const l = document.querySelector("link[rel=icon]");
                   return l ? fetch(l.href).then(r => r.status) : 0; })()""", s)
    seen = js("""(() => {
      const box = (e) => { const r = e.getBoundingClientRect(); return {top: r.top, left: r.left, height: r.height}; };
      const cards = [...document.querySelectorAll(".cards .card")].filter((c) => c.offsetParent !== null).map((c) => {
        const k = c.querySelector(".k"), v = c.querySelector(".v");
        return {id: v.id, card: box(c), value: box(v), label: k.textContent,
                label_cut: k.scrollWidth > k.clientWidth, label_height: box(k).height,
                line_height: parseFloat(getComputedStyle(k).lineHeight) || 0, text: v.textContent,
                data: v.dataset.value};
      });
      const cells = [...document.querySelectorAll("#snapshots tr[data-id] td:nth-child(4)")].map((t) => t.textContent);
      const ths = [...document.querySelectorAll("th")].map((t) => t.textContent);
      return {cards, cells, ths, updated: document.getElementById("updated").textContent,
              hint: (document.querySelector("#login code") || {}).textContent || "",
              n_clients: (document.getElementById("n-clients") || {}).textContent || "",
              clients: [...document.querySelectorAll("#clients tr")].map((r) => [...r.children].map((t) => t.textContent)),
              width: innerWidth, height: innerHeight};
    })()""", s)
    time.sleep(0.3)
    call("Runtime.evaluate", {"expression": "1"}, s)  # drains pending events
    seen["state"] = state
    seen["icon_status"] = icon
    seen["responses"] = [(e["params"]["response"]["url"], e["params"]["response"]["status"])
                         for e in events if e.get("method") == "Network.responseReceived"]
    seen["console_errors"] = [e["params"]["entry"]["text"] for e in events
                              if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
    seen["console_errors"] += [str(e["params"].get("args")) for e in events
                               if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"]
    json.dump(seen, open(out, "w"))
PY
view() { T="$T" timeout 60 python3 "$T/view.py" "$CHROMIUM" "$1" "$2" 2>>"$T/cdp.err"; }
view "$URL/" "$T/v_none.json"
view "$URL/#token=$OPS" "$T/v_admin.json"
view "$URL/#token=$A" "$T/v_client.json"
check "chromium was driven (3 views)" test -s "$T/v_none.json" -a -s "$T/v_admin.json" -a -s "$T/v_client.json"
[ -s "$T/cdp.err" ] && cat "$T/cdp.err"

# The hint's command, run exactly as printed (dedup-server on PATH).
hint=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hint"])' "$T/v_none.json" 2>/dev/null)
check "the sign-in hint names the repository" grep -qF -- "--repo $(realpath "$T/repo")" <<<"$hint"
check "the sign-in hint is a dedup-server token add command" grep -q '^dedup-server token add ' <<<"$hint"
(cd "$T" && PATH="$(dirname "$SERVER"):$PATH" eval "$hint") >"$T/hint.out" 2>&1
check_eq "the sign-in hint's command works as written ($hint)" 0 "$?"
check "... and made an admin token" grep -qE '^NAME +admin' <("$SERVER" token list --repo "$T/repo")
check "... which the server accepts" test "$(api_status "$(tail -n1 "$T/hint.out")" GET /api/v1/clients)" = 200

pycheck <<'PY'
fav = open(os.path.join(T, "fav.status")).read().split()
check_eq("/favicon.ico answers 200 with an image", ["200", "image/svg+xml"], fav)
check("... an SVG icon", open(os.path.join(T, "fav.bin"), "rb").read().startswith(b"<svg"))
sa, so = J("stats_a"), J("stats_ops")
for name in ("none", "admin", "client"):
    v = json.load(open(os.path.join(T, "v_%s.json" % name)))
    want = "login" if name == "none" else "ready"
    check_eq("%s: the page reaches %s" % (name, want), want, v["state"])
    check_eq("%s: the viewport is 1280x800" % name, (1280, 800), (v["width"], v["height"]))
    bad = [r for r in v["responses"] if r[1] >= 400]
    check("%s: no request answers 404 or any error" % name, v["responses"] and not bad, bad or v["responses"])
    check_eq("%s: the linked icon loads" % name, 200, v["icon_status"])
    check_eq("%s: no console error" % name, [], v["console_errors"])
    if name == "none":
        continue
    check("%s: the header's time is UTC, 24-hour, labelled" % name,
          re.fullmatch(r"updated ([01]\d|2[0-3]):[0-5]\d:[0-5]\d UTC", v["updated"]), v["updated"])
    check("%s: the snapshots' times are UTC, 24-hour, labelled" % name,
          v["cells"] and all(re.fullmatch(r"\d{4}-\d\d-\d\d ([01]\d|2[0-3]):[0-5]\d:[0-5]\d UTC", c) for c in v["cells"]), v["cells"])
    check("%s: the time column says UTC" % name, "Time (UTC)" in v["ths"], v["ths"])
    cards = v["cards"]
    rows = {}
    for c in cards:
        rows.setdefault(round(c["card"]["top"]), []).append(c)
    for top, row in sorted(rows.items()):
        ys = [round(c["value"]["top"], 1) for c in row]
        check("%s: the cards' values in the row at y=%d sit at the same height" % (name, top),
              max(ys) - min(ys) < 0.5, [(c["label"], c["value"]["top"]) for c in row])
    check("%s: no card label wraps" % name,
          all(c["label_height"] <= c["line_height"] * 1.5 for c in cards), [(c["label"], c["label_height"]) for c in cards])
    check("%s: no card label is cut" % name, not [c["label"] for c in cards if c["label_cut"]],
          [c["label"] for c in cards if c["label_cut"]])
    shown = {c["id"]: c for c in cards}
    if name == "admin":
        check_eq("admin: the repository's cards", {"s-logical", "s-unique", "s-stored", "s-dedup", "s-comp",
                 "s-chunks", "s-snapshots", "s-clients", "s-free"}, set(shown))
        check("admin: the clients' heading counts the stale and the failed ones",
              re.fullmatch(r"\(4, 1 stale, 1 failed, stale after .+\)", v["n_clients"]), v["n_clients"])
        check_eq("admin: the repository's snapshots and clients", (str(so["snapshots"]), str(so["clients"])),
                 (shown["s-snapshots"]["data"], shown["s-clients"]["data"]))
    else:
        check_eq("client: only its own cards", {"s-logical", "s-snapshots", "s-only", "s-quota"}, set(shown))
        check_eq("client: its own snapshots (1 of the repository's 3)", ("1", 3), (shown["s-snapshots"]["text"], so["snapshots"]))
        check_eq("client: its own logical bytes", str(sa["bytes_logical"]), shown["s-logical"]["data"])
        check_eq("client: what only it references", str(sa["bytes_only_client"]), shown["s-only"]["data"])
        check("client: its quota, 1 GiB and its share", shown["s-quota"]["text"].startswith("1.0 GiB ("), shown["s-quota"]["text"])
PY
check_eq "the server still serves" 200 "$(api_status "" GET /api/v1/health)"

# Right after a restart the usage is being counted (held 30 s by a test
# hook): the page says so instead of showing 0 B, and nothing fails.
server_stop TERM
DEDUP_TEST_USAGE_REBUILD_MS=30000 server_start "$T/repo" --config "$T/server.conf" || exit 1
view "$URL/#token=$OPS" "$T/v_admin2.json"
view "$URL/#token=$A" "$T/v_client2.json"
check_eq "the counts were still being made meanwhile" True \
	"$(api "$OPS" GET /api/v1/clients | head -n -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["usage_counting"])')"
pycheck <<'PY'
for name in ("admin2", "client2"):
    v = json.load(open(os.path.join(T, "v_%s.json" % name)))
    check_eq("%s: the page reaches ready while the server counts" % name, "ready", v["state"])
    bad = [r for r in v["responses"] if r[1] >= 400]
    check("%s: no request fails meanwhile" % name, v["responses"] and not bad, bad or v["responses"])
    check_eq("%s: no console error" % name, [], v["console_errors"])
    shown = {c["id"]: c for c in v["cards"]}
    if name == "admin2":
        rows = {r[0]: r for r in v["clients"] if r}
        check("admin: alice's bytes only she references read 'counting'",
              "alice" in rows and "counting" in rows["alice"], v["clients"])
        check("admin: her quota without a share", "alice" in rows and "1.0 GiB" in rows["alice"]
              and not any("%" in c for c in rows["alice"]), rows.get("alice"))
    else:
        check_eq("client: what only it references reads 'counting'", "counting", shown["s-only"]["text"])
        check_eq("client: its quota without a share", "1.0 GiB", shown["s-quota"]["text"])
PY
finish
