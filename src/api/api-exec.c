/* Exec over WebSockets, as LXD's clients drive it (POST /1.0/instances/NAME/exec with
 * "wait-for-websocket": true, then /1.0/operations/ID/websocket?secret=S for each stream):
 *   - non-interactive: fds "0" (stdin), "1" (stdout), "2" (stderr) are pipes, "control";
 *   - interactive: fd "0" is a pseudo-terminal (both directions), "control".
 * The command starts once every socket is connected (secrets are random and single-use). Data
 * is binary messages; an empty text message (or a close) ends a stream, as LXD's "barrier".
 * control carries {"command": "window-resize", "args": {"width", "height"}} and
 * {"command": "signal", "signal": N}. kiva-helper runs the command with the pipes or the pty as
 * its stdio; kivad relays them on its loop with libuv pipes; the operation ends with
 * {"return": code} once the command has exited and its output has been sent. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"

#define EXEC_CONNECT_TIMEOUT_MS 30000
#define EXEC_BACKLOG_MAX (1024 * 1024) /* stop reading output past this much unsent */

enum { S_STDIN, S_STDOUT, S_STDERR, S_CONTROL, S_MAX };

struct exec_session;

struct exec_stream {
	struct exec_session *s;
	int index;
	char secret[65];
	struct api_ws *ws;
	bool used; /* the secret was taken */
	uv_pipe_t pipe; /* our end: stdout/stderr read, stdin write (interactive: pty master) */
	bool pipe_open, reading, eof;
};

struct exec_session {
	struct exec_session *next;
	struct api_ctx *ctx;
	struct api_op *op;
	char name[64];
	char **args; /* kiva-helper exec ... */
	bool interactive;
	bool console; /* the container's console, not a command (ends when the client leaves) */
	int console_hold; /* liblxc's socket that keeps the console taken (-1: none) */
	unsigned width, height;
	struct exec_stream st[S_MAX];
	int needed; /* websockets still to connect */
	uv_timer_t timer; /* connect timeout, then output backpressure */
	int child_fds[3]; /* given to the helper, closed once it runs */
	int status_fd;
	char status_path[4096];
	int pid;
	bool started, exited, done, timer_closed;
	/* stdin that came before the command started (the client writes once its stdin socket
	 * is up, the others may still be connecting) */
	char *early;
	size_t early_len;
	bool early_eof;
	int exit_code;
	char errmsg[1024];
	int refs; /* handles still open */
};

static struct exec_session *sessions;

static void session_unref(struct exec_session *s)
{
	if (--s->refs > 0)
		return;
	for (struct exec_session **p = &sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	for (int i = 0; i < 3; i++)
		if (s->child_fds[i] >= 0)
			close(s->child_fds[i]);
	if (s->status_fd >= 0)
		close(s->status_fd);
	if (s->console_hold >= 0)
		close(s->console_hold);
	strv_free(s->args);
	free(s->early);
	free(s);
}

static void timer_closed(uv_handle_t *h)
{
	session_unref(h->data);
}

static void pipe_closed(uv_handle_t *h)
{
	struct exec_stream *e = h->data;

	session_unref(e->s);
}

/* The operation ends when the command exited and its output streams reached EOF. */
static void maybe_done(struct exec_session *s)
{
	int outs = s->interactive ? 1 : 3;

	if (s->done || !s->exited)
		return;
	for (int i = s->interactive ? S_STDIN : S_STDOUT; i < outs; i++)
		if (s->st[i].pipe_open && !s->st[i].eof)
			return;
	s->done = true;
	for (int i = 0; i < S_MAX; i++) {
		struct exec_stream *e = &s->st[i];

		if (e->ws) {
			if (i != S_CONTROL)
				(void)api_ws_send(e->ws, "", 0, false); /* barrier */
			api_ws_close(e->ws);
			/* the session goes before the connection: it must not call back here */
			api_ws_set_user(e->ws, NULL, NULL);
			e->ws = NULL;
		}
		if (e->pipe_open) {
			e->pipe_open = false;
			uv_close((uv_handle_t *)&e->pipe, pipe_closed);
		}
	}
	if (s->errmsg[0])
		api_op_fail(s->op, "%s", s->errmsg);
	else
		api_op_succeed(s->op, json_pack("{s:i}", "return", s->exit_code));
	if (!s->timer_closed) {
		s->timer_closed = true;
		uv_close((uv_handle_t *)&s->timer, timer_closed);
	}
	session_unref(s); /* the session's own reference */
}

/* ---- output: pipe → WebSocket ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[65536];

	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void on_output(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct exec_stream *e = st->data;

	if (n > 0) {
		if (e->ws && api_ws_send(e->ws, buf->base, (size_t)n, true) == 0 &&
		    api_ws_queued(e->ws) > EXEC_BACKLOG_MAX) {
			uv_read_stop(st); /* resumed by the timer when the client caught up */
			e->reading = false;
		}
		return;
	}
	if (n < 0) {
		/* EOF, or EIO on a pty master once the command and its children are gone */
		uv_read_stop(st);
		e->reading = false;
		e->eof = true;
		maybe_done(e->s);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct exec_session *s = t->data;

	if (!s->started) {
		snprintf(s->errmsg, sizeof(s->errmsg),
			 "The exec WebSockets were not all connected within %d s",
			 EXEC_CONNECT_TIMEOUT_MS / 1000);
		s->exited = true;
		for (int i = 0; i < S_MAX; i++)
			s->st[i].eof = true;
		maybe_done(s);
		return;
	}
	for (int i = S_STDIN; i <= S_STDERR; i++) {
		struct exec_stream *e = &s->st[i];

		if (e->pipe_open && !e->reading && !e->eof && (i != S_STDIN || s->interactive) &&
		    api_ws_queued(e->ws) < EXEC_BACKLOG_MAX / 2) {
			uv_read_start((uv_stream_t *)&e->pipe, on_alloc, on_output);
			e->reading = true;
		}
	}
}

/* ---- input: WebSocket → pipe ---- */

struct write_req {
	uv_write_t req;
	char data[];
};

static void on_written(uv_write_t *w, int status)
{
	free(w);
}

static void stdin_shut(uv_shutdown_t *req, int status)
{
	struct exec_stream *e = req->data;

	free(req);
	uv_close((uv_handle_t *)&e->pipe, pipe_closed);
}

/* End of stdin: after what is queued has been written (a close would drop it). */
static void close_stdin(struct exec_stream *e)
{
	uv_shutdown_t *req;

	if (e->s->interactive || !e->pipe_open)
		return;
	e->pipe_open = false;
	req = malloc(sizeof(*req));
	if (req) {
		req->data = e;
		if (uv_shutdown(req, (uv_stream_t *)&e->pipe, stdin_shut) == 0)
			return;
		free(req);
	}
	uv_close((uv_handle_t *)&e->pipe, pipe_closed);
}

static void control_message(struct exec_session *s, const unsigned char *data, size_t len)
{
	cleanup_json json_t *msg = json_loadb((const char *)data, len, 0, NULL);
	const char *cmd = json_get_str(msg, "command", "");

	if (streq(cmd, "window-resize") && s->interactive && s->st[S_STDIN].pipe_open) {
		const json_t *args = json_object_get(msg, "args");
		struct winsize ws = {0};
		int fd;

		ws.ws_col = (unsigned short)atoi(json_get_str(args, "width", "80"));
		ws.ws_row = (unsigned short)atoi(json_get_str(args, "height", "24"));
		if (uv_fileno((uv_handle_t *)&s->st[S_STDIN].pipe, &fd) == 0)
			(void)ioctl(fd, TIOCSWINSZ, &ws);
	} else if (streq(cmd, "signal")) {
		int sig = (int)json_integer_value(json_object_get(msg, "signal"));

		/* kiva-helper forwards it to the command */
		if (s->pid > 0 && !s->exited && sig > 0 && sig < NSIG)
			kill(s->pid, sig);
	}
}

static void ws_message(struct api_ws *ws, void *user, const unsigned char *data, size_t len,
		       bool binary)
{
	struct exec_stream *e = user;
	struct write_req *w;
	uv_buf_t buf;

	if (e->index == S_CONTROL) {
		control_message(e->s, data, len);
		return;
	}
	if (e->index != S_STDIN)
		return; /* output sockets carry nothing from the client */
	if (!e->s->started) {
		struct exec_session *s = e->s;
		char *p;

		if (!binary && len == 0) {
			s->early_eof = true;
			return;
		}
		if (s->early_len + len > EXEC_BACKLOG_MAX)
			return;
		p = realloc(s->early, s->early_len + len);
		if (!p)
			return;
		memcpy(p + s->early_len, data, len);
		s->early = p;
		s->early_len += len;
		return;
	}
	if (!binary && len == 0) {
		close_stdin(e); /* the barrier: end of stdin */
		return;
	}
	if (!e->pipe_open || len == 0)
		return;
	w = malloc(sizeof(*w) + len);
	if (!w)
		return;
	memcpy(w->data, data, len);
	buf = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&e->pipe, &buf, 1, on_written) < 0)
		free(w);
}

static void ws_closed(struct api_ws *ws, void *user)
{
	struct exec_stream *e = user;

	e->ws = NULL;
	if (e->index == S_STDIN)
		close_stdin(e);
	/* a client gone before the end: the command is told as a terminal would be */
	if (e->index == S_CONTROL && e->s->pid > 0 && !e->s->exited && e->s->interactive)
		kill(e->s->pid, SIGHUP);
	/* a console ends when its client leaves (the console itself goes on) */
	if (e->s->console && !e->s->done) {
		e->s->exited = true;
		for (int i = 0; i < S_MAX; i++)
			e->s->st[i].eof = true;
		maybe_done(e->s);
	}
}

static const struct api_ws_handler stream_handler = {ws_message, ws_closed};

/* ---- the command ---- */

static void exec_exited(void *userdata, const struct api_spawn_result *res)
{
	struct exec_session *s = userdata;
	cleanup_free char *status = NULL;
	int ret;

	if (s->done) {
		unlink(s->status_path);
		session_unref(s);
		return;
	}
	s->exited = true;
	if (read_file(s->status_path, 4096, &status, NULL) < 0 || !status[0])
		snprintf(s->errmsg, sizeof(s->errmsg), "Failed to run the command in '%s': %s",
			 s->name, res->message[0] ? res->message : "kiva-helper failed");
	else if (startswith(status, "error "))
		snprintf(s->errmsg, sizeof(s->errmsg), "%.*s", (int)strcspn(status + 6, "\n"),
			 status + 6);
	else if (sscanf(status, "exit %d", &ret) == 1)
		s->exit_code = ret;
	else
		snprintf(s->errmsg, sizeof(s->errmsg), "Bad helper status");
	unlink(s->status_path);
	/* the pty master reads EIO only after every holder of the slave is gone: our copy too */
	maybe_done(s);
	session_unref(s); /* the helper's reference */
}

static int open_pipe(struct exec_session *s, int idx, int fd)
{
	struct exec_stream *e = &s->st[idx];

	if (uv_pipe_init(s->ctx->loop, &e->pipe, 0) < 0 || uv_pipe_open(&e->pipe, fd) < 0) {
		close(fd);
		return -EIO;
	}
	e->pipe.data = e;
	e->pipe_open = true;
	s->refs++;
	if (idx != S_STDIN || s->interactive) {
		uv_read_start((uv_stream_t *)&e->pipe, on_alloc, on_output);
		e->reading = true;
	}
	return 0;
}

static int start_console(struct exec_session *s)
{
	struct winsize ws = {.ws_col = (unsigned short)s->width,
			     .ws_row = (unsigned short)s->height};
	char errbuf[256];
	int fd, r;

	r = runtime_console_fd(s->ctx->lxcpath, s->name, &fd, &s->console_hold, errbuf,
			       sizeof(errbuf));
	if (r < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "%s", errbuf);
		return r;
	}
	(void)ioctl(fd, TIOCSWINSZ, &ws);
	s->started = true;
	uv_timer_start(&s->timer, on_timer, 20, 20);
	return open_pipe(s, S_STDIN, fd);
}

static int start_command(struct exec_session *s)
{
	int ours[3] = {-1, -1, -1}, r;

	if (s->console)
		return start_console(s);
	if (s->interactive) {
		int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave;
		struct winsize ws = {.ws_col = (unsigned short)s->width,
				     .ws_row = (unsigned short)s->height};

		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
			return -errno;
		slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0) {
			close(master);
			return -errno;
		}
		(void)ioctl(master, TIOCSWINSZ, &ws);
		ours[0] = master;
		s->child_fds[0] = slave;
		s->child_fds[1] = dup(slave);
		s->child_fds[2] = dup(slave);
	} else {
		for (int i = 0; i < 3; i++) {
			int p[2];

			if (pipe2(p, O_CLOEXEC) < 0)
				return -errno;
			ours[i] = i == 0 ? p[1] : p[0];
			s->child_fds[i] = i == 0 ? p[0] : p[1];
		}
	}
	r = api_spawn_helper_io(s->ctx, s->ctx->helper_path, s->args, s->child_fds[0],
				s->child_fds[1], s->child_fds[2], s->status_fd, exec_exited, s,
				&s->pid);
	/* the helper has its copies: ours go, so EOF and EIO come when it is done */
	for (int i = 0; i < 3; i++) {
		close(s->child_fds[i]);
		s->child_fds[i] = -1;
	}
	close(s->status_fd);
	s->status_fd = -1;
	if (r < 0) {
		for (int i = 0; i < 3; i++)
			if (ours[i] >= 0)
				close(ours[i]);
		return r;
	}
	s->started = true;
	s->refs++; /* until exec_exited */
	uv_timer_start(&s->timer, on_timer, 20, 20); /* from now on: output backpressure */
	for (int i = 0; i < (s->interactive ? 1 : 3); i++)
		if (open_pipe(s, i, ours[i]) < 0)
			return -EIO;
	if (s->early_len)
		ws_message(s->st[S_STDIN].ws, &s->st[S_STDIN], (unsigned char *)s->early,
			   s->early_len, true);
	if (s->early_eof)
		close_stdin(&s->st[S_STDIN]);
	return 0;
}

int api_ops_websocket(struct api_ws *ws, struct api_ctx *ctx, const char *id, const char *secret)
{
	struct exec_session *s;

	if (!secret || !*secret)
		return -1;
	for (s = sessions; s; s = s->next) {
		if (s->ctx != ctx || strcmp(s->op->id, id) != 0)
			continue;
		if (s->done)
			return -1; /* over (ended, cancelled, timed out) */
		for (int i = 0; i < S_MAX; i++) {
			struct exec_stream *e = &s->st[i];

			if (!e->secret[0] || !streq(e->secret, secret))
				continue;
			if (e->used) {
				log_warning("Exec %s: a second connection on a used secret", id);
				return -1; /* single use */
			}
			e->used = true;
			e->ws = ws;
			api_ws_set_user(ws, &stream_handler, e);
			if (--s->needed == 0 && start_command(s) < 0) {
				if (!s->errmsg[0])
					snprintf(s->errmsg, sizeof(s->errmsg),
						 "Failed to start the command");
				s->exited = true;
				maybe_done(s);
			}
			return 0;
		}
		return -1; /* a wrong secret */
	}
	return -1;
}

int api_exec_websocket_begin(struct api_ctx *ctx, struct api_op *op, const char *name, char **args,
			     bool interactive, unsigned width, unsigned height, int status_fd,
			     const char *status_path, struct kiva_error *reterr)
{
	struct exec_session *s = calloc(1, sizeof(*s));
	json_t *fds;

	if (!s) {
		strv_free(args);
		if (status_fd >= 0)
			close(status_fd);
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	}
	s->console = !args;
	s->console_hold = -1;
	s->ctx = ctx;
	s->op = op;
	s->args = args;
	s->interactive = interactive;
	s->width = width ? width : 80;
	s->height = height ? height : 24;
	s->status_fd = status_fd;
	s->child_fds[0] = s->child_fds[1] = s->child_fds[2] = -1;
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->status_path, sizeof(s->status_path), "%s", status_path);
	fds = json_object();
	for (int i = 0; i < S_MAX; i++) {
		struct exec_stream *e = &s->st[i];
		char key[16];

		e->s = s;
		e->index = i;
		if (interactive && (i == S_STDOUT || i == S_STDERR))
			continue;
		if (random_hex(e->secret, 32) < 0) {
			json_decref(fds);
			strv_free(args);
			free(s);
			return kiva_error_set(reterr, -EIO, "No randomness for the secrets");
		}
		snprintf(key, sizeof(key), "%s", i == S_CONTROL ? "control" : (char[]){'0' + i, 0});
		json_object_set_new(fds, key, json_string(e->secret));
		s->needed++;
	}
	json_decref(op->metadata);
	op->metadata = json_pack("{s:o}", "fds", fds);
	op->may_cancel = true;
	s->refs = 2; /* the session itself, the timer */
	uv_timer_init(ctx->loop, &s->timer);
	s->timer.data = s;
	uv_timer_start(&s->timer, on_timer, EXEC_CONNECT_TIMEOUT_MS, 20);
	s->next = sessions;
	sessions = s;
	return 0;
}

void api_exec_stop_all(struct api_ctx *ctx)
{
	struct exec_session *s = sessions, *next;

	/* kivad is stopping: the commands keep running in their containers (kiva-helper is not
	 * killed), their streams end here so the loop can finish */
	for (; s; s = next) {
		next = s->next;
		if (s->ctx != ctx || s->done)
			continue;
		if (!s->exited && !s->errmsg[0])
			snprintf(s->errmsg, sizeof(s->errmsg), "kivad is stopping");
		s->exited = true;
		for (int i = 0; i < S_MAX; i++)
			s->st[i].eof = true;
		maybe_done(s);
	}
}

/* ---- /1.0/instances/NAME/console ---- */

static char *console_log(struct api_ctx *ctx, const char *name)
{
	return strf("%s/%s/console.log", ctx->lxcpath, name);
}

void api_console_handle_get(struct api_request *req)
{
	cleanup_free char *path = NULL;
	struct stat st;
	int fd;

	if (!store_instance(req->ctx->store, req->params[0])) {
		api_reply_error(req, 404, "Instance '%s' not found", req->params[0]);
		return;
	}
	path = console_log(req->ctx, req->params[0]);
	fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		api_reply_raw(req, 200, "application/octet-stream", NULL, 0);
		return;
	}
	api_reply_file(req, 200, "application/octet-stream", fd, (size_t)st.st_size);
}

void api_console_handle_delete(struct api_request *req)
{
	cleanup_free char *path = NULL;

	if (!store_instance(req->ctx->store, req->params[0])) {
		api_reply_error(req, 404, "Instance '%s' not found", req->params[0]);
		return;
	}
	path = console_log(req->ctx, req->params[0]);
	if (path && truncate(path, 0) < 0 && errno != ENOENT) {
		api_reply_error(req, 500, "Failed to clear the console log: %m");
		return;
	}
	api_reply_sync(req, NULL);
}

void api_console_handle_post(struct api_request *req)
{
	struct api_ctx *ctx = req->ctx;
	const char *name = req->params[0];
	cleanup_json json_t *body = NULL;
	struct kiva_error err = {0};
	const char *type;
	struct api_op *op;
	json_t *w, *h;
	char url[128];

	if (!store_instance(ctx->store, name)) {
		api_reply_error(req, 404, "Instance '%s' not found", name);
		return;
	}
	if (api_parse_body(req, &body) < 0)
		return;
	type = json_get_str(body, "type", "console");
	if (!streq(type, "console")) {
		api_reply_error(
			req, 400,
			"Console type '%s' is not supported: containers have a text console "
			"only",
			type);
		return;
	}
	if (runtime_state(ctx->lxcpath, name) != RUNTIME_RUNNING) {
		api_reply_error(req, 400, "Instance is not running");
		return;
	}
	w = json_object_get(body, "width");
	h = json_object_get(body, "height");
	snprintf(url, sizeof(url), "/1.0/instances/%s", name);
	op = api_op_new(ctx, "Showing console", json_pack("{s:[s]}", "instances", url));
	if (!op ||
	    api_exec_websocket_begin(ctx, op, name, NULL, true,
				     json_is_integer(w) ? (unsigned)json_integer_value(w) : 0,
				     json_is_integer(h) ? (unsigned)json_integer_value(h) : 0, -1,
				     "", &err) < 0) {
		api_reply_error(req, 500, "Failed to prepare the console: %s", err.msg);
		if (op)
			api_op_fail(op, "Failed to prepare the console");
		return;
	}
	api_reply_async(req, op);
}

int api_exec_cancel(struct api_ctx *ctx, struct api_op *op)
{
	for (struct exec_session *s = sessions; s; s = s->next) {
		if (s->ctx != ctx || s->op != op || s->done)
			continue;
		snprintf(s->errmsg, sizeof(s->errmsg), "Operation cancelled");
		if (!s->started || s->console) {
			s->exited = true;
			for (int i = 0; i < S_MAX; i++)
				s->st[i].eof = true;
			maybe_done(s);
		} else if (s->pid > 0 && !s->exited) {
			kill(s->pid, SIGTERM);
		}
		return 0;
	}
	return -ENOENT;
}
