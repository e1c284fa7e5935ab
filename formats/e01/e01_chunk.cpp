#include "formats/e01/e01_chunk.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "formats/core/deflate.h"

namespace vdisk::e01 {

namespace {

std::vector<uint8_t> zlib_level(const std::vector<uint8_t>& zeros, int level) {
  uLongf n = compressBound(static_cast<uLong>(zeros.size()));
  std::vector<uint8_t> out(n);
  if (compress2(out.data(), &n, zeros.data(), static_cast<uLong>(zeros.size()), level) != Z_OK) {
    throw std::runtime_error("compress2 failed");
  }
  out.resize(n);
  return out;
}

}  // namespace

std::vector<uint8_t> zero_chunk_stream(size_t chunk_bytes) {
  const std::vector<uint8_t> zeros(chunk_bytes, 0);
  std::vector<uint8_t> best = zlib_level(zeros, 9);
  std::vector<uint8_t> other;
  DeflateCompressor(DeflateWrapper::kZlib, DeflateCompressor::max_level()).compress(zeros.data(), zeros.size(), other);
  return other.size() < best.size() ? other : best;
}

ZeroChunkEncodings::ZeroChunkEncodings(size_t chunk_bytes) {
  const std::vector<uint8_t> zeros(chunk_bytes, 0);
  auto add = [&](std::vector<uint8_t> e) {
    if (std::find(enc_.begin(), enc_.end(), e) == enc_.end()) enc_.push_back(std::move(e));
  };
  for (int level = 1; level <= 9; ++level) add(zlib_level(zeros, level));
  add(zero_chunk_stream(chunk_bytes));
}

bool ZeroChunkEncodings::has_length(size_t len) const {
  for (const auto& e : enc_) {
    if (e.size() == len) return true;
  }
  return false;
}

bool ZeroChunkEncodings::matches(const uint8_t* p, size_t len) const {
  for (const auto& e : enc_) {
    if (e.size() == len && std::memcmp(e.data(), p, len) == 0) return true;
  }
  return false;
}

}  // namespace vdisk::e01
