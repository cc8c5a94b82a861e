/* Internals shared by the api module's files: requests, replies, operations, helpers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api-chunked.h"
#include "api.h"
#include "basic-hash.h"
#include "basic-json.h"

#define API_BODY_MAX (1024 * 1024) /* JSON bodies */
#define API_UPLOAD_MAX (64ULL * 1024 * 1024 * 1024) /* image uploads */
#define API_FILE_MAX (1024ULL * 1024 * 1024) /* file pushes (POST /1.0/instances/NAME/files) */

enum api_method { API_GET, API_POST, API_PUT, API_PATCH, API_DELETE, API_METHOD_OTHER };

/* One HTTP request and its reply. Created by api-server.c, handed to api_dispatch(). A handler
 * replies at once or later (api_defer, then any api_reply_* from a callback). The request is
 * freed by the server once the reply is written, or by api_reply_* if the client went away. */
struct api_request {
	struct api_ctx *ctx;
	void *conn; /* the server's connection; NULL once the client disconnected */
	enum api_method method;
	char path[1024];
	char query[1024];
	char content_type[128];
	char filename[256]; /* X-LXD-filename header of uploads */
	char lxd_name[128]; /* X-LXD-name header (backup imports: the new instance's name) */
	char if_match[128]; /* If-Match header: the ETag of what the client read */
	/* X-LXD-uid, -gid, -mode, -type, -write and -modify-perm headers (file pushes), "" when
	 * absent */
	char lxd_uid[24], lxd_gid[24], lxd_mode[24], lxd_type[24], lxd_write[24];
	char lxd_modify_perm[32];
	uint64_t content_length;
	char *body; /* JSON body, NUL-terminated (NULL for uploads and empty bodies) */
	size_t body_len;
	bool upload; /* body streamed to upload_path */
	bool chunked; /* Transfer-Encoding: chunked (uploads only), decoded by the server */
	struct api_chunked chunk; /* the server's decoder state */
	int upload_fd;
	char *upload_path;
	uint64_t upload_bytes;
	struct sha256_ctx upload_hash;
	int body_error; /* set while reading a body: reply with it at completion */
	char body_errmsg[128];
	const char *params[4]; /* route captures, point into path_parts */
	char path_parts[1024];
	bool deferred;

	/* reply */
	bool replied;
	int status;
	char reply_type[64];
	char location[256];
	char etag[80]; /* ETag header of the reply, when set */
	char reply_headers[256]; /* more header lines, "name: value\n" each (api_reply_header) */
	char *reply_body;
	int reply_fd; /* >= 0: the reply body is read from this file (api_reply_file) */
	size_t reply_len, reply_off;
	bool headers_sent;
};

/* api-server.c */
void api_request_free(struct api_request *req);
/* Queues the reply for writing (server side). Takes ownership of body. */
void api_server_send(struct api_request *req);

/* api-response.c: LXD envelopes. All take ownership of the json_t they are given. */
void api_reply_sync(struct api_request *req, json_t *metadata);
void api_reply_error(struct api_request *req, int http_status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Maps a -errno (from a kiva_error) to an HTTP status and replies with the message. */
void api_reply_kiva_error(struct api_request *req, const struct kiva_error *err);
void api_reply_raw(struct api_request *req, int http_status, const char *content_type, char *data,
		   size_t len);
void api_reply_async(struct api_request *req, struct api_op *op);
/* Streams size bytes of fd (owned: closed with the request) as the reply body. */
void api_reply_file(struct api_request *req, int http_status, const char *content_type, int fd,
		    size_t size);
/* Marks the request as answered later. */
void api_defer(struct api_request *req);
/* Adds a header to the reply (call it before api_reply_*). Returns 0, -EINVAL when name or
 * value holds CR or LF (or name a ':'), -ENOBUFS when reply_headers is full. */
int api_reply_header(struct api_request *req, const char *name, const char *value);
/* Value of a query parameter (URL-decoded), or NULL. buf holds the value (cut to len - 1). */
const char *api_query(const struct api_request *req, const char *name, char *buf, size_t len);
int api_recursion(const struct api_request *req);
/* Parses the JSON body into *ret (object). Replies 400 and returns <0 on failure. */
int api_parse_body(struct api_request *req, json_t **ret);

/* Reads a boolean field: absent → fallback; present but not a JSON boolean → replies 400 and
 * returns -EINVAL. */
int api_body_bool(struct api_request *req, const json_t *body, const char *key, bool fallback,
		  bool *ret);

/* api-server.c: WebSockets (events, exec and console streams). A connection is routed by
 * api_ws_route() when the upgrade completes; its handler gets each whole message and the close.
 * Sends are queued (at most 4 MiB: -ENOBUFS past that, the caller decides to cut it off). */
struct api_ws;
struct api_ws_handler {
	void (*message)(struct api_ws *ws, void *user, const unsigned char *data, size_t len,
			bool binary);
	void (*closed)(struct api_ws *ws, void *user); /* the ws is freed right after */
};
int api_ws_send(struct api_ws *ws, const void *data, size_t len, bool binary);
/* Closes after what is queued has been sent. */
void api_ws_close(struct api_ws *ws);
void api_ws_set_user(struct api_ws *ws, const struct api_ws_handler *handler, void *user);
size_t api_ws_queued(const struct api_ws *ws);
/* api-router.c: routes an upgraded connection (path without query); <0 refuses (closes). */
int api_ws_route(struct api_ws *ws, struct api_ctx *ctx, const char *path, const char *query);

/* api-router.c */
void api_dispatch(struct api_request *req);
/* How the server reads the body of req (from its method, path and Content-Type): > 0: streamed
 * to a file (req->upload), refused (413) past that many bytes; 0: JSON in memory, up to
 * API_BODY_MAX. File pushes stream whatever their Content-Type (LXD's client sends none) up to
 * API_FILE_MAX; other application/octet-stream bodies (image and backup uploads) up to
 * API_UPLOAD_MAX. */
uint64_t api_upload_limit(struct api_request *req);

/* api-operations.c: LXD operations (class "task"). */
enum api_op_status { API_OP_RUNNING, API_OP_SUCCESS, API_OP_FAILURE };
struct api_op {
	struct api_op *next;
	struct api_ctx *ctx;
	char id[40];
	char description[128];
	char created_at[40], updated_at[40];
	enum api_op_status status;
	bool may_cancel; /* DELETE /1.0/operations/ID cancels it (WebSocket execs) */
	json_t *resources; /* {"instances": [...]} */
	json_t *metadata;
	char err[512];
	uint64_t done_usec; /* monotonic time it finished */
	struct api_waiter *waiters;
};
/* Creates a running operation. resources: owned (may be NULL). */
struct api_op *api_op_new(struct api_ctx *ctx, const char *description, json_t *resources);
/* Finishes op with success (metadata owned, may be NULL), wakes waiters. */
void api_op_succeed(struct api_op *op, json_t *metadata);
/* Finishes op with failure and the user's message. */
void api_op_fail(struct api_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_t *api_op_to_json(const struct api_op *op);
struct api_op *api_op_find(struct api_ctx *ctx, const char *id);
void api_ops_handle_list(struct api_request *req);
void api_ops_handle_get(struct api_request *req);
void api_ops_handle_delete(struct api_request *req);
void api_ops_handle_wait(struct api_request *req);
/* Drops waiters whose connection went away (called by the server on close). */
void api_ops_forget_request(struct api_ctx *ctx, struct api_request *req);

/* api-spawn.c: run kiva-helper without blocking the loop. */
/* First call of a libuv thread-pool job: the thread runs at nice 10 from then on. */
void api_work_thread_begin(void);
struct api_spawn_result {
	int exit_status; /* exit code, or 128+signal */
	char message[512]; /* "Error: ..." line from the helper's stderr, prefix stripped */
};
typedef void (*api_spawn_cb)(void *userdata, const struct api_spawn_result *res);
/* Spawns program (ctx->helper_path or ctx->archive_helper_path) with args (NULL-terminated, without argv[0]). stdin is /dev/null;
 * stdout is fd_out (or /dev/null when < 0); stderr is fd_err, or when < 0 captured and its
 * "Error: " line returned in res->message; extra_fd becomes fd 3 when >= 0. The fds are only
 * borrowed for the spawn. cb runs from the loop once the helper exited and stderr is drained. */
int api_spawn_helper(struct api_ctx *ctx, const char *program, char *const args[], int fd_out,
		     int fd_err, int extra_fd, api_spawn_cb cb, void *userdata);
/* The same with a stdin (fd_in >= 0: borrowed, as the others) and the child's pid in *ret_pid
 * (signals: kiva-helper exec forwards them to the command). */
int api_spawn_helper_io(struct api_ctx *ctx, const char *program, char *const args[], int fd_in,
			int fd_out, int fd_err, int extra_fd, api_spawn_cb cb, void *userdata,
			int *ret_pid);

/* api-instances.c */
struct api_update_queue; /* per-instance serialization of config changes */
void api_instances_handle_list(struct api_request *req);
void api_instances_handle_create(struct api_request *req);
void api_instance_handle_get(struct api_request *req);
void api_instance_handle_put(struct api_request *req);
void api_instance_handle_patch(struct api_request *req);
void api_instance_handle_delete(struct api_request *req);
void api_instance_handle_state_get(struct api_request *req);
void api_instance_handle_state_put(struct api_request *req);
void api_instance_handle_exec(struct api_request *req);
void api_instance_handle_log_get(struct api_request *req);
void api_instance_handle_log_delete(struct api_request *req);
/* api-files.c: /1.0/instances/NAME/files?path=P, LXD's file API, confined to the rootfs */
void api_files_handle_get(struct api_request *req);
void api_files_handle_post(struct api_request *req);
void api_files_handle_delete(struct api_request *req);
/* The instance as the API shows it (stored record + live status). New reference. */
json_t *api_instance_render(struct api_ctx *ctx, const json_t *stored, bool with_state);

/* Instance files, shared with api-reconcile.c. All idempotent.
 * materialize: rootfs snapshot of the image + liblxc config for a record in state "creating";
 * dematerialize: removes liblxc dir, rootfs and logs; write_config: liblxc config from record. */
int api_instance_materialize(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr);
int api_instance_dematerialize(struct api_ctx *ctx, const char *name, struct kiva_error *reterr);
int api_instance_write_config(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr);
/* Records a new instance whose volumes are already in place (containers/NAME and its snapshot
 * volumes; imports): its quota, liblxc config, then the store; op ends with the result; on
 * failure the volumes are removed. */
int api_instance_commit_new(struct api_ctx *ctx, struct api_op *op, json_t *inst,
			    struct kiva_error *reterr);
/* api-backups.c: POST /1.0/instances with a backup tarball as the body. */
void api_backups_import(struct api_request *req);
void api_backups_handle_list(struct api_request *req);
void api_backups_handle_create(struct api_request *req);
void api_backup_handle_get(struct api_request *req);
void api_backup_handle_post(struct api_request *req);
void api_backup_handle_delete(struct api_request *req);
void api_backup_handle_export(struct api_request *req);
/* Removes an instance's backups (delete) and leftovers of cut exports/imports (start-up). */
void api_backups_forget(struct api_ctx *ctx, const char *name);
void api_backups_reconcile(struct api_ctx *ctx);
/* Finishes restores cut between their volume renames (start-up). */
void api_instances_reconcile_restores(struct api_ctx *ctx);

/* The instance's NICs as LXD's expanded devices see them (the default profile's eth0 on the
 * default network, then its own nic devices), each an object: {"instance", "device", "name",
 * "network", "bridge", "host_name", "hwaddr", "ipv4" (address), "prefix" (len), "gateway",
 * "mtu", "limits.ingress", "limits.egress", "vlan", "vlan.tagged", "security.acls"} with the
 * server-chosen values (volatile.<dev>.*) filled in. New reference (an array). */
json_t *api_instance_nics(struct api_ctx *ctx, const json_t *inst);

/* api-nics.c */
json_t *api_instance_expanded_devices(struct api_ctx *ctx, const json_t *inst);
/* Checks an instance's devices (types, keys, networks, static addresses free, rates, ACLs). */
int api_devices_validate(struct api_ctx *ctx, const char *instance, const json_t *devices,
			 struct kiva_error *reterr);
/* Fills volatile.<dev>.{host_name,hwaddr,ipv4.address} of inst's NICs (IPAM), drops those of
 * devices that are gone. */
int api_nics_assign(struct api_ctx *ctx, json_t *inst, struct kiva_error *reterr);
/* liblxc's view of the NICs; the strings live in *ret_keep (decref after use). */
int api_nics_runtime(struct api_ctx *ctx, const json_t *inst, struct runtime_nic **ret,
		     size_t *ret_n, json_t **ret_keep);
char *api_nics_resolv_conf(struct api_ctx *ctx, const json_t *inst);
int api_nics_started(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr);
void api_nics_stopped(struct api_ctx *ctx, const json_t *inst);

/* api-networks.c */
int api_ifname_validate(const char *what, const char *name, struct kiva_error *reterr);
char **api_split_list(const char *s); /* "a, b" → {"a","b",NULL}; NULL on OOM */
struct net_acl_rule;
int api_acl_rule_parse(const json_t *rule, struct net_acl_rule *r, struct kiva_error *reterr);
/* Re-renders KIVA's nftables tables from the store and the running state; applies atomically. */
int api_net_sync(struct api_ctx *ctx, struct kiva_error *reterr);
/* Validates and completes config (ipv4.address auto), creates the bridge; *ret_net is the
 * record to commit. */
int api_network_create(struct api_ctx *ctx, const char *name, const char *description,
		       json_t *config, json_t **ret_net, struct kiva_error *reterr);
/* Brings every network's bridge in line, removes tagged links no network or running NIC owns,
 * enables forwarding for NAT, re-applies QoS of running NICs and the nftables tables. */
int api_net_reconcile(struct api_ctx *ctx, struct kiva_error *reterr);
/* At the first start of a state dir, creates the default network; cb runs when done. */
void api_net_first_start(struct api_ctx *ctx, void (*cb)(struct api_ctx *ctx, void *userdata),
			 void *userdata);
void api_networks_handle_list(struct api_request *req);
void api_networks_handle_create(struct api_request *req);
void api_network_handle_get(struct api_request *req);
void api_network_handle_put(struct api_request *req);
void api_network_handle_patch(struct api_request *req);
void api_network_handle_delete(struct api_request *req);
void api_network_handle_state(struct api_request *req);
void api_acls_handle_list(struct api_request *req);
void api_acls_handle_create(struct api_request *req);
void api_acl_handle_get(struct api_request *req);
void api_acl_handle_put(struct api_request *req);
void api_acl_handle_patch(struct api_request *req);
void api_acl_handle_delete(struct api_request *req);

/* api-images.c */
void api_images_handle_list(struct api_request *req);
void api_images_handle_create(struct api_request *req);
void api_image_handle_get(struct api_request *req);
void api_image_handle_delete(struct api_request *req);
void api_aliases_handle_list(struct api_request *req);
void api_aliases_handle_create(struct api_request *req);
void api_alias_handle_get(struct api_request *req);
void api_alias_handle_delete(struct api_request *req);
/* Resolves an alias or a fingerprint (prefix) to the stored image. Borrowed or NULL. */
const json_t *api_image_resolve(struct api_ctx *ctx, const char *name);

/* api-sched.c: placement of instances on this host (sched module), see the file's comment */
struct sched_request;
/* limits.cpu.reserve: the instance holds its CPUs while stopped. */
bool api_sched_reserves(const json_t *inst);
/* Would the instance (a record) fit now? Admission and placement, nothing held. */
int api_sched_check(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr);
/* Places the instance (before it starts); already placed (reserved): re-placed from its config.
 * Updates the shared set of running instances. */
int api_sched_claim(struct api_ctx *ctx, const json_t *inst, struct kiva_error *reterr);
/* Releases what the instance holds (after it stopped), unless limits.cpu.reserve keeps it and
 * the instance is not being deleted. */
void api_sched_release(struct api_ctx *ctx, const char *name, bool deleting);
/* A config change: re-places (admission) and, when running, re-pins live. Nothing changes on
 * error. */
int api_sched_update(struct api_ctx *ctx, const json_t *old_inst, const json_t *new_inst,
		     bool running, struct kiva_error *reterr);
/* cpuset.cpus and cpuset.mems of the instance ("" for mems = any node). */
void api_sched_render(struct api_ctx *ctx, const char *name, char *cpus, size_t cpus_len,
		      char *mems, size_t mems_len);
/* {"placement": "dedicated"|"shared"|"none", "cpus", "mems", "node"} for the instance state. */
json_t *api_sched_instance_state(struct api_ctx *ctx, const char *name);
/* host.cpu.governor: "" restores the CPUs' own governors. */
int api_sched_set_governor(struct api_ctx *ctx, const char *governor, struct kiva_error *reterr);
void api_resources_handle_get(struct api_request *req);
void api_capacity_handle_get(struct api_request *req);
void api_capacity_handle_post(struct api_request *req);

/* api-events.c: lifecycle events (LXD's format), kept for GET /1.0/events */
void api_event_lifecycle(struct api_ctx *ctx, const char *action, const char *instance,
			 const char *snapshot);
void api_events_handle_get(struct api_request *req);
/* A /1.0/events WebSocket: every event of the types in types ("lifecycle,operation"; NULL or
 * "" = all) from now on, as LXD sends them. */
int api_events_subscribe(struct api_ws *ws, struct api_ctx *ctx, const char *types);
/* An operation event (LXD's "operation" type: the operation object) to the subscribers. */
void api_event_operation(struct api_ctx *ctx, const json_t *op_json);
/* api-exec.c: an exec whose streams are WebSockets. Takes args (kiva-helper exec ...) and
 * status_fd; sets op's metadata to {"fds": {...secrets}}; the command starts once every socket
 * is connected, op ends with {"return": code}. */
int api_exec_websocket_begin(struct api_ctx *ctx, struct api_op *op, const char *name, char **args,
			     bool interactive, unsigned width, unsigned height, int status_fd,
			     const char *status_path, struct kiva_error *reterr);
/* /1.0/instances/NAME/console: the log (GET, DELETE clears it), attach (POST: like an
 * interactive exec, on the container's console; args NULL in api_exec_websocket_begin). */
void api_console_handle_get(struct api_request *req);
void api_console_handle_post(struct api_request *req);
void api_console_handle_delete(struct api_request *req);
/* DELETE of an exec operation: before its sockets connect it ends at once; a running command
 * gets SIGTERM (kiva-helper forwards it) and the operation ends when it exits. -ENOENT if op is
 * not an exec or console. */
int api_exec_cancel(struct api_ctx *ctx, struct api_op *op);
/* Ends every exec stream (kivad stops). */
void api_exec_stop_all(struct api_ctx *ctx);
/* /1.0/operations/ID/websocket?secret=S: an exec or console stream (api-exec.c). */
int api_ops_websocket(struct api_ws *ws, struct api_ctx *ctx, const char *id, const char *secret);

/* api-snapshots.c */
void api_snapshots_handle_list(struct api_request *req);
void api_snapshots_handle_create(struct api_request *req);
void api_snapshot_handle_get(struct api_request *req);
void api_snapshot_handle_post(struct api_request *req);
void api_snapshot_handle_put(struct api_request *req);
void api_snapshot_handle_delete(struct api_request *req);
/* The instance's snapshots as LXD shows them in an instance (array; sizes not computed). */
json_t *api_snapshots_render_all(struct api_ctx *ctx, const json_t *inst);
/* Removes every snapshot volume of an instance (delete). */
int api_snapshots_dematerialize(struct api_ctx *ctx, const char *name, struct kiva_error *reterr);
/* Removes snapshot volumes no record names (start-up). */
void api_snapshots_reconcile(struct api_ctx *ctx);
/* RFC 3339 ↔ Unix seconds ("0001-01-01T00:00:00Z" and "" are 0). */
int api_time_format(int64_t t, char buf[static 40]);
int api_time_parse(const char *s, int64_t *ret);

/* api-server info */
void api_handle_server_get(struct api_request *req);
void api_handle_server_put(struct api_request *req);
void api_handle_server_patch(struct api_request *req);
/* At start: the stored server config (host.cpu.governor) applied to this host. */
void api_server_config_apply(struct api_ctx *ctx);
