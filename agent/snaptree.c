/*
 * snaptree.c - a snapshot's catalog in memory, searched by path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "util.h"
#include "agent.h"
#include "catstream.h"
#include "snaptree.h"

/* Catalog chunks fetched per request while loading. */
#define SNAPTREE_CATALOG_IDS 16u

static void snaptree_node_release(struct snaptree_node *n)
{
	free((char *)n->e.path);
	free((char *)n->e.link);
	free((uint8_t *)n->e.ext);
	free((struct dd_chunk_ref *)n->e.chunks);
	free(n->offs);
}

void snaptree_free(struct snaptree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->count; i++)
		snaptree_node_release(&t->n[i]);
	free(t->n);
	free(t);
}

static char *snaptree_strdup(const char *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

/* Copies entry `e` into node `n` (zeroed by the caller). */
static int snaptree_node_copy(struct snaptree_node *n, const struct dd_entry *e,
			      bool with_ext)
{
	uint64_t off = 0;

	n->e = *e;
	n->e.link = NULL;
	n->e.ext = NULL;
	n->e.ext_len = 0;
	n->e.chunks = NULL;
	if (!(n->e.path = snaptree_strdup(e->path, e->path_len)))
		return -ENOMEM;
	if (e->link_len && !(n->e.link = snaptree_strdup(e->link, e->link_len)))
		return -ENOMEM;
	if (with_ext && e->ext_len) {
		uint8_t *x = malloc(e->ext_len);

		if (!x)
			return -ENOMEM;
		memcpy(x, e->ext, e->ext_len);
		n->e.ext = x;
		n->e.ext_len = e->ext_len;
	}
	if (e->nchunks) {
		struct dd_chunk_ref *c = malloc(e->nchunks * sizeof(*c));

		if (!c || !(n->offs = malloc(e->nchunks * sizeof(*n->offs)))) {
			free(c);
			return -ENOMEM;
		}
		memcpy(c, e->chunks, e->nchunks * sizeof(*c));
		n->e.chunks = c;
		for (uint64_t k = 0; k < e->nchunks; k++) {
			n->offs[k] = off;
			off += c[k].plain_len;
		}
	}
	return 0;
}

static int snaptree_append(struct snaptree *t, size_t *alloc,
			   const struct dd_entry *e)
{
	struct snaptree_node *n;

	if (t->count == *alloc) {
		size_t want = *alloc ? *alloc * 2 : 1024;

		if (!(n = realloc(t->n, want * sizeof(*n))))
			return dd_error_set(-ENOMEM, "out of memory");
		t->n = n;
		*alloc = want;
	}
	n = &t->n[t->count];
	memset(n, 0, sizeof(*n));
	t->count++;
	if (snaptree_node_copy(n, e, t->with_ext) < 0)
		return dd_error_set(-ENOMEM, "out of memory");
	n->target = t->count - 1;
	n->nlink = e->type == DD_ENTRY_DIR ? 2 : 1;
	if (e->type == DD_ENTRY_FILE)
		t->total_bytes += e->size;
	return 0;
}

/* Length of the parent directory's path ("" = root: 0). */
static size_t snaptree_dirname_len(const char *path, size_t len)
{
	while (len > 0 && path[len - 1] != '/')
		len--;
	return len ? len - 1 : 0;
}

/* Hard links point at their file (a regular file, or a symlink or
 * special file that had several paths) and count in its nlink;
 * directories count their subdirectories. */
static void snaptree_link_up(struct snaptree *t)
{
	for (size_t i = 0; i < t->count; i++) {
		struct snaptree_node *n = &t->n[i];
		size_t j;

		if (n->e.type == DD_ENTRY_HARDLINK) {
			const char *l = n->e.link ? n->e.link : "";

			if (snaptree_lookup(t, l, strlen(l), &j) == SNAPTREE_ENTRY &&
			    t->n[j].e.type != DD_ENTRY_DIR &&
			    t->n[j].e.type != DD_ENTRY_HARDLINK) {
				n->target = j;
				t->n[j].nlink++;
			} else {
				char q[512];

				agent_warn("hard link '/%s' names no file of the "
					   "snapshot: shown empty",
					   dd_quote(q, sizeof(q), n->e.path,
						    n->e.path_len));
			}
		} else if (n->e.type == DD_ENTRY_DIR) {
			size_t plen = snaptree_dirname_len(n->e.path, n->e.path_len);

			if (plen && snaptree_lookup(t, n->e.path, plen, &j) ==
			    SNAPTREE_ENTRY && t->n[j].e.type == DD_ENTRY_DIR)
				t->n[j].nlink++;
		}
	}
}

int snaptree_load(struct snaptree **out, struct client *c,
		  const json_t *manifest)
{
	struct snaptree *t;
	struct catstream *cs = NULL;
	struct dd_entry e;
	size_t alloc = 0;
	int rc;

	*out = NULL;
	if (!(t = calloc(1, sizeof(*t))))
		return dd_error_set(-ENOMEM, "out of memory");
	/* the snapshot's time: the server's manifest says unix_time */
	t->time = (int64_t)json_integer_value(json_object_get(manifest, "unix_time"));
	if (!t->time)
		t->time = (int64_t)json_integer_value(json_object_get(manifest,
								      "time_start"));
	if ((rc = catstream_new(&cs, c, manifest, SNAPTREE_CATALOG_IDS)) < 0)
		goto fail;
	while ((rc = catstream_next(cs, &e)) == 1) {
		t->with_ext = catstream_version(cs) >= 2;
		if ((rc = snaptree_append(t, &alloc, &e)) < 0)
			goto fail;
	}
	if (rc < 0)
		goto fail;
	snaptree_link_up(t);
	catstream_free(cs);
	*out = t;
	return 0;
fail:
	catstream_free(cs);
	snaptree_free(t);
	return rc;
}

/* Whether `path` is `pre` or beneath it ("" holds everything). */
static bool snaptree_under(const char *path, size_t plen, const char *pre,
			   size_t prelen)
{
	if (prelen == 0)
		return true;
	return plen >= prelen && memcmp(path, pre, prelen) == 0 &&
	       (plen == prelen || path[prelen] == '/');
}

enum snaptree_kind snaptree_lookup(const struct snaptree *t, const char *path,
				   size_t len, size_t *idx)
{
	size_t lo = 0, hi = t->count;

	if (len == 0) {
		*idx = 0;
		return SNAPTREE_IMPLIED;
	}
	/* The first entry not before `path`: the path itself, or else,
	 * since nothing sorts between "p" and "p/...", its first
	 * descendant. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dd_entry *e = &t->n[mid].e;

		if (dd_catalog_path_cmp(e->path, e->path_len, path, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*idx = lo;
	if (lo == t->count)
		return SNAPTREE_NONE;
	if (t->n[lo].e.path_len == len && memcmp(t->n[lo].e.path, path, len) == 0)
		return SNAPTREE_ENTRY;
	if (snaptree_under(t->n[lo].e.path, t->n[lo].e.path_len, path, len))
		return SNAPTREE_IMPLIED;
	return SNAPTREE_NONE;
}

bool snaptree_child(const struct snaptree *t, const char *dir, size_t len,
		    size_t i, const char **name, size_t *nlen,
		    enum snaptree_kind *kind)
{
	const struct dd_entry *e;

	if (i >= t->count)
		return false;
	e = &t->n[i].e;
	if (!snaptree_under(e->path, e->path_len, dir, len) || e->path_len == len)
		return false;
	*name = e->path + (len ? len + 1 : 0);
	*nlen = strcspn(*name, "/");
	*kind = (*name)[*nlen] == '\0' ? SNAPTREE_ENTRY : SNAPTREE_IMPLIED;
	return true;
}

size_t snaptree_next_child(const struct snaptree *t, const char *dir,
			   size_t len, size_t i)
{
	const struct dd_entry *e = &t->n[i].e;
	const char *name = e->path + (len ? len + 1 : 0);
	size_t clen = (size_t)(name - e->path) + strcspn(name, "/");
	size_t lo = i + 1, hi = t->count;

	/* The child's run (itself and its descendants) starts at i. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dd_entry *m = &t->n[mid].e;

		if (snaptree_under(m->path, m->path_len, e->path, clen))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t snaptree_chunk_at(const struct snaptree_node *n, uint64_t off)
{
	uint64_t lo = 0, hi = n->e.nchunks;

	/* the last chunk starting at or before off */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (n->offs[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}
