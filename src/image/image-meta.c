/* metadata.yaml of LXD images, read with a small purpose-built parser for the subset LXD writes
 * (go-yaml output of api.ImageMetadata):
 *
 *   architecture: x86_64
 *   creation_date: 1700000000
 *   expiry_date: 1800000000
 *   properties:
 *     description: Debian bookworm amd64 (20240101_05:24)
 *     os: Debian
 *     release: "12"
 *   templates:
 *     /etc/hostname:
 *       when:
 *       - create
 *       template: hostname.tpl
 *
 * Only top-level scalars and the first level of `properties:` are interpreted; deeper blocks are
 * skipped. Scalars follow YAML 1.2 §7.3 (double-quoted with escapes, single-quoted with '')
 * and §7.3.3 (plain, ended by " #"). Also image_dir_size (du -sb). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "image-internal.h"
#include "image.h"

void image_meta_done(struct image_meta *m)
{
	if (!m)
		return;
	free(m->architecture);
	free(m->os);
	free(m->release);
	free(m->description);
	*m = (struct image_meta){0};
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Appends code point cp as UTF-8. out has room for 4 bytes. */
static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* True when only blanks and possibly a comment follow. */
bool image_yaml__rest_is_empty(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && is_blank(s[i]))
		i++;
	return i == n || s[i] == '#';
}

static int double_quoted(const char *file, const char *s, size_t n, unsigned lineno, char **ret,
			 struct kiva_error *reterr)
{
	/* Escapes never grow the text: \uXXXX (6 bytes) is at most 3 bytes of UTF-8. */
	cleanup_free char *out = malloc(n + 1);
	size_t o = 0, i = 1;

	if (!out)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (; i < n && s[i] != '"'; i++) {
		uint32_t cp = 0;
		int digits = 0;

		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		if (++i >= n)
			break;
		switch (s[i]) {
		case '0':
			out[o++] = '\0';
			continue;
		case 'a':
			out[o++] = '\a';
			continue;
		case 'b':
			out[o++] = '\b';
			continue;
		case 't':
			out[o++] = '\t';
			continue;
		case 'n':
			out[o++] = '\n';
			continue;
		case 'v':
			out[o++] = '\v';
			continue;
		case 'f':
			out[o++] = '\f';
			continue;
		case 'r':
			out[o++] = '\r';
			continue;
		case 'e':
			out[o++] = '\x1b';
			continue;
		case ' ':
			out[o++] = ' ';
			continue;
		case '"':
			out[o++] = '"';
			continue;
		case '/':
			out[o++] = '/';
			continue;
		case '\\':
			out[o++] = '\\';
			continue;
		case 'x':
			digits = 2;
			break;
		case 'u':
			digits = 4;
			break;
		case 'U':
			digits = 8;
			break;
		default:
			return kiva_error_set(reterr, -EINVAL, "%s line %u: unknown escape '\\%c'",
					      file, lineno, s[i]);
		}
		for (int k = 0; k < digits; k++) {
			int h = ++i < n ? hexval(s[i]) : -1;

			if (h < 0)
				return kiva_error_set(reterr, -EINVAL, "%s line %u: bad hex escape",
						      file, lineno);
			cp = cp * 16 + (uint32_t)h;
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return kiva_error_set(reterr, -EINVAL, "%s line %u: bad unicode escape",
					      file, lineno);
		o += utf8_put(out + o, cp);
	}
	if (i >= n)
		return kiva_error_set(reterr, -EINVAL, "%s line %u: unterminated quoted string",
				      file, lineno);
	if (!image_yaml__rest_is_empty(s + i + 1, n - i - 1))
		return kiva_error_set(reterr, -EINVAL, "%s line %u: text after the closing quote",
				      file, lineno);
	if (memchr(out, 0, o))
		return kiva_error_set(reterr, -EINVAL, "%s line %u: NUL in a string", file, lineno);
	out[o] = 0;
	*ret = TAKE_PTR(out);
	return 0;
}

static int single_quoted(const char *file, const char *s, size_t n, unsigned lineno, char **ret,
			 struct kiva_error *reterr)
{
	cleanup_free char *out = malloc(n + 1);
	size_t o = 0, i = 1;

	if (!out)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (; i < n; i++) {
		if (s[i] == '\'') {
			if (i + 1 < n && s[i + 1] == '\'') {
				out[o++] = '\'';
				i++;
				continue;
			}
			break;
		}
		out[o++] = s[i];
	}
	if (i >= n)
		return kiva_error_set(reterr, -EINVAL, "%s line %u: unterminated quoted string",
				      file, lineno);
	if (!image_yaml__rest_is_empty(s + i + 1, n - i - 1))
		return kiva_error_set(reterr, -EINVAL, "%s line %u: text after the closing quote",
				      file, lineno);
	out[o] = 0;
	*ret = TAKE_PTR(out);
	return 0;
}

/* Parses the scalar s[0..n) (the text after "key: ", up to the end of the line). */
int image_yaml__scalar(const char *file, const char *s, size_t n, unsigned lineno, char **ret,
		       struct kiva_error *reterr)
{
	char *v;

	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	if (n > 0 && s[0] == '"')
		return double_quoted(file, s, n, lineno, ret, reterr);
	if (n > 0 && s[0] == '\'')
		return single_quoted(file, s, n, lineno, ret, reterr);
	if (n > 0 && strchr("[]{}&*!|>%@`", s[0]))
		return kiva_error_set(
			reterr, -EINVAL,
			"%s line %u: unsupported YAML value (only plain or quoted scalars)", file,
			lineno);
	/* Plain scalar: a comment starts at " #". */
	for (size_t i = 1; i < n; i++) {
		if (s[i] == '#' && is_blank(s[i - 1])) {
			n = i;
			break;
		}
	}
	if (n > 0 && s[0] == '#')
		n = 0;
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	v = strndup(s, n);
	if (!v)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	*ret = v;
	return 0;
}

/* True when the value is a block scalar header: "|", "|-", ">+2", ... */
bool image_yaml__block_scalar(const char *s, size_t n)
{
	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	if (n == 0 || (s[0] != '|' && s[0] != '>'))
		return false;
	for (size_t i = 1; i < n; i++) {
		if (s[i] == '#' && is_blank(s[i - 1]))
			break;
		if (!strchr("+-123456789 \t", s[i]))
			return false;
	}
	return true;
}

/* Splits "key: value" / "key:" at the colon that ends the key. Returns the key length or -1. */
ssize_t image_yaml__split_key(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (s[i] == '_' || s[i] == '-' || s[i] == '.' || s[i] == '/' ||
			 (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			 (s[i] >= '0' && s[i] <= '9')))
		i++;
	if (i == 0 || i >= n || s[i] != ':' || (i + 1 < n && !is_blank(s[i + 1])))
		return -1;
	return (ssize_t)i;
}

static bool key_is(const char *s, size_t n, const char *key)
{
	return strlen(key) == n && memcmp(s, key, n) == 0;
}

static int set_scalar(char **field, const char *s, size_t n, unsigned lineno,
		      struct kiva_error *reterr)
{
	char *v = NULL;
	int r = image_yaml__scalar("metadata.yaml", s, n, lineno, &v, reterr);

	if (r < 0)
		return r;
	free(*field);
	*field = v;
	return 0;
}

int image_meta_parse(const char *text, size_t len, struct image_meta *ret,
		     struct kiva_error *reterr)
{
	struct image_meta m = {0};
	enum { TOP, PROPERTIES, SKIP } section = TOP;
	size_t pos = 0, prop_indent = 0;
	unsigned lineno = 0;
	int r = 0;

	if (len > IMAGE_META_MAX_BYTES)
		return kiva_error_set(reterr, -EFBIG, "metadata.yaml is larger than %d bytes",
				      IMAGE_META_MAX_BYTES);
	if (memchr(text, 0, len))
		return kiva_error_set(reterr, -EINVAL, "metadata.yaml is not text (NUL byte)");

	while (pos < len && r >= 0) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos, indent = 0;
		ssize_t klen;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		while (indent < n && line[indent] == ' ')
			indent++;
		if (indent < n && line[indent] == '\t') {
			r = kiva_error_set(
				reterr, -EINVAL,
				"metadata.yaml line %u: tabs are not allowed for indentation",
				lineno);
			break;
		}
		if (indent == n || line[indent] == '#')
			continue; /* blank or comment */
		if (indent == 0 && (key_is(line, n, "---") || key_is(line, n, "...")))
			continue;

		if (indent > 0) {
			if (section == TOP) {
				r = kiva_error_set(reterr, -EINVAL,
						   "metadata.yaml line %u: unexpected indentation",
						   lineno);
				break;
			}
			if (section == SKIP)
				continue;
			if (prop_indent == 0)
				prop_indent = indent;
			if (indent > prop_indent)
				continue; /* nested under a property: not ours */
			if (indent < prop_indent) {
				r = kiva_error_set(
					reterr, -EINVAL,
					"metadata.yaml line %u: inconsistent indentation", lineno);
				break;
			}
			klen = image_yaml__split_key(line + indent, n - indent);
			if (klen < 0) {
				r = kiva_error_set(
					reterr, -EINVAL,
					"metadata.yaml line %u: expected 'key: value' under properties",
					lineno);
				break;
			}
			const char *k = line + indent, *v = k + klen + 1;
			size_t vn = n - indent - (size_t)klen - 1;

			/* Block scalars (go-yaml writes multi-line strings as |-): skipped, their
			 * lines are more indented and ignored above. */
			if (image_yaml__block_scalar(v, vn))
				continue;
			if (key_is(k, (size_t)klen, "os"))
				r = set_scalar(&m.os, v, vn, lineno, reterr);
			else if (key_is(k, (size_t)klen, "release"))
				r = set_scalar(&m.release, v, vn, lineno, reterr);
			else if (key_is(k, (size_t)klen, "description"))
				r = set_scalar(&m.description, v, vn, lineno, reterr);
			continue;
		}

		klen = image_yaml__split_key(line, n);
		if (klen < 0) {
			r = kiva_error_set(reterr, -EINVAL,
					   "metadata.yaml line %u: expected 'key: value'", lineno);
			break;
		}
		const char *v = line + klen + 1;
		size_t vn = n - (size_t)klen - 1;

		/* A key with a nested block (or a block scalar) owns the indented lines after it;
		 * after a scalar value, indentation is an error. */
		section = image_yaml__rest_is_empty(v, vn) || image_yaml__block_scalar(v, vn) ? SKIP
											      : TOP;
		if (key_is(line, (size_t)klen, "architecture")) {
			r = set_scalar(&m.architecture, v, vn, lineno, reterr);
		} else if (key_is(line, (size_t)klen, "creation_date")) {
			cleanup_free char *s = NULL;
			int64_t date;

			r = image_yaml__scalar("metadata.yaml", v, vn, lineno, &s, reterr);
			if (r >= 0 && parse_int64(s, INT64_MIN, INT64_MAX, &date) < 0)
				r = kiva_error_set(
					reterr, -EINVAL,
					"metadata.yaml line %u: creation_date is not an integer",
					lineno);
			if (r >= 0)
				m.creation_date = date;
		} else if (key_is(line, (size_t)klen, "properties")) {
			if (image_yaml__rest_is_empty(v, vn)) {
				section = PROPERTIES;
				prop_indent = 0;
			} else {
				/* Only the empty flow map is accepted inline. */
				size_t i = 0;

				while (i < vn && is_blank(v[i]))
					i++;
				if (vn - i < 2 || v[i] != '{' || v[i + 1] != '}' ||
				    !image_yaml__rest_is_empty(v + i + 2, vn - i - 2))
					r = kiva_error_set(
						reterr, -EINVAL,
						"metadata.yaml line %u: properties must be a block map",
						lineno);
			}
		}
	}
	if (r >= 0 && (!m.architecture || !m.architecture[0]))
		r = kiva_error_set(reterr, -EINVAL, "metadata.yaml has no architecture");
	if (r < 0) {
		image_meta_done(&m);
		return r;
	}
	*ret = m;
	return 0;
}

int image_meta_read(const char *dir, struct image_meta *ret, struct kiva_error *reterr)
{
	cleanup_free char *path = strf("%s/metadata.yaml", dir);
	cleanup_free char *buf = NULL;
	cleanup_close int fd = -EBADF;
	size_t len = 0;
	struct stat st;

	if (!path)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return kiva_error_set(reterr, -ENOENT, "not an LXD image: no metadata.yaml in '%s'",
				      dir);
	if (fd < 0)
		return kiva_error_set(reterr, -errno, "Failed to open '%s': %m", path);
	if (fstat(fd, &st) < 0)
		return kiva_error_set(reterr, -errno, "Failed to stat '%s': %m", path);
	if (!S_ISREG(st.st_mode))
		return kiva_error_set(reterr, -EINVAL, "metadata.yaml is not a regular file");
	if (st.st_size > IMAGE_META_MAX_BYTES)
		return kiva_error_set(reterr, -EFBIG, "metadata.yaml is larger than %d bytes",
				      IMAGE_META_MAX_BYTES);
	buf = malloc(IMAGE_META_MAX_BYTES + 2);
	if (!buf)
		return kiva_error_set(reterr, -ENOMEM, "Out of memory");
	for (;;) {
		ssize_t n = read(fd, buf + len, IMAGE_META_MAX_BYTES + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kiva_error_set(reterr, -errno, "Failed to read '%s': %m", path);
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > IMAGE_META_MAX_BYTES)
			return kiva_error_set(reterr, -EFBIG,
					      "metadata.yaml is larger than %d bytes",
					      IMAGE_META_MAX_BYTES);
	}
	buf[len] = 0;
	return image_meta_parse(buf, len, ret, reterr);
}

struct inode_ref {
	dev_t dev;
	ino_t ino;
	uint64_t size;
};

struct size_walk {
	uint64_t total;
	struct inode_ref *links; /* files with st_nlink > 1, counted once at the end */
	size_t n_links, cap_links;
};

static int size_at(int dfd, const char *name, struct size_walk *w)
{
	struct stat st;
	int r = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		if (w->n_links == w->cap_links) {
			size_t cap = w->cap_links ? w->cap_links * 2 : 64;
			struct inode_ref *nl = realloc(w->links, cap * sizeof(*nl));

			if (!nl)
				return -ENOMEM;
			w->links = nl;
			w->cap_links = cap;
		}
		w->links[w->n_links++] =
			(struct inode_ref){st.st_dev, st.st_ino, (uint64_t)st.st_size};
		return 0;
	}
	w->total += (uint64_t)st.st_size;
	if (!S_ISDIR(st.st_mode))
		return 0;

	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		r = size_at(dirfd(d), de->d_name, w);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int inode_ref_cmp(const void *a, const void *b)
{
	const struct inode_ref *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return 0;
}

int image_dir_size(const char *dir, uint64_t *ret)
{
	struct size_walk w = {0};
	struct stat st;
	int r;

	if (lstat(dir, &st) < 0)
		return -errno; /* below the top, files vanishing during the walk are skipped */
	r = size_at(AT_FDCWD, dir, &w);
	if (r >= 0) {
		if (w.n_links > 1)
			qsort(w.links, w.n_links, sizeof(*w.links), inode_ref_cmp);
		for (size_t i = 0; i < w.n_links; i++)
			if (i == 0 || inode_ref_cmp(&w.links[i - 1], &w.links[i]) != 0)
				w.total += w.links[i].size;
		*ret = w.total;
	}
	free(w.links);
	return r;
}
