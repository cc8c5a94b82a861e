/* GET /1.0: what the server is and which API extensions it implements; PUT/PATCH /1.0: the
 * server config (host.cpu.governor), replicated in the store and applied to this host. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "api-internal.h"
#include "basic-log.h"
#include "basic-string.h"
#include "kiva-config.h"

/* LXD extension names for the behaviour KIVA has, plus KIVA's own (prefixed kiva_). */
static const char *const extensions[] = {
	"instances",
	"container_exec_recording",
	"operation_wait",
	"image_create_aliases",
	"kiva_image_builders",
	"kiva_live_limits",
	"resources",
	"resources_numa",
	"kiva_scheduler",
	/* what LXD 5.0's client checks before the calls KIVA answers */
	"api_filtering",
	"container_full",
	"instance_get_full",
	"container_backup",
	"backup_override_name",
	"container_only_migration",
	"backup_compression_algorithm",
	"snapshot_expiry",
	"snapshot_expiry_creation",
	"snapshot_schedule_aliases",
	"container_exec_signal_handling",
	"container_exec_user_group",
	"file_delete",
	"file_append",
	"file_symlinks",
	"directory_manipulation",
	"console",
	"console_log",
	"instance_snapshot_never",
};

void api_handle_server_get(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	struct utsname u;
	char host[256] = "";
	json_t *ext = json_array();
	json_t *doc;

	uname(&u);
	gethostname(host, sizeof(host) - 1);
	for (size_t i = 0; i < ARRAY_SIZE(extensions); i++)
		json_array_append_new(ext, json_string(extensions[i]));
	doc = json_pack(
		"{s:o,s:s,s:s,s:s,s:b,s:[s],s:{},s:{s:[],s:[s],s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:"
		"s,s:s,s:s,s:i,s:b,s:s}}",
		"api_extensions", ext, "api_status", "stable", "api_version", "1.0", "auth",
		"trusted", "public", 0, "auth_methods", "tls", "config", "environment", "addresses",
		"architectures", u.machine, "driver", "lxc", "firewall", "nftables", "kernel",
		u.sysname, "kernel_architecture", u.machine, "kernel_version", u.release, "server",
		"kiva", "server_pid", (int)getpid(), "server_version", KIVA_VERSION, "server_name",
		host, "storage", ctx->pool->ops->name, "cgroup_version", ctx->host.cgroup_version,
		"apparmor", ctx->host.apparmor, "lsm", ctx->host.apparmor ? "apparmor" : "nop");
	{
		const json_t *config = json_object_get(store_state(ctx->store), "config");

		json_object_set_new(doc, "config", config ? json_deep_copy(config) : json_object());
	}
	api_reply_sync(req, doc);
}

/* Server keys: name, check + apply (NULL value = unset). */
static int server_key_apply(struct api_ctx *ctx, const char *key, const char *value,
			    struct kiva_error *reterr)
{
	if (streq(key, "host.cpu.governor"))
		return api_sched_set_governor(ctx, value ? value : "", reterr);
	return kiva_error_set(reterr, -EINVAL, "Unknown server configuration key: %s", key);
}

struct server_put {
	struct api_request *req;
	json_t *old; /* the values before, to undo on a failed commit (null: unset) */
};

static void undo_keys(struct api_ctx *ctx, const json_t *old)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)old, key, v)
		(void)server_key_apply(ctx, key, json_string_value(v), NULL);
}

static void server_put_done(void *userdata, int status, const char *errmsg)
{
	struct server_put *p = userdata;

	if (status < 0) {
		undo_keys(p->req->ctx, p->old);
		api_reply_error(p->req, 503, "Failed to record the server config: %s",
				errmsg ? errmsg : strerror(-status));
	} else {
		api_reply_sync(p->req, NULL);
	}
	json_decref(p->old);
	free(p);
}

static void server_update(struct api_request *req, bool patch)
{
	struct api_ctx *ctx = req->ctx;
	const json_t *stored = json_object_get(store_state(ctx->store), "config");
	cleanup_json json_t *body = NULL, *cmd = NULL, *config = NULL, *old = NULL;
	const json_t *bconfig;
	struct kiva_error err = {0};
	struct server_put *p;
	const char *key;
	json_t *v;
	int r;

	if (api_parse_body(req, &body) < 0)
		return;
	bconfig = json_object_get(body, "config");
	if (bconfig && !json_is_object(bconfig)) {
		api_reply_error(req, 400, "Invalid config: expected an object");
		return;
	}
	config = patch && stored ? json_deep_copy(stored) : json_object();
	old = json_object();
	if (!config || !old) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	json_object_foreach((json_t *)bconfig, key, v) {
		if (!json_is_string(v) && !json_is_null(v)) {
			api_reply_error(req, 400, "Invalid value for %s: expected a string", key);
			return;
		}
		if (json_is_null(v) || !*json_string_value(v))
			json_object_del(config, key);
		else
			json_object_set(config, key, v);
	}
	/* every key checked and applied before anything is recorded; undone on a refusal */
	json_object_foreach(config, key, v) {
		const json_t *was = json_object_get(stored, key);

		if (was && json_equal(was, v))
			continue;
		r = server_key_apply(ctx, key, json_string_value(v), &err);
		if (r < 0) {
			undo_keys(ctx, old);
			api_reply_error(req, 400, "%s", err.msg);
			return;
		}
		json_object_set_new(old, key, was ? json_copy((json_t *)was) : json_null());
	}
	json_object_foreach((json_t *)stored, key, v) {
		if (json_object_get(config, key))
			continue;
		(void)server_key_apply(ctx, key, NULL, NULL);
		json_object_set_new(old, key, json_copy(v));
	}
	cmd = store_cmd_config_put(config);
	p = calloc(1, sizeof(*p));
	if (!cmd || !p) {
		free(p);
		undo_keys(ctx, old);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	p->req = req;
	p->old = json_incref(old);
	api_defer(req);
	r = store_apply(ctx->store, cmd, server_put_done, p);
	if (r < 0)
		server_put_done(p, r, NULL);
}

void api_handle_server_put(struct api_request *req)
{
	server_update(req, false);
}

void api_handle_server_patch(struct api_request *req)
{
	server_update(req, true);
}

void api_server_config_apply(struct api_ctx *ctx)
{
	const json_t *config = json_object_get(store_state(ctx->store), "config");
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)config, key, v) {
		struct kiva_error err = {0};

		if (server_key_apply(ctx, key, json_string_value(v), &err) < 0)
			log_warning("Server config %s=%s not applied: %s", key,
				    json_string_value(v), err.msg);
	}
}
