/* The liblxc seam: the only file that includes <lxc/lxccontainer.h>. It turns liblxc's bool
 * results into -errno plus a message, keeps liblxc's own logging away from the caller's stderr
 * (it goes to the container's lxc.log.file only), and implements the start/attach rules of
 * feasibility §1-3: start() from a forked child so the caller never lands in lxc.monitor.*
 * cgroups, attach with LXC_ATTACH_LSM so the seccomp filter also covers exec'd processes. */
#include <errno.h> /* before <lxc/attach_options.h>: LXC_ATTACH_OPTIONS_DEFAULT uses EBADF */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <lxc/attach_options.h>
#include <lxc/lxccontainer.h>

#include "basic-fs.h"
#include "basic-macro.h"
#include "basic-string.h"
#include "runtime.h"

#define RUNTIME_START_TIMEOUT_SEC 30
#define RUNTIME_KILL_TIMEOUT_SEC 10
#define RUNTIME_LOG_TAIL_BYTES (256 * 1024)
#define RUNTIME_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void container_putp(struct lxc_container **c)
{
	if (*c)
		lxc_container_put(*c);
}
#define cleanup_container __attribute__((cleanup(container_putp)))

static int errf(char *buf, size_t len, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int errf(char *buf, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	if (buf && len > 0) {
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* liblxc writes to stderr only when lxc_log_init() is called without quiet; say so explicitly
 * once per process so nothing ever reaches kivad's or kiva-helper's stderr. Errors still go to
 * the container's lxc.log.file. */
static void runtime_log_quiet(void)
{
	static bool done;
	struct lxc_log log = {.quiet = true, .level = "ERROR"};

	if (done)
		return;
	done = true;
	(void)lxc_log_init(&log);
}

static bool name_ok(const char *name)
{
	return name && *name && !strchr(name, '/') && !strchr(name, '\n') && !streq(name, ".") &&
	       !streq(name, "..");
}

/* Key families liblxc parses by prefix; lxc_config_item_is_supported() knows exact keys only. */
static const char *const config_prefix_keys[] = {
	"lxc.net.",   "lxc.cgroup.", "lxc.cgroup2.", "lxc.prlimit.",
	"lxc.limit.", "lxc.sysctl.", "lxc.proc.",
};

static bool config_key_known(const char *key)
{
	if (lxc_config_item_is_supported(key))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(config_prefix_keys); i++)
		if (startswith(key, config_prefix_keys[i]) && key[strlen(config_prefix_keys[i])])
			return true;
	return false;
}

/* lxc_container_new() prints "Failed to load config for NAME" straight to stderr when a config
 * does not parse, past any log setting. Refuse the configs it would refuse for an unknown key or
 * a line without "=" before it sees them (values it rejects still get through). */
static int config_precheck(const char *lxcpath, const char *name, char *errbuf, size_t errlen)
{
	cleanup_free char *path = NULL, *text = NULL;
	unsigned lineno = 0;
	int r;

	path = strf("%s/%s/config", lxcpath, name);
	if (!path)
		return errf(errbuf, errlen, -ENOMEM, "Out of memory");
	r = read_file(path, 1024 * 1024, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return errf(errbuf, errlen, r, "Failed to read %s: %s", path, strerror(-r));
	for (char *line = text, *next; line; line = next) {
		char *eq, *end;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		line += strspn(line, " \t");
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq)
			return errf(errbuf, errlen, -EINVAL, "%s:%u: not a \"key = value\" line",
				    path, lineno);
		for (end = eq; end > line && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = 0;
		if (!config_key_known(line))
			return errf(errbuf, errlen, -EINVAL, "%s:%u: unsupported liblxc key '%s'",
				    path, lineno, line);
	}
	return 0;
}

/* Loaded handles, kept while their config file is the same (inode, size, mtime): loading one
 * parses the config (0.1-0.2 ms, more under load), and kivad asks states, pids and cgroup
 * values of the same containers all the time. A handle asks the container's monitor for
 * anything dynamic, so only the config is cached. Any thread; the lock only guards the list. */
#define HANDLE_CACHE_MAX 512

struct handle {
	struct handle *next;
	struct lxc_container *c;
	char *lxcpath, *name;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

static struct handle *handles;
static size_t nhandles;
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;

static void handle_free(struct handle *h)
{
	lxc_container_put(h->c);
	free(h->lxcpath);
	free(h->name);
	free(h);
}

static bool handle_same(const struct handle *h, const struct stat *st)
{
	return h->dev == st->st_dev && h->ino == st->st_ino && h->size == st->st_size &&
	       h->mtime.tv_sec == st->st_mtim.tv_sec && h->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* A new reference to the cached handle of lxcpath/name when its config is still st; a stale one
 * is dropped. */
static struct lxc_container *handle_get(const char *lxcpath, const char *name,
					const struct stat *st)
{
	struct lxc_container *c = NULL;
	struct handle **p, *stale = NULL;

	pthread_mutex_lock(&handles_lock);
	for (p = &handles; *p; p = &(*p)->next) {
		struct handle *h = *p;

		if (!streq(h->name, name) || !streq(h->lxcpath, lxcpath))
			continue;
		if (st && handle_same(h, st) && lxc_container_get(h->c) == 1) {
			c = h->c;
		} else {
			*p = h->next;
			nhandles--;
			stale = h;
		}
		break;
	}
	pthread_mutex_unlock(&handles_lock);
	if (stale)
		handle_free(stale);
	return c;
}

static void handle_put(const char *lxcpath, const char *name, struct lxc_container *c,
		       const struct stat *st)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h || lxc_container_get(c) != 1)
		goto fail;
	h->c = c;
	h->lxcpath = strdup(lxcpath);
	h->name = strdup(name);
	if (!h->lxcpath || !h->name) {
		handle_free(h);
		return;
	}
	h->dev = st->st_dev;
	h->ino = st->st_ino;
	h->size = st->st_size;
	h->mtime = st->st_mtim;
	pthread_mutex_lock(&handles_lock);
	if (nhandles >= HANDLE_CACHE_MAX) {
		pthread_mutex_unlock(&handles_lock);
		handle_free(h);
		return;
	}
	h->next = handles;
	handles = h;
	nhandles++;
	pthread_mutex_unlock(&handles_lock);
	return;
fail:
	free(h);
}

/* Opens the handle of an existing (defined) container. */
static int container_open(const char *lxcpath, const char *name, struct lxc_container **ret,
			  char *errbuf, size_t errlen)
{
	cleanup_free char *path = NULL;
	struct lxc_container *c;
	struct stat st;
	bool have_st;
	int r;

	runtime_log_quiet();
	if (!lxcpath || lxcpath[0] != '/' || !name_ok(name))
		return errf(errbuf, errlen, -EINVAL, "Invalid container path or name");
	path = strf("%s/%s/config", lxcpath, name);
	if (!path)
		return errf(errbuf, errlen, -ENOMEM, "Out of memory");
	have_st = stat(path, &st) == 0;
	c = handle_get(lxcpath, name, have_st ? &st : NULL);
	if (c) {
		*ret = c;
		return 0;
	}
	r = config_precheck(lxcpath, name, errbuf, errlen);
	if (r < 0)
		return r;
	c = lxc_container_new(name, lxcpath);
	if (!c)
		return errf(errbuf, errlen, -EINVAL,
			    "Failed to load liblxc config of '%s' (%s/%s/config)", name, lxcpath,
			    name);
	if (!c->is_defined(c)) {
		lxc_container_put(c);
		return errf(errbuf, errlen, -ENOENT, "Container '%s' is not defined in %s", name,
			    lxcpath);
	}
	/* cached only when the file did not change while it was parsed */
	if (have_st) {
		struct stat again;

		if (stat(path, &again) == 0 && again.st_ino == st.st_ino &&
		    again.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
		    again.st_mtim.tv_sec == st.st_mtim.tv_sec && again.st_size == st.st_size)
			handle_put(lxcpath, name, c, &st);
	}
	*ret = c;
	return 0;
}

static enum runtime_state state_from_lxc(const char *s)
{
	if (!s)
		return RUNTIME_STOPPED;
	if (streq(s, "RUNNING") || streq(s, "THAWED"))
		return RUNTIME_RUNNING;
	if (streq(s, "STARTING"))
		return RUNTIME_STARTING;
	if (streq(s, "STOPPING") || streq(s, "ABORTING"))
		return RUNTIME_STOPPING;
	if (streq(s, "FROZEN") || streq(s, "FREEZING"))
		return RUNTIME_FROZEN;
	return RUNTIME_STOPPED;
}

enum runtime_state runtime_state(const char *lxcpath, const char *name)
{
	cleanup_container struct lxc_container *c = NULL;

	if (container_open(lxcpath, name, &c, NULL, 0) < 0)
		return RUNTIME_MISSING;
	return state_from_lxc(c->state(c));
}

const char *runtime_state_to_string(enum runtime_state s)
{
	switch (s) {
	case RUNTIME_MISSING:
	case RUNTIME_STOPPED:
		return "Stopped";
	case RUNTIME_STARTING:
		return "Starting";
	case RUNTIME_RUNNING:
		return "Running";
	case RUNTIME_STOPPING:
		return "Stopping";
	case RUNTIME_FROZEN:
		return "Frozen";
	}
	return "Error";
}

int runtime_init_pid(const char *lxcpath, const char *name)
{
	cleanup_container struct lxc_container *c = NULL;
	pid_t pid;
	int r;

	r = container_open(lxcpath, name, &c, NULL, 0);
	if (r < 0)
		return r == -ENOENT ? -ESRCH : r;
	pid = c->init_pid(c);
	return pid > 0 ? (int)pid : -ESRCH;
}

/* A controller file name as liblxc takes it: "memory.max", "cpu.cfs_quota_us". Refuses
 * anything that could walk out of the container's cgroup. */
static bool cgroup_key_ok(const char *key)
{
	return key && *key && strchr(key, '.') && key[0] != '.' &&
	       strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789._") == strlen(key);
}

static int cgroup_get(struct lxc_container *c, const char *key, char **ret)
{
	cleanup_free char *buf = NULL;
	int n, m;

	n = c->get_cgroup_item(c, key, NULL, 0);
	if (n < 0)
		return -ENOENT;
	buf = malloc((size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	m = c->get_cgroup_item(c, key, buf, n + 1);
	if (m < 0)
		return -ENOENT;
	buf[m < n ? m : n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	*ret = TAKE_PTR(buf);
	return 0;
}

int runtime_cgroup_get(const char *lxcpath, const char *name, const char *key, char **ret)
{
	cleanup_container struct lxc_container *c = NULL;
	int r;

	if (!cgroup_key_ok(key))
		return -EINVAL;
	r = container_open(lxcpath, name, &c, NULL, 0);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return -ESRCH;
	return cgroup_get(c, key, ret);
}

int runtime_cgroup_set(const char *lxcpath, const char *name, const char *key, const char *value)
{
	cleanup_container struct lxc_container *c = NULL;
	int r;

	if (!cgroup_key_ok(key) || !value || strpbrk(value, "\n\r"))
		return -EINVAL;
	r = container_open(lxcpath, name, &c, NULL, 0);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return -ESRCH;
	errno = 0;
	if (!c->set_cgroup_item(c, key, value))
		/* the kernel's errno (EBUSY, EINVAL) usually survives liblxc's error path */
		return errno > 0 ? -errno : -EINVAL;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int runtime_list(const char *lxcpath, char ***ret_names)
{
	cleanup_strv char **names = NULL;
	DIR *d;
	struct dirent *de;
	int r = 0;

	names = calloc(1, sizeof(char *));
	if (!names)
		return -ENOMEM;
	d = opendir(lxcpath);
	if (!d) {
		if (errno != ENOENT)
			return -errno;
		*ret_names = TAKE_PTR(names);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;
		cleanup_free char *config = NULL;

		if (de->d_name[0] == '.')
			continue;
		config = strf("%s/%s/config", lxcpath, de->d_name);
		if (!config) {
			r = -ENOMEM;
			break;
		}
		if (stat(config, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = strv_push(&names, strdup(de->d_name));
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		return r;
	qsort(names, strv_length(names), sizeof(char *), cmp_str);
	*ret_names = TAKE_PTR(names);
	return 0;
}

int runtime_remove(const char *lxcpath, const char *name)
{
	cleanup_free char *dir = NULL;
	enum runtime_state s;

	if (!lxcpath || lxcpath[0] != '/' || !name_ok(name))
		return -EINVAL;
	s = runtime_state(lxcpath, name);
	if (s != RUNTIME_MISSING && s != RUNTIME_STOPPED)
		return -EBUSY;
	dir = strf("%s/%s", lxcpath, name);
	if (!dir)
		return -ENOMEM;
	/* Not c->destroy(): for a dir: rootfs it would delete the storage volume too. */
	return rm_rf(dir);
}

static int read_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cgroup_get_u64(struct lxc_container *c, const char *key, uint64_t *ret)
{
	cleanup_free char *v = NULL;
	int r;

	r = cgroup_get(c, key, &v);
	if (r < 0)
		return r;
	return read_u64(v, ret);
}

static int host_cgroup_version(void)
{
	static int version;
	struct statfs sfs;

	if (version == 0)
		version = (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
				  ? 2
				  : 1;
	return version;
}

int runtime_usage(const char *lxcpath, const char *name, struct runtime_usage *ret)
{
	cleanup_container struct lxc_container *c = NULL;
	struct runtime_usage u = {0};
	int r;

	r = container_open(lxcpath, name, &c, NULL, 0);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return -ESRCH;

	if (host_cgroup_version() == 2) {
		cleanup_free char *stat = NULL;

		(void)cgroup_get_u64(c, "memory.current", &u.memory_bytes);
		(void)cgroup_get_u64(c, "memory.peak", &u.memory_peak_bytes);
		/* cpu.stat is multi-line: cgroup_get keeps the first line, "usage_usec N" */
		if (cgroup_get(c, "cpu.stat", &stat) >= 0 && startswith(stat, "usage_usec ") &&
		    read_u64(stat + strlen("usage_usec "), &u.cpu_usage_nsec) >= 0)
			u.cpu_usage_nsec *= 1000;
	} else {
		(void)cgroup_get_u64(c, "memory.usage_in_bytes", &u.memory_bytes);
		(void)cgroup_get_u64(c, "memory.max_usage_in_bytes", &u.memory_peak_bytes);
		(void)cgroup_get_u64(c, "cpuacct.usage", &u.cpu_usage_nsec);
	}

	if (cgroup_get_u64(c, "pids.current", &u.processes) < 0) {
		cleanup_free char *procs = NULL;
		int n = c->get_cgroup_item(c, "cgroup.procs", NULL, 0);

		if (n > 0 && (procs = malloc((size_t)n + 1)) &&
		    c->get_cgroup_item(c, "cgroup.procs", procs, n + 1) >= 0) {
			procs[n] = 0;
			for (char *p = procs; *p; p++)
				if (*p == '\n')
					u.processes++;
		}
	}

	*ret = u;
	return 0;
}

/* --- blocking operations --- */

static int64_t now_msec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for a child for at most timeout_ms. Returns 0 with its wait status, or -ETIMEDOUT. */
static int wait_child(pid_t pid, int64_t timeout_ms, int *ret_status)
{
	cleanup_close int pidfd = -EBADF;
	int status;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		int64_t deadline = now_msec() + timeout_ms;
		int n;

		for (;;) {
			int64_t left = deadline - now_msec();

			n = poll(&p, 1, left > 0 ? (int)left : 0);
			if (n >= 0 || errno != EINTR)
				break;
		}
		if (n == 0)
			return -ETIMEDOUT;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*ret_status = status;
	return 0;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Finds the first ERROR record liblxc appended to its log after offset and copies its message
 * (the text after "... ERROR    start - file.c:func:123 - "). The first error is the cause; the
 * ones after it are liblxc unwinding. Returns false when there is none. */
static bool log_first_error(const char *path, off_t offset, char *buf, size_t len)
{
	cleanup_close int fd = -EBADF;
	cleanup_free char *text = NULL;
	off_t size = file_size(path);
	ssize_t n;

	if (!buf || len == 0 || size <= offset)
		return false;
	if (size - offset > RUNTIME_LOG_TAIL_BYTES)
		offset = size - RUNTIME_LOG_TAIL_BYTES;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	text = malloc((size_t)(size - offset) + 1);
	if (!text)
		return false;
	n = pread(fd, text, (size_t)(size - offset), offset);
	if (n <= 0)
		return false;
	text[n] = 0;

	for (char *line = text; line && *line;) {
		char *eol = strchr(line, '\n'), *msg;

		if (eol)
			*eol = 0;
		msg = strstr(line, " ERROR ");
		if (msg && (msg = strstr(msg, " - ")) && (msg = strstr(msg + 3, " - "))) {
			snprintf(buf, len, "%s", msg + 3);
			return true;
		}
		line = eol ? eol + 1 : NULL;
	}
	return false;
}

/* The log file of a container: its lxc.log.file, else LXCPATH/NAME/lxc.log (set in memory
 * here, so the monitor forked by start() writes there). */
static char *container_log_path(struct lxc_container *c, const char *lxcpath, const char *name)
{
	char buf[4096];
	int n = c->get_config_item(c, "lxc.log.file", buf, sizeof(buf));
	char *path;

	if (n > 0 && (size_t)n < sizeof(buf))
		return strdup(buf);
	path = strf("%s/%s/lxc.log", lxcpath, name);
	if (path && !c->set_config_item(c, "lxc.log.file", path)) {
		free(path);
		return NULL;
	}
	return path;
}

static void cgroup_leftovers_remove_in(const char *hierarchy, const char *name)
{
	static const char *const prefixes[] = {"lxc.monitor.", "lxc.payload."};

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		cleanup_free char *p = strf("%s/%s%s", hierarchy, prefixes[i], name);

		if (p)
			(void)rmdir(p);
	}
}

/* liblxc leaves its empty lxc.monitor.NAME cgroups behind when a start fails early (missing
 * rootfs, say), and the next start then uses lxc.monitor.NAME-1, -2, ... Remove those and an
 * empty lxc.payload.NAME at the root of each hierarchy, where liblxc creates them: the unified
 * one at /sys/fs/cgroup and the v1 ones below it. rmdir cannot remove a cgroup that still has
 * processes. The "-N" variants are left alone: they may belong to a container named NAME-N.
 * Call only when the container is stopped. */
static void cgroup_leftovers_remove(const char *name)
{
	DIR *d = opendir("/sys/fs/cgroup");
	struct dirent *de;

	cgroup_leftovers_remove_in("/sys/fs/cgroup", name);
	if (!d)
		return;
	while ((de = readdir(d))) {
		cleanup_free char *p = NULL;

		if (de->d_type != DT_DIR || de->d_name[0] == '.' || startswith(de->d_name, "lxc."))
			continue;
		p = strf("/sys/fs/cgroup/%s", de->d_name);
		if (p)
			cgroup_leftovers_remove_in(p, name);
	}
	closedir(d);
}

/* ROOTFS/etc/hostname = name at the first start after a create or copy (LXCPATH/NAME/
 * RUNTIME_HOSTNAME_PENDING marks it; removed once done): what LXD's images do with their
 * hostname template, which LXD applies at that start too. Owned like etc/ (the container's
 * root); written beside and renamed over whatever is there, never through a symlink. No etc/:
 * nothing. Best effort: a start never fails for it. */
static void hostname_apply(struct lxc_container *c, const char *lxcpath, const char *name)
{
	cleanup_free char *marker = strf("%s/%s/%s", lxcpath, name, RUNTIME_HOSTNAME_PENDING);
	cleanup_close int rfd = -EBADF, efd = -EBADF, fd = -EBADF;
	char rootfs[4096], tmp[64], text[80], cur[80];
	const char *path = rootfs;
	struct stat st;
	ssize_t n;
	size_t len;

	if (!marker || access(marker, F_OK) < 0)
		return;
	(void)unlink(marker);
	if (c->get_config_item(c, "lxc.rootfs.path", rootfs, sizeof(rootfs)) <= 0)
		return;
	if (startswith(path, "dir:"))
		path += strlen("dir:");
	rfd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return;
	efd = openat(rfd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (efd < 0 || fstat(efd, &st) < 0)
		return;
	len = (size_t)snprintf(text, sizeof(text), "%s\n", name);
	fd = openat(efd, "hostname", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, cur, sizeof(cur));
		if (n == (ssize_t)len && memcmp(cur, text, len) == 0)
			return; /* already its own */
		close(fd);
		fd = -EBADF;
	}
	snprintf(tmp, sizeof(tmp), ".kiva-hostname.%d", (int)getpid());
	(void)unlinkat(efd, tmp, 0);
	fd = openat(efd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len ||
	    fchown(fd, st.st_uid, st.st_gid) < 0 || renameat(efd, tmp, efd, "hostname") < 0)
		(void)unlinkat(efd, tmp, 0);
}

int runtime_start(const char *lxcpath, const char *name, int timeout_sec, char *errbuf,
		  size_t errlen)
{
	cleanup_container struct lxc_container *c = NULL;
	cleanup_free char *log_path = NULL;
	int64_t deadline;
	off_t log_offset;
	pid_t pid;
	int r, status;

	r = container_open(lxcpath, name, &c, errbuf, errlen);
	if (r < 0)
		return r;
	if (c->is_running(c))
		return errf(errbuf, errlen, -EALREADY, "Container '%s' is already running", name);
	hostname_apply(c, lxcpath, name);
	if (timeout_sec <= 0)
		timeout_sec = RUNTIME_START_TIMEOUT_SEC;
	deadline = now_msec() + (int64_t)timeout_sec * 1000;

	log_path = container_log_path(c, lxcpath, name);
	log_offset = log_path ? file_size(log_path) : 0;

	/* start() moves its caller into lxc.monitor.<name> cgroups and forks the monitor from it:
	 * do it in a throw-away child (feasibility §1). With daemonize, start() returns once the
	 * container is RUNNING or has failed, and the monitor closes every inherited fd. */
	pid = fork();
	if (pid < 0)
		return errf(errbuf, errlen, -errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* liblxc maps ids through the setuid newuidmap/newgidmap (each run by /bin/sh) when
		 * it finds them on PATH, even as root: ~35 ms per start. As root it writes
		 * /proc/PID/{u,g}id_map itself when they are not found. The container's own PATH
		 * comes from lxc.environment in its config. */
		setenv("PATH", "/nonexistent/kiva", 1);
		c->want_daemonize(c, true);
		c->want_close_all_fds(c, true);
		_exit(c->start(c, 0, NULL) ? EXIT_SUCCESS : EXIT_FAILURE);
	}

	r = wait_child(pid, deadline - now_msec(), &status);
	if (r == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		(void)wait_child(pid, RUNTIME_KILL_TIMEOUT_SEC * 1000, &status);
		if (c->is_running(c) && c->stop(c))
			(void)c->wait(c, "STOPPED", RUNTIME_KILL_TIMEOUT_SEC);
		if (!c->is_running(c))
			cgroup_leftovers_remove(name);
		return errf(errbuf, errlen, -ETIMEDOUT, "Container '%s' did not start within %d s",
			    name, timeout_sec);
	}
	if (r < 0)
		return errf(errbuf, errlen, r, "waitpid: %s", strerror(-r));

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		int64_t left_ms = deadline - now_msec();
		int left = (int)((left_ms + 999) / 1000);

		if (c->wait(c, "RUNNING", left > 0 ? left : 1))
			return 0;
	}

	if (!c->is_running(c))
		cgroup_leftovers_remove(name);
	if (errbuf && errlen > 0) {
		char cause[512];

		if (log_path && log_first_error(log_path, log_offset, cause, sizeof(cause)))
			errf(errbuf, errlen, 0, "Failed to start container '%s': %s", name, cause);
		else
			errf(errbuf, errlen, 0, "Failed to start container '%s' (see %s)", name,
			     log_path ? log_path : "its lxc.log.file");
	}
	return -EIO;
}

int runtime_stop(const char *lxcpath, const char *name, int timeout_sec, char *errbuf,
		 size_t errlen)
{
	cleanup_container struct lxc_container *c = NULL;
	int r;

	r = container_open(lxcpath, name, &c, errbuf, errlen);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return 0;

	/* shutdown(c, 0) would only send the signal and report success at once */
	if (timeout_sec > 0) {
		/* a frozen init cannot handle lxc.signal.halt */
		if (state_from_lxc(c->state(c)) == RUNTIME_FROZEN)
			(void)c->unfreeze(c);
		/* in one-second slices: each shutdown() sends the halt signal again, so a signal
		 * that came before init could handle it (right after start) is not waited out */
		for (int left = timeout_sec; left > 0; left--) {
			if (c->shutdown(c, 1))
				return 0;
			if (!c->is_running(c))
				return 0;
		}
	}

	/* SIGKILL to init (liblxc thaws a frozen container), then wait for the monitor to see it */
	if (!c->stop(c) && c->is_running(c))
		return errf(errbuf, errlen, -EIO, "Failed to stop container '%s'", name);
	if (!c->wait(c, "STOPPED", RUNTIME_KILL_TIMEOUT_SEC))
		return errf(errbuf, errlen, -ETIMEDOUT, "Container '%s' did not stop within %d s",
			    name, RUNTIME_KILL_TIMEOUT_SEC);
	return 0;
}

int runtime_freeze(const char *lxcpath, const char *name, char *errbuf, size_t errlen)
{
	cleanup_container struct lxc_container *c = NULL;
	int r;

	r = container_open(lxcpath, name, &c, errbuf, errlen);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return errf(errbuf, errlen, -ESRCH, "Container '%s' is not running", name);
	if (host_cgroup_version() == 1) {
		/* liblxc polls a v1 freezer that says FREEZING once a second: a snapshot would
		 * wait 1 s now and then. Write it and poll every 200 us instead (at most 10 s,
		 * then liblxc's way); liblxc's freeze follows to update the monitor's state */
		char state[32];

		if (c->set_cgroup_item(c, "freezer.state", "FROZEN")) {
			for (int i = 0; i < 50000; i++) {
				int n = c->get_cgroup_item(c, "freezer.state", state,
							   sizeof(state));

				/* liblxc's freeze then finds it frozen at once, and tells the
				 * monitor (its state answers FROZEN, not RUNNING) */
				if (n > 0 && strncmp(state, "FROZEN", 6) == 0)
					break;
				usleep(200);
			}
		}
	}
	if (!c->freeze(c))
		return errf(errbuf, errlen, -EIO, "Failed to freeze container '%s'", name);
	return 0;
}

int runtime_console_fd(const char *lxcpath, const char *name, int *ret_fd, int *ret_hold,
		       char *errbuf, size_t errlen)
{
	cleanup_container struct lxc_container *c = NULL;
	int ttynum = 0, ptx = -1, hold, r;

	r = container_open(lxcpath, name, &c, errbuf, errlen);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return errf(errbuf, errlen, -ESRCH, "Container '%s' is not running", name);
	/* ttynum 0: the console itself */
	hold = c->console_getfd(c, &ttynum, &ptx);
	if (hold < 0 || ptx < 0)
		return errf(errbuf, errlen, -EBUSY,
			    "The console of '%s' is in use (or it has none)", name);
	*ret_fd = ptx;
	*ret_hold = hold;
	return 0;
}

int runtime_unfreeze(const char *lxcpath, const char *name, char *errbuf, size_t errlen)
{
	cleanup_container struct lxc_container *c = NULL;
	int r;

	r = container_open(lxcpath, name, &c, errbuf, errlen);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return errf(errbuf, errlen, -ESRCH, "Container '%s' is not running", name);
	if (!c->unfreeze(c))
		return errf(errbuf, errlen, -EIO, "Failed to unfreeze container '%s'", name);
	return 0;
}

/* While runtime_exec waits, termination signals sent to the caller go to the command. */
static volatile sig_atomic_t exec_pid;
static volatile sig_atomic_t exec_pending_signal;
static const int exec_forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

/* An interactive exec's terminal: the attached process opens a pty of the container's own devpts
 * (so `tty`, ttyname(3), login tools and sudo find it), makes its slave the controlling terminal
 * and stdio of a new session, and sends the master back over a socket; the caller relays it to its
 * own terminal (the host pty kivad gave it) in raw mode, with the window size. If any step fails,
 * the caller's terminal itself becomes the controlling terminal (it works; `tty` finds no name). */
struct tty_payload {
	lxc_attach_command_t *cmd;
	int sock;
};

/* The fd sent with fd_send, or -1 (nothing within timeout_ms, or the socket closed). */
static int recv_fd(int sock, int timeout_ms)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	size_t nfds = 0;
	char byte;
	int fd = -1;

	if (poll(&pfd, 1, timeout_ms) != 1 || fd_recv(sock, &byte, 1, &fd, 1, &nfds) != 1 ||
	    nfds != 1)
		return -1;
	return fd;
}

/* Runs in the attached process. */
static int attach_run_with_tty(void *payload)
{
	struct tty_payload *p = payload;
	int master, slave = -1;
	struct winsize ws;
	char name[128];

	master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master >= 0 && unlockpt(master) == 0 && ptsname_r(master, name, sizeof(name)) == 0)
		slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave >= 0 && fd_send(p->sock, "T", 1, &master, 1) == 1) {
		if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
			(void)ioctl(slave, TIOCSWINSZ, &ws);
		for (int i = 0; i < 3; i++)
			(void)dup2(slave, i);
	}
	if (slave > 2)
		close(slave);
	if (master >= 0)
		close(master);
	close(p->sock);
	if (setsid() >= 0)
		(void)ioctl(STDIN_FILENO, TIOCSCTTY, 0);
	return lxc_attach_run_command(p->cmd);
}

static volatile sig_atomic_t relay_winch, relay_chld;

static void relay_signal(int sig)
{
	if (sig == SIGWINCH)
		relay_winch = 1;
	else
		relay_chld = 1;
}

/* Writes all of buf (a terminal may take it in parts). */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};

			(void)poll(&pfd, 1, 100);
			continue;
		}
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Relays the caller's terminal (in/out) and the container pty's master until pid exits and its
 * output is drained; its wait status in *ret_status. The caller's terminal becomes ours (a new
 * session: kivad's window-size changes arrive as SIGWINCH) and raw while relaying. */
static int relay_tty(int in, int out, int master, pid_t pid, int *ret_status)
{
	struct sigaction sa = {.sa_handler = relay_signal}, old_winch, old_chld;
	struct termios saved, raw;
	bool have_termios = tcgetattr(in, &saved) == 0, in_open = true, exited = false;
	char buf[16384];
	int r = 0;

	if (setsid() >= 0)
		(void)ioctl(in, TIOCSCTTY, 0);
	if (have_termios) {
		raw = saved;
		cfmakeraw(&raw);
		raw.c_iflag |= IGNBRK; /* a break would read as a NUL */
		(void)tcsetattr(in, TCSANOW, &raw);
	}
	(void)fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	relay_winch = 1; /* once at start: the size kivad set before we listened */
	relay_chld = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, &old_winch);
	sigaction(SIGCHLD, &sa, &old_chld);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = master, .events = POLLIN},
					{.fd = in_open ? in : -1, .events = POLLIN}};
		struct winsize ws;
		ssize_t n;

		if (relay_winch) {
			relay_winch = 0;
			if (ioctl(in, TIOCGWINSZ, &ws) == 0)
				(void)ioctl(master, TIOCSWINSZ, &ws);
		}
		if (!exited) {
			int status;
			pid_t w = waitpid(pid, &status, WNOHANG);

			if (w == pid) {
				exited = true;
				*ret_status = status;
			} else if (w < 0 && errno != EINTR) {
				r = -errno;
				break;
			}
		}
		if (poll(pfd, 2, exited ? 0 : 200) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (pfd[0].revents) {
			n = read(master, buf, sizeof(buf));
			if (n > 0) {
				write_all(out, buf, (size_t)n);
				continue;
			}
			if (n < 0 && (errno == EINTR || errno == EAGAIN) && !exited)
				continue;
			if (exited || n == 0 || errno == EIO)
				break; /* EIO: nobody holds the slave any more */
		} else if (exited) {
			break; /* exited, and nothing left to read */
		}
		if (pfd[1].revents) {
			n = read(in, buf, sizeof(buf));
			if (n > 0)
				write_all(master, buf, (size_t)n);
			else if (n == 0 || (errno != EINTR && errno != EAGAIN))
				in_open = false; /* kivad hung up: SIGHUP goes to the command */
		}
	}
	if (!exited && r == 0) {
		for (;;) {
			if (waitpid(pid, ret_status, 0) >= 0)
				break;
			if (errno != EINTR) {
				r = -errno;
				break;
			}
		}
	}
	sigaction(SIGWINCH, &old_winch, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	if (have_termios)
		(void)tcsetattr(in, TCSANOW, &saved);
	return r;
}

static void exec_forward_signal(int sig)
{
	int saved = errno;

	if (exec_pid > 0)
		kill((pid_t)exec_pid, sig);
	else
		exec_pending_signal = sig;
	errno = saved;
}

int runtime_exec(const char *lxcpath, const char *name, char *const argv[], char *const env[],
		 const char *cwd, uid_t uid, gid_t gid, int fd_in, int fd_out, int fd_err,
		 int *ret_status, char *errbuf, size_t errlen)
{
	cleanup_container struct lxc_container *c = NULL;
	cleanup_free char **envv = NULL;
	struct sigaction old[ARRAY_SIZE(exec_forwarded_signals)];
	struct sigaction sa = {.sa_handler = exec_forward_signal};
	lxc_attach_options_t opts = LXC_ATTACH_OPTIONS_DEFAULT;
	lxc_attach_command_t cmd;
	struct tty_payload tp = {0};
	size_t n_env = 0;
	bool has_path = false, tty = isatty(fd_in);
	pid_t pid = -1;
	int r, status = 0, sp[2] = {-1, -1}, master = -1;

	if (!argv || !argv[0] || !*argv[0])
		return errf(errbuf, errlen, -EINVAL, "No command given");
	for (; env && env[n_env]; n_env++) {
		if (!strchr(env[n_env], '=') || env[n_env][0] == '=')
			return errf(errbuf, errlen, -EINVAL, "Invalid environment entry '%s'",
				    env[n_env]);
		if (startswith(env[n_env], "PATH="))
			has_path = true;
	}
	r = container_open(lxcpath, name, &c, errbuf, errlen);
	if (r < 0)
		return r;
	if (!c->is_running(c))
		return errf(errbuf, errlen, -ESRCH, "Container '%s' is not running", name);
	/* the command would start frozen and block the caller until a thaw */
	if (state_from_lxc(c->state(c)) == RUNTIME_FROZEN)
		return errf(errbuf, errlen, -EBUSY, "Container '%s' is frozen", name);

	envv = calloc(n_env + 2, sizeof(char *));
	if (!envv)
		return errf(errbuf, errlen, -ENOMEM, "Out of memory");
	for (size_t i = 0; i < n_env; i++)
		envv[i] = env[i];
	if (!has_path)
		envv[n_env] = (char *)RUNTIME_DEFAULT_PATH;

	/* LXC_ATTACH_DEFAULT includes LXC_ATTACH_LSM: without it the seccomp filter would not
	 * apply to the command (feasibility §3). */
	opts.attach_flags = LXC_ATTACH_DEFAULT;
	opts.env_policy = LXC_ATTACH_CLEAR_ENV;
	opts.extra_env_vars = envv;
	opts.initial_cwd = (char *)(cwd ? cwd : "/");
	opts.uid = uid; /* (uid_t)-1: root of the container */
	opts.gid = gid;
	opts.stdin_fd = fd_in;
	opts.stdout_fd = fd_out;
	opts.stderr_fd = fd_err;
	cmd.program = argv[0];
	cmd.argv = (char **)argv;

	exec_pid = 0;
	exec_pending_signal = 0;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(exec_forwarded_signals); i++)
		sigaction(exec_forwarded_signals[i], &sa, &old[i]);

	/* The attached process is our child (liblxc forks it with CLONE_PARENT). */
	/* a terminal as stdin (interactive exec): the command gets a terminal of the container's
	 * own, its controlling terminal, so ^C, ^Z and job control work as on a console */
	if (tty) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			return errf(errbuf, errlen, -errno, "socketpair: %s", strerror(errno));
		tp.cmd = &cmd;
		tp.sock = sp[1];
	}
	r = c->attach(c, tty ? attach_run_with_tty : lxc_attach_run_command,
		      tty ? (void *)&tp : (void *)&cmd, &opts, &pid);
	if (tty) {
		close(sp[1]);
		master = r >= 0 && pid > 0 ? recv_fd(sp[0], 5000) : -1;
		close(sp[0]);
	}
	if (r < 0 || pid <= 0) {
		r = errf(errbuf, errlen, -EIO, "Failed to attach to container '%s'", name);
	} else {
		/* liblxc's attach leaves SIGINT and SIGQUIT ignored in the caller: forward them
		 * again (a ^C sent through the control socket must reach the command) */
		for (size_t i = 0; i < ARRAY_SIZE(exec_forwarded_signals); i++)
			sigaction(exec_forwarded_signals[i], &sa, NULL);
		exec_pid = pid;
		if (exec_pending_signal)
			kill(pid, exec_pending_signal);
		if (master >= 0) {
			r = relay_tty(fd_in, fd_out, master, pid, &status);
			close(master);
			if (r < 0)
				r = errf(errbuf, errlen, r, "Relaying the terminal: %s",
					 strerror(-r));
		}
		for (; master < 0;) {
			if (waitpid(pid, &status, 0) >= 0) {
				r = 0;
				break;
			}
			if (errno != EINTR) {
				r = errf(errbuf, errlen, -errno, "waitpid: %s", strerror(errno));
				break;
			}
		}
	}

	exec_pid = 0;
	for (size_t i = 0; i < ARRAY_SIZE(exec_forwarded_signals); i++)
		sigaction(exec_forwarded_signals[i], &old[i], NULL);
	if (r < 0)
		return r;

	if (WIFEXITED(status))
		*ret_status = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		*ret_status = 128 + WTERMSIG(status);
	else
		*ret_status = 255;
	return 0;
}
