/* Embedded web UI assets.  www/embed.py turns every file listed in
 * www/meson.build into a const byte array at build time (www-assets.c), with
 * its URL path, Content-Type and strong ETag; the table is sorted by path.
 * Lookups are exact matches in that table, never the filesystem, so no URL
 * can reach anything else ("/../x", "//x", "%2e%2e" simply do not match).
 *
 * Caching: every asset is served with its ETag and "Cache-Control: no-cache"
 * (revalidate each time; a matching If-None-Match gets 304 with no body). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct asset {
	const char *path;          /* "/app.js" */
	const char *type;          /* Content-Type */
	const unsigned char *data; /* size bytes, followed by one NUL */
	size_t size;
	const char *etag; /* "\"0123456789abcdef\"" (quoted) */
};

/* Defined in the generated www-assets.c. */
extern const struct asset assets_table[];
extern const unsigned assets_count;

/* The asset for a URL path (no query string): "/" and "/index.html" give the
 * UI page.  NULL when there is no such asset. */
const struct asset *assets_find(const char *path);

/* True when an If-None-Match header value (may be NULL, "*", or a comma
 * separated list of possibly weak tags) matches the asset's ETag, i.e. the
 * answer is 304 Not Modified. */
bool assets_not_modified(const struct asset *a, const char *if_none_match);
