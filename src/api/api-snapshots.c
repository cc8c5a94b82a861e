/* /1.0/instances/NAME/snapshots: instance snapshots in LXD's shape, and the scheduled ones.
 *
 * A snapshot is a read-only copy of the instance's volume (btrfs: a read-only subvolume snapshot,
 * a few ms; dir: a copy) at STATE/storage-pools/default/snapshots/NAME/VOLUME, plus a record in
 * the instance's record ("snapshots": {SNAP: {...}}) holding the config and devices of that
 * moment. A running container is frozen only around the snapshot itself. VOLUME is an id chosen
 * at creation, so renaming a snapshot changes only its record.
 *
 * Ordering for crash safety (api-reconcile.c finishes the job): create = files, then record;
 * delete = record, then files. Snapshot volumes that no record names are leftovers.
 *
 * Schedules (snapshots.schedule / .pattern / .expiry) run from kivad's loop every minute:
 * api_snapshots_tick() takes the snapshots that are due, the ones missed while kivad was down
 * once, and deletes the expired ones. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"
#include "proto-schedule.h"

#define ZERO_TIME "0001-01-01T00:00:00Z"

struct snap_task {
	struct api_ctx *ctx;
	struct api_op *op; /* NULL for scheduled snapshots */
	char name[64]; /* instance */
	char snap[64];
	char new_name[64];
	char volume[64]; /* snapshots/NAME/ID */
	json_t *record;
	bool holds_busy;
};

static void snap_task_free(struct snap_task *t)
{
	if (!t)
		return;
	if (t->holds_busy)
		json_object_del(t->ctx->busy, t->name);
	json_decref(t->record);
	free(t);
}

static void snap_task_end(struct snap_task *t, int status, const char *msg, json_t *metadata)
{
	if (status < 0) {
		log_warning("Instance '%s' snapshot '%s': %s", t->name, t->snap, msg);
		if (t->op)
			api_op_fail(t->op, "%s", msg);
		json_decref(metadata);
	} else if (t->op) {
		api_op_succeed(t->op, metadata);
	} else {
		json_decref(metadata);
	}
	snap_task_free(t);
}

/* ---- times ---- */

int api_time_format(int64_t t, char buf[static 40])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm) || strftime(buf, 40, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(buf, 40, "%s", ZERO_TIME);
		return -EINVAL;
	}
	return 0;
}

/* RFC 3339 ("2026-11-26T17:00:00Z", fractions and offsets accepted) → Unix seconds; the zero
 * time and "" → 0. */
int api_time_parse(const char *s, int64_t *ret)
{
	struct tm tm = {0};
	const char *p;
	int64_t t;

	if (!s || !*s || startswith(s, "0001-01-01")) {
		*ret = 0;
		return 0;
	}
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	t = (int64_t)timegm(&tm);
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == 'Z' && !p[1]) {
		*ret = t;
		return 0;
	}
	if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');

		t -= (*p == '+' ? 1 : -1) * (h * 3600 + m * 60);
		*ret = t;
		return 0;
	}
	return -EINVAL;
}

/* ---- lookups and rendering ---- */

static const json_t *snapshots_of(const json_t *inst)
{
	return json_object_get(inst, "snapshots");
}

static json_t *snapshot_render_ex(struct api_ctx *ctx, const json_t *inst, const json_t *snap,
				  bool with_size)
{
	json_t *out = json_deep_copy(snap);
	cleanup_free char *rel = strf("snapshots/%s/%s", json_get_str(inst, "name", ""),
				      json_get_str(snap, "volume", ""));
	uint64_t bytes = 0;

	if (!out)
		return NULL;
	json_object_del(out, "volume");
	json_object_del(out, "scheduled");
	json_object_set(out, "expanded_config", json_object_get(out, "config"));
	json_object_set(out, "expanded_devices", json_object_get(out, "devices"));
	if (!json_object_get(out, "last_used_at"))
		json_object_set(out, "last_used_at", json_object_get(out, "created_at"));
	if (with_size && rel && storage_volume_usage(ctx->pool, rel, NULL, &bytes, NULL) < 0)
		bytes = 0;
	json_object_set_new(out, "size", json_integer((json_int_t)bytes));
	return out;
}

static json_t *snapshot_render(struct api_ctx *ctx, const json_t *inst, const json_t *snap)
{
	return snapshot_render_ex(ctx, inst, snap, true);
}

json_t *api_snapshots_render_all(struct api_ctx *ctx, const json_t *inst)
{
	json_t *out = json_array();
	const char *key;
	json_t *snap;

	json_object_foreach((json_t *)snapshots_of(inst), key, snap)
		json_array_append_new(out, snapshot_render_ex(ctx, inst, snap, false));
	return out;
}

static const json_t *find_ready(struct api_request *req, const char *name)
{
	const json_t *inst = store_instance(req->ctx->store, name);

	if (!inst || !streq(json_get_str(inst, "kiva_state", ""), "ready")) {
		api_reply_error(req, 404, "Instance '%s' not found", name);
		return NULL;
	}
	return inst;
}

static const json_t *find_snapshot(struct api_request *req, const json_t *inst, const char *snap)
{
	const json_t *s = json_object_get(snapshots_of(inst), snap);

	if (!s)
		api_reply_error(req, 404, "Snapshot '%s' of instance '%s' not found", snap,
				json_get_str(inst, "name", ""));
	return s;
}

static bool claim(struct api_request *req, const char *name)
{
	const char *running = json_string_value(json_object_get(req->ctx->busy, name));

	if (running) {
		api_reply_error(req, 409, "Instance '%s' is busy: %s", name, running);
		return false;
	}
	return true;
}

static struct snap_task *task_start(struct api_ctx *ctx, const char *name, const char *what,
				    struct api_op *op)
{
	struct snap_task *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ctx = ctx;
	t->op = op;
	snprintf(t->name, sizeof(t->name), "%s", name);
	if (json_object_set_new(ctx->busy, name, json_string(what)) == 0)
		t->holds_busy = true;
	return t;
}

static json_t *snap_resources(const char *name, const char *snap)
{
	char url[256], iurl[128];

	snprintf(url, sizeof(url), "/1.0/instances/%s/snapshots/%s", name, snap);
	snprintf(iurl, sizeof(iurl), "/1.0/instances/%s", name);
	return json_pack("{s:[s],s:[s]}", "instances", iurl, "instances_snapshots", url);
}

void api_snapshots_handle_list(struct api_request *req)
{
	const json_t *inst = find_ready(req, req->params[0]);
	const char *key;
	json_t *snap, *out;

	if (!inst)
		return;
	out = json_array();
	json_object_foreach((json_t *)snapshots_of(inst), key, snap) {
		if (api_recursion(req) >= 1) {
			json_array_append_new(out, snapshot_render(req->ctx, inst, snap));
		} else {
			char url[256];

			snprintf(url, sizeof(url), "/1.0/instances/%s/snapshots/%s", req->params[0],
				 key);
			json_array_append_new(out, json_string(url));
		}
	}
	api_reply_sync(req, out);
}

void api_snapshot_handle_get(struct api_request *req)
{
	const json_t *inst = find_ready(req, req->params[0]), *snap;

	if (!inst || !(snap = find_snapshot(req, inst, req->params[1])))
		return;
	api_reply_sync(req, snapshot_render(req->ctx, inst, snap));
}

/* ---- create ---- */

/* Stateful snapshots need CRIU ≥ 4.1 on kernels ≥ 6.13 (notes/feasibility.md §4). */
static int stateful_refusal(struct kiva_error *reterr)
{
	return kiva_error_set(
		reterr, -EOPNOTSUPP,
		"Stateful snapshots need CRIU, which does not work on this host (Debian 12's criu "
		"3.17 fails on kernels >= 6.13, CRIU >= 4.1 is needed): take a stateless snapshot");
}

static void snapshot_committed(void *userdata, int status, const char *errmsg)
{
	struct snap_task *t = userdata;

	if (status < 0) {
		(void)storage_volume_delete(t->ctx->pool, t->volume, NULL);
		snap_task_end(t, status, errmsg ? errmsg : "Failed to record the snapshot", NULL);
		return;
	}
	api_event_lifecycle(t->ctx, "instance-snapshot-created", t->name, t->snap);
	snap_task_end(t, 0, NULL, NULL);
}

/* Takes the snapshot (files now, on the loop: a btrfs snapshot is a few ms) and commits its
 * record. The task is freed by the end of the chain. */
static void snapshot_take(struct snap_task *t)
{
	struct api_ctx *ctx = t->ctx;
	const json_t *inst = store_instance(ctx->store, t->name);
	cleanup_free char *src = strf("containers/%s", t->name);
	struct kiva_error err = {0};
	enum runtime_state st = runtime_state(ctx->lxcpath, t->name);
	bool thaw = false;
	char errbuf[256];
	json_t *cmd;
	int r;

	if (!inst || !src) {
		snap_task_end(t, -ENOENT, "The instance is gone", NULL);
		return;
	}
	/* consistent: nothing writes while the copy is cut */
	if (st == RUNTIME_RUNNING) {
		r = runtime_freeze(ctx->lxcpath, t->name, errbuf, sizeof(errbuf));
		if (r < 0) {
			snap_task_end(t, r, errbuf, NULL);
			return;
		}
		thaw = true;
	}
	r = storage_volume_snapshot(ctx->pool, src, t->volume, true, &err);
	if (thaw && runtime_unfreeze(ctx->lxcpath, t->name, errbuf, sizeof(errbuf)) < 0)
		log_error("Instance '%s' stays frozen after its snapshot: %s", t->name, errbuf);
	if (r < 0) {
		snap_task_end(t, r, err.msg, NULL);
		return;
	}
	cmd = store_cmd_snapshot_put(t->name, t->record);
	r = cmd ? store_apply(ctx->store, cmd, snapshot_committed, t) : -ENOMEM;
	json_decref(cmd);
	if (r < 0) {
		(void)storage_volume_delete(ctx->pool, t->volume, NULL);
		snap_task_end(t, r, "Failed to record the snapshot", NULL);
	}
}

/* The record of a new snapshot of inst named snap. expires: Unix time, 0 = never. */
static json_t *snapshot_record(const json_t *inst, const char *snap, const char *volume,
			       int64_t expires, bool scheduled)
{
	char now[40], exp[40];

	now_rfc3339(now);
	if (expires > 0)
		api_time_format(expires, exp);
	else
		snprintf(exp, sizeof(exp), "%s", ZERO_TIME);
	return json_pack("{s:s,s:s,s:s,s:s,s:b,s:O?,s:O?,s:O?,s:b,s:s,s:s,s:s,s:b}", "name", snap,
			 "created_at", now, "last_used_at", now, "expires_at", exp, "stateful", 0,
			 "config", json_object_get(inst, "config"), "devices",
			 json_object_get(inst, "devices"), "profiles",
			 json_object_get(inst, "profiles"), "ephemeral",
			 json_get_bool(inst, "ephemeral", false), "architecture",
			 json_get_str(inst, "architecture", "x86_64"), "description", "", "volume",
			 volume, "scheduled", scheduled);
}

/* The name a new snapshot gets from snapshots.pattern (default "snap%d"). */
static int pattern_name(const json_t *inst, char *buf, size_t len, struct kiva_error *reterr)
{
	const char *pattern =
		json_get_str(json_object_get(inst, "config"), "snapshots.pattern", "snap%d");
	const json_t *snaps = snapshots_of(inst);
	const char **taken = calloc(json_object_size(snaps) + 1, sizeof(char *));
	const char *key;
	json_t *v;
	size_t n = 0;
	int r;

	if (!taken)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	json_object_foreach((json_t *)snaps, key, v)
		taken[n++] = key;
	r = proto_snapshot_pattern_name(pattern, (const char *const *)taken, n, buf, len, reterr);
	free(taken);
	return r;
}

/* Expiry of a snapshot taken now: snapshots.expiry of the instance, 0 = never. */
static int64_t expiry_of(const json_t *inst, int64_t now)
{
	const char *v = json_get_str(json_object_get(inst, "config"), "snapshots.expiry", NULL);
	struct proto_expiry e;

	if (!v || !*v || proto_expiry_parse(v, &e, NULL) < 0)
		return 0;
	return proto_expiry_apply(&e, now);
}

/* Starts a snapshot of inst named snap (validated, free). op NULL: scheduled. */
static int snapshot_begin(struct api_ctx *ctx, const json_t *inst, const char *snap,
			  int64_t expires, struct api_op *op, struct kiva_error *reterr)
{
	const char *name = json_get_str(inst, "name", "");
	struct snap_task *t = task_start(ctx, name, "Snapshotting instance", op);
	char id[17];

	if (!t)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (random_hex(id, 8) < 0) {
		snap_task_free(t);
		return kiva_error_set(reterr, -EIO, "No randomness for a volume id");
	}
	snprintf(t->snap, sizeof(t->snap), "%s", snap);
	snprintf(t->volume, sizeof(t->volume), "snapshots/%s/%s", name, id);
	t->record = snapshot_record(inst, snap, id, expires, op == NULL);
	if (!t->record) {
		snap_task_free(t);
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	snapshot_take(t);
	return 0;
}

void api_snapshots_handle_create(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0];
	const json_t *inst = find_ready(req, name);
	cleanup_json json_t *body = NULL;
	struct kiva_error err = {0};
	char snap[64];
	const char *given, *exp_s;
	int64_t expires;
	struct api_op *op;
	bool stateful;

	if (!inst || api_parse_body(req, &body) < 0)
		return;
	if (api_body_bool(req, body, "stateful", false, &stateful) < 0)
		return;
	if (stateful) {
		stateful_refusal(&err);
		api_reply_error(req, 400, "%s", err.msg);
		return;
	}
	given = json_get_str(body, "name", NULL);
	if (json_object_get(body, "name") && !json_is_string(json_object_get(body, "name"))) {
		api_reply_error(req, 400, "Invalid snapshot name: expected a string");
		return;
	}
	if (given && *given) {
		if (proto_snapshot_name_validate(given, &err) < 0) {
			api_reply_kiva_error(req, &err);
			return;
		}
		if (json_object_get(snapshots_of(inst), given)) {
			api_reply_error(req, 409, "Snapshot '%s' already exists", given);
			return;
		}
		snprintf(snap, sizeof(snap), "%s", given);
	} else if (pattern_name(inst, snap, sizeof(snap), &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	exp_s = json_get_str(body, "expires_at", NULL);
	if (exp_s) {
		if (api_time_parse(exp_s, &expires) < 0) {
			api_reply_error(req, 400, "Invalid expires_at '%s': expected RFC 3339",
					exp_s);
			return;
		}
	} else {
		expires = expiry_of(inst, (int64_t)time(NULL));
	}
	if (!claim(req, name))
		return;
	op = api_op_new(ctx, "Snapshotting instance", snap_resources(name, snap));
	if (!op) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	api_reply_async(req, op);
	if (snapshot_begin(ctx, inst, snap, expires, op, &err) < 0)
		api_op_fail(op, "%s", err.msg);
}

/* ---- delete, rename, update ---- */

static void snapshot_deleted(void *userdata, int status, const char *errmsg)
{
	struct snap_task *t = userdata;
	struct kiva_error err = {0};

	if (status < 0) {
		snap_task_end(t, status, errmsg ? errmsg : "Failed to delete the snapshot", NULL);
		return;
	}
	/* the record is gone; a volume left by a failure here is a leftover reconcile removes */
	if (storage_volume_delete(t->ctx->pool, t->volume, &err) < 0)
		log_warning("Snapshot volume %s left behind: %s", t->volume, err.msg);
	api_event_lifecycle(t->ctx, "instance-snapshot-deleted", t->name, t->snap);
	snap_task_end(t, 0, NULL, NULL);
}

static int snapshot_delete_begin(struct api_ctx *ctx, const json_t *inst, const char *snap,
				 struct api_op *op, struct kiva_error *reterr)
{
	const char *name = json_get_str(inst, "name", "");
	const json_t *rec = json_object_get(snapshots_of(inst), snap);
	struct snap_task *t = task_start(ctx, name, "Deleting snapshot", op);
	json_t *cmd;
	int r;

	if (!t)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	snprintf(t->snap, sizeof(t->snap), "%s", snap);
	snprintf(t->volume, sizeof(t->volume), "snapshots/%s/%s", name,
		 json_get_str(rec, "volume", snap));
	cmd = store_cmd_snapshot_delete(name, snap);
	r = cmd ? store_apply(ctx->store, cmd, snapshot_deleted, t) : -ENOMEM;
	json_decref(cmd);
	if (r < 0) {
		snap_task_end(t, r, "Failed to record the deletion", NULL);
		return kiva_error_set(reterr, r, "Failed to record the deletion");
	}
	return 0;
}

void api_snapshot_handle_delete(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0], *snap = req->params[1];
	const json_t *inst = find_ready(req, name);
	struct kiva_error err = {0};
	struct api_op *op;

	if (!inst || !find_snapshot(req, inst, snap) || !claim(req, name))
		return;
	op = api_op_new(ctx, "Deleting snapshot", snap_resources(name, snap));
	if (!op) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	api_reply_async(req, op);
	(void)snapshot_delete_begin(ctx, inst, snap, op, &err);
}

static void snapshot_renamed(void *userdata, int status, const char *errmsg)
{
	struct snap_task *t = userdata;

	if (status >= 0)
		api_event_lifecycle(t->ctx, "instance-snapshot-renamed", t->name, t->new_name);
	snap_task_end(t, status, errmsg ? errmsg : "Failed to rename the snapshot", NULL);
}

/* POST /1.0/instances/NAME/snapshots/SNAP {"name": NEW}: rename (the record only). */
void api_snapshot_handle_post(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0], *snap = req->params[1], *to;
	const json_t *inst = find_ready(req, name);
	cleanup_json json_t *body = NULL;
	struct kiva_error err = {0};
	struct snap_task *t;
	struct api_op *op;
	json_t *cmd;
	int r;

	if (!inst || !find_snapshot(req, inst, snap) || api_parse_body(req, &body) < 0)
		return;
	if (json_is_true(json_object_get(body, "migration"))) {
		api_reply_error(req, 400, "Snapshot migration is not supported");
		return;
	}
	to = json_get_str(body, "name", NULL);
	if (!to) {
		api_reply_error(req, 400, "Missing name: {\"name\": \"new-name\"}");
		return;
	}
	if (proto_snapshot_name_validate(to, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	if (json_object_get(snapshots_of(inst), to)) {
		api_reply_error(req, 409, "Snapshot '%s' already exists", to);
		return;
	}
	if (!claim(req, name))
		return;
	op = api_op_new(ctx, "Renaming snapshot", snap_resources(name, snap));
	t = op ? task_start(ctx, name, "Renaming snapshot", op) : NULL;
	if (!t) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	snprintf(t->snap, sizeof(t->snap), "%s", snap);
	snprintf(t->new_name, sizeof(t->new_name), "%s", to);
	api_reply_async(req, op);
	cmd = store_cmd_snapshot_rename(name, snap, to);
	r = cmd ? store_apply(ctx->store, cmd, snapshot_renamed, t) : -ENOMEM;
	json_decref(cmd);
	if (r < 0)
		snap_task_end(t, r, "Failed to record the rename", NULL);
}

static void snapshot_updated(void *userdata, int status, const char *errmsg)
{
	struct api_request *req = userdata;

	if (status < 0)
		api_reply_error(req, 503, "Failed to record the change: %s",
				errmsg ? errmsg : strerror(-status));
	else
		api_reply_sync(req, NULL);
}

/* PUT/PATCH /1.0/instances/NAME/snapshots/SNAP: expires_at and description. */
void api_snapshot_handle_put(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0], *snap = req->params[1];
	const json_t *inst = find_ready(req, name), *rec;
	cleanup_json json_t *body = NULL, *copy = NULL, *cmd = NULL;
	const char *key;
	json_t *v;
	int64_t t;
	int r;

	if (!inst || !(rec = find_snapshot(req, inst, snap)) || api_parse_body(req, &body) < 0)
		return;
	copy = json_deep_copy(rec);
	json_object_foreach(body, key, v) {
		if (streq(key, "expires_at")) {
			if (!json_is_string(v) || api_time_parse(json_string_value(v), &t) < 0) {
				api_reply_error(req, 400,
						"Invalid expires_at: expected RFC 3339 time");
				return;
			}
			json_object_set(copy, key, v);
		} else if (streq(key, "description")) {
			if (!json_is_string(v)) {
				api_reply_error(req, 400, "Invalid description: expected a string");
				return;
			}
			json_object_set(copy, key, v);
		} else if (!json_equal(v, json_object_get(rec, key)) && !streq(key, "name") &&
			   !streq(key, "size") && !startswith(key, "expanded_")) {
			api_reply_error(req, 400,
					"Only expires_at and description of a snapshot can change "
					"(not %s)",
					key);
			return;
		}
	}
	cmd = store_cmd_snapshot_put(name, copy);
	api_defer(req);
	r = cmd ? store_apply(ctx->store, cmd, snapshot_updated, req) : -ENOMEM;
	if (r < 0)
		snapshot_updated(req, r, NULL);
}

/* ---- with the instance ---- */

int api_snapshots_dematerialize(struct api_ctx *ctx, const char *name, struct kiva_error *reterr)
{
	cleanup_free char *rel = strf("snapshots/%s", name);

	if (!rel)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	return storage_volume_delete(ctx->pool, rel, reterr);
}

void api_snapshots_reconcile(struct api_ctx *ctx)
{
	cleanup_free char *dir = storage_volume_path(ctx->pool, "snapshots");
	cleanup_strv char **insts = NULL;
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;

	/* snapshots/NAME/ID that no record names: a create cut before its commit, a delete cut
	 * after it */
	while (d && (de = readdir(d))) {
		const json_t *inst = store_instance(ctx->store, de->d_name);
		cleanup_free char *sub = NULL;
		DIR *sd;
		struct dirent *se;

		if (de->d_name[0] == '.')
			continue;
		sub = strf("%s/%s", dir, de->d_name);
		if (!inst) {
			cleanup_free char *rel = strf("snapshots/%s", de->d_name);

			log_info("Reconcile: removing snapshots of unknown instance '%s'",
				 de->d_name);
			if (rel)
				(void)storage_volume_delete(ctx->pool, rel, NULL);
			continue;
		}
		sd = sub ? opendir(sub) : NULL;
		while (sd && (se = readdir(sd))) {
			const char *key;
			json_t *snap;
			bool owned = false;

			if (se->d_name[0] == '.')
				continue;
			json_object_foreach((json_t *)snapshots_of(inst), key, snap)
				if (streq(json_get_str(snap, "volume", ""), se->d_name))
					owned = true;
			if (!owned) {
				cleanup_free char *rel =
					strf("snapshots/%s/%s", de->d_name, se->d_name);

				log_info("Reconcile: removing leftover snapshot volume %s",
					 rel ? rel : "?");
				if (rel)
					(void)storage_volume_delete(ctx->pool, rel, NULL);
			}
		}
		if (sd)
			closedir(sd);
	}
	if (d)
		closedir(d);
}

/* ---- schedules ---- */

/* Latest created_at of inst's scheduled snapshots (0 = none). */
static int64_t last_scheduled(const json_t *inst)
{
	const char *key;
	json_t *snap;
	int64_t last = 0, t;

	json_object_foreach((json_t *)snapshots_of(inst), key, snap)
		if (json_get_bool(snap, "scheduled", false) &&
		    api_time_parse(json_get_str(snap, "created_at", ""), &t) == 0 && t > last)
			last = t;
	return last;
}

/* When kivad first saw this instance's schedule (in memory: after a restart the schedule starts
 * again from then unless a scheduled snapshot exists, whose time says what was missed). */
static int64_t schedule_seen(struct api_ctx *ctx, const char *name, const char *sched, int64_t now)
{
	json_t *seen = json_object_get(ctx->schedules_seen, name);

	if (!seen || !streq(json_get_str(seen, "schedule", ""), sched)) {
		json_object_set_new(
			ctx->schedules_seen, name,
			json_pack("{s:s,s:I}", "schedule", sched, "since", (json_int_t)now));
		return now;
	}
	return (int64_t)json_get_int(seen, "since", now);
}

void api_snapshots_tick(struct api_ctx *ctx, int64_t now)
{
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	const char *name;
	json_t *inst;

	json_object_foreach((json_t *)insts, name, inst) {
		const json_t *config = json_object_get(inst, "config");
		const char *sched = json_get_str(config, "snapshots.schedule", NULL);
		struct kiva_error err = {0};
		const char *key;
		json_t *snap;

		if (!streq(json_get_str(inst, "kiva_state", ""), "ready") ||
		    json_object_get(ctx->busy, name))
			continue;
		/* expired ones first (one per tick and instance: each is a store commit) */
		json_object_foreach((json_t *)snapshots_of(inst), key, snap) {
			int64_t exp;

			if (api_time_parse(json_get_str(snap, "expires_at", ""), &exp) == 0 &&
			    exp > 0 && exp <= now) {
				log_info("Instance '%s': snapshot '%s' expired", name, key);
				if (snapshot_delete_begin(ctx, inst, key, NULL, &err) < 0)
					log_warning("Deleting expired snapshot: %s", err.msg);
				break;
			}
		}
		if (json_object_get(ctx->busy, name) || !sched || !*sched)
			continue;
		{
			struct proto_schedule s;
			int64_t due, last = last_scheduled(inst);
			char snapname[64];

			if (proto_schedule_parse(sched, &s, NULL) < 0)
				continue;
			/* the latest fire time not taken yet: due now, or missed while kivad was
			 * down (taken once) */
			due = proto_schedule_prev(&s, now);
			if (due <= 0 || due <= last)
				continue;
			if (!last && due < schedule_seen(ctx, name, sched, now))
				continue; /* a new schedule starts at its next fire time */
			if (pattern_name(inst, snapname, sizeof(snapname), &err) < 0) {
				log_warning("Instance '%s': scheduled snapshot: %s", name, err.msg);
				continue;
			}
			log_info("Instance '%s': scheduled snapshot '%s'", name, snapname);
			if (snapshot_begin(ctx, inst, snapname, expiry_of(inst, now), NULL, &err) <
			    0)
				log_warning("Instance '%s': scheduled snapshot: %s", name, err.msg);
		}
	}
}
