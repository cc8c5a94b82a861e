/* Unit tests of runtime-config.c: the liblxc config renderer (table-driven over cgroup v1/v2
 * hosts, privileged/unprivileged, with and without AppArmor and limits, and injection attempts),
 * the default seccomp profile text, and runtime_config_write into a temporary directory. No root,
 * no liblxc calls. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "runtime.h"

#define V1                                                                                         \
	{                                                                                          \
		.cgroup_version = 1, .apparmor = false, .ncpus = 4                                 \
	}
#define V2                                                                                         \
	{                                                                                          \
		.cgroup_version = 2, .apparmor = false, .ncpus = 4                                 \
	}
#define V1_AA                                                                                      \
	{                                                                                          \
		.cgroup_version = 1, .apparmor = true, .ncpus = 4                                  \
	}
#define V2_AA                                                                                      \
	{                                                                                          \
		.cgroup_version = 2, .apparmor = true, .ncpus = 4                                  \
	}

#define UNPRIV .privileged = false, .idmap_base = 100000, .idmap_size = 65536
#define LIMITS                                                                                     \
	.memory_bytes = 67108864, .cpuset = "0-1", .cpuset_mems = "0", .cpu_count = 2,             \
	.processes = 100

#define LINES(...) ((const char *const[]){__VA_ARGS__, NULL})

struct render_case {
	const char *what;
	struct runtime_host host;
	struct runtime_spec spec;
	const char *const *lines; /* each must be a whole line of the output */
	const char *const *absent; /* none of these may occur anywhere */
};

/* Lines every rendered config has, whatever the host and spec. */
static const char *const common_lines[] = {
	"lxc.uts.name = c1",
	"lxc.rootfs.path = dir:/var/lib/kiva/storage/c1/rootfs",
	"lxc.autodev = 1",
	"lxc.pty.max = 1024",
	"lxc.tty.max = 0",
	"lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force",
	"lxc.net.0.type = empty",
	"lxc.signal.halt = SIGPWR",
	NULL,
};

#define ROOTFS "/var/lib/kiva/storage/c1/rootfs"

static const struct render_case render_cases[] = {
	{
		.what = "v1 privileged, no limits, no apparmor",
		.host = V1,
		.spec = {.name = "c1", .rootfs = ROOTFS, .privileged = true},
		.lines =
			LINES("lxc.cap.drop = mac_admin mac_override sys_module sys_rawio sys_time",
			      "lxc.cgroup.devices.deny = a", "lxc.cgroup.devices.allow = c 1:3 rwm",
			      "lxc.cgroup.devices.allow = c 136:* rwm"),
		.absent = LINES("lxc.idmap", "lxc.apparmor", "lxc.cgroup2.", "lxc.include",
				"limit_in_bytes", "cpuset", "cfs_", "pids.max", "lxc.seccomp",
				"lxc.log"),
	},
	{
		.what = "v1 unprivileged, all limits, seccomp, log",
		.host = V1,
		.spec = {.name = "c1",
			 .rootfs = ROOTFS,
			 .log_path = "/var/log/kiva/c1.log",
			 .console_log = "/var/lib/kiva/containers/c1/console.log",
			 .seccomp_profile = "/var/lib/kiva/seccomp/default",
			 LIMITS,
			 UNPRIV},
		.lines = LINES("lxc.idmap = u 0 100000 65536", "lxc.idmap = g 0 100000 65536",
			       "lxc.cgroup.memory.limit_in_bytes = 67108864",
			       "lxc.cgroup.cpuset.cpus = 0-1", "lxc.cgroup.cpuset.mems = 0",
			       "lxc.cgroup.cpu.cfs_period_us = 100000",
			       "lxc.cgroup.cpu.cfs_quota_us = 200000", "lxc.cgroup.pids.max = 100",
			       "lxc.seccomp.profile = /var/lib/kiva/seccomp/default",
			       "lxc.log.file = /var/log/kiva/c1.log", "lxc.log.level = ERROR",
			       "lxc.console.logfile = /var/lib/kiva/containers/c1/console.log",
			       "lxc.cgroup.devices.deny = a"),
		.absent = LINES("lxc.cap.drop", "lxc.apparmor", "lxc.cgroup2.", "memsw"),
	},
	{
		.what = "v1 unprivileged with apparmor",
		.host = V1_AA,
		.spec = {.name = "c1", .rootfs = ROOTFS, UNPRIV},
		.lines = LINES("lxc.apparmor.profile = generated", "lxc.apparmor.allow_nesting = 0",
			       "lxc.idmap = u 0 100000 65536"),
		.absent = LINES("lxc.cgroup2.", "lxc.cap.drop", "limit_in_bytes"),
	},
	{
		.what = "v1 only a memory limit",
		.host = V1,
		.spec = {.name = "c1", .rootfs = ROOTFS, .memory_bytes = 1073741824, UNPRIV},
		.lines = LINES("lxc.cgroup.memory.limit_in_bytes = 1073741824"),
		.absent = LINES("cpuset", "cfs_", "pids.max", "lxc.cgroup2."),
	},
	{
		.what = "v2 unprivileged, all limits",
		.host = V2,
		.spec = {.name = "c1", .rootfs = ROOTFS, LIMITS, UNPRIV},
		.lines = LINES("lxc.cgroup2.memory.max = 67108864", "lxc.cgroup2.cpuset.cpus = 0-1",
			       "lxc.cgroup2.cpuset.mems = 0", "lxc.cgroup2.cpu.max = 200000 100000",
			       "lxc.cgroup2.pids.max = 100", "lxc.cgroup2.devices.deny = a",
			       "lxc.cgroup2.devices.allow = c 1:9 rwm",
			       "lxc.idmap = g 0 100000 65536"),
		.absent = LINES("lxc.cgroup.", "lxc.apparmor", "lxc.cap.drop", "lxc.log",
				"lxc.seccomp"),
	},
	{
		.what = "v2 privileged with apparmor, no limits",
		.host = V2_AA,
		.spec = {.name = "c1", .rootfs = ROOTFS, .privileged = true},
		.lines = LINES(
			"lxc.apparmor.profile = generated", "lxc.apparmor.allow_nesting = 0",
			"lxc.cap.drop = mac_admin mac_override sys_module sys_rawio sys_time"),
		.absent = LINES("lxc.idmap", "lxc.cgroup.", "memory.max", "cpu.max", "pids.max",
				"cpuset"),
	},
	{
		.what = "v2 one cpu, processes only",
		.host = V2,
		.spec = {.name = "c1", .rootfs = ROOTFS, .cpu_count = 1, .processes = 5, UNPRIV},
		.lines = LINES("lxc.cgroup2.cpu.max = 100000 100000", "lxc.cgroup2.pids.max = 5"),
		.absent = LINES("memory.max", "cpuset"),
	},
};

static bool has_line(const char *text, const char *line)
{
	size_t len = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return true;
	return false;
}

/* Every line is a comment or "lxc.<key> = <value>" with a non-empty value. */
static void assert_well_formed(const char *text)
{
	cleanup_free char *copy = strdup(text);
	char *save = NULL;

	assert_non_null(copy);
	assert_int_equal(text[strlen(text) - 1], '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *eq = strstr(line, " = ");

		if (line[0] == '#')
			continue;
		if (!startswith(line, "lxc.") || !eq || !eq[3] ||
		    strspn(line, "abcdefghijklmnopqrstuvwxyz0123456789._") != (size_t)(eq - line))
			fail_msg("malformed line '%s'", line);
	}
}

static void test_render_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(render_cases); i++) {
		const struct render_case *tc = &render_cases[i];
		cleanup_free char *text = NULL;

		print_message("# case: %s\n", tc->what);
		assert_int_equal(runtime_config_render(&tc->host, &tc->spec, &text), 0);
		assert_non_null(text);
		assert_well_formed(text);
		for (const char *const *l = common_lines; *l; l++)
			if (!has_line(text, *l))
				fail_msg("case '%s': missing line '%s' in:\n%s", tc->what, *l,
					 text);
		for (const char *const *l = tc->lines; *l; l++)
			if (!has_line(text, *l))
				fail_msg("case '%s': missing line '%s' in:\n%s", tc->what, *l,
					 text);
		for (const char *const *a = tc->absent; *a; a++)
			if (strstr(text, *a))
				fail_msg("case '%s': unexpected '%s' in:\n%s", tc->what, *a, text);
	}
}

struct invalid_case {
	const char *what;
	struct runtime_host host;
	struct runtime_spec spec;
};

static const struct invalid_case invalid_cases[] = {
	{"newline in name", V1, {.name = "c1\nlxc.cap.drop =", .rootfs = ROOTFS, UNPRIV}},
	{"carriage return in name", V1, {.name = "c1\r", .rootfs = ROOTFS, UNPRIV}},
	{"slash in name", V1, {.name = "a/b", .rootfs = ROOTFS, UNPRIV}},
	{"dot-dot name", V1, {.name = "..", .rootfs = ROOTFS, UNPRIV}},
	{"empty name", V1, {.name = "", .rootfs = ROOTFS, UNPRIV}},
	{"no name", V1, {.rootfs = ROOTFS, UNPRIV}},
	{"newline in rootfs", V1, {.name = "c1", .rootfs = "/r\nlxc.idmap = u 0 0 1", UNPRIV}},
	{"relative rootfs", V1, {.name = "c1", .rootfs = "rootfs", UNPRIV}},
	{"rootfs with trailing blank", V1, {.name = "c1", .rootfs = "/rootfs ", UNPRIV}},
	{"no rootfs", V1, {.name = "c1", UNPRIV}},
	{"newline in log path", V1, {.name = "c1", .rootfs = ROOTFS, .log_path = "/l\nx", UNPRIV}},
	{"relative log path", V1, {.name = "c1", .rootfs = ROOTFS, .log_path = "c1.log", UNPRIV}},
	{"newline in seccomp path",
	 V2,
	 {.name = "c1", .rootfs = ROOTFS, .seccomp_profile = "/s\n", UNPRIV}},
	{"newline in cpuset",
	 V1,
	 {.name = "c1", .rootfs = ROOTFS, .cpuset = "0\nlxc.x = 1", UNPRIV}},
	{"cpuset with letters", V2, {.name = "c1", .rootfs = ROOTFS, .cpuset = "all", UNPRIV}},
	{"newline in console log path",
	 V1,
	 {.name = "c1", .rootfs = ROOTFS, .console_log = "/c\nlxc.x = 1", UNPRIV}},
	{"newline in cpuset.mems",
	 V1,
	 {.name = "c1", .rootfs = ROOTFS, .cpuset_mems = "0\nlxc.x = 1", UNPRIV}},
	{"negative processes", V1, {.name = "c1", .rootfs = ROOTFS, .processes = -1, UNPRIV}},
	{"unprivileged, idmap size 0",
	 V1,
	 {.name = "c1", .rootfs = ROOTFS, .idmap_base = 100000, .idmap_size = 0}},
	{"unprivileged, idmap base 0",
	 V1,
	 {.name = "c1", .rootfs = ROOTFS, .idmap_base = 0, .idmap_size = 65536}},
	{"idmap past 2^32",
	 V1,
	 {.name = "c1", .rootfs = ROOTFS, .idmap_base = 4294967295u, .idmap_size = 2}},
	{"unknown cgroup version",
	 {.cgroup_version = 3},
	 {.name = "c1", .rootfs = ROOTFS, .privileged = true}},
};

static void test_render_invalid(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(invalid_cases); i++) {
		const struct invalid_case *tc = &invalid_cases[i];
		char *text = (char *)"untouched";

		print_message("# case: %s\n", tc->what);
		assert_int_equal(runtime_config_render(&tc->host, &tc->spec, &text), -EINVAL);
		assert_string_equal(text, "untouched");
	}
}

static void test_render_privileged_ignores_idmap(void **state)
{
	const struct runtime_host host = V1;
	const struct runtime_spec spec = {.name = "c1", .rootfs = ROOTFS, .privileged = true};
	cleanup_free char *text = NULL;

	/* idmap_base/size 0 are fine when no user namespace is used */
	assert_int_equal(runtime_config_render(&host, &spec, &text), 0);
	assert_null(strstr(text, "lxc.idmap"));
}

static void test_render_nics(void **state)
{
	const struct runtime_host host = V1;
	const struct runtime_nic nics[] = {
		{.name = "eth0",
		 .host_name = "kv0123456789",
		 .bridge = "kivabr0",
		 .hwaddr = "00:16:3e:aa:bb:cc",
		 .mtu = 1450,
		 .ipv4 = "10.100.3.5/24",
		 .ipv4_broadcast = "10.100.3.255",
		 .gateway = "10.100.3.1"},
		{.name = "eth1", .host_name = "kvabcdef0123", .bridge = "br1"},
	};
	struct runtime_spec spec = {
		.name = "c1", .rootfs = ROOTFS, .privileged = true, .nics = nics, .nnics = 2};
	struct runtime_nic bad = nics[1];
	cleanup_free char *text = NULL;
	char *untouched = (char *)"untouched";

	assert_int_equal(runtime_config_render(&host, &spec, &text), 0);
	assert_null(strstr(text, "lxc.net.0.type = empty"));
	assert_non_null(strstr(text, "lxc.net.0.type = veth\n"
				     "lxc.net.0.link = kivabr0\n"
				     "lxc.net.0.name = eth0\n"
				     "lxc.net.0.veth.pair = kv0123456789\n"
				     "lxc.net.0.flags = up\n"
				     "lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc\n"
				     "lxc.net.0.mtu = 1450\n"
				     "lxc.net.0.ipv4.address = 10.100.3.5/24 10.100.3.255\n"
				     "lxc.net.0.ipv4.gateway = 10.100.3.1\n"));
	assert_non_null(strstr(text, "lxc.net.1.type = veth\n"
				     "lxc.net.1.link = br1\n"
				     "lxc.net.1.name = eth1\n"
				     "lxc.net.1.veth.pair = kvabcdef0123\n"
				     "lxc.net.1.flags = up\n"));
	assert_null(strstr(text, "lxc.net.1.ipv4"));

	/* a name that could inject keys, or too long for the kernel, is refused */
	const char *const bad_names[] = {"eth0\nlxc.hook.pre-start = /x", "a-name-of-16-chr", "a b",
					 "", "x/y"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		bad.bridge = bad_names[i];
		spec.nics = &bad;
		spec.nnics = 1;
		assert_int_equal(runtime_config_render(&host, &spec, &untouched), -EINVAL);
	}

	/* no NIC: own netns with lo only */
	spec.nnics = 0;
	free(TAKE_PTR(text));
	assert_int_equal(runtime_config_render(&host, &spec, &text), 0);
	assert_non_null(strstr(text, "lxc.net.0.type = empty\n"));
}

static void test_seccomp_default(void **state)
{
	const char *p = runtime_seccomp_default();
	static const char *const denied[] = {
		"kexec_load errno 1",	"kexec_file_load errno 1", "init_module errno 1",
		"finit_module errno 1", "delete_module errno 1",   "open_by_handle_at errno 1",
		"bpf errno 1",		"keyctl errno 38",	   "add_key errno 38",
		"request_key errno 38", "reject_force_umount",	   "[all]",
	};

	assert_non_null(p);
	assert_true(startswith(p, "2\ndenylist\n"));
	assert_int_equal(p[strlen(p) - 1], '\n');
	for (size_t i = 0; i < ARRAY_SIZE(denied); i++)
		if (!has_line(p, denied[i]))
			fail_msg("seccomp profile lacks '%s'", denied[i]);
	/* things busybox and ordinary software need stay allowed */
	assert_null(strstr(p, "allowlist"));
	assert_null(strstr(p, "umount2"));
	assert_null(strstr(p, "mount "));
	assert_null(strstr(p, "kill"));
	assert_ptr_equal(runtime_seccomp_default(), p);
}

static void test_config_write(void **state)
{
	char tmp[] = "/tmp/test-runtime-config.XXXXXX";
	cleanup_free char *path = NULL, *back = NULL;
	struct stat st;

	assert_non_null(mkdtemp(tmp));
	assert_int_equal(runtime_config_write(tmp, "c1", "lxc.uts.name = c1\n"), 0);
	path = strf("%s/c1/config", tmp);
	assert_non_null(path);
	assert_int_equal(read_file(path, 4096, &back, NULL), 0);
	assert_string_equal(back, "lxc.uts.name = c1\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	/* the same text again: the file is left alone (liblxc handles are cached by inode) */
	{
		struct stat again;

		assert_int_equal(runtime_config_write(tmp, "c1", "lxc.uts.name = c1\n"), 0);
		assert_int_equal(stat(path, &again), 0);
		assert_int_equal(again.st_ino, st.st_ino);
	}
	/* rewriting replaces the whole file */
	assert_int_equal(runtime_config_write(tmp, "c1", "lxc.uts.name = c2\n"), 0);
	free(back);
	back = NULL;
	assert_int_equal(read_file(path, 4096, &back, NULL), 0);
	assert_string_equal(back, "lxc.uts.name = c2\n");

	assert_int_equal(runtime_config_write(tmp, "../escape", "x"), -EINVAL);
	assert_int_equal(runtime_config_write(tmp, "a\nb", "x"), -EINVAL);
	assert_int_equal(runtime_config_write("relative", "c1", "x"), -EINVAL);
	assert_int_equal(rm_rf(tmp), 0);
}

/* The files the kernel would show in a cgroup directory, made in a fake tree. */
static void fake_cgroup(const char *dir, const char *const files[])
{
	assert_int_equal(mkdir_p(dir, 0755), 0);
	for (size_t i = 0; files[i]; i++) {
		cleanup_free char *p = strf("%s/%s", dir, files[i]);

		assert_int_equal(write_file_atomic(p, "", 0, 0644), 0);
	}
}

static void assert_file(const char *dir, const char *file, const char *want)
{
	cleanup_free char *p = strf("%s/%s", dir, file), *text = NULL;

	assert_int_equal(read_file(p, 4096, &text, NULL), 0);
	assert_string_equal(text, want);
}

static void test_cpu_weight_v1(void **state)
{
	static const char *const files[] = {"cpu.shares", "cgroup.procs", NULL};
	struct runtime_host h = V1;
	char tmp[] = "/tmp/test-runtime-weight.XXXXXX";
	cleanup_free char *top = NULL, *daemon = NULL, *helpers = NULL, *ret = NULL;
	struct kiva_error err = {0};
	char pid[32];

	(void)state;
	assert_non_null(mkdtemp(tmp));
	top = strf("%s/cpu/kiva.daemon", tmp);
	daemon = strf("%s/daemon", top);
	helpers = strf("%s/helpers", top);
	fake_cgroup(top, files);
	fake_cgroup(daemon, files);
	fake_cgroup(helpers, files);
	assert_int_equal(runtime_cpu_weight_self(&h, tmp, "kiva.daemon", 1000, &ret, &err), 0);
	assert_file(top, "cpu.shares", "10240");
	assert_file(daemon, "cpu.shares", "102400");
	assert_file(helpers, "cpu.shares", "1024");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_file(daemon, "cgroup.procs", pid);
	assert_file(helpers, "cgroup.procs", "");
	assert_string_equal(ret, helpers);

	/* refused: out of range, a bad name, no such hierarchy (with the path) */
	assert_int_equal(runtime_cpu_weight_self(&h, tmp, "kiva.daemon", 0, NULL, &err), -EINVAL);
	assert_int_equal(runtime_cpu_weight_self(&h, tmp, "kiva.daemon", 10001, NULL, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "1-10000"));
	assert_int_equal(runtime_cpu_weight_self(&h, tmp, "../x", 100, NULL, &err), -EINVAL);
	assert_true(runtime_cpu_weight_self(&h, "/nonexistent", "kiva.daemon", 100, NULL, &err) <
		    0);
	assert_non_null(strstr(err.msg, "/nonexistent/cpu/kiva.daemon"));
	assert_int_equal(rm_rf(tmp), 0);
}

static void test_cpu_weight_v2(void **state)
{
	static const char *const top_files[] = {"cpu.weight", "cgroup.procs",
						"cgroup.subtree_control", NULL};
	static const char *const files[] = {"cpu.weight", "cgroup.procs", NULL};
	struct runtime_host h = V2;
	char tmp[] = "/tmp/test-runtime-weight.XXXXXX";
	cleanup_free char *top = NULL, *daemon = NULL, *helpers = NULL, *ret = NULL;
	cleanup_free char *root_ctl = NULL;
	struct kiva_error err = {0};

	(void)state;
	assert_non_null(mkdtemp(tmp));
	top = strf("%s/kiva.daemon", tmp);
	daemon = strf("%s/daemon", top);
	helpers = strf("%s/helpers", top);
	root_ctl = strf("%s/cgroup.subtree_control", tmp);
	assert_int_equal(write_file_atomic(root_ctl, "memory io\n", 10, 0644), 0);
	fake_cgroup(top, top_files);
	fake_cgroup(daemon, files);
	fake_cgroup(helpers, files);
	assert_int_equal(runtime_cpu_weight_self(&h, tmp, "kiva.daemon", 300, &ret, &err), 0);
	/* the cpu controller enabled where it was not: at the root, then in kiva.daemon */
	{
		cleanup_free char *text = NULL;

		assert_int_equal(read_file(root_ctl, 4096, &text, NULL), 0);
		assert_true(startswith(text, "+cpu"));
	}
	assert_file(top, "cgroup.subtree_control", "+cpu");
	assert_file(top, "cpu.weight", "300");
	assert_file(daemon, "cpu.weight", "10000");
	assert_file(helpers, "cpu.weight", "100");
	assert_string_equal(ret, helpers);

	/* already enabled: left alone */
	assert_int_equal(write_file_atomic(root_ctl, "cpu memory\n", 11, 0644), 0);
	assert_int_equal(runtime_cpu_weight_self(&h, tmp, "kiva.daemon", 300, NULL, &err), 0);
	assert_file(tmp, "cgroup.subtree_control", "cpu memory\n");
	assert_int_equal(rm_rf(tmp), 0);
}

static void test_host_probe(void **state)
{
	struct runtime_host h = {.cgroup_version = 99};
	int r = runtime_host_probe(&h);

	if (r < 0)
		skip(); /* no /sys/fs/cgroup in this build environment */
	assert_true(h.cgroup_version == 1 || h.cgroup_version == 2);
	assert_true(h.ncpus >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_table),
		cmocka_unit_test(test_render_invalid),
		cmocka_unit_test(test_render_privileged_ignores_idmap),
		cmocka_unit_test(test_render_nics),
		cmocka_unit_test(test_seccomp_default),
		cmocka_unit_test(test_config_write),
		cmocka_unit_test(test_cpu_weight_v1),
		cmocka_unit_test(test_cpu_weight_v2),
		cmocka_unit_test(test_host_probe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
