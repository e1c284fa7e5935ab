#include "cli/text.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>

namespace vdisk::cli {

unsigned terminal_width() {
  winsize ws{};
  if (::isatty(1) && ::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

std::string wrap(const std::string& text, unsigned width, unsigned first_indent, unsigned indent) {
  std::string out;
  size_t col = first_indent;
  bool line_empty = true;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = text.find(' ', i);
    if (end == std::string::npos) end = text.size();
    const size_t len = end - i;
    if (!line_empty && col + 1 + len > width) {
      out += "\n" + std::string(indent, ' ');
      col = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out += ' ';
      ++col;
    }
    out.append(text, i, len);
    col += len;
    line_empty = false;
    i = end;
  }
  return out;
}

std::string two_columns(const std::vector<std::pair<std::string, std::string>>& rows,
                        unsigned width) {
  size_t name_width = 0;
  for (const auto& [name, text] : rows) {
    if (name.size() + 4 <= width / 2) name_width = std::max(name_width, name.size());
  }
  const unsigned indent = static_cast<unsigned>(name_width) + 4;  // "  NAME  "
  std::string out;
  for (const auto& [name, text] : rows) {
    std::string line = "  " + name;
    if (name.size() > name_width) {
      line += "\n" + std::string(indent, ' ');
    } else {
      line += std::string(name_width - name.size() + 2, ' ');
    }
    out += line + wrap(text, width, indent, indent) + "\n";
  }
  return out;
}

std::string count_of(uint64_t n, const std::string& singular, const std::string& plural) {
  return std::to_string(n) + " " + (n == 1 ? singular : plural);
}

namespace {

// Optimal string alignment distance (Levenshtein plus adjacent swaps).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::vector<std::string> closest_matches(const std::string& word,
                                         const std::vector<std::string>& candidates) {
  if (word.empty()) return {};
  std::vector<std::string> prefixed;
  for (const std::string& c : candidates) {
    if (c.size() > word.size() && c.compare(0, word.size(), word) == 0) prefixed.push_back(c);
  }
  if (prefixed.size() == 1) return prefixed;
  // Short words tolerate one mistake, longer ones a few: "conver" → convert,
  // "hsah" → hash, never "ls" → "cat".
  const size_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  size_t best = limit + 1;
  std::vector<std::string> out;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d == 0 || d > limit || d > best) continue;
    if (d < best) out.clear();
    best = d;
    out.push_back(c);
  }
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::vector<std::string> m = closest_matches(word, candidates);
  if (m.empty()) return "";
  std::string s = "; did you mean '" + m[0] + "'";
  for (size_t i = 1; i < m.size() && i < 3; ++i)
    s += (i + 1 == m.size() || i == 2 ? " or '" : ", '") + m[i] + "'";
  return s + "?";
}

std::string hex_offset(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

std::string upper_case(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string escape_name(const std::string& name) {
  std::string out;
  out.reserve(name.size());
  auto octal = [&](unsigned char c) {
    char b[8];
    std::snprintf(b, sizeof b, "\\%03o", c);
    out += b;
  };
  for (size_t i = 0; i < name.size();) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x80) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c >= 0x07 && c <= 0x0D) {
        out += '\\';
        out += "abtnvfr"[c - 0x07];
      } else if (c < 0x20 || c == 0x7F) {
        octal(c);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence is kept when well formed and printable (not a C1
    // control, U+0080..U+009F, which some terminals obey like ESC [).
    size_t len = c >= 0xF0 ? (c < 0xF5 ? 4 : 0) : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    bool ok = len != 0 && i + len <= name.size();
    uint32_t cp = ok ? c & (0x7F >> len) : 0;
    for (size_t k = 1; ok && k < len; ++k) {
      const unsigned char d = static_cast<unsigned char>(name[i + k]);
      ok = (d & 0xC0) == 0x80;
      cp = (cp << 6) | (d & 0x3F);
    }
    ok = ok && cp >= 0xA0 && !(cp >= 0xD800 && cp < 0xE000) && cp < 0x110000 &&
         !(len == 3 && cp < 0x800) && !(len == 4 && cp < 0x10000);
    if (ok) {
      out.append(name, i, len);
      i += len;
    } else {
      octal(c);
      ++i;
    }
  }
  return out;
}

}  // namespace vdisk::cli
