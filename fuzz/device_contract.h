// The contract of formats/core/block_device.h, checked on a live device. The
// fuzz targets (fuzz_exercise.h), the regression replay and the registry's
// round-trip test (tests/test_roundtrip.cpp) all judge devices with this one
// function, so a broken promise found by one is a failure in all of them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/error.h"
#include "fuzz/outcome.h"

namespace vdisk::fuzz {

struct DeviceCheck {
  // How much the walk reads. The fuzzer bounds its work per input: up to
  // max_extents answers, and of each extent its whole length when it is at
  // most 2 * edge_bytes, else edge_bytes at each end, up to max_read_bytes in
  // all. The round-trip test sets read_all: every byte of every extent.
  size_t max_extents = 4096;
  uint64_t max_read_bytes = 4 << 20;
  uint64_t edge_bytes = 16 * 1024;
  bool read_all = false;
  // When not empty, the guest content the device must read back (its size
  // is the device's size).
  std::span<const uint8_t> expected;
};

namespace detail {

[[noreturn]] inline void broken(const BlockDevice& dev, const std::string& what) {
  throw ContractViolation(dev.label() + ": " + what);
}

inline std::string extent_text(uint64_t off, const Extent& e) {
  return std::string(extent_type_name(e.type)) + " extent of " + std::to_string(e.length) +
         " bytes at " + std::to_string(off) + " (depth " + std::to_string(e.depth) + ")";
}

// Calls `f`, which must throw Error(kInvalidArgument).
template <typename F>
void expect_invalid_argument(const BlockDevice& dev, const std::string& call, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInvalidArgument) return;
    broken(dev, call + " threw " + error_kind_name(e.kind()) + " (" + e.what() +
                    "), not invalid-argument");
  }
  broken(dev, call + " did not throw");
}

// The type and depth of the single byte at `off` must be those of `e`, the
// extent that covers it: an extent that disagrees with another about one
// byte is an overlap.
inline void check_byte(const BlockDevice& dev, uint64_t start, const Extent& e, uint64_t off) {
  Extent b = dev.block_status(off, 1);
  if (b.length != 1) {
    broken(dev, "block_status(" + std::to_string(off) + ", 1) answered " +
                    std::to_string(b.length) + " bytes");
  }
  if (b.type != e.type || b.depth != e.depth) {
    broken(dev, "the byte at " + std::to_string(off) + " is " + extent_text(off, b) +
                    " on its own but part of the " + extent_text(start, e) +
                    ": overlapping answers");
  }
}

// Reads [off, off + len) in pieces of at most `piece` bytes and compares
// with the expected content, or with zeros for a zero/unallocated extent.
inline void check_bytes(const BlockDevice& dev, const DeviceCheck& c, uint64_t start,
                        const Extent& e, uint64_t off, uint64_t len, std::vector<uint8_t>& buf) {
  while (len > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, buf.size()));
    dev.read(off, buf.data(), n);
    if (!c.expected.empty()) {
      const uint8_t* want = c.expected.data() + off;
      if (!std::equal(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n), want)) {
        size_t i = 0;
        while (buf[i] == want[i]) ++i;
        broken(dev, "byte " + std::to_string(off + i) + " of the " + extent_text(start, e) +
                        " reads " + std::to_string(buf[i]) + ", the source has " +
                        std::to_string(want[i]));
      }
    }
    if (e.type != ExtentType::kData && !is_zero(buf.data(), n)) {
      size_t i = 0;
      while (buf[i] == 0) ++i;
      broken(dev, "byte " + std::to_string(off + i) + " of the " + extent_text(start, e) +
                      " reads " + std::to_string(buf[i]) + ", not 0");
    }
    off += n;
    len -= n;
  }
}

}  // namespace detail

// Checks `dev` against the contract of block_device.h and throws
// ContractViolation naming the first broken promise:
//  - info() answers (an opened device describes itself) with the device's size;
//  - block_status walked from 0 tiles [0, size): each answer is 1 to `asked`
//    bytes; a 1-byte query at an extent's first, middle and last byte agrees
//    with it (no two answers disagree about a byte);
//  - zero and unallocated extents read as zeros; with `c.expected`, every
//    byte read reads as expected (see DeviceCheck for which bytes are
//    read); a read across the first extents equals the same read in pieces;
//  - reads and block status outside [0, size) throw Error(kInvalidArgument).
// A vdisk::Error from the device itself (a corrupt table found while reading)
// is not a violation: it propagates to the caller, as bad input does.
inline void check_device(const BlockDevice& dev, const DeviceCheck& c = {}) {
  using detail::broken;
  const uint64_t size = dev.size();
  try {
    const ImageInfo info = dev.info();
    if (info.virtual_size != size) {
      broken(dev, "info() says virtual size " + std::to_string(info.virtual_size) +
                      ", size() says " + std::to_string(size));
    }
  } catch (const Error& e) {
    broken(dev, std::string("info() threw for an opened device: ") + e.what());
  }
  if (!c.expected.empty() && c.expected.size() != size) {
    broken(dev, "size " + std::to_string(size) + ", the source has " +
                    std::to_string(c.expected.size()) + " bytes");
  }

  std::vector<uint8_t> buf(64 * 1024);
  uint64_t read_budget = c.max_read_bytes;
  uint64_t off = 0;
  for (size_t n = 0; n < c.max_extents && off < size; ++n) {
    const uint64_t asked = size - off;
    const Extent e = dev.block_status(off, asked);
    if (e.length == 0 || e.length > asked) {
      broken(dev, "block_status(" + std::to_string(off) + ", " + std::to_string(asked) +
                      ") answered " + std::to_string(e.length) + " bytes");
    }
    detail::check_byte(dev, off, e, off);
    if (e.length > 2) detail::check_byte(dev, off, e, off + e.length / 2);
    if (e.length > 1) detail::check_byte(dev, off, e, off + e.length - 1);
    // A shorter question about the same start gets the same kind of answer.
    const Extent s = dev.block_status(off, std::max<uint64_t>(1, e.length / 2));
    if (s.type != e.type || s.depth != e.depth || s.length > std::max<uint64_t>(1, e.length / 2)) {
      broken(dev, "block_status at " + std::to_string(off) + " answered " +
                      detail::extent_text(off, e) + " to a long query and " +
                      detail::extent_text(off, s) + " to a shorter one");
    }
    // The whole extent, or its two edges within the budget.
    if (c.read_all) {
      detail::check_bytes(dev, c, off, e, off, e.length, buf);
    } else if (read_budget > 0) {
      const uint64_t edge = std::min<uint64_t>(c.edge_bytes, read_budget / 2 + 1);
      if (e.length <= 2 * edge) {
        detail::check_bytes(dev, c, off, e, off, e.length, buf);
      } else {
        detail::check_bytes(dev, c, off, e, off, edge, buf);
        detail::check_bytes(dev, c, off, e, off + e.length - edge, edge, buf);
      }
      read_budget -= std::min(read_budget, std::min(e.length, 2 * edge));
    }
    off += e.length;
  }

  // One read across the first extents, in odd pieces, against one whole read.
  const size_t span = static_cast<size_t>(std::min<uint64_t>(size, 256 * 1024));
  if (span > 0) {
    std::vector<uint8_t> whole(span), pieces(span);
    dev.read(0, whole.data(), span);
    for (size_t at = 0; at < span; at += 4093)
      dev.read(at, pieces.data() + at, std::min<size_t>(4093, span - at));
    if (whole != pieces)
      broken(dev, "a read of the first bytes differs from the same read in pieces");
    if (!c.expected.empty() && !std::equal(whole.begin(), whole.end(), c.expected.begin()))
      broken(dev, "a read across the first extents differs from the source");
  }

  uint8_t b[2];
  if (size > 0) dev.read(size - 1, b, 1);
  detail::expect_invalid_argument(dev, "read(size, 1)", [&] { dev.read(size, b, 1); });
  if (size > 0)
    detail::expect_invalid_argument(dev, "read(size - 1, 2)", [&] { dev.read(size - 1, b, 2); });
  detail::expect_invalid_argument(dev, "read(2^64 - 1, 2)", [&] { dev.read(~uint64_t{0}, b, 2); });
  detail::expect_invalid_argument(dev, "block_status(size, 1)",
                                  [&] { (void)dev.block_status(size, 1); });
  detail::expect_invalid_argument(dev, "block_status(0, 0)", [&] { (void)dev.block_status(0, 0); });
}

}  // namespace vdisk::fuzz
