/* kiva export and kiva import: instance backups as files, as lxc export/import do it.
 *
 * export: POST /1.0/instances/NAME/backups (a backup named kiva-export-<random> that expires in an
 * hour should the CLI die half-way), wait for it, GET .../backups/BACKUP/export streamed to the
 * file in 64 KiB pieces (memory stays flat whatever the size), then DELETE the backup. The file is
 * written next to its final name and renamed over it once complete, so a failed export leaves no
 * partial file and an existing one untouched.
 *
 * import: POST /1.0/instances with the file as the body (application/octet-stream, streamed from
 * the file, X-LXD-name: NAME when given), then wait for the operation. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "proto-name.h"

#include "cli-snap.h"
#include "cli.h"

#define EXPORT_EXPIRY_SEC 3600L

enum {
	OPT_INSTANCE_ONLY = 1,
	OPT_COMPRESSION,
	OPT_STORAGE,
};

struct export_opts {
	bool instance_only;
	const char *compression;
};

static int handle_export(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct export_opts *o = userdata;

	if (id == OPT_INSTANCE_ONLY) {
		o->instance_only = true;
		return 0;
	}
	if (!cli_export_extension(arg))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid compression '%s': gzip, zstd or none", arg);
	o->compression = arg;
	return 0;
}

/* Where the backup goes: FILE itself when it exists and is not a regular file (/dev/stdout, a
 * pipe), else a temporary file next to FILE that replaces it once complete. */
struct export_out {
	const char *file;
	char *tmp; /* NULL when writing FILE itself */
	int fd;
};

static int out_open(struct cli_context *ctx, const char *file, struct export_out *ret)
{
	cleanup_free char *tmp = NULL;
	struct stat st;
	int fd;

	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode))
			return kiva_error_set(&ctx->error, -EISDIR, "'%s' is a directory", file);
		fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC);
	} else {
		tmp = strf("%s.partial-XXXXXX", file);
		if (!tmp)
			return cli_oom(ctx);
		fd = mkostemp(tmp, O_CLOEXEC);
	}
	if (fd < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to create '%s': %m", file);
	*ret = (struct export_out){.file = file, .tmp = TAKE_PTR(tmp), .fd = fd};
	return 0;
}

static void out_abort(struct export_out *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -EBADF;
	if (o->tmp)
		(void)unlink(o->tmp);
	free(o->tmp);
	o->tmp = NULL;
}

static int out_commit(struct cli_context *ctx, struct export_out *o)
{
	int r = 0;

	if (o->tmp && fsync(o->fd) < 0)
		r = kiva_error_set(&ctx->error, -errno, "Failed to write '%s': %m", o->file);
	if (close(o->fd) < 0 && r == 0)
		r = kiva_error_set(&ctx->error, -errno, "Failed to write '%s': %m", o->file);
	o->fd = -EBADF;
	if (r == 0 && o->tmp && rename(o->tmp, o->file) < 0)
		r = kiva_error_set(&ctx->error, -errno, "Failed to rename '%s' to '%s': %m", o->tmp,
				   o->file);
	if (r < 0) {
		out_abort(o);
		return r;
	}
	free(o->tmp);
	o->tmp = NULL;
	return 0;
}

/* Is fd the file standard output writes to? Then the success line goes to stderr. */
static bool same_as_stdout(int fd)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && fstat(STDOUT_FILENO, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* "/1.0/instances/NAME/backups/BACKUP<suffix>" */
static char *backup_path(const char *name, const char *backup, const char *suffix)
{
	cleanup_free char *esc = cli_escape_path_segment(backup), *rest = NULL;

	rest = esc ? strf("/backups/%s%s", esc, suffix) : NULL;
	return rest ? cli_instance_path(name, rest) : NULL;
}

/* Creates the backup and waits for it; its name (as the server reports it) lands in backup, and
 * *ret_created is set once the server accepted it (so it must be deleted, also on failure). */
static int backup_create(struct cli_context *ctx, struct cli_client *c, const char *name,
			 const struct export_opts *o, char backup[static 64], bool *ret_created)
{
	cleanup_free char *path = cli_instance_path(name, "/backups"), *op_path = NULL;
	cleanup_json json_t *body = NULL, *op = NULL, *done = NULL;
	struct cli_call call = {.method = "POST"};
	const char *id;
	int r;

	r = cli_export_backup_name(backup);
	if (r < 0)
		return kiva_error_set(&ctx->error, r, "No randomness for a backup name: %s",
				      strerror(-r));
	body = cli_export_backup_body(backup, time(NULL), EXPORT_EXPIRY_SEC, o->instance_only,
				      o->compression);
	if (!path || !body)
		return cli_oom(ctx);
	call.path = path;
	call.body = body;
	r = cli_call(c, &call, &op, &ctx->error);
	if (r < 0)
		return r;
	*ret_created = true;
	id = json_get_str(op, "id", NULL);
	if (!id || !json_object_get(op, "status_code"))
		return 0; /* answered synchronously: the backup is there */
	(void)cli_backup_name_from_resources(json_object_get(op, "resources"), backup);
	op_path = strf("/1.0/operations/%s", id);
	if (!op_path)
		return cli_oom(ctx);
	return cli_wait_operation(c, op_path, &done, &ctx->error);
}

static void backup_delete(struct cli_client *c, const char *name, const char *backup)
{
	cleanup_free char *path = backup_path(name, backup, "");
	struct kiva_error ignored = {0};

	/* best effort, as lxc: an export that outlives us expires on the server */
	if (path)
		(void)cli_run(c, "DELETE", path, NULL, NULL, &ignored);
}

static int cmd_export(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {
		{"instance-only", 0, false, OPT_INSTANCE_ONLY},
		{"compression", 0, true, OPT_COMPRESSION},
		{},
	};
	struct export_opts o = {.compression = "gzip"};
	struct cli_parse spec = {
		.cmd = &cli_command_export,
		.options = options,
		.min_args = 1,
		.max_args = 2,
		.handle = handle_export,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *default_file = NULL, *path = NULL;
	struct export_out out = {.fd = -EBADF};
	struct cli_client *c;
	const char *name, *file;
	char backup[64] = "";
	bool to_stdout, created = false;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	name = a.positional[0];
	if (strchr(name, '/'))
		return kiva_error_set(&ctx->error, -EINVAL,
				      "Snapshots cannot be exported on their own: export instance "
				      "'%.*s' (its snapshots are included unless --instance-only)",
				      (int)strcspn(name, "/"), name);
	if (a.n_positional > 1) {
		file = a.positional[1];
	} else {
		default_file = cli_export_default_file(name, o.compression);
		if (!default_file)
			return cli_oom(ctx);
		file = default_file;
	}
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = out_open(ctx, file, &out);
	if (r < 0)
		return r;
	r = backup_create(ctx, c, name, &o, backup, &created);
	if (r < 0) {
		out_abort(&out);
		if (created)
			backup_delete(c, name, backup);
		return r;
	}
	path = backup_path(name, backup, "/export");
	r = path ? cli_get_raw(c, path, out.fd, &ctx->error) : cli_oom(ctx);
	if (r < 0) {
		out_abort(&out);
		backup_delete(c, name, backup);
		return r;
	}
	to_stdout = same_as_stdout(out.fd);
	r = out_commit(ctx, &out);
	backup_delete(c, name, backup);
	if (r < 0)
		return r;
	fputs("Backup exported successfully!\n", to_stdout ? stderr : stdout);
	return 0;
}

const struct cli_command cli_command_export = {
	.name = "export",
	.run = cmd_export,
	.summary = "Export an instance as a backup tarball",
	.usage = "Usage: kiva export NAME [FILE] [flags]\n"
		 "\n"
		 "Write a backup of instance NAME (its root file system, config and snapshots) to\n"
		 "FILE, by default NAME.tar.gz (NAME.tar.zst with --compression zstd, NAME.tar\n"
		 "with none). 'kiva import' (or lxc import) brings it back. The file is written\n"
		 "under a temporary name and replaces FILE only once complete (mode 0600).\n"
		 "\n"
		 "Flags:\n"
		 "      --instance-only        Leave the snapshots out\n"
		 "      --compression METHOD   gzip (default), zstd or none\n"
		 "\n"
		 "Example:\n"
		 "  kiva export c1\n"
		 "  kiva export c1 /var/backups/c1.tar.zst --compression zstd --instance-only\n",
};

/* ---- import ------------------------------------------------------------------------------- */

static int handle_import(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	*(const char **)userdata = arg;
	return 0;
}

static int cmd_import(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {{"storage", 's', true, OPT_STORAGE}, {}};
	const char *pool = NULL;
	struct cli_parse spec = {
		.cmd = &cli_command_import,
		.options = options,
		.min_args = 1,
		.max_args = 2,
		.handle = handle_import,
		.userdata = &pool,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_close int fd = -EBADF;
	cleanup_free char *name_header = NULL, *pool_header = NULL;
	const char *headers[3] = {NULL, NULL, NULL};
	struct cli_call call = {
		.method = "POST", .path = "/1.0/instances", .upload = true, .wait = true};
	struct cli_client *c;
	struct stat st;
	size_t n = 0;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.n_positional > 1) {
		r = proto_instance_name_validate(a.positional[1], &ctx->error);
		if (r < 0)
			return r;
		name_header = strf("X-LXD-name: %s", a.positional[1]);
		if (!name_header)
			return cli_oom(ctx);
		headers[n++] = name_header;
	}
	if (pool) {
		if (!*pool || strpbrk(pool, "\r\n"))
			return cli_usage_error(ctx, "Invalid storage pool name '%s'", pool);
		pool_header = strf("X-LXD-pool: %s", pool);
		if (!pool_header)
			return cli_oom(ctx);
		headers[n++] = pool_header;
	}
	fd = open(a.positional[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to open '%s': %m",
				      a.positional[0]);
	if (!S_ISREG(st.st_mode))
		return kiva_error_set(&ctx->error, -EINVAL, "'%s' is not a regular file",
				      a.positional[0]);
	call.upload_fd = fd;
	call.upload_len = (uint64_t)st.st_size;
	call.headers = headers;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	return cli_call(c, &call, NULL, &ctx->error);
}

const struct cli_command cli_command_import = {
	.name = "import",
	.run = cmd_import,
	.summary = "Create an instance from a backup tarball",
	.usage = "Usage: kiva import FILE [NAME] [flags]\n"
		 "\n"
		 "Create an instance from FILE, a backup written by 'kiva export' or lxc export,\n"
		 "named NAME or, without it, as the instance in the backup was. The file is\n"
		 "streamed to the server, never read into memory. The instance is left stopped.\n"
		 "\n"
		 "Flags:\n"
		 "  -s, --storage POOL   Storage pool (kivad has one: default)\n"
		 "\n"
		 "Example:\n"
		 "  kiva import c1.tar.gz\n"
		 "  kiva import c1.tar.gz c1-restored\n",
};
