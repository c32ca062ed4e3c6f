#include "base/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

int mem_usage_read(struct mem_usage *u)
{
	char line[256];
	uint64_t clean = 0;
	FILE *f = fopen("/proc/self/smaps_rollup", "re");

	*u = (struct mem_usage){ 0 };
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t v;
		if (sscanf(line, "Rss: %" SCNu64, &v) == 1)
			u->rss_kb = v;
		else if (sscanf(line, "Pss: %" SCNu64, &v) == 1)
			u->pss_kb = v;
		else if (sscanf(line, "Private_Clean: %" SCNu64, &v) == 1)
			clean = v;
		else if (sscanf(line, "Private_Dirty: %" SCNu64, &v) == 1)
			u->private_dirty_kb = v;
		else if (sscanf(line, "Anonymous: %" SCNu64, &v) == 1)
			u->anon_kb = v;
	}
	fclose(f);
	u->private_kb = clean + u->private_dirty_kb;
	return 0;
}

void mem_trim(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}
