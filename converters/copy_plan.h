// The first stage of copy_device: the planner turns a device's block status
// into the chunks the copy reads and hands on. It reads no data.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "converters/convert.h"
#include "formats/core/block_device.h"

namespace vdisk {

// A piece of the guest stream. Chunks tile [0, size) in increasing offset
// order.
struct PlannedChunk {
  uint64_t offset = 0;
  uint64_t length = 0;
  // Its bytes are read from the source. Otherwise the chunk reads as zeros
  // (a zero or unallocated extent) or its bytes are not wanted (an unreadable
  // range when no hash needs the stored bytes): it is never read.
  bool read = false;
  // It lies inside one of PlanOptions::unreadable (never across its edges).
  bool unreadable = false;
};

struct PlanOptions {
  // Longest chunk that is read (and so the size of a read buffer).
  uint64_t chunk_size = 4 << 20;
  // Longest chunk that is not read. A zero chunk costs no memory, but a
  // hasher feeds it byte by byte and progress advances per chunk.
  uint64_t max_zero_chunk = uint64_t{1} << 30;
  // Ranges whose stored bytes are not disk content (CopyOptions::unreadable).
  // check_unreadable_ranges() must accept them; the caller keeps them alive.
  std::span<const ByteRange> unreadable;
  // Read the stored bytes of unreadable ranges that are data (the hash of
  // the source as stored needs them).
  bool read_unreadable = false;
  // A block status query that fails with Error(kIo) plans the range as data
  // (up to chunk_size) instead of throwing, so that reading it fails in turn
  // and the read-error rescue maps the bad ranges (OnReadError::kContinue:
  // sparse formats read metadata to answer block status).
  bool status_errors_as_data = false;
};

// Throws Error(kInvalidArgument) unless `ranges` are non-empty, sorted,
// non-overlapping and inside [0, size). Returns their total length.
uint64_t check_unreadable_ranges(std::span<const ByteRange> ranges, uint64_t size);

// Walks block status from offset 0 and cuts the device into chunks:
//  - consecutive data extents are gathered into reads of up to chunk_size,
//    so a format that answers block status in small pieces still gets large
//    reads;
//  - consecutive zero and unallocated extents are gathered into unread
//    chunks of up to max_zero_chunk (so are the data extents of an
//    unreadable range whose stored bytes are not wanted);
//  - a chunk never crosses the edge of an unreadable range.
// Not thread-safe: the reader pool calls it under its lock.
class CopyPlanner {
 public:
  CopyPlanner(const BlockDevice& src, PlanOptions opts);

  // The next chunk, or nothing past the end of the device. Throws what the
  // source's block status throws (see PlanOptions::status_errors_as_data).
  std::optional<PlannedChunk> next();

  // Where the next chunk starts.
  uint64_t position() const { return pos_; }

 private:
  Extent status(uint64_t offset, uint64_t len) const;

  const BlockDevice& src_;
  PlanOptions opts_;
  uint64_t size_;
  uint64_t pos_ = 0;
  size_t bad_ = 0;  // first unreadable range that does not end at or before pos_
};

}  // namespace vdisk
