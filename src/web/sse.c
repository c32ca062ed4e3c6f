/* Server-sent events hub (see sse.h). */
#include "web/sse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct sse_client {
	struct sse_hub *hub;
	uint64_t pos; /* absolute offset of the next byte to read */
	sse_wake_fn wake;
	void *ud;
	bool in_use;
	bool waiting;
	bool dropped;
};

struct sse_hub {
	char *ring;
	size_t cap;
	uint64_t head; /* absolute offset of the next byte written */
	unsigned max_clients;
	struct sse_stats stats;
	struct sse_client clients[];
};

int sse_hub_new(size_t ring_bytes, unsigned max_clients, struct sse_hub **ret)
{
	struct sse_hub *h;

	if (ring_bytes == 0)
		ring_bytes = SSE_RING_BYTES;
	if (max_clients == 0)
		max_clients = SSE_MAX_CLIENTS;
	if (ring_bytes < 4 * SSE_MAX_FRAME || max_clients > 4096)
		return -EINVAL;
	h = calloc(1, sizeof(*h) + max_clients * sizeof(h->clients[0]));
	if (!h)
		return -ENOMEM;
	h->ring = malloc(ring_bytes);
	if (!h->ring) {
		free(h);
		return -ENOMEM;
	}
	h->cap = ring_bytes;
	h->max_clients = max_clients;
	for (unsigned i = 0; i < max_clients; i++)
		h->clients[i].hub = h;
	*ret = h;
	return 0;
}

void sse_hub_free(struct sse_hub *h)
{
	if (!h)
		return;
	free(h->ring);
	free(h);
}

static void ring_put(struct sse_hub *h, const char *p, size_t n)
{
	size_t off = (size_t)(h->head % h->cap);
	size_t first = MIN(n, h->cap - off);

	memcpy(h->ring + off, p, first);
	memcpy(h->ring, p + first, n - first);
	h->head += n;
}

static void wake_waiters(struct sse_hub *h)
{
	for (unsigned i = 0; i < h->max_clients; i++) {
		struct sse_client *c = &h->clients[i];

		if (c->in_use && c->waiting) {
			c->waiting = false;
			if (c->wake)
				c->wake(c->ud);
		}
	}
}

static bool valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return false;
	return true;
}

int sse_hub_publish(struct sse_hub *h, const char *name, const char *data, size_t len)
{
	size_t nlen;

	if (!valid_name(name) || memchr(data, '\n', len) || memchr(data, '\r', len))
		return -EINVAL;
	nlen = strlen(name);
	if (nlen + len + 16 > SSE_MAX_FRAME) {
		h->stats.too_big++;
		return -E2BIG;
	}
	ring_put(h, "event: ", 7);
	ring_put(h, name, nlen);
	ring_put(h, "\ndata: ", 7);
	ring_put(h, data, len);
	ring_put(h, "\n\n", 2);
	h->stats.events++;
	h->stats.bytes += nlen + len + 16;
	wake_waiters(h);
	return 0;
}

int sse_hub_comment(struct sse_hub *h, const char *text)
{
	size_t len = strlen(text);

	if (strpbrk(text, "\r\n"))
		return -EINVAL;
	if (len + 4 > SSE_MAX_FRAME)
		return -E2BIG;
	ring_put(h, ": ", 2);
	ring_put(h, text, len);
	ring_put(h, "\n\n", 2);
	h->stats.bytes += len + 4;
	wake_waiters(h);
	return 0;
}

int sse_client_attach(struct sse_hub *h, sse_wake_fn wake, void *ud, struct sse_client **ret)
{
	for (unsigned i = 0; i < h->max_clients; i++) {
		struct sse_client *c = &h->clients[i];

		if (c->in_use)
			continue;
		*c = (struct sse_client){
			.hub = h,
			.pos = h->head,
			.wake = wake,
			.ud = ud,
			.in_use = true,
		};
		h->stats.clients++;
		h->stats.attached++;
		*ret = c;
		return 0;
	}
	h->stats.rejected++;
	return -EMFILE;
}

void sse_client_detach(struct sse_client *c)
{
	if (!c || !c->in_use)
		return;
	c->in_use = false;
	c->waiting = false;
	c->hub->stats.clients--;
}

uint64_t sse_client_lag(const struct sse_client *c)
{
	return c->hub->head - c->pos;
}

ssize_t sse_client_read(struct sse_client *c, char *buf, size_t max)
{
	struct sse_hub *h = c->hub;
	uint64_t avail = h->head - c->pos;
	size_t n, off, first;

	if (c->dropped)
		return -EPIPE;
	if (avail > h->cap) {
		/* The ring has overwritten bytes this client never read. */
		c->dropped = true;
		h->stats.dropped++;
		return -EPIPE;
	}
	if (avail == 0) {
		c->waiting = true;
		return 0;
	}
	n = (size_t)MIN(avail, (uint64_t)max);
	off = (size_t)(c->pos % h->cap);
	first = MIN(n, h->cap - off);
	memcpy(buf, h->ring + off, first);
	memcpy(buf + first, h->ring, n - first);
	c->pos += n;
	return (ssize_t)n;
}

void sse_hub_stats(const struct sse_hub *h, struct sse_stats *ret)
{
	*ret = h->stats;
}
