// Differencing VHDs: the parent's identity as a child records it (spec
// "Dynamic Disk Header Format": Parent Unique ID, Parent Time Stamp, Parent
// Unicode Name, Parent Locator Entries), and changing a dynamic or
// differencing VHD in place (vdisk rebase, commit).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/file.h"
#include "formats/core/image_updater.h"
#include "formats/vhd/vhd_layout.h"

namespace vdisk::vhd {

class VhdDevice;

// What a child stores about its parent.
struct ParentLink {
  Guid unique_id;      // the parent's footer unique ID
  uint32_t timestamp;  // the parent file's modification time, VHD seconds
  std::array<uint8_t, kHeaderParentNameSize> name{};  // UTF-16BE, NUL padded
  // Locator data, UTF-16LE without terminator: W2ru ".\name" (the form
  // Hyper-V writes) and W2ku the parent's absolute path.
  std::string relative, absolute;
};

// The link to `parent` (a VhdDevice: Error kUnsupported naming `child_path`
// otherwise), recorded as `name` (relative to the child's folder) and
// `absolute_path` (the parent's absolute path). The time stamp is the
// parent file's modification time (File::modified_unix), or its footer's
// time stamp when the host does not say. Refuses a name longer than the
// header's 256 UTF-16 units.
ParentLink parent_link(const std::string& child_path, const BlockDevice& parent,
                       const std::string& name, const std::string& absolute_path);

// Stores `link` in `h` with its two locators' data at `data_at` (a sector
// offset of the file); returns the bytes that data takes there (whole
// sectors: W2ru then W2ku), which the caller writes at `data_at`.
std::vector<uint8_t> store_parent_link(DynamicHeader& h, const ParentLink& link, uint64_t data_at);

// FormatDescriptor::update: an updater over the dynamic or differencing VHD
// `layer` (a VhdDevice) opened from `file`. Units are blocks. A block not
// yet stored is appended where the footer was (its data 4 KiB-aligned), the
// footer rewritten after the last block; flush() writes the data, syncs,
// then writes the sector bitmaps and BAT entries. Refuses fixed disks
// (nothing to allocate, no parent), a file whose end footer is damaged, and
// files that would pass the 32-bit sector offsets of the BAT.
std::unique_ptr<ImageUpdater> update_vhd(UpdateFile& file, const BlockDevice& layer);

}  // namespace vdisk::vhd
