/* kiva: the command-line client of kivad. Parses the global flags, finds the verb in commands[] and
 * runs it; the verb talks to kivad over its unix socket (cli-client.c). Exit status: 0 on success,
 * 1 on any error ("Error: <message>" on stderr, as LXD's lxc), or the command's status for exec. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "kiva-config.h"

#include "cli.h"

static const struct cli_command *const commands[] = {
	&cli_command_launch,  &cli_command_init,    &cli_command_start,	   &cli_command_stop,
	&cli_command_restart, &cli_command_pause,   &cli_command_resume,   &cli_command_delete,
	&cli_command_copy,    &cli_command_rename,  &cli_command_snapshot, &cli_command_restore,
	&cli_command_export,  &cli_command_import,  &cli_command_publish,  &cli_command_list,
	&cli_command_info,    &cli_command_exec,    &cli_command_file,	   &cli_command_console,
	&cli_command_config,  &cli_command_network, &cli_command_image,	   &cli_command_operation,
	&cli_command_monitor, &cli_command_query,   &cli_command_version,
};

static int main_help(void)
{
	fputs("Usage: kiva [--socket PATH] [--debug] VERB [ARGS...]\n\n"
	      "kiva is the command-line client of kivad, a lightweight LXC orchestrator that speaks\n"
	      "LXD's REST API.\n\n"
	      "Verbs:\n",
	      stdout);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fputs("\nGlobal flags:\n"
	      "      --socket PATH   kivad's unix socket (default: $KIVA_SOCKET, then " CLI_DEFAULT_SOCKET
	      ")\n"
	      "      --debug         Print the HTTP requests and responses on stderr\n"
	      "  -h, --help          Show this help (kiva VERB --help for a verb)\n"
	      "      --version       Print the client version\n",
	      stdout);
	return 0;
}

static const struct cli_command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (streq(commands[i]->name, name))
			return commands[i];
	return NULL;
}

/* Global flags, then the verb. Returns the verb's exit status or -errno. */
static int run(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {{"version", 0, false, 1}, {}};
	const struct cli_command *cmd;
	struct cli_args a;
	const char *arg, *verb;
	int r, vi;

	if (cli_args_init(&a, argc, argv, options, &ctx->global) < 0)
		return cli_oom(ctx);
	a.stop_after = 1; /* everything after the verb belongs to the verb */
	while ((r = cli_args_next(&a, &arg)) > 0)
		ctx->global.version = true;
	vi = a.index - (int)a.n_positional;
	verb = a.n_positional ? a.positional[0] : NULL;
	cli_args_done(&a);
	if (r < 0)
		return cli_usage_error(ctx, "%s", a.error);
	if (ctx->global.version && !verb)
		return puts(KIVA_VERSION) < 0 ? -EIO : 0;
	if (!verb)
		return main_help(); /* as lxc: no verb prints the help */
	if (streq(verb, "help")) {
		cmd = vi + 1 < argc ? find_command(argv[vi + 1]) : NULL;
		return cmd ? cli_help(cmd) : main_help();
	}
	cmd = find_command(verb);
	if (!cmd)
		return cli_usage_error(ctx, "unknown command \"%s\" for \"kiva\"", verb);
	ctx->verb = cmd->name;
	return cmd->run(ctx, argc - vi, argv + vi);
}

int main(int argc, char **argv)
{
	struct cli_context ctx = {0};
	int r = run(&ctx, argc, argv);

	fflush(stdout);
	if (r < 0) {
		fprintf(stderr, "Error: %s\n", ctx.error.msg[0] ? ctx.error.msg : strerror(-r));
		if (ctx.usage_hint)
			fprintf(stderr, "Run 'kiva %s%s--help' for usage.\n",
				ctx.verb ? ctx.verb : "", ctx.verb ? " " : "");
	}
	cli_context_done(&ctx);
	return r < 0 ? 1 : r;
}
