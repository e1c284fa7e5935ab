// A rescued image seen through its GNU ddrescue mapfile: a BlockDevice
// wrapping the image whose unrescued areas (every mapfile status but '+')
// report kUnallocated, so the converter leaves them unallocated in its output
// instead of copying whatever the rescue file holds there as if it were real.
// Reads of those areas return zeros or fail with EIO, as the user chooses
// (`vdisk mount --mapfile MAP --bad-areas zeros|eio`).
#pragma once

#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "views/ddrescue/ddrescue_map.h"

namespace vdisk::ddrescue {

enum class BadAreaMode {
  kZeros,  // reads of unrescued bytes return zeros (the default)
  kEio,    // reads touching unrescued bytes throw Error(kIo) (EIO through FUSE)
};

// "zeros" or "eio"; throws Error(kInvalidArgument) otherwise.
BadAreaMode parse_bad_area_mode(const std::string& text);

class RescuedDevice final : public BlockDevice {
 public:
  // `map` must cover base->size() (check_covers is called: throws kCorrupt).
  RescuedDevice(BlockDevicePtr base, const Mapfile& map, BadAreaMode mode);

  uint64_t size() const override { return base_->size(); }
  uint32_t sector_size() const override { return base_->sector_size(); }
  // The base's info with a "ddrescue_mapfile" object in details.
  ImageInfo info() const override;
  std::string label() const override { return map_path_; }
  // The base's layers with this view in place of the top one: the mapfile
  // describes the composed disk, so it applies to the top.
  std::vector<const BlockDevice*> layers() const override;

  const BlockDevicePtr& base() const { return base_; }
  const std::vector<BadArea>& bad_areas() const { return areas_; }
  BadAreaMode mode() const { return mode_; }
  const std::string& mapfile_path() const { return map_path_; }

  // The unrescued area containing `offset`, or null.
  const BadArea* bad_area_at(uint64_t offset) const;
  // Start of the first unrescued area at or after `offset` (size() if none).
  uint64_t next_bad_start(uint64_t offset) const;

 protected:
  // Thread-safe. In kEio mode throws Error(kIo) naming the mapfile and the
  // first unrescued offset of the range, before reading anything.
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  // Unrescued areas are kUnallocated; elsewhere the base's answer, cut at the
  // next unrescued area.
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  BlockDevicePtr base_;
  std::vector<BadArea> areas_;
  BadAreaMode mode_;
  std::string map_path_;
};

}  // namespace vdisk::ddrescue
