// The consumers copy_device feeds (see copy_pipeline.h): the writer, one
// hasher per hash, progress, and the read-error list. Each runs on its own
// thread and sees every chunk once, in offset order.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "converters/convert.h"
#include "converters/copy_pipeline.h"
#include "converters/hasher.h"
#include "converters/progress.h"
#include "formats/core/writer.h"

namespace vdisk {

// One hash of the guest stream: zero chunks are fed as zeros (never read),
// read chunks as read (their read errors zero-filled by the reader).
// Unreadable chunks are fed as stored, or as zeros with `zero_fill_unreadable`.
class HashConsumer final : public ChunkConsumer {
 public:
  HashConsumer(HashAlgo algo, bool zero_fill_unreadable)
      : hasher_(std::make_unique<Hasher>(algo)), zero_fill_(zero_fill_unreadable) {}
  void consume(const Chunk& c) override;
  // The running hash; read it once the pipeline has returned.
  Hasher& hasher() { return *hasher_; }

 private:
  std::unique_ptr<Hasher> hasher_;
  bool zero_fill_;
};

// Hands the stream to an ImageWriter, which its contract requires on one
// thread in increasing, non-overlapping offset order: data runs as write(),
// zero runs and zero chunks as write_zeroes(). Unreadable chunks and read
// errors are never written, so the output leaves them unallocated (reading
// as zeros).
class WriterConsumer final : public ChunkConsumer {
 public:
  explicit WriterConsumer(ImageWriter& dst) : dst_(dst) {}
  void consume(const Chunk& c) override;
  uint64_t bytes_written() const { return written_; }  // handed over as data
  uint64_t zero_bytes() const { return zero_bytes_; }  // declared zero

 private:
  ImageWriter& dst_;
  uint64_t written_ = 0;
  uint64_t zero_bytes_ = 0;
};

// Reports the end of each chunk handed on: monotonic, from one thread (as
// ProgressSink::update requires). begin() and end() are the caller's.
class ProgressConsumer final : public ChunkConsumer {
 public:
  explicit ProgressConsumer(ProgressSink& sink) : sink_(sink) {}
  void consume(const Chunk& c) override { sink_.update(c.offset + c.length); }

 private:
  ProgressSink& sink_;
};

// Collects the read errors of every chunk: sorted, adjacent ones merged
// (also across chunk edges).
class ReadErrorCollector final : public ChunkConsumer {
 public:
  void consume(const Chunk& c) override;
  // Read them once the pipeline has returned.
  const std::vector<ByteRange>& ranges() const { return ranges_; }
  std::vector<ByteRange> take() { return std::move(ranges_); }

 private:
  std::vector<ByteRange> ranges_;
};

}  // namespace vdisk
