/* Unit tests of the kiva CLI's WebSocket client (src/cli/cli-ws.c): SHA-1 (RFC 3174 vectors and
 * block boundaries), base64 (RFC 4648 §10), the handshake key (RFC 6455 §1.3's example), frame
 * headers and masking (RFC 6455 §5.7's examples), the frame parser (fragments reassembled around
 * a ping, every split of the input, close codes, each framing rule it enforces, the message limit),
 * and connections to a forked unix-socket server: the upgrade request, bytes that arrive with the
 * 101, ping → pong, masked client frames, both close handshakes, a wrong Accept, a refused upgrade.
 * No root. */
#include <errno.h>
#include <poll.h>
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
#include "cli-ws.h"

/* ---- hashing ---------------------------------------------------------------------------- */

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void assert_sha1(const void *data, size_t len, const char *want)
{
	uint8_t digest[20];
	char got[41];

	cli_sha1(data, len, digest);
	hex(digest, sizeof(digest), got);
	assert_string_equal(got, want);
}

static void test_sha1(void **state)
{
	static const struct {
		size_t len;
		const char *sha1;
	} boundaries[] = {
		/* around the padding's block boundary (55/56) and whole blocks (64, 120) */
		{55, "aecd1643c9903b9bae8cb94f53c50f8a4e18605b"},
		{56, "f5d65c621c02cc8e785159feff8088e3072da1bc"},
		{63, "4952f0fe097e4d6410ae9eab4855aa836caf3bff"},
		{64, "1e17ae1fc093e5daca033553c97a5192ca164486"},
		{65, "ac44f5dbe3e9b5d2733fc9537fcad715c3c20bc3"},
		{119, "b4a4e69060d0b1e7e8ebbf7041a4211c63438b57"},
		{120, "b651390c2996406336a3f6647e4b590c18cdd6f8"},
	};
	uint8_t buf[128];
	char *million;

	/* RFC 3174 §7.3's test cases */
	assert_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	assert_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
	assert_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
		    "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	million = malloc(1000000);
	assert_non_null(million);
	memset(million, 'a', 1000000);
	assert_sha1(million, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(million);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < ARRAY_SIZE(boundaries); i++)
		assert_sha1(buf, boundaries[i].len, boundaries[i].sha1);
}

static void test_base64(void **state)
{
	static const char *const vectors[][2] = {
		{"", ""},
		{"f", "Zg=="},
		{"fo", "Zm8="},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
	};
	char out[16];

	for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
		size_t n = cli_base64_encode(vectors[i][0], strlen(vectors[i][0]), out);

		assert_string_equal(out, vectors[i][1]);
		assert_int_equal(n, strlen(vectors[i][1]));
	}
	/* bytes above 0x7f and the last two letters of the alphabet */
	cli_base64_encode((const uint8_t[]){0xfb, 0xff, 0xbf}, 3, out);
	assert_string_equal(out, "+/+/");
}

static void test_accept_key(void **state)
{
	char out[29];

	/* RFC 6455 §1.3: SHA-1 b37a4f2c...b2bec4ea, in base64 */
	cli_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* another nonce, another answer */
	cli_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out);
	assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

/* ---- frames ----------------------------------------------------------------------------- */

static void test_frame_header(void **state)
{
	static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	uint8_t h[14], hello[5];
	size_t n;

	/* RFC 6455 §5.7: a single-frame unmasked text message "Hello" */
	n = cli_ws_frame_header(h, true, CLI_WS_TEXT, 5, NULL);
	assert_int_equal(n, 2);
	assert_memory_equal(h, ((uint8_t[]){0x81, 0x05}), 2);
	/* ... and masked */
	n = cli_ws_frame_header(h, true, CLI_WS_TEXT, 5, mask);
	assert_int_equal(n, 6);
	assert_memory_equal(h, ((uint8_t[]){0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}), 6);
	memcpy(hello, "Hello", 5);
	cli_ws_mask(hello, 5, mask, 0);
	assert_memory_equal(hello, ((uint8_t[]){0x7f, 0x9f, 0x4d, 0x51, 0x58}), 5);
	/* masking from an offset continues the key where it was; twice restores the data */
	cli_ws_mask(hello, 2, mask, 0);
	cli_ws_mask(hello + 2, 3, mask, 2);
	assert_memory_equal(hello, "Hello", 5);
	/* a first fragment (FIN clear) */
	n = cli_ws_frame_header(h, false, CLI_WS_TEXT, 3, NULL);
	assert_memory_equal(h, ((uint8_t[]){0x01, 0x03}), 2);
	/* the length forms: 7 bits up to 125, 16 bits up to 65535, 64 bits beyond */
	n = cli_ws_frame_header(h, true, CLI_WS_BINARY, 125, NULL);
	assert_int_equal(n, 2);
	assert_int_equal(h[1], 125);
	n = cli_ws_frame_header(h, true, CLI_WS_BINARY, 256, NULL);
	assert_int_equal(n, 4);
	assert_memory_equal(h, ((uint8_t[]){0x82, 0x7e, 0x01, 0x00}), 4);
	n = cli_ws_frame_header(h, true, CLI_WS_BINARY, 65535, NULL);
	assert_memory_equal(h, ((uint8_t[]){0x82, 0x7e, 0xff, 0xff}), 4);
	n = cli_ws_frame_header(h, true, CLI_WS_BINARY, 65536, NULL);
	assert_int_equal(n, 10);
	assert_memory_equal(h, ((uint8_t[]){0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}), 10);
	n = cli_ws_frame_header(h, true, CLI_WS_BINARY, 65536, mask);
	assert_int_equal(n, 14);
	assert_int_equal(h[1], 0xff);
	assert_memory_equal(h + 10, mask, 4);
	n = cli_ws_frame_header(h, true, CLI_WS_CLOSE, 0, mask);
	assert_memory_equal(h, ((uint8_t[]){0x88, 0x80}), 2);
}

/* ---- parser ----------------------------------------------------------------------------- */

#define REC_MAX 16

struct recorded {
	uint8_t opcode;
	uint16_t code;
	size_t len;
	uint8_t *data;
};

struct recorder {
	struct recorded m[REC_MAX];
	size_t n;
};

static int record(void *userdata, const struct cli_ws_message *m)
{
	struct recorder *rec = userdata;
	struct recorded *r;

	if (rec->n == REC_MAX)
		return -ENOSPC;
	r = &rec->m[rec->n++];
	r->opcode = m->opcode;
	r->code = m->close_code;
	r->len = m->len;
	r->data = malloc(m->len + 1);
	assert_non_null(r->data);
	memcpy(r->data, m->data, m->len + 1); /* the NUL the parser promises, too */
	return 0;
}

static void recorder_reset(struct recorder *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		free(rec->m[i].data);
	rec->n = 0;
}

/* Feeds data in pieces of step bytes (0: all at once); returns the first error or 0. */
static int feed_stepped(bool server_role, const uint8_t *data, size_t len, size_t step,
			struct recorder *rec)
{
	struct cli_ws_parser p;
	int r = 0;

	cli_ws_parser_init(&p);
	p.server_role = server_role;
	for (size_t off = 0; off < len && r == 0;) {
		size_t n = step && len - off > step ? step : len - off;

		r = cli_ws_parser_feed(&p, data + off, n, record, rec);
		off += n;
	}
	cli_ws_parser_done(&p);
	return r;
}

static void assert_message(const struct recorder *rec, size_t i, uint8_t opcode, const char *data)
{
	assert_true(i < rec->n);
	assert_int_equal(rec->m[i].opcode, opcode);
	assert_int_equal(rec->m[i].len, strlen(data));
	assert_memory_equal(rec->m[i].data, data, strlen(data));
	assert_int_equal(rec->m[i].data[rec->m[i].len], 0);
}

static void test_parser_rfc_examples(void **state)
{
	/* RFC 6455 §5.7: text "Hello"; "Hel" + "lo" in two fragments with an unmasked ping
	 * "Hello" between them (§5.4: control frames may be injected in a fragmented message); a
	 * pong "Hello"; 256 and 65536 bytes of binary */
	static const uint8_t stream[] = {
		0x81, 0x05, 'H', 'e', 'l', 'l', 'o', /* text */
		0x01, 0x03, 'H', 'e', 'l', /* first fragment */
		0x89, 0x05, 'H', 'e', 'l', 'l', 'o', /* ping */
		0x80, 0x02, 'l', 'o', /* last fragment */
		0x8a, 0x05, 'H', 'e', 'l', 'l', 'o', /* pong */
		0x82, 0x00, /* an empty binary message */
		0x81, 0x00, /* an empty text: LXD's barrier */
	};
	struct recorder rec = {0};
	uint8_t *big;
	size_t big_len = 10 + 65536 + 4 + 256;

	for (size_t step = 0; step <= sizeof(stream); step++) {
		assert_int_equal(feed_stepped(false, stream, sizeof(stream), step, &rec), 0);
		assert_int_equal(rec.n, 6);
		assert_message(&rec, 0, CLI_WS_TEXT, "Hello");
		assert_message(&rec, 1, CLI_WS_PING, "Hello");
		assert_message(&rec, 2, CLI_WS_TEXT, "Hello");
		assert_message(&rec, 3, CLI_WS_PONG, "Hello");
		assert_message(&rec, 4, CLI_WS_BINARY, "");
		assert_message(&rec, 5, CLI_WS_TEXT, "");
		recorder_reset(&rec);
	}

	big = malloc(big_len);
	assert_non_null(big);
	memcpy(big, (uint8_t[]){0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, 10);
	for (size_t i = 0; i < 65536; i++)
		big[10 + i] = (uint8_t)i;
	memcpy(big + 10 + 65536, (uint8_t[]){0x82, 0x7e, 0x01, 0x00}, 4);
	memset(big + 10 + 65536 + 4, 'z', 256);
	for (size_t step = 0; step < 5000; step += 4999) {
		assert_int_equal(feed_stepped(false, big, big_len, step, &rec), 0);
		assert_int_equal(rec.n, 2);
		assert_int_equal(rec.m[0].opcode, CLI_WS_BINARY);
		assert_int_equal(rec.m[0].len, 65536);
		assert_memory_equal(rec.m[0].data, big + 10, 65536);
		assert_int_equal(rec.m[1].len, 256);
		assert_int_equal(rec.m[1].data[255], 'z');
		recorder_reset(&rec);
	}
	free(big);
}

static void test_parser_masked_and_close(void **state)
{
	/* RFC 6455 §5.7: a masked "Hello", as a server receives it */
	static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
					 0x7f, 0x9f, 0x4d, 0x51, 0x58};
	static const uint8_t close_reason[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};
	static const uint8_t close_empty[] = {0x88, 0x00};
	struct recorder rec = {0};

	for (size_t step = 0; step < sizeof(masked); step++) {
		assert_int_equal(feed_stepped(true, masked, sizeof(masked), step, &rec), 0);
		assert_int_equal(rec.n, 1);
		assert_message(&rec, 0, CLI_WS_TEXT, "Hello");
		recorder_reset(&rec);
	}
	/* a client must refuse a masked frame, and a server an unmasked one (§5.1) */
	assert_int_equal(feed_stepped(false, masked, sizeof(masked), 0, &rec), -EBADMSG);
	assert_int_equal(feed_stepped(true, close_empty, sizeof(close_empty), 0, &rec), -EBADMSG);

	assert_int_equal(feed_stepped(false, close_reason, sizeof(close_reason), 1, &rec), 0);
	assert_int_equal(rec.n, 1);
	assert_message(&rec, 0, CLI_WS_CLOSE, "bye");
	assert_int_equal(rec.m[0].code, 1000);
	recorder_reset(&rec);
	assert_int_equal(feed_stepped(false, close_empty, sizeof(close_empty), 0, &rec), 0);
	assert_int_equal(rec.m[0].code, CLI_WS_CLOSE_NO_STATUS);
	recorder_reset(&rec);
}

static void test_parser_errors(void **state)
{
	static const struct {
		const char *what;
		uint8_t bytes[16];
		size_t len;
		int error;
	} cases[] = {
		{"RSV1 set", {0xc1, 0x00}, 2, -EBADMSG},
		{"RSV3 set", {0x92, 0x00}, 2, -EBADMSG},
		{"reserved data opcode", {0x83, 0x00}, 2, -EBADMSG},
		{"reserved control opcode", {0x8b, 0x00}, 2, -EBADMSG},
		{"fragmented ping", {0x09, 0x00}, 2, -EBADMSG},
		{"control frame of 126 bytes", {0x89, 0x7e, 0x00, 0x7e}, 4, -EBADMSG},
		{"continuation without a message", {0x80, 0x01, 'x'}, 3, -EBADMSG},
		{"text inside a fragmented message",
		 {0x01, 0x01, 'a', 0x81, 0x01, 'b'},
		 6,
		 -EBADMSG},
		{"64-bit length with the top bit",
		 {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1},
		 10,
		 -EBADMSG},
		{"close with a 1-byte body", {0x88, 0x01, 0x03}, 3, -EBADMSG},
		{"a frame after the close", {0x88, 0x00, 0x81, 0x00}, 4, -EBADMSG},
		{"message above the limit", {0x82, 0x7f, 0, 0, 0, 0, 0x10, 0, 0, 1}, 10, -EMSGSIZE},
	};
	struct recorder rec = {0};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = feed_stepped(false, cases[i].bytes, cases[i].len, 0, &rec);

		if (r != cases[i].error)
			fail_msg("%s: got %d, want %d", cases[i].what, r, cases[i].error);
		recorder_reset(&rec);
	}
}

static void test_parser_limit_and_callback_error(void **state)
{
	/* fragments add up against the limit; the callback's error stops the feed */
	static const uint8_t frags[] = {0x02, 0x03, 'a', 'b', 'c', 0x80, 0x03, 'd', 'e', 'f'};
	static const uint8_t two[] = {0x81, 0x01, 'a', 0x81, 0x01, 'b'};
	struct recorder rec = {.n = REC_MAX - 1};
	struct cli_ws_parser p;

	cli_ws_parser_init(&p);
	p.msg_max = 5;
	assert_int_equal(cli_ws_parser_feed(&p, frags, sizeof(frags), record, &rec), -EMSGSIZE);
	cli_ws_parser_done(&p);

	cli_ws_parser_init(&p);
	assert_int_equal(cli_ws_parser_feed(&p, two, sizeof(two), record, &rec), -ENOSPC);
	cli_ws_parser_done(&p);
	assert_int_equal(rec.n, REC_MAX);
	free(rec.m[REC_MAX - 1].data);
}

/* ---- connections against a forked server ------------------------------------------------ */

enum scenario {
	SC_SESSION, /* 101 with a message in the same write, ping, echo, server-initiated close */
	SC_CLIENT_CLOSE, /* the client closes; the server answers */
	SC_BAD_ACCEPT,
	SC_REFUSED,
};

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "server: check failed: %s (line %d)\n", #c, __LINE__);     \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

static void write_all(int fd, const void *data, size_t len)
{
	CHECK(write(fd, data, len) == (ssize_t)len);
}

/* Reads the request head; returns the Sec-WebSocket-Key in key. */
static void server_read_head(int fd, char *key)
{
	char buf[4096] = "", *k;
	size_t len = 0;

	while (!strstr(buf, "\r\n\r\n")) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		CHECK(n > 0);
		len += (size_t)n;
		buf[len] = 0;
	}
	CHECK(startswith(buf, "GET /1.0/events?type=lifecycle HTTP/1.1\r\n"));
	CHECK(strstr(buf, "\r\nHost: kiva\r\n"));
	CHECK(strstr(buf, "\r\nUpgrade: websocket\r\n"));
	CHECK(strstr(buf, "\r\nConnection: Upgrade\r\n"));
	CHECK(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"));
	k = strstr(buf, "\r\nSec-WebSocket-Key: ");
	CHECK(k);
	k += strlen("\r\nSec-WebSocket-Key: ");
	/* 16 random bytes in base64 (§4.1 item 7) */
	CHECK(strcspn(k, "\r") == 24 && k[22] == '=' && k[23] == '=');
	memcpy(key, k, 24);
	key[24] = 0;
}

/* Reads frames from the client until want messages were recorded. */
static void server_expect(int fd, struct cli_ws_parser *p, struct recorder *rec, size_t want)
{
	while (rec->n < want) {
		uint8_t buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));

		CHECK(n > 0);
		CHECK(cli_ws_parser_feed(p, buf, (size_t)n, record, rec) == 0);
	}
}

static int run_server(int lfd, enum scenario sc)
{
	char key[25], accept_key[29], resp[512];
	struct cli_ws_parser p;
	struct recorder rec = {0};
	int fd = accept(lfd, NULL, NULL);
	size_t n;

	CHECK(fd >= 0);
	server_read_head(fd, key);
	cli_ws_accept_key(key, accept_key);
	if (sc == SC_REFUSED) {
		const char *body = "{\"type\":\"error\",\"error\":\"Operation not found\","
				   "\"error_code\":404}";

		n = (size_t)snprintf(resp, sizeof(resp),
				     "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
				     "Content-Length: %zu\r\n\r\n%s",
				     strlen(body), body);
		write_all(fd, resp, n);
		close(fd);
		return 0;
	}
	n = (size_t)snprintf(resp, sizeof(resp),
			     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
			     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			     sc == SC_BAD_ACCEPT ? "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" : accept_key);
	if (sc == SC_SESSION) {
		/* with the 101, in the same write: a text message, then a binary one in two
		 * fragments with a ping between them */
		static const uint8_t frames[] = {0x81, 0x05, 'e',  'a', 'r',  'l',  'y',
						 0x02, 0x02, 'a',  'b', 0x89, 0x02, 'p',
						 '1',  0x80, 0x02, 'c', 'd'};

		memcpy(resp + n, frames, sizeof(frames));
		n += sizeof(frames);
	}
	write_all(fd, resp, n);
	if (sc == SC_BAD_ACCEPT) {
		close(fd);
		return 0;
	}
	cli_ws_parser_init(&p);
	p.server_role = true;
	if (sc == SC_SESSION) {
		static const uint8_t bye[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};

		/* the pong for p1, then what the client sends: "hello" and a barrier */
		server_expect(fd, &p, &rec, 3);
		CHECK(rec.m[0].opcode == CLI_WS_PONG && rec.m[0].len == 2 &&
		      memcmp(rec.m[0].data, "p1", 2) == 0);
		CHECK(rec.m[1].opcode == CLI_WS_BINARY && rec.m[1].len == 5 &&
		      memcmp(rec.m[1].data, "hello", 5) == 0);
		CHECK(rec.m[2].opcode == CLI_WS_TEXT && rec.m[2].len == 0);
		write_all(fd, bye, sizeof(bye));
		/* the client echoes the close code */
		server_expect(fd, &p, &rec, 4);
		CHECK(rec.m[3].opcode == CLI_WS_CLOSE && rec.m[3].code == 1000);
	} else {
		static const uint8_t ack[] = {0x88, 0x02, 0x03, 0xe8};

		server_expect(fd, &p, &rec, 1);
		CHECK(rec.m[0].opcode == CLI_WS_CLOSE && rec.m[0].code == 1000);
		write_all(fd, ack, sizeof(ack));
	}
	cli_ws_parser_done(&p);
	close(fd);
	return 0;
}

struct server {
	char dir[64];
	char path[96];
	pid_t pid;
};

static void server_start(struct server *s, enum scenario sc)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd;

	snprintf(s->dir, sizeof(s->dir), "/tmp/test-cli-ws-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		alarm(20);
		_exit(run_server(lfd, sc));
	}
	close(lfd);
}

static void server_finish(struct server *s)
{
	int status;

	assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
	unlink(s->path);
	rmdir(s->dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Reads from ws (waiting with poll) until rec holds want messages or the connection is over. */
static int client_read(struct cli_ws *ws, struct recorder *rec, size_t want)
{
	int r = 1;

	while (rec->n < want && r > 0) {
		struct pollfd pfd = {.fd = cli_ws_fd(ws), .events = POLLIN};

		if (!cli_ws_has_buffered(ws))
			assert_int_equal(poll(&pfd, 1, 10000), 1);
		r = cli_ws_read(ws, record, rec);
	}
	return r;
}

static void test_session(void **state)
{
	struct server s;
	struct cli_ws *ws = NULL;
	struct recorder rec = {0};
	int status = -1;

	server_start(&s, SC_SESSION);
	assert_int_equal(cli_ws_connect(s.path, "/1.0/events?type=lifecycle", &ws, &status, NULL),
			 0);
	assert_int_equal(status, 101);
	assert_true(cli_ws_has_buffered(ws)); /* the frames that came with the 101 */
	assert_int_equal(client_read(ws, &rec, 2), 1);
	assert_message(&rec, 0, CLI_WS_TEXT, "early");
	assert_message(&rec, 1, CLI_WS_BINARY, "abcd"); /* the ping was answered, not passed on */
	assert_int_equal(rec.n, 2);
	assert_int_equal(cli_ws_send(ws, CLI_WS_BINARY, "hello", 5), 0);
	assert_int_equal(cli_ws_send(ws, CLI_WS_TEXT, "", 0), 0);
	/* a control frame may not carry more than 125 bytes */
	assert_int_equal(cli_ws_send(ws, CLI_WS_PING, (char[126]){0}, 126), -EINVAL);
	/* the server's close is reported, answered, and ends the connection */
	assert_int_equal(client_read(ws, &rec, 3), 0);
	assert_message(&rec, 2, CLI_WS_CLOSE, "bye");
	assert_int_equal(rec.m[2].code, 1000);
	assert_int_equal(cli_ws_read(ws, record, &rec), 0);
	assert_int_equal(cli_ws_send(ws, CLI_WS_BINARY, "late", 4), -EPIPE);
	cli_ws_free(ws);
	recorder_reset(&rec);
	server_finish(&s);
}

static void test_client_close(void **state)
{
	struct server s;
	struct cli_ws *ws = NULL;

	server_start(&s, SC_CLIENT_CLOSE);
	assert_int_equal(cli_ws_connect(s.path, "/1.0/events?type=lifecycle", &ws, NULL, NULL), 0);
	assert_false(cli_ws_has_buffered(ws));
	assert_int_equal(cli_ws_shutdown(ws, CLI_WS_CLOSE_NORMAL, 10000), 0);
	cli_ws_free(ws);
	server_finish(&s);
}

static void test_handshake_failures(void **state)
{
	struct server s;
	struct cli_ws *ws = NULL;
	char *body = NULL;
	int status = 0;

	/* an Accept computed for another key */
	server_start(&s, SC_BAD_ACCEPT);
	assert_int_equal(cli_ws_connect(s.path, "/1.0/events?type=lifecycle", &ws, &status, &body),
			 -EPROTO);
	assert_int_equal(status, 101);
	assert_null(body);
	assert_null(ws);
	server_finish(&s);

	/* a refusal: its status and body come back for the error message */
	server_start(&s, SC_REFUSED);
	assert_int_equal(cli_ws_connect(s.path, "/1.0/events?type=lifecycle", &ws, &status, &body),
			 -EPROTO);
	assert_int_equal(status, 404);
	assert_non_null(body);
	assert_non_null(strstr(body, "Operation not found"));
	free(body);
	server_finish(&s);

	/* nobody listening */
	assert_int_equal(cli_ws_connect("/nonexistent/kiva.sock", "/1.0/events", &ws, NULL, NULL),
			 -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha1),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_accept_key),
		cmocka_unit_test(test_frame_header),
		cmocka_unit_test(test_parser_rfc_examples),
		cmocka_unit_test(test_parser_masked_and_close),
		cmocka_unit_test(test_parser_errors),
		cmocka_unit_test(test_parser_limit_and_callback_error),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_client_close),
		cmocka_unit_test(test_handshake_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
