/* kiva delete: DELETE /1.0/instances/<name>. With --force a running instance is first stopped
 * (PUT .../state {"action":"stop","force":true}), as `lxc delete --force` does. NAME/SNAP deletes
 * a snapshot (DELETE /1.0/instances/<name>/snapshots/<snap>), as lxc 5.0 does. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"

#include "cli-snap.h"
#include "cli.h"

enum {
	OPT_FORCE = 1,
};

static const struct cli_option options[] = {
	{"force", 'f', false, OPT_FORCE},
	{},
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	*(bool *)userdata = true;
	return 0;
}

static int delete_one(struct cli_context *ctx, struct cli_client *c, const char *name, bool force)
{
	cleanup_free char *path = cli_instance_path(name, NULL);
	bool stopped_ephemeral = false;
	int r;

	if (strchr(name, '/')) {
		cleanup_free char *inst = NULL, *snap = NULL;

		r = cli_snapshot_split(name, &inst, &snap, &ctx->error);
		if (r < 0)
			return r;
		return cli_snapshot_delete(ctx, inst, snap);
	}
	if (!path)
		return cli_oom(ctx);
	if (force) {
		cleanup_json json_t *inst = NULL;
		const char *status;

		r = cli_get(c, path, &inst, &ctx->error);
		if (r < 0)
			return r;
		status = json_get_str(inst, "status", "Stopped");
		if (json_get_int(inst, "status_code", 102) != 102 && !streq(status, "Stopped")) {
			r = cli_instance_action(ctx, name, "stop", 30, true);
			if (r < 0)
				return r;
			stopped_ephemeral = json_get_bool(inst, "ephemeral", false);
		}
	}
	r = cli_run(c, "DELETE", path, NULL, NULL, &ctx->error);
	if (r == -ENOENT && stopped_ephemeral) {
		/* an ephemeral instance deletes itself when it stops */
		ctx->error = (struct kiva_error){0};
		return 0;
	}
	return r;
}

static int cmd_delete(struct cli_context *ctx, int argc, char **argv)
{
	bool force = false;
	struct cli_parse spec = {
		.cmd = &cli_command_delete,
		.options = options,
		.min_args = 1,
		.max_args = -1,
		.handle = handle,
		.userdata = &force,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	size_t failed = 0;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (a.n_positional == 1)
		return delete_one(ctx, c, a.positional[0], force);
	for (size_t i = 0; i < a.n_positional; i++) {
		ctx->error = (struct kiva_error){0};
		if (delete_one(ctx, c, a.positional[i], force) < 0) {
			fprintf(stderr, "%s: %s\n", a.positional[i], ctx->error.msg);
			failed++;
		}
	}
	ctx->error = (struct kiva_error){0};
	if (failed)
		return kiva_error_set(&ctx->error, -EIO, "Some instances failed to be deleted");
	return 0;
}

const struct cli_command cli_command_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Delete instances or snapshots",
	.usage = "Usage: kiva delete NAME[/SNAP]... [flags]\n"
		 "\n"
		 "Delete one or more instances and their root file systems (and snapshots). A\n"
		 "running instance is refused unless --force is given, which kills it first.\n"
		 "NAME/SNAP deletes snapshot SNAP of instance NAME.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --force   Stop (kill) a running instance before deleting it\n"
		 "\n"
		 "Example:\n"
		 "  kiva delete --force c1\n"
		 "  kiva delete c1/snap0\n",
};
