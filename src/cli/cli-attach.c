/* The streams of kiva exec and kiva console: local stdin/stdout/stderr <-> kivad's WebSockets in
 * one poll(2) loop, signals taken through a signalfd so the loop stays single-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "basic-json.h"
#include "basic-macro.h"
#include "basic-string.h"

#include "cli-attach.h"

/* ---- pure parts ------------------------------------------------------------------------- */

size_t cli_console_escape_filter(struct cli_console_escape *e, const uint8_t *in, size_t len,
				 uint8_t *out, bool *ret_detach)
{
	size_t o = 0;

	*ret_detach = false;
	for (size_t i = 0; i < len; i++) {
		if (e->pending) {
			e->pending = false;
			if (in[i] == 'q') {
				*ret_detach = true;
				return o;
			}
			out[o++] = CLI_CONSOLE_ESCAPE;
		}
		if (in[i] == CLI_CONSOLE_ESCAPE)
			e->pending = true;
		else
			out[o++] = in[i];
	}
	return o;
}

char *cli_control_window_resize(unsigned width, unsigned height)
{
	cleanup_json json_t *msg = NULL;
	char w[16], h[16];

	snprintf(w, sizeof(w), "%u", width);
	snprintf(h, sizeof(h), "%u", height);
	msg = json_pack("{s:s, s:{s:s, s:s}}", "command", "window-resize", "args", "width", w,
			"height", h);
	return msg ? json_dumps(msg, JSON_COMPACT) : NULL;
}

char *cli_control_signal(int sig)
{
	cleanup_json json_t *msg = json_pack("{s:s, s:i}", "command", "signal", "signal", sig);

	return msg ? json_dumps(msg, JSON_COMPACT) : NULL;
}

/* ---- terminal --------------------------------------------------------------------------- */

int cli_terminal_size(unsigned *ret_width, unsigned *ret_height)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
		return -ENOTTY;
	if (ws.ws_col == 0 || ws.ws_row == 0)
		return -ENOTTY;
	*ret_width = ws.ws_col;
	*ret_height = ws.ws_row;
	return 0;
}

/* ---- the relay -------------------------------------------------------------------------- */

struct relay {
	struct cli_attach *a;
	struct kiva_error *reterr;
	bool open[CLI_ATTACH_N]; /* the WebSocket is still up */
	bool ended[CLI_ATTACH_N]; /* its output ended (barrier or close) */
	bool reading_stdin;
	bool done;
	struct cli_console_escape esc;
	uint8_t buf[64 * 1024];
	uint8_t filtered[64 * 1024 + 1];
};

struct stream_ref {
	struct relay *r;
	int index;
};

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};

				(void)poll(&pfd, 1, -1);
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool relay_finished(const struct relay *r)
{
	if (r->done)
		return true;
	if (r->a->mode == CLI_ATTACH_EXEC)
		return r->ended[CLI_ATTACH_STDOUT] && r->ended[CLI_ATTACH_STDERR];
	return r->ended[CLI_ATTACH_STDIN];
}

/* A message on stream index: output to write, or the end of a stream. */
static int on_message(void *userdata, const struct cli_ws_message *m)
{
	struct stream_ref *ref = userdata;
	struct relay *r = ref->r;
	int fd, k;

	if (m->opcode == CLI_WS_CLOSE || (m->opcode == CLI_WS_TEXT && m->len == 0)) {
		r->ended[ref->index] = true;
		if (ref->index == CLI_ATTACH_STDIN && r->a->mode == CLI_ATTACH_EXEC &&
		    m->opcode == CLI_WS_CLOSE)
			r->reading_stdin = false; /* nowhere to send it any more */
		return 0;
	}
	if (m->opcode != CLI_WS_TEXT && m->opcode != CLI_WS_BINARY)
		return 0;
	if (ref->index == CLI_ATTACH_CONTROL)
		return 0; /* kivad sends nothing there; LXD's clients ignore it too */
	if (ref->index == CLI_ATTACH_STDIN && r->a->mode == CLI_ATTACH_EXEC)
		return 0;
	fd = ref->index == CLI_ATTACH_STDERR ? STDERR_FILENO : STDOUT_FILENO;
	k = write_all(fd, m->data, m->len);
	if (k < 0)
		return kiva_error_set(r->reterr, k, "Failed to write the output: %s", strerror(-k));
	return 0;
}

static int send_control(struct relay *r, char *msg)
{
	cleanup_free char *text = msg;

	if (!text)
		return -ENOMEM;
	if (!r->open[CLI_ATTACH_CONTROL])
		return -ENOTCONN;
	return cli_ws_send(r->a->ws[CLI_ATTACH_CONTROL], CLI_WS_TEXT, text, strlen(text));
}

/* The end of stdin: LXD's barrier, an empty text message, tells the command. Only pipes have an
 * end to tell; a pseudo-terminal gets its ^D as a byte. */
static void stdin_ended(struct relay *r)
{
	r->reading_stdin = false;
	if (r->a->mode == CLI_ATTACH_EXEC && r->open[CLI_ATTACH_STDIN])
		(void)cli_ws_send(r->a->ws[CLI_ATTACH_STDIN], CLI_WS_TEXT, "", 0);
}

static void on_stdin(struct relay *r)
{
	const uint8_t *data = r->buf;
	ssize_t n;

	do
		n = read(STDIN_FILENO, r->buf, sizeof(r->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		stdin_ended(r); /* EOF, or EIO when a terminal hung up */
		return;
	}
	if (r->a->mode == CLI_ATTACH_CONSOLE) {
		bool detach;

		n = (ssize_t)cli_console_escape_filter(&r->esc, r->buf, (size_t)n, r->filtered,
						       &detach);
		data = r->filtered;
		if (detach) {
			r->a->detached = true;
			r->done = true;
		}
	}
	if (n > 0 && r->open[CLI_ATTACH_STDIN] &&
	    cli_ws_send(r->a->ws[CLI_ATTACH_STDIN], CLI_WS_BINARY, data, (size_t)n) < 0)
		r->reading_stdin = false; /* kivad closed it: the command is gone */
}

static void on_signal(struct relay *r, int sig)
{
	unsigned w, h;

	if (sig == SIGWINCH) {
		if (r->a->mode != CLI_ATTACH_EXEC && cli_terminal_size(&w, &h) >= 0)
			(void)send_control(r, cli_control_window_resize(w, h));
		return;
	}
	if (r->a->mode == CLI_ATTACH_CONSOLE) {
		r->a->detached = true;
		r->a->signal = sig;
		r->done = true;
		return;
	}
	/* lxc exec forwards it to the command; with nobody left to tell, stop here */
	if (send_control(r, cli_control_signal(sig)) < 0) {
		r->a->signal = sig;
		r->done = true;
	}
}

static int relay_loop(struct relay *r, int sfd)
{
	struct stream_ref refs[CLI_ATTACH_N];

	for (int i = 0; i < CLI_ATTACH_N; i++)
		refs[i] = (struct stream_ref){r, i};
	while (!relay_finished(r)) {
		struct pollfd pfd[2 + CLI_ATTACH_N];
		int map[2 + CLI_ATTACH_N], n = 0, timeout = -1, k;

		pfd[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
		map[n++] = -1;
		if (r->reading_stdin) {
			pfd[n] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
			map[n++] = -2;
		}
		for (int i = 0; i < CLI_ATTACH_N; i++) {
			if (!r->open[i])
				continue;
			if (cli_ws_has_buffered(r->a->ws[i]))
				timeout = 0;
			pfd[n] = (struct pollfd){.fd = cli_ws_fd(r->a->ws[i]), .events = POLLIN};
			map[n++] = i;
		}
		k = poll(pfd, (nfds_t)n, timeout);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return kiva_error_set(r->reterr, -errno, "poll: %s", strerror(errno));
		}
		for (int j = 0; j < n && !r->done; j++) {
			int i = map[j];

			if (i >= 0 && (pfd[j].revents || cli_ws_has_buffered(r->a->ws[i]))) {
				k = cli_ws_read(r->a->ws[i], on_message, &refs[i]);
				if (k < 0)
					return kiva_error_default(r->reterr, k,
								  "Connection to kivad failed: %s",
								  strerror(-k));
				if (k == 0) {
					r->open[i] = false;
					r->ended[i] = true;
					if (i == CLI_ATTACH_STDIN)
						r->reading_stdin = false;
				}
			} else if (i == -2 && pfd[j].revents) {
				on_stdin(r);
			} else if (i == -1 && (pfd[j].revents & POLLIN)) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					on_signal(r, (int)si.ssi_signo);
			}
		}
	}
	return 0;
}

int cli_attach_run(struct cli_attach *a, struct kiva_error *reterr)
{
	static const int signals[] = {SIGWINCH, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	cleanup_free struct relay *r = calloc(1, sizeof(*r));
	cleanup_close int sfd = -EBADF;
	sigset_t mask, old;
	struct termios saved;
	bool raw = false;
	int k;

	if (!r)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r->a = a;
	r->reterr = reterr;
	for (int i = 0; i < CLI_ATTACH_N; i++) {
		r->open[i] = a->ws[i] != NULL;
		r->ended[i] = a->ws[i] == NULL;
	}
	r->reading_stdin = a->ws[CLI_ATTACH_STDIN] && !a->disable_stdin;
	if (a->ws[CLI_ATTACH_STDIN] && a->disable_stdin)
		stdin_ended(r);

	sigemptyset(&mask);
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		sigaddset(&mask, signals[i]);
	if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
		return kiva_error_set(reterr, -errno, "sigprocmask: %s", strerror(errno));
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		k = kiva_error_set(reterr, -errno, "signalfd: %s", strerror(errno));
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		return k;
	}
	/* A pseudo-terminal on the other side does the line editing and echo: pass keys raw. */
	if (a->mode != CLI_ATTACH_EXEC && r->reading_stdin && isatty(STDIN_FILENO) &&
	    tcgetattr(STDIN_FILENO, &saved) >= 0) {
		struct termios t = saved;

		cfmakeraw(&t);
		raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) >= 0;
	}

	k = relay_loop(r, sfd);

	if (raw)
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	/* Close every stream; kivad has usually closed them already. */
	for (int i = 0; i < CLI_ATTACH_N; i++)
		if (a->ws[i] && r->open[i])
			(void)cli_ws_shutdown(a->ws[i], CLI_WS_CLOSE_NORMAL, 1000);
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
	return k;
}
