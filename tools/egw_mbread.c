/* egw-mbread: read (or write) Modbus registers with egw's own client.
 *
 *   egw-mbread --host H --port P [--rtu-over-tcp] | --serial DEV [--baud N]
 *              [--parity N|E|O] [--stopbits 1|2]
 *              --unit U [--fc 3|4|6|16] --addr A [--count N] [--write V,V,...]
 *              [--devid] [--repeat N] [--timeout MS] [--gap MS] [--hex]
 *
 * Prints "<addr> <value>" per register of the last read (or the identity
 * objects with --devid).  With --repeat N it issues N requests one after the
 * other and prints a summary line:
 *   # n=N ok=K err=E time=S rate=R/s p50=Xus p99=Yus
 * Exit status: 0 when every request succeeded, 1 otherwise, 2 on usage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/time.h"
#include "loop/loop.h"
#include "modbus/client.h"

struct run {
	struct loop *loop;
	struct mb_client *c;
	uint8_t unit, fc;
	uint16_t addr, count;
	uint16_t values[MB_MAX_WRITE];
	bool devid;
	unsigned repeat, done, ok;
	int last_err;
	usec_t started;
	usec_t *lat;
	uint16_t regs[MB_MAX_READ];
	unsigned nregs;
	struct mb_devid id;
	bool have_id;
};

static int issue(struct run *r);

static void finish_one(struct run *r, int err)
{
	r->lat[r->done] = now_usec() - r->started;
	r->done++;
	if (err == 0)
		r->ok++;
	else
		r->last_err = err;
	if (r->done == r->repeat || issue(r) < 0)
		loop_stop(r->loop);
}

static void on_read(void *ud, int err, const uint16_t *regs, unsigned count)
{
	struct run *r = ud;
	if (!err) {
		memcpy(r->regs, regs, count * sizeof(*regs));
		r->nregs = count;
	}
	finish_one(r, err);
}

static void on_write(void *ud, int err)
{
	finish_one(ud, err);
}

static void on_devid(void *ud, int err, const struct mb_devid *d)
{
	struct run *r = ud;
	if (!err) {
		r->id = *d;
		r->have_id = true;
	}
	finish_one(r, err);
}

static int issue(struct run *r)
{
	int e;

	r->started = now_usec();
	if (r->devid)
		e = mb_client_read_devid(r->c, r->unit, MB_DEVID_BASIC, 0, on_devid, r);
	else if (r->fc == MB_FC_WRITE_SINGLE || r->fc == MB_FC_WRITE_MULTIPLE)
		e = mb_client_write(r->c, r->unit, r->fc, r->addr, r->values, r->count, on_write,
				    r);
	else
		e = mb_client_read(r->c, r->unit, r->fc, r->addr, r->count, on_read, r);
	if (e < 0) {
		fprintf(stderr, "egw-mbread: %s\n", egw_strerror(e));
		r->last_err = e;
	}
	return e;
}

static int cmp_usec(const void *a, const void *b)
{
	usec_t x = *(const usec_t *)a, y = *(const usec_t *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fputs("usage: egw-mbread --host H --port P [--rtu-over-tcp] | --serial DEV [--baud N]\n"
	      "                  [--parity N|E|O] [--stopbits 1|2]\n"
	      "                  --unit U [--fc 3|4|6|16] --addr A [--count N] [--write V,V,...]\n"
	      "                  [--devid] [--repeat N] [--timeout MS] [--gap MS] [--hex]\n",
	      stderr);
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v > max)
		return false;
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "rtu-over-tcp", no_argument, NULL, 'R' },
		{ "serial", required_argument, NULL, 'S' },
		{ "baud", required_argument, NULL, 'b' },
		{ "parity", required_argument, NULL, 'P' },
		{ "stopbits", required_argument, NULL, 's' },
		{ "unit", required_argument, NULL, 'u' },
		{ "fc", required_argument, NULL, 'f' },
		{ "addr", required_argument, NULL, 'a' },
		{ "count", required_argument, NULL, 'c' },
		{ "write", required_argument, NULL, 'w' },
		{ "devid", no_argument, NULL, 'd' },
		{ "repeat", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "gap", required_argument, NULL, 'g' },
		{ "hex", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mb_client_config cfg = { .kind = MB_TRANSPORT_TCP };
	struct run r = { .unit = 1, .fc = MB_FC_READ_HOLDING, .count = 1, .repeat = 1 };
	bool hex = false, have_fc = false;
	unsigned long v;
	int o, status = 1;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'H':
			cfg.host = optarg;
			break;
		case 'p':
			if (!parse_uint(optarg, 65535, &v))
				goto bad;
			cfg.port = (uint16_t)v;
			break;
		case 'R':
			cfg.kind = MB_TRANSPORT_RTU_OVER_TCP;
			break;
		case 'S':
			cfg.kind = MB_TRANSPORT_RTU;
			cfg.serial_port = optarg;
			break;
		case 'b':
			if (!parse_uint(optarg, 4000000, &v))
				goto bad;
			cfg.baudrate = (unsigned)v;
			break;
		case 'P':
			cfg.parity = optarg[0];
			break;
		case 's':
			if (!parse_uint(optarg, 2, &v))
				goto bad;
			cfg.stopbits = (unsigned)v;
			break;
		case 'u':
			if (!parse_uint(optarg, 255, &v))
				goto bad;
			r.unit = (uint8_t)v;
			break;
		case 'f':
			if (!parse_uint(optarg, 255, &v))
				goto bad;
			r.fc = (uint8_t)v;
			have_fc = true;
			break;
		case 'a':
			if (!parse_uint(optarg, 65535, &v))
				goto bad;
			r.addr = (uint16_t)v;
			break;
		case 'c':
			if (!parse_uint(optarg, MB_MAX_READ, &v) || v == 0)
				goto bad;
			r.count = (uint16_t)v;
			break;
		case 'w': {
			unsigned n = 0;
			for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
				if (n == MB_MAX_WRITE || !parse_uint(tok, 65535, &v))
					goto bad;
				r.values[n++] = (uint16_t)v;
			}
			if (!n)
				goto bad;
			r.count = (uint16_t)n;
			if (!have_fc)
				r.fc = n == 1 ? MB_FC_WRITE_SINGLE : MB_FC_WRITE_MULTIPLE;
			break;
		}
		case 'd':
			r.devid = true;
			break;
		case 'n':
			if (!parse_uint(optarg, 100000000, &v) || v == 0)
				goto bad;
			r.repeat = (unsigned)v;
			break;
		case 't':
			if (!parse_uint(optarg, 3600000, &v))
				goto bad;
			cfg.timeout = (usec_t)v * USEC_PER_MSEC;
			break;
		case 'g':
			if (!parse_uint(optarg, 3600000, &v))
				goto bad;
			cfg.min_gap = (usec_t)v * USEC_PER_MSEC;
			break;
		case 'x':
			hex = true;
			break;
		case 'h':
			usage();
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;

	r.lat = calloc(r.repeat, sizeof(*r.lat));
	if (!r.lat) {
		fprintf(stderr, "egw-mbread: out of memory\n");
		return 1;
	}
	int e = loop_new(&r.loop);
	if (e < 0) {
		fprintf(stderr, "egw-mbread: loop: %s\n", egw_strerror(e));
		goto out_lat;
	}
	e = mb_client_new(r.loop, &cfg, &r.c);
	if (e < 0) {
		fprintf(stderr, "egw-mbread: bad connection settings: %s\n", egw_strerror(e));
		goto out_loop;
	}
	usec_t t0 = now_usec();
	if (issue(&r) == 0)
		loop_run(r.loop);
	usec_t took = now_usec() - t0;

	if (r.devid && r.have_id) {
		for (unsigned i = 0; i < r.id.n_objects; i++)
			printf("object %u: %s\n", r.id.ids[i], r.id.text + r.id.offs[i]);
	}
	for (unsigned i = 0; i < r.nregs; i++)
		printf(hex ? "%u 0x%04x\n" : "%u %u\n", (unsigned)(r.addr + i), r.regs[i]);
	if (r.repeat > 1 && r.done) {
		qsort(r.lat, r.done, sizeof(*r.lat), cmp_usec);
		printf("# n=%u ok=%u err=%u time=%.3fs rate=%.1f/s p50=%lldus p99=%lldus\n", r.done,
		       r.ok, r.done - r.ok, (double)took / 1e6,
		       (double)r.done * 1e6 / (double)(took ? took : 1),
		       (long long)r.lat[r.done / 2],
		       (long long)r.lat[(r.done * 99) / 100 < r.done ? (r.done * 99) / 100
								     : r.done - 1]);
	}
	if (r.last_err)
		fprintf(stderr, "egw-mbread: %s\n", egw_strerror(r.last_err));
	status = r.ok == r.repeat ? 0 : 1;
	mb_client_free(r.c);
out_loop:
	loop_free(r.loop);
out_lat:
	free(r.lat);
	return status;

bad:
	usage();
	return 2;
}
