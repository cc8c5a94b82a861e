/* GET /1.0: what the server is and which API extensions it implements. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "api-internal.h"
#include "kiva-config.h"

/* LXD extension names for the behaviour KIVA has, plus KIVA's own (prefixed kiva_). */
static const char *const extensions[] = {
	"instances",	       "container_exec_recording", "operation_wait", "image_create_aliases",
	"kiva_image_builders", "kiva_live_limits",
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
	api_reply_sync(req, doc);
}
