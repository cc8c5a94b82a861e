/* kiva network acl create|list|show|delete|rule add|rule remove|attach|detach: network ACLs
 * (/1.0/network-acls, LXD's shapes and lxc's syntax). Rules are added and removed client side:
 * GET the ACL, change its ingress or egress list, PUT it back (If-Match, redone after a 412).
 * attach and detach, a KIVA convenience, edit a NIC's security.acls list on an instance the same
 * way. */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-list.h"
#include "cli-net.h"
#include "cli.h"

enum {
	OPT_DESCRIPTION = 1,
	OPT_FORCE,
};

static const struct cli_option options_create[] = {
	{"description", 0, true, OPT_DESCRIPTION},
	{},
};

static const struct cli_option options_force[] = {
	{"force", 0, false, OPT_FORCE},
	{},
};

static const char *const acl_writable[] = {"description", "ingress", "egress", "config", NULL};

static char *acl_path(const char *name)
{
	return cli_resource_path("/1.0/network-acls", name, NULL);
}

static const struct cli_command sub_create, sub_list, sub_show, sub_delete, sub_rule, sub_attach,
	sub_detach, sub_rule_add, sub_rule_remove;

static int handle_description(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	*(const char **)userdata = arg;
	return 0;
}

static int cmd_create(struct cli_context *ctx, int argc, char **argv)
{
	const char *description = "";
	struct cli_parse spec = {
		.cmd = &sub_create,
		.options = options_create,
		.min_args = 1,
		.max_args = -1,
		.handle = handle_description,
		.userdata = &description,
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
	body = json_pack("{s:s, s:s, s:[], s:[], s:O}", "name", a.positional[0], "description",
			 description, "ingress", "egress", "config", config);
	if (!body)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_run(c, "POST", "/1.0/network-acls", body, NULL, &ctx->error);
	if (r < 0)
		return r;
	printf("Network ACL %s created\n", a.positional[0]);
	return 0;
}

static int acl_row(struct cli_table *t, const json_t *acl)
{
	cleanup_free char *used = strf("%zu", json_array_size(json_object_get(acl, "used_by")));
	const char *cells[3];

	if (!used)
		return -ENOMEM;
	cells[0] = json_get_str(acl, "name", "");
	cells[1] = json_get_str(acl, "description", "");
	cells[2] = used;
	return cli_table_add_row(t, cells);
}

static int cmd_list(struct cli_context *ctx, int argc, char **argv)
{
	static const char *const columns[] = {"NAME", "DESCRIPTION", "USED BY"};

	return cli_list_verb(ctx, &sub_list, argc, argv, "/1.0/network-acls?recursion=1",
			     "network ACL list", columns, ARRAY_SIZE(columns), acl_row);
}

static int cmd_show(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_show, .min_args = 1, .max_args = 1};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	cleanup_json json_t *acl = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	path = acl_path(a.positional[0]);
	if (!path)
		return cli_oom(ctx);
	r = cli_object_get(ctx, path, "network ACL", &acl, NULL);
	if (r < 0)
		return r;
	cli_acl_print_yaml(stdout, acl);
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
	path = acl_path(a.positional[0]);
	if (!path)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_run(c, "DELETE", path, NULL, NULL, &ctx->error);
	if (r < 0)
		return r;
	printf("Network ACL %s deleted\n", a.positional[0]);
	return 0;
}

/* ---- rule add / remove ----------------------------------------------------------------- */

struct rule_edit {
	const struct cli_args *a;
	const json_t *rule; /* add */
	bool force; /* remove */
};

/* The ingress or egress array of acl (created when missing). */
static json_t *acl_rules(json_t *acl, const char *direction)
{
	json_t *rules = json_object_get(acl, direction);

	if (!json_is_array(rules)) {
		rules = json_array();
		if (!rules || json_object_set_new(acl, direction, rules) < 0)
			return NULL;
	}
	return rules;
}

static int rule_add_edit(struct cli_context *ctx, json_t *acl, void *userdata)
{
	const struct rule_edit *e = userdata;
	json_t *rules = acl_rules(acl, e->a->positional[1]);

	if (!rules || json_array_append(rules, (json_t *)e->rule) < 0)
		return cli_oom(ctx);
	return 0;
}

static int cmd_rule_add(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_rule_add, .min_args = 3, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	cleanup_json json_t *rule = NULL;
	struct rule_edit e = {.a = &a};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_acl_direction_check(a.positional[1], &ctx->error);
	if (r >= 0)
		r = cli_acl_rule_new(a.positional + 2, a.n_positional - 2, &rule, &ctx->error);
	if (r < 0) {
		ctx->usage_hint = r == -EINVAL;
		return r;
	}
	e.rule = rule;
	path = acl_path(a.positional[0]);
	if (!path)
		return cli_oom(ctx);
	return cli_object_edit(ctx, path, "network ACL", acl_writable, rule_add_edit, &e);
}

static int rule_remove_edit(struct cli_context *ctx, json_t *acl, void *userdata)
{
	const struct rule_edit *e = userdata;
	const struct cli_args *a = e->a;
	json_t *rules = acl_rules(acl, a->positional[1]);

	if (!rules)
		return cli_oom(ctx);
	return cli_acl_rules_remove(rules, a->positional + 2, a->n_positional - 2, e->force, NULL,
				    &ctx->error);
}

static int handle_force(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	*(bool *)userdata = true;
	return 0;
}

static int cmd_rule_remove(struct cli_context *ctx, int argc, char **argv)
{
	struct rule_edit e = {0};
	struct cli_parse spec = {
		.cmd = &sub_rule_remove,
		.options = options_force,
		.min_args = 3,
		.max_args = -1,
		.handle = handle_force,
		.userdata = &e.force,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *path = NULL;
	cleanup_json json_t *probe = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	e.a = &a;
	/* bad directions and keys are usage errors, found before asking the server */
	r = cli_acl_direction_check(a.positional[1], &ctx->error);
	if (r >= 0)
		r = cli_acl_rule_new(a.positional + 2, a.n_positional - 2, &probe, &ctx->error);
	if (r < 0) {
		ctx->usage_hint = r == -EINVAL;
		return r;
	}
	path = acl_path(a.positional[0]);
	if (!path)
		return cli_oom(ctx);
	return cli_object_edit(ctx, path, "network ACL", acl_writable, rule_remove_edit, &e);
}

static const struct cli_command *const rule_subs[] = {&sub_rule_add, &sub_rule_remove};

static int cmd_rule(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &sub_rule, rule_subs, ARRAY_SIZE(rule_subs), argc, argv);
}

/* ---- attach / detach: a NIC's security.acls --------------------------------------------- */

struct nic_acl_edit {
	const struct cli_args *a; /* ACL INSTANCE DEVICE */
	bool attach;
};

static int nic_acl_edit(struct cli_context *ctx, json_t *inst, void *userdata)
{
	const struct nic_acl_edit *e = userdata;
	const char *acl = e->a->positional[0], *device = e->a->positional[2];
	cleanup_free char *list = NULL;
	const char *old;
	json_t *dev;
	int r;

	r = cli_device_local(inst, device, &dev, &ctx->error);
	if (r < 0)
		return r;
	if (!streq(json_get_str(dev, "type", ""), "nic"))
		return kiva_error_set(&ctx->error, -EINVAL, "Device %s is not a NIC", device);
	old = json_get_str(dev, "security.acls", "");
	r = e->attach ? cli_list_add(old, acl, &list) : cli_list_remove(old, acl, &list);
	if (r == -EEXIST)
		return kiva_error_set(&ctx->error, r,
				      "Network ACL %s is already attached to device %s", acl,
				      device);
	if (r == -ENOENT)
		return kiva_error_set(&ctx->error, r, "Network ACL %s is not attached to device %s",
				      acl, device);
	if (r < 0)
		return cli_oom(ctx);
	if (!*list) {
		json_object_del(dev, "security.acls");
		return 0;
	}
	return json_set_str(dev, "security.acls", list) < 0 ? cli_oom(ctx) : 0;
}

static int nic_acl_verb(struct cli_context *ctx, const struct cli_command *cmd, int argc,
			char **argv, bool attach)
{
	struct cli_parse spec = {.cmd = cmd, .min_args = 3, .max_args = 3};
	cleanup_args struct cli_args a = {0};
	struct nic_acl_edit e = {.a = &a, .attach = attach};
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	return cli_instance_edit(ctx, a.positional[1], nic_acl_edit, &e);
}

static int cmd_attach(struct cli_context *ctx, int argc, char **argv)
{
	return nic_acl_verb(ctx, &sub_attach, argc, argv, true);
}

static int cmd_detach(struct cli_context *ctx, int argc, char **argv)
{
	return nic_acl_verb(ctx, &sub_detach, argc, argv, false);
}

static const struct cli_command sub_create = {
	.name = "create",
	.run = cmd_create,
	.summary = "Create a network ACL",
	.usage = "Usage: kiva network acl create NAME [KEY=VALUE...] [flags]\n"
		 "\n"
		 "Create an empty network ACL NAME (1-63 letters, digits, '-' and '_'). Add\n"
		 "rules with 'kiva network acl rule add'.\n"
		 "\n"
		 "Flags:\n"
		 "      --description TEXT   ACL description\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl create web-in --description \"HTTP from the app tier\"\n",
};

static const struct cli_command sub_list = {
	.name = "list",
	.run = cmd_list,
	.summary = "List network ACLs",
	.usage = "Usage: kiva network acl list [flags]\n"
		 "\n"
		 "List the network ACLs with their description and how many NICs and networks\n"
		 "use them.\n"
		 "\n"
		 "Flags:\n"
		 "  -f, --format FORMAT   table (default), csv, json or yaml\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl list\n",
};

static const struct cli_command sub_show = {
	.name = "show",
	.run = cmd_show,
	.summary = "Show a network ACL as YAML",
	.usage = "Usage: kiva network acl show NAME\n"
		 "\n"
		 "Print the ACL's name, description, egress and ingress rules, config and users\n"
		 "as YAML, like lxc network acl show.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl show web-in\n",
};

static const struct cli_command sub_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Delete a network ACL",
	.usage = "Usage: kiva network acl delete NAME\n"
		 "\n"
		 "Delete network ACL NAME. An ACL that a NIC or network still uses is refused.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl delete web-in\n",
};

static const struct cli_command sub_rule_add = {
	.name = "add",
	.run = cmd_rule_add,
	.summary = "Add a rule to a network ACL",
	.usage = "Usage: kiva network acl rule add NAME ingress|egress KEY=VALUE...\n"
		 "\n"
		 "Append a rule to ACL NAME's ingress (into the instance) or egress (out of it)\n"
		 "list. state defaults to enabled.\n"
		 "\n"
		 "Keys: action (allow, reject, drop), source, destination (comma lists of\n"
		 "CIDRs, addresses, ranges A-B, instance names, ACL names, @key=value selectors\n"
		 "over user.* config), protocol (tcp, udp, icmp4, icmp6), source_port,\n"
		 "destination_port (tcp/udp: 80, 80,443, 8000-8080), icmp_type, icmp_code,\n"
		 "description, state (enabled, disabled, logged).\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl rule add web-in ingress action=allow source=@app=api \\\n"
		 "      protocol=tcp destination_port=80\n",
};

static const struct cli_command sub_rule_remove = {
	.name = "remove",
	.run = cmd_rule_remove,
	.summary = "Remove rules from a network ACL",
	.usage = "Usage: kiva network acl rule remove NAME ingress|egress KEY=VALUE... [flags]\n"
		 "\n"
		 "Remove the rules of ACL NAME's ingress or egress list whose keys equal all the\n"
		 "given KEY=VALUEs (an unset key matches an empty value). It is an error when no\n"
		 "rule matches, or when several do and --force is not given.\n"
		 "\n"
		 "Flags:\n"
		 "      --force   Remove every matching rule\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl rule remove web-in ingress destination_port=80\n",
};

static const struct cli_command sub_rule = {
	.name = "rule",
	.run = cmd_rule,
	.summary = "Add or remove network ACL rules",
	.usage = "Usage: kiva network acl rule COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  add NAME ingress|egress KEY=VALUE...                Append a rule\n"
		 "  remove NAME ingress|egress KEY=VALUE... [--force]   Remove matching rules\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl rule add web-in ingress action=allow protocol=tcp \\\n"
		 "      destination_port=80\n",
};

static const struct cli_command sub_attach = {
	.name = "attach",
	.run = cmd_attach,
	.summary = "Apply a network ACL to an instance's NIC",
	.usage = "Usage: kiva network acl attach ACL INSTANCE DEVICE\n"
		 "\n"
		 "Add ACL to the security.acls list of INSTANCE's NIC DEVICE. Traffic of a NIC\n"
		 "with ACLs that no rule allows is rejected. A running instance gets the rules\n"
		 "at once.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl attach web-in web eth0\n",
};

static const struct cli_command sub_detach = {
	.name = "detach",
	.run = cmd_detach,
	.summary = "Remove a network ACL from an instance's NIC",
	.usage = "Usage: kiva network acl detach ACL INSTANCE DEVICE\n"
		 "\n"
		 "Remove ACL from the security.acls list of INSTANCE's NIC DEVICE.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl detach web-in web eth0\n",
};

static const struct cli_command *const subs[] = {&sub_create, &sub_list,   &sub_show,  &sub_delete,
						 &sub_rule,   &sub_attach, &sub_detach};

static int cmd_acl(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_network_acl, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_network_acl = {
	.name = "acl",
	.run = cmd_acl,
	.summary = "Manage network ACLs",
	.usage = "Usage: kiva network acl COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  create NAME [--description D]                 Create an ACL\n"
		 "  list [--format F]                             List ACLs\n"
		 "  show NAME                                     Show an ACL as YAML\n"
		 "  delete NAME                                   Delete an ACL\n"
		 "  rule add NAME ingress|egress K=V...           Append a rule\n"
		 "  rule remove NAME ingress|egress K=V...        Remove matching rules\n"
		 "  attach ACL INSTANCE DEVICE                    Apply the ACL to a NIC\n"
		 "  detach ACL INSTANCE DEVICE                    Remove the ACL from a NIC\n"
		 "\n"
		 "Run 'kiva network acl COMMAND --help' for a command's flags. See\n"
		 "docs/network.md.\n"
		 "\n"
		 "Example:\n"
		 "  kiva network acl create web-in\n"
		 "  kiva network acl rule add web-in ingress action=allow protocol=tcp \\\n"
		 "      destination_port=80\n"
		 "  kiva network acl attach web-in web eth0\n",
};
