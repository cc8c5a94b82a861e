/* What the network verbs (kiva network, kiva network acl, kiva config device, launch -n) build
 * and change client side, as pure functions over JSON: NIC device objects in LXD's device model,
 * network ACL rules from key=value arguments and their removal by match, comma-separated lists
 * (security.acls), and the YAML lxc prints for `network show` and `network acl show`. No I/O
 * except the FILE the printers write to; testable without a server. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "basic-error.h"
#include "basic-json.h"

/* {"type": "nic", "network": network, "name": ifname}: LXD's NIC on a managed network. Returns a
 * new reference, NULL on OOM. */
json_t *cli_nic_device_new(const char *network, const char *ifname);

/* The first "ethN" (N from 0) that is neither a device name nor a NIC's interface "name" in any of
 * the device maps given (devices, expanded_devices; either may be NULL), written to buf. */
void cli_nic_free_name(const json_t *devices, const json_t *expanded, char buf[static 16]);

/* The NIC device of devices that `network attach`'s counterpart should remove, as lxc network
 * detach chooses it: device when given (it must exist, be a "nic" and use network: its "network"
 * or "parent"), else the only NIC using network. *ret_name is borrowed from devices. Errors, with
 * the message in reterr: -ENOENT ("No device found for this network", "The specified device
 * doesn't exist"), -EINVAL ("The specified device doesn't match the network", "More than one
 * device matches, specify the device name"). */
int cli_nic_find(const json_t *devices, const char *network, const char *device,
		 const char **ret_name, struct kiva_error *reterr);

/* The device called name in inst's own "devices" map (created when missing), for a change: a
 * device that only comes from a profile (in "expanded_devices") is first copied into "devices",
 * an override as lxc config device set makes. *ret is borrowed from inst. Returns 0, -ENOENT
 * ("Device NAME doesn't exist") or -ENOMEM, with the message in reterr. */
int cli_device_local(json_t *inst, const char *name, json_t **ret, struct kiva_error *reterr);

/* {"type": type, key: value...} from n "key=value" strings. Returns 0, -EINVAL ("Bad key=value
 * pair: ..."; a "type=" pair is refused too: the type is its own argument) or -ENOMEM. */
int cli_device_new(const char *type, const char *const *kv, size_t n, json_t **ret,
		   struct kiva_error *reterr);

/* The keys of an LXD network ACL rule, in api.NetworkACLRule's order. NULL-terminated. */
extern const char *const cli_acl_rule_keys[];

/* "ingress" or "egress"; anything else is -EINVAL with lxc's message. */
int cli_acl_direction_check(const char *direction, struct kiva_error *reterr);

/* A rule object from n "key=value" strings (lxc network acl rule add): only cli_acl_rule_keys
 * are accepted ("Unknown key: foo" otherwise), "state" defaults to "enabled". The server checks
 * the values. Returns 0, -EINVAL or -ENOMEM; *ret is a new reference. */
int cli_acl_rule_new(const char *const *kv, size_t n, json_t **ret, struct kiva_error *reterr);

/* Removes from the array rules every rule whose fields equal all n "key=value" filters (an absent
 * field reads as ""), as lxc network acl rule remove does. None matching: -ENOENT ("No matching
 * rule(s) found"); several matching without force: -EINVAL ("Multiple rules match. Use --force to
 * remove them all") and rules is left as it was. *ret_removed (may be NULL) gets the count. */
int cli_acl_rules_remove(json_t *rules, const char *const *kv, size_t n, bool force,
			 size_t *ret_removed, struct kiva_error *reterr);

/* Comma-separated lists ("web,db", spaces around items ignored). cli_list_add appends item:
 * -EEXIST when it is already there. cli_list_remove drops it: -ENOENT when it is not there.
 * *ret is the new list (caller frees), written only on success; -ENOMEM on OOM. */
int cli_list_add(const char *list, const char *item, char **ret);
int cli_list_remove(const char *list, const char *item, char **ret);

/* A network as lxc network show prints it (api.Network's field order: config, description, name,
 * type, used_by, managed, status, locations). */
void cli_network_print_yaml(FILE *f, const json_t *net);

/* A network ACL as lxc network acl show prints it (name, description, egress, ingress, config,
 * used_by; rule fields in struct order, empty ones left out except action and state). */
void cli_acl_print_yaml(FILE *f, const json_t *acl);
