#include "backend/name.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"

struct namequery {
	struct loop *loop;
	struct http *http;
	char *url;
	char serial[64];
	char body[256]; /* the query, built once */
	usec_t interval, refresh_interval;
	long timeout_ms;
	struct task task;
	struct http_req req;
	bool known;
	void (*on_name)(void *ud, const char *name);
	void *name_ud;
	char name[NAMEQUERY_MAX];
	struct namequery_stats st;
};

int namequery_parse(const char *body, char ret_name[NAMEQUERY_MAX])
{
	json_error_t jerr;
	json_t *root = json_loads(body, 0, &jerr), *n;
	int r;

	if (!root)
		return -EGW_EJSON;
	if (!json_is_object(root)) {
		r = -EGW_ESCHEMA;
		goto out;
	}
	n = json_object_get(root, "errors");
	if (n && !json_is_null(n)) {
		r = -EGW_EBACKEND;
		goto out;
	}
	n = json_object_get(root, "data");
	const char *path[] = { "gatewayConfiguration", "gatewayName" };
	for (size_t i = 0; i < ARRAY_SIZE(path) && n; i++) {
		if (json_is_null(n))
			break;
		if (!json_is_object(n)) {
			r = -EGW_ESCHEMA;
			goto out;
		}
		n = json_object_get(n, path[i]);
	}
	/* A missing or null level means "no name yet". */
	if (!n || json_is_null(n)) {
		r = 0;
		goto out;
	}
	if (!json_is_object(n)) {
		r = -EGW_ESCHEMA;
		goto out;
	}
	n = json_object_get(n, "name");
	if (!n || json_is_null(n)) {
		r = 0;
		goto out;
	}
	if (!json_is_string(n) || json_string_length(n) >= NAMEQUERY_MAX ||
	    strlen(json_string_value(n)) != json_string_length(n)) {
		r = -EGW_ESCHEMA;
		goto out;
	}
	if (json_string_length(n) == 0) {
		r = 0;
		goto out;
	}
	memcpy(ret_name, json_string_value(n), json_string_length(n) + 1);
	r = 1;
out:
	json_decref(root);
	return r;
}

static void on_done(struct http_req *req, int err, long status)
{
	struct namequery *q = container_of(req, struct namequery, req);
	char name[NAMEQUERY_MAX];
	usec_t next = q->interval;
	int r;

	q->st.last_status = status;
	if (err < 0)
		r = err;
	else if (status < 200 || status > 299)
		r = -EGW_EBACKEND;
	else if (req->truncated)
		r = -EGW_EJSON;
	else
		r = namequery_parse(req->resp, name);
	if (r < 0) {
		q->st.failed++;
		q->st.last_error = r;
	} else {
		q->st.ok++;
		q->st.last_error = 0;
		if (r == 1) {
			bool changed = !q->known || strcmp(q->name, name) != 0;
			memcpy(q->name, name, sizeof(name));
			q->known = true;
			if (changed && q->on_name)
				q->on_name(q->name_ud, q->name);
			next = q->refresh_interval;
		}
		/* r == 0: the backend has no name (any more); keep asking often,
		 * but keep showing the last one it gave. */
	}
	loop_task_add(q->loop, &q->task, now_usec() + next);
}

static int run(struct task *t, usec_t now)
{
	struct namequery *q = container_of(t, struct namequery, task);
	int r;

	if (q->req.busy)
		return 0;
	q->st.attempts++;
	r = http_post(q->http, &q->req, q->url, "application/json", q->body, strlen(q->body),
		      q->timeout_ms, on_done);
	if (r < 0) {
		q->st.failed++;
		q->st.last_error = r;
		loop_task_add(q->loop, &q->task, now + q->interval);
	}
	return 0;
}

static bool serial_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || *s == '_' || *s == '-'))
			return false;
	return true;
}

int namequery_new(struct loop *l, struct http *h, const struct namequery_config *cfg,
		  struct namequery **ret)
{
	struct namequery *q;
	int n;

	if (!cfg->url || !cfg->url[0] || !cfg->serial || !serial_ok(cfg->serial))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	/* The serial is restricted to characters needing no JSON/GraphQL escaping. */
	n = snprintf(
		q->body, sizeof(q->body),
		"{\"query\":\"{ gatewayConfiguration { gatewayName(id:\\\"%s\\\") { name } } }\"}",
		cfg->serial);
	if (n < 0 || (size_t)n >= sizeof(q->body)) {
		free(q);
		return -EINVAL;
	}
	snprintf(q->serial, sizeof(q->serial), "%s", cfg->serial);
	q->url = strdup(cfg->url);
	if (!q->url) {
		free(q);
		return -ENOMEM;
	}
	q->loop = l;
	q->http = h;
	q->on_name = cfg->on_name;
	q->name_ud = cfg->name_ud;
	q->interval = cfg->interval > 0 ? cfg->interval : 10 * USEC_PER_SEC;
	q->refresh_interval =
		cfg->refresh_interval > 0 ? cfg->refresh_interval : 3600 * USEC_PER_SEC;
	q->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	q->task = (struct task){ .name = "name-query", .run = run, .prio = 8 };
	if (loop_task_add(l, &q->task, now_usec()) < 0) {
		namequery_free(q);
		return -ENOMEM;
	}
	*ret = q;
	return 0;
}

void namequery_free(struct namequery *q)
{
	if (!q)
		return;
	http_cancel(&q->req);
	loop_task_cancel(q->loop, &q->task);
	free(q->url);
	free(q);
}

const char *namequery_name(const struct namequery *q)
{
	return q->known ? q->name : NULL;
}

void namequery_get_stats(const struct namequery *q, struct namequery_stats *ret)
{
	*ret = q->st;
}

bool namequery_config_equal(const struct namequery *q, const struct namequery_config *cfg)
{
	return cfg->url && strcmp(cfg->url, q->url) == 0 && cfg->serial &&
		strcmp(cfg->serial, q->serial) == 0 &&
		(cfg->interval > 0 ? cfg->interval : 10 * USEC_PER_SEC) == q->interval &&
		(cfg->refresh_interval > 0 ? cfg->refresh_interval : 3600 * USEC_PER_SEC) ==
		q->refresh_interval &&
		(cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000) == q->timeout_ms;
}
