/* btrfs storage backend. The pool is STATE_DIR/storage-pools/default: a plain directory when the
 * state dir is already on btrfs, otherwise a btrfs file system in the sparse loop file
 * STATE_DIR/disks/default.img (as LXD does), attached with the loop ioctls (LOOP_CONFIGURE, or
 * LOOP_SET_FD + LOOP_SET_STATUS64 on older kernels) with LO_FLAGS_AUTOCLEAR, so unmounting the
 * pool also frees the loop device. Volumes are subvolumes; clones and snapshots are
 * (read-only when asked) snapshots (BTRFS_IOC_SNAP_CREATE_V2, a few ms whatever the file count);
 * deletes are BTRFS_IOC_SNAP_DESTROY (the cleaner frees the extents asynchronously). limits.disk
 * is a qgroup limit; quotas are enabled on the first one only, as they slow snapshot deletion, and
 * usage is read from the quota tree when they are on. No btrfs-progs library: only
 * <linux/btrfs.h> and <linux/btrfs_tree.h>, and mkfs.btrfs run once. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "storage-internal.h"
#include "storage.h"

/* Inode number of the root directory of every btrfs subvolume (BTRFS_FIRST_FREE_OBJECTID). */
#define BTRFS_SUBVOL_ROOT_INO 256

bool storage_path_is_btrfs(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 && (unsigned long)sfs.f_type == BTRFS_SUPER_MAGIC;
}

uint64_t storage_loop_size_default(uint64_t free_bytes)
{
	uint64_t size = free_bytes / 5;

	if (size < STORAGE_LOOP_MIN_BYTES)
		return STORAGE_LOOP_MIN_BYTES;
	if (size > STORAGE_LOOP_MAX_BYTES)
		return STORAGE_LOOP_MAX_BYTES;
	return size;
}

bool storage_btrfs_magic_ok(const void *buf, size_t len)
{
	return len >= STORAGE_BTRFS_MAGIC_OFFSET + 8 &&
	       memcmp((const char *)buf + STORAGE_BTRFS_MAGIC_OFFSET, STORAGE_BTRFS_MAGIC, 8) == 0;
}

/* Decodes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
static char *mountinfo_unescape(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
				      (s[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

/* Splits one mountinfo line (proc(5)) into its space-separated fields, at most max. */
static size_t split_fields(const char *line, size_t len, const char **f, size_t *flen, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		size_t start;

		while (i < len && line[i] == ' ')
			i++;
		if (i >= len)
			break;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		f[n] = line + start;
		flen[n] = i - start;
		n++;
	}
	return n;
}

int storage_mountinfo_find(const char *mountinfo, const char *mountpoint, char **ret_fstype,
			   char **ret_source)
{
	const char *line = mountinfo;
	const char *found_type = NULL, *found_src = NULL;
	size_t found_type_len = 0, found_src_len = 0;
	bool found = false;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *f[64];
		size_t flen[64], n, sep;

		/* 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue */
		n = split_fields(line, len, f, flen, ARRAY_SIZE(f));
		for (sep = 6; sep < n; sep++)
			if (flen[sep] == 1 && f[sep][0] == '-')
				break;
		if (n >= 5 && sep + 2 < n) {
			cleanup_free char *mp = mountinfo_unescape(f[4], flen[4]);

			if (!mp)
				return -ENOMEM;
			if (streq(mp, mountpoint)) {
				found = true;
				found_type = f[sep + 1];
				found_type_len = flen[sep + 1];
				found_src = f[sep + 2];
				found_src_len = flen[sep + 2];
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (!found)
		return -ENOENT;

	cleanup_free char *type = mountinfo_unescape(found_type, found_type_len);
	cleanup_free char *src = mountinfo_unescape(found_src, found_src_len);
	if (!type || !src)
		return -ENOMEM;
	if (ret_fstype)
		*ret_fstype = TAKE_PTR(type);
	if (ret_source)
		*ret_source = TAKE_PTR(src);
	return 0;
}

static bool kernel_has_btrfs(void)
{
	cleanup_free char *fs = NULL;

	if (read_file("/proc/filesystems", 1 << 20, &fs, NULL) < 0)
		return false;
	return strstr(fs, "\tbtrfs\n") != NULL;
}

bool storage_btrfs_supported(void)
{
	cleanup_free char *mkfs = storage_find_program("mkfs.btrfs");

	if (!mkfs || access("/dev/loop-control", F_OK) < 0)
		return false;
	if (!kernel_has_btrfs()) {
		cleanup_free char *modprobe = storage_find_program("modprobe");

		if (modprobe) {
			char *argv[] = {modprobe, "-q", "btrfs", NULL};

			(void)storage_run(argv, NULL);
		}
	}
	return kernel_has_btrfs();
}

static int read_mountinfo_entry(const char *mountpoint, char **ret_fstype, char **ret_source)
{
	cleanup_free char *mi = NULL;
	int r;

	r = read_file("/proc/self/mountinfo", 64 << 20, &mi, NULL);
	if (r < 0)
		return r;
	return storage_mountinfo_find(mi, mountpoint, ret_fstype, ret_source);
}

/* Attaches backing_fd to a free loop device with autoclear. Returns the open loop fd (keep it open
 * until the device is mounted, or autoclear detaches it at once) and the device path. */
static int loop_attach(int backing_fd, const char *backing_path, char **ret_dev)
{
	cleanup_close int ctl = -EBADF;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	for (int attempt = 0; attempt < 64; attempt++) {
		cleanup_close int lfd = -EBADF;
		cleanup_free char *dev = NULL;
		struct loop_config cfg = {0};
		int n;

		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return -errno;
		dev = strf("/dev/loop%d", n);
		if (!dev)
			return -ENOMEM;
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0) {
			if (errno == ENOENT) { /* devtmpfs has not made the node yet */
				nanosleep(&(struct timespec){0, 1000000}, NULL);
				continue;
			}
			return -errno;
		}
		cfg.fd = (uint32_t)backing_fd;
		cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		strncpy((char *)cfg.info.lo_file_name, backing_path, LO_NAME_SIZE - 1);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			*ret_dev = TAKE_PTR(dev);
			return TAKE_FD(lfd);
		}
		if (errno == EBUSY)
			continue; /* another process took it between GET_FREE and CONFIGURE */
		if (errno != EINVAL && errno != ENOTTY)
			return -errno;
		/* Kernel < 5.8: the two-step way. */
		if (ioctl(lfd, LOOP_SET_FD, backing_fd) < 0) {
			if (errno == EBUSY)
				continue;
			return -errno;
		}
		if (ioctl(lfd, LOOP_SET_STATUS64, &cfg.info) < 0) {
			int r = -errno;

			(void)ioctl(lfd, LOOP_CLR_FD, 0);
			return r;
		}
		*ret_dev = TAKE_PTR(dev);
		return TAKE_FD(lfd);
	}
	return -EBUSY;
}

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

static int btrfs_open_native(struct storage_pool *pool, const char *mnt, struct kiva_error *reterr)
{
	if (mkdir(mnt, 0711) < 0 && errno != EEXIST)
		return kiva_error_set(reterr, -errno, "Failed to create '%s': %m", mnt);
	pool->path = strdup(mnt);
	if (!pool->path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	return 0;
}

/* Formats img with mkfs.btrfs unless it already holds a btrfs superblock. */
static int btrfs_format_if_needed(int fd, const char *img, struct kiva_error *reterr)
{
	char magic[8];
	cleanup_free char *mkfs = NULL;
	ssize_t n;

	n = pread(fd, magic, sizeof(magic), STORAGE_BTRFS_MAGIC_OFFSET);
	if (n < 0)
		return kiva_error_set(reterr, -errno, "Failed to read '%s': %m", img);
	if (n == sizeof(magic) && memcmp(magic, STORAGE_BTRFS_MAGIC, sizeof(magic)) == 0)
		return 0;
	mkfs = storage_find_program("mkfs.btrfs");
	if (!mkfs)
		return kiva_error_set(
			reterr, -ENOENT,
			"mkfs.btrfs not found: install btrfs-progs or use the dir driver");
	char *argv[] = {mkfs, "-q", "-f", (char *)img, NULL};
	return storage_run(argv, reterr);
}

int storage_btrfs_pool_open(struct storage_pool *pool, const char *state_dir,
			    uint64_t loop_size_bytes, struct kiva_error *reterr)
{
	cleanup_free char *pools = strf("%s/storage-pools", state_dir);
	cleanup_free char *mnt = strf("%s/storage-pools/default", state_dir);
	cleanup_free char *disks = strf("%s/disks", state_dir);
	cleanup_free char *img = strf("%s/disks/default.img", state_dir);
	cleanup_free char *fstype = NULL, *source = NULL, *loop_dev = NULL;
	cleanup_close int fd = -EBADF, lfd = -EBADF;
	bool created = false;
	struct stat st;
	int r;

	if (!pools || !mnt || !disks || !img)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = mkdir_p(pools, 0711);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create '%s': %s", pools, strerror(-r));

	/* kivad restarted while containers run: the pool is still mounted, reuse it. */
	r = read_mountinfo_entry(mnt, &fstype, &source);
	if (r >= 0) {
		if (!streq(fstype, "btrfs"))
			return kiva_error_set(reterr, -EBUSY,
					      "'%s' is already mounted (%s), not btrfs", mnt,
					      fstype);
		pool->path = strdup(mnt);
		if (!pool->path)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		if (startswith(source, "/dev/loop")) {
			pool->loop_dev = TAKE_PTR(source);
			pool->source = TAKE_PTR(img);
		} else {
			pool->source = TAKE_PTR(source);
		}
		return 0;
	}
	if (r != -ENOENT)
		return kiva_error_set(reterr, r, "Failed to read /proc/self/mountinfo: %s",
				      strerror(-r));

	if (storage_path_is_btrfs(state_dir))
		return btrfs_open_native(pool, mnt, reterr);

	if (!storage_btrfs_supported())
		return kiva_error_set(
			reterr, -EOPNOTSUPP,
			"btrfs storage needs the btrfs kernel module, /dev/loop-control and mkfs.btrfs (btrfs-progs); use the dir driver otherwise");

	r = mkdir_p(disks, 0700);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create '%s': %s", disks, strerror(-r));
	fd = open(img, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		uint64_t size = loop_size_bytes;

		if (size == 0) {
			struct statvfs sv;

			if (statvfs(disks, &sv) < 0)
				return kiva_error_set(reterr, -errno, "Failed to statvfs '%s': %m",
						      disks);
			size = storage_loop_size_default((uint64_t)sv.f_bavail * sv.f_frsize);
		}
		fd = open(img, O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd < 0)
			return kiva_error_set(reterr, -errno, "Failed to create '%s': %m", img);
		created = true;
		if (ftruncate(fd, (off_t)size) < 0) {
			r = kiva_error_set(reterr, -errno, "Failed to size '%s' to %llu bytes: %m",
					   img, (unsigned long long)size);
			goto rollback;
		}
	} else if (fd < 0) {
		return kiva_error_set(reterr, -errno, "Failed to open '%s': %m", img);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = kiva_error_set(reterr, -EINVAL, "'%s' is not a regular file", img);
		goto rollback;
	}

	r = btrfs_format_if_needed(fd, img, reterr);
	if (r < 0)
		goto rollback;

	lfd = loop_attach(fd, img, &loop_dev);
	if (lfd < 0) {
		r = kiva_error_set(reterr, lfd, "Failed to attach '%s' to a loop device: %s", img,
				   strerror(-lfd));
		goto rollback;
	}
	if (mkdir(mnt, 0711) < 0 && errno != EEXIST) {
		r = kiva_error_set(reterr, -errno, "Failed to create '%s': %m", mnt);
		goto rollback;
	}
	if (!dir_empty(mnt)) {
		/* e.g. volumes of an earlier dir pool: mounting over them would hide them */
		r = kiva_error_set(
			reterr, -ENOTEMPTY,
			"'%s' is not empty (an earlier dir pool?); refusing to mount the btrfs pool over it",
			mnt);
		goto rollback;
	}
	if (mount(loop_dev, mnt, "btrfs", MS_NOATIME, "user_subvol_rm_allowed") < 0) {
		r = kiva_error_set(reterr, -errno, "Failed to mount %s (%s) on '%s': %m", loop_dev,
				   img, mnt);
		goto rollback;
	}
	/* The mount holds the loop device now; closing lfd leaves autoclear armed for umount. */
	pool->path = TAKE_PTR(mnt);
	pool->source = TAKE_PTR(img);
	pool->loop_dev = TAKE_PTR(loop_dev);
	return 0;

rollback:
	if (lfd >= 0)
		(void)ioctl(lfd, LOOP_CLR_FD, 0);
	if (created)
		(void)unlink(img);
	return r;
}

/* True when /sys/block/loopN/loop/backing_file is still img (the number may have been reused). */
static bool loop_backs(const char *loop_dev, const char *img)
{
	cleanup_free char *path = NULL, *backing = NULL;
	size_t len;

	if (!startswith(loop_dev, "/dev/"))
		return false;
	path = strf("/sys/block/%s/loop/backing_file", loop_dev + strlen("/dev/"));
	if (!path || read_file(path, PATH_MAX, &backing, &len) < 0)
		return false;
	while (len > 0 && backing[len - 1] == '\n')
		backing[--len] = 0;
	return img && streq(backing, img);
}

int storage_btrfs_pool_unmount(struct storage_pool *pool)
{
	cleanup_close int lfd = -EBADF;

	if (!pool->loop_dev)
		return 0; /* native btrfs: nothing of ours is mounted */
	if (umount2(pool->path, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
		return -errno;
	/* Autoclear normally detached it with the unmount; clear it if it is still ours. */
	if (!loop_backs(pool->loop_dev, pool->source))
		return 0;
	lfd = open(pool->loop_dev, O_RDWR | O_CLOEXEC);
	if (lfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (ioctl(lfd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO)
		return -errno;
	return 0;
}

/* Splits an absolute path into an open fd of its parent directory and its last component. */
static int open_parent(const char *abs_path, const char **ret_name)
{
	cleanup_free char *parent = strdup(abs_path);
	char *slash;
	int fd;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (!slash || !slash[1] || strlen(slash + 1) > BTRFS_SUBVOL_NAME_MAX)
		return -EINVAL;
	*ret_name = abs_path + (slash - parent) + 1;
	*slash = 0;
	fd = open(slash == parent ? "/" : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int btrfs_volume_create(struct storage_pool *pool, const char *abs_path)
{
	struct btrfs_ioctl_vol_args args = {0};
	cleanup_close int dfd = -EBADF;
	const char *name = NULL;

	dfd = open_parent(abs_path, &name);
	if (dfd < 0)
		return dfd;
	strncpy(args.name, name, sizeof(args.name) - 1);
	if (ioctl(dfd, BTRFS_IOC_SUBVOL_CREATE, &args) < 0)
		return -errno;
	return 0;
}

/* Read-only flag of the subvolume whose root directory fd is. */
static int subvol_get_ro(int fd, bool *ret_ro)
{
	uint64_t flags;

	if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
		return -errno;
	*ret_ro = flags & BTRFS_SUBVOL_RDONLY;
	return 0;
}

static int subvol_set_ro(int fd, bool ro)
{
	uint64_t flags;

	if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0)
		return -errno;
	flags = ro ? flags | BTRFS_SUBVOL_RDONLY : flags & ~(uint64_t)BTRFS_SUBVOL_RDONLY;
	return ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &flags) < 0 ? -errno : 0;
}

static int snap_destroy(int dfd, const char *name)
{
	struct btrfs_ioctl_vol_args args = {0};

	strncpy(args.name, name, sizeof(args.name) - 1);
	return ioctl(dfd, BTRFS_IOC_SNAP_DESTROY, &args) < 0 ? -errno : 0;
}

static int remove_at(int dfd, const char *name);

/* Removes every entry of the directory fd (taken over). When only_subvols, descends into plain
 * directories but removes only the subvolumes it finds (to unblock SNAP_DESTROY). */
static int remove_children(int fd, bool only_subvols)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;
		int k;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (!only_subvols) {
			k = remove_at(dirfd(d), de->d_name);
		} else {
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
			if (st.st_ino == BTRFS_SUBVOL_ROOT_INO) {
				k = remove_at(dirfd(d), de->d_name);
			} else {
				int sub = openat(dirfd(d), de->d_name,
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

				k = sub < 0 ? -errno : remove_children(sub, true);
			}
		}
		if (k < 0 && r >= 0)
			r = k;
	}
	closedir(d);
	return r;
}

/* Removes dfd/name whatever it is: subvolumes (and the subvolumes nested in them) with
 * SNAP_DESTROY, plain trees entry by entry. Never crosses a mount point; missing is success. */
static int remove_at(int dfd, const char *name)
{
	struct statx stx;
	bool ro = false;
	int fd, r;

	if (statx(dfd, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO, &stx) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(stx.stx_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
		return -EBUSY;

	if (stx.stx_ino == BTRFS_SUBVOL_ROOT_INO) {
		r = snap_destroy(dfd, name);
		if (r != -ENOTEMPTY)
			return r;
		/* It holds nested subvolumes: remove those first, then retry. A read-only one refuses
		 * to unlink them (EROFS): it goes anyway, so make it writable first. */
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (subvol_get_ro(fd, &ro) >= 0 && ro) {
			r = subvol_set_ro(fd, false);
			if (r < 0) {
				close(fd);
				return r;
			}
		}
		r = remove_children(fd, true);
		if (r < 0)
			return r;
		return snap_destroy(dfd, name);
	}

	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = remove_children(fd, false);
	if (r < 0)
		return r;
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

static int btrfs_volume_delete(struct storage_pool *pool, const char *abs_path)
{
	cleanup_close int dfd = -EBADF;
	const char *name = NULL;

	dfd = open_parent(abs_path, &name);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	return remove_at(dfd, name);
}

/* Creates abs_dst as a snapshot of abs_src, read-only when asked. A snapshot of a read-only
 * subvolume is writable unless asked otherwise (BTRFS_SUBVOL_RDONLY is not inherited). */
static int btrfs_snapshot(struct storage_pool *pool, const char *abs_src, const char *abs_dst,
			  bool readonly)
{
	struct btrfs_ioctl_vol_args_v2 args = {0};
	cleanup_close int sfd = -EBADF, dfd = -EBADF;
	struct stat st;
	const char *name = NULL;
	int r;

	sfd = open(abs_src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	if (fstat(sfd, &st) < 0)
		return -errno;
	dfd = open_parent(abs_dst, &name);
	if (dfd < 0)
		return dfd;

	if (st.st_ino != BTRFS_SUBVOL_ROOT_INO) {
		/* Not a subvolume (e.g. made by the dir driver): new subvolume + reflink copy. */
		cleanup_free char *src_dot = strf("%s/.", abs_src);
		char *argv[] = {"/bin/cp", "-a", "--reflink=auto", src_dot, (char *)abs_dst, NULL};

		if (!src_dot)
			return -ENOMEM;
		r = btrfs_volume_create(pool, abs_dst);
		if (r < 0)
			return r;
		r = storage_run(argv, &storage_op_error);
		if (r >= 0 && readonly) {
			cleanup_close int fd =
				open(abs_dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			r = fd < 0 ? -errno : subvol_set_ro(fd, true);
		}
		if (r < 0)
			(void)remove_at(dfd, name);
		return r;
	}

	/* The kernel flushes the source's dirty data into the snapshot: a consistent copy. */
	args.fd = sfd;
	args.flags = readonly ? BTRFS_SUBVOL_RDONLY : 0;
	strncpy(args.name, name, sizeof(args.name) - 1);
	if (ioctl(dfd, BTRFS_IOC_SNAP_CREATE_V2, &args) < 0)
		return -errno;
	return 0;
}

static int btrfs_volume_clone(struct storage_pool *pool, const char *abs_src, const char *abs_dst)
{
	return btrfs_snapshot(pool, abs_src, abs_dst, false);
}

static int btrfs_volume_snapshot(struct storage_pool *pool, const char *abs_src,
				 const char *abs_dst, bool readonly)
{
	return btrfs_snapshot(pool, abs_src, abs_dst, readonly);
}

static int btrfs_volume_rename(struct storage_pool *pool, const char *abs_src, const char *abs_dst)
{
	cleanup_close int fd = -EBADF;
	struct stat st;
	bool ro = false;
	int r, k;

	r = storage_rename_noreplace(abs_src, abs_dst);
	if (r != -EROFS)
		return r;
	/* Moving a directory to another parent rewrites its "..", which the kernel refuses in a
	 * read-only subvolume (btrfs_permission). Lift the flag for the move. */
	fd = open(abs_src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != BTRFS_SUBVOL_ROOT_INO)
		return r;
	if (subvol_get_ro(fd, &ro) < 0 || !ro)
		return r;
	r = subvol_set_ro(fd, false);
	if (r < 0)
		return kiva_error_set(&storage_op_error, r,
				      "clearing the read-only flag for the move: %s", strerror(-r));
	r = storage_rename_noreplace(abs_src, abs_dst);
	k = subvol_set_ro(fd, true); /* fd follows the subvolume wherever it is now */
	if (r < 0)
		return r;
	if (k < 0) {
		/* Do not leave a writable snapshot behind: undo the move. */
		(void)storage_rename_noreplace(abs_dst, abs_src);
		(void)subvol_set_ro(fd, true);
		return kiva_error_set(&storage_op_error, k,
				      "setting the read-only flag again after the move: %s",
				      strerror(-k));
	}
	return 0;
}

/* Copies the item with exactly this key out of a btrfs tree (BTRFS_IOC_TREE_SEARCH, root only).
 * buf is zeroed first; the item must hold at least min_len bytes. -ENOENT when the tree (e.g.
 * the quota tree with quotas off) or the item does not exist. */
static int tree_item(int fd, uint64_t tree_id, uint64_t objectid, uint8_t type, uint64_t offset,
		     void *buf, size_t len, size_t min_len)
{
	struct btrfs_ioctl_search_args args = {0};
	struct btrfs_ioctl_search_header sh;

	args.key.tree_id = tree_id;
	args.key.min_objectid = args.key.max_objectid = objectid;
	args.key.min_type = args.key.max_type = type;
	args.key.min_offset = args.key.max_offset = offset;
	args.key.max_transid = UINT64_MAX;
	args.key.nr_items = 1;
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		return -errno;
	if (args.key.nr_items < 1)
		return -ENOENT;
	memcpy(&sh, args.buf, sizeof(sh));
	if (sh.objectid != objectid || sh.type != type || sh.offset != offset)
		return -ENOENT;
	if (sh.len < min_len || sizeof(sh) + sh.len > sizeof(args.buf))
		return -EIO;
	memset(buf, 0, len);
	memcpy(buf, args.buf + sizeof(sh), sh.len < len ? sh.len : len);
	return 0;
}

/* BTRFS_QGROUP_STATUS_FLAG_* of the pool as of the last commit; -ENOENT when quotas are off. */
static int quota_flags(int fd, uint64_t *ret_flags)
{
	struct btrfs_qgroup_status_item st;
	int r;

	r = tree_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_STATUS_KEY, 0, &st, sizeof(st),
		      offsetof(struct btrfs_qgroup_status_item, rescan));
	if (r < 0)
		return r;
	*ret_flags = le64toh(st.flags);
	return 0;
}

/* Id of the subvolume fd is in (its level-0 qgroup is 0/<id>). */
static int subvol_id(int fd, uint64_t *ret_id)
{
	struct btrfs_ioctl_ino_lookup_args args = {.objectid = BTRFS_FIRST_FREE_OBJECTID};

	if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &args) < 0)
		return -errno;
	*ret_id = args.treeid;
	return 0;
}

/* Reads qgroup 0/<subvolume of fd> when quotas are on and consistent; -ENOENT otherwise (then
 * the caller walks). Forces a commit first: qgroup numbers are updated at transaction commit. */
static int qgroup_usage(int fd, uint64_t *ret_referenced, uint64_t *ret_exclusive)
{
	struct btrfs_qgroup_info_item info;
	uint64_t flags, id;
	int r;

	/* Off (no quota tree) or unreadable (EPERM without CAP_SYS_ADMIN): the caller walks. */
	if (quota_flags(fd, &flags) < 0 || !(flags & BTRFS_QGROUP_STATUS_FLAG_ON))
		return -ENOENT;
	(void)ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_WAIT); /* at once when none runs */
	if (ioctl(fd, BTRFS_IOC_SYNC) < 0)
		return -errno;
	r = quota_flags(fd, &flags);
	if (r < 0)
		return r;
	if (flags & BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT) {
		/* e.g. after a big subvolume was dropped: recount in the background, so the next
		 * call has numbers again; EINPROGRESS when one already runs. */
		struct btrfs_ioctl_quota_rescan_args rescan = {0};

		(void)ioctl(fd, BTRFS_IOC_QUOTA_RESCAN, &rescan);
		return -ENOENT;
	}
	r = subvol_id(fd, &id);
	if (r < 0)
		return r;
	r = tree_item(fd, BTRFS_QUOTA_TREE_OBJECTID, 0, BTRFS_QGROUP_INFO_KEY, id, &info,
		      sizeof(info), sizeof(info));
	if (r < 0)
		return r;
	*ret_referenced = le64toh(info.rfer);
	*ret_exclusive = le64toh(info.excl);
	return 0;
}

static int btrfs_volume_usage(struct storage_pool *pool, const char *abs_path,
			      uint64_t *ret_referenced, uint64_t *ret_exclusive)
{
	cleanup_close int fd = -EBADF;
	uint64_t bytes;
	struct stat st;
	int r;

	fd = open(abs_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_ino == BTRFS_SUBVOL_ROOT_INO) {
		r = qgroup_usage(fd, ret_referenced, ret_exclusive);
		if (r != -ENOENT)
			return r;
	}
	r = storage_tree_usage(abs_path, &bytes);
	if (r < 0)
		return r;
	*ret_referenced = bytes;
	*ret_exclusive = bytes;
	return 0;
}

/* Enables quotas on the pool unless they are on, and waits for the initial rescan, after which
 * every subvolume has its qgroup with exact numbers. */
static int quota_enable(int fd)
{
	struct btrfs_ioctl_quota_ctl_args ctl = {.cmd = BTRFS_QUOTA_CTL_ENABLE};
	uint64_t flags;
	int r;

	r = quota_flags(fd, &flags);
	if (r >= 0 && (flags & BTRFS_QGROUP_STATUS_FLAG_ON))
		return 0;
	if (r < 0 && r != -ENOENT)
		return kiva_error_set(&storage_op_error, r, "reading the quota status: %s",
				      strerror(-r));
	if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &ctl) < 0)
		return kiva_error_set(&storage_op_error, -errno, "enabling quotas on the pool: %m");
	if (ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_WAIT) < 0)
		return kiva_error_set(&storage_op_error, -errno,
				      "waiting for the quota rescan: %m");
	return 0;
}

static int btrfs_volume_set_limit(struct storage_pool *pool, const char *abs_path, uint64_t bytes)
{
	struct btrfs_ioctl_qgroup_limit_args args = {0};
	cleanup_close int fd = -EBADF;
	uint64_t id, flags;
	struct stat st;
	int r;

	fd = open(abs_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_ino != BTRFS_SUBVOL_ROOT_INO)
		return kiva_error_set(&storage_op_error, -EOPNOTSUPP,
				      "not a btrfs subvolume (a plain directory)");
	r = subvol_id(fd, &id);
	if (r < 0)
		return r;
	if (bytes == 0) {
		r = quota_flags(fd, &flags);
		if (r == -ENOENT || (r >= 0 && !(flags & BTRFS_QGROUP_STATUS_FLAG_ON)))
			return 0; /* quotas off: nothing limits it; keep them off */
	} else {
		r = quota_enable(fd);
		if (r < 0)
			return r;
	}

	args.qgroupid = id; /* level 0: 0/<subvolid> */
	args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_RFER;
	args.lim.max_rfer = bytes > 0 ? bytes : UINT64_MAX; /* (u64)-1 clears the limit */
	if (ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &args) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	/* A subvolume made while quotas were being enabled may lack its qgroup. */
	struct btrfs_ioctl_qgroup_create_args create = {.create = 1, .qgroupid = id};
	if (ioctl(fd, BTRFS_IOC_QGROUP_CREATE, &create) < 0 && errno != EEXIST)
		return -errno;
	return ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &args) < 0 ? -errno : 0;
}

const struct storage_ops storage_btrfs_ops = {
	.name = "btrfs",
	.volume_create = btrfs_volume_create,
	.volume_clone = btrfs_volume_clone,
	.volume_delete = btrfs_volume_delete,
	.volume_snapshot = btrfs_volume_snapshot,
	.volume_rename = btrfs_volume_rename,
	.volume_usage = btrfs_volume_usage,
	.volume_set_limit = btrfs_volume_set_limit,
};
