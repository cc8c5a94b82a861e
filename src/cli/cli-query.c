/* kiva query: send a raw request to kivad's API and print the response's metadata (lxc query). */
#include <stdio.h>
#include <string.h>

#include "basic-macro.h"

#include "cli.h"

enum {
	OPT_METHOD = 1,
	OPT_DATA,
	OPT_WAIT,
};

static const struct cli_option options[] = {
	{"request", 'X', true, OPT_METHOD},
	{"data", 'd', true, OPT_DATA},
	{"wait", 0, false, OPT_WAIT},
	{},
};

struct query_opts {
	const char *method;
	const char *data;
	bool wait;
};

static int handle(void *userdata, int id, const char *arg, struct kiva_error *reterr)
{
	struct query_opts *o = userdata;

	switch (id) {
	case OPT_METHOD:
		o->method = arg;
		break;
	case OPT_DATA:
		o->data = arg;
		break;
	case OPT_WAIT:
		o->wait = true;
		break;
	}
	return 0;
}

static int cmd_query(struct cli_context *ctx, int argc, char **argv)
{
	struct query_opts o = {.method = "GET"};
	struct cli_parse spec = {
		.cmd = &cli_command_query,
		.options = options,
		.min_args = 1,
		.max_args = 1,
		.handle = handle,
		.userdata = &o,
	};
	cleanup_args struct cli_args a = {0};
	cleanup_json json_t *body = NULL, *meta = NULL;
	cleanup_free char *out = NULL;
	struct cli_client *c;
	json_error_t jerr;
	int r;

	r = cli_parse_args(ctx, &spec, argc, argv, &a);
	if (r <= 0)
		return r;
	if (a.positional[0][0] != '/')
		return cli_usage_error(ctx, "The path must start with '/': /1.0/...");
	if (o.data) {
		body = json_loads(o.data, JSON_DECODE_ANY, &jerr);
		if (!body)
			return kiva_error_set(&ctx->error, -EINVAL, "Invalid JSON in --data: %s",
					      jerr.text);
	}
	r = cli_context_client(ctx, &c);
	if (r < 0)
		return r;
	r = cli_call(
		c,
		&(struct cli_call){
			.method = o.method, .path = a.positional[0], .body = body, .wait = o.wait},
		&meta, &ctx->error);
	if (r < 0)
		return r;
	if (json_is_null(meta))
		return 0;
	out = json_dumps(meta, JSON_INDENT(4) | JSON_ENCODE_ANY);
	if (!out)
		return cli_oom(ctx);
	puts(out);
	return 0;
}

const struct cli_command cli_command_query = {
	.name = "query",
	.run = cmd_query,
	.summary = "Send a raw request to the API",
	.usage =
		"Usage: kiva query [flags] PATH\n"
		"\n"
		"Send a request to kivad's REST API and print the response's metadata as JSON.\n"
		"An async request prints its operation, or with --wait the finished operation's\n"
		"metadata.\n"
		"\n"
		"Flags:\n"
		"  -X, --request METHOD   HTTP method (default GET)\n"
		"  -d, --data JSON        Request body\n"
		"      --wait             Wait for a background operation to finish\n"
		"\n"
		"Example:\n"
		"  kiva query /1.0/instances?recursion=1\n"
		"  kiva query -X PATCH -d '{\"config\":{\"limits.memory\":\"128MB\"}}' /1.0/instances/c1\n",
};
