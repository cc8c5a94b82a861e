/* The one include of <jansson.h>. Every module that handles JSON includes this header, which adds
 * a cleanup attribute for json_t and a few typed getters that treat a missing key and a wrong type
 * alike (they return the fallback). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "basic-macro.h"

/* jansson ships json_decrefp() (NULL-safe) for exactly this. */
#define cleanup_json __attribute__((cleanup(json_decrefp)))

/* Borrowed string value of obj[key], or fallback when absent or not a string. */
const char *json_get_str(const json_t *obj, const char *key, const char *fallback);
/* obj[key] as bool, or fallback when absent or not a bool. */
bool json_get_bool(const json_t *obj, const char *key, bool fallback);
/* obj[key] as integer, or fallback when absent or not an integer. */
long long json_get_int(const json_t *obj, const char *key, long long fallback);
/* Sets obj[key] to a new string (copied). Returns 0 or -ENOMEM. */
int json_set_str(json_t *obj, const char *key, const char *value);

/* Compact serialization with sorted keys. Caller frees. NULL on OOM. */
char *json_dump_compact(const json_t *j);
