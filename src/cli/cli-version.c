/* kiva version: the client's version and, when kivad answers, the server's (GET /1.0). */
#include <stdio.h>

#include "basic-macro.h"
#include "kiva-config.h"

#include "cli.h"

static int cmd_version(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &cli_command_version, .min_args = 0, .max_args = 0};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *srv = NULL;
	struct kiva_error ignored = {0};
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	printf("Client version: %s\n", KIVA_VERSION);
	fflush(stdout);
	r = cli_context_client(ctx, &c);
	if (r >= 0)
		r = cli_get(c, "/1.0", &srv, &ignored);
	printf("Server version: %s\n", r < 0 ? "unreachable"
					     : json_get_str(json_object_get(srv, "environment"),
							    "server_version", "unknown"));
	ctx->error = (struct kiva_error){0};
	return 0;
}

const struct cli_command cli_command_version = {
	.name = "version",
	.run = cmd_version,
	.summary = "Show the client and server versions",
	.usage = "Usage: kiva version\n"
		 "\n"
		 "Print the client's version and the server's (\"unreachable\" when kivad does\n"
		 "not answer).\n"
		 "\n"
		 "Example:\n"
		 "  kiva version\n",
};
