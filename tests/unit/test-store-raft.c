/* Tests of the store's state machine replicated by Raft, on canonical raft's deterministic
 * in-memory fixture cluster (<raft/fixture.h>, raft 0.15): three servers, each with its own
 * struct store_fsm bound by store_fsm_raft_bind(). Every command is also applied to a reference
 * store_fsm, and every live server must end with exactly the reference snapshot. Covered:
 * replication, refused commands (reported through &fsm->last_err without stalling the log),
 * leader failover and a revived old leader, and a lagging server that can only catch up through
 * InstallSnapshot (the restore path). Simulated time only: no sockets, no disk, no sleeping. */
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
#include <raft.h>
#include <raft/fixture.h>

#include "basic-json.h"
#include "basic-macro.h"
#include "store.h"

#define N_SERVERS 3
#define MAX_MSECS 30000 /* simulated time budget of each wait */

struct cluster {
	struct raft_fixture f;
	struct store_fsm fsms[N_SERVERS];
	struct raft_fsm raft_fsms[N_SERVERS];
	int (*bound_restore)(struct raft_fsm *fsm, struct raft_buffer *buf);
	unsigned restores[N_SERVERS]; /* successful fsm->restore calls per server */
	struct store_fsm ref; /* the same commands applied directly */
	raft_index last_index; /* of the last submitted command */
};

/* One submitted command and what its apply callback saw. */
struct req {
	struct raft_apply apply;
	struct cluster *c;
	bool done;
	int status;
	void *result;
	int leader; /* index of the server it was submitted to */
	int err_code; /* copied from the fsm inside the callback */
	char err_msg[512];
	int want; /* result of the reference machine */
	char want_msg[512];
};

static struct cluster *current; /* for the restore wrapper, which only gets the raft_fsm */

static int counting_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	int rv = current->bound_restore(fsm, buf);

	for (unsigned i = 0; i < N_SERVERS; i++)
		if (fsm == &current->raft_fsms[i] && rv == 0)
			current->restores[i]++;
	return rv;
}

static int cluster_setup(void **state)
{
	struct cluster *c = calloc(1, sizeof(*c));
	struct raft_configuration conf;

	if (!c)
		return -1;
	current = c;
	if (raft_fixture_initialize(&c->f) != 0)
		return -1;
	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (store_fsm_init(&c->fsms[i]) < 0)
			return -1;
		store_fsm_raft_bind(&c->raft_fsms[i], &c->fsms[i]);
		c->bound_restore = c->raft_fsms[i].restore;
		c->raft_fsms[i].restore = counting_restore;
		if (raft_fixture_grow(&c->f, &c->raft_fsms[i]) != 0)
			return -1;
	}
	if (store_fsm_init(&c->ref) < 0)
		return -1;
	if (raft_fixture_configuration(&c->f, N_SERVERS, &conf) != 0)
		return -1;
	if (raft_fixture_bootstrap(&c->f, &conf) != 0)
		return -1;
	raft_configuration_close(&conf);
	if (raft_fixture_start(&c->f) != 0)
		return -1;
	if (!raft_fixture_step_until_has_leader(&c->f, MAX_MSECS))
		return -1;
	*state = c;
	return 0;
}

static int cluster_teardown(void **state)
{
	struct cluster *c = *state;

	raft_fixture_close(&c->f);
	for (unsigned i = 0; i < N_SERVERS; i++)
		store_fsm_done(&c->fsms[i]);
	store_fsm_done(&c->ref);
	free(c);
	current = NULL;
	return 0;
}

static unsigned leader_of(struct cluster *c)
{
	unsigned l = raft_fixture_leader_index(&c->f);

	assert_true(l < N_SERVERS);
	assert_int_equal(raft_state(raft_fixture_get(&c->f, l)), RAFT_LEADER);
	return l;
}

static void apply_cb(struct raft_apply *a, int status, void *result)
{
	struct req *r = a->data;

	assert_false(r->done); /* once */
	r->done = true;
	r->status = status;
	r->result = result;
	/* read the refusal now: the next entry overwrites last_err */
	if (result) {
		for (unsigned i = 0; i < N_SERVERS; i++)
			if (result == (void *)&r->c->fsms[i].last_err) {
				r->err_code = r->c->fsms[i].last_err.code;
				snprintf(r->err_msg, sizeof(r->err_msg), "%s",
					 r->c->fsms[i].last_err.msg);
			}
	}
}

/* Submits cmd (consumed) to the current leader without stepping the cluster. */
static void submit(struct cluster *c, json_t *cmd, struct req *r)
{
	cleanup_free char *s = NULL;
	struct raft_buffer buf;
	unsigned l = leader_of(c);
	struct raft *raft = raft_fixture_get(&c->f, l);
	size_t len;

	assert_non_null(cmd);
	s = json_dumps(cmd, JSON_COMPACT);
	json_decref(cmd);
	assert_non_null(s);
	len = strlen(s);

	memset(r, 0, sizeof(*r));
	r->c = c;
	r->leader = (int)l;
	r->want = store_fsm_apply(&c->ref, s, len, r->want_msg, sizeof(r->want_msg));

	buf.len = len;
	buf.base = raft_malloc(len);
	assert_non_null(buf.base);
	memcpy(buf.base, s, len);
	r->apply.data = r;
	assert_int_equal(raft_apply(raft, &r->apply, &buf, 1, apply_cb), 0);
	assert_true(r->apply.index > c->last_index);
	c->last_index = r->apply.index;
}

/* Steps until every live server but `skip` has applied index. */
static void wait_applied_but(struct cluster *c, raft_index index, unsigned skip)
{
	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (!raft_fixture_alive(&c->f, i) || i == skip)
			continue;
		if (!raft_fixture_step_until_applied(&c->f, i, index, MAX_MSECS))
			fail_msg("server %u did not apply index %" PRIu64 " (last applied %" PRIu64
				 ")",
				 i, (uint64_t)index,
				 (uint64_t)raft_last_applied(raft_fixture_get(&c->f, i)));
	}
}

static void wait_applied(struct cluster *c, raft_index index)
{
	wait_applied_but(c, index, N_SERVERS);
}

/* The callback ran and reported what the reference machine did. */
static void check_req(struct cluster *c, const struct req *r)
{
	assert_true(r->done);
	assert_int_equal(r->status, 0);
	if (r->want == 0) {
		assert_null(r->result);
		return;
	}
	assert_ptr_equal(r->result, &c->fsms[r->leader].last_err);
	assert_int_equal(r->err_code, r->want);
	assert_string_equal(r->err_msg, r->want_msg);
}

/* Every live server holds exactly the reference state. */
static void check_converged(struct cluster *c)
{
	cleanup_free char *want = NULL;
	size_t len;

	assert_int_equal(store_fsm_snapshot(&c->ref, &want, &len), 0);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		cleanup_free char *got = NULL;

		if (!raft_fixture_alive(&c->f, i))
			continue;
		assert_int_equal(store_fsm_snapshot(&c->fsms[i], &got, &len), 0);
		if (!streq(got, want))
			fail_msg("server %u diverged:\n got  %s\n want %s", i, got, want);
	}
}

/* Every live server holds the same state (whatever it is). */
static void check_identical(struct cluster *c)
{
	cleanup_free char *first = NULL;
	size_t len;

	for (unsigned i = 0; i < N_SERVERS; i++) {
		cleanup_free char *got = NULL;

		if (!raft_fixture_alive(&c->f, i))
			continue;
		assert_int_equal(store_fsm_snapshot(&c->fsms[i], &got, &len), 0);
		if (!first)
			first = TAKE_PTR(got);
		else if (!streq(got, first))
			fail_msg("server %u diverged:\n got  %s\n want %s", i, got, first);
	}
}

static json_t *instance_put(const char *name, const char *status)
{
	cleanup_json json_t *o = json_pack("{s:s,s:s}", "name", name, "status", status);

	return store_cmd_instance_put(o);
}

static json_t *image_put(const char *fp)
{
	cleanup_json json_t *o = json_pack("{s:s,s:i}", "fingerprint", fp, "size", 1000);

	return store_cmd_image_put(o);
}

static json_t *alias_put(const char *name, const char *target)
{
	cleanup_json json_t *o = json_pack("{s:s,s:s}", "name", name, "target", target);

	return store_cmd_alias_put(o);
}

/* ---- tests ---- */

static void test_replicate(void **state)
{
	struct cluster *c = *state;
	struct req reqs[8];
	json_t *alias;
	unsigned n = 0;

	submit(c, image_put("f1"), &reqs[n++]);
	submit(c, alias_put("ubuntu", "f1"), &reqs[n++]);
	submit(c, instance_put("c1", "Stopped"), &reqs[n++]);
	submit(c, instance_put("c2", "Stopped"), &reqs[n++]);
	submit(c, instance_put("c1", "Running"), &reqs[n++]);
	submit(c, store_cmd_instance_delete("c2"), &reqs[n++]);
	wait_applied(c, c->last_index);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(reqs[i].want, 0);
		check_req(c, &reqs[i]);
	}
	check_converged(c);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		const json_t *st = c->fsms[i].state;

		alias = json_object_get(json_object_get(st, "aliases"), "ubuntu");
		assert_string_equal(json_get_str(alias, "target", ""), "f1");
		assert_string_equal(
			json_get_str(json_object_get(json_object_get(st, "instances"), "c1"),
				     "status", ""),
			"Running");
		assert_null(json_object_get(json_object_get(st, "instances"), "c2"));
		assert_int_equal(c->fsms[i].applied, n);
	}
}

/* A refused command reaches the submitter's callback as &fsm->last_err with its message, is
 * applied (as a no-op) on every server, and the entries behind it in the same batch apply. */
static void test_refused_does_not_stall(void **state)
{
	struct cluster *c = *state;
	struct req reqs[6];
	unsigned n = 0;

	submit(c, alias_put("x", "missing"), &reqs[n++]);
	submit(c, image_put("f2"), &reqs[n++]);
	submit(c, store_cmd_instance_delete("nobody"), &reqs[n++]);
	submit(c, alias_put("x", "f2"), &reqs[n++]);
	{
		/* a malformed entry, as a buggy or hostile client could append */
		struct raft_buffer buf = {.base = raft_malloc(5), .len = 5};
		struct req *r = &reqs[n++];

		assert_non_null(buf.base);
		memcpy(buf.base, "{\"op\"", 5);
		memset(r, 0, sizeof(*r));
		r->c = c;
		r->leader = (int)leader_of(c);
		r->want = store_fsm_apply(&c->ref, buf.base, buf.len, r->want_msg,
					  sizeof(r->want_msg));
		r->apply.data = r;
		assert_int_equal(raft_apply(raft_fixture_get(&c->f, (unsigned)r->leader), &r->apply,
					    &buf, 1, apply_cb),
				 0);
		c->last_index = r->apply.index;
	}
	submit(c, instance_put("after", "Running"), &reqs[n++]);
	wait_applied(c, c->last_index);

	assert_int_equal(reqs[0].want, -ENOENT);
	assert_string_equal(reqs[0].want_msg, "Image 'missing' not found");
	assert_int_equal(reqs[2].want, -ENOENT);
	assert_string_equal(reqs[2].want_msg, "Instance 'nobody' not found");
	assert_int_equal(reqs[4].want, -EINVAL);
	assert_string_equal(reqs[4].want_msg, "malformed command");
	for (unsigned i = 0; i < n; i++)
		check_req(c, &reqs[i]);
	check_converged(c);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		assert_true(raft_last_applied(raft_fixture_get(&c->f, i)) >= c->last_index);
		assert_int_equal(c->fsms[i].applied, 3); /* f2, x -> f2, after */
		assert_non_null(json_object_get(json_object_get(c->fsms[i].state, "aliases"), "x"));
	}
}

/* Kill the leader, elect another, apply more, revive the old leader: it steps down and catches
 * up from the new leader's log. */
static void test_failover(void **state)
{
	struct cluster *c = *state;
	struct req before[4], after[4], last;
	unsigned old, nl;

	old = leader_of(c);
	submit(c, image_put("f1"), &before[0]);
	submit(c, instance_put("c1", "Running"), &before[1]);
	submit(c, alias_put("a1", "f1"), &before[2]);
	submit(c, alias_put("a2", "f9"), &before[3]);
	wait_applied(c, c->last_index);
	check_converged(c);

	raft_fixture_kill(&c->f, old);
	assert_true(raft_fixture_step_until_has_no_leader(&c->f, MAX_MSECS));
	assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MSECS));
	nl = leader_of(c);
	assert_int_not_equal(nl, old);

	submit(c, image_put("f9"), &after[0]);
	submit(c, alias_put("a2", "f9"), &after[1]);
	submit(c, store_cmd_image_delete("f1"), &after[2]); /* drops a1 */
	submit(c, store_cmd_instance_delete("c1"), &after[3]);
	wait_applied(c, c->last_index);
	check_converged(c);

	raft_fixture_revive(&c->f, old);
	submit(c, instance_put("c3", "Stopped"), &last);
	wait_applied(c, c->last_index);
	for (unsigned i = 0; i < 4; i++) {
		check_req(c, &before[i]);
		check_req(c, &after[i]);
	}
	check_req(c, &last);
	check_converged(c); /* all three, the old leader included */
	assert_int_equal(leader_of(c), nl);
	assert_int_not_equal(raft_state(raft_fixture_get(&c->f, old)), RAFT_LEADER);
	{
		const json_t *aliases = json_object_get(c->fsms[old].state, "aliases");

		assert_null(json_object_get(aliases, "a1"));
		assert_string_equal(json_get_str(json_object_get(aliases, "a2"), "target", ""),
				    "f9");
	}
}

/* The leader is deposed while its entry is in flight: the submitter hears of it exactly once
 * with a failure (the store maps it to -ENOTCONN), and whatever became of the entry, all servers
 * agree once the new leader commits an entry of its own term (Raft §5.4.2). */
static void test_leadership_lost(void **state)
{
	struct cluster *c = *state;
	struct req limbo, next;
	bool on_first;

	submit(c, instance_put("limbo", "Running"), &limbo);
	raft_fixture_depose(&c->f);
	assert_true(limbo.done);
	assert_true(limbo.status == RAFT_LEADERSHIPLOST || limbo.status == RAFT_NOTLEADER);
	assert_null(limbo.result);

	assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MSECS));
	submit(c, instance_put("next", "Running"), &next);
	wait_applied(c, c->last_index);
	check_req(c, &next);
	check_identical(c);
	on_first = json_object_get(json_object_get(c->fsms[0].state, "instances"), "limbo");
	for (unsigned i = 0; i < N_SERVERS; i++) {
		const json_t *inst = json_object_get(c->fsms[i].state, "instances");

		assert_non_null(json_object_get(inst, "next"));
		assert_int_equal(!!json_object_get(inst, "limbo"), on_first);
	}
}

/* With a low snapshot threshold the leader compacts its log while a follower is down; the
 * follower can then only catch up through InstallSnapshot, i.e. fsm->restore. */
static void test_snapshot_catch_up(void **state)
{
	struct cluster *c = *state;
	struct req reqs[40];
	unsigned l, lag, n = 0;
	raft_index lag_applied;
	struct raft *lr;

	for (unsigned i = 0; i < N_SERVERS; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&c->f, i), 4);
		raft_set_snapshot_trailing(raft_fixture_get(&c->f, i), 2);
	}
	l = leader_of(c);
	lag = (l + 1) % N_SERVERS;
	lr = raft_fixture_get(&c->f, l);

	submit(c, image_put("base"), &reqs[n++]);
	wait_applied(c, c->last_index);
	lag_applied = raft_last_applied(raft_fixture_get(&c->f, lag));
	raft_fixture_kill(&c->f, lag);

	for (unsigned i = 0; i < 30; i++) {
		char name[16];

		snprintf(name, sizeof(name), "c%u", i % 7);
		if (i % 5 == 4)
			submit(c, store_cmd_instance_delete(name), &reqs[n++]);
		else if (i % 9 == 8)
			submit(c, alias_put(name, i % 2 ? "base" : "nope"), &reqs[n++]);
		else
			submit(c, instance_put(name, i % 2 ? "Running" : "Stopped"), &reqs[n++]);
		if (i % 6 == 5) /* several batches, so several snapshots */
			wait_applied(c, c->last_index);
	}
	wait_applied(c, c->last_index);
	check_converged(c);

	/* the leader has compacted past everything the lagging server has */
	assert_true(lr->log.snapshot.last_index > 0);
	assert_true(lr->log.offset > lag_applied);
	assert_int_equal(c->restores[lag], 0);

	raft_fixture_revive(&c->f, lag);
	wait_applied(c, c->last_index);
	assert_true(c->restores[lag] >= 1);
	assert_true(raft_fixture_n_recv(&c->f, lag, RAFT_IO_INSTALL_SNAPSHOT) >= 1);
	check_converged(c);

	/* and it follows normally afterwards */
	submit(c, alias_put("latest", "base"), &reqs[n++]);
	wait_applied(c, c->last_index);
	check_converged(c);
	for (unsigned i = 0; i < n; i++)
		check_req(c, &reqs[i]);
}

/* A seeded random mix of valid and invalid commands, with snapshots, a leader change and a
 * partitioned follower along the way, converges to the reference on all three servers. */
static void test_random_with_faults(void **state)
{
	struct cluster *c = *state;
	static struct req reqs[300];
	uint64_t s = 0x5eedULL;
	unsigned n = 0;

	for (unsigned i = 0; i < N_SERVERS; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&c->f, i), 16);
		raft_set_snapshot_trailing(raft_fixture_get(&c->f, i), 4);
	}
	for (unsigned round = 0; round < 6; round++) {
		unsigned l = leader_of(c);
		unsigned victim = (l + 1 + round) % N_SERVERS, skip = N_SERVERS;

		if (victim == l)
			victim = (l + 1) % N_SERVERS;
		if (round % 2 == 1) {
			skip = victim;
			raft_fixture_disconnect(&c->f, l, victim);
			raft_fixture_disconnect(&c->f, victim, l);
		}
		for (unsigned k = 0; k < 50; k++) {
			char a[16], b[16];
			unsigned pick;

			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			pick = (unsigned)(s % 6);
			snprintf(a, sizeof(a), "n%u", (unsigned)(s >> 8) % 5);
			snprintf(b, sizeof(b), "n%u", (unsigned)(s >> 16) % 5);
			switch (pick) {
			case 0:
				submit(c, instance_put(a, "Running"), &reqs[n++]);
				break;
			case 1:
				submit(c, store_cmd_instance_delete(a), &reqs[n++]);
				break;
			case 2:
				submit(c, image_put(a), &reqs[n++]);
				break;
			case 3:
				submit(c, store_cmd_image_delete(a), &reqs[n++]);
				break;
			case 4:
				submit(c, alias_put(a, b), &reqs[n++]);
				break;
			default:
				submit(c, store_cmd_alias_delete(a), &reqs[n++]);
				break;
			}
			if (k % 10 == 9)
				wait_applied_but(c, c->last_index, skip);
		}
		if (round % 2 == 1) {
			raft_fixture_reconnect(&c->f, l, victim);
			raft_fixture_reconnect(&c->f, victim, l);
		}
		wait_applied(c, c->last_index);
		check_converged(c);
		if (round == 2) {
			/* change of leader half-way */
			raft_fixture_depose(&c->f);
			assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MSECS));
		}
	}
	for (unsigned i = 0; i < n; i++)
		check_req(c, &reqs[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replicate, cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_refused_does_not_stall, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_failover, cluster_setup, cluster_teardown),
		cmocka_unit_test_setup_teardown(test_leadership_lost, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_catch_up, cluster_setup,
						cluster_teardown),
		cmocka_unit_test_setup_teardown(test_random_with_faults, cluster_setup,
						cluster_teardown),
	};

	return cmocka_run_group_tests_name("store-raft", tests, NULL, NULL);
}
