/* Command-line parsing for kiva verbs: a re-entrant option iterator (getopt_long-like, but with no
 * global state and with the global flags --socket, --debug and --help recognised by every verb),
 * plus the small value parsers the verbs share (`-c key=value`, --format, --timeout). Pure code: no
 * I/O, testable on argv arrays. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "basic-error.h"
#include "basic-json.h"

struct cli_option {
	const char *name; /* long name without the dashes: "config" */
	char short_name; /* 'c', or 0 */
	bool has_arg;
	int id; /* > 0, returned by cli_args_next */
};

/* Flags every verb accepts, anywhere before "--". */
struct cli_global {
	const char *socket_path; /* --socket PATH; borrowed from argv */
	bool debug; /* --debug: trace HTTP requests on stderr */
	bool help; /* --help / -h */
	bool version; /* --version (accepted only where the caller checks it) */
};

struct cli_args {
	int argc;
	char **argv;
	int index; /* next argv element to look at */
	const char *short_rest; /* rest of a "-abc" cluster being walked */
	const struct cli_option *options; /* terminated by an entry with name == NULL */
	struct cli_global *global;
	size_t stop_after; /* once this many positionals are seen, the rest is positional (0: never) */
	bool dashdash; /* "--" seen: the rest is positional */
	const char **positional; /* borrowed argv pointers; NULL-terminated */
	size_t n_positional;
	char error[128]; /* the usage error when cli_args_next fails */
};

/* Starts parsing argv[1..argc-1] (argv[0] is the verb). options may be NULL. global is updated as
 * global flags are met. Returns 0 or -ENOMEM. Free with cli_args_done. */
int cli_args_init(struct cli_args *a, int argc, char **argv, const struct cli_option *options,
		  struct cli_global *global);
/* Accepts a zeroed struct, so `cleanup_args struct cli_args a = {0};` is safe on every path. */
void cli_args_done(struct cli_args *a);
#define cleanup_args __attribute__((cleanup(cli_args_done)))

/* Returns the id of the next option of a->options (its argument, if it takes one, in *ret_arg),
 * 0 when argv is exhausted, or -EINVAL with a->error set ("unknown flag: --foo", "flag needs an
 * argument: -c"). Positional arguments are collected in a->positional along the way. */
int cli_args_next(struct cli_args *a, const char **ret_arg);

/* Splits "key=value" (the value may be empty and may contain '='). Returns 0, -EINVAL when there is
 * no '=' or the key is empty, -ENOMEM. Caller frees both. */
int cli_parse_key_value(const char *s, char **ret_key, char **ret_value);

/* Adds "key=value" to the JSON object obj (as a string), -EINVAL with a message in reterr. */
int cli_config_add(json_t *obj, const char *kv, struct kiva_error *reterr);

enum cli_format {
	CLI_FORMAT_TABLE,
	CLI_FORMAT_CSV,
	CLI_FORMAT_JSON,
	CLI_FORMAT_YAML,
};

/* "table", "csv", "json", "yaml" → enum. Returns 0 or -EINVAL. */
int cli_parse_format(const char *s, enum cli_format *ret);
