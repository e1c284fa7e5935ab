// The one read model. An opened image is a block device: a virtual size,
// reads at any byte offset, and block status. Partitions, split raw sets,
// parent chains (LayeredDevice) and caches are BlockDevices wrapping
// BlockDevices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/image_info.h"

namespace vdisk {

struct ParentSpec;

// What a range of a device is.
//  kData:        stored bytes; read() returns them (they may still be zeros).
//  kZero:        reads as zeros, and the layer says so explicitly (a zeroed
//                grain, a VHDX zero block): nothing to copy, and it hides any
//                parent.
//  kUnallocated: not stored in this layer. A format's own device reads zeros
//                there; a LayeredDevice asks the parent. From a device that
//                open_image() returned: stored in no layer, reads as zeros.
enum class ExtentType : uint8_t { kData, kZero, kUnallocated };
const char* extent_type_name(ExtentType t);

// A byte range of a device.
struct ByteRange {
  uint64_t start = 0;
  uint64_t length = 0;
};

// A digest of a device's whole content that the image itself records (the
// MD5 and SHA-1 an E01 acquisition stored): `vdisk verify` without
// --expect checks the content against these.
struct StoredDigest {
  std::string algo;   // "md5", "sha1" or "sha256"
  std::string hex;    // lower case
  std::string where;  // what in the image holds it ("hash section")
};

struct Extent {
  uint64_t length = 0;
  ExtentType type = ExtentType::kData;
  // The layer that answered, as `qemu-img map` counts it: 0 the image
  // itself, 1 its parent, … For kUnallocated from a chain, the deepest layer
  // that was asked (past the parent's end: 0).
  uint32_t depth = 0;
};

// The contract of every device. Implementations override the protected
// do_read() and do_block_status(); the public read() and block_status()
// check the arguments first, so every format treats out-of-range requests
// the same way and sees only valid ones.
class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  // Virtual size in bytes (need not be a multiple of the sector size for raw).
  virtual uint64_t size() const = 0;
  // Logical sector size in bytes (512 unless the format says otherwise).
  virtual uint32_t sector_size() const { return 512; }

  // Reads `len` bytes at `offset` into `buf`, any alignment. A range that
  // does not lie inside [0, size()) throws Error(kInvalidArgument) naming
  // label(); len 0 inside it does nothing. Thread-safe: FUSE and the
  // converter call it from several threads.
  void read(uint64_t offset, void* buf, size_t len) const;

  // Status of the bytes from `offset`: offset must be < size() and len > 0,
  // else Error(kInvalidArgument); len is clamped to size() - offset. Returns
  // a prefix of [offset, offset + len) of one type, at least 1 byte and at
  // most len long. It is not always the longest such prefix: a format may
  // stop after a bounded amount of work (the next call continues where it
  // stopped), so adjacent answers can have the same type; map_extents()
  // merges them. Thread-safe; cheap relative to reading the range.
  Extent block_status(uint64_t offset, uint64_t len) const;

  // What `vdisk info` shows about this device (allocated_bytes left 0: see
  // full_info()).
  virtual ImageInfo info() const = 0;

  // The name used in messages about this device (the image's path).
  virtual std::string label() const { return info().path; }

  // The layers this device is made of, top first: the device itself for a
  // single image; for a LayeredDevice its own layer, then its parent's
  // layers. A view over a chain (a mapfile) stands in for the top layer.
  virtual std::vector<const BlockDevice*> layers() const { return {this}; }

  // A layer that stores only what differs from a parent image (a
  // differencing VHD/VHDX/VDI, a VMDK snapshot, a qcow2 with a backing file)
  // says here how to find that parent; null for a stand-alone image. The
  // registry's open_image() uses it to locate the parent and compose the two
  // in a LayeredDevice; the format itself never reads its parent.
  virtual std::shared_ptr<const ParentSpec> parent_spec() const { return nullptr; }

  // Ranges the image itself marks as never read from the original medium
  // (an E01's error2 sectors, where the acquiring tool stored zeros):
  // sorted, non-overlapping, inside [0, size()); empty for most formats.
  // The CLI treats them like the unrescued areas of a ddrescue mapfile.
  virtual std::vector<ByteRange> unreadable_ranges() const { return {}; }

  // Digests of the whole content that the image records; empty for most
  // formats.
  virtual std::vector<StoredDigest> stored_digests() const { return {}; }

 protected:
  // Called only with offset + len <= size() and len > 0.
  virtual void do_read(uint64_t offset, void* buf, size_t len) const = 0;
  // Called only with offset < size() and 0 < len <= size() - offset. An
  // answer of length 0 or longer than len is a bug the caller reports.
  virtual Extent do_block_status(uint64_t offset, uint64_t len) const = 0;
};

using BlockDevicePtr = std::shared_ptr<const BlockDevice>;

// Throws Error(kInvalidArgument) unless offset + len <= dev_size.
void check_read_range(const std::string& path, uint64_t dev_size, uint64_t offset, uint64_t len);

// Sums the lengths of kData extents over the whole device.
uint64_t count_allocated_bytes(const BlockDevice& dev);

// Every extent of the device, adjacent extents of one type and depth merged.
struct MappedExtent {
  uint64_t start = 0;
  uint64_t length = 0;
  ExtentType type = ExtentType::kData;
  uint32_t depth = 0;
};
std::vector<MappedExtent> map_extents(const BlockDevice& dev);

// A window [offset, offset + length) of another device (a partition). The
// window must lie inside the base device.
class SliceDevice final : public BlockDevice {
 public:
  SliceDevice(BlockDevicePtr base, uint64_t offset, uint64_t length, std::string label);
  uint64_t size() const override { return length_; }
  uint32_t sector_size() const override { return base_->sector_size(); }
  ImageInfo info() const override;
  std::string label() const override { return label_; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  BlockDevicePtr base_;
  uint64_t offset_;
  uint64_t length_;
  std::string label_;
};

// A device over a range of a host file, holes answered with SEEK_DATA/SEEK_HOLE
// (raw images, ISO images, fixed VHDs, flat VMDK extents). `length` may exceed
// the file's size only when `pad_with_zeros` is set (the tail reads as zero).
// Holes in the file are kUnallocated.
class FileDevice final : public BlockDevice {
 public:
  FileDevice(std::shared_ptr<const class File> file, uint64_t offset, uint64_t length,
             std::string format_name, bool pad_with_zeros = false);
  uint64_t size() const override { return length_; }
  ImageInfo info() const override;
  std::string label() const override;
  const File& file() const { return *file_; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  std::shared_ptr<const File> file_;
  uint64_t offset_;
  uint64_t length_;
  std::string format_name_;
  bool pad_;
};

// True when every byte of buf[0, len) is zero (fast, word-at-a-time).
bool is_zero(const void* buf, size_t len);

}  // namespace vdisk
