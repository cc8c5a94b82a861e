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

/* What the host offers, probed once at start-up. */
struct runtime_host {
	int cgroup_version; /* 1: legacy or hybrid (v1 controllers), 2: unified */
	bool apparmor;      /* /sys/kernel/security/apparmor exists and is enabled */
	unsigned ncpus;     /* online CPUs */
};

/* Probes cgroup layout (root: "/" normally; tests pass a fake tree containing
 * proc/self/mountinfo-like file "proc/mounts" is NOT used: see runtime-config.c). */
int runtime_host_probe(struct runtime_host *ret);

/* Everything the config generator needs to know about one container. All strings borrowed. */
struct runtime_spec {
	const char *name;      /* instance name, also the hostname */
	const char *rootfs;    /* absolute path to the rootfs directory */
	const char *log_path;  /* liblxc log file, may be NULL */
	uint64_t memory_bytes; /* 0 = unlimited */
	const char *cpuset;    /* "0-1" or NULL = all */
	unsigned cpu_count;    /* 0 = unlimited; used for cpu shares/quota */
	int64_t processes;     /* 0 = unlimited */
	bool privileged;       /* false: user namespace with idmap below */
	uint32_t idmap_base;   /* host uid/gid that maps to 0 in the container */
	uint32_t idmap_size;
	const char *seccomp_profile; /* path to a liblxc seccomp profile or NULL */
};

/* Renders the liblxc config text for spec on host. Pure: no I/O. Caller frees *ret_text.
 * cgroup v1 hosts get lxc.cgroup.* keys, v2 hosts lxc.cgroup2.* keys; no lxc.apparmor.* key is
 * emitted unless the host has AppArmor. Returns 0, -EINVAL or -ENOMEM. */
int runtime_config_render(const struct runtime_host *host, const struct runtime_spec *spec,
                          char **ret_text);

/* The text of KIVA's default seccomp denylist (liblxc profile format, version 2). Static. */
const char *runtime_seccomp_default(void);

/* Writes LXCPATH/NAME/config (creating the directory) from the rendered text. */
int runtime_config_write(const char *lxcpath, const char *name, const char *text);

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
/* LXD-style status name: "Running", "Stopped", "Frozen", ... */
const char *runtime_state_to_string(enum runtime_state s);

/* PID of the container's init on the host, or -ESRCH when not running. */
int runtime_init_pid(const char *lxcpath, const char *name);

/* Live cgroup access for a running container. key is a controller file as liblxc names it for
 * this host ("memory.limit_in_bytes" on v1, "memory.max" on v2). *ret is malloc'd. */
int runtime_cgroup_get(const char *lxcpath, const char *name, const char *key, char **ret);
int runtime_cgroup_set(const char *lxcpath, const char *name, const char *key, const char *value);

/* Names of all containers defined under lxcpath (NULL-terminated, caller strv_free's). */
int runtime_list(const char *lxcpath, char ***ret_names);

/* Removes LXCPATH/NAME (config and logs). The container must be stopped. Missing is success. */
int runtime_remove(const char *lxcpath, const char *name);

/* Usage numbers for GET .../state. Fields a host cannot report stay 0. */
struct runtime_usage {
	uint64_t memory_bytes;
	uint64_t memory_peak_bytes;
	uint64_t cpu_usage_nsec;
	uint64_t processes;
};
int runtime_usage(const char *lxcpath, const char *name, struct runtime_usage *ret);

/* --- blocking operations, used by kiva-helper only (never on kivad's loop) --- */

/* Starts the container daemonized and waits until it is RUNNING (timeout_sec). Forks internally
 * so the caller's cgroups are not changed. Message on failure in *reterr-like buf. */
int runtime_start(const char *lxcpath, const char *name, int timeout_sec, char *errbuf,
                  size_t errlen);
/* Graceful stop (SIGPWR to init) with timeout, then SIGKILL. timeout_sec < 0: kill at once. */
int runtime_stop(const char *lxcpath, const char *name, int timeout_sec, char *errbuf,
                 size_t errlen);
int runtime_freeze(const char *lxcpath, const char *name, char *errbuf, size_t errlen);
int runtime_unfreeze(const char *lxcpath, const char *name, char *errbuf, size_t errlen);

/* Runs argv inside the container (attach: all namespaces, cgroup, LSM), stdin/stdout/stderr =
 * the given fds, environment env (NULL-terminated "K=V", may be NULL), cwd (NULL = "/").
 * On success *ret_status is the command's exit code (128+signal if killed). */
int runtime_exec(const char *lxcpath, const char *name, char *const argv[], char *const env[],
                 const char *cwd, int fd_in, int fd_out, int fd_err, int *ret_status,
                 char *errbuf, size_t errlen);
