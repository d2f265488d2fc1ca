#!/usr/bin/env bash
# test: quiet (a Ceph cluster whose OSDs it pauses)
# Storage that does not answer for a while (docs/OPERATIONS.md, "When the
# storage does not answer"): a RADOS operation past its timeout is a 503
# with Retry-After, never a 500, a missing chunk or a damaged one; the
# agent waits and asks again, so a backup or a restore that meets the
# outage finishes once the cluster serves again, and nothing is lost.
#  1. a snapshot create whose reference check cannot ask the pool (its
#     omap reads fail, through an LD_PRELOAD shim on front-end B) is a 503
#     with Retry-After, not "references missing chunk" (409, which sends
#     the agent to read and upload everything again); the same create
#     succeeds once the pool answers;
#     A fetch whose pack read times out is a 503 after that one read. A
#     create whose manifest put timed out but was done is a 503, and its
#     manifest is removed from the pool (never listed), across a restart;
#  2. a backup started while the OSDs are paused: the server answers 503,
#     the agent waits, and the backup succeeds once they serve again;
#  3. the same for a restore;
#  4. DEDUP_AGENT_WAIT=0: no waiting, the backup fails cleanly;
#  5. check --read-data of both front-ends is clean.
# The first 503 of 2 and 3 must come within 25 s: ceph.conf's 5 s op
# timeout, honoured, and one wait per request, not a wait per record.
# Outside CI a machine without Ceph skips.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ceph_up
C=$CEPH_DIR
# An operation the paused OSDs cannot serve fails after 5 s: ceph.conf
# says so, and the server honours it (it sets its own 30 s only where
# the file and CEPH_ARGS say nothing; it used to set 30 s over both).
sed 's/^rados osd op timeout = .*/rados osd op timeout = 5/' "$CEPH_CONF" > "$T/ceph.conf"
check "the servers' ceph.conf sets a 5 s op timeout" grep -qx "rados osd op timeout = 5" "$T/ceph.conf"
export CEPH_CONF=$T/ceph.conf
NS=t1004

RA=$T/fa RB=$T/fb
check "init --store makes front-end A" "$SERVER" init --repo "$RA" --store "rados:$CEPH_POOL/$NS" --config /dev/null
check "init --join adds front-end B" "$SERVER" init --repo "$RB" --store "rados:$CEPH_POOL/$NS" --join --config /dev/null
PAT=$(token_add "$RA" pat)
DORA=$(token_add "$RA" dora --domain d)

# B's reads of the shared index (the "index/" objects: lookups, grants)
# end with ETIMEDOUT, as when the OSDs do not answer, while $T/omap-fail
# exists: the read is sent, and its completion's result is replaced. The
# module is loaded with RTLD_LOCAL, so librados is found by name, not by
# RTLD_NEXT.
cat > "$T/omapfail.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
typedef void *rados_read_op_t;
typedef void *rados_ioctx_t;
typedef void *rados_completion_t;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rados_completion_t failing[256];

/* The result of completion c will be ETIMEDOUT. */
static void fail_next(rados_completion_t c)
{
	pthread_mutex_lock(&mu);
	for (int i = 0; i < 256; i++)
		if (!failing[i]) {
			failing[i] = c;
			break;
		}
	pthread_mutex_unlock(&mu);
}

static void *real(const char *name)
{
	void *h = dlopen("librados.so.2", RTLD_LAZY | RTLD_NOLOAD);
	void *f = dlsym(h ? h : RTLD_NEXT, name);

	if (!f)
		abort();
	return f;
}

int rados_aio_read_op_operate(rados_read_op_t op, rados_ioctx_t io,
			      rados_completion_t c, const char *oid, int flags)
{
	static int (*fn)(rados_read_op_t, rados_ioctx_t, rados_completion_t,
			 const char *, int);
	const char *f = getenv("OMAP_FAIL_FILE");

	if (!fn)
		fn = real("rados_aio_read_op_operate");
	if (f && access(f, F_OK) == 0 && strncmp(oid, "index/", 6) == 0)
		fail_next(c);
	return fn(op, io, c, oid, flags);
}

/* Reads of pack objects fail alike while $PACK_FAIL_FILE exists; each
 * adds a line to it. */
int rados_aio_read(rados_ioctx_t io, const char *oid, rados_completion_t c,
		   char *buf, size_t len, unsigned long long off)
{
	static int (*fn)(rados_ioctx_t, const char *, rados_completion_t,
			 char *, size_t, unsigned long long);
	const char *f = getenv("PACK_FAIL_FILE");
	int fd;

	if (!fn)
		fn = real("rados_aio_read");
	if (f && strncmp(oid, "packs/", 6) == 0 &&
	    (fd = open(f, O_WRONLY | O_APPEND)) >= 0) {
		fail_next(c);
		if (write(fd, "read\n", 5) != 5)
			abort();
		close(fd);
	}
	return fn(io, oid, c, buf, len, off);
}

/* While $SNAP_FAIL_FILE exists, writes of "snapshots/" objects are done
 * but answered ETIMEDOUT, and their removals fail so (nothing removed). */
static int snap_failing(const char *oid)
{
	const char *f = getenv("SNAP_FAIL_FILE");

	return f && access(f, F_OK) == 0 && strncmp(oid, "snapshots/", 10) == 0;
}

/* While $SNAP_LATE_FILE exists, a put of a "snapshots/" object is
 * answered ETIMEDOUT at once and done only 3 s later (a write the pool
 * applies after its client gave up): the op runs on an object of its own
 * ("t1004-late/N", removed after) so that its completion comes, and a
 * thread writes the bytes the op's write_full was given. */
static struct late { void *op; char *buf; size_t len; } lates[64];

int rados_write_op_write_full(void *op, const char *buf, size_t len)
{
	static int (*fn)(void *, const char *, size_t);
	const char *f = getenv("SNAP_LATE_FILE");

	if (!fn)
		fn = real("rados_write_op_write_full");
	if (f && access(f, F_OK) == 0) {
		pthread_mutex_lock(&mu);
		for (int i = 0; i < 64; i++)
			if (!lates[i].op && (lates[i].buf = malloc(len))) {
				memcpy(lates[i].buf, buf, len);
				lates[i].len = len;
				lates[i].op = op;
				break;
			}
		pthread_mutex_unlock(&mu);
	}
	return fn(op, buf, len);
}

struct late_write { rados_ioctx_t io; char oid[128], dummy[64]; char *buf;
		    size_t len; };

static void *late_main(void *arg)
{
	struct late_write *w = arg;
	int (*wfull)(rados_ioctx_t, const char *, const char *, size_t) =
		real("rados_write_full");
	int (*rm)(rados_ioctx_t, const char *) = real("rados_remove");

	sleep(3);
	if (wfull(w->io, w->oid, w->buf, w->len) < 0)
		abort();
	rm(w->io, w->dummy);
	free(w->buf);
	free(w);
	return NULL;
}

/* The bytes recorded for op (removed from the table), or NULL. */
static struct late late_take(void *op)
{
	struct late l = { 0 };

	pthread_mutex_lock(&mu);
	for (int i = 0; i < 64; i++)
		if (lates[i].op == op) {
			l = lates[i];
			lates[i].op = NULL;
		}
	pthread_mutex_unlock(&mu);
	return l;
}

int rados_aio_write_op_operate(void *op, rados_ioctx_t io,
			       rados_completion_t c, const char *oid,
			       void *mtime, int flags)
{
	static int (*fn)(void *, rados_ioctx_t, rados_completion_t,
			 const char *, void *, int);
	static unsigned n;
	struct late l = late_take(op);
	const char *f = getenv("SNAP_LATE_FILE");
	struct late_write *w;
	pthread_t t;

	if (!fn)
		fn = real("rados_aio_write_op_operate");
	if (l.op && f && access(f, F_OK) == 0 &&
	    strncmp(oid, "snapshots/", 10) == 0 &&
	    (w = calloc(1, sizeof(*w)))) {
		w->io = io;
		w->buf = l.buf;
		w->len = l.len;
		snprintf(w->oid, sizeof(w->oid), "%s", oid);
		snprintf(w->dummy, sizeof(w->dummy), "t1004-late/%u",
			 __atomic_add_fetch(&n, 1, __ATOMIC_SEQ_CST));
		if (pthread_create(&t, NULL, late_main, w) != 0)
			abort();
		pthread_detach(t);
		fail_next(c);
		return fn(op, io, c, w->dummy, mtime, flags);
	}
	free(l.buf);
	if (snap_failing(oid))
		fail_next(c);
	return fn(op, io, c, oid, mtime, flags);
}

int rados_remove(rados_ioctx_t io, const char *oid)
{
	static int (*fn)(rados_ioctx_t, const char *);

	if (!fn)
		fn = real("rados_remove");
	return snap_failing(oid) ? -ETIMEDOUT : fn(io, oid);
}

int rados_aio_get_return_value(rados_completion_t c)
{
	static int (*fn)(rados_completion_t);
	int hit = 0;

	if (!fn)
		fn = real("rados_aio_get_return_value");
	pthread_mutex_lock(&mu);
	for (int i = 0; i < 256; i++)
		if (failing[i] == c) {
			failing[i] = NULL;
			hit = 1;
		}
	pthread_mutex_unlock(&mu);
	return hit ? -ETIMEDOUT : fn(c);
}
C
shim_preload omapfail
fe_start "$RA" A
# (a failed create's note is kept 8 s after it was made, not 10 minutes)
start_b() {
	OMAP_FAIL_FILE=$T/omap-fail PACK_FAIL_FILE=$T/pack-fail \
		SNAP_FAIL_FILE=$T/snap-fail SNAP_LATE_FILE=$T/snap-late \
		DEDUP_TEST_UNSURE_KEEP_SEC=8 \
		LD_PRELOAD=$PRELOAD fe_start "$RB" B
}
start_b

tok_ok() { on "$1" api_status "$2" GET /api/v1/snapshots | grep -q '^200$'; }
check "B is up" kill -0 "$PID_B"
check "pat's token (made through A) works on B" poll_until 20 tok_ok B "$PAT"
check "and dora's" poll_until 20 tok_ok B "$DORA"

# 1. three files' chunks and a catalog (tests/e2e/handmade.py): pat
# uploads them through B (B's own index then holds them, for the default
# domain), dora through A (A publishes her domain's memberships in the
# pool), and the catalog through B too (her domain holds it there). Her
# create through B must ask the pool whether domain d holds the file
# chunks.
cat > "$T/mk.py" <<'PY'
import hashlib, os, struct, sys, time
out = sys.argv[1]
cat = bytearray(b"DDCT" + struct.pack("<I", 2))
chunks = {}
now = int(time.time())
for i in range(3):
    data = b"file %d of t1004\n" % i
    cid = hashlib.sha256(data).digest()
    chunks[cid] = data
    path = b"f%d" % i
    cat += struct.pack("<BBHIIIqIqIQQQIIIQ", 1, 0, 0, 0o644, 0, 0, now, 0,
                       now, 0, 1, 1, len(data), len(path), 0, 0, 1)
    cat += path + cid + struct.pack("<I", len(data))
sys.path.insert(0, os.environ["E2E_DIR"])
from handmade import write_snapshot
write_snapshot(out, chunks, cat, host="h", paths=["/c"])
write_snapshot(os.path.join(out, "cat"), {}, cat, host="h", paths=["/c"])
PY
mkdir -p "$T/hm/cat"
python3 "$T/mk.py" "$T/hm"
upload() { on "$1" api_status "$2" POST /api/v1/chunks --data-binary @"$T/hm/$3" -H 'Content-Type: application/octet-stream'; }
check_eq "pat uploads the chunks and the catalog through B" 200 "$(upload B "$PAT" bundle.bin)"
check_eq "dora uploads them through A" 200 "$(upload A "$DORA" bundle.bin)"
check_eq "and the catalog through B" 200 "$(upload B "$DORA" cat/bundle.bin)"
create() {
	URL=$URL_B CA=$CA_B api "$DORA" POST /api/v1/snapshots --data-binary @"$T/hm/snap.json" \
		-H 'Content-Type: application/json' -D "$T/create.hdr" > "$T/create.out"
	tail -n1 "$T/create.out"
}
touch "$T/omap-fail"
check_eq "with B's pool reads failing, dora's create through B is a 503" 503 "$(create)"
check "which asks the agent to come back (Retry-After)" grep -qi '^retry-after: [0-9]' "$T/create.hdr"
check "and says the storage is unavailable" grep -q "storage unavailable" "$T/create.out"
check "not a missing chunk" not grep -q "missing chunk" "$T/create.out"
rm -f "$T/omap-fail"
check_eq "once the pool answers, the same create succeeds" 201 "$(create)"
check_eq "dora has one snapshot" 1 "$(on B api "$DORA" GET /api/v1/snapshots | sed '$d' | python3 -c 'import json,sys; v=json.load(sys.stdin); print(len(v) if isinstance(v, list) else v)')"

# 1b. a fetch through B whose pack read times out (the shim again, for
# reads of the "packs/" objects while $T/pack-fail exists; each read adds
# a line to it) is a 503 after that one read: the records are not read
# once more one by one, which waited a second op timeout per request
python3 -c 'import hashlib,sys; sys.stdout.buffer.write(hashlib.sha256(b"file 0 of t1004\n").digest())' > "$T/id0"
check_eq "pat fetches his chunk through B" 200 "$(on B api_status "$PAT" POST /api/v1/chunks/fetch --data-binary @"$T/id0" -o /dev/null)"
: > "$T/pack-fail"
check_eq "with B's pack reads timing out, the fetch is a 503" 503 "$(on B api_status "$PAT" POST /api/v1/chunks/fetch --data-binary @"$T/id0" -o /dev/null)"
check_eq "after one pack read" 1 "$(grep -c . "$T/pack-fail")"
rm -f "$T/pack-fail"
check_eq "once they answer, the fetch works" 200 "$(on B api_status "$PAT" POST /api/v1/chunks/fetch --data-binary @"$T/id0" -o /dev/null)"

# 1c. a create whose manifest put times out but was done (the shim: B's
# writes of "snapshots/" objects are answered ETIMEDOUT, and its removals
# of them fail so, while $T/snap-fail exists) is a 503; the manifest the
# pool holds all the same is noted (B's snapshots/unsure), never listed,
# also after a restart of B, and removed from the pool once it answers
rados_() { rados -p "$CEPH_POOL" -N "$NS" "$@" 2>/dev/null; }
pool_snaps() { rados_ ls | grep -c '^snapshots/'; }
dora_count() { on B api "$DORA" GET /api/v1/snapshots | sed '$d' | python3 -c 'import json,sys; v=json.load(sys.stdin); print(len(v) if isinstance(v, list) else v)'; }
n0=$(pool_snaps)
touch "$T/snap-fail"
check_eq "with B's manifest writes timing out, dora's create through B is a 503" 503 "$(create)"
check_eq "the pool holds its manifest all the same" $((n0 + 1)) "$(pool_snaps)"
check "B notes it for removal" test -s "$RB/snapshots/unsure"
kill "$PID_B"; wait "$PID_B"
sweeps() { grep -c "cannot remove from the pool the manifests of creates that failed" "$T/server.log"; }
s0=$(sweeps)
start_b
check "after a restart of B, the note stays" test -s "$RB/snapshots/unsure"
# a tick tried to remove it; then B published its stats (the last step
# of a tick) after that: that tick's listing is done
more_sweeps() { [ "$(sweeps)" -gt "$s0" ]; }
check "B's tick tries to remove it" poll_until 20 more_sweeps
t_seen=$(date +%s)
b_pub() { rados_ get stats/1 - | python3 -c 'import json,sys; print(json.load(sys.stdin)["time"])'; }
pub_after() { [ "$(b_pub 2>/dev/null || echo 0)" -gt "$t_seen" ]; }
check "and ends" poll_until 20 pub_after
check_eq "and does not list it" 1 "$(dora_count)"
rm -f "$T/snap-fail"
snaps_back() { [ "$(pool_snaps)" = "$n0" ]; }
check "once the pool answers, B removes it" poll_until 20 snaps_back
check "and forgets the note (8 s after it was noted)" poll_until 20 test ! -e "$RB/snapshots/unsure"
check "saying so" grep -q "had failed, but the pool held its manifest: removed" "$T/server.log"
check_eq "the same create then succeeds" 201 "$(create)"
check_eq "dora has two snapshots" 2 "$(dora_count)"

# 1d. a create whose manifest put the pool applies only after B gave up
# on it (the shim: while $T/snap-late exists, the put is answered
# ETIMEDOUT at once and done 3 s later): B's first looks find nothing,
# but it looks again until the note's keep (8 s here) has passed, so the
# late copy is removed when it lands, and never listed.
removed() { grep -c "had failed, but the pool held its manifest: removed" "$T/server.log"; }
r0=$(removed) n1=$(pool_snaps)
touch "$T/snap-late"
check_eq "with B's manifest puts landing late, dora's create through B is a 503" 503 "$(create)"
rm -f "$T/snap-late"
check "B notes it for removal" test -s "$RB/snapshots/unsure"
late_removed() { [ "$(removed)" -gt "$r0" ]; }
check "the manifest lands late, and B removes it" poll_until 20 late_removed
check "B forgets the note" poll_until 20 test ! -e "$RB/snapshots/unsure"
check_eq "the pool holds no copy of it" "$n1" "$(pool_snaps)"
check_eq "dora still has two snapshots" 2 "$(dora_count)"

# across_pause WHAT OUT ERR ARGS...: with the OSDs paused, starts the
# agent (ARGS, through A, stdout to OUT, stderr to ERR), waits for the
# server to answer it 503 "storage unavailable" (within 25 s: 5 s op
# timeouts), lets the OSDs serve again and checks that the agent then
# finishes. Each request waits at most 120 s (not 15 minutes): a bound
# on broken code.
n503() { grep -c ': 503 {"error":"storage unavailable' "$T/server.log"; }
more503() { test "$(n503)" -gt "$seen"; }
across_pause() {
	local what=$1 out=$2 err=$3 pid; shift 3
	check "the OSDs pause ($what)" bash "$ROOT/tests/ceph/osd.sh" "$C" pause
	seen=$(n503)
	DEDUP_AGENT_WAIT=120 on A agent "$PAT" "$@" > "$out" 2>"$err" &
	pid=$!
	check "the server answers the $what 503 (storage unavailable) within 25 s" poll_until 25 more503
	poll_until 150 more503   # after a failed bound: the rest still runs
	check "the OSDs serve again" bash "$ROOT/tests/ceph/osd.sh" "$C" unpause
	wait "$pid"
	check "the $what finishes once they do" test $? = 0
}

# 2. a backup started while the OSDs are paused
mkdir -p "$T/o"
prand osd 8000000 > "$T/o/big.bin"
across_pause backup "$T/o.out" "$T/o.err" backup --json "$T/o"
check "the agent said it was waiting" grep -q "storage unavailable.*waiting [0-9]* s and asking again" "$T/o.err"
sed 's/^/# /' "$T/o.err" | head -n 4
ID=$(json_get "$(cat "$T/o.out")" snapshot_id)
on B agent "$PAT" restore "$ID" --target "$T/r1" 2>"$T/r1.err"
check "and restores identical through B" cmp -s "$T/o/big.bin" "$T/r1/$T/o/big.bin"

# 3. a restore started while they are paused
across_pause restore /dev/null "$T/r2.err" restore "$ID" --target "$T/r2"
check "identical" cmp -s "$T/o/big.bin" "$T/r2/$T/o/big.bin"

# 4. an agent told not to wait fails cleanly, and the next backup works
prand osd2 3000000 > "$T/o/two.bin"
check "the OSDs pause a third time" bash "$ROOT/tests/ceph/osd.sh" "$C" pause
DEDUP_AGENT_WAIT=0 DEDUP_AGENT_RETRIES=1 on A agent "$PAT" backup --json "$T/o" > "$T/o3.out" 2>"$T/o3.err"
check "with DEDUP_AGENT_WAIT=0 the backup fails" test $? != 0
check "naming the storage" grep -q "storage unavailable" "$T/o3.err"
check "without waiting" not grep -q "and asking again" "$T/o3.err"
check "the OSDs serve again" bash "$ROOT/tests/ceph/osd.sh" "$C" unpause
out=$(on A agent "$PAT" backup --json "$T/o")
check "the next backup works" test $? = 0
ID2=$(json_get "$out" snapshot_id)
on B agent "$PAT" restore "$ID2" --target "$T/r3" 2>/dev/null
check "and restores identical" cmp -s "$T/o/two.bin" "$T/r3/$T/o/two.bin"

# 5. nothing damaged
for p in "$PID_A" "$PID_B"; do kill "$p"; done
for p in "$PID_A" "$PID_B"; do wait "$p" 2>/dev/null; done
SERVER_PIDS=()
check "check --read-data on A is clean" "$SERVER" check --repo "$RA" --read-data --quiet
check "check --read-data on B is clean" "$SERVER" check --repo "$RB" --read-data --quiet
finish
