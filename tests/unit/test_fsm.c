/* State machine tables and transitions: names, legal moves, one log line per
 * transition, counters, handlers, history ring, JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fsm/fsm.h"

static void check_names(const struct fsm_def *def)
{
	assert_true(def->nstates <= FSM_MAX_STATES);
	for (unsigned i = 0; i < def->nstates; i++) {
		const char *n = fsm_name(def, i);
		assert_non_null(n);
		assert_true(strlen(n) > 0);
		assert_string_not_equal(n, "unknown");
		for (unsigned j = 0; j < i; j++)
			assert_string_not_equal(n, fsm_name(def, j));
	}
	assert_string_equal(fsm_name(def, def->nstates), "unknown");
}

static void test_names(void **state)
{
	(void)state;
	check_names(&fsm_gateway_def);
	check_names(&fsm_device_def);
	assert_string_equal(fsm_name(&fsm_gateway_def, GW_NO_DEVICE), "no device");
	assert_string_equal(fsm_name(&fsm_device_def, FSM_DEV_BACKING_OFF), "backing off");
	assert_int_equal(fsm_gateway_def.nstates, 5);
	assert_int_equal(fsm_device_def.nstates, 6);
}

static void test_legal(void **state)
{
	const struct fsm_def *g = &fsm_gateway_def, *d = &fsm_device_def;
	(void)state;
	assert_true(fsm_allowed(g, GW_STARTING, GW_RUNNING));
	assert_true(fsm_allowed(g, GW_RUNNING, GW_DEGRADED));
	assert_true(fsm_allowed(g, GW_DEGRADED, GW_RUNNING));
	assert_false(fsm_allowed(g, GW_RUNNING, GW_STARTING));
	/* stopping is final, and every state may stop */
	for (unsigned s = 0; s < g->nstates; s++) {
		assert_false(fsm_allowed(g, GW_STOPPING, s));
		if (s != GW_STOPPING)
			assert_true(fsm_allowed(g, s, GW_STOPPING));
		assert_false(fsm_allowed(g, s, s));
	}
	assert_true(fsm_allowed(d, FSM_DEV_DISCONNECTED, FSM_DEV_CONNECTING));
	assert_true(fsm_allowed(d, FSM_DEV_IDENTIFYING, FSM_DEV_POLLING));
	assert_false(fsm_allowed(d, FSM_DEV_DISCONNECTED, FSM_DEV_POLLING));
	assert_false(fsm_allowed(d, FSM_DEV_CONNECTING, FSM_DEV_POLLING));
	/* every device state can reach disconnected except itself */
	for (unsigned s = 1; s < d->nstates; s++)
		assert_true(fsm_allowed(d, s, FSM_DEV_DISCONNECTED));
	assert_false(fsm_allowed(d, 99, 0));
	assert_false(fsm_allowed(d, 0, 99));
}

struct trace {
	char log[256];
};

static void on_enter(struct fsm *f, unsigned from, const char *reason, void *ud)
{
	struct trace *t = ud;
	size_t n = strlen(t->log);
	snprintf(t->log + n, sizeof(t->log) - n, "enter %s<-%s(%s);", fsm_state_name(f),
		 fsm_name(f->def, from), reason);
}

static void on_exit_state(struct fsm *f, unsigned to, void *ud)
{
	struct trace *t = ud;
	size_t n = strlen(t->log);
	snprintf(t->log + n, sizeof(t->log) - n, "exit ->%s;", fsm_name(f->def, to));
}

/* Runs fn with stderr redirected to a file; returns the number of lines. */
static int count_log_lines(void (*fn)(void *), void *arg, char *buf, size_t len)
{
	char path[] = "/tmp/egw-test-fsm-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), lines = 0;
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
	close(fd);
	unlink(path);
	for (size_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static void go_twice(void *arg)
{
	struct fsm *f = arg;
	assert_int_equal(fsm_go(f, FSM_DEV_CONNECTING, "start"), 1);
	assert_int_equal(fsm_go(f, FSM_DEV_CONNECTING, "again"), 0); /* same state: silent */
	assert_int_equal(fsm_go(f, FSM_DEV_POLLING, "skip"), -EINVAL); /* illegal: silent */
}

static void test_transitions_log_once(void **state)
{
	static const struct fsm_handler handlers[FSM_DEV_STATE_COUNT] = {
		[FSM_DEV_DISCONNECTED] = { .exit = on_exit_state },
		[FSM_DEV_CONNECTING] = { .enter = on_enter },
	};
	struct trace t = { 0 };
	struct fsm f;
	char out[1024];
	(void)state;

	fsm_init(&f, &fsm_device_def, FSM_DEV_DISCONNECTED, handlers, &t, "dev0");
	assert_int_equal(f.transitions, 0);
	assert_int_equal(count_log_lines(go_twice, &f, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "dev0: disconnected -> connecting (start)"));
	assert_string_equal(t.log, "exit ->connecting;enter connecting<-disconnected(start);");
	assert_int_equal(f.state, FSM_DEV_CONNECTING);
	assert_int_equal(f.transitions, 1);
	assert_int_equal(f.rejected, 1);
	assert_int_equal(f.counts[FSM_DEV_DISCONNECTED][FSM_DEV_CONNECTING], 1);
	assert_int_equal(fsm_count_into(&f, FSM_DEV_CONNECTING), 1);
	assert_int_equal(fsm_count_into(&f, FSM_DEV_POLLING), 0);
	assert_int_equal(fsm_go(&f, 42, "bad"), -EINVAL);
	assert_int_equal(f.rejected, 2);
}

static void test_history_and_json(void **state)
{
	struct fsm f;
	(void)state;
	fsm_init(&f, &fsm_gateway_def, GW_STARTING, NULL, NULL, NULL);
	assert_string_equal(f.label, "gateway");
	assert_int_equal(fsm_go(&f, GW_RUNNING, NULL), 1);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(fsm_go(&f, GW_DEGRADED, "device lost"), 1);
		assert_int_equal(fsm_go(&f, GW_RUNNING, "device back"), 1);
	}
	assert_int_equal(f.transitions, 21);
	assert_int_equal(f.hist_len, FSM_HISTORY);
	assert_int_equal(fsm_count_into(&f, GW_RUNNING), 11);

	json_t *j = fsm_to_json(&f);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
	assert_int_equal(json_integer_value(json_object_get(j, "transitions")), 21);
	json_t *counts = json_object_get(j, "counts");
	assert_int_equal(json_integer_value(json_object_get(counts, "starting -> running")), 1);
	assert_int_equal(json_integer_value(json_object_get(counts, "running -> degraded")), 10);
	assert_int_equal(json_integer_value(json_object_get(counts, "degraded -> running")), 10);
	json_t *recent = json_object_get(j, "recent");
	assert_int_equal(json_array_size(recent), FSM_HISTORY);
	/* oldest first, newest last */
	json_t *last = json_array_get(recent, FSM_HISTORY - 1);
	assert_string_equal(json_string_value(json_object_get(last, "to")), "running");
	assert_string_equal(json_string_value(json_object_get(last, "reason")), "device back");
	json_t *first = json_array_get(recent, 0);
	assert_string_equal(json_string_value(json_object_get(first, "to")), "degraded");
	json_decref(j);

	assert_int_equal(fsm_go(&f, GW_STOPPING, "SIGTERM"), 1);
	assert_int_equal(fsm_go(&f, GW_RUNNING, "late"), -EINVAL);
	assert_int_equal(f.state, GW_STOPPING);
}

static void test_gateway_state_for(void **state)
{
	(void)state;
	assert_int_equal(fsm_gateway_state_for(0, 0), GW_NO_DEVICE);
	assert_int_equal(fsm_gateway_state_for(2, 2), GW_RUNNING);
	assert_int_equal(fsm_gateway_state_for(2, 1), GW_DEGRADED);
	assert_int_equal(fsm_gateway_state_for(1, 0), GW_DEGRADED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_legal),
		cmocka_unit_test(test_transitions_log_once),
		cmocka_unit_test(test_history_and_json),
		cmocka_unit_test(test_gateway_state_for),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
