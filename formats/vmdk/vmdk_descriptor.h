// The VMDK text descriptor (VDF "The Descriptor File"): a header of
// `key=value` lines (version, CID, parentCID, createType,
// parentFileNameHint), extent lines (`RW 4192256 SPARSE "disk-s001.vmdk"`),
// and the disk database (`ddb.key = "value"`). Comments start with '#';
// lines may end in CRLF; keys may come in any order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vdisk::vmdk {

inline constexpr uint32_t kNoParentCid = 0xffffffff;

enum class ExtentKind { kFlat, kSparse, kZero, kVmfs, kVmfsSparse, kVmfsRaw, kVmfsRdm, kSeSparse };
const char* extent_kind_name(ExtentKind k);

struct ExtentLine {
  std::string access;  // RW, RDONLY, NOACCESS
  uint64_t sectors = 0;
  ExtentKind kind = ExtentKind::kFlat;
  std::string file;     // empty for ZERO
  uint64_t offset = 0;  // sectors into the file (FLAT, VMFS)
};

struct Descriptor {
  uint32_t version = 1;
  uint32_t cid = 0;
  uint32_t parent_cid = kNoParentCid;
  std::string create_type;
  std::string parent_hint;  // parentFileNameHint, empty when none
  std::vector<ExtentLine> extents;
  // For each entry of `extents` parsed from text: the byte offset of its
  // line in the descriptor's file and the line (at most 120 characters), for
  // errors that name the extent. Empty for a descriptor the reader made up.
  std::vector<std::pair<uint64_t, std::string>> extent_lines;
  std::vector<std::pair<std::string, std::string>> ddb;  // in file order

  // A ddb value by key (case-sensitive as VMware writes them), or nullopt.
  std::optional<std::string> ddb_value(const std::string& key) const;
  uint64_t total_sectors() const;
};

// Parses descriptor text (NUL bytes end it: an embedded descriptor is padded
// with zeros). Throws Error(kCorrupt) naming `file`, the byte offset
// `base_offset` + offset of the bad line, and what is wrong.
Descriptor parse_descriptor(const std::string& text, const std::string& file, uint64_t base_offset);

// Whether `text` starts like a descriptor (for the probe): after blank and
// comment lines, recognisable descriptor keys, all of it printable text.
bool looks_like_descriptor(const uint8_t* data, size_t len);

// Renders a descriptor the way VMware writes it (LF line ends).
std::string render_descriptor(const Descriptor& d);

}  // namespace vdisk::vmdk
