// A minimal XML property list reader for DMG metadata: dict, array, key,
// string, data (base64), integer, real, date, true, false. Bounded for
// hostile input: nesting depth, node count, and the input size (the caller
// caps it); entities &lt; &gt; &amp; &quot; &apos; and &#N; / &#xN; only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vdisk::dmg {

struct PlistNode {
  std::string type;  // element name: "dict", "array", "string", "data", ...
  std::string text;  // text of leaf elements (entities decoded)
  // dict: key, value, key, value... (keys are nodes of type "key")
  std::vector<PlistNode> children;

  // For a dict: the value after key `k`, or null.
  const PlistNode* get(const std::string& k) const;
};

inline constexpr int kMaxPlistDepth = 32;
inline constexpr size_t kMaxPlistNodes = 1 << 20;

// Parses the document; the root is the element inside <plist>. Throws
// Error(kCorrupt) naming `path` and the byte offset (`base` + position).
PlistNode parse_plist(const std::string& xml, const std::string& path, uint64_t base);

// Decodes base64 (RFC 4648), whitespace ignored; throws kCorrupt naming
// `path` and `offset` on any other character.
std::vector<uint8_t> decode_base64(const std::string& text, const std::string& path,
                                   uint64_t offset);

}  // namespace vdisk::dmg
