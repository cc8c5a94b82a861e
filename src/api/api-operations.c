/* LXD operations: every action that may take time answers 202 with an operation, which clients
 * poll (GET /1.0/operations/{id}) or wait for (GET .../wait?timeout=N, a long poll answered when
 * the operation ends or the timeout passes). Operations live in memory, like LXD's on one node;
 * finished ones are dropped after OP_KEEP_USEC. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-string.h"

#define OP_KEEP_USEC (300ULL * 1000000ULL)

struct api_waiter {
	struct api_waiter *next;
	struct api_op *op;
	struct api_request *req;
	uv_timer_t timer;
	bool timer_used;
};

static uint64_t now_usec(void)
{
	return uv_hrtime() / 1000;
}

static const char *status_name(enum api_op_status s)
{
	return s == API_OP_RUNNING ? "Running" : s == API_OP_SUCCESS ? "Success" : "Failure";
}

static int status_code(enum api_op_status s)
{
	return s == API_OP_RUNNING ? 103 : s == API_OP_SUCCESS ? 200 : 400;
}

json_t *api_op_to_json(const struct api_op *op)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:O,s:O,s:b,s:s,s:s}", "id", op->id, "class",
			 "task", "description", op->description, "created_at", op->created_at,
			 "updated_at", op->updated_at, "status", status_name(op->status),
			 "status_code", status_code(op->status), "resources",
			 op->resources ? op->resources : json_null(), "metadata",
			 op->metadata ? op->metadata : json_null(), "may_cancel", op->may_cancel,
			 "err", op->err, "location", "none");
}

static void op_free(struct api_op *op)
{
	json_decref(op->resources);
	json_decref(op->metadata);
	free(op);
}

static void prune(struct api_ctx *ctx)
{
	uint64_t now = now_usec();
	struct api_op **pp = &ctx->ops;

	while (*pp) {
		struct api_op *op = *pp;

		if (op->status != API_OP_RUNNING && !op->waiters &&
		    (now - op->done_usec > OP_KEEP_USEC || ctx->nops > 1000)) {
			*pp = op->next;
			ctx->nops--;
			op_free(op);
			continue;
		}
		pp = &op->next;
	}
}

struct api_op *api_op_new(struct api_ctx *ctx, const char *description, json_t *resources)
{
	struct api_op *op;
	char hex[33];

	prune(ctx);
	op = calloc(1, sizeof(*op));
	if (!op || random_hex(hex, 16) < 0) {
		free(op);
		json_decref(resources);
		return NULL;
	}
	snprintf(op->id, sizeof(op->id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
		 hex + 16, hex + 20);
	op->ctx = ctx;
	snprintf(op->description, sizeof(op->description), "%s", description);
	now_rfc3339(op->created_at);
	memcpy(op->updated_at, op->created_at, sizeof(op->updated_at));
	op->status = API_OP_RUNNING;
	op->resources = resources;
	op->next = ctx->ops;
	ctx->ops = op;
	ctx->nops++;
	if (ctx->event_subs) {
		json_t *j = api_op_to_json(op);

		api_event_operation(ctx, j);
		json_decref(j);
	}
	return op;
}

static void waiter_closed(uv_handle_t *h)
{
	free(h->data);
}

static void waiter_release(struct api_waiter *w)
{
	if (w->timer_used) {
		uv_timer_stop(&w->timer);
		w->timer.data = w;
		uv_close((uv_handle_t *)&w->timer, waiter_closed);
	} else {
		free(w);
	}
}

static void waiter_unlink(struct api_waiter *w)
{
	for (struct api_waiter **pp = &w->op->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

static void op_finish(struct api_op *op)
{
	struct api_waiter *w = op->waiters;

	now_rfc3339(op->updated_at);
	op->done_usec = now_usec();
	op->waiters = NULL;
	if (op->ctx->event_subs) {
		json_t *j = api_op_to_json(op);

		api_event_operation(op->ctx, j);
		json_decref(j);
	}
	while (w) {
		struct api_waiter *next = w->next;

		api_reply_sync(w->req, api_op_to_json(op));
		waiter_release(w);
		w = next;
	}
}

void api_op_succeed(struct api_op *op, json_t *metadata)
{
	op->status = API_OP_SUCCESS;
	json_decref(op->metadata);
	op->metadata = metadata;
	op_finish(op);
}

void api_op_fail(struct api_op *op, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
	op->status = API_OP_FAILURE;
	op_finish(op);
}

struct api_op *api_op_find(struct api_ctx *ctx, const char *id)
{
	for (struct api_op *op = ctx->ops; op; op = op->next)
		if (streq(op->id, id))
			return op;
	return NULL;
}

void api_ops_handle_list(struct api_request *req)
{
	bool recursive = api_recursion(req) > 0;
	json_t *doc = json_object();
	json_t *lists[3] = {json_array(), json_array(), json_array()};
	static const char *const keys[3] = {"running", "success", "failure"};

	for (struct api_op *op = req->ctx->ops; op; op = op->next) {
		json_t *item = recursive ? api_op_to_json(op) : NULL;

		if (!recursive) {
			char url[128];

			snprintf(url, sizeof(url), "/1.0/operations/%s", op->id);
			item = json_string(url);
		}
		json_array_append_new(lists[op->status], item);
	}
	for (int i = 0; i < 3; i++)
		json_object_set_new(doc, keys[i], lists[i]);
	api_reply_sync(req, doc);
}

void api_ops_handle_get(struct api_request *req)
{
	struct api_op *op = api_op_find(req->ctx, req->params[0]);

	if (!op) {
		api_reply_error(req, 404, "Operation '%s' not found", req->params[0]);
		return;
	}
	api_reply_sync(req, api_op_to_json(op));
}

void api_ops_handle_delete(struct api_request *req)
{
	struct api_op *op = api_op_find(req->ctx, req->params[0]);

	if (!op) {
		api_reply_error(req, 404, "Operation '%s' not found", req->params[0]);
		return;
	}
	if (!op->may_cancel) {
		api_reply_error(req, 403, "This operation can't be cancelled");
		return;
	}
	if (op->status != API_OP_RUNNING) {
		api_reply_error(req, 400, "Operation '%s' has already ended", op->id);
		return;
	}
	if (api_exec_cancel(req->ctx, op) < 0) {
		api_reply_error(req, 403, "This operation can't be cancelled");
		return;
	}
	api_reply_sync(req, NULL);
}

static void wait_timeout(uv_timer_t *t)
{
	struct api_waiter *w = t->data;

	waiter_unlink(w);
	api_reply_sync(w->req, api_op_to_json(w->op));
	waiter_release(w);
}

void api_ops_handle_wait(struct api_request *req)
{
	struct api_op *op = api_op_find(req->ctx, req->params[0]);
	struct api_waiter *w;
	char buf[32];
	const char *t;
	int64_t timeout = -1;

	if (!op) {
		api_reply_error(req, 404, "Operation '%s' not found", req->params[0]);
		return;
	}
	t = api_query(req, "timeout", buf, sizeof(buf));
	if (t && parse_int64(t, -1, INT32_MAX, &timeout) < 0) {
		api_reply_error(req, 400, "Invalid timeout '%s'", t);
		return;
	}
	if (op->status != API_OP_RUNNING || timeout == 0) {
		api_reply_sync(req, api_op_to_json(op));
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	w->op = op;
	w->req = req;
	if (timeout > 0) {
		uv_timer_init(req->ctx->loop, &w->timer);
		w->timer.data = w;
		w->timer_used = true;
		uv_timer_start(&w->timer, wait_timeout, (uint64_t)timeout * 1000, 0);
	}
	w->next = op->waiters;
	op->waiters = w;
	api_defer(req);
}

void api_ops_forget_request(struct api_ctx *ctx, struct api_request *req)
{
	for (struct api_op *op = ctx->ops; op; op = op->next) {
		for (struct api_waiter *w = op->waiters; w; w = w->next) {
			if (w->req == req) {
				waiter_unlink(w);
				/* nobody will read the reply: the request is freed by the server */
				req->deferred = false;
				waiter_release(w);
				return;
			}
		}
	}
}

void api_ops_free_all(struct api_ctx *ctx)
{
	while (ctx->ops) {
		struct api_op *op = ctx->ops;

		ctx->ops = op->next;
		while (op->waiters) {
			struct api_waiter *w = op->waiters;

			op->waiters = w->next;
			waiter_release(w);
		}
		op_free(op);
	}
	ctx->nops = 0;
}
