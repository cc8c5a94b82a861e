/* Instance configuration: which keys exist, what their values may be, and the parsed limits the
 * runtime needs. Shared by kivad (validation before anything changes) and the CLI. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic-error.h"
#include "basic-json.h"

#define PROTO_CPU_MAX 1024

/* What the host offers, for checks like "more CPUs than the host has". */
struct proto_host {
	unsigned ncpus;
	uint64_t memory_bytes;
};

/* Parsed limits of one instance. */
struct proto_limits {
	uint64_t memory_bytes; /* 0 = unlimited */
	unsigned cpu_count; /* 0 = unlimited */
	bool cpu_pinned; /* limits.cpu was a set ("0-1,3"), cpuset holds it */
	char cpuset[256]; /* normalized "0-1,3" when pinned */
	int64_t processes; /* 0 = unlimited */
};

/* Parses a boolean as LXD does: true/false, yes/no, on/off, 1/0, any case. */
int proto_bool_parse(const char *s, bool *ret);

/* Validates one key=value. value NULL means "unset" (always fine for known keys).
 * Returns 0 or -EINVAL with a message that names the key and says what is wrong. */
int proto_config_validate_key(const char *key, const char *value, const struct proto_host *host,
			      struct kiva_error *reterr);

/* Validates a whole config object: an object of string values whose keys all validate.
 * User requests may not set volatile.* keys (allow_volatile false). */
int proto_config_validate(const json_t *config, const struct proto_host *host, bool allow_volatile,
			  struct kiva_error *reterr);

/* Extracts limits from a validated config object. */
int proto_limits_from_config(const json_t *config, struct proto_limits *ret,
			     struct kiva_error *reterr);

/* Parses a CPU list "0-3,5" into a bitmap of nbits bits (nbits ≤ PROTO_CPU_MAX) and the count.
 * Returns -EINVAL for syntax errors and -ERANGE for CPUs ≥ nbits. */
int proto_cpuset_parse(const char *s, uint64_t *bitmap, unsigned nbits, unsigned *ret_count);

/* Formats a bitmap as a normalized list ("0-3,5"). buf must hold len bytes. */
int proto_cpuset_format(const uint64_t *bitmap, unsigned nbits, char *buf, size_t len);
