/* kiva exec: run a command in an instance over WebSockets, as lxc exec does. POST
 * /1.0/instances/<name>/exec with "wait-for-websocket": true starts an operation whose metadata
 * holds one secret per stream; each is opened as /1.0/operations/<id>/websocket?secret=S and the
 * command starts once all are connected. Interactive (stdin and stdout are terminals, or -t): "0"
 * is the command's pseudo-terminal both ways and the local terminal is raw meanwhile.
 * Non-interactive: stdin → "0", "1" → stdout, "2" → stderr. The exit status is the operation's
 * "return". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-attach.h"
#include "cli.h"

enum {
	OPT_ENV = 1,
	OPT_CWD,
	OPT_USER,
	OPT_GROUP,
	OPT_MODE,
	OPT_FORCE_INTERACTIVE,
	OPT_FORCE_NONINTERACTIVE,
	OPT_DISABLE_STDIN,
};

static const struct cli_option options[] = {
	{"env", 0, true, OPT_ENV},
	{"cwd", 0, true, OPT_CWD},
	{"user", 0, true, OPT_USER},
	{"group", 0, true, OPT_GROUP},
	{"mode", 0, true, OPT_MODE},
	{"force-interactive", 't', false, OPT_FORCE_INTERACTIVE},
	{"force-noninteractive", 'T', false, OPT_FORCE_NONINTERACTIVE},
	{"disable-stdin", 'n', false, OPT_DISABLE_STDIN},
	{},
};

enum exec_mode {
	EXEC_AUTO,
	EXEC_INTERACTIVE,
	EXEC_NONINTERACTIVE,
};

struct exec_opts {
	json_t *env;
	const char *cwd;
	long long user; /* -1: the server's default (root) */
	long long group;
	enum exec_mode mode;
	bool disable_stdin;
};

static int parse_id(const char *what, const char *arg, long long *ret, struct kiva_error *reterr)
{
	int64_t v;

	if (parse_int64(arg, 0, UINT32_MAX, &v) < 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid %s '%s': expected a numeric id",
				      what, arg);
	*ret = v;
	return 0;
}

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct exec_opts *o = userdata;

	switch (id) {
	case OPT_ENV:
		return cli_config_add(o->env, arg, reterr);
	case OPT_CWD:
		o->cwd = arg;
		return 0;
	case OPT_USER:
		return parse_id("user", arg, &o->user, reterr);
	case OPT_GROUP:
		return parse_id("group", arg, &o->group, reterr);
	case OPT_MODE:
		if (streq(arg, "auto"))
			o->mode = EXEC_AUTO;
		else if (streq(arg, "interactive"))
			o->mode = EXEC_INTERACTIVE;
		else if (streq(arg, "non-interactive"))
			o->mode = EXEC_NONINTERACTIVE;
		else
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid mode '%s': auto, interactive or "
					      "non-interactive",
					      arg);
		return 0;
	case OPT_FORCE_INTERACTIVE:
		o->mode = EXEC_INTERACTIVE;
		return 0;
	case OPT_FORCE_NONINTERACTIVE:
		o->mode = EXEC_NONINTERACTIVE;
		return 0;
	case OPT_DISABLE_STDIN:
		o->disable_stdin = true;
		return 0;
	}
	return 0;
}

/* lxc exec's rule: a terminal on both stdin and stdout, unless a flag decides. */
static bool exec_interactive(const struct exec_opts *o)
{
	if (o->mode == EXEC_INTERACTIVE)
		return true;
	if (o->mode == EXEC_NONINTERACTIVE || o->disable_stdin)
		return false;
	return isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
}

static json_t *exec_body(const struct cli_args *a, const struct exec_opts *o, bool interactive)
{
	cleanup_json json_t *cmd = json_array(), *body = NULL;
	const char *term = getenv("TERM");
	unsigned w, h;

	if (!cmd)
		return NULL;
	for (size_t i = 1; i < a->n_positional; i++)
		if (json_array_append_new(cmd, json_string(a->positional[i])) < 0)
			return NULL;
	/* as lxc: the local TERM, unless --env says otherwise */
	if (term && *term && !json_object_get(o->env, "TERM") &&
	    json_set_str(o->env, "TERM", term) < 0)
		return NULL;
	body = json_pack("{s:O, s:O, s:b, s:b}", "command", cmd, "environment", o->env,
			 "wait-for-websocket", true, "interactive", interactive);
	if (!body)
		return NULL;
	if (o->cwd && json_set_str(body, "cwd", o->cwd) < 0)
		return NULL;
	if (o->user >= 0 && json_object_set_new(body, "user", json_integer(o->user)) < 0)
		return NULL;
	if (o->group >= 0 && json_object_set_new(body, "group", json_integer(o->group)) < 0)
		return NULL;
	if (interactive && cli_terminal_size(&w, &h) >= 0 &&
	    (json_object_set_new(body, "width", json_integer(w)) < 0 ||
	     json_object_set_new(body, "height", json_integer(h)) < 0))
		return NULL;
	return TAKE_PTR(body);
}

static void free_streams(struct cli_ws **ws)
{
	for (int i = 0; i < CLI_ATTACH_N; i++)
		cli_ws_free(ws[i]);
}

int cli_attach_operation(struct cli_context *ctx, const json_t *op, struct cli_attach *a)
{
	static const char *const keys[CLI_ATTACH_N] = {"0", "1", "2", "control"};
	const json_t *fds = json_object_get(json_object_get(op, "metadata"), "fds");
	const char *id = json_get_str(op, "id", NULL);
	struct cli_client *c;
	int r;

	if (!id || !json_is_object(fds))
		return kiva_error_set(&ctx->error, -EIO, "Malformed operation from kivad: no fds");
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	for (int i = 0; i < CLI_ATTACH_N; i++) {
		const char *secret = json_get_str(fds, keys[i], NULL);
		bool needed = i == CLI_ATTACH_STDIN || i == CLI_ATTACH_CONTROL ||
			      a->mode == CLI_ATTACH_EXEC;

		if (!secret) {
			if (!needed)
				continue;
			free_streams(a->ws);
			return kiva_error_set(&ctx->error, -EIO,
					      "Malformed operation from kivad: no '%s' stream",
					      keys[i]);
		}
		r = cli_client_op_websocket(c, id, secret, &a->ws[i], &ctx->error);
		if (r < 0) {
			free_streams(a->ws);
			return r;
		}
	}
	r = cli_attach_run(a, &ctx->error);
	free_streams(a->ws);
	return r;
}

static int cmd_exec(struct cli_context *ctx, int argc, char **argv)
{
	cleanup_json json_t *env = json_object(), *body = NULL, *op = NULL, *done = NULL;
	struct exec_opts o = {.env = env, .user = -1, .group = -1};
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
	cleanup_free char *path = NULL, *op_path = NULL;
	struct cli_attach at = {0};
	struct cli_call call = {.method = "POST"};
	struct cli_client *c;
	bool interactive;
	long long ret;
	int r;

	if (!env)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	interactive = exec_interactive(&o);
	body = exec_body(&a, &o, interactive);
	path = cli_instance_path(a.positional[0], "/exec");
	if (!body || !path)
		return cli_oom(ctx);

	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	call.path = path;
	call.body = body;
	r = cli_call(c, &call, &op, &ctx->error);
	if (r < 0)
		return r;
	op_path = strf("/1.0/operations/%s", json_get_str(op, "id", ""));
	if (!op_path)
		return cli_oom(ctx);

	at.mode = interactive ? CLI_ATTACH_EXEC_PTY : CLI_ATTACH_EXEC;
	at.disable_stdin = o.disable_stdin;
	fflush(stdout);
	r = cli_attach_operation(ctx, op, &at);
	if (r < 0)
		return r;
	if (at.signal) /* kivad could not be told: give up as the signal would have */
		return 128 + at.signal;
	r = cli_wait_operation(c, op_path, &done, &ctx->error);
	if (r < 0)
		return r;
	ret = json_get_int(json_object_get(done, "metadata"), "return", -1);
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
		"Run COMMAND in the running instance NAME and exit with its exit status. When\n"
		"stdin and stdout are terminals, the command gets a terminal of its own (the local\n"
		"one is in raw mode meanwhile and its size follows); otherwise stdin, stdout and\n"
		"stderr are streamed as they are. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and\n"
		"SIGUSR2 are passed on to the command. Put \"--\" before COMMAND when it has flags\n"
		"of its own that could be taken for kiva's.\n"
		"\n"
		"Flags:\n"
		"      --env KEY=VALUE           Environment variable (repeatable)\n"
		"      --cwd DIR                 Working directory inside the instance\n"
		"      --user UID                User ID to run the command as (default 0)\n"
		"      --group GID               Group ID to run the command as (default 0)\n"
		"      --mode MODE               auto, interactive or non-interactive (default auto)\n"
		"  -t, --force-interactive       Allocate a terminal even without a local one\n"
		"  -T, --force-noninteractive    Never allocate a terminal\n"
		"  -n, --disable-stdin           Give the command an empty stdin\n"
		"\n"
		"Examples:\n"
		"  kiva exec c1 -- sh\n"
		"  kiva exec c1 --env GREETING=hi -- sh -c 'echo $GREETING; exit 3'\n"
		"  tar -C src -cf - . | kiva exec c1 -- tar -C /srv -xf -\n",
};
