// The conversion engine. It knows no format: it walks a BlockDevice's block
// status, reads only data extents, finds all-zero blocks inside them, hands the
// rest to an ImageWriter in increasing offset order, and hashes the complete
// guest stream (zeros included, fed from a zero buffer, never read) on one
// thread per algorithm, overlapped with reading and writing. The stages
// (planner, ordered reader pool, consumers) are in copy_plan.h,
// chunk_reader.h, copy_pipeline.h and copy_consumers.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "converters/hasher.h"
#include "converters/progress.h"
#include "formats/core/block_device.h"
#include "formats/core/writer.h"

namespace vdisk {

enum class OnReadError { kStop, kContinue };

struct CopyOptions {
  std::vector<HashAlgo> algos;                // empty: no hashing
  ProgressSink* progress = nullptr;           // may be null
  const std::atomic<bool>* cancel = nullptr;  // set by a signal handler
  size_t chunk_size = 4 << 20;                // bytes read per request
  size_t buffers = 8;                         // chunks in flight (memory = buffers * chunk_size)
  size_t zero_granularity = 4096;             // all-zero blocks of this size are not written
  // Threads issuing reads. Chunks are read concurrently and handed to the
  // consumers in offset order, which helps formats whose reads cost CPU
  // (decompression, many small metadata lookups). A device that must be read
  // strictly in order (standard input) needs 1.
  size_t readers = 2;
  // Ranges whose stored bytes are not trustworthy disk content (the
  // unrescued areas of a ddrescue mapfile): sorted, non-overlapping, inside
  // the source. They are never handed to the writer (the output leaves them
  // unallocated, so they read as zeros), and each algorithm is computed twice:
  // over the source as stored (CopyResult::hashes) and with these ranges
  // counted as zeros (CopyResult::hashes_zero_filled).
  std::vector<ByteRange> unreadable;
  // What a failed read of the source does. Only Error(kIo) from the source's
  // read (EIO, a file that shrank under us) counts: corrupt metadata,
  // interruptions and write errors always stop.
  //  - kStop: the error is rethrown, naming the offset that failed.
  //  - kContinue: the failed chunk is read again in smaller pieces to isolate
  //    the bad ranges (the rule and its bound: ReadRescuer, chunk_reader.h).
  //    Those ranges become unreadable ranges discovered during the copy: never
  //    written (the output leaves them unallocated, reading as zeros), hashed
  //    as zeros, listed in CopyResult::read_errors.
  OnReadError on_read_error = OnReadError::kStop;
  // Under kStop: appended to the message of a source read error (the CLI
  // names its option to continue here). Empty: the error as the source gave it.
  std::string read_error_hint;
  std::string phase = "converting";
};

struct CopyResult {
  uint64_t virtual_size = 0;
  uint64_t data_bytes_read = 0;   // bytes read from data extents
  uint64_t bytes_written = 0;     // bytes handed to the writer as data
  uint64_t zero_bytes = 0;        // guest bytes left as holes or zero ranges
  uint64_t unreadable_bytes = 0;  // bytes of CopyOptions::unreadable skipped
  // Ranges that failed to read under OnReadError::kContinue: sorted, adjacent
  // ranges merged. They may overlap CopyOptions::unreadable (whose stored
  // bytes are read for the as-stored hash).
  std::vector<ByteRange> read_errors;
  uint64_t read_error_bytes = 0;
  // The source as stored, in the order of CopyOptions::algos. Empty when
  // read_errors is not: the stored bytes of those ranges are unknown.
  std::vector<HashValue> hashes;
  // With CopyOptions::unreadable and read_errors counted as zeros (empty when
  // there are neither).
  std::vector<HashValue> hashes_zero_filled;
  // The content the output holds: hashes_zero_filled (or hashes), followed by
  // the zeros a writer that rounded the size up appended. Empty without dst.
  std::vector<HashValue> output_hashes;
  double seconds = 0;
};

// Copies `src` into `dst` (dst may be null: hash only).
//  - Never calls dst->finish() or abort(): the caller decides, once the
//    hashes are known (an output must not take its name before vdisk can
//    report what it holds).
//  - dst is called from one thread (not the caller's), in increasing,
//    non-overlapping offset order, as ImageWriter requires; progress->update()
//    likewise from one thread, monotonic; begin() and end() from the caller's.
//  - Memory is bounded by max(buffers, readers + 1) * chunk_size whatever the
//    size of the source.
//  - Throws Error(kInterrupted) soon after *cancel becomes true (checked
//    before each chunk is planned, read and consumed), and rethrows the first
//    error of any stage once every thread has stopped.
//  - Throws Error(kInvalidArgument) when opts.unreadable is not sorted,
//    non-overlapping and inside the source.
CopyResult copy_device(const BlockDevice& src, ImageWriter* dst, const CopyOptions& opts);

struct CompareResult {
  bool identical = false;  // same size and same content
  bool size_differs = false;
  uint64_t size_a = 0, size_b = 0;
  // First differing byte within the common size, when one was found (the
  // common part is identical without one).
  std::optional<uint64_t> first_difference;
  // When the sizes differ: the first byte of the larger device's extra part
  // (past the smaller size) that is not zero; none: the extra part is all
  // zeros. Set only when the common part is identical.
  std::optional<uint64_t> first_nonzero_extra;
};

// Compares the guest content of two devices, skipping ranges that are zero or
// unallocated in both without reading them. When the sizes differ and the
// common part is identical, also looks for data in the larger one's extra
// part (ranges that are zero or unallocated there are not read), as
// `qemu-img compare` does.
CompareResult compare_devices(const BlockDevice& a, const BlockDevice& b, ProgressSink* progress,
                              const std::atomic<bool>* cancel);

}  // namespace vdisk
