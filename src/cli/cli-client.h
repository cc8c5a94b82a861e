/* The kiva CLI's view of kivad's REST API (LXD's /1.0 shapes): one keep-alive connection, the
 * sync/async/error envelope, and background operations waited on until they finish. Errors come back
 * as -errno plus the server's message in a kiva_error, which the CLI prints as "Error: <message>". */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "basic-error.h"
#include "basic-json.h"
#include "cli-http.h"
#include "cli-ws.h"

struct cli_client;

/* Creates a client for the unix socket at socket_path (connects lazily, on the first call). With
 * debug, every request and response is traced on stderr. Returns 0 or -errno with reterr set. */
int cli_client_new(const char *socket_path, bool debug, struct cli_client **ret,
		   struct kiva_error *reterr);
void cli_client_free(struct cli_client *c);

struct cli_call {
	const char *method; /* "GET", "POST", ... */
	const char *path; /* "/1.0/instances/c1", percent-encoded, with query */
	const json_t *body; /* JSON body, or NULL */
	const char *if_match; /* ETag from an earlier GET, sent as If-Match; NULL for none */
	bool upload; /* raw body from upload_fd (upload_len bytes) instead of JSON */
	int upload_fd;
	uint64_t upload_len;
	const char *content_type; /* for upload; NULL: application/octet-stream */
	const char *filename; /* for upload: sent as X-LXD-filename */
	const char *const *headers; /* for upload: more "Name: value" lines, NULL-terminated */
	bool wait; /* async response: wait for the operation to finish */
	char **ret_etag; /* if not NULL, receives the response's ETag (or NULL); caller frees */
};

/* Performs call. On success *ret_metadata (if not NULL) receives a new reference to the response's
 * "metadata" (json null when absent): for a sync response the resource, for an async one with
 * call->wait the finished operation's "metadata", without wait the operation object. A failed
 * operation is an error with the operation's "err" as message. Errors: -ENOENT (404), -EINVAL (400),
 * -EEXIST (409), -EACCES (403), -EBUSY (412), -EIO (other server errors, malformed responses),
 * connection errors. */
int cli_call(struct cli_client *c, const struct cli_call *call, json_t **ret_metadata,
	     struct kiva_error *reterr);

/* GET path, sync; *ret_metadata as for cli_call. */
int cli_get(struct cli_client *c, const char *path, json_t **ret_metadata,
	    struct kiva_error *reterr);

/* method path body: sync, or async and waited for. ret_metadata may be NULL. */
int cli_run(struct cli_client *c, const char *method, const char *path, const json_t *body,
	    json_t **ret_metadata, struct kiva_error *reterr);

/* GETs path and writes the raw body (not JSON) of a 2xx response to fd as it arrives. An error
 * response is decoded as an LXD error. */
int cli_get_raw(struct cli_client *c, const char *path, int fd, struct kiva_error *reterr);

/* cli_get_raw that also hands back the response (status and headers; the body went to fd) in
 * *ret_resp, written on success only: the X-LXD-* headers of GET .../files. Free it with
 * cli_http_response_done. */
int cli_get_raw_response(struct cli_client *c, const char *path, int fd,
			 struct cli_http_response *ret_resp, struct kiva_error *reterr);

/* Waits for the operation at op_path ("/1.0/operations/<id>") with GET .../wait?timeout=-1 until it
 * is no longer running. Returns the finished operation object in *ret_op (new reference) when its
 * status is Success; otherwise an error carrying the operation's "err". */
int cli_wait_operation(struct cli_client *c, const char *op_path, json_t **ret_op,
		       struct kiva_error *reterr);

/* Decodes an HTTP response carrying an LXD envelope. On a 2xx sync/async response *ret_env gets the
 * parsed envelope (new reference). On an error response or anything malformed, returns -errno
 * (mapped from the HTTP status as for cli_call) with the server's "error" text in reterr. */
int cli_decode_envelope(const struct cli_http_response *resp, json_t **ret_env,
			struct kiva_error *reterr);

/* Maps an HTTP status to -errno (404 → -ENOENT ...). */
int cli_http_status_to_errno(int status);

/* Opens a WebSocket on a new connection to the client's socket: GET target upgraded (RFC 6455
 * §4.1). target is percent-encoded with its query ("/1.0/events?type=lifecycle"); with --debug the
 * request is traced with any secret= value hidden. A refused upgrade is an error with the server's
 * message (mapped as for cli_call); a failed handshake is -EIO "WebSocket handshake ... failed".
 * Returns 0 or -errno with reterr set. */
int cli_client_websocket(struct cli_client *c, const char *target, struct cli_ws **ret,
			 struct kiva_error *reterr);

/* Opens the WebSocket of one stream of an operation: GET
 * /1.0/operations/<op_id>/websocket?secret=<secret>. As cli_client_websocket. */
int cli_client_op_websocket(struct cli_client *c, const char *op_id, const char *secret,
			    struct cli_ws **ret, struct kiva_error *reterr);
