// The text-parser fuzz targets (VMDK descriptor, GNU ddrescue mapfile),
// shared with tests/test_regress.cpp like fuzz_exercise.h: each runs one
// input through a parser and the checks its contract promises, aborting on a
// broken promise so the fuzzer reports it. vdisk::Error is the expected
// outcome for bad input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "formats/core/error.h"
#include "formats/dmg/dmg_plist.h"
#include "formats/vmdk/vmdk_descriptor.h"
#include "views/ddrescue/ddrescue_map.h"

namespace vdisk::fuzz {

inline void check_areas(const vdisk::ddrescue::Mapfile& map, uint64_t disk_size) {
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

// The mapfile parser: blocks contiguous from 0, bad areas sorted, inside the
// disk, never overlapping.
inline int run_ddrescue_map_input(const uint8_t* data, size_t size) {
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

// The descriptor parser: what we render from a parsed descriptor must parse
// again with the same extents.
inline int run_vmdk_descriptor_input(const uint8_t* data, size_t size) {
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

// The DMG property list reader and base64: every <data> under any dict is
// decoded; the decoded size can never exceed the text's.
inline void walk_plist(const vdisk::dmg::PlistNode& n, int depth) {
  if (depth > vdisk::dmg::kMaxPlistDepth + 1) std::abort();
  if (n.type == "data") {
    std::vector<uint8_t> b = vdisk::dmg::decode_base64(n.text, "input", 0);
    if (b.size() > n.text.size()) std::abort();
  }
  for (const auto& c : n.children) walk_plist(c, depth + 1);
}

inline int run_dmg_plist_input(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    vdisk::dmg::PlistNode root = vdisk::dmg::parse_plist(text, "input", 0);
    if (const auto* rf = root.get("resource-fork")) (void)rf->get("blkx");
    walk_plist(root, 0);
  } catch (const vdisk::Error&) {
  }
  return 0;
}

}  // namespace vdisk::fuzz
