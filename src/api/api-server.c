/* HTTP/1.1 server on a unix socket: the only file that includes <libwebsockets.h>. lws runs on
 * kivad's libuv loop (foreign loop). It reads requests (JSON bodies up to 1 MiB in memory, image
 * uploads streamed to a file while hashed), hands them to api_dispatch(), and writes replies,
 * keeping connections alive between requests.
 *
 * lws gotchas (notes/feasibility.md §13): a body method without Content-Length would make lws wait
 * for a huge body, so such a request is answered 411 at once; lws removes an existing socket path
 * before binding, so the daemon holds a lock file before calling api_server_start; with a foreign
 * loop lws_context_destroy() is called twice (api_server_stop, then api_server_free). */
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-log.h"
#include "basic-string.h"

struct api_server {
	struct lws_context *context;
	void *foreign_loops[1];
};

/* One outgoing WebSocket message. */
struct ws_msg {
	struct ws_msg *next;
	bool binary;
	bool close; /* not a message: close the connection once the queue before it is sent */
	size_t len;
	unsigned char data[]; /* LWS_PRE bytes of room, then the payload */
};

/* A WebSocket connection (api-internal.h's struct api_ws is opaque to handlers). */
struct api_ws {
	struct lws *wsi; /* NULL once closed */
	struct api_ctx *ctx;
	struct ws_msg *head, *tail;
	size_t queued; /* bytes waiting */
	const struct api_ws_handler *handler;
	void *user;
	unsigned char *rx; /* a message being reassembled from fragments */
	size_t rx_len;
	bool rx_binary;
};

struct pss {
	struct api_request *req;
	struct api_ws *ws;
};

#define WS_QUEUE_MAX (4u * 1024 * 1024) /* a subscriber this far behind is cut off */
#define WS_MESSAGE_MAX (8u * 1024 * 1024)

int api_ws_send(struct api_ws *ws, const void *data, size_t len, bool binary)
{
	struct ws_msg *m;

	if (!ws || !ws->wsi)
		return -ENOTCONN;
	if (ws->queued + len > WS_QUEUE_MAX)
		return -ENOBUFS;
	m = malloc(sizeof(*m) + LWS_PRE + len);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->binary = binary;
	m->close = false;
	m->len = len;
	if (len)
		memcpy(m->data + LWS_PRE, data, len);
	if (ws->tail)
		ws->tail->next = m;
	else
		ws->head = m;
	ws->tail = m;
	ws->queued += len;
	lws_callback_on_writable(ws->wsi);
	return 0;
}

void api_ws_close(struct api_ws *ws)
{
	struct ws_msg *m;

	if (!ws || !ws->wsi)
		return;
	m = calloc(1, sizeof(*m) + LWS_PRE);
	if (!m) {
		lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		return;
	}
	m->close = true;
	if (ws->tail)
		ws->tail->next = m;
	else
		ws->head = m;
	ws->tail = m;
	lws_callback_on_writable(ws->wsi);
}

void api_ws_set_user(struct api_ws *ws, const struct api_ws_handler *handler, void *user)
{
	ws->handler = handler;
	ws->user = user;
}

size_t api_ws_queued(const struct api_ws *ws)
{
	return ws ? ws->queued : 0;
}

static void ws_free(struct api_ws *ws)
{
	while (ws->head) {
		struct ws_msg *m = ws->head;

		ws->head = m->next;
		free(m);
	}
	free(ws->rx);
	free(ws);
}

static int ws_writable(struct api_ws *ws)
{
	struct ws_msg *m = ws->head;

	if (!m)
		return 0;
	if (m->close) {
		lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	if (lws_write(ws->wsi, m->data + LWS_PRE, m->len,
		      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->len)
		return -1;
	ws->head = m->next;
	if (!ws->head)
		ws->tail = NULL;
	ws->queued -= m->len;
	free(m);
	if (ws->head)
		lws_callback_on_writable(ws->wsi);
	return 0;
}

static int ws_receive(struct api_ws *ws, const void *in, size_t len)
{
	unsigned char *p;

	if (lws_is_first_fragment(ws->wsi)) {
		ws->rx_len = 0;
		ws->rx_binary = lws_frame_is_binary(ws->wsi);
	}
	if (ws->rx_len + len > WS_MESSAGE_MAX)
		return -1;
	p = realloc(ws->rx, ws->rx_len + len + 1);
	if (!p)
		return -1;
	ws->rx = p;
	memcpy(ws->rx + ws->rx_len, in, len);
	ws->rx_len += len;
	ws->rx[ws->rx_len] = 0;
	if (!lws_is_final_fragment(ws->wsi) || lws_remaining_packet_payload(ws->wsi) > 0)
		return 0;
	if (ws->handler && ws->handler->message)
		ws->handler->message(ws, ws->user, ws->rx, ws->rx_len, ws->rx_binary);
	ws->rx_len = 0;
	return 0;
}

/* Every query argument (lws keeps each as a fragment: lws_hdr_copy gives only the first),
 * joined with '&'. */
static void copy_query(struct lws *wsi, char *query, size_t size)
{
	query[0] = 0;
	for (int i = 0; i < 32; i++) {
		char frag[512];
		size_t n = strlen(query);

		if (lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
			break;
		snprintf(query + n, size - n, "%s%s", n ? "&" : "", frag);
	}
}

/* A WebSocket upgrade: route it by path (the handler replies by attaching or closing). */
static int ws_established(struct lws *wsi, struct pss *pss)
{
	struct api_ctx *ctx = lws_context_user(lws_get_context(wsi));
	struct api_ws *ws = calloc(1, sizeof(*ws));
	char path[1024], query[1024];

	if (!ws)
		return -1;
	ws->wsi = wsi;
	ws->ctx = ctx;
	pss->ws = ws;
	if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) < 0)
		path[0] = 0;
	copy_query(wsi, query, sizeof(query));
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	return api_ws_route(ws, ctx, path, query) < 0 ? -1 : 0;
}

void api_request_free(struct api_request *req)
{
	if (!req)
		return;
	if (req->upload_fd >= 0)
		close(req->upload_fd);
	if (req->reply_fd >= 0)
		close(req->reply_fd);
	if (req->upload_path) {
		unlink(req->upload_path);
		free(req->upload_path);
	}
	free(req->body);
	free(req->reply_body);
	free(req);
}

static enum api_method method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return API_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return API_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI))
		return API_PUT;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI))
		return API_PATCH;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return API_DELETE;
	return API_METHOD_OTHER;
}

static void body_fail(struct api_request *req, int status, const char *msg)
{
	if (req->body_error)
		return;
	req->body_error = status;
	snprintf(req->body_errmsg, sizeof(req->body_errmsg), "%s", msg);
}

static int begin_request(struct lws *wsi, struct pss *pss, const char *uri)
{
	struct api_ctx *ctx = lws_context_user(lws_get_context(wsi));
	struct api_request *req;
	char clen[32] = "";
	int n;

	req = calloc(1, sizeof(*req));
	if (!req)
		return -1;
	req->ctx = ctx;
	req->conn = wsi;
	req->upload_fd = -EBADF;
	req->reply_fd = -EBADF;
	req->method = method_of(wsi);
	snprintf(req->path, sizeof(req->path), "%s", uri);
	copy_query(wsi, req->query, sizeof(req->query));
	if (lws_hdr_copy(wsi, req->content_type, sizeof(req->content_type),
			 WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
		req->content_type[0] = 0;
	if (lws_hdr_copy(wsi, req->if_match, sizeof(req->if_match), WSI_TOKEN_HTTP_IF_MATCH) < 0)
		req->if_match[0] = 0;
	n = lws_hdr_custom_copy(wsi, req->filename, sizeof(req->filename),
				"x-lxd-filename:", (int)strlen("x-lxd-filename:"));
	if (n < 0)
		req->filename[0] = 0;
	n = lws_hdr_custom_copy(wsi, req->lxd_name, sizeof(req->lxd_name),
				"x-lxd-name:", (int)strlen("x-lxd-name:"));
	if (n < 0)
		req->lxd_name[0] = 0;
	pss->req = req;
	/* Long polls (operation wait) must not be cut by lws's pending timeouts. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);

	if (req->method != API_POST && req->method != API_PUT && req->method != API_PATCH) {
		api_dispatch(req);
		return 0;
	}
	if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING))
			api_reply_error(req, 411,
					"Chunked request bodies are not supported: send "
					"Content-Length");
		else
			api_dispatch(req); /* no body */
		return 0;
	}
	{
		int64_t v;

		if (parse_int64(clen, 0, INT64_MAX, &v) < 0) {
			api_reply_error(req, 400, "Invalid Content-Length");
			return 0;
		}
		req->content_length = (uint64_t)v;
	}
	req->upload = startswith(req->content_type, "application/octet-stream");
	if (req->upload) {
		char tmpl[4096];

		if (req->content_length > API_UPLOAD_MAX) {
			api_reply_error(req, 413, "Upload too large");
			return 0;
		}
		snprintf(tmpl, sizeof(tmpl), "%s/upload-XXXXXX", ctx->tmp_dir);
		req->upload_fd = mkostemp(tmpl, O_CLOEXEC);
		if (req->upload_fd < 0) {
			api_reply_error(req, 500, "Failed to store the upload: %s",
					strerror(errno));
			return 0;
		}
		req->upload_path = strdup(tmpl);
		sha256_init(&req->upload_hash);
	} else if (req->content_length > API_BODY_MAX) {
		/* Answer now: reading 100 MB to refuse it helps nobody. lws closes afterwards. */
		api_reply_error(req, 413, "Request body too large: %llu bytes, the limit is %d",
				(unsigned long long)req->content_length, API_BODY_MAX);
		return 0;
	}
	if (req->content_length == 0)
		api_dispatch(req);
	return 0;
}

static void add_body(struct api_request *req, const void *in, size_t len)
{
	if (req->body_error || req->replied)
		return;
	if (req->upload) {
		const char *p = in;
		size_t left = len;

		sha256_update(&req->upload_hash, in, len);
		while (left > 0) {
			ssize_t n = write(req->upload_fd, p, left);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				body_fail(req, 507, "Failed to store the upload");
				return;
			}
			p += n;
			left -= (size_t)n;
		}
		req->upload_bytes += len;
		return;
	}
	if (req->body_len + len > API_BODY_MAX) {
		body_fail(req, 413, "Request body too large");
		return;
	}
	{
		char *nb = realloc(req->body, req->body_len + len + 1);

		if (!nb) {
			body_fail(req, 500, "Out of memory");
			return;
		}
		req->body = nb;
		memcpy(req->body + req->body_len, in, len);
		req->body_len += len;
		req->body[req->body_len] = 0;
	}
}

static int write_reply(struct lws *wsi, struct pss *pss)
{
	struct api_request *req = pss->req;
	unsigned char buf[LWS_PRE + 32768];
	size_t chunk;
	bool last;

	if (!req || !req->replied)
		return 0;
	if (!req->headers_sent) {
		unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;

		if (lws_add_http_common_headers(wsi, (unsigned int)req->status, req->reply_type,
						req->reply_len, &p, end))
			return -1;
		if (req->location[0] &&
		    lws_add_http_header_by_name(wsi, (const unsigned char *)"location:",
						(const unsigned char *)req->location,
						(int)strlen(req->location), &p, end))
			return -1;
		if (req->etag[0] && lws_add_http_header_by_name(wsi, (const unsigned char *)"etag:",
								(const unsigned char *)req->etag,
								(int)strlen(req->etag), &p, end))
			return -1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		req->headers_sent = true;
		if (req->reply_len > 0) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	} else {
		chunk = req->reply_len - req->reply_off;
		if (chunk > sizeof(buf) - LWS_PRE)
			chunk = sizeof(buf) - LWS_PRE;
		last = req->reply_off + chunk == req->reply_len;
		if (req->reply_fd >= 0) {
			/* a file streamed (backup exports): one chunk per writable callback */
			ssize_t n = read(req->reply_fd, buf + LWS_PRE, chunk);

			if (n != (ssize_t)chunk)
				return -1; /* the file shrank: cut the connection, not the length */
		} else {
			memcpy(buf + LWS_PRE, req->reply_body + req->reply_off, chunk);
		}
		if (lws_write(wsi, buf + LWS_PRE, chunk,
			      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)chunk)
			return -1;
		req->reply_off += chunk;
		if (!last) {
			lws_callback_on_writable(wsi);
			return 0;
		}
	}
	/* Whole reply written. A refused body was not read: close rather than resync. */
	{
		bool close_after = req->body_error ||
				   (req->content_length && !req->upload &&
				    req->body_len < req->content_length && req->method != API_GET);

		api_request_free(req);
		pss->req = NULL;
		if (close_after)
			return -1;
	}
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void api_server_send(struct api_request *req)
{
	if (!req->conn) {
		api_request_free(req);
		return;
	}
	lws_callback_on_writable(req->conn);
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct pss *pss = user;

	/* lws calls some reasons (a connection closed before any request, say) without
	 * per-session data */
	if (!pss)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		return ws_established(wsi, pss);
	case LWS_CALLBACK_RECEIVE:
		return pss->ws ? ws_receive(pss->ws, in, len) : -1;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss->ws ? ws_writable(pss->ws) : 0;
	case LWS_CALLBACK_CLOSED:
		if (pss->ws) {
			struct api_ws *ws = pss->ws;

			pss->ws = NULL;
			ws->wsi = NULL;
			if (ws->handler && ws->handler->closed)
				ws->handler->closed(ws, ws->user);
			ws_free(ws);
		}
		return 0;
	case LWS_CALLBACK_HTTP:
		if (pss->req) /* a pipelined request before the previous reply: not supported */
			return -1;
		return begin_request(wsi, pss, in ? (const char *)in : "/");
	case LWS_CALLBACK_HTTP_BODY:
		if (pss->req)
			add_body(pss->req, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!pss->req || pss->req->replied)
			return 0;
		if (pss->req->body_error) {
			api_reply_error(pss->req, pss->req->body_error, "%s",
					pss->req->body_errmsg);
			return 0;
		}
		api_dispatch(pss->req);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_reply(wsi, pss);
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss->req) {
			struct api_request *req = pss->req;

			pss->req = NULL;
			req->conn = NULL;
			api_ops_forget_request(req->ctx, req);
			if (!req->deferred || req->replied)
				api_request_free(req);
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	{"http", callback_http, sizeof(struct pss), 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_msg(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING, "lws: %.*s", (int)n, line);
}

/* The gid of a local group from /etc/group, or -1. */
static long group_gid(const char *name)
{
	cleanup_fclose FILE *f = fopen("/etc/group", "re");
	char line[1024];
	size_t n = strlen(name);

	while (f && fgets(line, sizeof(line), f)) {
		char *p;

		if (strncmp(line, name, n) != 0 || line[n] != ':')
			continue;
		p = strchr(line + n + 1, ':'); /* skip the password field */
		return p ? strtol(p + 1, NULL, 10) : -1;
	}
	return -1;
}

int api_server_start(struct api_ctx *ctx, struct kiva_error *reterr)
{
	struct lws_context_creation_info info;
	struct api_server *srv;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	lws_set_log_level(LLL_ERR, lws_log_emit);
	memset(&info, 0, sizeof(info));
	srv->foreign_loops[0] = ctx->loop;
	info.foreign_loops = srv->foreign_loops;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UNIX_SOCK |
		       LWS_SERVER_OPTION_DISABLE_IPV6;
	info.iface = ctx->socket_path;
	info.port = 0;
	info.protocols = protocols;
	info.user = ctx;
	info.keepalive_timeout = 60;
	info.timeout_secs = 30;
	info.server_string = "kiva";
	srv->context = lws_create_context(&info);
	if (!srv->context) {
		free(srv);
		return kiva_error_set(reterr, -EIO, "Failed to listen on %s", ctx->socket_path);
	}
	/* root and the members of group "kiva" (when it exists), as LXD's "lxd" group. Read from
	 * /etc/group itself: getgrnam() would map NSS modules into kivad for good. */
	{
		long gid = group_gid("kiva");

		if (gid >= 0 && chown(ctx->socket_path, 0, (gid_t)gid) < 0)
			log_warning("Failed to give %s to group kiva: %m", ctx->socket_path);
	}
	if (chmod(ctx->socket_path, 0660) < 0) {
		lws_context_destroy(srv->context);
		free(srv);
		return kiva_error_set(reterr, -errno, "Failed to chmod %s: %m", ctx->socket_path);
	}
	ctx->server = srv;
	return 0;
}

void api_server_stop(struct api_ctx *ctx)
{
	api_exec_stop_all(ctx);
	if (ctx->server && ctx->server->context)
		lws_context_destroy(ctx->server->context);
}

void api_server_free(struct api_ctx *ctx)
{
	if (!ctx->server)
		return;
	if (ctx->server->context)
		lws_context_destroy(ctx->server->context);
	free(ctx->server);
	ctx->server = NULL;
}
