/* Logging for the boundaries (daemon loop, API handlers, CLI commands). Library code logs at debug
 * at most. Messages go to stderr with a level prefix; `%m` works as in syslog (errno is set from the
 * error argument of the *_errno variants). Never log a secret. */
#pragma once

#include <errno.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
void log_set_ident(const char *ident);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Called with each message logged (kivad: "logging" events); NULL removes it. */
typedef void (*log_hook_fn)(enum log_level level, const char *msg);
void log_set_hook(log_hook_fn hook); /* only the calling thread's lines reach it */

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* Logs with errno = -r and returns r (which must be negative). */
#define log_error_errno(r, ...)                                                                    \
	({                                                                                         \
		int _r = (r);                                                                      \
		errno = -_r;                                                                       \
		log_msg(LOG_LEVEL_ERROR, __VA_ARGS__);                                             \
		_r;                                                                                \
	})
#define log_warning_errno(r, ...)                                                                  \
	({                                                                                         \
		int _r = (r);                                                                      \
		errno = -_r;                                                                       \
		log_msg(LOG_LEVEL_WARNING, __VA_ARGS__);                                           \
		_r;                                                                                \
	})
