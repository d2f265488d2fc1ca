/*
 * backend.c - the wrappers of backend.h: spec parsing, name checks, the
 * RADOS module's loading, and turning an op's reason into this thread's
 * error message.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "util.h"

#ifndef BACKEND_MODULE_DIR
#define BACKEND_MODULE_DIR "/usr/local/lib/dedup"
#endif

struct backend {
	const struct backend_ops *ops;
	void *impl;
	void *dl;               /* the module's dlopen handle, or NULL */
	char *where;            /* the spec after "dir:" or "rados:" */
	uint64_t nops;          /* calls made (backend_ops_count) */
	uint64_t nreads;        /* of which data reads (backend_reads_count) */
};

#define COUNT(b) __atomic_add_fetch(&(b)->nops, 1, __ATOMIC_RELAXED)
#define COUNT_READS(b, n) do { \
	__atomic_add_fetch(&(b)->nops, (n), __ATOMIC_RELAXED); \
	__atomic_add_fetch(&(b)->nreads, (n), __ATOMIC_RELAXED); \
} while (0)

/* Records "<what> '<name>': <why or strerror>" and returns rc. */
static int backend_fail(int rc, const char *what, const char *name,
			const char *why)
{
	const char *reason = why && why[0] ? why : strerror(rc < 0 ? -rc : rc);

	return dd_error_set(rc, "cannot %s '%s': %s", what, name, reason);
}

static int name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* 0 when `name` follows the naming rule of backend.h, else -EINVAL. */
static int name_check(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	const char *p = name;

	if (len == 0 || len > BACKEND_NAME_MAX)
		return -EINVAL;
	while (*p) {
		const char *start = p;

		if (*p == '.')  /* also rules out "." and ".." */
			return -EINVAL;
		while (*p && *p != '/') {
			if (!name_char_ok(*p))
				return -EINVAL;
			p++;
		}
		if (p == start)
			return -EINVAL;
		if (*p == '/' && *++p == '\0')
			return -EINVAL;
	}
	return 0;
}

static int check_name(const char *what, const char *name)
{
	char safe[64];

	if (name_check(name) == 0)
		return 0;
	snprintf(safe, sizeof(safe), "%.40s", name ? name : "(null)");
	return dd_error_set(-EINVAL, "cannot %s '%s': not a valid object name",
			    what, safe);
}

/* Loads the RADOS module; on failure records why and returns -ENOENT (or
 * -ENOEXEC for a module of another ABI). */
static int module_load(void **dl_out, const struct backend_ops **ops_out)
{
	const char *dir = getenv("DEDUP_BACKEND_DIR");
	const struct backend_module *mod;
	char path[4096];
	void *dl;

	if (!dir || !dir[0])
		dir = BACKEND_MODULE_DIR;
	snprintf(path, sizeof(path), "%s/%s", dir, BACKEND_MODULE_FILE);
	if (access(path, F_OK) < 0)
		return dd_error_set(-ENOENT,
			"the RADOS backend module is not installed (no '%s'): "
			"install the package %s", path, BACKEND_MODULE_PACKAGE);
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl)  /* there, but its libraries (librados) are not */
		return dd_error_set(-ENOENT,
			"cannot load the RADOS backend module: %s; reinstall the "
			"package %s (it depends on librados2)",
			dlerror(), BACKEND_MODULE_PACKAGE);
	mod = dlsym(dl, BACKEND_MODULE_SYMBOL);
	if (!mod || mod->abi != BACKEND_ABI || !mod->ops) {
		dlclose(dl);
		return dd_error_set(-ENOEXEC,
			"'%s' is not a RADOS backend module of this server "
			"(ABI %d expected): reinstall the package %s",
			path, BACKEND_ABI, BACKEND_MODULE_PACKAGE);
	}
	*dl_out = dl;
	*ops_out = mod->ops;
	return 0;
}

int backend_open(struct backend **out, const char *spec,
		 const struct backend_opts *opts)
{
	static const struct backend_opts no_opts;
	const struct backend_ops *ops;
	char why[BACKEND_WHY] = "";
	const char *where;
	struct backend *b;
	void *dl = NULL;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &no_opts;
	if (spec && strncmp(spec, "dir:", 4) == 0) {
		ops = &backend_dir_ops;
		where = spec + 4;
	} else if (spec && strncmp(spec, "rados:", 6) == 0) {
		where = spec + 6;
		rc = module_load(&dl, &ops);
		if (rc < 0)
			return rc;
	} else {
		return dd_error_set(-EINVAL, "unknown storage spec '%.100s': "
				    "expected dir:PATH or rados:POOL[/NAMESPACE]",
				    spec ? spec : "");
	}
	if (!where[0]) {
		rc = dd_error_set(-EINVAL, "storage spec '%s' names no %s", spec,
				  dl ? "pool" : "directory");
		goto fail;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = ops->open(&b->impl, where, opts, why);
	if (rc < 0) {
		free(b);
		rc = backend_fail(rc, "open storage", spec, why);
		goto fail;
	}
	b->ops = ops;
	b->dl = dl;
	b->where = strdup(where);
	if (!b->where) {
		backend_free(b);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	*out = b;
	return 0;
fail:
	if (dl)
		dlclose(dl);
	return rc;
}

void backend_free(struct backend *b)
{
	if (!b)
		return;
	b->ops->close(b->impl);
	if (b->dl)
		dlclose(b->dl);
	free(b->where);
	free(b);
}

const char *backend_kind(const struct backend *b)
{
	return b->ops->kind;
}

const char *backend_where(const struct backend *b)
{
	return b->where;
}

int backend_put(struct backend *b, const char *name, const void *data,
		size_t len)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("put", name);

	if (rc < 0)
		return rc;
	if (len > BACKEND_PUT_MAX)
		return dd_error_set(-EFBIG, "cannot put '%s': %zu bytes is over "
				    "the %u of one put", name, len, BACKEND_PUT_MAX);
	COUNT(b);
	rc = b->ops->put(b->impl, name, data, len, why);
	return rc < 0 ? backend_fail(rc, "put", name, why) : 0;
}

int backend_append(struct backend *b, const char *name, const void *data,
		   size_t len)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("append to", name);

	if (rc < 0 || len == 0)
		return rc;
	COUNT(b);
	rc = b->ops->append(b->impl, name, data, len, why);
	return rc < 0 ? backend_fail(rc, "append to", name, why) : 0;
}

int backend_read(struct backend *b, const char *name, uint64_t off,
		 void *buf, size_t len)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("read", name);
	int64_t got;

	if (rc < 0)
		return rc;
	if (len == 0) {
		uint64_t size;

		return backend_stat(b, name, &size);
	}
	COUNT_READS(b, 1);
	got = b->ops->read(b->impl, name, off, buf, len, why);
	if (got < 0)
		return backend_fail((int)got, "read", name, why);
	if ((uint64_t)got < len)
		return dd_error_set(-ENODATA, "short read of '%s': %lld of %zu "
				    "bytes at offset %llu (the object ends first)",
				    name, (long long)got, len,
				    (unsigned long long)off);
	return 0;
}

int backend_get(struct backend *b, const char *name, size_t max,
		uint8_t **out, size_t *len)
{
	uint64_t size;
	int rc = backend_stat(b, name, &size);

	*out = NULL;
	*len = 0;
	if (rc < 0)
		return rc;
	if (size > max)
		return dd_error_set(-EFBIG, "'%s' is too large (%llu bytes)",
				    name, (unsigned long long)size);
	if (!(*out = malloc(size + 1)))
		return dd_error_set(-ENOMEM, "out of memory");
	rc = backend_read(b, name, 0, *out, size);
	if (rc < 0) {
		free(*out);
		*out = NULL;
		return rc;
	}
	(*out)[size] = '\0';
	*len = size;
	return 0;
}

struct backend_reader {
	struct backend *b;
	void *rd;               /* the implementation's reader, or NULL */
	char name[BACKEND_NAME_MAX + 1];
};

int backend_reader_open(struct backend *b, const char *name,
			struct backend_reader **out)
{
	char why[BACKEND_WHY] = "";
	struct backend_reader *r;
	uint64_t size;
	int rc = check_name("open", name);

	*out = NULL;
	if (rc < 0)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r)
		return dd_error_set(-ENOMEM, "out of memory");
	r->b = b;
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (b->ops->ropen)
		rc = b->ops->ropen(b->impl, name, &r->rd, why);
	else
		COUNT(b);
	rc = b->ops->stat(b->impl, name, &size, why);
	if (rc < 0) {
		free(r);
		return backend_fail(rc, "open", name, why);
	}
	*out = r;
	return 0;
}

int backend_reader_read(struct backend_reader *r, uint64_t off, void *buf,
			size_t len)
{
	char why[BACKEND_WHY] = "";
	int64_t got;

	if (len == 0)
		return 0;
	COUNT_READS(r->b, 1);
	if (r->rd)
		got = r->b->ops->rread(r->rd, off, buf, len, why);
	else
		got = r->b->ops->read(r->b->impl, r->name, off, buf, len, why);
	if (got < 0)
		return backend_fail((int)got, "read", r->name, why);
	if ((uint64_t)got < len)
		return dd_error_set(-ENODATA, "short read of '%s': %lld of %zu "
				    "bytes at offset %llu (the object ends first)",
				    r->name, (long long)got, len,
				    (unsigned long long)off);
	return 0;
}

void backend_reader_close(struct backend_reader *r)
{
	if (!r)
		return;
	if (r->rd)
		r->b->ops->rclose(r->rd);
	free(r);
}

int backend_stat(struct backend *b, const char *name, uint64_t *size)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("stat", name);

	if (rc < 0)
		return rc;
	COUNT(b);
	rc = b->ops->stat(b->impl, name, size, why);
	return rc < 0 ? backend_fail(rc, "stat", name, why) : 0;
}

int backend_list(struct backend *b, const char *prefix, backend_list_fn fn,
		 void *payload)
{
	char why[BACKEND_WHY] = "";
	int rc;

	if (!prefix || strlen(prefix) > BACKEND_NAME_MAX)
		return dd_error_set(-EINVAL, "cannot list: bad prefix");
	COUNT(b);
	rc = b->ops->list(b->impl, prefix, fn, payload, why);
	if (rc < 0 && why[0])
		return backend_fail(rc, "list", prefix, why);
	return rc;
}

int backend_truncate(struct backend *b, const char *name, uint64_t size)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("truncate", name);

	if (rc < 0)
		return rc;
	if (!b->ops->truncate)
		return dd_error_set(-EOPNOTSUPP, "cannot truncate '%s': the %s "
				    "backend cannot", name, b->ops->kind);
	COUNT(b);
	rc = b->ops->truncate(b->impl, name, size, why);
	return rc < 0 ? backend_fail(rc, "truncate", name, why) : 0;
}

int backend_remove(struct backend *b, const char *name)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("remove", name);

	if (rc < 0)
		return rc;
	COUNT(b);
	rc = b->ops->remove(b->impl, name, why);
	return rc < 0 ? backend_fail(rc, "remove", name, why) : 0;
}

int backend_lock(struct backend *b, const char *name, uint32_t lease_ms)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("lock", name);

	if (rc < 0)
		return rc;
	COUNT(b);
	rc = b->ops->lock(b->impl, name, lease_ms, why);
	return rc < 0 ? backend_fail(rc, "lock", name, why) : 0;
}

int backend_unlock(struct backend *b, const char *name)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("unlock", name);

	if (rc < 0)
		return rc;
	COUNT(b);
	rc = b->ops->unlock(b->impl, name, why);
	return rc < 0 ? backend_fail(rc, "unlock", name, why) : 0;
}

int backend_cas(struct backend *b, const char *name, const void *expect,
		size_t expect_len, const void *data, size_t len)
{
	char why[BACKEND_WHY] = "";
	int rc = check_name("swap", name);

	if (rc < 0)
		return rc;
	if (len > BACKEND_CAS_MAX || expect_len > BACKEND_CAS_MAX)
		return dd_error_set(-EFBIG, "cannot swap '%s': over the %u bytes "
				    "of a swapped object", name, BACKEND_CAS_MAX);
	COUNT(b);
	rc = b->ops->cas(b->impl, name, expect, expect_len, data, len, why);
	return rc < 0 ? backend_fail(rc, "swap", name, why) : 0;
}

uint64_t backend_ops_count(const struct backend *b)
{
	return __atomic_load_n(&b->nops, __ATOMIC_RELAXED);
}

uint64_t backend_reads_count(const struct backend *b)
{
	return __atomic_load_n(&b->nreads, __ATOMIC_RELAXED);
}

int backend_reads_overlap(const struct backend *b)
{
	if (b->ops == &backend_dir_ops)
		return backend_dir_reads_spans();
	return b->ops->read_multi != NULL;
}

/* The message of a failed range, as backend_read words it. */
static int range_fail(const struct backend_range *r, const char *why)
{
	if (r->rc == -ENODATA)
		return dd_error_set(-ENODATA, "short read of '%s': the object "
				    "ends before %zu bytes at offset %llu",
				    r->name, r->len,
				    (unsigned long long)r->off);
	return backend_fail(r->rc, "read", r->name, why);
}

int backend_read_multi(struct backend *b, struct backend_range *v, size_t n)
{
	char why[BACKEND_WHY] = "";
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		v[i].rc = check_name("read", v[i].name);
		if (v[i].rc == 0 && v[i].len == 0)
			v[i].rc = dd_error_set(-EINVAL, "cannot read '%s': "
					       "empty range", v[i].name);
		if (v[i].rc < 0)
			return v[i].rc;
	}
	if (!b->ops->read_multi) {
		char first[512] = "";

		for (i = 0; i < n; i++) {
			v[i].rc = backend_read(b, v[i].name, v[i].off,
					       v[i].buf, v[i].len);
			if (v[i].rc < 0 && rc == 0) {
				rc = v[i].rc;
				snprintf(first, sizeof(first), "%s",
					 dd_error_last());
			}
		}
		return rc < 0 ? dd_error_set(rc, "%s", first) : 0;
	}
	COUNT_READS(b, n);
	rc = b->ops->read_multi(b->impl, v, n, why);
	if (rc == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (v[i].rc < 0)
			return range_fail(&v[i], why);
	return backend_fail(rc, "read", n ? v[0].name : "", why);
}

int backend_has_omap(const struct backend *b)
{
	return b->ops->omap_set != NULL;
}

static int omap_check(struct backend *b, const char *what, const char *name,
		      size_t n)
{
	int rc = check_name(what, name);

	if (rc < 0)
		return rc;
	if (!b->ops->omap_set)
		return dd_error_set(-EOPNOTSUPP, "cannot %s '%s': the %s backend "
				    "has no key/value maps", what, name,
				    b->ops->kind);
	if (n > BACKEND_KV_BATCH)
		return dd_error_set(-EINVAL, "cannot %s '%s': %zu keys is over "
				    "the %u of one call", what, name, n,
				    BACKEND_KV_BATCH);
	return 0;
}

static int keys_check(const char *what, const char *name,
		      const char *const *keys, size_t n)
{
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = keys[i] ? strlen(keys[i]) : 0;
		if (len == 0 || len > BACKEND_KEY_MAX)
			return dd_error_set(-EINVAL, "cannot %s '%s': bad key",
					    what, name);
	}
	return 0;
}

int backend_omap_set(struct backend *b, const char *name,
		     const struct backend_kv *kv, size_t n)
{
	char why[BACKEND_WHY] = "";
	int rc = omap_check(b, "set keys of", name, n);
	size_t i, len;

	if (rc < 0 || n == 0)
		return rc;
	for (i = 0; i < n; i++) {
		len = kv[i].key ? strlen(kv[i].key) : 0;
		if (len == 0 || len > BACKEND_KEY_MAX ||
		    kv[i].vlen > BACKEND_VAL_MAX)
			return dd_error_set(-EINVAL, "cannot set keys of '%s': "
					    "bad key or value", name);
	}
	COUNT(b);
	rc = b->ops->omap_set(b->impl, name, kv, n, why);
	return rc < 0 ? backend_fail(rc, "set keys of", name, why) : 0;
}

int backend_omap_set_multi(struct backend *b,
			   const struct backend_omap_batch *v, size_t n)
{
	char why[BACKEND_WHY] = "";
	size_t i, k;
	int rc;

	if (!b->ops->omap_set_multi || n <= 1) {
		for (i = 0, rc = 0; i < n && rc == 0; i++)
			rc = backend_omap_set(b, v[i].name, v[i].kv, v[i].n);
		return rc;
	}
	for (i = 0; i < n; i++) {
		rc = omap_check(b, "set keys of", v[i].name, v[i].n);
		for (k = 0; rc == 0 && k < v[i].n; k++)
			if (!v[i].kv[k].key || !v[i].kv[k].key[0] ||
			    strlen(v[i].kv[k].key) > BACKEND_KEY_MAX ||
			    v[i].kv[k].vlen > BACKEND_VAL_MAX)
				rc = dd_error_set(-EINVAL, "cannot set keys of "
						  "'%s': bad key or value",
						  v[i].name);
		if (rc < 0)
			return rc;
	}
	__atomic_add_fetch(&b->nops, n, __ATOMIC_RELAXED);
	rc = b->ops->omap_set_multi(b->impl, v, n, why);
	return rc < 0 ? backend_fail(rc, "set keys of", v[0].name, why) : 0;
}

int backend_omap_rm(struct backend *b, const char *name,
		    const char *const *keys, size_t n)
{
	char why[BACKEND_WHY] = "";
	int rc = omap_check(b, "remove keys of", name, n);

	if (rc == 0)
		rc = keys_check("remove keys of", name, keys, n);
	if (rc < 0 || n == 0)
		return rc;
	COUNT(b);
	rc = b->ops->omap_rm(b->impl, name, keys, n, why);
	return rc < 0 ? backend_fail(rc, "remove keys of", name, why) : 0;
}

int backend_omap_get(struct backend *b, const char *name,
		     const char *const *keys, size_t n, backend_kv_fn fn,
		     void *payload)
{
	char why[BACKEND_WHY] = "";
	int rc = omap_check(b, "get keys of", name, n);

	if (rc == 0)
		rc = keys_check("get keys of", name, keys, n);
	if (rc < 0 || n == 0)
		return rc;
	COUNT(b);
	rc = b->ops->omap_get(b->impl, name, keys, n, fn, payload, why);
	return rc < 0 && why[0] ? backend_fail(rc, "get keys of", name, why) :
		rc;
}

int backend_omap_list(struct backend *b, const char *name, backend_kv_fn fn,
		      void *payload)
{
	char why[BACKEND_WHY] = "";
	int rc = omap_check(b, "list keys of", name, 0);

	if (rc < 0)
		return rc;
	COUNT(b);
	rc = b->ops->omap_list(b->impl, name, fn, payload, why);
	return rc < 0 && why[0] ? backend_fail(rc, "list keys of", name, why) :
		rc;
}
