/* SHA-256 through libsodium's crypto_hash_sha256: the one include of <sodium.h> outside the
 * secrets module. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <unistd.h>

#include "basic-hash.h"
#include "basic-macro.h"

_Static_assert(sizeof(crypto_hash_sha256_state) <= sizeof(struct sha256_ctx), "sha256 state");

void sha256_init(struct sha256_ctx *ctx)
{
	crypto_hash_sha256_init((crypto_hash_sha256_state *)ctx->state);
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len)
{
	crypto_hash_sha256_update((crypto_hash_sha256_state *)ctx->state, data, len);
}

void sha256_final_hex(struct sha256_ctx *ctx, char hex[static 65])
{
	unsigned char out[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_final((crypto_hash_sha256_state *)ctx->state, out);
	for (size_t i = 0; i < sizeof(out); i++)
		sprintf(hex + 2 * i, "%02x", out[i]);
	hex[64] = 0;
}

int sha256_file_hex(const char *path, char hex[static 65])
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct sha256_ctx ctx;
	unsigned char buf[65536];

	if (fd < 0)
		return -errno;
	sha256_init(&ctx);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		sha256_update(&ctx, buf, (size_t)n);
	}
	sha256_final_hex(&ctx, hex);
	return 0;
}
