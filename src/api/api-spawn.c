/* Runs kiva-helper (liblxc start/stop/freeze/exec, image builds and unpacking) as a child process
 * watched by the loop: blocking work never runs on kivad's loop, and the container monitor forks
 * from the small helper, not from kivad (DESIGN.md §2).
 *
 * posix_spawn(3), not uv_spawn: glibc spawns with clone(CLONE_VM|CLONE_VFORK), so the loop pauses
 * only until the child's execve, where libuv's fork(2) copied kivad's page tables first (0.5-20 ms
 * a spawn with 20 containers starting on two CPUs, events and requests waiting meanwhile). The
 * exit is watched through a pidfd on the loop (waitid(P_PIDFD)); libuv's SIGCHLD handler only
 * reaps the processes it spawned itself. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "api-internal.h"
#include "basic-fs.h"
#include "basic-log.h"
#include "basic-string.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

struct spawn {
	uv_work_t work; /* api_spawn_helper: the spawn itself in the thread pool */
	char **argv;
	int fds[4]; /* copies of the borrowed stdin, stdout, stderr, fd 3 (-1: none) */
	int child_err; /* write end of the stderr pipe (capture) */
	int spawn_r;
	uv_poll_t exit_poll;
	uv_timer_t fail_timer; /* could not run: closed at once, so cb still runs from the loop */
	uv_pipe_t err_pipe;
	int pidfd;
	int errfd; /* read end of the stderr pipe (capture) */
	pid_t pid;
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
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->ctx->pending_tasks--;
	s->cb(s->userdata, &s->res);
	free(s);
}

static void maybe_finish(struct spawn *s)
{
	if (!s->exited || !s->drained)
		return;
	uv_close((uv_handle_t *)&s->exit_poll, spawn_handle_closed);
	if (s->capture)
		uv_close((uv_handle_t *)&s->err_pipe, spawn_handle_closed);
}

static void on_child_exit(uv_poll_t *h, int status, int events)
{
	struct spawn *s = h->data;
	siginfo_t si = {0};
	int r;

	(void)status;
	(void)events;
	do
		r = waitid((idtype_t)P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		log_warning("waitid on kiva-helper %d failed: %m", (int)s->pid);
		si.si_code = CLD_EXITED;
		si.si_status = 127;
	} else if (si.si_pid == 0) {
		return; /* spurious wake-up: not exited yet */
	}
	uv_poll_stop(h);
	s->res.exit_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
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

/* The file actions: stdin, stdout, stderr and fd 3 of the child (a dup2 onto the same number
 * clears close-on-exec, glibc >= 2.29). */
static int spawn_actions(posix_spawn_file_actions_t *fa, int fd_in, int fd_out, int fd_err,
			 int extra_fd)
{
	int r = 0;

	if (fd_in >= 0)
		r = posix_spawn_file_actions_adddup2(fa, fd_in, 0);
	else
		r = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	if (r == 0)
		r = fd_out >= 0 ? posix_spawn_file_actions_adddup2(fa, fd_out, 1)
				: posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY, 0);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(fa, fd_err, 2);
	if (r == 0 && extra_fd >= 0)
		r = posix_spawn_file_actions_adddup2(fa, extra_fd, 3);
	return -r;
}

static int spawn_child(const char *program, char *const argv[], int fd_in, int fd_out, int fd_err,
		       int extra_fd, pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t all, none;
	int r;

	sigfillset(&all);
	sigemptyset(&none);
	r = -posix_spawn_file_actions_init(&fa);
	if (r < 0)
		return r;
	r = -posix_spawnattr_init(&attr);
	if (r < 0) {
		posix_spawn_file_actions_destroy(&fa);
		return r;
	}
	/* as uv_spawn did: default dispositions (kivad's SIGPIPE ignore included), nothing
	 * blocked */
	r = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	if (r == 0)
		r = -posix_spawnattr_setsigdefault(&attr, &all);
	if (r == 0)
		r = -posix_spawnattr_setsigmask(&attr, &none);
	if (r == 0)
		r = spawn_actions(&fa, fd_in, fd_out, fd_err, extra_fd);
	if (r == 0)
		r = -posix_spawn(ret_pid, program, &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return r;
}

/* After the spawn (r: 0 or -errno; s->pid and s->pidfd set on success): watch its exit and read
 * its stderr, or report the failure through cb from the loop. */
static void spawn_watch(struct spawn *s, const char *program, int r)
{
	struct api_ctx *ctx = s->ctx;

	if (r == 0) {
		r = uv_poll_init(ctx->loop, &s->exit_poll, s->pidfd);
		if (r < 0) {
			kill(s->pid, SIGKILL);
			(void)waitpid(s->pid, NULL, 0);
			close(s->pidfd);
			s->pidfd = -1;
		}
	}
	if (r < 0) {
		/* reported through cb, as a helper that could not run */
		if (s->errfd >= 0)
			close(s->errfd);
		s->res.exit_status = 127;
		snprintf(s->res.message, sizeof(s->res.message), "Failed to run %s: %s", program,
			 strerror(-r));
		s->capture = false;
		s->pending_closes = 1;
		s->fail_timer.data = s;
		uv_timer_init(ctx->loop, &s->fail_timer);
		uv_close((uv_handle_t *)&s->fail_timer, spawn_handle_closed);
		return;
	}
	s->pending_closes = 1;
	uv_poll_start(&s->exit_poll, UV_READABLE, on_child_exit);
	if (s->capture) {
		s->pending_closes++;
		uv_pipe_init(ctx->loop, &s->err_pipe, 0);
		r = uv_pipe_open(&s->err_pipe, s->errfd);
		if (r < 0)
			close(s->errfd);
		else
			r = uv_read_start((uv_stream_t *)&s->err_pipe, on_alloc, on_read);
		if (r < 0) {
			log_warning("Cannot read kiva-helper's stderr: %s", uv_strerror(r));
			s->drained = true;
		}
	}
}

/* posix_spawn, then a pidfd for its exit. */
static int spawn_run(struct spawn *s, char *const argv[], int fd_in, int fd_out, int fd_err,
		     int extra_fd)
{
	int r = spawn_child(argv[0], argv, fd_in, fd_out, fd_err, extra_fd, &s->pid);

	if (r < 0)
		return r;
	s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (s->pidfd < 0) {
		/* no pidfd (Linux < 5.3): nothing could watch it */
		r = -errno;
		kill(s->pid, SIGKILL);
		(void)waitpid(s->pid, NULL, 0);
	}
	return r;
}

static struct spawn *spawn_new(struct api_ctx *ctx, int fd_err, api_spawn_cb cb, void *userdata)
{
	struct spawn *s = calloc(1, sizeof(*s));
	int errfd[2];

	if (!s)
		return NULL;
	s->cb = cb;
	s->userdata = userdata;
	s->ctx = ctx;
	s->pidfd = s->errfd = s->child_err = -1;
	s->capture = fd_err < 0;
	s->drained = !s->capture;
	s->exit_poll.data = s;
	s->err_pipe.data = s;
	s->work.data = s;
	if (s->capture) {
		if (pipe2(errfd, O_CLOEXEC) < 0) {
			free(s);
			return NULL;
		}
		s->errfd = errfd[0];
		s->child_err = errfd[1];
	}
	return s;
}

/* ---- in the thread pool: the loop never waits for a child's exec (a vfork parent waits until
 * the child is scheduled and execs: 0.3-20 ms with twenty containers starting on two CPUs) */

void api_work_thread_begin(void)
{
	static __thread bool done;

	/* nice is per thread on Linux: the pool's clones, spawns and liblxc calls give way to the
	 * loop's thread, which shares their cgroup (kiva-helper resets its own to 0) */
	if (!done) {
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
		done = true;
	}
}

static void spawn_work(uv_work_t *w)
{
	struct spawn *s = w->data;

	api_work_thread_begin();
	s->spawn_r = spawn_run(s, s->argv, s->fds[0], s->fds[1],
			       s->capture ? s->child_err : s->fds[2], s->fds[3]);
}

static void spawn_after_work(uv_work_t *w, int status)
{
	struct spawn *s = w->data;

	for (size_t i = 0; i < 4; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	if (s->child_err >= 0)
		close(s->child_err);
	s->child_err = -1;
	spawn_watch(s, s->argv[0], status < 0 ? status : s->spawn_r);
	strv_free(s->argv);
	s->argv = NULL;
}

int api_spawn_helper(struct api_ctx *ctx, const char *program, char *const args[], int fd_out,
		     int fd_err, int extra_fd, api_spawn_cb cb, void *userdata)
{
	size_t nargs = strv_length(args);
	int borrowed[4] = {-1, fd_out, fd_err, extra_fd};
	struct spawn *s = spawn_new(ctx, fd_err, cb, userdata);
	int r = -ENOMEM;

	if (!s)
		return -errno ?: -ENOMEM;
	for (size_t i = 0; i < 4; i++)
		s->fds[i] = -1;
	/* the fds are only borrowed: the thread spawns with copies */
	for (size_t i = 0; i < 4; i++)
		if (borrowed[i] >= 0 && (s->fds[i] = fcntl(borrowed[i], F_DUPFD_CLOEXEC, 3)) < 0) {
			r = -errno;
			goto fail;
		}
	s->argv = calloc(nargs + 2, sizeof(char *));
	if (!s->argv)
		goto fail;
	s->argv[0] = strdup(program);
	for (size_t i = 0; i < nargs && s->argv[0]; i++)
		if (!(s->argv[i + 1] = strdup(args[i])))
			goto fail;
	if (!s->argv[0])
		goto fail;
	r = uv_queue_work(ctx->loop, &s->work, spawn_work, spawn_after_work);
	if (r < 0)
		goto fail;
	ctx->pending_tasks++;
	return 0;
fail:
	for (size_t i = 0; i < 4; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	if (s->capture) {
		close(s->errfd);
		close(s->child_err);
	}
	strv_free(s->argv);
	free(s);
	return r;
}

/* ---- a helper on standby (`kiva-helper standby`): linked and set up before it is needed, given
 * its command and fds over a socket; refilled from the thread pool after each use */

struct standby {
	uv_work_t work;
	struct api_ctx *ctx;
	const char *program;
	pid_t pid;
	int pidfd, sock;
	int r;
};

static struct standby *standby_ready; /* one at a time, or none */
static bool standby_filling;

static void standby_drop(struct standby *sb)
{
	if (!sb)
		return;
	if (sb->sock >= 0)
		close(sb->sock); /* EOF: it exits */
	if (sb->pid > 0) {
		kill(sb->pid, SIGKILL);
		(void)waitpid(sb->pid, NULL, 0);
	}
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	free(sb);
}

static void standby_work(uv_work_t *w)
{
	struct standby *sb = w->data;
	char *argv[] = {(char *)sb->program, "standby", NULL};
	struct spawn tmp = {.pidfd = -1};
	int sv[2];

	api_work_thread_begin();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		sb->r = -errno;
		return;
	}
	sb->r = spawn_run(&tmp, argv, sv[1], -1, STDERR_FILENO, -1);
	close(sv[1]);
	sb->sock = sv[0];
	sb->pid = sb->r == 0 ? tmp.pid : -1;
	sb->pidfd = tmp.pidfd;
}

static void standby_done(uv_work_t *w, int status)
{
	struct standby *sb = w->data;
	standby_filling = false;
	sb->ctx->pending_tasks--;
	if (status < 0 || sb->r < 0) {
		log_warning("No kiva-helper on standby: %s",
			    strerror(status < 0 ? ECANCELED : -sb->r));
		standby_drop(sb);
		return;
	}
	standby_drop(standby_ready);
	standby_ready = sb;
}

static void standby_refill(struct api_ctx *ctx, const char *program)
{
	struct standby *sb;

	if (standby_filling || standby_ready)
		return;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return;
	sb->program = program;
	sb->pid = -1;
	sb->pidfd = sb->sock = -1;
	sb->work.data = sb;
	sb->ctx = ctx;
	if (uv_queue_work(ctx->loop, &sb->work, standby_work, standby_done) < 0) {
		free(sb);
		return;
	}
	standby_filling = true;
	ctx->pending_tasks++;
}

/* Hands argv (without argv[0]) and the fds to the helper on standby: 0 and its pid/pidfd in s,
 * or -errno (then it is gone and the caller spawns). */
static int standby_use(struct spawn *s, const char *program, char *const args[], int fd_in,
		       int fd_out, int fd_err, int extra_fd)
{
	struct standby *sb = standby_ready;
	cleanup_free char *payload = NULL;
	int fds[FD_PASS_MAX], nfds = 0, devnull[2] = {-1, -1}, r = 0;
	ssize_t sent;
	size_t len = 0;

	if (!sb || !streq(sb->program, program))
		return -ENOENT;
	standby_ready = NULL;
	for (size_t i = 0; args[i]; i++)
		len += strlen(args[i]) + 1;
	payload = malloc(len ? len : 1);
	if (!payload) {
		standby_drop(sb);
		return -ENOMEM;
	}
	len = 0;
	for (size_t i = 0; args[i]; i++) {
		size_t n = strlen(args[i]) + 1;

		memcpy(payload + len, args[i], n);
		len += n;
	}
	if (fd_in < 0)
		fd_in = devnull[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd_out < 0)
		fd_out = devnull[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
	fds[nfds++] = fd_in;
	fds[nfds++] = fd_out;
	fds[nfds++] = fd_err;
	if (extra_fd >= 0)
		fds[nfds++] = extra_fd;
	if (fd_in < 0 || fd_out < 0)
		r = -EMFILE;
	if (r == 0) {
		sent = fd_send(sb->sock, payload, len, fds, (size_t)nfds);
		r = sent < 0 ? (int)sent : sent != (ssize_t)len ? -EIO : 0;
	}
	for (int i = 0; i < 2; i++)
		if (devnull[i] >= 0)
			close(devnull[i]);
	if (r < 0) {
		standby_drop(sb);
		return r;
	}
	close(sb->sock); /* its one message is queued; then EOF */
	s->pid = sb->pid;
	s->pidfd = sb->pidfd;
	free(sb);
	return 0;
}

/* ---- on the loop, the pid known at once (exec forwards signals to it) */

int api_spawn_helper_io(struct api_ctx *ctx, const char *program, char *const args[], int fd_in,
			int fd_out, int fd_err, int extra_fd, api_spawn_cb cb, void *userdata,
			int *ret_pid)
{
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
	s = spawn_new(ctx, fd_err, cb, userdata);
	if (!s)
		return -ENOMEM;
	r = standby_use(s, program, args, fd_in, fd_out, s->capture ? s->child_err : fd_err,
			extra_fd);
	if (r < 0)
		r = spawn_run(s, argv, fd_in, fd_out, s->capture ? s->child_err : fd_err, extra_fd);
	if (s->capture)
		close(s->child_err);
	ctx->pending_tasks++;
	spawn_watch(s, program, r);
	if (r == 0 && ret_pid)
		*ret_pid = s->pid;
	standby_refill(ctx, program);
	return 0;
}

void api_spawn_standby_free(void)
{
	standby_drop(standby_ready);
	standby_ready = NULL;
}
