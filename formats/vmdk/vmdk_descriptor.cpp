#include "formats/vmdk/vmdk_descriptor.h"

#include <cctype>

#include "formats/core/error.h"
#include "formats/core/hex.h"

namespace vdisk::vmdk {

const char* extent_kind_name(ExtentKind k) {
  switch (k) {
    case ExtentKind::kFlat:
      return "FLAT";
    case ExtentKind::kSparse:
      return "SPARSE";
    case ExtentKind::kZero:
      return "ZERO";
    case ExtentKind::kVmfs:
      return "VMFS";
    case ExtentKind::kVmfsSparse:
      return "VMFSSPARSE";
    case ExtentKind::kVmfsRaw:
      return "VMFSRAW";
    case ExtentKind::kVmfsRdm:
      return "VMFSRDM";
    case ExtentKind::kSeSparse:
      return "SESPARSE";
  }
  return "?";
}

std::optional<std::string> Descriptor::ddb_value(const std::string& key) const {
  for (auto& [k, v] : ddb) {
    if (k == key) return v;
  }
  return std::nullopt;
}

uint64_t Descriptor::total_sectors() const {
  uint64_t t = 0;
  for (auto& e : extents) t += e.sectors;
  return t;
}

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string unquote(const std::string& s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

bool parse_u64(const std::string& s, int base, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    if (v > (~uint64_t{0} - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base)) return false;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  out = v;
  return true;
}

bool kind_from_name(const std::string& s, ExtentKind& k) {
  static const std::pair<const char*, ExtentKind> kinds[] = {
      {"FLAT", ExtentKind::kFlat},
      {"SPARSE", ExtentKind::kSparse},
      {"ZERO", ExtentKind::kZero},
      {"VMFS", ExtentKind::kVmfs},
      {"VMFSSPARSE", ExtentKind::kVmfsSparse},
      {"VMFSRAW", ExtentKind::kVmfsRaw},
      {"VMFSRDM", ExtentKind::kVmfsRdm},
      {"SESPARSE", ExtentKind::kSeSparse},
  };
  for (auto& [name, kind] : kinds) {
    if (s == name) {
      k = kind;
      return true;
    }
  }
  return false;
}

bool is_access_word(const std::string& w) {
  return w == "RW" || w == "RDONLY" || w == "NOACCESS";
}

// Splits an extent line into words; a double-quoted word may hold spaces.
// Returns "" or what is wrong. The grammar has no escape for '"', so a quote
// inside a word cannot be written back and is refused (found by fuzzing:
// `RW 2048 VMFSSPARSE +d-delta.vmdk"` parsed, then rendered unparseably).
std::string split_words(const std::string& line, std::vector<std::string>& words) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= line.size()) break;
    if (line[i] == '"') {
      size_t end = line.find('"', i + 1);
      if (end == std::string::npos) return "unterminated quote";
      if (end + 1 < line.size() && !std::isspace(static_cast<unsigned char>(line[end + 1]))) {
        return "text right after a closing quote";
      }
      words.push_back(line.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      size_t start = i;
      while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) {
        if (line[i] == '"') return "a double quote inside an unquoted word";
        ++i;
      }
      words.push_back(line.substr(start, i - start));
    }
  }
  return "";
}

}  // namespace

Descriptor parse_descriptor(const std::string& raw_text, const std::string& file,
                            uint64_t base_offset) {
  std::string text = raw_text.substr(0, raw_text.find('\0'));
  Descriptor d;
  bool have_create_type = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl;
    const uint64_t line_offset = base_offset + pos;
    std::string line = trim(text.substr(pos, end - pos));  // trim drops the CR of CRLF
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](const std::string& what) {
      throw_corrupt(file, line_offset,
                    "VMDK descriptor: " + what + " in line '" + line.substr(0, 120) + "'");
    };
    std::vector<std::string> words;
    size_t first_space = line.find_first_of(" \t");
    std::string first = line.substr(0, first_space);
    if (is_access_word(first)) {
      if (std::string why = split_words(line, words); !why.empty()) bad(why);
      if (words.size() < 3) bad("extent line needs access, size and type");
      ExtentLine e;
      e.access = words[0];
      if (!parse_u64(words[1], 10, e.sectors) || e.sectors == 0)
        bad("bad extent size '" + words[1] + "'");
      if (e.sectors > (~uint64_t{0} >> 9)) bad("extent size too large");
      if (!kind_from_name(words[2], e.kind)) bad("unknown extent type '" + words[2] + "'");
      if (e.kind == ExtentKind::kZero) {
        if (words.size() > 4) bad("too many fields");
      } else {
        if (words.size() < 4) bad("extent line has no file name");
        e.file = words[3];
        if (words.size() >= 5 && !parse_u64(words[4], 10, e.offset))
          bad("bad extent offset '" + words[4] + "'");
        if (words.size() > 6) bad("too many fields");
      }
      d.extents.push_back(std::move(e));
      d.extent_lines.emplace_back(line_offset, line.substr(0, 120));
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) bad("expected 'key = value' or an extent line");
    std::string key = trim(line.substr(0, eq));
    std::string value = unquote(trim(line.substr(eq + 1)));
    if (key.empty()) bad("empty key");
    uint64_t v = 0;
    if (key == "version") {
      if (!parse_u64(value, 10, v) || v > 0xffffffff) bad("bad version");
      d.version = static_cast<uint32_t>(v);
    } else if (key == "CID") {
      if (!parse_u64(value, 16, v) || v > 0xffffffff) bad("bad CID");
      d.cid = static_cast<uint32_t>(v);
    } else if (key == "parentCID") {
      if (!parse_u64(value, 16, v) || v > 0xffffffff) bad("bad parentCID");
      d.parent_cid = static_cast<uint32_t>(v);
    } else if (key == "createType") {
      d.create_type = value;
      have_create_type = true;
    } else if (key == "parentFileNameHint") {
      d.parent_hint = value;
    } else if (key.rfind("ddb.", 0) == 0) {
      d.ddb.emplace_back(key, value);
    }
    // Other keys (encoding, isNativeSnapshot, …) carry nothing we need.
  }
  if (!have_create_type) throw_corrupt(file, base_offset, "VMDK descriptor has no createType");
  return d;
}

bool looks_like_descriptor(const uint8_t* data, size_t len) {
  size_t n = std::min<size_t>(len, 4096);
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = data[i];
    if (c == 0) {
      n = i;
      break;
    }
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') return false;
  }
  std::string text(reinterpret_cast<const char*>(data), n);
  if (text.find("# Disk DescriptorFile") != std::string::npos) return true;
  // Descriptors without the opening comment still carry these keys.
  return text.find("createType") != std::string::npos && text.find("CID") != std::string::npos;
}

std::string render_descriptor(const Descriptor& d) {
  std::string out = "# Disk DescriptorFile\nversion=" + std::to_string(d.version) + "\n";
  out += "CID=" + hex_digits(d.cid, 8) + "\nparentCID=" + hex_digits(d.parent_cid, 8) + "\n";
  out += "createType=\"" + d.create_type + "\"\n";
  if (!d.parent_hint.empty()) out += "parentFileNameHint=\"" + d.parent_hint + "\"\n";
  out += "\n# Extent description\n";
  for (auto& e : d.extents) {
    out += e.access + " " + std::to_string(e.sectors) + " " + extent_kind_name(e.kind);
    if (e.kind != ExtentKind::kZero) {
      out += " \"" + e.file + "\"";
      if (e.kind == ExtentKind::kFlat || e.kind == ExtentKind::kVmfs)
        out += " " + std::to_string(e.offset);
    }
    out += "\n";
  }
  out += "\n# The Disk Data Base\n#DDB\n\n";
  for (auto& [k, v] : d.ddb) out += k + " = \"" + v + "\"\n";
  return out;
}

}  // namespace vdisk::vmdk
