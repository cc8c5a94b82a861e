/* Internals shared by the storage backends (storage.c, storage-btrfs.c, storage-dir.c) and their
 * unit tests: the backend ops tables, the pool openers, a fork/exec helper, and the pure helpers
 * (loop size rule, /proc/self/mountinfo parsing, btrfs superblock check) split out so they can be
 * tested without root. Not part of the module's API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic-error.h"
#include "storage.h"

#define STORAGE_GIB (UINT64_C(1) << 30)
#define STORAGE_LOOP_MIN_BYTES (5 * STORAGE_GIB)
#define STORAGE_LOOP_MAX_BYTES (30 * STORAGE_GIB)

/* Offset and value of the btrfs superblock magic (primary superblock at 64 KiB, magic at +64). */
#define STORAGE_BTRFS_MAGIC_OFFSET (65536 + 64)
#define STORAGE_BTRFS_MAGIC "_BHRfS_M"

extern const struct storage_ops storage_btrfs_ops;
extern const struct storage_ops storage_dir_ops;

/* Detail of the last failed backend operation on this thread (e.g. cp's or mkfs's message), which
 * the ops cannot return; storage.c clears it before and reads it after each op. */
extern _Thread_local struct kiva_error storage_op_error;

/* Fill in pool (allocated and zeroed by the caller: path/source/loop_dev NULL) for the default
 * pool under state_dir. On error the caller frees the fields that were set. */
int storage_btrfs_pool_open(struct storage_pool *pool, const char *state_dir,
			    uint64_t loop_size_bytes, struct kiva_error *reterr);
int storage_dir_pool_open(struct storage_pool *pool, const char *state_dir,
			  struct kiva_error *reterr);
int storage_btrfs_pool_unmount(struct storage_pool *pool);

/* True when this host can run a btrfs loop pool: the kernel knows btrfs (after a quiet
 * `modprobe btrfs`), mkfs.btrfs is installed and /dev/loop-control exists. */
bool storage_btrfs_supported(void);

/* True when path lives on a btrfs file system. */
bool storage_path_is_btrfs(const char *path);

/* LXD's loop size rule: 20% of free_bytes, clamped to [5 GiB, 30 GiB]. */
uint64_t storage_loop_size_default(uint64_t free_bytes);

/* True when buf (at least STORAGE_BTRFS_MAGIC_OFFSET + 8 bytes of a device or image) holds a
 * btrfs superblock magic. */
bool storage_btrfs_magic_ok(const void *buf, size_t len);

/* Looks mountpoint up in the text of /proc/self/mountinfo (octal escapes such as \040 are
 * decoded). The last matching line wins (the mount on top). On success *ret_fstype and
 * *ret_source (malloc'd; either may be NULL if not wanted) are set and 0 is returned;
 * -ENOENT when not mounted, -ENOMEM. Pure. */
int storage_mountinfo_find(const char *mountinfo, const char *mountpoint, char **ret_fstype,
			   char **ret_source);

/* Bytes the tree at abs_path (a directory) holds: the sum of st_blocks * 512 of its regular files,
 * hard links counted once, symlinks not followed, other mounts not crossed (btrfs subvolumes,
 * which have their own st_dev, are walked). One statx per entry. 0 or -errno. */
int storage_tree_usage(const char *abs_path, uint64_t *ret_bytes);

/* renameat2(RENAME_NOREPLACE): -EEXIST when abs_dst exists, -ENOENT when abs_src is missing. On a
 * file system without RENAME_NOREPLACE, an lstat check and rename(2) (racy, but only kivad
 * writes the pool). 0 or -errno. */
int storage_rename_noreplace(const char *abs_src, const char *abs_dst);

/* Finds an executable (e.g. "mkfs.btrfs") in $PATH, /usr/sbin, /sbin, /usr/bin, /bin.
 * Returns a malloc'd absolute path or NULL. */
char *storage_find_program(const char *name);

/* Runs argv[0] (an absolute path) with argv, stdin from /dev/null, stdout and stderr captured.
 * Returns 0 when it exits with status 0; otherwise a negative errno and reterr says what ran and
 * the last line of its output. */
int storage_run(char *const argv[], struct kiva_error *reterr);
