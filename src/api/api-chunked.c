/* RFC 9112 §7.1 chunked transfer coding, decoded a buffer at a time:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *
 * Extensions and trailer fields are skipped (§7.1.1: a recipient ignores extensions it does not
 * understand; §7.1.2: trailers are not merged into the header section). */
#include <errno.h>
#include <string.h>

#include "api-chunked.h"

void api_chunked_init(struct api_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = API_CHUNKED_SIZE;
}

bool api_chunked_done(const struct api_chunked *c)
{
	return c->state == API_CHUNKED_DONE;
}

uint64_t api_chunked_pending(const struct api_chunked *c)
{
	return c->state == API_CHUNKED_DATA ? c->left : 0;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The chunk-size line as kept in c->digits (extensions cut): hex digits, then optional blanks
 * (BWS before a ';') and a ';'. */
static int parse_size(const char *line, size_t len, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0, significant = 0;

	for (; i < len && hex_value(line[i]) >= 0; i++) {
		if (v == 0 && line[i] == '0')
			continue; /* leading zeros do not count against the 64 bits */
		if (++significant > 16)
			return -EBADMSG;
		v = v << 4 | (uint64_t)hex_value(line[i]);
	}
	if (i == 0)
		return -EBADMSG;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] != ';')
		return -EBADMSG;
	*ret = v;
	return 0;
}

/* One byte of a line (size or trailer). Returns 1 when the line ended, 0 when it goes on. */
static int line_byte(struct api_chunked *c, char ch, size_t max)
{
	if (ch == '\n')
		return 1;
	if (ch == '\r')
		return 0; /* a CR not before LF is tolerated as part of the line end */
	if (++c->line_len > max)
		return -EBADMSG;
	if (c->state == API_CHUNKED_SIZE) {
		/* keep what parse_size needs: digits up to the extension */
		size_t n = c->line_len - 1;

		if (n < sizeof(c->digits) - 1)
			c->digits[n] = ch;
		else if (memchr(c->digits, ';', sizeof(c->digits) - 1) == NULL)
			return -EBADMSG; /* no extension yet: more digits than 64 bits hold */
	}
	return 0;
}

ssize_t api_chunked_feed(struct api_chunked *c, const void *in, size_t len, api_chunked_sink sink,
			 void *userdata)
{
	const char *p = in;
	size_t i = 0;
	int r;

	while (i < len && c->state != API_CHUNKED_DONE) {
		switch (c->state) {
		case API_CHUNKED_SIZE: {
			uint64_t size;

			r = line_byte(c, p[i++], API_CHUNKED_LINE_MAX);
			if (r < 0)
				return r;
			if (r == 0)
				break;
			r = parse_size(c->digits,
				       c->line_len < sizeof(c->digits) - 1 ? c->line_len
									   : sizeof(c->digits) - 1,
				       &size);
			if (r < 0)
				return r;
			memset(c->digits, 0, sizeof(c->digits));
			c->line_len = 0;
			c->left = size;
			c->state = size ? API_CHUNKED_DATA : API_CHUNKED_TRAILER;
			break;
		}
		case API_CHUNKED_DATA: {
			size_t n = len - i;

			if (n > c->left)
				n = (size_t)c->left;
			r = sink(userdata, p + i, n);
			if (r < 0)
				return r;
			i += n;
			c->left -= n;
			if (c->left == 0) {
				c->state = API_CHUNKED_DATA_END;
				c->cr = false;
			}
			break;
		}
		case API_CHUNKED_DATA_END:
			if (p[i] == '\r' && !c->cr) {
				c->cr = true;
				i++;
				break;
			}
			if (p[i] != '\n')
				return -EBADMSG;
			i++;
			c->state = API_CHUNKED_SIZE;
			break;
		case API_CHUNKED_TRAILER: {
			size_t was = c->line_len;

			if (++c->trailer_bytes > API_CHUNKED_TRAILER_MAX)
				return -EBADMSG;
			r = line_byte(c, p[i++], API_CHUNKED_TRAILER_MAX);
			if (r < 0)
				return r;
			if (r == 1) {
				c->line_len = 0;
				if (was == 0)
					c->state = API_CHUNKED_DONE; /* the empty line */
			}
			break;
		}
		case API_CHUNKED_DONE:
			break;
		}
	}
	return (ssize_t)i;
}
