/* libFuzzer harness: instance backups as the importer unpacks them (kiva-archive-helper
 * backup-import), and the same bytes as backup/index.yaml text. Whatever the input, the import
 * succeeds inside the target directory or fails with a message and leaves nothing behind: the
 * target, which did not exist, does not exist afterwards. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic-fs.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct image_backup_limits lim = {
		.max_bytes = 64 * 1024 * 1024,
		.max_entries = 10000,
		.shift_from = IMAGE_BACKUP_SHIFT_AUTO,
		.shift_to = 100000,
	};
	struct image_backup_index index = {0};
	struct image_backup_info info = {0};
	char base[] = "/tmp/kiva-fuzz-backup-XXXXXX";
	char tar[64], dir[64];
	struct kiva_error err = {0};
	struct stat st;
	FILE *f;
	int r;

	if (image_backup_index_parse((const char *)data, size, &index, &err) >= 0)
		image_backup_index_done(&index);
	else
		assert(err.msg[0]);

	if (!mkdtemp(base))
		abort();
	snprintf(tar, sizeof(tar), "%s/in.tar", base);
	snprintf(dir, sizeof(dir), "%s/out", base);
	f = fopen(tar, "w");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	err = (struct kiva_error){0};
	r = image_backup_import(tar, dir, &lim, &info, &err);
	if (r < 0) {
		assert(err.msg[0]);
		assert(lstat(dir, &st) < 0);
	} else {
		assert(info.index.name && info.backup_yaml);
		image_backup_info_done(&info);
	}
	rm_rf(base);
	return 0;
}
