/* What the snapshot, restore, rename, copy, export, import and publish verbs work out client side,
 * as pure functions: lxc's NAME/SNAP names, the sub-command of `kiva snapshot`, the request bodies
 * (copy, backup, publish), the file `kiva export` writes by default, and the rows of the snapshot
 * tables (`kiva snapshot list`, the "Snapshots:" section of `kiva info`). No I/O except the
 * randomness of cli_export_backup_name; testable without a server. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "basic-error.h"
#include "basic-json.h"
#include "cli-output.h"

/* Splits lxc's "INSTANCE/SNAPSHOT" (a leading "local:", the only remote, is dropped). Both parts
 * are copies the caller frees; *ret_snapshot is NULL when s names an instance (no '/'). Errors,
 * with the message in reterr: -EINVAL for an empty instance or snapshot part or a second '/';
 * -ENOMEM. */
int cli_snapshot_split(const char *s, char **ret_instance, char **ret_snapshot,
		       struct kiva_error *reterr);

/* The sub-commands of `kiva snapshot`, NULL-terminated. */
extern const char *const cli_snapshot_subs[];

/* Where `kiva snapshot`'s sub-command is in argv (argv[0] is "snapshot"): the index of the first
 * positional word when it is one of cli_snapshot_subs, else 0 (the short form "kiva snapshot NAME
 * [SNAP]", lxc's). Global flags before it are skipped (--socket takes a value); after "--" every
 * word is positional, and the short form is assumed. */
int cli_snapshot_sub_index(int argc, char *const *argv);

/* The snapshot name `kiva restore NAME SNAP` sends in {"restore": ...}: SNAP, or the part after
 * "NAME/" when SNAP is written as lxc also accepts it ("c1/snap0"). *ret points into snap.
 * -EINVAL (reterr) when SNAP is empty or the snapshot of another instance. */
int cli_restore_snapshot_name(const char *instance, const char *snap, const char **ret,
			      struct kiva_error *reterr);

/* `kiva rename SRC DST`, which renames snapshots only: SRC is "NAME/OLD", DST "NAME/NEW" (lxc's
 * form, the same instance) or just "NEW". The three names are copies the caller frees. Errors
 * (reterr): -EOPNOTSUPP when SRC names an instance (instances cannot be renamed), -EINVAL for a
 * DST of another instance or an invalid name, -ENOMEM. */
int cli_rename_parse(const char *src, const char *dst, char **ret_instance, char **ret_old,
		     char **ret_new, struct kiva_error *reterr);

/* The body of POST /1.0/instances for `kiva copy`: {"name": dest, "type": "container", "source":
 * {"type": "copy", "source": source, "instance_only": instance_only}, "config": config,
 * "ephemeral": ephemeral} plus "profiles": [] with no_profiles. config may be NULL ({}). source is
 * "INSTANCE" or "INSTANCE/SNAPSHOT". New reference, NULL on OOM. */
json_t *cli_copy_body(const char *source, const char *dest, bool instance_only,
		      const json_t *config, bool ephemeral, bool no_profiles);

/* The file extension of a backup compressed with compression ("gzip" → ".tar.gz", "zstd" →
 * ".tar.zst", "none" → ".tar"), NULL for anything else. */
const char *cli_export_extension(const char *compression);

/* The file `kiva export NAME` writes when no FILE is given: NAME plus cli_export_extension of
 * compression (in the current directory). Caller frees; NULL on OOM or an unknown compression. */
char *cli_export_default_file(const char *instance, const char *compression);

/* "kiva-export-" and 16 random hex digits: the name of the short-lived backup `kiva export`
 * creates. buf holds 64. Returns 0 or -errno (getrandom). */
int cli_export_backup_name(char buf[static 64]);

/* t as RFC 3339 in UTC ("2024-05-01T10:00:00Z"). buf holds 32. Returns buf. */
const char *cli_format_rfc3339(time_t t, char buf[static 32]);

/* The body of POST /1.0/instances/NAME/backups for `kiva export`: {"name": backup, "expires_at":
 * now + expiry_sec, "instance_only", "optimized_storage": false, "compression_algorithm"}. New
 * reference, NULL on OOM. */
json_t *cli_export_backup_body(const char *backup, time_t now, long expiry_sec, bool instance_only,
			       const char *compression);

/* The backup's name in an operation's resources {"backups": ["/1.0/instances/c1/backups/b0"]}:
 * the last path segment, percent-decoded, written to buf (holds 64). Returns 0, or -ENOENT when
 * the operation names no backup (or the name does not fit). */
int cli_backup_name_from_resources(const json_t *resources, char buf[static 64]);

/* Sorts the arguments of `kiva publish` after the instance: "local:" (the target server; the only
 * one) is skipped, KEY=VALUE pairs are set in props (image properties). -EINVAL (reterr) for
 * another remote or a word that is neither; -ENOMEM. */
int cli_publish_extra_args(const char *const *args, size_t n, json_t *props,
			   struct kiva_error *reterr);

/* The body of POST /1.0/images for `kiva publish NAME[/SNAP]`: {"source": {"type": "instance" or
 * "snapshot", "name": name}, "aliases": aliases, "public": public, "properties": props} plus
 * "compression_algorithm" when compression is not NULL. aliases and props may be NULL. New
 * reference, NULL on OOM. */
json_t *cli_publish_body(const char *name, const json_t *aliases, bool public, const json_t *props,
			 const char *compression);

/* The columns of the snapshot tables: NAME, TAKEN AT, EXPIRES AT, SIZE, STATEFUL. */
#define CLI_SNAPSHOT_COLUMNS 5
extern const char *const cli_snapshot_columns[CLI_SNAPSHOT_COLUMNS];

/* A copy of list (the snapshots of GET .../snapshots?recursion=1) in the order they were taken
 * (created_at, then name). New reference; NULL on OOM or when list is not an array. */
json_t *cli_snapshots_sorted(const json_t *list);

/* Adds the row of snap to t (CLI_SNAPSHOT_COLUMNS columns): the name, when it was taken and when it
 * expires in local time as lxc info prints them ("" for never: Go's zero time), its size
 * human-readable ("" when unknown) and YES/NO for stateful. Returns 0 or -ENOMEM. */
int cli_snapshot_row(struct cli_table *t, const json_t *snap);
