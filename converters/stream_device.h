// A raw disk arriving on a pipe (`vdisk convert --size N - DST`): a
// BlockDevice over a file descriptor that can only be read once, in order.
// The converter reads strictly sequentially when CopyOptions::readers is 1,
// which is what this device needs.
#pragma once

#include <mutex>
#include <string>

#include "formats/core/block_device.h"

namespace vdisk {

class StreamDevice final : public BlockDevice {
 public:
  // `fd` is not closed. `size` is the length the user announced (--size).
  StreamDevice(int fd, uint64_t size, std::string label);

  uint64_t size() const override { return size_; }
  ImageInfo info() const override;
  std::string label() const override { return label_; }

 protected:
  // Reads must come in order, each starting where the previous one ended;
  // throws Error(kUnsupported) otherwise. Throws Error(kInvalidArgument) when
  // the stream ends before `size` bytes, or holds more than `size` bytes
  // (checked when the last byte is read).
  void do_read(uint64_t offset, void* buf, size_t len) const override;
  // Everything is data: nothing is known about a pipe before reading it.
  Extent do_block_status(uint64_t offset, uint64_t len) const override;

 private:
  int fd_;
  uint64_t size_;
  std::string label_;
  mutable std::mutex mu_;
  mutable uint64_t pos_ = 0;
};

}  // namespace vdisk
