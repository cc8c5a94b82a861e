/* Tests of net-nft.c against the kernel, as root, in a private network namespace: the test
 * forks a child that unshare(CLONE_NEWNET)s and runs every test there (nftables rulesets are per
 * netns, so the host's ruleset is never touched; the parent only waits, with a timeout).
 * An unrelated table is added first and must survive everything. Checks: a rendered ruleset
 * applies and lists back with the expected rules; applying it again changes nothing (no
 * duplicates); a broken script (syntax error, or a rule the kernel refuses after the delete of
 * our tables in the same batch) fails with nft's message and leaves the previous tables intact;
 * the remove script removes both tables (and is idempotent). Then a traffic test inside the
 * namespace: a bridge with three "containers" (netns + veth) and an "outside" netns behind a
 * routed uplink; ACLs allow, block and let replies through; NAT masquerades. Without root or
 * without unshare/nftables/ip(8) the tests print "# SKIP <reason>" and pass. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nftables/libnftables.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "net.h"

static char skip_reason[256];

#define SKIP_IF_NEEDED()                                                                           \
	do {                                                                                       \
		if (skip_reason[0]) {                                                              \
			printf("# SKIP %s\n", skip_reason);                                        \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Runs an nft command through libnftables with buffered output. Returns the output (or the
 * error text when *ret_rc != 0); caller frees. */
static char *nft(const char *cmd, int *ret_rc)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	char *out;
	int rc;

	assert_non_null(ctx);
	assert_int_equal(nft_ctx_buffer_output(ctx), 0);
	assert_int_equal(nft_ctx_buffer_error(ctx), 0);
	rc = nft_run_cmd_from_buffer(ctx, cmd);
	out = strdup(rc == 0 ? nft_ctx_get_output_buffer(ctx) : nft_ctx_get_error_buffer(ctx));
	assert_non_null(out);
	nft_ctx_free(ctx);
	if (ret_rc)
		*ret_rc = rc;
	return out;
}

static char *nft_ok(const char *cmd)
{
	int rc;
	char *out = nft(cmd, &rc);

	if (rc != 0)
		fail_msg("nft '%s' failed: %s", cmd, out);
	return out;
}

static void assert_contains(const char *text, const char *needle)
{
	if (!strstr(text, needle)) {
		printf("# ---- listing ----\n");
		for (const char *p = text; *p;) {
			const char *nl = strchr(p, '\n');
			int n = nl ? (int)(nl - p) : (int)strlen(p);

			printf("# %.*s\n", n, p);
			p += n + (nl ? 1 : 0);
		}
		fail_msg("listing lacks: %s", needle);
	}
}

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* ---- the model: one NAT network, three NICs, one ACL with a selector ---- */

#define BR "kvtbr0"

struct model {
	struct net_acl_rule in[2], out[1];
	struct net_model_acl acl;
	struct net_model_network net;
	struct net_model_nic nics[3];
	struct net_model m;
};

static const char *const acl_list[] = {"webacl", NULL};
static const char *const role_key[] = {"role"};
static const char *const role_lb[] = {"lb"};
static const char *const role_other[] = {"other"};

static struct net_acl_rule rule(const struct net_acl_field *f, size_t n)
{
	struct net_acl_rule r;
	struct kiva_error err = {0};

	if (net_acl_rule_from_fields(f, n, &r, &err) < 0)
		fail_msg("rule: %s", err.msg);
	return r;
}

/* web (kvt1, 10.44.0.10, ACL webacl), lb (kvt2, .11, role=lb), other (kvt3, .12, role=other).
 * webacl ingress: tcp 80 from @role=lb, and (logged) icmp4 echo from anywhere;
 * egress: tcp 80 to 172.31.99.2 (the "outside" netns). */
static void model_init(struct model *x)
{
	const struct net_acl_field in0[] = {{"action", "allow"},
					    {"protocol", "tcp"},
					    {"destination_port", "80"},
					    {"source", "@role=lb"}};
	const struct net_acl_field in1[] = {{"action", "allow"},
					    {"protocol", "icmp4"},
					    {"icmp_type", "8"},
					    {"state", "logged"}};
	const struct net_acl_field out0[] = {{"action", "allow"},
					     {"protocol", "tcp"},
					     {"destination_port", "80"},
					     {"destination", "172.31.99.2"}};

	memset(x, 0, sizeof(*x));
	x->in[0] = rule(in0, ARRAY_SIZE(in0));
	x->in[1] = rule(in1, ARRAY_SIZE(in1));
	x->out[0] = rule(out0, ARRAY_SIZE(out0));
	x->acl = (struct net_model_acl){"webacl", x->in, 2, x->out, 1};
	x->net = (struct net_model_network){BR, {0x0a2c0001, 24}, true, NULL};
	x->nics[0] = (struct net_model_nic){"web", "eth0",   BR,   "kvt1", 0x0a2c000a,
					    true,  acl_list, NULL, NULL,   0};
	x->nics[1] = (struct net_model_nic){"lb", "eth0", BR,	    "kvt2",  0x0a2c000b,
					    true, NULL,	  role_key, role_lb, 1};
	x->nics[2] = (struct net_model_nic){"other", "eth0", BR,       "kvt3",	   0x0a2c000c,
					    true,    NULL,   role_key, role_other, 1};
	x->m = (struct net_model){&x->net, 1, x->nics, 3, &x->acl, 1, NULL};
}

static void model_done(struct model *x)
{
	net_acl_rule_done(&x->in[0]);
	net_acl_rule_done(&x->in[1]);
	net_acl_rule_done(&x->out[0]);
}

static char *render(struct model *x)
{
	struct kiva_error err = {0};
	char *s = NULL;

	if (net_nft_render(&x->m, &s, &err) < 0)
		fail_msg("render: %s", err.msg);
	return s;
}

static const char unrelated[] = "table inet unrelated {\n"
				"\tchain input {\n"
				"\t\ttype filter hook input priority 10; policy accept;\n"
				"\t\ttcp dport 4242 counter accept\n"
				"\t}\n"
				"}\n";

static void assert_unrelated_intact(void)
{
	char *l = nft_ok("list table inet unrelated");

	assert_contains(l, "tcp dport 4242 counter packets 0 bytes 0 accept");
	free(l);
}

/* ---- rules in the kernel ---- */

static void test_apply_list_idempotent(void **state)
{
	struct kiva_error err = {0};
	struct model x;
	char *script, *l1, *l2, *i1, *i2;

	SKIP_IF_NEEDED();
	free(nft_ok(unrelated));
	model_init(&x);
	script = render(&x);

	assert_int_equal(net_nft_apply(script, &err), 0);
	l1 = nft_ok("list table bridge kiva");
	i1 = nft_ok("list table inet kiva");
	/* what nft reads back (it drops the implied `meta l4proto tcp`) */
	assert_contains(l1, "\t\tether type arp accept\n"
			    "\t\tiifname \"kvt1\" jump from_kvt1\n"
			    "\t\toifname \"kvt1\" jump to_kvt1\n");
	assert_contains(l1, "\tchain to_kvt1 {\n"
			    "\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
			    "\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
			    "\t\tip saddr 10.44.0.11 tcp dport 80 return\n"
			    "\t\ticmp type echo-request log prefix \"kiva-acl webacl: \" return\n"
			    "\t\tdrop\n"
			    "\t}\n");
	assert_contains(l1, "\tchain from_kvt1 {\n"
			    "\t\tmeta mark & 0x01000000 == 0x01000000 return\n"
			    "\t\tmeta mark & 0x02000000 == 0x02000000 drop\n"
			    "\t\tip daddr 172.31.99.2 tcp dport 80 return\n"
			    "\t\tdrop\n"
			    "\t}\n");
	assert_null(strstr(l1, "kvt2")); /* NICs without ACLs get no chain */
	assert_contains(i1, "ip saddr 10.44.0.0/24 ip daddr != 10.44.0.0/24 masquerade");
	assert_contains(i1, "ct state established,related meta mark set meta mark | 0x01000000");
	assert_contains(i1, "iifname \"kvtbr0\" jump ct_mark");
	assert_unrelated_intact();

	/* again: the tables are replaced, not appended to */
	assert_int_equal(net_nft_apply(script, &err), 0);
	l2 = nft_ok("list table bridge kiva");
	i2 = nft_ok("list table inet kiva");
	assert_string_equal(l1, l2);
	assert_string_equal(i1, i2);
	assert_int_equal(count(l2, "jump from_kvt1"), 2);
	assert_int_equal(count(i2, "masquerade"), 1);
	assert_unrelated_intact();

	free(l1);
	free(l2);
	free(i1);
	free(i2);
	free(script);
	model_done(&x);
}

static void test_broken_script_is_atomic(void **state)
{
	struct kiva_error err = {0};
	struct model x;
	char *script, *before, *ibefore, *after, *iafter, *broken;

	SKIP_IF_NEEDED();
	model_init(&x);
	script = render(&x);
	assert_int_equal(net_nft_apply(script, &err), 0);
	before = nft_ok("list table bridge kiva");
	ibefore = nft_ok("list table inet kiva");

	/* 1. a syntax error: nothing reaches the kernel */
	broken = strf("%stable bridge kiva {\n\tchain x {\n\t\tthis is not nft\n\t}\n}\n", script);
	assert_non_null(broken);
	assert_int_equal(net_nft_apply(broken, &err), -EINVAL);
	assert_true(startswith(err.msg, "Failed to apply nftables rules: "));
	assert_non_null(strstr(err.msg, "syntax error"));
	assert_string_equal(
		strstr(err.msg, ": Error: "),
		": Error: syntax error, unexpected !, expecting newline or semicolon at: "
		"this is not nft");
	assert_non_null(strstr(err.msg, "nftables rules: line "));
	assert_null(strchr(err.msg, '\n'));
	free(broken);

	/* 2. a different valid ruleset (x.nics[2] now guarded too) followed by a rule the kernel
	 * refuses (no conntrack in the bridge family here, or any other kernel error): the batch
	 * deleted and recreated our tables before failing, so only atomicity keeps them */
	x.nics[2].acls = acl_list;
	free(script);
	script = render(&x);
	broken = strf("%stable bridge kiva {\n\tchain forward {\n\t\tjump no_such_chain\n\t}\n}\n",
		      script);
	assert_non_null(broken);
	err = (struct kiva_error){0};
	assert_int_equal(net_nft_apply(broken, &err), -EIO);
	assert_true(startswith(err.msg, "Failed to apply nftables rules: line "));
	assert_non_null(strstr(err.msg,
			       ": Error: Could not process rule: No such file or directory "
			       "at: jump no_such_chain"));
	free(broken);

	after = nft_ok("list table bridge kiva");
	iafter = nft_ok("list table inet kiva");
	assert_string_equal(before, after);
	assert_string_equal(ibefore, iafter);
	assert_null(strstr(after, "kvt3"));
	assert_unrelated_intact();

	/* and the same script without the bad rule goes in */
	assert_int_equal(net_nft_apply(script, &err), 0);
	free(after);
	after = nft_ok("list table bridge kiva");
	assert_contains(after, "oifname \"kvt3\" jump to_kvt3");

	free(before);
	free(ibefore);
	free(after);
	free(iafter);
	free(script);
	model_done(&x);
}

static void test_remove(void **state)
{
	struct kiva_error err = {0};
	struct model x;
	char *script, *out, *custom = NULL;
	int rc;

	SKIP_IF_NEEDED();
	model_init(&x);
	script = render(&x);
	assert_int_equal(net_nft_apply(script, &err), 0);

	assert_int_equal(net_nft_apply(net_nft_remove_script(), &err), 0);
	out = nft("list table bridge kiva", &rc);
	assert_int_not_equal(rc, 0);
	free(out);
	out = nft("list table inet kiva", &rc);
	assert_int_not_equal(rc, 0);
	free(out);
	out = nft_ok("list tables");
	assert_null(strstr(out, "kiva"));
	assert_contains(out, "table inet unrelated");
	free(out);
	assert_unrelated_intact();
	/* removing what is not there is fine */
	assert_int_equal(net_nft_apply(net_nft_remove_script(), &err), 0);

	/* a kivad with its own table name */
	x.m.table = "kiva_1a2b3c4d";
	free(script);
	script = render(&x);
	assert_int_equal(net_nft_apply(script, &err), 0);
	out = nft_ok("list tables");
	assert_contains(out, "table inet kiva_1a2b3c4d\n");
	assert_contains(out, "table bridge kiva_1a2b3c4d\n");
	assert_null(strstr(out, "table bridge kiva\n"));
	free(out);
	assert_int_equal(net_nft_remove_script_for("kiva_1a2b3c4d", &custom), 0);
	assert_int_equal(net_nft_apply(custom, &err), 0);
	out = nft_ok("list tables");
	assert_null(strstr(out, "kiva"));
	free(out);
	assert_unrelated_intact();

	assert_int_equal(net_nft_apply(NULL, &err), -EINVAL);
	free(custom);
	free(script);
	model_done(&x);
}

/* ---- traffic ---- */

struct ns {
	const char *name;
	int fd;
	int listen[3]; /* ports 80, 81, 9090 (only those listed) */
};

static int host_fd = -1;

static void enter(int fd)
{
	if (setns(fd, CLONE_NEWNET) < 0)
		fail_msg("setns: %s", strerror(errno));
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		printf("# command failed (%d): %s\n", r, cmd);
	return r;
}

/* A new netns, kept alive by its fd (not O_CLOEXEC: ip(8) opens /proc/self/fd/N). */
static int netns_new(void)
{
	int fd;

	if (unshare(CLONE_NEWNET) < 0)
		fail_msg("unshare: %s", strerror(errno));
	fd = open("/proc/self/ns/net", O_RDONLY);
	assert_true(fd >= 0);
	enter(host_fd);
	return fd;
}

static int listen_in(int nsfd, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd, one = 1;

	enter(nsfd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	enter(host_fd);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	return fd;
}

/* Connects from netns `from` to addr:port within timeout_ms. On success accepts on lfd and
 * writes the peer address the server saw into peer. Returns true when connected. */
static bool reach(int from, const char *addr, int port, int lfd, char peer[static 16])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct pollfd p;
	int fd, err = 0, r;
	socklen_t len = sizeof(err);

	peer[0] = '\0';
	assert_int_equal(inet_pton(AF_INET, addr, &a.sin_addr), 1);
	enter(from);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	enter(host_fd);
	assert_true(fd >= 0);
	r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	if (r < 0 && errno != EINPROGRESS) {
		close(fd);
		return false;
	}
	p = (struct pollfd){.fd = fd, .events = POLLOUT};
	r = poll(&p, 1, 300);
	if (r == 1)
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	close(fd);
	if (r != 1 || err != 0)
		return false;

	p = (struct pollfd){.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, 300) == 1) {
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		int c = accept(lfd, (struct sockaddr *)&sa, &sl);

		if (c >= 0) {
			inet_ntop(AF_INET, &sa.sin_addr, peer, 16);
			close(c);
		}
	}
	return true;
}

#define EXPECT(ok, from, addr, port, lfd)                                                          \
	do {                                                                                       \
		char _peer[16];                                                                    \
		bool _r = reach((from), (addr), (port), (lfd), _peer);                             \
		if (_r != (ok))                                                                    \
			fail_msg("%s -> %s:%d: %s, want %s", #from, addr, port,                    \
				 _r ? "reached" : "blocked", (ok) ? "reached" : "blocked");        \
	} while (0)

static void test_traffic(void **state)
{
	struct kiva_error err = {0};
	struct model x;
	char *script, peer[16];
	int web, lb, other, outside;
	int web80, web81, lb80, other80, out80, host9090;
	FILE *f;

	SKIP_IF_NEEDED();
	if (access("/usr/sbin/ip", X_OK) < 0 && access("/sbin/ip", X_OK) < 0 &&
	    access("/usr/bin/ip", X_OK) < 0) {
		printf("# SKIP traffic test: ip(8) not found\n");
		return;
	}
	f = fopen("/proc/sys/net/bridge/bridge-nf-call-iptables", "r+");
	if (!f) {
		printf("# SKIP traffic test: no br_netfilter (bridge-nf-call-iptables)\n");
		return;
	}
	fputs("1", f); /* this netns only */
	fclose(f);

	host_fd = open("/proc/self/ns/net", O_RDONLY);
	assert_true(host_fd >= 0);
	web = netns_new();
	lb = netns_new();
	other = netns_new();
	outside = netns_new();

	/* the host side: bridge + routed uplink to "outside" */
	assert_int_equal(sh("echo 1 > /proc/sys/net/ipv4/ip_forward"), 0);
	assert_int_equal(sh("ip link set lo up && ip link add " BR " type bridge && "
			    "ip addr add 10.44.0.1/24 dev " BR " && ip link set " BR " up"),
			 0);
	assert_int_equal(sh("ip link add kvtup type veth peer name tmpup && "
			    "ip link set tmpup netns /proc/self/fd/%d && "
			    "ip addr add 172.31.99.1/24 dev kvtup && ip link set kvtup up",
			    outside),
			 0);
	enter(outside);
	assert_int_equal(sh("ip link set lo up && ip link set tmpup name eth0 && "
			    "ip addr add 172.31.99.2/24 dev eth0 && ip link set eth0 up"),
			 0); /* no route back to 10.44.0.0/24: only NAT makes replies work */
	enter(host_fd);
	const struct {
		int fd;
		const char *veth, *addr;
	} c[] = {{web, "kvt1", "10.44.0.10"},
		 {lb, "kvt2", "10.44.0.11"},
		 {other, "kvt3", "10.44.0.12"}};
	for (size_t i = 0; i < ARRAY_SIZE(c); i++) {
		assert_int_equal(sh("ip link add %s type veth peer name tmp%zu && "
				    "ip link set tmp%zu netns /proc/self/fd/%d && "
				    "ip link set %s master " BR " && ip link set %s up",
				    c[i].veth, i, i, c[i].fd, c[i].veth, c[i].veth),
				 0);
		enter(c[i].fd);
		assert_int_equal(sh("ip link set lo up && ip link set tmp%zu name eth0 && "
				    "ip addr add %s/24 dev eth0 && ip link set eth0 up && "
				    "ip route add default via 10.44.0.1",
				    i, c[i].addr),
				 0);
		enter(host_fd);
	}
	web80 = listen_in(web, 80);
	web81 = listen_in(web, 81);
	lb80 = listen_in(lb, 80);
	other80 = listen_in(other, 80);
	out80 = listen_in(outside, 80);
	host9090 = listen_in(host_fd, 9090);

	/* baseline: the bridge forwards; no NAT yet, so outside cannot answer */
	EXPECT(true, other, "10.44.0.10", 80, web80);
	EXPECT(true, web, "10.44.0.11", 80, lb80);
	EXPECT(false, lb, "172.31.99.2", 80, out80);

	model_init(&x);
	script = render(&x);
	if (net_nft_apply(script, &err) < 0)
		fail_msg("apply: %s", err.msg);

	/* ingress of web: tcp 80 from @role=lb only */
	EXPECT(true, lb, "10.44.0.10", 80, web80);
	EXPECT(false, other, "10.44.0.10", 80, web80);
	EXPECT(false, lb, "10.44.0.10", 81, web81);
	EXPECT(false, host_fd, "10.44.0.10", 80, web80); /* the host is not @role=lb */
	/* egress of web: only tcp 80 to outside; the routed replies come back (conntrack marks) */
	EXPECT(false, web, "10.44.0.11", 80, lb80);
	EXPECT(false, web, "10.44.0.1", 9090, host9090);
	assert_true(reach(web, "172.31.99.2", 80, out80, peer));
	assert_string_equal(peer, "172.31.99.1"); /* masqueraded */
	/* NICs without ACLs are untouched, and NAT works for them too */
	EXPECT(true, lb, "10.44.0.12", 80, other80);
	EXPECT(true, other, "10.44.0.1", 9090, host9090);
	assert_true(reach(lb, "172.31.99.2", 80, out80, peer));
	assert_string_equal(peer, "172.31.99.1");

	/* removed: everything flows again on the bridge, NAT is gone */
	assert_int_equal(net_nft_apply(net_nft_remove_script(), &err), 0);
	EXPECT(true, other, "10.44.0.10", 80, web80);
	EXPECT(true, web, "10.44.0.11", 80, lb80);
	EXPECT(false, lb, "172.31.99.2", 80, out80);
	assert_unrelated_intact();

	close(web80);
	close(web81);
	close(lb80);
	close(other80);
	close(out80);
	close(host9090);
	close(web);
	close(lb);
	close(other);
	close(outside);
	close(host_fd);
	free(script);
	model_done(&x);
}

static int run_all(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_list_idempotent),
		cmocka_unit_test(test_broken_script_is_atomic),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_traffic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		if (geteuid() != 0) {
			snprintf(skip_reason, sizeof(skip_reason), "not root");
		} else if (unshare(CLONE_NEWNET) < 0) {
			snprintf(skip_reason, sizeof(skip_reason), "unshare(CLONE_NEWNET): %s",
				 strerror(errno));
		} else {
			struct kiva_error err = {0};

			if (net_nft_apply(
				    "table inet kiva_probe {}\ndelete table inet kiva_probe\n",
				    &err) < 0)
				snprintf(skip_reason, sizeof(skip_reason),
					 "nftables unavailable: %.200s", err.msg);
		}
		_exit(run_all());
	}
	/* the parent stays in the host's netns and only waits, 50 s at most */
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	printf("# timeout: the test child was killed\n");
	return 1;
}
