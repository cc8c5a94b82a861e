/* Re-entrant option iteration and the value parsers shared by the kiva verbs. Messages follow the
 * wording of LXD's lxc (cobra) so scripts and users see the same thing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic-macro.h"

#include "cli-args.h"

enum {
	GLOBAL_HANDLED = 0x10000, /* internal: a global flag was consumed, keep going */
};

int cli_args_init(struct cli_args *a, int argc, char **argv, const struct cli_option *options,
		  struct cli_global *global)
{
	*a = (struct cli_args){
		.argc = argc,
		.argv = argv,
		.index = 1,
		.options = options,
		.global = global,
	};
	a->positional = calloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof(char *));
	return a->positional ? 0 : -ENOMEM;
}

void cli_args_done(struct cli_args *a)
{
	free(a->positional);
	a->positional = NULL;
	a->n_positional = 0;
}

static const struct cli_option *find_long(const struct cli_option *opts, const char *name,
					  size_t len)
{
	for (size_t i = 0; opts && opts[i].name; i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

static const struct cli_option *find_short(const struct cli_option *opts, char c)
{
	for (size_t i = 0; opts && opts[i].name; i++)
		if (opts[i].short_name == c)
			return &opts[i];
	return NULL;
}

/* Global flags: ids below are only used inside this file. */
enum { G_SOCKET = 1, G_DEBUG, G_HELP };
static const struct cli_option global_options[] = {
	{"socket", 0, true, G_SOCKET},
	{"debug", 0, false, G_DEBUG},
	{"help", 'h', false, G_HELP},
	{},
};

static int apply(struct cli_args *a, const struct cli_option *o, bool is_global, const char *arg,
		 const char **ret_arg)
{
	if (!is_global) {
		*ret_arg = arg;
		return o->id;
	}
	switch (o->id) {
	case G_SOCKET:
		a->global->socket_path = arg;
		break;
	case G_DEBUG:
		a->global->debug = true;
		break;
	case G_HELP:
		a->global->help = true;
		break;
	}
	return GLOBAL_HANDLED;
}

static int parse_long(struct cli_args *a, const char *s, const char **ret_arg)
{
	const char *eq = strchr(s, '=');
	size_t len = eq ? (size_t)(eq - s) : strlen(s);
	const struct cli_option *o = find_long(a->options, s, len);
	bool is_global = false;
	const char *arg = NULL;

	if (!o && a->global) {
		o = find_long(global_options, s, len);
		is_global = o != NULL;
	}
	if (!o) {
		snprintf(a->error, sizeof(a->error), "unknown flag: --%.*s", (int)len, s);
		return -EINVAL;
	}
	if (o->has_arg) {
		if (eq)
			arg = eq + 1;
		else if (a->index < a->argc)
			arg = a->argv[a->index++];
		else {
			snprintf(a->error, sizeof(a->error), "flag needs an argument: --%s",
				 o->name);
			return -EINVAL;
		}
	} else if (eq) {
		snprintf(a->error, sizeof(a->error), "flag does not take a value: --%s", o->name);
		return -EINVAL;
	}
	return apply(a, o, is_global, arg, ret_arg);
}

static int parse_short(struct cli_args *a, const char **ret_arg)
{
	char c = *a->short_rest++;
	const struct cli_option *o = find_short(a->options, c);
	bool is_global = false;
	const char *arg = NULL;

	if (!o && a->global) {
		o = find_short(global_options, c);
		is_global = o != NULL;
	}
	if (!o) {
		snprintf(a->error, sizeof(a->error), "unknown shorthand flag: '%c' in -%c", c, c);
		return -EINVAL;
	}
	if (o->has_arg) {
		if (*a->short_rest)
			arg = a->short_rest;
		else if (a->index < a->argc)
			arg = a->argv[a->index++];
		else {
			snprintf(a->error, sizeof(a->error), "flag needs an argument: '%c' in -%c",
				 c, c);
			return -EINVAL;
		}
		a->short_rest = NULL;
	}
	return apply(a, o, is_global, arg, ret_arg);
}

int cli_args_next(struct cli_args *a, const char **ret_arg)
{
	*ret_arg = NULL;
	for (;;) {
		const char *s;
		int r;

		if (a->short_rest && *a->short_rest) {
			r = parse_short(a, ret_arg);
		} else {
			a->short_rest = NULL;
			if (a->index >= a->argc)
				return 0;
			s = a->argv[a->index];
			if (a->dashdash || (a->stop_after && a->n_positional >= a->stop_after) ||
			    s[0] != '-' || s[1] == 0) {
				a->positional[a->n_positional++] = s;
				a->index++;
				continue;
			}
			a->index++;
			if (streq(s, "--")) {
				a->dashdash = true;
				continue;
			}
			if (s[1] == '-') {
				r = parse_long(a, s + 2, ret_arg);
			} else {
				a->short_rest = s + 1;
				r = parse_short(a, ret_arg);
			}
		}
		if (r != GLOBAL_HANDLED)
			return r;
	}
}

int cli_parse_key_value(const char *s, char **ret_key, char **ret_value)
{
	const char *eq = strchr(s, '=');
	char *k, *v;

	if (!eq || eq == s)
		return -EINVAL;
	k = strndup(s, (size_t)(eq - s));
	v = strdup(eq + 1);
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	*ret_key = k;
	*ret_value = v;
	return 0;
}

int cli_config_add(json_t *obj, const char *kv, struct kiva_error *reterr)
{
	cleanup_free char *key = NULL, *value = NULL;
	int r = cli_parse_key_value(kv, &key, &value);

	if (r == -EINVAL)
		return kiva_error_set(reterr, r, "Bad key=value pair: %s", kv);
	if (r < 0)
		return kiva_error_set(reterr, r, "Out of memory");
	if (json_set_str(obj, key, value) < 0)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	return 0;
}

int cli_parse_format(const char *s, enum cli_format *ret)
{
	static const char *const names[] = {
		[CLI_FORMAT_TABLE] = "table",
		[CLI_FORMAT_CSV] = "csv",
		[CLI_FORMAT_JSON] = "json",
		[CLI_FORMAT_YAML] = "yaml",
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (streq(s, names[i])) {
			*ret = (enum cli_format)i;
			return 0;
		}
	return -EINVAL;
}
