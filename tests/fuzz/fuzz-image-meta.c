/* libFuzzer harness: metadata.yaml of an imported image (untrusted: it comes from the tarball). */
#include <stdint.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_meta meta = {0};
	struct kiva_error err = {0};

	if (image_meta_parse((const char *)data, size, &meta, &err) == 0)
		image_meta_done(&meta);
	return 0;
}
