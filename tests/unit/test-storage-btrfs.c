/* Unit tests of the storage module: volume path validation, LXD's loop size rule, mountinfo
 * parsing and the btrfs magic check (pure), the dir backend in a temp dir, and, as root on a host
 * with btrfs, a real 300 MiB loop pool (create, clone, independence, nested delete, reopen,
 * unmount). Timings of the btrfs operations are printed as TAP comments. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "storage-internal.h"
#include "storage.h"

#define GIB (UINT64_C(1) << 30)
#define MIB (UINT64_C(1) << 20)

/* cmocka 1.1.5 reports skip() as "not ok N # SKIP", which meson's TAP parser counts as a failure:
 * print the reason as a TAP comment and return instead. */
#define SKIP_TEST(why)                                                                             \
	do {                                                                                       \
		printf("# SKIP %s: %s\n", __func__, why);                                          \
		return;                                                                            \
	} while (0)

static void test_rel_path_check(void **state)
{
	static const struct {
		const char *rel;
		const char *err_part; /* NULL: valid */
	} cases[] = {
		{"images/0123abcd", NULL},
		{"containers/c1", NULL},
		{"a", NULL},
		{"a/b/c", NULL},
		{"..hidden/x", NULL},
		{"a/.b", NULL},
		{"", "empty"},
		{"/images/x", "must be relative"},
		{"images//x", "empty path component"},
		{"images/x/", "empty path component"},
		{"../x", "'.' and '..' are not allowed"},
		{"images/../../etc", "'.' and '..' are not allowed"},
		{"images/..", "'.' and '..' are not allowed"},
		{"./images", "'.' and '..' are not allowed"},
		{"images/./x", "'.' and '..' are not allowed"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct kiva_error err = {0};
		int r = storage_rel_path_check(cases[i].rel, &err);

		if (!cases[i].err_part) {
			if (r < 0)
				fail_msg("'%s' refused: %s", cases[i].rel, err.msg);
			continue;
		}
		if (r != -EINVAL)
			fail_msg("'%s' accepted", cases[i].rel);
		if (!strstr(err.msg, cases[i].err_part))
			fail_msg("'%s': '%s' lacks '%s'", cases[i].rel, err.msg, cases[i].err_part);
	}
	assert_int_equal(storage_rel_path_check(NULL, NULL), -EINVAL);
}

static void test_loop_size_rule(void **state)
{
	static const struct {
		uint64_t free_bytes, want;
	} cases[] = {
		{0, 5 * GIB},		{10 * GIB, 5 * GIB},	{25 * GIB, 5 * GIB},
		{50 * GIB, 10 * GIB},	{100 * GIB, 20 * GIB},	{150 * GIB, 30 * GIB},
		{4000 * GIB, 30 * GIB}, {UINT64_MAX, 30 * GIB},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_int_equal(storage_loop_size_default(cases[i].free_bytes), cases[i].want);
}

static const char mountinfo[] =
	"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
	"27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
	"90 27 0:50 / /var/lib/kiva/storage-pools/default rw,noatime shared:40 master:2 - btrfs "
	"/dev/loop3 rw,user_subvol_rm_allowed,space_cache=v2,subvolid=5,subvol=/\n"
	"91 27 0:51 / /mnt/with\\040space rw - tmpfs my\\040tmpfs rw\n"
	"92 27 0:52 / /stacked rw - tmpfs first rw\n"
	"93 92 0:53 / /stacked rw - ext4 /dev/second rw\n"
	"garbage line without separator\n"
	"94 27 0:54 / /no-trailing-newline rw - xfs /dev/sdz rw";

static void test_mountinfo_find(void **state)
{
	cleanup_free char *t1 = NULL, *s1 = NULL, *t2 = NULL, *s2 = NULL, *t3 = NULL, *s4 = NULL;

	assert_int_equal(
		storage_mountinfo_find(mountinfo, "/var/lib/kiva/storage-pools/default", &t1, &s1),
		0);
	assert_string_equal(t1, "btrfs");
	assert_string_equal(s1, "/dev/loop3");
	assert_int_equal(storage_mountinfo_find(mountinfo, "/mnt/with space", &t2, &s2), 0);
	assert_string_equal(t2, "tmpfs");
	assert_string_equal(s2, "my tmpfs");
	assert_int_equal(storage_mountinfo_find(mountinfo, "/stacked", &t3, NULL), 0);
	assert_string_equal(t3, "ext4"); /* the mount on top wins */
	assert_int_equal(storage_mountinfo_find(mountinfo, "/no-trailing-newline", NULL, &s4), 0);
	assert_string_equal(s4, "/dev/sdz");
	assert_int_equal(storage_mountinfo_find(mountinfo, "/var/lib/kiva", NULL, NULL), -ENOENT);
	assert_int_equal(storage_mountinfo_find(mountinfo, "/mnt/with\\040space", NULL, NULL),
			 -ENOENT);
	assert_int_equal(storage_mountinfo_find("", "/", NULL, NULL), -ENOENT);
}

static void test_btrfs_magic(void **state)
{
	static char buf[STORAGE_BTRFS_MAGIC_OFFSET + 8];

	memset(buf, 0, sizeof(buf));
	assert_false(storage_btrfs_magic_ok(buf, sizeof(buf)));
	memcpy(buf + STORAGE_BTRFS_MAGIC_OFFSET, "_BHRfS_M", 8);
	assert_true(storage_btrfs_magic_ok(buf, sizeof(buf)));
	assert_false(storage_btrfs_magic_ok(buf, sizeof(buf) - 1));
}

/* Per-test state dir, removed by the teardown even when the test fails (unmounting first). */
struct fixture {
	char *state_dir;
	struct storage_pool *pool;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->state_dir = strdup("/var/tmp/kiva-test-storage-XXXXXX");
	if (!f->state_dir || !mkdtemp(f->state_dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *mnt = strf("%s/storage-pools/default", f->state_dir);

	if (f->pool) {
		(void)storage_pool_unmount(f->pool);
		storage_pool_free(f->pool);
	}
	if (mnt)
		(void)umount2(mnt, MNT_DETACH); /* a pool the test lost track of */
	(void)rm_rf(f->state_dir);
	free(f->state_dir);
	free(f);
	return 0;
}

static char *vol_file(struct storage_pool *pool, const char *rel, const char *name)
{
	cleanup_free char *vol = storage_volume_path(pool, rel);

	assert_non_null(vol);
	return strf("%s/%s", vol, name);
}

static void write_vol_file(struct storage_pool *pool, const char *rel, const char *name,
			   const char *content)
{
	cleanup_free char *p = vol_file(pool, rel, name);

	assert_non_null(p);
	assert_int_equal(write_file_atomic(p, content, strlen(content), 0644), 0);
}

static void assert_vol_file(struct storage_pool *pool, const char *rel, const char *name,
			    const char *want)
{
	cleanup_free char *p = vol_file(pool, rel, name);
	cleanup_free char *got = NULL;

	assert_non_null(p);
	if (!want) {
		assert_int_equal(access(p, F_OK), -1);
		return;
	}
	assert_int_equal(read_file(p, 4096, &got, NULL), 0);
	assert_string_equal(got, want);
}

/* The volume operations every backend must get right. */
static void exercise_volumes(struct storage_pool *pool)
{
	struct kiva_error err = {0};

	assert_int_equal(storage_volume_create(pool, "images/base", &err), 0);
	assert_true(storage_volume_exists(pool, "images/base"));
	write_vol_file(pool, "images/base", "hello", "from base");

	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_create(pool, "images/base", &err), -EEXIST);
	assert_string_equal(err.msg, "Storage volume 'images/base' already exists");
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_create(pool, "../escape", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Invalid volume path '../escape'"));
	assert_null(storage_volume_path(pool, "/etc"));
	assert_false(storage_volume_exists(pool, "../.."));

	assert_int_equal(storage_volume_clone(pool, "images/base", "containers/c1", &err), 0);
	assert_vol_file(pool, "containers/c1", "hello", "from base");
	/* Independent copies: writes in one do not show in the other. */
	write_vol_file(pool, "containers/c1", "hello", "changed in c1");
	write_vol_file(pool, "containers/c1", "new", "only c1");
	assert_vol_file(pool, "images/base", "hello", "from base");
	assert_vol_file(pool, "images/base", "new", NULL);

	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_clone(pool, "images/missing", "containers/c2", &err),
			 -ENOENT);
	assert_string_equal(err.msg, "Storage volume 'images/missing' does not exist");
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_clone(pool, "images/base", "containers/c1", &err), -EEXIST);
	assert_string_equal(err.msg, "Storage volume 'containers/c1' already exists");

	assert_int_equal(storage_volume_delete(pool, "containers/c1", &err), 0);
	assert_false(storage_volume_exists(pool, "containers/c1"));
	assert_vol_file(pool, "images/base", "hello", "from base");
	assert_int_equal(storage_volume_delete(pool, "containers/c1", &err), 0); /* missing: ok */
	assert_int_equal(storage_volume_delete(pool, "images/base", &err), 0);
	assert_false(storage_volume_exists(pool, "images/base"));
}

static void test_dir_backend(void **state)
{
	struct fixture *f = *state;
	struct kiva_error err = {0};

	if (storage_pool_open(f->state_dir, "dir", 0, &f->pool, &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(f->pool->ops->name, "dir");
	assert_null(f->pool->loop_dev);
	exercise_volumes(f->pool);

	/* "auto" sticks with an existing dir pool instead of switching to btrfs. */
	assert_int_equal(storage_volume_create(f->pool, "images/keep", &err), 0);
	storage_pool_free(TAKE_PTR(f->pool));
	assert_int_equal(storage_pool_open(f->state_dir, "auto", 0, &f->pool, &err), 0);
	assert_string_equal(f->pool->ops->name, "dir");
	assert_true(storage_volume_exists(f->pool, "images/keep"));
}

static void test_bad_driver(void **state)
{
	struct fixture *f = *state;
	struct kiva_error err = {0};

	assert_int_equal(storage_pool_open(f->state_dir, "zfs", 0, &f->pool, &err), -EINVAL);
	assert_string_equal(err.msg, "Unknown storage driver 'zfs' (expected btrfs, dir or auto)");
	assert_null(f->pool);
	assert_int_equal(storage_pool_open("relative/dir", "dir", 0, &f->pool, &err), -EINVAL);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A tree like a busybox rootfs: ~300 entries. */
static void fill_rootfs(struct storage_pool *pool, const char *rel)
{
	cleanup_free char *vol = storage_volume_path(pool, rel);

	assert_non_null(vol);
	for (int d = 0; d < 6; d++) {
		cleanup_free char *dir = strf("%s/rootfs/d%d", vol, d);

		assert_int_equal(mkdir_p(dir, 0755), 0);
		for (int i = 0; i < 50; i++) {
			cleanup_free char *p = strf("%s/f%d", dir, i);

			assert_int_equal(write_file_atomic(p, "0123456789abcdef", 16, 0644), 0);
		}
	}
}

static void test_btrfs_loop_pool(void **state)
{
	struct fixture *f = *state;
	struct kiva_error err = {0};
	cleanup_free char *img = strf("%s/disks/default.img", f->state_dir);
	cleanup_free char *mnt = strf("%s/storage-pools/default", f->state_dir);
	cleanup_free char *loop_dev = NULL;
	struct stat st;
	double t0, t_open, t_clone = 0, t_delete = 0, t_reopen;

	if (geteuid() != 0 || !storage_btrfs_supported())
		SKIP_TEST("needs root, the btrfs module, /dev/loop-control and mkfs.btrfs");
	if (storage_path_is_btrfs(f->state_dir))
		SKIP_TEST("/var/tmp is on btrfs (a native pool, no loop file)");

	t0 = now_ms();
	if (storage_pool_open(f->state_dir, "btrfs", 300 * MIB, &f->pool, &err) < 0)
		fail_msg("%s", err.msg);
	t_open = now_ms() - t0;
	assert_string_equal(f->pool->ops->name, "btrfs");
	assert_string_equal(f->pool->path, mnt);
	assert_string_equal(f->pool->source, img);
	assert_non_null(f->pool->loop_dev);
	assert_true(storage_path_is_btrfs(mnt));
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(st.st_size, 300 * MIB);
	assert_true((uint64_t)st.st_blocks * 512 < 300 * MIB); /* sparse */

	exercise_volumes(f->pool);

	/* Timing on a busybox-sized tree; the clone must be a snapshot, not a copy. */
	assert_int_equal(storage_volume_create(f->pool, "images/bb", &err), 0);
	fill_rootfs(f->pool, "images/bb");
	sync();
	for (int i = 0; i < 5; i++) {
		cleanup_free char *name = strf("containers/t%d", i);
		double t;

		t = now_ms();
		if (storage_volume_clone(f->pool, "images/bb", name, &err) < 0)
			fail_msg("%s", err.msg);
		t_clone += now_ms() - t;
	}
	for (int i = 0; i < 5; i++) {
		cleanup_free char *name = strf("containers/t%d", i);
		double t;

		t = now_ms();
		assert_int_equal(storage_volume_delete(f->pool, name, &err), 0);
		t_delete += now_ms() - t;
		assert_false(storage_volume_exists(f->pool, name));
	}

	/* Nested subvolumes (a volume holding another) are deleted inside out. */
	assert_int_equal(storage_volume_clone(f->pool, "images/bb", "containers/n", &err), 0);
	assert_int_equal(storage_volume_create(f->pool, "containers/n/inner", &err), 0);
	assert_int_equal(storage_volume_create(f->pool, "containers/n/rootfs/d0/deep", &err), 0);
	write_vol_file(f->pool, "containers/n/inner", "x", "y");
	if (storage_volume_delete(f->pool, "containers/n", &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(storage_volume_exists(f->pool, "containers/n"));
	assert_vol_file(f->pool, "images/bb", "rootfs/d0/f0", "0123456789abcdef");

	/* kivad restart while mounted: the mount is reused. */
	loop_dev = strdup(f->pool->loop_dev);
	storage_pool_free(TAKE_PTR(f->pool));
	assert_int_equal(storage_pool_open(f->state_dir, NULL, 0, &f->pool, &err), 0);
	assert_string_equal(f->pool->ops->name, "btrfs");
	assert_string_equal(f->pool->loop_dev, loop_dev);
	assert_true(storage_volume_exists(f->pool, "images/bb"));

	/* Unmount, then reopen: the formatted image is attached again, not reformatted. */
	assert_int_equal(storage_pool_unmount(f->pool), 0);
	storage_pool_free(TAKE_PTR(f->pool));
	assert_false(storage_path_is_btrfs(mnt));
	t0 = now_ms();
	if (storage_pool_open(f->state_dir, "auto", 0, &f->pool, &err) < 0)
		fail_msg("%s", err.msg);
	t_reopen = now_ms() - t0;
	assert_string_equal(f->pool->ops->name, "btrfs");
	assert_vol_file(f->pool, "images/bb", "rootfs/d5/f49", "0123456789abcdef");
	assert_int_equal(storage_volume_delete(f->pool, "images/bb", &err), 0);
	assert_int_equal(storage_pool_unmount(f->pool), 0);
	assert_false(storage_path_is_btrfs(mnt));
	storage_pool_free(TAKE_PTR(f->pool));

	printf("# btrfs loop pool: create+mkfs+mount %.1f ms, reopen (attach+mount) %.1f ms, "
	       "clone %.2f ms avg, delete %.2f ms avg (300-file tree)\n",
	       t_open, t_reopen, t_clone / 5, t_delete / 5);
}

static void test_btrfs_refuses_to_hide_dir_pool(void **state)
{
	struct fixture *f = *state;
	struct kiva_error err = {0};
	cleanup_free char *img = strf("%s/disks/default.img", f->state_dir);

	if (geteuid() != 0 || !storage_btrfs_supported())
		SKIP_TEST("needs root, the btrfs module, /dev/loop-control and mkfs.btrfs");
	if (storage_path_is_btrfs(f->state_dir))
		SKIP_TEST("/var/tmp is on btrfs (a native pool, no loop file)");
	assert_int_equal(storage_pool_open(f->state_dir, "dir", 0, &f->pool, &err), 0);
	assert_int_equal(storage_volume_create(f->pool, "containers/old", &err), 0);
	storage_pool_free(TAKE_PTR(f->pool));

	assert_int_equal(storage_pool_open(f->state_dir, "btrfs", 300 * MIB, &f->pool, &err),
			 -ENOTEMPTY);
	assert_non_null(strstr(err.msg, "refusing to mount the btrfs pool over it"));
	assert_null(f->pool);
	assert_int_equal(access(img, F_OK), -1); /* the new image file was rolled back */
	assert_int_equal(storage_pool_open(f->state_dir, "dir", 0, &f->pool, &err), 0);
	assert_true(storage_volume_exists(f->pool, "containers/old"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rel_path_check),
		cmocka_unit_test(test_loop_size_rule),
		cmocka_unit_test(test_mountinfo_find),
		cmocka_unit_test(test_btrfs_magic),
		cmocka_unit_test_setup_teardown(test_dir_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_driver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_loop_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_refuses_to_hide_dir_pool, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
