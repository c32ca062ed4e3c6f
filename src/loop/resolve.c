#include "loop/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "loop/loop.h"

struct loop_resolve {
	struct loop_work w;
	loop_resolve_fn cb; /* NULL once cancelled */
	void *ud;
	uint16_t port;
	int err;
	struct loop_resolved res;
	char host[256];
};

/* Worker thread. */
static void resolve_work(struct loop_work *w)
{
	struct loop_resolve *r = container_of(w, struct loop_resolve, w);
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *ai = NULL, *p;
	struct sockaddr_storage *a;
	int rc = getaddrinfo(r->host, NULL, &hints, &ai);

	for (p = rc == 0 ? ai : NULL; p && r->res.n < LOOP_RESOLVE_MAX; p = p->ai_next) {
		if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) ||
		    p->ai_addrlen > sizeof(*a))
			continue;
		a = &r->res.addr[r->res.n];
		memcpy(a, p->ai_addr, p->ai_addrlen);
		r->res.len[r->res.n++] = p->ai_addrlen;
		if (a->ss_family == AF_INET)
			((struct sockaddr_in *)a)->sin_port = htons(r->port);
		else
			((struct sockaddr_in6 *)a)->sin6_port = htons(r->port);
	}
	if (r->res.n == 0)
		r->err = rc == EAI_SYSTEM && errno ? -errno : -EGW_ENOHOST;
	if (ai)
		freeaddrinfo(ai);
}

/* Loop thread. */
static void resolve_done(struct loop_work *w)
{
	struct loop_resolve *r = container_of(w, struct loop_resolve, w);

	if (r->cb)
		r->cb(r->ud, r->err, &r->res);
	free(r);
}

struct loop_resolve *loop_resolve_start(struct loop *l, const char *host, uint16_t port,
					loop_resolve_fn cb, void *ud)
{
	struct loop_resolve *r;
	size_t n = strlen(host);

	if (n == 0 || n >= sizeof(r->host))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	memcpy(r->host, host, n + 1);
	r->port = port;
	r->cb = cb;
	r->ud = ud;
	r->w.work = resolve_work;
	r->w.done = resolve_done;
	if (loop_work_submit(l, &r->w) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

void loop_resolve_cancel(struct loop_resolve *r)
{
	if (r)
		r->cb = NULL;
}
