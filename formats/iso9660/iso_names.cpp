#include "formats/iso9660/iso_names.h"

#include <cstdio>

#include "formats/core/unicode.h"

namespace vdisk::iso9660 {

std::string utf16be_to_utf8(const uint8_t* p, size_t len) {
  return utf16_to_utf8(p, len, ByteOrder::kBig, /*stop_at_nul=*/false);
}

std::string utf16_to_be_bytes(const std::u16string& s) {
  return utf16_to_bytes(s, ByteOrder::kBig);
}

namespace {

// ECMA-119 7.5.1: NAME.EXT;VERSION — the version is decimal digits.
void strip_version(std::string& name) {
  size_t semi = name.rfind(';');
  if (semi == std::string::npos) return;
  bool digits = semi + 1 < name.size();
  for (size_t k = semi + 1; k < name.size(); ++k)
    digits = digits && name[k] >= '0' && name[k] <= '9';
  if (digits) name.resize(semi);
}

}  // namespace

std::string relaxed_name(std::string name) {
  strip_version(name);
  // "NAME." is how ECMA-119 7.5.1 records a file without an extension.
  if (name.size() > 1 && name.back() == '.') name.pop_back();
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return name;
}

std::string display_name(const uint8_t* p, size_t len, bool joliet, bool raw) {
  std::string name =
      joliet ? utf16be_to_utf8(p, len) : std::string(reinterpret_cast<const char*>(p), len);
  if (raw) return name;
  if (!joliet) return relaxed_name(std::move(name));
  // A Joliet name is the real name: only its version goes (xorriso keeps a
  // trailing dot).
  strip_version(name);
  return name;
}

std::string field_string(const uint8_t* p, size_t len, bool ucs2) {
  std::string s = ucs2 ? utf16be_to_utf8(p, len & ~size_t{1})
                       : std::string(reinterpret_cast<const char*>(p), len);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// Howard Hinnant's civil-date algorithms (public domain formulas).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

CivilTime civil_from_seconds(int64_t seconds) {
  int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
  int64_t rem = seconds - days * 86400;
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  CivilTime t{};
  t.year = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  t.month = m;
  t.day = d;
  t.hour = static_cast<unsigned>(rem / 3600);
  t.minute = static_cast<unsigned>(rem / 60 % 60);
  t.second = static_cast<unsigned>(rem % 60);
  return t;
}

Timestamp decode_record_date(const uint8_t* p) {
  unsigned month = p[1] >= 1 && p[1] <= 12 ? p[1] : 1;
  unsigned day = p[2] >= 1 && p[2] <= 31 ? p[2] : 1;
  int64_t secs = days_from_civil(1900 + p[0], month, day) * 86400 + p[3] * 3600 + p[4] * 60 + p[5];
  auto tz = static_cast<int8_t>(p[6]);
  if (tz >= -48 && tz <= 52) secs -= static_cast<int64_t>(tz) * 15 * 60;
  return Timestamp{secs, 0};
}

void encode_record_date(int64_t seconds, uint8_t* p) {
  CivilTime t = civil_from_seconds(seconds);
  int64_t y = t.year - 1900;
  if (y < 0) {
    y = 0;
    t = civil_from_seconds(days_from_civil(1900, 1, 1) * 86400);
  }
  if (y > 255) y = 255;
  p[0] = static_cast<uint8_t>(y);
  p[1] = static_cast<uint8_t>(t.month);
  p[2] = static_cast<uint8_t>(t.day);
  p[3] = static_cast<uint8_t>(t.hour);
  p[4] = static_cast<uint8_t>(t.minute);
  p[5] = static_cast<uint8_t>(t.second);
  p[6] = 0;  // UTC
}

std::optional<Timestamp> decode_volume_date(const uint8_t* p) {
  int v[7];
  static const int widths[7] = {4, 2, 2, 2, 2, 2, 2};
  size_t pos = 0;
  bool all_zero = true;
  for (int f = 0; f < 7; ++f) {
    v[f] = 0;
    for (int k = 0; k < widths[f]; ++k, ++pos) {
      if (p[pos] < '0' || p[pos] > '9') return std::nullopt;
      v[f] = v[f] * 10 + (p[pos] - '0');
    }
    if (v[f] != 0) all_zero = false;
  }
  if (all_zero || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31) return std::nullopt;
  int64_t secs =
      days_from_civil(v[0], static_cast<unsigned>(v[1]), static_cast<unsigned>(v[2])) * 86400 +
      v[3] * 3600 + v[4] * 60 + v[5];
  auto tz = static_cast<int8_t>(p[16]);
  if (tz >= -48 && tz <= 52) secs -= static_cast<int64_t>(tz) * 15 * 60;
  return Timestamp{secs, static_cast<uint32_t>(v[6]) * 10000000u};
}

void encode_volume_date(int64_t seconds, uint8_t* p) {
  CivilTime t = civil_from_seconds(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u%02u%02u%02u00", static_cast<int>(t.year % 10000),
                t.month, t.day, t.hour, t.minute, t.second);
  for (int i = 0; i < 16; ++i) p[i] = static_cast<uint8_t>(buf[i]);
  p[16] = 0;  // UTC
}

std::string format_iso8601(const Timestamp& ts) {
  CivilTime t = civil_from_seconds(ts.seconds);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02uZ", static_cast<long long>(t.year),
                t.month, t.day, t.hour, t.minute, t.second);
  return buf;
}

}  // namespace vdisk::iso9660
