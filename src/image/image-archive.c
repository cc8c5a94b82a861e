/* Safe extraction of LXD unified image tarballs (metadata.yaml, rootfs/, templates/). The only
 * file that includes <archive.h>; linked only by kiva-helper, so the idle daemon never maps
 * libarchive (feasibility §13).
 *
 * libarchive's own guards are on (ARCHIVE_EXTRACT_SECURE_SYMLINKS, _NODOTDOT,
 * _NOABSOLUTEPATHS), and every entry is checked here as well before it is written: normalized
 * relative path, known top-level name, no path or hard link target through an earlier symlink,
 * hard links only to regular files extracted earlier, no duplicates, no device nodes when
 * shifting, ids inside one idmap range, and a cap on the expanded size. Any failure empties the
 * target directory. libarchive's write-to-disk API resolves paths against the working directory,
 * so image_unpack chdir()s into the target for its duration: call it from a single-threaded
 * process (kiva-helper), not from a thread of kivad. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

#define SHIFT_RANGE 65536u

enum seen_type { SEEN_FILE = 1, SEEN_DIR, SEEN_SYMLINK, SEEN_OTHER };

/* Open-addressing hash set of the entry paths seen so far, with their type. */
struct seen_set {
	char **keys;
	unsigned char *types;
	size_t cap, n;
};

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

static size_t seen_slot(const struct seen_set *s, const char *key, size_t n)
{
	size_t i = fnv1a(key, n) & (s->cap - 1);

	while (s->keys[i] && !(strncmp(s->keys[i], key, n) == 0 && s->keys[i][n] == 0))
		i = (i + 1) & (s->cap - 1);
	return i;
}

/* Type of the path key[0..n), 0 when unseen. */
static int seen_get(const struct seen_set *s, const char *key, size_t n)
{
	size_t i;

	if (s->cap == 0)
		return 0;
	i = seen_slot(s, key, n);
	return s->keys[i] ? s->types[i] : 0;
}

static int seen_add(struct seen_set *s, const char *key, enum seen_type type)
{
	size_t n = strlen(key), i;

	if (2 * (s->n + 1) > s->cap) {
		struct seen_set g = {.cap = s->cap ? s->cap * 2 : 1024};

		g.keys = calloc(g.cap, sizeof(*g.keys));
		g.types = calloc(g.cap, sizeof(*g.types));
		if (!g.keys || !g.types) {
			free(g.keys);
			free(g.types);
			return -ENOMEM;
		}
		for (size_t k = 0; k < s->cap; k++) {
			if (!s->keys[k])
				continue;
			i = seen_slot(&g, s->keys[k], strlen(s->keys[k]));
			g.keys[i] = s->keys[k];
			g.types[i] = s->types[k];
		}
		g.n = s->n;
		free(s->keys);
		free(s->types);
		*s = g;
	}
	i = seen_slot(s, key, n);
	if (s->keys[i])
		return -EEXIST;
	s->keys[i] = strdup(key);
	if (!s->keys[i])
		return -ENOMEM;
	s->types[i] = (unsigned char)type;
	s->n++;
	return 0;
}

static void seen_done(struct seen_set *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->types);
	*s = (struct seen_set){0};
}

/* Normalizes an entry path into out: drops "." and empty components ("./rootfs//x/" ->
 * "rootfs/x"). Returns 0, or a negative errno with *ret_why saying what is wrong. An empty
 * result (the archive's "./") is returned as "". */
static int normalize(const char *in, char out[static PATH_MAX], const char **ret_why)
{
	size_t o = 0;
	const char *p = in;

	if (!in || !*in) {
		*ret_why = "empty path";
		return -EINVAL;
	}
	if (in[0] == '/') {
		*ret_why = "absolute path";
		return -EINVAL;
	}
	for (;;) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			*ret_why = "'..' path component";
			return -EINVAL;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (o + n + 2 >= PATH_MAX) {
				*ret_why = "path too long";
				return -ENAMETOOLONG;
			}
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		if (!p[n])
			break;
		p += n + 1;
	}
	out[o] = 0;
	return 0;
}

/* The symlink that a proper prefix of path goes through, or NULL. */
static const char *through_symlink(const struct seen_set *seen, const char *path, size_t *ret_len)
{
	for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		if (seen_get(seen, path, (size_t)(p - path)) == SEEN_SYMLINK) {
			*ret_len = (size_t)(p - path);
			return path;
		}
	}
	return NULL;
}

static bool top_level_ok(const char *path)
{
	size_t n = strcspn(path, "/");

	if (n == strlen("metadata.yaml") && strncmp(path, "metadata.yaml", n) == 0)
		return !path[n];
	return (n == strlen("rootfs") && strncmp(path, "rootfs", n) == 0) ||
	       (n == strlen("templates") && strncmp(path, "templates", n) == 0);
}

/* Rewrites security.capability for the shifted owner (VFS_CAP_REVISION_3 carries the uid that
 * is root for the capabilities; a v2 entry means host root and would be ignored in the
 * container) and drops trusted.* attributes, which only host root may set. */
static int shift_xattrs(struct archive_entry *e, uint32_t shift_base, const char **ret_why)
{
	struct {
		char *name;
		void *value;
		size_t size;
	} keep[64];
	size_t nkeep = 0;
	const char *name;
	const void *value;
	size_t size;
	int r = 0;

	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		if (nkeep == ARRAY_SIZE(keep)) {
			*ret_why = "too many extended attributes";
			r = -E2BIG;
			break;
		}
		keep[nkeep].name = strdup(name);
		keep[nkeep].value = malloc(size > 0 ? size : 1);
		keep[nkeep].size = size;
		if (!keep[nkeep].name || !keep[nkeep].value) {
			free(keep[nkeep].name);
			free(keep[nkeep].value);
			r = -ENOMEM;
			break;
		}
		memcpy(keep[nkeep].value, value, size);
		nkeep++;
	}
	if (r >= 0) {
		archive_entry_xattr_clear(e);
		for (size_t i = 0; i < nkeep; i++) {
			struct vfs_ns_cap_data cap = {0};

			if (startswith(keep[i].name, "trusted."))
				continue;
			if (shift_base > 0 && streq(keep[i].name, "security.capability")) {
				uint32_t magic, rootid = 0;

				if (keep[i].size != XATTR_CAPS_SZ_2 &&
				    keep[i].size != XATTR_CAPS_SZ_3)
					continue; /* v1 or garbage: drop it */
				memcpy(&cap, keep[i].value, keep[i].size);
				magic = le32toh(cap.magic_etc);
				if (keep[i].size == XATTR_CAPS_SZ_3)
					rootid = le32toh(cap.rootid);
				if (rootid >= SHIFT_RANGE)
					continue;
				cap.magic_etc = htole32(VFS_CAP_REVISION_3 |
							(magic & VFS_CAP_FLAGS_EFFECTIVE));
				cap.rootid = htole32(shift_base + rootid);
				archive_entry_xattr_add_entry(e, keep[i].name, &cap,
							      XATTR_CAPS_SZ_3);
				continue;
			}
			archive_entry_xattr_add_entry(e, keep[i].name, keep[i].value, keep[i].size);
		}
	}
	for (size_t i = 0; i < nkeep; i++) {
		free(keep[i].name);
		free(keep[i].value);
	}
	return r;
}

struct unpack {
	const char *tarball;
	uint32_t shift_base;
	uint64_t max_bytes;
	uint64_t total_bytes;
	struct seen_set seen;
	bool have_metadata, have_rootfs;
	struct kiva_error *reterr;
};

static int refuse(struct unpack *u, int code, const char *path, const char *why)
{
	return kiva_error_set(u->reterr, code, "Refusing image entry '%s': %s", path, why);
}

/* Checks one entry and rewrites it for extraction (normalized paths, shifted owner). */
static int check_entry(struct unpack *u, struct archive_entry *e, char path[static PATH_MAX],
		       bool *ret_skip)
{
	char target[PATH_MAX];
	const char *raw = archive_entry_pathname(e), *why = NULL, *link_raw;
	mode_t type = archive_entry_filetype(e);
	enum seen_type seen_type;
	size_t slen;
	int r;

	*ret_skip = false;
	if (!raw)
		return kiva_error_set(u->reterr, -EINVAL,
				      "Refusing image entry with an unreadable name");
	r = normalize(raw, path, &why);
	if (r < 0)
		return refuse(u, r, raw, why);
	if (!path[0]) {
		*ret_skip = true; /* "./": the target directory itself */
		return 0;
	}
	if (!top_level_ok(path))
		return refuse(
			u, -EINVAL, raw,
			"not part of an LXD image (expected metadata.yaml, rootfs/, templates/)");
	if (through_symlink(&u->seen, path, &slen)) {
		char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "it goes through the symlink '%.*s'", (int)slen, path);
		return refuse(u, -ELOOP, raw, msg);
	}

	link_raw = archive_entry_hardlink(e);
	if (link_raw) {
		r = normalize(link_raw, target, &why);
		if (r < 0) {
			char msg[PATH_MAX + 64];

			snprintf(msg, sizeof(msg), "hard link target '%s': %s", link_raw, why);
			return refuse(u, r, raw, msg);
		}
		if (!target[0] || seen_get(&u->seen, target, strlen(target)) != SEEN_FILE) {
			char msg[PATH_MAX + 96];

			snprintf(
				msg, sizeof(msg),
				"hard link target '%s' is not a regular file earlier in the archive",
				link_raw);
			return refuse(u, -EINVAL, raw, msg);
		}
		archive_entry_set_hardlink(e, target);
		seen_type = SEEN_FILE;
	} else {
		switch (type) {
		case AE_IFREG:
			seen_type = SEEN_FILE;
			break;
		case AE_IFDIR:
			seen_type = SEEN_DIR;
			break;
		case AE_IFLNK:
			seen_type = SEEN_SYMLINK;
			break;
		case AE_IFIFO:
		case AE_IFSOCK:
			seen_type = SEEN_OTHER;
			break;
		case AE_IFCHR:
		case AE_IFBLK:
			if (u->shift_base > 0)
				return refuse(
					u, -EPERM, raw,
					"device nodes are not allowed in unprivileged containers");
			seen_type = SEEN_OTHER;
			break;
		default:
			return refuse(u, -EINVAL, raw, "unsupported file type");
		}
	}

	if (streq(path, "metadata.yaml")) {
		if (seen_type != SEEN_FILE || link_raw)
			return refuse(u, -EINVAL, raw, "metadata.yaml must be a regular file");
		if (archive_entry_size(e) > IMAGE_META_MAX_BYTES)
			return refuse(u, -EFBIG, raw, "metadata.yaml is larger than 1 MiB");
		u->have_metadata = true;
	} else if ((streq(path, "rootfs") || streq(path, "templates")) && seen_type != SEEN_DIR) {
		return refuse(u, -EINVAL, raw, "must be a directory");
	}
	if (startswith(path, "rootfs"))
		u->have_rootfs = true;

	r = seen_add(&u->seen, path, seen_type);
	if (r == -EEXIST)
		return refuse(u, -EEXIST, raw, "duplicate entry");
	if (r < 0)
		return kiva_error_set(u->reterr, r, "Out of memory");

	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
		uint64_t size = (uint64_t)archive_entry_size(e);

		if (size > u->max_bytes || u->total_bytes > u->max_bytes - size)
			return kiva_error_set(
				u->reterr, -EFBIG,
				"Refusing image '%s': archive expands past %llu bytes (at '%s')",
				u->tarball, (unsigned long long)u->max_bytes, raw);
		u->total_bytes += size;
	}

	if (u->shift_base > 0) {
		la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);

		if (uid < 0 || gid < 0 || uid >= SHIFT_RANGE || gid >= SHIFT_RANGE) {
			char msg[128];

			snprintf(msg, sizeof(msg),
				 "owner %lld:%lld is outside the container's %u ids",
				 (long long)uid, (long long)gid, SHIFT_RANGE);
			return refuse(u, -ERANGE, raw, msg);
		}
		archive_entry_set_uid(e, uid + u->shift_base);
		archive_entry_set_gid(e, gid + u->shift_base);
	}
	/* Numeric ids only: the names in the archive mean nothing on this host. */
	archive_entry_set_uname(e, NULL);
	archive_entry_set_gname(e, NULL);
	r = shift_xattrs(e, u->shift_base, &why);
	if (r < 0)
		return refuse(u, r, raw, why ? why : "out of memory");
	archive_entry_set_pathname(e, path);
	return 0;
}

static int copy_data(struct unpack *u, struct archive *in, struct archive *out, const char *path)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(in, &buf, &size, &offset);

		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO,
					      "Failed to read image '%s' at '%s': %s", u->tarball,
					      path, archive_error_string(in));
		if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to write '%s': %s", path,
					      archive_error_string(out));
	}
}

/* Removes everything inside dir (not dir itself: it may be a btrfs subvolume). */
static int empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		cleanup_free char *p = NULL;
		int k;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		p = strf("%s/%s", dir, de->d_name);
		k = p ? rm_rf(p) : -ENOMEM;
		if (k < 0 && r >= 0)
			r = k;
	}
	closedir(d);
	return r;
}

static bool dir_is_empty(const char *dir, int *ret_err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool empty = true;

	*ret_err = 0;
	if (!d) {
		*ret_err = -errno;
		return false;
	}
	while ((de = readdir(d)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

static struct archive *reader_new(struct kiva_error *reterr)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	/* Tar variants only (ustar, pax, GNU), and only the compressions LXD produces. */
	if (archive_read_support_format_tar(a) < ARCHIVE_WARN ||
	    archive_read_support_format_gnutar(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_none(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_gzip(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_xz(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_zstd(a) < ARCHIVE_WARN ||
	    archive_read_support_filter_bzip2(a) < ARCHIVE_WARN) {
		kiva_error_set(reterr, -EIO, "libarchive: %s", archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int extract_all(struct unpack *u, struct archive *in, struct archive *out)
{
	char path[PATH_MAX];

	for (;;) {
		struct archive_entry *e;
		bool skip;
		int r = archive_read_next_header(in, &e);

		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to read image '%s': %s",
					      u->tarball, archive_error_string(in));
		r = check_entry(u, e, path, &skip);
		if (r < 0)
			return r;
		if (skip)
			continue;
		if (archive_write_header(out, e) < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to extract '%s': %s", path,
					      archive_error_string(out));
		if (archive_entry_size(e) > 0) {
			r = copy_data(u, in, out, path);
			if (r < 0)
				return r;
		}
		if (archive_write_finish_entry(out) < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to extract '%s': %s", path,
					      archive_error_string(out));
	}
}

int image_unpack(const char *tarball, const char *dir, uint32_t shift_base, uint64_t max_bytes,
		 struct kiva_error *reterr)
{
	struct unpack u = {.tarball = tarball,
			   .shift_base = shift_base,
			   .max_bytes = max_bytes,
			   .reterr = reterr};
	struct archive *in = NULL, *out = NULL;
	cleanup_close int cwd = -EBADF;
	struct image_meta meta = {0};
	struct stat st;
	int r, err;

	if (shift_base > UINT32_MAX - SHIFT_RANGE)
		return kiva_error_set(reterr, -ERANGE, "Shift base %u is too large", shift_base);
	if (!dir_is_empty(dir, &err)) {
		if (err < 0)
			return kiva_error_set(reterr, err, "Failed to open '%s': %s", dir,
					      strerror(-err));
		return kiva_error_set(reterr, -ENOTEMPTY, "'%s' is not empty", dir);
	}
	in = reader_new(reterr);
	if (!in)
		return kiva_error_default(reterr, -ENOMEM, "Out of memory");
	if (archive_read_open_filename(in, tarball, 64 * 1024) != ARCHIVE_OK) {
		r = kiva_error_set(reterr, -EINVAL, "Failed to read image '%s': %s", tarball,
				   archive_error_string(in));
		archive_read_free(in);
		return r;
	}
	out = archive_write_disk_new();
	if (!out) {
		archive_read_free(in);
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
						    ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
						    ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						    ARCHIVE_EXTRACT_SECURE_NODOTDOT |
						    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);

	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0)
		cwd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (chdir(dir) < 0) {
		r = kiva_error_set(reterr, -errno, "Failed to enter '%s': %m", dir);
		archive_read_free(in);
		archive_write_free(out);
		return r;
	}

	r = extract_all(&u, in, out);
	if (r >= 0 && !u.have_metadata)
		r = kiva_error_set(reterr, -EINVAL, "not an LXD image: no metadata.yaml in '%s'",
				   tarball);
	if (r >= 0 && !u.have_rootfs)
		r = kiva_error_set(
			reterr, -EINVAL,
			"'%s' holds only metadata (a split LXD image); only unified images with rootfs/ are supported",
			tarball);
	/* Close while still inside dir: libarchive applies deferred directory modes and times
	 * relative to the working directory. */
	if (archive_write_close(out) < ARCHIVE_WARN && r >= 0)
		r = kiva_error_set(reterr, -EIO, "Failed to finish extracting '%s': %s", tarball,
				   archive_error_string(out));
	archive_write_free(out);
	archive_read_free(in);
	if (cwd >= 0)
		(void)fchdir(cwd);
	seen_done(&u.seen);

	if (r >= 0) {
		cleanup_free char *rootfs = strf("%s/rootfs", dir);

		if (!rootfs)
			r = kiva_error_set(reterr, -ENOMEM, "Out of memory");
		else if (lstat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
			r = kiva_error_set(reterr, -EINVAL, "'%s' has no rootfs/ directory",
					   tarball);
	}
	if (r >= 0) {
		r = image_meta_read(dir, &meta, reterr);
		image_meta_done(&meta);
	}
	if (r < 0)
		(void)empty_dir(dir);
	return r;
}
