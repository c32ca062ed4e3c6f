/* The LAN scan: Modbus TCP endpoints probed SCAN_PARALLEL at a time, each
 * identified by the device layer's identification rules (identify.h): the
 * SunSpec marker at 40000 and its common model, else the serial register of
 * each profile that has one (confirmed by a plausible grid frequency where
 * the profile reads one).  An endpoint that answers Modbus but matches no
 * profile is listed unidentified.  One scan at a time; a new one replaces
 * the last.  Runs on the loop thread; nothing blocks. */
#pragma once
#include <jansson.h>
#include <stdint.h>

struct loop;
struct scan;

#define SCAN_TARGETS_MAX 1024
#define SCAN_PARALLEL 8
#define SCAN_RESULTS_MAX 64

struct scan_target {
	char host[48]; /* an IPv4 address literal */
	uint16_t port;
};

/* Returns 0 or -ENOMEM. */
int scan_new(struct loop *l, struct scan **ret);
/* Stops a running scan.  Accepts NULL. */
void scan_free(struct scan *sc);

/* Starts probing targets[0..n) (copied; n <= SCAN_TARGETS_MAX) at unit,
 * after stopping and forgetting the last scan.  hosts and ports are the
 * user's words, shown back by scan_json. */
void scan_start(struct scan *sc, const struct scan_target *targets, unsigned n, uint8_t unit,
		const char *hosts, const char *ports);
/* Stops probing; the results so far stay. */
void scan_stop(struct scan *sc);

/* {"running", "started_ms", "finished_ms", "total", "done", "hosts", "ports",
 *  "results": [{"host", "port", "unit_id", "profile"?, "serial"?,
 *  "manufacturer"?, "sunspec"}]}, or NULL on ENOMEM. */
json_t *scan_json(const struct scan *sc);
