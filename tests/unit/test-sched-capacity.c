/* Unit tests of sched-capacity.c on the Z600 fixture: good capacity files (full, partial,
 * comments, RAM clamped to the hardware) and every refused one with the message the operator
 * reads (key and line). Pure: no root. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "kiva-sched.h"

static int setup(void **state)
{
	struct sched_topology *t = NULL;
	struct kiva_error err = {};

	if (sched_topology_read(SCHED_FIXTURES "/z600", &t, &err) < 0)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

#define GIB (UINT64_C(1) << 30)

static void test_good(void **state)
{
	const struct sched_topology *t = *state;
	static const struct {
		const char *text;
		unsigned cpu;
		uint64_t ram, disk;
		double target;
	} cases[] = {
		{"z600_capacity:\n  cpu_total: 12\n  ram_total_gb: 48\n  disk_total_gb: 2000\n  target_utilization: 0.85\n",
		 12, 48 * GIB, UINT64_C(2000000000000), 0.85},
		{"# seed\nz600_capacity:   # the box\n\n  target_utilization: 1  # all\n", 24,
		 48 * GIB, 0, 1.0},
		{"z600_capacity:\n    cpu_total: 24\n    ram_total_gb: 100\n", 24, 48 * GIB, 0,
		 1.0},
		{"z600_capacity:\n  ram_total_gb: 16.5\r\n", 24, (uint64_t)(16.5 * GIB), 0, 1.0},
		{"z600_capacity:\n", 24, 48 * GIB, 0, 1.0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sched_capacity cap;
		struct kiva_error err = {};
		int r = sched_capacity_parse(cases[i].text, "capacity.yaml", t, &cap, &err);

		if (r != 0)
			fail_msg("case %zu: %d %s", i, r, err.msg);
		assert_int_equal(cap.cpu_total, cases[i].cpu);
		assert_true(cap.ram_bytes == cases[i].ram);
		assert_true(cap.disk_bytes == cases[i].disk);
		assert_true(cap.target == cases[i].target);
	}
}

static void test_bad(void **state)
{
	const struct sched_topology *t = *state;
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{"z600_capacity:\n  target_utilization: 0\n",
		 "capacity.yaml line 2: target_utilization must be above 0 and at most 1, got '0'"},
		{"z600_capacity:\n  target_utilization: 1.5\n",
		 "capacity.yaml line 2: target_utilization must be above 0 and at most 1, got '1.5'"},
		{"z600_capacity:\n  cpu_total: 64\n",
		 "capacity.yaml line 2: cpu_total 64 is more than the 24 CPUs this host has"},
		{"z600_capacity:\n\n  cpu_total: -2\n",
		 "capacity.yaml line 3: cpu_total must not be negative, got '-2'"},
		{"z600_capacity:\n  cpu_total: 2.5\n",
		 "capacity.yaml line 2: cpu_total must be a whole number of at least 1, got '2.5'"},
		{"z600_capacity:\n  ram_total_gb: -1\n",
		 "capacity.yaml line 2: ram_total_gb must not be negative, got '-1'"},
		{"z600_capacity:\n  ram_total_gb: 0\n",
		 "capacity.yaml line 2: ram_total_gb must be above 0, got '0'"},
		{"z600_capacity:\n  disk_total_gb: lots\n",
		 "capacity.yaml line 2: disk_total_gb is not a number: 'lots'"},
		{"z600_capacity:\n  cpu_totl: 4\n",
		 "capacity.yaml line 2: unknown key 'cpu_totl' (known: cpu_total, ram_total_gb, disk_total_gb, target_utilization)"},
		{"z600_capacity:\n  cpu_total: 4\n  cpu_total: 6\n",
		 "capacity.yaml line 3: cpu_total is set twice"},
		{"z600_capacity:\n  cpu_total:\n", "capacity.yaml line 2: cpu_total has no value"},
		{"z600_capacity:\n  cpu_total 4\n",
		 "capacity.yaml line 2: expected 'key: value', got 'cpu_total 4'"},
		{"z600_capacity:\n\tcpu_total: 4\n",
		 "capacity.yaml line 2: tabs are not allowed, indent with spaces"},
		{"  cpu_total: 4\n",
		 "capacity.yaml line 1: 'cpu_total: 4' before the 'z600_capacity:' header"},
		{"capacity:\n  cpu_total: 4\n",
		 "capacity.yaml line 1: expected 'z600_capacity:' once at the top, got 'capacity:'"},
		{"z600_capacity:\n  cpu_total: 4\nz600_capacity:\n",
		 "capacity.yaml line 3: expected 'z600_capacity:' once at the top, got 'z600_capacity:'"},
		{"", "capacity.yaml: no 'z600_capacity:' section"},
		{"z600_capacity:\n  target_utilization: 1e-1\n",
		 "capacity.yaml line 2: target_utilization is not a number: '1e-1'"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sched_capacity cap = {.cpu_total = 777};
		struct kiva_error err = {};
		int r = sched_capacity_parse(cases[i].text, "capacity.yaml", t, &cap, &err);

		if (r != -EINVAL)
			fail_msg("case %zu: %d, want -EINVAL", i, r);
		if (!streq(err.msg, cases[i].msg))
			fail_msg("case %zu:\n got '%s'\nwant '%s'", i, err.msg, cases[i].msg);
		assert_int_equal(cap.cpu_total, 777); /* untouched on failure */
	}
}

static void test_load_missing_is_hardware(void **state)
{
	const struct sched_topology *t = *state;
	struct sched_capacity cap;
	struct kiva_error err = {};

	assert_int_equal(
		sched_capacity_load(SCHED_FIXTURES "/no-such-capacity.yaml", t, &cap, &err), 0);
	assert_int_equal(cap.cpu_total, 24);
	assert_true(cap.ram_bytes == 48 * GIB);
	assert_true(cap.target == 1.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_load_missing_is_hardware),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
