// Reading VHDX images (MS-VHDX): fixed, dynamic and differencing disks, with
// a pending log replayed in memory (see vhdx_log.h).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/vhdx/vhdx_layout.h"
#include "formats/vhdx/vhdx_log.h"

namespace vdisk::vhdx {

// Everything `open` learns from the headers, region tables and metadata.
struct ImageMeta {
  std::string creator;
  int current_header = 0;  // 1 or 2
  uint64_t header_sequence = 0;
  Guid file_write_guid{};
  Guid data_write_guid{};
  Guid log_guid{};
  uint64_t log_offset = 0;
  uint64_t log_length = 0;
  uint64_t bat_offset = 0;
  uint64_t bat_length = 0;
  uint64_t metadata_offset = 0;
  uint64_t metadata_length = 0;
  bool leave_blocks_allocated = false;
  bool has_parent = false;
  uint32_t physical_sector_size = 0;
  Guid virtual_disk_id{};
  // Parent locator key/value pairs in stored order (UTF-8).
  std::vector<std::pair<std::string, std::string>> locator;
  Geometry geometry;
};

// An opened VHDX. Immutable after construction except for the sector bitmap
// cache, which a mutex guards; every method is thread-safe.
class VhdxDevice final : public BlockDevice {
 public:
  VhdxDevice(std::shared_ptr<const File> source, std::shared_ptr<const File> replayed,
             ImageMeta meta, std::vector<uint64_t> bat, LogReplayResult log);

  uint64_t size() const override { return meta_.geometry.virtual_size; }
  uint32_t sector_size() const override { return meta_.geometry.logical_sector_size; }
  ImageInfo info() const override;
  std::string label() const override { return source_->path(); }
  // A differencing disk's parent: the locator's paths, identified by
  // DataWriteGuid = parent_linkage (or parent_linkage2).
  std::shared_ptr<const ParentSpec> parent_spec() const override;

  const ImageMeta& meta() const { return meta_; }

 protected:
  // Blocks NOT_PRESENT and the unmarked sectors of PARTIALLY_PRESENT blocks
  // are kUnallocated (zeros in this layer; the parent's in a chain).
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  uint64_t entry(uint64_t block) const { return bat_[meta_.geometry.payload_entry(block)]; }
  // The part of block `block`'s sector bitmap covering that block (one bit
  // per logical sector, 1 = stored in this file).
  std::shared_ptr<const std::vector<uint8_t>> block_bitmap(uint64_t block) const;
  // Status of [offset, offset + len) inside one block (len already clamped to
  // the block), as its longest prefix of one type.
  Extent status_in_block(uint64_t offset, uint64_t len) const;
  void read_partial(uint64_t block, uint64_t offset, uint8_t* out, size_t len) const;

  std::shared_ptr<const File> source_;  // the file as stored (for info)
  std::shared_ptr<const File> file_;    // what everything is read through
  ImageMeta meta_;
  std::vector<uint64_t> bat_;
  LogReplayResult log_;
  mutable std::mutex bitmap_mutex_;
  mutable std::map<uint64_t, std::shared_ptr<const std::vector<uint8_t>>> bitmaps_;
};

// Opens and validates a VHDX image: every size from a header is checked
// against the file before anything is allocated. Throws Error(kNotThisFormat)
// without the "vhdxfile" signature, kCorrupt for broken structures,
// kUnsupported for valid features vdisk does not implement. One layer: see
// VhdxDevice::parent_spec() for a differencing disk's parent.
BlockDevicePtr open_vhdx(std::shared_ptr<const File> file, const OpenOptions& opts);

// FormatDescriptor::resize (vhdx_resize.cpp): `layer` is the VhdxDevice
// opened from `file`; every metadata change goes through the log.
void resize_vhdx(const ResizeRequest& req);

}  // namespace vdisk::vhdx
