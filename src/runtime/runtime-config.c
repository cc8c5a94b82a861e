/* liblxc config generation: probes what the host offers and renders one container's complete,
 * self-contained liblxc config from a pure description. Nothing from the distribution's
 * /usr/share/lxc/config is included, so the result does not depend on how lxc is packaged, and
 * no lxc.apparmor.* key is written on hosts without AppArmor (feasibility §1: lxc's default
 * "generated" profile fails there). Rendering does no I/O and is unit-tested without root. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "runtime.h"

/* lxc.arch of the containers: the build's own architecture (liblxc's personality names);
 * elsewhere the key is left out and liblxc uses the host's. */
#if defined(__x86_64__)
#define RUNTIME_ARCH "x86_64"
#elif defined(__aarch64__)
#define RUNTIME_ARCH "aarch64"
#elif defined(__i386__)
#define RUNTIME_ARCH "i686"
#elif defined(__powerpc64__)
#define RUNTIME_ARCH "ppc64le"
#elif defined(__s390x__)
#define RUNTIME_ARCH "s390x"
#endif

/* CFS period for lxc.cgroup.cpu.cfs_quota_us / lxc.cgroup2.cpu.max: 100 ms, the kernel default. */
#define RUNTIME_CPU_PERIOD_USEC 100000ULL

/* Device nodes a container may use (lxc's common.conf list): char major:minor and what. Any
 * mknod is allowed ("m"), reading and writing only these. */
static const char *const runtime_devices_allow[] = {
	"c *:* m", /* mknod of any character device */
	"b *:* m", /* mknod of any block device */
	"c 1:3 rwm", /* /dev/null */
	"c 1:5 rwm", /* /dev/zero */
	"c 1:7 rwm", /* /dev/full */
	"c 1:8 rwm", /* /dev/random */
	"c 1:9 rwm", /* /dev/urandom */
	"c 5:0 rwm", /* /dev/tty */
	"c 5:1 rwm", /* /dev/console */
	"c 5:2 rwm", /* /dev/ptmx */
	"c 136:* rwm", /* /dev/pts/N */
	"c 10:229 rwm", /* /dev/fuse */
	"c 10:200 rwm", /* /dev/net/tun */
};

/* liblxc seccomp policy, version 2 (lxc.container.conf(5) "SECCOMP CONFIGURATION"): a denylist.
 * [all] makes the rules apply to the compat ABIs (i386, x32) too. reject_force_umount refuses
 * umount2(MNT_FORCE) only. Keyring calls fail with ENOSYS so software falls back as on kernels
 * without keys; the rest fail with EPERM. */
static const char runtime_seccomp_profile[] = "2\n"
					      "denylist\n"
					      "reject_force_umount\n"
					      "[all]\n"
					      "kexec_load errno 1\n"
					      "kexec_file_load errno 1\n"
					      "init_module errno 1\n"
					      "finit_module errno 1\n"
					      "delete_module errno 1\n"
					      "open_by_handle_at errno 1\n"
					      "bpf errno 1\n"
					      "keyctl errno 38\n"
					      "add_key errno 38\n"
					      "request_key errno 38\n";

const char *runtime_seccomp_default(void)
{
	return runtime_seccomp_profile;
}

int runtime_host_probe(struct runtime_host *ret)
{
	struct runtime_host h = {0};
	struct statfs sfs;
	long n;

	if (statfs("/sys/fs/cgroup", &sfs) < 0)
		return -errno;
	h.cgroup_version = (sfs.f_type == CGROUP2_SUPER_MAGIC) ? 2 : 1;

	if (access("/sys/kernel/security/apparmor", F_OK) == 0) {
		cleanup_free char *enabled = NULL;

		if (read_file("/sys/module/apparmor/parameters/enabled", 64, &enabled, NULL) >= 0)
			h.apparmor = enabled[0] == 'Y';
	}

	n = sysconf(_SC_NPROCESSORS_ONLN);
	h.ncpus = n > 0 ? (unsigned)n : 1;

	*ret = h;
	return 0;
}

static bool name_is_safe(const char *s);

/* Writes text to an existing control file (cgroup files cannot be replaced by a rename). */
static int write_control(const char *dir, const char *file, const char *text)
{
	cleanup_free char *path = strf("%s/%s", dir, file);
	cleanup_close int fd = -EBADF;
	size_t len = strlen(text);

	if (!path)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		return -errno ?: -EIO;
	return 0;
}

/* Creates dir (if missing) with CPU weight weight; v2: with the cpu controller enabled in its
 * parent's subtree_control first (parent_v2, NULL on v1). */
static int weighted_dir(const struct runtime_host *host, const char *parent_v2, const char *dir,
			unsigned weight, struct kiva_error *reterr)
{
	char value[32];
	int r;

	if (host->cgroup_version == 2) {
		cleanup_free char *top = strf("%s/cgroup.subtree_control", parent_v2);
		cleanup_free char *controllers = NULL;

		if (!top)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		r = read_file(top, 4096, &controllers, NULL);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to read %s: %s", top,
					      strerror(-r));
		if (!str_has_word(controllers, "cpu")) {
			r = write_control(parent_v2, "cgroup.subtree_control", "+cpu");
			if (r < 0)
				return kiva_error_set(reterr, r,
						      "The cpu controller is not enabled in %s "
						      "and cannot be: %s",
						      parent_v2, strerror(-r));
		}
		snprintf(value, sizeof(value), "%u", weight);
	} else {
		/* v2's scale onto v1's: the default weight 100 is 1024 shares */
		snprintf(value, sizeof(value), "%u", (unsigned)((uint64_t)weight * 1024 / 100));
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return kiva_error_set(reterr, -errno, "Failed to create the cgroup %s: %m", dir);
	r = write_control(dir, host->cgroup_version == 2 ? "cpu.weight" : "cpu.shares", value);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to set the CPU weight of %s to %s: %s",
				      dir, value, strerror(-r));
	return 0;
}

int runtime_cpu_weight_self(const struct runtime_host *host, const char *root, const char *name,
			    unsigned weight, char **ret_helpers, struct kiva_error *reterr)
{
	cleanup_free char *top = NULL, *self = NULL, *helpers = NULL, *base = NULL;
	char pid[32];
	int r;

	if (!name_is_safe(name) || weight < 1 || weight > 10000)
		return kiva_error_set(reterr, -EINVAL, "Invalid CPU weight %u (1-10000)", weight);
	base = host->cgroup_version == 2 ? strdup(root) : strf("%s/cpu", root);
	top = base ? strf("%s/%s", base, name) : NULL;
	self = top ? strf("%s/daemon", top) : NULL;
	helpers = top ? strf("%s/helpers", top) : NULL;
	if (!helpers)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = weighted_dir(host, base, top, weight, reterr);
	if (r == 0)
		r = weighted_dir(host, top, self, 10000, reterr);
	if (r == 0)
		r = weighted_dir(host, top, helpers, 100, reterr);
	if (r < 0)
		return r;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	r = write_control(self, "cgroup.procs", pid);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to move into %s: %s", self, strerror(-r));
	if (ret_helpers)
		*ret_helpers = TAKE_PTR(helpers);
	return 0;
}

/* A value is written as "key = value\n": a control character (newline above all) would let it
 * add keys of its own, and liblxc trims surrounding blanks, so those are refused too. */
static bool value_is_safe(const char *s)
{
	size_t len;

	if (!s || !*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	len = strlen(s);
	return s[0] != ' ' && s[len - 1] != ' ';
}

static bool path_is_safe(const char *s)
{
	return value_is_safe(s) && s[0] == '/';
}

/* The instance name is also a directory below lxcpath. */
static bool name_is_safe(const char *s)
{
	return value_is_safe(s) && !strchr(s, '/') && !streq(s, ".") && !streq(s, "..") &&
	       strlen(s) < NAME_MAX;
}

static bool cpuset_is_safe(const char *s)
{
	if (!s || !*s)
		return false;
	return strspn(s, "0123456789,-") == strlen(s);
}

/* Interface names: what the kernel takes (1-15 chars, no '/', blanks or ':'). */
static bool ifname_is_safe(const char *s)
{
	return value_is_safe(s) && strlen(s) < 16 && !strpbrk(s, "/: ");
}

static bool nic_is_safe(const struct runtime_nic *n)
{
	return ifname_is_safe(n->name) && ifname_is_safe(n->host_name) &&
	       ifname_is_safe(n->bridge) && (!n->hwaddr || value_is_safe(n->hwaddr)) &&
	       (!n->ipv4 || value_is_safe(n->ipv4)) &&
	       (!n->ipv4_broadcast || value_is_safe(n->ipv4_broadcast)) &&
	       (!n->gateway || value_is_safe(n->gateway));
}

static int spec_validate(const struct runtime_host *host, const struct runtime_spec *spec)
{
	for (size_t i = 0; i < spec->nnics; i++)
		if (!nic_is_safe(&spec->nics[i]))
			return -EINVAL;
	/* mount entries are split on blanks */
	if (spec->resolv_conf &&
	    (!path_is_safe(spec->resolv_conf) || strchr(spec->resolv_conf, ' ')))
		return -EINVAL;
	if (host->cgroup_version != 1 && host->cgroup_version != 2)
		return -EINVAL;
	if (!name_is_safe(spec->name) || !path_is_safe(spec->rootfs))
		return -EINVAL;
	if (spec->console_log && !path_is_safe(spec->console_log))
		return -EINVAL;
	if (spec->log_path && !path_is_safe(spec->log_path))
		return -EINVAL;
	if (spec->seccomp_profile && !path_is_safe(spec->seccomp_profile))
		return -EINVAL;
	if ((spec->cpuset && !cpuset_is_safe(spec->cpuset)) ||
	    (spec->cpuset_mems && !cpuset_is_safe(spec->cpuset_mems)))
		return -EINVAL;
	if (spec->processes < 0)
		return -EINVAL;
	if (!spec->privileged) {
		/* base 0 would map the container's root to the host's root */
		if (spec->idmap_base == 0 || spec->idmap_size == 0)
			return -EINVAL;
		if ((uint64_t)spec->idmap_base + spec->idmap_size > (uint64_t)UINT32_MAX + 1)
			return -EINVAL;
	}
	return 0;
}

static void render_limits_v1(FILE *f, const struct runtime_spec *spec)
{
	fputs("lxc.cgroup.devices.deny = a\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(runtime_devices_allow); i++)
		fprintf(f, "lxc.cgroup.devices.allow = %s\n", runtime_devices_allow[i]);
	if (spec->memory_bytes > 0)
		fprintf(f, "lxc.cgroup.memory.limit_in_bytes = %" PRIu64 "\n", spec->memory_bytes);
	if (spec->cpuset)
		fprintf(f, "lxc.cgroup.cpuset.cpus = %s\n", spec->cpuset);
	if (spec->cpuset_mems)
		fprintf(f, "lxc.cgroup.cpuset.mems = %s\n", spec->cpuset_mems);
	if (spec->cpu_count > 0) {
		fprintf(f, "lxc.cgroup.cpu.cfs_period_us = %llu\n", RUNTIME_CPU_PERIOD_USEC);
		fprintf(f, "lxc.cgroup.cpu.cfs_quota_us = %llu\n",
			RUNTIME_CPU_PERIOD_USEC * spec->cpu_count);
	}
	if (spec->processes > 0)
		fprintf(f, "lxc.cgroup.pids.max = %" PRId64 "\n", spec->processes);
}

static void render_limits_v2(FILE *f, const struct runtime_spec *spec)
{
	fputs("lxc.cgroup2.devices.deny = a\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(runtime_devices_allow); i++)
		fprintf(f, "lxc.cgroup2.devices.allow = %s\n", runtime_devices_allow[i]);
	if (spec->memory_bytes > 0)
		fprintf(f, "lxc.cgroup2.memory.max = %" PRIu64 "\n", spec->memory_bytes);
	if (spec->cpuset)
		fprintf(f, "lxc.cgroup2.cpuset.cpus = %s\n", spec->cpuset);
	if (spec->cpuset_mems)
		fprintf(f, "lxc.cgroup2.cpuset.mems = %s\n", spec->cpuset_mems);
	if (spec->cpu_count > 0)
		fprintf(f, "lxc.cgroup2.cpu.max = %llu %llu\n",
			RUNTIME_CPU_PERIOD_USEC * spec->cpu_count, RUNTIME_CPU_PERIOD_USEC);
	if (spec->processes > 0)
		fprintf(f, "lxc.cgroup2.pids.max = %" PRId64 "\n", spec->processes);
}

int runtime_config_render(const struct runtime_host *host, const struct runtime_spec *spec,
			  char **ret_text)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	r = spec_validate(host, spec);
	if (r < 0)
		return r;

	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;

	fprintf(f, "# Generated by KIVA for instance %s; rewritten on every start.\n", spec->name);
	fprintf(f, "lxc.uts.name = %s\n", spec->name);
#ifdef RUNTIME_ARCH
	fputs("lxc.arch = " RUNTIME_ARCH "\n", f);
#endif
	fprintf(f, "lxc.rootfs.path = dir:%s\n", spec->rootfs);
	/* cgroup:...:force: with cgroup namespaces liblxc otherwise leaves mounting cgroups to
	 * the container's init, and busybox's does not. lxc.net.0.type = empty: own netns, lo only.
	 * A console (LXD has one: `kiva console`, `lxc console`), logged when asked; CRIU, which
	 * cannot dump a console (feasibility §4), does not work on this kernel anyway. */
	if (spec->console_log)
		fprintf(f, "lxc.console.logfile = %s\n", spec->console_log);
	fputs("lxc.autodev = 1\n"
	      "lxc.pty.max = 1024\n"
	      "lxc.tty.max = 0\n"
	      "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed:force\n"
	      "lxc.signal.halt = SIGPWR\n"
	      "lxc.environment = PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
	      f);

	if (spec->resolv_conf)
		fprintf(f,
			"lxc.mount.entry = %s etc/resolv.conf none bind,ro,create=file,optional 0 0\n",
			spec->resolv_conf);
	if (spec->nnics == 0)
		fputs("lxc.net.0.type = empty\n", f);
	for (size_t i = 0; i < spec->nnics; i++) {
		const struct runtime_nic *n = &spec->nics[i];

		fprintf(f,
			"lxc.net.%zu.type = veth\n"
			"lxc.net.%zu.link = %s\n"
			"lxc.net.%zu.name = %s\n"
			"lxc.net.%zu.veth.pair = %s\n"
			"lxc.net.%zu.flags = up\n",
			i, i, n->bridge, i, n->name, i, n->host_name, i);
		if (n->hwaddr)
			fprintf(f, "lxc.net.%zu.hwaddr = %s\n", i, n->hwaddr);
		if (n->mtu)
			fprintf(f, "lxc.net.%zu.mtu = %u\n", i, n->mtu);
		if (n->ipv4)
			fprintf(f, "lxc.net.%zu.ipv4.address = %s%s%s\n", i, n->ipv4,
				n->ipv4_broadcast ? " " : "",
				n->ipv4_broadcast ? n->ipv4_broadcast : "");
		if (n->gateway)
			fprintf(f, "lxc.net.%zu.ipv4.gateway = %s\n", i, n->gateway);
	}

	if (spec->privileged) {
		fputs("lxc.cap.drop = mac_admin mac_override sys_module sys_rawio sys_time\n", f);
	} else {
		fprintf(f, "lxc.idmap = u 0 %" PRIu32 " %" PRIu32 "\n", spec->idmap_base,
			spec->idmap_size);
		fprintf(f, "lxc.idmap = g 0 %" PRIu32 " %" PRIu32 "\n", spec->idmap_base,
			spec->idmap_size);
	}

	if (host->apparmor)
		fputs("lxc.apparmor.profile = generated\n"
		      "lxc.apparmor.allow_nesting = 0\n",
		      f);
	if (spec->seccomp_profile)
		fprintf(f, "lxc.seccomp.profile = %s\n", spec->seccomp_profile);

	if (host->cgroup_version == 2)
		render_limits_v2(f, spec);
	else
		render_limits_v1(f, spec);

	/* ERROR: WARN adds a line per exec ("No security context received") */
	if (spec->log_path) {
		fprintf(f, "lxc.log.file = %s\n", spec->log_path);
		fputs("lxc.log.level = ERROR\n", f);
	}

	r = ferror(f) ? -ENOMEM : 0;
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0)
		return r;
	*ret_text = TAKE_PTR(text);
	return 0;
}

int runtime_config_write(const char *lxcpath, const char *name, const char *text)
{
	cleanup_free char *dir = NULL, *path = NULL;
	int r;

	if (!lxcpath || lxcpath[0] != '/' || !name_is_safe(name) || !text)
		return -EINVAL;
	dir = strf("%s/%s", lxcpath, name);
	path = strf("%s/%s/config", lxcpath, name);
	if (!dir || !path)
		return -ENOMEM;
	/* 0755: liblxc sets up user-namespaced containers partly as the mapped root */
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	/* unchanged: left alone (its inode keeps liblxc's loaded handle valid, see container_open) */
	{
		cleanup_free char *cur = NULL;

		if (read_file(path, 1 << 20, &cur, NULL) >= 0 && cur && streq(cur, text))
			return 0;
	}
	/* no fsync: the config is rendered again from the store on every start and at reconcile */
	return write_file_replace(path, text, strlen(text), 0644);
}
