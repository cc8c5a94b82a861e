/* bench-sched: how long the allocator of src/sched takes to decide, with 500 instances placed
 * (target: sched_place p99 < 50 µs), on the HP Z600 fixture (2 sockets × 6 cores × 2 threads,
 * 2 NUMA nodes) and on this host's own topology. Every call is timed alone with
 * clock_gettime(CLOCK_MONOTONIC); the cost of an empty timing pair is reported next to it.
 * The model's memory is scaled up when the host has too little for the mix (the decision cost
 * does not depend on how many bytes a node has, only on its CPUs and on how full it is).
 *
 * `--numa-bw CPU NODE` is a second mode: a single-thread STREAM-like triad over ~512 MiB with the
 * thread pinned to CPU (sched_setaffinity) and the arrays bound to NUMA node NODE (mbind,
 * MPOL_BIND), median of 5 passes in GB/s. bench/sched/numa.py runs it for local and remote
 * memory on hosts with 2+ NUMA nodes. Raw syscalls: no libnuma. See bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "kiva-sched.h"

#define TARGET_P99_USEC 50.0
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define DEDICATED_MAX 20 /* instances with dedicated CPUs in the mix */
#define MEM_FILL 0.75 /* the mix's memory as a fraction of the (scaled) model */

/* mempolicy(2) constants, from <linux/mempolicy.h> (numaif.h is libnuma's) */
#define BENCH_MPOL_BIND 2
#define BENCH_MPOL_MF_STRICT (1 << 0)
#define BENCH_MPOL_MF_MOVE (1 << 1)

static const uint64_t unpinned_mem_mib[] = {64, 128, 256, 512};

/* ---- timing and statistics ---- */

static inline uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* xorshift64: a fixed sequence, so every run asks the same questions in the same order */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

struct stats {
	size_t n;
	size_t ok, refused;
	double p50, p90, p99, max, mean; /* µs */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in µs. */
static double pct_usec(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	if (rank < 1)
		rank = 1;
	return (double)sorted[rank - 1] / 1000.0;
}

/* Sorts samples in place and summarizes them. */
static void stats_compute(uint64_t *samples, size_t n, struct stats *ret)
{
	double sum = 0;

	*ret = (struct stats){.n = n};
	if (n == 0)
		return;
	qsort(samples, n, sizeof(*samples), cmp_u64);
	for (size_t i = 0; i < n; i++)
		sum += (double)samples[i];
	ret->p50 = pct_usec(samples, n, 50);
	ret->p90 = pct_usec(samples, n, 90);
	ret->p99 = pct_usec(samples, n, 99);
	ret->max = (double)samples[n - 1] / 1000.0;
	ret->mean = sum / (double)n / 1000.0;
}

/* ---- the population and the questions ---- */

enum kind {
	K_COUNT1,
	K_COUNT2,
	K_COUNT3,
	K_COUNT4,
	K_LIST,
	K_NONE,
	K_COUNT_NODE,
	K_NONE_NODE,
	K_MAX,
};

static const char *const kind_name[K_MAX] = {
	[K_COUNT1] = "COUNT 1",
	[K_COUNT2] = "COUNT 2",
	[K_COUNT3] = "COUNT 3",
	[K_COUNT4] = "COUNT 4",
	[K_LIST] = "LIST (1-2 free CPUs)",
	[K_NONE] = "NONE + memory",
	[K_COUNT_NODE] = "COUNT 1-2 on node N",
	[K_NONE_NODE] = "NONE + memory on node N",
};

struct mix {
	unsigned n_instances;
	unsigned n_dedicated, dedicated_cpus;
	unsigned ded_by_count[3]; /* instances with 1, 2 CPUs (index 1, 2) */
	unsigned n_unpinned, n_unpinned_node;
	uint64_t mem_total;
	uint64_t topo_mem, model_mem; /* before and after scaling */
	double mem_scale;
};

struct host_result {
	const char *label, *root;
	bool ok;
	char error[600];
	struct sched_topology *topo;
	struct mix mix;
	struct sched_usage usage;
	bool have_list; /* free CPUs existed for LIST questions */
	struct stats overhead, place, place_kind[K_MAX], add, remove, add_remove, resize;
	unsigned place_spans; /* successful COUNT decisions spanning several nodes */
};

static uint64_t unpinned_mem(void)
{
	return unpinned_mem_mib[rng_next() % ARRAY_SIZE(unpinned_mem_mib)] * MIB;
}

/* The n-th node that has CPUs (round robin over them). */
static int nth_node(const struct sched_topology *topo, unsigned n)
{
	unsigned have = 0;

	for (unsigned i = 0; i < topo->n_nodes; i++)
		if (!sched_cpuset_empty(&topo->nodes[i].cpus))
			have++;
	if (have == 0)
		return 0;
	n %= have;
	for (unsigned i = 0; i < topo->n_nodes; i++)
		if (!sched_cpuset_empty(&topo->nodes[i].cpus) && n-- == 0)
			return (int)i;
	return 0;
}

/* Builds the requests of the n instances of the mix into pop[] (id = index + 1): up to
 * DEDICATED_MAX instances with 2, 1, 1, 2, 1, 1, … dedicated CPUs (1 GiB per CPU) until two
 * thirds of the CPUs are committed, spread evenly among the others; the rest unpinned with a
 * memory limit of 64, 128, 256 or 512 MiB, every 10th of them restricted to one node. */
static void mix_build(const struct sched_topology *topo, unsigned n, struct sched_request *pop,
		      struct mix *ret)
{
	static const unsigned pattern[] = {2, 1, 1};
	unsigned ded[DEDICATED_MAX], n_ded = 0, budget = topo->n_online * 2 / 3, stride, j = 0;
	struct mix mix = {.n_instances = n};

	while (n_ded < DEDICATED_MAX && n_ded < n && budget > 0) {
		unsigned c = pattern[n_ded % ARRAY_SIZE(pattern)];

		if (c > budget)
			c = budget;
		ded[n_ded++] = c;
		budget -= c;
	}
	stride = n_ded ? n / n_ded : 1;
	for (unsigned i = 0; i < n; i++) {
		struct sched_request *r = &pop[i];

		*r = (struct sched_request){.mode = SCHED_CPU_NONE, .node = -1};
		if (j < n_ded && i == j * stride + stride / 2) {
			r->mode = SCHED_CPU_COUNT;
			r->count = ded[j++];
			r->mem_bytes = r->count * GIB;
			mix.n_dedicated++;
			mix.dedicated_cpus += r->count;
			mix.ded_by_count[r->count]++;
		} else {
			r->mem_bytes = unpinned_mem();
			if (mix.n_unpinned % 10 == 9) {
				r->node = nth_node(topo, mix.n_unpinned_node);
				mix.n_unpinned_node++;
			}
			mix.n_unpinned++;
		}
		mix.mem_total += r->mem_bytes;
	}
	*ret = mix;
}

/* Scales every node's memory by the same factor (rounded up to whole GiB) when the mix would
 * fill more than MEM_FILL of it. */
static void scale_memory(struct sched_topology *topo, struct mix *mix)
{
	double need = (double)mix->mem_total / MEM_FILL;

	mix->topo_mem = topo->mem_bytes;
	mix->mem_scale = 1.0;
	if ((double)topo->mem_bytes < need && topo->mem_bytes > 0) {
		mix->mem_scale = need / (double)topo->mem_bytes;
		topo->mem_bytes = 0;
		for (unsigned i = 0; i < topo->n_nodes; i++) {
			uint64_t b = (uint64_t)ceil((double)topo->nodes[i].mem_bytes *
						    mix->mem_scale / (double)GIB) *
				     GIB;

			topo->nodes[i].mem_bytes = b;
			topo->mem_bytes += b;
		}
	}
	mix->model_mem = topo->mem_bytes;
}

/* The n questions, kinds in a fixed pseudo-random order. LIST asks for 1-2 CPUs of the shared
 * set (free in the populated model); without free CPUs it is left out. */
static void questions_build(const struct sched_model *m, const struct sched_topology *topo,
			    size_t n, struct sched_request *q, enum kind *kinds,
			    bool *ret_have_list)
{
	struct sched_cpuset shared;
	unsigned free_cpus[SCHED_CPUS_MAX], n_free = 0, list_at = 0;

	sched_shared_set(m, &shared);
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++)
		if (sched_cpuset_has(&shared, c))
			free_cpus[n_free++] = c;
	*ret_have_list = n_free > 0;

	for (size_t i = 0; i < n; i++) {
		struct sched_request *r = &q[i];
		enum kind k;

		do
			k = (enum kind)(rng_next() % K_MAX);
		while (k == K_LIST && n_free == 0);
		kinds[i] = k;
		*r = (struct sched_request){.node = -1};
		switch (k) {
		case K_COUNT1:
		case K_COUNT2:
		case K_COUNT3:
		case K_COUNT4:
			r->mode = SCHED_CPU_COUNT;
			r->count = (unsigned)(k - K_COUNT1) + 1;
			r->mem_bytes = r->count * 512 * MIB;
			break;
		case K_LIST: {
			unsigned want = 1 + (unsigned)(rng_next() % 2);

			r->mode = SCHED_CPU_LIST;
			sched_cpuset_zero(&r->cpus);
			for (unsigned c = 0; c < want && c < n_free; c++)
				sched_cpuset_add(&r->cpus, free_cpus[(list_at + c) % n_free]);
			list_at++;
			r->mem_bytes = 256 * MIB;
			break;
		}
		case K_NONE:
			r->mode = SCHED_CPU_NONE;
			r->mem_bytes = unpinned_mem();
			break;
		case K_COUNT_NODE:
			r->mode = SCHED_CPU_COUNT;
			r->count = 1 + (unsigned)(rng_next() % 2);
			r->mem_bytes = r->count * 512 * MIB;
			r->node = nth_node(topo, (unsigned)rng_next());
			break;
		case K_NONE_NODE:
			r->mode = SCHED_CPU_NONE;
			r->mem_bytes = unpinned_mem();
			r->node = nth_node(topo, (unsigned)rng_next());
			break;
		case K_MAX:
			break;
		}
	}
}

static void host_error(struct host_result *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void host_error(struct host_result *h, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->error, sizeof(h->error), fmt, ap);
	va_end(ap);
	h->ok = false;
}

/* Reads the topology under h->root, places the mix and times the operations. Fills h; on a
 * failure h->ok is false and h->error says why. */
static void bench_host(struct host_result *h, unsigned n_instances, size_t n_decisions)
{
	cleanup_free struct sched_request *pop = NULL, *q = NULL;
	cleanup_free enum kind *kinds = NULL;
	cleanup_free uint64_t *s = NULL, *s2 = NULL, *s3 = NULL;
	cleanup_free uint32_t *resize_ids = NULL;
	struct sched_model *m = NULL;
	struct sched_capacity cap;
	struct kiva_error err = {};
	struct sched_placement pl;
	size_t n_resize_ids = 0;
	int r;

	h->ok = true;
	rng_state = UINT64_C(0x9e3779b97f4a7c15);
	r = sched_topology_read(h->root, &h->topo, &err);
	if (r < 0) {
		host_error(h, "reading the topology under %s: %s", h->root, err.msg);
		return;
	}
	pop = calloc(n_instances, sizeof(*pop));
	q = calloc(n_decisions, sizeof(*q));
	kinds = calloc(n_decisions, sizeof(*kinds));
	s = calloc(n_decisions, sizeof(*s));
	s2 = calloc(n_decisions, sizeof(*s2));
	s3 = calloc(n_decisions, sizeof(*s3));
	resize_ids = calloc(n_instances, sizeof(*resize_ids));
	if (!pop || !q || !kinds || !s || !s2 || !s3 || !resize_ids) {
		host_error(h, "out of memory");
		return;
	}

	/* The model: the topology with its memory scaled for the mix, target 1.0. */
	{
		struct sched_topology *scaled = malloc(sizeof(*scaled));

		if (!scaled) {
			host_error(h, "out of memory");
			return;
		}
		*scaled = *h->topo;
		mix_build(scaled, n_instances, pop, &h->mix);
		scale_memory(scaled, &h->mix);
		sched_capacity_from_topology(scaled, &cap);
		r = sched_model_new(scaled, &cap, &m);
		free(scaled);
		if (r < 0) {
			host_error(h, "sched_model_new: %s", strerror(-r));
			return;
		}
	}
	for (unsigned i = 0; i < n_instances; i++) {
		r = sched_add(m, i + 1, &pop[i], NULL, &err);
		if (r < 0) {
			host_error(h, "placing instance %u of the mix: %s", i + 1, err.msg);
			sched_model_free(m);
			return;
		}
	}
	sched_usage(m, &h->usage);
	questions_build(m, h->topo, n_decisions, q, kinds, &h->have_list);

	/* The empty timing pair. */
	for (size_t i = 0; i < n_decisions; i++) {
		uint64_t t0 = now_nsec();

		__asm__ volatile("" ::: "memory");
		s[i] = now_nsec() - t0;
	}
	stats_compute(s, n_decisions, &h->overhead);

	/* sched_place: warm the caches with a tenth of the questions, then time each one. */
	for (size_t i = 0; i < n_decisions / 10; i++)
		(void)sched_place(m, &q[i], &pl, &err);
	for (size_t i = 0; i < n_decisions; i++) {
		uint64_t t0 = now_nsec();

		r = sched_place(m, &q[i], &pl, &err);
		s[i] = now_nsec() - t0;
		if (r < 0) {
			s2[i] = 1;
		} else {
			s2[i] = 0;
			if (q[i].mode == SCHED_CPU_COUNT && pl.node < 0)
				h->place_spans++;
		}
	}
	for (int k = 0; k < K_MAX; k++) {
		size_t n = 0, refused = 0;

		for (size_t i = 0; i < n_decisions; i++)
			if (kinds[i] == (enum kind)k) {
				s3[n++] = s[i];
				refused += s2[i];
			}
		stats_compute(s3, n, &h->place_kind[k]);
		h->place_kind[k].refused = refused;
		h->place_kind[k].ok = n - refused;
	}
	{
		size_t refused = 0;

		for (size_t i = 0; i < n_decisions; i++)
			refused += s2[i];
		stats_compute(s, n_decisions, &h->place);
		h->place.refused = refused;
		h->place.ok = n_decisions - refused;
	}

	/* sched_add of a new instance (the same questions), then sched_remove of it. */
	{
		size_t ok = 0;

		for (size_t i = 0; i < n_decisions; i++) {
			uint32_t id = 1000000 + (uint32_t)i;
			uint64_t t0, t1, t2;

			t0 = now_nsec();
			r = sched_add(m, id, &q[i], &pl, &err);
			t1 = now_nsec();
			if (r >= 0) {
				(void)sched_remove(m, id);
				t2 = now_nsec();
				s3[ok++] = t2 - t1;
			} else {
				t2 = t1;
			}
			s[i] = t1 - t0;
			s2[i] = t2 - t0;
		}
		stats_compute(s, n_decisions, &h->add);
		h->add.ok = ok;
		h->add.refused = n_decisions - ok;
		stats_compute(s2, n_decisions, &h->add_remove);
		h->add_remove.ok = ok;
		h->add_remove.refused = n_decisions - ok;
		stats_compute(s3, ok, &h->remove);
		h->remove.ok = ok;
	}

	/* sched_resize: a dedicated and an unpinned instance in turn, grown (one more CPU, or twice
	 * the memory) and shrunk back to the mix's request, so the model ends as it began. */
	{
		uint32_t ded[DEDICATED_MAX];
		unsigned n_ded = 0, n_unp = 0, di = 0, ui = 0;
		size_t refused = 0;

		for (unsigned i = 0; i < n_instances; i++)
			if (pop[i].mode == SCHED_CPU_COUNT && n_ded < DEDICATED_MAX)
				ded[n_ded++] = i + 1;
			else
				resize_ids[n_unp++] = i + 1;
		n_resize_ids = n_unp;
		for (size_t i = 0; i + 1 < n_decisions; i += 2) {
			bool use_ded = n_ded > 0 && ((i / 2) % 2 == 0 || n_resize_ids == 0);
			uint32_t id = use_ded ? ded[di++ % n_ded] : resize_ids[ui++ % n_resize_ids];
			struct sched_request grow = pop[id - 1];

			if (grow.mode == SCHED_CPU_COUNT)
				grow.count++;
			else
				grow.mem_bytes *= 2;
			for (int step = 0; step < 2; step++) {
				const struct sched_request *rq = step == 0 ? &grow : &pop[id - 1];
				uint64_t t0 = now_nsec();

				r = sched_resize(m, id, rq, &pl, &err);
				s[i + (size_t)step] = now_nsec() - t0;
				if (r < 0)
					refused++;
			}
		}
		stats_compute(s, n_decisions & ~(size_t)1, &h->resize);
		h->resize.refused = refused;
		h->resize.ok = h->resize.n - refused;
	}
	sched_model_free(m);
}

/* ---- output ---- */

static void print_topology(const struct sched_topology *t)
{
	char buf[1024];

	printf("topology: %u socket(s), %u NUMA node(s), %u cores, %u CPUs online, %.1f GiB\n",
	       t->n_sockets, t->n_nodes, t->n_cores, t->n_online, (double)t->mem_bytes / GIB);
	for (unsigned n = 0; n < t->n_nodes; n++) {
		if (sched_cpuset_empty(&t->nodes[n].cpus) && t->nodes[n].mem_bytes == 0)
			continue;
		if (sched_cpuset_format(&t->nodes[n].cpus, buf, sizeof(buf)) < 0)
			snprintf(buf, sizeof(buf), "?");
		printf("  node %u: CPUs %s, %.1f GiB\n", n, buf[0] ? buf : "-",
		       (double)t->nodes[n].mem_bytes / GIB);
	}
}

static void print_row(const char *name, const struct stats *st, bool outcomes)
{
	if (outcomes)
		printf("  %-28s %6zu %6zu %6zu %8.2f %8.2f %8.2f %8.2f\n", name, st->n, st->ok,
		       st->refused, st->p50, st->p90, st->p99, st->max);
	else
		printf("  %-28s %6zu %6s %6s %8.2f %8.2f %8.2f %8.2f\n", name, st->n, "-", "-",
		       st->p50, st->p90, st->p99, st->max);
}

static void print_host(const struct host_result *h)
{
	const struct mix *x = &h->mix;
	char name[64];

	printf("\n== %s (root %s)\n", h->label, h->root);
	if (h->topo)
		print_topology(h->topo);
	if (!h->ok) {
		printf("FAILED: %s\n", h->error);
		return;
	}
	if (x->mem_scale > 1.0)
		printf("model memory scaled ×%.2f (%.1f → %.1f GiB) so the mix fills %.0f %% of it\n",
		       x->mem_scale, (double)x->topo_mem / GIB, (double)x->model_mem / GIB,
		       MEM_FILL * 100);
	printf("mix: %u instances placed with sched_add before timing\n", x->n_instances);
	printf("  %u with dedicated CPUs (COUNT: %u × 2 CPUs + %u × 1 CPU = %u CPU(s), 1 GiB per CPU)\n",
	       x->n_dedicated, x->ded_by_count[2], x->ded_by_count[1], x->dedicated_cpus);
	printf("  %u unpinned (NONE), memory limit 64/128/256/512 MiB, %u of them on one node\n",
	       x->n_unpinned, x->n_unpinned_node);
	printf("  committed: %u of %u CPUs dedicated, %.1f of %.1f GiB\n", h->usage.cpus_committed,
	       h->usage.cpus_usable, (double)h->usage.mem_committed / GIB,
	       (double)h->usage.mem_usable / GIB);
	printf("each call timed alone (clock_gettime(CLOCK_MONOTONIC) around it), µs:\n");
	printf("  %-28s %6s %6s %6s %8s %8s %8s %8s\n", "operation", "n", "ok", "refus.", "p50",
	       "p90", "p99", "max");
	print_row("empty timing pair", &h->overhead, false);
	print_row("sched_place, all", &h->place, true);
	for (int k = 0; k < K_MAX; k++) {
		if (k == K_LIST && !h->have_list)
			continue;
		snprintf(name, sizeof(name), "  %s", kind_name[k]);
		print_row(name, &h->place_kind[k], true);
	}
	print_row("sched_add + sched_remove", &h->add_remove, true);
	print_row("  sched_add", &h->add, true);
	print_row("  sched_remove (after an ok)", &h->remove, true);
	print_row("sched_resize (grow, shrink)", &h->resize, true);
	if (!h->have_list)
		printf("  (no free CPU in the populated model: no LIST questions)\n");
	if (h->place.refused > 0)
		printf("  refused: the allocator said no (-ENOSPC: too few free CPUs on the allowed nodes)\n");
	printf("  %u successful COUNT decisions spanned several nodes\n", h->place_spans);
	printf("sched_place p99 %.2f µs, target < %.0f µs: %s\n", h->place.p99, TARGET_P99_USEC,
	       h->place.p99 < TARGET_P99_USEC ? "PASS" : "FAIL");
}

static void json_stats(const char *name, const struct stats *st, bool comma)
{
	printf("\"%s\": {\"n\": %zu, \"ok\": %zu, \"refused\": %zu, \"p50_usec\": %.3f, "
	       "\"p90_usec\": %.3f, \"p99_usec\": %.3f, \"max_usec\": %.3f, \"mean_usec\": %.3f}%s",
	       name, st->n, st->ok, st->refused, st->p50, st->p90, st->p99, st->max, st->mean,
	       comma ? ", " : "");
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void json_host(const struct host_result *h)
{
	const struct sched_topology *t = h->topo;
	const struct mix *x = &h->mix;

	printf("{\"label\": ");
	json_string(h->label);
	printf(", \"root\": ");
	json_string(h->root);
	printf(", \"ok\": %s", h->ok ? "true" : "false");
	if (!h->ok) {
		printf(", \"error\": ");
		json_string(h->error);
	}
	if (t)
		printf(", \"topology\": {\"sockets\": %u, \"nodes\": %u, \"cores\": %u, "
		       "\"cpus_online\": %u, \"mem_bytes\": %" PRIu64 "}",
		       t->n_sockets, t->n_nodes, t->n_cores, t->n_online, t->mem_bytes);
	if (h->ok) {
		printf(", \"mix\": {\"instances\": %u, \"dedicated\": %u, \"dedicated_cpus\": %u, "
		       "\"unpinned\": %u, \"unpinned_on_one_node\": %u, \"mem_total_bytes\": %" PRIu64
		       ", \"model_mem_bytes\": %" PRIu64 ", \"mem_scale\": %.3f}",
		       x->n_instances, x->n_dedicated, x->dedicated_cpus, x->n_unpinned,
		       x->n_unpinned_node, x->mem_total, x->model_mem, x->mem_scale);
		printf(", \"ops\": {");
		json_stats("timing_overhead", &h->overhead, true);
		json_stats("sched_place", &h->place, true);
		json_stats("sched_add_remove", &h->add_remove, true);
		json_stats("sched_add", &h->add, true);
		json_stats("sched_remove", &h->remove, true);
		json_stats("sched_resize", &h->resize, false);
		printf("}, \"sched_place_by_kind\": {");
		for (int k = 0; k < K_MAX; k++)
			json_stats(kind_name[k], &h->place_kind[k], k + 1 < K_MAX);
		printf("}, \"count_spanning_nodes\": %u, \"pass\": %s", h->place_spans,
		       h->place.p99 < TARGET_P99_USEC ? "true" : "false");
	}
	printf("}");
}

/* ---- --numa-bw CPU NODE ---- */

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static double median_of(const double *v, size_t n)
{
	double tmp[64];

	memcpy(tmp, v, n * sizeof(*v));
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && tmp[j - 1] > tmp[j]; j--) {
			double t = tmp[j];

			tmp[j] = tmp[j - 1];
			tmp[j - 1] = t;
		}
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* Counts how many of up to 64 pages spread over [p, p + len) sit on node (move_pages(2) with
 * nodes NULL only queries). Returns the count, or -errno. */
static int pages_on_node(void *p, size_t len, unsigned node, unsigned *ret_checked)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n_pages = len / (size_t)page, n = n_pages < 64 ? n_pages : 64;
	void *addr[64];
	int status[64], on = 0;

	for (size_t i = 0; i < n; i++)
		addr[i] = (char *)p + (i * (n_pages / n)) * (size_t)page;
	if (syscall(SYS_move_pages, 0, (unsigned long)n, addr, NULL, status, 0) < 0)
		return -errno;
	for (size_t i = 0; i < n; i++)
		on += status[i] == (int)node;
	*ret_checked = (unsigned)n;
	return on;
}

static int numa_bw(unsigned cpu, unsigned node, unsigned runs, unsigned mib, bool json)
{
	unsigned long cpumask[SCHED_CPUS_MAX / (8 * sizeof(unsigned long))] = {};
	unsigned long nodemask[SCHED_NODES_MAX / (8 * sizeof(unsigned long))] = {};
	struct sched_topology *topo = NULL;
	struct kiva_error err = {};
	size_t n = (size_t)mib * MIB / 3 / sizeof(double), len = n * sizeof(double);
	double *arr[3], gbps[64], sink = 0;
	unsigned checked = 0, on_node[3] = {}, total_on = 0, total_checked = 0;
	int cpu_node, r;

	r = sched_topology_read("/", &topo, &err);
	if (r < 0) {
		fprintf(stderr, "bench-sched: reading this host's topology: %s\n", err.msg);
		return 1;
	}
	if (!sched_cpuset_has(&topo->online, cpu)) {
		fprintf(stderr, "bench-sched: CPU %u is not online\n", cpu);
		free(topo);
		return 1;
	}
	cpu_node = topo->cpus[cpu].node;
	if (node >= topo->n_nodes || topo->nodes[node].mem_bytes == 0) {
		fprintf(stderr,
			"bench-sched: NUMA node %u does not exist or has no memory (host has %u node(s))\n",
			node, topo->n_nodes);
		free(topo);
		return 1;
	}
	free(topo);

	cpumask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
	if (syscall(SYS_sched_setaffinity, 0, sizeof(cpumask), cpumask) < 0) {
		fprintf(stderr, "bench-sched: sched_setaffinity(CPU %u): %m\n", cpu);
		return 1;
	}
	nodemask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
	for (int a = 0; a < 3; a++) {
		arr[a] =
			mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (arr[a] == MAP_FAILED) {
			fprintf(stderr, "bench-sched: mmap of %zu bytes: %m\n", len);
			return 1;
		}
		/* maxnode counts bits and the kernel uses maxnode - 1 of them, as libnuma passes */
		if (syscall(SYS_mbind, arr[a], len, BENCH_MPOL_BIND, nodemask,
			    (unsigned long)(8 * sizeof(nodemask) + 1),
			    BENCH_MPOL_MF_STRICT | BENCH_MPOL_MF_MOVE) < 0) {
			fprintf(stderr, "bench-sched: mbind(MPOL_BIND, node %u): %m\n", node);
			return 1;
		}
	}
	/* first touch, on CPU cpu, allocates the pages on node */
	for (size_t i = 0; i < n; i++) {
		arr[0][i] = 0;
		arr[1][i] = 1;
		arr[2][i] = 2;
	}
	for (int a = 0; a < 3; a++) {
		r = pages_on_node(arr[a], len, node, &checked);
		if (r < 0) {
			fprintf(stderr, "bench-sched: move_pages (query): %s\n", strerror(-r));
			return 1;
		}
		on_node[a] = (unsigned)r;
		total_on += on_node[a];
		total_checked += checked;
	}
	/* triad a = b + s·c: 3 × 8 bytes per element (STREAM's count; write-allocate not counted);
	 * one unmeasured pass first */
	for (unsigned run = 0; run <= runs; run++) {
		double *a = arr[0], *b = arr[1], *c = arr[2], scalar = 3.0 + run;
		uint64_t t0 = now_nsec(), dt;

		for (size_t i = 0; i < n; i++)
			a[i] = b[i] + scalar * c[i];
		dt = now_nsec() - t0;
		sink += a[(size_t)run * 7919 % n];
		if (run > 0)
			gbps[run - 1] = (double)(3 * len) / (double)dt;
	}

	if (json) {
		printf("{\"cpu\": %u, \"cpu_node\": %d, \"mem_node\": %u, \"bytes_per_pass\": %zu, "
		       "\"runs\": %u, \"triad_gbps\": [",
		       cpu, cpu_node, node, 3 * len, runs);
		for (unsigned i = 0; i < runs; i++)
			printf("%s%.3f", i ? ", " : "", gbps[i]);
		printf("], \"triad_gbps_median\": %.3f, \"pages_checked\": %u, "
		       "\"pages_on_mem_node\": %u}\n",
		       median_of(gbps, runs), total_checked, total_on);
	} else {
		printf("numa-bw: CPU %u (node %d), memory bound to node %u: triad over 3 × %.0f MiB\n",
		       cpu, cpu_node, node, (double)len / MIB);
		printf("  passes (GB/s):");
		for (unsigned i = 0; i < runs; i++)
			printf(" %.2f", gbps[i]);
		printf("\n  median of %u: %.2f GB/s; %u of %u sampled pages on node %u\n", runs,
		       median_of(gbps, runs), total_on, total_checked, node);
	}
	if (sink == 42.4242)
		fprintf(stderr, "\n"); /* keeps the result alive */
	for (int a = 0; a < 3; a++)
		munmap(arr[a], len);
	return total_on == total_checked ? 0 : 2;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench-sched [--root DIR] [--instances N] [--decisions N] [--json]\n"
		"       bench-sched --numa-bw CPU NODE [--runs N] [--mib N] [--json]\n"
		"\n"
		"Times sched_place, sched_add+sched_remove and sched_resize of src/sched with N\n"
		"instances placed (default 500; 20000 timed decisions) on the topology under DIR\n"
		"(default: %s) and on this host's (/). Target: sched_place p99 < %.0f us.\n"
		"--numa-bw pins to CPU, binds ~512 MiB to NUMA node NODE and prints the triad\n"
		"bandwidth (median of --runs, default 5). See bench/README.md.\n",
		BENCH_SCHED_ROOT, TARGET_P99_USEC);
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"instances", required_argument, NULL, 'i'},
		{"decisions", required_argument, NULL, 'd'},
		{"json", no_argument, NULL, 'j'},
		{"numa-bw", required_argument, NULL, 'n'},
		{"runs", required_argument, NULL, 'R'},
		{"mib", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *root = BENCH_SCHED_ROOT, *label, *numa_cpu = NULL;
	unsigned long instances = 500, decisions = 20000, runs = 5, mib = 512, cpu, node;
	struct host_result hosts[2] = {};
	size_t n_hosts = 0;
	bool json = false;
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'i':
			if (parse_uint(optarg, 1000000, &instances) < 0 || instances == 0) {
				fprintf(stderr, "bench-sched: bad --instances '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			if (parse_uint(optarg, 100000000, &decisions) < 0 || decisions < 2) {
				fprintf(stderr, "bench-sched: bad --decisions '%s' (2 or more)\n",
					optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			numa_cpu = optarg;
			break;
		case 'R':
			if (parse_uint(optarg, 63, &runs) < 0 || runs == 0) {
				fprintf(stderr, "bench-sched: bad --runs '%s' (1 to 63)\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_uint(optarg, 1 << 20, &mib) < 0 || mib < 3) {
				fprintf(stderr, "bench-sched: bad --mib '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}

	if (numa_cpu) {
		if (optind + 1 != argc || parse_uint(numa_cpu, SCHED_CPUS_MAX - 1, &cpu) < 0 ||
		    parse_uint(argv[optind], SCHED_NODES_MAX - 1, &node) < 0) {
			fprintf(stderr,
				"bench-sched: --numa-bw takes CPU NODE (CPU < %d, NODE < %d)\n",
				SCHED_CPUS_MAX, SCHED_NODES_MAX);
			return 2;
		}
		return numa_bw((unsigned)cpu, (unsigned)node, (unsigned)runs, (unsigned)mib, json);
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	label = root;
	if (streq(root, BENCH_SCHED_ROOT))
		label = "HP Z600 fixture";
	else if (streq(root, "/"))
		label = "this host";
	hosts[n_hosts++] = (struct host_result){.label = label, .root = root};
	if (!streq(root, "/"))
		hosts[n_hosts++] = (struct host_result){.label = "this host", .root = "/"};
	for (size_t i = 0; i < n_hosts; i++)
		bench_host(&hosts[i], (unsigned)instances, decisions);

	if (json) {
		printf("{\"target_p99_usec\": %.1f, \"instances\": %lu, \"decisions\": %lu, "
		       "\"hosts\": [",
		       TARGET_P99_USEC, instances, decisions);
		for (size_t i = 0; i < n_hosts; i++) {
			if (i)
				printf(", ");
			json_host(&hosts[i]);
		}
		printf("]}\n");
	} else {
		printf("bench-sched: allocator decision time with %lu instances placed, %lu timed "
		       "calls per operation (target: sched_place p99 < %.0f µs)\n",
		       instances, decisions, TARGET_P99_USEC);
		for (size_t i = 0; i < n_hosts; i++)
			print_host(&hosts[i]);
	}
	/* only the first topology (the fixture, or --root) decides the exit status */
	if (!hosts[0].ok)
		status = 1;
	for (size_t i = 0; i < n_hosts; i++)
		free(hosts[i].topo);
	return status;
}
