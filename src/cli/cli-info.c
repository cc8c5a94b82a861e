/* kiva info: an instance's configuration and live state in lxc's layout (GET /1.0/instances/<name>
 * and .../state), or, without a name, the server's (GET /1.0). */
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

static void print_limits(const json_t *inst, const json_t *state)
{
	const json_t *config = json_object_get(inst, "expanded_config");
	const json_t *kiva = json_object_get(state, "kiva");
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
	free(keys);
	keys = NULL;
	if (!json_is_object(kiva) || json_object_size(kiva) == 0 || !(keys = sorted_keys(kiva, &n)))
		return;
	printf("\nPinning:\n");
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_object_get(kiva, keys[i]);
		const char *label = keys[i];

		if (json_is_object(v) || json_is_array(v) || json_is_null(v))
			continue;
		if (streq(label, "cpuset"))
			label = "CPUs";
		else if (streq(label, "mems") || streq(label, "numa_nodes"))
			label = "Memory nodes";
		printf("  %s: ", label);
		print_json_scalar(v);
		putchar('\n');
	}
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
	return 0;
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

static int cmd_info(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {
		.cmd = &cli_command_info,
		.min_args = 0,
		.max_args = 1,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (a.n_positional == 0)
		return server_info(ctx, c);
	return instance_info(ctx, c, a.positional[0]);
}

const struct cli_command cli_command_info = {
	.name = "info",
	.run = cmd_info,
	.summary = "Show an instance's or the server's details",
	.usage = "Usage: kiva info [NAME]\n"
		 "\n"
		 "With NAME: the instance's status, PID, dates, resource usage (processes, CPU,\n"
		 "memory, network), its limits.* configuration and its CPU pinning.\n"
		 "Without NAME: the server's version, kernel, storage and API extensions.\n"
		 "\n"
		 "Example:\n"
		 "  kiva info c1\n",
};
