/* Storage pools: where image and instance root file systems live. Backends sit behind
 * struct storage_ops (like lxc's struct lxc_storage_ops): btrfs (default; subvolumes and
 * snapshots, on a loop file when the state dir is not on btrfs) and dir (plain copies).
 *
 * A volume is named by a relative path inside the pool: "images/<fingerprint>",
 * "containers/<name>". All functions block (ioctl, mkfs, copies); kivad calls the cheap ones
 * (btrfs snapshot/delete: a few ms) on its loop and the copying ones from a worker. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic-error.h"

struct storage_pool;

struct storage_ops {
	const char *name; /* "btrfs", "dir" */
	/* Creates an empty volume (btrfs: subvolume; dir: directory). */
	int (*volume_create)(struct storage_pool *pool, const char *abs_path);
	/* Creates dst as a writable copy of src (btrfs: snapshot; dir: cp -a). */
	int (*volume_clone)(struct storage_pool *pool, const char *abs_src, const char *abs_dst);
	/* Deletes a volume and everything in it. Missing is success. */
	int (*volume_delete)(struct storage_pool *pool, const char *abs_path);
};

struct storage_pool {
	const struct storage_ops *ops;
	char *path; /* mount point / directory of the pool */
	char *source; /* loop file or block device, NULL for dir and native btrfs */
	char *loop_dev; /* /dev/loopN when a loop file is attached */
};

/* Opens (first time: creates) the default pool under state_dir.
 * driver: "btrfs", "dir" or NULL/"auto" (btrfs when possible, else dir).
 * For btrfs on a non-btrfs state dir: STATE_DIR/disks/default.img (sparse, loop_size_bytes,
 * 0 = LXD's rule: 20% of free space, clamped to [5 GiB, 30 GiB]) attached to a loop device,
 * formatted with mkfs.btrfs on first use, mounted at STATE_DIR/storage-pools/default.
 * Idempotent: an existing mount is reused, an existing formatted image is not reformatted.
 * "auto" keeps what an earlier run used (btrfs mount or image file, or a non-empty dir pool);
 * on a fresh state dir it probes, and falls back to dir if the loop setup fails (check
 * (*ret)->ops->name). state_dir is created if missing and resolved with realpath(3).
 * Errors: -EINVAL (bad driver/path), -EOPNOTSUPP (btrfs asked for but unavailable), or the
 * errno of the failed step (mkfs, loop ioctl, mount), with a message. Blocking (mkfs once:
 * ~25 ms on a fresh image; reattach ~5 ms); call before the loop runs. */
int storage_pool_open(const char *state_dir, const char *driver, uint64_t loop_size_bytes,
		      struct storage_pool **ret, struct kiva_error *reterr);

/* Frees the handle. Does not unmount (containers keep running without kivad). */
void storage_pool_free(struct storage_pool *pool);

/* Unmounts the pool and detaches its loop device (for tests and `kivad --shutdown`). */
int storage_pool_unmount(struct storage_pool *pool);

/* Checks a volume path relative to the pool: not empty, not absolute, no empty, "." or ".."
 * components. Returns 0 or -EINVAL with a message. Pure; any thread. */
int storage_rel_path_check(const char *rel, struct kiva_error *reterr);

/* Absolute path of a volume. Caller frees. NULL on OOM or when rel is invalid (see above). */
char *storage_volume_path(const struct storage_pool *pool, const char *rel);

/* Creates an empty volume (missing parents are made as plain 0711 directories).
 * -EEXIST if rel exists, -EINVAL for a bad rel. btrfs: one ioctl, any thread. */
int storage_volume_create(struct storage_pool *pool, const char *rel, struct kiva_error *reterr);

/* Creates rel_dst as a writable copy of rel_src: a btrfs snapshot (~1.5-2 ms whatever the file
 * count; subvolumes nested in rel_src show up as empty directories in the copy) or cp -a for
 * dir (a full copy: call it from a worker). -ENOENT if rel_src is missing, -EEXIST if rel_dst
 * exists; on failure nothing is left at rel_dst. */
int storage_volume_clone(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			 struct kiva_error *reterr);

/* Deletes a volume and everything in it, nested subvolumes included. Missing is success.
 * Symlinks are not followed; walks of plain directories stop at mount points (-EBUSY for btrfs,
 * -EXDEV for dir). Stop the container first. btrfs: ~30-60 us (the space is reclaimed
 * asynchronously by the cleaner); dir: rm -rf. */
int storage_volume_delete(struct storage_pool *pool, const char *rel, struct kiva_error *reterr);

/* True when rel is valid and is a directory in the pool. */
bool storage_volume_exists(const struct storage_pool *pool, const char *rel);
