/* dir storage backend: volumes are plain directories under STATE_DIR/storage-pools/default,
 * clones and snapshots are `cp -a --reflink=auto` (cheap on XFS/btrfs with reflinks, a full copy
 * elsewhere; a "read-only" snapshot is an ordinary writable copy, nothing enforces it), deletes
 * are rm_rf, usage is a walk of the tree and limits.disk is not supported. Works on any file
 * system; the fallback when btrfs is unavailable. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "storage-internal.h"
#include "storage.h"

int storage_dir_pool_open(struct storage_pool *pool, const char *state_dir,
			  struct kiva_error *reterr)
{
	cleanup_free char *path = strf("%s/storage-pools/default", state_dir);
	int r;

	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = mkdir_p(path, 0711);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create '%s': %s", path, strerror(-r));
	pool->path = TAKE_PTR(path);
	return 0;
}

static int dir_volume_create(struct storage_pool *pool, const char *abs_path)
{
	return mkdir(abs_path, 0755) < 0 ? -errno : 0;
}

static int dir_volume_clone(struct storage_pool *pool, const char *abs_src, const char *abs_dst)
{
	char *argv[] = {"/bin/cp", "-a", "--reflink=auto", (char *)abs_src, (char *)abs_dst, NULL};
	struct stat st;
	int r;

	/* cp copies SRC as DST only when DST does not exist yet. */
	if (lstat(abs_dst, &st) == 0)
		return -EEXIST;
	r = storage_run(argv, &storage_op_error);
	if (r < 0)
		(void)rm_rf(abs_dst);
	return r;
}

static int dir_volume_delete(struct storage_pool *pool, const char *abs_path)
{
	return rm_rf(abs_path);
}

/* Nothing here can make a directory tree read-only for root: readonly is not enforced. */
static int dir_volume_snapshot(struct storage_pool *pool, const char *abs_src, const char *abs_dst,
			       bool readonly)
{
	return dir_volume_clone(pool, abs_src, abs_dst);
}

static int dir_volume_rename(struct storage_pool *pool, const char *abs_src, const char *abs_dst)
{
	return storage_rename_noreplace(abs_src, abs_dst);
}

static int dir_volume_usage(struct storage_pool *pool, const char *abs_path,
			    uint64_t *ret_referenced, uint64_t *ret_exclusive)
{
	uint64_t bytes;
	int r;

	r = storage_tree_usage(abs_path, &bytes);
	if (r < 0)
		return r;
	*ret_referenced = bytes;
	*ret_exclusive = bytes;
	return 0;
}

const struct storage_ops storage_dir_ops = {
	.name = "dir",
	.volume_create = dir_volume_create,
	.volume_clone = dir_volume_clone,
	.volume_delete = dir_volume_delete,
	.volume_snapshot = dir_volume_snapshot,
	.volume_rename = dir_volume_rename,
	.volume_usage = dir_volume_usage,
	.volume_set_limit = NULL, /* limits.disk needs btrfs quotas */
};
