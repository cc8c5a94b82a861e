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

/* File descriptors passed over a unix socket (SCM_RIGHTS), at most FD_PASS_MAX a message. */
#define FD_PASS_MAX 4
/* Sends len bytes (at least 1) with nfds fds, which stay the caller's. No SIGPIPE. Returns the
 * bytes sent or -errno. */
ssize_t fd_send(int sock, const void *data, size_t len, const int *fds, size_t nfds);
/* Receives one message into buf with up to max_fds fds (close-on-exec) into fds, their number
 * in *ret_nfds. Returns the bytes read (0: EOF) or -errno; -EBADMSG when data or fds were cut
 * (the fds it got are closed then). Retries on EINTR. */
ssize_t fd_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *ret_nfds);
