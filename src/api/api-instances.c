/* /1.0/instances: the instance lifecycle. Each workflow is a chain of small steps on the loop:
 * store applies (Raft commit callbacks), liblxc config rendering, and for everything that blocks
 * either libuv's thread pool (a create's rootfs clone and config write: btrfs commits take
 * 2-20 ms under load) or kiva-helper (start, stop, freeze, exec).
 *
 * Ordering is what makes kill -9 safe (api-reconcile.c finishes what was cut):
 *   create: rootfs snapshot → liblxc config → record (one commit) → start; files with no record
 *           are leftovers that reconcile removes (the name is reserved in memory meanwhile)
 *   delete: record "deleting" → liblxc dir → rootfs → record removed
 * so anything on disk has a record that says what to do with it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"
#include "net.h"
#include "proto-name.h"

struct task {
	struct api_ctx *ctx;
	struct api_op *op;
	char name[64];
	json_t *inst; /* working copy of the record */
	char action[16];
	int timeout_sec;
	bool force;
	bool start_after;
	bool config_fresh; /* the liblxc config was just written from the record */
	bool restarting; /* start_step after a stop of the same task (events) */
	bool holds_busy; /* this task holds the instance's busy mark (api_ctx.busy) */
	char *errmsg; /* a failure to report after a clean-up step */
	char exec_id[40];
	char status_path[4096];
	bool record_output;
	char copy_src[256]; /* create by copy: the volume cloned (containers/X or snapshots/X/ID) */
	json_t *copy_snaps; /* create by copy: [{"src": volume, "dst": volume}] of the snapshots */
	char snap[64]; /* restore: the snapshot */
};

static void task_free(struct task *t)
{
	if (!t)
		return;
	if (t->holds_busy)
		json_object_del(t->ctx->busy, t->name);
	json_decref(t->inst);
	json_decref(t->copy_snaps);
	free(t->errmsg);
	free(t);
}

/* One state change or delete at a time per instance, as LXD's operation locks: a second one
 * while the first runs is refused with what is running. Returns false after replying 409. */
static bool instance_claim(struct api_request *req, const char *name)
{
	const char *running = json_string_value(json_object_get(req->ctx->busy, name));

	if (running) {
		api_reply_error(req, 409, "Instance '%s' is busy: %s", name, running);
		return false;
	}
	return true;
}

static void task_hold_busy(struct task *t, const char *what)
{
	if (json_object_set_new(t->ctx->busy, t->name, json_string(what)) == 0)
		t->holds_busy = true;
}

static struct task *task_new(struct api_ctx *ctx, struct api_op *op, const char *name)
{
	struct task *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ctx = ctx;
	t->op = op;
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

/* Ends the task's operation with an error and frees the task. */
static void task_fail(struct task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void task_fail(struct task *t, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warning("Instance '%s': %s", t->name, msg);
	api_op_fail(t->op, "%s", msg);
	task_free(t);
}

static void task_done(struct task *t, json_t *metadata)
{
	api_op_succeed(t->op, metadata);
	task_free(t);
}

static json_t *instance_resources(const char *name)
{
	char url[128];

	snprintf(url, sizeof(url), "/1.0/instances/%s", name);
	return json_pack("{s:[s]}", "instances", url);
}

static int status_code_of(enum runtime_state s)
{
	switch (s) {
	case RUNTIME_RUNNING:
		return 103;
	case RUNTIME_STARTING:
		return 106;
	case RUNTIME_STOPPING:
		return 107;
	case RUNTIME_FROZEN:
		return 110;
	case RUNTIME_STOPPED:
		return 102;
	default:
		return 112;
	}
}

static const char *status_of(enum runtime_state s)
{
	switch (s) {
	case RUNTIME_RUNNING:
		return "Running";
	case RUNTIME_STARTING:
		return "Starting";
	case RUNTIME_STOPPING:
		return "Stopping";
	case RUNTIME_FROZEN:
		return "Frozen";
	case RUNTIME_STOPPED:
		return "Stopped";
	default:
		return "Error";
	}
}

static bool is_running(enum runtime_state s)
{
	return s == RUNTIME_RUNNING || s == RUNTIME_FROZEN || s == RUNTIME_STARTING ||
	       s == RUNTIME_STOPPING;
}

static uint64_t read_counter(const char *ifname, const char *file)
{
	char path[128];
	cleanup_free char *text = NULL;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", ifname, file);
	if (read_file(path, 64, &text, NULL) < 0)
		return 0;
	return strtoull(text, NULL, 10);
}

/* LXD's state.network: per NIC its address, host veth and counters (as the container sees
 * them: what the host veth sends, the container receives). */
static json_t *render_network(struct api_ctx *ctx, const json_t *stored)
{
	cleanup_json json_t *nics = api_instance_nics(ctx, stored);
	json_t *out = json_object();
	size_t i;
	json_t *nic;

	json_array_foreach(nics, i, nic) {
		const char *host = json_get_str(nic, "host_name", "");
		json_t *addrs = json_array();
		char len[8];

		if (json_get_str(nic, "ipv4", NULL)) {
			snprintf(len, sizeof(len), "%lld", json_get_int(nic, "prefix", 0));
			json_array_append_new(addrs,
					      json_pack("{s:s,s:s,s:s,s:s}", "family", "inet",
							"address", json_get_str(nic, "ipv4", ""),
							"netmask", len, "scope", "global"));
		}
		json_object_set_new(
			out, json_get_str(nic, "name", ""),
			json_pack("{s:o,s:s,s:s,s:i,s:s,s:s,s:{s:I,s:I,s:I,s:I}}", "addresses",
				  addrs, "host_name", host, "hwaddr",
				  json_get_str(nic, "hwaddr", ""), "mtu",
				  atoi(json_get_str(nic, "mtu", "1500")), "state", "up", "type",
				  "broadcast", "counters", "bytes_received",
				  (json_int_t)read_counter(host, "tx_bytes"), "bytes_sent",
				  (json_int_t)read_counter(host, "rx_bytes"), "packets_received",
				  (json_int_t)read_counter(host, "tx_packets"), "packets_sent",
				  (json_int_t)read_counter(host, "rx_packets")));
	}
	return out;
}

static json_t *render_state(struct api_ctx *ctx, const json_t *stored, enum runtime_state st)
{
	const char *name = json_get_str(stored, "name", "");
	struct runtime_usage usage = {0};
	cleanup_free char *cpuset = NULL;
	int pid = -1;
	json_t *state, *kiva;

	if (is_running(st)) {
		pid = runtime_init_pid(ctx->lxcpath, name);
		(void)runtime_usage(ctx->lxcpath, name, &usage);
		(void)runtime_cgroup_get(ctx->lxcpath, name, "cpuset.cpus", &cpuset);
		if (cpuset) {
			size_t n = strlen(cpuset);

			while (n > 0 && (cpuset[n - 1] == '\n' || cpuset[n - 1] == ' '))
				cpuset[--n] = 0;
		}
	}
	state = json_pack(
		"{s:s,s:i,s:i,s:I,s:{s:I},s:{s:I,s:I,s:I},s:o,s:{}}", "status", status_of(st),
		"status_code", status_code_of(st), "pid", pid > 0 ? pid : -1, "processes",
		(json_int_t)usage.processes, "cpu", "usage", (json_int_t)usage.cpu_usage_nsec,
		"memory", "usage", (json_int_t)usage.memory_bytes, "usage_peak",
		(json_int_t)usage.memory_peak_bytes, "swap_usage", (json_int_t)0, "network",
		is_running(st) ? render_network(ctx, stored) : json_object(), "disk");
	/* where it runs: the scheduler's placement, and the live cpuset it has */
	kiva = api_sched_instance_state(ctx, name);
	if (state && kiva) {
		json_object_set_new(kiva, "cpuset", cpuset ? json_string(cpuset) : json_null());
		json_object_set_new(state, "kiva", kiva);
	} else {
		json_decref(kiva);
	}
	return state;
}

json_t *api_instance_render(struct api_ctx *ctx, const json_t *stored, bool with_state)
{
	const char *name = json_get_str(stored, "name", "");
	enum runtime_state st = runtime_state(ctx->lxcpath, name);
	json_t *out = json_deep_copy(stored);

	if (!out)
		return NULL;
	if (st == RUNTIME_MISSING)
		st = RUNTIME_STOPPED;
	json_object_del(out, "kiva_state");
	json_object_set_new(out, "snapshots", api_snapshots_render_all(ctx, stored));
	json_object_set_new(out, "status", json_string(status_of(st)));
	json_object_set_new(out, "status_code", json_integer(status_code_of(st)));
	json_object_set(out, "expanded_config", json_object_get(out, "config"));
	json_object_set_new(out, "expanded_devices", api_instance_expanded_devices(ctx, stored));
	json_object_set_new(out, "location", json_string("none"));
	json_object_set_new(out, "stateful", json_false());
	json_object_set_new(out, "project", json_string("default"));
	if (with_state)
		json_object_set_new(out, "state", render_state(ctx, stored, st));
	return out;
}

static void instance_etag(const json_t *stored, char out[static 80]);

/* ---- lookups shared by handlers ---- */

static const json_t *find_instance(struct api_request *req, const char *name)
{
	const json_t *inst = store_instance(req->ctx->store, name);

	if (!inst || !streq(json_get_str(inst, "kiva_state", ""), "ready")) {
		api_reply_error(req, 404, "Instance '%s' not found", name);
		return NULL;
	}
	return inst;
}

/* ---- config → liblxc config, CPU choice, live limits ---- */

/* Admission refusals are the client's to fix (fewer CPUs, less memory): 400 with the numbers. */
static void reply_sched_error(struct api_request *req, const struct kiva_error *err)
{
	if (err->code == -ENOSPC)
		api_reply_error(req, 400, "%s", err->msg);
	else
		api_reply_kiva_error(req, err);
}

/* limits.disk of a record: set (bytes, 0 = none) or unset. */
struct disk_limit {
	bool set;
	uint64_t bytes;
};

static int disk_limit_of(const json_t *inst, struct disk_limit *ret, struct kiva_error *reterr)
{
	const char *v = json_get_str(json_object_get(inst, "config"), "limits.disk", NULL);

	*ret = (struct disk_limit){.set = v != NULL};
	if (v && parse_size_bytes(v, &ret->bytes) < 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid value for limits.disk '%s'", v);
	return 0;
}

/* limits.disk → a btrfs qgroup limit on the volume rel (unset: cleared). Thread-safe. */
static int disk_limit_apply(struct storage_pool *pool, const char *rel,
			    const struct disk_limit *lim, struct kiva_error *reterr)
{
	if (!lim->set && !storage_volume_exists(pool, rel))
		return 0;
	if (!lim->set && strcmp(pool->ops->name, "btrfs") != 0)
		return 0; /* nothing to clear where limits cannot exist */
	return storage_volume_set_limit(pool, rel, lim->bytes, reterr);
}

static int apply_disk_limit(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	cleanup_free char *rel = strf("containers/%s", json_get_str(inst, "name", ""));
	struct disk_limit lim;

	if (!rel)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (disk_limit_of(inst, &lim, reterr) < 0)
		return -EINVAL;
	return disk_limit_apply(ctx->pool, rel, &lim, reterr);
}

static char *rootfs_path(struct api_ctx *ctx, const char *name)
{
	cleanup_free char *rel = strf("containers/%s", name);
	cleanup_free char *vol = rel ? storage_volume_path(ctx->pool, rel) : NULL;

	return vol ? strf("%s/rootfs", vol) : NULL;
}

/* A liblxc config rendered on the loop (from the record, the placement and the networks), to be
 * written by config_write from any thread. */
struct rendered_config {
	char name[64];
	char *text;
	char *resolv; /* resolv.conf when it has NICs, else NULL */
	char *resolv_path;
};

static void rendered_config_done(struct rendered_config *rc)
{
	free(rc->text);
	free(rc->resolv);
	free(rc->resolv_path);
	*rc = (struct rendered_config){0};
}

static int config_render(struct api_ctx *ctx, const json_t *inst, struct rendered_config *out,
			 struct kiva_error *reterr)
{
	const char *name = json_get_str(inst, "name", "");
	const json_t *config = json_object_get(inst, "config");
	cleanup_free char *rootfs = rootfs_path(ctx, name);
	cleanup_free char *log_path = strf("%s/%s/lxc.log", ctx->lxcpath, name);
	cleanup_free char *console_log = strf("%s/%s/console.log", ctx->lxcpath, name);
	cleanup_free char *resolv_path = strf("%s/%s/resolv.conf", ctx->lxcpath, name);
	cleanup_free struct runtime_nic *nics = NULL;
	cleanup_json json_t *keep = NULL;
	struct proto_limits lim;
	struct runtime_spec spec = {0};
	char cpus[1024], mems[256];
	size_t nnics = 0;
	int r;

	*out = (struct rendered_config){0};
	snprintf(out->name, sizeof(out->name), "%s", name);
	if (!rootfs || !log_path || !resolv_path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = api_nics_runtime(ctx, inst, &nics, &nnics, &keep);
	if (r < 0)
		return kiva_error_set(reterr, r, "Out of memory");
	r = proto_limits_from_config(config, &lim, reterr);
	if (r < 0)
		return r;
	spec.name = name;
	spec.rootfs = rootfs;
	spec.log_path = log_path;
	spec.console_log = console_log;
	spec.memory_bytes = lim.memory_bytes;
	api_sched_render(ctx, name, cpus, sizeof(cpus), mems, sizeof(mems));
	spec.cpuset = cpus[0] ? cpus : NULL;
	spec.cpuset_mems = mems[0] ? mems : NULL;
	spec.cpu_count = lim.cpu_count;
	spec.processes = lim.processes;
	spec.privileged = false;
	spec.idmap_base = ctx->idmap_base;
	spec.idmap_size = ctx->idmap_size;
	spec.seccomp_profile = ctx->seccomp_path;
	spec.nics = nics;
	spec.nnics = nnics;
	if (nnics > 0) {
		out->resolv = api_nics_resolv_conf(ctx, inst);
		out->resolv_path = out->resolv ? strdup(resolv_path) : NULL;
		spec.resolv_conf = resolv_path;
	}
	r = runtime_config_render(&ctx->host, &spec, &out->text);
	if (r < 0) {
		rendered_config_done(out);
		return kiva_error_set(reterr, r, "Failed to generate the container config of '%s'",
				      name);
	}
	return 0;
}

/* Writes a rendered config (and its resolv.conf). Thread-safe. */
static int config_write(const char *lxcpath, const struct rendered_config *rc,
			struct kiva_error *reterr)
{
	int r = runtime_config_write(lxcpath, rc->name, rc->text);

	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to write the container config of '%s': %s",
				      rc->name, strerror(-r));
	if (rc->resolv) {
		r = write_file_replace(rc->resolv_path, rc->resolv, strlen(rc->resolv), 0644);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to write %s: %s", rc->resolv_path,
					      strerror(-r));
	}
	return 0;
}

static int write_lxc_config(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	struct rendered_config rc;
	int r = config_render(ctx, inst, &rc, reterr);

	if (r < 0)
		return r;
	r = config_write(ctx->lxcpath, &rc, reterr);
	rendered_config_done(&rc);
	return r;
}

struct live_key {
	const char *config_key;
	const char *v1, *v2;
};

static void strip_nl(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = 0;
}

/* Applies the limits of new_config to a running container; on failure restores the old values
 * of what was already changed and returns the error, so a refused change changes nothing. */
static int apply_live_limits(struct api_ctx *ctx, const char *name, const json_t *old_config,
			     const json_t *new_config, struct kiva_error *reterr)
{
	static const struct live_key keys[] = {
		{"limits.memory", "memory.limit_in_bytes", "memory.max"},
		{"limits.processes", "pids.max", "pids.max"},
		{"limits.cpu", "cpu.cfs_quota_us", "cpu.max"},
	};
	bool v2 = ctx->host.cgroup_version == 2;
	char values[ARRAY_SIZE(keys)][256];
	char olds[ARRAY_SIZE(keys)][256];
	bool applied[ARRAY_SIZE(keys)] = {false};
	struct proto_limits nl;
	int r;

	r = proto_limits_from_config(new_config, &nl, reterr);
	if (r < 0)
		return r;
	if (nl.memory_bytes)
		snprintf(values[0], sizeof(values[0]), "%" PRIu64, nl.memory_bytes);
	else
		snprintf(values[0], sizeof(values[0]), "%s", v2 ? "max" : "-1");
	if (nl.processes)
		snprintf(values[1], sizeof(values[1]), "%" PRId64, nl.processes);
	else
		snprintf(values[1], sizeof(values[1]), "max");
	/* CFS quota of N full CPUs per 100 ms period, as runtime-config.c renders it; the CPUs
	 * themselves (cpuset) are the scheduler's (api_sched_update) */
	if (nl.cpu_count && v2)
		snprintf(values[2], sizeof(values[2]), "%u 100000", nl.cpu_count * 100000);
	else if (nl.cpu_count)
		snprintf(values[2], sizeof(values[2]), "%u", nl.cpu_count * 100000);
	else
		snprintf(values[2], sizeof(values[2]), "%s", v2 ? "max 100000" : "-1");

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *ov = json_get_str(old_config, keys[i].config_key, NULL);
		const char *nv = json_get_str(new_config, keys[i].config_key, NULL);
		const char *cg = v2 ? keys[i].v2 : keys[i].v1;
		cleanup_free char *cur = NULL;

		if ((!ov && !nv) || (ov && nv && streq(ov, nv)))
			continue;
		olds[i][0] = 0;
		if (runtime_cgroup_get(ctx->lxcpath, name, cg, &cur) >= 0 && cur) {
			strip_nl(cur);
			snprintf(olds[i], sizeof(olds[i]), "%s", cur);
		}
		r = runtime_cgroup_set(ctx->lxcpath, name, cg, values[i]);
		if (r < 0) {
			kiva_error_set(reterr, r,
				       "Failed to apply %s=%s to the running instance: %s",
				       keys[i].config_key, nv ? nv : "(unset)", strerror(-r));
			break;
		}
		applied[i] = true;
	}
	if (r < 0)
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
			if (applied[i] && olds[i][0])
				(void)runtime_cgroup_set(ctx->lxcpath, name,
							 v2 ? keys[i].v2 : keys[i].v1, olds[i]);
	return r < 0 ? r : 0;
}

int api_instance_write_config(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	return write_lxc_config(ctx, inst, reterr);
}

/* ---- GET ---- */

void api_instances_handle_list(struct api_request *req)
{
	const json_t *insts = json_object_get(store_state(req->ctx->store), "instances");
	int recursion = api_recursion(req);
	json_t *list = json_array();
	const char *name;
	json_t *inst;

	json_object_foreach((json_t *)insts, name, inst) {
		if (!streq(json_get_str(inst, "kiva_state", ""), "ready"))
			continue;
		if (recursion <= 0) {
			char url[128];

			snprintf(url, sizeof(url), "/1.0/instances/%s", name);
			json_array_append_new(list, json_string(url));
		} else {
			json_array_append_new(list,
					      api_instance_render(req->ctx, inst, recursion >= 2));
		}
	}
	api_reply_sync(req, list);
}

void api_instance_handle_get(struct api_request *req)
{
	const json_t *inst = find_instance(req, req->params[0]);

	if (!inst)
		return;
	instance_etag(inst, req->etag);
	api_reply_sync(req, api_instance_render(req->ctx, inst, api_recursion(req) >= 1));
}

void api_instance_handle_state_get(struct api_request *req)
{
	const json_t *inst = find_instance(req, req->params[0]);

	if (!inst)
		return;
	api_reply_sync(req, render_state(req->ctx, inst,
					 runtime_state(req->ctx->lxcpath, req->params[0])));
}

/* ---- store helpers ---- */

static int task_apply(struct task *t, json_t *cmd, store_apply_cb cb)
{
	int r = cmd ? store_apply(t->ctx->store, cmd, cb, t) : -ENOMEM;

	json_decref(cmd);
	return r;
}

static json_t *record_with_state(const json_t *inst, const char *kiva_state)
{
	json_t *copy = json_deep_copy(inst);

	if (copy)
		json_object_set_new(copy, "kiva_state", json_string(kiva_state));
	return copy;
}

/* ---- start / stop / freeze ---- */

static void start_step(struct task *t);
static void delete_begin(struct task *t);

static void network_failed_stopped(void *userdata, const struct api_spawn_result *res)
{
	struct task *t = userdata;

	api_nics_stopped(t->ctx, store_instance(t->ctx->store, t->name));
	api_sched_release(t->ctx, t->name, false);
	task_fail(t, "Failed to start instance '%s': %s", t->name, t->errmsg ? t->errmsg : "");
}

static void started(void *userdata, const struct api_spawn_result *res)
{
	struct task *t = userdata;
	struct kiva_error err = {0};

	if (res->exit_status != 0) {
		api_sched_release(t->ctx, t->name, false);
		task_fail(t, "Failed to start instance '%s': %s", t->name,
			  res->message[0] ? res->message : "kiva-helper failed");
		return;
	}
	/* the host side of its NICs: QoS, VLAN, firewall; if that fails, it does not run */
	if (api_nics_started(t->ctx, store_instance(t->ctx->store, t->name), &err) < 0) {
		char *args[] = {"stop", (char *)t->ctx->lxcpath, t->name, "-1", NULL};

		log_warning("Instance '%s': network set-up failed: %s", t->name, err.msg);
		snprintf(t->action, sizeof(t->action), "%s", "");
		t->errmsg = strdup(err.msg);
		if (api_spawn_helper(t->ctx, t->ctx->helper_path, args, -1, -1, -1,
				     network_failed_stopped, t) < 0)
			task_fail(t, "Failed to start instance '%s': %s", t->name, err.msg);
		return;
	}
	api_event_lifecycle(t->ctx, t->restarting ? "instance-restarted" : "instance-started",
			    t->name, NULL);
	task_done(t, NULL);
}

static void start_step(struct task *t)
{
	const json_t *inst = store_instance(t->ctx->store, t->name);
	struct kiva_error err = {0};
	char *args[] = {"start", (char *)t->ctx->lxcpath, t->name, "30", NULL};
	int r;

	if (!inst) {
		task_fail(t, "Instance '%s' not found", t->name);
		return;
	}
	/* its CPUs and memory node (already placed by the request that started it, or kept
	 * across a restart: then this re-places it from its config) */
	r = api_sched_claim(t->ctx, inst, &err);
	if (r < 0) {
		task_fail(t, "Failed to start instance '%s': %s", t->name, err.msg);
		return;
	}
	/* the liblxc config always follows the stored record */
	r = t->config_fresh ? 0 : write_lxc_config(t->ctx, inst, &err);
	if (r < 0) {
		task_fail(t, "%s", err.msg);
		return;
	}
	r = api_spawn_helper(t->ctx, t->ctx->helper_path, args, -1, -1, -1, started, t);
	if (r < 0) {
		api_sched_release(t->ctx, t->name, false);
		task_fail(t, "Failed to start instance '%s': %s", t->name, strerror(-r));
	}
}

static void stopped(void *userdata, const struct api_spawn_result *res)
{
	struct task *t = userdata;

	if (res->exit_status != 0) {
		task_fail(t, "Failed to stop instance '%s': %s", t->name,
			  res->message[0] ? res->message : "kiva-helper failed");
		return;
	}
	api_nics_stopped(t->ctx, store_instance(t->ctx->store, t->name));
	if (t->start_after) {
		t->restarting = true;
		start_step(t); /* a restart keeps its CPUs */
		return;
	}
	api_sched_release(t->ctx, t->name, false);
	api_event_lifecycle(t->ctx, "instance-stopped", t->name, NULL);
	if (json_get_bool(store_instance(t->ctx->store, t->name), "ephemeral", false)) {
		delete_begin(t);
		return;
	}
	task_done(t, NULL);
}

static void stop_step(struct task *t)
{
	char timeout[16];
	char *args[] = {"stop", (char *)t->ctx->lxcpath, t->name, timeout, NULL};
	int r;

	snprintf(timeout, sizeof(timeout), "%d", t->force ? -1 : t->timeout_sec);
	r = api_spawn_helper(t->ctx, t->ctx->helper_path, args, -1, -1, -1, stopped, t);
	if (r < 0)
		task_fail(t, "Failed to stop instance '%s': %s", t->name, strerror(-r));
}

static void frozen(void *userdata, const struct api_spawn_result *res)
{
	struct task *t = userdata;

	if (res->exit_status != 0) {
		task_fail(t, "Failed to %s instance '%s': %s", t->action, t->name,
			  res->message[0] ? res->message : "kiva-helper failed");
		return;
	}
	api_event_lifecycle(t->ctx,
			    streq(t->action, "freeze") ? "instance-paused" : "instance-resumed",
			    t->name, NULL);
	task_done(t, NULL);
}

void api_instance_handle_state_put(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0];
	cleanup_json json_t *body = NULL;
	enum runtime_state st;
	const char *action;
	struct api_op *op;
	struct task *t;
	json_t *jt;
	int timeout = 30;
	bool force;

	if (!find_instance(req, name))
		return;
	if (api_parse_body(req, &body) < 0)
		return;
	action = json_get_str(body, "action", NULL);
	if (!action) {
		api_reply_error(req, 400,
				"Missing action: one of start, stop, restart, freeze, "
				"unfreeze");
		return;
	}
	jt = json_object_get(body, "timeout");
	if (jt && !json_is_integer(jt)) {
		api_reply_error(req, 400, "Invalid timeout: expected an integer (seconds)");
		return;
	}
	/* LXD: -1 waits as long as it takes (a day here), 0 kills at once */
	if (jt)
		timeout = json_integer_value(jt) < 0 ? 86400 : (int)json_integer_value(jt);
	if (jt && json_integer_value(jt) > 3600) {
		api_reply_error(req, 400, "Invalid timeout %lld: at most 3600 seconds",
				(long long)json_integer_value(jt));
		return;
	}
	if (api_body_bool(req, body, "force", false, &force) < 0)
		return;
	if (!instance_claim(req, name))
		return;
	st = runtime_state(ctx->lxcpath, name);
	if (streq(action, "start")) {
		struct kiva_error err = {0};

		if (is_running(st)) {
			api_reply_error(req, 400, "The instance is already running");
			return;
		}
		/* admission and placement now, so a refusal is the request's answer */
		if (api_sched_claim(ctx, store_instance(ctx->store, name), &err) < 0) {
			reply_sched_error(req, &err);
			return;
		}
	} else if (streq(action, "stop") || streq(action, "freeze")) {
		if (!is_running(st)) {
			api_reply_error(req, 400, "The instance is already stopped");
			return;
		}
		if (streq(action, "freeze") && st == RUNTIME_FROZEN) {
			api_reply_error(req, 400, "The instance is already frozen");
			return;
		}
	} else if (streq(action, "restart")) {
		if (!is_running(st)) {
			api_reply_error(req, 400, "The instance isn't running");
			return;
		}
	} else if (streq(action, "unfreeze")) {
		if (st != RUNTIME_FROZEN) {
			api_reply_error(req, 400, "The instance isn't frozen");
			return;
		}
	} else {
		api_reply_error(req, 400,
				"Unknown action '%s': one of start, stop, restart, freeze, "
				"unfreeze",
				action);
		return;
	}
	op = api_op_new(ctx,
			action[0] == 's' && action[2] == 'a' ? "Starting instance"
							     : "Changing instance state",
			instance_resources(name));
	t = op ? task_new(ctx, op, name) : NULL;
	if (!t) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	snprintf(t->action, sizeof(t->action), "%s", action);
	t->timeout_sec = timeout;
	t->force = force;
	task_hold_busy(t, op->description);
	api_reply_async(req, op);
	if (streq(action, "start")) {
		start_step(t);
	} else if (streq(action, "stop")) {
		stop_step(t);
	} else if (streq(action, "restart")) {
		t->start_after = true;
		stop_step(t);
	} else {
		char *args[] = {(char *)action, (char *)ctx->lxcpath, t->name, NULL};
		int r = api_spawn_helper(ctx, ctx->helper_path, args, -1, -1, -1, frozen, t);

		if (r < 0)
			task_fail(t, "Failed to %s instance '%s': %s", action, name, strerror(-r));
	}
}

/* ---- create ---- */

static void create_ready(void *userdata, int status, const char *errmsg);

static void unreserve(struct api_ctx *ctx, const char *name)
{
	json_object_del(ctx->creating, name);
}

/* Undoes a half-made create (the files; there is no record) and fails the operation. */
static void create_rollback(struct task *t, const char *msg)
{
	cleanup_free char *rel = strf("containers/%s", t->name);

	log_warning("Creating '%s' failed, rolling back: %s", t->name, msg);
	api_sched_release(t->ctx, t->name, true);
	(void)runtime_remove(t->ctx->lxcpath, t->name);
	if (rel)
		(void)storage_volume_delete(t->ctx->pool, rel, NULL);
	(void)api_snapshots_dematerialize(t->ctx, t->name, NULL);
	unreserve(t->ctx, t->name);
	task_fail(t, "%s", msg);
}

/* Making an instance's files: the image's (or a copy's source) volume cloned (a btrfs snapshot: a transaction commit,
 * 2-20 ms while other instances start), its disk limit and its liblxc config. Planned on the loop,
 * done in libuv's thread pool for a create (the loop keeps answering and delivering events), or
 * inline by reconcile. */
struct materialize {
	uv_work_t work;
	struct task *t;
	struct storage_pool *pool;
	const char *lxcpath;
	char src[256], dst[128];
	char freeze[64]; /* a copy: the source instance, frozen around the clone if it runs */
	size_t nsnaps;
	char (*snaps)[2][256]; /* a copy: snapshot volumes cloned read-only, from → to */
	struct disk_limit limit;
	struct rendered_config cfg;
	struct kiva_error err;
	int r;
};

static void materialize_free(struct materialize *m)
{
	if (!m)
		return;
	rendered_config_done(&m->cfg);
	free(m->snaps);
	free(m);
}

static struct materialize *materialize_new(struct api_ctx *ctx, const json_t *inst, const char *src,
					   struct kiva_error *reterr)
{
	const char *name = json_get_str(inst, "name", "");
	struct materialize *m = calloc(1, sizeof(*m));

	if (!m) {
		kiva_error_set(reterr, -ENOMEM, "Out of memory");
		return NULL;
	}
	m->pool = ctx->pool;
	m->lxcpath = ctx->lxcpath;
	m->work.data = m;
	if ((size_t)snprintf(m->src, sizeof(m->src), "%s", src) >= sizeof(m->src) ||
	    (size_t)snprintf(m->dst, sizeof(m->dst), "containers/%s", name) >= sizeof(m->dst)) {
		kiva_error_set(reterr, -ENAMETOOLONG, "Name too long");
		materialize_free(m);
		return NULL;
	}
	if (disk_limit_of(inst, &m->limit, reterr) < 0 ||
	    config_render(ctx, inst, &m->cfg, reterr) < 0) {
		materialize_free(m);
		return NULL;
	}
	return m;
}

static struct materialize *materialize_plan(struct api_ctx *ctx, const json_t *inst,
					    struct kiva_error *reterr)
{
	const char *fp = json_get_str(json_object_get(inst, "config"), "volatile.base_image", "");
	char src[256];

	if (!store_image(ctx->store, fp)) {
		kiva_error_set(reterr, -ENOENT, "Image '%s' not found", fp);
		return NULL;
	}
	snprintf(src, sizeof(src), "images/%.200s", fp);
	return materialize_new(ctx, inst, src, reterr);
}

/* A copy's files: the source volume cloned (frozen around it when the source runs), its
 * snapshots as read-only snapshots, then the liblxc config. */
static struct materialize *materialize_plan_copy(struct task *t, struct kiva_error *reterr)
{
	const char *src_name = t->copy_src + strcspn(t->copy_src, "/") + 1;
	struct materialize *m = materialize_new(t->ctx, t->inst, t->copy_src, reterr);
	char iname[64];
	size_t i;
	json_t *p;

	if (!m)
		return NULL;
	snprintf(iname, sizeof(iname), "%.*s", (int)strcspn(src_name, "/"), src_name);
	if (startswith(t->copy_src, "containers/"))
		snprintf(m->freeze, sizeof(m->freeze), "%s", iname);
	m->snaps = calloc(json_array_size(t->copy_snaps) + 1, sizeof(*m->snaps));
	if (!m->snaps) {
		kiva_error_set(reterr, -ENOMEM, "Out of memory");
		materialize_free(m);
		return NULL;
	}
	json_array_foreach(t->copy_snaps, i, p) {
		snprintf(m->snaps[i][0], sizeof(m->snaps[i][0]), "snapshots/%s/%s", iname,
			 json_get_str(p, "src", ""));
		snprintf(m->snaps[i][1], sizeof(m->snaps[i][1]), "snapshots/%s/%s", t->name,
			 json_get_str(p, "dst", ""));
	}
	m->nsnaps = json_array_size(t->copy_snaps);
	return m;
}

/* The clone of m->src, the source frozen around it when it is a running instance. */
static int materialize_clone(struct materialize *m)
{
	char errbuf[256];
	bool thaw = false;
	int r;

	if (m->freeze[0] && runtime_state(m->lxcpath, m->freeze) == RUNTIME_RUNNING) {
		r = runtime_freeze(m->lxcpath, m->freeze, errbuf, sizeof(errbuf));
		if (r < 0)
			return kiva_error_set(&m->err, r, "%s", errbuf);
		thaw = true;
	}
	r = storage_volume_clone(m->pool, m->src, m->dst, &m->err);
	if (thaw && runtime_unfreeze(m->lxcpath, m->freeze, errbuf, sizeof(errbuf)) < 0)
		log_error("Instance '%s' stays frozen after a copy: %s", m->freeze, errbuf);
	return r;
}

/* Idempotent (a leftover volume is replaced). Thread-safe: no JSON, no loop, no store. */
static void materialize_run(struct materialize *m)
{
	m->r = 0;
	if (storage_volume_exists(m->pool, m->dst))
		m->r = storage_volume_delete(m->pool, m->dst, &m->err);
	if (m->r == 0)
		m->r = materialize_clone(m);
	for (size_t i = 0; m->r == 0 && i < m->nsnaps; i++)
		m->r = storage_volume_snapshot(m->pool, m->snaps[i][0], m->snaps[i][1], true,
					       &m->err);
	/* btrfs clones inherit their source's qgroup limit: set (or clear) ours */
	if (m->r == 0)
		m->r = disk_limit_apply(m->pool, m->dst, &m->limit, &m->err);
	if (m->r == 0)
		m->r = config_write(m->lxcpath, &m->cfg, &m->err);
	/* its first start writes /etc/hostname (runtime_start) */
	if (m->r == 0) {
		cleanup_free char *mark =
			strf("%s/%s/%s", m->lxcpath, m->cfg.name, RUNTIME_HOSTNAME_PENDING);

		m->r = mark ? write_file_replace(mark, "", 0, 0644) : -ENOMEM;
	}
	/* loads liblxc's handle here rather than on the loop (the start that follows asks it) */
	if (m->r == 0)
		(void)runtime_state(m->lxcpath, m->cfg.name);
	if (m->r < 0 && !m->err.msg[0])
		kiva_error_set(&m->err, m->r, "%s", strerror(-m->r));
}

/* Makes the rootfs and the liblxc config of a record in state "creating", inline (reconcile
 * after a crash). */
int api_instance_materialize(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr)
{
	struct materialize *m = materialize_plan(ctx, inst, reterr);
	int r;

	if (!m)
		return reterr ? reterr->code : -EINVAL;
	materialize_run(m);
	r = m->r;
	if (r < 0 && reterr)
		*reterr = m->err;
	materialize_free(m);
	return r;
}

static void materialize_work(uv_work_t *w)
{
	api_work_thread_begin();
	materialize_run(w->data);
}

static void materialized(uv_work_t *w, int status)
{
	struct materialize *m = w->data;
	struct task *t = m->t;
	json_t *ready;
	int r;

	t->ctx->pending_tasks--;
	if (status < 0 || m->r < 0) {
		create_rollback(t, status < 0 ? uv_strerror(status) : m->err.msg);
		materialize_free(m);
		return;
	}
	materialize_free(m);
	ready = record_with_state(t->inst, "ready");
	r = task_apply(t, ready ? store_cmd_instance_create(ready) : NULL, create_ready);
	json_decref(ready);
	if (r < 0)
		create_rollback(t, "Failed to record the instance");
}

static void create_ready(void *userdata, int status, const char *errmsg)
{
	struct task *t = userdata;

	if (status < 0) {
		create_rollback(t, errmsg ? errmsg : "Failed to record the instance");
		return;
	}
	unreserve(t->ctx, t->name);
	api_event_lifecycle(t->ctx, "instance-created", t->name, NULL);
	if (t->start_after) {
		task_hold_busy(t, "Creating instance");
		t->config_fresh = true; /* written by materialize from the same record */
		start_step(t);
		return;
	}
	task_done(t, NULL);
}

static void copy_image_config(json_t *config, const json_t *image)
{
	const json_t *props = json_object_get(image, "properties");
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)props, key, v) {
		char k[128];

		if (!json_is_string(v))
			continue;
		snprintf(k, sizeof(k), "image.%s", key);
		if (!json_object_get(config, k))
			json_object_set(config, k, v);
	}
}

/* ---- create by copy ---- */

/* source {"type": "copy", "source": "c1" or "c1/snap"}: the record to copy from (the instance's,
 * or the snapshot's), or NULL after replying. */
static const json_t *copy_source(struct api_request *req, const json_t *source,
				 const json_t **ret_inst, const char **ret_snap)
{
	const char *src = json_get_str(source, "source", NULL);
	char iname[128];
	const char *slash;
	const json_t *inst, *snap;

	if (!src || !*src) {
		api_reply_error(req, 400,
				"Missing source: {\"type\": \"copy\", \"source\": "
				"\"INSTANCE[/SNAPSHOT]\"}");
		return NULL;
	}
	if (json_get_str(source, "mode", NULL) &&
	    !streq(json_get_str(source, "mode", ""), "pull")) {
		api_reply_error(req, 400, "Unsupported copy mode '%s': only local copies",
				json_get_str(source, "mode", ""));
		return NULL;
	}
	slash = strchr(src, '/');
	snprintf(iname, sizeof(iname), "%.*s", slash ? (int)(slash - src) : (int)strlen(src), src);
	inst = store_instance(req->ctx->store, iname);
	if (!inst || !streq(json_get_str(inst, "kiva_state", ""), "ready")) {
		api_reply_error(req, 404, "Instance '%s' not found", iname);
		return NULL;
	}
	*ret_inst = inst;
	*ret_snap = NULL;
	if (!slash)
		return inst;
	snap = json_object_get(json_object_get(inst, "snapshots"), slash + 1);
	if (!snap) {
		api_reply_error(req, 404, "Snapshot '%s' of instance '%s' not found", slash + 1,
				iname);
		return NULL;
	}
	*ret_snap = slash + 1;
	return snap;
}

/* Which volumes a copy clones: the instance's (or the snapshot's), and, for an instance
 * without "instance_only", its snapshots with their records. */
static int copy_plan(struct task *t, const json_t *src_inst, const char *src_snap,
		     const json_t *from, const json_t *body, struct kiva_error *reterr)
{
	const char *src_name = json_get_str(src_inst, "name", "");
	const json_t *source = json_object_get(body, "source");
	json_t *snaps = json_object();
	const char *key;
	json_t *snap;

	if (src_snap)
		snprintf(t->copy_src, sizeof(t->copy_src), "snapshots/%s/%s", src_name,
			 json_get_str(from, "volume", ""));
	else
		snprintf(t->copy_src, sizeof(t->copy_src), "containers/%s", src_name);
	t->copy_snaps = json_array();
	if (!snaps || !t->copy_snaps) {
		json_decref(snaps);
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	if (!src_snap && !json_is_true(json_object_get(source, "instance_only"))) {
		json_object_foreach((json_t *)json_object_get(src_inst, "snapshots"), key, snap) {
			char id[17];
			json_t *rec = json_deep_copy(snap);

			if (!rec || random_hex(id, 8) < 0) {
				json_decref(rec);
				json_decref(snaps);
				return kiva_error_set(reterr, -ENOMEM, "Out of memory");
			}
			json_object_set_new(rec, "volume", json_string(id));
			json_object_set_new(snaps, key, rec);
			json_array_append_new(t->copy_snaps,
					      json_pack("{s:s,s:s}", "src",
							json_get_str(snap, "volume", ""), "dst",
							id));
		}
	}
	json_object_set_new(t->inst, "snapshots", snaps);
	return 0;
}

int api_instance_commit_new(struct api_ctx *ctx, struct api_op *op, json_t *inst,
			    struct kiva_error *reterr)
{
	const char *name = json_get_str(inst, "name", "");
	struct task *t = task_new(ctx, op, name);
	json_t *ready;
	int r;

	if (!t) {
		api_op_fail(op, "Out of memory");
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	t->inst = json_incref(inst);
	if (json_object_set(ctx->creating, name, inst) < 0 ||
	    apply_disk_limit(ctx, inst, reterr) < 0 || write_lxc_config(ctx, inst, reterr) < 0) {
		create_rollback(t, reterr && reterr->msg[0] ? reterr->msg : "Out of memory");
		return -EIO;
	}
	ready = record_with_state(inst, "ready");
	r = task_apply(t, ready ? store_cmd_instance_create(ready) : NULL, create_ready);
	json_decref(ready);
	if (r < 0) {
		create_rollback(t, "Failed to record the instance");
		return kiva_error_set(reterr, r, "Failed to record the instance");
	}
	return 0;
}

void api_instances_handle_create(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	cleanup_json json_t *body = NULL, *inst = NULL;
	struct kiva_error err = {0};
	const json_t *source, *image, *devices, *profiles;
	const char *name, *stype, *type, *ref;
	const json_t *copy_from = NULL, *copy_inst = NULL;
	const char *copy_snap = NULL;
	json_t *config;
	struct api_op *op;
	struct task *t;
	char now[40], idmap[16];
	bool ephemeral, start;
	int r;

	if (req->upload) {
		api_backups_import(req); /* a backup tarball (lxc import) */
		return;
	}
	if (api_parse_body(req, &body) < 0)
		return;
	name = json_get_str(body, "name", NULL);
	if (proto_instance_name_validate(name, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	if (store_instance(ctx->store, name) || json_object_get(ctx->creating, name)) {
		api_reply_error(req, 409, "Instance '%s' already exists", name);
		return;
	}
	type = json_get_str(body, "type", "container");
	if (!streq(type, "container") && *type) {
		api_reply_error(req, 400, "Unsupported instance type '%s': only containers", type);
		return;
	}
	config = json_object_get(body, "config");
	/* lxc copy sends the source's config back, volatile keys included: the copy gets its
	 * own, so they are dropped rather than refused */
	if (json_is_object(config) &&
	    streq(json_get_str(json_object_get(body, "source"), "type", ""), "copy")) {
		const char *key;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(config, tmp, key, v)
			if (startswith(key, "volatile."))
				json_object_del(config, key);
	}
	if (proto_config_validate(config, &ctx->proto_host, false, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	devices = json_object_get(body, "devices");
	if (api_devices_validate(ctx, name, devices, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	profiles = json_object_get(body, "profiles");
	if (json_is_null(profiles))
		profiles = NULL; /* lxc sends null: the default profile */
	if (profiles &&
	    (!json_is_array(profiles) || json_array_size(profiles) > 1 ||
	     (json_array_size(profiles) == 1 &&
	      !streq(json_string_value(json_array_get(profiles, 0)) ?: "", "default")))) {
		api_reply_error(req, 400,
				"Only the 'default' profile exists (its eth0 is a NIC on "
				"the default network); [] means none");
		return;
	}
	source = json_object_get(body, "source");
	stype = json_get_str(source, "type", NULL);
	if (!source || !stype) {
		api_reply_error(req, 400, "Missing source: {\"type\": \"image\", \"alias\": NAME}");
		return;
	}
	if (streq(stype, "copy")) {
		copy_from = copy_source(req, source, &copy_inst, &copy_snap);
		if (!copy_from)
			return;
		image = NULL;
	} else if (!streq(stype, "image")) {
		api_reply_error(req, 400, "Unsupported source type '%s': 'image' or 'copy'", stype);
		return;
	} else {
		ref = json_get_str(source, "alias", NULL);
		if (!ref)
			ref = json_get_str(source, "fingerprint", NULL);
		if (!ref) {
			api_reply_error(req, 400, "Missing source alias or fingerprint");
			return;
		}
		image = api_image_resolve(ctx, ref);
		if (!image) {
			api_reply_error(req, 404, "Image '%s' not found", ref);
			return;
		}
	}

	if (api_body_bool(req, body, "ephemeral", false, &ephemeral) < 0 ||
	    api_body_bool(req, body, "start", false, &start) < 0)
		return;
	now_rfc3339(now);
	snprintf(idmap, sizeof(idmap), "%u", ctx->idmap_base);
	inst = json_pack("{s:s,s:s,s:s,s:{},s:{},s:b,s:[s],s:s,s:s,s:s}", "name", name, "type",
			 "container", "architecture",
			 image ? json_get_str(image, "architecture", "x86_64")
			       : json_get_str(copy_from, "architecture", "x86_64"),
			 "config", "devices", "ephemeral", ephemeral, "profiles", "default",
			 "description", json_get_str(body, "description", ""), "created_at", now,
			 "last_used_at", now);
	if (!inst) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	if (copy_from) {
		/* the source's config and devices, under the request's; the server's
		 * volatile keys start again (new MACs and addresses), but the image stays */
		json_t *cfg = json_object_get(inst, "config");
		const char *key;
		json_t *v;

		json_object_foreach((json_t *)json_object_get(copy_from, "config"), key, v)
			if (!startswith(key, "volatile.") || streq(key, "volatile.base_image"))
				json_object_set(cfg, key, v);
		json_object_foreach((json_t *)config, key, v)
			json_object_set(cfg, key, v);
		json_object_set_new(
			inst, "devices",
			json_deep_copy(devices ? devices : json_object_get(copy_from, "devices")));
		if (!profiles && json_object_get(copy_from, "profiles"))
			json_object_set(inst, "profiles", json_object_get(copy_from, "profiles"));
		if (!devices &&
		    api_devices_validate(ctx, name, json_object_get(inst, "devices"), &err) < 0) {
			api_reply_kiva_error(req, &err);
			return;
		}
	} else if (config) {
		json_object_set_new(inst, "config", json_deep_copy(config));
	}
	if (devices)
		json_object_set_new(inst, "devices", json_deep_copy(devices));
	if (profiles)
		json_object_set_new(inst, "profiles", json_deep_copy(profiles));
	if (image) {
		copy_image_config(json_object_get(inst, "config"), image);
		json_set_str(json_object_get(inst, "config"), "volatile.base_image",
			     json_get_str(image, "fingerprint", ""));
	}
	json_set_str(json_object_get(inst, "config"), "volatile.idmap.base", idmap);
	if (api_nics_assign(ctx, inst, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	/* admission: placed now when it starts at once (materialize renders the placement) or
	 * keeps its CPUs while stopped (limits.cpu.reserve), otherwise only checked: a stopped
	 * instance holds no CPUs */
	if ((start || api_sched_reserves(inst) ? api_sched_claim(ctx, inst, &err)
					       : api_sched_check(ctx, inst, &err)) < 0) {
		reply_sched_error(req, &err);
		return;
	}

	op = api_op_new(ctx, "Creating instance", instance_resources(name));
	t = op ? task_new(ctx, op, name) : NULL;
	if (!t) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	t->inst = json_incref(inst);
	t->start_after = start;
	if (copy_from) {
		r = copy_plan(t, copy_inst, copy_snap, copy_from, body, &err);
		if (r < 0) {
			api_reply_kiva_error(req, &err);
			task_free(t);
			return;
		}
	}
	/* the files first, then one commit for the record; the pending record reserves its name
	 * and its addresses until it is committed */
	if (json_object_set(ctx->creating, name, inst) < 0) {
		api_reply_error(req, 500, "Out of memory");
		create_rollback(t, "Out of memory");
		return;
	}
	{
		struct materialize *m = copy_from ? materialize_plan_copy(t, &err)
						  : materialize_plan(ctx, inst, &err);

		if (!m) {
			api_reply_kiva_error(req, &err);
			create_rollback(t, err.msg[0] ? err.msg : "Out of memory");
			return;
		}
		m->t = t;
		r = uv_queue_work(ctx->loop, &m->work, materialize_work, materialized);
		if (r < 0) {
			api_reply_error(req, 500, "Failed to queue the instance's creation: %s",
					uv_strerror(r));
			materialize_free(m);
			create_rollback(t, "Failed to queue the instance's creation");
			return;
		}
		ctx->pending_tasks++;
		api_reply_async(req, op);
	}
}

/* ---- delete ---- */

static void delete_done(void *userdata, int status, const char *errmsg)
{
	struct task *t = userdata;

	if (status < 0) {
		task_fail(t, "Failed to delete instance '%s': %s", t->name, errmsg);
		return;
	}
	api_nics_stopped(t->ctx, NULL); /* its addresses leave the ACL selectors */
	api_sched_release(t->ctx, t->name, true);
	api_event_lifecycle(t->ctx, "instance-deleted", t->name, NULL);
	task_done(t, NULL);
}

/* Removes the liblxc dir, the rootfs and the logs of a record in state "deleting". Idempotent. */
int api_instance_dematerialize(struct api_ctx *ctx, const char *name, struct kiva_error *reterr)
{
	/* a container that stopped by itself may have left its upload ifb */
	{
		const json_t *inst = store_instance(ctx->store, name);
		cleanup_json json_t *nics = inst ? api_instance_nics(ctx, inst) : NULL;
		size_t i;
		json_t *nic;

		json_array_foreach(nics, i, nic)
			(void)net_qos_clear(json_get_str(nic, "host_name", ""));
	}
	cleanup_free char *rel = strf("containers/%s", name);
	cleanup_free char *logs = strf("%s/%s", ctx->logs_dir, name);
	int r;

	if (!rel || !logs)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = runtime_remove(ctx->lxcpath, name);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to remove the container config: %s",
				      strerror(-r));
	r = storage_volume_delete(ctx->pool, rel, reterr);
	if (r < 0)
		return r;
	r = api_snapshots_dematerialize(ctx, name, reterr);
	if (r < 0)
		return r;
	api_backups_forget(ctx, name);
	(void)rm_rf(logs);
	return 0;
}

static void delete_marked(void *userdata, int status, const char *errmsg)
{
	struct task *t = userdata;
	struct kiva_error err = {0};

	if (status < 0) {
		task_fail(t, "Failed to delete instance '%s': %s", t->name, errmsg);
		return;
	}
	if (api_instance_dematerialize(t->ctx, t->name, &err) < 0) {
		task_fail(t, "Failed to delete instance '%s': %s", t->name, err.msg);
		return;
	}
	if (task_apply(t, store_cmd_instance_delete(t->name), delete_done) < 0)
		task_fail(t, "Failed to delete instance '%s'", t->name);
}

static void delete_begin(struct task *t)
{
	const json_t *inst = store_instance(t->ctx->store, t->name);
	json_t *marked = inst ? record_with_state(inst, "deleting") : NULL;
	int r;

	if (!marked) {
		task_fail(t, "Instance '%s' not found", t->name);
		return;
	}
	r = task_apply(t, store_cmd_instance_put(marked), delete_marked);
	json_decref(marked);
	if (r < 0)
		task_fail(t, "Failed to delete instance '%s': %s", t->name, strerror(-r));
}

void api_instance_handle_delete(struct api_request *req)
{
	const char *name = req->params[0];
	struct api_op *op;
	struct task *t;

	if (!find_instance(req, name))
		return;
	if (is_running(runtime_state(req->ctx->lxcpath, name))) {
		api_reply_error(req, 400, "Instance is running: stop it first (or use --force)");
		return;
	}
	if (!instance_claim(req, name))
		return;
	op = api_op_new(req->ctx, "Deleting instance", instance_resources(name));
	t = op ? task_new(req->ctx, op, name) : NULL;
	if (!t) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	task_hold_busy(t, op->description);
	api_reply_async(req, op);
	delete_begin(t);
}

/* ---- PUT / PATCH: config changes, applied live to a running instance ---- */

/* Changes to one instance run one at a time: each reads the record, applies limits live and
 * commits; a change that arrives meanwhile waits its turn (deferred request), so concurrent
 * PATCHes are all kept instead of the last writer winning. */
struct update_waiter {
	struct update_waiter *next;
	struct api_request *req;
	bool patch;
};

struct api_update_queue {
	struct api_update_queue *next;
	char name[64];
	struct update_waiter *head, **tail;
};

static void update_run(struct api_request *req, bool patch);

static struct api_update_queue **queue_find(struct api_ctx *ctx, const char *name)
{
	struct api_update_queue **pp;

	for (pp = &ctx->updates; *pp; pp = &(*pp)->next)
		if (streq((*pp)->name, name))
			return pp;
	return pp;
}

/* Takes the instance's turn, or queues req (deferred) and returns false. */
static bool update_lock(struct api_request *req, const char *name, bool patch)
{
	struct api_update_queue **pp = queue_find(req->ctx, name), *q = *pp;
	struct update_waiter *w;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return true; /* no memory for a queue: run unserialized rather than fail */
		snprintf(q->name, sizeof(q->name), "%s", name);
		q->tail = &q->head;
		*pp = q;
		return true;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		api_reply_error(req, 500, "Out of memory");
		return false;
	}
	w->req = req;
	w->patch = patch;
	*q->tail = w;
	q->tail = &w->next;
	api_defer(req);
	return false;
}

/* Ends the instance's turn and starts the next waiting change, if any. */
static void update_unlock(struct api_ctx *ctx, const char *name)
{
	struct api_update_queue **pp = queue_find(ctx, name), *q = *pp;

	while (q && q->head) {
		struct update_waiter *w = q->head;
		struct api_request *req = w->req;
		bool patch = w->patch;

		q->head = w->next;
		if (!q->head)
			q->tail = &q->head;
		free(w);
		if (!req->conn) { /* the client went away while waiting */
			api_request_free(req);
			continue;
		}
		update_run(req, patch); /* keeps the turn; unlocks again when done */
		return;
	}
	if (q) {
		*pp = q->next;
		free(q);
	}
}

/* ETag of an instance: what a PUT replaces. */
static void instance_etag(const json_t *stored, char out[static 80])
{
	cleanup_json json_t *doc =
		json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "config", json_object_get(stored, "config"),
			  "devices", json_object_get(stored, "devices"), "description",
			  json_object_get(stored, "description"), "ephemeral",
			  json_object_get(stored, "ephemeral"), "profiles",
			  json_object_get(stored, "profiles"));
	cleanup_free char *text = doc ? json_dump_compact(doc) : NULL;
	struct sha256_ctx h;

	out[0] = 0;
	if (!text)
		return;
	sha256_init(&h);
	sha256_update(&h, text, strlen(text));
	sha256_final_hex(&h, out);
}

struct update {
	struct task *t;
	struct api_request *req; /* PATCH: answered when committed; NULL for PUT (operation) */
	json_t *old_config;
	json_t *old_record; /* for the NIC diff of a hot-plug */
	bool live;
	json_t *plug; /* NICs still to hot-plug (array), after the commit */
	size_t next_plug;
	int pid;
};

static void update_finish(struct update *u, int status, const char *msg)
{
	struct api_ctx *ctx = u->t->ctx;
	char name[64];

	snprintf(name, sizeof(name), "%s", u->t->name);
	if (status >= 0)
		api_event_lifecycle(ctx, "instance-updated", name, NULL);
	if (u->req) {
		if (status < 0)
			api_reply_error(u->req, status == -EINVAL ? 400 : 500, "%s", msg);
		else
			api_reply_sync(u->req, NULL);
		task_free(u->t);
	} else if (status < 0) {
		task_fail(u->t, "%s", msg);
	} else {
		task_done(u->t, NULL);
	}
	json_decref(u->old_config);
	json_decref(u->old_record);
	json_decref(u->plug);
	free(u);
	json_object_del(ctx->creating, name);
	update_unlock(ctx, name);
}

/* ---- NIC hot-plug on a running instance, after the change was recorded ---- */

static bool nic_same(const json_t *a, const json_t *b)
{
	/* everything but QoS limits needs a new interface */
	static const char *const keys[] = {"name", "network", "host_name", "hwaddr",
					   "ipv4", "mtu",     "vlan",	   "vlan.tagged"};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!streq(json_get_str(a, keys[i], ""), json_get_str(b, keys[i], "")))
			return false;
	return true;
}

static const json_t *nic_by_device(const json_t *nics, const char *dev)
{
	size_t i;
	json_t *nic;

	json_array_foreach(nics, i, nic)
		if (streq(json_get_str(nic, "device", ""), dev))
			return nic;
	return NULL;
}

static void hotplug_next(struct update *u);

static void hotplug_configured(void *userdata, const struct api_spawn_result *res)
{
	struct update *u = userdata;

	if (res->exit_status != 0) {
		const json_t *nic = json_array_get(u->plug, u->next_plug - 1);
		char msg[600];

		(void)net_link_delete(json_get_str(nic, "host_name", ""));
		snprintf(msg, sizeof(msg), "Recorded, but hot-plugging %s failed: %s",
			 json_get_str(nic, "device", ""), res->message);
		update_finish(u, -EIO, msg);
		return;
	}
	hotplug_next(u);
}

static void hotplug_next(struct update *u)
{
	struct api_ctx *ctx = u->t->ctx;
	const json_t *nic = json_array_get(u->plug, u->next_plug++);
	struct kiva_error err = {0};
	char peer[20], pid[16], cidr[40] = "", *gw;
	int64_t mtu = 0;
	int r;

	if (!nic) {
		if (api_nics_started(ctx, store_instance(ctx->store, u->t->name), &err) < 0) {
			update_finish(u, err.code ? err.code : -EIO, err.msg);
			return;
		}
		update_finish(u, 0, NULL);
		return;
	}
	snprintf(peer, sizeof(peer), "%sp", json_get_str(nic, "host_name", ""));
	if (json_get_str(nic, "mtu", NULL))
		(void)parse_int64(json_get_str(nic, "mtu", ""), 0, 65535, &mtu);
	r = net_veth_create_for(json_get_str(nic, "host_name", ""), peer,
				json_get_str(nic, "bridge", ""), json_get_str(nic, "hwaddr", NULL),
				(unsigned)mtu, ctx->link_tag, u->pid, &err);
	if (r < 0) {
		char msg[600];

		snprintf(msg, sizeof(msg), "Recorded, but hot-plugging %s failed: %s",
			 json_get_str(nic, "device", ""), err.msg);
		update_finish(u, r, msg);
		return;
	}
	snprintf(pid, sizeof(pid), "%d", u->pid);
	if (json_get_str(nic, "ipv4", NULL))
		snprintf(cidr, sizeof(cidr), "%s/%lld", json_get_str(nic, "ipv4", ""),
			 json_get_int(nic, "prefix", 24));
	gw = (char *)json_get_str(nic, "gateway", "-");
	{
		char *args[] = {"nic-configure",
				pid,
				peer,
				(char *)json_get_str(nic, "name", ""),
				cidr[0] ? cidr : (char *)"-",
				gw,
				NULL};

		r = api_spawn_helper(ctx, ctx->archive_helper_path, args, -1, -1, -1,
				     hotplug_configured, u);
	}
	if (r < 0)
		update_finish(u, r, "Failed to run kiva-helper");
}

static void hotplug_begin(struct update *u)
{
	struct api_ctx *ctx = u->t->ctx;
	cleanup_json json_t *before = api_instance_nics(ctx, u->old_record);
	cleanup_json json_t *after = api_instance_nics(ctx, u->t->inst);
	size_t i;
	json_t *nic;

	u->plug = json_array();
	u->pid = runtime_init_pid(ctx->lxcpath, u->t->name);
	if (!before || !after || !u->plug || u->pid <= 0) {
		update_finish(u, u->pid <= 0 ? 0 : -ENOMEM, "Out of memory");
		return;
	}
	/* unplug what went away or changed */
	json_array_foreach(before, i, nic) {
		const json_t *now = nic_by_device(after, json_get_str(nic, "device", ""));

		if (!now || !nic_same(nic, now)) {
			(void)net_qos_clear(json_get_str(nic, "host_name", ""));
			(void)net_link_delete(json_get_str(nic, "host_name", ""));
		}
	}
	json_array_foreach(after, i, nic) {
		const json_t *was = nic_by_device(before, json_get_str(nic, "device", ""));

		if (!was || !nic_same(nic, was)) {
			json_array_append(u->plug, nic);
		} else if (!streq(json_get_str(nic, "limits.ingress", ""),
				  json_get_str(was, "limits.ingress", "")) ||
			   !streq(json_get_str(nic, "limits.egress", ""),
				  json_get_str(was, "limits.egress", ""))) {
			/* same interface, new rates (0 removes a limit) */
			struct kiva_error err = {0};
			uint64_t in = 0, out = 0;

			(void)net_rate_parse(json_get_str(nic, "limits.ingress", "0"), &in, NULL);
			(void)net_rate_parse(json_get_str(nic, "limits.egress", "0"), &out, NULL);
			if (net_qos_apply(json_get_str(nic, "host_name", ""), in, out,
					  ctx->link_tag, &err) < 0)
				log_warning("Instance '%s': QoS: %s", u->t->name, err.msg);
		}
	}
	hotplug_next(u);
}

static void update_committed(void *userdata, int status, const char *errmsg)
{
	struct update *u = userdata;
	struct kiva_error err = {0};

	if (status < 0) {
		if (u->live)
			(void)apply_live_limits(u->t->ctx, u->t->name,
						json_object_get(u->t->inst, "config"),
						u->old_config, NULL);
		(void)api_sched_update(u->t->ctx, u->t->inst, u->old_record, u->live, NULL);
		if (!json_equal(
			    json_object_get(u->old_config, "limits.disk"),
			    json_object_get(json_object_get(u->t->inst, "config"), "limits.disk")))
			(void)apply_disk_limit(u->t->ctx, u->old_record, NULL);
		update_finish(u, status, errmsg ? errmsg : "Failed to record the change");
		return;
	}
	/* the next start uses the new limits */
	if (write_lxc_config(u->t->ctx, u->t->inst, &err) < 0) {
		update_finish(u, err.code, err.msg);
		return;
	}
	if (u->live) {
		hotplug_begin(u);
		return;
	}
	if (api_net_sync(u->t->ctx, &err) < 0)
		log_warning("Failed to update the nftables rules: %s", err.msg);
	update_finish(u, 0, NULL);
}

static void update_apply_cb(void *userdata, int status, const char *errmsg)
{
	update_committed(userdata, status, errmsg);
}

static bool update_start(struct api_request *req, bool patch);

/* A running instance's NIC that gains VLAN settings: check the bridge can filter VLANs before
 * the change is recorded (hot-plug happens after the commit). */
static int nics_need_vlan(struct api_ctx *ctx, const json_t *before_rec, const json_t *after_rec,
			  struct kiva_error *reterr)
{
	cleanup_json json_t *before = api_instance_nics(ctx, before_rec);
	cleanup_json json_t *after = api_instance_nics(ctx, after_rec);
	size_t i;
	json_t *nic;

	json_array_foreach(after, i, nic) {
		const json_t *was = nic_by_device(before, json_get_str(nic, "device", ""));
		int r;

		if (!json_get_str(nic, "vlan", NULL) && !json_get_str(nic, "vlan.tagged", NULL))
			continue;
		if (was && streq(json_get_str(was, "vlan", ""), json_get_str(nic, "vlan", "")) &&
		    streq(json_get_str(was, "vlan.tagged", ""),
			  json_get_str(nic, "vlan.tagged", "")))
			continue;
		r = net_vlan_enable(json_get_str(nic, "bridge", ""), reterr);
		if (r < 0)
			return r;
	}
	return 0;
}

static void update_run(struct api_request *req, bool patch)
{
	char name[64];

	snprintf(name, sizeof(name), "%s", req->params[0]);
	if (!update_start(req, patch))
		update_unlock(req->ctx, name);
}

static void handle_update(struct api_request *req, bool patch)
{
	if (!find_instance(req, req->params[0]))
		return;
	if (update_lock(req, req->params[0], patch))
		update_run(req, patch);
}

/* Runs one change. Returns true when the commit is under way (update_finish unlocks), false when
 * it answered at once. */
/* ---- restore: PUT /1.0/instances/NAME {"restore": SNAP} ----
 * stop (if running) → clone the snapshot to containers/.restore-NAME → swap it with
 * containers/NAME (renames) → the snapshot's config recorded → start again if it ran.
 * A cut swap is finished by api_instances_reconcile_restores(). */

static void restore_recorded(void *userdata, int status, const char *errmsg)
{
	struct task *t = userdata;
	struct kiva_error err = {0};

	if (status < 0) {
		task_fail(t, "Failed to record the restored config: %s",
			  errmsg ? errmsg : strerror(-status));
		return;
	}
	if (write_lxc_config(t->ctx, store_instance(t->ctx->store, t->name), &err) < 0 ||
	    apply_disk_limit(t->ctx, store_instance(t->ctx->store, t->name), &err) < 0) {
		task_fail(t, "%s", err.msg);
		return;
	}
	api_event_lifecycle(t->ctx, "instance-restored", t->name, t->snap);
	if (t->start_after) {
		t->config_fresh = true;
		start_step(t);
		return;
	}
	task_done(t, NULL);
}

static int swap_volumes(struct api_ctx *ctx, const char *name, const char *snap_volume,
			struct kiva_error *reterr)
{
	cleanup_free char *live = strf("containers/%s", name);
	cleanup_free char *tmp = strf("containers/.restore-%s", name);
	cleanup_free char *old = strf("containers/.old-%s", name);
	int r;

	if (!live || !tmp || !old)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	(void)storage_volume_delete(ctx->pool, tmp, NULL);
	(void)storage_volume_delete(ctx->pool, old, NULL);
	r = storage_volume_clone(ctx->pool, snap_volume, tmp, reterr);
	if (r < 0)
		return r;
	r = storage_volume_rename(ctx->pool, live, old, reterr);
	if (r < 0) {
		(void)storage_volume_delete(ctx->pool, tmp, NULL);
		return r;
	}
	r = storage_volume_rename(ctx->pool, tmp, live, reterr);
	if (r < 0) {
		(void)storage_volume_rename(ctx->pool, old, live, NULL);
		(void)storage_volume_delete(ctx->pool, tmp, NULL);
		return r;
	}
	(void)storage_volume_delete(ctx->pool, old, NULL);
	return 0;
}

static void restore_files(struct task *t)
{
	struct api_ctx *ctx = t->ctx;
	const json_t *inst = store_instance(ctx->store, t->name);
	const json_t *snap = json_object_get(json_object_get(inst, "snapshots"), t->snap);
	cleanup_free char *vol = strf("snapshots/%s/%s", t->name, json_get_str(snap, "volume", ""));
	cleanup_json json_t *rec = NULL, *cmd = NULL;
	struct kiva_error err = {0};
	json_t *config;
	const char *key;
	json_t *v;
	int r;

	if (!inst || !snap || !vol) {
		task_fail(t, "Snapshot '%s' of instance '%s' not found", t->snap, t->name);
		return;
	}
	r = swap_volumes(ctx, t->name, vol, &err);
	if (r < 0) {
		task_fail(t, "Failed to restore '%s' from snapshot '%s': %s", t->name, t->snap,
			  err.msg);
		return;
	}
	/* the snapshot's config and devices; this host's idmap and the image stay */
	rec = json_deep_copy(inst);
	config = json_deep_copy(json_object_get(snap, "config"));
	if (!rec || !config) {
		json_decref(config);
		task_fail(t, "Out of memory");
		return;
	}
	json_object_foreach((json_t *)json_object_get(inst, "config"), key, v)
		if (startswith(key, "volatile.idmap") || streq(key, "volatile.base_image"))
			json_object_set(config, key, v);
	json_object_set_new(rec, "config", config);
	json_object_set(rec, "devices", json_object_get(snap, "devices"));
	if (json_object_get(snap, "profiles"))
		json_object_set(rec, "profiles", json_object_get(snap, "profiles"));
	if (api_nics_assign(ctx, rec, &err) < 0) {
		task_fail(t, "%s", err.msg);
		return;
	}
	cmd = store_cmd_instance_update(rec);
	r = cmd ? store_apply(ctx->store, cmd, restore_recorded, t) : -ENOMEM;
	if (r < 0)
		task_fail(t, "Failed to record the restored config: %s", strerror(-r));
}

static void restore_stopped(void *userdata, const struct api_spawn_result *res)
{
	struct task *t = userdata;

	if (res->exit_status != 0) {
		task_fail(t, "Failed to stop instance '%s' for the restore: %s", t->name,
			  res->message[0] ? res->message : "kiva-helper failed");
		return;
	}
	api_nics_stopped(t->ctx, store_instance(t->ctx->store, t->name));
	restore_files(t);
}

static void restore_begin(struct api_request *req, const json_t *inst, const json_t *jsnap)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = json_get_str(inst, "name", "");
	const char *snap = json_string_value(jsnap);
	enum runtime_state st;
	struct api_op *op;
	struct task *t;

	if (!snap || !*snap) {
		api_reply_error(req, 400, "Invalid restore: expected a snapshot name");
		return;
	}
	/* lxc sends "NAME/SNAP" */
	if (strchr(snap, '/')) {
		size_t n = strlen(name);

		if (strncmp(snap, name, n) != 0 || snap[n] != '/') {
			api_reply_error(req, 400, "Invalid restore '%s': a snapshot of '%s'", snap,
					name);
			return;
		}
		snap += n + 1;
	}
	if (!json_object_get(json_object_get(inst, "snapshots"), snap)) {
		api_reply_error(req, 404, "Snapshot '%s' of instance '%s' not found", snap, name);
		return;
	}
	if (!instance_claim(req, name))
		return;
	op = api_op_new(ctx, "Restoring snapshot", instance_resources(name));
	t = op ? task_new(ctx, op, name) : NULL;
	if (!t) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	snprintf(t->snap, sizeof(t->snap), "%s", snap);
	task_hold_busy(t, op->description);
	api_reply_async(req, op);
	st = runtime_state(ctx->lxcpath, name);
	if (is_running(st)) {
		char *args[] = {"stop", (char *)ctx->lxcpath, t->name, "-1", NULL};

		t->start_after = true; /* keeps its CPUs, as a restart does */
		if (api_spawn_helper(ctx, ctx->helper_path, args, -1, -1, -1, restore_stopped, t) <
		    0)
			task_fail(t, "Failed to stop instance '%s' for the restore", name);
		return;
	}
	restore_files(t);
}

void api_instances_reconcile_restores(struct api_ctx *ctx)
{
	cleanup_free char *dir = storage_volume_path(ctx->pool, "containers");
	cleanup_json json_t *names = json_object();
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	const char *name;
	json_t *v;

	while (d && (de = readdir(d))) {
		if (startswith(de->d_name, ".restore-"))
			json_object_set_new(names, de->d_name + strlen(".restore-"), json_true());
		else if (startswith(de->d_name, ".old-"))
			json_object_set_new(names, de->d_name + strlen(".old-"), json_true());
	}
	if (d)
		closedir(d);
	json_object_foreach(names, name, v) {
		cleanup_free char *live = strf("containers/%s", name);
		cleanup_free char *tmp = strf("containers/.restore-%s", name);
		cleanup_free char *old = strf("containers/.old-%s", name);

		if (!live || !tmp || !old)
			continue;
		/* a swap cut between its two renames: the restored volume (complete before the
		 * first rename) goes in place; without it, the old one goes back */
		if (!storage_volume_exists(ctx->pool, live)) {
			const char *from = storage_volume_exists(ctx->pool, tmp) ? tmp : old;

			log_info("Reconcile: finishing an interrupted restore of '%s'", name);
			(void)storage_volume_rename(ctx->pool, from, live, NULL);
		}
		(void)storage_volume_delete(ctx->pool, tmp, NULL);
		(void)storage_volume_delete(ctx->pool, old, NULL);
	}
}

static bool update_start(struct api_request *req, bool patch)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0];
	cleanup_json json_t *body = NULL, *inst = NULL;
	struct kiva_error err = {0};
	const json_t *stored, *bconfig, *devices;
	json_t *config, *old_config;
	const char *key;
	json_t *v;
	struct update *u;
	struct api_op *op = NULL;
	enum runtime_state st;
	int r;

	stored = find_instance(req, name);
	if (!stored)
		return false;
	if (req->if_match[0]) {
		char etag[80];

		instance_etag(stored, etag);
		if (!streq(etag, req->if_match)) {
			api_reply_error(req, 412,
					"ETag doesn't match: the instance changed since it "
					"was read");
			return false;
		}
	}
	if (api_parse_body(req, &body) < 0)
		return false;
	if (json_object_get(body, "restore")) {
		restore_begin(req, stored, json_object_get(body, "restore"));
		return false;
	}
	bconfig = json_object_get(body, "config");
	if (bconfig && !json_is_object(bconfig)) {
		api_reply_error(req, 400, "Invalid config: expected an object");
		return false;
	}
	devices = json_object_get(body, "devices");
	if (devices && !json_is_object(devices)) {
		api_reply_error(req, 400, "Invalid devices: expected an object");
		return false;
	}
	inst = json_deep_copy(stored);
	if (patch && devices) {
		/* device by device; null removes one */
		json_t *merged = json_object_get(inst, "devices");

		json_object_foreach((json_t *)devices, key, v) {
			if (json_is_null(v))
				json_object_del(merged, key);
			else
				json_object_set(merged, key, v);
		}
	} else if (!patch) {
		json_object_set_new(inst, "devices",
				    devices ? json_deep_copy(devices) : json_object());
	}
	if (api_devices_validate(ctx, name, json_object_get(inst, "devices"), &err) < 0) {
		api_reply_kiva_error(req, &err);
		return false;
	}
	old_config = json_object_get(stored, "config");
	if (patch) {
		config = json_object_get(inst, "config");
		json_object_foreach((json_t *)bconfig, key, v) {
			if (startswith(key, "volatile.")) {
				api_reply_error(req, 400,
						"Configuration key %s is set by the server only",
						key);
				return false;
			}
			if (json_is_null(v))
				json_object_del(config, key);
			else
				json_object_set(config, key, v);
		}
	} else {
		config = json_object();
		json_object_foreach((json_t *)bconfig, key, v) {
			if (startswith(key, "volatile.")) {
				/* clients send back what GET showed; changing it is refused */
				if (!json_equal(v, json_object_get(old_config, key))) {
					api_reply_error(
						req, 400,
						"Configuration key %s is set by the server only",
						key);
					json_decref(config);
					return false;
				}
				continue;
			}
			json_object_set(config, key, v);
		}
		json_object_foreach((json_t *)old_config, key, v)
			if (startswith(key, "volatile."))
				json_object_set(config, key, v);
		json_object_set_new(inst, "config", config);
		if (json_is_string(json_object_get(body, "description")))
			json_object_set(inst, "description", json_object_get(body, "description"));
	}
	if (json_object_get(body, "ephemeral")) {
		bool eph;

		if (api_body_bool(req, body, "ephemeral", false, &eph) < 0)
			return false;
		json_object_set_new(inst, "ephemeral", json_boolean(eph));
	}
	if (proto_config_validate(config, &ctx->proto_host, true, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return false;
	}
	if (api_nics_assign(ctx, inst, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return false;
	}
	st = runtime_state(ctx->lxcpath, name);
	if (is_running(st) && nics_need_vlan(ctx, stored, inst, &err) < 0) {
		/* refused before anything is recorded: the kernel can't do it */
		api_reply_kiva_error(req, &err);
		return false;
	}
	/* admission and re-pinning (live when it runs) */
	if (api_sched_update(ctx, stored, inst, is_running(st), &err) < 0) {
		reply_sched_error(req, &err);
		return false;
	}
	if (!json_equal(json_object_get(old_config, "limits.disk"),
			json_object_get(config, "limits.disk")) &&
	    apply_disk_limit(ctx, inst, &err) < 0) {
		(void)api_sched_update(ctx, inst, stored, is_running(st), NULL);
		api_reply_error(req, 400, "%s", err.msg);
		return false;
	}
	if (is_running(st)) {
		r = apply_live_limits(ctx, name, old_config, config, &err);
		if (r < 0) {
			(void)api_sched_update(ctx, inst, stored, true, NULL);
			api_reply_error(req, 400, "%s", err.msg);
			return false;
		}
	}
	if (!patch) {
		op = api_op_new(ctx, "Updating instance", instance_resources(name));
		if (!op) {
			api_reply_error(req, 500, "Out of memory");
			return false;
		}
	}
	u = calloc(1, sizeof(*u));
	if (u)
		u->t = task_new(ctx, op, name);
	if (!u || !u->t) {
		free(u);
		api_reply_error(req, 500, "Out of memory");
		return false;
	}
	u->t->inst = json_incref(inst);
	u->old_config = json_incref(old_config);
	u->old_record = json_deep_copy(stored);
	u->live = is_running(st);
	/* the pending record holds its addresses until committed (concurrent hot-plugs) */
	json_object_set(ctx->creating, name, inst);
	if (patch) {
		u->req = req;
		api_defer(req);
	}
	{
		json_t *cmd = store_cmd_instance_update(inst);

		r = cmd ? store_apply(ctx->store, cmd, update_apply_cb, u) : -ENOMEM;
		json_decref(cmd);
	}
	if (r < 0) {
		if (!patch)
			api_reply_error(req, 503, "Failed to record the change: %s", strerror(-r));
		update_finish(u, r, "Failed to record the change"); /* unlocks */
		return true;
	}
	if (!patch)
		api_reply_async(req, op);
	return true;
}

void api_instance_handle_put(struct api_request *req)
{
	handle_update(req, false);
}

void api_instance_handle_patch(struct api_request *req)
{
	handle_update(req, true);
}

/* ---- exec (non-interactive, output recorded to log files) ---- */

static void exec_done(void *userdata, const struct api_spawn_result *res)
{
	struct task *t = userdata;
	cleanup_free char *status = NULL;
	json_t *meta;
	int ret;

	if (read_file(t->status_path, 4096, &status, NULL) < 0 || !status[0]) {
		unlink(t->status_path);
		task_fail(t, "Failed to run the command in '%s': %s", t->name,
			  res->message[0] ? res->message : "kiva-helper failed");
		return;
	}
	unlink(t->status_path);
	if (startswith(status, "error ")) {
		strip_nl(status);
		task_fail(t, "%s", status + strlen("error "));
		return;
	}
	if (sscanf(status, "exit %d", &ret) != 1) {
		task_fail(t, "Failed to run the command in '%s': bad helper status", t->name);
		return;
	}
	meta = json_pack("{s:i}", "return", ret);
	if (t->record_output) {
		char out[256], err[256];

		snprintf(out, sizeof(out), "/1.0/instances/%s/logs/exec_%s.stdout", t->name,
			 t->exec_id);
		snprintf(err, sizeof(err), "/1.0/instances/%s/logs/exec_%s.stderr", t->name,
			 t->exec_id);
		json_object_set_new(meta, "output", json_pack("{s:s,s:s}", "1", out, "2", err));
	}
	task_done(t, meta);
}

static int open_log(const char *dir, const char *id, const char *ext, bool record)
{
	char path[4096];

	if (!record)
		return open("/dev/null", O_WRONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/exec_%s.%s", dir, id, ext);
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

void api_instance_handle_exec(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0];
	cleanup_json json_t *body = NULL;
	cleanup_strv char **args = NULL;
	cleanup_free char *dir = NULL;
	cleanup_close int fd_out = -EBADF, fd_err = -EBADF, fd_status = -EBADF;
	cleanup_free char *uid = NULL, *gid = NULL;
	char *ids[2] = {NULL, NULL};
	bool wait_ws, interactive, record;
	enum runtime_state st;
	const json_t *cmd, *env;
	const char *key, *cwd;
	json_t *v;
	size_t i;
	struct api_op *op;
	struct task *t;
	int r;

	if (!find_instance(req, name))
		return;
	if (api_parse_body(req, &body) < 0)
		return;
	cmd = json_object_get(body, "command");
	if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
		api_reply_error(req, 400, "Invalid command: expected a non-empty array of strings");
		return;
	}
	if (api_body_bool(req, body, "wait-for-websocket", false, &wait_ws) < 0 ||
	    api_body_bool(req, body, "interactive", false, &interactive) < 0 ||
	    api_body_bool(req, body, "record-output", false, &record) < 0)
		return;
	if (interactive && !wait_ws) {
		api_reply_error(req, 400, "An interactive exec needs wait-for-websocket");
		return;
	}
	if (interactive && record) {
		api_reply_error(req, 400, "record-output needs a non-interactive exec");
		return;
	}
	for (int k = 0; k < 2; k++) {
		static const char *const keys[] = {"user", "group"};
		const json_t *id = json_object_get(body, keys[k]);

		if (!id)
			continue;
		if (!json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) >= (json_int_t)ctx->idmap_size) {
			api_reply_error(req, 400, "Invalid %s: expected a numeric id below %u",
					keys[k], ctx->idmap_size);
			return;
		}
		ids[k] = strf("%lld", (long long)json_integer_value(id));
		if (!ids[k]) {
			api_reply_error(req, 500, "Out of memory");
			return;
		}
	}
	uid = ids[0];
	gid = ids[1];
	st = runtime_state(ctx->lxcpath, name);
	if (st == RUNTIME_FROZEN) {
		api_reply_error(req, 400, "Instance is frozen: resume it first");
		return;
	}
	if (st != RUNTIME_RUNNING) {
		api_reply_error(req, 400, "Instance is not running");
		return;
	}
	env = json_object_get(body, "environment");
	if (env && !json_is_object(env)) {
		api_reply_error(req, 400, "Invalid environment: expected an object of strings");
		return;
	}
	cwd = json_get_str(body, "cwd", NULL);
	if (cwd && !*cwd)
		cwd = NULL; /* lxc sends "" for the default */
	if (cwd && cwd[0] != '/') {
		api_reply_error(req, 400, "Invalid cwd '%s': must be an absolute path", cwd);
		return;
	}
	if (cwd) {
		/* resolved inside the container's root (its own symlinks included) */
		int pid = runtime_init_pid(ctx->lxcpath, name);
		cleanup_free char *probe = pid > 0 ? strf("/proc/%d/root%s", pid, cwd) : NULL;
		struct stat stbuf;

		if (probe && (stat(probe, &stbuf) < 0 || !S_ISDIR(stbuf.st_mode))) {
			api_reply_error(req, 400, "Directory '%s' does not exist in the instance",
					cwd);
			return;
		}
	}
	r = strv_push(&args, strdup("exec"));
	r = r ?: strv_push(&args, strdup(ctx->lxcpath));
	r = r ?: strv_push(&args, strdup(name));
	if (cwd) {
		r = r ?: strv_push(&args, strdup("--cwd"));
		r = r ?: strv_push(&args, strdup(cwd));
	}
	if (ids[0]) {
		r = r ?: strv_push(&args, strdup("--uid"));
		r = r ?: strv_push(&args, strdup(ids[0]));
	}
	if (ids[1]) {
		r = r ?: strv_push(&args, strdup("--gid"));
		r = r ?: strv_push(&args, strdup(ids[1]));
	}
	json_object_foreach((json_t *)env, key, v) {
		if (!json_is_string(v) || !*key || strchr(key, '=')) {
			api_reply_error(req, 400, "Invalid environment variable '%s'", key);
			return;
		}
		r = r ?: strv_push(&args, strdup("--env"));
		r = r ?: strv_push(&args, strf("%s=%s", key, json_string_value(v)));
	}
	r = r ?: strv_push(&args, strdup("--"));
	json_array_foreach(cmd, i, v) {
		if (!json_is_string(v)) {
			api_reply_error(req, 400, "Invalid command: argument %zu is not a string",
					i);
			return;
		}
		r = r ?: strv_push(&args, strdup(json_string_value(v)));
	}
	if (r < 0) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}

	if (wait_ws) {
		/* the command starts when its WebSockets are connected (api-exec.c) */
		struct kiva_error err = {0};
		char status_path[4096];
		json_t *w = json_object_get(body, "width"), *h = json_object_get(body, "height");

		op = api_op_new(ctx, "Executing command", instance_resources(name));
		dir = strf("%s/%s", ctx->logs_dir, name);
		if (!op || !dir || mkdir_p(dir, 0700) < 0) {
			api_reply_error(req, 500, "Failed to prepare the exec: %m");
			if (op)
				api_op_fail(op, "Failed to prepare the exec");
			return;
		}
		snprintf(status_path, sizeof(status_path), "%s/exec_%s.status", dir, op->id);
		fd_status = open(status_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd_status < 0 ||
		    api_exec_websocket_begin(
			    ctx, op, name, TAKE_PTR(args), interactive,
			    json_is_integer(w) ? (unsigned)json_integer_value(w) : 0,
			    json_is_integer(h) ? (unsigned)json_integer_value(h) : 0,
			    TAKE_FD(fd_status), status_path, &err) < 0) {
			api_reply_error(req, 500, "Failed to prepare the exec: %s",
					err.msg[0] ? err.msg : strerror(errno));
			api_op_fail(op, "Failed to prepare the exec");
			return;
		}
		api_reply_async(req, op);
		return;
	}
	op = api_op_new(ctx, "Executing command", instance_resources(name));
	t = op ? task_new(ctx, op, name) : NULL;
	dir = strf("%s/%s", ctx->logs_dir, name);
	if (!t || !dir) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	snprintf(t->exec_id, sizeof(t->exec_id), "%s", op->id);
	t->record_output = record;
	snprintf(t->status_path, sizeof(t->status_path), "%s/exec_%s.status", dir, op->id);
	r = mkdir_p(dir, 0700);
	fd_out = open_log(dir, op->id, "stdout", t->record_output);
	fd_err = open_log(dir, op->id, "stderr", t->record_output);
	fd_status = open(t->status_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (r < 0 || fd_out < 0 || fd_err < 0 || fd_status < 0) {
		api_reply_error(req, 500, "Failed to create the exec logs in %s: %m", dir);
		api_op_fail(op, "Failed to create the exec logs");
		task_free(t);
		return;
	}
	api_reply_async(req, op);
	r = api_spawn_helper(ctx, ctx->helper_path, args, fd_out, fd_err, fd_status, exec_done, t);
	if (r < 0)
		task_fail(t, "Failed to run the command: %s", strerror(-r));
}

/* ---- logs: exec output and liblxc's log ---- */

static bool log_name_valid(const char *file)
{
	size_t n = strlen(file);

	if (streq(file, "lxc.log"))
		return true;
	if (!startswith(file, "exec_") || n > 80)
		return false;
	for (const char *p = file + 5; *p && *p != '.'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || *p == '-'))
			return false;
	return (n > 7 && streq(file + n - 7, ".stdout")) ||
	       (n > 7 && streq(file + n - 7, ".stderr"));
}

static char *log_path(struct api_request *req)
{
	const char *name = req->params[0], *file = req->params[1];

	if (!find_instance(req, name))
		return NULL;
	if (!log_name_valid(file)) {
		api_reply_error(req, 404, "Log file '%s' not found", file);
		return NULL;
	}
	if (streq(file, "lxc.log"))
		return strf("%s/%s/lxc.log", req->ctx->lxcpath, name);
	return strf("%s/%s/%s", req->ctx->logs_dir, name, file);
}

void api_instance_handle_log_get(struct api_request *req)
{
	cleanup_free char *path = log_path(req);
	char *data = NULL;
	size_t len = 0;
	int r;

	if (!path)
		return;
	r = read_file(path, 64 * 1024 * 1024, &data, &len);
	if (r < 0) {
		api_reply_error(req, r == -ENOENT ? 404 : 500, "Log file '%s' not found",
				req->params[1]);
		return;
	}
	api_reply_raw(req, 200, "application/octet-stream", data, len);
}

void api_instance_handle_log_delete(struct api_request *req)
{
	cleanup_free char *path = log_path(req);

	if (!path)
		return;
	if (streq(req->params[1], "lxc.log")) {
		api_reply_error(req, 400, "The liblxc log can't be deleted");
		return;
	}
	if (unlink(path) < 0) {
		api_reply_error(req, errno == ENOENT ? 404 : 500, "Log file '%s' not found",
				req->params[1]);
		return;
	}
	api_reply_sync(req, NULL);
}
