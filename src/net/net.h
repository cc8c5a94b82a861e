/* Networking: managed bridges, NICs, IPAM, NAT, ACLs (micro-segmentation), QoS, VLAN.
 *
 * Three layers, one file per third-party library (STYLE.md):
 *   net-ipam.c  pure: IPv4 prefixes, ranges, address allocation, subnet choice, rates
 *   net-acl.c   pure: ACL rules (LXD's shape) validation, and the whole nftables ruleset of
 *               KIVA's own tables rendered from a model (NAT + ACLs)
 *   net-nft.c   the only includer of <nftables/libnftables.h>: applies a rendered ruleset in
 *               one atomic batch that replaces `table inet kiva` and `table bridge kiva` only
 *   net-link.c  the only includer of libnl-route-3: bridges, addresses, veth hot-plug, tc
 *               shaping (HTB/TBF, ifb + mirred for upload), bridge VLAN filtering, sysctls
 * Addresses are IPv4 in host byte order. Errors: -errno, with a kiva_error message where a user
 * can reach the function. All functions block briefly (netlink/nft round trips, < 1 ms typical)
 * and may run on kivad's loop, except net_nic_configure_in_netns (kiva-helper only: setns). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic-error.h"

/* ---------------- net-ipam.c (pure) ---------------- */

struct net_prefix {
	uint32_t addr; /* as written: "10.0.3.1/24" keeps .1 (the gateway) */
	uint8_t len; /* 0..32 */
};

int net_ipv4_parse(const char *s, uint32_t *ret); /* dotted quad only */
void net_ipv4_format(uint32_t addr, char buf[static 16]);
int net_prefix_parse(const char *s, struct net_prefix *ret); /* "A.B.C.D/N" */
uint32_t net_prefix_mask(uint8_t len);
uint32_t net_prefix_network(const struct net_prefix *p);
uint32_t net_prefix_broadcast(const struct net_prefix *p);
bool net_prefix_contains(const struct net_prefix *p, uint32_t addr);
bool net_prefix_overlaps(const struct net_prefix *a, const struct net_prefix *b);

/* An inclusive address range; pools are lists of them (LXD's ipv4.dhcp.ranges:
 * "10.0.3.2-10.0.3.100,10.0.3.150-10.0.3.200"). */
struct net_range {
	uint32_t first, last;
};

/* Parses a pool; every range must lie inside subnet's host addresses. NULL or "" → the whole
 * subnet minus network, broadcast and gateway (one range or two around the gateway).
 * *ret is malloc'd. Errors name the bad range. */
int net_ranges_parse(const char *s, const struct net_prefix *subnet, struct net_range **ret,
		     size_t *ret_n, struct kiva_error *reterr);

/* Lowest address of the pool not in used[] and not the gateway. -ENOSPC when full. */
int net_ipam_allocate(const struct net_range *pool, size_t npool, uint32_t gateway,
		      const uint32_t *used, size_t nused, uint32_t *ret);

/* Checks a requested static address: inside the subnet, not network/broadcast/gateway, not in
 * used[]. Errors say which (-EINVAL outside, -EEXIST taken). */
int net_ipam_check(const struct net_prefix *subnet, uint32_t addr, const uint32_t *used,
		   size_t nused, struct kiva_error *reterr);

/* Chooses a free /24 for a new bridge without sending a packet: the first 10.X.Y.0/24 (X from
 * 100 up, then Y) overlapping none of taken[] (the host's own addresses and routes, read from
 * the kernel, and the other networks). Returns gateway .1/24. seed varies the start so two
 * kivads starting together rarely pick the same one; collisions are still checked against
 * taken[]. */
int net_subnet_choose(const struct net_prefix *taken, size_t ntaken, uint32_t seed,
		      struct net_prefix *ret);

/* LXD's rate syntax for limits.ingress/egress: "10Mbit", "1Gbit", "500kbit", "100bit",
 * decimal units, bits per second; also "10MB"/"1GB" byte rates (decimal) as LXD accepts.
 * Returns bytes per second. "10Qbit", "", "-1Mbit", "0bit" are -EINVAL with a message. */
int net_rate_parse(const char *s, uint64_t *ret_bytes_per_sec, struct kiva_error *reterr);

/* MAC address "00:16:3e:xx:xx:xx" (LXD's OUI) derived from a seed; and validation. */
void net_hwaddr_generate(uint64_t seed, char buf[static 18]);
int net_hwaddr_check(const char *s);

/* Host-side veth name for a NIC: "kv" + 10 hex digits of a hash of (kivad id, instance, nic),
 * 12 chars (< IFNAMSIZ), stable across restarts. */
void net_host_ifname(const char *kivad_id, const char *instance, const char *nic,
		     char buf[static 16]);

/* ---------------- net-acl.c (pure) ---------------- */

/* One ACL rule, LXD's network-acl shape. All strings owned by the rule (malloc'd). */
struct net_acl_rule {
	char *action; /* allow | reject | drop */
	char *source; /* "", or comma list of CIDRs, A.B.C.D, A-B, instance/ACL names, @key=value */
	char *destination; /* same */
	char *protocol; /* "", tcp, udp, icmp4, icmp6 */
	char *source_port; /* "", "80", "80,443", "8000-8080" (tcp/udp only) */
	char *destination_port; /* same */
	char *icmp_type; /* "" or 0..255 (icmp4/icmp6 only) */
	char *icmp_code; /* "" or 0..255 (icmp4/icmp6 only) */
	char *state; /* enabled (default) | disabled | logged */
	char *description;
};

/* Validates one rule given as JSON text fields (the API passes a json object through
 * net_acl_rule_from_fields). A port on a protocol other than tcp/udp, a bad port ("http",
 * "70000", "90-80"), a bad CIDR, an unknown action or state: -EINVAL naming the field. */
struct net_acl_field {
	const char *key, *value; /* value NULL: absent */
};
int net_acl_rule_from_fields(const struct net_acl_field *fields, size_t n, struct net_acl_rule *ret,
			     struct kiva_error *reterr);
void net_acl_rule_done(struct net_acl_rule *r);

/* ACL names: 1-63 chars of [a-zA-Z0-9_-], LXD's rule. */
int net_acl_name_validate(const char *name, struct kiva_error *reterr);

/* The model the ruleset is rendered from: what kivad knows right now. */
struct net_model_network {
	const char *name; /* also the bridge interface name */
	struct net_prefix ipv4; /* gateway/len; len 0: no IPv4 */
	bool nat;
	const char *const *acls; /* NULL-terminated: ACLs attached to the whole network */
};

struct net_model_nic {
	const char *instance;
	const char *nic; /* "eth0" */
	const char *network; /* network name */
	const char *host_ifname; /* host-side veth, "kv…" */
	uint32_t ipv4; /* 0: none */
	bool running; /* only running NICs get port rules */
	const char *const *acls; /* NULL-terminated: ACLs on the NIC (security.acls) */
	/* for @key=value selectors: the instance's user.* config as key/value pairs */
	const char *const *user_keys;
	const char *const *user_values;
	size_t nuser;
};

struct net_model_acl {
	const char *name;
	const struct net_acl_rule *ingress;
	size_t ningress;
	const struct net_acl_rule *egress;
	size_t negress;
};

struct net_model {
	const struct net_model_network *networks;
	size_t nnetworks;
	const struct net_model_nic *nics;
	size_t nnics;
	const struct net_model_acl *acls;
	size_t nacls;
	const char *table; /* name of KIVA's tables in both families; NULL: "kiva" */
};

/* Renders the complete nft script that replaces KIVA's tables (and only those):
 *   table inet kiva   { nat postrouting: masquerade per NAT network; forward accept for
 *                       managed bridges (so a host policy of drop does not cut NAT) }
 *   table bridge kiva { per-port ACL chains: ingress rules on traffic leaving the bridge into
 *                       a NIC's veth (forward + output hooks), egress rules on traffic from it
 *                       (forward + input hooks); established/related and ARP accepted; what no
 *                       rule allows is dropped (default deny) for NICs with an ACL }
 * Selectors resolve to the IPv4 addresses of the running NICs they match (instance name or
 * @key=value over user.* config); an ACL name that does not exist is -ENOENT. The text begins
 * with "table inet kiva {}\ndelete table inet kiva\n" (same for bridge) so one batch replaces
 * them atomically. Caller frees *ret. */
int net_nft_render(const struct net_model *m, char **ret, struct kiva_error *reterr);

/* The script that removes KIVA's tables (leaving nothing behind). Static. */
const char *net_nft_remove_script(void);
/* Same for tables named `table` (struct net_model.table). -EINVAL bad name. Caller frees. */
int net_nft_remove_script_for(const char *table, char **ret);

/* ---------------- net-nft.c (libnftables) ---------------- */

/* Runs script in one nft batch (atomic: all or nothing). On failure the message is nft's. */
int net_nft_apply(const char *script, struct kiva_error *reterr);

/* ---------------- net-link.c (libnl-route-3) ---------------- */

/* Creates or updates bridge `name` (up, mtu when > 0, IPv4 gateway address when len > 0;
 * ifalias "kiva:<tag>" so leftovers can be found). Idempotent: an existing bridge with our tag
 * is brought in line (address added if missing, stale KIVA addresses removed); an existing
 * interface without our tag is -EEXIST ("already exists and is not managed by KIVA"). */
int net_bridge_ensure(const char *name, const char *tag, const struct net_prefix *ipv4,
		      unsigned mtu, struct kiva_error *reterr);
/* Deletes bridge `name` if it carries our tag. Missing is success. */
int net_bridge_delete(const char *name, const char *tag, struct kiva_error *reterr);
/* Names of interfaces whose ifalias is "kiva:<tag>" (bridges and veths), NULL-terminated. */
int net_links_tagged(const char *tag, char ***ret_names);
/* Deletes interface `name` (a veth: its peer goes too). Missing is success. */
int net_link_delete(const char *name);
bool net_link_exists(const char *name);

/* The host's IPv4 addresses and routes as prefixes (for net_subnet_choose). *ret malloc'd. */
int net_host_prefixes(struct net_prefix **ret, size_t *ret_n);

/* Sets net.ipv4.ip_forward (and the bridge's conf forwarding) to 1. */
int net_enable_forwarding(void);

/* The bridge's own nf_call_iptables switch: on, its bridged IPv4 frames go through the inet
 * hooks (conntrack), which KIVA's ACLs need for connection state on this kernel; off, they
 * don't (about 10 % of bridge throughput). The host-wide net.bridge.bridge-nf-call-iptables,
 * when 1, still sends every bridge's frames there; KIVA leaves it as the host has it. */
int net_bridge_set_nf_call(const char *bridge, bool on);

/* Hot-plug, host side: creates veth host_ifname <-> peer_tmp, tags it, enslaves host_ifname to
 * bridge, sets mtu/hwaddr on the peer, brings the host end up, and moves the peer into the
 * network namespace of pid. */
int net_veth_create_for(const char *host_ifname, const char *peer_tmp, const char *bridge,
			const char *hwaddr, unsigned mtu, const char *tag, int pid,
			struct kiva_error *reterr);

/* Hot-plug, container side (kiva-helper only: enters the netns of pid): renames ifname_tmp to
 * name, sets ipv4 (len > 0), brings it up, adds the default route via gateway (when != 0). */
int net_nic_configure_in_netns(int pid, const char *ifname_tmp, const char *name,
			       const struct net_prefix *ipv4, uint32_t gateway,
			       struct kiva_error *reterr);

/* QoS on a NIC's host veth. ingress = container download: HTB (or TBF) root qdisc on the veth's
 * egress at that rate; egress = container upload: the veth's ingress redirected (u32 match-all
 * + mirred) to a dedicated ifb ("kvi…", tagged) with a TBF at that rate. 0 removes a limit.
 * Idempotent (replaces what is there). */
int net_qos_apply(const char *host_ifname, uint64_t ingress_bytes_per_sec,
		  uint64_t egress_bytes_per_sec, const char *tag, struct kiva_error *reterr);
/* Removes the veth's qdiscs and its ifb. */
int net_qos_clear(const char *host_ifname);

/* VLAN (802.1Q) on a bridge port: enables vlan_filtering on the bridge and sets the port's
 * untagged PVID `vid` and tagged `tagged[]`. Built for kernels with BRIDGE_VLAN_FILTERING; this
 * machine's kernel lacks it (-EOPNOTSUPP with that message). net_vlan_build_* build the
 * netlink messages without sending them (unit-tested byte for byte). */
int net_vlan_apply(const char *bridge, const char *port, unsigned vid, const unsigned *tagged,
		   size_t ntagged, struct kiva_error *reterr);
/* Turns VLAN filtering on for bridge (idempotent): tells whether the kernel can do VLANs at all
 * before a change is recorded. -EOPNOTSUPP with the same message as net_vlan_apply. */
int net_vlan_enable(const char *bridge, struct kiva_error *reterr);
struct nl_msg;
int net_vlan_build_filtering(const char *bridge, int bridge_ifindex, bool on, struct nl_msg **ret);
int net_vlan_build_port(int port_ifindex, unsigned vid, bool pvid_untagged, bool del,
			struct nl_msg **ret);
