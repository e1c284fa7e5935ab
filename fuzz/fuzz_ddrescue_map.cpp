// libFuzzer entry point for the GNU ddrescue mapfile parser (views/ddrescue/).
#include "fuzz/fuzz_text_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return vdisk::fuzz::run_ddrescue_map_input(data, size);
}
