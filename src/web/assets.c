/* Embedded asset lookup (see assets.h). */
#include "web/assets.h"

#include <stdlib.h>
#include <string.h>

static int cmp_path(const void *key, const void *elem)
{
	const struct asset *a = elem;
	return strcmp(key, a->path);
}

const struct asset *assets_find(const char *path)
{
	if (!path || path[0] != '/')
		return NULL;
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	return bsearch(path, assets_table, assets_count, sizeof(assets_table[0]), cmp_path);
}

bool assets_not_modified(const struct asset *a, const char *inm)
{
	size_t elen = strlen(a->etag);

	if (!inm)
		return false;
	while (*inm) {
		size_t n;

		while (*inm == ' ' || *inm == '\t' || *inm == ',')
			inm++;
		if (*inm == '*')
			return true;
		/* If-None-Match uses the weak comparison: W/"x" matches "x". */
		if (strncmp(inm, "W/", 2) == 0)
			inm += 2;
		n = strcspn(inm, ",");
		while (n > 0 && (inm[n - 1] == ' ' || inm[n - 1] == '\t'))
			n--;
		if (n == elen && memcmp(inm, a->etag, elen) == 0)
			return true;
		inm += strcspn(inm, ",");
	}
	return false;
}
