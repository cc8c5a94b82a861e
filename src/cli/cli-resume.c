/* kiva resume: thaw frozen instances (PUT /1.0/instances/<name>/state {"action": "unfreeze"}). */
#include "cli-state.h"
#include "cli.h"

static int cmd_resume(struct cli_context *ctx, int argc, char **argv)
{
	return cli_state_verb(ctx, &cli_command_resume, argc, argv, "unfreeze", false);
}

const struct cli_command cli_command_resume = {
	.name = "resume",
	.run = cmd_resume,
	.summary = "Resume (unfreeze) paused instances",
	.usage = "Usage: kiva resume NAME...\n"
		 "\n"
		 "Thaw one or more instances frozen by kiva pause.\n"
		 "\n"
		 "Example:\n"
		 "  kiva resume c1\n",
};
