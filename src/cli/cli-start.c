/* kiva start: start instances (PUT /1.0/instances/<name>/state {"action": "start"}). */
#include "cli-state.h"
#include "cli.h"

static int cmd_start(struct cli_context *ctx, int argc, char **argv)
{
	return cli_state_verb(ctx, &cli_command_start, argc, argv, "start", true);
}

const struct cli_command cli_command_start = {
	.name = "start",
	.run = cmd_start,
	.summary = "Start instances",
	.usage = "Usage: kiva start NAME... [flags]\n"
		 "\n"
		 "Start one or more stopped instances.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --force       Accepted for symmetry with stop; no effect on start\n"
		 "      --timeout N   Seconds the server may take (default 30)\n"
		 "\n"
		 "Example:\n"
		 "  kiva start c1 c2\n",
};
