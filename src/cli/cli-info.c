/* kiva info: an instance's configuration, live state and snapshots in lxc's layout (GET
 * /1.0/instances/<name>, .../state and .../snapshots?recursion=1), or, without a name, the
 * server's (GET /1.0), or with --resources the host's hardware and the scheduler's view of it (GET
 * /1.0/resources: LXD's cpu and memory plus KIVA's numa, capacity and sensors), each section
 * printed only when the server has something for it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli.h"

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of obj in strcmp order; caller frees the array (keys are borrowed). */
static const char **sorted_keys(const json_t *obj, size_t *ret_n)
{
	size_t n = json_object_size(obj), i = 0;
	const char **keys = calloc(n + 1, sizeof(char *));

	if (!keys)
		return NULL;
	for (void *it = json_object_iter((json_t *)obj); it;
	     it = json_object_iter_next((json_t *)obj, it))
		keys[i++] = json_object_iter_key(it);
	qsort(keys, n, sizeof(char *), cmp_strp);
	*ret_n = n;
	return keys;
}

static void print_json_scalar(const json_t *v)
{
	if (json_is_string(v))
		fputs(json_string_value(v), stdout);
	else if (json_is_integer(v))
		printf("%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		printf("%g", json_real_value(v));
	else if (json_is_boolean(v))
		fputs(json_is_true(v) ? "true" : "false", stdout);
}

static void print_bytes_line(const char *label, const json_t *obj, const char *key)
{
	char buf[32];
	const json_t *v = json_object_get(obj, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		printf("%s%s\n", label, format_bytes((uint64_t)json_integer_value(v), buf));
}

static void print_network(const json_t *network)
{
	cleanup_free const char **names = NULL;
	size_t n = 0;

	if (!json_is_object(network) || json_object_size(network) == 0)
		return;
	names = sorted_keys(network, &n);
	if (!names)
		return;
	printf("  Network usage:\n");
	for (size_t i = 0; i < n; i++) {
		const json_t *dev = json_object_get(network, names[i]);
		const json_t *counters = json_object_get(dev, "counters");
		const json_t *addrs = json_object_get(dev, "addresses");

		printf("    %s:\n", names[i]);
		if (*json_get_str(dev, "type", ""))
			printf("      Type: %s\n", json_get_str(dev, "type", ""));
		if (*json_get_str(dev, "state", "")) {
			char st[32];

			snprintf(st, sizeof(st), "%s", json_get_str(dev, "state", ""));
			printf("      State: %s\n", cli_ascii_upper(st));
		}
		if (*json_get_str(dev, "host_name", ""))
			printf("      Host interface: %s\n", json_get_str(dev, "host_name", ""));
		if (*json_get_str(dev, "hwaddr", ""))
			printf("      MAC address: %s\n", json_get_str(dev, "hwaddr", ""));
		if (json_get_int(dev, "mtu", 0) > 0)
			printf("      MTU: %lld\n", json_get_int(dev, "mtu", 0));
		print_bytes_line("      Bytes received: ", counters, "bytes_received");
		print_bytes_line("      Bytes sent: ", counters, "bytes_sent");
		if (json_is_integer(json_object_get(counters, "packets_received")))
			printf("      Packets received: %lld\n",
			       json_get_int(counters, "packets_received", 0));
		if (json_is_integer(json_object_get(counters, "packets_sent")))
			printf("      Packets sent: %lld\n",
			       json_get_int(counters, "packets_sent", 0));
		if (json_array_size(addrs) > 0)
			printf("      IP addresses:\n");
		for (size_t k = 0; k < json_array_size(addrs); k++) {
			const json_t *addr = json_array_get(addrs, k);
			const char *family = json_get_str(addr, "family", "");

			printf("        %s:%s %s/%s (%s)\n", family,
			       streq(family, "inet") ? " " : "", json_get_str(addr, "address", ""),
			       json_get_str(addr, "netmask", ""), json_get_str(addr, "scope", ""));
		}
	}
}

/* The scalar keys of state["kiva"] that print_pinning knows, in the order it prints them. */
static const char *const pinning_keys[] = {"placement", "cpus", "mems", "node", "cpuset", NULL};

static bool is_pinning_key(const char *key)
{
	for (size_t i = 0; pinning_keys[i]; i++)
		if (streq(key, pinning_keys[i]))
			return true;
	return false;
}

/* "Pinning:": where the scheduler placed the instance (state["kiva"]): placement, CPUs, memory
 * nodes, NUMA node (when it has one), then the live cgroup cpuset only when it differs from the
 * CPUs (a drift kivad writes back), then keys a newer kivad may add, in key order. */
static void print_pinning(const json_t *kiva)
{
	cleanup_free const char **keys = NULL;
	const char *cpus = json_get_str(kiva, "cpus", ""), *live = json_get_str(kiva, "cpuset", "");
	const json_t *node = json_object_get(kiva, "node");
	size_t n = 0;

	if (!json_is_object(kiva) || json_object_size(kiva) == 0)
		return;
	printf("\nPinning:\n");
	if (*json_get_str(kiva, "placement", ""))
		printf("  Placement: %s\n", json_get_str(kiva, "placement", ""));
	if (*cpus)
		printf("  CPUs: %s\n", cpus);
	if (*json_get_str(kiva, "mems", ""))
		printf("  Memory nodes: %s\n", json_get_str(kiva, "mems", ""));
	if (json_is_integer(node) && json_integer_value(node) >= 0)
		printf("  NUMA node: %lld\n", (long long)json_integer_value(node));
	if (*live && !streq(live, cpus))
		printf("  CPUs (live cgroup): %s\n", live);
	keys = sorted_keys(kiva, &n);
	for (size_t i = 0; keys && i < n; i++) {
		const json_t *v = json_object_get(kiva, keys[i]);

		if (is_pinning_key(keys[i]) || json_is_object(v) || json_is_array(v) ||
		    json_is_null(v))
			continue;
		printf("  %s: ", keys[i]);
		print_json_scalar(v);
		putchar('\n');
	}
}

static void print_limits(const json_t *inst, const json_t *state)
{
	const json_t *config = json_object_get(inst, "expanded_config");
	cleanup_free const char **keys = NULL;
	bool header = false;
	size_t n = 0;

	if (!json_is_object(config) || json_object_size(config) == 0)
		config = json_object_get(inst, "config");
	if (json_is_object(config) && (keys = sorted_keys(config, &n))) {
		for (size_t i = 0; i < n; i++) {
			if (!startswith(keys[i], "limits."))
				continue;
			if (!header)
				printf("\nLimits:\n");
			header = true;
			printf("  %s: ", keys[i]);
			print_json_scalar(json_object_get(config, keys[i]));
			putchar('\n');
		}
	}
	print_pinning(json_object_get(state, "kiva"));
}

static int instance_info(struct cli_context *ctx, struct cli_client *c, const char *name)
{
	cleanup_free char *path = cli_instance_path(name, NULL),
			  *spath = cli_instance_path(name, "/state"), *status = NULL;
	cleanup_json json_t *inst = NULL, *state = NULL;
	const json_t *cpu, *mem;
	char created[64], used[64];
	long long pid;
	int r;

	if (!path || !spath)
		return cli_oom(ctx);
	r = cli_get(c, path, &inst, &ctx->error);
	if (r < 0)
		return r;
	r = cli_get(c, spath, &state, &ctx->error);
	if (r < 0)
		return r;
	status = strdup(json_get_str(state, "status", json_get_str(inst, "status", "")));
	if (!status)
		return cli_oom(ctx);

	printf("Name: %s\n", json_get_str(inst, "name", name));
	if (*json_get_str(inst, "description", ""))
		printf("Description: %s\n", json_get_str(inst, "description", ""));
	printf("Status: %s\n", cli_ascii_upper(status));
	printf("Type: %s%s\n", json_get_str(inst, "type", "container"),
	       json_get_bool(inst, "ephemeral", false) ? " (ephemeral)" : "");
	printf("Architecture: %s\n", json_get_str(inst, "architecture", ""));
	pid = json_get_int(state, "pid", 0);
	if (pid > 0)
		printf("PID: %lld\n", pid);
	cli_format_time_local(json_get_str(inst, "created_at", ""), created);
	if (*created)
		printf("Created: %s\n", created);
	cli_format_time_local(json_get_str(inst, "last_used_at", ""), used);
	if (*used)
		printf("Last Used: %s\n", used);

	if (pid > 0 || json_get_int(state, "processes", 0) > 0) {
		printf("\nResources:\n");
		printf("  Processes: %lld\n", json_get_int(state, "processes", 0));
		cpu = json_object_get(state, "cpu");
		if (json_is_integer(json_object_get(cpu, "usage"))) {
			printf("  CPU usage:\n");
			printf("    CPU usage (in seconds): %lld\n",
			       json_get_int(cpu, "usage", 0) / 1000000000LL);
		}
		mem = json_object_get(state, "memory");
		if (json_is_object(mem)) {
			printf("  Memory usage:\n");
			print_bytes_line("    Memory (current): ", mem, "usage");
			if (json_get_int(mem, "usage_peak", 0) > 0)
				print_bytes_line("    Memory (peak): ", mem, "usage_peak");
			if (json_get_int(mem, "swap_usage", 0) > 0)
				print_bytes_line("    Swap (current): ", mem, "swap_usage");
		}
		print_network(json_object_get(state, "network"));
	}
	print_limits(inst, state);
	fflush(stdout);
	r = cli_snapshots_print(ctx, name, true);
	if (r == -ENOENT) {
		/* a kivad without snapshots: the section is left out */
		ctx->error = (struct kiva_error){0};
		r = 0;
	}
	return r;
}

/* "Label: name version", leaving out what is missing; nothing when both are. */
static void print_pair(const char *label, const char *name, const char *version)
{
	bool has_name = name && *name, has_version = version && *version;

	if (!has_name && !has_version)
		return;
	printf("%s: %s%s%s\n", label, has_name ? name : "", has_name && has_version ? " " : "",
	       has_version ? version : "");
}

static int server_info(struct cli_context *ctx, struct cli_client *c)
{
	cleanup_json json_t *srv = NULL;
	const json_t *env;
	const char *s;

	int r = cli_get(c, "/1.0", &srv, &ctx->error);
	if (r < 0)
		return r;
	env = json_object_get(srv, "environment");
	printf("Server: %s\n", json_get_str(env, "server", "kiva"));
	printf("Server version: %s\n", json_get_str(env, "server_version", "unknown"));
	if ((s = json_get_str(env, "server_name", NULL)))
		printf("Server name: %s\n", s);
	printf("API version: %s\n", json_get_str(srv, "api_version", "unknown"));
	printf("API extensions: %zu\n", json_array_size(json_object_get(srv, "api_extensions")));
	print_pair("Kernel", json_get_str(env, "kernel", NULL),
		   json_get_str(env, "kernel_version", NULL));
	print_pair("Architecture", json_get_str(env, "kernel_architecture", NULL), NULL);
	print_pair("Driver", json_get_str(env, "driver", NULL),
		   json_get_str(env, "driver_version", NULL));
	print_pair("Storage", json_get_str(env, "storage", NULL),
		   json_get_str(env, "storage_version", NULL));
	if (json_is_integer(json_object_get(env, "cgroup_version"))) {
		char v[16];

		snprintf(v, sizeof(v), "v%lld", json_get_int(env, "cgroup_version", 0));
		print_pair("Cgroups", v, NULL);
	}
	/* "nop": the host has no AppArmor, liblxc confines with nothing but namespaces,
	 * the idmap and seccomp (DESIGN.md §9) */
	print_pair("LSM", json_get_str(env, "lsm", NULL), NULL);
	return 0;
}

/* ---- kiva info --resources ---------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Prints ids (sorted in place) as a CPU list: "0-5,12-17". */
static void print_cpu_list(int *ids, size_t n)
{
	qsort(ids, n, sizeof(int), cmp_int);
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && ids[j + 1] == ids[j] + 1)
			j++;
		printf("%s%d", i ? "," : "", ids[i]);
		if (j > i)
			printf("-%d", ids[j]);
		i = j + 1;
	}
}

/* A number of kHz (or MHz, with div 1) as "1600MHz". */
static void print_mhz(long long v, long long div)
{
	printf("%lldMHz", v / div);
}

/* "1600-3460MHz", or "1600MHz" when both ends are the same. */
static void print_mhz_range(long long lo, long long hi, long long div)
{
	if (lo / div != hi / div)
		printf("%lld-", lo / div);
	print_mhz(hi, div);
}

/* A JSON number as a double (integers too); fallback when it is not one. */
static double json_get_number(const json_t *obj, const char *key, double fallback)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_number(v) ? json_number_value(v) : fallback;
}

static void print_socket(const json_t *sock)
{
	const char *name = json_get_str(sock, "name", ""),
		   *vendor = json_get_str(sock, "vendor", "");
	long long freq = json_get_int(sock, "frequency", 0),
		  fmin = json_get_int(sock, "frequency_minimum", 0),
		  fturbo = json_get_int(sock, "frequency_turbo", 0);
	const json_t *cores = json_object_get(sock, "cores"), *core;
	size_t i;

	printf("  Socket %lld:", json_get_int(sock, "socket", 0));
	if (*name)
		printf(" %s", name);
	if (*vendor)
		printf(*name ? " (%s)" : " %s", vendor);
	putchar('\n');
	if (freq || fmin || fturbo) {
		const char *sep = " (";

		printf("    Frequency:");
		if (freq) {
			putchar(' ');
			print_mhz(freq, 1);
		} else {
			sep = " ";
		}
		if (fmin) {
			printf("%smin: ", sep);
			print_mhz(fmin, 1);
			sep = ", ";
		}
		if (fturbo) {
			printf("%sturbo: ", sep);
			print_mhz(fturbo, 1);
		}
		printf("%s\n", freq && (fmin || fturbo) ? ")" : "");
	}
	if (json_array_size(cores) == 0)
		return;
	printf("    Cores:\n");
	json_array_foreach(cores, i, core) {
		const json_t *threads = json_object_get(core, "threads"), *th;
		cleanup_free int *ids = calloc(json_array_size(threads) + 1, sizeof(int));
		size_t k, n = 0;

		if (!ids)
			return;
		json_array_foreach(threads, k, th)
			ids[n++] = (int)json_get_int(th, "id", 0);
		printf("      core %lld: CPU%s ", json_get_int(core, "core", 0), n == 1 ? "" : "s");
		print_cpu_list(ids, n);
		if (json_get_int(core, "frequency", 0) > 0) {
			printf(" (");
			print_mhz(json_get_int(core, "frequency", 0), 1);
			putchar(')');
		}
		putchar('\n');
	}
}

static void print_res_cpu(const json_t *cpu)
{
	const json_t *sockets = json_object_get(cpu, "sockets"), *sock;
	size_t i;

	if (!json_is_object(cpu))
		return;
	printf("CPU:\n");
	if (*json_get_str(cpu, "architecture", ""))
		printf("  Architecture: %s\n", json_get_str(cpu, "architecture", ""));
	if (json_is_integer(json_object_get(cpu, "total")))
		printf("  Total CPUs: %lld\n", json_get_int(cpu, "total", 0));
	json_array_foreach(sockets, i, sock)
		print_socket(sock);
}

static void print_res_memory(const json_t *mem)
{
	const json_t *nodes = json_object_get(mem, "nodes"), *node;
	long long total = json_get_int(mem, "total", 0), used = json_get_int(mem, "used", 0);
	char a[32], b[32];
	size_t i;

	if (!json_is_object(mem))
		return;
	printf("\nMemory:\n");
	if (total >= used)
		printf("  Free: %s\n", format_bytes((uint64_t)(total - used), a));
	printf("  Used: %s\n", format_bytes((uint64_t)used, a));
	printf("  Total: %s\n", format_bytes((uint64_t)total, a));
	if (json_array_size(nodes) < 2)
		return; /* one node: the same numbers again */
	json_array_foreach(nodes, i, node)
		printf("  NUMA node %lld: %s used of %s\n", json_get_int(node, "numa_node", 0),
		       format_bytes((uint64_t)json_get_int(node, "used", 0), a),
		       format_bytes((uint64_t)json_get_int(node, "total", 0), b));
}

static void print_res_numa(const json_t *numa)
{
	const json_t *node;
	char a[32], b[32];
	size_t i;

	if (json_array_size(numa) == 0)
		return;
	printf("\nNUMA:\n");
	json_array_foreach(numa, i, node) {
		const json_t *errs = json_object_get(node, "memory_errors");
		long long ce = json_get_int(errs, "corrected", 0),
			  ue = json_get_int(errs, "uncorrected", 0);
		const char *ded = json_get_str(node, "cpus_dedicated", "");

		printf("  Node %lld:\n", json_get_int(node, "node", 0));
		printf("    CPUs: %s (%lld)\n", json_get_str(node, "cpus", ""),
		       json_get_int(node, "cpus_total", 0));
		if (*ded)
			printf("    Dedicated CPUs: %s (%lld)\n", ded,
			       json_get_int(node, "cpus_dedicated_count", 0));
		else
			printf("    Dedicated CPUs: none\n");
		printf("    Free CPUs: %lld\n", json_get_int(node, "cpus_free", 0));
		printf("    Memory: %s committed of %s\n",
		       format_bytes((uint64_t)json_get_int(node, "memory_committed", 0), a),
		       format_bytes((uint64_t)json_get_int(node, "memory_total", 0), b));
		if (ce || ue)
			printf("    Memory errors: %lld corrected, %lld uncorrected\n", ce, ue);
		if (json_get_bool(node, "avoided_by_sensitive", false))
			printf("    Avoided by security.sensitive instances: yes\n");
	}
}

static void print_res_capacity(const json_t *cap)
{
	const char *source = json_get_str(cap, "source", "");
	const char *shared = json_get_str(cap, "shared_cpus", "");
	char a[32], b[32], c[32];

	if (!json_is_object(cap))
		return;
	printf("\nCapacity:\n");
	if (*source)
		printf("  Source: %s%s\n", source,
		       streq(source, "hardware") ? " (no capacity file)" : "");
	printf("  CPUs: %lld committed / %lld usable of %lld at target %g\n",
	       json_get_int(cap, "cpus_committed", 0), json_get_int(cap, "cpus_usable", 0),
	       json_get_int(cap, "cpu_total", 0), json_get_number(cap, "target_utilization", 1));
	printf("  Memory: %s committed / %s usable of %s\n",
	       format_bytes((uint64_t)json_get_int(cap, "memory_committed", 0), a),
	       format_bytes((uint64_t)json_get_int(cap, "memory_usable", 0), b),
	       format_bytes((uint64_t)json_get_int(cap, "ram_total", 0), c));
	if (json_get_int(cap, "disk_total", 0) > 0)
		printf("  Disk: %s committed / %s usable of %s\n",
		       format_bytes((uint64_t)json_get_int(cap, "disk_committed", 0), a),
		       format_bytes((uint64_t)json_get_int(cap, "disk_usable", 0), b),
		       format_bytes((uint64_t)json_get_int(cap, "disk_total", 0), c));
	printf("  Instances placed: %lld\n", json_get_int(cap, "instances_placed", 0));
	printf("  Shared CPUs: %s\n", *shared ? shared : "none");
	if (*json_get_str(cap, "cpu_governor", ""))
		printf("  Governor of dedicated CPUs: %s\n", json_get_str(cap, "cpu_governor", ""));
}

/* cpufreq grouped by governor, in the order the governors first appear: "CPUs 0-23: ondemand,
 * 1600-3460MHz (now 1600-3400MHz)". */
static void print_res_cpufreq(const json_t *freq)
{
	size_t n = json_array_size(freq), i;
	cleanup_free bool *done = calloc(n + 1, sizeof(bool));
	cleanup_free int *ids = calloc(n + 1, sizeof(int));
	const json_t *f;

	if (!done || !ids)
		return;
	printf("  CPU frequency:\n");
	json_array_foreach(freq, i, f) {
		const char *gov = json_get_str(f, "governor", "");
		long long lo = 0, hi = 0, cur_lo = 0, cur_hi = 0;
		size_t k, m = 0;
		const json_t *g;

		if (done[i])
			continue;
		json_array_foreach(freq, k, g) {
			long long mn = json_get_int(g, "minimum", 0),
				  mx = json_get_int(g, "maximum", 0),
				  cur = json_get_int(g, "current", 0);

			if (k < i || done[k] || !streq(json_get_str(g, "governor", ""), gov))
				continue;
			done[k] = true;
			ids[m++] = (int)json_get_int(g, "cpu", 0);
			if (mn > 0 && (!lo || mn < lo))
				lo = mn;
			hi = mx > hi ? mx : hi;
			if (cur > 0 && (!cur_lo || cur < cur_lo))
				cur_lo = cur;
			cur_hi = cur > cur_hi ? cur : cur_hi;
		}
		printf("    CPU%s ", m == 1 ? "" : "s");
		print_cpu_list(ids, m);
		printf(": %s", *gov ? gov : "no governor");
		if (lo || hi) {
			printf(", ");
			print_mhz_range(lo, hi, 1000);
		}
		if (cur_hi) {
			printf(" (now ");
			print_mhz_range(cur_lo, cur_hi, 1000);
			putchar(')');
		}
		putchar('\n');
	}
}

static void print_res_sensors(const json_t *sensors)
{
	const json_t *freq = json_object_get(sensors, "cpufreq"),
		     *thermal = json_object_get(sensors, "thermal"),
		     *power = json_object_get(sensors, "power"),
		     *mcs = json_object_get(sensors, "memory_controllers"), *v;
	const char *governors = json_get_str(sensors, "governors_available", "");
	size_t i;

	if (json_array_size(freq) == 0 && json_array_size(thermal) == 0 &&
	    json_array_size(power) == 0 && json_array_size(mcs) == 0 && !*governors)
		return;
	printf("\nSensors:\n");
	if (json_array_size(thermal) > 0)
		printf("  Thermal zones:\n");
	json_array_foreach(thermal, i, v) {
		const json_t *t = json_object_get(v, "temperature");

		printf("    zone %lld (%s): ", json_get_int(v, "zone", 0),
		       json_get_str(v, "type", ""));
		if (json_is_number(t))
			printf("%.1f°C\n", json_number_value(t));
		else
			printf("unreadable\n");
	}
	if (json_array_size(power) > 0)
		printf("  Power (RAPL):\n");
	json_array_foreach(power, i, v) {
		const json_t *e = json_object_get(v, "energy_uj");
		long long limit = json_get_int(v, "power_limit_uw", 0);

		printf("    zone %lld (%s):", json_get_int(v, "zone", 0),
		       json_get_str(v, "name", ""));
		if (json_is_integer(e))
			printf(" energy %.2f J", (double)json_integer_value(e) / 1e6);
		else
			printf(" energy unreadable");
		if (limit > 0)
			printf(", power limit %.1f W", (double)limit / 1e6);
		putchar('\n');
	}
	if (json_array_size(mcs) > 0)
		printf("  Memory controllers:\n");
	json_array_foreach(mcs, i, v) {
		printf("    mc%lld (%s", json_get_int(v, "mc", 0), json_get_str(v, "name", ""));
		if (json_get_int(v, "numa_node", -1) >= 0)
			printf(", NUMA node %lld", json_get_int(v, "numa_node", -1));
		printf("): %lld corrected, %lld uncorrected errors\n",
		       json_get_int(v, "corrected", 0), json_get_int(v, "uncorrected", 0));
	}
	if (json_array_size(freq) > 0)
		print_res_cpufreq(freq);
	if (*governors)
		printf("  Governors available: %s\n", governors);
}

static int resources_info(struct cli_context *ctx, struct cli_client *c, enum cli_format format)
{
	cleanup_json json_t *res = NULL;
	int r;

	r = cli_get(c, "/1.0/resources", &res, &ctx->error);
	if (r < 0)
		return r;
	if (!json_is_object(res))
		return kiva_error_set(&ctx->error, -EIO, "Malformed resources from kivad");
	if (format == CLI_FORMAT_JSON)
		return cli_print_json(res) < 0 ? cli_oom(ctx) : 0;
	if (format == CLI_FORMAT_YAML) {
		cli_yaml_print(stdout, res, 0);
		return 0;
	}
	print_res_cpu(json_object_get(res, "cpu"));
	print_res_memory(json_object_get(res, "memory"));
	print_res_numa(json_object_get(res, "numa"));
	print_res_capacity(json_object_get(res, "capacity"));
	print_res_sensors(json_object_get(res, "sensors"));
	return 0;
}

enum {
	OPT_RESOURCES = 1,
	OPT_FORMAT,
};

struct info_options {
	bool resources;
	bool format_set;
	enum cli_format format;
};

static int handle_option(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct info_options *o = userdata;

	if (id == OPT_RESOURCES) {
		o->resources = true;
		return 0;
	}
	if (cli_parse_format(arg, &o->format) < 0 || o->format == CLI_FORMAT_CSV)
		return kiva_error_set(reterr, -EINVAL, "Invalid format '%s': table, json or yaml",
				      arg);
	o->format_set = true;
	return 0;
}

static int cmd_info(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {
		{"resources", 0, false, OPT_RESOURCES},
		{"format", 'f', true, OPT_FORMAT},
		{},
	};
	struct info_options o = {.format = CLI_FORMAT_TABLE};
	struct cli_parse spec = {
		.cmd = &cli_command_info,
		.options = options,
		.min_args = 0,
		.max_args = 1,
		.handle = handle_option,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (o.resources && a.n_positional > 0)
		return cli_usage_error(ctx, "--resources shows the server's resources: it takes no "
					    "instance name");
	if (o.format_set && !o.resources)
		return cli_usage_error(ctx, "--format applies to --resources only");
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (o.resources)
		return resources_info(ctx, c, o.format);
	if (a.n_positional == 0)
		return server_info(ctx, c);
	return instance_info(ctx, c, a.positional[0]);
}

const struct cli_command cli_command_info = {
	.name = "info",
	.run = cmd_info,
	.summary = "Show an instance's or the server's details",
	.usage = "Usage: kiva info [NAME]\n"
		 "       kiva info --resources [--format json|yaml]\n"
		 "\n"
		 "With NAME: the instance's status, PID, dates, resource usage (processes, CPU,\n"
		 "memory, network), its limits.* configuration, its pinning (placement, CPUs,\n"
		 "memory nodes, NUMA node) and its snapshots (name, when taken, when they expire,\n"
		 "size, stateful).\n"
		 "Without NAME: the server's version, kernel, storage and API extensions.\n"
		 "With --resources: the host's hardware and the scheduler's view of it: CPU\n"
		 "sockets, cores and threads, memory, NUMA nodes (dedicated and free CPUs,\n"
		 "committed memory, memory errors), capacity (committed / usable / total) and\n"
		 "sensors (temperatures, RAPL power, memory controllers, CPU governors).\n"
		 "\n"
		 "Flags:\n"
		 "      --resources       Show the host's resources (GET /1.0/resources)\n"
		 "  -f, --format FORMAT   With --resources: table (default, the layout above),\n"
		 "                        json or yaml (the API's object as is)\n"
		 "\n"
		 "Example:\n"
		 "  kiva info c1\n"
		 "  kiva info --resources\n",
};
