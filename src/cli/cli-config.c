/* kiva config get|set|unset|show: an instance's configuration. set and unset read the instance
 * (GET, with its ETag), change the config map and write the whole instance back (PUT, If-Match,
 * background operation), so the server validates the result as one and applies limits live. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"

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

static int get_instance(struct cli_context *ctx, const char *name, json_t **ret_inst,
			char **ret_etag)
{
	cleanup_free char *path = cli_instance_path(name, NULL);
	struct cli_call call = {.method = "GET", .path = path, .ret_etag = ret_etag};
	struct cli_client *c;
	int r;

	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_call(c, &call, ret_inst, &ctx->error);
	if (r >= 0 && !json_is_object(*ret_inst)) {
		json_decref(*ret_inst);
		return kiva_error_set(&ctx->error, -EIO, "Malformed instance from kivad");
	}
	return r;
}

/* PUT the writable part of inst back (api.InstancePut's fields), waiting for the operation. */
static int put_instance(struct cli_context *ctx, const char *name, const json_t *inst,
			const char *etag)
{
	static const char *const writable[] = {"architecture", "config",   "devices",
					       "ephemeral",    "profiles", "stateful",
					       "description"};
	cleanup_free char *path = cli_instance_path(name, NULL);
	cleanup_json json_t *put = json_object();
	struct cli_call call = {.method = "PUT", .path = path, .if_match = etag, .wait = true};
	struct cli_client *c;
	int r;

	if (!path || !put)
		return cli_oom(ctx);
	for (size_t i = 0; i < ARRAY_SIZE(writable); i++) {
		json_t *v = json_object_get(inst, writable[i]);

		if (v && json_object_set(put, writable[i], v) < 0)
			return cli_oom(ctx);
	}
	call.body = put;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_call(c, &call, NULL, &ctx->error);
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

static int cmd_get(struct cli_context *ctx, int argc, char **argv);
static int cmd_set(struct cli_context *ctx, int argc, char **argv);
static int cmd_unset(struct cli_context *ctx, int argc, char **argv);
static int cmd_show(struct cli_context *ctx, int argc, char **argv);

static const struct cli_command sub_get = {
	.name = "get",
	.run = cmd_get,
	.summary = "Print one config key of an instance",
	.usage = "Usage: kiva config get NAME KEY [flags]\n"
		 "\n"
		 "Print the value of KEY in instance NAME's config (an empty line when unset).\n"
		 "\n"
		 "Flags:\n"
		 "  -e, --expanded   Read the expanded config (profiles applied)\n"
		 "\n"
		 "Example:\n"
		 "  kiva config get c1 limits.memory\n",
};

static const struct cli_command sub_set = {
	.name = "set",
	.run = cmd_set,
	.summary = "Set config keys of an instance",
	.usage = "Usage: kiva config set NAME KEY VALUE\n"
		 "       kiva config set NAME KEY=VALUE...\n"
		 "\n"
		 "Set one or more keys in instance NAME's config. Limits apply to a running\n"
		 "instance at once; the server checks the whole new config before applying any.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config set c1 limits.memory 128MB\n"
		 "  kiva config set c1 limits.memory=128MB limits.cpu=0-1\n",
};

static const struct cli_command sub_unset = {
	.name = "unset",
	.run = cmd_unset,
	.summary = "Remove a config key from an instance",
	.usage = "Usage: kiva config unset NAME KEY\n"
		 "\n"
		 "Remove KEY from instance NAME's config.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config unset c1 limits.memory\n",
};

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show an instance's configuration as YAML",
	.usage = "Usage: kiva config show NAME [flags]\n"
		 "\n"
		 "Print instance NAME's architecture, config, devices, ephemeral flag, profiles\n"
		 "and description as YAML, like lxc config show.\n"
		 "\n"
		 "Flags:\n"
		 "  -e, --expanded   Show the expanded config and devices (profiles applied)\n"
		 "\n"
		 "Example:\n"
		 "  kiva config show c1\n",
};

static int cmd_get(struct cli_context *ctx, int argc, char **argv)
{
	bool expanded = false;
	struct cli_parse spec = {
		.cmd = &sub_get,
		.options = options_expanded,
		.min_args = 2,
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
	r = get_instance(ctx, a.positional[0], &inst, NULL);
	if (r < 0)
		return r;
	v = json_object_get(json_object_get(inst, expanded ? "expanded_config" : "config"),
			    a.positional[1]);
	printf("%s\n", json_is_string(v) ? json_string_value(v) : "");
	return 0;
}

typedef int (*config_edit_fn)(struct cli_context *ctx, json_t *config, const struct cli_args *a);

/* GET, edit the config, PUT with If-Match; when another client changed the instance in between
 * (412), read it again and redo the edit, so concurrent `config set`s are all kept. */
static int edit_config(struct cli_context *ctx, const char *name, config_edit_fn edit,
		       const struct cli_args *a)
{
	unsigned seed = (unsigned)getpid();
	int r = -EBUSY;

	for (int attempt = 0; attempt < 100 && r == -EBUSY; attempt++) {
		cleanup_json json_t *inst = NULL;
		cleanup_free char *etag = NULL;
		json_t *config;

		if (attempt > 0) /* lost a race: back off a little, randomly */
			usleep(1000 + (unsigned)(rand_r(&seed) % 5000));
		memset(&ctx->error, 0, sizeof(ctx->error));
		r = get_instance(ctx, name, &inst, &etag);
		if (r < 0)
			return r;
		config = instance_config(inst);
		if (!config)
			return cli_oom(ctx);
		r = edit(ctx, config, a);
		if (r < 0)
			return r;
		r = put_instance(ctx, name, inst, etag);
		if (r == -EBUSY && !etag)
			return r;
	}
	return r;
}

static int set_edit(struct cli_context *ctx, json_t *config, const struct cli_args *a)
{
	for (size_t i = 1; i < a->n_positional; i++)
		if (startswith(a->positional[i], "volatile."))
			return kiva_error_set(&ctx->error, -EINVAL,
					      "Configuration key %.*s is set by the server only",
					      (int)strcspn(a->positional[i], "="),
					      a->positional[i]);
	if (a->n_positional == 3 && !strchr(a->positional[1], '=')) {
		if (json_set_str(config, a->positional[1], a->positional[2]) < 0)
			return cli_oom(ctx);
		return 0;
	}
	for (size_t i = 1; i < a->n_positional; i++) {
		int r = cli_config_add(config, a->positional[i], &ctx->error);

		if (r < 0)
			return r;
	}
	return 0;
}

static int cmd_set(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {
		.cmd = &sub_set,
		.min_args = 2,
		.max_args = -1,
	};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (!(a.n_positional == 3 && !strchr(a.positional[1], '=')))
		for (size_t i = 1; i < a.n_positional; i++)
			if (!strchr(a.positional[i], '=') || a.positional[i][0] == '=')
				return cli_usage_error(ctx, "Bad key=value pair: %s",
						       a.positional[i]);
	return edit_config(ctx, a.positional[0], set_edit, &a);
}

static int unset_edit(struct cli_context *ctx, json_t *config, const struct cli_args *a)
{
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
		.min_args = 2,
		.max_args = 2,
	};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	return edit_config(ctx, a.positional[0], unset_edit, &a);
}

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const keys[] = {"architecture", "config",   "devices",     "ephemeral",
					   "profiles",	   "stateful", "description", NULL};
	bool expanded = false;
	struct cli_parse spec = {
		.cmd = &sub_show,
		.options = options_expanded,
		.min_args = 1,
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
	r = get_instance(ctx, a.positional[0], &inst, NULL);
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

static const struct cli_command *const subs[] = {&sub_get, &sub_set, &sub_unset, &sub_show};

static int cmd_config(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_config, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_config = {
	.name = "config",
	.run = cmd_config,
	.summary = "Get, set, unset or show instance configuration",
	.usage = "Usage: kiva config COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  get NAME KEY              Print one config key\n"
		 "  set NAME KEY VALUE        Set config keys (also NAME KEY=VALUE...)\n"
		 "  unset NAME KEY            Remove a config key\n"
		 "  show NAME                 Show the instance's configuration as YAML\n"
		 "\n"
		 "Run 'kiva config COMMAND --help' for a command's flags.\n"
		 "\n"
		 "Example:\n"
		 "  kiva config set c1 limits.memory=128MB && kiva config get c1 limits.memory\n",
};
