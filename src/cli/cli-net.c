/* Client-side building blocks of the network verbs: NIC devices, ACL rules, comma lists and the
 * YAML of `network show` / `network acl show`. The behaviour and messages follow LXD's lxc
 * (cmd_network.go, cmd_network_acl.go, cmd_config_device.go) so scripts see the same thing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-args.h"
#include "cli-net.h"
#include "cli-output.h"

json_t *cli_nic_device_new(const char *network, const char *ifname)
{
	return json_pack("{s:s, s:s, s:s}", "type", "nic", "network", network, "name", ifname);
}

static bool name_taken(const json_t *devices, const char *name)
{
	const char *key;
	json_t *dev;

	if (!json_is_object(devices))
		return false;
	json_object_foreach((json_t *)devices, key, dev) {
		if (streq(key, name))
			return true;
		if (streq(json_get_str(dev, "type", ""), "nic") &&
		    streq(json_get_str(dev, "name", ""), name))
			return true;
	}
	return false;
}

void cli_nic_free_name(const json_t *devices, const json_t *expanded, char buf[static 16])
{
	for (unsigned i = 0;; i++) {
		snprintf(buf, 16, "eth%u", i);
		if (!name_taken(devices, buf) && !name_taken(expanded, buf))
			return;
	}
}

static bool nic_uses(const json_t *dev, const char *network)
{
	return streq(json_get_str(dev, "type", ""), "nic") &&
	       (streq(json_get_str(dev, "network", ""), network) ||
		streq(json_get_str(dev, "parent", ""), network));
}

int cli_nic_find(const json_t *devices, const char *network, const char *device,
		 const char **ret_name, struct kiva_error *reterr)
{
	const char *found = NULL, *key;
	json_t *dev;

	if (device) {
		dev = json_object_get(devices, device);
		if (!json_is_object(dev))
			return kiva_error_set(reterr, -ENOENT,
					      "The specified device doesn't exist");
		if (!nic_uses(dev, network))
			return kiva_error_set(reterr, -EINVAL,
					      "The specified device doesn't match the network");
		*ret_name = json_object_iter_key(json_object_iter_at((json_t *)devices, device));
		return 0;
	}
	if (json_is_object(devices))
		json_object_foreach((json_t *)devices, key, dev) {
			if (!nic_uses(dev, network))
				continue;
			if (found)
				return kiva_error_set(
					reterr, -EINVAL,
					"More than one device matches, specify the device name");
			found = key;
		}
	if (!found)
		return kiva_error_set(reterr, -ENOENT, "No device found for this network");
	*ret_name = found;
	return 0;
}

int cli_device_local(json_t *inst, const char *name, json_t **ret, struct kiva_error *reterr)
{
	json_t *devices = json_object_get(inst, "devices"), *dev, *copy;

	if (!json_is_object(devices)) {
		devices = json_object();
		if (!devices || json_object_set_new(inst, "devices", devices) < 0)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	dev = json_object_get(devices, name);
	if (json_is_object(dev)) {
		*ret = dev;
		return 0;
	}
	dev = json_object_get(json_object_get(inst, "expanded_devices"), name);
	if (!json_is_object(dev))
		return kiva_error_set(reterr, -ENOENT, "Device %s doesn't exist", name);
	copy = json_deep_copy(dev);
	if (!copy || json_object_set_new(devices, name, copy) < 0)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	*ret = copy;
	return 0;
}

int cli_device_new(const char *type, const char *const *kv, size_t n, json_t **ret,
		   struct kiva_error *reterr)
{
	cleanup_json json_t *dev = json_pack("{s:s}", "type", type);
	int r;

	if (!dev)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (size_t i = 0; i < n; i++) {
		if (startswith(kv[i], "type="))
			return kiva_error_set(reterr, -EINVAL,
					      "The device type is the TYPE argument, not a key: %s",
					      kv[i]);
		r = cli_config_add(dev, kv[i], reterr);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(dev);
	return 0;
}

const char *const cli_acl_rule_keys[] = {
	"action",    "source",	  "destination", "protocol", "source_port", "destination_port",
	"icmp_type", "icmp_code", "description", "state",    NULL,
};

static bool acl_rule_key_known(const char *key)
{
	for (size_t i = 0; cli_acl_rule_keys[i]; i++)
		if (streq(cli_acl_rule_keys[i], key))
			return true;
	return false;
}

int cli_acl_direction_check(const char *direction, struct kiva_error *reterr)
{
	if (streq(direction, "ingress") || streq(direction, "egress"))
		return 0;
	return kiva_error_set(reterr, -EINVAL,
			      "The direction argument must be one of: ingress, egress");
}

/* Splits every "key=value" of kv into obj (a key given twice: the last wins), accepting rule keys
 * only. */
static int acl_fields(const char *const *kv, size_t n, json_t *obj, struct kiva_error *reterr)
{
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *key = NULL, *value = NULL;
		int r = cli_parse_key_value(kv[i], &key, &value);

		if (r == -EINVAL)
			return kiva_error_set(reterr, r, "Bad key=value pair: %s", kv[i]);
		if (r < 0)
			return kiva_error_set(reterr, r, "Out of memory");
		if (!acl_rule_key_known(key))
			return kiva_error_set(reterr, -EINVAL, "Unknown key: %s", key);
		if (json_set_str(obj, key, value) < 0)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	return 0;
}

int cli_acl_rule_new(const char *const *kv, size_t n, json_t **ret, struct kiva_error *reterr)
{
	cleanup_json json_t *rule = json_object();
	int r;

	if (!rule)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = acl_fields(kv, n, rule, reterr);
	if (r < 0)
		return r;
	if (!*json_get_str(rule, "state", "") && json_set_str(rule, "state", "enabled") < 0)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	*ret = TAKE_PTR(rule);
	return 0;
}

static bool rule_matches(const json_t *rule, const json_t *filter)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)filter, key, v) {
		if (!streq(json_get_str(rule, key, ""), json_string_value(v)))
			return false;
	}
	return true;
}

int cli_acl_rules_remove(json_t *rules, const char *const *kv, size_t n, bool force,
			 size_t *ret_removed, struct kiva_error *reterr)
{
	cleanup_json json_t *filter = json_object();
	size_t matches = 0;
	int r;

	if (!filter)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = acl_fields(kv, n, filter, reterr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_array_size(rules); i++)
		if (rule_matches(json_array_get(rules, i), filter))
			matches++;
	if (matches == 0)
		return kiva_error_set(reterr, -ENOENT, "No matching rule(s) found");
	if (matches > 1 && !force)
		return kiva_error_set(reterr, -EINVAL,
				      "Multiple rules match. Use --force to remove them all");
	for (size_t i = json_array_size(rules); i > 0; i--)
		if (rule_matches(json_array_get(rules, i - 1), filter))
			json_array_remove(rules, i - 1);
	if (ret_removed)
		*ret_removed = matches;
	return 0;
}

/* The next item of the comma list at *s, trimmed of spaces (possibly empty); advances *s past
 * it. Returns NULL at the end of the list. */
static const char *list_next(const char **s, size_t *ret_len)
{
	const char *b = *s, *e;
	size_t len;

	if (!b || !*b)
		return NULL;
	len = strcspn(b, ",");
	e = b + len;
	*s = *e == ',' ? e + 1 : e;
	while (b < e && *b == ' ')
		b++;
	while (e > b && e[-1] == ' ')
		e--;
	*ret_len = (size_t)(e - b);
	return b;
}

static bool list_item_is(const char *b, size_t len, const char *item)
{
	return len == strlen(item) && strncmp(b, item, len) == 0;
}

static bool list_has(const char *list, const char *item)
{
	const char *b;
	size_t len;

	while ((b = list_next(&list, &len)))
		if (list_item_is(b, len, item))
			return true;
	return false;
}

int cli_list_add(const char *list, const char *item, char **ret)
{
	char *s;

	if (list_has(list, item))
		return -EEXIST;
	s = list && *list ? strf("%s,%s", list, item) : strdup(item);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int cli_list_remove(const char *list, const char *item, char **ret)
{
	const char *b;
	char *out, *o;
	size_t len;

	if (!list_has(list, item))
		return -ENOENT;
	out = o = malloc(strlen(list) + 1);
	if (!out)
		return -ENOMEM;
	*o = 0;
	while ((b = list_next(&list, &len)))
		if (len > 0 && !list_item_is(b, len, item))
			o += sprintf(o, "%s%.*s", o == out ? "" : ",", (int)len, b);
	*ret = out;
	return 0;
}

/* "key:" and the value as go-yaml renders a Go field: a nil slice or map still prints ([] / {}). */
static void yaml_field(FILE *f, const json_t *obj, const char *key, const json_t *fallback)
{
	const json_t *v = json_object_get(obj, key);
	json_t *one = json_object();

	if (!v || json_is_null(v))
		v = fallback;
	if (!one || json_object_set((json_t *)one, key, (json_t *)v) < 0) {
		json_decref(one);
		return;
	}
	cli_yaml_print(f, one, 0);
	json_decref(one);
}

void cli_network_print_yaml(FILE *f, const json_t *net)
{
	cleanup_json json_t *empty_obj = json_object(), *empty_arr = json_array(),
			    *empty_str = json_string(""), *no = json_false();

	if (!empty_obj || !empty_arr || !empty_str || !no)
		return;
	yaml_field(f, net, "config", empty_obj);
	yaml_field(f, net, "description", empty_str);
	yaml_field(f, net, "name", empty_str);
	yaml_field(f, net, "type", empty_str);
	yaml_field(f, net, "used_by", empty_arr);
	yaml_field(f, net, "managed", no);
	yaml_field(f, net, "status", empty_str);
	if (json_object_get(net, "locations"))
		yaml_field(f, net, "locations", empty_arr);
}

static void acl_print_rules(FILE *f, const char *key, const json_t *rules)
{
	fprintf(f, "%s:", key);
	if (json_array_size(rules) == 0) {
		fputs(" []\n", f);
		return;
	}
	fputc('\n', f);
	for (size_t i = 0; i < json_array_size(rules); i++) {
		const json_t *rule = json_array_get(rules, i);
		bool first = true;

		for (size_t k = 0; cli_acl_rule_keys[k]; k++) {
			const char *name = cli_acl_rule_keys[k];
			const char *v = json_get_str(rule, name, "");

			if (!*v && !streq(name, "action") && !streq(name, "state"))
				continue; /* omitempty */
			fputs(first ? "- " : "  ", f);
			first = false;
			fprintf(f, "%s: ", name);
			cli_yaml_print_string(f, v);
			fputc('\n', f);
		}
	}
}

void cli_acl_print_yaml(FILE *f, const json_t *acl)
{
	cleanup_json json_t *empty_obj = json_object(), *empty_arr = json_array(),
			    *empty_str = json_string("");

	if (!empty_obj || !empty_arr || !empty_str)
		return;
	yaml_field(f, acl, "name", empty_str);
	yaml_field(f, acl, "description", empty_str);
	acl_print_rules(f, "egress", json_object_get(acl, "egress"));
	acl_print_rules(f, "ingress", json_object_get(acl, "ingress"));
	yaml_field(f, acl, "config", empty_obj);
	yaml_field(f, acl, "used_by", empty_arr);
}
