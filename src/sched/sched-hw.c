/* Hardware sensors from sysfs under a root path: cpufreq of each online CPU, thermal zones,
 * top-level RAPL powercap zones and EDAC memory controllers, plus writing a CPU's cpufreq
 * governor. Every part is optional (a VM has none of them); only content that cannot be parsed,
 * a directory that exists but cannot be listed, or too many entries is an error. Tests point the
 * root at fake trees under tests/fixtures/sched/ and write into temporary copies of them. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic-error.h"
#include "basic-fs.h"
#include "basic-macro.h"
#include "kiva-sched.h"

#define SYSFS_VALUE_MAX (64 * 1024)

/* Longest suffix appended to the root: "/sys/class/powercap/intel-rapl:4294967295/constraint_0_
 * power_limit_uw" and "/sys/devices/system/cpu/cpu255/cpufreq/scaling_available_governors". */
#define SUFFIX_MAX 128

/* *ret = root without trailing slashes: "/" and "" become "", so paths are "<root>/sys/...".
 * A root too long for every path under it to fit in PATH_MAX is refused. */
static int root_dup(const char *root, char **ret, struct kiva_error *reterr)
{
	char *r;

	if (!root || !*root)
		root = "/";
	if (strlen(root) >= PATH_MAX - SUFFIX_MAX)
		return kiva_error_set(reterr, -ENAMETOOLONG, "Root path too long: '%.64s...'",
				      root);
	r = strdup(root);
	if (!r)
		return -ENOMEM;
	for (size_t n = strlen(r); n > 0 && r[n - 1] == '/'; n--)
		r[n - 1] = '\0';
	*ret = r;
	return 0;
}

/* snprintf() of a path under a root checked by root_dup(): it always fits. */
__attribute__((format(printf, 3, 4))) static void pathf(char *buf, size_t size, const char *fmt,
							...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	assert(n >= 0 && (size_t)n < size);
	(void)n;
}

/* Reads an optional sysfs value: 0 with *ret set, or 0 with *ret NULL when the file is absent
 * or unreadable (sysfs attributes fail reads with EACCES, EIO, ENODATA, EINVAL, EAGAIN for
 * driver states). Only -ENOMEM is returned. */
static int read_opt(const char *path, char **ret)
{
	int r;

	*ret = NULL;
	r = read_file(path, SYSFS_VALUE_MAX, ret, NULL);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		*ret = NULL;
	return 0;
}

/* Length of text without its trailing newlines. */
static size_t line_len(const char *text)
{
	size_t n = strlen(text);

	while (n > 0 && text[n - 1] == '\n')
		n--;
	return n;
}

static int parse_u64(const char *text, uint64_t *ret)
{
	size_t n = line_len(text);
	uint64_t v = 0;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		d = (unsigned)(text[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

static int parse_s64(const char *text, int64_t *ret)
{
	bool neg = text[0] == '-';
	uint64_t v;

	if (parse_u64(text + neg, &v) < 0)
		return -EINVAL;
	if (v > (uint64_t)INT64_MAX + neg)
		return -EINVAL;
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Reads an optional number; *ret_found false (and *ret 0) when absent or unreadable. */
static int read_u64_opt(const char *path, uint64_t *ret, bool *ret_found, struct kiva_error *reterr)
{
	cleanup_free char *text = NULL;
	uint64_t v;
	int r;

	r = read_opt(path, &text);
	if (r < 0)
		return r;
	*ret = 0;
	if (ret_found)
		*ret_found = false;
	if (!text)
		return 0;
	if (parse_u64(text, &v) < 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid number in '%s'", path);
	*ret = v;
	if (ret_found)
		*ret_found = true;
	return 0;
}

/* Copies an optional one-line value into dst ("" when absent). Longer values are truncated when
 * truncate is set (display names), refused otherwise (identifiers). */
static int read_str_opt(const char *path, char *dst, size_t size, bool truncate,
			struct kiva_error *reterr)
{
	cleanup_free char *text = NULL;
	size_t n;
	int r;

	r = read_opt(path, &text);
	if (r < 0)
		return r;
	dst[0] = '\0';
	if (!text)
		return 0;
	n = line_len(text);
	if (n >= size) {
		if (!truncate)
			return kiva_error_set(reterr, -EINVAL, "Value too long in '%s'", path);
		n = size - 1;
	}
	memcpy(dst, text, n);
	dst[n] = '\0';
	return 0;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

/* Lists the entries of dir named <prefix><decimal> (nothing after the number), sorted by
 * number. A missing directory is an empty list. Caller frees *ret. */
static int list_indexed(const char *dir, const char *prefix, unsigned **ret, size_t *ret_n,
			struct kiva_error *reterr)
{
	cleanup_free unsigned *v = NULL;
	size_t n = 0, cap = 0, plen = strlen(prefix);
	DIR *d;
	struct dirent *de;

	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*ret = NULL;
			*ret_n = 0;
			return 0;
		}
		if (errno == ENOMEM)
			return -ENOMEM;
		return kiva_error_set(reterr, -errno, "Failed to list '%s': %s", dir,
				      strerror(errno));
	}
	while ((de = readdir(d))) {
		const char *p = de->d_name;
		unsigned long idx = 0;

		if (strncmp(p, prefix, plen) != 0)
			continue;
		p += plen;
		if (*p == '\0')
			continue;
		for (; *p >= '0' && *p <= '9'; p++) {
			idx = idx * 10 + (unsigned long)(*p - '0');
			if (idx > UINT_MAX)
				break;
		}
		if (*p != '\0')
			continue;
		if (n == cap) {
			unsigned *nv;

			cap = cap ? cap * 2 : 16;
			nv = reallocarray(v, cap, sizeof(*v));
			if (!nv) {
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = (unsigned)idx;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_unsigned);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

static int path_is_dir(const char *path, bool *ret, struct kiva_error *reterr)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*ret = false;
			return 0;
		}
		return kiva_error_set(reterr, -errno, "Failed to stat '%s': %s", path,
				      strerror(errno));
	}
	*ret = S_ISDIR(st.st_mode);
	return 0;
}

static int read_cpufreq(const char *root, const struct sched_topology *topo, struct sched_hw *hw,
			struct kiva_error *reterr)
{
	char path[PATH_MAX];
	int r;

	for (unsigned c = 0; c < topo->n_cpus && c < SCHED_CPUS_MAX; c++) {
		struct sched_cpufreq *f = &hw->cpufreq[c];
		char dir[PATH_MAX];
		bool present;

		if (!sched_cpuset_has(&topo->online, c))
			continue;
		pathf(dir, sizeof(dir), "%s/sys/devices/system/cpu/cpu%u/cpufreq", root, c);
		r = path_is_dir(dir, &present, reterr);
		if (r < 0)
			return r;
		if (!present)
			continue;
		f->present = true;
		hw->n_cpufreq++;
		pathf(path, sizeof(path), "%s/scaling_governor", dir);
		r = read_str_opt(path, f->governor, sizeof(f->governor), false, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/scaling_cur_freq", dir);
		r = read_u64_opt(path, &f->cur_khz, NULL, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/cpuinfo_min_freq", dir);
		r = read_u64_opt(path, &f->min_khz, NULL, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/cpuinfo_max_freq", dir);
		r = read_u64_opt(path, &f->max_khz, NULL, reterr);
		if (r < 0)
			return r;
		if (hw->n_cpufreq == 1) {
			pathf(path, sizeof(path), "%s/scaling_available_governors", dir);
			r = read_str_opt(path, hw->governors_available,
					 sizeof(hw->governors_available), false, reterr);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int read_thermal(const char *root, struct sched_hw *hw, struct kiva_error *reterr)
{
	cleanup_free unsigned *idx = NULL;
	char dir[PATH_MAX], path[PATH_MAX];
	size_t n;
	int r;

	pathf(dir, sizeof(dir), "%s/sys/class/thermal", root);
	r = list_indexed(dir, "thermal_zone", &idx, &n, reterr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && i < SCHED_HW_THERMAL_MAX; i++) {
		struct sched_thermal_zone *z = &hw->thermal[hw->n_thermal++];
		cleanup_free char *text = NULL;

		z->index = idx[i];
		pathf(path, sizeof(path), "%s/thermal_zone%u/type", dir, idx[i]);
		r = read_str_opt(path, z->type, sizeof(z->type), true, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/thermal_zone%u/temp", dir, idx[i]);
		r = read_opt(path, &text);
		if (r < 0)
			return r;
		if (!text)
			continue;
		if (parse_s64(text, &z->temp_mc) < 0)
			return kiva_error_set(reterr, -EINVAL, "Invalid temperature in '%s'", path);
		z->temp_valid = true;
	}
	return 0;
}

static int read_rapl(const char *root, struct sched_hw *hw, struct kiva_error *reterr)
{
	cleanup_free unsigned *idx = NULL;
	char dir[PATH_MAX], path[PATH_MAX];
	size_t n;
	int r;

	pathf(dir, sizeof(dir), "%s/sys/class/powercap", root);
	r = list_indexed(dir, "intel-rapl:", &idx, &n, reterr);
	if (r < 0)
		return r;
	if (n > SCHED_HW_RAPL_MAX)
		return kiva_error_set(reterr, -ERANGE, "%zu RAPL zones under '%s', at most %d", n,
				      dir, SCHED_HW_RAPL_MAX);
	for (size_t i = 0; i < n; i++) {
		struct sched_rapl_zone *z = &hw->rapl[hw->n_rapl++];

		z->index = idx[i];
		pathf(path, sizeof(path), "%s/intel-rapl:%u/name", dir, idx[i]);
		r = read_str_opt(path, z->name, sizeof(z->name), true, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/intel-rapl:%u/energy_uj", dir, idx[i]);
		r = read_u64_opt(path, &z->energy_uj, &z->energy_valid, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/intel-rapl:%u/max_energy_range_uj", dir, idx[i]);
		r = read_u64_opt(path, &z->max_energy_range_uj, NULL, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/intel-rapl:%u/constraint_0_power_limit_uw", dir,
		      idx[i]);
		r = read_u64_opt(path, &z->power_limit_uw, NULL, reterr);
		if (r < 0)
			return r;
	}
	return 0;
}

/* See struct sched_edac_mc for the rule. */
static void map_edac_nodes(const struct sched_topology *topo, struct sched_hw *hw)
{
	unsigned nodes[SCHED_NODES_MAX], n_nodes = 0;

	for (unsigned n = 0; n < topo->n_nodes && n < SCHED_NODES_MAX; n++)
		if (!sched_cpuset_empty(&topo->nodes[n].cpus))
			nodes[n_nodes++] = n;
	for (unsigned i = 0; i < hw->n_edac; i++) {
		if (hw->n_edac == n_nodes)
			hw->edac[i].node = (int)nodes[i];
		else if (n_nodes == 1)
			hw->edac[i].node = (int)nodes[0];
		else
			hw->edac[i].node = -1;
	}
}

static int read_edac(const char *root, const struct sched_topology *topo, struct sched_hw *hw,
		     struct kiva_error *reterr)
{
	cleanup_free unsigned *idx = NULL;
	char dir[PATH_MAX], path[PATH_MAX];
	size_t n;
	int r;

	pathf(dir, sizeof(dir), "%s/sys/devices/system/edac/mc", root);
	r = list_indexed(dir, "mc", &idx, &n, reterr);
	if (r < 0)
		return r;
	if (n > SCHED_HW_EDAC_MAX)
		return kiva_error_set(reterr, -ERANGE,
				      "%zu EDAC memory controllers under '%s', at most %d", n, dir,
				      SCHED_HW_EDAC_MAX);
	for (size_t i = 0; i < n; i++) {
		struct sched_edac_mc *mc = &hw->edac[hw->n_edac++];

		mc->index = idx[i];
		pathf(path, sizeof(path), "%s/mc%u/mc_name", dir, idx[i]);
		r = read_str_opt(path, mc->name, sizeof(mc->name), true, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/mc%u/ce_count", dir, idx[i]);
		r = read_u64_opt(path, &mc->ce, NULL, reterr);
		if (r < 0)
			return r;
		pathf(path, sizeof(path), "%s/mc%u/ue_count", dir, idx[i]);
		r = read_u64_opt(path, &mc->ue, NULL, reterr);
		if (r < 0)
			return r;
	}
	map_edac_nodes(topo, hw);
	return 0;
}

int sched_hw_read(const char *root, const struct sched_topology *topo, struct sched_hw *ret,
		  struct kiva_error *reterr)
{
	cleanup_free struct sched_hw *hw = NULL;
	cleanup_free char *rootdir = NULL;
	int r;

	assert(topo);
	assert(ret);
	r = root_dup(root, &rootdir, reterr);
	if (r < 0)
		return r;
	hw = calloc(1, sizeof(*hw));
	if (!hw)
		return -ENOMEM;
	r = read_cpufreq(rootdir, topo, hw, reterr);
	if (r < 0)
		return r;
	r = read_thermal(rootdir, hw, reterr);
	if (r < 0)
		return r;
	r = read_rapl(rootdir, hw, reterr);
	if (r < 0)
		return r;
	r = read_edac(rootdir, topo, hw, reterr);
	if (r < 0)
		return r;
	*ret = *hw;
	return 0;
}

uint64_t sched_hw_error_nodes(const struct sched_hw *hw)
{
	uint64_t mask = 0;

	for (unsigned i = 0; i < hw->n_edac && i < SCHED_HW_EDAC_MAX; i++) {
		const struct sched_edac_mc *mc = &hw->edac[i];

		if (mc->node < 0 || mc->node >= 64)
			continue;
		if (mc->ce > 0 || mc->ue > 0)
			mask |= UINT64_C(1) << mc->node;
	}
	return mask;
}

bool sched_governor_name_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n >= SCHED_GOVERNOR_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

/* True when the whitespace-separated list holds word. */
static bool list_has_word(const char *list, const char *word)
{
	size_t wlen = strlen(word);

	for (const char *p = list; *p;) {
		size_t n;

		p += strspn(p, " \t\n");
		n = strcspn(p, " \t\n");
		if (n == wlen && strncmp(p, word, n) == 0)
			return true;
		p += n;
	}
	return false;
}

/* One write(2) of "<governor>\n", as `echo governor > scaling_governor` does: a sysfs store
 * takes the whole value in one call. */
static int write_governor(const char *path, const char *governor)
{
	cleanup_close int fd = -EBADF;
	char buf[SCHED_GOVERNOR_NAME_MAX + 1];
	int len = snprintf(buf, sizeof(buf), "%s\n", governor);
	ssize_t n;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	do
		n = write(fd, buf, (size_t)len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != len)
		return -EIO;
	return 0;
}

int sched_hw_set_governor(const char *root, const struct sched_cpuset *cpus, const char *governor,
			  struct kiva_error *reterr)
{
	cleanup_free char *rootdir = NULL;
	cleanup_free char(*old)[SCHED_GOVERNOR_NAME_MAX] = NULL;
	char path[PATH_MAX];
	unsigned done[SCHED_CPUS_MAX], n_done = 0;
	int r;

	if (!sched_governor_name_valid(governor))
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid governor name '%.64s': expected 1 to 31 of a-z, 0-9, "
			"'_' and '-'",
			governor ? governor : "");
	r = root_dup(root, &rootdir, reterr);
	if (r < 0)
		return r;
	old = calloc(SCHED_CPUS_MAX, sizeof(*old));
	if (!old)
		return -ENOMEM;

	/* Check every CPU before writing anything. */
	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		cleanup_free char *avail = NULL;
		bool is_dir;

		if (!sched_cpuset_has(cpus, c))
			continue;
		pathf(path, sizeof(path), "%s/sys/devices/system/cpu/cpu%u", rootdir, c);
		r = path_is_dir(path, &is_dir, reterr);
		if (r < 0)
			return r;
		if (!is_dir)
			return kiva_error_set(reterr, -EINVAL, "CPU %u does not exist ('%s')", c,
					      path);
		pathf(path, sizeof(path), "%s/sys/devices/system/cpu/cpu%u/cpufreq", rootdir, c);
		r = path_is_dir(path, &is_dir, reterr);
		if (r < 0)
			return r;
		if (!is_dir)
			return kiva_error_set(
				reterr, -ENOTSUP,
				"CPU %u has no frequency scaling (no '%s'): cannot set "
				"governor '%s'",
				c, path, governor);
		pathf(path, sizeof(path),
		      "%s/sys/devices/system/cpu/cpu%u/cpufreq/scaling_available_governors",
		      rootdir, c);
		r = read_file(path, SYSFS_VALUE_MAX, &avail, NULL);
		if (r == -ENOENT)
			return kiva_error_set(
				reterr, -ENOTSUP,
				"CPU %u's cpufreq driver offers no governors (no '%s')", c, path);
		if (r < 0)
			return kiva_error_set(reterr, r, "Failed to read '%s': %s", path,
					      strerror(-r));
		if (!list_has_word(avail, governor))
			return kiva_error_set(
				reterr, -EINVAL,
				"Governor '%s' is not available on CPU %u (available: "
				"%.*s)",
				governor, c, (int)line_len(avail), avail);
		pathf(path, sizeof(path),
		      "%s/sys/devices/system/cpu/cpu%u/cpufreq/scaling_governor", rootdir, c);
		r = read_str_opt(path, old[c], sizeof(old[c]), false, NULL);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !sched_governor_name_valid(old[c]))
			old[c][0] = '\0'; /* unknown: not restored on rollback */
	}

	for (unsigned c = 0; c < SCHED_CPUS_MAX; c++) {
		if (!sched_cpuset_has(cpus, c))
			continue;
		pathf(path, sizeof(path),
		      "%s/sys/devices/system/cpu/cpu%u/cpufreq/scaling_governor", rootdir, c);
		r = write_governor(path, governor);
		if (r < 0)
			goto rollback;
		done[n_done++] = c;
	}
	return 0;

rollback:
	kiva_error_set(reterr, r, "Failed to set governor '%s' in '%s': %s", governor, path,
		       strerror(-r));
	while (n_done > 0) {
		unsigned c = done[--n_done];
		char p[PATH_MAX];

		if (!old[c][0])
			continue;
		pathf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu%u/cpufreq/scaling_governor",
		      rootdir, c);
		(void)write_governor(p, old[c]);
	}
	return r;
}
