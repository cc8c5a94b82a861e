/* kiva stop: stop instances, cleanly or by force (PUT /1.0/instances/<name>/state {"action": "stop"}). */
#include "cli-state.h"
#include "cli.h"

static int cmd_stop(struct cli_context *ctx, int argc, char **argv)
{
	return cli_state_verb(ctx, &cli_command_stop, argc, argv, "stop", true);
}

const struct cli_command cli_command_stop = {
	.name = "stop",
	.run = cmd_stop,
	.summary = "Stop instances",
	.usage =
		"Usage: kiva stop NAME... [flags]\n"
		"\n"
		"Stop one or more running instances: a clean shutdown that waits up to the\n"
		"timeout, or an immediate kill with --force.\n"
		"\n"
		"Flags:\n"
		"  -f, --force       Kill the instance instead of shutting it down cleanly\n"
		"      --timeout N   Seconds to wait for a clean shutdown (default 30, at most 3600)\n"
		"\n"
		"Example:\n"
		"  kiva stop c1 --timeout 10\n",
};
