/* sched: the host's topology (sockets, NUMA nodes, cores, hyperthread siblings, memory per node)
 * read from sysfs under a configurable root, the capacity model (hardware, optionally capped by
 * /etc/kiva/capacity.yaml, DESIGN.md §6) and a pure CPU/memory allocator: admission against
 * total × target_utilization, dedicated CPUs on one NUMA node, explicit CPU lists, the shared set.
 * Nothing here logs, forks or touches cgroups; the daemon applies what the allocator decides.
 * Not thread-safe: callers serialize access to a model (the daemon loop). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic-error.h"

#define SCHED_CPUS_MAX 256
#define SCHED_NODES_MAX 64

/* ---- CPU sets ---- */

struct sched_cpuset {
	uint64_t bits[SCHED_CPUS_MAX / 64];
};

void sched_cpuset_zero(struct sched_cpuset *s);
void sched_cpuset_add(struct sched_cpuset *s, unsigned cpu);
void sched_cpuset_del(struct sched_cpuset *s, unsigned cpu);
bool sched_cpuset_has(const struct sched_cpuset *s, unsigned cpu);
unsigned sched_cpuset_count(const struct sched_cpuset *s);
bool sched_cpuset_empty(const struct sched_cpuset *s);
bool sched_cpuset_equal(const struct sched_cpuset *a, const struct sched_cpuset *b);
bool sched_cpuset_intersects(const struct sched_cpuset *a, const struct sched_cpuset *b);
void sched_cpuset_or(struct sched_cpuset *dst, const struct sched_cpuset *src);
void sched_cpuset_andnot(struct sched_cpuset *dst, const struct sched_cpuset *src);

/* Parses a kernel CPU list ("0-5,12-17", "3", "" = empty; trailing newline allowed).
 * Returns 0, or -EINVAL (syntax, reversed range) / -ERANGE (id >= SCHED_CPUS_MAX). */
int sched_cpuset_parse(const char *s, struct sched_cpuset *ret);

/* Formats s as a kernel CPU list into buf ("" when empty). Returns the length, or -ENOBUFS. */
int sched_cpuset_format(const struct sched_cpuset *s, char *buf, size_t size);

/* ---- topology (sched-topology.c) ---- */

struct sched_cpu {
	bool online;
	int socket; /* physical_package_id */
	int core; /* core_id, unique only within its socket */
	int node; /* NUMA node */
	struct sched_cpuset siblings; /* thread_siblings_list, includes the CPU itself */
};

struct sched_node {
	struct sched_cpuset cpus; /* online CPUs of the node; empty = no such node */
	uint64_t mem_bytes; /* MemTotal of the node */
};

struct sched_topology {
	unsigned n_cpus; /* highest online CPU id + 1 */
	unsigned n_nodes; /* highest node id + 1 */
	unsigned n_online; /* online CPUs */
	unsigned n_sockets; /* distinct packages */
	unsigned n_cores; /* distinct (socket, core) pairs */
	uint64_t mem_bytes; /* sum of the nodes' MemTotal */
	struct sched_cpuset online;
	struct sched_cpu cpus[SCHED_CPUS_MAX];
	struct sched_node nodes[SCHED_NODES_MAX];
};

/* Reads the topology from <root>/sys/devices/system/{cpu,node} (root NULL or "" = "/"): online
 * CPUs, each CPU's package, core_id and thread_siblings_list, each node's cpulist and MemTotal.
 * A kernel without NUMA (no node directory) is one node 0 holding every CPU, with MemTotal from
 * <root>/proc/meminfo. On success *ret is a new topology the caller frees with free().
 * Errors: -ENOENT/-EIO (missing or unreadable file), -EINVAL (unparsable file), -ERANGE (more CPUs
 * or nodes than SCHED_*_MAX), -ENOMEM; reterr names the file. */
int sched_topology_read(const char *root, struct sched_topology **ret, struct kiva_error *reterr);

/* ---- capacity (sched-capacity.c) ---- */

struct sched_capacity {
	unsigned cpu_total; /* CPUs that count for admission */
	uint64_t ram_bytes;
	uint64_t disk_bytes; /* 0 = unknown: disk is not checked */
	double target; /* target_utilization, 0 < target <= 1 */
};

#define SCHED_TARGET_DEFAULT 1.0

/* The hardware's capacity: every online CPU, every node's memory, disk unknown, target 1.0. */
void sched_capacity_from_topology(const struct sched_topology *topo, struct sched_capacity *ret);

/* Parses a capacity file's text (DESIGN.md §6):
 *     z600_capacity:
 *       cpu_total: 12
 *       ram_total_gb: 48
 *       disk_total_gb: 2000
 *       target_utilization: 0.85
 * `#` starts a comment; keys are optional, each at most once, indented with spaces. Starts from
 * the hardware (sched_capacity_from_topology) and caps it: cpu_total above the online CPUs is
 * refused, ram_total_gb (GiB) above the installed memory is clamped to it, disk_total_gb (GB,
 * 10^9 bytes) is taken as given. name is the file name used in messages. On success writes *ret.
 * Errors: -EINVAL with a message naming the line and the key (unknown or repeated key, bad
 * number, negative or zero value, target 0 or above 1, more CPUs than exist, missing header). */
int sched_capacity_parse(const char *text, const char *name, const struct sched_topology *topo,
			 struct sched_capacity *ret, struct kiva_error *reterr);

/* Reads and parses path; a missing file is the hardware's capacity. Errors as above plus -errno
 * of the read. */
int sched_capacity_load(const char *path, const struct sched_topology *topo,
			struct sched_capacity *ret, struct kiva_error *reterr);

/* ---- allocator (sched-alloc.c), pure: no I/O ---- */

enum sched_cpu_mode {
	SCHED_CPU_NONE, /* runs on the shared set */
	SCHED_CPU_COUNT, /* limits.cpu=N: N dedicated CPUs chosen by KIVA */
	SCHED_CPU_LIST, /* limits.cpu=a-b,c: exactly those, dedicated */
};

struct sched_request {
	enum sched_cpu_mode mode;
	unsigned count; /* SCHED_CPU_COUNT */
	struct sched_cpuset cpus; /* SCHED_CPU_LIST */
	uint64_t mem_bytes;
	uint64_t disk_bytes;
	int node; /* limits.cpu.nodes: only this node, or -1 = any */
	uint64_t avoid_nodes; /* bit n set = never place on node n (e.g. ECC errors) */
};

struct sched_placement {
	struct sched_cpuset cpus; /* dedicated CPUs (cpuset.cpus); empty for SCHED_CPU_NONE */
	int node; /* the one node holding the CPUs and memory, -1 if none or several */
	uint64_t mems; /* cpuset.mems as a node bit mask; 0 = any node */
};

struct sched_usage {
	unsigned cpus_committed; /* dedicated CPUs */
	unsigned cpus_usable; /* floor(cpu_total × target) */
	uint64_t mem_committed, mem_usable;
	uint64_t disk_committed, disk_usable; /* disk_usable 0 = not checked */
	unsigned n_instances;
};

struct sched_model;

/* A new empty model over copies of topo and cap. Returns 0 or -ENOMEM. Free with
 * sched_model_free() (accepts NULL). */
int sched_model_new(const struct sched_topology *topo, const struct sched_capacity *cap,
		    struct sched_model **ret);
void sched_model_free(struct sched_model *m);

/* Replaces the capacity (reload). Instances already placed stay even if now past the target;
 * only new placements and growth are refused. */
void sched_model_set_capacity(struct sched_model *m, const struct sched_capacity *cap);

/* Decides where req would go without changing m (what a cluster scheduler asks every host).
 * COUNT: the least-loaded allowed node with N free CPUs and the memory, whole physical cores
 * with their siblings first; only when no single node fits, the fewest nodes. LIST: exactly
 * those CPUs. Errors: -ENOSPC with the numbers ("needs 64 CPUs, host has 12 (target 0.85 → 10
 * usable, 4 committed)") when admission or placement fails, -EBUSY when a listed CPU is
 * dedicated to another instance, -EINVAL for a CPU or node that does not exist. */
int sched_place(const struct sched_model *m, const struct sched_request *req,
		struct sched_placement *ret, struct kiva_error *reterr);

/* sched_place() and records the result for instance id (id != 0). -EEXIST if id is placed. */
int sched_add(struct sched_model *m, uint32_t id, const struct sched_request *req,
	      struct sched_placement *ret, struct kiva_error *reterr);

/* Re-places instance id with a new request, keeping its node and as many of its CPUs as
 * possible (re-pin within the node when it fits). On failure the old placement is kept.
 * -ENOENT if id is unknown; other errors as sched_place(). */
int sched_resize(struct sched_model *m, uint32_t id, const struct sched_request *req,
		 struct sched_placement *ret, struct kiva_error *reterr);

/* Forgets instance id and releases its CPUs and memory. -ENOENT if unknown. */
int sched_remove(struct sched_model *m, uint32_t id);

/* Instance id's placement. -ENOENT if unknown. */
int sched_get(const struct sched_model *m, uint32_t id, struct sched_placement *ret);

/* Owner of a CPU: instance id, or 0 when free (or not online). */
uint32_t sched_cpu_owner(const struct sched_model *m, unsigned cpu);

/* The shared set: online CPUs no instance owns (cpuset.cpus of every SCHED_CPU_NONE instance). */
void sched_shared_set(const struct sched_model *m, struct sched_cpuset *ret);

/* Free online CPUs and committed memory of node n (0 for a node that does not exist). */
unsigned sched_node_free_cpus(const struct sched_model *m, unsigned node);
uint64_t sched_node_mem_committed(const struct sched_model *m, unsigned node);

void sched_usage(const struct sched_model *m, struct sched_usage *ret);

/* ---- hardware sensors (sched-hw.c) ---- */

/* Read-only snapshots of the host's frequency, thermal, power and memory-error sensors from sysfs
 * under a root path (root NULL or "" = "/"), and the one write: a CPU's cpufreq governor. Every
 * part is optional: a kernel or machine without cpufreq, thermal zones, RAPL or EDAC (a VM) simply
 * has zero entries, which is not an error. A sensor file that exists but cannot be read (root-only
 * energy_uj since CVE-2020-8694, a thermal zone whose driver answers EIO/ENODATA, a policy
 * without a governor) leaves that one value unknown as documented per field; a file whose content
 * cannot be parsed is an error. Plain structs; nothing here logs. */

#define SCHED_HW_THERMAL_MAX 64
#define SCHED_HW_RAPL_MAX 64
#define SCHED_HW_EDAC_MAX 64
#define SCHED_GOVERNOR_NAME_MAX 32 /* with the NUL; the kernel's CPUFREQ_NAME_LEN is 16 */

/* <root>/sys/devices/system/cpu/cpuN/cpufreq/. Frequencies in kHz, 0 = file absent or
 * unreadable; governor "" = absent or unreadable (a driver with no governor). */
struct sched_cpufreq {
	bool present; /* the CPU has a cpufreq directory; everything else is zero when false */
	char governor[SCHED_GOVERNOR_NAME_MAX]; /* scaling_governor */
	uint64_t cur_khz; /* scaling_cur_freq */
	uint64_t min_khz; /* cpuinfo_min_freq */
	uint64_t max_khz; /* cpuinfo_max_freq */
};

/* <root>/sys/class/thermal/thermal_zoneN/. */
struct sched_thermal_zone {
	unsigned index; /* N */
	char type[32]; /* "x86_pkg_temp", "acpitz"; truncated if longer */
	bool temp_valid; /* false: temp could not be read (sensor asleep, EIO/ENODATA) */
	int64_t temp_mc; /* millidegree Celsius, may be negative */
};

/* <root>/sys/class/powercap/intel-rapl:N, top-level zones (packages) only: subzones
 * (intel-rapl:N:M, "core", "uncore", "dram") and intel-rapl-mmio:* are skipped. */
struct sched_rapl_zone {
	unsigned index; /* N */
	char name[64]; /* "package-0"; truncated if longer */
	bool energy_valid; /* false: energy_uj unreadable (root-only on kernels since 5.10) */
	uint64_t energy_uj; /* cumulative, wraps at max_energy_range_uj */
	uint64_t max_energy_range_uj; /* 0 = absent */
	uint64_t power_limit_uw; /* constraint_0_power_limit_uw (long term); 0 = absent */
};

/* <root>/sys/devices/system/edac/mc/mcN/. EDAC does not say which NUMA node a memory controller
 * serves, so node is a heuristic: when the number of controllers equals the number of NUMA nodes
 * that have online CPUs, the k-th controller in index order serves the k-th such node (mcN → node
 * N when both are numbered 0, 1, ...); else, when exactly one node has CPUs, every controller
 * serves that node; otherwise node is -1 (unknown). mc_name often names the socket ("i7 core #1",
 * "Skylake Socket#1 IMC#0") but its format is driver-specific and not parsed. */
struct sched_edac_mc {
	unsigned index; /* N */
	char name[64]; /* mc_name; truncated if longer */
	uint64_t ce; /* ce_count: corrected errors since boot or the last reset */
	uint64_t ue; /* ue_count: uncorrected errors */
	int node; /* NUMA node, -1 = unknown (see above) */
};

/* One snapshot, about 32 KiB: allocate it rather than putting it on a small thread stack.
 * Entries of thermal, rapl and edac are sorted by index. */
struct sched_hw {
	unsigned n_cpufreq; /* CPUs with cpufreq present */
	struct sched_cpufreq cpufreq[SCHED_CPUS_MAX]; /* by CPU id; online CPUs only */
	/* scaling_available_governors of the lowest-numbered CPU with cpufreq, space-separated
	 * ("" = none). Drivers normally offer the same list on every CPU;
	 * sched_hw_set_governor() checks each CPU's own list. */
	char governors_available[256];
	unsigned n_thermal;
	struct sched_thermal_zone thermal[SCHED_HW_THERMAL_MAX];
	unsigned n_rapl;
	struct sched_rapl_zone rapl[SCHED_HW_RAPL_MAX];
	unsigned n_edac;
	struct sched_edac_mc edac[SCHED_HW_EDAC_MAX];
};

/* Reads every part present under root: cpufreq of each CPU online in topo (topo->online,
 * topo->n_cpus; topo must not be NULL and should be read from the same root), the thermal zones,
 * the top-level RAPL zones and the EDAC memory controllers (node mapped with topo, see struct
 * sched_edac_mc). Absent directories and files give zero counts and unknown values. When a host
 * has more than SCHED_HW_THERMAL_MAX thermal zones, the lowest-numbered ones are kept.
 * On success writes *ret. Errors: -EINVAL naming the file whose content is not a number (or a
 * governor longer than the kernel allows), -ERANGE for more than SCHED_HW_RAPL_MAX top-level RAPL
 * zones or SCHED_HW_EDAC_MAX memory controllers (refused rather than hiding memory errors),
 * -errno naming the directory that exists but cannot be listed, -ENOMEM. Blocking sysfs reads:
 * call it from a worker or at a low rate, not per request. */
int sched_hw_read(const char *root, const struct sched_topology *topo, struct sched_hw *ret,
		  struct kiva_error *reterr);

/* The nodes whose memory controllers reported errors: bit n set when a controller mapped to node
 * n (0 <= n < 64) has ce + ue > 0. A controller with an unknown node (-1) marks nothing: callers
 * that must react to any memory error also check hw->edac[] themselves. Suits
 * sched_request.avoid_nodes. */
uint64_t sched_hw_error_nodes(const struct sched_hw *hw);

/* True when s is a plausible governor name: 1 to 31 characters of [a-z0-9_-]. */
bool sched_governor_name_valid(const char *s);

/* Sets the cpufreq governor of every CPU in cpus by writing
 * <root>/sys/devices/system/cpu/cpuN/cpufreq/scaling_governor. Everything is checked before
 * anything is written: -EINVAL for an invalid name, a CPU that does not exist, or a governor not
 * in a CPU's scaling_available_governors (the message names the CPU and the available ones);
 * -ENOTSUP when a CPU has no cpufreq directory or no governor list (VMs, setpolicy-only drivers).
 * If a write then fails (-errno naming the file), the CPUs already changed get their previous
 * governor back (best effort). An empty cpus is a no-op. Note that the kernel applies a governor
 * to a whole cpufreq policy: CPUs sharing a policy with a CPU in cpus (related_cpus) change too.
 * Needs root on a real /sys. */
int sched_hw_set_governor(const char *root, const struct sched_cpuset *cpus, const char *governor,
			  struct kiva_error *reterr);
