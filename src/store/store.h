/* The replicated store: every change to KIVA's state is a command applied through Raft
 * (canonical raft 0.15, raft_uv) to an in-memory state machine. A single host is a one-voter
 * cluster, so single host and cluster take the same path.
 *
 * The state is one JSON document (read-only for callers):
 *   {"instances": {NAME: instance}, "images": {FP: image}, "aliases": {NAME: alias},
 *    "networks": {NAME: network}, "acls": {NAME: acl}}   (the last two once used)
 * Commands are JSON objects (store-fsm.c lists them). store-raft.c is the only file that
 * includes <raft.h>; everything here is called from kivad's loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic-error.h"
#include "basic-json.h"

/* ---- the pure state machine (store-fsm.c): no I/O, deterministic ---- */

struct store_fsm {
	json_t *state;
	uint64_t applied; /* commands applied (for tests and metrics) */
	struct {
		int code; /* of the last refused command, read by the apply callback */
		char msg[512];
	} last_err;
};

int store_fsm_init(struct store_fsm *fsm);
void store_fsm_done(struct store_fsm *fsm);

/* Applies one serialized command. A command that does not validate changes nothing and
 * returns -EINVAL (or -ENOENT/-EEXIST) with a message in errbuf. Deterministic: the same
 * sequence gives the same state on every node. */
int store_fsm_apply(struct store_fsm *fsm, const char *buf, size_t len, char *errbuf,
		    size_t errlen);

/* Serializes the whole state (Raft snapshot). Caller frees *ret. */
int store_fsm_snapshot(struct store_fsm *fsm, char **ret, size_t *ret_len);

/* Replaces the state with a snapshot. On error the old state is kept. */
int store_fsm_restore(struct store_fsm *fsm, const char *buf, size_t len);

/* Command builders. Each returns a new reference (NULL on OOM). `obj` is borrowed. */
json_t *store_cmd_instance_put(const json_t *instance);
/* Like put, but refused when the instance exists. */
json_t *store_cmd_instance_create(const json_t *instance);
/* Like put, but refused unless the instance exists and is "ready" (no resurrection of an
 * instance deleted meanwhile). */
json_t *store_cmd_instance_update(const json_t *instance);
json_t *store_cmd_instance_delete(const char *name);
json_t *store_cmd_image_put(const json_t *image);
json_t *store_cmd_image_delete(const char *fingerprint);
json_t *store_cmd_alias_put(const json_t *alias);
json_t *store_cmd_alias_delete(const char *name);
json_t *store_cmd_network_put(const json_t *network);
json_t *store_cmd_network_delete(const char *name);
json_t *store_cmd_acl_put(const json_t *acl);
json_t *store_cmd_acl_delete(const char *name);
json_t *store_cmd_config_put(const json_t *config); /* the server config (GET/PUT /1.0) */
json_t *store_cmd_snapshot_put(const char *instance, const json_t *snapshot);
json_t *store_cmd_snapshot_delete(const char *instance, const char *name);
json_t *store_cmd_snapshot_rename(const char *instance, const char *name, const char *new_name);

/* ---- the Raft-backed store (store-raft.c) ---- */

struct raft_fsm;
/* Fills raft_fsm (from <raft.h>, version 1) with callbacks that drive fsm: apply, snapshot,
 * restore. A refused command still returns 0 to raft (else raft retries it forever) and its
 * result pointer is &fsm->last_err. Used by the store and by tests on raft's fixture cluster. */
void store_fsm_raft_bind(struct raft_fsm *raft_fsm, struct store_fsm *fsm);

struct store;
struct uv_loop_s;

struct store_options {
	const char *dir; /* raft data directory (created) */
	const char *address; /* "127.0.0.1:8444": raft's transport listens there */
	uint64_t id; /* server id, 1 for a single host */
	unsigned snapshot_threshold; /* entries between snapshots */
	unsigned snapshot_trailing; /* entries kept after a snapshot */
};

/* Called once the store has replayed its log and is the leader (ready to apply), or failed. */
typedef void (*store_ready_cb)(struct store *store, int status, void *userdata);
/* Completion of one apply: status 0 or -errno, errmsg set on failure (borrowed). */
typedef void (*store_apply_cb)(void *userdata, int status, const char *errmsg);

int store_open(struct uv_loop_s *loop, const struct store_options *opts, store_ready_cb ready,
	       void *userdata, struct store **ret, struct kiva_error *reterr);

/* Submits cmd (borrowed; serialized at once). cb runs from the loop when the command is committed
 * and applied, or failed; it may run after store_close began (status -ECANCELED). */
int store_apply(struct store *store, const json_t *cmd, store_apply_cb cb, void *userdata);

/* The current applied state. Borrowed; valid until the next apply. */
const json_t *store_state(const struct store *store);
const json_t *store_instance(const struct store *store, const char *name);
const json_t *store_image(const struct store *store, const char *fingerprint);
const json_t *store_alias(const struct store *store, const char *name);
const json_t *store_network(const struct store *store, const char *name);
const json_t *store_acl(const struct store *store, const char *name);

uint64_t store_applied(const struct store *store);

/* Closes raft and frees everything once done; cb runs from the loop afterwards. */
void store_close(struct store *store, void (*cb)(void *userdata), void *userdata);
