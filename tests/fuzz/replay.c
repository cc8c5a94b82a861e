/* Runs a libFuzzer harness over files given on the command line (the seed corpus), for builds
 * without libFuzzer: `make check` replays every corpus this way so harnesses never rot. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic-fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		char *buf = NULL;
		size_t len = 0;

		if (read_file(argv[i], 64 * 1024 * 1024, &buf, &len) < 0) {
			fprintf(stderr, "cannot read %s\n", argv[i]);
			return 1;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
		n++;
	}
	printf("replayed %d inputs\n", n);
	return 0;
}
