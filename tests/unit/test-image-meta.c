/* Unit tests of image-meta.c: the metadata.yaml parser (good LXD files, quoting, missing
 * architecture, garbage, oversized input), image_meta_read's file checks and image_dir_size;
 * and of the busybox builder whose metadata.yaml it reads back (image-busybox.c has no test
 * binary of its own), including the owner shift. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

/* What lxc-images / LXD's image server ship (with templates and expiry_date). */
/* cmocka 1.1.5 reports skip() as "not ok N # SKIP", which meson's TAP parser counts as a failure:
 * print the reason as a TAP comment and return instead. */
#define SKIP_TEST(why)                                                                             \
	do {                                                                                       \
		printf("# SKIP %s: %s\n", __func__, why);                                          \
		return;                                                                            \
	} while (0)

static const char lxd_debian[] = "architecture: x86_64\n"
				 "creation_date: 1704086400\n"
				 "expiry_date: 1706678400\n"
				 "properties:\n"
				 "  architecture: amd64\n"
				 "  description: Debian bookworm amd64 (20240101_05:24)\n"
				 "  name: debian-bookworm-amd64-default-20240101_05:24\n"
				 "  os: debian\n"
				 "  release: bookworm\n"
				 "  serial: \"20240101_05:24\"\n"
				 "  variant: default\n"
				 "templates:\n"
				 "  /etc/hostname:\n"
				 "    when:\n"
				 "    - create\n"
				 "    - copy\n"
				 "    create_only: false\n"
				 "    template: hostname.tpl\n"
				 "    properties: {}\n"
				 "  /etc/hosts:\n"
				 "    when:\n"
				 "    - create\n"
				 "    template: hosts.tpl\n";

static int parse(const char *text, struct image_meta *m, struct kiva_error *err)
{
	*err = (struct kiva_error){0};
	return image_meta_parse(text, strlen(text), m, err);
}

static void test_parse_lxd(void **state)
{
	struct image_meta m = {0};
	struct kiva_error err;

	assert_int_equal(parse(lxd_debian, &m, &err), 0);
	assert_string_equal(m.architecture, "x86_64");
	assert_int_equal(m.creation_date, 1704086400);
	assert_string_equal(m.os, "debian");
	assert_string_equal(m.release, "bookworm");
	assert_string_equal(m.description, "Debian bookworm amd64 (20240101_05:24)");
	image_meta_done(&m);
	assert_null(m.architecture);
	image_meta_done(NULL);
}

static void test_parse_busybox_builder_format(void **state)
{
	struct image_meta m = {0};
	struct kiva_error err;

	assert_int_equal(parse("architecture: x86_64\n"
			       "creation_date: 1700000000\n"
			       "properties:\n"
			       "  architecture: x86_64\n"
			       "  description: Busybox x86_64 (KIVA builder)\n"
			       "  name: busybox-x86_64\n"
			       "  os: Busybox\n"
			       "  release: \"1.35.0\"\n"
			       "templates: {}\n",
			       &m, &err),
			 0);
	assert_string_equal(m.os, "Busybox");
	assert_string_equal(m.release, "1.35.0");
	assert_string_equal(m.description, "Busybox x86_64 (KIVA builder)");
	image_meta_done(&m);
}

struct scalar_case {
	const char *yaml_value; /* the text after "  release: " */
	const char *want; /* NULL: an error is expected */
	const char *err_part;
};

static const struct scalar_case scalar_cases[] = {
	{"\"12\"", "12", NULL},
	{"'12'", "12", NULL},
	{"12   ", "12", NULL},
	{"12 # a comment", "12", NULL},
	{"a#b", "a#b", NULL},
	{"\"a # not a comment\"", "a # not a comment", NULL},
	{"'it''s'", "it's", NULL},
	{"\"say \\\"hi\\\"\\tnow\"", "say \"hi\"\tnow", NULL},
	{"\"caf\\u00e9 \\x41 \\U0001F600\"", "caf\xc3\xa9 A \xf0\x9f\x98\x80", NULL},
	{"\"back\\\\slash\"", "back\\slash", NULL},
	{"", "", NULL},
	{"\"\"", "", NULL},
	{"\"unterminated", NULL, "unterminated quoted string"},
	{"'unterminated", NULL, "unterminated quoted string"},
	{"\"x\" trailing", NULL, "text after the closing quote"},
	{"\"bad \\q escape\"", NULL, "unknown escape"},
	{"\"bad \\u12\"", NULL, "bad hex escape"},
	{"\"nul \\0 inside\"", NULL, "NUL"},
	{"[1, 2]", NULL, "unsupported YAML value"},
	{"&anchor x", NULL, "unsupported YAML value"},
	{"|x", NULL, "unsupported YAML value"},
};

static void test_parse_scalars(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(scalar_cases); i++) {
		const struct scalar_case *c = &scalar_cases[i];
		cleanup_free char *text =
			strf("architecture: x86_64\nproperties:\n  release: %s\n", c->yaml_value);
		struct image_meta m = {0};
		struct kiva_error err;
		int r;

		assert_non_null(text);
		r = parse(text, &m, &err);
		if (c->want) {
			if (r < 0)
				fail_msg("case %zu (%s): %s", i, c->yaml_value, err.msg);
			assert_string_equal(m.release, c->want);
			image_meta_done(&m);
		} else {
			if (r >= 0)
				fail_msg("case %zu (%s) parsed as '%s'", i, c->yaml_value,
					 m.release);
			assert_int_equal(r, -EINVAL);
			if (!strstr(err.msg, c->err_part))
				fail_msg("case %zu: '%s' does not mention '%s'", i, err.msg,
					 c->err_part);
			assert_null(m.architecture);
		}
	}
}

static void test_parse_quoted_top_level_and_crlf(void **state)
{
	struct image_meta m = {0};
	struct kiva_error err;

	assert_int_equal(parse("---\r\n# comment\r\narchitecture: 'aarch64'\r\n"
			       "creation_date: \"42\"\r\n\r\nproperties:\r\n    os: \"Alpine\"\r\n"
			       "    description: plain text here   \r\n",
			       &m, &err),
			 0);
	assert_string_equal(m.architecture, "aarch64");
	assert_int_equal(m.creation_date, 42);
	assert_string_equal(m.os, "Alpine");
	assert_string_equal(m.description, "plain text here");
	assert_null(m.release);
	image_meta_done(&m);
}

static void test_block_scalars_skipped(void **state)
{
	struct image_meta m = {0};
	struct kiva_error err;

	assert_int_equal(parse("architecture: x86_64\n"
			       "notes: |-\n"
			       "  free text: with a colon\n"
			       "\n"
			       "  - and a dash\n"
			       "properties:\n"
			       "  description: >\n"
			       "    folded\n"
			       "    text\n"
			       "  os: Busybox\n",
			       &m, &err),
			 0);
	assert_null(m.description);
	assert_string_equal(m.os, "Busybox");
	image_meta_done(&m);
}

static void test_missing_architecture(void **state)
{
	struct image_meta m = {0};
	struct kiva_error err;

	assert_int_equal(
		parse("creation_date: 1\nproperties:\n  architecture: x86_64\n  os: x\n", &m, &err),
		-EINVAL);
	assert_string_equal(err.msg, "metadata.yaml has no architecture");
	assert_int_equal(parse("architecture: \"\"\n", &m, &err), -EINVAL);
	assert_string_equal(err.msg, "metadata.yaml has no architecture");
	assert_int_equal(parse("", &m, &err), -EINVAL);
	assert_string_equal(err.msg, "metadata.yaml has no architecture");
	assert_null(m.os);
}

struct garbage_case {
	const char *text;
	const char *err_part;
};

static const struct garbage_case garbage_cases[] = {
	{"this is not yaml at all\n", "line 1: expected 'key: value'"},
	{"architecture: x86_64\n  indented: under nothing\n", "line 2: unexpected indentation"},
	{"architecture: x86_64\nproperties:\n\tos: x\n", "line 3: tabs are not allowed"},
	{"architecture: x86_64\nproperties:\n    os: x\n  release: y\n",
	 "line 4: inconsistent indentation"},
	{"architecture: x86_64\nproperties:\n  - os\n", "line 3: expected 'key: value' under"},
	{"architecture: x86_64\nproperties: {os: x}\n", "properties must be a block map"},
	{"architecture: x86_64\ncreation_date: yesterday\n", "creation_date is not an integer"},
	{"- architecture: x86_64\n", "line 1: expected 'key: value'"},
	{"architecture:x86_64\n", "line 1: expected 'key: value'"},
	{"\x7f"
	 "ELF\x02\x01\x01\n",
	 "line 1: expected 'key: value'"},
};

static void test_garbage(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(garbage_cases); i++) {
		struct image_meta m = {0};
		struct kiva_error err;

		if (parse(garbage_cases[i].text, &m, &err) >= 0)
			fail_msg("garbage case %zu parsed", i);
		if (!strstr(err.msg, garbage_cases[i].err_part))
			fail_msg("case %zu: '%s' does not mention '%s'", i, err.msg,
				 garbage_cases[i].err_part);
	}

	/* NUL bytes inside the buffer */
	struct image_meta m = {0};
	struct kiva_error err = {0};
	static const char nul[] = "architecture: x86_64\n\0os: x\n";
	assert_int_equal(image_meta_parse(nul, sizeof(nul) - 1, &m, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "NUL"));
}

static void test_oversized_parse(void **state)
{
	size_t len = IMAGE_META_MAX_BYTES + 1;
	cleanup_free char *big = malloc(len + 1);
	struct image_meta m = {0};
	struct kiva_error err = {0};

	assert_non_null(big);
	memset(big, '#', len);
	memcpy(big, "architecture: x86_64\n", 21);
	big[len] = 0;
	assert_int_equal(image_meta_parse(big, len, &m, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "larger than"));
}

/* Per-test temp dir, removed by the teardown even when the test fails. */
static int tmp_setup(void **state)
{
	char *dir = strdup("/tmp/kiva-test-meta-XXXXXX");

	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int tmp_teardown(void **state)
{
	(void)rm_rf(*state);
	free(*state);
	return 0;
}

static void write_meta(const char *dir, const char *text, size_t len)
{
	cleanup_free char *p = strf("%s/metadata.yaml", dir);

	assert_non_null(p);
	assert_int_equal(write_file_atomic(p, text, len, 0644), 0);
}

static void test_read_file(void **state)
{
	const char *dir = *state;
	struct image_meta m = {0};
	struct kiva_error err = {0};

	assert_int_equal(image_meta_read(dir, &m, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no metadata.yaml"));

	write_meta(dir, lxd_debian, strlen(lxd_debian));
	err = (struct kiva_error){0};
	assert_int_equal(image_meta_read(dir, &m, &err), 0);
	assert_string_equal(m.architecture, "x86_64");
	assert_string_equal(m.release, "bookworm");
	image_meta_done(&m);
}

static void test_read_oversized_file(void **state)
{
	const char *dir = *state;
	size_t len = IMAGE_META_MAX_BYTES + 1;
	cleanup_free char *big = malloc(len);
	struct image_meta m = {0};
	struct kiva_error err = {0};

	assert_non_null(big);
	memset(big, '#', len);
	memcpy(big, "architecture: x86_64\n", 21);
	write_meta(dir, big, len);
	assert_int_equal(image_meta_read(dir, &m, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "metadata.yaml is larger than"));
	assert_null(m.architecture);
}

static void test_read_refuses_symlink(void **state)
{
	const char *dir = *state;
	cleanup_free char *target = strf("%s/real.yaml", dir);
	cleanup_free char *link = strf("%s/metadata.yaml", dir);
	struct image_meta m = {0};
	struct kiva_error err = {0};

	assert_int_equal(write_file_atomic(target, lxd_debian, strlen(lxd_debian), 0644), 0);
	assert_int_equal(symlink(target, link), 0);
	assert_true(image_meta_read(dir, &m, &err) < 0);
	assert_null(m.architecture);
}

static void test_dir_size(void **state)
{
	const char *dir = *state;
	cleanup_free char *a = strf("%s/a", dir), *b = strf("%s/b", dir), *c = strf("%s/c", dir);
	cleanup_free char *d = strf("%s/d", dir), *e = strf("%s/d/e", dir);
	char buf[100] = {0};
	struct stat st_root, st_d;
	uint64_t size = 0;

	assert_int_equal(write_file_atomic(a, buf, 100, 0644), 0);
	assert_int_equal(link(a, b), 0); /* hard link: counted once */
	assert_int_equal(symlink("a", c), 0); /* symlink: 1 byte */
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(write_file_atomic(e, buf, 10, 0644), 0);
	assert_int_equal(stat(dir, &st_root), 0);
	assert_int_equal(stat(d, &st_d), 0);
	assert_int_equal(image_dir_size(dir, &size), 0);
	assert_int_equal(size, (uint64_t)st_root.st_size + (uint64_t)st_d.st_size + 100 + 1 + 10);
	assert_int_equal(image_dir_size("/nonexistent/kiva", &size), -ENOENT);
}

/* The busybox builder writes what image_meta_read parses back, and a rootfs that boots. */
static void test_busybox_build(void **state)
{
	const char *dir = *state;
	const uint32_t shift = geteuid() == 0 ? 100000 : 0;
	const uid_t owner = shift ? shift : geteuid();
	cleanup_free char *rootfs = strf("%s/rootfs", dir);
	cleanup_free char *bb = strf("%s/rootfs/bin/busybox", dir);
	cleanup_free char *sh = strf("%s/rootfs/bin/sh", dir);
	cleanup_free char *env = strf("%s/rootfs/usr/bin/env", dir);
	cleanup_free char *init = strf("%s/rootfs/sbin/init", dir);
	cleanup_free char *rcs = strf("%s/rootfs/etc/init.d/rcS", dir);
	cleanup_free char *tmp = strf("%s/rootfs/tmp", dir);
	cleanup_free char *init_text = NULL, *rcs_text = NULL;
	struct image_meta m = {0};
	struct kiva_error err = {0};
	struct utsname u;
	struct stat st;
	char target[64] = {0};

	if (access("/bin/busybox", X_OK) < 0)
		SKIP_TEST("/bin/busybox missing (busybox-static)");
	if (image_build_busybox(dir, "/bin/busybox", shift, &err) < 0)
		fail_msg("%s", err.msg);

	assert_int_equal(image_meta_read(dir, &m, &err), 0);
	assert_int_equal(uname(&u), 0);
	if (streq(u.machine, "x86_64"))
		assert_string_equal(m.architecture, "x86_64");
	assert_string_equal(m.os, "Busybox");
	assert_non_null(m.release);
	assert_true(m.release[0] >= '1' && m.release[0] <= '9');
	assert_non_null(strstr(m.description, "(KIVA builder)"));
	assert_true(m.creation_date > 1600000000);
	image_meta_done(&m);

	assert_int_equal(lstat(bb, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(st.st_uid, owner);
	assert_int_equal(readlink(sh, target, sizeof(target) - 1), 12);
	assert_string_equal(target, "/bin/busybox");
	assert_int_equal(lstat(env, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, owner);

	/* Our init, not busybox's (which would run udhcpc and ignore SIGPWR). */
	assert_int_equal(lstat(init, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(read_file(init, 65536, &init_text, NULL), 0);
	assert_true(startswith(init_text, "#!/bin/sh\n"));
	assert_non_null(strstr(init_text, "trap halt PWR TERM"));
	assert_int_equal(lstat(rcs, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(read_file(rcs, 65536, &rcs_text, NULL), 0);
	assert_null(strstr(rcs_text, "udhcpc"));
	assert_int_equal(lstat(tmp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 01777);
	assert_int_equal(lstat(rootfs, &st), 0);
	assert_int_equal(st.st_uid, owner);
	assert_int_equal(st.st_gid, shift ? shift : getegid());

	/* A second build into the same dir refuses and leaves the first alone. */
	err = (struct kiva_error){0};
	assert_int_equal(image_build_busybox(dir, "/bin/busybox", shift, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "rootfs"));
	assert_int_equal(access(bb, X_OK), 0);
}

static void test_busybox_build_errors(void **state)
{
	const char *dir = *state;
	struct kiva_error err = {0};

	assert_int_equal(image_build_busybox(dir, "/nonexistent/busybox", 0, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/busybox"));
	err = (struct kiva_error){0};
	if (access("/bin/ls", X_OK) == 0) {
		assert_int_equal(image_build_busybox(dir, "/bin/ls", 0, &err), -ENOEXEC);
		assert_non_null(strstr(err.msg, "dynamically linked"));
	}
	err = (struct kiva_error){0};
	assert_true(image_build_busybox(dir, "/etc/passwd", 0, &err) < 0);
	if (geteuid() == 0) /* root passes access(X_OK) only with an x bit: not here */
		assert_non_null(strstr(err.msg, "'/etc/passwd' is not executable"));
	/* Nothing left behind. */
	DIR *d = opendir(dir);
	int n = 0;
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		n += !streq(de->d_name, ".") && !streq(de->d_name, "..");
	closedir(d);
	assert_int_equal(n, 0);
}

static void test_shift_tree(void **state)
{
	const char *dir = *state;
	cleanup_free char *suid = strf("%s/suid", dir), *link = strf("%s/link", dir);
	cleanup_free char *far = strf("%s/far", dir);
	struct kiva_error err = {0};
	struct stat st;

	if (geteuid() != 0)
		SKIP_TEST("chown needs root");
	assert_int_equal(write_file_atomic(suid, "x", 1, 0755), 0);
	assert_int_equal(chmod(suid, 06755), 0);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	assert_int_equal(image_shift_tree(dir, 200000, &err), 0);
	assert_int_equal(lstat(suid, &st), 0);
	assert_int_equal(st.st_uid, 200000);
	assert_int_equal(st.st_mode & 07777, 06755);
	assert_int_equal(lstat(link, &st), 0);
	assert_int_equal(st.st_uid, 200000);
	assert_int_equal(stat("/etc/passwd", &st), 0);
	assert_int_equal(st.st_uid, 0); /* the symlink was not followed */

	/* Owners already outside one range (e.g. shifted twice) are refused. */
	assert_int_equal(write_file_atomic(far, "x", 1, 0644), 0);
	assert_int_equal(image_shift_tree(dir, 200000, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "outside the container's 65536 ids"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_lxd),
		cmocka_unit_test(test_parse_busybox_builder_format),
		cmocka_unit_test(test_parse_scalars),
		cmocka_unit_test(test_parse_quoted_top_level_and_crlf),
		cmocka_unit_test(test_block_scalars_skipped),
		cmocka_unit_test(test_missing_architecture),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversized_parse),
		cmocka_unit_test_setup_teardown(test_read_file, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_read_oversized_file, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_read_refuses_symlink, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_dir_size, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_busybox_build, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_busybox_build_errors, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_shift_tree, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests_name("image-meta", tests, NULL, NULL);
}
