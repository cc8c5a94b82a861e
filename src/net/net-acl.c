/* Network ACLs in LXD's shape, pure (no I/O): validation of one rule given as text fields, and
 * the rendering of KIVA's whole nftables ruleset (NAT + ACLs) from a model of what kivad knows.
 *
 * Rule semantics follow LXD's network ACL documentation: action allow | reject | drop; source and
 * destination are comma lists of CIDRs, addresses, ranges (A-B), names (an instance, or an ACL:
 * the NICs it is assigned to) or @key=value (instances whose user.key is value); protocol tcp |
 * udp | icmp4 | icmp6; ports only with tcp/udp; icmp_type/icmp_code only with icmp; state
 * enabled | disabled | logged. LXD evaluates drop rules first, then reject, then allow, then the
 * default action; rules cannot be ordered otherwise. We do the same.
 *
 * The ruleset (the text starts by deleting our two tables, so one batch replaces them):
 *
 *   table inet <t>
 *     postrouting (nat, srcnat): masquerade each NAT network's subnet towards other destinations.
 *     forward (filter): accept what enters or leaves a managed bridge (explicit intent; a drop
 *       elsewhere still wins, nftables has no cross-table accept).
 *     prerouting/forward/output → chain ct_mark, for bridges with ACL'd NICs: copies the
 *       conntrack state into two packet-mark bits (established/related, invalid).
 *   table bridge <t>
 *     forward/input/output (filter): ARP accepted first; then, per running NIC that has ACLs,
 *       `iifname "<veth>" jump from_<veth>` (egress, in forward and input) and
 *       `oifname "<veth>" jump to_<veth>` (ingress, in forward and output).
 *     to_<veth>/from_<veth>: established → return, invalid → drop, the ACL rules, then drop.
 *
 * Why the marks: this kernel has neither CONFIG_NF_CONNTRACK_BRIDGE (`ct` expressions do not
 * load in the bridge family: "Protocol error") nor CONFIG_NFT_BRIDGE_REJECT (`reject` does not
 * load: "No such file or directory"). Bridged IPv4 is still tracked through br_netfilter
 * (net.bridge.bridge-nf-call-iptables=1, the default) in the inet prerouting hook, which runs
 * before the bridge forward/input hooks, and the skb mark is shared across families. Without
 * br_netfilter nothing gets marked and ACL'd NICs fail closed (replies are dropped), never open.
 * Why `return` for allow: a frame between two ACL'd NICs must pass the sender's egress chain and
 * the receiver's ingress chain, so an allow continues with the next jump instead of accepting;
 * the base chains end with policy accept. `reject` is rendered as `drop` (see above); LXD's
 * default action (reject) is also a drop here.
 *
 * Injection safety: only validated identifiers ([A-Za-z0-9_.-] interface names, ACL names,
 * the table name), numbers, addresses formatted from integers and fixed keywords reach the text.
 * Determinism: networks, NICs and ACLs are sorted by name, address and port lists are sorted and
 * merged, so the same model gives the same text whatever the order of its arrays. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "net.h"

#define MARK_ESTABLISHED "0x01000000"
#define MARK_INVALID "0x02000000"
#define MARK_CLEAR "0xfcffffff"

/* ---------------- small helpers ---------------- */

static const char *nz(const char *s)
{
	return s ? s : "";
}

static bool is_in(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (streq(s, *set))
			return true;
	return false;
}

static bool chars_ok(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

/* Interface names that may appear in the script (bridges, veths): IFNAMSIZ and a safe set. */
static bool ifname_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= 15 && chars_ok(s, "_.-") && s[0] != '.' && s[0] != '-';
}

static bool table_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n >= 1 && n <= 32 && chars_ok(s, "_") && !(s[0] >= '0' && s[0] <= '9');
}

/* Strict decimal in [min, max]: digits only, at most 10 of them. */
static int parse_uint_strict(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	uint64_t v = 0;
	size_t n = 0;

	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	if (n == 0 || v < min || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* Splits a comma list into trimmed items; calls fn on each (including empty ones, which are
 * errors for every list we parse). */
typedef int (*item_fn)(const char *item, void *userdata);

static int list_foreach(const char *list, item_fn fn, void *userdata)
{
	const char *p = list;

	for (;;) {
		const char *end = strchr(p, ','), *a = p, *b;
		char *item;
		int r;

		if (!end)
			end = p + strlen(p);
		b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		item = strndup(a, (size_t)(b - a));
		if (!item)
			return -ENOMEM;
		r = fn(item, userdata);
		free(item);
		if (r < 0)
			return r;
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

/* ---------------- ranges (addresses and ports) ---------------- */

struct rangevec {
	struct net_range *v;
	size_t n, cap;
};

static void rangevec_done(struct rangevec *rv)
{
	free(rv->v);
	*rv = (struct rangevec){0};
}

static int rangevec_add(struct rangevec *rv, uint32_t first, uint32_t last)
{
	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 8;
		struct net_range *v = reallocarray(rv->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		rv->v = v;
		rv->cap = cap;
	}
	rv->v[rv->n++] = (struct net_range){first, last};
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct net_range *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->last < y->last ? -1 : x->last > y->last;
}

/* Sorts and merges overlapping or adjacent ranges (nft refuses overlapping set elements). */
static void rangevec_normalize(struct rangevec *rv)
{
	size_t out = 0;

	if (rv->n == 0)
		return;
	qsort(rv->v, rv->n, sizeof(*rv->v), cmp_range);
	for (size_t i = 1; i < rv->n; i++) {
		if ((uint64_t)rv->v[i].first <= (uint64_t)rv->v[out].last + 1) {
			if (rv->v[i].last > rv->v[out].last)
				rv->v[out].last = rv->v[i].last;
		} else {
			rv->v[++out] = rv->v[i];
		}
	}
	rv->n = out + 1;
}

/* ---------------- source/destination entries ---------------- */

enum entry_kind { ENTRY_RANGE, ENTRY_NAME, ENTRY_SELECTOR };

struct entry {
	enum entry_kind kind;
	uint32_t first, last; /* ENTRY_RANGE (CIDRs and addresses too) */
	char name[64]; /* ENTRY_NAME; ENTRY_SELECTOR: the key */
	char value[256]; /* ENTRY_SELECTOR */
};

/* 0, or -EINVAL with *why set to a reason when the form is right but the value is not. */
static int entry_parse(const char *item, struct entry *ret, const char **why)
{
	*why = NULL;
	if (item[0] == '@') {
		const char *eq = strchr(item, '=');
		size_t klen = eq ? (size_t)(eq - item - 1) : 0;

		if (!eq || klen == 0 || klen >= sizeof(ret->name) || eq[1] == '\0' ||
		    strlen(eq + 1) >= sizeof(ret->value))
			return -EINVAL;
		ret->kind = ENTRY_SELECTOR;
		memcpy(ret->name, item + 1, klen);
		ret->name[klen] = '\0';
		strcpy(ret->value, eq + 1);
		if (!chars_ok(ret->name, "_.-"))
			return -EINVAL;
		for (const char *p = ret->value; *p; p++)
			if (*p <= ' ' || *p == 0x7f)
				return -EINVAL;
		/* "@user.app=web" and "@app=web" are the same selector */
		if (startswith(ret->name, "user."))
			memmove(ret->name, ret->name + 5, strlen(ret->name + 5) + 1);
		return ret->name[0] ? 0 : -EINVAL;
	}
	if (item[0] >= '0' && item[0] <= '9' && strspn(item, "0123456789./-") == strlen(item)) {
		char buf[40];
		const char *dash = strchr(item, '-');
		struct net_prefix p;

		ret->kind = ENTRY_RANGE;
		if (strchr(item, '/')) {
			if (net_prefix_parse(item, &p) < 0)
				return -EINVAL;
			ret->first = net_prefix_network(&p);
			ret->last = net_prefix_broadcast(&p);
			return 0;
		}
		if (dash) {
			size_t n = (size_t)(dash - item);

			if (n >= sizeof(buf))
				return -EINVAL;
			memcpy(buf, item, n);
			buf[n] = '\0';
			if (net_ipv4_parse(buf, &ret->first) < 0 ||
			    net_ipv4_parse(dash + 1, &ret->last) < 0)
				return -EINVAL;
			if (ret->first > ret->last) {
				*why = "the first address is after the last";
				return -EINVAL;
			}
			return 0;
		}
		if (net_ipv4_parse(item, &ret->first) < 0)
			return -EINVAL;
		ret->last = ret->first;
		return 0;
	}
	if (net_acl_name_validate(item, NULL) < 0)
		return -EINVAL;
	ret->kind = ENTRY_NAME;
	strcpy(ret->name, item);
	return 0;
}

struct list_check {
	const char *field;
	struct kiva_error *reterr;
};

static int check_entry(const char *item, void *userdata)
{
	struct list_check *c = userdata;
	struct entry e;
	const char *why;

	if (entry_parse(item, &e, &why) < 0) {
		if (why)
			return kiva_error_set(c->reterr, -EINVAL, "Invalid %s entry '%s': %s",
					      c->field, item, why);
		return kiva_error_set(
			c->reterr, -EINVAL,
			"Invalid %s entry '%s': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value",
			c->field, item);
	}
	return 0;
}

static int port_parse(const char *item, uint32_t *first, uint32_t *last)
{
	const char *dash = strchr(item, '-');
	char buf[16];

	if (!dash)
		return parse_uint_strict(item, 1, 65535, first) < 0 ? -EINVAL : (*last = *first, 0);
	if ((size_t)(dash - item) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, item, (size_t)(dash - item));
	buf[dash - item] = '\0';
	if (parse_uint_strict(buf, 1, 65535, first) < 0 ||
	    parse_uint_strict(dash + 1, 1, 65535, last) < 0 || *first > *last)
		return -EINVAL;
	return 0;
}

static int check_port(const char *item, void *userdata)
{
	struct list_check *c = userdata;
	uint32_t a, b;

	if (port_parse(item, &a, &b) < 0)
		return kiva_error_set(
			c->reterr, -EINVAL,
			"Invalid %s entry '%s': expected a port 1-65535 or a range such as 8000-8080",
			c->field, item);
	return 0;
}

/* ---------------- rules ---------------- */

static const char *const actions[] = {"allow", "reject", "drop", NULL};
static const char *const states[] = {"enabled", "disabled", "logged", NULL};
static const char *const protocols[] = {"tcp", "udp", "icmp4", "icmp6", NULL};

/* Validates a rule (fields may be NULL: absent). Used on input and again before rendering. */
static int rule_check(const struct net_acl_rule *r, struct kiva_error *reterr)
{
	const char *proto = nz(r->protocol);
	bool l4 = streq(proto, "tcp") || streq(proto, "udp");
	bool icmp = streq(proto, "icmp4") || streq(proto, "icmp6");
	const struct {
		const char *name, *value;
	} lists[] = {{"source", nz(r->source)}, {"destination", nz(r->destination)}},
	  ports[] = {{"source_port", nz(r->source_port)},
		     {"destination_port", nz(r->destination_port)}},
	  icmps[] = {{"icmp_type", nz(r->icmp_type)}, {"icmp_code", nz(r->icmp_code)}};
	int rc;

	if (nz(r->action)[0] == '\0')
		return kiva_error_set(reterr, -EINVAL,
				      "Missing ACL rule action: expected allow, reject or drop");
	if (!is_in(r->action, actions))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid action '%s': expected allow, reject or drop",
				      r->action);
	if (nz(r->state)[0] && !is_in(r->state, states))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid state '%s': expected enabled, disabled or logged",
				      r->state);
	if (proto[0] && !is_in(proto, protocols))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid protocol '%s': expected tcp, udp, icmp4 or icmp6",
				      proto);

	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		struct list_check c = {lists[i].name, reterr};

		if (!lists[i].value[0])
			continue;
		rc = list_foreach(lists[i].value, check_entry, &c);
		if (rc == -ENOMEM)
			return kiva_error_set(reterr, rc, "Out of memory");
		if (rc < 0)
			return rc;
		if (streq(proto, "icmp6"))
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid %s for protocol icmp6: KIVA networks are IPv4 only",
				lists[i].name);
	}
	for (size_t i = 0; i < ARRAY_SIZE(ports); i++) {
		struct list_check c = {ports[i].name, reterr};

		if (!ports[i].value[0])
			continue;
		if (!l4)
			return kiva_error_set(reterr, -EINVAL,
					      "Field '%s' requires protocol tcp or udp",
					      ports[i].name);
		rc = list_foreach(ports[i].value, check_port, &c);
		if (rc == -ENOMEM)
			return kiva_error_set(reterr, rc, "Out of memory");
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < ARRAY_SIZE(icmps); i++) {
		uint32_t v;

		if (!icmps[i].value[0])
			continue;
		if (!icmp)
			return kiva_error_set(reterr, -EINVAL,
					      "Field '%s' requires protocol icmp4 or icmp6",
					      icmps[i].name);
		if (parse_uint_strict(icmps[i].value, 0, 255, &v) < 0)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid %s '%s': expected a number 0-255",
					      icmps[i].name, icmps[i].value);
	}
	return 0;
}

static const char *const rule_keys[] = {
	"action",	    "source",	 "destination", "protocol", "source_port",
	"destination_port", "icmp_type", "icmp_code",	"state",    "description",
};

static char **rule_slot(struct net_acl_rule *r, size_t key)
{
	char **slots[] = {&r->action,	   &r->source,		 &r->destination, &r->protocol,
			  &r->source_port, &r->destination_port, &r->icmp_type,	  &r->icmp_code,
			  &r->state,	   &r->description};

	return slots[key];
}

void net_acl_rule_done(struct net_acl_rule *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(rule_keys); i++)
		free(*rule_slot(r, i));
	*r = (struct net_acl_rule){0};
}

int net_acl_rule_from_fields(const struct net_acl_field *fields, size_t n, struct net_acl_rule *ret,
			     struct kiva_error *reterr)
{
	struct net_acl_rule r = {0};
	bool seen[ARRAY_SIZE(rule_keys)] = {0};
	int rc = 0;

	for (size_t i = 0; i < n && rc >= 0; i++) {
		size_t k = 0;

		while (k < ARRAY_SIZE(rule_keys) && !streq(nz(fields[i].key), rule_keys[k]))
			k++;
		if (k == ARRAY_SIZE(rule_keys))
			rc = kiva_error_set(reterr, -EINVAL, "Unknown ACL rule key '%s'",
					    nz(fields[i].key));
		else if (seen[k])
			rc = kiva_error_set(reterr, -EINVAL, "Duplicate ACL rule key '%s'",
					    fields[i].key);
		else if (fields[i].value) {
			seen[k] = true;
			*rule_slot(&r, k) = strdup(fields[i].value);
			if (!*rule_slot(&r, k))
				rc = kiva_error_set(reterr, -ENOMEM, "Out of memory");
		} else
			seen[k] = true;
	}
	for (size_t k = 0; k < ARRAY_SIZE(rule_keys) && rc >= 0; k++) {
		char **slot = rule_slot(&r, k);

		if (*slot && (*slot)[0])
			continue;
		free(*slot);
		*slot = strdup(streq(rule_keys[k], "state") ? "enabled" : "");
		if (!*slot)
			rc = kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	if (rc >= 0)
		rc = rule_check(&r, reterr);
	if (rc < 0) {
		net_acl_rule_done(&r);
		return rc;
	}
	*ret = r;
	return 0;
}

int net_acl_name_validate(const char *name, struct kiva_error *reterr)
{
	size_t n = name ? strlen(name) : 0;

	if (n < 1 || n > 63 || !chars_ok(name, "_-"))
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid ACL name '%s': expected 1-63 characters of a-z, A-Z, 0-9, '_' and '-'",
			nz(name));
	return 0;
}

/* ---------------- output buffer ---------------- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

static void sbuf_ranges(struct sbuf *b, const struct rangevec *rv, bool ipv4)
{
	if (rv->n > 1)
		sbuf_printf(b, "{ ");
	for (size_t i = 0; i < rv->n; i++) {
		uint32_t f = rv->v[i].first, l = rv->v[i].last;
		uint64_t size = (uint64_t)l - f + 1;
		char a[16], z[16];

		if (i > 0)
			sbuf_printf(b, ", ");
		if (!ipv4) {
			if (f == l)
				sbuf_printf(b, "%u", f);
			else
				sbuf_printf(b, "%u-%u", f, l);
			continue;
		}
		net_ipv4_format(f, a);
		net_ipv4_format(l, z);
		if (f == l) {
			sbuf_printf(b, "%s", a);
		} else if ((size & (size - 1)) == 0 && (f & (size - 1)) == 0) {
			unsigned len = 32;

			while (size > 1) {
				size >>= 1;
				len--;
			}
			sbuf_printf(b, "%s/%u", a, len);
		} else {
			sbuf_printf(b, "%s-%s", a, z);
		}
	}
	if (rv->n > 1)
		sbuf_printf(b, " }");
}

/* ---------------- the model, indexed ---------------- */

struct nic_info {
	const struct net_model_nic *nic;
	const struct net_model_network *net; /* NULL: not in the model */
	const struct net_model_acl **acls; /* effective ACLs (network's + NIC's), sorted, unique */
	size_t nacls;
};

struct render {
	const struct net_model *m;
	const char *table;
	const struct net_model_network **nets; /* sorted by name */
	const struct net_model_acl **acls; /* sorted by name */
	struct nic_info *nics; /* running NICs; guarded ones first, by host_ifname */
	size_t nnics, nguarded;
	struct kiva_error *reterr;
};

static int cmp_net(const void *a, const void *b)
{
	return strcmp((*(const struct net_model_network *const *)a)->name,
		      (*(const struct net_model_network *const *)b)->name);
}

static int cmp_acl(const void *a, const void *b)
{
	return strcmp((*(const struct net_model_acl *const *)a)->name,
		      (*(const struct net_model_acl *const *)b)->name);
}

static int cmp_nic(const void *a, const void *b)
{
	const struct nic_info *x = a, *y = b;
	int r;

	if ((x->nacls > 0) != (y->nacls > 0))
		return x->nacls > 0 ? -1 : 1;
	r = strcmp(nz(x->nic->host_ifname), nz(y->nic->host_ifname));
	if (r == 0)
		r = strcmp(nz(x->nic->instance), nz(y->nic->instance));
	if (r == 0)
		r = strcmp(nz(x->nic->nic), nz(y->nic->nic));
	return r;
}

static const struct net_model_acl *find_acl(const struct render *c, const char *name)
{
	for (size_t i = 0; i < c->m->nacls; i++)
		if (streq(c->acls[i]->name, name))
			return c->acls[i];
	return NULL;
}

static const struct net_model_network *find_net(const struct render *c, const char *name)
{
	for (size_t i = 0; i < c->m->nnetworks; i++)
		if (streq(c->nets[i]->name, name))
			return c->nets[i];
	return NULL;
}

/* Adds the ACLs named in list (NULL-terminated) to ni->acls, keeping them unique. */
static int nic_add_acls(struct render *c, struct nic_info *ni, const char *const *list,
			const char *owner_kind, const char *owner)
{
	for (; list && *list; list++) {
		const struct net_model_acl *a = find_acl(c, *list);
		bool dup = false;

		if (!a)
			return kiva_error_set(c->reterr, -ENOENT,
					      "Network ACL '%s' not found (used by %s '%s')", *list,
					      owner_kind, owner);
		for (size_t k = 0; k < ni->nacls; k++)
			dup = dup || ni->acls[k] == a;
		if (dup)
			continue;
		/* at most nacls distinct ACLs: the array was sized for them */
		ni->acls[ni->nacls++] = a;
	}
	return 0;
}

static int render_index(struct render *c)
{
	const struct net_model *m = c->m;

	c->nets = calloc(m->nnetworks + 1, sizeof(*c->nets));
	c->acls = calloc(m->nacls + 1, sizeof(*c->acls));
	c->nics = calloc(m->nnics + 1, sizeof(*c->nics));
	if (!c->nets || !c->acls || !c->nics)
		return kiva_error_set(c->reterr, -ENOMEM, "Out of memory");

	for (size_t i = 0; i < m->nnetworks; i++) {
		const struct net_model_network *n = &m->networks[i];

		if (!ifname_ok(n->name))
			return kiva_error_set(
				c->reterr, -EINVAL,
				"Invalid network name '%s': expected 1-15 characters of a-z, A-Z, 0-9, '_', '.' and '-'",
				nz(n->name));
		if (n->ipv4.len > 32)
			return kiva_error_set(c->reterr, -EINVAL,
					      "Invalid IPv4 prefix length on '%s'", n->name);
		c->nets[i] = n;
	}
	qsort(c->nets, m->nnetworks, sizeof(*c->nets), cmp_net);
	for (size_t i = 1; i < m->nnetworks; i++)
		if (streq(c->nets[i - 1]->name, c->nets[i]->name))
			return kiva_error_set(c->reterr, -EINVAL, "Duplicate network '%s'",
					      c->nets[i]->name);

	for (size_t i = 0; i < m->nacls; i++) {
		const struct net_model_acl *a = &m->acls[i];
		int r = net_acl_name_validate(a->name, c->reterr);

		if (r < 0)
			return r;
		for (size_t k = 0; k < a->ningress + a->negress; k++) {
			struct kiva_error e = {0};

			r = rule_check(
				k < a->ningress ? &a->ingress[k] : &a->egress[k - a->ningress], &e);
			if (r < 0)
				return kiva_error_set(c->reterr, r, "ACL '%s': %s", a->name, e.msg);
		}
		c->acls[i] = a;
	}
	qsort(c->acls, m->nacls, sizeof(*c->acls), cmp_acl);
	for (size_t i = 1; i < m->nacls; i++)
		if (streq(c->acls[i - 1]->name, c->acls[i]->name))
			return kiva_error_set(c->reterr, -EINVAL, "Duplicate network ACL '%s'",
					      c->acls[i]->name);

	for (size_t i = 0; i < m->nnetworks; i++) {
		for (const char *const *l = c->nets[i]->acls; l && *l; l++)
			if (!find_acl(c, *l))
				return kiva_error_set(
					c->reterr, -ENOENT,
					"Network ACL '%s' not found (used by network '%s')", *l,
					c->nets[i]->name);
	}

	for (size_t i = 0; i < m->nnics; i++) {
		const struct net_model_nic *n = &m->nics[i];
		struct nic_info *ni = &c->nics[c->nnics];
		cleanup_free char *owner = strf("%s/%s", nz(n->instance), nz(n->nic));
		int r;

		if (!owner)
			return kiva_error_set(c->reterr, -ENOMEM, "Out of memory");
		for (const char *const *l = n->acls; l && *l; l++)
			if (!find_acl(c, *l))
				return kiva_error_set(
					c->reterr, -ENOENT,
					"Network ACL '%s' not found (used by NIC '%s')", *l, owner);
		if (!n->running)
			continue;
		ni->nic = n;
		ni->net = find_net(c, nz(n->network));
		ni->acls = calloc(m->nacls + 1, sizeof(*ni->acls));
		if (!ni->acls)
			return kiva_error_set(c->reterr, -ENOMEM, "Out of memory");
		c->nnics++;
		if (ni->net) {
			r = nic_add_acls(c, ni, ni->net->acls, "network", ni->net->name);
			if (r < 0)
				return r;
		}
		r = nic_add_acls(c, ni, n->acls, "NIC", owner);
		if (r < 0)
			return r;
		if (ni->nacls == 0)
			continue;
		if (!ni->net)
			return kiva_error_set(c->reterr, -ENOENT,
					      "Network '%s' of NIC '%s' not found", nz(n->network),
					      owner);
		if (!ifname_ok(n->host_ifname))
			return kiva_error_set(c->reterr, -EINVAL,
					      "Invalid host interface name '%s' of NIC '%s'",
					      nz(n->host_ifname), owner);
		qsort(ni->acls, ni->nacls, sizeof(*ni->acls), cmp_acl);
		c->nguarded++;
	}
	qsort(c->nics, c->nnics, sizeof(*c->nics), cmp_nic);
	for (size_t i = 1; i < c->nguarded; i++)
		if (streq(c->nics[i - 1].nic->host_ifname, c->nics[i].nic->host_ifname))
			return kiva_error_set(c->reterr, -EINVAL,
					      "Duplicate host interface name '%s'",
					      c->nics[i].nic->host_ifname);
	return 0;
}

static void render_free(struct render *c)
{
	for (size_t i = 0; c->nics && i < c->nnics; i++)
		free(c->nics[i].acls);
	free(c->nics);
	free(c->nets);
	free(c->acls);
}

/* Does a running NIC match a name (instance name, or an ACL it carries) or a selector? */
static bool nic_matches(const struct nic_info *ni, const struct entry *e)
{
	const struct net_model_nic *n = ni->nic;

	if (e->kind == ENTRY_NAME) {
		if (streq(nz(n->instance), e->name))
			return true;
		for (size_t k = 0; k < ni->nacls; k++)
			if (streq(ni->acls[k]->name, e->name))
				return true;
		return false;
	}
	if (!n->user_keys || !n->user_values)
		return false;
	for (size_t k = 0; k < n->nuser; k++) {
		const char *key = nz(n->user_keys[k]);

		if (startswith(key, "user."))
			key += 5;
		if (streq(key, e->name) && streq(nz(n->user_values[k]), e->value))
			return true;
	}
	return false;
}

struct resolve {
	const struct render *c;
	struct rangevec *rv;
};

static int resolve_entry(const char *item, void *userdata)
{
	struct resolve *rs = userdata;
	struct entry e;
	const char *why;

	if (entry_parse(item, &e, &why) < 0)
		return -EINVAL; /* rule_check ran before: cannot happen */
	if (e.kind == ENTRY_RANGE)
		return rangevec_add(rs->rv, e.first, e.last);
	for (size_t i = 0; i < rs->c->nnics; i++) {
		const struct nic_info *ni = &rs->c->nics[i];

		if (ni->nic->ipv4 && nic_matches(ni, &e) &&
		    rangevec_add(rs->rv, ni->nic->ipv4, ni->nic->ipv4) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int port_entry(const char *item, void *userdata)
{
	uint32_t a, b;

	if (port_parse(item, &a, &b) < 0)
		return -EINVAL;
	return rangevec_add(userdata, a, b);
}

/* Renders one rule into b, or nothing when it is disabled or a list resolves to no address. */
static int render_rule(struct render *c, struct sbuf *b, const char *acl,
		       const struct net_acl_rule *r)
{
	struct rangevec src = {0}, dst = {0}, sport = {0}, dport = {0};
	const char *proto = nz(r->protocol);
	bool v6 = streq(proto, "icmp6");
	int rc = 0;

	if (streq(nz(r->state), "disabled"))
		return 0;
	if (nz(r->source)[0])
		rc = list_foreach(r->source, resolve_entry, &(struct resolve){c, &src});
	if (rc >= 0 && nz(r->destination)[0])
		rc = list_foreach(r->destination, resolve_entry, &(struct resolve){c, &dst});
	if (rc >= 0 && nz(r->source_port)[0])
		rc = list_foreach(r->source_port, port_entry, &sport);
	if (rc >= 0 && nz(r->destination_port)[0])
		rc = list_foreach(r->destination_port, port_entry, &dport);
	if (rc < 0)
		goto out;
	/* a source or destination that names nobody running matches nothing */
	if ((nz(r->source)[0] && src.n == 0) || (nz(r->destination)[0] && dst.n == 0))
		goto out;
	rangevec_normalize(&src);
	rangevec_normalize(&dst);
	rangevec_normalize(&sport);
	rangevec_normalize(&dport);

	sbuf_printf(b, "\t\t");
	if (src.n) {
		sbuf_printf(b, "ip saddr ");
		sbuf_ranges(b, &src, true);
		sbuf_printf(b, " ");
	}
	if (dst.n) {
		sbuf_printf(b, "ip daddr ");
		sbuf_ranges(b, &dst, true);
		sbuf_printf(b, " ");
	}
	if (proto[0])
		sbuf_printf(b, "meta l4proto %s ",
			    streq(proto, "icmp4") ? "icmp"
			    : v6		  ? "ipv6-icmp"
						  : proto);
	if (sport.n) {
		sbuf_printf(b, "%s sport ", proto);
		sbuf_ranges(b, &sport, false);
		sbuf_printf(b, " ");
	}
	if (dport.n) {
		sbuf_printf(b, "%s dport ", proto);
		sbuf_ranges(b, &dport, false);
		sbuf_printf(b, " ");
	}
	if (nz(r->icmp_type)[0])
		sbuf_printf(b, "%s type %u ", v6 ? "icmpv6" : "icmp", (unsigned)atoi(r->icmp_type));
	if (nz(r->icmp_code)[0])
		sbuf_printf(b, "%s code %u ", v6 ? "icmpv6" : "icmp", (unsigned)atoi(r->icmp_code));
	if (streq(nz(r->state), "logged"))
		sbuf_printf(b, "log prefix \"kiva-acl %s: \" ", acl);
	sbuf_printf(b, "%s\n", streq(r->action, "allow") ? "return" : "drop");
out:
	rangevec_done(&src);
	rangevec_done(&dst);
	rangevec_done(&sport);
	rangevec_done(&dport);
	return rc < 0 ? kiva_error_set(c->reterr, rc, "Out of memory") : 0;
}

/* One per-NIC chain: ingress rules (to_) or egress rules (from_) of its ACLs. */
static int render_nic_chain(struct render *c, struct sbuf *b, const struct nic_info *ni,
			    bool ingress)
{
	static const char *const order[] = {"drop", "reject", "allow"};

	sbuf_printf(b, "\tchain %s_%s {\n", ingress ? "to" : "from", ni->nic->host_ifname);
	sbuf_printf(b, "\t\tmeta mark & " MARK_ESTABLISHED " == " MARK_ESTABLISHED " return\n");
	sbuf_printf(b, "\t\tmeta mark & " MARK_INVALID " == " MARK_INVALID " drop\n");
	for (size_t o = 0; o < ARRAY_SIZE(order); o++)
		for (size_t k = 0; k < ni->nacls; k++) {
			const struct net_model_acl *a = ni->acls[k];
			const struct net_acl_rule *rules = ingress ? a->ingress : a->egress;
			size_t n = ingress ? a->ningress : a->negress;

			for (size_t i = 0; i < n; i++) {
				int r;

				if (!streq(rules[i].action, order[o]))
					continue;
				r = render_rule(c, b, a->name, &rules[i]);
				if (r < 0)
					return r;
			}
		}
	sbuf_printf(b, "\t\tdrop\n\t}\n");
	return 0;
}

/* Is network n the network of a guarded NIC? */
static bool net_guarded(const struct render *c, const struct net_model_network *n)
{
	for (size_t i = 0; i < c->nguarded; i++)
		if (c->nics[i].net == n)
			return true;
	return false;
}

static int render_inet(struct render *c, struct sbuf *b)
{
	const struct net_model *m = c->m;
	bool any_guarded = c->nguarded > 0;

	sbuf_printf(b, "table inet %s {\n", c->table);
	sbuf_printf(b, "\tchain postrouting {\n"
		       "\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
	for (size_t i = 0; i < m->nnetworks; i++) {
		const struct net_model_network *n = c->nets[i];
		char a[16];

		if (!n->nat || n->ipv4.len == 0)
			continue;
		net_ipv4_format(net_prefix_network(&n->ipv4), a);
		sbuf_printf(b, "\t\tip saddr %s/%u ip daddr != %s/%u masquerade\n", a, n->ipv4.len,
			    a, n->ipv4.len);
	}
	sbuf_printf(b, "\t}\n");

	/* Traffic between two instances of a network nobody guards needs no connection
	 * tracking: with bridge-nf-call-iptables it would otherwise cost every bridged packet a
	 * conntrack lookup. Not for the gateway (the host's own firewall may want the state). */
	{
		bool any = false;

		for (size_t i = 0; i < m->nnetworks; i++) {
			const struct net_model_network *n = c->nets[i];
			char a[16], gw[16];

			if (n->ipv4.len == 0 || net_guarded(c, n))
				continue;
			if (!any)
				sbuf_printf(b, "\tchain untracked {\n"
					       "\t\ttype filter hook prerouting priority raw; "
					       "policy accept;\n");
			any = true;
			net_ipv4_format(net_prefix_network(&n->ipv4), a);
			net_ipv4_format(n->ipv4.addr, gw);
			sbuf_printf(
				b,
				"\t\tiifname \"%s\" ip saddr %s/%u ip daddr %s/%u ip daddr != %s "
				"notrack\n",
				n->name, a, n->ipv4.len, a, n->ipv4.len, gw);
		}
		if (any)
			sbuf_printf(b, "\t}\n");
	}

	if (any_guarded) {
		sbuf_printf(b, "\tchain prerouting {\n"
			       "\t\ttype filter hook prerouting priority filter; policy accept;\n");
		for (size_t i = 0; i < m->nnetworks; i++)
			if (net_guarded(c, c->nets[i]))
				sbuf_printf(b, "\t\tiifname \"%s\" jump ct_mark\n",
					    c->nets[i]->name);
		sbuf_printf(b, "\t}\n");
	}

	sbuf_printf(b, "\tchain forward {\n"
		       "\t\ttype filter hook forward priority filter; policy accept;\n");
	for (size_t i = 0; i < m->nnetworks; i++)
		if (net_guarded(c, c->nets[i]))
			sbuf_printf(b, "\t\toifname \"%s\" jump ct_mark\n", c->nets[i]->name);
	for (size_t i = 0; i < m->nnetworks; i++)
		sbuf_printf(b, "\t\tiifname \"%s\" accept\n\t\toifname \"%s\" accept\n",
			    c->nets[i]->name, c->nets[i]->name);
	sbuf_printf(b, "\t}\n");

	if (any_guarded) {
		sbuf_printf(b, "\tchain output {\n"
			       "\t\ttype filter hook output priority filter; policy accept;\n");
		for (size_t i = 0; i < m->nnetworks; i++)
			if (net_guarded(c, c->nets[i]))
				sbuf_printf(b, "\t\toifname \"%s\" jump ct_mark\n",
					    c->nets[i]->name);
		sbuf_printf(b, "\t}\n");
		sbuf_printf(
			b,
			"\tchain ct_mark {\n"
			"\t\tmeta mark set meta mark & " MARK_CLEAR "\n"
			"\t\tct state established,related meta mark set meta mark | " MARK_ESTABLISHED
			"\n"
			"\t\tct state invalid meta mark set meta mark | " MARK_INVALID "\n"
			"\t}\n");
	}
	sbuf_printf(b, "}\n");
	return 0;
}

static int render_bridge(struct render *c, struct sbuf *b)
{
	static const struct {
		const char *hook;
		bool from, to;
	} base[] = {{"forward", true, true}, {"input", true, false}, {"output", false, true}};
	int r;

	sbuf_printf(b, "table bridge %s {\n", c->table);
	for (size_t h = 0; h < ARRAY_SIZE(base); h++) {
		sbuf_printf(b,
			    "\tchain %s {\n"
			    "\t\ttype filter hook %s priority filter; policy accept;\n"
			    "\t\tether type arp accept\n",
			    base[h].hook, base[h].hook);
		for (size_t i = 0; i < c->nguarded; i++) {
			const char *v = c->nics[i].nic->host_ifname;

			if (base[h].from)
				sbuf_printf(b, "\t\tiifname \"%s\" jump from_%s\n", v, v);
			if (base[h].to)
				sbuf_printf(b, "\t\toifname \"%s\" jump to_%s\n", v, v);
		}
		sbuf_printf(b, "\t}\n");
	}
	for (size_t i = 0; i < c->nguarded; i++) {
		r = render_nic_chain(c, b, &c->nics[i], false);
		if (r >= 0)
			r = render_nic_chain(c, b, &c->nics[i], true);
		if (r < 0)
			return r;
	}
	sbuf_printf(b, "}\n");
	return 0;
}

static void render_prologue(struct sbuf *b, const char *table)
{
	sbuf_printf(b,
		    "table inet %s {}\ndelete table inet %s\n"
		    "table bridge %s {}\ndelete table bridge %s\n",
		    table, table, table, table);
}

int net_nft_render(const struct net_model *m, char **ret, struct kiva_error *reterr)
{
	struct render c = {.m = m, .table = m->table ? m->table : "kiva", .reterr = reterr};
	struct sbuf b = {0};
	int r;

	if (!table_name_ok(c.table))
		return kiva_error_set(reterr, -EINVAL, "Invalid nftables table name '%s'", c.table);
	r = render_index(&c);
	if (r >= 0) {
		render_prologue(&b, c.table);
		r = render_inet(&c, &b);
	}
	if (r >= 0)
		r = render_bridge(&c, &b);
	render_free(&c);
	if (r >= 0 && b.oom)
		r = kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (r < 0) {
		free(b.s);
		return r;
	}
	*ret = b.s;
	return 0;
}

const char *net_nft_remove_script(void)
{
	return "table inet kiva {}\ndelete table inet kiva\n"
	       "table bridge kiva {}\ndelete table bridge kiva\n";
}

int net_nft_remove_script_for(const char *table, char **ret)
{
	struct sbuf b = {0};

	if (!table_name_ok(table))
		return -EINVAL;
	render_prologue(&b, table);
	if (b.oom) {
		free(b.s);
		return -ENOMEM;
	}
	*ret = b.s;
	return 0;
}
