/* kiva monitor: print kivad's events as they happen, as lxc monitor does. A WebSocket on
 * /1.0/events?type=... carries one text message per event in LXD's format ({"type", "timestamp",
 * "location", "project", "metadata"}); each is printed as YAML followed by a blank line (lxc's
 * default) or as one line of JSON, and flushed at once, until interrupted or kivad goes away. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"
#include "basic-string.h"

#include "cli.h"

#define MONITOR_TYPES "lifecycle, operation, logging"

enum {
	OPT_TYPE = 1,
	OPT_FORMAT,
};

static const struct cli_option options[] = {
	{"type", 0, true, OPT_TYPE},
	{"format", 'f', true, OPT_FORMAT},
	{},
};

struct monitor_opts {
	char types[128]; /* "lifecycle,operation" */
	bool json;
};

/* Adds each of the comma-separated event types in arg to o->types. */
static int add_types(struct monitor_opts *o, const char *arg, struct kiva_error *reterr)
{
	static const char *const known[] = {"lifecycle", "operation", "logging"};

	for (const char *s = arg; *s;) {
		size_t n = strcspn(s, ",");
		bool ok = false;

		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			ok = ok || (n == strlen(known[i]) && strncmp(s, known[i], n) == 0);
		if (!ok)
			return kiva_error_set(reterr, -EINVAL,
					      "Invalid event type '%.*s': " MONITOR_TYPES, (int)n,
					      s);
		if (strlen(o->types) + n + 2 > sizeof(o->types))
			return kiva_error_set(reterr, -EINVAL, "Too many event types");
		snprintf(o->types + strlen(o->types), sizeof(o->types) - strlen(o->types), "%s%.*s",
			 o->types[0] ? "," : "", (int)n, s);
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct monitor_opts *o = userdata;

	switch (id) {
	case OPT_TYPE:
		return add_types(o, arg, reterr);
	case OPT_FORMAT:
		if (streq(arg, "json") || streq(arg, "yaml")) {
			o->json = streq(arg, "json");
			return 0;
		}
		return kiva_error_set(reterr, -EINVAL, "Invalid format '%s': json or yaml", arg);
	}
	return 0;
}

struct monitor_state {
	const struct monitor_opts *o;
	struct kiva_error *reterr;
	bool closed;
};

static int on_event(void *userdata, const struct cli_ws_message *m)
{
	struct monitor_state *st = userdata;
	cleanup_json json_t *ev = NULL;

	if (m->opcode == CLI_WS_CLOSE) {
		st->closed = true;
		return 0;
	}
	if (m->opcode != CLI_WS_TEXT || m->len == 0)
		return 0;
	ev = json_loadb((const char *)m->data, m->len, 0, NULL);
	if (!json_is_object(ev))
		return 0; /* not an event: nothing to print */
	if (st->o->json)
		(void)cli_print_json(ev);
	else {
		cli_yaml_print(stdout, ev, 0);
		fputc('\n', stdout);
	}
	if (fflush(stdout) == EOF || ferror(stdout))
		return kiva_error_set(st->reterr, -EIO, "Failed to write the event: %m");
	return 0;
}

static int cmd_monitor(struct cli_context *ctx, int argc, char **argv)
{
	struct monitor_opts o = {0};
	struct cli_parse spec = {
		.cmd = &cli_command_monitor,
		.options = options,
		.min_args = 0,
		.max_args = 0,
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_free char *target = NULL;
	struct monitor_state st = {.o = &o, .reterr = &ctx->error};
	struct cli_client *c;
	struct cli_ws *ws = NULL;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	target = o.types[0] ? strf("/1.0/events?type=%s", o.types) : strdup("/1.0/events");
	if (!target)
		return cli_oom(ctx);
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_client_websocket(c, target, &ws, &ctx->error);
	if (r < 0)
		return r;
	for (;;) {
		struct pollfd pfd = {.fd = cli_ws_fd(ws), .events = POLLIN};

		if (!cli_ws_has_buffered(ws) && poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = kiva_error_set(&ctx->error, -errno, "poll: %m");
			break;
		}
		r = cli_ws_read(ws, on_event, &st);
		if (r < 0) {
			kiva_error_default(&ctx->error, r, "Connection to kivad failed: %s",
					   strerror(-r));
			break;
		}
		if (r == 0 || st.closed) {
			r = kiva_error_set(&ctx->error, -ECONNRESET,
					   "kivad closed the event stream");
			break;
		}
	}
	cli_ws_free(ws);
	return r;
}

const struct cli_command cli_command_monitor = {
	.name = "monitor",
	.run = cmd_monitor,
	.summary = "Print kivad's events as they happen",
	.usage =
		"Usage: kiva monitor [flags]\n"
		"\n"
		"Print the events kivad sends (instances created, started, stopped, deleted ...;\n"
		"operations created and updated) as they happen, until interrupted.\n"
		"\n"
		"Flags:\n"
		"      --type TYPE       Event type to show: " MONITOR_TYPES " (repeatable,\n"
		"                        or comma-separated; default: all)\n"
		"  -f, --format FORMAT   yaml (default: one YAML document per event, then a blank\n"
		"                        line) or json (one line per event)\n"
		"\n"
		"Examples:\n"
		"  kiva monitor --type lifecycle\n"
		"  kiva monitor --format json | jq -r .metadata.action\n",
};
