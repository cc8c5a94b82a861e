/* Unit tests of the storage module: volume path validation, LXD's loop size rule, mountinfo
 * parsing and the btrfs magic check (pure), the dir backend in a temp dir, and, as root on a host
 * with btrfs, a real 300 MiB loop pool (create, clone, independence, nested delete, reopen,
 * unmount; snapshots, rename, usage, limits.disk with quotas). Both backends run the same
 * snapshot/rename/usage cases. Timings of the btrfs operations are printed as TAP comments. */
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* errno of creating a file in the volume, 0 when it could be written. */
static int try_write(struct storage_pool *pool, const char *rel, const char *name)
{
	cleanup_free char *p = vol_file(pool, rel, name);
	int fd;

	assert_non_null(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	assert_int_equal(write(fd, "w", 1), 1);
	close(fd);
	return 0;
}

/* Writes len bytes to rel/name with write(2) and optionally fsync: returns 0, or the errno of the
 * failing open/write/fsync and the bytes written before it in *ret_written. 1 MiB chunks. */
static int write_chunks(struct storage_pool *pool, const char *rel, const char *name, uint64_t len,
			bool do_fsync, uint64_t *ret_written)
{
	static char chunk[1 << 20];
	cleanup_free char *p = vol_file(pool, rel, name);
	uint64_t done = 0;
	int fd, err = 0;

	assert_non_null(p);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)(i * 7 + 13);
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) { /* EDQUOT too: creating a file reserves metadata space */
		if (ret_written)
			*ret_written = 0;
		return errno;
	}
	while (done < len) {
		ssize_t n = write(fd, chunk, sizeof(chunk));

		if (n < 0) {
			err = errno;
			break;
		}
		if (do_fsync && fsync(fd) < 0) {
			err = errno;
			break;
		}
		done += (uint64_t)n;
	}
	if (close(fd) < 0 && !err)
		err = errno;
	if (ret_written)
		*ret_written = done;
	return err;
}

static void assert_rel_missing(struct storage_pool *pool, const char *rel)
{
	cleanup_free char *p = storage_volume_path(pool, rel);
	struct stat st;

	assert_non_null(p);
	if (lstat(p, &st) == 0)
		fail_msg("'%s' was left behind", rel);
}

/* Snapshots, rename, delete of snapshots, usage by walk: what every backend must get right.
 * enforces_ro: the backend makes read-only snapshots read-only (btrfs; dir does not). */
static void exercise_snapshots(struct storage_pool *pool, bool enforces_ro)
{
	struct kiva_error err = {0};
	uint64_t rfer = 0, excl = 0, written = 0;

	assert_int_equal(storage_volume_create(pool, "containers/c1", &err), 0);
	write_vol_file(pool, "containers/c1", "f", "v1");

	/* Read-only snapshot in a directory that does not exist yet. */
	if (storage_volume_snapshot(pool, "containers/c1", "snapshots/c1/s1", true, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(storage_volume_exists(pool, "snapshots/c1/s1"));
	assert_vol_file(pool, "snapshots/c1/s1", "f", "v1");
	/* Point in time: later changes of the source do not show in it. */
	write_vol_file(pool, "containers/c1", "f", "v2");
	write_vol_file(pool, "containers/c1", "after", "x");
	assert_vol_file(pool, "snapshots/c1/s1", "f", "v1");
	assert_vol_file(pool, "snapshots/c1/s1", "after", NULL);
	if (enforces_ro) {
		assert_int_equal(try_write(pool, "snapshots/c1/s1", "new"), EROFS);
		assert_int_equal(try_write(pool, "snapshots/c1/s1", "f"), EROFS);
		assert_vol_file(pool, "snapshots/c1/s1", "f", "v1");
	}
	/* Data still in the page cache (no fsync) is in the snapshot. */
	assert_int_equal(write_chunks(pool, "containers/c1", "unsynced", 2 * MIB, false, NULL), 0);
	assert_int_equal(
		storage_volume_snapshot(pool, "containers/c1", "snapshots/c1/s2", true, &err), 0);
	{
		cleanup_free char *p = vol_file(pool, "snapshots/c1/s2", "unsynced");
		struct stat st;

		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_size, 2 * MIB);
	}
	/* A writable snapshot is writable. */
	assert_int_equal(
		storage_volume_snapshot(pool, "containers/c1", "snapshots/c1/rw", false, &err), 0);
	assert_int_equal(try_write(pool, "snapshots/c1/rw", "new"), 0);

	/* Errors: missing source (nothing made at dst, not even its parent), existing dst. */
	err = (struct kiva_error){0};
	assert_int_equal(
		storage_volume_snapshot(pool, "containers/nope", "snapshots/nope/s1", true, &err),
		-ENOENT);
	assert_string_equal(err.msg, "Storage volume 'containers/nope' does not exist");
	assert_rel_missing(pool, "snapshots/nope");
	err = (struct kiva_error){0};
	assert_int_equal(
		storage_volume_snapshot(pool, "containers/c1", "snapshots/c1/s1", true, &err),
		-EEXIST);
	assert_string_equal(err.msg, "Storage volume 'snapshots/c1/s1' already exists");
	assert_vol_file(pool, "snapshots/c1/s1", "f", "v1");
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_snapshot(pool, "containers/c1", "../x", true, &err),
			 -EINVAL);

	/* Restore/copy: a clone of a read-only snapshot is writable and independent. */
	if (storage_volume_clone(pool, "snapshots/c1/s1", "containers/c2", &err) < 0)
		fail_msg("%s", err.msg);
	assert_vol_file(pool, "containers/c2", "f", "v1");
	assert_int_equal(try_write(pool, "containers/c2", "new"), 0);
	write_vol_file(pool, "containers/c2", "f", "restored");
	assert_vol_file(pool, "snapshots/c1/s1", "f", "v1");

	/* Rename: a volume, a read-only snapshot in its directory and to another (new) one. */
	if (storage_volume_rename(pool, "containers/c2", "containers/c3", &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(storage_volume_exists(pool, "containers/c2"));
	assert_vol_file(pool, "containers/c3", "f", "restored");
	if (storage_volume_rename(pool, "snapshots/c1/s1", "snapshots/c1/s1b", &err) < 0)
		fail_msg("%s", err.msg);
	if (storage_volume_rename(pool, "snapshots/c1/s1b", "snapshots/moved/deep/s1", &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(storage_volume_exists(pool, "snapshots/c1/s1b"));
	assert_vol_file(pool, "snapshots/moved/deep/s1", "f", "v1");
	if (enforces_ro)
		assert_int_equal(try_write(pool, "snapshots/moved/deep/s1", "new"), EROFS);
	assert_int_equal(
		storage_volume_rename(pool, "snapshots/moved/deep/s1", "snapshots/c1/s1", &err), 0);
	/* ...dst exists: both stay as they were. */
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_rename(pool, "snapshots/c1/s1", "snapshots/c1/s2", &err),
			 -EEXIST);
	assert_string_equal(err.msg, "Storage volume 'snapshots/c1/s2' already exists");
	assert_vol_file(pool, "snapshots/c1/s1", "f", "v1");
	assert_vol_file(pool, "snapshots/c1/s2", "f", "v2");
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_rename(pool, "containers/c3", "containers/c1", &err),
			 -EEXIST);
	assert_vol_file(pool, "containers/c1", "f", "v2");
	/* ...missing source, into itself. */
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_rename(pool, "containers/gone", "containers/c9", &err),
			 -ENOENT);
	assert_string_equal(err.msg, "Storage volume 'containers/gone' does not exist");
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_rename(pool, "containers/c3", "containers/c3/in/x", &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "cannot be moved into itself"));
	assert_rel_missing(pool, "containers/c3/in");
	/* ...a directory of snapshots (instance rename). */
	if (storage_volume_rename(pool, "snapshots/c1", "snapshots/c1-renamed", &err) < 0)
		fail_msg("%s", err.msg);
	assert_vol_file(pool, "snapshots/c1-renamed/s2", "f", "v2");
	assert_false(storage_volume_exists(pool, "snapshots/c1"));

	/* Usage by walk (no quotas here): the 2 MiB file, then 4 MiB more after a synced write. */
	if (storage_volume_usage(pool, "containers/c1", &rfer, &excl, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(rfer >= 2 * MIB && rfer < 3 * MIB);
	assert_true(excl == rfer);
	assert_int_equal(write_chunks(pool, "containers/c1", "more", 4 * MIB, true, &written), 0);
	assert_int_equal(storage_volume_usage(pool, "containers/c1", &rfer, NULL, &err), 0);
	assert_true(rfer >= 6 * MIB && rfer < 7 * MIB);
	/* Hard links count once, symlinks are not followed. */
	{
		cleanup_free char *a = vol_file(pool, "containers/c1", "more");
		cleanup_free char *b = vol_file(pool, "containers/c1", "more-link");
		cleanup_free char *c = vol_file(pool, "containers/c1", "more-sym");
		uint64_t again = 0;

		assert_int_equal(link(a, b), 0);
		assert_int_equal(symlink(a, c), 0);
		assert_int_equal(storage_volume_usage(pool, "containers/c1", &again, NULL, &err),
				 0);
		assert_true(again == rfer);
	}
	/* A directory of snapshots has a usage too (walked). */
	assert_int_equal(storage_volume_usage(pool, "snapshots/c1-renamed", &rfer, NULL, &err), 0);
	assert_true(rfer >= 2 * MIB);
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_usage(pool, "containers/gone", &rfer, NULL, &err), -ENOENT);
	assert_string_equal(err.msg, "Storage volume 'containers/gone' does not exist");

	/* Delete one read-only snapshot, then a directory holding several. */
	if (storage_volume_delete(pool, "snapshots/c1-renamed/s1", &err) < 0)
		fail_msg("%s", err.msg);
	assert_false(storage_volume_exists(pool, "snapshots/c1-renamed/s1"));
	assert_int_equal(storage_volume_snapshot(pool, "containers/c1", "snapshots/c1-renamed/s3",
						 true, &err),
			 0);
	if (storage_volume_delete(pool, "snapshots/c1-renamed", &err) < 0)
		fail_msg("%s", err.msg);
	assert_rel_missing(pool, "snapshots/c1-renamed");
	assert_vol_file(pool, "containers/c1", "f", "v2");

	assert_int_equal(storage_volume_delete(pool, "containers/c1", &err), 0);
	assert_int_equal(storage_volume_delete(pool, "containers/c3", &err), 0);
	assert_int_equal(storage_volume_delete(pool, "snapshots", &err), 0);
	assert_rel_missing(pool, "snapshots");
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
	exercise_snapshots(f->pool, false);

	/* limits.disk needs btrfs quotas. */
	assert_int_equal(storage_volume_create(f->pool, "containers/lim", &err), 0);
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_set_limit(f->pool, "containers/lim", 10 * MIB, &err),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err.msg, "containers/lim"));
	assert_non_null(strstr(err.msg, "limits.disk needs the btrfs storage driver"));
	err = (struct kiva_error){0};
	assert_int_equal(storage_volume_set_limit(f->pool, "containers/none", 10 * MIB, &err),
			 -ENOENT);
	assert_int_equal(storage_volume_delete(f->pool, "containers/lim", &err), 0);

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

/* True when the pool's file system has quotas enabled (/sys/fs/btrfs/<fsid>/qgroups exists). */
static bool quotas_on(struct storage_pool *pool)
{
	struct btrfs_ioctl_fs_info_args info = {0};
	cleanup_close int fd = open(pool->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cleanup_free char *sys = NULL;
	char uuid[37];
	const unsigned char *u = info.fsid;

	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, BTRFS_IOC_FS_INFO, &info), 0);
	snprintf(uuid, sizeof(uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		 u[15]);
	sys = strf("/sys/fs/btrfs/%s/qgroups", uuid);
	assert_non_null(sys);
	return access(sys, F_OK) == 0;
}

static void set_subvol_ro(struct storage_pool *pool, const char *rel)
{
	cleanup_free char *p = storage_volume_path(pool, rel);
	cleanup_close int fd = -EBADF;
	uint64_t flags = BTRFS_SUBVOL_RDONLY;

	assert_non_null(p);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &flags), 0);
}

static bool is_subvol(struct storage_pool *pool, const char *rel)
{
	cleanup_free char *p = storage_volume_path(pool, rel);
	struct stat st;

	return p && stat(p, &st) == 0 && st.st_ino == 256;
}

static void test_btrfs_snapshots(void **state)
{
	struct fixture *f = *state;
	struct kiva_error err = {0};
	uint64_t rfer = 0, excl = 0;
	double t, t_snap = 0, t_rename = 0, t_rename_ro = 0, t_walk;

	if (geteuid() != 0 || !storage_btrfs_supported())
		SKIP_TEST("needs root, the btrfs module, /dev/loop-control and mkfs.btrfs");
	if (storage_path_is_btrfs(f->state_dir))
		SKIP_TEST("/var/tmp is on btrfs (a native pool, no loop file)");
	if (storage_pool_open(f->state_dir, "btrfs", 300 * MIB, &f->pool, &err) < 0)
		fail_msg("%s", err.msg);

	exercise_snapshots(f->pool, true);
	assert_false(quotas_on(f->pool)); /* nothing above needed them */

	/* Timings on a busybox-sized tree. */
	assert_int_equal(storage_volume_create(f->pool, "containers/bb", &err), 0);
	fill_rootfs(f->pool, "containers/bb");
	sync();
	for (int i = 0; i < 5; i++) {
		cleanup_free char *name = strf("snapshots/bb/s%d", i);

		t = now_ms();
		if (storage_volume_snapshot(f->pool, "containers/bb", name, true, &err) < 0)
			fail_msg("%s", err.msg);
		t_snap += now_ms() - t;
		assert_true(is_subvol(f->pool, name));
	}
	for (int i = 0; i < 5; i++) {
		cleanup_free char *from = strf("snapshots/bb/s%d", i);
		cleanup_free char *to = strf("snapshots/bb/r%d", i);
		cleanup_free char *away = strf("snapshots/bb2/r%d", i);

		t = now_ms();
		assert_int_equal(storage_volume_rename(f->pool, from, to, &err), 0);
		t_rename += now_ms() - t;
		t = now_ms();
		if (storage_volume_rename(f->pool, to, away, &err) < 0)
			fail_msg("%s", err.msg);
		t_rename_ro += now_ms() - t;
		assert_int_equal(try_write(f->pool, away, "x"), EROFS);
	}
	t = now_ms();
	assert_int_equal(storage_volume_usage(f->pool, "containers/bb", &rfer, &excl, &err), 0);
	t_walk = now_ms() - t;
	assert_true(rfer >= 300 * 4096 && rfer == excl); /* 300 files, a 4 KiB block each */

	/* A read-only subvolume holding a nested subvolume (made writable, filled, frozen). */
	assert_int_equal(storage_volume_clone(f->pool, "containers/bb", "snapshots/n/s", &err), 0);
	assert_int_equal(storage_volume_create(f->pool, "snapshots/n/s/inner", &err), 0);
	set_subvol_ro(f->pool, "snapshots/n/s");
	if (storage_volume_delete(f->pool, "snapshots/n", &err) < 0)
		fail_msg("%s", err.msg);
	assert_rel_missing(f->pool, "snapshots/n");

	/* A snapshot of a plain directory (not a subvolume) is still a read-only subvolume. */
	{
		cleanup_free char *plain = storage_volume_path(f->pool, "plain/dir");

		assert_int_equal(mkdir_p(plain, 0755), 0);
		write_vol_file(f->pool, "plain/dir", "f", "plain");
		assert_int_equal(
			storage_volume_snapshot(f->pool, "plain/dir", "snapshots/p/s", true, &err),
			0);
		assert_true(is_subvol(f->pool, "snapshots/p/s"));
		assert_vol_file(f->pool, "snapshots/p/s", "f", "plain");
		assert_int_equal(try_write(f->pool, "snapshots/p/s", "x"), EROFS);
		assert_int_equal(
			storage_volume_clone(f->pool, "snapshots/p/s", "containers/p", &err), 0);
		assert_int_equal(try_write(f->pool, "containers/p", "x"), 0);
		/* limits.disk needs a subvolume. */
		err = (struct kiva_error){0};
		assert_int_equal(storage_volume_set_limit(f->pool, "plain/dir", 10 * MIB, &err),
				 -EOPNOTSUPP);
		assert_non_null(strstr(err.msg, "plain/dir"));
	}
	/* Clearing a limit does not enable quotas. */
	assert_int_equal(storage_volume_set_limit(f->pool, "containers/bb", 0, &err), 0);
	assert_false(quotas_on(f->pool));

	assert_int_equal(storage_volume_delete(f->pool, "snapshots", &err), 0);
	assert_int_equal(storage_volume_delete(f->pool, "containers", &err), 0);
	assert_rel_missing(f->pool, "snapshots");
	assert_int_equal(storage_pool_unmount(f->pool), 0);

	printf("# btrfs: read-only snapshot %.2f ms avg, rename in place %.3f ms avg, rename of a "
	       "read-only snapshot to another directory %.2f ms avg, usage by walk %.2f ms "
	       "(300-file tree)\n",
	       t_snap / 5, t_rename / 5, t_rename_ro / 5, t_walk);
}

static void test_btrfs_quotas(void **state)
{
	struct fixture *f = *state;
	struct kiva_error err = {0};
	uint64_t rfer = 0, excl = 0, srfer = 0, sexcl = 0, written = 0, base = 0;
	double t, t_enable, t_limit, t_usage;
	int e;

	if (geteuid() != 0 || !storage_btrfs_supported())
		SKIP_TEST("needs root, the btrfs module, /dev/loop-control and mkfs.btrfs");
	if (storage_path_is_btrfs(f->state_dir))
		SKIP_TEST("/var/tmp is on btrfs (a native pool, no loop file)");
	if (storage_pool_open(f->state_dir, "btrfs", 300 * MIB, &f->pool, &err) < 0)
		fail_msg("%s", err.msg);

	/* A volume made before quotas are on gets its qgroup from the initial rescan. */
	assert_int_equal(storage_volume_create(f->pool, "containers/q", &err), 0);
	assert_int_equal(write_chunks(f->pool, "containers/q", "before", 1 * MIB, true, NULL), 0);
	assert_int_equal(storage_volume_create(f->pool, "containers/other", &err), 0);
	assert_false(quotas_on(f->pool));

	t = now_ms();
	if (storage_volume_set_limit(f->pool, "containers/q", 16 * MIB, &err) < 0)
		fail_msg("%s", err.msg);
	t_enable = now_ms() - t;
	assert_true(quotas_on(f->pool));
	t = now_ms();
	assert_int_equal(storage_volume_set_limit(f->pool, "containers/q", 16 * MIB, &err), 0);
	t_limit = now_ms() - t;

	/* Usage from the qgroup: the 1 MiB from before enabling, then 4 MiB more. */
	assert_int_equal(storage_volume_usage(f->pool, "containers/q", &rfer, &excl, &err), 0);
	assert_true(rfer >= 1 * MIB && rfer < 1 * MIB + 256 * 1024);
	assert_true(excl == rfer);
	assert_int_equal(write_chunks(f->pool, "containers/q", "four", 4 * MIB, true, NULL), 0);
	t = now_ms();
	if (storage_volume_usage(f->pool, "containers/q", &rfer, &excl, &err) < 0)
		fail_msg("%s", err.msg);
	t_usage = now_ms() - t;
	assert_true(rfer >= 5 * MIB && rfer < 5 * MIB + 256 * 1024);
	/* Written without fsync: the commit the call forces counts it too. */
	assert_int_equal(write_chunks(f->pool, "containers/q", "nosync", 1 * MIB, false, NULL), 0);
	assert_int_equal(storage_volume_usage(f->pool, "containers/q", &rfer, NULL, &err), 0);
	assert_true(rfer >= 6 * MIB && rfer < 6 * MIB + 256 * 1024);

	/* A snapshot references as much but holds almost nothing exclusively... */
	assert_int_equal(
		storage_volume_snapshot(f->pool, "containers/q", "snapshots/q/s1", true, &err), 0);
	assert_int_equal(storage_volume_usage(f->pool, "snapshots/q/s1", &srfer, &sexcl, &err), 0);
	assert_true(srfer >= 6 * MIB && srfer < 6 * MIB + 256 * 1024);
	assert_true(sexcl < 256 * 1024);
	/* ...until the source drops the data: then deleting the snapshot would free it. */
	{
		cleanup_free char *p = vol_file(f->pool, "containers/q", "four");

		assert_int_equal(unlink(p), 0);
	}
	assert_int_equal(storage_volume_usage(f->pool, "snapshots/q/s1", &srfer, &sexcl, &err), 0);
	assert_true(sexcl >= 4 * MIB && sexcl < 4 * MIB + 256 * 1024);
	assert_int_equal(storage_volume_usage(f->pool, "containers/q", &rfer, &excl, &err), 0);
	assert_true(rfer >= 2 * MIB && rfer < 2 * MIB + 256 * 1024);
	base = rfer;

	/* Over the 16 MiB limit: EDQUOT (at write or fsync) before 2x the limit is written. */
	e = write_chunks(f->pool, "containers/q", "big", 32 * MIB, true, &written);
	if (e != EDQUOT)
		fail_msg("writing 32 MiB under a 16 MiB limit: %s after %llu bytes",
			 e ? strerror(e) : "no error", (unsigned long long)written);
	assert_true(written + base <= 16 * MIB);
	assert_true(written + base >= 8 * MIB);
	/* Other volumes are not limited. */
	assert_int_equal(write_chunks(f->pool, "containers/other", "big", 24 * MIB, true, NULL), 0);
	/* A clone of the limited volume inherits its limit (btrfs copies qgroup limits into a
	 * snapshot's qgroup) until it gets its own. */
	assert_int_equal(storage_volume_clone(f->pool, "containers/q", "containers/q2", &err), 0);
	e = write_chunks(f->pool, "containers/q2", "more", 24 * MIB, true, &written);
	assert_int_equal(e, EDQUOT);
	assert_int_equal(storage_volume_set_limit(f->pool, "containers/q2", 64 * MIB, &err), 0);
	assert_int_equal(write_chunks(f->pool, "containers/q2", "more", 24 * MIB, true, NULL), 0);

	/* Raising, then clearing the limit lets it write again. */
	if (storage_volume_set_limit(f->pool, "containers/q", 0, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(write_chunks(f->pool, "containers/q", "again", 24 * MIB, true, &written),
			 0);
	assert_int_equal(storage_volume_usage(f->pool, "containers/q", &rfer, NULL, &err), 0);
	assert_true(rfer >= 24 * MIB);
	assert_true(quotas_on(f->pool));

	/* Deletes still work with quotas on, read-only snapshots and their directory included. */
	assert_int_equal(
		storage_volume_snapshot(f->pool, "containers/q", "snapshots/q/s2", true, &err), 0);
	if (storage_volume_delete(f->pool, "snapshots/q", &err) < 0)
		fail_msg("%s", err.msg);
	assert_rel_missing(f->pool, "snapshots/q");
	assert_int_equal(storage_volume_delete(f->pool, "containers", &err), 0);
	assert_int_equal(storage_pool_unmount(f->pool), 0);

	printf("# btrfs quotas: enable + first limit %.2f ms, set limit %.2f ms, usage from the "
	       "qgroup (sync + tree search) %.2f ms\n",
	       t_enable, t_limit, t_usage);
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
		cmocka_unit_test_setup_teardown(test_btrfs_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_quotas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_refuses_to_hide_dir_pool, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
