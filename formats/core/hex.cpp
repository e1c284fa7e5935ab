#include "formats/core/hex.h"

namespace vdisk {

namespace {

const char* digits_of(HexCase letters) {
  return letters == HexCase::kUpper ? "0123456789ABCDEF" : "0123456789abcdef";
}

}  // namespace

std::string hex_digits(uint64_t v, int width, HexCase letters) {
  const char* d = digits_of(letters);
  char buf[16];
  int n = 0;
  do {
    buf[n++] = d[v & 15];
    v >>= 4;
  } while (v != 0);
  std::string out;
  if (width > n) out.assign(static_cast<size_t>(width - n), '0');
  while (n > 0) out += buf[--n];
  return out;
}

std::string hex(uint64_t v, int width, HexCase letters) {
  return "0x" + hex_digits(v, width, letters);
}

std::string hex_bytes(const void* p, size_t n) {
  const char* d = digits_of(HexCase::kLower);
  const auto* b = static_cast<const uint8_t*>(p);
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += d[b[i] >> 4];
    out += d[b[i] & 15];
  }
  return out;
}

}  // namespace vdisk
