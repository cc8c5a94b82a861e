/* HTTP/1.1 over a unix socket for the kiva CLI: a byte-fed response parser (RFC 9112) and a blocking
 * keep-alive connection that uses it. No threads, no event loop: the CLI issues one request at a time. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "kiva-config.h"

#include "cli-http.h"

static inline size_t max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- response ---------------------------------------------------------------------------- */

void cli_http_response_done(struct cli_http_response *r)
{
	if (!r)
		return;
	free(r->reason);
	strv_free(r->headers);
	free(r->body);
	*r = (struct cli_http_response){0};
}

const char *cli_http_response_header(const struct cli_http_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[2 * i], name) == 0)
			return r->headers[2 * i + 1];
	return NULL;
}

/* ---- parser ------------------------------------------------------------------------------ */

void cli_http_parser_init(struct cli_http_parser *p, cli_http_sink_t sink, void *userdata)
{
	*p = (struct cli_http_parser){
		.state = CLI_HTTP_PARSE_STATUS,
		.body_max = CLI_HTTP_BODY_MAX_BYTES,
		.sink = sink,
		.sink_userdata = userdata,
	};
}

void cli_http_parser_done(struct cli_http_parser *p)
{
	cli_http_response_done(&p->resp);
	free(p->line);
	p->line = NULL;
	p->line_len = p->line_alloc = 0;
}

bool cli_http_parser_is_done(const struct cli_http_parser *p)
{
	return p->state == CLI_HTTP_PARSE_DONE;
}

void cli_http_parser_take(struct cli_http_parser *p, struct cli_http_response *ret)
{
	*ret = p->resp;
	p->resp = (struct cli_http_response){0};
}

static bool parser_in_head(const struct cli_http_parser *p)
{
	return p->state == CLI_HTTP_PARSE_STATUS || p->state == CLI_HTTP_PARSE_HEADER ||
	       p->state == CLI_HTTP_PARSE_TRAILER;
}

/* Appends bytes of the current line (up to and including '\n') to p->line. Sets *ret_complete when
 * the line ended; the stored line then has its CRLF (or bare LF, RFC 9112 §2.2) stripped. */
static int parser_take_line(struct cli_http_parser *p, const char *s, size_t n,
			    size_t *ret_consumed, bool *ret_complete)
{
	const char *nl = memchr(s, '\n', n);
	size_t seg = nl ? (size_t)(nl - s) + 1 : n;

	if (parser_in_head(p)) {
		if (p->head_bytes + seg > CLI_HTTP_HEAD_MAX_BYTES)
			return -EMSGSIZE;
		p->head_bytes += seg;
	} else if (p->line_len + seg > CLI_HTTP_CHUNK_LINE_MAX) {
		return -EBADMSG;
	}
	if (p->line_len + seg + 1 > p->line_alloc) {
		size_t na = max_size(p->line_alloc * 2, p->line_len + seg + 1);
		char *nline = realloc(p->line, max_size(na, (size_t)128));

		if (!nline)
			return -ENOMEM;
		p->line = nline;
		p->line_alloc = max_size(na, (size_t)128);
	}
	memcpy(p->line + p->line_len, s, seg);
	p->line_len += seg;
	p->line[p->line_len] = 0;
	*ret_consumed = seg;
	*ret_complete = nl != NULL;
	if (nl) {
		p->line[--p->line_len] = 0;
		if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
			p->line[--p->line_len] = 0;
	}
	return 0;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ]  (RFC 9112 §4) */
static int parser_status_line(struct cli_http_parser *p, const char *line)
{
	const char *reason;
	int status;

	if (strncmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' || line[8] != ' ')
		return -EBADMSG;
	for (int i = 9; i < 12; i++)
		if (line[i] < '0' || line[i] > '9')
			return -EBADMSG;
	status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (status < 100 || status > 599)
		return -EBADMSG;
	if (line[12] != 0 && line[12] != ' ')
		return -EBADMSG;
	reason = line[12] ? line + 13 : "";
	free(p->resp.reason);
	p->resp.reason = strdup(reason);
	if (!p->resp.reason)
		return -ENOMEM;
	p->resp.status = status;
	p->resp.version_minor = line[7] - '0';
	p->state = CLI_HTTP_PARSE_HEADER;
	return 0;
}

static bool is_tchar(char c)
{
	/* token characters, RFC 9110 §5.6.2 */
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char *trim_ows(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	return s;
}

/* Does the comma-separated list value contain token (case-insensitive)? Used for Connection. */
static bool list_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);

	for (const char *s = value; *s;) {
		size_t n;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		n = strcspn(s, ", \t");
		if (n == tl && strncasecmp(s, token, tl) == 0)
			return true;
		s += n;
		while (*s && *s != ',')
			s++;
	}
	return false;
}

/* Is "chunked" the last transfer coding of value? (RFC 9112 §6.1) */
static bool last_coding_is_chunked(const char *value)
{
	const char *last = value, *comma;
	size_t n;

	while ((comma = strchr(last, ',')))
		last = comma + 1;
	while (*last == ' ' || *last == '\t')
		last++;
	n = strcspn(last, " \t;");
	return n == 7 && strncasecmp(last, "chunked", 7) == 0;
}

/* Parses every Content-Length value (a field may repeat, or hold "N, N"); all must agree. */
static int parse_content_length(const struct cli_http_response *r, bool *ret_has, uint64_t *ret)
{
	bool has = false;
	uint64_t len = 0;

	for (size_t i = 0; i < r->n_headers; i++) {
		const char *s;

		if (strcasecmp(r->headers[2 * i], "Content-Length") != 0)
			continue;
		s = r->headers[2 * i + 1];
		for (;;) {
			uint64_t v = 0;
			size_t digits = 0;

			while (*s == ' ' || *s == '\t')
				s++;
			for (; *s >= '0' && *s <= '9'; s++, digits++) {
				if (v > (UINT64_MAX - 9) / 10)
					return -EBADMSG;
				v = v * 10 + (uint64_t)(*s - '0');
			}
			while (*s == ' ' || *s == '\t')
				s++;
			if (digits == 0 || (has && v != len))
				return -EBADMSG;
			has = true;
			len = v;
			if (*s == 0)
				break;
			if (*s != ',')
				return -EBADMSG;
			s++;
		}
	}
	*ret_has = has;
	*ret = len;
	return 0;
}

/* The empty line after the header fields: decide how the body is delimited (RFC 9112 §6.3). */
static int parser_headers_complete(struct cli_http_parser *p)
{
	struct cli_http_response *r = &p->resp;
	const char *te = NULL, *conn;
	uint64_t len = 0;
	bool has_len = false;
	int k;

	if (r->status >= 100 && r->status < 200 && r->status != 101) {
		/* interim response (100 Continue): discard it and wait for the final one */
		cli_http_response_done(r);
		p->state = CLI_HTTP_PARSE_STATUS;
		return 0;
	}

	r->keep_alive = r->version_minor >= 1;
	conn = cli_http_response_header(r, "Connection");
	if (conn && list_has_token(conn, "close"))
		r->keep_alive = false;
	else if (conn && list_has_token(conn, "keep-alive"))
		r->keep_alive = true;

	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[2 * i], "Transfer-Encoding") == 0)
			te = r->headers[2 * i + 1]; /* the last field holds the final coding */

	k = parse_content_length(r, &has_len, &len);
	if (k < 0 && !te)
		return k;

	if (p->head_request || r->status < 200 || r->status == 204 || r->status == 304) {
		p->state = CLI_HTTP_PARSE_DONE;
		return 0;
	}
	if (te) {
		/* Transfer-Encoding overrides Content-Length; a message with both is suspect, so do
		 * not reuse the connection after it (§6.3 item 3). */
		if (has_len)
			r->keep_alive = false;
		if (last_coding_is_chunked(te)) {
			p->chunked = true;
			p->state = CLI_HTTP_PARSE_CHUNK_SIZE;
		} else {
			r->keep_alive = false;
			p->state = CLI_HTTP_PARSE_BODY_UNTIL_CLOSE;
		}
		return 0;
	}
	if (has_len) {
		bool sunk = p->sink && r->status >= 200 && r->status < 300;

		if (!sunk && len > p->body_max)
			return -EFBIG;
		p->has_length = true;
		p->remaining = len;
		p->state = len ? CLI_HTTP_PARSE_BODY_LENGTH : CLI_HTTP_PARSE_DONE;
		return 0;
	}
	r->keep_alive = false;
	p->state = CLI_HTTP_PARSE_BODY_UNTIL_CLOSE;
	return 0;
}

static int parser_header_line(struct cli_http_parser *p, char *line)
{
	struct cli_http_response *r = &p->resp;
	char *colon, *value, *name;
	int k;

	if (!*line)
		return parser_headers_complete(p);

	if (*line == ' ' || *line == '\t') {
		/* obs-fold: a client replaces it with a space (RFC 9112 §5.2) */
		char *prev, *joined;

		if (r->n_headers == 0)
			return -EBADMSG;
		prev = r->headers[2 * r->n_headers - 1];
		joined = strf("%s%s%s", prev, *prev ? " " : "", trim_ows(line));
		if (!joined)
			return -ENOMEM;
		free(prev);
		r->headers[2 * r->n_headers - 1] = joined;
		return 0;
	}

	colon = strchr(line, ':');
	if (!colon || colon == line)
		return -EBADMSG;
	for (char *c = line; c < colon; c++)
		if (!is_tchar(*c))
			return -EBADMSG; /* includes whitespace before the colon (§5.1) */
	if (r->n_headers >= CLI_HTTP_HEADERS_MAX)
		return -EMSGSIZE;
	*colon = 0;
	value = trim_ows(colon + 1);
	name = strdup(line);
	k = strv_push(&r->headers, name);
	if (k < 0)
		return k;
	k = strv_push(&r->headers, strdup(value));
	if (k < 0) {
		/* keep headers well-formed: drop the orphan name */
		free(r->headers[2 * r->n_headers]);
		r->headers[2 * r->n_headers] = NULL;
		return k;
	}
	r->n_headers++;
	return 0;
}

/* chunk = chunk-size [ chunk-ext ] CRLF  (RFC 9112 §7.1) */
static int parser_chunk_size_line(struct cli_http_parser *p, const char *line)
{
	uint64_t v = 0;
	const char *s = line;

	for (; *s; s++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX >> 4))
			return -EBADMSG;
		v = (v << 4) | (uint64_t)d;
	}
	if (s == line)
		return -EBADMSG;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s && *s != ';')
		return -EBADMSG;
	if (v == 0) {
		p->state = CLI_HTTP_PARSE_TRAILER;
		return 0;
	}
	p->remaining = v;
	p->state = CLI_HTTP_PARSE_CHUNK_DATA;
	return 0;
}

static int parser_line(struct cli_http_parser *p)
{
	switch (p->state) {
	case CLI_HTTP_PARSE_STATUS:
		if (!*p->line)
			return 0; /* tolerate empty lines before the status line (§2.2) */
		return parser_status_line(p, p->line);
	case CLI_HTTP_PARSE_HEADER:
		return parser_header_line(p, p->line);
	case CLI_HTTP_PARSE_CHUNK_SIZE:
		return parser_chunk_size_line(p, p->line);
	case CLI_HTTP_PARSE_CHUNK_DATA_END:
		if (*p->line)
			return -EBADMSG;
		p->state = CLI_HTTP_PARSE_CHUNK_SIZE;
		return 0;
	case CLI_HTTP_PARSE_TRAILER:
		if (!*p->line)
			p->state = CLI_HTTP_PARSE_DONE; /* trailer fields are ignored */
		return 0;
	default:
		return -EINVAL;
	}
}

static int parser_body(struct cli_http_parser *p, const char *data, size_t n)
{
	struct cli_http_response *r = &p->resp;

	if (n == 0)
		return 0;
	p->body_bytes += n;
	if (p->sink && r->status >= 200 && r->status < 300)
		return p->sink(p->sink_userdata, data, n);
	if (r->body_len + n > p->body_max)
		return -EFBIG;
	if (r->body_len + n + 1 > p->body_alloc) {
		size_t na = max_size(p->body_alloc * 2, r->body_len + n + 1);
		char *nb;

		if (p->has_length)
			na = max_size(na, (size_t)p->remaining + r->body_len + 1);
		nb = realloc(r->body, na);
		if (!nb)
			return -ENOMEM;
		r->body = nb;
		p->body_alloc = na;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = 0;
	return 0;
}

ssize_t cli_http_parser_feed(struct cli_http_parser *p, const void *buf, size_t len)
{
	const char *s = buf;
	size_t i = 0;
	int k;

	while (i < len && p->state != CLI_HTTP_PARSE_DONE) {
		size_t n;
		bool complete;

		switch (p->state) {
		case CLI_HTTP_PARSE_BODY_LENGTH:
		case CLI_HTTP_PARSE_CHUNK_DATA:
			n = (size_t)min_u64(len - i, p->remaining);
			k = parser_body(p, s + i, n);
			if (k < 0)
				return k;
			i += n;
			p->remaining -= n;
			if (p->remaining == 0)
				p->state = p->state == CLI_HTTP_PARSE_CHUNK_DATA
						   ? CLI_HTTP_PARSE_CHUNK_DATA_END
						   : CLI_HTTP_PARSE_DONE;
			break;
		case CLI_HTTP_PARSE_BODY_UNTIL_CLOSE:
			k = parser_body(p, s + i, len - i);
			if (k < 0)
				return k;
			i = len;
			break;
		default:
			k = parser_take_line(p, s + i, len - i, &n, &complete);
			if (k < 0)
				return k;
			i += n;
			if (!complete)
				break;
			k = parser_line(p);
			p->line_len = 0;
			if (k < 0)
				return k;
			break;
		}
	}
	p->received += i;
	return (ssize_t)i;
}

int cli_http_parser_eof(struct cli_http_parser *p)
{
	if (p->state == CLI_HTTP_PARSE_BODY_UNTIL_CLOSE)
		p->state = CLI_HTTP_PARSE_DONE;
	if (p->state == CLI_HTTP_PARSE_DONE) {
		p->resp.keep_alive = false;
		return 0;
	}
	return p->received == 0 ? -ECONNRESET : -EBADMSG;
}

/* ---- request ----------------------------------------------------------------------------- */

static bool valid_token_for_line(const char *s)
{
	return s && *s && !strpbrk(s, " \t\r\n");
}

char *cli_http_format_head(const struct cli_http_request *req)
{
	cleanup_free char *extra = NULL;
	size_t extra_len = 0;
	bool has_body = req->body || req->body_from_fd;
	uint64_t len = req->body_from_fd ? req->body_fd_len : (uint64_t)req->body_len;

	if (!valid_token_for_line(req->method) || !valid_token_for_line(req->target))
		return NULL;
	for (size_t i = 0; req->headers && req->headers[i]; i++) {
		size_t n = strlen(req->headers[i]);
		char *ne;

		if (strpbrk(req->headers[i], "\r\n"))
			return NULL;
		ne = realloc(extra, extra_len + n + 3);
		if (!ne)
			return NULL;
		extra = ne;
		memcpy(extra + extra_len, req->headers[i], n);
		memcpy(extra + extra_len + n, "\r\n", 3);
		extra_len += n + 2;
	}
	if (has_body)
		return strf("%s %s HTTP/1.1\r\nHost: kiva\r\nUser-Agent: kiva/%s\r\n%s"
			    "Content-Type: %s\r\nContent-Length: %" PRIu64 "\r\n\r\n",
			    req->method, req->target, KIVA_VERSION, extra ? extra : "",
			    req->content_type ? req->content_type : "application/json", len);
	return strf("%s %s HTTP/1.1\r\nHost: kiva\r\nUser-Agent: kiva/%s\r\n%s\r\n", req->method,
		    req->target, KIVA_VERSION, extra ? extra : "");
}

/* ---- connection -------------------------------------------------------------------------- */

struct cli_http_conn {
	char *path;
	int fd;
	char buf[64 * 1024];
};

int cli_http_conn_new(const char *path, struct cli_http_conn **ret)
{
	struct cli_http_conn *c;

	if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->path = strdup(path);
	if (!c->path) {
		free(c);
		return -ENOMEM;
	}
	c->fd = -EBADF;
	*ret = c;
	return 0;
}

static void conn_close(struct cli_http_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -EBADF;
}

void cli_http_conn_free(struct cli_http_conn *c)
{
	if (!c)
		return;
	conn_close(c);
	free(c->path);
	free(c);
}

static int conn_connect(struct cli_http_conn *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -EBADF;

	strncpy(sa.sun_path, c->path, sizeof(sa.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	c->fd = TAKE_FD(fd);
	return 0;
}

static int send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

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

static int send_from_fd(int sock, int in, uint64_t len, char *buf, size_t buf_size)
{
	while (len > 0) {
		ssize_t n = read(in, buf, (size_t)min_u64(buf_size, len));
		int k;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the file shrank after we announced its length */
		k = send_all(sock, buf, (size_t)n);
		if (k < 0)
			return k;
		len -= (uint64_t)n;
	}
	return 0;
}

/* One request/response on the open connection. *ret_retry is set when the failure happened before
 * any response byte arrived on a connection the server may have closed while idle. */
static int conn_exchange(struct cli_http_conn *c, const struct cli_http_request *req,
			 struct cli_http_response *ret, bool *ret_retry)
{
	cleanup_free char *head = cli_http_format_head(req);
	struct cli_http_parser p;
	int send_err = 0, k;

	*ret_retry = false;
	if (!head)
		return -ENOMEM;
	send_err = send_all(c->fd, head, strlen(head));
	if (send_err >= 0 && req->body)
		send_err = send_all(c->fd, req->body, req->body_len);
	if (send_err >= 0 && req->body_from_fd)
		send_err =
			send_from_fd(c->fd, req->body_fd, req->body_fd_len, c->buf, sizeof(c->buf));
	/* The server may answer and close early (an error on a large upload): read what it sent. */
	if (send_err < 0 && send_err != -EPIPE && send_err != -ECONNRESET)
		return send_err;

	cli_http_parser_init(&p, req->sink, req->sink_userdata);
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0), m;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			k = n < 0 ? -errno : cli_http_parser_eof(&p);
			if (k < 0) {
				*ret_retry = p.received == 0;
				if (p.received == 0 && send_err < 0)
					k = send_err;
				else if (p.received == 0)
					k = -ECONNRESET;
				cli_http_parser_done(&p);
				return k;
			}
			break;
		}
		m = cli_http_parser_feed(&p, c->buf, (size_t)n);
		if (m < 0) {
			cli_http_parser_done(&p);
			return (int)m;
		}
		if (cli_http_parser_is_done(&p)) {
			if (m < n)
				p.resp.keep_alive =
					false; /* unsolicited bytes: do not trust the stream */
			break;
		}
	}
	cli_http_parser_take(&p, ret);
	cli_http_parser_done(&p);
	if (send_err < 0)
		ret->keep_alive = false;
	return 0;
}

int cli_http_conn_request(struct cli_http_conn *c, const struct cli_http_request *req,
			  struct cli_http_response *ret)
{
	off_t start = -1;

	if (req->body_from_fd)
		start = lseek(req->body_fd, 0, SEEK_CUR);

	for (int attempt = 0;; attempt++) {
		struct cli_http_response resp = {0};
		bool reused = c->fd >= 0, retry;
		int k;

		if (!reused) {
			k = conn_connect(c);
			if (k < 0)
				return k;
		}
		k = conn_exchange(c, req, &resp, &retry);
		if (k >= 0) {
			if (!resp.keep_alive)
				conn_close(c);
			*ret = resp;
			return 0;
		}
		conn_close(c);
		if (!reused || !retry || attempt > 0)
			return k;
		if (req->body_from_fd && (start < 0 || lseek(req->body_fd, start, SEEK_SET) < 0))
			return k;
	}
}
