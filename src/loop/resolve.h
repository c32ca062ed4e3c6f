/* Host-name lookups off the loop thread.
 *
 * getaddrinfo blocks for as long as DNS takes, so it runs on the loop's
 * worker pool and the answer comes back on the loop thread.  A lookup owns
 * its memory: its owner may go away meanwhile and just detaches with
 * loop_resolve_cancel(); the lookup frees itself when the worker is done. */
#pragma once
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct loop_resolve;

#define LOOP_RESOLVE_MAX 4

/* What a name resolves to: up to LOOP_RESOLVE_MAX addresses in the order
 * getaddrinfo gives them, port set.  A name often has an IPv6 and an IPv4
 * address and a device may listen on one only, so callers move to the next
 * address after a failed connect. */
struct loop_resolved {
	int n;
	struct sockaddr_storage addr[LOOP_RESOLVE_MAX];
	socklen_t len[LOOP_RESOLVE_MAX];
};

/* Runs on the loop thread.  err is 0 and res->n >= 1, or err is -errno
 * (-EGW_ENOHOST when the name has no address). */
typedef void (*loop_resolve_fn)(void *ud, int err, const struct loop_resolved *res);

/* Starts looking up host (a name or an address literal, at most 255
 * characters).  Returns the lookup, or NULL when it could not start
 * (out of memory, name too long, the pool refused it): the caller retries. */
struct loop_resolve *loop_resolve_start(struct loop *l, const char *host, uint16_t port,
					loop_resolve_fn cb, void *ud);
/* The callback of a lookup in flight will not run.  NULL is a no-op. */
void loop_resolve_cancel(struct loop_resolve *r);
