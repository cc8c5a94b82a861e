/* kiva launch: create an instance from a local image and start it (POST /1.0/instances with
 * "start": true, one background operation). kiva init shares the code (cli-init.c). -n NETWORK
 * gives it an eth0 NIC on that network instead of the default profile's; --no-profiles sends
 * "profiles": [] (no NIC at all unless -n). */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-launch.h"
#include "cli-net.h"
#include "cli.h"

enum {
	OPT_CONFIG = 1,
	OPT_EPHEMERAL,
	OPT_DESCRIPTION,
	OPT_NETWORK,
	OPT_NO_PROFILES,
};

static const struct cli_option options[] = {
	{"config", 'c', true, OPT_CONFIG},	    {"ephemeral", 'e', false, OPT_EPHEMERAL},
	{"description", 0, true, OPT_DESCRIPTION},  {"network", 'n', true, OPT_NETWORK},
	{"no-profiles", 0, false, OPT_NO_PROFILES}, {},
};

struct create_opts {
	json_t *config;
	bool ephemeral;
	const char *description;
	const char *network;
	bool no_profiles;
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct create_opts *o = userdata;

	switch (id) {
	case OPT_CONFIG:
		return cli_config_add(o->config, arg, reterr);
	case OPT_EPHEMERAL:
		o->ephemeral = true;
		return 0;
	case OPT_DESCRIPTION:
		o->description = arg;
		return 0;
	case OPT_NETWORK:
		if (!*arg)
			return kiva_error_set(reterr, -EINVAL, "Network names cannot be empty");
		o->network = arg;
		return 0;
	case OPT_NO_PROFILES:
		o->no_profiles = true;
		return 0;
	}
	return 0;
}

static bool looks_like_fingerprint(const char *s)
{
	size_t n = strlen(s);

	return n >= 12 && n <= 64 && strspn(s, "0123456789abcdef") == n;
}

/* The "source" object for IMAGE: an alias, or a fingerprint (prefix) when no alias has that name. */
static int image_source(struct cli_context *ctx, struct cli_client *c, const char *image,
			json_t **ret)
{
	json_t *src;

	if (startswith(image, "local:"))
		image += strlen("local:");
	if (!*image)
		return cli_usage_error(ctx, "Missing image name");
	if (strchr(image, ':'))
		return kiva_error_set(&ctx->error, -EOPNOTSUPP,
				      "Remote image servers are not supported: build the image "
				      "locally with 'kiva image build' or 'kiva image import'");
	if (looks_like_fingerprint(image)) {
		cleanup_free char *esc = cli_escape_path_segment(image), *path = NULL;
		cleanup_json json_t *alias = NULL;
		struct kiva_error err = {0};
		int r;

		path = esc ? strf("/1.0/images/aliases/%s", esc) : NULL;
		if (!path)
			return cli_oom(ctx);
		r = cli_get(c, path, &alias, &err);
		if (r < 0 && r != -ENOENT) {
			ctx->error = err;
			return r;
		}
		if (r == -ENOENT)
			src = json_pack("{s:s, s:s}", "type", "image", "fingerprint", image);
		else
			src = json_pack("{s:s, s:s}", "type", "image", "alias", image);
	} else {
		src = json_pack("{s:s, s:s}", "type", "image", "alias", image);
	}
	if (!src)
		return cli_oom(ctx);
	*ret = src;
	return 0;
}

int cli_instance_create(struct cli_context *ctx, const struct cli_command *cmd, int argc,
			char **argv, bool start)
{
	cleanup_json json_t *config = json_object(), *devices = json_object(), *body = NULL,
			    *source = NULL;
	struct create_opts o = {.config = config};
	struct cli_parse spec = {
		.cmd = cmd,
		.options = options,
		.min_args = 2,
		.max_args = 2,
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	const char *name;
	int r;

	if (!config || !devices)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	name = a.positional[1];
	if (o.network &&
	    json_object_set_new(devices, "eth0", cli_nic_device_new(o.network, "eth0")) < 0)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = image_source(ctx, c, a.positional[0], &source);
	if (r < 0)
		return r;
	body = json_pack("{s:s, s:s, s:O, s:O, s:O, s:b, s:b}", "name", name, "type", "container",
			 "source", source, "config", config, "devices", devices, "ephemeral",
			 o.ephemeral, "start", start);
	if (!body || (o.description && json_set_str(body, "description", o.description) < 0) ||
	    (o.no_profiles && json_object_set_new(body, "profiles", json_array()) < 0))
		return cli_oom(ctx);
	printf("Creating %s\n", name);
	fflush(stdout);
	r = cli_run(c, "POST", "/1.0/instances", body, NULL, &ctx->error);
	if (r < 0)
		return r;
	if (start)
		printf("Starting %s\n", name);
	return 0;
}

static int cmd_launch(struct cli_context *ctx, int argc, char **argv)
{
	return cli_instance_create(ctx, &cli_command_launch, argc, argv, true);
}

const struct cli_command cli_command_launch = {
	.name = "launch",
	.run = cmd_launch,
	.summary = "Create and start an instance from an image",
	.usage =
		"Usage: kiva launch IMAGE NAME [flags]\n"
		"\n"
		"Create a container named NAME from the local image IMAGE (an alias such as\n"
		"busybox or debian/bookworm, or a fingerprint prefix) and start it.\n"
		"\n"
		"Flags:\n"
		"  -c, --config KEY=VALUE   Instance config key (repeatable), e.g. limits.memory=64MB\n"
		"  -e, --ephemeral          Delete the instance when it stops\n"
		"      --description TEXT   Instance description\n"
		"  -n, --network NETWORK    Give it an eth0 NIC on NETWORK (instead of the default\n"
		"                           profile's NIC on kivabr0)\n"
		"      --no-profiles        Apply no profile: no NIC unless --network is given\n"
		"\n"
		"Example:\n"
		"  kiva launch busybox c1 -c limits.memory=64MB -c limits.cpu=0-1\n"
		"  kiva launch busybox c2 -n br0\n",
};
