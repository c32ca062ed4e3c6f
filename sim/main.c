/* egw-sim: command line, wiring, run loop.  See usage() for everything. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "sim/sim.h"

struct spec {
	const struct profile *prof;
	const struct sim_model *model; /* a vendor map that is not a profile name */
	enum sim_kind kind;
	bool have_endpoint;
	unsigned port;
	char path[256];
	uint8_t unit;
	const char *serial;
	enum sim_p1 p1;         /* a P1 meter: the home's grid meter as telegrams */
	bool solarman;          /* served behind a simulated V5 data logger */
	uint32_t logger_serial; /* 0: derived from the device index */
};

struct args {
	struct spec specs[SIM_MAX_DEVICES];
	unsigned nspecs;
	unsigned group; /* first spec of the latest --profile */
	char host[64];
	unsigned baud;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: egw-sim --profile NAME (--port N | --rtu-pty PATH | --rtu-dev PATH)\n"
		"               [--unit-id N] [--serial S] ... [options]\n"
		"\n"
		"Modbus simulator of every egw device profile, with plausible physics and\n"
		"fault injection.  Each --profile starts a device; the --port / --rtu-pty /\n"
		"--rtu-dev / --unit-id / --serial that follow apply to it.  --profile takes a\n"
		"comma list (--profile solaredge,sdm630 --port 5502,5503); a single --port or\n"
		"--unit-id value then applies to every device of the list.  Devices on the\n"
		"same TCP port or serial line are told apart by unit id.\n"
		"\n"
		"Most brands are served from register maps written from the vendor's Modbus\n"
		"document (sim/vendor.c), not from egw's profile tables; variants a profile\n"
		"must tell apart have their own names: sungrow_sg (SG string inverter, read\n"
		"by the sungrow profile), sungrow_nometer (SH hybrid with no meter\n"
		"connected), huawei_hybrid_nometer (the same for a SUN2000 + LUNA2000),\n"
		"solaredge_meter (SolarEdge with its meter 1), ferroamp_nobattery (an\n"
		"EnergyHub without batteries), solis_hybrid_nobattery (a Solis hybrid\n"
		"installed without a battery), and the SunSpec devices read\n"
		"by the generic sunspec profile: sunspec_float (models 113, 120-124),\n"
		"sunspec_float1 (111, 120, 122), sunspec_der (701, 702, 713, 714).  All\n"
		"devices of one egw-sim are one home: every meter sees the house load plus\n"
		"every inverter's AC power.\n"
		"\n"
		"Devices:\n"
		"  --profile NAME[,NAME]  profile to serve (--list-profiles; \"sunspec\" is a\n"
		"                         complete SunSpec map: models 1, 103, 160, 203, 802)\n"
		"                         \"p1\": the home's grid meter as a P1 smart meter,\n"
		"                         a DSMR 5 telegram every second to each client of\n"
		"                         its --port (TCP, like a ser2net bridge), with a gas\n"
		"                         and a water meter on M-Bus channels 1 and 2 (read\n"
		"                         every 5 minutes); \"p1_se\":\n"
		"                         the Swedish HAN variant (totals 1.8.0/2.8.0, no\n"
		"                         tariffs, no identifier).  Fault timeout: the meter\n"
		"                         stops sending\n"
		"  --port N[,N]           Modbus TCP port; 0: the OS picks (see the ready line)\n"
		"  --solarman-port N[,N]  instead of --port: a simulated Solarman V5 data\n"
		"                         logger (the Wi-Fi stick of Deye, Sofar, Solis\n"
		"                         inverters) in front of the device(s): Modbus RTU\n"
		"                         frames inside V5 frames on TCP.  A request for\n"
		"                         another logger serial gets an empty answer under\n"
		"                         the logger's own serial, as a real stick's\n"
		"  --logger-serial S[,S]  the logger's serial number (1..4294967295; default\n"
		"                         2700000000 + endpoint index)\n"
		"  --unit-id N[,N]        unit (slave) id, default 1.  On TCP, unit 0 and 255\n"
		"                         reach a port's only device; an unknown unit gets\n"
		"                         exception 11.  On RTU, unit 0 is a broadcast\n"
		"  --rtu-pty PATH         create a pseudo-terminal, symlink it at PATH, serve\n"
		"                         Modbus RTU on it (a client opens PATH)\n"
		"  --rtu-dev PATH         serve Modbus RTU on an existing tty (a serial\n"
		"                         adapter, or one end of a socat pty pair)\n"
		"  --baud N               line speed for RTU (default 9600)\n"
		"  --serial S             serial number.  Default: \"SIM\" + profile + port\n"
		"                         (+ \"u\" + unit when not 1; \"T\"/\"R\" + device index\n"
		"                         for port 0 and serial lines), cut to the register's\n"
		"                         size; a number for profiles with a numeric serial\n"
		"  --host ADDR            address to listen on (default 127.0.0.1; 0.0.0.0 in\n"
		"                         a container)\n"
		"\n"
		"Physics (deterministic for a given --seed):\n"
		"  --speed X              sim clock speed-up (default 1; 1440 = a day a minute)\n"
		"  --seed N               noise seed (default 1)\n"
		"  --start HH:MM          sim time of day at start (default 12:00)\n"
		"  --rated-w W            PV nameplate power (default 5000)\n"
		"  --battery-wh WH        battery capacity for hybrid profiles (default 10000)\n"
		"  --load-w W             average house load (default 600)\n"
		"  The PV follows a clear-sky day (06:00-20:00) with clouds; MPPT strings\n"
		"  satisfy P = V x I; AC phases ~230 V with A = W/V; the battery charges from\n"
		"  PV surplus and discharges at night (SoC follows its power); the meter sees\n"
		"  load - PV - battery (import positive); energy counters integrate power and\n"
		"  only grow; the grid frequency is 50 Hz with ~10 mHz noise and step/ramp\n"
		"  events of 60-100 mHz, within 49.8-50.2 Hz, updated at 20 Hz.\n"
		"\n"
		"Faults (also at run time through the control interface):\n"
		"  --fault-timeout        read requests, never answer\n"
		"  --fault-exception N    answer every request with exception N\n"
		"  --fault-tid            answer with a wrong transaction id (TCP)\n"
		"  --fault-garbage        answer random bytes\n"
		"  --fault-slow MS        answer after MS milliseconds\n"
		"  --fault-drop           close the connection when a request arrives\n"
		"  --single-client        reset a second concurrent TCP client\n"
		"  --sleep                asleep: TCP connections refused, RTU silent\n"
		"  --fault-heartbeat      logger: a heartbeat frame before every answer\n"
		"  --fault-logger-serial  logger: answer under another serial number\n"
		"  --fault-checksum       logger: a wrong V5 checksum in every answer\n"
		"  (--fault-tid on a logger: the answer's sequence byte is off by one;\n"
		"  --fault-exception: a Modbus exception inside a valid V5 frame)\n"
		"  --night-sleep          inverters asleep while the sun is down, as real ones\n"
		"                         are (an endpoint with only meters stays awake)\n"
		"\n"
		"Control interface (one command per line, one answer line):\n"
		"  --control-port N       listen on 127.0.0.1:N (0: the OS picks)\n"
		"  Commands: fault timeout on|off | fault exception N|off | fault tid on|off |\n"
		"    fault garbage on|off | fault slow MS|off | fault drop on|off |\n"
		"    fault single-client on|off | fault night-sleep on|off | fault\n"
		"    heartbeat|logger-serial|checksum on|off | sleep on|off |\n"
		"    set <group.field> <value>|off [device] (e.g. set pv.W -3000, set hz\n"
		"    49.9, set meter.L1_V 231 1: pins a value until off or clear) |\n"
		"    set serial S [device] | set speed X | freeze on|off (stop the clock) |\n"
		"    get (JSON: sim time, faults, and per device its profile, endpoint, unit,\n"
		"    serial and the served reading in SI units) | clear (faults, sleep,\n"
		"    pinned values, frequency sequence) | help.  Answers: \"ok ...\", JSON,\n"
		"    or \"error ...\".\n"
		"  Grid frequency: freq hold HZ S | freq ramp HZ HZ_PER_S | freq sine CENTRE\n"
		"    AMP PERIOD CYCLES (segments), freq play, freq stop, freq status.\n"
		"  Batteries that obey control registers (sungrow, sungrow_sf, huawei_hybrid,\n"
		"    sunspec_storage; doc/sim-battery.md): battery delay_ms|ramp_w_s|\n"
		"    timeout_s|soc_min|soc_max VALUE [device]; trace on DEVICE | trace read |\n"
		"    trace off (20 Hz samples and the commands the battery took).\n"
		"\n"
		"Other:\n"
		"  --print-port           accepted for compatibility: the ready lines below\n"
		"                         are always printed\n"
		"  --list-profiles        print the profile names and exit\n"
		"  --log-level LEVEL      error, warn, info (default), debug\n"
		"  --help, --version\n"
		"\n"
		"When ready, egw-sim prints on stdout one line per device\n"
		"  egw-sim: listening <profile> tcp <host>:<port> unit <id>\n"
		"  egw-sim: listening <profile> rtu <path> unit <id>\n"
		"  (behind a simulated logger the line ends \"solarman <logger serial>\")\n"
		"  (a device variant adds \"profile <name>\": the egw profile that reads it)\n"
		"then \"egw-sim: control tcp 127.0.0.1:<port>\" and \"egw-sim: ready\".\n"
		"SIGINT/SIGTERM stop it (pty symlinks are removed).\n"
		"\n"
		"Example: egw-sim --profile solaredge --port 5502 --profile sdm630 --port 5503 \\\n"
		"           --unit-id 2 --control-port 5510 --speed 60\n");
}

static void list_profiles(void)
{
	unsigned n = 0;
	const struct profile *const *all = profile_all(&n);
	bool sunspec = false;
	for (unsigned i = 0; i < n; i++) {
		printf("%s\n", all[i]->name);
		sunspec |= !strcmp(all[i]->name, "sunspec");
	}
	if (!sunspec && profile_find("sunspec"))
		printf("sunspec\n");
	/* device variants served from a vendor map, read by another profile */
	const struct sim_model *const *models = sim_model_all(&n);
	for (unsigned i = 0; i < n; i++)
		if (!profile_find(models[i]->name))
			printf("%s\n", models[i]->name);
}

static int parse_num(const char *s, double lo, double hi, double *ret)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Split a comma list into at most `cap` items (modifies s). */
static unsigned split(char *s, char **items, unsigned cap)
{
	unsigned n = 0;
	for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < cap;
	     t = strtok_r(NULL, ",", &save))
		items[n++] = t;
	return n;
}

/* Apply a per-device option value list to the latest --profile group. */
static int apply_list(struct args *a, const char *opt, const char *val, double lo, double hi,
		      void (*set)(struct spec *sp, double v))
{
	char buf[512], *items[SIM_MAX_DEVICES];
	unsigned ng = a->nspecs - a->group;
	if (ng == 0) {
		fprintf(stderr, "egw-sim: %s must follow a --profile\n", opt);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", val);
	unsigned n = split(buf, items, SIM_MAX_DEVICES);
	if (n != 1 && n != ng) {
		fprintf(stderr, "egw-sim: %s has %u values for %u profiles\n", opt, n, ng);
		return -EINVAL;
	}
	for (unsigned i = 0; i < ng; i++) {
		double v;
		if (parse_num(items[n == 1 ? 0 : i], lo, hi, &v) < 0) {
			fprintf(stderr, "egw-sim: bad %s '%s'\n", opt, items[n == 1 ? 0 : i]);
			return -EINVAL;
		}
		set(&a->specs[a->group + i], v);
	}
	return 0;
}

static void set_port(struct spec *sp, double v)
{
	sp->kind = SIM_TCP;
	sp->port = (unsigned)v;
	sp->have_endpoint = true;
}

static void set_solarman_port(struct spec *sp, double v)
{
	set_port(sp, v);
	sp->solarman = true;
}

static void set_logger_serial(struct spec *sp, double v)
{
	sp->logger_serial = (uint32_t)v;
}

static void set_unit(struct spec *sp, double v)
{
	sp->unit = (uint8_t)v;
}

enum {
	OPT_PROFILE = 256,
	OPT_PORT,
	OPT_UNIT,
	OPT_RTU_PTY,
	OPT_RTU_DEV,
	OPT_BAUD,
	OPT_SERIAL,
	OPT_HOST,
	OPT_SPEED,
	OPT_SEED,
	OPT_START,
	OPT_RATED,
	OPT_BATT,
	OPT_LOAD,
	OPT_F_TIMEOUT,
	OPT_F_EXC,
	OPT_F_TID,
	OPT_F_GARBAGE,
	OPT_F_SLOW,
	OPT_F_DROP,
	OPT_SINGLE,
	OPT_SLEEP,
	OPT_NIGHT,
	OPT_CTL,
	OPT_PRINT,
	OPT_LIST,
	OPT_LOG,
	OPT_HELP,
	OPT_VERSION,
	OPT_SOLARMAN_PORT,
	OPT_LOGGER_SERIAL,
	OPT_F_HEARTBEAT,
	OPT_F_LSERIAL,
	OPT_F_CHECKSUM,
};

static const struct option long_opts[] = {
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "unit-id", required_argument, NULL, OPT_UNIT },
	{ "rtu-pty", required_argument, NULL, OPT_RTU_PTY },
	{ "rtu-dev", required_argument, NULL, OPT_RTU_DEV },
	{ "baud", required_argument, NULL, OPT_BAUD },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "speed", required_argument, NULL, OPT_SPEED },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "start", required_argument, NULL, OPT_START },
	{ "rated-w", required_argument, NULL, OPT_RATED },
	{ "battery-wh", required_argument, NULL, OPT_BATT },
	{ "load-w", required_argument, NULL, OPT_LOAD },
	{ "fault-timeout", no_argument, NULL, OPT_F_TIMEOUT },
	{ "fault-exception", required_argument, NULL, OPT_F_EXC },
	{ "fault-tid", no_argument, NULL, OPT_F_TID },
	{ "fault-garbage", no_argument, NULL, OPT_F_GARBAGE },
	{ "fault-slow", required_argument, NULL, OPT_F_SLOW },
	{ "fault-drop", no_argument, NULL, OPT_F_DROP },
	{ "single-client", no_argument, NULL, OPT_SINGLE },
	{ "sleep", no_argument, NULL, OPT_SLEEP },
	{ "night-sleep", no_argument, NULL, OPT_NIGHT },
	{ "control-port", required_argument, NULL, OPT_CTL },
	{ "print-port", no_argument, NULL, OPT_PRINT },
	{ "list-profiles", no_argument, NULL, OPT_LIST },
	{ "log-level", required_argument, NULL, OPT_LOG },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "solarman-port", required_argument, NULL, OPT_SOLARMAN_PORT },
	{ "logger-serial", required_argument, NULL, OPT_LOGGER_SERIAL },
	{ "fault-heartbeat", no_argument, NULL, OPT_F_HEARTBEAT },
	{ "fault-logger-serial", no_argument, NULL, OPT_F_LSERIAL },
	{ "fault-checksum", no_argument, NULL, OPT_F_CHECKSUM },
	{ 0 },
};

/* Returns 0 to run, 1 to exit successfully, -EINVAL on a usage error. */
static int parse_args(int argc, char **argv, struct args *a, struct sim *s, double *speed)
{
	int c;
	double v;

	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PROFILE: {
			char buf[512], *items[SIM_MAX_DEVICES];
			snprintf(buf, sizeof(buf), "%s", optarg);
			unsigned n = split(buf, items, SIM_MAX_DEVICES);
			if (n == 0 || a->nspecs + n > SIM_MAX_DEVICES) {
				fprintf(stderr, "egw-sim: at most %d devices\n", SIM_MAX_DEVICES);
				return -EINVAL;
			}
			a->group = a->nspecs;
			for (unsigned i = 0; i < n; i++) {
				enum sim_p1 p1 = !strcmp(items[i], "p1") ? SIM_P1_DSMR5
					: !strcmp(items[i], "p1_se")     ? SIM_P1_SE
									 : SIM_P1_NONE;
				/* a P1 meter measures like the SDM630 (the home's grid meter) */
				const struct profile *p = profile_find(p1 ? "sdm630" : items[i]);
				const struct sim_model *m =
					p || p1 ? NULL : sim_model_find(items[i]);
				if (m)
					p = profile_find(m->profile);
				if (!p) {
					fprintf(stderr,
						"egw-sim: unknown profile '%s' "
						"(--list-profiles)\n",
						items[i]);
					return -EINVAL;
				}
				a->specs[a->nspecs++] =
					(struct spec){ .prof = p, .model = m, .unit = 1, .p1 = p1 };
			}
			break;
		}
		case OPT_PORT:
			if (apply_list(a, "--port", optarg, 0, 65535, set_port) < 0)
				return -EINVAL;
			break;
		case OPT_SOLARMAN_PORT:
			if (apply_list(a, "--solarman-port", optarg, 0, 65535, set_solarman_port) <
			    0)
				return -EINVAL;
			break;
		case OPT_LOGGER_SERIAL:
			if (apply_list(a, "--logger-serial", optarg, 1, 4294967295.0,
				       set_logger_serial) < 0)
				return -EINVAL;
			break;
		case OPT_F_HEARTBEAT:
			s->faults.heartbeat = true;
			break;
		case OPT_F_LSERIAL:
			s->faults.logger_serial = true;
			break;
		case OPT_F_CHECKSUM:
			s->faults.checksum = true;
			break;
		case OPT_UNIT:
			if (apply_list(a, "--unit-id", optarg, 0, 247, set_unit) < 0)
				return -EINVAL;
			break;
		case OPT_RTU_PTY:
		case OPT_RTU_DEV:
			if (a->nspecs == a->group || strlen(optarg) >= sizeof(a->specs[0].path)) {
				fprintf(stderr, "egw-sim: %s must follow a --profile\n",
					c == OPT_RTU_PTY ? "--rtu-pty" : "--rtu-dev");
				return -EINVAL;
			}
			for (unsigned i = a->group; i < a->nspecs; i++) {
				a->specs[i].kind = c == OPT_RTU_PTY ? SIM_RTU_PTY : SIM_RTU_DEV;
				snprintf(a->specs[i].path, sizeof(a->specs[i].path), "%s", optarg);
				a->specs[i].have_endpoint = true;
			}
			break;
		case OPT_SERIAL:
			if (a->nspecs == a->group) {
				fprintf(stderr, "egw-sim: --serial must follow a --profile\n");
				return -EINVAL;
			}
			if (strlen(optarg) > SIM_SERIAL_MAX) {
				fprintf(stderr, "egw-sim: serial longer than %d\n", SIM_SERIAL_MAX);
				return -EINVAL;
			}
			for (unsigned i = a->group; i < a->nspecs; i++)
				a->specs[i].serial = optarg;
			break;
		case OPT_BAUD:
			if (parse_num(optarg, 1200, 115200, &v) < 0)
				goto bad;
			a->baud = (unsigned)v;
			break;
		case OPT_HOST:
			snprintf(a->host, sizeof(a->host), "%s", optarg);
			break;
		case OPT_SPEED:
			if (parse_num(optarg, 1e-3, 1e6, speed) < 0)
				goto bad;
			break;
		case OPT_SEED:
			if (parse_num(optarg, 0, 1e15, &v) < 0)
				goto bad;
			s->seed = (uint64_t)v;
			break;
		case OPT_START: {
			unsigned hh, mm;
			char tail;
			if (sscanf(optarg, "%u:%u%c", &hh, &mm, &tail) != 2 || hh > 23 || mm > 59)
				goto bad;
			s->base_cfg.start_tod_s = hh * 3600.0 + mm * 60.0;
			break;
		}
		case OPT_RATED:
			if (parse_num(optarg, 1, 1e8, &s->base_cfg.rated_w) < 0)
				goto bad;
			break;
		case OPT_BATT:
			if (parse_num(optarg, 0, 1e8, &s->base_cfg.batt_capacity_wh) < 0)
				goto bad;
			break;
		case OPT_LOAD:
			if (parse_num(optarg, 0, 1e7, &s->base_cfg.load_base_w) < 0)
				goto bad;
			break;
		case OPT_F_TIMEOUT:
			s->faults.timeout = true;
			break;
		case OPT_F_TID:
			s->faults.tid = true;
			break;
		case OPT_F_GARBAGE:
			s->faults.garbage = true;
			break;
		case OPT_F_DROP:
			s->faults.drop = true;
			break;
		case OPT_SINGLE:
			s->faults.single_client = true;
			break;
		case OPT_SLEEP:
			s->faults.sleep = true;
			break;
		case OPT_NIGHT:
			s->faults.night_sleep = true;
			break;
		case OPT_F_EXC:
			if (parse_num(optarg, 0, 255, &v) < 0)
				goto bad;
			s->faults.exception = (uint8_t)v;
			break;
		case OPT_F_SLOW:
			if (parse_num(optarg, 0, 600000, &v) < 0)
				goto bad;
			s->faults.slow_ms = (unsigned)v;
			break;
		case OPT_CTL:
			if (parse_num(optarg, 0, 65535, &v) < 0)
				goto bad;
			s->ctl_port = (int)v;
			break;
		case OPT_PRINT:
			break;
		case OPT_LIST:
			list_profiles();
			return 1;
		case OPT_LOG: {
			int lvl = log_parse_level(optarg);
			if (lvl < 0)
				goto bad;
			log_set_level((enum log_level)lvl);
			break;
		}
		case OPT_HELP:
			usage(stdout);
			return 1;
		case OPT_VERSION:
			printf("egw-sim %s\n", EGW_VERSION);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "egw-sim: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (a->nspecs == 0) {
		fprintf(stderr,
			"egw-sim: nothing to serve: give --profile NAME --port N "
			"(egw-sim --help)\n");
		return -EINVAL;
	}
	for (unsigned i = 0; i < a->nspecs; i++) {
		if (a->specs[i].p1 && a->specs[i].solarman) {
			fprintf(stderr,
				"egw-sim: a p1 meter sends telegrams, not through a logger\n");
			return -EINVAL;
		}
		if (a->specs[i].p1 && a->specs[i].kind != SIM_TCP) {
			fprintf(stderr, "egw-sim: a p1 meter is served on --port only\n");
			return -EINVAL;
		}
		if (!a->specs[i].have_endpoint) {
			fprintf(stderr,
				"egw-sim: profile %s needs --port, --rtu-pty or --rtu-dev\n",
				a->specs[i].prof->name);
			return -EINVAL;
		}
	}
	return 0;
bad:
	fprintf(stderr, "egw-sim: bad value for --%s: '%s'\n", long_opts[c - OPT_PROFILE].name,
		optarg);
	return -EINVAL;
}

/* Group the device specs into endpoints: one per TCP port (each port 0 its
 * own), one per serial path.  Returns 0 or -EINVAL (a unit used twice on
 * one endpoint, too many endpoints). */
static int build(struct sim *s, const struct args *a)
{
	for (unsigned i = 0; i < a->nspecs; i++) {
		const struct spec *sp = &a->specs[i];
		struct sim_port *p = NULL;
		for (unsigned j = 0; j < s->nports; j++) {
			struct sim_port *q = &s->ports[j];
			if (q->kind != sp->kind || q->p1 || sp->p1)
				continue; /* a P1 meter has its line alone */
			if (q->solarman != (sp->kind == SIM_TCP && sp->solarman))
				continue; /* a port speaks Modbus TCP or V5, not both */
			if ((sp->kind == SIM_TCP && sp->port != 0 && q->port == sp->port) ||
			    (sp->kind != SIM_TCP && !strcmp(q->path, sp->path))) {
				p = q;
				break;
			}
		}
		if (!p) {
			if (s->nports == SIM_MAX_PORTS)
				return -EINVAL;
			p = &s->ports[s->nports++];
			*p = (struct sim_port){ .sim = s,
						.kind = sp->kind,
						.port = (uint16_t)sp->port,
						.baud = a->baud ? a->baud : 9600,
						.fd = -1,
						.keep_fd = -1 };
			snprintf(p->host, sizeof(p->host), "%s", a->host);
			snprintf(p->path, sizeof(p->path), "%s", sp->path);
			p->p1 = sp->p1;
			if (sp->kind == SIM_TCP && sp->solarman) {
				p->solarman = true;
				/* a plausible 10-digit serial, one per logger */
				p->logger_serial = sp->logger_serial
					? sp->logger_serial
					: 2700000000u + (uint32_t)s->nports;
			}
		}
		for (unsigned j = 0; j < p->ndevs; j++) {
			if (p->devs[j]->unit == sp->unit) {
				fprintf(stderr, "egw-sim: unit %u used twice on one endpoint\n",
					sp->unit);
				return -EINVAL;
			}
		}
		struct sim_device *d = &s->devs[s->ndevs];
		d->idx = s->ndevs;
		char tag[32];
		if (sp->kind == SIM_TCP && sp->port)
			snprintf(tag, sizeof(tag), "%u", sp->port);
		else
			snprintf(tag, sizeof(tag), "%c%u", sp->kind == SIM_TCP ? 'T' : 'R', i);
		if (sp->unit != 1 && strlen(tag) < sizeof(tag) - 4)
			snprintf(tag + strlen(tag), sizeof(tag) - strlen(tag), "u%u", sp->unit);
		int r = sp->model
			? sim_device_init_model(s, d, sp->model, sp->unit, sp->serial, tag)
			: sim_device_init(s, d, sp->prof, sp->unit, sp->serial, tag);
		if (r < 0) {
			sim_device_fini(d);
			fprintf(stderr, "egw-sim: device %s: %s\n", sp->prof->name,
				egw_strerror(r));
			return r;
		}
		s->ndevs++;
		d->port = p;
		p->devs[p->ndevs++] = d;
	}
	return 0;
}

static int tick_run(struct task *t, usec_t now)
{
	struct sim *s = container_of(t, struct sim, tick);
	double st = sim_clock_t(&s->clock, now);
	int r = sim_home_update(s, st);
	if (r < 0)
		return r;
	sim_trace_sample(s, st);
	sim_update_sleep(s);
	return 0;
}

static void on_signal(struct loop *l, int signo, void *ud)
{
	(void)signo;
	(void)ud;
	loop_stop(l);
}

int main(int argc, char **argv)
{
	static struct sim sim; /* large (buffers): not on the stack */
	static struct args args;
	struct sim *s = &sim;
	double speed = 1.0;
	int r, rc = 1;

	/* field by field: a compound literal would write (and so map) all of
	 * the zeroed connection buffers of every possible endpoint */
	s->seed = 1;
	s->base_cfg = SIM_PHYS_CFG_DEFAULT;
	s->ctl_port = -1;
	s->ctl_fd = -1;
	s->out = stdout;
	snprintf(s->ctl_host, sizeof(s->ctl_host), "127.0.0.1");
	snprintf(args.host, sizeof(args.host), "127.0.0.1");
	/* a reader of our stdout may go away; writes then fail, not kill us */
	signal(SIGPIPE, SIG_IGN);
	r = parse_args(argc, argv, &args, s, &speed);
	if (r != 0)
		return r > 0 ? 0 : 2;
	s->rng = s->seed * 0x9E3779B97F4A7C15ULL + 1;

	r = loop_new(&s->loop);
	if (r < 0) {
		fprintf(stderr, "egw-sim: event loop: %s\n", egw_strerror(r));
		return 1;
	}
	r = loop_on_signal(s->loop, on_signal, s);
	if (r < 0)
		goto out_loop;
	sim_clock_init(&s->clock, now_usec(), speed);
	r = build(s, &args);
	if (r < 0)
		goto out_devs;
	for (unsigned i = 0; i < s->nports; i++) {
		struct sim_port *p = &s->ports[i];
		r = sim_port_open(p);
		if (r < 0) {
			fprintf(stderr, "egw-sim: cannot open %s %s%s%u: %s\n",
				p->kind == SIM_TCP ? "tcp" : "rtu",
				p->kind == SIM_TCP ? p->host : p->path,
				p->kind == SIM_TCP ? ":" : "", p->kind == SIM_TCP ? p->port : 0,
				egw_strerror(r));
			goto out_ports;
		}
	}
	if (s->ctl_port >= 0) {
		r = sim_ctl_open(s);
		if (r < 0) {
			fprintf(stderr, "egw-sim: control port %d: %s\n", s->ctl_port,
				egw_strerror(r));
			goto out_ports;
		}
	}
	s->tick = (struct task){ .name = "sim-physics",
				 .run = tick_run,
				 .period = SIM_TICK_USEC,
				 .idx = SCHED_NOT_QUEUED };
	r = loop_task_add(s->loop, &s->tick, loop_now(s->loop) + SIM_TICK_USEC);
	if (r < 0)
		goto out_ctl;
	sim_update_sleep(s);
	fprintf(s->out, "egw-sim: ready\n");
	fflush(s->out);
	log_info("sim", "%u device(s) on %u endpoint(s), speed %g, seed %llu", s->ndevs, s->nports,
		 speed, (unsigned long long)s->seed);
	r = loop_run(s->loop);
	if (r < 0)
		log_error("sim", "event loop: %s", egw_strerror(r));
	else
		rc = 0;
	loop_task_cancel(s->loop, &s->tick);
out_ctl:
	sim_ctl_close(s);
out_ports:
	for (unsigned i = 0; i < s->nports; i++)
		sim_port_close(&s->ports[i]);
out_devs:
	for (unsigned i = 0; i < s->ndevs; i++)
		sim_device_fini(&s->devs[i]);
out_loop:
	loop_free(s->loop);
	return rc;
}
