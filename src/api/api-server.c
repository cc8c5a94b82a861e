/* HTTP/1.1 server on a unix socket: the only file that includes <libwebsockets.h>. lws runs on
 * kivad's libuv loop (foreign loop). It reads requests (JSON bodies up to 1 MiB in memory, image
 * uploads and file pushes streamed to a file while hashed, chunked ones decoded), hands them to
 * api_dispatch(), and writes replies, keeping connections alive between requests.
 *
 * lws gotchas (notes/feasibility.md §13): a body method without Content-Length makes lws 4.1
 * take 100 MB of whatever comes as the body (a chunked body with its framing), then drop the rest,
 * so such a request is answered 411 at once, unless its body is chunked and streamed to a file
 * (LXD's client sends file pushes and imports so): then kivad reads the connection itself once lws
 * handed over what came with the headers (lws rx flow control off, a dup of its socket polled on
 * the loop), api-chunked.c decodes the body, the request is dispatched after the last chunk and
 * the connection closed after the reply (lws only writes to a connection it may read, so reading
 * goes back to lws first). lws removes an existing socket path before binding, so the daemon
 * holds a lock file before calling api_server_start; with a foreign loop lws_context_destroy() is
 * called twice (api_server_stop, then api_server_free). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* A chunked upload read past lws (see the top of the file): lws stops reading the connection
 * (rx flow control) once it handed over what it had read with the headers, and a dup of its
 * socket is polled here. Freed from uv_close's callback. */
struct raw_body {
	uv_poll_t poll;
	int fd;
	struct lws *wsi;
	struct pss *pss; /* NULL once stopped */
};

struct pss {
	struct api_request *req;
	struct api_ws *ws;
	struct raw_body *raw;
};

#define BODY_TIMEOUT_SEC 30 /* a body that stalls that long is cut (as lws does) */

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

/* Every query argument (lws keeps each as a fragment: lws_hdr_copy gives only the first, decoded),
 * joined with '&'; a '&' or '%' inside one (a file name) is kept as %26 or %25, which api_query
 * decodes. An argument that does not fit is left out whole, never cut. */
static void copy_query(struct lws *wsi, char *query, size_t size)
{
	size_t n = 0;

	query[0] = 0;
	for (int i = 0; i < 32; i++) {
		char frag[1024];
		size_t m = n;

		if (lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
			break;
		if (!frag[0])
			continue;
		if (m && m + 1 < size)
			query[m++] = '&';
		for (const char *f = frag; *f && m + 3 < size; f++) {
			if (*f == '&' || *f == '%') {
				m += (size_t)snprintf(query + m, size - m, "%%%02X", *f);
			} else {
				query[m++] = *f;
			}
			if (!f[1])
				n = m; /* the whole argument fitted */
		}
		query[n] = 0;
		if (n < m)
			break;
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

/* A request header lws does not know by name ("x-lxd-uid:"), "" when absent or too long. */
static void copy_custom(struct lws *wsi, const char *name, char *buf, size_t size)
{
	if (lws_hdr_custom_copy(wsi, buf, (int)size, name, (int)strlen(name)) < 0)
		buf[0] = 0;
}

static bool is_chunked(struct lws *wsi)
{
	char te[64];

	if (lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0)
		return false;
	return strcasecmp(te, "chunked") == 0;
}

/* Starts streaming req's body to a file in the tmp dir. Replies and returns < 0 on failure. */
static int upload_begin(struct api_request *req)
{
	char tmpl[4096];

	snprintf(tmpl, sizeof(tmpl), "%s/upload-XXXXXX", req->ctx->tmp_dir);
	req->upload_fd = mkostemp(tmpl, O_CLOEXEC);
	if (req->upload_fd < 0) {
		api_reply_error(req, 500, "Failed to store the upload: %s", strerror(errno));
		return -errno;
	}
	req->upload_path = strdup(tmpl);
	if (!req->upload_path) {
		unlink(tmpl);
		api_reply_error(req, 500, "Out of memory");
		return -ENOMEM;
	}
	req->upload = true;
	sha256_init(&req->upload_hash);
	return 0;
}

static void reply_too_large(struct api_request *req, uint64_t bytes, uint64_t limit)
{
	char b[32];

	api_reply_error(req, 413, "Upload too large: %llu bytes, the limit is %llu (%s)",
			(unsigned long long)bytes, (unsigned long long)limit,
			format_bytes(limit, b));
}

static int raw_start(struct lws *wsi, struct pss *pss);

static int begin_request(struct lws *wsi, struct pss *pss, const char *uri)
{
	struct api_ctx *ctx = lws_context_user(lws_get_context(wsi));
	struct api_request *req;
	char clen[32] = "";
	uint64_t limit;
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
	copy_custom(wsi, "x-lxd-uid:", req->lxd_uid, sizeof(req->lxd_uid));
	copy_custom(wsi, "x-lxd-gid:", req->lxd_gid, sizeof(req->lxd_gid));
	copy_custom(wsi, "x-lxd-mode:", req->lxd_mode, sizeof(req->lxd_mode));
	copy_custom(wsi, "x-lxd-type:", req->lxd_type, sizeof(req->lxd_type));
	copy_custom(wsi, "x-lxd-write:", req->lxd_write, sizeof(req->lxd_write));
	copy_custom(wsi, "x-lxd-modify-perm:", req->lxd_modify_perm, sizeof(req->lxd_modify_perm));
	pss->req = req;
	/* Long polls (operation wait) must not be cut by lws's pending timeouts. */
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);

	if (req->method != API_POST && req->method != API_PUT && req->method != API_PATCH) {
		api_dispatch(req);
		return 0;
	}
	limit = api_upload_limit(req);
	if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		if (limit && is_chunked(wsi)) {
			/* the body arrives through body_bytes; dispatched after its last chunk */
			req->chunked = true;
			api_chunked_init(&req->chunk);
			if (upload_begin(req) < 0)
				return 0;
			if (raw_start(wsi, pss) < 0)
				api_reply_error(req, 500, "Failed to read the request body");
		} else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING)) {
			api_reply_error(req, 411,
					"Chunked request bodies are not supported here: send "
					"Content-Length");
		} else {
			api_dispatch(req); /* no body */
		}
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
	if (limit) {
		/* refused before a byte is stored; the connection closes after the reply */
		if (req->content_length > limit) {
			req->upload = true;
			reply_too_large(req, req->content_length, limit);
			return 0;
		}
		if (upload_begin(req) < 0)
			return 0;
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

/* Appends payload to the upload file. Returns 0 or -errno (body_fail called). */
static int upload_write(void *userdata, const void *in, size_t len)
{
	struct api_request *req = userdata;
	const char *p = in;
	size_t left = len;

	sha256_update(&req->upload_hash, in, len);
	while (left > 0) {
		ssize_t n = write(req->upload_fd, p, left);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			body_fail(req, 507, "Failed to store the upload");
			return -errno;
		}
		p += n;
		left -= (size_t)n;
	}
	req->upload_bytes += len;
	return 0;
}

/* Past the limit (or announced past it by a chunk's size): for chunked bodies only, the others
 * were checked against Content-Length. */
static int chunk_sink(void *userdata, const void *in, size_t len)
{
	struct api_request *req = userdata;
	uint64_t limit = api_upload_limit(req);

	if (req->upload_bytes + len > limit)
		return -EFBIG;
	return upload_write(req, in, len);
}

/* A chunked body: decoded into the upload file, answered at once when it is malformed or too
 * large, dispatched after the last chunk (no lws timeout from then on: the handler may take its
 * time). */
static void add_chunked(struct api_request *req, const void *in, size_t len)
{
	ssize_t n = api_chunked_feed(&req->chunk, in, len, chunk_sink, req);
	uint64_t limit = api_upload_limit(req);

	if (n == -EFBIG ||
	    (n >= 0 && req->upload_bytes + api_chunked_pending(&req->chunk) > limit)) {
		body_fail(req, 413, "Upload too large");
		reply_too_large(req, req->upload_bytes + api_chunked_pending(&req->chunk), limit);
		return;
	}
	if (n < 0) {
		body_fail(req, n == -EBADMSG ? 400 : 507,
			  n == -EBADMSG ? "Malformed chunked body" : "Failed to store the upload");
		api_reply_error(req, req->body_error, "%s", req->body_errmsg);
		return;
	}
	if (api_chunked_done(&req->chunk)) {
		if (req->conn)
			lws_set_timeout(req->conn, NO_PENDING_TIMEOUT, 0);
		api_dispatch(req);
	}
}

static void add_body(struct api_request *req, const void *in, size_t len)
{
	if (req->body_error || req->replied)
		return;
	if (req->chunked) {
		if (!api_chunked_done(&req->chunk))
			add_chunked(req, in, len);
		return;
	}
	if (req->upload) {
		(void)upload_write(req, in, len);
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

/* The handler's extra headers ("name: value\n" lines, api_reply_header). */
static int add_reply_headers(struct lws *wsi, const char *lines, unsigned char **p,
			     unsigned char *end)
{
	while (*lines) {
		const char *colon = strchr(lines, ':'), *nl = strchr(lines, '\n');
		char name[64];
		const char *value;

		if (!colon || !nl || colon > nl || (size_t)(colon - lines) + 2 > sizeof(name))
			return -1;
		/* lws wants the name with its colon, lower case for HTTP/2 */
		for (size_t i = 0; i < (size_t)(colon - lines); i++)
			name[i] = (char)tolower((unsigned char)lines[i]);
		name[colon - lines] = ':';
		name[colon - lines + 1] = 0;
		value = colon + 1;
		while (*value == ' ')
			value++;
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
						(const unsigned char *)value, (int)(nl - value), p,
						end))
			return -1;
		lines = nl + 1;
	}
	return 0;
}

static void raw_closed(uv_handle_t *h)
{
	struct raw_body *rb = h->data;

	close(rb->fd);
	free(rb);
}

/* Stops reading the body here; with resume, lws reads the connection again (it only writes the
 * reply of a connection it may read: rops_handle_POLLIN_h1 skips flow-controlled ones, POLLOUT
 * included). */
static void raw_stop(struct pss *pss, bool resume)
{
	struct raw_body *rb = pss->raw;

	if (!rb)
		return;
	pss->raw = NULL;
	rb->pss = NULL;
	uv_poll_stop(&rb->poll);
	uv_close((uv_handle_t *)&rb->poll, raw_closed);
	if (resume)
		lws_rx_flow_control(rb->wsi, 1);
}

/* Body bytes of pss's request, from lws or read here. Reading here stops once the body is
 * complete or was answered (refused). */
static void body_bytes(struct pss *pss, const void *in, size_t len)
{
	struct api_request *req = pss->req;

	add_body(req, in, len);
	if (pss->raw && (req->replied || req->body_error || api_chunked_done(&req->chunk)))
		raw_stop(pss, true);
}

static void raw_readable(uv_poll_t *h, int status, int events)
{
	struct raw_body *rb = h->data;
	struct pss *pss = rb->pss;
	unsigned char buf[65536];
	ssize_t n;

	(void)events;
	if (!pss || !pss->req)
		return;
	n = status < 0 ? -1 : read(rb->fd, buf, sizeof(buf));
	if (n < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* the client went away mid-body: have lws close the connection */
		struct lws *wsi = rb->wsi;

		raw_stop(pss, false);
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		return;
	}
	lws_set_timeout(rb->wsi, PENDING_TIMEOUT_HTTP_CONTENT, BODY_TIMEOUT_SEC);
	body_bytes(pss, buf, (size_t)n);
}

/* Takes over reading a chunked body (lws would stop at 100 MB, see the top of the file). */
static int raw_start(struct lws *wsi, struct pss *pss)
{
	struct api_ctx *ctx = lws_context_user(lws_get_context(wsi));
	struct raw_body *rb = calloc(1, sizeof(*rb));

	if (!rb)
		return -ENOMEM;
	rb->fd = fcntl(lws_get_socket_fd(wsi), F_DUPFD_CLOEXEC, 3);
	if (rb->fd < 0 || uv_poll_init(ctx->loop, &rb->poll, rb->fd) < 0) {
		if (rb->fd >= 0)
			close(rb->fd);
		free(rb);
		return -EIO;
	}
	rb->poll.data = rb;
	rb->wsi = wsi;
	rb->pss = pss;
	pss->raw = rb;
	lws_rx_flow_control(wsi, 0);
	uv_poll_start(&rb->poll, UV_READABLE | UV_DISCONNECT, raw_readable);
	return 0;
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
		if (add_reply_headers(wsi, req->reply_headers, &p, end) < 0)
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
		bool close_after = req->body_error || req->chunked ||
				   (req->upload && req->upload_bytes < req->content_length) ||
				   (req->content_length && !req->upload &&
				    req->body_len < req->content_length && req->method != API_GET);

		raw_stop(pss, false);
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
			body_bytes(pss, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* chunked bodies end with their last chunk, whatever lws thinks */
		if (!pss->req || pss->req->replied || pss->req->chunked)
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
		raw_stop(pss, false);
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
