// Reading VHD images: fixed, dynamic and differencing disks.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/vhd/vhd_layout.h"

namespace vdisk::vhd {

// Probe: a "conectix" footer in the last 512 (or, for pre-2004 images, 511)
// bytes, or the footer copy at offset 0 of a dynamic disk, scores
// kProbeSignature. Never throws.
int probe_vhd(const ProbeInput& in);

// Opens a VHD. Validates the footer (falling back to the copy at offset 0 of a
// dynamic disk, with a warning, when the last footer is damaged), the dynamic
// header and the BAT before allocating anything sized by them. One layer: a
// differencing disk's parent_spec() names the locators and the unique ID.
BlockDevicePtr open_vhd(std::shared_ptr<const File> file, const OpenOptions& opts);
// FormatDescriptor::resize (vhd_resize.cpp): `layer` is the VhdDevice opened
// from `file`. Dynamic disks grow within the BAT's room; a "qemu" or "vpc "
// disk only to sizes its CHS geometry describes exactly.
void resize_vhd(const ResizeRequest& req);

// An opened VHD. Thread-safe: reads are preads; the sector-bitmap cache is
// guarded by a mutex.
class VhdDevice final : public BlockDevice {
 public:
  // Fixed disk: the guest data is [0, footer.current_size) of `file`.
  VhdDevice(std::shared_ptr<const File> file, Footer footer, std::string footer_source);
  // Dynamic or differencing disk. `bat` holds one entry per block of the
  // virtual size. Sectors a differencing disk's bitmaps do not mark, and
  // unused blocks, are kUnallocated (zeros in this layer).
  VhdDevice(std::shared_ptr<const File> file, Footer footer, std::string footer_source,
            DynamicHeader header, std::vector<uint32_t> bat);

  uint64_t size() const override { return footer_.current_size; }
  ImageInfo info() const override;
  std::string label() const override { return file_->path(); }
  std::shared_ptr<const ParentSpec> parent_spec() const override;

  const Footer& footer() const { return footer_; }
  // Dynamic and differencing disks: the dynamic header and the BAT as read.
  const DynamicHeader& header() const { return header_; }
  const std::vector<uint32_t>& bat() const { return bat_; }
  // Where the footer in use came from ("end of file …" or the copy at 0).
  const std::string& footer_source() const { return footer_source_; }
  const File& file() const { return *file_; }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  using Bitmap = std::shared_ptr<const std::vector<uint8_t>>;
  bool is_fixed() const { return fixed_ != nullptr; }
  // The sector bitmap of an allocated block (cached).
  Bitmap bitmap(uint64_t block) const;
  // Within block `block`, starting at byte `in_block` (< the block's guest
  // length), the run of sectors whose bitmap bits agree, capped at `max`:
  // returns {length, present in this file}.
  std::pair<uint64_t, bool> run_in_block(uint64_t block, uint64_t in_block, uint64_t max) const;

  std::shared_ptr<const File> file_;
  Footer footer_;
  std::string footer_source_;
  std::shared_ptr<const FileDevice> fixed_;  // fixed disks only

  DynamicHeader header_;
  std::vector<uint32_t> bat_;
  uint64_t block_size_ = 0;
  uint64_t bitmap_size_ = 0;

  // At most this many bytes of bitmaps are cached (16384 bitmaps of 2 MiB blocks: a 32 GiB span).
  static constexpr uint64_t kBitmapCacheBytes = 16384 * 512;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<uint64_t, Bitmap> cache_;
  mutable std::list<uint64_t> cache_order_;  // insertion order, oldest first
};

}  // namespace vdisk::vhd
