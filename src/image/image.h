/* Image builders and importers. An image is a storage volume "images/<fingerprint>" holding
 * metadata.yaml and rootfs/ (LXD's unified layout). The daemon records images and aliases in the
 * store; this module only makes the files.
 *
 * libarchive is used only by image-archive.c, which only kiva-helper links: the idle daemon does
 * not map it (feasibility §13). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic-error.h"

/* Properties read from or written to metadata.yaml. Strings are malloc'd. */
struct image_meta {
	char *architecture;  /* "x86_64" */
	int64_t creation_date;
	char *os;           /* properties.os */
	char *release;      /* properties.release */
	char *description;  /* properties.description */
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

/* Parses dir/metadata.yaml (the simple YAML subset LXD writes). */
int image_meta_read(const char *dir, struct image_meta *ret, struct kiva_error *reterr);

/* Total size in bytes of the files under dir (du -sb). */
int image_dir_size(const char *dir, uint64_t *ret);
