// The one read model. An opened image is a block device: a virtual size, reads
// at any byte offset, and block status. Partitions, split raw sets, parent
// chains and caches are BlockDevices wrapping BlockDevices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/json.h"

namespace vdisk {

// What a range of the virtual disk is.
//  kData:        stored bytes; read() returns them (they may still be zeros).
//  kZero:        reads as zeros, and the image says so explicitly (a zeroed
//                grain, a VHDX zero block): nothing to copy.
//  kUnallocated: nothing stored at any level of the chain: reads as zeros.
// A device with a parent resolves its own unallocated ranges through the
// parent before answering, so callers never have to walk a chain.
enum class ExtentType : uint8_t { kData, kZero, kUnallocated };
const char* extent_type_name(ExtentType t);

struct Extent {
  uint64_t length = 0;
  ExtentType type = ExtentType::kData;
};

// What `vdisk info` shows. `details` is a JSON object of format-specific
// fields (grain size, CID, geometry, creator, …) in display order.
struct ImageInfo {
  std::string path;
  std::string format;
  std::string subformat;
  uint64_t virtual_size = 0;
  uint64_t actual_size = 0;           // bytes the image's files occupy on the host
  uint64_t allocated_bytes = 0;       // guest bytes of kData extents
  std::optional<std::string> parent;  // the parent's path, when there is one
  Json details = Json::object();
  // Parent chain, nearest first, each as `info` of that layer.
  std::vector<ImageInfo> chain;

  // Records `parent` as this image's parent: `parent` (named `parent_path`;
  // empty: its own info().path) and its chain, flattened, nearest first.
  void set_parent(const class BlockDevice& parent, const std::string& parent_path = "");
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  // Virtual size in bytes (need not be a multiple of the sector size for raw).
  virtual uint64_t size() const = 0;
  // Logical sector size in bytes (512 unless the format says otherwise).
  virtual uint32_t sector_size() const { return 512; }

  // Reads `len` bytes at `offset` into `buf`. Requires offset + len <= size();
  // a range past the end throws Error(kInvalidArgument). Any alignment.
  // Thread-safe: FUSE and the converter call it from several threads.
  virtual void read(uint64_t offset, void* buf, size_t len) const = 0;

  // Status of the range starting at `offset` (< size()) of at most `len` (> 0)
  // bytes: returns the longest prefix of one type, at least one byte long.
  // Thread-safe. Must be cheap relative to reading the range.
  virtual Extent block_status(uint64_t offset, uint64_t len) const = 0;

  // What `vdisk info` shows about this image (the CLI fills allocated_bytes
  // from block status when a device leaves it 0 and says so in details).
  virtual ImageInfo info() const = 0;
};

using BlockDevicePtr = std::shared_ptr<const BlockDevice>;

// Throws Error(kInvalidArgument) unless offset + len <= dev_size.
void check_read_range(const std::string& path, uint64_t dev_size, uint64_t offset, uint64_t len);

// Sums the lengths of kData extents over the whole device.
uint64_t count_allocated_bytes(const BlockDevice& dev);

// Returns every extent of the device, adjacent extents of one type merged.
struct MappedExtent {
  uint64_t start = 0;
  uint64_t length = 0;
  ExtentType type = ExtentType::kData;
};
std::vector<MappedExtent> map_extents(const BlockDevice& dev);

// A window [offset, offset + length) of another device (a partition). The
// window must lie inside the base device.
class SliceDevice final : public BlockDevice {
 public:
  SliceDevice(BlockDevicePtr base, uint64_t offset, uint64_t length, std::string label);
  uint64_t size() const override { return length_; }
  uint32_t sector_size() const override { return base_->sector_size(); }
  void read(uint64_t offset, void* buf, size_t len) const override;
  Extent block_status(uint64_t offset, uint64_t len) const override;
  ImageInfo info() const override;

 private:
  BlockDevicePtr base_;
  uint64_t offset_;
  uint64_t length_;
  std::string label_;
};

// A device over a range of a host file, holes answered with SEEK_DATA/SEEK_HOLE
// (raw images, ISO images, fixed VHDs, flat VMDK extents). `length` may exceed
// the file's size only when `pad_with_zeros` is set (the tail reads as zero).
class FileDevice final : public BlockDevice {
 public:
  FileDevice(std::shared_ptr<const class File> file, uint64_t offset, uint64_t length,
             std::string format_name, bool pad_with_zeros = false);
  uint64_t size() const override { return length_; }
  void read(uint64_t offset, void* buf, size_t len) const override;
  Extent block_status(uint64_t offset, uint64_t len) const override;
  ImageInfo info() const override;
  const File& file() const { return *file_; }

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
