/* Unit tests of the pure parts of the kiva CLI's stream relay (src/cli/cli-attach.c): the console's
 * Ctrl+a q escape (within one read, across reads, a Ctrl+a passed on, a doubled Ctrl+a) and the
 * control socket's messages in LXD's shape. No root, no terminal. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "basic-json.h"
#include "basic-macro.h"
#include "cli-attach.h"

/* Feeds the reads in turn through one escape state; returns what was sent, and whether (and
 * after which read) a detach was asked for. */
static size_t filter_reads(const char *const *reads, size_t n, char *out, int *ret_detach_at)
{
	struct cli_console_escape e = {0};
	size_t o = 0;

	*ret_detach_at = -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[64];
		bool detach;
		size_t k = cli_console_escape_filter(&e, (const uint8_t *)reads[i],
						     strlen(reads[i]), buf, &detach);

		memcpy(out + o, buf, k);
		o += k;
		if (detach) {
			*ret_detach_at = (int)i;
			break;
		}
	}
	out[o] = 0;
	return o;
}

static void test_console_escape(void **state)
{
	static const struct {
		const char *what;
		const char *reads[4];
		size_t n;
		const char *sent;
		int detach_at;
	} cases[] = {
		{"plain keys pass", {"ls -l\r"}, 1, "ls -l\r", -1},
		{"Ctrl+a q in one read", {"ab\001qcd"}, 1, "ab", 0},
		{"Ctrl+a, then q in the next read", {"ab\001", "q"}, 2, "ab", 1},
		{"Ctrl+a then another key: both go", {"\001x"}, 1, "\001x", -1},
		{"Ctrl+a held across reads, then a key", {"\001", "b"}, 2, "\001b", -1},
		{"Ctrl+a Ctrl+a q: the first goes, the second starts the escape",
		 {"\001\001q"},
		 1,
		 "\001",
		 0},
		{"a q alone is a q", {"q"}, 1, "q", -1},
		{"a trailing Ctrl+a is held back", {"x\001"}, 1, "x", -1},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[64];
		int at;
		size_t n = filter_reads(cases[i].reads, cases[i].n, out, &at);

		if (n != strlen(cases[i].sent) || memcmp(out, cases[i].sent, n) != 0 ||
		    at != cases[i].detach_at)
			fail_msg("%s: sent %zu bytes, detach at %d", cases[i].what, n, at);
	}
}

static void test_control_messages(void **state)
{
	char *s = cli_control_window_resize(132, 43);
	json_t *m;

	/* LXD's api.InstanceExecControl: the size travels as strings */
	assert_non_null(s);
	m = json_loads(s, 0, NULL);
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "command")), "window-resize");
	assert_string_equal(json_string_value(json_object_get(json_object_get(m, "args"), "width")),
			    "132");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(m, "args"), "height")), "43");
	json_decref(m);
	free(s);

	s = cli_control_signal(SIGTERM);
	assert_non_null(s);
	assert_string_equal(s, "{\"command\":\"signal\",\"signal\":15}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_console_escape),
		cmocka_unit_test(test_control_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
