// Hexadecimal text: the one way numbers and bytes are written in hex, in
// messages, JSON and text formats (mapfiles, VMDK descriptors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vdisk {

enum class HexCase { kLower, kUpper };

// "0x" and `v` in at least `width` digits, zero-padded:
// hex(31) == "0x1f", hex(31, 8) == "0x0000001f",
// hex(31, 0, HexCase::kUpper) == "0x1F".
std::string hex(uint64_t v, int width = 0, HexCase letters = HexCase::kLower);

// The digits alone, without "0x": hex_digits(31, 8) == "0000001f".
std::string hex_digits(uint64_t v, int width = 0, HexCase letters = HexCase::kLower);

// `n` bytes at `p` as lower-case digit pairs, in order: {0xab, 0x01} -> "ab01".
std::string hex_bytes(const void* p, size_t n);

}  // namespace vdisk
