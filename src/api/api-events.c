/* Lifecycle events in LXD's format ({"type": "lifecycle", "timestamp", "location", "project",
 * "metadata": {"action", "source", "context", "requestor"}}), kept in a ring of the last
 * EVENTS_KEPT and logged. GET /1.0/events without a WebSocket upgrade answers the ring
 * (`?type=lifecycle` filters), newest last; a WebSocket on /1.0/events gets lifecycle and
 * operation events live (`?type=` filters), each as one text message, as LXD sends them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "basic-log.h"
#include "basic-string.h"

#define EVENTS_KEPT 256

static void broadcast(struct api_ctx *ctx, const json_t *ev);
static bool anyone_wants(struct api_ctx *ctx, const char *type);

void api_event_lifecycle(struct api_ctx *ctx, const char *action, const char *instance,
			 const char *snapshot)
{
	char now[40], source[256];
	json_t *ev;

	if (snapshot)
		snprintf(source, sizeof(source), "/1.0/instances/%s/snapshots/%s", instance,
			 snapshot);
	else
		snprintf(source, sizeof(source), "/1.0/instances/%s", instance);
	now_rfc3339(now);
	ev = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:{},s:{s:s,s:s,s:s}}}", "type", "lifecycle",
		       "timestamp", now, "location", "none", "project", "default", "metadata",
		       "action", action, "source", source, "context", "requestor", "username",
		       "root", "protocol", "unix", "address", "@");
	if (!ev)
		return;
	log_info("Event %s %s", action, source);
	if (!ctx->events)
		ctx->events = json_array();
	if (json_array_size(ctx->events) >= EVENTS_KEPT)
		json_array_remove(ctx->events, 0);
	broadcast(ctx, ev);
	json_array_append_new(ctx->events, ev);
}

void api_event_operation(struct api_ctx *ctx, const json_t *op_json)
{
	char now[40];
	json_t *ev;

	if (!anyone_wants(ctx, "operation"))
		return; /* nobody listens: not even rendered */
	now_rfc3339(now);
	ev = json_pack("{s:s,s:s,s:s,s:s,s:O}", "type", "operation", "timestamp", now, "location",
		       "none", "project", "default", "metadata", op_json);
	if (ev)
		broadcast(ctx, ev);
	json_decref(ev);
}

/* ---- WebSocket subscribers ---- */

struct api_event_sub {
	struct api_event_sub *next;
	struct api_ctx *ctx;
	struct api_ws *ws;
	char types[128]; /* "" = all */
};

static bool wants(const struct api_event_sub *s, const char *type)
{
	size_t n = strlen(type);

	if (!s->types[0])
		return true;
	for (const char *p = s->types; (p = strstr(p, type)); p += n)
		if ((p == s->types || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

static bool anyone_wants(struct api_ctx *ctx, const char *type)
{
	for (const struct api_event_sub *s = ctx->event_subs; s; s = s->next)
		if (wants(s, type))
			return true;
	return false;
}

static void unsubscribe(struct api_event_sub *sub)
{
	for (struct api_event_sub **p = &sub->ctx->event_subs; *p; p = &(*p)->next)
		if (*p == sub) {
			*p = sub->next;
			break;
		}
	free(sub);
}

static void broadcast(struct api_ctx *ctx, const json_t *ev)
{
	const char *type = json_get_str(ev, "type", "");
	cleanup_free char *text = NULL;
	struct api_event_sub *s, *next;

	for (s = ctx->event_subs; s; s = next) {
		next = s->next;
		if (!wants(s, type))
			continue;
		if (!text && !(text = json_dump_compact(ev)))
			return;
		/* a subscriber 4 MiB behind is cut off: kivad never waits for one */
		if (api_ws_send(s->ws, text, strlen(text), false) == -ENOBUFS) {
			log_warning("Events: a subscriber fell behind, disconnecting it");
			api_ws_close(s->ws);
			api_ws_set_user(s->ws, NULL, NULL);
			unsubscribe(s);
		}
	}
}

static void sub_message(struct api_ws *ws, void *user, const unsigned char *data, size_t len,
			bool binary)
{
	/* LXD's clients send nothing; ignore what comes */
}

static void sub_closed(struct api_ws *ws, void *user)
{
	unsubscribe(user);
}

static const struct api_ws_handler sub_handler = {sub_message, sub_closed};

int api_events_subscribe(struct api_ws *ws, struct api_ctx *ctx, const char *types)
{
	struct api_event_sub *sub = calloc(1, sizeof(*sub));

	if (!sub)
		return -ENOMEM;
	sub->ctx = ctx;
	sub->ws = ws;
	snprintf(sub->types, sizeof(sub->types), "%s", types ? types : "");
	sub->next = ctx->event_subs;
	ctx->event_subs = sub;
	api_ws_set_user(ws, &sub_handler, sub);
	return 0;
}

void api_events_handle_get(struct api_request *req)
{
	char type[64];
	const char *want = api_query(req, "type", type, sizeof(type));
	json_t *out = json_array(), *ev;
	size_t i;

	json_array_foreach(req->ctx->events, i, ev) {
		if (want && *want && !strstr(want, json_get_str(ev, "type", "")))
			continue;
		json_array_append(out, ev);
	}
	api_reply_sync(req, out);
}

/* ---- logging events ---- */

static struct api_ctx *log_ctx;

static void log_to_events(enum log_level level, const char *msg)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	char now[40];
	json_t *ev;

	if (!log_ctx || !anyone_wants(log_ctx, "logging"))
		return; /* not even rendered */
	now_rfc3339(now);
	ev = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:{}}}", "type", "logging", "timestamp", now,
		       "location", "none", "project", "default", "metadata", "message", msg,
		       "level", names[level], "context");
	if (ev)
		broadcast(log_ctx, ev);
	json_decref(ev);
}

void api_events_log_hook(struct api_ctx *ctx)
{
	log_ctx = ctx;
	log_set_hook(ctx ? log_to_events : NULL);
}
