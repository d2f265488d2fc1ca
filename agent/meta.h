/*
 * meta.h - an entry's metadata beyond its stat: owner and group names,
 * device numbers, extended attributes and POSIX ACLs, as the catalog's
 * extension records hold them (docs/FORMAT.md, "Catalog").
 *
 * Backup reads them with libarchive's disk reader (meta_read); restore and
 * tar export turn a catalog entry into a libarchive entry (meta_fill),
 * which the disk writer (ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL) and
 * the pax writer take as they are. Regular files and directories are
 * finished by restore itself through their descriptor (meta_apply): files
 * by the writer threads, directories after their children are written.
 */
#ifndef DD_AGENT_META_H
#define DD_AGENT_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "catalog.h"
#include "util.h"

struct archive_entry;
struct meta_reader;

int meta_reader_new(struct meta_reader **out);
void meta_reader_free(struct meta_reader *m);

/*
 * Encodes the extension records of the entry `type` described by `st` into
 * `ext` (reset first): names of its owner and group, rdev for a device,
 * its xattrs (sorted) and ACLs. `fd` is the open file or directory, or -1;
 * what needs a path reaches the entry as `name` in the open directory
 * `dirfd` through /proc/self/fd, so the path may be of any length. 0, or a
 * negative code with a reason when some metadata could not be read (what
 * could be read is still in `ext`). A regular file may be read through
 * `fd` alone, with `dirfd` -1 (`name` then only names it): so a reader
 * thread reads it after the walk has left its directory. Each thread
 * needs its own meta_reader.
 */
int meta_read(struct meta_reader *m, struct dd_buf *ext, uint8_t type,
	      int fd, int dirfd, const char *name, const struct stat *st);

/*
 * What a restore leaves out of the metadata a catalog records, for a
 * snapshot it does not fully trust (docs/SECURITY.md, "Restoring snapshots
 * you do not fully trust"): setuid and setgid bits of anything but a
 * directory, extended attributes outside the `user.` namespace
 * (`security.capability`, `security.selinux`, `trusted.*`, `system.*`;
 * ACLs are records of their own and are kept), and device nodes (restore.c
 * skips those). The counters say how many were left out, the ex_ strings
 * name the first one of each kind (escaped, for a warning); writer
 * threads update them (the first to count writes the example), so read
 * them once the writers are drained. NULL everywhere means: leave nothing
 * out.
 */
#define META_DROP_EXAMPLE 320
struct meta_drop {
	bool setid;
	bool special_xattrs;
	bool devices;
	unsigned long n_setid, n_xattrs, n_devices;
	char ex_setid[META_DROP_EXAMPLE];
	char ex_xattr[META_DROP_EXAMPLE];
	char ex_device[META_DROP_EXAMPLE];
};

/* e's permission bits (07777) less what `drop` leaves out, counted;
 * `shown` names the entry (escaped) for the example. */
unsigned meta_mode(const struct dd_entry *e, struct meta_drop *drop,
		   const char *shown);
/* Whether the xattr `name` of the entry `shown` is restored under `drop`;
 * a left out one is counted. */
bool meta_xattr_kept(const char *name, struct meta_drop *drop,
		     const char *shown);

/*
 * Fills `ae` (cleared first) from a catalog entry, with `path` (a
 * NUL-terminated copy of e->path, or another name for it) and `link` (a
 * NUL-terminated copy of e->link, or NULL). `with_ext` is false for a
 * version 1 entry, whose extension area is opaque.
 */
void meta_fill(struct archive_entry *ae, const struct dd_entry *e,
	       const char *path, const char *link, bool with_ext,
	       struct meta_drop *drop);

/*
 * Sets a restored file's or directory's owner (as root; by name where the
 * name exists here, else by number), mode, xattrs, ACLs and mtime on the
 * open `fd`, less what `drop` leaves out (may be NULL). Safe to call from
 * several threads. Problems are reported as warnings naming `shown`;
 * returns the number of them.
 */
int meta_apply(int fd, const struct dd_entry *e, bool with_ext,
	       const char *shown, struct meta_drop *drop);

/* uid/gid for a recorded name and number: the local id of `name` when it
 * exists, else `id`. `name` may be NULL. */
uint32_t meta_map_uid(const char *name, uint32_t id);
uint32_t meta_map_gid(const char *name, uint32_t id);

#endif
