/* IPv4 address management, pure (no I/O): parsing and formatting of addresses and prefixes,
 * address pools (LXD's ipv4.dhcp.ranges), lowest-free allocation, static address checks, the
 * choice of a free /24 for a new bridge, LXD's rate syntax for limits.ingress/egress, MAC
 * addresses in LXD's OUI and stable host-side veth names. Addresses are host byte order.
 * Every function is deterministic, so the unit tests compare exact results. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-error.h"
#include "basic-hash.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "net.h"

/* Parses 1-3 decimal digits (no leading zero, so "010" is not read as octal by anyone) in
 * 0..255 at *p and advances *p. */
static int parse_octet(const char **p, uint32_t *ret)
{
	const char *s = *p;
	uint32_t v = 0;
	size_t n = 0;

	while (n < 4 && s[n] >= '0' && s[n] <= '9') {
		v = v * 10 + (uint32_t)(s[n] - '0');
		n++;
	}
	if (n == 0 || n > 3 || v > 255 || (n > 1 && s[0] == '0'))
		return -EINVAL;
	*p = s + n;
	*ret = v;
	return 0;
}

/* Parses a dotted quad at the start of s; *end points after it. */
static int parse_ipv4_prefix_of(const char *s, uint32_t *ret, const char **end)
{
	uint32_t addr = 0;

	for (int i = 0; i < 4; i++) {
		uint32_t o;

		if (i > 0) {
			if (*s != '.')
				return -EINVAL;
			s++;
		}
		if (parse_octet(&s, &o) < 0)
			return -EINVAL;
		addr = addr << 8 | o;
	}
	*ret = addr;
	*end = s;
	return 0;
}

int net_ipv4_parse(const char *s, uint32_t *ret)
{
	const char *end;
	uint32_t addr;

	if (!s || parse_ipv4_prefix_of(s, &addr, &end) < 0 || *end != '\0')
		return -EINVAL;
	*ret = addr;
	return 0;
}

void net_ipv4_format(uint32_t addr, char buf[static 16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
		 addr & 0xff);
}

int net_prefix_parse(const char *s, struct net_prefix *ret)
{
	const char *end;
	uint32_t addr, len = 0;
	size_t n = 0;

	if (!s || parse_ipv4_prefix_of(s, &addr, &end) < 0 || *end != '/')
		return -EINVAL;
	end++;
	while (n < 3 && end[n] >= '0' && end[n] <= '9') {
		len = len * 10 + (uint32_t)(end[n] - '0');
		n++;
	}
	if (n == 0 || end[n] != '\0' || len > 32 || (n > 1 && end[0] == '0'))
		return -EINVAL;
	*ret = (struct net_prefix){.addr = addr, .len = (uint8_t)len};
	return 0;
}

uint32_t net_prefix_mask(uint8_t len)
{
	if (len == 0)
		return 0;
	if (len >= 32)
		return UINT32_MAX;
	return UINT32_MAX << (32 - len);
}

uint32_t net_prefix_network(const struct net_prefix *p)
{
	return p->addr & net_prefix_mask(p->len);
}

uint32_t net_prefix_broadcast(const struct net_prefix *p)
{
	return net_prefix_network(p) | ~net_prefix_mask(p->len);
}

bool net_prefix_contains(const struct net_prefix *p, uint32_t addr)
{
	return (addr & net_prefix_mask(p->len)) == net_prefix_network(p);
}

bool net_prefix_overlaps(const struct net_prefix *a, const struct net_prefix *b)
{
	uint32_t mask = net_prefix_mask(a->len < b->len ? a->len : b->len);

	return ((a->addr ^ b->addr) & mask) == 0;
}

/* The host addresses of a subnet: all but network and broadcast, except for /31 (RFC 3021:
 * both are hosts) and /32 (the single address). */
static void host_span(const struct net_prefix *p, uint32_t *first, uint32_t *last)
{
	*first = net_prefix_network(p);
	*last = net_prefix_broadcast(p);
	if (p->len <= 30) {
		(*first)++;
		(*last)--;
	}
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int net_ranges_parse(const char *s, const struct net_prefix *subnet, struct net_range **ret,
		     size_t *ret_n, struct kiva_error *reterr)
{
	cleanup_free struct net_range *v = NULL;
	cleanup_free char *copy = NULL;
	char buf[16], *save = NULL;
	uint32_t hfirst, hlast, gw = subnet->addr;
	size_t n = 0, cap = 2;

	if (subnet->len == 0)
		return kiva_error_set(reterr, -EINVAL, "Network has no IPv4 subnet");
	host_span(subnet, &hfirst, &hlast);

	if (!s || s[0] == '\0') {
		/* the whole subnet minus network, broadcast and the gateway */
		v = calloc(2, sizeof(*v));
		if (!v)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		if (gw < hfirst || gw > hlast) {
			v[n++] = (struct net_range){hfirst, hlast};
		} else {
			if (gw > hfirst)
				v[n++] = (struct net_range){hfirst, gw - 1};
			if (gw < hlast)
				v[n++] = (struct net_range){gw + 1, hlast};
		}
		*ret = TAKE_PTR(v);
		*ret_n = n;
		return 0;
	}

	copy = strdup(s);
	v = calloc(cap, sizeof(*v));
	if (!copy || !v)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *item = trim(tok), *dash = strchr(item, '-');
		uint32_t first, last;
		int r;

		if (dash) {
			*dash = '\0';
			r = net_ipv4_parse(trim(item), &first);
			if (r >= 0)
				r = net_ipv4_parse(trim(dash + 1), &last);
			*dash = '-';
		} else {
			r = net_ipv4_parse(item, &first);
			last = first;
		}
		if (r < 0)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid range '%s': expected FIRST-LAST IPv4 addresses", item);
		if (first > last)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid range '%s': the first address is after the last", item);
		if (first < hfirst || last > hlast) {
			net_ipv4_format(net_prefix_network(subnet), buf);
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid range '%s': outside the host addresses of %s/%u", item,
				buf, subnet->len);
		}
		if (n == cap) {
			struct net_range *nv = reallocarray(v, cap * 2, sizeof(*v));

			if (!nv)
				return kiva_error_set(reterr, -ENOMEM, "Out of memory");
			v = nv;
			cap *= 2;
		}
		v[n++] = (struct net_range){first, last};
	}
	if (n == 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid range list '%s': no range", s);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int net_ipam_allocate(const struct net_range *pool, size_t npool, uint32_t gateway,
		      const uint32_t *used, size_t nused, uint32_t *ret)
{
	cleanup_free uint32_t *sorted = NULL;
	uint32_t best = 0;
	bool found = false;

	if (nused > 0) {
		sorted = malloc(nused * sizeof(*sorted));
		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, used, nused * sizeof(*sorted));
		qsort(sorted, nused, sizeof(*sorted), cmp_u32);
	}

	for (size_t i = 0; i < npool; i++) {
		uint64_t a = pool[i].first;
		size_t k = 0;

		/* walk the range and the sorted used list together */
		while (k < nused && sorted[k] < a)
			k++;
		for (; a <= pool[i].last; a++) {
			while (k < nused && sorted[k] < a)
				k++;
			if (a == gateway || (k < nused && sorted[k] == a))
				continue;
			break;
		}
		if (a <= pool[i].last && (!found || a < best)) {
			best = (uint32_t)a;
			found = true;
		}
	}
	if (!found)
		return -ENOSPC;
	*ret = best;
	return 0;
}

int net_ipam_check(const struct net_prefix *subnet, uint32_t addr, const uint32_t *used,
		   size_t nused, struct kiva_error *reterr)
{
	char a[16], net[16];

	net_ipv4_format(addr, a);
	net_ipv4_format(net_prefix_network(subnet), net);
	if (subnet->len == 0)
		return kiva_error_set(reterr, -EINVAL, "Network has no IPv4 subnet");
	if (!net_prefix_contains(subnet, addr))
		return kiva_error_set(reterr, -EINVAL, "Address %s is not in subnet %s/%u", a, net,
				      subnet->len);
	if (subnet->len <= 30 && addr == net_prefix_network(subnet))
		return kiva_error_set(reterr, -EINVAL, "Address %s is the network address of %s/%u",
				      a, net, subnet->len);
	if (subnet->len <= 30 && addr == net_prefix_broadcast(subnet))
		return kiva_error_set(reterr, -EINVAL,
				      "Address %s is the broadcast address of %s/%u", a, net,
				      subnet->len);
	if (addr == subnet->addr)
		return kiva_error_set(reterr, -EINVAL, "Address %s is the gateway of %s/%u", a, net,
				      subnet->len);
	for (size_t i = 0; i < nused; i++)
		if (used[i] == addr)
			return kiva_error_set(reterr, -EEXIST, "Address %s is already in use", a);
	return 0;
}

/* 10.X.Y.0/24 with X in [100, 254] and Y in [0, 255]: index = (X - 100) * 256 + Y. */
#define SUBNET_X_FIRST 100u
#define SUBNET_X_LAST 254u
#define SUBNET_CANDIDATES ((SUBNET_X_LAST - SUBNET_X_FIRST + 1) * 256u)

int net_subnet_choose(const struct net_prefix *taken, size_t ntaken, uint32_t seed,
		      struct net_prefix *ret)
{
	uint32_t start = seed % SUBNET_CANDIDATES;

	for (uint32_t i = 0; i < SUBNET_CANDIDATES; i++) {
		uint32_t idx = (start + i) % SUBNET_CANDIDATES;
		struct net_prefix cand = {
			.addr = 10u << 24 | (SUBNET_X_FIRST + idx / 256) << 16 | (idx % 256) << 8,
			.len = 24,
		};
		bool clash = false;

		for (size_t k = 0; k < ntaken && !clash; k++)
			/* a default route (len 0) says nothing about the host's subnets */
			clash = taken[k].len > 0 && net_prefix_overlaps(&cand, &taken[k]);
		if (!clash) {
			cand.addr |= 1;
			*ret = cand;
			return 0;
		}
	}
	return -ENOSPC;
}

/* LXD's network rate units (doc "Units for storage and network limits"): bits per second with
 * decimal (k, M, G, T) or binary (Ki, Mi, Gi, Ti) multipliers, and bytes per second. */
struct rate_unit {
	const char *name;
	uint64_t mult; /* per unit */
	bool bits;
};

static const struct rate_unit rate_units[] = {
	{"bit", 1, true},
	{"kbit", 1000ULL, true},
	{"Mbit", 1000000ULL, true},
	{"Gbit", 1000000000ULL, true},
	{"Tbit", 1000000000000ULL, true},
	{"Kibit", 1ULL << 10, true},
	{"Mibit", 1ULL << 20, true},
	{"Gibit", 1ULL << 30, true},
	{"Tibit", 1ULL << 40, true},
	{"B", 1, false},
	{"kB", 1000ULL, false},
	{"MB", 1000000ULL, false},
	{"GB", 1000000000ULL, false},
	{"TB", 1000000000000ULL, false},
	{"KiB", 1ULL << 10, false},
	{"MiB", 1ULL << 20, false},
	{"GiB", 1ULL << 30, false},
	{"TiB", 1ULL << 40, false},
};

int net_rate_parse(const char *s, uint64_t *ret_bytes_per_sec, struct kiva_error *reterr)
{
	const struct rate_unit *unit = NULL;
	unsigned __int128 num = 0, den = 1, bytes;
	const char *p = s ? s : "";
	size_t nint = 0, nfrac = 0;

	while (*p >= '0' && *p <= '9' && nint < 16) {
		num = num * 10 + (unsigned)(*p++ - '0');
		nint++;
	}
	if (nint > 0 && *p == '.') {
		p++;
		while (*p >= '0' && *p <= '9' && nfrac < 9) {
			num = num * 10 + (unsigned)(*p++ - '0');
			den *= 10;
			nfrac++;
		}
		if (nfrac == 0)
			p = ""; /* "10.Mbit": force the syntax error below */
	}
	for (size_t i = 0; nint > 0 && i < ARRAY_SIZE(rate_units); i++)
		if (streq(p, rate_units[i].name))
			unit = &rate_units[i];
	if (!unit)
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid rate '%s': expected a number and a unit such as 10Mbit, 1Gbit or 500kbit",
			s ? s : "");

	bytes = num * unit->mult / (den * (unit->bits ? 8 : 1));
	if (num == 0)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid rate '%s': must be greater than zero", s);
	if (bytes == 0)
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid rate '%s': must be at least 8bit (one byte per second)", s);
	if (bytes > UINT64_MAX)
		return kiva_error_set(reterr, -ERANGE, "Invalid rate '%s': too large", s);
	*ret_bytes_per_sec = (uint64_t)bytes;
	return 0;
}

void net_hwaddr_generate(uint64_t seed, char buf[static 18])
{
	snprintf(buf, 18, "00:16:3e:%02x:%02x:%02x", (unsigned)(seed >> 16) & 0xff,
		 (unsigned)(seed >> 8) & 0xff, (unsigned)seed & 0xff);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_hwaddr_check(const char *s)
{
	int first = 0, any = 0;

	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *o = s + i * 3;
		int hi = hexval(o[0]), lo = hexval(o[1]);

		if (hi < 0 || lo < 0 || (i < 5 && o[2] != ':'))
			return -EINVAL;
		if (i == 0)
			first = hi << 4 | lo;
		any |= hi | lo;
	}
	/* multicast (I/G bit) and the all-zero address cannot name an interface */
	if ((first & 1) || !any)
		return -EINVAL;
	return 0;
}

void net_host_ifname(const char *kivad_id, const char *instance, const char *nic,
		     char buf[static 16])
{
	struct sha256_ctx ctx;
	char hex[65];

	sha256_init(&ctx);
	sha256_update(&ctx, kivad_id, strlen(kivad_id) + 1);
	sha256_update(&ctx, instance, strlen(instance) + 1);
	sha256_update(&ctx, nic, strlen(nic));
	sha256_final_hex(&ctx, hex);
	snprintf(buf, 16, "kv%.10s", hex);
}
