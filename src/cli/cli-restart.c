/* kiva restart: restart instances (PUT /1.0/instances/<name>/state {"action": "restart"}). */
#include "cli-state.h"
#include "cli.h"

static int cmd_restart(struct cli_context *ctx, int argc, char **argv)
{
	return cli_state_verb(ctx, &cli_command_restart, argc, argv, "restart", true);
}

const struct cli_command cli_command_restart = {
	.name = "restart",
	.run = cmd_restart,
	.summary = "Restart instances",
	.usage =
		"Usage: kiva restart NAME... [flags]\n"
		"\n"
		"Restart one or more running instances.\n"
		"\n"
		"Flags:\n"
		"  -f, --force       Kill the instance instead of shutting it down cleanly\n"
		"      --timeout N   Seconds to wait for a clean shutdown (default 30, at most 3600)\n"
		"\n"
		"Example:\n"
		"  kiva restart c1\n",
};
