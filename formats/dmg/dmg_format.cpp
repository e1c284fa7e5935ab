#include <cstring>

#include "formats/core/format.h"
#include "formats/dmg/dmg_layout.h"
#include "formats/dmg/dmg_reader.h"

namespace vdisk::dmg {

namespace {
// The koly trailer in the last 512 bytes. Encrypted and sparse Apple
// images are refused by name by the registry's foreign list
// (formats/foreign.cpp); open_dmg refuses them too under -f dmg.
int probe(const ProbeInput& in) {
  if (in.tail.size() >= kKolySize &&
      std::memcmp(in.tail.data() + in.tail.size() - kKolySize, "koly", 4) == 0)
    return kProbeSignature;
  return 0;
}
}  // namespace

const FormatDescriptor& descriptor() {
  static const FormatDescriptor d{
      .name = "dmg",
      .aliases = {"udif"},
      .description = "Apple UDIF disk image (read: raw, zero, zlib, bzip2, ADC chunks)",
      .extensions = {"dmg"},
      .probe = probe,
      .open = open_dmg,
  };
  return d;
}

}  // namespace vdisk::dmg
