#include "converters/chunk_reader.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "formats/core/error.h"

namespace vdisk {

void find_runs(Chunk& c, size_t granularity) {
  const uint8_t* p = c.bytes;
  const std::vector<ByteRange>& errors = c.read_errors;
  c.runs.clear();
  uint64_t pos = 0;
  size_t err = 0;
  while (pos < c.length) {
    if (err < errors.size() && errors[err].start - c.offset <= pos) {
      pos = errors[err].start + errors[err].length - c.offset;
      ++err;
      continue;
    }
    const uint64_t stop = err < errors.size() ? errors[err].start - c.offset : c.length;
    const uint64_t guest = c.offset + pos;
    const uint64_t next = std::min<uint64_t>(stop, pos + (granularity - guest % granularity));
    const bool data = !is_zero(p + pos, static_cast<size_t>(next - pos));
    if (c.runs.empty() || c.runs.back().data != data ||
        c.runs.back().start + c.runs.back().length != pos)  // not across an error
      c.runs.push_back({pos, next - pos, data});
    else
      c.runs.back().length += next - pos;
    pos = next;
  }
}

void ReadRescuer::read(uint64_t off, uint8_t* p, uint64_t len, std::vector<ByteRange>& bad) {
  bad_ = &bad;
  local_streak_ = 0;
  const bool presumed_dead = streak_.load() >= kDeadStreak;
  if (try_read(off, p, len)) return;
  size_t level = 0;
  while (level + 1 < std::size(kPieces) && kPieces[level] >= len) ++level;
  if (kPieces[level] >= len) {
    mark(off, p, len);
    return;
  }
  if (presumed_dead) {
    const uint64_t end = off + len, piece = kPieces[0];
    const uint64_t head_end = std::min(end, (off / piece + 1) * piece);
    const uint64_t tail = std::max(off, (end - 1) / piece * piece);
    bool alive = try_read(off, p, head_end - off);
    if (!alive && tail >= head_end) alive = try_read(tail, p + (tail - off), end - tail);
    if (!alive) {
      mark(off, p, len);
      return;
    }
  }
  split(off, p, len, level);
}

bool ReadRescuer::try_read(uint64_t off, uint8_t* p, uint64_t len) {
  if (cancel_ && cancel_->load()) throw Error(ErrorKind::kInterrupted, "", off, "interrupted");
  try {
    src_.read(off, p, static_cast<size_t>(len));
    streak_ = 0;
    local_streak_ = 0;
    return true;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kIo) throw;
  }
  ++streak_;
  ++local_streak_;
  return false;
}

void ReadRescuer::split(uint64_t off, uint8_t* p, uint64_t len, size_t level) {
  const uint64_t piece = kPieces[level];
  const uint64_t end = off + len;
  for (uint64_t pos = off; pos < end;) {
    if (level > 0 && local_streak_ >= kSplitStreak) {
      mark(pos, p + (pos - off), end - pos);  // the rest of a failed piece
      return;
    }
    const uint64_t next = std::min(end, (pos / piece + 1) * piece);
    uint8_t* q = p + (pos - off);
    if (!try_read(pos, q, next - pos)) {
      if (level + 1 < std::size(kPieces) && local_streak_ < kSplitStreak)
        split(pos, q, next - pos, level + 1);
      else
        mark(pos, q, next - pos);
    }
    pos = next;
  }
}

void ReadRescuer::mark(uint64_t off, uint8_t* p, uint64_t len) {
  std::memset(p, 0, static_cast<size_t>(len));
  if (!bad_->empty() && bad_->back().start + bad_->back().length == off)
    bad_->back().length += len;
  else
    bad_->push_back({off, len});
}

void ChunkReader::read(Chunk& c) const {
  if (opts_.on_read_error == OnReadError::kContinue) {
    ReadRescuer(src_, failure_streak_, opts_.cancel)
        .read(c.offset, c.bytes, c.length, c.read_errors);
  } else {
    try {
      src_.read(c.offset, c.bytes, static_cast<size_t>(c.length));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kIo || opts_.read_error_hint.empty()) throw;
      throw Error(e.kind(), e.file(), e.offset(), e.message() + opts_.read_error_hint);
    }
  }
  if (opts_.zero_granularity > 0 && !c.unreadable) find_runs(c, opts_.zero_granularity);
}

}  // namespace vdisk
