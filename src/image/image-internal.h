/* Internals shared by the files of the image module, not part of its API (STYLE.md: `uv__`
 * names): the YAML scalar reader of image-meta.c, used again for backup/index.yaml, and the safe
 * extractor of image-archive.c, which unpacks both image tarballs and instance backups. The
 * extractor runs every entry through the same checks (normalized relative path, nothing through
 * an earlier symlink, hard links only to regular files extracted earlier, no duplicates, device
 * nodes only when allowed, owners inside one idmap range, a cap on the expanded size and on the
 * number of entries); a small layout (struct image_archive__layout) says where an entry goes and
 * which names it must have. libarchive types are only forward-declared: image-meta.c, which does
 * not link libarchive, includes this header too. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic-error.h"

struct archive;
struct archive_entry;

/* ---- YAML scalars (image-meta.c) ---- */

/* Parses the scalar s[0..n) (the text after "key:" up to the end of the line): plain (ended by
 * " #"), 'single' or "double" quoted (YAML 1.2 §7.3). Flow collections, anchors, tags and block
 * scalars are refused. Messages name file and lineno. *ret is malloc'd. */
int image_yaml__scalar(const char *file, const char *s, size_t n, unsigned lineno, char **ret,
		       struct kiva_error *reterr);
/* Length of the key of "key: value" / "key:" (letters, digits, _-./), or -1. */
ssize_t image_yaml__split_key(const char *s, size_t n);
/* True when s[0..n) holds only blanks and possibly a comment. */
bool image_yaml__rest_is_empty(const char *s, size_t n);
/* True when the value is a block scalar header: "|", "|-", ">+2", ... */
bool image_yaml__block_scalar(const char *s, size_t n);

/* ---- safe extraction (image-archive.c) ---- */

/* Ids of one unprivileged container: an idmap range of 65536 (SHIFT_RANGE of image.h). */
#define IMAGE_ARCHIVE__ID_RANGE 65536u

enum image_archive__type {
	IMAGE_ARCHIVE__FILE = 1,
	IMAGE_ARCHIVE__DIR,
	IMAGE_ARCHIVE__SYMLINK,
	IMAGE_ARCHIVE__OTHER,
};

/* Open-addressing hash map from a path (or any string) to a nonzero value. */
struct image_archive__set {
	char **keys;
	uint32_t *vals;
	size_t cap, n;
};
/* Value of key[0..n), 0 when absent. */
uint32_t image_archive__set_get(const struct image_archive__set *s, const char *key, size_t n);
/* Adds key (copied) with val != 0. Returns 0, -EEXIST or -ENOMEM. */
int image_archive__set_add(struct image_archive__set *s, const char *key, uint32_t val);
void image_archive__set_done(struct image_archive__set *s);

/* Normalizes an entry path into out: drops "." and empty components ("./rootfs//x/" ->
 * "rootfs/x"); refuses absolute paths and ".." components with *ret_why saying so. The archive's
 * "./" gives "". */
int image_archive__normalize(const char *in, char out[static PATH_MAX], const char **ret_why);

/* How owners are written. shift false: as they are in the archive. shift true: an id in
 * [from, from + 65536) becomes to + (id - from) (a tree stored shifted by another base), any other
 * id below 65536 becomes to + id (a tree stored unshifted), the rest is refused. */
struct image_archive__idmap {
	bool shift;
	uint32_t from, to;
};
/* Maps one id. Returns 0 or -ERANGE. */
int image_archive__map_id(const struct image_archive__idmap *m, int64_t id, uint32_t *ret);

struct image_archive__unpack;

struct image_archive__layout {
	/* Where the entry with normalized archive path goes: ret_path (relative to the target
	 * directory), or "" for an entry the layout consumed or skips. Refuses entries that are
	 * not part of the layout (image_archive__refuse). e is NULL when a hard link target is
	 * mapped: then nothing may change and nothing is refused (ret_path "" when unmappable). */
	int (*place)(struct image_archive__unpack *u, struct archive *in, struct archive_entry *e,
		     const char *raw, const char *path, char ret_path[static PATH_MAX]);
	/* Checks the placed entry (path as written, type known; archive_entry_hardlink(e) set for
	 * a hard link, already mapped). May set u->map and the entry's owner for this entry. */
	int (*check)(struct image_archive__unpack *u, struct archive_entry *e, const char *raw,
		     const char *path, enum image_archive__type type);
	/* After the last entry, inside the target directory, before it is closed. May be NULL. */
	int (*finish)(struct image_archive__unpack *u);
};

/* One extraction. The caller fills the fields above `seen`; image_archive__unpack_done frees. */
struct image_archive__unpack {
	const char *archive; /* path, for messages */
	const char *what; /* "image" or "backup": "Refusing <what> entry ..." */
	const struct image_archive__layout *layout;
	void *userdata; /* the layout's */
	struct image_archive__idmap map; /* owners of the current entry */
	bool allow_devices; /* character and block devices */
	uint64_t max_bytes; /* expanded size */
	const char *limit_note; /* appended to the max_bytes refusal, may be NULL */
	uint64_t
		entry_bytes; /* charged per entry besides its data, plus its path length when set */
	uint64_t max_entries; /* 0: no limit */
	struct kiva_error *reterr;

	uint64_t total_bytes, n_entries;
	struct image_archive__set seen; /* path written -> enum image_archive__type */
};

/* "Refusing <what> entry '<path>': <why>". Returns code. */
int image_archive__refuse(struct image_archive__unpack *u, int code, const char *path,
			  const char *why);

/* Extracts the archive u->archive (tar: ustar, pax or GNU; gzip, xz, zstd, bzip2 or none) into
 * dir, which exists and is empty, with libarchive's own guards on as well. chdir()s into dir for
 * its duration: single-threaded processes only (kiva-helper). On error, files already written
 * stay: the caller empties dir. */
int image_archive__extract(struct image_archive__unpack *u, const char *dir);
void image_archive__unpack_done(struct image_archive__unpack *u);

/* Removes everything inside dir (not dir itself: it may be a btrfs subvolume). */
int image_archive__empty_dir(const char *dir);
/* Whether dir has no entries; false with *ret_err set when it cannot be read. */
bool image_archive__dir_is_empty(const char *dir, int *ret_err);
