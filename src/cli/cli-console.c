/* kiva console: attach to an instance's console, or print its log, as lxc console does. --show-log
 * prints GET /1.0/instances/<name>/console (text). Otherwise POST /1.0/instances/<name>/console
 * {"type": "console", "width", "height"} starts an operation with the secrets of "0" (the console,
 * both ways) and "control", and the streams are relayed like an interactive exec's until Ctrl+a q
 * (or a signal) detaches or kivad ends the session. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-attach.h"
#include "cli.h"

enum {
	OPT_SHOW_LOG = 1,
	OPT_TYPE,
};

static const struct cli_option options[] = {
	{"show-log", 0, false, OPT_SHOW_LOG},
	{"type", 't', true, OPT_TYPE},
	{},
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	bool *show_log = userdata;

	switch (id) {
	case OPT_SHOW_LOG:
		*show_log = true;
		return 0;
	case OPT_TYPE:
		if (!streq(arg, "console"))
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid console type '%s': only console is supported "
				"(containers have no VGA console)",
				arg);
		return 0;
	}
	return 0;
}

static int show_log(struct cli_context *ctx, struct cli_client *c, const char *name)
{
	cleanup_free char *path = cli_instance_path(name, "/console");
	int r;

	if (!path)
		return cli_oom(ctx);
	/* lxc's layout: a heading, the log as it is, a newline */
	fputs("\nConsole log:\n\n", stdout);
	fflush(stdout);
	r = cli_get_raw(c, path, STDOUT_FILENO, &ctx->error);
	if (r < 0)
		return r;
	fputc('\n', stdout);
	return 0;
}

static int cmd_console(struct cli_context *ctx, int argc, char **argv)
{
	cleanup_json json_t *body = NULL, *op = NULL, *done = NULL;
	cleanup_free char *path = NULL, *op_path = NULL;
	struct cli_parse spec = {
		.cmd = &cli_command_console,
		.options = options,
		.min_args = 1,
		.max_args = 1,
		.handle = handle,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_attach at = {.mode = CLI_ATTACH_CONSOLE};
	struct cli_call call = {.method = "POST"};
	struct cli_client *c;
	bool log = false;
	unsigned w, h;
	int r;

	spec.userdata = &log;
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (log)
		return show_log(ctx, c, a.positional[0]);

	body = json_pack("{s:s}", "type", "console");
	path = cli_instance_path(a.positional[0], "/console");
	if (!body || !path)
		return cli_oom(ctx);
	if (cli_terminal_size(&w, &h) >= 0 &&
	    (json_object_set_new(body, "width", json_integer(w)) < 0 ||
	     json_object_set_new(body, "height", json_integer(h)) < 0))
		return cli_oom(ctx);
	call.path = path;
	call.body = body;
	r = cli_call(c, &call, &op, &ctx->error);
	if (r < 0)
		return r;
	printf("To detach from the console, press: <ctrl>+a q\n\r");
	fflush(stdout);
	op_path = strf("/1.0/operations/%s", json_get_str(op, "id", ""));
	if (!op_path)
		return cli_oom(ctx);
	r = cli_attach_operation(ctx, op, &at);
	if (r < 0)
		return r;
	if (at.detached) {
		if (isatty(STDOUT_FILENO))
			fputs("\r\n", stdout); /* the prompt starts on a line of its own */
		return 0;
	}
	/* kivad ended the session: say why when it failed (the console could not be opened) */
	return cli_wait_operation(c, op_path, &done, &ctx->error);
}

const struct cli_command cli_command_console = {
	.name = "console",
	.run = cmd_console,
	.summary = "Attach to an instance's console",
	.usage = "Usage: kiva console NAME [flags]\n"
		 "\n"
		 "Attach to the console of the running instance NAME (its /dev/console, where\n"
		 "init prints and a getty may listen). Press <ctrl>+a q to detach; the instance\n"
		 "keeps running. With --show-log, print what the console has shown instead.\n"
		 "\n"
		 "Flags:\n"
		 "      --show-log        Print the console log and exit\n"
		 "  -t, --type TYPE       Console type: console (the only one for containers)\n"
		 "\n"
		 "Examples:\n"
		 "  kiva console c1\n"
		 "  kiva console c1 --show-log\n",
};
