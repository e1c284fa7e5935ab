// GUIDs / UUIDs (RFC 4122, ITU-T X.667): one 128-bit value type for every
// format, the two byte orders disk formats store it in, and its text form.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vdisk {

class Env;

// How the 16 bytes of a GUID lie on disk. The value is the same either way;
// only the first three fields (time_low 4 bytes, time_mid 2, time_hi_and_version
// 2) differ in byte order. The last 8 bytes are always stored in text order.
enum class GuidByteOrder {
  // Microsoft's GUID structure: Data1, Data2 and Data3 little-endian, Data4 as
  // is. GPT (UEFI specification appendix A "GUID and Time Formats": the Linux
  // filesystem type 0FC63DAF-8483-4772-8E79-3D69D8477DE4 is stored
  // AF 3D C6 0F 83 84 72 47 8E 79 ...), VHDX (MS-VHDX 2.0: GUIDs are stored as
  // the Windows GUID structure, little-endian) and VDI (VirtualBox writes its
  // RTUUID header fields in x86 host order, so the same layout).
  kMixedEndian,
  // RFC 4122 section 4.1.2 network byte order: the bytes in the order the
  // hex digits are written. VHD (Virtual Hard Disk Image Format Specification,
  // footer "Unique Id") and ext2/3/4 (s_uuid).
  kBigEndian,
};

// Spelling options for Guid::to_string.
struct GuidFormat {
  bool upper_case = false;  // "0FC63DAF-…" (the spelling sgdisk and the UEFI spec use)
  bool braces = false;      // "{…}" (the spelling VHDX parent_linkage stores)
};

// A GUID as a value: its 16 bytes in text (RFC 4122 network) order. Default
// constructed, it is the nil GUID. Trivially copyable; no I/O.
class Guid {
 public:
  static constexpr size_t kSize = 16;
  using Bytes = std::array<uint8_t, kSize>;

  constexpr Guid() = default;
  // From the 16 bytes in text order: "00112233-4455-…" is {0x00, 0x11, ...}.
  constexpr explicit Guid(const Bytes& text_order) : bytes_(text_order) {}

  // Decodes the 16 bytes at `p` stored in `order`.
  static Guid decode(const void* p, GuidByteOrder order);
  // Stores the 16 bytes at `p` in `order`.
  void encode(void* p, GuidByteOrder order) const;
  Bytes encoded(GuidByteOrder order) const;

  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", hex digits in either case,
  // optionally inside braces; nullopt when `text` is anything else. constexpr
  // so that spec constants are checked at compile time.
  static constexpr std::optional<Guid> parse(std::string_view text);

  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case without braces unless
  // `format` says otherwise.
  std::string to_string(GuidFormat format = {}) const;

  constexpr bool is_nil() const {
    for (uint8_t b : bytes_) {
      if (b) return false;
    }
    return true;
  }

  // The version (high nibble of time_hi_and_version, RFC 4122 4.1.3) and
  // whether the variant bits are RFC 4122's 10x (4.1.1).
  constexpr int version() const { return bytes_[6] >> 4; }
  constexpr bool is_rfc4122_variant() const { return (bytes_[8] & 0xc0) == 0x80; }

  // A random GUID: version 4, RFC 4122 variant (RFC 4122 section 4.4), from
  // env.random_bytes() (the host's random source, or a test's seeded one).
  static Guid random(Env& env);

  constexpr const Bytes& bytes() const { return bytes_; }
  friend constexpr bool operator==(const Guid&, const Guid&) = default;

 private:
  static constexpr int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  Bytes bytes_{};
};

constexpr std::optional<Guid> Guid::parse(std::string_view text) {
  if (text.size() == 38 && text.front() == '{' && text.back() == '}') text = text.substr(1, 36);
  if (text.size() != 36) return std::nullopt;
  Bytes b{};
  size_t n = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    const int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    b[n++] = static_cast<uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return Guid(b);
}

}  // namespace vdisk
