/* The store on raft's real libuv I/O (raft_uv) in a temporary directory: commands of every length
 * survive a close and a reopen (log replay), and a reopen after a snapshot restores the same
 * state. This is what kivad does on every restart. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "basic-fs.h"
#include "basic-string.h"
#include "store.h"

struct ctx {
	uv_loop_t loop;
	struct store *store;
	int ready;
	int applied;
	int failed;
	int closed;
};

static void on_ready(struct store *store, int status, void *userdata)
{
	struct ctx *c = userdata;

	c->ready = status == 0 ? 1 : -1;
}

static void on_applied(void *userdata, int status, const char *errmsg)
{
	struct ctx *c = userdata;

	if (status == 0)
		c->applied++;
	else
		c->failed++;
}

static void on_closed(void *userdata)
{
	((struct ctx *)userdata)->closed = 1;
}

static void run_until(struct ctx *c, int *flag, int want)
{
	for (int i = 0; i < 100000 && *flag != want; i++)
		uv_run(&c->loop, UV_RUN_ONCE);
	assert_int_equal(*flag, want);
}

/* A port nothing listens on now (a fixed one collided with other tests on the same host). */
static const char *free_address(void)
{
	static char addr[32];
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (addr[0])
		return addr; /* the same node reopens on the same address */
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	close(fd);
	return addr;
}

static void open_store(struct ctx *c, const char *dir, unsigned threshold)
{
	struct store_options o = {.dir = dir,
				  .address = free_address(),
				  .id = 1,
				  .snapshot_threshold = threshold,
				  .snapshot_trailing = 4};
	struct kiva_error err = {0};

	memset(c, 0, sizeof(*c));
	assert_int_equal(uv_loop_init(&c->loop), 0);
	assert_int_equal(store_open(&c->loop, &o, on_ready, c, &c->store, &err), 0);
	run_until(c, &c->ready, 1);
}

static void close_store(struct ctx *c)
{
	store_close(c->store, on_closed, c);
	run_until(c, &c->closed, 1);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* n instance records whose serialized length varies by one byte each time */
static void apply_many(struct ctx *c, int n)
{
	for (int i = 0; i < n; i++) {
		char name[32], pad[64];
		json_t *inst, *cmd;

		snprintf(name, sizeof(name), "c%d", i);
		memset(pad, 'x', sizeof(pad));
		pad[i % 63] = 0;
		inst = json_pack("{s:s,s:s}", "name", name, "description", pad);
		cmd = store_cmd_instance_put(inst);
		assert_int_equal(store_apply(c->store, cmd, on_applied, c), 0);
		json_decref(cmd);
		json_decref(inst);
	}
	run_until(c, &c->applied, n);
}

static void check_state(struct ctx *c, int n)
{
	const json_t *insts = json_object_get(store_state(c->store), "instances");

	assert_int_equal(json_object_size(insts), n);
	for (int i = 0; i < n; i++) {
		char name[32];
		const json_t *inst;

		snprintf(name, sizeof(name), "c%d", i);
		inst = json_object_get(insts, name);
		assert_non_null(inst);
		assert_int_equal(strlen(json_string_value(json_object_get(inst, "description"))),
				 i % 63);
	}
}

/* The store's directory, removed by teardown even when an assertion ended the test. */
static int setup_dir(void **state)
{
	static char dir[64];

	snprintf(dir, sizeof(dir), "/tmp/kiva-store-uv-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	return rm_rf(*state) < 0 ? -1 : 0;
}

static void test_replay(void **state, unsigned threshold, int n)
{
	const char *dir = *state;
	struct ctx c;

	open_store(&c, dir, threshold);
	apply_many(&c, n);
	check_state(&c, n);
	close_store(&c);

	open_store(&c, dir, threshold);
	check_state(&c, n);
	close_store(&c);
}

static void test_replay_log(void **state)
{
	test_replay(state, 1024, 100);
}

static void test_replay_snapshot(void **state)
{
	test_replay(state, 16, 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replay_log, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_replay_snapshot, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
