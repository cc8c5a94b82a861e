/* Unit tests of image-yaml.c: LXD's backup.yaml read into JSON (types as go-yaml writes them),
 * and what it refuses: alias bombs, deep nesting, non-scalar keys, a non-mapping root, garbage. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic-json.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"

/* The shape of a real LXD 5.0.2 backup.yaml (trimmed). */
static const char lxd_backup[] =
	"container:\n"
	"  architecture: x86_64\n"
	"  config:\n"
	"    image.os: Busybox\n"
	"    limits.cpu: \"2\"\n"
	"    volatile.last_state.idmap: '[{\"Isuid\":true,\"Hostid\":100000}]'\n"
	"  devices: {}\n"
	"  ephemeral: false\n"
	"  profiles:\n"
	"  - default\n"
	"  stateful: false\n"
	"  description: \"\"\n"
	"  created_at: 2026-11-26T17:27:54.681415089Z\n"
	"  name: c1\n"
	"  status_code: 102\n"
	"snapshots:\n"
	"- expires_at: 0001-01-01T00:00:00Z\n"
	"  name: snap0\n"
	"  config: {limits.memory: 64MB}\n"
	"  size: -1\n"
	"pool: {name: default, driver: dir, used_by: []}\n"
	"volume_snapshots: ~\n";

static void test_lxd_backup_yaml(void **state)
{
	struct kiva_error err = {0};
	json_t *j = NULL, *c, *s;

	assert_int_equal(image_yaml_to_json(lxd_backup, strlen(lxd_backup), &j, &err), 0);
	c = json_object_get(j, "container");
	assert_string_equal(json_get_str(json_object_get(c, "config"), "limits.cpu", ""), "2");
	assert_string_equal(
		json_get_str(json_object_get(c, "config"), "volatile.last_state.idmap", ""),
		"[{\"Isuid\":true,\"Hostid\":100000}]");
	assert_true(json_is_false(json_object_get(c, "ephemeral")));
	assert_int_equal(json_integer_value(json_object_get(c, "status_code")), 102);
	assert_string_equal(json_string_value(json_array_get(json_object_get(c, "profiles"), 0)),
			    "default");
	assert_string_equal(json_get_str(c, "created_at", ""), "2026-11-26T17:27:54.681415089Z");
	assert_string_equal(json_get_str(c, "description", "x"), "");
	assert_true(json_is_object(json_object_get(c, "devices")));
	s = json_array_get(json_object_get(j, "snapshots"), 0);
	assert_string_equal(json_get_str(s, "name", ""), "snap0");
	assert_int_equal(json_integer_value(json_object_get(s, "size")), -1);
	assert_string_equal(json_get_str(json_object_get(s, "config"), "limits.memory", ""),
			    "64MB");
	assert_true(json_is_null(json_object_get(j, "volume_snapshots")));
	json_decref(j);
}

/* JSON is YAML: what KIVA itself writes. */
static void test_json_text(void **state)
{
	static const char text[] =
		"{\"container\": {\"name\": \"c1\", \"config\": {\"a\": \"1\"}}}";
	struct kiva_error err = {0};
	json_t *j = NULL;

	assert_int_equal(image_yaml_to_json(text, strlen(text), &j, &err), 0);
	assert_string_equal(
		json_get_str(json_object_get(json_object_get(j, "container"), "config"), "a", ""),
		"1");
	json_decref(j);
}

static void expect_refused(const char *text, size_t len, const char *words)
{
	struct kiva_error err = {0};
	json_t *j = NULL;

	assert_true(image_yaml_to_json(text, len, &j, &err) < 0);
	assert_null(j);
	if (!strstr(err.msg, words))
		fail_msg("message '%s' lacks '%s'", err.msg, words);
}

static void test_refusals(void **state)
{
	char *bomb = NULL, *deep = NULL;
	size_t len = 0;
	FILE *f;

	/* billion laughs: 9 levels of 9 aliases = 387M nodes if followed */
	f = open_memstream(&bomb, &len);
	fprintf(f, "a: &a [x, x, x, x, x, x, x, x, x]\n");
	for (char c = 'b'; c <= 'j'; c++)
		fprintf(f, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c, c - 1,
			c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	fclose(f);
	expect_refused(bomb, len, "nodes");
	free(bomb);

	f = open_memstream(&deep, &len);
	fputs("a: ", f);
	for (int i = 0; i < 100; i++)
		fputc('[', f);
	for (int i = 0; i < 100; i++)
		fputc(']', f);
	fputc('\n', f);
	fclose(f);
	expect_refused(deep, len, "nested deeper");
	free(deep);

	expect_refused("[1, 2]\n", 7, "not a mapping");
	expect_refused("", 0, "empty");
	expect_refused("? [a]\n: b\n", 10, "key is not a scalar");
	expect_refused("a: [\n", 5, "backup.yaml line");
	expect_refused("a: \"\xff\"\n", 7, "backup.yaml");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lxd_backup_yaml),
		cmocka_unit_test(test_json_text),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
