/* Private to the web server's files (web.c, auth.c, api.c, status.c): the
 * server's state, the route table and the helpers they share. */
#pragma once
#include "web/web.h"
#include "web/tls.h"
#include "web/webui.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/util.h"
#include "config/settings.h"
#include "egw.h"
#include "loop/loop.h"
#include "sched/sched.h"

#define HEADER_LIMIT (16 * 1024) /* per-connection memory for the request head */
#define AUTH_WINDOW_MS 10000
#define AUTH_MAX_FAILURES 10 /* per client address, within the window */
#define AUTH_PEERS 32        /* client addresses tracked (least recent evicted) */
#define AUTH_RETRY_S 10      /* Retry-After of a 429 */
/* A limited address's wrong tokens are answered this late: with one client
 * address holding at most three quarters of the connections, that bounds
 * its guesses to about that many a second (thousands before). */
#define AUTH_DELAY (1 * USEC_PER_SEC)
#define AUTH_DELAYED_MAX 64 /* answers held at once; past that, at once */
/* Under pressure (three quarters of the connections taken) a request must
 * be complete within this of its connection's start or its previous answer:
 * idle keep-alive sockets and slow senders make room for others. */
#define PRESSURE_TIMEOUT (1 * USEC_PER_SEC)

#define NROUTES 30 /* entries of web_route_table (web.c) */
#define NCODES 16  /* entries of web_counted_codes (web.c) */
#define ROUTE_UNMATCHED NROUTES

extern const struct web_route web_route_table[NROUTES];
extern const unsigned web_counted_codes[NCODES];

struct section {
	char name[32];
	web_section_fn fn;
	void *ud;
	bool in_state;
};

struct metrics_prov {
	web_metrics_fn fn;
	void *ud;
};

struct web {
	struct egw *egw;
	struct loop *loop;
	struct MHD_Daemon *d;
	struct loop_io io;
	struct task timer;
	struct MHD_Response *hello; /* shared, queued many times */
	/* GET /api/settings: one serialized copy for every request until the
	 * settings change (settings_gen), not one per request. */
	struct MHD_Response *settings_resp;
	uint64_t settings_gen;

	size_t max_body;
	unsigned timeout_s;

	struct section sections[WEB_MAX_SECTIONS];
	unsigned nsections;
	struct metrics_prov metrics[WEB_MAX_METRICS];
	unsigned nmetrics;

	uint64_t requests[NROUTES + 1][NCODES + 1];
	/* Failed token attempts: a ring per client address.  Only wrong
	 * tokens are ever refused by it (429 instead of 401): the right token
	 * is checked first and always passes, so no one can lock the owner out,
	 * and there is no limit over all addresses that one client could fill.
	 * What stops guessing is the token's 256 bits; this only slows it. */
	struct auth_peer {
		uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
		int64_t last_ms;  /* 0: free slot */
		int64_t fail_ms[AUTH_MAX_FAILURES];
		unsigned next;
	} auth_peers[AUTH_PEERS];
	uint64_t auth_failures, auth_limited;
	/* 429 answers held back (their connections suspended), oldest first */
	struct delayed_reply {
		struct MHD_Connection *c;
		struct MHD_Response *r;
		usec_t due;
	} delayed[AUTH_DELAYED_MAX];
	unsigned ndelayed;
	struct task delay_task;
	uint64_t connections_total;
	unsigned open_connections, max_connections;
	/* What the daemon listens on; a settings change moves it (rebind task). */
	struct sockaddr_in bound;
	struct task rebind;
	int rebind_err; /* last failed move (-errno), 0: none */
	bool at_limit;  /* MHD stopped accepting; it resumes on its next MHD_run */
	bool kick;      /* run MHD again at once */

	struct conn_ctx *conns; /* open connections (request deadline) */
	struct task deadline;

	struct web_tls *tls; /* the HTTPS listener (tls.c) */
};

/* Per-connection state, from accept to close.  libmicrohttpd's timeout is
 * an idle timeout: a client that drips a header line every second never
 * finishes its request and holds its slot for ever (slowloris).  So each
 * request must be complete (headers and body) within http.request_timeout_s
 * of the connection's start or of the previous request's end; past that the
 * socket is shut down and libmicrohttpd closes the connection. */
struct conn_ctx {
	struct conn_ctx *prev, *next;
	struct MHD_Connection *c;
	usec_t since;
	bool answered; /* the current request got its answer (or a stream) */
};

/* Per-request state, from the first handler call to the completion notice. */
struct req_ctx {
	char *body;
	size_t len, cap;
	bool too_big;
	bool answered;
};

/* Shared helpers. */
void web_buf_puts(struct web_buf *b, const char *s); /* web.c */
int web_reply_owned(struct web_request *rq, unsigned status, const char *type, char *data,
		    size_t len);                                               /* web.c */
const struct section *web_find_section(const struct web *w, const char *name); /* web.c */
int64_t web_uptime_ms(const struct egw *e);                                    /* web.c */
json_t *web_state_doc(struct web *w, bool all_sections);                       /* web.c */
bool web_host_allowed(const struct web *w, const char *host);                  /* auth.c */
bool web_auth_limited(struct web *w, const uint8_t key[16], int64_t now_ms);   /* auth.c */
void web_auth_failed(struct web *w, const uint8_t key[16], int64_t now_ms);    /* auth.c */
int web_h_hello(struct web_request *rq);                                       /* api.c */
int web_h_version(struct web_request *rq);                                     /* api.c */
int web_h_uptime(struct web_request *rq);                                      /* api.c */
int web_h_state(struct web_request *rq);                                       /* api.c */
int web_h_settings_get(struct web_request *rq);                                /* api.c */
int web_h_settings_post(struct web_request *rq);                               /* api.c */
int web_h_fcr_log(struct web_request *rq);                                     /* api_fcr.c */
int web_h_metrics(struct web_request *rq);                                     /* api.c */
int web_h_status(struct web_request *rq);                                      /* api.c */
int web_h_crypto(struct web_request *rq);                                      /* api.c */
int web_h_name(struct web_request *rq);                                        /* api.c */
