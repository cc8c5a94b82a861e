/* String helpers shared by daemon and CLI. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "basic-macro.h"
#include "basic-string.h"

char *strf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

size_t strv_length(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

int strv_push(char ***v, char *s)
{
	size_t n = strv_length(*v);
	char **nv;

	if (!s)
		return -ENOMEM;
	nv = realloc(*v, (n + 2) * sizeof(char *));
	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	nv[n] = s;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || !(*s == '-' || (*s >= '0' && *s <= '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end || end == s)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_size_bytes(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {
		{"", 1},
		{"B", 1},
		{"kB", 1e3},
		{"KB", 1e3},
		{"MB", 1e6},
		{"GB", 1e9},
		{"TB", 1e12},
		{"PB", 1e15},
		{"KiB", 1024.0},
		{"MiB", 1048576.0},
		{"GiB", 1073741824.0},
		{"TiB", 1099511627776.0},
		{"PiB", 1125899906842624.0},
	};
	const char *p = s;
	double v;

	if (!s || !*s)
		return -EINVAL;
	/* digits with at most one dot */
	if (!(*p >= '0' && *p <= '9'))
		return -EINVAL;
	while ((*p >= '0' && *p <= '9') || *p == '.')
		p++;
	{
		char num[64];
		char *end;
		size_t len = (size_t)(p - s);

		if (len >= sizeof(num))
			return -ERANGE;
		memcpy(num, s, len);
		num[len] = 0;
		errno = 0;
		v = strtod(num, &end);
		if (*end || errno)
			return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(p, units[i].suffix) == 0) {
			double bytes = v * units[i].mult;

			if (bytes >= 1.8e19)
				return -ERANGE;
			if (units[i].mult == 1 && floor(v) != v)
				return -EINVAL;
			*ret = (uint64_t)bytes;
			return 0;
		}
	}
	return -EINVAL;
}

const char *format_bytes(uint64_t bytes, char buf[static 32])
{
	static const char *const suffix[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	size_t i = 0;

	while (v >= 1024 && i + 1 < ARRAY_SIZE(suffix)) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, 32, "%" PRIu64 "B", bytes);
	else
		snprintf(buf, 32, "%.2f%s", v, suffix[i]);
	return buf;
}

int random_hex(char *buf, size_t n)
{
	unsigned char raw[64];

	if (n > sizeof(raw))
		return -EINVAL;
	if (getrandom(raw, n, 0) != (ssize_t)n)
		return -errno;
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", raw[i]);
	buf[2 * n] = 0;
	return 0;
}

const char *now_rfc3339(char buf[static 40])
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 40, "%s.%09ldZ", base, ts.tv_nsec);
	return buf;
}
