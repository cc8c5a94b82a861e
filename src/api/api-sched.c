/* Where instances run: kivad's side of the sched module. It owns the host's model (topology read
 * at start, capacity from capacity.yaml, the allocator) and turns the allocator's decisions into
 * cgroup writes:
 *   - create checks that the instance would fit now (admission) without holding anything;
 *   - start places it (dedicated CPUs on one NUMA node, its memory bound to that node), stop and
 *     delete release it unless limits.cpu.reserve keeps a stopped instance's CPUs;
 *   - a config change re-places a placed instance and re-pins it live;
 *   - instances without dedicated CPUs run on the shared set (the CPUs nobody owns), rewritten in
 *     their cgroups whenever dedicated instances come and go;
 *   - at kivad start the model is rebuilt from the store and the running containers' cgroups
 *     (their current CPUs are kept when still valid), and any drift is written back.
 * The allocation is not replicated: it is a function of what runs on this host. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"
#include "kiva-sched.h"

struct api_sched {
	struct sched_topology *topo;
	struct sched_capacity cap;
	char cap_source[512]; /* the capacity file, or "hardware" when it does not exist */
	struct sched_model *model;
	struct sched_hw *hw; /* sensors, refreshed at most every HW_REFRESH_USEC */
	uint64_t hw_read_usec;
	json_t *ids; /* name → id (integer) of placed instances */
	uint32_t next_id;
	char shared[1024]; /* the shared set last written to the shared instances */
	/* host.cpu.governor: the governor set on dedicated CPUs, and what each had before */
	char governor[SCHED_GOVERNOR_NAME_MAX];
	char saved_governor[SCHED_CPUS_MAX][SCHED_GOVERNOR_NAME_MAX];
};

#define HW_REFRESH_USEC (2 * 1000 * 1000)

static void load_governors(struct api_ctx *ctx);

static const char *sys_root(const struct api_ctx *ctx)
{
	return ctx->sys_root && *ctx->sys_root ? ctx->sys_root : "/";
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int read_hw(struct api_ctx *ctx, bool force)
{
	struct api_sched *s = ctx->sched;
	struct kiva_error err = {0};
	uint64_t now = now_usec();
	int r;

	if (!force && s->hw_read_usec && now - s->hw_read_usec < HW_REFRESH_USEC)
		return 0;
	r = sched_hw_read(sys_root(ctx), s->topo, s->hw, &err);
	if (r < 0) {
		log_warning("Reading the host's sensors: %s", err.msg);
		return r;
	}
	s->hw_read_usec = now;
	return 0;
}

int api_sched_init(struct api_ctx *ctx, struct kiva_error *reterr)
{
	struct api_sched *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	ctx->sched = s;
	s->ids = json_object();
	s->hw = calloc(1, sizeof(*s->hw));
	s->next_id = 1;
	if (!s->ids || !s->hw)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = sched_topology_read(sys_root(ctx), &s->topo, reterr);
	if (r < 0)
		return r;
	r = sched_capacity_load(ctx->capacity_path, s->topo, &s->cap, reterr);
	if (r < 0)
		return r;
	snprintf(s->cap_source, sizeof(s->cap_source), "%s",
		 access(ctx->capacity_path, F_OK) == 0 ? ctx->capacity_path : "hardware");
	/* CPU lists are checked against the CPUs the scheduler sees (--sys-root) */
	ctx->proto_host.ncpus = s->topo->n_cpus;
	ctx->proto_host.memory_bytes = s->topo->mem_bytes;
	r = sched_model_new(s->topo, &s->cap, &s->model);
	if (r < 0)
		return kiva_error_set(reterr, r, "Out of memory");
	(void)read_hw(ctx, true);
	load_governors(ctx);
	return 0;
}

void api_sched_free(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;

	if (!s)
		return;
	sched_model_free(s->model);
	free(s->topo);
	free(s->hw);
	json_decref(s->ids);
	free(s);
	ctx->sched = NULL;
}

int api_sched_reload(struct api_ctx *ctx, struct kiva_error *reterr)
{
	struct api_sched *s = ctx->sched;
	struct sched_capacity cap;
	int r;

	r = sched_capacity_load(ctx->capacity_path, s->topo, &cap, reterr);
	if (r < 0)
		return r;
	s->cap = cap;
	snprintf(s->cap_source, sizeof(s->cap_source), "%s",
		 access(ctx->capacity_path, F_OK) == 0 ? ctx->capacity_path : "hardware");
	sched_model_set_capacity(s->model, &cap);
	log_info("Capacity from %s: %u CPUs, %.1f GiB, disk %.1f GB, target %g", s->cap_source,
		 cap.cpu_total, (double)cap.ram_bytes / (1 << 30), (double)cap.disk_bytes / 1e9,
		 cap.target);
	return 0;
}

/* ---- requests ---- */

static bool config_bool(const json_t *config, const char *key)
{
	const char *v = json_get_str(config, key, NULL);
	bool b = false;

	return v && proto_bool_parse(v, &b) == 0 && b;
}

static uint64_t disk_bytes_of(const json_t *config)
{
	const char *v = json_get_str(config, "limits.disk", NULL);
	uint64_t b = 0;

	return v && parse_size_bytes(v, &b) == 0 ? b : 0;
}

bool api_sched_reserves(const json_t *inst)
{
	return config_bool(json_object_get(inst, "config"), "limits.cpu.reserve");
}

/* What the instance's config asks of the scheduler. */
static int request_of(struct api_ctx *ctx, const json_t *inst, struct sched_request *req,
		      struct kiva_error *reterr)
{
	struct api_sched *s = ctx->sched;
	const json_t *config = json_object_get(inst, "config");
	const char *nodes = json_get_str(config, "limits.cpu.nodes", NULL);
	struct proto_limits lim;
	int r;

	r = proto_limits_from_config(config, &lim, reterr);
	if (r < 0)
		return r;
	*req = (struct sched_request){.mode = SCHED_CPU_NONE, .node = -1};
	if (lim.cpu_pinned) {
		req->mode = SCHED_CPU_LIST;
		if (sched_cpuset_parse(lim.cpuset, &req->cpus) < 0)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid value for limits.cpu '%s': host has CPUs "
					      "0-%u only",
					      lim.cpuset, s->topo->n_cpus - 1);
	} else if (lim.cpu_count) {
		req->mode = SCHED_CPU_COUNT;
		req->count = lim.cpu_count;
	}
	req->mem_bytes = lim.memory_bytes;
	if (nodes) {
		struct sched_cpuset set;
		uint64_t mask;

		if (sched_cpuset_parse(nodes, &set) < 0 || set.bits[1] || set.bits[2] ||
		    set.bits[3] || !set.bits[0])
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid value for limits.cpu.nodes '%s'", nodes);
		mask = set.bits[0];
		for (unsigned n = 0; n < 64; n++)
			if (((mask >> n) & 1) &&
			    (n >= s->topo->n_nodes || sched_cpuset_empty(&s->topo->nodes[n].cpus)))
				return kiva_error_set(reterr, -EINVAL,
						      "NUMA node %u does not exist (host has %u)",
						      n, s->topo->n_nodes);
		if (sched_cpuset_count(&set) == 1)
			req->node = __builtin_ctzll(mask);
		else
			req->avoid_nodes = ~mask;
	}
	if (config_bool(config, "security.sensitive")) {
		uint64_t bad;

		(void)read_hw(ctx, false);
		bad = sched_hw_error_nodes(s->hw);
		if (req->node >= 0 && req->node < 64 && ((bad >> req->node) & 1))
			return kiva_error_set(reterr, -EINVAL,
					      "NUMA node %d's memory controller reported errors: "
					      "security.sensitive instances avoid it",
					      req->node);
		req->avoid_nodes |= bad;
	}
	return 0;
}

static uint32_t id_of(struct api_ctx *ctx, const char *name)
{
	return (uint32_t)json_integer_value(json_object_get(ctx->sched->ids, name));
}

static const char *name_of(struct api_ctx *ctx, uint32_t id)
{
	const char *name;
	json_t *v;

	json_object_foreach(ctx->sched->ids, name, v)
		if ((uint32_t)json_integer_value(v) == id)
			return name;
	return "?";
}

/* A refused CPU list that names another instance's CPU says so (the allocator checks the
 * count first, and names owners by id; users know names). */
static int explain(struct api_ctx *ctx, int r, const char *self, const struct sched_request *req,
		   struct kiva_error *reterr)
{
	uint32_t self_id = id_of(ctx, self);

	if (r >= 0 || req->mode != SCHED_CPU_LIST)
		return r;
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		uint32_t owner =
			sched_cpuset_has(&req->cpus, c) ? sched_cpu_owner(ctx->sched->model, c) : 0;

		if (owner && owner != self_id)
			return kiva_error_set(reterr, -EBUSY,
					      "CPU %u is already dedicated to instance '%s'", c,
					      name_of(ctx, owner));
	}
	return r;
}

/* Disk is committed by every instance, running or not (limits.disk). */
static int admit_disk(struct api_ctx *ctx, const char *self, uint64_t bytes,
		      struct kiva_error *reterr)
{
	const struct sched_capacity *cap = &ctx->sched->cap;
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	uint64_t committed = 0, usable;
	const char *key;
	json_t *inst;

	if (!bytes || !cap->disk_bytes)
		return 0;
	json_object_foreach((json_t *)insts, key, inst)
		if (!streq(key, self))
			committed += disk_bytes_of(json_object_get(inst, "config"));
	usable = (uint64_t)floor((double)cap->disk_bytes * cap->target);
	if (committed + bytes > usable)
		return kiva_error_set(
			reterr, -ENOSPC,
			"needs %.1f GB of disk, host has %.1f GB (target %g → %.1f GB usable, %.1f GB committed)",
			(double)bytes / 1e9, (double)cap->disk_bytes / 1e9, cap->target,
			(double)usable / 1e9, (double)committed / 1e9);
	return 0;
}

/* ---- cgroups ---- */

static void format_mems(struct api_ctx *ctx, uint64_t mems, char *buf, size_t len)
{
	struct sched_cpuset set;

	sched_cpuset_zero(&set);
	if (!mems) /* any node */
		for (unsigned n = 0; n < ctx->sched->topo->n_nodes && n < 64; n++)
			if (!sched_cpuset_empty(&ctx->sched->topo->nodes[n].cpus) ||
			    ctx->sched->topo->nodes[n].mem_bytes)
				mems |= UINT64_C(1) << n;
	set.bits[0] = mems;
	if (sched_cpuset_format(&set, buf, len) < 0)
		buf[0] = 0;
}

/* The shared set as a list; every online CPU when dedicated instances hold them all (unpinned
 * instances then overlap rather than having nowhere to run). */
static void shared_list(struct api_ctx *ctx, char *buf, size_t len)
{
	struct sched_cpuset set;

	sched_shared_set(ctx->sched->model, &set);
	if (sched_cpuset_empty(&set))
		set = ctx->sched->topo->online;
	if (sched_cpuset_format(&set, buf, len) < 0)
		buf[0] = 0;
}

void api_sched_render(struct api_ctx *ctx, const char *name, char *cpus, size_t cpus_len,
		      char *mems, size_t mems_len)
{
	struct sched_placement pl;
	uint32_t id = id_of(ctx, name);

	cpus[0] = mems[0] = 0;
	if (id && sched_get(ctx->sched->model, id, &pl) == 0) {
		if (!sched_cpuset_empty(&pl.cpus))
			(void)sched_cpuset_format(&pl.cpus, cpus, cpus_len);
		else
			shared_list(ctx, cpus, cpus_len);
		if (pl.mems)
			format_mems(ctx, pl.mems, mems, mems_len);
		return;
	}
	shared_list(ctx, cpus, cpus_len);
}

static bool is_up(enum runtime_state st)
{
	return st == RUNTIME_RUNNING || st == RUNTIME_FROZEN || st == RUNTIME_STARTING ||
	       st == RUNTIME_STOPPING;
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = 0;
}

/* Writes one cgroup value when it differs. */
static int cgroup_write(struct api_ctx *ctx, const char *name, const char *key, const char *value)
{
	cleanup_free char *cur = NULL;

	if (runtime_cgroup_get(ctx->lxcpath, name, key, &cur) >= 0 && cur) {
		trim(cur);
		if (streq(cur, value))
			return 0;
	}
	return runtime_cgroup_set(ctx->lxcpath, name, key, value);
}

/* Writes a running instance's cpuset.cpus and cpuset.mems from its placement. */
static int pin(struct api_ctx *ctx, const char *name, struct kiva_error *reterr)
{
	char cpus[1024], mems[256];
	int r;

	api_sched_render(ctx, name, cpus, sizeof(cpus), mems, sizeof(mems));
	if (!mems[0])
		format_mems(ctx, 0, mems, sizeof(mems));
	/* mems first: a CPU list on a node is fine with any memory, not the other way round */
	r = cgroup_write(ctx, name, "cpuset.mems", mems);
	if (r >= 0)
		r = cgroup_write(ctx, name, "cpuset.cpus", cpus);
	if (r < 0 && r != -ESRCH)
		return kiva_error_set(reterr, r,
				      "Failed to pin '%s' to CPUs %s (memory of node %s): %s", name,
				      cpus, mems, strerror(-r));
	return 0;
}

/* STATE/cpu-governors: "CPU GOVERNOR" lines, the governor each CPU had before KIVA set
 * host.cpu.governor on it, so a later kivad (after a crash too) can give it back. */
static char *governors_path(struct api_ctx *ctx)
{
	return strf("%s/cpu-governors", ctx->state_dir);
}

static void save_governors(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	cleanup_free char *path = governors_path(ctx);
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int r;

	if (!f || !path) {
		if (f)
			fclose(f);
		free(text);
		return;
	}
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++)
		if (s->saved_governor[c][0])
			fprintf(f, "%u %s\n", c, s->saved_governor[c]);
	fclose(f);
	r = len ? write_file_atomic(path, text, len, 0644) : (unlink(path) < 0 ? 0 : 0);
	if (r < 0)
		log_warning("Failed to write %s: %s", path, strerror(-r));
	free(text);
}

static void load_governors(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	cleanup_free char *path = governors_path(ctx), *text = NULL;
	char *save = NULL, *line;

	if (!path || read_file(path, 1 << 20, &text, NULL) < 0 || !text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char gov[SCHED_GOVERNOR_NAME_MAX];
		unsigned c;

		if (sscanf(line, "%u %31s", &c, gov) == 2 && c < SCHED_CPUS_MAX &&
		    sched_governor_name_valid(gov))
			snprintf(s->saved_governor[c], sizeof(s->saved_governor[c]), "%s", gov);
	}
}

/* host.cpu.governor on the dedicated CPUs; every other CPU KIVA changed gets its own back. */
static void apply_governor(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	struct kiva_error err = {0};
	bool changed = false, read = false;

	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		bool owned =
			s->governor[0] && c < s->topo->n_cpus && sched_cpu_owner(s->model, c) != 0;
		struct sched_cpuset one;

		sched_cpuset_zero(&one);
		sched_cpuset_add(&one, c);
		if (owned && !s->saved_governor[c][0]) {
			/* the governors as they were, read once (a read walks every CPU) */
			if (!read) {
				(void)read_hw(ctx, true);
				read = true;
			}
			if (sched_hw_set_governor(sys_root(ctx), &one, s->governor, &err) < 0) {
				log_warning("host.cpu.governor: %s", err.msg);
				continue;
			}
			snprintf(s->saved_governor[c], sizeof(s->saved_governor[c]), "%s",
				 s->hw->cpufreq[c].governor);
			changed = true;
		} else if (!owned && s->saved_governor[c][0]) {
			if (sched_hw_set_governor(sys_root(ctx), &one, s->saved_governor[c], &err) <
			    0)
				log_warning("host.cpu.governor: restoring CPU %u: %s", c, err.msg);
			s->saved_governor[c][0] = 0;
			changed = true;
		}
	}
	if (changed)
		save_governors(ctx);
}

/* Writes the shared set to every running instance without dedicated CPUs (when the set changed,
 * or always with force). */
static void sync_shared(struct api_ctx *ctx, bool force)
{
	struct api_sched *s = ctx->sched;
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	char list[1024];
	const char *name;
	json_t *inst;

	apply_governor(ctx);
	shared_list(ctx, list, sizeof(list));
	if (!force && streq(list, s->shared))
		return;
	snprintf(s->shared, sizeof(s->shared), "%s", list);
	json_object_foreach((json_t *)insts, name, inst) {
		struct sched_placement pl;
		uint32_t id = id_of(ctx, name);
		int r;

		if (id && sched_get(s->model, id, &pl) == 0 && !sched_cpuset_empty(&pl.cpus))
			continue;
		if (!is_up(runtime_state(ctx->lxcpath, name)))
			continue;
		r = cgroup_write(ctx, name, "cpuset.cpus", list);
		if (r < 0 && r != -ESRCH)
			log_warning("Failed to set the shared CPUs %s on '%s': %s", list, name,
				    strerror(-r));
	}
}

/* ---- lifecycle ---- */

int api_sched_check(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	struct sched_request req;
	struct sched_placement pl;
	int r;

	r = request_of(ctx, inst, &req, reterr);
	if (r < 0)
		return r;
	r = admit_disk(ctx, json_get_str(inst, "name", ""),
		       disk_bytes_of(json_object_get(inst, "config")), reterr);
	if (r < 0)
		return r;
	return explain(ctx, sched_place(ctx->sched->model, &req, &pl, reterr),
		       json_get_str(inst, "name", ""), &req, reterr);
}

int api_sched_claim(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	struct api_sched *s = ctx->sched;
	const char *name = json_get_str(inst, "name", "");
	struct sched_request req;
	uint32_t id = id_of(ctx, name);
	int r;

	r = request_of(ctx, inst, &req, reterr);
	if (r < 0)
		return r;
	if (id) {
		/* reserved while stopped: the config may have changed since */
		r = sched_resize(s->model, id, &req, NULL, reterr);
		if (r < 0)
			return explain(ctx, r, name, &req, reterr);
	} else {
		id = s->next_id++;
		if (s->next_id == 0)
			s->next_id = 1;
		r = sched_add(s->model, id, &req, NULL, reterr);
		if (r < 0)
			return explain(ctx, r, name, &req, reterr);
		json_object_set_new(s->ids, name, json_integer(id));
	}
	/* the CPUs it takes leave the shared set before it starts on them */
	sync_shared(ctx, false);
	return 0;
}

void api_sched_release(struct api_ctx *ctx, const char *name, bool deleting)
{
	struct api_sched *s = ctx->sched;
	const json_t *inst = store_instance(ctx->store, name);
	uint32_t id = id_of(ctx, name);

	if (!id)
		return;
	if (!deleting && inst && config_bool(json_object_get(inst, "config"), "limits.cpu.reserve"))
		return;
	(void)sched_remove(s->model, id);
	json_object_del(s->ids, name);
	sync_shared(ctx, false);
}

static bool sched_keys_changed(const json_t *a, const json_t *b)
{
	static const char *const keys[] = {"limits.cpu",	 "limits.memory",
					   "limits.cpu.nodes",	 "limits.cpu.reserve",
					   "security.sensitive", "limits.disk"};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i])))
			return true;
	return false;
}

int api_sched_update(struct api_ctx *ctx, const json_t *old_inst, const json_t *new_inst,
		     bool running, struct kiva_error *reterr)
{
	struct api_sched *s = ctx->sched;
	const char *name = json_get_str(new_inst, "name", "");
	const json_t *oc = json_object_get(old_inst, "config");
	const json_t *nc = json_object_get(new_inst, "config");
	uint64_t disk = disk_bytes_of(nc);
	struct sched_request req;
	uint32_t id = id_of(ctx, name);
	int r;

	if (!sched_keys_changed(oc, nc))
		return 0;
	if (disk > disk_bytes_of(oc)) {
		r = admit_disk(ctx, name, disk, reterr);
		if (r < 0)
			return r;
	}
	r = request_of(ctx, new_inst, &req, reterr);
	if (r < 0)
		return r;
	if (!id && (running || config_bool(nc, "limits.cpu.reserve")))
		/* placed from now on (a stopped instance asking to keep its CPUs) */
		r = api_sched_claim(ctx, new_inst, reterr);
	else if (id && !running && !config_bool(nc, "limits.cpu.reserve")) {
		/* no longer reserved while stopped: it gives its CPUs back (the next start
		 * is admitted then) */
		(void)sched_remove(s->model, id);
		json_object_del(s->ids, name);
		sync_shared(ctx, false);
	} else if (id) {
		r = sched_resize(s->model, id, &req, NULL, reterr);
	} else {
		struct sched_placement pl;

		r = sched_place(s->model, &req, &pl, reterr);
	}
	if (r < 0)
		return explain(ctx, r, name, &req, reterr);
	if (!running)
		return 0;
	/* re-pin live: shared instances first leave the CPUs it gains */
	sync_shared(ctx, false);
	return pin(ctx, name, reterr);
}

/* ---- upkeep ---- */

/* The watch asks liblxc the state of every placed instance: a round trip to each container's
 * monitor, which may wait on the scheduler while containers start. Asked from libuv's thread
 * pool; the answers are applied on the loop. */
struct watch_job {
	uv_work_t work;
	struct api_ctx *ctx;
	char *lxcpath;
	size_t n;
	char (*names)[64];
	bool *up;
};

static bool watch_running; /* one job at a time */

static void watch_job_free(struct watch_job *j)
{
	free(j->lxcpath);
	free(j->names);
	free(j->up);
	free(j);
}

static void watch_work(uv_work_t *w)
{
	struct watch_job *j = w->data;

	api_work_thread_begin();
	for (size_t i = 0; i < j->n; i++)
		j->up[i] = is_up(runtime_state(j->lxcpath, j->names[i]));
}

static void watch_done(uv_work_t *w, int status)
{
	struct watch_job *j = w->data;
	struct api_ctx *ctx = j->ctx;
	struct api_sched *s = ctx->sched;

	watch_running = false;
	ctx->pending_tasks--;
	for (size_t i = 0; status == 0 && s && i < j->n; i++) {
		const char *name = j->names[i];
		const json_t *rec = store_instance(ctx->store, name);

		/* what changed meanwhile is not this answer's to judge */
		if (j->up[i] || !json_object_get(s->ids, name) ||
		    json_object_get(ctx->busy, name) || json_object_get(ctx->creating, name))
			continue;
		if (rec && api_sched_reserves(rec))
			continue; /* reserved: holds its CPUs while stopped */
		/* asked again, now: it may have been started since the thread asked */
		if (is_up(runtime_state(ctx->lxcpath, name)))
			continue;
		log_info("Instance '%s' stopped by itself: releasing its CPUs", name);
		api_sched_release(ctx, name, rec == NULL);
	}
	watch_job_free(j);
}

void api_sched_watch(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	struct watch_job *j;
	const char *name;
	size_t i = 0;
	json_t *v;

	/* instances that stopped by themselves (poweroff inside) give their CPUs back */
	if (watch_running || json_object_size(s->ids) == 0)
		return;
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->ctx = ctx;
	j->work.data = j;
	j->lxcpath = strdup(ctx->lxcpath);
	j->names = calloc(json_object_size(s->ids), sizeof(*j->names));
	j->up = calloc(json_object_size(s->ids), sizeof(*j->up));
	if (!j->lxcpath || !j->names || !j->up) {
		watch_job_free(j);
		return;
	}
	json_object_foreach(s->ids, name, v) {
		if (json_object_get(ctx->busy, name) || json_object_get(ctx->creating, name))
			continue;
		snprintf(j->names[i++], sizeof(j->names[0]), "%s", name);
	}
	j->n = i;
	if (j->n == 0 || uv_queue_work(ctx->loop, &j->work, watch_work, watch_done) < 0) {
		watch_job_free(j);
		return;
	}
	watch_running = true;
	ctx->pending_tasks++;
}

/* An instance keeps the CPUs it has (running: its cgroup; reserved while stopped: its liblxc
 * config) when they still satisfy its request. */
static bool adopt(struct api_ctx *ctx, const char *name, bool up, const struct sched_request *req,
		  uint32_t id)
{
	struct api_sched *s = ctx->sched;
	cleanup_free char *cur = NULL;
	struct sched_request keep = *req;
	struct sched_cpuset set;

	if (req->mode == SCHED_CPU_NONE)
		return false;
	if (up) {
		if (runtime_cgroup_get(ctx->lxcpath, name, "cpuset.cpus", &cur) < 0 || !cur)
			return false;
	} else {
		/* reserved while stopped: the CPUs its liblxc config was rendered with */
		cleanup_free char *path = strf("%s/%s/config", ctx->lxcpath, name), *text = NULL;
		const char *p = NULL;

		if (!path || read_file(path, 1 << 20, &text, NULL) < 0 || !text)
			return false;
		p = strstr(text, "cpuset.cpus = ");
		if (!p)
			return false;
		p += strlen("cpuset.cpus = ");
		cur = strndup(p, strcspn(p, "\n"));
		if (!cur)
			return false;
	}
	trim(cur);
	if (sched_cpuset_parse(cur, &set) < 0 || sched_cpuset_empty(&set))
		return false;
	if (req->mode == SCHED_CPU_LIST && !sched_cpuset_equal(&set, &req->cpus))
		return false;
	if (req->mode == SCHED_CPU_COUNT) {
		int node = -1;

		if (sched_cpuset_count(&set) != req->count)
			return false;
		/* one node, as a new placement would be (when one node could hold it) */
		for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
			if (!sched_cpuset_has(&set, c))
				continue;
			if (c >= s->topo->n_cpus || !s->topo->cpus[c].online)
				return false;
			if (node >= 0 && s->topo->cpus[c].node != node &&
			    req->count <=
				    sched_cpuset_count(&s->topo->nodes[s->topo->cpus[c].node].cpus))
				return false;
			node = s->topo->cpus[c].node;
		}
	}
	keep.mode = SCHED_CPU_LIST;
	keep.cpus = set;
	return sched_add(s->model, id, &keep, NULL, NULL) == 0;
}

void api_sched_rebuild(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	cleanup_json json_t *later = json_object();
	struct sched_capacity hardware;
	const char *name;
	json_t *inst;

	/* what already runs is accounted even past a capacity lowered while kivad was down */
	sched_capacity_from_topology(s->topo, &hardware);
	sched_model_set_capacity(s->model, &hardware);
	json_object_foreach((json_t *)insts, name, inst) {
		const json_t *config = json_object_get(inst, "config");
		bool up = is_up(runtime_state(ctx->lxcpath, name));
		struct sched_request req;
		struct kiva_error err = {0};

		if (!streq(json_get_str(inst, "kiva_state", ""), "ready"))
			continue;
		if (!up && !config_bool(config, "limits.cpu.reserve"))
			continue;
		if (request_of(ctx, inst, &req, &err) < 0) {
			log_warning("Scheduler: '%s': %s", name, err.msg);
			continue;
		}
		if (adopt(ctx, name, up, &req, s->next_id)) {
			json_object_set_new(s->ids, name, json_integer(s->next_id++));
			continue;
		}
		json_object_set_new(later, name, json_true());
	}
	json_object_foreach(later, name, inst) {
		const json_t *rec = store_instance(ctx->store, name);
		struct sched_request req;
		struct kiva_error err = {0};

		if (request_of(ctx, rec, &req, &err) < 0 ||
		    sched_add(s->model, s->next_id, &req, NULL, &err) < 0) {
			log_warning("Scheduler: can't place '%s': %s", name, err.msg);
			continue;
		}
		json_object_set_new(s->ids, name, json_integer(s->next_id++));
		if (is_up(runtime_state(ctx->lxcpath, name)))
			log_info("Scheduler: '%s' re-pinned (its CPUs had drifted)", name);
	}
	sched_model_set_capacity(s->model, &s->cap);
	api_server_config_apply(ctx); /* host.cpu.governor */
	apply_governor(ctx); /* CPUs an earlier kivad changed that are no longer dedicated */
	/* drift: every running instance gets what the model says */
	json_object_foreach(s->ids, name, inst) {
		struct kiva_error err = {0};

		if (is_up(runtime_state(ctx->lxcpath, name)) && pin(ctx, name, &err) < 0)
			log_warning("Scheduler: %s", err.msg);
	}
	sync_shared(ctx, true);
}

/* ---- host.cpu.governor (server config) ---- */

int api_sched_set_governor(struct api_ctx *ctx, const char *governor, struct kiva_error *reterr)
{
	struct api_sched *s = ctx->sched;

	if (!governor)
		governor = "";
	if (streq(governor, s->governor))
		return 0;
	if (*governor && !sched_governor_name_valid(governor))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid value for host.cpu.governor '%s': a cpufreq "
				      "governor name such as \"performance\"",
				      governor);
	if (*governor) {
		/* checked on every online CPU up front: a later placement must not fail */
		(void)read_hw(ctx, true);
		if (s->hw->n_cpufreq == 0)
			return kiva_error_set(
				reterr, -ENOTSUP,
				"Can't set host.cpu.governor: this host has no CPU frequency scaling "
				"(no %s/sys/devices/system/cpu/cpu*/cpufreq)",
				streq(sys_root(ctx), "/") ? "" : sys_root(ctx));
		if (!str_has_word(s->hw->governors_available, governor))
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid value for host.cpu.governor '%s': this host "
					      "offers %s",
					      governor, s->hw->governors_available);
	}
	/* every changed CPU gets its own governor back, then the new one is applied */
	s->governor[0] = 0;
	apply_governor(ctx);
	snprintf(s->governor, sizeof(s->governor), "%s", governor);
	apply_governor(ctx);
	return 0;
}

/* ---- rendering ---- */

json_t *api_sched_instance_state(struct api_ctx *ctx, const char *name)
{
	struct api_sched *s = ctx->sched;
	struct sched_placement pl;
	uint32_t id = id_of(ctx, name);
	char cpus[1024] = "", mems[256] = "";
	bool dedicated;

	if (!id || sched_get(s->model, id, &pl) < 0)
		return json_pack("{s:s}", "placement", "none");
	dedicated = !sched_cpuset_empty(&pl.cpus);
	api_sched_render(ctx, name, cpus, sizeof(cpus), mems, sizeof(mems));
	if (!mems[0])
		format_mems(ctx, 0, mems, sizeof(mems));
	return json_pack("{s:s,s:s,s:s,s:i}", "placement", dedicated ? "dedicated" : "shared",
			 "cpus", cpus, "mems", mems, "node", pl.node);
}

/* Free memory of node n (MemFree of its meminfo; /proc/meminfo's MemAvailable without NUMA). */
static uint64_t node_free_bytes(struct api_ctx *ctx, unsigned n)
{
	cleanup_free char *path = NULL, *text = NULL;
	const char *p;
	unsigned long long kb = 0;

	path = strf("%s/sys/devices/system/node/node%u/meminfo", sys_root(ctx), n);
	if (path && read_file(path, 1 << 20, &text, NULL) >= 0 && text &&
	    (p = strstr(text, "MemFree:")) && sscanf(p, "MemFree: %llu", &kb) == 1)
		return kb * 1024;
	free(path);
	free(text);
	text = NULL;
	path = strf("%s/proc/meminfo", sys_root(ctx));
	if (path && read_file(path, 1 << 20, &text, NULL) >= 0 && text &&
	    (p = strstr(text, "MemAvailable:")) && sscanf(p, "MemAvailable: %llu", &kb) == 1)
		return kb * 1024;
	return 0;
}

/* "model name" and "vendor_id" of the first CPU of socket `socket` in /proc/cpuinfo. */
static void cpu_model(struct api_ctx *ctx, unsigned first_cpu, char *name, size_t name_len,
		      char *vendor, size_t vendor_len)
{
	cleanup_free char *path = strf("%s/proc/cpuinfo", sys_root(ctx));
	cleanup_free char *text = NULL;
	char *save = NULL, *line;
	long cur = -1;

	snprintf(name, name_len, "%s", "");
	snprintf(vendor, vendor_len, "%s", "");
	if (!path || read_file(path, 1 << 20, &text, NULL) < 0 || !text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		const char *v;

		if (!colon)
			continue;
		v = colon + 1 + strspn(colon + 1, " \t");
		if (startswith(line, "processor"))
			cur = strtol(v, NULL, 10);
		if (cur != (long)first_cpu)
			continue;
		if (startswith(line, "model name"))
			snprintf(name, name_len, "%s", v);
		else if (startswith(line, "vendor_id"))
			snprintf(vendor, vendor_len, "%s", v);
	}
}

static json_t *render_cpu(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	const struct sched_topology *t = s->topo;
	json_t *sockets = json_array();
	struct utsname u;

	uname(&u);
	for (int sock = 0; sock < (int)SCHED_CPUS_MAX; sock++) {
		json_t *cores = json_array(), *sj;
		uint64_t fmax = 0, fmin = 0, fcur = 0;
		int first = -1;
		char name[128], vendor[64];

		for (unsigned c = 0; c < t->n_cpus; c++) {
			const struct sched_cpu *cpu = &t->cpus[c];
			const struct sched_cpufreq *f = &s->hw->cpufreq[c];
			json_t *threads = NULL, *core = NULL, *th;
			size_t i;

			if (!cpu->online || cpu->socket != sock)
				continue;
			if (first < 0)
				first = (int)c;
			json_array_foreach(cores, i, core) {
				if (json_integer_value(json_object_get(core, "core")) ==
				    cpu->core) {
					threads = json_object_get(core, "threads");
					break;
				}
			}
			if (!threads) {
				threads = json_array();
				core = json_pack("{s:i,s:i,s:o,s:I}", "core", cpu->core, "die", 0,
						 "threads", threads, "frequency",
						 (json_int_t)(f->cur_khz / 1000));
				json_array_append_new(cores, core);
			}
			th = json_pack("{s:i,s:i,s:i,s:b,s:b,s:s,s:I}", "id", (int)c, "numa_node",
				       cpu->node, "thread", (int)json_array_size(threads), "online",
				       1, "isolated", 0, "governor", f->governor, "kiva_owner",
				       (json_int_t)sched_cpu_owner(s->model, c));
			json_array_append_new(threads, th);
			if (f->max_khz > fmax)
				fmax = f->max_khz;
			if (!fmin || (f->min_khz && f->min_khz < fmin))
				fmin = f->min_khz;
			if (f->cur_khz > fcur)
				fcur = f->cur_khz;
		}
		if (first < 0) {
			json_decref(cores);
			if (sock >= (int)t->n_sockets + 8)
				break;
			continue;
		}
		cpu_model(ctx, (unsigned)first, name, sizeof(name), vendor, sizeof(vendor));
		sj = json_pack("{s:s,s:s,s:i,s:o,s:I,s:I,s:I}", "name", name, "vendor", vendor,
			       "socket", sock, "cores", cores, "frequency",
			       (json_int_t)(fcur / 1000), "frequency_minimum",
			       (json_int_t)(fmin / 1000), "frequency_turbo",
			       (json_int_t)(fmax / 1000));
		json_array_append_new(sockets, sj);
	}
	/* drop the helper owner ids: they are kivad's, not the user's */
	{
		size_t i, j, k;
		json_t *sk, *core, *th;

		json_array_foreach(sockets, i, sk)
			json_array_foreach(json_object_get(sk, "cores"), j, core)
				json_array_foreach(json_object_get(core, "threads"), k, th)
					json_object_del(th, "kiva_owner");
	}
	return json_pack("{s:s,s:o,s:i}", "architecture", u.machine, "sockets", sockets, "total",
			 (int)t->n_online);
}

static json_t *render_memory(struct api_ctx *ctx)
{
	const struct sched_topology *t = ctx->sched->topo;
	json_t *nodes = json_array();
	uint64_t used = 0;

	for (unsigned n = 0; n < t->n_nodes; n++) {
		uint64_t total = t->nodes[n].mem_bytes, fr;

		if (sched_cpuset_empty(&t->nodes[n].cpus) && !total)
			continue;
		fr = node_free_bytes(ctx, n);
		if (fr > total)
			fr = total;
		used += total - fr;
		json_array_append_new(nodes, json_pack("{s:i,s:I,s:I,s:i,s:i}", "numa_node", (int)n,
						       "used", (json_int_t)(total - fr), "total",
						       (json_int_t)total, "hugepages_used", 0,
						       "hugepages_total", 0));
	}
	return json_pack("{s:o,s:I,s:I,s:i,s:i,s:i}", "nodes", nodes, "used", (json_int_t)used,
			 "total", (json_int_t)t->mem_bytes, "hugepages_total", 0, "hugepages_used",
			 0, "hugepages_size", 0);
}

static json_t *render_numa(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	const struct sched_topology *t = s->topo;
	uint64_t bad = sched_hw_error_nodes(s->hw);
	json_t *out = json_array();

	for (unsigned n = 0; n < t->n_nodes; n++) {
		struct sched_cpuset dedicated;
		char cpus[1024], ded[1024];
		uint64_t ce = 0, ue = 0;

		if (sched_cpuset_empty(&t->nodes[n].cpus))
			continue;
		sched_cpuset_zero(&dedicated);
		for (unsigned c = 0; c < t->n_cpus; c++)
			if (sched_cpuset_has(&t->nodes[n].cpus, c) && sched_cpu_owner(s->model, c))
				sched_cpuset_add(&dedicated, c);
		for (unsigned i = 0; i < s->hw->n_edac; i++)
			if (s->hw->edac[i].node == (int)n) {
				ce += s->hw->edac[i].ce;
				ue += s->hw->edac[i].ue;
			}
		(void)sched_cpuset_format(&t->nodes[n].cpus, cpus, sizeof(cpus));
		(void)sched_cpuset_format(&dedicated, ded, sizeof(ded));
		json_array_append_new(
			out, json_pack("{s:i,s:s,s:i,s:s,s:i,s:i,s:I,s:I,s:{s:I,s:I},s:b}", "node",
				       (int)n, "cpus", cpus, "cpus_total",
				       (int)sched_cpuset_count(&t->nodes[n].cpus), "cpus_dedicated",
				       ded, "cpus_dedicated_count",
				       (int)sched_cpuset_count(&dedicated), "cpus_free",
				       (int)sched_node_free_cpus(s->model, n), "memory_total",
				       (json_int_t)t->nodes[n].mem_bytes, "memory_committed",
				       (json_int_t)sched_node_mem_committed(s->model, n),
				       "memory_errors", "corrected", (json_int_t)ce, "uncorrected",
				       (json_int_t)ue, "avoided_by_sensitive",
				       n < 64 && ((bad >> n) & 1)));
	}
	return out;
}

static json_t *render_capacity(struct api_ctx *ctx)
{
	struct api_sched *s = ctx->sched;
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	struct sched_usage use;
	uint64_t disk = 0;
	char shared[1024];
	const char *key;
	json_t *inst;

	sched_usage(s->model, &use);
	json_object_foreach((json_t *)insts, key, inst)
		disk += disk_bytes_of(json_object_get(inst, "config"));
	shared_list(ctx, shared, sizeof(shared));
	return json_pack(
		"{s:s,s:i,s:I,s:I,s:f,s:i,s:i,s:I,s:I,s:I,s:I,s:i,s:s,s:s?}", "source",
		s->cap_source, "cpu_total", (int)s->cap.cpu_total, "ram_total",
		(json_int_t)s->cap.ram_bytes, "disk_total", (json_int_t)s->cap.disk_bytes,
		"target_utilization", s->cap.target, "cpus_usable", (int)use.cpus_usable,
		"cpus_committed", (int)use.cpus_committed, "memory_usable",
		(json_int_t)use.mem_usable, "memory_committed", (json_int_t)use.mem_committed,
		"disk_usable",
		(json_int_t)(s->cap.disk_bytes
				     ? (uint64_t)floor((double)s->cap.disk_bytes * s->cap.target)
				     : 0),
		"disk_committed", (json_int_t)disk, "instances_placed", (int)use.n_instances,
		"shared_cpus", shared, "cpu_governor", s->governor[0] ? s->governor : NULL);
}

static json_t *render_sensors(struct api_ctx *ctx)
{
	const struct sched_hw *hw = ctx->sched->hw;
	json_t *thermal = json_array(), *power = json_array(), *edac = json_array();
	json_t *freq = json_array();

	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		const struct sched_cpufreq *f = &hw->cpufreq[c];

		if (f->present)
			json_array_append_new(freq, json_pack("{s:i,s:s,s:I,s:I,s:I}", "cpu",
							      (int)c, "governor", f->governor,
							      "current", (json_int_t)f->cur_khz,
							      "minimum", (json_int_t)f->min_khz,
							      "maximum", (json_int_t)f->max_khz));
	}
	for (unsigned i = 0; i < hw->n_thermal; i++) {
		const struct sched_thermal_zone *z = &hw->thermal[i];

		json_array_append_new(
			thermal, json_pack("{s:i,s:s,s:o}", "zone", (int)z->index, "type", z->type,
					   "temperature",
					   z->temp_valid ? json_real((double)z->temp_mc / 1000.0)
							 : json_null()));
	}
	for (unsigned i = 0; i < hw->n_rapl; i++) {
		const struct sched_rapl_zone *z = &hw->rapl[i];

		json_array_append_new(
			power, json_pack("{s:i,s:s,s:o,s:I}", "zone", (int)z->index, "name",
					 z->name, "energy_uj",
					 z->energy_valid ? json_integer((json_int_t)z->energy_uj)
							 : json_null(),
					 "power_limit_uw", (json_int_t)z->power_limit_uw));
	}
	for (unsigned i = 0; i < hw->n_edac; i++) {
		const struct sched_edac_mc *m = &hw->edac[i];

		json_array_append_new(edac, json_pack("{s:i,s:s,s:I,s:I,s:i}", "mc", (int)m->index,
						      "name", m->name, "corrected",
						      (json_int_t)m->ce, "uncorrected",
						      (json_int_t)m->ue, "numa_node", m->node));
	}
	return json_pack("{s:o,s:s,s:o,s:o,s:o}", "cpufreq", freq, "governors_available",
			 hw->governors_available, "thermal", thermal, "power", power,
			 "memory_controllers", edac);
}

void api_resources_handle_get(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;

	(void)read_hw(ctx, false);
	api_reply_sync(req,
		       json_pack("{s:o,s:o,s:{s:[],s:i},s:{s:[],s:i},s:{s:[],s:i},s:o,s:o,s:o}",
				 "cpu", render_cpu(ctx), "memory", render_memory(ctx), "gpu",
				 "cards", "total", 0, "network", "cards", "total", 0, "storage",
				 "disks", "total", 0, "numa", render_numa(ctx), "capacity",
				 render_capacity(ctx), "sensors", render_sensors(ctx)));
}

void api_capacity_handle_get(struct api_request *req)
{
	api_reply_sync(req, render_capacity(req->ctx));
}

/* POST /1.0/resources/capacity: re-read the capacity file (as SIGHUP does). */
void api_capacity_handle_post(struct api_request *req)
{
	struct kiva_error err = {0};

	if (api_sched_reload(req->ctx, &err) < 0) {
		api_reply_error(req, 400, "%s", err.msg);
		return;
	}
	api_reply_sync(req, render_capacity(req->ctx));
}
