// Helpers shared by the ISO 9660 reader and writer: name decoding/encoding
// (ISO 9660 d-characters, Joliet UCS-2 big-endian), dates in the three
// encodings ISO 9660 uses, and descriptor string fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "formats/core/file_tree.h"
#include "formats/core/unicode.h"

namespace vdisk::iso9660 {

// Joliet names: UCS-2/UTF-16 big-endian to UTF-8 (unpaired surrogates and an
// odd trailing byte become U+FFFD).
std::string utf16be_to_utf8(const uint8_t* p, size_t len);
// UTF-8 to UTF-16 code units: vdisk::utf8_to_utf16 (formats/core/unicode.h).
using vdisk::utf8_to_utf16;
// UTF-16 code units to big-endian bytes.
std::string utf16_to_be_bytes(const std::u16string& s);

// A recorded file identifier as users see it. Joliet (`joliet`, decoded from
// UCS-2): the ";N" version removed, case kept (what Linux, xorriso and 7z
// show). ISO 9660 without Rock Ridge or Joliet: as Linux's isofs shows it by
// default (map=normal) and xorriso with -ecma119_map lowercase: lower case,
// the ";N" version removed, then the trailing '.' of a name without an
// extension ("NOEXT.;1" -> "noext"). `raw`: exactly as recorded.
std::string display_name(const uint8_t* p, size_t len, bool joliet, bool raw = false);

// The form in which ISO 9660 identifiers are compared by lookups (Linux
// isofs check=relaxed): ASCII lower case, ";N" and a trailing '.' removed, so
// "/docs/f1.txt", "DOCS/F1.TXT;1" and "Docs/F1.TXT" name the same file.
std::string relaxed_name(std::string name);

// A descriptor string field (a-/d-characters padded with spaces, or UCS-2 for
// Joliet): trailing spaces and NULs removed.
std::string field_string(const uint8_t* p, size_t len, bool ucs2);

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
// Broken-down UTC time of Unix seconds.
struct CivilTime {
  int64_t year;
  unsigned month, day, hour, minute, second;
};
CivilTime civil_from_seconds(int64_t seconds);

// 7-byte directory record / RRIP short-form date (ECMA-119 9.1.5).
Timestamp decode_record_date(const uint8_t* p);
void encode_record_date(int64_t seconds, uint8_t* p);
// 17-byte volume date (ECMA-119 8.4.26.1); nullopt when "not specified".
std::optional<Timestamp> decode_volume_date(const uint8_t* p);
void encode_volume_date(int64_t seconds, uint8_t* p);
// "2024-05-01T12:00:00Z"
std::string format_iso8601(const Timestamp& t);

}  // namespace vdisk::iso9660
