/* libFuzzer harness: the store's state machine applies whatever a Raft peer sends. Any byte
 * string must be applied or refused without crashing, and a refusal must leave the state as it
 * was (checked through the snapshot). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct store_fsm fsm;
	static int ready;
	char *before = NULL, *after = NULL;
	size_t blen, alen;
	char err[256];
	int r;

	if (!ready) {
		if (store_fsm_init(&fsm) < 0)
			abort();
		ready = 1;
	}
	if (store_fsm_snapshot(&fsm, &before, &blen) < 0)
		abort();
	r = store_fsm_apply(&fsm, (const char *)data, size, err, sizeof(err));
	if (r < 0) {
		if (store_fsm_snapshot(&fsm, &after, &alen) < 0)
			abort();
		assert(alen == blen && memcmp(before, after, blen) == 0);
		free(after);
	}
	free(before);
	/* keep the state small so runs stay fast */
	if (fsm.applied % 256 == 255) {
		store_fsm_done(&fsm);
		ready = 0;
	}
	return 0;
}
