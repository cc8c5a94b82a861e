/* What the kiva CLI prints: LXD-style bordered tables and CSV (as lxc's tablewriter and Go's
 * encoding/csv render them), a YAML emitter for `config show` / `operation show`, and the date
 * formats lxc uses. Pure code over FILE streams; testable with open_memstream. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "basic-json.h"
#include "cli-args.h"

struct cli_table {
	size_t n_cols;
	size_t n_rows;
	char **header; /* n_cols strings, owned */
	char **cells; /* n_rows * n_cols strings, row-major, owned; a cell may hold '\n' lines */
};

/* Creates a table with the given column headers (copied). Returns 0 or -ENOMEM. */
int cli_table_new(const char *const *header, size_t n_cols, struct cli_table **ret);
void cli_table_free(struct cli_table *t);
/* Appends a row of n_cols cells (copied; NULL is an empty cell). Returns 0 or -ENOMEM. */
int cli_table_add_row(struct cli_table *t, const char *const *cells);
/* Sorts the rows by column col, then by the following columns (strcmp order). */
void cli_table_sort(struct cli_table *t, size_t col);

/* Renders t as an LXD table (borders, a rule after every row, centered headers, left-aligned cells,
 * multi-line cells) or as CSV without header. Other formats: -EINVAL. Returns 0 or -errno. */
int cli_table_print(const struct cli_table *t, enum cli_format format, FILE *f);

/* Emits v as YAML (block style, sorted map keys, lists at their parent's indentation as go-yaml
 * does) at the given indentation. A top-level object prints "key: value" lines. */
void cli_yaml_print(FILE *f, const json_t *v, int indent);
/* Emits selected keys of obj, in the given order (the struct order lxc prints), skipping absent ones. */
void cli_yaml_print_keys(FILE *f, const json_t *obj, const char *const *keys);
/* Writes s as a YAML scalar, quoted only when plain style would change its meaning. */
void cli_yaml_print_string(FILE *f, const char *s);

/* Parses an RFC 3339 timestamp ("2024-05-01T10:00:00.123456789Z", "...+02:00"). *ret_zero is set
 * for Go's zero time (year 1), which lxc treats as "never". Returns 0 or -EINVAL. */
int cli_parse_time(const char *s, time_t *ret, bool *ret_zero);

/* "2006/01/02 15:04 MST" in local time (lxc info). buf holds 64. Returns buf, or "" when s is not
 * a time. */
const char *cli_format_time_local(const char *s, char buf[static 64]);
/* "Jan 2, 2006 at 3:04pm (UTC)" (lxc image list). buf holds 64. */
const char *cli_format_time_upload(const char *s, char buf[static 64]);

/* Percent-encodes one path segment (RFC 3986 §2.3 unreserved characters pass), so "debian/bookworm"
 * becomes "debian%2Fbookworm". Caller frees; NULL on OOM. */
char *cli_escape_path_segment(const char *s);

/* Upper-cases an ASCII string in place and returns it. */
char *cli_ascii_upper(char *s);
