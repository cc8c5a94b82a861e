/* The only includer of <nftables/libnftables.h> (STYLE.md): runs a rendered script as one nft
 * transaction. libnftables sends a whole input as a single netlink batch, so a failure anywhere
 * (syntax, or a rule the kernel refuses) leaves the ruleset as it was. It runs exactly the
 * script it is given, in the caller's network namespace; net-acl.c guarantees that the script
 * only creates, deletes and fills KIVA's own tables. The script is handed to nft as a file (a
 * memfd) rather than a buffer because nft 1.0.6 reports errors in buffers against the first
 * line of the input; from a file it names the right line and quotes it. A context per call:
 * nothing is shared between threads or cached across calls (~1-2 ms per apply). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nftables/libnftables.h>

#include "basic-error.h"
#include "basic-macro.h"
#include "net.h"

/* nft's error text is "<file>:<line>:<cols>: Error: <what>\n<source line>\n<carets>\n", once
 * per error. Keeps the first error and its source line (trimmed), joined by " at: ", with the
 * memfd path replaced by "line". */
static void error_summary(const char *text, const char *path, char *buf, size_t size)
{
	const char *l1 = text, *e1, *l2, *e2;
	const char *prefix = "";
	size_t plen = strlen(path);

	while (*l1 == '\n' || *l1 == ' ' || *l1 == '\t')
		l1++;
	if (plen > 0 && strncmp(l1, path, plen) == 0 && l1[plen] == ':') {
		l1 += plen + 1;
		prefix = "line ";
	}
	e1 = strchr(l1, '\n');
	if (!e1) {
		snprintf(buf, size, "%s%s", prefix, l1);
		return;
	}
	l2 = e1 + 1;
	while (*l2 == ' ' || *l2 == '\t')
		l2++;
	e2 = strchr(l2, '\n');
	if (!e2)
		e2 = l2 + strlen(l2);
	while (e2 > l2 && (e2[-1] == ' ' || e2[-1] == '\t'))
		e2--;
	/* a second line of carets only, or another error, is not a source line */
	if (e2 == l2 || strspn(l2, "^~ ") >= (size_t)(e2 - l2) ||
	    (plen > 0 && strncmp(l2, path, plen) == 0))
		snprintf(buf, size, "%s%.*s", prefix, (int)(e1 - l1), l1);
	else
		snprintf(buf, size, "%s%.*s at: %.*s", prefix, (int)(e1 - l1), l1, (int)(e2 - l2),
			 l2);
}

/* Writes script into a sealed-off memfd; returns its fd or -errno. */
static int script_memfd(const char *script)
{
	size_t len = strlen(script), off = 0;
	int fd = memfd_create("kiva-nft", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, script + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;

			close(fd);
			return r;
		}
		off += (size_t)n;
	}
	return fd;
}

/* A context per apply: creating one costs a few ms, but keeping one holds ~4 MiB of parser
 * and cache memory in an idle kivad (DESIGN.md §11: ≤ 5 MiB). kivad applies only changed
 * rulesets, so this runs on network and ACL changes, not on every start. */
static struct nft_ctx *new_ctx(void)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);

	if (ctx && (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)) {
		nft_ctx_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

static void ctx_freep(struct nft_ctx **ctx)
{
	if (*ctx)
		nft_ctx_free(*ctx);
}

int net_nft_apply(const char *script, struct kiva_error *reterr)
{
	__attribute__((cleanup(ctx_freep))) struct nft_ctx *ctx = NULL;
	const char *errtext;
	char summary[400], path[64] = "";
	int r, code, fd;

	if (!script)
		return kiva_error_set(reterr, -EINVAL, "No nftables script");
	ctx = new_ctx();
	if (!ctx)
		return kiva_error_set(reterr, -ENOMEM, "Failed to create an nftables context");

	fd = script_memfd(script);
	if (fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		r = nft_run_cmd_from_filename(ctx, path);
		close(fd);
	} else {
		r = nft_run_cmd_from_buffer(ctx, script); /* same batch, vaguer errors */
	}
	/* reading a buffer empties it for the next run */
	(void)nft_ctx_get_output_buffer(ctx);
	errtext = nft_ctx_get_error_buffer(ctx);
	if (r == 0)
		return 0;

	error_summary(errtext && errtext[0] ? errtext : "unknown error", path, summary,
		      sizeof(summary));
	/* nft reports kernel errors by strerror text only: recover the ones a caller can act on */
	if (strstr(summary, "Operation not permitted"))
		code = -EPERM;
	else if (strstr(summary, "syntax error"))
		code = -EINVAL;
	else
		code = -EIO;
	return kiva_error_set(reterr, code, "Failed to apply nftables rules: %s", summary);
}
