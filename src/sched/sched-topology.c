/* Host topology from sysfs under a root path, and the CPU-set helpers every sched file uses.
 * Reads only what placement needs: /sys/devices/system/cpu/online, each online CPU's
 * topology/{physical_package_id,core_id,thread_siblings_list}, /sys/devices/system/node/online
 * and each node's cpulist and meminfo (MemTotal). Tests point the root at fake trees under
 * tests/fixtures/sched/. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-error.h"
#include "basic-fs.h"
#include "basic-macro.h"
#include "kiva-sched.h"

void sched_cpuset_zero(struct sched_cpuset *s)
{
	memset(s, 0, sizeof(*s));
}

void sched_cpuset_add(struct sched_cpuset *s, unsigned cpu)
{
	if (cpu < SCHED_CPUS_MAX)
		s->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}

void sched_cpuset_del(struct sched_cpuset *s, unsigned cpu)
{
	if (cpu < SCHED_CPUS_MAX)
		s->bits[cpu / 64] &= ~(UINT64_C(1) << (cpu % 64));
}

bool sched_cpuset_has(const struct sched_cpuset *s, unsigned cpu)
{
	return cpu < SCHED_CPUS_MAX && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

unsigned sched_cpuset_count(const struct sched_cpuset *s)
{
	unsigned n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(s->bits); i++)
		n += (unsigned)__builtin_popcountll(s->bits[i]);
	return n;
}

bool sched_cpuset_empty(const struct sched_cpuset *s)
{
	return sched_cpuset_count(s) == 0;
}

bool sched_cpuset_equal(const struct sched_cpuset *a, const struct sched_cpuset *b)
{
	return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

bool sched_cpuset_intersects(const struct sched_cpuset *a, const struct sched_cpuset *b)
{
	for (size_t i = 0; i < ARRAY_SIZE(a->bits); i++)
		if (a->bits[i] & b->bits[i])
			return true;
	return false;
}

void sched_cpuset_or(struct sched_cpuset *dst, const struct sched_cpuset *src)
{
	for (size_t i = 0; i < ARRAY_SIZE(dst->bits); i++)
		dst->bits[i] |= src->bits[i];
}

void sched_cpuset_andnot(struct sched_cpuset *dst, const struct sched_cpuset *src)
{
	for (size_t i = 0; i < ARRAY_SIZE(dst->bits); i++)
		dst->bits[i] &= ~src->bits[i];
}

static int parse_uint(const char **p, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (**p < '0' || **p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(*p, &end, 10);
	if (errno != 0)
		return -ERANGE;
	*p = end;
	*ret = v;
	return 0;
}

int sched_cpuset_parse(const char *s, struct sched_cpuset *ret)
{
	struct sched_cpuset set;
	const char *p = s;
	int r;

	sched_cpuset_zero(&set);
	if (*p == '\0' || streq(p, "\n")) {
		*ret = set;
		return 0;
	}
	for (;;) {
		unsigned long a, b;

		r = parse_uint(&p, &a);
		if (r < 0)
			return r;
		b = a;
		if (*p == '-') {
			p++;
			r = parse_uint(&p, &b);
			if (r < 0)
				return r;
			if (b < a)
				return -EINVAL;
		}
		if (b >= SCHED_CPUS_MAX)
			return -ERANGE;
		for (unsigned long c = a; c <= b; c++)
			sched_cpuset_add(&set, (unsigned)c);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\n')
			p++;
		if (*p != '\0')
			return -EINVAL;
		break;
	}
	*ret = set;
	return 0;
}

int sched_cpuset_format(const struct sched_cpuset *s, char *buf, size_t size)
{
	size_t len = 0;

	if (size == 0)
		return -ENOBUFS;
	buf[0] = '\0';
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		unsigned e = c;
		int n;

		if (!sched_cpuset_has(s, c))
			continue;
		while (e + 1 < SCHED_CPUS_MAX && sched_cpuset_has(s, e + 1))
			e++;
		if (e == c)
			n = snprintf(buf + len, size - len, "%s%u", len ? "," : "", c);
		else
			n = snprintf(buf + len, size - len, "%s%u-%u", len ? "," : "", c, e);
		if (n < 0 || (size_t)n >= size - len)
			return -ENOBUFS;
		len += (size_t)n;
		c = e;
	}
	return (int)len;
}

/* Reads <root>/<rel> into *ret (caller frees). */
static int read_sys(const char *root, const char *rel, char **ret, struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	int r;

	if (asprintf(&path, "%s/%s", root, rel) < 0)
		return -ENOMEM;
	r = read_file(path, 1 << 20, ret, NULL);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to read '%s': %s", path, strerror(-r));
	return 0;
}

static int read_sys_set(const char *root, const char *rel, struct sched_cpuset *ret,
			struct kiva_error *reterr)
{
	cleanup_free char *text = NULL;
	int r;

	r = read_sys(root, rel, &text, reterr);
	if (r < 0)
		return r;
	r = sched_cpuset_parse(text, ret);
	if (r < 0)
		return kiva_error_set(reterr, r, "Invalid CPU list in '%s/%s'", root, rel);
	return 0;
}

static int read_sys_int(const char *root, const char *rel, int *ret, struct kiva_error *reterr)
{
	cleanup_free char *text = NULL;
	char *end;
	long v;
	int r;

	r = read_sys(root, rel, &text, reterr);
	if (r < 0)
		return r;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\0' && *end != '\n') || v < -1 || v > 1 << 20)
		return kiva_error_set(reterr, -EINVAL, "Invalid number in '%s/%s'", root, rel);
	*ret = (int)v;
	return 0;
}

/* Finds "MemTotal:" in a meminfo text (node or /proc) and returns bytes. */
static int parse_memtotal(const char *text, uint64_t *ret)
{
	const char *p = strstr(text, "MemTotal:");
	unsigned long long kb;
	char *end;

	if (!p)
		return -EINVAL;
	p += strlen("MemTotal:");
	errno = 0;
	kb = strtoull(p, &end, 10);
	if (errno != 0 || end == p)
		return -EINVAL;
	while (*end == ' ')
		end++;
	if (!startswith(end, "kB"))
		return -EINVAL;
	*ret = (uint64_t)kb * 1024;
	return 0;
}

static int read_sys_memtotal(const char *root, const char *rel, uint64_t *ret,
			     struct kiva_error *reterr)
{
	cleanup_free char *text = NULL;
	int r;

	r = read_sys(root, rel, &text, reterr);
	if (r < 0)
		return r;
	if (parse_memtotal(text, ret) < 0)
		return kiva_error_set(reterr, -EINVAL, "No MemTotal in '%s/%s'", root, rel);
	return 0;
}

int sched_topology_read(const char *root, struct sched_topology **ret, struct kiva_error *reterr)
{
	cleanup_free struct sched_topology *t = NULL;
	cleanup_free char *rootdir = NULL;
	struct sched_cpuset nodes;
	char rel[256];
	bool numa = true;
	int r;

	rootdir = strdup(root && *root ? root : "/");
	if (!rootdir)
		return -ENOMEM;
	for (size_t n = strlen(rootdir); n > 0 && rootdir[n - 1] == '/'; n--)
		rootdir[n - 1] = '\0';
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;

	r = read_sys_set(rootdir, "sys/devices/system/cpu/online", &t->online, reterr);
	if (r < 0)
		return r;
	if (sched_cpuset_empty(&t->online))
		return kiva_error_set(reterr, -EINVAL, "No online CPU under '%s/'", rootdir);

	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		struct sched_cpu *cpu = &t->cpus[c];

		cpu->node = -1;
		if (!sched_cpuset_has(&t->online, c))
			continue;
		cpu->online = true;
		t->n_cpus = c + 1;
		t->n_online++;
		snprintf(rel, sizeof(rel),
			 "sys/devices/system/cpu/cpu%u/topology/physical_package_id", c);
		r = read_sys_int(rootdir, rel, &cpu->socket, reterr);
		if (r < 0)
			return r;
		snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpu%u/topology/core_id", c);
		r = read_sys_int(rootdir, rel, &cpu->core, reterr);
		if (r < 0)
			return r;
		snprintf(rel, sizeof(rel),
			 "sys/devices/system/cpu/cpu%u/topology/thread_siblings_list", c);
		r = read_sys_set(rootdir, rel, &cpu->siblings, reterr);
		if (r < 0)
			return r;
		sched_cpuset_add(&cpu->siblings, c);
		/* Offline siblings are not placeable. */
		for (unsigned s = 0; s < SCHED_CPUS_MAX; s++)
			if (sched_cpuset_has(&cpu->siblings, s) && !sched_cpuset_has(&t->online, s))
				sched_cpuset_del(&cpu->siblings, s);
	}

	r = read_sys_set(rootdir, "sys/devices/system/node/online", &nodes, NULL);
	if (r == -ENOENT)
		numa = false;
	else if (r < 0)
		return read_sys_set(rootdir, "sys/devices/system/node/online", &nodes, reterr);

	if (!numa) {
		t->nodes[0].cpus = t->online;
		r = read_sys_memtotal(rootdir, "proc/meminfo", &t->nodes[0].mem_bytes, reterr);
		if (r < 0)
			return r;
		t->n_nodes = 1;
	} else {
		for (unsigned n = 0; n < SCHED_CPUS_MAX; n++) {
			struct sched_cpuset cpus;

			if (!sched_cpuset_has(&nodes, n))
				continue;
			if (n >= SCHED_NODES_MAX)
				return kiva_error_set(reterr, -ERANGE, "NUMA node %u is beyond %d",
						      n, SCHED_NODES_MAX);
			snprintf(rel, sizeof(rel), "sys/devices/system/node/node%u/cpulist", n);
			r = read_sys_set(rootdir, rel, &cpus, reterr);
			if (r < 0)
				return r;
			snprintf(rel, sizeof(rel), "sys/devices/system/node/node%u/meminfo", n);
			r = read_sys_memtotal(rootdir, rel, &t->nodes[n].mem_bytes, reterr);
			if (r < 0)
				return r;
			for (unsigned c = 0; c < SCHED_CPUS_MAX; c++)
				if (sched_cpuset_has(&cpus, c) && sched_cpuset_has(&t->online, c))
					sched_cpuset_add(&t->nodes[n].cpus, c);
			t->n_nodes = n + 1;
		}
		if (t->n_nodes == 0)
			return kiva_error_set(reterr, -EINVAL, "No online NUMA node under '%s/'",
					      rootdir);
		/* One node holds all the memory there is. Some VMs report only the boot memory
		 * in node0/meminfo (this project's CI VM: 4.6 of 23.5 GiB); /proc/meminfo counts
		 * what was added later too. */
		if (t->n_nodes == 1) {
			uint64_t total = 0;

			if (read_sys_memtotal(rootdir, "proc/meminfo", &total, NULL) == 0 &&
			    total > t->nodes[0].mem_bytes)
				t->nodes[0].mem_bytes = total;
		}
	}

	for (unsigned n = 0; n < t->n_nodes; n++) {
		t->mem_bytes += t->nodes[n].mem_bytes;
		for (unsigned c = 0; c < SCHED_CPUS_MAX; c++)
			if (sched_cpuset_has(&t->nodes[n].cpus, c))
				t->cpus[c].node = (int)n;
	}
	for (unsigned c = 0; c < t->n_cpus; c++) {
		bool seen_socket = false, seen_core = false;

		if (!t->cpus[c].online)
			continue;
		if (t->cpus[c].node < 0)
			return kiva_error_set(reterr, -EINVAL, "CPU %u is in no NUMA node", c);
		for (unsigned d = 0; d < c; d++) {
			if (!t->cpus[d].online || t->cpus[d].socket != t->cpus[c].socket)
				continue;
			seen_socket = true;
			if (t->cpus[d].core == t->cpus[c].core)
				seen_core = true;
		}
		t->n_sockets += !seen_socket;
		t->n_cores += !seen_core;
	}

	*ret = TAKE_PTR(t);
	return 0;
}
