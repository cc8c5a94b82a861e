/* /1.0/networks and /1.0/network-acls (LXD's shapes), and what keeps the host in line with them:
 * bridges through net-link (libnl), KIVA's nftables tables re-rendered from the whole model and
 * applied in one atomic batch (api_net_sync) whenever a network, an ACL, an instance's NICs or
 * an instance's running state changes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-hash.h"
#include "basic-log.h"
#include "basic-string.h"
#include "net.h"

static const char *const network_keys[] = {
	"ipv4.address", "ipv4.nat",	   "ipv4.dhcp.ranges",
	"bridge.mtu",	"dns.nameservers", "security.acls",
};

/* ---- names and lists ---- */

int api_ifname_validate(const char *what, const char *name, struct kiva_error *reterr)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0)
		return kiva_error_set(reterr, -EINVAL, "%s name is required", what);
	if (n > 15)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid %s name '%s': longer than 15 characters", what,
				      name);
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
		    n ||
	    streq(name, ".") || streq(name, ".."))
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid %s name '%s': only letters, digits, '-', '_' and '.'", what, name);
	return 0;
}

/* Splits "a,b , c" into a NULL-terminated vector of trimmed non-empty items. */
char **api_split_list(const char *s)
{
	cleanup_free char *copy = s ? strdup(s) : NULL;
	char **v = calloc(1, sizeof(char *));
	char *save = NULL;

	if (!v || (s && !copy)) {
		free(v);
		return NULL;
	}
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
	     t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		for (char *e = t + strlen(t); e > t && e[-1] == ' ';)
			*--e = 0;
		if (*t && strv_push(&v, strdup(t)) < 0) {
			strv_free(v);
			return NULL;
		}
	}
	return v;
}

static int acls_exist(struct api_ctx *ctx, const char *what, const char *list,
		      struct kiva_error *reterr)
{
	cleanup_strv char **names = api_split_list(list);

	if (!names)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (char **n = names; *n; n++)
		if (!store_acl(ctx->store, *n))
			return kiva_error_set(reterr, -ENOENT,
					      "Invalid %s: network ACL '%s' not found", what, *n);
	return 0;
}

/* ---- network config ---- */

/* The network's subnet (gateway/len); len 0 when it has none. */
static struct net_prefix network_prefix(const json_t *net)
{
	struct net_prefix p = {0};
	const char *a = json_get_str(json_object_get(net, "config"), "ipv4.address", NULL);

	if (!a || net_prefix_parse(a, &p) < 0)
		memset(&p, 0, sizeof(p));
	return p;
}

static bool config_true(const json_t *config, const char *key)
{
	bool b = false;
	const char *v = json_get_str(config, key, NULL);

	return v && proto_bool_parse(v, &b) == 0 && b;
}

/* Validates a network's config (after "auto" was resolved). self: the network's own name (its
 * own bridge does not count as an overlap). */
static int network_config_validate(struct api_ctx *ctx, const char *self, json_t *config,
				   struct kiva_error *reterr)
{
	const json_t *nets = json_object_get(store_state(ctx->store), "networks");
	cleanup_free struct net_prefix *host = NULL;
	cleanup_free struct net_range *pool = NULL;
	struct net_prefix p = {0};
	size_t nhost = 0, npool = 0;
	const char *key, *v;
	json_t *val;

	json_object_foreach(config, key, val) {
		bool known = false;

		for (size_t i = 0; i < ARRAY_SIZE(network_keys); i++)
			known |= streq(key, network_keys[i]);
		if (!known && !startswith(key, "user."))
			return kiva_error_set(reterr, -EINVAL,
					      "Unknown network configuration key: %s", key);
		if (!json_is_string(val))
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid value for %s: expected a string", key);
	}
	v = json_get_str(config, "ipv4.address", NULL);
	if (v && !streq(v, "none")) {
		if (net_prefix_parse(v, &p) < 0 || p.len < 8 || p.len > 30)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid value for ipv4.address '%s': expected the gateway "
				"and prefix length, like 10.0.3.1/24 (/8 to /30), or auto",
				v);
		if (p.addr == net_prefix_network(&p) || p.addr == net_prefix_broadcast(&p))
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid value for ipv4.address '%s': the gateway must be "
				"a host address of the subnet",
				v);
		json_object_foreach((json_t *)nets, key, val) {
			struct net_prefix o = network_prefix(val);

			if (!streq(key, self) && o.len && net_prefix_overlaps(&p, &o))
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for ipv4.address '%s': overlaps "
					"network '%s' (%s)",
					v, key,
					json_get_str(json_object_get(val, "config"), "ipv4.address",
						     ""));
		}
		if (net_host_prefixes(&host, &nhost) == 0) {
			const json_t *me = store_network(ctx->store, self);
			struct net_prefix own = me ? network_prefix(me) : (struct net_prefix){0};

			for (size_t i = 0; i < nhost; i++) {
				char a[16];

				/* our own bridge carries its current subnet */
				if (own.len && net_prefix_overlaps(&host[i], &own))
					continue;
				if (host[i].len >= 8 && net_prefix_overlaps(&p, &host[i])) {
					net_ipv4_format(host[i].addr, a);
					return kiva_error_set(
						reterr, -EINVAL,
						"Invalid value for ipv4.address '%s': overlaps "
						"%s/%u, already used on this host",
						v, a, host[i].len);
				}
			}
		}
	}
	v = json_get_str(config, "ipv4.nat", NULL);
	if (v && proto_bool_parse(v, NULL) < 0)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid value for ipv4.nat '%s': expected true or false", v);
	v = json_get_str(config, "ipv4.dhcp.ranges", NULL);
	if (v) {
		int r;

		if (!p.len)
			return kiva_error_set(reterr, -EINVAL,
					      "ipv4.dhcp.ranges needs ipv4.address to be set");
		r = net_ranges_parse(v, &p, &pool, &npool, reterr);
		if (r < 0)
			return kiva_error_default(reterr, r,
						  "Invalid value for ipv4.dhcp.ranges '%s'", v);
	}
	v = json_get_str(config, "bridge.mtu", NULL);
	if (v) {
		int64_t mtu;

		if (parse_int64(v, 576, 9000, &mtu) < 0)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid value for bridge.mtu '%s': expected 576 to 9000", v);
	}
	v = json_get_str(config, "dns.nameservers", NULL);
	if (v) {
		cleanup_strv char **list = api_split_list(v);

		for (char **n = list; n && *n; n++) {
			uint32_t a;

			if (net_ipv4_parse(*n, &a) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for dns.nameservers: '%s' is not an "
					"IPv4 address",
					*n);
		}
	}
	v = json_get_str(config, "security.acls", NULL);
	if (v && acls_exist(ctx, "security.acls", v, reterr) < 0)
		return -EINVAL;
	return 0;
}

/* "auto" (or a missing ipv4.address on create) → a free /24 chosen from what the host and the
 * other networks use; nothing is sent on the wire. */
static int network_resolve_auto(struct api_ctx *ctx, json_t *config, struct kiva_error *reterr)
{
	const json_t *nets = json_object_get(store_state(ctx->store), "networks");
	cleanup_free struct net_prefix *taken = NULL;
	struct net_prefix *grown, chosen;
	size_t ntaken = 0;
	const char *key;
	json_t *val;
	char a[16], buf[32];
	uint32_t seed = (uint32_t)strtoul(ctx->kivad_id, NULL, 16);
	int r;

	if (net_host_prefixes(&taken, &ntaken) < 0)
		ntaken = 0;
	json_object_foreach((json_t *)nets, key, val) {
		struct net_prefix p = network_prefix(val);

		if (!p.len)
			continue;
		grown = realloc(taken, (ntaken + 1) * sizeof(*taken));
		if (!grown)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		taken = grown;
		taken[ntaken++] = p;
	}
	r = net_subnet_choose(taken, ntaken, seed, &chosen);
	if (r < 0)
		return kiva_error_set(reterr, r,
				      "No free IPv4 subnet in 10.100.0.0-10.254.255.0/24");
	net_ipv4_format(chosen.addr, a);
	snprintf(buf, sizeof(buf), "%s/%u", a, chosen.len);
	return json_set_str(config, "ipv4.address", buf);
}

/* Brings the bridge of net in line (create, address, mtu). */
static int network_apply(struct api_ctx *ctx, const json_t *net, struct kiva_error *reterr)
{
	const json_t *config = json_object_get(net, "config");
	struct net_prefix p = network_prefix(net);
	int64_t mtu = 0;
	const char *m = json_get_str(config, "bridge.mtu", NULL);
	int r;

	/* no bridge.mtu: the default, also when it was unset after being set */
	mtu = 1500;
	if (m)
		(void)parse_int64(m, 0, 65535, &mtu);
	r = net_bridge_ensure(json_get_str(net, "name", ""), ctx->link_tag, &p, (unsigned)mtu,
			      reterr);
	if (r < 0)
		return r;
	/* routing for NAT, and bridged frames through the inet hooks for ACLs */
	(void)net_enable_forwarding();
	return 0;
}

/* ---- the nftables model ---- */

struct model_build {
	struct net_model m;
	struct net_model_network *nets;
	struct net_model_nic *nics;
	struct net_model_acl *acls;
	struct net_acl_rule **rules; /* per acl: ingress then egress */
	char ***strvs; /* everything to strv_free */
	size_t nstrvs;
	json_t *nic_list; /* keeps the expanded NICs alive */
};

static char **keep_strv(struct model_build *b, char **v)
{
	char ***g = realloc(b->strvs, (b->nstrvs + 1) * sizeof(*g));

	if (!g || !v) {
		strv_free(v);
		return NULL;
	}
	b->strvs = g;
	b->strvs[b->nstrvs++] = v;
	return v;
}

static void model_free(struct model_build *b)
{
	for (size_t i = 0; i < b->m.nacls; i++) {
		size_t n = b->acls[i].ningress + b->acls[i].negress;

		for (size_t k = 0; k < n; k++)
			net_acl_rule_done(&b->rules[i][k]);
		free(b->rules[i]);
	}
	for (size_t i = 0; i < b->nstrvs; i++)
		strv_free(b->strvs[i]);
	free(b->strvs);
	free(b->rules);
	free(b->nets);
	free(b->nics);
	free(b->acls);
	json_decref(b->nic_list);
}

/* Parses one stored rule (an object of strings) into r. */
int api_acl_rule_parse(const json_t *rule, struct net_acl_rule *r, struct kiva_error *reterr)
{
	struct net_acl_field fields[16];
	size_t n = 0;
	const char *key;
	json_t *v;

	if (!json_is_object(rule))
		return kiva_error_set(reterr, -EINVAL, "Invalid ACL rule: expected an object");
	json_object_foreach((json_t *)rule, key, v) {
		if (n >= ARRAY_SIZE(fields))
			return kiva_error_set(reterr, -EINVAL, "Invalid ACL rule: too many keys");
		if (!json_is_string(v))
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid ACL rule: '%s' must be a string", key);
		fields[n].key = key;
		fields[n].value = json_string_value(v);
		n++;
	}
	return net_acl_rule_from_fields(fields, n, r, reterr);
}

static int model_build(struct api_ctx *ctx, struct model_build *b, struct kiva_error *reterr)
{
	const json_t *state = store_state(ctx->store);
	const json_t *nets = json_object_get(state, "networks");
	const json_t *acls = json_object_get(state, "acls");
	const json_t *insts = json_object_get(state, "instances");
	size_t i = 0;
	const char *key;
	json_t *val;
	int r;

	memset(b, 0, sizeof(*b));
	b->nets = calloc(json_object_size(nets) + 1, sizeof(*b->nets));
	b->acls = calloc(json_object_size(acls) + 1, sizeof(*b->acls));
	b->rules = calloc(json_object_size(acls) + 1, sizeof(*b->rules));
	b->nic_list = json_array();
	if (!b->nets || !b->acls || !b->rules || !b->nic_list)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	json_object_foreach((json_t *)nets, key, val) {
		const json_t *config = json_object_get(val, "config");
		char **acl_names =
			keep_strv(b, api_split_list(json_get_str(config, "security.acls", NULL)));

		if (!acl_names)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		b->nets[i].name = key;
		b->nets[i].ipv4 = network_prefix(val);
		b->nets[i].nat = config_true(config, "ipv4.nat");
		b->nets[i].acls = (const char *const *)acl_names;
		i++;
	}
	b->m.networks = b->nets;
	b->m.nnetworks = i;

	i = 0;
	json_object_foreach((json_t *)acls, key, val) {
		const json_t *in = json_object_get(val, "ingress"),
			     *eg = json_object_get(val, "egress");
		size_t nin = json_array_size(in), neg = json_array_size(eg);

		b->rules[i] = calloc(nin + neg + 1, sizeof(struct net_acl_rule));
		if (!b->rules[i])
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		b->acls[i].name = key;
		b->acls[i].ingress = b->rules[i];
		b->acls[i].egress = b->rules[i] + nin;
		b->m.nacls = i + 1;
		for (size_t k = 0; k < nin + neg; k++) {
			r = api_acl_rule_parse(
				json_array_get(k < nin ? in : eg, k < nin ? k : k - nin),
				&b->rules[i][k], reterr);
			if (r < 0)
				return r;
			if (k < nin)
				b->acls[i].ningress++;
			else
				b->acls[i].negress++;
		}
		i++;
	}
	b->m.acls = b->acls;
	b->m.nacls = i;

	/* NICs: every expanded NIC of every ready instance */
	json_object_foreach((json_t *)insts, key, val) {
		json_t *nics;

		if (!streq(json_get_str(val, "kiva_state", ""), "ready"))
			continue;
		nics = api_instance_nics(ctx, val);
		if (!nics)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		json_array_extend(b->nic_list, nics);
		json_decref(nics);
	}
	b->nics = calloc(json_array_size(b->nic_list) + 1, sizeof(*b->nics));
	if (!b->nics)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (i = 0; i < json_array_size(b->nic_list); i++) {
		const json_t *nic = json_array_get(b->nic_list, i);
		const json_t *inst = store_instance(ctx->store, json_get_str(nic, "instance", ""));
		const json_t *config = json_object_get(inst, "config");
		struct net_model_nic *m = &b->nics[i];
		char **acl_names =
			keep_strv(b, api_split_list(json_get_str(nic, "security.acls", NULL)));
		char **ukeys = keep_strv(b, calloc(json_object_size(config) + 1, sizeof(char *)));
		char **uvals = keep_strv(b, calloc(json_object_size(config) + 1, sizeof(char *)));
		const char *ck;
		json_t *cv;
		size_t nu = 0;

		if (!acl_names || !ukeys || !uvals)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		m->instance = json_get_str(nic, "instance", "");
		m->nic = json_get_str(nic, "device", "");
		m->network = json_get_str(nic, "network", "");
		m->host_ifname = json_get_str(nic, "host_name", "");
		if (net_ipv4_parse(json_get_str(nic, "ipv4", ""), &m->ipv4) < 0)
			m->ipv4 = 0;
		/* a NIC's host veth exists exactly while its container runs: a cheap ioctl instead
		 * of asking every container's monitor */
		m->running = *m->host_ifname && net_link_exists(m->host_ifname);
		m->acls = (const char *const *)acl_names;
		json_object_foreach((json_t *)config, ck, cv) {
			if (!startswith(ck, "user.") || !json_is_string(cv))
				continue;
			ukeys[nu] = strdup(ck + strlen("user."));
			uvals[nu] = strdup(json_string_value(cv));
			if (!ukeys[nu] || !uvals[nu])
				return kiva_error_set(reterr, -ENOMEM, "Out of memory");
			nu++;
		}
		m->user_keys = (const char *const *)ukeys;
		m->user_values = (const char *const *)uvals;
		m->nuser = nu;
	}
	b->m.nics = b->nics;
	b->m.nnics = i;
	b->m.table = ctx->nft_table;
	return 0;
}

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int api_net_sync(struct api_ctx *ctx, struct kiva_error *reterr)
{
	struct model_build b;
	cleanup_free char *script = NULL;
	uint64_t t0 = mono_usec(), t1, t2;
	int r;

	r = model_build(ctx, &b, reterr);
	t1 = mono_usec();
	if (r >= 0)
		r = net_nft_render(&b.m, &script, reterr);
	if (r >= 0) {
		/* bridges with a guarded running NIC send their frames through conntrack (the ACLs'
		 * connection state), the others don't pay for it */
		for (size_t i = 0; i < b.m.nnetworks; i++) {
			bool guarded = false;

			for (size_t k = 0; k < b.m.nnics && !guarded; k++) {
				const struct net_model_nic *nic = &b.m.nics[k];
				const char *const *net_acls = b.nets[i].acls;

				if (!nic->running || !streq(nic->network, b.nets[i].name))
					continue;
				guarded = (nic->acls && nic->acls[0]) || (net_acls && net_acls[0]);
			}
			(void)net_bridge_set_nf_call(b.nets[i].name, guarded);
		}
	}
	model_free(&b);
	if (r < 0)
		return r;
	/* most starts and stops change nothing here (no ACL on their NICs): skip the kernel */
	if (ctx->nft_applied && streq(ctx->nft_applied, script)) {
		log_debug("nftables: model %llu us, unchanged", (unsigned long long)(t1 - t0));
		return 0;
	}
	r = net_nft_apply(script, reterr);
	if (r >= 0) {
		free(ctx->nft_applied);
		ctx->nft_applied = TAKE_PTR(script);
	}
	t2 = mono_usec();
	log_debug("nftables: model %llu us, apply %llu us", (unsigned long long)(t1 - t0),
		  (unsigned long long)(t2 - t1));
	return r;
}

/* ---- used_by ---- */

static json_t *network_used_by(struct api_ctx *ctx, const char *name)
{
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	json_t *list = json_array();
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)insts, key, val) {
		cleanup_json json_t *nics = api_instance_nics(ctx, val);
		size_t i;
		json_t *nic;

		json_array_foreach(nics, i, nic) {
			if (streq(json_get_str(nic, "network", ""), name)) {
				char url[128];

				snprintf(url, sizeof(url), "/1.0/instances/%s", key);
				json_array_append_new(list, json_string(url));
				break;
			}
		}
	}
	return list;
}

static bool list_has(const char *list, const char *name)
{
	cleanup_strv char **v = api_split_list(list);

	for (char **n = v; n && *n; n++)
		if (streq(*n, name))
			return true;
	return false;
}

static json_t *acl_used_by(struct api_ctx *ctx, const char *name)
{
	const json_t *state = store_state(ctx->store);
	json_t *list = json_array();
	const char *key;
	json_t *val;

	json_object_foreach(json_object_get(state, "networks"), key, val) {
		if (list_has(json_get_str(json_object_get(val, "config"), "security.acls", ""),
			     name)) {
			char url[128];

			snprintf(url, sizeof(url), "/1.0/networks/%s", key);
			json_array_append_new(list, json_string(url));
		}
	}
	json_object_foreach(json_object_get(state, "instances"), key, val) {
		cleanup_json json_t *nics = api_instance_nics(ctx, val);
		size_t i;
		json_t *nic;

		json_array_foreach(nics, i, nic) {
			if (list_has(json_get_str(nic, "security.acls", ""), name)) {
				char url[128];

				snprintf(url, sizeof(url), "/1.0/instances/%s", key);
				json_array_append_new(list, json_string(url));
				break;
			}
		}
	}
	return list;
}

/* ---- ETags: what a PUT replaces, so concurrent read-modify-writes are detected ---- */

static void record_etag(const json_t *rec, char out[static 80])
{
	cleanup_free char *text = json_dump_compact(rec);
	struct sha256_ctx h;

	out[0] = 0;
	if (!text)
		return;
	sha256_init(&h);
	sha256_update(&h, text, strlen(text));
	sha256_final_hex(&h, out);
}

/* Replies 412 and returns false when the client's If-Match is not rec's ETag. */
static bool etag_matches(struct api_request *req, const json_t *rec)
{
	char etag[80];

	if (!req->if_match[0])
		return true;
	record_etag(rec, etag);
	if (streq(etag, req->if_match))
		return true;
	api_reply_error(req, 412, "ETag doesn't match: it changed since it was read");
	return false;
}

/* ---- /1.0/networks ---- */

static json_t *network_render(struct api_ctx *ctx, const json_t *net)
{
	json_t *out = json_deep_copy(net);

	json_object_set_new(out, "status", json_string("Created"));
	json_object_set_new(out, "used_by", network_used_by(ctx, json_get_str(net, "name", "")));
	json_object_set_new(out, "locations", json_pack("[s]", "none"));
	return out;
}

void api_networks_handle_list(struct api_request *req)
{
	const json_t *nets = json_object_get(store_state(req->ctx->store), "networks");
	bool recursive = api_recursion(req) > 0;
	json_t *list = json_array();
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)nets, key, val) {
		char url[128];

		snprintf(url, sizeof(url), "/1.0/networks/%s", key);
		json_array_append_new(list,
				      recursive ? network_render(req->ctx, val) : json_string(url));
	}
	api_reply_sync(req, list);
}

static const json_t *find_network(struct api_request *req)
{
	const json_t *net = store_network(req->ctx->store, req->params[0]);

	if (!net)
		api_reply_error(req, 404, "Network '%s' not found", req->params[0]);
	return net;
}

void api_network_handle_get(struct api_request *req)
{
	const json_t *net = find_network(req);

	if (!net)
		return;
	record_etag(net, req->etag);
	api_reply_sync(req, network_render(req->ctx, net));
}

/* Store commit of a network or ACL, answering the request from the callback (sync API). */
struct net_commit {
	struct api_request *req;
	struct api_ctx *ctx;
	json_t *reply; /* metadata of the success answer, or NULL */
	bool sync_after;
};

static void net_committed(void *userdata, int status, const char *errmsg)
{
	struct net_commit *c = userdata;
	struct kiva_error err = {0};

	if (status < 0) {
		api_reply_error(c->req, status == -ENOENT ? 404 : 500, "%s", errmsg);
	} else if (c->sync_after && api_net_sync(c->ctx, &err) < 0) {
		log_warning("Failed to apply the nftables rules: %s", err.msg);
		api_reply_error(c->req, 500, "Recorded, but applying the firewall rules failed: %s",
				err.msg);
	} else {
		api_reply_sync(c->req, c->reply ? json_incref(c->reply) : NULL);
	}
	json_decref(c->reply);
	free(c);
}

static void commit(struct api_request *req, json_t *cmd /* owned */)
{
	struct net_commit *c = calloc(1, sizeof(*c));
	int r;

	if (!c || !cmd) {
		free(c);
		json_decref(cmd);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	c->req = req;
	c->ctx = req->ctx;
	c->sync_after = true;
	api_defer(req);
	r = store_apply(req->ctx->store, cmd, net_committed, c);
	json_decref(cmd);
	if (r < 0) {
		free(c);
		api_reply_error(req, 503, "Failed to record the change: %s", strerror(-r));
	}
}

static json_t *config_object(struct api_request *req, const json_t *body)
{
	const json_t *config = json_object_get(body, "config");

	if (config && !json_is_object(config)) {
		api_reply_error(req, 400, "Invalid config: expected an object");
		return NULL;
	}
	return config ? json_deep_copy(config) : json_object();
}

/* Creates a network from a request body or at first start (req NULL). */
int api_network_create(struct api_ctx *ctx, const char *name, const char *description,
		       json_t *config /* borrowed, completed */, json_t **ret_net,
		       struct kiva_error *reterr)
{
	const char *a = json_get_str(config, "ipv4.address", NULL);
	json_t *net;
	int r;

	r = api_ifname_validate("network", name, reterr);
	if (r < 0)
		return r;
	if (store_network(ctx->store, name))
		return kiva_error_set(reterr, -EEXIST, "Network '%s' already exists", name);
	if (!a || streq(a, "auto")) {
		r = network_resolve_auto(ctx, config, reterr);
		if (r < 0)
			return r;
		if (!json_object_get(config, "ipv4.nat"))
			json_set_str(config, "ipv4.nat", "true");
	}
	r = network_config_validate(ctx, name, config, reterr);
	if (r < 0)
		return r;
	net = json_pack("{s:s,s:s,s:s,s:b,s:O}", "name", name, "description",
			description ? description : "", "type", "bridge", "managed", 1, "config",
			config);
	if (!net)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = network_apply(ctx, net, reterr);
	if (r < 0) {
		json_decref(net);
		return r;
	}
	*ret_net = net;
	return 0;
}

void api_networks_handle_create(struct api_request *req)
{
	cleanup_json json_t *body = NULL, *config = NULL, *net = NULL;
	struct kiva_error err = {0};
	const char *type;

	if (api_parse_body(req, &body) < 0)
		return;
	type = json_get_str(body, "type", "bridge");
	if (!streq(type, "bridge")) {
		api_reply_error(req, 400, "Unsupported network type '%s': only bridge", type);
		return;
	}
	config = config_object(req, body);
	if (!config)
		return;
	if (api_network_create(req->ctx, json_get_str(body, "name", NULL),
			       json_get_str(body, "description", ""), config, &net, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	commit(req, store_cmd_network_put(net));
}

static void network_update(struct api_request *req, bool patch)
{
	const json_t *cur = find_network(req);
	cleanup_json json_t *body = NULL, *config = NULL, *net = NULL;
	struct kiva_error err = {0};
	const char *old_addr, *new_addr;
	const char *key;
	json_t *v;

	if (!cur || !etag_matches(req, cur) || api_parse_body(req, &body) < 0)
		return;
	config = config_object(req, body);
	if (!config)
		return;
	if (patch) {
		json_t *merged = json_deep_copy(json_object_get(cur, "config"));

		json_object_foreach(config, key, v) {
			if (json_is_null(v))
				json_object_del(merged, key);
			else
				json_object_set(merged, key, v);
		}
		json_decref(config);
		config = merged;
	}
	old_addr = json_get_str(json_object_get(cur, "config"), "ipv4.address", "");
	new_addr = json_get_str(config, "ipv4.address", "");
	if (streq(new_addr, "auto") || !*new_addr)
		json_set_str(config, "ipv4.address", old_addr);
	else if (!streq(old_addr, new_addr)) {
		cleanup_json json_t *used = network_used_by(req->ctx, req->params[0]);

		if (json_array_size(used) > 0) {
			api_reply_error(req, 409,
					"Network '%s' is in use: ipv4.address can't change",
					req->params[0]);
			return;
		}
	}
	if (network_config_validate(req->ctx, req->params[0], config, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	net = json_deep_copy(cur);
	json_object_set(net, "config", config);
	if (json_is_string(json_object_get(body, "description")))
		json_object_set(net, "description", json_object_get(body, "description"));
	if (network_apply(req->ctx, net, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	commit(req, store_cmd_network_put(net));
}

void api_network_handle_put(struct api_request *req)
{
	network_update(req, false);
}

void api_network_handle_patch(struct api_request *req)
{
	network_update(req, true);
}

void api_network_handle_delete(struct api_request *req)
{
	const json_t *cur = find_network(req);
	cleanup_json json_t *used = NULL;
	struct kiva_error err = {0};

	if (!cur)
		return;
	used = network_used_by(req->ctx, req->params[0]);
	if (json_array_size(used) > 0) {
		api_reply_error(req, 409, "Network '%s' is in use by %zu instance(s)",
				req->params[0], json_array_size(used));
		return;
	}
	if (net_bridge_delete(req->params[0], req->ctx->link_tag, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	commit(req, store_cmd_network_delete(req->params[0]));
}

void api_network_handle_state(struct api_request *req)
{
	const json_t *net = find_network(req);
	struct net_prefix p;
	json_t *addrs;
	char a[16];

	if (!net)
		return;
	p = network_prefix(net);
	addrs = json_array();
	if (p.len) {
		char len[8];

		net_ipv4_format(p.addr, a);
		snprintf(len, sizeof(len), "%u", p.len);
		json_array_append_new(addrs,
				      json_pack("{s:s,s:s,s:s,s:s}", "family", "inet", "address", a,
						"netmask", len, "scope", "global"));
	}
	{
		static const char *const files[] = {"rx_bytes",	  "tx_bytes", "rx_packets",
						    "tx_packets", "mtu",      "address"};
		char vals[ARRAY_SIZE(files)][64];

		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			cleanup_free char *path = strf(i < 4 ? "/sys/class/net/%s/statistics/%s"
							     : "/sys/class/net/%s/%s",
						       req->params[0], files[i]);
			cleanup_free char *text = NULL;

			vals[i][0] = 0;
			if (path && read_file(path, 63, &text, NULL) == 0)
				snprintf(vals[i], sizeof(vals[i]), "%s", text);
			vals[i][strcspn(vals[i], "\n")] = 0;
		}
		api_reply_sync(
			req, json_pack("{s:o,s:{s:I,s:I,s:I,s:I},s:s,s:I,s:s,s:s,s:b}", "addresses",
				       addrs, "counters", "bytes_received",
				       (json_int_t)strtoull(vals[0], NULL, 10), "bytes_sent",
				       (json_int_t)strtoull(vals[1], NULL, 10), "packets_received",
				       (json_int_t)strtoull(vals[2], NULL, 10), "packets_sent",
				       (json_int_t)strtoull(vals[3], NULL, 10), "hwaddr", vals[5],
				       "mtu", (json_int_t)strtoull(vals[4], NULL, 10), "state",
				       net_link_exists(req->params[0]) ? "up" : "down", "type",
				       "broadcast", "managed", 1));
	}
}

/* ---- /1.0/network-acls ---- */

static int acl_rules_validate(const json_t *body, struct kiva_error *reterr)
{
	static const char *const dirs[] = {"ingress", "egress"};

	for (size_t d = 0; d < ARRAY_SIZE(dirs); d++) {
		const json_t *rules = json_object_get(body, dirs[d]);
		size_t i;
		json_t *rule;

		if (rules && !json_is_array(rules))
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid %s: expected an array of rules", dirs[d]);
		json_array_foreach(rules, i, rule) {
			struct net_acl_rule r = {0};
			struct kiva_error inner = {0};

			if (api_acl_rule_parse(rule, &r, &inner) < 0)
				return kiva_error_set(reterr, -EINVAL, "Invalid %s rule %zu: %s",
						      dirs[d], i + 1, inner.msg);
			net_acl_rule_done(&r);
		}
	}
	return 0;
}

static json_t *acl_render(struct api_ctx *ctx, const json_t *acl)
{
	json_t *out = json_deep_copy(acl);

	json_object_set_new(out, "used_by", acl_used_by(ctx, json_get_str(acl, "name", "")));
	return out;
}

void api_acls_handle_list(struct api_request *req)
{
	const json_t *acls = json_object_get(store_state(req->ctx->store), "acls");
	bool recursive = api_recursion(req) > 0;
	json_t *list = json_array();
	const char *key;
	json_t *val;

	json_object_foreach((json_t *)acls, key, val) {
		char url[128];

		snprintf(url, sizeof(url), "/1.0/network-acls/%s", key);
		json_array_append_new(list,
				      recursive ? acl_render(req->ctx, val) : json_string(url));
	}
	api_reply_sync(req, list);
}

static const json_t *find_acl(struct api_request *req)
{
	const json_t *acl = store_acl(req->ctx->store, req->params[0]);

	if (!acl)
		api_reply_error(req, 404, "Network ACL '%s' not found", req->params[0]);
	return acl;
}

void api_acl_handle_get(struct api_request *req)
{
	const json_t *acl = find_acl(req);

	if (!acl)
		return;
	record_etag(acl, req->etag);
	api_reply_sync(req, acl_render(req->ctx, acl));
}

static json_t *acl_from_body(struct api_request *req, const char *name, const json_t *body,
			     const json_t *base)
{
	struct kiva_error err = {0};
	json_t *acl;

	if (acl_rules_validate(body, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return NULL;
	}
	if (json_object_get(body, "config") && !json_is_object(json_object_get(body, "config"))) {
		api_reply_error(req, 400, "Invalid config: expected an object");
		return NULL;
	}
	acl = base ? json_deep_copy(base)
		   : json_pack("{s:s,s:s,s:[],s:[],s:{}}", "name", name, "description", "",
			       "ingress", "egress", "config");
	if (!acl) {
		api_reply_error(req, 500, "Out of memory");
		return NULL;
	}
	for (const char *const *k =
		     (const char *const[]){"description", "ingress", "egress", "config", NULL};
	     *k; k++) {
		json_t *v = json_object_get(body, *k);

		if (v && (!streq(*k, "description") || json_is_string(v)))
			json_object_set(acl, *k, v);
	}
	return acl;
}

void api_acls_handle_create(struct api_request *req)
{
	cleanup_json json_t *body = NULL, *acl = NULL;
	struct kiva_error err = {0};
	const char *name;

	if (api_parse_body(req, &body) < 0)
		return;
	name = json_get_str(body, "name", NULL);
	if (net_acl_name_validate(name, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	if (store_acl(req->ctx->store, name)) {
		api_reply_error(req, 409, "Network ACL '%s' already exists", name);
		return;
	}
	acl = acl_from_body(req, name, body, NULL);
	if (acl)
		commit(req, store_cmd_acl_put(acl));
}

static void acl_update(struct api_request *req, bool patch)
{
	const json_t *cur = find_acl(req);
	cleanup_json json_t *body = NULL, *acl = NULL;

	if (!cur || !etag_matches(req, cur) || api_parse_body(req, &body) < 0)
		return;
	if (!patch) {
		/* PUT replaces the rule lists: absent means empty */
		for (const char *const *k = (const char *const[]){"ingress", "egress", NULL}; *k;
		     k++)
			if (!json_object_get(body, *k))
				json_object_set_new(body, *k, json_array());
	}
	acl = acl_from_body(req, req->params[0], body, cur);
	if (acl)
		commit(req, store_cmd_acl_put(acl));
}

void api_acl_handle_put(struct api_request *req)
{
	acl_update(req, false);
}

void api_acl_handle_patch(struct api_request *req)
{
	acl_update(req, true);
}

void api_acl_handle_delete(struct api_request *req)
{
	cleanup_json json_t *used = NULL;

	if (!find_acl(req))
		return;
	used = acl_used_by(req->ctx, req->params[0]);
	if (json_array_size(used) > 0) {
		api_reply_error(req, 409, "Network ACL '%s' is in use by %s", req->params[0],
				json_string_value(json_array_get(used, 0)));
		return;
	}
	commit(req, store_cmd_acl_delete(req->params[0]));
}

/* ---- the watch: containers that stop by themselves ---- */

/* Called every few seconds from kivad's loop: a container that powered itself off took its veth
 * with it; its rules go from the tables (re-rendered, applied only if they changed) and its
 * upload ifb goes too. */
void api_net_watch(struct api_ctx *ctx)
{
	cleanup_strv char **tagged = NULL;
	struct kiva_error err = {0};

	if (!json_object_get(store_state(ctx->store), "networks"))
		return;
	if (api_net_sync(ctx, &err) < 0)
		log_warning("Failed to update the nftables rules: %s", err.msg);
	if (net_links_tagged(ctx->link_tag, &tagged) < 0)
		return;
	for (char **n = tagged; n && *n; n++) {
		char veth[20];

		if (!startswith(*n, "kvi"))
			continue;
		snprintf(veth, sizeof(veth), "kv%s", *n + 3);
		if (!net_link_exists(veth))
			(void)net_link_delete(*n);
	}
}

/* ---- start-up ---- */

struct first_start {
	struct api_ctx *ctx;
	void (*cb)(struct api_ctx *ctx, void *userdata);
	void *userdata;
};

static void default_committed(void *userdata, int status, const char *errmsg)
{
	struct first_start *f = userdata;

	if (status < 0)
		log_warning("Failed to record the default network: %s", errmsg);
	else
		log_info("Created the default network '%s'", f->ctx->default_network);
	f->cb(f->ctx, f->userdata);
	free(f);
}

void api_net_first_start(struct api_ctx *ctx, void (*cb)(struct api_ctx *ctx, void *userdata),
			 void *userdata)
{
	cleanup_json json_t *config = json_object(), *net = NULL, *cmd = NULL;
	struct kiva_error err = {0};
	struct first_start *f;

	/* a store that never had a networks section has never seen a network: first start. A user
	 * who deleted the default network does not get it back. */
	if (!ctx->default_network || json_object_get(store_state(ctx->store), "networks")) {
		cb(ctx, userdata);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !config ||
	    api_network_create(ctx, ctx->default_network, "KIVA's default network", config, &net,
			       &err) < 0) {
		log_warning("Failed to create the default network '%s': %s", ctx->default_network,
			    err.msg);
		free(f);
		cb(ctx, userdata);
		return;
	}
	f->ctx = ctx;
	f->cb = cb;
	f->userdata = userdata;
	cmd = store_cmd_network_put(net);
	if (!cmd || store_apply(ctx->store, cmd, default_committed, f) < 0) {
		free(f);
		cb(ctx, userdata);
	}
}

int api_net_reconcile(struct api_ctx *ctx, struct kiva_error *reterr)
{
	const json_t *state = store_state(ctx->store);
	cleanup_json json_t *keep = json_object();
	cleanup_strv char **tagged = NULL;
	const char *key;
	json_t *val;
	int r;

	json_object_foreach(json_object_get(state, "networks"), key, val) {
		struct kiva_error err = {0};

		if (network_apply(ctx, val, &err) < 0)
			log_warning("Network '%s': %s", key, err.msg);
		json_object_set_new(keep, key, json_true());
	}
	/* NICs of running instances: keep their veths and ifbs, re-apply their QoS */
	json_object_foreach(json_object_get(state, "instances"), key, val) {
		enum runtime_state st = runtime_state(ctx->lxcpath, key);
		cleanup_json json_t *nics = NULL;
		size_t i;
		json_t *nic;

		if (st != RUNTIME_RUNNING && st != RUNTIME_FROZEN)
			continue;
		nics = api_instance_nics(ctx, val);
		json_array_foreach(nics, i, nic) {
			const char *host = json_get_str(nic, "host_name", "");
			char ifb[16];

			json_object_set_new(keep, host, json_true());
			snprintf(ifb, sizeof(ifb), "kvi%s", host + 2);
			json_object_set_new(keep, ifb, json_true());
		}
		{
			struct kiva_error err = {0};

			if (api_nics_started(ctx, val, &err) < 0)
				log_warning("Instance '%s': %s", key, err.msg);
		}
	}
	if (net_links_tagged(ctx->link_tag, &tagged) == 0) {
		for (char **n = tagged; n && *n; n++) {
			if (json_object_get(keep, *n))
				continue;
			log_info("Reconcile: removing leftover interface '%s'", *n);
			(void)net_link_delete(*n);
		}
	}
	r = api_net_sync(ctx, reterr);
	return r;
}
