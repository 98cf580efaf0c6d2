/* libFuzzer / AFL++ entry: arbitrary bytes as a policy image. */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return sn_fuzz_image_one(data, size);
}
