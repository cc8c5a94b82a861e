/* Unit tests of sched-alloc.c on the Z600 fixture (2 nodes × 6 cores × 2 threads): fill,
 * fragment, free, resize, explicit lists, admission messages, and a seeded random sequence of
 * 10,000 operations checking the invariants after every step. Pure: no root. */
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

#define GIB (UINT64_C(1) << 30)

static struct sched_topology *topo;

static int setup(void **state)
{
	struct kiva_error err = {};

	return sched_topology_read(SCHED_FIXTURES "/z600", &topo, &err);
}

static int teardown(void **state)
{
	free(topo);
	return 0;
}

static struct sched_model *model(unsigned cpu_total, double target)
{
	struct sched_capacity cap;
	struct sched_model *m = NULL;

	sched_capacity_from_topology(topo, &cap);
	if (cpu_total)
		cap.cpu_total = cpu_total;
	cap.target = target;
	assert_int_equal(sched_model_new(topo, &cap, &m), 0);
	return m;
}

static struct sched_request count_req(unsigned n, uint64_t mem)
{
	return (struct sched_request){
		.mode = SCHED_CPU_COUNT, .count = n, .mem_bytes = mem, .node = -1};
}

static const char *fmt(const struct sched_cpuset *s)
{
	static char buf[256];

	assert_true(sched_cpuset_format(s, buf, sizeof(buf)) >= 0);
	return buf;
}

static void test_fill(void **state)
{
	static const struct {
		unsigned n;
		const char *cpus;
		int node;
	} steps[] = {
		{4, "0-1,12-13", 0}, /* whole cores with their siblings */
		{4, "6-7,18-19", 1}, /* least-loaded node */
		{3, "2-3,14", 0},     {2, "8,20", 1},
		{5, "9-11,21-22", 1}, {3, "4,15-16", 0}, /* the broken core 3 is filled first */
	};
	struct sched_model *m = model(0, 1.0);
	struct sched_cpuset shared;
	struct kiva_error err = {};

	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		struct sched_request req = count_req(steps[i].n, GIB);
		struct sched_placement pl;

		if (sched_add(m, (uint32_t)i + 1, &req, &pl, &err) < 0)
			fail_msg("step %zu: %s", i, err.msg);
		if (!streq(fmt(&pl.cpus), steps[i].cpus) || pl.node != steps[i].node)
			fail_msg("step %zu: got %s on %d, want %s on %d", i, fmt(&pl.cpus), pl.node,
				 steps[i].cpus, steps[i].node);
		assert_true(pl.mems == UINT64_C(1) << steps[i].node);
	}
	sched_shared_set(m, &shared);
	assert_string_equal(fmt(&shared), "5,17,23");
	sched_model_free(m);
}

static void test_fragment_free_split(void **state)
{
	struct sched_model *m = model(0, 1.0);
	struct sched_request req = count_req(10, 0);
	struct sched_placement pl;
	struct kiva_error err = {};

	assert_int_equal(sched_add(m, 1, &req, &pl, &err), 0);
	assert_int_equal(pl.node, 0);
	assert_int_equal(sched_add(m, 2, &req, &pl, &err), 0);
	assert_int_equal(pl.node, 1);
	/* 2 free on each node: 3 CPUs only fit split. */
	req = count_req(3, 0);
	assert_int_equal(sched_add(m, 3, &req, &pl, &err), 0);
	assert_int_equal(pl.node, -1);
	assert_true(pl.mems == 3);
	assert_int_equal(sched_remove(m, 3), 0);
	assert_int_equal(sched_remove(m, 1), 0);
	assert_int_equal(sched_remove(m, 1), -ENOENT);
	/* Node 0 is empty again: one node. */
	assert_int_equal(sched_add(m, 4, &req, &pl, &err), 0);
	assert_int_equal(pl.node, 0);
	/* Requested node that cannot fit. */
	req = count_req(4, 0);
	req.node = 1;
	assert_int_equal(sched_add(m, 5, &req, &pl, &err), -ENOSPC);
	sched_model_free(m);
}

static void test_resize(void **state)
{
	struct sched_model *m = model(0, 1.0);
	struct sched_request req = count_req(4, 4 * GIB);
	struct sched_placement pl;
	struct kiva_error err = {};

	assert_int_equal(sched_add(m, 1, &req, &pl, &err), 0);
	assert_string_equal(fmt(&pl.cpus), "0-1,12-13");
	req = count_req(6, 4 * GIB);
	assert_int_equal(sched_resize(m, 1, &req, &pl, &err), 0);
	assert_string_equal(fmt(&pl.cpus), "0-2,12-14"); /* kept its CPUs, same node */
	req = count_req(2, 4 * GIB);
	assert_int_equal(sched_resize(m, 1, &req, &pl, &err), 0);
	assert_int_equal(pl.node, 0);
	assert_int_equal(sched_cpuset_count(&pl.cpus), 2);
	req = count_req(64, 4 * GIB);
	assert_int_equal(sched_resize(m, 1, &req, &pl, &err), -ENOSPC);
	assert_int_equal(sched_get(m, 1, &pl), 0);
	assert_int_equal(sched_cpuset_count(&pl.cpus), 2); /* old placement kept */
	assert_int_equal(sched_resize(m, 9, &req, &pl, &err), -ENOENT);
	sched_model_free(m);
}

static void test_explicit(void **state)
{
	struct sched_model *m = model(0, 1.0);
	struct sched_request req = {.mode = SCHED_CPU_LIST, .node = -1};
	struct sched_placement pl;
	struct kiva_error err = {};

	assert_int_equal(sched_cpuset_parse("0-1", &req.cpus), 0);
	assert_int_equal(sched_add(m, 1, &req, &pl, &err), 0);
	assert_string_equal(fmt(&pl.cpus), "0-1");
	assert_int_equal(pl.node, 0);
	assert_int_equal(sched_cpuset_parse("1-2", &req.cpus), 0);
	assert_int_equal(sched_add(m, 2, &req, &pl, &err), -EBUSY);
	assert_string_equal(err.msg, "CPU 1 is already dedicated to instance 1");
	assert_int_equal(sched_cpuset_parse("30", &req.cpus), 0);
	assert_int_equal(sched_add(m, 2, &req, &pl, &err), -EINVAL);
	assert_string_equal(err.msg, "CPU 30 does not exist or is offline (online: 0-23)");
	/* A count never takes CPUs of the list. */
	req = count_req(12, 0);
	req.node = 0;
	assert_int_equal(sched_add(m, 3, &req, &pl, &err), -ENOSPC);
	sched_model_free(m);
}

static void test_admission(void **state)
{
	struct sched_model *m = model(12, 0.85);
	struct sched_request req = count_req(4, 0);
	struct sched_placement pl;
	struct kiva_error err = {};

	assert_int_equal(sched_add(m, 1, &req, &pl, &err), 0);
	req = count_req(64, 0);
	assert_int_equal(sched_add(m, 2, &req, &pl, &err), -ENOSPC);
	assert_string_equal(err.msg,
			    "needs 64 CPUs, host has 12 (target 0.85 → 10 usable, 4 committed)");
	req = count_req(7, 0);
	assert_int_equal(sched_add(m, 2, &req, &pl, &err), -ENOSPC);
	req = (struct sched_request){.mode = SCHED_CPU_NONE, .mem_bytes = 48 * GIB, .node = -1};
	assert_int_equal(sched_add(m, 3, &req, &pl, &err), -ENOSPC);
	assert_string_equal(
		err.msg,
		"needs 48.0 GiB of memory, host has 48.0 GiB (target 0.85 → 40.8 GiB usable, 0.0 GiB committed)");
	sched_model_free(m);
}

/* ---- randomized ---- */

#define N_IDS 64

static void check_invariants(struct sched_model *m, const struct sched_placement *pls,
			     const bool *live, size_t step)
{
	struct sched_cpuset all, shared, expect;
	struct sched_usage u;

	sched_cpuset_zero(&all);
	for (unsigned i = 1; i < N_IDS; i++) {
		if (!live[i])
			continue;
		if (sched_cpuset_intersects(&all, &pls[i].cpus))
			fail_msg("step %zu: instance %u overlaps another", step, i);
		sched_cpuset_or(&all, &pls[i].cpus);
		for (unsigned c = 0; c < 24; c++)
			if (sched_cpuset_has(&pls[i].cpus, c) && sched_cpu_owner(m, c) != i)
				fail_msg("step %zu: CPU %u not owned by %u", step, c, i);
	}
	sched_usage(m, &u);
	if (u.cpus_committed > u.cpus_usable || u.mem_committed > u.mem_usable)
		fail_msg("step %zu: oversubscribed %u/%u CPUs", step, u.cpus_committed,
			 u.cpus_usable);
	assert_int_equal(u.cpus_committed, sched_cpuset_count(&all));
	sched_shared_set(m, &shared);
	expect = topo->online;
	sched_cpuset_andnot(&expect, &all);
	if (!sched_cpuset_equal(&shared, &expect))
		fail_msg("step %zu: shared set is not the complement", step);
}

static void test_random(void **state)
{
	struct sched_model *m = model(20, 0.9);
	struct sched_placement pls[N_IDS] = {};
	bool live[N_IDS] = {};
	unsigned ok = 0, refused = 0;

	srand(4242);
	for (size_t step = 0; step < 10000; step++) {
		unsigned id = 1 + (unsigned)rand() % (N_IDS - 1), op = (unsigned)rand() % 10;
		struct sched_request req =
			count_req(1 + (unsigned)rand() % 8, (uint64_t)(rand() % 8) * GIB);
		struct sched_placement pl;
		struct kiva_error err = {};
		bool fits_one = false;
		int r;

		if (op == 0)
			req.mode = SCHED_CPU_NONE;
		else if (op == 1) {
			req.mode = SCHED_CPU_LIST;
			sched_cpuset_zero(&req.cpus);
			sched_cpuset_add(&req.cpus, (unsigned)rand() % 24);
			sched_cpuset_add(&req.cpus, (unsigned)rand() % 24);
		}
		if (live[id] && op >= 7) {
			assert_int_equal(sched_remove(m, id), 0);
			live[id] = false;
			check_invariants(m, pls, live, step);
			continue;
		}
		if (req.mode == SCHED_CPU_COUNT) {
			struct sched_placement old = {};

			if (live[id])
				old = pls[id];
			for (unsigned n = 0; n < 2; n++) {
				unsigned own = 0;

				for (unsigned c = 0; c < 24; c++)
					own += sched_cpuset_has(&old.cpus, c) &&
					       topo->cpus[c].node == (int)n;
				if (sched_node_free_cpus(m, n) + own >= req.count &&
				    sched_node_mem_committed(m, n) + req.mem_bytes <=
					    (uint64_t)(24 * GIB * 0.9) +
						    (live[id] && old.node == (int)n ? 8 * GIB : 0))
					fits_one = true;
			}
		}
		r = live[id] ? sched_resize(m, id, &req, &pl, &err)
			     : sched_add(m, id, &req, &pl, &err);
		if (r == 0) {
			ok++;
			live[id] = true;
			pls[id] = pl;
			if (req.mode == SCHED_CPU_COUNT) {
				assert_int_equal(sched_cpuset_count(&pl.cpus), req.count);
				if (pl.node < 0 && fits_one)
					fail_msg("step %zu: split although one node fits", step);
			}
		} else {
			refused++;
			assert_true(r == -ENOSPC || r == -EBUSY);
			assert_true(err.msg[0] != '\0');
		}
		check_invariants(m, pls, live, step);
	}
	assert_true(ok > 1000 && refused > 100);
	sched_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fill),	  cmocka_unit_test(test_fragment_free_split),
		cmocka_unit_test(test_resize),	  cmocka_unit_test(test_explicit),
		cmocka_unit_test(test_admission), cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
