/* Instance backups in LXD's layout: export as a streamed tarball, import with the checks of the
 * shared extractor (image-internal.h). Linked only by kiva-archive-helper (libarchive).
 *
 * The layout, from LXD 5.0 (lxd/backup/backup_info.go: Info{name, backend, pool, snapshots,
 * optimized, optimized_header, type, config}, backupIndexPath = "backup/index.yaml";
 * lxd/storage/drivers/generic_vfs.go: genericVFSBackupVolume writes the snapshots first under
 * "backup/snapshots/<name>", then the volume under "backup/container" ("backup/virtual-machine",
 * "backup/volume" for other volume types), resetting the hard-link map per volume, and
 * genericVFSBackupUnpack extracts each prefix with tar --strip-components --numeric-owner
 * --xattrs-include=*; lxd/backup/backup_config.go: backup.yaml = {container, snapshots, pool,
 * profiles, volume, volume_snapshots}), checked against a real `lxc export` of LXD 5.0.2
 * (Debian 12 package) with a dir pool:
 *
 *   backup/index.yaml                          0644 0:0, first member
 *   backup/snapshots/snap0                     the volume directory itself (0100 on a dir pool)
 *   backup/snapshots/snap0/backup.yaml         0400 0:0 (as written when the snapshot was taken)
 *   backup/snapshots/snap0/metadata.yaml       0644 0:0
 *   backup/snapshots/snap0/rootfs/...          lexical order (filepath.Walk)
 *   backup/container                           ... the same for the instance, last
 *
 * No "backup/" or "backup/snapshots" directory entries; hard links as ustar type '1' to the first
 * name; ustar/pax headers (Go archive/tar) with owner names; gzip by default
 * (backups.compression_algorithm), --instance-only drops backup/snapshots/ and the `snapshots:`
 * key of index.yaml. index.yaml in 5.0.2 embeds the instance's backup.yaml under `config:`; LXD
 * 5.0.2 also imports an index.yaml without it (it then reads backup/container/backup.yaml).
 *
 * Owners: files are stored as they are on disk (no idmap is passed to the tar writer for
 * backups). LXD shifts a container's rootfs at its first start, so the same export holds
 * rootfs/ owned by 100000+ for a container that has run (volatile.last_state.idmap =
 * [{"Isuid":true,"Isgid":false,"Hostid":100000,"Nsid":0,"Maprange":...}, ...]) and 0+ for one
 * that never did, or for a snapshot taken before the first start (volatile.last_state.idmap:
 * '[]'). Files outside rootfs/ are owned by host root. LXD remaps on the next start when
 * last_state.idmap differs from the new map. Hence import shifts per volume, by a base the
 * caller gives or by the owner of the volume's rootfs/ directory (IMAGE_BACKUP_SHIFT_AUTO).
 *
 * Export walks each volume with openat/O_NOFOLLOW from the volume directory down, so a running
 * container swapping a directory for a symlink cannot make it read host files. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image-internal.h"
#include "image.h"

#define INDEX_PATH "backup/index.yaml"
#define COPY_BUF_BYTES (64 * 1024)
#define ENTRY_BYTES 512 /* a tar header: what an inode and its name cost, roughly */

/* ---- volumes ---- */

/* A volume directory (relative to the working directory, the import target): a btrfs subvolume
 * when the target is on btrfs, so kivad can move it into the pool as a volume that snapshots
 * and quotas work on; a plain directory elsewhere. 0700, errno set on failure. */
static int make_volume_dir(const char *path)
{
	struct btrfs_ioctl_vol_args args = {0};
	struct statfs sfs;
	const char *slash = strrchr(path, '/');
	cleanup_free char *parent = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	int fd, r;

	if (!parent) {
		errno = ENOMEM;
		return -1;
	}
	if (statfs(parent, &sfs) < 0 || (unsigned long)sfs.f_type != BTRFS_SUPER_MAGIC)
		return mkdir(path, 0700);
	if (strlen(slash ? slash + 1 : path) >= sizeof(args.name)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(args.name, sizeof(args.name), "%s", slash ? slash + 1 : path);
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &args);
	close(fd);
	if (r < 0)
		return -1;
	return chmod(path, 0700);
}

/* ---- names ---- */

/* A snapshot or instance name usable as one path component and one YAML line. */
static bool name_ok(const char *s)
{
	if (!s || !*s || streq(s, ".") || streq(s, "..") || strlen(s) > NAME_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* ---- index.yaml ---- */

void image_backup_index_done(struct image_backup_index *i)
{
	if (!i)
		return;
	free(i->name);
	free(i->backend);
	free(i->pool);
	free(i->type);
	strv_free(i->snapshots);
	*i = (struct image_backup_index){0};
}

struct index_parser {
	struct image_backup_index x;
	size_t n_snaps, cap_snaps;
	struct image_archive__set names;
	unsigned lineno;
	struct kiva_error *reterr;
};

static int index_error(struct index_parser *p, const char *what)
{
	return kiva_error_set(p->reterr, -EINVAL, "%s line %u: %s", INDEX_PATH, p->lineno, what);
}

static int index_add_snapshot(struct index_parser *p, const char *v, size_t vn)
{
	cleanup_free char *s = NULL;
	char msg[NAME_MAX + 64];
	int r;

	if (image_yaml__rest_is_empty(v, vn) || image_yaml__block_scalar(v, vn))
		return index_error(p, "expected a snapshot name after '-'");
	r = image_yaml__scalar(INDEX_PATH, v, vn, p->lineno, &s, p->reterr);
	if (r < 0)
		return r;
	if (!name_ok(s)) {
		snprintf(msg, sizeof(msg), "invalid snapshot name '%.*s'", NAME_MAX, s);
		return index_error(p, msg);
	}
	r = image_archive__set_add(&p->names, s, 1);
	if (r == -EEXIST) {
		snprintf(msg, sizeof(msg), "snapshot '%s' is listed twice", s);
		return index_error(p, msg);
	}
	if (r < 0)
		return kiva_error_set(p->reterr, r, "Out of memory");
	if (p->n_snaps + 1 >= p->cap_snaps) {
		size_t cap = p->cap_snaps ? p->cap_snaps * 2 : 16;
		char **nv = realloc(p->x.snapshots, cap * sizeof(char *));

		if (!nv)
			return kiva_error_set(p->reterr, -ENOMEM, "Out of memory");
		p->x.snapshots = nv;
		p->cap_snaps = cap;
	}
	p->x.snapshots[p->n_snaps++] = TAKE_PTR(s);
	p->x.snapshots[p->n_snaps] = NULL;
	return 0;
}

static int index_scalar(struct index_parser *p, char **field, const char *key, const char *v,
			size_t vn)
{
	char msg[64];

	if (*field) {
		snprintf(msg, sizeof(msg), "duplicate key '%s'", key);
		return index_error(p, msg);
	}
	if (image_yaml__block_scalar(v, vn)) {
		snprintf(msg, sizeof(msg), "'%s' must be a one-line value", key);
		return index_error(p, msg);
	}
	return image_yaml__scalar(INDEX_PATH, v, vn, p->lineno, field, p->reterr);
}

static int index_bool(struct index_parser *p, bool *field, bool *seen, const char *key,
		      const char *v, size_t vn)
{
	cleanup_free char *s = NULL;
	char msg[64];
	int r;

	if (*seen) {
		snprintf(msg, sizeof(msg), "duplicate key '%s'", key);
		return index_error(p, msg);
	}
	r = index_scalar(p, &s, key, v, vn);
	if (r < 0)
		return r;
	if (!streq(s, "true") && !streq(s, "false")) {
		snprintf(msg, sizeof(msg), "'%s' must be true or false", key);
		return index_error(p, msg);
	}
	*field = streq(s, "true");
	*seen = true;
	return 0;
}

/* "snapshots:" with a value: only the empty flow list. */
static bool empty_flow_list(const char *v, size_t vn)
{
	size_t i = 0;

	while (i < vn && (v[i] == ' ' || v[i] == '\t'))
		i++;
	return vn - i >= 2 && v[i] == '[' && v[i + 1] == ']' &&
	       image_yaml__rest_is_empty(v + i + 2, vn - i - 2);
}

static bool key_is(const char *s, size_t n, const char *key)
{
	return strlen(key) == n && memcmp(s, key, n) == 0;
}

/* One top-level "key: value" line. Sets *section for the lines that follow. */
static int index_key(struct index_parser *p, const char *line, size_t n, int *section, bool seen[3])
{
	enum { TOP, SNAPSHOTS, SKIP };
	ssize_t klen = image_yaml__split_key(line, n);
	const char *v;
	size_t vn;

	if (klen < 0)
		return index_error(p, "expected 'key: value'");
	v = line + klen + 1;
	vn = n - (size_t)klen - 1;
	*section = image_yaml__rest_is_empty(v, vn) || image_yaml__block_scalar(v, vn) ? SKIP : TOP;
	if (key_is(line, (size_t)klen, "snapshots")) {
		if (seen[0])
			return index_error(p, "duplicate key 'snapshots'");
		seen[0] = true;
		if (image_yaml__rest_is_empty(v, vn))
			*section = SNAPSHOTS;
		else if (!empty_flow_list(v, vn))
			return index_error(p, "snapshots must be a list");
		return 0;
	}
	if (*section == SKIP && !image_yaml__block_scalar(v, vn))
		return 0; /* "key:" with a nested block (config:) or nothing */
	if (key_is(line, (size_t)klen, "name"))
		return index_scalar(p, &p->x.name, "name", v, vn);
	if (key_is(line, (size_t)klen, "backend"))
		return index_scalar(p, &p->x.backend, "backend", v, vn);
	if (key_is(line, (size_t)klen, "pool"))
		return index_scalar(p, &p->x.pool, "pool", v, vn);
	if (key_is(line, (size_t)klen, "type"))
		return index_scalar(p, &p->x.type, "type", v, vn);
	if (key_is(line, (size_t)klen, "optimized"))
		return index_bool(p, &p->x.optimized, &seen[1], "optimized", v, vn);
	if (key_is(line, (size_t)klen, "optimized_header"))
		return index_bool(p, &p->x.optimized_header, &seen[2], "optimized_header", v, vn);
	return 0;
}

int image_backup_index_parse(const char *text, size_t len, struct image_backup_index *ret,
			     struct kiva_error *reterr)
{
	enum { TOP, SNAPSHOTS, SKIP };
	struct index_parser p = {.reterr = reterr};
	bool seen[3] = {false, false, false};
	int section = TOP, r = 0;
	size_t pos = 0;

	if (len > IMAGE_BACKUP_YAML_MAX_BYTES)
		return kiva_error_set(reterr, -EFBIG, "%s is larger than %d bytes", INDEX_PATH,
				      IMAGE_BACKUP_YAML_MAX_BYTES);
	if (memchr(text, 0, len))
		return kiva_error_set(reterr, -EINVAL, "%s is not text (NUL byte)", INDEX_PATH);

	while (pos < len && r >= 0) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos, indent = 0;

		pos += n + (nl ? 1 : 0);
		p.lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		while (indent < n && line[indent] == ' ')
			indent++;
		if (indent < n && line[indent] == '\t') {
			r = index_error(&p, "tabs are not allowed for indentation");
			break;
		}
		if (indent == n || line[indent] == '#')
			continue;
		if (indent == 0 && (key_is(line, n, "---") || key_is(line, n, "...")))
			continue;
		/* go-yaml writes the items of a list value unindented: "snapshots:\n- snap0". */
		if (section == SNAPSHOTS && line[indent] == '-' &&
		    (indent + 1 == n || line[indent + 1] == ' ')) {
			r = index_add_snapshot(&p, line + indent + 1, n - indent - 1);
			continue;
		}
		if (indent > 0) {
			if (section != SKIP)
				r = index_error(&p, "unexpected indentation");
			continue;
		}
		r = index_key(&p, line, n, &section, seen);
	}
	if (r >= 0 && (!p.x.name || !p.x.name[0]))
		r = kiva_error_set(reterr, -EINVAL, "%s has no name", INDEX_PATH);
	if (r >= 0 && !p.x.type) {
		p.x.type = strdup("container"); /* as LXD reads an index without type */
		if (!p.x.type)
			r = kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	if (r >= 0 && !p.x.snapshots) {
		p.x.snapshots = calloc(1, sizeof(char *));
		if (!p.x.snapshots)
			r = kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	image_archive__set_done(&p.names);
	if (r < 0) {
		image_backup_index_done(&p.x);
		return r;
	}
	*ret = p.x;
	return 0;
}

/* ---- export ---- */

struct exporter {
	struct archive *a;
	struct archive_entry_linkresolver *links; /* per volume, as LXD resets its map */
	char *buf;
	time_t now;
	struct kiva_error *reterr;
};

static int write_error(struct exporter *x, const char *name)
{
	return kiva_error_set(x->reterr, -EIO, "Failed to write backup entry '%s': %s", name,
			      archive_error_string(x->a));
}

/* A YAML scalar go-yaml would read back as this string: plain when unambiguous, else quoted. */
static void yaml_put_scalar(FILE *f, const char *s)
{
	static const char *const keywords[] = {"y",   "n",    "yes",   "no",   "on",
					       "off", "true", "false", "null", "~"};
	bool plain = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_';

	for (const char *p = s; plain && *p; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.';
	for (size_t i = 0; plain && i < ARRAY_SIZE(keywords); i++)
		plain = strcasecmp(s, keywords[i]) != 0;
	if (plain) {
		fputs(s, f);
		return;
	}
	fputc('\'', f);
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			fputc('\'', f);
		fputc(*p, f);
	}
	fputc('\'', f);
}

/* index.yaml as LXD 5.0.2 writes it, with backup.yaml embedded under config:. */
static int index_yaml(const struct image_backup_src *src, char **ret, size_t *ret_len)
{
	cleanup_free char *text = NULL;
	const char *y = src->backup_yaml;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return -ENOMEM;
	fputs("name: ", f);
	yaml_put_scalar(f, src->name);
	fputs("\nbackend: ", f);
	yaml_put_scalar(f, src->backend ? src->backend : "dir");
	fputs("\npool: ", f);
	yaml_put_scalar(f, src->pool ? src->pool : "default");
	fputc('\n', f);
	if (src->n_snapshots > 0) {
		fputs("snapshots:\n", f);
		for (size_t i = 0; i < src->n_snapshots; i++) {
			fputs("- ", f);
			yaml_put_scalar(f, src->snapshots[i].name);
			fputc('\n', f);
		}
	}
	fputs("optimized: false\noptimized_header: false\ntype: container\nconfig:\n", f);
	if (startswith(y, "---\n"))
		y += 4;
	/* Indenting every line of a block-style document by the same amount keeps its meaning. */
	while (*y) {
		size_t n = strcspn(y, "\n");

		if (n > 0)
			fputs("  ", f);
		fwrite(y, 1, n, f);
		fputc('\n', f);
		y += n + (y[n] ? 1 : 0);
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(text);
	*ret_len = len;
	return 0;
}

static int put_text(struct exporter *x, const char *name, const char *text, size_t len, mode_t perm)
{
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return kiva_error_set(x->reterr, -ENOMEM, "Out of memory");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_mtime(e, x->now, 0);
	if (archive_write_header(x->a, e) < ARCHIVE_WARN ||
	    archive_write_data(x->a, text, len) != (la_ssize_t)len)
		r = write_error(x, name);
	archive_entry_free(e);
	return r;
}

/* Extended attributes of the file: through fd when open, else by its name under dfd. POSIX ACLs
 * (system.*) are left out; failures to read are ignored (a file system without xattrs). */
static int add_xattrs(struct archive_entry *e, int fd, int dfd, const char *child)
{
	cleanup_free char *names = NULL;
	char path[64 + NAME_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, child);
	n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
	if (n <= 0)
		return 0;
	names = malloc((size_t)n + 1);
	if (!names)
		return -ENOMEM;
	n = fd >= 0 ? flistxattr(fd, names, (size_t)n) : llistxattr(path, names, (size_t)n);
	if (n <= 0)
		return 0;
	names[n] = 0;
	for (const char *p = names; p < names + n; p += strlen(p) + 1) {
		cleanup_free void *value = NULL;
		ssize_t vn;

		if (startswith(p, "system."))
			continue;
		vn = fd >= 0 ? fgetxattr(fd, p, NULL, 0) : lgetxattr(path, p, NULL, 0);
		if (vn < 0)
			continue;
		value = malloc(vn > 0 ? (size_t)vn : 1);
		if (!value)
			return -ENOMEM;
		vn = fd >= 0 ? fgetxattr(fd, p, value, (size_t)vn)
			     : lgetxattr(path, p, value, (size_t)vn);
		if (vn < 0)
			continue;
		archive_entry_xattr_add_entry(e, p, value, (size_t)vn);
	}
	return 0;
}

static int copy_file_data(struct exporter *x, int fd, uint64_t size, const char *name)
{
	/* Up to the size in the header: a file that grows meanwhile is cut, one that shrinks is
	 * padded with zeros by libarchive (LXD's ignoreGrowth does the same). */
	while (size > 0) {
		size_t want = size < COPY_BUF_BYTES ? (size_t)size : COPY_BUF_BYTES;
		ssize_t n = read(fd, x->buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiva_error_set(x->reterr, -errno, "Failed to read '%s': %m", name);
		if (n == 0)
			break;
		if (archive_write_data(x->a, x->buf, (size_t)n) != n)
			return write_error(x, name);
		size -= (uint64_t)n;
	}
	return 0;
}

/* Writes the file child of dfd (fstat'ed as *st; fd open for regular files and directories,
 * else -1) as name. Sockets are skipped: tar cannot hold them. */
static int put_entry(struct exporter *x, int dfd, const char *child, int fd, const struct stat *st,
		     const char *name)
{
	struct archive_entry *e = archive_entry_new(), *spare = NULL;
	char target[PATH_MAX];
	int r = 0;

	if (!e)
		return kiva_error_set(x->reterr, -ENOMEM, "Out of memory");
	archive_entry_copy_stat(e, st);
	archive_entry_set_pathname(e, name);
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlinkat(dfd, child, target, sizeof(target) - 1);

		if (n < 0) {
			r = kiva_error_set(x->reterr, -errno, "Failed to read the symlink '%s': %m",
					   name);
			goto out;
		}
		target[n] = 0;
		archive_entry_set_symlink(e, target);
	}
	if (!S_ISREG(st->st_mode))
		archive_entry_set_size(e, 0);
	if (add_xattrs(e, fd, dfd, child) < 0) {
		r = kiva_error_set(x->reterr, -ENOMEM, "Out of memory");
		goto out;
	}
	if (S_ISREG(st->st_mode) && st->st_nlink > 1)
		archive_entry_linkify(x->links, &e, &spare); /* later names become hard links */
	if (archive_write_header(x->a, e) < ARCHIVE_WARN) {
		r = write_error(x, name);
		goto out;
	}
	if (S_ISREG(st->st_mode) && !archive_entry_hardlink(e) && st->st_size > 0)
		r = copy_file_data(x, fd, (uint64_t)st->st_size, name);
out:
	archive_entry_free(e);
	archive_entry_free(spare);
	return r;
}

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in the directory fd, sorted as filepath.Walk sorts them. */
static int list_dir(int fd, char ***ret, size_t *ret_n)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3), r = 0;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;

	if (!d) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **nv = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof(char *));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			names = nv;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r >= 0 && errno != 0)
		r = -errno;
	closedir(d);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return r;
	}
	if (n > 1)
		qsort(names, n, sizeof(char *), strcmp_ptr);
	*ret = names;
	*ret_n = n;
	return 0;
}

/* Names a volume directory holds that are exported (and that import accepts). */
static bool volume_name_ok(const char *child, bool with_backup_yaml)
{
	return streq(child, "metadata.yaml") || streq(child, "rootfs") ||
	       streq(child, "templates") || (with_backup_yaml && streq(child, "backup.yaml"));
}

/* Exports the children of the directory fd, named name (a buffer of PATH_MAX, restored on
 * return). top: fd is a volume directory. */
static int put_children(struct exporter *x, int fd, char *name, bool top, bool disk_backup_yaml)
{
	size_t nlen = strlen(name), n = 0;
	char **children = NULL;
	int r = list_dir(fd, &children, &n);

	if (r < 0)
		return kiva_error_set(x->reterr, r, "Failed to list '%s': %s", name, strerror(-r));
	for (size_t i = 0; i < n && r >= 0; i++) {
		const char *c = children[i];
		cleanup_close int cfd = -EBADF;
		struct stat st;

		if (top && !volume_name_ok(c, disk_backup_yaml))
			continue;
		if (nlen + 1 + strlen(c) >= PATH_MAX) {
			r = kiva_error_set(x->reterr, -ENAMETOOLONG, "Path too long under '%s'",
					   name);
			break;
		}
		snprintf(name + nlen, PATH_MAX - nlen, "/%s", c);
		if (fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) /* a file that vanished is skipped, as LXD does */
				r = kiva_error_set(x->reterr, -errno, "Failed to stat '%s': %m",
						   name);
			name[nlen] = 0;
			continue;
		}
		if (S_ISSOCK(st.st_mode)) {
			name[nlen] = 0;
			continue;
		}
		if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
			struct stat st2;

			cfd = openat(fd, c,
				     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
					     (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
			if (cfd < 0 || fstat(cfd, &st2) < 0 || st2.st_ino != st.st_ino ||
			    st2.st_dev != st.st_dev ||
			    (st2.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
				r = kiva_error_set(x->reterr, -ESTALE,
						   "'%s' changed while it was exported", name);
				break;
			}
			st = st2;
		}
		r = put_entry(x, fd, c, cfd, &st, name);
		if (r >= 0 && S_ISDIR(st.st_mode))
			r = put_children(x, cfd, name, false, false);
		name[nlen] = 0;
	}
	for (size_t i = 0; i < n; i++)
		free(children[i]);
	free(children);
	return r;
}

/* One volume: the directory entry, backup.yaml, then its content in lexical order. */
static int put_volume(struct exporter *x, const char *dir, const char *prefix,
		      const char *backup_yaml)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char name[PATH_MAX];
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0)
		return kiva_error_set(x->reterr, -errno, "Failed to open '%s': %m", dir);
	snprintf(name, sizeof(name), "%s", prefix);
	x->links = archive_entry_linkresolver_new();
	if (!x->links)
		return kiva_error_set(x->reterr, -ENOMEM, "Out of memory");
	archive_entry_linkresolver_set_strategy(x->links, archive_format(x->a));
	r = put_entry(x, fd, ".", fd, &st, name);
	if (r >= 0 && backup_yaml) {
		cleanup_free char *yaml_name = strf("%s/backup.yaml", prefix);

		r = yaml_name ? put_text(x, yaml_name, backup_yaml, strlen(backup_yaml), 0400)
			      : kiva_error_set(x->reterr, -ENOMEM, "Out of memory");
	}
	if (r >= 0)
		r = put_children(x, fd, name, true, !backup_yaml);
	archive_entry_linkresolver_free(x->links);
	x->links = NULL;
	return r;
}

static int add_filter(struct archive *a, const char *compression, struct kiva_error *reterr)
{
	static const struct {
		const char *name;
		int code;
	} filters[] = {
		{"gzip", ARCHIVE_FILTER_GZIP}, {"zstd", ARCHIVE_FILTER_ZSTD},
		{"xz", ARCHIVE_FILTER_XZ},     {"bzip2", ARCHIVE_FILTER_BZIP2},
		{"none", ARCHIVE_FILTER_NONE},
	};

	for (size_t i = 0; compression && i < ARRAY_SIZE(filters); i++) {
		if (!streq(compression, filters[i].name))
			continue;
		if (archive_write_add_filter(a, filters[i].code) < ARCHIVE_WARN)
			return kiva_error_set(reterr, -EIO, "libarchive: %s",
					      archive_error_string(a));
		return 0;
	}
	return kiva_error_set(reterr, -EINVAL,
			      "Unsupported compression '%s' (use gzip, zstd, xz, bzip2 or none)",
			      compression ? compression : "");
}

/* Checked before anything is written, so that a bad argument leaves no partial archive. */
static bool dir_ok(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return false;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return false;
	}
	return true;
}

static int check_src(const struct image_backup_src *src, struct kiva_error *reterr)
{
	struct image_archive__set names = {0};
	int r = 0;

	if (!name_ok(src->name))
		return kiva_error_set(reterr, -EINVAL, "Invalid instance name '%s'",
				      src->name ? src->name : "");
	if ((src->pool && !name_ok(src->pool)) || (src->backend && !name_ok(src->backend)))
		return kiva_error_set(reterr, -EINVAL, "Invalid pool or backend name");
	if (!src->dir || !src->backup_yaml || !src->backup_yaml[0])
		return kiva_error_set(reterr, -EINVAL, "A backup needs the volume and backup.yaml");
	if (memchr(src->backup_yaml, '\r', strlen(src->backup_yaml)))
		return kiva_error_set(reterr, -EINVAL, "backup.yaml has carriage returns");
	if (!dir_ok(src->dir))
		return kiva_error_set(reterr, -errno, "Failed to open '%s': %m", src->dir);
	for (size_t i = 0; i < src->n_snapshots && r >= 0; i++) {
		const struct image_backup_snapshot *s = &src->snapshots[i];

		if (!name_ok(s->name) || !s->dir)
			r = kiva_error_set(reterr, -EINVAL, "Invalid snapshot name '%s'",
					   s->name ? s->name : "");
		else if (!dir_ok(s->dir))
			r = kiva_error_set(reterr, -errno, "Failed to open '%s': %m", s->dir);
		else if ((r = image_archive__set_add(&names, s->name, 1)) == -EEXIST)
			r = kiva_error_set(reterr, -EINVAL, "Snapshot '%s' is given twice",
					   s->name);
		else if (r < 0)
			r = kiva_error_set(reterr, r, "Out of memory");
	}
	image_archive__set_done(&names);
	return r;
}

int image_backup_export(int out_fd, const char *compression, const struct image_backup_src *src,
			struct kiva_error *reterr)
{
	struct exporter x = {.now = time(NULL), .reterr = reterr};
	cleanup_free char *index = NULL, *buf = NULL;
	size_t index_len = 0;
	int r;

	r = check_src(src, reterr);
	if (r < 0)
		return r;
	if (index_yaml(src, &index, &index_len) < 0 || !(buf = malloc(COPY_BUF_BYTES)))
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	x.buf = buf;
	x.a = archive_write_new();
	if (!x.a)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	/* ustar, pax headers only when needed (long names, large ids, xattrs) and then only the
	 * SCHILY.xattr keys GNU tar reads (LXD unpacks with tar --xattrs-include=*). No padding
	 * after the compressed stream: gzip -d warns about trailing zeros and tar fails on it. */
	if (archive_write_set_format_pax_restricted(x.a) < ARCHIVE_WARN) {
		r = kiva_error_set(reterr, -EIO, "libarchive: %s", archive_error_string(x.a));
		goto out;
	}
	(void)archive_write_set_format_option(x.a, "pax", "xattrheader", "SCHILY");
	r = add_filter(x.a, compression, reterr);
	if (r < 0)
		goto out;
	archive_write_set_bytes_in_last_block(x.a, 1);
	if (archive_write_open_fd(x.a, out_fd) != ARCHIVE_OK) {
		r = kiva_error_set(reterr, -EIO, "Failed to start the backup: %s",
				   archive_error_string(x.a));
		goto out;
	}
	r = put_text(&x, INDEX_PATH, index, index_len, 0644);
	for (size_t i = 0; i < src->n_snapshots && r >= 0; i++) {
		const struct image_backup_snapshot *s = &src->snapshots[i];
		cleanup_free char *prefix = strf("backup/snapshots/%s", s->name);

		r = prefix ? put_volume(&x, s->dir, prefix, s->backup_yaml)
			   : kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	if (r >= 0)
		r = put_volume(&x, src->dir, "backup/container", src->backup_yaml);
	if (archive_write_close(x.a) < ARCHIVE_WARN && r >= 0)
		r = kiva_error_set(reterr, -EIO, "Failed to finish the backup: %s",
				   archive_error_string(x.a));
out:
	archive_write_free(x.a);
	return r;
}

/* ---- import ---- */

/* One volume of the backup being unpacked. */
struct volume {
	char *name; /* snapshot name; NULL for the instance */
	char *root; /* "container" or "snapshots/<name>" under the target */
	struct image_archive__idmap map; /* owners under rootfs/ */
	bool have_rootfs, have_backup_yaml;
};

struct backup_layout {
	const struct image_backup_limits *lim;
	struct volume **vols;
	size_t n_vols, cap_vols;
	struct image_archive__set vol_ids; /* root -> index + 1 */
	struct volume *cur; /* of the entry being checked */
	bool have_index;
	struct image_backup_index index;
	struct image_archive__set listed; /* snapshot names in index.yaml */
	char *backup_yaml;
};

static void backup_layout_done(struct backup_layout *b)
{
	for (size_t i = 0; i < b->n_vols; i++) {
		free(b->vols[i]->name);
		free(b->vols[i]->root);
		free(b->vols[i]);
	}
	free(b->vols);
	image_archive__set_done(&b->vol_ids);
	image_archive__set_done(&b->listed);
	image_backup_index_done(&b->index);
	free(b->backup_yaml);
}

static struct volume *volume_find(struct backup_layout *b, const char *root)
{
	uint32_t id = image_archive__set_get(&b->vol_ids, root, strlen(root));

	return id ? b->vols[id - 1] : NULL;
}

/* The volume at root, made (its directory too) when first seen. */
static int volume_get(struct image_archive__unpack *u, const char *root, const char *snap,
		      size_t snap_len, struct volume **ret)
{
	struct backup_layout *b = u->userdata;
	struct volume *v = volume_find(b, root);
	int r;

	if (v) {
		*ret = v;
		return 0;
	}
	if (b->n_vols == b->cap_vols) {
		size_t cap = b->cap_vols ? b->cap_vols * 2 : 8;
		struct volume **nv = realloc(b->vols, cap * sizeof(*nv));

		if (!nv)
			return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
		b->vols = nv;
		b->cap_vols = cap;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
	b->vols[b->n_vols++] = v;
	v->root = strdup(root);
	v->name = snap ? strndup(snap, snap_len) : NULL;
	if (!v->root || (snap && !v->name))
		return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
	r = image_archive__set_add(&b->vol_ids, root, (uint32_t)b->n_vols);
	if (r < 0)
		return kiva_error_set(u->reterr, r, "Out of memory");
	v->map = (struct image_archive__idmap){
		.shift = b->lim->shift_from != 0 || b->lim->shift_to != 0,
		.from = b->lim->shift_from == IMAGE_BACKUP_SHIFT_AUTO ? 0 : b->lim->shift_from,
		.to = b->lim->shift_to,
	};
	/* The target is our working directory while extracting. */
	if (snap && mkdir("snapshots", 0700) < 0 && errno != EEXIST)
		return kiva_error_set(u->reterr, -errno, "Failed to create 'snapshots': %m");
	if (make_volume_dir(root) < 0)
		return kiva_error_set(u->reterr, -errno, "Failed to create '%s': %m", root);
	*ret = v;
	return 0;
}

static bool listed(const struct backup_layout *b, const char *snap, size_t n)
{
	return image_archive__set_get(&b->listed, snap, n) != 0;
}

static int refuse_unlisted(struct image_archive__unpack *u, const char *raw, const char *snap,
			   size_t n)
{
	char msg[NAME_MAX + 64];

	snprintf(msg, sizeof(msg), "snapshot '%.*s' is not listed in %s", (int)n, snap, INDEX_PATH);
	return image_archive__refuse(u, -EINVAL, raw, msg);
}

static int index_validate(struct image_archive__unpack *u, const struct image_backup_index *i)
{
	if (streq(i->type, "virtual-machine"))
		return kiva_error_set(
			u->reterr, -EOPNOTSUPP,
			"'%s' is a virtual-machine backup; only containers are supported",
			u->archive);
	if (!streq(i->type, "container"))
		return kiva_error_set(u->reterr, -EOPNOTSUPP,
				      "'%s' is a backup of type '%s', not of an instance",
				      u->archive, i->type);
	if (i->optimized)
		return kiva_error_set(
			u->reterr, -EOPNOTSUPP,
			"optimized (%s send) backups are not supported yet: export without --optimized-storage",
			i->backend ? i->backend : "storage driver");
	return 0;
}

/* Reads, parses and applies backup/index.yaml. */
static int read_index(struct image_archive__unpack *u, struct archive *in, struct archive_entry *e,
		      const char *raw)
{
	struct backup_layout *b = u->userdata;
	cleanup_free char *text = NULL;
	size_t len = 0, cap;
	int r;

	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
		return image_archive__refuse(u, -EINVAL, raw, "index.yaml must be a regular file");
	if (b->have_index)
		return image_archive__refuse(u, -EEXIST, raw, "duplicate entry");
	if (archive_entry_size(e) > IMAGE_BACKUP_YAML_MAX_BYTES)
		return image_archive__refuse(u, -EFBIG, raw, "index.yaml is larger than 16 MiB");
	/* Room for the declared size and one byte more, to notice a longer entry. */
	cap = archive_entry_size_is_set(e) ? (size_t)archive_entry_size(e) + 1
					   : IMAGE_BACKUP_YAML_MAX_BYTES + 1;
	text = malloc(cap + 1);
	if (!text)
		return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
	for (;;) {
		la_ssize_t n = len < cap ? archive_read_data(in, text + len, cap - len) : 0;

		if (n < 0)
			return kiva_error_set(u->reterr, -EIO,
					      "Failed to read backup '%s' at '%s': %s", u->archive,
					      raw, archive_error_string(in));
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > IMAGE_BACKUP_YAML_MAX_BYTES)
			return image_archive__refuse(u, -EFBIG, raw,
						     "index.yaml is larger than 16 MiB");
	}
	r = image_backup_index_parse(text, len, &b->index, u->reterr);
	if (r < 0)
		return r;
	b->have_index = true;
	r = index_validate(u, &b->index);
	if (r < 0)
		return r;
	for (char **s = b->index.snapshots; *s; s++) {
		r = image_archive__set_add(&b->listed, *s, 1);
		if (r < 0)
			return kiva_error_set(u->reterr, r, "Out of memory");
	}
	/* Snapshots unpacked before index.yaml came (LXD writes it first; others may not). */
	for (size_t i = 0; i < b->n_vols; i++) {
		const char *snap = b->vols[i]->name;

		if (snap && !listed(b, snap, strlen(snap)))
			return refuse_unlisted(u, raw, snap, strlen(snap));
	}
	return 0;
}

/* Refuses an archive member outside the layout, naming what it is when we know. */
static int refuse_member(struct image_archive__unpack *u, const char *raw, const char *rest)
{
	if (streq(rest, "container.bin") || startswith(rest, "snapshots.bin") ||
	    startswith(rest, "optimized_header"))
		return kiva_error_set(u->reterr, -EOPNOTSUPP,
				      "optimized (btrfs send) backups are not supported yet ('%s')",
				      raw);
	if (startswith(rest, "virtual-machine"))
		return kiva_error_set(
			u->reterr, -EOPNOTSUPP,
			"'%s' is a virtual-machine backup; only containers are supported",
			u->archive);
	if (startswith(rest, "volume"))
		return kiva_error_set(u->reterr, -EOPNOTSUPP,
				      "'%s' is a custom volume backup, not an instance",
				      u->archive);
	return image_archive__refuse(
		u, -EINVAL, raw,
		"not part of an LXD backup (expected backup/index.yaml, backup/container/, backup/snapshots/<name>/)");
}

/* A directory the layout has no use for (backup/, backup/snapshots/, a volume's own entry):
 * checked and skipped. */
static int skip_dir(struct image_archive__unpack *u, struct archive_entry *e, const char *raw,
		    const char *path)
{
	int r;

	if (archive_entry_filetype(e) != AE_IFDIR || archive_entry_hardlink(e))
		return image_archive__refuse(u, -EINVAL, raw, "must be a directory");
	/* Archive paths start with "backup/": they never collide with the paths written. */
	r = image_archive__set_add(&u->seen, path, IMAGE_ARCHIVE__DIR);
	if (r == -EEXIST)
		return image_archive__refuse(u, -EEXIST, raw, "duplicate entry");
	return r < 0 ? kiva_error_set(u->reterr, r, "Out of memory") : 0;
}

static int backup_place(struct image_archive__unpack *u, struct archive *in,
			struct archive_entry *e, const char *raw, const char *path,
			char ret_path[static PATH_MAX])
{
	struct backup_layout *b = u->userdata;
	const char *rest, *snap = NULL, *sub;
	char root[PATH_MAX];
	size_t snap_len = 0, top;
	struct volume *v = NULL;
	int r;

	ret_path[0] = 0;
	if (streq(path, "backup"))
		return e ? skip_dir(u, e, raw, path) : 0;
	if (!startswith(path, "backup/"))
		return e ? refuse_member(u, raw, path) : 0;
	rest = path + strlen("backup/");
	if (streq(rest, "index.yaml"))
		return e ? read_index(u, in, e, raw) : 0;
	if (streq(rest, "snapshots"))
		return e ? skip_dir(u, e, raw, path) : 0;
	if (streq(rest, "container") || startswith(rest, "container/")) {
		strcpy(root, "container");
		sub = rest + strlen("container");
	} else if (startswith(rest, "snapshots/")) {
		snap = rest + strlen("snapshots/");
		snap_len = strcspn(snap, "/");
		snprintf(root, sizeof(root), "snapshots/%.*s", (int)snap_len, snap);
		sub = snap + snap_len;
	} else {
		return e ? refuse_member(u, raw, rest) : 0;
	}
	if (*sub == '/')
		sub++;
	if (!e) { /* a hard link target: where it was written, if it was */
		if (*sub)
			snprintf(ret_path, PATH_MAX, "%s/%s", root, sub);
		return 0;
	}
	if (snap && snap_len > NAME_MAX)
		return image_archive__refuse(u, -ENAMETOOLONG, raw, "snapshot name too long");
	if (snap && b->have_index && !listed(b, snap, snap_len))
		return refuse_unlisted(u, raw, snap, snap_len);
	r = volume_get(u, root, snap, snap_len, &v);
	if (r < 0)
		return r;
	if (!*sub)
		return skip_dir(u, e, raw, path);
	top = strcspn(sub, "/");
	if (!(top == strlen("backup.yaml") && !strncmp(sub, "backup.yaml", top)) &&
	    !(top == strlen("metadata.yaml") && !strncmp(sub, "metadata.yaml", top)) &&
	    !(top == strlen("rootfs") && !strncmp(sub, "rootfs", top)) &&
	    !(top == strlen("templates") && !strncmp(sub, "templates", top)))
		return image_archive__refuse(
			u, -EINVAL, raw,
			"not part of an instance volume (expected backup.yaml, metadata.yaml, rootfs/, templates/)");
	b->cur = v;
	snprintf(ret_path, PATH_MAX, "%s/%s", root, sub);
	return 0;
}

/* Whether the symlink at rel (its path under rootfs/) points inside rootfs. An absolute target
 * is resolved against the container's root, so it does; a relative one must not climb above. */
static bool symlink_inside(const char *rel, const char *target)
{
	long depth = 0;

	if (target[0] == '/')
		return true;
	for (const char *p = rel; *p; p++)
		depth += *p == '/';
	for (const char *p = target;;) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return false;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			depth++;
		}
		if (!p[n])
			return true;
		p += n + 1;
	}
}

static int backup_check(struct image_archive__unpack *u, struct archive_entry *e, const char *raw,
			const char *path, enum image_archive__type type)
{
	struct backup_layout *b = u->userdata;
	struct volume *v = b->cur;
	const char *sub = path + strlen(v->root) + 1, *link = archive_entry_hardlink(e);
	size_t top = strcspn(sub, "/"), rlen = strlen(v->root);
	bool in_rootfs = top == strlen("rootfs") && !strncmp(sub, "rootfs", top);

	if (!sub[top]) { /* a name of the volume itself */
		if (streq(sub, "backup.yaml") || streq(sub, "metadata.yaml")) {
			if (type != IMAGE_ARCHIVE__FILE || link)
				return image_archive__refuse(u, -EINVAL, raw,
							     "must be a regular file");
			if (archive_entry_size(e) > IMAGE_BACKUP_YAML_MAX_BYTES)
				return image_archive__refuse(u, -EFBIG, raw, "larger than 16 MiB");
			v->have_backup_yaml |= streq(sub, "backup.yaml");
		} else if (type != IMAGE_ARCHIVE__DIR) {
			return image_archive__refuse(u, -EINVAL, raw, "must be a directory");
		}
		if (in_rootfs) {
			la_int64_t uid = archive_entry_uid(e);

			v->have_rootfs = true;
			if (b->lim->shift_from == IMAGE_BACKUP_SHIFT_AUTO)
				v->map.from =
					uid >= IMAGE_ARCHIVE__ID_RANGE &&
							uid <= UINT32_MAX - IMAGE_ARCHIVE__ID_RANGE
						? (uint32_t)uid
						: 0;
		}
	}
	if (link && (!in_rootfs || strncmp(link, path, rlen + strlen("/rootfs/")) != 0))
		return image_archive__refuse(
			u, -EINVAL, raw, "hard links must stay inside the rootfs/ of one volume");
	if (type == IMAGE_ARCHIVE__SYMLINK) {
		const char *target = archive_entry_symlink(e);
		char msg[PATH_MAX + 64];

		if (!in_rootfs || !sub[top])
			return image_archive__refuse(u, -EINVAL, raw,
						     "symlinks are only allowed inside rootfs/");
		if (!target || !target[0])
			return image_archive__refuse(u, -EINVAL, raw, "empty symlink target");
		if (!symlink_inside(sub + top + 1, target)) {
			snprintf(msg, sizeof(msg), "symlink target '%s' leaves the rootfs", target);
			return image_archive__refuse(u, -EINVAL, raw, msg);
		}
	}
	if (in_rootfs) {
		u->map = v->map;
	} else { /* host-side files of the volume */
		u->map = (struct image_archive__idmap){0};
		archive_entry_set_uid(e, 0);
		archive_entry_set_gid(e, 0);
	}
	return 0;
}

static int read_backup_yaml(struct image_archive__unpack *u, char **ret)
{
	cleanup_close int fd = open("container/backup.yaml", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	cleanup_free char *text = NULL;
	size_t len = 0;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return kiva_error_set(u->reterr, -errno, "Failed to open backup.yaml: %m");
	if (!S_ISREG(st.st_mode) || st.st_size > IMAGE_BACKUP_YAML_MAX_BYTES)
		return kiva_error_set(u->reterr, -EINVAL, "backup.yaml is not a regular file");
	text = malloc((size_t)st.st_size + 1);
	if (!text)
		return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiva_error_set(u->reterr, -errno, "Failed to read backup.yaml: %m");
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = 0;
	if (strlen(text) != len)
		return kiva_error_set(u->reterr, -EINVAL, "backup.yaml is not text (NUL byte)");
	*ret = TAKE_PTR(text);
	return 0;
}

static int backup_finish(struct image_archive__unpack *u)
{
	struct backup_layout *b = u->userdata;
	struct volume *c = volume_find(b, "container");

	if (!b->have_index)
		return kiva_error_set(u->reterr, -EINVAL, "not an LXD backup: no %s in '%s'",
				      INDEX_PATH, u->archive);
	if (!c)
		return kiva_error_set(u->reterr, -EINVAL,
				      "'%s' holds no instance (no backup/container/)", u->archive);
	for (size_t i = 0; i < b->n_vols; i++)
		if (!b->vols[i]->have_rootfs)
			return kiva_error_set(u->reterr, -EINVAL, "'%s': backup/%s/ has no rootfs/",
					      u->archive, b->vols[i]->root);
	if (!c->have_backup_yaml)
		return kiva_error_set(u->reterr, -EINVAL,
				      "'%s' has no backup/container/backup.yaml", u->archive);
	for (char **s = b->index.snapshots; *s; s++) {
		cleanup_free char *root = strf("snapshots/%s", *s);

		if (!root)
			return kiva_error_set(u->reterr, -ENOMEM, "Out of memory");
		if (!volume_find(b, root))
			return kiva_error_set(u->reterr, -EINVAL,
					      "snapshot '%s' listed in %s is missing from '%s'", *s,
					      INDEX_PATH, u->archive);
	}
	return read_backup_yaml(u, &b->backup_yaml);
}

static const struct image_archive__layout backup_layout = {
	.place = backup_place,
	.check = backup_check,
	.finish = backup_finish,
};

void image_backup_info_done(struct image_backup_info *i)
{
	if (!i)
		return;
	image_backup_index_done(&i->index);
	free(i->backup_yaml);
	*i = (struct image_backup_info){0};
}

/* dest must be an empty directory, or absent (then it is made and *ret_made set). */
static int prepare_dest(const char *dest, bool *ret_made, struct kiva_error *reterr)
{
	int err;

	*ret_made = false;
	if (mkdir(dest, 0700) == 0) {
		*ret_made = true;
		return 0;
	}
	if (errno != EEXIST)
		return kiva_error_set(reterr, -errno, "Failed to create '%s': %m", dest);
	if (!image_archive__dir_is_empty(dest, &err)) {
		if (err < 0)
			return kiva_error_set(reterr, err, "Failed to open '%s': %s", dest,
					      strerror(-err));
		return kiva_error_set(reterr, -ENOTEMPTY, "'%s' is not empty", dest);
	}
	return 0;
}

int image_backup_import(const char *archive_path, const char *dest_dir,
			const struct image_backup_limits *lim, struct image_backup_info *ret,
			struct kiva_error *reterr)
{
	struct backup_layout b = {.lim = lim};
	struct image_archive__unpack u = {
		.archive = archive_path,
		.what = "backup",
		.layout = &backup_layout,
		.userdata = &b,
		.allow_devices = lim->allow_devices,
		.max_bytes = lim->max_bytes > 0 ? lim->max_bytes : UINT64_MAX,
		.limit_note = ": more than the free space of the storage pool",
		.entry_bytes = ENTRY_BYTES,
		.max_entries = lim->max_entries,
		.reterr = reterr};
	char ratio_note[96];
	bool made = false;
	struct stat st;
	int r;

	if (lim->shift_to > UINT32_MAX - IMAGE_ARCHIVE__ID_RANGE ||
	    (lim->shift_from != IMAGE_BACKUP_SHIFT_AUTO &&
	     lim->shift_from > UINT32_MAX - IMAGE_ARCHIVE__ID_RANGE))
		return kiva_error_set(reterr, -ERANGE, "Shift base %u or %u is too large",
				      lim->shift_from, lim->shift_to);
	if (stat(archive_path, &st) < 0)
		return kiva_error_set(reterr, -errno, "Failed to read backup '%s': %m",
				      archive_path);
	/* A pipe has no size to compare with: then only max_bytes holds. */
	if (lim->max_ratio > 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size < u.max_bytes / lim->max_ratio) {
		u.max_bytes = (uint64_t)st.st_size * lim->max_ratio;
		snprintf(ratio_note, sizeof(ratio_note),
			 ": more than %u times its compressed size (a zip bomb?)", lim->max_ratio);
		u.limit_note = ratio_note;
	}
	r = prepare_dest(dest_dir, &made, reterr);
	if (r < 0)
		return r;

	r = image_archive__extract(&u, dest_dir);
	image_archive__unpack_done(&u);
	if (r >= 0) {
		struct volume *c = volume_find(&b, "container");

		*ret = (struct image_backup_info){
			.index = b.index,
			.backup_yaml = TAKE_PTR(b.backup_yaml),
			.shift_from = c->map.from,
		};
		b.index = (struct image_backup_index){0};
	}
	backup_layout_done(&b);
	if (r < 0) {
		(void)image_archive__empty_dir(dest_dir);
		if (made)
			(void)rmdir(dest_dir);
	}
	return r;
}
