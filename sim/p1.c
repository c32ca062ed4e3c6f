/* egw-sim's P1 smart meter: the home's grid meter told as DSMR 5 telegrams
 * (or a Swedish HAN variant), in the text format of the P1 companion
 * standard, CRC-16/ARC over '/' .. '!'.  The DSMR 5 meter relays a gas
 * meter (M-Bus channel 1, device type 3) and a water meter (channel 2, type
 * 7) that take a reading every 5 minutes, stamped in Central European time
 * as the standard has it (S: summer time, W: winter time). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sim/sim.h"

static uint16_t crc16(const char *s, size_t n)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint8_t)s[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

struct out {
	char *buf;
	size_t cap, len;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

/* A value or 0 when the device does not have it (a meter prints every line). */
static double val(const struct sim_device *d, int f)
{
	return isnan(d->rd.v[f]) ? 0 : d->rd.v[f];
}

/* Power in kW with three decimals: whole watts, import and export apart. */
static void power(struct out *o, const char *imp, const char *exp, double w)
{
	double r = round(w);
	put(o, "1-0:%s(%06.3f*kW)\r\n", imp, (r > 0 ? r : 0) / 1000.0);
	put(o, "1-0:%s(%06.3f*kW)\r\n", exp, (r < 0 ? -r : 0) / 1000.0);
}

#define MBUS_PERIOD 300       /* s between two M-Bus readings */
#define MBUS_EPOCH 1700000000 /* the simulated meters' counting starts */
#define GAS_L_PER_PERIOD 21   /* litres: a home heating with gas */
#define WATER_L_PER_PERIOD 4

/* Whether t falls in European summer time: from the last Sunday of March
 * to the last Sunday of October, 01:00 UTC. */
static bool eu_summer(time_t t)
{
	struct tm tm;
	time_t edge[2];

	gmtime_r(&t, &tm);
	for (int k = 0; k < 2; k++) {
		struct tm e = { .tm_year = tm.tm_year,
				.tm_mon = k ? 9 : 2,
				.tm_mday = 31,
				.tm_hour = 1 };
		time_t last = timegm(&e);
		struct tm lt;
		gmtime_r(&last, &lt);
		edge[k] = last - (time_t)lt.tm_wday * 86400;
	}
	return t >= edge[0] && t < edge[1];
}

/* One M-Bus meter's lines: device type, identifier, the reading in m3 with
 * the time it was taken. */
static void mbus(struct out *o, int ch, int type, const char *id, time_t now, unsigned l_per)
{
	time_t cap = now - now % MBUS_PERIOD;
	bool summer = eu_summer(cap);
	time_t local = cap + (summer ? 7200 : 3600);
	long long litres = (long long)(cap - MBUS_EPOCH) / MBUS_PERIOD * l_per;
	struct tm tm;

	gmtime_r(&local, &tm);
	put(o, "0-%d:24.1.0(%03d)\r\n0-%d:96.1.0(", ch, type, ch);
	for (const char *s = id; *s; s++)
		put(o, "%02X", (unsigned char)*s);
	put(o, ")\r\n0-%d:24.2.1(%02d%02d%02d%02d%02d%02d%c)(%05lld.%03lld*m3)\r\n", ch,
	    tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    summer ? 'S' : 'W', litres / 1000, litres % 1000);
}

int sim_p1_telegram(const struct sim_device *d, unsigned variant, time_t now, char *buf, size_t cap)
{
	static const int lv[3] = { RF_METER_L1_V, RF_METER_L2_V, RF_METER_L3_V };
	static const int la[3] = { RF_METER_L1_A, RF_METER_L2_A, RF_METER_L3_A };
	static const int lw[3] = { RF_METER_L1_W, RF_METER_L2_W, RF_METER_L3_W };
	static const char *const pimp[3] = { "21.7.0", "41.7.0", "61.7.0" };
	static const char *const pexp[3] = { "22.7.0", "42.7.0", "62.7.0" };
	struct out o = { .buf = buf, .cap = cap };
	double imp = floor(val(d, RF_METER_TOTAL_IMPORT_WH));
	double exp = floor(val(d, RF_METER_TOTAL_EXPORT_WH));
	struct tm tm;
	char ts[64];
	bool summer = eu_summer(now);
	time_t local = now + (summer ? 7200 : 3600);

	gmtime_r(&local, &tm);
	/* YYMMDDhhmmss in Central European time and S/W, as the standard has it */
	snprintf(ts, sizeof(ts), "%02d%02d%02d%02d%02d%02d%c", tm.tm_year % 100, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, summer ? 'S' : 'W');
	if (variant == SIM_P1_SE) {
		put(&o, "/EGW5\\2SIM-HAN\r\n\r\n0-0:1.0.0(%s)\r\n", ts);
		put(&o, "1-0:1.8.0(%012.3f*kWh)\r\n", imp / 1000.0);
		put(&o, "1-0:2.8.0(%012.3f*kWh)\r\n", exp / 1000.0);
	} else {
		put(&o, "/EGW5\\2SIM-P1\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(%s)\r\n0-0:96.1.1(", ts);
		for (const char *s = d->serial; *s; s++)
			put(&o, "%02X", (unsigned char)*s);
		put(&o, ")\r\n");
		/* the totals split over the two tariffs, in whole Wh */
		put(&o, "1-0:1.8.1(%010.3f*kWh)\r\n", floor(imp / 2) / 1000.0);
		put(&o, "1-0:1.8.2(%010.3f*kWh)\r\n", (imp - floor(imp / 2)) / 1000.0);
		put(&o, "1-0:2.8.1(%010.3f*kWh)\r\n", floor(exp / 2) / 1000.0);
		put(&o, "1-0:2.8.2(%010.3f*kWh)\r\n", (exp - floor(exp / 2)) / 1000.0);
		put(&o, "0-0:96.14.0(0001)\r\n");
	}
	power(&o, "1.7.0", "2.7.0", val(d, RF_METER_W));
	for (int k = 0; k < 3; k++)
		put(&o, "1-0:%d2.7.0(%05.1f*V)\r\n", 3 + 2 * k, val(d, lv[k]));
	for (int k = 0; k < 3; k++)
		put(&o,
		    variant == SIM_P1_SE ? "1-0:%d1.7.0(%05.1f*A)\r\n"
					 : "1-0:%d1.7.0(%03.0f*A)\r\n",
		    3 + 2 * k, fabs(val(d, la[k])));
	for (int k = 0; k < 3; k++)
		power(&o, pimp[k], pexp[k], val(d, lw[k]));
	if (variant != SIM_P1_SE) {
		mbus(&o, 1, 3, "SIMGAS0000000001", now, GAS_L_PER_PERIOD);
		mbus(&o, 2, 7, "SIMH2O0000000002", now, WATER_L_PER_PERIOD);
	}
	put(&o, "!");
	if (o.full)
		return -ENOSPC;
	put(&o, "%04X\r\n", crc16(buf, o.len));
	return o.full ? -ENOSPC : (int)o.len;
}
