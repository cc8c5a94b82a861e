/* Unit tests of store-fsm.c, the pure state machine behind Raft: a table of commands built with
 * the store_cmd_* builders (and raw malformed ones) applied in order, each with the expected
 * result, message and state; refused commands must leave the state byte-for-byte unchanged;
 * snapshot/restore round trips and refused restores; and determinism: a seeded random sequence
 * of ~2000 valid and invalid commands gives identical results on two machines, on a machine
 * restored from a mid-sequence snapshot, and matches a simple reference model. No I/O. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic-json.h"
#include "basic-macro.h"
#include "store.h"

static json_t *parse(const char *s)
{
	json_error_t jerr;
	json_t *j = json_loads(s, JSON_DECODE_ANY, &jerr);

	if (!j)
		fail_msg("bad JSON in test: %s: %s", s, jerr.text);
	return j;
}

/* Serialized state, caller frees. */
static char *dump(struct store_fsm *fsm)
{
	char *s = NULL;
	size_t len = 0;

	assert_int_equal(store_fsm_snapshot(fsm, &s, &len), 0);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	return s;
}

/* Applies cmd (consumed) and returns the result; msg receives the error text. */
static int apply_cmd(struct store_fsm *fsm, json_t *cmd, char *msg, size_t msglen)
{
	cleanup_free char *s = NULL;

	assert_non_null(cmd);
	s = json_dumps(cmd, JSON_COMPACT);
	json_decref(cmd);
	assert_non_null(s);
	if (msglen)
		msg[0] = 0;
	return store_fsm_apply(fsm, s, strlen(s), msg, msglen);
}

static int apply_str(struct store_fsm *fsm, const char *cmd)
{
	return store_fsm_apply(fsm, cmd, strlen(cmd), NULL, 0);
}

static int fsm_setup(void **state)
{
	struct store_fsm *fsm = calloc(1, sizeof(*fsm));

	if (!fsm || store_fsm_init(fsm) < 0)
		return -1;
	*state = fsm;
	return 0;
}

static int fsm_teardown(void **state)
{
	struct store_fsm *fsm = *state;

	store_fsm_done(fsm);
	free(fsm);
	return 0;
}

static void test_init(void **state)
{
	struct store_fsm *fsm = *state;
	cleanup_free char *s = dump(fsm);

	assert_string_equal(s, "{\"aliases\":{},\"images\":{},\"instances\":{}}");
	assert_int_equal(fsm->applied, 0);
	assert_true(json_is_object(fsm->state));
}

/* ---- the command table ---- */

enum op {
	OP_RAW,
	OP_INSTANCE_PUT,
	OP_INSTANCE_DELETE,
	OP_IMAGE_PUT,
	OP_IMAGE_DELETE,
	OP_ALIAS_PUT,
	OP_ALIAS_DELETE,
};

struct step {
	const char *what;
	enum op op;
	const char *arg; /* object JSON for *_PUT, name for *_DELETE, the command for OP_RAW */
	int ret;
	const char *msg; /* exact message of a refusal */
	const char *state; /* expected state after an accepted step (NULL: not checked) */
};

#define EMPTY_ALIASES "\"aliases\":{}"
#define EMPTY_IMAGES "\"images\":{}"

static const struct step steps[] = {
	/* instances */
	{"create c1", OP_INSTANCE_PUT, "{\"name\":\"c1\",\"status\":\"Stopped\"}", 0, NULL,
	 "{\"instances\":{\"c1\":{\"name\":\"c1\",\"status\":\"Stopped\"}}," EMPTY_IMAGES
	 "," EMPTY_ALIASES "}"},
	{"replace c1", OP_INSTANCE_PUT,
	 "{\"name\":\"c1\",\"status\":\"Running\",\"config\":{\"limits.cpu\":\"2\"}}", 0, NULL,
	 "{\"instances\":{\"c1\":{\"name\":\"c1\",\"status\":\"Running\","
	 "\"config\":{\"limits.cpu\":\"2\"}}}," EMPTY_IMAGES "," EMPTY_ALIASES "}"},
	{"create web-2", OP_INSTANCE_PUT, "{\"name\":\"web-2\"}", 0, NULL,
	 "{\"instances\":{\"c1\":{\"name\":\"c1\",\"status\":\"Running\","
	 "\"config\":{\"limits.cpu\":\"2\"}},\"web-2\":{\"name\":\"web-2\"}}," EMPTY_IMAGES
	 "," EMPTY_ALIASES "}"},
	{"delete c1", OP_INSTANCE_DELETE, "c1", 0, NULL,
	 "{\"instances\":{\"web-2\":{\"name\":\"web-2\"}}," EMPTY_IMAGES "," EMPTY_ALIASES "}"},
	{"delete c1 again", OP_INSTANCE_DELETE, "c1", -ENOENT, "Instance 'c1' not found", NULL},
	{"delete never created", OP_INSTANCE_DELETE, "ghost", -ENOENT, "Instance 'ghost' not found",
	 NULL},
	{"instance without name", OP_INSTANCE_PUT, "{\"status\":\"Running\"}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"instance with empty name", OP_INSTANCE_PUT, "{\"name\":\"\"}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"instance with numeric name", OP_INSTANCE_PUT, "{\"name\":5}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"instance is a string", OP_INSTANCE_PUT, "\"c1\"", -EINVAL, "command object has no 'name'",
	 NULL},
	{"instance is null", OP_INSTANCE_PUT, "null", -EINVAL, "command object has no 'name'",
	 NULL},

	/* images and aliases */
	{"image aaa", OP_IMAGE_PUT, "{\"fingerprint\":\"aaa\",\"size\":1}", 0, NULL,
	 "{\"instances\":{\"web-2\":{\"name\":\"web-2\"}},\"images\":{\"aaa\":{\"fingerprint\":"
	 "\"aaa\",\"size\":1}}," EMPTY_ALIASES "}"},
	{"image bbb", OP_IMAGE_PUT, "{\"fingerprint\":\"bbb\",\"size\":2}", 0, NULL, NULL},
	{"image without fingerprint", OP_IMAGE_PUT, "{\"size\":3}", -EINVAL,
	 "command object has no 'fingerprint'", NULL},
	{"image with name instead", OP_IMAGE_PUT, "{\"name\":\"ccc\"}", -EINVAL,
	 "command object has no 'fingerprint'", NULL},
	{"alias ubuntu -> aaa", OP_ALIAS_PUT, "{\"name\":\"ubuntu\",\"target\":\"aaa\"}", 0, NULL,
	 NULL},
	{"alias jammy -> aaa", OP_ALIAS_PUT, "{\"name\":\"jammy\",\"target\":\"aaa\"}", 0, NULL,
	 NULL},
	{"alias debian -> bbb", OP_ALIAS_PUT,
	 "{\"name\":\"debian\",\"target\":\"bbb\",\"description\":\"Debian 12\"}", 0, NULL,
	 "{\"instances\":{\"web-2\":{\"name\":\"web-2\"}},\"images\":{\"aaa\":{\"fingerprint\":"
	 "\"aaa\",\"size\":1},\"bbb\":{\"fingerprint\":\"bbb\",\"size\":2}},\"aliases\":{"
	 "\"ubuntu\":{\"name\":\"ubuntu\",\"target\":\"aaa\"},\"jammy\":{\"name\":\"jammy\","
	 "\"target\":\"aaa\"},\"debian\":{\"name\":\"debian\",\"target\":\"bbb\",\"description\":"
	 "\"Debian 12\"}}}"},
	{"alias to a missing image", OP_ALIAS_PUT, "{\"name\":\"x\",\"target\":\"zzz\"}", -ENOENT,
	 "Image 'zzz' not found", NULL},
	{"alias replacing one to a missing image", OP_ALIAS_PUT,
	 "{\"name\":\"ubuntu\",\"target\":\"zzz\"}", -ENOENT, "Image 'zzz' not found", NULL},
	{"alias without name", OP_ALIAS_PUT, "{\"target\":\"aaa\"}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"alias is a string", OP_ALIAS_PUT, "\"ubuntu\"", -EINVAL, "command has no 'target'", NULL},
	{"replacing an image keeps its aliases", OP_IMAGE_PUT,
	 "{\"fingerprint\":\"bbb\",\"size\":22}", 0, NULL,
	 "{\"instances\":{\"web-2\":{\"name\":\"web-2\"}},\"images\":{\"aaa\":{\"fingerprint\":"
	 "\"aaa\",\"size\":1},\"bbb\":{\"fingerprint\":\"bbb\",\"size\":22}},\"aliases\":{"
	 "\"ubuntu\":{\"name\":\"ubuntu\",\"target\":\"aaa\"},\"jammy\":{\"name\":\"jammy\","
	 "\"target\":\"aaa\"},\"debian\":{\"name\":\"debian\",\"target\":\"bbb\",\"description\":"
	 "\"Debian 12\"}}}"},
	{"deleting aaa drops ubuntu and jammy", OP_IMAGE_DELETE, "aaa", 0, NULL,
	 "{\"instances\":{\"web-2\":{\"name\":\"web-2\"}},\"images\":{\"bbb\":{\"fingerprint\":"
	 "\"bbb\",\"size\":22}},\"aliases\":{\"debian\":{\"name\":\"debian\",\"target\":\"bbb\","
	 "\"description\":\"Debian 12\"}}}"},
	{"delete aaa again", OP_IMAGE_DELETE, "aaa", -ENOENT, "Image 'aaa' not found", NULL},
	{"alias to the deleted image", OP_ALIAS_PUT, "{\"name\":\"ubuntu\",\"target\":\"aaa\"}",
	 -ENOENT, "Image 'aaa' not found", NULL},
	{"delete alias debian", OP_ALIAS_DELETE, "debian", 0, NULL,
	 "{\"instances\":{\"web-2\":{\"name\":\"web-2\"}},\"images\":{\"bbb\":{\"fingerprint\":"
	 "\"bbb\",\"size\":22}}," EMPTY_ALIASES "}"},
	{"delete alias again", OP_ALIAS_DELETE, "debian", -ENOENT, "Alias 'debian' not found",
	 NULL},

	/* malformed commands */
	{"empty buffer", OP_RAW, "", -EINVAL, "malformed command", NULL},
	{"truncated JSON", OP_RAW, "{\"op\":\"instance.put\"", -EINVAL, "malformed command", NULL},
	{"trailing garbage", OP_RAW, "{\"op\":\"alias.delete\",\"name\":\"x\"} junk", -EINVAL,
	 "malformed command", NULL},
	{"array", OP_RAW, "[\"instance.put\"]", -EINVAL, "malformed command", NULL},
	{"string", OP_RAW, "\"instance.put\"", -EINVAL, "malformed command", NULL},
	{"null", OP_RAW, "null", -EINVAL, "malformed command", NULL},
	{"duplicate keys", OP_RAW,
	 "{\"op\":\"instance.delete\",\"name\":\"web-2\",\"name\":\"web-2\"}", -EINVAL,
	 "malformed command", NULL},
	{"unknown op", OP_RAW, "{\"op\":\"instance.nuke\",\"name\":\"web-2\"}", -EINVAL,
	 "unknown command 'instance.nuke'", NULL},
	{"op is case sensitive", OP_RAW, "{\"op\":\"Instance.Delete\",\"name\":\"web-2\"}", -EINVAL,
	 "unknown command 'Instance.Delete'", NULL},
	{"no op", OP_RAW, "{\"name\":\"web-2\"}", -EINVAL, "unknown command ''", NULL},
	{"numeric op", OP_RAW, "{\"op\":1,\"name\":\"web-2\"}", -EINVAL, "unknown command ''",
	 NULL},
	{"put without object", OP_RAW, "{\"op\":\"instance.put\"}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"image.put without object", OP_RAW, "{\"op\":\"image.put\"}", -EINVAL,
	 "command object has no 'fingerprint'", NULL},
	{"delete without name", OP_RAW, "{\"op\":\"instance.delete\"}", -EINVAL,
	 "command has no 'name'", NULL},
	{"delete with numeric name", OP_RAW, "{\"op\":\"instance.delete\",\"name\":1}", -EINVAL,
	 "command has no 'name'", NULL},
	{"image.delete without fingerprint", OP_RAW, "{\"op\":\"image.delete\",\"name\":\"bbb\"}",
	 -EINVAL, "command has no 'fingerprint'", NULL},
	{"alias.delete without name", OP_RAW, "{\"op\":\"alias.delete\"}", -EINVAL,
	 "command has no 'name'", NULL},
	{"alias without target", OP_RAW, "{\"op\":\"alias.put\",\"alias\":{\"name\":\"q\"}}",
	 -EINVAL, "command has no 'target'", NULL},
	{"section names are not commands", OP_RAW, "{\"op\":\"instances\"}", -EINVAL,
	 "unknown command 'instances'", NULL},
	{"delete a network that never existed", OP_RAW,
	 "{\"op\":\"network.delete\",\"name\":\"br9\"}", -ENOENT, "Network 'br9' not found", NULL},
	{"delete an ACL that never existed", OP_RAW, "{\"op\":\"acl.delete\",\"name\":\"a\"}",
	 -ENOENT, "Network ACL 'a' not found", NULL},
	{"config without object", OP_RAW, "{\"op\":\"config.put\",\"config\":[]}", -EINVAL,
	 "command has no 'config' object", NULL},
	{"config with a number", OP_RAW,
	 "{\"op\":\"config.put\",\"config\":{\"host.cpu.governor\":1}}", -EINVAL,
	 "config value of 'host.cpu.governor' is not a string", NULL},
	{"network without name", OP_RAW, "{\"op\":\"network.put\",\"network\":{}}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"create over an existing instance", OP_RAW,
	 "{\"op\":\"instance.create\",\"instance\":{\"name\":\"web-2\",\"x\":1}}", -EEXIST,
	 "Instance 'web-2' already exists", NULL},
	{"create without name", OP_RAW, "{\"op\":\"instance.create\",\"instance\":{}}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"update of a missing instance", OP_RAW,
	 "{\"op\":\"instance.update\",\"instance\":{\"name\":\"ghost\"}}", -ENOENT,
	 "Instance 'ghost' not found", NULL},
	{"update of an existing instance", OP_RAW,
	 "{\"op\":\"instance.update\",\"instance\":{\"name\":\"web-2\","
	 "\"kiva_state\":\"ready\"}}",
	 0, NULL, NULL},

	/* the state survived all of that */
	{"final delete", OP_INSTANCE_DELETE, "web-2", 0, NULL,
	 "{\"instances\":{},\"images\":{\"bbb\":{\"fingerprint\":\"bbb\",\"size\":22}},"
	 "\"aliases\":{}}"},
	/* the server config appears with its first put and is replaced as a whole */
	{"config put", OP_RAW,
	 "{\"op\":\"config.put\",\"config\":{\"host.cpu.governor\":\"performance\"}}", 0, NULL,
	 "{\"instances\":{},\"images\":{\"bbb\":{\"fingerprint\":\"bbb\",\"size\":22}},"
	 "\"aliases\":{},\"config\":{\"host.cpu.governor\":\"performance\"}}"},
	{"config replaced", OP_RAW, "{\"op\":\"config.put\",\"config\":{}}", 0, NULL,
	 "{\"instances\":{},\"images\":{\"bbb\":{\"fingerprint\":\"bbb\",\"size\":22}},"
	 "\"aliases\":{},\"config\":{}}"},

	/* snapshots live in the instance record and change only through snapshot.* */
	{"snapshot of a missing instance", OP_RAW,
	 "{\"op\":\"snapshot.put\",\"instance\":\"s1\",\"snapshot\":{\"name\":\"a\"}}", -ENOENT,
	 "Instance 's1' not found", NULL},
	{"instance for snapshots", OP_RAW,
	 "{\"op\":\"instance.create\",\"instance\":{\"name\":\"s1\",\"v\":1}}", 0, NULL, NULL},
	{"snapshot without name", OP_RAW,
	 "{\"op\":\"snapshot.put\",\"instance\":\"s1\",\"snapshot\":{}}", -EINVAL,
	 "command object has no 'name'", NULL},
	{"snapshot put", OP_RAW,
	 "{\"op\":\"snapshot.put\",\"instance\":\"s1\",\"snapshot\":{\"name\":\"a\","
	 "\"volume\":\"x1\"}}",
	 0, NULL, NULL},
	{"instance update keeps the snapshots", OP_RAW,
	 "{\"op\":\"instance.update\",\"instance\":{\"name\":\"s1\",\"v\":2,"
	 "\"snapshots\":{}}}",
	 0, NULL,
	 "{\"instances\":{\"s1\":{\"name\":\"s1\",\"v\":2,\"snapshots\":{\"a\":{\"name\":"
	 "\"a\",\"volume\":\"x1\"}}}},\"images\":{\"bbb\":{\"fingerprint\":\"bbb\","
	 "\"size\":22}},\"aliases\":{},\"config\":{}}"},
	{"rename onto itself", OP_RAW,
	 "{\"op\":\"snapshot.rename\",\"instance\":\"s1\",\"name\":\"a\",\"new_name\":"
	 "\"a\"}",
	 -EEXIST, "Snapshot 'a' already exists", NULL},
	{"rename without new name", OP_RAW,
	 "{\"op\":\"snapshot.rename\",\"instance\":\"s1\",\"name\":\"a\"}", -EINVAL,
	 "command has no 'new_name'", NULL},
	{"snapshot rename", OP_RAW,
	 "{\"op\":\"snapshot.rename\",\"instance\":\"s1\",\"name\":\"a\",\"new_name\":"
	 "\"b\"}",
	 0, NULL,
	 "{\"instances\":{\"s1\":{\"name\":\"s1\",\"v\":2,\"snapshots\":{\"b\":{\"name\":"
	 "\"b\",\"volume\":\"x1\"}}}},\"images\":{\"bbb\":{\"fingerprint\":\"bbb\","
	 "\"size\":22}},\"aliases\":{},\"config\":{}}"},
	{"delete a missing snapshot", OP_RAW,
	 "{\"op\":\"snapshot.delete\",\"instance\":\"s1\",\"name\":\"a\"}", -ENOENT,
	 "Snapshot 'a' not found", NULL},
	{"snapshot delete", OP_RAW,
	 "{\"op\":\"snapshot.delete\",\"instance\":\"s1\",\"name\":\"b\"}", 0, NULL,
	 "{\"instances\":{\"s1\":{\"name\":\"s1\",\"v\":2,\"snapshots\":{}}},\"images\":{"
	 "\"bbb\":{\"fingerprint\":\"bbb\",\"size\":22}},\"aliases\":{},\"config\":{}}"},
};

static json_t *build_step(const struct step *s)
{
	cleanup_json json_t *obj = NULL;

	switch (s->op) {
	case OP_RAW:
		return NULL;
	case OP_INSTANCE_DELETE:
		return store_cmd_instance_delete(s->arg);
	case OP_IMAGE_DELETE:
		return store_cmd_image_delete(s->arg);
	case OP_ALIAS_DELETE:
		return store_cmd_alias_delete(s->arg);
	default:
		break;
	}
	obj = parse(s->arg);
	switch (s->op) {
	case OP_INSTANCE_PUT:
		return store_cmd_instance_put(obj);
	case OP_IMAGE_PUT:
		return store_cmd_image_put(obj);
	case OP_ALIAS_PUT:
		return store_cmd_alias_put(obj);
	default:
		return NULL;
	}
}

static void test_command_table(void **state)
{
	struct store_fsm *fsm = *state;
	uint64_t accepted = 0;

	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		const struct step *s = &steps[i];
		cleanup_free char *before = dump(fsm), *after = NULL;
		uint64_t applied_before = fsm->applied;
		char msg[512] = "";
		int r;

		if (s->op == OP_RAW)
			r = store_fsm_apply(fsm, s->arg, strlen(s->arg), msg, sizeof(msg));
		else
			r = apply_cmd(fsm, build_step(s), msg, sizeof(msg));
		if (r != s->ret)
			fail_msg("step %zu (%s) returned %d, want %d (\"%s\")", i, s->what, r,
				 s->ret, msg);
		after = dump(fsm);
		if (r < 0) {
			if (!streq(msg, s->msg))
				fail_msg("step %zu (%s) said \"%s\", want \"%s\"", i, s->what, msg,
					 s->msg);
			if (!streq(before, after))
				fail_msg("step %zu (%s) was refused but changed the state:\n%s\n%s",
					 i, s->what, before, after);
			assert_int_equal(fsm->applied, applied_before);
			continue;
		}
		accepted++;
		assert_int_equal(fsm->applied, applied_before + 1);
		if (s->state) {
			cleanup_json json_t *want = parse(s->state);

			if (!json_equal(want, fsm->state))
				fail_msg("step %zu (%s): state %s, want %s", i, s->what, after,
					 s->state);
		}
	}
	assert_int_equal(fsm->applied, accepted);
}

/* The builders produce exactly the documented command objects. */
static void test_builders(void **state)
{
	cleanup_json json_t *inst = parse("{\"name\":\"c1\",\"n\":1}");
	cleanup_json json_t *img = parse("{\"fingerprint\":\"f\"}");
	cleanup_json json_t *alias = parse("{\"name\":\"a\",\"target\":\"f\"}");
	const struct {
		json_t *got;
		const char *want;
	} cases[] = {
		{store_cmd_instance_put(inst),
		 "{\"op\":\"instance.put\",\"instance\":{\"name\":\"c1\","
		 "\"n\":1}}"},
		{store_cmd_instance_delete("c1"), "{\"op\":\"instance.delete\",\"name\":\"c1\"}"},
		{store_cmd_image_put(img),
		 "{\"op\":\"image.put\",\"image\":{\"fingerprint\":\"f\"}}"},
		{store_cmd_image_delete("f"), "{\"op\":\"image.delete\",\"fingerprint\":\"f\"}"},
		{store_cmd_alias_put(alias),
		 "{\"op\":\"alias.put\",\"alias\":{\"name\":\"a\",\"target\":\"f\"}}"},
		{store_cmd_alias_delete("a"), "{\"op\":\"alias.delete\",\"name\":\"a\"}"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cleanup_json json_t *want = parse(cases[i].want);

		assert_non_null(cases[i].got);
		if (!json_equal(cases[i].got, want)) {
			cleanup_free char *g = json_dumps(cases[i].got, JSON_COMPACT);

			fail_msg("builder %zu gave %s, want %s", i, g, cases[i].want);
		}
		json_decref(cases[i].got);
	}
	/* the objects are borrowed: still ours, unchanged, with one reference each */
	assert_int_equal(inst->refcount, 1);
	assert_int_equal(img->refcount, 1);
	assert_int_equal(alias->refcount, 1);
}

/* The state holds copies: changing the caller's object afterwards changes nothing. */
static void test_put_copies(void **state)
{
	struct store_fsm *fsm = *state;
	cleanup_json json_t *inst = parse("{\"name\":\"c9\",\"config\":{\"user.a\":\"1\"}}");
	cleanup_json json_t *cmd = store_cmd_instance_put(inst);
	cleanup_free char *s = json_dumps(cmd, JSON_COMPACT);
	cleanup_free char *before = NULL, *after = NULL;
	char msg[64];

	assert_int_equal(store_fsm_apply(fsm, s, strlen(s), msg, sizeof(msg)), 0);
	before = dump(fsm);
	json_object_set_new(json_object_get(inst, "config"), "user.a", json_string("2"));
	json_object_set_new(json_object_get(cmd, "instance"), "name", json_string("zz"));
	after = dump(fsm);
	assert_string_equal(before, after);
	assert_non_null(strstr(after, "\"c9\":{\"config\":{\"user.a\":\"1\"}"));
}

/* Buffers are length-delimited (Raft entries are not NUL-terminated), and a missing or tiny
 * error buffer is safe. */
static void test_apply_buffers(void **state)
{
	struct store_fsm *fsm = *state;
	static const char cmd[] = "{\"op\":\"image.put\",\"image\":{\"fingerprint\":\"ff\"}}";
	char buf[sizeof(cmd) + 16], small[8];
	cleanup_free char *before = NULL, *after = NULL;

	memcpy(buf, cmd, sizeof(cmd) - 1);
	memcpy(buf + sizeof(cmd) - 1, "GARBAGE-GARBAGE", 16);
	assert_int_equal(store_fsm_apply(fsm, buf, sizeof(cmd) - 1, NULL, 0), 0);
	assert_non_null(json_object_get(json_object_get(fsm->state, "images"), "ff"));
	/* one byte short is malformed */
	before = dump(fsm);
	assert_int_equal(store_fsm_apply(fsm, buf, sizeof(cmd) - 2, NULL, 0), -EINVAL);
	/* a small error buffer is truncated, NUL-terminated */
	memset(small, 'X', sizeof(small));
	assert_int_equal(store_fsm_apply(fsm, "{\"op\":\"zap\"}", 12, small, sizeof(small)),
			 -EINVAL);
	assert_string_equal(small, "unknown");
	assert_int_equal(store_fsm_apply(fsm, "{\"op\":\"zap\"}", 12, small, 0), -EINVAL);
	after = dump(fsm);
	assert_string_equal(before, after);
}

/* ---- snapshot and restore ---- */

static void fill(struct store_fsm *fsm)
{
	static const char *const cmds[] = {
		("{\"op\":\"instance.put\",\"instance\":{\"name\":\"c1\",\"status\":\"Running\","
		 "\"config\":{\"limits.memory\":\"64MB\"},\"devices\":{}}}"),
		"{\"op\":\"instance.put\",\"instance\":{\"name\":\"c2\",\"unicode\":\"h\\u00e9\"}}",
		"{\"op\":\"image.put\",\"image\":{\"fingerprint\":\"abc123\",\"size\":123456789012}}",
		"{\"op\":\"alias.put\",\"alias\":{\"name\":\"ubuntu/22.04\",\"target\":\"abc123\"}}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		assert_int_equal(apply_str(fsm, cmds[i]), 0);
}

static void test_snapshot_restore(void **state)
{
	struct store_fsm *fsm = *state;
	struct store_fsm fresh, other;
	cleanup_free char *snap = NULL, *snap2 = NULL, *snap3 = NULL;
	size_t len;

	fill(fsm);
	assert_int_equal(store_fsm_snapshot(fsm, &snap, &len), 0);

	/* into a fresh machine: equal state, byte-identical snapshot */
	assert_int_equal(store_fsm_init(&fresh), 0);
	assert_int_equal(store_fsm_restore(&fresh, snap, len), 0);
	assert_true(json_equal(fresh.state, fsm->state));
	assert_int_equal(store_fsm_snapshot(&fresh, &snap2, &len), 0);
	assert_string_equal(snap2, snap);
	/* the restored machine keeps working: aliases still follow their image */
	assert_int_equal(apply_str(&fresh, "{\"op\":\"image.delete\",\"fingerprint\":\"abc123\"}"),
			 0);
	assert_int_equal(json_object_size(json_object_get(fresh.state, "aliases")), 0);
	store_fsm_done(&fresh);

	/* into a machine with other content: replaced, not merged */
	assert_int_equal(store_fsm_init(&other), 0);
	assert_int_equal(
		apply_str(&other, "{\"op\":\"instance.put\",\"instance\":{\"name\":\"zz\"}}"), 0);
	assert_int_equal(store_fsm_restore(&other, snap, strlen(snap)), 0);
	assert_int_equal(store_fsm_snapshot(&other, &snap3, &len), 0);
	assert_string_equal(snap3, snap);
	store_fsm_done(&other);
}

static void test_restore_refused(void **state)
{
	struct store_fsm *fsm = *state;
	static const char *const bad[] = {
		"",
		"{",
		"null",
		"[]",
		"\"state\"",
		"{}",
		"{\"instances\":{},\"images\":{}}",
		"{\"instances\":{},\"aliases\":{}}",
		"{\"images\":{},\"aliases\":{}}",
		"{\"instances\":[],\"images\":{},\"aliases\":{}}",
		"{\"instances\":{},\"images\":null,\"aliases\":{}}",
		"{\"instances\":{},\"images\":{},\"aliases\":\"x\"}",
		"{\"instances\":{},\"images\":{},\"aliases\":{}} trailing",
		"\x89PNG\r\n\x1a\n",
	};
	cleanup_free char *before = NULL;

	fill(fsm);
	before = dump(fsm);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_free char *after = NULL;
		int r = store_fsm_restore(fsm, bad[i], strlen(bad[i]));

		if (r != -EINVAL)
			fail_msg("store_fsm_restore(\"%s\") returned %d, want -EINVAL", bad[i], r);
		after = dump(fsm);
		if (!streq(before, after))
			fail_msg("refused restore of \"%s\" changed the state to %s", bad[i],
				 after);
	}
	/* a truncated real snapshot is refused too */
	assert_int_equal(store_fsm_restore(fsm, before, strlen(before) - 1), -EINVAL);
	/* and the machine still applies commands */
	assert_int_equal(apply_str(fsm, "{\"op\":\"alias.delete\",\"name\":\"ubuntu/22.04\"}"), 0);
}

/* ---- determinism over a random sequence ---- */

#define N_INST 8
#define N_IMG 5
#define N_ALIAS 6
#define N_CMDS 2000

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ULL;
}

static unsigned rng_below(struct rng *r, unsigned n)
{
	return (unsigned)(rng_next(r) >> 33) % n;
}

/* What the machine should hold: presence of each name and each alias' target. */
struct model {
	bool inst[N_INST];
	bool img[N_IMG];
	int alias[N_ALIAS]; /* target image, -1 when absent */
};

static const char *const bad_cmds[] = {
	"",
	"{",
	"[]",
	"{\"op\":\"instance.explode\"}",
	"{\"op\":\"instance.put\"}",
	"{\"op\":\"instance.put\",\"instance\":{\"name\":\"\"}}",
	"{\"op\":\"image.put\",\"image\":{\"size\":1}}",
	"{\"op\":5}",
	"{\"op\":\"instance.put\",\"op\":\"instance.put\",\"instance\":{\"name\":\"c0\"}}",
	"{}",
};

/* Generates command i into *ret (caller frees) and the result the model predicts; updates the
 * model as if it were accepted. */
static int gen_cmd(struct rng *rng, struct model *m, char **ret)
{
	unsigned pick = rng_below(rng, 100), i;
	char name[16], target[16];
	json_t *obj, *cmd;
	int want = 0;

	if (pick < 25) {
		i = rng_below(rng, N_INST);
		snprintf(name, sizeof(name), "c%u", i);
		obj = json_pack("{s:s,s:i,s:s}", "name", name, "gen", (int)rng_below(rng, 1000),
				"status", rng_below(rng, 2) ? "Running" : "Stopped");
		cmd = store_cmd_instance_put(obj);
		json_decref(obj);
		m->inst[i] = true;
	} else if (pick < 40) {
		i = rng_below(rng, N_INST);
		snprintf(name, sizeof(name), "c%u", i);
		cmd = store_cmd_instance_delete(name);
		want = m->inst[i] ? 0 : -ENOENT;
		m->inst[i] = false;
	} else if (pick < 52) {
		i = rng_below(rng, N_IMG);
		snprintf(name, sizeof(name), "f%u", i);
		obj = json_pack("{s:s,s:I}", "fingerprint", name, "size",
				(json_int_t)rng_below(rng, 1u << 30));
		cmd = store_cmd_image_put(obj);
		json_decref(obj);
		m->img[i] = true;
	} else if (pick < 60) {
		i = rng_below(rng, N_IMG);
		snprintf(name, sizeof(name), "f%u", i);
		cmd = store_cmd_image_delete(name);
		want = m->img[i] ? 0 : -ENOENT;
		m->img[i] = false;
		for (unsigned a = 0; a < N_ALIAS; a++)
			if (m->alias[a] == (int)i)
				m->alias[a] = -1;
	} else if (pick < 75) {
		unsigned t = rng_below(rng, N_IMG);

		i = rng_below(rng, N_ALIAS);
		snprintf(name, sizeof(name), "a%u", i);
		snprintf(target, sizeof(target), "f%u", t);
		obj = json_pack("{s:s,s:s}", "name", name, "target", target);
		cmd = store_cmd_alias_put(obj);
		json_decref(obj);
		want = m->img[t] ? 0 : -ENOENT;
		if (want == 0)
			m->alias[i] = (int)t;
	} else if (pick < 85) {
		i = rng_below(rng, N_ALIAS);
		snprintf(name, sizeof(name), "a%u", i);
		cmd = store_cmd_alias_delete(name);
		want = m->alias[i] >= 0 ? 0 : -ENOENT;
		m->alias[i] = -1;
	} else {
		*ret = strdup(bad_cmds[rng_below(rng, ARRAY_SIZE(bad_cmds))]);
		assert_non_null(*ret);
		return -EINVAL;
	}
	assert_non_null(cmd);
	*ret = json_dumps(cmd, JSON_COMPACT);
	json_decref(cmd);
	assert_non_null(*ret);
	return want;
}

static void check_model(struct store_fsm *fsm, const struct model *m)
{
	json_t *inst = json_object_get(fsm->state, "instances");
	json_t *img = json_object_get(fsm->state, "images");
	json_t *aliases = json_object_get(fsm->state, "aliases");
	size_t n_inst = 0, n_img = 0, n_alias = 0;
	char name[16];

	for (unsigned i = 0; i < N_INST; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(!!json_object_get(inst, name), m->inst[i]);
		n_inst += m->inst[i];
	}
	for (unsigned i = 0; i < N_IMG; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		assert_int_equal(!!json_object_get(img, name), m->img[i]);
		n_img += m->img[i];
	}
	for (unsigned i = 0; i < N_ALIAS; i++) {
		json_t *a;

		snprintf(name, sizeof(name), "a%u", i);
		a = json_object_get(aliases, name);
		assert_int_equal(!!a, m->alias[i] >= 0);
		if (a) {
			char target[16];

			snprintf(target, sizeof(target), "f%d", m->alias[i]);
			assert_string_equal(json_get_str(a, "target", ""), target);
			n_alias++;
		}
	}
	assert_int_equal(json_object_size(inst), n_inst);
	assert_int_equal(json_object_size(img), n_img);
	assert_int_equal(json_object_size(aliases), n_alias);
}

static void test_determinism(void **state)
{
	static const uint64_t seeds[] = {0x4b495641, 1, 0x9e3779b97f4a7c15ULL};

	for (size_t k = 0; k < ARRAY_SIZE(seeds); k++) {
		struct store_fsm a, b, c;
		struct model m;
		struct rng rng = {seeds[k]};
		unsigned counts[3] = {0}; /* accepted, -ENOENT, -EINVAL */
		cleanup_free char *sa = NULL, *sb = NULL, *sc = NULL;
		size_t len;

		assert_int_equal(store_fsm_init(&a), 0);
		assert_int_equal(store_fsm_init(&b), 0);
		assert_int_equal(store_fsm_init(&c), 0);
		for (unsigned i = 0; i < N_ALIAS; i++)
			m.alias[i] = -1;
		memset(m.inst, 0, sizeof(m.inst));
		memset(m.img, 0, sizeof(m.img));

		for (unsigned i = 0; i < N_CMDS; i++) {
			cleanup_free char *cmd = NULL;
			char ea[512], eb[512];
			int want = gen_cmd(&rng, &m, &cmd);
			int ra = store_fsm_apply(&a, cmd, strlen(cmd), ea, sizeof(ea));
			int rb = store_fsm_apply(&b, cmd, strlen(cmd), eb, sizeof(eb));

			if (ra != want)
				fail_msg("seed %#" PRIx64 " cmd %u %s: got %d, model says %d (%s)",
					 seeds[k], i, cmd, ra, want, ea);
			assert_int_equal(rb, ra);
			if (ra < 0)
				assert_string_equal(eb, ea);
			counts[ra == 0 ? 0 : ra == -ENOENT ? 1 : 2]++;
			/* c joins half-way from a snapshot of a, as a lagging Raft node does */
			if (i == N_CMDS / 2) {
				cleanup_free char *snap = NULL;

				assert_int_equal(store_fsm_snapshot(&a, &snap, &len), 0);
				assert_int_equal(store_fsm_restore(&c, snap, len), 0);
			} else if (i > N_CMDS / 2) {
				assert_int_equal(store_fsm_apply(&c, cmd, strlen(cmd), NULL, 0),
						 ra);
			}
			if (i % 97 == 0)
				check_model(&a, &m);
		}
		check_model(&a, &m);
		assert_int_equal(a.applied, counts[0]);
		assert_int_equal(b.applied, counts[0]);
		/* the sequence exercised every outcome */
		assert_true(counts[0] > N_CMDS / 4);
		assert_true(counts[1] > 50);
		assert_true(counts[2] > 50);

		assert_int_equal(store_fsm_snapshot(&a, &sa, &len), 0);
		assert_int_equal(store_fsm_snapshot(&b, &sb, &len), 0);
		assert_int_equal(store_fsm_snapshot(&c, &sc, &len), 0);
		assert_string_equal(sa, sb);
		assert_string_equal(sa, sc);
		store_fsm_done(&a);
		store_fsm_done(&b);
		store_fsm_done(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init, fsm_setup, fsm_teardown),
		cmocka_unit_test_setup_teardown(test_command_table, fsm_setup, fsm_teardown),
		cmocka_unit_test(test_builders),
		cmocka_unit_test_setup_teardown(test_put_copies, fsm_setup, fsm_teardown),
		cmocka_unit_test_setup_teardown(test_apply_buffers, fsm_setup, fsm_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_restore, fsm_setup, fsm_teardown),
		cmocka_unit_test_setup_teardown(test_restore_refused, fsm_setup, fsm_teardown),
		cmocka_unit_test(test_determinism),
	};

	return cmocka_run_group_tests_name("store-fsm", tests, NULL, NULL);
}
