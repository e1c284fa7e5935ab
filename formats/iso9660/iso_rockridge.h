// System Use Sharing Protocol (IEEE P1281 SUSP 1.12) and Rock Ridge
// Interchange Protocol (IEEE P1282 RRIP 1.12) entries of one directory record:
// parsing (following CE continuation areas) and building.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"

namespace vdisk::iso9660 {

// What the SUSP/RRIP entries of one directory record say.
struct RockRidgeEntries {
  bool has_sp = false;                  // SP found (root "." only): Rock Ridge/SUSP in use
  uint8_t sp_skip = 0;                  // SP LEN_SKP
  std::vector<std::string> extensions;  // ER identifiers ("RRIP_1991A", "IEEE_P1282", …)

  bool has_px = false;
  uint32_t mode = 0;  // full POSIX st_mode (type bits included)
  uint32_t nlink = 1, uid = 0, gid = 0;

  bool has_nm = false;
  std::string name;            // at most kMaxNameBytes
  bool name_too_long = false;  // NM pieces added up to more than kMaxNameBytes
  bool has_sl = false;
  std::string link_target;     // at most kMaxLinkBytes
  bool link_too_long = false;  // SL components added up to more than kMaxLinkBytes
  bool has_pn = false;
  uint64_t rdev = 0;  // major << 32 | minor

  std::optional<uint32_t> child_link;   // CL: LBA of the relocated directory
  std::optional<uint32_t> parent_link;  // PL: LBA of the real parent (in ".." only)
  bool relocated = false;               // RE: this record is the relocated copy; hide it

  std::optional<Timestamp> mtime, atime, ctime;

  uint64_t continuation_bytes = 0;  // bytes read from CE areas for this record
};

// Bounds on one record's continuation areas (SUSP 5.1). Real writers put a
// record's overflow (long NM, SL, ER, xattrs) in one or two areas of a few
// hundred bytes; a chain past these is a bomb or damage.
inline constexpr int kMaxContinuationAreas = 16;
inline constexpr uint64_t kMaxContinuationBytes = 32 * 1024;  // all areas of one record

// Parses the system use area `area` of a directory record (the bytes after
// the name and its pad byte, `skip` bytes already dropped), following CE
// entries into continuation areas read from `dev`. `where` is the device
// offset of the area, for error messages. Continuation areas must lie inside
// the device; more than kMaxContinuationAreas of them, more than
// kMaxContinuationBytes in all, or a CE loop throw kCorrupt. Names and link
// targets are never grown past kMaxNameBytes / kMaxLinkBytes (the flags say
// so). Malformed entries end the parse (what was read so far counts).
void parse_system_use(const BlockDevice& dev, const std::string& label, const uint8_t* area,
                      size_t len, uint64_t where, RockRidgeEntries& out);

// The file type of a POSIX st_mode (RRIP PX) and back.
NodeType node_type_from_mode(uint32_t mode);
uint32_t mode_type_bits(NodeType type);

// ---- Building entries (used by the writer). Each returns complete entries. ----
std::string make_sp_entry();
std::string make_er_entry();  // RRIP 1.10 "RRIP_1991A" (what Linux, xorriso and 7z read)
std::string make_ce_entry(uint32_t block, uint32_t offset, uint32_t length);
std::string make_px_entry(uint32_t mode, uint32_t nlink, uint32_t uid, uint32_t gid);
std::string make_pn_entry(uint64_t rdev);  // rdev = major << 32 | minor
std::string make_tf_entry(int64_t mtime, int64_t atime, int64_t ctime);
std::string make_cl_entry(uint32_t lba);
std::string make_pl_entry(uint32_t lba);
std::string make_re_entry();
// One or more NM entries (a name over 250 bytes continues in the next).
std::vector<std::string> make_nm_entries(const std::string& name);
// One or more SL entries for `target`, split at 255 bytes with CONTINUE.
std::vector<std::string> make_sl_entries(const std::string& target);

}  // namespace vdisk::iso9660
