/* String helpers shared by daemon and CLI. */
#include <errno.h>
#include <inttypes.h>
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
		uint64_t mult;
	} units[] = {
		{"", 1},
		{"B", 1},
		{"kB", 1000ULL},
		{"KB", 1000ULL},
		{"MB", 1000000ULL},
		{"GB", 1000000000ULL},
		{"TB", 1000000000000ULL},
		{"PB", 1000000000000000ULL},
		{"KiB", 1ULL << 10},
		{"MiB", 1ULL << 20},
		{"GiB", 1ULL << 30},
		{"TiB", 1ULL << 40},
		{"PiB", 1ULL << 50},
	};
	uint64_t whole = 0, frac = 0, frac_div = 1;
	const char *p = s;
	bool has_frac = false;

	if (!s || !(*p >= '0' && *p <= '9'))
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++)
		if (__builtin_mul_overflow(whole, 10, &whole) ||
		    __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
			return -ERANGE;
	if (*p == '.') {
		p++;
		has_frac = true;
		if (!(*p >= '0' && *p <= '9'))
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (frac_div >= 1000000000000000000ULL)
				continue; /* beyond 18 digits: ignore */
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		uint64_t bytes, part;

		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (has_frac && units[i].mult == 1)
			return -EINVAL;
		if (__builtin_mul_overflow(whole, units[i].mult, &bytes))
			return -ERANGE;
		/* frac/frac_div of a unit, exact for the units above (mult <= 2^50) */
		part = (uint64_t)((unsigned __int128)frac * units[i].mult / frac_div);
		if (__builtin_add_overflow(bytes, part, &bytes))
			return -ERANGE;
		*ret = bytes;
		return 0;
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

bool str_has_word(const char *list, const char *w)
{
	size_t n = strlen(w);

	if (!list || n == 0)
		return false;
	for (const char *p = list; (p = strstr(p, w)); p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
		    (p[n] == 0 || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}
