/* /1.0/instances/NAME/files?path=P: the files of an instance, as LXD's file API has them
 * (doc/rest-api.yaml, lxd/instance_file.go):
 *   GET     a regular file: its bytes; a directory: the names in it (a sync response); a symlink:
 *           its target. With X-LXD-uid, -gid (the container's ids), -mode (octal, permission
 *           bits) and -type (file, directory or symlink) headers.
 *   POST    X-LXD-type file (the body; X-LXD-write: overwrite, the default, or append), directory
 *           or symlink (the body is the target). X-LXD-uid, -gid and -mode apply to what is
 *           created; to an existing file only those X-LXD-modify-perm names ("uid,gid,mode", as
 *           newer LXD clients send), so LXD 5.0's client, which always sends its local file's,
 *           leaves an existing file's owner and mode alone as LXD 5.0 did.
 *   DELETE  a file, a symlink or an empty directory.
 *
 * An instance's rootfs is a plain directory on disk (ids shifted by idmap_base, no overlay), bind
 * mounted as the container's root while it runs; ids are mapped here. A stopped instance is served
 * from that directory. A running one from its root as its init sees it (/proc/PID/root, checked
 * to be that same directory), so the tmpfs it mounted itself (/tmp, /run, /dev) are seen as it
 * sees them, and what is written is visible inside at once, as with LXD, whose file API works in
 * the container's mount namespace.
 *
 * Confinement: the root is opened, then every path is resolved by the kernel from it with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so "..", absolute symlinks and symlinks the
 * container planted resolve inside its root whatever it does to its tree meanwhile, and magic
 * links (/proc/PID/root, /proc/self/fd/N) are refused. A stopped instance's tree is walked with
 * RESOLVE_NO_XDEV too: no mount is crossed. In a running one's, the container's own mounts are
 * crossed, but what a push or a delete changes must be on its root file system or on a tmpfs
 * (never /proc, /sys, cgroups or resolv.conf, bind-mounted from the host), nothing is read from
 * a pseudo file system (/proc, /sys, cgroups...), and its mount points are not deleted.
 *
 * What a push creates is made relative to its parent's fd (O_CREAT | O_EXCL | O_NOFOLLOW,
 * mkdirat, symlinkat) and owned and moded through fds. Only regular files are ever opened for
 * reading or writing: a path is opened O_PATH first and reopened (through /proc/self/fd, the same
 * inode) once fstat says "regular file", so a device node or FIFO in an imported image is never
 * opened.
 *
 * A push's body was stored by the server (req->upload_path, at most API_FILE_MAX bytes). It is
 * copied into the instance 8 MiB per loop iteration (an idle handle), so a large push does not
 * stall the daemon; the request is answered when the copy is done. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-log.h"
#include "basic-string.h"
#include "runtime.h"

#define PUSH_STEP_BYTES (8u * 1024 * 1024)
#define OVERFLOW_ID 65534 /* how the container sees an id outside its map */

enum file_type { FILE_TYPE_FILE, FILE_TYPE_DIRECTORY, FILE_TYPE_SYMLINK };

/* What a POST asks for, from its X-LXD-* headers. ids and mode are -1 when not given. */
struct file_args {
	enum file_type type;
	bool append;
	int64_t uid, gid;
	int mode;
	bool modify_uid, modify_gid, modify_mode;
};

/* The request's path: shown to the user ("/etc/hosts") and relative to the rootfs ("etc/hosts",
 * "." for the root). */
struct file_path {
	char shown[1100];
	char rel[1100];
};

/* The root requests resolve from. */
struct files_root {
	int fd; /* O_PATH */
	bool live; /* the running container's mount namespace */
	uint64_t mnt_id; /* live: the mount of the container's root */
};

DEFINE_CLEANUP_FUNC(DIR *, closedir)

static void files_root_done(struct files_root *root)
{
	if (root->fd >= 0)
		close(root->fd);
	root->fd = -EBADF;
}
#define cleanup_root __attribute__((cleanup(files_root_done)))

/* ---- resolution inside the rootfs ---- */

/* openat2 from the root. Returns 0 or -errno. */
static int open_in_root(const struct files_root *root, const char *rel, uint64_t flags, int *ret_fd)
{
	struct open_how how = {
		.flags = flags | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
			   (root->live ? 0 : RESOLVE_NO_XDEV),
	};
	int fd = -1;

	/* EAGAIN: a rename or mount raced with the lookup (openat2(2)); try again */
	for (int i = 0; i < 8; i++) {
		fd = (int)syscall(SYS_openat2, root->fd, rel, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			break;
	}
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/* Opens the inode an O_PATH fd refers to (no path lookup: /proc/self/fd/N is our own fd). */
static int reopen(int pathfd, int flags, int *ret_fd)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", pathfd);
	fd = open(p, flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

static void reply_errno(struct api_request *req, int r, const struct file_path *p)
{
	const char *name = req->params[0];

	switch (-r) {
	case ENOENT:
		api_reply_error(req, 404, "'%s' not found in instance '%s'", p->shown, name);
		break;
	case ENOTDIR:
		api_reply_error(req, 400, "A component of '%s' is not a directory", p->shown);
		break;
	case EISDIR:
		api_reply_error(req, 400, "'%s' is a directory", p->shown);
		break;
	case EXDEV:
		api_reply_error(req, 403,
				"'%s' is not on the instance's own file systems (a mount from the "
				"host, /proc or /sys)",
				p->shown);
		break;
	case ELOOP:
		api_reply_error(req, 403,
				"'%s' resolves through a /proc magic link or too many symlinks",
				p->shown);
		break;
	case EEXIST:
		api_reply_error(req, 409, "'%s' already exists", p->shown);
		break;
	case ENOTEMPTY:
		api_reply_error(req, 409, "Directory '%s' is not empty", p->shown);
		break;
	case EACCES:
	case EPERM:
		api_reply_error(req, 403, "Permission denied: '%s'", p->shown);
		break;
	case ENAMETOOLONG:
		api_reply_error(req, 400, "Path too long: '%s'", p->shown);
		break;
	case ENOSPC:
	case EDQUOT:
		api_reply_error(req, 507, "No space left in instance '%s' for '%s'", name,
				p->shown);
		break;
	default:
		api_reply_error(req, 500, "Failed to access '%s' in instance '%s': %s", p->shown,
				name, strerror(-r));
		break;
	}
}

/* The path argument, or a 400 reply and -EINVAL. */
static int parse_path(struct api_request *req, struct file_path *ret)
{
	char buf[sizeof(req->query)]; /* never cut */
	const char *p = api_query(req, "path", buf, sizeof(buf));

	if (!p || !*p) {
		api_reply_error(req, 400, "Missing path argument");
		return -EINVAL;
	}
	while (*p == '/')
		p++;
	snprintf(ret->shown, sizeof(ret->shown), "/%s", p);
	snprintf(ret->rel, sizeof(ret->rel), "%s", *p ? p : ".");
	return 0;
}

/* Splits p->rel into its parent ("." at the top) and its last component, trailing slashes
 * dropped. Returns -EINVAL for the root and for a last component "." or "..". parent and leaf
 * point into buf. */
static int split_leaf(const struct file_path *p, char buf[static 1100], const char **ret_parent,
		      const char **ret_leaf)
{
	size_t n;
	char *slash;

	snprintf(buf, 1100, "%s", p->rel);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = 0;
	if (n == 0 || streq(buf, "."))
		return -EINVAL;
	slash = strrchr(buf, '/');
	*ret_leaf = slash ? slash + 1 : buf;
	if (streq(*ret_leaf, ".") || streq(*ret_leaf, ".."))
		return -EINVAL;
	if (slash)
		*slash = 0;
	*ret_parent = slash ? buf : ".";
	return 0;
}

static int mount_id(int fd, uint64_t *ret)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0)
		return -errno;
	if (!(stx.stx_mask & STATX_MNT_ID))
		return -EOPNOTSUPP;
	*ret = stx.stx_mnt_id;
	return 0;
}

/* The running container's root, as its init sees it: /proc/PID/root, if that is the rootfs
 * directory (not what a recycled PID has). Returns an O_PATH fd or -errno. */
static int open_live_root(struct api_ctx *ctx, const char *name, int diskfd, uint64_t *ret_mnt)
{
	int pid = runtime_init_pid(ctx->lxcpath, name);
	struct stat a, b;
	char p[64];
	int fd;

	if (pid <= 0)
		return -ESRCH;
	snprintf(p, sizeof(p), "/proc/%d/root", pid);
	fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &a) < 0 || fstat(diskfd, &b) < 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino || mount_id(fd, ret_mnt) < 0) {
		close(fd);
		return -ESRCH;
	}
	return fd;
}

/* Opens the root of instance req->params[0]: the running container's, else its rootfs
 * directory. Replies and returns < 0 when the instance does not exist (or is being created or
 * deleted). */
static int open_rootfs(struct api_request *req, struct files_root *ret)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0];
	const json_t *inst = store_instance(ctx->store, name);
	cleanup_free char *rel = NULL, *vol = NULL, *root = NULL;
	uint64_t mnt = 0;
	int fd, live;

	if (!inst || !streq(json_get_str(inst, "kiva_state", ""), "ready")) {
		api_reply_error(req, 404, "Instance '%s' not found", name);
		return -ENOENT;
	}
	rel = strf("containers/%s", name);
	vol = rel ? storage_volume_path(ctx->pool, rel) : NULL;
	root = vol ? strf("%s/rootfs", vol) : NULL;
	if (!root) {
		api_reply_error(req, 500, "Out of memory");
		return -ENOMEM;
	}
	fd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		log_warning("Instance '%s': failed to open %s: %m", name, root);
		api_reply_error(req, 500, "Failed to open the root file system of '%s': %s", name,
				strerror(-r));
		return r;
	}
	live = open_live_root(ctx, name, fd, &mnt);
	if (live >= 0) {
		close(fd);
		*ret = (struct files_root){.fd = live, .live = true, .mnt_id = mnt};
	} else {
		*ret = (struct files_root){.fd = fd};
	}
	return 0;
}

/* Pseudo file systems: nothing is read from them (kernel and cgroup state, not files). */
static bool is_pseudo_fs(long type)
{
	switch ((unsigned long)type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case BPF_FS_MAGIC:
	case PSTOREFS_MAGIC:
	case EFIVARFS_MAGIC:
	case DEVPTS_SUPER_MAGIC:
	case NSFS_MAGIC:
	case BINFMTFS_MAGIC:
		return true;
	default:
		return false;
	}
}

/* In a running container, fd (what is read, or what a push or delete changes: the file, or the
 * directory an entry is made or removed in) must be on an allowed file system: for writes its
 * root file system or a tmpfs, for reads anything but a pseudo file system. Returns 0 or
 * -EXDEV. */
static int check_fs(const struct files_root *root, int fd, bool write)
{
	struct statfs sfs;
	uint64_t mnt;

	if (!root->live)
		return 0; /* RESOLVE_NO_XDEV kept the lookup on the rootfs */
	if (mount_id(fd, &mnt) == 0 && mnt == root->mnt_id)
		return 0;
	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	if (write)
		return sfs.f_type == TMPFS_MAGIC ? 0 : -EXDEV;
	return is_pseudo_fs(sfs.f_type) ? -EXDEV : 0;
}

/* ---- ids and modes ---- */

static long long container_id(const struct api_ctx *ctx, unsigned host)
{
	if (host >= ctx->idmap_base && host - ctx->idmap_base < ctx->idmap_size)
		return host - ctx->idmap_base;
	return OVERFLOW_ID;
}

/* The host id of a container id (-1 stays -1: "unchanged" for fchown). */
static unsigned host_id(const struct api_ctx *ctx, int64_t id)
{
	return id < 0 ? (unsigned)-1 : ctx->idmap_base + (unsigned)id;
}

/* Sets the reply's X-LXD-* headers from st. */
static void reply_stat_headers(struct api_request *req, const struct stat *st, const char *type)
{
	char v[32];

	snprintf(v, sizeof(v), "%lld", container_id(req->ctx, st->st_uid));
	(void)api_reply_header(req, "X-LXD-uid", v);
	snprintf(v, sizeof(v), "%lld", container_id(req->ctx, st->st_gid));
	(void)api_reply_header(req, "X-LXD-gid", v);
	/* "0644": LXD's client reads it with Atoi, then as octal for the leading 0 */
	snprintf(v, sizeof(v), "%04o", (unsigned)(st->st_mode & 0777));
	(void)api_reply_header(req, "X-LXD-mode", v);
	(void)api_reply_header(req, "X-LXD-type", type);
}

static int parse_id(struct api_request *req, const char *what, const char *s, int64_t *ret)
{
	int64_t v;

	if (!*s) {
		*ret = -1;
		return 0;
	}
	if (parse_int64(s, -1, INT64_MAX, &v) < 0 || v >= (int64_t)req->ctx->idmap_size) {
		api_reply_error(req, 400,
				"Invalid %s '%s' (X-LXD-%s): the instance's ids go from 0 to %u",
				what, s, what, req->ctx->idmap_size - 1);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int parse_mode(struct api_request *req, const char *s, int *ret)
{
	unsigned long v;
	char *end;

	if (!*s || streq(s, "-1")) {
		*ret = -1;
		return 0;
	}
	if (startswith(s, "0o"))
		s += 2;
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || end == s || *end || *s == '-' || *s == '+' || v > 07777) {
		api_reply_error(req, 400, "Invalid X-LXD-mode '%s': expected octal, e.g. 0644", s);
		return -EINVAL;
	}
	*ret = (int)v;
	return 0;
}

static int parse_args(struct api_request *req, struct file_args *ret)
{
	struct file_args a = {.uid = -1, .gid = -1, .mode = -1};
	const char *t = req->lxd_type, *w = req->lxd_write;

	if (!*t || streq(t, "file")) {
		a.type = FILE_TYPE_FILE;
	} else if (streq(t, "directory")) {
		a.type = FILE_TYPE_DIRECTORY;
	} else if (streq(t, "symlink")) {
		a.type = FILE_TYPE_SYMLINK;
	} else {
		api_reply_error(req, 400, "Bad X-LXD-type '%s': file, directory or symlink", t);
		return -EINVAL;
	}
	if (streq(w, "append")) {
		a.append = true;
	} else if (*w && !streq(w, "overwrite")) {
		api_reply_error(req, 400, "Bad X-LXD-write '%s': overwrite or append", w);
		return -EINVAL;
	}
	if (parse_id(req, "uid", req->lxd_uid, &a.uid) < 0 ||
	    parse_id(req, "gid", req->lxd_gid, &a.gid) < 0 ||
	    parse_mode(req, req->lxd_mode, &a.mode) < 0)
		return -EINVAL;
	for (const char *p = req->lxd_modify_perm; *p;) {
		size_t n = strcspn(p, ",");

		if (n == 3 && strncmp(p, "uid", 3) == 0) {
			a.modify_uid = true;
		} else if (n == 3 && strncmp(p, "gid", 3) == 0) {
			a.modify_gid = true;
		} else if (n == 4 && strncmp(p, "mode", 4) == 0) {
			a.modify_mode = true;
		} else if (n > 0) {
			api_reply_error(req, 400,
					"Bad X-LXD-modify-perm '%s': a list of uid, gid "
					"and mode",
					req->lxd_modify_perm);
			return -EINVAL;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	*ret = a;
	return 0;
}

/* Owner and mode of what a push made (created: defaults 0:0 and default_mode) or of an existing
 * file (only what X-LXD-modify-perm names). chown first: it clears set-id bits. */
static int apply_perms(struct api_ctx *ctx, int fd, const struct file_args *a, bool created,
		       int default_mode)
{
	int64_t uid = created ? (a->uid < 0 ? 0 : a->uid) : (a->modify_uid ? a->uid : -1);
	int64_t gid = created ? (a->gid < 0 ? 0 : a->gid) : (a->modify_gid ? a->gid : -1);
	int mode =
		created ? (a->mode < 0 ? default_mode : a->mode) : (a->modify_mode ? a->mode : -1);

	if ((uid >= 0 || gid >= 0) && fchown(fd, host_id(ctx, uid), host_id(ctx, gid)) < 0)
		return -errno;
	if (mode >= 0 && fchmod(fd, (mode_t)mode) < 0)
		return -errno;
	return 0;
}

/* ---- GET ---- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in the directory pathfd refers to, sorted as `ls` shows them. */
static int list_dir(int pathfd, json_t **ret)
{
	__attribute__((cleanup(closedirp))) DIR *d = NULL;
	cleanup_strv char **names = NULL;
	json_t *list;
	struct dirent *de;
	int fd, r;

	fd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		r = strv_push(&names, strdup(de->d_name));
		if (r < 0)
			return r;
	}
	if (errno)
		return -errno;
	if (names)
		qsort(names, strv_length(names), sizeof(*names), name_cmp);
	list = json_array();
	for (size_t i = 0; list && names && names[i]; i++)
		if (json_array_append_new(list, json_string(names[i])) < 0) {
			json_decref(list);
			list = NULL;
		}
	if (!list)
		return -ENOMEM;
	*ret = list;
	return 0;
}

void api_files_handle_get(struct api_request *req)
{
	cleanup_root struct files_root root = {.fd = -EBADF};
	cleanup_close int fd = -EBADF, rfd = -EBADF;
	struct file_path p;
	struct stat st;
	int r;

	if (parse_path(req, &p) < 0 || open_rootfs(req, &root) < 0)
		return;
	r = open_in_root(&root, p.rel, O_PATH | O_NOFOLLOW, &fd);
	if (r == 0)
		r = check_fs(&root, fd, false);
	if (r < 0) {
		reply_errno(req, r, &p);
		return;
	}
	if (fstat(fd, &st) < 0) {
		reply_errno(req, -errno, &p);
		return;
	}
	if (S_ISREG(st.st_mode)) {
		r = reopen(fd, O_RDONLY, &rfd);
		if (r < 0 || fstat(rfd, &st) < 0) {
			reply_errno(req, r < 0 ? r : -errno, &p);
			return;
		}
		reply_stat_headers(req, &st, "file");
		api_reply_file(req, 200, "application/octet-stream", TAKE_FD(rfd),
			       (size_t)st.st_size);
	} else if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(fd, "", target, sizeof(target));
		char *body;

		if (n < 0) {
			reply_errno(req, -errno, &p);
			return;
		}
		body = malloc((size_t)n + 1);
		if (!body) {
			api_reply_error(req, 500, "Out of memory");
			return;
		}
		memcpy(body, target, (size_t)n);
		reply_stat_headers(req, &st, "symlink");
		api_reply_raw(req, 200, "application/octet-stream", body, (size_t)n);
	} else if (S_ISDIR(st.st_mode)) {
		json_t *names = NULL;

		r = list_dir(fd, &names);
		if (r < 0) {
			reply_errno(req, r, &p);
			return;
		}
		reply_stat_headers(req, &st, "directory");
		api_reply_sync(req, names);
	} else {
		api_reply_error(req, 400, "'%s' is not a regular file, a directory or a symlink",
				p.shown);
	}
}

/* ---- POST ---- */

enum make_kind { MAKE_FILE, MAKE_DIRECTORY, MAKE_SYMLINK };

static int make_entry(enum make_kind kind, int dirfd, const char *leaf, const char *target)
{
	switch (kind) {
	case MAKE_FILE:
		return openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			      0600);
	case MAKE_DIRECTORY:
		return mkdirat(dirfd, leaf, 0700);
	case MAKE_SYMLINK:
		return symlinkat(target, dirfd, leaf);
	}
	return -1;
}

/* Makes leaf in dirfd: a file (returns its fd, O_WRONLY), a directory or a symlink (0). On a file
 * system the container mounted itself (its tmpfs: the superblock belongs to its user namespace)
 * the kernel refuses an owner it cannot map (EOVERFLOW): there, the entry is made as the
 * container's root (fsuid/fsgid, this thread only: the loop's), and given its owner after.
 * Returns -errno on failure. */
static int make_in(const struct api_ctx *ctx, enum make_kind kind, int dirfd, const char *leaf,
		   const char *target)
{
	int r = make_entry(kind, dirfd, leaf, target), e;

	if (r >= 0 || errno != EOVERFLOW)
		return r < 0 ? -errno : r;
	(void)setfsgid(ctx->idmap_base);
	(void)setfsuid(ctx->idmap_base);
	r = make_entry(kind, dirfd, leaf, target);
	e = errno;
	/* back to root: the capabilities come back with fsuid 0 */
	(void)setfsuid(0);
	(void)setfsgid(0);
	if (setfsuid(0) != 0 || setfsgid(0) != 0) {
		log_error("Failed to return to fsuid/fsgid 0");
		abort(); /* running on as another user would be worse */
	}
	return r < 0 ? -e : r;
}

/* A file push being copied from the upload into the instance. */
struct file_push {
	struct api_request *req;
	uv_idle_t idle;
	int src, dst;
	uint64_t left;
	struct file_path path;
};

static void push_closed(uv_handle_t *h)
{
	struct file_push *fp = h->data;

	close(fp->src);
	close(fp->dst);
	free(fp);
}

static void push_finish(struct file_push *fp, int r)
{
	struct api_ctx *ctx = fp->req->ctx;

	if (r < 0)
		reply_errno(fp->req, r, &fp->path);
	else
		api_reply_sync(fp->req, NULL);
	uv_idle_stop(&fp->idle);
	uv_close((uv_handle_t *)&fp->idle, push_closed);
	ctx->pending_tasks--;
}

/* Copies up to len bytes from src to dst at their offsets, in the kernel when it can. */
static ssize_t copy_some(int src, int dst, size_t len)
{
	char buf[65536];
	ssize_t n = copy_file_range(src, NULL, dst, NULL, len, 0);

	if (n >= 0 || (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS))
		return n < 0 ? -errno : n;
	n = sendfile(dst, src, NULL, len);
	if (n >= 0 || errno != EINVAL)
		return n < 0 ? -errno : n;
	n = read(src, buf, len < sizeof(buf) ? len : sizeof(buf));
	if (n <= 0)
		return n < 0 ? -errno : 0;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(dst, buf + off, (size_t)(n - off));

		if (w < 0)
			return -errno;
		off += w;
	}
	return n;
}

static void push_step(uv_idle_t *h)
{
	struct file_push *fp = h->data;
	ssize_t n = copy_some(fp->src, fp->dst,
			      fp->left < PUSH_STEP_BYTES ? fp->left : PUSH_STEP_BYTES);

	if (n == -EINTR)
		return;
	if (n <= 0) {
		/* n == 0: the upload is shorter than the server said */
		push_finish(fp, n < 0 ? (int)n : -EIO);
		return;
	}
	fp->left -= (uint64_t)n;
	if (fp->left == 0)
		push_finish(fp, 0);
}

/* Starts copying the upload into dst (taken); the request is answered when done. */
static void push_copy(struct api_request *req, int dst, const struct file_path *p)
{
	struct file_push *fp;
	int src;

	src = open(req->upload_path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		api_reply_error(req, 500, "Failed to read the upload: %s", strerror(errno));
		close(dst);
		return;
	}
	fp = calloc(1, sizeof(*fp));
	if (!fp) {
		close(src);
		close(dst);
		api_reply_error(req, 500, "Out of memory");
		return;
	}
	fp->req = req;
	fp->src = src;
	fp->dst = dst;
	fp->left = req->upload_bytes;
	fp->path = *p;
	uv_idle_init(req->ctx->loop, &fp->idle);
	fp->idle.data = fp;
	req->ctx->pending_tasks++;
	api_defer(req);
	uv_idle_start(&fp->idle, push_step);
}

/* The directory that would hold p (opened in the root, on the instance's filesystem) and p's
 * last component in *ret_leaf (in buf); split_err when p has no leaf. Returns 0 or -errno. */
static int open_parent(const struct files_root *root, const struct file_path *p,
		       char buf[static 1100], int split_err, const char **ret_leaf, int *ret_dirfd)
{
	const char *parent;
	int r;

	if (split_leaf(p, buf, &parent, ret_leaf) < 0)
		return split_err;
	r = open_in_root(root, parent, O_PATH | O_DIRECTORY, ret_dirfd);
	if (r == 0)
		r = check_fs(root, *ret_dirfd, true);
	return r;
}

static void push_file(struct api_request *req, const struct files_root *root,
		      const struct file_path *p, const struct file_args *a)
{
	cleanup_close int fd = -EBADF, dirfd = -EBADF, dst = -EBADF;
	char buf[1100];
	const char *leaf;
	bool created = false;
	struct stat st;
	int r;

	/* an existing file (a final symlink is followed, inside the rootfs) */
	r = open_in_root(root, p->rel, O_PATH, &fd);
	if (r == 0) {
		if (fstat(fd, &st) < 0) {
			reply_errno(req, -errno, p);
			return;
		}
		r = check_fs(root, fd, true);
		if (r < 0 && !S_ISDIR(st.st_mode)) {
			reply_errno(req, r, p);
			return;
		}
		if (S_ISDIR(st.st_mode)) {
			reply_errno(req, -EISDIR, p);
			return;
		}
		if (!S_ISREG(st.st_mode)) {
			api_reply_error(req, 400, "'%s' is not a regular file", p->shown);
			return;
		}
		r = reopen(fd, O_WRONLY | (a->append ? 0 : O_TRUNC), &dst);
		if (r < 0) {
			reply_errno(req, r, p);
			return;
		}
		if (a->append && lseek(dst, 0, SEEK_END) < 0) {
			reply_errno(req, -errno, p);
			return;
		}
	} else if (r == -ENOENT) {
		r = open_parent(root, p, buf, -EISDIR, &leaf, &dirfd);
		if (r < 0) {
			reply_errno(req, r, p);
			return;
		}
		dst = make_in(req->ctx, MAKE_FILE, dirfd, leaf, NULL);
		if (dst == -EEXIST) {
			/* a dangling symlink, or a race with the container */
			api_reply_error(req, 409,
					"'%s' already exists (a symlink to a missing file?)",
					p->shown);
			return;
		}
		if (dst < 0) {
			reply_errno(req, dst, p);
			return;
		}
		created = true;
	} else {
		reply_errno(req, r, p);
		return;
	}
	r = apply_perms(req->ctx, dst, a, created, 0644);
	if (r < 0) {
		reply_errno(req, r, p);
		return;
	}
	if (req->upload_bytes == 0 || !req->upload_path) {
		api_reply_sync(req, NULL);
		return;
	}
	push_copy(req, TAKE_FD(dst), p);
}

static void make_directory(struct api_request *req, const struct files_root *root,
			   const struct file_path *p, const struct file_args *a)
{
	cleanup_close int fd = -EBADF, dirfd = -EBADF;
	char buf[1100];
	const char *leaf;
	struct stat st;
	int r;

	/* already there: done, as LXD */
	r = open_in_root(root, p->rel, O_PATH, &fd);
	if (r == 0) {
		if (fstat(fd, &st) < 0) {
			reply_errno(req, -errno, p);
			return;
		}
		if (!S_ISDIR(st.st_mode)) {
			api_reply_error(req, 409, "'%s' exists and is not a directory", p->shown);
			return;
		}
		api_reply_sync(req, NULL);
		return;
	}
	if (r != -ENOENT) {
		reply_errno(req, r, p);
		return;
	}
	r = open_parent(root, p, buf, -EINVAL, &leaf, &dirfd);
	if (r < 0) {
		reply_errno(req, r, p);
		return;
	}
	r = make_in(req->ctx, MAKE_DIRECTORY, dirfd, leaf, NULL);
	if (r < 0) {
		reply_errno(req, r, p);
		return;
	}
	fd = openat(dirfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		reply_errno(req, -errno, p);
		return;
	}
	r = apply_perms(req->ctx, fd, a, true, 0755);
	if (r < 0) {
		reply_errno(req, r, p);
		return;
	}
	api_reply_sync(req, NULL);
}

/* The symlink target in the body: 1 to PATH_MAX - 1 bytes, no NUL. */
static int read_target(struct api_request *req, char target[static PATH_MAX])
{
	cleanup_close int fd = -EBADF;
	ssize_t n;

	if (!req->upload_path || req->upload_bytes == 0 || req->upload_bytes >= PATH_MAX) {
		api_reply_error(req, 400, "A symlink needs its target as the body (1 to %d bytes)",
				PATH_MAX - 1);
		return -EINVAL;
	}
	fd = open(req->upload_path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : pread(fd, target, PATH_MAX - 1, 0);
	if (n < 0) {
		api_reply_error(req, 500, "Failed to read the upload: %s", strerror(errno));
		return -EIO;
	}
	target[n] = 0;
	if ((size_t)n != strlen(target) || n == 0) {
		api_reply_error(req, 400, "Invalid symlink target");
		return -EINVAL;
	}
	return 0;
}

static void make_symlink(struct api_request *req, const struct files_root *root,
			 const struct file_path *p, const struct file_args *a)
{
	cleanup_close int dirfd = -EBADF;
	char target[PATH_MAX], buf[1100];
	const char *leaf;
	int r;

	if (read_target(req, target) < 0)
		return;
	r = open_parent(root, p, buf, -EEXIST, &leaf, &dirfd);
	if (r < 0) {
		reply_errno(req, r, p);
		return;
	}
	r = make_in(req->ctx, MAKE_SYMLINK, dirfd, leaf, target);
	if (r < 0) {
		char cur[PATH_MAX];
		ssize_t n;

		/* the same symlink is already there: done, as LXD */
		n = r == -EEXIST ? readlinkat(dirfd, leaf, cur, sizeof(cur) - 1) : -1;
		if (n >= 0 && (size_t)n == strlen(target) && memcmp(cur, target, (size_t)n) == 0) {
			api_reply_sync(req, NULL);
			return;
		}
		reply_errno(req, r, p);
		return;
	}
	if (fchownat(dirfd, leaf, host_id(req->ctx, a->uid < 0 ? 0 : a->uid),
		     host_id(req->ctx, a->gid < 0 ? 0 : a->gid), AT_SYMLINK_NOFOLLOW) < 0) {
		reply_errno(req, -errno, p);
		return;
	}
	api_reply_sync(req, NULL);
}

void api_files_handle_post(struct api_request *req)
{
	cleanup_root struct files_root root = {.fd = -EBADF};
	struct file_args a;
	struct file_path p;

	if (req->upload_bytes > API_FILE_MAX) {
		char b[32];

		api_reply_error(req, 413, "File too large: the limit is %s",
				format_bytes(API_FILE_MAX, b));
		return;
	}
	if (parse_path(req, &p) < 0 || parse_args(req, &a) < 0 || open_rootfs(req, &root) < 0)
		return;
	switch (a.type) {
	case FILE_TYPE_FILE:
		push_file(req, &root, &p, &a);
		break;
	case FILE_TYPE_DIRECTORY:
		make_directory(req, &root, &p, &a);
		break;
	case FILE_TYPE_SYMLINK:
		make_symlink(req, &root, &p, &a);
		break;
	}
}

/* ---- DELETE ---- */

/* Is leaf (in dirfd) a mount point in dirfd's mount namespace? openat crosses into what is
 * mounted there. */
static bool is_mount_point(int dirfd, const char *leaf)
{
	cleanup_close int fd = openat(dirfd, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	uint64_t a, b;

	return fd >= 0 && mount_id(fd, &a) == 0 && mount_id(dirfd, &b) == 0 && a != b;
}

void api_files_handle_delete(struct api_request *req)
{
	cleanup_root struct files_root root = {.fd = -EBADF};
	cleanup_close int dirfd = -EBADF;
	char buf[1100];
	const char *parent, *leaf;
	struct file_path p;
	struct stat st;
	int r;

	if (parse_path(req, &p) < 0)
		return;
	if (split_leaf(&p, buf, &parent, &leaf) < 0) {
		api_reply_error(req, 400, "'%s' can't be deleted", p.shown);
		return;
	}
	if (open_rootfs(req, &root) < 0)
		return;
	r = open_in_root(&root, parent, O_PATH | O_DIRECTORY, &dirfd);
	if (r == 0)
		r = check_fs(&root, dirfd, true);
	if (r < 0) {
		reply_errno(req, r, &p);
		return;
	}
	if (fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		reply_errno(req, -errno, &p);
		return;
	}
	/* a mount point in the container (its /tmp, resolv.conf): the kernel would detach the mount
	 * from its namespace, as it is not one in ours; the container itself gets EBUSY */
	if (is_mount_point(dirfd, leaf)) {
		api_reply_error(req, 409, "'%s' is a mount point", p.shown);
		return;
	}
	if (unlinkat(dirfd, leaf, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
		reply_errno(req, -errno, &p);
		return;
	}
	api_reply_sync(req, NULL);
}
