/* Safe extraction of tar archives, and its first layout: LXD unified image tarballs
 * (metadata.yaml, rootfs/, templates/). The extractor (image-internal.h) is shared with instance
 * backups (image-backup.c). Only files of image_archive_lib include <archive.h>; only
 * kiva-archive-helper links it, so the idle daemon never maps libarchive (feasibility §13).
 *
 * libarchive's own guards are on (ARCHIVE_EXTRACT_SECURE_SYMLINKS, _NODOTDOT,
 * _NOABSOLUTEPATHS), and every entry is checked here as well before it is written: normalized
 * relative path, a name the layout knows, no path or hard link target through an earlier symlink,
 * hard links only to regular files extracted earlier, no duplicates, no device nodes unless
 * allowed, ids inside one idmap range, and caps on the expanded size and the number of entries.
 * Any failure empties the target directory. libarchive's write-to-disk API resolves paths against
 * the working directory, so the extractor chdir()s into the target for its duration: call it from
 * a single-threaded process (kiva-helper), not from a thread of kivad. */
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
#include "image-internal.h"
#include "image.h"

#define SHIFT_RANGE IMAGE_ARCHIVE__ID_RANGE

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

static size_t set_slot(const struct image_archive__set *s, const char *key, size_t n)
{
	size_t i = fnv1a(key, n) & (s->cap - 1);

	while (s->keys[i] && !(strncmp(s->keys[i], key, n) == 0 && s->keys[i][n] == 0))
		i = (i + 1) & (s->cap - 1);
	return i;
}

uint32_t image_archive__set_get(const struct image_archive__set *s, const char *key, size_t n)
{
	size_t i;

	if (s->cap == 0)
		return 0;
	i = set_slot(s, key, n);
	return s->keys[i] ? s->vals[i] : 0;
}

int image_archive__set_add(struct image_archive__set *s, const char *key, uint32_t val)
{
	size_t n = strlen(key), i;

	if (2 * (s->n + 1) > s->cap) {
		struct image_archive__set g = {.cap = s->cap ? s->cap * 2 : 1024};

		g.keys = calloc(g.cap, sizeof(*g.keys));
		g.vals = calloc(g.cap, sizeof(*g.vals));
		if (!g.keys || !g.vals) {
			free(g.keys);
			free(g.vals);
			return -ENOMEM;
		}
		for (size_t k = 0; k < s->cap; k++) {
			if (!s->keys[k])
				continue;
			i = set_slot(&g, s->keys[k], strlen(s->keys[k]));
			g.keys[i] = s->keys[k];
			g.vals[i] = s->vals[k];
		}
		g.n = s->n;
		free(s->keys);
		free(s->vals);
		*s = g;
	}
	i = set_slot(s, key, n);
	if (s->keys[i])
		return -EEXIST;
	s->keys[i] = strdup(key);
	if (!s->keys[i])
		return -ENOMEM;
	s->vals[i] = val;
	s->n++;
	return 0;
}

void image_archive__set_done(struct image_archive__set *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->vals);
	*s = (struct image_archive__set){0};
}

int image_archive__normalize(const char *in, char out[static PATH_MAX], const char **ret_why)
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

int image_archive__map_id(const struct image_archive__idmap *m, int64_t id, uint32_t *ret)
{
	if (!m->shift) {
		if (id < 0 || id > UINT32_MAX)
			return -ERANGE;
		*ret = (uint32_t)id;
		return 0;
	}
	if (m->from > 0 && id >= m->from && id - m->from < SHIFT_RANGE) {
		*ret = m->to + (uint32_t)(id - m->from);
		return 0;
	}
	if (id < 0 || id >= SHIFT_RANGE)
		return -ERANGE;
	*ret = m->to + (uint32_t)id;
	return 0;
}

/* The symlink that a proper prefix of path goes through, or NULL. */
static const char *through_symlink(const struct image_archive__set *seen, const char *path,
				   size_t *ret_len)
{
	for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		if (image_archive__set_get(seen, path, (size_t)(p - path)) ==
		    IMAGE_ARCHIVE__SYMLINK) {
			*ret_len = (size_t)(p - path);
			return path;
		}
	}
	return NULL;
}

/* Rewrites security.capability for the mapped owner (VFS_CAP_REVISION_3 carries the uid that is
 * root for the capabilities; a v2 entry means host root and would be ignored in the container)
 * and drops trusted.* attributes, which only host root may set. */
static int map_xattrs(struct archive_entry *e, const struct image_archive__idmap *m,
		      const char **ret_why)
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
			if (m->shift && streq(keep[i].name, "security.capability")) {
				uint32_t magic, rootid = 0;

				if (keep[i].size != XATTR_CAPS_SZ_2 &&
				    keep[i].size != XATTR_CAPS_SZ_3)
					continue; /* v1 or garbage: drop it */
				memcpy(&cap, keep[i].value, keep[i].size);
				magic = le32toh(cap.magic_etc);
				if (keep[i].size == XATTR_CAPS_SZ_3)
					rootid = le32toh(cap.rootid);
				if (image_archive__map_id(m, rootid, &rootid) < 0)
					continue;
				cap.magic_etc = htole32(VFS_CAP_REVISION_3 |
							(magic & VFS_CAP_FLAGS_EFFECTIVE));
				cap.rootid = htole32(rootid);
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

int image_archive__refuse(struct image_archive__unpack *u, int code, const char *path,
			  const char *why)
{
	return kiva_error_set(u->reterr, code, "Refusing %s entry '%s': %s", u->what, path, why);
}

/* The type of a non-link entry, or 0 when unsupported. */
static enum image_archive__type entry_type(struct image_archive__unpack *u, mode_t type,
					   const char *raw, int *ret_err)
{
	*ret_err = 0;
	switch (type) {
	case AE_IFREG:
		return IMAGE_ARCHIVE__FILE;
	case AE_IFDIR:
		return IMAGE_ARCHIVE__DIR;
	case AE_IFLNK:
		return IMAGE_ARCHIVE__SYMLINK;
	case AE_IFIFO:
	case AE_IFSOCK:
		return IMAGE_ARCHIVE__OTHER;
	case AE_IFCHR:
	case AE_IFBLK:
		if (!u->allow_devices) {
			*ret_err = image_archive__refuse(
				u, -EPERM, raw,
				"device nodes are not allowed in unprivileged containers");
			return 0;
		}
		return IMAGE_ARCHIVE__OTHER;
	default:
		*ret_err = image_archive__refuse(u, -EINVAL, raw, "unsupported file type");
		return 0;
	}
}

/* Maps and checks the hard link target of e, which the entry at path carries. */
static int check_hardlink(struct image_archive__unpack *u, struct archive *in,
			  struct archive_entry *e, const char *raw, const char *link_raw)
{
	char target[PATH_MAX], mapped[PATH_MAX] = "";
	const char *why = NULL;
	int r = image_archive__normalize(link_raw, target, &why);

	if (r < 0) {
		char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "hard link target '%s': %s", link_raw, why);
		return image_archive__refuse(u, r, raw, msg);
	}
	if (target[0]) {
		r = u->layout->place(u, in, NULL, link_raw, target, mapped);
		if (r < 0)
			return r;
	}
	if (!mapped[0] ||
	    image_archive__set_get(&u->seen, mapped, strlen(mapped)) != IMAGE_ARCHIVE__FILE) {
		char msg[PATH_MAX + 96];

		snprintf(msg, sizeof(msg),
			 "hard link target '%s' is not a regular file earlier in the archive",
			 link_raw);
		return image_archive__refuse(u, -EINVAL, raw, msg);
	}
	archive_entry_set_hardlink(e, mapped);
	return 0;
}

/* Charges the entry against max_bytes. */
static int charge(struct image_archive__unpack *u, struct archive_entry *e, const char *raw,
		  const char *path)
{
	uint64_t size = 0;

	if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
		size = (uint64_t)archive_entry_size(e);
	if (u->entry_bytes > 0)
		size += u->entry_bytes + strlen(path);
	if (size == 0)
		return 0;
	if (size > u->max_bytes || u->total_bytes > u->max_bytes - size)
		return kiva_error_set(
			u->reterr, -EFBIG,
			"Refusing %s '%s': archive expands past %llu bytes (at '%s')%s", u->what,
			u->archive, (unsigned long long)u->max_bytes, raw,
			u->limit_note ? u->limit_note : "");
	u->total_bytes += size;
	return 0;
}

/* Checks one entry and rewrites it for extraction (placed path, mapped owner). *ret_skip: the
 * layout consumed the entry, or it is the archive's "./". */
static int check_entry(struct image_archive__unpack *u, struct archive *in, struct archive_entry *e,
		       char path[static PATH_MAX], bool *ret_skip)
{
	char npath[PATH_MAX];
	const char *raw = archive_entry_pathname(e), *why = NULL, *link_raw;
	enum image_archive__type type;
	la_int64_t uid, gid;
	uint32_t new_uid, new_gid;
	size_t slen;
	int r;

	*ret_skip = false;
	if (!raw)
		return kiva_error_set(u->reterr, -EINVAL,
				      "Refusing %s entry with an unreadable name", u->what);
	r = image_archive__normalize(raw, npath, &why);
	if (r < 0)
		return image_archive__refuse(u, r, raw, why);
	if (!npath[0]) {
		*ret_skip = true; /* "./": the target directory itself */
		return 0;
	}
	if (u->max_entries > 0 && ++u->n_entries > u->max_entries)
		return kiva_error_set(u->reterr, -EFBIG,
				      "Refusing %s '%s': more than %llu entries (at '%s')", u->what,
				      u->archive, (unsigned long long)u->max_entries, raw);
	path[0] = 0;
	r = u->layout->place(u, in, e, raw, npath, path);
	if (r < 0)
		return r;
	if (!path[0]) {
		*ret_skip = true;
		return 0;
	}
	if (through_symlink(&u->seen, path, &slen)) {
		char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "it goes through the symlink '%.*s'", (int)slen, path);
		return image_archive__refuse(u, -ELOOP, raw, msg);
	}

	link_raw = archive_entry_hardlink(e);
	if (link_raw) {
		r = check_hardlink(u, in, e, raw, link_raw);
		if (r < 0)
			return r;
		type = IMAGE_ARCHIVE__FILE;
	} else {
		type = entry_type(u, archive_entry_filetype(e), raw, &r);
		if (r < 0)
			return r;
	}
	r = u->layout->check(u, e, raw, path, type);
	if (r < 0)
		return r;

	r = image_archive__set_add(&u->seen, path, type);
	if (r == -EEXIST)
		return image_archive__refuse(u, -EEXIST, raw, "duplicate entry");
	if (r < 0)
		return kiva_error_set(u->reterr, r, "Out of memory");
	r = charge(u, e, raw, path);
	if (r < 0)
		return r;

	uid = archive_entry_uid(e);
	gid = archive_entry_gid(e);
	if (u->map.shift) {
		if (image_archive__map_id(&u->map, uid, &new_uid) < 0 ||
		    image_archive__map_id(&u->map, gid, &new_gid) < 0) {
			char msg[128];

			snprintf(msg, sizeof(msg),
				 "owner %lld:%lld is outside the container's %u ids",
				 (long long)uid, (long long)gid, SHIFT_RANGE);
			return image_archive__refuse(u, -ERANGE, raw, msg);
		}
		archive_entry_set_uid(e, new_uid);
		archive_entry_set_gid(e, new_gid);
	}
	/* Numeric ids only: the names in the archive mean nothing on this host. */
	archive_entry_set_uname(e, NULL);
	archive_entry_set_gname(e, NULL);
	r = map_xattrs(e, &u->map, &why);
	if (r < 0)
		return image_archive__refuse(u, r, raw, why ? why : "out of memory");
	archive_entry_set_pathname(e, path);
	return 0;
}

static int copy_data(struct image_archive__unpack *u, struct archive *in, struct archive *out,
		     const char *path)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(in, &buf, &size, &offset);

		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to read %s '%s' at '%s': %s",
					      u->what, u->archive, path, archive_error_string(in));
		if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to write '%s': %s", path,
					      archive_error_string(out));
	}
}

int image_archive__empty_dir(const char *dir)
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

bool image_archive__dir_is_empty(const char *dir, int *ret_err)
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

static int extract_all(struct image_archive__unpack *u, struct archive *in, struct archive *out)
{
	char path[PATH_MAX];

	for (;;) {
		struct archive_entry *e;
		bool skip;
		int r = archive_read_next_header(in, &e);

		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return kiva_error_set(u->reterr, -EIO, "Failed to read %s '%s': %s",
					      u->what, u->archive, archive_error_string(in));
		r = check_entry(u, in, e, path, &skip);
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

int image_archive__extract(struct image_archive__unpack *u, const char *dir)
{
	struct archive *in = NULL, *out = NULL;
	cleanup_close int cwd = -EBADF;
	int r;

	in = reader_new(u->reterr);
	if (!in)
		return kiva_error_default(u->reterr, -ENOMEM, "Out of memory");
	if (archive_read_open_filename(in, u->archive, 64 * 1024) != ARCHIVE_OK) {
		r = kiva_error_set(u->reterr, -EINVAL, "Failed to read %s '%s': %s", u->what,
				   u->archive, archive_error_string(in));
		archive_read_free(in);
		return r;
	}
	out = archive_write_disk_new();
	if (!out) {
		archive_read_free(in);
		return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
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
		r = kiva_error_set(u->reterr, -errno, "Failed to enter '%s': %m", dir);
		archive_read_free(in);
		archive_write_free(out);
		return r;
	}

	r = extract_all(u, in, out);
	if (r >= 0 && u->layout->finish)
		r = u->layout->finish(u);
	/* Close while still inside dir: libarchive applies deferred directory modes and times
	 * relative to the working directory. */
	if (archive_write_close(out) < ARCHIVE_WARN && r >= 0)
		r = kiva_error_set(u->reterr, -EIO, "Failed to finish extracting '%s': %s",
				   u->archive, archive_error_string(out));
	archive_write_free(out);
	archive_read_free(in);
	if (cwd >= 0)
		(void)fchdir(cwd);
	return r;
}

void image_archive__unpack_done(struct image_archive__unpack *u)
{
	image_archive__set_done(&u->seen);
}

/* ---- LXD unified images ---- */

struct image_layout {
	bool have_metadata, have_rootfs;
};

static bool top_level_ok(const char *path)
{
	size_t n = strcspn(path, "/");

	if (n == strlen("metadata.yaml") && strncmp(path, "metadata.yaml", n) == 0)
		return !path[n];
	return (n == strlen("rootfs") && strncmp(path, "rootfs", n) == 0) ||
	       (n == strlen("templates") && strncmp(path, "templates", n) == 0);
}

static int image_place(struct image_archive__unpack *u, struct archive *in, struct archive_entry *e,
		       const char *raw, const char *path, char ret_path[static PATH_MAX])
{
	if (e && !top_level_ok(path))
		return image_archive__refuse(
			u, -EINVAL, raw,
			"not part of an LXD image (expected metadata.yaml, rootfs/, templates/)");
	strcpy(ret_path, path);
	return 0;
}

static int image_check(struct image_archive__unpack *u, struct archive_entry *e, const char *raw,
		       const char *path, enum image_archive__type type)
{
	struct image_layout *l = u->userdata;

	if (streq(path, "metadata.yaml")) {
		if (type != IMAGE_ARCHIVE__FILE || archive_entry_hardlink(e))
			return image_archive__refuse(u, -EINVAL, raw,
						     "metadata.yaml must be a regular file");
		if (archive_entry_size(e) > IMAGE_META_MAX_BYTES)
			return image_archive__refuse(u, -EFBIG, raw,
						     "metadata.yaml is larger than 1 MiB");
		l->have_metadata = true;
	} else if ((streq(path, "rootfs") || streq(path, "templates")) &&
		   type != IMAGE_ARCHIVE__DIR) {
		return image_archive__refuse(u, -EINVAL, raw, "must be a directory");
	}
	if (startswith(path, "rootfs"))
		l->have_rootfs = true;
	return 0;
}

static int image_finish(struct image_archive__unpack *u)
{
	struct image_layout *l = u->userdata;

	if (!l->have_metadata)
		return kiva_error_set(u->reterr, -EINVAL,
				      "not an LXD image: no metadata.yaml in '%s'", u->archive);
	if (!l->have_rootfs)
		return kiva_error_set(
			u->reterr, -EINVAL,
			"'%s' holds only metadata (a split LXD image); only unified images with rootfs/ are supported",
			u->archive);
	return 0;
}

static const struct image_archive__layout image_layout = {
	.place = image_place,
	.check = image_check,
	.finish = image_finish,
};

int image_unpack(const char *tarball, const char *dir, uint32_t shift_base, uint64_t max_bytes,
		 struct kiva_error *reterr)
{
	struct image_layout l = {0};
	struct image_archive__unpack u = {.archive = tarball,
					  .what = "image",
					  .layout = &image_layout,
					  .userdata = &l,
					  .map = {.shift = shift_base > 0, .to = shift_base},
					  .allow_devices = shift_base == 0,
					  .max_bytes = max_bytes,
					  .reterr = reterr};
	struct image_meta meta = {0};
	struct stat st;
	int r, err;

	if (shift_base > UINT32_MAX - SHIFT_RANGE)
		return kiva_error_set(reterr, -ERANGE, "Shift base %u is too large", shift_base);
	if (!image_archive__dir_is_empty(dir, &err)) {
		if (err < 0)
			return kiva_error_set(reterr, err, "Failed to open '%s': %s", dir,
					      strerror(-err));
		return kiva_error_set(reterr, -ENOTEMPTY, "'%s' is not empty", dir);
	}
	r = image_archive__extract(&u, dir);
	image_archive__unpack_done(&u);

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
		(void)image_archive__empty_dir(dir);
	return r;
}
