/* The kiva verbs: the command table entry each verb file exports, the per-invocation context they
 * share, and the helpers several verbs use. A verb returns an exit status (>= 0) or -errno after
 * putting the message for "Error: ..." in ctx->error; main prints it once. */
#pragma once

#include <stdbool.h>

#include "basic-error.h"
#include "basic-json.h"
#include "cli-args.h"
#include "cli-client.h"
#include "cli-output.h"

#define CLI_DEFAULT_SOCKET "/run/kiva/unix.socket"

struct cli_context {
	struct cli_global global;
	struct cli_client *client; /* created by cli_context_client on first use */
	struct kiva_error error; /* the message main prints as "Error: <msg>" */
	bool usage_hint; /* also print "Run 'kiva VERB --help' for usage." */
	const char *verb; /* "launch", or "config set" for sub-commands */
};

struct cli_command {
	const char *name;
	int (*run)(struct cli_context *ctx, int argc, char **argv); /* argv[0] is the verb */
	const char *summary; /* one line for `kiva --help` */
	const char *usage; /* full text for `kiva VERB --help` */
};

extern const struct cli_command cli_command_launch, cli_command_init, cli_command_start,
	cli_command_stop, cli_command_restart, cli_command_pause, cli_command_resume,
	cli_command_delete, cli_command_list, cli_command_info, cli_command_exec,
	cli_command_config, cli_command_image, cli_command_operation, cli_command_query,
	cli_command_version, cli_command_network, cli_command_snapshot, cli_command_restore,
	cli_command_rename, cli_command_copy, cli_command_export, cli_command_import,
	cli_command_publish, cli_command_monitor, cli_command_console;

/* "kiva network acl ...": a sub-command group of network, in cli-network-acl.c. */
extern const struct cli_command cli_command_network_acl;

/* "kiva file push|pull|delete": cli-file.c. */
extern const struct cli_command cli_command_file;

/* The client for the socket chosen by --socket > $KIVA_SOCKET > /run/kiva/unix.socket. */
int cli_context_client(struct cli_context *ctx, struct cli_client **ret);
void cli_context_done(struct cli_context *ctx);
const char *cli_socket_path(const struct cli_context *ctx);

/* Prints cmd's usage and the global flags to stdout. Returns 0. */
int cli_help(const struct cli_command *cmd);
/* Records a usage error (printed with a hint to run --help). Returns -EINVAL. */
int cli_usage_error(struct cli_context *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* How a verb's arguments look: its options, how many positionals it takes (min..max; max < 0: no
 * limit), and the handler that receives each option's id and argument (it returns 0, or -EINVAL with
 * a message for a bad value). */
struct cli_parse {
	const struct cli_command *cmd;
	const struct cli_option *options;
	int min_args;
	int max_args;
	size_t stop_after; /* positionals after which option parsing stops (exec) */
	int (*handle)(void *userdata, int id, const char *arg, struct kiva_error *reterr);
	void *userdata;
};
/* Parses argv by spec into *ret_args (positionals; free with cli_args_done, also on error). Prints
 * the usage for --help. Returns 1 when the verb should go on, 0 when it is done (help printed),
 * -errno with ctx->error set on a usage error. */
int cli_parse_args(struct cli_context *ctx, const struct cli_parse *spec, int argc, char **argv,
		   struct cli_args *ret_args);

/* Dispatches "kiva VERB SUB ..." to the sub-command named argv[1] among subs (n entries). Groups
 * nest ("kiva network acl rule add"): ctx->verb grows one word per level. */
int cli_dispatch_sub(struct cli_context *ctx, const struct cli_command *parent,
		     const struct cli_command *const *subs, size_t n, int argc, char **argv);

/* "<collection>/<name><suffix>" with name percent-encoded: cli_resource_path("/1.0/networks",
 * "br0", "/state"). suffix may be NULL. Caller frees; NULL on OOM. */
char *cli_resource_path(const char *collection, const char *name, const char *suffix);
/* "/1.0/instances/<name><suffix>" with name percent-encoded. Caller frees; NULL on OOM. */
char *cli_instance_path(const char *name, const char *suffix);

/* "/1.0/instances/<instance>/snapshots/<snap>", both percent-encoded. Caller frees; NULL on OOM. */
char *cli_snapshot_path(const char *instance, const char *snap);

/* DELETE a snapshot (POST {"name": new_name}: rename it) and wait for the operation. Returns 0 or
 * -errno with ctx->error set (cli-snapshot.c). */
int cli_snapshot_delete(struct cli_context *ctx, const char *instance, const char *snap);
int cli_snapshot_rename(struct cli_context *ctx, const char *instance, const char *old,
			const char *new_name);

/* Prints the snapshot as YAML in the order lxc config show NAME/SNAP uses. Returns 0 or -errno
 * with ctx->error set. */
int cli_snapshot_show(struct cli_context *ctx, const char *instance, const char *snap);

/* Prints the snapshots of instance name as a table (NAME, TAKEN AT, EXPIRES AT, SIZE, STATEFUL),
 * oldest first; with only_if_any, under a "Snapshots:" heading and only when there are some (kiva
 * info). Returns 0 or -errno with ctx->error set. */
int cli_snapshots_print(struct cli_context *ctx, const char *name, bool only_if_any);

/* GETs the object at path into *ret_obj (new reference) and its ETag into *ret_etag (may be NULL;
 * NULL when the server sent none). A response that is not a JSON object is -EIO ("Malformed
 * <what> from kivad"). Returns 0 or -errno with ctx->error set. */
int cli_object_get(struct cli_context *ctx, const char *path, const char *what, json_t **ret_obj,
		   char **ret_etag);

/* Changes obj in place for cli_object_edit; returns 0 or -errno with ctx->error set. It may run
 * more than once (once per attempt), each time on a freshly read object. */
typedef int (*cli_edit_fn)(struct cli_context *ctx, json_t *obj, void *userdata);

/* Read-modify-write of the object at path: GET (with its ETag), edit, then PUT the keys named in
 * writable (NULL-terminated; those present in the object) with If-Match, waiting for the operation
 * when the server answers with one. When another client changed the object in between (412), reads
 * it again and redoes the edit, so concurrent edits are all kept. Returns 0 or -errno with
 * ctx->error set. */
int cli_object_edit(struct cli_context *ctx, const char *path, const char *what,
		    const char *const *writable, cli_edit_fn edit, void *userdata);

/* GET /1.0/instances/<name> as cli_object_get. */
int cli_instance_get(struct cli_context *ctx, const char *name, json_t **ret_inst, char **ret_etag);
/* cli_object_edit on /1.0/instances/<name> with api.InstancePut's writable fields (architecture,
 * config, devices, ephemeral, profiles, stateful, description). */
int cli_instance_edit(struct cli_context *ctx, const char *name, cli_edit_fn edit, void *userdata);

/* PUT /1.0/instances/<name>/state {"action","timeout","force"} and wait. */
int cli_instance_action(struct cli_context *ctx, const char *name, const char *action, int timeout,
			bool force);

/* Prints a JSON value to stdout as lxc does for --format json (compact, one line). */
int cli_print_json(const json_t *v);

/* Prints items (a JSON array) as `--format` asks: JSON, YAML, or a table (or CSV) with the given
 * columns and one row per item filled by row(); the table is sorted on sort_col unless it is
 * negative. Returns 0 or a negative errno with ctx->error set. */
/* A whole `list` verb without filters: parses --format, GETs path (a recursion=1 list) and
 * prints it with cli_print_items sorted on the first column. what names the list in errors. */
int cli_list_verb(struct cli_context *ctx, const struct cli_command *cmd, int argc, char **argv,
		  const char *path, const char *what, const char *const *columns, size_t ncolumns,
		  int (*row)(struct cli_table *t, const json_t *item));

/* `set` verbs take either "KEY VALUE" or "KEY=VALUE..." from positional argument `first` on.
 * cli_pairs_check: a usage error (returned) unless the arguments are one of those forms.
 * cli_pairs_apply: sets them as strings in obj. */
int cli_pairs_check(struct cli_context *ctx, const struct cli_args *a, size_t first);
int cli_pairs_apply(struct cli_context *ctx, json_t *obj, const struct cli_args *a, size_t first);

int cli_print_items(struct cli_context *ctx, const json_t *items, enum cli_format format,
		    const char *const *columns, size_t ncolumns,
		    int (*row)(struct cli_table *t, const json_t *item), int sort_col);

struct cli_attach;
/* Opens the WebSockets of op (an operation object whose metadata holds {"fds": {"0": secret, ...}})
 * that a->mode needs ("0" and "control"; with CLI_ATTACH_EXEC "1" and "2" too) and runs
 * cli_attach_run on them; the sockets are closed on return. Does not wait for the operation.
 * Returns 0 or -errno with ctx->error set (cli-exec.c). */
int cli_attach_operation(struct cli_context *ctx, const json_t *op, struct cli_attach *a);

/* Sets ctx->error to "Out of memory" and returns -ENOMEM. */
int cli_oom(struct cli_context *ctx);
