/* Level-filtered logging to stderr with a timestamp and the program's name. Any thread may log
 * (a line is written whole); the hook only sees the lines of the thread that set it (kivad's loop:
 * the hook feeds WebSocket subscribers, which only the loop may touch). */
#include <errno.h>
#include <pthread.h>
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
static pthread_t log_hook_thread;

void log_set_hook(log_hook_fn hook)
{
	log_hook = hook;
	log_hook_thread = pthread_self();
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warning", "error"};
	struct timespec ts;
	struct tm tm;
	char stamp[32], line[4096];
	va_list ap;
	int n, m;
	int saved = errno;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* one write(2) a line (stderr is unbuffered: three calls were three writes) */
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%s]: ", stamp, ts.tv_nsec / 1000000,
		     log_ident, names[level]);
	errno = saved;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)(n + m) > sizeof(line) - 2)
		m = (int)sizeof(line) - 2 - n; /* cut: the rest of a long line is lost */
	line[n + m] = '\n';
	fwrite(line, 1, (size_t)(n + m + 1), stderr);
	if (log_hook && pthread_equal(pthread_self(), log_hook_thread)) {
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
