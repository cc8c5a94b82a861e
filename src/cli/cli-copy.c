/* kiva copy SRC[/SNAP] DST: a new instance from an instance or one of its snapshots (POST
 * /1.0/instances with {"source": {"type": "copy", "source": "SRC[/SNAP]"}}, one background
 * operation). The server takes the source's config and devices, with -c keys on top, and, unless
 * --instance-only, its snapshots. The copy is left stopped, as with lxc copy. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-snap.h"
#include "cli.h"

enum {
	OPT_CONFIG = 1,
	OPT_EPHEMERAL,
	OPT_INSTANCE_ONLY,
	OPT_NO_PROFILES,
	OPT_STATELESS,
};

static const struct cli_option options[] = {
	{"config", 'c', true, OPT_CONFIG},
	{"ephemeral", 'e', false, OPT_EPHEMERAL},
	{"instance-only", 0, false, OPT_INSTANCE_ONLY},
	{"no-profiles", 0, false, OPT_NO_PROFILES},
	{"stateless", 0, false, OPT_STATELESS},
	{},
};

struct copy_opts {
	json_t *config;
	bool ephemeral;
	bool instance_only;
	bool no_profiles;
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct copy_opts *o = userdata;

	switch (id) {
	case OPT_CONFIG:
		return cli_config_add(o->config, arg, reterr);
	case OPT_EPHEMERAL:
		o->ephemeral = true;
		break;
	case OPT_INSTANCE_ONLY:
		o->instance_only = true;
		break;
	case OPT_NO_PROFILES:
		o->no_profiles = true;
		break;
	}
	return 0; /* --stateless: a copy never carries the running state */
}

static int cmd_copy(struct cli_context *ctx, int argc, char **argv)
{
	cleanup_json json_t *config = json_object(), *body = NULL;
	struct copy_opts o = {.config = config};
	struct cli_parse spec = {
		.cmd = &cli_command_copy,
		.options = options,
		.min_args = 2,
		.max_args = 2,
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *inst = NULL, *snap = NULL, *source = NULL;
	struct cli_client *c;
	const char *dest;
	int r;

	if (!config)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_snapshot_split(a.positional[0], &inst, &snap, &ctx->error);
	if (r < 0)
		return r;
	dest = a.positional[1];
	if (startswith(dest, "local:"))
		dest += strlen("local:");
	if (!*dest)
		return cli_usage_error(ctx, "Missing the name of the new instance");
	if (strchr(dest, '/'))
		return cli_usage_error(ctx,
				       "Invalid instance name '%s': the copy is an instance, not a "
				       "snapshot",
				       dest);
	source = snap ? strf("%s/%s", inst, snap) : strdup(inst);
	body = source ? cli_copy_body(source, dest, o.instance_only, config, o.ephemeral,
				      o.no_profiles)
		      : NULL;
	if (!body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_run(c, "POST", "/1.0/instances", body, NULL, &ctx->error);
}

const struct cli_command cli_command_copy = {
	.name = "copy",
	.run = cmd_copy,
	.summary = "Copy an instance or a snapshot to a new instance",
	.usage =
		"Usage: kiva copy SOURCE[/SNAP] DEST [flags]\n"
		"\n"
		"Create instance DEST as a copy of instance SOURCE (its root file system, config,\n"
		"devices and snapshots) or of its snapshot SNAP. DEST is left stopped; it gets\n"
		"new MAC and IP addresses. A running SOURCE is frozen while its files are copied.\n"
		"\n"
		"Flags:\n"
		"  -c, --config KEY=VALUE   Config key of the copy (repeatable; over the source's)\n"
		"  -e, --ephemeral          The copy is deleted when it stops\n"
		"      --instance-only      Leave the source's snapshots out\n"
		"      --no-profiles        Apply no profile to the copy\n"
		"      --stateless          Accepted for lxc compatibility (copies are stateless)\n"
		"\n"
		"Example:\n"
		"  kiva copy c1 c2\n"
		"  kiva copy c1/before-upgrade c1-old --instance-only -c limits.memory=64MB\n",
};
