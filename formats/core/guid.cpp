#include "formats/core/guid.h"

#include <cstring>

#include "formats/core/file.h"

namespace vdisk {

namespace {

// The mixed-endian layout reverses each of the first three fields.
void swap_first_fields(const uint8_t* in, uint8_t* out) {
  static constexpr size_t kFrom[8] = {3, 2, 1, 0, 5, 4, 7, 6};
  for (size_t i = 0; i < 8; ++i) out[i] = in[kFrom[i]];
  std::memcpy(out + 8, in + 8, 8);
}

}  // namespace

Guid Guid::decode(const void* p, GuidByteOrder order) {
  Bytes b;
  const auto* in = static_cast<const uint8_t*>(p);
  if (order == GuidByteOrder::kMixedEndian)
    swap_first_fields(in, b.data());
  else
    std::memcpy(b.data(), in, kSize);
  return Guid(b);
}

void Guid::encode(void* p, GuidByteOrder order) const {
  auto* out = static_cast<uint8_t*>(p);
  if (order == GuidByteOrder::kMixedEndian)
    swap_first_fields(bytes_.data(), out);
  else
    std::memcpy(out, bytes_.data(), kSize);
}

Guid::Bytes Guid::encoded(GuidByteOrder order) const {
  Bytes b;
  encode(b.data(), order);
  return b;
}

std::string Guid::to_string(GuidFormat format) const {
  const char* digits = format.upper_case ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string s;
  s.reserve(38);
  if (format.braces) s += '{';
  for (size_t i = 0; i < kSize; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += digits[bytes_[i] >> 4];
    s += digits[bytes_[i] & 15];
  }
  if (format.braces) s += '}';
  return s;
}

Guid Guid::random(Env& env) {
  Bytes b;
  env.random_bytes(b.data(), b.size());
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4 (RFC 4122 4.1.3)
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // variant 10x (RFC 4122 4.1.1)
  return Guid(b);
}

}  // namespace vdisk
