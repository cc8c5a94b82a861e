/* kiva image build|import|list|show|delete: the local image store (/1.0/images). build asks one of
 * kivad's offline builders for an image; import streams an LXD-format unified tarball to the server
 * without reading it into memory. Images are named by alias or by fingerprint prefix. */
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli.h"

enum {
	OPT_ALIAS = 1,
};

static const struct cli_option options_alias[] = {
	{"alias", 0, true, OPT_ALIAS},
	{},
};

static const struct cli_option options_format[] = {
	{"format", 'f', true, 1},
	{},
};

static int handle_alias(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	json_t *aliases = userdata;

	if (!*arg)
		return kiva_error_set(reterr, -EINVAL, "Alias names cannot be empty");
	if (json_array_append_new(aliases, json_pack("{s:s}", "name", arg)) < 0)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	return 0;
}

/* ALIAS or fingerprint prefix → full fingerprint; an exact alias wins, as in lxc. Resolved from the
 * image list rather than GET /1.0/images/aliases/NAME, so alias names need no path encoding. Caller
 * frees. */
static int resolve_image(struct cli_context *ctx, struct cli_client *c, const char *name,
			 char **ret_fp)
{
	cleanup_json json_t *list = NULL;
	cleanup_free char *found = NULL;
	size_t n = strlen(name), matches = 0;
	int r;

	r = cli_get(c, "/1.0/images?recursion=1", &list, &ctx->error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *img = json_array_get(list, i);
		const json_t *aliases = json_object_get(img, "aliases");
		const char *fp = json_get_str(img, "fingerprint", "");

		for (size_t k = 0; k < json_array_size(aliases); k++)
			if (streq(json_get_str(json_array_get(aliases, k), "name", ""), name)) {
				*ret_fp = strdup(fp);
				return *ret_fp ? 0 : cli_oom(ctx);
			}
		if (n == 0 || !*fp || strncmp(fp, name, n) != 0)
			continue;
		matches++;
		free(found);
		found = strdup(fp);
		if (!found)
			return cli_oom(ctx);
	}
	if (matches > 1)
		return kiva_error_set(&ctx->error, -EINVAL, "More than one image matches '%s'",
				      name);
	if (!found)
		return kiva_error_set(&ctx->error, -ENOENT, "Image '%s' not found", name);
	*ret_fp = TAKE_PTR(found);
	return 0;
}

static int add_aliases(struct cli_context *ctx, struct cli_client *c, const json_t *aliases,
		       const char *fp)
{
	const json_t *a;
	size_t i;

	for (i = 0; i < json_array_size(aliases) && (a = json_array_get(aliases, i)); i++) {
		cleanup_json json_t *body =
			json_pack("{s:s, s:s, s:s}", "name", json_get_str(a, "name", ""), "target",
				  fp, "description", "");
		int r;

		if (!body)
			return cli_oom(ctx);
		r = cli_run(c, "POST", "/1.0/images/aliases", body, NULL, &ctx->error);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct cli_command sub_build, sub_import, sub_list, sub_show, sub_delete;

static int cmd_build(struct cli_context *ctx, int argc, char **argv)
{
	cleanup_json json_t *aliases = json_array(), *body = NULL, *meta = NULL;
	struct cli_parse spec = {
		.cmd = &sub_build,
		.options = options_alias,
		.min_args = 1,
		.max_args = 1,
		.handle = handle_alias,
		.userdata = aliases,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	const char *fp;
	int r;

	if (!aliases)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (json_array_size(aliases) == 0 &&
	    json_array_append_new(aliases, json_pack("{s:s}", "name", a.positional[0])) < 0)
		return cli_oom(ctx);
	body = json_pack("{s:{s:s, s:s}, s:O}", "source", "type", "builder", "name",
			 a.positional[0], "aliases", aliases);
	if (!body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_run(c, "POST", "/1.0/images", body, &meta, &ctx->error);
	if (r < 0)
		return r;
	fp = json_get_str(meta, "fingerprint", NULL);
	if (fp)
		printf("Image built with fingerprint: %s\n", fp);
	return 0;
}

static int cmd_import(struct cli_context *ctx, int argc, char **argv)
{
	cleanup_json json_t *aliases = json_array(), *meta = NULL;
	struct cli_parse spec = {
		.cmd = &sub_import,
		.options = options_alias,
		.min_args = 1,
		.max_args = 1,
		.handle = handle_alias,
		.userdata = aliases,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_close int fd = -EBADF;
	cleanup_free char *base = NULL;
	struct cli_call call = {
		.method = "POST", .path = "/1.0/images", .upload = true, .wait = true};
	struct cli_client *c;
	struct stat st;
	const char *fp;
	int r;

	if (!aliases)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	fd = open(a.positional[0], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to open '%s': %m",
				      a.positional[0]);
	if (!S_ISREG(st.st_mode))
		return kiva_error_set(&ctx->error, -EINVAL, "'%s' is not a regular file",
				      a.positional[0]);
	base = strdup(a.positional[0]);
	if (!base)
		return cli_oom(ctx);
	call.upload_fd = fd;
	call.upload_len = (uint64_t)st.st_size;
	call.filename = basename(base);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_call(c, &call, &meta, &ctx->error);
	if (r < 0)
		return r;
	fp = json_get_str(meta, "fingerprint", NULL);
	if (!fp)
		return kiva_error_set(&ctx->error, -EIO,
				      "kivad did not report the imported image's fingerprint");
	r = add_aliases(ctx, c, aliases, fp);
	if (r < 0)
		return r;
	printf("Image imported with fingerprint: %s\n", fp);
	return 0;
}

/* lxc's ALIAS cell: the shortest alias, and how many more there are. */
static char *alias_cell(const json_t *aliases)
{
	const char *best = NULL;
	const json_t *a;
	size_t i, n = json_array_size(aliases);

	for (i = 0; i < json_array_size(aliases) && (a = json_array_get(aliases, i)); i++) {
		const char *s = json_get_str(a, "name", "");

		if (!best || strlen(s) < strlen(best) ||
		    (strlen(s) == strlen(best) && strcmp(s, best) < 0))
			best = s;
	}
	if (!best)
		return strdup("");
	if (n > 1)
		return strf("%s (%zu more)", best, n - 1);
	return strdup(best);
}

static bool image_matches(const json_t *img, const char *const *filters, size_t n)
{
	const json_t *aliases = json_object_get(img, "aliases"), *a;
	size_t i;

	if (n == 0)
		return true;
	for (size_t k = 0; k < n; k++) {
		if (startswith(json_get_str(img, "fingerprint", ""), filters[k]))
			return true;
		for (i = 0; i < json_array_size(aliases); i++) {
			a = json_array_get(aliases, i);
			if (startswith(json_get_str(a, "name", ""), filters[k]))
				return true;
		}
	}
	return false;
}

static int image_row(struct cli_table *t, const json_t *img)
{
	const json_t *props = json_object_get(img, "properties");
	cleanup_free char *alias = alias_cell(json_object_get(img, "aliases")), *size = NULL,
			  *type = strdup(json_get_str(img, "type", "container"));
	char fp[13], date[64];
	const char *cells[8];

	snprintf(fp, sizeof(fp), "%s", json_get_str(img, "fingerprint", ""));
	size = strf("%.2fMiB", (double)json_get_int(img, "size", 0) / 1024.0 / 1024.0);
	if (!alias || !size || !type)
		return -ENOMEM;
	cells[0] = alias;
	cells[1] = fp;
	cells[2] = json_get_bool(img, "public", false) ? "yes" : "no";
	cells[3] = json_get_str(props, "description", "");
	cells[4] = json_get_str(img, "architecture", "");
	cells[5] = cli_ascii_upper(type);
	cells[6] = size;
	cells[7] = cli_format_time_upload(json_get_str(img, "uploaded_at", ""), date);
	return cli_table_add_row(t, cells);
}

static int cmd_list(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const columns[] = {"ALIAS",	     "FINGERPRINT",  "PUBLIC",
					      "DESCRIPTION", "ARCHITECTURE", "TYPE",
					      "SIZE",	     "UPLOAD DATE"};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_parse spec = {
		.cmd = &sub_list,
		.options = options_format,
		.min_args = 0,
		.max_args = -1,
		.handle = cli_handle_format,
		.userdata = &format,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *list = NULL, *shown = json_array();
	struct cli_client *c;
	const json_t *img;
	size_t i;
	int r;

	if (!shown)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_get(c, "/1.0/images?recursion=1", &list, &ctx->error);
	if (r < 0)
		return r;
	for (i = 0; i < json_array_size(list) && (img = json_array_get(list, i)); i++) {
		if (image_matches(img, a.positional, a.n_positional))
			json_array_append(shown, (json_t *)img);
	}
	return cli_print_items(ctx, shown, format, columns, ARRAY_SIZE(columns), image_row, 0);
}

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_show, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *fp = NULL, *path = NULL;
	cleanup_json json_t *img = NULL;
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = resolve_image(ctx, c, a.positional[0], &fp);
	if (r < 0)
		return r;
	path = strf("/1.0/images/%s", fp);
	if (!path)
		return cli_oom(ctx);
	r = cli_get(c, path, &img, &ctx->error);
	if (r < 0)
		return r;
	cli_yaml_print(stdout, img, 0);
	return 0;
}

static int cmd_delete(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_delete, .min_args = 1, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a.n_positional; i++) {
		cleanup_free char *fp = NULL, *path = NULL;

		r = resolve_image(ctx, c, a.positional[i], &fp);
		if (r < 0)
			return r;
		path = strf("/1.0/images/%s", fp);
		if (!path)
			return cli_oom(ctx);
		r = cli_run(c, "DELETE", path, NULL, NULL, &ctx->error);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct cli_command sub_build = {
	.name = "build",
	.run = cmd_build,
	.summary = "Build an image with one of kivad's offline builders",
	.usage = "Usage: kiva image build BUILDER [--alias ALIAS]...\n"
		 "\n"
		 "Build an image on the server with BUILDER: busybox (from busybox-static, no\n"
		 "network needed) or debian/<release> (debootstrap, e.g. debian/bookworm). The\n"
		 "image gets the alias BUILDER unless --alias is given.\n"
		 "\n"
		 "Flags:\n"
		 "      --alias ALIAS   Alias for the new image (repeatable)\n"
		 "\n"
		 "Example:\n"
		 "  kiva image build busybox && kiva launch busybox c1\n",
};

static const struct cli_command sub_import = {
	.name = "import",
	.run = cmd_import,
	.summary = "Import an image tarball",
	.usage = "Usage: kiva image import FILE [--alias ALIAS]...\n"
		 "\n"
		 "Upload FILE, an LXD-format unified image tarball (metadata.yaml, rootfs/,\n"
		 "templates/), to the server's image store.\n"
		 "\n"
		 "Flags:\n"
		 "      --alias ALIAS   Alias for the imported image (repeatable)\n"
		 "\n"
		 "Example:\n"
		 "  kiva image import ./alpine.tar.gz --alias alpine\n",
};

static const struct cli_command sub_list = {
	.name = "list",
	.run = cmd_list,
	.summary = "List images",
	.usage = "Usage: kiva image list [FILTER...] [flags]\n"
		 "\n"
		 "List the images whose alias or fingerprint starts with one of the FILTERs\n"
		 "(all when none).\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --format FORMAT   table (default), csv, json or yaml\n"
		 "\n"
		 "Example:\n"
		 "  kiva image list\n",
};

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show an image's properties as YAML",
	.usage = "Usage: kiva image show ALIAS|FINGERPRINT\n"
		 "\n"
		 "Print the image's record as YAML.\n"
		 "\n"
		 "Example:\n"
		 "  kiva image show busybox\n",
};

static const struct cli_command sub_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Delete images",
	.usage = "Usage: kiva image delete ALIAS|FINGERPRINT...\n"
		 "\n"
		 "Delete images, named by alias or by a unique fingerprint prefix.\n"
		 "\n"
		 "Example:\n"
		 "  kiva image delete busybox\n",
};

static const struct cli_command *const subs[] = {&sub_build, &sub_import, &sub_list, &sub_show,
						 &sub_delete};

static int cmd_image(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_image, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_image = {
	.name = "image",
	.run = cmd_image,
	.summary = "Build, import, list, show and delete images",
	.usage = "Usage: kiva image COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  build BUILDER [--alias A]   Build an image offline (busybox, debian/bookworm)\n"
		 "  import FILE [--alias A]     Import an LXD-format image tarball\n"
		 "  list [--format F]           List images\n"
		 "  show IMAGE                  Show an image as YAML\n"
		 "  delete IMAGE...             Delete images (alias or fingerprint prefix)\n"
		 "\n"
		 "Run 'kiva image COMMAND --help' for a command's flags.\n"
		 "\n"
		 "Example:\n"
		 "  kiva image build busybox && kiva image list\n",
};
