#include <cstring>

#include "formats/core/format.h"
#include "formats/dmg/dmg_layout.h"
#include "formats/dmg/dmg_reader.h"

namespace vdisk::dmg {

namespace {
// The koly trailer in the last 512 bytes; encrypted and sparse Apple images
// by their magic, so they are refused by name, never read as raw.
int probe(const ProbeInput& in) {
  if (in.head.size() >= 8 && std::memcmp(in.head.data(), "encrcdsa", 8) == 0)
    return kProbeSignature;
  if (in.head.size() >= 4 && std::memcmp(in.head.data(), "sprs", 4) == 0) return kProbeSignature;
  if (in.tail.size() >= 8 && std::memcmp(in.tail.data() + in.tail.size() - 8, "cdsaencr", 8) == 0)
    return kProbeSignature;
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
