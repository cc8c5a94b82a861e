/* The pure parts of kiva's snapshot, restore, rename, copy, export, import and publish verbs:
 * lxc's NAME/SNAP names, request bodies and the snapshot table rows (see cli-snap.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli-snap.h"

int cli_snapshot_split(const char *s, char **ret_instance, char **ret_snapshot,
		       struct kiva_error *reterr)
{
	cleanup_free char *inst = NULL, *snap = NULL;
	const char *slash;

	if (startswith(s, "local:"))
		s += strlen("local:");
	slash = strchr(s, '/');
	if (!*s || slash == s)
		return kiva_error_set(reterr, -EINVAL, "Invalid instance name '%s'", s);
	if (slash && (!slash[1] || strchr(slash + 1, '/')))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid snapshot name '%s': expected INSTANCE/SNAPSHOT", s);
	inst = slash ? strndup(s, (size_t)(slash - s)) : strdup(s);
	if (!inst || (slash && !(snap = strdup(slash + 1))))
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	*ret_instance = TAKE_PTR(inst);
	*ret_snapshot = TAKE_PTR(snap);
	return 0;
}

const char *const cli_snapshot_subs[] = {"create",  "delete", "list", "rename",
					 "restore", "show",   NULL};

int cli_snapshot_sub_index(int argc, char *const *argv)
{
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--"))
			return 0;
		if (streq(argv[i], "--socket")) {
			i++; /* its value */
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1])
			continue;
		for (size_t k = 0; cli_snapshot_subs[k]; k++)
			if (streq(argv[i], cli_snapshot_subs[k]))
				return i;
		return 0;
	}
	return 0;
}

int cli_restore_snapshot_name(const char *instance, const char *snap, const char **ret,
			      struct kiva_error *reterr)
{
	const char *slash = strchr(snap, '/');
	size_t n = strlen(instance);

	if (slash) {
		if ((size_t)(slash - snap) != n || strncmp(snap, instance, n) != 0)
			return kiva_error_set(reterr, -EINVAL,
					      "'%s' is not a snapshot of instance '%s'", snap,
					      instance);
		snap = slash + 1;
	}
	if (!*snap || strchr(snap, '/'))
		return kiva_error_set(reterr, -EINVAL, "Invalid snapshot name '%s'", snap);
	*ret = snap;
	return 0;
}

int cli_rename_parse(const char *src, const char *dst, char **ret_instance, char **ret_old,
		     char **ret_new, struct kiva_error *reterr)
{
	cleanup_free char *inst = NULL, *old = NULL, *dinst = NULL, *dsnap = NULL;
	int r;

	r = cli_snapshot_split(src, &inst, &old, reterr);
	if (r < 0)
		return r;
	if (!old)
		return kiva_error_set(reterr, -EOPNOTSUPP,
				      "Renaming instances is not supported: kiva rename renames "
				      "snapshots (kiva rename %s/OLD %s/NEW)",
				      inst, inst);
	r = cli_snapshot_split(dst, &dinst, &dsnap, reterr);
	if (r < 0)
		return r;
	if (!dsnap) {
		/* "kiva rename c1/a b": the new name of the snapshot */
		dsnap = TAKE_PTR(dinst);
	} else if (!streq(dinst, inst)) {
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid new snapshot name, parent must be the same as source");
	}
	*ret_instance = TAKE_PTR(inst);
	*ret_old = TAKE_PTR(old);
	*ret_new = TAKE_PTR(dsnap);
	return 0;
}

json_t *cli_copy_body(const char *source, const char *dest, bool instance_only,
		      const json_t *config, bool ephemeral, bool no_profiles)
{
	json_t *body = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:b}, s:o, s:b}", "name", dest, "type", "container",
		"source", "type", "copy", "source", source, "instance_only", instance_only,
		"config", config ? json_deep_copy(config) : json_object(), "ephemeral", ephemeral);

	if (body && no_profiles && json_object_set_new(body, "profiles", json_array()) < 0) {
		json_decref(body);
		return NULL;
	}
	return body;
}

const char *cli_export_extension(const char *compression)
{
	if (streq(compression, "gzip"))
		return ".tar.gz";
	if (streq(compression, "zstd"))
		return ".tar.zst";
	if (streq(compression, "none"))
		return ".tar";
	return NULL;
}

char *cli_export_default_file(const char *instance, const char *compression)
{
	const char *ext = cli_export_extension(compression);

	return ext ? strf("%s%s", instance, ext) : NULL;
}

int cli_export_backup_name(char buf[static 64])
{
	char hex[17];
	int r = random_hex(hex, 8);

	if (r < 0)
		return r;
	snprintf(buf, 64, "kiva-export-%s", hex);
	return 0;
}

const char *cli_format_rfc3339(time_t t, char buf[static 32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "0001-01-01T00:00:00Z");
	return buf;
}

json_t *cli_export_backup_body(const char *backup, time_t now, long expiry_sec, bool instance_only,
			       const char *compression)
{
	char expires[32];

	cli_format_rfc3339(now + expiry_sec, expires);
	return json_pack("{s:s, s:s, s:b, s:b, s:s}", "name", backup, "expires_at", expires,
			 "instance_only", instance_only, "optimized_storage", false,
			 "compression_algorithm", compression);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cli_backup_name_from_resources(const json_t *resources, char buf[static 64])
{
	const char *url =
		json_string_value(json_array_get(json_object_get(resources, "backups"), 0));
	const char *seg, *end;
	size_t n = 0;

	if (!url)
		return -ENOENT;
	end = url + strcspn(url, "?#");
	for (seg = end; seg > url && seg[-1] != '/'; seg--)
		;
	for (const char *p = seg; p < end; p++) {
		char c = *p;

		if (c == '%' && end - p >= 3 && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
			c = (char)(hex_value(p[1]) * 16 + hex_value(p[2]));
			p += 2;
		}
		if (n + 1 >= 64)
			return -ENOENT;
		buf[n++] = c;
	}
	buf[n] = 0;
	return n ? 0 : -ENOENT;
}

int cli_publish_extra_args(const char *const *args, size_t n, json_t *props,
			   struct kiva_error *reterr)
{
	for (size_t i = 0; i < n; i++) {
		const char *a = args[i];
		const char *colon = strchr(a, ':'), *eq = strchr(a, '=');
		int r;

		if (colon && (!eq || colon < eq)) {
			if (!streq(a, "local:"))
				return kiva_error_set(
					reterr, -EINVAL,
					"Remote servers are not supported: '%s' (only "
					"local:)",
					a);
			continue;
		}
		if (!eq)
			return kiva_error_set(reterr, -EINVAL, "Bad key=value pair: %s", a);
		r = cli_config_add(props, a, reterr);
		if (r < 0)
			return r;
	}
	return 0;
}

json_t *cli_publish_body(const char *name, const json_t *aliases, bool public, const json_t *props,
			 const char *compression)
{
	json_t *body =
		json_pack("{s:{s:s, s:s}, s:o, s:b, s:o}", "source", "type",
			  strchr(name, '/') ? "snapshot" : "instance", "name", name, "aliases",
			  aliases ? json_deep_copy(aliases) : json_array(), "public", public,
			  "properties", props ? json_deep_copy(props) : json_object());

	if (body && compression && json_set_str(body, "compression_algorithm", compression) < 0) {
		json_decref(body);
		return NULL;
	}
	return body;
}

const char *const cli_snapshot_columns[CLI_SNAPSHOT_COLUMNS] = {"NAME", "TAKEN AT", "EXPIRES AT",
								"SIZE", "STATEFUL"};

/* The fraction of a second of an RFC 3339 time ("...T10:00:00.123Z" → 123000000 ns). */
static long time_nsec(const char *s)
{
	const char *t = strchr(s, 'T'), *dot = t ? strchr(t, '.') : NULL;
	long ns = 0;
	int digits = 0;

	for (const char *p = dot ? dot + 1 : ""; *p >= '0' && *p <= '9'; p++)
		if (digits < 9) {
			ns = ns * 10 + (*p - '0');
			digits++;
		}
	for (; dot && digits < 9; digits++)
		ns *= 10;
	return ns;
}

/* When a snapshot was taken, to the nanosecond: two taken within a second keep their order. */
static void snapshot_time(const json_t *snap, time_t *ret_sec, long *ret_nsec)
{
	const char *s = json_get_str(snap, "created_at", "");
	bool zero;

	if (cli_parse_time(s, ret_sec, &zero) < 0) {
		*ret_sec = 0;
		*ret_nsec = 0;
		return;
	}
	*ret_nsec = time_nsec(s);
}

static int cmp_snapshots(const void *a, const void *b)
{
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	time_t tx, ty;
	long nx, ny;

	snapshot_time(x, &tx, &nx);
	snapshot_time(y, &ty, &ny);
	if (tx != ty)
		return tx < ty ? -1 : 1;
	if (nx != ny)
		return nx < ny ? -1 : 1;
	return strcmp(json_get_str(x, "name", ""), json_get_str(y, "name", ""));
}

json_t *cli_snapshots_sorted(const json_t *list)
{
	size_t n = json_array_size(list);
	cleanup_free json_t **items = NULL;
	json_t *out;

	if (!json_is_array(list))
		return NULL;
	items = calloc(n + 1, sizeof(*items));
	out = items ? json_array() : NULL;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(list, i);
	qsort(items, n, sizeof(*items), cmp_snapshots);
	for (size_t i = 0; i < n; i++)
		if (json_array_append(out, items[i]) < 0) {
			json_decref(out);
			return NULL;
		}
	return out;
}

int cli_snapshot_row(struct cli_table *t, const json_t *snap)
{
	const json_t *size = json_object_get(snap, "size");
	char taken[64], expires[64], bytes[32] = "";
	const char *cells[CLI_SNAPSHOT_COLUMNS];

	if (json_is_integer(size) && json_integer_value(size) >= 0)
		format_bytes((uint64_t)json_integer_value(size), bytes);
	cells[0] = json_get_str(snap, "name", "");
	cells[1] = cli_format_time_local(json_get_str(snap, "created_at", ""), taken);
	cells[2] = cli_format_time_local(json_get_str(snap, "expires_at", ""), expires);
	cells[3] = bytes;
	cells[4] = json_get_bool(snap, "stateful", false) ? "YES" : "NO";
	return cli_table_add_row(t, cells);
}
