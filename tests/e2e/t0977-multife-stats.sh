#!/usr/bin/env bash
# GET /api/v1/stats (and /metrics) shows the whole pool from any
# front-end: after a backup through A and another through B, both answer
# the same chunks, unique bytes and snapshots, and the chunks are the
# shared index's count (what A and B stored, summed, each counted once);
# a backup in progress on B counts in A's figures; the reply says how
# fresh ("pool": frontends, as_of). Damaged stats objects in the pool (not
# JSON, too large, another front-end's, wrong shape) are skipped with a
# log line: the route keeps answering the same figures; an object under
# stats/ that no front-end number names is not read at all. A repository of
# one front-end answers without "pool". Outside CI a machine without Ceph
# skips.
. "$(dirname "$0")/lib.sh"
ceph_up
NS=t0977
rados_() { rados -p "$CEPH_POOL" -N "$NS" "$@" 2>/dev/null; }

# the directory repository first: its reply is today's, no "pool"
repo_init "$T/dir"
DADM=$(token_add "$T/dir" admin --admin)
server_start "$T/dir" || exit 1
out=$(api "$DADM" GET /api/v1/stats | head -n -1)
check "a directory repository's stats have no \"pool\"" \
	python3 -c 'import json,sys; sys.exit("pool" in json.loads(sys.argv[1]))' "$out"
server_stop

RA=$T/fa RB=$T/fb
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
check "init --join adds front-end B" "$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null
ALICE=$(token_add "$RA" alice)
ADM=$(token_add "$RA" admin --admin)

fe_start "$RA" A
fe_start "$RB" B
tok_ok() { on "$1" api_status "$2" GET /api/v1/snapshots | grep -q '^200$'; }
check "the tokens reach B" poll_until 10 tok_ok B "$ALICE"

stats() { on "$1" api "$ADM" GET /api/v1/stats | head -n -1; }
# figs FE: "snapshots chunks bytes_unique bytes_logical" through FE
figs() {
	python3 -c 'import json,sys; j=json.loads(sys.argv[1])
print(j["snapshots"], j["chunks"], j["bytes_unique"], j["bytes_logical"])' "$(stats "$1")"
}
# the shared index's entries, counted in the pool itself
index_count() {
	local s n=0 k
	for s in $(rados_ ls | grep -E '^index/[0-9a-f]{2}$'); do
		k=$(rados_ listomapkeys "$s" | wc -l)
		n=$((n + k))
	done
	echo "$n"
}

# 1. a backup through A, another of different data through B
mkdir -p "$T/a" "$T/b"
prand a1 3000000 > "$T/a/a.bin"
prand b1 2000000 > "$T/b/b.bin"
prand shared 1000000 > "$T/a/s.bin"
cp "$T/a/s.bin" "$T/b/s.bin"
check "a backup through A" on A agent "$ALICE" backup --json "$T/a" >/dev/null
check "a backup through B" on B agent "$ALICE" backup --json "$T/b" >/dev/null
same_figs() { [ "$(figs A)" = "$(figs B)" ] && [ "$(figs A | cut -d' ' -f1)" = 2 ]; }
check "stats through A and B agree" poll_until 20 same_figs
echo "# A: $(figs A); B: $(figs B)"
IDX=$(index_count)
chunks_is() { [ "$(figs "$1" | cut -d' ' -f2)" = "$IDX" ]; }
check "A's chunks are the shared index's ($IDX): both front-ends' summed" poll_until 20 chunks_is A
check "and B's" poll_until 20 chunks_is B
check "more than the front-end's own share (A: $(figs A | cut -d' ' -f2) > 0)" test "$IDX" -gt 0
uniq_a=$(figs A | cut -d' ' -f3)
check "unique bytes cover both backups' data (6 MB, each byte once: $uniq_a)" \
	test "$uniq_a" -ge 6000000 -a "$uniq_a" -lt 6500000
out=$(stats A)
check_eq "\"pool\" counts two live front-ends" 2 "$(json_get "$out" pool.frontends)"
asof=$(json_get "$out" pool.as_of)
check "and says how fresh (as_of $asof, now $(date +%s))" test "$asof" -ge $(( $(date +%s) - 30 ))
mA=$(on A api "$ADM" GET /metrics | grep '^dedup_chunks ' | cut -d' ' -f2)
mB=$(on B api "$ADM" GET /metrics | grep '^dedup_chunks ' | cut -d' ' -f2)
check_eq "/metrics dedup_chunks through A is the pool's" "$IDX" "${mA%.*}"
check_eq "and through B" "$IDX" "${mB%.*}"
hA=$(on A api "$ADM" GET '/api/v1/history?days=3' | head -n -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["days"][-1]["total_ingested"])')
hB=$(on B api "$ADM" GET '/api/v1/history?days=3' | head -n -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["days"][-1]["total_ingested"])')
check "history through A and B agree ($hA)" test "$hA" = "$hB" -a "$hA" -ge 7000000

# 2. a backup in progress on B counts in A's figures
out=$(on B api "$ALICE" POST /api/v1/sessions -H 'Content-Type: application/json' -d '{"host":"h","paths":["/x"]}')
check "a session opens on B" test "$(tail -n1 <<<"$out")" = 201
SID=$(json_get "$(head -n -1 <<<"$out")" id)
busy_on() { [ "$(json_get "$(stats "$1")" backups_in_progress)" = "$2" ]; }
check "A counts B's backup in progress" poll_until 20 busy_on A 1
check "B too" busy_on B 1
on B api "$ALICE" POST "/api/v1/sessions/$SID" -H 'Content-Type: application/json' -d '{"state":"failed","error":"test"}' >/dev/null
check "and no longer once it ends" poll_until 20 busy_on A 0

# 3. damaged stats objects in the pool are skipped, the route answers.
# A front-end reads the publications of the numbers the pool has given
# (its "frontends" counter, 2 here), not a listing: the counter is moved
# to 12 (ten numbers given to front-ends that never started) so that
# stats/7 .. stats/10 are read; stats/x11 is no front-end's and is never
# read.
before=$(figs A)
check_eq "the pool has given 2 front-end numbers" 2 "$(rados_ get frontends - | tr -d '\n')"
printf '12\n' | rados_ put frontends -
printf 'not json {' | rados_ put stats/7 -
head -c 8000 /dev/zero | tr '\0' ' ' | rados_ put stats/8 -
printf '{"version":1,"frontend":3,"time":%s,"backups_in_progress":5,"local_chunks":1,"local_bytes":1}' "$(date +%s)" | rados_ put stats/9 -
printf '{"version":1,"frontend":10,"time":"now","backups_in_progress":-4}' | rados_ put stats/10 -
printf '{"version":1,"frontend":11,"time":%s,"backups_in_progress":2,"local_chunks":1,"local_bytes":1}' "$(date +%s)" | rados_ put stats/x11 -
logged() { grep -q "skipping the pool's stats object '$1'" "$T/server.log"; }
check "the damaged objects are logged (not JSON)" poll_until 20 logged stats/7
check "too large" poll_until 20 logged stats/8
check "another front-end's" poll_until 20 logged stats/9
check "wrong shape" poll_until 20 logged stats/10
check "and the one no front-end's number names is not read" not logged stats/x11
# past 64 numbers given (front-ends joined and retired over the years)
# the stats objects are found by listing the pool again: x11 is read
printf '100\n' | rados_ put frontends -
check "past 64 numbers given, stats/ is listed (the misnamed one logged)" poll_until 20 logged stats/x11
check_eq "the stats route still answers through A" 200 "$(on A api_status "$ADM" GET /api/v1/stats)"
check_eq "and through B" 200 "$(on B api_status "$ADM" GET /api/v1/stats)"
check_eq "with the same figures" "$before" "$(figs A)"
out=$(stats A)
check_eq "still two live front-ends" 2 "$(json_get "$out" pool.frontends)"
check_eq "none of their backups counted" 0 "$(json_get "$out" backups_in_progress)"
check "A is alive" kill -0 "$PID_A"
check "B is alive" kill -0 "$PID_B"

# 3b. the status page shows the pool member: front-ends and freshness
# (headless Chromium over the DevTools protocol, as t0870)
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
cat > "$T/pool.py" <<'PY'
import json, os, sys, time
sys.path.insert(0, os.environ["E2E_DIR"])
from cdp import Browser
chromium, url, out = sys.argv[1], sys.argv[2], sys.argv[3]
with Browser(chromium, 40, log=os.path.join(os.environ["T"], "chromium.log")) as b:
    s = b.page("Runtime.enable", "Page.enable")
    b.call("Page.navigate", {"url": url}, s)
    seen = None
    while time.time() < b.deadline:
        seen = b.js("""(() => { const c = document.getElementById("c-pool");
          if (!c || document.body.dataset.state !== "ready") return null;
          return {hidden: c.classList.contains("hidden") || c.offsetParent === null,
                  value: document.getElementById("s-pool").textContent,
                  sub: document.getElementById("s-pool-asof").textContent,
                  as_of: document.getElementById("s-pool-asof").dataset.asOf || ""}; })()""", s)
        if seen and seen["value"] not in ("", "-"):
            break
        time.sleep(0.1)
    json.dump(seen, open(out, "w"))
PY
if [ -n "$CHROMIUM" ]; then
	on A env T="$T" timeout 60 python3 "$T/pool.py" "$CHROMIUM" "$URL_A/#token=$ADM" "$T/pool.json" 2>>"$T/cdp.err"
	pycheck "$(stats A)" <<'PY'
api = json.loads(sys.argv[1])["pool"]
page = J("pool")
check("the status page shows the pool card", page is not None and not page["hidden"], page)
check_eq("with the live front-ends", str(api["frontends"]), page and page["value"])
check("and how fresh the figures are (UTC)", page is not None and
      re.search(r"as of \d\d:\d\d:\d\d UTC, index \d\d:\d\d:\d\d UTC", page["sub"]), page)
check("the same as_of as the API's", page is not None and page["as_of"] != "" and
      abs(int(page["as_of"]) - api["as_of"]) <= 10, (page, api))
PY
else
	not_ok "chromium is not installed (packaging/deps.sh installs it)"
fi

# 4. a front-end that stops is no longer counted; its object is removed
kill "$PID_B"; wait "$PID_B" 2>/dev/null
untrack_pid "$PID_B"
gone() { ! rados_ stat stats/1 >/dev/null 2>&1; }
check "B's stats object is removed when it stops" gone
one_fe() { [ "$(json_get "$(stats A)" pool.frontends)" = 1 ]; }
check "A counts one live front-end" poll_until 20 one_fe
check_eq "and the same pool figures" "$before" "$(figs A)"
finish
