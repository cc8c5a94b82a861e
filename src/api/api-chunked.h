/* An incremental decoder of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1) for request
 * bodies: libwebsockets 4.1 hands a chunked body over as it came, framing included, and LXD's
 * client sends file pushes that way (no Content-Length). Pure code: no I/O, no allocation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define API_CHUNKED_LINE_MAX 4096 /* a chunk-size line, extensions included */
#define API_CHUNKED_TRAILER_MAX (16 * 1024) /* the whole trailer section */

enum api_chunked_state {
	API_CHUNKED_SIZE, /* chunk-size [ chunk-ext ] CRLF */
	API_CHUNKED_DATA, /* chunk-data */
	API_CHUNKED_DATA_END, /* the CRLF after chunk-data */
	API_CHUNKED_TRAILER, /* trailer field lines up to an empty line */
	API_CHUNKED_DONE,
};

struct api_chunked {
	enum api_chunked_state state;
	uint64_t left; /* DATA: bytes of the chunk still to come */
	char digits[24]; /* SIZE: the start of the line */
	size_t line_len; /* SIZE, TRAILER: bytes of the current line so far (CR excluded) */
	size_t trailer_bytes;
	bool cr; /* DATA_END: the CR was seen */
};

/* Called with each piece of payload as it is decoded. Returns 0, or < 0 to stop decoding (that
 * value is then returned by api_chunked_feed). */
typedef int (*api_chunked_sink)(void *userdata, const void *data, size_t len);

/* Prepares c for one body. */
void api_chunked_init(struct api_chunked *c);

/* Decodes len bytes of the body. Returns how many bytes were consumed: all of them, or fewer once
 * the body ended (the rest belongs to the next request), or -EBADMSG (malformed framing: a size
 * that is not hex or does not fit 64 bits, a missing CRLF, a line or trailer above the limits),
 * or the sink's error. Bare LF is accepted as a line end (RFC 9112 §2.2). After an error c must
 * not be fed again. */
ssize_t api_chunked_feed(struct api_chunked *c, const void *in, size_t len, api_chunked_sink sink,
			 void *userdata);

/* True once the last chunk and the trailer section were decoded. */
bool api_chunked_done(const struct api_chunked *c);

/* While in a chunk: the bytes of it still to come (the size the client announced), else 0. */
uint64_t api_chunked_pending(const struct api_chunked *c);
