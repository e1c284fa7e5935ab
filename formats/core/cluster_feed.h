// Turns guest writes (increasing offsets, any 512-byte multiple) into whole
// clusters (VMDK grains, qcow2 clusters) for writers that allocate by the
// cluster: runs of complete clusters are passed straight from the caller's
// buffer, pieces of a cluster are gathered (zero-filled) until the cluster is
// complete or a later cluster starts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace vdisk {

class ClusterFeed {
 public:
  explicit ClusterFeed(uint64_t grain_bytes)
      : grain_(grain_bytes), buf_(static_cast<size_t>(grain_bytes)) {}

  // emit(first_cluster, data, count): `count` whole clusters at `data`.
  template <class Emit>
  void write(uint64_t offset, const uint8_t* p, size_t len, Emit&& emit) {
    while (len > 0) {
      uint64_t g = offset / grain_;
      uint64_t in = offset - g * grain_;
      if (have_ && g != cur_) flush(emit);
      if (in == 0 && len >= grain_ && !have_) {
        size_t count = static_cast<size_t>(len / grain_);
        emit(g, p, count);
        size_t n = static_cast<size_t>(count * grain_);
        offset += n, p += n, len -= n;
        continue;
      }
      if (!have_) {
        std::memset(buf_.data(), 0, buf_.size());
        cur_ = g;
        have_ = true;
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, grain_ - in));
      std::memcpy(buf_.data() + in, p, n);
      offset += n, p += n, len -= n;
      if (in + n == grain_) flush(emit);
    }
  }

  template <class Emit>
  void flush(Emit&& emit) {
    if (!have_) return;
    have_ = false;
    emit(cur_, static_cast<const uint8_t*>(buf_.data()), size_t{1});
  }

 private:
  uint64_t grain_;
  std::vector<uint8_t> buf_;
  uint64_t cur_ = 0;
  bool have_ = false;
};

}  // namespace vdisk
