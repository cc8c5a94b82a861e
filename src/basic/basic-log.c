/* Level-filtered logging to stderr with a timestamp and the program's name. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "basic-log.h"

static enum log_level min_level = LOG_LEVEL_INFO;
static const char *log_ident = "kiva";

void log_set_level(enum log_level level)
{
	min_level = level;
}

void log_set_ident(const char *ident)
{
	log_ident = ident;
}

static log_hook_fn log_hook;

void log_set_hook(log_hook_fn hook)
{
	log_hook = hook;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	va_list ap;
	int saved = errno;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s[%s]: ", stamp, ts.tv_nsec / 1000000, log_ident, names[level]);
	errno = saved;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (log_hook) {
		static bool in_hook; /* what the hook logs is not hooked again */
		char msg[1024];

		if (!in_hook) {
			in_hook = true;
			errno = saved;
			va_start(ap, fmt);
			vsnprintf(msg, sizeof(msg), fmt, ap);
			va_end(ap);
			log_hook(level, msg);
			in_hook = false;
		}
	}
	errno = saved;
}
