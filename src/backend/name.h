/* Name query: asks the backend for this gateway's name with a GraphQL POST
 *   {"query":"{ gatewayConfiguration { gatewayName(id:\"<serial>\") { name } } }"}
 * and reads data.gatewayConfiguration.gatewayName.name from the answer.
 *
 * It asks every `interval` until the backend gives a non-empty name, then
 * every `refresh_interval` (the name may change).  A failed query (transport,
 * non-2xx, malformed JSON, GraphQL errors) keeps the last known name and
 * retries at `interval`.  The name is at most NAMEQUERY_MAX - 1 bytes (longer
 * names are refused as malformed). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "backend/http.h"
#include "loop/loop.h"

#define NAMEQUERY_MAX 128

struct namequery_config {
	const char *url;         /* GraphQL endpoint; copied */
	const char *serial;      /* gateway serial (hex); copied */
	usec_t interval;         /* until known; 0: 10 s */
	usec_t refresh_interval; /* once known; 0: 1 h */
	long timeout_ms;         /* per request; 0: 10000 */
	/* Optional: called when the backend gives a name different from the
	 * last one (the first name included). */
	void (*on_name)(void *ud, const char *name);
	void *name_ud;
};

struct namequery_stats {
	uint64_t attempts, ok, failed;
	long last_status;
	int last_error;
};

struct namequery;

/* Returns 0, -EINVAL (no URL or serial, or a serial with characters other
 * than [0-9A-Za-z_-]) or -ENOMEM.  The first query runs at once. */
int namequery_new(struct loop *l, struct http *h, const struct namequery_config *cfg,
		  struct namequery **ret);
void namequery_free(struct namequery *q);
/* The name, or NULL while unknown. */
const char *namequery_name(const struct namequery *q);
void namequery_get_stats(const struct namequery *q, struct namequery_stats *ret);
/* True when cfg (with its defaults applied) is what q runs with. */
bool namequery_config_equal(const struct namequery *q, const struct namequery_config *cfg);

/* Parse a GraphQL answer body.  Returns 1 with the name copied into ret_name
 * (size NAMEQUERY_MAX), 0 when the backend has no name (null or ""), or
 * -EGW_EJSON / -EGW_ESCHEMA / -EGW_EBACKEND (GraphQL "errors"). */
int namequery_parse(const char *body, char ret_name[NAMEQUERY_MAX]);
