#include "formats/core/block_device.h"

#include <algorithm>
#include <cstring>

#include "formats/core/error.h"
#include "formats/core/file.h"

namespace vdisk {

const char* extent_type_name(ExtentType t) {
  switch (t) {
    case ExtentType::kData:
      return "data";
    case ExtentType::kZero:
      return "zero";
    case ExtentType::kUnallocated:
      return "unallocated";
  }
  return "?";
}

void check_read_range(const std::string& path, uint64_t dev_size, uint64_t offset, uint64_t len) {
  if (offset > dev_size || len > dev_size - offset) {
    throw Error(ErrorKind::kInvalidArgument, path, offset,
                "read of " + std::to_string(len) + " bytes past the end of the " +
                    std::to_string(dev_size) + "-byte virtual disk");
  }
}

void BlockDevice::read(uint64_t offset, void* buf, size_t len) const {
  const uint64_t sz = size();
  if (offset > sz || len > sz - offset) check_read_range(label(), sz, offset, len);
  if (len == 0) return;
  do_read(offset, buf, len);
}

Extent BlockDevice::block_status(uint64_t offset, uint64_t len) const {
  const uint64_t sz = size();
  if (offset >= sz || len == 0) {
    throw Error(ErrorKind::kInvalidArgument, label(), offset,
                "block status of " + std::to_string(len) + " bytes at offset " +
                    std::to_string(offset) + " of the " + std::to_string(sz) +
                    "-byte virtual disk: the range is empty or past the end");
  }
  len = std::min(len, sz - offset);
  Extent e = do_block_status(offset, len);
  if (e.length == 0 || e.length > len) {
    // A format bug; an error instead of an endless loop or a walk past the end.
    throw Error(ErrorKind::kCorrupt, label(), offset,
                "block status answered " + std::to_string(e.length) + " bytes for a query of " +
                    std::to_string(len));
  }
  return e;
}

uint64_t count_allocated_bytes(const BlockDevice& dev) {
  uint64_t total = 0;
  const uint64_t size = dev.size();
  for (uint64_t off = 0; off < size;) {
    Extent e = dev.block_status(off, size - off);
    if (e.type == ExtentType::kData) total += e.length;
    off += e.length;
  }
  return total;
}

std::vector<MappedExtent> map_extents(const BlockDevice& dev) {
  std::vector<MappedExtent> out;
  const uint64_t size = dev.size();
  for (uint64_t off = 0; off < size;) {
    Extent e = dev.block_status(off, size - off);
    if (!out.empty() && out.back().type == e.type && out.back().depth == e.depth) {
      out.back().length += e.length;
    } else {
      out.push_back({off, e.length, e.type, e.depth});
    }
    off += e.length;
  }
  return out;
}

bool is_zero(const void* buf, size_t len) {
  const auto* p = static_cast<const uint8_t*>(buf);
  size_t i = 0;
  // Byte-wise until aligned, then 64 bytes at a time.
  while (i < len && (reinterpret_cast<uintptr_t>(p + i) & 7)) {
    if (p[i++]) return false;
  }
  for (; i + 64 <= len; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, 64);
    if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return false;
  }
  for (; i < len; ++i) {
    if (p[i]) return false;
  }
  return true;
}

SliceDevice::SliceDevice(BlockDevicePtr base, uint64_t offset, uint64_t length, std::string label)
    : base_(std::move(base)), offset_(offset), length_(length), label_(std::move(label)) {
  if (offset_ > base_->size() || length_ > base_->size() - offset_) {
    throw Error(ErrorKind::kCorrupt, label_, offset_,
                "range of " + std::to_string(length_) + " bytes runs past the end of the " +
                    std::to_string(base_->size()) + "-byte disk");
  }
}

void SliceDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  base_->read(offset_ + offset, buf, len);
}

Extent SliceDevice::do_block_status(uint64_t offset, uint64_t len) const {
  Extent e = base_->block_status(offset_ + offset, len);
  e.length = std::min(e.length, len);
  return e;
}

ImageInfo SliceDevice::info() const {
  ImageInfo info = base_->info();
  info.path = label_;
  info.virtual_size = length_;
  info.allocated_bytes = 0;
  info.details.set("slice_offset", offset_);
  return info;
}

FileDevice::FileDevice(std::shared_ptr<const File> file, uint64_t offset, uint64_t length,
                       std::string format_name, bool pad_with_zeros)
    : file_(std::move(file)),
      offset_(offset),
      length_(length),
      format_name_(std::move(format_name)),
      pad_(pad_with_zeros) {
  if (!pad_ && (offset_ > file_->size() || length_ > file_->size() - offset_)) {
    throw Error(ErrorKind::kCorrupt, file_->path(), offset_,
                "data area of " + std::to_string(length_) + " bytes runs past the end of the " +
                    std::to_string(file_->size()) + "-byte file");
  }
}

std::string FileDevice::label() const {
  return file_->path();
}

void FileDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  if (!pad_) {
    file_->read_at(offset_ + offset, buf, len);
    return;
  }
  size_t got = file_->read_some(offset_ + offset, buf, len);
  if (got < len) std::memset(static_cast<uint8_t*>(buf) + got, 0, len - got);
}

Extent FileDevice::do_block_status(uint64_t offset, uint64_t len) const {
  uint64_t file_off = offset_ + offset;
  if (file_off >= file_->size()) return Extent{len, ExtentType::kUnallocated};
  uint64_t in_file = std::min(len, file_->size() - file_off);
  FileRange r = file_->range_status(file_off, in_file);
  if (r.length == 0) r.length = in_file;
  return Extent{std::min(r.length, in_file), r.hole ? ExtentType::kUnallocated : ExtentType::kData};
}

ImageInfo FileDevice::info() const {
  ImageInfo info;
  info.path = file_->path();
  info.format = format_name_;
  info.virtual_size = length_;
  info.actual_size = file_->allocated_on_host();
  return info;
}

}  // namespace vdisk
