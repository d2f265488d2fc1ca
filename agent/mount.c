/*
 * mount.c - `dedup-agent mount [--cache-size SIZE] SNAPSHOT|latest DIR`
 *
 * Shows a snapshot as a read-only file system (FUSE, libfuse3) until it is
 * unmounted (`fusermount3 -u DIR`) or the agent gets SIGINT, SIGTERM or
 * SIGHUP; it always runs in the foreground (-f is accepted and changes
 * nothing), so a service manager or the shell's `&` decides where it runs.
 *
 * The catalog is read once at mount (snaptree.h); every metadata call is
 * answered from memory. A read at offset X of length L fetches only the
 * chunks covering X..X+L (found by a binary search on the file's chunk
 * offsets) that the cache lacks, plus, when the read starts where the
 * handle's previous one ended, following chunks of the same file as
 * read-ahead, in one POST /chunks/fetch (fetch.h: each chunk
 * decompressed and verified against its id). Verified chunks are kept in
 * a byte-bounded LRU cache (shared/chunkcache.h, --cache-size, default
 * 64 MiB). A failed fetch (server down, token refused, chunk missing or
 * corrupt) fails that read with EIO and logs one line naming the file and
 * the reason; the mount stays up. A server found unreachable is not asked
 * again for MOUNT_DOWN_HOLD_S: reads meanwhile fail at once.
 *
 * Metadata is the catalog's: modes, owners (numeric ids), times, sizes,
 * symlink targets, hard links (one inode, its link count), extended
 * attributes (getxattr/listxattr; ACLs are not shown). The mount is
 * ro,nosuid,nodev and the kernel checks permissions (default_permissions).
 * Calls run on several threads; metadata needs no lock (the tree never
 * changes), reads share one connection and cache under a mutex.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include <fuse.h>
#include <jansson.h>
#include <zstd.h>

#include "catalog.h"
#include "chunkcache.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "fetch.h"
#include "repo_config.h"
#include "snapshots.h"
#include "snaptree.h"

#define MOUNT_CACHE_DEFAULT (64u * 1024 * 1024)
#define MOUNT_CACHE_MIN (1u * 1024 * 1024)
/* Chunks and plain bytes fetched ahead of a read, at most: enough that a
 * sequential read makes one request per few MiB, little enough that a
 * random read does not wait for much it will not use. */
#define MOUNT_BATCH_IDS 64u
#define MOUNT_READAHEAD (4u * 1024 * 1024)
/* After a fetch found the server unreachable (with the client's retries,
 * about 10 s), reads fail at once for this long instead of each waiting
 * through the retries again: `cp -r` of a tree with the server gone
 * fails fast, and the kernel's second try of a failed read too. */
#define MOUNT_DOWN_HOLD_S 5.0
/* The kernel may keep names, attributes and file pages as long as it
 * likes: a snapshot never changes. */
#define MOUNT_KERNEL_TIMEOUT 3600.0

struct mount {
	struct snaptree *tree;
	/* Reads: everything below is guarded by mu. */
	pthread_mutex_t mu;
	struct client *client;
	struct dd_chunkcache *cache;
	struct fetch_batch fb;
	struct dd_buf scratch;
	ZSTD_DCtx *dctx;
	size_t ahead_bytes, batch_ids;
	struct dd_id *ids;
	uint32_t *lens;
	uint64_t reads, requests, fetched_chunks, fetched_bytes, failed_reads;
	double down_until;        /* dd_monotonic(); 0: not known down */
	char down_why[512];
};

/* What a FUSE path names: an entry (n: the node, t: the node its data and
 * metadata come from, itself unless a hard link) or an implied
 * directory. */
struct mount_obj {
	enum snaptree_kind kind;
	size_t idx;
	bool root;
	const struct snaptree_node *n, *t;
};

static struct mount *mount_self(void)
{
	return fuse_get_context()->private_data;
}

static int mount_resolve(const struct mount *m, const char *path,
			 struct mount_obj *o)
{
	const char *rel = path[0] == '/' ? path + 1 : path;

	memset(o, 0, sizeof(*o));
	o->root = rel[0] == '\0';
	o->kind = snaptree_lookup(m->tree, rel, strlen(rel), &o->idx);
	if (o->kind == SNAPTREE_NONE)
		return -ENOENT;
	if (o->kind == SNAPTREE_ENTRY) {
		o->n = &m->tree->n[o->idx];
		o->t = &m->tree->n[o->n->target];
	}
	return 0;
}

static bool mount_is_dir(const struct mount_obj *o)
{
	return o->kind == SNAPTREE_IMPLIED || o->n->e.type == DD_ENTRY_DIR;
}

static mode_t mount_type_bits(uint8_t type)
{
	switch (type) {
	case DD_ENTRY_DIR: return S_IFDIR;
	case DD_ENTRY_SYMLINK: return S_IFLNK;
	case DD_ENTRY_FIFO: return S_IFIFO;
	case DD_ENTRY_CHR: return S_IFCHR;
	case DD_ENTRY_BLK: return S_IFBLK;
	default: return S_IFREG;     /* files and hard links */
	}
}

static dev_t mount_rdev(const struct snaptree *tree, const struct dd_entry *e)
{
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	uint32_t major = 0, minor = 0;

	if (!tree->with_ext)
		return 0;
	dd_ext_iter_init(&it, e);
	while (dd_ext_next(&it, &rec) == 1)
		if (rec.tag == DD_EXT_RDEV &&
		    dd_ext_get_rdev(&rec, &major, &minor) == 0)
			return makedev(major, minor);
	return 0;
}

static void mount_stat_implied(const struct mount *m, const struct mount_obj *o,
			       struct stat *st)
{
	memset(st, 0, sizeof(*st));
	/* the root is inode 1, entries 2..count+1, implied dirs after them
	 * (numbered by where their descendants begin) */
	st->st_ino = o->root ? 1 : m->tree->count + 2 + o->idx;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec =
		(time_t)m->tree->time;
}

static void mount_stat_obj(const struct mount *m, const struct mount_obj *o,
			   struct stat *st)
{
	const struct dd_entry *e;

	if (o->kind == SNAPTREE_IMPLIED) {
		mount_stat_implied(m, o, st);
		return;
	}
	e = &o->t->e;
	memset(st, 0, sizeof(*st));
	st->st_ino = o->n->target + 2;
	st->st_mode = mount_type_bits(e->type) | (e->mode & 07777);
	st->st_nlink = o->t->nlink;
	st->st_uid = e->uid;
	st->st_gid = e->gid;
	if (e->type == DD_ENTRY_FILE)
		st->st_size = (off_t)e->size;
	else if (e->type == DD_ENTRY_SYMLINK)
		st->st_size = e->link_len;
	else if (e->type == DD_ENTRY_CHR || e->type == DD_ENTRY_BLK)
		st->st_rdev = mount_rdev(m->tree, e);
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = (time_t)e->mtime_sec;
	st->st_mtim.tv_nsec = e->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim.tv_sec = (time_t)e->ctime_sec;
	st->st_ctim.tv_nsec = e->ctime_nsec;
}

/* ---- metadata ---- */

static int mount_getattr(const char *path, struct stat *st,
			 struct fuse_file_info *fi)
{
	struct mount *m = mount_self();
	struct mount_obj o;
	int rc;

	if ((rc = mount_resolve(m, path, &o)) < 0)
		return rc;
	mount_stat_obj(m, &o, st);
	return 0;
}

static int mount_readlink(const char *path, char *buf, size_t size)
{
	struct mount *m = mount_self();
	struct mount_obj o;
	size_t n;
	int rc;

	if ((rc = mount_resolve(m, path, &o)) < 0)
		return rc;
	/* o.t: the symlink itself, or the one a hard link names */
	if (o.kind != SNAPTREE_ENTRY || o.t->e.type != DD_ENTRY_SYMLINK)
		return -EINVAL;
	if (size == 0)
		return -EINVAL;
	n = o.t->e.link_len < size - 1 ? o.t->e.link_len : size - 1;
	memcpy(buf, o.t->e.link ? o.t->e.link : "", n);
	buf[n] = '\0';
	return 0;
}

/* Adds one child of a listing; 1 when the buffer is full. */
static int mount_fill_child(const struct mount *m, void *buf,
			    fuse_fill_dir_t filler, size_t i, const char *name,
			    size_t nlen, enum snaptree_kind kind)
{
	char cname[NAME_MAX + 1];
	struct mount_obj o = { .kind = kind, .idx = i };
	struct stat st;

	if (nlen >= sizeof(cname))
		return 0;    /* no local file system has such a name */
	memcpy(cname, name, nlen);
	cname[nlen] = '\0';
	if (kind == SNAPTREE_ENTRY) {
		o.n = &m->tree->n[i];
		o.t = &m->tree->n[o.n->target];
	}
	mount_stat_obj(m, &o, &st);
	return filler(buf, cname, &st, 0, 0) ? 1 : 0;
}

static int mount_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
			 off_t offset, struct fuse_file_info *fi,
			 enum fuse_readdir_flags flags)
{
	struct mount *m = mount_self();
	const char *rel = path[0] == '/' ? path + 1 : path, *name;
	size_t len = strlen(rel), i, nlen;
	enum snaptree_kind kind;
	struct mount_obj o;
	int rc;

	if ((rc = mount_resolve(m, path, &o)) < 0)
		return rc;
	if (!mount_is_dir(&o))
		return -ENOTDIR;
	i = o.kind == SNAPTREE_ENTRY ? o.idx + 1 : o.idx;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	while (snaptree_child(m->tree, rel, len, i, &name, &nlen, &kind)) {
		if (mount_fill_child(m, buf, filler, i, name, nlen, kind))
			break;
		i = snaptree_next_child(m->tree, rel, len, i);
	}
	return 0;
}

/* The extended attributes of the entry `o` names, one at a time: 1 and
 * the record's name and value, or 0 at the end. */
static int mount_xattr_next(struct dd_ext_iter *it, const char **name,
			    size_t *nlen, const uint8_t **val, size_t *vlen)
{
	struct dd_ext_rec rec;

	while (dd_ext_next(it, &rec) == 1)
		if (rec.tag == DD_EXT_XATTR &&
		    dd_ext_get_xattr(&rec, name, nlen, val, vlen) == 0)
			return 1;
	return 0;
}

static int mount_xattr_open(const struct mount *m, const char *path,
			    struct dd_ext_iter *it)
{
	struct mount_obj o;
	int rc;

	if ((rc = mount_resolve(m, path, &o)) < 0)
		return rc;
	memset(it, 0, sizeof(*it));
	if (o.kind == SNAPTREE_ENTRY && m->tree->with_ext)
		dd_ext_iter_init(it, &o.t->e);
	return 0;
}

static int mount_getxattr(const char *path, const char *name, char *value,
			  size_t size)
{
	struct mount *m = mount_self();
	struct dd_ext_iter it;
	const char *xn;
	const uint8_t *xv;
	size_t xnl, xvl;
	int rc;

	if ((rc = mount_xattr_open(m, path, &it)) < 0)
		return rc;
	while (mount_xattr_next(&it, &xn, &xnl, &xv, &xvl)) {
		if (xnl != strlen(name) || memcmp(xn, name, xnl) != 0)
			continue;
		if (size == 0)
			return (int)xvl;
		if (size < xvl)
			return -ERANGE;
		memcpy(value, xv, xvl);
		return (int)xvl;
	}
	return -ENODATA;
}

static int mount_listxattr(const char *path, char *list, size_t size)
{
	struct mount *m = mount_self();
	struct dd_ext_iter it;
	const char *xn;
	const uint8_t *xv;
	size_t xnl, xvl, total = 0;
	int rc;

	if ((rc = mount_xattr_open(m, path, &it)) < 0)
		return rc;
	while (mount_xattr_next(&it, &xn, &xnl, &xv, &xvl)) {
		if (size && total + xnl + 1 > size)
			return -ERANGE;
		if (size) {
			memcpy(list + total, xn, xnl);
			list[total + xnl] = '\0';
		}
		total += xnl + 1;
	}
	return (int)total;
}

static int mount_statfs(const char *path, struct statvfs *sv)
{
	struct mount *m = mount_self();

	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = sv->f_frsize = 4096;
	sv->f_blocks = (m->tree->total_bytes + 4095) / 4096;
	sv->f_files = m->tree->count;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	return 0;
}

/* ---- file data ---- */

/* An open file: its node, and where its last read ended (a read that
 * starts there is sequential and gets read-ahead). */
struct mount_handle {
	size_t node;
	uint64_t next_off;
};

static int mount_open(const char *path, struct fuse_file_info *fi)
{
	struct mount *m = mount_self();
	struct mount_handle *h;
	struct mount_obj o;
	int rc;

	if ((rc = mount_resolve(m, path, &o)) < 0)
		return rc;
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	if (mount_is_dir(&o))
		return -EISDIR;
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	h->node = o.n->target;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1;      /* the bytes never change */
	return 0;
}

static int mount_release(const char *path, struct fuse_file_info *fi)
{
	free((struct mount_handle *)(uintptr_t)fi->fh);
	return 0;
}

/* One read: bytes off..end of node n; `sequential` allows read-ahead. */
struct mount_req {
	const struct snaptree_node *n;
	uint64_t off, end;
	bool sequential;
};

/*
 * Plans the fetch of chunk k of the read: it and the other chunks of the
 * read's range the cache lacks and, for a sequential read, the following
 * chunks of the file up to the read-ahead bound. Returns the ids set.
 */
static size_t mount_plan(struct mount *m, const struct mount_req *q,
			 uint64_t k)
{
	const struct snaptree_node *n = q->n;
	size_t cnt = 0, bytes = 0;

	for (uint64_t j = k; j < n->e.nchunks && cnt < m->batch_ids; j++) {
		const struct dd_chunk_ref *r = &n->e.chunks[j];
		bool dup = false;

		if (j > k && n->offs[j] >= q->end &&
		    (!q->sequential || bytes + r->plain_len > m->ahead_bytes))
			break;
		if (dd_chunk_ref_is_hole(r))   /* zeros, nothing to fetch */
			continue;
		if (j > k && dd_chunkcache_has(m->cache, &r->id))
			continue;
		for (size_t i = 0; i < cnt && !dup; i++)
			dup = dd_id_eq(&m->ids[i], &r->id);
		if (dup)
			continue;
		m->ids[cnt] = r->id;
		m->lens[cnt++] = r->plain_len;
		bytes += r->plain_len;
	}
	return cnt;
}

/*
 * The verified bytes of chunk k of the read: from the cache, or fetched
 * with what mount_plan adds (which goes to the cache; one of those that
 * fails is left for its own read to report). *data is valid until the
 * next call.
 */
static int mount_chunk(struct mount *m, const struct mount_req *q,
		       uint64_t k, const uint8_t **data)
{
	const struct dd_chunk_ref *r = &q->n->e.chunks[k];
	size_t len, cnt;
	int rc;

	if ((*data = dd_chunkcache_get(m->cache, &r->id, &len))) {
		char hex[DD_ID_HEX_LEN + 1];

		/* fetched and checked for another reference to the id: a
		 * catalog naming it with another length is refused here as
		 * the fetch refuses it (nothing read past the chunk) */
		if (len == r->plain_len)
			return 0;
		*data = NULL;
		dd_id_to_hex(hex, &r->id);
		return dd_error_set(-EBADMSG, "chunk %s has %zu bytes, the "
				    "catalog says %u", hex, len, r->plain_len);
	}
	if (m->down_until && dd_monotonic() < m->down_until)
		return dd_error_set(-ECONNREFUSED, "%s (not retried for %.0f s)",
				    m->down_why, MOUNT_DOWN_HOLD_S);
	cnt = mount_plan(m, q, k);
	m->requests++;
	rc = fetch_batch_get(&m->fb, m->client, m->ids, m->lens, cnt);
	if (rc == -ECONNREFUSED) {
		m->down_until = dd_monotonic() + MOUNT_DOWN_HOLD_S;
		snprintf(m->down_why, sizeof(m->down_why), "%s", dd_error_last());
	}
	if (rc < 0)
		return rc;
	m->down_until = 0;
	m->fetched_chunks += cnt;
	for (size_t i = 1; i < cnt; i++) {
		const uint8_t *p;

		m->fetched_bytes += m->lens[i];
		if (fetch_batch_chunk_ref(&m->fb, i, m->lens[i], &p, &m->scratch,
					  m->dctx) < 0) {
			dd_error_clear();
			continue;
		}
		if (dd_chunkcache_put(m->cache, &m->ids[i], p, m->lens[i]) < 0)
			return dd_error_set(-ENOMEM, "out of memory");
	}
	m->fetched_bytes += m->lens[0];
	if ((rc = fetch_batch_chunk_ref(&m->fb, 0, r->plain_len, data,
					&m->scratch, m->dctx)) < 0)
		return rc;
	if (dd_chunkcache_put(m->cache, &r->id, *data, r->plain_len) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	return 0;
}

/* Copies the read's bytes (clipped to the file's size) into buf; the
 * count or a negative error. */
static int mount_read_range(struct mount *m, struct mount_req *q, char *buf)
{
	const struct snaptree_node *n = q->n;
	size_t done = 0, len;
	uint64_t k;
	int rc;

	if (n->e.type != DD_ENTRY_FILE || q->off >= n->e.size)
		return 0;
	if (q->end > n->e.size)
		q->end = n->e.size;
	len = (size_t)(q->end - q->off);
	k = snaptree_chunk_at(n, q->off);
	while (done < len) {
		const uint8_t *data;
		uint64_t coff = q->off + done - n->offs[k];
		size_t take = n->e.chunks[k].plain_len - (size_t)coff;

		if (take > len - done)
			take = len - done;
		if (dd_chunk_ref_is_hole(&n->e.chunks[k])) {
			memset(buf + done, 0, take);   /* a hole reads as zeros */
			done += take;
			k++;
			continue;
		}
		if ((rc = mount_chunk(m, q, k, &data)) < 0)
			return rc;
		memcpy(buf + done, data + coff, take);
		done += take;
		k++;
	}
	return (int)done;
}

static int mount_read(const char *path, char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct mount *m = mount_self();
	struct mount_handle *h = (struct mount_handle *)(uintptr_t)fi->fh;
	struct mount_req q = { .n = &m->tree->n[h->node] };
	char qp[512];
	int rc;

	if (off < 0 || (uint64_t)off > UINT64_MAX - size)
		return -EINVAL;
	q.off = (uint64_t)off;
	q.end = q.off + size;
	pthread_mutex_lock(&m->mu);
	q.sequential = q.off == h->next_off;
	m->reads++;
	rc = mount_read_range(m, &q, buf);
	if (rc < 0) {
		m->failed_reads++;
		fprintf(stderr, "error: cannot read '/%s' at offset %lld: %s\n",
			dd_quote(qp, sizeof(qp), q.n->e.path, q.n->e.path_len),
			(long long)off, dd_error_last());
		dd_error_clear();
		rc = -EIO;
	} else {
		h->next_off = q.off + (uint64_t)rc;
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static void *mount_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->kernel_cache = 1;
	cfg->entry_timeout = cfg->attr_timeout = MOUNT_KERNEL_TIMEOUT;
	cfg->negative_timeout = MOUNT_KERNEL_TIMEOUT;
	return fuse_get_context()->private_data;
}

static const struct fuse_operations mount_ops = {
	.init = mount_init,
	.getattr = mount_getattr,
	.readlink = mount_readlink,
	.open = mount_open,
	.read = mount_read,
	.release = mount_release,
	.statfs = mount_statfs,
	.getxattr = mount_getxattr,
	.listxattr = mount_listxattr,
	.readdir = mount_readdir,
};

/* ---- the verb ---- */

static int mount_setup(struct mount *m, struct client *c,
		       const json_t *manifest, uint64_t cache_size)
{
	struct repo_config cfg;
	int rc;

	m->client = c;
	if ((rc = repo_config_fetch(&cfg, c)) < 0)
		return rc;
	m->ahead_bytes = MOUNT_READAHEAD;
	if (m->ahead_bytes > cache_size / 4)
		m->ahead_bytes = cache_size / 4;
	if (cfg.max_fetch_response && m->ahead_bytes > cfg.max_fetch_response / 2)
		m->ahead_bytes = cfg.max_fetch_response / 2;
	m->batch_ids = MOUNT_BATCH_IDS;
	if (cfg.max_ids_per_query && m->batch_ids > cfg.max_ids_per_query)
		m->batch_ids = cfg.max_ids_per_query;
	if (!(m->ids = calloc(m->batch_ids, sizeof(*m->ids))) ||
	    !(m->lens = calloc(m->batch_ids, sizeof(*m->lens))) ||
	    !(m->dctx = ZSTD_createDCtx()) ||
	    dd_chunkcache_new(&m->cache, cache_size) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	return snaptree_load(&m->tree, c, manifest);
}

static void mount_prepare(struct mount *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	fetch_batch_init(&m->fb);
	dd_buf_init(&m->scratch, 0);
}

static void mount_teardown(struct mount *m)
{
	snaptree_free(m->tree);
	dd_chunkcache_free(m->cache);
	fetch_batch_release(&m->fb);
	dd_buf_release(&m->scratch);
	ZSTD_freeDCtx(m->dctx);
	free(m->ids);
	free(m->lens);
	pthread_mutex_destroy(&m->mu);
}

static void mount_report(const struct mount *m, const char *dir)
{
	struct dd_chunkcache_stats st;
	char fetched[32], peak[32], bound[32];

	dd_chunkcache_get_stats(m->cache, &st);
	agent_fmt_bytes(fetched, m->fetched_bytes);
	agent_fmt_bytes(peak, st.peak_bytes);
	agent_fmt_bytes(bound, st.max_bytes);
	fprintf(stderr,
		"unmounted '%s': %llu reads (%llu failed), %llu chunks fetched "
		"(%s) in %llu requests, cache peak %s of %s (%llu bytes)\n", dir,
		(unsigned long long)m->reads,
		(unsigned long long)m->failed_reads,
		(unsigned long long)m->fetched_chunks, fetched,
		(unsigned long long)m->requests, peak, bound,
		(unsigned long long)st.peak_bytes);
}

/* Mounts the loaded tree at `dir` and serves it until unmounted or
 * signalled. */
static int mount_serve(struct mount *m, const char *id, const char *dir,
		       bool quiet)
{
	char opts[256], human[32];
	char *av[] = { "dedup-agent", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, av);
	struct fuse_session *se;
	struct fuse *f;
	int rc;

	snprintf(opts, sizeof(opts),
		 "ro,nosuid,nodev,default_permissions,fsname=dedup:%.12s,subtype=dedup",
		 id);
	f = fuse_new(&args, &mount_ops, sizeof(mount_ops), m);
	/* fuse_new copied what it needs; the list may have grown */
	fuse_opt_free_args(&args);
	if (!f)
		return dd_error_set(-EINVAL, "cannot set up FUSE");
	if (fuse_mount(f, dir) != 0) {
		fuse_destroy(f);
		return dd_error_set(-EIO, "cannot mount on '%s' (is /dev/fuse "
				    "there and fusermount3 installed?)", dir);
	}
	se = fuse_get_session(f);
	if (fuse_set_signal_handlers(se) != 0) {
		fuse_unmount(f);
		fuse_destroy(f);
		return dd_error_set(-EIO, "cannot set signal handlers");
	}
	if (!quiet) {
		agent_fmt_bytes(human, m->tree->total_bytes);
		fprintf(stderr, "mounted snapshot %.12s (%zu entries, %s) "
			"read-only at '%s'; unmount with fusermount3 -u\n",
			id, m->tree->count, human, dir);
	}
	/* 0 after an unmount, the signal's number after SIGINT/SIGTERM/SIGHUP */
	rc = fuse_loop_mt(f, 0);
	fuse_remove_signal_handlers(se);
	fuse_unmount(f);
	fuse_destroy(f);
	if (rc < 0)
		return dd_error_set(-EIO, "the FUSE loop failed on '%s'", dir);
	if (!quiet)
		mount_report(m, dir);
	return DD_EXIT_OK;
}

static int mount_check_dir(const struct agent_verb *self, const char *dir)
{
	struct stat st;

	if (stat(dir, &st) != 0)
		return agent_usage_error(self, "cannot use '%s' as mount point: %s",
					 dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return agent_usage_error(self, "mount point '%s' is not a directory",
					 dir);
	return -1;
}

int cmd_mount(int argc, char **argv, const struct agent_globals *g,
	      const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "cache-size", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t cache_size = MOUNT_CACHE_DEFAULT;
	struct mount m;
	struct settings s = { 0 };
	struct client *c = NULL;
	json_t *manifest = NULL;
	const char *id;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (dd_parse_bytes(optarg, &cache_size) < 0 ||
			    cache_size < MOUNT_CACHE_MIN || cache_size > SIZE_MAX / 2)
				return agent_usage_error(self, "bad --cache-size '%s' "
							 "(bytes, K, M or G; at least 1M)",
							 optarg);
			break;
		case 'f':
			break;   /* the default: always in the foreground */
		case 'h':
			return agent_usage_help(self);
		case ':':
			return agent_usage_error(self, "option '%s' needs a value",
						 argv[optind - 1]);
		default:
			return agent_usage_error(self, "unknown option '%s'",
						 argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		return agent_usage_error(self, argc - optind < 2 ?
					 "need a snapshot and a directory" :
					 "too many arguments");
	if ((rc = mount_check_dir(self, argv[optind + 1])) >= 0)
		return rc;

	mount_prepare(&m);
	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0 ||
	    (rc = snapshots_resolve(&manifest, c, argv[optind])) < 0 ||
	    (rc = mount_setup(&m, c, manifest, cache_size)) < 0)
		goto cleanup;
	id = json_string_value(json_object_get(manifest, "id"));
	rc = mount_serve(&m, id ? id : "?", argv[optind + 1], g->quiet);
cleanup:
	mount_teardown(&m);
	json_decref(manifest);
	client_free(c);
	settings_release(&s);
	return rc;
}
