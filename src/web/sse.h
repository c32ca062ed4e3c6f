/* Server-sent events hub for /api/live: one shared ring of ready-made event
 * frames, one read cursor per client.
 *
 * Publishing formats the frame once ("event: <name>\ndata: <json>\n\n") and
 * appends it to the ring; it never waits for a client and never allocates.
 * Each client reads from its own cursor.  A client that falls more than the
 * ring size behind (SSE_RING_BYTES by default, 128 KiB: about a minute of
 * 10 Hz frequency samples (~100 B each) plus one device's readings (~500 B/s),
 * less with more devices) has lost data: its next
 * read fails with -EPIPE and the server drops it.  So the memory is bounded by
 * the ring plus max_clients small structs, whatever the clients do.
 *
 * A client whose read finds nothing pending is marked waiting; the next
 * publish calls its wake() once (the HTTP glue resumes the suspended
 * connection there).  No I/O here: the hub is pure and unit-tested. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SSE_RING_BYTES (128u * 1024u)
#define SSE_MAX_CLIENTS 64u
/* Longest frame accepted by sse_hub_publish (name + data + framing). */
#define SSE_MAX_FRAME (16u * 1024u)

struct sse_hub;
struct sse_client;
typedef void (*sse_wake_fn)(void *ud);

struct sse_stats {
	unsigned clients;  /* attached now */
	uint64_t attached; /* ever attached */
	uint64_t dropped;  /* clients that fell behind (read returned -EPIPE) */
	uint64_t rejected; /* attach refused: max_clients reached */
	uint64_t events;   /* frames published */
	uint64_t bytes;    /* bytes published */
	uint64_t too_big;  /* frames refused for size */
};

/* ring_bytes: 0 for SSE_RING_BYTES (at least 4 * SSE_MAX_FRAME);
 * max_clients: 0 for SSE_MAX_CLIENTS.  Returns 0, -EINVAL or -ENOMEM. */
int sse_hub_new(size_t ring_bytes, unsigned max_clients, struct sse_hub **ret);
/* Frees the hub; clients still attached become invalid.  Accepts NULL. */
void sse_hub_free(struct sse_hub *h);

/* Publish one event.  name: [a-z_]+; data: one line (compact JSON), no CR/LF.
 * Returns 0, -EINVAL (bad name or a newline in data) or -E2BIG (frame larger
 * than SSE_MAX_FRAME). */
int sse_hub_publish(struct sse_hub *h, const char *name, const char *data, size_t len);
/* A comment line (": text\n\n"), used as a heartbeat.  Same errors. */
int sse_hub_comment(struct sse_hub *h, const char *text);

/* Attach a client that will see frames published from now on.  wake(ud) is
 * called (from inside sse_hub_publish) when new data arrives after a read
 * found none.  Returns 0, -EMFILE (max_clients reached). */
int sse_client_attach(struct sse_hub *h, sse_wake_fn wake, void *ud, struct sse_client **ret);
/* Accepts NULL. */
void sse_client_detach(struct sse_client *c);
/* Copy up to max pending bytes into buf.  Returns the number copied (0:
 * nothing pending, the client is now waiting for its wake()), or -EPIPE when
 * the client fell behind and lost frames (detach it and close). */
ssize_t sse_client_read(struct sse_client *c, char *buf, size_t max);
/* Bytes pending for this client. */
uint64_t sse_client_lag(const struct sse_client *c);

void sse_hub_stats(const struct sse_hub *h, struct sse_stats *ret);
