/*
 * pattern.c - exclusion and selection patterns (pattern.h).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "pattern.h"

void pattern_list_init(struct pattern_list *l)
{
	memset(l, 0, sizeof(*l));
}

void pattern_list_release(struct pattern_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->matched);
	memset(l, 0, sizeof(*l));
}

char *pattern_literal(char *out, size_t size, const char *path)
{
	size_t n = 0;

	for (; *path && n + 3 <= size; path++) {
		if (strchr("*?[]\\", *path))
			out[n++] = '\\';
		out[n++] = *path;
	}
	out[n] = '\0';
	return out;
}

int pattern_track(struct pattern_list *l)
{
	free(l->matched);
	l->matched = l->n ? calloc(l->n, sizeof(*l->matched)) : NULL;
	return l->n && !l->matched ? -ENOMEM : 0;
}

const char *pattern_unmatched(const struct pattern_list *l, size_t *i)
{
	for (; l->matched && *i < l->n; (*i)++)
		if (!l->matched[*i])
			return l->v[*i];
	return NULL;
}

int pattern_add(struct pattern_list *l, const char *pat)
{
	size_t len = strlen(pat);

	if (len == 0 || len > PATTERN_MAX_LEN)
		return dd_error_set(-EINVAL, "pattern '%.100s' is empty or "
				    "longer than %u bytes", pat, PATTERN_MAX_LEN);
	if (l->n >= PATTERN_MAX_COUNT)
		return dd_error_set(-E2BIG, "more than %u patterns",
				    PATTERN_MAX_COUNT);
	if (l->n == l->alloc) {
		size_t a = l->alloc ? l->alloc * 2 : 16;
		char **p = realloc(l->v, a * sizeof(*p));

		if (!p)
			return dd_error_set(-ENOMEM, "out of memory");
		l->v = p;
		l->alloc = a;
	}
	/* "build/" means the directory build: paths have no trailing
	 * slash to match, so it is dropped (files named so match too) */
	while (len > 1 && pat[len - 1] == '/')
		len--;
	if (!(l->v[l->n] = strndup(pat, len)))
		return dd_error_set(-ENOMEM, "out of memory");
	l->n++;
	return 0;
}

int pattern_add_file(struct pattern_list *l, const char *file)
{
	/* As many patterns as allowed, each of the longest length. */
	size_t max = (size_t)PATTERN_MAX_COUNT * (PATTERN_MAX_LEN + 2);
	uint8_t *data = NULL;
	size_t len = 0, start = 0, lineno = 0;
	int rc;

	if ((rc = dd_read_file(file, max, &data, &len)) < 0)
		return rc;
	while (start < len) {
		char *line = (char *)data + start;
		char *nl = memchr(line, '\n', len - start);
		size_t n = nl ? (size_t)(nl - line) : len - start;

		lineno++;
		start += n + 1;
		if (n && line[n - 1] == '\r')
			n--;
		if (memchr(line, '\0', n)) {
			rc = dd_error_set(-EINVAL, "'%s' line %zu holds a NUL "
					  "byte", file, lineno);
			break;
		}
		line[n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if ((rc = pattern_add(l, line)) < 0) {
			rc = dd_error_set(rc, "'%s' line %zu: %s", file, lineno,
					  dd_error_last());
			break;
		}
	}
	free(data);
	return rc;
}

static bool pattern_one_excludes(const char *pat, const char *path)
{
	const char *p;

	if (pat[0] == '/')
		return fnmatch(pat + 1, path, FNM_PATHNAME) == 0;
	if (!strchr(pat, '/')) {
		p = strrchr(path, '/');
		return fnmatch(pat, p ? p + 1 : path, FNM_PATHNAME) == 0;
	}
	/* Every suffix that starts a component. */
	for (p = path; p; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (fnmatch(pat, p, FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

bool pattern_excludes(const struct pattern_list *l, const char *path)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (pattern_one_excludes(l->v[i], path))
			return true;
	return false;
}

bool pattern_selects(const struct pattern_list *l, const char *path)
{
	char *copy;
	bool hit = false;
	size_t len;

	if (!l || l->n == 0)
		return true;
	len = strlen(path);
	if (!(copy = malloc(len + 1)))
		return true;     /* a selection never fails closed on memory */
	memcpy(copy, path, len + 1);
	/* The path and each ancestor, longest first; when tracking, every
	 * pattern not yet noted is tried even once the answer is known. */
	for (size_t end = len; end > 0 && (!hit || l->matched);) {
		copy[end] = '\0';
		for (size_t i = 0; i < l->n; i++) {
			const char *pat = l->v[i];

			if (hit && (!l->matched || l->matched[i]))
				continue;
			while (*pat == '/')
				pat++;
			if (fnmatch(pat, copy, FNM_PATHNAME) == 0) {
				hit = true;
				if (l->matched)
					l->matched[i] = true;
			}
		}
		while (end > 0 && copy[end] != '/')
			end--;
	}
	free(copy);
	return hit;
}
