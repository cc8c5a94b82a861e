/* Unit tests of image-backup.c: image_backup_export -> image_backup_import round trips (content,
 * modes, owners, symlinks, hard links, xattrs, snapshots) in every compression, the exact member
 * list and index.yaml of LXD 5.0, a synthetic archive with the member list, owners and
 * index.yaml of a real LXD 5.0.2 `lxc export`, and one hostile archive per refusal, built here
 * with libarchive. Each refusal asserts the message and that nothing is left in the target.
 * Owner checks need root (chown) and are skipped otherwise. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

#define MIB (UINT64_C(1) << 20)
#define BASE 100000u /* the on-disk base of the exported trees */
#define BASE2 200000u /* the base of the importing host */

/* cmocka 1.1.5 reports skip() as "not ok N # SKIP", which meson's TAP parser counts as a failure:
 * print the reason as a TAP comment and return instead. */
#define SKIP_TEST(why)                                                                             \
	do {                                                                                       \
		printf("# SKIP %s: %s\n", __func__, why);                                          \
		return;                                                                            \
	} while (0)

static bool is_root(void)
{
	return geteuid() == 0;
}

struct fixture {
	char *tmp, *vol, *snap1, *snap2, *archive, *dest;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->tmp = strdup("/tmp/kiva-test-backup-XXXXXX");
	if (!f->tmp || !mkdtemp(f->tmp))
		return -1;
	f->vol = strf("%s/vol", f->tmp);
	f->snap1 = strf("%s/snap1", f->tmp);
	f->snap2 = strf("%s/snap2", f->tmp);
	f->archive = strf("%s/backup.tar", f->tmp);
	f->dest = strf("%s/dest", f->tmp);
	if (!f->vol || !f->snap1 || !f->snap2 || !f->archive || !f->dest ||
	    mkdir(f->dest, 0700) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	(void)rm_rf(f->tmp);
	free(f->tmp);
	free(f->vol);
	free(f->snap1);
	free(f->snap2);
	free(f->archive);
	free(f->dest);
	free(f);
	return 0;
}

/* ---- source trees ---- */

static void put(const char *dir, const char *rel, const char *data, mode_t mode)
{
	cleanup_free char *p = strf("%s/%s", dir, rel);

	assert_non_null(p);
	assert_int_equal(write_file_replace(p, data, strlen(data), mode), 0);
	assert_int_equal(chmod(p, mode), 0); /* past the umask */
}

static void mkdirs(const char *dir, const char *rel)
{
	cleanup_free char *p = strf("%s/%s", dir, rel);

	assert_non_null(p);
	assert_int_equal(mkdir_p(p, 0755), 0);
}

/* Owner of rel relative to the base of the tree: base + uid for the container's files. */
static void own(const char *dir, const char *rel, uint32_t id)
{
	cleanup_free char *p = strf("%s/%s", dir, rel);

	assert_non_null(p);
	if (is_root())
		assert_int_equal(lchown(p, id, id), 0);
}

/* An instance volume as LXD and KIVA lay it out, rootfs/ owned from base (0: unshifted). */
static void make_volume(const char *dir, uint32_t base, const char *hostname)
{
	static const char *const rootfs_paths[] = {
		"rootfs",	   "rootfs/bin",	  "rootfs/bin/busybox",
		"rootfs/bin/ash",  "rootfs/bin/sh",	  "rootfs/usr",
		"rootfs/usr/bin",  "rootfs/usr/bin/env",  "rootfs/usr/bin/passwd",
		"rootfs/etc",	   "rootfs/etc/hostname", "rootfs/run",
		"rootfs/run/fifo", "rootfs/home",	  "rootfs/root",
	};
	cleanup_free char *big = malloc(200 * 1024 + 1);
	cleanup_free char *busybox = strf("%s/rootfs/bin/busybox", dir);
	cleanup_free char *ash = strf("%s/rootfs/bin/ash", dir);
	cleanup_free char *sh = strf("%s/rootfs/bin/sh", dir);
	cleanup_free char *env = strf("%s/rootfs/usr/bin/env", dir);
	cleanup_free char *fifo = strf("%s/rootfs/run/fifo", dir);
	cleanup_free char *host = strf("%s/rootfs/etc/hostname", dir);
	cleanup_free char *passwd = strf("%s/rootfs/usr/bin/passwd", dir);
	uint32_t x = 2463534242u;

	assert_non_null(big);
	for (size_t i = 0; i < 200 * 1024; i++) { /* xorshift: barely compressible */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		big[i] = (char)('!' + x % 90);
	}
	big[200 * 1024] = 0;
	mkdirs(dir, "rootfs/bin");
	mkdirs(dir, "rootfs/usr/bin");
	mkdirs(dir, "rootfs/etc");
	mkdirs(dir, "rootfs/run");
	mkdirs(dir, "rootfs/home/user");
	mkdirs(dir, "rootfs/root");
	mkdirs(dir, "templates");
	put(dir, "metadata.yaml", "architecture: x86_64\ncreation_date: 1700000000\n", 0644);
	put(dir, "templates/hostname.tpl", "{{ container.name }}\n", 0644);
	put(dir, "kiva.state", "not part of a backup\n", 0600);
	put(dir, "rootfs/bin/busybox", big, 0755);
	assert_int_equal(link(busybox, ash), 0);
	assert_int_equal(symlink("busybox", sh), 0);
	assert_int_equal(symlink("/bin/busybox", env), 0);
	put(dir, "rootfs/usr/bin/passwd", "suid\n", 04755);
	put(dir, "rootfs/etc/hostname", hostname, 0644);
	put(dir, "rootfs/root/.secret", "600\n", 0600);
	put(dir, "rootfs/home/user/.profile", "PS1=x\n", 0644);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	(void)setxattr(host, "user.kiva", "hello", 5, 0); /* may be unsupported: compared anyway */
	for (size_t i = 0; i < ARRAY_SIZE(rootfs_paths); i++)
		own(dir, rootfs_paths[i], base);
	own(dir, "rootfs/root/.secret", base);
	own(dir, "rootfs/home/user", base + 1000);
	own(dir, "rootfs/home/user/.profile", base + 1000);
	assert_int_equal(chmod(passwd, 04755), 0); /* chown cleared setuid */
}

/* ---- tree digests: one line per file, sorted ---- */

struct digest {
	FILE *f;
	char *text;
	size_t len;
	struct {
		dev_t dev;
		ino_t ino;
		char *path;
	} inodes[64];
	size_t n_inodes;
};

static uint64_t fnv1a_file(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	cleanup_free char *buf = NULL;
	size_t len = 0;

	assert_int_equal(read_file(path, 64 * MIB, &buf, &len), 0);
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
	return h;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks dir/rel; owners under rootfs/ are printed relative to base. */
static void digest_walk(struct digest *d, const char *dir, const char *rel, uint32_t base)
{
	cleanup_free char *path = rel[0] ? strf("%s/%s", dir, rel) : strdup(dir);
	char *names[64];
	size_t n = 0;
	struct dirent *de;
	DIR *dd;

	assert_non_null(path);
	dd = opendir(path);
	assert_non_null(dd);
	while ((de = readdir(dd)))
		if (!streq(de->d_name, ".") && !streq(de->d_name, "..")) {
			assert_true(n < ARRAY_SIZE(names));
			names[n++] = strdup(de->d_name);
		}
	closedir(dd);
	qsort(names, n, sizeof(char *), cmp_names);
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *r = rel[0] ? strf("%s/%s", rel, names[i]) : strdup(names[i]);
		cleanup_free char *p = strf("%s/%s", dir, r);
		bool in_rootfs = startswith(r, "rootfs");
		char target[256] = "", xattr[64] = "";
		const char *link_to = "";
		struct stat st;

		assert_int_equal(lstat(p, &st), 0);
		if (S_ISLNK(st.st_mode))
			assert_true(readlink(p, target, sizeof(target) - 1) > 0);
		if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
			for (size_t k = 0; k < d->n_inodes && !link_to[0]; k++)
				if (d->inodes[k].dev == st.st_dev && d->inodes[k].ino == st.st_ino)
					link_to = d->inodes[k].path;
			if (!link_to[0]) {
				assert_true(d->n_inodes < ARRAY_SIZE(d->inodes));
				d->inodes[d->n_inodes].dev = st.st_dev;
				d->inodes[d->n_inodes].ino = st.st_ino;
				d->inodes[d->n_inodes++].path = strdup(r);
			}
		}
		if (!S_ISLNK(st.st_mode))
			(void)lgetxattr(p, "user.kiva", xattr, sizeof(xattr) - 1);
		fprintf(d->f,
			"%s type=%o mode=%04o owner=%ld:%ld size=%lld hash=%016llx -> %s link=%s xattr=%s\n",
			r, st.st_mode & S_IFMT, st.st_mode & 07777,
			(long)st.st_uid - (in_rootfs && is_root() ? (long)base : 0),
			(long)st.st_gid - (in_rootfs && is_root() ? (long)base : 0),
			S_ISREG(st.st_mode) ? (long long)st.st_size : 0LL,
			S_ISREG(st.st_mode) ? (unsigned long long)fnv1a_file(p) : 0ULL, target,
			link_to, xattr);
		if (S_ISDIR(st.st_mode))
			digest_walk(d, dir, r, base);
		free(names[i]);
	}
}

/* The digest of a volume directory, leaving out what a backup does not carry. */
static char *digest(const char *dir, uint32_t base)
{
	struct digest d = {0};

	d.f = open_memstream(&d.text, &d.len);
	assert_non_null(d.f);
	digest_walk(&d, dir, "", base);
	assert_int_equal(fclose(d.f), 0);
	for (size_t k = 0; k < d.n_inodes; k++)
		free(d.inodes[k].path);
	return d.text;
}

/* Drops the lines of top-level names a backup leaves out (kiva.state) or adds (backup.yaml). */
static char *digest_volume(const char *dir, uint32_t base)
{
	cleanup_free char *all = digest(dir, base);
	char *out = calloc(1, strlen(all) + 1), *o = out;

	assert_non_null(out);
	for (const char *p = all; *p;) {
		size_t n = strcspn(p, "\n") + 1;

		if (!startswith(p, "kiva.state ") && !startswith(p, "backup.yaml ")) {
			memcpy(o, p, n);
			o += n;
		}
		p += n;
	}
	return out;
}

/* ---- export helpers ---- */

static const char backup_yaml[] =
	"container:\n  name: c1\n  config:\n"
	"    volatile.last_state.idmap: '[{\"Isuid\":true,\"Isgid\":false,"
	"\"Hostid\":100000,\"Nsid\":0,\"Maprange\":65536}]'\n"
	"snapshots:\n- name: snap0\n- name: '2024-01-01'\n";
static const char snap_yaml[] = "container:\n  name: c1\n";

static void export_to(const struct fixture *f, const char *compression, bool with_snapshots)
{
	const struct image_backup_snapshot snaps[] = {
		{.name = "snap0", .dir = f->snap1, .backup_yaml = snap_yaml},
		{.name = "2024-01-01", .dir = f->snap2, .backup_yaml = NULL},
	};
	const struct image_backup_src src = {
		.name = "c1",
		.backend = "btrfs",
		.dir = f->vol,
		.backup_yaml = backup_yaml,
		.snapshots = snaps,
		.n_snapshots = with_snapshots ? ARRAY_SIZE(snaps) : 0,
	};
	struct kiva_error err = {0};
	int fd = open(f->archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	if (image_backup_export(fd, compression, &src, &err) < 0)
		fail_msg("export (%s): %s", compression, err.msg);
	assert_int_equal(close(fd), 0);
}

static void make_sources(const struct fixture *f)
{
	make_volume(f->vol, BASE, "container\n");
	make_volume(f->snap1, 0, "snapshot one, never started: unshifted as in LXD\n");
	make_volume(f->snap2, BASE, "snapshot two\n");
	put(f->snap2, "backup.yaml", "container:\n  name: c1 # on disk\n", 0400);
}

static struct image_backup_limits limits(void)
{
	return (struct image_backup_limits){
		.max_bytes = 64 * MIB,
		.max_ratio = IMAGE_BACKUP_DEFAULT_RATIO,
		.max_entries = 10000,
		.shift_from = is_root() ? IMAGE_BACKUP_SHIFT_AUTO : 0,
		.shift_to = is_root() ? BASE2 : 0,
	};
}

static void reset_dest(const struct fixture *f)
{
	assert_int_equal(rm_rf(f->dest), 0);
	assert_int_equal(mkdir(f->dest, 0700), 0);
}

static int not_dot(const struct dirent *de)
{
	return !streq(de->d_name, ".") && !streq(de->d_name, "..");
}

static size_t count_entries(const char *dir)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, not_dot, NULL);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return (size_t)n;
}

static void assert_same_volume(const char *src, uint32_t src_base, const char *dst,
			       uint32_t dst_base)
{
	cleanup_free char *a = digest_volume(src, src_base);
	cleanup_free char *b = digest_volume(dst, dst_base);

	if (!streq(a, b))
		fail_msg("%s and %s differ:\n--- source\n%s--- imported\n%s", src, dst, a, b);
}

static void test_round_trip_all_compressions(void **state)
{
	struct fixture *f = *state;
	static const char *const compressions[] = {"gzip", "zstd", "xz", "bzip2", "none"};
	uint32_t to = is_root() ? BASE2 : 0;

	make_sources(f);
	for (size_t i = 0; i < ARRAY_SIZE(compressions); i++) {
		const struct image_backup_limits lim = limits();
		cleanup_free char *c = strf("%s/container", f->dest);
		cleanup_free char *s1 = strf("%s/snapshots/snap0", f->dest);
		cleanup_free char *s2 = strf("%s/snapshots/2024-01-01", f->dest);
		cleanup_free char *s2_yaml = strf("%s/backup.yaml", s2);
		cleanup_free char *yaml = NULL;
		struct image_backup_info info = {0};
		struct kiva_error err = {0};
		struct stat st;
		size_t len;

		export_to(f, compressions[i], true);
		if (image_backup_import(f->archive, f->dest, &lim, &info, &err) < 0)
			fail_msg("import (%s): %s", compressions[i], err.msg);
		assert_string_equal(info.index.name, "c1");
		assert_string_equal(info.index.backend, "btrfs");
		assert_string_equal(info.index.pool, "default");
		assert_string_equal(info.index.type, "container");
		assert_false(info.index.optimized);
		assert_int_equal(strv_length(info.index.snapshots), 2);
		assert_string_equal(info.index.snapshots[0], "snap0");
		assert_string_equal(info.index.snapshots[1], "2024-01-01");
		assert_string_equal(info.backup_yaml, backup_yaml);
		assert_int_equal(info.shift_from, is_root() ? BASE : 0);
		image_backup_info_done(&info);

		assert_same_volume(f->vol, BASE, c, to);
		assert_same_volume(f->snap1, 0, s1, to); /* unshifted in the archive */
		assert_same_volume(f->snap2, BASE, s2, to);
		/* backup.yaml: the caller's text, else the one on disk. */
		assert_int_equal(read_file(s2_yaml, MIB, &yaml, &len), 0);
		assert_string_equal(yaml, "container:\n  name: c1 # on disk\n");
		assert_int_equal(lstat(c, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
		assert_int_equal(count_entries(f->dest), 2);
		reset_dest(f);
	}
}

static void test_reshift_explicit_and_privileged(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *c = strf("%s/container", f->dest);
	struct image_backup_limits lim = limits();
	struct image_backup_info info = {0};
	struct kiva_error err = {0};

	if (!is_root())
		SKIP_TEST("owners need chown");
	make_sources(f);
	export_to(f, "zstd", false);
	/* The caller knows the base (volatile.last_state.idmap): 100000 -> 200000. */
	lim.shift_from = BASE;
	if (image_backup_import(f->archive, f->dest, &lim, &info, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(info.shift_from, BASE);
	image_backup_info_done(&info);
	assert_same_volume(f->vol, BASE, c, BASE2);
	assert_int_equal(rm_rf(c), 0);

	/* A privileged import keeps the ids as they are. */
	lim.shift_from = lim.shift_to = 0;
	lim.allow_devices = true;
	if (image_backup_import(f->archive, f->dest, &lim, &info, &err) < 0)
		fail_msg("%s", err.msg);
	image_backup_info_done(&info);
	assert_same_volume(f->vol, BASE, c, BASE);
}

/* The members of an archive, in order, as one string of lines "name type uid". */
static char *list_members(const char *path)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(a);
	assert_non_null(f);
	archive_read_support_format_all(a);
	archive_read_support_filter_all(a);
	assert_int_equal(archive_read_open_filename(a, path, 10240), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *link = archive_entry_hardlink(e);

		fprintf(f, "%s%s%s\n", archive_entry_pathname(e), link ? " => " : "",
			link ? link : "");
	}
	archive_read_free(a);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* The members of one exported volume, in LXD's order. */
static char *volume_members(const char *p)
{
	static const char *const names[] = {
		"/",
		"/backup.yaml",
		"/metadata.yaml",
		"/rootfs/",
		"/rootfs/bin/",
		"/rootfs/bin/ash",
		"/rootfs/bin/busybox => %s/rootfs/bin/ash",
		"/rootfs/bin/sh",
		"/rootfs/etc/",
		"/rootfs/etc/hostname",
		"/rootfs/home/",
		"/rootfs/home/user/",
		"/rootfs/home/user/.profile",
		"/rootfs/root/",
		"/rootfs/root/.secret",
		"/rootfs/run/",
		"/rootfs/run/fifo",
		"/rootfs/usr/",
		"/rootfs/usr/bin/",
		"/rootfs/usr/bin/env",
		"/rootfs/usr/bin/passwd",
		"/templates/",
		"/templates/hostname.tpl",
	};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const char *link = strstr(names[i], " => ");

		fprintf(f, "%s%.*s", p, (int)(link ? (size_t)(link - names[i]) : strlen(names[i])),
			names[i]);
		if (link)
			fprintf(f, " => %s/rootfs/bin/ash", p);
		fputc('\n', f);
	}
	assert_int_equal(fclose(f), 0);
	return text;
}

static void test_lxd_member_list_and_index(void **state)
{
	struct fixture *f = *state;
	static const char want_index[] = "name: c1\nbackend: btrfs\npool: default\nsnapshots:\n"
					 "- snap0\n- '2024-01-01'\noptimized: false\n"
					 "optimized_header: false\ntype: container\nconfig:\n"
					 "  container:\n    name: c1\n    config:\n"
					 "      volatile.last_state.idmap: '[{\"Isuid\":true,"
					 "\"Isgid\":false,\"Hostid\":100000,\"Nsid\":0,"
					 "\"Maprange\":65536}]'\n  snapshots:\n  - name: snap0\n"
					 "  - name: '2024-01-01'\n";
	cleanup_free char *got = NULL, *want = NULL, *s1 = NULL, *s2 = NULL, *c = NULL;
	cleanup_free char *index = NULL;
	struct image_backup_index parsed = {0};
	struct kiva_error err = {0};
	struct archive *a;
	struct archive_entry *e;
	la_ssize_t n;

	make_sources(f);
	export_to(f, "gzip", true);
	got = list_members(f->archive);
	s1 = volume_members("backup/snapshots/snap0");
	s2 = volume_members("backup/snapshots/2024-01-01");
	c = volume_members("backup/container");
	want = strf("backup/index.yaml\n%s%s%s", s1, s2, c);
	assert_string_equal(got, want);

	/* index.yaml: LXD 5.0.2's keys and order, backup.yaml under config:. */
	a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	assert_int_equal(archive_read_open_filename(a, f->archive, 10240), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &e), ARCHIVE_OK);
	assert_int_equal(archive_entry_perm(e), 0644);
	assert_int_equal(archive_entry_uid(e), 0);
	index = calloc(1, 4096);
	n = archive_read_data(a, index, 4095);
	assert_true(n > 0);
	archive_read_free(a);
	assert_string_equal(index, want_index);
	/* ... and it reads back. */
	assert_int_equal(image_backup_index_parse(index, strlen(index), &parsed, &err), 0);
	assert_string_equal(parsed.snapshots[1], "2024-01-01");
	image_backup_index_done(&parsed);
}

/* ---- hostile and synthetic archives ---- */

struct ent {
	const char *path;
	char type; /* 'f' file, 'd' dir, 'l' symlink, 'h' hard link, 'c' char device, 'p' fifo */
	const char *data; /* f: content (NULL: size zeros); l, h: target */
	size_t size;
	unsigned uid;
	mode_t perm;
};

#define INDEX_OK "name: c1\nbackend: dir\npool: default\noptimized: false\ntype: container\n"
#define INDEX_SNAP0                                                                                \
	"name: c1\nbackend: dir\npool: default\nsnapshots:\n- snap0\noptimized: false\n"           \
	"optimized_header: false\ntype: container\n"
#define BYAML "container:\n  name: c1\n"
#define GOOD_CONTAINER                                                                             \
	{"backup/container", 'd', NULL, 0, 0, 0100},                                               \
		{"backup/container/backup.yaml", 'f', BYAML, 0, 0, 0400},                          \
		{"backup/container/metadata.yaml", 'f', "architecture: x86_64\n", 0, 0, 0644},     \
		{"backup/container/rootfs", 'd', NULL, 0, BASE, 0755},                             \
	{                                                                                          \
		"backup/container/rootfs/etc", 'd', NULL, 0, BASE, 0755                            \
	}

/* Writes the archive: ustar like LXD's Go tar writer (pax when a name needs it). */
static void write_archive(const char *path, int filter, const struct ent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	static const char zeros[65536];

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_true(archive_write_add_filter(a, filter) >= ARCHIVE_WARN);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		const struct ent *t = &ents[i];
		struct archive_entry *e = archive_entry_new();
		size_t size = t->type == 'f' ? (t->data ? strlen(t->data) : t->size) : 0;
		static const struct {
			char type;
			unsigned ae;
		} types[] = {{'f', AE_IFREG}, {'d', AE_IFDIR}, {'l', AE_IFLNK},
			     {'h', AE_IFREG}, {'c', AE_IFCHR}, {'p', AE_IFIFO}};

		for (size_t k = 0; k < ARRAY_SIZE(types); k++)
			if (types[k].type == t->type)
				archive_entry_set_filetype(e, types[k].ae);
		archive_entry_set_pathname(e, t->path);
		archive_entry_set_uid(e, t->uid);
		archive_entry_set_gid(e, t->uid);
		archive_entry_set_uname(e, t->uid == 0 ? "root" : NULL);
		archive_entry_set_perm(e, t->perm ? t->perm : t->type == 'd' ? 0755 : 0644);
		archive_entry_set_mtime(e, 1700000000, 0);
		archive_entry_set_size(e, (la_int64_t)size);
		if (t->type == 'l')
			archive_entry_set_symlink(e, t->data);
		if (t->type == 'h')
			archive_entry_set_hardlink(e, t->data);
		if (t->type == 'c')
			archive_entry_set_rdev(e, makedev(1, 3));
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		for (size_t done = 0; done < size;) {
			const char *src = t->data ? t->data + done : zeros;
			size_t k = size - done;

			if (!t->data && k > sizeof(zeros))
				k = sizeof(zeros);
			assert_int_equal(archive_write_data(a, src, k), (la_ssize_t)k);
			done += k;
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* Imports and expects failure: the message has want and dest is left as it was: empty, or
 * absent when it did not exist. */
static void expect_refused_lim(struct fixture *f, const struct image_backup_limits *lim,
			       const char *want)
{
	struct image_backup_info info = {0};
	struct kiva_error err = {0};
	struct stat st;
	int r;

	for (int absent = 0; absent < 2; absent++) {
		if (absent)
			assert_int_equal(rmdir(f->dest), 0);
		r = image_backup_import(f->archive, f->dest, lim, &info, &err);
		if (r >= 0)
			fail_msg("import succeeded; expected an error mentioning '%s'", want);
		assert_int_equal(err.code, r);
		if (!strstr(err.msg, want))
			fail_msg("error '%s' does not mention '%s'", err.msg, want);
		assert_null(info.backup_yaml);
		if (absent) {
			assert_int_equal(lstat(f->dest, &st), -1);
			assert_int_equal(mkdir(f->dest, 0700), 0);
		} else {
			assert_int_equal(count_entries(f->dest), 0);
		}
	}
}

static void expect_refused(struct fixture *f, const struct ent *ents, size_t n, const char *want)
{
	const struct image_backup_limits lim = limits();

	write_archive(f->archive, ARCHIVE_FILTER_GZIP, ents, n);
	expect_refused_lim(f, &lim, want);
}

#define REFUSED(f, want, ...)                                                                      \
	do {                                                                                       \
		const struct ent ents_[] = {__VA_ARGS__};                                          \
		expect_refused(f, ents_, ARRAY_SIZE(ents_), want);                                 \
	} while (0)

/* Octal field of a ustar header: width - 1 digits and a NUL. */
static void octal(char *field, size_t width, unsigned long v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*lo", (int)(width - 1), v);
	assert_int_equal(strlen(tmp), width - 1);
	memcpy(field, tmp, width);
}

/* Writes the entries as Go's archive/tar does for LXD (ustar, directory names without a trailing
 * slash, owner names "root"), gzip-compressed through libarchive's raw format. */
static void write_go_tar_gz(const char *path, const struct ent *ents, size_t n)
{
	static const char types[][2] = {{'f', '0'}, {'h', '1'}, {'l', '2'}, {'d', '5'}};
	cleanup_free char *tar = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&tar, &len);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		const struct ent *t = &ents[i];
		size_t size = t->type == 'f' ? strlen(t->data) : 0;
		static const char zeros[512];
		unsigned sum = 0;
		char h[512] = {0};

		assert_true(strlen(t->path) < 100);
		memcpy(h, t->path, strlen(t->path));
		octal(h + 100, 8, t->perm);
		octal(h + 108, 8, t->uid);
		octal(h + 116, 8, t->uid);
		octal(h + 124, 12, size);
		octal(h + 136, 12, 1700000000);
		memset(h + 148, ' ', 8);
		for (size_t k = 0; k < ARRAY_SIZE(types); k++)
			if (types[k][0] == t->type)
				h[156] = types[k][1];
		assert_true(h[156] != 0);
		if (t->type == 'h' || t->type == 'l')
			memcpy(h + 157, t->data, strlen(t->data));
		memcpy(h + 257,
		       "ustar\0"
		       "00",
		       8);
		if (t->uid == 0) {
			memcpy(h + 265, "root", 4);
			memcpy(h + 297, "root", 4);
		}
		for (size_t k = 0; k < sizeof(h); k++)
			sum += (unsigned char)h[k];
		octal(h + 148, 7, sum);
		assert_int_equal(fwrite(h, 1, sizeof(h), f), sizeof(h));
		if (size > 0) {
			assert_int_equal(fwrite(t->data, 1, size, f), size);
			assert_int_equal(fwrite(zeros, 1, (512 - size % 512) % 512, f),
					 (512 - size % 512) % 512);
		}
	}
	for (int k = 0; k < 2; k++) {
		static const char end[512];

		assert_int_equal(fwrite(end, 1, sizeof(end), f), sizeof(end));
	}
	assert_int_equal(fclose(f), 0);

	assert_non_null(a);
	assert_non_null(e);
	assert_int_equal(archive_write_set_format_raw(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	archive_entry_set_pathname(e, "data");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, (la_int64_t)len);
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, tar, len), (la_ssize_t)len);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(e);
}

static void test_lxd_502_synthetic(void **state)
{
	struct fixture *f = *state;
	/* The member list of a real `lxc export` of LXD 5.0.2 (dir pool, a container that has run
	 * and a snapshot taken before its first start), with small files: index.yaml first with
	 * the configuration embedded, snapshots before the container, no backup/ or
	 * backup/snapshots entries, directory names without a trailing slash, hard links to the
	 * first name, owners as on disk. */
	static const char index[] =
		"name: c1\nbackend: dir\npool: default\nsnapshots:\n- snap0\noptimized: false\n"
		"optimized_header: false\ntype: container\nconfig:\n  container:\n"
		"    architecture: x86_64\n    config:\n      image.os: Busybox\n"
		"      image.release: \"1.35\"\n      volatile.idmap.base: \"0\"\n"
		"      volatile.last_state.idmap: '[{\"Isuid\":true,\"Isgid\":false,\"Hostid\":100000,"
		"\"Nsid\":0,\"Maprange\":10000001},{\"Isuid\":false,\"Isgid\":true,\"Hostid\":100000,"
		"\"Nsid\":0,\"Maprange\":10000001}]'\n    devices: {}\n    ephemeral: false\n"
		"    profiles:\n    - default\n    name: c1\n    type: container\n"
		"  snapshots:\n  - expires_at: 0001-01-01T00:00:00Z\n    name: snap0\n"
		"  pool:\n    config:\n      source: /var/lib/lxd/storage-pools/default\n"
		"    name: default\n    driver: dir\n  volume:\n    name: c1\n    type: container\n";
	static const char byaml[] = "container:\n  name: c1\n  config:\n"
				    "    volatile.last_state.idmap: '[]'\n";
	const struct ent ents[] = {
		{"backup/index.yaml", 'f', index, 0, 0, 0644},
		{"backup/snapshots/snap0", 'd', NULL, 0, 0, 0100},
		{"backup/snapshots/snap0/backup.yaml", 'f', byaml, 0, 0, 0400},
		{"backup/snapshots/snap0/metadata.yaml", 'f', "architecture: x86_64\n", 0, 0, 0644},
		{"backup/snapshots/snap0/rootfs", 'd', NULL, 0, 0, 0755},
		{"backup/snapshots/snap0/rootfs/bin", 'd', NULL, 0, 0, 0755},
		{"backup/snapshots/snap0/rootfs/bin/ash", 'f', "busybox", 0, 0, 04755},
		{"backup/snapshots/snap0/rootfs/bin/busybox", 'h',
		 "backup/snapshots/snap0/rootfs/bin/ash", 0, 0, 04755},
		{"backup/snapshots/snap0/rootfs/bin/sh", 'l', "busybox", 0, 0, 0777},
		{"backup/snapshots/snap0/rootfs/home", 'd', NULL, 0, 0, 0755},
		{"backup/snapshots/snap0/rootfs/home/user", 'd', NULL, 0, 1000, 0755},
		{"backup/snapshots/snap0/rootfs/sbin", 'd', NULL, 0, 0, 0755},
		{"backup/snapshots/snap0/rootfs/sbin/init", 'l', "/bin/busybox", 0, 0, 0777},
		{"backup/container", 'd', NULL, 0, 0, 0100},
		{"backup/container/backup.yaml", 'f', BYAML, 0, 0, 0400},
		{"backup/container/metadata.yaml", 'f', "architecture: x86_64\n", 0, 0, 0644},
		{"backup/container/rootfs", 'd', NULL, 0, 100000, 0755},
		{"backup/container/rootfs/bin", 'd', NULL, 0, 100000, 0755},
		{"backup/container/rootfs/bin/ash", 'f', "busybox", 0, 100000, 04755},
		{"backup/container/rootfs/bin/busybox", 'h', "backup/container/rootfs/bin/ash", 0,
		 100000, 04755},
		{"backup/container/rootfs/bin/sh", 'l', "busybox", 0, 100000, 0777},
		{"backup/container/rootfs/home", 'd', NULL, 0, 100000, 0755},
		{"backup/container/rootfs/home/user", 'd', NULL, 0, 101000, 0755},
		{"backup/container/rootfs/proc", 'd', NULL, 0, 100000, 0755},
		{"backup/container/rootfs/sbin", 'd', NULL, 0, 100000, 0755},
		{"backup/container/rootfs/sbin/init", 'l', "/bin/busybox", 0, 100000, 0777},
	};
	cleanup_free char *c_user = strf("%s/container/rootfs/home/user", f->dest);
	cleanup_free char *s_user = strf("%s/snapshots/snap0/rootfs/home/user", f->dest);
	cleanup_free char *c_ash = strf("%s/container/rootfs/bin/ash", f->dest);
	cleanup_free char *c_bb = strf("%s/container/rootfs/bin/busybox", f->dest);
	cleanup_free char *c_yaml = strf("%s/container/backup.yaml", f->dest);
	const struct image_backup_limits lim = limits();
	struct image_backup_info info = {0};
	struct kiva_error err = {0};
	struct stat st, st2;

	write_go_tar_gz(f->archive, ents, ARRAY_SIZE(ents));
	if (image_backup_import(f->archive, f->dest, &lim, &info, &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(info.index.name, "c1");
	assert_string_equal(info.index.backend, "dir");
	assert_int_equal(strv_length(info.index.snapshots), 1);
	assert_string_equal(info.backup_yaml, BYAML);
	assert_int_equal(lstat(c_ash, &st), 0);
	assert_int_equal(lstat(c_bb, &st2), 0);
	assert_int_equal(st.st_ino, st2.st_ino);
	if (is_root()) { /* setuid is kept only with the owner */
		assert_int_equal(st.st_mode & 07777, 04755);
		assert_int_equal(info.shift_from, 100000);
		assert_int_equal(st.st_uid, BASE2);
		assert_int_equal(lstat(c_user, &st), 0);
		assert_int_equal(st.st_uid, BASE2 + 1000);
		assert_int_equal(lstat(s_user, &st), 0); /* unshifted in the archive */
		assert_int_equal(st.st_uid, BASE2 + 1000);
		assert_int_equal(lstat(c_yaml, &st), 0); /* host-side files stay root's */
		assert_int_equal(st.st_uid, 0);
		assert_int_equal(st.st_mode & 07777, 0400);
	}
	image_backup_info_done(&info);
}

static void test_index_anywhere(void **state)
{
	struct fixture *f = *state;
	const struct ent ents[] = {
		GOOD_CONTAINER,
		{"backup/snapshots/snap0/rootfs", 'd', NULL, 0, 0, 0},
		{"backup/index.yaml", 'f', INDEX_SNAP0, 0, 0, 0},
	};
	const struct image_backup_limits lim = limits();
	struct image_backup_info info = {0};
	struct kiva_error err = {0};

	write_archive(f->archive, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	if (image_backup_import(f->archive, f->dest, &lim, &info, &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(info.index.snapshots[0], "snap0");
	image_backup_info_done(&info);
}

static void test_refuse_paths(void **state)
{
	struct fixture *f = *state;

	REFUSED(f, "'/backup/container/rootfs/x': absolute path",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"/backup/container/rootfs/x", 'f', "x", 0, 0, 0});
	REFUSED(f, "'backup/container/rootfs/../../../../kiva-escape': '..' path component",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/../../../../kiva-escape", 'f', "x", 0, 0, 0});
	REFUSED(f, "'etc/passwd': not part of an LXD backup",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"etc/passwd", 'f', "x", 0, 0, 0});
	REFUSED(f, "'backup/container/kiva.state': not part of an instance volume",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/kiva.state", 'f', "x", 0, 0, 0});
	REFUSED(f, "'./backup//container/rootfs/etc/x': duplicate entry",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/x", 'f', "one", 0, BASE, 0},
		{"./backup//container/rootfs/etc/x", 'f', "two", 0, BASE, 0});
	REFUSED(f, "'backup/index.yaml': duplicate entry",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0});
	REFUSED(f, "'backup/container/': duplicate entry",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container", 'd', NULL, 0, 0, 0});
	REFUSED(f, "'backup/container/rootfs': must be a directory",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0},
		{"backup/container/rootfs", 'l', "/", 0, 0, 0});
	REFUSED(f, "'backup/container/metadata.yaml': must be a regular file",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0},
		{"backup/container/metadata.yaml", 'l', "/etc/shadow", 0, 0, 0});
}

static void test_refuse_links(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *victim_dir = strf("%s/victim", f->tmp);
	cleanup_free char *victim = strf("%s/victim/passwd", f->tmp);

	assert_int_equal(mkdir(victim_dir, 0755), 0);
	REFUSED(f, "goes through the symlink 'container/rootfs/evil'",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/evil", 'l', victim_dir, 0, BASE, 0},
		{"backup/container/rootfs/evil/passwd", 'f', "owned\n", 0, BASE, 0});
	assert_int_equal(access(victim, F_OK), -1);
	REFUSED(f, "symlink target '../../../../../etc' leaves the rootfs",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/evil", 'l', "../../../../../etc", 0, BASE, 0});
	REFUSED(f, "symlink target '../..' leaves the rootfs",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/up", 'l', "../..", 0, BASE, 0});
	REFUSED(f, "'backup/container/templates/x.tpl': symlinks are only allowed inside rootfs/",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/templates", 'd', NULL, 0, 0, 0},
		{"backup/container/templates/x.tpl", 'l', "/etc/shadow", 0, 0, 0});
	REFUSED(f, "hard link target '/etc/passwd': absolute path",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/passwd", 'h', "/etc/passwd", 0, BASE, 0});
	REFUSED(f, "hard link target '../outside': '..' path component",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/passwd", 'h', "../outside", 0, BASE, 0});
	REFUSED(f, "hard link target 'backup/container/rootfs/never' is not a regular file earlier",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/passwd", 'h', "backup/container/rootfs/never", 0,
		 BASE, 0});
	REFUSED(f, "hard link target 'backup/index.yaml' is not a regular file earlier",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/passwd", 'h', "backup/index.yaml", 0, BASE, 0});
	REFUSED(f, "hard links must stay inside the rootfs/ of one volume",
		{"backup/index.yaml", 'f', INDEX_SNAP0, 0, 0, 0},
		{"backup/snapshots/snap0/rootfs", 'd', NULL, 0, 0, 0},
		{"backup/snapshots/snap0/rootfs/f", 'f', "x", 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/f", 'h', "backup/snapshots/snap0/rootfs/f", 0, BASE,
		 0});
	REFUSED(f, "hard links must stay inside the rootfs/ of one volume",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/yaml", 'h', "backup/container/backup.yaml", 0, BASE,
		 0});
}

static void test_refuse_devices_and_owners(void **state)
{
	struct fixture *f = *state;
	const struct ent ents[] = {
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0},
		GOOD_CONTAINER,
		{"backup/container/rootfs/etc/null", 'c', NULL, 0, 0, 0},
		{"backup/container/rootfs/etc/fifo", 'p', NULL, 0, 0, 0},
	};
	cleanup_free char *node = strf("%s/container/rootfs/etc/null", f->dest);
	struct image_backup_limits lim = limits();
	struct image_backup_info info = {0};
	struct kiva_error err = {0};
	struct stat st;

	expect_refused(
		f, ents, ARRAY_SIZE(ents),
		"'backup/container/rootfs/etc/null': device nodes are not allowed in unprivileged containers");
	if (is_root()) { /* privileged containers may have them */
		lim.allow_devices = true;
		lim.shift_from = lim.shift_to = 0;
		if (image_backup_import(f->archive, f->dest, &lim, &info, &err) < 0)
			fail_msg("%s", err.msg);
		image_backup_info_done(&info);
		assert_int_equal(lstat(node, &st), 0);
		assert_true(S_ISCHR(st.st_mode));
		reset_dest(f);
	}
	if (!is_root())
		return; /* non-root imports keep ids as they are */
	REFUSED(f, "'backup/container/rootfs/etc/x': owner 170000:170000 is outside",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/container/rootfs/etc/x", 'f', "x", 0, BASE + 70000, 0});
}

static void test_refuse_index(void **state)
{
	struct fixture *f = *state;

	REFUSED(f, "not an LXD backup: no backup/index.yaml", GOOD_CONTAINER);
	REFUSED(f, "optimized (btrfs send) backups are not supported yet",
		{"backup/index.yaml", 'f', "name: c1\nbackend: btrfs\noptimized: true\n", 0, 0, 0},
		GOOD_CONTAINER);
	REFUSED(f, "optimized (btrfs send) backups are not supported yet",
		{"backup/container.bin", 'f', "btrfs stream", 0, 0, 0},
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0});
	REFUSED(f, "is a virtual-machine backup",
		{"backup/index.yaml", 'f', "name: v1\ntype: virtual-machine\n", 0, 0, 0});
	REFUSED(f, "is a virtual-machine backup",
		{"backup/virtual-machine.img", 'f', "disk", 0, 0, 0});
	REFUSED(f, "backup/index.yaml has no name",
		{"backup/index.yaml", 'f', "backend: dir\n", 0, 0, 0}, GOOD_CONTAINER);
	REFUSED(f, "backup/index.yaml line 2: 'optimized' must be true or false",
		{"backup/index.yaml", 'f', "name: c1\noptimized: maybe\n", 0, 0, 0},
		GOOD_CONTAINER);
	REFUSED(f, "'backup/index.yaml': index.yaml must be a regular file",
		{"backup/index.yaml", 'l', "/etc/passwd", 0, 0, 0}, GOOD_CONTAINER);
	REFUSED(f,
		"'backup/snapshots/evil/rootfs/': snapshot 'evil' is not listed in backup/index.yaml",
		{"backup/index.yaml", 'f', INDEX_SNAP0, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/snapshots/snap0/rootfs", 'd', NULL, 0, 0, 0},
		{"backup/snapshots/evil/rootfs", 'd', NULL, 0, 0, 0});
	REFUSED(f, "snapshot 'evil' is not listed in backup/index.yaml",
		{"backup/snapshots/evil/rootfs", 'd', NULL, 0, 0, 0}, GOOD_CONTAINER,
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0});
	REFUSED(f, "snapshot 'snap0' listed in backup/index.yaml is missing",
		{"backup/index.yaml", 'f', INDEX_SNAP0, 0, 0, 0}, GOOD_CONTAINER);
	REFUSED(f, "has no backup/container/backup.yaml",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0},
		{"backup/container/rootfs", 'd', NULL, 0, BASE, 0});
	REFUSED(f, "backup/container/ has no rootfs/",
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0},
		{"backup/container/backup.yaml", 'f', BYAML, 0, 0, 0});
	REFUSED(f, "holds no instance (no backup/container/)",
		{"backup/index.yaml", 'f', INDEX_SNAP0, 0, 0, 0},
		{"backup/snapshots/snap0/rootfs", 'd', NULL, 0, 0, 0});
}

static void test_zip_bomb_and_limits(void **state)
{
	struct fixture *f = *state;
	const struct ent ents[] = {
		{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0},
		GOOD_CONTAINER,
		{"backup/container/rootfs/etc/zeros", 'f', NULL, 32 * MIB, BASE, 0},
	};
	struct image_backup_limits lim = limits();
	struct stat st;

	write_archive(f->archive, ARCHIVE_FILTER_GZIP, ents, ARRAY_SIZE(ents));
	assert_int_equal(stat(f->archive, &st), 0);
	assert_true(st.st_size < 256 * 1024); /* 32 MiB of zeros: gzip's ~1000:1 */
	expect_refused_lim(
		f, &lim,
		"(at 'backup/container/rootfs/etc/zeros'): more than 100 times its compressed size");
	lim.max_ratio = 0;
	lim.max_bytes = 16 * MIB;
	expect_refused_lim(f, &lim,
			   "archive expands past 16777216 bytes (at "
			   "'backup/container/rootfs/etc/zeros'): more than the free space");
	lim.max_bytes = 64 * MIB;
	lim.max_entries = 5;
	expect_refused_lim(f, &lim, "more than 5 entries (at 'backup/container/rootfs/etc/')");
}

static void test_corrupt_and_truncated(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "name: c1\nthis is a text file, not a tarball\n";
	const struct image_backup_limits lim = limits();
	struct image_backup_info info = {0};
	struct kiva_error err = {0};
	static const char *const compressions[] = {"gzip", "none", "zstd"};
	struct stat st;

	make_sources(f);
	for (size_t i = 0; i < ARRAY_SIZE(compressions); i++) {
		export_to(f, compressions[i], true);
		assert_int_equal(stat(f->archive, &st), 0);
		assert_int_equal(truncate(f->archive, st.st_size * 2 / 3), 0);
		expect_refused_lim(f, &lim, "Failed to read backup");
	}
	/* Garbage in the middle of a compressed stream. */
	export_to(f, "gzip", false);
	{
		int fd = open(f->archive, O_WRONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "CORRUPTCORRUPTCORRUPT", 21, 40000), 21);
		close(fd);
	}
	expect_refused_lim(f, &lim, "backup");
	assert_int_equal(write_file_atomic(f->archive, text, sizeof(text) - 1, 0644), 0);
	expect_refused_lim(f, &lim, "Unrecognized archive format");
	assert_int_equal(write_file_atomic(f->archive, "", 0, 0644), 0);
	expect_refused_lim(f, &lim, "Failed to read backup");
	assert_true(image_backup_import("/nonexistent/b.tar.gz", f->dest, &lim, &info, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/b.tar.gz"));
}

static void test_dest_not_empty(void **state)
{
	struct fixture *f = *state;
	const struct ent ents[] = {{"backup/index.yaml", 'f', INDEX_OK, 0, 0, 0}, GOOD_CONTAINER};
	cleanup_free char *keep = strf("%s/keep", f->dest);
	const struct image_backup_limits lim = limits();
	struct image_backup_info info = {0};
	struct kiva_error err = {0};

	write_archive(f->archive, ARCHIVE_FILTER_NONE, ents, ARRAY_SIZE(ents));
	assert_int_equal(write_file_atomic(keep, "x", 1, 0644), 0);
	assert_int_equal(image_backup_import(f->archive, f->dest, &lim, &info, &err), -ENOTEMPTY);
	assert_non_null(strstr(err.msg, "is not empty"));
	assert_int_equal(access(keep, F_OK), 0); /* nothing of the caller's is removed */
}

static void test_export_errors(void **state)
{
	struct fixture *f = *state;
	const struct image_backup_snapshot bad_snap = {.name = "a/b", .dir = f->snap1};
	struct image_backup_src src = {.name = "c1", .dir = f->vol, .backup_yaml = BYAML};
	struct kiva_error err = {0};
	int fd = open(f->archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	make_sources(f);
	assert_int_equal(image_backup_export(fd, "lz4", &src, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Unsupported compression 'lz4'"));
	src.snapshots = &bad_snap;
	src.n_snapshots = 1;
	assert_int_equal(image_backup_export(fd, "gzip", &src, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Invalid snapshot name 'a/b'"));
	src.n_snapshots = 0;
	src.name = "bad\nname";
	assert_int_equal(image_backup_export(fd, "gzip", &src, &err), -EINVAL);
	src.name = "c1";
	src.dir = "/nonexistent/kiva-volume";
	assert_true(image_backup_export(fd, "gzip", &src, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/kiva-volume"));
	close(fd);
}

static void test_index_parse(void **state)
{
	static const struct {
		const char *text;
		const char *want_err; /* NULL: parses */
		const char *name;
		size_t n_snaps;
		const char *last_snap;
	} cases[] = {
		{INDEX_SNAP0 "config:\n  container:\n    name: c1\n", NULL, "c1", 1, "snap0"},
		{"name: c1\nsnapshots:\n  - a\n  - \"b c\"\n  - 'd''e'\n", NULL, "c1", 3, "d'e"},
		{"---\nname: \"c1\" # comment\nsnapshots: []\nextra:\n  - x\n", NULL, "c1", 0,
		 NULL},
		{"name: c1\r\nsnapshots:\r\n- s1\r\n", NULL, "c1", 1, "s1"},
		{"name: c1\nname: c2\n", "line 2: duplicate key 'name'", NULL, 0, NULL},
		{"name: c1\nsnapshots:\n- a/b\n", "line 3: invalid snapshot name 'a/b'", NULL, 0,
		 NULL},
		{"name: c1\nsnapshots:\n- ..\n", "invalid snapshot name '..'", NULL, 0, NULL},
		{"name: c1\nsnapshots:\n- a\n- a\n", "snapshot 'a' is listed twice", NULL, 0, NULL},
		{"name: c1\nsnapshots:\n-\n", "expected a snapshot name", NULL, 0, NULL},
		{"name: c1\nsnapshots: a\n", "snapshots must be a list", NULL, 0, NULL},
		{"name: c1\n  indented: x\n", "line 2: unexpected indentation", NULL, 0, NULL},
		{"name: c1\n\tx: y\n", "tabs are not allowed", NULL, 0, NULL},
		{"- c1\n", "line 1: expected 'key: value'", NULL, 0, NULL},
		{"name: |\n  c1\n", "'name' must be a one-line value", NULL, 0, NULL},
		{"name: [c1]\n", "unsupported YAML value", NULL, 0, NULL},
		{"name: \"c1\n", "unterminated quoted string", NULL, 0, NULL},
		{"optimized: false\n", "has no name", NULL, 0, NULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct image_backup_index x = {0};
		struct kiva_error err = {0};
		int r = image_backup_index_parse(cases[i].text, strlen(cases[i].text), &x, &err);

		if (!cases[i].want_err) {
			if (r < 0)
				fail_msg("case %zu: %s", i, err.msg);
			assert_string_equal(x.name, cases[i].name);
			assert_string_equal(x.type, "container");
			assert_int_equal(strv_length(x.snapshots), cases[i].n_snaps);
			if (cases[i].last_snap)
				assert_string_equal(x.snapshots[cases[i].n_snaps - 1],
						    cases[i].last_snap);
			image_backup_index_done(&x);
			continue;
		}
		if (r >= 0)
			fail_msg("case %zu parsed; expected '%s'", i, cases[i].want_err);
		if (!strstr(err.msg, cases[i].want_err))
			fail_msg("case %zu: '%s' does not mention '%s'", i, err.msg,
				 cases[i].want_err);
	}
	struct image_backup_index x = {0};
	struct kiva_error err = {0};
	assert_int_equal(image_backup_index_parse("name: a\0b", 9, &x, &err), -EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip_all_compressions),
		T(test_reshift_explicit_and_privileged),
		T(test_lxd_member_list_and_index),
		T(test_lxd_502_synthetic),
		T(test_index_anywhere),
		T(test_refuse_paths),
		T(test_refuse_links),
		T(test_refuse_devices_and_owners),
		T(test_refuse_index),
		T(test_zip_bomb_and_limits),
		T(test_corrupt_and_truncated),
		T(test_dest_not_empty),
		T(test_export_errors),
		T(test_index_parse),
	};

	return cmocka_run_group_tests_name("image-backup", tests, NULL, NULL);
}
