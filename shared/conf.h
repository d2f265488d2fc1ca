/*
 * conf.h - `key = value` configuration files (agent.conf, server.conf).
 * Blank lines and lines starting with '#' are ignored; whitespace around
 * keys and values is trimmed; a value may be wrapped in double quotes.
 * A line without '=' is an error naming the file and line.
 */
#ifndef DD_CONF_H
#define DD_CONF_H

#include <stddef.h>

/* Called for each pair; return 0 to go on, or a negative error (which
 * stops parsing and is returned; set dd_error_set naming the key). */
typedef int (*dd_conf_cb)(void *payload, const char *key, const char *value,
			  unsigned line);
/* -ENOENT if the file does not exist (caller decides whether that is ok),
 * -EBADMSG "FILE:LINE: ..." on a syntax error, -E2BIG over 1 MiB. */
int dd_conf_parse_file(const char *path, dd_conf_cb cb, void *payload);
int dd_conf_parse_buf(const char *name, const char *text, size_t len,
		      dd_conf_cb cb, void *payload);

#endif
