/* Unit tests of proto-name.c and proto-config.c: instance and alias names (LXD's hostname-label
 * rules), per-key validation of instance config with the message the user reads, whole-object
 * validation (types, volatile.* keys), limit extraction, and CPU list parse/format round trips.
 * Table-driven; pure functions only. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "basic-error.h"
#include "basic-json.h"
#include "basic-macro.h"
#include "proto-config.h"
#include "proto-name.h"

/* A host with 4 CPUs and 1GiB of memory. */
static const struct proto_host host4 = {.ncpus = 4, .memory_bytes = 1073741824ULL};

#define MSG(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Fails unless every fragment occurs in msg. */
static void assert_msg_has(const char *what, const char *msg, const char *const *fragments)
{
	for (size_t i = 0; fragments && fragments[i]; i++)
		if (!strstr(msg, fragments[i]))
			fail_msg("%s: message \"%s\" lacks \"%s\"", what, msg, fragments[i]);
}

/* ---- instance names ---- */

#define S63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"
#define S64 S63 "d"

struct name_case {
	const char *name;
	int ret;
	const char *const *msg;
};

static const struct name_case instance_names[] = {
	{"c1", 0, NULL},
	{"a", 0, NULL},
	{"Z", 0, NULL},
	{"web-2", 0, NULL},
	{"web--2", 0, NULL},
	{"A1-b2-C3", 0, NULL},
	{S63, 0, NULL},
	{"", -EINVAL, MSG("Instance name is required")},
	{NULL, -EINVAL, MSG("Instance name is required")},
	{"1abc", -EINVAL, MSG("'1abc'", "must start with a letter")},
	{"9", -EINVAL, MSG("must start with a letter")},
	{"-a", -EINVAL, MSG("'-a'", "must start with a letter")},
	{"a-", -EINVAL, MSG("'a-'", "must not end with '-'")},
	{"-", -EINVAL, MSG("'-'")},
	{"a_b", -EINVAL, MSG("'a_b'", "only letters, digits and '-'")},
	{"a.b", -EINVAL, MSG("'a.b'", "only letters, digits and '-'")},
	{"a b", -EINVAL, MSG("only letters, digits and '-'")},
	{"a/b", -EINVAL, MSG("only letters, digits and '-'")},
	{"../etc", -EINVAL, MSG("only letters, digits and '-'")},
	{"a\nb", -EINVAL, MSG("only letters, digits and '-'")},
	{"caf\xc3\xa9", -EINVAL, MSG("only letters, digits and '-'")},
	{"\xc3\xa9t\xc3\xa9", -EINVAL, MSG("only letters, digits and '-'")},
	{"a\x7f", -EINVAL, MSG("only letters, digits and '-'")},
	{S64, -EINVAL, MSG("longer than 63 characters")},
};

static void run_name_cases(const char *what, int (*fn)(const char *, struct kiva_error *),
			   const struct name_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct kiva_error err = {0};
		int r = fn(cases[i].name, &err);

		if (r != cases[i].ret)
			fail_msg("%s(\"%s\") returned %d, want %d (%s)", what,
				 cases[i].name ? cases[i].name : "(null)", r, cases[i].ret,
				 err.msg);
		if (r == 0) {
			assert_int_equal(err.code, 0);
			assert_string_equal(err.msg, "");
		} else {
			assert_int_equal(err.code, r);
			assert_msg_has(what, err.msg, cases[i].msg);
		}
		/* a NULL reterr is allowed */
		assert_int_equal(fn(cases[i].name, NULL), cases[i].ret);
	}
}

static void test_instance_name(void **state)
{
	run_name_cases("proto_instance_name_validate", proto_instance_name_validate, instance_names,
		       ARRAY_SIZE(instance_names));
}

static char long_ok[256], long_bad[257]; /* 255 and 256 'a's, filled in by the test */

static const struct name_case alias_names[] = {
	{"ubuntu-22.04", 0, NULL},
	{"debian_12", 0, NULL},
	{"a", 0, NULL},
	{"x:y", 0, NULL},
	{long_ok, 0, NULL},
	{"", -EINVAL, MSG("Alias name is required")},
	{NULL, -EINVAL, MSG("Alias name is required")},
	{"a b", -EINVAL, MSG("'a b'")},
	{"debian/bookworm", 0, NULL},
	{"a\"b", -EINVAL, MSG("Invalid alias name")},
	{"a\\b", -EINVAL, MSG("Invalid alias name")},
	{"a\tb", -EINVAL, MSG("Invalid alias name")},
	{"a\x7f", -EINVAL, MSG("Invalid alias name")},
	{long_bad, -EINVAL, MSG("longer than 255 characters")},
};

static void test_alias_name(void **state)
{
	memset(long_ok, 'a', 255);
	memset(long_bad, 'a', 256);
	run_name_cases("proto_alias_name_validate", proto_alias_name_validate, alias_names,
		       ARRAY_SIZE(alias_names));
}

/* ---- one key ---- */

struct key_case {
	const char *key, *value;
	const struct proto_host *host;
	int ret;
	const char *const *msg; /* fragments the user must see */
};

static const struct key_case key_cases[] = {
	/* limits.memory */
	{"limits.memory", "64MB", &host4, 0, NULL},
	{"limits.memory", "4MiB", &host4, 0, NULL},
	{"limits.memory", "512MiB", &host4, 0, NULL},
	{"limits.memory", "1GiB", &host4, 0, NULL},
	{"limits.memory", "1.5GB", NULL, 0, NULL},
	{"limits.memory", NULL, &host4, 0, NULL},
	{"limits.memory", "banana", &host4, -EINVAL,
	 MSG("limits.memory", "'banana'", "expected a size")},
	{"limits.memory", "", &host4, -EINVAL, MSG("limits.memory", "expected a size")},
	{"limits.memory", "-1", &host4, -EINVAL, MSG("limits.memory", "'-1'")},
	{"limits.memory", "0", &host4, -EINVAL, MSG("limits.memory", "'0'", "at least 4MiB")},
	{"limits.memory", "1MB", &host4, -EINVAL, MSG("limits.memory", "'1MB'", "at least 4MiB")},
	{"limits.memory", "4194303", &host4, -EINVAL, MSG("at least 4MiB")},
	/* more than the host has: admission control refuses it, with the capacity numbers */
	{"limits.memory", "2GiB", &host4, 0, NULL},
	{"limits.memory", "10QB", &host4, -EINVAL, MSG("limits.memory", "'10QB'")},
	/* limits.cpu: a count */
	{"limits.cpu", "1", &host4, 0, NULL},
	{"limits.cpu", "4", &host4, 0, NULL},
	{"limits.cpu", "64", NULL, 0, NULL},
	{"limits.cpu", "0", &host4, -EINVAL, MSG("limits.cpu", "'0'", "at least 1")},
	{"limits.cpu", "-1", &host4, -EINVAL, MSG("limits.cpu", "'-1'")},
	{"limits.cpu", "5", &host4, 0, NULL}, /* admission control's to refuse */
	{"limits.cpu", "abc", &host4, -EINVAL, MSG("limits.cpu", "'abc'", "expected a CPU count")},
	{"limits.cpu", "", &host4, -EINVAL, MSG("limits.cpu")},
	{"limits.cpu", "1.5", &host4, -EINVAL, MSG("limits.cpu", "'1.5'")},
	{"limits.cpu", " 2", &host4, -EINVAL, MSG("limits.cpu")},
	/* limits.cpu: a list */
	{"limits.cpu", "0-1,3", &host4, 0, NULL},
	{"limits.cpu", "0-3", &host4, 0, NULL},
	{"limits.cpu", "2", &host4, 0, NULL},
	{"limits.cpu", "3,0", &host4, 0, NULL},
	{"limits.cpu", "0-1,4", &host4, -EINVAL,
	 MSG("limits.cpu", "'0-1,4'", "host has CPUs 0-3 only")},
	{"limits.cpu", "0-7", &host4, -EINVAL, MSG("host has CPUs 0-3 only")},
	{"limits.cpu", "0-5000", &host4, -EINVAL, MSG("host has CPUs 0-3 only")},
	{"limits.cpu", "1-0", &host4, -EINVAL, MSG("limits.cpu", "'1-0'", "CPU list")},
	{"limits.cpu", "0,,1", &host4, -EINVAL, MSG("limits.cpu", "'0,,1'")},
	{"limits.cpu", "0,", &host4, -EINVAL, MSG("limits.cpu", "'0,'")},
	{"limits.cpu", ",0", &host4, -EINVAL, MSG("limits.cpu")},
	{"limits.cpu", "0-", &host4, -EINVAL, MSG("limits.cpu")},
	{"limits.cpu", "0-1-2", &host4, -EINVAL, MSG("limits.cpu")},
	{"limits.cpu", "a-b", &host4, -EINVAL, MSG("limits.cpu")},
	/* limits.processes */
	{"limits.processes", "1", &host4, 0, NULL},
	{"limits.processes", "500", &host4, 0, NULL},
	{"limits.processes", "9223372036854775807", &host4, 0, NULL},
	{"limits.processes", "0", &host4, -EINVAL,
	 MSG("limits.processes", "'0'", "expected a positive integer")},
	{"limits.processes", "-5", &host4, -EINVAL, MSG("limits.processes", "positive integer")},
	{"limits.processes", "many", &host4, -EINVAL, MSG("limits.processes", "'many'")},
	{"limits.processes", "10k", &host4, -EINVAL, MSG("limits.processes")},
	{"limits.processes", "9223372036854775808", &host4, -EINVAL, MSG("limits.processes")},
	/* booleans */
	{"boot.autostart", "true", &host4, 0, NULL},
	{"boot.autostart", "false", &host4, 0, NULL},
	{"boot.autostart", NULL, &host4, 0, NULL},
	{"boot.autostart", "yes", &host4, 0, NULL},
	{"boot.autostart", "TRUE", &host4, 0, NULL},
	{"boot.autostart", "Off", &host4, 0, NULL},
	{"boot.autostart", "maybe", &host4, -EINVAL,
	 MSG("boot.autostart", "'maybe'", "expected true or false")},
	{"boot.autostart", "", &host4, -EINVAL, MSG("boot.autostart")},
	{"security.nesting", "true", &host4, 0, NULL},
	{"security.nesting", "1", &host4, 0, NULL},
	/* free-form namespaces */
	{"user.foo", "anything at all", &host4, 0, NULL},
	{"user.meta-data", "", &host4, 0, NULL},
	{"user.a.b.c", "\xc3\xa9", &host4, 0, NULL},
	{"environment.PATH", "/usr/bin", &host4, 0, NULL},
	{"image.os", "Ubuntu", &host4, 0, NULL},
	{"volatile.base_image", "abc", &host4, 0, NULL},
	/* unknown keys */
	{"user.", "x", &host4, -EINVAL, MSG("Unknown configuration key", "user.")},
	{"limits.memory.swap", "true", &host4, -EINVAL,
	 MSG("Unknown configuration key", "limits.memory.swap")},
	{"limits.cpus", "2", &host4, -EINVAL, MSG("Unknown configuration key: limits.cpus")},
	{"raw.lxc", "lxc.mount.entry = / /mnt", &host4, -EINVAL,
	 MSG("Unknown configuration key", "raw.lxc")},
	{"LIMITS.MEMORY", "64MB", &host4, -EINVAL, MSG("Unknown configuration key")},
	{"", "x", &host4, -EINVAL, MSG("Empty configuration key")},
	{NULL, "x", &host4, -EINVAL, MSG("Empty configuration key")},
};

static void test_validate_key(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(key_cases); i++) {
		const struct key_case *c = &key_cases[i];
		struct kiva_error err = {0};
		int r = proto_config_validate_key(c->key, c->value, c->host, &err);
		char what[128];

		snprintf(what, sizeof(what), "%s=%s", c->key ? c->key : "(null)",
			 c->value ? c->value : "(unset)");
		if (r != c->ret)
			fail_msg("proto_config_validate_key(%s) returned %d, want %d (\"%s\")",
				 what, r, c->ret, err.msg);
		if (r == 0) {
			assert_string_equal(err.msg, "");
		} else {
			assert_int_equal(err.code, r);
			assert_msg_has(what, err.msg, c->msg);
		}
		assert_int_equal(proto_config_validate_key(c->key, c->value, c->host, NULL),
				 c->ret);
	}
}

/* limits.cpu counts beyond the bitmap (1024) or beyond 32 bits must say how many CPUs the host
 * has, not "must be at least 1", and name the key. */
static void test_validate_cpu_too_many(void **state)
{
	static const char *const values[] = {"1025", "2000", "4294967297", "99999999999999999999"};

	for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
		struct kiva_error err = {0};
		int r = proto_config_validate_key("limits.cpu", values[i], &host4, &err);

		assert_int_equal(r, -EINVAL);
		assert_msg_has(values[i], err.msg, MSG("limits.cpu", values[i]));
		assert_msg_has(values[i], err.msg, MSG("host has"));
	}
}

/* ---- a whole config object ---- */

struct config_case {
	const char *what;
	const char *json; /* NULL: pass a NULL config */
	bool allow_volatile;
	int ret;
	const char *const *msg;
};

static const struct config_case config_cases[] = {
	{"null config", NULL, false, 0, NULL},
	{"empty", "{}", false, 0, NULL},
	{"all known keys",
	 "{\"limits.memory\":\"64MB\",\"limits.cpu\":\"0-1,3\",\"limits.processes\":\"100\","
	 "\"boot.autostart\":\"true\",\"security.nesting\":\"false\",\"user.x\":\"y\"}",
	 false, 0, NULL},
	{"volatile allowed for the server", "{\"volatile.idmap.base\":\"100000\"}", true, 0, NULL},
	{"volatile refused for users", "{\"volatile.idmap.base\":\"100000\"}", false, -EINVAL,
	 MSG("volatile.idmap.base", "set by the server only")},
	{"volatile among valid keys", "{\"user.a\":\"1\",\"volatile.x\":\"1\"}", false, -EINVAL,
	 MSG("volatile.x")},
	{"integer value", "{\"limits.cpu\":2}", false, -EINVAL,
	 MSG("limits.cpu", "expected a string")},
	{"boolean value", "{\"boot.autostart\":true}", false, -EINVAL,
	 MSG("boot.autostart", "expected a string")},
	{"null value", "{\"user.x\":null}", false, -EINVAL, MSG("user.x", "expected a string")},
	{"object value", "{\"user.x\":{}}", false, -EINVAL, MSG("user.x", "expected a string")},
	{"array config", "[\"limits.cpu\"]", false, -EINVAL, MSG("expected an object")},
	{"string config", "\"limits.cpu=2\"", false, -EINVAL, MSG("expected an object")},
	{"bad value", "{\"user.ok\":\"1\",\"limits.memory\":\"banana\"}", false, -EINVAL,
	 MSG("limits.memory", "'banana'")},
	{"scheduler keys",
	 "{\"limits.cpu.nodes\":\"0-1\",\"limits.cpu.reserve\":\"true\","
	 "\"security.sensitive\":\"yes\"}",
	 false, 0, NULL},
	{"bad node list", "{\"limits.cpu.nodes\":\"one\"}", false, -EINVAL,
	 MSG("limits.cpu.nodes", "'one'", "NUMA node ids")},
	{"node beyond 63", "{\"limits.cpu.nodes\":\"64\"}", false, -EINVAL,
	 MSG("limits.cpu.nodes")},
	{"disk size", "{\"limits.disk\":\"10GB\"}", false, 0, NULL},
	{"snapshot keys",
	 "{\"snapshots.schedule\":\"0 */6 * * *\",\"snapshots.expiry\":\"1w 3d\","
	 "\"snapshots.pattern\":\"auto-%d\"}",
	 false, 0, NULL},
	{"bad schedule", "{\"snapshots.schedule\":\"61 * * * *\"}", false, -EINVAL,
	 MSG("snapshots.schedule", "minute 61")},
	{"bad expiry", "{\"snapshots.expiry\":\"2 days\"}", false, -EINVAL,
	 MSG("snapshots.expiry")},
	{"bad pattern", "{\"snapshots.pattern\":\"a/%d\"}", false, -EINVAL,
	 MSG("snapshots.pattern", "'/' is not allowed")},
	{"bad disk size", "{\"limits.disk\":\"lots\"}", false, -EINVAL,
	 MSG("limits.disk", "'lots'", "expected a size")},
	{"zero disk size", "{\"limits.disk\":\"0\"}", false, -EINVAL, MSG("limits.disk", "'0'")},
	{"bad reserve", "{\"limits.cpu.reserve\":\"maybe\"}", false, -EINVAL,
	 MSG("limits.cpu.reserve", "true or false")},
	{"unknown key", "{\"limits.memroy\":\"64MB\"}", false, -EINVAL,
	 MSG("Unknown configuration key", "limits.memroy")},
};

static void test_validate_config(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_cases); i++) {
		const struct config_case *c = &config_cases[i];
		cleanup_json json_t *cfg = NULL;
		struct kiva_error err = {0};
		int r;

		if (c->json) {
			cfg = json_loads(c->json, JSON_DECODE_ANY, NULL);
			assert_non_null(cfg);
		}
		r = proto_config_validate(cfg, &host4, c->allow_volatile, &err);
		if (r != c->ret)
			fail_msg("proto_config_validate(%s) returned %d, want %d (\"%s\")", c->what,
				 r, c->ret, err.msg);
		if (r < 0) {
			assert_int_equal(err.code, r);
			assert_msg_has(c->what, err.msg, c->msg);
		}
	}
}

/* ---- limits ---- */

struct limits_case {
	const char *json;
	int ret;
	struct proto_limits want;
	const char *const *msg;
};

static const struct limits_case limits_cases[] = {
	{"{}", 0, {0}, NULL},
	{"{\"user.x\":\"y\",\"boot.autostart\":\"true\"}", 0, {0}, NULL},
	{"{\"limits.memory\":\"64MB\"}", 0, {.memory_bytes = 64000000}, NULL},
	{"{\"limits.memory\":\"1GiB\",\"limits.processes\":\"500\"}",
	 0,
	 {.memory_bytes = 1073741824, .processes = 500},
	 NULL},
	{"{\"limits.cpu\":\"2\"}", 0, {.cpu_count = 2}, NULL},
	{"{\"limits.cpu\":\"0-1,3\"}",
	 0,
	 {.cpu_count = 3, .cpu_pinned = true, .cpuset = "0-1,3"},
	 NULL},
	{"{\"limits.cpu\":\"3,1,2\"}",
	 0,
	 {.cpu_count = 3, .cpu_pinned = true, .cpuset = "1-3"},
	 NULL},
	{"{\"limits.cpu\":\"0,2-3,2,0\"}",
	 0,
	 {.cpu_count = 3, .cpu_pinned = true, .cpuset = "0,2-3"},
	 NULL},
	{"{\"limits.cpu\":\"0-1023\"}",
	 0,
	 {.cpu_count = 1024, .cpu_pinned = true, .cpuset = "0-1023"},
	 NULL},
	{"{\"limits.memory\":\"banana\"}", -EINVAL, {0}, MSG("limits.memory", "'banana'")},
	{"{\"limits.processes\":\"0\"}", -EINVAL, {0}, MSG("limits.processes", "'0'")},
	{"{\"limits.cpu\":\"0\"}", -EINVAL, {0}, MSG("limits.cpu", "'0'")},
	{"{\"limits.cpu\":\"1-0\"}", -EINVAL, {0}, MSG("limits.cpu", "'1-0'")},
	{"{\"limits.cpu\":\"0-1024\"}", -EINVAL, {0}, MSG("limits.cpu")},
};

static void test_limits_from_config(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(limits_cases); i++) {
		const struct limits_case *c = &limits_cases[i];
		cleanup_json json_t *cfg = json_loads(c->json, 0, NULL);
		struct proto_limits got, untouched;
		struct kiva_error err = {0};
		int r;

		assert_non_null(cfg);
		memset(&got, 0xa5, sizeof(got));
		untouched = got;
		r = proto_limits_from_config(cfg, &got, &err);
		if (r != c->ret)
			fail_msg("proto_limits_from_config(%s) returned %d, want %d (\"%s\")",
				 c->json, r, c->ret, err.msg);
		if (r < 0) {
			assert_msg_has(c->json, err.msg, c->msg);
			assert_memory_equal(&got, &untouched,
					    sizeof(got)); /* ret_ only on success */
			continue;
		}
		if (got.memory_bytes != c->want.memory_bytes ||
		    got.cpu_count != c->want.cpu_count || got.cpu_pinned != c->want.cpu_pinned ||
		    got.processes != c->want.processes || !streq(got.cpuset, c->want.cpuset))
			fail_msg("proto_limits_from_config(%s) = {mem %" PRIu64
				 ", cpus %u, pinned %d "
				 "\"%s\", procs %" PRId64 "}",
				 c->json, got.memory_bytes, got.cpu_count, got.cpu_pinned,
				 got.cpuset, got.processes);
	}
}

/* ---- CPU lists ---- */

struct cpuset_case {
	const char *in;
	unsigned nbits;
	int ret;
	unsigned count;
	const char *normalized;
};

static const struct cpuset_case cpuset_cases[] = {
	{"0", 4, 0, 1, "0"},
	{"3", 4, 0, 1, "3"},
	{"0-3", 4, 0, 4, "0-3"},
	{"0-3,5", 8, 0, 5, "0-3,5"},
	{"3,1,2", 4, 0, 3, "1-3"},
	{"0,2,4,6", 8, 0, 4, "0,2,4,6"},
	{"0-1,3", 4, 0, 3, "0-1,3"},
	{"1,1,1", 4, 0, 1, "1"},
	{"0-3,2-5", 8, 0, 6, "0-5"},
	{"5-5", 8, 0, 1, "5"},
	{"0,1", 8, 0, 2, "0-1"},
	{"7,6,5,4,3,2,1,0", 8, 0, 8, "0-7"},
	{"62-65", 128, 0, 4, "62-65"},
	{"63,64", 128, 0, 2, "63-64"},
	{"0-127", 128, 0, 128, "0-127"},
	{"1023", PROTO_CPU_MAX, 0, 1, "1023"},
	{"0-1023", PROTO_CPU_MAX, 0, 1024, "0-1023"},
	{"0,2-4,1000-1002", PROTO_CPU_MAX, 0, 7, "0,2-4,1000-1002"},
	{"007", 8, 0, 1, "7"},
	/* out of range */
	{"4", 4, -ERANGE, 0, NULL},
	{"0-4", 4, -ERANGE, 0, NULL},
	{"1024", PROTO_CPU_MAX, -ERANGE, 0, NULL},
	{"99999999999999999999999", 8, -ERANGE, 0, NULL},
	/* syntax */
	{"", 8, -EINVAL, 0, NULL},
	{",", 8, -EINVAL, 0, NULL},
	{"0,", 8, -EINVAL, 0, NULL},
	{",0", 8, -EINVAL, 0, NULL},
	{"0,,1", 8, -EINVAL, 0, NULL},
	{"1-0", 8, -EINVAL, 0, NULL},
	{"0-", 8, -EINVAL, 0, NULL},
	{"-1", 8, -EINVAL, 0, NULL},
	{"0--1", 8, -EINVAL, 0, NULL},
	{"0-1-2", 8, -EINVAL, 0, NULL},
	{"a", 8, -EINVAL, 0, NULL},
	{"0 1", 8, -EINVAL, 0, NULL},
	{" 1", 8, -EINVAL, 0, NULL},
	{"1 ", 8, -EINVAL, 0, NULL},
	{"1;2", 8, -EINVAL, 0, NULL},
	{"+1", 8, -EINVAL, 0, NULL},
	{"0-+1", 8, -EINVAL, 0, NULL},
	/* more bits than the largest bitmap */
	{"0", PROTO_CPU_MAX + 1, -EINVAL, 0, NULL},
};

static void test_cpuset_roundtrip(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cpuset_cases); i++) {
		const struct cpuset_case *c = &cpuset_cases[i];
		uint64_t bitmap[PROTO_CPU_MAX / 64 + 1], again[PROTO_CPU_MAX / 64 + 1];
		unsigned count = 4242, count2 = 0;
		char buf[4096], buf2[4096];
		int r = proto_cpuset_parse(c->in, bitmap, c->nbits, &count);

		if (r != c->ret)
			fail_msg("proto_cpuset_parse(\"%s\", %u) returned %d, want %d", c->in,
				 c->nbits, r, c->ret);
		if (r < 0) {
			assert_int_equal(count, 4242);
			continue;
		}
		if (count != c->count)
			fail_msg("proto_cpuset_parse(\"%s\") count %u, want %u", c->in, count,
				 c->count);
		assert_int_equal(proto_cpuset_format(bitmap, c->nbits, buf, sizeof(buf)), 0);
		if (!streq(buf, c->normalized))
			fail_msg("proto_cpuset_format(parse(\"%s\")) = \"%s\", want \"%s\"", c->in,
				 buf, c->normalized);
		/* the normalized form is a fixed point */
		assert_int_equal(proto_cpuset_parse(buf, again, c->nbits, &count2), 0);
		assert_int_equal(count2, count);
		assert_int_equal(proto_cpuset_format(again, c->nbits, buf2, sizeof(buf2)), 0);
		assert_string_equal(buf2, buf);
	}
}

static void test_cpuset_format_small_buffer(void **state)
{
	uint64_t bitmap[PROTO_CPU_MAX / 64];
	unsigned count;
	char buf[8];

	/* an empty set is the empty string */
	memset(bitmap, 0, sizeof(bitmap));
	assert_int_equal(proto_cpuset_format(bitmap, PROTO_CPU_MAX, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* "0-3,5" fits in 6 bytes exactly, not in 5 */
	assert_int_equal(proto_cpuset_parse("0-3,5", bitmap, 8, &count), 0);
	assert_int_equal(proto_cpuset_format(bitmap, 8, buf, 6), 0);
	assert_string_equal(buf, "0-3,5");
	assert_int_equal(proto_cpuset_format(bitmap, 8, buf, 5), -ENOBUFS);
	/* every other CPU of 1024 does not fit in struct proto_limits.cpuset */
	{
		char big[256];

		memset(bitmap, 0x55, sizeof(bitmap));
		assert_int_equal(proto_cpuset_format(bitmap, PROTO_CPU_MAX, big, sizeof(big)),
				 -ENOBUFS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_instance_name),
		cmocka_unit_test(test_alias_name),
		cmocka_unit_test(test_validate_key),
		cmocka_unit_test(test_validate_cpu_too_many),
		cmocka_unit_test(test_validate_config),
		cmocka_unit_test(test_limits_from_config),
		cmocka_unit_test(test_cpuset_roundtrip),
		cmocka_unit_test(test_cpuset_format_small_buffer),
	};

	return cmocka_run_group_tests_name("proto-config", tests, NULL, NULL);
}
