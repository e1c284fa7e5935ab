// libFuzzer target for the VMDK text descriptor parser (formats/vmdk/,
// branch `vmdk`). Built automatically by fuzz/CMakeLists.txt once
// formats/vmdk/vmdk_descriptor.h exists on the branch being built (see
// fuzz/README.md "Pending targets"). The whole VMDK reader (sparse, stream
// and flat extents, embedded descriptors) is fuzzed by the `vmdk` target
// built from fuzz_image.cpp, which is added at the same time.
//
// The input is descriptor text: the probe is asked, the text is parsed, and a
// parsed descriptor is rendered and parsed again (render_descriptor output
// must always be accepted). Errors (vdisk::Error) are the expected outcome for
// bad input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "formats/core/error.h"
#include "formats/vmdk/vmdk_descriptor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdisk::vmdk;
  (void)looks_like_descriptor(data, size);
  std::string text(reinterpret_cast<const char*>(data), size);
  Descriptor d;
  try {
    d = parse_descriptor(text, "fuzz.vmdk", 0);
  } catch (const vdisk::Error&) {
    return 0;
  }
  (void)d.total_sectors();
  (void)d.ddb_value("ddb.adapterType");
  for (const ExtentLine& e : d.extents) (void)extent_kind_name(e.kind);
  // What we write must read back: a descriptor we render and cannot parse
  // is a bug in one of the two.
  std::string again = render_descriptor(d);
  try {
    Descriptor d2 = parse_descriptor(again, "fuzz-rendered.vmdk", 0);
    if (d2.extents.size() != d.extents.size()) std::abort();
  } catch (const vdisk::Error&) {
    std::abort();
  }
  return 0;
}
