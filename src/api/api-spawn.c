/* Runs kiva-helper (liblxc start/stop/freeze/exec, image builds and unpacking) as a child process
 * watched by the loop: blocking work never runs on kivad's loop, and the container monitor forks
 * from the small helper, not from kivad (DESIGN.md §2). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-string.h"

struct spawn {
	uv_process_t proc;
	uv_pipe_t err_pipe;
	bool capture;
	bool exited, drained;
	int pending_closes;
	struct api_spawn_result res;
	char errbuf[4096];
	size_t errlen;
	api_spawn_cb cb;
	void *userdata;
	struct api_ctx *ctx;
};

static void spawn_handle_closed(uv_handle_t *h)
{
	struct spawn *s = h->data;

	if (--s->pending_closes > 0)
		return;
	/* parse the last "Error: ..." line of stderr */
	if (s->capture && s->errlen > 0) {
		char *line, *save = NULL, *last = NULL;

		s->errbuf[s->errlen] = 0;
		for (line = strtok_r(s->errbuf, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			if (*line)
				last = line;
		if (last) {
			if (startswith(last, "Error: "))
				last += strlen("Error: ");
			snprintf(s->res.message, sizeof(s->res.message), "%s", last);
		}
	}
	s->ctx->pending_tasks--;
	s->cb(s->userdata, &s->res);
	free(s);
}

static void maybe_finish(struct spawn *s)
{
	if (!s->exited || !s->drained)
		return;
	uv_close((uv_handle_t *)&s->proc, spawn_handle_closed);
	if (s->capture)
		uv_close((uv_handle_t *)&s->err_pipe, spawn_handle_closed);
}

static void on_child_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct spawn *s = p->data;

	s->res.exit_status = term_signal ? 128 + term_signal : (int)exit_status;
	s->exited = true;
	maybe_finish(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct spawn *s = h->data;
	size_t room = sizeof(s->errbuf) - 1 - s->errlen;

	if (room == 0) {
		/* keep the tail: the last line is what matters */
		memmove(s->errbuf, s->errbuf + sizeof(s->errbuf) / 2, sizeof(s->errbuf) / 2);
		s->errlen = sizeof(s->errbuf) / 2;
		room = sizeof(s->errbuf) - 1 - s->errlen;
	}
	buf->base = s->errbuf + s->errlen;
	buf->len = room;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct spawn *s = st->data;

	if (n > 0) {
		s->errlen += (size_t)n;
		return;
	}
	if (n < 0) {
		uv_read_stop(st);
		s->drained = true;
		maybe_finish(s);
	}
}

int api_spawn_helper(struct api_ctx *ctx, const char *program, char *const args[], int fd_out,
		     int fd_err, int extra_fd, api_spawn_cb cb, void *userdata)
{
	return api_spawn_helper_io(ctx, program, args, -1, fd_out, fd_err, extra_fd, cb, userdata,
				   NULL);
}

int api_spawn_helper_io(struct api_ctx *ctx, const char *program, char *const args[], int fd_in,
			int fd_out, int fd_err, int extra_fd, api_spawn_cb cb, void *userdata,
			int *ret_pid)
{
	uv_process_options_t opts = {0};
	uv_stdio_container_t stdio[4];
	cleanup_free char **argv = NULL;
	size_t n = 0, nargs = strv_length(args);
	struct spawn *s;
	int r;

	argv = calloc(nargs + 2, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	argv[n++] = (char *)program;
	for (size_t i = 0; i < nargs; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cb = cb;
	s->userdata = userdata;
	s->ctx = ctx;
	s->capture = fd_err < 0;
	s->drained = !s->capture;
	s->proc.data = s;
	s->err_pipe.data = s;

	if (fd_in >= 0) {
		stdio[0].flags = UV_INHERIT_FD;
		stdio[0].data.fd = fd_in;
	} else {
		stdio[0].flags = UV_IGNORE;
	}
	if (fd_out >= 0) {
		stdio[1].flags = UV_INHERIT_FD;
		stdio[1].data.fd = fd_out;
	} else {
		stdio[1].flags = UV_IGNORE;
	}
	if (s->capture) {
		uv_pipe_init(ctx->loop, &s->err_pipe, 0);
		stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
		stdio[2].data.stream = (uv_stream_t *)&s->err_pipe;
	} else {
		stdio[2].flags = UV_INHERIT_FD;
		stdio[2].data.fd = fd_err;
	}
	opts.stdio_count = 3;
	if (extra_fd >= 0) {
		stdio[3].flags = UV_INHERIT_FD;
		stdio[3].data.fd = extra_fd;
		opts.stdio_count = 4;
	}
	opts.file = program;
	opts.args = argv;
	opts.stdio = stdio;
	opts.exit_cb = on_child_exit;
	r = uv_spawn(ctx->loop, &s->proc, &opts);
	if (r < 0) {
		s->pending_closes = 1 + (s->capture ? 1 : 0);
		/* uv_spawn failed: the handle must still be closed; report through cb */
		s->res.exit_status = 127;
		snprintf(s->res.message, sizeof(s->res.message), "Failed to run %s: %s", program,
			 uv_strerror(r));
		s->capture = false;
		ctx->pending_tasks++;
		uv_close((uv_handle_t *)&s->proc, spawn_handle_closed);
		if (stdio[2].flags & UV_CREATE_PIPE)
			uv_close((uv_handle_t *)&s->err_pipe, spawn_handle_closed);
		return 0;
	}
	ctx->pending_tasks++;
	if (ret_pid)
		*ret_pid = s->proc.pid;
	s->pending_closes = 1 + (s->capture ? 1 : 0);
	if (s->capture)
		uv_read_start((uv_stream_t *)&s->err_pipe, on_alloc, on_read);
	return 0;
}
