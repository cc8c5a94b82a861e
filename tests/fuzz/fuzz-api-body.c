/* libFuzzer harness: an instance-create request body as kivad validates it before changing
 * anything (JSON parse, name rules, config keys and values, limits extraction). */
#include <stdint.h>
#include <stdlib.h>

#include "basic-json.h"
#include "proto-config.h"
#include "proto-name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct proto_host host = {.ncpus = 12, .memory_bytes = 48ULL << 30};
	struct kiva_error err = {0};
	struct proto_limits lim;
	json_t *body, *config;

	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!body)
		return 0;
	(void)proto_instance_name_validate(json_get_str(body, "name", NULL), &err);
	(void)proto_alias_name_validate(json_get_str(body, "alias", NULL), &err);
	config = json_object_get(body, "config");
	if (proto_config_validate(config, &host, false, &err) == 0 && config)
		(void)proto_limits_from_config(config, &lim, &err);
	json_decref(body);
	return 0;
}
