/* Start-up reconciliation: the store says what should exist, liblxc and the pool say what does.
 * Cut workflows are finished in the direction their record names (api-instances.c ordering):
 * a create cut before its commit left files and no record → the files go; "deleting" → deleted;
 * ("creating" records, written by earlier versions, are made again from their image);
 * "ready" instances get their liblxc config rewritten from the record. Containers and volumes
 * that no record names are removed (after a forced stop if one still runs). Running containers
 * are never touched. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "basic-log.h"
#include "basic-string.h"

struct reconcile {
	struct api_ctx *ctx;
	unsigned pending;
	void (*cb)(struct api_ctx *ctx, void *userdata);
	void *userdata;
};

static void one_done(struct reconcile *rc)
{
	struct kiva_error err = {0};

	if (--rc->pending > 0)
		return;
	/* bridges, leftover interfaces, QoS of running NICs, the nftables tables */
	if (api_net_reconcile(rc->ctx, &err) < 0)
		log_warning("Reconcile: networking: %s", err.msg);
	rc->cb(rc->ctx, rc->userdata);
	free(rc);
}

static void applied(void *userdata, int status, const char *errmsg)
{
	if (status < 0)
		log_warning("Reconcile: store update failed: %s", errmsg);
	one_done(userdata);
}

static void submit(struct reconcile *rc, json_t *cmd)
{
	rc->pending++;
	if (!cmd || store_apply(rc->ctx->store, cmd, applied, rc) < 0) {
		log_warning("Reconcile: failed to submit a store update");
		rc->pending--;
	}
	json_decref(cmd);
}

struct reconcile_start {
	void (*cb)(struct api_ctx *ctx, void *userdata);
	void *userdata;
};

static void reconcile_instances(struct api_ctx *ctx,
				void (*cb)(struct api_ctx *ctx, void *userdata), void *userdata);

static void networks_ready(struct api_ctx *ctx, void *userdata)
{
	struct reconcile_start *s = userdata;

	reconcile_instances(ctx, s->cb, s->userdata);
	free(s);
}

void api_reconcile(struct api_ctx *ctx, void (*cb)(struct api_ctx *ctx, void *userdata),
		   void *userdata)
{
	struct reconcile_start *s = calloc(1, sizeof(*s));

	if (!s) {
		reconcile_instances(ctx, cb, userdata);
		return;
	}
	s->cb = cb;
	s->userdata = userdata;
	api_net_first_start(ctx, networks_ready, s);
}

static void reconcile_instances(struct api_ctx *ctx,
				void (*cb)(struct api_ctx *ctx, void *userdata), void *userdata)
{
	const json_t *insts = json_object_get(store_state(ctx->store), "instances");
	struct reconcile *rc = calloc(1, sizeof(*rc));
	cleanup_strv char **names = NULL;
	cleanup_json json_t *work = json_deep_copy(insts);
	const char *name;
	json_t *inst;

	if (!rc) {
		cb(ctx, userdata);
		return;
	}
	/* who holds which CPUs, from the records and the running containers' cgroups */
	api_sched_rebuild(ctx);
	/* snapshot volumes of cut creates/deletes, restores cut half-way */
	api_instances_reconcile_restores(ctx);
	api_snapshots_reconcile(ctx);
	api_backups_reconcile(ctx);
	rc->ctx = ctx;
	rc->cb = cb;
	rc->userdata = userdata;
	rc->pending = 1; /* held until the end of this function */

	json_object_foreach(work, name, inst) {
		const char *state = json_get_str(inst, "kiva_state", "");
		struct kiva_error err = {0};

		if (streq(state, "creating")) {
			if (api_instance_materialize(ctx, inst, &err) < 0) {
				log_warning("Reconcile: dropping half-made instance '%s': %s", name,
					    err.msg);
				(void)api_instance_dematerialize(ctx, name, NULL);
				submit(rc, store_cmd_instance_delete(name));
			} else {
				json_object_set_new(inst, "kiva_state", json_string("ready"));
				log_info("Reconcile: finished creating instance '%s'", name);
				submit(rc, store_cmd_instance_put(inst));
			}
		} else if (streq(state, "deleting")) {
			if (runtime_state(ctx->lxcpath, name) == RUNTIME_RUNNING) {
				log_warning("Reconcile: '%s' is being deleted but runs; leaving it",
					    name);
				continue;
			}
			if (api_instance_dematerialize(ctx, name, &err) < 0) {
				log_warning("Reconcile: can't finish deleting '%s': %s", name,
					    err.msg);
				continue;
			}
			log_info("Reconcile: finished deleting instance '%s'", name);
			submit(rc, store_cmd_instance_delete(name));
		} else if (api_instance_write_config(ctx, inst, NULL) < 0) {
			log_warning("Reconcile: can't rewrite the config of '%s'", name);
		}
	}

	/* rootfs volumes nobody owns (a create cut before its commit) */
	{
		cleanup_free char *dir = storage_volume_path(ctx->pool, "containers");
		DIR *d = dir ? opendir(dir) : NULL;
		struct dirent *de;

		while (d && (de = readdir(d))) {
			cleanup_free char *rel = NULL;

			if (de->d_name[0] == '.' || json_object_get(insts, de->d_name))
				continue;
			if (runtime_state(ctx->lxcpath, de->d_name) != RUNTIME_STOPPED &&
			    runtime_state(ctx->lxcpath, de->d_name) != RUNTIME_MISSING)
				continue;
			rel = strf("containers/%s", de->d_name);
			log_info("Reconcile: removing leftover rootfs '%s'", de->d_name);
			if (rel)
				(void)storage_volume_delete(ctx->pool, rel, NULL);
		}
		if (d)
			closedir(d);
	}

	/* leftovers nobody owns */
	if (runtime_list(ctx->lxcpath, &names) >= 0) {
		for (char **n = names; n && *n; n++) {
			if (json_object_get(insts, *n))
				continue;
			if (runtime_state(ctx->lxcpath, *n) != RUNTIME_STOPPED &&
			    runtime_state(ctx->lxcpath, *n) != RUNTIME_MISSING) {
				log_warning(
					"Reconcile: container '%s' has no record but runs; leaving it",
					*n);
				continue;
			}
			log_info("Reconcile: removing leftover container '%s'", *n);
			(void)api_instance_dematerialize(ctx, *n, NULL);
		}
	}
	one_done(rc);
}
