/* LXD's response envelopes (sync, async, error), query parameters and body parsing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api-internal.h"

static void reply_json(struct api_request *req, int status, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	if (!text) {
		text = strdup("{\"type\":\"error\",\"error\":\"Out of memory\",\"error_code\":500,"
			      "\"metadata\":null}");
		status = 500;
	}
	api_reply_raw(req, status, "application/json", text, text ? strlen(text) : 0);
}

void api_reply_raw(struct api_request *req, int http_status, const char *content_type, char *data,
		   size_t len)
{
	if (req->replied) {
		free(data);
		return;
	}
	req->replied = true;
	req->status = http_status;
	snprintf(req->reply_type, sizeof(req->reply_type), "%s", content_type);
	req->reply_body = data;
	req->reply_len = data ? len : 0;
	api_server_send(req);
}

void api_reply_file(struct api_request *req, int http_status, const char *content_type, int fd,
		    size_t size)
{
	if (req->replied) {
		close(fd);
		return;
	}
	req->replied = true;
	req->status = http_status;
	snprintf(req->reply_type, sizeof(req->reply_type), "%s", content_type);
	req->reply_body = NULL;
	req->reply_fd = fd;
	req->reply_len = size;
	api_server_send(req);
}

void api_reply_sync(struct api_request *req, json_t *metadata)
{
	json_t *doc = json_pack("{s:s,s:s,s:i,s:s,s:i,s:s,s:o}", "type", "sync", "status",
				"Success", "status_code", 200, "operation", "", "error_code", 0,
				"error", "", "metadata", metadata ? metadata : json_null());

	reply_json(req, 200, doc);
}

void api_reply_error(struct api_request *req, int http_status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_json(req, http_status,
		   json_pack("{s:s,s:s,s:i,s:n}", "type", "error", "error", msg, "error_code",
			     http_status, "metadata"));
}

static int errno_to_http(int code)
{
	switch (-code) {
	case EINVAL:
	case E2BIG:
	case ERANGE:
	case ENAMETOOLONG:
		return 400;
	case EPERM:
	case EACCES:
		return 403;
	case ENOENT:
	case ESRCH:
		return 404;
	case EEXIST:
	case EBUSY:
	case ENOTEMPTY:
		return 409;
	case EFBIG:
		return 413;
	case ENOSPC:
		return 507;
	case ENOTCONN:
		return 503;
	default:
		return 500;
	}
}

void api_reply_kiva_error(struct api_request *req, const struct kiva_error *err)
{
	api_reply_error(req, errno_to_http(err->code), "%s",
			err->msg[0] ? err->msg : strerror(-err->code));
}

void api_reply_async(struct api_request *req, struct api_op *op)
{
	json_t *doc =
		json_pack("{s:s,s:s,s:i,s:s,s:o}", "type", "async", "status", "Operation created",
			  "status_code", 100, "operation", "", "metadata", api_op_to_json(op));
	char url[128];

	snprintf(url, sizeof(url), "/1.0/operations/%s", op->id);
	json_object_set_new(doc, "operation", json_string(url));
	snprintf(req->location, sizeof(req->location), "%s", url);
	reply_json(req, 202, doc);
}

void api_defer(struct api_request *req)
{
	req->deferred = true;
}

int api_reply_header(struct api_request *req, const char *name, const char *value)
{
	size_t used = strlen(req->reply_headers);
	int n;

	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -EINVAL;
	n = snprintf(req->reply_headers + used, sizeof(req->reply_headers) - used, "%s: %s\n", name,
		     value);
	if (n < 0 || (size_t)n >= sizeof(req->reply_headers) - used) {
		req->reply_headers[used] = 0;
		return -ENOBUFS;
	}
	return 0;
}

const char *api_query(const struct api_request *req, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = req->query;

	while (*p) {
		const char *amp = strchr(p, '&');
		size_t seg = amp ? (size_t)(amp - p) : strlen(p);

		if (seg > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1, *end = p + seg;
			size_t k = 0;

			/* the server kept a '&' or '%' inside a value as %26 or %25 */
			while (v < end && k + 1 < len) {
				if (*v == '%' && end - v >= 3 &&
				    (strncmp(v, "%26", 3) == 0 || strncmp(v, "%25", 3) == 0)) {
					buf[k++] = v[2] == '6' ? '&' : '%';
					v += 3;
				} else {
					buf[k++] = *v++;
				}
			}
			buf[k] = 0;
			return buf;
		}
		if (seg == nlen && strncmp(p, name, nlen) == 0) {
			buf[0] = 0;
			return buf;
		}
		p += seg;
		if (*p == '&')
			p++;
	}
	return NULL;
}

int api_recursion(const struct api_request *req)
{
	char buf[16];
	const char *v = api_query(req, "recursion", buf, sizeof(buf));

	return v ? atoi(v) : 0;
}

int api_parse_body(struct api_request *req, json_t **ret)
{
	json_error_t jerr;
	json_t *j;

	if (!req->body || req->body_len == 0) {
		api_reply_error(req, 400, "Request body is required");
		return -EINVAL;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		api_reply_error(req, 400, "Malformed JSON in request body: %s (line %d)", jerr.text,
				jerr.line);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_reply_error(req, 400, "Request body must be a JSON object");
		return -EINVAL;
	}
	*ret = j;
	return 0;
}

int api_body_bool(struct api_request *req, const json_t *body, const char *key, bool fallback,
		  bool *ret)
{
	const json_t *v = json_object_get(body, key);

	if (!v) {
		*ret = fallback;
		return 0;
	}
	if (!json_is_boolean(v)) {
		api_reply_error(req, 400, "Invalid %s: expected true or false", key);
		return -EINVAL;
	}
	*ret = json_is_true(v);
	return 0;
}
