// make_dmg_seed RAW OUT CODEC: a UDIF image of RAW with CODEC chunks (zlib,
// raw, bzip2, adc), through the tests' builder (tests/support/dmg_builder.h);
// CODEC "plist" writes only the image's XML property list (zlib chunks).
// Used by scripts/fuzz-seeds; not installed, not a product feature.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/support/dmg_builder.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: make_dmg_seed RAW OUT zlib|raw|bzip2|adc|plist\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::vector<uint8_t> disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  vdisk::test::DmgBuildOptions o;
  std::string c = argv[3];
  o.codec = c == "raw" ? 1 : c == "bzip2" ? 0x80000006 : c == "adc" ? 0x80000004 : 0x80000005;
  o.partitions = {64, 512};
  std::vector<uint8_t> dmg = vdisk::test::make_dmg(disk, o);
  if (c == "plist") {
    // Between the data fork and the 512-byte koly trailer.
    std::string all(dmg.begin(), dmg.end() - 512);
    dmg.assign(all.begin() + static_cast<std::ptrdiff_t>(all.find("<?xml")), all.end());
  }
  std::ofstream out(argv[2], std::ios::binary);
  out.write(reinterpret_cast<const char*>(dmg.data()), static_cast<std::streamsize>(dmg.size()));
  return out ? 0 : 1;
}
