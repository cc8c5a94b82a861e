/* kiva exec: run a command in an instance and relay its output and exit status. KIVA's non-interactive
 * form of LXD's exec: POST /1.0/instances/<name>/exec with "record-output": true and no websocket;
 * when the operation finishes its metadata holds {"return": N, "output": {"1": url, "2": url}}; the
 * two logs are fetched raw, written to stdout and stderr, then deleted. stdin is not forwarded. */
#include <stdio.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli.h"

enum {
	OPT_ENV = 1,
	OPT_CWD,
	OPT_NOOP,
};

static const struct cli_option options[] = {
	{"env", 0, true, OPT_ENV},
	{"cwd", 0, true, OPT_CWD},
	/* accepted for scripts written for lxc; exec is always non-interactive here */
	{"force-noninteractive", 'T', false, OPT_NOOP},
	{"disable-stdin", 'n', false, OPT_NOOP},
	{},
};

struct exec_opts {
	json_t *env;
	const char *cwd;
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct exec_opts *o = userdata;

	switch (id) {
	case OPT_ENV:
		return cli_config_add(o->env, arg, reterr);
	case OPT_CWD:
		o->cwd = arg;
		return 0;
	}
	return 0;
}

/* Copies one recorded output log to fd, then deletes it on the server. */
static int relay_log(struct cli_context *ctx, struct cli_client *c, const json_t *output,
		     const char *key, int fd)
{
	const char *url = json_get_str(output, key, NULL);
	struct kiva_error ignored = {0};
	int r;

	if (!url || !*url)
		return 0;
	r = cli_get_raw(c, url, fd, &ctx->error);
	if (r < 0)
		return r;
	(void)cli_run(c, "DELETE", url, NULL, NULL, &ignored); /* best effort */
	return 0;
}

static int cmd_exec(struct cli_context *ctx, int argc, char **argv)
{
	cleanup_json json_t *env = json_object(), *cmd = json_array(), *body = NULL, *meta = NULL;
	struct exec_opts o = {.env = env};
	struct cli_parse spec = {
		.cmd = &cli_command_exec,
		.options = options,
		.min_args = 2,
		.max_args = -1,
		.stop_after = 2, /* kiva exec c1 ls -la: "-la" belongs to ls */
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	struct cli_client *c;
	const json_t *output;
	long long ret;
	int r;

	if (!env || !cmd)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	for (size_t i = 1; i < a.n_positional; i++)
		if (json_array_append_new(cmd, json_string(a.positional[i])) < 0)
			return cli_oom(ctx);
	body = json_pack("{s:O, s:O, s:b, s:b, s:b}", "command", cmd, "environment", env,
			 "wait-for-websocket", false, "interactive", false, "record-output", true);
	path = cli_instance_path(a.positional[0], "/exec");
	if (!body || !path || (o.cwd && json_set_str(body, "cwd", o.cwd) < 0))
		return cli_oom(ctx);

	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_run(c, "POST", path, body, &meta, &ctx->error);
	if (r < 0)
		return r;
	ret = json_get_int(meta, "return", -1);
	output = json_object_get(meta, "output");
	fflush(stdout);
	r = relay_log(ctx, c, output, "1", STDOUT_FILENO);
	if (r < 0)
		return r;
	r = relay_log(ctx, c, output, "2", STDERR_FILENO);
	if (r < 0)
		return r;
	if (ret < 0)
		return kiva_error_set(&ctx->error, -EIO, "kivad did not report an exit status");
	return (int)(ret & 0xff);
}

const struct cli_command cli_command_exec = {
	.name = "exec",
	.run = cmd_exec,
	.summary = "Run a command in an instance",
	.usage =
		"Usage: kiva exec NAME [flags] [--] COMMAND [ARGS...]\n"
		"\n"
		"Run COMMAND in the running instance NAME, print its standard output and error\n"
		"once it has finished, and exit with its exit status. The command runs without a\n"
		"terminal and without standard input. Put \"--\" before COMMAND when it has flags\n"
		"of its own that could be taken for kiva's.\n"
		"\n"
		"Flags:\n"
		"      --env KEY=VALUE   Environment variable (repeatable)\n"
		"      --cwd DIR         Working directory inside the instance\n"
		"  -T, -n                Accepted for lxc compatibility (always non-interactive)\n"
		"\n"
		"Example:\n"
		"  kiva exec c1 --env GREETING=hi -- sh -c 'echo $GREETING; exit 3'\n",
};
