/* Unit tests of image-archive.c: image_unpack on tarballs built here with libarchive's write API
 * (a good LXD image in every supported compression, and one hostile archive per check). Each
 * failure case asserts that the message names the problem and that the target dir is empty
 * afterwards. Owner checks need root and are skipped otherwise. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

#define MIB (UINT64_C(1) << 20)
#define SHIFT 100000u

#define HARDLINK 1 /* pseudo file type for struct tent */

struct tent {
	const char *path;
	unsigned type; /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, HARDLINK */
	const char *data; /* REG: content (NULL: size zero bytes); LNK/HARDLINK: target */
	size_t size;
	unsigned uid;
	mode_t perm;
};

/* cmocka 1.1.5 reports skip() as "not ok N # SKIP", which meson's TAP parser counts as a failure:
 * print the reason as a TAP comment and return instead. */
#define SKIP_TEST(why)                                                                             \
	do {                                                                                       \
		printf("# SKIP %s: %s\n", __func__, why);                                          \
		return;                                                                            \
	} while (0)

static const char meta_yaml[] = "architecture: x86_64\ncreation_date: 1700000000\n"
				"properties:\n  os: Busybox\n  release: \"1.35.0\"\n"
				"templates: {}\n";

struct fixture {
	char *tmp;
	char *tarball;
	char *out;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->tmp = strdup("/tmp/kiva-test-archive-XXXXXX");
	if (!f->tmp || !mkdtemp(f->tmp))
		return -1;
	f->tarball = strf("%s/image.tar", f->tmp);
	f->out = strf("%s/out", f->tmp);
	if (!f->tarball || !f->out || mkdir(f->out, 0755) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	(void)rm_rf(f->tmp);
	free(f->tmp);
	free(f->tarball);
	free(f->out);
	free(f);
	return 0;
}

static void build(const char *tarball, int filter, const struct tent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	static const char zeros[65536];

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_true(archive_write_add_filter(a, filter) >= ARCHIVE_WARN);
	assert_int_equal(archive_write_open_filename(a, tarball), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		const struct tent *t = &ents[i];
		size_t size = 0;

		archive_entry_set_pathname(e, t->path);
		archive_entry_set_uid(e, t->uid);
		archive_entry_set_gid(e, t->uid);
		archive_entry_set_mtime(e, 1700000000, 0);
		switch (t->type) {
		case AE_IFREG:
			size = t->data ? strlen(t->data) : t->size;
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, t->perm ? t->perm : 0644);
			break;
		case AE_IFDIR:
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, t->perm ? t->perm : 0755);
			break;
		case AE_IFLNK:
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_set_symlink(e, t->data);
			break;
		case AE_IFCHR:
			archive_entry_set_filetype(e, AE_IFCHR);
			archive_entry_set_perm(e, 0666);
			archive_entry_set_rdev(e, makedev(1, 3));
			break;
		case HARDLINK:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_hardlink(e, t->data);
			break;
		}
		archive_entry_set_size(e, (la_int64_t)size);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (t->type == AE_IFREG && t->data) {
			assert_int_equal(archive_write_data(a, t->data, size), (la_ssize_t)size);
		} else if (t->type == AE_IFREG) {
			for (size_t done = 0; done < size;) {
				size_t k =
					size - done < sizeof(zeros) ? size - done : sizeof(zeros);

				assert_int_equal(archive_write_data(a, zeros, k), (la_ssize_t)k);
				done += k;
			}
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Unpacks and expects failure: the message contains want, and out is empty. */
static void expect_refused(struct fixture *f, uint32_t shift, uint64_t max, const char *want)
{
	struct kiva_error err = {0};
	int r = image_unpack(f->tarball, f->out, shift, max, &err);

	if (r >= 0)
		fail_msg("image_unpack succeeded; expected an error mentioning '%s'", want);
	assert_int_equal(err.code, r);
	if (!strstr(err.msg, want))
		fail_msg("error '%s' does not mention '%s'", err.msg, want);
	assert_int_equal(count_entries(f->out), 0);
}

#define BASE_ENTRIES                                                                               \
	{"metadata.yaml", AE_IFREG, meta_yaml, 0, 0, 0}, {"rootfs/", AE_IFDIR, NULL, 0, 0, 0},     \
	{                                                                                          \
		"rootfs/bin/", AE_IFDIR, NULL, 0, 0, 0                                             \
	}

static void test_good_image_all_filters(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {
		{"metadata.yaml", AE_IFREG, meta_yaml, 0, 0, 0},
		{"./rootfs/", AE_IFDIR, NULL, 0, 0, 0},
		{"rootfs/bin/", AE_IFDIR, NULL, 0, 0, 0},
		{"rootfs/bin/busybox", AE_IFREG, "#!fake busybox\n", 0, 0, 0755},
		{"rootfs/bin/sh", AE_IFLNK, "busybox", 0, 0, 0},
		{"rootfs/usr/bin/env", AE_IFLNK, "/bin/busybox", 0, 0, 0},
		{"rootfs/bin/ash", HARDLINK, "rootfs/bin/busybox", 0, 0, 0},
		{"rootfs/usr/bin/passwd", AE_IFREG, "suid\n", 0, 0, 04755},
		{"rootfs/home/user/", AE_IFDIR, NULL, 0, 1000, 0},
		{"rootfs/home/user/.profile", AE_IFREG, "PS1=x\n", 0, 1000, 0},
		{"templates/", AE_IFDIR, NULL, 0, 0, 0},
		{"templates/hostname.tpl", AE_IFREG, "{{ container.name }}\n", 0, 0, 0},
	};
	static const struct {
		int code;
		const char *name;
	} filters[] = {
		{ARCHIVE_FILTER_NONE, "none"},	 {ARCHIVE_FILTER_GZIP, "gzip"},
		{ARCHIVE_FILTER_XZ, "xz"},	 {ARCHIVE_FILTER_ZSTD, "zstd"},
		{ARCHIVE_FILTER_BZIP2, "bzip2"},
	};
	bool root = geteuid() == 0;

	for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
		uint32_t shift = i % 2 ? SHIFT : 0;
		cleanup_free char *busybox = strf("%s/rootfs/bin/busybox", f->out);
		cleanup_free char *ash = strf("%s/rootfs/bin/ash", f->out);
		cleanup_free char *sh = strf("%s/rootfs/bin/sh", f->out);
		cleanup_free char *passwd = strf("%s/rootfs/usr/bin/passwd", f->out);
		cleanup_free char *profile = strf("%s/rootfs/home/user/.profile", f->out);
		struct kiva_error err = {0};
		struct image_meta meta = {0};
		struct stat st, st2;
		char target[64] = {0};

		build(f->tarball, filters[i].code, ents, ARRAY_SIZE(ents));
		if (image_unpack(f->tarball, f->out, shift, 16 * MIB, &err) < 0)
			fail_msg("%s: %s", filters[i].name, err.msg);
		assert_int_equal(image_meta_read(f->out, &meta, &err), 0);
		assert_string_equal(meta.release, "1.35.0");
		image_meta_done(&meta);

		assert_int_equal(lstat(busybox, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0755);
		assert_int_equal(lstat(ash, &st2), 0);
		assert_int_equal(st.st_ino, st2.st_ino); /* a real hard link */
		assert_int_equal(readlink(sh, target, sizeof(target) - 1), 7);
		assert_string_equal(target, "busybox");
		if (root) {
			assert_int_equal(st.st_uid, shift);
			assert_int_equal(lstat(sh, &st), 0);
			assert_int_equal(st.st_uid, shift);
			assert_int_equal(lstat(profile, &st), 0);
			assert_int_equal(st.st_uid, shift + 1000);
			assert_int_equal(st.st_gid, shift + 1000);
			assert_int_equal(lstat(passwd, &st), 0);
			assert_int_equal(st.st_mode & 07777, 04755); /* setuid survives the shift */
		}
		/* Empty out for the next round. */
		assert_int_equal(rm_rf(f->out), 0);
		assert_int_equal(mkdir(f->out, 0755), 0);
	}
}

static void test_capability_xattr_shifted(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *ping = strf("%s/rootfs/bin/ping", f->out);
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	/* VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW (13) */
	const uint32_t v2[5] = {htole32(0x02000001), htole32(1u << 13), 0, 0, 0};
	uint32_t got[6] = {0};
	struct kiva_error err = {0};
	ssize_t n;

	if (geteuid() != 0)
		SKIP_TEST("writing security.capability needs root");
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, f->tarball), ARCHIVE_OK);
	const char *paths[] = {"metadata.yaml", "rootfs/", "rootfs/bin/", "rootfs/bin/ping"};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		bool file = i == 0 || i == 3;
		const char *data = i == 0 ? meta_yaml : "ping";

		e = archive_entry_new();
		archive_entry_set_pathname(e, paths[i]);
		archive_entry_set_filetype(e, file ? AE_IFREG : AE_IFDIR);
		archive_entry_set_perm(e, 0755);
		archive_entry_set_size(e, file ? (la_int64_t)strlen(data) : 0);
		if (i == 3) {
			archive_entry_xattr_add_entry(e, "security.capability", v2, sizeof(v2));
			archive_entry_xattr_add_entry(e, "trusted.evil", "x", 1);
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (file)
			assert_int_equal(archive_write_data(a, data, strlen(data)),
					 (la_ssize_t)strlen(data));
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);

	if (image_unpack(f->tarball, f->out, SHIFT, 16 * MIB, &err) < 0)
		fail_msg("%s", err.msg);
	n = lgetxattr(ping, "security.capability", got, sizeof(got));
	assert_int_equal(n, 24); /* VFS_CAP_REVISION_3 with a rootid */
	assert_int_equal(le32toh(got[0]), 0x03000001);
	assert_int_equal(le32toh(got[1]), 1u << 13);
	assert_int_equal(le32toh(got[5]), SHIFT);
	assert_true(lgetxattr(ping, "trusted.evil", got, sizeof(got)) < 0);
}

static void test_absolute_path(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES, {"/etc/kiva-evil", AE_IFREG, "x", 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_GZIP, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "'/etc/kiva-evil': absolute path");
	assert_int_equal(access("/etc/kiva-evil", F_OK), -1);
}

static void test_dotdot_escape(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES,
				    {"rootfs/../../kiva-escape", AE_IFREG, "x", 0, 0, 0}};
	cleanup_free char *escaped = strf("%s/../kiva-escape", f->out);

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "'..' path component");
	assert_int_equal(access(escaped, F_OK), -1);
}

static void test_symlink_escape(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *victim_dir = strf("%s/victim", f->tmp);
	cleanup_free char *victim = strf("%s/victim/passwd", f->tmp);
	const struct tent ents[] = {
		BASE_ENTRIES,
		{"rootfs/evil", AE_IFLNK, victim_dir, 0, 0, 0},
		{"rootfs/evil/passwd", AE_IFREG, "owned\n", 0, 0, 0},
	};

	assert_int_equal(mkdir(victim_dir, 0755), 0);
	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "goes through the symlink 'rootfs/evil'");
	assert_int_equal(access(victim, F_OK), -1);
}

static void test_hardlink_escapes(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *outside = strf("%s/outside", f->tmp);
	static const struct {
		const char *target;
		const char *want;
	} cases[] = {
		{"/etc/passwd", "hard link target '/etc/passwd': absolute path"},
		{"../outside", "hard link target '../outside': '..' path component"},
		{"rootfs/evil/passwd", "goes through the symlink 'rootfs/evil'"},
		{"rootfs/never-seen", "is not a regular file earlier in the archive"},
		{"rootfs/bin", "is not a regular file earlier in the archive"},
	};

	assert_int_equal(write_file_atomic(outside, "secret", 6, 0600), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct tent ents[] = {
			BASE_ENTRIES,
			{"rootfs/evil", AE_IFLNK, "/etc", 0, 0, 0},
			{i == 2 ? cases[i].target : "rootfs/link", HARDLINK, cases[i].target, 0, 0,
			 0},
		};
		const struct tent ents_direct[] = {
			BASE_ENTRIES,
			{"rootfs/link", HARDLINK, cases[i].target, 0, 0, 0},
		};

		if (i == 2) /* the link's own path goes through the symlink */
			build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
		else
			build(f->tarball, ARCHIVE_FILTER_NONE, ents_direct,
			      ARRAY_SIZE(ents_direct));
		expect_refused(f, 0, 16 * MIB, cases[i].want);
	}

	/* Hard link whose target path goes through a symlink to the host. */
	const struct tent via_symlink[] = {
		BASE_ENTRIES,
		{"rootfs/evil", AE_IFLNK, "/etc", 0, 0, 0},
		{"rootfs/link", HARDLINK, "rootfs/evil/passwd", 0, 0, 0},
	};
	build(f->tarball, ARCHIVE_FILTER_NONE, via_symlink, ARRAY_SIZE(via_symlink));
	expect_refused(f, 0, 16 * MIB, "is not a regular file earlier in the archive");
}

static void test_device_node_with_shift(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES,
				    {"rootfs/dev/", AE_IFDIR, NULL, 0, 0, 0},
				    {"rootfs/dev/null", AE_IFCHR, NULL, 0, 0, 0}};
	cleanup_free char *node = strf("%s/rootfs/dev/null", f->out);
	struct kiva_error err = {0};
	struct stat st;

	build(f->tarball, ARCHIVE_FILTER_GZIP, ents, ARRAY_SIZE(ents));
	expect_refused(
		f, SHIFT, 16 * MIB,
		"'rootfs/dev/null': device nodes are not allowed in unprivileged containers");

	/* Privileged (no shift) images may carry device nodes. */
	if (geteuid() != 0)
		return;
	if (image_unpack(f->tarball, f->out, 0, 16 * MIB, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(lstat(node, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
}

static void test_duplicate_entry(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES,
				    {"rootfs/bin/x", AE_IFREG, "one", 0, 0, 0},
				    {"./rootfs//bin/x", AE_IFREG, "two", 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "'./rootfs//bin/x': duplicate entry");
}

static void test_zip_bomb(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES,
				    {"rootfs/a", AE_IFREG, NULL, 3 * MIB, 0, 0},
				    {"rootfs/b", AE_IFREG, NULL, 3 * MIB, 0, 0}};
	struct stat st;

	build(f->tarball, ARCHIVE_FILTER_XZ, ents, ARRAY_SIZE(ents));
	assert_int_equal(stat(f->tarball, &st), 0);
	assert_true(st.st_size < 64 * 1024); /* 6 MiB of zeros compress to almost nothing */
	expect_refused(f, 0, 4 * MIB, "archive expands past 4194304 bytes (at 'rootfs/b')");
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *big = malloc(200 * 1024 + 1);
	const struct tent ents[] = {BASE_ENTRIES, {"rootfs/big", AE_IFREG, NULL, 0, 0, 0}};
	struct tent ents2[ARRAY_SIZE(ents)];
	struct stat st;

	assert_non_null(big);
	for (size_t i = 0; i < 200 * 1024; i++)
		big[i] = (char)('a' + (i * 7919) % 26);
	big[200 * 1024] = 0;
	memcpy(ents2, ents, sizeof(ents));
	ents2[ARRAY_SIZE(ents) - 1].data = big;

	static const int filters[] = {ARCHIVE_FILTER_NONE, ARCHIVE_FILTER_GZIP};
	for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
		build(f->tarball, filters[i], ents2, ARRAY_SIZE(ents2));
		assert_int_equal(stat(f->tarball, &st), 0);
		assert_int_equal(truncate(f->tarball, st.st_size / 2), 0);
		expect_refused(f, 0, 16 * MIB, "Failed to read image");
	}
}

static void test_not_a_tarball(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "architecture: x86_64\nthis is just a text file, not a tar\n";

	assert_int_equal(write_file_atomic(f->tarball, text, sizeof(text) - 1, 0644), 0);
	expect_refused(f, 0, 16 * MIB, "Unrecognized archive format");

	assert_int_equal(write_file_atomic(f->tarball, "", 0, 0644), 0);
	expect_refused(f, 0, 16 * MIB, "Failed to read image");

	struct kiva_error err = {0};
	assert_true(image_unpack("/nonexistent/kiva.tar.gz", f->out, 0, MIB, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/kiva.tar.gz"));
}

static void test_no_metadata(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {{"rootfs/", AE_IFDIR, NULL, 0, 0, 0},
				    {"rootfs/bin/busybox", AE_IFREG, "x", 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_GZIP, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "not an LXD image: no metadata.yaml");
}

static void test_split_image(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {{"metadata.yaml", AE_IFREG, meta_yaml, 0, 0, 0},
				    {"templates/", AE_IFDIR, NULL, 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_XZ, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "split LXD image");
}

static void test_bad_metadata(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {{"metadata.yaml", AE_IFREG, "creation_date: 1\n", 0, 0, 0},
				    {"rootfs/", AE_IFDIR, NULL, 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "metadata.yaml has no architecture");
}

static void test_metadata_symlink(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {{"metadata.yaml", AE_IFLNK, "/etc/shadow", 0, 0, 0},
				    {"rootfs/", AE_IFDIR, NULL, 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "metadata.yaml must be a regular file");
}

static void test_rootfs_symlink(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {{"metadata.yaml", AE_IFREG, meta_yaml, 0, 0, 0},
				    {"rootfs", AE_IFLNK, "/", 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "'rootfs': must be a directory");
}

static void test_unexpected_top_level(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES, {"backup/index.yaml", AE_IFREG, "x", 0, 0, 0}};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, 0, 16 * MIB, "'backup/index.yaml': not part of an LXD image");
}

static void test_owner_outside_range(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES, {"rootfs/x", AE_IFREG, "x", 0, 70000, 0}};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	expect_refused(f, SHIFT, 16 * MIB, "'rootfs/x': owner 70000:70000 is outside");
}

static void test_target_not_empty(void **state)
{
	struct fixture *f = *state;
	const struct tent ents[] = {BASE_ENTRIES};
	cleanup_free char *keep = strf("%s/keep", f->out);
	struct kiva_error err = {0};

	build(f->tarball, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	assert_int_equal(write_file_atomic(keep, "x", 1, 0644), 0);
	assert_int_equal(image_unpack(f->tarball, f->out, 0, 16 * MIB, &err), -ENOTEMPTY);
	assert_non_null(strstr(err.msg, "is not empty"));
	assert_int_equal(access(keep, F_OK), 0); /* nothing of the caller's is removed */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_good_image_all_filters),
		T(test_capability_xattr_shifted),
		T(test_absolute_path),
		T(test_dotdot_escape),
		T(test_symlink_escape),
		T(test_hardlink_escapes),
		T(test_device_node_with_shift),
		T(test_duplicate_entry),
		T(test_zip_bomb),
		T(test_truncated),
		T(test_not_a_tarball),
		T(test_no_metadata),
		T(test_split_image),
		T(test_bad_metadata),
		T(test_metadata_symlink),
		T(test_rootfs_symlink),
		T(test_unexpected_top_level),
		T(test_owner_outside_range),
		T(test_target_not_empty),
	};

	return cmocka_run_group_tests_name("image-archive", tests, NULL, NULL);
}
