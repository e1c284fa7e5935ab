#include "views/ddrescue/ddrescue_map.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "formats/core/error.h"
#include "formats/core/hex.h"

namespace vdisk::ddrescue {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Splits a line into whitespace-separated tokens, dropping the comment: '#'
// at the start of the line or after whitespace (the manual's rule).
std::vector<std::string> tokens_of(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i >= line.size() || line[i] == '#') break;
    size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    out.push_back(line.substr(start, i - start));
  }
  return out;
}

[[noreturn]] void fail(const std::string& path, int line, const std::string& msg) {
  throw Error(ErrorKind::kCorrupt, path, std::nullopt, "line " + std::to_string(line) + ": " + msg);
}

// A non-negative integer in C notation (0x hex, 0 octal, decimal), the whole
// token, without overflow.
uint64_t parse_number(const std::string& tok, const std::string& path, int line, const char* what,
                      bool decimal_only = false) {
  unsigned base = 10;
  size_t i = 0;
  if (decimal_only) {
    // fall through with base 10
  } else if (tok.size() > 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X')) {
    base = 16;
    i = 2;
  } else if (tok.size() > 1 && tok[0] == '0') {
    base = 8;
    i = 1;
  }
  if (i >= tok.size()) fail(path, line, std::string(what) + " '" + tok + "' is not a number");
  uint64_t v = 0;
  for (; i < tok.size(); ++i) {
    char c = tok[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = static_cast<unsigned>(c - 'A' + 10);
    else
      d = 99;
    if (d >= base) {
      fail(path, line,
           std::string(what) + " '" + tok + "' is not a valid " +
               (base == 16  ? "hexadecimal"
                : base == 8 ? "octal"
                            : "decimal") +
               " number");
    }
    if (v > (UINT64_MAX - d) / base)
      fail(path, line, std::string(what) + " '" + tok + "' is too large");
    v = v * base + d;
  }
  return v;
}

bool is_block_status(const std::string& t) {
  return t.size() == 1 && std::string("?*/-+").find(t[0]) != std::string::npos;
}

}  // namespace

const char* status_name(char status) {
  switch (status) {
    case '?':
      return "non-tried";
    case '*':
      return "non-trimmed";
    case '/':
      return "non-scraped";
    case '-':
      return "bad-sector";
    case '+':
      return "finished";
    case 'F':
      return "filling";
    case 'G':
      return "generating";
  }
  return "unknown";
}

Mapfile parse_mapfile(const std::string& text, const std::string& path) {
  Mapfile map;
  map.path = path;
  bool have_status_line = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    if (line.find('\0') != std::string::npos) fail(path, line_no, "NUL byte: not a text mapfile");
    std::vector<std::string> t = tokens_of(line);
    if (t.empty()) continue;
    if (!have_status_line) {
      // current_pos current_status [current_pass]
      if (t.size() < 2 || t.size() > 3) {
        fail(path, line_no,
             "status line must be 'current_pos current_status [current_pass]', got " +
                 std::to_string(t.size()) + " fields");
      }
      map.current_pos = parse_number(t[0], path, line_no, "current position");
      if (t[1].size() != 1 || std::string("?*/-FG+").find(t[1][0]) == std::string::npos) {
        fail(path, line_no, "current status '" + t[1] + "' is not one of ? * / - F G +");
      }
      map.current_status = t[1][0];
      if (t.size() == 3) {
        // The manual: "a positive decimal integer".
        uint64_t pass = parse_number(t[2], path, line_no, "current pass", true);
        if (pass == 0) fail(path, line_no, "current pass must be positive");
        map.current_pass = pass;
      }
      have_status_line = true;
      continue;
    }
    if (t.size() != 3) {
      fail(path, line_no,
           "block line must be 'pos size status', got " + std::to_string(t.size()) + " fields");
    }
    MapBlock b;
    b.line = line_no;
    b.pos = parse_number(t[0], path, line_no, "position");
    b.size = parse_number(t[1], path, line_no, "size");
    if (!is_block_status(t[2]))
      fail(path, line_no, "block status '" + t[2] + "' is not one of ? * / - +");
    b.status = t[2][0];
    if (b.size == 0)
      fail(path, line_no, "block at " + hex(b.pos, 0, HexCase::kUpper) + " has size 0");
    if (b.pos > UINT64_MAX - b.size)
      fail(path, line_no, "block at " + hex(b.pos, 0, HexCase::kUpper) + " runs past 2^64");
    const uint64_t expect = map.end();
    if (map.blocks.empty() && b.pos != 0) {
      fail(path, line_no,
           "gap: the first block starts at " + hex(b.pos, 0, HexCase::kUpper) + ", not 0");
    }
    if (!map.blocks.empty()) {
      const MapBlock& prev = map.blocks.back();
      if (b.pos < prev.pos) {
        fail(path, line_no,
             "blocks are not sorted: " + hex(b.pos, 0, HexCase::kUpper) + " comes after " +
                 hex(prev.pos, 0, HexCase::kUpper) + " (line " + std::to_string(prev.line) + ")");
      }
      if (b.pos < expect) {
        fail(path, line_no,
             "block at " + hex(b.pos, 0, HexCase::kUpper) + " overlaps the block of line " +
                 std::to_string(prev.line) + ", which ends at " + hex(expect, 0, HexCase::kUpper));
      }
      if (b.pos > expect) {
        fail(path, line_no,
             "gap: block starts at " + hex(b.pos, 0, HexCase::kUpper) + " but the block of line " +
                 std::to_string(prev.line) + " ends at " + hex(expect, 0, HexCase::kUpper));
      }
    }
    map.blocks.push_back(b);
  }
  if (!have_status_line) {
    throw Error(ErrorKind::kCorrupt, path, std::nullopt,
                "no status line: not a GNU ddrescue mapfile");
  }
  return map;
}

Mapfile load_mapfile(Env& env, const std::string& path) {
  std::unique_ptr<File> f = env.open_read(path);
  constexpr uint64_t kMax = 256ull << 20;
  if (f->size() > kMax) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "mapfile of " + human_size(f->size()) + " is larger than the 256 MiB limit");
  }
  std::string text(static_cast<size_t>(f->size()), '\0');
  if (!text.empty()) f->read_at(0, text.data(), text.size());
  return parse_mapfile(text, path);
}

void check_covers(const Mapfile& map, uint64_t disk_size) {
  if (map.end() < disk_size) {
    int line = map.blocks.empty() ? 0 : map.blocks.back().line;
    throw Error(ErrorKind::kCorrupt, map.path, std::nullopt,
                (line ? "line " + std::to_string(line) + ": " : std::string()) +
                    "the mapfile ends at " + hex(map.end(), 0, HexCase::kUpper) +
                    " but the image is " + std::to_string(disk_size) + " bytes (" +
                    hex(disk_size, 0, HexCase::kUpper) + "): it does not cover the image");
  }
  if (map.end() > disk_size) {
    uint64_t rescued_past = 0;
    int line = 0;
    for (const MapBlock& b : map.blocks) {
      if (b.status != '+' || b.pos + b.size <= disk_size) continue;
      rescued_past += b.pos + b.size - std::max(b.pos, disk_size);
      if (!line) line = b.line;
    }
    const std::string sizes = "the mapfile describes a disk of " + std::to_string(map.end()) +
                              " bytes (" + hex(map.end(), 0, HexCase::kUpper) +
                              ") but the image is " + std::to_string(disk_size) + " bytes (" +
                              hex(disk_size, 0, HexCase::kUpper) + ")";
    if (rescued_past) {
      throw Error(ErrorKind::kCorrupt, map.path, std::nullopt,
                  "line " + std::to_string(line) + ": " + sizes + ", and " +
                      std::to_string(rescued_past) +
                      " bytes the mapfile marks rescued lie past the image's end: the image is "
                      "truncated, or the mapfile belongs to another image");
    }
    throw Error(ErrorKind::kCorrupt, map.path, std::nullopt,
                sizes +
                    "; nothing past the image's end was rescued, so ddrescue never wrote "
                    "that tail: extend the image to the disk's size (truncate -s " +
                    std::to_string(map.end()) + " IMAGE) to read it as unrescued");
  }
}

std::vector<BadArea> bad_areas(const Mapfile& map, uint64_t disk_size) {
  std::vector<BadArea> out;
  for (const MapBlock& b : map.blocks) {
    if (b.status == '+' || b.pos >= disk_size) continue;
    uint64_t len = std::min(b.size, disk_size - b.pos);
    if (!out.empty() && out.back().status == b.status &&
        out.back().start + out.back().length == b.pos) {
      out.back().length += len;
    } else {
      out.push_back(BadArea{b.pos, len, b.status});
    }
  }
  return out;
}

uint64_t bad_bytes(const std::vector<BadArea>& areas) {
  uint64_t n = 0;
  for (const BadArea& a : areas) n += a.length;
  return n;
}

}  // namespace vdisk::ddrescue

namespace vdisk::ddrescue {

std::string format_mapfile(const Mapfile& map, const std::vector<std::string>& comments) {
  std::string out;
  for (const std::string& c : comments) out += "# " + c + "\n";
  char line[96];
  std::snprintf(line, sizeof line, "# current_pos  current_status  current_pass\n0x%08llX     %c",
                static_cast<unsigned long long>(map.current_pos), map.current_status);
  out += line;
  if (map.current_pass) out += "               " + std::to_string(*map.current_pass);
  out += "\n#      pos        size  status\n";
  for (const MapBlock& b : map.blocks)
    out += hex(b.pos, 0, HexCase::kUpper) + "  " + hex(b.size, 0, HexCase::kUpper) + "  " +
           b.status + "\n";
  return out;
}

std::string format_mapfile(uint64_t disk_size, const std::vector<BadArea>& areas,
                           const std::vector<std::string>& comments) {
  // The run is over: position 0, status '+' (finished), pass 1, the way
  // ddrescue leaves the status line of a finished run.
  Mapfile map;
  map.current_pos = 0;
  map.current_status = '+';
  map.current_pass = 1;
  auto block = [&](uint64_t pos, uint64_t size, char status) {
    if (size != 0) map.blocks.push_back(MapBlock{pos, size, status, 0});
  };
  uint64_t pos = 0;
  for (const BadArea& a : areas) {
    if (a.start < pos || a.length == 0 || a.start > disk_size || a.length > disk_size - a.start ||
        a.status == '+' || !is_block_status(std::string(1, a.status))) {
      throw Error(ErrorKind::kInvalidArgument, "", a.start,
                  "mapfile areas must be sorted, non-overlapping, inside the disk and not '+'");
    }
    block(pos, a.start - pos, '+');
    block(a.start, a.length, a.status);
    pos = a.start + a.length;
  }
  block(pos, disk_size - pos, '+');
  return format_mapfile(map, comments);
}

void save_mapfile(Env& env, const std::string& path, const std::string& text) {
  std::unique_ptr<OutputFile> out = env.create_output(path, /*overwrite=*/true);
  try {
    out->write_at(0, text.data(), text.size());
    out->commit();
  } catch (...) {
    out->discard();
    throw;
  }
}

RescueMap::RescueMap(uint64_t size) : size_(size) {
  if (size_ == 0) return;
  starts_[0] = '?';
  bytes_[index('?')] = size_;
}

RescueMap RescueMap::from_mapfile(const Mapfile& map, uint64_t size) {
  if (map.end() > size) {
    throw Error(ErrorKind::kCorrupt, map.path, std::nullopt,
                "the mapfile describes a disk of " + std::to_string(map.end()) +
                    " bytes but the source is " + std::to_string(size) +
                    " bytes: it belongs to another disk");
  }
  RescueMap r(size);
  for (const MapBlock& b : map.blocks) {
    if (b.status != '?') r.set(b.pos, b.size, b.status);
  }
  r.current_pos = std::min(map.current_pos, size);
  r.current_status = map.current_status;
  r.current_pass = map.current_pass.value_or(1);
  return r;
}

int RescueMap::index(char status) {
  switch (status) {
    case '?':
      return 0;
    case '*':
      return 1;
    case '/':
      return 2;
    case '-':
      return 3;
    case '+':
      return 4;
  }
  throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
              std::string("not a block status: '") + status + "'");
}

void RescueMap::split(uint64_t pos) {
  if (pos == 0 || pos >= size_ || starts_.count(pos)) return;
  auto it = std::prev(starts_.upper_bound(pos));
  starts_.emplace_hint(std::next(it), pos, it->second);
}

void RescueMap::set(uint64_t pos, uint64_t len, char status) {
  const int idx = index(status);
  if (pos >= size_ || len == 0) return;
  const uint64_t end = len > size_ - pos ? size_ : pos + len;
  split(pos);
  split(end);
  auto it = starts_.find(pos);
  while (it != starts_.end() && it->first < end) {
    auto nx = std::next(it);
    const uint64_t block_end = nx == starts_.end() ? size_ : nx->first;
    bytes_[index(it->second)] -= block_end - it->first;
    it = starts_.erase(it);
  }
  bytes_[idx] += end - pos;
  auto at = starts_.emplace(pos, status).first;
  // Merge with the neighbours of the same status.
  auto after = std::next(at);
  if (after != starts_.end() && after->second == status) starts_.erase(after);
  if (at != starts_.begin() && std::prev(at)->second == status) starts_.erase(at);
}

MapBlock RescueMap::block_at(uint64_t pos) const {
  auto it = std::prev(starts_.upper_bound(pos));
  auto nx = std::next(it);
  const uint64_t end = nx == starts_.end() ? size_ : nx->first;
  return MapBlock{it->first, end - it->first, it->second, 0};
}

std::optional<MapBlock> RescueMap::next(uint64_t pos, const char* statuses) const {
  if (pos >= size_) return std::nullopt;
  auto it = std::prev(starts_.upper_bound(pos));
  for (; it != starts_.end(); ++it) {
    if (!std::strchr(statuses, it->second)) continue;
    auto nx = std::next(it);
    const uint64_t end = nx == starts_.end() ? size_ : nx->first;
    const uint64_t start = std::max(pos, it->first);
    return MapBlock{start, end - start, it->second, 0};
  }
  return std::nullopt;
}

std::optional<MapBlock> RescueMap::prev(uint64_t end, const char* statuses) const {
  if (end == 0 || size_ == 0) return std::nullopt;
  end = std::min(end, size_);
  auto it = std::prev(starts_.lower_bound(end));
  while (true) {
    if (std::strchr(statuses, it->second)) {
      auto nx = std::next(it);
      const uint64_t block_end = std::min(end, nx == starts_.end() ? size_ : nx->first);
      return MapBlock{it->first, block_end - it->first, it->second, 0};
    }
    if (it == starts_.begin()) return std::nullopt;
    --it;
  }
}

uint64_t RescueMap::bytes(char status) const {
  return bytes_[index(status)];
}

size_t RescueMap::areas(char status) const {
  size_t n = 0;
  for (const auto& [start, st] : starts_) n += st == status;
  return n;
}

std::vector<MapBlock> RescueMap::blocks() const {
  std::vector<MapBlock> out;
  for (auto it = starts_.begin(); it != starts_.end(); ++it) {
    auto nx = std::next(it);
    const uint64_t end = nx == starts_.end() ? size_ : nx->first;
    out.push_back(MapBlock{it->first, end - it->first, it->second, 0});
  }
  return out;
}

Mapfile RescueMap::to_mapfile(const std::string& path) const {
  Mapfile m;
  m.path = path;
  m.current_pos = current_pos;
  m.current_status = current_status;
  m.current_pass = current_pass;
  m.blocks = blocks();
  return m;
}

Mapfile mapfile_with_bad_ranges(const Mapfile* base, uint64_t disk_size,
                                const std::vector<ByteRange>& ranges, char status,
                                const std::string& path) {
  std::vector<BadArea> painted;
  for (const ByteRange& r : ranges) {
    if (r.length == 0 || r.start >= disk_size) continue;
    painted.push_back({r.start, std::min(disk_size - r.start, r.length), status});
  }
  std::vector<BadArea> under = base ? bad_areas(*base, disk_size) : std::vector<BadArea>{};
  return parse_mapfile(format_mapfile(disk_size, overlay_areas(painted, under), {}), path);
}

std::vector<BadArea> overlay_areas(const std::vector<BadArea>& top,
                                   const std::vector<BadArea>& bottom) {
  auto by_start = [](const BadArea& a, const BadArea& b) { return a.start < b.start; };
  std::vector<BadArea> lists[2] = {top, bottom};
  // Every boundary of either list; between two boundaries one status holds:
  // the first top area's that covers it, else the first bottom area's.
  std::vector<uint64_t> cuts;
  for (auto& list : lists) {
    std::stable_sort(list.begin(), list.end(), by_start);
    for (const BadArea& a : list) {
      if (a.length) cuts.insert(cuts.end(), {a.start, a.start + a.length});
    }
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  size_t first[2] = {0, 0};  // per list: no area before it reaches the cut
  std::vector<BadArea> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const uint64_t a = cuts[i], b = cuts[i + 1];
    char st = '+';
    for (int l = 0; l < 2 && st == '+'; ++l) {
      const std::vector<BadArea>& list = lists[l];
      while (first[l] < list.size() && list[first[l]].start + list[first[l]].length <= a)
        ++first[l];
      // Areas of one list may overlap: any that covers [a, b) decides.
      for (size_t k = first[l]; k < list.size() && list[k].start <= a; ++k) {
        if (list[k].start + list[k].length > a) {
          st = list[k].status;
          break;
        }
      }
    }
    if (st == '+') continue;
    if (!out.empty() && out.back().status == st && out.back().start + out.back().length == a) {
      out.back().length += b - a;
    } else {
      out.push_back({a, b - a, st});
    }
  }
  return out;
}

}  // namespace vdisk::ddrescue
