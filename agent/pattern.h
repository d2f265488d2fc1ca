/*
 * pattern.h - path patterns for backup exclusions and restore selections
 * (fnmatch(3) with FNM_PATHNAME: '*' and '?' never match '/').
 *
 * Exclusion (backup --exclude, --exclude-file), matched against the
 * absolute path of each entry the walk meets:
 *   "/home/ann/.cache" a pattern starting with '/' matches the whole path;
 *   "*.o", ".cache"    a pattern without '/' matches any one name;
 *   "build/tmp"        any other pattern matches the path's trailing
 *                      components ("/src/build/tmp" and "/build/tmp").
 * An excluded directory is not entered.
 *
 * Selection (restore --include, ls PATH), matched against the catalog path
 * (no leading '/'; one given is ignored): an entry is selected when a
 * pattern matches its path or the path of one of its ancestors, so a
 * directory's pattern selects everything beneath it.
 */
#ifndef DD_AGENT_PATTERN_H
#define DD_AGENT_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#define PATTERN_MAX_LEN 4096u
#define PATTERN_MAX_COUNT 65536u

struct pattern_list {
	char **v;
	size_t n, alloc;
	/* pattern_track: which patterns selected something (their own path
	 * or an ancestor's), noted by pattern_selects */
	bool *matched;
};

void pattern_list_init(struct pattern_list *l);
void pattern_list_release(struct pattern_list *l);
/* Adds one pattern (copied); -EINVAL when empty or too long. */
int pattern_add(struct pattern_list *l, const char *pat);
/* Adds the patterns of FILE: one a line; empty lines and lines starting
 * with '#' are skipped; a trailing '\r' is dropped. */
int pattern_add_file(struct pattern_list *l, const char *file);

/* Whether the catalog path `path` (NUL-terminated, no leading '/') is
 * excluded. */
bool pattern_excludes(const struct pattern_list *l, const char *path);
/* Whether `path` (NUL-terminated) is selected: true for an empty list. */
bool pattern_selects(const struct pattern_list *l, const char *path);
/* `path` as a pattern that matches it alone: '*', '?', '[' and '\\'
 * escaped with '\\'. Cut to fit `size`. Returns out. */
char *pattern_literal(char *out, size_t size, const char *path);
/* From now on pattern_selects notes each pattern that matches (every
 * one, not only the first), for pattern_unmatched. -ENOMEM. */
int pattern_track(struct pattern_list *l);
/* The first pattern from index *i on that matched nothing since
 * pattern_track (*i is set to its index), or NULL. */
const char *pattern_unmatched(const struct pattern_list *l, size_t *i);

#endif
