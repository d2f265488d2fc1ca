/*
 * restore.c - `dedup-agent restore SNAPSHOT|latest --target DIR
 *             [--include PATTERN]... | --format tar --output FILE|-`
 *
 * manifest -> catalog chunks (fetched, verified, streamed through the
 * catalog reader) -> selected entries -> a sink: the disk writer below, or
 * the tar writer (export.c). File data is fetched in batches (up to
 * RESTORE_BATCH_BYTES of plain data across consecutive files), and every
 * chunk is verified against its id before one byte of it is written.
 *
 * Entries wait in a fixed ring of copies (the catalog reader's pointers only
 * live until its next call) so that a batch can look ahead past the entry
 * being written. While one batch is written, the next ones are planned
 * and RESTORE_FETCHERS threads download and decode them, so the server,
 * the decoding and the disk overlap.
 *
 * The disk writer never resolves a path through the file system: it opens
 * each entry's parent one component at a time from the target directory
 * with O_NOFOLLOW | O_DIRECTORY (creating missing ones), so a symlink
 * anywhere on the way - restored earlier or already in the target - makes
 * the entry refused, never followed, and a path longer than PATH_MAX works.
 * libarchive's disk writer (secure-extraction flags, xattrs, ACLs) then
 * creates the entry by its name inside that open parent (it is made the
 * working directory). Directories are made here and get their owner, mode,
 * ACLs, xattrs and times at the end, deepest first, after their children;
 * hard links are made here with linkat() between two parents opened the
 * same safe way. Holes are not written: a hole of the catalog (version
 * 3), and every block-aligned run of zeros inside a chunk (wpool.c), is
 * left a hole of the new file, which gets its size at the end.
 *
 * What the catalog claims is not trusted further than its maker
 * (docs/SECURITY.md): a hard link is made only to a path this restore
 * created, and another client's snapshot loses setuid/setgid bits, device
 * nodes and xattrs outside user. (struct meta_drop) unless
 * --same-privileges.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <zstd.h>

#include "catalog.h"
#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "catstream.h"
#include "fetch.h"
#include "idset.h"
#include "meta.h"
#include "pattern.h"
#include "repo_config.h"
#include "restore.h"
#include "snapshots.h"
#include "wpool.h"

#define RESTORE_BATCH_BYTES (8u * 1024 * 1024)
/* Batches fetched at once while one is written, and the slots they take:
 * fetches in flight overlap the server's reading and sending with the
 * agent's decoding and writing. Four of 8 MiB keep the disks busier than
 * two of 16 MiB did (the server reads each fetch's spans one after the
 * other, the writers write past the page cache: with two, a third of the
 * restore's time was a CPU waiting for a disk) in less memory: the mixed
 * tree of `make bench` restored in 2.64-2.68 s against 2.94-3.06 s,
 * peak RSS 136-140 against 148-151 MiB (docs/FLOORS.md, "Fetches in
 * flight"). */
#define RESTORE_FETCHERS 4u
#define RESTORE_SLOTS (RESTORE_FETCHERS + 1)
#define RESTORE_BATCH_IDS 8192u
#define RESTORE_BATCH_REFS 65536u
#define RESTORE_QUEUE_LEN 4096u
/* Catalog chunks fetched at a time, at most. */
#define RESTORE_CATALOG_IDS 64u
/* Regular files are written by this many threads (a core each, within
 * bounds), holding at most RESTORE_WRITE_BYTES of data between them. */
#define RESTORE_WRITERS_MIN 2u
#define RESTORE_WRITERS_MAX 4u
#define RESTORE_WRITE_BYTES (16u * 1024 * 1024)

/* ---- the stream ---- */

/* A batch of file data: the chunk refs of consecutive entries in the
 * order they are written, each an index into the unique ids fetched. */
struct rbatch {
	struct fetch_batch fb;
	struct dd_id *uids;
	uint32_t *ulens;          /* plain length of each, as planned */
	size_t nuids, uids_alloc, ulens_alloc;
	uint32_t *refs;
	size_t nrefs, refs_alloc;
};

struct restore {
	struct client *client;
	size_t batch_bytes, batch_ids;
	const struct pattern_list *include;
	const struct restore_sink *sink;

	struct catstream *cs;
	bool cat_eof;

	/* entries read but not yet written; entry number `abs` (counted
	 * from the catalog's start) sits in q[abs % RESTORE_QUEUE_LEN] */
	struct restore_entry q[RESTORE_QUEUE_LEN];
	uint64_t qhead;           /* number of the oldest entry held */
	size_t qcount;

	/* Batches are numbered in plan order; batch k sits in slot
	 * k % RESTORE_SLOTS and is fetched by fetcher k % RESTORE_FETCHERS.
	 * While batch `seq_cur` is written, the fetchers get the next ones
	 * (up to seq_planned). The plan cursor is the first chunk ref not yet
	 * in a batch. */
	struct rbatch batches[RESTORE_SLOTS];
	struct rbatch *cur;
	uint64_t seq_cur, seq_planned;
	size_t refpos;            /* next ref of cur */
	uint64_t plan_abs, plan_j;
	struct idset *uniq;
	struct fetcher *fetchers[RESTORE_FETCHERS];
	struct dd_buf plain;      /* a chunk decoded here, not by the fetcher */
	const uint8_t *data;      /* the current chunk's verified bytes */
	size_t data_len;
	ZSTD_DCtx *dctx;
};

static void rentry_release(struct restore_entry *re)
{
	free(re->path);
	free(re->link);
	free(re->ext);
	free(re->chunks);
	memset(re, 0, sizeof(*re));
}

static int rentry_copy(struct restore_entry *re, const struct dd_entry *e,
		       bool with_ext)
{
	memset(re, 0, sizeof(*re));
	re->e = *e;
	re->with_ext = with_ext;
	if (!(re->path = malloc((size_t)e->path_len + 1)))
		goto nomem;
	memcpy(re->path, e->path, e->path_len);
	re->path[e->path_len] = '\0';
	re->e.path = re->path;
	if (e->link_len) {
		if (!(re->link = malloc(e->link_len + 1)))
			goto nomem;
		memcpy(re->link, e->link, e->link_len);
		re->link[e->link_len] = '\0';
	}
	re->e.link = re->link;
	re->e.ext = NULL;
	re->e.ext_len = 0;
	if (with_ext && e->ext_len) {
		if (!(re->ext = malloc(e->ext_len)))
			goto nomem;
		memcpy(re->ext, e->ext, e->ext_len);
		re->e.ext = re->ext;
		re->e.ext_len = e->ext_len;
	}
	if (e->nchunks) {
		if (!(re->chunks = malloc(e->nchunks * sizeof(*re->chunks))))
			goto nomem;
		memcpy(re->chunks, e->chunks, e->nchunks * sizeof(*re->chunks));
	}
	re->e.chunks = re->chunks;
	return 0;
nomem:
	rentry_release(re);
	return dd_error_set(-ENOMEM, "out of memory");
}

/* Reads the next selected catalog entry into the ring: 1 added, 0 end,
 * < 0 error. */
static int restore_read_entry(struct restore *r)
{
	struct restore_entry *re;
	struct dd_entry e;
	int rc;

	assert(r->qcount < RESTORE_QUEUE_LEN);
	for (;;) {
		if (r->cat_eof)
			return 0;
		rc = catstream_next(r->cs, &e);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			r->cat_eof = true;
			return 0;
		}
		re = &r->q[(r->qhead + r->qcount) % RESTORE_QUEUE_LEN];
		rc = rentry_copy(re, &e, catstream_version(r->cs) >= 2);
		if (rc < 0)
			return rc;
		if (pattern_selects(r->include, re->path))
			break;
		rc = r->sink->unselected ?
			r->sink->unselected(r->sink->ctx, re) : 0;
		rentry_release(re);
		if (rc < 0)
			return rc;
	}
	r->qcount++;
	return 1;
}
/* Room for `need` elements of `size` bytes in array p (of *alloc): the
 * array, possibly moved, or NULL when out of memory (p is kept). */
static void *restore_grow(void *p, size_t *alloc, size_t need, size_t size)
{
	size_t a = *alloc ? *alloc : 256;

	if (need <= *alloc)
		return p;
	while (a < need)
		a *= 2;
	if (!(p = realloc(p, a * size)))
		return NULL;
	*alloc = a;
	return p;
}

/*
 * Plans a batch from the plan cursor: chunk refs of consecutive entries up
 * to batch_bytes of unique plain data (or batch_ids ids), reading more of
 * the catalog into the queue as needed. Returns the number of refs
 * planned: 0 when nothing is left or the queue is full.
 */
static int restore_plan(struct restore *r, struct rbatch *b)
{
	size_t plain = 0;
	uint32_t u;
	void *p;
	int rc;

	idset_clear(r->uniq);
	b->nuids = b->nrefs = 0;
	/* Entries without data may have been written past the cursor. */
	if (r->plan_abs < r->qhead) {
		r->plan_abs = r->qhead;
		r->plan_j = 0;
	}
	for (;;) {
		struct restore_entry *re;

		if (r->plan_abs == r->qhead + r->qcount) {
			if (r->qcount == RESTORE_QUEUE_LEN)
				break;
			if ((rc = restore_read_entry(r)) < 0)
				return rc;
			if (rc == 0)
				break;
		}
		re = &r->q[r->plan_abs % RESTORE_QUEUE_LEN];
		for (; r->plan_j < re->e.nchunks; r->plan_j++) {
			const struct dd_chunk_ref *ref = &re->chunks[r->plan_j];

			if (dd_chunk_ref_is_hole(ref))
				continue;      /* nothing to fetch */
			if (b->nrefs > 0 &&
			    (plain + ref->plain_len > r->batch_bytes ||
			     b->nuids >= r->batch_ids ||
			     b->nrefs >= RESTORE_BATCH_REFS))
				return (int)b->nrefs;
			rc = idset_insert(r->uniq, &ref->id, (uint32_t)b->nuids, &u);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				p = restore_grow(b->uids, &b->uids_alloc,
						 b->nuids + 1, sizeof(*b->uids));
				if (!p)
					return dd_error_set(-ENOMEM, "out of memory");
				b->uids = p;
				p = restore_grow(b->ulens, &b->ulens_alloc,
						 b->nuids + 1, sizeof(*b->ulens));
				if (!p)
					return dd_error_set(-ENOMEM, "out of memory");
				b->ulens = p;
				b->uids[b->nuids] = ref->id;
				b->ulens[b->nuids] = ref->plain_len;
				u = (uint32_t)b->nuids++;
				plain += ref->plain_len;
			}
			p = restore_grow(b->refs, &b->refs_alloc, b->nrefs + 1,
					 sizeof(*b->refs));
			if (!p)
				return dd_error_set(-ENOMEM, "out of memory");
			b->refs = p;
			b->refs[b->nrefs++] = u;
		}
		r->plan_abs++;
		r->plan_j = 0;
	}
	return (int)b->nrefs;
}

/* Plans batch `k` and has its fetcher get it: > 0 started, 0 nothing to
 * plan now, < 0 error. */
static int restore_start(struct restore *r, uint64_t k)
{
	struct rbatch *b = &r->batches[k % RESTORE_SLOTS];
	int rc = restore_plan(r, b);

	if (rc <= 0)
		return rc;
	fetcher_start(r->fetchers[k % RESTORE_FETCHERS], &b->fb, b->uids,
		      b->ulens, b->nuids);
	r->seq_planned = k;
	return rc;
}

/* Makes the next batch current (planning and fetching it first if nobody
 * did), then keeps every fetcher busy with the batches after it. */
static int restore_advance(struct restore *r)
{
	int rc;

	if (r->seq_planned == r->seq_cur) {
		if ((rc = restore_start(r, r->seq_cur + 1)) < 0)
			return rc;
		assert(rc > 0);
	}
	r->seq_cur++;
	r->cur = &r->batches[r->seq_cur % RESTORE_SLOTS];
	r->refpos = 0;
	if ((rc = fetcher_wait(r->fetchers[r->seq_cur % RESTORE_FETCHERS])) < 0)
		return rc;
	while (r->seq_planned < r->seq_cur + RESTORE_FETCHERS) {
		if ((rc = restore_start(r, r->seq_planned + 1)) <= 0)
			return rc;
	}
	return 0;
}

/*
 * The entry to name when getting a chunk failed: a batch is fetched for
 * several files at once, so the chunk the error names (the first 64-hex
 * word of the message) may belong to a later file than `re`. Returns the
 * path of the queued entry that uses that chunk, or re's path.
 */
static const char *restore_blame(const struct restore *r,
				 const struct restore_entry *re)
{
	const char *msg = dd_error_last(), *start = NULL;
	struct dd_id id;
	size_t run = 0;

	/* The first run of exactly 64 hex digits. */
	for (const char *p = msg;; p++) {
		if (*p && isxdigit((unsigned char)*p)) {
			run++;
			continue;
		}
		if (run == DD_ID_HEX_LEN) {
			start = p - run;
			break;
		}
		run = 0;
		if (!*p)
			break;
	}
	if (!start || dd_hex_decode(id.b, DD_ID_LEN, start, DD_ID_HEX_LEN) < 0)
		return re->path;
	for (size_t k = 0; k < r->qcount; k++) {
		const struct restore_entry *q =
			&r->q[(r->qhead + k) % RESTORE_QUEUE_LEN];

		for (uint64_t j = 0; j < q->e.nchunks; j++)
			if (dd_id_eq(&q->chunks[j].id, &id))
				return q->path;
	}
	return re->path;
}

/* Chunk j of the entry being written, verified, in r->data. */
static int restore_next_chunk(struct restore *r, const struct restore_entry *re,
			      uint64_t j)
{
	const struct dd_chunk_ref *ref = &re->chunks[j];
	uint32_t u;
	int rc;

	if ((!r->cur || r->refpos == r->cur->nrefs) &&
	    (rc = restore_advance(r)) < 0)
		return rc;
	u = r->cur->refs[r->refpos++];
	assert(dd_id_eq(&r->cur->fb.recs[u].id, &ref->id));
	r->data_len = ref->plain_len;
	return fetch_batch_chunk_ref(&r->cur->fb, u, ref->plain_len, &r->data,
				     &r->plain, r->dctx);
}


static int restore_setup(struct restore *r, struct client *c,
			 const struct settings *s, const json_t *manifest)
{
	struct repo_config cfg;
	size_t per_fetch;
	int rc;

	r->client = c;
	for (size_t i = 0; i < DD_ARRAY_SIZE(r->batches); i++)
		fetch_batch_init(&r->batches[i].fb);
	dd_buf_init(&r->plain, 0);

	if ((rc = repo_config_fetch(&cfg, c)) < 0)
		return rc;
	r->batch_bytes = RESTORE_BATCH_BYTES;
	if (cfg.max_fetch_response && r->batch_bytes > cfg.max_fetch_response / 2)
		r->batch_bytes = cfg.max_fetch_response / 2;
	r->batch_ids = RESTORE_BATCH_IDS;
	if (cfg.max_ids_per_query && r->batch_ids > cfg.max_ids_per_query)
		r->batch_ids = cfg.max_ids_per_query;
	per_fetch = r->batch_bytes / cfg.chunker.max_size;
	if (per_fetch > RESTORE_CATALOG_IDS)
		per_fetch = RESTORE_CATALOG_IDS;

	if ((rc = catstream_new(&r->cs, c, manifest, per_fetch)) < 0 ||
	    (rc = idset_new(&r->uniq)) < 0)
		return rc;
	for (size_t i = 0; i < RESTORE_FETCHERS; i++)
		if ((rc = fetcher_new(&r->fetchers[i], s)) < 0)
			return rc;
	if (!(r->dctx = ZSTD_createDCtx()))
		return dd_error_set(-ENOMEM, "out of memory");
	return 0;
}

static void restore_release(struct restore *r)
{
	/* First stop the fetchers: they may be writing into a batch. */
	for (size_t i = 0; i < RESTORE_FETCHERS; i++)
		fetcher_free(r->fetchers[i]);
	while (r->qcount) {
		rentry_release(&r->q[r->qhead % RESTORE_QUEUE_LEN]);
		r->qhead++;
		r->qcount--;
	}
	catstream_free(r->cs);
	for (size_t i = 0; i < DD_ARRAY_SIZE(r->batches); i++) {
		fetch_batch_release(&r->batches[i].fb);
		free(r->batches[i].uids);
		free(r->batches[i].ulens);
		free(r->batches[i].refs);
	}
	dd_buf_release(&r->plain);
	ZSTD_freeDCtx(r->dctx);
	idset_free(r->uniq);
}

static int restore_run(struct restore *r, const struct restore_sink *sink)
{
	struct restore_entry *re;
	int rc;

	for (;;) {
		uint64_t off = 0;
		bool ok;

		if (r->qcount == 0) {
			if ((rc = restore_read_entry(r)) < 0)
				return rc;
			if (rc == 0)
				break;
		}
		re = &r->q[r->qhead % RESTORE_QUEUE_LEN];
		rc = sink->begin(sink->ctx, re);
		ok = rc == 1;
		/* The chunks are consumed even for a skipped entry: the
		 * batch was planned with them. */
		for (uint64_t j = 0; rc >= 0 && j < re->e.nchunks; j++) {
			const struct dd_chunk_ref *ref = &re->chunks[j];

			if (dd_chunk_ref_is_hole(ref)) {
				if (ok && sink->hole)
					rc = sink->hole(sink->ctx, re,
							ref->plain_len, off);
				off += ref->plain_len;
				continue;
			}
			if ((rc = restore_next_chunk(r, re, j)) < 0) {
				const char *who = restore_blame(r, re);
				char q[512];

				rc = agent_error_wrap(rc, "cannot restore '/%s'",
						      dd_quote(q, sizeof(q), who,
							       strlen(who)));
				break;
			}
			if (ok)
				rc = sink->data(sink->ctx, re, r->data,
						r->data_len, off);
			off += r->data_len;
		}
		if (rc >= 0 && ok)
			rc = sink->end(sink->ctx, re);
		rentry_release(re);
		r->qhead++;
		r->qcount--;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int restore_stream(struct client *c, const struct settings *s,
		   const json_t *manifest, const struct pattern_list *include,
		   const struct restore_sink *sink)
{
	struct restore *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return dd_error_set(-ENOMEM, "out of memory");
	r->include = include;
	r->sink = sink;
	if ((rc = restore_setup(r, c, s, manifest)) == 0)
		rc = restore_run(r, sink);
	restore_release(r);
	free(r);
	return rc;
}

/* ---- the disk writer ---- */

/* The restore options about privileges (cmd_restore). */
struct restore_privs {
	bool same;               /* --same-privileges */
	bool no_setuid, no_devices, no_special_xattrs;
};

/* A directory to finish at the end: its metadata, as recorded. */
struct dir_fixup {
	struct dd_entry e;       /* path and ext point to the copies */
	char *path;
	uint8_t *ext;
	bool with_ext;
};

struct rdisk {
	const char *target;
	int rootfd;              /* the target directory */
	int pfd;                 /* the current entry's parent, or -1 */
	char *ppath;             /* its path ("" for the target) */
	bool cwd_ok;             /* pfd is the working directory */
	struct archive *aw;
	struct archive_entry *ae;
	bool writing;            /* a file's header was written */
	struct wpool *pool;      /* writes regular files */
	bool pooled;             /* the entry begun is the pool's */
	char *last_pooled;       /* path of the last file given to the pool */
	size_t last_pooled_len;
	struct dir_fixup *fixups;
	size_t nfixups, fixups_alloc;
	/* SHA-256 of the path of every non-directory this restore created:
	 * the only sources a hard link may have. */
	struct idset *made;
	struct meta_drop drop;   /* what metadata is left out */

	uint64_t files, dirs, symlinks, hardlinks, specials, bytes;
	unsigned long refused, failed;
	/* --include: a hard link whose first path it does not select */
	const struct pattern_list *include;
	unsigned long unlinked;
};

/* What `made` says of a path: created by this restore, or a device
 * node left out as asked (--no-devices), whose hard links go too, or
 * (with --no-devices) one the selection left out: a selected hard link
 * to it is that device, left out and counted once. */
enum { RDISK_MADE = 0, RDISK_DROPPED_DEVICE = 1, RDISK_UNSELECTED_DEVICE = 2 };

static int rdisk_mark(struct rdisk *d, const char *path, uint32_t what)
{
	struct dd_id h;

	dd_sha256(&h, path, strlen(path));
	if (idset_set(d->made, &h, what) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	return 0;
}

/* Remembers that this restore created `path` (a non-directory). */
static int rdisk_mark_made(struct rdisk *d, const char *path)
{
	return rdisk_mark(d, path, RDISK_MADE);
}

/* RDISK_MADE or RDISK_DROPPED_DEVICE for `path`, -1 for neither. */
static int rdisk_made_as(const struct rdisk *d, const char *path)
{
	struct dd_id h;
	uint32_t what;

	dd_sha256(&h, path, strlen(path));
	return idset_lookup(d->made, &h, &what) == 1 ? (int)what : -1;
}

static bool rdisk_was_made(const struct rdisk *d, const char *path)
{
	return rdisk_made_as(d, path) == RDISK_MADE;
}

/* A device node left out as asked: counted, its path remembered. */
static int rdisk_drop_device(struct rdisk *d, const char *path)
{
	if (d->drop.n_devices++ == 0)
		dd_quote(d->drop.ex_device, sizeof(d->drop.ex_device), path,
			 strlen(path));
	return rdisk_mark(d, path, RDISK_DROPPED_DEVICE);
}

static const char *rdisk_shown(char buf[512], const char *path)
{
	return dd_quote(buf, 512, path, strlen(path));
}

static void rdisk_refuse(struct rdisk *d, const char *path, const char *why)
{
	char q[512];

	agent_warn("refusing entry '%s': %s", rdisk_shown(q, path), why);
	d->refused++;
}

static void rdisk_fail(struct rdisk *d, const char *path, const char *what,
		       int err)
{
	char q[512];

	agent_warn("cannot restore '%s': %s%s%s", rdisk_shown(q, path), what,
		   err ? ": " : "", err ? strerror(err) : "");
	d->failed++;
}

/*
 * Opens the directory `dir` (len bytes of a catalog path, 0 = the target)
 * one component at a time with O_NOFOLLOW, from the target or from `from`
 * (an open directory whose path is a prefix of dir ending at `from_len`).
 * With `create`, missing components are made (mode 0755). Returns the fd,
 * -ENOTDIR when a component is a symlink or not a directory (the caller
 * refuses the entry), another -errno otherwise.
 */
static int rdisk_open_dir(struct rdisk *d, const char *dir, size_t len,
			  int from, size_t from_len, bool create)
{
	char name[NAME_MAX + 1];
	size_t i = from >= 0 ? from_len : 0;
	int fd = dup(from >= 0 ? from : d->rootfd);

	if (fd < 0)
		return -errno;
	while (i < len) {
		size_t start, n;
		int nfd;

		if (dir[i] == '/')
			i++;
		start = i;
		while (i < len && dir[i] != '/')
			i++;
		n = i - start;
		if (n == 0 || n > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, dir + start, n);
		name[n] = '\0';
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST) {
				int err = -errno;

				close(fd);
				return err;
			}
			nfd = openat(fd, name, O_RDONLY | O_DIRECTORY |
				     O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			int err = errno == ELOOP ? -ENOTDIR : -errno;

			close(fd);
			return err;
		}
		close(fd);
		fd = nfd;
	}
	return fd;
}

/* Makes d->pfd the open parent of `path` (created as needed) and the
 * working directory; sets *base to the entry's name. 1 ready, 0 refused
 * or failed (reported). */
static int rdisk_enter_parent(struct rdisk *d, const char *path,
			      const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t plen = slash ? (size_t)(slash - path) : 0;
	size_t cur = d->ppath ? strlen(d->ppath) : 0;
	char *pp;
	int fd;

	*base = slash ? slash + 1 : path;
	if (strlen(*base) > NAME_MAX) {
		rdisk_fail(d, path, "name too long", ENAMETOOLONG);
		return 0;
	}
	if (d->pfd >= 0 && d->ppath && cur == plen &&
	    memcmp(d->ppath, path, plen) == 0)
		goto chdir;
	/* Descending from the current parent saves opening its ancestors
	 * again (the catalog lists a directory's children after it). */
	if (d->pfd >= 0 && d->ppath && cur < plen &&
	    (cur == 0 || path[cur] == '/') && memcmp(d->ppath, path, cur) == 0)
		fd = rdisk_open_dir(d, path, plen, d->pfd, cur, true);
	else
		fd = rdisk_open_dir(d, path, plen, -1, 0, true);
	if (fd < 0) {
		char q[512];

		if (fd == -ENOTDIR) {
			agent_warn("refusing entry '%s': a parent in the target "
				   "is a symlink or not a directory",
				   rdisk_shown(q, path));
			d->refused++;
		} else {
			rdisk_fail(d, path, "cannot open its directory", -fd);
		}
		return 0;
	}
	if (!(pp = strndup(path, plen))) {
		close(fd);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	if (d->pfd >= 0)
		close(d->pfd);
	free(d->ppath);
	d->pfd = fd;
	d->ppath = pp;
	d->cwd_ok = false;
chdir:
	if (!d->cwd_ok) {
		if (fchdir(d->pfd) < 0) {
			rdisk_fail(d, path, "cannot enter its directory", errno);
			return 0;
		}
		d->cwd_ok = true;
	}
	return 1;
}

static int rdisk_push_fixup(struct rdisk *d, const struct restore_entry *re)
{
	struct dir_fixup *f;

	if (d->nfixups == d->fixups_alloc) {
		size_t a = d->fixups_alloc ? d->fixups_alloc * 2 : 64;
		struct dir_fixup *p = realloc(d->fixups, a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		d->fixups = p;
		d->fixups_alloc = a;
	}
	f = &d->fixups[d->nfixups];
	memset(f, 0, sizeof(*f));
	f->e = re->e;
	f->with_ext = re->with_ext;
	if (!(f->path = strdup(re->path)))
		return dd_error_set(-ENOMEM, "out of memory");
	if (re->e.ext_len && !(f->ext = malloc(re->e.ext_len))) {
		free(f->path);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	if (re->e.ext_len)
		memcpy(f->ext, re->e.ext, re->e.ext_len);
	f->e.path = f->path;
	f->e.ext = f->ext;
	f->e.link = NULL;
	f->e.link_len = 0;
	f->e.chunks = NULL;
	d->nfixups++;
	return 0;
}

static int rdisk_dir(struct rdisk *d, const struct restore_entry *re,
		     const char *base)
{
	struct stat st;

	if (fstatat(d->pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			goto done;
		/* Whatever sits there (a symlink too) goes, unfollowed. */
		if (unlinkat(d->pfd, base, 0) < 0) {
			rdisk_fail(d, re->path, "cannot remove what is in the way",
				   errno);
			return 0;
		}
	}
	if (mkdirat(d->pfd, base, 0700) < 0) {
		rdisk_fail(d, re->path, "cannot create the directory", errno);
		return 0;
	}
done:
	d->dirs++;
	return rdisk_push_fixup(d, re);
}

static int rdisk_hardlink(struct rdisk *d, const struct restore_entry *re,
			  const char *base)
{
	const char *src = re->link;
	const char *slash = strrchr(src, '/');
	const char *sbase = slash ? slash + 1 : src;
	struct stat st;
	int sfd, rc = 0;

	if (!src || dd_catalog_path_check(src, strlen(src)) < 0 ||
	    strlen(sbase) > NAME_MAX) {
		rdisk_refuse(d, re->path, "the hard link's source is not a "
			     "path inside the target");
		return 0;
	}
	/* a hard link to a device node left out goes with it (the node
	 * is counted once: here if the selection left its first path out,
	 * which is then marked dropped for its other links) */
	switch (rdisk_made_as(d, src)) {
	case RDISK_UNSELECTED_DEVICE:
		return rdisk_drop_device(d, re->path) < 0 ||
		       rdisk_mark(d, src, RDISK_DROPPED_DEVICE) < 0 ?
			-ENOMEM : 0;
	case RDISK_DROPPED_DEVICE:
		return rdisk_mark(d, re->path, RDISK_DROPPED_DEVICE) < 0 ?
			-ENOMEM : 0;
	default:
		break;
	}
	/* Linking to a file that was in the target before (or that this
	 * restore refused) would hand the snapshot a file it does not own. */
	if (!rdisk_was_made(d, src)) {
		char q[512], q2[512];

		/* not selected: nothing unsafe, a selection to widen */
		if (d->include && d->include->n &&
		    !pattern_selects(d->include, src)) {
			char pat[1024];

			rdisk_shown(q, re->path);
			rdisk_shown(q2, src);
			pattern_literal(pat, sizeof(pat), q2);
			agent_warn("not restoring '%s': it is a hard link to "
				   "'%s', which the selection leaves out (add "
				   "--include '%s')", q, q2, pat);
			d->unlinked++;
			return 0;
		}
		rdisk_refuse(d, re->path, "the hard link's source was not "
			     "restored by this restore");
		return 0;
	}
	sfd = rdisk_open_dir(d, src, slash ? (size_t)(slash - src) : 0, -1, 0,
			     false);
	if (sfd < 0) {
		if (sfd == -ENOTDIR)
			rdisk_refuse(d, re->path, "the hard link's source lies "
				     "beyond a symlink or non-directory");
		else
			rdisk_fail(d, re->path, "its hard link source was not "
				   "restored", -sfd);
		return 0;
	}
	if (fstatat(sfd, sbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rdisk_fail(d, re->path, "its hard link source was not restored",
			   errno);
		goto cleanup;
	}
	if (S_ISDIR(st.st_mode)) {
		rdisk_refuse(d, re->path, "the hard link's source is a directory");
		goto cleanup;
	}
	if (fstatat(d->pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    unlinkat(d->pfd, base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
		rdisk_fail(d, re->path, "cannot remove what is in the way", errno);
		goto cleanup;
	}
	/* No AT_SYMLINK_FOLLOW: a symlink source is linked, not followed. */
	if (linkat(sfd, sbase, d->pfd, base, 0) < 0) {
		rdisk_fail(d, re->path, "cannot create the hard link", errno);
		goto cleanup;
	}
	d->hardlinks++;
	rc = rdisk_mark_made(d, re->path);
cleanup:
	close(sfd);
	return rc;
}

/* Reports a libarchive result; false when the entry failed. */
static bool rdisk_result(struct rdisk *d, const struct restore_entry *re,
			 int ar)
{
	char q[512];

	if (ar == ARCHIVE_OK)
		return true;
	if (ar == ARCHIVE_WARN) {
		agent_warn("'%s': %s", rdisk_shown(q, re->path),
			   archive_error_string(d->aw));
		return true;
	}
	agent_warn("cannot restore '%s': %s", rdisk_shown(q, re->path),
		   archive_error_string(d->aw));
	d->failed++;
	return false;
}

/* A regular file goes to the writer threads. */
static int rdisk_pool_begin(struct rdisk *d, const struct restore_entry *re,
			    const char *base)
{
	size_t n = re->e.path_len;
	int rc;

	if ((rc = rdisk_mark_made(d, re->path)) < 0 ||
	    (rc = wpool_begin(d->pool, d->pfd, base, re->path, &re->e,
			      re->with_ext)) < 0)
		return rc;
	if (!d->last_pooled || n > d->last_pooled_len) {
		char *p = realloc(d->last_pooled, n + 1);

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		d->last_pooled = p;
	}
	memcpy(d->last_pooled, re->path, n + 1);
	d->last_pooled_len = n;
	d->pooled = true;
	return 1;
}

/* With --no-devices, a device node the selection leaves out is
 * remembered: a selected hard link to it is that device, left out too
 * (rdisk_hardlink), not a link whose first path the selection lacks. */
static int rdisk_unselected(void *ctx, const struct restore_entry *re)
{
	struct rdisk *d = ctx;

	if (!d->drop.devices ||
	    (re->e.type != DD_ENTRY_CHR && re->e.type != DD_ENTRY_BLK))
		return 0;
	return rdisk_mark(d, re->path, RDISK_UNSELECTED_DEVICE) < 0 ?
		-ENOMEM : 0;
}

static int rdisk_begin(void *ctx, const struct restore_entry *re)
{
	struct rdisk *d = ctx;
	const char *base;
	int rc;

	d->writing = false;
	d->pooled = false;
	/* The catalog reader checked the path; a second look costs little. */
	if (dd_catalog_path_check(re->e.path, re->e.path_len) < 0) {
		rdisk_refuse(d, re->path, "unsafe path");
		return 0;
	}
	/* Entries below a file still being written (only a hostile catalog
	 * has them) and hard links (whose source must exist) wait for the
	 * writers, so they meet what a serial restore would. */
	if (re->e.type == DD_ENTRY_HARDLINK ||
	    (d->last_pooled && re->e.path_len > d->last_pooled_len &&
	     re->path[d->last_pooled_len] == '/' &&
	     memcmp(re->path, d->last_pooled, d->last_pooled_len) == 0))
		wpool_drain(d->pool);
	if ((rc = rdisk_enter_parent(d, re->path, &base)) <= 0)
		return rc;
	switch (re->e.type) {
	case DD_ENTRY_DIR:
		return rdisk_dir(d, re, base) < 0 ? -ENOMEM : 0;
	case DD_ENTRY_HARDLINK:
		return rdisk_hardlink(d, re, base);
	case DD_ENTRY_FILE:
		return rdisk_pool_begin(d, re, base);
	case DD_ENTRY_CHR:
	case DD_ENTRY_BLK:
		if (d->drop.devices)
			return rdisk_drop_device(d, re->path) < 0 ? -ENOMEM : 0;
		break;
	default:
		break;
	}
	meta_fill(d->ae, &re->e, base, re->link, re->with_ext, &d->drop);
	if (!rdisk_result(d, re, archive_write_header(d->aw, d->ae)))
		return 0;
	d->writing = true;
	return 1;
}

static bool rdisk_zeros(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int rdisk_data(void *ctx, const struct restore_entry *re,
		      const uint8_t *p, size_t n, uint64_t off)
{
	struct rdisk *d = ctx;
	la_ssize_t w;

	/* The writer threads leave the zero blocks of the rest unwritten. */
	if (d->pooled)
		return rdisk_zeros(p, n) ? 0 : wpool_data(d->pool, p, n, off);
	if (!d->writing || rdisk_zeros(p, n))
		return 0;       /* a hole: the file is extended at its end */
	w = archive_write_data_block(d->aw, p, n, (la_int64_t)off);
	if (w < 0) {
		rdisk_result(d, re, (int)w);
		d->writing = false;
	}
	return 0;
}

static int rdisk_end(void *ctx, const struct restore_entry *re)
{
	struct rdisk *d = ctx;

	if (d->pooled) {
		d->pooled = false;
		return wpool_end(d->pool);
	}
	if (!d->writing)
		return 0;
	d->writing = false;
	if (!rdisk_result(d, re, archive_write_finish_entry(d->aw)))
		return 0;
	if (rdisk_mark_made(d, re->path) < 0)
		return -ENOMEM;
	switch (re->e.type) {
	case DD_ENTRY_FILE:
		d->files++;
		d->bytes += re->e.size;
		break;
	case DD_ENTRY_SYMLINK:
		d->symlinks++;
		break;
	default:
		d->specials++;
		break;
	}
	return 0;
}

/* Directories get their metadata last, deepest first: writing a child
 * changes its parent's mtime, and a read-only parent would block it. */
static void rdisk_finish_dirs(struct rdisk *d)
{
	for (size_t i = d->nfixups; i-- > 0;) {
		const struct dir_fixup *f = &d->fixups[i];
		const char *slash = strrchr(f->path, '/');
		char q[512];
		int pfd, fd;

		pfd = rdisk_open_dir(d, f->path, slash ? (size_t)(slash - f->path)
				     : 0, -1, 0, false);
		fd = pfd < 0 ? pfd : openat(pfd, slash ? slash + 1 : f->path,
					    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
		if (fd < 0) {
			agent_warn("cannot set owner, mode or times of '%s': %s",
				   rdisk_shown(q, f->path),
				   strerror(pfd < 0 ? -pfd : errno));
			d->failed++;
		} else if (meta_apply(fd, &f->e, f->with_ext,
				      rdisk_shown(q, f->path), &d->drop) > 0) {
			d->failed++;
		}
		if (fd >= 0)
			close(fd);
		if (pfd >= 0)
			close(pfd);
	}
}

/* Zero runs are left as holes in blocks of the target's file system
 * (its st_blksize; a hole smaller than a block saves nothing). */
static void rdisk_hole_block(struct rdisk *d)
{
	struct stat st;
	size_t blk = WPOOL_HOLE_BLOCK;

	if (fstat(d->rootfd, &st) == 0 && st.st_blksize >= 512 &&
	    st.st_blksize <= (1 << 20) &&
	    (st.st_blksize & (st.st_blksize - 1)) == 0)
		blk = (size_t)st.st_blksize;
	if (blk < WPOOL_HOLE_BLOCK)
		blk = WPOOL_HOLE_BLOCK;
	wpool_set_hole_block(d->pool, blk);
}

/* Creates the target if missing and opens it; `drop` says what metadata
 * to leave out. */
static int rdisk_setup(struct rdisk *d, const char *target,
		       const struct meta_drop *drop)
{
	int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
		ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL |
		ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
		ARCHIVE_EXTRACT_UNLINK;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned writers = ncpu < (long)RESTORE_WRITERS_MIN ? RESTORE_WRITERS_MIN :
		ncpu > (long)RESTORE_WRITERS_MAX ? RESTORE_WRITERS_MAX :
		(unsigned)ncpu;
	const char *env = getenv("DEDUP_RESTORE_WRITERS");
	uint64_t n;
	int rc;

	d->target = target;
	d->rootfd = -1;
	d->pfd = -1;
	/* An override for benchmarks. */
	if (env && dd_parse_u64(env, &n) == 0 && n >= 1 && n <= 16)
		writers = (unsigned)n;
	d->drop = *drop;
	env = getenv("DEDUP_RESTORE_DIRECT");
	if ((rc = idset_new(&d->made)) < 0 ||
	    (rc = wpool_new(&d->pool, writers, RESTORE_WRITE_BYTES,
			    &d->drop, !env || strcmp(env, "0") != 0)) < 0)
		return rc;
	if (geteuid() == 0)
		flags |= ARCHIVE_EXTRACT_OWNER;
	if (!(d->aw = archive_write_disk_new()) || !(d->ae = archive_entry_new()))
		return dd_error_set(-ENOMEM, "out of memory");
	/* Owners by name where the name exists here, else by number. */
	if (archive_write_disk_set_options(d->aw, flags) != ARCHIVE_OK ||
	    archive_write_disk_set_standard_lookup(d->aw) != ARCHIVE_OK)
		return dd_error_set(-EIO, "cannot set up the disk writer: %s",
				    archive_error_string(d->aw));
	if ((rc = dd_mkdir_p(target, 0700)) < 0)
		return agent_error_wrap(rc, "cannot create target directory '%s'",
					target);
	d->rootfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->rootfd < 0)
		return dd_error_set(-errno, "cannot open target directory '%s': %s",
				    target, strerror(errno));
	rdisk_hole_block(d);
	return 0;
}

static void rdisk_release(struct rdisk *d)
{
	wpool_free(d->pool);
	free(d->last_pooled);
	if (d->aw)
		archive_write_free(d->aw);
	archive_entry_free(d->ae);
	if (d->pfd >= 0)
		close(d->pfd);
	if (d->rootfd >= 0)
		close(d->rootfd);
	free(d->ppath);
	for (size_t i = 0; i < d->nfixups; i++) {
		free(d->fixups[i].path);
		free(d->fixups[i].ext);
	}
	free(d->fixups);
	idset_free(d->made);
}

/*
 * Whether the snapshot is the restoring token's own: a client token only
 * ever reads its own snapshots, and /history names the caller's client for
 * it (null for an admin, who reads everyone's). Anything else, an error
 * included, counts as another client's snapshot.
 */
static bool restore_own_snapshot(struct client *c, const json_t *manifest)
{
	const char *owner = json_string_value(json_object_get(manifest, "client"));
	const char *me;
	json_t *h = NULL;
	bool own;

	if (client_get_json(c, DD_API_PREFIX "/history?days=1", &h) < 0) {
		dd_error_clear();
		return false;
	}
	me = json_string_value(json_object_get(h, "client"));
	own = owner && me && strcmp(owner, me) == 0;
	json_decref(h);
	return own;
}

/*
 * What the restore of `manifest` leaves out: everything meta.h can for
 * another client's snapshot unless --same-privileges, plus what the
 * options ask for. *why says for the warnings.
 */
static void restore_drop_for(struct meta_drop *drop, const char **why,
			     struct client *c, const json_t *manifest,
			     const struct restore_privs *p)
{
	memset(drop, 0, sizeof(*drop));
	*why = "as asked";
	if (!p->same && !restore_own_snapshot(c, manifest)) {
		drop->setid = drop->special_xattrs = drop->devices = true;
		*why = "the snapshot is another client's; --same-privileges "
			"restores them";
	}
	drop->setid |= p->no_setuid;
	drop->devices |= p->no_devices;
	drop->special_xattrs |= p->no_special_xattrs;
}

/* One warning line per kind of metadata that was left out, naming the
 * first (after the writers are drained). */
static void rdisk_report_drops(const struct rdisk *d, const char *why)
{
	if (d->drop.n_setid)
		agent_warn("left out the setuid/setgid bits of %lu entries, "
			   "first '%s' (%s)", d->drop.n_setid,
			   d->drop.ex_setid, why);
	if (d->drop.n_devices)
		agent_warn("left out %lu device nodes, first '%s' (%s)",
			   d->drop.n_devices, d->drop.ex_device, why);
	if (d->drop.n_xattrs)
		agent_warn("left out %lu security.*, trusted.* or system.* "
			   "extended attributes, first %s (%s)",
			   d->drop.n_xattrs, d->drop.ex_xattr, why);
}

static int restore_to_disk(struct client *c, const struct settings *s,
			   const json_t *manifest,
			   const struct pattern_list *include,
			   const char *target, const struct restore_privs *privs,
			   bool quiet)
{
	struct restore_sink sink = {
		.begin = rdisk_begin, .data = rdisk_data, .end = rdisk_end,
		.unselected = rdisk_unselected,
	};
	struct rdisk d = { .rootfd = -1, .pfd = -1 };
	struct wpool_stats ws;
	struct meta_drop drop;
	const char *why;
	char human[32];
	int rc;

	sink.ctx = &d;
	d.include = include;
	restore_drop_for(&drop, &why, c, manifest, privs);
	if ((rc = rdisk_setup(&d, target, &drop)) < 0 ||
	    (rc = restore_stream(c, s, manifest, include, &sink)) < 0)
		goto cleanup;
	wpool_drain(d.pool);
	wpool_get_stats(d.pool, &ws);
	d.files += ws.files;
	d.bytes += ws.bytes;
	d.failed += ws.failed;
	rc = archive_write_close(d.aw);
	if (rc == ARCHIVE_WARN) {
		agent_warn("%s", archive_error_string(d.aw));
	} else if (rc != ARCHIVE_OK) {
		rc = dd_error_set(-EIO, "cannot finish the restore: %s",
				  archive_error_string(d.aw));
		goto cleanup;
	}
	rdisk_finish_dirs(&d);
	rdisk_report_drops(&d, why);
	if (!quiet) {
		agent_fmt_bytes(human, d.bytes);
		fprintf(stderr,
			"restored %llu files (%s), %llu directories, %llu symlinks, "
			"%llu hard links, %llu special files into '%s'\n",
			(unsigned long long)d.files, human,
			(unsigned long long)d.dirs,
			(unsigned long long)d.symlinks,
			(unsigned long long)d.hardlinks,
			(unsigned long long)d.specials, target);
	}
	rc = DD_EXIT_OK;
	if (d.refused || d.failed)
		rc = dd_error_set(-EIO, "%lu entries refused as unsafe, %lu failed",
				  d.refused, d.failed);
	else if (d.unlinked)
		rc = dd_error_set(-ENOENT, "%lu hard links not restored: the "
				  "selection leaves out their first path (named "
				  "above)", d.unlinked);
cleanup:
	rdisk_release(&d);
	return rc;
}

/* An --include that selected nothing is a mistake to hear of (as borg
 * says "never matched"): each is named, and the restore exits 1. */
static int restore_unmatched(const struct pattern_list *include,
			     const json_t *manifest)
{
	const char *id = json_string_value(json_object_get(manifest, "id"));
	const char *pat;
	size_t i = 0, n = 0;

	for (; (pat = pattern_unmatched(include, &i)) != NULL; i++, n++)
		agent_warn("--include '%s' matched nothing in snapshot %.16s",
			   pat, id ? id : "?");
	if (!n)
		return DD_EXIT_OK;
	return dd_error_set(-ENOENT, "%zu --include pattern(s) matched "
			    "nothing: a pattern matches an entry's whole path "
			    "from the top, as `ls` prints it (home/ann/notes.txt, "
			    "home/*/notes.txt), or a directory above it", n);
}

int cmd_restore(int argc, char **argv, const struct agent_globals *g,
		const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "include", required_argument, NULL, 'i' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "same-privileges", no_argument, NULL, 'P' },
		{ "no-setuid", no_argument, NULL, 'S' },
		{ "no-devices", no_argument, NULL, 'D' },
		{ "no-special-xattrs", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore_privs privs = { 0 };
	struct pattern_list include;
	struct settings s = { 0 };
	struct client *c = NULL;
	json_t *manifest = NULL;
	const char *target = NULL, *format = NULL, *output = NULL;
	bool tar;
	int opt, rc;

	pattern_list_init(&include);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":t:i:f:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			target = optarg;
			break;
		case 'i':
			if (pattern_add(&include, optarg) < 0) {
				rc = agent_usage_error(self, "%s", dd_error_last());
				goto cleanup;
			}
			break;
		case 'f':
			format = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'P':
			privs.same = true;
			break;
		case 'S':
			privs.no_setuid = true;
			break;
		case 'D':
			privs.no_devices = true;
			break;
		case 'X':
			privs.no_special_xattrs = true;
			break;
		case 'h':
			rc = agent_usage_help(self);
			goto cleanup;
		case ':':
			rc = agent_usage_error(self, "option '%s' needs a value",
					       argv[optind - 1]);
			goto cleanup;
		default:
			rc = agent_usage_error(self, "unknown option '%s'",
					       argv[optind - 1]);
			goto cleanup;
		}
	}
	tar = format && strcmp(format, "tar") == 0;
	if (optind >= argc)
		rc = agent_usage_error(self, "no snapshot given");
	else if (optind + 1 < argc)
		rc = agent_usage_error(self, "unexpected argument '%s'",
				       argv[optind + 1]);
	else if (format && !tar)
		rc = agent_usage_error(self, "unknown format '%s' (only 'tar')",
				       format);
	else if (tar && (!output || !*output))
		rc = agent_usage_error(self, "--format tar needs --output FILE or -");
	else if (tar && target)
		rc = agent_usage_error(self, "--target and --format tar exclude "
				       "each other");
	else if (!tar && output)
		rc = agent_usage_error(self, "--output needs --format tar");
	else if (tar && (privs.same || privs.no_setuid || privs.no_devices ||
			 privs.no_special_xattrs))
		rc = agent_usage_error(self, "--same-privileges and --no-* apply "
				       "to --target: an archive keeps what the "
				       "snapshot holds");
	else if (!tar && (!target || !*target))
		rc = agent_usage_error(self, "no --target directory given");
	else
		rc = -1;
	if (rc >= 0)
		goto cleanup;

	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0 ||
	    (rc = snapshots_resolve(&manifest, c, argv[optind])) < 0 ||
	    (rc = pattern_track(&include)) < 0)
		goto cleanup;
	if (tar)
		rc = export_tar(c, &s, manifest, &include, output, g->quiet);
	else
		rc = restore_to_disk(c, &s, manifest, &include, target, &privs,
				     g->quiet);
	if (rc == DD_EXIT_OK)
		rc = restore_unmatched(&include, manifest);
cleanup:
	pattern_list_release(&include);
	json_decref(manifest);
	client_free(c);
	settings_release(&s);
	return rc;
}
