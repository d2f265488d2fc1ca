/*
 * export.c - `dedup-agent restore SNAPSHOT --format tar --output FILE|-`
 *
 * The snapshot (or its selected part) as a POSIX pax archive, streamed as
 * the chunks arrive: nothing is written to disk but the archive. pax
 * records carry what ustar cannot: long and non-ASCII names, nanosecond
 * mtimes, owner names, xattrs (LIBARCHIVE.xattr / SCHILY.xattr) and ACLs
 * (SCHILY.acl), so GNU tar and bsdtar both extract the same tree. A hard
 * link is a link entry to its first path; devices carry their numbers.
 *
 * A file with holes in the catalog (version 3) is a sparse entry (pax
 * GNU.sparse 1.0): its holes take no space in the archive and tar
 * extracts them as holes. Zero runs inside chunks are archived as data:
 * the sparse map precedes the data in the archive, and the chunks arrive
 * after it was written.
 *
 * A FILE is written as FILE.tmp and renamed into place when complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "catalog.h"
#include "tarnames.h"
#include "proto.h"
#include "util.h"
#include "agent.h"
#include "idset.h"
#include "meta.h"
#include "pattern.h"
#include "restore.h"

struct rtar {
	struct archive *aw;
	struct archive_entry *ae;
	bool writing;
	uint64_t entries, bytes;
	unsigned long failed;
	/* A hard link whose source is not selected (--include) would name
	 * nothing in the archive: it is left out, its path's SHA-256 kept
	 * here so that a later link naming it goes too. The selection
	 * answers for every other entry: no set of all paths written. */
	const struct pattern_list *include;
	struct idset *dropped;
	unsigned long left_out;
	uint64_t hole_bytes;     /* passed to the writer: RTAR_HOLE_MAX */
	struct dd_owner_names *names;   /* a hard link's owner names */
};

static int rtar_error(struct rtar *t, const struct restore_entry *re)
{
	char q[512];

	return dd_error_set(-EIO, "cannot write '%s' to the archive: %s",
			    dd_quote(q, sizeof(q), re->path, strlen(re->path)),
			    archive_error_string(t->aw));
}

/* A file with holes in the catalog gets a sparse map (pax GNU.sparse
 * 1.0, which GNU tar and bsdtar extract as holes): its data runs. */
static void rtar_sparse_add(void *payload, uint64_t off, uint64_t len)
{
	archive_entry_sparse_add_entry(payload, (la_int64_t)off,
				       (la_int64_t)len);
}

static void rtar_sparse_map(struct archive_entry *ae,
			    const struct restore_entry *re)
{
	bool holes = false;

	archive_entry_sparse_clear(ae);
	for (uint64_t j = 0; j < re->e.nchunks && !holes; j++)
		holes = dd_chunk_ref_is_hole(&re->chunks[j]);
	if (holes)
		dd_sparse_runs(re->chunks, re->e.nchunks, re->e.size,
			       rtar_sparse_add, ae);
}

static int rtar_begin(void *ctx, const struct restore_entry *re)
{
	struct rtar *t = ctx;
	struct dd_id h;
	int ar;

	if (re->e.type == DD_ENTRY_HARDLINK) {
		bool in = re->link && pattern_selects(t->include, re->link);

		if (in && t->left_out) {  /* a link to a link left out */
			dd_sha256(&h, re->link, strlen(re->link));
			in = idset_lookup(t->dropped, &h, NULL) != 1;
		}
		if (!in) {
			char q[512], l[512];

			agent_warn("leaving out '%s': a hard link to '%s', which "
				   "is not in the archive (not selected)",
				   dd_quote(q, sizeof(q), re->path,
					    strlen(re->path)),
				   dd_quote(l, sizeof(l), re->link ? re->link :
					    "", re->link ? strlen(re->link) : 0));
			t->left_out++;
			dd_sha256(&h, re->path, strlen(re->path));
			if (idset_insert(t->dropped, &h, 0, NULL) < 0)
				return dd_error_set(-ENOMEM, "out of memory");
			return 0;
		}
	}
	meta_fill(t->ae, &re->e, re->path, re->link, re->with_ext, NULL);
	dd_owner_names_to_entry(t->names, &re->e, t->ae);
	rtar_sparse_map(t->ae, re);
	ar = archive_write_header(t->aw, t->ae);
	if (ar == ARCHIVE_WARN) {
		const char *why = archive_error_string(t->aw);
		char q[512];

		/* A name that is not UTF-8 is stored as raw bytes
		 * (hdrcharset=BINARY); tar extracts the same bytes. */
		dd_quote(q, sizeof(q), re->path, strlen(re->path));
		if (why && strstr(why, "translate"))
			agent_warn("'%s': not UTF-8, stored as raw bytes", q);
		else
			agent_warn("'%s': %s", q, why ? why : "warning");
	} else if (ar != ARCHIVE_OK) {
		return rtar_error(t, re);
	}
	t->entries++;
	t->writing = re->e.type == DD_ENTRY_FILE;
	return t->writing ? 1 : 0;
}

static int rtar_data(void *ctx, const struct restore_entry *re,
		     const uint8_t *p, size_t n, uint64_t off)
{
	struct rtar *t = ctx;
	la_ssize_t w = archive_write_data(t->aw, p, n);

	(void)off;      /* chunks come in order */
	if (w < 0 || (size_t)w != n)
		return rtar_error(t, re);
	t->bytes += n;
	return 0;
}

/* The bytes of holes one archive may pass through the writer (it skips
 * them, but takes them): a hostile catalog names a petabyte of holes in
 * 14 MB. At about 30 us a GiB with 1 MiB pieces, 64 TiB is about 2 s. */
#define RTAR_HOLE_MAX (64ull << 40)

static uint64_t rtar_hole_max(void)
{
	return dd_test_hook_u64("DEDUP_TEST_EXPORT_HOLE_MAX", 1, UINT64_MAX,
				RTAR_HOLE_MAX);
}

/* libarchive's pax writer takes a sparse file's bytes in order, holes
 * included, and drops those of the holes: they cost no archive space. */
static int rtar_hole(void *ctx, const struct restore_entry *re, uint64_t n,
		     uint64_t off)
{
	static uint8_t zeros[1024 * 1024];    /* .bss: never written */
	struct rtar *t = ctx;
	char q[512];

	(void)off;
	if ((t->hole_bytes += n) > rtar_hole_max())
		return dd_error_set(-E2BIG, "the holes of the archive add up "
				    "to more than %llu bytes at '%s': restore "
				    "it to a directory instead",
				    (unsigned long long)rtar_hole_max(),
				    dd_quote(q, sizeof(q), re->path,
					     strlen(re->path)));
	while (n > 0) {
		size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		la_ssize_t w = archive_write_data(t->aw, zeros, k);

		if (w < 0 || (size_t)w != k)
			return rtar_error(t, re);
		n -= k;
	}
	return 0;
}

static int rtar_end(void *ctx, const struct restore_entry *re)
{
	struct rtar *t = ctx;

	t->writing = false;
	if (archive_write_finish_entry(t->aw) < ARCHIVE_WARN)
		return rtar_error(t, re);
	return 0;
}

/*
 * Creates `tmp` as a new file that only this run has opened: never through
 * a symlink or into an existing file (another user may have planted one
 * where the archive's temporary name will be). Whatever sits there, left by
 * a killed run or planted, is unlinked (a symlink is removed, never
 * followed) and the name made again with O_EXCL; a second collision means
 * someone is racing us, and is an error. The fd, or a negative error.
 */
static int export_create_tmp(const char *tmp)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(tmp, flags, 0600);

	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
		fd = open(tmp, flags, 0600);
	if (fd < 0)
		return dd_error_set(-errno, "cannot create '%s': %s", tmp,
				    strerror(errno));
	return fd;
}

int export_tar(struct client *c, const struct settings *s,
	       const json_t *manifest, const struct pattern_list *include,
	       const char *output, bool quiet)
{
	struct restore_sink sink = {
		.begin = rtar_begin, .data = rtar_data, .hole = rtar_hole,
		.end = rtar_end,
	};
	struct rtar t = { 0 };
	bool to_stdout = strcmp(output, "-") == 0;
	char *tmp = NULL, human[32];
	int fd = -1, rc;

	sink.ctx = &t;
	/* Names are converted to UTF-8 for pax records; bytes that are not
	 * valid UTF-8 make libarchive store the name raw. */
	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "");
	if (to_stdout) {
		if (isatty(STDOUT_FILENO))
			return dd_error_set(-EINVAL, "refusing to write an "
					    "archive to a terminal");
		fd = STDOUT_FILENO;
	} else {
		size_t n = strlen(output) + 5;

		if (!(tmp = malloc(n)))
			return dd_error_set(-ENOMEM, "out of memory");
		snprintf(tmp, n, "%s.tmp", output);
		if ((fd = export_create_tmp(tmp)) < 0) {
			free(tmp);
			return fd;
		}
	}
	t.include = include;
	if (!(t.aw = archive_write_new()) || !(t.ae = archive_entry_new()) ||
	    !(t.names = dd_owner_names_new()) || idset_new(&t.dropped) < 0) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	if (archive_write_set_format_pax(t.aw) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(t.aw, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(t.aw, fd) != ARCHIVE_OK) {
		rc = dd_error_set(-EIO, "cannot start the archive: %s",
				  archive_error_string(t.aw));
		goto cleanup;
	}
	if ((rc = restore_stream(c, s, manifest, include, &sink)) < 0)
		goto cleanup;
	if (archive_write_close(t.aw) != ARCHIVE_OK) {
		rc = dd_error_set(-EIO, "cannot finish the archive: %s",
				  archive_error_string(t.aw));
		goto cleanup;
	}
	if (!to_stdout) {
		if (fsync(fd) < 0 || close(fd) < 0) {
			rc = dd_error_set(-errno, "cannot write '%s': %s", tmp,
					  strerror(errno));
			fd = -1;
			goto cleanup;
		}
		fd = -1;
		if (rename(tmp, output) < 0) {
			rc = dd_error_set(-errno, "cannot rename '%s' to '%s': %s",
					  tmp, output, strerror(errno));
			goto cleanup;
		}
		free(tmp);
		tmp = NULL;
	}
	if (!quiet) {
		agent_fmt_bytes(human, t.bytes);
		fprintf(stderr, "wrote %llu entries (%s of file data) to '%s'\n",
			(unsigned long long)t.entries, human,
			to_stdout ? "standard output" : output);
	}
	rc = DD_EXIT_OK;
	if (t.left_out)
		rc = dd_error_set(-EINVAL, "%lu hard link(s) left out of the "
				  "archive: their files were not selected; "
				  "select those too", t.left_out);
cleanup:
	idset_free(t.dropped);
	dd_owner_names_free(t.names);
	if (t.aw)
		archive_write_free(t.aw);
	archive_entry_free(t.ae);
	if (fd >= 0 && !to_stdout)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return rc;
}
