#!/usr/bin/env bash
# test: quiet (counts a front-end's pool listings over its ticks)
# A front-end's tick (every 2 s) does not list the pool: a listing is a
# pass over every object of the pool (every pack, shard and manifest of
# every repository in it). It reads the other front-ends' stats objects
# by the numbers the pool has given, and lists the manifests only when
# the pool's "snapshots-changed" object grew (each manifest put or
# removed adds a byte; docs/STORAGE.md, "Listings"). Front-end B runs
# with an LD_PRELOAD shim that counts its listings:
#  1. idle over several ticks, B lists nothing;
#  2. a backup through A: B lists, and shows the snapshot;
#  3. the snapshot removed through A: B lists again and drops it;
#  4. B's figures still count A (the stats objects read by number);
#  5. its stats routes count the packs (a listing) at most every 30 s.
# Outside CI a machine without Ceph skips.
. "$(dirname "$0")/lib.sh"
ceph_up
NS=t1006
rados_() { rados -p "$CEPH_POOL" -N "$NS" "$@" 2>/dev/null; }

RA=$T/fa RB=$T/fb
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
check "init --join adds front-end B" "$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null
ALICE=$(token_add "$RA" alice)
ADM=$(token_add "$RA" admin --admin)

# Each listing B opens adds a line to $LIST_LOG. The module is loaded
# with RTLD_LOCAL, so librados is found by name, not by RTLD_NEXT.
cat > "$T/listcount.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
typedef void *rados_ioctx_t;
typedef void *rados_list_ctx_t;

int rados_nobjects_list_open(rados_ioctx_t io, rados_list_ctx_t *ctx)
{
	static int (*fn)(rados_ioctx_t, rados_list_ctx_t *);
	const char *f = getenv("LIST_LOG");
	int fd;

	if (!fn) {
		void *h = dlopen("librados.so.2", RTLD_LAZY | RTLD_NOLOAD);

		fn = dlsym(h ? h : RTLD_NEXT, "rados_nobjects_list_open");
		if (!fn)
			abort();
	}
	if (f && (fd = open(f, O_WRONLY | O_APPEND | O_CREAT, 0600)) >= 0) {
		if (write(fd, "list\n", 5) != 5)
			abort();
		close(fd);
	}
	return fn(io, ctx);
}
C
shim_preload listcount
fe_start "$RA" A
LIST_LOG=$T/lists LD_PRELOAD=$PRELOAD fe_start "$RB" B
tok_ok() { on "$1" api_status "$2" GET /api/v1/snapshots | grep -q '^200$'; }
check "the tokens reach B" poll_until 20 tok_ok B "$ALICE"
lists() { grep -c . "$T/lists" 2>/dev/null || echo 0; }
# the time B's tick last published (its stats object, rewritten a tick)
b_tick() { rados_ get stats/1 - | python3 -c 'import json,sys; print(json.load(sys.stdin)["time"])'; }
ticked_since() { [ "$(b_tick 2>/dev/null || echo 0)" -ge "$1" ]; }

# 1. idle: B's first tick lists the manifests once; then nothing
check "B's first tick ran" poll_until 20 ticked_since 1
listed() { [ "$(lists)" -ge 1 ]; }
check "B listed the pool's manifests at its start" poll_until 20 listed
t0=$(b_tick)
poll_until 10 ticked_since $((t0 + 1))
c0=$(lists)
t1=$(b_tick)
check "B ticks on (three more ticks, 6 s)" poll_until 30 ticked_since $((t1 + 6))
check_eq "and lists nothing while nothing changes" "$c0" "$(lists)"

# 2. a backup through A: B lists, and shows it
mkdir -p "$T/d"
prand one 200000 > "$T/d/f.bin"
printf 'one small file of t1006\n' > "$T/d/small.txt"
ID=$(json_get "$(on A agent "$ALICE" backup --json "$T/d")" snapshot_id)
check "a backup through A" test -n "$ID"
check "the pool marks its manifests changed" rados_ stat snapshots-changed
# b_has ID / b_lacks ID: B's list (answered 200) has ID, or not
b_list() { b_out=$(on B api "$ADM" GET /api/v1/snapshots) && [ "$(tail -n1 <<<"$b_out")" = 200 ]; }
b_has() { b_list && grep -q "$1" <<<"$b_out"; }
b_lacks() { b_list && ! grep -q "$1" <<<"$b_out"; }
check "B shows A's snapshot" poll_until 20 b_has "$ID"
check "after listing the pool" test "$(lists)" -gt "$c0"
# A fetch through B naming the small file's chunk twice: B's index (a
# cache of the pool's) does not hold it yet, so both places are answered
# from the pool's shared index (the second was answered unknown before).
python3 -c 'import hashlib,sys; sys.stdout.buffer.write(hashlib.sha256(b"one small file of t1006\n").digest() * 2)' > "$T/twice.bin"
check_eq "B fetches a chunk stored through A, named twice" 200 \
	"$(on B api_status "$ALICE" POST /api/v1/chunks/fetch --data-binary @"$T/twice.bin" -o "$T/twice.out")"
check_eq "with a record for each" 2 "$(python3 -c 'import struct,sys; print(struct.unpack("<I", open(sys.argv[1],"rb").read()[8:12])[0])' "$T/twice.out")"

# 3. removed through A (old enough to be dropped: FRONTENDS_SNAPSHOT_GRACE_SEC)
c1=$(lists)
check_eq "A removes it" 200 "$(on A api_status "$ADM" DELETE "/api/v1/snapshots/$ID")"
check "B drops it" poll_until 30 b_lacks "$ID"
check "after listing the pool again" test "$(lists)" -gt "$c1"

# 4. B's figures still count A, read by number
pool_fe() { [ "$(json_get "$(on B api "$ADM" GET /api/v1/stats | head -n -1)" pool.frontends)" = 2 ]; }
check "B counts two live front-ends" poll_until 20 pool_fe

# 5. GET /api/v1/stats and /metrics count the packs (a listing and a stat
# a pack) at most every 30 s on RADOS (STORE_USAGE_RECENT_SEC), with
# the right figures
figure() { json_get "$(on B api "$ADM" GET /api/v1/stats | head -n -1)" "$1"; }
npacks=$(figure packs)
check_eq "B's stats count the pool's packs" "$(rados_ ls | grep -c '^packs/')" "$npacks"
c2=$(lists)
check_eq "again" "$npacks" "$(figure packs)"
check "and /metrics answers" on B api "$ADM" GET /metrics -o /dev/null
check_eq "without listing the pool again" "$c2" "$(lists)"
check "A is alive" kill -0 "$PID_A"
check "B is alive" kill -0 "$PID_B"
finish
