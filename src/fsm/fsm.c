#include "fsm/fsm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/time.h"
#include "base/util.h"

#define B(s) (uint8_t)(1u << (s))

static const char *const gw_names[] = {
	[GW_STARTING] = "starting", [GW_NO_DEVICE] = "no device", [GW_RUNNING] = "running",
	[GW_DEGRADED] = "degraded", [GW_STOPPING] = "stopping",
};
_Static_assert(ARRAY_SIZE(gw_names) == GW_STATE_COUNT, "one name per gateway state");

static const uint8_t gw_allowed[] = {
	[GW_STARTING] = B(GW_NO_DEVICE) | B(GW_RUNNING) | B(GW_DEGRADED) | B(GW_STOPPING),
	[GW_NO_DEVICE] = B(GW_RUNNING) | B(GW_DEGRADED) | B(GW_STOPPING),
	[GW_RUNNING] = B(GW_NO_DEVICE) | B(GW_DEGRADED) | B(GW_STOPPING),
	[GW_DEGRADED] = B(GW_NO_DEVICE) | B(GW_RUNNING) | B(GW_STOPPING),
	[GW_STOPPING] = 0, /* final */
};
_Static_assert(ARRAY_SIZE(gw_allowed) == GW_STATE_COUNT, "one row per gateway state");

const struct fsm_def fsm_gateway_def = {
	.name = "gateway",
	.nstates = GW_STATE_COUNT,
	.state_names = gw_names,
	.allowed = gw_allowed,
};

static const char *const dev_names[] = {
	[FSM_DEV_DISCONNECTED] = "disconnected", [FSM_DEV_CONNECTING] = "connecting",
	[FSM_DEV_IDENTIFYING] = "identifying",   [FSM_DEV_POLLING] = "polling",
	[FSM_DEV_BACKING_OFF] = "backing off",   [FSM_DEV_ASLEEP] = "asleep",
};
_Static_assert(ARRAY_SIZE(dev_names) == FSM_DEV_STATE_COUNT, "one name per device state");

static const uint8_t dev_allowed[] = {
	[FSM_DEV_DISCONNECTED] = B(FSM_DEV_CONNECTING) | B(FSM_DEV_ASLEEP),
	[FSM_DEV_CONNECTING] = B(FSM_DEV_IDENTIFYING) | B(FSM_DEV_BACKING_OFF) | B(FSM_DEV_ASLEEP) |
		B(FSM_DEV_DISCONNECTED),
	[FSM_DEV_IDENTIFYING] =
		B(FSM_DEV_POLLING) | B(FSM_DEV_BACKING_OFF) | B(FSM_DEV_DISCONNECTED),
	/* polling -> identifying: re-check the serial after a reconnect */
	[FSM_DEV_POLLING] = B(FSM_DEV_IDENTIFYING) | B(FSM_DEV_BACKING_OFF) | B(FSM_DEV_ASLEEP) |
		B(FSM_DEV_DISCONNECTED),
	[FSM_DEV_BACKING_OFF] = B(FSM_DEV_CONNECTING) | B(FSM_DEV_ASLEEP) | B(FSM_DEV_DISCONNECTED),
	[FSM_DEV_ASLEEP] = B(FSM_DEV_CONNECTING) | B(FSM_DEV_DISCONNECTED),
};
_Static_assert(ARRAY_SIZE(dev_allowed) == FSM_DEV_STATE_COUNT, "one row per device state");

const struct fsm_def fsm_device_def = {
	.name = "device",
	.nstates = FSM_DEV_STATE_COUNT,
	.state_names = dev_names,
	.allowed = dev_allowed,
};

_Static_assert(GW_STATE_COUNT <= FSM_MAX_STATES && FSM_DEV_STATE_COUNT <= FSM_MAX_STATES,
	       "fsm tables fit FSM_MAX_STATES");

void fsm_init(struct fsm *f, const struct fsm_def *def, unsigned initial,
	      const struct fsm_handler *handlers, void *ud, const char *label)
{
	memset(f, 0, sizeof(*f));
	f->def = def;
	f->handlers = handlers;
	f->ud = ud;
	f->state = initial < def->nstates ? initial : 0;
	f->since_wall_ms = wall_ms();
	snprintf(f->label, sizeof(f->label), "%s", label ? label : def->name);
}

bool fsm_allowed(const struct fsm_def *def, unsigned from, unsigned to)
{
	if (from >= def->nstates || to >= def->nstates)
		return false;
	return (def->allowed[from] >> to) & 1u;
}

const char *fsm_name(const struct fsm_def *def, unsigned s)
{
	return s < def->nstates ? def->state_names[s] : "unknown";
}

uint64_t fsm_count_into(const struct fsm *f, unsigned to)
{
	uint64_t n = 0;
	if (to >= f->def->nstates)
		return 0;
	for (unsigned i = 0; i < f->def->nstates; i++)
		n += f->counts[i][to];
	return n;
}

int fsm_go(struct fsm *f, unsigned to, const char *reason)
{
	unsigned from = f->state;
	struct fsm_transition *h;

	if (to == from)
		return 0;
	if (!fsm_allowed(f->def, from, to)) {
		f->rejected++;
		return -EINVAL;
	}
	if (!reason)
		reason = "";
	f->state = to;
	f->since_wall_ms = wall_ms();
	f->transitions++;
	f->counts[from][to]++;
	h = &f->history[f->hist_next];
	h->wall_ms = f->since_wall_ms;
	h->from = (uint8_t)from;
	h->to = (uint8_t)to;
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
	f->hist_next = (f->hist_next + 1) % FSM_HISTORY;
	if (f->hist_len < FSM_HISTORY)
		f->hist_len++;
	/* The state machine is the edge for transitions: one line each. */
	log_info("fsm", "%s: %s -> %s (%s)", f->label, fsm_name(f->def, from), fsm_name(f->def, to),
		 reason);
	if (f->handlers && f->handlers[from].exit)
		f->handlers[from].exit(f, to, f->ud);
	if (f->handlers && f->handlers[to].enter)
		f->handlers[to].enter(f, from, reason, f->ud);
	return 1;
}

json_t *fsm_to_json(const struct fsm *f)
{
	json_t *o = json_object(), *counts = json_object(), *recent = json_array();
	char key[96];

	if (!o || !counts || !recent)
		goto err;
	for (unsigned a = 0; a < f->def->nstates; a++)
		for (unsigned b = 0; b < f->def->nstates; b++) {
			if (!f->counts[a][b])
				continue;
			snprintf(key, sizeof(key), "%s -> %s", fsm_name(f->def, a),
				 fsm_name(f->def, b));
			json_object_set_new(counts, key, json_integer((json_int_t)f->counts[a][b]));
		}
	for (unsigned i = 0; i < f->hist_len; i++) {
		unsigned idx = (f->hist_next + FSM_HISTORY - f->hist_len + i) % FSM_HISTORY;
		const struct fsm_transition *h = &f->history[idx];
		json_array_append_new(recent,
				      json_pack("{s:I,s:s,s:s,s:s}", "ts_ms",
						(json_int_t)h->wall_ms, "from",
						fsm_name(f->def, h->from), "to",
						fsm_name(f->def, h->to), "reason", h->reason));
	}
	json_object_set_new(o, "state", json_string(fsm_state_name(f)));
	json_object_set_new(o, "since_ms", json_integer(f->since_wall_ms));
	json_object_set_new(o, "transitions", json_integer((json_int_t)f->transitions));
	json_object_set_new(o, "rejected", json_integer((json_int_t)f->rejected));
	json_object_set_new(o, "counts", counts);
	json_object_set_new(o, "recent", recent);
	return o;
err:
	json_decref(o);
	json_decref(counts);
	json_decref(recent);
	return NULL;
}

enum gw_state fsm_gateway_state_for(unsigned ndevices, unsigned npolling)
{
	if (ndevices == 0)
		return GW_NO_DEVICE;
	return npolling >= ndevices ? GW_RUNNING : GW_DEGRADED;
}
