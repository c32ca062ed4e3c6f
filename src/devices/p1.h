/* P1 / HAN smart-meter telegrams (DSMR 2.2 ... 5.0.2, e-MUCS, the Swedish
 * HAN port): a pure streaming parser.  Bytes go in, in any pieces; every
 * complete, intact telegram comes out through a callback, decoded into the
 * data model's meter group.  No I/O here.
 *
 * Framing: a telegram starts at '/' and ends at '!', followed (DSMR 4 and
 * later) by the CRC-16 in four hex digits: CRC-16/ARC (polynomial 0xA001
 * reflected, initial value 0) over every byte from '/' to '!' inclusive.
 * A telegram without CRC digits (DSMR 2.2/3) is accepted as it is.  Bytes
 * outside a telegram are skipped; a '/' inside a telegram starts a new one
 * (the previous was cut off).  A telegram longer than P1_TELEGRAM_MAX is
 * dropped, and so is one whose CRC does not match or is not four hex
 * digits; each drop is counted.
 *
 * Decoding: lines "A-B:C.D.E(value*unit)"; the value is the last
 * parenthesised group of the line.  Mapped (electricity, channel 1-0):
 *   meter.W          = 1.7.0 - 2.7.0 (both needed)
 *   meter.Lx_W       = 21/41/61.7.0 - 22/42/62.7.0 (both needed)
 *   meter.Lx_V       = 32/52/72.7.0,  meter.Lx_A = 31/51/71.7.0
 *   meter.total_import_Wh = 1.8.0, else the sum of 1.8.1 and 1.8.2 present
 *   meter.total_export_Wh = 2.8.0, else the sum of 2.8.1 and 2.8.2 present
 * Units are converted from the telegram's own (W, kW, Wh, kWh, V, A); a line
 * with another unit, or an unparsable value, is ignored.  Values keep their
 * printed resolution exactly (kW and kWh with three decimals are whole W
 * and Wh).  The identifier 0-0:96.1.1 (hex-encoded ASCII in DSMR; printed
 * as it is when it is not) becomes the serial.  M-Bus channels 0-n:24.2.x
 * (DSMR 4/5 gas, water) are decoded into mbus[] with their device type
 * (0-n:24.1.0: 3 gas, 7 water) and the time the meter took the reading
 * (the line's first group, YYMMDDhhmmss in Central European time, S/W for
 * summer/winter); the first gas and the first water meter reading in m3
 * also become gas.total_m3 and water.total_m3.  Unknown lines are ignored. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiles/reading.h"

#define P1_TELEGRAM_MAX 8192 /* DSMR 5 with a full 1024-byte text message fits */
#define P1_SERIAL_LEN 96     /* 96.1.1 as text: at most 95 characters (as the device layer keeps) */
#define P1_MBUS_MAX 4        /* M-Bus channels 0-1 ... 0-4 */
#define P1_MBUS_GAS 3        /* 24.1.0 device types */
#define P1_MBUS_WATER 7

struct p1_mbus {
	bool present;  /* a 24.2.x reading was seen on this channel */
	unsigned type; /* 24.1.0 device type (3 gas, 7 water); 0: not sent */
	double value;  /* the meter reading in its unit */
	char unit[8];  /* "m3", "GJ", ... as the telegram has it */
	int64_t ts_ms; /* when the meter took the reading (UTC); 0: not sent */
};

/* One decoded telegram (value type). */
struct p1_telegram {
	struct reading r;                 /* meter fields; the rest NAN */
	char serial[P1_SERIAL_LEN];       /* "" when the meter sends no identifier */
	char header[64];                  /* the identification line after '/' (truncated) */
	bool crc;                         /* the telegram carried a CRC (and it matched) */
	struct p1_mbus mbus[P1_MBUS_MAX]; /* index 0 is channel 0-1 */
	unsigned lines, lines_used;       /* data lines seen, and mapped */
};

struct p1_stats {
	uint64_t telegrams;  /* delivered */
	uint64_t crc_errors; /* dropped: CRC mismatch or malformed CRC */
	uint64_t oversize;   /* dropped: longer than P1_TELEGRAM_MAX */
	uint64_t cut;        /* dropped: a new '/' before the '!' */
	uint64_t skipped;    /* bytes outside any telegram */
};

typedef void (*p1_telegram_cb)(void *ud, const struct p1_telegram *t);

struct p1_parser;

/* A parser calling cb for each telegram.  Returns 0 or -ENOMEM. */
int p1_parser_new(p1_telegram_cb cb, void *ud, struct p1_parser **ret);
void p1_parser_free(struct p1_parser *p); /* accepts NULL */
/* Forgets a telegram in progress (the stream was reconnected). */
void p1_parser_reset(struct p1_parser *p);
/* Feeds n bytes; calls cb for every telegram they complete.  The callback
 * may not free the parser. */
void p1_parser_feed(struct p1_parser *p, const void *data, size_t n);
void p1_parser_stats(const struct p1_parser *p, struct p1_stats *ret);

/* CRC-16/ARC of n bytes. */
uint16_t p1_crc16(const void *data, size_t n);

/* Decodes the text of one telegram (from '/' up to and including '!'; CRC
 * not checked here) into *ret.  Returns 0, or -EGW_EFRAME when it does not
 * start with '/' and end with '!'. */
int p1_decode(const char *text, size_t len, struct p1_telegram *ret);
