/* kiva operation list|show|delete: kivad's background operations (/1.0/operations). */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli.h"

static const struct cli_option options_format[] = {
	{"format", 'f', true, 1},
	{},
};

static const struct cli_command sub_list, sub_show, sub_delete;

/* "ID" or "/1.0/operations/ID" → "/1.0/operations/ID". Caller frees. */
static char *operation_path(const char *id)
{
	cleanup_free char *esc = NULL;

	if (startswith(id, "/1.0/operations/"))
		id += strlen("/1.0/operations/");
	esc = cli_escape_path_segment(id);
	return esc ? strf("/1.0/operations/%s", esc) : NULL;
}

static int op_row(struct cli_table *t, const json_t *op)
{
	cleanup_free char *class = strdup(json_get_str(op, "class", "")),
			  *status = strdup(json_get_str(op, "status", ""));
	char created[64];
	const char *cells[6];

	if (!class || !status)
		return -ENOMEM;
	cells[0] = json_get_str(op, "id", "");
	cells[1] = cli_ascii_upper(class);
	cells[2] = json_get_str(op, "description", "");
	cells[3] = cli_ascii_upper(status);
	cells[4] = json_get_bool(op, "may_cancel", false) ? "YES" : "NO";
	cells[5] = cli_format_time_local(json_get_str(op, "created_at", ""), created);
	return cli_table_add_row(t, cells);
}

static int cmd_list(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const columns[] = {"ID",	"TYPE",	      "DESCRIPTION",
					      "STATUS", "CANCELABLE", "CREATED"};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_parse spec = {
		.cmd = &sub_list,
		.options = options_format,
		.min_args = 0,
		.max_args = 0,
		.handle = cli_handle_format,
		.userdata = &format,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *groups = NULL, *all = json_array();
	struct cli_client *c;
	const json_t *op;
	size_t i;
	int r;

	if (!all)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_get(c, "/1.0/operations?recursion=1", &groups, &ctx->error);
	if (r < 0)
		return r;
	/* {"running": [...], "success": [...], "failure": [...]} → one list */
	for (void *it = json_object_iter(groups); it; it = json_object_iter_next(groups, it)) {
		const json_t *ops = json_object_iter_value(it);

		for (i = 0; i < json_array_size(ops); i++) {
			op = json_array_get(ops, i);
			if (json_is_object(op))
				json_array_append(all, (json_t *)op);
		}
	}
	return cli_print_items(ctx, all, format, columns, ARRAY_SIZE(columns), op_row, -1);
}

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const keys[] = {"id",	 "class",      "description", "created_at",
					   "updated_at", "status",     "status_code", "resources",
					   "metadata",	 "may_cancel", "err",	      "location",
					   NULL};
	struct cli_parse spec = {.cmd = &sub_show, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	cleanup_json json_t *op = NULL;
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	path = operation_path(a.positional[0]);
	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_get(c, path, &op, &ctx->error);
	if (r < 0)
		return r;
	cli_yaml_print_keys(stdout, op, keys);
	return 0;
}

static int cmd_delete(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_delete, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	path = operation_path(a.positional[0]);
	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_call(c, &(struct cli_call){.method = "DELETE", .path = path}, NULL, &ctx->error);
}

static const struct cli_command sub_list = {
	.name = "list",
	.run = cmd_list,
	.summary = "List background operations",
	.usage = "Usage: kiva operation list [flags]\n"
		 "\n"
		 "List the server's running and recently finished background operations.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --format FORMAT   table (default), csv, json or yaml\n"
		 "\n"
		 "Example:\n"
		 "  kiva operation list\n",
};

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show a background operation as YAML",
	.usage = "Usage: kiva operation show ID\n"
		 "\n"
		 "Print one operation (its status, resources, metadata and error) as YAML.\n"
		 "\n"
		 "Example:\n"
		 "  kiva operation show 4f1b0e9a-7c55-4d6e-9d8e-0e5b8f0c2a11\n",
};

static const struct cli_command sub_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Cancel a background operation",
	.usage = "Usage: kiva operation delete ID\n"
		 "\n"
		 "Cancel a running operation (only those the server marks as cancelable).\n"
		 "\n"
		 "Example:\n"
		 "  kiva operation delete 4f1b0e9a-7c55-4d6e-9d8e-0e5b8f0c2a11\n",
};

static const struct cli_command *const subs[] = {&sub_list, &sub_show, &sub_delete};

static int cmd_operation(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_operation, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_operation = {
	.name = "operation",
	.run = cmd_operation,
	.summary = "List, show and cancel background operations",
	.usage = "Usage: kiva operation COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  list [--format F]   List operations\n"
		 "  show ID             Show an operation as YAML\n"
		 "  delete ID           Cancel an operation\n"
		 "\n"
		 "Example:\n"
		 "  kiva operation list\n",
};
