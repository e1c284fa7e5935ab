// UTF-16 <-> UTF-8 for the names formats store in UTF-16: VHD parent names
// and locators, VHDX metadata, GPT partition names, FAT long names, Joliet.
// Decoding never fails: unpaired surrogates and a dangling odd byte become
// U+FFFD, so a damaged name is shown, not fatal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vdisk {

enum class ByteOrder { kLittle, kBig };

// Appends code point `cp` (<= 0x10FFFF) as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

// Decodes `bytes` bytes of UTF-16 at `p`. With `stop_at_nul`, a NUL unit ends
// the string (NUL-padded fields); otherwise NULs are kept.
std::string utf16_to_utf8(const uint8_t* p, size_t bytes, ByteOrder order, bool stop_at_nul = true);

// Decodes UTF-16 code units.
std::string utf16_to_utf8(const std::u16string& units);

// Encodes UTF-8 as UTF-16 code units; invalid UTF-8 bytes are taken as
// Latin-1 code points, one each.
std::u16string utf8_to_utf16(const std::string& s);

// Serialises code units in the given byte order.
std::string utf16_to_bytes(const std::u16string& units, ByteOrder order);

}  // namespace vdisk
