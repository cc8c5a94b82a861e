/* kiva config get|set|unset|show and kiva config device ...: an instance's configuration and its
 * devices (LXD's device model: NICs on managed networks), or, without an instance name, the
 * server's configuration (host.cpu.governor). Every instance change reads the instance (GET, with
 * its ETag), changes the config or devices map and writes the whole instance back (PUT, If-Match,
 * background operation), so the server validates the result as one and applies it live (limits;
 * NIC hot-plug and unplug on a running instance). A server change is one PATCH /1.0 of the keys
 * given (null unsets), which the server checks and applies before recording. Which form the
 * arguments are follows lxc's rules (set_targets_server). */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-net.h"
#include "cli-snap.h"
#include "cli.h"

enum {
	OPT_EXPANDED = 1,
};

static const struct cli_option options_expanded[] = {
	{"expanded", 'e', false, OPT_EXPANDED},
	{},
};

static int handle_expanded(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	*(bool *)userdata = true;
	return 0;
}

static json_t *instance_config(json_t *inst)
{
	json_t *config = json_object_get(inst, "config");

	if (!json_is_object(config)) {
		config = json_object();
		if (!config || json_object_set_new(inst, "config", config) < 0)
			return NULL;
	}
	return config;
}

/* ---- server config (GET, PATCH /1.0) ------------------------------------------------------ */

/* lxc config set's rule (lxc/config.go, cmdConfigSet.Run) for whether the arguments name the
 * server's config rather than an instance's: all of them are KEY=VALUE pairs; or the first is a
 * config key (it has a '.', which no instance name has: proto_instance_name_validate); or there
 * are exactly two and neither has a '=' (KEY VALUE). Otherwise the first is the instance. */
static bool set_targets_server(const struct cli_args *a)
{
	bool all_pairs = true, any_pair = false;

	for (size_t i = 0; i < a->n_positional; i++) {
		bool pair = strchr(a->positional[i], '=') != NULL;

		all_pairs = all_pairs && pair;
		any_pair = any_pair || pair;
	}
	if (all_pairs || strchr(a->positional[0], '.'))
		return true;
	return a->n_positional == 2 && !any_pair;
}

/* PATCH /1.0 {"config": config}: the server merges the keys, unsets those that are null or "",
 * checks and applies them, then records them. */
static int server_config_patch(struct cli_context *ctx, json_t *config)
{
	cleanup_json json_t *body = json_pack("{s:O}", "config", config);
	struct cli_client *c;
	int r;

	if (!body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_run(c, "PATCH", "/1.0", body, NULL, &ctx->error);
}

/* GET /1.0 into *ret_srv (new reference). */
static int server_get(struct cli_context *ctx, json_t **ret_srv)
{
	return cli_object_get(ctx, "/1.0", "server", ret_srv, NULL);
}

static int server_config_get(struct cli_context *ctx, const char *key)
{
	cleanup_json json_t *srv = NULL;
	const json_t *v;
	int r;

	r = server_get(ctx, &srv);
	if (r < 0)
		return r;
	v = json_object_get(json_object_get(srv, "config"), key);
	if (json_is_string(v))
		puts(json_string_value(v));
	else if (json_is_boolean(v))
		puts(json_is_true(v) ? "true" : "false");
	else if (json_is_integer(v))
		printf("%lld\n", (long long)json_integer_value(v));
	else
		putchar('\n');
	return 0;
}

static int server_config_set(struct cli_context *ctx, const struct cli_args *a)
{
	cleanup_json json_t *config = json_object();
	int r;

	if (!config)
		return cli_oom(ctx);
	r = cli_pairs_check(ctx, a, 0);
	if (r < 0)
		return r;
	r = cli_pairs_apply(ctx, config, a, 0);
	if (r < 0)
		return r;
	return server_config_patch(ctx, config);
}

static int server_config_unset(struct cli_context *ctx, const char *key)
{
	cleanup_json json_t *config = json_pack("{s:n}", key);

	if (!config)
		return cli_oom(ctx);
	return server_config_patch(ctx, config);
}

static int server_config_show(struct cli_context *ctx)
{
	static const char *const keys[] = {"config", NULL};
	cleanup_json json_t *srv = NULL;
	int r;

	r = server_get(ctx, &srv);
	if (r < 0)
		return r;
	if (!json_is_object(json_object_get(srv, "config")) &&
	    json_object_set_new(srv, "config", json_object()) < 0)
		return cli_oom(ctx);
	cli_yaml_print_keys(stdout, srv, keys);
	return 0;
}

/* ---- instance config, or the server's without a name -------------------------------------- */

static int cmd_get(struct cli_context *ctx, int argc, char **argv);
static int cmd_set(struct cli_context *ctx, int argc, char **argv);
static int cmd_unset(struct cli_context *ctx, int argc, char **argv);
static int cmd_show(struct cli_context *ctx, int argc, char **argv);

static const struct cli_command sub_get = {
	.name = "get",
	.run = cmd_get,
	.summary = "Print one config key of an instance or the server",
	.usage = "Usage: kiva config get [NAME] KEY [flags]\n"
		 "\n"
		 "Print the value of KEY in instance NAME's config, or without NAME in the\n"
		 "server's config (an empty line when unset).\n"
		 "\n"
		 "Flags:\n"
		 "  -e, --expanded   Read the expanded config (profiles applied; instances only)\n"
		 "\n"
		 "Example:\n"
		 "  kiva config get c1 limits.memory\n"
		 "  kiva config get host.cpu.governor\n",
};

static const struct cli_command sub_set = {
	.name = "set",
	.run = cmd_set,
	.summary = "Set config keys of an instance or the server",
	.usage =
		"Usage: kiva config set NAME KEY VALUE\n"
		"       kiva config set NAME KEY=VALUE...\n"
		"       kiva config set KEY VALUE\n"
		"       kiva config set KEY=VALUE...\n"
		"\n"
		"Set one or more keys in instance NAME's config, or without NAME in the\n"
		"server's config. Limits apply to a running instance at once; the server checks\n"
		"the whole new config before applying any. Setting a server key to \"\" unsets it.\n"
		"\n"
		"As lxc, the arguments are the server's keys when they are all KEY=VALUE, when\n"
		"the first one contains a '.' (instance names cannot), or when there are exactly\n"
		"two without '='; otherwise the first one is the instance name.\n"
		"\n"
		"Server keys: host.cpu.governor (the cpufreq governor of dedicated CPUs).\n"
		"\n"
		"Example:\n"
		"  kiva config set c1 limits.memory 128MB\n"
		"  kiva config set c1 limits.memory=128MB limits.cpu=0-1\n"
		"  kiva config set host.cpu.governor performance\n",
};

static const struct cli_command sub_unset = {
	.name = "unset",
	.run = cmd_unset,
	.summary = "Remove a config key from an instance or the server",
	.usage = "Usage: kiva config unset [NAME] KEY\n"
		 "\n"
		 "Remove KEY from instance NAME's config, or without NAME from the server's.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config unset c1 limits.memory\n"
		 "  kiva config unset host.cpu.governor\n",
};

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show an instance's or the server's configuration as YAML",
	.usage = "Usage: kiva config show [NAME[/SNAP]] [flags]\n"
		 "\n"
		 "Print instance NAME's architecture, config, devices, ephemeral flag, profiles\n"
		 "and description as YAML, like lxc config show; NAME/SNAP prints snapshot SNAP\n"
		 "(as kiva snapshot show); without NAME, the server's config.\n"
		 "\n"
		 "Flags:\n"
		 "  -e, --expanded   Show the expanded config and devices (profiles applied;\n"
		 "                   instances only)\n"
		 "\n"
		 "Example:\n"
		 "  kiva config show c1\n"
		 "  kiva config show\n",
};

static int cmd_get(struct cli_context *ctx, int argc, char **argv)
{
	bool expanded = false;
	struct cli_parse spec = {
		.cmd = &sub_get,
		.options = options_expanded,
		.min_args = 1,
		.max_args = 2,
		.handle = handle_expanded,
		.userdata = &expanded,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *inst = NULL;
	const json_t *v;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional == 1) {
		if (expanded)
			return cli_usage_error(ctx, "--expanded cannot be used with a server");
		return server_config_get(ctx, a.positional[0]);
	}
	r = cli_instance_get(ctx, a.positional[0], &inst, NULL);
	if (r < 0)
		return r;
	v = json_object_get(json_object_get(inst, expanded ? "expanded_config" : "config"),
			    a.positional[1]);
	printf("%s\n", json_is_string(v) ? json_string_value(v) : "");
	return 0;
}

/* The config edits run through cli_instance_edit: GET, edit, PUT with If-Match, and on a 412
 * (another client changed the instance in between) read again and redo the edit, so concurrent
 * `config set`s are all kept. */
static int set_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *config = instance_config(inst);

	if (!config)
		return cli_oom(ctx);
	for (size_t i = 1; i < a->n_positional; i++)
		if (startswith(a->positional[i], "volatile."))
			return kiva_error_set(&ctx->error, -EINVAL,
					      "Configuration key %.*s is set by the server only",
					      (int)strcspn(a->positional[i], "="),
					      a->positional[i]);
	return cli_pairs_apply(ctx, config, a, 1);
}

static int cmd_set(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {
		.cmd = &sub_set,
		.min_args = 1,
		.max_args = -1,
	};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (set_targets_server(&a))
		return server_config_set(ctx, &a);
	if (a.n_positional < 2)
		return cli_usage_error(ctx, "Missing KEY VALUE or KEY=VALUE after instance %s",
				       a.positional[0]);
	r = cli_pairs_check(ctx, &a, 1);
	if (r < 0)
		return r;
	return cli_instance_edit(ctx, a.positional[0], set_edit, &a);
}

static int unset_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *config = instance_config(inst);

	if (!config)
		return cli_oom(ctx);
	if (!json_object_get(config, a->positional[1]))
		return kiva_error_set(&ctx->error, -ENOENT,
				      "Can't unset key '%s', it's not currently set",
				      a->positional[1]);
	json_object_del(config, a->positional[1]);
	return 0;
}

static int cmd_unset(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {
		.cmd = &sub_unset,
		.min_args = 1,
		.max_args = 2,
	};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional == 1)
		return server_config_unset(ctx, a.positional[0]);
	return cli_instance_edit(ctx, a.positional[0], unset_edit, &a);
}

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const keys[] = {"architecture", "config",   "devices",     "ephemeral",
					   "profiles",	   "stateful", "description", NULL};
	bool expanded = false;
	struct cli_parse spec = {
		.cmd = &sub_show,
		.options = options_expanded,
		.min_args = 0,
		.max_args = 1,
		.handle = handle_expanded,
		.userdata = &expanded,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *inst = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional == 0) {
		if (expanded)
			return cli_usage_error(ctx, "--expanded cannot be used with a server");
		return server_config_show(ctx);
	}
	if (strchr(a.positional[0], '/')) {
		/* lxc config show NAME/SNAP */
		cleanup_free char *name = NULL, *snap = NULL;

		if (expanded)
			return cli_usage_error(ctx, "--expanded cannot be used with a snapshot");
		r = cli_snapshot_split(a.positional[0], &name, &snap, &ctx->error);
		if (r < 0)
			return r;
		return cli_snapshot_show(ctx, name, snap);
	}
	r = cli_instance_get(ctx, a.positional[0], &inst, NULL);
	if (r < 0)
		return r;
	if (expanded) {
		json_t *ec = json_object_get(inst, "expanded_config");
		json_t *ed = json_object_get(inst, "expanded_devices");

		if ((ec && json_object_set(inst, "config", ec) < 0) ||
		    (ed && json_object_set(inst, "devices", ed) < 0))
			return cli_oom(ctx);
	}
	if (!json_object_get(inst, "description") && json_set_str(inst, "description", "") < 0)
		return cli_oom(ctx);
	cli_yaml_print_keys(stdout, inst, keys);
	return 0;
}

/* ---- config device ------------------------------------------------------------------------ */

static json_t *instance_devices(json_t *inst)
{
	json_t *devices = json_object_get(inst, "devices");

	if (!json_is_object(devices)) {
		devices = json_object();
		if (!devices || json_object_set_new(inst, "devices", devices) < 0)
			return NULL;
	}
	return devices;
}

/* The devices a user sees: expanded_devices (profile devices included) when the server sent it,
 * else the instance's own. */
static const json_t *effective_devices(const json_t *inst)
{
	const json_t *ed = json_object_get(inst, "expanded_devices");

	if (json_is_object(ed) && json_object_size(ed) > 0)
		return ed;
	return json_object_get(inst, "devices");
}

static int cmd_device_add(struct cli_context *ctx, int argc, char **argv);
static int cmd_device_remove(struct cli_context *ctx, int argc, char **argv);
static int cmd_device_list(struct cli_context *ctx, int argc, char **argv);
static int cmd_device_show(struct cli_context *ctx, int argc, char **argv);
static int cmd_device_get(struct cli_context *ctx, int argc, char **argv);
static int cmd_device_set(struct cli_context *ctx, int argc, char **argv);
static int cmd_device_unset(struct cli_context *ctx, int argc, char **argv);

static const struct cli_command sub_device_add = {
	.name = "add",
	.run = cmd_device_add,
	.summary = "Add a device to an instance",
	.usage = "Usage: kiva config device add INSTANCE DEVICE TYPE [KEY=VALUE...]\n"
		 "\n"
		 "Add device DEVICE of type TYPE (nic) with the given keys to INSTANCE. A NIC\n"
		 "added to a running instance is plugged in at once.\n"
		 "\n"
		 "NIC keys: network, name, ipv4.address, hwaddr, mtu, limits.ingress,\n"
		 "limits.egress, vlan, vlan.tagged, security.acls (see docs/network.md).\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device add web eth1 nic network=br0 ipv4.address=10.0.3.50 \\\n"
		 "      limits.ingress=20Mbit\n",
};

static const struct cli_command sub_device_remove = {
	.name = "remove",
	.run = cmd_device_remove,
	.summary = "Remove devices from an instance",
	.usage = "Usage: kiva config device remove INSTANCE DEVICE...\n"
		 "\n"
		 "Remove devices from INSTANCE. A NIC removed from a running instance is\n"
		 "unplugged at once.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device remove web eth1\n",
};

static const struct cli_command sub_device_list = {
	.name = "list",
	.run = cmd_device_list,
	.summary = "List an instance's devices",
	.usage = "Usage: kiva config device list INSTANCE\n"
		 "\n"
		 "Print the names of INSTANCE's devices (profile devices included), one a line.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device list web\n",
};

static const struct cli_command sub_device_show = {
	.name = "show",
	.run = cmd_device_show,
	.summary = "Show an instance's devices as YAML",
	.usage = "Usage: kiva config device show INSTANCE\n"
		 "\n"
		 "Print INSTANCE's devices (profile devices included) and their keys as YAML.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device show web\n",
};

static const struct cli_command sub_device_get = {
	.name = "get",
	.run = cmd_device_get,
	.summary = "Print one key of an instance's device",
	.usage = "Usage: kiva config device get INSTANCE DEVICE KEY\n"
		 "\n"
		 "Print the value of KEY of device DEVICE (an empty line when unset).\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device get web eth0 ipv4.address\n",
};

static const struct cli_command sub_device_set = {
	.name = "set",
	.run = cmd_device_set,
	.summary = "Set keys of an instance's device",
	.usage = "Usage: kiva config device set INSTANCE DEVICE KEY VALUE\n"
		 "       kiva config device set INSTANCE DEVICE KEY=VALUE...\n"
		 "\n"
		 "Set keys of device DEVICE; the server applies the change to a running\n"
		 "instance at once. A device that comes from a profile is copied into the\n"
		 "instance first.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device set web eth0 limits.egress=10Mbit limits.ingress=20Mbit\n",
};

static const struct cli_command sub_device_unset = {
	.name = "unset",
	.run = cmd_device_unset,
	.summary = "Remove a key from an instance's device",
	.usage = "Usage: kiva config device unset INSTANCE DEVICE KEY\n"
		 "\n"
		 "Remove KEY from device DEVICE.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device unset web eth0 limits.ingress\n",
};

/* What a device edit gets: the parsed arguments and, for add, the new device. */
struct device_edit {
	const struct cli_args *a;
	const json_t *dev;
};

static int device_add_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct device_edit *e = userdata;
	json_t *devices = instance_devices(inst);
	const char *name = e->a->positional[1];

	if (!devices)
		return cli_oom(ctx);
	if (json_object_get(devices, name) ||
	    json_object_get(json_object_get(inst, "expanded_devices"), name))
		return kiva_error_set(&ctx->error, -EEXIST, "The device already exists");
	if (json_object_set(devices, name, (json_t *)e->dev) < 0)
		return cli_oom(ctx);
	return 0;
}

static int cmd_device_add(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_add, .min_args = 3, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *dev = NULL;
	struct device_edit e = {.a = &a};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_device_new(a.positional[2], a.positional + 3, a.n_positional - 3, &dev,
			   &ctx->error);
	if (r < 0) {
		ctx->usage_hint = r == -EINVAL;
		return r;
	}
	e.dev = dev;
	r = cli_instance_edit(ctx, a.positional[0], device_add_edit, &e);
	if (r < 0)
		return r;
	printf("Device %s added to %s\n", a.positional[1], a.positional[0]);
	return 0;
}

static int device_remove_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *devices = instance_devices(inst);

	if (!devices)
		return cli_oom(ctx);
	for (size_t i = 1; i < a->n_positional; i++) {
		const char *name = a->positional[i];

		if (json_object_get(devices, name)) {
			json_object_del(devices, name);
			continue;
		}
		if (json_object_get(json_object_get(inst, "expanded_devices"), name))
			return kiva_error_set(&ctx->error, -EINVAL,
					      "Device from profile(s) cannot be removed from "
					      "individual instance. Override device or modify "
					      "profile instead");
		return kiva_error_set(&ctx->error, -ENOENT, "Device %s doesn't exist", name);
	}
	return 0;
}

static int cmd_device_remove(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_remove, .min_args = 2, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_instance_edit(ctx, a.positional[0], device_remove_edit, &a);
	if (r < 0)
		return r;
	for (size_t i = 1; i < a.n_positional; i++)
		printf("Device %s removed from %s\n", a.positional[i], a.positional[0]);
	return 0;
}

static int cmp_keys(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int cmd_device_list(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_list, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *inst = NULL;
	cleanup_free const char **names = NULL;
	const json_t *devices;
	const char *key;
	json_t *dev;
	size_t n = 0;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_instance_get(ctx, a.positional[0], &inst, NULL);
	if (r < 0)
		return r;
	devices = effective_devices(inst);
	names = calloc(json_object_size(devices) + 1, sizeof(char *));
	if (!names)
		return cli_oom(ctx);
	if (json_is_object(devices))
		json_object_foreach((json_t *)devices, key, dev)
			names[n++] = key;
	qsort(names, n, sizeof(char *), cmp_keys);
	for (size_t i = 0; i < n; i++)
		puts(names[i]);
	return 0;
}

static int cmd_device_show(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_show, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *inst = NULL;
	const json_t *devices;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_instance_get(ctx, a.positional[0], &inst, NULL);
	if (r < 0)
		return r;
	devices = effective_devices(inst);
	if (json_object_size(devices) == 0)
		return 0;
	cli_yaml_print(stdout, devices, 0);
	return 0;
}

static int cmd_device_get(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_get, .min_args = 3, .max_args = 3};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *inst = NULL;
	const json_t *dev;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_instance_get(ctx, a.positional[0], &inst, NULL);
	if (r < 0)
		return r;
	dev = json_object_get(json_object_get(inst, "devices"), a.positional[1]);
	if (!json_is_object(dev))
		dev = json_object_get(json_object_get(inst, "expanded_devices"), a.positional[1]);
	if (!json_is_object(dev))
		return kiva_error_set(&ctx->error, -ENOENT, "Device %s doesn't exist",
				      a.positional[1]);
	printf("%s\n", json_get_str(dev, a.positional[2], ""));
	return 0;
}

static int device_set_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *dev;
	int r;

	r = cli_device_local(inst, a->positional[1], &dev, &ctx->error);
	if (r < 0)
		return r;
	return cli_pairs_apply(ctx, dev, a, 2);
}

static int cmd_device_set(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_set, .min_args = 3, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_pairs_check(ctx, &a, 2);
	if (r < 0)
		return r;
	return cli_instance_edit(ctx, a.positional[0], device_set_edit, &a);
}

static int device_unset_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *dev;
	int r;

	r = cli_device_local(inst, a->positional[1], &dev, &ctx->error);
	if (r < 0)
		return r;
	if (!json_object_get(dev, a->positional[2]))
		return kiva_error_set(&ctx->error, -ENOENT,
				      "Can't unset key '%s', it's not currently set",
				      a->positional[2]);
	json_object_del(dev, a->positional[2]);
	return 0;
}

static int cmd_device_unset(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_device_unset, .min_args = 3, .max_args = 3};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	return cli_instance_edit(ctx, a.positional[0], device_unset_edit, &a);
}

static const struct cli_command *const device_subs[] = {
	&sub_device_add, &sub_device_remove, &sub_device_list,	&sub_device_show,
	&sub_device_get, &sub_device_set,    &sub_device_unset,
};

static const struct cli_command sub_device;

static int cmd_device(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &sub_device, device_subs, ARRAY_SIZE(device_subs), argc, argv);
}

static const struct cli_command sub_device = {
	.name = "device",
	.run = cmd_device,
	.summary = "Add, remove, list, show, get, set and unset instance devices",
	.usage = "Usage: kiva config device COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  add INSTANCE DEVICE TYPE [K=V...]   Add a device (TYPE nic)\n"
		 "  remove INSTANCE DEVICE...           Remove devices\n"
		 "  list INSTANCE                       List device names\n"
		 "  show INSTANCE                       Show the devices as YAML\n"
		 "  get INSTANCE DEVICE KEY             Print one device key\n"
		 "  set INSTANCE DEVICE K=V...          Set device keys (also KEY VALUE)\n"
		 "  unset INSTANCE DEVICE KEY           Remove a device key\n"
		 "\n"
		 "Changes apply to a running instance at once (NIC hot-plug). See\n"
		 "docs/network.md for the NIC keys.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config device add web eth1 nic network=br0 ipv4.address=10.0.3.50\n"
		 "  kiva config device remove web eth1\n",
};

static const struct cli_command *const subs[] = {&sub_get, &sub_set, &sub_unset, &sub_show,
						 &sub_device};

static int cmd_config(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_config, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_config = {
	.name = "config",
	.run = cmd_config,
	.summary = "Get, set, unset or show instance or server configuration and devices",
	.usage = "Usage: kiva config COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  get [NAME] KEY            Print one config key\n"
		 "  set [NAME] KEY VALUE      Set config keys (also [NAME] KEY=VALUE...)\n"
		 "  unset [NAME] KEY          Remove a config key\n"
		 "  show [NAME]               Show the configuration as YAML\n"
		 "  device COMMAND ...        Add, remove, list, show, get, set, unset devices\n"
		 "\n"
		 "With NAME the command works on instance NAME's config, without it on the\n"
		 "server's (key host.cpu.governor). Run 'kiva config COMMAND --help' for a\n"
		 "command's flags and how set tells the two apart.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config set c1 limits.memory=128MB && kiva config get c1 limits.memory\n"
		 "  kiva config set host.cpu.governor performance\n",
};
