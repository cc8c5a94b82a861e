/* Links, addresses, routes, tc shaping and bridge VLANs through libnl-route-3: the only file of
 * KIVA that includes libnl headers (STYLE.md). Every operation opens its own short-lived
 * NETLINK_ROUTE socket in the calling thread's current network namespace, so callers can run
 * inside another netns simply by entering it first (net_nic_configure_in_netns does so itself).
 * libnl's error codes (NLE_*) are translated once, here, into -errno plus a message.
 *
 * Shapes, per NIC host veth "kvXXXXXXXXXX":
 *   download (ingress limit): root qdisc htb 1: default 1, class 1:1 rate = ceil = limit;
 *   upload (egress limit):    ingress qdisc ffff: on the veth, u32 filter prio 1 "match u32 0 0"
 *                             with action mirred egress redirect to ifb "kviXXXXXXXXXX" (tagged
 *                             like our bridges), which carries the same htb 1: / 1:1 shape.
 * act_police/act_gact/cls_flower are not in the target kernel; u32, mirred, ifb and htb are. HTB
 * rather than TBF: libnl 3.7's TBF takes an int rate (no 64-bit rates) and its class object
 * aborts readers (feasibility §8). Rates are bytes per second of L2 frames, so TCP goodput
 * reads about 4.5% below the limit at MTU 1500 (headers). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_bridge.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/addr.h>
#include <netlink/route/class.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <netlink/socket.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "net.h"

#define TAG_PREFIX "kiva:"
#define QOS_HANDLE TC_HANDLE(1, 0)
#define QOS_CLASS TC_HANDLE(1, 1)
#define QOS_INGRESS TC_HANDLE(0xffffU, 0)
#define QOS_FILTER_PRIO 1
#define IFB_TXQLEN 1000

DEFINE_CLEANUP_FUNC(struct nl_sock *, nl_socket_free)
DEFINE_CLEANUP_FUNC(struct nl_cache *, nl_cache_free)
DEFINE_CLEANUP_FUNC(struct nl_addr *, nl_addr_put)
DEFINE_CLEANUP_FUNC(struct nl_msg *, nlmsg_free)
DEFINE_CLEANUP_FUNC(struct rtnl_link *, rtnl_link_put)
DEFINE_CLEANUP_FUNC(struct rtnl_addr *, rtnl_addr_put)
DEFINE_CLEANUP_FUNC(struct rtnl_route *, rtnl_route_put)
DEFINE_CLEANUP_FUNC(struct rtnl_qdisc *, rtnl_qdisc_put)
DEFINE_CLEANUP_FUNC(struct rtnl_class *, rtnl_class_put)
DEFINE_CLEANUP_FUNC(struct rtnl_cls *, rtnl_cls_put)
DEFINE_CLEANUP_FUNC(struct rtnl_act *, rtnl_act_put)

#define cleanup_sock __attribute__((cleanup(nl_socket_freep)))
#define cleanup_cache __attribute__((cleanup(nl_cache_freep)))
#define cleanup_nladdr __attribute__((cleanup(nl_addr_putp)))
#define cleanup_msg __attribute__((cleanup(nlmsg_freep)))
#define cleanup_link __attribute__((cleanup(rtnl_link_putp)))
#define cleanup_addr __attribute__((cleanup(rtnl_addr_putp)))
#define cleanup_route __attribute__((cleanup(rtnl_route_putp)))
#define cleanup_qdisc __attribute__((cleanup(rtnl_qdisc_putp)))
#define cleanup_class __attribute__((cleanup(rtnl_class_putp)))
#define cleanup_cls __attribute__((cleanup(rtnl_cls_putp)))
#define cleanup_act __attribute__((cleanup(rtnl_act_putp)))

/* libnl folds kernel errnos into NLE_* codes (nl_syserr2nlerr); this is the way back. The fold
 * is lossy: errnos libnl does not know became NLE_FAILURE and come back as -EIO. */
static int nlerr_to_errno(int nlerr)
{
	if (nlerr >= 0)
		return 0;
	switch (-nlerr) {
	case NLE_INTR:
		return -EINTR;
	case NLE_BAD_SOCK:
		return -EBADF;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_INVAL:
	case NLE_MISSING_ATTR:
	case NLE_IMMUTABLE:
		return -EINVAL;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_MSGSIZE:
		return -EMSGSIZE;
	case NLE_OPNOTSUPP:
	case NLE_MSGTYPE_NOSUPPORT:
		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_PROTO_MISMATCH:
		return -EPROTONOSUPPORT;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_PERM:
		return -EPERM;
	case NLE_NODEV:
		return -ENODEV;
	default:
		return -EIO;
	}
}

static bool nlerr_is_missing(int nlerr)
{
	return nlerr == -NLE_OBJ_NOTFOUND || nlerr == -NLE_NODEV;
}

/* Kernel rule (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or white space. */
static int ifname_check(const char *name, struct kiva_error *reterr)
{
	if (!name || !*name)
		return kiva_error_set(reterr, -EINVAL, "Interface name is empty");
	if (strlen(name) >= IFNAMSIZ)
		return kiva_error_set(
			reterr, -EINVAL,
			"Interface name '%s' is too long (%zu characters, at most %d)", name,
			strlen(name), IFNAMSIZ - 1);
	if (streq(name, ".") || streq(name, "..") || strpbrk(name, "/: \t\n\r\v\f"))
		return kiva_error_set(reterr, -EINVAL, "Invalid interface name '%s'", name);
	return 0;
}

static int tag_alias(const char *tag, char buf[static 256], struct kiva_error *reterr)
{
	if (!tag || !*tag)
		return kiva_error_set(reterr, -EINVAL, "Missing KIVA interface tag");
	if ((size_t)snprintf(buf, 256, TAG_PREFIX "%s", tag) >= 256)
		return kiva_error_set(reterr, -EINVAL, "KIVA interface tag '%s' is too long", tag);
	return 0;
}

static bool link_has_alias(struct rtnl_link *link, const char *alias)
{
	const char *a = rtnl_link_get_ifalias(link);

	return a && streq(a, alias);
}

static int sock_open(struct nl_sock **ret)
{
	cleanup_sock struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk)
		return -ENOMEM;
	r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0)
		return nlerr_to_errno(r);
	*ret = TAKE_PTR(sk);
	return 0;
}

#define SOCK_OR_RETURN(sk, reterr)                                                                 \
	do {                                                                                       \
		int _r = sock_open(&(sk));                                                         \
		if (_r < 0)                                                                        \
			return kiva_error_set(reterr, _r, "Failed to open a netlink socket: %s",   \
					      strerror(-_r));                                      \
	} while (0)

/* *ret NULL (and 0) when the interface does not exist. */
static int link_get(struct nl_sock *sk, const char *name, struct rtnl_link **ret)
{
	struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, &link);

	if (r < 0) {
		*ret = NULL;
		return nlerr_is_missing(r) ? 0 : nlerr_to_errno(r);
	}
	*ret = link;
	return 0;
}

/* Deletes interface `name`; missing is success. */
static int link_delete_name(struct nl_sock *sk, const char *name)
{
	cleanup_link struct rtnl_link *link = rtnl_link_alloc();
	int r;

	if (!link)
		return -ENOMEM;
	rtnl_link_set_name(link, name);
	r = rtnl_link_delete(sk, link);
	if (r < 0 && !nlerr_is_missing(r))
		return nlerr_to_errno(r);
	return 0;
}

/* Applies changes (name, flags, mtu, ifalias, master…) to the existing link orig. */
static int link_change(struct nl_sock *sk, struct rtnl_link *orig, struct rtnl_link *changes)
{
	return nlerr_to_errno(rtnl_link_change(sk, orig, changes, 0));
}

/* Tags link with KIVA's alias and brings it up (the kernel ignores ifalias at creation, so this
 * is a follow-up change). what/name only word the error. */
static int link_tag_up(struct nl_sock *sk, struct rtnl_link *link, const char *alias,
		       const char *what, const char *name, struct kiva_error *reterr)
{
	cleanup_link struct rtnl_link *changes = rtnl_link_alloc();
	int r;

	if (!changes)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	rtnl_link_set_ifalias(changes, alias);
	rtnl_link_set_flags(changes, IFF_UP);
	r = link_change(sk, link, changes);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to bring up %s '%s': %s", what, name,
				      strerror(-r));
	return 0;
}

static uint32_t prefix_mask(uint8_t len)
{
	return len == 0 ? 0 : len >= 32 ? UINT32_MAX : UINT32_MAX << (32 - len);
}

static struct nl_addr *nladdr_ipv4(uint32_t addr, uint8_t len)
{
	uint32_t be = htonl(addr);
	struct nl_addr *a = nl_addr_build(AF_INET, &be, sizeof(be));

	if (a)
		nl_addr_set_prefixlen(a, len);
	return a;
}

static uint32_t nladdr_to_ipv4(struct nl_addr *a)
{
	uint32_t be = 0;

	if (a && nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == sizeof(be))
		memcpy(&be, nl_addr_get_binary_addr(a), sizeof(be));
	return ntohl(be);
}

/* Adds (or replaces) IPv4 address p on ifindex, with broadcast and label as `ip addr add
 * A/N brd + dev X` sets them. */
static int addr_add(struct nl_sock *sk, int ifindex, const char *label, const struct net_prefix *p)
{
	cleanup_addr struct rtnl_addr *addr = rtnl_addr_alloc();
	cleanup_nladdr struct nl_addr *local = nladdr_ipv4(p->addr, p->len);
	int r;

	if (!addr || !local)
		return -ENOMEM;
	rtnl_addr_set_ifindex(addr, ifindex);
	rtnl_addr_set_family(addr, AF_INET);
	r = rtnl_addr_set_local(addr, local);
	if (r < 0)
		return nlerr_to_errno(r);
	rtnl_addr_set_prefixlen(addr, p->len);
	if (p->len < 31) {
		cleanup_nladdr struct nl_addr *brd =
			nladdr_ipv4(p->addr | ~prefix_mask(p->len), 32);

		if (!brd)
			return -ENOMEM;
		r = rtnl_addr_set_broadcast(addr, brd);
		if (r < 0)
			return nlerr_to_errno(r);
	}
	if (label) {
		r = rtnl_addr_set_label(addr, label);
		if (r < 0)
			return nlerr_to_errno(r);
	}
	return nlerr_to_errno(rtnl_addr_add(sk, addr, NLM_F_REPLACE));
}

/* Makes want (len 0: none) the only IPv4 address of ifindex. */
static int addr_sync(struct nl_sock *sk, int ifindex, const char *label,
		     const struct net_prefix *want)
{
	cleanup_cache struct nl_cache *cache = NULL;
	bool present = false;
	int r;

	r = rtnl_addr_alloc_cache(sk, &cache);
	if (r < 0)
		return nlerr_to_errno(r);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		struct nl_addr *local = rtnl_addr_get_local(a);

		if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET)
			continue;
		if (want && want->len > 0 && nladdr_to_ipv4(local) == want->addr &&
		    rtnl_addr_get_prefixlen(a) == want->len) {
			present = true;
			continue;
		}
		r = rtnl_addr_delete(sk, a, 0);
		if (r < 0 && !nlerr_is_missing(r) && r != -NLE_NOADDR)
			return nlerr_to_errno(r);
	}
	if (!present && want && want->len > 0)
		return addr_add(sk, ifindex, label, want);
	return 0;
}

int net_bridge_ensure(const char *name, const char *tag, const struct net_prefix *ipv4,
		      unsigned mtu, struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_link struct rtnl_link *link = NULL;
	cleanup_link struct rtnl_link *changes = NULL;
	char alias[256];
	bool created = false;
	int ifindex, r;

	r = ifname_check(name, reterr);
	if (r < 0)
		return r;
	r = tag_alias(tag, alias, reterr);
	if (r < 0)
		return r;
	if (ipv4 && ipv4->len > 32)
		return kiva_error_set(reterr, -EINVAL, "Invalid IPv4 prefix length %u",
				      (unsigned)ipv4->len);
	SOCK_OR_RETURN(sk, reterr);

	r = link_get(sk, name, &link);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to look up interface '%s': %s", name,
				      strerror(-r));
	if (link) {
		const char *type = rtnl_link_get_type(link);

		if (!link_has_alias(link, alias))
			return kiva_error_set(
				reterr, -EEXIST,
				"Interface '%s' already exists and is not managed by KIVA", name);
		if (!type || !streq(type, "bridge"))
			return kiva_error_set(
				reterr, -EEXIST,
				"Interface '%s' is managed by KIVA but is not a bridge", name);
	} else {
		cleanup_link struct rtnl_link *br = rtnl_link_bridge_alloc();

		if (!br)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		rtnl_link_set_name(br, name);
		if (mtu > 0)
			rtnl_link_set_mtu(br, mtu);
		r = nlerr_to_errno(rtnl_link_add(sk, br, NLM_F_CREATE | NLM_F_EXCL));
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to create bridge '%s': %s", name,
					      strerror(-r));
		created = true;
		r = link_get(sk, name, &link);
		if (r >= 0 && !link)
			r = -ENODEV;
		if (r < 0) {
			kiva_error_set(reterr, r, "Failed to read back bridge '%s': %s", name,
				       strerror(-r));
			goto rollback;
		}
	}
	ifindex = rtnl_link_get_ifindex(link);

	/* The kernel ignores IFLA_IFALIAS on RTM_NEWLINK creation: alias, mtu and up are one
	 * change on the existing link. */
	changes = rtnl_link_alloc();
	if (!changes) {
		r = kiva_error_set(reterr, -ENOMEM, "Out of memory");
		goto rollback;
	}
	rtnl_link_set_ifalias(changes, alias);
	if (mtu > 0 && rtnl_link_get_mtu(link) != mtu)
		rtnl_link_set_mtu(changes, mtu);
	rtnl_link_set_flags(changes, IFF_UP);
	r = link_change(sk, link, changes);
	if (r < 0) {
		kiva_error_set(reterr, r, "Failed to configure bridge '%s': %s", name,
			       strerror(-r));
		goto rollback;
	}

	r = addr_sync(sk, ifindex, name, ipv4);
	if (r < 0) {
		char buf[INET_ADDRSTRLEN] = "";
		uint32_t be = htonl(ipv4 ? ipv4->addr : 0);

		inet_ntop(AF_INET, &be, buf, sizeof(buf));
		kiva_error_set(reterr, r, "Failed to set address %s/%u on bridge '%s': %s", buf,
			       ipv4 ? (unsigned)ipv4->len : 0, name, strerror(-r));
		goto rollback;
	}
	return 0;

rollback:
	if (created)
		(void)link_delete_name(sk, name);
	return r;
}

int net_bridge_delete(const char *name, const char *tag, struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_link struct rtnl_link *link = NULL;
	char alias[256];
	int r;

	r = ifname_check(name, reterr);
	if (r < 0)
		return r;
	r = tag_alias(tag, alias, reterr);
	if (r < 0)
		return r;
	SOCK_OR_RETURN(sk, reterr);
	r = link_get(sk, name, &link);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to look up interface '%s': %s", name,
				      strerror(-r));
	if (!link)
		return 0;
	if (!link_has_alias(link, alias))
		return kiva_error_set(reterr, -EPERM, "Interface '%s' is not managed by KIVA",
				      name);
	r = nlerr_to_errno(rtnl_link_delete(sk, link));
	if (r < 0 && r != -ENOENT && r != -ENODEV)
		return kiva_error_set(reterr, r, "Failed to delete bridge '%s': %s", name,
				      strerror(-r));
	return 0;
}

int net_links_tagged(const char *tag, char ***ret_names)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_cache struct nl_cache *cache = NULL;
	cleanup_strv char **names = NULL;
	char alias[256];
	int r;

	r = tag_alias(tag, alias, NULL);
	if (r < 0)
		return r;
	r = sock_open(&sk);
	if (r < 0)
		return r;
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return nlerr_to_errno(r);
	names = calloc(1, sizeof(char *));
	if (!names)
		return -ENOMEM;
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *link = (struct rtnl_link *)o;

		if (!link_has_alias(link, alias))
			continue;
		r = strv_push(&names, strdup(rtnl_link_get_name(link)));
		if (r < 0)
			return r;
	}
	*ret_names = TAKE_PTR(names);
	return 0;
}

int net_link_delete(const char *name)
{
	cleanup_sock struct nl_sock *sk = NULL;
	int r;

	r = ifname_check(name, NULL);
	if (r < 0)
		return r;
	r = sock_open(&sk);
	if (r < 0)
		return r;
	return link_delete_name(sk, name);
}

bool net_link_exists(const char *name)
{
	return ifname_check(name, NULL) >= 0 && if_nametoindex(name) > 0;
}

static int prefixes_push(struct net_prefix **v, size_t *n, uint32_t addr, uint8_t len)
{
	struct net_prefix *nv;

	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].addr == addr && (*v)[i].len == len)
			return 0;
	nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	nv[*n] = (struct net_prefix){.addr = addr, .len = len};
	*v = nv;
	(*n)++;
	return 0;
}

int net_host_prefixes(struct net_prefix **ret, size_t *ret_n)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_cache struct nl_cache *addrs = NULL;
	cleanup_cache struct nl_cache *routes = NULL;
	cleanup_free struct net_prefix *v = NULL;
	size_t n = 0;
	int r;

	r = sock_open(&sk);
	if (r < 0)
		return r;
	r = rtnl_addr_alloc_cache(sk, &addrs);
	if (r < 0)
		return nlerr_to_errno(r);
	for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		if (rtnl_addr_get_family(a) != AF_INET)
			continue;
		r = prefixes_push(&v, &n, nladdr_to_ipv4(rtnl_addr_get_local(a)),
				  (uint8_t)rtnl_addr_get_prefixlen(a));
		if (r < 0)
			return r;
	}
	r = rtnl_route_alloc_cache(sk, AF_INET, 0, &routes);
	if (r < 0)
		return nlerr_to_errno(r);
	for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *rt = (struct rtnl_route *)o;
		struct nl_addr *dst = rtnl_route_get_dst(rt);
		uint8_t len;

		/* local/broadcast/multicast entries restate the addresses above */
		switch (rtnl_route_get_type(rt)) {
		case RTN_LOCAL:
		case RTN_BROADCAST:
		case RTN_MULTICAST:
		case RTN_ANYCAST:
			continue;
		}
		if (!dst || rtnl_route_get_family(rt) != AF_INET)
			continue;
		len = (uint8_t)nl_addr_get_prefixlen(dst);
		if (len == 0)
			continue; /* default route */
		r = prefixes_push(&v, &n, nladdr_to_ipv4(dst) & prefix_mask(len), len);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

static int write_sysctl(const char *path, const char *value)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(value);

	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		return errno > 0 ? -errno : -EIO;
	return 0;
}

int net_enable_forwarding(void)
{
	int r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");

	if (r < 0)
		return r;
	return write_sysctl("/proc/sys/net/ipv4/conf/all/forwarding", "1");
}

int net_bridge_set_nf_call(const char *bridge, bool on)
{
	char path[96], cur[8] = "";
	int fd;
	ssize_t n;

	if (ifname_check(bridge, NULL) < 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge/nf_call_iptables", bridge);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, cur, sizeof(cur) - 1);
	close(fd);
	if (n > 0 && (cur[0] == '1') == on)
		return 0; /* already so: no write */
	return write_sysctl(path, on ? "1" : "0");
}

int net_veth_create_for(const char *host_ifname, const char *peer_tmp, const char *bridge,
			const char *hwaddr, unsigned mtu, const char *tag, int pid,
			struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_link struct rtnl_link *br = NULL;
	cleanup_link struct rtnl_link *old = NULL;
	cleanup_link struct rtnl_link *veth = NULL;
	cleanup_link struct rtnl_link *peer = NULL;
	cleanup_link struct rtnl_link *host = NULL;
	cleanup_nladdr struct nl_addr *mac = NULL;
	char alias[256];
	int r;

	r = ifname_check(host_ifname, reterr);
	if (r < 0)
		return r;
	r = ifname_check(peer_tmp, reterr);
	if (r < 0)
		return r;
	r = ifname_check(bridge, reterr);
	if (r < 0)
		return r;
	r = tag_alias(tag, alias, reterr);
	if (r < 0)
		return r;
	if (pid <= 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid process id %d", pid);
	if (hwaddr && *hwaddr) {
		r = nl_addr_parse(hwaddr, AF_LLC, &mac);
		if (r < 0 || nl_addr_get_len(mac) != ETH_ALEN)
			return kiva_error_set(reterr, -EINVAL, "Invalid MAC address '%s'", hwaddr);
	}
	SOCK_OR_RETURN(sk, reterr);

	r = link_get(sk, bridge, &br);
	if (r >= 0 && !br)
		r = -ENOENT;
	if (r < 0)
		return kiva_error_set(reterr, r, "Bridge '%s' is not available: %s", bridge,
				      strerror(-r));

	/* host_ifname is derived from (kivad, instance, nic): a tagged leftover of an earlier
	 * run (crash between create and delete) is ours to replace. */
	r = link_get(sk, host_ifname, &old);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to look up interface '%s': %s",
				      host_ifname, strerror(-r));
	if (old) {
		if (!link_has_alias(old, alias))
			return kiva_error_set(
				reterr, -EEXIST,
				"Interface '%s' already exists and is not managed by KIVA",
				host_ifname);
		r = nlerr_to_errno(rtnl_link_delete(sk, old));
		if (r < 0 && r != -ENOENT && r != -ENODEV)
			return kiva_error_set(reterr, r,
					      "Failed to delete stale interface '%s': %s",
					      host_ifname, strerror(-r));
	}

	veth = rtnl_link_veth_alloc();
	if (!veth)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	peer = rtnl_link_veth_get_peer(veth);
	rtnl_link_set_name(veth, host_ifname);
	rtnl_link_set_master(veth, rtnl_link_get_ifindex(br));
	if (mtu > 0)
		rtnl_link_set_mtu(veth, mtu);
	rtnl_link_set_name(peer, peer_tmp);
	if (mtu > 0)
		rtnl_link_set_mtu(peer, mtu);
	if (mac)
		rtnl_link_set_addr(peer, mac);
	/* The peer is created directly in the target netns (IFLA_NET_NS_PID inside VETH_INFO_PEER),
	 * so its temporary name never shows up on the host. */
	rtnl_link_set_ns_pid(peer, pid);
	r = nlerr_to_errno(rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL));
	if (r == -EEXIST)
		return kiva_error_set(reterr, r,
				      "Failed to create veth '%s': '%s' or '%s' already exists",
				      host_ifname, host_ifname, peer_tmp);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create veth '%s' into process %d: %s",
				      host_ifname, pid, strerror(-r));

	r = link_get(sk, host_ifname, &host);
	if (r >= 0 && !host)
		r = -ENODEV;
	if (r < 0) {
		kiva_error_set(reterr, r, "Failed to read back veth '%s': %s", host_ifname,
			       strerror(-r));
		goto rollback;
	}
	r = link_tag_up(sk, host, alias, "veth", host_ifname, reterr);
	if (r < 0)
		goto rollback;
	return 0;

rollback:
	(void)link_delete_name(sk, host_ifname);
	return r;
}

/* Enters the netns of pid for the calling thread; *ret_orig is the netns to return to. */
static int netns_enter(int pid, int *ret_orig, struct kiva_error *reterr)
{
	cleanup_close int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	cleanup_close int target = -EBADF;
	char path[64];

	if (orig < 0)
		return kiva_error_set(reterr, -errno, "Failed to open own network namespace: %m");
	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0)
		return kiva_error_set(reterr, -errno,
				      "Failed to open the network namespace of process %d: %m",
				      pid);
	if (setns(target, CLONE_NEWNET) < 0)
		return kiva_error_set(reterr, -errno,
				      "Failed to enter the network namespace of process %d: %m",
				      pid);
	*ret_orig = TAKE_FD(orig);
	return 0;
}

static int nic_configure(const char *ifname_tmp, const char *name, const struct net_prefix *ipv4,
			 uint32_t gateway, struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_link struct rtnl_link *link = NULL;
	cleanup_link struct rtnl_link *rename_to = NULL;
	cleanup_link struct rtnl_link *up = NULL;
	int ifindex, r;

	SOCK_OR_RETURN(sk, reterr);
	r = link_get(sk, ifname_tmp, &link);
	if (r >= 0 && !link)
		r = link_get(sk, name, &link); /* a retry after the rename */
	if (r >= 0 && !link)
		r = -ENODEV;
	if (r < 0)
		return kiva_error_set(reterr, r, "Interface '%s' not found in the container: %s",
				      ifname_tmp, strerror(-r));
	ifindex = rtnl_link_get_ifindex(link);

	if (!streq(rtnl_link_get_name(link), name)) {
		rename_to = rtnl_link_alloc();
		if (!rename_to)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		rtnl_link_set_name(rename_to, name);
		r = link_change(sk, link, rename_to);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to rename '%s' to '%s': %s",
					      ifname_tmp, name,
					      r == -EEXIST ? "the name is taken" : strerror(-r));
		rtnl_link_put(link);
		link = NULL;
		r = link_get(sk, name, &link);
		if (r >= 0 && !link)
			r = -ENODEV;
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to read back '%s': %s", name,
					      strerror(-r));
	}

	if (ipv4 && ipv4->len > 0) {
		r = addr_sync(sk, ifindex, name, ipv4);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to set the address of '%s': %s",
					      name, strerror(-r));
	}

	up = rtnl_link_alloc();
	if (!up)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	rtnl_link_set_flags(up, IFF_UP);
	r = link_change(sk, link, up);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to bring up '%s': %s", name, strerror(-r));

	if (gateway != 0) {
		cleanup_route struct rtnl_route *route = rtnl_route_alloc();
		cleanup_nladdr struct nl_addr *dst = nladdr_ipv4(0, 0);
		cleanup_nladdr struct nl_addr *gw = nladdr_ipv4(gateway, 32);
		struct rtnl_nexthop *nh = rtnl_route_nh_alloc();

		if (!route || !dst || !gw || !nh) {
			if (nh)
				rtnl_route_nh_free(nh);
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		}
		rtnl_route_set_family(route, AF_INET);
		rtnl_route_set_table(route, RT_TABLE_MAIN);
		rtnl_route_set_scope(route, RT_SCOPE_UNIVERSE);
		rtnl_route_set_type(route, RTN_UNICAST);
		rtnl_route_set_protocol(route, RTPROT_STATIC);
		r = rtnl_route_set_dst(route, dst);
		if (r < 0)
			r = nlerr_to_errno(r);
		rtnl_route_nh_set_gateway(nh, gw);
		rtnl_route_nh_set_ifindex(nh, ifindex);
		rtnl_route_add_nexthop(route, nh); /* route owns nh now */
		if (r >= 0)
			r = nlerr_to_errno(rtnl_route_add(sk, route, NLM_F_REPLACE));
		if (r < 0) {
			char buf[INET_ADDRSTRLEN] = "";
			uint32_t be = htonl(gateway);

			inet_ntop(AF_INET, &be, buf, sizeof(buf));
			return kiva_error_set(reterr, r,
					      "Failed to add the default route via %s: %s", buf,
					      strerror(-r));
		}
	}
	return 0;
}

/* Changes process state: setns(CLONE_NEWNET) moves the calling thread into the netns of pid for
 * the duration of the call and back to its own netns before returning (if that last step fails,
 * the error says so and the thread stays in the container's netns: the caller must then exit).
 * The netlink socket is opened after the setns, since a socket stays bound to the netns it was
 * created in. Needs CAP_SYS_ADMIN (setns) and CAP_NET_ADMIN over the target netns. Meant for
 * kiva-helper, a short-lived single-threaded process; never kivad's loop thread. */
int net_nic_configure_in_netns(int pid, const char *ifname_tmp, const char *name,
			       const struct net_prefix *ipv4, uint32_t gateway,
			       struct kiva_error *reterr)
{
	cleanup_close int orig = -EBADF;
	int r, q;

	r = ifname_check(ifname_tmp, reterr);
	if (r < 0)
		return r;
	r = ifname_check(name, reterr);
	if (r < 0)
		return r;
	if (ipv4 && ipv4->len > 32)
		return kiva_error_set(reterr, -EINVAL, "Invalid IPv4 prefix length %u",
				      (unsigned)ipv4->len);
	if (pid <= 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid process id %d", pid);
	r = netns_enter(pid, &orig, reterr);
	if (r < 0)
		return r;
	r = nic_configure(ifname_tmp, name, ipv4, gateway, reterr);
	if (setns(orig, CLONE_NEWNET) < 0) {
		q = -errno;
		if (r >= 0)
			r = kiva_error_set(
				reterr, q,
				"Failed to return to the original network namespace: %m");
	}
	return r;
}

/* ---------------- QoS ---------------- */

/* "kv0123456789" → "kvi0123456789": the ifb that carries the upload shape of that veth. */
static void ifb_name(const char *host_ifname, char buf[static IFNAMSIZ])
{
	const char *s = startswith(host_ifname, "kv") ? host_ifname + 2 : host_ifname;
	size_t n = strlen(s);

	if (n > 10)
		s += n - 10;
	snprintf(buf, IFNAMSIZ, "kvi%s", s);
}

/* Burst of the HTB buckets: 10 ms at the rate, at least 16 KiB, at most 16 MiB. Measured with
 * iperf3 (2 s) from 1 Mbit/s to 5 Gbit/s: goodput 2-4% under the limit (the TCP/IP headers the
 * shaper counts); 1 ms buckets under-shoot at Gbit rates (-6 to -10%), a larger floor
 * over-shoots short runs at 1-2 Mbit/s. */
static uint32_t qos_burst_bytes(uint64_t rate)
{
	uint64_t b = rate / 100;

	if (b < 16 * 1024)
		b = 16 * 1024;
	if (b > 16 * 1024 * 1024)
		b = 16 * 1024 * 1024;
	return (uint32_t)b;
}

static int qdisc_find(struct nl_sock *sk, int ifindex, uint32_t parent, struct rtnl_qdisc **ret)
{
	cleanup_cache struct nl_cache *cache = NULL;
	int r = rtnl_qdisc_alloc_cache(sk, &cache);

	if (r < 0)
		return nlerr_to_errno(r);
	*ret = rtnl_qdisc_get_by_parent(cache, ifindex, parent);
	return 0;
}

/* Deletes the qdisc attached at parent (TC_H_ROOT or TC_H_INGRESS) of ifindex, if any. */
static int qdisc_delete(struct nl_sock *sk, int ifindex, uint32_t parent)
{
	cleanup_qdisc struct rtnl_qdisc *q = NULL;
	int r = qdisc_find(sk, ifindex, parent, &q);

	if (r < 0 || !q)
		return r;
	/* the kernel's default root qdiscs (noqueue, pfifo_fast, mq) have handle 0: nothing of
	 * ours, and deleting them is refused */
	if (parent == TC_H_ROOT && rtnl_tc_get_handle(TC_CAST(q)) == 0)
		return 0;
	r = rtnl_qdisc_delete(sk, q);
	if (r < 0 && !nlerr_is_missing(r) && r != -NLE_INVAL)
		return nlerr_to_errno(r);
	return 0;
}

/* Root htb 1: default 1 with class 1:1 rate = ceil = rate on ifindex; replaces a different root
 * qdisc, updates ours in place. */
static int qos_shape(struct nl_sock *sk, int ifindex, uint64_t rate)
{
	cleanup_qdisc struct rtnl_qdisc *cur = NULL;
	cleanup_class struct rtnl_class *cl = NULL;
	uint32_t burst = qos_burst_bytes(rate);
	uint64_t quantum;
	int r;

	r = qdisc_find(sk, ifindex, TC_H_ROOT, &cur);
	if (r < 0)
		return r;
	if (!cur || rtnl_tc_get_handle(TC_CAST(cur)) != QOS_HANDLE ||
	    !rtnl_tc_get_kind(TC_CAST(cur)) || !streq(rtnl_tc_get_kind(TC_CAST(cur)), "htb")) {
		cleanup_qdisc struct rtnl_qdisc *q = rtnl_qdisc_alloc();

		if (!q)
			return -ENOMEM;
		rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
		rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
		rtnl_tc_set_handle(TC_CAST(q), QOS_HANDLE);
		r = rtnl_tc_set_kind(TC_CAST(q), "htb");
		if (r >= 0)
			r = rtnl_htb_set_defcls(q, TC_H_MIN(QOS_CLASS));
		if (r >= 0)
			r = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_REPLACE);
		if (r < 0)
			return nlerr_to_errno(r);
	}

	cl = rtnl_class_alloc();
	if (!cl)
		return -ENOMEM;
	rtnl_tc_set_ifindex(TC_CAST(cl), ifindex);
	rtnl_tc_set_parent(TC_CAST(cl), QOS_HANDLE);
	rtnl_tc_set_handle(TC_CAST(cl), QOS_CLASS);
	r = rtnl_tc_set_kind(TC_CAST(cl), "htb");
	if (r >= 0)
		r = rtnl_htb_set_rate64(cl, rate);
	if (r >= 0)
		r = rtnl_htb_set_ceil64(cl, rate);
	if (r >= 0)
		r = rtnl_htb_set_rbuffer(cl, burst);
	if (r >= 0)
		r = rtnl_htb_set_cbuffer(cl, burst);
	/* rate/10 (r2q) is what the kernel would pick; keep it in the range it does not warn
	 * about. A single class never shares, so quantum only sets the dequeue batch. */
	quantum = rate / 10;
	if (quantum < 1500)
		quantum = 1500;
	if (quantum > 200000)
		quantum = 200000;
	if (r >= 0)
		r = rtnl_htb_set_quantum(cl, (uint32_t)quantum);
	if (r >= 0)
		r = rtnl_class_add(sk, cl, NLM_F_CREATE | NLM_F_REPLACE);
	return nlerr_to_errno(r);
}

/* Creates (or reuses our) ifb `name`, up, with a real queue. *ret_ifindex on success. */
static int ifb_ensure(struct nl_sock *sk, const char *name, const char *alias, int *ret_ifindex,
		      struct kiva_error *reterr)
{
	cleanup_link struct rtnl_link *link = NULL;
	bool created = false;
	int r;

	r = link_get(sk, name, &link);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to look up interface '%s': %s", name,
				      strerror(-r));
	if (link && !link_has_alias(link, alias))
		return kiva_error_set(reterr, -EEXIST,
				      "Interface '%s' already exists and is not managed by KIVA",
				      name);
	if (!link) {
		cleanup_link struct rtnl_link *ifb = rtnl_link_alloc();

		if (!ifb)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		rtnl_link_set_name(ifb, name);
		rtnl_link_set_txqlen(ifb, IFB_TXQLEN); /* ifb's default queue is 32 packets */
		r = rtnl_link_set_type(ifb, "ifb");
		if (r >= 0)
			r = rtnl_link_add(sk, ifb, NLM_F_CREATE | NLM_F_EXCL);
		r = nlerr_to_errno(r);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to create ifb '%s': %s", name,
					      r == -EOPNOTSUPP ? "the kernel lacks IFB"
							       : strerror(-r));
		created = true;
		r = link_get(sk, name, &link);
		if (r >= 0 && !link)
			r = -ENODEV;
		if (r < 0) {
			kiva_error_set(reterr, r, "Failed to read back ifb '%s': %s", name,
				       strerror(-r));
			goto rollback;
		}
	}
	r = link_tag_up(sk, link, alias, "ifb", name, reterr);
	if (r < 0)
		goto rollback;
	*ret_ifindex = rtnl_link_get_ifindex(link);
	return 0;

rollback:
	if (created)
		(void)link_delete_name(sk, name);
	return r;
}

/* ingress qdisc ffff: on ifindex with one u32 match-all filter redirecting to the ifb. Replaces
 * whatever ingress qdisc (and filters) the veth had, so there is never a second redirect. */
static int qos_redirect(struct nl_sock *sk, int ifindex, int ifb_ifindex)
{
	cleanup_qdisc struct rtnl_qdisc *q = rtnl_qdisc_alloc();
	cleanup_cls struct rtnl_cls *cls = rtnl_cls_alloc();
	cleanup_act struct rtnl_act *act = rtnl_act_alloc();
	int r;

	if (!q || !cls || !act)
		return -ENOMEM;
	r = qdisc_delete(sk, ifindex, TC_H_INGRESS);
	if (r < 0)
		return r;
	rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
	rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
	rtnl_tc_set_handle(TC_CAST(q), QOS_INGRESS);
	r = rtnl_tc_set_kind(TC_CAST(q), "ingress");
	if (r >= 0)
		r = rtnl_qdisc_add(sk, q, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0)
		return nlerr_to_errno(r);

	/* tc filter add dev V parent ffff: protocol all prio 1 u32 match u32 0 0
	 *    action mirred egress redirect dev IFB */
	rtnl_tc_set_ifindex(TC_CAST(cls), ifindex);
	rtnl_tc_set_parent(TC_CAST(cls), QOS_INGRESS);
	r = rtnl_tc_set_kind(TC_CAST(cls), "u32");
	if (r < 0)
		return nlerr_to_errno(r);
	rtnl_cls_set_prio(cls, QOS_FILTER_PRIO);
	rtnl_cls_set_protocol(cls, ETH_P_ALL);
	r = rtnl_u32_add_key_uint32(cls, 0, 0, 0, 0);
	if (r >= 0)
		r = rtnl_u32_set_cls_terminal(cls);
	if (r >= 0)
		r = rtnl_tc_set_kind(TC_CAST(act), "mirred");
	if (r >= 0)
		r = rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
	if (r >= 0)
		r = rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
	if (r >= 0)
		r = rtnl_mirred_set_ifindex(act, (uint32_t)ifb_ifindex);
	if (r >= 0)
		r = rtnl_u32_add_action(cls, act); /* takes its own reference */
	if (r >= 0)
		r = rtnl_cls_add(sk, cls, NLM_F_CREATE | NLM_F_EXCL);
	return nlerr_to_errno(r);
}

int net_qos_apply(const char *host_ifname, uint64_t ingress_bytes_per_sec,
		  uint64_t egress_bytes_per_sec, const char *tag, struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	cleanup_link struct rtnl_link *link = NULL;
	char alias[256], ifb[IFNAMSIZ];
	int ifindex, ifb_ifindex = 0, r;

	r = ifname_check(host_ifname, reterr);
	if (r < 0)
		return r;
	r = tag_alias(tag, alias, reterr);
	if (r < 0)
		return r;
	ifb_name(host_ifname, ifb);
	SOCK_OR_RETURN(sk, reterr);
	r = link_get(sk, host_ifname, &link);
	if (r >= 0 && !link)
		r = -ENOENT;
	if (r < 0)
		return kiva_error_set(reterr, r, "Interface '%s' is not available: %s", host_ifname,
				      strerror(-r));
	ifindex = rtnl_link_get_ifindex(link);

	/* container download = traffic leaving the host end towards the container */
	if (ingress_bytes_per_sec > 0)
		r = qos_shape(sk, ifindex, ingress_bytes_per_sec);
	else
		r = qdisc_delete(sk, ifindex, TC_H_ROOT);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to %s the ingress limit on '%s': %s",
				      ingress_bytes_per_sec > 0 ? "set" : "remove", host_ifname,
				      strerror(-r));

	/* container upload = traffic entering the host end; shaped on the ifb's egress */
	if (egress_bytes_per_sec == 0) {
		r = qdisc_delete(sk, ifindex, TC_H_INGRESS);
		if (r >= 0)
			r = link_delete_name(sk, ifb);
		if (r < 0)
			return kiva_error_set(reterr, r,
					      "Failed to remove the egress limit on '%s': %s",
					      host_ifname, strerror(-r));
		return 0;
	}
	r = ifb_ensure(sk, ifb, alias, &ifb_ifindex, reterr);
	if (r < 0)
		return r;
	r = qos_shape(sk, ifb_ifindex, egress_bytes_per_sec);
	if (r >= 0)
		r = qos_redirect(sk, ifindex, ifb_ifindex);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to set the egress limit on '%s': %s",
				      host_ifname, strerror(-r));
	return 0;
}

int net_qos_clear(const char *host_ifname)
{
	cleanup_sock struct nl_sock *sk = NULL;
	char ifb[IFNAMSIZ];
	unsigned ifindex;
	int r;

	r = ifname_check(host_ifname, NULL);
	if (r < 0)
		return r;
	ifb_name(host_ifname, ifb);
	r = sock_open(&sk);
	if (r < 0)
		return r;
	ifindex = if_nametoindex(host_ifname);
	if (ifindex > 0) {
		r = qdisc_delete(sk, (int)ifindex, TC_H_ROOT);
		if (r >= 0)
			r = qdisc_delete(sk, (int)ifindex, TC_H_INGRESS);
		if (r < 0)
			return r;
	}
	return link_delete_name(sk, ifb);
}

/* ---------------- VLAN ---------------- */

#define VLAN_UNSUPPORTED_MSG                                                                       \
	"VLAN filtering is not supported by this kernel (needs CONFIG_BRIDGE_VLAN_FILTERING / 802.1Q)"

int net_vlan_build_filtering(const char *bridge, int bridge_ifindex, bool on, struct nl_msg **ret)
{
	cleanup_msg struct nl_msg *msg = NULL;
	struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = bridge_ifindex};
	struct nlattr *linkinfo, *data;

	if (bridge_ifindex <= 0 && !bridge)
		return -EINVAL;
	if (bridge && ifname_check(bridge, NULL) < 0)
		return -EINVAL;
	/* ip link set dev BR type bridge vlan_filtering 1 */
	msg = nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (!msg)
		return -ENOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0)
		return -ENOMEM;
	if (bridge && nla_put_string(msg, IFLA_IFNAME, bridge) < 0)
		return -ENOMEM;
	linkinfo = nla_nest_start(msg, IFLA_LINKINFO);
	if (!linkinfo || nla_put_string(msg, IFLA_INFO_KIND, "bridge") < 0)
		return -ENOMEM;
	data = nla_nest_start(msg, IFLA_INFO_DATA);
	if (!data || nla_put_u8(msg, IFLA_BR_VLAN_FILTERING, on ? 1 : 0) < 0)
		return -ENOMEM;
	nla_nest_end(msg, data);
	nla_nest_end(msg, linkinfo);
	*ret = TAKE_PTR(msg);
	return 0;
}

int net_vlan_build_port(int port_ifindex, unsigned vid, bool pvid_untagged, bool del,
			struct nl_msg **ret)
{
	cleanup_msg struct nl_msg *msg = NULL;
	struct ifinfomsg ifi = {.ifi_family = AF_BRIDGE, .ifi_index = port_ifindex};
	struct bridge_vlan_info info = {.vid = (uint16_t)vid};
	struct nlattr *spec;

	if (port_ifindex <= 0 || vid < 1 || vid > 4094)
		return -EINVAL;
	if (pvid_untagged)
		info.flags = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED;
	/* bridge vlan {add|del} dev PORT vid VID [pvid untagged] */
	msg = nlmsg_alloc_simple(del ? RTM_DELLINK : RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (!msg)
		return -ENOMEM;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0)
		return -ENOMEM;
	spec = nla_nest_start(msg, IFLA_AF_SPEC);
	if (!spec || nla_put(msg, IFLA_BRIDGE_VLAN_INFO, sizeof(info), &info) < 0)
		return -ENOMEM;
	nla_nest_end(msg, spec);
	*ret = TAKE_PTR(msg);
	return 0;
}

static int vlan_send(struct nl_sock *sk, struct nl_msg *msg)
{
	/* nl_send_sync frees msg whatever happens */
	return nlerr_to_errno(nl_send_sync(sk, msg));
}

/* vid 0 (only tagged VLANs, LXD's vlan.tagged without vlan) leaves the port's untagged PVID at
 * the bridge default, VLAN 1. */
int net_vlan_enable(const char *bridge, struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	struct nl_msg *msg = NULL;
	unsigned br_ifindex;
	int r;

	r = ifname_check(bridge, reterr);
	if (r < 0)
		return r;
	br_ifindex = if_nametoindex(bridge);
	if (br_ifindex == 0)
		return kiva_error_set(reterr, -ENOENT, "Bridge '%s' does not exist", bridge);
	SOCK_OR_RETURN(sk, reterr);
	r = net_vlan_build_filtering(bridge, (int)br_ifindex, true, &msg);
	if (r >= 0)
		r = vlan_send(sk, msg);
	if (r == -EOPNOTSUPP)
		return kiva_error_set(reterr, r, VLAN_UNSUPPORTED_MSG);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to enable VLAN filtering on '%s': %s",
				      bridge, strerror(-r));
	return 0;
}

int net_vlan_apply(const char *bridge, const char *port, unsigned vid, const unsigned *tagged,
		   size_t ntagged, struct kiva_error *reterr)
{
	cleanup_sock struct nl_sock *sk = NULL;
	struct nl_msg *msg = NULL;
	unsigned br_ifindex, port_ifindex;
	bool keep_default = vid <= 1;
	int r;

	r = ifname_check(bridge, reterr);
	if (r < 0)
		return r;
	r = ifname_check(port, reterr);
	if (r < 0)
		return r;
	if (vid > 4094)
		return kiva_error_set(reterr, -EINVAL, "Invalid VLAN id %u (1-4094)", vid);
	if (vid == 0 && ntagged == 0)
		return kiva_error_set(reterr, -EINVAL, "No VLAN to set on '%s'", port);
	for (size_t i = 0; i < ntagged; i++) {
		if (tagged[i] < 1 || tagged[i] > 4094)
			return kiva_error_set(reterr, -EINVAL, "Invalid VLAN id %u (1-4094)",
					      tagged[i]);
		if (tagged[i] == 1)
			keep_default = true;
	}
	br_ifindex = if_nametoindex(bridge);
	if (br_ifindex == 0)
		return kiva_error_set(reterr, -ENOENT, "Bridge '%s' does not exist", bridge);
	port_ifindex = if_nametoindex(port);
	if (port_ifindex == 0)
		return kiva_error_set(reterr, -ENOENT, "Interface '%s' does not exist", port);
	SOCK_OR_RETURN(sk, reterr);

	r = net_vlan_build_filtering(bridge, (int)br_ifindex, true, &msg);
	if (r >= 0)
		r = vlan_send(sk, msg);
	if (r == -EOPNOTSUPP)
		return kiva_error_set(reterr, r, VLAN_UNSUPPORTED_MSG);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to enable VLAN filtering on '%s': %s",
				      bridge, strerror(-r));

	if (vid > 0) {
		r = net_vlan_build_port((int)port_ifindex, vid, true, false, &msg);
		if (r >= 0)
			r = vlan_send(sk, msg);
	}
	for (size_t i = 0; r >= 0 && i < ntagged; i++) {
		r = net_vlan_build_port((int)port_ifindex, tagged[i], false, false, &msg);
		if (r >= 0)
			r = vlan_send(sk, msg);
	}
	/* the bridge puts every new port in VLAN 1 (pvid untagged): drop it unless wanted */
	if (r >= 0 && !keep_default) {
		r = net_vlan_build_port((int)port_ifindex, 1, false, true, &msg);
		if (r >= 0)
			r = vlan_send(sk, msg);
		if (r == -ENOENT)
			r = 0;
	}
	if (r == -EOPNOTSUPP)
		return kiva_error_set(reterr, r, VLAN_UNSUPPORTED_MSG);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to set the VLANs of '%s': %s", port,
				      strerror(-r));
	return 0;
}
