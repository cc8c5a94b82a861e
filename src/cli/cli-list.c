/* kiva list: the instances with their state (GET /1.0/instances?recursion=2), as an LXD table,
 * CSV, JSON or YAML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli.h"

enum {
	OPT_FORMAT = 1,
};

static const struct cli_option options[] = {
	{"format", 'f', true, OPT_FORMAT},
	{},
};

int cli_handle_format(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	if (cli_parse_format(arg, userdata) < 0)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid format '%s': table, csv, json or yaml", arg);
	return 0;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *cli_instance_addresses(const json_t *state, const char *family)
{
	json_t *network = json_object_get(state, "network");
	cleanup_strv char **v = NULL;
	size_t n, len = 0;
	char *out, *o;

	for (void *it = json_object_iter(network); it; it = json_object_iter_next(network, it)) {
		const char *ifname = json_object_iter_key(it);
		const json_t *dev = json_object_iter_value(it);
		const json_t *addrs = json_object_get(dev, "addresses");

		if (streq(ifname, "lo") || streq(json_get_str(dev, "type", ""), "loopback"))
			continue;
		for (size_t i = 0; i < json_array_size(addrs); i++) {
			const json_t *addr = json_array_get(addrs, i);
			const char *scope = json_get_str(addr, "scope", "global");

			if (!streq(json_get_str(addr, "family", ""), family) ||
			    streq(scope, "link") || streq(scope, "local"))
				continue;
			if (strv_push(&v, strf("%s (%s)", json_get_str(addr, "address", ""),
					       ifname)) < 0)
				return NULL;
		}
	}
	if (!v)
		return strdup("");
	n = strv_length(v);
	qsort(v, n, sizeof(char *), cmp_strp);
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	out = o = malloc(len);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s%s", i ? "\n" : "", v[i]);
	return out;
}

static bool matches(const char *name, const char *const *filters, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (startswith(name, filters[i]))
			return true;
	return false;
}

static int add_row(struct cli_table *t, const json_t *inst)
{
	const json_t *state = json_object_get(inst, "state");
	cleanup_free char *status = strdup(json_get_str(inst, "status", "")), *ipv4 = NULL,
			  *ipv6 = NULL, *type = NULL, *snaps = NULL;
	const char *cells[6];

	if (!json_is_object(state))
		state = NULL;
	ipv4 = cli_instance_addresses(state, "inet");
	ipv6 = cli_instance_addresses(state, "inet6");
	type = strf("%s%s", json_get_str(inst, "type", "container"),
		    json_get_bool(inst, "ephemeral", false) ? " (EPHEMERAL)" : "");
	snaps = strf("%zu", json_array_size(json_object_get(inst, "snapshots")));
	if (!status || !ipv4 || !ipv6 || !type || !snaps)
		return -ENOMEM;
	cells[0] = json_get_str(inst, "name", "");
	cells[1] = cli_ascii_upper(status);
	cells[2] = ipv4;
	cells[3] = ipv6;
	cells[4] = cli_ascii_upper(type);
	cells[5] = snaps;
	return cli_table_add_row(t, cells);
}

static int cmd_list(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const columns[] = {"NAME", "STATE", "IPV4", "IPV6", "TYPE", "SNAPSHOTS"};
	enum cli_format format = CLI_FORMAT_TABLE;
	struct cli_parse spec = {
		.cmd = &cli_command_list,
		.options = options,
		.min_args = 0,
		.max_args = -1,
		.handle = cli_handle_format,
		.userdata = &format,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *list = NULL, *shown = NULL;
	struct cli_client *c;
	const json_t *inst;
	size_t i;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_get(c, "/1.0/instances?recursion=2", &list, &ctx->error);
	if (r < 0)
		return r;
	if (!json_is_array(list))
		return kiva_error_set(&ctx->error, -EIO, "Malformed instance list from kivad");
	shown = json_array();
	if (!shown)
		return cli_oom(ctx);
	for (i = 0; i < json_array_size(list) && (inst = json_array_get(list, i)); i++) {
		if (matches(json_get_str(inst, "name", ""), a.positional, a.n_positional))
			json_array_append(shown, (json_t *)inst);
	}

	return cli_print_items(ctx, shown, format, columns, ARRAY_SIZE(columns), add_row, 0);
}

const struct cli_command cli_command_list = {
	.name = "list",
	.run = cmd_list,
	.summary = "List instances",
	.usage = "Usage: kiva list [PREFIX...] [flags]\n"
		 "\n"
		 "List the instances whose name starts with one of the PREFIXes (all when none),\n"
		 "with their state, addresses and type.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --format FORMAT   table (default), csv, json or yaml\n"
		 "\n"
		 "Example:\n"
		 "  kiva list --format csv\n",
};
