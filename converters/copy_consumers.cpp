#include "converters/copy_consumers.h"

namespace vdisk {

void HashConsumer::consume(const Chunk& c) {
  if (!c.read || (c.unreadable && zero_fill_))
    hasher_->update_zeros(c.length);
  else
    hasher_->update(c.bytes, static_cast<size_t>(c.length));
}

void WriterConsumer::consume(const Chunk& c) {
  if (c.unreadable) {  // never written (reads as zeros); a format may record it
    dst_.mark_unreadable(c.offset, c.length);
    return;
  }
  if (!c.read) {
    dst_.write_zeroes(c.offset, c.length);
    zero_bytes_ += c.length;
    return;
  }
  // Runs of data and zeros; the ranges that failed to read lie between them
  // and are marked unreadable in order.
  size_t err = 0;
  for (const DataRun& r : c.runs) {
    for (; err < c.read_errors.size() && c.read_errors[err].start < c.offset + r.start; ++err)
      dst_.mark_unreadable(c.read_errors[err].start, c.read_errors[err].length);
    if (r.data) {
      dst_.write(c.offset + r.start, c.bytes + r.start, static_cast<size_t>(r.length));
      written_ += r.length;
    } else {
      dst_.write_zeroes(c.offset + r.start, r.length);
      zero_bytes_ += r.length;
    }
  }
  for (; err < c.read_errors.size(); ++err)
    dst_.mark_unreadable(c.read_errors[err].start, c.read_errors[err].length);
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
