/* LXD's snapshot scheduling keys as pure functions: cron parsing into bitmaps and the next/prev
 * fire time search (UTC, by month and day skipping over a proleptic Gregorian calendar converted
 * with Howard Hinnant's days_from_civil/civil_from_days), expiry terms added like Go's AddDate,
 * and snapshot naming from a "%d" pattern. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic-macro.h"
#include "proto-schedule.h"

/* ---- calendar ---- */

#define TIME_LIMIT (1LL << 62)
#define HORIZON_DAYS (PROTO_SCHEDULE_HORIZON_SEC / 86400)

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1-12, d 1-31). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *ret_y, unsigned *ret_m, unsigned *ret_d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp, m;

	z += 719468;
	era = floor_div(z, 146097);
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	m = mp < 10 ? mp + 3 : mp - 9;
	*ret_d = doy - (153 * mp + 2) / 5 + 1;
	*ret_m = m;
	*ret_y = (int64_t)yoe + era * 400 + (m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : dim[m];
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static unsigned weekday(int64_t days)
{
	return (unsigned)(days - floor_div(days + 4, 7) * 7 + 4);
}

/* ---- snapshots.schedule: parsing ---- */

struct field_def {
	const char *name;
	unsigned min, max; /* values accepted */
	unsigned star_max; /* what "*" covers (day-of-week: 0-6) */
	const char *const *names; /* 3-letter names of min, min+1, ... or NULL */
	const char *names_hint;
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
					  "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const weekday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const struct field_def field_defs[F_COUNT] = {
	[F_MINUTE] = {"minute", 0, 59, 59, NULL, NULL},
	[F_HOUR] = {"hour", 0, 23, 23, NULL, NULL},
	[F_DOM] = {"day-of-month", 1, 31, 31, NULL, NULL},
	[F_MONTH] = {"month", 1, 12, 12, month_names, "a month name (JAN-DEC)"},
	[F_DOW] = {"day-of-week", 0, 7, 6, weekday_names, "a weekday name (SUN-SAT)"},
};

#define SCHEDULE_USAGE                                                                             \
	"expected a cron expression (<minute> <hour> <day-of-month> <month> <day-of-week>) or a "  \
	"comma-separated list of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, "         \
	"@annually"

__attribute__((format(printf, 3, 4))) static int
schedule_error(struct kiva_error *reterr, const char *value, const char *fmt, ...)
{
	char detail[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return kiva_error_set(reterr, -EINVAL, "Invalid snapshots.schedule '%.100s': %s", value,
			      detail);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool all_digits(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Decimal digits to a number, saturating at 1000000000 (callers range-check it). */
static unsigned digits_value(const char *s, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v >= 1000000000)
			return 1000000000;
	}
	return (unsigned)v;
}

/* One value of a field: a number in range or a name. item is the list item, for messages. */
static int parse_value(const struct field_def *f, const char *tok, size_t len, const char *item,
		       size_t item_len, const char *value, unsigned *ret, struct kiva_error *reterr)
{
	unsigned v;

	if (len == 0)
		return schedule_error(reterr, value, "%s '%.*s' is missing a value", f->name,
				      (int)item_len, item);
	if (all_digits(tok, len)) {
		v = digits_value(tok, len);
		if (v < f->min || v > f->max)
			return schedule_error(reterr, value, "%s %.*s is out of range %u-%u",
					      f->name, (int)len, tok, f->min, f->max);
		*ret = v;
		return 0;
	}
	if (f->names && len == 3)
		for (unsigned i = 0; f->names[i]; i++)
			if (strncasecmp(tok, f->names[i], 3) == 0) {
				*ret = f->min + i;
				return 0;
			}
	if (f->names)
		return schedule_error(reterr, value, "%s '%.*s' is not a number or %s", f->name,
				      (int)len, tok, f->names_hint);
	return schedule_error(reterr, value, "%s '%.*s' is not a number", f->name, (int)len, tok);
}

/* One comma-separated field into a bitmap (bit n = value n; day-of-week 7 sets bit 0). */
static int parse_field(const struct field_def *f, const char *s, size_t len, const char *value,
		       uint64_t *ret_bits, bool *ret_star, struct kiva_error *reterr)
{
	uint64_t bits = 0;
	bool star = false;
	const char *end = s + len;

	for (const char *p = s;;) {
		const char *q = memchr(p, ',', (size_t)(end - p));
		const char *item_end = q ? q : end;
		size_t item_len = (size_t)(item_end - p);
		const char *slash = memchr(p, '/', item_len);
		const char *base_end = slash ? slash : item_end;
		unsigned lo, hi, step = 1;
		int r;

		if (item_len == 0)
			return schedule_error(reterr, value, "%s '%.*s' has an empty list item",
					      f->name, (int)len, s);
		if (slash) {
			const char *st = slash + 1;
			size_t st_len = (size_t)(item_end - st);
			unsigned size = f->star_max - f->min + 1;

			if (!all_digits(st, st_len))
				return schedule_error(reterr, value,
						      "%s step '%.*s' is not a number", f->name,
						      (int)st_len, st);
			step = digits_value(st, st_len);
			if (step < 1 || step > size)
				return schedule_error(reterr, value,
						      "%s step %.*s is out of range 1-%u", f->name,
						      (int)st_len, st, size);
		}
		if (base_end - p == 1 && *p == '*') {
			lo = f->min;
			hi = f->star_max;
			if (step == 1)
				star = true;
		} else {
			/* a '-' after the first character separates a range */
			const char *dash = base_end - p > 1
						   ? memchr(p + 1, '-', (size_t)(base_end - p - 1))
						   : NULL;

			r = parse_value(f, p, (size_t)((dash ? dash : base_end) - p), p, item_len,
					value, &lo, reterr);
			if (r < 0)
				return r;
			if (dash) {
				r = parse_value(f, dash + 1, (size_t)(base_end - dash - 1), p,
						item_len, value, &hi, reterr);
				if (r < 0)
					return r;
				if (hi < lo)
					return schedule_error(
						reterr, value,
						"%s range '%.*s' ends before it starts", f->name,
						(int)(base_end - p), p);
			} else {
				hi = slash ? f->max : lo;
			}
		}
		for (unsigned v = lo; v <= hi; v += step)
			bits |= 1ULL << (f == &field_defs[F_DOW] ? v % 7 : v);
		if (!q)
			break;
		p = q + 1;
	}
	*ret_bits = bits;
	*ret_star = star;
	return 0;
}

static int parse_cron(const char *text, const char *value, struct proto_cron *ret,
		      struct kiva_error *reterr)
{
	const char *start[F_COUNT + 1], *fend[F_COUNT + 1];
	uint64_t bits[F_COUNT];
	bool star[F_COUNT];
	unsigned n = 0;
	const char *p = text;

	for (;;) {
		while (is_blank(*p))
			p++;
		if (!*p)
			break;
		if (n == F_COUNT) {
			n++;
			break;
		}
		start[n] = p;
		while (*p && !is_blank(*p))
			p++;
		fend[n++] = p;
	}
	if (n != F_COUNT) {
		if (strchr(text, '@'))
			return schedule_error(reterr, value,
					      "a cron expression cannot be combined with aliases");
		if (n > F_COUNT)
			return schedule_error(reterr, value,
					      "got more than 5 fields, " SCHEDULE_USAGE);
		return schedule_error(reterr, value, "got %u field%s, " SCHEDULE_USAGE, n,
				      n == 1 ? "" : "s");
	}
	for (unsigned i = 0; i < F_COUNT; i++) {
		int r = parse_field(&field_defs[i], start[i], (size_t)(fend[i] - start[i]), value,
				    &bits[i], &star[i], reterr);

		if (r < 0)
			return r;
	}
	*ret = (struct proto_cron){
		.minutes = bits[F_MINUTE],
		.hours = (uint32_t)bits[F_HOUR],
		.days = (uint32_t)bits[F_DOM],
		.months = (uint16_t)bits[F_MONTH],
		.weekdays = (uint8_t)bits[F_DOW],
		.days_star = star[F_DOM],
		.weekdays_star = star[F_DOW],
	};
	return 0;
}

#define ALL_HOURS ((1U << 24) - 1)
#define ALL_DAYS (((1U << 31) - 1) << 1)
#define ALL_MONTHS ((uint16_t)(((1U << 12) - 1) << 1))
#define ALL_WEEKDAYS ((uint8_t)0x7f)

static const struct {
	const char *name;
	unsigned kind; /* index into alias_crons */
} aliases[] = {
	{"@hourly", 0},	 {"@daily", 1},	 {"@midnight", 1}, {"@weekly", 2},
	{"@monthly", 3}, {"@yearly", 4}, {"@annually", 4},
};

static const struct proto_cron alias_crons[PROTO_SCHEDULE_MAX] = {
	/* @hourly: 0 * * * * */
	{1, ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, true, true},
	/* @daily: 0 0 * * * */
	{1, 1, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS, true, true},
	/* @weekly: 0 0 * * 0 */
	{1, 1, ALL_DAYS, ALL_MONTHS, 1, true, false},
	/* @monthly: 0 0 1 * * */
	{1, 1, 1U << 1, ALL_MONTHS, ALL_WEEKDAYS, false, true},
	/* @yearly: 0 0 1 1 * */
	{1, 1, 1U << 1, 1U << 1, ALL_WEEKDAYS, false, true},
};

static int parse_aliases(const char *text, const char *value, struct proto_schedule *ret,
			 struct kiva_error *reterr)
{
	unsigned kinds = 0, n = 0;

	for (const char *p = text;;) {
		const char *q = strchr(p, ',');
		const char *e = q ? q : p + strlen(p);
		size_t len;
		bool found = false;

		while (p < e && is_blank(*p))
			p++;
		while (e > p && is_blank(e[-1]))
			e--;
		len = (size_t)(e - p);
		if (len == 0)
			return schedule_error(reterr, value, "the alias list has an empty item");
		if (*p != '@')
			return schedule_error(reterr, value,
					      "'%.*s' is not an alias; a cron expression cannot "
					      "be combined with aliases",
					      (int)len, p);
		for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
			if (strlen(aliases[i].name) == len &&
			    strncasecmp(p, aliases[i].name, len) == 0) {
				kinds |= 1U << aliases[i].kind;
				found = true;
			}
		if (!found)
			return schedule_error(reterr, value,
					      "unknown alias '%.*s' (expected @hourly, @daily, "
					      "@midnight, @weekly, @monthly, @yearly or @annually)",
					      (int)len, p);
		if (!q)
			break;
		p = q + 1;
	}
	memset(ret, 0, sizeof(*ret));
	for (unsigned k = 0; k < PROTO_SCHEDULE_MAX; k++)
		if (kinds & (1U << k))
			ret->crons[n++] = alias_crons[k];
	ret->n = n;
	return 0;
}

int proto_schedule_parse(const char *text, struct proto_schedule *ret, struct kiva_error *reterr)
{
	struct proto_schedule s = {0};
	const char *p = text ? text : "";
	int r;

	while (is_blank(*p))
		p++;
	if (!*p) {
		*ret = s;
		return 0;
	}
	if (*p == '@')
		r = parse_aliases(p, text, &s, reterr);
	else {
		r = parse_cron(p, text, &s.crons[0], reterr);
		s.n = 1;
	}
	if (r < 0)
		return r;
	*ret = s;
	return 0;
}

int proto_schedule_validate(const char *value, struct kiva_error *reterr)
{
	struct proto_schedule s;

	if (!value)
		return 0;
	return proto_schedule_parse(value, &s, reterr);
}

/* ---- snapshots.schedule: fire times ---- */

/* robfig/cron (and Vixie cron): with either day field "*", both must match; else either. */
static bool cron_and_days(const struct proto_cron *c)
{
	return c->days_star || c->weekdays_star;
}

static bool cron_day_matches(const struct proto_cron *c, unsigned d, unsigned wday)
{
	bool dom = c->days & (1U << d), dow = c->weekdays & (1U << wday);

	return cron_and_days(c) ? dom && dow : dom || dow;
}

/* The first minute of the day ≥ mod (0-1439) that matches hours and minutes, or -1. */
static int first_minute_at_or_after(const struct proto_cron *c, unsigned mod)
{
	unsigned h = mod / 60, m = mod % 60;

	for (; h < 24; h++, m = 0) {
		uint64_t mm;

		if (!(c->hours & (1U << h)))
			continue;
		mm = c->minutes & (~0ULL << m);
		if (mm)
			return (int)(h * 60 + (unsigned)__builtin_ctzll(mm));
	}
	return -1;
}

/* The last minute of the day ≤ mod (0-1439) that matches hours and minutes, or -1. */
static int last_minute_at_or_before(const struct proto_cron *c, unsigned mod)
{
	int h = (int)(mod / 60);
	unsigned m = mod % 60;

	for (; h >= 0; h--, m = 59) {
		uint64_t mm;

		if (!(c->hours & (1U << h)))
			continue;
		mm = c->minutes & ((2ULL << m) - 1);
		if (mm)
			return h * 60 + 63 - __builtin_clzll(mm);
	}
	return -1;
}

static int64_t cron_next(const struct proto_cron *c, int64_t after)
{
	int64_t tmin = floor_div(after, 60) + 1;
	int64_t day = floor_div(tmin, 1440), last_day = day + HORIZON_DAYS;
	unsigned mod = (unsigned)(tmin - day * 1440), m, d, dim;
	int64_t y;

	if (!c->minutes || !c->hours || !c->months || !(c->days | c->weekdays))
		return -1;
	civil_from_days(day, &y, &m, &d);
	dim = days_in_month(y, m);
	while (day <= last_day) {
		if (!(c->months & (1U << m))) {
			day += dim - d + 1;
			goto next_month;
		}
		if (cron_and_days(c)) {
			/* skip to the next allowed day of month */
			uint64_t left = (uint64_t)c->days & (~0ULL << d) & ((2ULL << dim) - 1);

			if (!left) {
				day += dim - d + 1;
				goto next_month;
			}
			if ((unsigned)__builtin_ctzll(left) != d) {
				day += (unsigned)__builtin_ctzll(left) - d;
				d = (unsigned)__builtin_ctzll(left);
				mod = 0;
			}
		}
		if (cron_day_matches(c, d, weekday(day))) {
			int r = first_minute_at_or_after(c, mod);

			if (r >= 0) {
				int64_t t = day * 86400 + r * 60;

				return t - after <= PROTO_SCHEDULE_HORIZON_SEC ? t : -1;
			}
		}
		day++;
		mod = 0;
		if (++d <= dim)
			continue;
	next_month:
		mod = 0;
		d = 1;
		if (++m > 12) {
			m = 1;
			y++;
		}
		dim = days_in_month(y, m);
	}
	return -1;
}

static int64_t cron_prev(const struct proto_cron *c, int64_t at)
{
	int64_t tmin = floor_div(at, 60);
	int64_t day = floor_div(tmin, 1440), first_day = day - HORIZON_DAYS;
	unsigned mod = (unsigned)(tmin - day * 1440), m, d;
	int64_t y;

	if (!c->minutes || !c->hours || !c->months || !(c->days | c->weekdays))
		return -1;
	civil_from_days(day, &y, &m, &d);
	while (day >= first_day) {
		if (!(c->months & (1U << m))) {
			day -= d;
			goto prev_month;
		}
		if (cron_and_days(c)) {
			/* skip back to the previous allowed day of month */
			uint64_t left = (uint64_t)c->days & ((2ULL << d) - 1);

			if (!left) {
				day -= d;
				goto prev_month;
			}
			if ((unsigned)(63 - __builtin_clzll(left)) != d) {
				day -= d - (unsigned)(63 - __builtin_clzll(left));
				d = (unsigned)(63 - __builtin_clzll(left));
				mod = 1439;
			}
		}
		if (cron_day_matches(c, d, weekday(day))) {
			int r = last_minute_at_or_before(c, mod);

			if (r >= 0) {
				int64_t t = day * 86400 + r * 60;

				return at - t <= PROTO_SCHEDULE_HORIZON_SEC ? t : -1;
			}
		}
		day--;
		mod = 1439;
		if (--d >= 1)
			continue;
	prev_month:
		mod = 1439;
		if (--m < 1) {
			m = 12;
			y--;
		}
		d = days_in_month(y, m);
	}
	return -1;
}

int64_t proto_schedule_next(const struct proto_schedule *s, int64_t after_unix)
{
	int64_t best = -1;

	if (!s || after_unix > TIME_LIMIT || after_unix < -TIME_LIMIT)
		return -1;
	for (unsigned i = 0; i < s->n && i < PROTO_SCHEDULE_MAX; i++) {
		int64_t t = cron_next(&s->crons[i], after_unix);

		if (t != -1 && (best == -1 || t < best))
			best = t;
	}
	return best;
}

int64_t proto_schedule_prev(const struct proto_schedule *s, int64_t at_or_before_unix)
{
	int64_t best = -1;

	if (!s || at_or_before_unix > TIME_LIMIT || at_or_before_unix < -TIME_LIMIT)
		return -1;
	for (unsigned i = 0; i < s->n && i < PROTO_SCHEDULE_MAX; i++) {
		int64_t t = cron_prev(&s->crons[i], at_or_before_unix);

		/* -1 (1969-12-31 23:59:59) is not a whole minute, so never a fire time */
		if (t != -1 && (best == -1 || t > best))
			best = t;
	}
	return best;
}

/* ---- snapshots.expiry ---- */

__attribute__((format(printf, 3, 4))) static int
expiry_error(struct kiva_error *reterr, const char *value, const char *fmt, ...)
{
	char detail[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return kiva_error_set(reterr, -EINVAL, "Invalid snapshots.expiry '%.100s': %s", value,
			      detail);
}

int proto_expiry_parse(const char *text, struct proto_expiry *ret, struct kiva_error *reterr)
{
	static const char units[] = "MHdwmy";
	struct proto_expiry e = {0};
	uint32_t *slots[] = {&e.minutes, &e.hours, &e.days, &e.weeks, &e.months, &e.years};
	unsigned seen = 0;
	const char *p = text ? text : "";

	for (;;) {
		const char *t, *unit_pos;
		size_t len, ndigits;
		unsigned v;

		while (is_blank(*p))
			p++;
		if (!*p)
			break;
		t = p;
		while (*p && !is_blank(*p))
			p++;
		len = (size_t)(p - t);
		ndigits = 0;
		while (ndigits < len && t[ndigits] >= '0' && t[ndigits] <= '9')
			ndigits++;
		unit_pos = ndigits + 1 == len ? strchr(units, t[ndigits]) : NULL;
		if (ndigits == 0 || !unit_pos || !*unit_pos)
			return expiry_error(
				reterr, text,
				"'%.*s' is not <number><unit> with unit M (minutes), "
				"H (hours), d (days), w (weeks), m (months) or y (years)",
				(int)len, t);
		v = digits_value(t, ndigits);
		if (v > PROTO_EXPIRY_TERM_MAX)
			return expiry_error(reterr, text, "'%.*s' is too large (at most %u%c)",
					    (int)len, t, PROTO_EXPIRY_TERM_MAX, t[ndigits]);
		if (seen & (1U << (unit_pos - units)))
			return expiry_error(reterr, text, "unit '%c' is given more than once",
					    t[ndigits]);
		seen |= 1U << (unit_pos - units);
		*slots[unit_pos - units] = v;
		e.set = true;
	}
	*ret = e;
	return 0;
}

int proto_expiry_validate(const char *value, struct kiva_error *reterr)
{
	struct proto_expiry e;

	if (!value)
		return 0;
	return proto_expiry_parse(value, &e, reterr);
}

int64_t proto_expiry_apply(const struct proto_expiry *e, int64_t from_unix)
{
	int64_t day, sod, y, months;
	unsigned m, d;

	if (!e || !e->set)
		return 0;
	/* outside ±2^62 the arithmetic could overflow; no snapshot is taken then */
	if (from_unix > TIME_LIMIT)
		from_unix = TIME_LIMIT;
	if (from_unix < -TIME_LIMIT)
		from_unix = -TIME_LIMIT;
	day = floor_div(from_unix, 86400);
	sod = from_unix - day * 86400;
	civil_from_days(day, &y, &m, &d);
	/* Go's Date(y + years, m + months, d + days): month overflow into years, then the day
	 * offset from the 1st of the resulting month (normalising Feb 31 to Mar 3) */
	months = (int64_t)m - 1 + e->months;
	y += e->years + floor_div(months, 12);
	m = (unsigned)(months - floor_div(months, 12) * 12) + 1;
	day = days_from_civil(y, m, 1) + (d - 1) + e->days + 7 * (int64_t)e->weeks;
	return day * 86400 + sod + 3600 * (int64_t)e->hours + 60 * (int64_t)e->minutes;
}

/* ---- snapshot names and snapshots.pattern ---- */

/* Why name is not a valid snapshot name, or NULL. */
static const char *snapshot_name_problem(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return "the name is empty";
	if (len > PROTO_SNAPSHOT_NAME_MAX)
		return "longer than 63 characters";
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "'.' and '..' are not allowed";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/')
			return "'/' is not allowed";
		if (c <= ' ' || c == 0x7f)
			return "whitespace and control characters are not allowed";
	}
	return NULL;
}

int proto_snapshot_name_validate(const char *name, struct kiva_error *reterr)
{
	const char *problem;

	if (!name || !*name)
		return kiva_error_set(reterr, -EINVAL, "Snapshot name is required");
	problem = snapshot_name_problem(name);
	if (problem)
		return kiva_error_set(reterr, -EINVAL, "Invalid snapshot name '%.70s': %s", name,
				      problem);
	return 0;
}

/* A pattern split at its "%d", with "%%" unescaped. */
struct pattern_parts {
	char prefix[PROTO_SNAPSHOT_NAME_MAX + 1], suffix[PROTO_SNAPSHOT_NAME_MAX + 1];
	size_t prefix_len, suffix_len;
	bool numbered; /* had a "%d" */
};

static int pattern_split(const char *pattern, struct pattern_parts *ret, struct kiva_error *reterr)
{
	struct pattern_parts pp = {0};
	char *out = pp.prefix;
	size_t *out_len = &pp.prefix_len;

	for (const char *p = pattern; *p; p++) {
		char c = *p;

		if (c == '%') {
			if (p[1] == 'd') {
				if (pp.numbered)
					return kiva_error_set(
						reterr, -EINVAL,
						"Invalid snapshots.pattern '%.100s': '%%d' may appear only once",
						pattern);
				pp.numbered = true;
				out = pp.suffix;
				out_len = &pp.suffix_len;
				p++;
				continue;
			}
			if (p[1] != '%')
				return kiva_error_set(
					reterr, -EINVAL,
					"Invalid snapshots.pattern '%.100s': '%%%.1s' is not supported (use '%%d' for the number, '%%%%' for '%%')",
					pattern, p + 1);
			p++;
		}
		if (pp.prefix_len + pp.suffix_len + pp.numbered >= PROTO_SNAPSHOT_NAME_MAX)
			return kiva_error_set(
				reterr, -EINVAL,
				"Invalid snapshots.pattern '%.100s': the snapshot names "
				"it makes are longer than 63 characters",
				pattern);
		out[(*out_len)++] = c;
	}
	if (pp.prefix_len + pp.suffix_len + pp.numbered > PROTO_SNAPSHOT_NAME_MAX)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid snapshots.pattern '%.100s': the snapshot names it "
				      "makes are longer than 63 characters",
				      pattern);
	*ret = pp;
	return 0;
}

/* The pattern's name for number n (ignored without "%d"); buf holds at least 64 + 21 bytes. */
static size_t pattern_render(const struct pattern_parts *pp, uint64_t n, char *buf, size_t len)
{
	int r;

	if (pp->numbered)
		r = snprintf(buf, len, "%s%llu%s", pp->prefix, (unsigned long long)n, pp->suffix);
	else
		r = snprintf(buf, len, "%s", pp->prefix);
	return r < 0 ? 0 : (size_t)r;
}

static int pattern_parse(const char *pattern, struct pattern_parts *ret, struct kiva_error *reterr)
{
	struct pattern_parts pp;
	char name[128];
	const char *problem;
	int r;

	if (!pattern || !*pattern)
		pattern = PROTO_SNAPSHOT_PATTERN_DEFAULT;
	r = pattern_split(pattern, &pp, reterr);
	if (r < 0)
		return r;
	pattern_render(&pp, 0, name, sizeof(name));
	problem = snapshot_name_problem(name);
	if (problem)
		return kiva_error_set(reterr, -EINVAL,
				      "Invalid snapshots.pattern '%.100s': it makes snapshot names "
				      "like '%s': %s",
				      pattern, name, problem);
	*ret = pp;
	return 0;
}

int proto_snapshot_pattern_validate(const char *pattern, struct kiva_error *reterr)
{
	struct pattern_parts pp;

	return pattern_parse(pattern, &pp, reterr);
}

/* The number name stands for under pp ("snap12" → 12), only in canonical decimal (no sign, no
 * leading zeros), or UINT64_MAX when name is not one of the pattern's names or the number is
 * above limit. */
static uint64_t pattern_match(const struct pattern_parts *pp, const char *name, uint64_t limit)
{
	size_t len = strlen(name), ndigits;
	const char *digits;
	uint64_t v = 0;

	if (len < pp->prefix_len + pp->suffix_len + 1)
		return UINT64_MAX;
	if (memcmp(name, pp->prefix, pp->prefix_len) != 0 ||
	    memcmp(name + len - pp->suffix_len, pp->suffix, pp->suffix_len) != 0)
		return UINT64_MAX;
	digits = name + pp->prefix_len;
	ndigits = len - pp->prefix_len - pp->suffix_len;
	if (!all_digits(digits, ndigits) || (digits[0] == '0' && ndigits > 1))
		return UINT64_MAX;
	for (size_t i = 0; i < ndigits; i++) {
		v = v * 10 + (uint64_t)(digits[i] - '0');
		if (v > limit)
			return UINT64_MAX;
	}
	return v;
}

int proto_snapshot_pattern_name(const char *pattern, const char *const *taken, size_t n_taken,
				char *buf, size_t len, struct kiva_error *reterr)
{
	struct pattern_parts pp;
	char name[128];
	size_t name_len;
	uint64_t k = 0;
	int r;

	r = pattern_parse(pattern, &pp, reterr);
	if (r < 0)
		return r;
	if (!pattern || !*pattern)
		pattern = PROTO_SNAPSHOT_PATTERN_DEFAULT;
	if (!pp.numbered) {
		for (size_t i = 0; i < n_taken; i++)
			if (taken[i] && strcmp(taken[i], pp.prefix) == 0)
				return kiva_error_set(
					reterr, -EEXIST,
					"Snapshot '%s' already exists (snapshots.pattern '%.100s' has no %%d to number snapshots)",
					pp.prefix, pattern);
	} else if (n_taken > 0) {
		/* n_taken names take at most n_taken of the numbers 0..n_taken */
		cleanup_free uint8_t *used = NULL;

		if (n_taken >= SIZE_MAX / 2)
			return kiva_error_set(reterr, -ENOMEM, "Too many snapshots");
		used = calloc(n_taken / 8 + 1, 1);
		if (!used)
			return kiva_error_set(reterr, -ENOMEM, "Out of memory");
		for (size_t i = 0; i < n_taken; i++) {
			uint64_t v = taken[i] ? pattern_match(&pp, taken[i], n_taken) : UINT64_MAX;

			if (v != UINT64_MAX)
				used[v / 8] |= (uint8_t)(1U << (v % 8));
		}
		while (used[k / 8] & (1U << (k % 8)))
			k++;
	}
	name_len = pattern_render(&pp, k, name, sizeof(name));
	if (name_len > PROTO_SNAPSHOT_NAME_MAX)
		return kiva_error_set(reterr, -ENAMETOOLONG,
				      "Cannot name the snapshot: snapshots.pattern '%.100s' makes "
				      "'%s', longer than 63 characters",
				      pattern, name);
	if (name_len >= len)
		return kiva_error_set(
			reterr, -ENOBUFS,
			"Cannot name the snapshot '%s': buffer of %zu bytes too small", name, len);
	memcpy(buf, name, name_len + 1);
	return 0;
}
