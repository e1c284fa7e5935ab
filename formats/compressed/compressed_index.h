// The index of a compressed raw image: where decoding can start (access
// points), the disk size, and which ranges of the disk are zeros. Built from
// the format's own tables where it has them (xz index, zstd frame headers and
// seek table), else by one decoding pass (gzip, bzip2, zstd frames without a
// content size); kept in memory for the life of the device, or in a sidecar
// file the user names (--index FILE).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "formats/core/file.h"

namespace vdisk::compressed {

// A place in the stream where decoding can start without what came before.
//  gzip: a member start (no window) or a deflate block boundary inside a
//        member with the 32 KiB of output before it (zran, zlib's
//        examples/zran.c idea): `in` is the first byte holding unread bits,
//        `bits` how many bits of the byte before `in` are still unread.
//  xz:   a block (in = block header offset, in_end = end of its padding,
//        bits = the stream's check type).
//  zstd: a frame (in = frame start, in_end = frame end).
//  bzip2: a block, in bits: in = bit offset of the block magic, in_end = bit
//        offset of the next magic; bits = the block CRC.
struct AccessPoint {
  uint64_t out = 0;
  uint64_t in = 0;
  uint64_t in_end = 0;
  uint32_t bits = 0;
  // gzip only: the window, deflate-compressed (raw) to save memory; empty at
  // a member start.
  std::shared_ptr<const std::vector<uint8_t>> window;
};

// Zero runs of the decoded stream, exact byte ranges [start, end), sorted.
// Runs shorter than kZeroGranule are kept only where they touch the start or
// end of what was fed (so runs of neighbouring units can be joined); block
// status reports each run shrunk to whole granules (kZeroGranule-aligned disk
// offsets, or the disk's end), so callers always see sector-aligned extents.
inline constexpr uint64_t kZeroGranule = 4096;
using Runs = std::vector<std::pair<uint64_t, uint64_t>>;

// Finds the zero runs of data fed in order from disk offset `base`.
class ZeroTracker {
 public:
  explicit ZeroTracker(uint64_t base = 0) : base_(base), pos_(base), zero_from_(base) {}
  void feed(const uint8_t* data, size_t len);
  // Ends the data at the current position and returns the runs.
  Runs finish();
  uint64_t position() const { return pos_; }

 private:
  void close(uint64_t end);
  uint64_t base_, pos_;
  uint64_t zero_from_;  // just after the last non-zero byte seen
  Runs runs_;
};

// Appends `add` (sorted, each after the runs already in `into`) to `into`,
// joining runs that touch.
void append_runs(Runs& into, const Runs& add);

struct StreamIndex {
  std::vector<AccessPoint> points;  // sorted by out; points[0].out == 0
  uint64_t size = 0;                // disk size
  // Zero runs found so far; complete when `scanned` (a decoding pass ran).
  Runs zeros;
  bool scanned = false;
  // Set when the pass met damaged or truncated data: decoding cannot go past
  // disk offset damaged_at, and this says why (compressed offset included).
  std::string damage;
  uint64_t damaged_at = UINT64_MAX;
  // Facts for `info` (members, blocks, frames, seek table, …).
  std::vector<std::pair<std::string, std::string>> facts;
  uint64_t units = 0;  // members / blocks / frames counted
  // Input to a decoding pass (OpenOptions::decode_limit): the pass throws
  // Error(kUnsupported) once more than this many bytes have decoded; 0: no
  // limit.
  uint64_t decode_limit = 0;
};

// Throws Error(kUnsupported) naming `path` and the compressed offset `in`
// reached when `decoded` exceeds idx.decode_limit (when one is set).
void check_decode_limit(const StreamIndex& idx, const std::string& path, uint64_t in,
                        uint64_t decoded);

// Called with every decoded byte of a pass, in order.
using DataSink = std::function<void(const uint8_t* data, size_t len)>;

// The sidecar (--index FILE), written and read by this code only:
//   "VDISKIX1", codec name (8, zero padded), compressed size (8), head/tail
//   CRC32 (4 + 4), disk size (8), flags (4: bit 0 scanned), point count (8),
//   zero run count (8), damaged_at (8), damage text length (4) + text,
//   points: out, in, in_end (8 each), bits (4), window length (4) + window;
//   runs: start, end (8 each); then the CRC32 of everything before (4).
// All little-endian. load_index validates every field against the image.
void save_index(Env& env, const std::string& path, const std::string& codec, const File& image,
                const StreamIndex& idx);
// Returns false when `path` does not exist; throws kCorrupt (naming the sidecar)
// when it is damaged, kInvalidArgument when it belongs to another image.
bool load_index(Env& env, const std::string& path, const std::string& codec, const File& image,
                StreamIndex& idx);

}  // namespace vdisk::compressed
