/*
 * backup.c - `dedup-agent backup [--json] PATH...`
 *
 * Walks the given paths, cuts every regular file into content-defined
 * chunks, hands the chunks to the upload queue (which sends only what the
 * server lacks), records every entry in the catalog, uploads the catalog
 * as chunks too, and finally asks the server to create the snapshot.
 *
 * The catalog is cut while it is being written: as soon as max_size bytes
 * are pending, the chunker's contract holds and a chunk can be cut and
 * queued. This gives the same chunks as cutting the finished catalog, and
 * keeps memory bounded however many files the tree holds. The snapshot is
 * only created after every queued chunk (data and catalog) was flushed and
 * acknowledged.
 *
 * Files are read, cut and hashed on reader threads (backup_read.c;
 * --threads, agent.conf `threads`, default one per online CPU): the walk thread records every
 * entry in a bounded ring (reorder.h) and writes the catalog from it in
 * walk order, so the catalog and the chunks do not depend on how many
 * threads read or which finishes first. With one thread the walk thread
 * reads each file itself. The metadata (xattrs, ACLs) of a file to read
 * is read by its reader, through its descriptor, with the reader's own
 * meta reader (that of other entries on the walk thread); the readers
 * share the upload queue, which asks the server about a large file's
 * chunks before it copies them (upload.h). A file whose metadata or data
 * cannot be read is reported in its turn; any other failure of a reader
 * stops the backup in its turn, before a snapshot is asked for. An inode
 * with several links waits for the entries before it, so the hard-link
 * table knows whether its first path was recorded.
 *
 * The id of a chunk's bytes is made by key_chunk_id (backup_chunk_id) or,
 * for several chunks of a window at once, key_chunk_ids
 * (backup_hash_some in backup_read.c): SHA-256, or the keyed id with a key.
 *
 * A file with fewer blocks than its size needs is read by its data runs
 * (holes.h): its holes of HOLES_MIN and more are recorded as catalog holes
 * (version 3) without a read or a hash, and each run is cut as a stream
 * of its own.
 *
 * Every entry also records its metadata beyond stat (meta.h). The second
 * and later paths of a file with several links are recorded as hard links
 * to the first path the walk met. A file that cannot be read is reported
 * and left out; the snapshot is still created and the exit code is
 * DD_EXIT_PARTIAL. A file that vanishes or changes while it is read is
 * only a warning: that is the tree as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "catalog.h"
#include "chunker.h"
#include "crypt.h"
#include "hash.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "client.h"
#include "key.h"
#include "lock.h"
#include "meta.h"
#include "parent.h"
#include "progress.h"
#include "reorder.h"
#include "pattern.h"
#include "repo_config.h"
#include "sealsnap.h"
#include "upload.h"
#include "session.h"
#include "walk.h"
#include "backup_impl.h"

/* Plain bytes held in all upload batches together; one batch is this
 * divided by (workers + 1), at most BACKUP_BATCH_BYTES. */
#define BACKUP_BATCH_BUDGET (48u * 1024 * 1024)
#define BACKUP_BATCH_BYTES (32u * 1024 * 1024)
#define BACKUP_WORKERS_MAX 3
#define BACKUP_BATCH_IDS 4096u
#define BACKUP_BUNDLE_BYTES (32u * 1024 * 1024)
#define BACKUP_BUNDLE_MIN (DD_CHUNK_SIZE_LIMIT + 1024u * 1024)
#define BACKUP_ZSTD_LEVEL 3
/* Parent catalog chunks fetched per request. */
#define BACKUP_PARENT_FETCH 16u

/* The windows of a file of this size and more are asked about before
 * their chunks are copied into upload batches (upload.h): a question a
 * window costs less than copying a few MiB, more than a small file's
 * copy. */
#define BACKUP_ASK_BYTES (1024u * 1024)

/* A file to read of this size and more wakes a reader at once. */
#define BACKUP_KICK_SIZE (1024 * 1024)

/* Entries held in the ring at most (and so files open), before the
 * open-file limit lowers it. */
#define BACKUP_RING_MAX 1024u
/* Entries a full ring (or the end of the walk) waits to see done before it
 * records them: the walk then sleeps once for that many small files. */
#define BACKUP_EMIT_BATCH 64u

/* The first path of each inode with several links, by (dev, ino). */
struct backup_link {
	dev_t dev;
	ino_t ino;
	char *path;          /* NULL: free slot */
	/* The inode as the first path found it: a later path whose inode
	 * differs in these (its number reused by another file meanwhile, or
	 * the file changed or linked again: ctime) is read as a file of its
	 * own, never recorded as a link to this one. */
	off_t size;
	struct timespec mtime, ctime;
};

/*
 * A catalog chunk's id from its bytes (key_chunk_id: SHA-256, or the
 * keyed id with a key); file data is hashed by windows, several chunks at
 * once, with key_chunk_ids (backup_hash_some, backup_read.c).
 */
static void backup_chunk_id(const struct backup *b, struct dd_id *id,
			    const uint8_t *data, size_t n)
{
	key_chunk_id(client_crypt(b->client), id, data, n);
}

/* Queues one chunk; the readers share the queue (upload.h: adds may
 * come from several threads at once, each copying its own bytes). */
static int backup_queue_chunk(struct backup *b, const struct dd_id *id,
			      const void *data, size_t len)
{
	return upload_queue_add(b->uq, id, data, len);
}

/* ---- catalog ---- */

static int backup_push_catalog_id(struct backup *b, const struct dd_id *id)
{
	if (b->ncat >= DD_MAX_CATALOG_CHUNKS)
		return dd_error_set(-E2BIG,
				    "the catalog exceeds %u chunks; back up fewer files at once",
				    DD_MAX_CATALOG_CHUNKS);
	if (b->ncat == b->cat_alloc) {
		size_t a = b->cat_alloc ? b->cat_alloc * 2 : 64;
		struct dd_id *p = realloc(b->cat_ids, a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		b->cat_ids = p;
		b->cat_alloc = a;
	}
	b->cat_ids[b->ncat++] = *id;
	return 0;
}

/* Cuts and queues catalog chunks: while a full max_size window is pending,
 * or everything when `final`. */
static int backup_catalog_cut(struct backup *b, bool final)
{
	size_t want = final ? 1 : b->chunker.params.max_size;
	size_t off = 0;
	int rc = 0;

	while (b->cat.len - off >= want) {
		const uint8_t *p = b->cat.data + off;
		size_t n = dd_chunker_cut(&b->chunker, p, b->cat.len - off);
		struct dd_id id;

		backup_chunk_id(b, &id, p, n);
		if ((rc = backup_queue_chunk(b, &id, p, n)) < 0 ||
		    (rc = sealsnap_note_chunk(b->seal, &id, (uint32_t)n)) < 0 ||
		    (rc = backup_push_catalog_id(b, &id)) < 0)
			break;
		off += n;
	}
	if (off > 0) {
		memmove(b->cat.data, b->cat.data + off, b->cat.len - off);
		b->cat.len -= off;
	}
	return rc;
}

static void backup_entry_from_stat(struct dd_entry *e, uint8_t type,
				   const char *path, size_t path_len,
				   const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->ctime_sec = st->st_ctim.tv_sec;
	e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	e->path = path;
	e->path_len = (uint32_t)path_len;
}

/* Reads the entry's metadata records into b->ext and points e at them.
 * What cannot be read is reported; the entry is still recorded. */
static void backup_entry_meta(struct backup *b, struct dd_entry *e,
			      const struct walk_item *it)
{
	int rc = meta_read(b->meta, &b->ext, e->type, it->fd, it->dirfd,
			   it->name, it->st);

	if (rc < 0) {
		agent_warn("cannot read the metadata (xattrs, ACLs) of '/%s': %s",
			   it->path, dd_error_last());
		b->ws.unreadable++;
	}
	e->ext = b->ext.len ? b->ext.data : NULL;
	e->ext_len = (uint32_t)b->ext.len;
}

static size_t backup_link_slot(const struct backup *b, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^
		((uint64_t)ino * 0xc2b2ae3d27d4eb4full);
	size_t i = (size_t)(h ^ (h >> 29)) & (b->links_alloc - 1);

	while (b->links[i].path &&
	       (b->links[i].dev != dev || b->links[i].ino != ino))
		i = (i + 1) & (b->links_alloc - 1);
	return i;
}

/* The first path recorded for the inode of `st`, or NULL (also when
 * the inode is not as that path found it: backup_link). */
static const char *backup_link_find(const struct backup *b,
				    const struct stat *st)
{
	const struct backup_link *l;

	if (st->st_nlink < 2 || b->links_alloc == 0)
		return NULL;
	l = &b->links[backup_link_slot(b, st->st_dev, st->st_ino)];
	if (!l->path || l->size != st->st_size ||
	    l->mtime.tv_sec != st->st_mtim.tv_sec ||
	    l->mtime.tv_nsec != st->st_mtim.tv_nsec ||
	    l->ctime.tv_sec != st->st_ctim.tv_sec ||
	    l->ctime.tv_nsec != st->st_ctim.tv_nsec)
		return NULL;
	return l->path;
}

/* Remembers `path` as the first path of an inode with several links. */
static int backup_link_add(struct backup *b, const char *path,
			   const struct stat *st)
{
	size_t i;

	if (st->st_nlink < 2)
		return 0;
	if ((b->nlinks + 1) * 2 > b->links_alloc) {
		size_t a = b->links_alloc ? b->links_alloc * 2 : 256;
		struct backup_link *old = b->links;
		size_t oldn = b->links_alloc;

		if (!(b->links = calloc(a, sizeof(*b->links)))) {
			b->links = old;
			return dd_error_set(-ENOMEM, "out of memory");
		}
		b->links_alloc = a;
		for (size_t k = 0; k < oldn; k++)
			if (old[k].path)
				b->links[backup_link_slot(b, old[k].dev,
							  old[k].ino)] = old[k];
		free(old);
	}
	i = backup_link_slot(b, st->st_dev, st->st_ino);
	if (b->links[i].path)
		return 0;
	if (!(b->links[i].path = strdup(path)))
		return dd_error_set(-ENOMEM, "out of memory");
	b->links[i].dev = st->st_dev;
	b->links[i].ino = st->st_ino;
	b->links[i].size = st->st_size;
	b->links[i].mtime = st->st_mtim;
	b->links[i].ctime = st->st_ctim;
	b->nlinks++;
	return 0;
}

static int backup_catalog_add(struct backup *b, const struct dd_entry *e)
{
	int rc = dd_catalog_add(&b->cat, e);

	if (rc < 0)
		return agent_error_wrap(rc, "cannot record '/%.*s' in the catalog",
					(int)e->path_len, e->path);
	if ((rc = sealsnap_note_entry(b->seal, e)) < 0)
		return rc;
	return backup_catalog_cut(b, false);
}

/* ---- entries in walk order ---- */

void backup_rec_free(struct backup_rec *rec)
{
	if (!rec)
		return;
	if (rec->fd >= 0)
		close(rec->fd);
	free(rec->path);
	free(rec->link);
	free(rec->ext);
	if (rec->refs != rec->ref_inline)
		free(rec->refs);
	free(rec->errmsg);
	free(rec->meta_errmsg);
	free(rec);
}

/* Within this many nanoseconds of a file's stat, a write after the stat
 * could leave its timestamps as they were: the kernel's clock tick for
 * file times (4-10 ms before Linux 6.13), or a whole-second file system
 * (the file's mtime and ctime both without nanoseconds; FAT: 2 s). The
 * test hook DEDUP_TEST_RACY_SEC sets it (docs/OPERATIONS.md). */
static int64_t backup_racy_ns(const struct stat *st)
{
	const char *v = getenv("DEDUP_TEST_RACY_SEC");
	uint64_t sec;

	if (v && *v && dd_parse_u64(v, &sec) == 0 && sec <= 86400)
		return (int64_t)sec * 1000000000;
	return st->st_mtim.tv_nsec == 0 && st->st_ctim.tv_nsec == 0 ?
		2000000000 : 20000000;
}

/*
 * "Racily clean", as git calls it: a file written within the window
 * above before its stat may be written again after it with the same
 * size and the same times, and would match this entry at the next
 * backup (parent.c) although its bytes changed. Its ctime is recorded
 * one second early (ctime is never restored: it is kept to notice
 * changes), so the next backup reads it again, once.
 *
 * Either time counts. A rewrite after the stat moves mtime unless it
 * falls in the same tick; but a rewrite whose mtime is then put back
 * (touch -d, cp -p, rsync -t, tar x, an editor's save by rename) leaves
 * only ctime to tell, and ctime tells only if it moved off the tick it
 * had at the stat: a ctime within the window may not.
 */
static void backup_mark_racy(struct dd_entry *e, const struct stat *st)
{
	struct timespec now;
	int64_t now_ns, m, c;

	clock_gettime(CLOCK_REALTIME, &now);
	now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	m = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	c = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	if ((m > c ? m : c) >= now_ns - backup_racy_ns(st))
		e->ctime_sec--;
}

/* A record of the walk item, its path copied and its entry filled from
 * its stat; the caller sets the rest. NULL when out of memory (set). */
static struct backup_rec *backup_rec_new(enum backup_kind kind, uint8_t type,
					 const struct walk_item *it)
{
	struct backup_rec *rec = calloc(1, sizeof(*rec));

	if (!rec || !(rec->path = malloc(it->path_len + 1))) {
		free(rec);
		dd_error_set(-ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(rec->path, it->path, it->path_len);
	rec->path[it->path_len] = '\0';
	rec->kind = kind;
	rec->fd = -1;
	rec->refs = rec->ref_inline;
	rec->refs_alloc = BACKUP_REFS_INLINE;
	rec->st = *it->st;
	backup_entry_from_stat(&rec->e, type, rec->path, it->path_len, it->st);
	if (type == DD_ENTRY_FILE)
		backup_mark_racy(&rec->e, it->st);
	return rec;
}

/* Copies the link target of the entry (`len` bytes) into the record. */
static int backup_rec_set_link(struct backup_rec *rec, const char *link,
			       size_t len)
{
	if (!(rec->link = malloc(len + 1)))
		return dd_error_set(-ENOMEM, "out of memory");
	memcpy(rec->link, link, len);
	rec->link[len] = '\0';
	rec->e.link = rec->link;
	rec->e.link_len = (uint32_t)len;
	return 0;
}

/* Keeps the ext area the entry points at (backup_entry_meta's buffer or
 * the parent's) as the record's own. */
int backup_rec_keep_ext(struct backup_rec *rec)
{
	if (rec->e.ext_len == 0) {
		rec->e.ext = NULL;
		return 0;
	}
	if (!(rec->ext = malloc(rec->e.ext_len)))
		return dd_error_set(-ENOMEM, "out of memory");
	memcpy(rec->ext, rec->e.ext, rec->e.ext_len);
	rec->e.ext = rec->ext;
	return 0;
}

int backup_rec_push_ref(struct backup_rec *rec, const struct dd_id *id,
			size_t len)
{
	/* More than one entry holds (a huge file, or a sparse one of
	 * exabytes): that file is left out and reported, the backup goes
	 * on (as for a read error), before its list takes the memory. */
	if (rec->nrefs >= DD_CATALOG_REFS_MAX) {
		rec->read_err = EFBIG;
		rec->read_what = "record (more chunks and holes than a catalog "
			"entry holds)";
		return -EIO;
	}
	if (rec->nrefs == rec->refs_alloc) {
		bool inl = rec->refs == rec->ref_inline;
		size_t a = rec->refs_alloc * 4;
		struct dd_chunk_ref *p = realloc(inl ? NULL : rec->refs,
						 a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		if (inl)
			memcpy(p, rec->ref_inline, sizeof(rec->ref_inline));
		rec->refs = p;
		rec->refs_alloc = a;
	}
	rec->refs[rec->nrefs].id = *id;
	rec->refs[rec->nrefs].plain_len = (uint32_t)len;
	rec->nrefs++;
	return 0;
}

/* The record's entry as the catalog gets it: a file with its chunks. */
static void backup_rec_finish_entry(struct backup_rec *rec)
{
	if (rec->kind != BACKUP_FILE_READ && rec->kind != BACKUP_FILE_KNOWN)
		return;
	rec->e.size = rec->size;
	rec->e.nchunks = rec->nrefs;
	rec->e.chunks = rec->refs;
}

/* Counts what a recorded entry adds. */
static void backup_count(struct backup *b, const struct backup_rec *rec)
{
	switch (rec->kind) {
	case BACKUP_FILE_READ:
	case BACKUP_FILE_KNOWN:
		b->files++;
		b->bytes_total += rec->size;
		b->chunks_total += dd_entry_data_chunks(&rec->e);
		session_progress(b->sess, b->files, b->bytes_total);
		progress_update(b->progress, b->files, b->bytes_total);
		break;
	case BACKUP_DIR:
		b->dirs++;
		break;
	case BACKUP_SYMLINK:
		b->symlinks++;
		break;
	case BACKUP_SPECIAL:
		b->specials++;
		break;
	case BACKUP_HARDLINK:
		b->hardlinks++;
		break;
	}
}

/* How a file's read went, reported in walk order: 0 record it, 1 leave
 * it out (reported), negative stop the backup. */
static int backup_read_outcome(struct backup *b, struct backup_rec *rec)
{
	if (rec->kind != BACKUP_FILE_READ)
		return 0;
	if (rec->meta_failed) {
		agent_warn("cannot read the metadata (xattrs, ACLs) of '/%s': %s",
			   rec->path, rec->meta_errmsg ? rec->meta_errmsg :
			   "out of memory");
		b->ws.unreadable++;
	}
	b->bytes_read += rec->bytes_read;
	if (rec->rc < 0)
		return dd_error_set(rec->rc, "%s",
				    rec->errmsg ? rec->errmsg : "out of memory");
	if (rec->read_err) {
		walk_report(&b->ws, rec->path, rec->read_what, rec->read_err);
		return 1;
	}
	b->bytes_holes += rec->bytes_holes;
	/* Recorded as read, with the times from before the read: the next
	 * backup sees a changed file and reads it again. */
	if (rec->changed) {
		agent_warn("'/%s' changed while being read", rec->path);
		b->changed++;
	}
	return 0;
}

/* Writes a record whose turn has come into the catalog. */
static int backup_emit(struct backup *b, struct backup_rec *rec)
{
	int rc = backup_read_outcome(b, rec);

	if (rc != 0)
		return rc < 0 ? rc : 0;
	backup_rec_finish_entry(rec);
	if ((rc = backup_catalog_add(b, &rec->e)) < 0)
		return rc;
	if (rec->kind != BACKUP_DIR && rec->kind != BACKUP_HARDLINK &&
	    (rc = backup_link_add(b, rec->path, &rec->st)) < 0)
		return rc;
	backup_count(b, rec);
	return 0;
}

/* Pops and records held entries in order: those already done, or (with
 * `wait`) every one. Stops at the first error. */
static int backup_emit_held(struct backup *b, bool wait)
{
	void *item;
	int rc = 0;

	do {
		if (wait)
			reorder_wait_done(b->ring, BACKUP_EMIT_BATCH);
		while (rc == 0 &&
		       reorder_pop(b->ring, REORDER_NOWAIT, &item) == 1) {
			rc = backup_emit(b, item);
			backup_rec_free(item);
		}
	} while (rc == 0 && wait && reorder_held(b->ring) > 0);
	return rc;
}

/* Hands a record to the ring: a file to read goes to the readers (or is
 * read here when there are none); what is done is recorded as soon as
 * every earlier entry is. Takes the record in every case. */
static int backup_submit(struct backup *b, struct backup_rec *rec)
{
	bool work = rec->kind == BACKUP_FILE_READ, kick;
	int rc;

	if (work && b->nreaders == 0) {
		backup_read_file(b->inline_reader, rec);
		work = false;
	}
	if ((rc = backup_emit_held(b, false)) < 0) {
		backup_rec_free(rec);
		return rc;
	}
	/* A full ring waits for a batch of its oldest entries, not for each:
	 * then the walk runs ahead again while the readers work. */
	while (reorder_full(b->ring)) {
		reorder_wait_done(b->ring, BACKUP_EMIT_BATCH);
		if ((rc = backup_emit_held(b, false)) < 0) {
			backup_rec_free(rec);
			return rc;
		}
	}
	/* A large file starts at once; small ones wake a reader in batches
	 * (reorder.h). */
	kick = work && rec->st.st_size >= BACKUP_KICK_SIZE;
	reorder_push(b->ring, rec, work);
	if (kick)
		reorder_kick(b->ring);
	return 0;
}

/* Records the walk item as a hard link when its inode was recorded
 * under another path: 1 recorded, 0 not a later link, negative error.
 * The entries before it are recorded first, so that the table knows
 * every earlier path and whether its file could be read. */
static int backup_hardlink(struct backup *b, const struct walk_item *it)
{
	struct backup_rec *rec;
	const char *first;
	int rc;

	if (it->st->st_nlink < 2)
		return 0;
	if ((rc = backup_emit_held(b, true)) < 0)
		return rc;
	if (!(first = backup_link_find(b, it->st)))
		return 0;
	if (!(rec = backup_rec_new(BACKUP_HARDLINK, DD_ENTRY_HARDLINK, it)))
		return -ENOMEM;
	if ((rc = backup_rec_set_link(rec, first, strlen(first))) < 0) {
		backup_rec_free(rec);
		return rc;
	}
	rc = backup_submit(b, rec);
	return rc < 0 ? rc : 1;
}

/* ---- walk callbacks ---- */

/* A file to read: its metadata and data on a reader, which takes over
 * the walk's descriptor (walk.h), reads its xattrs and ACLs through it,
 * and closes it. */
static int backup_file(void *payload, const struct walk_item *it)
{
	struct backup *b = payload;
	struct backup_rec *rec;

	if (!(rec = backup_rec_new(BACKUP_FILE_READ, DD_ENTRY_FILE, it))) {
		close(it->fd);
		return -ENOMEM;
	}
	rec->fd = it->fd;       /* the record owns it from here */
	return backup_submit(b, rec);
}

/* A later path of a recorded inode is a hard link; a file the parent
 * snapshot has with the same size, times, inode and mode is recorded with
 * the parent's chunk list without being opened. */
static int backup_file_known(void *payload, const struct walk_item *it)
{
	struct backup *b = payload;
	const struct dd_entry *pe;
	struct backup_rec *rec;
	int rc;

	if ((rc = backup_hardlink(b, it)) != 0)
		return rc;
	if (!b->parent ||
	    parent_match(b->parent, it->path, it->path_len, it->st, &pe) <= 0)
		return 0;
	if (!(rec = backup_rec_new(BACKUP_FILE_KNOWN, DD_ENTRY_FILE, it)))
		return -ENOMEM;
	rec->size = (uint64_t)it->st->st_size;
	for (uint32_t i = 0; i < pe->nchunks && rc == 0; i++)
		rc = backup_rec_push_ref(rec, &pe->chunks[i].id,
					 pe->chunks[i].plain_len);
	/* Unchanged ctime: the xattrs and ACLs are the parent's too, so they
	 * are not read again (three path lookups a file). */
	if (parent_meta_reusable(b->parent)) {
		rec->e.ext = pe->ext_len ? pe->ext : NULL;
		rec->e.ext_len = pe->ext_len;
	} else {
		backup_entry_meta(b, &rec->e, it);
	}
	if (rc < 0 || (rc = backup_rec_keep_ext(rec)) < 0) {
		backup_rec_free(rec);
		return rc;
	}
	rc = backup_submit(b, rec);
	return rc < 0 ? rc : 1;
}

/* A directory, symlink or special file: recorded in its turn. */
static int backup_other(struct backup *b, const struct walk_item *it,
			enum backup_kind kind, uint8_t type)
{
	struct backup_rec *rec;
	int rc;

	if (!(rec = backup_rec_new(kind, type, it)))
		return -ENOMEM;
	if (it->target &&
	    (rc = backup_rec_set_link(rec, it->target, it->target_len)) < 0)
		goto fail;
	backup_entry_meta(b, &rec->e, it);
	if ((rc = backup_rec_keep_ext(rec)) < 0)
		goto fail;
	return backup_submit(b, rec);
fail:
	backup_rec_free(rec);
	return rc;
}

static int backup_dir(void *payload, const struct walk_item *it)
{
	return backup_other(payload, it, BACKUP_DIR, DD_ENTRY_DIR);
}

/* A symlink may have hard links too (link(2) links a symlink itself):
 * its later paths are recorded as links to the first, as a special
 * file's are, and restored with linkat, which does not follow it. */
static int backup_symlink(void *payload, const struct walk_item *it)
{
	int rc;

	if ((rc = backup_hardlink(payload, it)) != 0)
		return rc < 0 ? rc : 0;
	return backup_other(payload, it, BACKUP_SYMLINK, DD_ENTRY_SYMLINK);
}

static int backup_special(void *payload, const struct walk_item *it)
{
	mode_t fmt = it->st->st_mode & S_IFMT;
	int rc;

	if ((rc = backup_hardlink(payload, it)) != 0)
		return rc < 0 ? rc : 0;
	return backup_other(payload, it, BACKUP_SPECIAL,
			    fmt == S_IFIFO ? DD_ENTRY_FIFO :
			    fmt == S_IFCHR ? DD_ENTRY_CHR : DD_ENTRY_BLK);
}

static const struct walk_ops backup_walk_ops = {
	.file_known = backup_file_known,
	.file = backup_file,
	.dir = backup_dir,
	.symlink = backup_symlink,
	.special = backup_special,
};

/* ---- the verb ---- */

static void backup_release(struct backup *b)
{
	__atomic_store_n(&b->stopping, true, __ATOMIC_RELAXED);
	backup_readers_stop(b);
	upload_queue_free(b->uq);
	sealsnap_free(b->seal);
	pthread_mutex_destroy(&b->h_mu);
	pthread_cond_destroy(&b->h_work_cv);
	pthread_cond_destroy(&b->h_done_cv);
	progress_free(b->progress);
	parent_free(b->parent);
	json_decref(b->parent_manifest);
	free(b->cat_ids);
	dd_buf_release(&b->cat);
	meta_reader_free(b->meta);
	dd_buf_release(&b->ext);
	for (size_t i = 0; i < b->links_alloc; i++)
		free(b->links[i].path);
	free(b->links);
}

/* Finds the parent snapshot (same host, same paths) and opens its
 * catalog if it is the one this agent made last (parent.h). Otherwise
 * every file is read. */
static int backup_find_parent(struct backup *b, char *const *roots,
			      size_t nroots)
{
	int rc = parent_find(&b->parent_manifest, b->client, b->host, roots,
			     nroots);

	if (rc < 0)
		return rc;
	if (!parent_trusted(&b->record, b->parent_manifest, b->client)) {
		json_decref(b->parent_manifest);
		b->parent_manifest = NULL;
		return 0;
	}
	return parent_open(&b->parent, b->client, b->parent_manifest,
			   BACKUP_PARENT_FETCH);
}

/* Remembers the new snapshot as the next backup's parent. Failing to is
 * a warning: the next backup then reads every file. */
static void backup_remember(struct backup *b, const json_t *manifest)
{
	const char *id = json_string_value(json_object_get(manifest, "id"));

	if (parent_record_save(&b->record, id, b->cat_ids, b->ncat) < 0) {
		agent_warn("%s; the next backup will read every file",
			   dd_error_last());
		dd_error_clear();
	}
}

/*
 * How many entries the ring may hold: each may be a file open until it is
 * read, so the open-file limit (raised to its hard limit if it can be)
 * bounds it, with room left for the walk's directories and the
 * connections.
 */
static size_t backup_ring_size(void)
{
	struct rlimit rl;
	size_t n = BACKUP_RING_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 64;
	if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < 4 * BACKUP_RING_MAX) {
		struct rlimit up = rl;

		up.rlim_cur = rl.rlim_max < 4 * BACKUP_RING_MAX ?
			rl.rlim_max : 4 * BACKUP_RING_MAX;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < n)
		n = rl.rlim_cur / 2;
	return n < 16 ? 16 : n;
}

static int backup_setup(struct backup *b, struct client *c,
			const struct settings *s, unsigned threads)
{
	struct repo_config cfg;
	struct upload_limits lim = {
		.batch_ids = BACKUP_BATCH_IDS,
		.bundle_bytes = BACKUP_BUNDLE_BYTES,
		.level = BACKUP_ZSTD_LEVEL,
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *env;
	uint64_t n;
	int rc;

	/* Compression is the costly part of a first backup: one worker a
	 * core, at least two so the network wait overlaps with work. */
	lim.workers = ncpu < 2 ? 2 : ncpu > BACKUP_WORKERS_MAX ?
		BACKUP_WORKERS_MAX : (size_t)ncpu;
	/* Overrides for benchmarks. */
	if ((env = getenv("DEDUP_UPLOAD_WORKERS")) &&
	    dd_parse_u64(env, &n) == 0 && n >= 1 && n <= 16)
		lim.workers = (size_t)n;
	if ((env = getenv("DEDUP_ZSTD_LEVEL")) &&
	    dd_parse_u64(env, &n) == 0 && n >= 1 && n <= 19)
		lim.level = (int)n;
	lim.batch_bytes = BACKUP_BATCH_BUDGET / (lim.workers + 1);
	if (lim.batch_bytes > BACKUP_BATCH_BYTES)
		lim.batch_bytes = BACKUP_BATCH_BYTES;
	/* One asker a reader (or the walk thread reading inline). */
	lim.askers = threads > 1 ? threads : 1;
	b->ask_bytes = BACKUP_ASK_BYTES;
	if ((env = getenv("DEDUP_ASK_BYTES")) && dd_parse_u64(env, &n) == 0)
		b->ask_bytes = n;

	b->client = c;
	pthread_mutex_init(&b->h_mu, NULL);
	pthread_cond_init(&b->h_work_cv, NULL);
	pthread_cond_init(&b->h_done_cv, NULL);
	if (gethostname(b->host, sizeof(b->host) - 1) < 0)
		snprintf(b->host, sizeof(b->host), "unknown");
	dd_buf_init(&b->cat, 0);
	dd_buf_init(&b->ext, DD_CATALOG_EXT_MAX);
	if ((rc = meta_reader_new(&b->meta)) < 0)
		return rc;
	if ((rc = repo_config_fetch(&cfg, c)) < 0)
		return rc;
	/* A key with a chunker seed of its own cuts by it: the server,
	 * which knows the repository's seed, cannot then recompute a known
	 * file's chunk lengths (docs/ENCRYPTION.md, "Threat model"). */
	if (client_crypt(c) && dd_crypt_chunker_seed(client_crypt(c), &n))
		cfg.chunker.seed = n;
	if ((rc = dd_chunker_init(&b->chunker, &cfg.chunker)) < 0)
		return agent_error_wrap(rc, "server '%s' sent unusable chunker parameters",
					client_server(c));
	if (cfg.max_ids_per_query && lim.batch_ids > cfg.max_ids_per_query)
		lim.batch_ids = cfg.max_ids_per_query;
	if (cfg.max_upload_body && lim.bundle_bytes > cfg.max_upload_body)
		lim.bundle_bytes = cfg.max_upload_body;
	/* One bundle must hold the largest possible chunk. */
	if (lim.bundle_bytes < BACKUP_BUNDLE_MIN)
		return dd_error_set(-EPROTO,
				    "server '%s' accepts uploads of only %zu bytes",
				    client_server(c), lim.bundle_bytes);
	if ((rc = upload_queue_new(&b->uq, s, &lim)) < 0)
		return rc;
	if ((rc = reorder_new(&b->ring, backup_ring_size())) < 0 ||
	    (rc = backup_readers_start(b, threads)) < 0)
		return rc;
	if ((rc = dd_catalog_begin(&b->cat)) < 0)
		return agent_error_wrap(rc, "cannot start the catalog");
	if (client_crypt(c))
		return sealsnap_new(&b->seal, client_crypt(c));
	return 0;
}

static int backup_create_snapshot(struct backup *b, char **roots,
				  size_t nroots, int64_t time_start,
				  json_t **manifest)
{
	struct upload_stats us;
	json_t *paths = json_array(), *cat = json_array(), *req = NULL;
	json_t *parent = json_null();
	int rc = -ENOMEM;

	if (!paths || !cat)
		goto cleanup;
	if (b->parent_manifest)
		parent = json_object_get(b->parent_manifest, "id");
	for (size_t i = 0; i < nroots; i++)
		if (json_array_append_new(paths, json_string(roots[i])) < 0)
			goto cleanup;
	for (size_t i = 0; i < b->ncat; i++) {
		char hex[DD_ID_HEX_LEN + 1];

		dd_id_to_hex(hex, &b->cat_ids[i]);
		if (json_array_append_new(cat, json_string(hex)) < 0)
			goto cleanup;
	}
	upload_queue_stats(b->uq, &us);
	req = json_pack("{s:s, s:O, s:O, s:I, s:O, s:I, s:I, s:I}",
			"host", b->host, "paths", paths, "catalog", cat,
			"time_start", (json_int_t)time_start, "parent", parent,
			"bytes_new", (json_int_t)us.bytes_new,
			"chunks_new", (json_int_t)us.chunks_new,
			"bytes_sent", (json_int_t)us.bytes_sent);
	if (!req)
		goto cleanup;
	if (b->seal && (rc = sealsnap_finish(b->seal, req, b->uq,
					     &b->chunker)) < 0)
		goto cleanup;
	rc = client_post_json(b->client, session_snapshot_path(b->sess), req,
			      manifest);
	/* a server older than this agent: the one thing to do is said */
	if (rc < 0 && strstr(dd_error_last(), "unsupported catalog version"))
		rc = dd_error_set(rc, "cannot create the snapshot: the server "
				  "is older than this agent (upgrade servers "
				  "before agents, docs/OPERATIONS.md "
				  "\"Upgrading\"): %s", dd_error_last());
	else if (rc < 0)
		rc = agent_error_wrap(rc, "cannot create the snapshot");
	else
		rc = 0;
cleanup:
	if (rc == -ENOMEM)
		dd_error_set(rc, "out of memory");
	json_decref(paths);
	json_decref(cat);
	json_decref(req);
	return rc;
}

static int backup_print(struct backup *b, const json_t *manifest,
			bool as_json, bool quiet, double seconds)
{
	const char *id = json_string_value(json_object_get(manifest, "id"));
	struct upload_stats us;
	json_t *out;

	if (!id || strlen(id) != DD_ID_HEX_LEN ||
	    strspn(id, "0123456789abcdef") != DD_ID_HEX_LEN)
		return dd_error_set(-EBADMSG,
				    "server '%s' created a snapshot but sent no id",
				    client_server(b->client));
	progress_end(b->progress);
	if (!as_json) {
		if (!quiet)
			printf("%s\n", id);
		return 0;
	}
	upload_queue_stats(b->uq, &us);
	out = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I, s:I, s:I, s:f}",
			"snapshot_id", id,
			"files", (json_int_t)b->files,
			"unreadable", (json_int_t)b->ws.unreadable,
			"excluded", (json_int_t)b->ws.excluded,
			"files_unchanged", (json_int_t)parent_matched(b->parent),
			"bytes_total", (json_int_t)b->bytes_total,
			"bytes_new", (json_int_t)us.bytes_new,
			"bytes_sent", (json_int_t)us.bytes_sent,
			"chunks_total", (json_int_t)b->chunks_total,
			"chunks_new", (json_int_t)us.chunks_new,
			"bytes_read", (json_int_t)b->bytes_read,
			"bytes_holes", (json_int_t)b->bytes_holes,
			"bytes_copied", (json_int_t)us.bytes_copied,
			"seconds", seconds);
	if (!out)
		return dd_error_set(-ENOMEM, "out of memory");
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	return 0;
}

struct backup_run_opts {
	bool as_json, force_read, quiet;
	double t0;              /* when the command started (monotonic) */
	int64_t time_start;     /* and in wall-clock seconds */
	unsigned threads;       /* reading threads; 1: the walk thread reads */
};

/*
 * One backup of `roots` into a new snapshot, printed on success. Returns
 * DD_EXIT_OK, DD_EXIT_PARTIAL, or a negative error.
 */
static int backup_run(struct client *c, const struct settings *s,
		      char *const *roots, size_t nroots,
		      const struct walk_options *wopts,
		      const struct backup_run_opts *o)
{
	struct backup b = { 0 };
	struct walk_options wo = *wopts;
	json_t *manifest = NULL;
	char lock[PATH_MAX];
	int rc;

	if ((rc = backup_setup(&b, c, s, o->threads)) < 0 ||
	    (rc = parent_record_load(&b.record, s->server, s->token, b.host,
				     roots, nroots)) < 0 ||
	    (!o->force_read &&
	     (rc = backup_find_parent(&b, (char **)roots, nroots)) < 0) ||
	    (rc = progress_new(&b.progress, o->quiet)) < 0)
		goto cleanup;
	if (b.parent_manifest)
		progress_total(b.progress,
			       json_integer_value(json_object_get(b.parent_manifest, "files")),
			       json_integer_value(json_object_get(b.parent_manifest, "bytes_total")));
	/* Best effort: the server shows the backup in progress, and closes
	 * what killed runs of this configuration left open. */
	if (lock_path(lock, sizeof(lock), s->server, s->token) < 0) {
		dd_error_clear();
		lock[0] = '\0';
	}
	session_open(&b.sess, c, lock[0] ? lock : NULL, roots, nroots);
	/* Without a parent no file is matched before it is opened. */
	wo.open_files_first = b.parent == NULL;
	if (wo.ngiven && !(wo.given_seen = calloc(wo.ngiven,
						  sizeof(*wo.given_seen)))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < nroots; i++)
		if ((rc = walk_root(roots[i], &backup_walk_ops, &wo, &b,
				    &b.ws)) < 0)
			goto cleanup;
	/* a path given but not recorded (excluded, a cache, vanished)
	 * makes the snapshot partial, said by name */
	b.ws.unreadable += walk_roots_unseen(&wo);
	if ((rc = backup_emit_held(&b, true)) < 0 ||
	    (rc = backup_catalog_cut(&b, true)) < 0 ||
	    (rc = upload_queue_flush(b.uq)) < 0 ||
	    (rc = backup_create_snapshot(&b, (char **)roots, nroots,
					 o->time_start, &manifest)) < 0 ||
	    (rc = backup_print(&b, manifest, o->as_json, o->quiet,
			       dd_monotonic() - o->t0)) < 0)
		goto cleanup;
	backup_remember(&b, manifest);
	rc = DD_EXIT_OK;
	if (b.ws.unreadable) {
		agent_warn("the snapshot is partial: %lu entries could not be read",
			   b.ws.unreadable);
		rc = DD_EXIT_PARTIAL;
	}
cleanup:
	free(wo.given_seen);
	json_decref(manifest);
	session_close(b.sess, rc);
	backup_release(&b);
	return rc;
}

/* One reading thread per online CPU, within SETTINGS_THREADS_MAX. */
static unsigned backup_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > (long)SETTINGS_THREADS_MAX ? SETTINGS_THREADS_MAX : (unsigned)n;
}

int cmd_backup(int argc, char **argv, const struct agent_globals *g,
	       const struct agent_verb *self)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "force-read", no_argument, NULL, 'F' },
		{ "exclude", required_argument, NULL, 'e' },
		{ "exclude-file", required_argument, NULL, 'E' },
		{ "one-file-system", no_argument, NULL, 'x' },
		{ "include-caches", no_argument, NULL, 'C' },
		{ "threads", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct settings s = { 0 };
	struct pattern_list excl;
	struct walk_options wopts = { .exclude = &excl, .exclude_caches = true };
	struct backup_run_opts opt_run = {
		.t0 = dd_monotonic(), .time_start = dd_now(),
		.quiet = g->quiet,
	};
	struct client *c = NULL;
	json_t *probe;
	char **roots = NULL;
	size_t nroots = 0, nall = 0;   /* nall: all given, after pruning */
	int opt, rc;

	pattern_list_init(&excl);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":jhx", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			opt_run.as_json = true;
			break;
		case 'F':
			opt_run.force_read = true;
			break;
		case 'e':
			if ((rc = pattern_add(&excl, optarg)) < 0) {
				rc = agent_usage_error(self, "%s", dd_error_last());
				goto cleanup;
			}
			break;
		case 'E':
			if ((rc = pattern_add_file(&excl, optarg)) < 0) {
				rc = agent_error_wrap(rc, "cannot read exclude file '%s'",
						      optarg);
				goto cleanup;
			}
			break;
		case 'x':
			wopts.one_file_system = true;
			break;
		case 'C':
			wopts.exclude_caches = false;
			break;
		case 'T':
			if (settings_parse_threads(&opt_run.threads, optarg) < 0) {
				rc = agent_usage_error(self, "%s", dd_error_last());
				goto cleanup;
			}
			break;
		case 'h':
			pattern_list_release(&excl);
			return agent_usage_help(self);
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
	if (optind >= argc) {
		rc = agent_usage_error(self, "no PATH given");
		goto cleanup;
	}

	if (!(roots = calloc((size_t)(argc - optind), sizeof(*roots)))) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	for (int i = optind; i < argc; i++) {
		struct stat st;

		if ((rc = walk_normalize(&roots[nroots], argv[i])) < 0)
			goto cleanup;
		nroots++;
		if (lstat(roots[nroots - 1], &st) < 0) {
			rc = dd_error_set(-errno, "cannot stat '%s': %s",
					  argv[i], strerror(errno));
			goto cleanup;
		}
		/* The manifest lists the paths in JSON, which needs UTF-8. */
		if (!(probe = json_string(roots[nroots - 1]))) {
			rc = dd_error_set(-EINVAL,
					  "path '%s' is not valid UTF-8; back up its parent instead",
					  argv[i]);
			goto cleanup;
		}
		json_decref(probe);
	}
	/* every path given is checked to be recorded; those inside another
	 * are walked with it (past nroots: freed with the rest) */
	nall = nroots;
	nroots = walk_roots_prune(roots, nall, &rc);
	if (rc < 0)
		goto cleanup;
	wopts.given = roots;
	wopts.ngiven = nall;

	if ((rc = settings_load(&s, &g->src)) < 0 ||
	    (rc = client_new(&c, &s)) < 0)
		goto cleanup;
	if (opt_run.threads == 0)
		opt_run.threads = s.threads ? s.threads : backup_default_threads();
	rc = backup_run(c, &s, roots, nroots, &wopts, &opt_run);
	/* The server refuses a snapshot that names a chunk it no longer has
	 * (409): a chunk the parent listed was found damaged and dropped, or
	 * a garbage collection removed a chunk this run was told the server
	 * had (docs/OPERATIONS.md, "Garbage collection"). Reading every file
	 * again asks for every chunk anew and uploads what is missing. */
	if (rc == -EEXIST &&
	    strstr(dd_error_last(), "references missing chunk") != NULL) {
		agent_warn("%s; backing up again, reading every file",
			   dd_error_last());
		opt_run.force_read = true;
		rc = backup_run(c, &s, roots, nroots, &wopts, &opt_run);
	}
cleanup:
	pattern_list_release(&excl);
	client_free(c);
	settings_release(&s);
	for (size_t i = 0; i < (nall > nroots ? nall : nroots); i++)
		free(roots[i]);
	free(roots);
	return rc;
}
