/* Notifications: recent messages for the UI (GET/DELETE /api/notification). */
#include "web/webui_int.h"

/* ---- notifications ------------------------------------------------------ */

void webui_notify(struct webui *u, const char *level, const char *key, const char *fmt, ...)
{
	struct note *n = NULL;
	va_list ap;
	char *s;

	if (!u)
		return;
	for (unsigned i = 0; i < u->nnotes; i++)
		if (strcmp(u->notes[i].key, key) == 0) {
			/* Replace: drop the old one, keep the order by time. */
			memmove(&u->notes[i], &u->notes[i + 1],
				(u->nnotes - i - 1) * sizeof(u->notes[0]));
			u->nnotes--;
			break;
		}
	if (u->nnotes == WEBUI_NOTES_MAX) {
		memmove(&u->notes[0], &u->notes[1], (WEBUI_NOTES_MAX - 1) * sizeof(u->notes[0]));
		u->nnotes--;
	}
	n = &u->notes[u->nnotes++];
	*n = (struct note){ .id = ++u->next_note_id, .ts_ms = wall_ms() };
	snprintf(n->level, sizeof(n->level), "%s", level);
	snprintf(n->key, sizeof(n->key), "%s", key);
	va_start(ap, fmt);
	vsnprintf(n->text, sizeof(n->text), fmt, ap);
	va_end(ap);
	s = NULL;
	{
		json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)n->id, "ts_ms",
				      (json_int_t)n->ts_ms, "level", n->level, "key", n->key,
				      "text", n->text);
		if (j)
			s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (s) {
		sse_hub_publish(u->hub, "notification", s, strlen(s));
		free(s);
	}
}

void webui_note_clear(struct webui *u, const char *key)
{
	for (unsigned i = 0; i < u->nnotes; i++)
		if (strcmp(u->notes[i].key, key) == 0) {
			memmove(&u->notes[i], &u->notes[i + 1],
				(u->nnotes - i - 1) * sizeof(u->notes[0]));
			u->nnotes--;
			return;
		}
}

int webui_h_notes_get(struct web_request *rq)
{
	struct webui *u = webui_of(rq);
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < u->nnotes; i++) {
		const struct note *n = &u->notes[i];
		json_array_append_new(arr,
				      json_pack("{s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)n->id,
						"ts_ms", (json_int_t)n->ts_ms, "level", n->level,
						"key", n->key, "text", n->text));
	}
	return web_reply_json(rq, 200, arr ? json_pack("{s:o}", "notifications", arr) : NULL);
}

int webui_h_notes_delete(struct web_request *rq)
{
	struct webui *u = webui_of(rq);
	const char *p = rq->path + strlen("/api/notification");
	unsigned long id;

	if (*p == '/')
		p++;
	if (webui_parse_uint(p, 1, ULONG_MAX, &id) < 0)
		return web_reply_error(rq, 400, "expected /api/notification/<numeric id>", "id");
	for (unsigned i = 0; i < u->nnotes; i++)
		if (u->notes[i].id == id) {
			memmove(&u->notes[i], &u->notes[i + 1],
				(u->nnotes - i - 1) * sizeof(u->notes[0]));
			u->nnotes--;
			return web_reply_json(rq, 200,
					      json_pack("{s:I}", "deleted", (json_int_t)id));
		}
	return web_reply_error(rq, 404, "no such notification", "id");
}
