# tests/e2e/lib.sh - shared helpers for the end-to-end scripts. Each script
# sources this, runs real binaries against a real dedup-server on a loopback
# port with a temporary repository, and ends with `finish`, which prints
# "N passed, N failed". Every wait is a bounded loop.
set -u
# This folder: the scripts' Python helpers (cdp.py) are imported from it.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export E2E_DIR
DD_BUILD=${DD_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
AGENT=$DD_BUILD/dedup-agent
SERVER=$DD_BUILD/dedup-server
T=$(mktemp -d "${TMPDIR:-/tmp}/dedup-e2e.XXXXXX")
_pass=0
_fail=0
SERVER_PID=
# Servers this script started, as PID:START (the process's start time in
# clock ticks): pid_max may be 32768, so a PID that exited is soon another
# process's, maybe another test's; only a PID whose start time still
# matches is signalled (track_pid, signal_tracked).
SERVER_PIDS=()
# The agent remembers its last snapshot per configuration (agent/parent.h):
# keep that state inside the test directory.
export DEDUP_STATE_DIR=$T/agent-state

# pid_start PID: its start time (field 22 of /proc/PID/stat), or nothing
# if it is gone.
pid_start() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	st=${st##*) }
	set -- $st
	echo "${20}"
}
# ours PID: PID is still a child of this script (a PID that exited may be
# another process's by now, another test's: never signal that one).
ours() {
	local st
	[ -n "${1:-}" ] || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	set -- $st
	[ "$2" = "$$" ]
}
# track_pid PID: remember a server started here (SERVER_PIDS).
track_pid() { SERVER_PIDS+=("$1:$(pid_start "$1")"); }
# untrack_pid PID: it was stopped and waited for.
untrack_pid() {
	local e keep=()
	for e in "${SERVER_PIDS[@]}"; do
		[ "${e%%:*}" = "$1" ] || keep+=("$e")
	done
	SERVER_PIDS=("${keep[@]}")
}
# signal_tracked SIG: sends SIG to every tracked server still the same
# process, then waits for those that are this shell's children.
signal_tracked() {
	local e p
	for e in "${SERVER_PIDS[@]}"; do
		p=${e%%:*}
		[ -n "${e#*:}" ] && [ "$(pid_start "$p")" = "${e#*:}" ] &&
			kill -"$1" "$p" 2>/dev/null
	done
	for e in "${SERVER_PIDS[@]}"; do
		wait "${e%%:*}" 2>/dev/null
	done
}

CEPH_DIRS=()
cleanup() {
	local d
	signal_tracked TERM
	for d in "${CEPH_DIRS[@]}"; do
		[ -e "$d/.dedup-ceph" ] && bash "$E2E_DIR/../ceph/down.sh" "$d"
	done
	# KEEP_T=1: keep the directory for a look after a failure
	[ -n "${KEEP_T:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

ok() { _pass=$((_pass + 1)); echo "ok - $1"; }
not_ok() { _fail=$((_fail + 1)); echo "not ok - $1"; }

# check "description" command...: passes when the command exits 0.
check() {
	local desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# check_eq "description" expected actual
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi
}

finish() {
	echo "$(basename "$0" .sh): $_pass passed, $_fail failed"
	[ "$_fail" = 0 ]
	exit $?
}

# json FILE-or-STRING FIELD: prints a top-level field with python3.
json_get() {
	python3 -c 'import json,sys; v=json.loads(sys.argv[1]); 
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1" "$2"
}

# repo_init DIR: a new repository.
repo_init() {
	"$SERVER" init --repo "$1" >/dev/null
}

# server_start REPO [extra serve args]: starts a server on a free loopback
# port; sets SERVER_PID, URL and CA.
server_start() {
	local repo=$1; shift
	local ready=$T/ready.$RANDOM
	rm -f "$ready"
	# No system-wide /etc/dedup/server.conf: a later --config wins.
	"$SERVER" serve --config /dev/null --repo "$repo" --listen 127.0.0.1:0 \
		--ready-file "$ready" "$@" 2>>"$T/server.log" &
	SERVER_PID=$!
	track_pid "$SERVER_PID"
	local i
	for i in $(seq 1 200); do
		[ -s "$ready" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [ ! -s "$ready" ]; then
		echo "server did not become ready; log:"; cat "$T/server.log"
		return 1
	fi
	URL=$(cat "$ready")
	CA=$repo/tls/cert.pem
	export URL CA
}

# server_stop [SIGNAL]: stops the server started last and waits for it.
server_stop() {
	local sig=${1:-TERM}
	[ -n "$SERVER_PID" ] || return 0
	kill -"$sig" "$SERVER_PID" 2>/dev/null
	local i
	for i in $(seq 1 200); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$SERVER_PID" 2>/dev/null
	SERVER_RC=$?
	untrack_pid "$SERVER_PID"
	SERVER_PID=
}

# token_add REPO NAME [--admin]
token_add() {
	"$SERVER" token add --repo "$1" "${@:3}" "$2"
}

# agent TOKEN args...: runs the agent against the current server.
agent() {
	local tok=$1; shift
	"$AGENT" --server "$URL" --token "$tok" --ca "$CA" "$@"
}

# api TOKEN METHOD PATH [curl args...]: prints the body, then the status on
# its own last line.
api() {
	local tok=$1 method=$2 path=$3; shift 3
	curl -sS --cacert "$CA" -X "$method" ${tok:+-H "Authorization: Bearer $tok"} \
		-w '\n%{http_code}' "$@" "$URL$path"
}
api_status() { api "$@" | tail -n1; }

# prand SEED BYTES: deterministic pseudo-random bytes (AES-CTR keystream).
# shim_preload NAME: builds the LD_PRELOAD shim the test wrote to
# $T/NAME.c into $T/NAME.so and sets PRELOAD to what LD_PRELOAD must be
# (under the sanitizers the ASan runtime must come first).
shim_preload() {
	${CC:-cc} -shared -fPIC -o "$T/$1.so" "$T/$1.c" -ldl ||
		{ echo "# cannot build the $1 shim"; exit 1; }
	PRELOAD=$T/$1.so
	if grep -qa __asan_init "$SERVER"; then
		PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $PRELOAD"
	fi
}

# age_tree DIR...: the modification times of DIR's files written in the
# last minute set a minute back (older ones, set on purpose, are kept),
# so that none is "racily clean" (its mtime or ctime within a few
# milliseconds of the moment a backup reads it, which the next backup
# then reads again: docs/OPERATIONS.md, "Incremental backups") and a
# test's next backup takes every unchanged file from its parent whatever
# the timing. The touch sets every ctime to now, so it then waits out the
# window: 20 ms, 2 s on a file system without sub-second times.
age_tree() {
	find "$@" -type f -newermt '-1 minute' -exec touch -m -d '-1 minute' {} +
	racy_wait "$@"
}

# racy_wait DIR...: waits out the racy window of files just written,
# copied (cp -a keeps the mtime, not the ctime) or touched, so that a
# backup right after does not mark them to be read again (and its catalog
# is the one the next backup writes): 20 ms, 2 s on a file system without
# sub-second times.
racy_wait() {
	local f
	f=$(find "$@" -type f -print -quit)
	if [ -n "$f" ] && stat -c %z "$f" | grep -q '\.000000000 '; then
		sleep 2.1
	else
		sleep 0.05
	fi
}

prand() {
	local key
	key=$(printf '%s' "$1" | sha256sum | cut -c1-32)
	head -c "$2" /dev/zero | openssl enc -aes-128-ctr -K "$key" -iv 00000000000000000000000000000000 -nosalt 2>/dev/null
}

# tree_manifest DIR: one line per entry: path, type, mode, mtime (ns),
# size, link target, content hash. Two trees with equal manifests are the
# same tree, metadata included.
tree_manifest() {
	python3 - "$1" <<'PY'
import hashlib, os, stat, sys
top = sys.argv[1]
out = []
for root, dirs, files in os.walk(top):
    for name in dirs + files:
        p = os.path.join(root, name)
        st = os.lstat(p)
        rel = os.path.relpath(p, top)
        link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else "-"
        size = st.st_size if not stat.S_ISDIR(st.st_mode) else "-"
        h = "-"
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                h = hashlib.file_digest(f, "sha256").hexdigest()[:16]
        out.append("%r\t%o\t%d\t%s\t%r\t%s" % (rel, st.st_mode, st.st_mtime_ns, size, link, h))
for line in sorted(out):
    print(line)
PY
}

# make_mixed_tree DIR [big_mb]: text, binary, random, empty files, a big
# file, symlinks, names with spaces and UTF-8, and many small files.
make_mixed_tree() {
	local d=$1 big=${2:-${DD_TEST_BIG_MB:-200}} small=${DD_TEST_SMALL_FILES:-10000}
	mkdir -p "$d/src/deep/er/still" "$d/bin" "$d/empty dir" "$d/small" "$d/ünïcødé dir"
	local i
	for i in $(seq 1 200); do echo "line $i: the quick brown fox jumps over the lazy dog"; done > "$d/src/notes.txt"
	seq 1 200000 > "$d/src/numbers.txt"
	cp "$d/src/notes.txt" "$d/src/deep/er/still/copy of notes.txt"
	prand bin 3000000 > "$d/bin/random.bin"
	head -c 5000000 /dev/zero > "$d/bin/zeros.bin"
	{ prand a 700000; seq 1 100000; prand b 900000; } > "$d/bin/mixed.bin"
	prand big "$((big * 1024 * 1024))" > "$d/big file.img"
	: > "$d/empty"
	: > "$d/src/also empty"
	echo "héllo wörld ✓" > "$d/ünïcødé dir/名前.txt"
	ln -s src/notes.txt "$d/link-to-notes"
	ln -s /nonexistent/target "$d/dangling link"
	ln -s "ünïcødé dir" "$d/dirlink"
	chmod 0600 "$d/src/notes.txt"
	chmod 0755 "$d/bin/random.bin"
	chmod 0444 "$d/bin/zeros.bin"
	chmod 0700 "$d/src/deep"
	(cd "$d/small" && for i in $(seq 1 "$small"); do
		printf 'small file %d\n' "$i" > "f$i"
	done)
	touch -h -d '2001-02-03 04:05:06.123456789' "$d/link-to-notes"
	touch -d '2010-01-01 00:00:00.5' "$d/src/numbers.txt"
	touch -d '1999-12-31 23:59:59.999999999' "$d/empty dir"
}

# not command...: succeeds when the command fails (for check).
not() { ! "$@" 2>/dev/null; }

# le32 N: four little-endian bytes.
le32() {
	printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"
}
# hexbytes HEX: the raw bytes of a hex string.
hexbytes() { printf '%s' "$1" | xxd -r -p; }

# bundle_raw ID_HEX FILE: a one-record bundle carrying FILE uncompressed
# under the claimed id.
bundle_raw() {
	local n
	n=$(stat -c %s "$2")
	printf 'DDBN'; le32 1; le32 1
	hexbytes "$1"; le32 0; le32 "$n"; le32 "$n"
	cat "$2"
}

# save NAME TOKEN METHOD PATH [curl args...]: one API request; the body goes
# to $T/NAME.json and the status to $T/NAME.status (for pycheck).
# lt A B / ge A B: numeric comparisons of decimals (seconds), for check.
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

save() {
	local name=$1; shift
	api "$@" > "$T/$name.raw"
	tail -n1 "$T/$name.raw" > "$T/$name.status"
	sed '$d' "$T/$name.raw" > "$T/$name.json"
}

# pycheck [ARGS...] <<'PY' ... PY: many checks in one Python process
# (starting Python is slow). The code calls check(desc, cond[, got]) and
# check_eq(desc, want, got); J(name) parses $T/NAME.json, S(name) is the
# status saved by `save`; ARGS are sys.argv[1:]. A crash counts as a failure.
_PYCHECK_PRELUDE='
import json, os, re, sys
T = os.environ["T"]
def J(name):
    with open(os.path.join(T, name + ".json"), encoding="utf-8") as f:
        return json.load(f)
def S(name):
    with open(os.path.join(T, name + ".status")) as f:
        return int(f.read().strip() or 0)
def check(desc, cond, got=None):
    extra = "" if cond or got is None else " (got %r)" % (got,)
    print(("ok - " if cond else "not ok - ") + desc + extra, flush=True)
def check_eq(desc, want, got):
    check(desc, want == got, "%r, expected %r" % (got, want))
'
pycheck() {
	local prog line
	prog=$(cat)
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) not_ok "${line#not ok - }" ;;
		"pycheck-exit 0") ;;
		"pycheck-exit "*) not_ok "python checks crashed (${line#pycheck-exit })" ;;
		*) echo "$line" ;;
		esac
	done < <(T="$T" python3 -c "$_PYCHECK_PRELUDE$prog" "$@" 2>&1; echo "pycheck-exit $?")
}

# ceph_up: a throw-away single-node Ceph under $T/ceph for this script
# (tests/ceph/up.sh; cleanup takes it down), its env sourced (CEPH_CONF,
# CEPH_POOL, ...) and DEDUP_BACKEND_DIR set to load the RADOS module. A
# missing Ceph ends the script as need_ceph says; a cluster that does not
# come up is a failure.
ceph_up() {
	local c=$T/ceph
	need_ceph
	CEPH_DIRS+=("$c")
	if ! bash "$E2E_DIR/../ceph/up.sh" "$c" >"$T/up.out" 2>"$T/up.err"; then
		not_ok "a single-node Ceph comes up"; cat "$T/up.err"; finish
	fi
	# shellcheck disable=SC1091
	. "$c/env"
	export DEDUP_BACKEND_DIR=$DD_BUILD
}

# poll_until SECONDS CMD...: runs CMD (output discarded) every 0.2 s until
# it succeeds (status 0) or SECONDS have passed (status 1): a deadline,
# however slow each try is.
poll_until() {
	local end=$(( SECONDS + $1 )); shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.2
	done
}

# Several front-ends of one pool (the multi-front-end scripts).
# fe_start REPO NAME: server_start on REPO, its URL, CA and PID kept as
# URL_NAME, CA_NAME and PID_NAME.
fe_start() {
	server_start "$1" || exit 1
	eval "URL_$2=\$URL CA_$2=\$CA PID_$2=\$SERVER_PID"
}
# on NAME CMD...: runs CMD against front-end NAME (its URL and CA).
on() { local f=$1; shift; URL=$(eval echo "\$URL_$f") CA=$(eval echo "\$CA_$f") "$@"; }

# need_ceph: Ceph's daemons and tools and the RADOS module, or the script
# ends here: under CI (CI set) as a failure, elsewhere as a skip.
need_ceph() {
	local missing= tool
	for tool in ceph-mon ceph-mgr ceph-osd ceph rados monmaptool; do
		command -v "$tool" >/dev/null || missing="$missing $tool"
	done
	[ -f "$DD_BUILD/dedup-backend-rados.so" ] ||
		missing="$missing $DD_BUILD/dedup-backend-rados.so (make builds it where librados-dev is installed)"
	[ -z "$missing" ] && return 0
	if [ -n "${CI:-}" ]; then
		not_ok "Ceph is installed (missing:$missing; packaging/deps.sh installs it)"
		finish
	fi
	echo "skip: no Ceph here (missing:$missing); apt-get install ceph-mon ceph-mgr ceph-osd librados-dev"
	finish
}
