/*
 * backend_rados.c - the Ceph RADOS backend (backend.h), built as the
 * separate module dedup-backend-rados.so so that the server never links
 * librados; backend.c loads it with dlopen when a "rados:" spec is used.
 *
 * Every write is asynchronous (rados_aio_*) and counted done only when its
 * completion reports complete: in librados 16 that is when every replica
 * of the placement group has it (the old "safe"). Large appends and reads
 * are split into PIECE-sized operations, up to INFLIGHT at once; operations
 * from one client on one object are applied in the order they were issued,
 * so split appends land in order.
 *
 * put:    one write op: create(EXCLUSIVE) + write_full (atomic, -EEXIST).
 * cas:    read the object and its version in one read op, compare here,
 *         then one write op: assert_version + write_full (-ERANGE or
 *         -EOVERFLOW from the guard become -ECANCELED).
 * lock:   rados_lock_exclusive on the object ".lock.NAME" (a name no
 *         object has, so listings skip it), cookie unique to the handle,
 *         the lease as the lock's duration, RENEW so that taking it again
 *         renews it.
 * list:   the pool's (namespace's) object listing filtered by prefix: one
 *         pass over the namespace; give each repository its own namespace
 *         or pool.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <rados/librados.h>

#include "backend.h"

#define PIECE (4u * 1024 * 1024)
#define INFLIGHT 8
#define LOCK_PREFIX ".lock."
#define LOCK_CLASS "dedup"

struct rados_lock_held {
	struct rados_lock_held *next;
	char name[];
};

struct radb {
	rados_t cluster;
	rados_ioctx_t io;
	char cookie[64];
	pthread_mutex_t mu;             /* guards locks */
	struct rados_lock_held *locks;
	unsigned op_timeout_ms;         /* rop_finish */
};

static int why_rc(char *why, int rc, const char *what)
{
	snprintf(why, BACKEND_WHY, "%s: %s", what, strerror(-rc));
	return rc;
}

/*
 * An operation in flight: its completion and a condition its callback
 * signals, so that waiting is bounded. librados' own op timeout does not
 * end every operation (a read queued while the OSDs are paused waited
 * minutes here); past op_timeout_ms the operation is cancelled and counts
 * as -ETIMEDOUT.
 */
struct rop {
	rados_completion_t c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void rop_done(rados_completion_t c, void *arg)
{
	struct rop *o = arg;

	(void)c;
	pthread_mutex_lock(&o->mu);
	o->done = 1;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

static int rop_new(struct rop **out)
{
	struct rop *o = calloc(1, sizeof(*o));
	int rc;

	*out = NULL;
	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	rc = rados_aio_create_completion2(o, rop_done, &o->c);
	if (rc < 0) {
		free(o);
		return rc;
	}
	*out = o;
	return 0;
}

static void rop_free(struct rop *o)
{
	rados_aio_release(o->c);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
}

/* Waits until o is done or ms passed; 1 when done. */
static int rop_wait_ms(struct rop *o, unsigned ms)
{
	struct timespec ts;
	int done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&o->mu);
	while (!o->done &&
	       pthread_cond_timedwait(&o->cv, &o->mu, &ts) != ETIMEDOUT)
		;
	done = o->done;
	pthread_mutex_unlock(&o->mu);
	return done;
}

/* Waits for o (at most the handle's op timeout, then cancels it), frees
 * it and returns its result; *version (if not NULL) gets the object's. */
static int64_t rop_finish(struct radb *r, struct rop *o, uint64_t *version)
{
	int64_t rc;

	if (!rop_wait_ms(o, r->op_timeout_ms)) {
		rados_aio_cancel(r->io, o->c);
		/* a cancelled operation completes; if it never does, its
		 * callback may still come: leave it allocated */
		if (!rop_wait_ms(o, 5000))
			return -ETIMEDOUT;
		rop_free(o);
		return -ETIMEDOUT;
	}
	rc = rados_aio_get_return_value(o->c);
	if (version)
		*version = rados_aio_get_version(o->c);
	rop_free(o);
	return rc;
}

/* librados' rados_osd_op_timeout (ceph.conf, CEPH_ARGS, else the 30 s of
 * conf_default_bounds) plus a margin, as the bound of one wait; 61 s if
 * it cannot be read. */
static unsigned op_timeout_ms(rados_t cluster)
{
	char v[32] = "";
	double sec = 0;

	if (rados_conf_get(cluster, "rados_osd_op_timeout", v, sizeof(v)) == 0)
		sec = strtod(v, NULL);
	if (!(sec > 0) || sec > 3600)
		sec = 60;
	return (unsigned)(sec * 1000) + 1000;
}

/*
 * The bounds the server needs where ceph.conf and CEPH_ARGS say nothing:
 * 30 s rather than librados' 300 when no monitor answers, and an
 * operation the cluster cannot serve (OSDs or monitors down, the cluster
 * paused) failing with -ETIMEDOUT after 30 s instead of waiting forever,
 * so that the server answers 503 and the agent waits or fails cleanly.
 * rados_conf_set outranks the file and the environment, so each is set
 * after them, and only where the value is still librados' own default (a
 * file that gives exactly that default counts as saying nothing).
 */
static void conf_default_bounds(rados_t cluster)
{
	static const struct {
		const char *key;
		double librados_default;
		const char *ours;
	} b[] = {
		{ "client_mount_timeout", 300, "30" },
		{ "rados_osd_op_timeout", 0, "30" },
		{ "rados_mon_op_timeout", 0, "30" },
	};
	char v[32];
	size_t i;

	for (i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		v[0] = '\0';
		if (rados_conf_get(cluster, b[i].key, v, sizeof(v)) == 0 &&
		    strtod(v, NULL) != b[i].librados_default)
			continue;
		rados_conf_set(cluster, b[i].key, b[i].ours);
	}
}

static int connect_pool(struct radb *r, const char *pool, const char *ns,
			const struct backend_opts *opts, char *why)
{
	int rc;

	rc = rados_create(&r->cluster, opts->ceph_user);
	if (rc < 0)
		return why_rc(why, rc, "cannot create the RADOS client");
	rc = rados_conf_read_file(r->cluster, opts->ceph_conf);
	if (rc < 0) {
		snprintf(why, BACKEND_WHY, "cannot read ceph.conf '%s': %s",
			 opts->ceph_conf ? opts->ceph_conf : "(default paths)",
			 strerror(-rc));
		return rc;
	}
	rados_conf_parse_env(r->cluster, NULL);
	conf_default_bounds(r->cluster);
	rc = rados_connect(r->cluster);
	if (rc < 0) {
		snprintf(why, BACKEND_WHY, "cannot connect to the cluster "
			 "(ceph.conf '%s', user '%s'): %s",
			 opts->ceph_conf ? opts->ceph_conf : "(default)",
			 opts->ceph_user ? opts->ceph_user : "admin",
			 strerror(-rc));
		return rc;
	}
	rc = rados_ioctx_create(r->cluster, pool, &r->io);
	if (rc < 0) {
		snprintf(why, BACKEND_WHY, "cannot open pool '%.100s': %s", pool,
			 rc == -ENOENT ? "no such pool" : strerror(-rc));
		return rc;
	}
	if (ns && ns[0])
		rados_ioctx_set_namespace(r->io, ns);
	r->op_timeout_ms = op_timeout_ms(r->cluster);
	return 0;
}

static void rb_close(void *impl);

static int rb_open(void **impl, const char *where,
		      const struct backend_opts *opts, char *why)
{
	char pool[256];
	const char *slash = strchr(where, '/');
	struct radb *r;
	int rc;

	snprintf(pool, sizeof(pool), "%.*s",
		 slash ? (int)(slash - where) : (int)strlen(where), where);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	rc = connect_pool(r, pool, slash ? slash + 1 : NULL, opts, why);
	if (rc < 0) {
		rb_close(r);
		return rc;
	}
	snprintf(r->cookie, sizeof(r->cookie), "%llu-%p",
		 (unsigned long long)rados_get_instance_id(r->cluster), (void *)r);
	*impl = r;
	return 0;
}

static void rb_close(void *impl)
{
	struct radb *r = impl;
	struct rados_lock_held *l, *next;
	char oid[BACKEND_NAME_MAX + sizeof(LOCK_PREFIX)];

	for (l = r->locks; l; l = next) {
		next = l->next;
		snprintf(oid, sizeof(oid), LOCK_PREFIX "%s", l->name);
		rados_unlock(r->io, oid, LOCK_CLASS, r->cookie);
		free(l);
	}
	if (r->io)
		rados_ioctx_destroy(r->io);
	if (r->cluster)
		rados_shutdown(r->cluster);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Runs a write op and waits until it is complete on every replica. */
static int write_op_wait(struct radb *r, rados_write_op_t op,
			 const char *name)
{
	struct rop *o;
	int rc;

	rc = rop_new(&o);
	if (rc < 0)
		return rc;
	rc = rados_aio_write_op_operate(op, r->io, o->c, name, NULL, 0);
	if (rc < 0) {
		rop_free(o);
		return rc;
	}
	return (int)rop_finish(r, o, NULL);
}

static int put_exclusive(struct radb *r, const char *name, const void *data,
			 size_t len)
{
	rados_write_op_t op = rados_create_write_op();
	int rc;

	if (!op)
		return -ENOMEM;
	rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	if (len > 0)
		rados_write_op_write_full(op, data, len);
	rc = write_op_wait(r, op, name);
	rados_release_write_op(op);
	return rc;
}

static int rb_put(void *impl, const char *name, const void *data,
		     size_t len, char *why)
{
	int rc = put_exclusive(impl, name, data, len);

	if (rc == -EEXIST)
		snprintf(why, BACKEND_WHY, "it exists already");
	return rc;
}

/* Waits for the oldest of *n completions in ring[], keeps the first error
 * in *first_err, and returns the bytes it reported (reads) or 0. */
static int64_t ring_wait_one(struct radb *r, struct rop **ring,
			     unsigned *head, unsigned *n, int *first_err)
{
	int64_t rc = rop_finish(r, ring[*head], NULL);

	*head = (*head + 1) % INFLIGHT;
	(*n)--;
	if (rc < 0 && *first_err == 0)
		*first_err = (int)rc;
	return rc < 0 ? 0 : rc;
}

static int rb_append(void *impl, const char *name, const void *data,
			size_t len, char *why)
{
	struct radb *r = impl;
	struct rop *ring[INFLIGHT];
	unsigned head = 0, n = 0;
	int err = 0;
	size_t off;

	for (off = 0; off < len && err == 0; off += PIECE) {
		size_t piece = len - off < PIECE ? len - off : PIECE;
		struct rop *c;
		int rc;

		if (n == INFLIGHT)
			ring_wait_one(r, ring, &head, &n, &err);
		if (err)
			break;
		rc = rop_new(&c);
		if (rc < 0) {
			err = rc;
			break;
		}
		rc = rados_aio_append(r->io, name, c->c,
				      (const char *)data + off, piece);
		if (rc < 0) {
			rop_free(c);
			err = rc;
			break;
		}
		ring[(head + n) % INFLIGHT] = c;
		n++;
	}
	while (n > 0)
		ring_wait_one(r, ring, &head, &n, &err);
	if (err == -EFBIG)
		snprintf(why, BACKEND_WHY, "the object would pass the pool's "
			 "osd_max_object_size (128 MiB by default): use smaller packs");
	return err;
}

/* Collects the oldest read in flight: adds its bytes to *got until the
 * first short piece, which is where the object ends. */
static void read_collect(struct radb *r, struct rop **ring, size_t *want,
			 unsigned *head, unsigned *n, int *err, int64_t *got,
			 int *ended)
{
	size_t w = want[*head];
	int64_t b = ring_wait_one(r, ring, head, n, err);

	if (*ended)
		return;
	*got += b;
	if ((size_t)b < w)
		*ended = 1;
}

static int64_t rb_read(void *impl, const char *name, uint64_t off,
			  void *buf, size_t len, char *why)
{
	struct radb *r = impl;
	struct rop *ring[INFLIGHT];
	size_t want[INFLIGHT];
	unsigned head = 0, n = 0;
	int64_t got = 0;
	int err = 0, ended = 0;
	size_t pos, piece;

	for (pos = 0; pos < len && err == 0; pos += piece) {
		struct rop *c;
		int rc;

		piece = len - pos < PIECE ? len - pos : PIECE;
		if (n == INFLIGHT)
			read_collect(r, ring, want, &head, &n, &err, &got,
				     &ended);
		rc = rop_new(&c);
		if (rc < 0) {
			err = err ? err : rc;
			break;
		}
		rc = rados_aio_read(r->io, name, c->c, (char *)buf + pos, piece,
				    off + pos);
		if (rc < 0) {
			rop_free(c);
			err = err ? err : rc;
			break;
		}
		ring[(head + n) % INFLIGHT] = c;
		want[(head + n) % INFLIGHT] = piece;
		n++;
	}
	while (n > 0)
		read_collect(r, ring, want, &head, &n, &err, &got, &ended);
	return err ? err : got;
}

/* A piece of a range of rb_read_multi in flight. */
struct mpiece {
	struct rop *op;
	size_t range;           /* index into v */
	size_t want;
};

/* Collects the oldest piece in flight into its range's rc: an error, or
 * -ENODATA for a short piece (the object ends inside the range). */
static void multi_collect(struct radb *r, struct backend_range *v,
			  struct mpiece *ring, unsigned *head, unsigned *n)
{
	struct mpiece *p = &ring[*head];
	int64_t got = rop_finish(r, p->op, NULL);
	struct backend_range *g = &v[p->range];

	*head = (*head + 1) % BACKEND_READ_INFLIGHT;
	(*n)--;
	if (g->rc < 0)
		return;
	if (got < 0)
		g->rc = (int)got;
	else if ((size_t)got < p->want)
		g->rc = -ENODATA;
}

/* Every range's pieces in flight together, BACKEND_READ_INFLIGHT at a
 * time: a fetch's pack spans cost one round trip, not one each. */
static int rb_read_multi(void *impl, struct backend_range *v, size_t n,
			 char *why)
{
	struct radb *r = impl;
	struct mpiece ring[BACKEND_READ_INFLIGHT];
	unsigned head = 0, inflight = 0;
	size_t i, pos, piece;
	int rc = 0;

	(void)why;
	for (i = 0; i < n; i++)
		v[i].rc = 0;
	for (i = 0; i < n && rc == 0; i++) {
		for (pos = 0; pos < v[i].len && rc == 0; pos += piece) {
			struct mpiece *p;

			piece = v[i].len - pos < PIECE ? v[i].len - pos : PIECE;
			if (inflight == BACKEND_READ_INFLIGHT)
				multi_collect(r, v, ring, &head, &inflight);
			p = &ring[(head + inflight) % BACKEND_READ_INFLIGHT];
			if ((rc = rop_new(&p->op)) < 0)
				break;
			rc = rados_aio_read(r->io, v[i].name, p->op->c,
					    (char *)v[i].buf + pos, piece,
					    v[i].off + pos);
			if (rc < 0) {
				rop_free(p->op);
				break;
			}
			p->range = i;
			p->want = piece;
			inflight++;
		}
		if (rc < 0)
			v[i].rc = rc;
	}
	for (; i < n; i++)      /* never started */
		v[i].rc = -ECANCELED;
	while (inflight > 0)
		multi_collect(r, v, ring, &head, &inflight);
	for (i = 0; i < n && rc == 0; i++)
		rc = v[i].rc;
	return rc;
}

static int rb_stat(void *impl, const char *name, uint64_t *size,
			  char *why)
{
	struct radb *r = impl;
	time_t mtime;

	return rados_stat(r->io, name, size, &mtime);
}

static int rb_list(void *impl, const char *prefix, backend_list_fn fn,
		      void *payload, char *why)
{
	struct radb *r = impl;
	size_t plen = strlen(prefix);
	rados_list_ctx_t ctx;
	const char *entry;
	int rc;

	rc = rados_nobjects_list_open(r->io, &ctx);
	if (rc < 0)
		return why_rc(why, rc, "cannot list the pool");
	while ((rc = rados_nobjects_list_next(ctx, &entry, NULL, NULL)) == 0) {
		if (entry[0] == '.' || strncmp(entry, prefix, plen) != 0)
			continue;
		rc = fn(entry, payload);
		if (rc != 0)
			break;
	}
	rados_nobjects_list_close(ctx);
	if (rc == -ENOENT)  /* the listing's end */
		return 0;
	return rc;
}

static int rb_remove(void *impl, const char *name, char *why)
{
	struct radb *r = impl;

	return rados_remove(r->io, name);
}

static int lock_held(struct radb *r, const char *name)
{
	struct rados_lock_held *l;

	for (l = r->locks; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			return 1;
	return 0;
}

static int rb_lock(void *impl, const char *name, uint32_t lease_ms,
			  char *why)
{
	struct radb *r = impl;
	char oid[BACKEND_NAME_MAX + sizeof(LOCK_PREFIX)];
	struct timeval lease = {
		.tv_sec = lease_ms / 1000,
		.tv_usec = (lease_ms % 1000) * 1000,
	};
	struct rados_lock_held *l;
	int rc;

	snprintf(oid, sizeof(oid), LOCK_PREFIX "%s", name);
	rc = rados_lock_exclusive(r->io, oid, LOCK_CLASS, r->cookie,
				  "dedup-server", lease_ms ? &lease : NULL,
				  LIBRADOS_LOCK_FLAG_RENEW);
	if (rc == -EBUSY)
		snprintf(why, BACKEND_WHY, "held by another handle");
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&r->mu);
	if (!lock_held(r, name)) {
		l = malloc(sizeof(*l) + strlen(name) + 1);
		if (l) {
			memcpy(l->name, name, strlen(name) + 1);
			l->next = r->locks;
			r->locks = l;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int rb_unlock(void *impl, const char *name, char *why)
{
	struct radb *r = impl;
	char oid[BACKEND_NAME_MAX + sizeof(LOCK_PREFIX)];
	struct rados_lock_held **lp, *l;
	int rc;

	snprintf(oid, sizeof(oid), LOCK_PREFIX "%s", name);
	rc = rados_unlock(r->io, oid, LOCK_CLASS, r->cookie);
	pthread_mutex_lock(&r->mu);
	for (lp = &r->locks; *lp; lp = &(*lp)->next) {
		if (strcmp((*lp)->name, name) == 0) {
			l = *lp;
			*lp = l->next;
			free(l);
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	if (rc == -ENOENT)
		snprintf(why, BACKEND_WHY, "not held by this handle");
	return rc;
}

/* Reads up to len bytes of the object and its version in one read op. */
static int read_versioned(struct radb *r, const char *name, char *buf,
			  size_t len, size_t *got, uint64_t *version)
{
	rados_read_op_t op = rados_create_read_op();
	struct rop *c;
	int prval = 0, rc;

	if (!op)
		return -ENOMEM;
	rados_read_op_read(op, 0, len, buf, got, &prval);
	rc = rop_new(&c);
	if (rc == 0) {
		rc = rados_aio_read_op_operate(op, r->io, c->c, name, 0);
		if (rc == 0)
			rc = (int)rop_finish(r, c, version);
		else
			rop_free(c);
	}
	rados_release_read_op(op);
	return rc < 0 ? rc : prval;
}

static int swap_guarded(struct radb *r, const char *name, uint64_t version,
			const void *data, size_t len)
{
	rados_write_op_t op = rados_create_write_op();
	int rc;

	if (!op)
		return -ENOMEM;
	rados_write_op_assert_version(op, version);
	rados_write_op_write_full(op, data, len);
	rc = write_op_wait(r, op, name);
	rados_release_write_op(op);
	return rc;
}

static int rb_cas(void *impl, const char *name, const void *expect,
		     size_t expect_len, const void *data, size_t len, char *why)
{
	struct radb *r = impl;
	uint64_t version = 0;
	size_t got = 0;
	char *cur;
	int rc;

	if (!expect)
		return rb_put(impl, name, data, len, why);
	cur = malloc(expect_len + 1);
	if (!cur)
		return -ENOMEM;
	rc = read_versioned(r, name, cur, expect_len + 1, &got, &version);
	if (rc == 0 && (got != expect_len || memcmp(cur, expect, expect_len)))
		rc = -ECANCELED;
	free(cur);
	if (rc == 0) {
		rc = swap_guarded(r, name, version, data, len);
		if (rc == -ERANGE || rc == -EOVERFLOW)
			rc = -ECANCELED;  /* written by another since we read */
	}
	if (rc == -ECANCELED)
		snprintf(why, BACKEND_WHY, "its content is not the expected one");
	return rc;
}

/* ---- key/value maps: the object's omap ---- */

static int rb_omap_set(void *impl, const char *name,
		       const struct backend_kv *kv, size_t n, char *why)
{
	struct radb *r = impl;
	rados_write_op_t op = rados_create_write_op();
	const char **keys = calloc(n, sizeof(*keys));
	const char **vals = calloc(n, sizeof(*vals));
	size_t *klens = calloc(n, sizeof(*klens));
	size_t *vlens = calloc(n, sizeof(*vlens));
	size_t i;
	int rc = -ENOMEM;

	if (op && keys && vals && klens && vlens) {
		for (i = 0; i < n; i++) {
			keys[i] = kv[i].key;
			klens[i] = strlen(kv[i].key);
			vals[i] = kv[i].val;
			vlens[i] = kv[i].vlen;
		}
		rados_write_op_omap_set2(op, keys, vals, klens, vlens, n);
		rc = write_op_wait(r, op, name);
	}
	if (op)
		rados_release_write_op(op);
	free(keys);
	free(vals);
	free(klens);
	free(vlens);
	return rc < 0 ? why_rc(why, rc, "omap set") : 0;
}

#define MULTI_INFLIGHT 64

/* One write op of omap_set for v (NULL on allocation failure). */
static rados_write_op_t omap_set_op(const struct backend_omap_batch *v,
				    const char **keys, const char **vals,
				    size_t *klens, size_t *vlens)
{
	rados_write_op_t op = rados_create_write_op();
	size_t i;

	if (!op)
		return NULL;
	for (i = 0; i < v->n; i++) {
		keys[i] = v->kv[i].key;
		klens[i] = strlen(v->kv[i].key);
		vals[i] = v->kv[i].val;
		vlens[i] = v->kv[i].vlen;
	}
	/* librados copies the pairs into the op here */
	rados_write_op_omap_set2(op, keys, vals, klens, vlens, v->n);
	return op;
}

static int rb_omap_set_multi(void *impl, const struct backend_omap_batch *v,
			     size_t n, char *why)
{
	struct radb *r = impl;
	struct rop *ring[MULTI_INFLIGHT];
	rados_write_op_t ops[MULTI_INFLIGHT];
	size_t most = 0, i, done = 0, k, m;
	const char **keys = NULL, **vals = NULL;
	size_t *klens = NULL, *vlens = NULL;
	int err = 0;

	for (i = 0; i < n; i++)
		if (v[i].n > most)
			most = v[i].n;
	keys = calloc(most, sizeof(*keys));
	vals = calloc(most, sizeof(*vals));
	klens = calloc(most, sizeof(*klens));
	vlens = calloc(most, sizeof(*vlens));
	if (!keys || !vals || !klens || !vlens)
		err = -ENOMEM;
	while (done < n && err == 0) {
		m = n - done < MULTI_INFLIGHT ? n - done : MULTI_INFLIGHT;
		for (k = 0; k < m; k++) {
			ops[k] = omap_set_op(&v[done + k], keys, vals, klens,
					     vlens);
			ring[k] = NULL;
			if (!ops[k] || rop_new(&ring[k]) < 0 ||
			    rados_aio_write_op_operate(ops[k], r->io, ring[k]->c,
						       v[done + k].name, NULL, 0) < 0) {
				if (ring[k])
					rop_free(ring[k]);
				ring[k] = NULL;
				err = err ? err : -ENOMEM;
			}
		}
		for (k = 0; k < m; k++) {
			if (ring[k]) {
				int rc = (int)rop_finish(r, ring[k], NULL);

				if (rc < 0 && err == 0)
					err = rc;
			}
			if (ops[k])
				rados_release_write_op(ops[k]);
		}
		done += m;
	}
	free(keys);
	free(vals);
	free(klens);
	free(vlens);
	return err < 0 ? why_rc(why, err, "omap set") : 0;
}

static int rb_omap_rm(void *impl, const char *name, const char *const *keys,
		      size_t n, char *why)
{
	struct radb *r = impl;
	rados_write_op_t op = rados_create_write_op();
	int rc;

	if (!op)
		return -ENOMEM;
	/* the object must exist: a removal never creates an empty one */
	rados_write_op_assert_exists(op);
	rados_write_op_omap_rm_keys(op, keys, n);
	rc = write_op_wait(r, op, name);
	rados_release_write_op(op);
	return rc < 0 ? why_rc(why, rc, "omap remove") : 0;
}

/* Runs a read op filling *iter; 0, or -ENOENT for a missing object. */
static int read_op_wait(struct radb *r, rados_read_op_t op, const char *name)
{
	struct rop *o;
	int rc = rop_new(&o);

	if (rc < 0)
		return rc;
	rc = rados_aio_read_op_operate(op, r->io, o->c, name, 0);
	if (rc < 0) {
		rop_free(o);
		return rc;
	}
	return (int)rop_finish(r, o, NULL);
}

/* Calls fn for each pair of iter; *last gets the last key (if wanted). */
static int iter_each(rados_omap_iter_t it, backend_kv_fn fn, void *payload,
		     char *last, size_t lastsz, size_t *count)
{
	char key[BACKEND_KEY_MAX + 1], *k, *v;
	size_t klen, vlen;
	int rc = 0;

	while (rados_omap_get_next2(it, &k, &v, &klen, &vlen) == 0 && k) {
		if (klen == 0 || klen > BACKEND_KEY_MAX)
			continue;  /* not one of ours */
		memcpy(key, k, klen);
		key[klen] = '\0';
		if (last && klen < lastsz)
			memcpy(last, key, klen + 1);
		(*count)++;
		rc = fn(key, v, vlen, payload);
		if (rc != 0)
			break;
	}
	return rc;
}

static int rb_omap_get(void *impl, const char *name, const char *const *keys,
		       size_t n, backend_kv_fn fn, void *payload, char *why)
{
	struct radb *r = impl;
	rados_read_op_t op = rados_create_read_op();
	rados_omap_iter_t it = NULL;
	size_t *klens = calloc(n, sizeof(*klens)), i, count = 0;
	int prval = 0, rc = -ENOMEM;

	if (op && klens) {
		for (i = 0; i < n; i++)
			klens[i] = strlen(keys[i]);
		rados_read_op_omap_get_vals_by_keys2(op, keys, n, klens, &it,
						      &prval);
		rc = read_op_wait(r, op, name);
		if (rc == 0)
			rc = prval;
		if (rc == 0 && it)
			rc = iter_each(it, fn, payload, NULL, 0, &count);
		if (it)
			rados_omap_get_end(it);
	}
	if (op)
		rados_release_read_op(op);
	free(klens);
	if (rc == -ENOENT)
		return 0;  /* no object: no keys */
	return rc < 0 ? why_rc(why, rc, "omap get") : rc;
}

#define OMAP_PAGE 1000

static int rb_omap_list(void *impl, const char *name, backend_kv_fn fn,
			void *payload, char *why)
{
	struct radb *r = impl;
	char after[BACKEND_KEY_MAX + 1] = "";
	unsigned char more = 1;
	int rc = 0;

	while (more && rc == 0) {
		rados_read_op_t op = rados_create_read_op();
		rados_omap_iter_t it = NULL;
		size_t count = 0;
		int prval = 0;

		if (!op)
			return -ENOMEM;
		more = 0;
		rados_read_op_omap_get_vals2(op, after, "", OMAP_PAGE, &it,
					     &more, &prval);
		rc = read_op_wait(r, op, name);
		if (rc == 0)
			rc = prval;
		if (rc == 0 && it)
			rc = iter_each(it, fn, payload, after, sizeof(after),
				       &count);
		if (it)
			rados_omap_get_end(it);
		rados_release_read_op(op);
		if (count == 0)
			more = 0;
	}
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? why_rc(why, rc, "omap list") : rc;
}

static const struct backend_ops rados_ops = {
	.kind = "rados",
	.open = rb_open,
	.close = rb_close,
	.put = rb_put,
	.append = rb_append,
	.read = rb_read,
	.read_multi = rb_read_multi,
	.stat = rb_stat,
	.list = rb_list,
	.remove = rb_remove,
	.lock = rb_lock,
	.unlock = rb_unlock,
	.cas = rb_cas,
	.omap_set = rb_omap_set,
	.omap_set_multi = rb_omap_set_multi,
	.omap_rm = rb_omap_rm,
	.omap_get = rb_omap_get,
	.omap_list = rb_omap_list,
};

/* The one symbol backend.c looks up. */
extern const struct backend_module backend_rados_module;
const struct backend_module backend_rados_module = {
	.abi = BACKEND_ABI,
	.ops = &rados_ops,
};
