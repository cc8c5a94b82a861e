/* A small RFC 6455 WebSocket client for the kiva CLI, over kivad's unix socket: the opening
 * handshake (§4.1, §4.2.2: Sec-WebSocket-Key and the Accept check, which needs SHA-1 (RFC 3174)
 * and base64 (RFC 4648 §4), both here), masked client frames (§5.3), a byte-fed frame parser that
 * reassembles fragmented messages (§5.4) and checks the framing rules (§5.2, §5.5), ping → pong
 * (§5.5.2, §5.5.3) and the close handshake (§5.5.1, §7). The pure parts (hashing, frame headers,
 * the parser) are testable without a socket. Single-threaded: none of these functions may be
 * called concurrently on the same object. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opcodes, RFC 6455 §5.2. */
enum {
	CLI_WS_CONTINUATION = 0x0,
	CLI_WS_TEXT = 0x1,
	CLI_WS_BINARY = 0x2,
	CLI_WS_CLOSE = 0x8,
	CLI_WS_PING = 0x9,
	CLI_WS_PONG = 0xa,
};

/* Close status codes, RFC 6455 §7.4.1. */
enum {
	CLI_WS_CLOSE_NORMAL = 1000,
	CLI_WS_CLOSE_NO_STATUS = 1005, /* never sent: a close frame without a code */
	CLI_WS_CLOSE_PROTOCOL_ERROR = 1002,
	CLI_WS_CLOSE_TOO_BIG = 1009,
};

/* A reassembled message (text or binary) is at most this long; a bigger one is -EMSGSIZE. */
#define CLI_WS_MESSAGE_MAX (16u * 1024u * 1024u)

/* ---- hashing ---------------------------------------------------------------------------- */

/* SHA-1 (RFC 3174) of len bytes of data into digest. Only for the handshake's Accept check, where
 * RFC 6455 prescribes it; not a security boundary here. */
void cli_sha1(const void *data, size_t len, uint8_t digest[static 20]);

/* Standard base64 with padding (RFC 4648 §4) of len bytes into out, which holds
 * 4 * ((len + 2) / 3) + 1 bytes. Returns the length written (without the NUL). */
size_t cli_base64_encode(const void *data, size_t len, char *out);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 step 5.4): base64(SHA-1(key +
 * "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). out holds 29 bytes (28 characters and the NUL). */
void cli_ws_accept_key(const char *key, char out[static 29]);

/* ---- frames ----------------------------------------------------------------------------- */

/* Writes the header of one frame (FIN, opcode, payload length in the shortest form, and the
 * masking key when mask is not NULL) into out. Returns its length (2 to 14). */
size_t cli_ws_frame_header(uint8_t out[static 14], bool fin, uint8_t opcode, uint64_t len,
			   const uint8_t *mask);

/* XORs len bytes with mask, starting at byte offset of the payload (§5.3); applying it twice
 * restores the data. */
void cli_ws_mask(uint8_t *data, size_t len, const uint8_t mask[static 4], uint64_t offset);

/* One whole message as the parser delivers it: a text or binary message (fragments joined), a
 * ping or pong, or a close (code CLI_WS_CLOSE_NO_STATUS when the frame carried none; data is the
 * reason). data is borrowed until the callback returns; it is NUL-terminated (len excludes it). */
struct cli_ws_message {
	uint8_t opcode; /* CLI_WS_TEXT, _BINARY, _PING, _PONG, _CLOSE */
	const uint8_t *data;
	size_t len;
	uint16_t close_code;
};

/* Receives each message. Returns 0 to go on, or -errno, which the feed returns at once. */
typedef int (*cli_ws_message_fn)(void *userdata, const struct cli_ws_message *m);

enum cli_ws_parser_state {
	CLI_WS_PARSE_HEADER,
	CLI_WS_PARSE_PAYLOAD,
	CLI_WS_PARSE_CLOSED, /* a close frame was delivered: nothing may follow */
};

struct cli_ws_parser {
	enum cli_ws_parser_state state;
	bool server_role; /* frames must be masked (a server's view; tests) instead of unmasked */
	uint8_t hdr[14]; /* the frame header being accumulated */
	size_t hdr_len;
	bool fin;
	uint8_t opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t payload_len; /* of the current frame */
	uint64_t payload_got;
	uint8_t control[126]; /* a control frame's payload (at most 125 bytes) and a NUL */
	uint8_t *msg; /* a data message being reassembled; owned */
	size_t msg_len;
	size_t msg_alloc;
	uint8_t msg_opcode; /* CLI_WS_TEXT or _BINARY while a message is open, 0 otherwise */
	size_t msg_max;
};

/* Prepares p (client role: frames from the server are unmasked). */
void cli_ws_parser_init(struct cli_ws_parser *p);
/* Frees what p owns. Accepts a zeroed struct. */
void cli_ws_parser_done(struct cli_ws_parser *p);

/* Feeds len bytes received from the peer; cb receives each complete message in order. Errors:
 * -EBADMSG (RFC 6455 framing violations: reserved bits or opcodes, a masked frame from a server
 * (§5.1) or an unmasked one from a client, a fragmented or oversized control frame (§5.5), a
 * continuation with no message open or a new message inside one (§5.4), a 64-bit length with its
 * top bit set (§5.2), a close payload of 1 byte, bytes after a close), -EMSGSIZE (a message above
 * msg_max), -ENOMEM, or cb's error. After an error p must only be passed to _done. */
int cli_ws_parser_feed(struct cli_ws_parser *p, const void *data, size_t len, cli_ws_message_fn cb,
		       void *userdata);

/* ---- connection ------------------------------------------------------------------------- */

struct cli_ws;

/* Connects to the unix socket at socket_path and upgrades GET target (percent-encoded, with its
 * query) to a WebSocket (RFC 6455 §4.1): a random 16-byte key, the server's 101 and its
 * Sec-WebSocket-Accept checked. *ret_status (may be NULL) receives the HTTP status of a refused
 * upgrade, and *ret_body (may be NULL; caller frees) its body (LXD's error JSON), so the caller can
 * word the error. Errors: connect(2)'s -errno, -EPROTO (not a 101, or a wrong or missing Accept,
 * Upgrade or Connection), the HTTP parser's errors, -ENOMEM. */
int cli_ws_connect(const char *socket_path, const char *target, struct cli_ws **ret,
		   int *ret_status, char **ret_body);

/* Closes the socket without a close handshake and frees ws. Accepts NULL. */
void cli_ws_free(struct cli_ws *ws);

/* The socket, for poll(2) (POLLIN). */
int cli_ws_fd(const struct cli_ws *ws);

/* True when bytes that came with the handshake response are waiting to be parsed: call
 * cli_ws_read without waiting for POLLIN. */
bool cli_ws_has_buffered(const struct cli_ws *ws);

/* Sends one message (a single frame, FIN set, masked with a fresh random key) of the given opcode;
 * blocks until it is written. Errors: -EPIPE once a close was sent, send(2)'s -errno, -EINVAL for
 * a control frame above 125 bytes. */
int cli_ws_send(struct cli_ws *ws, uint8_t opcode, const void *data, size_t len);

/* Starts the close handshake (§5.5.1): sends a close frame with code (and no reason) unless one
 * was sent already. Returns 0 or send(2)'s -errno. */
int cli_ws_close(struct cli_ws *ws, uint16_t code);

/* Reads what the socket has (one recv(2) that does not wait, or the bytes buffered with the
 * handshake) and hands each text or binary message to cb (may be NULL); answers a ping with a pong
 * and a close with a close, and reports the close to cb too (opcode CLI_WS_CLOSE; a socket closed
 * without one is reported as a close with CLI_WS_CLOSE_NO_STATUS). Returns 1 while the connection
 * is open (also when there was nothing to read), 0 once it is over (both closes exchanged, or the
 * socket closed), or -errno (recv(2)'s, the parser's, cb's). */
int cli_ws_read(struct cli_ws *ws, cli_ws_message_fn cb, void *userdata);

/* Sends a close (if not sent yet) and waits up to timeout_msec for the peer's close or the end of
 * the connection, discarding data messages. Returns 0, -ETIMEDOUT or -errno. */
int cli_ws_shutdown(struct cli_ws *ws, uint16_t code, int timeout_msec);
