/* Routes /1.0 requests to handlers: path patterns with {captures}, per-method handlers, LXD's
 * 404 and 405 errors for unknown routes and methods. */
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "basic-string.h"

typedef void (*api_handler)(struct api_request *req);

static const struct route {
	const char *pattern;
	api_handler get, post, put, patch, delete;
} routes[] = {
	{"/1.0", api_handle_server_get, NULL, api_handle_server_put, api_handle_server_patch, NULL},
	{"/1.0/instances", api_instances_handle_list, api_instances_handle_create, NULL, NULL,
	 NULL},
	{"/1.0/instances/*", api_instance_handle_get, NULL, api_instance_handle_put,
	 api_instance_handle_patch, api_instance_handle_delete},
	{"/1.0/instances/*/state", api_instance_handle_state_get, NULL,
	 api_instance_handle_state_put, NULL, NULL},
	{"/1.0/instances/*/exec", NULL, api_instance_handle_exec, NULL, NULL, NULL},
	{"/1.0/instances/*/snapshots", api_snapshots_handle_list, api_snapshots_handle_create, NULL,
	 NULL, NULL},
	{"/1.0/instances/*/snapshots/*", api_snapshot_handle_get, api_snapshot_handle_post,
	 api_snapshot_handle_put, api_snapshot_handle_put, api_snapshot_handle_delete},
	{"/1.0/events", api_events_handle_get, NULL, NULL, NULL, NULL},
	{"/1.0/instances/*/console", api_console_handle_get, api_console_handle_post, NULL, NULL,
	 api_console_handle_delete},
	{"/1.0/instances/*/backups", api_backups_handle_list, api_backups_handle_create, NULL, NULL,
	 NULL},
	{"/1.0/instances/*/backups/*", api_backup_handle_get, api_backup_handle_post, NULL, NULL,
	 api_backup_handle_delete},
	{"/1.0/instances/*/backups/*/export", api_backup_handle_export, NULL, NULL, NULL, NULL},
	{"/1.0/instances/*/logs/*", api_instance_handle_log_get, NULL, NULL, NULL,
	 api_instance_handle_log_delete},
	{"/1.0/instances/*/files", api_files_handle_get, api_files_handle_post, NULL, NULL,
	 api_files_handle_delete},
	{"/1.0/resources", api_resources_handle_get, NULL, NULL, NULL, NULL},
	{"/1.0/resources/capacity", api_capacity_handle_get, api_capacity_handle_post, NULL, NULL,
	 NULL},
	{"/1.0/operations", api_ops_handle_list, NULL, NULL, NULL, NULL},
	{"/1.0/operations/*", api_ops_handle_get, NULL, NULL, NULL, api_ops_handle_delete},
	{"/1.0/operations/*/wait", api_ops_handle_wait, NULL, NULL, NULL, NULL},
	{"/1.0/networks", api_networks_handle_list, api_networks_handle_create, NULL, NULL, NULL},
	{"/1.0/networks/*", api_network_handle_get, NULL, api_network_handle_put,
	 api_network_handle_patch, api_network_handle_delete},
	{"/1.0/networks/*/state", api_network_handle_state, NULL, NULL, NULL, NULL},
	{"/1.0/network-acls", api_acls_handle_list, api_acls_handle_create, NULL, NULL, NULL},
	{"/1.0/network-acls/*", api_acl_handle_get, NULL, api_acl_handle_put, api_acl_handle_patch,
	 api_acl_handle_delete},
	{"/1.0/images", api_images_handle_list, api_images_handle_create, NULL, NULL, NULL},
	{"/1.0/images/aliases", api_aliases_handle_list, api_aliases_handle_create, NULL, NULL,
	 NULL},
	{"/1.0/images/aliases/**", api_alias_handle_get, NULL, NULL, NULL, api_alias_handle_delete},
	{"/1.0/images/*", api_image_handle_get, NULL, NULL, NULL, api_image_handle_delete},
};

/* Splits req->path into req->path_parts and matches pattern segment by segment; '*' matches one
 * non-empty segment and is captured; a final '**' captures the rest of the path, slashes included
 * (alias names like "debian/bookworm": the server has already decoded %2F). */
static bool match(struct api_request *req, const char *pattern)
{
	char pat[128];
	char *psave = NULL, *save = NULL, *ps, *s;
	unsigned ncap = 0;

	snprintf(req->path_parts, sizeof(req->path_parts), "%s", req->path);
	snprintf(pat, sizeof(pat), "%s", pattern);
	/* tolerate one trailing slash, as LXD does */
	{
		size_t n = strlen(req->path_parts);

		if (n > 1 && req->path_parts[n - 1] == '/')
			req->path_parts[n - 1] = 0;
	}
	ps = strtok_r(pat, "/", &psave);
	s = strtok_r(req->path_parts, "/", &save);
	while (ps && s) {
		if (streq(ps, "**")) {
			char *rest = strtok_r(NULL, "", &save);

			if (ncap >= ARRAY_SIZE(req->params))
				return false;
			if (rest)
				s[strlen(s)] = '/'; /* strtok_r cut here: glue the rest back */
			req->params[ncap++] = s;
			return true;
		}
		if (streq(ps, "*")) {
			if (ncap >= ARRAY_SIZE(req->params))
				return false;
			req->params[ncap++] = s;
		} else if (!streq(ps, s)) {
			return false;
		}
		ps = strtok_r(NULL, "/", &psave);
		s = strtok_r(NULL, "/", &save);
	}
	return !ps && !s;
}

void api_dispatch(struct api_request *req)
{
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		const struct route *r = &routes[i];
		api_handler h = NULL;

		if (!match(req, r->pattern))
			continue;
		switch (req->method) {
		case API_GET:
			h = r->get;
			break;
		case API_POST:
			h = r->post;
			break;
		case API_PUT:
			h = r->put;
			break;
		case API_PATCH:
			h = r->patch;
			break;
		case API_DELETE:
			h = r->delete;
			break;
		default:
			break;
		}
		if (!h) {
			api_reply_error(req, 405, "Method not allowed for %s", req->path);
			return;
		}
		h(req);
		return;
	}
	if (streq(req->path, "/") || streq(req->path, "")) {
		json_t *list = json_pack("[s]", "/1.0");

		api_reply_sync(req, list);
		return;
	}
	api_reply_error(req, 404, "Not found: %s", req->path);
}

uint64_t api_upload_limit(struct api_request *req)
{
	if (req->method == API_POST && match(req, "/1.0/instances/*/files"))
		return API_FILE_MAX;
	if (startswith(req->content_type, "application/octet-stream"))
		return API_UPLOAD_MAX;
	return 0;
}

/* A query argument of a WebSocket URL ("a=1&b=2"); buf holds the (undecoded) value. */
static const char *ws_arg(const char *query, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			snprintf(buf, len, "%.*s", (int)strcspn(p + n + 1, "&"), p + n + 1);
			return buf;
		}
	}
	return NULL;
}

int api_ws_route(struct api_ws *ws, struct api_ctx *ctx, const char *path, const char *query)
{
	char arg[256], id[64];
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == strlen("/1.0/events") && strncmp(path, "/1.0/events", n) == 0)
		return api_events_subscribe(ws, ctx, ws_arg(query, "type", arg, sizeof(arg)));
	if (startswith(path, "/1.0/operations/") &&
	    sscanf(path, "/1.0/operations/%63[^/]/websocket", id) == 1)
		return api_ops_websocket(ws, ctx, id, ws_arg(query, "secret", arg, sizeof(arg)));
	return -1;
}