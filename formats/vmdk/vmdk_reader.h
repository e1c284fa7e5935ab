// Reading VMDK images: a descriptor (stand-alone or embedded in a sparse
// extent) lists extents laid end to end; each extent is flat (a range of a
// plain file), sparse (hosted KDMV, optionally stream-optimized and
// compressed), seSparse, or zero. Unallocated grains are kUnallocated: a
// snapshot's parent (parentFileNameHint) answers for them in a chain.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/vmdk/vmdk_descriptor.h"

namespace vdisk::vmdk {

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
  // Reads [offset, offset+len); what the extent does not hold reads as zeros.
  virtual void read(uint64_t offset, uint8_t* buf, size_t len) const = 0;
  // Details for `info` (type, file, grain size, …).
  virtual Json describe() const = 0;
  // Host file this extent reads (null for ZERO).
  virtual const File* file() const { return nullptr; }
};

// A whole VMDK: extents end to end. A snapshot (parentCID or
// parentFileNameHint) answers for its own grains only: its parent_spec()
// names the parent, which the registry attaches.
class VmdkDevice final : public BlockDevice {
 public:
  struct Part {
    uint64_t start = 0;
    std::unique_ptr<ExtentReader> reader;
  };
  VmdkDevice(std::shared_ptr<const File> main, Descriptor desc, std::string subformat,
             std::vector<Part> parts, Json extra);

  uint64_t size() const override { return size_; }
  ImageInfo info() const override;
  std::string label() const override { return main_->path(); }
  std::shared_ptr<const ParentSpec> parent_spec() const override;

  uint32_t cid() const { return desc_.cid; }
  const Descriptor& descriptor() const { return desc_; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  size_t part_at(uint64_t offset) const;

  std::shared_ptr<const File> main_;
  Descriptor desc_;
  std::string subformat_;
  std::vector<Part> parts_;
  Json extra_;
  uint64_t size_ = 0;
};

// Opens a VMDK from its descriptor file, a monolithic sparse file, a bare
// sparse/seSparse extent or a streamOptimized file.
BlockDevicePtr open_vmdk(std::shared_ptr<const File> file, const OpenOptions& opts);

// Probe score for the head bytes of a file.
int probe_vmdk(const ProbeInput& in);

// FormatDescriptor::resize (vmdk_resize.cpp): monolithicSparse in place;
// monolithicFlat, twoGbMaxExtentFlat and twoGbMaxExtentSparse through their
// extent files and a replaced descriptor; the other layouts refused by name.
void resize_vmdk(const ResizeRequest& req);

}  // namespace vdisk::vmdk
