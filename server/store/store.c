/*
 * store.c - opening and closing the store: counters, the index rebuilt
 * from the packs (at open, and for repair --rebuild-index).
 */
#define _GNU_SOURCE            /* renameat2 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "store_impl.h"

/* ---- opening: counters and index rebuild ---- */

/* Counts the 'c' entries of the index. */
static int store_count_entries(struct store *s, uint64_t *chunks,
			       uint64_t *bytes)
{
	leveldb_iterator_t *it = leveldb_create_iterator(s->db,
							 s->ropts_nofill);
	struct dd_chunk_loc loc;
	const char *k, *v;
	size_t klen, vlen;
	char *err = NULL;

	*chunks = 0;
	*bytes = 0;
	for (leveldb_iter_seek(it, "c", 1); leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < 1 || k[0] != 'c')
			break;
		v = leveldb_iter_value(it, &vlen);
		if (klen != 1 + DD_ID_LEN ||
		    dd_chunk_loc_decode(&loc, v, vlen) < 0)
			continue;
		(*chunks)++;
		*bytes += loc.plain_len;
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	if (err)
		return store_db_error(err, "read the index");
	return 0;
}

/* The counters recounted from the entries and written (after a pull of
 * the shared index, whose entries the local counters did not count). */
int store_recount(struct store *s)
{
	uint8_t meta[STORE_META_LEN];
	uint64_t chunks, bytes;
	leveldb_writebatch_t *b;
	int rc;

	store_ingest_lock(s);
	pthread_rwlock_rdlock(&s->db_lock);
	rc = s->db ? store_count_entries(s, &chunks, &bytes) : -EAGAIN;
	pthread_rwlock_unlock(&s->db_lock);
	if (rc == 0) {
		b = leveldb_writebatch_create();
		store_meta_encode(meta, chunks, bytes);
		leveldb_writebatch_put(b, STORE_META_KEY,
				       strlen(STORE_META_KEY),
				       (const char *)meta, sizeof(meta));
		rc = store_index_apply(s, b);
		leveldb_writebatch_destroy(b);
	}
	if (rc == 0) {
		pthread_mutex_lock(&s->counters_lock);
		s->chunks = chunks;
		s->bytes_unique = bytes;
		pthread_mutex_unlock(&s->counters_lock);
	}
	pthread_mutex_unlock(&s->ingest_lock);
	return rc;
}

struct store_rebuild {
	struct store *s;
	struct dd_buf plain;
	ZSTD_DCtx *dctx;
	uint64_t added, bad, salvaged;
	uint64_t end;         /* end of the last record the scan reported */
	uint64_t kill_after;  /* test hook: SIGKILL after this many; 0 none */
	int err;
};

/* With the index open for rebuilding: adds id -> loc. */
static int store_rebuild_put(struct store_rebuild *r, const struct dd_id *id,
			     const struct dd_chunk_loc *loc)
{
	uint8_t key[1 + DD_ID_LEN], val[DD_CHUNK_LOC_MAX];
	size_t vlen;
	char *err = NULL;

	store_id_key(key, id);
	vlen = dd_chunk_loc_encode(val, loc);
	leveldb_put(r->s->db, r->s->wopts_nosync, (const char *)key,
		    sizeof(key), (const char *)val, vlen, &err);
	if (err) {
		r->err = store_db_error(err, "write the index");
		return -1;
	}
	r->added++;
	if (r->kill_after && r->added >= r->kill_after)
		raise(SIGKILL);    /* test hook: a rebuild cut short */
	return 0;
}

static int store_rebuild_record(void *payload, const struct dd_id *id,
				const struct dd_chunk_loc *loc,
				const uint8_t *stored)
{
	struct store_rebuild *r = payload;
	struct dd_chunk_loc have;
	int rc;

	r->end = loc->offset + DD_PACK_RECORD_HEADER_LEN + loc->stored_len;
	if (store_lookup(r->s, id, &have) == 0)
		return 0;          /* a copy in an earlier pack wins */
	rc = store_decode(&r->plain, id, loc->flags, loc->plain_len, stored,
			  loc->stored_len, r->dctx);
	if (rc < 0) {
		r->bad++;
		return 0;
	}
	return store_rebuild_put(r, id, loc) < 0 ? 1 : 0;
}

/* dd_pack_salvage callback: only records whose bytes hash to their id
 * are records (a match may lie inside another record's bytes). */
static int store_salvage_record(void *payload, const struct dd_id *id,
				const struct dd_chunk_loc *loc,
				const uint8_t *stored)
{
	struct store_rebuild *r = payload;
	struct dd_chunk_loc have;

	if (store_decode(&r->plain, id, loc->flags, loc->plain_len, stored,
			 loc->stored_len, r->dctx) < 0)
		return 0;
	if (store_lookup(r->s, id, &have) == 0)
		return DD_PACK_SALVAGE_TAKEN;
	if (store_rebuild_put(r, id, loc) < 0)
		return r->err;
	r->salvaged++;
	return DD_PACK_SALVAGE_TAKEN;
}

/* Rebuilds the index from every pack, oldest first, verifying each
 * record. Used when the index is empty but packs exist. */
/* A scan that failed part way, or an unsealed pack that does not end with
 * its last record (a torn write, or damage in the middle): indexes the
 * intact records after what was read. */
static int store_rebuild_salvage(struct store_rebuild *r, uint64_t seq,
				 const char *path, int scan_rc)
{
	int rc;

	if (scan_rc < 0)
		log_warning("pack '%s': %s (salvaging its records)", path,
			    log_reason(scan_rc));
	dd_error_clear();
	rc = packio_salvage(r->s->be, seq, r->end, store_salvage_record, r);
	if (r->err)
		return r->err;
	if (rc < 0)
		log_warning("pack '%s': %s (indexed what could be read)", path,
			    log_reason(rc));
	return 0;
}

/* Rebuilds the index from every pack, oldest first, verifying each
 * record. Used when the index is empty but packs exist. */
static int store_rebuild(struct store *s)
{
	struct store_rebuild r;
	uint64_t *seqs = NULL, size;
	char path[600];
	size_t n = 0, i;
	bool sealed;
	int rc;

	rc = packio_seqs(s->be, &seqs, &n);
	if (rc < 0 || n == 0) {
		free(seqs);
		return rc;
	}
	log_info("index is empty: rebuilding it from %zu pack(s)", n);
	memset(&r, 0, sizeof(r));
	r.s = s;
	/* Test hook (tests/e2e/t0620-crash.sh): DEDUP_TEST_REBUILD_KILL_AFTER=N
	 * kills this process once N entries were written. */
	if (getenv("DEDUP_TEST_REBUILD_KILL_AFTER") &&
	    dd_parse_u64(getenv("DEDUP_TEST_REBUILD_KILL_AFTER"),
			 &r.kill_after) < 0)
		r.kill_after = 0;
	dd_buf_init(&r.plain, 0);
	r.dctx = ZSTD_createDCtx();
	for (i = 0; i < n; i++) {
		packio_display(path, sizeof(path), s->be, seqs[i]);
		dd_error_clear();
		r.end = DD_PACK_HEADER_LEN;
		rc = packio_scan(s->be, seqs[i], store_rebuild_record, &r,
				 &sealed);
		if (r.err) {
			rc = r.err;
			break;
		}
		if (rc < 0 || (!sealed &&
			       packio_size(s->be, seqs[i], &size) == 0 &&
			       size > r.end)) {
			rc = store_rebuild_salvage(&r, seqs[i], path, rc);
			if (rc < 0)
				break;
		}
		rc = 0;
	}
	if (r.salvaged)
		log_warning("%llu record(s) were salvaged from damaged packs",
			    (unsigned long long)r.salvaged);
	if (r.bad)
		log_warning("%llu corrupt record(s) were left out of the index",
			    (unsigned long long)r.bad);
	s->rebuild_bad = r.bad;
	if (rc == 0)
		log_info("index rebuilt: %llu chunk(s)",
			 (unsigned long long)r.added);
	dd_buf_release(&r.plain);
	ZSTD_freeDCtx(r.dctx);
	free(seqs);
	return rc;
}

/* Whether the index holds the marker of a rebuild (STORE_REBUILD_KEY):
 * 1, 0, or a negative error. */
static int store_rebuild_marked(struct store *s)
{
	char *err = NULL, *v;
	size_t vlen;

	v = leveldb_get(s->db, s->ropts, STORE_REBUILD_KEY,
			strlen(STORE_REBUILD_KEY), &vlen, &err);
	if (err)
		return store_db_error(err, "read the index");
	leveldb_free(v);
	return v != NULL;
}

/* Loads the counters, recounting (and rebuilding) when the meta key is
 * missing. An empty index is rebuilt from the packs; so is one whose
 * rebuild was cut short (its marker is still there): its entries are a
 * part of what the rebuild writes, never to be taken for the whole. */
static int store_load_counters(struct store *s)
{
	uint8_t meta[STORE_META_LEN];
	char *err = NULL, *v;
	size_t vlen;
	int rc, marked;

	v = leveldb_get(s->db, s->ropts, STORE_META_KEY,
			strlen(STORE_META_KEY), &vlen, &err);
	if (err)
		return store_db_error(err, "read the index");
	if (v && vlen == STORE_META_LEN && (uint8_t)v[0] == 1) {
		s->chunks = dd_le64((const uint8_t *)v + 1);
		s->bytes_unique = dd_le64((const uint8_t *)v + 9);
		leveldb_free(v);
		return 0;
	}
	if (v) {
		if (!(s->flags & STORE_OPEN_READONLY))
			log_warning("index counters are invalid: recounting");
		leveldb_free(v);
	}
	rc = store_count_entries(s, &s->chunks, &s->bytes_unique);
	if (s->flags & STORE_OPEN_READONLY)
		return rc;
	marked = rc == 0 ? store_rebuild_marked(s) : 0;
	if (marked < 0)
		rc = marked;
	if (marked > 0)
		log_warning("the index was being rebuilt when the server "
			    "stopped (%llu entries written): rebuilding it "
			    "again", (unsigned long long)s->chunks);
	if (rc == 0 && (s->chunks == 0 || marked)) {
		/* marked durably before the first entry */
		if (!marked) {
			leveldb_put(s->db, s->wopts_sync, STORE_REBUILD_KEY,
				    strlen(STORE_REBUILD_KEY), "1", 1, &err);
			if (err)
				return store_db_error(err, "write the index");
		}
		rc = store_rebuild(s);
		/* The rebuild writes without syncing (one sync would cost
		 * as much as the rebuild), and LevelDB closes a full log
		 * file without syncing it: every file of the index is made
		 * durable before the counters say the index is whole, or a
		 * power loss could leave entries missing behind counters
		 * that no longer ask for a rebuild. */
		if (rc == 0)
			rc = dd_fsync_dir_files(s->index_dir);
		if (rc == 0)
			rc = store_count_entries(s, &s->chunks,
						 &s->bytes_unique);
	}
	/* Before the counters are written, so a crash retries it. */
	if (rc == 0)
		rc = domains_after_rebuild(s);
	if (rc < 0)
		return rc;
	store_meta_encode(meta, s->chunks, s->bytes_unique);
	{
		/* the counters and the marker's removal: one write */
		leveldb_writebatch_t *b = leveldb_writebatch_create();

		leveldb_writebatch_put(b, STORE_META_KEY,
				       strlen(STORE_META_KEY),
				       (const char *)meta, sizeof(meta));
		leveldb_writebatch_delete(b, STORE_REBUILD_KEY,
					  strlen(STORE_REBUILD_KEY));
		leveldb_write(s->db, s->wopts_sync, b, &err);
		leveldb_writebatch_destroy(b);
	}
	if (err)
		return store_db_error(err, "write the index");
	return 0;
}

/* The server's open: a table with a bad block would go unnoticed until a
 * lookup lands on it (ldbcheck.h), so every table is checked first, and a
 * damaged index stops the start with one clear error. */
static int store_verify_tables(struct store *s)
{
	struct ldbcheck_stats st;
	double t0 = dd_monotonic();
	int rc;

	dd_error_clear();
	rc = ldbcheck_dir(s->index_dir, &st);
	if (rc == -ENOENT)
		return 0;           /* a new index */
	if (rc == -EBADMSG)
		return dd_error_set(rc, "the index is damaged: %s; run "
				    "`dedup-server repair --rebuild-index` "
				    "(with the server stopped)",
				    dd_error_last());
	if (rc < 0)
		return rc;
	log_info("index tables verified: %llu table(s), %llu block(s), "
		 "%.1f MiB in %.2f s", (unsigned long long)st.tables,
		 (unsigned long long)st.blocks,
		 (double)st.bytes / (1024.0 * 1024.0), dd_monotonic() - t0);
	return 0;
}

/* The exact bound of the vouch journal: 0 (the default) unless a test
 * sets DEDUP_TEST_VOUCH_MAX. */
static size_t store_test_vouch_max(void)
{
	const char *v = getenv(STORE_TEST_VOUCH_MAX);
	uint64_t n;

	if (!v || dd_parse_u64(v, &n) < 0 || n == 0 || n > VOUCH_EXACT_MAX)
		return 0;
	return (size_t)n;
}

/* Opens the store of `repo` over `be` (taken over, freed by store_close
 * or on failure) with its index in `index_dir` (NULL: the repository's
 * index/). */
struct store_fe_max {
	uint32_t fe;
	uint64_t max;
};

/* The highest pack number of front-end fe (its own numbering). */
static int store_fe_max_cb(void *payload, uint64_t seq)
{
	struct store_fe_max *m = payload;

	if (store_seq_frontend(seq) == m->fe && seq > m->max)
		m->max = seq;
	return 0;
}

uint32_t store_frontend(const struct store *s)
{
	return s->fe;
}

uint32_t store_seq_frontend(uint64_t seq)
{
	return (uint32_t)(seq >> STORE_FE_SHIFT);
}

static int store_open_dir(struct store **out, const char *repo,
			  struct backend *be, const char *index_dir,
			  unsigned flags, uint32_t fe)
{
	struct store_fe_max fm = { fe, (uint64_t)fe << STORE_FE_SHIFT };
	struct store *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		backend_free(be);
		return -ENOMEM;
	}
	s->be = be;
	s->fe = fe;
	s->shared = backend_has_omap(be);
	s->fills_unmarked = getenv(STORE_TEST_FILLS_UNMARKED) != NULL;
	s->pack_target = packio_target(be);
	s->flags = flags;
	pthread_rwlock_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->ingest_lock, NULL);
	store_commit_init(s);
	pthread_mutex_init(&s->counters_lock, NULL);
	pthread_mutex_init(&s->usage_lock, NULL);
	pthread_mutex_init(&s->fd_lock, NULL);
	pthread_mutex_init(&s->gc_lock, NULL);
	pthread_rwlock_init(&s->sweep_lock, NULL);
	pthread_mutex_init(&s->track_lock, NULL);
	pthread_mutex_init(&s->heal_lock, NULL);
	pthread_mutex_init(&s->cache_lock, NULL);
	pthread_mutex_init(&s->learn_lock, NULL);
	pthread_mutex_init(&s->tags_lock, NULL);
	s->heal_backoff = STORE_HEAL_BACKOFF_MIN;
	rc = vouch_new(&s->vouched, store_test_vouch_max());
	if (rc < 0)
		goto fail;

	rc = 0;
	if (index_dir &&
	    snprintf(s->index_dir, sizeof(s->index_dir), "%s", index_dir) >=
	    (int)sizeof(s->index_dir))
		rc = dd_error_set(-ENAMETOOLONG, "path too long: '%s'",
				  index_dir);
	else if (rc == 0 && !index_dir)
		rc = dd_path_join(s->index_dir, sizeof(s->index_dir), repo,
				  STORE_INDEX_DIR);
	if (rc < 0)
		goto fail;
	rc = store_options_init(s);
	if (rc < 0)
		goto fail;
	if (flags & STORE_OPEN_READONLY) {
		struct stat st;

		if (stat(s->index_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			rc = dd_error_set(-ENOENT, "there is no index '%s'",
					  s->index_dir);
			goto fail;
		}
	}
	if (!(flags & (STORE_OPEN_READONLY | STORE_OPEN_FRESH))) {
		rc = store_verify_tables(s);
		if (rc < 0)
			goto fail;
	}
	rc = store_db_open(s);
	if (rc < 0)
		goto fail;
	rc = packio_list(s->be, store_fe_max_cb, &fm);
	if (rc < 0)
		goto fail;
	/* Never append to an existing pack, sealed or not. */
	s->next_seq = fm.max + 1;
	rc = store_load_counters(s);
	if (rc == 0 && !(flags & STORE_OPEN_FRESH))
		rc = store_shared_seed(s);
	if (rc == 0 && s->shared &&
	    !(flags & (STORE_OPEN_FRESH | STORE_OPEN_READONLY)))
		rc = domains_cache_audit(s);
	if (rc == 0)
		rc = store_cache_epoch_load(s);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

/* The directory backend of a repository: its packs/ as always. */
static int store_dir_backend(struct backend **be, const char *repo)
{
	char spec[4200];

	if (snprintf(spec, sizeof(spec), "dir:%s", repo) >= (int)sizeof(spec))
		return dd_error_set(-ENAMETOOLONG, "path too long: '%s'", repo);
	return backend_open(be, spec, NULL);
}

int store_open(struct store **out, const char *repo)
{
	return store_open_ex(out, repo, 0);
}

int store_open_ex(struct store **out, const char *repo, unsigned flags)
{
	struct backend *be;
	int rc = store_dir_backend(&be, repo);

	*out = NULL;
	if (rc < 0)
		return rc;
	return store_open_be(out, repo, be, flags);
}

int store_open_be(struct store **out, const char *repo, struct backend *be,
		  unsigned flags)
{
	return store_open_fe(out, repo, be, flags, 0);
}

int store_open_fe(struct store **out, const char *repo, struct backend *be,
		  unsigned flags, uint32_t fe)
{
	return store_open_dir(out, repo, be, NULL,
			      flags & (STORE_OPEN_READONLY | STORE_DOMAINS_USED),
			      fe);
}

unsigned store_flags(const struct store *s)
{
	return s->flags |
	       (__atomic_load_n(&s->domains_noted, __ATOMIC_ACQUIRE) ?
		STORE_DOMAINS_USED : 0u);
}

bool store_test_fills_unmarked(const struct store *s)
{
	return s->fills_unmarked;
}

void store_domains_note(struct store *s)
{
	if (!__atomic_load_n(&s->domains_noted, __ATOMIC_ACQUIRE))
		__atomic_store_n(&s->domains_noted, 1, __ATOMIC_RELEASE);
}

struct backend *store_backend(const struct store *s)
{
	return s->be;
}

bool store_reads_overlap(const struct store *s)
{
	return backend_reads_overlap(s->be) != 0;
}

int store_pack_seqs(struct store *s, uint64_t **out, size_t *n)
{
	return packio_seqs(s->be, out, n);
}

int store_index_foreach(struct store *s, store_entry_cb cb, void *payload)
{
	leveldb_iterator_t *it = leveldb_create_iterator(s->db,
							 s->ropts_nofill);
	const char *k, *v;
	size_t klen, vlen;
	char *err = NULL;
	int rc = 0;

	for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
	     leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		v = leveldb_iter_value(it, &vlen);
		rc = cb(payload, (const uint8_t *)k, klen,
			(const uint8_t *)v, vlen);
		if (rc)
			break;
	}
	leveldb_iter_get_error(it, &err);
	leveldb_iter_destroy(it);
	if (err && rc == 0) {
		rc = dd_error_set(-EBADMSG, "cannot read the index '%s': %s",
				  s->index_dir, err);
		leveldb_free(err);
	} else if (err) {
		leveldb_free(err);
	}
	return rc;
}

int store_index_meta(struct store *s, bool *present, uint64_t *chunks,
		     uint64_t *bytes_unique)
{
	char *err = NULL, *v;
	size_t vlen;

	*present = false;
	*chunks = 0;
	*bytes_unique = 0;
	v = leveldb_get(s->db, s->ropts, STORE_META_KEY,
			strlen(STORE_META_KEY), &vlen, &err);
	if (err) {
		int rc = dd_error_set(-EBADMSG, "cannot read the index '%s': %s",
				      s->index_dir, err);

		leveldb_free(err);
		return rc;
	}
	if (v && vlen == STORE_META_LEN && (uint8_t)v[0] == 1) {
		*present = true;
		*chunks = dd_le64((const uint8_t *)v + 1);
		*bytes_unique = dd_le64((const uint8_t *)v + 9);
	}
	leveldb_free(v);
	return 0;
}

/* Removes a LevelDB directory (flat: files only) and the directory;
 * 0 if it does not exist. */
static int store_remove_dir(const char *dir)
{
	char path[4400];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 :
			dd_error_set(-errno, "cannot open '%s': %s", dir,
				     strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0 && errno != ENOENT) {
			int rc = -errno;

			closedir(d);
			return dd_error_set(rc, "cannot remove '%s': %s", path,
					    strerror(-rc));
		}
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		return dd_error_set(-errno, "cannot remove '%s': %s", dir,
				    strerror(errno));
	return 0;
}

int store_rebuild_index(const char *repo, unsigned flags, uint64_t *chunks,
			uint64_t *bad)
{
	struct backend *be;
	int rc = store_dir_backend(&be, repo);

	*chunks = 0;
	*bad = 0;
	if (rc < 0)
		return rc;
	return store_rebuild_index_be(repo, be, flags, chunks, bad);
}

int store_rebuild_index_be(const char *repo, struct backend *be,
			   unsigned flags, uint64_t *chunks, uint64_t *bad)
{
	char idx[4096], nidx[4200], oidx[4200];
	struct store *s = NULL;
	uint64_t bytes;
	int rc;

	*chunks = 0;
	*bad = 0;
	rc = dd_path_join(idx, sizeof(idx), repo, STORE_INDEX_DIR);
	if (rc < 0) {
		backend_free(be);
		return rc;
	}
	snprintf(nidx, sizeof(nidx), "%s.new", idx);
	snprintf(oidx, sizeof(oidx), "%s.old", idx);
	/* Leftovers of an interrupted repair are of no use. */
	rc = store_remove_dir(nidx);
	if (rc == 0)
		rc = store_remove_dir(oidx);
	if (rc < 0) {
		backend_free(be);
		return rc;
	}
	rc = store_open_dir(&s, repo, be, nidx,
			    STORE_OPEN_FRESH | (flags & STORE_DOMAINS_USED), 0);
	if (rc < 0)
		return rc;
	store_counters(s, chunks, &bytes);
	*bad = s->rebuild_bad;
	store_close(s);
	rc = dd_fsync_dir(nidx);
	if (rc < 0)
		return rc;
	/* The new index takes the old one's place in one step: a kill at
	 * any moment leaves an index (old or new) at its name. The old one
	 * is then at index.new, removed below or by the next repair. Where
	 * the file system cannot exchange, two renames, and a kill between
	 * them leaves no index until the next start rebuilds one. */
	if (renameat2(AT_FDCWD, nidx, AT_FDCWD, idx, RENAME_EXCHANGE) == 0) {
		rc = dd_fsync_dir(repo);
		return rc < 0 ? rc : store_remove_dir(nidx);
	}
	if (errno != ENOENT && errno != EINVAL && errno != ENOSYS)
		return dd_error_set(-errno, "cannot exchange '%s' and '%s': %s",
				    nidx, idx, strerror(errno));
	if (rename(idx, oidx) < 0 && errno != ENOENT)
		return dd_error_set(-errno, "cannot rename '%s': %s", idx,
				    strerror(errno));
	if (rename(nidx, idx) < 0)
		return dd_error_set(-errno, "cannot rename '%s': %s", nidx,
				    strerror(errno));
	rc = dd_fsync_dir(repo);
	if (rc < 0)
		return rc;
	return store_remove_dir(oidx);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_seal_writer(s);
	store_db_release(s);
	store_options_release(s);
	store_readers_close(s);
	backend_free(s->be);
	pthread_rwlock_destroy(&s->db_lock);
	store_commit_release(s);
	pthread_mutex_destroy(&s->ingest_lock);
	pthread_mutex_destroy(&s->counters_lock);
	pthread_mutex_destroy(&s->usage_lock);
	pthread_mutex_destroy(&s->fd_lock);
	pthread_mutex_destroy(&s->gc_lock);
	pthread_rwlock_destroy(&s->sweep_lock);
	pthread_mutex_destroy(&s->track_lock);
	pthread_mutex_destroy(&s->heal_lock);
	pthread_mutex_destroy(&s->cache_lock);
	pthread_mutex_destroy(&s->learn_lock);
	pthread_mutex_destroy(&s->tags_lock);
	vouch_free(s->vouched);
	free(s);
}
