#include "formats/e01/e01_header.h"

#include <cstdio>
#include <cstdlib>

#include "formats/core/error.h"
#include "formats/core/unicode.h"

namespace vdisk::e01 {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

size_t utf8_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

std::string ascii_only(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xc0) != 0x80) {
      out += '?';  // one '?' per code point
    }
  }
  return out;
}

}  // namespace

const std::string* CaseMetadata::get(const std::string& id) const {
  for (const auto& [k, v] : values) {
    if (k == id) return &v;
  }
  return nullptr;
}

std::string header_text_to_utf8(const std::vector<uint8_t>& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (uint8_t b : bytes) {
    if (b == 0) break;
    append_utf8(out, b);
  }
  return out;
}

std::string header2_text_to_utf8(const std::vector<uint8_t>& bytes) {
  ByteOrder order = ByteOrder::kLittle;
  size_t skip = 0;
  if (bytes.size() >= 2 && bytes[0] == 0xfe && bytes[1] == 0xff) {
    order = ByteOrder::kBig;
    skip = 2;
  } else if (bytes.size() >= 2 && bytes[0] == 0xff && bytes[1] == 0xfe) {
    skip = 2;
  }
  return utf16_to_utf8(bytes.data() + skip, bytes.size() - skip, order, true);
}

std::optional<CaseMetadata> parse_case_metadata(const std::string& utf8,
                                                const std::string& source) {
  std::vector<std::string> lines = split(utf8, '\n');
  for (auto& l : lines) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
  }
  for (size_t i = 0; i + 2 < lines.size(); ++i) {
    if (lines[i] != "main") continue;
    CaseMetadata m;
    m.source = source;
    if (i > 0 && all_digits(lines[0]) && lines[0].size() < 4)
      m.categories = std::atoi(lines[0].c_str());
    std::vector<std::string> ids = split(lines[i + 1], '\t');
    std::vector<std::string> vals = split(lines[i + 2], '\t');
    // Logicube Dossier writes one value more than identifiers; extra values
    // are dropped, missing ones are empty.
    for (size_t k = 0; k < ids.size(); ++k) {
      if (ids[k].empty()) continue;
      m.values.emplace_back(ids[k], k < vals.size() ? vals[k] : std::string());
    }
    return m;
  }
  return std::nullopt;
}

std::string format_header_date(const std::string& value) {
  char buf[64];
  if (all_digits(value) && value.size() <= 12) {
    std::time_t t = static_cast<std::time_t>(std::strtoll(value.c_str(), nullptr, 10));
    std::tm tm{};
    if (!gmtime_r(&t, &tm)) return value;
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  std::vector<std::string> f = split(value, ' ');
  if (f.size() == 6) {
    int v[6];
    for (int i = 0; i < 6; ++i) {
      if (!all_digits(f[i]) || f[i].size() > 4) return value;
      v[i] = std::atoi(f[i].c_str());
    }
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", v[0], v[1], v[2], v[3], v[4],
                  v[5]);
    return buf;
  }
  return value;
}

Json case_metadata_json(const CaseMetadata& m) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"c", "case_number"},    {"n", "evidence_number"}, {"a", "description"},
      {"e", "examiner"},       {"t", "notes"},           {"md", "model"},
      {"sn", "serial_number"}, {"l", "device_label"},    {"m", "acquisition_date"},
      {"u", "system_date"},    {"ov", "acquisition_os"}, {"av", "acquisition_software"},
      {"pid", "process_id"},
  };
  Json j = Json::object();
  for (const auto& [id, name] : kNames) {
    const std::string* v = m.get(id);
    if (!v || v->empty()) continue;
    const std::string key = name;
    j.set(key, (key == "acquisition_date" || key == "system_date") ? Json(format_header_date(*v))
                                                                   : Json(*v));
  }
  if (const std::string* p = m.get("p"); p && !p->empty()) j.set("password_set", *p != "0");
  if (const std::string* r = m.get("r"); r && !r->empty()) {
    j.set("header_compression", *r == "b"   ? "best"
                                : *r == "f" ? "fast"
                                : *r == "n" ? "none"
                                            : r->c_str());
  }
  for (const auto& [k, v] : m.values) {
    bool known = k == "p" || k == "r";
    for (const auto& n : kNames) known = known || k == n.first;
    if (!known && !v.empty()) j.set(k, v);
  }
  j.set("source", m.source);
  return j;
}

void check_case_field(const std::string& option, const std::string& value, size_t max_chars) {
  if (value.find_first_of("\t\r\n") != std::string::npos) {
    throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                "option " + option + ": tabs and line breaks cannot be stored in an E01 header");
  }
  if (utf8_chars(value) > max_chars) {
    throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                "option " + option + ": " + std::to_string(utf8_chars(value)) +
                    " characters, EnCase accepts at most " + std::to_string(max_chars));
  }
}

std::vector<uint8_t> render_header2(const CaseFields& f) {
  const std::string t = std::to_string(static_cast<long long>(f.acquired));
  // As EnCase 6 (and libewf's encase6 writer) lay it out; the srce and sub
  // categories carry no values of ours.
  const std::string text = "3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\n" + f.description +
                           "\t" + f.case_number + "\t" + f.evidence_number + "\t" + f.examiner +
                           "\t" + f.notes + "\t\t\t" + f.software_version + "\t" + f.os + "\t" + t +
                           "\t" + t +
                           "\t0\t\n\nsrce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n"
                           "\t\t\t\t\t-1\t-1\t\t\t\n\nsub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n"
                           "\t\t\t\t1\t\n\n";
  std::string bytes = "\xff\xfe" + utf16_to_bytes(utf8_to_utf16(text), ByteOrder::kLittle);
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

std::vector<uint8_t> render_header(const CaseFields& f) {
  std::tm tm{};
  std::time_t t = f.acquired;
  localtime_r(&t, &tm);
  char date[64];
  std::snprintf(date, sizeof date, "%d %d %d %d %d %d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  const std::string text = "1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\n" +
                           ascii_only(f.case_number) + "\t" + ascii_only(f.evidence_number) + "\t" +
                           ascii_only(f.description) + "\t" + ascii_only(f.examiner) + "\t" +
                           ascii_only(f.notes) + "\t" + ascii_only(f.software_version) + "\t" +
                           ascii_only(f.os) + "\t" + date + "\t" + date + "\t0\r\n\r\n";
  return std::vector<uint8_t>(text.begin(), text.end());
}

}  // namespace vdisk::e01
