/*
 * check.c - see check.h.
 *
 * Three passes. The packs are scanned first into a table of the records
 * they hold (every record hashed with --read-data). The index entries are
 * then matched against that table; an entry whose record the scan did not
 * reach (a pack damaged before it) is read directly. Last, every manifest
 * is read and its catalog walked, and every chunk it names is looked up
 * among the index entries. Memory: about 64 bytes per pack record and per
 * index entry.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "catalog.h"
#include "check.h"
#include "compress.h"
#include "ldbcheck.h"
#include "domains.h"
#include "log.h"
#include "pack.h"
#include "proto.h"
#include "regrant.h"
#include "repo.h"
#include "packio.h"
#include "storage.h"
#include "store.h"
#include "tokens.h"

/* Lines naming the files that use one damaged chunk, at most. */
#define CHECK_USES_MAX 100u
#define CHECK_MANIFEST_MAX (32u * 1024 * 1024)

enum { REC_UNVERIFIED, REC_GOOD, REC_BAD };

/* `check --read-data` hashes the plain bytes of up to this many records
 * of a pack at once (dd_sha256_batch), and holds at most CK_STAGE_BYTES
 * of them beyond the first. */
#define CK_STAGE_RECS 8
#define CK_STAGE_BYTES (4u * 1024 * 1024)

/* A record found in a pack. */
struct crec {
	struct dd_id id;
	struct dd_chunk_loc loc;
	uint8_t state;
	bool indexed;          /* an index entry points at it */
};

/* An index entry. */
struct cent {
	struct dd_id id;
	struct dd_chunk_loc loc;
	bool damaged;
	uint32_t uses;         /* usage lines printed */
};

/* A pack as found on disk, for the truncation findings that need the
 * index (pass 2). */
struct cpack {
	uint64_t seq;
	uint64_t size;
	uint64_t torn;         /* bytes after its last whole record, unsealed */
	uint64_t cut;          /* index entries of records past its end */
};

struct checker {
	const char *repo;
	const struct check_opts *o;
	struct check_result *res;
	struct backend *be;    /* where the packs are */
	char snaps_dir[4096];
	struct store *st;      /* NULL when the index cannot be opened */
	bool index_bad;        /* the index cannot be opened or read */
	struct cpack *packs;
	size_t npacks;
	struct crec *recs;
	size_t nrecs, arecs;
	struct cent *ents;
	size_t nents, aents;
	/* chunks named by dedup-domain keys, one per key (domains.h) */
	struct dd_id *mems;
	size_t nmems, amems;
	struct dd_buf plain, stored;
	ZSTD_DCtx *dctx;
	/* records of the scan whose plain bytes wait to be hashed as one
	 * batch (ck_stage_flush): c->recs indexes and their bytes */
	struct dd_buf stage;
	size_t nstage, stage_first;  /* records; the first's length */
	size_t stage_rec[CK_STAGE_RECS];
	size_t stage_off[CK_STAGE_RECS];
	/* the pack being scanned */
	uint64_t end;
	uint64_t salvaged;
	uint64_t sealed;      /* records only the client can verify */
	/* one open pack for direct reads */
	struct backend_reader *rd;
	uint64_t rd_seq;
};

static void ck_problem(struct checker *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void ck_note(struct checker *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ck_problem(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	c->res->problems++;
	fputs("problem: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

static void ck_note(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	if (c->o->quiet)
		return;
	fputs("note: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

static int ck_id_cmp(const struct dd_id *a, const struct dd_id *b)
{
	return memcmp(a->b, b->b, DD_ID_LEN);
}

static int ck_rec_cmp(const void *pa, const void *pb)
{
	const struct crec *a = pa, *b = pb;
	int r = ck_id_cmp(&a->id, &b->id);

	if (r)
		return r;
	if (a->loc.pack_seq != b->loc.pack_seq)
		return a->loc.pack_seq < b->loc.pack_seq ? -1 : 1;
	if (a->loc.offset != b->loc.offset)
		return a->loc.offset < b->loc.offset ? -1 : 1;
	return 0;
}

static int ck_ent_cmp(const void *pa, const void *pb)
{
	const struct cent *a = pa, *b = pb;

	return ck_id_cmp(&a->id, &b->id);
}

/* The first record with this id (records sorted), or NULL. */
static struct crec *ck_find_recs(struct checker *c, const struct dd_id *id)
{
	size_t lo = 0, hi = c->nrecs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ck_id_cmp(&c->recs[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->nrecs && dd_id_eq(&c->recs[lo].id, id))
		return &c->recs[lo];
	return NULL;
}

static struct cent *ck_find_ent(struct checker *c, const struct dd_id *id)
{
	struct cent key;

	if (!c->nents)
		return NULL;
	key.id = *id;
	return bsearch(&key, c->ents, c->nents, sizeof(*c->ents), ck_ent_cmp);
}

/* A record of this id that is (or may be, unverified) intact, other than
 * the one at `not_at`; NULL if none. */
static const struct crec *ck_intact_copy(struct checker *c,
					 const struct dd_id *id,
					 const struct dd_chunk_loc *not_at)
{
	const struct crec *r = ck_find_recs(c, id);

	for (; r && r < c->recs + c->nrecs && dd_id_eq(&r->id, id); r++) {
		if (r->state == REC_BAD)
			continue;
		if (not_at && r->loc.pack_seq == not_at->pack_seq &&
		    r->loc.offset == not_at->offset)
			continue;
		return r;
	}
	return NULL;
}

/* ---- reading one chunk directly ---- */

/* Reads the record at *loc and, when `decode`, decodes and re-hashes it
 * into c->plain. -EBADMSG (with a reason) when damaged, -EIO when the pack
 * cannot be opened. */
static int ck_read(struct checker *c, const struct dd_id *id,
		   const struct dd_chunk_loc *loc, bool decode)
{
	char name[PACKIO_NAME_MAX];
	int rc;

	if (!c->rd || c->rd_seq != loc->pack_seq) {
		backend_reader_close(c->rd);
		c->rd = NULL;
		packio_name(name, loc->pack_seq);
		rc = backend_reader_open(c->be, name, &c->rd);
		if (rc < 0)
			return log_wrap(-EIO, "cannot open pack");
		c->rd_seq = loc->pack_seq;
	}
	dd_error_clear();
	rc = packio_read_record(c->rd, id, loc, &c->stored);
	if (rc < 0 || !decode)
		return rc;
	return store_decode(&c->plain, id, loc->flags, loc->plain_len,
			    c->stored.data, c->stored.len, c->dctx);
}

/* ---- pass 1: packs ---- */

static int ck_add_rec(struct checker *c, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, uint8_t state)
{
	struct crec *r;

	if (c->nrecs == c->arecs) {
		size_t n = c->arecs ? c->arecs * 2 : 1024;

		r = realloc(c->recs, n * sizeof(*r));
		if (!r)
			return dd_error_set(-ENOMEM, "out of memory");
		c->recs = r;
		c->arecs = n;
	}
	r = &c->recs[c->nrecs++];
	r->id = *id;
	r->loc = *loc;
	r->state = state;
	r->indexed = false;
	return 0;
}

/* Hashes the staged records as one batch and records each verdict. */
static void ck_stage_flush(struct checker *c)
{
	struct dd_sha256_job jobs[CK_STAGE_RECS] = { { NULL, 0, NULL } };
	struct dd_id got[CK_STAGE_RECS];
	size_t n = c->nstage;

	for (size_t k = 0; k < n; k++) {
		const struct crec *r = &c->recs[c->stage_rec[k]];

		jobs[k] = (struct dd_sha256_job){
			c->stage.data + c->stage_off[k], r->loc.plain_len,
			&got[k] };
	}
	dd_sha256_batch(jobs, n);
	for (size_t k = 0; k < n; k++) {
		struct crec *r = &c->recs[c->stage_rec[k]];

		r->state = dd_id_eq(&got[k], &r->id) ? REC_GOOD : REC_BAD;
	}
	c->nstage = 0;
	c->stage.len = 0;
}

/* A record whose plain bytes ck_scan_cb stages: raw or compressed, of a
 * sane length. Sealed ones (only their layout can be checked) and
 * malformed ones go through store_decode at once. */
static bool ck_stageable(const struct dd_chunk_loc *loc)
{
	if (loc->plain_len > DD_CHUNK_SIZE_LIMIT)
		return false;
	if (loc->flags == DD_COMP_NONE)
		return loc->stored_len == loc->plain_len;
	return loc->flags == DD_COMP_ZSTD;
}

/*
 * Stages a record's plain bytes (a raw one copied, a compressed one
 * decoded) for ck_stage_flush; the record is added unverified and gets
 * its verdict there. A record that does not decode is bad at once.
 */
static int ck_stage_add(struct checker *c, const struct dd_id *id,
			const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	size_t len = loc->plain_len;
	uint8_t *dst;
	int rc;

	/* at most CK_STAGE_BYTES beyond the first staged record's */
	if (c->nstage == CK_STAGE_RECS ||
	    (c->nstage > 0 &&
	     c->stage.len - c->stage_first + len > CK_STAGE_BYTES))
		ck_stage_flush(c);
	if (dd_buf_reserve(&c->stage, len ? len : 1) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	dst = c->stage.data + c->stage.len;
	if (loc->flags == DD_COMP_NONE)
		memcpy(dst, stored, len);
	else if (dd_decompress_to(dst, loc->flags, stored, loc->stored_len,
				  loc->plain_len, c->dctx) < 0)
		return ck_add_rec(c, id, loc, REC_BAD);
	if ((rc = ck_add_rec(c, id, loc, REC_UNVERIFIED)) < 0)
		return rc;
	if (c->nstage == 0)
		c->stage_first = len;
	c->stage_rec[c->nstage] = c->nrecs - 1;
	c->stage_off[c->nstage++] = c->stage.len;
	c->stage.len += len;
	return 0;
}

static int ck_scan_cb(void *payload, const struct dd_id *id,
		      const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	struct checker *c = payload;
	uint8_t state = REC_UNVERIFIED;

	c->end = loc->offset + DD_PACK_RECORD_HEADER_LEN + loc->stored_len;
	if (loc->flags & DD_COMP_SEALED)
		c->sealed++;
	if (c->o->read_data && ck_stageable(loc))
		return ck_stage_add(c, id, loc, stored);
	if (c->o->read_data) {
		int rc = store_decode(&c->plain, id, loc->flags,
				      loc->plain_len, stored, loc->stored_len,
				      c->dctx);

		if (rc == -ENOMEM)
			return rc;
		state = rc < 0 ? REC_BAD : REC_GOOD;
	}
	return ck_add_rec(c, id, loc, state);
}

static int ck_salvage_cb(void *payload, const struct dd_id *id,
			 const struct dd_chunk_loc *loc, const uint8_t *stored)
{
	struct checker *c = payload;
	int rc;

	rc = store_decode(&c->plain, id, loc->flags, loc->plain_len, stored,
			  loc->stored_len, c->dctx);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return 0;
	c->salvaged++;
	rc = ck_add_rec(c, id, loc, REC_GOOD);
	return rc < 0 ? rc : DD_PACK_SALVAGE_TAKEN;
}

/*
 * Whether an unsealed pack's bytes after its last whole record (`end`)
 * are a trailer that is damaged, not an append cut short: they start with
 * "DDTR" and are the whole trailer its count makes, or the file ends in
 * "DDPE", or the tail's offset field points at the end of the last record.
 * A sealed pack with a damaged trailer reads as unsealed. A seal cut short
 * (the server killed while it appended the trailer) is a torn append: a
 * "DDTR" head whose count is the pack's `nrecs` records, followed by less
 * than that trailer's length and no "DDPE" at the end.
 */
static bool ck_damaged_trailer(struct backend *be, uint64_t seq,
			       uint64_t size, uint64_t end, uint64_t nrecs)
{
	char name[PACKIO_NAME_MAX];
	uint8_t head[8], tail[12];
	bool r = false, ends = false;

	packio_name(name, seq);
	if (size - end >= 12 &&
	    backend_read(be, name, size - 12, tail, 12) == 0)
		ends = memcmp(tail + 8, "DDPE", 4) == 0 || dd_le64(tail) == end;
	if (size - end >= 4 && backend_read(be, name, end, head, 4) == 0 &&
	    memcmp(head, "DDTR", 4) == 0) {
		r = true;
		if (!ends && size - end >= 8 &&
		    backend_read(be, name, end, head, 8) == 0 &&
		    dd_le32(head + 4) == nrecs &&
		    size - end < DD_PACK_TRAILER_LEN(nrecs))
			r = false;      /* a seal cut short */
		else if (!ends && size - end < 8)
			r = false;      /* its head cut short */
	}
	if (!r && ends)
		r = true;
	dd_error_clear();
	return r;
}

static int ck_packs(struct checker *c)
{
	uint64_t *seqs = NULL, bytes = 0, unsealed = 0;
	char path[600];
	size_t n = 0, i;
	int rc;

	rc = packio_seqs(c->be, &seqs, &n);
	if (rc < 0)
		return rc;
	c->packs = calloc(n ? n : 1, sizeof(*c->packs));
	if (!c->packs) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	c->npacks = n;
	for (i = 0; i < n; i++) {
		uint64_t size;
		size_t recs0;
		bool sealed = false;

		packio_display(path, sizeof(path), c->be, seqs[i]);
		c->packs[i].seq = seqs[i];
		dd_error_clear();
		if (packio_size(c->be, seqs[i], &size) < 0) {
			ck_problem(c, "cannot stat pack '%s': %s", path,
				   dd_error_last());
			continue;
		}
		c->packs[i].size = size;
		bytes += size;
		if (size < DD_PACK_HEADER_LEN) {
			/* Created, then the server died before its header
			 * was written: nothing can be indexed in it (an entry
			 * that says otherwise is reported as damaged). */
			ck_note(c, "pack '%s' has only %llu byte(s), less than "
				"its header (created just before a crash); "
				"harmless", path, (unsigned long long)size);
			continue;
		}
		c->end = DD_PACK_HEADER_LEN;
		c->salvaged = 0;
		recs0 = c->nrecs;
		dd_error_clear();
		rc = packio_scan(c->be, seqs[i], ck_scan_cb, c, &sealed);
		ck_stage_flush(c);      /* every record scanned has its verdict */
		if (rc == -ENOMEM)
			goto cleanup;
		if (rc < 0) {
			ck_problem(c, "pack '%s' is damaged: %s", path,
				   log_reason(rc));
		} else if (!sealed) {
			unsealed++;
			if (size > c->end &&
			    ck_damaged_trailer(c->be, seqs[i], size, c->end,
					       c->nrecs - recs0)) {
				ck_problem(c, "pack '%s' is damaged: its "
					   "trailer is unreadable", path);
			} else if (size > c->end) {
				/* An interrupted write, or a cut: told
				 * apart by the index (ck_pack_cuts). */
				c->packs[i].torn = size - c->end;
			}
		}
		/* Find what is intact past the point the scan stopped. */
		if (rc < 0 || (!sealed && size > c->end)) {
			dd_error_clear();
			rc = packio_salvage(c->be, seqs[i], c->end,
					    ck_salvage_cb, c);
			if (rc == -ENOMEM)
				goto cleanup;
			if (rc < 0)
				ck_problem(c, "pack '%s': %s", path,
					   log_reason(rc));
			if (c->salvaged)
				ck_note(c, "pack '%s': %llu intact record(s) "
					"after the damage", path,
					(unsigned long long)c->salvaged);
		}
	}
	c->res->packs = n;
	c->res->records = c->nrecs;
	if (!c->o->quiet)
		printf("packs: %zu (%llu not sealed), %zu records, %llu "
		       "bytes\n", n, (unsigned long long)unsealed, c->nrecs,
		       (unsigned long long)bytes);
	if (!c->o->quiet && c->o->read_data && c->sealed)
		printf("sealed: %llu record(s) encrypted by their clients: "
		       "their layout was checked, their contents cannot be "
		       "(the agent verifies them on restore and verify)\n",
		       (unsigned long long)c->sealed);
	rc = 0;
cleanup:
	free(seqs);
	return rc;
}

/* ---- pass 2: the index ---- */

/* A dedup-domain key: remembered, to be matched with the entries. */
static int ck_domain_key(struct checker *c, const uint8_t *key, size_t klen)
{
	struct domains_tag tag;
	struct dd_id id;

	if (domains_key_parse(key, klen, &id, &tag) < 0) {
		ck_problem(c, "the index holds a malformed dedup-domain key "
			   "of %zu bytes", klen);
		return 0;
	}
	if (c->nmems == c->amems) {
		size_t n = c->amems ? c->amems * 2 : 1024;
		struct dd_id *v = realloc(c->mems, n * sizeof(*v));

		if (!v)
			return dd_error_set(-ENOMEM, "out of memory");
		c->mems = v;
		c->amems = n;
	}
	c->mems[c->nmems++] = id;
	return 0;
}

/* Memberships of chunks no longer indexed: harmless (they never make a
 * chunk present, domains.h), dropped by the next gc; on a shared pool
 * also those of entries dropped from the cache, which stand again when
 * the entry comes back unmoved (domains_cache_learn). */
static void ck_domain_orphans(struct checker *c)
{
	uint64_t orphans = 0;
	size_t i;

	for (i = 0; i < c->nmems; i++)
		if (!ck_find_ent(c, &c->mems[i]))
			orphans++;
	if (c->nmems && !c->o->quiet)
		printf("index: %zu dedup-domain key(s)\n", c->nmems);
	if (orphans)
		ck_note(c, "%llu dedup-domain membership key(s) name chunks "
			"that are not stored (orphans; harmless, the next gc "
			"drops them)%s", (unsigned long long)orphans,
			store_shared_on(c->st) ? " or that this front-end "
			"dropped from its cache of the shared index (kept "
			"for when they come back)" : "");
}

static int ck_index_cb(void *payload, const uint8_t *key, size_t klen,
		       const uint8_t *val, size_t vlen)
{
	struct checker *c = payload;
	char hex[DD_ID_HEX_LEN + 1];
	struct dd_chunk_loc loc;
	struct cent *e;

	if (klen == 6 && memcmp(key, "mstats", 6) == 0)
		return 0;
	if (klen == strlen(STORE_CACHE_EPOCH_KEY) &&
	    memcmp(key, STORE_CACHE_EPOCH_KEY, klen) == 0)
		return 0;
	if (klen == strlen(STORE_REBUILD_KEY) &&
	    memcmp(key, STORE_REBUILD_KEY, klen) == 0) {
		ck_problem(c, "the index was being rebuilt when the server "
			   "stopped, and holds only part of the packs' "
			   "chunks: the next start of the server builds it "
			   "again (or run `dedup-server repair "
			   "--rebuild-index`)");
		return 0;
	}
	if (klen == strlen(DOMAINS_REGRANT_KEY) &&
	    memcmp(key, DOMAINS_REGRANT_KEY, klen) == 0) {
		ck_note(c, "the index was rebuilt and the dedup-domain "
			"memberships are not yet given back from the "
			"snapshots: the next start of the server does it");
		return 0;
	}
	if (klen == strlen(DOMAINS_FILLS_KEY) &&
	    memcmp(key, DOMAINS_FILLS_KEY, klen) == 0)
		return 0;
	if (klen && (key[0] == 'd' || key[0] == 'r' || key[0] == 'k'))
		return ck_domain_key(c, key, klen);
	/* an adopted snapshot whose memberships the tick has yet to give */
	if (klen == 1 + DD_ID_LEN && key[0] == REGRANT_ADOPTED_PREFIX)
		return 0;
	if (klen != 1 + DD_ID_LEN || key[0] != 'c') {
		ck_problem(c, "the index holds an unknown key of %zu bytes",
			   klen);
		return 0;
	}
	dd_hex_encode(hex, key + 1, DD_ID_LEN);
	dd_error_clear();
	if (dd_chunk_loc_decode(&loc, val, vlen) < 0) {
		ck_problem(c, "index entry of chunk %s is corrupt: %s", hex,
			   dd_error_last());
		return 0;
	}
	if (c->nents == c->aents) {
		size_t n = c->aents ? c->aents * 2 : 1024;

		e = realloc(c->ents, n * sizeof(*e));
		if (!e)
			return dd_error_set(-ENOMEM, "out of memory");
		c->ents = e;
		c->aents = n;
	}
	e = &c->ents[c->nents++];
	memcpy(e->id.b, key + 1, DD_ID_LEN);
	e->loc = loc;
	e->damaged = false;
	e->uses = 0;
	return 0;
}

static void ck_damaged(struct checker *c, struct cent *e, const char *why)
{
	char hex[DD_ID_HEX_LEN + 1], path[600];
	const struct crec *copy;

	e->damaged = true;
	c->res->damaged_chunks++;
	c->res->problems++;
	dd_id_to_hex(hex, &e->id);
	packio_display(path, sizeof(path), c->be, e->loc.pack_seq);
	printf("damaged chunk %s: pack '%s' offset %llu: %s\n", hex, path,
	       (unsigned long long)e->loc.offset, why);
	copy = ck_intact_copy(c, &e->id, &e->loc);
	if (copy)
		ck_note(c, "chunk %s has another copy in pack %016llx at "
			"offset %llu: `dedup-server repair --rebuild-index` "
			"indexes it", hex,
			(unsigned long long)copy->loc.pack_seq,
			(unsigned long long)copy->loc.offset);
}

/* Matches one index entry against the packs. */
static int ck_entry(struct checker *c, struct cent *e)
{
	struct crec *q = ck_find_recs(c, &e->id), *r = NULL;
	char why[1024];
	int rc;

	for (; q && q < c->recs + c->nrecs && dd_id_eq(&q->id, &e->id); q++) {
		if (q->loc.pack_seq == e->loc.pack_seq &&
		    q->loc.offset == e->loc.offset) {
			r = q;
			break;
		}
	}
	if (r) {
		r->indexed = true;
		if (r->loc.flags != e->loc.flags ||
		    r->loc.plain_len != e->loc.plain_len ||
		    r->loc.stored_len != e->loc.stored_len) {
			ck_damaged(c, e, "the index entry does not match the "
				   "pack record");
			return 0;
		}
		if (!c->o->read_data || r->state != REC_BAD)
			return 0;
	}
	/* Not reached by the scan, or found damaged: read it for the
	 * reason. */
	rc = ck_read(c, &e->id, &e->loc, c->o->read_data || r);
	if (rc == -ENOMEM)
		return rc;
	if (rc == 0)
		return 0;
	snprintf(why, sizeof(why), "%s", log_reason(rc));
	ck_damaged(c, e, why);
	return 0;
}

/* The index cannot be opened or read: one line, and the passes that
 * need the index are skipped (each chunk would be reported otherwise). */
static void ck_index_unreadable(struct checker *c, const char *why)
{
	ck_problem(c, "the index cannot be read: %s (run `dedup-server repair "
		   "--rebuild-index`, then check again)", why);
	c->index_bad = true;
}

static struct cpack *ck_find_pack(struct checker *c, uint64_t seq)
{
	size_t lo = 0, hi = c->npacks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->packs[mid].seq == seq)
			return &c->packs[mid];
		if (c->packs[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * A pack that ends before records the index points into lost bytes after
 * they were acknowledged: it was cut (a truncated copy, a damaged disk),
 * which is a problem even where its trailer is gone and it reads as
 * unsealed. An interrupted write never cuts an indexed record (the index
 * is written after the pack is synced), so a torn tail with no index
 * entry past the end stays a note.
 */
static void ck_pack_cuts(struct checker *c)
{
	char path[600];
	struct cpack *p;
	size_t i;

	for (i = 0; !c->index_bad && i < c->nents; i++) {
		const struct dd_chunk_loc *l = &c->ents[i].loc;

		p = ck_find_pack(c, l->pack_seq);
		if (p && p->size && l->offset + DD_PACK_RECORD_HEADER_LEN +
		    l->stored_len > p->size)
			p->cut++;
	}
	for (i = 0; i < c->npacks; i++) {
		p = &c->packs[i];
		packio_display(path, sizeof(path), c->be, p->seq);
		if (p->cut)
			ck_problem(c, "pack '%s' is truncated: it ends at byte "
				   "%llu, before %llu indexed record(s) (it "
				   "lost data: an interrupted write never "
				   "does)", path,
				   (unsigned long long)p->size,
				   (unsigned long long)p->cut);
		else if (p->torn)
			ck_note(c, "pack '%s' is not sealed and ends in %llu "
				"byte(s) that are not a whole record (an "
				"interrupted write)", path,
				(unsigned long long)p->torn);
	}
}

static int ck_index(struct checker *c)
{
	uint64_t chunks, bytes, sum = 0, orphans = 0, bad_orphans = 0;
	bool present;
	size_t i;
	int rc;

	if (!c->st)
		return 0;
	dd_error_clear();
	rc = store_index_foreach(c->st, ck_index_cb, c);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		ck_index_unreadable(c, log_reason(rc));
		return 0;
	}
	if (c->nents)
		qsort(c->ents, c->nents, sizeof(*c->ents), ck_ent_cmp);
	c->res->index_entries = c->nents;
	for (i = 0; i < c->nents; i++) {
		rc = ck_entry(c, &c->ents[i]);
		if (rc < 0)
			return rc;
		sum += c->ents[i].loc.plain_len;
	}
	rc = store_index_meta(c->st, &present, &chunks, &bytes);
	if (rc < 0)
		ck_problem(c, "%s", log_reason(rc));
	else if (!present)
		ck_problem(c, "the index has no valid counters (run "
			   "`dedup-server repair --rebuild-index`)");
	else if (chunks != c->nents || bytes != sum)
		ck_problem(c, "the index counters say %llu chunk(s) of %llu "
			   "bytes, the index holds %zu of %llu bytes (run "
			   "`dedup-server repair --rebuild-index`)",
			   (unsigned long long)chunks,
			   (unsigned long long)bytes, c->nents,
			   (unsigned long long)sum);
	for (i = 0; i < c->nrecs; i++) {
		if (c->recs[i].indexed)
			continue;
		orphans++;
		if (c->recs[i].state == REC_BAD)
			bad_orphans++;
	}
	if (!c->o->quiet)
		printf("index: %zu chunk(s), %llu plain bytes\n", c->nents,
		       (unsigned long long)sum);
	ck_domain_orphans(c);
	if (orphans)
		ck_note(c, "%llu pack record(s) are not indexed (left by "
			"interrupted uploads, or second copies; harmless)",
			(unsigned long long)orphans);
	if (bad_orphans)
		ck_note(c, "%llu of them are damaged (harmless: nothing "
			"uses them)", (unsigned long long)bad_orphans);
	return 0;
}

/* ---- pass 3: snapshots ---- */

struct ck_snap {
	char id[DD_ID_HEX_LEN + 1];
	char client[DD_CLIENT_NAME_MAX + 1];
	struct dd_id *catalog;
	size_t ncatalog;
	json_t *m;
};

/* Where a chunk can be read: 0 (indexed and not known damaged), 1 (not
 * indexed but an intact copy is in a pack), -EBADMSG (indexed, damaged),
 * -ENOENT (neither). *loc is filled for 0 and 1. */
static int ck_locate(struct checker *c, const struct dd_id *id,
		     struct dd_chunk_loc *loc, struct cent **ent)
{
	struct cent *e = ck_find_ent(c, id);
	const struct crec *r;

	*ent = e;
	if (e) {
		*loc = e->loc;
		return e->damaged ? -EBADMSG : 0;
	}
	r = ck_intact_copy(c, id, NULL);
	if (r) {
		*loc = r->loc;
		return 1;
	}
	return -ENOENT;
}

struct ck_source {
	struct checker *c;
	const struct ck_snap *s;
	size_t next;
	size_t pos;
	char why[1024];
	int err;
};

static ssize_t ck_source_read(void *payload, void *buf, size_t len)
{
	struct ck_source *src = payload;
	struct checker *c = src->c;
	struct dd_chunk_loc loc;
	struct cent *e;
	size_t n;
	int rc;

	while (src->pos == c->plain.len) {
		if (src->next == src->s->ncatalog)
			return 0;
		rc = ck_locate(c, &src->s->catalog[src->next], &loc, &e);
		if (rc >= 0)
			rc = ck_read(c, &src->s->catalog[src->next], &loc,
				     true);
		if (rc < 0) {
			snprintf(src->why, sizeof(src->why), "%s",
				 log_reason(rc));
			src->err = rc;
			return -EIO;
		}
		src->next++;
		src->pos = 0;
	}
	n = c->plain.len - src->pos;
	if (n > len)
		n = len;
	memcpy(buf, c->plain.data + src->pos, n);
	src->pos += n;
	return (ssize_t)n;
}

/* One file chunk of a snapshot. */
static void ck_file_chunk(struct checker *c, const struct ck_snap *s,
			  const struct dd_entry *en,
			  const struct dd_chunk_ref *ref, uint64_t *bad)
{
	char hex[DD_ID_HEX_LEN + 1], path[1024];
	struct dd_chunk_loc loc;
	struct cent *e;
	int rc = ck_locate(c, &ref->id, &loc, &e);

	if (rc == 0 && loc.plain_len == ref->plain_len)
		return;
	dd_id_to_hex(hex, &ref->id);
	log_sanitize(path, sizeof(path), en->path, en->path_len);
	(*bad)++;
	if (rc == -EBADMSG) {
		if (e->uses++ < CHECK_USES_MAX)
			printf("damaged chunk %s: used by snapshot %s (client "
			       "%s), file '%s'\n", hex, s->id, s->client, path);
		else if (e->uses == CHECK_USES_MAX + 1)
			printf("damaged chunk %s: used by more files (not "
			       "listed)\n", hex);
	} else if (rc == -ENOENT) {
		c->res->missing_refs++;
		c->res->problems++;
		printf("missing chunk %s: used by snapshot %s (client %s), "
		       "file '%s'\n", hex, s->id, s->client, path);
	} else if (rc == 1) {
		ck_problem(c, "chunk %s is in pack %016llx but not in the "
			   "index: used by snapshot %s, file '%s' (run "
			   "`dedup-server repair --rebuild-index`)", hex,
			   (unsigned long long)loc.pack_seq, s->id, path);
	} else {
		ck_problem(c, "snapshot %s, file '%s': the catalog gives chunk "
			   "%s %u bytes, the index %u", s->id, path, hex,
			   ref->plain_len, loc.plain_len);
	}
}

static int64_t ck_int(json_t *m, const char *key)
{
	json_t *v = json_object_get(m, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int ck_snapshot(struct checker *c, const struct ck_snap *s)
{
	struct dd_catalog_reader *r = NULL;
	struct ck_source src;
	struct dd_chunk_loc loc;
	struct dd_entry en;
	struct cent *e;
	char hex[DD_ID_HEX_LEN + 1];
	uint64_t files = 0, dirs = 0, links = 0, bytes = 0, nchunks = 0;
	uint64_t bad = 0, j;
	size_t i;
	bool readable = true;
	int rc;

	for (i = 0; i < s->ncatalog; i++) {
		rc = ck_locate(c, &s->catalog[i], &loc, &e);
		if (rc == 0)
			continue;
		dd_id_to_hex(hex, &s->catalog[i]);
		if (rc != 1)
			readable = false;
		if (rc == -EBADMSG)
			printf("damaged chunk %s: catalog of snapshot %s "
			       "(client %s): the snapshot cannot be "
			       "restored\n", hex, s->id, s->client);
		else if (rc == -ENOENT)
			ck_problem(c, "missing chunk %s: catalog of snapshot %s "
				   "(client %s): the snapshot cannot be "
				   "restored", hex, s->id, s->client);
		else
			ck_problem(c, "chunk %s is in pack %016llx but not in "
				   "the index: catalog of snapshot %s (run "
				   "`dedup-server repair --rebuild-index`)",
				   hex, (unsigned long long)loc.pack_seq,
				   s->id);
	}
	if (!readable)
		return 0;

	memset(&src, 0, sizeof(src));
	src.c = c;
	src.s = s;
	dd_buf_reset(&c->plain);
	rc = dd_catalog_reader_new(&r, ck_source_read, &src);
	if (rc < 0)
		return rc;
	for (;;) {
		dd_error_clear();
		rc = dd_catalog_next(r, &en);
		if (rc == 0)
			break;
		if (rc == -ENOMEM)
			goto cleanup;
		if (rc < 0) {
			if (src.err)
				ck_problem(c, "snapshot %s (client %s): cannot "
					   "read its catalog: %s", s->id,
					   s->client, src.why);
			else
				ck_problem(c, "snapshot %s (client %s): its "
					   "catalog is invalid: %s", s->id,
					   s->client, log_reason(rc));
			rc = 0;
			goto cleanup;
		}
		switch (en.type) {
		case DD_ENTRY_FILE:
			files++;
			bytes += en.size;
			nchunks += dd_entry_data_chunks(&en);
			break;
		case DD_ENTRY_DIR:
			dirs++;
			break;
		case DD_ENTRY_SYMLINK:
			links++;
			break;
		default:    /* hard links, fifos, devices: not counted */
			break;
		}
		for (j = 0; j < en.nchunks; j++)
			if (!dd_chunk_ref_is_hole(&en.chunks[j]))
				ck_file_chunk(c, s, &en, &en.chunks[j], &bad);
	}
	if ((int64_t)files != ck_int(s->m, "files") ||
	    (int64_t)dirs != ck_int(s->m, "dirs") ||
	    (int64_t)links != ck_int(s->m, "symlinks") ||
	    (int64_t)bytes != ck_int(s->m, "bytes_total") ||
	    (int64_t)nchunks != ck_int(s->m, "chunks_total"))
		ck_problem(c, "snapshot %s (client %s): its manifest's counts "
			   "do not match its catalog (%llu files, %llu dirs, "
			   "%llu symlinks, %llu bytes, %llu chunks)", s->id,
			   s->client, (unsigned long long)files,
			   (unsigned long long)dirs, (unsigned long long)links,
			   (unsigned long long)bytes,
			   (unsigned long long)nchunks);
	rc = 0;
cleanup:
	dd_catalog_reader_free(r);
	return rc;
}

/* Parses a manifest file into *s; -EBADMSG with a reason if invalid. */
static int ck_load_manifest(struct ck_snap *s, const char *path,
			    const char *id)
{
	uint8_t *data = NULL;
	size_t len, i;
	json_t *v, *item, *cat;
	json_error_t jerr;
	int rc;

	memset(s, 0, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "%s", id);
	rc = dd_read_file(path, CHECK_MANIFEST_MAX, &data, &len);
	if (rc < 0)
		return rc;
	s->m = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
			  &jerr);
	free(data);
	if (!s->m)
		return dd_error_set(-EBADMSG, "invalid JSON: %s (line %d)",
				    jerr.text, jerr.line);
	if (!json_is_object(s->m) || ck_int(s->m, "version") != 1)
		return dd_error_set(-EBADMSG, "not a version 1 manifest");
	v = json_object_get(s->m, "id");
	if (!json_is_string(v) || strcmp(json_string_value(v), id) != 0)
		return dd_error_set(-EBADMSG, "its id does not match its file "
				    "name");
	v = json_object_get(s->m, "client");
	if (!json_is_string(v) || !tokens_name_valid(json_string_value(v)))
		return dd_error_set(-EBADMSG, "no valid client name");
	snprintf(s->client, sizeof(s->client), "%s", json_string_value(v));
	cat = json_object_get(s->m, "catalog");
	if (!json_is_array(cat) || json_array_size(cat) < 1 ||
	    json_array_size(cat) > DD_MAX_CATALOG_CHUNKS)
		return dd_error_set(-EBADMSG, "no valid catalog list");
	s->ncatalog = json_array_size(cat);
	s->catalog = malloc(s->ncatalog * sizeof(*s->catalog));
	if (!s->catalog)
		return dd_error_set(-ENOMEM, "out of memory");
	json_array_foreach(cat, i, item) {
		if (!json_is_string(item) ||
		    json_string_length(item) != DD_ID_HEX_LEN ||
		    dd_id_from_hex(&s->catalog[i], json_string_value(item)) < 0)
			return dd_error_set(-EBADMSG, "catalog[%zu] is not a "
					    "chunk id", i);
	}
	return 0;
}

static bool ck_is_hex64(const char *s)
{
	return dd_hex_lower(s, DD_ID_HEX_LEN);
}

static int ck_snapshots(struct checker *c)
{
	DIR *d = opendir(c->snaps_dir);
	struct dirent *de;
	struct ck_snap s;
	char path[4400], id[DD_ID_HEX_LEN + 1];
	int rc = 0;

	if (!d)
		return dd_error_set(-errno, "cannot open '%s': %s",
				    c->snaps_dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n != DD_ID_HEX_LEN + 5 ||
		    strcmp(de->d_name + DD_ID_HEX_LEN, ".json") != 0)
			continue;      /* temporary files and the like */
		memcpy(id, de->d_name, DD_ID_HEX_LEN);
		id[DD_ID_HEX_LEN] = '\0';
		snprintf(path, sizeof(path), "%s/%s", c->snaps_dir,
			 de->d_name);
		if (!ck_is_hex64(id)) {
			ck_note(c, "'%s' is not named <id>.json: ignored",
				path);
			continue;
		}
		c->res->snapshots++;
		dd_error_clear();
		rc = ck_load_manifest(&s, path, id);
		if (rc == -ENOMEM)
			goto next;
		if (rc < 0) {
			ck_problem(c, "snapshot file '%s': %s", path,
				   log_reason(rc));
			rc = 0;
			goto next;
		}
		rc = ck_snapshot(c, &s);
next:
		free(s.catalog);
		json_decref(s.m);
		if (rc < 0)
			break;
	}
	closedir(d);
	if (rc == 0 && !c->o->quiet)
		printf("snapshots: %llu\n",
		       (unsigned long long)c->res->snapshots);
	return rc;
}

/* ---- the whole check ---- */

/* Opens the index read-only and checks its tables' checksums
 * (ldbcheck.h); a failure is one problem line (c->index_bad). Negative
 * only when the check cannot go on. */
static int ck_open_index(struct checker *c)
{
	char dir[4200];
	int rc;

	dd_error_clear();
	rc = repo_path(dir, sizeof(dir), c->repo, REPO_INDEX);
	if (rc == 0)
		rc = ldbcheck_dir(dir, NULL);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0 && rc != -ENOENT) {
		ck_index_unreadable(c, log_reason(rc));
		return 0;
	}
	dd_error_clear();
	{
		/* several front-ends: the local index is a cache of the
		 * pool's shared one, which is what the packs are held to */
		uint64_t pulled;

		rc = repo_store_pull_shared(c->repo, &pulled);
		if (rc < 0 && rc != -ENOENT)
			ck_problem(c, "cannot read the pool's shared index: %s",
				   log_reason(rc));
		dd_error_clear();
	}
	rc = repo_store_open(&c->st, c->repo, STORE_OPEN_READONLY);
	if (rc == -ENOMEM)
		return rc;
	if (rc == -ENOSPC) {
		/* LevelDB writes when it opens. */
		ck_problem(c, "cannot open the index: %s (the disk is full: "
			   "free some space and check again)", log_reason(rc));
		return rc;
	}
	if (rc < 0) {
		ck_index_unreadable(c, log_reason(rc));
		c->st = NULL;
	}
	return 0;
}

int check_repo(const char *repo, const struct check_opts *o,
	       struct check_result *res)
{
	struct checker c;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.repo = repo;
	c.o = o;
	c.res = res;
	dd_buf_init(&c.plain, 0);
	dd_buf_init(&c.stage, 0);
	dd_buf_init(&c.stored, 0);
	rc = repo_path(c.snaps_dir, sizeof(c.snaps_dir), repo, REPO_SNAPSHOTS);
	if (rc == 0)
		rc = repo_backend_open(&c.be, repo);
	if (rc < 0)
		goto cleanup;
	c.dctx = ZSTD_createDCtx();
	if (!c.dctx) {
		rc = dd_error_set(-ENOMEM, "out of memory");
		goto cleanup;
	}
	dd_error_clear();
	rc = ck_open_index(&c);
	if (rc < 0)
		goto cleanup;
	rc = ck_packs(&c);
	if (rc < 0)
		goto cleanup;
	if (c.nrecs)
		qsort(c.recs, c.nrecs, sizeof(*c.recs), ck_rec_cmp);
	rc = ck_index(&c);
	if (rc < 0)
		goto cleanup;
	ck_pack_cuts(&c);
	/* Without the index every chunk would read as unindexed: the
	 * report would be one line per chunk, and says nothing a rebuild
	 * does not fix. */
	if (!c.index_bad)
		rc = ck_snapshots(&c);
	if (rc < 0)
		goto cleanup;
	if (res->problems)
		printf("%llu problem(s) found\n",
		       (unsigned long long)res->problems);
	else
		printf("no problems found\n");
cleanup:
	backend_reader_close(c.rd);
	store_close(c.st);
	backend_free(c.be);
	ZSTD_freeDCtx(c.dctx);
	dd_buf_release(&c.plain);
	dd_buf_release(&c.stage);
	dd_buf_release(&c.stored);
	free(c.recs);
	free(c.ents);
	free(c.packs);
	free(c.mems);
	return rc;
}
