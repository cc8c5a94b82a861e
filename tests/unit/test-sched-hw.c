/* Unit tests of sched-hw.c: cpufreq, thermal zones, RAPL and EDAC read from the fake sysfs trees
 * under tests/fixtures/sched/ (the Z600 has all four, the VM none), the node mapping of memory
 * controllers, unparsable files, and setting the governor in a temporary copy of a tree (the
 * source tree is never written). Pure: no root. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "basic-error.h"
#include "basic-fs.h"
#include "basic-macro.h"
#include "kiva-sched.h"

#define AVAIL "conservative ondemand userspace powersave performance schedutil"

static const char *copy_src, *copy_dst;

static int copy_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char dst[1024];

	snprintf(dst, sizeof(dst), "%s%s", copy_dst, path + strlen(copy_src));
	if (type == FTW_D)
		return mkdir(dst, 0755) < 0 && errno != EEXIST ? -1 : 0;
	if (type == FTW_F)
		return copy_file(path, dst, 0644) < 0 ? -1 : 0;
	return -1;
}

/* A writable copy of fixture name in a new temporary directory; the caller removes it. */
static char *copy_fixture(const char *name)
{
	char *dir = strdup("/tmp/kiva-test-sched-hw-XXXXXX");
	char src[1024];

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/%s", SCHED_FIXTURES, name);
	copy_src = src;
	copy_dst = dir;
	assert_int_equal(nftw(src, copy_entry, 16, FTW_PHYS), 0);
	return dir;
}

static void remove_copy(char *dir)
{
	assert_int_equal(rm_rf(dir), 0);
	free(dir);
}

static void write_text(const char *root, const char *rel, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *root, const char *rel)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir_p(path, 0755), 0);
}

static void remove_file(const char *root, const char *rel)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(unlink(path), 0);
}

static struct sched_topology *topology(const char *root)
{
	struct sched_topology *t = NULL;
	struct kiva_error err = {};

	if (sched_topology_read(root, &t, &err) < 0)
		fail_msg("topology of '%s': %s", root, err.msg);
	return t;
}

/* sched_hw_read() that must succeed. Caller frees. */
static struct sched_hw *hw_read(const char *root)
{
	struct sched_topology *t = topology(root);
	struct sched_hw *hw = malloc(sizeof(*hw));
	struct kiva_error err = {};
	int r;

	assert_non_null(hw);
	r = sched_hw_read(root, t, hw, &err);
	if (r != 0)
		fail_msg("sched_hw_read('%s') = %d: %s", root, r, err.msg);
	free(t);
	return hw;
}

static void test_z600(void **state)
{
	struct sched_hw *hw = hw_read(SCHED_FIXTURES "/z600");

	assert_int_equal(hw->n_cpufreq, 24);
	for (unsigned c = 0; c < 24; c++) {
		const struct sched_cpufreq *f = &hw->cpufreq[c];

		assert_true(f->present);
		assert_string_equal(f->governor, "ondemand");
		assert_true(f->cur_khz == 1600000 + 70000 * (uint64_t)c);
		assert_true(f->min_khz == 1600000);
		assert_true(f->max_khz == 3460000);
	}
	assert_false(hw->cpufreq[24].present);
	assert_string_equal(hw->governors_available, AVAIL);

	/* cooling_device0 is not a zone. */
	assert_int_equal(hw->n_thermal, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(hw->thermal[i].index, i);
		assert_string_equal(hw->thermal[i].type, "x86_pkg_temp");
		assert_true(hw->thermal[i].temp_valid);
	}
	assert_true(hw->thermal[0].temp_mc == 52000);
	assert_true(hw->thermal[1].temp_mc == 55000);

	/* intel-rapl (the control type) and the subzone intel-rapl:0:0 are skipped. */
	assert_int_equal(hw->n_rapl, 2);
	assert_int_equal(hw->rapl[0].index, 0);
	assert_string_equal(hw->rapl[0].name, "package-0");
	assert_true(hw->rapl[0].energy_valid);
	assert_true(hw->rapl[0].energy_uj == 123456789);
	assert_true(hw->rapl[0].max_energy_range_uj == UINT64_C(262143328850));
	assert_true(hw->rapl[0].power_limit_uw == 130000000);
	assert_int_equal(hw->rapl[1].index, 1);
	assert_string_equal(hw->rapl[1].name, "package-1");
	assert_true(hw->rapl[1].energy_valid);
	assert_true(hw->rapl[1].energy_uj == 987654321);
	assert_true(hw->rapl[1].max_energy_range_uj == UINT64_C(262143328850));
	assert_true(hw->rapl[1].power_limit_uw == 0); /* no constraint_0 */

	/* Two controllers, two nodes with CPUs: mcN serves node N. */
	assert_int_equal(hw->n_edac, 2);
	assert_int_equal(hw->edac[0].index, 0);
	assert_string_equal(hw->edac[0].name, "i7 core #0");
	assert_true(hw->edac[0].ce == 0 && hw->edac[0].ue == 0);
	assert_int_equal(hw->edac[0].node, 0);
	assert_int_equal(hw->edac[1].index, 1);
	assert_string_equal(hw->edac[1].name, "i7 core #1");
	assert_true(hw->edac[1].ce == 3 && hw->edac[1].ue == 0);
	assert_int_equal(hw->edac[1].node, 1);

	assert_true(sched_hw_error_nodes(hw) == UINT64_C(1) << 1);
	free(hw);
}

static void test_vm(void **state)
{
	struct sched_hw *hw = hw_read(SCHED_FIXTURES "/vm-2cpu/");

	assert_int_equal(hw->n_cpufreq, 0);
	assert_false(hw->cpufreq[0].present);
	assert_false(hw->cpufreq[1].present);
	assert_string_equal(hw->governors_available, "");
	assert_int_equal(hw->n_thermal, 0);
	assert_int_equal(hw->n_rapl, 0);
	assert_int_equal(hw->n_edac, 0);
	assert_true(sched_hw_error_nodes(hw) == 0);
	free(hw);
}

/* Files that exist but are absent or unreadable inside a present directory leave values unknown;
 * a negative temperature parses. */
static void test_partial(void **state)
{
	char *root = copy_fixture("z600");
	struct sched_hw *hw;

	remove_file(root, "sys/devices/system/cpu/cpu3/cpufreq/scaling_cur_freq");
	remove_file(root, "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor");
	remove_file(root, "sys/class/thermal/thermal_zone0/temp");
	write_text(root, "sys/class/thermal/thermal_zone1/temp", "-1500\n");
	remove_file(root, "sys/class/powercap/intel-rapl:0/energy_uj");
	remove_file(root, "sys/devices/system/edac/mc/mc1/mc_name");
	hw = hw_read(root);
	assert_int_equal(hw->n_cpufreq, 24);
	assert_true(hw->cpufreq[3].present);
	assert_string_equal(hw->cpufreq[3].governor, "");
	assert_true(hw->cpufreq[3].cur_khz == 0);
	assert_true(hw->cpufreq[3].max_khz == 3460000);
	assert_int_equal(hw->n_thermal, 2);
	assert_false(hw->thermal[0].temp_valid);
	assert_true(hw->thermal[1].temp_valid);
	assert_true(hw->thermal[1].temp_mc == -1500);
	assert_false(hw->rapl[0].energy_valid);
	assert_true(hw->rapl[0].energy_uj == 0);
	assert_string_equal(hw->edac[1].name, "");
	assert_true(hw->edac[1].ce == 3);
	free(hw);
	remove_copy(root);
}

static void test_garbage(void **state)
{
	static const struct {
		const char *rel;
		const char *text;
	} cases[] = {
		{"sys/devices/system/edac/mc/mc1/ce_count", "abc\n"},
		{"sys/devices/system/edac/mc/mc0/ue_count", "18446744073709551616\n"},
		{"sys/class/thermal/thermal_zone1/temp", "12x\n"},
		{"sys/class/thermal/thermal_zone0/temp", "-\n"},
		{"sys/devices/system/cpu/cpu5/cpufreq/scaling_cur_freq", ""},
		{"sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq", "3.4e6\n"},
		{"sys/class/powercap/intel-rapl:1/energy_uj", "-5\n"},
		{"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
		 "a-governor-name-far-too-long-for-the-kernel\n"},
	};

	char *root = copy_fixture("z600");
	struct sched_topology *t = topology(root);
	struct sched_hw *hw = malloc(sizeof(*hw)), *orig = malloc(sizeof(*hw));

	assert_non_null(hw);
	assert_non_null(orig);
	memset(hw, 0xa5, sizeof(*hw));
	memcpy(orig, hw, sizeof(*hw));
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kiva_error err = {};
		char path[1024], *saved = NULL;
		int r;

		snprintf(path, sizeof(path), "%s/%s", root, cases[i].rel);
		assert_int_equal(read_file(path, 4096, &saved, NULL), 0);
		write_text(root, cases[i].rel, cases[i].text);
		r = sched_hw_read(root, t, hw, &err);
		if (r != -EINVAL || !strstr(err.msg, cases[i].rel))
			fail_msg("%s = '%s': %d '%s'", cases[i].rel, cases[i].text, r, err.msg);
		/* ret is written only on success. */
		assert_memory_equal(hw, orig, sizeof(*hw));
		write_text(root, cases[i].rel, saved);
		free(saved);
	}
	/* Restored: reads again. */
	free(hw);
	hw = hw_read(root);
	assert_true(hw->edac[1].ce == 3);
	free(orig);
	free(hw);
	free(t);
	remove_copy(root);
}

/* More controllers than nodes: unknown; one node: every controller is that node's. */
static void test_edac_nodes(void **state)
{
	char *root = copy_fixture("z600");
	struct sched_hw *hw;

	make_dir(root, "sys/devices/system/edac/mc/mc2");
	write_text(root, "sys/devices/system/edac/mc/mc2/ce_count", "0\n");
	write_text(root, "sys/devices/system/edac/mc/mc2/ue_count", "1\n");
	hw = hw_read(root);
	assert_int_equal(hw->n_edac, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(hw->edac[i].node, -1);
	assert_true(hw->edac[2].ue == 1);
	/* Errors on controllers of unknown nodes mark no node. */
	assert_true(sched_hw_error_nodes(hw) == 0);
	free(hw);
	remove_copy(root);

	root = copy_fixture("vm-2cpu");
	make_dir(root, "sys/devices/system/edac/mc/mc0");
	make_dir(root, "sys/devices/system/edac/mc/mc1");
	write_text(root, "sys/devices/system/edac/mc/mc1/ue_count", "2\n");
	hw = hw_read(root);
	assert_int_equal(hw->n_edac, 2);
	assert_int_equal(hw->edac[0].node, 0);
	assert_int_equal(hw->edac[1].node, 0);
	assert_true(hw->edac[1].ue == 2);
	assert_true(sched_hw_error_nodes(hw) == 1);
	free(hw);
	remove_copy(root);
}

static void test_error_nodes(void **state)
{
	struct sched_hw *hw = calloc(1, sizeof(*hw));

	assert_non_null(hw);
	assert_true(sched_hw_error_nodes(hw) == 0);
	hw->n_edac = 4;
	hw->edac[0] = (struct sched_edac_mc){.index = 0, .ce = 0, .ue = 0, .node = 0};
	hw->edac[1] = (struct sched_edac_mc){.index = 1, .ce = 0, .ue = 1, .node = 1};
	hw->edac[2] = (struct sched_edac_mc){.index = 2, .ce = 7, .ue = 0, .node = 63};
	hw->edac[3] = (struct sched_edac_mc){.index = 3, .ce = 9, .ue = 9, .node = -1};
	assert_true(sched_hw_error_nodes(hw) == ((UINT64_C(1) << 1) | (UINT64_C(1) << 63)));
	free(hw);
}

static void test_governor_name_valid(void **state)
{
	static const struct {
		const char *s;
		bool valid;
	} cases[] = {
		{"performance", true},
		{"schedutil", true},
		{"my_gov-2", true},
		{"a", true},
		{"abcdefghijklmnopqrstuvwxyz01234", true}, /* 31 */
		{"abcdefghijklmnopqrstuvwxyz012345", false}, /* 32 */
		{"", false},
		{NULL, false},
		{"Performance", false},
		{"../x", false},
		{"perf ormance", false},
		{"performance\n", false},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (sched_governor_name_valid(cases[i].s) != cases[i].valid)
			fail_msg("'%s' valid = %d", cases[i].s ? cases[i].s : "(null)",
				 !cases[i].valid);
}

static void assert_governors(const char *root, const struct sched_cpuset *changed,
			     const char *governor)
{
	struct sched_hw *hw = hw_read(root);

	for (unsigned c = 0; c < 24; c++) {
		const char *want = sched_cpuset_has(changed, c) ? governor : "ondemand";

		if (!streq(hw->cpufreq[c].governor, want))
			fail_msg("CPU %u governor '%s', want '%s'", c, hw->cpufreq[c].governor,
				 want);
	}
	free(hw);
}

static void test_set_governor(void **state)
{
	char *root = copy_fixture("z600");
	struct sched_cpuset cpus, none;
	struct kiva_error err = {};
	char path[1024], *text = NULL;

	assert_int_equal(sched_cpuset_parse("2-3,14", &cpus), 0);
	assert_int_equal(sched_hw_set_governor(root, &cpus, "performance", &err), 0);
	assert_governors(root, &cpus, "performance");
	snprintf(path, sizeof(path), "%s/sys/devices/system/cpu/cpu14/cpufreq/scaling_governor",
		 root);
	assert_int_equal(read_file(path, 4096, &text, NULL), 0);
	assert_string_equal(text, "performance\n");
	free(text);

	/* Back to a shorter name: no residue of the longer one. */
	assert_int_equal(sched_hw_set_governor(root, &cpus, "ondemand", &err), 0);
	sched_cpuset_zero(&none);
	assert_governors(root, &none, "");

	/* Nothing to do. */
	assert_int_equal(sched_hw_set_governor(root, &none, "turbo", &err), 0);
	remove_copy(root);
}

static void test_set_governor_refused(void **state)
{
	char *root = copy_fixture("z600");
	struct sched_cpuset cpus, none;
	struct kiva_error err = {};

	sched_cpuset_zero(&none);
	assert_int_equal(sched_cpuset_parse("0,5", &cpus), 0);
	assert_int_equal(sched_hw_set_governor(root, &cpus, "turbo", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'turbo'"));
	assert_non_null(strstr(err.msg, "CPU 0"));
	assert_non_null(strstr(err.msg, "(available: " AVAIL ")"));
	assert_governors(root, &none, "");

	/* The check of CPU 7 fails after CPU 2 passed: CPU 2 is not written either. */
	write_text(root, "sys/devices/system/cpu/cpu7/cpufreq/scaling_available_governors",
		   "ondemand powersave\n");
	assert_int_equal(sched_cpuset_parse("2,7", &cpus), 0);
	err = (struct kiva_error){};
	assert_int_equal(sched_hw_set_governor(root, &cpus, "performance", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "CPU 7"));
	assert_non_null(strstr(err.msg, "(available: ondemand powersave)"));
	assert_governors(root, &none, "");

	/* A substring of an available governor is not one. */
	assert_int_equal(sched_cpuset_parse("2", &cpus), 0);
	assert_int_equal(sched_hw_set_governor(root, &cpus, "demand", &err), -EINVAL);

	/* Invalid name, CPU that does not exist. */
	err = (struct kiva_error){};
	assert_int_equal(sched_hw_set_governor(root, &cpus, "../performance", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Invalid governor name"));
	assert_int_equal(sched_cpuset_parse("2,30", &cpus), 0);
	err = (struct kiva_error){};
	assert_int_equal(sched_hw_set_governor(root, &cpus, "performance", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "CPU 30 does not exist"));
	assert_governors(root, &none, "");
	remove_copy(root);
}

/* A write that fails after others succeeded puts the earlier CPUs back. */
static void test_set_governor_rollback(void **state)
{
	char *root = copy_fixture("z600");
	struct sched_cpuset cpus;
	struct kiva_error err = {};
	struct sched_hw *hw;
	int r;

	/* scaling_governor of CPU 14 is a directory: opening it for writing fails, even as root. */
	remove_file(root, "sys/devices/system/cpu/cpu14/cpufreq/scaling_governor");
	make_dir(root, "sys/devices/system/cpu/cpu14/cpufreq/scaling_governor");
	assert_int_equal(sched_cpuset_parse("2-3,14", &cpus), 0);
	r = sched_hw_set_governor(root, &cpus, "performance", &err);
	assert_int_equal(r, -EISDIR);
	assert_non_null(strstr(err.msg, "cpu14/cpufreq/scaling_governor"));
	hw = hw_read(root);
	for (unsigned c = 0; c < 24; c++)
		if (c != 14 && !streq(hw->cpufreq[c].governor, "ondemand"))
			fail_msg("CPU %u governor '%s' after rollback", c, hw->cpufreq[c].governor);
	free(hw);
	remove_copy(root);
}

static void test_set_governor_no_cpufreq(void **state)
{
	char *root = copy_fixture("vm-2cpu");
	struct sched_cpuset cpus;
	struct kiva_error err = {};
	struct stat st;
	char path[1024];

	assert_int_equal(sched_cpuset_parse("1", &cpus), 0);
	assert_int_equal(sched_hw_set_governor(root, &cpus, "performance", &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "CPU 1 has no frequency scaling"));
	snprintf(path, sizeof(path), "%s/sys/devices/system/cpu/cpu1/cpufreq", root);
	assert_int_equal(stat(path, &st), -1);

	/* A cpufreq directory without a governor list (setpolicy-only driver). */
	make_dir(root, "sys/devices/system/cpu/cpu1/cpufreq");
	err = (struct kiva_error){};
	assert_int_equal(sched_hw_set_governor(root, &cpus, "performance", &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "CPU 1"));
	remove_copy(root);
}

static void test_this_host(void **state)
{
	struct sched_topology *t = NULL;
	struct sched_hw *hw;
	struct kiva_error err = {};
	int r;

	/* The real /sys must read wherever the tests run; what it has is not asserted. */
	if (sched_topology_read("/", &t, &err) < 0)
		skip();
	hw = malloc(sizeof(*hw));
	assert_non_null(hw);
	r = sched_hw_read("/", t, hw, &err);
	if (r != 0)
		fail_msg("sched_hw_read('/') = %d: %s", r, err.msg);
	assert_true(hw->n_cpufreq <= t->n_online);
	assert_true(hw->n_thermal <= SCHED_HW_THERMAL_MAX);
	print_message("# this host: %u cpufreq, %u thermal, %u rapl, %u edac\n", hw->n_cpufreq,
		      hw->n_thermal, hw->n_rapl, hw->n_edac);
	free(hw);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_z600),
		cmocka_unit_test(test_vm),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_edac_nodes),
		cmocka_unit_test(test_error_nodes),
		cmocka_unit_test(test_governor_name_valid),
		cmocka_unit_test(test_set_governor),
		cmocka_unit_test(test_set_governor_refused),
		cmocka_unit_test(test_set_governor_rollback),
		cmocka_unit_test(test_set_governor_no_cpufreq),
		cmocka_unit_test(test_this_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
