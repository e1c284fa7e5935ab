// What a reader thread of copy_device does to one chunk: read it from the
// source (isolating read errors when asked to continue past them), then find
// its runs of all-zero blocks for the writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "converters/convert.h"
#include "converters/copy_plan.h"
#include "formats/core/block_device.h"

namespace vdisk {

// A run of a chunk: `length` bytes from `start` (relative to the chunk), all
// data or all zero blocks.
struct DataRun {
  uint64_t start = 0;
  uint64_t length = 0;
  bool data = false;
};

// A planned chunk travelling from the readers to the consumers. Consumers
// see it read-only, in plan order, each on its own thread.
struct Chunk : PlannedChunk {
  // `length` bytes of the source when `read` (a pooled buffer that the
  // pipeline owns), with read_errors zero-filled. Null otherwise.
  uint8_t* bytes = nullptr;
  // Ranges of a read chunk that failed to read (OnReadError::kContinue):
  // absolute, sorted, adjacent ones merged.
  std::vector<ByteRange> read_errors;
  // Read chunks outside unreadable ranges, when the writer needs them:
  // alternating runs of data and of all-zero blocks, covering the chunk
  // except its read errors (never written, they stay unallocated).
  std::vector<DataRun> runs;
};

// Splits `c` (read, bytes filled) into runs of data and of all-zero blocks of
// `granularity` bytes, aligned to guest offsets so the writer sees aligned
// ranges; its read errors are in no run.
void find_runs(Chunk& c, size_t granularity);

// Reads a chunk under OnReadError::kContinue. A chunk is first read whole
// (the fast path, one request). When that fails with Error(kIo), it is read
// again in 64 KiB pieces, and each piece that fails in 4 KiB pieces; a 4 KiB
// piece that fails is a bad range. 4 KiB is the floor because the Linux page
// cache reads a regular file a page (4 KiB) at a time, so a smaller read of a
// failing page fails too, and it is the physical sector of Advanced Format
// disks; 64 KiB first keeps a clean stretch of a damaged chunk to a few
// requests. Pieces are aligned to guest offsets.
//
// The bound: a dying disk can take seconds per failed read, and isolating
// every 4 KiB of a dead multi-GiB source would take days. So:
//  - after kSplitStreak failed reads in a row within a chunk, failed 64 KiB
//    pieces are marked bad whole instead of being split, until a read
//    succeeds again (a long bad stretch costs one read per 64 KiB);
//  - after kDeadStreak failed reads in a row overall (across chunks and
//    reader threads: the `streak` counter they share) the source is presumed
//    dead: a chunk whose whole read fails is then probed at its first and
//    last 64 KiB only, and marked bad whole when both fail too. Any
//    successful read ends the presumption.
// A fully dead source then costs three reads per 4 MiB chunk. The price: a
// bad stretch may hide readable bytes (up to 60 KiB at its ends, or a
// readable middle of a chunk whose ends fail while the source looks dead);
// GNU ddrescue, fed our --error-map, trims and scrapes those finer.
//
// One ReadRescuer per chunk read; errors other than Error(kIo) (corrupt
// metadata, an interruption) are rethrown, never isolated.
class ReadRescuer {
 public:
  static constexpr uint32_t kSplitStreak = 32;
  static constexpr uint32_t kDeadStreak = 64;

  ReadRescuer(const BlockDevice& src, std::atomic<uint32_t>& streak,
              const std::atomic<bool>* cancel)
      : src_(src), streak_(streak), cancel_(cancel) {}

  // Reads [off, off + len) into p; ranges that cannot be read are zero-filled
  // and appended to `bad` (absolute, sorted, adjacent ones merged). Throws
  // Error(kInterrupted) when *cancel is set before a read.
  void read(uint64_t off, uint8_t* p, uint64_t len, std::vector<ByteRange>& bad);

 private:
  static constexpr uint64_t kPieces[] = {64 << 10, 4 << 10};

  bool try_read(uint64_t off, uint8_t* p, uint64_t len);
  void split(uint64_t off, uint8_t* p, uint64_t len, size_t level);
  void mark(uint64_t off, uint8_t* p, uint64_t len);

  const BlockDevice& src_;
  std::atomic<uint32_t>& streak_;  // failed reads in a row, all chunks
  const std::atomic<bool>* cancel_;
  std::vector<ByteRange>* bad_ = nullptr;
  uint32_t local_streak_ = 0;  // failed reads in a row, this chunk
};

// Fills read chunks from the source. Thread-safe: every reader thread of the
// pool calls read() on the same ChunkReader.
class ChunkReader {
 public:
  struct Options {
    OnReadError on_read_error = OnReadError::kStop;
    // Appended to the message of a source read error under kStop.
    std::string read_error_hint;
    const std::atomic<bool>* cancel = nullptr;
    // Granularity of the zero-block scan (find_runs) for the writer; 0 when
    // there is no writer (the scan is then skipped).
    size_t zero_granularity = 0;
  };

  ChunkReader(const BlockDevice& src, Options opts) : src_(src), opts_(std::move(opts)) {}

  // Reads c.length bytes at c.offset into c.bytes (c.read is set), fills
  // c.read_errors under kContinue, and c.runs when there is a writer and the
  // chunk lies outside the unreadable ranges. The zero-block scan runs here,
  // on the reader threads: on the single writer thread it made conversions
  // a tenth slower, and the writer is the stage that bounds a conversion
  // without hashes.
  void read(Chunk& c) const;

 private:
  const BlockDevice& src_;
  Options opts_;
  mutable std::atomic<uint32_t> failure_streak_{0};
};

}  // namespace vdisk
