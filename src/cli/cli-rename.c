/* kiva rename NAME/OLD NAME/NEW: renames a snapshot (POST /1.0/instances/NAME/snapshots/OLD
 * {"name": NEW}), lxc 5.0's form. kivad cannot rename instances, so `kiva rename OLD NEW` of an
 * instance is refused with a message saying so. */
#include <stdio.h>

#include "basic-macro.h"

#include "cli-snap.h"
#include "cli.h"

static int cmd_rename(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &cli_command_rename, .min_args = 2, .max_args = 2};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *inst = NULL, *old = NULL, *new_name = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_rename_parse(a.positional[0], a.positional[1], &inst, &old, &new_name, &ctx->error);
	if (r < 0)
		return r;
	return cli_snapshot_rename(ctx, inst, old, new_name);
}

const struct cli_command cli_command_rename = {
	.name = "rename",
	.run = cmd_rename,
	.summary = "Rename a snapshot",
	.usage = "Usage: kiva rename NAME/OLD NAME/NEW\n"
		 "\n"
		 "Rename snapshot OLD of instance NAME to NEW (NEW alone is accepted too).\n"
		 "Instances cannot be renamed.\n"
		 "\n"
		 "Example:\n"
		 "  kiva rename c1/snap0 c1/before-upgrade\n",
};
