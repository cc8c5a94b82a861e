/* Helpers of kiva list that other verbs (info, image list, operation list) reuse. */
#pragma once

#include "basic-error.h"
#include "basic-json.h"

/* cli_parse handler for a single --format option: userdata is an enum cli_format. */
int cli_handle_format(void *userdata, int id, const char *arg, struct kiva_error *reterr);

/* "10.0.3.5 (eth0)" lines, sorted, for the addresses of family ("inet", "inet6") in an instance
 * state's "network" map, skipping loopback and link-local scope, as lxc list shows them. Caller
 * frees; NULL on OOM. */
char *cli_instance_addresses(const json_t *state, const char *family);
