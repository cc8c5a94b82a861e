/* Container driver: the seam over liblxc. runtime-lxc.c is the only file that includes
 * <lxc/lxccontainer.h>; runtime-config.c renders a container's liblxc config from a pure
 * description (testable without root or liblxc).
 *
 * Layout: every kivad has its own lxcpath (STATE_DIR/containers); a container's liblxc config is
 * LXCPATH/NAME/config. The rootfs lives in the storage pool and is referenced by path.
 *
 * Blocking operations (start, graceful stop, freeze, exec) are run by the `kiva-helper` binary,
 * which kivad spawns: liblxc's start() moves its caller into the monitor's cgroups and the monitor
 * is a fork of the caller, so the caller must be a small, short-lived process (feasibility §1).
 * The quick queries below (state, pid, cgroup get/set) may be called from kivad's loop. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic-error.h"

/* What the host offers, probed once at start-up. */
struct runtime_host {
	int cgroup_version; /* 1: legacy or hybrid (v1 controllers), 2: unified */
	bool apparmor; /* /sys/kernel/security/apparmor exists and is enabled */
	unsigned ncpus; /* online CPUs */
};

/* Probes the host: cgroup_version 2 when /sys/fs/cgroup is a cgroup2 mount (statfs magic
 * CGROUP2_SUPER_MAGIC), else 1 (legacy or hybrid); apparmor when
 * /sys/kernel/security/apparmor exists and /sys/module/apparmor/parameters/enabled is "Y";
 * ncpus from sysconf(_SC_NPROCESSORS_ONLN). Returns 0 or -errno (statfs). Any thread. */
int runtime_host_probe(struct runtime_host *ret);

/* Moves the calling process (every thread) into NAME/daemon at the top of the CPU controller
 * under root ("/sys/fs/cgroup"; tests: a fake tree). NAME gets CPU weight WEIGHT on cgroup v2's
 * scale (1-10000, 100 = a default group; v1: cpu.shares = WEIGHT * 1024 / 100) and holds two
 * groups: daemon (the caller, weight 10000) and helpers (weight 100, *ret_helpers: its path,
 * for the helpers kivad runs to move into), so kivad's loop keeps its share while its helpers
 * work. On v2 the cpu controller is enabled where it is not. Returns 0 or -errno with a
 * message. */
int runtime_cpu_weight_self(const struct runtime_host *host, const char *root, const char *name,
			    unsigned weight, char **ret_helpers, struct kiva_error *reterr);

/* Everything the config generator needs to know about one container. All strings borrowed. */
/* One veth NIC on a bridge, set up by liblxc before init runs (no DHCP). */
struct runtime_nic {
	const char *name; /* inside the container: "eth0" */
	const char *host_name; /* host-side veth (lxc.net.N.veth.pair), < 16 chars */
	const char *bridge; /* lxc.net.N.link */
	const char *hwaddr; /* NULL: liblxc picks one */
	unsigned mtu; /* 0: the bridge's */
	const char *ipv4; /* "10.0.3.5/24" or NULL */
	const char *ipv4_broadcast; /* "10.0.3.255" or NULL */
	const char *gateway; /* "10.0.3.1" or NULL: default route via it */
};

struct runtime_spec {
	const char *name; /* instance name, also the hostname */
	const char *rootfs; /* absolute path to the rootfs directory */
	const char *log_path; /* liblxc log file, may be NULL */
	const char *console_log; /* the console's output (lxc.console.logfile), may be NULL */
	uint64_t memory_bytes; /* 0 = unlimited */
	const char *cpuset; /* "0-1" or NULL = all */
	const char *cpuset_mems; /* NUMA nodes of its memory, "0" or NULL = all */
	unsigned cpu_count; /* 0 = unlimited; used for cpu shares/quota */
	int64_t processes; /* 0 = unlimited */
	bool privileged; /* false: user namespace with idmap below */
	uint32_t idmap_base; /* host uid/gid that maps to 0 in the container */
	uint32_t idmap_size;
	const char *seccomp_profile; /* path to a liblxc seccomp profile or NULL */
	const struct runtime_nic *nics; /* none: the container has its own netns with lo only */
	const char *resolv_conf; /* host file bind-mounted read-only on /etc/resolv.conf, or NULL */
	size_t nnics;
};

/* Renders the liblxc config text for spec on host. Pure: no I/O. Caller frees *ret_text.
 * The text is self-contained (no lxc.include). cgroup v1 hosts get lxc.cgroup.* keys, v2 hosts
 * lxc.cgroup2.* keys; no lxc.apparmor.* key is emitted unless the host has AppArmor.
 * Limits: memory_bytes -> memory.limit_in_bytes (v1) / memory.max (v2); cpuset -> cpuset.cpus;
 * cpu_count -> a CFS quota of cpu_count CPUs (cpu.cfs_quota_us = cpu_count * 100000 with
 * cpu.cfs_period_us = 100000 on v1, cpu.max "cpu_count*100000 100000" on v2); processes ->
 * pids.max. Returns 0, -ENOMEM, or -EINVAL for a name or path that is empty, relative (paths),
 * holds a control character (newline: config injection) or a '/' (name), a cpuset other than
 * digits, ',' and '-', negative processes, or (unprivileged) idmap_base 0 or idmap_size 0. */
int runtime_config_render(const struct runtime_host *host, const struct runtime_spec *spec,
			  char **ret_text);

/* The text of KIVA's default seccomp denylist (liblxc profile format, version 2): kexec, module
 * loading, open_by_handle_at and bpf fail with EPERM, the keyring calls with ENOSYS, and
 * umount2(MNT_FORCE) is refused. Static storage; write it to a file and pass that path as
 * runtime_spec.seccomp_profile. */
const char *runtime_seccomp_default(void);

/* Writes LXCPATH/NAME/config atomically, creating LXCPATH/NAME (mode 0755: liblxc sets up
 * user-namespaced containers partly as the mapped root, so LXCPATH and every parent directory
 * of the rootfs must be searchable by others). Returns 0, -EINVAL (name) or -errno. */
int runtime_config_write(const char *lxcpath, const char *name, const char *text);

/* A file in LXCPATH/NAME: the next start writes the name to the rootfs' /etc/hostname (after a
 * create or copy, as LXD's hostname template), then removes it. */
#define RUNTIME_HOSTNAME_PENDING "hostname-pending"

enum runtime_state {
	RUNTIME_MISSING = 0, /* no such container in lxcpath */
	RUNTIME_STOPPED,
	RUNTIME_STARTING,
	RUNTIME_RUNNING,
	RUNTIME_STOPPING,
	RUNTIME_FROZEN, /* FREEZING counts as FROZEN */
};

/* Quick state query (talks to the monitor's command socket). Never blocks for long. */
enum runtime_state runtime_state(const char *lxcpath, const char *name);
/* LXD-style status name: "Running", "Stopped", "Frozen", "Starting", "Stopping".
 * RUNTIME_MISSING (never started, no config written yet) is "Stopped". Static strings. */
const char *runtime_state_to_string(enum runtime_state s);

/* PID of the container's init on the host, or -ESRCH when not running. */
int runtime_init_pid(const char *lxcpath, const char *name);

/* Live cgroup access for a running container. key is a controller file as liblxc names it for
 * this host ("memory.limit_in_bytes" on v1, "memory.max" on v2; [a-z0-9._] only). *ret is
 * malloc'd, its first line without the newline. Returns 0, -EINVAL (key or value), -ENOENT (no
 * such container or cgroup file), -ESRCH (not running), or for set the kernel's -errno when
 * liblxc passes one on (-EBUSY for a memory limit below usage), else -EINVAL. */
int runtime_cgroup_get(const char *lxcpath, const char *name, const char *key, char **ret);
int runtime_cgroup_set(const char *lxcpath, const char *name, const char *key, const char *value);

/* Names of all containers defined under lxcpath: directories holding a "config" file, sorted
 * (NULL-terminated, caller strv_free's). A missing lxcpath gives an empty list. */
int runtime_list(const char *lxcpath, char ***ret_names);

/* Removes LXCPATH/NAME (config and logs), never the rootfs. The container must be stopped
 * (-EBUSY otherwise). Missing is success. */
int runtime_remove(const char *lxcpath, const char *name);

/* Usage numbers for GET .../state. Fields a host cannot report stay 0 (memory_peak_bytes needs
 * memory.peak on v2, kernel >= 5.19). v1: memory.usage_in_bytes, memory.max_usage_in_bytes,
 * cpuacct.usage; v2: memory.current, memory.peak, cpu.stat usage_usec; both: pids.current, or
 * the lines of cgroup.procs. Returns 0, -ENOENT or -ESRCH (not running). */
struct runtime_usage {
	uint64_t memory_bytes;
	uint64_t memory_peak_bytes;
	uint64_t cpu_usage_nsec;
	uint64_t processes;
};
int runtime_usage(const char *lxcpath, const char *name, struct runtime_usage *ret);

/* --- blocking operations, used by kiva-helper only (never on kivad's loop) --- */

/* Starts the container daemonized and waits until it is RUNNING (timeout_sec; <= 0 means 30).
 * Forks internally so the caller's cgroups are not changed; the monitor keeps none of the
 * caller's fds. liblxc logs to the config's lxc.log.file, or LXCPATH/NAME/lxc.log when unset.
 * Returns 0; -ENOENT (not defined), -EALREADY (running), -ETIMEDOUT, or -EIO with the first
 * ERROR liblxc logged during this start in errbuf. After a failure the empty lxc.monitor.NAME
 * cgroups liblxc may leave behind are removed. */
int runtime_start(const char *lxcpath, const char *name, int timeout_sec, char *errbuf,
		  size_t errlen);
/* Graceful stop (lxc.signal.halt = SIGPWR to init; a frozen container is thawed first) with
 * timeout, then SIGKILL; returns once the container is STOPPED. timeout_sec <= 0: kill at once.
 * A container that is not running is success. Returns 0, -ENOENT, -EIO or -ETIMEDOUT. */
int runtime_stop(const char *lxcpath, const char *name, int timeout_sec, char *errbuf,
		 size_t errlen);
/* Freezes / thaws all processes of a running container (-ESRCH when not running, -EIO). */
/* A file descriptor on the container's console (the pty master liblxc's monitor holds) and
 * *ret_hold, the command socket that keeps the console taken: close both to give it back.
 * -ESRCH when it does not run, -EBUSY when another client has it. */
int runtime_console_fd(const char *lxcpath, const char *name, int *ret_fd, int *ret_hold,
		       char *errbuf, size_t errlen);
int runtime_freeze(const char *lxcpath, const char *name, char *errbuf, size_t errlen);
int runtime_unfreeze(const char *lxcpath, const char *name, char *errbuf, size_t errlen);

/* Runs argv inside the container (attach: all namespaces, cgroup, LSM incl. seccomp) as the
 * container's root, stdin/stdout/stderr = the given fds, with exactly the environment env
 * (NULL-terminated "K=V", may be NULL; PATH defaults to the usual sbin/bin list), cwd (NULL =
 * "/"). argv[0] is looked up in PATH; a missing program exits 127. Waits for it; meanwhile
 * SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to the caller are forwarded to the command (the
 * previous handlers are restored afterwards). On success *ret_status is the command's exit code
 * (128+signal if killed). Returns 0, -EINVAL, -ENOENT, -ESRCH (not running), -EBUSY (frozen)
 * or -EIO (attach failed). */
int runtime_exec(const char *lxcpath, const char *name, char *const argv[], char *const env[],
		 const char *cwd, uid_t uid, gid_t gid, int fd_in, int fd_out, int fd_err,
		 int *ret_status, char *errbuf, size_t errlen);
