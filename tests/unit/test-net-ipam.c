/* Unit tests of net-ipam.c, table-driven: address and prefix parsing/formatting, masks and
 * overlaps, pools (default and LXD ranges, with their error messages), lowest-free allocation
 * and exhaustion, static address checks, subnet choice around taken prefixes (including a
 * fully taken 10.100.0.0/16), LXD rate strings (every bad example), MAC addresses and host-side
 * veth names. Pure: no root, no network. */
#include <errno.h>
#include <inttypes.h>
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

#define IP(a, b, c, d)                                                                             \
	((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* ---- addresses and prefixes ---- */

static void test_ipv4_parse(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint32_t want;
	} cases[] = {
		{"10.0.3.1", 0, IP(10, 0, 3, 1)},
		{"0.0.0.0", 0, 0},
		{"255.255.255.255", 0, UINT32_MAX},
		{"192.168.1.10", 0, IP(192, 168, 1, 10)},
		{"", -EINVAL, 0},
		{"10.0.3", -EINVAL, 0},
		{"10.0.3.1.5", -EINVAL, 0},
		{"10.0.3.256", -EINVAL, 0},
		{"10.0.03.1", -EINVAL, 0}, /* no octal-looking octets */
		{"10.0.3.1 ", -EINVAL, 0},
		{" 10.0.3.1", -EINVAL, 0},
		{"10.0.3.-1", -EINVAL, 0},
		{"10.0.3.1/24", -EINVAL, 0},
		{"a.b.c.d", -EINVAL, 0},
		{"1000.0.0.1", -EINVAL, 0},
		{"10..3.1", -EINVAL, 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint32_t got = 0xdeadbeef;
		int r = net_ipv4_parse(cases[i].in, &got);

		if (r != cases[i].ret)
			fail_msg("net_ipv4_parse('%s') = %d, want %d", cases[i].in, r,
				 cases[i].ret);
		if (r == 0) {
			char buf[16];

			assert_int_equal(got, cases[i].want);
			net_ipv4_format(got, buf);
			assert_string_equal(buf, cases[i].in);
		} else {
			assert_int_equal(got, 0xdeadbeef); /* ret_ untouched on failure */
		}
	}
	assert_int_equal(net_ipv4_parse(NULL, &(uint32_t){0}), -EINVAL);
}

static void test_prefix(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint32_t addr, network, broadcast;
		uint8_t len;
	} cases[] = {
		{"10.0.3.1/24", 0, IP(10, 0, 3, 1), IP(10, 0, 3, 0), IP(10, 0, 3, 255), 24},
		{"10.0.3.0/24", 0, IP(10, 0, 3, 0), IP(10, 0, 3, 0), IP(10, 0, 3, 255), 24},
		{"172.16.5.9/12", 0, IP(172, 16, 5, 9), IP(172, 16, 0, 0), IP(172, 31, 255, 255),
		 12},
		{"0.0.0.0/0", 0, 0, 0, UINT32_MAX, 0},
		{"10.1.2.3/32", 0, IP(10, 1, 2, 3), IP(10, 1, 2, 3), IP(10, 1, 2, 3), 32},
		{"10.1.2.3/31", 0, IP(10, 1, 2, 3), IP(10, 1, 2, 2), IP(10, 1, 2, 3), 31},
		{"10.0.3.1", -EINVAL},
		{"10.0.3.1/", -EINVAL},
		{"10.0.3.1/33", -EINVAL},
		{"10.0.3.1/024", -EINVAL},
		{"10.0.3.1/24x", -EINVAL},
		{"10.0.3.1/-1", -EINVAL},
		{"/24", -EINVAL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct net_prefix p = {0};
		int r = net_prefix_parse(cases[i].in, &p);

		if (r != cases[i].ret)
			fail_msg("net_prefix_parse('%s') = %d, want %d", cases[i].in, r,
				 cases[i].ret);
		if (r < 0)
			continue;
		assert_int_equal(p.addr, cases[i].addr);
		assert_int_equal(p.len, cases[i].len);
		assert_int_equal(net_prefix_network(&p), cases[i].network);
		assert_int_equal(net_prefix_broadcast(&p), cases[i].broadcast);
		assert_true(net_prefix_contains(&p, cases[i].network));
		assert_true(net_prefix_contains(&p, cases[i].broadcast));
	}

	assert_int_equal(net_prefix_mask(0), 0);
	assert_int_equal(net_prefix_mask(8), 0xff000000u);
	assert_int_equal(net_prefix_mask(24), 0xffffff00u);
	assert_int_equal(net_prefix_mask(31), 0xfffffffeu);
	assert_int_equal(net_prefix_mask(32), 0xffffffffu);

	struct net_prefix p24 = {IP(10, 0, 3, 1), 24};
	assert_false(net_prefix_contains(&p24, IP(10, 0, 4, 0)));
	assert_false(net_prefix_contains(&p24, IP(10, 0, 2, 255)));
}

static void test_overlaps(void **state)
{
	static const struct {
		const char *a, *b;
		bool want;
	} cases[] = {
		{"10.0.3.1/24", "10.0.3.200/24", true}, {"10.0.3.1/24", "10.0.4.1/24", false},
		{"10.0.0.0/16", "10.0.77.1/24", true},	{"10.0.77.1/24", "10.0.0.0/16", true},
		{"10.0.3.1/24", "10.0.3.77/32", true},	{"10.0.3.1/24", "10.0.2.255/32", false},
		{"0.0.0.0/0", "192.168.1.1/24", true},	{"10.0.3.0/25", "10.0.3.128/25", false},
		{"10.0.3.0/25", "10.0.3.127/32", true},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct net_prefix a, b;

		assert_int_equal(net_prefix_parse(cases[i].a, &a), 0);
		assert_int_equal(net_prefix_parse(cases[i].b, &b), 0);
		if (net_prefix_overlaps(&a, &b) != cases[i].want)
			fail_msg("overlaps(%s, %s) != %d", cases[i].a, cases[i].b, cases[i].want);
	}
}

/* ---- pools ---- */

static void test_ranges(void **state)
{
	static const struct {
		const char *subnet, *in;
		int ret;
		size_t n;
		uint32_t r[3][2];
		const char *msg;
	} cases[] = {
		/* default: all hosts but the gateway, around it */
		{"10.0.3.1/24", NULL, 0, 1, {{IP(10, 0, 3, 2), IP(10, 0, 3, 254)}}},
		{"10.0.3.1/24", "", 0, 1, {{IP(10, 0, 3, 2), IP(10, 0, 3, 254)}}},
		{"10.0.3.100/24",
		 NULL,
		 0,
		 2,
		 {{IP(10, 0, 3, 1), IP(10, 0, 3, 99)}, {IP(10, 0, 3, 101), IP(10, 0, 3, 254)}}},
		{"10.0.3.254/24", NULL, 0, 1, {{IP(10, 0, 3, 1), IP(10, 0, 3, 253)}}},
		{"10.0.3.0/24", NULL, 0, 1, {{IP(10, 0, 3, 1), IP(10, 0, 3, 254)}}},
		{"10.0.3.1/30", NULL, 0, 1, {{IP(10, 0, 3, 2), IP(10, 0, 3, 2)}}},
		{"10.0.3.1/32", NULL, 0, 0},
		/* LXD's ipv4.dhcp.ranges */
		{"10.0.3.1/24",
		 "10.0.3.2-10.0.3.100,10.0.3.150-10.0.3.200",
		 0,
		 2,
		 {{IP(10, 0, 3, 2), IP(10, 0, 3, 100)}, {IP(10, 0, 3, 150), IP(10, 0, 3, 200)}}},
		{"10.0.3.1/24",
		 " 10.0.3.10 - 10.0.3.20 , 10.0.3.30",
		 0,
		 2,
		 {{IP(10, 0, 3, 10), IP(10, 0, 3, 20)}, {IP(10, 0, 3, 30), IP(10, 0, 3, 30)}}},
		{"10.0.3.1/24",
		 "10.0.3.1-10.0.3.254",
		 0,
		 1,
		 {{IP(10, 0, 3, 1), IP(10, 0, 3, 254)}}},
		/* errors name the range */
		{"10.0.3.1/24",
		 "10.0.3.100-10.0.3.2",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range '10.0.3.100-10.0.3.2': the first address is after the last"},
		{"10.0.3.1/24",
		 "10.0.3.2-10.0.4.9",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range '10.0.3.2-10.0.4.9': outside the host addresses of 10.0.3.0/24"},
		{"10.0.3.1/24",
		 "10.0.3.0-10.0.3.9",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range '10.0.3.0-10.0.3.9': outside the host addresses of 10.0.3.0/24"},
		{"10.0.3.1/24",
		 "10.0.3.200-10.0.3.255",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range '10.0.3.200-10.0.3.255': outside the host addresses of 10.0.3.0/24"},
		{"10.0.3.1/24",
		 "10.0.3.2-10.0.3.9,10.9.9.9",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range '10.9.9.9': outside the host addresses of 10.0.3.0/24"},
		{"10.0.3.1/24",
		 "10.0.3.2-",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range '10.0.3.2-': expected FIRST-LAST IPv4 addresses"},
		{"10.0.3.1/24",
		 "lots",
		 -EINVAL,
		 0,
		 {{0}},
		 "Invalid range 'lots': expected FIRST-LAST IPv4 addresses"},
		{"0.0.0.0/0", NULL, -EINVAL, 0, {{0}}, "Network has no IPv4 subnet"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kiva_error err = {0};
		struct net_prefix subnet;
		struct net_range *v = NULL;
		size_t n = 99;
		int r;

		assert_int_equal(net_prefix_parse(cases[i].subnet, &subnet), 0);
		r = net_ranges_parse(cases[i].in, &subnet, &v, &n, &err);
		if (r != cases[i].ret)
			fail_msg("case %zu ('%s'): %d (%s), want %d", i, cases[i].in, r, err.msg,
				 cases[i].ret);
		if (r < 0) {
			assert_string_equal(err.msg, cases[i].msg);
			assert_int_equal(err.code, r);
			assert_null(v);
			assert_int_equal(n, 99);
			continue;
		}
		assert_int_equal(n, cases[i].n);
		for (size_t k = 0; k < n; k++) {
			assert_int_equal(v[k].first, cases[i].r[k][0]);
			assert_int_equal(v[k].last, cases[i].r[k][1]);
		}
		free(v);
	}
}

static void test_allocate(void **state)
{
	const struct net_range pool[] = {{IP(10, 0, 3, 150), IP(10, 0, 3, 152)},
					 {IP(10, 0, 3, 1), IP(10, 0, 3, 4)}};
	const uint32_t gw = IP(10, 0, 3, 1);
	static const struct {
		uint32_t used[8];
		size_t nused;
		int ret;
		uint32_t want;
	} cases[] = {
		{{0}, 0, 0, IP(10, 0, 3, 2)}, /* lowest, skipping the gateway */
		{{IP(10, 0, 3, 2)}, 1, 0, IP(10, 0, 3, 3)},
		{{IP(10, 0, 3, 3), IP(10, 0, 3, 2)}, 2, 0, IP(10, 0, 3, 4)},
		{{IP(10, 0, 3, 4), IP(10, 0, 3, 3), IP(10, 0, 3, 2)}, 3, 0, IP(10, 0, 3, 150)},
		{{IP(10, 0, 3, 2), IP(10, 0, 3, 3), IP(10, 0, 3, 4), IP(10, 0, 3, 150)},
		 4,
		 0,
		 IP(10, 0, 3, 151)},
		/* a hole is refilled first */
		{{IP(10, 0, 3, 2), IP(10, 0, 3, 4), IP(10, 0, 3, 150)}, 3, 0, IP(10, 0, 3, 3)},
		/* used addresses outside the pool do not matter; duplicates neither */
		{{IP(10, 0, 9, 9), IP(10, 0, 3, 2), IP(10, 0, 3, 2)}, 3, 0, IP(10, 0, 3, 3)},
		/* exhausted */
		{{IP(10, 0, 3, 2), IP(10, 0, 3, 3), IP(10, 0, 3, 4), IP(10, 0, 3, 150),
		  IP(10, 0, 3, 151), IP(10, 0, 3, 152)},
		 6,
		 -ENOSPC,
		 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint32_t got = 0;
		int r = net_ipam_allocate(pool, ARRAY_SIZE(pool), gw, cases[i].used, cases[i].nused,
					  &got);

		if (r != cases[i].ret)
			fail_msg("case %zu: %d, want %d", i, r, cases[i].ret);
		if (r == 0)
			assert_int_equal(got, cases[i].want);
	}
	assert_int_equal(net_ipam_allocate(pool, 0, gw, NULL, 0, &(uint32_t){0}), -ENOSPC);
}

/* A whole /24 default pool fills up in order and then reports -ENOSPC. */
static void test_allocate_fill(void **state)
{
	struct net_prefix subnet = {IP(10, 0, 3, 1), 24};
	struct net_range *pool = NULL;
	uint32_t used[256];
	size_t npool, n = 0;
	uint32_t a;

	assert_int_equal(net_ranges_parse(NULL, &subnet, &pool, &npool, NULL), 0);
	while (net_ipam_allocate(pool, npool, subnet.addr, used, n, &a) == 0) {
		assert_int_equal(a, IP(10, 0, 3, 2) + n);
		assert_int_equal(net_ipam_check(&subnet, a, used, n, NULL), 0);
		used[n++] = a;
	}
	assert_int_equal(n, 253);
	assert_int_equal(net_ipam_allocate(pool, npool, subnet.addr, used, n, &a), -ENOSPC);
	free(pool);

	/* a big pool with many used addresses stays fast and exact */
	struct net_range big = {IP(10, 1, 0, 1), IP(10, 1, 255, 254)};
	uint32_t *many = malloc(60000 * sizeof(*many));
	assert_non_null(many);
	for (size_t i = 0; i < 60000; i++)
		many[i] = IP(10, 1, 0, 1) + (uint32_t)(59999 - i);
	assert_int_equal(net_ipam_allocate(&big, 1, IP(10, 1, 0, 1), many, 60000, &a), 0);
	assert_int_equal(a, IP(10, 1, 0, 1) + 60000);
	free(many);
}

static void test_check(void **state)
{
	const uint32_t used[] = {IP(10, 0, 3, 5), IP(10, 0, 3, 9)};
	static const struct {
		const char *subnet, *addr;
		int ret;
		const char *msg;
	} cases[] = {
		{"10.0.3.1/24", "10.0.3.2", 0},
		{"10.0.3.1/24", "10.0.3.254", 0},
		{"10.0.3.1/24", "10.0.4.2", -EINVAL,
		 "Address 10.0.4.2 is not in subnet 10.0.3.0/24"},
		{"10.0.3.1/24", "10.0.3.0", -EINVAL,
		 "Address 10.0.3.0 is the network address of 10.0.3.0/24"},
		{"10.0.3.1/24", "10.0.3.255", -EINVAL,
		 "Address 10.0.3.255 is the broadcast address of 10.0.3.0/24"},
		{"10.0.3.1/24", "10.0.3.1", -EINVAL,
		 "Address 10.0.3.1 is the gateway of 10.0.3.0/24"},
		{"10.0.3.1/24", "10.0.3.5", -EEXIST, "Address 10.0.3.5 is already in use"},
		{"10.0.3.1/24", "10.0.3.9", -EEXIST, "Address 10.0.3.9 is already in use"},
		{"10.0.3.0/31", "10.0.3.1", 0}, /* RFC 3021: no network/broadcast on a /31 */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kiva_error err = {0};
		struct net_prefix subnet;
		uint32_t a;
		int r;

		assert_int_equal(net_prefix_parse(cases[i].subnet, &subnet), 0);
		assert_int_equal(net_ipv4_parse(cases[i].addr, &a), 0);
		r = net_ipam_check(&subnet, a, used, ARRAY_SIZE(used), &err);
		if (r != cases[i].ret)
			fail_msg("%s in %s: %d (%s), want %d", cases[i].addr, cases[i].subnet, r,
				 err.msg, cases[i].ret);
		if (r < 0)
			assert_string_equal(err.msg, cases[i].msg);
	}
}

/* ---- subnet choice ---- */

static void test_subnet_choose(void **state)
{
	struct net_prefix got, taken[3];
	char buf[16];

	/* nothing taken: seed 0 starts at 10.100.0.1/24, seeds move the start */
	assert_int_equal(net_subnet_choose(NULL, 0, 0, &got), 0);
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.100.0.1");
	assert_int_equal(got.len, 24);
	assert_int_equal(net_subnet_choose(NULL, 0, 257, &got), 0);
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.101.1.1");
	/* the last candidate, then wrap around */
	assert_int_equal(net_subnet_choose(NULL, 0, 155 * 256 - 1, &got), 0);
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.254.255.1");
	assert_int_equal(net_subnet_choose(NULL, 0, 155 * 256, &got), 0);
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.100.0.1");
	/* the same seed gives the same answer */
	struct net_prefix again;
	assert_int_equal(net_subnet_choose(NULL, 0, 0xdeadbeef, &got), 0);
	assert_int_equal(net_subnet_choose(NULL, 0, 0xdeadbeef, &again), 0);
	assert_int_equal(got.addr, again.addr);

	/* skips a taken /24 and a host address inside the next one */
	assert_int_equal(net_prefix_parse("10.100.0.1/24", &taken[0]), 0);
	assert_int_equal(net_prefix_parse("10.100.1.77/32", &taken[1]), 0);
	assert_int_equal(net_subnet_choose(taken, 2, 0, &got), 0);
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.100.2.1");

	/* a fully taken 10.100.0.0/16 moves to 10.101.0.0/24; a default route is ignored */
	assert_int_equal(net_prefix_parse("10.100.0.0/16", &taken[0]), 0);
	assert_int_equal(net_prefix_parse("0.0.0.0/0", &taken[1]), 0);
	assert_int_equal(net_prefix_parse("192.168.1.10/24", &taken[2]), 0);
	assert_int_equal(net_subnet_choose(taken, 3, 0, &got), 0);
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.101.0.1");
	assert_int_equal(net_subnet_choose(taken, 3, 77, &got), 0); /* start inside it */
	net_ipv4_format(got.addr, buf);
	assert_string_equal(buf, "10.101.0.1");

	/* the whole 10/8 taken: nothing left */
	assert_int_equal(net_prefix_parse("10.0.0.0/8", &taken[0]), 0);
	assert_int_equal(net_subnet_choose(taken, 1, 1234, &got), -ENOSPC);
}

/* ---- rates ---- */

static void test_rate_parse(void **state)
{
	static const char *const syntax =
		"expected a number and a unit such as 10Mbit, 1Gbit or 500kbit";
	static const struct {
		const char *in;
		int ret;
		uint64_t want;
		const char *why; /* message after "Invalid rate '<in>': " */
	} cases[] = {
		{"10Mbit", 0, 1250000},
		{"1Gbit", 0, 125000000},
		{"500kbit", 0, 62500},
		{"100bit", 0, 12}, /* 12.5 rounded down */
		{"8bit", 0, 1},
		{"1Tbit", 0, 125000000000ULL},
		{"1Kibit", 0, 128},
		{"1Mibit", 0, 131072},
		{"1.5Mbit", 0, 187500},
		{"10MB", 0, 10000000},
		{"1GB", 0, 1000000000},
		{"2kB", 0, 2000},
		{"7B", 0, 7},
		{"1TB", 0, 1000000000000ULL},
		{"1KiB", 0, 1024},
		{"3MiB", 0, 3145728},
		{"1GiB", 0, 1073741824},
		{"10Qbit", -EINVAL, 0, NULL},
		{"", -EINVAL, 0, NULL},
		{"-1Mbit", -EINVAL, 0, NULL},
		{"Mbit", -EINVAL, 0, NULL},
		{"10", -EINVAL, 0, NULL},
		{"10 Mbit", -EINVAL, 0, NULL},
		{"10mbit", -EINVAL, 0, NULL},
		{"10.Mbit", -EINVAL, 0, NULL},
		{".5Mbit", -EINVAL, 0, NULL},
		{"1e6bit", -EINVAL, 0, NULL},
		{"10Mbit/s", -EINVAL, 0, NULL},
		{"0bit", -EINVAL, 0, "must be greater than zero"},
		{"0Mbit", -EINVAL, 0, "must be greater than zero"},
		{"1bit", -EINVAL, 0, "must be at least 8bit (one byte per second)"},
		{"99999999999999999999Tbit", -EINVAL, 0, NULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kiva_error err = {0};
		uint64_t got = 42;
		char want[256];
		int r = net_rate_parse(cases[i].in, &got, &err);

		if (r != cases[i].ret)
			fail_msg("net_rate_parse('%s') = %d (%s), want %d", cases[i].in, r, err.msg,
				 cases[i].ret);
		if (r == 0) {
			if (got != cases[i].want)
				fail_msg("'%s' = %" PRIu64 ", want %" PRIu64, cases[i].in, got,
					 cases[i].want);
			continue;
		}
		assert_int_equal(got, 42);
		snprintf(want, sizeof(want), "Invalid rate '%s': %s", cases[i].in,
			 cases[i].why ? cases[i].why : syntax);
		assert_string_equal(err.msg, want);
	}
	struct kiva_error err = {0};
	assert_int_equal(net_rate_parse("10Qbit", &(uint64_t){0}, &err), -EINVAL);
	assert_string_equal(err.msg, "Invalid rate '10Qbit': expected a number and a unit such as "
				     "10Mbit, 1Gbit or 500kbit");
}

/* ---- MAC addresses and interface names ---- */

static void test_hwaddr(void **state)
{
	char buf[18];
	static const struct {
		const char *in;
		int ret;
	} cases[] = {
		{"00:16:3e:00:00:01", 0},
		{"00:16:3E:AB:cd:EF", 0},
		{"02:00:00:00:00:00", 0},
		{"01:00:5e:00:00:01", -EINVAL}, /* multicast */
		{"ff:ff:ff:ff:ff:ff", -EINVAL}, /* broadcast */
		{"00:00:00:00:00:00", -EINVAL},
		{"00:16:3e:00:00", -EINVAL},
		{"00:16:3e:00:00:0g", -EINVAL},
		{"00-16-3e-00-00-01", -EINVAL},
		{"0016.3e00.0001", -EINVAL},
		{"00:16:3e:00:00:01:", -EINVAL},
		{"", -EINVAL},
	};

	net_hwaddr_generate(0x123456789abcULL, buf); /* the low three bytes */
	assert_string_equal(buf, "00:16:3e:78:9a:bc");
	net_hwaddr_generate(0xabcdef, buf);
	assert_string_equal(buf, "00:16:3e:ab:cd:ef");
	net_hwaddr_generate(0x1000001, buf);
	assert_string_equal(buf, "00:16:3e:00:00:01");
	assert_int_equal(net_hwaddr_check(buf), 0);
	for (uint64_t seed = 0; seed < 5000; seed += 7) {
		net_hwaddr_generate(seed * 2654435761u, buf);
		assert_int_equal(strlen(buf), 17);
		assert_int_equal(net_hwaddr_check(buf), 0);
		assert_memory_equal(buf, "00:16:3e:", 9);
	}
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (net_hwaddr_check(cases[i].in) != cases[i].ret)
			fail_msg("net_hwaddr_check('%s') != %d", cases[i].in, cases[i].ret);
	assert_int_equal(net_hwaddr_check(NULL), -EINVAL);
}

static void test_host_ifname(void **state)
{
	char a[16], b[16], c[16], d[16];

	net_host_ifname("1a2b3c4d", "web1", "eth0", a);
	net_host_ifname("1a2b3c4d", "web1", "eth0", b);
	net_host_ifname("1a2b3c4d", "web1", "eth1", c);
	net_host_ifname("1a2b3c4e", "web1", "eth0", d);
	assert_string_equal(a, b); /* stable */
	assert_int_equal(strlen(a), 12);
	assert_memory_equal(a, "kv", 2);
	assert_int_equal(strspn(a + 2, "0123456789abcdef"), 10);
	assert_string_not_equal(a, c);
	assert_string_not_equal(a, d);
	/* the separators matter: ("ab","c") and ("a","bc") differ */
	net_host_ifname("x", "ab", "c", c);
	net_host_ifname("x", "a", "bc", d);
	assert_string_not_equal(c, d);
	/* sha256("1a2b3c4d\0web1\0eth0") starts with these 10 hex digits (python3 hashlib) */
	assert_string_equal(a, "kv43c05f6585");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_parse),  cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_overlaps),    cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_allocate),    cmocka_unit_test(test_allocate_fill),
		cmocka_unit_test(test_check),	    cmocka_unit_test(test_subnet_choose),
		cmocka_unit_test(test_rate_parse),  cmocka_unit_test(test_hwaddr),
		cmocka_unit_test(test_host_ifname),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
