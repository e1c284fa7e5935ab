#include "views/ddrescue/rescued_device.h"

#include <algorithm>
#include <cstring>

#include "formats/core/error.h"

namespace vdisk::ddrescue {

BadAreaMode parse_bad_area_mode(const std::string& text) {
  if (text == "zeros") return BadAreaMode::kZeros;
  if (text == "eio") return BadAreaMode::kEio;
  throw_invalid("", "--bad-areas must be 'zeros' or 'eio', not '" + text + "'");
}

RescuedDevice::RescuedDevice(BlockDevicePtr base, const Mapfile& map, BadAreaMode mode)
    : base_(std::move(base)), mode_(mode), map_path_(map.path) {
  check_covers(map, base_->size());
  areas_ = ddrescue::bad_areas(map, base_->size());
}

const BadArea* RescuedDevice::bad_area_at(uint64_t offset) const {
  // First area starting after offset; the one before it may contain offset.
  auto it = std::upper_bound(areas_.begin(), areas_.end(), offset,
                             [](uint64_t off, const BadArea& a) { return off < a.start; });
  if (it == areas_.begin()) return nullptr;
  --it;
  return offset - it->start < it->length ? &*it : nullptr;
}

uint64_t RescuedDevice::next_bad_start(uint64_t offset) const {
  if (bad_area_at(offset)) return offset;
  auto it = std::upper_bound(areas_.begin(), areas_.end(), offset,
                             [](uint64_t off, const BadArea& a) { return off < a.start; });
  return it == areas_.end() ? size() : it->start;
}

void RescuedDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  uint64_t pos = offset;
  const uint64_t end = offset + len;
  if (mode_ == BadAreaMode::kEio) {
    uint64_t bad = next_bad_start(pos);
    if (bad < end) {
      const BadArea* a = bad_area_at(bad);
      throw Error(ErrorKind::kIo, map_path_, bad,
                  std::string("unrescued area (") + status_name(a ? a->status : '?') +
                      ") of the rescued image: no data to return (EIO)");
    }
  }
  while (pos < end) {
    if (const BadArea* a = bad_area_at(pos)) {
      uint64_t n = std::min(end, a->start + a->length) - pos;
      std::memset(out + (pos - offset), 0, static_cast<size_t>(n));
      pos += n;
      continue;
    }
    uint64_t n = std::min(end, next_bad_start(pos)) - pos;
    base_->read(pos, out + (pos - offset), static_cast<size_t>(n));
    pos += n;
  }
}

Extent RescuedDevice::do_block_status(uint64_t offset, uint64_t len) const {
  if (const BadArea* a = bad_area_at(offset)) {
    return Extent{std::min(len, a->start + a->length - offset), ExtentType::kUnallocated};
  }
  uint64_t good = std::min(len, next_bad_start(offset) - offset);
  Extent e = base_->block_status(offset, good);
  e.length = std::min(e.length, good);
  return e;
}

std::vector<const BlockDevice*> RescuedDevice::layers() const {
  std::vector<const BlockDevice*> out = base_->layers();
  out[0] = this;
  return out;
}

ImageInfo RescuedDevice::info() const {
  ImageInfo info = base_->info();
  info.allocated_bytes = 0;
  Json m = Json::object();
  m.set("path", map_path_);
  m.set("bad_areas", static_cast<uint64_t>(areas_.size()));
  m.set("bad_bytes", bad_bytes(areas_));
  m.set("bad_area_reads", mode_ == BadAreaMode::kEio ? "eio" : "zeros");
  info.details.set("ddrescue_mapfile", std::move(m));
  return info;
}

}  // namespace vdisk::ddrescue
