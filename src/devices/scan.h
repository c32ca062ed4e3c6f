/* The LAN scan: Modbus TCP endpoints probed SCAN_PARALLEL at a time, each
 * identified by the device layer's identification rules (identify.h): the
 * SunSpec marker at 40000 and its common model, else the serial register of
 * each profile that has one (confirmed by a plausible grid frequency where
 * the profile reads one).  An endpoint that answers Modbus but matches no
 * profile is listed unidentified.  One scan at a time; a new one replaces
 * the last.  Runs on the loop thread; nothing blocks.
 *
 * A port that takes the connection but answers neither Modbus TCP nor
 * Solarman V5 may be a P1 bridge (ser2net, a Wi-Fi P1 dongle), which sends
 * the meter's telegrams unasked: the scan connects once more and listens up
 * to 11 s (a DSMR 2.2-4 meter's 10-s interval and a telegram) for an intact
 * telegram, listed as {"host", "port", "profile": "p1", "connection": "tcp",
 * "serial"?}.  It stops listening early at the first telegram, when the
 * peer closes, or after P1_TELEGRAM_MAX bytes that are no telegram.
 *
 * Time: a closed port or a Modbus device costs well under a second; an open
 * port that answers nothing costs up to 0.4 s (Modbus TCP) + 2 s (V5) + 11 s
 * (P1), about 14 s, SCAN_PARALLEL such ports at a time.  A scan of n targets
 * therefore ends within ceil(n / SCAN_PARALLEL) * 14 s plus the Modbus
 * identification of the devices found (a /24 on one port in which every host
 * has it open but silent: about 7.5 minutes; on a typical LAN, where few
 * hosts take a connection on the Modbus ports, seconds). */
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
 *  "manufacturer"?, "sunspec", "connection"?: "solarman", "logger_serial"?}
 *  or a P1 bridge as above]}, or NULL on ENOMEM. */
json_t *scan_json(const struct scan *sc);
