/* String helpers: formatted allocation, string vectors, size and number parsing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* asprintf that returns NULL on failure. Caller frees. */
char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* w is one of the words of list, separated by blanks or newlines ("cpu io memory\n"). */
bool str_has_word(const char *list, const char *w);

/* NULL-terminated string vectors. strv_push takes ownership of s (freed on failure). */
size_t strv_length(char *const *v);
int strv_push(char ***v, char *s);

/* Parses a decimal integer in [min, max]; whole string must match. Returns 0 or -EINVAL/-ERANGE. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret);

/* Parses a byte size as LXD does: "512", "64MB", "1GiB", "1.5GB" (kB/MB/GB/TB/PB = powers of 1000,
 * KiB/MiB/GiB/TiB/PiB = powers of 1024, "B" optional). Returns 0, -EINVAL or -ERANGE. */
int parse_size_bytes(const char *s, uint64_t *ret);

/* Formats bytes as LXD's CLI does ("64.00MiB"). buf must hold 32 bytes. */
const char *format_bytes(uint64_t bytes, char buf[static 32]);

/* Random hex string of n bytes of entropy (2n chars) from getrandom(2). buf holds 2n+1. */
int random_hex(char *buf, size_t n);

/* Current UTC time in RFC 3339 with nanoseconds, as LXD prints it. buf holds 40. */
const char *now_rfc3339(char buf[static 40]);
