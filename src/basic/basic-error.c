/* kiva_error: the negative errno plus the user-facing message of a failed operation. */
#include <stdio.h>
#include <string.h>

#include "basic-error.h"

__attribute__((format(printf, 3, 0))) static int error_vset(struct kiva_error *reterr, int code,
							    const char *fmt, va_list ap)
{
	if (reterr) {
		reterr->code = code;
		vsnprintf(reterr->msg, sizeof(reterr->msg), fmt, ap);
	}
	return code;
}

int kiva_error_set(struct kiva_error *reterr, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(reterr, code, fmt, ap);
	va_end(ap);
	return code;
}

int kiva_error_default(struct kiva_error *reterr, int code, const char *fmt, ...)
{
	va_list ap;

	if (reterr && reterr->msg[0])
		return code;
	va_start(ap, fmt);
	error_vset(reterr, code, fmt, ap);
	va_end(ap);
	return code;
}
