/* Snapshot scheduling keys of LXD: snapshots.schedule (cron expressions and @aliases, with the
 * next and previous fire times), snapshots.expiry ("1w 3d") and snapshots.pattern ("snap%d"),
 * plus snapshot name validation. Pure: no I/O, no clock, no global state; times are UTC unix
 * seconds passed in by the caller. Every function may be called from any thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic-error.h"

/* One cron expression, "<minute> <hour> <day-of-month> <month> <day-of-week>", as bitmaps. */
struct proto_cron {
	uint64_t minutes; /* bit n: minute n, 0-59 */
	uint32_t hours; /* bit n: hour n, 0-23 */
	uint32_t days; /* bit n: day of month n, 1-31 */
	uint16_t months; /* bit n: month n, 1-12 */
	uint8_t weekdays; /* bit n: weekday n, 0 = Sunday ... 6 = Saturday (7 is stored as 0) */
	/* The field was "*" (or "*" with step 1). When day-of-month and day-of-week are both
	 * restricted, a day matches if either matches (Vixie cron, robfig/cron as used by LXD);
	 * otherwise both must. "*" with a step > 1 counts as restricted, as in robfig/cron. */
	bool days_star, weekdays_star;
};

/* The five distinct aliases (@midnight = @daily, @annually = @yearly) are the most a list holds. */
#define PROTO_SCHEDULE_MAX 5

/* A parsed snapshots.schedule: the union of n cron expressions. n == 0: disabled (empty value). */
struct proto_schedule {
	unsigned n;
	struct proto_cron crons[PROTO_SCHEDULE_MAX];
};

/* How far proto_schedule_next/prev look: 5 years (5 × 365 days + 2 leap days). */
#define PROTO_SCHEDULE_HORIZON_SEC (1827LL * 86400)

/* Parses snapshots.schedule, as LXD accepts it: empty (or NULL, or only blanks) to disable, one
 * cron expression, or a comma-separated list of aliases (@hourly, @daily, @midnight, @weekly,
 * @monthly, @yearly, @annually; any case, blanks around the commas allowed).
 *
 * A cron expression has 5 fields separated by blanks (spaces or tabs): minute 0-59, hour 0-23,
 * day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 (0 and 7 are Sunday) or SUN-SAT
 * (names in any case). A field is a comma-separated list of items; an item is "*", a value "a",
 * a range "a-b", each optionally with a step "/n" (1 ≤ n ≤ the field's size; "a/n" means "a-max/n"
 * as in robfig/cron). The aliases are @hourly "0 * * * *", @daily/@midnight "0 0 * * *", @weekly
 * "0 0 * * 0", @monthly "0 0 1 * *", @yearly/@annually "0 0 1 1 *" (LXD instead spreads aliases
 * over the hour/day by instance id; the caller can do that by choosing its own expression).
 *
 * Fills *ret on success. Returns 0, or -EINVAL with a message that quotes the value and names the
 * field and the bad token: "Invalid snapshots.schedule '61 * * * *': minute 61 is out of range
 * 0-59". A day that no month has ("0 0 30 2 *") parses; proto_schedule_next then returns -1. */
int proto_schedule_parse(const char *text, struct proto_schedule *ret, struct kiva_error *reterr);

/* Validator for proto-config: proto_schedule_parse without the result. NULL (unset) is valid. */
int proto_schedule_validate(const char *value, struct kiva_error *reterr);

/* The first fire time strictly after after_unix: a whole minute, UTC unix seconds. Returns -1 if
 * the schedule is disabled, or none falls within PROTO_SCHEDULE_HORIZON_SEC after after_unix, or
 * after_unix is outside ±2^62. Cost: at most a few thousand day steps (months and, where only the
 * day-of-month restricts, days are skipped by bitmap), a day's minutes by bitmap. */
int64_t proto_schedule_next(const struct proto_schedule *s, int64_t after_unix);

/* The latest fire time at or before at_or_before_unix (a whole minute ≤ it), or -1 as for
 * proto_schedule_next (nothing within PROTO_SCHEDULE_HORIZON_SEC before it). The daemon runs a
 * snapshot missed during downtime once, at start, when prev(now) is later than the last
 * scheduled snapshot. */
int64_t proto_schedule_prev(const struct proto_schedule *s, int64_t at_or_before_unix);

/* A parsed snapshots.expiry. set == false: empty value, snapshots never expire. */
struct proto_expiry {
	bool set;
	uint32_t minutes, hours, days, weeks, months, years;
};

/* Largest number accepted in one expiry term. */
#define PROTO_EXPIRY_TERM_MAX 1000000

/* Parses snapshots.expiry as LXD's GetExpiry: blank-separated terms "<n><unit>", unit M
 * (minutes), H (hours), d (days), w (weeks), m (months), y (years), each unit at most once,
 * 0 ≤ n ≤ PROTO_EXPIRY_TERM_MAX: "2d", "1w 3d", "1M". Empty (or NULL, or blanks) means never.
 * Fills *ret on success. Returns 0 or -EINVAL with a message quoting the value and the term. */
int proto_expiry_parse(const char *text, struct proto_expiry *ret, struct kiva_error *reterr);

/* Validator for proto-config: proto_expiry_parse without the result. NULL (unset) is valid. */
int proto_expiry_validate(const char *value, struct kiva_error *reterr);

/* The expiry time of a snapshot taken at from_unix, or 0 when e is not set (never expires).
 * As Go's t.AddDate(years, months, days + 7 × weeks).Add(hours, minutes) in UTC, which LXD uses:
 * the calendar date's year and month are added, then the days, and an overflowing day of month
 * is normalised forward: Jan 31 + 1m = Feb 31 = Mar 3 (Mar 2 in a leap year), Feb 29 + 1y =
 * Mar 1. The time of day is kept. "0d" expires at from_unix itself, as in LXD. */
int64_t proto_expiry_apply(const struct proto_expiry *e, int64_t from_unix);

/* Longest snapshot name. */
#define PROTO_SNAPSHOT_NAME_MAX 63

/* Snapshot names (LXD's rules, with KIVA's length limit): 1-63 bytes, not "." or "..", no '/',
 * no whitespace or control characters. Returns 0 or -EINVAL with a message such as
 * "Invalid snapshot name 'a/b': '/' is not allowed". */
int proto_snapshot_name_validate(const char *name, struct kiva_error *reterr);

/* Default of snapshots.pattern, used when the value is NULL or empty. */
#define PROTO_SNAPSHOT_PATTERN_DEFAULT "snap%d"

/* Validator for snapshots.pattern: "%d" at most once (the number), "%%" a literal '%', no other
 * '%' sequence, and the names it makes must be valid snapshot names (checked with the number 0;
 * a name made longer than 63 bytes by a large number is refused when naming). NULL or "" is
 * valid (the default). Returns 0 or -EINVAL with a message naming snapshots.pattern. */
int proto_snapshot_pattern_validate(const char *pattern, struct kiva_error *reterr);

/* Names the next scheduled snapshot from pattern (NULL or "" = PROTO_SNAPSHOT_PATTERN_DEFAULT).
 * taken: the instance's existing snapshot names (n_taken of them; NULL entries are skipped,
 * taken may be NULL when n_taken is 0), borrowed. "%d" becomes the lowest integer ≥ 0 whose name
 * is not taken (so numbers freed by expiry are reused; LXD uses the highest + 1). Without "%d"
 * the name is the pattern itself (LXD would append "-%d" instead).
 * Writes the NUL-terminated name into buf (len bytes) only on success and returns 0. Errors:
 * -EINVAL invalid pattern, -EEXIST pattern without %d whose name is taken, -ENAMETOOLONG the
 * number made the name longer than 63 bytes, -ENOBUFS buf too small, -ENOMEM. */
int proto_snapshot_pattern_name(const char *pattern, const char *const *taken, size_t n_taken,
				char *buf, size_t len, struct kiva_error *reterr);
