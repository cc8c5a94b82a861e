/* Errors a user reads. Operations an API client can reach take `struct kiva_error *reterr` last and
 * fill it with a negative errno and the message the user will see; the API maps the errno to an HTTP
 * status (api-router.c). reterr may be NULL. */
#pragma once

#include <stdarg.h>

struct kiva_error {
	int code; /* -errno, 0 when unset */
	char msg[512];
};

/* Sets reterr (if not NULL) and returns code, which must be negative. Usage:
 *   return kiva_error_set(reterr, -EEXIST, "Instance '%s' already exists", name); */
int kiva_error_set(struct kiva_error *reterr, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Sets reterr only if it has no message yet, so inner errors win over generic outer ones. */
int kiva_error_default(struct kiva_error *reterr, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
