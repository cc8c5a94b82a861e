/* libFuzzer harness: image tarballs as the importer unpacks them (kiva-helper unpack). Whatever
 * the input, unpacking succeeds inside the target directory or fails and leaves it empty. */
#include <assert.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic-fs.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char base[] = "/tmp/kiva-fuzz-XXXXXX";
	char tar[64], dir[64];
	struct kiva_error err = {0};
	FILE *f;
	int r;

	if (!mkdtemp(base))
		abort();
	snprintf(tar, sizeof(tar), "%s/in.tar", base);
	snprintf(dir, sizeof(dir), "%s/out", base);
	f = fopen(tar, "w");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	if (mkdir_p(dir, 0755) < 0)
		abort();
	r = image_unpack(tar, dir, 100000, 64 * 1024 * 1024, &err);
	if (r < 0) {
		assert(err.msg[0]);
		assert(dir_is_empty(dir));
	}
	rm_rf(base);
	return 0;
}
