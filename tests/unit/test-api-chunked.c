/* Unit tests of the chunked request-body decoder (src/api/api-chunked.c, RFC 9112 §7.1): bodies
 * fed whole and split at every byte, extensions, trailers, bare LF, what is left after the last
 * chunk, the announced size of a chunk in progress, malformed framing and limits, a sink error.
 * No root. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api-chunked.h"
#include "basic-macro.h"

struct out {
	char buf[4096];
	size_t len;
	int fail; /* < 0: the sink returns it */
};

static int sink(void *userdata, const void *data, size_t len)
{
	struct out *o = userdata;

	if (o->fail < 0)
		return o->fail;
	assert_true(o->len + len <= sizeof(o->buf));
	memcpy(o->buf + o->len, data, len);
	o->len += len;
	return 0;
}

/* Feeds in pieces of at most step bytes (0: whole). Returns the bytes consumed in all, or the
 * error. */
static ssize_t feed(struct api_chunked *c, const char *in, size_t len, size_t step, struct out *o)
{
	size_t off = 0;

	while (off < len && !api_chunked_done(c)) {
		size_t n = step && len - off > step ? step : len - off;
		ssize_t r = api_chunked_feed(c, in + off, n, sink, o);

		if (r < 0)
			return r;
		off += (size_t)r;
		if ((size_t)r < n)
			break;
	}
	return (ssize_t)off;
}

static void test_bodies(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{"6\r\nhello\n\r\n0\r\n\r\n", "hello\n"},
		{"0\r\n\r\n", ""},
		{"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde"},
		{"A\r\n0123456789\r\n0\r\n\r\n", "0123456789"}, /* upper-case hex */
		{"a\r\n0123456789\r\n0000\r\n\r\n", "0123456789"},
		{"0005\r\nhello\r\n0\r\n\r\n", "hello"}, /* leading zeros */
		{"5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello"}, /* extensions */
		{"5 ;x\r\nhello\r\n0\r\n\r\n", "hello"}, /* BWS before ';' */
		{"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n", "hello"}, /* trailers */
		{"5\nhello\n0\n\n", "hello"}, /* bare LF */
		{"2\r\n\r\n\r\n0\r\n\r\n", "\r\n"}, /* CRLF as data */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = strlen(cases[i].in);

		for (size_t step = 0; step <= 3; step++) {
			struct api_chunked c;
			struct out o = {0};

			api_chunked_init(&c);
			assert_int_equal(feed(&c, cases[i].in, len, step, &o), (ssize_t)len);
			assert_true(api_chunked_done(&c));
			assert_int_equal(o.len, strlen(cases[i].want));
			assert_memory_equal(o.buf, cases[i].want, o.len);
		}
	}
}

static void test_rest_left(void **state)
{
	static const char in[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct api_chunked c;
	struct out o = {0};
	ssize_t n;

	api_chunked_init(&c);
	n = api_chunked_feed(&c, in, sizeof(in) - 1, sink, &o);
	assert_int_equal(n, (ssize_t)strlen("3\r\nabc\r\n0\r\n\r\n"));
	assert_true(api_chunked_done(&c));
	/* done: nothing more is taken */
	assert_int_equal(api_chunked_feed(&c, "xyz", 3, sink, &o), 0);
	assert_int_equal(o.len, 3);
}

static void test_pending(void **state)
{
	struct api_chunked c;
	struct out o = {0};

	api_chunked_init(&c);
	assert_int_equal(api_chunked_pending(&c), 0);
	assert_int_equal(api_chunked_feed(&c, "40000000\r\nab", 12, sink, &o), 12);
	/* the client announced 1 GiB and sent 2 bytes of it */
	assert_int_equal(api_chunked_pending(&c), 0x40000000 - 2);
	assert_false(api_chunked_done(&c));

	/* the largest size that fits 64 bits, leading zeros not counted */
	api_chunked_init(&c);
	assert_int_equal(api_chunked_feed(&c, "000ffffffffffffffff\r\n", 21, sink, &o), 21);
	assert_true(api_chunked_pending(&c) == UINT64_MAX);
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
		"\r\n", /* no size */
		"x\r\n", /* not hex */
		"5x\r\nhello\r\n", /* junk after the size */
		"-5\r\n", /* negative */
		"10000000000000000\r\n", /* 17 significant digits: past 64 bits */
		"3\r\nabcX\r\n0\r\n\r\n", /* no CRLF after the data */
		"3\r\nabc\r\r\n", /* CR, then not LF */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct api_chunked c;
		struct out o = {0};

		api_chunked_init(&c);
		if (feed(&c, bad[i], strlen(bad[i]), 0, &o) != -EBADMSG)
			fail_msg("'%s' was not refused", bad[i]);
	}
}

static void test_limits(void **state)
{
	char *line = malloc(API_CHUNKED_LINE_MAX + 16);
	char *trailer = malloc(API_CHUNKED_TRAILER_MAX + 16);
	struct api_chunked c;
	struct out o = {0};

	assert_non_null(line);
	assert_non_null(trailer);
	/* an extension that never ends */
	memset(line, 'x', API_CHUNKED_LINE_MAX + 8);
	memcpy(line, "5;", 2);
	api_chunked_init(&c);
	assert_int_equal(feed(&c, line, API_CHUNKED_LINE_MAX + 8, 0, &o), -EBADMSG);
	/* a trailer section that never ends */
	memset(trailer, 'y', API_CHUNKED_TRAILER_MAX + 8);
	memcpy(trailer, "0\r\n", 3);
	api_chunked_init(&c);
	assert_int_equal(feed(&c, trailer, API_CHUNKED_TRAILER_MAX + 8, 0, &o), -EBADMSG);
	free(line);
	free(trailer);
}

static void test_sink_error(void **state)
{
	static const char in[] = "5\r\nhello\r\n0\r\n\r\n";
	struct api_chunked c;
	struct out o = {.fail = -EFBIG};

	api_chunked_init(&c);
	assert_int_equal(api_chunked_feed(&c, in, sizeof(in) - 1, sink, &o), -EFBIG);
	assert_false(api_chunked_done(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bodies),	cmocka_unit_test(test_rest_left),
		cmocka_unit_test(test_pending), cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_limits),	cmocka_unit_test(test_sink_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
