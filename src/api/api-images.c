/* /1.0/images and /1.0/images/aliases: the local image store. Images are built offline
 * (KIVA's builders, `{"source": {"type": "builder", "name": "busybox"}}`) or imported from an LXD
 * unified image tarball uploaded as the request body (application/octet-stream, as `lxc image
 * import` sends it). Files are made by kiva-helper; records go through the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"
#include "image.h"
#include "proto-name.h"

#define BUSYBOX_PATH "/bin/busybox"
#define BUILDER_VERSION "kiva-busybox-3" /* bump when the image content changes */

struct image_task {
	struct api_ctx *ctx;
	struct api_op *op;
	char fingerprint[65];
	char *upload; /* tarball being imported (removed at the end) */
	json_t *aliases; /* [{"name", "description"}] to create */
	json_t *image; /* record being added */
	json_t *properties; /* publish: properties given by the request */
	bool public; /* publish: "public": true */
	size_t next_alias;
	char filename[256];
};

static void image_task_free(struct image_task *t)
{
	if (!t)
		return;
	if (t->upload) {
		unlink(t->upload);
		free(t->upload);
	}
	json_decref(t->aliases);
	json_decref(t->image);
	json_decref(t->properties);
	free(t);
}

static void image_task_fail(struct image_task *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void image_task_fail(struct image_task *t, const char *fmt, ...)
{
	cleanup_free char *rel = strf("images/%s", t->fingerprint);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warning("Image %.12s: %s", t->fingerprint, msg);
	if (rel && !store_image(t->ctx->store, t->fingerprint))
		(void)storage_volume_delete(t->ctx->pool, rel, NULL);
	api_op_fail(t->op, "%s", msg);
	image_task_free(t);
}

const json_t *api_image_resolve(struct api_ctx *ctx, const char *name)
{
	const json_t *images = json_object_get(store_state(ctx->store), "images");
	const json_t *alias = store_alias(ctx->store, name), *found = NULL;
	const char *fp;
	json_t *img;
	size_t n = strlen(name);

	if (alias)
		return store_image(ctx->store, json_get_str(alias, "target", ""));
	if (store_image(ctx->store, name))
		return store_image(ctx->store, name);
	if (n == 0)
		return NULL;
	json_object_foreach((json_t *)images, fp, img) {
		if (strncmp(fp, name, n) == 0) {
			if (found)
				return NULL; /* ambiguous prefix */
			found = img;
		}
	}
	return found;
}

static json_t *aliases_of(struct api_ctx *ctx, const char *fp)
{
	const json_t *aliases = json_object_get(store_state(ctx->store), "aliases");
	json_t *list = json_array();
	const char *name;
	json_t *a;

	json_object_foreach((json_t *)aliases, name, a)
		if (streq(json_get_str(a, "target", ""), fp))
			json_array_append_new(list,
					      json_pack("{s:s,s:s}", "name", name, "description",
							json_get_str(a, "description", "")));
	return list;
}

static json_t *image_render(struct api_ctx *ctx, const json_t *img)
{
	json_t *out = json_deep_copy(img);

	json_object_set_new(out, "aliases", aliases_of(ctx, json_get_str(img, "fingerprint", "")));
	return out;
}

void api_images_handle_list(struct api_request *req)
{
	const json_t *images = json_object_get(store_state(req->ctx->store), "images");
	bool recursive = api_recursion(req) > 0;
	json_t *list = json_array();
	const char *fp;
	json_t *img;

	json_object_foreach((json_t *)images, fp, img) {
		if (recursive) {
			json_array_append_new(list, image_render(req->ctx, img));
		} else {
			char url[128];

			snprintf(url, sizeof(url), "/1.0/images/%s", fp);
			json_array_append_new(list, json_string(url));
		}
	}
	api_reply_sync(req, list);
}

static const json_t *find_image(struct api_request *req)
{
	const json_t *images = json_object_get(store_state(req->ctx->store), "images");
	const char *want = req->params[0], *fp;
	const json_t *found = NULL;
	json_t *img;

	json_object_foreach((json_t *)images, fp, img) {
		if (strncmp(fp, want, strlen(want)) == 0) {
			if (found) {
				api_reply_error(req, 400, "More than one image matches '%s'", want);
				return NULL;
			}
			found = img;
		}
	}
	if (!found || !*want)
		api_reply_error(req, 404, "Image '%s' not found", want);
	return *want ? found : NULL;
}

void api_image_handle_get(struct api_request *req)
{
	const json_t *img = find_image(req);

	if (img)
		api_reply_sync(req, image_render(req->ctx, img));
}

/* ---- create: builders and uploads share the tail ---- */

static void alias_step(struct image_task *t);

static void alias_added(void *userdata, int status, const char *errmsg)
{
	struct image_task *t = userdata;

	if (status < 0) {
		/* the image itself is in: report the alias problem */
		api_op_fail(t->op, "Image %.12s added, but alias failed: %s", t->fingerprint,
			    errmsg);
		image_task_free(t);
		return;
	}
	alias_step(t);
}

static void alias_step(struct image_task *t)
{
	json_t *a = json_array_get(t->aliases, t->next_alias++);
	json_t *cmd;
	int r;

	if (!a) {
		json_t *meta = json_pack("{s:s,s:I}", "fingerprint", t->fingerprint, "size",
					 json_get_int(t->image, "size", 0));

		api_op_succeed(t->op, meta);
		image_task_free(t);
		return;
	}
	if (streq(json_get_str(store_alias(t->ctx->store, json_get_str(a, "name", "")), "target",
			       ""),
		  t->fingerprint)) {
		alias_step(t); /* already there (a rebuild of the same image) */
		return;
	}
	cmd = json_pack("{s:s,s:{s:s,s:s,s:s}}", "op", "alias.put", "alias", "name",
			json_get_str(a, "name", ""), "target", t->fingerprint, "description",
			json_get_str(a, "description", ""));
	r = cmd ? store_apply(t->ctx->store, cmd, alias_added, t) : -ENOMEM;
	json_decref(cmd);
	if (r < 0) {
		api_op_fail(t->op, "Failed to record alias: %s", strerror(-r));
		image_task_free(t);
	}
}

static void image_recorded(void *userdata, int status, const char *errmsg)
{
	struct image_task *t = userdata;

	if (status < 0) {
		image_task_fail(t, "Failed to record the image: %s", errmsg);
		return;
	}
	alias_step(t);
}

static void files_made(void *userdata, const struct api_spawn_result *res)
{
	struct image_task *t = userdata;
	cleanup_free char *rel = strf("images/%s", t->fingerprint);
	cleanup_free char *dir = rel ? storage_volume_path(t->ctx->pool, rel) : NULL;
	struct image_meta meta = {0};
	struct kiva_error err = {0};
	uint64_t size = 0;
	char now[40];
	json_t *cmd;
	int r;

	if (res->exit_status != 0) {
		image_task_fail(t, "%s", res->message[0] ? res->message : "kiva-helper failed");
		return;
	}
	if (!dir) {
		image_task_fail(t, "Out of memory");
		return;
	}
	r = image_meta_read(dir, &meta, &err);
	if (r < 0) {
		image_task_fail(t, "%s", err.msg);
		return;
	}
	(void)image_dir_size(dir, &size);
	now_rfc3339(now);
	t->image = json_pack(
		"{s:s,s:s,s:I,s:s,s:s,s:{s:s,s:s,s:s},s:b,s:s,s:b,s:b,s:s}", "fingerprint",
		t->fingerprint, "architecture", meta.architecture ? meta.architecture : "x86_64",
		"size", (json_int_t)size, "created_at", now, "uploaded_at", now, "properties", "os",
		meta.os ? meta.os : "", "release", meta.release ? meta.release : "", "description",
		meta.description ? meta.description : "", "public", 0, "type", "container",
		"auto_update", 0, "cached", 0, "filename", t->filename);
	image_meta_done(&meta);
	if (t->image && t->public)
		json_object_set_new(t->image, "public", json_true());
	if (t->image && json_is_object(t->properties)) {
		const char *key;
		json_t *v;

		json_object_foreach(t->properties, key, v)
			if (json_is_string(v))
				json_object_set(json_object_get(t->image, "properties"), key, v);
	}
	cmd = t->image ? store_cmd_image_put(t->image) : NULL;
	r = cmd ? store_apply(t->ctx->store, cmd, image_recorded, t) : -ENOMEM;
	json_decref(cmd);
	if (r < 0)
		image_task_fail(t, "Failed to record the image: %s", strerror(-r));
}

/* Validates the requested aliases (names, not taken by another image than fp). Replies on error. */
static int check_aliases(struct api_request *req, const json_t *aliases, const char *fp)
{
	struct kiva_error err = {0};
	size_t i;
	json_t *a;

	if (!aliases)
		return 0;
	if (!json_is_array(aliases)) {
		api_reply_error(req, 400, "Invalid aliases: expected an array of {\"name\": ...}");
		return -EINVAL;
	}
	json_array_foreach(aliases, i, a) {
		const char *name = json_get_str(a, "name", NULL);

		if (proto_alias_name_validate(name, &err) < 0) {
			api_reply_kiva_error(req, &err);
			return -EINVAL;
		}
		if (store_alias(req->ctx->store, name) &&
		    !(fp &&
		      streq(json_get_str(store_alias(req->ctx->store, name), "target", ""), fp))) {
			api_reply_error(req, 409, "Alias '%s' already exists", name);
			return -EEXIST;
		}
	}
	return 0;
}

static struct image_task *start_image_task(struct api_request *req, const char *fp,
					   const char *description, json_t *aliases)
{
	cleanup_free char *rel = strf("images/%s", fp);
	struct kiva_error err = {0};
	struct image_task *t;
	struct api_op *op;
	char url[128];

	snprintf(url, sizeof(url), "/1.0/images/%s", fp);
	if (!rel || storage_volume_create(req->ctx->pool, rel, &err) < 0) {
		api_reply_error(req, 500, "Failed to create the image volume: %s", err.msg);
		return NULL;
	}
	op = api_op_new(req->ctx, description, json_pack("{s:[s]}", "images", url));
	t = op ? calloc(1, sizeof(*t)) : NULL;
	if (!t) {
		(void)storage_volume_delete(req->ctx->pool, rel, NULL);
		api_reply_error(req, 500, "Out of memory");
		return NULL;
	}
	t->ctx = req->ctx;
	t->op = op;
	snprintf(t->fingerprint, sizeof(t->fingerprint), "%s", fp);
	t->aliases = aliases ? json_incref(aliases) : json_array();
	api_reply_async(req, op);
	return t;
}

static void create_from_builder(struct api_request *req, const json_t *body)
{
	const json_t *source = json_object_get(body, "source");
	const json_t *aliases = json_object_get(body, "aliases");
	const char *builder = json_get_str(source, "name", "");
	char fp[65], bbhash[65], shift[16];
	struct sha256_ctx h;
	struct image_task *t;
	cleanup_free char *rel = NULL, *dir = NULL;
	int r;

	if (!streq(builder, "busybox")) {
		api_reply_error(req, 400, "Unknown image builder '%s': available: busybox",
				builder);
		return;
	}
	r = sha256_file_hex(BUSYBOX_PATH, bbhash);
	if (r < 0) {
		api_reply_error(req, 500, "Can't read %s (package busybox-static): %s",
				BUSYBOX_PATH, strerror(-r));
		return;
	}
	snprintf(shift, sizeof(shift), "%u", req->ctx->idmap_base);
	sha256_init(&h);
	sha256_update(&h, BUILDER_VERSION "\n", strlen(BUILDER_VERSION) + 1);
	sha256_update(&h, bbhash, 64);
	sha256_update(&h, shift, strlen(shift));
	sha256_final_hex(&h, fp);
	if (check_aliases(req, aliases, fp) < 0)
		return;
	if (store_image(req->ctx->store, fp)) {
		/* same busybox, same builder: the image exists; add the aliases */
		struct api_op *op = api_op_new(req->ctx, "Building image", NULL);

		t = op ? calloc(1, sizeof(*t)) : NULL;
		if (!t) {
			api_reply_error(req, 500, "Out of memory");
			return;
		}
		t->ctx = req->ctx;
		t->op = op;
		snprintf(t->fingerprint, sizeof(t->fingerprint), "%s", fp);
		t->aliases = aliases ? json_incref((json_t *)aliases) : json_array();
		t->image = json_incref((json_t *)store_image(req->ctx->store, fp));
		api_reply_async(req, op);
		alias_step(t);
		return;
	}
	t = start_image_task(req, fp, "Building image", (json_t *)aliases);
	if (!t)
		return;
	snprintf(t->filename, sizeof(t->filename), "busybox");
	rel = strf("images/%s", fp);
	dir = rel ? storage_volume_path(req->ctx->pool, rel) : NULL;
	{
		char *args[] = {"build-busybox", dir, shift, NULL};

		r = dir ? api_spawn_helper(req->ctx, req->ctx->helper_path, args, -1, -1, -1,
					   files_made, t)
			: -ENOMEM;
	}
	if (r < 0)
		image_task_fail(t, "Failed to run the builder: %s", strerror(-r));
}

static void create_from_upload(struct api_request *req)
{
	char fp[65], shift[16], maxb[32];
	cleanup_free char *rel = NULL, *dir = NULL, *kept = NULL;
	struct image_task *t;
	int r;

	if (req->upload_bytes == 0) {
		api_reply_error(req, 400, "Empty image upload");
		return;
	}
	sha256_final_hex(&req->upload_hash, fp);
	if (store_image(req->ctx->store, fp)) {
		api_reply_error(req, 409, "Image with same fingerprint already exists");
		return;
	}
	kept = strf("%s/import-%s", req->ctx->tmp_dir, fp);
	if (!kept || rename(req->upload_path, kept) < 0) {
		api_reply_error(req, 500, "Failed to keep the upload: %m");
		return;
	}
	t = start_image_task(req, fp, "Importing image", NULL);
	if (!t) {
		unlink(kept);
		return;
	}
	t->upload = TAKE_PTR(kept);
	snprintf(t->filename, sizeof(t->filename), "%s", req->filename);
	snprintf(shift, sizeof(shift), "%u", req->ctx->idmap_base);
	snprintf(maxb, sizeof(maxb), "%llu", (unsigned long long)req->ctx->image_max_bytes);
	rel = strf("images/%s", fp);
	dir = rel ? storage_volume_path(req->ctx->pool, rel) : NULL;
	{
		char *args[] = {"unpack", t->upload, dir, shift, maxb, NULL};

		r = dir ? api_spawn_helper(req->ctx, req->ctx->archive_helper_path, args, -1, -1,
					   -1, files_made, t)
			: -ENOMEM;
	}
	if (r < 0)
		image_task_fail(t, "Failed to unpack the image: %s", strerror(-r));
}

/* Publish: {"source": {"type": "instance"|"snapshot", "name": "c1" | "c1/snap"}}. The image is a
 * clone of the instance's volume (already shifted to this host's idmap, like every image here),
 * frozen around the clone when it runs; its metadata.yaml is the one it was created from, with
 * "properties" of the request over it. The fingerprint names the publication (KIVA keeps images
 * unpacked: there is no tarball to hash). */
static void create_from_instance(struct api_request *req, const json_t *body)
{
	struct api_ctx *ctx = req->ctx;
	const json_t *source = json_object_get(body, "source");
	const json_t *aliases = json_object_get(body, "aliases");
	const char *name = json_get_str(source, "name", "");
	const char *slash = strchr(name, '/');
	char iname[128], fp[65], salt[33], now[40], errbuf[256];
	const json_t *inst, *snap = NULL;
	cleanup_free char *src = NULL, *rel = NULL;
	struct kiva_error err = {0};
	struct image_task *t;
	struct api_op *op;
	struct sha256_ctx h;
	bool thaw = false;
	int r;

	snprintf(iname, sizeof(iname), "%.*s", slash ? (int)(slash - name) : (int)strlen(name),
		 name);
	inst = store_instance(ctx->store, iname);
	if (!inst || !streq(json_get_str(inst, "kiva_state", ""), "ready")) {
		api_reply_error(req, 404, "Instance '%s' not found", iname);
		return;
	}
	if (streq(json_get_str(source, "type", ""), "snapshot") != !!slash) {
		api_reply_error(req, 400,
				"A source of type 'snapshot' is named INSTANCE/SNAPSHOT, one of "
				"type 'instance' INSTANCE");
		return;
	}
	if (slash) {
		snap = json_object_get(json_object_get(inst, "snapshots"), slash + 1);
		if (!snap) {
			api_reply_error(req, 404, "Snapshot '%s' of instance '%s' not found",
					slash + 1, iname);
			return;
		}
		src = strf("snapshots/%s/%s", iname, json_get_str(snap, "volume", ""));
	} else {
		src = strf("containers/%s", iname);
	}
	if (random_hex(salt, 16) < 0 || !src) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	now_rfc3339(now);
	sha256_init(&h);
	sha256_update(&h, src, strlen(src));
	sha256_update(&h, now, strlen(now));
	sha256_update(&h, salt, strlen(salt));
	sha256_final_hex(&h, fp);
	if (check_aliases(req, aliases, NULL) < 0)
		return;
	rel = strf("images/%s", fp);
	if (!rel) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	if (!snap && runtime_state(ctx->lxcpath, iname) == RUNTIME_RUNNING) {
		if (runtime_freeze(ctx->lxcpath, iname, errbuf, sizeof(errbuf)) < 0) {
			api_reply_error(req, 500, "%s", errbuf);
			return;
		}
		thaw = true;
	}
	r = storage_volume_clone(ctx->pool, src, rel, &err);
	if (thaw && runtime_unfreeze(ctx->lxcpath, iname, errbuf, sizeof(errbuf)) < 0)
		log_error("Instance '%s' stays frozen after a publish: %s", iname, errbuf);
	/* a btrfs clone inherits its source's limits.disk quota: images have none */
	if (r >= 0 && streq(ctx->pool->ops->name, "btrfs"))
		r = storage_volume_set_limit(ctx->pool, rel, 0, &err);
	if (r < 0) {
		(void)storage_volume_delete(ctx->pool, rel, NULL);
		api_reply_error(req, 500, "Failed to publish '%s': %s", name, err.msg);
		return;
	}
	op = api_op_new(ctx, "Publishing image", json_pack("{s:[s]}", "images", rel));
	t = op ? calloc(1, sizeof(*t)) : NULL;
	if (!t) {
		(void)storage_volume_delete(ctx->pool, rel, NULL);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	t->ctx = ctx;
	t->op = op;
	snprintf(t->fingerprint, sizeof(t->fingerprint), "%s", fp);
	snprintf(t->filename, sizeof(t->filename), "%s", name);
	t->aliases = aliases ? json_incref((json_t *)aliases) : json_array();
	t->properties = json_incref(json_object_get(body, "properties"));
	t->public = json_is_true(json_object_get(body, "public"));
	api_reply_async(req, op);
	{
		struct api_spawn_result ok = {.exit_status = 0};

		files_made(t, &ok); /* records the image, then its aliases */
	}
}

void api_images_handle_create(struct api_request *req)
{
	cleanup_json json_t *body = NULL;
	const char *stype;

	if (req->upload) {
		create_from_upload(req);
		return;
	}
	if (api_parse_body(req, &body) < 0)
		return;
	stype = json_get_str(json_object_get(body, "source"), "type", NULL);
	if (!stype) {
		api_reply_error(req, 400,
				"Missing source: {\"type\": \"builder\", \"name\": "
				"\"busybox\"} or an image tarball upload");
		return;
	}
	if (streq(stype, "instance") || streq(stype, "snapshot")) {
		create_from_instance(req, body);
		return;
	}
	if (!streq(stype, "builder")) {
		api_reply_error(req, 400,
				"Unsupported image source type '%s': use 'builder', 'instance', "
				"'snapshot' or upload a tarball",
				stype);
		return;
	}
	create_from_builder(req, body);
}

/* ---- delete ---- */

static void image_deleted(void *userdata, int status, const char *errmsg)
{
	struct image_task *t = userdata;
	cleanup_free char *rel = strf("images/%s", t->fingerprint);
	struct kiva_error err = {0};

	if (status < 0) {
		api_op_fail(t->op, "Failed to delete the image: %s", errmsg);
		image_task_free(t);
		return;
	}
	if (rel && storage_volume_delete(t->ctx->pool, rel, &err) < 0)
		log_warning("Image %.12s: %s", t->fingerprint, err.msg);
	api_op_succeed(t->op, NULL);
	image_task_free(t);
}

void api_image_handle_delete(struct api_request *req)
{
	const json_t *img = find_image(req);
	struct image_task *t;
	struct api_op *op;
	char url[128];
	json_t *cmd;
	int r;

	if (!img)
		return;
	snprintf(url, sizeof(url), "/1.0/images/%s", json_get_str(img, "fingerprint", ""));
	op = api_op_new(req->ctx, "Deleting image", json_pack("{s:[s]}", "images", url));
	t = op ? calloc(1, sizeof(*t)) : NULL;
	if (!t) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	t->ctx = req->ctx;
	t->op = op;
	snprintf(t->fingerprint, sizeof(t->fingerprint), "%s",
		 json_get_str(img, "fingerprint", ""));
	api_reply_async(req, op);
	cmd = store_cmd_image_delete(t->fingerprint);
	r = cmd ? store_apply(req->ctx->store, cmd, image_deleted, t) : -ENOMEM;
	json_decref(cmd);
	if (r < 0) {
		api_op_fail(op, "Failed to delete the image: %s", strerror(-r));
		image_task_free(t);
	}
}

/* ---- aliases ---- */

void api_aliases_handle_list(struct api_request *req)
{
	const json_t *aliases = json_object_get(store_state(req->ctx->store), "aliases");
	bool recursive = api_recursion(req) > 0;
	json_t *list = json_array();
	const char *name;
	json_t *a;

	json_object_foreach((json_t *)aliases, name, a) {
		char url[512];

		snprintf(url, sizeof(url), "/1.0/images/aliases/%s", name);
		json_array_append_new(list, recursive ? json_deep_copy(a) : json_string(url));
	}
	api_reply_sync(req, list);
}

static void alias_committed(void *userdata, int status, const char *errmsg)
{
	struct api_request *req = userdata;

	if (status < 0)
		api_reply_error(req, status == -ENOENT ? 404 : 400, "%s", errmsg);
	else
		api_reply_sync(req, NULL);
}

void api_aliases_handle_create(struct api_request *req)
{
	cleanup_json json_t *body = NULL, *alias = NULL, *cmd = NULL;
	struct kiva_error err = {0};
	const char *name, *target;
	const json_t *img;
	int r;

	if (api_parse_body(req, &body) < 0)
		return;
	name = json_get_str(body, "name", NULL);
	target = json_get_str(body, "target", NULL);
	if (proto_alias_name_validate(name, &err) < 0) {
		api_reply_kiva_error(req, &err);
		return;
	}
	if (!target) {
		api_reply_error(req, 400, "Missing target fingerprint");
		return;
	}
	if (store_alias(req->ctx->store, name)) {
		api_reply_error(req, 409, "Alias '%s' already exists", name);
		return;
	}
	img = api_image_resolve(req->ctx, target);
	if (!img || store_alias(req->ctx->store, target)) {
		api_reply_error(req, 404, "Image '%s' not found", target);
		return;
	}
	alias = json_pack("{s:s,s:s,s:s,s:s}", "name", name, "target",
			  json_get_str(img, "fingerprint", ""), "description",
			  json_get_str(body, "description", ""), "type", "container");
	cmd = alias ? store_cmd_alias_put(alias) : NULL;
	api_defer(req);
	r = cmd ? store_apply(req->ctx->store, cmd, alias_committed, req) : -ENOMEM;
	if (r < 0)
		api_reply_error(req, 503, "Failed to record the alias: %s", strerror(-r));
}

void api_alias_handle_get(struct api_request *req)
{
	const json_t *a = store_alias(req->ctx->store, req->params[0]);

	if (!a) {
		api_reply_error(req, 404, "Alias '%s' not found", req->params[0]);
		return;
	}
	api_reply_sync(req, json_deep_copy(a));
}

void api_alias_handle_delete(struct api_request *req)
{
	cleanup_json json_t *cmd = NULL;
	int r;

	if (!store_alias(req->ctx->store, req->params[0])) {
		api_reply_error(req, 404, "Alias '%s' not found", req->params[0]);
		return;
	}
	cmd = store_cmd_alias_delete(req->params[0]);
	api_defer(req);
	r = cmd ? store_apply(req->ctx->store, cmd, alias_committed, req) : -ENOMEM;
	if (r < 0)
		api_reply_error(req, 503, "Failed to delete the alias: %s", strerror(-r));
}
