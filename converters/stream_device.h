// Raw disks that arrive as a stream and can be read only once, in order:
// a pipe (`vdisk convert --size N - DST`: StreamDevice) and acquire's
// pass-1 reads handed on as they are made (AcquireStream, converters/
// acquire.h). The converter reads strictly sequentially when
// CopyOptions::readers is 1, which is what these devices need.
#pragma once

#include <mutex>
#include <string>

#include "formats/core/block_device.h"

namespace vdisk {

// What every raw stream is, whatever feeds it: a size known in advance, a
// raw image of that size whose every byte is data (nothing is known about a
// stream before reading it), read from its first byte on, each read starting
// where the previous one ended. Subclasses supply the bytes (do_read).
class RawStream : public BlockDevice {
 public:
  uint64_t size() const final { return size_; }
  uint32_t sector_size() const final { return sector_size_; }
  std::string label() const final { return label_; }
  // A raw image, subformat "stream", of size().
  ImageInfo info() const final;

 protected:
  RawStream(uint64_t size, uint32_t sector_size, std::string label);
  Extent do_block_status(uint64_t offset, uint64_t len) const final;
  // Throws Error(kUnsupported) naming label() unless `offset` is `next`,
  // where the previous read ended.
  void require_in_order(uint64_t offset, uint64_t next) const;

  const uint64_t size_;
  const uint32_t sector_size_;
  const std::string label_;
};

// A raw stream read from a file descriptor (standard input).
class StreamDevice final : public RawStream {
 public:
  // `fd` is not closed. `size` is the length the user announced (--size).
  StreamDevice(int fd, uint64_t size, std::string label);

 protected:
  // Reads must come in order (require_in_order). Throws
  // Error(kInvalidArgument) when the stream ends before `size` bytes, or
  // holds more than `size` bytes (checked when the last byte is read).
  void do_read(uint64_t offset, void* buf, size_t len) const override;

 private:
  int fd_;
  mutable std::mutex mu_;
  mutable uint64_t pos_ = 0;
};

}  // namespace vdisk
