// Reading VirtualBox VDI images: fixed (static), normal (dynamic) and
// differencing, header version 1.1 (see vdi_layout.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/vdi/vdi_layout.h"

namespace vdisk::vdi {

struct Geometry {
  uint32_t cylinders = 0;
  uint32_t heads = 0;
  uint32_t sectors = 0;
  uint32_t sector_size = kSectorSize;
};

// The decoded pre-header and header. Field names follow VDICore.h.
struct Header {
  std::string file_info;  // pre-header text, trailing NULs removed
  uint32_t version = kVersion1_1;
  uint32_t header_size = kHeaderSize1Plus;
  uint32_t image_type = static_cast<uint32_t>(VdiType::kNormal);
  uint32_t flags = 0;
  std::string comment;
  uint32_t blocks_offset = 0;
  uint32_t data_offset = 0;
  Geometry legacy_geometry;
  Geometry lchs_geometry;  // meaningful only when header_size >= kHeaderSize1Plus
  uint64_t disk_size = 0;
  uint32_t block_size = kDefaultBlockSize;
  uint32_t block_extra = 0;
  uint32_t blocks = 0;
  uint32_t blocks_allocated = 0;
  Guid uuid_create{};
  Guid uuid_modify{};
  Guid uuid_linkage{};
  Guid uuid_parent_modify{};

  bool has_lchs() const { return header_size >= kHeaderSize1Plus; }
  bool is_child() const {
    return image_type == static_cast<uint32_t>(VdiType::kDiff) ||
           image_type == static_cast<uint32_t>(VdiType::kUndo);
  }
};

// Whether `head` carries the VDI signature at 0x40 (the probe; the pre-header
// text varies between writers and is not checked).
bool has_vdi_signature(std::span<const uint8_t> head);

// Decodes the pre-header and header from the first bytes of a file. Checks
// only what decoding needs (size, signature, version); throws
// Error(kNotThisFormat) without the signature, kUnsupported for other
// versions, kCorrupt for a header too short. Naming `path` in errors.
Header decode_header(const std::string& path, std::span<const uint8_t> bytes);

// Encodes `h` into `out` (at least kHeaderReadSize bytes, zeroed by the caller
// beyond what it wants kept): pre-header and header as VirtualBox lays them out.
void encode_header(const Header& h, std::span<uint8_t> out);

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
void resize_vdi(UpdateFile& file, const BlockDevice& layer, uint64_t new_size);

}  // namespace vdisk::vdi
