/* libFuzzer harness: a chunked request body (a file push from LXD's client) as kivad's server
 * decodes it, fed in two pieces split where the input's first byte says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-chunked.h"

static int sink(void *userdata, const void *data, size_t len)
{
	uint64_t *total = userdata;

	(void)data;
	*total += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_chunked c;
	uint64_t total = 0;
	size_t split;
	ssize_t n;

	if (size == 0)
		return 0;
	split = data[0] % size;
	data++;
	size--;
	if (split > size)
		split = size;
	api_chunked_init(&c);
	n = api_chunked_feed(&c, data, split, sink, &total);
	if (n == (ssize_t)split && !api_chunked_done(&c))
		n = api_chunked_feed(&c, data + split, size - split, sink, &total);
	if (n >= 0 && total > size)
		abort(); /* more payload than input */
	return 0;
}
