// vdi resize in place (VirtualBox's VDICore.h fields, vdi_layout.h). The
// virtual size is cbDisk; the block map needs cBlocks >= cbDisk / cbBlock
// entries between offBlocks and offData. Growing writes the new map entries
// (free) into that room first, syncs, then rewrites cbDisk..cBlocks (0x170..
// 0x183, one sector) and syncs: a crash opens at the old or the new size.
// VirtualBox moves data blocks when the map has no room; that is not done.
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/resize.h"
#include "formats/vdi/vdi_reader.h"

namespace vdisk::vdi {

void resize_vdi(const ResizeRequest& req) {
  UpdateFile& file = req.file;
  const uint64_t new_size = req.new_size;
  const Header& h = resize_layer<VdiDevice>(req, "VDI").header();
  auto refuse = [&](uint64_t at, const std::string& why) { refuse_resize(req, at, why); };
  check_resize_size(req, "VDI", kSectorSize);
  const uint64_t need = (new_size + h.block_size - 1) / h.block_size;
  const bool fixed = h.image_type == static_cast<uint32_t>(VdiType::kFixed);
  if (fixed && need > h.blocks)
    refuse(kOffImageType,
           "a fixed VDI grows only by allocating its new blocks, which is not "
           "supported (convert it to a dynamic one first)");
  uint32_t blocks = h.blocks;
  if (need > h.blocks) {
    const uint64_t room =
        h.data_offset > h.blocks_offset ? (uint64_t{h.data_offset} - h.blocks_offset) / 4 : 0;
    if (need > room || need > kBlockZero) {
      refuse(kOffBlocks, "the block map has room for " + std::to_string(room) + " entries of " +
                             std::to_string(h.block_size) + " bytes (" +
                             std::to_string(room * h.block_size) +
                             " bytes of disk) before the data at offset " +
                             std::to_string(h.data_offset) + "; " + std::to_string(need) +
                             " are needed and moving data to make room is not supported");
    }
    const std::vector<uint8_t> free_entries((need - h.blocks) * 4, 0xff);  // kBlockFree
    file.write_at(uint64_t{h.blocks_offset} + uint64_t{h.blocks} * 4, free_entries.data(),
                  free_entries.size());
    file.sync();
    blocks = static_cast<uint32_t>(need);
  }
  uint8_t fields[kOffBlocksAllocated - kOffDiskSize];  // cbDisk, cbBlock, cbBlockExtra, cBlocks
  file.read_at(kOffDiskSize, fields, sizeof fields);
  store_le64(fields, new_size);
  store_le32(fields + (kOffBlocks - kOffDiskSize), blocks);
  file.write_at(kOffDiskSize, fields, sizeof fields);
  file.sync();
}

}  // namespace vdisk::vdi
