/* A small blocking HTTP/1.1 client over an AF_UNIX stream socket, for the kiva CLI talking to kivad.
 * The response parser is a pure state machine fed with byte buffers (cli_http_parser_*), so it is
 * testable without a socket; the connection (cli_http_conn_*) keeps one keep-alive connection per
 * invocation and reconnects when the server closed it. Framing follows RFC 9112 (HTTP/1.1): status
 * line §4, header fields §5, message body length §6.3, chunked transfer coding §7.1. Single-threaded:
 * none of these functions may be called concurrently on the same object. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Limits on what the server may send. The head (status line, header fields, chunk trailers) is
 * bounded so a broken peer cannot make the CLI allocate without end. */
#define CLI_HTTP_HEAD_MAX_BYTES (64u * 1024u)
#define CLI_HTTP_HEADERS_MAX 128u
#define CLI_HTTP_CHUNK_LINE_MAX 4096u
#define CLI_HTTP_BODY_MAX_BYTES (256u * 1024u * 1024u)

/* Called with the body bytes of a 2xx response instead of buffering them (streaming a log to
 * stdout). Returns 0 or -errno, which aborts the parse with that error. */
typedef int (*cli_http_sink_t)(void *userdata, const void *data, size_t len);

struct cli_http_response {
	int status; /* 200 */
	int version_minor; /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
	char *reason; /* "OK"; owned */
	char **headers; /* name, value, name, value, ..., NULL; names as received; owned */
	size_t n_headers;
	char *body; /* NUL-terminated (body_len excludes the NUL); NULL when empty or sunk; owned */
	size_t body_len;
	bool keep_alive; /* the connection may carry another request after this response */
};

/* Frees what r owns and zeroes it. Accepts a zeroed struct. */
void cli_http_response_done(struct cli_http_response *r);

/* Value of the first header named name (case-insensitive), or NULL. Borrowed from r. */
const char *cli_http_response_header(const struct cli_http_response *r, const char *name);

enum cli_http_parser_state {
	CLI_HTTP_PARSE_STATUS,
	CLI_HTTP_PARSE_HEADER,
	CLI_HTTP_PARSE_BODY_LENGTH,
	CLI_HTTP_PARSE_BODY_UNTIL_CLOSE,
	CLI_HTTP_PARSE_CHUNK_SIZE,
	CLI_HTTP_PARSE_CHUNK_DATA,
	CLI_HTTP_PARSE_CHUNK_DATA_END,
	CLI_HTTP_PARSE_TRAILER,
	CLI_HTTP_PARSE_DONE,
};

struct cli_http_parser {
	enum cli_http_parser_state state;
	struct cli_http_response
		resp; /* filled as parsing goes; take it with cli_http_parser_take */
	char *line; /* the partial line being accumulated */
	size_t line_len;
	size_t line_alloc;
	size_t head_bytes; /* bytes of status line + headers + trailers so far */
	uint64_t remaining; /* body bytes left (Content-Length) or chunk bytes left */
	uint64_t received; /* every byte fed so far */
	uint64_t body_bytes;
	bool chunked;
	bool has_length;
	bool head_request; /* the request was HEAD: no body whatever the headers say */
	size_t body_alloc;
	size_t body_max;
	cli_http_sink_t sink;
	void *sink_userdata;
};

/* Prepares p for one response. sink (optional) receives the body of a 2xx response; any other
 * status, or no sink, buffers the body in resp.body up to CLI_HTTP_BODY_MAX_BYTES. */
void cli_http_parser_init(struct cli_http_parser *p, cli_http_sink_t sink, void *userdata);
/* Frees what p owns, including a response not taken. */
void cli_http_parser_done(struct cli_http_parser *p);

/* Feeds len bytes received from the server. Consumes bytes up to the end of the response and returns
 * how many it consumed (bytes after a complete response belong to the next one and are left alone).
 * Errors: -EBADMSG (malformed status line, header, chunk framing or Content-Length), -EMSGSIZE (head
 * above CLI_HTTP_HEAD_MAX_BYTES or more than CLI_HTTP_HEADERS_MAX fields), -EFBIG (body above the
 * limit), -ENOMEM, or the sink's error. After an error p must only be passed to _done. */
ssize_t cli_http_parser_feed(struct cli_http_parser *p, const void *buf, size_t len);

/* Tells the parser the peer closed the connection. A body delimited by the close (no Content-Length,
 * not chunked) completes here. Returns 0 when the response is complete, -ECONNRESET when nothing at
 * all was received (safe to retry on a new connection), -EBADMSG when a response was cut short. */
int cli_http_parser_eof(struct cli_http_parser *p);

/* True once a whole response was parsed. */
bool cli_http_parser_is_done(const struct cli_http_parser *p);

/* Moves the parsed response into *ret (which the caller then owns and frees with
 * cli_http_response_done). Only valid once cli_http_parser_is_done. */
void cli_http_parser_take(struct cli_http_parser *p, struct cli_http_response *ret);

struct cli_http_request {
	const char *method; /* "GET" */
	const char *target; /* "/1.0/instances?recursion=2", already percent-encoded */
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
	const char *content_type; /* sent when there is a body; NULL means application/json */
	const void *body; /* request body in memory, or NULL */
	size_t body_len;
	bool body_from_fd; /* stream body_fd_len bytes from body_fd's current offset instead */
	int body_fd;
	uint64_t body_fd_len;
	cli_http_sink_t sink; /* see cli_http_parser_init */
	void *sink_userdata;
};

/* Formats the request line and header block (ending with the empty line) for req, with Host: kiva
 * and, when the request has a body, Content-Type and Content-Length. Caller frees. NULL on OOM or
 * when method/target contain CR, LF or spaces. */
char *cli_http_format_head(const struct cli_http_request *req);

struct cli_http_conn;

/* Creates a connection object for the unix socket at path; it connects on the first request.
 * Returns 0 or -ENOMEM/-ENAMETOOLONG. */
int cli_http_conn_new(const char *path, struct cli_http_conn **ret);
void cli_http_conn_free(struct cli_http_conn *c);

/* Sends req and reads the whole response into *ret (written only on success). Reuses the open
 * connection when the previous response allowed it; a reused connection that turns out to be closed
 * by the server before any response byte is retried once on a fresh one. Errors: connect(2)'s
 * -errno (-ENOENT, -ECONNREFUSED, -EACCES ...), -EPIPE/-ECONNRESET, the parser's errors. */
int cli_http_conn_request(struct cli_http_conn *c, const struct cli_http_request *req,
			  struct cli_http_response *ret);
