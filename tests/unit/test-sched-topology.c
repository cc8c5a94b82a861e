/* Unit tests of sched-topology.c: CPU-list parsing and formatting, and the topology read from
 * the fake sysfs trees under tests/fixtures/sched/ (a two-socket Z600 and this VM's shape), plus
 * the errors for a missing tree. Pure: no root. */
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

static void test_cpuset_parse(void **state)
{
	static const struct {
		const char *in;
		int ret;
		const char *out;
		unsigned count;
	} cases[] = {
		{"0-5,12-17\n", 0, "0-5,12-17", 12},
		{"3", 0, "3", 1},
		{"", 0, "", 0},
		{"0,2,4", 0, "0,2,4", 3},
		{"0-1,1-2", 0, "0-2", 3},
		{"5-3", -EINVAL, NULL, 0},
		{"a", -EINVAL, NULL, 0},
		{"1,", -EINVAL, NULL, 0},
		{"-1", -EINVAL, NULL, 0},
		{"0-", -EINVAL, NULL, 0},
		{"1 2", -EINVAL, NULL, 0},
		{"256", -ERANGE, NULL, 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct sched_cpuset s;
		char buf[128];
		int r = sched_cpuset_parse(cases[i].in, &s);

		if (r != cases[i].ret)
			fail_msg("parse('%s') = %d, want %d", cases[i].in, r, cases[i].ret);
		if (r < 0)
			continue;
		assert_int_equal(sched_cpuset_count(&s), cases[i].count);
		assert_true(sched_cpuset_format(&s, buf, sizeof(buf)) >= 0);
		assert_string_equal(buf, cases[i].out);
	}
}

static void test_cpuset_format_small_buffer(void **state)
{
	struct sched_cpuset s;
	char buf[4];

	assert_int_equal(sched_cpuset_parse("0-5,12-17", &s), 0);
	assert_int_equal(sched_cpuset_format(&s, buf, sizeof(buf)), -ENOBUFS);
}

static void test_z600(void **state)
{
	struct sched_topology *t = NULL;
	struct kiva_error err = {};
	static const int core_ids[] = {0, 1, 2, 8, 9, 10};
	char buf[128];

	assert_int_equal(sched_topology_read(SCHED_FIXTURES "/z600", &t, &err), 0);
	assert_int_equal(t->n_online, 24);
	assert_int_equal(t->n_cpus, 24);
	assert_int_equal(t->n_nodes, 2);
	assert_int_equal(t->n_sockets, 2);
	assert_int_equal(t->n_cores, 12);
	assert_true(t->mem_bytes == UINT64_C(48) << 30);
	for (unsigned n = 0; n < 2; n++) {
		assert_true(t->nodes[n].mem_bytes == UINT64_C(24) << 30);
		assert_int_equal(sched_cpuset_count(&t->nodes[n].cpus), 12);
	}
	assert_true(sched_cpuset_format(&t->nodes[0].cpus, buf, sizeof(buf)) >= 0);
	assert_string_equal(buf, "0-5,12-17");
	assert_true(sched_cpuset_format(&t->nodes[1].cpus, buf, sizeof(buf)) >= 0);
	assert_string_equal(buf, "6-11,18-23");
	for (unsigned c = 0; c < 24; c++) {
		unsigned b = c % 12;

		assert_true(t->cpus[c].online);
		assert_int_equal(t->cpus[c].socket, (int)(b / 6));
		assert_int_equal(t->cpus[c].node, (int)(b / 6));
		assert_int_equal(sched_cpuset_count(&t->cpus[c].siblings), 2);
		assert_true(sched_cpuset_has(&t->cpus[c].siblings, b));
		assert_true(sched_cpuset_has(&t->cpus[c].siblings, b + 12));
		/* Westmere's core ids are 0,1,2,8,9,10: not contiguous. */
		assert_int_equal(t->cpus[c].core, core_ids[b % 6]);
	}
	assert_false(t->cpus[24].online);
	free(t);
}

static void test_vm(void **state)
{
	struct sched_topology *t = NULL;
	struct kiva_error err = {};

	assert_int_equal(sched_topology_read(SCHED_FIXTURES "/vm-2cpu/", &t, &err), 0);
	assert_int_equal(t->n_online, 2);
	assert_int_equal(t->n_nodes, 1);
	assert_int_equal(t->n_sockets, 1);
	assert_int_equal(t->n_cores, 2);
	/* node0/meminfo says 4.6 GiB, /proc/meminfo 23.5 GiB: one node holds all of it */
	assert_true(t->nodes[0].mem_bytes == UINT64_C(24684096) * 1024);
	assert_true(t->mem_bytes == UINT64_C(24684096) * 1024);
	for (unsigned c = 0; c < 2; c++) {
		assert_int_equal(t->cpus[c].node, 0);
		assert_int_equal(sched_cpuset_count(&t->cpus[c].siblings), 1);
	}
	free(t);
}

static void test_missing_tree(void **state)
{
	struct sched_topology *t = NULL;
	struct kiva_error err = {};

	assert_int_equal(sched_topology_read(SCHED_FIXTURES "/does-not-exist", &t, &err), -ENOENT);
	assert_null(t);
	assert_non_null(strstr(err.msg, "does-not-exist/sys/devices/system/cpu/online"));
}

static void test_this_host(void **state)
{
	struct sched_topology *t = NULL;
	struct kiva_error err = {};

	/* The real /sys must parse wherever the tests run; its shape is not asserted. */
	if (sched_topology_read(NULL, &t, &err) < 0)
		skip();
	assert_true(t->n_online >= 1);
	assert_true(t->n_nodes >= 1);
	assert_true(t->mem_bytes > 0);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpuset_parse),
		cmocka_unit_test(test_cpuset_format_small_buffer),
		cmocka_unit_test(test_z600),
		cmocka_unit_test(test_vm),
		cmocka_unit_test(test_missing_tree),
		cmocka_unit_test(test_this_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
