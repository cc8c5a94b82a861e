/* The store on canonical raft 0.15 (raft_uv): the only file that includes <raft.h>, so the
 * maintained fork (cowsql/raft, same API) can replace it here alone.
 *
 * raft gotchas handled here (notes/feasibility.md §11, §13):
 * - fsm->apply must return 0 for every entry, or raft retries it forever; a refused command is
 *   reported to the submitter through store->last_err, which raft's apply callback reads at
 *   once (the callback runs right after fsm->apply, in the same call).
 * - After a restart, entries of earlier terms are only known to be applied once an entry of
 *   the current term commits (Raft §5.4.2), so store_open issues a barrier and reports ready
 *   from its callback.
 * - uv_update_time() before raft_start(), so a slow start-up does not fire the election timer. */
#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "basic-fs.h"
#include "store.h"

struct store {
	uv_loop_t *loop;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct raft_fsm fsm_ops;
	struct store_fsm fsm;

	store_ready_cb ready;
	void *ready_data;
	struct raft_barrier barrier;
	uv_timer_t retry_timer;
	unsigned retries;

	void (*close_cb)(void *userdata);
	void *close_data;
	bool closing;
};

struct store_req {
	struct raft_apply req;
	struct store *store;
	store_apply_cb cb;
	void *userdata;
};

static int raft_to_errno(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_NOMEM:
		return -ENOMEM;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
		return -ENOTCONN;
	case RAFT_SHUTDOWN:
	case RAFT_CANCELED:
		return -ECANCELED;
	case RAFT_TOOBIG:
		return -E2BIG;
	default:
		return -EIO;
	}
}

static int fsm_apply(struct raft_fsm *f, const struct raft_buffer *buf, void **result)
{
	struct store_fsm *fsm = f->data;
	int r;

	fsm->last_err.msg[0] = 0;
	r = store_fsm_apply(fsm, buf->base, buf->len, fsm->last_err.msg, sizeof(fsm->last_err.msg));
	fsm->last_err.code = r < 0 ? r : 0;
	*result = r < 0 ? &fsm->last_err : NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[], unsigned *n)
{
	struct store_fsm *fsm = f->data;
	cleanup_free char *data = NULL;
	size_t len;
	int r;

	r = store_fsm_snapshot(fsm, &data, &len);
	if (r < 0)
		return RAFT_NOMEM;
	*bufs = raft_malloc(sizeof(struct raft_buffer));
	if (!*bufs)
		return RAFT_NOMEM;
	(*bufs)[0].len = (len + 7) & ~(size_t)7; /* 8-byte multiple, like log entries */
	(*bufs)[0].base = raft_malloc((*bufs)[0].len);
	if (!(*bufs)[0].base) {
		raft_free(*bufs);
		return RAFT_NOMEM;
	}
	memcpy((*bufs)[0].base, data, len);
	memset((char *)(*bufs)[0].base + len, ' ', (*bufs)[0].len - len);
	*n = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
	int r = store_fsm_restore(f->data, buf->base, buf->len);

	if (r < 0)
		return RAFT_MALFORMED;
	raft_free(buf->base);
	return 0;
}

void store_fsm_raft_bind(struct raft_fsm *raft_fsm, struct store_fsm *fsm)
{
	memset(raft_fsm, 0, sizeof(*raft_fsm));
	raft_fsm->version = 1;
	raft_fsm->data = fsm;
	raft_fsm->apply = fsm_apply;
	raft_fsm->snapshot = fsm_snapshot;
	raft_fsm->restore = fsm_restore;
}

static void barrier_cb(struct raft_barrier *req, int status);
static void retry_cb(uv_timer_t *t);

static void try_barrier(struct store *s)
{
	int rv;

	s->barrier.data = s;
	rv = raft_barrier(&s->raft, &s->barrier, barrier_cb);
	if (rv == 0)
		return;
	if (rv == RAFT_NOTLEADER && s->retries++ < 1000) {
		uv_timer_start(&s->retry_timer, retry_cb, 10, 0);
		return;
	}
	s->ready(s, raft_to_errno(rv), s->ready_data);
}

static void retry_cb(uv_timer_t *t)
{
	try_barrier(t->data);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct store *s = req->data;

	if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST) {
		if (s->retries++ < 1000 && !s->closing) {
			uv_timer_start(&s->retry_timer, retry_cb, 10, 0);
			return;
		}
	}
	s->ready(s, raft_to_errno(status), s->ready_data);
}

int store_open(struct uv_loop_s *loop, const struct store_options *opts, store_ready_cb ready,
	       void *userdata, struct store **ret, struct kiva_error *reterr)
{
	struct raft_configuration conf;
	struct store *s;
	int rv, r;

	r = mkdir_p(opts->dir, 0700);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create %s: %s", opts->dir,
				      strerror(-r));
	s = calloc(1, sizeof(*s));
	if (!s)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	s->loop = loop;
	s->ready = ready;
	s->ready_data = userdata;
	r = store_fsm_init(&s->fsm);
	if (r < 0) {
		free(s);
		return kiva_error_set(reterr, r, "Out of memory");
	}
	store_fsm_raft_bind(&s->fsm_ops, &s->fsm);

	rv = raft_uv_tcp_init(&s->transport, loop);
	if (rv != 0)
		goto fail_fsm;
	rv = raft_uv_init(&s->io, loop, opts->dir, &s->transport);
	if (rv != 0) {
		kiva_error_set(reterr, -EIO, "Failed to open the raft store in %s: %s", opts->dir,
			       s->io.errmsg);
		goto fail_transport;
	}
	/* A segment that does not read back is an error to report, not to drop silently (raft_uv's
	 * auto-recovery renames it "corrupt-..." and starts without its committed entries). */
	raft_uv_set_auto_recovery(&s->io, false);
	rv = raft_init(&s->raft, &s->io, &s->fsm_ops, opts->id, opts->address);
	if (rv != 0) {
		kiva_error_set(reterr, -EIO, "Failed to initialize raft: %s", raft_strerror(rv));
		goto fail_io;
	}
	raft_configuration_init(&conf);
	rv = raft_configuration_add(&conf, opts->id, opts->address, RAFT_VOTER);
	if (rv == 0)
		rv = raft_bootstrap(&s->raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
		kiva_error_set(reterr, -EIO, "Failed to bootstrap raft in %s: %s", opts->dir,
			       raft_strerror(rv));
		goto fail_raft;
	}
	raft_set_election_timeout(&s->raft, 300);
	raft_set_heartbeat_timeout(&s->raft, 30);
	raft_set_snapshot_threshold(&s->raft,
				    opts->snapshot_threshold ? opts->snapshot_threshold : 1024);
	raft_set_snapshot_trailing(&s->raft,
				   opts->snapshot_trailing ? opts->snapshot_trailing : 128);
	uv_timer_init(loop, &s->retry_timer);
	s->retry_timer.data = s;
	uv_update_time(loop);
	rv = raft_start(&s->raft);
	if (rv != 0) {
		const char *msg = raft_errmsg(&s->raft);

		/* raft_uv reports a taken listen address as a bare I/O error */
		if (rv == RAFT_IOERR && (!msg || !*msg))
			msg = "is the address already in use by another process?";
		kiva_error_set(reterr, -EIO,
			       "Failed to start the store (raft on %s, data in %s): "
			       "%s: %s",
			       opts->address, opts->dir, raft_strerror(rv), msg ? msg : "");
		uv_close((uv_handle_t *)&s->retry_timer, NULL);
		goto fail_raft;
	}
	uv_timer_start(&s->retry_timer, retry_cb, 0, 0);
	*ret = s;
	return 0;

fail_raft:
	/* raft_init succeeded: closing raft closes io too; the loop must run for that. We leak the
	 * small struct here on purpose, the daemon exits on this error. */
	return kiva_error_default(reterr, -EIO, "Failed to start the store");
fail_io:
	raft_uv_close(&s->io);
fail_transport:
	raft_uv_tcp_close(&s->transport);
fail_fsm:
	store_fsm_done(&s->fsm);
	free(s);
	return kiva_error_default(reterr, -EIO, "Failed to initialize the raft transport");
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct store_req *sr = req->data;
	struct store *s = sr->store;

	if (status != 0)
		sr->cb(sr->userdata, raft_to_errno(status), raft_strerror(status));
	else if (result)
		sr->cb(sr->userdata, s->fsm.last_err.code, s->fsm.last_err.msg);
	else
		sr->cb(sr->userdata, 0, NULL);
	free(sr);
}

int store_apply(struct store *s, const json_t *cmd, store_apply_cb cb, void *userdata)
{
	cleanup_free char *text = NULL;
	struct raft_buffer buf;
	struct store_req *sr;
	size_t len;
	int rv;

	if (s->closing)
		return -ECANCELED;
	text = json_dump_compact(cmd);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	sr = calloc(1, sizeof(*sr));
	if (!sr)
		return -ENOMEM;
	/* raft_uv writes entries whose length is a multiple of 8 and asserts it only in debug
	 * builds: an unpadded entry is written misaligned and the segment reads back as corrupt
	 * (then raft_uv's auto-recovery drops it). JSON allows trailing blanks. */
	buf.len = (len + 7) & ~(size_t)7;
	buf.base = raft_malloc(buf.len);
	if (!buf.base) {
		free(sr);
		return -ENOMEM;
	}
	memcpy(buf.base, text, len);
	memset((char *)buf.base + len, ' ', buf.len - len);
	sr->req.data = sr;
	sr->store = s;
	sr->cb = cb;
	sr->userdata = userdata;
	rv = raft_apply(&s->raft, &sr->req, &buf, 1, apply_cb);
	if (rv != 0) {
		raft_free(buf.base);
		free(sr);
		return raft_to_errno(rv);
	}
	return 0;
}

const json_t *store_state(const struct store *s)
{
	return s->fsm.state;
}

const json_t *store_instance(const struct store *s, const char *name)
{
	return json_object_get(json_object_get(s->fsm.state, "instances"), name);
}

const json_t *store_image(const struct store *s, const char *fingerprint)
{
	return json_object_get(json_object_get(s->fsm.state, "images"), fingerprint);
}

const json_t *store_alias(const struct store *s, const char *name)
{
	return json_object_get(json_object_get(s->fsm.state, "aliases"), name);
}

const json_t *store_network(const struct store *s, const char *name)
{
	return json_object_get(json_object_get(s->fsm.state, "networks"), name);
}

const json_t *store_acl(const struct store *s, const char *name)
{
	return json_object_get(json_object_get(s->fsm.state, "acls"), name);
}

uint64_t store_applied(const struct store *s)
{
	return s->fsm.applied;
}

static void timer_closed(uv_handle_t *h)
{
	struct store *s = h->data;

	store_fsm_done(&s->fsm);
	if (s->close_cb)
		s->close_cb(s->close_data);
	free(s);
}

static void raft_closed(struct raft *r)
{
	struct store *s = r->data;

	raft_uv_close(&s->io);
	raft_uv_tcp_close(&s->transport);
	uv_close((uv_handle_t *)&s->retry_timer, timer_closed);
}

void store_close(struct store *s, void (*cb)(void *userdata), void *userdata)
{
	s->closing = true;
	s->close_cb = cb;
	s->close_data = userdata;
	uv_timer_stop(&s->retry_timer);
	s->raft.data = s;
	raft_close(&s->raft, raft_closed);
}
