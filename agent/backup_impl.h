/*
 * backup_impl.h - what backup.c (the walk, the catalog, the verb) and
 * backup_read.c (the reader threads: reading, cutting and hashing files)
 * share. Internal to `dedup-agent backup`; see backup.c's opening comment
 * for how the two fit.
 */
#ifndef DEDUP_AGENT_BACKUP_IMPL_H
#define DEDUP_AGENT_BACKUP_IMPL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "catalog.h"
#include "chunker.h"
#include "hash.h"
#include "util.h"
#include "parent.h"
#include "upload.h"
#include "walk.h"

/* Chunk references a record holds without an allocation. */
#define BACKUP_REFS_INLINE 2u

struct backup_link;
struct backup_hashjob;
struct backup_cut;

struct backup {
	struct client *client;
	struct upload_queue *uq;
	struct dd_chunker chunker;
	char host[HOST_NAME_MAX + 1];
	struct parent *parent;         /* NULL: read every file */
	json_t *parent_manifest;
	struct parent_record record;   /* the last snapshot this agent made */
	struct progress *progress;     /* NULL: no display */

	struct reorder *ring;          /* entries in walk order */
	struct backup_reader *readers; /* nreaders threads; none: the walk
					* thread reads with `inline_reader` */
	size_t nreaders;
	struct backup_reader *inline_reader;
	size_t read_block;             /* read beyond the max_size window */
	uint64_t ask_bytes;            /* files this large: ask, then copy */
	bool stopping;                 /* readers: give up (atomic) */
	/* Helpers hash the chunks of a reader's window (backup_hash_cuts). */
	pthread_mutex_t h_mu;
	pthread_cond_t h_work_cv;      /* a window is offered, or stop */
	pthread_cond_t h_done_cv;      /* its last chunk is hashed */
	struct backup_hashjob *hjob;   /* the window offered, or NULL */
	bool h_stop;
	pthread_t *helpers;
	size_t nhelpers;

	struct dd_buf cat;             /* catalog bytes not yet cut */
	struct dd_id *cat_ids;         /* catalog chunks, in order */
	size_t ncat, cat_alloc;

	struct meta_reader *meta;
	struct dd_buf ext;             /* the current entry's records */
	struct backup_link *links;     /* open addressing, power of 2 */
	size_t nlinks, links_alloc;

	uint64_t files, dirs, symlinks, hardlinks, specials;
	uint64_t bytes_total, chunks_total;
	uint64_t bytes_read;           /* file data read (holes are not) */
	uint64_t bytes_holes;          /* file bytes recorded as holes */
	unsigned long changed;         /* changed while read: warnings */
	struct walk_stats ws;
	struct session *sess;          /* backup in progress, or NULL */
	struct sealsnap *seal;         /* with a key: encrypted (key.h) */
};

/* What an entry is, for the counters and the hard-link table. */
enum backup_kind {
	BACKUP_FILE_READ,    /* a file a reader reads, cuts and hashes */
	BACKUP_FILE_KNOWN,   /* a file recorded with the parent's chunks */
	BACKUP_DIR,
	BACKUP_SYMLINK,
	BACKUP_SPECIAL,
	BACKUP_HARDLINK,
};

/*
 * One catalog entry waiting in the ring for its turn, with copies of what
 * the walk lent. A file to read also carries its open descriptor (the
 * reader closes it) and, once read, its chunk list and how the read went.
 */
struct backup_rec {
	enum backup_kind kind;
	struct dd_entry e;         /* points at the copies below */
	char *path;
	char *link;
	uint8_t *ext;
	struct stat st;
	int fd;                    /* BACKUP_FILE_READ until read, else -1 */
	struct dd_chunk_ref *refs;  /* ref_inline, or allocated */
	size_t nrefs, refs_alloc;
	/* A small file's chunks: most files need no allocation by a reader
	 * that the walk thread would free (a lock shared with the reader's
	 * allocator, contended at thousands of small files a second). */
	struct dd_chunk_ref ref_inline[BACKUP_REFS_INLINE];
	uint64_t size;             /* file bytes recorded, holes included */
	uint64_t pos;              /* the descriptor's offset */
	uint64_t bytes_read, bytes_holes;
	int read_err;              /* an errno: the file is left out */
	const char *read_what;     /* what failed, for walk_report */
	bool changed;              /* changed while it was read */
	int rc;                    /* a failure that stops the backup */
	char *errmsg;              /* and its message */
	bool meta_failed;          /* its xattrs or ACLs could not be read: */
	char *meta_errmsg;         /* why, warned in its turn */
};

/* A thread that reads files (or the walk thread, reading inline). */
/*
 * A reader's two read windows: while the upload queue asks the server
 * about one window's chunks (a large file's, upload.h), the next is read
 * and hashed in the other; what was not cut yet moves over to it.
 */
struct backup_rwin {
	uint8_t *buf;              /* rcap bytes; the second one on demand */
	struct upload_chunk *up;   /* the chunks as the upload queue takes them */
	size_t up_alloc;
	struct upload_window win;  /* in flight while win.busy */
};

struct backup_reader {
	struct backup *b;
	struct backup_rwin w[2];
	unsigned cur;              /* the window being read: w[cur] */
	size_t rcap;
	struct backup_cut *cuts;   /* the chunks cut in the window */
	size_t cuts_alloc;
	struct meta_reader *meta;  /* the files' xattrs and ACLs */
	struct dd_buf ext;
	pthread_t thread;
	bool started;
};

/* backup.c: a record's chunk list and its copies */
void backup_rec_free(struct backup_rec *rec);
int backup_rec_keep_ext(struct backup_rec *rec);
int backup_rec_push_ref(struct backup_rec *rec, const struct dd_id *id,
			size_t len);

/* backup_read.c */
/* Reads, cuts and hashes one file of the ring; its outcome stays in rec
 * (read_err, rc) for the walk thread to record in its turn. */
void backup_read_file(struct backup_reader *r, struct backup_rec *rec);
/* Starts `threads` readers (and the hashing helpers), or with 1 an
 * inline reader for the walk thread; stops and releases them. */
int backup_readers_start(struct backup *b, unsigned threads);
void backup_readers_stop(struct backup *b);

#endif
