/* Image builders and importers. An image is a storage volume "images/<fingerprint>" holding
 * metadata.yaml and rootfs/ (LXD's unified layout). The daemon records images and aliases in the
 * store; this module only makes the files.
 *
 * libarchive is used only by image-archive.c, which only kiva-helper links: the idle daemon does
 * not map it (feasibility §13). */
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
