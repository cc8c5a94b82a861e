/* kivad: wiring of the modules on one libuv loop (DESIGN.md §2). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct daemon_options {
	const char *state_dir;
	const char *socket_path;
	const char *raft_address;
	const char *storage_driver; /* NULL = auto */
	uint64_t pool_size_bytes; /* 0 = LXD's rule */
	const char *helper_path; /* NULL = search */
	const char *log_file; /* NULL = stderr (or STATE/kivad.log with --daemon) */
	const char *default_network; /* NULL: kivabr0 (default state dir) or kivabr<id>; "none" */
	const char *capacity_path; /* capacity.yaml */
	const char *sys_root; /* topology and sensors: <sys_root>/sys, <sys_root>/proc */
	unsigned cpu_weight; /* the kiva.daemon cgroup's CPU weight; 0: stay where started */
	bool daemonize;
	bool debug;
};

/* Runs the daemon until SIGTERM/SIGINT. Returns the process exit code. */
int daemon_run(const struct daemon_options *opts);

/* `kivad --purge`: removes everything a state dir stands for from the host — stops its
 * containers, deletes its interfaces (bridges, veths, ifbs tagged with its id) and its nftables
 * tables, unmounts its pool and deletes the state dir. Refused while a kivad runs on it. */
int daemon_purge(const struct daemon_options *opts);
