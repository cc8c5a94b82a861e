/* Unit tests of net-link.c. Pure: the VLAN netlink messages, parsed back attribute by attribute
 * and compared byte for byte, and the interface-name checks. As root: every test forks a child
 * that unshare(CLONE_NEWNET)s, so bridges, veths, ifbs and qdiscs live in a private network
 * namespace that the kernel tears down when the child exits, even when a check fails; a
 * "container" is a second forked child in its own netns. Nothing touches the host's interfaces
 * and no packet leaves these namespaces. The children report through their exit status; their
 * messages are TAP comments. With iperf3 installed, the QoS limits are measured (2 s runs). */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/addr.h>
#include <netlink/route/class.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <netlink/socket.h>

#include "basic-macro.h"
#include "net.h"

/* cmocka 1.1.5 reports skip() as "not ok N # SKIP", which meson's TAP parser counts as a failure:
 * print the reason as a TAP comment and return instead. */
#define SKIP_TEST(why)                                                                             \
	do {                                                                                       \
		printf("# SKIP %s: %s\n", __func__, why);                                          \
		return;                                                                            \
	} while (0)

#define IPV4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((c) << 8) | (d))
#define CHILD_SKIP 77

/* ---------------- pure: VLAN messages ---------------- */

static void msg_bytes_equal(struct nl_msg *msg, const uint8_t *want, size_t want_len)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	const uint8_t *got = (const uint8_t *)h;

	assert_int_equal(h->nlmsg_len, want_len);
	for (size_t i = 0; i < want_len; i++)
		if (got[i] != want[i])
			fail_msg("byte %zu: got 0x%02x, want 0x%02x", i, got[i], want[i]);
}

static void test_vlan_build_port(void **state)
{
	static const struct {
		int ifindex;
		unsigned vid;
		bool pvid_untagged, del;
		uint16_t type, flags;
	} cases[] = {
		{7, 10, true, false, RTM_SETLINK,
		 BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED},
		{7, 20, false, false, RTM_SETLINK, 0},
		{300, 1, false, true, RTM_DELLINK, 0},
		{1, 4094, true, false, RTM_SETLINK,
		 BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct nl_msg *msg = NULL;
		struct nlattr *tb[IFLA_MAX + 1], *info;
		struct bridge_vlan_info vi;
		struct ifinfomsg *ifi;
		struct nlmsghdr *h;
		/* nlmsghdr(16) ifinfomsg(16) IFLA_AF_SPEC{ IFLA_BRIDGE_VLAN_INFO{flags, vid} } */
		/* clang-format off */
		uint8_t want[44] = {
			44, 0, 0, 0, (uint8_t)cases[i].type, 0, NLM_F_REQUEST | NLM_F_ACK, 0,
			0, 0, 0, 0, 0, 0, 0, 0,                 /* seq, pid: filled when sent */
			AF_BRIDGE, 0, 0, 0,                     /* family, pad, type */
			(uint8_t)cases[i].ifindex, (uint8_t)(cases[i].ifindex >> 8), 0, 0,
			0, 0, 0, 0, 0, 0, 0, 0,                 /* flags, change */
			12, 0, IFLA_AF_SPEC, NLA_F_NESTED >> 8, /* libnl marks nests */
			8, 0, IFLA_BRIDGE_VLAN_INFO, 0,
			(uint8_t)cases[i].flags, (uint8_t)(cases[i].flags >> 8),
			(uint8_t)cases[i].vid, (uint8_t)(cases[i].vid >> 8),
		};
		/* clang-format on */

		assert_int_equal(net_vlan_build_port(cases[i].ifindex, cases[i].vid,
						     cases[i].pvid_untagged, cases[i].del, &msg),
				 0);
		assert_non_null(msg);
		h = nlmsg_hdr(msg);
		assert_int_equal(h->nlmsg_type, cases[i].type);
		assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
		ifi = nlmsg_data(h);
		assert_int_equal(ifi->ifi_family, AF_BRIDGE);
		assert_int_equal(ifi->ifi_index, cases[i].ifindex);
		assert_int_equal(nlmsg_parse(h, sizeof(*ifi), tb, IFLA_MAX, NULL), 0);
		assert_non_null(tb[IFLA_AF_SPEC]);
		for (int a = 0; a <= IFLA_MAX; a++)
			if (a != IFLA_AF_SPEC && tb[a])
				fail_msg("unexpected attribute %d", a);
		info = nla_find(nla_data(tb[IFLA_AF_SPEC]), nla_len(tb[IFLA_AF_SPEC]),
				IFLA_BRIDGE_VLAN_INFO);
		assert_non_null(info);
		assert_int_equal(nla_len(info), sizeof(vi));
		memcpy(&vi, nla_data(info), sizeof(vi));
		assert_int_equal(vi.vid, cases[i].vid);
		assert_int_equal(vi.flags, cases[i].flags);
		msg_bytes_equal(msg, want, sizeof(want));
		nlmsg_free(msg);
	}

	{
		struct nl_msg *msg = NULL;

		assert_int_equal(net_vlan_build_port(7, 0, true, false, &msg), -EINVAL);
		assert_int_equal(net_vlan_build_port(7, 4095, true, false, &msg), -EINVAL);
		assert_int_equal(net_vlan_build_port(0, 10, true, false, &msg), -EINVAL);
		assert_null(msg);
	}
}

static void test_vlan_build_filtering(void **state)
{
	static const struct {
		const char *bridge;
		int ifindex;
		bool on;
	} cases[] = {
		{"kvbr0", 5, true},
		{"kvbr0", 5, false},
		{NULL, 9, true},
		{"kivabr", 0, true},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct nl_msg *msg = NULL;
		struct nlattr *tb[IFLA_MAX + 1], *li[IFLA_INFO_MAX + 1], *br[IFLA_BR_MAX + 1];
		struct ifinfomsg *ifi;
		struct nlmsghdr *h;
		uint8_t want[128];
		size_t n = 0;

		assert_int_equal(net_vlan_build_filtering(cases[i].bridge, cases[i].ifindex,
							  cases[i].on, &msg),
				 0);
		h = nlmsg_hdr(msg);
		assert_int_equal(h->nlmsg_type, RTM_NEWLINK);
		assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
		ifi = nlmsg_data(h);
		assert_int_equal(ifi->ifi_family, AF_UNSPEC);
		assert_int_equal(ifi->ifi_index, cases[i].ifindex);
		assert_int_equal(nlmsg_parse(h, sizeof(*ifi), tb, IFLA_MAX, NULL), 0);
		if (cases[i].bridge) {
			assert_non_null(tb[IFLA_IFNAME]);
			assert_string_equal(nla_get_string(tb[IFLA_IFNAME]), cases[i].bridge);
		} else {
			assert_null(tb[IFLA_IFNAME]);
		}
		assert_non_null(tb[IFLA_LINKINFO]);
		assert_int_equal(nla_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], NULL), 0);
		assert_non_null(li[IFLA_INFO_KIND]);
		assert_string_equal(nla_get_string(li[IFLA_INFO_KIND]), "bridge");
		assert_non_null(li[IFLA_INFO_DATA]);
		assert_int_equal(nla_parse_nested(br, IFLA_BR_MAX, li[IFLA_INFO_DATA], NULL), 0);
		for (int a = 0; a <= IFLA_BR_MAX; a++)
			if (a != IFLA_BR_VLAN_FILTERING && br[a])
				fail_msg("unexpected bridge attribute %d", a);
		assert_non_null(br[IFLA_BR_VLAN_FILTERING]);
		assert_int_equal(nla_len(br[IFLA_BR_VLAN_FILTERING]), 1);
		assert_int_equal(nla_get_u8(br[IFLA_BR_VLAN_FILTERING]), cases[i].on);

		/* the same, written out: what `ip link set BR type bridge vlan_filtering N` sends */
		memset(want, 0, sizeof(want));
		n = 16;
		want[n] = AF_UNSPEC;
		want[n + 4] = (uint8_t)cases[i].ifindex;
		n += 16;
		if (cases[i].bridge) {
			size_t l = strlen(cases[i].bridge) + 1;

			want[n] = (uint8_t)(4 + l);
			want[n + 2] = IFLA_IFNAME;
			memcpy(want + n + 4, cases[i].bridge, l);
			n += NLA_ALIGN(4 + l);
		}
		want[n] = 4 + 12 + 4 + 8; /* LINKINFO{ KIND "bridge\0"(+pad), DATA{ u8 } } */
		want[n + 2] = IFLA_LINKINFO;
		want[n + 3] = NLA_F_NESTED >> 8;
		want[n + 4] = 11;
		want[n + 6] = IFLA_INFO_KIND;
		memcpy(want + n + 8, "bridge", 7);
		want[n + 16] = 12;
		want[n + 18] = IFLA_INFO_DATA;
		want[n + 19] = NLA_F_NESTED >> 8;
		want[n + 20] = 5;
		want[n + 22] = IFLA_BR_VLAN_FILTERING;
		want[n + 24] = cases[i].on;
		n += 28;
		want[0] = (uint8_t)n;
		want[4] = RTM_NEWLINK;
		want[6] = NLM_F_REQUEST | NLM_F_ACK;
		msg_bytes_equal(msg, want, n);
		nlmsg_free(msg);
	}

	{
		struct nl_msg *msg = NULL;

		assert_int_equal(net_vlan_build_filtering(NULL, 0, true, &msg), -EINVAL);
		assert_int_equal(net_vlan_build_filtering("a-name-that-is-too-long", 3, true, &msg),
				 -EINVAL);
		assert_null(msg);
	}
}

/* ---------------- pure: argument checks (fail before any netlink traffic) ---------------- */

static void test_name_checks(void **state)
{
	static const char *const bad[] = {"kv0123456789abcd", "", "a/b", "a:b", "a b", ".", ".."};
	const struct net_prefix p = {IPV4(10, 1, 2, 1), 24};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct kiva_error err = {0};

		assert_int_equal(net_bridge_ensure(bad[i], "t", &p, 0, &err), -EINVAL);
		assert_true(err.msg[0] != '\0');
		assert_int_equal(net_bridge_delete(bad[i], "t", NULL), -EINVAL);
		assert_int_equal(net_veth_create_for(bad[i], "tmp0", "br0", NULL, 0, "t", 1, NULL),
				 -EINVAL);
		assert_int_equal(net_veth_create_for("kv0", bad[i], "br0", NULL, 0, "t", 1, NULL),
				 -EINVAL);
		assert_int_equal(net_veth_create_for("kv0", "tmp0", bad[i], NULL, 0, "t", 1, NULL),
				 -EINVAL);
		assert_int_equal(net_nic_configure_in_netns(1, bad[i], "eth0", &p, 0, NULL),
				 -EINVAL);
		assert_int_equal(net_nic_configure_in_netns(1, "tmp0", bad[i], &p, 0, NULL),
				 -EINVAL);
		assert_int_equal(net_qos_apply(bad[i], 1, 1, "t", NULL), -EINVAL);
		assert_int_equal(net_qos_clear(bad[i]), -EINVAL);
		assert_int_equal(net_link_delete(bad[i]), -EINVAL);
		assert_false(net_link_exists(bad[i]));
		assert_int_equal(net_vlan_apply(bad[i], "p0", 10, NULL, 0, NULL), -EINVAL);
	}

	{
		struct kiva_error err = {0};

		assert_int_equal(net_bridge_ensure("kv0123456789abcd", "t", &p, 0, &err), -EINVAL);
		assert_string_equal(err.msg, "Interface name 'kv0123456789abcd' is too long (16 "
					     "characters, at most 15)");
		memset(&err, 0, sizeof(err));
		assert_int_equal(net_bridge_ensure("kvbr0", "", &p, 0, &err), -EINVAL);
		assert_string_equal(err.msg, "Missing KIVA interface tag");
		memset(&err, 0, sizeof(err));
		assert_int_equal(net_vlan_apply("kvbr0", "p0", 4095, NULL, 0, &err), -EINVAL);
		assert_string_equal(err.msg, "Invalid VLAN id 4095 (1-4094)");
		assert_int_equal(net_vlan_apply("kvbr0", "p0", 0, NULL, 0, NULL), -EINVAL);
		{
			const unsigned bad_tagged[] = {20, 0};

			assert_int_equal(net_vlan_apply("kvbr0", "p0", 0, bad_tagged, 2, NULL),
					 -EINVAL);
		}
		assert_int_equal(
			net_veth_create_for("kv0", "tmp0", "br0", "zz:zz", 0, "t", 1, NULL),
			-EINVAL);
		assert_int_equal(net_veth_create_for("kv0", "tmp0", "br0", NULL, 0, "t", 0, NULL),
				 -EINVAL);
	}
}

/* ---------------- root: helpers for the forked children ---------------- */

__attribute__((format(printf, 3, 4), noreturn)) static void child_fail(const char *file, int line,
								       const char *fmt, ...)
{
	va_list ap;

	printf("# FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	_exit(1);
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			child_fail(__FILE__, __LINE__, "%s", #cond);                               \
	} while (0)
#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			child_fail(__FILE__, __LINE__, "%s == %lld, want %s == %lld", #a, _a, #b,  \
				   _b);                                                            \
	} while (0)
#define CHECK_OK(call, err)                                                                        \
	do {                                                                                       \
		int _r = (call);                                                                   \
		if (_r < 0)                                                                        \
			child_fail(__FILE__, __LINE__, "%s = %d (%s)", #call, _r, (err).msg);      \
	} while (0)

/* Runs fn in a forked child inside a fresh network namespace. 0 on success, CHILD_SKIP when
 * the namespace cannot be created, else the failure. */
static int run_isolated(void (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0)
			_exit(CHILD_SKIP);
		alarm(120);
		fn();
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	printf("# child killed by signal %d\n", WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

#define RUN_ISOLATED(fn)                                                                           \
	do {                                                                                       \
		int _s;                                                                            \
		if (geteuid() != 0)                                                                \
			SKIP_TEST("needs root (network namespaces, netlink changes)");             \
		_s = run_isolated(fn);                                                             \
		if (_s == CHILD_SKIP)                                                              \
			SKIP_TEST("cannot create a network namespace");                            \
		assert_int_equal(_s, 0);                                                           \
	} while (0)

/* A "container": a child sleeping in its own netns, killed with its parent. */
static pid_t netns_holder_start(void)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe(fds) < 0)
		child_fail(__FILE__, __LINE__, "pipe: %m");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		child_fail(__FILE__, __LINE__, "fork: %m");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[0]);
		if (unshare(CLONE_NEWNET) < 0)
			_exit(1);
		c = 'r';
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		child_fail(__FILE__, __LINE__, "netns holder did not start");
	close(fds[0]);
	return pid;
}

static void netns_holder_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void netns_enter_pid(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		child_fail(__FILE__, __LINE__, "enter netns of %d: %m", (int)pid);
	close(fd);
}

/* Runs fn(arg) in a forked grandchild; true when it exited 0. */
static bool run_forked(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		fn(arg);
		fflush(stdout);
		_exit(0);
	}
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static struct nl_sock *test_sock(void)
{
	struct nl_sock *sk = nl_socket_alloc();

	CHECK(sk);
	CHECK_EQ(nl_connect(sk, NETLINK_ROUTE), 0);
	return sk;
}

static struct rtnl_link *test_link(struct nl_sock *sk, const char *name)
{
	struct rtnl_link *link = NULL;

	if (rtnl_link_get_kernel(sk, 0, name, &link) < 0)
		return NULL;
	return link;
}

static uint32_t addr_ipv4(struct nl_addr *a)
{
	uint32_t be = 0;

	if (a && nl_addr_get_len(a) == 4)
		memcpy(&be, nl_addr_get_binary_addr(a), 4);
	return ntohl(be);
}

/* Number of IPv4 addresses on ifindex; *ret the last one. */
static int ipv4_addrs(struct nl_sock *sk, int ifindex, struct net_prefix *ret, uint32_t *ret_brd,
		      char *ret_label)
{
	struct nl_cache *cache = NULL;
	int n = 0;

	CHECK_EQ(rtnl_addr_alloc_cache(sk, &cache), 0);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET)
			continue;
		n++;
		ret->addr = addr_ipv4(rtnl_addr_get_local(a));
		ret->len = (uint8_t)rtnl_addr_get_prefixlen(a);
		if (ret_brd)
			*ret_brd = addr_ipv4(rtnl_addr_get_broadcast(a));
		if (ret_label)
			snprintf(ret_label, IFNAMSIZ, "%s",
				 rtnl_addr_get_label(a) ? rtnl_addr_get_label(a) : "");
	}
	nl_cache_free(cache);
	return n;
}

/* ---------------- root: bridges ---------------- */

static void bridge_child(void)
{
	struct nl_sock *sk = test_sock();
	struct net_prefix p1 = {IPV4(10, 123, 45, 1), 24}, p2 = {IPV4(10, 123, 46, 1), 24}, got;
	struct kiva_error err = {0};
	struct rtnl_link *link;
	struct net_prefix *pfx = NULL;
	char **names = NULL, label[IFNAMSIZ], tag[32], alias[64];
	uint32_t brd = 0;
	size_t npfx = 0;
	bool seen = false;
	char buf[8] = "";
	int fd;

	snprintf(tag, sizeof(tag), "t%d", (int)getpid());
	snprintf(alias, sizeof(alias), "kiva:%s", tag);

	/* twice: idempotent */
	CHECK_OK(net_bridge_ensure("kvtbr0", tag, &p1, 1450, &err), err);
	CHECK_OK(net_bridge_ensure("kvtbr0", tag, &p1, 1450, &err), err);
	CHECK(net_link_exists("kvtbr0"));
	link = test_link(sk, "kvtbr0");
	CHECK(link);
	CHECK(rtnl_link_get_flags(link) & IFF_UP);
	CHECK_EQ(rtnl_link_get_mtu(link), 1450);
	CHECK(rtnl_link_get_type(link) && streq(rtnl_link_get_type(link), "bridge"));
	CHECK(rtnl_link_get_ifalias(link) && streq(rtnl_link_get_ifalias(link), alias));
	CHECK_EQ(ipv4_addrs(sk, rtnl_link_get_ifindex(link), &got, &brd, label), 1);
	CHECK_EQ(got.addr, p1.addr);
	CHECK_EQ(got.len, 24);
	CHECK_EQ(brd, IPV4(10, 123, 45, 255));
	CHECK(streq(label, "kvtbr0"));

	/* a new prefix replaces the old address; mtu 0 keeps the mtu */
	CHECK_OK(net_bridge_ensure("kvtbr0", tag, &p2, 0, &err), err);
	CHECK_EQ(ipv4_addrs(sk, rtnl_link_get_ifindex(link), &got, NULL, NULL), 1);
	CHECK_EQ(got.addr, p2.addr);
	rtnl_link_put(link);
	link = test_link(sk, "kvtbr0");
	CHECK_EQ(rtnl_link_get_mtu(link), 1450);

	/* the host's prefixes: the bridge address, and its connected route */
	CHECK_EQ(net_host_prefixes(&pfx, &npfx), 0);
	for (size_t i = 0; i < npfx; i++) {
		printf("# host prefix %u.%u.%u.%u/%u\n", pfx[i].addr >> 24,
		       (pfx[i].addr >> 16) & 255, (pfx[i].addr >> 8) & 255, pfx[i].addr & 255,
		       pfx[i].len);
		if (pfx[i].addr == p2.addr && pfx[i].len == 24)
			seen = true;
		CHECK(pfx[i].len > 0);
	}
	CHECK(seen);
	free(pfx);

	/* tag listing */
	CHECK_EQ(net_links_tagged(tag, &names), 0);
	CHECK(names && names[0] && streq(names[0], "kvtbr0") && !names[1]);
	strv_free(names);
	CHECK_EQ(net_links_tagged("some-other-tag", &names), 0);
	CHECK(names && !names[0]);
	strv_free(names);

	/* an interface KIVA did not create is refused, and left alone */
	CHECK_EQ(rtnl_link_bridge_add(sk, "kvtplain"), 0);
	memset(&err, 0, sizeof(err));
	CHECK_EQ(net_bridge_ensure("kvtplain", tag, &p1, 0, &err), -EEXIST);
	CHECK(streq(err.msg, "Interface 'kvtplain' already exists and is not managed by KIVA"));
	CHECK_EQ(net_bridge_delete("kvtplain", tag, NULL), -EPERM);
	CHECK(net_link_exists("kvtplain"));
	/* so is a bridge of another kivad (another tag) */
	CHECK_EQ(net_bridge_ensure("kvtbr0", "another", &p1, 0, NULL), -EEXIST);

	/* forwarding: per netns, so this is the private one */
	CHECK_EQ(net_enable_forwarding(), 0);
	fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	CHECK(buf[0] == '1');

	CHECK_OK(net_bridge_delete("kvtbr0", tag, &err), err);
	CHECK(!net_link_exists("kvtbr0"));
	CHECK_OK(net_bridge_delete("kvtbr0", tag, &err), err); /* missing is success */
	CHECK_EQ(net_link_delete("kvtnothere"), 0);
	CHECK_EQ(net_link_delete("kvtplain"), 0);
	CHECK(!net_link_exists("kvtplain"));
	rtnl_link_put(link);
	nl_socket_free(sk);
}

static void test_bridge(void **state)
{
	RUN_ISOLATED(bridge_child);
}

/* ---------------- root: veth hot-plug ---------------- */

struct nic_args {
	pid_t holder;
	struct net_prefix ipv4;
	uint32_t gateway;
};

static void nic_configure_child(void *arg)
{
	struct nic_args *a = arg;
	struct kiva_error err = {0};
	char before[64] = "", after[64] = "";

	CHECK(readlink("/proc/thread-self/ns/net", before, sizeof(before) - 1) > 0);
	CHECK_OK(
		net_nic_configure_in_netns(a->holder, "kvtmp0", "eth0", &a->ipv4, a->gateway, &err),
		err);
	/* again: the temporary name is gone by now, the NIC is found by its final name */
	CHECK_OK(
		net_nic_configure_in_netns(a->holder, "kvtmp0", "eth0", &a->ipv4, a->gateway, &err),
		err);
	CHECK(readlink("/proc/thread-self/ns/net", after, sizeof(after) - 1) > 0);
	CHECK(streq(before, after)); /* back in the caller's netns */
}

static void nic_check_child(void *arg)
{
	struct nic_args *a = arg;
	struct nl_sock *sk;
	struct rtnl_link *link;
	struct nl_cache *routes = NULL;
	struct net_prefix got;
	char mac[32];
	int ndefault = 0;

	netns_enter_pid(a->holder);
	sk = test_sock();
	CHECK(!test_link(sk, "kvtmp0"));
	link = test_link(sk, "eth0");
	CHECK(link);
	CHECK(rtnl_link_get_flags(link) & IFF_UP);
	CHECK_EQ(rtnl_link_get_mtu(link), 1450);
	nl_addr2str(rtnl_link_get_addr(link), mac, sizeof(mac));
	CHECK(streq(mac, "00:16:3e:aa:bb:cc"));
	CHECK_EQ(ipv4_addrs(sk, rtnl_link_get_ifindex(link), &got, NULL, NULL), 1);
	CHECK_EQ(got.addr, a->ipv4.addr);
	CHECK_EQ(got.len, a->ipv4.len);
	CHECK_EQ(rtnl_route_alloc_cache(sk, AF_INET, 0, &routes), 0);
	for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *rt = (struct rtnl_route *)o;
		struct rtnl_nexthop *nh;

		if (rtnl_route_get_table(rt) != RT_TABLE_MAIN ||
		    nl_addr_get_prefixlen(rtnl_route_get_dst(rt)) != 0)
			continue;
		ndefault++;
		CHECK_EQ(rtnl_route_get_nnexthops(rt), 1);
		nh = rtnl_route_nexthop_n(rt, 0);
		CHECK_EQ(addr_ipv4(rtnl_route_nh_get_gateway(nh)), a->gateway);
		CHECK_EQ(rtnl_route_nh_get_ifindex(nh), rtnl_link_get_ifindex(link));
	}
	CHECK_EQ(ndefault, 1);
	nl_cache_free(routes);
	rtnl_link_put(link);
	nl_socket_free(sk);
}

static void peer_gone_child(void *arg)
{
	struct nic_args *a = arg;

	netns_enter_pid(a->holder);
	CHECK(!net_link_exists("eth0"));
	CHECK(!net_link_exists("kvtmp0"));
}

static void veth_child(void)
{
	struct nl_sock *sk = test_sock();
	struct kiva_error err = {0};
	struct nic_args a = {
		.ipv4 = {IPV4(10, 124, 0, 2), 24},
		.gateway = IPV4(10, 124, 0, 1),
	};
	struct net_prefix gw = {IPV4(10, 124, 0, 1), 24};
	struct rtnl_link *host, *br;
	char tag[32], alias[64];
	pid_t dead;

	snprintf(tag, sizeof(tag), "t%d", (int)getpid());
	snprintf(alias, sizeof(alias), "kiva:%s", tag);
	CHECK_OK(net_bridge_ensure("kvtbr1", tag, &gw, 1450, &err), err);
	a.holder = netns_holder_start();

	/* missing bridge: refused, nothing created */
	CHECK_EQ(net_veth_create_for("kv0123456789", "kvtmp0", "kvtnobr", NULL, 0, tag, a.holder,
				     &err),
		 -ENOENT);
	CHECK(!net_link_exists("kv0123456789"));
	/* a process that is gone: the kernel refuses, nothing is left behind */
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	memset(&err, 0, sizeof(err));
	CHECK(net_veth_create_for("kv0123456789", "kvtmp0", "kvtbr1", NULL, 0, tag, dead, &err) <
	      0);
	printf("# dead pid: %s\n", err.msg);
	CHECK(!net_link_exists("kv0123456789"));

	CHECK_OK(net_veth_create_for("kv0123456789", "kvtmp0", "kvtbr1", "00:16:3e:aa:bb:cc", 1450,
				     tag, a.holder, &err),
		 err);
	host = test_link(sk, "kv0123456789");
	br = test_link(sk, "kvtbr1");
	CHECK(host && br);
	CHECK(rtnl_link_get_flags(host) & IFF_UP);
	CHECK_EQ(rtnl_link_get_master(host), rtnl_link_get_ifindex(br));
	CHECK_EQ(rtnl_link_get_mtu(host), 1450);
	CHECK(rtnl_link_get_ifalias(host) && streq(rtnl_link_get_ifalias(host), alias));
	CHECK(!net_link_exists("kvtmp0")); /* created in the container's netns */
	rtnl_link_put(host);

	CHECK(run_forked(nic_configure_child, &a));
	CHECK(run_forked(nic_check_child, &a));

	/* a tagged leftover with the same name is replaced (kivad restarted mid-plug) */
	CHECK_OK(net_veth_create_for("kv0123456789", "kvtmp0", "kvtbr1", "00:16:3e:aa:bb:cc", 1450,
				     tag, a.holder, &err),
		 err);
	CHECK(run_forked(nic_configure_child, &a));
	CHECK(run_forked(nic_check_child, &a));

	/* deleting the host end removes the container end too */
	CHECK_EQ(net_link_delete("kv0123456789"), 0);
	CHECK(!net_link_exists("kv0123456789"));
	CHECK(run_forked(peer_gone_child, &a));

	netns_holder_stop(a.holder);
	rtnl_link_put(br);
	nl_socket_free(sk);
}

static void test_veth_nic(void **state)
{
	RUN_ISOLATED(veth_child);
}

/* ---------------- root: QoS objects ---------------- */

struct qos_state {
	bool root_htb; /* root qdisc 1: htb on the veth */
	uint64_t down_rate; /* class 1:1 */
	bool ingress; /* ffff: ingress qdisc */
	int redirects; /* u32 filters with mirred to the ifb */
	bool ifb; /* ifb exists, tagged, up */
	uint64_t up_rate; /* class 1:1 on the ifb */
};

static uint64_t htb_class_rate(struct nl_sock *sk, int ifindex)
{
	struct nl_cache *cache = NULL;
	struct rtnl_class *cl;
	uint64_t rate = 0, ceil = 0;

	CHECK_EQ(rtnl_class_alloc_cache(sk, ifindex, &cache), 0);
	cl = rtnl_class_get(cache, ifindex, TC_HANDLE(1, 1));
	if (cl) {
		CHECK(streq(rtnl_tc_get_kind(TC_CAST(cl)), "htb"));
		CHECK_EQ(rtnl_tc_get_parent(TC_CAST(cl)), TC_H_ROOT); /* top class of htb 1: */
		CHECK_EQ(rtnl_htb_get_rate64(cl, &rate), 0);
		CHECK_EQ(rtnl_htb_get_ceil64(cl, &ceil), 0);
		CHECK_EQ(ceil, rate);
		rtnl_class_put(cl);
	}
	nl_cache_free(cache);
	return rate;
}

static struct qos_state qos_read(struct nl_sock *sk, const char *veth, const char *ifb,
				 const char *alias)
{
	struct qos_state s = {0};
	struct nl_cache *qdiscs = NULL, *filters = NULL;
	struct rtnl_link *ifb_link = test_link(sk, ifb);
	int ifindex = (int)if_nametoindex(veth), ifb_index = 0;
	struct rtnl_qdisc *q;

	CHECK(ifindex > 0);
	if (ifb_link) {
		s.ifb = (rtnl_link_get_flags(ifb_link) & IFF_UP) &&
			rtnl_link_get_ifalias(ifb_link) &&
			streq(rtnl_link_get_ifalias(ifb_link), alias);
		ifb_index = rtnl_link_get_ifindex(ifb_link);
		rtnl_link_put(ifb_link);
	}
	CHECK_EQ(rtnl_qdisc_alloc_cache(sk, &qdiscs), 0);
	q = rtnl_qdisc_get_by_parent(qdiscs, ifindex, TC_H_ROOT);
	if (q) {
		s.root_htb = rtnl_tc_get_handle(TC_CAST(q)) == TC_HANDLE(1, 0) &&
			     streq(rtnl_tc_get_kind(TC_CAST(q)), "htb");
		rtnl_qdisc_put(q);
	}
	if (s.root_htb)
		s.down_rate = htb_class_rate(sk, ifindex);
	q = rtnl_qdisc_get_by_parent(qdiscs, ifindex, TC_H_INGRESS);
	if (q) {
		s.ingress = streq(rtnl_tc_get_kind(TC_CAST(q)), "ingress");
		rtnl_qdisc_put(q);
	}
	if (ifb_index) {
		q = rtnl_qdisc_get_by_parent(qdiscs, ifb_index, TC_H_ROOT);
		CHECK(q);
		CHECK_EQ(rtnl_tc_get_handle(TC_CAST(q)), TC_HANDLE(1, 0));
		rtnl_qdisc_put(q);
		s.up_rate = htb_class_rate(sk, ifb_index);
	}
	nl_cache_free(qdiscs);
	if (s.ingress) {
		CHECK_EQ(rtnl_cls_alloc_cache(sk, ifindex, TC_HANDLE(0xffffU, 0), &filters), 0);
		for (struct nl_object *o = nl_cache_get_first(filters); o;
		     o = nl_cache_get_next(o)) {
			struct rtnl_cls *cls = (struct rtnl_cls *)o;
			struct rtnl_act *act;

			if (!streq(rtnl_tc_get_kind(TC_CAST(cls)), "u32"))
				continue;
			act = rtnl_u32_get_action(cls);
			if (!act)
				continue; /* the u32 hash table itself */
			CHECK(streq(rtnl_tc_get_kind(TC_CAST(act)), "mirred"));
			CHECK_EQ(rtnl_mirred_get_action(act), TCA_EGRESS_REDIR);
			CHECK_EQ(rtnl_mirred_get_ifindex(act), ifb_index);
			s.redirects++;
		}
		nl_cache_free(filters);
	}
	return s;
}

static void qos_child(void)
{
	struct nl_sock *sk = test_sock();
	struct kiva_error err = {0};
	struct net_prefix gw = {IPV4(10, 126, 0, 1), 24};
	struct qos_state s;
	char tag[32], alias[64];
	pid_t holder;

	snprintf(tag, sizeof(tag), "t%d", (int)getpid());
	snprintf(alias, sizeof(alias), "kiva:%s", tag);
	CHECK_OK(net_bridge_ensure("kvtbr2", tag, &gw, 0, &err), err);
	holder = netns_holder_start();
	CHECK_OK(
		net_veth_create_for("kv00000000aa", "kvtmp0", "kvtbr2", NULL, 0, tag, holder, &err),
		err);

	CHECK_OK(net_qos_apply("kv00000000aa", 1250000, 625000, tag, &err), err);
	s = qos_read(sk, "kv00000000aa", "kvi00000000aa", alias);
	CHECK(s.root_htb && s.ingress && s.ifb);
	CHECK_EQ(s.down_rate, 1250000);
	CHECK_EQ(s.up_rate, 625000);
	CHECK_EQ(s.redirects, 1);

	/* again with other rates: updated in place, still one redirect */
	CHECK_OK(net_qos_apply("kv00000000aa", 2500000, 12500000000ULL, tag, &err), err);
	s = qos_read(sk, "kv00000000aa", "kvi00000000aa", alias);
	CHECK(s.root_htb && s.ingress && s.ifb);
	CHECK_EQ(s.down_rate, 2500000);
	CHECK_EQ(s.up_rate, 12500000000ULL); /* 100 Gbit/s: needs the 64-bit rate */
	CHECK_EQ(s.redirects, 1);

	/* 0 removes one limit, not the other */
	CHECK_OK(net_qos_apply("kv00000000aa", 0, 625000, tag, &err), err);
	s = qos_read(sk, "kv00000000aa", "kvi00000000aa", alias);
	CHECK(!s.root_htb && s.ingress && s.ifb && s.redirects == 1);
	CHECK_EQ(s.up_rate, 625000);
	CHECK_OK(net_qos_apply("kv00000000aa", 1250000, 0, tag, &err), err);
	s = qos_read(sk, "kv00000000aa", "kvi00000000aa", alias);
	CHECK(s.root_htb && !s.ingress && !s.ifb);
	CHECK_EQ(s.down_rate, 1250000);
	CHECK(!net_link_exists("kvi00000000aa"));

	CHECK_OK(net_qos_apply("kv00000000aa", 1250000, 625000, tag, &err), err);
	CHECK_EQ(net_qos_clear("kv00000000aa"), 0);
	s = qos_read(sk, "kv00000000aa", "kvi00000000aa", alias);
	CHECK(!s.root_htb && !s.ingress && !s.ifb && s.redirects == 0);
	CHECK(!net_link_exists("kvi00000000aa"));
	CHECK_EQ(net_qos_clear("kv00000000aa"), 0); /* idempotent */

	/* an ifb name taken by something that is not ours */
	{
		struct rtnl_link *l = rtnl_link_alloc();

		rtnl_link_set_name(l, "kvi00000000aa");
		CHECK_EQ(rtnl_link_set_type(l, "ifb"), 0);
		CHECK_EQ(rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL), 0);
		rtnl_link_put(l);
		memset(&err, 0, sizeof(err));
		CHECK_EQ(net_qos_apply("kv00000000aa", 0, 625000, tag, &err), -EEXIST);
		CHECK(strstr(err.msg, "not managed by KIVA"));
		CHECK_EQ(net_link_delete("kvi00000000aa"), 0);
	}

	memset(&err, 0, sizeof(err));
	CHECK_EQ(net_qos_apply("kvtnothere", 1250000, 0, tag, &err), -ENOENT);
	CHECK(strstr(err.msg, "kvtnothere"));

	netns_holder_stop(holder);
	nl_socket_free(sk);
}

static void test_qos(void **state)
{
	RUN_ISOLATED(qos_child);
}

/* ---------------- root: VLAN on this kernel ---------------- */

static void vlan_child(void)
{
	struct kiva_error err = {0};
	struct net_prefix none = {0, 0};
	const unsigned tagged[] = {20, 30};
	char tag[32];
	pid_t holder;
	int r;

	snprintf(tag, sizeof(tag), "t%d", (int)getpid());
	CHECK_OK(net_bridge_ensure("kvtbr4", tag, &none, 0, &err), err);
	holder = netns_holder_start();
	CHECK_OK(
		net_veth_create_for("kv00000000bb", "kvtmp0", "kvtbr4", NULL, 0, tag, holder, &err),
		err);
	CHECK_EQ(net_vlan_apply("kvtbr4", "kvtnothere", 10, NULL, 0, NULL), -ENOENT);
	/* tagged only (vid 0): validated, then refused the same way by this kernel */
	r = net_vlan_apply("kvtbr4", "kv00000000bb", 0, tagged, ARRAY_SIZE(tagged), &err);
	CHECK(r == -EOPNOTSUPP || r == 0);
	memset(&err, 0, sizeof(err));
	r = net_vlan_apply("kvtbr4", "kv00000000bb", 10, tagged, ARRAY_SIZE(tagged), &err);
	if (r == -EOPNOTSUPP) {
		CHECK(streq(err.msg, "VLAN filtering is not supported by this kernel (needs "
				     "CONFIG_BRIDGE_VLAN_FILTERING / 802.1Q)"));
		printf("# SKIP VLAN traffic: kernel lacks 802.1Q\n");
	} else {
		CHECK_OK(r, err);
		printf("# VLAN filtering applied (this kernel has 802.1Q)\n");
	}
	netns_holder_stop(holder);
}

static void test_vlan_apply(void **state)
{
	RUN_ISOLATED(vlan_child);
}

/* ---------------- root + iperf3: the limits, measured ---------------- */

struct iperf_args {
	pid_t netns;
	const char *const *argv;
};

static void exec_in_netns(void *arg)
{
	struct iperf_args *a = arg;
	int devnull = open("/dev/null", O_RDWR);

	if (a->netns > 0)
		netns_enter_pid(a->netns);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	dup2(devnull, STDIN_FILENO);
	dup2(devnull, STDOUT_FILENO);
	dup2(devnull, STDERR_FILENO);
	execvp(a->argv[0], (char *const *)a->argv);
	_exit(127);
}

/* Runs an iperf3 client (2 s, JSON) in the current netns; returns the receiver's bit/s. */
static double iperf_client(const char *server, bool reverse)
{
	const char *argv[] = {"iperf3", "-c", server, "-t", "2", "-J", reverse ? "-R" : NULL, NULL};
	char buf[65536];
	size_t len = 0;
	double bps = -1;
	int fds[2], status;
	json_t *root, *v;
	ssize_t n;
	pid_t pid;

	for (int attempt = 0; attempt < 20 && bps < 0; attempt++) {
		CHECK(pipe(fds) == 0);
		fflush(stdout);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			int devnull = open("/dev/null", O_RDWR);

			dup2(fds[1], STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
			close(fds[0]);
			execvp(argv[0], (char *const *)argv);
			_exit(127);
		}
		close(fds[1]);
		len = 0;
		while ((n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)n;
		close(fds[0]);
		buf[len] = '\0';
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			usleep(100 * 1000); /* server not listening yet */
			continue;
		}
		root = json_loads(buf, 0, NULL);
		CHECK(root);
		if (json_object_get(root, "error")) { /* iperf3 -J exits 0 on some errors */
			json_decref(root);
			usleep(100 * 1000);
			continue;
		}
		v = json_object_get(json_object_get(json_object_get(root, "end"), "sum_received"),
				    "bits_per_second");
		if (!json_is_number(v))
			child_fail(__FILE__, __LINE__, "iperf3 output: %.2000s", buf);
		bps = json_number_value(v);
		json_decref(root);
	}
	CHECK(bps >= 0);
	return bps;
}

static bool have_iperf3(void)
{
	return access("/usr/bin/iperf3", X_OK) == 0 || access("/usr/local/bin/iperf3", X_OK) == 0;
}

static void traffic_child(void)
{
	const uint64_t down = 2500000, up = 1250000; /* 20 and 10 Mbit/s */
	const char *const server_argv[] = {"iperf3", "-s", "-B", "10.127.0.2", NULL};
	struct kiva_error err = {0};
	struct net_prefix gw = {IPV4(10, 127, 0, 1), 24};
	struct nic_args a = {.ipv4 = {IPV4(10, 127, 0, 2), 24}, .gateway = IPV4(10, 127, 0, 1)};
	struct iperf_args srv = {.argv = server_argv};
	double bps_down, bps_up;
	char tag[32];
	pid_t server;

	snprintf(tag, sizeof(tag), "t%d", (int)getpid());
	CHECK_OK(net_bridge_ensure("kvtbr3", tag, &gw, 0, &err), err);
	a.holder = netns_holder_start();
	CHECK_OK(net_veth_create_for("kv00000000cc", "kvtmp0", "kvtbr3", NULL, 0, tag, a.holder,
				     &err),
		 err);
	CHECK(run_forked(nic_configure_child, &a));
	CHECK_OK(net_qos_apply("kv00000000cc", down, up, tag, &err), err);

	srv.netns = a.holder;
	fflush(stdout);
	server = fork();
	CHECK(server >= 0);
	if (server == 0)
		exec_in_netns(&srv);

	bps_down = iperf_client("10.127.0.2", false); /* host → container: container download */
	bps_up = iperf_client("10.127.0.2", true); /* container → host: container upload */
	printf("# QoS download: limit %.1f Mbit/s, measured %.2f Mbit/s (%+.1f%%)\n",
	       down * 8 / 1e6, bps_down / 1e6, (bps_down / (down * 8.0) - 1) * 100);
	printf("# QoS upload:   limit %.1f Mbit/s, measured %.2f Mbit/s (%+.1f%%)\n", up * 8 / 1e6,
	       bps_up / 1e6, (bps_up / (up * 8.0) - 1) * 100);
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	netns_holder_stop(a.holder);
	CHECK(bps_down >= down * 8 * 0.9 && bps_down <= down * 8 * 1.1);
	CHECK(bps_up >= up * 8 * 0.9 && bps_up <= up * 8 * 1.1);
}

static void test_qos_traffic(void **state)
{
	if (!have_iperf3())
		SKIP_TEST("iperf3 is not installed");
	RUN_ISOLATED(traffic_child);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vlan_build_port), cmocka_unit_test(test_vlan_build_filtering),
		cmocka_unit_test(test_name_checks),	cmocka_unit_test(test_bridge),
		cmocka_unit_test(test_veth_nic),	cmocka_unit_test(test_qos),
		cmocka_unit_test(test_vlan_apply),	cmocka_unit_test(test_qos_traffic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
