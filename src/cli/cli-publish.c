/* kiva publish NAME[/SNAP]: an image from an instance or a snapshot (POST /1.0/images with
 * {"source": {"type": "instance"|"snapshot", "name": ...}}, one background operation), as lxc
 * publish. A running instance is refused unless --force, which stops it for the publish and starts
 * it again afterwards (an ephemeral one is made persistent meanwhile so the stop does not delete
 * it), as lxc does. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-snap.h"
#include "cli.h"

enum {
	OPT_ALIAS = 1,
	OPT_PUBLIC,
	OPT_FORCE,
	OPT_COMPRESSION,
};

struct publish_opts {
	json_t *aliases;
	bool public;
	bool force;
	const char *compression;
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct publish_opts *o = userdata;

	switch (id) {
	case OPT_ALIAS:
		if (!*arg)
			return kiva_error_set(reterr, -EINVAL, "Alias names cannot be empty");
		if (json_array_append_new(o->aliases, json_pack("{s:s}", "name", arg)) < 0)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		break;
	case OPT_PUBLIC:
		o->public = true;
		break;
	case OPT_FORCE:
		o->force = true;
		break;
	case OPT_COMPRESSION:
		o->compression = arg;
		break;
	}
	return 0;
}

static int set_ephemeral(struct cli_context *ctx, json_t *inst, void *userdata)
{
	return json_object_set_new(inst, "ephemeral", json_boolean(*(bool *)userdata)) < 0
		       ? cli_oom(ctx)
		       : 0;
}

/* A running instance: refused without --force; with it, stopped (made persistent first when
 * ephemeral). *ret_stopped and *ret_was_ephemeral say what to undo. */
static int stop_for_publish(struct cli_context *ctx, const char *name, bool force,
			    bool *ret_stopped, bool *ret_was_ephemeral)
{
	cleanup_json json_t *inst = NULL;
	bool persistent = false;
	long long code;
	int r;

	r = cli_instance_get(ctx, name, &inst, NULL);
	if (r < 0)
		return r;
	code = json_get_int(inst, "status_code", 0);
	if (code == 0 ? streq(json_get_str(inst, "status", "Stopped"), "Stopped") : code == 102)
		return 0;
	if (!force)
		return kiva_error_set(&ctx->error, -EBUSY,
				      "The instance is currently running. Use --force to have it "
				      "stopped and restarted");
	if (json_get_bool(inst, "ephemeral", false)) {
		r = cli_instance_edit(ctx, name, set_ephemeral, &persistent);
		if (r < 0)
			return r;
		*ret_was_ephemeral = true;
		/* a server that kept the flag would delete the instance when it stops */
		json_decref(TAKE_PTR(inst));
		r = cli_instance_get(ctx, name, &inst, NULL);
		if (r < 0)
			return r;
		if (json_get_bool(inst, "ephemeral", false))
			return kiva_error_set(
				&ctx->error, -EOPNOTSUPP,
				"Instance '%s' is ephemeral and the server did not "
				"make it persistent: stopping it for the publish would "
				"delete it",
				name);
	}
	r = cli_instance_action(ctx, name, "stop", -1, false);
	if (r < 0)
		return r;
	*ret_stopped = true;
	return 0;
}

/* Undoes stop_for_publish, keeping the first error in ctx->error. */
static int restart_after_publish(struct cli_context *ctx, const char *name, bool stopped,
				 bool was_ephemeral, int r)
{
	struct kiva_error first = ctx->error;
	bool ephemeral = true;
	int k = 0;

	if (stopped)
		k = cli_instance_action(ctx, name, "start", -1, false);
	if (k >= 0 && was_ephemeral)
		k = cli_instance_edit(ctx, name, set_ephemeral, &ephemeral);
	if (r < 0) {
		ctx->error = first;
		return r;
	}
	return k;
}

static int cmd_publish(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {
		{"alias", 0, true, OPT_ALIAS},
		{"public", 0, false, OPT_PUBLIC},
		{"force", 'f', false, OPT_FORCE},
		{"compression", 0, true, OPT_COMPRESSION},
		{},
	};
	cleanup_json json_t *aliases = json_array(), *props = json_object(), *body = NULL,
			    *meta = NULL;
	struct publish_opts o = {.aliases = aliases};
	struct cli_parse spec = {
		.cmd = &cli_command_publish,
		.options = options,
		.min_args = 1,
		.max_args = -1,
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *inst = NULL, *snap = NULL, *source = NULL;
	bool stopped = false, was_ephemeral = false;
	struct cli_client *c;
	const char *fp;
	int r;

	if (!aliases || !props)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_snapshot_split(a.positional[0], &inst, &snap, &ctx->error);
	if (r < 0)
		return r;
	r = cli_publish_extra_args(a.positional + 1, a.n_positional - 1, props, &ctx->error);
	if (r < 0) {
		ctx->usage_hint = r == -EINVAL;
		return r;
	}
	source = snap ? strf("%s/%s", inst, snap) : strdup(inst);
	body = source ? cli_publish_body(source, aliases, o.public, props, o.compression) : NULL;
	if (!body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (!snap) {
		r = stop_for_publish(ctx, inst, o.force, &stopped, &was_ephemeral);
		if (r < 0)
			return restart_after_publish(ctx, inst, stopped, was_ephemeral, r);
	}
	r = cli_run(c, "POST", "/1.0/images", body, &meta, &ctx->error);
	r = restart_after_publish(ctx, inst, stopped, was_ephemeral, r);
	if (r < 0)
		return r;
	fp = json_get_str(meta, "fingerprint", NULL);
	if (!fp)
		return kiva_error_set(&ctx->error, -EIO,
				      "kivad did not report the published image's fingerprint");
	printf("Instance published with fingerprint: %s\n", fp);
	return 0;
}

const struct cli_command cli_command_publish = {
	.name = "publish",
	.run = cmd_publish,
	.summary = "Make an image from an instance or a snapshot",
	.usage = "Usage: kiva publish NAME[/SNAP] [local:] [KEY=VALUE...] [flags]\n"
		 "\n"
		 "Create an image in the local image store from instance NAME's root file\n"
		 "system, or from its snapshot SNAP. KEY=VALUE pairs become image properties\n"
		 "(description=..., os=...). A running instance is refused unless --force is\n"
		 "given, which stops it for the publish and starts it again. Prints the new\n"
		 "image's fingerprint.\n"
		 "\n"
		 "Flags:\n"
		 "      --alias ALIAS          Alias for the new image (repeatable)\n"
		 "      --public               Make the image public\n"
		 "  -f, --force                Stop a running instance for the publish\n"
		 "      --compression METHOD   Compression of the image (the server's default)\n"
		 "\n"
		 "Example:\n"
		 "  kiva publish c1 --alias web-base\n"
		 "  kiva publish c1/before-upgrade --alias web-old description=\"web, before\"\n",
};
