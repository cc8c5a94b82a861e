/* kivad's life: directories and lock, optional daemonizing (the parent returns once the API
 * answers), storage pool, store replay, reconcile, API; SIGTERM/SIGINT for a clean stop that
 * waits for running workflows. Containers are never stopped by kivad exiting. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "basic-fs.h"
#include "basic-hash.h"
#include "basic-log.h"
#include "basic-string.h"
#include "daemon.h"
#include "kiva-config.h"
#include "net.h"

struct daemon {
	const struct daemon_options *opts;
	uv_loop_t loop;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t drain_timer;
	uv_timer_t watch_timer; /* networking upkeep (api_net_watch) */
	struct api_ctx ctx;
	char *lxcpath, *logs_dir, *tmp_dir, *raft_dir, *seccomp_path, *helper_path;
	char *archive_helper_path;
	char kivad_id[16], nft_table[24], default_network[16];
	int ready_fd; /* --daemon: write end of the readiness pipe */
	int exit_code;
	bool stopping;
};

static char *find_helper(const char *explicit_path)
{
	char exe[PATH_MAX];
	ssize_t n;
	const char *env = getenv("KIVA_HELPER");

	if (explicit_path)
		return strdup(explicit_path);
	if (env && *env)
		return strdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *dir, *p;

		exe[n] = 0;
		dir = dirname(exe);
		p = strf("%s/kiva-helper", dir);
		if (p && access(p, X_OK) == 0)
			return p;
		free(p);
		p = strf("%s/../helper/kiva-helper", dir); /* build tree */
		if (p && access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return strdup(KIVA_LIBEXECDIR "/kiva-helper");
}

static void notify_ready(struct daemon *d, const char *msg)
{
	if (d->ready_fd < 0)
		return;
	if (write(d->ready_fd, msg, strlen(msg)) < 0)
		log_warning("Failed to notify the parent process");
	close(d->ready_fd);
	d->ready_fd = -1;
}

static void fail_start(struct daemon *d, const char *msg)
{
	char line[600];

	log_error("%s", msg);
	snprintf(line, sizeof(line), "Error: %s\n", msg);
	notify_ready(d, line);
	d->exit_code = 1;
	uv_stop(&d->loop);
}

#define WATCH_MSEC 2000

static void watch(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (!d->stopping && d->ctx.store) {
		api_net_watch(&d->ctx);
		api_sched_watch(&d->ctx);
		api_snapshots_tick(&d->ctx, (int64_t)time(NULL));
		api_backups_tick(&d->ctx, (int64_t)time(NULL));
	}
}

/* SIGHUP: re-read the capacity file; a bad one is logged and the old capacity stays. */
static void on_sighup(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	struct kiva_error err = {0};

	if (d->ctx.sched && api_sched_reload(&d->ctx, &err) < 0)
		log_error("Capacity not reloaded, the previous one stays: %s", err.msg);
}

static void reconciled(struct api_ctx *ctx, void *userdata)
{
	struct daemon *d = userdata;
	struct kiva_error err = {0};

	if (api_server_start(ctx, &err) < 0) {
		fail_start(d, err.msg);
		return;
	}
	uv_timer_start(&d->watch_timer, watch, WATCH_MSEC, WATCH_MSEC);
	api_events_log_hook(ctx);
	log_info("kivad %s ready on %s (state %s, storage %s, cgroup v%d, %s)", KIVA_VERSION,
		 ctx->socket_path, ctx->state_dir, ctx->pool->ops->name, ctx->host.cgroup_version,
		 ctx->host.apparmor ? "apparmor" : "no LSM (nop)");
	notify_ready(d, "ok\n");
}

static void store_ready(struct store *store, int status, void *userdata)
{
	struct daemon *d = userdata;
	char msg[256];

	if (status < 0) {
		snprintf(msg, sizeof(msg), "The store did not become ready: %s", strerror(-status));
		fail_start(d, msg);
		return;
	}
	log_debug("Store ready, %llu commands applied", (unsigned long long)store_applied(store));
	api_reconcile(&d->ctx, reconciled, d);
}

static void store_closed(void *userdata)
{
	struct daemon *d = userdata;

	d->ctx.store = NULL;
	uv_close((uv_handle_t *)&d->drain_timer, NULL);
}

static void drain(uv_timer_t *t)
{
	struct daemon *d = t->data;
	static unsigned waited_ms;

	if (d->ctx.pending_tasks > 0 && waited_ms < 30000) {
		waited_ms += 10;
		uv_timer_start(&d->drain_timer, drain, 10, 0);
		return;
	}
	if (d->ctx.store)
		store_close(d->ctx.store, store_closed, d);
	else
		uv_close((uv_handle_t *)&d->drain_timer, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;

	if (d->stopping)
		return;
	d->stopping = true;
	log_info("Received %s, shutting down (containers keep running)", strsignal(signum));
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
	api_events_log_hook(NULL);
	api_server_stop(&d->ctx);
	uv_timer_stop(&d->watch_timer);
	uv_close((uv_handle_t *)&d->watch_timer, NULL);
	uv_timer_start(&d->drain_timer, drain, 0, 0);
}

static int make_dirs(struct daemon *d, struct kiva_error *reterr)
{
	const char *dirs[] = {d->opts->state_dir, d->lxcpath, d->logs_dir, d->tmp_dir};
	cleanup_free char *sockdir = strdup(d->opts->socket_path);
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		r = mkdir_p(dirs[i], 0711);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to create %s: %s", dirs[i],
					      strerror(-r));
	}
	if (!sockdir)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	r = mkdir_p(dirname(sockdir), 0755);
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to create the socket directory: %s",
				      strerror(-r));
	return 0;
}

static int take_lock(struct daemon *d, struct kiva_error *reterr)
{
	cleanup_free char *path = strf("%s/kivad.lock", d->opts->state_dir);
	int fd;

	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return kiva_error_set(reterr, -errno, "Failed to open %s: %m", path);
	/* a kivad that was just killed may still be exiting: give it a moment */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		if (errno == EWOULDBLOCK && i < 60) {
			usleep(50 * 1000);
			continue;
		}
		close(fd);
		return kiva_error_set(reterr, -EBUSY, "Another kivad is running on %s",
				      d->opts->state_dir);
	}
	return fd; /* held until exit */
}

/* lws replaces whatever is at the socket path: refuse when another server answers there. */
static int check_socket_free(const char *path, struct kiva_error *reterr)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cleanup_close int fd = -EBADF;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kiva_error_set(reterr, -ENAMETOOLONG, "Socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kiva_error_set(reterr, -errno, "socket: %m");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return kiva_error_set(reterr, -EADDRINUSE,
				      "Socket %s is in use by another server (another kivad?)",
				      path);
	return 0;
}

/* Forks; the parent waits for "ok" (or an error line) from the child and exits with it. */
static int daemonize(struct daemon *d)
{
	int p[2];
	pid_t pid;
	char buf[600];
	ssize_t n;
	size_t len = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		while (len < sizeof(buf) - 1 &&
		       (n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)n;
		buf[len] = 0;
		if (startswith(buf, "ok"))
			_exit(0);
		fprintf(stderr, "%s", len ? buf : "Error: kivad exited during start-up\n");
		_exit(1);
	}
	close(p[0]);
	d->ready_fd = p[1];
	setsid();
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			close(null);
		}
	}
	return 0;
}

static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	dup2(fd, STDERR_FILENO);
	close(fd);
	return 0;
}

/* An id from the state dir: tags KIVA's interfaces, names veths and (off the default state dir)
 * the nftables tables and the default bridge, so several kivads never collide. */
static void daemon_names(struct daemon *d)
{
	char real[PATH_MAX], hex[65];
	struct sha256_ctx h;

	if (!realpath(d->opts->state_dir, real))
		snprintf(real, sizeof(real), "%s", d->opts->state_dir);
	sha256_init(&h);
	sha256_update(&h, real, strlen(real));
	sha256_final_hex(&h, hex);
	snprintf(d->kivad_id, sizeof(d->kivad_id), "%.8s", hex);
	if (streq(real, "/var/lib/kiva")) {
		snprintf(d->nft_table, sizeof(d->nft_table), "kiva");
		snprintf(d->default_network, sizeof(d->default_network), "kivabr0");
	} else {
		snprintf(d->nft_table, sizeof(d->nft_table), "kiva_%s", d->kivad_id);
		snprintf(d->default_network, sizeof(d->default_network), "kivabr%.6s", hex);
	}
	if (d->opts->default_network)
		snprintf(d->default_network, sizeof(d->default_network), "%s",
			 d->opts->default_network);
}

static bool is_mount_point(const char *path)
{
	cleanup_free char *parent = path ? strf("%s/..", path) : NULL;
	struct stat a, b;

	return parent && stat(path, &a) == 0 && stat(parent, &b) == 0 &&
	       (a.st_dev != b.st_dev || a.st_ino == b.st_ino);
}

int daemon_purge(const struct daemon_options *opts)
{
	struct daemon d = {.opts = opts, .ready_fd = -1};
	struct kiva_error err = {0};
	cleanup_strv char **names = NULL;
	cleanup_free char *lxcpath = strf("%s/containers", opts->state_dir);
	cleanup_free char *script = NULL;
	cleanup_free char *poolpath = strf("%s/storage-pools/default", opts->state_dir);
	struct storage_pool *pool = NULL;
	int lock_fd, r, failed = 0;

	log_set_ident("kivad");
	if (access(opts->state_dir, F_OK) < 0) {
		fprintf(stderr, "Error: no state dir %s\n", opts->state_dir);
		return 1;
	}
	lock_fd = take_lock(&d, &err);
	if (lock_fd < 0) {
		fprintf(stderr, "Error: %s\n", err.msg);
		return 1;
	}
	daemon_names(&d);
	if (lxcpath && runtime_list(lxcpath, &names) >= 0) {
		for (char **n = names; n && *n; n++) {
			char buf[256] = "";

			if (runtime_stop(lxcpath, *n, -1, buf, sizeof(buf)) < 0) {
				log_error("Failed to stop container '%s': %s", *n, buf);
				failed = 1;
			}
		}
	}
	strv_free(TAKE_PTR(names));
	if (net_links_tagged(d.kivad_id, &names) >= 0)
		for (char **n = names; n && *n; n++)
			(void)net_link_delete(*n);
	if (net_nft_remove_script_for(d.nft_table, &script) >= 0 &&
	    net_nft_apply(script, &err) < 0) {
		log_error("Failed to remove the nftables tables %s: %s", d.nft_table, err.msg);
		failed = 1;
	}
	/* only an existing mount: opening a pool that is not there would create one */
	if (is_mount_point(poolpath) &&
	    storage_pool_open(opts->state_dir, NULL, 0, &pool, &err) >= 0) {
		r = storage_pool_unmount(pool);
		if (r < 0) {
			log_error("Failed to unmount the pool: %s", strerror(-r));
			failed = 1;
		}
		storage_pool_free(pool);
	}
	close(lock_fd);
	if (!failed && rm_rf(opts->state_dir) < 0) {
		log_error("Failed to remove %s", opts->state_dir);
		failed = 1;
	}
	return failed;
}

/* Frees what daemon_run allocated (every exit path). */
static int daemon_free(struct daemon *d, int exit_code)
{
	storage_pool_free(d->ctx.pool);
	api_sched_free(&d->ctx);
	json_decref(d->ctx.events);
	json_decref(d->ctx.schedules_seen);
	json_decref(d->ctx.creating);
	json_decref(d->ctx.busy);
	free(d->ctx.nft_applied);
	free(d->lxcpath);
	free(d->logs_dir);
	free(d->tmp_dir);
	free(d->raft_dir);
	free(d->seccomp_path);
	free(d->helper_path);
	free(d->archive_helper_path);
	return exit_code;
}

int daemon_run(const struct daemon_options *opts)
{
	struct daemon d = {.opts = opts, .ready_fd = -1};
	struct kiva_error err = {0};
	struct store_options sopts = {0};
	cleanup_free char *log_path = NULL;
	struct sysinfo si;
	int lock_fd, r;

	log_set_ident("kivad");
	log_set_level(opts->debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	signal(SIGPIPE, SIG_IGN); /* raft dies on SIGPIPE without this */
	signal(SIGHUP, SIG_IGN); /* until the loop handles it: a reload, not a hang-up */

	d.lxcpath = strf("%s/containers", opts->state_dir);
	d.logs_dir = strf("%s/logs", opts->state_dir);
	d.tmp_dir = strf("%s/tmp", opts->state_dir);
	d.raft_dir = strf("%s/raft", opts->state_dir);
	d.seccomp_path = strf("%s/seccomp.profile", opts->state_dir);
	log_path = opts->log_file ? strdup(opts->log_file) : strf("%s/kivad.log", opts->state_dir);
	if (!d.lxcpath || !d.logs_dir || !d.tmp_dir || !d.raft_dir || !d.seccomp_path ||
	    !log_path) {
		log_error("Out of memory");
		return daemon_free(&d, 1);
	}
	if (make_dirs(&d, &err) < 0) {
		log_error("%s", err.msg);
		return daemon_free(&d, 1);
	}
	/* the lock is taken by the process that keeps it (so /proc/locks names the daemon);
	 * errors from here on reach the waiting parent through fail_start() */
	if (opts->daemonize && daemonize(&d) < 0) {
		log_error("Failed to daemonize: %m");
		return daemon_free(&d, 1);
	}
	lock_fd = take_lock(&d, &err);
	if (lock_fd < 0) {
		fail_start(&d, err.msg);
		return daemon_free(&d, 1);
	}
	if (check_socket_free(opts->socket_path, &err) < 0) {
		fail_start(&d, err.msg);
		return daemon_free(&d, 1);
	}
	/* uploads cut by a crash (only now: another kivad's must not be touched) */
	(void)rm_rf(d.tmp_dir);
	(void)mkdir_p(d.tmp_dir, 0700);
	if ((opts->daemonize || opts->log_file) && open_log(log_path) < 0)
		log_warning("Failed to open %s, logging to stderr", log_path);

	d.ctx.state_dir = opts->state_dir;
	d.ctx.lxcpath = d.lxcpath;
	d.ctx.logs_dir = d.logs_dir;
	d.ctx.tmp_dir = d.tmp_dir;
	d.ctx.socket_path = opts->socket_path;
	d.ctx.seccomp_path = d.seccomp_path;
	d.ctx.idmap_base = 100000;
	d.ctx.idmap_size = 65536;
	d.ctx.image_max_bytes = 16ULL * 1024 * 1024 * 1024;
	d.ctx.creating = json_object();
	daemon_names(&d);
	d.ctx.kivad_id = d.kivad_id;
	d.ctx.link_tag = d.kivad_id;
	d.ctx.nft_table = d.nft_table;
	d.ctx.default_network = streq(d.default_network, "none") ? NULL : d.default_network;
	d.ctx.busy = json_object();
	d.ctx.schedules_seen = json_object();
	d.helper_path = find_helper(opts->helper_path);
	d.ctx.helper_path = d.helper_path;
	if (!d.helper_path || access(d.helper_path, X_OK) < 0) {
		fail_start(&d,
			   "kiva-helper not found: install KIVA (make install) or pass --helper");
		return daemon_free(&d, 1);
	}
	{
		cleanup_free char *copy = strdup(d.helper_path);

		d.archive_helper_path = copy ? strf("%s/kiva-archive-helper", dirname(copy)) : NULL;
	}
	if (!d.archive_helper_path || access(d.archive_helper_path, X_OK) < 0) {
		fail_start(&d, "kiva-archive-helper not found next to kiva-helper");
		return daemon_free(&d, 1);
	}
	d.ctx.archive_helper_path = d.archive_helper_path;
	r = runtime_host_probe(&d.ctx.host);
	if (r < 0) {
		fail_start(&d, "Failed to probe the host's cgroups");
		return daemon_free(&d, 1);
	}
	d.ctx.proto_host.ncpus = d.ctx.host.ncpus;
	/* liblxc puts every container's monitor and payload in cgroups of their own at the top of
	 * the hierarchy, each weighing as much as the whole cgroup kivad runs in: twenty starting
	 * containers left kivad's loop a twentieth of the CPUs, and events and answers waited
	 * 50-200 ms on two CPUs. Its own group, heavier, keeps it responsive; helpers start there
	 * too, containers do not. */
	if (opts->cpu_weight > 0) {
		struct kiva_error werr = {0};
		cleanup_free char *helpers = NULL;

		if (runtime_cpu_weight_self(&d.ctx.host, "/sys/fs/cgroup", "kiva.daemon",
					    opts->cpu_weight, &helpers, &werr) < 0) {
			log_warning("Staying in the cgroup kivad was started in: %s", werr.msg);
		} else {
			log_info("Running in the cgroup kiva.daemon/daemon, CPU weight %u",
				 opts->cpu_weight);
			/* kiva-helper moves itself there (inherited through the environment) */
			setenv("KIVA_HELPER_CGROUP", helpers, 1);
		}
	}
	if (sysinfo(&si) == 0)
		d.ctx.proto_host.memory_bytes = (uint64_t)si.totalram * si.mem_unit;
	r = write_file_atomic(d.seccomp_path, runtime_seccomp_default(),
			      strlen(runtime_seccomp_default()), 0644);
	if (r < 0) {
		fail_start(&d, "Failed to write the seccomp profile");
		return daemon_free(&d, 1);
	}
	d.ctx.capacity_path = opts->capacity_path ? opts->capacity_path : "/etc/kiva/capacity.yaml";
	d.ctx.sys_root = opts->sys_root ? opts->sys_root : "/";
	if (api_sched_init(&d.ctx, &err) < 0) {
		fail_start(&d, err.msg);
		return daemon_free(&d, 1);
	}
	r = storage_pool_open(opts->state_dir, opts->storage_driver, opts->pool_size_bytes,
			      &d.ctx.pool, &err);
	if (r < 0) {
		fail_start(&d, err.msg);
		return daemon_free(&d, 1);
	}

	/* libuv's thread pool (read once, at its first use) runs the blocking steps of many
	 * workflows at once: rootfs clones waiting on btrfs commits, helper spawns, Raft's disk
	 * writes; 4 threads queue twenty creates behind each other */
	setenv("UV_THREADPOOL_SIZE", "16", 0);
	/* glibc gives each thread that allocates an arena of its own: sixteen pool threads grew
	 * kivad's PSS by ~2 MiB for allocations of a few hundred bytes */
	mallopt(M_ARENA_MAX, 2);
	uv_loop_init(&d.loop);
	d.ctx.loop = &d.loop;
	uv_signal_init(&d.loop, &d.sigterm);
	uv_signal_init(&d.loop, &d.sigint);
	d.sigterm.data = d.sigint.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	uv_signal_init(&d.loop, &d.sighup);
	d.sighup.data = &d;
	uv_signal_start(&d.sighup, on_sighup, SIGHUP);
	uv_timer_init(&d.loop, &d.drain_timer);
	d.drain_timer.data = &d;
	uv_timer_init(&d.loop, &d.watch_timer);
	d.watch_timer.data = &d;

	sopts.dir = d.raft_dir;
	sopts.address = opts->raft_address;
	sopts.id = 1;
	r = store_open(&d.loop, &sopts, store_ready, &d, &d.ctx.store, &err);
	if (r < 0) {
		fail_start(&d, err.msg);
		return daemon_free(&d, 1);
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	api_server_free(&d.ctx);
	api_ops_free_all(&d.ctx);
	api_spawn_standby_free();
	if (uv_loop_close(&d.loop) != 0)
		log_debug("Loop closed with handles still open");
	log_info("kivad stopped");
	close(lock_fd);
	return daemon_free(&d, d.exit_code);
}
