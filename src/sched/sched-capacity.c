/* The capacity model: what the hardware offers (every online CPU, every node's memory) capped by
 * the operator's capacity file (DESIGN.md §6). The file is a fixed two-level YAML subset, so it
 * has its own small parser rather than a YAML library: one `z600_capacity:` header at column 0,
 * then indented `key: value` lines, `#` comments and blank lines. Anything else is refused with
 * the line number and the key, so an operator's typo never silently changes admission. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-error.h"
#include "basic-fs.h"
#include "basic-macro.h"
#include "kiva-sched.h"

#define GIB (UINT64_C(1) << 30)
#define GB UINT64_C(1000000000)

void sched_capacity_from_topology(const struct sched_topology *topo, struct sched_capacity *ret)
{
	*ret = (struct sched_capacity){
		.cpu_total = topo->n_online,
		.ram_bytes = topo->mem_bytes,
		.disk_bytes = 0,
		.target = SCHED_TARGET_DEFAULT,
	};
}

/* A non-negative decimal number ("12", "0.85", "1e3" refused). */
static int parse_number(const char *s, double *ret)
{
	bool digits = false, dot = false;
	char *end;
	double v;

	if (*s == '-')
		return -ERANGE;
	for (const char *p = s; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits = true;
		else if (*p == '.' && !dot)
			dot = true;
		else
			return -EINVAL;
	}
	if (!digits)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return -EINVAL;
	*ret = v;
	return 0;
}

enum cap_key { KEY_CPU, KEY_RAM, KEY_DISK, KEY_TARGET, _KEY_MAX };

static const char *const key_names[_KEY_MAX] = {
	[KEY_CPU] = "cpu_total",
	[KEY_RAM] = "ram_total_gb",
	[KEY_DISK] = "disk_total_gb",
	[KEY_TARGET] = "target_utilization",
};

int sched_capacity_parse(const char *text, const char *name, const struct sched_topology *topo,
			 struct sched_capacity *ret, struct kiva_error *reterr)
{
	struct sched_capacity cap;
	bool seen[_KEY_MAX] = {}, header = false;
	unsigned lineno = 0;
	const char *p = text;

	sched_capacity_from_topology(topo, &cap);
	if (!name)
		name = "capacity file";

	while (*p) {
		char line[512], *s, *colon, *key, *value, *hash;
		size_t len = strcspn(p, "\n");
		size_t indent;
		double v;
		int k, r;

		lineno++;
		if (len >= sizeof(line))
			return kiva_error_set(reterr, -EINVAL, "%s line %u: line too long", name,
					      lineno);
		memcpy(line, p, len);
		line[len] = '\0';
		p += len;
		if (*p == '\n')
			p++;

		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		for (size_t n = strlen(line); n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\r');
		     n--)
			line[n - 1] = '\0';
		if (line[0] == '\0')
			continue;
		if (strchr(line, '\t'))
			return kiva_error_set(
				reterr, -EINVAL,
				"%s line %u: tabs are not allowed, indent with spaces", name,
				lineno);
		indent = strspn(line, " ");
		s = line + indent;

		if (indent == 0) {
			if (!streq(s, "z600_capacity:") || header)
				return kiva_error_set(
					reterr, -EINVAL,
					"%s line %u: expected 'z600_capacity:' once at the top, got '%s'",
					name, lineno, s);
			header = true;
			continue;
		}
		if (!header)
			return kiva_error_set(reterr, -EINVAL,
					      "%s line %u: '%s' before the 'z600_capacity:' header",
					      name, lineno, s);

		colon = strchr(s, ':');
		if (!colon)
			return kiva_error_set(reterr, -EINVAL,
					      "%s line %u: expected 'key: value', got '%s'", name,
					      lineno, s);
		*colon = '\0';
		key = s;
		value = colon + 1;
		value += strspn(value, " ");

		for (k = 0; k < _KEY_MAX; k++)
			if (streq(key, key_names[k]))
				break;
		if (k == _KEY_MAX)
			return kiva_error_set(
				reterr, -EINVAL,
				"%s line %u: unknown key '%s' (known: cpu_total, ram_total_gb, disk_total_gb, target_utilization)",
				name, lineno, key);
		if (seen[k])
			return kiva_error_set(reterr, -EINVAL, "%s line %u: %s is set twice", name,
					      lineno, key);
		seen[k] = true;

		if (*value == '\0')
			return kiva_error_set(reterr, -EINVAL, "%s line %u: %s has no value", name,
					      lineno, key);
		r = parse_number(value, &v);
		if (r == -ERANGE)
			return kiva_error_set(reterr, -EINVAL,
					      "%s line %u: %s must not be negative, got '%s'", name,
					      lineno, key, value);
		if (r < 0)
			return kiva_error_set(reterr, -EINVAL,
					      "%s line %u: %s is not a number: '%s'", name, lineno,
					      key, value);

		switch (k) {
		case KEY_CPU:
			if (v != floor(v) || v < 1)
				return kiva_error_set(
					reterr, -EINVAL,
					"%s line %u: cpu_total must be a whole number of at least 1, got '%s'",
					name, lineno, value);
			if (v > topo->n_online)
				return kiva_error_set(
					reterr, -EINVAL,
					"%s line %u: cpu_total %s is more than the %u CPUs this host has",
					name, lineno, value, topo->n_online);
			cap.cpu_total = (unsigned)v;
			break;
		case KEY_RAM:
			if (v <= 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"%s line %u: ram_total_gb must be above 0, got '%s'", name,
					lineno, value);
			if (v * (double)GIB < (double)cap.ram_bytes)
				cap.ram_bytes = (uint64_t)(v * (double)GIB);
			break;
		case KEY_DISK:
			if (v <= 0 || v > 1e9)
				return kiva_error_set(
					reterr, -EINVAL,
					"%s line %u: disk_total_gb must be above 0 and sane, got '%s'",
					name, lineno, value);
			cap.disk_bytes = (uint64_t)(v * (double)GB);
			break;
		case KEY_TARGET:
			if (v <= 0 || v > 1)
				return kiva_error_set(
					reterr, -EINVAL,
					"%s line %u: target_utilization must be above 0 and at most 1, got '%s'",
					name, lineno, value);
			cap.target = v;
			break;
		}
	}
	if (!header)
		return kiva_error_set(reterr, -EINVAL, "%s: no 'z600_capacity:' section", name);

	*ret = cap;
	return 0;
}

int sched_capacity_load(const char *path, const struct sched_topology *topo,
			struct sched_capacity *ret, struct kiva_error *reterr)
{
	cleanup_free char *text = NULL;
	int r;

	r = read_file(path, 64 * 1024, &text, NULL);
	if (r == -ENOENT) {
		sched_capacity_from_topology(topo, ret);
		return 0;
	}
	if (r < 0)
		return kiva_error_set(reterr, r, "Failed to read '%s': %s", path, strerror(-r));
	return sched_capacity_parse(text, path, topo, ret, reterr);
}
