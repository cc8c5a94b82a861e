/* Shared by kiva launch and kiva init. */
#pragma once

#include <stdbool.h>

#include "cli.h"

/* Parses "IMAGE NAME [-c k=v]... [-e]" for cmd and creates the instance (and starts it when start),
 * waiting for the operation. Returns 0 or -errno with ctx->error set. */
int cli_instance_create(struct cli_context *ctx, const struct cli_command *cmd, int argc,
			char **argv, bool start);
