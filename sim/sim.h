/* egw-sim internals: simulated devices, the Modbus servers that expose
 * them (TCP listeners, RTU on a pty or a tty), fault injection and the
 * control interface.
 *
 * One struct sim holds everything (no globals).  Each device owns a
 * physics model, a register image encoded from it by its profile, the
 * registers written by clients and field overrides set through the
 * control interface.  Devices sharing a TCP port or a serial line are told
 * apart by unit id.  Faults are simulator-wide.
 *
 * A TCP endpoint may instead be a simulated Solarman V5 data logger (the
 * Wi-Fi stick of Deye, Sofar, Solis inverters): the Modbus RTU frames of
 * its devices travel inside V5 frames (src/modbus/solarman.h), with the
 * logger's faults (heartbeats, another serial, a bad checksum) on top of
 * the simulator's own.
 *
 * Limits (fixed, counted): SIM_MAX_DEVICES devices, SIM_MAX_PORTS
 * endpoints, SIM_MAX_CONNS TCP connections per endpoint,
 * SIM_MAX_CTL control connections, SIM_MAX_WRITES remembered writes per
 * device. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "loop/loop.h"
#include "modbus/codec.h"
#include "profiles/profile.h"
#include "profiles/reading.h"
#include "sim/physics.h"
#include "sim/vendor.h"

#define SIM_MAX_DEVICES 32
#define SIM_MAX_PORTS 32
#define SIM_MAX_CONNS 64
#define SIM_MAX_CTL 8
#define SIM_MAX_WRITES 256
#define SIM_SERIAL_MAX 40
#define SIM_TICK_USEC (50 * USEC_PER_MSEC) /* physics at 20 Hz */

enum sim_kind { SIM_TCP, SIM_RTU_PTY, SIM_RTU_DEV };

/* A P1 smart meter: the port streams telegrams instead of serving Modbus. */
enum sim_p1 { SIM_P1_NONE, SIM_P1_DSMR5, SIM_P1_SE };
#define SIM_P1_INTERVAL_USEC USEC_PER_SEC

struct sim_faults {
	bool timeout;       /* read requests, never answer */
	uint8_t exception;  /* 0: off; else answer every request with it */
	bool tid;           /* TCP: answer with a wrong transaction id */
	bool garbage;       /* answer random bytes instead of the response */
	unsigned slow_ms;   /* delay every answer */
	bool drop;          /* close the connection when a request arrives */
	bool single_client; /* TCP: refuse a second concurrent client */
	bool sleep;         /* asleep: TCP refused (listener closed), RTU silent */
	bool night_sleep;   /* sleep automatically while the sun is down */
	/* a Solarman V5 logger's endpoints (sim_port.solarman) */
	bool heartbeat;     /* a heartbeat frame before every answer */
	bool logger_serial; /* answer under another logger serial number */
	bool checksum;      /* a wrong V5 checksum in every answer */
};

struct sim_write {
	uint16_t addr;
	uint16_t value;
};

struct sim_port;

struct sim_device {
	unsigned idx;
	const struct profile *prof;    /* the egw profile that reads it (names, MEI) */
	const struct sim_model *model; /* its vendor map; NULL: served from prof's table */
	struct sim_port *port;
	uint8_t unit;
	char serial[SIM_SERIAL_MAX + 1];
	struct sim_phys phys;
	struct sim_values vals;
	struct reading rd;     /* served values (physics + overrides) */
	double home_load_w;    /* the shared house load of the last sim_home_update */
	double home_t;         /* its time (NAN before the first) */
	double home_import_wh; /* grid energy through this device's meter point, */
	double home_export_wh; /* integrated from the home's meter.W */
	double ovr[RF_COUNT];  /* NAN: not overridden */
	struct regimage *img;
	struct sim_write writes[SIM_MAX_WRITES];
	unsigned nwrites;
	double batt_timeout_s;   /* remote-control timeout; NAN: the vendor's */
	uint64_t requests;       /* answered or faulted */
	uint64_t write_requests; /* write requests (06, 16) acknowledged */
};

struct sim_conn {
	struct sim_port *port;
	struct loop_io io;
	struct task slow; /* delayed answer */
	uint8_t rx[4 * MB_TCP_ADU_MAX];
	size_t rxlen;
	uint8_t tx[16 * MB_TCP_ADU_MAX];
	size_t txlen;
	size_t held; /* bytes of tx held back by the slow fault */
	bool used;
};

struct sim_port {
	struct sim *sim;
	enum sim_kind kind;
	char host[64];
	uint16_t port;  /* TCP: requested, then bound */
	char path[256]; /* RTU: symlink (pty) or device path */
	char pts[64];   /* RTU pty: the slave's real name */
	unsigned baud;
	int fd;      /* listener, pty master or tty; -1 when closed */
	int keep_fd; /* pty slave held open so the master never hangs up */
	struct loop_io io;
	struct task rtu_flush; /* RTU: drop a partial frame after silence */
	struct task slow;      /* RTU: the delayed answer of the slow fault */
	uint8_t pending[MB_RTU_ADU_MAX + 8];
	size_t npending;
	struct sim_conn conns[SIM_MAX_CONNS];
	unsigned nconns;
	/* RTU line state */
	uint8_t rx[4 * MB_RTU_ADU_MAX];
	size_t rxlen;
	struct sim_device *devs[SIM_MAX_DEVICES];
	unsigned ndevs;
	bool asleep;            /* TCP: listener closed; RTU: silent */
	enum sim_p1 p1;         /* telegrams of devs[0] every second to each client */
	bool solarman;          /* TCP: a Solarman V5 data logger in front of devs */
	uint32_t logger_serial; /* its serial number */
	uint8_t v5_seq;         /* its own frame counter (second sequence byte) */
	usec_t v5_started;      /* when it "powered on" (the time fields) */
	struct task p1_task;
	uint64_t p1_sent; /* telegrams written */
};

struct sim_ctl_conn {
	struct sim *sim;
	struct loop_io io;
	char in[512];
	size_t inlen;
	char *out; /* pending answer (malloc), NULL when idle */
	size_t outlen, outoff;
	bool used;
};

/* A played frequency sequence (grid-wide: every device's meter.Hz):
 * segments one after the other from sim time t0; after the last one the
 * frequency holds at its end value until the sequence is stopped. */
enum sim_fseg_kind { SIM_FSEG_HOLD, SIM_FSEG_RAMP, SIM_FSEG_SINE };
#define SIM_FSEQ_MAX 256
struct sim_fseg {
	enum sim_fseg_kind kind;
	double f0, f1;      /* start and end frequency, Hz */
	double dur;         /* s */
	double amp, period; /* sine: f = f0 + amp sin(2 pi t / period) */
};
struct sim_fseq {
	struct sim_fseg seg[SIM_FSEQ_MAX];
	unsigned n;
	bool playing;
	double t0;
};

/* The 10 Hz-or-better record of one battery device for the step tests:
 * a sample per physics tick and every command the device took. */
#define SIM_TRACE_SAMPLES 8192
#define SIM_TRACE_CMDS 2048
struct sim_trace {
	bool on;
	unsigned dev;
	double (*samples)[6]; /* t, Hz, remote, target W, W, SoC */
	unsigned nsamples;
	double (*cmds)[4]; /* t, remote, lo W, hi W */
	unsigned ncmds;
	uint64_t dropped;
};

struct sim {
	struct loop *loop;
	struct sim_fseq fseq;
	struct sim_trace trace;
	struct sim_clock clock;
	struct sim_faults faults;
	bool asleep; /* some endpoint is asleep (manual or night) */
	uint64_t seed;
	struct sim_phys_cfg base_cfg;
	struct task tick;
	uint64_t rng; /* garbage bytes */
	struct sim_device devs[SIM_MAX_DEVICES];
	unsigned ndevs;
	struct sim_port ports[SIM_MAX_PORTS];
	unsigned nports;
	/* control interface */
	char ctl_host[64];
	int ctl_port; /* -1: none */
	int ctl_fd;
	struct loop_io ctl_io;
	struct sim_ctl_conn ctl[SIM_MAX_CTL];
	FILE *out; /* readiness lines */
};

/* device.c: the simulated devices. */

/* Set up device d of s for profile prof (serial NULL: derived from the
 * profile and `tag`), served from the vendor map of the same name when
 * there is one (vendor.h), else from the profile's table.  Returns 0,
 * -ENOMEM or -EINVAL. */
int sim_device_init(struct sim *s, struct sim_device *d, const struct profile *prof, uint8_t unit,
		    const char *serial, const char *tag);
/* The same for vendor map m (e.g. "sungrow_sg", read by profile m->profile). */
int sim_device_init_model(struct sim *s, struct sim_device *d, const struct sim_model *m,
			  uint8_t unit, const char *serial, const char *tag);
void sim_device_fini(struct sim_device *d);
/* Advance the physics to sim time t and re-encode the register image.
 * Returns 0 or -errno. */
int sim_device_update(struct sim_device *d, double t);
/* Answer request q (already parsed, unit matched) into pdu_out.  Returns the
 * PDU length (an exception PDU for illegal requests), or -errno. */
int sim_device_handle(struct sim_device *d, const struct mb_request *q, uint8_t *pdu_out,
		      size_t cap);
/* One simulated home: advance every device of s to sim time t, then make
 * every meter reading (each device's meter.W and phase powers) the house's
 * grid exchange, import positive: the house load (the first device's) plus
 * every inverter's inverter.W (generation negative), so PV, batteries, load
 * and meters obey one energy balance.  Then re-encode every device.
 * Returns 0 or -errno. */
int sim_home_update(struct sim *s, double t);
/* Pin field f (enum reading_field) to value (NAN: release).  */
void sim_device_override(struct sim_device *d, int f, double value);
/* {"index":..,"profile":..,"unit":..,"serial":..,"reading":{..},...}; NULL on ENOMEM. */
json_t *sim_device_json(const struct sim_device *d);

/* server.c: endpoints and fault injection. */

/* Open endpoint p (listen, or open the pty / tty) and print its readiness
 * lines.  Returns 0 or -errno. */
int sim_port_open(struct sim_port *p);
void sim_port_close(struct sim_port *p);
/* Recompute the sleep state from the sleep fault and the night. */
void sim_update_sleep(struct sim *s);
/* Close every TCP client connection (fault drop, sleep). */
void sim_port_drop_all(struct sim_port *p);

/* p1.c: the telegram of meter d (its served meter values) at wall time now,
 * in buf.  Returns its length or -ENOSPC. */
int sim_p1_telegram(const struct sim_device *d, unsigned variant, time_t now, char *buf,
		    size_t cap);

/* The frequency of sequence q at sim time t (q->playing). */
double sim_fseq_hz(const struct sim_fseq *q, double t);

/* control.c: the line-based control interface on loopback. */

/* Record one trace sample at sim time t (a no-op unless tracing). */
void sim_trace_sample(struct sim *s, double t);
/* Record a command device d took (a no-op unless d is traced). */
void sim_trace_command(struct sim *s, const struct sim_device *d, const struct sim_batt_cmd *c);

/* Listen on s->ctl_host:s->ctl_port.  Returns 0 or -errno. */
int sim_ctl_open(struct sim *s);
void sim_ctl_close(struct sim *s);
/* Execute one command line.  *ret_answer gets a malloc'd answer line
 * without newline: "ok ...", JSON for `get`, or "error ..." (then the
 * return is -EINVAL).  Returns 0, -EINVAL or -ENOMEM. */
int sim_ctl_exec(struct sim *s, const char *line, char **ret_answer);
