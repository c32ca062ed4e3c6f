/* The control interface of egw-sim: one command per line over TCP on
 * loopback, one answer line per command ("ok ...", JSON, or "error ...").
 * Commands are a const table; see `help` and egw-sim --help. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "sim/sim.h"

#define CTL_MAX_ARGS 8

struct ctl_cmd {
	const char *name;
	const char *usage;
	int (*run)(struct sim *s, int argc, char **argv, char **ret);
};

static int answer(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int answer(char **ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*ret = NULL;
		return -ENOMEM;
	}
	return strncmp(*ret, "error", 5) == 0 ? -EINVAL : 0;
}

/* "on"/"off" (and 1/0); absent means on. */
static int parse_onoff(int argc, char **argv, int i, bool *ret)
{
	if (argc <= i) {
		*ret = true;
		return 0;
	}
	if (!strcmp(argv[i], "on") || !strcmp(argv[i], "1") || !strcmp(argv[i], "true"))
		*ret = true;
	else if (!strcmp(argv[i], "off") || !strcmp(argv[i], "0") || !strcmp(argv[i], "false"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Re-encode every device now, so reads and `get` see a change at once. */
static void refresh(struct sim *s)
{
	double t = sim_clock_t(&s->clock, now_usec());
	int r = sim_home_update(s, t);
	if (r < 0)
		log_warn("sim", "encode failed: %s", egw_strerror(r));
}

static int cmd_fault(struct sim *s, int argc, char **argv, char **ret)
{
	struct sim_faults *f = &s->faults;
	bool on = true;
	unsigned long v;

	if (argc < 2)
		return answer(
			ret,
			"error usage: fault timeout|exception|tid|garbage|slow|drop|single-client|night-sleep|heartbeat|logger-serial|checksum ...");
	const char *what = argv[1];
	if (!strcmp(what, "exception") || !strcmp(what, "slow")) {
		if (argc < 3)
			return answer(ret, "error usage: fault %s N|off", what);
		if (!strcmp(argv[2], "off"))
			v = 0;
		else if (parse_uint(argv[2], !strcmp(what, "slow") ? 600000 : 255, &v) < 0)
			return answer(ret, "error bad number '%s'", argv[2]);
		if (!strcmp(what, "slow"))
			f->slow_ms = (unsigned)v;
		else
			f->exception = (uint8_t)v;
		return answer(ret, "ok fault %s %lu", what, v);
	}
	if (parse_onoff(argc, argv, 2, &on) < 0)
		return answer(ret, "error expected on|off, got '%s'", argv[2]);
	if (!strcmp(what, "timeout"))
		f->timeout = on;
	else if (!strcmp(what, "tid"))
		f->tid = on;
	else if (!strcmp(what, "garbage"))
		f->garbage = on;
	else if (!strcmp(what, "drop")) {
		f->drop = on;
		for (unsigned i = 0; on && i < s->nports; i++)
			if (s->ports[i].kind == SIM_TCP)
				sim_port_drop_all(&s->ports[i]);
	} else if (!strcmp(what, "single-client"))
		f->single_client = on;
	else if (!strcmp(what, "heartbeat"))
		f->heartbeat = on;
	else if (!strcmp(what, "logger-serial"))
		f->logger_serial = on;
	else if (!strcmp(what, "checksum"))
		f->checksum = on;
	else if (!strcmp(what, "night-sleep")) {
		f->night_sleep = on;
		sim_update_sleep(s);
	} else
		return answer(ret, "error unknown fault '%s'", what);
	return answer(ret, "ok fault %s %s", what, on ? "on" : "off");
}

static int cmd_sleep(struct sim *s, int argc, char **argv, char **ret)
{
	bool on;
	if (parse_onoff(argc, argv, 1, &on) < 0)
		return answer(ret, "error usage: sleep on|off");
	s->faults.sleep = on;
	sim_update_sleep(s);
	return answer(ret, "ok sleep %s", on ? "on" : "off");
}

static int cmd_freeze(struct sim *s, int argc, char **argv, char **ret)
{
	bool on;
	if (parse_onoff(argc, argv, 1, &on) < 0)
		return answer(ret, "error usage: freeze on|off");
	sim_clock_freeze(&s->clock, now_usec(), on);
	return answer(ret, "ok freeze %s", on ? "on" : "off");
}

/* Field name: "group.name" as in the JSON of `get` (pv.W, meter.L1_V), or
 * the shorthands hz, soc. */
static int field_of(const char *name)
{
	if (!strcmp(name, "hz"))
		return RF_METER_HZ;
	if (!strcmp(name, "soc"))
		return RF_BATTERY_SOC_NOM_FRACT;
	char group[16];
	const char *dot = strchr(name, '.');
	if (!dot || (size_t)(dot - name) >= sizeof(group))
		return -1;
	memcpy(group, name, (size_t)(dot - name));
	group[dot - name] = '\0';
	return reading_field_lookup(group, dot + 1);
}

static int cmd_set(struct sim *s, int argc, char **argv, char **ret)
{
	if (argc < 3)
		return answer(ret, "error usage: set <group.field>|serial|speed <value> [device]");
	unsigned long dev = 0;
	bool all = argc < 4;
	if (!all && parse_uint(argv[3], s->ndevs ? s->ndevs - 1 : 0, &dev) < 0)
		return answer(ret, "error no device '%s'", argv[3]);

	if (!strcmp(argv[1], "speed")) {
		char *end;
		double v = strtod(argv[2], &end);
		if (*end || !(v > 0) || v > 1e6)
			return answer(ret, "error bad speed '%s'", argv[2]);
		usec_t now = now_usec();
		bool frozen = s->clock.frozen;
		sim_clock_freeze(&s->clock, now, true);
		s->clock.speed = v;
		sim_clock_freeze(&s->clock, now, frozen);
		return answer(ret, "ok speed %g", v);
	}
	if (!strcmp(argv[1], "serial")) {
		if (strlen(argv[2]) > SIM_SERIAL_MAX)
			return answer(ret, "error serial longer than %d", SIM_SERIAL_MAX);
		for (unsigned i = 0; i < s->ndevs; i++)
			if (all || i == dev)
				snprintf(s->devs[i].serial, sizeof(s->devs[i].serial), "%s",
					 argv[2]);
		refresh(s);
		return answer(ret, "ok serial %s", argv[2]);
	}
	int f = field_of(argv[1]);
	if (f < 0)
		return answer(ret, "error unknown field '%s' (use group.name as in get)", argv[1]);
	double v = NAN;
	if (strcmp(argv[2], "off") != 0) {
		char *end;
		v = strtod(argv[2], &end);
		if (*end || !isfinite(v))
			return answer(ret, "error bad value '%s'", argv[2]);
	}
	for (unsigned i = 0; i < s->ndevs; i++)
		if (all || i == dev)
			sim_device_override(&s->devs[i], f, v);
	refresh(s);
	return answer(ret, "ok set %s %s", argv[1], argv[2]);
}

static json_t *faults_json(const struct sim *s)
{
	const struct sim_faults *f = &s->faults;
	return json_pack("{s:b, s:i, s:b, s:b, s:i, s:b, s:b, s:b, s:b, s:b, s:b, s:b}", "timeout",
			 f->timeout, "exception", (int)f->exception, "tid", f->tid, "garbage",
			 f->garbage, "slow", (int)f->slow_ms, "drop", f->drop, "single_client",
			 f->single_client, "sleep", f->sleep, "night_sleep", f->night_sleep,
			 "heartbeat", f->heartbeat, "logger_serial", f->logger_serial, "checksum",
			 f->checksum);
}

static int cmd_get(struct sim *s, int argc, char **argv, char **ret)
{
	(void)argc;
	(void)argv;
	refresh(s);
	json_t *devs = json_array();
	json_t *o = json_pack("{s:f, s:f, s:b, s:b, s:o, s:o}", "sim_time",
			      sim_clock_t(&s->clock, now_usec()), "speed", s->clock.speed, "frozen",
			      s->clock.frozen, "asleep", s->asleep, "faults", faults_json(s),
			      "devices", devs);
	if (!o)
		return -ENOMEM;
	for (unsigned i = 0; i < s->ndevs; i++)
		json_array_append_new(devs, sim_device_json(&s->devs[i]));
	char *txt = json_dumps(o, JSON_COMPACT | READING_JSON_REALS);
	json_decref(o);
	if (!txt)
		return -ENOMEM;
	*ret = txt;
	return 0;
}

static int cmd_clear(struct sim *s, int argc, char **argv, char **ret)
{
	(void)argc;
	(void)argv;
	s->faults = (struct sim_faults){ 0 };
	s->fseq = (struct sim_fseq){ 0 };
	for (unsigned i = 0; i < s->ndevs; i++)
		for (int f = 0; f < RF_COUNT; f++)
			sim_device_override(&s->devs[i], f, NAN);
	refresh(s);
	sim_update_sleep(s);
	return answer(ret, "ok clear");
}

/* ---- frequency sequences --------------------------------------------------- */

double sim_fseq_hz(const struct sim_fseq *q, double t)
{
	double e = t - q->t0;

	if (q->n == 0)
		return 50.0;
	for (unsigned i = 0; i < q->n; i++) {
		const struct sim_fseg *g = &q->seg[i];
		if (e < g->dur) {
			switch (g->kind) {
			case SIM_FSEG_RAMP:
				return g->f0 + (g->f1 - g->f0) * (e < 0 ? 0 : e / g->dur);
			case SIM_FSEG_SINE:
				return g->f0 + g->amp * sin(2.0 * M_PI * e / g->period);
			case SIM_FSEG_HOLD:
				return g->f0;
			}
		}
		e -= g->dur;
	}
	return q->seg[q->n - 1].f1;
}

static int parse_num(const char *txt, double lo, double hi, double *ret)
{
	char *end;
	double v = strtod(txt, &end);
	if (end == txt || *end || !isfinite(v) || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* freq hold F S | ramp F RATE | sine CENTER AMP PERIOD CYCLES | play | stop | status */
static int cmd_freq(struct sim *s, int argc, char **argv, char **ret)
{
	struct sim_fseq *q = &s->fseq;
	double now = sim_clock_t(&s->clock, now_usec());
	const char *op = argc > 1 ? argv[1] : "status";
	double a = 0, b = 0, c = 0, d = 0;

	if (!strcmp(op, "status"))
		return answer(ret, "ok freq %s segments %u hz %.4f",
			      q->playing ? "playing" : "stopped", q->n,
			      q->playing ? sim_fseq_hz(q, now) : NAN);
	if (!strcmp(op, "stop")) {
		*q = (struct sim_fseq){ 0 };
		refresh(s);
		return answer(ret, "ok freq stop");
	}
	if (!strcmp(op, "play")) {
		if (q->n == 0)
			return answer(ret, "error freq: no segments (freq hold|ramp|sine first)");
		q->t0 = now;
		q->playing = true;
		refresh(s);
		return answer(ret, "ok freq play %u segments at %.3f", q->n, now);
	}
	if (q->playing)
		return answer(ret, "error freq: playing; freq stop first");
	if (q->n == SIM_FSEQ_MAX)
		return answer(ret, "error freq: at most %d segments", SIM_FSEQ_MAX);
	double from = q->n ? q->seg[q->n - 1].f1 : 50.0;
	struct sim_fseg g = { 0 };
	if (!strcmp(op, "hold") && argc == 4 && parse_num(argv[2], 40, 60, &a) == 0 &&
	    parse_num(argv[3], 0, 86400, &b) == 0) {
		g = (struct sim_fseg){ .kind = SIM_FSEG_HOLD, .f0 = a, .f1 = a, .dur = b };
	} else if (!strcmp(op, "ramp") && argc == 4 && parse_num(argv[2], 40, 60, &a) == 0 &&
		   parse_num(argv[3], 1e-6, 100, &b) == 0) {
		g = (struct sim_fseg){ .kind = SIM_FSEG_RAMP,
				       .f0 = from,
				       .f1 = a,
				       .dur = fabs(a - from) / b };
	} else if (!strcmp(op, "sine") && argc == 6 && parse_num(argv[2], 40, 60, &a) == 0 &&
		   parse_num(argv[3], 0, 5, &b) == 0 && parse_num(argv[4], 0.1, 3600, &c) == 0 &&
		   parse_num(argv[5], 0.01, 1000, &d) == 0) {
		g = (struct sim_fseg){ .kind = SIM_FSEG_SINE,
				       .f0 = a,
				       .f1 = a,
				       .amp = b,
				       .period = c,
				       .dur = c * d };
	} else {
		return answer(
			ret,
			"error usage: freq hold HZ SECONDS | freq ramp HZ HZ_PER_S | "
			"freq sine CENTER AMP PERIOD CYCLES | freq play | freq stop | freq status");
	}
	q->seg[q->n++] = g;
	return answer(ret, "ok freq %s segment %u %.4f -> %.4f Hz over %.3f s", op, q->n, g.f0,
		      g.f1, g.dur);
}

/* ---- battery control parameters -------------------------------------------- */

static int cmd_battery(struct sim *s, int argc, char **argv, char **ret)
{
	unsigned long dev = 0;
	bool all = argc < 4;
	double v = NAN;

	if (argc < 3)
		return answer(ret,
			      "error usage: battery delay_ms|ramp_w_s|timeout_s|soc_min|soc_max "
			      "VALUE [device] (timeout_s vendor: the vendor's own)");
	if (!all && parse_uint(argv[3], s->ndevs ? s->ndevs - 1 : 0, &dev) < 0)
		return answer(ret, "error no device '%s'", argv[3]);
	const char *k = argv[1];
	bool vendor = !strcmp(k, "timeout_s") && !strcmp(argv[2], "vendor");
	if (!vendor && parse_num(argv[2], 0, 1e9, &v) < 0)
		return answer(ret, "error bad value '%s'", argv[2]);
	if ((!strcmp(k, "soc_min") || !strcmp(k, "soc_max")) && v > 1)
		return answer(ret, "error %s is a fraction 0..1", k);
	for (unsigned i = 0; i < s->ndevs; i++) {
		if (!all && i != dev)
			continue;
		struct sim_device *d = &s->devs[i];
		struct sim_batt_dyn *b = &d->phys.bd;
		if (!strcmp(k, "delay_ms"))
			b->delay_s = v / 1000.0;
		else if (!strcmp(k, "ramp_w_s"))
			b->ramp_w_s = v;
		else if (!strcmp(k, "timeout_s"))
			d->batt_timeout_s = vendor ? NAN : v;
		else if (!strcmp(k, "soc_min"))
			b->soc_min = v;
		else if (!strcmp(k, "soc_max"))
			b->soc_max = v;
		else
			return answer(ret, "error unknown battery parameter '%s'", k);
	}
	return answer(ret, "ok battery %s %s", k, argv[2]);
}

/* ---- trace ------------------------------------------------------------------ */

void sim_trace_sample(struct sim *s, double t)
{
	struct sim_trace *tr = &s->trace;
	if (!tr->on || tr->dev >= s->ndevs)
		return;
	const struct sim_device *d = &s->devs[tr->dev];
	const struct sim_batt_dyn *b = &d->phys.bd;
	if (tr->nsamples == SIM_TRACE_SAMPLES) {
		tr->dropped++;
		return;
	}
	double *row = tr->samples[tr->nsamples++];
	row[0] = t;
	row[1] = d->rd.v[RF_METER_HZ];
	row[2] = sim_phys_batt_remote(&d->phys);
	row[3] = b->on ? b->target_w : d->vals.bat_w;
	row[4] = d->rd.v[RF_BATTERY_W];
	row[5] = d->rd.v[RF_BATTERY_SOC_NOM_FRACT];
}

void sim_trace_command(struct sim *s, const struct sim_device *d, const struct sim_batt_cmd *c)
{
	struct sim_trace *tr = &s->trace;
	if (!tr->on || d->idx != tr->dev)
		return;
	if (tr->ncmds == SIM_TRACE_CMDS) {
		tr->dropped++;
		return;
	}
	double *row = tr->cmds[tr->ncmds++];
	row[0] = c->t;
	row[1] = c->remote;
	row[2] = c->lo_w;
	row[3] = c->hi_w;
}

static json_t *num_or_null(double v, int decimals)
{
	return isfinite(v) ? json_real(reading_round(v, decimals)) : json_null();
}

/* trace on DEV | trace off | trace read (the rows since the last read) */
static int cmd_trace(struct sim *s, int argc, char **argv, char **ret)
{
	struct sim_trace *tr = &s->trace;
	unsigned long dev = 0;

	if (argc >= 2 && !strcmp(argv[1], "on")) {
		if (argc < 3 || parse_uint(argv[2], s->ndevs ? s->ndevs - 1 : 0, &dev) < 0)
			return answer(ret, "error usage: trace on DEVICE");
		if (!tr->samples)
			tr->samples = calloc(SIM_TRACE_SAMPLES, sizeof(tr->samples[0]));
		if (!tr->cmds)
			tr->cmds = calloc(SIM_TRACE_CMDS, sizeof(tr->cmds[0]));
		if (!tr->samples || !tr->cmds)
			return -ENOMEM;
		tr->on = true;
		tr->dev = (unsigned)dev;
		tr->nsamples = tr->ncmds = 0;
		tr->dropped = 0;
		return answer(ret, "ok trace on %lu", dev);
	}
	if (argc >= 2 && !strcmp(argv[1], "off")) {
		tr->on = false;
		return answer(ret, "ok trace off");
	}
	if (argc < 2 || strcmp(argv[1], "read") != 0)
		return answer(ret, "error usage: trace on DEVICE | trace read | trace off");
	json_t *samples = json_array(), *cmds = json_array();
	for (unsigned i = 0; samples && i < tr->nsamples; i++) {
		const double *r = tr->samples[i];
		json_array_append_new(samples,
				      json_pack("[o, o, b, o, o, o]", num_or_null(r[0], 3),
						num_or_null(r[1], 4), r[2] != 0,
						num_or_null(r[3], 1), num_or_null(r[4], 1),
						num_or_null(r[5], 5)));
	}
	for (unsigned i = 0; cmds && i < tr->ncmds; i++) {
		const double *r = tr->cmds[i];
		json_array_append_new(cmds,
				      json_pack("[o, b, o, o]", num_or_null(r[0], 3), r[1] != 0,
						num_or_null(r[2], 1), num_or_null(r[3], 1)));
	}
	json_t *o = json_pack("{s:[s,s,s,s,s,s], s:o, s:[s,s,s,s], s:o, s:I}", "sample_cols", "t",
			      "Hz", "remote", "target_W", "W", "SoC", "samples",
			      samples ? samples : json_array(), "command_cols", "t", "remote",
			      "lo_W", "hi_W", "commands", cmds ? cmds : json_array(), "dropped",
			      (json_int_t)tr->dropped);
	tr->nsamples = tr->ncmds = 0;
	tr->dropped = 0;
	if (!o)
		return -ENOMEM;
	char *txt = json_dumps(o, JSON_COMPACT | READING_JSON_REALS);
	json_decref(o);
	if (!txt)
		return -ENOMEM;
	*ret = txt;
	return 0;
}

static int cmd_help(struct sim *s, int argc, char **argv, char **ret);

static const struct ctl_cmd ctl_cmds[] = {
	{ "fault",
	  "fault timeout|tid|garbage|drop|single-client|night-sleep|heartbeat|"
	  "logger-serial|checksum on|off; "
	  "fault exception N|off; fault slow MS|off",
	  cmd_fault },
	{ "sleep", "sleep on|off", cmd_sleep },
	{ "set",
	  "set <group.field>|hz|soc <value>|off [device]; set serial S [device]; "
	  "set speed X",
	  cmd_set },
	{ "get", "get", cmd_get },
	{ "clear", "clear (faults, sleep, overrides and the frequency sequence)", cmd_clear },
	{ "freeze", "freeze on|off (stop the sim clock)", cmd_freeze },
	{ "freq",
	  "freq hold HZ S | ramp HZ HZ_PER_S | sine CENTER AMP PERIOD CYCLES | play | "
	  "stop | status",
	  cmd_freq },
	{ "battery", "battery delay_ms|ramp_w_s|timeout_s|soc_min|soc_max V [device]",
	  cmd_battery },
	{ "trace", "trace on DEVICE | read | off", cmd_trace },
	{ "help", "help", cmd_help },
};

static int cmd_help(struct sim *s, int argc, char **argv, char **ret)
{
	(void)s;
	(void)argc;
	(void)argv;
	char buf[2048];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "ok commands:");
	for (size_t i = 0; i < ARRAY_SIZE(ctl_cmds) && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " [%s]", ctl_cmds[i].usage);
	return answer(ret, "%s", buf);
}

int sim_ctl_exec(struct sim *s, const char *line, char **ret_answer)
{
	char buf[512];
	char *argv[CTL_MAX_ARGS];
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *save = NULL, *tok = strtok_r(buf, " \t\r\n", &save); tok && argc < CTL_MAX_ARGS;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		argv[argc++] = tok;
	if (argc == 0)
		return answer(ret_answer, "error empty command");
	for (size_t i = 0; i < ARRAY_SIZE(ctl_cmds); i++)
		if (!strcmp(argv[0], ctl_cmds[i].name))
			return ctl_cmds[i].run(s, argc, argv, ret_answer);
	return answer(ret_answer, "error unknown command '%s' (try help)", argv[0]);
}

/* ---- connections -------------------------------------------------------- */

static void ctl_close(struct sim_ctl_conn *c)
{
	if (!c->used)
		return;
	int fd = c->io.fd;
	loop_io_del(c->sim->loop, &c->io);
	close(fd);
	free(c->out);
	c->out = NULL;
	c->used = false;
}

/* Returns 0, or -errno when the connection must close. */
static int ctl_flush(struct sim_ctl_conn *c)
{
	while (c->out && c->outoff < c->outlen) {
		ssize_t n = send(c->io.fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->outoff += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	return 0;
}

static void ctl_conn_cb(struct loop_io *io, uint32_t events)
{
	struct sim_ctl_conn *c = container_of(io, struct sim_ctl_conn, io);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (c->out) {
			/* one command at a time: wait for the answer to drain */
		} else {
			ssize_t n = recv(io->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen,
					 MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				ctl_close(c);
				return;
			}
			if (n > 0)
				c->inlen += (size_t)n;
		}
	}
	while (!c->out) {
		char *nl = memchr(c->in, '\n', c->inlen);
		if (!nl) {
			if (c->inlen >= sizeof(c->in) - 1) {
				ctl_close(c); /* a line longer than any command */
				return;
			}
			break;
		}
		*nl = '\0';
		char *ans = NULL;
		int r = sim_ctl_exec(c->sim, c->in, &ans);
		if (r == -ENOMEM || !ans) {
			ctl_close(c);
			return;
		}
		size_t used = (size_t)(nl - c->in) + 1;
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		size_t len = strlen(ans);
		char *out = realloc(ans, len + 2);
		if (!out) {
			free(ans);
			ctl_close(c);
			return;
		}
		out[len] = '\n';
		out[len + 1] = '\0';
		c->out = out;
		c->outlen = len + 1;
		c->outoff = 0;
		if (ctl_flush(c) < 0) {
			ctl_close(c);
			return;
		}
	}
	loop_io_mod(c->sim->loop, &c->io, c->out ? EPOLLOUT : EPOLLIN);
}

static void ctl_accept_cb(struct loop_io *io, uint32_t events)
{
	(void)events;
	struct sim *s = container_of(io, struct sim, ctl_io);
	for (;;) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct sim_ctl_conn *c = NULL;
		for (unsigned i = 0; i < SIM_MAX_CTL; i++)
			if (!s->ctl[i].used) {
				c = &s->ctl[i];
				break;
			}
		if (!c) {
			close(fd);
			continue;
		}
		*c = (struct sim_ctl_conn){ .sim = s, .used = true };
		if (loop_io_add(s->loop, &c->io, fd, EPOLLIN, ctl_conn_cb) < 0) {
			close(fd);
			c->used = false;
		}
	}
}

int sim_ctl_open(struct sim *s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->ctl_port) };
	int fd, r;

	if (inet_pton(AF_INET, s->ctl_host, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		r = -errno;
		goto out_fd;
	}
	r = loop_io_add(s->loop, &s->ctl_io, fd, EPOLLIN, ctl_accept_cb);
	if (r < 0)
		goto out_fd;
	s->ctl_fd = fd;
	s->ctl_port = ntohs(sa.sin_port);
	fprintf(s->out, "egw-sim: control tcp %s:%d\n", s->ctl_host, s->ctl_port);
	fflush(s->out);
	return 0;
out_fd:
	close(fd);
	return r;
}

void sim_ctl_close(struct sim *s)
{
	free(s->trace.samples);
	free(s->trace.cmds);
	s->trace = (struct sim_trace){ 0 };
	for (unsigned i = 0; i < SIM_MAX_CTL; i++)
		ctl_close(&s->ctl[i]);
	if (s->ctl_fd >= 0) {
		loop_io_del(s->loop, &s->ctl_io);
		close(s->ctl_fd);
		s->ctl_fd = -1;
	}
}
