/* kiva-helper: the small, short-lived process kivad spawns for blocking work (liblxc start, stop,
 * freeze, exec; building and unpacking images). One verb per invocation:
 *
 *   kiva-helper start LXCPATH NAME [TIMEOUT_SEC]
 *   kiva-helper stop LXCPATH NAME TIMEOUT_SEC          (-1: kill at once)
 *   kiva-helper freeze|unfreeze LXCPATH NAME
 *   kiva-helper exec LXCPATH NAME [--cwd DIR] [--env K=V]... -- ARGV...
 *   kiva-helper build-busybox DIR SHIFT_BASE
 *   kiva-helper unpack TARBALL DIR SHIFT_BASE MAX_BYTES
 *   kiva-archive-helper backup-export OUTFILE|- COMPRESSION NAME INSTANCE_DIR BACKUP_YAML_FILE
 *                                     [SNAPNAME SNAPDIR SNAP_BACKUP_YAML_FILE|-]...
 *   kiva-archive-helper backup-import ARCHIVE DEST_DIR MAX_BYTES SHIFT_FROM|auto SHIFT_TO
 *                                     [MAX_RATIO [MAX_ENTRIES]]
 *
 * backup-import prints one JSON object on stdout: {"name", "backend", "pool", "snapshots": [...],
 * "backup_yaml", "shift_from"}. backup-export writes the tarball to OUTFILE (removed on failure)
 * or to stdout.
 *
 * Contract: exit 0 on success; on failure exactly one line "Error: <message>" on stderr and
 * exit 1. exec instead passes stdin/stdout/stderr to the command, writes one status line to fd 3
 * if fd 3 is open when the helper starts ("exit N\n", or "error <message>\n" when the command
 * could not be run) and exits with the command's status (255 when it could not be run; the
 * "Error:" line then goes to stderr only if fd 3 is closed). SIGTERM to an exec helper is
 * forwarded to the command. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "basic-error.h"
#include "basic-fs.h"
#ifdef HELPER_ARCHIVE
#include "basic-json.h"
#endif
#include "basic-macro.h"
#include "basic-string.h"
#include "image.h"
#ifdef HELPER_ARCHIVE
#include "net.h"
#endif
#include "runtime.h"

#define STATUS_FD 3

/* The caller's stderr. fd 2 itself points to /dev/null while a command runs: liblxc prints a
 * few messages straight to stderr, which would break the one-line contract. */
static int real_stderr = STDERR_FILENO;

struct helper_command {
	const char *name;
	const char *usage;
	int min_args, max_args; /* after the verb; max -1: unbounded */
	bool status_line; /* exec: reports on fd 3, exits with the command's status */
	int (*run)(char **args, int n, struct kiva_error *err);
};

static int parse_timeout(const char *s, int64_t min, int64_t *ret, struct kiva_error *err)
{
	if (parse_int64(s, min, 86400, ret) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid timeout '%s'", s);
	return 0;
}

static int parse_u32(const char *s, const char *what, uint32_t *ret, struct kiva_error *err)
{
	int64_t v;

	if (parse_int64(s, 0, UINT32_MAX, &v) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid %s '%s'", what, s);
	*ret = (uint32_t)v;
	return 0;
}

static int runtime_result(int r, const char *buf, struct kiva_error *err)
{
	if (r >= 0)
		return 0;
	return kiva_error_set(err, r, "%s", buf[0] ? buf : strerror(-r));
}

static int cmd_start(char **args, int n, struct kiva_error *err)
{
	char buf[sizeof(err->msg)] = "";
	int64_t timeout = 0;
	int r;

	if (n > 2 && parse_timeout(args[2], 1, &timeout, err) < 0)
		return err->code;
	r = runtime_start(args[0], args[1], (int)timeout, buf, sizeof(buf));
	return runtime_result(r, buf, err);
}

static int cmd_stop(char **args, int n, struct kiva_error *err)
{
	char buf[sizeof(err->msg)] = "";
	int64_t timeout;
	int r;

	if (parse_timeout(args[2], -1, &timeout, err) < 0)
		return err->code;
	r = runtime_stop(args[0], args[1], (int)timeout, buf, sizeof(buf));
	return runtime_result(r, buf, err);
}

static int cmd_freeze(char **args, int n, struct kiva_error *err)
{
	char buf[sizeof(err->msg)] = "";

	return runtime_result(runtime_freeze(args[0], args[1], buf, sizeof(buf)), buf, err);
}

static int cmd_unfreeze(char **args, int n, struct kiva_error *err)
{
	char buf[sizeof(err->msg)] = "";

	return runtime_result(runtime_unfreeze(args[0], args[1], buf, sizeof(buf)), buf, err);
}

static int cmd_exec(char **args, int n, struct kiva_error *err)
{
	cleanup_free char **env = NULL;
	char buf[sizeof(err->msg)] = "";
	const char *cwd = NULL;
	uint32_t uid = (uint32_t)-1, gid = (uint32_t)-1;
	size_t n_env = 0;
	int i, r, status;

	env = calloc((size_t)n, sizeof(char *));
	if (!env)
		return kiva_error_set(err, -ENOMEM, "Out of memory");
	for (i = 2; i < n && !streq(args[i], "--"); i += 2) {
		if (!streq(args[i], "--cwd") && !streq(args[i], "--env") &&
		    !streq(args[i], "--uid") && !streq(args[i], "--gid"))
			return kiva_error_set(err, -EINVAL, "Unknown exec option '%s'", args[i]);
		if (i + 1 >= n || streq(args[i + 1], "--"))
			return kiva_error_set(err, -EINVAL, "Option '%s' needs a value", args[i]);
		if (streq(args[i], "--cwd"))
			cwd = args[i + 1];
		else if (streq(args[i], "--uid")) {
			if (parse_u32(args[i + 1], "uid", &uid, err) < 0)
				return err->code;
		} else if (streq(args[i], "--gid")) {
			if (parse_u32(args[i + 1], "gid", &gid, err) < 0)
				return err->code;
		} else
			env[n_env++] = args[i + 1];
	}
	if (i >= n - 1)
		return kiva_error_set(err, -EINVAL, "exec needs '-- ARGV...'");

	r = runtime_exec(args[0], args[1], args + i + 1, env, cwd, (uid_t)uid, (gid_t)gid,
			 STDIN_FILENO, STDOUT_FILENO, real_stderr, &status, buf, sizeof(buf));
	if (r < 0)
		return runtime_result(r, buf, err);
	return status;
}

#ifdef HELPER_ARCHIVE
/* nic-configure PID TMPNAME NAME CIDR|- GATEWAY|-: the container side of a hot-plugged NIC,
 * in the network namespace of PID (this process enters it). Only in kiva-archive-helper: the
 * lean kiva-helper, which container monitors fork from, must not map libnl. */
static int cmd_nic_configure(char **args, int n, struct kiva_error *err)
{
	struct net_prefix p = {0};
	uint32_t gw = 0;
	int64_t pid;

	if (parse_int64(args[0], 1, INT32_MAX, &pid) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid pid '%s'", args[0]);
	if (!streq(args[3], "-") && net_prefix_parse(args[3], &p) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid address '%s'", args[3]);
	if (!streq(args[4], "-") && net_ipv4_parse(args[4], &gw) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid gateway '%s'", args[4]);
	return net_nic_configure_in_netns((int)pid, args[1], args[2], &p, gw, err);
}
#endif

static int cmd_build_busybox(char **args, int n, struct kiva_error *err)
{
	uint32_t shift = 0;
	int r;

	if (parse_u32(args[1], "shift base", &shift, err) < 0)
		return err->code;
	r = image_build_busybox(args[0], "/bin/busybox", shift, err);
	if (r < 0)
		return kiva_error_default(err, r, "Failed to build busybox image in '%s': %s",
					  args[0], strerror(-r));
	return 0;
}

#ifdef HELPER_ARCHIVE
static int cmd_unpack(char **args, int n, struct kiva_error *err)
{
	uint32_t shift = 0;
	int64_t max_bytes;
	int r;

	if (parse_u32(args[2], "shift base", &shift, err) < 0)
		return err->code;
	if (parse_int64(args[3], 1, INT64_MAX, &max_bytes) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid size limit '%s'", args[3]);
	r = image_unpack(args[0], args[1], shift, (uint64_t)max_bytes, err);
	if (r < 0)
		return kiva_error_default(err, r, "Failed to unpack '%s': %s", args[0],
					  strerror(-r));
	return 0;
}
#endif

#ifdef HELPER_ARCHIVE
static int read_yaml_file(const char *path, char **ret, struct kiva_error *err)
{
	size_t len = 0;
	int r = read_file(path, IMAGE_BACKUP_YAML_MAX_BYTES, ret, &len);

	if (r < 0)
		return kiva_error_set(err, r, "Failed to read '%s': %s", path, strerror(-r));
	return 0;
}

/* backup-export OUTFILE|- COMPRESSION NAME INSTANCE_DIR BACKUP_YAML_FILE
 *               [SNAPNAME SNAPDIR SNAP_BACKUP_YAML_FILE|-]... */
static int cmd_backup_export(char **args, int n, struct kiva_error *err)
{
	size_t n_snaps = (size_t)(n - 5) / 3;
	cleanup_free struct image_backup_snapshot *snaps = NULL;
	cleanup_strv char **texts = NULL;
	cleanup_free char *yaml = NULL;
	cleanup_close int fd = -EBADF;
	bool to_stdout = streq(args[0], "-");
	struct image_backup_src src = {.name = args[2], .dir = args[3]};
	int r;

	if ((n - 5) % 3 != 0)
		return kiva_error_set(err, -EINVAL,
				      "Each snapshot needs SNAPNAME SNAPDIR SNAP_BACKUP_YAML_FILE");
	snaps = calloc(n_snaps + 1, sizeof(*snaps));
	texts = calloc(n_snaps + 1, sizeof(char *));
	if (!snaps || !texts)
		return kiva_error_set(err, -ENOMEM, "Out of memory");
	if (read_yaml_file(args[4], &yaml, err) < 0)
		return err->code;
	src.backup_yaml = yaml;
	for (size_t i = 0; i < n_snaps; i++) {
		char **a = args + 5 + 3 * i;

		snaps[i] = (struct image_backup_snapshot){.name = a[0], .dir = a[1]};
		if (!streq(a[2], "-")) {
			if (read_yaml_file(a[2], &texts[i], err) < 0)
				return err->code;
			snaps[i].backup_yaml = texts[i];
		}
	}
	src.snapshots = snaps;
	src.n_snapshots = n_snaps;

	/* A reader that goes away must turn into an error message, not a silent SIGPIPE. */
	(void)signal(SIGPIPE, SIG_IGN);
	if (!to_stdout) {
		fd = open(args[0], O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return kiva_error_set(err, -errno, "Failed to create '%s': %m", args[0]);
	}
	r = image_backup_export(to_stdout ? STDOUT_FILENO : fd, args[1], &src, err);
	if (r < 0 && !to_stdout)
		(void)unlink(args[0]);
	return r;
}

static int print_backup_info(const struct image_backup_info *info, struct kiva_error *err)
{
	cleanup_json json_t *o = json_object(), *snaps = json_array(), *backup = NULL;
	cleanup_free char *text = NULL;
	int r;

	if (!o || !snaps)
		return kiva_error_set(err, -ENOMEM, "Out of memory");
	/* the instance's config, devices and snapshots, as JSON for kivad (no YAML there) */
	r = image_yaml_to_json(info->backup_yaml, strlen(info->backup_yaml), &backup, err);
	if (r < 0)
		return r;
	if (json_object_set(o, "backup", backup) < 0)
		return kiva_error_set(err, -ENOMEM, "Out of memory");
	for (char **s = info->index.snapshots; *s; s++)
		if (json_array_append_new(snaps, json_string(*s)) < 0)
			return kiva_error_set(err, -ENOMEM, "Out of memory");
	if (json_set_str(o, "name", info->index.name) < 0 ||
	    (info->index.backend && json_set_str(o, "backend", info->index.backend) < 0) ||
	    (info->index.pool && json_set_str(o, "pool", info->index.pool) < 0) ||
	    json_object_set(o, "snapshots", snaps) < 0 ||
	    json_set_str(o, "backup_yaml", info->backup_yaml) < 0 ||
	    json_object_set_new(o, "shift_from", json_integer(info->shift_from)) < 0)
		return kiva_error_set(err, -ENOMEM, "Out of memory");
	text = json_dump_compact(o);
	if (!text)
		return kiva_error_set(err, -ENOMEM, "Out of memory");
	if (puts(text) == EOF || fflush(stdout) != 0)
		return kiva_error_set(err, -EIO, "Failed to write the result: %m");
	return 0;
}

/* backup-import ARCHIVE DEST_DIR MAX_BYTES SHIFT_FROM|auto SHIFT_TO [MAX_RATIO [MAX_ENTRIES]] */
static int cmd_backup_import(char **args, int n, struct kiva_error *err)
{
	struct image_backup_limits lim = {.max_ratio = IMAGE_BACKUP_DEFAULT_RATIO,
					  .max_entries = IMAGE_BACKUP_DEFAULT_MAX_ENTRIES};
	struct image_backup_info info = {0};
	int64_t v;
	int r;

	if (parse_int64(args[2], 1, INT64_MAX, &v) < 0)
		return kiva_error_set(err, -EINVAL, "Invalid size limit '%s'", args[2]);
	lim.max_bytes = (uint64_t)v;
	if (streq(args[3], "auto"))
		lim.shift_from = IMAGE_BACKUP_SHIFT_AUTO;
	else if (parse_u32(args[3], "shift base", &lim.shift_from, err) < 0)
		return err->code;
	if (parse_u32(args[4], "shift base", &lim.shift_to, err) < 0)
		return err->code;
	if (n > 5 && parse_u32(args[5], "ratio", &lim.max_ratio, err) < 0)
		return err->code;
	if (n > 6) {
		if (parse_int64(args[6], 0, INT64_MAX, &v) < 0)
			return kiva_error_set(err, -EINVAL, "Invalid entry limit '%s'", args[6]);
		lim.max_entries = (uint64_t)v;
	}
	lim.allow_devices = lim.shift_to == 0;
	r = image_backup_import(args[0], args[1], &lim, &info, err);
	if (r < 0)
		return kiva_error_default(err, r, "Failed to import '%s': %s", args[0],
					  strerror(-r));
	r = print_backup_info(&info, err);
	image_backup_info_done(&info);
	return r;
}
#endif

static const struct helper_command commands[] = {
	{"start", "LXCPATH NAME [TIMEOUT_SEC]", 2, 3, false, cmd_start},
	{"stop", "LXCPATH NAME TIMEOUT_SEC", 3, 3, false, cmd_stop},
	{"freeze", "LXCPATH NAME", 2, 2, false, cmd_freeze},
	{"unfreeze", "LXCPATH NAME", 2, 2, false, cmd_unfreeze},
	{"exec", "LXCPATH NAME [--cwd DIR] [--uid N] [--gid N] [--env K=V]... -- ARGV...", 4, -1,
	 true, cmd_exec},
	{"build-busybox", "DIR SHIFT_BASE", 2, 2, false, cmd_build_busybox},
#ifdef HELPER_ARCHIVE
	{"nic-configure", "PID TMPNAME NAME CIDR|- GATEWAY|-", 5, 5, false, cmd_nic_configure},
#endif
#ifdef HELPER_ARCHIVE
	{"unpack", "TARBALL DIR SHIFT_BASE MAX_BYTES", 4, 4, false, cmd_unpack},
	{"backup-export",
	 "OUTFILE|- COMPRESSION NAME INSTANCE_DIR BACKUP_YAML_FILE [SNAPNAME SNAPDIR SNAP_BACKUP_YAML_FILE|-]...",
	 5, -1, false, cmd_backup_export},
	{"backup-import",
	 "ARCHIVE DEST_DIR MAX_BYTES SHIFT_FROM|auto SHIFT_TO [MAX_RATIO [MAX_ENTRIES]]", 5, 7,
	 false, cmd_backup_import},
#endif
};

/* One line: newlines in a message (from liblxc's log, say) become spaces. */
static void report(FILE *f, const char *prefix, const char *msg)
{
	fputs(prefix, f);
	for (const char *p = msg; *p; p++)
		fputc(*p == '\n' || *p == '\r' ? ' ' : *p, f);
	fputc('\n', f);
	fflush(f);
}

static void stderr_mute(void)
{
	int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, STATUS_FD + 1);
	int null_fd;

	if (fd < 0)
		return;
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, STDERR_FILENO) < 0) {
		close(fd);
		fd = STDERR_FILENO;
	}
	if (null_fd >= 0)
		close(null_fd);
	real_stderr = fd;
}

static void stderr_unmute(void)
{
	if (real_stderr != STDERR_FILENO)
		dup2(real_stderr, STDERR_FILENO);
}

static int unknown_command(const char *verb)
{
	fprintf(stderr, "Error: unknown command '%s'; commands:", verb ? verb : "");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(stderr, " %s", commands[i].name);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

/* Ignored signals and the signal mask survive exec: a spawner that ignores SIGPIPE (kivad must,
 * for raft) would pass that on to the container's init and to exec'd commands. */
static void signals_reset(void)
{
	sigset_t all;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
}

/* fd 3 must be looked at before anything (liblxc's log file) can be opened on it. Nothing else
 * kivad may have leaked is passed on to containers. */
static FILE *status_open(void)
{
	FILE *f = NULL;

	if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) == 0)
		f = fdopen(STATUS_FD, "w");
	(void)close_range(STATUS_FD + 1, ~0U, 0);
	return f;
}

static int command_run(const struct helper_command *cmd, int n, char **args, struct kiva_error *err)
{
	int r;

	if (n < cmd->min_args || (cmd->max_args >= 0 && n > cmd->max_args))
		return kiva_error_set(err, -EINVAL, "usage: kiva-helper %s %s", cmd->name,
				      cmd->usage);
	stderr_mute();
	r = cmd->run(args, n, err);
	stderr_unmute();
	return r;
}

/* Reports r as the contract says and returns the exit code. */
static int command_finish(const struct helper_command *cmd, FILE *status, int r,
			  const struct kiva_error *err)
{
	if (!cmd->status_line) {
		if (r < 0)
			report(stderr, "Error: ", err->msg);
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	if (r < 0) {
		report(status ? status : stderr, status ? "error " : "Error: ", err->msg);
		return 255;
	}
	if (status) {
		fprintf(status, "exit %d\n", r);
		fflush(status);
	}
	return r;
}

/* kivad runs in a heavier cgroup than the containers' (kivad --cpu-weight); its helpers do their
 * work (liblxc starts above all) in the light group beside it, named by KIVA_HELPER_CGROUP, so
 * that twenty of them do not take the loop's CPU. Best effort: a helper that cannot move works
 * where it is. */
static void helper_cgroup(void)
{
	const char *dir = getenv("KIVA_HELPER_CGROUP");
	char path[4096], pid[32];
	int fd;

	if (!dir || dir[0] != '/' ||
	    (size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
		return;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		if (write(fd, pid, strlen(pid)) < 0) {
			/* stays in kivad's group */
		}
		close(fd);
	}
	unsetenv("KIVA_HELPER_CGROUP");
}

/* `kiva-helper standby`: started ahead of need by kivad (dynamic linking and set-up done), it
 * waits on fd 0, a SOCK_SEQPACKET socket, for one message: the arguments (NUL-separated) with 3 or
 * 4 fds (stdin, stdout, stderr, and fd 3 when given) as SCM_RIGHTS; then it is that command, as if
 * spawned with those. EOF (kivad gone or done with it): exit 0. Saves an exec ahead of every
 * `exec` (~1-2 ms of a 10 ms exec). */
#define STANDBY_ARGS_MAX 65536
#define STANDBY_ARGV_MAX 1024

static int standby(char ***ret_argv, int *ret_argc)
{
	static char buf[STANDBY_ARGS_MAX];
	static char *argv[STANDBY_ARGV_MAX + 2];
	int fds[FD_PASS_MAX], argc = 1;
	size_t nfds = 0;
	ssize_t n;

	/* it may wait long: nothing kivad leaked stays open meanwhile (a pipe's writer would keep
	 * its reader from seeing EOF) */
	(void)close_range(STATUS_FD, ~0U, 0);
	n = fd_recv(STDIN_FILENO, buf, sizeof(buf) - 1, fds, FD_PASS_MAX, &nfds);
	if (n <= 0)
		return (int)n;
	if (nfds < 3) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return -EBADMSG;
	}
	/* above fd 3 first, so that no dup2 below overwrites one still to be placed */
	for (size_t i = 0; i < nfds; i++) {
		int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, 10);

		if (hi < 0)
			return -errno;
		close(fds[i]);
		fds[i] = hi;
	}
	for (size_t i = 0; i < nfds; i++)
		if (dup2(fds[i], (int)i) < 0)
			return -errno;
	if (nfds == 3)
		close(STATUS_FD);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	buf[n] = 0;
	argv[0] = "kiva-helper";
	for (char *p = buf; p < buf + n && argc <= STANDBY_ARGV_MAX; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	*ret_argv = argv;
	*ret_argc = argc;
	return 1;
}

int main(int argc, char **argv)
{
	FILE *status;
	struct kiva_error err = {0};

	signals_reset();
	helper_cgroup();
	/* spawned from kivad's pool threads (nice 10): what it starts runs at the default */
	(void)setpriority(PRIO_PROCESS, 0, 0);
	if (argc == 2 && streq(argv[1], "standby")) {
		int r = standby(&argv, &argc);

		if (r <= 0) {
			if (r < 0)
				fprintf(stderr, "Error: standby: %s\n", strerror(-r));
			return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
		}
	}
	status = status_open();

	for (size_t i = 0; argc >= 2 && i < ARRAY_SIZE(commands); i++)
		if (streq(argv[1], commands[i].name))
			return command_finish(&commands[i], status,
					      command_run(&commands[i], argc - 2, argv + 2, &err),
					      &err);
	return unknown_command(argc >= 2 ? argv[1] : NULL);
}
