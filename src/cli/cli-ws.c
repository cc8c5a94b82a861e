/* RFC 6455 WebSockets for the kiva CLI: SHA-1 and base64 for the handshake, frame headers and
 * masking, a byte-fed frame parser, and a blocking-write connection read from a poll(2) loop. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-http.h"
#include "cli-ws.h"

/* ---- SHA-1 (RFC 3174) and base64 (RFC 4648) -------------------------------------------- */

static inline uint32_t rol32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

/* RFC 3174 §6.1: one 512-bit block. */
static void sha1_block(uint32_t h[5], const uint8_t *b)
{
	uint32_t w[80], a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (bb & c) | (~bb & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = bb ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (bb & c) | (bb & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = bb ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(bb, 30);
		bb = a;
		a = t;
	}
	h[0] += a;
	h[1] += bb;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void cli_sha1(const void *data, size_t len, uint8_t digest[static 20])
{
	uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	const uint8_t *p = data;
	uint64_t bits = (uint64_t)len * 8;
	uint8_t last[128] = {0};
	size_t rest, n;

	for (; len >= 64; p += 64, len -= 64)
		sha1_block(h, p);
	/* RFC 3174 §4: a 1 bit, zeros, then the length in bits, big-endian, ending a block */
	rest = len;
	memcpy(last, p, rest);
	last[rest] = 0x80;
	n = rest + 1 + 8 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		last[n - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t off = 0; off < n; off += 64)
		sha1_block(h, last + off);
	for (int i = 0; i < 5; i++) {
		digest[4 * i] = (uint8_t)(h[i] >> 24);
		digest[4 * i + 1] = (uint8_t)(h[i] >> 16);
		digest[4 * i + 2] = (uint8_t)(h[i] >> 8);
		digest[4 * i + 3] = (uint8_t)h[i];
	}
}

size_t cli_base64_encode(const void *data, size_t len, char *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = data;
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
	}
	out[o] = 0;
	return o;
}

void cli_ws_accept_key(const char *key, char out[static 29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char buf[256];
	uint8_t digest[20];
	int n = snprintf(buf, sizeof(buf), "%s%s", key, guid);

	cli_sha1(buf, n < 0 ? 0 : (size_t)n >= sizeof(buf) ? sizeof(buf) - 1 : (size_t)n, digest);
	cli_base64_encode(digest, sizeof(digest), out);
}

/* ---- frames (RFC 6455 §5.2) ------------------------------------------------------------- */

size_t cli_ws_frame_header(uint8_t out[static 14], bool fin, uint8_t opcode, uint64_t len,
			   const uint8_t *mask)
{
	size_t n = 2;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		out[1] = (uint8_t)len;
	} else if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		out[1] |= 0x80;
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

void cli_ws_mask(uint8_t *data, size_t len, const uint8_t mask[static 4], uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		data[i] ^= mask[(offset + i) & 3];
}

void cli_ws_parser_init(struct cli_ws_parser *p)
{
	*p = (struct cli_ws_parser){.state = CLI_WS_PARSE_HEADER, .msg_max = CLI_WS_MESSAGE_MAX};
}

void cli_ws_parser_done(struct cli_ws_parser *p)
{
	free(p->msg);
	p->msg = NULL;
	p->msg_len = p->msg_alloc = 0;
}

static bool is_control(uint8_t opcode)
{
	return opcode & 0x08;
}

/* How long the header is, once its first two bytes are known. */
static size_t header_size(const uint8_t *hdr)
{
	size_t n = 2;

	if ((hdr[1] & 0x7f) == 126)
		n += 2;
	else if ((hdr[1] & 0x7f) == 127)
		n += 8;
	return n + ((hdr[1] & 0x80) ? 4 : 0);
}

/* The whole header is in p->hdr: check it against §5.2, §5.4 and §5.5. */
static int parser_header_complete(struct cli_ws_parser *p)
{
	const uint8_t *h = p->hdr;
	uint8_t len7 = h[1] & 0x7f;
	size_t off = 2;

	if (h[0] & 0x70)
		return -EBADMSG; /* RSV1-3 without a negotiated extension */
	p->fin = h[0] & 0x80;
	p->opcode = h[0] & 0x0f;
	p->masked = h[1] & 0x80;
	if (p->masked != p->server_role)
		return -EBADMSG; /* §5.1: servers never mask, clients always do */
	if (len7 == 126) {
		p->payload_len = (uint64_t)h[2] << 8 | h[3];
		off = 4;
	} else if (len7 == 127) {
		p->payload_len = 0;
		for (int i = 0; i < 8; i++)
			p->payload_len = p->payload_len << 8 | h[2 + i];
		if (p->payload_len >> 63)
			return -EBADMSG;
		off = 10;
	} else {
		p->payload_len = len7;
	}
	if (p->masked)
		memcpy(p->mask, h + off, 4);
	switch (p->opcode) {
	case CLI_WS_CONTINUATION:
		if (!p->msg_opcode)
			return -EBADMSG;
		break;
	case CLI_WS_TEXT:
	case CLI_WS_BINARY:
		if (p->msg_opcode)
			return -EBADMSG; /* a new message before the last one ended */
		p->msg_opcode = p->opcode;
		p->msg_len = 0;
		break;
	case CLI_WS_CLOSE:
	case CLI_WS_PING:
	case CLI_WS_PONG:
		if (!p->fin || p->payload_len > 125)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG; /* reserved opcodes */
	}
	if (!is_control(p->opcode) && p->msg_len + p->payload_len > p->msg_max)
		return -EMSGSIZE;
	p->payload_got = 0;
	p->state = CLI_WS_PARSE_PAYLOAD;
	return 0;
}

static int parser_append(struct cli_ws_parser *p, const uint8_t *data, size_t n)
{
	if (p->msg_len + n + 1 > p->msg_alloc) {
		size_t na = p->msg_alloc ? p->msg_alloc : 4096;
		uint8_t *nm;

		while (na < p->msg_len + n + 1)
			na *= 2;
		nm = realloc(p->msg, na);
		if (!nm)
			return -ENOMEM;
		p->msg = nm;
		p->msg_alloc = na;
	}
	memcpy(p->msg + p->msg_len, data, n);
	if (p->masked)
		cli_ws_mask(p->msg + p->msg_len, n, p->mask, p->payload_got);
	p->msg_len += n;
	return 0;
}

/* The current frame's payload is all in: deliver what is complete. */
static int parser_frame_complete(struct cli_ws_parser *p, cli_ws_message_fn cb, void *userdata)
{
	struct cli_ws_message m = {.opcode = p->opcode};
	int r;

	p->state = CLI_WS_PARSE_HEADER;
	p->hdr_len = 0;
	if (is_control(p->opcode)) {
		size_t n = (size_t)p->payload_len;

		p->control[n] = 0;
		m.data = p->control;
		m.len = n;
		if (p->opcode == CLI_WS_CLOSE) {
			if (n == 1)
				return -EBADMSG; /* §5.5.1: a body starts with a 2-byte code */
			m.close_code = n >= 2 ? (uint16_t)(p->control[0] << 8 | p->control[1])
					      : CLI_WS_CLOSE_NO_STATUS;
			m.data = p->control + (n >= 2 ? 2 : 0);
			m.len = n >= 2 ? n - 2 : 0;
			p->state = CLI_WS_PARSE_CLOSED;
		}
		return cb(userdata, &m);
	}
	if (!p->fin)
		return 0; /* more fragments to come */
	if (!p->msg) {
		r = parser_append(p, (const uint8_t *)"",
				  0); /* an empty message: a buffer all the same */
		if (r < 0)
			return r;
	}
	p->msg[p->msg_len] = 0;
	m.opcode = p->msg_opcode;
	m.data = p->msg;
	m.len = p->msg_len;
	p->msg_opcode = 0;
	r = cb(userdata, &m);
	p->msg_len = 0;
	return r;
}

int cli_ws_parser_feed(struct cli_ws_parser *p, const void *data, size_t len, cli_ws_message_fn cb,
		       void *userdata)
{
	const uint8_t *s = data;
	size_t i = 0;
	int r;

	while (i < len) {
		switch (p->state) {
		case CLI_WS_PARSE_HEADER: {
			size_t want = p->hdr_len < 2 ? 2 : header_size(p->hdr);

			while (p->hdr_len < want && i < len) {
				p->hdr[p->hdr_len++] = s[i++];
				if (p->hdr_len == 2)
					want = header_size(p->hdr);
			}
			if (p->hdr_len < want)
				break;
			r = parser_header_complete(p);
			if (r < 0)
				return r;
			if (p->payload_len == 0) {
				r = parser_frame_complete(p, cb, userdata);
				if (r < 0)
					return r;
			}
			break;
		}
		case CLI_WS_PARSE_PAYLOAD: {
			uint64_t left = p->payload_len - p->payload_got;
			size_t n = len - i < left ? len - i : (size_t)left;

			if (is_control(p->opcode)) {
				memcpy(p->control + p->payload_got, s + i, n);
				if (p->masked)
					cli_ws_mask(p->control + p->payload_got, n, p->mask,
						    p->payload_got);
			} else {
				r = parser_append(p, s + i, n);
				if (r < 0)
					return r;
			}
			p->payload_got += n;
			i += n;
			if (p->payload_got == p->payload_len) {
				r = parser_frame_complete(p, cb, userdata);
				if (r < 0)
					return r;
			}
			break;
		}
		case CLI_WS_PARSE_CLOSED:
			return -EBADMSG; /* §5.5.1: nothing after a close */
		}
	}
	return 0;
}

/* ---- connection ------------------------------------------------------------------------- */

struct cli_ws {
	int fd;
	struct cli_ws_parser parser;
	bool close_sent;
	bool close_received;
	bool eof;
	uint8_t *pending; /* bytes that came after the 101 response, not parsed yet */
	size_t pending_len;
	cli_ws_message_fn cb; /* while cli_ws_read runs */
	void *userdata;
	uint8_t buf[64 * 1024];
};

static int send_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};

				(void)poll(&pfd, 1, -1);
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int random_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

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

static int unix_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -EBADF;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Does the comma-separated header value hold token (case-insensitive)? */
static bool header_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);

	for (const char *s = value; s && *s;) {
		size_t n;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		n = strcspn(s, ", \t");
		if (n == tl && strncasecmp(s, token, tl) == 0)
			return true;
		s += n;
	}
	return false;
}

/* §4.2.2 / §4.1 (client requirements 1-4 on the server's handshake). */
static int check_upgrade(const struct cli_http_response *resp, const char *key)
{
	const char *accept = cli_http_response_header(resp, "Sec-WebSocket-Accept");
	char want[29];

	if (resp->status != 101)
		return -EPROTO;
	if (!header_has_token(cli_http_response_header(resp, "Upgrade"), "websocket") ||
	    !header_has_token(cli_http_response_header(resp, "Connection"), "upgrade"))
		return -EPROTO;
	cli_ws_accept_key(key, want);
	if (!accept || !streq(accept, want))
		return -EPROTO;
	return 0;
}

/* Sends the upgrade request and reads the response head (and, when refused, its body). */
static int handshake(struct cli_ws *ws, const char *target, int *ret_status, char **ret_body)
{
	uint8_t nonce[16];
	char key[25], keyline[64];
	const char *headers[] = {"Upgrade: websocket", "Connection: Upgrade", keyline,
				 "Sec-WebSocket-Version: 13", NULL};
	struct cli_http_request req = {.method = "GET", .target = target, .headers = headers};
	struct cli_http_response resp = {0};
	struct cli_http_parser p;
	cleanup_free char *head = NULL;
	int r;

	r = random_bytes(nonce, sizeof(nonce));
	if (r < 0)
		return r;
	cli_base64_encode(nonce, sizeof(nonce), key);
	snprintf(keyline, sizeof(keyline), "Sec-WebSocket-Key: %s", key);
	head = cli_http_format_head(&req);
	if (!head)
		return -ENOMEM;
	r = send_all(ws->fd, head, strlen(head));
	if (r < 0)
		return r;

	cli_http_parser_init(&p, NULL, NULL);
	for (;;) {
		ssize_t n = recv(ws->fd, ws->buf, sizeof(ws->buf), 0), m;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : cli_http_parser_eof(&p);
			if (r < 0) {
				cli_http_parser_done(&p);
				return r;
			}
			break;
		}
		m = cli_http_parser_feed(&p, ws->buf, (size_t)n);
		if (m < 0) {
			cli_http_parser_done(&p);
			return (int)m;
		}
		if (cli_http_parser_is_done(&p)) {
			if (m < n) {
				ws->pending = malloc((size_t)(n - m));
				if (!ws->pending) {
					cli_http_parser_done(&p);
					return -ENOMEM;
				}
				memcpy(ws->pending, ws->buf + m, (size_t)(n - m));
				ws->pending_len = (size_t)(n - m);
			}
			break;
		}
	}
	cli_http_parser_take(&p, &resp);
	cli_http_parser_done(&p);
	if (ret_status)
		*ret_status = resp.status;
	if (resp.status != 101 && ret_body && resp.body)
		*ret_body = TAKE_PTR(resp.body);
	r = check_upgrade(&resp, key);
	cli_http_response_done(&resp);
	return r;
}

int cli_ws_connect(const char *socket_path, const char *target, struct cli_ws **ret,
		   int *ret_status, char **ret_body)
{
	struct cli_ws *ws;
	int r;

	if (ret_status)
		*ret_status = 0;
	if (ret_body)
		*ret_body = NULL;
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -ENOMEM;
	ws->fd = -EBADF;
	cli_ws_parser_init(&ws->parser);
	r = unix_connect(socket_path, &ws->fd);
	if (r >= 0)
		r = handshake(ws, target, ret_status, ret_body);
	if (r < 0) {
		cli_ws_free(ws);
		return r;
	}
	*ret = ws;
	return 0;
}

void cli_ws_free(struct cli_ws *ws)
{
	if (!ws)
		return;
	if (ws->fd >= 0)
		close(ws->fd);
	cli_ws_parser_done(&ws->parser);
	free(ws->pending);
	free(ws);
}

int cli_ws_fd(const struct cli_ws *ws)
{
	return ws->fd;
}

bool cli_ws_has_buffered(const struct cli_ws *ws)
{
	return ws->pending_len > 0;
}

static int ws_send_frame(struct cli_ws *ws, uint8_t opcode, const void *data, size_t len)
{
	cleanup_free uint8_t *frame = NULL;
	uint8_t mask[4];
	size_t n;
	int r;

	r = random_bytes(mask, sizeof(mask));
	if (r < 0)
		return r;
	frame = malloc(len + 14);
	if (!frame)
		return -ENOMEM;
	n = cli_ws_frame_header(frame, true, opcode, len, mask);
	if (len)
		memcpy(frame + n, data, len);
	cli_ws_mask(frame + n, len, mask, 0);
	return send_all(ws->fd, frame, n + len);
}

int cli_ws_send(struct cli_ws *ws, uint8_t opcode, const void *data, size_t len)
{
	if (ws->close_sent)
		return -EPIPE;
	if (is_control(opcode) && len > 125)
		return -EINVAL;
	return ws_send_frame(ws, opcode, data, len);
}

int cli_ws_close(struct cli_ws *ws, uint16_t code)
{
	uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
	int r;

	if (ws->close_sent || ws->eof)
		return 0;
	ws->close_sent = true;
	r = ws_send_frame(ws, CLI_WS_CLOSE, body, code == CLI_WS_CLOSE_NO_STATUS ? 0 : 2);
	/* the peer may have gone already: the close is over either way */
	return r == -EPIPE || r == -ECONNRESET ? 0 : r;
}

/* The parser's callback: control frames are answered here, the rest goes to the caller. */
static int ws_on_message(void *userdata, const struct cli_ws_message *m)
{
	struct cli_ws *ws = userdata;
	int r;

	switch (m->opcode) {
	case CLI_WS_PING:
		if (ws->close_sent)
			return 0;
		r = ws_send_frame(ws, CLI_WS_PONG, m->data, m->len); /* §5.5.3: same data */
		return r == -EPIPE || r == -ECONNRESET ? 0 : r;
	case CLI_WS_PONG:
		return 0; /* unsolicited pongs are allowed and ignored */
	case CLI_WS_CLOSE:
		ws->close_received = true;
		/* §5.5.1: answer with a close, echoing the code */
		r = cli_ws_close(ws, m->close_code == CLI_WS_CLOSE_NO_STATUS ? CLI_WS_CLOSE_NORMAL
									     : m->close_code);
		if (r < 0)
			return r;
		break;
	default:
		break;
	}
	return ws->cb ? ws->cb(ws->userdata, m) : 0;
}

static bool ws_over(const struct cli_ws *ws)
{
	return ws->eof || (ws->close_sent && ws->close_received);
}

int cli_ws_read(struct cli_ws *ws, cli_ws_message_fn cb, void *userdata)
{
	ssize_t n;
	int r;

	if (ws_over(ws))
		return 0;
	ws->cb = cb;
	ws->userdata = userdata;
	if (ws->pending_len) {
		cleanup_free uint8_t *pending = TAKE_PTR(ws->pending);
		size_t len = ws->pending_len;

		ws->pending_len = 0;
		r = cli_ws_parser_feed(&ws->parser, pending, len, ws_on_message, ws);
		if (r < 0)
			return r;
		return ws_over(ws) ? 0 : 1;
	}
	do
		n = recv(ws->fd, ws->buf, sizeof(ws->buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 1 : -errno;
	if (n == 0) {
		/* the peer closed the socket: a close without handshake ends the stream too */
		ws->eof = true;
		if (!ws->close_received && cb) {
			struct cli_ws_message m = {.opcode = CLI_WS_CLOSE,
						   .data = (const uint8_t *)"",
						   .close_code = CLI_WS_CLOSE_NO_STATUS};

			ws->close_received = true;
			r = cb(userdata, &m);
			if (r < 0)
				return r;
		}
		return 0;
	}
	r = cli_ws_parser_feed(&ws->parser, ws->buf, (size_t)n, ws_on_message, ws);
	if (r < 0)
		return r;
	return ws_over(ws) ? 0 : 1;
}

static int64_t now_msec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int discard(void *userdata, const struct cli_ws_message *m)
{
	return 0;
}

int cli_ws_shutdown(struct cli_ws *ws, uint16_t code, int timeout_msec)
{
	int64_t deadline = now_msec() + timeout_msec;
	int r;

	r = cli_ws_close(ws, code);
	if (r < 0)
		return r;
	for (;;) {
		struct pollfd pfd = {.fd = ws->fd, .events = POLLIN};
		int64_t left = deadline - now_msec();

		if (ws_over(ws))
			return 0;
		if (!cli_ws_has_buffered(ws)) {
			if (left <= 0)
				return -ETIMEDOUT;
			r = poll(&pfd, 1, (int)left);
			if (r < 0 && errno != EINTR)
				return -errno;
			if (r <= 0)
				continue;
		}
		r = cli_ws_read(ws, discard, NULL);
		if (r <= 0)
			return r;
	}
}
