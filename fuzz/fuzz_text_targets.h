// The text-parser fuzz targets (VMDK descriptor, GNU ddrescue mapfile),
// shared with tests/test_regress.cpp like fuzz_exercise.h: each runs one
// input through a parser and the checks its contract promises and says what
// became of it (outcome.h): a broken promise is a ContractViolation, which
// the libFuzzer entry points turn into an abort. vdisk::Error is the expected
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
#include "fuzz/outcome.h"
#include "views/ddrescue/ddrescue_map.h"

namespace vdisk::fuzz {

inline void check_areas(const vdisk::ddrescue::Mapfile& map, uint64_t disk_size) {
  using namespace vdisk::ddrescue;
  std::vector<BadArea> areas = bad_areas(map, disk_size);
  uint64_t prev_end = 0;
  for (const BadArea& a : areas) {
    // Sorted, inside the disk, non-empty, not overlapping.
    if (a.length == 0 || a.start < prev_end || a.start > disk_size ||
        a.length > disk_size - a.start) {
      throw ContractViolation("bad area at " + std::to_string(a.start) + " of " +
                              std::to_string(a.length) +
                              " bytes is empty, unsorted, overlapping "
                              "or outside the " +
                              std::to_string(disk_size) + "-byte disk");
    }
    prev_end = a.start + a.length;
    (void)status_name(a.status);
  }
  if (bad_bytes(areas) > disk_size) throw ContractViolation("more bad bytes than the disk has");
}

// The mapfile parser: blocks contiguous from 0, bad areas sorted, inside the
// disk, never overlapping.
inline Outcome exercise_ddrescue_map_input(const uint8_t* data, size_t size) {
  using namespace vdisk::ddrescue;
  std::string text(reinterpret_cast<const char*>(data), size);
  return judge([&] {
    Mapfile map = parse_mapfile(text, "fuzz.map");
    uint64_t pos = 0;
    for (const MapBlock& b : map.blocks) {
      // The parser promises blocks contiguous from 0 that do not wrap.
      if (b.pos != pos || b.size > UINT64_MAX - b.pos) {
        throw ContractViolation("mapfile block at " + std::to_string(b.pos) + " of " +
                                std::to_string(b.size) + " bytes does not follow " +
                                std::to_string(pos));
      }
      pos = b.pos + b.size;
    }
    if (map.end() != pos)
      throw ContractViolation("mapfile end " + std::to_string(map.end()) + " is not " +
                              std::to_string(pos));
    const uint64_t end = map.end();
    for (uint64_t disk : {uint64_t{0}, end / 2, end, end + 512}) {
      if (disk < end / 2) continue;
      try {
        check_covers(map, disk);
      } catch (const vdisk::Error&) {
      }
      check_areas(map, disk);
    }
    // What `vdisk acquire` resumes from: the state covers the disk, and its
    // mapfile text parses back to the same state.
    RescueMap state = RescueMap::from_mapfile(map, end);
    uint64_t total = 0;
    for (char st : {'?', '*', '/', '-', '+'}) total += state.bytes(st);
    if (total != end) throw ContractViolation("rescue state does not cover the disk");
    Mapfile again = parse_mapfile(format_mapfile(state.to_mapfile("fuzz.map"), {}), "fuzz.map");
    std::vector<MapBlock> a = state.blocks(), b = RescueMap::from_mapfile(again, end).blocks();
    bool same = a.size() == b.size();
    for (size_t i = 0; same && i < a.size(); ++i)
      same = a[i].pos == b[i].pos && a[i].size == b[i].size && a[i].status == b[i].status;
    if (!same) throw ContractViolation("rescue state changed through its mapfile text");
  });
}

inline int run_ddrescue_map_input(const uint8_t* data, size_t size) {
  return fuzzer_verdict("ddrescue_map", exercise_ddrescue_map_input(data, size));
}

// The descriptor parser: what we render from a parsed descriptor must parse
// again with the same extents.
inline Outcome exercise_vmdk_descriptor_input(const uint8_t* data, size_t size) {
  using namespace vdisk::vmdk;
  (void)looks_like_descriptor(data, size);
  std::string text(reinterpret_cast<const char*>(data), size);
  return judge([&] {
    Descriptor d = parse_descriptor(text, "fuzz.vmdk", 0);
    (void)d.total_sectors();
    (void)d.ddb_value("ddb.adapterType");
    for (const ExtentLine& e : d.extents) (void)extent_kind_name(e.kind);
    // What we write must read back: a descriptor we render and cannot parse
    // is a bug in one of the two.
    std::string again = render_descriptor(d);
    try {
      Descriptor d2 = parse_descriptor(again, "fuzz-rendered.vmdk", 0);
      if (d2.extents.size() != d.extents.size()) {
        throw ContractViolation("the rendered descriptor has " + std::to_string(d2.extents.size()) +
                                " extents, the parsed one " + std::to_string(d.extents.size()));
      }
    } catch (const vdisk::Error& e) {
      throw ContractViolation(std::string("the descriptor we render does not parse: ") + e.what());
    }
  });
}

inline int run_vmdk_descriptor_input(const uint8_t* data, size_t size) {
  return fuzzer_verdict("vmdk_descriptor", exercise_vmdk_descriptor_input(data, size));
}

// The DMG property list reader and base64: every <data> under any dict is
// decoded; the decoded size can never exceed the text's.
inline void walk_plist(const vdisk::dmg::PlistNode& n, int depth) {
  if (depth > vdisk::dmg::kMaxPlistDepth + 1)
    throw ContractViolation("the property list nests deeper than its limit");
  if (n.type == "data") {
    std::vector<uint8_t> b = vdisk::dmg::decode_base64(n.text, "input", 0);
    if (b.size() > n.text.size())
      throw ContractViolation("base64 decoded to more bytes than its text");
  }
  for (const auto& c : n.children) walk_plist(c, depth + 1);
}

inline Outcome exercise_dmg_plist_input(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  return judge([&] {
    vdisk::dmg::PlistNode root = vdisk::dmg::parse_plist(text, "input", 0);
    if (const auto* rf = root.get("resource-fork")) (void)rf->get("blkx");
    walk_plist(root, 0);
  });
}

inline int run_dmg_plist_input(const uint8_t* data, size_t size) {
  return fuzzer_verdict("dmg_plist", exercise_dmg_plist_input(data, size));
}

}  // namespace vdisk::fuzz
