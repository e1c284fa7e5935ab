// libFuzzer entry point for the VMDK text descriptor parser (formats/vmdk/).
// The whole VMDK reader is fuzzed by the `vmdk` target (fuzz_image.cpp).
#include "fuzz/fuzz_text_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return vdisk::fuzz::run_vmdk_descriptor_input(data, size);
}
