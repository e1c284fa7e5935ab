#include "converters/copy_plan.h"

#include <algorithm>

#include "formats/core/error.h"

namespace vdisk {

uint64_t check_unreadable_ranges(std::span<const ByteRange> ranges, uint64_t size) {
  uint64_t total = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const ByteRange& r = ranges[i];
    if (r.length == 0 || r.start > size || r.length > size - r.start ||
        (i > 0 && r.start < ranges[i - 1].start + ranges[i - 1].length)) {
      throw Error(ErrorKind::kInvalidArgument, "", r.start,
                  "unreadable ranges must be sorted, non-overlapping and inside the source");
    }
    total += r.length;
  }
  return total;
}

CopyPlanner::CopyPlanner(const BlockDevice& src, PlanOptions opts)
    : src_(src), opts_(opts), size_(src.size()) {
  opts_.chunk_size = std::max<uint64_t>(opts_.chunk_size, 1);
  opts_.max_zero_chunk = std::max<uint64_t>(opts_.max_zero_chunk, 1);
}

Extent CopyPlanner::status(uint64_t offset, uint64_t len) const {
  if (!opts_.status_errors_as_data) return src_.block_status(offset, len);
  try {
    return src_.block_status(offset, len);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kIo) throw;
    return Extent{std::min(len, opts_.chunk_size), ExtentType::kData};
  }
}

std::optional<PlannedChunk> CopyPlanner::next() {
  if (pos_ >= size_) return std::nullopt;
  const std::span<const ByteRange> bad = opts_.unreadable;
  while (bad_ < bad.size() && bad[bad_].start + bad[bad_].length <= pos_) ++bad_;
  PlannedChunk c;
  c.offset = pos_;
  c.unreadable = bad_ < bad.size() && bad[bad_].start <= pos_;
  // The chunk ends at the next edge of an unreadable range at the latest.
  const uint64_t boundary = c.unreadable        ? bad[bad_].start + bad[bad_].length
                            : bad_ < bad.size() ? bad[bad_].start
                                                : size_;
  const uint64_t room = boundary - pos_;
  // block_status answers between 1 and `room` bytes (BlockDevice's contract,
  // checked by its public wrapper).
  const Extent e = status(pos_, room);
  if (e.type == ExtentType::kData && (!c.unreadable || opts_.read_unreadable)) {
    uint64_t len = std::min(e.length, opts_.chunk_size);
    while (len < opts_.chunk_size && len < room) {
      const Extent more = status(pos_ + len, std::min(room - len, opts_.chunk_size - len));
      if (more.type != ExtentType::kData) break;
      len += more.length;
    }
    c.length = len;
    c.read = true;
  } else {
    // Zero and unallocated extents alike (the writer declares both zero),
    // and data that is not wanted.
    const bool data = e.type == ExtentType::kData;
    const uint64_t cap = std::min(room, opts_.max_zero_chunk);
    uint64_t len = std::min(e.length, cap);
    while (len < cap) {
      const Extent more = status(pos_ + len, cap - len);
      if ((more.type == ExtentType::kData) != data) break;
      len += more.length;
    }
    c.length = len;
    c.read = false;
  }
  pos_ += c.length;
  return c;
}

}  // namespace vdisk
