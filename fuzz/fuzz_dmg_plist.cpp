// libFuzzer entry point for the DMG XML property list reader and base64
// decoder (formats/dmg/dmg_plist.h). The whole DMG reader is fuzzed by the
// `dmg` target (fuzz_image.cpp).
#include "fuzz/fuzz_text_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return vdisk::fuzz::run_dmg_plist_input(data, size);
}
