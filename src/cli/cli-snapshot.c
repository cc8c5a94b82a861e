/* kiva snapshot and kiva restore: instance snapshots (/1.0/instances/NAME/snapshots). As lxc
 * (LXD 5.0), `kiva snapshot NAME [SNAP]` takes one and `kiva restore NAME SNAP` puts the instance
 * back to it (PUT /1.0/instances/NAME {"restore": SNAP}; the server stops a running instance,
 * restores and starts it again). The sub-commands `kiva snapshot create|delete|list|rename|
 * restore|show` are the later lxc's grouping of the same; `kiva delete NAME/SNAP` and `kiva rename
 * NAME/OLD NAME/NEW` (lxc 5.0's forms) use the helpers here too. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli-snap.h"
#include "cli.h"

enum {
	OPT_STATEFUL = 1,
	OPT_REUSE,
	OPT_NO_EXPIRY,
	OPT_FORMAT,
};

/* ---- shared with kiva delete and kiva rename ---------------------------------------------- */

int cli_snapshot_delete(struct cli_context *ctx, const char *instance, const char *snap)
{
	cleanup_free char *path = cli_snapshot_path(instance, snap);
	struct cli_client *c;
	int r;

	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_run(c, "DELETE", path, NULL, NULL, &ctx->error);
}

int cli_snapshot_rename(struct cli_context *ctx, const char *instance, const char *old,
			const char *new_name)
{
	cleanup_free char *path = cli_snapshot_path(instance, old);
	cleanup_json json_t *body = json_pack("{s:s}", "name", new_name);
	struct cli_client *c;
	int r;

	if (!path || !body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_run(c, "POST", path, body, NULL, &ctx->error);
}

/* INSTANCE and SNAPSHOT from "NAME SNAP" (two positionals from first) or "NAME/SNAP" (one). */
static int snapshot_args(struct cli_context *ctx, const struct cli_args *a, size_t first,
			 char **ret_instance, char **ret_snap)
{
	cleanup_free char *inst = NULL, *snap = NULL;
	size_t n = a->n_positional - first;
	int r;

	r = cli_snapshot_split(a->positional[first], &inst, &snap, &ctx->error);
	if (r < 0)
		return r;
	if (snap ? n != 1 : n != 2)
		return cli_usage_error(ctx, "Invalid number of arguments");
	if (!snap) {
		snap = strdup(a->positional[first + 1]);
		if (!snap)
			return cli_oom(ctx);
	}
	*ret_instance = TAKE_PTR(inst);
	*ret_snap = TAKE_PTR(snap);
	return 0;
}

/* ---- create ------------------------------------------------------------------------------- */

struct create_opts {
	bool stateful;
	bool reuse;
	bool no_expiry;
};

static const struct cli_option create_options[] = {
	{"stateful", 0, false, OPT_STATEFUL},
	{"reuse", 0, false, OPT_REUSE},
	{"no-expiry", 0, false, OPT_NO_EXPIRY},
	{},
};

static int handle_create(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct create_opts *o = userdata;

	if (id == OPT_STATEFUL)
		o->stateful = true;
	else if (id == OPT_REUSE)
		o->reuse = true;
	else if (id == OPT_NO_EXPIRY)
		o->no_expiry = true;
	return 0;
}

/* --reuse: delete SNAP first when it exists (lxc snapshot --reuse). */
static int delete_if_exists(struct cli_context *ctx, struct cli_client *c, const char *name,
			    const char *snap)
{
	cleanup_free char *path = cli_snapshot_path(name, snap);
	cleanup_json json_t *old = NULL;
	int r;

	if (!path)
		return cli_oom(ctx);
	r = cli_get(c, path, &old, &ctx->error);
	if (r == -ENOENT) {
		ctx->error = (struct kiva_error){0};
		return 0;
	}
	if (r < 0)
		return r;
	return cli_snapshot_delete(ctx, name, snap);
}

static int snapshot_create(struct cli_context *ctx, const struct cli_command *cmd, int argc,
			   char **argv)
{
	struct create_opts o = {0};
	struct cli_parse spec = {
		.cmd = cmd,
		.options = create_options,
		.min_args = 1,
		.max_args = 2,
		.handle = handle_create,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	cleanup_json json_t *body = NULL;
	struct cli_client *c;
	const char *name, *snap;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	name = a.positional[0];
	snap = a.n_positional > 1 ? a.positional[1] : NULL;
	if (snap && (!*snap || strchr(snap, '/')))
		return cli_usage_error(ctx, "Invalid snapshot name '%s'", snap);
	path = cli_instance_path(name, "/snapshots");
	body = json_pack("{s:b}", "stateful", o.stateful);
	if (!path || !body || (snap && json_set_str(body, "name", snap) < 0) ||
	    (o.no_expiry && json_set_str(body, "expires_at", "0001-01-01T00:00:00Z") < 0))
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (o.reuse && snap) {
		r = delete_if_exists(ctx, c, name, snap);
		if (r < 0)
			return r;
	}
	return cli_run(c, "POST", path, body, NULL, &ctx->error);
}

static const struct cli_command sub_create;

static int cmd_create(struct cli_context *ctx, int argc, char **argv)
{
	return snapshot_create(ctx, &sub_create, argc, argv);
}

static const struct cli_command sub_create = {
	.name = "create",
	.run = cmd_create,
	.summary = "Take a snapshot of an instance",
	.usage = "Usage: kiva snapshot create NAME [SNAP] [flags]\n"
		 "\n"
		 "The same as 'kiva snapshot NAME [SNAP]'.\n"
		 "\n"
		 "Flags:\n"
		 "      --stateful    Also save the running processes (needs CRIU on the server)\n"
		 "      --reuse       Replace SNAP if it exists\n"
		 "      --no-expiry   Never expire, whatever snapshots.expiry says\n"
		 "\n"
		 "Example:\n"
		 "  kiva snapshot create c1 before-upgrade\n",
};

/* ---- delete ------------------------------------------------------------------------------- */

static const struct cli_command sub_delete;

static int cmd_delete(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_delete, .min_args = 1, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (strchr(a.positional[0], '/')) {
		/* NAME/SNAP... */
		for (size_t i = 0; i < a.n_positional; i++) {
			cleanup_free char *inst = NULL, *snap = NULL;

			r = cli_snapshot_split(a.positional[i], &inst, &snap, &ctx->error);
			if (r < 0)
				return r;
			if (!snap)
				return cli_usage_error(ctx, "'%s' is not a snapshot (NAME/SNAP)",
						       a.positional[i]);
			r = cli_snapshot_delete(ctx, inst, snap);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (a.n_positional < 2)
		return cli_usage_error(ctx, "Invalid number of arguments");
	for (size_t i = 1; i < a.n_positional; i++) {
		r = cli_snapshot_delete(ctx, a.positional[0], a.positional[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct cli_command sub_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Delete snapshots",
	.usage = "Usage: kiva snapshot delete NAME SNAP...\n"
		 "       kiva snapshot delete NAME/SNAP...\n"
		 "\n"
		 "Delete snapshots of instance NAME (also 'kiva delete NAME/SNAP', as lxc).\n"
		 "\n"
		 "Example:\n"
		 "  kiva snapshot delete c1 snap0 snap1\n"
		 "  kiva delete c1/snap0\n",
};

/* ---- list --------------------------------------------------------------------------------- */

/* GET .../snapshots?recursion=1, oldest first. */
static int snapshots_get(struct cli_context *ctx, const char *name, json_t **ret)
{
	cleanup_free char *path = cli_instance_path(name, "/snapshots?recursion=1");
	cleanup_json json_t *list = NULL;
	struct cli_client *c;
	json_t *sorted;
	int r;

	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_get(c, path, &list, &ctx->error);
	if (r < 0)
		return r;
	if (!json_is_array(list))
		return kiva_error_set(&ctx->error, -EIO, "Malformed snapshot list from kivad");
	sorted = cli_snapshots_sorted(list);
	if (!sorted)
		return cli_oom(ctx);
	*ret = sorted;
	return 0;
}

int cli_snapshots_print(struct cli_context *ctx, const char *name, bool only_if_any)
{
	cleanup_json json_t *list = NULL;
	int r;

	r = snapshots_get(ctx, name, &list);
	if (r < 0)
		return r;
	if (only_if_any && json_array_size(list) == 0)
		return 0;
	if (only_if_any)
		printf("\nSnapshots:\n");
	return cli_print_items(ctx, list, CLI_FORMAT_TABLE, cli_snapshot_columns,
			       CLI_SNAPSHOT_COLUMNS, cli_snapshot_row, -1);
}

static const struct cli_command sub_list;

static int cmd_list(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {{"format", 'f', true, OPT_FORMAT}, {}};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_parse spec = {
		.cmd = &sub_list,
		.options = options,
		.min_args = 1,
		.max_args = 1,
		.handle = cli_handle_format,
		.userdata = &format,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *list = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = snapshots_get(ctx, a.positional[0], &list);
	if (r < 0)
		return r;
	return cli_print_items(ctx, list, format, cli_snapshot_columns, CLI_SNAPSHOT_COLUMNS,
			       cli_snapshot_row, -1);
}

static const struct cli_command sub_list = {
	.name = "list",
	.run = cmd_list,
	.summary = "List an instance's snapshots",
	.usage = "Usage: kiva snapshot list NAME [flags]\n"
		 "\n"
		 "List the snapshots of instance NAME, oldest first: NAME, TAKEN AT, EXPIRES AT\n"
		 "(empty: never), SIZE and STATEFUL.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --format FORMAT   table (default), csv, json or yaml\n"
		 "\n"
		 "Example:\n"
		 "  kiva snapshot list c1\n",
};

/* ---- rename ------------------------------------------------------------------------------- */

static const struct cli_command sub_rename;

static int cmd_rename(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_rename, .min_args = 2, .max_args = 3};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *inst = NULL, *old = NULL, *new_name = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional == 3)
		return cli_snapshot_rename(ctx, a.positional[0], a.positional[1], a.positional[2]);
	r = cli_rename_parse(a.positional[0], a.positional[1], &inst, &old, &new_name, &ctx->error);
	if (r < 0)
		return r;
	return cli_snapshot_rename(ctx, inst, old, new_name);
}

static const struct cli_command sub_rename = {
	.name = "rename",
	.run = cmd_rename,
	.summary = "Rename a snapshot",
	.usage = "Usage: kiva snapshot rename NAME OLD NEW\n"
		 "       kiva snapshot rename NAME/OLD NAME/NEW\n"
		 "\n"
		 "Rename snapshot OLD of instance NAME to NEW (also 'kiva rename NAME/OLD\n"
		 "NAME/NEW', as lxc).\n"
		 "\n"
		 "Example:\n"
		 "  kiva snapshot rename c1 snap0 before-upgrade\n",
};

/* ---- restore ------------------------------------------------------------------------------ */

static int restore_verb(struct cli_context *ctx, const struct cli_command *cmd, int argc,
			char **argv)
{
	static const struct cli_option options[] = {{"stateful", 0, false, OPT_STATEFUL}, {}};
	struct create_opts o = {0};
	struct cli_parse spec = {
		.cmd = cmd,
		.options = options,
		.min_args = 1,
		.max_args = 2,
		.handle = handle_create,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *inst = NULL, *split_snap = NULL, *path = NULL;
	cleanup_json json_t *body = NULL;
	struct cli_client *c;
	const char *snap;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional == 1) {
		/* kiva restore NAME/SNAP */
		r = cli_snapshot_split(a.positional[0], &inst, &split_snap, &ctx->error);
		if (r < 0)
			return r;
		if (!split_snap)
			return cli_usage_error(ctx, "Invalid number of arguments");
		snap = split_snap;
	} else {
		inst = strdup(a.positional[0]);
		if (!inst)
			return cli_oom(ctx);
		r = cli_restore_snapshot_name(inst, a.positional[1], &snap, &ctx->error);
		if (r < 0)
			return r;
	}
	path = cli_instance_path(inst, NULL);
	body = json_pack("{s:s, s:b}", "restore", snap, "stateful", o.stateful);
	if (!path || !body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_run(c, "PUT", path, body, NULL, &ctx->error);
}

#define RESTORE_USAGE                                                                              \
	"\n"                                                                                       \
	"Put instance NAME back to snapshot SNAP: its root file system, config and\n"              \
	"devices. A running instance is stopped, restored and started again. SNAP may also\n"      \
	"be written NAME/SNAP.\n"                                                                  \
	"\n"                                                                                       \
	"Flags:\n"                                                                                 \
	"      --stateful   Also restore the running processes (stateful snapshots only)\n"        \
	"\n"                                                                                       \
	"Example:\n"                                                                               \
	"  kiva restore c1 before-upgrade\n"

static const struct cli_command sub_restore;

static int cmd_sub_restore(struct cli_context *ctx, int argc, char **argv)
{
	return restore_verb(ctx, &sub_restore, argc, argv);
}

static const struct cli_command sub_restore = {
	.name = "restore",
	.run = cmd_sub_restore,
	.summary = "Restore an instance from a snapshot",
	.usage = "Usage: kiva snapshot restore NAME SNAP [flags]\n" RESTORE_USAGE,
};

static int cmd_restore(struct cli_context *ctx, int argc, char **argv)
{
	return restore_verb(ctx, &cli_command_restore, argc, argv);
}

const struct cli_command cli_command_restore = {
	.name = "restore",
	.run = cmd_restore,
	.summary = "Restore an instance from a snapshot",
	.usage = "Usage: kiva restore NAME SNAP [flags]\n" RESTORE_USAGE,
};

/* ---- show --------------------------------------------------------------------------------- */

int cli_snapshot_show(struct cli_context *ctx, const char *instance, const char *snap)
{
	/* api.InstanceSnapshot's field order, as lxc config show NAME/SNAP prints it */
	static const char *const keys[] = {
		"expires_at",	    "description",  "architecture", "config",
		"created_at",	    "devices",	    "ephemeral",    "expanded_config",
		"expanded_devices", "last_used_at", "name",	    "profiles",
		"stateful",	    "size",	    NULL,
	};
	cleanup_free char *path = cli_snapshot_path(instance, snap);
	cleanup_json json_t *obj = NULL;
	int r;

	if (!path)
		return cli_oom(ctx);
	r = cli_object_get(ctx, path, "snapshot", &obj, NULL);
	if (r < 0)
		return r;
	cli_yaml_print_keys(stdout, obj, keys);
	return 0;
}

static const struct cli_command sub_show;

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_show, .min_args = 1, .max_args = 2};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *inst = NULL, *snap = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = snapshot_args(ctx, &a, 0, &inst, &snap);
	if (r < 0)
		return r;
	return cli_snapshot_show(ctx, inst, snap);
}

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show a snapshot as YAML",
	.usage = "Usage: kiva snapshot show NAME SNAP\n"
		 "       kiva snapshot show NAME/SNAP\n"
		 "\n"
		 "Print the snapshot's record as YAML: when it was taken and expires, and the\n"
		 "config and devices it restores.\n"
		 "\n"
		 "Example:\n"
		 "  kiva snapshot show c1 snap0\n",
};

/* ---- the group ---------------------------------------------------------------------------- */

static const struct cli_command *const subs[] = {&sub_create, &sub_delete,  &sub_list,
						 &sub_rename, &sub_restore, &sub_show};

static int cmd_snapshot(struct cli_context *ctx, int argc, char **argv)
{
	if (argc <= 1)
		return cli_help(&cli_command_snapshot);
	if (cli_snapshot_sub_index(argc, argv) > 0)
		return cli_dispatch_sub(ctx, &cli_command_snapshot, subs, ARRAY_SIZE(subs), argc,
					argv);
	return snapshot_create(ctx, &cli_command_snapshot, argc, argv);
}

const struct cli_command cli_command_snapshot = {
	.name = "snapshot",
	.run = cmd_snapshot,
	.summary = "Take, list, rename, restore and delete snapshots",
	.usage = "Usage: kiva snapshot NAME [SNAP] [flags]\n"
		 "       kiva snapshot COMMAND ...\n"
		 "\n"
		 "Take a snapshot of instance NAME named SNAP, or, without SNAP, named by the\n"
		 "instance's snapshots.pattern (default snap0, snap1, ...). A running instance\n"
		 "is frozen for the moment the snapshot takes.\n"
		 "\n"
		 "Commands:\n"
		 "  create NAME [SNAP]       The same as kiva snapshot NAME [SNAP]\n"
		 "  delete NAME SNAP...      Delete snapshots (also kiva delete NAME/SNAP)\n"
		 "  list NAME [--format F]   List the snapshots of NAME\n"
		 "  rename NAME OLD NEW      Rename a snapshot (also kiva rename NAME/OLD NEW)\n"
		 "  restore NAME SNAP        Restore NAME from a snapshot (also kiva restore)\n"
		 "  show NAME SNAP           Show a snapshot as YAML\n"
		 "\n"
		 "Flags:\n"
		 "      --stateful    Also save the running processes (needs CRIU on the server)\n"
		 "      --reuse       Replace SNAP if it exists\n"
		 "      --no-expiry   Never expire, whatever snapshots.expiry says\n"
		 "\n"
		 "Example:\n"
		 "  kiva snapshot c1 before-upgrade\n"
		 "  kiva snapshot c1\n"
		 "  kiva snapshot list c1\n"
		 "  kiva restore c1 before-upgrade\n",
};
