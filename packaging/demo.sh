#!/usr/bin/env bash
# The README's first command: install what is needed, build, start a server
# on localhost with a local repository, and back a sample directory up into
# it. Prints the snapshot id, the client's stats and the status-page URL.
#   bash packaging/demo.sh [PATH-TO-BACK-UP...]
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
top=$PWD
# By default the project's own sources (not the checkout, which holds the
# demo repository itself); paths given count from where the script was run.
if [ $# -gt 0 ]; then
	samples=()
	for p in "$@"; do samples+=("$(cd "$here" && realpath -m -- "$p")"); done
else
	samples=("$top/agent" "$top/server" "$top/shared" "$top/web" "$top/docs"); fi
work=${DEDUP_DEMO_DIR:-$top/demo}
listen=${DEDUP_DEMO_LISTEN:-127.0.0.1:8443}

# DEDUP_DEMO_PREBUILT=1 (the test of this script): use the binaries in
# $O (default build/) as they are.
bin=${O:-build}
case "$bin" in /*) ;; *) bin=$top/$bin ;; esac
if [ "${DEDUP_DEMO_PREBUILT:-}" != 1 ]; then
	bash packaging/deps.sh
	make -j"$(nproc)"
fi

mkdir -p "$work"
if [ ! -e "$work/repo/config.json" ]; then
	"$bin"/dedup-server init --repo "$work/repo"
	"$bin"/dedup-server token add --repo "$work/repo" demo > "$work/demo.token"
	chmod 600 "$work/demo.token"
fi
if [ -s "$work/server.pid" ] && kill -0 "$(cat "$work/server.pid")" 2>/dev/null; then
	echo "server already running (pid $(cat "$work/server.pid"))"
else
	rm -f "$work/ready"
	nohup "$bin"/dedup-server serve --repo "$work/repo" --listen "$listen" \
		--ready-file "$work/ready" > "$work/server.log" 2>&1 &
	echo $! > "$work/server.pid"
	for _ in $(seq 1 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
	[ -s "$work/ready" ] || { cat "$work/server.log"; exit 1; }
fi
url=$(cat "$work/ready")
cat > "$work/agent.conf" <<CONF
server = $url
token = $(cat "$work/demo.token")
ca = $work/repo/tls/cert.pem
CONF
chmod 600 "$work/agent.conf"

# rel PATH: PATH as the user can type it from where they ran this script.
rel() {
	case "$1" in
	"$here"/*) printf '%s\n' "${1#"$here"/}" ;;
	*) printf '%s\n' "$1" ;;
	esac
}
agent="$(rel "$bin/dedup-agent") --config $(rel "$work/agent.conf")"

echo "== backing up ${samples[*]}"
id=$("$bin"/dedup-agent --config "$work/agent.conf" backup "${samples[@]}")
echo "snapshot id: $id"
echo "== stats (the demo client's own figures)"
"$bin"/dedup-agent --config "$work/agent.conf" stats
echo "== status page: $url/"
echo "   (sign in with an admin token: $(rel "$bin/dedup-server") token add --repo $(rel "$work/repo") --admin NAME)"
cat <<NEXT
== what to run next (from here, as written)
   $agent snapshots
   $agent restore latest --target /tmp/dedup-restore
        (each file lands under its full original path: ${samples[0]}
         is restored as /tmp/dedup-restore${samples[0]})
   $agent stats
   bash $(rel "$top/packaging/demo.sh")    (again: an incremental backup)
   kill $(cat "$work/server.pid")    (stops the server)
NEXT
