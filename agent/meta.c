/*
 * meta.c - owner names, device numbers, xattrs and ACLs between the disk,
 * the catalog's extension records and libarchive entries.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "catalog.h"
#include "util.h"
#include "agent.h"
#include "meta.h"

struct meta_reader {
	struct archive *ard;
	struct archive_entry *ae;
};

struct meta_xattr {
	const char *name;
	const void *value;
	size_t size;
};

/* Linux's POSIX ACL xattr layout (linux/posix_acl_xattr.h). */
#define KACL_VERSION 2u
#define KACL_USER_OBJ 0x01u
#define KACL_USER 0x02u
#define KACL_GROUP_OBJ 0x04u
#define KACL_GROUP 0x08u
#define KACL_MASK 0x10u
#define KACL_OTHER 0x20u
#define KACL_UNDEFINED_ID 0xffffffffu

int meta_reader_new(struct meta_reader **out)
{
	struct meta_reader *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m || !(m->ard = archive_read_disk_new()) ||
	    !(m->ae = archive_entry_new())) {
		meta_reader_free(m);
		return dd_error_set(-ENOMEM, "out of memory");
	}
	/* Names by the standard lookup (cached); file flags and sparse maps
	 * are not recorded. */
	if (archive_read_disk_set_standard_lookup(m->ard) != ARCHIVE_OK ||
	    archive_read_disk_set_behavior(m->ard, ARCHIVE_READDISK_NO_FFLAGS |
					   ARCHIVE_READDISK_NO_SPARSE) !=
	    ARCHIVE_OK) {
		int rc = dd_error_set(-EIO, "cannot set up the disk reader: %s",
				      archive_error_string(m->ard));

		meta_reader_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void meta_reader_free(struct meta_reader *m)
{
	if (!m)
		return;
	if (m->ard)
		archive_read_free(m->ard);
	archive_entry_free(m->ae);
	free(m);
}

static int meta_cmp_xattr(const void *a, const void *b)
{
	return strcmp(((const struct meta_xattr *)a)->name,
		      ((const struct meta_xattr *)b)->name);
}

static int meta_put_name(struct dd_buf *ext, uint8_t tag, const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > DD_EXT_NAME_MAX)
		return 0;       /* no name (or none the catalog can hold) */
	return dd_ext_put_name(ext, tag, name, n);
}

static uint8_t meta_acl_tag_from_archive(int tag)
{
	switch (tag) {
	case ARCHIVE_ENTRY_ACL_USER_OBJ: return DD_ACL_USER_OBJ;
	case ARCHIVE_ENTRY_ACL_USER: return DD_ACL_USER;
	case ARCHIVE_ENTRY_ACL_GROUP_OBJ: return DD_ACL_GROUP_OBJ;
	case ARCHIVE_ENTRY_ACL_GROUP: return DD_ACL_GROUP;
	case ARCHIVE_ENTRY_ACL_MASK: return DD_ACL_MASK;
	case ARCHIVE_ENTRY_ACL_OTHER: return DD_ACL_OTHER;
	default: return 0;
	}
}

static int meta_acl_tag_to_archive(uint8_t tag)
{
	switch (tag) {
	case DD_ACL_USER_OBJ: return ARCHIVE_ENTRY_ACL_USER_OBJ;
	case DD_ACL_USER: return ARCHIVE_ENTRY_ACL_USER;
	case DD_ACL_GROUP_OBJ: return ARCHIVE_ENTRY_ACL_GROUP_OBJ;
	case DD_ACL_GROUP: return ARCHIVE_ENTRY_ACL_GROUP;
	case DD_ACL_MASK: return ARCHIVE_ENTRY_ACL_MASK;
	default: return ARCHIVE_ENTRY_ACL_OTHER;
	}
}

/*
 * The records of an open regular file with no extended attribute at all:
 * no ACL either (an ACL is an xattr, listed like the others), so only the
 * owner's names, from the disk reader's cache, as archive_read_disk_
 * entry_from_file would give them. 1 done, 0 the file has xattrs (or the
 * file system cannot list them): read it in full. Two system calls and
 * libarchive's entry work less per file.
 */
static int meta_read_plain_file(struct meta_reader *m, struct dd_buf *ext,
				int fd, const struct stat *st)
{
	int rc;

	if (flistxattr(fd, NULL, 0) != 0)
		return 0;
	if ((rc = meta_put_name(ext, DD_EXT_UNAME,
				archive_read_disk_uname(m->ard, st->st_uid))) < 0 ||
	    (rc = meta_put_name(ext, DD_EXT_GNAME,
				archive_read_disk_gname(m->ard, st->st_gid))) < 0)
		return rc;
	return 1;
}

int meta_read(struct meta_reader *m, struct dd_buf *ext, uint8_t type,
	      int fd, int dirfd, const char *name, const struct stat *st)
{
	struct meta_xattr *xs = NULL;
	char src[64 + 256];
	const char *an, *problem = NULL;
	int count, rc = 0, ar;

	dd_buf_reset(ext);
	if (type == DD_ENTRY_FILE && fd >= 0 &&
	    (rc = meta_read_plain_file(m, ext, fd, st)) != 0)
		return rc < 0 ? rc : 0;
	archive_entry_clear(m->ae);
	archive_entry_copy_pathname(m->ae, name);
	/* Even with an fd: a directory's default ACL is read by path. A
	 * regular file's xattrs and ACL are read through its fd alone. */
	if (dirfd >= 0)
		snprintf(src, sizeof(src), "/proc/self/fd/%d/%s", dirfd, name);
	else
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	archive_entry_copy_sourcepath(m->ae, src);
	archive_clear_error(m->ard);
	ar = archive_read_disk_entry_from_file(m->ard, m->ae, fd, st);
	if (ar != ARCHIVE_OK)
		problem = archive_error_string(m->ard);

	if ((rc = meta_put_name(ext, DD_EXT_UNAME, archive_entry_uname(m->ae))) < 0 ||
	    (rc = meta_put_name(ext, DD_EXT_GNAME, archive_entry_gname(m->ae))) < 0)
		goto cleanup;
	if ((type == DD_ENTRY_CHR || type == DD_ENTRY_BLK) &&
	    (rc = dd_ext_put_rdev(ext, major(st->st_rdev),
				  minor(st->st_rdev))) < 0)
		goto cleanup;

	count = archive_entry_xattr_reset(m->ae);
	if (count > 0) {
		size_t n = 0;
		const void *v;
		size_t size;

		if (!(xs = calloc((size_t)count, sizeof(*xs)))) {
			rc = dd_error_set(-ENOMEM, "out of memory");
			goto cleanup;
		}
		while (n < (size_t)count &&
		       archive_entry_xattr_next(m->ae, &an, &v, &size) ==
		       ARCHIVE_OK) {
			if (!an || strncmp(an, "system.posix_acl_", 17) == 0)
				continue;
			if (strlen(an) == 0 || strlen(an) > DD_EXT_NAME_MAX ||
			    size > DD_EXT_XATTR_VALUE_MAX) {
				problem = "an extended attribute is too large "
					  "to record";
				continue;
			}
			xs[n].name = an;
			xs[n].value = v;
			xs[n].size = size;
			n++;
		}
		qsort(xs, n, sizeof(*xs), meta_cmp_xattr);
		for (size_t i = 0; i < n; i++) {
			if (i > 0 && strcmp(xs[i - 1].name, xs[i].name) == 0)
				continue;
			rc = dd_ext_put_xattr(ext, xs[i].name, strlen(xs[i].name),
					      xs[i].value, xs[i].size);
			if (rc < 0)
				goto cleanup;
		}
	}

	count = archive_entry_acl_reset(m->ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS |
					ARCHIVE_ENTRY_ACL_TYPE_DEFAULT);
	if (count > 0) {
		int atype, perm, tag, id;

		while (archive_entry_acl_next(m->ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS |
					      ARCHIVE_ENTRY_ACL_TYPE_DEFAULT,
					      &atype, &perm, &tag, &id, &an) ==
		       ARCHIVE_OK) {
			struct dd_acl_entry a = { 0 };

			a.kind = atype == ARCHIVE_ENTRY_ACL_TYPE_DEFAULT ?
				DD_ACL_DEFAULT : DD_ACL_ACCESS;
			a.tag = meta_acl_tag_from_archive(tag);
			a.perm = (uint8_t)(perm & 7);
			if (!a.tag || (a.kind == DD_ACL_DEFAULT &&
				       type != DD_ENTRY_DIR))
				continue;
			if (a.tag == DD_ACL_USER || a.tag == DD_ACL_GROUP) {
				a.id = (uint32_t)id;
				if (an && strlen(an) <= DD_EXT_NAME_MAX) {
					a.name = an;
					a.name_len = strlen(an);
				}
			}
			if ((rc = dd_ext_put_acl(ext, &a)) < 0)
				goto cleanup;
		}
	}
	if (problem)
		rc = dd_error_set(-EIO, "%s", problem);
cleanup:
	free(xs);
	return rc;
}

/* A NUL-terminated copy of a record's name bytes (at most 255). */
static const char *meta_cstr(char out[DD_EXT_NAME_MAX + 1], const void *p,
			     size_t n)
{
	if (n > DD_EXT_NAME_MAX)
		n = DD_EXT_NAME_MAX;
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

unsigned meta_mode(const struct dd_entry *e, struct meta_drop *drop,
		   const char *shown)
{
	unsigned mode = e->mode & 07777;

	if (drop && drop->setid && e->type != DD_ENTRY_DIR &&
	    (mode & (S_ISUID | S_ISGID))) {
		mode &= ~(unsigned)(S_ISUID | S_ISGID);
		if (__atomic_fetch_add(&drop->n_setid, 1, __ATOMIC_RELAXED) == 0)
			snprintf(drop->ex_setid, sizeof(drop->ex_setid), "%s",
				 shown);
	}
	return mode;
}

bool meta_xattr_kept(const char *name, struct meta_drop *drop,
		     const char *shown)
{
	char q[DD_EXT_NAME_MAX + 8];

	if (!drop || !drop->special_xattrs || strncmp(name, "user.", 5) == 0)
		return true;
	if (__atomic_fetch_add(&drop->n_xattrs, 1, __ATOMIC_RELAXED) == 0)
		snprintf(drop->ex_xattr, sizeof(drop->ex_xattr), "%s of '%s'",
			 dd_quote(q, sizeof(q), name, strlen(name)), shown);
	return false;
}

void meta_fill(struct archive_entry *ae, const struct dd_entry *e,
	       const char *path, const char *link, bool with_ext,
	       struct meta_drop *drop)
{
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	char buf[DD_EXT_NAME_MAX + 1], shown[256] = "";
	int64_t psec;
	long pnsec;
	mode_t type;

	switch (e->type) {
	case DD_ENTRY_DIR: type = AE_IFDIR; break;
	case DD_ENTRY_SYMLINK: type = AE_IFLNK; break;
	case DD_ENTRY_FIFO: type = AE_IFIFO; break;
	case DD_ENTRY_CHR: type = AE_IFCHR; break;
	case DD_ENTRY_BLK: type = AE_IFBLK; break;
	default: type = AE_IFREG; break;
	}
	archive_entry_clear(ae);
	archive_entry_copy_pathname(ae, path);
	if (drop && e->path)
		dd_quote(shown, sizeof(shown), e->path, e->path_len);
	archive_entry_set_mode(ae, type | meta_mode(e, drop, shown));
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	dd_pax_time(e->mtime_sec, (long)e->mtime_nsec, &psec, &pnsec);
	archive_entry_set_mtime(ae, (time_t)psec, pnsec);
	if (e->type == DD_ENTRY_FILE)
		archive_entry_set_size(ae, (la_int64_t)e->size);
	else if (e->type != DD_ENTRY_DIR)
		archive_entry_set_size(ae, 0);
	if (e->type == DD_ENTRY_SYMLINK && link)
		archive_entry_copy_symlink(ae, link);
	if (e->type == DD_ENTRY_HARDLINK && link)
		archive_entry_copy_hardlink(ae, link);
	if (!with_ext)
		return;
	dd_ext_iter_init(&it, e);
	while (dd_ext_next(&it, &rec) == 1) {
		switch (rec.tag) {
		case DD_EXT_UNAME:
			archive_entry_copy_uname(ae, meta_cstr(buf, rec.v, rec.len));
			break;
		case DD_EXT_GNAME:
			archive_entry_copy_gname(ae, meta_cstr(buf, rec.v, rec.len));
			break;
		case DD_EXT_RDEV: {
			uint32_t maj, min;

			if (dd_ext_get_rdev(&rec, &maj, &min) == 0) {
				archive_entry_set_rdevmajor(ae, maj);
				archive_entry_set_rdevminor(ae, min);
			}
			break;
		}
		case DD_EXT_XATTR: {
			const char *name;
			const uint8_t *val;
			size_t nlen, vlen;

			if (dd_ext_get_xattr(&rec, &name, &nlen, &val, &vlen) == 0 &&
			    meta_xattr_kept(meta_cstr(buf, name, nlen), drop,
					    shown))
				archive_entry_xattr_add_entry(ae, buf, val, vlen);
			break;
		}
		case DD_EXT_ACL: {
			struct dd_acl_entry a;
			bool named;

			if (dd_ext_get_acl(&rec, &a) < 0)
				break;
			named = a.tag == DD_ACL_USER || a.tag == DD_ACL_GROUP;
			archive_entry_acl_add_entry(ae,
				a.kind == DD_ACL_DEFAULT ?
				ARCHIVE_ENTRY_ACL_TYPE_DEFAULT :
				ARCHIVE_ENTRY_ACL_TYPE_ACCESS,
				a.perm, meta_acl_tag_to_archive(a.tag),
				named ? (int)a.id : -1,
				named && a.name_len ?
				meta_cstr(buf, a.name, a.name_len) : NULL);
			break;
		}
		default:
			break;
		}
	}
}

/*
 * Name lookups are cached (most entries share a few owners) and done with
 * the reentrant calls: restore's writer threads set owners concurrently.
 */
#define META_NAME_CACHE 8

struct meta_name_cache {
	char name[META_NAME_CACHE][DD_EXT_NAME_MAX + 1];
	uint32_t id[META_NAME_CACHE];
	bool found[META_NAME_CACHE];
	unsigned n, next;
};

static pthread_mutex_t meta_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct meta_name_cache meta_users, meta_groups;

static bool meta_cache_get(struct meta_name_cache *c, const char *name,
			   uint32_t *id, bool *found)
{
	bool hit = false;

	pthread_mutex_lock(&meta_cache_lock);
	for (unsigned i = 0; i < c->n; i++) {
		if (strcmp(c->name[i], name) == 0) {
			*id = c->id[i];
			*found = c->found[i];
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&meta_cache_lock);
	return hit;
}

static void meta_cache_put(struct meta_name_cache *c, const char *name,
			   uint32_t id, bool found)
{
	unsigned i;

	if (strlen(name) > DD_EXT_NAME_MAX)
		return;
	pthread_mutex_lock(&meta_cache_lock);
	i = c->n < META_NAME_CACHE ? c->n++ : c->next++ % META_NAME_CACHE;
	strcpy(c->name[i], name);
	c->id[i] = id;
	c->found[i] = found;
	pthread_mutex_unlock(&meta_cache_lock);
}

uint32_t meta_map_uid(const char *name, uint32_t id)
{
	struct passwd pw, *res = NULL;
	uint32_t local = 0;
	bool found = false;

	if (!name || !*name)
		return id;
	if (!meta_cache_get(&meta_users, name, &local, &found)) {
		/* Entries can be long (a group's members): grow on ERANGE. */
		for (size_t sz = 4096; sz <= 1024 * 1024; sz *= 4) {
			char *buf = malloc(sz);
			int rc = buf ? getpwnam_r(name, &pw, buf, sz, &res) : ENOMEM;

			found = rc == 0 && res;
			local = found ? (uint32_t)res->pw_uid : 0;
			free(buf);
			if (rc != ERANGE)
				break;
		}
		meta_cache_put(&meta_users, name, local, found);
	}
	return found ? local : id;
}

uint32_t meta_map_gid(const char *name, uint32_t id)
{
	struct group gr, *res = NULL;
	uint32_t local = 0;
	bool found = false;

	if (!name || !*name)
		return id;
	if (!meta_cache_get(&meta_groups, name, &local, &found)) {
		for (size_t sz = 4096; sz <= 1024 * 1024; sz *= 4) {
			char *buf = malloc(sz);
			int rc = buf ? getgrnam_r(name, &gr, buf, sz, &res) : ENOMEM;

			found = rc == 0 && res;
			local = found ? (uint32_t)res->gr_gid : 0;
			free(buf);
			if (rc != ERANGE)
				break;
		}
		meta_cache_put(&meta_groups, name, local, found);
	}
	return found ? local : id;
}

struct kacl {
	uint16_t tag, perm;
	uint32_t id;
};

static int meta_cmp_kacl(const void *a, const void *b)
{
	const struct kacl *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Writes one kind of ACL of `e` as Linux's xattr; 0, or -errno. */
static int meta_set_acl(int fd, const struct dd_entry *e, uint8_t kind)
{
	static const uint16_t ktag[] = {
		0, KACL_USER_OBJ, KACL_USER, KACL_GROUP_OBJ, KACL_GROUP,
		KACL_MASK, KACL_OTHER,
	};
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	struct kacl *v = NULL;
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	char name[DD_EXT_NAME_MAX + 1];
	int rc = 0;

	dd_ext_iter_init(&it, e);
	while (dd_ext_next(&it, &rec) == 1) {
		struct dd_acl_entry a;

		if (rec.tag != DD_EXT_ACL || dd_ext_get_acl(&rec, &a) < 0 ||
		    a.kind != kind)
			continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct kacl *p = realloc(v, c * sizeof(*p));

			if (!p) {
				rc = -ENOMEM;
				goto cleanup;
			}
			v = p;
			cap = c;
		}
		v[n].tag = ktag[a.tag];
		v[n].perm = a.perm;
		v[n].id = KACL_UNDEFINED_ID;
		if (a.tag == DD_ACL_USER)
			v[n].id = meta_map_uid(a.name_len ?
				meta_cstr(name, a.name, a.name_len) : NULL, a.id);
		else if (a.tag == DD_ACL_GROUP)
			v[n].id = meta_map_gid(a.name_len ?
				meta_cstr(name, a.name, a.name_len) : NULL, a.id);
		n++;
	}
	if (n == 0)
		goto cleanup;
	qsort(v, n, sizeof(*v), meta_cmp_kacl);
	if (!(buf = malloc(4 + n * 8))) {
		rc = -ENOMEM;
		goto cleanup;
	}
	dd_put_le32(buf, KACL_VERSION);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = buf + 4 + i * 8;

		p[0] = (uint8_t)v[i].tag;
		p[1] = (uint8_t)(v[i].tag >> 8);
		p[2] = (uint8_t)v[i].perm;
		p[3] = (uint8_t)(v[i].perm >> 8);
		dd_put_le32(p + 4, v[i].id);
	}
	if (fsetxattr(fd, kind == DD_ACL_ACCESS ? "system.posix_acl_access" :
		      "system.posix_acl_default", buf, 4 + n * 8, 0) < 0)
		rc = -errno;
cleanup:
	free(v);
	free(buf);
	return rc;
}

/* Whether the agent runs as root, asked once: the restore applies the
 * metadata of every file, and the answer never changes. */
static pthread_once_t meta_euid_once = PTHREAD_ONCE_INIT;
static bool meta_root;

static void meta_euid_init(void)
{
	meta_root = geteuid() == 0;
}

static bool meta_is_root(void)
{
	pthread_once(&meta_euid_once, meta_euid_init);
	return meta_root;
}

int meta_apply(int fd, const struct dd_entry *e, bool with_ext,
	       const char *shown, struct meta_drop *drop)
{
	struct timespec ts[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_sec = (time_t)e->mtime_sec, .tv_nsec = (long)e->mtime_nsec },
	};
	struct dd_ext_iter it;
	struct dd_ext_rec rec;
	char uname[DD_EXT_NAME_MAX + 1] = "", gname[DD_EXT_NAME_MAX + 1] = "";
	char xname[DD_EXT_NAME_MAX + 1];
	unsigned mode = meta_mode(e, drop, shown);
	int problems = 0, rc;

	if (with_ext) {
		dd_ext_iter_init(&it, e);
		while (dd_ext_next(&it, &rec) == 1) {
			if (rec.tag == DD_EXT_UNAME)
				meta_cstr(uname, rec.v, rec.len);
			else if (rec.tag == DD_EXT_GNAME)
				meta_cstr(gname, rec.v, rec.len);
		}
	}
	if (meta_is_root() &&
	    fchown(fd, meta_map_uid(uname, e->uid), meta_map_gid(gname, e->gid)) < 0) {
		agent_warn("cannot set the owner of '%s': %s", shown,
			   strerror(errno));
		problems++;
	}
	if (fchmod(fd, mode) < 0 && fchmod(fd, mode & 01777) < 0) {
		agent_warn("cannot set the mode of '%s': %s", shown,
			   strerror(errno));
		problems++;
	}
	if (with_ext) {
		dd_ext_iter_init(&it, e);
		while (dd_ext_next(&it, &rec) == 1) {
			const char *name;
			const uint8_t *val;
			size_t nlen, vlen;

			if (rec.tag != DD_EXT_XATTR ||
			    dd_ext_get_xattr(&rec, &name, &nlen, &val, &vlen) < 0)
				continue;
			if (!meta_xattr_kept(meta_cstr(xname, name, nlen), drop,
					     shown))
				continue;
			if (fsetxattr(fd, xname, val, vlen, 0) < 0) {
				agent_warn("cannot set extended attribute '%s' "
					   "of '%s': %s", xname, shown,
					   strerror(errno));
				problems++;
			}
		}
		if ((rc = meta_set_acl(fd, e, DD_ACL_ACCESS)) < 0 ||
		    (rc = meta_set_acl(fd, e, DD_ACL_DEFAULT)) < 0) {
			agent_warn("cannot set the ACL of '%s': %s", shown,
				   strerror(-rc));
			problems++;
		}
	}
	if (futimens(fd, ts) < 0) {
		agent_warn("cannot set the times of '%s': %s", shown,
			   strerror(errno));
		problems++;
	}
	return problems;
}
