// Reading VMDK images: a descriptor (stand-alone or embedded in a sparse
// extent) lists extents laid end to end; each extent is flat (a range of a
// plain file), sparse (hosted KDMV, optionally stream-optimized and
// compressed), seSparse, or zero. Unallocated grains come from the parent
// named by parentFileNameHint.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/registry.h"
#include "formats/vmdk/vmdk_descriptor.h"

namespace vdisk::vmdk {

// Called by an extent for a range it does not hold (guest offset relative to
// the extent): the device fills it from the parent or with zeros.
using FillUnallocated = std::function<void(uint64_t offset, uint8_t* buf, size_t len)>;

// One extent, addressed in bytes from its own start. Implementations are
// immutable after construction except for internal, mutex-guarded caches, so
// every method is thread-safe.
class ExtentReader {
 public:
  virtual ~ExtentReader() = default;
  virtual uint64_t size() const = 0;
  // Status of the longest run of one type at `offset` (at most `len` bytes);
  // kUnallocated means "not in this extent: ask the parent".
  virtual Extent status(uint64_t offset, uint64_t len) const = 0;
  // Reads [offset, offset+len); unallocated pieces go to `fill`.
  virtual void read(uint64_t offset, uint8_t* buf, size_t len,
                    const FillUnallocated& fill) const = 0;
  // Details for `info` (type, file, grain size, …).
  virtual Json describe() const = 0;
  // Host file this extent reads (null for ZERO).
  virtual const File* file() const { return nullptr; }
};

// A whole VMDK: extents end to end, plus an optional parent.
class VmdkDevice final : public BlockDevice {
 public:
  struct Part {
    uint64_t start = 0;
    std::unique_ptr<ExtentReader> reader;
  };
  VmdkDevice(std::shared_ptr<const File> main, Descriptor desc, std::string subformat,
             std::vector<Part> parts, BlockDevicePtr parent, Json extra);

  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* buf, size_t len) const override;
  Extent block_status(uint64_t offset, uint64_t len) const override;
  ImageInfo info() const override;

  uint32_t cid() const { return desc_.cid; }
  const Descriptor& descriptor() const { return desc_; }

 private:
  size_t part_at(uint64_t offset) const;
  void read_parent(uint64_t offset, uint8_t* buf, size_t len) const;

  std::shared_ptr<const File> main_;
  Descriptor desc_;
  std::string subformat_;
  std::vector<Part> parts_;
  BlockDevicePtr parent_;
  Json extra_;
  uint64_t size_ = 0;
};

// Opens a VMDK from its descriptor file, a monolithic sparse file, a bare
// sparse/seSparse extent or a streamOptimized file.
BlockDevicePtr open_vmdk(std::shared_ptr<const File> file, const OpenOptions& opts);

// Probe score for the head bytes of a file.
int probe_vmdk(const ProbeInput& in);

}  // namespace vdisk::vmdk
