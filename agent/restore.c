/*
 * restore.c - `dedup-agent restore SNAPSHOT|latest --target DIR`
 *
 * manifest -> catalog chunks (fetched, verified, streamed through the
 * catalog reader) -> entries, each written by libarchive's disk writer with
 * its secure-extraction flags, working inside DIR. File data is fetched in
 * batches (up to RESTORE_BATCH_BYTES of plain data across consecutive
 * files), and every chunk is verified against its id before one byte of it
 * is written.
 *
 * Entries wait in a fixed ring of copies (the catalog reader's pointers only
 * live until its next call) so that a batch can look ahead past the entry
 * being written. While one batch is written, the next is planned and a
 * fetcher thread downloads it, so the network and the disk overlap.
 *
 * Paths are checked here before libarchive sees them: the catalog rules
 * again (relative, no "..") and, on disk, that no parent of the entry is a
 * symlink or other non-directory (which would send the write outside DIR).
 * libarchive's SECURE_* flags are the second line of defence.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include "repo_config.h"
#include "snapshots.h"

#define RESTORE_BATCH_BYTES (32u * 1024 * 1024)
#define RESTORE_BATCH_IDS 8192u
#define RESTORE_BATCH_REFS 65536u
#define RESTORE_QUEUE_LEN 4096u
/* Catalog chunks fetched at a time, at most. */
#define RESTORE_CATALOG_IDS 64u

/* ---- restore state ---- */

struct rentry {
	struct dd_entry e;       /* path, link, chunks point to the copies */
	char *path;
	char *link;
	struct dd_chunk_ref *chunks;
};

/* A directory that existed before the restore: libarchive leaves such a
 * directory's owner, mode and times alone, so they are set at the end. */
struct dir_fixup {
	char *path;
	uint32_t mode, uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
};

/* A batch of file data: the chunk refs of consecutive entries in the
 * order they are written, each an index into the unique ids fetched. */
struct rbatch {
	struct fetch_batch fb;
	struct dd_id *uids;
	size_t nuids, uids_alloc;
	uint32_t *refs;
	size_t nrefs, refs_alloc;
};

struct restore {
	struct client *client;
	const char *target;
	bool quiet;
	size_t batch_bytes, batch_ids;

	struct catstream *cs;
	bool cat_eof;

	/* entries read but not yet written; entry number `abs` (counted
	 * from the catalog's start) sits in q[abs % RESTORE_QUEUE_LEN] */
	struct rentry q[RESTORE_QUEUE_LEN];
	uint64_t qhead;           /* number of the oldest entry held */
	size_t qcount;

	/* Two batches: `cur` is being written while `next` is fetched by
	 * the fetcher thread. The plan cursor is the first chunk ref not yet
	 * in either batch. */
	struct rbatch batches[2];
	struct rbatch *cur, *next;
	size_t refpos;            /* next ref of cur */
	uint64_t plan_abs, plan_j;
	struct idset *uniq;
	struct fetcher *fetcher;
	struct dd_buf plain;
	ZSTD_DCtx *dctx;

	struct archive *aw;
	struct archive_entry *ae;
	char *parent_ok;         /* last parent directory found safe */
	struct dir_fixup *fixups;
	size_t nfixups, fixups_alloc;

	uint64_t files, dirs, symlinks, bytes;
	unsigned long refused, failed;
};

static void rentry_release(struct rentry *re)
{
	free(re->path);
	free(re->link);
	free(re->chunks);
	memset(re, 0, sizeof(*re));
}

static int rentry_copy(struct rentry *re, const struct dd_entry *e)
{
	memset(re, 0, sizeof(*re));
	re->e = *e;
	if (!(re->path = strndup(e->path, e->path_len)))
		goto nomem;
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

/* Reads the next catalog entry into the ring: 1 added, 0 end, < 0 error. */
static int restore_read_entry(struct restore *r)
{
	struct dd_entry e;
	int rc;

	assert(r->qcount < RESTORE_QUEUE_LEN);
	if (r->cat_eof)
		return 0;
	rc = catstream_next(r->cs, &e);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		r->cat_eof = true;
		return 0;
	}
	rc = rentry_copy(&r->q[(r->qhead + r->qcount) % RESTORE_QUEUE_LEN], &e);
	if (rc < 0)
		return rc;
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
		struct rentry *re;

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
				b->uids[b->nuids] = ref->id;
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

/* Plans the batch after `cur` and has the fetcher get it meanwhile. */
static int restore_prefetch(struct restore *r)
{
	struct rbatch *b = r->cur == &r->batches[0] ? &r->batches[1] :
		&r->batches[0];
	int rc = restore_plan(r, b);

	if (rc <= 0)
		return rc;
	fetcher_start(r->fetcher, &b->fb, b->uids, b->nuids);
	r->next = b;
	return 0;
}

/* Makes the next batch current, fetching it first if nobody did. */
static int restore_advance(struct restore *r)
{
	int rc;

	if (!r->next) {
		r->cur = r->cur == &r->batches[0] ? &r->batches[1] :
			&r->batches[0];
		if ((rc = restore_plan(r, r->cur)) < 0)
			return rc;
		assert(rc > 0);
		fetcher_start(r->fetcher, &r->cur->fb, r->cur->uids,
			      r->cur->nuids);
	} else {
		r->cur = r->next;
		r->next = NULL;
	}
	r->refpos = 0;
	if ((rc = fetcher_wait(r->fetcher)) < 0)
		return rc;
	return restore_prefetch(r);
}

/* The next chunk of the entry being written, verified, in r->plain. */
static int restore_next_chunk(struct restore *r, const struct rentry *re,
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
	return fetch_batch_chunk(&r->cur->fb, u, ref->plain_len, &r->plain,
				 r->dctx);
}

/* ---- path safety ---- */

static int restore_refuse(struct restore *r, const struct rentry *re,
			  const char *why)
{
	agent_warn("refusing entry '%s': %s", re->path, why);
	r->refused++;
	return 0;
}

/*
 * 1 if the entry may be written, 0 if refused (warned and counted). Every
 * existing parent of the path inside the target must be a real directory;
 * the last parent found safe is remembered because entries come in walk
 * order.
 */
static int restore_check(struct restore *r, const struct rentry *re)
{
	const char *slash = strrchr(re->path, '/');
	size_t plen = slash ? (size_t)(slash - re->path) : 0;
	char *parent;
	struct stat st;

	if (dd_catalog_path_check(re->path, re->e.path_len) < 0)
		return restore_refuse(r, re, "unsafe path");
	if (re->link && strlen(re->link) != re->e.link_len)
		return restore_refuse(r, re, "symlink target contains a NUL byte");
	if (plen == 0)
		return 1;
	if (r->parent_ok && strlen(r->parent_ok) == plen &&
	    memcmp(r->parent_ok, re->path, plen) == 0)
		return 1;

	if (!(parent = strndup(re->path, plen)))
		return dd_error_set(-ENOMEM, "out of memory");
	for (char *p = parent;; p++) {
		char saved = *p;
		int missing;

		if (saved != '/' && saved != '\0')
			continue;
		*p = '\0';     /* parent now names one ancestor */
		missing = fstatat(AT_FDCWD, parent, &st, AT_SYMLINK_NOFOLLOW) < 0;
		if (!missing && !S_ISDIR(st.st_mode)) {
			agent_warn("refusing entry '%s': '%s' in the target is not a directory",
				   re->path, parent);
			r->refused++;
			free(parent);
			return 0;
		}
		*p = saved;
		/* A missing ancestor and all below it are created by
		 * libarchive as directories. */
		if (missing || saved == '\0')
			break;
	}
	free(r->parent_ok);
	r->parent_ok = parent;
	return 1;
}

/* A non-directory now sits at `path`: forget a safe parent at or under it. */
static void restore_invalidate(struct restore *r, const char *path)
{
	size_t n = strlen(path);

	if (r->parent_ok && strncmp(r->parent_ok, path, n) == 0 &&
	    (r->parent_ok[n] == '\0' || r->parent_ok[n] == '/')) {
		free(r->parent_ok);
		r->parent_ok = NULL;
	}
}

/* ---- writing ---- */

static int restore_note_existing_dir(struct restore *r,
				     const struct rentry *re)
{
	struct dir_fixup *f;
	struct stat st;
	void *p;

	if (fstatat(AT_FDCWD, re->path, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISDIR(st.st_mode))
		return 0;
	p = restore_grow(r->fixups, &r->fixups_alloc, r->nfixups + 1,
			 sizeof(*r->fixups));
	if (!p)
		return dd_error_set(-ENOMEM, "out of memory");
	r->fixups = p;
	f = &r->fixups[r->nfixups];
	if (!(f->path = strdup(re->path)))
		return dd_error_set(-ENOMEM, "out of memory");
	f->mode = re->e.mode & 07777;
	f->uid = re->e.uid;
	f->gid = re->e.gid;
	f->mtime_sec = re->e.mtime_sec;
	f->mtime_nsec = re->e.mtime_nsec;
	r->nfixups++;
	return 0;
}

/* Sets what libarchive left alone on pre-existing directories, after
 * all their children were written. */
static void restore_apply_fixups(struct restore *r)
{
	for (size_t i = r->nfixups; i-- > 0;) {
		const struct dir_fixup *f = &r->fixups[i];
		struct timespec ts[2] = {
			{ .tv_nsec = UTIME_NOW },
			{ .tv_sec = (time_t)f->mtime_sec,
			  .tv_nsec = (long)f->mtime_nsec },
		};
		int fd;

		fd = open(f->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			  O_CLOEXEC);
		if (fd < 0 ||
		    (geteuid() == 0 && fchown(fd, f->uid, f->gid) < 0) ||
		    fchmod(fd, f->mode) < 0 || futimens(fd, ts) < 0)
			agent_warn("cannot set owner, mode or times of '%s': %s",
				   f->path, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

static void restore_fill_archive_entry(struct archive_entry *ae,
				       const struct rentry *re)
{
	const struct dd_entry *e = &re->e;
	mode_t type = e->type == DD_ENTRY_DIR ? AE_IFDIR :
		e->type == DD_ENTRY_SYMLINK ? AE_IFLNK : AE_IFREG;

	archive_entry_clear(ae);
	archive_entry_copy_pathname(ae, re->path);
	archive_entry_set_mode(ae, type | (e->mode & 07777));
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	archive_entry_set_mtime(ae, (time_t)e->mtime_sec, (long)e->mtime_nsec);
	if (e->type == DD_ENTRY_SYMLINK)
		archive_entry_copy_symlink(ae, re->link ? re->link : "");
	if (e->type == DD_ENTRY_FILE)
		archive_entry_set_size(ae, (la_int64_t)e->size);
}

/* Reports a libarchive result for an entry; returns a negative code only
 * for a fatal one (the writer cannot go on). */
static int restore_archive_result(struct restore *r, const struct rentry *re,
				  int ar, bool *ok)
{
	if (ar == ARCHIVE_OK)
		return 0;
	if (ar == ARCHIVE_WARN) {
		agent_warn("'%s': %s", re->path, archive_error_string(r->aw));
		return 0;
	}
	if (ar == ARCHIVE_FATAL)
		return dd_error_set(-EIO, "cannot restore '%s': %s", re->path,
				    archive_error_string(r->aw));
	agent_warn("cannot restore '%s': %s", re->path,
		   archive_error_string(r->aw));
	if (*ok)
		r->failed++;
	*ok = false;
	return 0;
}

static int restore_entry(struct restore *r, const struct rentry *re)
{
	const struct dd_entry *e = &re->e;
	bool ok;
	int rc;

	if ((rc = restore_check(r, re)) < 0)
		return rc;
	ok = rc == 1;
	if (ok) {
		if (e->type != DD_ENTRY_DIR)
			restore_invalidate(r, re->path);
		else if ((rc = restore_note_existing_dir(r, re)) < 0)
			return rc;
		restore_fill_archive_entry(r->ae, re);
		rc = archive_write_header(r->aw, r->ae);
		if ((rc = restore_archive_result(r, re, rc, &ok)) < 0)
			return rc;
	}
	/* The chunks are consumed even for a refused entry: the batch was
	 * planned with them. */
	for (uint64_t j = 0; j < e->nchunks; j++) {
		la_ssize_t n;

		if ((rc = restore_next_chunk(r, re, j)) < 0)
			return rc;
		if (!ok)
			continue;
		n = archive_write_data(r->aw, r->plain.data, r->plain.len);
		if (n < 0 || (size_t)n != r->plain.len) {
			rc = restore_archive_result(r, re, n < 0 ? (int)n :
						    ARCHIVE_FAILED, &ok);
			if (rc < 0)
				return rc;
		}
	}
	if (ok) {
		rc = archive_write_finish_entry(r->aw);
		if ((rc = restore_archive_result(r, re, rc, &ok)) < 0)
			return rc;
	}
	if (!ok)
		return 0;
	switch (e->type) {
	case DD_ENTRY_FILE:
		r->files++;
		r->bytes += e->size;
		break;
	case DD_ENTRY_DIR:
		r->dirs++;
		break;
	default:
		r->symlinks++;
		break;
	}
	return 0;
}

/* ---- setup ---- */

/* Creates the target if missing and makes it the working directory, so
 * every path handed to libarchive is relative to it. */
static int restore_enter_target(const char *target)
{
	int fd, rc;

	if ((rc = dd_mkdir_p(target, 0700)) < 0)
		return agent_error_wrap(rc, "cannot create target directory '%s'",
					target);
	fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dd_error_set(-errno, "cannot open target directory '%s': %s",
				    target, strerror(errno));
	rc = fchdir(fd) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return dd_error_set(rc, "cannot enter target directory '%s': %s",
				    target, strerror(-rc));
	return 0;
}

static int restore_setup(struct restore *r, struct client *c,
			 const struct settings *s, const json_t *manifest)
{
	int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
		ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
		ARCHIVE_EXTRACT_UNLINK;
	struct repo_config cfg;
	size_t per_fetch;
	int rc;

	r->client = c;
	fetch_batch_init(&r->batches[0].fb);
	fetch_batch_init(&r->batches[1].fb);
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
	    (rc = idset_new(&r->uniq)) < 0 ||
	    (rc = fetcher_new(&r->fetcher, s)) < 0)
		return rc;
	if (!(r->dctx = ZSTD_createDCtx()))
		return dd_error_set(-ENOMEM, "out of memory");

	if (geteuid() == 0)
		flags |= ARCHIVE_EXTRACT_OWNER;
	if (!(r->aw = archive_write_disk_new()) || !(r->ae = archive_entry_new()))
		return dd_error_set(-ENOMEM, "out of memory");
	if (archive_write_disk_set_options(r->aw, flags) != ARCHIVE_OK)
		return dd_error_set(-EIO, "cannot set up the disk writer: %s",
				    archive_error_string(r->aw));
	return restore_enter_target(r->target);
}

static void restore_release(struct restore *r)
{
	/* First stop the fetcher: it may be writing into a batch. */
	fetcher_free(r->fetcher);
	while (r->qcount) {
		rentry_release(&r->q[r->qhead % RESTORE_QUEUE_LEN]);
		r->qhead++;
		r->qcount--;
	}
	if (r->aw)
		archive_write_free(r->aw);
	archive_entry_free(r->ae);
	catstream_free(r->cs);
	for (size_t i = 0; i < DD_ARRAY_SIZE(r->batches); i++) {
		fetch_batch_release(&r->batches[i].fb);
		free(r->batches[i].uids);
		free(r->batches[i].refs);
	}
	dd_buf_release(&r->plain);
	ZSTD_freeDCtx(r->dctx);
	idset_free(r->uniq);
	free(r->parent_ok);
	for (size_t i = 0; i < r->nfixups; i++)
		free(r->fixups[i].path);
	free(r->fixups);
}

static int restore_run(struct restore *r)
{
	struct rentry *re;
	int rc;

	for (;;) {
		if (r->qcount == 0) {
			if ((rc = restore_read_entry(r)) < 0)
				return rc;
			if (rc == 0)
				break;
		}
		re = &r->q[r->qhead % RESTORE_QUEUE_LEN];
		rc = restore_entry(r, re);
		rentry_release(re);
		r->qhead++;
		r->qcount--;
		if (rc < 0)
			return rc;
	}
	/* Directory permissions and times are set now, after their
	 * children were written. */
	rc = archive_write_close(r->aw);
	if (rc == ARCHIVE_WARN)
		agent_warn("%s", archive_error_string(r->aw));
	else if (rc != ARCHIVE_OK)
		return dd_error_set(-EIO, "cannot finish the restore: %s",
				    archive_error_string(r->aw));
	restore_apply_fixups(r);
	return 0;
}

int cmd_restore(int argc, char **argv, const struct agent_globals *g,
		const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore *r = NULL;
	struct settings s = { 0 };
	struct client *c = NULL;
	json_t *manifest = NULL;
	const char *target = NULL;
	char human[32];
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			target = optarg;
			break;
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
	if (optind >= argc)
		return agent_usage_error(self, "no snapshot given");
	if (optind + 1 < argc)
		return agent_usage_error(self, "unexpected argument '%s'",
					 argv[optind + 1]);
	if (!target || !*target)
		return agent_usage_error(self, "no --target directory given");

	if (!(r = calloc(1, sizeof(*r))))
		return dd_error_set(-ENOMEM, "out of memory");
	r->target = target;
	r->quiet = g->quiet;
	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0 ||
	    (rc = snapshots_resolve(&manifest, c, argv[optind])) < 0 ||
	    (rc = restore_setup(r, c, &s, manifest)) < 0 ||
	    (rc = restore_run(r)) < 0)
		goto cleanup;

	if (!r->quiet) {
		agent_fmt_bytes(human, r->bytes);
		fprintf(stderr,
			"restored %llu files (%s), %llu directories, %llu symlinks into '%s'\n",
			(unsigned long long)r->files, human,
			(unsigned long long)r->dirs,
			(unsigned long long)r->symlinks, target);
	}
	rc = DD_EXIT_OK;
	if (r->refused || r->failed)
		rc = dd_error_set(-EIO, "%lu entries refused as unsafe, %lu failed",
				  r->refused, r->failed);
cleanup:
	if (r)
		restore_release(r);
	free(r);
	json_decref(manifest);
	client_free(c);
	settings_release(&s);
	return rc;
}
