/* PUT /1.0/instances/<name>/state for start, stop, restart, pause (freeze), resume (unfreeze). */
#include <stdio.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-state.h"

enum {
	OPT_FORCE = 1,
	OPT_TIMEOUT,
};

static const struct cli_option options_flags[] = {
	{"force", 'f', false, OPT_FORCE},
	{"timeout", 0, true, OPT_TIMEOUT},
	{},
};

struct state_opts {
	bool force;
	int timeout;
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct state_opts *o = userdata;
	int64_t v;

	switch (id) {
	case OPT_FORCE:
		o->force = true;
		return 0;
	case OPT_TIMEOUT:
		if (parse_int64(arg, 0, 3600, &v) < 0)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid timeout '%s': 0 to 3600 seconds", arg);
		o->timeout = (int)v;
		return 0;
	}
	return 0;
}

int cli_state_verb(struct cli_context *ctx, const struct cli_command *cmd, int argc, char **argv,
		   const char *action, bool with_flags)
{
	struct state_opts o = {.timeout = 30};
	struct cli_parse spec = {
		.cmd = cmd,
		.options = with_flags ? options_flags : NULL,
		.min_args = 1,
		.max_args = -1,
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	size_t failed = 0;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional == 1)
		return cli_instance_action(ctx, a.positional[0], action, o.timeout, o.force);
	for (size_t i = 0; i < a.n_positional; i++) {
		struct kiva_error saved = ctx->error;

		ctx->error = (struct kiva_error){0};
		r = cli_instance_action(ctx, a.positional[i], action, o.timeout, o.force);
		if (r < 0) {
			fprintf(stderr, "%s: %s\n", a.positional[i], ctx->error.msg);
			failed++;
		}
		ctx->error = saved;
	}
	if (failed)
		return kiva_error_set(&ctx->error, -EIO, "Some instances failed to %s", cmd->name);
	return 0;
}
