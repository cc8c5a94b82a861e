/* The state machine behind Raft: pure, deterministic, no I/O. Commands:
 *   {"op":"instance.put","instance":{...,"name":N}}   create or replace instance N
 *   {"op":"instance.create","instance":{...}}         add N, which must not exist
 *   {"op":"instance.update","instance":{...}}         replace N, which must exist and be "ready"
 *   {"op":"instance.delete","name":N}                 N must exist
 *   {"op":"image.put","image":{...,"fingerprint":F}}  create or replace image F
 *   {"op":"image.delete","fingerprint":F}             also drops aliases that point to F
 *   {"op":"alias.put","alias":{"name":A,"target":F}}  F must exist
 *   {"op":"alias.delete","name":A}
 *   {"op":"network.put","network":{...,"name":N}}     create or replace network N
 *   {"op":"network.delete","name":N}
 *   {"op":"acl.put","acl":{...,"name":N}}             create or replace network ACL N
 *   {"op":"acl.delete","name":N}
 *   {"op":"config.put","config":{K:"V",...}}          replace the server config (string values)
 *   {"op":"snapshot.put","instance":N,"snapshot":{...,"name":S}}   N must exist and be "ready"
 *   {"op":"snapshot.delete","instance":N,"name":S}
 *   {"op":"snapshot.rename","instance":N,"name":S,"new_name":T}   T must not exist
 * An instance's snapshots live in its record ("snapshots": {S: {...}}) and change only through
 * the snapshot.* commands: instance.put/update keep the stored ones, so a config change that
 * raced a snapshot cannot drop it (instance.create takes them as given: imports).
 * The "networks", "acls" and "config" sections appear with their first entry, so states written before
 * networking existed restore unchanged.
 * Anything else, or a malformed command, is refused and changes nothing (Raft §5.3: every node
 * applies the same entries in the same order, so refusal must be deterministic too). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

static json_t *new_state(void)
{
	return json_pack("{s:{},s:{},s:{}}", "instances", "images", "aliases");
}

int store_fsm_init(struct store_fsm *fsm)
{
	fsm->state = new_state();
	fsm->applied = 0;
	return fsm->state ? 0 : -ENOMEM;
}

void store_fsm_done(struct store_fsm *fsm)
{
	json_decref(fsm->state);
	fsm->state = NULL;
}

/* The section, or NULL when it does not exist yet (networks, acls). */
static json_t *section(struct store_fsm *fsm, const char *name)
{
	return json_object_get(fsm->state, name);
}

/* The section, created when missing: only for a command that is going to succeed. */
static json_t *section_create(struct store_fsm *fsm, const char *name)
{
	json_t *sect = json_object_get(fsm->state, name);

	if (!sect) {
		sect = json_object();
		if (!sect || json_object_set_new(fsm->state, name, sect) < 0)
			return NULL;
	}
	return sect;
}

static int fail(char *errbuf, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* instance.put/update: the record as given, with the stored snapshots. */
static int put_instance(json_t *sect, const json_t *obj, char *errbuf, size_t errlen)
{
	const char *key = json_get_str(obj, "name", NULL);
	const json_t *cur = key ? json_object_get(sect, key) : NULL;
	json_t *copy;

	if (!json_is_object(obj) || !key || !*key)
		return fail(errbuf, errlen, -EINVAL, "command object has no 'name'");
	copy = json_deep_copy(obj);
	if (!copy)
		return fail(errbuf, errlen, -ENOMEM, "out of memory");
	json_object_del(copy, "snapshots");
	if (json_object_get(cur, "snapshots"))
		json_object_set(copy, "snapshots", json_object_get(cur, "snapshots"));
	if (json_object_set_new(sect, key, copy) < 0)
		return fail(errbuf, errlen, -ENOMEM, "out of memory");
	return 0;
}

/* The "snapshots" object of a ready instance, created when missing (create only when the
 * command is going to succeed). */
static json_t *instance_snapshots(struct store_fsm *fsm, const json_t *cmd, bool create,
				  char *errbuf, size_t errlen, int *ret)
{
	const char *name = json_get_str(cmd, "instance", NULL);
	json_t *inst = name ? json_object_get(section(fsm, "instances"), name) : NULL;
	json_t *snaps;

	if (!name) {
		*ret = fail(errbuf, errlen, -EINVAL, "command has no 'instance'");
		return NULL;
	}
	if (!inst || !streq(json_get_str(inst, "kiva_state", "ready"), "ready")) {
		*ret = fail(errbuf, errlen, -ENOENT, "Instance '%s' not found", name);
		return NULL;
	}
	snaps = json_object_get(inst, "snapshots");
	if (!snaps && create) {
		snaps = json_object();
		if (!snaps || json_object_set_new(inst, "snapshots", snaps) < 0) {
			*ret = fail(errbuf, errlen, -ENOMEM, "out of memory");
			return NULL;
		}
	}
	*ret = 0;
	return snaps;
}

static int put_keyed(json_t *sect, const json_t *obj, const char *keyname, char *errbuf,
		     size_t errlen)
{
	const char *key = json_get_str(obj, keyname, NULL);

	if (!json_is_object(obj) || !key || !*key)
		return fail(errbuf, errlen, -EINVAL, "command object has no '%s'", keyname);
	if (json_object_set_new(sect, key, json_deep_copy(obj)) < 0)
		return fail(errbuf, errlen, -ENOMEM, "out of memory");
	return 0;
}

int store_fsm_apply(struct store_fsm *fsm, const char *buf, size_t len, char *errbuf, size_t errlen)
{
	cleanup_json json_t *cmd = NULL;
	const char *op, *name;
	json_error_t jerr;
	int r;

	cmd = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(cmd))
		return fail(errbuf, errlen, -EINVAL, "malformed command");
	op = json_get_str(cmd, "op", "");

	if (streq(op, "instance.put")) {
		r = put_instance(section(fsm, "instances"), json_object_get(cmd, "instance"),
				 errbuf, errlen);
	} else if (streq(op, "instance.create")) {
		const json_t *inst = json_object_get(cmd, "instance");

		name = json_get_str(inst, "name", NULL);
		if (name && json_object_get(section(fsm, "instances"), name))
			return fail(errbuf, errlen, -EEXIST, "Instance '%s' already exists", name);
		r = put_keyed(section(fsm, "instances"), inst, "name", errbuf, errlen);
	} else if (streq(op, "instance.update")) {
		const json_t *inst = json_object_get(cmd, "instance");
		const json_t *cur;

		name = json_get_str(inst, "name", NULL);
		if (!name)
			return fail(errbuf, errlen, -EINVAL, "command object has no 'name'");
		cur = json_object_get(section(fsm, "instances"), name);
		if (!cur || !streq(json_get_str(cur, "kiva_state", "ready"), "ready"))
			return fail(errbuf, errlen, -ENOENT, "Instance '%s' not found", name);
		r = put_instance(section(fsm, "instances"), inst, errbuf, errlen);
	} else if (streq(op, "instance.delete")) {
		name = json_get_str(cmd, "name", NULL);
		if (!name)
			return fail(errbuf, errlen, -EINVAL, "command has no 'name'");
		if (json_object_del(section(fsm, "instances"), name) < 0)
			return fail(errbuf, errlen, -ENOENT, "Instance '%s' not found", name);
		r = 0;
	} else if (streq(op, "image.put")) {
		r = put_keyed(section(fsm, "images"), json_object_get(cmd, "image"), "fingerprint",
			      errbuf, errlen);
	} else if (streq(op, "image.delete")) {
		json_t *aliases = section(fsm, "aliases"), *alias;
		const char *key;
		void *tmp;

		name = json_get_str(cmd, "fingerprint", NULL);
		if (!name)
			return fail(errbuf, errlen, -EINVAL, "command has no 'fingerprint'");
		if (json_object_del(section(fsm, "images"), name) < 0)
			return fail(errbuf, errlen, -ENOENT, "Image '%s' not found", name);
		json_object_foreach_safe(aliases, tmp, key, alias) {
			if (streq(json_get_str(alias, "target", ""), name))
				json_object_del(aliases, key);
		}
		r = 0;
	} else if (streq(op, "alias.put")) {
		const json_t *alias = json_object_get(cmd, "alias");
		const char *target = json_get_str(alias, "target", NULL);

		if (!target)
			return fail(errbuf, errlen, -EINVAL, "command has no 'target'");
		if (!json_object_get(section(fsm, "images"), target))
			return fail(errbuf, errlen, -ENOENT, "Image '%s' not found", target);
		r = put_keyed(section(fsm, "aliases"), alias, "name", errbuf, errlen);
	} else if (streq(op, "alias.delete")) {
		name = json_get_str(cmd, "name", NULL);
		if (!name)
			return fail(errbuf, errlen, -EINVAL, "command has no 'name'");
		if (json_object_del(section(fsm, "aliases"), name) < 0)
			return fail(errbuf, errlen, -ENOENT, "Alias '%s' not found", name);
		r = 0;
	} else if (streq(op, "network.put") || streq(op, "acl.put")) {
		bool net = op[0] == 'n';

		const json_t *obj = json_object_get(cmd, net ? "network" : "acl");
		const char *key = json_get_str(obj, "name", NULL);

		if (!json_is_object(obj) || !key || !*key)
			return fail(errbuf, errlen, -EINVAL, "command object has no 'name'");
		r = put_keyed(section_create(fsm, net ? "networks" : "acls"), obj, "name", errbuf,
			      errlen);
	} else if (streq(op, "network.delete") || streq(op, "acl.delete")) {
		bool net = op[0] == 'n';

		name = json_get_str(cmd, "name", NULL);
		if (!name)
			return fail(errbuf, errlen, -EINVAL, "command has no 'name'");
		if (!section(fsm, net ? "networks" : "acls") ||
		    json_object_del(section(fsm, net ? "networks" : "acls"), name) < 0)
			return fail(errbuf, errlen, -ENOENT,
				    net ? "Network '%s' not found" : "Network ACL '%s' not found",
				    name);
		r = 0;
	} else if (streq(op, "snapshot.put")) {
		const json_t *snap = json_object_get(cmd, "snapshot");
		const char *sname = json_get_str(snap, "name", NULL);
		json_t *snaps;

		if (!json_is_object(snap) || !sname || !*sname)
			return fail(errbuf, errlen, -EINVAL, "command object has no 'name'");
		if (!instance_snapshots(fsm, cmd, false, errbuf, errlen, &r) && r < 0)
			return r;
		snaps = instance_snapshots(fsm, cmd, true, errbuf, errlen, &r);
		if (!snaps)
			return r;
		r = put_keyed(snaps, snap, "name", errbuf, errlen);
	} else if (streq(op, "snapshot.delete") || streq(op, "snapshot.rename")) {
		const char *to = json_get_str(cmd, "new_name", NULL);
		json_t *snaps, *snap;

		name = json_get_str(cmd, "name", NULL);
		if (!name || (op[9] == 'r' && (!to || !*to)))
			return fail(errbuf, errlen, -EINVAL, "command has no '%s'",
				    name ? "new_name" : "name");
		snaps = instance_snapshots(fsm, cmd, false, errbuf, errlen, &r);
		if (r < 0)
			return r;
		snap = json_object_get(snaps, name);
		if (!snap)
			return fail(errbuf, errlen, -ENOENT, "Snapshot '%s' not found", name);
		if (op[9] == 'r') {
			json_t *moved;

			if (json_object_get(snaps, to))
				return fail(errbuf, errlen, -EEXIST, "Snapshot '%s' already exists",
					    to);
			moved = json_deep_copy(snap);
			if (!moved || json_object_set_new(moved, "name", json_string(to)) < 0 ||
			    json_object_set_new(snaps, to, moved) < 0)
				return fail(errbuf, errlen, -ENOMEM, "out of memory");
		}
		json_object_del(snaps, name);
		r = 0;
	} else if (streq(op, "config.put")) {
		json_t *config = json_object_get(cmd, "config");
		const char *key;
		json_t *v;

		if (!json_is_object(config))
			return fail(errbuf, errlen, -EINVAL, "command has no 'config' object");
		json_object_foreach(config, key, v)
			if (!json_is_string(v))
				return fail(errbuf, errlen, -EINVAL,
					    "config value of '%s' is not a string", key);
		if (json_object_set_new(fsm->state, "config", json_deep_copy(config)) < 0)
			return fail(errbuf, errlen, -ENOMEM, "out of memory");
		r = 0;
	} else {
		return fail(errbuf, errlen, -EINVAL, "unknown command '%s'", op);
	}
	if (r >= 0)
		fsm->applied++;
	return r;
}

int store_fsm_snapshot(struct store_fsm *fsm, char **ret, size_t *ret_len)
{
	char *s = json_dump_compact(fsm->state);

	if (!s)
		return -ENOMEM;
	*ret_len = strlen(s);
	*ret = s;
	return 0;
}

int store_fsm_restore(struct store_fsm *fsm, const char *buf, size_t len)
{
	json_t *state = json_loadb(buf, len, 0, NULL);
	static const char *const sections[] = {"instances", "images", "aliases"};

	if (!json_is_object(state)) {
		json_decref(state);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
		if (!json_is_object(json_object_get(state, sections[i]))) {
			json_decref(state);
			return -EINVAL;
		}
	}
	json_decref(fsm->state);
	fsm->state = state;
	return 0;
}

json_t *store_cmd_snapshot_put(const char *instance, const json_t *snapshot)
{
	return json_pack("{s:s,s:s,s:O}", "op", "snapshot.put", "instance", instance, "snapshot",
			 snapshot);
}

json_t *store_cmd_snapshot_delete(const char *instance, const char *name)
{
	return json_pack("{s:s,s:s,s:s}", "op", "snapshot.delete", "instance", instance, "name",
			 name);
}

json_t *store_cmd_snapshot_rename(const char *instance, const char *name, const char *new_name)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "op", "snapshot.rename", "instance", instance, "name",
			 name, "new_name", new_name);
}

json_t *store_cmd_config_put(const json_t *config)
{
	return json_pack("{s:s,s:O}", "op", "config.put", "config", config);
}

json_t *store_cmd_instance_put(const json_t *instance)
{
	return json_pack("{s:s,s:O}", "op", "instance.put", "instance", instance);
}

json_t *store_cmd_network_put(const json_t *network)
{
	return json_pack("{s:s,s:O}", "op", "network.put", "network", network);
}

json_t *store_cmd_network_delete(const char *name)
{
	return json_pack("{s:s,s:s}", "op", "network.delete", "name", name);
}

json_t *store_cmd_acl_put(const json_t *acl)
{
	return json_pack("{s:s,s:O}", "op", "acl.put", "acl", acl);
}

json_t *store_cmd_acl_delete(const char *name)
{
	return json_pack("{s:s,s:s}", "op", "acl.delete", "name", name);
}

json_t *store_cmd_instance_create(const json_t *instance)
{
	return json_pack("{s:s,s:O}", "op", "instance.create", "instance", instance);
}

json_t *store_cmd_instance_update(const json_t *instance)
{
	return json_pack("{s:s,s:O}", "op", "instance.update", "instance", instance);
}

json_t *store_cmd_instance_delete(const char *name)
{
	return json_pack("{s:s,s:s}", "op", "instance.delete", "name", name);
}

json_t *store_cmd_image_put(const json_t *image)
{
	return json_pack("{s:s,s:O}", "op", "image.put", "image", image);
}

json_t *store_cmd_image_delete(const char *fingerprint)
{
	return json_pack("{s:s,s:s}", "op", "image.delete", "fingerprint", fingerprint);
}

json_t *store_cmd_alias_put(const json_t *alias)
{
	return json_pack("{s:s,s:O}", "op", "alias.put", "alias", alias);
}

json_t *store_cmd_alias_delete(const char *name)
{
	return json_pack("{s:s,s:s}", "op", "alias.delete", "name", name);
}
