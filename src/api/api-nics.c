/* NIC devices of instances (LXD's device model): validation, the default profile's eth0,
 * addresses from each network's IPAM pool (kept as volatile.<device>.ipv4.address so they are
 * stable across restarts), the liblxc side (runtime_nic), and the host side that follows a
 * start or a stop: QoS on the host veth and KIVA's nftables tables. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-hash.h"
#include "basic-log.h"
#include "basic-string.h"
#include "net.h"

static const char *const nic_keys[] = {
	"type",		  "network",	   "name", "ipv4.address", "hwaddr",	    "mtu",
	"limits.ingress", "limits.egress", "vlan", "vlan.tagged",  "security.acls",
};

static bool has_profile(const json_t *inst, const char *profile)
{
	const json_t *p = json_object_get(inst, "profiles");
	size_t i;
	json_t *v;

	json_array_foreach(p, i, v)
		if (json_is_string(v) && streq(json_string_value(v), profile))
			return true;
	return false;
}

/* devices + the default profile's eth0 (when the default network exists). New reference. */
json_t *api_instance_expanded_devices(struct api_ctx *ctx, const json_t *inst)
{
	json_t *out = json_deep_copy(json_object_get(inst, "devices"));

	if (!out)
		out = json_object();
	if (out && has_profile(inst, "default") && ctx->default_network &&
	    store_network(ctx->store, ctx->default_network) && !json_object_get(out, "eth0"))
		json_object_set_new(out, "eth0",
				    json_pack("{s:s,s:s,s:s}", "type", "nic", "network",
					      ctx->default_network, "name", "eth0"));
	return out;
}

static const char *vol(const json_t *config, const char *dev, const char *key, char *buf,
		       size_t len)
{
	snprintf(buf, len, "volatile.%s.%s", dev, key);
	return json_get_str(config, buf, NULL);
}

json_t *api_instance_nics(struct api_ctx *ctx, const json_t *inst)
{
	cleanup_json json_t *devs = api_instance_expanded_devices(ctx, inst);
	const json_t *config = json_object_get(inst, "config");
	json_t *list = json_array();
	const char *dev;
	json_t *d;

	if (!devs || !list) {
		json_decref(list);
		return NULL;
	}
	json_object_foreach(devs, dev, d) {
		const char *netname = json_get_str(d, "network", NULL);
		const json_t *net = netname ? store_network(ctx->store, netname) : NULL;
		const char *a = json_get_str(d, "ipv4.address", NULL);
		struct net_prefix p = {0};
		char key[160], gw[16] = "";
		json_t *nic;

		if (!streq(json_get_str(d, "type", ""), "nic") || !net)
			continue;
		if (net_prefix_parse(
			    json_get_str(json_object_get(net, "config"), "ipv4.address", ""), &p) ==
		    0)
			net_ipv4_format(p.addr, gw);
		if (!a)
			a = vol(config, dev, "ipv4.address", key, sizeof(key));
		nic = json_pack("{s:s,s:s,s:s,s:s,s:s}", "instance", json_get_str(inst, "name", ""),
				"device", dev, "name", json_get_str(d, "name", dev), "network",
				netname, "bridge", netname);
		if (!nic)
			continue;
		if (a && p.len) {
			json_set_str(nic, "ipv4", a);
			json_object_set_new(nic, "prefix", json_integer(p.len));
			json_set_str(nic, "gateway", gw);
		}
		json_set_str(nic, "host_name",
			     vol(config, dev, "host_name", key, sizeof(key)) ?: "");
		json_set_str(nic, "hwaddr",
			     json_get_str(d, "hwaddr", NULL)
				     ?: (vol(config, dev, "hwaddr", key, sizeof(key)) ?: ""));
		for (size_t i = 5; i < ARRAY_SIZE(nic_keys); i++) {
			const char *v = json_get_str(d, nic_keys[i], NULL);

			if (v)
				json_set_str(nic, nic_keys[i], v);
		}
		if (!json_get_str(nic, "mtu", NULL) &&
		    json_get_str(json_object_get(net, "config"), "bridge.mtu", NULL))
			json_set_str(
				nic, "mtu",
				json_get_str(json_object_get(net, "config"), "bridge.mtu", ""));
		json_array_append_new(list, nic);
	}
	return list;
}

/* Every IPv4 address taken on network `netname`, except instance `self`'s own device `selfdev`
 * (NULL: none excepted). Includes records being created or changed (ctx->creating). */
static int used_addresses(struct api_ctx *ctx, const char *netname, const char *self,
			  const char *selfdev, uint32_t **ret, size_t *ret_n)
{
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	const json_t *sources[2] = {insts, ctx->creating};
	uint32_t *used = NULL;
	size_t n = 0;

	for (size_t s = 0; s < 2; s++) {
		const char *name;
		json_t *inst;

		json_object_foreach((json_t *)sources[s], name, inst) {
			cleanup_json json_t *nics = NULL;
			size_t i;
			json_t *nic;

			if (s == 0 && json_object_get(ctx->creating, name))
				continue; /* its pending version counts */
			if (!json_is_object(inst))
				continue;
			nics = api_instance_nics(ctx, inst);
			json_array_foreach(nics, i, nic) {
				uint32_t a, *g;

				if (!streq(json_get_str(nic, "network", ""), netname) ||
				    net_ipv4_parse(json_get_str(nic, "ipv4", ""), &a) < 0)
					continue;
				if (self && streq(name, self) && selfdev &&
				    streq(json_get_str(nic, "device", ""), selfdev))
					continue;
				g = realloc(used, (n + 1) * sizeof(*used));
				if (!g) {
					free(used);
					return -ENOMEM;
				}
				used = g;
				used[n++] = a;
			}
		}
	}
	*ret = used;
	*ret_n = n;
	return 0;
}

static int device_name_validate(const char *dev, struct kiva_error *reterr)
{
	size_t n = strlen(dev);

	if (n == 0 || n > 63 ||
	    strspn(dev, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n)
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid device name '%s': 1-63 letters, digits, '-', '_', '.'", dev);
	return 0;
}

int api_devices_validate(struct api_ctx *ctx, const char *instance, const json_t *devices,
			 struct kiva_error *reterr)
{
	cleanup_json json_t *names = json_object();
	const char *dev, *key;
	json_t *d, *v;
	int r;

	if (!devices)
		return 0;
	if (!json_is_object(devices))
		return kiva_error_set(reterr, -EINVAL, "Invalid devices: expected an object");
	json_object_foreach((json_t *)devices, dev, d) {
		const char *type, *netname, *a, *name;
		const json_t *net;
		struct net_prefix p = {0};

		r = device_name_validate(dev, reterr);
		if (r < 0)
			return r;
		if (!json_is_object(d))
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid device '%s': expected an object", dev);
		type = json_get_str(d, "type", NULL);
		if (!type)
			return kiva_error_set(reterr, -EINVAL, "Device '%s' has no type", dev);
		if (!streq(type, "nic"))
			return kiva_error_set(
				reterr, -EINVAL,
				"Unsupported device type '%s' for '%s': only nic for now", type,
				dev);
		json_object_foreach(d, key, v) {
			bool known = false;

			for (size_t i = 0; i < ARRAY_SIZE(nic_keys); i++)
				known |= streq(key, nic_keys[i]);
			if (!known)
				return kiva_error_set(reterr, -EINVAL,
						      "Unknown key '%s' for nic device '%s'", key,
						      dev);
			if (!json_is_string(v))
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid %s for device '%s': expected a string", key, dev);
		}
		netname = json_get_str(d, "network", NULL);
		if (!netname)
			return kiva_error_set(reterr, -EINVAL,
					      "Device '%s' needs a network (network=NAME)", dev);
		net = store_network(ctx->store, netname);
		if (!net)
			return kiva_error_set(reterr, -ENOENT,
					      "Network '%s' not found (device '%s')", netname, dev);
		name = json_get_str(d, "name", dev);
		r = api_ifname_validate("interface", name, reterr);
		if (r < 0)
			return r;
		if (json_object_get(names, name))
			return kiva_error_set(reterr, -EINVAL,
					      "Interface name '%s' is used by two devices", name);
		json_object_set_new(names, name, json_true());
		a = json_get_str(d, "ipv4.address", NULL);
		if (a) {
			cleanup_free uint32_t *used = NULL;
			size_t nused = 0;
			uint32_t addr;

			if (net_prefix_parse(json_get_str(json_object_get(net, "config"),
							  "ipv4.address", ""),
					     &p) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Network '%s' has no IPv4 subnet for ipv4.address",
					netname);
			if (net_ipv4_parse(a, &addr) < 0)
				return kiva_error_set(reterr, -EINVAL,
						      "Invalid ipv4.address '%s' for device '%s'",
						      a, dev);
			r = used_addresses(ctx, netname, instance, dev, &used, &nused);
			if (r < 0)
				return kiva_error_set(reterr, r, "Out of memory");
			r = net_ipam_check(&p, addr, used, nused, reterr);
			if (r < 0)
				return r;
		}
		if (json_get_str(d, "hwaddr", NULL) &&
		    net_hwaddr_check(json_get_str(d, "hwaddr", "")) < 0)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid hwaddr '%s' for device '%s'",
					      json_get_str(d, "hwaddr", ""), dev);
		if (json_get_str(d, "mtu", NULL)) {
			int64_t mtu;

			if (parse_int64(json_get_str(d, "mtu", ""), 576, 9000, &mtu) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid mtu '%s' for device '%s': 576 to 9000",
					json_get_str(d, "mtu", ""), dev);
		}
		for (const char *const *k =
			     (const char *const[]){"limits.ingress", "limits.egress", NULL};
		     *k; k++) {
			const char *rate = json_get_str(d, *k, NULL);
			uint64_t bps;

			if (rate && net_rate_parse(rate, &bps, reterr) < 0)
				return kiva_error_default(reterr, -EINVAL, "Invalid %s '%s'", *k,
							  rate);
		}
		if (json_get_str(d, "vlan", NULL)) {
			int64_t vid;

			if (parse_int64(json_get_str(d, "vlan", ""), 1, 4094, &vid) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid vlan '%s' for device '%s': 1 to 4094",
					json_get_str(d, "vlan", ""), dev);
		}
		if (json_get_str(d, "vlan.tagged", NULL)) {
			cleanup_strv char **ids =
				api_split_list(json_get_str(d, "vlan.tagged", ""));

			for (char **id = ids; id && *id; id++) {
				int64_t vid;

				if (parse_int64(*id, 1, 4094, &vid) < 0)
					return kiva_error_set(
						reterr, -EINVAL,
						"Invalid vlan.tagged '%s' for device '%s'",
						json_get_str(d, "vlan.tagged", ""), dev);
			}
		}
		if (json_get_str(d, "security.acls", NULL)) {
			cleanup_strv char **acls =
				api_split_list(json_get_str(d, "security.acls", ""));

			for (char **n = acls; n && *n; n++)
				if (!store_acl(ctx->store, *n))
					return kiva_error_set(
						reterr, -ENOENT,
						"Network ACL '%s' not found (device '%s')", *n,
						dev);
		}
	}
	return 0;
}

int api_nics_assign(struct api_ctx *ctx, json_t *inst, struct kiva_error *reterr)
{
	const char *name = json_get_str(inst, "name", "");
	json_t *config = json_object_get(inst, "config");
	cleanup_json json_t *devs = api_instance_expanded_devices(ctx, inst);
	const char *key, *dev;
	json_t *v, *d;
	void *tmp;
	int r;

	if (!devs || !config)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	/* forget what belonged to devices that are gone */
	json_object_foreach_safe(config, tmp, key, v) {
		char devname[80];
		const char *dot;

		if (!startswith(key, "volatile."))
			continue;
		dot = strchr(key + strlen("volatile."), '.');
		if (!dot || (size_t)(dot - key - strlen("volatile.")) >= sizeof(devname))
			continue;
		snprintf(devname, sizeof(devname), "%.*s", (int)(dot - key - strlen("volatile.")),
			 key + strlen("volatile."));
		if ((streq(dot + 1, "ipv4.address") || streq(dot + 1, "hwaddr") ||
		     streq(dot + 1, "host_name")) &&
		    !json_object_get(devs, devname))
			json_object_del(config, key);
	}
	json_object_foreach(devs, dev, d) {
		const char *netname = json_get_str(d, "network", "");
		const json_t *net = store_network(ctx->store, netname);
		char k[160], buf[32];

		if (!streq(json_get_str(d, "type", ""), "nic") || !net)
			continue;
		/* host-side veth name and MAC: stable for the life of the instance */
		snprintf(k, sizeof(k), "volatile.%s.host_name", dev);
		if (!json_get_str(config, k, NULL)) {
			char ifname[16];

			net_host_ifname(ctx->kivad_id, name, dev, ifname);
			json_set_str(config, k, ifname);
		}
		snprintf(k, sizeof(k), "volatile.%s.hwaddr", dev);
		if (!json_get_str(d, "hwaddr", NULL) && !json_get_str(config, k, NULL)) {
			struct sha256_ctx h;
			char hex[65];

			sha256_init(&h);
			sha256_update(&h, ctx->kivad_id, strlen(ctx->kivad_id));
			sha256_update(&h, name, strlen(name) + 1);
			sha256_update(&h, dev, strlen(dev));
			sha256_final_hex(&h, hex);
			hex[16] = 0;
			net_hwaddr_generate(strtoull(hex, NULL, 16), buf);
			json_set_str(config, k, buf);
		}
		snprintf(k, sizeof(k), "volatile.%s.ipv4.address", dev);
		if (json_get_str(d, "ipv4.address", NULL)) {
			json_object_del(config, k); /* a static address wins */
			continue;
		}
		if (!json_get_str(config, k, NULL)) {
			const json_t *nc = json_object_get(net, "config");
			cleanup_free struct net_range *pool = NULL;
			cleanup_free uint32_t *used = NULL;
			size_t npool = 0, nused = 0;
			struct net_prefix p;
			uint32_t a;

			if (net_prefix_parse(json_get_str(nc, "ipv4.address", ""), &p) < 0)
				continue; /* a network without IPv4 */
			r = net_ranges_parse(json_get_str(nc, "ipv4.dhcp.ranges", NULL), &p, &pool,
					     &npool, reterr);
			if (r < 0)
				return r;
			r = used_addresses(ctx, netname, name, dev, &used, &nused);
			if (r < 0)
				return kiva_error_set(reterr, r, "Out of memory");
			r = net_ipam_allocate(pool, npool, p.addr, used, nused, &a);
			if (r < 0)
				return kiva_error_set(reterr, -ENOSPC,
						      "No free IPv4 address left on network '%s'",
						      netname);
			net_ipv4_format(a, buf);
			json_set_str(config, k, buf);
		}
	}
	return 0;
}

int api_nics_runtime(struct api_ctx *ctx, const json_t *inst, struct runtime_nic **ret,
		     size_t *ret_n, json_t **ret_keep)
{
	json_t *nics = api_instance_nics(ctx, inst);
	struct runtime_nic *out;
	bool have_gateway = false;
	size_t i;
	json_t *nic;

	if (!nics)
		return -ENOMEM;
	out = calloc(json_array_size(nics) + 1, sizeof(*out));
	if (!out) {
		json_decref(nics);
		return -ENOMEM;
	}
	json_array_foreach(nics, i, nic) {
		struct runtime_nic *n = &out[i];
		int64_t mtu = 0;

		n->name = json_get_str(nic, "name", "");
		n->host_name = json_get_str(nic, "host_name", "");
		n->bridge = json_get_str(nic, "bridge", "");
		n->hwaddr =
			*json_get_str(nic, "hwaddr", "") ? json_get_str(nic, "hwaddr", "") : NULL;
		if (json_get_str(nic, "mtu", NULL))
			(void)parse_int64(json_get_str(nic, "mtu", ""), 0, 65535, &mtu);
		n->mtu = (unsigned)mtu;
		if (json_get_str(nic, "ipv4", NULL)) {
			struct net_prefix p = {0};
			char cidr[40], brd[16];

			snprintf(cidr, sizeof(cidr), "%s/%lld", json_get_str(nic, "ipv4", ""),
				 json_get_int(nic, "prefix", 24));
			if (net_prefix_parse(cidr, &p) == 0) {
				net_ipv4_format(net_prefix_broadcast(&p), brd);
				json_set_str(nic, "cidr", cidr);
				json_set_str(nic, "broadcast", brd);
				n->ipv4 = json_get_str(nic, "cidr", NULL);
				n->ipv4_broadcast = json_get_str(nic, "broadcast", NULL);
			}
			/* one default route: via the first NIC's gateway */
			if (!have_gateway && json_get_str(nic, "gateway", NULL)) {
				n->gateway = json_get_str(nic, "gateway", NULL);
				have_gateway = true;
			}
		}
	}
	*ret = out;
	*ret_n = json_array_size(nics);
	*ret_keep = nics;
	return 0;
}

/* The nameservers to give an instance: its first NIC's network's dns.nameservers, else the
 * host's own non-loopback ones, else that network's gateway. Text of resolv.conf. */
char *api_nics_resolv_conf(struct api_ctx *ctx, const json_t *inst)
{
	cleanup_json json_t *nics = api_instance_nics(ctx, inst);
	const json_t *first = json_array_get(nics, 0);
	const json_t *net =
		first ? store_network(ctx->store, json_get_str(first, "network", "")) : NULL;
	const char *ns = json_get_str(json_object_get(net, "config"), "dns.nameservers", NULL);
	cleanup_free char *host = NULL;
	char *out = strdup("# written by KIVA at start\n"), *grown;

	if (!first || !out)
		return out;
	if (ns) {
		cleanup_strv char **list = api_split_list(ns);

		for (char **n = list; n && *n; n++) {
			grown = strf("%snameserver %s\n", out, *n);
			free(out);
			out = grown;
			if (!out)
				return NULL;
		}
		return out;
	}
	if (read_file("/etc/resolv.conf", 65536, &host, NULL) == 0) {
		char *save = NULL;

		for (char *line = strtok_r(host, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char addr[64];
			uint32_t a;

			if (sscanf(line, "nameserver %63s", addr) != 1 ||
			    net_ipv4_parse(addr, &a) < 0 || (a >> 24) == 127)
				continue;
			grown = strf("%snameserver %s\n", out, addr);
			free(out);
			out = grown;
			if (!out)
				return NULL;
			ns = "host";
		}
	}
	if (!ns && json_get_str(first, "gateway", NULL)) {
		grown = strf("%snameserver %s\n", out, json_get_str(first, "gateway", ""));
		free(out);
		out = grown;
	}
	return out;
}

/* After a start: QoS on the host veths, VLAN on the bridge ports, the nftables tables. */
int api_nics_started(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	cleanup_json json_t *nics = api_instance_nics(ctx, inst);
	size_t i;
	json_t *nic;
	int r;

	json_array_foreach(nics, i, nic) {
		const char *host = json_get_str(nic, "host_name", "");
		uint64_t in = 0, out = 0;

		if (json_get_str(nic, "limits.ingress", NULL))
			(void)net_rate_parse(json_get_str(nic, "limits.ingress", ""), &in, NULL);
		if (json_get_str(nic, "limits.egress", NULL))
			(void)net_rate_parse(json_get_str(nic, "limits.egress", ""), &out, NULL);
		if (in || out) {
			r = net_qos_apply(host, in, out, ctx->link_tag, reterr);
			if (r < 0)
				return r;
		}
		if (json_get_str(nic, "vlan", NULL) || json_get_str(nic, "vlan.tagged", NULL)) {
			cleanup_strv char **tagged =
				api_split_list(json_get_str(nic, "vlan.tagged", NULL));
			unsigned ids[64];
			size_t n = 0;
			int64_t vid = 0;

			for (char **t = tagged; t && *t && n < ARRAY_SIZE(ids); t++) {
				int64_t x;

				if (parse_int64(*t, 1, 4094, &x) == 0)
					ids[n++] = (unsigned)x;
			}
			if (json_get_str(nic, "vlan", NULL))
				(void)parse_int64(json_get_str(nic, "vlan", ""), 1, 4094, &vid);
			r = net_vlan_apply(json_get_str(nic, "bridge", ""), host, (unsigned)vid,
					   ids, n, reterr);
			if (r < 0)
				return r;
		}
	}
	return api_net_sync(ctx, reterr);
}

/* After a stop (or a delete): the upload shaping's ifb goes, the tables lose the ports. */
void api_nics_stopped(struct api_ctx *ctx, const json_t *inst)
{
	cleanup_json json_t *nics = inst ? api_instance_nics(ctx, inst) : NULL;
	struct kiva_error err = {0};
	size_t i;
	json_t *nic;

	json_array_foreach(nics, i, nic)
		if (json_get_str(nic, "limits.egress", NULL) ||
		    json_get_str(nic, "limits.ingress", NULL))
			(void)net_qos_clear(json_get_str(nic, "host_name", ""));
	if (api_net_sync(ctx, &err) < 0)
		log_warning("Failed to update the nftables rules: %s", err.msg);
}
