/* File-system helpers: directories, whole-file reads and atomic writes, recursive removal. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with the given mode for created components. Returns 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);

/* Reads a whole file (at most max_bytes) and NUL-terminates it. Caller frees *ret. */
int read_file(const char *path, size_t max_bytes, char **ret, size_t *ret_len);

/* Writes data to path atomically: temp file in the same directory, fsync, rename. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* The same without fsync: readers never see a torn file, but a crash may lose the new content.
 * For files regenerated from durable state anyway (liblxc configs). */
int write_file_replace(const char *path, const void *data, size_t len, mode_t mode);

/* rm -rf that never crosses into another file system and does not follow symlinks.
 * A missing path is success. */
int rm_rf(const char *path);

/* Copies a regular file (content and mode). */
int copy_file(const char *src, const char *dst, mode_t mode);
