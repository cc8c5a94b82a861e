/* Instance config keys (a subset of LXD's instance options, docs/config.md) and their checks. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "basic-string.h"
#include "proto-config.h"
#include "proto-schedule.h"

enum key_kind {
	KEY_BOOL,
	KEY_STRING,
	KEY_MEMORY,
	KEY_CPU,
	KEY_POSINT,
	KEY_NODES,
	KEY_SIZE,
	KEY_SCHEDULE,
	KEY_EXPIRY,
	KEY_PATTERN
};

int proto_bool_parse(const char *s, bool *ret)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			if (ret)
				*ret = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -EINVAL;
}

static const struct {
	const char *name;
	enum key_kind kind;
} known_keys[] = {
	{"limits.memory", KEY_MEMORY},	  {"limits.cpu", KEY_CPU},
	{"limits.processes", KEY_POSINT}, {"boot.autostart", KEY_BOOL},
	{"security.nesting", KEY_BOOL},	  {"limits.cpu.nodes", KEY_NODES},
	{"limits.cpu.reserve", KEY_BOOL}, {"security.sensitive", KEY_BOOL},
	{"limits.disk", KEY_SIZE},	  {"snapshots.schedule", KEY_SCHEDULE},
	{"snapshots.expiry", KEY_EXPIRY}, {"snapshots.pattern", KEY_PATTERN},
};

/* Namespaced keys whose suffix is free-form. */
static const char *const free_prefixes[] = {"user.", "image.", "environment."};

int proto_cpuset_parse(const char *s, uint64_t *bitmap, unsigned nbits, unsigned *ret_count)
{
	unsigned count = 0;
	const char *p = s;

	if (!s || !*s || nbits > PROTO_CPU_MAX)
		return -EINVAL;
	memset(bitmap, 0, ((nbits + 63) / 64) * sizeof(uint64_t));
	while (*p) {
		char *end;
		unsigned long a, b;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		a = strtoul(p, &end, 10);
		b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = strtoul(p, &end, 10);
			p = end;
		}
		if (b < a)
			return -EINVAL;
		if (b >= nbits)
			return -ERANGE;
		for (unsigned long i = a; i <= b; i++) {
			if (!(bitmap[i / 64] & (1ULL << (i % 64))))
				count++;
			bitmap[i / 64] |= 1ULL << (i % 64);
		}
		if (*p == ',') {
			p++;
			if (!*p)
				return -EINVAL;
		} else if (*p) {
			return -EINVAL;
		}
	}
	*ret_count = count;
	return 0;
}

int proto_cpuset_format(const uint64_t *bitmap, unsigned nbits, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < nbits;) {
		unsigned j;
		int n;

		if (!(bitmap[i / 64] & (1ULL << (i % 64)))) {
			i++;
			continue;
		}
		j = i;
		while (j + 1 < nbits && (bitmap[(j + 1) / 64] & (1ULL << ((j + 1) % 64))))
			j++;
		if (j == i)
			n = snprintf(buf + off, len - off, "%s%u", off ? "," : "", i);
		else
			n = snprintf(buf + off, len - off, "%s%u-%u", off ? "," : "", i, j);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOBUFS;
		off += (size_t)n;
		i = j + 1;
	}
	return 0;
}

static int validate_cpu(const char *key, const char *value, const struct proto_host *host,
			struct kiva_error *reterr)
{
	uint64_t bitmap[PROTO_CPU_MAX / 64];
	unsigned ncpus = host && host->ncpus ? host->ncpus : PROTO_CPU_MAX;
	unsigned count;
	int64_t n;
	int r;

	if (!strpbrk(value, ",-")) {
		r = parse_int64(value, INT64_MIN, INT64_MAX, &n);
		if (r == -EINVAL)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid value for %s '%s': expected a CPU count (\"2\") or "
				"a CPU list (\"0-1,3\")",
				key, value);
		if (r == 0 && n < 1)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid value for %s '%s': must be at least 1", key,
					      value);
		/* a count above the host's CPUs is admission control's to refuse, with the
		 * capacity numbers; only what no bitmap holds is invalid here */
		if (r == -ERANGE || (uint64_t)n > PROTO_CPU_MAX)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid value for %s '%s': needs %s CPUs, host has %u", key, value,
				value, ncpus);
		return 0;
	}
	r = proto_cpuset_parse(value, bitmap, PROTO_CPU_MAX, &count);
	if (r == -ERANGE || (r == 0 && proto_cpuset_parse(value, bitmap, ncpus, &count) == -ERANGE))
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid value for %s '%s': host has CPUs 0-%u only", key,
				      value, ncpus - 1);
	if (r < 0)
		return kiva_error_set(
			reterr, -EINVAL,
			"Invalid value for %s '%s': expected a CPU count (\"2\") or a CPU "
			"list (\"0-1,3\")",
			key, value);
	return 0;
}

int proto_config_validate_key(const char *key, const char *value, const struct proto_host *host,
			      struct kiva_error *reterr)
{
	if (!key || !*key)
		return kiva_error_set(reterr, -EINVAL, "Empty configuration key");
	for (size_t i = 0; i < ARRAY_SIZE(free_prefixes); i++)
		if (startswith(key, free_prefixes[i]) && strlen(key) > strlen(free_prefixes[i]))
			return 0;
	if (startswith(key, "volatile."))
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(known_keys); i++) {
		uint64_t bytes;
		int64_t n;

		if (!streq(key, known_keys[i].name))
			continue;
		if (!value)
			return 0;
		switch (known_keys[i].kind) {
		case KEY_BOOL:
			if (proto_bool_parse(value, NULL) == 0)
				return 0;
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid value for %s '%s': expected true or false (or yes/no, on/off, 1/0)",
				key, value);
		case KEY_STRING:
			return 0;
		case KEY_MEMORY:
			if (parse_size_bytes(value, &bytes) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for %s '%s': expected a size such as "
					"\"512MB\" or \"1GiB\"",
					key, value);
			if (bytes < 4 * 1024 * 1024)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for %s '%s': must be at least 4MiB", key,
					value);
			/* more than the host has is admission control's to refuse */
			return 0;
		case KEY_CPU:
			return validate_cpu(key, value, host, reterr);
		case KEY_SCHEDULE:
			return proto_schedule_validate(value, reterr);
		case KEY_EXPIRY:
			return proto_expiry_validate(value, reterr);
		case KEY_PATTERN:
			return proto_snapshot_pattern_validate(value, reterr);
		case KEY_SIZE:
			if (parse_size_bytes(value, &bytes) < 0 || bytes == 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for %s '%s': expected a size such as \"10GB\"",
					key, value);
			return 0;
		case KEY_NODES: {
			uint64_t nodes[1];
			unsigned count;

			if (proto_cpuset_parse(value, nodes, 64, &count) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for %s '%s': expected NUMA node ids (\"0\" or "
					"\"0-1\")",
					key, value);
			return 0;
		}
		case KEY_POSINT:
			if (parse_int64(value, 1, INT64_MAX, &n) < 0)
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid value for %s '%s': expected a positive integer",
					key, value);
			return 0;
		}
	}
	return kiva_error_set(reterr, -EINVAL, "Unknown configuration key: %s", key);
}

int proto_config_validate(const json_t *config, const struct proto_host *host, bool allow_volatile,
			  struct kiva_error *reterr)
{
	const char *key;
	json_t *value;

	if (!config)
		return 0;
	if (!json_is_object(config))
		return kiva_error_set(reterr, -EINVAL, "Invalid config: expected an object");
	json_object_foreach((json_t *)config, key, value) {
		int r;

		if (!json_is_string(value))
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid value for %s: expected a string", key);
		if (!allow_volatile && startswith(key, "volatile."))
			return kiva_error_set(reterr, -EINVAL,
					      "Configuration key %s is set by the server only",
					      key);
		r = proto_config_validate_key(key, json_string_value(value), host, reterr);
		if (r < 0)
			return r;
	}
	return 0;
}

int proto_limits_from_config(const json_t *config, struct proto_limits *ret,
			     struct kiva_error *reterr)
{
	struct proto_limits l = {0};
	const char *v;

	v = json_get_str(config, "limits.memory", NULL);
	if (v && parse_size_bytes(v, &l.memory_bytes) < 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid value for limits.memory '%s'", v);
	v = json_get_str(config, "limits.processes", NULL);
	if (v && parse_int64(v, 1, INT64_MAX, &l.processes) < 0)
		return kiva_error_set(reterr, -EINVAL, "Invalid value for limits.processes '%s'",
				      v);
	v = json_get_str(config, "limits.cpu", NULL);
	if (v) {
		if (strpbrk(v, ",-")) {
			uint64_t bitmap[PROTO_CPU_MAX / 64];

			if (proto_cpuset_parse(v, bitmap, PROTO_CPU_MAX, &l.cpu_count) < 0 ||
			    proto_cpuset_format(bitmap, PROTO_CPU_MAX, l.cpuset, sizeof(l.cpuset)) <
				    0)
				return kiva_error_set(reterr, -EINVAL,
						      "Invalid value for limits.cpu '%s'", v);
			l.cpu_pinned = true;
		} else {
			int64_t n;

			if (parse_int64(v, 1, PROTO_CPU_MAX, &n) < 0)
				return kiva_error_set(reterr, -EINVAL,
						      "Invalid value for limits.cpu '%s'", v);
			l.cpu_count = (unsigned)n;
		}
	}
	*ret = l;
	return 0;
}
