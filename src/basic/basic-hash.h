/* SHA-256 (image fingerprints). */
#pragma once

#include <stddef.h>

struct sha256_ctx {
	unsigned char state[256] __attribute__((aligned(64)));
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
/* Writes 64 hex chars + NUL into hex. */
void sha256_final_hex(struct sha256_ctx *ctx, char hex[static 65]);
/* Hashes a whole file. Returns 0 or -errno. */
int sha256_file_hex(const char *path, char hex[static 65]);
