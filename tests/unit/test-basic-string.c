/* Unit tests of basic-string.c and basic-fs.c: LXD-style size parsing, bounded integer parsing,
 * byte formatting, string vectors, random hex and RFC 3339 timestamps (table-driven), then the
 * file-system helpers in a private temporary directory: atomic write + read roundtrip with its
 * size limit, mkdir_p, and rm_rf on a tree holding symlinks that point outside it (the targets
 * must survive). No root, no network. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"

/* ---- parse_size_bytes ---- */

struct size_case {
	const char *in;
	int ret;
	uint64_t want;
};

static const struct size_case size_cases[] = {
	/* plain byte counts, optional "B" */
	{"0", 0, 0},
	{"512", 0, 512},
	{"512B", 0, 512},
	{"1", 0, 1},
	{"18446744073", 0, 18446744073ULL},
	/* decimal units are powers of 1000 (LXD: kB, MB, GB, TB, PB) */
	{"1kB", 0, 1000},
	{"64MB", 0, 64000000},
	{"1GB", 0, 1000000000},
	{"2TB", 0, 2000000000000ULL},
	{"3PB", 0, 3000000000000000ULL},
	/* binary units are powers of 1024 */
	{"1KiB", 0, 1024},
	{"4MiB", 0, 4194304},
	{"1GiB", 0, 1073741824},
	{"1TiB", 0, 1099511627776ULL},
	{"1PiB", 0, 1125899906842624ULL},
	{"0GiB", 0, 0},
	/* fractions with a unit */
	{"1.5GB", 0, 1500000000},
	{"0.5KiB", 0, 512},
	{"1.5MiB", 0, 1572864},
	{"0.25GiB", 0, 268435456},
	{"1.1GB", 0, 1100000000},
	/* garbage */
	{"", -EINVAL, 0},
	{"banana", -EINVAL, 0},
	{"MB", -EINVAL, 0},
	{"-1", -EINVAL, 0},
	{"-1MB", -EINVAL, 0},
	{"+1", -EINVAL, 0},
	{" 1MB", -EINVAL, 0},
	{"1 MB", -EINVAL, 0},
	{"1MB ", -EINVAL, 0},
	{"1mb", -EINVAL, 0},
	{"1Mb", -EINVAL, 0},
	{"1M", -EINVAL, 0},
	{"1MIB", -EINVAL, 0},
	{"1KIB", -EINVAL, 0},
	{"10QB", -EINVAL, 0},
	{"1EB", -EINVAL, 0},
	{"1e3", -EINVAL, 0},
	{"0x10", -EINVAL, 0},
	{".5kB", -EINVAL, 0},
	{"1.2.3MB", -EINVAL, 0},
	{"1MBMB", -EINVAL, 0},
	/* a fraction of a byte is not a size */
	{"1.5", -EINVAL, 0},
	{"1.5B", -EINVAL, 0},
	{"0.1", -EINVAL, 0},
	/* overflow of 64 bits */
	{"99999999999999999999", -ERANGE, 0},
	{"20000PB", -ERANGE, 0},
	{"16384PiB", -ERANGE, 0},
	{"100000000000000000000000000000000000000000000000000000000000000000000000", -ERANGE, 0},
};

static void test_parse_size_bytes(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
		const struct size_case *c = &size_cases[i];
		uint64_t v = 0xdeadbeef;
		int r = parse_size_bytes(c->in, &v);

		if (r != c->ret)
			fail_msg("parse_size_bytes(\"%s\") returned %d, want %d", c->in, r, c->ret);
		if (r == 0 && v != c->want)
			fail_msg("parse_size_bytes(\"%s\") = %" PRIu64 ", want %" PRIu64, c->in, v,
				 c->want);
		if (r < 0 && v != 0xdeadbeef)
			fail_msg("parse_size_bytes(\"%s\") wrote *ret on failure", c->in);
	}
	/* NULL is refused, not dereferenced */
	{
		uint64_t v;

		assert_int_equal(parse_size_bytes(NULL, &v), -EINVAL);
	}
}

/* Sizes must be exact: 1.001kB is 1001 bytes and integers above 2^53 keep every digit. */
static void test_parse_size_bytes_exact(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{"1.001kB", 1001},
		{"9007199254740993", 9007199254740993ULL},
		{"9007199254740993B", 9007199254740993ULL},
		{"18014398509481987", 18014398509481987ULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;

		assert_int_equal(parse_size_bytes(cases[i].in, &v), 0);
		if (v != cases[i].want)
			fail_msg("parse_size_bytes(\"%s\") = %" PRIu64 ", want %" PRIu64,
				 cases[i].in, v, cases[i].want);
	}
}

/* ---- parse_int64 ---- */

struct int_case {
	const char *in;
	int64_t min, max;
	int ret;
	int64_t want;
};

static const struct int_case int_cases[] = {
	{"0", 0, 10, 0, 0},
	{"10", 0, 10, 0, 10},
	{"-1", -1, 10, 0, -1},
	{"-5", -10, -1, 0, -5},
	{"007", 0, 10, 0, 7},
	{"9223372036854775807", INT64_MIN, INT64_MAX, 0, INT64_MAX},
	{"-9223372036854775808", INT64_MIN, INT64_MAX, 0, INT64_MIN},
	/* out of [min, max] */
	{"11", 0, 10, -ERANGE, 0},
	{"-1", 0, 10, -ERANGE, 0},
	{"0", 1, 10, -ERANGE, 0},
	{"-11", -10, -1, -ERANGE, 0},
	/* out of int64 */
	{"9223372036854775808", INT64_MIN, INT64_MAX, -ERANGE, 0},
	{"-9223372036854775809", INT64_MIN, INT64_MAX, -ERANGE, 0},
	{"99999999999999999999999", 0, 10, -ERANGE, 0},
	/* garbage and partial matches */
	{"", 0, 10, -EINVAL, 0},
	{"-", 0, 10, -EINVAL, 0},
	{"abc", 0, 10, -EINVAL, 0},
	{"5abc", 0, 10, -EINVAL, 0},
	{"5 ", 0, 10, -EINVAL, 0},
	{" 5", 0, 10, -EINVAL, 0},
	{"\t5", 0, 10, -EINVAL, 0},
	{"\n5", 0, 10, -EINVAL, 0},
	{"1.0", 0, 10, -EINVAL, 0},
	{"1e1", 0, 100, -EINVAL, 0},
	{"0x5", 0, 10, -EINVAL, 0},
	{"--5", -10, 10, -EINVAL, 0},
	{"+5", 0, 10, -EINVAL, 0},
	{"- 5", -10, 10, -EINVAL, 0},
};

static void test_parse_int64(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(int_cases); i++) {
		const struct int_case *c = &int_cases[i];
		int64_t v = 4242;
		int r = parse_int64(c->in, c->min, c->max, &v);

		if (r != c->ret)
			fail_msg("parse_int64(\"%s\", %" PRId64 ", %" PRId64
				 ") returned %d, want %d",
				 c->in, c->min, c->max, r, c->ret);
		if (r == 0 && v != c->want)
			fail_msg("parse_int64(\"%s\") = %" PRId64 ", want %" PRId64, c->in, v,
				 c->want);
		if (r < 0 && v != 4242)
			fail_msg("parse_int64(\"%s\") wrote *ret on failure", c->in);
	}
	{
		int64_t v;

		assert_int_equal(parse_int64(NULL, 0, 10, &v), -EINVAL);
	}
}

/* ---- format_bytes ---- */

static void test_format_bytes(void **state)
{
	static const struct {
		uint64_t in;
		const char *want;
	} cases[] = {
		{0, "0B"},
		{1, "1B"},
		{1023, "1023B"},
		{1024, "1.00KiB"},
		{1536, "1.50KiB"},
		{67108864, "64.00MiB"},
		{64000000, "61.04MiB"},
		{1073741824, "1.00GiB"},
		{1099511627776ULL, "1.00TiB"},
		{1125899906842624ULL, "1.00PiB"},
		/* PiB is the largest unit */
		{1152921504606846976ULL, "1024.00PiB"},
		{UINT64_MAX, "16384.00PiB"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[32];
		const char *s = format_bytes(cases[i].in, buf);

		assert_ptr_equal(s, buf);
		if (!streq(s, cases[i].want))
			fail_msg("format_bytes(%" PRIu64 ") = \"%s\", want \"%s\"", cases[i].in, s,
				 cases[i].want);
	}
}

/* format_bytes output parses back (binary units) to within its 2-decimal rounding. */
static void test_format_parse_roundtrip(void **state)
{
	static const uint64_t values[] = {
		0, 1, 512, 1024, 4194304, 67108864, 1073741824, 3221225472ULL, 1099511627776ULL};

	for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
		char buf[32];
		uint64_t back;

		format_bytes(values[i], buf);
		assert_int_equal(parse_size_bytes(buf, &back), 0);
		assert_int_equal(back, values[i]);
	}
}

/* ---- string vectors ---- */

static void test_strv(void **state)
{
	cleanup_strv char **v = NULL;
	char **empty = NULL;

	assert_int_equal(strv_length(NULL), 0);
	assert_int_equal(strv_length(empty), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(strv_push(&v, strf("item-%d", i)), 0);
		assert_non_null(v);
		assert_int_equal(strv_length(v), (size_t)i + 1);
		assert_null(v[i + 1]);
	}
	for (int i = 0; i < 100; i++) {
		char want[32];

		snprintf(want, sizeof(want), "item-%d", i);
		assert_string_equal(v[i], want);
	}
	/* a NULL element (failed strf) is refused and leaves the vector as it was */
	assert_int_equal(strv_push(&v, NULL), -ENOMEM);
	assert_int_equal(strv_length(v), 100);
	assert_string_equal(v[99], "item-99");
}

static void test_str_has_word(void **state)
{
	(void)state;
	assert_true(str_has_word("cpu io memory\n", "cpu"));
	assert_true(str_has_word("cpu io memory\n", "memory"));
	assert_true(str_has_word("ondemand\nperformance", "performance"));
	assert_false(str_has_word("cpuset io", "cpu"));
	assert_false(str_has_word("io xcpu", "cpu"));
	assert_false(str_has_word("", "cpu"));
	assert_false(str_has_word(NULL, "cpu"));
	assert_false(str_has_word("cpu", ""));
	assert_true(str_has_word("cpuset cpu", "cpu"));
}

static void test_strf(void **state)
{
	cleanup_free char *s = strf("%s-%d-%05.1f", "a", 42, 3.14159);
	cleanup_free char *e = strf("%s", "");

	assert_non_null(s);
	assert_string_equal(s, "a-42-003.1");
	assert_non_null(e);
	assert_string_equal(e, "");
}

/* ---- random_hex ---- */

static void test_random_hex(void **state)
{
	static const size_t sizes[] = {0, 1, 2, 8, 16, 32, 64};

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		char buf[2 * 64 + 2];

		memset(buf, 'X', sizeof(buf));
		assert_int_equal(random_hex(buf, n), 0);
		assert_int_equal(strlen(buf), 2 * n);
		assert_int_equal(buf[2 * n + 1], 'X'); /* writes exactly 2n+1 bytes */
		for (size_t k = 0; k < 2 * n; k++)
			if (!strchr("0123456789abcdef", buf[k]) || !buf[k])
				fail_msg("random_hex(%zu) has '%c' at %zu: %s", n, buf[k], k, buf);
	}
	/* more than 64 bytes of entropy is refused rather than overflowing */
	{
		char big[2 * 65 + 1];

		assert_int_equal(random_hex(big, 65), -EINVAL);
	}
	/* two 16-byte draws differ (collision probability 2^-128) */
	{
		char a[33], b[33];

		assert_int_equal(random_hex(a, 16), 0);
		assert_int_equal(random_hex(b, 16), 0);
		assert_string_not_equal(a, b);
	}
}

/* ---- now_rfc3339 ---- */

static bool match_shape(const char *s, const char *shape)
{
	/* shape: 'd' = digit, anything else literal */
	for (; *shape; s++, shape++) {
		if (*shape == 'd' ? !(*s >= '0' && *s <= '9') : *s != *shape)
			return false;
	}
	return *s == 0;
}

static void test_now_rfc3339(void **state)
{
	char buf[40];
	struct tm tm = {0};
	time_t t0 = time(NULL), t;
	const char *s;

	s = now_rfc3339(buf);
	assert_ptr_equal(s, buf);
	if (!match_shape(s, "dddd-dd-ddTdd:dd:dd.dddddddddZ"))
		fail_msg("now_rfc3339() = \"%s\", not YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ", s);
	/* it is UTC "now": parse it back and compare with time(2) */
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%S", &tm));
	t = timegm(&tm);
	assert_true(t >= t0 && t <= t0 + 5);
}

/* ---- file-system helpers, in a private temporary directory ---- */

struct fsdir {
	char root[PATH_MAX];
};

static int fs_setup(void **state)
{
	struct fsdir *d = calloc(1, sizeof(*d));
	const char *tmp = getenv("TMPDIR");

	if (!d)
		return -1;
	snprintf(d->root, sizeof(d->root), "%s/kiva-test-basic-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(d->root)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int fs_teardown(void **state)
{
	struct fsdir *d = *state;

	if (d) {
		rm_rf(d->root);
		free(d);
	}
	return 0;
}

static char *path_in(const struct fsdir *d, const char *rel)
{
	char *p = strf("%s/%s", d->root, rel);

	assert_non_null(p);
	return p;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void touch(const char *path, const char *content)
{
	assert_int_equal(write_file_atomic(path, content, strlen(content), 0644), 0);
}

static size_t count_entries(const char *dir)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(dh);
	while ((de = readdir(dh)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			n++;
	closedir(dh);
	return n;
}

static void test_write_read_roundtrip(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *dir = path_in(d, "rw");
	cleanup_free char *path = path_in(d, "rw/file");
	static const struct {
		size_t len;
		mode_t mode;
	} cases[] = {
		{0, 0600}, {1, 0644}, {4095, 0640}, {4096, 0600}, {4097, 0600}, {100000, 0444},
	};

	assert_int_equal(mkdir_p(dir, 0755), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len = cases[i].len;
		cleanup_free char *data = malloc(len + 1);
		cleanup_free char *back = NULL;
		size_t back_len = 12345;
		struct stat st;

		assert_non_null(data);
		for (size_t k = 0; k < len; k++)
			data[k] = (char)(k * 7 + i); /* includes NUL bytes */
		assert_int_equal(write_file_atomic(path, data, len, cases[i].mode), 0);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, cases[i].mode);
		assert_int_equal(st.st_size, len);

		assert_int_equal(read_file(path, len, &back, &back_len), 0);
		assert_int_equal(back_len, len);
		assert_memory_equal(back, data, len);
		assert_int_equal(back[len], 0); /* NUL-terminated */

		/* ret_len is optional */
		free(back);
		back = NULL;
		assert_int_equal(read_file(path, len + 1000, &back, NULL), 0);
		assert_memory_equal(back, data, len);

		/* the temporary file is gone: only "file" is left */
		assert_int_equal(count_entries(dir), 1);
		if (cases[i].mode == 0444)
			chmod(path, 0644);
	}
}

static void test_read_file_limits(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *path = path_in(d, "limits");
	cleanup_free char *missing = path_in(d, "does-not-exist");
	cleanup_free char *data = malloc(20000);
	static const struct {
		size_t file_len, max_bytes;
		int ret;
	} cases[] = {
		{10, 10, 0},	      {10, 9, -EFBIG},
		{10, 0, -EFBIG},      {0, 0, 0},
		{100, 4096, 0},	      {4095, 4096, 0},
		{4097, 4096, -EFBIG}, {5000, 4096, -EFBIG},
		{5000, 5000, 0},      {5001, 5000, -EFBIG},
		{8192, 8191, -EFBIG}, {16385, 16384, -EFBIG},
		{20000, 1 << 20, 0},
	};

	assert_non_null(data);
	memset(data, 'k', 20000);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *back = (char *)0x1;
		size_t len = 777;
		int r;

		assert_int_equal(write_file_atomic(path, data, cases[i].file_len, 0600), 0);
		r = read_file(path, cases[i].max_bytes, &back, &len);
		if (r != cases[i].ret)
			fail_msg("read_file(%zu-byte file, max %zu) returned %d, want %d",
				 cases[i].file_len, cases[i].max_bytes, r, cases[i].ret);
		if (r == 0) {
			assert_int_equal(len, cases[i].file_len);
			free(back);
		} else {
			/* out-parameters untouched on failure */
			assert_ptr_equal(back, (char *)0x1);
			assert_int_equal(len, 777);
		}
	}
	{
		char *back = NULL;

		assert_int_equal(read_file(missing, 100, &back, NULL), -ENOENT);
		assert_null(back);
	}
}

/* A file of exactly max_bytes is within the limit, also when that is a multiple of read_file's
 * 4096-byte growth step (src/basic/basic-fs.c: `if (cap >= max_bytes)` must be `>`). */
static void test_read_file_exact_limit(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *path = path_in(d, "exact");
	cleanup_free char *data = malloc(16384);
	static const size_t sizes[] = {4096, 8192, 16384};

	assert_non_null(data);
	memset(data, 'e', 16384);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		cleanup_free char *back = NULL;
		size_t len = 0;

		assert_int_equal(write_file_atomic(path, data, sizes[i], 0600), 0);
		if (read_file(path, sizes[i], &back, &len) != 0)
			fail_msg("read_file(%zu-byte file, max %zu) failed", sizes[i], sizes[i]);
		assert_int_equal(len, sizes[i]);
	}
}

static void test_write_file_atomic_errors(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *nodir = path_in(d, "no/such/dir/file");
	cleanup_free char *path = path_in(d, "replace");
	cleanup_free char *back = NULL;

	assert_int_equal(write_file_atomic(nodir, "x", 1, 0644), -ENOENT);

	/* replacing keeps readers on either the old or the new content, never a mix */
	touch(path, "old old old old");
	touch(path, "new");
	assert_int_equal(read_file(path, 100, &back, NULL), 0);
	assert_string_equal(back, "new");
}

static void test_mkdir_p(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *deep = path_in(d, "mk/a/b/c/d");
	cleanup_free char *trailing = path_in(d, "mk/t/u/");
	cleanup_free char *file = path_in(d, "mk/file");
	cleanup_free char *under_file = path_in(d, "mk/file/sub");
	struct stat st;

	assert_int_equal(mkdir_p(deep, 0700), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* idempotent */
	assert_int_equal(mkdir_p(deep, 0700), 0);
	assert_int_equal(mkdir_p(trailing, 0755), 0);
	assert_int_equal(stat(trailing, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	assert_int_equal(mkdir_p("", 0755), -EINVAL);
	touch(file, "x");
	assert_int_equal(mkdir_p(under_file, 0755), -ENOTDIR);
}

/* mkdir_p on an existing regular file must fail (-ENOTDIR): callers go on to use the path as a
 * directory. The file is left alone. */
static void test_mkdir_p_on_file(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *file = path_in(d, "mkfile");
	cleanup_free char *back = NULL;
	struct stat st;
	int r;

	touch(file, "x");
	r = mkdir_p(file, 0755);
	assert_int_equal(r, -ENOTDIR);
	assert_int_equal(stat(file, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(read_file(file, 10, &back, NULL), 0);
	assert_string_equal(back, "x");
}

static void test_rm_rf(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *tree = path_in(d, "tree");
	cleanup_free char *deep = path_in(d, "tree/a/b/c");
	cleanup_free char *f1 = path_in(d, "tree/a/f1");
	cleanup_free char *f2 = path_in(d, "tree/a/b/c/f2");
	cleanup_free char *outside = path_in(d, "outside");
	cleanup_free char *outside_sub = path_in(d, "outside/sub");
	cleanup_free char *outside_file = path_in(d, "outside/keep");
	cleanup_free char *outside_deep = path_in(d, "outside/sub/keep2");
	cleanup_free char *lone = path_in(d, "lone-file");
	cleanup_free char *dirlink = path_in(d, "tree/a/b/to-outside");
	cleanup_free char *filelink = path_in(d, "tree/to-keep");
	cleanup_free char *dangling = path_in(d, "tree/a/dangling");
	cleanup_free char *fifo = path_in(d, "tree/a/fifo");
	cleanup_free char *top_link = path_in(d, "top-link");
	cleanup_free char *emptydir = path_in(d, "tree/empty");

	assert_int_equal(mkdir_p(deep, 0755), 0);
	assert_int_equal(mkdir_p(outside_sub, 0755), 0);
	assert_int_equal(mkdir_p(emptydir, 0755), 0);
	touch(f1, "1");
	touch(f2, "2");
	touch(outside_file, "keep me");
	touch(outside_deep, "keep me too");
	assert_int_equal(symlink(outside, dirlink), 0);
	assert_int_equal(symlink(outside_file, filelink), 0);
	assert_int_equal(symlink("/nonexistent/kiva", dangling), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);

	assert_int_equal(rm_rf(tree), 0);
	assert_false(exists(tree));
	/* everything the symlinks pointed at survives */
	assert_true(exists(outside));
	assert_true(exists(outside_sub));
	assert_true(exists(outside_file));
	assert_true(exists(outside_deep));
	{
		cleanup_free char *c = NULL;

		assert_int_equal(read_file(outside_deep, 100, &c, NULL), 0);
		assert_string_equal(c, "keep me too");
	}

	/* a missing path is success */
	assert_int_equal(rm_rf(tree), 0);
	/* a symlink given as the path itself is removed, not followed */
	assert_int_equal(symlink(outside, top_link), 0);
	assert_int_equal(rm_rf(top_link), 0);
	assert_false(exists(top_link));
	assert_true(exists(outside_deep));
	/* a plain file */
	touch(lone, "x");
	assert_int_equal(rm_rf(lone), 0);
	assert_false(exists(lone));
	/* finally the outside tree itself */
	assert_int_equal(rm_rf(outside), 0);
	assert_false(exists(outside));
}

static void test_fd_pass(void **state)
{
	int sv[2], p[2], fds[FD_PASS_MAX], many[FD_PASS_MAX + 1];
	char buf[16];
	size_t nfds;
	ssize_t n;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(p), 0);
	/* data and two fds; the received read end reads what the write end got */
	assert_int_equal(fd_send(sv[0], "abc", 3, p, 2), 3);
	n = fd_recv(sv[1], buf, sizeof(buf), fds, FD_PASS_MAX, &nfds);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(nfds, 2);
	assert_int_equal(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(write(fds[1], "x", 1), 1);
	assert_int_equal(read(p[0], buf, 1), 1);
	assert_int_equal(buf[0], 'x');
	close(fds[0]);
	close(fds[1]);
	/* more fds than the receiver takes, or more data: refused, nothing left open */
	assert_int_equal(fd_send(sv[0], "a", 1, p, 2), 1);
	assert_int_equal(fd_recv(sv[1], buf, sizeof(buf), fds, 1, &nfds), -EBADMSG);
	assert_int_equal(nfds, 0);
	assert_int_equal(fd_send(sv[0], "abcdef", 6, NULL, 0), 6);
	assert_int_equal(fd_recv(sv[1], buf, 2, fds, FD_PASS_MAX, &nfds), -EBADMSG);
	/* bad arguments; EOF */
	for (size_t i = 0; i < FD_PASS_MAX + 1; i++)
		many[i] = p[0];
	assert_int_equal(fd_send(sv[0], "a", 1, many, FD_PASS_MAX + 1), -EINVAL);
	assert_int_equal(fd_send(sv[0], "", 0, NULL, 0), -EINVAL);
	close(sv[0]);
	assert_int_equal(fd_recv(sv[1], buf, sizeof(buf), fds, FD_PASS_MAX, &nfds), 0);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

static void test_copy_file(void **state)
{
	struct fsdir *d = *state;
	cleanup_free char *src = path_in(d, "copy-src");
	cleanup_free char *dst = path_in(d, "copy-dst");
	cleanup_free char *missing = path_in(d, "copy-missing");
	cleanup_free char *data = malloc(200000);
	cleanup_free char *back = NULL;
	size_t len;
	struct stat st;

	assert_non_null(data);
	for (size_t i = 0; i < 200000; i++)
		data[i] = (char)(i % 251);
	assert_int_equal(write_file_atomic(src, data, 200000, 0600), 0);
	assert_int_equal(copy_file(src, dst, 0640), 0);
	assert_int_equal(read_file(dst, 1 << 20, &back, &len), 0);
	assert_int_equal(len, 200000);
	assert_memory_equal(back, data, 200000);
	assert_int_equal(stat(dst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(copy_file(missing, dst, 0640), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_bytes),
		cmocka_unit_test(test_parse_size_bytes_exact),
		cmocka_unit_test(test_parse_int64),
		cmocka_unit_test(test_format_bytes),
		cmocka_unit_test(test_format_parse_roundtrip),
		cmocka_unit_test(test_strv),
		cmocka_unit_test(test_str_has_word),
		cmocka_unit_test(test_strf),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_now_rfc3339),
		cmocka_unit_test(test_write_read_roundtrip),
		cmocka_unit_test(test_read_file_limits),
		cmocka_unit_test(test_read_file_exact_limit),
		cmocka_unit_test(test_write_file_atomic_errors),
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_mkdir_p_on_file),
		cmocka_unit_test(test_rm_rf),
		cmocka_unit_test(test_copy_file),
		cmocka_unit_test(test_fd_pass),
	};

	return cmocka_run_group_tests_name("basic-string", tests, fs_setup, fs_teardown);
}
