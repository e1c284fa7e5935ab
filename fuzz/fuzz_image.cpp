// libFuzzer entry point for one parser, chosen at build time by
// VDISK_FUZZ_TARGET (a format name, a file system name, or "probe").
#include "fuzz/fuzz_exercise.h"

#ifndef VDISK_FUZZ_TARGET
#error "define VDISK_FUZZ_TARGET"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return vdisk::fuzz::run_fuzz_input(VDISK_FUZZ_TARGET, data, size);
}
