// Reading VirtualBox VDI images: fixed (static), normal (dynamic) and
// differencing, header version 1.1 (see vdi_layout.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/vdi/vdi_layout.h"

namespace vdisk::vdi {

// A VDI image as a block device. Immutable after construction; thread-safe.
class VdiDevice final : public BlockDevice {
 public:
  // `map` has h.blocks validated entries. Free blocks are kUnallocated
  // (read as zeros here); a differencing image's parent_spec() finds the
  // parent that answers for them.
  VdiDevice(std::shared_ptr<const File> file, Header h, std::vector<uint32_t> map);

  uint64_t size() const override { return h_.disk_size; }
  ImageInfo info() const override;
  std::string label() const override { return file_->path(); }
  std::shared_ptr<const ParentSpec> parent_spec() const override;

  const Header& header() const { return h_; }
  // The block map as read: one entry per block.
  const std::vector<uint32_t>& map() const { return map_; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  // File offset of the data of allocated virtual block `block`.
  uint64_t data_pos(uint64_t block) const;

  std::shared_ptr<const File> file_;
  Header h_;
  std::vector<uint32_t> map_;
  uint64_t stride_;  // block_size + block_extra
  uint64_t data_blocks_ = 0;
  uint64_t zero_blocks_ = 0;
};

// Opens and validates a VDI image (one layer: see parent_spec() for the
// parent of a differencing image).
BlockDevicePtr open_vdi(std::shared_ptr<const File> file, const OpenOptions& opts);
// FormatDescriptor::resize (vdi_resize.cpp): `layer` is the VdiDevice opened
// from `file`. Grows within the block map's room; a fixed VDI only shrinks.
void resize_vdi(const ResizeRequest& req);
// FormatDescriptor::update (vdi_inplace.cpp): an updater over the VdiDevice
// `layer` opened from `file`. Units are blocks; a block not yet stored is
// appended after the last data block (its cbBlockExtra bytes zeroed); flush()
// syncs the data, then writes the block map entries and cBlocksAllocated.
// set_parent() links to a VDI parent by its UUIDs (uuidLinkage,
// uuidParentModification; VDI stores no name: readers find the parent by
// UUID among the .vdi files beside the child). Identity fields are not
// changed by writes (uuidModification stays), so children of a committed
// parent still open without a warning.
std::unique_ptr<ImageUpdater> update_vdi(UpdateFile& file, const BlockDevice& layer);

}  // namespace vdisk::vdi
