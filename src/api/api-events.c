/* Lifecycle events in LXD's format ({"type": "lifecycle", "timestamp", "location", "project",
 * "metadata": {"action", "source", "context", "requestor"}}), kept in a ring of the last
 * EVENTS_KEPT and logged. GET /1.0/events without a WebSocket upgrade answers the ring
 * (`?type=lifecycle` filters), newest last; the WebSocket stream of /1.0/events serves the same
 * objects live. */
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "basic-log.h"
#include "basic-string.h"

#define EVENTS_KEPT 256

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
	json_array_append_new(ctx->events, ev);
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
