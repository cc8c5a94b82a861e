/* Image builders and importers. An image is a storage volume "images/<fingerprint>" holding
 * metadata.yaml and rootfs/ (LXD's unified layout). The daemon records images and aliases in the
 * store; this module only makes the files.
 *
 * libarchive is used only by image-archive.c and image-backup.c, which only kiva-archive-helper
 * links: the idle daemon does not map it (feasibility §13). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic-error.h"

/* Properties read from or written to metadata.yaml. Strings are malloc'd. */
struct image_meta {
	char *architecture; /* "x86_64" */
	int64_t creation_date;
	char *os; /* properties.os */
	char *release; /* properties.release */
	char *description; /* properties.description */
};
void image_meta_done(struct image_meta *m);

/* Builds the busybox image into dir (an existing empty directory): dir/rootfs with the static
 * busybox from busybox_path and one symlink per applet, a minimal /etc, KIVA's /sbin/init (runs
 * /etc/init.d/rcS, halts at once on SIGPWR/SIGTERM, no DHCP), and dir/metadata.yaml.
 * When shift_base > 0, every file is chowned to shift_base + uid (unprivileged containers).
 * Blocking; run from kiva-helper. */
int image_build_busybox(const char *dir, const char *busybox_path, uint32_t shift_base,
			struct kiva_error *reterr);

/* Extracts an LXD unified image tarball (metadata.yaml, rootfs/, templates/; gzip, xz, zstd,
 * bzip2 or none) into dir safely: refuses absolute paths, "..", links leaving dir, device nodes
 * when shift_base > 0, duplicate entries, and archives that expand past max_bytes. On error, dir
 * is emptied. Owners are shifted by shift_base. Blocking; run from kiva-helper. */
int image_unpack(const char *tarball, const char *dir, uint32_t shift_base, uint64_t max_bytes,
		 struct kiva_error *reterr);

/* Parses dir/metadata.yaml (the simple YAML subset LXD writes). The file must be a regular file
 * (not a symlink) of at most IMAGE_META_MAX_BYTES. On success *ret is filled (release it with
 * image_meta_done); on error *ret is untouched and reterr says why. */
int image_meta_read(const char *dir, struct image_meta *ret, struct kiva_error *reterr);

#define IMAGE_META_MAX_BYTES (1024 * 1024)

/* Parses the text of a metadata.yaml: top-level `architecture` (required), `creation_date`
 * (integer) and the `properties:` map (os, release, description; scalars plain, "double" or
 * 'single' quoted); other keys and nested blocks (templates, expiry_date, ...) are skipped.
 * Not a YAML library: flow maps other than {}, anchors, multi-line scalars and tabs are refused
 * or ignored. Pure; any thread; the fuzz target of untrusted image metadata. */
int image_meta_parse(const char *text, size_t len, struct image_meta *ret,
		     struct kiva_error *reterr);

/* Shifts the owner of dir and everything under it (lchown, no symlink is followed) by
 * shift_base: uid -> shift_base + uid, same for gid; setuid/setgid bits are kept. Refuses owners
 * >= 65536 (outside one idmap range). shift_base 0 does nothing. Blocking. */
int image_shift_tree(const char *dir, uint32_t shift_base, struct kiva_error *reterr);

/* Total size in bytes of the files under dir (du -sb). */
int image_dir_size(const char *dir, uint64_t *ret);

/* ---- Instance backups (image-backup.c; kiva-archive-helper only) ----
 *
 * LXD's non-optimized backup tarball (LXD 5.0 `lxc export`, with or without --instance-only):
 *
 *   backup/index.yaml                    name, backend, pool, snapshots, optimized: false,
 *                                        optimized_header: false, type: container, config:
 *   backup/snapshots/<snap>/             each snapshot volume: backup.yaml, metadata.yaml,
 *                                        rootfs/, templates/
 *   backup/container/                    the instance volume, the same names
 *
 * Owners are stored as they are on disk: rootfs/ of a container that has started is shifted by
 * its idmap base, the volume's volatile.last_state.idmap in backup.yaml says by how much. */

/* One snapshot to export. */
struct image_backup_snapshot {
	const char *name; /* snapshot name, no '/' */
	const char *dir; /* snapshot volume directory (rootfs/, metadata.yaml, templates/) */
	const char *backup_yaml; /* its backup.yaml text; NULL: dir/backup.yaml if there is one */
};

/* What to export. Only backup.yaml, metadata.yaml, rootfs/ and templates/ of a volume directory
 * are exported (the names LXD's volumes hold and image_backup_import accepts). */
struct image_backup_src {
	const char *name; /* instance name: index.yaml `name:` */
	const char *pool; /* index.yaml `pool:`; NULL: "default" */
	const char *backend; /* index.yaml `backend:`; NULL: "dir" */
	const char *dir; /* instance volume directory */
	const char *backup_yaml; /* required: backup/container/backup.yaml, also embedded as
				  * index.yaml `config:` as LXD 5.0 does */
	const struct image_backup_snapshot *snapshots; /* oldest first */
	size_t n_snapshots;
};

/* Writes the backup tarball of src to out_fd, streaming (nothing is held in memory but one entry
 * header and a 64 KiB buffer): index.yaml first, then each snapshot, then the instance, as LXD
 * does. compression: "gzip" (LXD's default), "zstd", "xz", "bzip2" or "none". Regular files,
 * directories, symlinks, hard links (within one volume), FIFOs and device nodes are kept with
 * their on-disk owner, mode, mtime and extended attributes (POSIX ACLs and sockets are not).
 * Returns 0 or -errno with reterr set. Bad arguments (names, compression, a missing volume
 * directory) are refused before anything is written; a later error leaves a partial archive in
 * out_fd, which the caller discards. Blocking; run from kiva-archive-helper. */
int image_backup_export(int out_fd, const char *compression, const struct image_backup_src *src,
			struct kiva_error *reterr);

/* backup/index.yaml, parsed. Strings are malloc'd; release with image_backup_index_done. */
struct image_backup_index {
	char *name;
	char *backend; /* may be NULL */
	char *pool; /* may be NULL */
	char *type; /* "container" when absent, as LXD reads it */
	char **snapshots; /* NULL-terminated, in index order; never NULL */
	bool optimized, optimized_header;
};
void image_backup_index_done(struct image_backup_index *i);

#define IMAGE_BACKUP_YAML_MAX_BYTES (16 * 1024 * 1024)

/* Parses the text of backup/index.yaml: the top-level scalars above and the `snapshots:` list
 * (go-yaml writes it unindented: "snapshots:\n- snap0\n"); `config:` and unknown keys are skipped.
 * Snapshot names must be single path components and unique; name is required. The same YAML
 * subset as image_meta_parse. Pure; any thread. */
int image_backup_index_parse(const char *text, size_t len, struct image_backup_index *ret,
			     struct kiva_error *reterr);

/* shift_from value: detect each volume's base from the owner of its rootfs/ directory. */
#define IMAGE_BACKUP_SHIFT_AUTO UINT32_MAX
#define IMAGE_BACKUP_DEFAULT_RATIO 100
#define IMAGE_BACKUP_DEFAULT_MAX_ENTRIES (4u * 1024 * 1024)

struct image_backup_limits {
	uint64_t max_bytes; /* expanded size (the pool's free space); each entry costs 512 bytes
			     * plus its path besides its data; 0: no limit */
	uint32_t max_ratio; /* expanded size at most max_ratio x the archive's size (when it is a
			     * regular file); 0: no limit */
	uint64_t max_entries; /* 0: no limit */
	bool allow_devices; /* device nodes (privileged containers only) */
	/* Owners under rootfs/. shift_from == shift_to == 0: kept as they are. Otherwise an id in
	 * [shift_from, shift_from + 65536) becomes shift_to + (id - shift_from), an id below 65536
	 * becomes shift_to + id (LXD leaves a volume unshifted until the container first starts, so
	 * one backup may hold a shifted instance and unshifted snapshots), any other is refused.
	 * IMAGE_BACKUP_SHIFT_AUTO: shift_from of each volume is the owner of its rootfs/ directory
	 * when that is >= 65536, else 0. Files outside rootfs/ are written owned by root. */
	uint32_t shift_from, shift_to;
};

/* What image_backup_import found. Strings are malloc'd; release with image_backup_info_done. */
struct image_backup_info {
	struct image_backup_index index;
	char *backup_yaml; /* text of backup/container/backup.yaml */
	uint32_t shift_from; /* base the instance's ids were shifted from (after AUTO) */
};
void image_backup_info_done(struct image_backup_info *i);

/* Unpacks an LXD or KIVA backup tarball (any tar and compression image_unpack reads), streaming:
 * backup/container/ goes to dest_dir/container/ and backup/snapshots/<snap>/ to
 * dest_dir/snapshots/<snap>/ (directories made 0700, root-owned). dest_dir must be empty or
 * absent. Refused, each with its own message: entries outside backup/ or with other names in a
 * volume, absolute paths, "..", paths through a symlink, symlinks outside rootfs/ or whose
 * relative target climbs out of rootfs/, hard links to anything but a regular file of the same
 * volume earlier in the archive, device nodes unless lim->allow_devices, duplicates, owners
 * outside the idmap range, more than the limits of lim, a missing or unreadable index.yaml,
 * optimized or non-container backups, snapshots not listed in index.yaml or listed but missing, a
 * volume without backup.yaml or rootfs/, corrupt or truncated archives. On error nothing is left:
 * dest_dir is emptied (removed when this call created it), *ret untouched. Uses chdir(): run from
 * kiva-archive-helper (single-threaded). */
int image_backup_import(const char *archive_path, const char *dest_dir,
			const struct image_backup_limits *lim, struct image_backup_info *ret,
			struct kiva_error *reterr);

/* Converts a YAML document (backup.yaml) into JSON: mappings → objects, lists → arrays, plain
 * true/false/null/integers → JSON values, other scalars → strings. Refuses documents over
 * IMAGE_BACKUP_YAML_MAX_BYTES, nesting over 64 and more than 2^20 nodes (aliases count each time
 * they are reached), non-scalar keys, a root that is not a mapping. *ret is a new reference.
 * libyaml: kiva-archive-helper only. */
typedef struct json_t json_t;
int image_yaml_to_json(const char *text, size_t len, json_t **ret, struct kiva_error *reterr);
