/* The busybox image builder: a complete LXD-layout image (metadata.yaml + rootfs/) made offline
 * from the host's static busybox, with one symlink per applet, a minimal /etc and KIVA's own
 * /sbin/init, which stops at once on SIGPWR/SIGTERM (lxc's halt signals) instead of the stock
 * busybox init + udhcpc that makes graceful stops slow (feasibility "Top surprises" 3).
 * Also the owner shift used for unprivileged containers (image_shift_tree). */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

/* Container ids an image may use before shifting (the size of one idmap range). */
#define SHIFT_RANGE 65536u

static const char init_script[] =
	"#!/bin/sh\n"
	"# KIVA busybox init: runs rcS, reaps children, halts at once on SIGPWR/SIGTERM/SIGUSR1/SIGUSR2/SIGINT\n"
	"# (no DHCP, no sleeps unless other processes must be given a moment to exit).\n"
	"# The trap is set before anything else: a halt signal that comes while rcS runs is not lost.\n"
	"pause=\n"
	"halt() {\n"
	"\ttrap '' PWR TERM USR1 USR2 INT\n"
	"\t[ -n \"$pause\" ] && kill -KILL \"$pause\" 2>/dev/null && wait \"$pause\" 2>/dev/null\n"
	"\t# kill -1 fails when no other process is left: then there is nothing to wait for.\n"
	"\tkill -TERM -1 2>/dev/null && sleep 0.05\n"
	"\texit 0\n"
	"}\n"
	"trap halt PWR TERM USR1 USR2 INT\n"
	"[ -x /etc/init.d/rcS ] && /etc/init.d/rcS\n"
	"# a root shell on the console (kiva console / lxc console), started again when it exits\n"
	"if [ -c /dev/console ]; then\n"
	"\t(while :; do setsid -c sh </dev/console >/dev/console 2>&1 || sleep 1; done) &\n"
	"fi\n"
	"# wait reaps any child (orphans included) while it waits for the pause.\n"
	"while :; do sleep 2147483647 & pause=$!; wait \"$pause\"; done\n";

static const char rcs_script[] =
	"#!/bin/sh\n"
	"# KIVA busybox rcS: minimal boot, no DHCP (KIVA configures the network from the host).\n"
	"[ -e /proc/self ] || mount -t proc -o nosuid,nodev,noexec proc /proc\n"
	"grep -qs ' /run ' /proc/mounts || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run\n"
	"grep -qs ' /tmp ' /proc/mounts || mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp\n"
	"ip link set lo up 2>/dev/null\n"
	"echo \"KIVA busybox: $(hostname) booted\" >/dev/console 2>/dev/null\n"
	"exit 0\n";

struct rootfs_dir {
	const char *path;
	mode_t mode;
};

static const struct rootfs_dir rootfs_dirs[] = {
	{"bin", 0755},	{"sbin", 0755},	   {"etc", 0755},  {"etc/init.d", 0755}, {"dev", 0755},
	{"proc", 0555}, {"sys", 0555},	   {"tmp", 01777}, {"run", 0755},	 {"root", 0700},
	{"var", 0755},	{"var/log", 0755}, {"usr", 0755},  {"usr/bin", 0755},	 {"usr/sbin", 0755},
	{"home", 0755}, {"mnt", 0755},
};

/* Runs argv (argv[0] absolute) and returns its stdout (at most 1 MiB; stderr is dropped). */
static int run_capture(char *const argv[], char **ret_out)
{
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	posix_spawn_file_actions_t fa;
	cleanup_close int rfd = -EBADF;
	cleanup_free char *out = NULL;
	size_t len = 0, cap = 65536;
	int pipefd[2], status, r;
	pid_t pid;

	out = malloc(cap + 1);
	if (!out)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	rfd = pipefd[0];
	r = posix_spawn_file_actions_init(&fa);
	if (r == 0)
		r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	if (r == 0)
		r = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (r == 0)
		r = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0)
		return -r;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap >= (1 << 20)) {
				r = -EFBIG;
				break;
			}
			cap *= 2;
			nb = realloc(out, cap + 1);
			if (!nb) {
				r = -ENOMEM;
				break;
			}
			out = nb;
		}
		n = read(rfd, out + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(TAKE_FD(rfd)); /* a child still writing gets EPIPE instead of blocking us */
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (r < 0)
		return r;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	out[len] = 0;
	*ret_out = TAKE_PTR(out);
	return 0;
}

/* Refuses a dynamically linked busybox: it would not run inside the container. */
static int check_static_elf(const char *path, struct kiva_error *reterr)
{
	cleanup_close int fd = -EBADF;
	Elf64_Ehdr eh;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kiva_error_set(reterr, -errno, "Failed to open busybox '%s': %m", path);
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr))
		return kiva_error_set(reterr, -ENOEXEC, "'%s' is not a 64-bit ELF executable",
				      path);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    (ssize_t)sizeof(ph))
			return kiva_error_set(reterr, -ENOEXEC, "'%s' is a truncated ELF file",
					      path);
		if (ph.p_type == PT_INTERP)
			return kiva_error_set(
				reterr, -ENOEXEC,
				"'%s' is dynamically linked; a static busybox is needed (Debian: busybox-static)",
				path);
	}
	return 0;
}

/* "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary." → "1.35.0" */
static char *busybox_version(const char *busybox_path)
{
	char *argv[] = {(char *)busybox_path, NULL};
	cleanup_free char *out = NULL;
	const char *v;
	size_t n;

	if (run_capture(argv, &out) < 0)
		return NULL;
	v = strstr(out, "BusyBox v");
	if (!v)
		return NULL;
	v += strlen("BusyBox v");
	n = strspn(v, "0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_+~");
	return n > 0 ? strndup(v, n) : NULL;
}

/* mkdir -p relative to dfd. */
static int mkdirat_p(int dfd, const char *rel, mode_t mode)
{
	char buf[4096];
	size_t len = strlen(rel);

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, rel, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;

			*p = 0;
			if (mkdirat(dfd, buf, mode) < 0 && errno != EEXIST)
				return -errno;
			if (c == 0)
				break;
			*p = c;
		}
	}
	return 0;
}

static int write_new_file(int dfd, const char *rel, const char *content, mode_t mode)
{
	cleanup_close int fd = -EBADF;
	size_t len = strlen(content);
	const char *p = content;

	fd = openat(dfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, mode) < 0) /* umask */
		return -errno;
	return 0;
}

/* An applet path from `busybox --list-full`: relative, no empty, "." or ".." components. */
static bool applet_path_ok(const char *p)
{
	if (!*p || *p == '/')
		return false;
	for (;;) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

static int install_applets(int rootfd, const char *busybox_path, struct kiva_error *reterr)
{
	char *argv[] = {(char *)busybox_path, "--list-full", NULL};
	cleanup_free char *list = NULL;
	char *save = NULL;
	unsigned count = 0;
	int r;

	r = run_capture(argv, &list);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to run '%s --list-full': %s", busybox_path,
				      strerror(-r));
	for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *slash;

		if (!applet_path_ok(line))
			continue;
		/* Our own init script replaces busybox's init; bin/busybox is the binary itself. */
		if (streq(line, "sbin/init") || streq(line, "bin/busybox") ||
		    streq(line, "linuxrc"))
			continue;
		slash = strrchr(line, '/');
		if (slash) {
			*slash = 0;
			r = mkdirat_p(rootfd, line, 0755);
			*slash = '/';
			if (r < 0)
				return kiva_error_set(reterr, r, "Failed to create rootfs/%.*s: %s",
						      (int)(slash - line), line, strerror(-r));
		}
		if (symlinkat("/bin/busybox", rootfd, line) < 0) {
			if (errno == EEXIST)
				continue;
			return kiva_error_set(reterr, -errno, "Failed to create rootfs/%s: %m",
					      line);
		}
		count++;
	}
	if (count == 0)
		return kiva_error_set(reterr, -EINVAL, "'%s --list-full' listed no applets",
				      busybox_path);
	return 0;
}

struct etc_file {
	const char *path;
	const char *content;
	mode_t mode;
};

static int write_etc(int rootfd, const char *version, struct kiva_error *reterr)
{
	cleanup_free char *os_release = strf("NAME=\"BusyBox\"\nID=busybox\nVERSION_ID=\"%s\"\n"
					     "PRETTY_NAME=\"BusyBox %s (KIVA)\"\n",
					     version, version);
	const struct etc_file files[] = {
		{"sbin/init", init_script, 0755},
		{"etc/init.d/rcS", rcs_script, 0755},
		{"etc/passwd",
		 "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		 0644},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n", 0644},
		{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		 0644},
		{"etc/profile",
		 "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
		 "export PS1='\\h:\\w\\$ '\n",
		 0644},
		{"etc/resolv.conf", "", 0644},
		{"etc/os-release", os_release, 0644},
	};
	int r;

	if (!os_release)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		r = write_new_file(rootfd, files[i].path, files[i].content, files[i].mode);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to write rootfs/%s: %s",
					      files[i].path, strerror(-r));
	}
	if (symlinkat("/proc/self/mounts", rootfd, "etc/mtab") < 0)
		return kiva_error_set(reterr, -errno, "Failed to create rootfs/etc/mtab: %m");
	return 0;
}

static const char *lxd_architecture(const char *machine)
{
	/* LXD's names (shared/osarch): the kernel's, except for 32-bit ARM and x86. */
	if (streq(machine, "i686") || streq(machine, "i586") || streq(machine, "i386"))
		return "i686";
	if (startswith(machine, "armv7"))
		return "armv7l";
	return machine;
}

static int write_metadata(const char *dir, const char *version, struct kiva_error *reterr)
{
	cleanup_free char *path = strf("%s/metadata.yaml", dir);
	cleanup_free char *yaml = NULL;
	struct utsname u;
	const char *arch;
	int r;

	if (uname(&u) < 0)
		return kiva_error_set(reterr, -errno, "uname failed: %m");
	arch = lxd_architecture(u.machine);
	yaml = strf("architecture: %s\n"
		    "creation_date: %lld\n"
		    "properties:\n"
		    "  architecture: %s\n"
		    "  description: Busybox %s (KIVA builder)\n"
		    "  name: busybox-%s\n"
		    "  os: Busybox\n"
		    "  release: \"%s\"\n"
		    "templates: {}\n",
		    arch, (long long)time(NULL), arch, arch, arch, version);
	if (!path || !yaml)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = write_file_atomic(path, yaml, strlen(yaml), 0644);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to write '%s': %s", path, strerror(-r));
	return 0;
}

static int shift_at(int dfd, const char *name, uint32_t shift_base, char *path, size_t path_len,
		    struct kiva_error *reterr)
{
	struct stat st;
	int r = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return kiva_error_set(reterr, -errno, "Failed to stat '%s': %m", path);
	if (st.st_uid >= SHIFT_RANGE || st.st_gid >= SHIFT_RANGE)
		return kiva_error_set(
			reterr, -ERANGE,
			"Cannot shift '%s': owner %u:%u is outside the container's %u ids", path,
			(unsigned)st.st_uid, (unsigned)st.st_gid, SHIFT_RANGE);
	if (fchownat(dfd, name, shift_base + st.st_uid, shift_base + st.st_gid,
		     AT_SYMLINK_NOFOLLOW) < 0)
		return kiva_error_set(reterr, -errno, "Failed to chown '%s': %m", path);
	/* chown clears setuid/setgid on regular files: put them back. */
	if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
	    fchmodat(dfd, name, st.st_mode & 07777, 0) < 0)
		return kiva_error_set(reterr, -errno, "Failed to chmod '%s': %m", path);
	if (!S_ISDIR(st.st_mode))
		return 0;

	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kiva_error_set(reterr, -errno, "Failed to open '%s': %m", path);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return kiva_error_set(reterr, -errno, "Failed to open '%s': %m", path);
	}
	for (struct dirent *de; (de = readdir(d));) {
		size_t n = strlen(de->d_name);

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (path_len + 1 + n >= PATH_MAX) {
			r = kiva_error_set(reterr, -ENAMETOOLONG, "Path too long under '%s'", path);
			break;
		}
		path[path_len] = '/';
		memcpy(path + path_len + 1, de->d_name, n + 1);
		r = shift_at(dirfd(d), de->d_name, shift_base, path, path_len + 1 + n, reterr);
		path[path_len] = 0;
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

int image_shift_tree(const char *dir, uint32_t shift_base, struct kiva_error *reterr)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (shift_base == 0)
		return 0;
	if (shift_base > UINT32_MAX - SHIFT_RANGE)
		return kiva_error_set(reterr, -ERANGE, "Shift base %u is too large", shift_base);
	if (len >= sizeof(path))
		return kiva_error_set(reterr, -ENAMETOOLONG, "Path too long: '%s'", dir);
	memcpy(path, dir, len + 1);
	return shift_at(AT_FDCWD, dir, shift_base, path, len, reterr);
}

int image_build_busybox(const char *dir, const char *busybox_path, uint32_t shift_base,
			struct kiva_error *reterr)
{
	cleanup_free char *rootfs = strf("%s/rootfs", dir);
	cleanup_free char *bb_dst = NULL, *version = NULL, *meta = NULL;
	cleanup_close int rootfd = -EBADF;
	int r;

	if (!rootfs)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (access(busybox_path, X_OK) < 0)
		return kiva_error_set(reterr, -errno, "busybox '%s' is not executable: %m",
				      busybox_path);
	r = check_static_elf(busybox_path, reterr);
	if (r < 0)
		return r;
	version = busybox_version(busybox_path);
	if (!version)
		return kiva_error_set(reterr, -EINVAL,
				      "'%s' does not look like busybox (no version banner)",
				      busybox_path);

	if (mkdir(rootfs, 0755) < 0)
		return kiva_error_set(reterr, -errno, "Failed to create '%s': %m", rootfs);
	/* From here on, failures remove what was made. */
	if (chmod(rootfs, 0755) < 0) {
		r = kiva_error_set(reterr, -errno, "Failed to chmod '%s': %m", rootfs);
		goto rollback;
	}
	rootfd = open(rootfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		r = kiva_error_set(reterr, -errno, "Failed to open '%s': %m", rootfs);
		goto rollback;
	}
	for (size_t i = 0; i < ARRAY_SIZE(rootfs_dirs); i++) {
		if (mkdirat(rootfd, rootfs_dirs[i].path, rootfs_dirs[i].mode) < 0 ||
		    fchmodat(rootfd, rootfs_dirs[i].path, rootfs_dirs[i].mode, 0) < 0) {
			r = kiva_error_set(reterr, -errno, "Failed to create rootfs/%s: %m",
					   rootfs_dirs[i].path);
			goto rollback;
		}
	}
	bb_dst = strf("%s/bin/busybox", rootfs);
	if (!bb_dst) {
		r = kiva_error_set(reterr, -ENOMEM, "Out of memory");
		goto rollback;
	}
	r = copy_file(busybox_path, bb_dst, 0755);
	if (r < 0) {
		r = kiva_error_set(reterr, r, "Failed to copy '%s' to '%s': %s", busybox_path,
				   bb_dst, strerror(-r));
		goto rollback;
	}
	r = install_applets(rootfd, busybox_path, reterr);
	if (r < 0)
		goto rollback;
	r = write_etc(rootfd, version, reterr);
	if (r < 0)
		goto rollback;
	r = write_metadata(dir, version, reterr);
	if (r < 0)
		goto rollback;
	r = image_shift_tree(rootfs, shift_base, reterr);
	if (r < 0)
		goto rollback;
	return 0;

rollback:
	(void)rm_rf(rootfs);
	meta = strf("%s/metadata.yaml", dir);
	if (meta)
		(void)unlink(meta);
	return r;
}
