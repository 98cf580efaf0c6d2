/* libFuzzer / AFL++ entry: policy text through the whole compiler. */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return sn_fuzz_policy_one(data, size);
}
