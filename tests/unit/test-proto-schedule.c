/* Unit tests of proto-schedule.c: snapshots.schedule parsing (good values with their bitmaps, bad
 * values with the message the user reads), next/prev fire times across month and year ends, leap
 * years, the day-of-month/day-of-week OR rule and the aliases, a property test against a slow
 * reference built on libc's gmtime_r, snapshots.expiry arithmetic against libc's timegm,
 * snapshots.pattern naming and snapshot name validation. Pure functions only. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "proto-schedule.h"

#define MSG(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Fails unless every fragment occurs in msg. */
static void assert_msg_has(const char *what, const char *msg, const char *const *fragments)
{
	for (size_t i = 0; fragments && fragments[i]; i++)
		if (!strstr(msg, fragments[i]))
			fail_msg("%s: message \"%s\" lacks \"%s\"", what, msg, fragments[i]);
}

/* "YYYY-MM-DD hh:mm:ss" (UTC) to unix seconds, with libc (not the code under test). */
static int64_t ts(const char *s)
{
	struct tm tm = {0};
	int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		       &tm.tm_min, &tm.tm_sec);

	if (n != 3 && n != 6)
		fail_msg("bad timestamp in test: %s", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Unix seconds to "YYYY-MM-DD hh:mm:ss" for failure messages; -1 stays "-1". */
static const char *fmt_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == -1 || !gmtime_r(&tt, &tm))
		snprintf(buf, len, "%" PRId64, t);
	else
		snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d (%s)", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (const char *[]){"Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
					  "Sat"}[tm.tm_wday]);
	return buf;
}

static struct proto_schedule parse_ok(const char *text)
{
	struct proto_schedule s;
	struct kiva_error err = {0};

	if (proto_schedule_parse(text, &s, &err) != 0)
		fail_msg("proto_schedule_parse(\"%s\") failed: %s", text, err.msg);
	return s;
}

/* ---- snapshots.schedule: parsing ---- */

struct parse_case {
	const char *text;
	int ret;
	const char *const *msg;
};

static const struct parse_case parse_cases[] = {
	{NULL, 0, NULL},
	{"", 0, NULL},
	{"   ", 0, NULL},
	{"* * * * *", 0, NULL},
	{"*/15 * * * *", 0, NULL},
	{"0 0 * * *", 0, NULL},
	{"0 9-17/2 * * MON-FRI", 0, NULL},
	{"0 0 1 jan,Jul *", 0, NULL},
	{"30 4 1,15 * 5", 0, NULL},
	{"0 0 * * 7", 0, NULL},
	{"0 0 * * sun", 0, NULL},
	{"5/15 * * * *", 0, NULL},
	{"0\t0 * *  *", 0, NULL},
	{"  0 0 * * *  ", 0, NULL},
	{"59 23 31 12 6", 0, NULL},
	{"0-59 0-23 1-31 1-12 0-7", 0, NULL},
	{"0 0 30 2 *", 0, NULL},
	{"*/60 */24 */31 */12 */7", 0, NULL},
	{"@hourly", 0, NULL},
	{"@DAILY", 0, NULL},
	{"@midnight", 0, NULL},
	{"@weekly", 0, NULL},
	{"@monthly", 0, NULL},
	{"@yearly", 0, NULL},
	{"@annually", 0, NULL},
	{"@hourly, @daily", 0, NULL},
	{"@daily,@weekly,@daily", 0, NULL},
	{" @weekly ", 0, NULL},
	/* out of range */
	{"61 * * * *", -EINVAL,
	 MSG("Invalid snapshots.schedule '61 * * * *': minute 61 is out of range 0-59")},
	{"60 * * * *", -EINVAL, MSG("minute 60 is out of range 0-59")},
	{"* 24 * * *", -EINVAL, MSG("hour 24 is out of range 0-23")},
	{"* * 0 * *", -EINVAL, MSG("day-of-month 0 is out of range 1-31")},
	{"* * 32 * *", -EINVAL, MSG("day-of-month 32 is out of range 1-31")},
	{"* * * 0 *", -EINVAL, MSG("month 0 is out of range 1-12")},
	{"* * * 13 *", -EINVAL, MSG("month 13 is out of range 1-12")},
	{"* * * * 8", -EINVAL, MSG("day-of-week 8 is out of range 0-7")},
	{"1-99999999999 * * * *", -EINVAL, MSG("minute 99999999999 is out of range 0-59")},
	{"0,5,70 * * * *", -EINVAL, MSG("minute 70 is out of range")},
	/* not numbers or names */
	{"x * * * *", -EINVAL, MSG("'x * * * *'", "minute 'x' is not a number")},
	{"-1 * * * *", -EINVAL, MSG("minute '-1' is not a number")},
	{"* * * FOO *", -EINVAL, MSG("month 'FOO' is not a number or a month name (JAN-DEC)")},
	{"* * * January *", -EINVAL, MSG("month 'January' is not a number or a month name")},
	{"* * * * MONDAY", -EINVAL,
	 MSG("day-of-week 'MONDAY' is not a number or a weekday name (SUN-SAT)")},
	{"* * * MON *", -EINVAL, MSG("month 'MON' is not a number or a month name")},
	{"* * * * JAN", -EINVAL, MSG("day-of-week 'JAN' is not a number or a weekday name")},
	{"* * MON * *", -EINVAL, MSG("day-of-month 'MON' is not a number")},
	{"0 0 ? * *", -EINVAL, MSG("day-of-month '?' is not a number")},
	{"*-5 * * * *", -EINVAL, MSG("minute '*' is not a number")},
	{"1.5 * * * *", -EINVAL, MSG("minute '1.5' is not a number")},
	/* ranges and steps */
	{"5-2 * * * *", -EINVAL, MSG("minute range '5-2' ends before it starts")},
	{"* * * * SAT-SUN", -EINVAL, MSG("day-of-week range 'SAT-SUN' ends before it starts")},
	{"5- * * * *", -EINVAL, MSG("minute '5-' is missing a value")},
	{"1-2-3 * * * *", -EINVAL, MSG("minute '2-3' is not a number")},
	{"*/0 * * * *", -EINVAL, MSG("minute step 0 is out of range 1-60")},
	{"*/61 * * * *", -EINVAL, MSG("minute step 61 is out of range 1-60")},
	{"* */25 * * *", -EINVAL, MSG("hour step 25 is out of range 1-24")},
	{"* * * * */8", -EINVAL, MSG("day-of-week step 8 is out of range 1-7")},
	{"*/x * * * *", -EINVAL, MSG("minute step 'x' is not a number")},
	{"*/ * * * *", -EINVAL, MSG("minute step '' is not a number")},
	{"*/2/3 * * * *", -EINVAL, MSG("minute step '2/3' is not a number")},
	{"/5 * * * *", -EINVAL, MSG("minute '/5' is missing a value")},
	/* lists */
	{"1,,2 * * * *", -EINVAL, MSG("minute '1,,2' has an empty list item")},
	{"1, * * * *", -EINVAL, MSG("minute '1,' has an empty list item")},
	{",1 * * * *", -EINVAL, MSG("has an empty list item")},
	/* field count */
	{"* * * *", -EINVAL,
	 MSG("got 4 fields", "<minute> <hour> <day-of-month> <month> <day-of-week>", "@hourly")},
	{"*", -EINVAL, MSG("got 1 field,")},
	{"* * * * * *", -EINVAL, MSG("got more than 5 fields")},
	{"daily", -EINVAL, MSG("got 1 field")},
	/* aliases */
	{"@every 1h", -EINVAL, MSG("unknown alias '@every 1h'", "@annually")},
	{"@", -EINVAL, MSG("unknown alias '@'")},
	{"@reboot", -EINVAL, MSG("unknown alias '@reboot'")},
	{"@daily, 0 * * * *", -EINVAL, MSG("'0 * * * *' is not an alias", "cannot be combined")},
	{"0 * * * *, @daily", -EINVAL, MSG("cannot be combined with aliases")},
	{"@daily,,@hourly", -EINVAL, MSG("the alias list has an empty item")},
	{"@daily,", -EINVAL, MSG("the alias list has an empty item")},
	{"@daily @hourly", -EINVAL, MSG("unknown alias '@daily @hourly'")},
};

static void test_schedule_parse(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct proto_schedule s;
		struct kiva_error err = {0};
		int r;

		memset(&s, 0xa5, sizeof(s));
		r = proto_schedule_parse(c->text, &s, &err);
		if (r != c->ret)
			fail_msg("proto_schedule_parse(\"%s\") returned %d, want %d (%s)",
				 c->text ? c->text : "(null)", r, c->ret, err.msg);
		if (r == 0) {
			assert_int_equal(err.code, 0);
			assert_true(s.n <= PROTO_SCHEDULE_MAX);
		} else {
			struct proto_schedule untouched;

			assert_int_equal(err.code, r);
			assert_msg_has(c->text, err.msg, c->msg);
			/* the message quotes the value */
			assert_msg_has(c->text, err.msg, MSG("Invalid snapshots.schedule '"));
			/* ret is written only on success */
			memset(&untouched, 0xa5, sizeof(untouched));
			assert_memory_equal(&s, &untouched, sizeof(s));
		}
		/* the validator agrees, and a NULL reterr is allowed */
		assert_int_equal(proto_schedule_validate(c->text, NULL), c->ret);
		assert_int_equal(proto_schedule_parse(c->text, &s, NULL), c->ret);
	}
}

static void test_schedule_parse_message_exact(void **state)
{
	struct proto_schedule s;
	struct kiva_error err = {0};

	assert_int_equal(proto_schedule_parse("61 * * * *", &s, &err), -EINVAL);
	assert_string_equal(
		err.msg, "Invalid snapshots.schedule '61 * * * *': minute 61 is out of range 0-59");
	assert_int_equal(proto_schedule_validate("* * * JUNE *", &err), -EINVAL);
	assert_string_equal(err.msg, "Invalid snapshots.schedule '* * * JUNE *': month 'JUNE' is "
				     "not a number or a month name (JAN-DEC)");
}

#define ALL_MIN ((1ULL << 60) - 1)
#define ALL_HOUR ((1U << 24) - 1)
#define ALL_DOM 0xfffffffeU
#define ALL_MON 0x1ffe
#define ALL_DOW 0x7f

struct mask_case {
	const char *text;
	struct proto_cron want;
};

static const struct mask_case mask_cases[] = {
	{"* * * * *", {ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true}},
	{"*/15 * * * *",
	 {1ULL | 1ULL << 15 | 1ULL << 30 | 1ULL << 45, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true,
	  true}},
	{"5/20 0 1 1 0", {1ULL << 5 | 1ULL << 25 | 1ULL << 45, 1, 2, 2, 1, false, false}},
	{"0 9-17/2 * * MON-FRI",
	 {1, 1U << 9 | 1U << 11 | 1U << 13 | 1U << 15 | 1U << 17, ALL_DOM, ALL_MON, 0x3e, true,
	  false}},
	{"0 0 1 jan,Jul,DEC *", {1, 1, 2, 1U << 1 | 1U << 7 | 1U << 12, ALL_DOW, false, true}},
	{"0 0 * * 7", {1, 1, ALL_DOM, ALL_MON, 1, true, false}},
	{"0 0 * * 5-7", {1, 1, ALL_DOM, ALL_MON, 1U << 5 | 1U << 6 | 1, true, false}},
	{"0 0 * * */2", {1, 1, ALL_DOM, ALL_MON, 1 | 1U << 2 | 1U << 4 | 1U << 6, true, false}},
	/* "*" with step 1 is still "*"; a list holding "*" too */
	{"0 0 */1 * 1", {1, 1, ALL_DOM, ALL_MON, 2, true, false}},
	{"0 0 *,5 * 1", {1, 1, ALL_DOM, ALL_MON, 2, true, false}},
	/* "*" with a step > 1 is restricted (robfig/cron) */
	{"0 0 */10 * 1",
	 {1, 1, 1U << 1 | 1U << 11 | 1U << 21 | 1U << 31, ALL_MON, 2, false, false}},
	{"0-59 0-23 1-31 1-12 0-6", {ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false}},
	{"@hourly", {1, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true}},
	{"@daily", {1, 1, ALL_DOM, ALL_MON, ALL_DOW, true, true}},
	{"@Midnight", {1, 1, ALL_DOM, ALL_MON, ALL_DOW, true, true}},
	{"@weekly", {1, 1, ALL_DOM, ALL_MON, 1, true, false}},
	{"@monthly", {1, 1, 2, ALL_MON, ALL_DOW, false, true}},
	{"@yearly", {1, 1, 2, 2, ALL_DOW, false, true}},
	{"@ANNUALLY", {1, 1, 2, 2, ALL_DOW, false, true}},
};

static void assert_cron_equal(const char *text, const struct proto_cron *got,
			      const struct proto_cron *want)
{
	if (got->minutes != want->minutes || got->hours != want->hours || got->days != want->days ||
	    got->months != want->months || got->weekdays != want->weekdays ||
	    got->days_star != want->days_star || got->weekdays_star != want->weekdays_star)
		fail_msg("\"%s\": got min %#" PRIx64
			 " hour %#x dom %#x mon %#x dow %#x stars %d %d, "
			 "want min %#" PRIx64 " hour %#x dom %#x mon %#x dow %#x stars %d %d",
			 text, got->minutes, got->hours, got->days, got->months, got->weekdays,
			 got->days_star, got->weekdays_star, want->minutes, want->hours, want->days,
			 want->months, want->weekdays, want->days_star, want->weekdays_star);
}

static void test_schedule_masks(void **state)
{
	struct proto_schedule s;

	for (size_t i = 0; i < ARRAY_SIZE(mask_cases); i++) {
		s = parse_ok(mask_cases[i].text);
		assert_int_equal(s.n, 1);
		assert_cron_equal(mask_cases[i].text, &s.crons[0], &mask_cases[i].want);
	}
	/* empty disables */
	s = parse_ok("");
	assert_int_equal(s.n, 0);
	/* alias lists are a union without duplicates */
	s = parse_ok("@daily, @HOURLY,@midnight , @weekly");
	assert_int_equal(s.n, 3);
	assert_cron_equal("hourly", &s.crons[0], &mask_cases[12].want);
	assert_cron_equal("daily", &s.crons[1], &mask_cases[13].want);
	assert_cron_equal("weekly", &s.crons[2], &mask_cases[15].want);
	s = parse_ok("@yearly,@monthly,@weekly,@daily,@hourly,@annually,@midnight");
	assert_int_equal(s.n, 5);
}

/* ---- snapshots.schedule: fire times ---- */

struct time_case {
	const char *text, *at, *want; /* want NULL: -1 */
};

static const struct time_case next_cases[] = {
	/* every minute, strictly after */
	{"* * * * *", "2024-01-01 00:00:00", "2024-01-01 00:01:00"},
	{"* * * * *", "2024-01-01 00:00:30", "2024-01-01 00:01:00"},
	{"* * * * *", "2023-12-31 23:59:59", "2024-01-01 00:00:00"},
	{"* * * * *", "2024-02-28 23:59:00", "2024-02-29 00:00:00"},
	/* steps */
	{"*/15 * * * *", "2024-03-10 10:07:00", "2024-03-10 10:15:00"},
	{"*/15 * * * *", "2024-03-10 10:15:00", "2024-03-10 10:30:00"},
	{"*/15 * * * *", "2024-03-31 23:45:00", "2024-04-01 00:00:00"},
	{"0 9-17/2 * * MON-FRI", "2024-05-17 17:00:00", "2024-05-20 09:00:00"},
	/* month and year ends */
	{"0 0 1 * *", "2024-12-15 00:00:00", "2025-01-01 00:00:00"},
	{"0 0 31 * *", "2024-04-01 00:00:00", "2024-05-31 00:00:00"},
	{"0 0 31 * *", "2024-05-31 00:00:00", "2024-07-31 00:00:00"},
	{"59 23 31 12 *", "2024-12-31 23:59:00", "2025-12-31 23:59:00"},
	{"59 23 31 12 *", "2024-12-31 23:58:59", "2024-12-31 23:59:00"},
	{"30 2 * 2 *", "2023-02-28 02:30:00", "2024-02-01 02:30:00"},
	{"0 0 1 3 *", "2100-02-28 00:00:00", "2100-03-01 00:00:00"},
	/* leap years */
	{"0 0 29 2 *", "2023-03-01 00:00:00", "2024-02-29 00:00:00"},
	{"0 0 29 2 *", "2024-02-29 00:00:00", "2028-02-29 00:00:00"},
	{"0 0 29 2 *", "1999-03-01 00:00:00", "2000-02-29 00:00:00"},
	{"0 0 29 2 *", "2097-01-01 00:00:00", NULL}, /* 2100 is not leap, 2104 is > 5 years */
	{"0 0 30 2 *", "2024-01-01 00:00:00", NULL},
	{"0 0 31 4,6,9,11 *", "2024-01-01 00:00:00", NULL},
	/* aliases */
	{"@hourly", "2024-01-01 10:00:00", "2024-01-01 11:00:00"},
	{"@daily", "2024-12-31 00:00:00", "2025-01-01 00:00:00"},
	{"@weekly", "2024-05-15 12:00:00", "2024-05-19 00:00:00"}, /* Wed → Sun */
	{"@weekly", "2024-05-19 00:00:00", "2024-05-26 00:00:00"},
	{"@monthly", "2024-01-31 12:00:00", "2024-02-01 00:00:00"},
	{"@yearly", "2024-06-01 00:00:00", "2025-01-01 00:00:00"},
	{"@annually", "2024-12-31 23:59:59", "2025-01-01 00:00:00"},
	{"@monthly, @hourly", "2024-01-31 23:30:00", "2024-02-01 00:00:00"},
	{"@yearly, @weekly", "2024-12-30 00:00:00", "2025-01-01 00:00:00"},
	/* day-of-month OR day-of-week when both are restricted */
	{"0 0 13 * 5", "2024-05-11 00:00:00", "2024-05-13 00:00:00"}, /* Mon 13th */
	{"0 0 13 * 5", "2024-05-13 00:00:00", "2024-05-17 00:00:00"}, /* Fri */
	/* a stepped "*" restricts: days 1, 11, 21, 31 or Mondays */
	{"0 0 */10 * 1", "2024-05-01 00:00:00", "2024-05-06 00:00:00"},
	/* AND when either is "*" */
	{"0 0 13 * *", "2024-05-13 00:00:00", "2024-06-13 00:00:00"},
	{"0 0 * * 1", "2024-05-13 00:00:00", "2024-05-20 00:00:00"},
	{"0 0 */1 * 1", "2024-05-13 00:00:00", "2024-05-20 00:00:00"},
	{"0 12 * * 7", "2024-05-15 00:00:00", "2024-05-19 12:00:00"},
	{"0 0 13 * 5", "2024-09-01 00:00:00", "2024-09-06 00:00:00"},
	/* Friday the 13th needs both: not expressible in cron; "13 * 5" is OR */
	{"0 0 1-7 * *", "2024-05-07 00:00:00", "2024-06-01 00:00:00"},
	/* around the epoch and before it */
	{"0 0 1 1 *", "1969-06-01 00:00:00", "1970-01-01 00:00:00"},
	{"0 0 * * *", "1969-12-31 12:00:00", "1970-01-01 00:00:00"},
	{"0 0 29 2 *", "1900-01-01 00:00:00", "1904-02-29 00:00:00"},
	{"30 * * * *", "1969-12-31 23:30:00", "1970-01-01 00:30:00"},
};

static const struct time_case prev_cases[] = {
	{"* * * * *", "2024-01-01 00:00:30", "2024-01-01 00:00:00"},
	{"* * * * *", "2024-01-01 00:00:00", "2024-01-01 00:00:00"},
	{"0 0 1 * *", "2024-03-15 00:00:00", "2024-03-01 00:00:00"},
	{"0 0 1 * *", "2024-03-01 00:00:00", "2024-03-01 00:00:00"},
	{"0 0 1 * *", "2024-02-29 23:59:59", "2024-02-01 00:00:00"},
	{"0 0 1 * *", "2025-01-01 00:00:00", "2025-01-01 00:00:00"},
	{"0 0 1 * *", "2024-12-31 23:59:59", "2024-12-01 00:00:00"},
	{"0 0 31 * *", "2024-05-30 00:00:00", "2024-03-31 00:00:00"},
	{"0 0 29 2 *", "2024-02-28 23:59:00", "2020-02-29 00:00:00"},
	{"0 0 29 2 *", "2104-02-28 00:00:00", NULL}, /* 2096-02-29 is 8 years back */
	{"0 0 30 2 *", "2024-06-01 00:00:00", NULL},
	{"@weekly", "2024-05-18 23:59:00", "2024-05-12 00:00:00"},
	{"@yearly", "2024-01-01 00:00:59", "2024-01-01 00:00:00"},
	{"@yearly", "2023-12-31 23:59:59", "2023-01-01 00:00:00"},
	{"@hourly, @monthly", "2024-03-01 00:30:00", "2024-03-01 00:00:00"},
	{"*/15 * * * *", "2024-01-01 00:14:59", "2024-01-01 00:00:00"},
	{"*/15 * * * *", "2024-01-01 00:00:00", "2024-01-01 00:00:00"},
	{"*/15 * * * *", "2023-12-31 23:59:59", "2023-12-31 23:45:00"},
	{"0 0 13 * 5", "2024-05-16 00:00:00", "2024-05-13 00:00:00"},
	{"0 0 13 * 5", "2024-05-12 00:00:00", "2024-05-10 00:00:00"},
	{"59 23 31 12 *", "2025-06-01 00:00:00", "2024-12-31 23:59:00"},
	{"0 0 * * *", "1970-01-01 00:00:00", "1970-01-01 00:00:00"},
	{"0 0 * * *", "1970-01-01 00:00:00", "1970-01-01 00:00:00"},
	{"0 0 * * *", "1969-12-31 23:59:59", "1969-12-31 00:00:00"},
	{"0 0 29 2 *", "2001-01-01 00:00:00", "2000-02-29 00:00:00"},
	{"30 2 * 2 *", "2024-01-31 23:59:59", "2023-02-28 02:30:00"},
	{"", "2024-01-01 00:00:00", NULL},
};

static void run_time_cases(const char *what, int64_t (*fn)(const struct proto_schedule *, int64_t),
			   const struct time_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct proto_schedule s = parse_ok(cases[i].text);
		int64_t at = ts(cases[i].at), want = cases[i].want ? ts(cases[i].want) : -1;
		int64_t got = fn(&s, at);
		char b1[64], b2[64];

		if (got != want)
			fail_msg("%s(\"%s\", %s) = %s, want %s", what, cases[i].text, cases[i].at,
				 fmt_time(got, b1, sizeof(b1)), fmt_time(want, b2, sizeof(b2)));
	}
}

static void test_schedule_next(void **state)
{
	struct proto_schedule s = parse_ok("");

	run_time_cases("proto_schedule_next", proto_schedule_next, next_cases,
		       ARRAY_SIZE(next_cases));
	/* disabled, NULL and absurd times */
	assert_int_equal(proto_schedule_next(&s, 0), -1);
	assert_int_equal(proto_schedule_next(NULL, 0), -1);
	s = parse_ok("* * * * *");
	assert_int_equal(proto_schedule_next(&s, INT64_MAX), -1);
	assert_int_equal(proto_schedule_next(&s, INT64_MIN), -1);
	assert_int_equal(proto_schedule_prev(&s, INT64_MAX), -1);
	assert_int_equal(proto_schedule_prev(&s, INT64_MIN), -1);
	/* the far future stays exact: year 9999 */
	assert_int_equal(proto_schedule_next(&s, ts("9999-12-31 23:59:00")),
			 ts("9999-12-31 23:59:00") + 60);
}

static void test_schedule_prev(void **state)
{
	run_time_cases("proto_schedule_prev", proto_schedule_prev, prev_cases,
		       ARRAY_SIZE(prev_cases));
}

/* The horizon: 5 years to the second, in both directions. 2100 is not a leap year, so Feb 29
 * comes 8 years apart around it. */
static void test_schedule_horizon(void **state)
{
	struct proto_schedule s = parse_ok("0 0 29 2 *");
	int64_t before = ts("2096-02-29 00:00:00"), after = ts("2104-02-29 00:00:00");

	assert_int_equal(proto_schedule_next(&s, after - PROTO_SCHEDULE_HORIZON_SEC), after);
	assert_int_equal(proto_schedule_next(&s, after - PROTO_SCHEDULE_HORIZON_SEC - 1), -1);
	assert_int_equal(proto_schedule_next(&s, before), -1);
	assert_int_equal(proto_schedule_prev(&s, before + PROTO_SCHEDULE_HORIZON_SEC), before);
	assert_int_equal(proto_schedule_prev(&s, before + PROTO_SCHEDULE_HORIZON_SEC + 1), -1);
	assert_int_equal(proto_schedule_prev(&s, after - 1), -1);
}

/* ---- property test against a slow reference ---- */

/* A random cron expression, its text and the sets it stands for, built independently of the
 * parser. */
struct ref_cron {
	char text[160];
	bool minute[60], hour[24], dom[32], month[13], dow[7];
	bool dom_star, dow_star;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static unsigned rnd(unsigned n)
{
	return (unsigned)(rng() % n);
}

static const char *const mon_names[] = {NULL,  "JAN", "feb", "Mar", "APR", "may", "Jun",
					"JUL", "aug", "Sep", "OCT", "nov", "Dec"};
static const char *const dow_names[] = {"SUN", "mon", "Tue", "WED", "thu", "Fri", "sat"};

static int put_value(char *buf, size_t len, unsigned field, unsigned v)
{
	if (field == 3 && rnd(3) == 0)
		return snprintf(buf, len, "%s", mon_names[v]);
	if (field == 4 && v < 7 && rnd(3) == 0)
		return snprintf(buf, len, "%s", dow_names[v]);
	return snprintf(buf, len, "%u", v);
}

/* Appends one field to r->text and fills set[] (indexed by value; day-of-week 7 → 0). */
static void gen_field(struct ref_cron *r, unsigned field, bool *set, bool *star, unsigned sparse)
{
	static const unsigned mins[] = {0, 0, 1, 1, 0}, maxs[] = {59, 23, 31, 12, 7};
	unsigned lo_f = mins[field], hi_f = maxs[field], star_hi = field == 4 ? 6 : hi_f;
	unsigned items = 1 + (rnd(4) == 0 ? rnd(3) : 0);
	size_t off = strlen(r->text);

	*star = false;
	for (unsigned it = 0; it < items; it++) {
		char *p = r->text + off;
		size_t left = sizeof(r->text) - off;
		unsigned kind = rnd(sparse ? 4 : 6), lo, hi, step = 1;
		int n = 0;

		if (it)
			*p++ = ',', left--, off++;
		if (kind >= 4) {
			/* "*" or "*" with a step */
			lo = lo_f;
			hi = star_hi;
			if (rnd(2)) {
				step = 1 + rnd(star_hi - lo_f + 1);
				n = snprintf(p, left, "*/%u", step);
			} else {
				n = snprintf(p, left, "*");
			}
			if (step == 1)
				*star = true;
		} else if (kind <= 1) {
			lo = hi = lo_f + rnd(hi_f - lo_f + 1);
			n = put_value(p, left, field, lo);
		} else {
			lo = lo_f + rnd(hi_f - lo_f + 1);
			hi = lo + rnd(hi_f - lo + 1);
			n = put_value(p, left, field, lo);
			n += snprintf(p + n, left - (size_t)n, "-");
			n += put_value(p + n, left - (size_t)n, field, hi);
			if (kind == 3) {
				step = 1 + rnd(star_hi - lo_f + 1);
				n += snprintf(p + n, left - (size_t)n, "/%u", step);
			}
		}
		off += (size_t)n;
		for (unsigned v = lo; v <= hi; v += step)
			set[field == 4 ? v % 7 : v] = true;
	}
	r->text[off++] = ' ';
	r->text[off] = 0;
}

static void gen_cron(struct ref_cron *r)
{
	bool unused;

	memset(r, 0, sizeof(*r));
	/* minutes and hours dense or sparse at random; month and day restricted less often so
	 * most expressions fire within weeks, some within years */
	gen_field(r, 0, r->minute, &unused, 0);
	gen_field(r, 1, r->hour, &unused, 0);
	if (rnd(2))
		strcat(r->text, "* "), memset(r->dom, 1, sizeof(r->dom)), r->dom_star = true;
	else
		gen_field(r, 2, r->dom, &r->dom_star, 1);
	if (rnd(4))
		strcat(r->text, "* "), memset(r->month, 1, sizeof(r->month));
	else
		gen_field(r, 3, r->month, &unused, 1);
	if (rnd(2))
		strcat(r->text, "* "), memset(r->dow, 1, sizeof(r->dow)), r->dow_star = true;
	else
		gen_field(r, 4, r->dow, &r->dow_star, 0);
	r->text[strlen(r->text) - 1] = 0;
}

static bool ref_day_matches(const struct ref_cron *r, const struct tm *tm)
{
	bool dom = r->dom[tm->tm_mday], dow = r->dow[tm->tm_wday];

	if (!r->month[tm->tm_mon + 1])
		return false;
	return r->dom_star || r->dow_star ? dom && dow : dom || dow;
}

/* The whole minute at or before t (C division truncates towards zero). */
static int64_t floor_minute(int64_t t)
{
	return (t >= 0 ? t / 60 : (t - 59) / 60) * 60;
}

/* Steps minute by minute with gmtime_r, skipping the rest of a day or hour that cannot match. */
static int64_t ref_next(const struct ref_cron *r, int64_t after)
{
	int64_t t = floor_minute(after) + 60;

	while (t - after <= PROTO_SCHEDULE_HORIZON_SEC) {
		time_t tt = (time_t)t;
		struct tm tm;

		assert_non_null(gmtime_r(&tt, &tm));
		if (!ref_day_matches(r, &tm))
			t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60);
		else if (!r->hour[tm.tm_hour])
			t += 3600 - tm.tm_min * 60;
		else if (!r->minute[tm.tm_min])
			t += 60;
		else
			return t;
	}
	return -1;
}

static int64_t ref_prev(const struct ref_cron *r, int64_t at)
{
	int64_t t = floor_minute(at);

	while (at - t <= PROTO_SCHEDULE_HORIZON_SEC) {
		time_t tt = (time_t)t;
		struct tm tm;

		assert_non_null(gmtime_r(&tt, &tm));
		if (!ref_day_matches(r, &tm))
			t -= (tm.tm_hour * 3600 + tm.tm_min * 60) + 60;
		else if (!r->hour[tm.tm_hour])
			t -= tm.tm_min * 60 + 60;
		else if (!r->minute[tm.tm_min])
			t -= 60;
		else
			return t;
	}
	return -1;
}

static bool ref_fires(const struct ref_cron *r, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	assert_non_null(gmtime_r(&tt, &tm));
	return t % 60 == 0 && ref_day_matches(r, &tm) && r->hour[tm.tm_hour] &&
	       r->minute[tm.tm_min];
}

/* A time between 1900 and 2200, sometimes just before a month or year end. */
static int64_t gen_time(void)
{
	int64_t t = ts("1900-01-01 00:00:00") + (int64_t)(rng() % (300ULL * 366 * 86400));

	if (rnd(4) == 0) {
		time_t tt = (time_t)t;
		struct tm tm;

		gmtime_r(&tt, &tm);
		tm.tm_mon += 1;
		tm.tm_mday = 1;
		tm.tm_hour = 0;
		tm.tm_min = 0;
		tm.tm_sec = 0;
		t = (int64_t)timegm(&tm) - 1 - rnd(180);
	}
	return t;
}

#define N_PROPERTY 2000

static void test_schedule_property(void **state)
{
	unsigned fired = 0;

	for (unsigned i = 0; i < N_PROPERTY; i++) {
		struct ref_cron r;
		struct proto_schedule s;
		struct kiva_error err = {0};
		int64_t t, next, prev, want;
		char b1[64], b2[64], b3[64];

		gen_cron(&r);
		if (proto_schedule_parse(r.text, &s, &err) != 0)
			fail_msg("case %u: \"%s\" does not parse: %s", i, r.text, err.msg);
		t = gen_time();

		next = proto_schedule_next(&s, t);
		want = ref_next(&r, t);
		if (next != want)
			fail_msg("case %u: next(\"%s\", %s) = %s, reference %s", i, r.text,
				 fmt_time(t, b1, sizeof(b1)), fmt_time(next, b2, sizeof(b2)),
				 fmt_time(want, b3, sizeof(b3)));
		if (next != -1) {
			fired++;
			assert_true(next > t);
			assert_int_equal(next % 60, 0);
			assert_true(ref_fires(&r, next));
			/* next is a fire time, and none lies strictly between t and next */
			assert_int_equal(proto_schedule_prev(&s, next), next);
			want = proto_schedule_prev(&s, next - 1);
			if (want != -1 && want > t)
				fail_msg("case %u: \"%s\" fires at %s, between %s and next %s", i,
					 r.text, fmt_time(want, b1, sizeof(b1)),
					 fmt_time(t, b2, sizeof(b2)),
					 fmt_time(next, b3, sizeof(b3)));
		}
		/* plain minute stepping over the next two hours agrees */
		for (int64_t m = floor_minute(t) + 60; m <= t + 7200; m += 60)
			if (ref_fires(&r, m)) {
				assert_int_equal(next, m);
				break;
			}

		prev = proto_schedule_prev(&s, t);
		want = ref_prev(&r, t);
		if (prev != want)
			fail_msg("case %u: prev(\"%s\", %s) = %s, reference %s", i, r.text,
				 fmt_time(t, b1, sizeof(b1)), fmt_time(prev, b2, sizeof(b2)),
				 fmt_time(want, b3, sizeof(b3)));
		if (prev != -1) {
			assert_true(prev <= t);
			assert_int_equal(prev % 60, 0);
			assert_int_equal(proto_schedule_next(&s, prev - 1), prev);
			if (next != -1 && next - prev <= PROTO_SCHEDULE_HORIZON_SEC)
				assert_int_equal(proto_schedule_next(&s, prev), next);
		}
	}
	/* most random expressions fire within 5 years; the test is not vacuous */
	assert_true(fired > N_PROPERTY * 3 / 4);
}

/* Alias lists are the union of their aliases. */
static void test_schedule_alias_union(void **state)
{
	static const char *const singles[] = {"@hourly", "@daily", "@weekly", "@monthly",
					      "@yearly"};

	for (unsigned i = 0; i < 500; i++) {
		char text[128] = "";
		struct proto_schedule parts[5], all;
		unsigned picked = 0;
		int64_t t = gen_time(), want_next = -1, want_prev = -1;

		for (unsigned k = 0; k < 5; k++) {
			/* a random non-empty subset */
			if (rnd(2) && !(k == 4 && picked == 0))
				continue;
			if (text[0])
				strcat(text, rnd(2) ? ", " : ",");
			strcat(text, singles[k]);
			parts[picked++] = parse_ok(singles[k]);
		}
		all = parse_ok(text);
		assert_int_equal(all.n, picked);
		for (unsigned k = 0; k < picked; k++) {
			int64_t n = proto_schedule_next(&parts[k], t),
				p = proto_schedule_prev(&parts[k], t);

			if (n != -1 && (want_next == -1 || n < want_next))
				want_next = n;
			if (p != -1 && (want_prev == -1 || p > want_prev))
				want_prev = p;
		}
		assert_int_equal(proto_schedule_next(&all, t), want_next);
		assert_int_equal(proto_schedule_prev(&all, t), want_prev);
	}
}

/* Every fire time of @weekly is a Sunday midnight, for 10 years. */
static void test_schedule_weekly_sunday(void **state)
{
	struct proto_schedule s = parse_ok("@weekly");
	int64_t t = ts("2020-01-01 00:00:00");

	for (unsigned i = 0; i < 520; i++) {
		time_t tt;
		struct tm tm;
		int64_t n = proto_schedule_next(&s, t);

		assert_int_equal(n - t <= 7 * 86400, true);
		tt = (time_t)n;
		gmtime_r(&tt, &tm);
		assert_int_equal(tm.tm_wday, 0);
		assert_int_equal(tm.tm_hour, 0);
		assert_int_equal(tm.tm_min, 0);
		t = n;
	}
}

/* ---- snapshots.expiry ---- */

struct expiry_parse_case {
	const char *text;
	int ret;
	const char *const *msg;
	struct proto_expiry want;
};

static const struct expiry_parse_case expiry_parse_cases[] = {
	{NULL, 0, NULL, {0}},
	{"", 0, NULL, {0}},
	{"  ", 0, NULL, {0}},
	{"2d", 0, NULL, {.set = true, .days = 2}},
	{"1w 3d", 0, NULL, {.set = true, .weeks = 1, .days = 3}},
	{"1M", 0, NULL, {.set = true, .minutes = 1}},
	{"1H 30M", 0, NULL, {.set = true, .hours = 1, .minutes = 30}},
	{" 1y  2m 3w 4d 5H 6M ",
	 0,
	 NULL,
	 {.set = true, .years = 1, .months = 2, .weeks = 3, .days = 4, .hours = 5, .minutes = 6}},
	{"0d", 0, NULL, {.set = true}},
	{"1000000M", 0, NULL, {.set = true, .minutes = 1000000}},
	{"2", -EINVAL,
	 MSG("Invalid snapshots.expiry '2': '2' is not <number><unit>", "M (minutes)",
	     "y (years)")},
	{"d", -EINVAL, MSG("'d' is not <number><unit>")},
	{"2x", -EINVAL, MSG("'2x' is not <number><unit>")},
	{"2D", -EINVAL, MSG("'2D' is not <number><unit>")},
	{"1dd", -EINVAL, MSG("'1dd' is not <number><unit>")},
	{"-1d", -EINVAL, MSG("'-1d' is not <number><unit>")},
	{"1.5d", -EINVAL, MSG("'1.5d' is not <number><unit>")},
	{"2d,", -EINVAL, MSG("'2d,' is not <number><unit>")},
	{"2 d", -EINVAL, MSG("'2' is not <number><unit>")},
	{"1d 2d", -EINVAL,
	 MSG("Invalid snapshots.expiry '1d 2d': unit 'd' is given more than once")},
	{"1M 1m 1M", -EINVAL, MSG("unit 'M' is given more than once")},
	{"1000001d", -EINVAL, MSG("'1000001d' is too large (at most 1000000d)")},
	{"99999999999999999999y", -EINVAL, MSG("is too large")},
};

static void test_expiry_parse(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(expiry_parse_cases); i++) {
		const struct expiry_parse_case *c = &expiry_parse_cases[i];
		struct proto_expiry e, untouched;
		struct kiva_error err = {0};
		int r;

		memset(&e, 0x5a, sizeof(e));
		memset(&untouched, 0x5a, sizeof(untouched));
		r = proto_expiry_parse(c->text, &e, &err);
		if (r != c->ret)
			fail_msg("proto_expiry_parse(\"%s\") returned %d, want %d (%s)",
				 c->text ? c->text : "(null)", r, c->ret, err.msg);
		if (r == 0) {
			assert_int_equal(e.set, c->want.set);
			assert_int_equal(e.minutes, c->want.minutes);
			assert_int_equal(e.hours, c->want.hours);
			assert_int_equal(e.days, c->want.days);
			assert_int_equal(e.weeks, c->want.weeks);
			assert_int_equal(e.months, c->want.months);
			assert_int_equal(e.years, c->want.years);
		} else {
			assert_int_equal(err.code, r);
			assert_msg_has(c->text, err.msg, c->msg);
			assert_memory_equal(&e, &untouched, sizeof(e));
		}
		assert_int_equal(proto_expiry_validate(c->text, NULL), c->ret);
	}
}

struct expiry_apply_case {
	const char *text, *from, *want; /* want NULL: 0 (never) */
};

static const struct expiry_apply_case expiry_apply_cases[] = {
	{"2d", "2024-01-01 10:00:00", "2024-01-03 10:00:00"},
	{"1w 3d", "2024-01-01 10:00:00", "2024-01-11 10:00:00"},
	{"1M", "2024-01-01 10:00:30", "2024-01-01 10:01:30"},
	{"1H", "2024-12-31 23:30:00", "2025-01-01 00:30:00"},
	{"1d 1H", "2024-12-31 23:30:00", "2025-01-02 00:30:00"},
	{"2d", "2024-02-28 12:00:00", "2024-03-01 12:00:00"},
	{"2d", "2023-02-28 12:00:00", "2023-03-02 12:00:00"},
	/* months and years on the calendar, overflowing days normalised forward */
	{"1m", "2023-01-31 12:00:00", "2023-03-03 12:00:00"},
	{"1m", "2024-01-31 12:00:00", "2024-03-02 12:00:00"},
	{"1m", "2024-01-15 12:00:00", "2024-02-15 12:00:00"},
	{"1m 1d", "2023-01-31 00:00:00", "2023-03-04 00:00:00"},
	{"12m", "2023-05-10 00:00:00", "2024-05-10 00:00:00"},
	{"13m", "2023-12-15 00:00:00", "2025-01-15 00:00:00"},
	{"1y", "2024-02-29 06:00:00", "2025-03-01 06:00:00"},
	{"4y", "2024-02-29 06:00:00", "2028-02-29 06:00:00"},
	{"100y", "2000-02-29 00:00:00", "2100-03-01 00:00:00"},
	{"1y 1m", "2024-12-31 00:00:00", "2026-01-31 00:00:00"},
	{"0d", "2024-01-01 00:00:00", "2024-01-01 00:00:00"},
	{"2H", "1969-12-31 23:00:00", "1970-01-01 01:00:00"},
	{"1m", "1969-12-31 00:00:00", "1970-01-31 00:00:00"},
	{"", "2024-01-01 00:00:00", NULL},
};

static void test_expiry_apply(void **state)
{
	struct proto_expiry e;

	for (size_t i = 0; i < ARRAY_SIZE(expiry_apply_cases); i++) {
		const struct expiry_apply_case *c = &expiry_apply_cases[i];
		int64_t got, want = c->want ? ts(c->want) : 0;
		char b1[64], b2[64];

		assert_int_equal(proto_expiry_parse(c->text, &e, NULL), 0);
		got = proto_expiry_apply(&e, ts(c->from));
		if (got != want)
			fail_msg("\"%s\" from %s = %s, want %s", c->text, c->from,
				 fmt_time(got, b1, sizeof(b1)), fmt_time(want, b2, sizeof(b2)));
	}
	assert_int_equal(proto_expiry_apply(NULL, 100), 0);
	/* the largest terms stay in range */
	assert_int_equal(proto_expiry_parse("1000000y 1000000m 1000000w 1000000d 1000000H 1000000M",
					    &e, NULL),
			 0);
	assert_true(proto_expiry_apply(&e, ts("2024-01-01 00:00:00")) >
		    ts("2024-01-01 00:00:00") + 1000000LL * 365 * 86400);
	assert_true(proto_expiry_apply(&e, INT64_MAX) > 0);
}

/* Against timegm, which normalises struct tm like Go's time.Date. */
static void test_expiry_property(void **state)
{
	static const char units[] = "MHdwmy";

	for (unsigned i = 0; i < 2000; i++) {
		unsigned v[6] = {0};
		char text[96] = "";
		struct proto_expiry e;
		int64_t from = gen_time(), got, want;
		time_t tt = (time_t)from;
		struct tm tm;
		char b1[64], b2[64], b3[64];

		for (unsigned k = 0; k < 6; k++) {
			size_t off = strlen(text);

			if (rnd(2))
				continue;
			v[k] = rnd(4) ? rnd(40) : rnd(1000);
			snprintf(text + off, sizeof(text) - off, "%s%u%c", off ? " " : "", v[k],
				 units[k]);
		}
		assert_int_equal(proto_expiry_parse(text, &e, NULL), 0);
		gmtime_r(&tt, &tm);
		tm.tm_year += (int)v[5];
		tm.tm_mon += (int)v[4];
		/* Go's AddDate normalises the month before the day: carry months into years */
		tm.tm_year += tm.tm_mon / 12;
		tm.tm_mon %= 12;
		tm.tm_mday += (int)(v[2] + 7 * v[3]);
		tm.tm_hour += (int)v[1];
		tm.tm_min += (int)v[0];
		want = text[0] ? (int64_t)timegm(&tm) : 0;
		got = proto_expiry_apply(&e, from);
		if (got != want)
			fail_msg("\"%s\" from %s = %s, want %s", text,
				 fmt_time(from, b1, sizeof(b1)), fmt_time(got, b2, sizeof(b2)),
				 fmt_time(want, b3, sizeof(b3)));
	}
}

/* ---- snapshot names ---- */

#define S63 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"
#define S64 S63 "d"

struct name_case {
	const char *name;
	int ret;
	const char *const *msg;
};

static const struct name_case snapshot_names[] = {
	{"snap0", 0, NULL},
	{"a", 0, NULL},
	{"my.snap_1-2", 0, NULL},
	{"a:b", 0, NULL},
	{"50%", 0, NULL},
	{"caf\xc3\xa9", 0, NULL},
	{"...", 0, NULL},
	{S63, 0, NULL},
	{"", -EINVAL, MSG("Snapshot name is required")},
	{NULL, -EINVAL, MSG("Snapshot name is required")},
	{".", -EINVAL, MSG("Invalid snapshot name '.': '.' and '..' are not allowed")},
	{"..", -EINVAL, MSG("Invalid snapshot name '..': '.' and '..' are not allowed")},
	{"a/b", -EINVAL, MSG("Invalid snapshot name 'a/b': '/' is not allowed")},
	{"/", -EINVAL, MSG("'/' is not allowed")},
	{"../x", -EINVAL, MSG("'/' is not allowed")},
	{"a b", -EINVAL, MSG("'a b'", "whitespace and control characters are not allowed")},
	{"a\tb", -EINVAL, MSG("whitespace and control characters")},
	{"a\nb", -EINVAL, MSG("whitespace and control characters")},
	{" a", -EINVAL, MSG("whitespace and control characters")},
	{"a\x7f", -EINVAL, MSG("whitespace and control characters")},
	{S64, -EINVAL, MSG("longer than 63 characters")},
};

static void test_snapshot_name(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(snapshot_names); i++) {
		const struct name_case *c = &snapshot_names[i];
		struct kiva_error err = {0};
		int r = proto_snapshot_name_validate(c->name, &err);

		if (r != c->ret)
			fail_msg("proto_snapshot_name_validate(\"%s\") returned %d, want %d (%s)",
				 c->name ? c->name : "(null)", r, c->ret, err.msg);
		if (r == 0) {
			assert_int_equal(err.code, 0);
			assert_string_equal(err.msg, "");
		} else {
			assert_int_equal(err.code, r);
			assert_msg_has(c->name ? c->name : "(null)", err.msg, c->msg);
		}
		assert_int_equal(proto_snapshot_name_validate(c->name, NULL), c->ret);
	}
}

/* ---- snapshots.pattern ---- */

#define P62 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijab"

static const struct name_case patterns[] = {
	{NULL, 0, NULL},
	{"", 0, NULL},
	{"snap%d", 0, NULL},
	{"%d", 0, NULL},
	{"backup-%d-daily", 0, NULL},
	{"nightly", 0, NULL},
	{"a%%b%d", 0, NULL},
	{"100%%", 0, NULL},
	{".%d", 0, NULL},
	{"%d.", 0, NULL},
	{S63, 0, NULL},
	{P62 "%d", 0, NULL},
	{P62 "%%", 0, NULL},
	{".", -EINVAL, MSG("Invalid snapshots.pattern '.'", "'.' and '..' are not allowed")},
	{"..", -EINVAL, MSG("snapshots.pattern", "'.' and '..'")},
	{"a/%d", -EINVAL,
	 MSG("Invalid snapshots.pattern 'a/%d': it makes snapshot names like 'a/0': '/' is not allowed")},
	{"daily %d", -EINVAL, MSG("snapshots.pattern 'daily %d'", "whitespace")},
	{"%d%d", -EINVAL, MSG("Invalid snapshots.pattern '%d%d': '%d' may appear only once")},
	{"a%d-%d", -EINVAL, MSG("'%d' may appear only once")},
	{"snap%s", -EINVAL,
	 MSG("Invalid snapshots.pattern 'snap%s': '%s' is not supported", "'%d' for the number",
	     "'%%' for '%'")},
	{"snap%", -EINVAL, MSG("'%' is not supported")},
	{"snap%%%", -EINVAL, MSG("'%' is not supported")},
	{"snap%D", -EINVAL, MSG("'%D' is not supported")},
	{"snap%i", -EINVAL, MSG("'%i' is not supported")},
	{S64, -EINVAL, MSG("snapshots.pattern", "longer than 63 characters")},
	{S63 "%d", -EINVAL, MSG("snapshots.pattern", "longer than 63 characters")},
	{P62 "%%%%", -EINVAL, MSG("snapshots.pattern", "longer than 63 characters")},
};

static void test_pattern_validate(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(patterns); i++) {
		const struct name_case *c = &patterns[i];
		struct kiva_error err = {0};
		int r = proto_snapshot_pattern_validate(c->name, &err);
		char buf[64];

		if (r != c->ret)
			fail_msg(
				"proto_snapshot_pattern_validate(\"%s\") returned %d, want %d (%s)",
				c->name ? c->name : "(null)", r, c->ret, err.msg);
		if (r < 0) {
			assert_int_equal(err.code, r);
			assert_msg_has(c->name, err.msg, c->msg);
		}
		/* naming refuses the same patterns, and names valid snapshots otherwise */
		memset(&err, 0, sizeof(err));
		r = proto_snapshot_pattern_name(c->name, NULL, 0, buf, sizeof(buf), &err);
		assert_int_equal(r, c->ret);
		if (r == 0)
			assert_int_equal(proto_snapshot_name_validate(buf, NULL), 0);
		else
			assert_msg_has(c->name, err.msg, c->msg);
	}
}

struct naming_case {
	const char *pattern;
	const char *const *taken; /* NULL-terminated */
	const char *want; /* or NULL: fails with ret and msg */
	int ret;
	const char *const *msg;
};

#define TAKEN(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static const struct naming_case naming_cases[] = {
	{"snap%d", NONE, "snap0", 0, NULL},
	{NULL, NONE, "snap0", 0, NULL},
	{"", TAKEN("snap0"), "snap1", 0, NULL},
	{"snap%d", TAKEN("snap0", "snap1"), "snap2", 0, NULL},
	{"snap%d", TAKEN("snap1", "snap0"), "snap2", 0, NULL},
	{"snap%d", TAKEN("snap0", "snap2", "snap3"), "snap1", 0, NULL},
	{"snap%d", TAKEN("snap1", "snap2"), "snap0", 0, NULL},
	{"snap%d", TAKEN("snap3"), "snap0", 0, NULL},
	/* names that are not the pattern's with a number do not count */
	{"snap%d",
	 TAKEN("snap00", "snap-0", "snap+0", "snapx", "snap0x", "xsnap0", "snap", "Snap0"), "snap0",
	 0, NULL},
	{"snap%d", TAKEN("snap0", "snap01", "snap99999999999999999999999"), "snap1", 0, NULL},
	{"%d-daily", TAKEN("0-daily", "1-daily", "2-weekly", "3-daily"), "2-daily", 0, NULL},
	{"%d", TAKEN("0", "1", "2"), "3", 0, NULL},
	{"a%d1", TAKEN("a01", "a11", "a1"), "a21", 0, NULL},
	{"a%%%d", TAKEN("a%0", "a0"), "a%1", 0, NULL},
	{"100%%", NONE, "100%", 0, NULL},
	/* no %d: the name itself */
	{"nightly", TAKEN("snap0"), "nightly", 0, NULL},
	{"nightly", TAKEN("snap0", "nightly"), NULL, -EEXIST,
	 MSG("Snapshot 'nightly' already exists", "snapshots.pattern 'nightly' has no %d")},
	/* invalid patterns */
	{"a/%d", NONE, NULL, -EINVAL, MSG("Invalid snapshots.pattern 'a/%d'")},
	{"%d%d", NONE, NULL, -EINVAL, MSG("may appear only once")},
	/* the number makes the name too long */
	{P62 "%d",
	 TAKEN(P62 "0", P62 "1", P62 "2", P62 "3", P62 "4", P62 "5", P62 "6", P62 "7", P62 "8",
	       P62 "9"),
	 NULL, -ENAMETOOLONG,
	 MSG("Cannot name the snapshot: snapshots.pattern '" P62 "%d' makes '" P62 "10', longer "
	     "than 63 characters")},
	{P62 "%d", TAKEN(P62 "0", P62 "1"), P62 "2", 0, NULL},
};

static void test_pattern_name(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(naming_cases); i++) {
		const struct naming_case *c = &naming_cases[i];
		struct kiva_error err = {0};
		size_t n = 0;
		char buf[64];
		int r;

		while (c->taken[n])
			n++;
		strcpy(buf, "untouched");
		r = proto_snapshot_pattern_name(c->pattern, c->taken, n, buf, sizeof(buf), &err);
		if (c->want) {
			if (r != 0)
				fail_msg("case %zu (\"%s\"): returned %d (%s), want %s", i,
					 c->pattern ? c->pattern : "(null)", r, err.msg, c->want);
			assert_string_equal(buf, c->want);
			assert_int_equal(proto_snapshot_name_validate(buf, NULL), 0);
		} else {
			if (r != c->ret)
				fail_msg("case %zu (\"%s\"): returned %d (%s, \"%s\"), want %d", i,
					 c->pattern ? c->pattern : "(null)", r, err.msg, buf,
					 c->ret);
			assert_int_equal(err.code, r);
			assert_msg_has(c->pattern, err.msg, c->msg);
			assert_string_equal(buf, "untouched");
		}
	}
}

static void test_pattern_name_edges(void **state)
{
	static char names[1000][16];
	const char *taken[1003];
	struct kiva_error err = {0};
	char buf[64], small[5];

	/* 1000 taken in order: the next is 1000; with a hole, the hole */
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(names[i], sizeof(names[i]), "snap%u", 999 - i);
		taken[i] = names[i];
	}
	assert_int_equal(proto_snapshot_pattern_name("snap%d", taken, 1000, buf, sizeof(buf), &err),
			 0);
	assert_string_equal(buf, "snap1000");
	taken[499] = "other"; /* was snap500 */
	assert_int_equal(proto_snapshot_pattern_name("snap%d", taken, 1000, buf, sizeof(buf), &err),
			 0);
	assert_string_equal(buf, "snap500");
	/* NULL entries are skipped */
	taken[499] = NULL;
	assert_int_equal(proto_snapshot_pattern_name("snap%d", taken, 1000, buf, sizeof(buf), &err),
			 0);
	assert_string_equal(buf, "snap500");
	/* a buffer too small is refused, untouched */
	memcpy(small, "xxxx", 5);
	assert_int_equal(proto_snapshot_pattern_name("snap%d", NULL, 0, small, sizeof(small), &err),
			 -ENOBUFS);
	assert_string_equal(small, "xxxx");
	assert_int_equal(proto_snapshot_pattern_name("snap%d", NULL, 0, buf, 6, NULL), 0);
	assert_string_equal(buf, "snap0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedule_parse),
		cmocka_unit_test(test_schedule_parse_message_exact),
		cmocka_unit_test(test_schedule_masks),
		cmocka_unit_test(test_schedule_next),
		cmocka_unit_test(test_schedule_prev),
		cmocka_unit_test(test_schedule_horizon),
		cmocka_unit_test(test_schedule_property),
		cmocka_unit_test(test_schedule_alias_union),
		cmocka_unit_test(test_schedule_weekly_sunday),
		cmocka_unit_test(test_expiry_parse),
		cmocka_unit_test(test_expiry_apply),
		cmocka_unit_test(test_expiry_property),
		cmocka_unit_test(test_snapshot_name),
		cmocka_unit_test(test_pattern_validate),
		cmocka_unit_test(test_pattern_name),
		cmocka_unit_test(test_pattern_name_edges),
	};

	return cmocka_run_group_tests_name("proto-schedule", tests, NULL, NULL);
}
