// libFuzzer target for the GNU ddrescue mapfile parser (formats/ddrescue/,
// branch `engine`). Built automatically by fuzz/CMakeLists.txt once
// formats/ddrescue/ddrescue_map.h exists on the branch being built (see
// fuzz/README.md "Pending targets").
//
// The input is mapfile text. It is parsed; when it parses, the invariants the
// header promises are checked (blocks sorted, contiguous from 0), and
// check_covers/bad_areas are asked about disks smaller than, equal to and
// larger than the map. Errors (vdisk::Error) are the expected outcome for
// bad input; a crash, hang or broken invariant is the bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "formats/core/error.h"
#include "formats/ddrescue/ddrescue_map.h"

namespace {

void check_areas(const vdisk::ddrescue::Mapfile& map, uint64_t disk_size) {
  using namespace vdisk::ddrescue;
  std::vector<BadArea> areas = bad_areas(map, disk_size);
  uint64_t prev_end = 0;
  for (const BadArea& a : areas) {
    // Sorted, inside the disk, non-empty, not overlapping.
    if (a.length == 0 || a.start < prev_end || a.start > disk_size ||
        a.length > disk_size - a.start)
      std::abort();
    prev_end = a.start + a.length;
    (void)status_name(a.status);
  }
  if (bad_bytes(areas) > disk_size) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vdisk::ddrescue;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    Mapfile map = parse_mapfile(text, "fuzz.map");
    uint64_t pos = 0;
    for (const MapBlock& b : map.blocks) {
      if (b.pos != pos) std::abort();  // the parser promises contiguous from 0
      if (b.size > UINT64_MAX - b.pos) std::abort();
      pos = b.pos + b.size;
    }
    if (map.end() != pos) std::abort();
    const uint64_t end = map.end();
    for (uint64_t disk : {uint64_t{0}, end / 2, end, end + 512}) {
      if (disk < end / 2) continue;
      try {
        check_covers(map, disk);
      } catch (const vdisk::Error&) {
      }
      check_areas(map, disk);
    }
  } catch (const vdisk::Error&) {
  }
  return 0;
}
