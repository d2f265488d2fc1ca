/*
 * conf.c - `key = value` files. The parser knows no keys: it hands each
 * pair to the caller, who rejects what it does not know.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "util.h"

#define CONF_MAX (1u << 20)

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* Trims s[0..*n) in place; returns the new start. */
static char *trim(char *s, size_t *n)
{
	while (*n && is_space(*s)) {
		s++;
		(*n)--;
	}
	while (*n && is_space(s[*n - 1]))
		(*n)--;
	s[*n] = '\0';
	return s;
}

int dd_conf_parse_buf(const char *name, const char *text, size_t len,
		      dd_conf_cb cb, void *payload)
{
	char *copy = NULL;
	size_t pos = 0;
	unsigned line = 0;
	int err = 0;

	if (len > CONF_MAX)
		return dd_error_set(-E2BIG, "%s: larger than %u bytes", name,
				    CONF_MAX);
	if (memchr(text, '\0', len)) {
		const char *z = memchr(text, '\0', len);
		const char *q;

		line = 1;
		for (q = text; q < z; q++)
			line += *q == '\n';
		return dd_error_set(-EBADMSG, "%s:%u: NUL byte in the file",
				    name, line);
	}
	/* One writable copy; each line is cut out of it in place. */
	copy = malloc(len + 1);
	if (!copy)
		return dd_error_set(-ENOMEM, "out of memory");
	if (len)
		memcpy(copy, text, len);
	copy[len] = '\0';

	while (pos < len) {
		char *l = copy + pos, *eq, *key, *val, *nl;
		size_t n, klen, vlen, i;

		line++;
		nl = memchr(l, '\n', len - pos);
		n = nl ? (size_t)(nl - l) : len - pos;
		pos += n + 1;
		l = trim(l, &n);
		if (n == 0 || l[0] == '#')
			continue;
		eq = memchr(l, '=', n);
		if (!eq) {
			err = dd_error_set(-EBADMSG, "%s:%u: expected 'key = "
					   "value'", name, line);
			goto cleanup;
		}
		klen = (size_t)(eq - l);
		key = trim(l, &klen);
		vlen = n - (size_t)(eq - l) - 1;
		val = trim(eq + 1, &vlen);
		if (klen == 0) {
			err = dd_error_set(-EBADMSG, "%s:%u: missing key before "
					   "'='", name, line);
			goto cleanup;
		}
		for (i = 0; i < klen; i++) {
			if (!is_key_char(key[i])) {
				err = dd_error_set(-EBADMSG, "%s:%u: bad key "
						   "'%s'", name, line, key);
				goto cleanup;
			}
		}
		if (vlen && val[0] == '"') {
			if (vlen < 2 || val[vlen - 1] != '"') {
				err = dd_error_set(-EBADMSG, "%s:%u: unterminated "
						   "quote in the value of '%s'",
						   name, line, key);
				goto cleanup;
			}
			val[vlen - 1] = '\0';
			val++;
		}
		err = cb(payload, key, val, line);
		if (err)
			goto cleanup;
	}

cleanup:
	free(copy);
	return err;
}

int dd_conf_parse_file(const char *path, dd_conf_cb cb, void *payload)
{
	uint8_t *text = NULL;
	size_t len = 0;
	int err;

	err = dd_read_file(path, CONF_MAX, &text, &len);
	if (err == -E2BIG)
		return dd_error_set(err, "%s: larger than %u bytes", path,
				    CONF_MAX);
	if (err < 0)
		return err;
	err = dd_conf_parse_buf(path, (const char *)text, len, cb, payload);
	free(text);
	return err;
}
