/* Unit tests of the kiva CLI library (src/cli): the HTTP/1.1 response parser fed from buffers
 * (Content-Length, chunked, reads split at every byte, malformed status lines and headers, size
 * limits), request formatting, a keep-alive connection against a forked unix-socket server (reuse,
 * retry after the server closed an idle connection, streamed upload), the LXD envelope decoder,
 * argument parsing (-c key=value and friends), the table/CSV/YAML/date output, and what the network
 * verbs build (NIC devices, attach/detach choices, ACL rules and their removal, security.acls
 * lists, network and ACL YAML). No root. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "cli-args.h"
#include "cli-client.h"
#include "cli-http.h"
#include "cli-net.h"
#include "cli-output.h"

/* ---- parser helpers ---------------------------------------------------------------------- */

/* Feeds msg in pieces of at most step bytes (0: all at once). Returns the last feed result or the
 * total consumed; the response (if complete) lands in *resp. */
static ssize_t parse_stepped(const char *msg, size_t len, size_t step,
			     struct cli_http_response *resp)
{
	struct cli_http_parser p;
	size_t off = 0;
	ssize_t n = 0;

	cli_http_parser_init(&p, NULL, NULL);
	while (off < len && !cli_http_parser_is_done(&p)) {
		size_t chunk = step && len - off > step ? step : len - off;

		n = cli_http_parser_feed(&p, msg + off, chunk);
		if (n < 0) {
			cli_http_parser_done(&p);
			return n;
		}
		off += (size_t)n;
	}
	if (!cli_http_parser_is_done(&p)) {
		int r = cli_http_parser_eof(&p);

		if (r < 0) {
			cli_http_parser_done(&p);
			return r;
		}
	}
	cli_http_parser_take(&p, resp);
	cli_http_parser_done(&p);
	return (ssize_t)off;
}

static ssize_t parse_all(const char *msg, struct cli_http_response *resp)
{
	return parse_stepped(msg, strlen(msg), 0, resp);
}

/* ---- parser: framing --------------------------------------------------------------------- */

static void test_content_length(void **state)
{
	const char *msg = "HTTP/1.1 200 OK\r\n"
			  "Content-Type: application/json\r\n"
			  "content-length: 17\r\n"
			  "ETag: \"abc\"\r\n"
			  "\r\n"
			  "{\"type\":\"sync\"}\r\n";
	struct cli_http_response r = {0};

	assert_int_equal(parse_all(msg, &r), strlen(msg));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.version_minor, 1);
	assert_string_equal(r.reason, "OK");
	assert_true(r.keep_alive);
	assert_int_equal(r.n_headers, 3);
	assert_string_equal(cli_http_response_header(&r, "CONTENT-TYPE"), "application/json");
	assert_string_equal(cli_http_response_header(&r, "etag"), "\"abc\"");
	assert_null(cli_http_response_header(&r, "Location"));
	assert_int_equal(r.body_len, 17);
	assert_string_equal(r.body, "{\"type\":\"sync\"}\r\n");
	cli_http_response_done(&r);
}

static void test_chunked(void **state)
{
	const char *msg = "HTTP/1.1 200 OK\r\n"
			  "Transfer-Encoding: chunked\r\n"
			  "\r\n"
			  "5;name=value\r\n"
			  "hello\r\n"
			  "1 \r\n"
			  " \r\n"
			  "A\r\n"
			  "0123456789\r\n"
			  "0\r\n"
			  "X-Trailer: ignored\r\n"
			  "\r\n";
	struct cli_http_response r = {0};

	assert_int_equal(parse_all(msg, &r), strlen(msg));
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 16);
	assert_string_equal(r.body, "hello 0123456789");
	assert_true(r.keep_alive);
	cli_http_response_done(&r);
}

/* Every split of the stream into reads must give the same response (split reads). */
static void test_split_reads(void **state)
{
	static const char *const msgs[] = {
		"HTTP/1.1 202 Accepted\r\nLocation: /1.0/operations/x\r\nContent-Length: 11\r\n\r\n"
		"hello world",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
		"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 11\n\nhello world", /* bare LF line ends */
	};

	for (size_t m = 0; m < ARRAY_SIZE(msgs); m++) {
		size_t len = strlen(msgs[m]);

		/* every step size, including one byte at a time */
		for (size_t step = 1; step <= len; step++) {
			struct cli_http_response r = {0};

			assert_int_equal(parse_stepped(msgs[m], len, step, &r), len);
			assert_string_equal(r.body, "hello world");
			cli_http_response_done(&r);
		}
	}
}

static void test_until_close(void **state)
{
	struct cli_http_response r = {0};
	struct cli_http_parser p;

	assert_int_equal(parse_all("HTTP/1.0 200 OK\r\n\r\nraw bytes", &r), 28);
	assert_string_equal(r.body, "raw bytes");
	assert_false(r.keep_alive);
	cli_http_response_done(&r);

	/* HTTP/1.0 asking for keep-alive, HTTP/1.1 with Connection: close */
	assert_true(
		parse_all("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
			  &r) > 0);
	assert_true(r.keep_alive);
	assert_null(r.body);
	cli_http_response_done(&r);
	assert_true(
		parse_all("HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n",
			  &r) > 0);
	assert_false(r.keep_alive);
	cli_http_response_done(&r);

	/* nothing at all: retryable; a cut response: malformed */
	cli_http_parser_init(&p, NULL, NULL);
	assert_int_equal(cli_http_parser_eof(&p), -ECONNRESET);
	cli_http_parser_done(&p);
	assert_int_equal(parse_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &r),
			 -EBADMSG);
	assert_int_equal(
		parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", &r),
		-EBADMSG);
	assert_int_equal(parse_all("HTTP/1.1 200 OK\r\nContent-Le", &r), -EBADMSG);
}

static void test_no_body_statuses(void **state)
{
	struct cli_http_response r = {0};
	const char *msg = "HTTP/1.1 204\r\nContent-Length: 5\r\n\r\n";

	/* 204 has no body whatever Content-Length says; an empty reason phrase is valid */
	assert_int_equal(parse_all(msg, &r), strlen(msg));
	assert_int_equal(r.status, 204);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.body_len, 0);
	cli_http_response_done(&r);

	/* an interim 100 Continue is skipped */
	msg = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
	assert_int_equal(parse_all(msg, &r), strlen(msg));
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body, "ok");
	cli_http_response_done(&r);
}

static void test_leftover_bytes(void **state)
{
	const char *two =
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 Not Found\r\n";
	struct cli_http_parser p;
	ssize_t n;

	cli_http_parser_init(&p, NULL, NULL);
	n = cli_http_parser_feed(&p, two, strlen(two));
	assert_int_equal(n, strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
	assert_true(cli_http_parser_is_done(&p));
	assert_string_equal(p.resp.body, "ok");
	cli_http_parser_done(&p);
}

static void test_obs_fold(void **state)
{
	struct cli_http_response r = {0};

	assert_true(parse_all("HTTP/1.1 200 OK\r\nX-Long: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
			      &r) > 0);
	assert_string_equal(cli_http_response_header(&r, "X-Long"), "a b");
	cli_http_response_done(&r);
}

/* ---- parser: malformed input and limits -------------------------------------------------- */

static void test_malformed_status_line(void **state)
{
	static const char *const bad[] = {
		"HTTP/1.1 20 OK\r\n\r\n",   "HTTP/2 200 OK\r\n\r\n",   "HTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",   "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 999 Nope\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n", "garbage\r\n\r\n",	       "HTTP/1.x 200 OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n", "{\"type\":\"sync\"}\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cli_http_response r = {0};

		assert_int_equal(parse_all(bad[i], &r), -EBADMSG);
	}
}

static void test_malformed_headers(void **state)
{
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
		"HTTP/1.1 200 OK\r\n folded first\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		/* conflicting lengths, with enough body for either: refused, not guessed */
		"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
	};
	struct cli_http_response r = {0};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(parse_all(bad[i], &r), -EBADMSG);

	/* repeated but equal lengths are fine (RFC 9112 §6.3) */
	assert_true(parse_all("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", &r) > 0);
	assert_string_equal(r.body, "hello");
	cli_http_response_done(&r);
}

static void test_oversized_headers(void **state)
{
	size_t big = CLI_HTTP_HEAD_MAX_BYTES + 16;
	cleanup_free char *msg = malloc(big + 64), *many = NULL;
	struct cli_http_response r = {0};
	size_t n;

	/* one huge header line */
	assert_non_null(msg);
	n = (size_t)sprintf(msg, "HTTP/1.1 200 OK\r\nX-Big: ");
	memset(msg + n, 'a', big);
	strcpy(msg + n + big, "\r\n\r\n");
	assert_int_equal(parse_all(msg, &r), -EMSGSIZE);
	/* same, fed one byte at a time: the limit holds across reads */
	assert_int_equal(parse_stepped(msg, strlen(msg), 1, &r), -EMSGSIZE);

	/* too many header fields */
	many = strdup("HTTP/1.1 200 OK\r\n");
	for (unsigned i = 0; i <= CLI_HTTP_HEADERS_MAX; i++) {
		char *next = strf("%sX-H%u: v\r\n", many, i);

		assert_non_null(next);
		free(many);
		many = next;
	}
	assert_int_equal(parse_all(many, &r), -EMSGSIZE);

	/* an endless chunk-size line */
	free(msg);
	msg = malloc(2 * CLI_HTTP_CHUNK_LINE_MAX + 128);
	assert_non_null(msg);
	n = (size_t)sprintf(msg, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;");
	memset(msg + n, 'x', 2 * CLI_HTTP_CHUNK_LINE_MAX);
	msg[n + 2 * CLI_HTTP_CHUNK_LINE_MAX] = 0;
	assert_int_equal(parse_all(msg, &r), -EBADMSG);
}

static void test_body_limit(void **state)
{
	const char *msg = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789";
	const char *chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n";
	struct cli_http_parser p;

	cli_http_parser_init(&p, NULL, NULL);
	p.body_max = 10;
	assert_int_equal(cli_http_parser_feed(&p, msg, strlen(msg)), -EFBIG);
	cli_http_parser_done(&p);

	cli_http_parser_init(&p, NULL, NULL);
	p.body_max = 10;
	assert_int_equal(cli_http_parser_feed(&p, chunked, strlen(chunked)), -EFBIG);
	cli_http_parser_done(&p);
}

struct sink_buf {
	char data[64];
	size_t len;
};

static int sink_collect(void *userdata, const void *data, size_t len)
{
	struct sink_buf *b = userdata;

	if (b->len + len >= sizeof(b->data))
		return -ENOSPC;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static void test_sink(void **state)
{
	const char *ok = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			 "3\r\nout\r\n4\r\nput\n\r\n0\r\n\r\n";
	const char *err = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n{\"a\":\"b\"}";
	struct sink_buf b = {0};
	struct cli_http_parser p;

	/* a 2xx body goes to the sink, not to memory */
	cli_http_parser_init(&p, sink_collect, &b);
	assert_int_equal(cli_http_parser_feed(&p, ok, strlen(ok)), strlen(ok));
	assert_true(cli_http_parser_is_done(&p));
	assert_null(p.resp.body);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "output\n", 7);
	cli_http_parser_done(&p);

	/* an error body is buffered so the LXD error can be decoded */
	b.len = 0;
	cli_http_parser_init(&p, sink_collect, &b);
	assert_int_equal(cli_http_parser_feed(&p, err, strlen(err)), strlen(err));
	assert_int_equal(b.len, 0);
	assert_string_equal(p.resp.body, "{\"a\":\"b\"}");
	cli_http_parser_done(&p);
}

/* ---- request formatting ------------------------------------------------------------------ */

static void test_format_head(void **state)
{
	const char *extra[] = {"If-Match: \"x\"", NULL};
	const char *inject[] = {"X-Evil: a\r\nHost: other", NULL};
	struct cli_http_request get = {.method = "GET", .target = "/1.0/instances?recursion=2"};
	struct cli_http_request post = {
		.method = "POST",
		.target = "/1.0/instances",
		.headers = extra,
		.body = "{\"name\":\"c1\"}",
		.body_len = 13,
	};
	struct cli_http_request up = {
		.method = "POST",
		.target = "/1.0/images",
		.content_type = "application/octet-stream",
		.body_from_fd = true,
		.body_fd_len = 5000000000ULL,
	};
	cleanup_free char *g = cli_http_format_head(&get), *p = cli_http_format_head(&post),
			  *u = cli_http_format_head(&up);

	assert_non_null(g);
	assert_true(startswith(g, "GET /1.0/instances?recursion=2 HTTP/1.1\r\nHost: kiva\r\n"));
	assert_null(strstr(g, "Content-Length"));
	assert_string_equal(g + strlen(g) - 4, "\r\n\r\n");

	assert_non_null(p);
	assert_true(startswith(p, "POST /1.0/instances HTTP/1.1\r\nHost: kiva\r\n"));
	assert_non_null(strstr(p, "\r\nIf-Match: \"x\"\r\n"));
	assert_non_null(strstr(p, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(p, "\r\nContent-Length: 13\r\n\r\n"));

	assert_non_null(u);
	assert_non_null(strstr(u, "\r\nContent-Type: application/octet-stream\r\n"));
	assert_non_null(strstr(u, "\r\nContent-Length: 5000000000\r\n\r\n"));

	/* no header or request-line injection */
	post.headers = inject;
	assert_null(cli_http_format_head(&post));
	get.target = "/1.0 HTTP/1.1\r\nX: y";
	assert_null(cli_http_format_head(&get));
}

/* ---- connection against a forked server -------------------------------------------------- */

/* Reads one request (head + Content-Length body) from fd into buf. Returns body length or -1. */
static ssize_t server_read_request(int fd, char *buf, size_t size, char **ret_body)
{
	size_t len = 0, want = 0;
	char *end = NULL, *cl;

	for (;;) {
		ssize_t n;

		if (end && len >= (size_t)(end + 4 - buf) + want)
			break;
		n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = 0;
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			cl = strstr(buf, "Content-Length: ");
			want = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
		}
	}
	*ret_body = end + 4;
	return (ssize_t)want;
}

/* Child: answers request 1 with keep-alive and then drops the connection (an idle close); answers
 * the retried request 2 (an upload) on a second connection by echoing the body and closing. */
static int run_server(int lfd)
{
	static char buf[1 << 20];
	char *body, resp[256];
	ssize_t n;
	int c;

	c = accept(lfd, NULL, NULL);
	if (c < 0 || server_read_request(c, buf, sizeof(buf), &body) < 0)
		return 10;
	if (!startswith(buf, "GET /1.0 HTTP/1.1\r\nHost: kiva\r\n"))
		return 11;
	n = snprintf(
		resp, sizeof(resp),
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
	if (write(c, resp, (size_t)n) != n)
		return 12;
	close(c);

	c = accept(lfd, NULL, NULL);
	if (c < 0)
		return 13;
	n = server_read_request(c, buf, sizeof(buf), &body);
	if (n < 0 || !startswith(buf, "POST /1.0/images HTTP/1.1\r\n") ||
	    !strstr(buf, "X-LXD-filename: img.tar\r\n"))
		return 14;
	snprintf(resp, sizeof(resp),
		 "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %zd\r\n\r\n", n);
	if (write(c, resp, strlen(resp)) < 0 || write(c, body, (size_t)n) != n)
		return 15;
	close(c);
	return 0;
}

static void test_conn_keepalive_retry_upload(void **state)
{
	char dir[] = "/tmp/test-cli-http.XXXXXX", path[128], file[128];
	const char *hdrs[] = {"X-LXD-filename: img.tar", NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct cli_http_request get = {.method = "GET", .target = "/1.0"};
	struct cli_http_request up = {.method = "POST",
				      .target = "/1.0/images",
				      .headers = hdrs,
				      .content_type = "application/octet-stream",
				      .body_from_fd = true};
	struct cli_http_response r = {0};
	struct cli_http_conn *conn = NULL;
	char payload[200000];
	int lfd, fd, status;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	snprintf(file, sizeof(file), "%s/img.tar", dir);
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(20);
		_exit(run_server(lfd));
	}
	close(lfd);

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)('a' + i % 26);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, payload, sizeof(payload)), sizeof(payload));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);

	assert_int_equal(cli_http_conn_new(path, &conn), 0);
	assert_int_equal(cli_http_conn_request(conn, &get, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{}");
	assert_true(r.keep_alive);
	cli_http_response_done(&r);

	/* The server dropped the idle connection: the request is retried on a new one, and the file
	 * is streamed again from its start. */
	up.body_fd = fd;
	up.body_fd_len = sizeof(payload);
	assert_int_equal(cli_http_conn_request(conn, &up, &r), 0);
	assert_int_equal(r.status, 200);
	assert_false(r.keep_alive);
	assert_int_equal(r.body_len, sizeof(payload));
	assert_memory_equal(r.body, payload, sizeof(payload));
	cli_http_response_done(&r);

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* nobody listens any more */
	assert_int_equal(cli_http_conn_request(conn, &get, &r), -ECONNREFUSED);
	cli_http_conn_free(conn);
	close(fd);
	unlink(path);
	unlink(file);
	rmdir(dir);

	/* a missing socket and a path too long for sun_path */
	assert_int_equal(cli_http_conn_new("/nonexistent/kiva.sock", &conn), 0);
	assert_int_equal(cli_http_conn_request(conn, &get, &r), -ENOENT);
	cli_http_conn_free(conn);
	memset(path, 'x', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	assert_int_equal(cli_http_conn_new(path, &conn), -ENAMETOOLONG);
}

/* ---- LXD envelope ------------------------------------------------------------------------ */

static void test_envelope(void **state)
{
	struct cli_http_response r = {.status = 200};
	struct kiva_error err = {0};
	json_t *env = NULL;

	r.body = (char *)"{\"type\":\"sync\",\"status\":\"Success\",\"status_code\":200,"
			 "\"metadata\":{\"name\":\"c1\"}}";
	r.body_len = strlen(r.body);
	assert_int_equal(cli_decode_envelope(&r, &env, &err), 0);
	assert_string_equal(json_get_str(json_object_get(env, "metadata"), "name", ""), "c1");
	json_decref(env);

	r.status = 404;
	r.body = (char *)"{\"type\":\"error\",\"error\":\"Instance not found\",\"error_code\":404}";
	r.body_len = strlen(r.body);
	assert_int_equal(cli_decode_envelope(&r, &env, &err), -ENOENT);
	assert_string_equal(err.msg, "Instance not found");

	r.status = 400;
	r.body =
		(char *)"{\"type\":\"error\",\"error\":\"Instance is running\",\"error_code\":400}";
	r.body_len = strlen(r.body);
	assert_int_equal(cli_decode_envelope(&r, &env, &err), -EINVAL);
	assert_string_equal(err.msg, "Instance is running");

	r.status = 502;
	r.reason = (char *)"Bad Gateway";
	r.body = (char *)"upstream gone\n";
	r.body_len = strlen(r.body);
	assert_int_equal(cli_decode_envelope(&r, &env, &err), -EIO);
	assert_string_equal(err.msg, "upstream gone");

	r.status = 200;
	r.body = (char *)"not json";
	r.body_len = strlen(r.body);
	assert_int_equal(cli_decode_envelope(&r, &env, &err), -EIO);
	r.body = (char *)"{\"type\":\"weird\"}";
	r.body_len = strlen(r.body);
	assert_int_equal(cli_decode_envelope(&r, &env, &err), -EIO);
	assert_int_equal(cli_http_status_to_errno(409), -EEXIST);
}

/* ---- argument parsing -------------------------------------------------------------------- */

enum { O_CONFIG = 1, O_EPHEMERAL, O_FORCE, O_ENV };

static const struct cli_option test_options[] = {
	{"config", 'c', true, O_CONFIG},
	{"ephemeral", 'e', false, O_EPHEMERAL},
	{"force", 'f', false, O_FORCE},
	{"env", 0, true, O_ENV},
	{},
};

/* Runs the iterator over argv and renders "id:arg ..." plus the positionals, or "error: msg". */
static char *args_trace(int argc, char **argv, size_t stop_after, struct cli_global *g)
{
	struct cli_args a;
	char out[512] = "";
	const char *arg;
	int r;

	assert_int_equal(cli_args_init(&a, argc, argv, test_options, g), 0);
	a.stop_after = stop_after;
	while ((r = cli_args_next(&a, &arg)) > 0)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%d:%s ", r,
			 arg ? arg : "-");
	if (r < 0) {
		snprintf(out, sizeof(out), "error: %s", a.error);
	} else {
		strcat(out, "|");
		for (size_t i = 0; i < a.n_positional; i++)
			snprintf(out + strlen(out), sizeof(out) - strlen(out), " %s",
				 a.positional[i]);
	}
	cli_args_done(&a);
	return strdup(out);
}

#define TRACE(stop, g, ...)                                                                        \
	({                                                                                         \
		char *_argv[] = {__VA_ARGS__, NULL};                                               \
		args_trace((int)ARRAY_SIZE(_argv) - 1, _argv, stop, g);                            \
	})

static void test_args_config(void **state)
{
	struct cli_global g = {0};
	cleanup_free char *t1 = NULL, *t2 = NULL, *t3 = NULL;

	/* -c key=value in every spelling, flags before, between and after positionals */
	t1 = TRACE(0, &g, "launch", "-c", "limits.memory=64MB", "busybox",
		   "--config=limits.cpu=0-1", "c1", "-climits.processes=10", "--config", "a=b=c",
		   "-e");
	assert_string_equal(t1,
			    "1:limits.memory=64MB 1:limits.cpu=0-1 1:limits.processes=10 1:a=b=c "
			    "2:- | busybox c1");

	/* clustered short flags; a value-taking flag ends the cluster */
	t2 = TRACE(0, &g, "launch", "-ef", "-ec", "k=v", "-", "x");
	assert_string_equal(t2, "2:- 3:- 2:- 1:k=v | - x");

	/* a value that starts with a dash is still the flag's value */
	t3 = TRACE(0, &g, "x", "-c", "-1", "--env", "--weird");
	assert_string_equal(t3, "1:-1 4:--weird |");
}

static void test_args_errors(void **state)
{
	struct cli_global g = {0};
	cleanup_free char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL, *t5 = NULL;

	t1 = TRACE(0, &g, "list", "--nope");
	assert_string_equal(t1, "error: unknown flag: --nope");
	t2 = TRACE(0, &g, "list", "-x");
	assert_string_equal(t2, "error: unknown shorthand flag: 'x' in -x");
	t3 = TRACE(0, &g, "launch", "busybox", "c1", "-c");
	assert_string_equal(t3, "error: flag needs an argument: 'c' in -c");
	t4 = TRACE(0, &g, "launch", "--config");
	assert_string_equal(t4, "error: flag needs an argument: --config");
	t5 = TRACE(0, &g, "delete", "--force=yes");
	assert_string_equal(t5, "error: flag does not take a value: --force");
}

static void test_args_exec_and_globals(void **state)
{
	struct cli_global g = {0};
	cleanup_free char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;

	/* "--" ends the flags; the command keeps its own */
	t1 = TRACE(2, &g, "exec", "c1", "--env", "A=B", "--", "ls", "-la", "--env");
	assert_string_equal(t1, "4:A=B | c1 ls -la --env");
	/* without "--", parsing stops at the command (the second positional) */
	t2 = TRACE(2, &g, "exec", "--env=X=1", "c1", "sh", "-c", "echo hi", "--debug");
	assert_string_equal(t2, "4:X=1 | c1 sh -c echo hi --debug");
	assert_false(g.debug);

	/* global flags are taken by every verb and never returned */
	t3 = TRACE(0, &g, "list", "--socket", "/tmp/k.sock", "--debug", "-f");
	assert_string_equal(t3, "3:- |");
	assert_string_equal(g.socket_path, "/tmp/k.sock");
	assert_true(g.debug);
	assert_false(g.help);
	t4 = TRACE(0, &g, "list", "--socket=/x", "-h");
	assert_string_equal(g.socket_path, "/x");
	assert_true(g.help);
}

static void test_key_value(void **state)
{
	static const struct {
		const char *in, *key, *value;
		int r;
	} cases[] = {
		{"limits.memory=64MB", "limits.memory", "64MB", 0},
		{"k=", "k", "", 0},
		{"k=a=b", "k", "a=b", 0},
		{"environment.X= spaced ", "environment.X", " spaced ", 0},
		{"=v", NULL, NULL, -EINVAL},
		{"novalue", NULL, NULL, -EINVAL},
		{"", NULL, NULL, -EINVAL},
	};
	cleanup_json json_t *obj = json_object();
	struct kiva_error err = {0};
	enum cli_format f;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *k = NULL, *v = NULL;

		assert_int_equal(cli_parse_key_value(cases[i].in, &k, &v), cases[i].r);
		if (cases[i].r == 0) {
			assert_string_equal(k, cases[i].key);
			assert_string_equal(v, cases[i].value);
		}
		free(k);
		free(v);
	}

	assert_int_equal(cli_config_add(obj, "limits.cpu=0-1", &err), 0);
	assert_int_equal(cli_config_add(obj, "limits.cpu=2", &err), 0); /* last one wins */
	assert_int_equal(cli_config_add(obj, "oops", &err), -EINVAL);
	assert_string_equal(err.msg, "Bad key=value pair: oops");
	assert_string_equal(json_get_str(obj, "limits.cpu", ""), "2");
	assert_int_equal(json_object_size(obj), 1);

	assert_int_equal(cli_parse_format("csv", &f), 0);
	assert_int_equal(f, CLI_FORMAT_CSV);
	assert_int_equal(cli_parse_format("json", &f), 0);
	assert_int_equal(f, CLI_FORMAT_JSON);
	assert_int_equal(cli_parse_format("xml", &f), -EINVAL);
}

/* ---- output ------------------------------------------------------------------------------ */

static char *render(const struct cli_table *t, enum cli_format fmt)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(cli_table_print(t, fmt, f), 0);
	fclose(f);
	return buf;
}

static void test_table(void **state)
{
	static const char *const header[] = {"NAME", "STATE", "IPV4", "TYPE"};
	static const char *const r1[] = {"web", "RUNNING", "10.0.3.5 (eth0)\n10.0.4.1 (eth1)",
					 "CONTAINER"};
	static const char *const r2[] = {"db", "STOPPED", "", "CONTAINER"};
	static const char *const r3[] = {"a,b", "say \"hi\"", " x", ""};
	struct cli_table *t = NULL;
	cleanup_free char *empty = NULL, *table = NULL, *csv = NULL;

	assert_int_equal(cli_table_new(header, 4, &t), 0);
	empty = render(t, CLI_FORMAT_TABLE);
	assert_string_equal(empty, "+------+-------+------+------+\n"
				   "| NAME | STATE | IPV4 | TYPE |\n"
				   "+------+-------+------+------+\n");
	assert_int_equal(cli_table_add_row(t, r1), 0);
	assert_int_equal(cli_table_add_row(t, r2), 0);
	cli_table_sort(t, 0);
	table = render(t, CLI_FORMAT_TABLE);
	assert_string_equal(table, "+------+---------+-----------------+-----------+\n"
				   "| NAME |  STATE  |      IPV4       |   TYPE    |\n"
				   "+------+---------+-----------------+-----------+\n"
				   "| db   | STOPPED |                 | CONTAINER |\n"
				   "+------+---------+-----------------+-----------+\n"
				   "| web  | RUNNING | 10.0.3.5 (eth0) | CONTAINER |\n"
				   "|      |         | 10.0.4.1 (eth1) |           |\n"
				   "+------+---------+-----------------+-----------+\n");
	assert_int_equal(cli_table_add_row(t, r3), 0);
	csv = render(t, CLI_FORMAT_CSV);
	assert_string_equal(csv, "db,STOPPED,,CONTAINER\n"
				 "web,RUNNING,\"10.0.3.5 (eth0)\n10.0.4.1 (eth1)\",CONTAINER\n"
				 "\"a,b\",\"say \"\"hi\"\"\",\" x\",\n");
	assert_int_equal(cli_table_print(t, CLI_FORMAT_JSON, stdout), -EINVAL);
	cli_table_free(t);
}

static void test_yaml(void **state)
{
	static const char *const keys[] = {"architecture", "config",   "devices",     "ephemeral",
					   "profiles",	   "stateful", "description", NULL};
	cleanup_json json_t *inst = json_loads(
		"{\"name\":\"c1\",\"architecture\":\"x86_64\","
		"\"config\":{\"limits.memory\":\"64MB\",\"image.os\":\"Busybox\",\"limits.processes\":\"100\","
		"\"user.note\":\"a: b\",\"user.flag\":\"true\",\"user.empty\":\"\"},"
		"\"devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"kivabr0\"}},\"ephemeral\":false,"
		"\"profiles\":[\"default\"],\"stateful\":false,\"description\":\"\"}",
		0, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(inst);
	assert_non_null(f);
	cli_yaml_print_keys(f, inst, keys);
	fclose(f);
	assert_string_equal(buf, "architecture: x86_64\n"
				 "config:\n"
				 "  image.os: Busybox\n"
				 "  limits.memory: 64MB\n"
				 "  limits.processes: \"100\"\n"
				 "  user.empty: \"\"\n"
				 "  user.flag: \"true\"\n"
				 "  user.note: \"a: b\"\n"
				 "devices:\n"
				 "  eth0:\n"
				 "    network: kivabr0\n"
				 "    type: nic\n"
				 "ephemeral: false\n"
				 "profiles:\n"
				 "- default\n"
				 "stateful: false\n"
				 "description: \"\"\n");
	free(buf);
}

static void test_dates_and_paths(void **state)
{
	char buf[64];
	time_t t;
	bool zero;
	cleanup_free char *e1 = cli_escape_path_segment("debian/bookworm"),
			  *e2 = cli_escape_path_segment("c1-web_2.x~"),
			  *e3 = cli_escape_path_segment("a b%");

	assert_int_equal(cli_parse_time("2024-01-19T00:05:00Z", &t, &zero), 0);
	assert_int_equal(t, 1705622700);
	assert_false(zero);
	assert_int_equal(cli_parse_time("2024-01-19T02:05:00.123456789+02:00", &t, &zero), 0);
	assert_int_equal(t, 1705622700);
	assert_int_equal(cli_parse_time("0001-01-01T00:00:00Z", &t, &zero), 0);
	assert_true(zero);
	assert_int_equal(cli_parse_time("yesterday", &t, &zero), -EINVAL);
	assert_int_equal(cli_parse_time("2024-01-19T00:05:00", &t, &zero), -EINVAL);

	assert_string_equal(cli_format_time_upload("2024-01-19T00:05:00Z", buf),
			    "Jan 19, 2024 at 12:05am (UTC)");
	assert_string_equal(cli_format_time_upload("2023-07-04T13:45:10.5Z", buf),
			    "Jul 4, 2023 at 1:45pm (UTC)");
	assert_string_equal(cli_format_time_upload("0001-01-01T00:00:00Z", buf), "");
	setenv("TZ", "UTC", 1);
	assert_string_equal(cli_format_time_local("2024-05-01T10:00:00.123Z", buf),
			    "2024/05/01 10:00 UTC");

	assert_string_equal(e1, "debian%2Fbookworm");
	assert_string_equal(e2, "c1-web_2.x~");
	assert_string_equal(e3, "a%20b%25");
}

/* ---- network verbs (cli-net.c) --------------------------------------------------------- */

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (!j)
		fail_msg("bad test JSON: %s", err.text);
	return j;
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

static void test_net_nic(void **state)
{
	cleanup_json json_t *nic = cli_nic_device_new("br0", "eth1");
	cleanup_json json_t *devices =
		load("{\"eth0\":{\"type\":\"nic\",\"network\":\"kivabr0\",\"name\":\"eth0\"},"
		     "\"mgmt\":{\"type\":\"nic\",\"network\":\"br0\",\"name\":\"eth1\"},"
		     "\"lan\":{\"type\":\"nic\",\"nictype\":\"bridged\",\"parent\":\"br1\"},"
		     "\"lan2\":{\"type\":\"nic\",\"network\":\"br1\"},"
		     "\"root\":{\"type\":\"disk\",\"path\":\"/\",\"network\":\"br0\"}}");
	cleanup_json json_t *expanded = load("{\"eth2\":{\"type\":\"nic\",\"network\":\"x\"}}");
	cleanup_free char *s = dump(nic);
	static const struct {
		const char *network, *device, *found, *err;
		int r;
	} cases[] = {
		{"kivabr0", NULL, "eth0", NULL, 0},
		{"br0", NULL, "mgmt", NULL, 0}, /* the disk naming br0 is not a NIC */
		{"br0", "mgmt", "mgmt", NULL, 0},
		{"br1", NULL, NULL, "More than one device matches, specify the device name",
		 -EINVAL},
		{"br1", "lan", "lan", NULL, 0}, /* a NIC on a parent bridge counts, as in lxc */
		{"br0", "eth0", NULL, "The specified device doesn't match the network", -EINVAL},
		{"br0", "root", NULL, "The specified device doesn't match the network", -EINVAL},
		{"br0", "eth9", NULL, "The specified device doesn't exist", -ENOENT},
		{"br9", NULL, NULL, "No device found for this network", -ENOENT},
	};
	char name[16];

	assert_string_equal(s, "{\"name\":\"eth1\",\"network\":\"br0\",\"type\":\"nic\"}");

	/* eth0 is a device, eth1 an interface name, eth2 a profile device: eth3 is free */
	cli_nic_free_name(devices, expanded, name);
	assert_string_equal(name, "eth3");
	cli_nic_free_name(NULL, NULL, name);
	assert_string_equal(name, "eth0");

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kiva_error err = {0};
		const char *found = NULL;

		assert_int_equal(
			cli_nic_find(devices, cases[i].network, cases[i].device, &found, &err),
			cases[i].r);
		if (cases[i].r == 0)
			assert_string_equal(found, cases[i].found);
		else
			assert_string_equal(err.msg, cases[i].err);
	}
}

static void test_net_devices(void **state)
{
	static const char *const kv[] = {"network=br0", "ipv4.address=10.0.3.50",
					 "limits.ingress=20Mbit"};
	static const char *const bad[] = {"network=br0", "oops"};
	static const char *const typed[] = {"type=disk"};
	cleanup_json json_t *inst =
		load("{\"devices\":{\"eth1\":{\"type\":\"nic\",\"network\":\"br0\"}},"
		     "\"expanded_devices\":{\"eth0\":{\"type\":\"nic\",\"network\":\"kivabr0\"},"
		     "\"eth1\":{\"type\":\"nic\",\"network\":\"br0\"}}}");
	cleanup_json json_t *bare = load("{}");
	struct kiva_error err = {0};
	json_t *dev = NULL, *got = NULL;
	cleanup_free char *s1 = NULL, *s2 = NULL;

	assert_int_equal(cli_device_new("nic", kv, ARRAY_SIZE(kv), &dev, &err), 0);
	s1 = dump(dev);
	assert_string_equal(s1, "{\"ipv4.address\":\"10.0.3.50\",\"limits.ingress\":\"20Mbit\","
				"\"network\":\"br0\",\"type\":\"nic\"}");
	json_decref(dev);
	assert_int_equal(cli_device_new("nic", bad, ARRAY_SIZE(bad), &dev, &err), -EINVAL);
	assert_string_equal(err.msg, "Bad key=value pair: oops");
	assert_int_equal(cli_device_new("nic", typed, 1, &dev, &err), -EINVAL);

	/* an own device is returned as is; a profile device is copied in (an override) */
	assert_int_equal(cli_device_local(inst, "eth1", &got, &err), 0);
	assert_ptr_equal(got, json_object_get(json_object_get(inst, "devices"), "eth1"));
	assert_int_equal(cli_device_local(inst, "eth0", &got, &err), 0);
	assert_int_equal(json_set_str(got, "limits.egress", "10Mbit"), 0);
	s2 = dump(json_object_get(inst, "devices"));
	assert_string_equal(s2,
			    "{\"eth0\":{\"limits.egress\":\"10Mbit\",\"network\":\"kivabr0\","
			    "\"type\":\"nic\"},\"eth1\":{\"network\":\"br0\",\"type\":\"nic\"}}");
	/* ... and the profile's own copy is untouched */
	assert_null(
		json_object_get(json_object_get(json_object_get(inst, "expanded_devices"), "eth0"),
				"limits.egress"));
	assert_int_equal(cli_device_local(inst, "eth7", &got, &err), -ENOENT);
	assert_string_equal(err.msg, "Device eth7 doesn't exist");
	assert_int_equal(cli_device_local(bare, "eth0", &got, &err), -ENOENT);
	assert_true(json_is_object(json_object_get(bare, "devices")));
}

static void test_net_acl_rules(void **state)
{
	static const char *const add[] = {"action=allow", "source=@app=api", "destination_port=80",
					  "protocol=tcp"};
	static const char *const unknown[] = {"action=allow", "port=80"};
	static const char *const nokv[] = {"allow"};
	static const char *const tcp[] = {"protocol=tcp"};
	static const char *const udp[] = {"protocol=udp"};
	static const char *const p443[] = {"protocol=tcp", "destination_port=443"};
	static const char *const nodesc[] = {"description="};
	static const char *const disabled[] = {"action=drop", "state=disabled"};
	cleanup_json json_t *rules =
		load("[{\"action\":\"allow\",\"protocol\":\"tcp\",\"destination_port\":\"80\"},"
		     "{\"action\":\"allow\",\"protocol\":\"tcp\",\"destination_port\":\"443\","
		     "\"description\":\"tls\"},"
		     "{\"action\":\"reject\",\"protocol\":\"tcp\",\"destination_port\":\"22\"},"
		     "{\"action\":\"drop\",\"protocol\":\"udp\"}]");
	cleanup_free char *s1 = NULL, *s2 = NULL, *s3 = NULL;
	struct kiva_error err = {0};
	json_t *rule = NULL;
	size_t removed = 0;

	assert_int_equal(cli_acl_direction_check("ingress", &err), 0);
	assert_int_equal(cli_acl_direction_check("egress", &err), 0);
	assert_int_equal(cli_acl_direction_check("in", &err), -EINVAL);
	assert_string_equal(err.msg, "The direction argument must be one of: ingress, egress");

	/* the selector's own '=' stays in the value; state defaults to enabled */
	assert_int_equal(cli_acl_rule_new(add, ARRAY_SIZE(add), &rule, &err), 0);
	s1 = dump(rule);
	assert_string_equal(s1,
			    "{\"action\":\"allow\",\"destination_port\":\"80\","
			    "\"protocol\":\"tcp\",\"source\":\"@app=api\",\"state\":\"enabled\"}");
	json_decref(rule);
	assert_int_equal(cli_acl_rule_new(disabled, ARRAY_SIZE(disabled), &rule, &err), 0);
	assert_string_equal(json_get_str(rule, "state", ""), "disabled");
	json_decref(rule);
	assert_int_equal(cli_acl_rule_new(unknown, ARRAY_SIZE(unknown), &rule, &err), -EINVAL);
	assert_string_equal(err.msg, "Unknown key: port");
	assert_int_equal(cli_acl_rule_new(nokv, 1, &rule, &err), -EINVAL);
	assert_string_equal(err.msg, "Bad key=value pair: allow");

	/* removal: none, several without --force (nothing changes), one, several with --force */
	assert_int_equal(cli_acl_rules_remove(rules, udp, 1, false, &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(json_array_size(rules), 3);
	assert_int_equal(cli_acl_rules_remove(rules, udp, 1, false, &removed, &err), -ENOENT);
	assert_string_equal(err.msg, "No matching rule(s) found");
	assert_int_equal(cli_acl_rules_remove(rules, tcp, 1, false, &removed, &err), -EINVAL);
	assert_string_equal(err.msg, "Multiple rules match. Use --force to remove them all");
	assert_int_equal(json_array_size(rules), 3);
	assert_int_equal(
		cli_acl_rules_remove(rules, unknown, ARRAY_SIZE(unknown), true, NULL, &err),
		-EINVAL);
	assert_int_equal(cli_acl_rules_remove(rules, p443, ARRAY_SIZE(p443), false, &removed, &err),
			 0);
	s2 = dump(rules);
	assert_string_equal(s2, "[{\"action\":\"allow\",\"destination_port\":\"80\",\"protocol\":"
				"\"tcp\"},{\"action\":\"reject\",\"destination_port\":\"22\","
				"\"protocol\":\"tcp\"}]");
	/* an absent field matches an empty value */
	assert_int_equal(cli_acl_rules_remove(rules, nodesc, 1, false, &removed, &err), -EINVAL);
	assert_int_equal(cli_acl_rules_remove(rules, tcp, 1, true, &removed, &err), 0);
	assert_int_equal(removed, 2);
	s3 = dump(rules);
	assert_string_equal(s3, "[]");
}

static void test_net_lists(void **state)
{
	static const struct {
		const char *list, *item, *out;
		int r;
	} adds[] =
		{
			{NULL, "web", "web", 0},	  {"", "web", "web", 0},
			{"db", "web", "db,web", 0},	  {"db, web", "web", NULL, -EEXIST},
			{"webby", "web", "webby,web", 0},
		},
	  removes[] = {
		  {"web", "web", "", 0},
		  {"db,web,cache", "web", "db,cache", 0},
		  {"db , web ,cache", "db", "web,cache", 0},
		  {"db,,web", "web", "db", 0},
		  {"db,webby", "web", NULL, -ENOENT},
		  {"", "web", NULL, -ENOENT},
	  };

	for (size_t i = 0; i < ARRAY_SIZE(adds); i++) {
		char *out = NULL;

		assert_int_equal(cli_list_add(adds[i].list, adds[i].item, &out), adds[i].r);
		if (adds[i].r == 0)
			assert_string_equal(out, adds[i].out);
		else
			assert_null(out);
		free(out);
	}
	for (size_t i = 0; i < ARRAY_SIZE(removes); i++) {
		char *out = NULL;

		assert_int_equal(cli_list_remove(removes[i].list, removes[i].item, &out),
				 removes[i].r);
		if (removes[i].r == 0)
			assert_string_equal(out, removes[i].out);
		else
			assert_null(out);
		free(out);
	}
}

static char *yaml_of(void (*print)(FILE *, const json_t *), const json_t *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	print(f, v);
	fclose(f);
	return buf;
}

static void test_net_yaml(void **state)
{
	cleanup_json json_t *net = load(
		"{\"name\":\"kivabr0\",\"description\":\"\",\"type\":\"bridge\",\"managed\":true,"
		"\"status\":\"Created\",\"config\":{\"ipv4.address\":\"10.0.3.1/24\","
		"\"ipv4.nat\":\"true\",\"security.acls\":\"web-in\"},"
		"\"used_by\":[\"/1.0/instances/c1\"],\"locations\":[\"none\"]}");
	cleanup_json json_t *bare = load("{\"name\":\"br0\",\"type\":\"bridge\"}");
	cleanup_json json_t *acl = load(
		"{\"name\":\"web-in\",\"description\":\"HTTP in\",\"config\":{},\"used_by\":[],"
		"\"ingress\":[{\"action\":\"allow\",\"source\":\"@app=api\",\"destination\":\"\","
		"\"protocol\":\"tcp\",\"source_port\":\"\",\"destination_port\":\"80,443\","
		"\"icmp_type\":\"\",\"icmp_code\":\"\",\"description\":\"\",\"state\":\"enabled\"}],"
		"\"egress\":[]}");
	cleanup_free char *y1 = yaml_of(cli_network_print_yaml, net),
			  *y2 = yaml_of(cli_network_print_yaml, bare),
			  *y3 = yaml_of(cli_acl_print_yaml, acl);

	assert_string_equal(y1, "config:\n"
				"  ipv4.address: 10.0.3.1/24\n"
				"  ipv4.nat: \"true\"\n"
				"  security.acls: web-in\n"
				"description: \"\"\n"
				"name: kivabr0\n"
				"type: bridge\n"
				"used_by:\n"
				"- /1.0/instances/c1\n"
				"managed: true\n"
				"status: Created\n"
				"locations:\n"
				"- none\n");
	assert_string_equal(y2, "config: {}\n"
				"description: \"\"\n"
				"name: br0\n"
				"type: bridge\n"
				"used_by: []\n"
				"managed: false\n"
				"status: \"\"\n");
	assert_string_equal(y3, "name: web-in\n"
				"description: HTTP in\n"
				"egress: []\n"
				"ingress:\n"
				"- action: allow\n"
				"  source: \"@app=api\"\n"
				"  protocol: tcp\n"
				"  destination_port: 80,443\n"
				"  state: enabled\n"
				"config: {}\n"
				"used_by: []\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_split_reads),
		cmocka_unit_test(test_until_close),
		cmocka_unit_test(test_no_body_statuses),
		cmocka_unit_test(test_leftover_bytes),
		cmocka_unit_test(test_obs_fold),
		cmocka_unit_test(test_malformed_status_line),
		cmocka_unit_test(test_malformed_headers),
		cmocka_unit_test(test_oversized_headers),
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_sink),
		cmocka_unit_test(test_format_head),
		cmocka_unit_test(test_conn_keepalive_retry_upload),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_args_config),
		cmocka_unit_test(test_args_errors),
		cmocka_unit_test(test_args_exec_and_globals),
		cmocka_unit_test(test_key_value),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_yaml),
		cmocka_unit_test(test_dates_and_paths),
		cmocka_unit_test(test_net_nic),
		cmocka_unit_test(test_net_devices),
		cmocka_unit_test(test_net_acl_rules),
		cmocka_unit_test(test_net_lists),
		cmocka_unit_test(test_net_yaml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
