/* Unit tests of what the kiva snapshot, restore, rename, copy, export, import and publish verbs
 * work out client side (src/cli/cli-snap.c): lxc's NAME/SNAP names, `kiva snapshot`'s sub-command
 * or short form, the request bodies, the default export file, the backup name in an operation, and
 * the snapshot table rows. Plus the client paths those verbs take against a forked unix-socket
 * server: a large export streamed to a file with flat memory (Content-Length and chunked), an
 * error instead of a download, and an upload with X-LXD-name (import). No root. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic-macro.h"
#include "basic-string.h"
#include "cli-client.h"
#include "cli-output.h"
#include "cli-snap.h"

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (!j)
		fail_msg("bad test JSON: %s", err.text);
	return j;
}

static void assert_json(const json_t *got, const char *want_text)
{
	cleanup_json json_t *want = load(want_text);
	cleanup_free char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
	cleanup_free char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);

	assert_non_null(g);
	assert_string_equal(g, w);
}

/* ---- NAME/SNAP ---------------------------------------------------------------------------- */

static void test_split(void **state)
{
	static const struct {
		const char *in, *inst, *snap;
	} ok[] = {
		{"c1", "c1", NULL},
		{"c1/snap0", "c1", "snap0"},
		{"local:c1/snap0", "c1", "snap0"},
		{"local:c1", "c1", NULL},
		{"web-1/before upgrade", "web-1", "before upgrade"},
	};
	static const char *const bad[] = {"", "/snap0", "c1/", "c1/a/b", "local:", "local:/s"};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		cleanup_free char *inst = NULL, *snap = NULL;

		assert_int_equal(cli_snapshot_split(ok[i].in, &inst, &snap, NULL), 0);
		assert_string_equal(inst, ok[i].inst);
		if (ok[i].snap)
			assert_string_equal(snap, ok[i].snap);
		else
			assert_null(snap);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct kiva_error err = {0};
		char *inst = NULL, *snap = NULL;

		assert_int_equal(cli_snapshot_split(bad[i], &inst, &snap, &err), -EINVAL);
		assert_null(inst);
		assert_null(snap);
		assert_true(startswith(err.msg, "Invalid "));
	}
}

static void test_sub_index(void **state)
{
	static const struct {
		const char *argv[6];
		int want;
	} cases[] = {
		{{"snapshot", "c1", NULL}, 0},
		{{"snapshot", "c1", "snap0", NULL}, 0},
		{{"snapshot", "c1", "list", NULL}, 0}, /* a snapshot named list */
		{{"snapshot", "list", "c1", NULL}, 1},
		{{"snapshot", "--debug", "delete", "c1", "s", NULL}, 2},
		{{"snapshot", "--socket", "/tmp/s", "rename", "c1", NULL}, 3},
		{{"snapshot", "--socket", "list", "c1", NULL}, 0}, /* "list" is the socket */
		{{"snapshot", "--stateful", "c1", NULL}, 0},
		{{"snapshot", "--", "list", NULL}, 0}, /* an instance named list */
		{{"snapshot", "create", "c1", NULL}, 1},
		{{"snapshot", "restore", "c1", "s", NULL}, 1},
		{{"snapshot", "show", "c1/s", NULL}, 1},
		{{"snapshot", NULL}, 0},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int argc = 0;

		while (cases[i].argv[argc])
			argc++;
		assert_int_equal(cli_snapshot_sub_index(argc, (char *const *)cases[i].argv),
				 cases[i].want);
	}
}

static void test_restore_name(void **state)
{
	struct kiva_error err = {0};
	const char *snap = NULL;

	assert_int_equal(cli_restore_snapshot_name("c1", "snap0", &snap, NULL), 0);
	assert_string_equal(snap, "snap0");
	/* lxc restore c1 c1/snap0 */
	assert_int_equal(cli_restore_snapshot_name("c1", "c1/snap0", &snap, NULL), 0);
	assert_string_equal(snap, "snap0");
	snap = NULL;
	assert_int_equal(cli_restore_snapshot_name("c1", "c2/snap0", &snap, &err), -EINVAL);
	assert_null(snap);
	assert_string_equal(err.msg, "'c2/snap0' is not a snapshot of instance 'c1'");
	assert_int_equal(cli_restore_snapshot_name("c1", "c10/snap0", &snap, &err), -EINVAL);
	assert_int_equal(cli_restore_snapshot_name("c10", "c1/snap0", &snap, &err), -EINVAL);
	assert_int_equal(cli_restore_snapshot_name("c1", "", &snap, &err), -EINVAL);
	assert_int_equal(cli_restore_snapshot_name("c1", "c1/", &snap, &err), -EINVAL);
	assert_int_equal(cli_restore_snapshot_name("c1", "c1/a/b", &snap, &err), -EINVAL);
}

static void test_rename(void **state)
{
	struct kiva_error err = {0};
	char *inst = NULL, *old = NULL, *new_name = NULL;

	assert_int_equal(cli_rename_parse("c1/a", "c1/b", &inst, &old, &new_name, NULL), 0);
	assert_string_equal(inst, "c1");
	assert_string_equal(old, "a");
	assert_string_equal(new_name, "b");
	free(inst);
	free(old);
	free(new_name);

	assert_int_equal(cli_rename_parse("c1/a", "b", &inst, &old, &new_name, NULL), 0);
	assert_string_equal(inst, "c1");
	assert_string_equal(old, "a");
	assert_string_equal(new_name, "b");
	free(inst);
	free(old);
	free(new_name);
	inst = old = new_name = NULL;

	/* instances cannot be renamed */
	assert_int_equal(cli_rename_parse("c1", "c2", &inst, &old, &new_name, &err), -EOPNOTSUPP);
	assert_string_equal(err.msg, "Renaming instances is not supported: kiva rename renames "
				     "snapshots (kiva rename c1/OLD c1/NEW)");
	assert_int_equal(cli_rename_parse("c1/a", "c2/b", &inst, &old, &new_name, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "Invalid new snapshot name, parent must be the same as source");
	assert_int_equal(cli_rename_parse("c1/a", "c1/", &inst, &old, &new_name, &err), -EINVAL);
	assert_int_equal(cli_rename_parse("c1/a", "", &inst, &old, &new_name, &err), -EINVAL);
	assert_null(inst);
	assert_null(old);
	assert_null(new_name);
}

/* ---- request bodies ----------------------------------------------------------------------- */

static void test_copy_body(void **state)
{
	cleanup_json json_t *config = load("{\"limits.memory\": \"64MB\"}");
	cleanup_json json_t *b1 = cli_copy_body("c1", "c2", false, NULL, false, false);
	cleanup_json json_t *b2 = cli_copy_body("c1/snap0", "c3", true, config, true, true);

	assert_json(b1, "{\"name\": \"c2\", \"type\": \"container\", \"source\": {\"type\": "
			"\"copy\", \"source\": \"c1\", \"instance_only\": false}, \"config\": "
			"{}, \"ephemeral\": false}");
	assert_json(b2, "{\"name\": \"c3\", \"type\": \"container\", \"source\": {\"type\": "
			"\"copy\", \"source\": \"c1/snap0\", \"instance_only\": true}, "
			"\"config\": {\"limits.memory\": \"64MB\"}, \"ephemeral\": true, "
			"\"profiles\": []}");
}

static void test_export_names(void **state)
{
	cleanup_free char *f1 = cli_export_default_file("c1", "gzip"),
			  *f2 = cli_export_default_file("c1", "zstd"),
			  *f3 = cli_export_default_file("web-2", "none");
	char name[64], name2[64], t[32];

	assert_string_equal(f1, "c1.tar.gz");
	assert_string_equal(f2, "c1.tar.zst");
	assert_string_equal(f3, "web-2.tar");
	assert_null(cli_export_default_file("c1", "xz"));
	assert_null(cli_export_extension(""));
	assert_null(cli_export_extension("GZIP"));

	assert_int_equal(cli_export_backup_name(name), 0);
	assert_int_equal(cli_export_backup_name(name2), 0);
	assert_int_equal(strlen(name), strlen("kiva-export-") + 16);
	assert_true(startswith(name, "kiva-export-"));
	assert_int_equal(strspn(name + 12, "0123456789abcdef"), 16);
	assert_string_not_equal(name, name2);

	assert_string_equal(cli_format_rfc3339(0, t), "1970-01-01T00:00:00Z");
	assert_string_equal(cli_format_rfc3339(1714557600, t), "2024-05-01T10:00:00Z");
}

static void test_backup_body(void **state)
{
	cleanup_json json_t *b1 =
		cli_export_backup_body("kiva-export-00", 1714557600, 3600, false, "gzip");
	cleanup_json json_t *b2 = cli_export_backup_body("b", 1714557600, 3600, true, "zstd");

	assert_json(b1, "{\"name\": \"kiva-export-00\", \"expires_at\": \"2024-05-01T11:00:00Z\", "
			"\"instance_only\": false, \"optimized_storage\": false, "
			"\"compression_algorithm\": \"gzip\"}");
	assert_json(b2, "{\"name\": \"b\", \"expires_at\": \"2024-05-01T11:00:00Z\", "
			"\"instance_only\": true, \"optimized_storage\": false, "
			"\"compression_algorithm\": \"zstd\"}");
}

static void test_backup_name_from_resources(void **state)
{
	static const struct {
		const char *resources, *want;
	} cases[] = {
		{"{\"backups\": [\"/1.0/instances/c1/backups/kiva-export-ab\"], \"instances\": "
		 "[\"/1.0/instances/c1\"]}",
		 "kiva-export-ab"},
		{"{\"backups\": [\"/1.0/instances/c1/backups/backup%200\"]}", "backup 0"},
		{"{\"backups\": [\"/1.0/instances/c1/backups/b1?project=default\"]}", "b1"},
		{"{\"backups\": [\"b2\"]}", "b2"},
		{"{\"instances\": [\"/1.0/instances/c1\"]}", NULL},
		{"{\"backups\": []}", NULL},
		{"{\"backups\": [\"/1.0/instances/c1/backups/\"]}", NULL},
		{"{\"backups\": [\"/1.0/instances/c1/backups/"
		 "0123456789012345678901234567890123456789012345678901234567890123456789\"]}",
		 NULL},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cleanup_json json_t *res = load(cases[i].resources);
		char buf[64] = "unchanged";
		int r = cli_backup_name_from_resources(res, buf);

		if (cases[i].want) {
			assert_int_equal(r, 0);
			assert_string_equal(buf, cases[i].want);
		} else {
			assert_int_equal(r, -ENOENT);
		}
	}
	{
		char buf[64];

		assert_int_equal(cli_backup_name_from_resources(NULL, buf), -ENOENT);
	}
}

static void test_publish(void **state)
{
	static const char *const args[] = {"local:", "description=web, before", "os=busybox"};
	static const char *const remote[] = {"images:"};
	static const char *const bare[] = {"oops"};
	cleanup_json json_t *props = json_object(), *aliases = load("[{\"name\": \"web\"}]");
	cleanup_json json_t *b1 = NULL, *b2 = NULL;
	struct kiva_error err = {0};

	assert_int_equal(cli_publish_extra_args(args, ARRAY_SIZE(args), props, NULL), 0);
	assert_json(props, "{\"description\": \"web, before\", \"os\": \"busybox\"}");
	assert_int_equal(cli_publish_extra_args(remote, 1, props, &err), -EINVAL);
	assert_string_equal(err.msg, "Remote servers are not supported: 'images:' (only local:)");
	assert_int_equal(cli_publish_extra_args(bare, 1, props, &err), -EINVAL);
	assert_string_equal(err.msg, "Bad key=value pair: oops");

	b1 = cli_publish_body("c1", aliases, true, props, NULL);
	assert_json(b1, "{\"source\": {\"type\": \"instance\", \"name\": \"c1\"}, \"aliases\": "
			"[{\"name\": \"web\"}], \"public\": true, \"properties\": "
			"{\"description\": \"web, before\", \"os\": \"busybox\"}}");
	b2 = cli_publish_body("c1/snap0", NULL, false, NULL, "none");
	assert_json(b2, "{\"source\": {\"type\": \"snapshot\", \"name\": \"c1/snap0\"}, "
			"\"aliases\": [], \"public\": false, \"properties\": {}, "
			"\"compression_algorithm\": \"none\"}");
}

/* ---- snapshot tables ---------------------------------------------------------------------- */

static void test_snapshot_rows(void **state)
{
	cleanup_json json_t *list = load(
		"[{\"name\": \"snap1\", \"created_at\": \"2024-05-01T12:00:00Z\", \"expires_at\": "
		"\"0001-01-01T00:00:00Z\", \"size\": 1572864, \"stateful\": false},"
		" {\"name\": \"b\", \"created_at\": \"2024-05-01T10:00:00.5+00:00\", \"expires_at\": "
		"\"2024-05-08T10:00:00Z\", \"size\": 0, \"stateful\": true},"
		" {\"name\": \"a\", \"created_at\": \"2024-05-01T10:00:00Z\"},"
		" {\"name\": \"z\", \"created_at\": \"2024-05-01T10:00:00.031963163Z\"},"
		" {\"name\": \"y\", \"created_at\": \"2024-05-01T10:00:00.098601312Z\"}]");
	cleanup_json json_t *sorted = NULL;
	struct cli_table *t = NULL;
	/* taken within the same second: in the order of their fractions */
	static const char *const want[5][CLI_SNAPSHOT_COLUMNS] = {
		{"a", "2024/05/01 10:00 UTC", "", "", "NO"},
		{"z", "2024/05/01 10:00 UTC", "", "", "NO"},
		{"y", "2024/05/01 10:00 UTC", "", "", "NO"},
		{"b", "2024/05/01 10:00 UTC", "2024/05/08 10:00 UTC", "0B", "YES"},
		{"snap1", "2024/05/01 12:00 UTC", "", "1.50MiB", "NO"},
	};

	setenv("TZ", "UTC", 1);
	tzset();
	sorted = cli_snapshots_sorted(list);
	assert_non_null(sorted);
	assert_int_equal(json_array_size(sorted), 5);
	assert_null(cli_snapshots_sorted(NULL));

	assert_int_equal(cli_table_new(cli_snapshot_columns, CLI_SNAPSHOT_COLUMNS, &t), 0);
	for (size_t i = 0; i < json_array_size(sorted); i++)
		assert_int_equal(cli_snapshot_row(t, json_array_get(sorted, i)), 0);
	assert_int_equal(t->n_rows, 5);
	for (size_t r = 0; r < 5; r++)
		for (size_t c = 0; c < CLI_SNAPSHOT_COLUMNS; c++)
			assert_string_equal(t->cells[r * CLI_SNAPSHOT_COLUMNS + c], want[r][c]);
	assert_string_equal(t->header[1], "TAKEN AT");
	cli_table_free(t);
}

/* ---- streaming against a forked server ---------------------------------------------------- */

#define EXPORT_BYTES (64u << 20)
#define CHUNKED_BYTES (3u << 20)

static char pattern_byte(uint64_t i)
{
	return (char)('a' + (i * 7 + i / 4096) % 26);
}

/* Reads a request head (and discards a body of Content-Length bytes) from fd into head. */
static int server_read(int fd, char *head, size_t size)
{
	size_t len = 0;
	char *end, *cl;
	uint64_t body = 0, have;

	for (;;) {
		ssize_t n = read(fd, head + len, size - 1 - len);

		if (n <= 0)
			return -1;
		len += (size_t)n;
		head[len] = 0;
		if ((end = strstr(head, "\r\n\r\n")))
			break;
	}
	cl = strstr(head, "Content-Length: ");
	if (cl && cl < end)
		body = strtoull(cl + 16, NULL, 10);
	have = len - (size_t)(end + 4 - head);
	while (have < body) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			return -1;
		have += (uint64_t)n;
	}
	return have == body ? 0 : -1;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Child: 1) a 64 MiB export with Content-Length, 2) a 404 error envelope, 3) a chunked export,
 * 4) an import upload that must carry X-LXD-name and the file as application/octet-stream. */
static int run_server(int lfd)
{
	static char head[65536], buf[1 << 20];
	char hdr[512];
	uint64_t off = 0;
	int c;

	c = accept(lfd, NULL, NULL);
	if (c < 0 || server_read(c, head, sizeof(head)) < 0 ||
	    !startswith(head, "GET /1.0/instances/c1/backups/b0/export HTTP/1.1\r\n"))
		return 10;
	snprintf(hdr, sizeof(hdr),
		 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
		 "%u\r\nConnection: close\r\n\r\n",
		 EXPORT_BYTES);
	if (write_all(c, hdr, strlen(hdr)) < 0)
		return 11;
	while (off < EXPORT_BYTES) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern_byte(off + i);
		if (write_all(c, buf, sizeof(buf)) < 0)
			return 12;
		off += sizeof(buf);
	}
	close(c);

	c = accept(lfd, NULL, NULL);
	if (c < 0 || server_read(c, head, sizeof(head)) < 0)
		return 20;
	{
		const char *body = "{\"type\":\"error\",\"error\":\"Backup 'nope' not found\","
				   "\"error_code\":404}";

		snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 strlen(body), body);
		if (write_all(c, hdr, strlen(hdr)) < 0)
			return 21;
	}
	close(c);

	c = accept(lfd, NULL, NULL);
	if (c < 0 || server_read(c, head, sizeof(head)) < 0)
		return 30;
	snprintf(hdr, sizeof(hdr),
		 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
	if (write_all(c, hdr, strlen(hdr)) < 0)
		return 31;
	for (off = 0; off < CHUNKED_BYTES; off += 100000) {
		size_t n = CHUNKED_BYTES - off < 100000 ? CHUNKED_BYTES - off : 100000;

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern_byte(off + i);
		snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
		if (write_all(c, hdr, strlen(hdr)) < 0 || write_all(c, buf, n) < 0 ||
		    write_all(c, "\r\n", 2) < 0)
			return 32;
	}
	if (write_all(c, "0\r\n\r\n", 5) < 0)
		return 33;
	close(c);

	c = accept(lfd, NULL, NULL);
	if (c < 0 || server_read(c, head, sizeof(head)) < 0)
		return 40;
	if (!startswith(head, "POST /1.0/instances HTTP/1.1\r\n") ||
	    !strstr(head, "\r\nX-LXD-name: c9\r\n") ||
	    !strstr(head, "\r\nX-LXD-pool: default\r\n") ||
	    !strstr(head, "\r\nContent-Type: application/octet-stream\r\n") ||
	    !strstr(head, "\r\nContent-Length: 300000\r\n") || strstr(head, "X-LXD-filename"))
		return 41;
	{
		const char *body = "{\"type\":\"sync\",\"status\":\"Success\",\"status_code\":200,"
				   "\"metadata\":{\"name\":\"c9\"}}";

		snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 strlen(body), body);
		if (write_all(c, hdr, strlen(hdr)) < 0)
			return 42;
	}
	close(c);
	return 0;
}

/* Checks that file holds n bytes of the server's pattern. */
static void assert_pattern_file(const char *file, uint64_t n)
{
	static char buf[1 << 16];
	uint64_t off = 0;
	struct stat st;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, n);
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));

		assert_true(k >= 0);
		if (k == 0)
			break;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != pattern_byte(off + (uint64_t)i))
				fail_msg("byte %llu differs", (unsigned long long)(off + i));
		off += (uint64_t)k;
	}
	close(fd);
	assert_int_equal(off, n);
}

static long maxrss_kib(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_maxrss;
}

static void test_stream_export_import(void **state)
{
	char dir[] = "/tmp/test-cli-snap.XXXXXX", path[128], out[128], up[128];
	const char *hdrs[] = {"X-LXD-name: c9", "X-LXD-pool: default", NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct cli_client *c = NULL;
	struct kiva_error err = {0};
	cleanup_json json_t *meta = NULL;
	struct cli_call call = {.method = "POST",
				.path = "/1.0/instances",
				.upload = true,
				.wait = true,
				.headers = hdrs};
	static char payload[300000];
	long rss_before, rss_after;
	int lfd, fd, status;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	snprintf(out, sizeof(out), "%s/c1.tar.gz", dir);
	snprintf(up, sizeof(up), "%s/up.tar.gz", dir);
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(60);
		_exit(run_server(lfd));
	}
	close(lfd);
	assert_int_equal(cli_client_new(path, false, &c, &err), 0);

	/* 64 MiB arrive and land in the file; the client's memory stays flat */
	rss_before = maxrss_kib();
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(cli_get_raw(c, "/1.0/instances/c1/backups/b0/export", fd, &err), 0);
	close(fd);
	rss_after = maxrss_kib();
	assert_true(rss_after - rss_before < 8 * 1024);
	assert_pattern_file(out, EXPORT_BYTES);

	/* an error response is the server's message, not a file */
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(cli_get_raw(c, "/1.0/instances/c1/backups/nope/export", fd, &err),
			 -ENOENT);
	assert_string_equal(err.msg, "Backup 'nope' not found");
	close(fd);
	assert_pattern_file(out, 0);

	/* chunked */
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(cli_get_raw(c, "/1.0/instances/c1/backups/b1/export", fd, &err), 0);
	close(fd);
	assert_pattern_file(out, CHUNKED_BYTES);

	/* import: the file streamed with the extra headers */
	memset(payload, 'x', sizeof(payload));
	fd = open(up, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, payload, sizeof(payload)), sizeof(payload));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	call.upload_fd = fd;
	call.upload_len = sizeof(payload);
	assert_int_equal(cli_call(c, &call, &meta, &err), 0);
	assert_string_equal(json_get_str(meta, "name", ""), "c9");
	close(fd);

	cli_client_free(c);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(out);
	unlink(up);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* first: it measures the peak memory of the process */
		cmocka_unit_test(test_stream_export_import),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_sub_index),
		cmocka_unit_test(test_restore_name),
		cmocka_unit_test(test_rename),
		cmocka_unit_test(test_copy_body),
		cmocka_unit_test(test_export_names),
		cmocka_unit_test(test_backup_body),
		cmocka_unit_test(test_backup_name_from_resources),
		cmocka_unit_test(test_publish),
		cmocka_unit_test(test_snapshot_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
