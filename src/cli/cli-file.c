/* kiva file push|pull|delete: files inside instances, through /1.0/instances/NAME/files, as
 * lxc file does it (same arguments, same target rules). Contents stream, they are never held in
 * memory: a push sends the local file with its length (X-LXD-type/uid/gid/mode headers), a pull
 * writes a hidden temporary file next to its target and renames it over the target once complete,
 * so a failed pull leaves no partial file and an existing one untouched. A directory's listing
 * and a symlink's target come back in that same temporary file.
 *
 * Owner and mode: a push sends the local file's (as lxc), unless --uid/--gid/--mode say
 * otherwise; those flags also change an existing file (X-LXD-modify-perm), the local file's values
 * only apply to what the push creates. A pull keeps the mode; the owner is whoever runs kiva. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "proto-name.h"

#include "cli.h"

#define LISTING_MAX_BYTES (64u * 1024 * 1024)
#define SYMLINK_HOPS_MAX 40

enum {
	OPT_RECURSIVE = 1,
	OPT_MKDIR,
	OPT_UID,
	OPT_GID,
	OPT_MODE,
};

static const struct cli_command sub_push, sub_pull, sub_delete;

struct file_opts {
	bool recursive, mkdir;
	long long uid, gid; /* -1: not given */
	int mode; /* -1: not given */
};

static int handle_opt(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct file_opts *o = userdata;
	int64_t v;

	switch (id) {
	case OPT_RECURSIVE:
		o->recursive = true;
		return 0;
	case OPT_MKDIR:
		o->mkdir = true;
		return 0;
	case OPT_UID:
	case OPT_GID:
		if (parse_int64(arg, 0, INT32_MAX, &v) < 0)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid --%s '%s': expected a number",
					      id == OPT_UID ? "uid" : "gid", arg);
		*(id == OPT_UID ? &o->uid : &o->gid) = v;
		return 0;
	case OPT_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(arg, &end, 8);
		if (errno || end == arg || *end || *arg == '-' || *arg == '+' || m > 07777)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid --mode '%s': expected octal, e.g. 0644",
					      arg);
		o->mode = (int)m;
		return 0;
	}
	default:
		return 0;
	}
}

/* ---- paths ---- */

/* NAME/PATH: the instance and an absolute path in it. dir: PATH ended with '/'. */
struct remote {
	char name[128];
	char path[PATH_MAX];
	bool dir;
};

/* Cleans an absolute path lexically, as Go's path.Clean (what lxc sends): no "//", ".", "..". */
static void path_clean(char *p)
{
	char *out = p, *seg = p;

	while (*seg) {
		char *end;
		size_t n;

		while (*seg == '/')
			seg++;
		if (!*seg)
			break;
		end = strchr(seg, '/');
		n = end ? (size_t)(end - seg) : strlen(seg);
		if (n == 1 && seg[0] == '.') {
			/* nothing */
		} else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, seg, n);
			out += n;
		}
		seg += n;
	}
	if (out == p)
		*out++ = '/';
	*out = 0;
}

static int parse_remote(struct cli_context *ctx, const char *spec, struct remote *ret)
{
	const char *slash = strchr(spec, '/');
	size_t n = slash ? (size_t)(slash - spec) : 0;
	int r;

	if (!slash || n == 0 || n >= sizeof(ret->name))
		return kiva_error_set(&ctx->error, -EINVAL,
				      "Invalid instance path '%s': expected NAME/PATH", spec);
	memcpy(ret->name, spec, n);
	ret->name[n] = 0;
	r = proto_instance_name_validate(ret->name, &ctx->error);
	if (r < 0)
		return r;
	if (strlen(slash) >= sizeof(ret->path))
		return kiva_error_set(&ctx->error, -ENAMETOOLONG, "Path too long: '%s'", spec);
	snprintf(ret->path, sizeof(ret->path), "%s", slash);
	ret->dir = slash[strlen(slash) - 1] == '/';
	path_clean(ret->path);
	return 0;
}

/* a/b with one slash between. Caller frees; NULL on OOM. */
static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a);

	while (*b == '/')
		b++;
	return strf("%s%s%s", a, n && a[n - 1] == '/' ? "" : "/", b);
}

/* The last component ("" for "/"). Borrowed from p. */
static const char *path_base(const char *p)
{
	size_t n = strlen(p);
	const char *s;

	while (n > 1 && p[n - 1] == '/')
		n--;
	for (s = p + n; s > p && s[-1] != '/'; s--)
		;
	return s;
}

/* "/1.0/instances/NAME/files?path=PATH". Caller frees; NULL on OOM. */
static char *files_url(const char *name, const char *path)
{
	cleanup_free char *esc = cli_escape_path_segment(path), *suffix = NULL;

	suffix = esc ? strf("/files?path=%s", esc) : NULL;
	return suffix ? cli_instance_path(name, suffix) : NULL;
}

/* mkdir -p (local). */
static int local_mkdir_p(struct cli_context *ctx, const char *dir)
{
	cleanup_free char *p = strdup(dir);
	char ch;

	if (!p)
		return cli_oom(ctx);
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		ch = *s;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return kiva_error_set(&ctx->error, -errno, "Failed to create '%s': %m", p);
		if (!ch)
			return 0;
		*s = ch;
	}
}

/* A file only this process sees: in $TMPDIR, or memory. */
static int anon_file(struct cli_context *ctx)
{
	const char *dir = getenv("TMPDIR");
	int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0)
		fd = memfd_create("kiva-file", MFD_CLOEXEC);
	if (fd < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to create a temporary file: %m");
	return fd;
}

/* ---- push ---- */

/* What one POST sends besides the body. */
struct push_meta {
	const char *type; /* file, directory, symlink */
	long long uid, gid; /* -1: none */
	int mode; /* -1: none */
	char modify[32]; /* X-LXD-modify-perm */
};

static int post_file(struct cli_context *ctx, struct cli_client *c, const char *name,
		     const char *path, const struct push_meta *m, int fd, uint64_t len)
{
	cleanup_free char *url = files_url(name, path), *type = NULL, *uid = NULL, *gid = NULL,
			  *mode = NULL, *modify = NULL;
	/* no body: an empty one all the same, from a file the client can rewind for a retry */
	cleanup_close int none = fd < 0 ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -EBADF;
	const char *headers[8] = {NULL};
	struct cli_call call = {
		.method = "POST",
		.path = url,
		.upload = true,
		.upload_fd = fd < 0 ? none : fd,
		.upload_len = fd < 0 ? 0 : len,
		.headers = headers,
	};
	size_t n = 0;

	type = strf("X-LXD-type: %s", m->type);
	if (!url || !type)
		return cli_oom(ctx);
	headers[n++] = type;
	headers[n++] = "X-LXD-write: overwrite";
	if (m->uid >= 0 && (uid = strf("X-LXD-uid: %lld", m->uid)))
		headers[n++] = uid;
	if (m->gid >= 0 && (gid = strf("X-LXD-gid: %lld", m->gid)))
		headers[n++] = gid;
	if (m->mode >= 0 && (mode = strf("X-LXD-mode: %04o", (unsigned)m->mode)))
		headers[n++] = mode;
	if (m->modify[0] && (modify = strf("X-LXD-modify-perm: %s", m->modify)))
		headers[n++] = modify;
	if ((m->uid >= 0 && !uid) || (m->gid >= 0 && !gid) || (m->mode >= 0 && !mode) ||
	    (m->modify[0] && !modify))
		return cli_oom(ctx);
	return cli_call(c, &call, NULL, &ctx->error);
}

/* Creates dir and its missing parents in the instance (existing directories are left alone). */
static int remote_mkdir_p(struct cli_context *ctx, struct cli_client *c, const char *name,
			  const char *dir, long long uid, long long gid)
{
	cleanup_free char *p = strdup(dir);
	struct push_meta m = {.type = "directory", .uid = uid, .gid = gid, .mode = 0755};
	size_t n;
	char ch;
	int r;

	if (!p)
		return cli_oom(ctx);
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = 0;
	if (streq(p, "/"))
		return 0;
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		ch = *s;
		*s = 0;
		r = post_file(ctx, c, name, p, &m, -1, 0);
		if (r < 0)
			return r;
		if (!ch)
			return 0;
		*s = ch;
	}
}

/* Sends the regular file fd (st) to PATH. */
static int push_fd(struct cli_context *ctx, struct cli_client *c, const struct file_opts *o,
		   const char *name, const char *path, int fd, const struct stat *st)
{
	struct push_meta m = {
		.type = "file",
		.uid = o->uid >= 0 ? o->uid : (long long)st->st_uid,
		.gid = o->gid >= 0 ? o->gid : (long long)st->st_gid,
		.mode = o->mode >= 0 ? o->mode : (int)(st->st_mode & 0777),
	};

	snprintf(m.modify, sizeof(m.modify), "%s%s%s", o->uid >= 0 ? "uid," : "",
		 o->gid >= 0 ? "gid," : "", o->mode >= 0 ? "mode," : "");
	if (m.modify[0])
		m.modify[strlen(m.modify) - 1] = 0;
	if (o->mkdir) {
		cleanup_free char *parent = strdup(path);
		int r;

		if (!parent)
			return cli_oom(ctx);
		*(char *)path_base(parent) = 0;
		r = remote_mkdir_p(ctx, c, name, parent, m.uid, m.gid);
		if (r < 0)
			return r;
	}
	return post_file(ctx, c, name, path, &m, fd, (uint64_t)st->st_size);
}

/* Standard input, spooled to a temporary file first (the body is sent with its length). */
static int push_stdin(struct cli_context *ctx, struct cli_client *c, const struct file_opts *o,
		      const char *name, const char *path)
{
	cleanup_close int fd = anon_file(ctx);
	char buf[65536];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return fd;
	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(fd, buf, (size_t)n) != n)
			return kiva_error_set(&ctx->error, -errno,
					      "Failed to read standard input: %m");
	}
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to read standard input: %m");
	st.st_mode = S_IFREG | 0644;
	st.st_uid = 0;
	st.st_gid = 0;
	return push_fd(ctx, c, o, name, path, fd, &st);
}

static int push_symlink(struct cli_context *ctx, struct cli_client *c, const char *name,
			const char *local, const char *path, const struct stat *st)
{
	cleanup_close int fd = -EBADF;
	char target[PATH_MAX];
	ssize_t n = readlink(local, target, sizeof(target) - 1);
	struct push_meta m = {.type = "symlink", .uid = st->st_uid, .gid = st->st_gid, .mode = -1};

	if (n < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to read symlink '%s': %m",
				      local);
	fd = memfd_create("kiva-symlink", MFD_CLOEXEC);
	if (fd < 0 || write(fd, target, (size_t)n) != n || lseek(fd, 0, SEEK_SET) < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to prepare '%s': %m", local);
	return post_file(ctx, c, name, path, &m, fd, (uint64_t)n);
}

/* -r: local (any type but devices, FIFOs and sockets) to path, directories walked. */
static int push_tree(struct cli_context *ctx, struct cli_client *c, const char *name,
		     const char *local, const char *path)
{
	const struct file_opts none = {.uid = -1, .gid = -1, .mode = -1};
	struct stat st;
	int r;

	if (lstat(local, &st) < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to read '%s': %m", local);
	if (S_ISLNK(st.st_mode))
		return push_symlink(ctx, c, name, local, path, &st);
	if (S_ISREG(st.st_mode)) {
		cleanup_close int fd = open(local, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0 || fstat(fd, &st) < 0)
			return kiva_error_set(&ctx->error, -errno, "Failed to open '%s': %m",
					      local);
		return push_fd(ctx, c, &none, name, path, fd, &st);
	}
	if (S_ISDIR(st.st_mode)) {
		struct push_meta m = {.type = "directory",
				      .uid = st.st_uid,
				      .gid = st.st_gid,
				      .mode = (int)(st.st_mode & 0777)};
		DIR *d;
		struct dirent *de;

		r = post_file(ctx, c, name, path, &m, -1, 0);
		if (r < 0)
			return r;
		d = opendir(local);
		if (!d)
			return kiva_error_set(&ctx->error, -errno, "Failed to read '%s': %m",
					      local);
		r = 0;
		while (r >= 0 && (de = readdir(d))) {
			cleanup_free char *l = NULL, *p = NULL;

			if (streq(de->d_name, ".") || streq(de->d_name, ".."))
				continue;
			l = path_join(local, de->d_name);
			p = path_join(path, de->d_name);
			r = l && p ? push_tree(ctx, c, name, l, p) : cli_oom(ctx);
		}
		closedir(d);
		return r;
	}
	return kiva_error_set(&ctx->error, -EINVAL, "'%s' isn't a supported file type", local);
}

static int cmd_push(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {
		{"recursive", 'r', false, OPT_RECURSIVE},
		{"create-dirs", 'p', false, OPT_MKDIR},
		{"uid", 0, true, OPT_UID},
		{"gid", 0, true, OPT_GID},
		{"mode", 0, true, OPT_MODE},
		{},
	};
	struct file_opts o = {.uid = -1, .gid = -1, .mode = -1};
	struct cli_parse spec = {
		.cmd = &sub_push,
		.options = options,
		.min_args = 2,
		.max_args = -1,
		.handle = handle_opt,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	struct remote t;
	size_t nsrc;
	bool to_dir;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	nsrc = a.n_positional - 1;
	r = parse_remote(ctx, a.positional[nsrc], &t);
	if (r < 0)
		return r;
	if (o.recursive && (o.uid >= 0 || o.gid >= 0 || o.mode >= 0))
		return cli_usage_error(ctx, "Can't supply uid/gid/mode in recursive mode");
	to_dir = t.dir || o.recursive || nsrc > 1;
	if (nsrc > 1 && !t.dir && !o.recursive)
		return cli_usage_error(ctx, "Missing target directory: end it with '/'");
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	if (o.recursive && o.mkdir) {
		r = remote_mkdir_p(ctx, c, t.name, t.path, o.uid, o.gid);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < nsrc; i++) {
		const char *src = a.positional[i];
		cleanup_free char *dest = NULL;
		cleanup_close int fd = -EBADF;
		struct stat st;

		if (streq(src, "-")) {
			if (to_dir)
				return cli_usage_error(ctx,
						       "Standard input needs a file name as the "
						       "target");
			r = push_stdin(ctx, c, &o, t.name, t.path);
			if (r < 0)
				return r;
			continue;
		}
		dest = to_dir ? path_join(t.path, path_base(src)) : strdup(t.path);
		if (!dest)
			return cli_oom(ctx);
		if (o.recursive) {
			r = push_tree(ctx, c, t.name, src, dest);
			if (r < 0)
				return r;
			continue;
		}
		fd = open(src, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0)
			return kiva_error_set(&ctx->error, -errno, "Failed to open '%s': %m", src);
		if (S_ISDIR(st.st_mode))
			return kiva_error_set(&ctx->error, -EISDIR,
					      "'%s' is a directory: push it with -r", src);
		if (!S_ISREG(st.st_mode))
			return kiva_error_set(&ctx->error, -EINVAL, "'%s' is not a regular file",
					      src);
		r = push_fd(ctx, c, &o, t.name, dest, fd, &st);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- pull ---- */

/* What GET said about what it sent. */
struct pulled {
	char type[16]; /* file, directory, symlink */
	int mode;
};

/* GET NAME/files?path=PATH into fd (at its offset). */
static int get_file(struct cli_context *ctx, struct cli_client *c, const char *name,
		    const char *path, int fd, struct pulled *ret)
{
	cleanup_free char *url = files_url(name, path);
	struct cli_http_response resp = {0};
	const char *type, *mode;
	int r;

	if (!url)
		return cli_oom(ctx);
	r = cli_get_raw_response(c, url, fd, &resp, &ctx->error);
	if (r < 0)
		return r;
	type = cli_http_response_header(&resp, "X-LXD-type");
	mode = cli_http_response_header(&resp, "X-LXD-mode");
	snprintf(ret->type, sizeof(ret->type), "%s", type && *type ? type : "file");
	ret->mode = mode ? (int)(strtol(mode, NULL, 8) & 0777) : -1;
	cli_http_response_done(&resp);
	return 0;
}

/* The whole of a (small) temporary file: a listing or a symlink target. Caller frees. */
static int read_back(struct cli_context *ctx, int fd, size_t max, char **ret, size_t *ret_len)
{
	struct stat st;
	char *buf;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to read back: %m");
	if ((uint64_t)st.st_size > max)
		return kiva_error_set(&ctx->error, -EFBIG, "Response too large");
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return cli_oom(ctx);
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		free(buf);
		return kiva_error_set(&ctx->error, -errno, "Failed to read back: %m");
	}
	buf[n] = 0;
	*ret = buf;
	*ret_len = (size_t)n;
	return 0;
}

static int pull_to(struct cli_context *ctx, struct cli_client *c, const char *name,
		   const char *path, const char *dest, const char *dir_parent, bool recursive);

/* A directory's listing (in fd) pulled into dest, entry by entry. */
static int pull_dir(struct cli_context *ctx, struct cli_client *c, const char *name,
		    const char *path, const char *dest, int fd, int mode)
{
	cleanup_free char *text = NULL;
	cleanup_json json_t *env = NULL;
	json_t *list;
	size_t len;
	int r;

	r = read_back(ctx, fd, LISTING_MAX_BYTES, &text, &len);
	if (r < 0)
		return r;
	env = json_loadb(text, len, 0, NULL);
	list = json_object_get(env, "metadata");
	if (!json_is_array(list))
		return kiva_error_set(&ctx->error, -EIO, "Malformed listing of '%s' from kivad",
				      path);
	if (mkdir(dest, mode >= 0 ? (mode_t)mode : 0755) < 0 && errno != EEXIST)
		return kiva_error_set(&ctx->error, -errno, "Failed to create '%s': %m", dest);
	for (size_t i = 0; i < json_array_size(list); i++) {
		const char *e = json_string_value(json_array_get(list, i));
		cleanup_free char *p = NULL, *d = NULL;

		if (!e || !*e || strchr(e, '/') || streq(e, ".") || streq(e, ".."))
			return kiva_error_set(&ctx->error, -EIO, "Bad entry in '%s' from kivad",
					      path);
		p = path_join(path, e);
		d = path_join(dest, e);
		if (!p || !d)
			return cli_oom(ctx);
		r = pull_to(ctx, c, name, p, d, NULL, true);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Pulls PATH to the local dest, through ".NAME.kiva-XXXXXX" next to it, renamed over dest once
 * complete. A directory needs recursive, and goes to dest, or with dir_parent (the top of a
 * pull, as lxc does it) to dir_parent/BASENAME, dir_parent made when missing. */
static int pull_to(struct cli_context *ctx, struct cli_client *c, const char *name,
		   const char *path, const char *dest, const char *dir_parent, bool recursive)
{
	cleanup_free char *tmp = NULL, *dir = strdup(dest), *in = NULL;
	cleanup_close int fd = -EBADF;
	struct pulled got;
	int r;

	if (!dir)
		return cli_oom(ctx);
	*(char *)path_base(dir) = 0;
	tmp = strf("%s.%s.kiva-XXXXXX", dir, path_base(dest));
	if (!tmp)
		return cli_oom(ctx);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return kiva_error_set(&ctx->error, -errno, "Failed to create '%s': %m", dest);
	r = get_file(ctx, c, name, path, fd, &got);
	if (r < 0)
		goto fail;
	if (streq(got.type, "file")) {
		if (fchmod(fd, got.mode >= 0 ? (mode_t)got.mode : 0644) < 0 || fsync(fd) < 0 ||
		    rename(tmp, dest) < 0) {
			r = kiva_error_set(&ctx->error, -errno, "Failed to write '%s': %m", dest);
			goto fail;
		}
		return 0;
	}
	if (streq(got.type, "symlink")) {
		cleanup_free char *target = NULL;
		size_t len;

		r = read_back(ctx, fd, PATH_MAX, &target, &len);
		if (r < 0)
			goto fail;
		(void)unlink(tmp);
		if (symlink(target, tmp) < 0 || rename(tmp, dest) < 0) {
			r = kiva_error_set(&ctx->error, -errno, "Failed to create symlink '%s': %m",
					   dest);
			goto fail;
		}
		return 0;
	}
	if (streq(got.type, "directory")) {
		(void)unlink(tmp);
		if (!recursive)
			return kiva_error_set(&ctx->error, -EISDIR,
					      "'%s' is a directory: pull it with -r", path);
		if (dir_parent) {
			r = local_mkdir_p(ctx, dir_parent);
			if (r < 0)
				return r;
			/* the root ("/") has no name: its entries go into dir_parent */
			in = *path_base(path) ? path_join(dir_parent, path_base(path))
					      : strdup(dir_parent);
			if (!in)
				return cli_oom(ctx);
		}
		return pull_dir(ctx, c, name, path, in ? in : dest, fd, got.mode);
	}
	r = kiva_error_set(&ctx->error, -EIO, "Unknown file type '%s' of '%s'", got.type, path);
fail:
	(void)unlink(tmp);
	return r;
}

/* Pulls PATH to standard output, following symlinks as lxc does. */
static int pull_stdout(struct cli_context *ctx, struct cli_client *c, const char *name,
		       const char *path)
{
	cleanup_free char *cur = strdup(path);

	if (!cur)
		return cli_oom(ctx);
	for (int hops = 0; hops <= SYMLINK_HOPS_MAX; hops++) {
		cleanup_close int fd = anon_file(ctx);
		cleanup_free char *target = NULL;
		struct pulled got;
		size_t len;
		char buf[65536];
		ssize_t n;
		int r;

		if (fd < 0)
			return fd;
		r = get_file(ctx, c, name, cur, fd, &got);
		if (r < 0)
			return r;
		if (streq(got.type, "directory"))
			return kiva_error_set(&ctx->error, -EISDIR,
					      "'%s' is a directory: it can't go to standard output",
					      cur);
		if (streq(got.type, "file")) {
			if (lseek(fd, 0, SEEK_SET) < 0)
				return kiva_error_set(&ctx->error, -errno,
						      "Failed to read back: %m");
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
					return kiva_error_set(&ctx->error, -EIO,
							      "Failed to write standard output");
			return n < 0 ? kiva_error_set(&ctx->error, -errno,
						      "Failed to read back: %m")
				     : 0;
		}
		r = read_back(ctx, fd, PATH_MAX, &target, &len);
		if (r < 0)
			return r;
		if (target[0] == '/') {
			free(cur);
			cur = TAKE_PTR(target);
		} else {
			char *dir = strdup(cur), *next;

			if (!dir)
				return cli_oom(ctx);
			*(char *)path_base(dir) = 0;
			next = path_join(dir, target);
			free(dir);
			if (!next)
				return cli_oom(ctx);
			free(cur);
			cur = next;
		}
	}
	return kiva_error_set(&ctx->error, -ELOOP, "Too many levels of symlinks at '%s'", path);
}

static int cmd_pull(struct cli_context *ctx, int argc, char **argv)
{
	static const struct cli_option options[] = {
		{"recursive", 'r', false, OPT_RECURSIVE},
		{"create-dirs", 'p', false, OPT_MKDIR},
		{},
	};
	struct file_opts o = {.uid = -1, .gid = -1, .mode = -1};
	struct cli_parse spec = {
		.cmd = &sub_pull,
		.options = options,
		.min_args = 2,
		.max_args = -1,
		.handle = handle_opt,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	const char *target;
	size_t nsrc;
	bool to_dir = false;
	struct stat st;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	nsrc = a.n_positional - 1;
	target = a.positional[nsrc];
	if (!streq(target, "-")) {
		size_t n = strlen(target);

		if (stat(target, &st) == 0) {
			to_dir = S_ISDIR(st.st_mode);
			if (!to_dir && nsrc > 1)
				return cli_usage_error(ctx,
						       "More than one file to pull, but '%s' "
						       "is not a directory",
						       target);
		} else if (errno != ENOENT) {
			return kiva_error_set(&ctx->error, -errno, "Failed to read '%s': %m",
					      target);
		} else if ((n && target[n - 1] == '/') || nsrc > 1) {
			r = local_mkdir_p(ctx, target);
			if (r < 0)
				return r;
			to_dir = true;
		} else if (o.mkdir) {
			cleanup_free char *dir = strdup(target);

			if (!dir)
				return cli_oom(ctx);
			*(char *)path_base(dir) = 0;
			r = *dir ? local_mkdir_p(ctx, dir) : 0;
			if (r < 0)
				return r;
		}
	}
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nsrc; i++) {
		cleanup_free char *dest = NULL;
		struct remote s;

		r = parse_remote(ctx, a.positional[i], &s);
		if (r < 0)
			return r;
		if (streq(target, "-")) {
			r = pull_stdout(ctx, c, s.name, s.path);
		} else {
			dest = to_dir && *path_base(s.path) ? path_join(target, path_base(s.path))
							    : strdup(target);
			if (!dest)
				return cli_oom(ctx);
			r = pull_to(ctx, c, s.name, s.path, dest, target, o.recursive);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- delete ---- */

static int cmd_delete(struct cli_context *ctx, int argc, char **argv)
{
	struct cli_parse spec = {.cmd = &sub_delete, .min_args = 1, .max_args = -1};
	cleanup_args struct cli_args a = {0};
	struct cli_client *c;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a.n_positional; i++) {
		cleanup_free char *url = NULL;
		struct remote s;

		r = parse_remote(ctx, a.positional[i], &s);
		if (r < 0)
			return r;
		url = files_url(s.name, s.path);
		if (!url)
			return cli_oom(ctx);
		r = cli_run(c, "DELETE", url, NULL, NULL, &ctx->error);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct cli_command sub_push = {
	.name = "push",
	.run = cmd_push,
	.summary = "Push files into instances",
	.usage = "Usage: kiva file push SOURCE... NAME/PATH [flags]\n"
		 "\n"
		 "Copy local files (- for standard input) into instance NAME, running or not.\n"
		 "With one SOURCE, PATH is the file to write, unless it ends with '/': then, as\n"
		 "with several SOURCEs or -r, each goes into directory PATH under its own name.\n"
		 "An existing file is overwritten. Owner and mode are the local file's (ids as\n"
		 "they are inside the instance) unless --uid, --gid or --mode are given, which\n"
		 "also apply to an existing file. Files up to 1 GiB.\n"
		 "\n"
		 "Flags:\n"
		 "  -r, --recursive     Push directories with what is in them (symlinks as\n"
		 "                      symlinks)\n"
		 "  -p, --create-dirs   Create the missing directories of PATH\n"
		 "      --uid UID       Owner inside the instance (below 65536)\n"
		 "      --gid GID       Group inside the instance\n"
		 "      --mode MODE     Permissions, in octal (0644)\n"
		 "\n"
		 "Example:\n"
		 "  kiva file push ./app.conf c1/etc/app.conf --mode 0600\n"
		 "  kiva file push -r ./site c1/var/www/\n",
};

static const struct cli_command sub_pull = {
	.name = "pull",
	.run = cmd_pull,
	.summary = "Pull files from instances",
	.usage = "Usage: kiva file pull NAME/PATH... TARGET [flags]\n"
		 "\n"
		 "Copy files out of instances. TARGET is the file to write (- for standard\n"
		 "output), or a directory to write them in (it must be one for several\n"
		 "sources; a TARGET ending with '/' is created). A directory is pulled with -r\n"
		 "into TARGET/NAME-OF-DIRECTORY; symlinks come back as symlinks (followed for\n"
		 "standard output). Files keep their mode; the owner is the caller. A file is\n"
		 "written under a temporary name and replaces TARGET only once complete.\n"
		 "\n"
		 "Flags:\n"
		 "  -r, --recursive     Pull directories with what is in them\n"
		 "  -p, --create-dirs   Create the missing directories of TARGET\n"
		 "\n"
		 "Example:\n"
		 "  kiva file pull c1/etc/hostname .\n"
		 "  kiva file pull -r c1/var/log ./c1-logs\n"
		 "  kiva file pull c1/etc/os-release -\n",
};

static const struct cli_command sub_delete = {
	.name = "delete",
	.run = cmd_delete,
	.summary = "Delete files in instances",
	.usage = "Usage: kiva file delete NAME/PATH...\n"
		 "\n"
		 "Delete files, symlinks (not what they point to) or empty directories.\n"
		 "\n"
		 "Example:\n"
		 "  kiva file delete c1/tmp/scratch c1/tmp/emptydir\n",
};

static const struct cli_command *const subs[] = {&sub_push, &sub_pull, &sub_delete};

static int cmd_file(struct cli_context *ctx, int argc, char **argv)
{
	return cli_dispatch_sub(ctx, &cli_command_file, subs, ARRAY_SIZE(subs), argc, argv);
}

const struct cli_command cli_command_file = {
	.name = "file",
	.run = cmd_file,
	.summary = "Push, pull and delete files in instances",
	.usage = "Usage: kiva file COMMAND ...\n"
		 "\n"
		 "Commands:\n"
		 "  push SOURCE... NAME/PATH [-r] [-p] [--uid U] [--gid G] [--mode M]\n"
		 "  pull NAME/PATH... TARGET [-r] [-p]\n"
		 "  delete NAME/PATH...\n"
		 "\n"
		 "Paths are resolved inside the instance's root file system: '..' and absolute\n"
		 "symlinks never lead out of it.\n"
		 "\n"
		 "Run 'kiva file COMMAND --help' for a command's flags.\n"
		 "\n"
		 "Example:\n"
		 "  kiva file push ./motd c1/etc/motd && kiva file pull c1/etc/motd -\n",
};
