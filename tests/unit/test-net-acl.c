/* Unit tests of net-acl.c: every ACL rule validation error with its message (table-driven),
 * rule defaults and ownership, ACL names, then the rendering of a model with two networks (one
 * NAT), four NICs (one stopped), two ACLs and selectors, compared with the whole expected text;
 * the same text whatever the order of the model's arrays; disabled and logged rules; selectors
 * that resolve to nobody; missing ACLs; and injection attempts through every name that reaches
 * the script. Pure: no root, no network. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "net.h"

/* ---- rule validation ---- */

#define F(k, v)                                                                                    \
	{                                                                                          \
		k, v                                                                               \
	}

struct rule_case {
	struct net_acl_field f[8];
	int ret;
	const char *msg;
};

static const struct rule_case rule_cases[] = {
	/* valid */
	{{F("action", "allow")}, 0},
	{{F("action", "drop"), F("source", "10.0.0.0/8,192.168.1.7, 10.1.0.1-10.1.0.9")}, 0},
	{{F("action", "reject"), F("destination", "web1,@role=db,@user.tier=front,my_acl-2")}, 0},
	{{F("action", "allow"), F("protocol", "tcp"), F("destination_port", "80,443,8000-8080")},
	 0},
	{{F("action", "allow"), F("protocol", "udp"), F("source_port", "53")}, 0},
	{{F("action", "allow"), F("protocol", "icmp4"), F("icmp_type", "8"), F("icmp_code", "0")},
	 0},
	{{F("action", "allow"), F("protocol", "icmp6"), F("icmp_type", "128")}, 0},
	{{F("action", "allow"), F("state", "logged"), F("description", "it's \"fine\"; {}")}, 0},
	{{F("action", "allow"), F("state", "disabled")}, 0},
	{{F("action", "allow"), F("source", NULL), F("protocol", "")}, 0}, /* absent, empty */
	/* keys */
	{{F("action", "allow"), F("sourceport", "80")},
	 -EINVAL,
	 "Unknown ACL rule key 'sourceport'"},
	{{F("action", "allow"), F("Action", "allow")}, -EINVAL, "Unknown ACL rule key 'Action'"},
	{{F("action", "allow"), F("action", "drop")}, -EINVAL, "Duplicate ACL rule key 'action'"},
	/* action, state, protocol */
	{{F("source", "10.0.0.1")},
	 -EINVAL,
	 "Missing ACL rule action: expected allow, reject or drop"},
	{{F("action", "")}, -EINVAL, "Missing ACL rule action: expected allow, reject or drop"},
	{{F("action", "accept")},
	 -EINVAL,
	 "Invalid action 'accept': expected allow, reject or drop"},
	{{F("action", "ALLOW")}, -EINVAL, "Invalid action 'ALLOW': expected allow, reject or drop"},
	{{F("action", "allow"), F("state", "on")},
	 -EINVAL,
	 "Invalid state 'on': expected enabled, disabled or logged"},
	{{F("action", "allow"), F("protocol", "icmp")},
	 -EINVAL,
	 "Invalid protocol 'icmp': expected tcp, udp, icmp4 or icmp6"},
	{{F("action", "allow"), F("protocol", "sctp")},
	 -EINVAL,
	 "Invalid protocol 'sctp': expected tcp, udp, icmp4 or icmp6"},
	/* ports */
	{{F("action", "allow"), F("destination_port", "80")},
	 -EINVAL,
	 "Field 'destination_port' requires protocol tcp or udp"},
	{{F("action", "allow"), F("protocol", "icmp4"), F("source_port", "80")},
	 -EINVAL,
	 "Field 'source_port' requires protocol tcp or udp"},
	{{F("action", "allow"), F("protocol", "tcp"), F("destination_port", "http")},
	 -EINVAL,
	 "Invalid destination_port entry 'http': expected a port 1-65535 or a range such as 8000-8080"},
	{{F("action", "allow"), F("protocol", "tcp"), F("destination_port", "70000")},
	 -EINVAL,
	 "Invalid destination_port entry '70000': expected a port 1-65535 or a range such as 8000-8080"},
	{{F("action", "allow"), F("protocol", "tcp"), F("destination_port", "90-80")},
	 -EINVAL,
	 "Invalid destination_port entry '90-80': expected a port 1-65535 or a range such as 8000-8080"},
	{{F("action", "allow"), F("protocol", "udp"), F("source_port", "0")},
	 -EINVAL,
	 "Invalid source_port entry '0': expected a port 1-65535 or a range such as 8000-8080"},
	{{F("action", "allow"), F("protocol", "udp"), F("source_port", "53,,54")},
	 -EINVAL,
	 "Invalid source_port entry '': expected a port 1-65535 or a range such as 8000-8080"},
	{{F("action", "allow"), F("protocol", "tcp"), F("destination_port", "-80")},
	 -EINVAL,
	 "Invalid destination_port entry '-80': expected a port 1-65535 or a range such as 8000-8080"},
	{{F("action", "allow"), F("protocol", "tcp"), F("destination_port", "80;drop")},
	 -EINVAL,
	 "Invalid destination_port entry '80;drop': expected a port 1-65535 or a range such as 8000-8080"},
	/* icmp */
	{{F("action", "allow"), F("protocol", "tcp"), F("icmp_type", "8")},
	 -EINVAL,
	 "Field 'icmp_type' requires protocol icmp4 or icmp6"},
	{{F("action", "allow"), F("icmp_code", "0")},
	 -EINVAL,
	 "Field 'icmp_code' requires protocol icmp4 or icmp6"},
	{{F("action", "allow"), F("protocol", "icmp4"), F("icmp_type", "256")},
	 -EINVAL,
	 "Invalid icmp_type '256': expected a number 0-255"},
	{{F("action", "allow"), F("protocol", "icmp4"), F("icmp_code", "echo")},
	 -EINVAL,
	 "Invalid icmp_code 'echo': expected a number 0-255"},
	{{F("action", "allow"), F("protocol", "icmp6"), F("source", "10.0.0.1")},
	 -EINVAL,
	 "Invalid source for protocol icmp6: KIVA networks are IPv4 only"},
	/* source / destination */
	{{F("action", "allow"), F("source", "10.0.0.300")},
	 -EINVAL,
	 "Invalid source entry '10.0.0.300': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "10.0.0.0/33")},
	 -EINVAL,
	 "Invalid source entry '10.0.0.0/33': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("destination", "10.0.0.9-10.0.0.1")},
	 -EINVAL,
	 "Invalid destination entry '10.0.0.9-10.0.0.1': the first address is after the last"},
	{{F("action", "allow"), F("destination", "fd00::/8")},
	 -EINVAL,
	 "Invalid destination entry 'fd00::/8': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "@role")},
	 -EINVAL,
	 "Invalid source entry '@role': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "@=web")},
	 -EINVAL,
	 "Invalid source entry '@=web': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "@role=")},
	 -EINVAL,
	 "Invalid source entry '@role=': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "web 1")},
	 -EINVAL,
	 "Invalid source entry 'web 1': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "web\"; flush ruleset")},
	 -EINVAL,
	 "Invalid source entry 'web\"; flush ruleset': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("source", "10.0.0.1,")},
	 -EINVAL,
	 "Invalid source entry '': expected a CIDR, an IPv4 address or range, an instance or ACL name, or @key=value"},
	{{F("action", "allow"), F("destination", "any")}, 0}, /* a name like any other */
};

static void test_rule_validation(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(rule_cases); i++) {
		struct net_acl_rule r = {.action = (char *)"untouched"};
		struct kiva_error err = {0};
		size_t n = 0;
		int rc;

		while (n < ARRAY_SIZE(rule_cases[i].f) && rule_cases[i].f[n].key)
			n++;
		rc = net_acl_rule_from_fields(rule_cases[i].f, n, &r, &err);
		if (rc != rule_cases[i].ret)
			fail_msg("case %zu: %d (%s), want %d", i, rc, err.msg, rule_cases[i].ret);
		if (rc < 0) {
			assert_string_equal(err.msg, rule_cases[i].msg);
			assert_int_equal(err.code, rc);
			assert_string_equal(r.action,
					    "untouched"); /* ret written only on success */
			continue;
		}
		net_acl_rule_done(&r);
		assert_null(r.action);
	}
}

/* Items longer than any valid one are refused whole, never truncated into something valid. */
static void test_rule_long_items(void **state)
{
	char src[400], port[400];
	struct net_acl_field f[3] = {{"action", "allow"}, {"source", src}, {"protocol", "tcp"}};
	struct net_acl_rule r;
	struct kiva_error err = {0};

	snprintf(src, sizeof(src), "@app=%0300d", 7);
	assert_int_equal(net_acl_rule_from_fields(f, 3, &r, &err), -EINVAL);
	assert_true(startswith(err.msg, "Invalid source entry '@app=000"));
	snprintf(src, sizeof(src), "@app=%0200d", 7); /* long but fine */
	assert_int_equal(net_acl_rule_from_fields(f, 3, &r, &err), 0);
	net_acl_rule_done(&r);
	snprintf(port, sizeof(port), "%0300d", 80);
	f[1] = (struct net_acl_field){"destination_port", port};
	assert_int_equal(net_acl_rule_from_fields(f, 3, &r, &err), -EINVAL);
	assert_true(startswith(err.msg, "Invalid destination_port entry '000"));
}

static void test_rule_defaults(void **state)
{
	const struct net_acl_field f[] = {F("action", "allow"), F("protocol", "tcp"),
					  F("destination_port", "22"), F("state", "")};
	struct net_acl_rule r;

	assert_int_equal(net_acl_rule_from_fields(f, ARRAY_SIZE(f), &r, NULL), 0);
	assert_string_equal(r.action, "allow");
	assert_string_equal(r.protocol, "tcp");
	assert_string_equal(r.destination_port, "22");
	assert_string_equal(r.state, "enabled");
	assert_string_equal(r.source, "");
	assert_string_equal(r.destination, "");
	assert_string_equal(r.source_port, "");
	assert_string_equal(r.icmp_type, "");
	assert_string_equal(r.icmp_code, "");
	assert_string_equal(r.description, "");
	assert_ptr_not_equal(r.action, f[0].value); /* owned copies */
	net_acl_rule_done(&r);
	net_acl_rule_done(&r); /* idempotent */
	net_acl_rule_done(NULL);
}

static void test_acl_name(void **state)
{
	static const struct {
		const char *name;
		int ret;
	} cases[] = {
		{"web", 0},
		{"Web_servers-2", 0},
		{"a", 0},
		{"123", 0},
		{"012345678901234567890123456789012345678901234567890123456789012", 0},
		{"0123456789012345678901234567890123456789012345678901234567890123", -EINVAL},
		{"", -EINVAL},
		{"web.x", -EINVAL},
		{"web x", -EINVAL},
		{"web\"", -EINVAL},
		{"we/b", -EINVAL},
		{"wéb", -EINVAL},
	};
	struct kiva_error err = {0};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (net_acl_name_validate(cases[i].name, NULL) != cases[i].ret)
			fail_msg("net_acl_name_validate('%s') != %d", cases[i].name, cases[i].ret);
	assert_int_equal(net_acl_name_validate("a b", &err), -EINVAL);
	assert_string_equal(err.msg,
			    "Invalid ACL name 'a b': expected 1-63 characters of a-z, A-Z, "
			    "0-9, '_' and '-'");
	assert_int_equal(net_acl_name_validate(NULL, NULL), -EINVAL);
}

/* ---- rendering ---- */

/* Builds a rule from "key=value" strings (test shorthand). */
static struct net_acl_rule mkrule(const char *const *kv)
{
	struct net_acl_field f[16];
	char buf[16][128];
	struct net_acl_rule r;
	struct kiva_error err = {0};
	size_t n = 0;

	for (; kv[n]; n++) {
		const char *eq = strchr(kv[n], '=');

		assert_non_null(eq);
		snprintf(buf[n], sizeof(buf[n]), "%.*s", (int)(eq - kv[n]), kv[n]);
		f[n].key = buf[n];
		f[n].value = eq + 1;
	}
	if (net_acl_rule_from_fields(f, n, &r, &err) < 0)
		fail_msg("mkrule: %s", err.msg);
	return r;
}

#define RULE(...) mkrule((const char *const[]){__VA_ARGS__, NULL})

struct fixture {
	struct net_acl_rule web_in[5], web_out[2], base_in[2], base_out[2];
	struct net_model_acl acls[2];
	struct net_model_network nets[2];
	struct net_model_nic nics[4];
	struct net_model m;
};

static const char *const no_acls[] = {NULL};
static const char *const web_acls[] = {"web", NULL};
static const char *const base_acls[] = {"base", NULL};
static const char *const role_key[] = {"role"};
static const char *const role_web[] = {"web"};
static const char *const role_lb[] = {"lb"};
static const char *const db_keys[] = {"tier", "role"};
static const char *const db_values[] = {"back", "db"};

/* Two networks: kvbr0 10.10.0.1/24 with NAT and no network ACL; kvbr1 10.20.0.1/24 without
 * NAT and the "base" ACL on the whole network. NICs: web1 (kvbr0, ACL web, role=web), lb1 (kvbr0,
 * no ACL, role=lb), db1 (kvbr1, ACL base from its network, role=db) and web2 (stopped, ACL web,
 * role=lb: selects nothing and gets no chain). */
static void fixture_init(struct fixture *x)
{
	memset(x, 0, sizeof(*x));
	x->web_in[0] =
		RULE("action=allow", "protocol=tcp", "destination_port=443,80", "source=@role=lb");
	x->web_in[1] = RULE("action=allow", "protocol=tcp", "destination_port=22",
			    "source=10.0.0.0/8", "state=logged");
	x->web_in[2] = RULE("action=reject", "source=db1");
	x->web_in[3] = RULE("action=drop", "protocol=udp", "source=10.20.0.99,10.20.0.98");
	x->web_in[4] = RULE("action=allow", "source=@role=nobody");
	x->web_out[0] =
		RULE("action=allow", "destination=base", "protocol=tcp", "destination_port=5432");
	x->web_out[1] = RULE("action=allow", "state=disabled");
	x->base_in[0] = RULE("action=allow", "protocol=icmp4", "icmp_type=8", "icmp_code=0");
	x->base_in[1] = RULE("action=allow", "source=web", "protocol=tcp", "destination_port=5432",
			     "source_port=1024-65535");
	x->base_out[0] = RULE("action=allow", "destination=10.20.0.1", "protocol=udp",
			      "destination_port=53");
	x->base_out[1] = RULE("action=drop", "destination=169.254.169.254", "state=logged");

	x->acls[0] = (struct net_model_acl){"web", x->web_in, 5, x->web_out, 2};
	x->acls[1] = (struct net_model_acl){"base", x->base_in, 2, x->base_out, 2};

	x->nets[0] = (struct net_model_network){"kvbr1", {0x0a140001, 24}, false, base_acls};
	x->nets[1] = (struct net_model_network){"kvbr0", {0x0a0a0001, 24}, true, no_acls};

	x->nics[0] = (struct net_model_nic){"web1", "eth0",   "kvbr0",	"kv00000000a1", 0x0a0a000a,
					    true,   web_acls, role_key, role_web,	1};
	x->nics[1] = (struct net_model_nic){"lb1", "eth0",  "kvbr0",  "kv00000000b2", 0x0a0a000b,
					    true,  no_acls, role_key, role_lb,	      1};
	x->nics[2] = (struct net_model_nic){"db1", "eth0", "kvbr1", "kv00000000c3", 0x0a14000a,
					    true,  NULL,   db_keys, db_values,	    2};
	x->nics[3] = (struct net_model_nic){"web2", "eth0",   "kvbr0",	"kv00000000d4", 0x0a0a000c,
					    false,  web_acls, role_key, role_lb,	1};

	x->m = (struct net_model){x->nets, 2, x->nics, 4, x->acls, 2, NULL};
}

static void fixture_done(struct fixture *x)
{
	struct net_acl_rule *all[] = {x->web_in, x->web_out, x->base_in, x->base_out};
	size_t n[] = {5, 2, 2, 2};

	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		for (size_t k = 0; k < n[i]; k++)
			net_acl_rule_done(&all[i][k]);
}

static const char expected[] =
	"table inet kiva {}\n"
	"delete table inet kiva\n"
	"table bridge kiva {}\n"
	"delete table bridge kiva\n"
	"table inet kiva {\n"
	"\tchain postrouting {\n"
	"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
	"\t\tip saddr 10.10.0.0/24 ip daddr != 10.10.0.0/24 masquerade\n"
	"\t}\n"
	"\tchain prerouting {\n"
	"\t\ttype filter hook prerouting priority filter; policy accept;\n"
	"\t\tiifname \"kvbr0\" jump ct_mark\n"
	"\t\tiifname \"kvbr1\" jump ct_mark\n"
	"\t}\n"
	"\tchain forward {\n"
	"\t\ttype filter hook forward priority filter; policy accept;\n"
	"\t\toifname \"kvbr0\" jump ct_mark\n"
	"\t\toifname \"kvbr1\" jump ct_mark\n"
	"\t\tiifname \"kvbr0\" accept\n"
	"\t\toifname \"kvbr0\" accept\n"
	"\t\tiifname \"kvbr1\" accept\n"
	"\t\toifname \"kvbr1\" accept\n"
	"\t}\n"
	"\tchain output {\n"
	"\t\ttype filter hook output priority filter; policy accept;\n"
	"\t\toifname \"kvbr0\" jump ct_mark\n"
	"\t\toifname \"kvbr1\" jump ct_mark\n"
	"\t}\n"
	"\tchain ct_mark {\n"
	"\t\tmeta mark set meta mark & 0xfcffffff\n"
	"\t\tct state established,related meta mark set meta mark | 0x01000000\n"
	"\t\tct state invalid meta mark set meta mark | 0x02000000\n"
	"\t}\n"
	"}\n"
	"table bridge kiva {\n"
	"\tchain forward {\n"
	"\t\ttype filter hook forward priority filter; policy accept;\n"
	"\t\tether type arp accept\n"
	"\t\tiifname \"kv00000000a1\" jump from_kv00000000a1\n"
	"\t\toifname \"kv00000000a1\" jump to_kv00000000a1\n"
	"\t\tiifname \"kv00000000c3\" jump from_kv00000000c3\n"
	"\t\toifname \"kv00000000c3\" jump to_kv00000000c3\n"
	"\t}\n"
	"\tchain input {\n"
	"\t\ttype filter hook input priority filter; policy accept;\n"
	"\t\tether type arp accept\n"
	"\t\tiifname \"kv00000000a1\" jump from_kv00000000a1\n"
	"\t\tiifname \"kv00000000c3\" jump from_kv00000000c3\n"
	"\t}\n"
	"\tchain output {\n"
	"\t\ttype filter hook output priority filter; policy accept;\n"
	"\t\tether type arp accept\n"
	"\t\toifname \"kv00000000a1\" jump to_kv00000000a1\n"
	"\t\toifname \"kv00000000c3\" jump to_kv00000000c3\n"
	"\t}\n"
	"\tchain from_kv00000000a1 {\n"
	"\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
	"\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
	"\t\tip daddr 10.20.0.10 meta l4proto tcp tcp dport 5432 return\n"
	"\t\tdrop\n"
	"\t}\n"
	"\tchain to_kv00000000a1 {\n"
	"\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
	"\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
	"\t\tip saddr 10.20.0.98/31 meta l4proto udp drop\n"
	"\t\tip saddr 10.20.0.10 drop\n"
	"\t\tip saddr 10.10.0.11 meta l4proto tcp tcp dport { 80, 443 } return\n"
	"\t\tip saddr 10.0.0.0/8 meta l4proto tcp tcp dport 22 log prefix \"kiva-acl web: \" return\n"
	"\t\tdrop\n"
	"\t}\n"
	"\tchain from_kv00000000c3 {\n"
	"\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
	"\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
	"\t\tip daddr 169.254.169.254 log prefix \"kiva-acl base: \" drop\n"
	"\t\tip daddr 10.20.0.1 meta l4proto udp udp dport 53 return\n"
	"\t\tdrop\n"
	"\t}\n"
	"\tchain to_kv00000000c3 {\n"
	"\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
	"\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
	"\t\tmeta l4proto icmp icmp type 8 icmp code 0 return\n"
	"\t\tip saddr 10.10.0.10 meta l4proto tcp tcp sport 1024-65535 tcp dport 5432 return\n"
	"\t\tdrop\n"
	"\t}\n"
	"}\n";

/* Compares whole texts; on a difference prints both from the first differing line (as TAP
 * comments) so the failure says what changed. Frees got. */
static void assert_text(char *got, const char *want)
{
	const char *g = got, *w = want;
	size_t line = 1;

	if (strcmp(got, want) == 0) {
		free(got);
		return;
	}
	while (*g && *g == *w) {
		if (*g == '\n') {
			line++;
		}
		g++;
		w++;
	}
	while (g > got && g[-1] != '\n')
		g--, w--;
	printf("# first difference at line %zu\n# ---- got ----\n", line);
	for (const char *p = g; *p;) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		printf("# %.*s\n", n, p);
		p += n + (nl ? 1 : 0);
	}
	printf("# ---- want ----\n");
	for (const char *p = w; *p;) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		printf("# %.*s\n", n, p);
		p += n + (nl ? 1 : 0);
	}
	free(got);
	fail_msg("rendered text differs from the expected text at line %zu", line);
}

static int fixture_setup(void **state)
{
	struct fixture *x = malloc(sizeof(*x));

	if (!x)
		return -1;
	fixture_init(x);
	*state = x;
	return 0;
}

static int fixture_teardown(void **state)
{
	fixture_done(*state);
	free(*state);
	return 0;
}

static void test_render(void **state)
{
	struct fixture *x = *state;
	struct kiva_error err = {0};
	char *s = NULL;

	assert_int_equal(net_nft_render(&x->m, &s, &err), 0);
	assert_text(s, expected);
}

/* The same model in another order (arrays reversed, ACL lists reordered) renders the same. */
static void test_render_stable(void **state)
{
	struct fixture *x = *state;
	static const char *const two_acls[] = {"web", "base", "web", NULL};
	struct net_model_network nets[2] = {x->nets[1], x->nets[0]};
	struct net_model_nic nics[4] = {x->nics[3], x->nics[2], x->nics[1], x->nics[0]};
	struct net_model_acl acls[2] = {x->acls[1], x->acls[0]};
	struct net_model m = {nets, 2, nics, 4, acls, 2, "kiva"};
	char *a = NULL, *b = NULL;

	assert_int_equal(net_nft_render(&m, &a, NULL), 0);
	assert_text(a, expected);
	assert_int_equal(net_nft_render(&x->m, &b, NULL), 0); /* and again: no hidden state */
	assert_text(b, expected);

	/* an ACL listed twice (and also on the network) gives one chain entry per rule */
	nics[3].acls = two_acls;
	nics[3].network = "kvbr1";
	assert_int_equal(net_nft_render(&m, &a, NULL), 0);
	assert_non_null(strstr(
		a,
		"\tchain to_kv00000000a1 {\n"
		"\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
		"\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
		"\t\tip saddr 10.20.0.98/31 meta l4proto udp drop\n"
		"\t\tip saddr 10.20.0.10 drop\n"
		"\t\tmeta l4proto icmp icmp type 8 icmp code 0 return\n"
		"\t\tip saddr 10.10.0.10 meta l4proto tcp tcp sport 1024-65535 tcp dport 5432 return\n"
		"\t\tip saddr 10.10.0.11 meta l4proto tcp tcp dport { 80, 443 } return\n"
		"\t\tip saddr 10.0.0.0/8 meta l4proto tcp tcp dport 22 log prefix \"kiva-acl web: \" return\n"
		"\t\tdrop\n"));
	free(a);
}

/* A model with nothing: both tables with their base chains, nothing else. */
static void test_render_empty(void **state)
{
	struct net_model m = {0};
	char *s = NULL;

	assert_int_equal(net_nft_render(&m, &s, NULL), 0);
	assert_text(s, "table inet kiva {}\n"
		       "delete table inet kiva\n"
		       "table bridge kiva {}\n"
		       "delete table bridge kiva\n"
		       "table inet kiva {\n"
		       "\tchain postrouting {\n"
		       "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		       "\t}\n"
		       "\tchain forward {\n"
		       "\t\ttype filter hook forward priority filter; policy accept;\n"
		       "\t}\n"
		       "}\n"
		       "table bridge kiva {\n"
		       "\tchain forward {\n"
		       "\t\ttype filter hook forward priority filter; policy accept;\n"
		       "\t\tether type arp accept\n"
		       "\t}\n"
		       "\tchain input {\n"
		       "\t\ttype filter hook input priority filter; policy accept;\n"
		       "\t\tether type arp accept\n"
		       "\t}\n"
		       "\tchain output {\n"
		       "\t\ttype filter hook output priority filter; policy accept;\n"
		       "\t\tether type arp accept\n"
		       "\t}\n"
		       "}\n");
}

/* A network without ACLs: traffic between its instances skips conntrack (raw prerouting
 * notrack), except towards the gateway; a guarded network does not get that rule. */
static void test_render_untracked(void **state)
{
	struct net_model_network nets[] = {
		{.name = "br0", .ipv4 = {.addr = 0x0a000301, .len = 24}, .nat = true},
	};
	struct net_model m = {.networks = nets, .nnetworks = 1};
	char *s = NULL;

	assert_int_equal(net_nft_render(&m, &s, NULL), 0);
	assert_non_null(strstr(s,
			       "\tchain untracked {\n"
			       "\t\ttype filter hook prerouting priority raw; policy accept;\n"
			       "\t\tiifname \"br0\" ip saddr 10.0.3.0/24 ip daddr 10.0.3.0/24 ip "
			       "daddr != 10.0.3.1 notrack\n"
			       "\t}\n"));
	free(s);
}

/* Disabled rules vanish, logged ones log with the ACL's name, lists mixing literals and names
 * are merged, and a NIC whose rules all select nobody keeps its default drop. Custom table. */
static void test_render_states(void **state)
{
	static const char *const acl_a[] = {"a", NULL};
	static const char *const acl_b[] = {"b", NULL};
	struct net_acl_rule in[4] = {
		RULE("action=drop", "source=10.0.0.1", "state=disabled"),
		RULE("action=allow", "source=10.9.0.0/24,n2,10.9.0.7-10.9.1.3", "state=logged"),
		RULE("action=reject", "protocol=icmp6", "icmp_type=128", "state=logged"),
		RULE("action=allow", "protocol=udp", "destination_port=53,53,50-60,61"),
	};
	struct net_acl_rule out[1] = {RULE("action=allow", "destination=@app=ghost")};
	struct net_model_acl acls[2] = {{"a", in, 4, NULL, 0}, {"b", NULL, 0, out, 1}};
	struct net_model_network net = {"br-x.1", {0x0a090001, 24}, false, NULL};
	struct net_model_nic nics[2] = {
		{"n1", "eth0", "br-x.1", "kv1", 0x0a090002, true, acl_a, NULL, NULL, 0},
		{"n2", "eth0", "br-x.1", "kv2", 0x0a090003, true, acl_b, NULL, NULL, 0},
	};
	struct net_model m = {&net, 1, nics, 2, acls, 2, "kiva_1a2b3c4d"};
	char *s = NULL;
	const char *p;

	assert_int_equal(net_nft_render(&m, &s, NULL), 0);
	assert_true(startswith(s,
			       "table inet kiva_1a2b3c4d {}\ndelete table inet kiva_1a2b3c4d\n"
			       "table bridge kiva_1a2b3c4d {}\ndelete table bridge kiva_1a2b3c4d\n"
			       "table inet kiva_1a2b3c4d {\n"));
	assert_non_null(strstr(s, "\ntable bridge kiva_1a2b3c4d {\n"));
	assert_null(strstr(s, "10.0.0.1"));
	assert_null(strstr(s, "masquerade"));
	p = strstr(s, "\tchain to_kv1 {\n");
	assert_non_null(p);
	assert_true(startswith(
		p, "\tchain to_kv1 {\n"
		   "\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
		   "\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
		   "\t\tmeta l4proto ipv6-icmp icmpv6 type 128 log prefix \"kiva-acl a: \" drop\n"
		   "\t\tip saddr 10.9.0.0-10.9.1.3 log prefix \"kiva-acl a: \" return\n"
		   "\t\tmeta l4proto udp udp dport 50-61 return\n"
		   "\t\tdrop\n"
		   "\t}\n"));
	p = strstr(s, "\tchain from_kv2 {\n");
	assert_non_null(p);
	assert_true(startswith(p, "\tchain from_kv2 {\n"
				  "\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
				  "\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
				  "\t\tdrop\n"
				  "\t}\n"));
	assert_non_null(strstr(s, "\t\tiifname \"br-x.1\" jump ct_mark\n"));
	free(s);
	for (size_t i = 0; i < ARRAY_SIZE(in); i++)
		net_acl_rule_done(&in[i]);
	net_acl_rule_done(&out[0]);
}

static void test_remove_script(void **state)
{
	char *s = NULL;

	assert_string_equal(net_nft_remove_script(),
			    "table inet kiva {}\ndelete table inet kiva\n"
			    "table bridge kiva {}\ndelete table bridge kiva\n");
	assert_int_equal(net_nft_remove_script_for("kiva_77", &s), 0);
	assert_string_equal(s, "table inet kiva_77 {}\ndelete table inet kiva_77\n"
			       "table bridge kiva_77 {}\ndelete table bridge kiva_77\n");
	free(s);
	s = NULL;
	assert_int_equal(net_nft_remove_script_for("kiva; flush ruleset", &s), -EINVAL);
	assert_int_equal(net_nft_remove_script_for("", &s), -EINVAL);
	assert_int_equal(net_nft_remove_script_for(NULL, &s), -EINVAL);
	assert_null(s);
}

/* Models the renderer must refuse, with the message a user would read. Every name that reaches
 * the script is checked again here, whatever the API validated before. */
static void test_render_refuses(void **state)
{
	struct fixture *x = *state;
	static const char *const ghost[] = {"ghost", NULL};
	static const char *const bad_acl_ref[] = {"web\" accept", NULL};
	struct net_acl_rule evil = {.action = (char *)"allow",
				    .protocol = (char *)"tcp",
				    .destination_port = (char *)"80 } accept; flush ruleset; {",
				    .state = (char *)"enabled"};
	struct net_model_acl evil_acl = {"web", &evil, 1, NULL, 0};
	static const struct {
		const char *what;
		int ret;
		const char *msg;
	} want[] = {
		{"nic acl", -ENOENT, "Network ACL 'ghost' not found (used by NIC 'web1/eth0')"},
		{"stopped nic acl", -ENOENT,
		 "Network ACL 'ghost' not found (used by NIC 'web2/eth0')"},
		{"network acl", -ENOENT, "Network ACL 'ghost' not found (used by network 'kvbr1')"},
		{"network name", -EINVAL,
		 "Invalid network name 'kvbr0\" accept; flush ruleset; \"': expected 1-15 characters of a-z, A-Z, 0-9, '_', '.' and '-'"},
		{"network name space", -EINVAL,
		 "Invalid network name 'kv br0': expected 1-15 characters of a-z, A-Z, 0-9, '_', '.' and '-'"},
		{"network name long", -EINVAL,
		 "Invalid network name 'kvbr0123456789ab': expected 1-15 characters of a-z, A-Z, 0-9, '_', '.' and '-'"},
		{"host ifname", -EINVAL,
		 "Invalid host interface name 'kv1\" drop' of NIC 'web1/eth0'"},
		{"host ifname empty", -EINVAL, "Invalid host interface name '' of NIC 'web1/eth0'"},
		{"acl name", -EINVAL,
		 "Invalid ACL name 'web\" accept': expected 1-63 characters of a-z, A-Z, 0-9, '_' and '-'"},
		{"table", -EINVAL, "Invalid nftables table name 'kiva bridge'"},
		{"rule", -EINVAL,
		 "ACL 'web': Invalid destination_port entry '80 } accept; flush ruleset; {': expected a port 1-65535 or a range such as 8000-8080"},
		{"duplicate veth", -EINVAL, "Duplicate host interface name 'kv00000000a1'"},
		{"duplicate network", -EINVAL, "Duplicate network 'kvbr0'"},
		{"missing network", -ENOENT, "Network 'kvbr9' of NIC 'web1/eth0' not found"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		struct net_model_network nets[2] = {x->nets[0], x->nets[1]};
		struct net_model_nic nics[4] = {x->nics[0], x->nics[1], x->nics[2], x->nics[3]};
		struct net_model_acl acls[2] = {x->acls[0], x->acls[1]};
		struct net_model m = {nets, 2, nics, 4, acls, 2, NULL};
		struct kiva_error err = {0};
		char *s = NULL;
		int r;

		switch (i) {
		case 0:
			nics[0].acls = ghost;
			break;
		case 1:
			nics[3].acls = ghost;
			break;
		case 2:
			nets[0].acls = ghost;
			break;
		case 3:
			nets[1].name = "kvbr0\" accept; flush ruleset; \"";
			break;
		case 4:
			nets[1].name = "kv br0";
			break;
		case 5:
			nets[1].name = "kvbr0123456789ab";
			break;
		case 6:
			nics[0].host_ifname = "kv1\" drop";
			break;
		case 7:
			nics[0].host_ifname = "";
			break;
		case 8:
			acls[0].name = "web\" accept";
			nics[0].acls = bad_acl_ref;
			nics[3].acls = bad_acl_ref;
			break;
		case 9:
			m.table = "kiva bridge";
			break;
		case 10:
			acls[0] = evil_acl;
			break;
		case 11:
			nics[2].host_ifname = "kv00000000a1";
			break;
		case 12:
			nets[0].name = "kvbr0";
			break;
		case 13:
			nics[0].network = "kvbr9";
			break;
		}
		r = net_nft_render(&m, &s, &err);
		if (r != want[i].ret)
			fail_msg("%s: %d (%s), want %d", want[i].what, r, err.msg, want[i].ret);
		assert_null(s);
		assert_string_equal(err.msg, want[i].msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule_validation),
		cmocka_unit_test(test_rule_long_items),
		cmocka_unit_test(test_rule_defaults),
		cmocka_unit_test(test_acl_name),
		cmocka_unit_test_setup_teardown(test_render, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_render_stable, fixture_setup,
						fixture_teardown),
		cmocka_unit_test(test_render_empty),
		cmocka_unit_test(test_render_untracked),
		cmocka_unit_test(test_render_states),
		cmocka_unit_test(test_remove_script),
		cmocka_unit_test_setup_teardown(test_render_refuses, fixture_setup,
						fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
