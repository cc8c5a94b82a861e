/* kiva init: create an instance from a local image without starting it (POST /1.0/instances with
 * "start": false). */
#include "cli-launch.h"
#include "cli.h"

static int cmd_init(struct cli_context *ctx, int argc, char **argv)
{
	return cli_instance_create(ctx, &cli_command_init, argc, argv, false);
}

const struct cli_command cli_command_init = {
	.name = "init",
	.run = cmd_init,
	.summary = "Create an instance from an image without starting it",
	.usage =
		"Usage: kiva init IMAGE NAME [flags]\n"
		"\n"
		"Create a container named NAME from the local image IMAGE (an alias or a\n"
		"fingerprint prefix). Start it later with 'kiva start NAME'.\n"
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
		"  kiva init busybox c1 -c limits.memory=64MB && kiva start c1\n",
};
