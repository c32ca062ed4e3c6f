#include "base/memtrim.h"

#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* VmRSS, RssAnon, RssFile and, for tracer (may be NULL), TracerPid. */
static int read_status(struct mem_usage *u, int *tracer)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");

	*u = (struct mem_usage){ 0 };
	if (tracer)
		*tracer = 0;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t v;
		if (sscanf(line, "VmRSS: %" SCNu64, &v) == 1)
			u->rss_kb = v;
		else if (sscanf(line, "RssAnon: %" SCNu64, &v) == 1)
			u->anon_kb = v;
		else if (sscanf(line, "RssFile: %" SCNu64, &v) == 1)
			u->file_kb = v;
		else if (tracer)
			sscanf(line, "TracerPid: %d", tracer);
	}
	fclose(f);
	return 0;
}

int mem_usage_read(struct mem_usage *u)
{
	return read_status(u, NULL);
}

static int release_object(struct dl_phdr_info *info, size_t size, void *ud)
{
	struct memtrim_result *r = ud;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t relro_lo = 0, relro_hi = 0;

	(void)size;
	/* the vDSO is the kernel's, not a file */
	if (info->dlpi_addr == (uintptr_t)getauxval(AT_SYSINFO_EHDR))
		return 0;
	r->objects++;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_GNU_RELRO) {
			relro_lo = info->dlpi_addr + ph->p_vaddr;
			relro_hi = relro_lo + ph->p_memsz;
		}
	}
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || ph->p_memsz == 0)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		uintptr_t hi = lo + ph->p_memsz;
		if (relro_hi > lo && relro_lo < hi)
			continue;
		/* whole pages inside the segment only: a page it shares with a
		 * neighbour may hold that neighbour's written data */
		lo = (lo + page - 1) & ~(page - 1);
		hi &= ~(page - 1);
		if (hi > lo && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0)
			r->segments++;
	}
	return 0;
}

void memtrim_release(struct memtrim_result *r)
{
	int tracer;

	*r = (struct memtrim_result){ 0 };
	read_status(&r->before, &tracer);
	/* a debugger's breakpoints are private copies of code pages: unmapping
	 * them would lose the breakpoints */
	r->traced = tracer != 0;
	if (!r->traced)
		dl_iterate_phdr(release_object, r);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	mem_usage_read(&r->after);
}
