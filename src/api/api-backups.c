/* Instance backups in LXD's format: /1.0/instances/NAME/backups (what `lxc export` drives) and
 * POST /1.0/instances with a backup tarball as the body (`lxc import`).
 *
 * Export: the instance's volume is snapshotted read-only (frozen only for that instant) to
 * tmp-backup/ID in the pool, backup.yaml written for it and each snapshot (JSON text, which is
 * YAML: LXD reads it), and kiva-archive-helper streams the tarball to STATE/backups/NAME/BACKUP
 * (libarchive stays out of kivad). GET .../export streams that file. Backups are files of this
 * host, not records: STATE/backups/NAME/BACKUP.json says when it was made and when it expires.
 *
 * Import: the upload (already on disk, hashed as it came) is unpacked by kiva-archive-helper
 * into tmp-import/ID in the pool, each volume a btrfs subvolume, with every check of a hostile
 * archive (image-backup.c) and the owners shifted to this host's idmap; the helper answers the
 * index and backup.yaml as JSON. kivad builds the record (config checked like any create),
 * moves the volumes into place (renames) and commits. Any refusal removes everything. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"
#include "proto-name.h"
#include "proto-schedule.h"

#define ZERO_TIME "0001-01-01T00:00:00Z"

static char *backups_dir(struct api_ctx *ctx, const char *name)
{
	return strf("%s/backups/%s", ctx->state_dir, name);
}

/* ---- backup.yaml (LXD 5.0's shape, written as JSON) ---- */

static json_t *idmap_json(struct api_ctx *ctx)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "[{\"Isuid\":true,\"Isgid\":false,\"Hostid\":%u,\"Nsid\":0,\"Maprange\":%u},"
		 "{\"Isuid\":false,\"Isgid\":true,\"Hostid\":%u,\"Nsid\":0,\"Maprange\":%u}]",
		 ctx->idmap_base, ctx->idmap_size, ctx->idmap_base, ctx->idmap_size);
	return json_string(buf);
}

/* config as LXD keeps it for a volume whose files are shifted by this host's idmap */
static json_t *lxd_config(struct api_ctx *ctx, const json_t *config)
{
	json_t *out = json_object();
	const char *key;
	json_t *v;

	if (!out)
		return NULL;
	/* KIVA's own volatile keys (volatile.eth0.ipv4.address, …) mean nothing elsewhere and
	 * LXD refuses unknown keys; an import sets them again */
	json_object_foreach((json_t *)config, key, v)
		if (!startswith(key, "volatile.") || streq(key, "volatile.base_image"))
			json_object_set(out, key, v);
	json_object_set_new(out, "volatile.idmap.current", idmap_json(ctx));
	json_object_set_new(out, "volatile.idmap.next", idmap_json(ctx));
	json_object_set_new(out, "volatile.last_state.idmap", idmap_json(ctx));
	return out;
}

static json_t *root_devices(const json_t *devices)
{
	json_t *out = json_deep_copy(devices ? devices : json_object());

	if (out && !json_object_get(out, "root"))
		json_object_set_new(
			out, "root",
			json_pack("{s:s,s:s,s:s}", "path", "/", "pool", "default", "type", "disk"));
	return out;
}

static json_t *lxd_instance(struct api_ctx *ctx, const json_t *rec, bool snapshot)
{
	json_t *config = lxd_config(ctx, json_object_get(rec, "config"));
	json_t *devices = json_deep_copy(json_object_get(rec, "devices"));
	json_t *out;

	if (!devices)
		devices = json_object();
	out = json_pack("{s:s,s:s,s:o,s:o,s:b,s:O?,s:b,s:s,s:s,s:s,s:O,s:o,s:s}", "name",
			json_get_str(rec, "name", ""), "architecture",
			json_get_str(rec, "architecture", "x86_64"), "config", config, "devices",
			devices, "ephemeral", json_get_bool(rec, "ephemeral", false), "profiles",
			json_object_get(rec, "profiles"), "stateful", 0, "description",
			json_get_str(rec, "description", ""), "created_at",
			json_get_str(rec, "created_at", ZERO_TIME), "last_used_at",
			json_get_str(rec, "last_used_at", ZERO_TIME), "expanded_config", config,
			"expanded_devices", root_devices(devices), "type", "container");
	if (!out)
		return NULL;
	if (snapshot) {
		json_object_set_new(out, "expires_at",
				    json_string(json_get_str(rec, "expires_at", ZERO_TIME)));
		json_object_set_new(out, "size", json_integer(-1));
	} else {
		json_object_set_new(out, "status", json_string("Stopped"));
		json_object_set_new(out, "status_code", json_integer(102));
		json_object_set_new(out, "location", json_string("none"));
		json_object_set_new(out, "project", json_string("default"));
	}
	return out;
}

/* The whole backup.yaml of inst: container, snapshots (names, or none), pool, profiles, volume,
 * volume_snapshots. */
static json_t *backup_doc(struct api_ctx *ctx, const json_t *inst, bool with_snapshots)
{
	const char *name = json_get_str(inst, "name", "");
	json_t *snaps = json_array(), *vsnaps = json_array(), *doc;
	const char *key;
	json_t *snap;

	if (with_snapshots)
		json_object_foreach((json_t *)json_object_get(inst, "snapshots"), key, snap) {
			json_array_append_new(snaps, lxd_instance(ctx, snap, true));
			json_array_append_new(
				vsnaps,
				json_pack("{s:s,s:s,s:{},s:s,s:s,s:s}", "name", key, "description",
					  "", "config", "content_type", "filesystem", "created_at",
					  json_get_str(snap, "created_at", ZERO_TIME), "expires_at",
					  json_get_str(snap, "expires_at", ZERO_TIME)));
		}
	doc = json_pack(
		"{s:o,s:o,s:{s:s,s:s,s:{},s:s,s:[],s:s,s:[s]},s:[{s:s,s:{},s:s,s:{s:{s:s,s:s,s:s}},"
		"s:[]}],s:{s:s,s:s,s:{},s:s,s:[],s:s,s:s,s:s,s:s},s:o}",
		"container", lxd_instance(ctx, inst, false), "snapshots", snaps, "pool", "name",
		"default", "driver", ctx->pool->ops->name, "config", "description", "", "used_by",
		"status", "Created", "locations", "none", "profiles", "name", "default", "config",
		"description", "Default LXD profile", "devices", "root", "path", "/", "pool",
		"default", "type", "disk", "used_by", "volume", "name", name, "type", "container",
		"config", "description", "", "used_by", "location", "none", "content_type",
		"filesystem", "project", "default", "created_at",
		json_get_str(inst, "created_at", ZERO_TIME), "volume_snapshots", vsnaps);
	return doc;
}

/* ---- backup files ---- */

static bool backup_name_ok(const char *name, struct kiva_error *reterr)
{
	if (proto_snapshot_name_validate(name, NULL) < 0 || strchr(name, '.') == name) {
		kiva_error_set(reterr, -EINVAL,
			       "Invalid backup name '%s': 1-63 characters, no '/', no blanks, "
			       "not starting with '.'",
			       name ? name : "");
		return false;
	}
	return true;
}

static json_t *backup_info(struct api_ctx *ctx, const char *inst, const char *name)
{
	cleanup_free char *dir = backups_dir(ctx, inst);
	cleanup_free char *path = dir ? strf("%s/%s.json", dir, name) : NULL;
	cleanup_free char *text = NULL;

	if (!path || read_file(path, 65536, &text, NULL) < 0 || !text)
		return NULL;
	return json_loads(text, 0, NULL);
}

static json_t *backup_render(const char *inst, const json_t *info)
{
	json_t *out = json_deep_copy(info);

	json_object_del(out, "compression");
	json_object_set_new(out, "instance_name", json_string(inst));
	return out;
}

void api_backups_handle_list(struct api_request *req)
{
	const char *inst = req->params[0];
	cleanup_free char *dir = NULL;
	json_t *out;
	DIR *d;
	struct dirent *de;

	if (!store_instance(req->ctx->store, inst)) {
		api_reply_error(req, 404, "Instance '%s' not found", inst);
		return;
	}
	dir = backups_dir(req->ctx, inst);
	out = json_array();
	d = dir ? opendir(dir) : NULL;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char name[256];
		cleanup_json json_t *info = NULL;

		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0 || de->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 5), de->d_name);
		info = backup_info(req->ctx, inst, name);
		if (!info)
			continue;
		if (api_recursion(req) >= 1) {
			json_array_append_new(out, backup_render(inst, info));
		} else {
			char url[512];

			snprintf(url, sizeof(url), "/1.0/instances/%s/backups/%s", inst, name);
			json_array_append_new(out, json_string(url));
		}
	}
	if (d)
		closedir(d);
	api_reply_sync(req, out);
}

static json_t *find_backup(struct api_request *req)
{
	json_t *info = backup_info(req->ctx, req->params[0], req->params[1]);

	if (!info)
		api_reply_error(req, 404, "Backup '%s' of instance '%s' not found", req->params[1],
				req->params[0]);
	return info;
}

void api_backup_handle_get(struct api_request *req)
{
	cleanup_json json_t *info = find_backup(req);

	if (info)
		api_reply_sync(req, backup_render(req->params[0], info));
}

static int remove_backup(struct api_ctx *ctx, const char *inst, const char *name)
{
	cleanup_free char *dir = backups_dir(ctx, inst);
	cleanup_free char *tar = dir ? strf("%s/%s", dir, name) : NULL;
	cleanup_free char *json = dir ? strf("%s/%s.json", dir, name) : NULL;

	if (!tar || !json)
		return -ENOMEM;
	(void)unlink(json);
	if (unlink(tar) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

void api_backup_handle_delete(struct api_request *req)
{
	cleanup_json json_t *info = find_backup(req);
	struct api_op *op;
	int r;

	if (!info)
		return;
	r = remove_backup(req->ctx, req->params[0], req->params[1]);
	if (r < 0) {
		api_reply_error(req, 500, "Failed to delete the backup: %s", strerror(-r));
		return;
	}
	api_event_lifecycle(req->ctx, "instance-backup-deleted", req->params[0], NULL);
	op = api_op_new(req->ctx, "Deleting backup", NULL);
	if (!op) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	api_reply_async(req, op);
	api_op_succeed(op, NULL);
}

/* POST .../backups/NAME {"name": NEW}: rename. */
void api_backup_handle_post(struct api_request *req)
{
	cleanup_json json_t *info = find_backup(req), *body = NULL;
	cleanup_free char *dir = backups_dir(req->ctx, req->params[0]);
	cleanup_free char *from = NULL, *to = NULL, *jfrom = NULL, *jto = NULL, *text = NULL;
	struct kiva_error err = {0};
	const char *name;
	struct api_op *op;

	if (!info || api_parse_body(req, &body) < 0)
		return;
	name = json_get_str(body, "name", NULL);
	if (!backup_name_ok(name, &err)) {
		api_reply_kiva_error(req, &err);
		return;
	}
	from = strf("%s/%s", dir, req->params[1]);
	to = strf("%s/%s", dir, name);
	jfrom = strf("%s/%s.json", dir, req->params[1]);
	jto = strf("%s/%s.json", dir, name);
	if (!from || !to || !jfrom || !jto) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	if (access(jto, F_OK) == 0) {
		api_reply_error(req, 409, "Backup '%s' already exists", name);
		return;
	}
	json_object_set_new(info, "name", json_string(name));
	text = json_dump_compact(info);
	if (!text || renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0 ||
	    write_file_atomic(jto, text, strlen(text), 0600) < 0) {
		api_reply_error(req, 500, "Failed to rename the backup: %m");
		return;
	}
	(void)unlink(jfrom);
	op = api_op_new(req->ctx, "Renaming backup", NULL);
	if (!op) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	api_reply_async(req, op);
	api_op_succeed(op, NULL);
}

void api_backup_handle_export(struct api_request *req)
{
	cleanup_json json_t *info = find_backup(req);
	cleanup_free char *dir = backups_dir(req->ctx, req->params[0]);
	cleanup_free char *path = dir ? strf("%s/%s", dir, req->params[1]) : NULL;
	struct stat st;
	int fd;

	if (!info)
		return;
	fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		api_reply_error(req, 404, "Backup '%s' has no file", req->params[1]);
		return;
	}
	api_reply_file(req, 200, "application/octet-stream", fd, (size_t)st.st_size);
}

/* ---- export ---- */

struct backup_task {
	struct api_ctx *ctx;
	struct api_op *op;
	char inst[128];
	char name[64];
	char id[17];
	char tmpvol[64]; /* tmp-backup/ID: the frozen-instant copy of the instance */
	char *yaml_dir; /* STATE/tmp/backup-ID */
	char *out; /* the tarball being written */
	json_t *info;
	bool holds_busy;
	/* import */
	char *upload;
	char impvol[64]; /* tmp-import/ID */
	char *result; /* the helper's stdout file */
	int result_fd;
	char want_name[128];
};

static void backup_task_free(struct backup_task *t)
{
	if (!t)
		return;
	if (t->holds_busy)
		json_object_del(t->ctx->busy, t->inst);
	if (t->tmpvol[0])
		(void)storage_volume_delete(t->ctx->pool, t->tmpvol, NULL);
	if (t->impvol[0])
		(void)storage_volume_delete(t->ctx->pool, t->impvol, NULL);
	if (t->yaml_dir)
		(void)rm_rf(t->yaml_dir);
	if (t->upload)
		(void)unlink(t->upload);
	if (t->result_fd >= 0)
		close(t->result_fd);
	if (t->result)
		(void)unlink(t->result);
	free(t->yaml_dir);
	free(t->out);
	free(t->upload);
	free(t->result);
	json_decref(t->info);
	free(t);
}

static void backup_fail(struct backup_task *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void backup_fail(struct backup_task *t, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warning("Backup of '%s': %s", t->inst, msg);
	if (t->out)
		(void)unlink(t->out);
	api_op_fail(t->op, "%s", msg);
	backup_task_free(t);
}

static void exported(void *userdata, const struct api_spawn_result *res)
{
	struct backup_task *t = userdata;
	cleanup_free char *json = strf("%s.json", t->out);
	cleanup_free char *text = NULL;

	if (res->exit_status != 0) {
		backup_fail(t, "%s", res->message[0] ? res->message : "kiva-archive-helper failed");
		return;
	}
	text = json_dump_compact(t->info);
	if (!json || !text || write_file_atomic(json, text, strlen(text), 0600) < 0) {
		backup_fail(t, "Failed to record the backup");
		return;
	}
	api_event_lifecycle(t->ctx, "instance-backup-created", t->inst, NULL);
	api_op_succeed(t->op, NULL);
	backup_task_free(t);
}

static char *write_yaml(const char *dir, const char *file, json_t *doc)
{
	cleanup_free char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	char *path = strf("%s/%s", dir, file);

	json_decref(doc);
	if (!text || !path || write_file_atomic(path, text, strlen(text), 0600) < 0) {
		free(path);
		return NULL;
	}
	return path;
}

void api_backups_handle_create(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *inst_name = req->params[0];
	const json_t *inst = store_instance(ctx->store, inst_name);
	cleanup_json json_t *body = NULL;
	cleanup_free char *dir = NULL, *cyaml = NULL, *src = NULL, *vol = NULL;
	cleanup_strv char **args = NULL;
	struct kiva_error err = {0};
	const char *name, *comp, *exp_s;
	char buf[64], now[40], errbuf[256];
	bool instance_only, optimized, thaw = false;
	struct backup_task *t;
	size_t n = 0, cap;
	int64_t expires = 0;
	const char *key;
	json_t *snap;
	int r;

	if (!inst || !streq(json_get_str(inst, "kiva_state", ""), "ready")) {
		api_reply_error(req, 404, "Instance '%s' not found", inst_name);
		return;
	}
	if (api_parse_body(req, &body) < 0 ||
	    api_body_bool(req, body, "instance_only", false, &instance_only) < 0 ||
	    api_body_bool(req, body, "optimized_storage", false, &optimized) < 0)
		return;
	if (optimized) {
		api_reply_error(req, 400,
				"Optimized backups (btrfs send streams) are not supported: "
				"send optimized_storage false");
		return;
	}
	comp = json_get_str(body, "compression_algorithm", "gzip");
	if (!*comp)
		comp = "gzip";
	if (!streq(comp, "gzip") && !streq(comp, "zstd") && !streq(comp, "xz") &&
	    !streq(comp, "bzip2") && !streq(comp, "none")) {
		api_reply_error(req, 400,
				"Unsupported compression_algorithm '%s': gzip, zstd, xz, bzip2 or "
				"none",
				comp);
		return;
	}
	exp_s = json_get_str(body, "expires_at", NULL);
	if (exp_s && api_time_parse(exp_s, &expires) < 0) {
		api_reply_error(req, 400, "Invalid expires_at '%s': expected RFC 3339", exp_s);
		return;
	}
	dir = backups_dir(ctx, inst_name);
	name = json_get_str(body, "name", NULL);
	if (!name || !*name) {
		for (int i = 0;; i++) {
			cleanup_free char *p = NULL;

			snprintf(buf, sizeof(buf), "backup%d", i);
			p = strf("%s/%s.json", dir, buf);
			if (!p || access(p, F_OK) < 0)
				break;
		}
		name = buf;
	} else if (!backup_name_ok(name, &err)) {
		api_reply_kiva_error(req, &err);
		return;
	}
	{
		cleanup_json json_t *old = backup_info(ctx, inst_name, name);

		if (old) {
			api_reply_error(req, 409, "Backup '%s' already exists", name);
			return;
		}
	}
	if (json_string_value(json_object_get(ctx->busy, inst_name))) {
		api_reply_error(req, 409, "Instance '%s' is busy: %s", inst_name,
				json_string_value(json_object_get(ctx->busy, inst_name)));
		return;
	}
	t = calloc(1, sizeof(*t));
	if (!t || mkdir_p(dir, 0700) < 0 || random_hex(t->id, 8) < 0) {
		free(t);
		api_reply_error(req, 500, "Failed to prepare the backup: %m");
		return;
	}
	t->ctx = ctx;
	t->result_fd = -1;
	snprintf(t->inst, sizeof(t->inst), "%s", inst_name);
	snprintf(t->name, sizeof(t->name), "%s", name);
	now_rfc3339(now);
	{
		char exp[40];

		if (expires > 0)
			api_time_format(expires, exp);
		else
			snprintf(exp, sizeof(exp), "%s", ZERO_TIME);
		t->info = json_pack("{s:s,s:s,s:s,s:b,s:b,s:s}", "name", name, "created_at", now,
				    "expires_at", exp, "instance_only", instance_only,
				    "optimized_storage", 0, "compression", comp);
	}
	t->out = strf("%s/%s", dir, name);
	t->yaml_dir = strf("%s/backup-%s", ctx->tmp_dir, t->id);
	snprintf(t->tmpvol, sizeof(t->tmpvol), "tmp-backup/%s", t->id);
	src = strf("containers/%s", inst_name);
	if (!t->info || !t->out || !t->yaml_dir || !src || mkdir_p(t->yaml_dir, 0700) < 0) {
		backup_task_free(t);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	/* the instance at one instant (frozen only for the snapshot) */
	if (runtime_state(ctx->lxcpath, inst_name) == RUNTIME_RUNNING) {
		if (runtime_freeze(ctx->lxcpath, inst_name, errbuf, sizeof(errbuf)) < 0) {
			backup_task_free(t);
			api_reply_error(req, 500, "%s", errbuf);
			return;
		}
		thaw = true;
	}
	r = storage_volume_snapshot(ctx->pool, src, t->tmpvol, true, &err);
	if (thaw && runtime_unfreeze(ctx->lxcpath, inst_name, errbuf, sizeof(errbuf)) < 0)
		log_error("Instance '%s' stays frozen after a backup: %s", inst_name, errbuf);
	if (r < 0) {
		t->tmpvol[0] = 0;
		backup_task_free(t);
		api_reply_error(req, 500, "Failed to snapshot '%s' for the backup: %s", inst_name,
				err.msg);
		return;
	}
	cyaml = write_yaml(t->yaml_dir, "container.yaml", backup_doc(ctx, inst, !instance_only));
	vol = storage_volume_path(ctx->pool, t->tmpvol);
	cap = 8 + 3 * json_object_size(json_object_get(inst, "snapshots"));
	args = calloc(cap, sizeof(char *));
	if (!cyaml || !vol || !args) {
		backup_task_free(t);
		api_reply_error(req, 500, "Failed to write backup.yaml");
		return;
	}
	args[n++] = strdup("backup-export");
	args[n++] = strdup(t->out);
	args[n++] = strdup(comp);
	args[n++] = strdup(inst_name);
	args[n++] = strdup(vol);
	args[n++] = strdup(cyaml);
	if (!instance_only)
		json_object_foreach((json_t *)json_object_get(inst, "snapshots"), key, snap) {
			cleanup_free char *rel = strf("snapshots/%s/%s", inst_name,
						      json_get_str(snap, "volume", ""));
			cleanup_free char *file = strf("snap-%zu.yaml", n);
			json_t *one =
				json_pack("{s:o}", "container", lxd_instance(ctx, snap, true));

			args[n++] = strdup(key);
			args[n++] = rel ? storage_volume_path(ctx->pool, rel) : NULL;
			args[n++] = file ? write_yaml(t->yaml_dir, file, one) : NULL;
			if (!args[n - 1] || !args[n - 2]) {
				backup_task_free(t);
				api_reply_error(req, 500, "Failed to write backup.yaml");
				return;
			}
		}
	{
		char iurl[256], burl[512];

		/* lxc export takes the backup name from resources.backups[0] */
		snprintf(iurl, sizeof(iurl), "/1.0/instances/%s", inst_name);
		snprintf(burl, sizeof(burl), "/1.0/backups/%s", name); /* LXD 5.0 names it so */
		t->op = api_op_new(ctx, "Backing up instance",
				   json_pack("{s:[s],s:[s]}", "instances", iurl, "backups", burl));
	}
	if (!t->op) {
		backup_task_free(t);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	if (json_object_set_new(ctx->busy, inst_name, json_string("Backing up instance")) == 0)
		t->holds_busy = true;
	api_reply_async(req, t->op);
	r = api_spawn_helper(ctx, ctx->archive_helper_path, args, -1, -1, -1, exported, t);
	if (r < 0)
		backup_fail(t, "Failed to run kiva-archive-helper: %s", strerror(-r));
}

/* ---- import ---- */

/* Keys LXD writes that KIVA sets itself or does not have: dropped from imported configs. */
static bool dropped_key(const char *key)
{
	return startswith(key, "volatile.") && !streq(key, "volatile.base_image");
}

static json_t *import_config(struct api_ctx *ctx, const json_t *config, struct kiva_error *reterr)
{
	json_t *out = json_object();
	const char *key;
	json_t *v;
	char idmap[16];

	if (!out)
		return NULL;
	json_object_foreach((json_t *)config, key, v) {
		if (dropped_key(key))
			continue;
		if (!json_is_string(v)) {
			kiva_error_set(reterr, -EINVAL,
				       "backup.yaml: config value of '%s' is not a string", key);
			json_decref(out);
			return NULL;
		}
		json_object_set(out, key, v);
	}
	if (proto_config_validate(out, &ctx->proto_host, true, reterr) < 0) {
		json_decref(out);
		return NULL;
	}
	snprintf(idmap, sizeof(idmap), "%u", ctx->idmap_base);
	json_object_set_new(out, "volatile.idmap.base", json_string(idmap));
	return out;
}

/* devices without LXD's root disk (KIVA's rootfs is the instance volume) */
static json_t *import_devices(const json_t *devices)
{
	json_t *out = json_deep_copy(json_is_object(devices) ? devices : json_object());
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(out, tmp, key, v)
		if (streq(json_get_str(v, "type", ""), "disk") &&
		    streq(json_get_str(v, "path", ""), "/"))
			json_object_del(out, key);
	return out;
}

/* A volume directory as every other volume has it: 0755 (the container's root, uid 100000,
 * must reach rootfs/; the archive's own mode of the directory is not trusted). */
static void volume_open_up(struct api_ctx *ctx, const char *rel)
{
	cleanup_free char *path = storage_volume_path(ctx->pool, rel);

	if (path && chmod(path, 0755) < 0)
		log_warning("chmod %s: %m", path);
}

static void imported(void *userdata, const struct api_spawn_result *res)
{
	struct backup_task *t = userdata;
	struct api_ctx *ctx = t->ctx;
	cleanup_free char *text = NULL;
	cleanup_json json_t *result = NULL, *inst = NULL, *snaps = NULL;
	struct kiva_error err = {0};
	const json_t *backup, *c, *list;
	const char *name;
	char now[40];
	size_t i;
	json_t *s;
	int r;

	if (res->exit_status != 0) {
		backup_fail(t, "%s", res->message[0] ? res->message : "kiva-archive-helper failed");
		return;
	}
	if (read_file(t->result, 64 * 1024 * 1024, &text, NULL) < 0 || !text ||
	    !(result = json_loads(text, 0, NULL))) {
		backup_fail(t, "The backup's index could not be read");
		return;
	}
	backup = json_object_get(result, "backup");
	c = json_object_get(backup, "container");
	name = t->want_name[0] ? t->want_name : json_get_str(result, "name", "");
	snprintf(t->inst, sizeof(t->inst), "%s", name);
	if (proto_instance_name_validate(name, &err) < 0) {
		backup_fail(t, "%s", err.msg);
		return;
	}
	if (store_instance(ctx->store, name) || json_object_get(ctx->creating, name)) {
		backup_fail(t, "Instance '%s' already exists", name);
		return;
	}
	if (!json_is_object(c)) {
		backup_fail(t, "backup.yaml has no 'container' section");
		return;
	}
	if (!streq(json_get_str(c, "type", "container"), "container")) {
		backup_fail(t, "Only containers can be imported, not '%s'",
			    json_get_str(c, "type", ""));
		return;
	}
	now_rfc3339(now);
	inst = json_pack("{s:s,s:s,s:s,s:o?,s:o,s:b,s:[s],s:s,s:s,s:s}", "name", name, "type",
			 "container", "architecture", json_get_str(c, "architecture", "x86_64"),
			 "config", import_config(ctx, json_object_get(c, "config"), &err),
			 "devices", import_devices(json_object_get(c, "devices")), "ephemeral",
			 json_is_true(json_object_get(c, "ephemeral")), "profiles", "default",
			 "description", json_get_str(c, "description", ""), "created_at",
			 json_get_str(c, "created_at", now), "last_used_at", now);
	if (!inst || !json_object_get(inst, "config")) {
		backup_fail(t, "%s", err.msg[0] ? err.msg : "Out of memory");
		return;
	}
	if (api_devices_validate(ctx, name, json_object_get(inst, "devices"), &err) < 0 ||
	    api_nics_assign(ctx, inst, &err) < 0 || api_sched_check(ctx, inst, &err) < 0) {
		backup_fail(t, "%s", err.msg);
		return;
	}
	/* snapshots: the index's list, their records from backup.yaml */
	snaps = json_object();
	list = json_object_get(result, "snapshots");
	json_array_foreach((json_t *)list, i, s) {
		const char *sname = json_string_value(s);
		const json_t *rec = NULL, *x;
		size_t j;
		char id[17];
		json_t *snap;

		json_array_foreach(json_object_get(backup, "snapshots"), j, x)
			if (streq(json_get_str(x, "name", ""), sname))
				rec = x;
		if (!rec)
			rec = json_object();
		if (proto_snapshot_name_validate(sname, &err) < 0 || random_hex(id, 8) < 0) {
			backup_fail(t, "%s", err.msg[0] ? err.msg : "No randomness");
			return;
		}
		snap = json_pack(
			"{s:s,s:s,s:s,s:s,s:b,s:o?,s:o,s:[s],s:b,s:s,s:s,s:s,s:b}", "name", sname,
			"created_at", json_get_str(rec, "created_at", now), "last_used_at", now,
			"expires_at", json_get_str(rec, "expires_at", ZERO_TIME), "stateful", 0,
			"config", import_config(ctx, json_object_get(rec, "config"), &err),
			"devices", import_devices(json_object_get(rec, "devices")), "profiles",
			"default", "ephemeral", 0, "architecture",
			json_get_str(rec, "architecture", "x86_64"), "description",
			json_get_str(rec, "description", ""), "volume", id, "scheduled", 0);
		if (!snap || !json_object_get(snap, "config")) {
			json_decref(snap);
			backup_fail(t, "Snapshot '%s': %s", sname, err.msg);
			return;
		}
		json_object_set_new(snaps, sname, snap);
	}
	json_object_set(inst, "snapshots", snaps);
	/* the volumes into place (renames within the pool) */
	{
		cleanup_free char *from = strf("%s/container", t->impvol);
		cleanup_free char *to = strf("containers/%s", name);

		r = from && to ? storage_volume_rename(ctx->pool, from, to, &err) : -ENOMEM;
		if (r < 0) {
			backup_fail(t, "Failed to move the imported volume: %s", err.msg);
			return;
		}
		volume_open_up(ctx, to);
	}
	{
		const char *sname;
		json_t *snap;

		json_object_foreach(snaps, sname, snap) {
			cleanup_free char *from = strf("%s/snapshots/%s", t->impvol, sname);
			cleanup_free char *to =
				strf("snapshots/%s/%s", name, json_get_str(snap, "volume", ""));

			r = from && to ? storage_volume_rename(ctx->pool, from, to, &err) : -ENOMEM;
			if (r < 0) {
				(void)api_instance_dematerialize(ctx, name, NULL);
				backup_fail(t, "Failed to move an imported snapshot: %s", err.msg);
				return;
			}
			volume_open_up(ctx, to);
		}
	}
	{
		struct api_op *op = t->op;

		t->op = NULL;
		backup_task_free(t); /* the temporary files */
		(void)api_instance_commit_new(ctx, op, inst, &err);
	}
}

void api_backups_import(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	cleanup_free char *dest = NULL, *tmproot = NULL;
	char maxb[32], shift[16];
	struct statvfs sv;
	struct backup_task *t;
	struct kiva_error err = {0};
	int r;

	if (req->upload_bytes == 0) {
		api_reply_error(req, 400, "Empty backup upload");
		return;
	}
	if (req->lxd_name[0] && proto_instance_name_validate(req->lxd_name, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	if (req->lxd_name[0] && (store_instance(ctx->store, req->lxd_name) ||
				 json_object_get(ctx->creating, req->lxd_name))) {
		api_reply_error(req, 409, "Instance '%s' already exists", req->lxd_name);
		return;
	}
	t = calloc(1, sizeof(*t));
	if (!t || random_hex(t->id, 8) < 0) {
		free(t);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	t->ctx = ctx;
	t->result_fd = -1;
	snprintf(t->want_name, sizeof(t->want_name), "%s", req->lxd_name);
	snprintf(t->inst, sizeof(t->inst), "%s", req->lxd_name[0] ? req->lxd_name : "import");
	t->upload = strf("%s/import-%s.tar", ctx->tmp_dir, t->id);
	t->result = strf("%s/import-%s.json", ctx->tmp_dir, t->id);
	tmproot = storage_volume_path(ctx->pool, "tmp-import");
	snprintf(t->impvol, sizeof(t->impvol), "tmp-import/%s", t->id);
	dest = storage_volume_path(ctx->pool, t->impvol);
	if (!t->upload || !t->result || !tmproot || !dest || mkdir_p(tmproot, 0700) < 0 ||
	    rename(req->upload_path, t->upload) < 0) {
		backup_task_free(t);
		api_reply_error(req, 500, "Failed to keep the upload: %m");
		return;
	}
	t->result_fd = open(t->result, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (t->result_fd < 0) {
		backup_task_free(t);
		api_reply_error(req, 500, "Failed to prepare the import: %m");
		return;
	}
	/* what the archive may expand to: the pool's free space */
	if (statvfs(tmproot, &sv) < 0)
		sv.f_bavail = 0, sv.f_frsize = 0;
	snprintf(maxb, sizeof(maxb), "%llu",
		 (unsigned long long)sv.f_bavail * sv.f_frsize > 0
			 ? (unsigned long long)sv.f_bavail * sv.f_frsize
			 : 1ULL);
	snprintf(shift, sizeof(shift), "%u", ctx->idmap_base);
	t->op = api_op_new(ctx, "Importing instance", NULL);
	if (!t->op) {
		backup_task_free(t);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	api_reply_async(req, t->op);
	{
		char *args[] = {"backup-import", t->upload, dest, maxb, "auto", shift, NULL};

		r = api_spawn_helper(ctx, ctx->archive_helper_path, args, t->result_fd, -1, -1,
				     imported, t);
	}
	if (r < 0)
		backup_fail(t, "Failed to run kiva-archive-helper: %s", strerror(-r));
}

/* ---- upkeep ---- */

void api_backups_forget(struct api_ctx *ctx, const char *name)
{
	cleanup_free char *dir = backups_dir(ctx, name);

	if (dir)
		(void)rm_rf(dir);
}

void api_backups_reconcile(struct api_ctx *ctx)
{
	/* exports and imports cut by a crash */
	(void)storage_volume_delete(ctx->pool, "tmp-backup", NULL);
	(void)storage_volume_delete(ctx->pool, "tmp-import", NULL);
}

void api_backups_tick(struct api_ctx *ctx, int64_t now)
{
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	const char *name;
	json_t *inst;

	json_object_foreach((json_t *)insts, name, inst) {
		cleanup_free char *dir = backups_dir(ctx, name);
		DIR *d = dir ? opendir(dir) : NULL;
		struct dirent *de;

		while (d && (de = readdir(d))) {
			size_t n = strlen(de->d_name);
			char bname[256];
			cleanup_json json_t *info = NULL;
			int64_t exp;

			if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
				continue;
			snprintf(bname, sizeof(bname), "%.*s", (int)(n - 5), de->d_name);
			info = backup_info(ctx, name, bname);
			if (info &&
			    api_time_parse(json_get_str(info, "expires_at", ""), &exp) == 0 &&
			    exp > 0 && exp <= now) {
				log_info("Instance '%s': backup '%s' expired", name, bname);
				(void)remove_backup(ctx, name, bname);
			}
		}
		if (d)
			closedir(d);
	}
}
