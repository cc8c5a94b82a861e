/* kiva pause: freeze instances (cgroup freezer) (PUT /1.0/instances/<name>/state {"action": "freeze"}). */
#include "cli-state.h"
#include "cli.h"

static int cmd_pause(struct cli_context *ctx, int argc, char **argv)
{
	return cli_state_verb(ctx, &cli_command_pause, argc, argv, "freeze", false);
}

const struct cli_command cli_command_pause = {
	.name = "pause",
	.run = cmd_pause,
	.summary = "Pause (freeze) instances",
	.usage = "Usage: kiva pause NAME...\n"
		 "\n"
		 "Freeze every process of one or more running instances; their state becomes\n"
		 "FROZEN until kiva resume.\n"
		 "\n"
		 "Example:\n"
		 "  kiva pause c1\n",
};
