/* Helpers shared by the kiva verbs: the lazily created client, argument parsing with --help and
 * usage errors, sub-command dispatch, instance state changes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli.h"

const char *cli_socket_path(const struct cli_context *ctx)
{
	const char *env;

	if (ctx->global.socket_path && *ctx->global.socket_path)
		return ctx->global.socket_path;
	env = getenv("KIVA_SOCKET");
	if (env && *env)
		return env;
	return CLI_DEFAULT_SOCKET;
}

int cli_context_client(struct cli_context *ctx, struct cli_client **ret)
{
	int r;

	if (!ctx->client) {
		r = cli_client_new(cli_socket_path(ctx), ctx->global.debug, &ctx->client,
				   &ctx->error);
		if (r < 0)
			return r;
	}
	*ret = ctx->client;
	return 0;
}

void cli_context_done(struct cli_context *ctx)
{
	cli_client_free(ctx->client);
	ctx->client = NULL;
}

int cli_oom(struct cli_context *ctx)
{
	return kiva_error_set(&ctx->error, -ENOMEM, "Out of memory");
}

int cli_help(const struct cli_command *cmd)
{
	fputs(cmd->usage, stdout);
	fputs("\nGlobal flags:\n"
	      "      --socket PATH   kivad's unix socket (default: $KIVA_SOCKET, then " CLI_DEFAULT_SOCKET
	      ")\n"
	      "      --debug         Print the HTTP requests and responses on stderr\n"
	      "  -h, --help          Show this help\n",
	      stdout);
	return 0;
}

int cli_usage_error(struct cli_context *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->error.msg, sizeof(ctx->error.msg), fmt, ap);
	va_end(ap);
	ctx->error.code = -EINVAL;
	ctx->usage_hint = true;
	return -EINVAL;
}

int cli_parse_args(struct cli_context *ctx, const struct cli_parse *spec, int argc, char **argv,
		   struct cli_args *ret_args)
{
	struct cli_args *a = ret_args;
	const char *arg;
	int r;

	if (cli_args_init(a, argc, argv, spec->options, &ctx->global) < 0)
		return cli_oom(ctx);
	a->stop_after = spec->stop_after;
	while ((r = cli_args_next(a, &arg)) > 0) {
		if (!spec->handle)
			continue;
		r = spec->handle(spec->userdata, r, arg, &ctx->error);
		if (r < 0) {
			ctx->usage_hint = r == -EINVAL;
			return r;
		}
	}
	if (ctx->global.help)
		return cli_help(spec->cmd); /* --help wins over everything else */
	if (r < 0)
		return cli_usage_error(ctx, "%s", a->error);
	if ((int)a->n_positional < spec->min_args ||
	    (spec->max_args >= 0 && (int)a->n_positional > spec->max_args))
		return cli_usage_error(ctx, "Invalid number of arguments");
	return 1;
}

int cli_dispatch_sub(struct cli_context *ctx, const struct cli_command *parent,
		     const struct cli_command *const *subs, size_t n, int argc, char **argv)
{
	static char verb[192];
	char prefix[128];
	const char *name = NULL;
	int i;

	/* "network" from main, or "network acl" from an enclosing group */
	snprintf(prefix, sizeof(prefix), "%s", ctx->verb ? ctx->verb : parent->name);
	/* global flags may come before the sub-command: kiva image --debug list */
	for (i = 1; i < argc; i++) {
		if (streq(argv[i], "--debug")) {
			ctx->global.debug = true;
		} else if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
			ctx->global.help = true;
		} else if (streq(argv[i], "--socket") && i + 1 < argc) {
			ctx->global.socket_path = argv[++i];
		} else if (startswith(argv[i], "--socket=")) {
			ctx->global.socket_path = argv[i] + strlen("--socket=");
		} else if (argv[i][0] == '-') {
			return cli_usage_error(ctx, "unknown flag: %s", argv[i]);
		} else {
			name = argv[i];
			break;
		}
	}
	if (!name)
		return cli_help(parent); /* as lxc: a bare group command prints its help */
	for (size_t k = 0; k < n; k++)
		if (streq(subs[k]->name, name)) {
			snprintf(verb, sizeof(verb), "%s %s", prefix, name);
			ctx->verb = verb;
			return subs[k]->run(ctx, argc - i, argv + i);
		}
	return cli_usage_error(ctx, "unknown command \"%s\" for \"kiva %s\"", name, prefix);
}

char *cli_resource_path(const char *collection, const char *name, const char *suffix)
{
	cleanup_free char *esc = cli_escape_path_segment(name);

	if (!esc)
		return NULL;
	return strf("%s/%s%s", collection, esc, suffix ? suffix : "");
}

char *cli_instance_path(const char *name, const char *suffix)
{
	return cli_resource_path("/1.0/instances", name, suffix);
}

char *cli_snapshot_path(const char *instance, const char *snap)
{
	cleanup_free char *esc = cli_escape_path_segment(snap), *suffix = NULL;

	if (!esc)
		return NULL;
	suffix = strf("/snapshots/%s", esc);
	return suffix ? cli_instance_path(instance, suffix) : NULL;
}

int cli_object_get(struct cli_context *ctx, const char *path, const char *what, json_t **ret_obj,
		   char **ret_etag)
{
	struct cli_call call = {.method = "GET", .path = path, .ret_etag = ret_etag};
	struct cli_client *c;
	json_t *obj = NULL;
	int r;

	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_call(c, &call, &obj, &ctx->error);
	if (r < 0)
		return r;
	if (!json_is_object(obj)) {
		json_decref(obj);
		if (ret_etag) {
			free(*ret_etag);
			*ret_etag = NULL;
		}
		return kiva_error_set(&ctx->error, -EIO, "Malformed %s from kivad", what);
	}
	*ret_obj = obj;
	return 0;
}

/* PUT the writable part of obj back, waiting for the operation if there is one. */
static int object_put(struct cli_context *ctx, const char *path, const json_t *obj,
		      const char *const *writable, const char *etag)
{
	cleanup_json json_t *put = json_object();
	struct cli_call call = {.method = "PUT", .path = path, .if_match = etag, .wait = true};
	struct cli_client *c;
	int r;

	if (!put)
		return cli_oom(ctx);
	for (size_t i = 0; writable[i]; i++) {
		json_t *v = json_object_get(obj, writable[i]);

		if (v && json_object_set(put, writable[i], v) < 0)
			return cli_oom(ctx);
	}
	call.body = put;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_call(c, &call, NULL, &ctx->error);
}

int cli_object_edit(struct cli_context *ctx, const char *path, const char *what,
		    const char *const *writable, cli_edit_fn edit, void *userdata)
{
	unsigned seed = (unsigned)getpid();
	int r = -EBUSY;

	for (int attempt = 0; attempt < 100 && r == -EBUSY; attempt++) {
		cleanup_json json_t *obj = NULL;
		cleanup_free char *etag = NULL;

		if (attempt > 0) /* lost a race: back off a little, randomly */
			usleep(1000 + (unsigned)(rand_r(&seed) % 5000));
		memset(&ctx->error, 0, sizeof(ctx->error));
		r = cli_object_get(ctx, path, what, &obj, &etag);
		if (r < 0)
			return r;
		r = edit(ctx, obj, userdata);
		if (r < 0)
			return r;
		r = object_put(ctx, path, obj, writable, etag);
		if (r == -EBUSY && !etag)
			return r;
	}
	return r;
}

int cli_instance_get(struct cli_context *ctx, const char *name, json_t **ret_inst, char **ret_etag)
{
	cleanup_free char *path = cli_instance_path(name, NULL);

	if (!path)
		return cli_oom(ctx);
	return cli_object_get(ctx, path, "instance", ret_inst, ret_etag);
}

int cli_instance_edit(struct cli_context *ctx, const char *name, cli_edit_fn edit, void *userdata)
{
	static const char *const writable[] = {"architecture", "config",   "devices",
					       "ephemeral",    "profiles", "stateful",
					       "description",  NULL};
	cleanup_free char *path = cli_instance_path(name, NULL);

	if (!path)
		return cli_oom(ctx);
	return cli_object_edit(ctx, path, "instance", writable, edit, userdata);
}

int cli_instance_action(struct cli_context *ctx, const char *name, const char *action, int timeout,
			bool force)
{
	cleanup_json json_t *body = NULL;
	cleanup_free char *path = cli_instance_path(name, "/state");
	struct cli_client *c;
	int r;

	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	body = json_pack("{s:s, s:i, s:b, s:b}", "action", action, "timeout", timeout, "force",
			 force, "stateful", false);
	if (!body || !path)
		return cli_oom(ctx);
	return cli_run(c, "PUT", path, body, NULL, &ctx->error);
}

int cli_print_json(const json_t *v)
{
	cleanup_free char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!s)
		return -ENOMEM;
	puts(s);
	return 0;
}

int cli_print_items(struct cli_context *ctx, const json_t *items, enum cli_format format,
		    const char *const *columns, size_t ncolumns,
		    int (*row)(struct cli_table *t, const json_t *item), int sort_col)
{
	struct cli_table *t = NULL;
	const json_t *item;
	size_t i;
	int r;

	if (format == CLI_FORMAT_JSON)
		return cli_print_json(items) < 0 ? cli_oom(ctx) : 0;
	if (format == CLI_FORMAT_YAML) {
		cli_yaml_print(stdout, items, 0);
		return 0;
	}
	if (cli_table_new(columns, ncolumns, &t) < 0)
		return cli_oom(ctx);
	for (i = 0; i < json_array_size(items) && (item = json_array_get(items, i)); i++) {
		if (row(t, item) < 0) {
			cli_table_free(t);
			return cli_oom(ctx);
		}
	}
	if (sort_col >= 0)
		cli_table_sort(t, (size_t)sort_col);
	r = cli_table_print(t, format, stdout);
	cli_table_free(t);
	return r < 0 ? kiva_error_set(&ctx->error, r, "Failed to write the table") : 0;
}

static const struct cli_option list_options[] = {
	{"format", 'f', true, 1},
	{},
};

int cli_list_verb(struct cli_context *ctx, const struct cli_command *cmd, int argc, char **argv,
		  const char *path, const char *what, const char *const *columns, size_t ncolumns,
		  int (*row)(struct cli_table *t, const json_t *item))
{
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_parse spec = {
		.cmd = cmd,
		.options = list_options,
		.min_args = 0,
		.max_args = 0,
		.handle = cli_handle_format,
		.userdata = &format,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *list = NULL;
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_get(c, path, &list, &ctx->error);
	if (r < 0)
		return r;
	if (!json_is_array(list))
		return kiva_error_set(&ctx->error, -EIO, "Malformed %s from kivad", what);
	return cli_print_items(ctx, list, format, columns, ncolumns, row, 0);
}

/* "KEY VALUE": exactly two arguments left and the first has no '='. */
static bool pairs_are_key_value(const struct cli_args *a, size_t first)
{
	return a->n_positional == first + 2 && !strchr(a->positional[first], '=');
}

int cli_pairs_check(struct cli_context *ctx, const struct cli_args *a, size_t first)
{
	if (pairs_are_key_value(a, first))
		return 0;
	for (size_t i = first; i < a->n_positional; i++)
		if (!strchr(a->positional[i], '=') || a->positional[i][0] == '=')
			return cli_usage_error(ctx, "Bad key=value pair: %s", a->positional[i]);
	return 0;
}

int cli_pairs_apply(struct cli_context *ctx, json_t *obj, const struct cli_args *a, size_t first)
{
	if (pairs_are_key_value(a, first))
		return json_set_str(obj, a->positional[first], a->positional[first + 1]) < 0
			       ? cli_oom(ctx)
			       : 0;
	for (size_t i = first; i < a->n_positional; i++) {
		int r = cli_config_add(obj, a->positional[i], &ctx->error);

		if (r < 0)
			return r;
	}
	return 0;
}
