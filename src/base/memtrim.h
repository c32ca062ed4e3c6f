/*
 * memtrim: hand back the pages that start-up touched and the steady state
 * does not use.
 *
 * Loading egwd's libraries (OpenSSL, GnuTLS under libmicrohttpd, libcurl and
 * its Kerberos/LDAP dependencies, SQLite) maps some 11 MB of their files
 * into the process: relocation, constructors and one-time initialisation
 * touch code that never runs again, and the kernel maps 64 KiB around every
 * page fault.  Once the gateway has settled, memtrim_release() unmaps the
 * pages of every loaded object's read-only segments, its code and constant
 * data (madvise MADV_DONTNEED: the pages stay in the page cache; one that is
 * used again faults back in, a minor fault of about a microsecond), and
 * returns free heap to the kernel (malloc_trim).
 *
 * Only segments that are never written are touched: the objects come from
 * dl_iterate_phdr, which holds the dynamic loader's lock, so a library
 * being loaded meanwhile (an NSS module for a worker's getaddrinfo) is not
 * half-mapped; writable segments and RELRO (written by relocation, then made
 * read-only) hold private copies of their pages, which MADV_DONTNEED would
 * throw away, and are skipped.
 */
#ifndef EGW_BASE_MEMTRIM_H
#define EGW_BASE_MEMTRIM_H

#include <stddef.h>
#include <stdint.h>

/* what the process holds resident, from /proc/self/status */
struct mem_usage {
	uint64_t rss_kb;  /* VmRSS */
	uint64_t anon_kb; /* RssAnon: the process's own memory */
	uint64_t file_kb; /* RssFile: mapped pages of files (libraries, the binary) */
};

/* Fill *u from /proc/self/status; 0, or -errno. */
int mem_usage_read(struct mem_usage *u);

struct memtrim_result {
	unsigned objects;   /* loaded objects looked at */
	unsigned segments;  /* read-only segments unmapped */
	int traced;         /* under a debugger: code pages left mapped */
	struct mem_usage before, after;
};

/* Unmap the pages of the loaded objects' read-only segments and trim the
 * heap.  Safe at any time on any thread; cheap (a few hundred microseconds). */
void memtrim_release(struct memtrim_result *r);

#endif
