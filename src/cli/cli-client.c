/* kivad API client for the CLI: LXD envelopes and operations over cli-http's keep-alive connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-client.h"
#include "cli-output.h"

struct cli_client {
	char *socket_path;
	struct cli_http_conn *conn;
	bool debug;
};

int cli_client_new(const char *socket_path, bool debug, struct cli_client **ret,
		   struct kiva_error *reterr)
{
	struct cli_client *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	c->debug = debug;
	c->socket_path = strdup(socket_path);
	if (!c->socket_path) {
		free(c);
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	r = cli_http_conn_new(socket_path, &c->conn);
	if (r < 0) {
		free(c->socket_path);
		free(c);
		return kiva_error_set(reterr, r, "Bad socket path '%s': %s", socket_path,
				      strerror(-r));
	}
	*ret = c;
	return 0;
}

void cli_client_free(struct cli_client *c)
{
	if (!c)
		return;
	cli_http_conn_free(c->conn);
	free(c->socket_path);
	free(c);
}

int cli_http_status_to_errno(int status)
{
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 412:
		return -EBUSY;
	case 501:
		return -EOPNOTSUPP;
	default:
		return -EIO;
	}
}

/* Is a non-JSON error body short, printable text worth showing as the message? */
static bool body_is_short_text(const struct cli_http_response *resp)
{
	if (!resp->body || resp->body_len == 0 || resp->body_len > 200)
		return false;
	for (size_t i = 0; i < resp->body_len; i++) {
		unsigned char ch = (unsigned char)resp->body[i];

		if (ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t')
			return false;
	}
	return true;
}

int cli_decode_envelope(const struct cli_http_response *resp, json_t **ret_env,
			struct kiva_error *reterr)
{
	cleanup_json json_t *env = NULL;
	json_error_t jerr;
	const char *type, *msg;
	bool ok = resp->status >= 200 && resp->status < 300;

	if (resp->body && resp->body_len > 0)
		env = json_loadb(resp->body, resp->body_len, 0, &jerr);
	if (!json_is_object(env)) {
		if (ok)
			return kiva_error_set(
				reterr, -EIO,
				"Malformed response from kivad (HTTP %d): not a JSON object",
				resp->status);
		if (body_is_short_text(resp)) {
			size_t n = resp->body_len;

			while (n > 0 && (resp->body[n - 1] == '\n' || resp->body[n - 1] == '\r'))
				n--;
			return kiva_error_set(reterr, cli_http_status_to_errno(resp->status),
					      "%.*s", (int)n, resp->body);
		}
		return kiva_error_set(reterr, cli_http_status_to_errno(resp->status), "HTTP %d %s",
				      resp->status, resp->reason ? resp->reason : "");
	}
	type = json_get_str(env, "type", "");
	if (!ok || streq(type, "error")) {
		int code = ok ? (int)json_get_int(env, "error_code", 500) : resp->status;

		msg = json_get_str(env, "error", NULL);
		if (!msg || !*msg)
			return kiva_error_set(reterr, cli_http_status_to_errno(code), "HTTP %d %s",
					      resp->status, resp->reason ? resp->reason : "");
		return kiva_error_set(reterr, cli_http_status_to_errno(code), "%s", msg);
	}
	if (!streq(type, "sync") && !streq(type, "async"))
		return kiva_error_set(reterr, -EIO, "Malformed response from kivad: type '%s'",
				      type);
	*ret_env = TAKE_PTR(env);
	return 0;
}

/* Replaces the values of every "fds" object in v (the WebSocket secrets of an exec or console
 * operation) with "...": --debug never prints a secret. */
static void redact_fds(json_t *v)
{
	const char *key;
	json_t *child;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, child)
			redact_fds(child);
		return;
	}
	json_object_foreach(v, key, child) {
		if (streq(key, "fds") && json_is_object(child)) {
			const char *k;
			json_t *secret;

			json_object_foreach(child, k, secret)
				(void)json_object_set_new(child, k, json_string("..."));
		} else {
			redact_fds(child);
		}
	}
}

static void debug_trace_body(const char *prefix, const void *body, size_t len)
{
	const size_t max = 4096;
	cleanup_free char *redacted = NULL;

	if (!body || len == 0)
		return;
	if (memmem(body, len, "\"fds\"", 5)) {
		cleanup_json json_t *v = json_loadb(body, len, 0, NULL);

		if (v) {
			redact_fds(v);
			redacted = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
		}
		if (!redacted)
			return; /* print nothing rather than the secrets */
		body = redacted;
		len = strlen(redacted);
	}
	fprintf(stderr, "DEBUG: %s %.*s%s\n", prefix, (int)(len > max ? max : len),
		(const char *)body, len > max ? "..." : "");
}

static const char *connect_hint(int r)
{
	switch (r) {
	case -ENOENT:
	case -ECONNREFUSED:
		return " (is kivad running?)";
	case -EACCES:
		return " (the socket is for root and group kiva)";
	default:
		return "";
	}
}

/* One HTTP exchange. Connection-level failures get their message here. */
static int client_exchange(struct cli_client *c, const struct cli_http_request *req,
			   struct cli_http_response *ret, struct kiva_error *reterr)
{
	int r;

	if (c->debug) {
		fprintf(stderr, "DEBUG: > %s %s (unix:%s)\n", req->method, req->target,
			c->socket_path);
		debug_trace_body(">", req->body, req->body_len);
	}
	r = cli_http_conn_request(c->conn, req, ret);
	if (r < 0) {
		switch (r) {
		case -ENOENT:
		case -ECONNREFUSED:
		case -EACCES:
		case -EPERM:
		case -ENOTSOCK:
			return kiva_error_set(reterr, r, "Failed to connect to kivad at %s: %s%s",
					      c->socket_path, strerror(-r), connect_hint(r));
		case -EBADMSG:
			return kiva_error_set(reterr, -EIO, "Malformed HTTP response from kivad");
		case -EMSGSIZE:
			return kiva_error_set(reterr, -EIO,
					      "HTTP response headers from kivad are too large");
		case -EFBIG:
			return kiva_error_set(reterr, -EIO,
					      "HTTP response from kivad is too large");
		default:
			return kiva_error_default(reterr, r, "Failed to talk to kivad at %s: %s",
						  c->socket_path, strerror(-r));
		}
	}
	if (c->debug) {
		fprintf(stderr, "DEBUG: < HTTP/1.%d %d %s\n", ret->version_minor, ret->status,
			ret->reason ? ret->reason : "");
		debug_trace_body("<", ret->body, ret->body_len);
	}
	return 0;
}

static int client_request_json(struct cli_client *c, const char *method, const char *path,
			       const json_t *body, const char *if_match, json_t **ret_env,
			       char **ret_etag, struct kiva_error *reterr)
{
	cleanup_free char *data = NULL, *match = NULL;
	struct cli_http_response resp = {0};
	const char *headers[2] = {NULL, NULL};
	struct cli_http_request req = {.method = method, .target = path};
	int r;

	if (body) {
		data = json_dumps(body, JSON_COMPACT);
		if (!data)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		req.body = data;
		req.body_len = strlen(data);
	}
	if (if_match) {
		match = strf("If-Match: %s", if_match);
		if (!match)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		headers[0] = match;
		req.headers = headers;
	}
	r = client_exchange(c, &req, &resp, reterr);
	if (r < 0)
		return r;
	r = cli_decode_envelope(&resp, ret_env, reterr);
	if (r >= 0 && ret_etag) {
		const char *etag = cli_http_response_header(&resp, "ETag");

		*ret_etag = etag ? strdup(etag) : NULL;
	}
	cli_http_response_done(&resp);
	return r;
}

static json_t *metadata_ref(const json_t *env)
{
	json_t *m = json_object_get(env, "metadata");

	return m ? json_incref(m) : json_null();
}

int cli_wait_operation(struct cli_client *c, const char *op_path, json_t **ret_op,
		       struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	const char *q = strchr(op_path, '?');

	/* "/1.0/operations/<id>" → "/1.0/operations/<id>/wait?timeout=-1" */
	path = strf("%.*s/wait?timeout=-1", (int)(q ? (size_t)(q - op_path) : strlen(op_path)),
		    op_path);
	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (;;) {
		cleanup_json json_t *env = NULL;
		json_t *op;
		const char *status, *err;
		long long code;
		int r;

		r = client_request_json(c, "GET", path, NULL, NULL, &env, NULL, reterr);
		if (r < 0)
			return r;
		op = json_object_get(env, "metadata");
		if (!json_is_object(op))
			return kiva_error_set(reterr, -EIO, "Malformed operation from kivad");
		status = json_get_str(op, "status", "");
		code = json_get_int(op, "status_code", 0);
		if (code == 200 || streq(status, "Success")) {
			*ret_op = json_incref(op);
			return 0;
		}
		if (code == 103 || code == 105 || code == 100 || code == 101 ||
		    streq(status, "Running") || streq(status, "Pending"))
			continue; /* the server's wait timed out: wait again */
		err = json_get_str(op, "err", "");
		if (*err)
			return kiva_error_set(reterr, -EIO, "%s", err);
		return kiva_error_set(reterr, -EIO, "Operation %s", *status ? status : "failed");
	}
}

int cli_call(struct cli_client *c, const struct cli_call *call, json_t **ret_metadata,
	     struct kiva_error *reterr)
{
	cleanup_json json_t *env = NULL, *op = NULL;
	const char *op_path;
	int r;

	if (call->upload) {
		cleanup_free char *fname = NULL;
		cleanup_free const char **headers = NULL;
		struct cli_http_response resp = {0};
		size_t n = 0, k = 0;
		struct cli_http_request req = {
			.method = call->method,
			.target = call->path,
			.content_type = call->content_type ? call->content_type
							   : "application/octet-stream",
			.body_from_fd = true,
			.body_fd = call->upload_fd,
			.body_fd_len = call->upload_len,
		};

		while (call->headers && call->headers[n])
			n++;
		headers = calloc(n + 2, sizeof(char *));
		if (!headers)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		if (call->filename) {
			fname = strf("X-LXD-filename: %s", call->filename);
			if (!fname)
				return kiva_error_set(reterr, -ENOMEM, "Out of memory");
			headers[k++] = fname;
		}
		for (size_t i = 0; i < n; i++)
			headers[k++] = call->headers[i];
		req.headers = headers;
		r = client_exchange(c, &req, &resp, reterr);
		if (r < 0)
			return r;
		r = cli_decode_envelope(&resp, &env, reterr);
		cli_http_response_done(&resp);
	} else {
		r = client_request_json(c, call->method, call->path, call->body, call->if_match,
					&env, call->ret_etag, reterr);
	}
	if (r < 0)
		return r;

	if (!streq(json_get_str(env, "type", ""), "async") || !call->wait) {
		if (ret_metadata)
			*ret_metadata = metadata_ref(env);
		return 0;
	}
	op_path = json_get_str(env, "operation", NULL);
	if (!op_path || !*op_path) {
		/* fall back to the id inside the operation object */
		const char *id = json_get_str(json_object_get(env, "metadata"), "id", NULL);
		cleanup_free char *p = NULL;

		if (!id)
			return kiva_error_set(reterr, -EIO,
					      "Malformed async response from kivad: no operation");
		p = strf("/1.0/operations/%s", id);
		if (!p)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		r = cli_wait_operation(c, p, &op, reterr);
	} else {
		r = cli_wait_operation(c, op_path, &op, reterr);
	}
	if (r < 0)
		return r;
	if (ret_metadata)
		*ret_metadata = metadata_ref(op);
	return 0;
}

int cli_get(struct cli_client *c, const char *path, json_t **ret_metadata,
	    struct kiva_error *reterr)
{
	struct cli_call call = {.method = "GET", .path = path};

	return cli_call(c, &call, ret_metadata, reterr);
}

int cli_run(struct cli_client *c, const char *method, const char *path, const json_t *body,
	    json_t **ret_metadata, struct kiva_error *reterr)
{
	struct cli_call call = {.method = method, .path = path, .body = body, .wait = true};

	return cli_call(c, &call, ret_metadata, reterr);
}

static int sink_fd(void *userdata, const void *data, size_t len)
{
	int fd = *(int *)userdata;
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cli_get_raw_response(struct cli_client *c, const char *path, int fd,
			 struct cli_http_response *ret_resp, struct kiva_error *reterr)
{
	struct cli_http_response resp = {0};
	struct cli_http_request req = {
		.method = "GET",
		.target = path,
		.sink = sink_fd,
		.sink_userdata = &fd,
	};
	json_t *env = NULL;
	int r;

	r = client_exchange(c, &req, &resp, reterr);
	if (r < 0)
		return r;
	if (resp.status >= 200 && resp.status < 300) {
		*ret_resp = resp;
		return 0;
	}
	r = cli_decode_envelope(&resp, &env, reterr);
	if (r >= 0) {
		json_decref(env);
		r = kiva_error_set(reterr, -EIO, "HTTP %d", resp.status);
	}
	cli_http_response_done(&resp);
	return r;
}

int cli_get_raw(struct cli_client *c, const char *path, int fd, struct kiva_error *reterr)
{
	struct cli_http_response resp = {0};
	struct cli_http_request req = {
		.method = "GET",
		.target = path,
		.sink = sink_fd,
		.sink_userdata = &fd,
	};
	int r;

	r = client_exchange(c, &req, &resp, reterr);
	if (r < 0)
		return r;
	if (resp.status < 200 || resp.status >= 300) {
		json_t *env = NULL;

		r = cli_decode_envelope(&resp, &env, reterr);
		if (r >= 0) {
			json_decref(env);
			r = kiva_error_set(reterr, -EIO, "HTTP %d", resp.status);
		}
	}
	cli_http_response_done(&resp);
	return r;
}

/* target with the value of a secret= argument replaced by "...": secrets are never printed. */
static void debug_trace_ws(const char *target)
{
	const char *q = strstr(target, "secret=");

	if (!q) {
		fprintf(stderr, "DEBUG: > GET %s (WebSocket)\n", target);
		return;
	}
	q += strlen("secret=");
	fprintf(stderr, "DEBUG: > GET %.*s...%s (WebSocket)\n", (int)(q - target), target,
		q + strcspn(q, "&"));
}

int cli_client_websocket(struct cli_client *c, const char *target, struct cli_ws **ret,
			 struct kiva_error *reterr)
{
	cleanup_free char *body = NULL;
	int status = 0, r;

	if (c->debug)
		debug_trace_ws(target);
	r = cli_ws_connect(c->socket_path, target, ret, &status, &body);
	if (c->debug && status)
		fprintf(stderr, "DEBUG: < HTTP/1.1 %d%s\n", status,
			status == 101 && r >= 0 ? " Switching Protocols (WebSocket)" : "");
	if (r >= 0)
		return 0;
	switch (r) {
	case -ENOENT:
	case -ECONNREFUSED:
	case -EACCES:
	case -EPERM:
	case -ENOTSOCK:
		return kiva_error_set(reterr, r, "Failed to connect to kivad at %s: %s%s",
				      c->socket_path, strerror(-r), connect_hint(r));
	case -ENOMEM:
		return kiva_error_set(reterr, r, "Out of memory");
	case -EPROTO:
		if (status && status != 101) {
			struct cli_http_response resp = {
				.status = status,
				.body = body,
				.body_len = body ? strlen(body) : 0,
			};
			json_t *env = NULL;

			r = cli_decode_envelope(&resp, &env, reterr);
			json_decref(env);
			if (r < 0)
				return r;
			return kiva_error_set(reterr, -EIO, "kivad refused the WebSocket (HTTP %d)",
					      status);
		}
		return kiva_error_set(reterr, -EIO, "WebSocket handshake with kivad failed");
	default:
		return kiva_error_set(reterr, r, "WebSocket handshake with kivad failed: %s",
				      strerror(-r));
	}
}

int cli_client_op_websocket(struct cli_client *c, const char *op_id, const char *secret,
			    struct cli_ws **ret, struct kiva_error *reterr)
{
	cleanup_free char *id = cli_escape_path_segment(op_id),
			  *sec = cli_escape_path_segment(secret), *target = NULL;

	if (!id || !sec)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	target = strf("/1.0/operations/%s/websocket?secret=%s", id, sec);
	if (!target)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	return cli_client_websocket(c, target, ret, reterr);
}
