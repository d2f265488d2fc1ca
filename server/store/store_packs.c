/*
 * store_packs.c - pack files on disk: listing them, and reading chunks
 * back through a small cache of open files.
 */
#include "store_impl.h"

/* ---- packs on disk ---- */

/* Parses "<16 hex>.pack"; false for any other name. */
static bool store_pack_name(const char *name, uint64_t *seq)
{
	uint8_t b[8];
	int i;

	if (strlen(name) != 21 || strcmp(name + 16, ".pack") != 0 ||
	    dd_hex_decode(b, 8, name, 16) < 0)
		return false;
	*seq = 0;
	for (i = 0; i < 8; i++)
		*seq = *seq << 8 | b[i];
	return true;
}

/* Calls cb for each pack file name in the packs directory. */
int store_list_packs(const char *dir,
		     int (*cb)(void *payload, uint64_t seq,
		     const char *name),
		     void *payload)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t seq;
	int rc = 0;

	if (!d)
		return dd_error_set(-errno, "cannot open '%s': %s", dir,
				    strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (!store_pack_name(de->d_name, &seq))
			continue;
		rc = cb(payload, seq, de->d_name);
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

int store_max_seq_cb(void *payload, uint64_t seq, const char *name)
{
	uint64_t *max = payload;

	(void)name;
	if (seq > *max)
		*max = seq;
	return 0;
}

struct store_usage {
	const char *dir;
	uint64_t packs;
	uint64_t bytes;
};

static int store_usage_cb(void *payload, uint64_t seq, const char *name)
{
	struct store_usage *u = payload;
	char path[4200];
	struct stat st;

	(void)seq;
	snprintf(path, sizeof(path), "%s/%s", u->dir, name);
	if (stat(path, &st) == 0) {
		u->packs++;
		u->bytes += (uint64_t)st.st_size;
	}
	return 0;
}

int store_pack_usage(struct store *s, uint64_t *packs, uint64_t *bytes)
{
	struct store_usage u = { s->packs_dir, 0, 0 };
	int rc = store_list_packs(s->packs_dir, store_usage_cb, &u);

	*packs = u.packs;
	*bytes = u.bytes;
	return rc;
}

/* With ingest_lock held (or at close): seal the open pack. Everything in
 * it is durable and indexed already, so a failed seal loses nothing: the
 * pack stays readable by scanning. */
void store_seal_writer(struct store *s)
{
	char path[4200];
	int rc;

	if (!s->writer)
		return;
	dd_pack_path(path, sizeof(path), s->packs_dir,
		     dd_pack_writer_seq(s->writer));
	dd_error_clear();
	rc = dd_pack_writer_seal(s->writer);
	s->writer = NULL;
	if (rc < 0)
		log_error("cannot seal pack '%s': %s", path, log_reason(rc));
}

/* ---- reading packs ---- */

/* An fd for pack `seq`, cached; *slot is what store_fd_release needs. */
static int store_fd_acquire(struct store *s, uint64_t seq, int *slot)
{
	char path[4200];
	int i, fd, victim = -1;

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].fd >= 0 && s->fds[i].seq == seq &&
		    !s->fds[i].dead) {
			s->fds[i].refs++;
			s->fds[i].used = ++s->fd_clock;
			*slot = i;
			fd = s->fds[i].fd;
			pthread_mutex_unlock(&s->fd_lock);
			return fd;
		}
	}
	pthread_mutex_unlock(&s->fd_lock);

	dd_pack_path(path, sizeof(path), s->packs_dir, seq);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dd_error_set(-EIO, "cannot open pack '%s': %s", path,
				    strerror(errno));

	pthread_mutex_lock(&s->fd_lock);
	for (i = 0; i < STORE_FD_SLOTS; i++) {
		if (s->fds[i].fd >= 0 && s->fds[i].seq == seq &&
		    !s->fds[i].dead) {
			/* Another thread opened it meanwhile. */
			close(fd);
			s->fds[i].refs++;
			s->fds[i].used = ++s->fd_clock;
			*slot = i;
			fd = s->fds[i].fd;
			pthread_mutex_unlock(&s->fd_lock);
			return fd;
		}
		if (s->fds[i].refs == 0 &&
		    (victim < 0 || s->fds[i].fd < 0 ||
		     (s->fds[victim].fd >= 0 &&
		      s->fds[i].used < s->fds[victim].used)))
			victim = i;
	}
	if (victim < 0) {
		/* Every slot busy: use this fd once, uncached. */
		*slot = -1;
	} else {
		if (s->fds[victim].fd >= 0)
			close(s->fds[victim].fd);
		s->fds[victim].fd = fd;
		s->fds[victim].seq = seq;
		s->fds[victim].refs = 1;
		s->fds[victim].dead = false;
		s->fds[victim].used = ++s->fd_clock;
		*slot = victim;
	}
	pthread_mutex_unlock(&s->fd_lock);
	return fd;
}

static void store_fd_release(struct store *s, int fd, int slot)
{
	if (slot < 0) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&s->fd_lock);
	s->fds[slot].refs--;
	if (s->fds[slot].refs == 0 && s->fds[slot].dead) {
		close(s->fds[slot].fd);
		s->fds[slot].fd = -1;
		s->fds[slot].dead = false;
	}
	pthread_mutex_unlock(&s->fd_lock);
}

int store_read_stored(struct store *s, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, struct dd_buf *out)
{
	char hex[DD_ID_HEX_LEN + 1], path[4200];
	struct dd_chunk_loc moved;
	int fd, slot = -1, rc;

	fd = store_fd_acquire(s, loc->pack_seq, &slot);
	/* A collection may have moved the chunk to a new pack and deleted
	 * the old one since the caller looked it up: follow it once. */
	if (fd < 0 && store_lookup_raw(s, id, &moved) == 0 &&
	    (moved.pack_seq != loc->pack_seq || moved.offset != loc->offset) &&
	    moved.stored_len == loc->stored_len) {
		loc = &moved;
		dd_error_clear();
		fd = store_fd_acquire(s, loc->pack_seq, &slot);
	}
	if (fd < 0) {
		dd_id_to_hex(hex, id);
		return log_wrap(-EIO, "chunk %s", hex);
	}
	dd_error_clear();
	rc = dd_pack_read_record(fd, id, loc, out);
	store_fd_release(s, fd, slot);
	if (rc < 0 && rc != -ENOMEM) {
		/* The reason names the chunk; add the pack. */
		dd_pack_path(path, sizeof(path), s->packs_dir, loc->pack_seq);
		return log_wrap(rc == -EBADMSG ? rc : -EIO,
				"cannot read pack '%s'", path);
	}
	return rc;
}

int store_decode(struct dd_buf *plain, const struct dd_id *id,
		 uint32_t flags, uint32_t plain_len, const void *stored,
		 size_t stored_len, void *dctx)
{
	char hex[DD_ID_HEX_LEN + 1];
	int rc;

	dd_error_clear();
	rc = dd_decompress(plain, flags, stored, stored_len, plain_len, dctx);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		dd_id_to_hex(hex, id);
		return log_wrap(-EBADMSG, "chunk %s", hex);
	}
	/* Its message names the chunk and what its bytes hash to. */
	return dd_id_verify(id, plain->data, plain->len);
}

int store_read_plain(struct store *s, const struct dd_id *id,
		     struct dd_buf *plain, struct dd_buf *scratch, void *dctx)
{
	struct dd_chunk_loc loc;
	int rc;

	rc = store_lookup(s, id, &loc);
	if (rc < 0)
		return rc;
	rc = store_read_stored(s, id, &loc, scratch);
	if (rc == 0)
		rc = store_decode(plain, id, loc.flags, loc.plain_len,
				  scratch->data, scratch->len, dctx);
	if (rc == -EBADMSG)
		store_forget(s, id, &loc);
	return rc;
}

int store_forget(struct store *s, const struct dd_id *id,
		 const struct dd_chunk_loc *loc)
{
	char why[1024], hex[DD_ID_HEX_LEN + 1];
	uint8_t key[1 + DD_ID_LEN], meta[STORE_META_LEN];
	leveldb_writebatch_t *batch;
	struct dd_chunk_loc have;
	uint64_t chunks, bytes;
	char *err = NULL;
	int rc;

	if (s->flags & STORE_OPEN_READONLY)
		return 0;
	/* Keep the caller's reason for the damage. */
	snprintf(why, sizeof(why), "%s", dd_error_last());
	dd_id_to_hex(hex, id);
	pthread_mutex_lock(&s->ingest_lock);
	rc = store_lookup(s, id, &have);
	if (rc == -ENOENT || (rc == 0 &&
	    (have.pack_seq != loc->pack_seq || have.offset != loc->offset))) {
		rc = 0;
		goto cleanup;
	}
	if (rc < 0)
		goto cleanup;
	if (s->db_failed && (rc = store_db_heal(s)) < 0)
		goto cleanup;
	batch = leveldb_writebatch_create();
	store_id_key(key, id);
	leveldb_writebatch_delete(batch, (const char *)key, sizeof(key));
	store_counters(s, &chunks, &bytes);
	store_meta_encode(meta, chunks ? chunks - 1 : 0,
			  bytes >= have.plain_len ? bytes - have.plain_len : 0);
	leveldb_writebatch_put(batch, STORE_META_KEY, strlen(STORE_META_KEY),
			       (const char *)meta, sizeof(meta));
	pthread_rwlock_rdlock(&s->db_lock);
	leveldb_write(s->db, s->wopts_sync, batch, &err);
	pthread_rwlock_unlock(&s->db_lock);
	leveldb_writebatch_destroy(batch);
	if (err) {
		rc = store_db_error(err, "write the index");
		store_db_write_failed(s, rc);
		log_error("chunk %s is damaged but cannot be dropped from the "
			  "index: %s", hex, log_reason(rc));
		goto cleanup;
	}
	pthread_mutex_lock(&s->counters_lock);
	s->chunks = chunks ? chunks - 1 : 0;
	s->bytes_unique = bytes >= have.plain_len ? bytes - have.plain_len : 0;
	pthread_mutex_unlock(&s->counters_lock);
	log_warning("chunk %s is damaged in pack %016llx at offset %llu (%s): "
		    "dropped it from the index; the next backup that has its "
		    "bytes stores it again", hex,
		    (unsigned long long)loc->pack_seq,
		    (unsigned long long)loc->offset, why);
cleanup:
	pthread_mutex_unlock(&s->ingest_lock);
	dd_error_set(-EBADMSG, "%s", why);
	return rc;
}

void store_counters(struct store *s, uint64_t *chunks, uint64_t *bytes_unique)
{
	pthread_mutex_lock(&s->counters_lock);
	*chunks = s->chunks;
	*bytes_unique = s->bytes_unique;
	pthread_mutex_unlock(&s->counters_lock);
}
