// Raw images: the guest bytes as a plain file, or a split set of plain files
// (image.001, image.002, … as FTK Imager writes them; x00/x01 or xaa/xab as
// split(1) writes them) opened as one disk when the first part is named.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"
#include "formats/core/format.h"

namespace vdisk::raw {

// Names of the further parts of a split set whose first part is `path`, in
// order, found through `env` (empty when `path` is not the first of a set).
std::vector<std::string> find_split_parts(Env& env, const std::string& path);

// A disk made of several files laid end to end. Thread-safe.
class ConcatDevice final : public BlockDevice {
 public:
  explicit ConcatDevice(std::vector<std::shared_ptr<const File>> parts);
  uint64_t size() const override { return size_; }
  ImageInfo info() const override;
  std::string label() const override { return parts_.front()->path(); }

 protected:
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  // Index of the part holding guest offset `offset` (< size_).
  size_t part_at(uint64_t offset) const;
  std::vector<std::shared_ptr<const File>> parts_;
  std::vector<uint64_t> starts_;  // guest offset of each part
  uint64_t size_ = 0;
};

BlockDevicePtr open_raw(std::shared_ptr<const File> file, const OpenOptions& opts);
// FormatDescriptor::resize (raw_inplace.cpp): sets the file's length; refuses
// a split set.
void resize_raw(const ResizeRequest& req);
// FormatDescriptor::update (raw_inplace.cpp): writes go to the file at the
// guest offset; refuses a split set.
std::unique_ptr<ImageUpdater> update_raw(UpdateFile& file, const BlockDevice& layer);

}  // namespace vdisk::raw
