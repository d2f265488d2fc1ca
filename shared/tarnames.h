/*
 * tarnames.h - the owner names of a pax entry about to be written, by
 * dd_owner_names_apply (catalog.h): a hard link's, which its catalog
 * entry does not record, are the ones its numbers had on the entries
 * before it; every other entry's are noted. For the two tar writers:
 * the agent's `restore --format tar` and the server's browser download.
 * Inline, so that the library itself needs no libarchive.
 */
#ifndef DD_TARNAMES_H
#define DD_TARNAMES_H

#include <archive_entry.h>

#include "catalog.h"

static inline void dd_owner_names_to_entry(struct dd_owner_names *t,
					   const struct dd_entry *e,
					   struct archive_entry *ae)
{
	const char *u = archive_entry_uname(ae), *g = archive_entry_gname(ae);
	const char *u0 = u, *g0 = g;

	dd_owner_names_apply(t, e, &u, &g);
	/* only what changed: copying the entry's own string onto itself
	 * would read memory the copy frees */
	if (u != u0)
		archive_entry_copy_uname(ae, u);
	if (g != g0)
		archive_entry_copy_gname(ae, g);
}

#endif
