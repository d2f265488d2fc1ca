#!/usr/bin/env bash
# The status page in a real headless Chromium: without a token it shows
# nothing but the sign-in form; with an admin token (handed over in the URL
# fragment, which the page moves to sessionStorage) it shows the figures
# the API returns for a repository filled here; a client token sees only
# its own part. A screenshot is kept in $DD_BUILD/artifacts/.
. "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
if [ -z "$CHROMIUM" ]; then
	not_ok "chromium is not installed (packaging/deps.sh installs it)"
	finish
fi
ART=$DD_BUILD/artifacts
mkdir -p "$ART"

# browse URL OUT [extra chromium args]: loads URL in a fresh profile and
# waits (virtual time) until the page's requests are done. Bounded by
# timeout; the page's own refresh (15 s) never fires within the budget.
browse() {
	local url=$1 out=$2 profile
	shift 2
	profile=$(mktemp -d "$T/profile.XXXXXX")
	timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking --disable-component-update \
		--disable-sync --disable-extensions --disable-dev-shm-usage \
		--ignore-certificate-errors --user-data-dir="$profile" \
		--virtual-time-budget=10000 "$@" "$url" >"$out" 2>>"$T/chromium.log"
	local rc=$?
	rm -rf "$profile"
	return $rc
}

repo_init "$T/repo"
A=$(token_add "$T/repo" alice)
B=$(token_add "$T/repo" bob)
token_add "$T/repo" carol >/dev/null
OPS=$(token_add "$T/repo" ops --admin)
printf 'client.alice.quota_bytes = 1G\n' > "$T/server.conf"
server_start "$T/repo" --config "$T/server.conf" || exit 1

mkdir -p "$T/d1" "$T/d2"
seq 1 300000 > "$T/d1/numbers"
prand web1 1500000 > "$T/d1/random"
cp "$T/d1/numbers" "$T/d2/numbers"
prand web2 700000 > "$T/d2/random"
agent "$A" backup "$T/d1" >/dev/null
agent "$B" backup "$T/d2" >/dev/null
agent "$A" backup "$T/d1" "$T/d2" >/dev/null
# a backup in progress
api "$B" POST /api/v1/sessions --data-binary "{\"host\": \"bob-laptop\", \"paths\": [\"$T/d2\"]}" | head -n1 > "$T/sess.json"
SID=$(grep -o '"id":"[0-9a-f]*"' "$T/sess.json" | cut -d'"' -f4)
api "$B" POST "/api/v1/sessions/$SID" --data-binary '{"files": 1, "bytes_done": 1000000}' >/dev/null

save stats "$OPS" GET /api/v1/stats
save clients "$OPS" GET /api/v1/clients
save snaps "$OPS" GET /api/v1/snapshots
save snaps_a "$A" GET /api/v1/snapshots
save history "$OPS" GET '/api/v1/history?days=30'
curl -sS --cacert "$CA" -D "$T/page.headers" -o "$T/page.html" "$URL/"
curl -sS --cacert "$CA" -o "$T/app.js" -w '%{http_code} %{content_type}\n' "$URL/app.js" > "$T/appjs.status"

browse "$URL/" "$T/dom_none.html" --dump-dom
browse "$URL/#token=dd_$(printf 'wrong' | sha256sum | cut -c1-64)" "$T/dom_wrong.html" --dump-dom
browse "$URL/#token=$OPS" "$T/dom_admin.html" --dump-dom --screenshot="$T/shot.png" \
	--window-size=1280,1500 --hide-scrollbars
browse "$URL/#token=$A" "$T/dom_client.html" --dump-dom
cp "$T/shot.png" "$ART/t0520-web.png" 2>/dev/null

pycheck "$SID" "$OPS" <<'PY'
from html.parser import HTMLParser
sid = sys.argv[1]

class Dom(HTMLParser):
    """Elements by id, rows by data-* key, with their text and attributes."""
    def __init__(self, text):
        super().__init__()
        self.stack, self.ids, self.rows, self.body = [], {}, [], {}
        self.feed(text)
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        node = {"tag": tag, "attrs": a, "text": "", "cells": []}
        if tag == "body":
            self.body = a
        if tag in ("br", "meta", "link", "input", "img", "rect", "line", "polyline", "polygon"):
            if "id" in a:
                self.ids[a["id"]] = node
            if tag in ("polyline",):
                self.rows.append(node)
            return
        self.stack.append(node)
        if "id" in a:
            self.ids[a["id"]] = node
        if tag == "tr":
            self.rows.append(node)
        if tag == "td":
            for n in reversed(self.stack[:-1]):
                if n["tag"] == "tr":
                    n["cells"].append(node)
                    break
    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break
    def handle_data(self, data):
        for n in self.stack:
            n["text"] += data

def dom(name):
    with open(os.path.join(T, name), encoding="utf-8") as f:
        return Dom(f.read())

def human(n):
    u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    i, n = 0, float(n)
    while n >= 1024 and i < len(u) - 1:
        n /= 1024
        i += 1
    return ("%.1f" % n if i else "%d" % n) + " " + u[i]

hdr = open(os.path.join(T, "page.headers")).read().lower()
check("the page is served with a content security policy", "content-security-policy: default-src 'none'" in hdr, hdr)
check("the page carries no figures itself", "bytes_logical" not in open(os.path.join(T, "page.html")).read())
check_eq("app.js is served", "200 text/javascript; charset=utf-8", open(os.path.join(T, "appjs.status")).read().strip())

none = dom("dom_none.html")
check_eq("without a token the page asks for one", "login", none.body.get("data-state"))
check("... and shows no figures", none.ids["s-logical"]["text"].strip() == "-" and "data-value" not in none.ids["s-logical"]["attrs"])
check("... and no table rows", not [r for r in none.rows if r["attrs"].get("data-id") or r["attrs"].get("data-client")])
check("... and the app is hidden", "hidden" in none.ids["app"]["attrs"].get("class", ""))

wrong = dom("dom_wrong.html")
check_eq("a wrong token gets the sign-in form again", "login", wrong.body.get("data-state"))
check("... with the server's reason", "not accepted" in wrong.ids["error"]["text"], wrong.ids["error"]["text"])
check("... and no figures", wrong.ids["s-snapshots"]["text"].strip() == "-")

d = dom("dom_admin.html")
st, cl, snaps, hist = J("stats"), J("clients"), J("snaps"), J("history")
check_eq("with the admin token the page loads", "ready", d.body.get("data-state"))
check("the token appears nowhere in the page", sys.argv[2] not in open(os.path.join(T, "dom_admin.html")).read())
cards = {"s-logical": "bytes_logical", "s-unique": "bytes_unique", "s-stored": "bytes_stored",
         "s-free": "disk_free", "s-chunks": "chunks", "s-snapshots": "snapshots", "s-clients": "clients"}
for el, key in cards.items():
    if key == "disk_free":
        # free space moves a little between the two reads
        v = float(d.ids[el]["attrs"].get("data-value", "nan"))
        check("card %s is the API's %s (within 1%%)" % (el, key), abs(v - st[key]) <= st["disk_total"] / 100, (v, st[key]))
        continue
    check_eq("card %s holds the API's %s" % (el, key), str(st[key]), d.ids[el]["attrs"].get("data-value"))
for el in ["s-logical", "s-unique", "s-stored"]:
    key = cards[el]
    check_eq("card %s shows %s" % (el, human(st[key])), human(st[key]), d.ids[el]["text"].strip())
check_eq("the dedup ratio is shown", "%.2fx" % st["dedup_ratio"], d.ids["s-dedup"]["text"].strip())
check_eq("the compression ratio is shown", "%.2fx" % st["compression_ratio"], d.ids["s-comp"]["text"].strip())
check_eq("the snapshot count is shown", str(st["snapshots"]), d.ids["s-snapshots"]["text"].strip())

rows = {r["attrs"]["data-id"]: r for r in d.rows if "data-id" in r["attrs"]}
check_eq("every snapshot has a row", sorted(s["id"] for s in snaps), sorted(rows))
for s in snaps:
    r = rows.get(s["id"], {"cells": []})
    cells = [c["text"].strip() for c in r["cells"]]
    check_eq("snapshot %s row: id, client, size, new" % s["id"][:8],
             [s["id"][:16], s["client"], human(s["bytes_total"]), human(s["bytes_new"])],
             [cells[0] if cells else None, cells[1] if len(cells) > 1 else None,
              cells[5] if len(cells) > 5 else None, cells[6] if len(cells) > 6 else None])
newest = [r["attrs"]["data-id"] for r in d.rows if "data-id" in r["attrs"]]
check_eq("snapshots are newest first", [s["id"] for s in reversed(snaps)], newest)

crow = {r["attrs"]["data-client"]: r for r in d.rows if "data-client" in r["attrs"]}
check_eq("every client has a row", sorted(c["name"] for c in cl["clients"]), sorted(crow))
for c in cl["clients"]:
    r = crow.get(c["name"], {"cells": [], "attrs": {}})
    cells = {i: x for i, x in enumerate(r["cells"])}
    check_eq("client %s: snapshots and unique bytes" % c["name"],
             (str(c["snapshots"]), human(c["bytes_unique"])),
             (cells.get(4, {}).get("text", "").strip(), cells.get(6, {}).get("text", "").strip()))
    want_q = "-" if c["quota_bytes"] is None else "%s (%d%%)" % (human(c["quota_bytes"]), round(c["quota_used_percent"]))
    check_eq("client %s: quota and its use" % c["name"], want_q, cells.get(7, {}).get("text", "").strip())
    check_eq("client %s is marked stale exactly when the API says so" % c["name"],
             c["stale"], "stale" in r["attrs"].get("class", ""))
check_eq("alice's quota is the configured 1 GiB", 1 << 30, {c["name"]: c for c in cl["clients"]}["alice"]["quota_bytes"])
check("carol (never backed up) stands out", "stale" in crow.get("carol", {"attrs": {}})["attrs"].get("class", "") and
      crow["carol"]["cells"][2]["text"].strip() == "never")

prog = [r for r in d.rows if r["attrs"].get("data-session")]
check_eq("the backup in progress is listed", [sid], [r["attrs"]["data-session"] for r in prog])
if prog:
    cells = [c["text"].strip() for c in prog[0]["cells"]]
    check_eq("... with its client, host and bytes read", ["bob", "bob-laptop", human(1000000)],
             [cells[0], cells[1], cells[5]])
    check("... and a progress percentage", re.search(r"\d+%", cells[7]), cells)

lines = [r for r in d.rows if r["tag"] == "polyline"]
check_eq("the chart draws ingested and stored", ["ingested", "stored"], [l["attrs"].get("data-series") for l in lines])
last = hist["days"][-1]
check_eq("the chart's legend gives the totals", ("ingested (logical): " + human(last["total_ingested"]), "stored: " + human(last["total_stored"])),
         (d.ids.get("legend-ingested", {}).get("text"), d.ids.get("legend-stored", {}).get("text")))

c = dom("dom_client.html")
own = J("snaps_a")
check_eq("a client token loads the page too", "ready", c.body.get("data-state"))
check_eq("it lists only its own snapshots", sorted(s["id"] for s in own),
         sorted(r["attrs"]["data-id"] for r in c.rows if "data-id" in r["attrs"]))
check("and no clients table (it needs an admin token)",
      not [r for r in c.rows if "data-client" in r["attrs"]] and "admin token" in c.ids["clients-note"]["text"])
check_eq("and not bob's backup in progress", [], [r for r in c.rows if r["attrs"].get("data-session")])

png = open(os.path.join(T, "shot.png"), "rb").read() if os.path.exists(os.path.join(T, "shot.png")) else b""
check("a screenshot was taken (PNG, 1280 wide)", png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1280 and len(png) > 20000, len(png))
PY
check "the screenshot is kept as an artifact" test -s "$ART/t0520-web.png"
check_eq "the server still serves" 200 "$(api_status "" GET /api/v1/health)"
finish
