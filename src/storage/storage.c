/* Storage pools: driver selection, volume path validation and the dispatch of volume operations
 * to the backend ops (storage-btrfs.c, storage-dir.c), plus what the backends share: the small
 * process runner for mkfs.btrfs, modprobe and cp, the no-replace rename and the disk usage walk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "storage-internal.h"
#include "storage.h"

_Thread_local struct kiva_error storage_op_error;

/* Message detail of a failed op: the backend's own words when it left some, else strerror. */
static const char *op_detail(int r)
{
	return storage_op_error.msg[0] ? storage_op_error.msg : strerror(-r);
}

static void op_begin(void)
{
	storage_op_error.code = 0;
	storage_op_error.msg[0] = 0;
}

int storage_rel_path_check(const char *rel, struct kiva_error *reterr)
{
	const char *p;

	if (!rel || !*rel)
		return kiva_error_set(reterr, -EINVAL, "Invalid volume path: empty");
	if (strlen(rel) >= PATH_MAX / 2)
		return kiva_error_set(reterr, -EINVAL, "Invalid volume path '%.64s...': too long",
				      rel);
	if (rel[0] == '/')
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid volume path '%s': must be relative to the pool",
				      rel);
	p = rel;
	for (;;) {
		size_t n = strcspn(p, "/");

		if (n == 0)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid volume path '%s': empty path component",
					      rel);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid volume path '%s': '.' and '..' are not allowed", rel);
		if (!p[n])
			break;
		p += n + 1;
	}
	return 0;
}

char *storage_volume_path(const struct storage_pool *pool, const char *rel)
{
	if (storage_rel_path_check(rel, NULL) < 0)
		return NULL;
	return strf("%s/%s", pool->path, rel);
}

bool storage_volume_exists(const struct storage_pool *pool, const char *rel)
{
	cleanup_free char *path = storage_volume_path(pool, rel);
	struct stat st;

	return path && lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p of the parent directory of an absolute volume path. */
static int mkdir_parent(const char *abs_path)
{
	cleanup_free char *parent = strdup(abs_path);
	char *slash;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return 0;
	*slash = 0;
	return mkdir_p(parent, 0711);
}

int storage_volume_create(struct storage_pool *pool, const char *rel, struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	struct stat st;
	int r;

	r = storage_rel_path_check(rel, reterr);
	if (r < 0)
		return r;
	path = storage_volume_path(pool, rel);
	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (lstat(path, &st) == 0)
		return kiva_error_set(reterr, -EEXIST, "Storage volume '%s' already exists", rel);
	r = mkdir_parent(path);
	if (r < 0)
		return kiva_error_set(reterr, r,
				      "Failed to create the parent of storage volume '%s': %s", rel,
				      strerror(-r));
	op_begin();
	r = pool->ops->volume_create(pool, path);
	if (r == -EEXIST)
		return kiva_error_set(reterr, r, "Storage volume '%s' already exists", rel);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create storage volume '%s' (%s): %s",
				      rel, pool->ops->name, op_detail(r));
	return 0;
}

/* Checks and resolves rel_src and rel_dst for an op that makes rel_dst from rel_src: rel_src must
 * be a directory, rel_dst must not exist; rel_dst's missing parents are created. */
static int copy_prepare(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			char **ret_src, char **ret_dst, struct kiva_error *reterr)
{
	cleanup_free char *src = NULL, *dst = NULL;
	struct stat st;
	int r;

	r = storage_rel_path_check(rel_src, reterr);
	if (r < 0)
		return r;
	r = storage_rel_path_check(rel_dst, reterr);
	if (r < 0)
		return r;
	src = storage_volume_path(pool, rel_src);
	dst = storage_volume_path(pool, rel_dst);
	if (!src || !dst)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (lstat(src, &st) < 0 || !S_ISDIR(st.st_mode))
		return kiva_error_set(reterr, -ENOENT, "Storage volume '%s' does not exist",
				      rel_src);
	if (lstat(dst, &st) == 0)
		return kiva_error_set(reterr, -EEXIST, "Storage volume '%s' already exists",
				      rel_dst);
	r = mkdir_parent(dst);
	if (r < 0)
		return kiva_error_set(reterr, r,
				      "Failed to create the parent of storage volume '%s': %s",
				      rel_dst, strerror(-r));
	*ret_src = TAKE_PTR(src);
	*ret_dst = TAKE_PTR(dst);
	return 0;
}

int storage_volume_clone(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			 struct kiva_error *reterr)
{
	cleanup_free char *src = NULL, *dst = NULL;
	int r;

	r = copy_prepare(pool, rel_src, rel_dst, &src, &dst, reterr);
	if (r < 0)
		return r;
	op_begin();
	r = pool->ops->volume_clone(pool, src, dst);
	if (r == -EEXIST)
		return kiva_error_set(reterr, r, "Storage volume '%s' already exists", rel_dst);
	if (r < 0)
		return kiva_error_set(reterr, r,
				      "Failed to copy storage volume '%s' to '%s' (%s): %s",
				      rel_src, rel_dst, pool->ops->name, op_detail(r));
	return 0;
}

int storage_volume_snapshot(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			    bool readonly, struct kiva_error *reterr)
{
	cleanup_free char *src = NULL, *dst = NULL;
	int r;

	r = copy_prepare(pool, rel_src, rel_dst, &src, &dst, reterr);
	if (r < 0)
		return r;
	op_begin();
	r = pool->ops->volume_snapshot(pool, src, dst, readonly);
	if (r == -EEXIST)
		return kiva_error_set(reterr, r, "Storage volume '%s' already exists", rel_dst);
	if (r < 0)
		return kiva_error_set(reterr, r,
				      "Failed to snapshot storage volume '%s' as '%s' (%s): %s",
				      rel_src, rel_dst, pool->ops->name, op_detail(r));
	return 0;
}

int storage_volume_rename(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			  struct kiva_error *reterr)
{
	cleanup_free char *src = NULL, *dst = NULL;
	size_t n;
	int r;

	/* Refused before copy_prepare would make rel_dst's parents inside rel_src. */
	n = rel_src ? strlen(rel_src) : 0;
	if (n > 0 && rel_dst && strncmp(rel_dst, rel_src, n) == 0 && rel_dst[n] == '/')
		return kiva_error_set(
			reterr, -EINVAL,
			"Cannot move storage volume '%s' to '%s': a volume cannot be moved into itself",
			rel_src, rel_dst);
	r = copy_prepare(pool, rel_src, rel_dst, &src, &dst, reterr);
	if (r < 0)
		return r;
	op_begin();
	r = pool->ops->volume_rename(pool, src, dst);
	switch (r) {
	case 0:
		return 0;
	case -EEXIST:
		return kiva_error_set(reterr, r, "Storage volume '%s' already exists", rel_dst);
	case -ENOENT:
		return kiva_error_set(reterr, r, "Storage volume '%s' does not exist", rel_src);
	case -EINVAL:
		return kiva_error_set(
			reterr, r,
			"Cannot move storage volume '%s' to '%s': a volume cannot be moved into itself",
			rel_src, rel_dst);
	default:
		return kiva_error_set(reterr, r,
				      "Failed to move storage volume '%s' to '%s' (%s): %s",
				      rel_src, rel_dst, pool->ops->name, op_detail(r));
	}
}

/* Checks and resolves rel, which must be an existing directory. */
static int existing_prepare(struct storage_pool *pool, const char *rel, char **ret_path,
			    struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	struct stat st;
	int r;

	r = storage_rel_path_check(rel, reterr);
	if (r < 0)
		return r;
	path = storage_volume_path(pool, rel);
	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return kiva_error_set(reterr, -ENOENT, "Storage volume '%s' does not exist", rel);
	*ret_path = TAKE_PTR(path);
	return 0;
}

int storage_volume_usage(struct storage_pool *pool, const char *rel, uint64_t *ret_referenced,
			 uint64_t *ret_exclusive, struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	uint64_t referenced = 0, exclusive = 0;
	int r;

	r = existing_prepare(pool, rel, &path, reterr);
	if (r < 0)
		return r;
	op_begin();
	r = pool->ops->volume_usage(pool, path, &referenced, &exclusive);
	if (r == -ENOENT)
		return kiva_error_set(reterr, r, "Storage volume '%s' does not exist", rel);
	if (r < 0)
		return kiva_error_set(
			reterr, r,
			"Failed to measure the disk usage of storage volume '%s' (%s): %s", rel,
			pool->ops->name, op_detail(r));
	if (ret_referenced)
		*ret_referenced = referenced;
	if (ret_exclusive)
		*ret_exclusive = exclusive;
	return 0;
}

int storage_volume_set_limit(struct storage_pool *pool, const char *rel, uint64_t bytes,
			     struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	int r;

	r = existing_prepare(pool, rel, &path, reterr);
	if (r < 0)
		return r;
	if (!pool->ops->volume_set_limit)
		return kiva_error_set(
			reterr, -EOPNOTSUPP,
			"Cannot set limits.disk on storage volume '%s': limits.disk needs the btrfs storage driver (this pool is %s)",
			rel, pool->ops->name);
	op_begin();
	r = pool->ops->volume_set_limit(pool, path, bytes);
	if (r < 0)
		return kiva_error_set(reterr, r,
				      "Failed to set limits.disk on storage volume '%s' (%s): %s",
				      rel, pool->ops->name, op_detail(r));
	return 0;
}

int storage_volume_delete(struct storage_pool *pool, const char *rel, struct kiva_error *reterr)
{
	cleanup_free char *path = NULL;
	int r;

	r = storage_rel_path_check(rel, reterr);
	if (r < 0)
		return r;
	path = storage_volume_path(pool, rel);
	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	op_begin();
	r = pool->ops->volume_delete(pool, path);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to delete storage volume '%s' (%s): %s",
				      rel, pool->ops->name, op_detail(r));
	return 0;
}

/* Picks the backend for "auto": whatever an earlier run used, else btrfs when possible.
 * *ret_probed is set when the choice comes from probing the host, not from existing state. */
static const char *driver_auto(const char *state_dir, bool *ret_probed)
{
	cleanup_free char *mnt = strf("%s/storage-pools/default", state_dir);
	cleanup_free char *img = strf("%s/disks/default.img", state_dir);
	cleanup_free char *mountinfo = NULL;
	cleanup_free char *fstype = NULL;
	struct stat st;

	*ret_probed = false;
	if (!mnt || !img)
		return "dir";
	if (storage_path_is_btrfs(state_dir))
		return "btrfs";
	if (read_file("/proc/self/mountinfo", 16 << 20, &mountinfo, NULL) >= 0 &&
	    storage_mountinfo_find(mountinfo, mnt, &fstype, NULL) >= 0 && streq(fstype, "btrfs"))
		return "btrfs";
	if (stat(img, &st) == 0)
		return "btrfs";
	if (stat(mnt, &st) == 0 && st.st_nlink > 2)
		return "dir"; /* an existing dir pool with volumes in it */
	*ret_probed = true;
	return storage_btrfs_supported() ? "btrfs" : "dir";
}

int storage_pool_open(const char *state_dir, const char *driver, uint64_t loop_size_bytes,
		      struct storage_pool **ret, struct kiva_error *reterr)
{
	cleanup_free char *canonical = NULL;
	struct storage_pool *pool;
	bool probed = false;
	int r;

	if (!state_dir || state_dir[0] != '/')
		return kiva_error_set(reterr, -EINVAL, "State directory must be an absolute path");
	r = mkdir_p(state_dir, 0711);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create state directory '%s': %s",
				      state_dir, strerror(-r));
	/* Canonical, so the pool's mount point matches /proc/self/mountinfo on a reopen. */
	canonical = realpath(state_dir, NULL);
	if (!canonical)
		return kiva_error_set(reterr, -errno, "Failed to resolve '%s': %m", state_dir);
	state_dir = canonical;
	if (!driver || streq(driver, "auto"))
		driver = driver_auto(state_dir, &probed);

	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	if (streq(driver, "btrfs")) {
		pool->ops = &storage_btrfs_ops;
		r = storage_btrfs_pool_open(pool, state_dir, loop_size_bytes, reterr);
		if (r < 0 && probed) {
			/* A fresh "auto" pool where btrfs looked possible but the loop setup
			 * failed (no free loop device, a container without loop access...):
			 * nothing was left behind, fall back to dir as "auto" promises. */
			free(pool->path);
			free(pool->source);
			free(pool->loop_dev);
			*pool = (struct storage_pool){.ops = &storage_dir_ops};
			if (reterr)
				*reterr = (struct kiva_error){0};
			r = storage_dir_pool_open(pool, state_dir, reterr);
		}
	} else if (streq(driver, "dir")) {
		pool->ops = &storage_dir_ops;
		r = storage_dir_pool_open(pool, state_dir, reterr);
	} else {
		r = kiva_error_set(reterr, -EINVAL,
				   "Unknown storage driver '%s' (expected btrfs, dir or auto)",
				   driver);
	}
	if (r < 0) {
		storage_pool_free(pool);
		return r;
	}
	*ret = pool;
	return 0;
}

void storage_pool_free(struct storage_pool *pool)
{
	if (!pool)
		return;
	free(pool->path);
	free(pool->source);
	free(pool->loop_dev);
	free(pool);
}

int storage_pool_unmount(struct storage_pool *pool)
{
	if (!pool || pool->ops != &storage_btrfs_ops)
		return 0;
	return storage_btrfs_pool_unmount(pool);
}

int storage_rename_noreplace(const char *abs_src, const char *abs_dst)
{
	struct stat st;

	if (renameat2(AT_FDCWD, abs_src, AT_FDCWD, abs_dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* EINVAL: no RENAME_NOREPLACE in this file system, or abs_dst inside abs_src (which
	 * rename(2) refuses again below). */
	if (lstat(abs_dst, &st) == 0)
		return -EEXIST;
	return rename(abs_src, abs_dst) < 0 ? -errno : 0;
}

/* Hard-linked files seen by the usage walk, counted once at the end. */
struct usage_link {
	uint64_t dev, ino, bytes;
};

struct usage_walk {
	uint64_t bytes;
	struct usage_link *links;
	size_t n_links, cap_links;
};

static int usage_link_cmp(const void *a, const void *b)
{
	const struct usage_link *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

static int usage_add_link(struct usage_walk *w, const struct statx *stx)
{
	if (w->n_links == w->cap_links) {
		size_t cap = w->cap_links ? w->cap_links * 2 : 64;
		struct usage_link *links = reallocarray(w->links, cap, sizeof(*links));

		if (!links)
			return -ENOMEM;
		w->links = links;
		w->cap_links = cap;
	}
	w->links[w->n_links++] = (struct usage_link){
		.dev = ((uint64_t)stx->stx_dev_major << 32) | stx->stx_dev_minor,
		.ino = stx->stx_ino,
		.bytes = stx->stx_blocks * 512,
	};
	return 0;
}

/* Adds up the directory fd (taken over). */
static int usage_dir(int fd, struct usage_walk *w)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		close(fd);
		return -errno;
	}
	for (;;) {
		struct statx stx;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno != 0)
				r = -errno;
			break;
		}
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (statx(dirfd(d), de->d_name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
			  STATX_TYPE | STATX_INO | STATX_NLINK | STATX_BLOCKS, &stx) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			r = -errno;
			break;
		}
		if (S_ISREG(stx.stx_mode)) {
			if (stx.stx_nlink > 1)
				r = usage_add_link(w, &stx);
			else
				w->bytes += stx.stx_blocks * 512;
		} else if (S_ISDIR(stx.stx_mode)) {
			int sub;

			if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
			    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
				continue; /* another mount: not ours to count */
			sub = openat(dirfd(d), de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				if (errno == ENOENT)
					continue;
				r = -errno;
				break;
			}
			r = usage_dir(sub, w);
		}
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

int storage_tree_usage(const char *abs_path, uint64_t *ret_bytes)
{
	struct usage_walk w = {0};
	int fd, r;

	fd = open(abs_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = usage_dir(fd, &w);
	if (r >= 0 && w.n_links > 0) {
		qsort(w.links, w.n_links, sizeof(*w.links), usage_link_cmp);
		for (size_t i = 0; i < w.n_links; i++)
			if (i == 0 || usage_link_cmp(&w.links[i - 1], &w.links[i]) != 0)
				w.bytes += w.links[i].bytes;
	}
	free(w.links);
	if (r < 0)
		return r;
	*ret_bytes = w.bytes;
	return 0;
}

char *storage_find_program(const char *name)
{
	const char *env = getenv("PATH");
	cleanup_free char *dirs = strf("%s:/usr/sbin:/sbin:/usr/bin:/bin", env ? env : "");
	char *save = NULL;

	if (!dirs)
		return NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p;

		if (d[0] != '/')
			continue;
		p = strf("%s/%s", d, name);
		if (!p)
			return NULL;
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* Last non-empty line of s, trimmed, in place. */
static const char *last_line(char *s)
{
	size_t n = strlen(s);
	char *nl;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = 0;
	nl = strrchr(s, '\n');
	return nl ? nl + 1 : s;
}

int storage_run(char *const argv[], struct kiva_error *reterr)
{
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	posix_spawn_file_actions_t fa;
	cleanup_close int rfd = -EBADF;
	int pipefd[2], status, r;
	char out[4096];
	size_t len = 0;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return kiva_error_set(reterr, -errno, "Failed to run '%s': %m", argv[0]);
	rfd = pipefd[0];
	r = posix_spawn_file_actions_init(&fa);
	if (r == 0)
		r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	if (r == 0)
		r = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0)
		return kiva_error_set(reterr, -r, "Failed to run '%s': %s", argv[0], strerror(r));

	for (;;) {
		char buf[4096];
		ssize_t n = read(rfd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Keep the tail: the last line is what explains a failure. */
		if ((size_t)n >= sizeof(out) - 1) {
			memcpy(out, buf + n - (sizeof(out) - 1), sizeof(out) - 1);
			len = sizeof(out) - 1;
		} else {
			if (len + (size_t)n > sizeof(out) - 1) {
				size_t drop = len + (size_t)n - (sizeof(out) - 1);

				memmove(out, out + drop, len - drop);
				len -= drop;
			}
			memcpy(out + len, buf, (size_t)n);
			len += (size_t)n;
		}
	}
	out[len] = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return kiva_error_set(reterr, -errno, "Failed to wait for '%s': %m",
					      argv[0]);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return kiva_error_set(reterr, -EIO, "'%s' failed with exit status %d: %s", argv[0],
				      WEXITSTATUS(status), last_line(out));
	return kiva_error_set(reterr, -EIO, "'%s' was killed by signal %d", argv[0],
			      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
