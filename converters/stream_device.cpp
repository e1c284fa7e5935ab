#include "converters/stream_device.h"

#include <unistd.h>

#include <cerrno>

#include "formats/core/error.h"

namespace vdisk {

RawStream::RawStream(uint64_t size, uint32_t sector_size, std::string label)
    : size_(size), sector_size_(sector_size), label_(std::move(label)) {}

ImageInfo RawStream::info() const {
  ImageInfo info;
  info.path = label_;
  info.format = "raw";
  info.subformat = "stream";
  info.virtual_size = size_;
  return info;
}

Extent RawStream::do_block_status(uint64_t, uint64_t len) const {
  return Extent{len, ExtentType::kData};
}

void RawStream::require_in_order(uint64_t offset, uint64_t next) const {
  if (offset != next) {
    throw Error(
        ErrorKind::kUnsupported, label_, offset,
        "a stream can only be read in order (expected offset " + std::to_string(next) + ")");
  }
}

StreamDevice::StreamDevice(int fd, uint64_t size, std::string label)
    : RawStream(size, 512, std::move(label)), fd_(fd) {}

namespace {
// Reads until `len` bytes or end of stream; returns the count.
size_t read_full(int fd, uint8_t* p, size_t len, const std::string& label, uint64_t offset) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, p + got, len - got);
    if (n < 0) {
      // The CLI's SIGINT/SIGTERM handlers are installed without SA_RESTART:
      // a read blocked on an idle pipe returns EINTR, which means "stop".
      if (errno == EINTR) throw Error(ErrorKind::kInterrupted, label, offset + got, "interrupted");
      throw_errno(label, offset + got, "read", errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}
}  // namespace

void StreamDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  std::lock_guard<std::mutex> lock(mu_);
  require_in_order(offset, pos_);
  size_t got = read_full(fd_, static_cast<uint8_t*>(buf), len, label_, offset);
  pos_ += got;
  if (got < len) {
    throw Error(ErrorKind::kInvalidArgument, label_, pos_,
                "the stream ended after " + std::to_string(pos_) + " bytes, before the " +
                    std::to_string(size_) + " bytes given by --size");
  }
  if (pos_ == size_) {
    uint8_t extra;
    if (read_full(fd_, &extra, 1, label_, pos_) != 0) {
      throw Error(
          ErrorKind::kInvalidArgument, label_, pos_,
          "the stream holds more than the " + std::to_string(size_) + " bytes given by --size");
    }
  }
}

}  // namespace vdisk
