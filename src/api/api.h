/* The daemon's API: LXD's /1.0 REST API over a unix socket (libwebsockets on kivad's libuv loop),
 * and the instance/image workflows its handlers drive (storage → runtime → store).
 * Everything runs on the loop thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic-error.h"
#include "proto-config.h"
#include "runtime.h"
#include "storage.h"
#include "store.h"

struct uv_loop_s;
struct api_server;
struct api_op;
struct api_sched;
struct api_event_sub;

/* Everything the handlers need. Owned by the daemon; the api module borrows it. */
struct api_ctx {
	struct uv_loop_s *loop;
	const char *state_dir;
	const char *lxcpath; /* STATE_DIR/containers */
	const char *logs_dir; /* STATE_DIR/logs */
	const char *tmp_dir; /* STATE_DIR/tmp: uploads */
	const char *socket_path;
	const char *helper_path; /* kiva-helper */
	const char *archive_helper_path; /* kiva-archive-helper (image imports) */
	const char *seccomp_path;
	struct store *store;
	struct storage_pool *pool;
	struct runtime_host host;
	struct proto_host proto_host;
	uint32_t idmap_base, idmap_size;
	uint64_t image_max_bytes; /* unpacked size limit for imports */
	const char *kivad_id; /* 8 hex digits from the state dir: tags links, names veths */
	const char *link_tag; /* ifalias tag of KIVA's links: the kivad id */
	const char *nft_table; /* "kiva" (default state dir) or "kiva_<id>": inet + bridge */
	const char *default_network; /* created at first start; NULL: none */
	const char *capacity_path; /* capacity.yaml (DESIGN.md §6); missing = the hardware */
	const char *sys_root; /* where /sys and /proc are read for the topology ("/") */

	/* owned by the api module */
	struct api_server *server;
	struct api_op *ops; /* list of operations, newest first */
	unsigned nops;
	unsigned pending_tasks; /* workflows in flight, for clean shutdown */
	struct api_update_queue *updates; /* config changes in flight or waiting, per instance */
	json_t *creating; /* names of instances being created, not yet committed */
	json_t *busy; /* name → description of the state change or delete running on it */
	char *nft_applied; /* the nftables script last applied (skip re-applying the same) */
	struct api_sched *sched; /* placement model (api-sched.c) */
	json_t *events; /* the last lifecycle events (api-events.c) */
	struct api_event_sub *event_subs; /* /1.0/events WebSocket subscribers */
	json_t *schedules_seen; /* name → {"schedule", "since"}: snapshot schedules (api-snapshots.c) */
};

/* Starts listening on ctx->socket_path (mode 0660). */
int api_server_start(struct api_ctx *ctx, struct kiva_error *reterr);
/* Stops accepting, closes connections; call before the loop's last run. */
void api_server_stop(struct api_ctx *ctx);
/* Frees what api_server_stop left for after uv_run returned (lws needs two steps). */
void api_server_free(struct api_ctx *ctx);

/* Brings state and host in line after a start (half-made instances, leftovers on disk).
 * cb runs when done. */
void api_reconcile(struct api_ctx *ctx, void (*cb)(struct api_ctx *ctx, void *userdata),
		   void *userdata);

/* Networking upkeep for containers that stopped by themselves (every few seconds). */
void api_net_watch(struct api_ctx *ctx);

/* The scheduler (api-sched.c): reads the topology, the capacity file and the sensors. */
int api_sched_init(struct api_ctx *ctx, struct kiva_error *reterr);
void api_sched_free(struct api_ctx *ctx);
/* Re-reads the capacity file (SIGHUP, POST /1.0/resources/capacity); on error the old stays. */
int api_sched_reload(struct api_ctx *ctx, struct kiva_error *reterr);
/* Rebuilds the allocation from the store and the running containers (at start, after the store
 * replayed), writing back any drift. */
void api_sched_rebuild(struct api_ctx *ctx);
/* Releases the CPUs of instances that stopped by themselves (every few seconds). */
void api_sched_watch(struct api_ctx *ctx);
/* Stops the kiva-helper kept on standby for execs (at exit). */
void api_spawn_standby_free(void);

/* Scheduled snapshots due at `now` (Unix seconds), missed ones once, expired ones deleted. */
void api_snapshots_tick(struct api_ctx *ctx, int64_t now);
/* kivad's log messages as "logging" events to /1.0/events subscribers (NULL: stop). */
void api_events_log_hook(struct api_ctx *ctx);
/* Deletes expired backups (STATE/backups). */
void api_backups_tick(struct api_ctx *ctx, int64_t now);

/* Frees every operation (shutdown). */
void api_ops_free_all(struct api_ctx *ctx);
