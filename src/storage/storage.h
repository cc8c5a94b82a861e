/* Storage pools: where image and instance root file systems live. Backends sit behind
 * struct storage_ops (like lxc's struct lxc_storage_ops): btrfs (default; subvolumes and
 * snapshots, on a loop file when the state dir is not on btrfs) and dir (plain copies).
 *
 * A volume is named by a relative path inside the pool: "images/<fingerprint>",
 * "containers/<name>", "snapshots/<instance>/<snapshot>" (a read-only snapshot of
 * "containers/<instance>"). All functions block (ioctl, mkfs, copies, walks); kivad calls the
 * cheap ones (btrfs snapshot/rename/delete/limit: well under 10 ms) on its loop and the copying
 * or walking ones (dir clone/snapshot, usage) from a worker. Each function is safe to call from
 * any thread; two calls on the same volume at once are the caller's race to avoid. */
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
	/* Creates dst as a copy of src, read-only when asked and the backend can enforce it. */
	int (*volume_snapshot)(struct storage_pool *pool, const char *abs_src, const char *abs_dst,
			       bool readonly);
	/* Moves src to dst (dst's parent exists; dst must not). */
	int (*volume_rename)(struct storage_pool *pool, const char *abs_src, const char *abs_dst);
	/* Bytes the volume references and holds exclusively (see storage_volume_usage). */
	int (*volume_usage)(struct storage_pool *pool, const char *abs_path,
			    uint64_t *ret_referenced, uint64_t *ret_exclusive);
	/* Caps the bytes the volume may reference, 0 = no cap. NULL: not supported. */
	int (*volume_set_limit)(struct storage_pool *pool, const char *abs_path, uint64_t bytes);
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
 * dir (a full copy: call it from a worker). The copy is writable even when rel_src is a
 * read-only snapshot (restore, copy of a snapshot). -ENOENT if rel_src is missing, -EEXIST if
 * rel_dst exists; on failure nothing is left at rel_dst. */
int storage_volume_clone(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			 struct kiva_error *reterr);

/* Deletes a volume and everything in it, nested subvolumes included, read-only snapshots too
 * (also a plain directory of them such as "snapshots/<instance>"). Missing is success.
 * Symlinks are not followed; walks of plain directories stop at mount points (-EBUSY for btrfs,
 * -EXDEV for dir). Stop the container first. btrfs: ~30-60 us (the space is reclaimed
 * asynchronously by the cleaner); dir: rm -rf. */
int storage_volume_delete(struct storage_pool *pool, const char *rel, struct kiva_error *reterr);

/* Creates rel_dst as a point-in-time copy of rel_src, read-only when readonly is set; missing
 * parents of rel_dst are made as plain 0711 directories. Instance snapshots are
 * storage_volume_snapshot(pool, "containers/<i>", "snapshots/<i>/<snap>", true, ...).
 * btrfs: BTRFS_IOC_SNAP_CREATE_V2 (BTRFS_SUBVOL_RDONLY when readonly): consistent (data still in
 * the page cache is flushed into it), ~1.5-3 ms whatever the file count (measured on a loop
 * pool; longer with much dirty data to flush), any thread; writes into a read-only snapshot fail
 * with EROFS. Subvolumes nested in rel_src show up as empty directories.
 * dir: cp -a, a full copy (call it from a worker), readonly is NOT enforced and the copy of a
 * running container is not point-in-time. Errors: -EINVAL bad path, -ENOENT rel_src missing,
 * -EEXIST rel_dst exists, else the failed step's errno; on failure nothing is left at rel_dst
 * (parent directories it made stay). */
int storage_volume_snapshot(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			    bool readonly, struct kiva_error *reterr);

/* Moves the volume (or plain directory of volumes, e.g. "snapshots/<instance>") rel_src to
 * rel_dst with renameat2(RENAME_NOREPLACE); missing parents of rel_dst are made as plain 0711
 * directories (and left behind if the move then fails). Read-only btrfs snapshots move too: the
 * kernel refuses to move one to another directory (EROFS), so its read-only flag is cleared for
 * the move and set again on rel_dst. Errors: -EINVAL bad path or rel_dst inside rel_src, -ENOENT
 * rel_src missing, -EEXIST rel_dst exists, -EBUSY a mount point. ~0.1 ms (renameat2 and a few
 * lstat/mkdir); ~2-3 ms when a read-only snapshot changes directory (two flag changes, each a
 * btrfs transaction commit); any thread. */
int storage_volume_rename(struct storage_pool *pool, const char *rel_src, const char *rel_dst,
			  struct kiva_error *reterr);

/* Bytes the volume uses. btrfs with quotas enabled (see storage_volume_set_limit) and rel a
 * subvolume: its qgroup 0/<subvolid> as of a transaction commit this call forces
 * (BTRFS_IOC_SYNC, after waiting for a running quota rescan): *ret_referenced is every byte the
 * subvolume points at (shared with its image or other snapshots included: what limits.disk
 * caps), *ret_exclusive the bytes only it holds (what deleting it frees: the number to show for
 * a snapshot). The sync flushes the whole pool's dirty data: ~1.5-4 ms when idle, up to
 * seconds under heavy writes. Otherwise (dir, btrfs without quotas, a plain directory of volumes): a walk
 * summing st_blocks * 512 of the regular files (hard links counted once, symlinks not followed,
 * nested btrfs subvolumes included, other mounts not crossed), both outputs set to that sum
 * (sharing with other volumes is unknown): one statx per file, ~3 ms per 1000 files when cached.
 * Call it from a worker. Either out parameter may be NULL; they are written only on success.
 * Errors: -EINVAL bad path, -ENOENT missing, else the errno of the failed step. */
int storage_volume_usage(struct storage_pool *pool, const char *rel, uint64_t *ret_referenced,
			 uint64_t *ret_exclusive, struct kiva_error *reterr);

/* limits.disk: caps the bytes the volume references at bytes (0 removes the cap). Writes beyond
 * it fail with EDQUOT (at write(2) or at the latest at fsync/sync: btrfs reserves space for
 * buffered data as it is written). btrfs only: the first non-zero limit enables quotas on the
 * pool (BTRFS_IOC_QUOTA_CTL, then waits for the initial rescan: ~3 ms on a near-empty pool,
 * growing with the data to scan), then BTRFS_IOC_QGROUP_LIMIT sets max_rfer of qgroup
 * 0/<subvolid> (~20 us). Quotas stay enabled (they slow snapshot deletion, which is why they
 * are enabled only on first use); clearing a limit on a pool without quotas does not enable
 * them. Clones and snapshots INHERIT the source's limit (the kernel copies qgroup limits into a
 * snapshot's qgroup): after a copy or a restore, set what the new instance's config says (0 to
 * clear) if it may differ.
 * Errors: -EOPNOTSUPP on dir ("limits.disk needs the btrfs storage driver") or when rel is not a
 * btrfs subvolume, -ENOENT missing, -EINVAL bad path, else the ioctl's errno. Any thread, but not
 * from the loop when quotas may still need enabling (the rescan can take long). */
int storage_volume_set_limit(struct storage_pool *pool, const char *rel, uint64_t bytes,
			     struct kiva_error *reterr);

/* True when rel is valid and is a directory in the pool. */
bool storage_volume_exists(const struct storage_pool *pool, const char *rel);
