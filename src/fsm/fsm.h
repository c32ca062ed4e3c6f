/* State machines: a const definition (state names + legal transitions as a
 * bitmask per state) and a handler table per owner (enter/exit per state),
 * driven by fsm_go().
 *
 * Every real transition is logged once as "<label>: old -> new (reason)",
 * counted (total and per from/to pair) and kept in a short history ring that
 * /api/state shows.  Going to the current state is a no-op (not logged, not
 * counted); an illegal transition is refused, counted as rejected, and the
 * state is unchanged.  Handlers decide which tasks run in a state: enter()
 * starts them, exit() cancels them.
 *
 * Two definitions are pinned: the gateway (starting, no device, running,
 * degraded, stopping) and the device (disconnected, connecting, identifying,
 * polling, backing off, asleep; same order and names as devices/device.h).
 * The fsm is a value embedded in its owner; it allocates nothing. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define FSM_MAX_STATES 8
#define FSM_HISTORY 16
#define FSM_REASON_LEN 64

struct fsm;

struct fsm_def {
	const char *name;               /* "gateway", "device" */
	unsigned nstates;               /* <= FSM_MAX_STATES */
	const char *const *state_names; /* nstates entries, API strings */
	const uint8_t *allowed;         /* allowed[from]: bit `to` set if legal */
};

/* One entry per state; any member may be NULL.  Run on the loop thread:
 * exit(old) then enter(new), after the state field already holds `new`. */
struct fsm_handler {
	void (*enter)(struct fsm *f, unsigned from, const char *reason, void *ud);
	void (*exit)(struct fsm *f, unsigned to, void *ud);
};

struct fsm_transition {
	int64_t wall_ms;
	uint8_t from, to;
	char reason[FSM_REASON_LEN];
};

struct fsm {
	const struct fsm_def *def;
	const struct fsm_handler *handlers; /* def->nstates entries, or NULL */
	void *ud;
	char label[32]; /* log prefix, e.g. "gateway", "dev0" */
	unsigned state;
	int64_t since_wall_ms; /* when the current state was entered */
	uint64_t transitions;
	uint64_t rejected;                               /* illegal transitions refused */
	uint64_t counts[FSM_MAX_STATES][FSM_MAX_STATES]; /* [from][to] */
	struct fsm_transition history[FSM_HISTORY];
	unsigned hist_len, hist_next;
};

enum gw_state { GW_STARTING, GW_NO_DEVICE, GW_RUNNING, GW_DEGRADED, GW_STOPPING, GW_STATE_COUNT };

enum fsm_dev_state {
	FSM_DEV_DISCONNECTED,
	FSM_DEV_CONNECTING,
	FSM_DEV_IDENTIFYING,
	FSM_DEV_POLLING,
	FSM_DEV_BACKING_OFF,
	FSM_DEV_ASLEEP,
	FSM_DEV_STATE_COUNT
};

extern const struct fsm_def fsm_gateway_def;
extern const struct fsm_def fsm_device_def;

/* Start in `initial` (not a transition: nothing logged or counted).
 * handlers may be NULL; label is copied (truncated to 31 chars). */
void fsm_init(struct fsm *f, const struct fsm_def *def, unsigned initial,
	      const struct fsm_handler *handlers, void *ud, const char *label);

/* Move to `to` for `reason` (may be NULL).  Returns 1 when the state changed,
 * 0 when already in `to` (nothing happens), -EINVAL when `to` is out of range
 * or the transition is not legal (state unchanged, counted in `rejected`). */
int fsm_go(struct fsm *f, unsigned to, const char *reason);

/* Whether from -> to is legal in def. */
bool fsm_allowed(const struct fsm_def *def, unsigned from, unsigned to);
/* Name of state s in def, "unknown" when out of range. */
const char *fsm_name(const struct fsm_def *def, unsigned s);
static inline const char *fsm_state_name(const struct fsm *f)
{
	return fsm_name(f->def, f->state);
}
/* Number of transitions into state `to` (from any state). */
uint64_t fsm_count_into(const struct fsm *f, unsigned to);

/* {"state", "since_ms", "transitions", "rejected",
 *  "counts": {"old -> new": n, ...} (non-zero pairs only),
 *  "recent": [{"ts_ms", "from", "to", "reason"}, ...] oldest first}.
 * New reference, NULL on ENOMEM. */
json_t *fsm_to_json(const struct fsm *f);

/* The gateway state that a set of devices implies: no device configured ->
 * no device; every device polling -> running; otherwise degraded. */
enum gw_state fsm_gateway_state_for(unsigned ndevices, unsigned npolling);
