#!/usr/bin/env bash
# The README's first command: install what is needed, build, start a server
# on localhost with a local repository, and back a sample directory up into
# it. Prints the snapshot id, the repository stats and the status-page URL.
#   bash packaging/demo.sh [PATH-TO-BACK-UP...]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
# By default the project's own sources (not the checkout, which holds the
# demo repository itself).
if [ $# -gt 0 ]; then samples=("$@"); else
	samples=("$top/agent" "$top/server" "$top/shared" "$top/web" "$top/docs"); fi
work=${DEDUP_DEMO_DIR:-$top/demo}
listen=${DEDUP_DEMO_LISTEN:-127.0.0.1:8443}

bash packaging/deps.sh
make -j"$(nproc)"

mkdir -p "$work"
if [ ! -e "$work/repo/config.json" ]; then
	build/dedup-server init --repo "$work/repo"
	build/dedup-server token add --repo "$work/repo" demo > "$work/demo.token"
	chmod 600 "$work/demo.token"
fi
if [ -s "$work/server.pid" ] && kill -0 "$(cat "$work/server.pid")" 2>/dev/null; then
	echo "server already running (pid $(cat "$work/server.pid"))"
else
	rm -f "$work/ready"
	nohup build/dedup-server serve --repo "$work/repo" --listen "$listen" \
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

echo "== backing up ${samples[*]}"
id=$(build/dedup-agent --config "$work/agent.conf" backup "${samples[@]}")
echo "snapshot id: $id"
echo "== repository stats"
build/dedup-agent --config "$work/agent.conf" stats
echo "== status page: $url/  (token in $work/demo.token)"
echo "agent config: $work/agent.conf; stop the server with: kill $(cat "$work/server.pid")"
