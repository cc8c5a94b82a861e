/* The allocator: a pure model of who owns which CPU and how much memory each NUMA node has
 * committed, and the placement decision the daemon (and later the cluster scheduler) asks of it.
 * No I/O: the daemon writes cpuset.cpus / cpuset.mems from the placements returned here.
 *
 * Invariants kept after every call: a dedicated CPU has exactly one owner; committed dedicated
 * CPUs, memory and disk never grow past total × target_utilization (DESIGN.md §6); an instance
 * asking for N CPUs spans several nodes only when no single node had N free CPUs and its memory. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "kiva-sched.h"

#define GIB ((double)(UINT64_C(1) << 30))
#define MIN_U64(a, b) ((a) < (b) ? (a) : (b))

struct sched_instance {
	uint32_t id;
	struct sched_placement pl;
	uint64_t mem_bytes, disk_bytes;
	uint64_t node_mem[SCHED_NODES_MAX]; /* memory charged to each node */
};

struct sched_model {
	struct sched_topology topo;
	struct sched_capacity cap;
	uint32_t owner[SCHED_CPUS_MAX];
	uint64_t node_mem[SCHED_NODES_MAX];
	unsigned cpus_committed;
	uint64_t mem_committed, disk_committed;
	struct sched_instance *inst;
	size_t n_inst, n_alloc;
};

/* What a decision produces besides the placement: memory per node. */
struct decision {
	struct sched_placement pl;
	uint64_t node_mem[SCHED_NODES_MAX];
};

int sched_model_new(const struct sched_topology *topo, const struct sched_capacity *cap,
		    struct sched_model **ret)
{
	struct sched_model *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->topo = *topo;
	m->cap = *cap;
	*ret = m;
	return 0;
}

void sched_model_free(struct sched_model *m)
{
	if (!m)
		return;
	free(m->inst);
	free(m);
}

void sched_model_set_capacity(struct sched_model *m, const struct sched_capacity *cap)
{
	m->cap = *cap;
}

static unsigned usable_cpus(const struct sched_model *m)
{
	return (unsigned)floor((double)m->cap.cpu_total * m->cap.target + 1e-9);
}

static uint64_t usable_bytes(uint64_t total, double target)
{
	return (uint64_t)floor((double)total * target);
}

static bool node_exists(const struct sched_model *m, int n)
{
	return n >= 0 && (unsigned)n < m->topo.n_nodes &&
	       !sched_cpuset_empty(&m->topo.nodes[n].cpus);
}

static void node_free_set(const struct sched_model *m, unsigned n, struct sched_cpuset *ret)
{
	sched_cpuset_zero(ret);
	for (unsigned c = 0; c < m->topo.n_cpus; c++)
		if (sched_cpuset_has(&m->topo.nodes[n].cpus, c) && m->owner[c] == 0)
			sched_cpuset_add(ret, c);
}

unsigned sched_node_free_cpus(const struct sched_model *m, unsigned node)
{
	struct sched_cpuset s;

	if (!node_exists(m, (int)node))
		return 0;
	node_free_set(m, node, &s);
	return sched_cpuset_count(&s);
}

uint64_t sched_node_mem_committed(const struct sched_model *m, unsigned node)
{
	return node < SCHED_NODES_MAX ? m->node_mem[node] : 0;
}

static bool node_mem_fits(const struct sched_model *m, unsigned n, uint64_t bytes)
{
	return m->node_mem[n] + bytes <= usable_bytes(m->topo.nodes[n].mem_bytes, m->cap.target);
}

static int admit(const struct sched_model *m, unsigned cpus, const struct sched_request *req,
		 struct kiva_error *reterr)
{
	unsigned ucpu = usable_cpus(m);
	uint64_t umem = usable_bytes(m->cap.ram_bytes, m->cap.target);

	if (cpus > 0 && m->cpus_committed + cpus > ucpu)
		return kiva_error_set(
			reterr, -ENOSPC,
			"needs %u CPUs, host has %u (target %g → %u usable, %u committed)", cpus,
			m->cap.cpu_total, m->cap.target, ucpu, m->cpus_committed);
	if (req->mem_bytes > 0 && m->mem_committed + req->mem_bytes > umem)
		return kiva_error_set(
			reterr, -ENOSPC,
			"needs %.1f GiB of memory, host has %.1f GiB (target %g → %.1f GiB usable, %.1f GiB committed)",
			(double)req->mem_bytes / GIB, (double)m->cap.ram_bytes / GIB, m->cap.target,
			(double)umem / GIB, (double)m->mem_committed / GIB);
	if (req->disk_bytes > 0 && m->cap.disk_bytes > 0) {
		uint64_t udisk = usable_bytes(m->cap.disk_bytes, m->cap.target);

		if (m->disk_committed + req->disk_bytes > udisk)
			return kiva_error_set(
				reterr, -ENOSPC,
				"needs %.1f GB of disk, host has %.1f GB (target %g → %.1f GB usable, %.1f GB committed)",
				(double)req->disk_bytes / 1e9, (double)m->cap.disk_bytes / 1e9,
				m->cap.target, (double)udisk / 1e9,
				(double)m->disk_committed / 1e9);
	}
	return 0;
}

/* Picks k CPUs out of free (all on one node): whole physical cores while k covers one, cores of
 * the first socket used kept together, CPUs in keep first (resize), then single threads from
 * already broken cores before breaking a whole one. free must hold at least k CPUs. */
static void pick_cpus(const struct sched_model *m, const struct sched_cpuset *free_set, unsigned k,
		      const struct sched_cpuset *keep, struct sched_cpuset *out)
{
	struct sched_cpuset avail = *free_set;
	int socket = -1;

	/* Phase 1: whole cores. */
	while (k > 0) {
		int best = -1;
		unsigned best_kept = 0;
		bool best_socket = false;

		for (unsigned c = 0; c < m->topo.n_cpus; c++) {
			const struct sched_cpuset *sib = &m->topo.cpus[c].siblings;
			struct sched_cpuset tmp;
			unsigned size, kept;
			bool same_socket;

			if (!sched_cpuset_has(&avail, c))
				continue;
			size = sched_cpuset_count(sib);
			tmp = *sib;
			sched_cpuset_andnot(&tmp, &avail);
			if (!sched_cpuset_empty(&tmp) || size > k)
				continue; /* not whole, or too big for what is left */
			tmp = *sib;
			kept = 0;
			for (unsigned s = 0; s < m->topo.n_cpus; s++)
				if (sched_cpuset_has(&tmp, s) && sched_cpuset_has(keep, s))
					kept++;
			same_socket = socket < 0 || m->topo.cpus[c].socket == socket;
			if (best < 0 || kept > best_kept ||
			    (kept == best_kept && same_socket && !best_socket)) {
				best = (int)c;
				best_kept = kept;
				best_socket = same_socket;
			}
		}
		if (best < 0)
			break;
		for (unsigned s = 0; s < m->topo.n_cpus; s++)
			if (sched_cpuset_has(&m->topo.cpus[best].siblings, s)) {
				sched_cpuset_add(out, s);
				sched_cpuset_del(&avail, s);
				k--;
			}
		if (socket < 0)
			socket = m->topo.cpus[best].socket;
	}

	/* Phase 2: single threads. */
	while (k > 0) {
		int best = -1, best_score = -1;

		for (unsigned c = 0; c < m->topo.n_cpus; c++) {
			struct sched_cpuset tmp;
			int score = 0;

			if (!sched_cpuset_has(&avail, c))
				continue;
			if (sched_cpuset_has(keep, c))
				score += 4;
			tmp = m->topo.cpus[c].siblings;
			sched_cpuset_andnot(&tmp, &avail);
			if (!sched_cpuset_empty(&tmp))
				score += 2; /* a core already broken */
			if (socket < 0 || m->topo.cpus[c].socket == socket)
				score += 1;
			if (score > best_score) {
				best = (int)c;
				best_score = score;
			}
		}
		if (best < 0)
			break; /* cannot happen: the caller checked the count */
		sched_cpuset_add(out, (unsigned)best);
		sched_cpuset_del(&avail, (unsigned)best);
		if (socket < 0)
			socket = m->topo.cpus[best].socket;
		k--;
	}
}

/* Node load for "least loaded": dedicated fraction, then memory fraction, compared exactly. */
static bool less_loaded(const struct sched_model *m, unsigned a, unsigned b)
{
	uint64_t ta = sched_cpuset_count(&m->topo.nodes[a].cpus);
	uint64_t tb = sched_cpuset_count(&m->topo.nodes[b].cpus);
	uint64_t ua = ta - sched_node_free_cpus(m, a), ub = tb - sched_node_free_cpus(m, b);
	double ma, mb;

	if (ua * tb != ub * ta)
		return ua * tb < ub * ta;
	ma = m->topo.nodes[a].mem_bytes
		     ? (double)m->node_mem[a] / (double)m->topo.nodes[a].mem_bytes
		     : 1;
	mb = m->topo.nodes[b].mem_bytes
		     ? (double)m->node_mem[b] / (double)m->topo.nodes[b].mem_bytes
		     : 1;
	if (ma != mb)
		return ma < mb;
	return a < b;
}

static bool node_allowed(const struct sched_request *req, unsigned n)
{
	if (n < 64 && (req->avoid_nodes >> n) & 1)
		return false;
	return req->node < 0 || (unsigned)req->node == n;
}

/* Splits bytes over the nodes of mask in proportion to weight[n] (remainder to the last). */
static void split_mem(uint64_t bytes, const unsigned *weight, unsigned total, unsigned n_nodes,
		      uint64_t *out)
{
	uint64_t given = 0;
	int last = -1;

	for (unsigned n = 0; n < n_nodes; n++) {
		if (!weight[n])
			continue;
		out[n] = (uint64_t)((double)bytes * weight[n] / total);
		given += out[n];
		last = (int)n;
	}
	if (last >= 0)
		out[last] += bytes - given;
}

static int decide_count(const struct sched_model *m, const struct sched_request *req, int soft_node,
			const struct sched_cpuset *keep, struct decision *d,
			struct kiva_error *reterr)
{
	unsigned k = req->count, total_free = 0, weight[SCHED_NODES_MAX] = {};
	int best = -1;

	for (unsigned n = 0; n < m->topo.n_nodes; n++) {
		if (!node_exists(m, (int)n) || !node_allowed(req, n))
			continue;
		total_free += sched_node_free_cpus(m, n);
		if (sched_node_free_cpus(m, n) < k || !node_mem_fits(m, n, req->mem_bytes))
			continue;
		if (soft_node == (int)n) {
			best = (int)n;
			break;
		}
		if (best < 0 || less_loaded(m, n, (unsigned)best))
			best = (int)n;
	}

	if (best >= 0) {
		struct sched_cpuset free_set;

		node_free_set(m, (unsigned)best, &free_set);
		pick_cpus(m, &free_set, k, keep, &d->pl.cpus);
		d->pl.node = best;
		d->pl.mems = UINT64_C(1) << best;
		d->node_mem[best] = req->mem_bytes;
		return 0;
	}

	if (req->node >= 0)
		return kiva_error_set(
			reterr, -ENOSPC,
			"needs %u CPUs and %.1f GiB on node %d, which has %u free CPUs and %.1f GiB free",
			k, (double)req->mem_bytes / GIB, req->node,
			sched_node_free_cpus(m, (unsigned)req->node),
			(double)(usable_bytes(m->topo.nodes[req->node].mem_bytes, m->cap.target) -
				 MIN_U64(m->node_mem[req->node],
					 usable_bytes(m->topo.nodes[req->node].mem_bytes,
						      m->cap.target))) /
				GIB);
	if (total_free < k)
		return kiva_error_set(
			reterr, -ENOSPC,
			"needs %u dedicated CPUs, only %u are free on the allowed nodes", k,
			total_free);

	/* No single node fits: the fewest nodes, the freest first. */
	{
		unsigned left = k, used[SCHED_NODES_MAX] = {};
		uint64_t mem[SCHED_NODES_MAX] = {};

		while (left > 0) {
			int freest = -1;
			unsigned freest_n = 0;

			for (unsigned n = 0; n < m->topo.n_nodes; n++) {
				unsigned f;

				if (!node_exists(m, (int)n) || !node_allowed(req, n) || used[n])
					continue;
				f = sched_node_free_cpus(m, n);
				if (f > freest_n) {
					freest = (int)n;
					freest_n = f;
				}
			}
			if (freest < 0)
				break;
			used[freest] = freest_n < left ? freest_n : left;
			left -= used[freest];
		}
		for (unsigned n = 0; n < m->topo.n_nodes; n++)
			weight[n] = used[n];
		split_mem(req->mem_bytes, weight, k, m->topo.n_nodes, mem);
		for (unsigned n = 0; n < m->topo.n_nodes; n++)
			if (used[n] && !node_mem_fits(m, n, mem[n]))
				return kiva_error_set(
					reterr, -ENOSPC,
					"needs %u CPUs and %.1f GiB of memory: no NUMA node has room for them",
					k, (double)req->mem_bytes / GIB);
		d->pl.node = -1;
		d->pl.mems = 0;
		for (unsigned n = 0; n < m->topo.n_nodes; n++) {
			struct sched_cpuset free_set;

			if (!used[n])
				continue;
			node_free_set(m, n, &free_set);
			pick_cpus(m, &free_set, used[n], keep, &d->pl.cpus);
			d->pl.mems |= UINT64_C(1) << n;
			d->node_mem[n] = mem[n];
		}
	}
	return 0;
}

static int decide_list(const struct sched_model *m, const struct sched_request *req,
		       struct decision *d, struct kiva_error *reterr)
{
	unsigned weight[SCHED_NODES_MAX] = {}, k = sched_cpuset_count(&req->cpus), n_used = 0;
	char buf[1024];

	if (k == 0)
		return kiva_error_set(reterr, -EINVAL, "An explicit CPU list must name a CPU");
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		int node;

		if (!sched_cpuset_has(&req->cpus, c))
			continue;
		if (!sched_cpuset_has(&m->topo.online, c)) {
			if (sched_cpuset_format(&m->topo.online, buf, sizeof(buf)) < 0)
				buf[0] = '\0';
			return kiva_error_set(reterr, -EINVAL,
					      "CPU %u does not exist or is offline (online: %s)", c,
					      buf);
		}
		if (m->owner[c] != 0)
			return kiva_error_set(reterr, -EBUSY,
					      "CPU %u is already dedicated to instance %u", c,
					      m->owner[c]);
		node = m->topo.cpus[c].node;
		if (!node_allowed(req, (unsigned)node))
			return kiva_error_set(
				reterr, -EINVAL,
				"CPU %u is on NUMA node %d, which this instance may not use", c,
				node);
		n_used += weight[node] == 0;
		weight[node]++;
	}
	split_mem(req->mem_bytes, weight, k, m->topo.n_nodes, d->node_mem);
	for (unsigned n = 0; n < m->topo.n_nodes; n++) {
		if (!weight[n])
			continue;
		if (!node_mem_fits(m, n, d->node_mem[n]))
			return kiva_error_set(
				reterr, -ENOSPC,
				"needs %.1f GiB of memory on NUMA node %u, which has %.1f GiB committed of %.1f GiB usable",
				(double)d->node_mem[n] / GIB, n, (double)m->node_mem[n] / GIB,
				(double)usable_bytes(m->topo.nodes[n].mem_bytes, m->cap.target) /
					GIB);
		d->pl.mems |= UINT64_C(1) << n;
		if (n_used == 1)
			d->pl.node = (int)n;
	}
	d->pl.cpus = req->cpus;
	return 0;
}

static int decide(const struct sched_model *m, const struct sched_request *req, int soft_node,
		  const struct sched_cpuset *keep, struct decision *ret, struct kiva_error *reterr)
{
	struct decision d = {.pl.node = -1};
	unsigned cpus = 0;
	int r;

	if (req->node >= 0 && !node_exists(m, req->node))
		return kiva_error_set(reterr, -EINVAL, "NUMA node %d does not exist (host has %u)",
				      req->node, m->topo.n_nodes);
	if (req->node >= 0 && req->node < 64 && (req->avoid_nodes >> req->node) & 1)
		return kiva_error_set(reterr, -EINVAL, "NUMA node %d is both requested and avoided",
				      req->node);
	switch (req->mode) {
	case SCHED_CPU_NONE:
		break;
	case SCHED_CPU_COUNT:
		if (req->count == 0)
			return kiva_error_set(reterr, -EINVAL, "A CPU count must be at least 1");
		cpus = req->count;
		break;
	case SCHED_CPU_LIST:
		cpus = sched_cpuset_count(&req->cpus);
		break;
	default:
		return kiva_error_set(reterr, -EINVAL, "Unknown CPU request mode %d", req->mode);
	}

	r = admit(m, cpus, req, reterr);
	if (r < 0)
		return r;

	switch (req->mode) {
	case SCHED_CPU_NONE:
		if (req->node >= 0) {
			if (!node_mem_fits(m, (unsigned)req->node, req->mem_bytes))
				return kiva_error_set(
					reterr, -ENOSPC,
					"needs %.1f GiB of memory on NUMA node %d, which has %.1f GiB committed",
					(double)req->mem_bytes / GIB, req->node,
					(double)m->node_mem[req->node] / GIB);
			d.pl.node = req->node;
			d.pl.mems = UINT64_C(1) << req->node;
			d.node_mem[req->node] = req->mem_bytes;
		} else if (req->avoid_nodes) {
			for (unsigned n = 0; n < m->topo.n_nodes; n++)
				if (node_exists(m, (int)n) && node_allowed(req, n))
					d.pl.mems |= UINT64_C(1) << n;
			if (!d.pl.mems)
				return kiva_error_set(reterr, -ENOSPC,
						      "Every NUMA node is avoided");
		}
		break;
	case SCHED_CPU_COUNT:
		r = decide_count(m, req, soft_node, keep, &d, reterr);
		break;
	case SCHED_CPU_LIST:
		r = decide_list(m, req, &d, reterr);
		break;
	}
	if (r < 0)
		return r;
	*ret = d;
	return 0;
}

int sched_place(const struct sched_model *m, const struct sched_request *req,
		struct sched_placement *ret, struct kiva_error *reterr)
{
	struct sched_cpuset none;
	struct decision d;
	int r;

	sched_cpuset_zero(&none);
	r = decide(m, req, -1, &none, &d, reterr);
	if (r < 0)
		return r;
	*ret = d.pl;
	return 0;
}

static struct sched_instance *find(const struct sched_model *m, uint32_t id)
{
	for (size_t i = 0; i < m->n_inst; i++)
		if (m->inst[i].id == id)
			return &m->inst[i];
	return NULL;
}

static int commit(struct sched_model *m, const struct sched_instance *in)
{
	if (m->n_inst == m->n_alloc) {
		size_t n = m->n_alloc ? m->n_alloc * 2 : 16;
		struct sched_instance *p = realloc(m->inst, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->inst = p;
		m->n_alloc = n;
	}
	m->inst[m->n_inst++] = *in;
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++)
		if (sched_cpuset_has(&in->pl.cpus, c)) {
			m->owner[c] = in->id;
			m->cpus_committed++;
		}
	for (unsigned n = 0; n < SCHED_NODES_MAX; n++)
		m->node_mem[n] += in->node_mem[n];
	m->mem_committed += in->mem_bytes;
	m->disk_committed += in->disk_bytes;
	return 0;
}

static void uncommit(struct sched_model *m, struct sched_instance *in)
{
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++)
		if (sched_cpuset_has(&in->pl.cpus, c)) {
			m->owner[c] = 0;
			m->cpus_committed--;
		}
	for (unsigned n = 0; n < SCHED_NODES_MAX; n++)
		m->node_mem[n] -= in->node_mem[n];
	m->mem_committed -= in->mem_bytes;
	m->disk_committed -= in->disk_bytes;
	*in = m->inst[--m->n_inst];
}

static void fill_instance(struct sched_instance *in, uint32_t id, const struct sched_request *req,
			  const struct decision *d)
{
	*in = (struct sched_instance){
		.id = id,
		.pl = d->pl,
		.mem_bytes = req->mem_bytes,
		.disk_bytes = req->disk_bytes,
	};
	memcpy(in->node_mem, d->node_mem, sizeof(in->node_mem));
}

int sched_add(struct sched_model *m, uint32_t id, const struct sched_request *req,
	      struct sched_placement *ret, struct kiva_error *reterr)
{
	struct sched_instance in;
	struct sched_cpuset none;
	struct decision d;
	int r;

	if (id == 0)
		return kiva_error_set(reterr, -EINVAL, "Instance id 0 is reserved");
	if (find(m, id))
		return kiva_error_set(reterr, -EEXIST, "Instance %u is already placed", id);
	sched_cpuset_zero(&none);
	r = decide(m, req, -1, &none, &d, reterr);
	if (r < 0)
		return r;
	fill_instance(&in, id, req, &d);
	r = commit(m, &in);
	if (r < 0)
		return kiva_error_set(reterr, r, "Out of memory");
	if (ret)
		*ret = d.pl;
	return 0;
}

int sched_resize(struct sched_model *m, uint32_t id, const struct sched_request *req,
		 struct sched_placement *ret, struct kiva_error *reterr)
{
	struct sched_instance *p = find(m, id), old, in;
	struct decision d;
	int r;

	if (!p)
		return kiva_error_set(reterr, -ENOENT, "Instance %u is not placed", id);
	old = *p;
	uncommit(m, p); /* frees a slot: the commits below cannot fail */
	r = decide(m, req, old.pl.node, &old.pl.cpus, &d, reterr);
	if (r < 0) {
		(void)commit(m, &old);
		return r;
	}
	fill_instance(&in, id, req, &d);
	(void)commit(m, &in);
	if (ret)
		*ret = d.pl;
	return 0;
}

int sched_remove(struct sched_model *m, uint32_t id)
{
	struct sched_instance *p = find(m, id);

	if (!p)
		return -ENOENT;
	uncommit(m, p);
	return 0;
}

int sched_get(const struct sched_model *m, uint32_t id, struct sched_placement *ret)
{
	const struct sched_instance *p = find(m, id);

	if (!p)
		return -ENOENT;
	*ret = p->pl;
	return 0;
}

uint32_t sched_cpu_owner(const struct sched_model *m, unsigned cpu)
{
	return cpu < SCHED_CPUS_MAX ? m->owner[cpu] : 0;
}

void sched_shared_set(const struct sched_model *m, struct sched_cpuset *ret)
{
	sched_cpuset_zero(ret);
	for (unsigned c = 0; c < m->topo.n_cpus; c++)
		if (sched_cpuset_has(&m->topo.online, c) && m->owner[c] == 0)
			sched_cpuset_add(ret, c);
}

void sched_usage(const struct sched_model *m, struct sched_usage *ret)
{
	*ret = (struct sched_usage){
		.cpus_committed = m->cpus_committed,
		.cpus_usable = usable_cpus(m),
		.mem_committed = m->mem_committed,
		.mem_usable = usable_bytes(m->cap.ram_bytes, m->cap.target),
		.disk_committed = m->disk_committed,
		.disk_usable =
			m->cap.disk_bytes ? usable_bytes(m->cap.disk_bytes, m->cap.target) : 0,
		.n_instances = (unsigned)m->n_inst,
	};
}
