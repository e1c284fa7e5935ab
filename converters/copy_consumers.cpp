#include "converters/copy_consumers.h"

namespace vdisk {

void HashConsumer::consume(const Chunk& c) {
  if (!c.read || (c.unreadable && zero_fill_))
    hasher_->update_zeros(c.length);
  else
    hasher_->update(c.bytes, static_cast<size_t>(c.length));
}

void WriterConsumer::consume(const Chunk& c) {
  if (c.unreadable) return;
  if (!c.read) {
    dst_.write_zeroes(c.offset, c.length);
    zero_bytes_ += c.length;
    return;
  }
  for (const DataRun& r : c.runs) {
    if (r.data) {
      dst_.write(c.offset + r.start, c.bytes + r.start, static_cast<size_t>(r.length));
      written_ += r.length;
    } else {
      dst_.write_zeroes(c.offset + r.start, r.length);
      zero_bytes_ += r.length;
    }
  }
}

void ReadErrorCollector::consume(const Chunk& c) {
  for (const ByteRange& b : c.read_errors) {
    if (!ranges_.empty() && ranges_.back().start + ranges_.back().length == b.start)
      ranges_.back().length += b.length;
    else
      ranges_.push_back(b);
  }
}

}  // namespace vdisk
