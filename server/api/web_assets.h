/*
 * web_assets.h - the status page's static files, compiled into the server
 * by tests/embed.sh from web/. The table ends with a NULL path.
 */
#ifndef DD_WEB_ASSETS_H
#define DD_WEB_ASSETS_H

#include <stddef.h>

struct dd_web_asset {
	const char *path;          /* "/index.html" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

extern const struct dd_web_asset dd_web_assets[];

#endif
