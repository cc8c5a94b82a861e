/* Shared by the verbs that change an instance's run state: start, stop, restart, pause, resume. */
#pragma once

#include <stdbool.h>

#include "cli.h"

/* Parses "NAME... [--force] [--timeout N]" (flags only when with_flags) for cmd and sends
 * {"action": action} to each instance's /state, waiting for each operation. With several names it
 * goes on after a failure, prints "NAME: message" for each and fails with a summary, as lxc does.
 * Returns 0 or -errno with ctx->error set. */
int cli_state_verb(struct cli_context *ctx, const struct cli_command *cmd, int argc, char **argv,
		   const char *action, bool with_flags);
