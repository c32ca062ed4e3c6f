/* The P1 telegram parser (devices/p1.h) over telegrams typed from the
 * standards (tests/data/p1/): decoded values, CRC checks, every split of
 * the byte stream, and the drops (bad CRC, oversize, cut off). */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "devices/devconf.h"
#include "devices/p1.h"
#include "profiles/reading.h"

/* tests/data/p1 next to this file (__FILE__ is relative to the build root). */
static void data_path(const char *name, char *out, size_t cap)
{
	char file[1024], exe[1024];
	ssize_t n;

	snprintf(file, sizeof(file), "%s", __FILE__);
	if (file[0] == '/') {
		snprintf(out, cap, "%s/../data/p1/%s", dirname(file), name);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	snprintf(out, cap, "%s/../../%s/../data/p1/%s", dirname(exe), dirname(file), name);
}

static size_t load(const char *name, char *buf, size_t cap)
{
	char path[2048];
	FILE *f;
	size_t n;

	data_path(name, path, sizeof(path));
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(buf, 1, cap, f);
	fclose(f);
	assert_true(n > 0 && n < cap);
	return n;
}

struct sink {
	unsigned n;
	struct p1_telegram last;
};

static void on_telegram(void *ud, const struct p1_telegram *t)
{
	struct sink *s = ud;
	s->n++;
	s->last = *t;
}

static struct p1_parser *parser(struct sink *s)
{
	struct p1_parser *p = NULL;
	memset(s, 0, sizeof(*s));
	assert_int_equal(p1_parser_new(on_telegram, s, &p), 0);
	return p;
}

#define M(f) t->r.v[RF_METER_##f]

static void check_dsmr5(const struct p1_telegram *t)
{
	assert_true(t->crc);
	assert_string_equal(t->serial, "K8EG004046395507");
	assert_string_equal(t->header, "ISk5\\2MT382-1000");
	assert_true(M(W) == 1193.0);
	assert_true(M(L1_W) == -3333.0);
	assert_true(M(L2_W) == -3333.0);
	assert_true(M(L3_W) == -3333.0);
	assert_true(M(L1_V) == 220.1);
	assert_true(M(L2_V) == 220.2);
	assert_true(M(L3_V) == 220.3);
	assert_true(M(L1_A) == 1.0);
	assert_true(M(L2_A) == 2.0);
	assert_true(M(L3_A) == 3.0);
	assert_true(M(TOTAL_IMPORT_WH) == 246913578.0);
	assert_true(M(TOTAL_EXPORT_WH) == 246913578.0);
	assert_true(isnan(M(HZ)));
	assert_true(isnan(t->r.v[RF_PV_W]));
	assert_true(t->mbus[0].present);
	assert_int_equal(t->mbus[0].type, 3);
	assert_true(t->mbus[0].value == 12785.123);
	assert_string_equal(t->mbus[0].unit, "m3");
	/* 101209112500W: 2010-12-09 11:25:00 CET, 10:25:00 UTC */
	assert_true(t->mbus[0].ts_ms == 1291890300000LL);
	assert_true(t->r.v[RF_GAS_TOTAL_M3] == 12785.123);
	assert_true(isnan(t->r.v[RF_WATER_TOTAL_M3]));
	assert_false(t->mbus[1].present);
}

static void check_dsmr22(const struct p1_telegram *t)
{
	assert_false(t->crc);
	assert_string_equal(t->serial, "00000000000000");
	assert_true(M(W) == 1010.0);
	assert_true(M(TOTAL_IMPORT_WH) == 2003.0);
	assert_true(M(TOTAL_EXPORT_WH) == 507.0);
	assert_true(isnan(M(L1_V)));
	assert_true(isnan(M(L1_W)));
	assert_false(t->mbus[0].present); /* 24.3.0 profile form: not read */
}

static void check_han_se(const struct p1_telegram *t)
{
	assert_true(t->crc);
	assert_string_equal(t->serial, "");
	assert_true(M(W) == 1727.0);
	assert_true(M(L1_W) == 1023.0);
	assert_true(M(L2_W) == 350.0);
	assert_true(M(L3_W) == 353.0);
	assert_true(M(L1_V) == 240.3);
	assert_true(M(L2_V) == 240.1);
	assert_true(M(L3_V) == 241.3);
	assert_true(M(L1_A) == 4.2);
	assert_true(M(L2_A) == 1.6);
	assert_true(M(L3_A) == 1.7);
	assert_true(M(TOTAL_IMPORT_WH) == 6678394.0);
	assert_true(M(TOTAL_EXPORT_WH) == 0.0);
}

static const struct {
	const char *file;
	void (*check)(const struct p1_telegram *t);
} cases[] = {
	{ "dsmr5.txt", check_dsmr5 },
	{ "dsmr22.txt", check_dsmr22 },
	{ "han_se.txt", check_han_se },
};

/* The CRC printed after '!' is CRC-16/ARC over '/' .. '!'. */
static void test_crc(void **state)
{
	char buf[16384];
	(void)state;
	assert_int_equal(p1_crc16("123456789", 9), 0xBB3D); /* the CRC-16/ARC check value */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = load(cases[i].file, buf, sizeof(buf));
		char *bang = memchr(buf, '!', n);
		unsigned printed;
		assert_non_null(bang);
		if (bang[1] == '\r')
			continue; /* DSMR 2.2: none */
		assert_int_equal(sscanf(bang + 1, "%4x", &printed), 1);
		assert_int_equal(p1_crc16(buf, (size_t)(bang - buf + 1)), printed);
	}
}

/* Every telegram, split in two at every byte boundary, and fed byte by byte. */
static void test_every_split(void **state)
{
	char buf[16384];
	struct sink s;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = load(cases[i].file, buf, sizeof(buf));
		struct p1_parser *p = parser(&s);
		for (size_t k = 0; k <= n; k++) {
			p1_parser_feed(p, buf, k);
			p1_parser_feed(p, buf + k, n - k);
			assert_int_equal(s.n, k + 1);
			cases[i].check(&s.last);
		}
		p1_parser_reset(p);
		s.n = 0;
		for (size_t k = 0; k < n; k++)
			p1_parser_feed(p, buf + k, 1);
		assert_int_equal(s.n, 1);
		cases[i].check(&s.last);
		p1_parser_free(p);
	}
}

/* Noise around telegrams, and telegrams back to back in one piece. */
static void test_stream(void **state)
{
	char buf[16384], stream[40000];
	size_t off = 0;
	struct sink s;
	struct p1_stats st;
	struct p1_parser *p = parser(&s);
	(void)state;

	memcpy(stream, "\r\nnoise", 7);
	off = 7;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		off += load(cases[i].file, stream + off, sizeof(stream) - off);
	p1_parser_feed(p, stream, off);
	assert_int_equal(s.n, 3);
	check_han_se(&s.last);
	p1_parser_stats(p, &st);
	assert_int_equal(st.telegrams, 3);
	assert_int_equal(st.crc_errors, 0);
	/* noise, the CR LF after each CRC, the LF after DSMR 2.2's "!" (its CR ends it) */
	assert_int_equal(st.skipped, 7 + 2 + 1 + 2);
	(void)buf;
	p1_parser_free(p);
}

/* A changed byte or CRC digit drops the telegram, counted; the next one is read. */
static void test_bad_crc(void **state)
{
	char buf[16384];
	struct sink s;
	struct p1_stats st;
	struct p1_parser *p = parser(&s);
	size_t n = load("dsmr5.txt", buf, sizeof(buf));
	char *v = strstr(buf, "01.193");
	(void)state;

	v[1] = '2';
	p1_parser_feed(p, buf, n);
	v[1] = '1';
	buf[n - 3] = buf[n - 3] == '0' ? '1' : '0'; /* last CRC digit */
	p1_parser_feed(p, buf, n);
	memcpy(buf + n - 6, "C\r\n", 3);            /* one digit only */
	p1_parser_feed(p, buf, n - 3);
	assert_int_equal(s.n, 0);
	p1_parser_stats(p, &st);
	assert_int_equal(st.crc_errors, 3);
	n = load("dsmr5.txt", buf, sizeof(buf));
	p1_parser_feed(p, buf, n);
	assert_int_equal(s.n, 1);
	check_dsmr5(&s.last);
	p1_parser_free(p);
}

/* Over the cap: dropped and counted; a cut-off telegram too. */
static void test_oversize_and_cut(void **state)
{
	char buf[16384];
	static char big[P1_TELEGRAM_MAX + 100];
	struct sink s;
	struct p1_stats st;
	struct p1_parser *p = parser(&s);
	size_t n = load("han_se.txt", buf, sizeof(buf));
	(void)state;

	memset(big, 'x', sizeof(big));
	big[0] = '/';
	big[sizeof(big) - 1] = '!';
	p1_parser_feed(p, big, sizeof(big));
	p1_parser_feed(p, "\r\n", 2);
	p1_parser_feed(p, buf, n / 2); /* cut off by the next '/' */
	p1_parser_feed(p, buf, n);
	assert_int_equal(s.n, 1);
	check_han_se(&s.last);
	p1_parser_stats(p, &st);
	assert_int_equal(st.oversize, 1);
	assert_int_equal(st.cut, 1);
	assert_int_equal(st.telegrams, 1);
	p1_parser_free(p);
}

/* Units converted, other units and malformed values ignored. */
static void test_units(void **state)
{
	static const char t1[] = "/XYZ5 test\r\n\r\n"
				 "1-0:1.7.0(1500*W)\r\n"
				 "1-0:2.7.0(0.25*kW)\r\n"
				 "1-0:1.8.0(12.5*Wh)\r\n"
				 "1-0:2.8.0(7*MWh)\r\n"
				 "1-0:32.7.0(230*kV)\r\n"
				 "1-0:31.7.0(x*A)\r\n"
				 "1-0:52.7.0(229.99)\r\n"
				 "1-0:72.7.0(0000000000000000231.5*V)\r\n"
				 "1-0:31.7.0(1234567890123456*A)\r\n"
				 "0-0:96.1.1(ABC)\r\n"
				 "!";
	struct p1_telegram t;
	(void)state;
	assert_int_equal(p1_decode(t1, sizeof(t1) - 1, &t), 0);
	assert_true(t.r.v[RF_METER_W] == 1250.0);
	assert_true(t.r.v[RF_METER_TOTAL_IMPORT_WH] == 12.5);
	assert_true(isnan(t.r.v[RF_METER_TOTAL_EXPORT_WH]));
	assert_true(isnan(t.r.v[RF_METER_L1_V]));
	assert_true(isnan(t.r.v[RF_METER_L1_A]));
	assert_true(isnan(t.r.v[RF_METER_L2_V]));
	assert_true(t.r.v[RF_METER_L3_V] == 231.5); /* padding is not precision */
	assert_string_equal(t.serial, "ABC");
	assert_string_equal(t.header, "XYZ5 test");
	assert_int_equal(p1_decode("1-0:1.7.0(1*kW)!", 16, &t), -EGW_EFRAME);
}

/* The device settings of a P1 meter: one validator for settings, API and devices. */
/* M-Bus channels: gas and water by their device type, each with the time
 * its reading was taken; heat in GJ, a channel without a type and a
 * malformed time are not gas or water and not a time. */
static void test_mbus(void **state)
{
	static const char tg[] =
		"/XMX5LGBBFG1012463400\r\n\r\n"
		"0-1:24.1.0(007)\r\n"
		"0-1:24.2.1(230715093000S)(00123.456*m3)\r\n"
		"0-2:24.1.0(003)\r\n"
		"0-2:24.2.1(230715093000S)(04567.890*m3)\r\n"
		"0-3:24.1.0(004)\r\n"
		"0-3:24.2.1(231315093000S)(00012.345*GJ)\r\n"
		"0-4:24.2.1(230715093000W)(00001.000*m3)\r\n"
		"!";
	struct p1_telegram t;
	(void)state;

	assert_int_equal(p1_decode(tg, sizeof(tg) - 1, &t), 0);
	assert_true(t.r.v[RF_WATER_TOTAL_M3] == 123.456);
	assert_true(t.r.v[RF_GAS_TOTAL_M3] == 4567.89);
	/* 2023-07-15 09:30:00 CEST = 07:30:00 UTC */
	assert_true(t.mbus[0].ts_ms == 1689406200000LL);
	assert_true(t.mbus[1].ts_ms == 1689406200000LL);
	assert_true(t.mbus[2].present && t.mbus[2].type == 4);
	assert_string_equal(t.mbus[2].unit, "GJ");
	assert_true(t.mbus[2].ts_ms == 0); /* month 13 */
	assert_true(t.mbus[3].present && t.mbus[3].type == 0);
	/* winter time: one hour from UTC */
	assert_true(t.mbus[3].ts_ms == 1689409800000LL);
	assert_true(isnan(t.r.v[RF_METER_W]));
}

static void test_devconf(void **state)
{
	static const struct {
		const char *json, *key; /* key NULL: valid */
	} confs[] = {
		{ "[{\"profile\":\"p1\",\"host\":\"10.0.0.2\",\"port\":2001}]", NULL },
		{ "[{\"profile\":\"p1\",\"connection\":\"serial\",\"serial_port\":\"/dev/ttyUSB0\","
		  "\"baudrate\":9600,\"parity\":\"E\",\"databits\":7}]", NULL },
		{ "[{\"profile\":\"p1\",\"host\":\"10.0.0.2\"}]", "devices[0].port" },
		{ "[{\"profile\":\"p1\",\"connection\":\"rtu\",\"serial_port\":\"/dev/ttyUSB0\"}]",
		  "devices[0].connection" },
		{ "[{\"profile\":\"p1\",\"connection\":\"rtu-over-tcp\",\"host\":\"h\",\"port\":1}]",
		  "devices[0].connection" },
		{ "[{\"profile\":\"sdm630\",\"connection\":\"serial\",\"serial_port\":\"/dev/ttyUSB0\"}]",
		  "devices[0].connection" },
		{ "[{\"profile\":\"sdm630\",\"host\":\"h\",\"databits\":7}]", "devices[0].databits" },
		{ "[{\"profile\":\"p1\",\"host\":\"h\",\"port\":1,\"unit_id\":1}]", "devices[0].unit_id" },
		{ "[{\"profile\":\"p1\",\"connection\":\"serial\",\"serial_port\":\"/dev/ttyUSB0\","
		  "\"databits\":6}]", "devices[0].databits" },
		{ "[{\"profile\":\"p1\",\"connection\":\"serial\",\"serial_port\":\"/dev/ttyUSB0\"},"
		  "{\"profile\":\"sdm630\",\"connection\":\"rtu\",\"serial_port\":\"/dev/ttyUSB0\"}]",
		  "devices[1].serial_port" },
		{ "[{\"profile\":\"p1\",\"host\":\"h\",\"port\":502},"
		  "{\"profile\":\"sdm630\",\"host\":\"h\",\"port\":502}]", "devices[1].host" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(confs) / sizeof(confs[0]); i++) {
		struct devconf_error e = { "", "" };
		json_t *j = json_loads(confs[i].json, 0, NULL);
		int r;
		assert_non_null(j);
		r = devconf_validate_list(j, &e);
		if (confs[i].key) {
			assert_int_equal(r, -EGW_ESCHEMA);
			assert_string_equal(e.key, confs[i].key);
		} else {
			assert_int_equal(r, 0);
		}
		json_decref(j);
	}

	/* the serial line's defaults: 115200 8N1 */
	{
		json_t *j = json_loads("[{\"profile\":\"p1\",\"connection\":\"serial\","
				       "\"serial_port\":\"/dev/ttyUSB0\"}]", 0, NULL);
		struct dev_conf *c = NULL;
		unsigned n = 0;
		assert_int_equal(devconf_parse_list(j, &c, &n, NULL), 0);
		assert_int_equal(n, 1);
		assert_true(c[0].p1);
		assert_null(c[0].profile);
		assert_int_equal(c[0].baudrate, 115200);
		assert_int_equal(c[0].parity, 'N');
		assert_int_equal(c[0].databits, 8);
		devconf_free(c, n);
		json_decref(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_bad_crc),
		cmocka_unit_test(test_oversize_and_cut),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_mbus),
		cmocka_unit_test(test_devconf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
