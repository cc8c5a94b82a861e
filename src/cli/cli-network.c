/* kiva network create|list|show|info|get|set|unset|delete|attach|detach, and the acl group
 * (cli-network-acl.c): managed bridges (/1.0/networks, LXD's shapes and lxc's syntax). get, set
 * and unset change a network's config with GET + PUT (If-Match, redone after a 412); attach and
 * detach add or remove a NIC device on an instance the same way. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli-net.h"
#include "cli.h"

enum {
	OPT_DESCRIPTION = 1,
	OPT_TYPE,
};

static const struct cli_option options_create[] = {
	{"description", 0, true, OPT_DESCRIPTION},
	{"type", 't', true, OPT_TYPE},
	{},
};

static const char *const network_writable[] = {"config", "description", NULL};

static char *network_path(const char *name, const char *suffix)
{
	return cli_resource_path("/1.0/networks", name, suffix);
}

static int get_network(struct cli_context *ctx, const char *name, const char *suffix, json_t **ret)
{
	cleanup_free char *path = network_path(name, suffix);

	if (!path)
		return cli_oom(ctx);
	return cli_object_get(ctx, path, suffix ? "network state" : "network", ret, NULL);
}

static int edit_network(struct cli_context *ctx, const char *name, cli_edit_fn edit, void *userdata)
{
	cleanup_free char *path = network_path(name, NULL);

	if (!path)
		return cli_oom(ctx);
	return cli_object_edit(ctx, path, "network", network_writable, edit, userdata);
}

static json_t *object_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_object(v)) {
		v = json_object();
		if (!v || json_object_set_new(obj, key, v) < 0)
			return NULL;
	}
	return v;
}

static const struct cli_command sub_create, sub_list, sub_show, sub_info, sub_get, sub_set,
	sub_unset, sub_delete, sub_attach, sub_detach;

struct create_opts {
	const char *description;
	const char *type;
};

static int handle_create(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct create_opts *o = userdata;

	if (id == OPT_DESCRIPTION)
		o->description = arg;
	else if (id == OPT_TYPE)
		o->type = arg;
	return 0;
}

static int cmd_create(struct cli_context *ctx, int argc, char **argv)
{
	struct create_opts o = {.description = "", .type = "bridge"};
	struct cli_parse spec = {
		.cmd = &sub_create,
		.options = options_create,
		.min_args = 1,
		.max_args = -1,
		.handle = handle_create,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *config = json_object(), *body = NULL;
	struct cli_client *c;
	int r;

	if (!config)
		return cli_oom(ctx);
	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	for (size_t i = 1; i < a.n_positional; i++) {
		r = cli_config_add(config, a.positional[i], &ctx->error);
		if (r < 0) {
			ctx->usage_hint = r == -EINVAL;
			return r;
		}
	}
	body = json_pack("{s:s, s:s, s:s, s:O}", "name", a.positional[0], "description",
			 o.description, "type", o.type, "config", config);
	if (!body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_run(c, "POST", "/1.0/networks", body, NULL, &ctx->error);
	if (r < 0)
		return r;
	printf("Network %s created\n", a.positional[0]);
	return 0;
}

static int network_row(struct cli_table *t, const json_t *net)
{
	cleanup_free char *type = strdup(json_get_str(net, "type", "")),
			  *state = strdup(json_get_str(net, "status", "")), *used = NULL;
	const char *cells[7];

	used = strf("%zu", json_array_size(json_object_get(net, "used_by")));
	if (!type || !state || !used)
		return -ENOMEM;
	cells[0] = json_get_str(net, "name", "");
	cells[1] = type;
	cells[2] = json_get_bool(net, "managed", false) ? "YES" : "NO";
	cells[3] = json_get_str(json_object_get(net, "config"), "ipv4.address", "");
	cells[4] = json_get_str(net, "description", "");
	cells[5] = used;
	cells[6] = cli_ascii_upper(state);
	return cli_table_add_row(t, cells);
}

static int cmd_list(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const columns[] = {"NAME",	     "TYPE",	"MANAGED", "IPV4",
					      "DESCRIPTION", "USED BY", "STATE"};

	return cli_list_verb(ctx, &sub_list, argc, argv, "/1.0/networks?recursion=1",
			     "network list", columns, ARRAY_SIZE(columns), network_row);
}

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_show, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *net = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = get_network(ctx, a.positional[0], NULL, &net);
	if (r < 0)
		return r;
	cli_network_print_yaml(stdout, net);
	return 0;
}

static void print_counter_bytes(const char *label, const json_t *counters, const char *key)
{
	char buf[32];
	long long v = json_get_int(counters, key, 0);

	printf("  %s: %s\n", label, format_bytes(v > 0 ? (uint64_t)v : 0, buf));
}

static int cmd_info(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_info, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *st = NULL;
	const json_t *addrs, *counters;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = get_network(ctx, a.positional[0], "/state", &st);
	if (r < 0)
		return r;
	/* lxc network info's layout */
	printf("Name: %s\n", a.positional[0]);
	printf("MAC address: %s\n", json_get_str(st, "hwaddr", ""));
	printf("MTU: %lld\n", json_get_int(st, "mtu", 0));
	printf("State: %s\n", json_get_str(st, "state", ""));
	printf("Type: %s\n", json_get_str(st, "type", ""));
	addrs = json_object_get(st, "addresses");
	if (json_array_size(addrs) > 0) {
		printf("\nIP addresses:\n");
		for (size_t i = 0; i < json_array_size(addrs); i++) {
			const json_t *addr = json_array_get(addrs, i);

			printf("  %s\t%s/%s (%s)\n", json_get_str(addr, "family", ""),
			       json_get_str(addr, "address", ""), json_get_str(addr, "netmask", ""),
			       json_get_str(addr, "scope", ""));
		}
	}
	counters = json_object_get(st, "counters");
	printf("\nNetwork usage:\n");
	print_counter_bytes("Bytes received", counters, "bytes_received");
	print_counter_bytes("Bytes sent", counters, "bytes_sent");
	printf("  Packets received: %lld\n", json_get_int(counters, "packets_received", 0));
	printf("  Packets sent: %lld\n", json_get_int(counters, "packets_sent", 0));
	return 0;
}

static int cmd_get(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_get, .min_args = 2, .max_args = 2};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *net = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = get_network(ctx, a.positional[0], NULL, &net);
	if (r < 0)
		return r;
	printf("%s\n", json_get_str(json_object_get(net, "config"), a.positional[1], ""));
	return 0;
}

static int set_edit(struct cli_context *ctx, json_t *net, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *config = object_member(net, "config");

	if (!config)
		return cli_oom(ctx);
	return cli_pairs_apply(ctx, config, a, 1);
}

static int cmd_set(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_set, .min_args = 2, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_pairs_check(ctx, &a, 1);
	if (r < 0)
		return r;
	return edit_network(ctx, a.positional[0], set_edit, &a);
}

static int unset_edit(struct cli_context *ctx, json_t *net, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *config = object_member(net, "config");

	if (!config)
		return cli_oom(ctx);
	if (!json_object_get(config, a->positional[1]))
		return kiva_error_set(&ctx->error, -ENOENT,
				      "Can't unset key '%s', it's not currently set",
				      a->positional[1]);
	json_object_del(config, a->positional[1]);
	return 0;
}

static int cmd_unset(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_unset, .min_args = 2, .max_args = 2};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	return edit_network(ctx, a.positional[0], unset_edit, &a);
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
	path = network_path(a.positional[0], NULL);
	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_run(c, "DELETE", path, NULL, NULL, &ctx->error);
	if (r < 0)
		return r;
	printf("Network %s deleted\n", a.positional[0]);
	return 0;
}

/* attach: NETWORK INSTANCE [DEVICE] [INTERFACE]; name holds the chosen default device name. */
struct attach_edit {
	const struct cli_args *a;
	char name[16];
};

static int attach_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	struct attach_edit *e = userdata;
	const struct cli_args *a = e->a;
	const json_t *expanded = json_object_get(inst, "expanded_devices");
	json_t *devices = object_member(inst, "devices"), *nic;
	const char *device, *ifname;

	if (!devices)
		return cli_oom(ctx);
	if (a->n_positional > 2) {
		device = a->positional[2];
		if (json_object_get(devices, device) || json_object_get(expanded, device))
			return kiva_error_set(&ctx->error, -EEXIST, "The device already exists");
	} else {
		cli_nic_free_name(devices, expanded, e->name);
		device = e->name;
	}
	ifname = a->n_positional > 3 ? a->positional[3] : device;
	nic = cli_nic_device_new(a->positional[0], ifname);
	if (!nic || json_object_set_new(devices, device, nic) < 0)
		return cli_oom(ctx);
	return 0;
}

static int cmd_attach(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_attach, .min_args = 2, .max_args = 4};
	cleanup_args struct cli_args a = {0};
	struct attach_edit e = {.a = &a};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	return cli_instance_edit(ctx, a.positional[1], attach_edit, &e);
}

static int detach_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct cli_args *a = userdata;
	json_t *devices = json_object_get(inst, "devices");
	cleanup_free char *copy = NULL;
	const char *device = NULL;
	int r;

	r = cli_nic_find(devices, a->positional[0], a->n_positional > 2 ? a->positional[2] : NULL,
			 &device, &ctx->error);
	if (r < 0)
		return r;
	copy = strdup(device); /* device is the key's own storage */
	if (!copy)
		return cli_oom(ctx);
	json_object_del(devices, copy);
	return 0;
}

static int cmd_detach(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_detach, .min_args = 2, .max_args = 3};
	cleanup_args struct cli_args a = {0};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	return cli_instance_edit(ctx, a.positional[1], detach_edit, &a);
}

static const struct cli_command sub_create = {
	.name = "create",
	.run = cmd_create,
	.summary = "Create a network",
	.usage = "Usage: kiva network create NAME [KEY=VALUE...] [flags]\n"
		 "\n"
		 "Create the managed bridge NAME with the given config keys. Without\n"
		 "ipv4.address the server picks a free 10.x.y.1/24.\n"
		 "\n"
		 "Keys: ipv4.address, ipv4.nat, ipv4.dhcp.ranges, bridge.mtu, dns.nameservers,\n"
		 "security.acls (see docs/network.md).\n"
		 "\n"
		 "Flags:\n"
		 "      --description TEXT   Network description\n"
		 "  -t, --type TYPE          Network type (default bridge, the only one)\n"
		 "\n"
		 "Example:\n"
		 "  kiva network create br0 ipv4.address=10.0.3.1/24 ipv4.nat=true\n",
};

static const struct cli_command sub_list = {
	.name = "list",
	.run = cmd_list,
	.summary = "List networks",
	.usage = "Usage: kiva network list [flags]\n"
		 "\n"
		 "List the networks: name, type, managed, IPv4 address, description, how many\n"
		 "instances (and other objects) use it, state.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --format FORMAT   table (default), csv, json or yaml\n"
		 "\n"
		 "Example:\n"
		 "  kiva network list\n",
};

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show a network as YAML",
	.usage = "Usage: kiva network show NAME\n"
		 "\n"
		 "Print network NAME's config, description, name, type, users, managed flag and\n"
		 "status as YAML, like lxc network show.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network show kivabr0\n",
};

static const struct cli_command sub_info = {
	.name = "info",
	.run = cmd_info,
	.summary = "Show a network's runtime state",
	.usage = "Usage: kiva network info NAME\n"
		 "\n"
		 "Print the bridge's MAC address, MTU, state, addresses and traffic counters.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network info kivabr0\n",
};

static const struct cli_command sub_get = {
	.name = "get",
	.run = cmd_get,
	.summary = "Print one config key of a network",
	.usage = "Usage: kiva network get NAME KEY\n"
		 "\n"
		 "Print the value of KEY in network NAME's config (an empty line when unset).\n"
		 "\n"
		 "Example:\n"
		 "  kiva network get kivabr0 ipv4.address\n",
};

static const struct cli_command sub_set = {
	.name = "set",
	.run = cmd_set,
	.summary = "Set config keys of a network",
	.usage = "Usage: kiva network set NAME KEY VALUE\n"
		 "       kiva network set NAME KEY=VALUE...\n"
		 "\n"
		 "Set one or more keys in network NAME's config; the server checks the whole new\n"
		 "config before applying any.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network set br0 ipv4.nat false\n"
		 "  kiva network set br0 bridge.mtu=1400 dns.nameservers=1.1.1.1\n",
};

static const struct cli_command sub_unset = {
	.name = "unset",
	.run = cmd_unset,
	.summary = "Remove a config key from a network",
	.usage = "Usage: kiva network unset NAME KEY\n"
		 "\n"
		 "Remove KEY from network NAME's config.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network unset br0 dns.nameservers\n",
};

static const struct cli_command sub_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Delete a network",
	.usage = "Usage: kiva network delete NAME\n"
		 "\n"
		 "Delete network NAME. A network that instances still use is refused.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network delete br0\n",
};

static const struct cli_command sub_attach = {
	.name = "attach",
	.run = cmd_attach,
	.summary = "Attach an instance to a network",
	.usage = "Usage: kiva network attach NETWORK INSTANCE [DEVICE [INTERFACE]]\n"
		 "\n"
		 "Add a NIC on NETWORK to INSTANCE: device DEVICE (default: the first free\n"
		 "ethN) named INTERFACE inside the container (default: DEVICE). A running\n"
		 "instance gets the NIC at once.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network attach br0 web\n"
		 "  kiva network attach br0 web eth1 eth1\n",
};

static const struct cli_command sub_detach = {
	.name = "detach",
	.run = cmd_detach,
	.summary = "Detach an instance from a network",
	.usage = "Usage: kiva network detach NETWORK INSTANCE [DEVICE]\n"
		 "\n"
		 "Remove INSTANCE's NIC on NETWORK (device DEVICE, needed when several NICs use\n"
		 "the network). A running instance loses the NIC at once.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network detach br0 web\n",
};

static const struct cli_command *const subs[] = {
	&sub_create,
	&sub_list,
	&sub_show,
	&sub_info,
	&sub_get,
	&sub_set,
	&sub_unset,
	&sub_delete,
	&sub_attach,
	&sub_detach,
	&cli_command_network_acl,
};

static int cmd_network(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_network, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_network = {
	.name = "network",
	.run = cmd_network,
	.summary = "Manage networks, NIC attachments and network ACLs",
	.usage =
		"Usage: kiva network COMMAND ...\n"
		"\n"
		"Commands:\n"
		"  create NAME [K=V...]                     Create a bridge network\n"
		"  list [--format F]                        List networks\n"
		"  show NAME                                Show a network as YAML\n"
		"  info NAME                                Show addresses, MTU, state, counters\n"
		"  get NAME KEY                             Print one config key\n"
		"  set NAME KEY VALUE                       Set config keys (also NAME K=V...)\n"
		"  unset NAME KEY                           Remove a config key\n"
		"  delete NAME                              Delete a network\n"
		"  attach NETWORK INSTANCE [DEV [IFACE]]    Add a NIC on NETWORK to INSTANCE\n"
		"  detach NETWORK INSTANCE [DEV]            Remove INSTANCE's NIC on NETWORK\n"
		"  acl COMMAND ...                          Network ACLs (kiva network acl --help)\n"
		"\n"
		"Run 'kiva network COMMAND --help' for a command's flags. See docs/network.md.\n"
		"\n"
		"Example:\n"
		"  kiva network create br0 ipv4.address=10.0.3.1/24 && kiva network attach br0 c1\n",
};
