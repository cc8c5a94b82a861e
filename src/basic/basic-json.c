/* Typed, forgiving getters over jansson objects. */
#include <errno.h>
#include <string.h>

#include "basic-json.h"

const char *json_get_str(const json_t *obj, const char *key, const char *fallback)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : fallback;
}

bool json_get_bool(const json_t *obj, const char *key, bool fallback)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_boolean(v) ? json_is_true(v) : fallback;
}

long long json_get_int(const json_t *obj, const char *key, long long fallback)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_integer(v) ? json_integer_value(v) : fallback;
}

int json_set_str(json_t *obj, const char *key, const char *value)
{
	return json_object_set_new(obj, key, json_string(value)) < 0 ? -ENOMEM : 0;
}

char *json_dump_compact(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}
