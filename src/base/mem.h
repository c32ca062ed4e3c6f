/* mem: what the process's memory costs, and handing free heap back.
 *
 * The figures that measure egwd are the memory it owns: private pages
 * (Private_Dirty + Private_Clean, and RssAnon, its own anonymous memory) and
 * PSS, shared library pages divided among the processes that map them.  The
 * resident set (RSS) counts every library page mapped, shared or not, and is
 * reported beside them only for comparison: unmapping a library's code pages
 * lowers it without freeing anything (the pages stay in the page cache and
 * stay charged to a container's cgroup), so egwd does not do that.
 *
 * mem_trim() returns free heap to the kernel (malloc_trim): after a burst of
 * work (a backlog drained, a large settings document) glibc keeps freed
 * arenas mapped; trimming makes private memory follow the working set. */
#pragma once
#include <stdint.h>

struct mem_usage {
	uint64_t rss_kb;     /* Rss: every resident page, shared ones whole */
	uint64_t pss_kb;     /* Pss: shared pages divided by their sharers */
	uint64_t private_kb; /* Private_Clean + Private_Dirty */
	uint64_t private_dirty_kb;
	uint64_t anon_kb; /* Anonymous: heap, stacks, written data */
};

/* Fills *u from /proc/self/smaps_rollup.  Returns 0 or -errno. */
int mem_usage_read(struct mem_usage *u);

/* Returns free heap to the kernel.  Safe on any thread; cheap. */
void mem_trim(void);
