/* Output formatting for the kiva CLI: tables, CSV, YAML, dates. The table layout copies what lxc
 * prints through olekukonko/tablewriter (SetRowLine(true), headers centered with the extra space on
 * the right, cells left-aligned), CSV copies Go's encoding/csv quoting, YAML copies go-yaml v2. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "basic-macro.h"

#include "cli-output.h"

/* ---- tables ------------------------------------------------------------------------------ */

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->header && i < t->n_cols; i++)
		free(t->header[i]);
	for (size_t i = 0; t->cells && i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	free(t->header);
	free(t->cells);
	free(t);
}

int cli_table_new(const char *const *header, size_t n_cols, struct cli_table **ret)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->n_cols = n_cols;
	t->header = calloc(n_cols, sizeof(char *));
	if (!t->header) {
		free(t);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_cols; i++) {
		t->header[i] = strdup(header[i]);
		if (!t->header[i]) {
			cli_table_free(t);
			return -ENOMEM;
		}
	}
	*ret = t;
	return 0;
}

int cli_table_add_row(struct cli_table *t, const char *const *cells)
{
	char **nc = realloc(t->cells, (t->n_rows + 1) * t->n_cols * sizeof(char *));
	char **row;

	if (!nc)
		return -ENOMEM;
	t->cells = nc;
	row = nc + t->n_rows * t->n_cols;
	for (size_t i = 0; i < t->n_cols; i++) {
		row[i] = strdup(cells[i] ? cells[i] : "");
		if (!row[i]) {
			for (size_t j = 0; j < i; j++)
				free(row[j]);
			return -ENOMEM;
		}
	}
	t->n_rows++;
	return 0;
}

void cli_table_sort(struct cli_table *t, size_t col)
{
	/* insertion sort on row indices: tables hold tens of rows, and it is stable */
	for (size_t i = 1; i < t->n_rows; i++) {
		for (size_t j = i; j > 0; j--) {
			char **a = t->cells + (j - 1) * t->n_cols, **b = t->cells + j * t->n_cols;
			int c = 0;

			for (size_t k = col; k < t->n_cols && c == 0; k++)
				c = strcmp(a[k], b[k]);
			if (c <= 0)
				break;
			for (size_t k = 0; k < t->n_cols; k++) {
				char *tmp = a[k];

				a[k] = b[k];
				b[k] = tmp;
			}
		}
	}
}

/* Display width of n bytes of UTF-8: code points (the CLI prints no wide characters). */
static size_t utf8_width(const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

static size_t cell_lines(const char *s)
{
	size_t n = 1;

	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* The line-th line of s: pointer and length. */
static const char *cell_line(const char *s, size_t line, size_t *ret_len)
{
	for (; line > 0; line--) {
		const char *nl = strchr(s, '\n');

		if (!nl) {
			*ret_len = 0;
			return "";
		}
		s = nl + 1;
	}
	*ret_len = strcspn(s, "\n");
	return s;
}

static void print_rule(FILE *f, const size_t *widths, size_t n)
{
	fputc('+', f);
	for (size_t c = 0; c < n; c++) {
		for (size_t i = 0; i < widths[c] + 2; i++)
			fputc('-', f);
		fputc('+', f);
	}
	fputc('\n', f);
}

static void print_spaces(FILE *f, size_t n)
{
	for (; n > 0; n--)
		fputc(' ', f);
}

static int print_bordered(const struct cli_table *t, FILE *f)
{
	cleanup_free size_t *widths = calloc(t->n_cols ? t->n_cols : 1, sizeof(size_t));

	if (!widths)
		return -ENOMEM;
	for (size_t c = 0; c < t->n_cols; c++)
		widths[c] = utf8_width(t->header[c], strlen(t->header[c]));
	for (size_t r = 0; r < t->n_rows; r++)
		for (size_t c = 0; c < t->n_cols; c++) {
			const char *cell = t->cells[r * t->n_cols + c];
			size_t lines = cell_lines(cell);

			for (size_t l = 0; l < lines; l++) {
				size_t len;
				const char *s = cell_line(cell, l, &len);
				size_t w = utf8_width(s, len);

				if (w > widths[c])
					widths[c] = w;
			}
		}

	print_rule(f, widths, t->n_cols);
	fputc('|', f);
	for (size_t c = 0; c < t->n_cols; c++) {
		size_t gap = widths[c] - utf8_width(t->header[c], strlen(t->header[c]));

		print_spaces(f, 1 + gap / 2);
		fputs(t->header[c], f);
		print_spaces(f, gap - gap / 2 + 1);
		fputc('|', f);
	}
	fputc('\n', f);
	print_rule(f, widths, t->n_cols);

	for (size_t r = 0; r < t->n_rows; r++) {
		char **row = t->cells + r * t->n_cols;
		size_t height = 1;

		for (size_t c = 0; c < t->n_cols; c++) {
			size_t h = cell_lines(row[c]);

			if (h > height)
				height = h;
		}
		for (size_t l = 0; l < height; l++) {
			fputc('|', f);
			for (size_t c = 0; c < t->n_cols; c++) {
				size_t len;
				const char *s = cell_line(row[c], l, &len);

				fputc(' ', f);
				fwrite(s, 1, len, f);
				print_spaces(f, widths[c] - utf8_width(s, len) + 1);
				fputc('|', f);
			}
			fputc('\n', f);
		}
		print_rule(f, widths, t->n_cols);
	}
	return ferror(f) ? -EIO : 0;
}

static void print_csv_field(FILE *f, const char *s)
{
	bool quote = (s[0] == ' ' || s[0] == '\t' || strpbrk(s, ",\"\r\n") || streq(s, "\\."));

	if (!quote) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

int cli_table_print(const struct cli_table *t, enum cli_format format, FILE *f)
{
	if (format == CLI_FORMAT_TABLE)
		return print_bordered(t, f);
	if (format != CLI_FORMAT_CSV)
		return -EINVAL;
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_cols; c++) {
			if (c)
				fputc(',', f);
			print_csv_field(f, t->cells[r * t->n_cols + c]);
		}
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}

/* ---- YAML -------------------------------------------------------------------------------- */

static bool yaml_looks_special(const char *s)
{
	static const char *const words[] = {"true", "false", "yes", "no",   "on",
					    "off",  "y",     "n",   "null", "~"};
	const char *p = s;
	char *end;

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcasecmp(s, words[i]) == 0)
			return true;
	/* anything a YAML 1.1 resolver would read as a number */
	if (*p == '+' || *p == '-')
		p++;
	if (*p == '.' || (*p >= '0' && *p <= '9')) {
		strtod(p, &end);
		if (*end == 0 || (p[0] == '0' && (p[1] == 'x' || p[1] == 'o' || p[1] == 'b')))
			return true;
	}
	return false;
}

static bool yaml_needs_quotes(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == ':')
		return true;
	if (strchr("-?:,[]{}#&*!|>'\"%@`\t", s[0]))
		return true;
	if (strstr(s, ": ") || strstr(s, " #"))
		return true;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return true;
	return yaml_looks_special(s);
}

void cli_yaml_print_string(FILE *f, const char *s)
{
	if (!yaml_needs_quotes(s)) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void yaml_scalar(FILE *f, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		cli_yaml_print_string(f, json_string_value(v));
		break;
	case JSON_INTEGER:
		fprintf(f, "%lld", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		fprintf(f, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		fputs("true", f);
		break;
	case JSON_FALSE:
		fputs("false", f);
		break;
	case JSON_OBJECT:
		fputs("{}", f);
		break;
	case JSON_ARRAY:
		fputs("[]", f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void yaml_array(FILE *f, const json_t *arr, int indent);
static void yaml_object(FILE *f, const json_t *obj, int indent, bool first_inline);

static bool yaml_is_block(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v) > 0) ||
	       (json_is_array(v) && json_array_size(v) > 0);
}

/* After "key:" — a nested map goes two spaces in, a list stays at the key's indentation. */
static void yaml_after_key(FILE *f, const json_t *v, int indent)
{
	if (json_is_object(v) && json_object_size(v) > 0) {
		fputc('\n', f);
		yaml_object(f, v, indent + 2, false);
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		fputc('\n', f);
		yaml_array(f, v, indent);
	} else {
		fputc(' ', f);
		yaml_scalar(f, v);
		fputc('\n', f);
	}
}

static void yaml_object(FILE *f, const json_t *obj, int indent, bool first_inline)
{
	size_t n = json_object_size(obj), i = 0;
	cleanup_free const char **keys = calloc(n ? n : 1, sizeof(char *));

	if (!keys)
		return;
	for (void *it = json_object_iter((json_t *)obj); it;
	     it = json_object_iter_next((json_t *)obj, it))
		keys[i++] = json_object_iter_key(it);
	qsort(keys, n, sizeof(char *), cmp_str);
	for (i = 0; i < n; i++) {
		if (i > 0 || !first_inline)
			print_spaces(f, (size_t)indent);
		cli_yaml_print_string(f, keys[i]);
		fputc(':', f);
		yaml_after_key(f, json_object_get(obj, keys[i]), indent);
	}
}

static void yaml_array(FILE *f, const json_t *arr, int indent)
{
	size_t i;
	json_t *v;

	for (i = 0; i < json_array_size(arr) && (v = json_array_get(arr, i)); i++) {
		print_spaces(f, (size_t)indent);
		fputs("- ", f);
		if (json_is_object(v) && json_object_size(v) > 0) {
			yaml_object(f, v, indent + 2, true);
		} else if (yaml_is_block(v)) {
			char *flow = json_dumps(v, JSON_COMPACT); /* nested lists: flow style */

			fputs(flow ? flow : "[]", f);
			fputc('\n', f);
			free(flow);
		} else {
			yaml_scalar(f, v);
			fputc('\n', f);
		}
	}
}

void cli_yaml_print(FILE *f, const json_t *v, int indent)
{
	if (json_is_object(v) && json_object_size(v) > 0)
		yaml_object(f, v, indent, false);
	else if (json_is_array(v) && json_array_size(v) > 0)
		yaml_array(f, v, indent);
	else {
		print_spaces(f, (size_t)indent);
		yaml_scalar(f, v);
		fputc('\n', f);
	}
}

void cli_yaml_print_keys(FILE *f, const json_t *obj, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++) {
		const json_t *v = json_object_get(obj, keys[i]);

		if (!v)
			continue;
		cli_yaml_print_string(f, keys[i]);
		fputc(':', f);
		yaml_after_key(f, v, 0);
	}
}

/* ---- dates ------------------------------------------------------------------------------- */

int cli_parse_time(const char *s, time_t *ret, bool *ret_zero)
{
	struct tm tm = {0};
	int year, mon, day, hour, min, sec, n = 0;
	long offset = 0;
	const char *p;

	if (!s ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min, &sec, &n) < 6 ||
	    n == 0)
		return -EINVAL;
	p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, k = 0;

		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) < 2 || k != 5)
			return -EINVAL;
		offset = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
		p += 1 + k;
	} else {
		return -EINVAL;
	}
	if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return -EINVAL;
	*ret_zero = year <= 1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	*ret = timegm(&tm) - offset;
	return 0;
}

const char *cli_format_time_local(const char *s, char buf[static 64])
{
	struct tm tm;
	time_t t;
	bool zero;

	buf[0] = 0;
	if (cli_parse_time(s, &t, &zero) < 0 || zero || !localtime_r(&t, &tm))
		return buf;
	strftime(buf, 64, "%Y/%m/%d %H:%M %Z", &tm);
	return buf;
}

const char *cli_format_time_upload(const char *s, char buf[static 64])
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	time_t t;
	bool zero;
	int h12;

	buf[0] = 0;
	if (cli_parse_time(s, &t, &zero) < 0 || zero || !gmtime_r(&t, &tm))
		return buf;
	h12 = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
	snprintf(buf, 64, "%s %d, %d at %d:%02d%s (UTC)", months[tm.tm_mon], tm.tm_mday,
		 tm.tm_year + 1900, h12, tm.tm_min, tm.tm_hour < 12 ? "am" : "pm");
	return buf;
}

/* ---- misc -------------------------------------------------------------------------------- */

char *cli_escape_path_segment(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = 0;
	return out;
}

char *cli_ascii_upper(char *s)
{
	for (char *p = s; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	return s;
}
