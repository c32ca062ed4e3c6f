/* Device configuration: the one parser and validator of the "devices"
 * setting.  The settings file, --set, the HTTP API and the device layer all
 * go through it, so whatever the API accepts and saves is exactly what the
 * device layer will run with at the next start.
 *
 * A device object:
 *   {"connection": "tcp" (default) | "rtu" | "rtu-over-tcp" | "solarman",
 *    "profile": NAME,
 *    tcp and rtu-over-tcp: "host" (IPv4/IPv6 literal or a host name), "port" (502),
 *    solarman (a Solarman V5 data logger: Deye, Sofar, Solis, Afore Wi-Fi
 *         sticks): "host", "port" (8899), "logger_serial" (1..4294967295,
 *         required: the logger's serial number),
 *    rtu: "serial_port" (absolute path), "baudrate" (9600), "parity" ("E"),
 *         "stopbits" (device default),
 *    "unit_id" (1), optional "id" (1..63 of A-Z a-z 0-9 _ - .; default
 *    "dev<index>"), "name" (1..95 printable bytes; default the id),
 *    "poll_interval_ms" (10..3600000; default the harvest interval),
 *    "proxy_unit_id" (0..255; default unit_id: the unit the Modbus proxy
 *    answers for this device)}
 *
 * A P1/HAN smart meter ("profile": "p1") sends telegrams by itself; nothing
 * is polled and there is no unit id:
 *   {"profile": "p1", "connection": "tcp" (a serial-to-TCP bridge such as
 *    ser2net: "host", "port" required) | "serial" ("serial_port",
 *    "baudrate" (115200), "parity" ("N"), "databits" (8), "stopbits" (1);
 *    DSMR 2.2 is 9600 7E1), optional "id", "name", "poll_interval_ms" (the
 *    meter's telegram interval, default 10000: DSMR 2.2 to 4 send every 10 s,
 *    DSMR 5 every second; a meter silent for three intervals is marked)}
 * Connection "serial" is only for p1, and p1 only on "tcp" or "serial".
 * "logger_serial" is only for (and required by) "solarman"; devices behind
 * one logger (host and port) agree on it.
 * "databits" is only for p1 (Modbus RTU has eight).
 *
 * Rules over the list: at most DEVCONF_MAX devices, ids unique, one device
 * address (host, port, unit_id; or serial_port, unit_id) used once, each
 * proxy_unit_id given explicitly used by no other device (explicit or by
 * default), and the
 * devices on one serial port agree on baudrate, parity and stopbits.
 *
 * Two devices at different addresses with the same unit_id and no
 * proxy_unit_id both validate: the first in the list keeps its unit_id as
 * its proxy unit, each later one gets the lowest unit 1..247 no device holds
 * explicitly or by default (dev_conf.proxy_unit; shown as "proxy_unit_id" in
 * /api/device).  The same list always gives the same units.
 *
 * Errors name the field as a dotted key ("devices[1].serial_port") and say
 * what is wrong in words. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modbus/client.h"

struct profile;

#define DEVCONF_MAX 32
#define DEVCONF_ID_LEN 64            /* id: at most 63 bytes */
#define DEVCONF_NAME_LEN 96          /* name: at most 95 bytes */
#define DEVCONF_HOST_LEN 256         /* host and serial_port: at most 255 bytes */
#define DEVCONF_P1_INTERVAL_MS 10000 /* p1: telegram interval by default */

/* One device's settings, parsed and validated (a value type). */
struct dev_conf {
	char id[DEVCONF_ID_LEN];
	char name[DEVCONF_NAME_LEN];
	enum mb_transport_kind kind; /* p1: TCP (a bridge) or RTU (a serial line, no Modbus) */
	bool p1;                     /* "profile": "p1"; profile is NULL */
	unsigned databits;           /* p1 on a serial line: 7 or 8 */
	char host[DEVCONF_HOST_LEN];
	uint16_t port;
	uint32_t logger_serial; /* solarman: the data logger's serial number */
	uint8_t unit;
	uint8_t proxy_unit;  /* "proxy_unit_id": the Modbus proxy's unit for it */
	bool proxy_unit_set; /* given explicitly (not the unit_id default) */
	char serial_port[DEVCONF_HOST_LEN];
	unsigned baudrate;
	char parity;
	unsigned stopbits;             /* 0: the transport's default */
	const struct profile *profile; /* static table (for "sunspec": the template); NULL for p1 */
	bool sunspec;                  /* discover the map at connect time */
	unsigned poll_interval_ms;     /* 0: the set's */
	json_t *json;                  /* the settings object (a reference), to detect changes */
};

struct devconf_error {
	char key[64];  /* "devices[1].host", "devices[2]" or "devices" */
	char msg[192]; /* the problem, without the key */
};

/* "key: msg" into buf; returns buf. */
const char *devconf_error_str(const struct devconf_error *e, char *buf, size_t len);

/* Parses the array (NULL or JSON null: no device).  On success *ret is a
 * calloc'd array of *ret_n entries (NULL when 0), each holding a reference
 * to its JSON object; free with devconf_free.  Returns 0, -EGW_ESCHEMA
 * (err filled), -EGW_EPROFILE (unknown profile, err filled) or -ENOMEM. */
int devconf_parse_list(const json_t *arr, struct dev_conf **ret, unsigned *ret_n,
		       struct devconf_error *err);
void devconf_free(struct dev_conf *confs, unsigned n);

/* Validation only (devconf_parse_list without keeping the result). */
int devconf_validate_list(const json_t *arr, struct devconf_error *err);

/* Whether every register addr..addr+count-1 of `device` is in the
 * modbus_write_allowlist setting `list` (entries: an address, or
 * {"address", "count" (1), "device" (absent or "*": any)}).  The raw-write
 * API and the Modbus proxy both ask this. */
bool devconf_write_allowed(const json_t *list, const char *device, unsigned addr, unsigned count);

/* True for a device id: 1..63 of A-Z a-z 0-9 _ - . (safe in MQTT topics,
 * metric labels and URLs as it is). */
bool devconf_id_ok(const char *s);

/* The id a settings entry at `index` runs under: its "id", or "dev<index>". */
void devconf_entry_id(const json_t *entry, size_t index, char *buf, size_t len);
