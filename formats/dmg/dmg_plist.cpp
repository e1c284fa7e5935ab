#include "formats/dmg/dmg_plist.h"

#include <cstring>

#include "formats/core/error.h"

namespace vdisk::dmg {

const PlistNode* PlistNode::get(const std::string& k) const {
  for (size_t i = 0; i + 1 < children.size(); i += 2)
    if (children[i].type == "key" && children[i].text == k) return &children[i + 1];
  return nullptr;
}

namespace {

class Parser {
 public:
  Parser(const std::string& s, const std::string& path, uint64_t base)
      : s_(s), path_(path), base_(base) {}

  PlistNode document() {
    // Prolog: <?xml ...?>, <!DOCTYPE ...>, comments, then <plist ...>.
    for (;;) {
      skip_space();
      if (starts("<?")) {
        skip_past("?>");
      } else if (starts("<!--")) {
        skip_past("-->");
      } else if (starts("<!")) {
        skip_past(">");
      } else {
        break;
      }
    }
    Tag t = open_tag();
    if (t.name != "plist") fail("root element is <" + t.name + ">, not <plist>");
    if (t.empty) fail("empty <plist>");
    PlistNode root = value(1);
    skip_misc();
    close_tag("plist");
    return root;
  }

 private:
  struct Tag {
    std::string name;
    bool empty = false;
  };

  [[noreturn]] void fail(const std::string& what) {
    throw_corrupt(path_, base_ + pos_, "DMG property list: " + what);
  }
  bool starts(const char* lit) const { return s_.compare(pos_, std::strlen(lit), lit) == 0; }
  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void skip_past(const char* lit) {
    size_t e = s_.find(lit, pos_);
    if (e == std::string::npos) fail(std::string("missing '") + lit + "'");
    pos_ = e + std::strlen(lit);
  }
  void skip_misc() {
    for (;;) {
      skip_space();
      if (starts("<!--")) {
        skip_past("-->");
      } else {
        return;
      }
    }
  }
  Tag open_tag() {
    skip_misc();
    if (pos_ >= s_.size() || s_[pos_] != '<' || starts("</")) fail("expected an element");
    size_t e = s_.find('>', pos_);
    if (e == std::string::npos) fail("unterminated element");
    std::string inner = s_.substr(pos_ + 1, e - pos_ - 1);
    pos_ = e + 1;
    Tag t;
    if (!inner.empty() && inner.back() == '/') {
      t.empty = true;
      inner.pop_back();
    }
    size_t n = inner.find_first_of(" \t\r\n");
    t.name = inner.substr(0, n);
    if (t.name.empty()) fail("element without a name");
    return t;
  }
  void close_tag(const std::string& name) {
    skip_misc();
    std::string want = "</" + name;
    if (!starts(want.c_str())) fail("expected </" + name + ">");
    pos_ += want.size();
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != '>') fail("expected </" + name + ">");
    ++pos_;
  }
  std::string text_until_close(const std::string& name) {
    std::string want = "</" + name;
    size_t e = s_.find(want, pos_);
    if (e == std::string::npos) fail("<" + name + "> is not closed");
    std::string raw = s_.substr(pos_, e - pos_);
    pos_ = e;
    close_tag(name);
    return decode_entities(raw);
  }
  std::string decode_entities(const std::string& raw) {
    std::string out;
    out.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        out += raw[i];
        continue;
      }
      size_t e = raw.find(';', i);
      if (e == std::string::npos || e - i > 10) fail("bad entity");
      std::string ent = raw.substr(i + 1, e - i - 1);
      if (ent == "lt")
        out += '<';
      else if (ent == "gt")
        out += '>';
      else if (ent == "amp")
        out += '&';
      else if (ent == "quot")
        out += '"';
      else if (ent == "apos")
        out += '\'';
      else if (ent.size() > 1 && ent[0] == '#') {
        unsigned long v = ent[1] == 'x' ? std::strtoul(ent.c_str() + 2, nullptr, 16)
                                        : std::strtoul(ent.c_str() + 1, nullptr, 10);
        out += v < 0x80 ? static_cast<char>(v) : '?';
      } else {
        fail("unknown entity &" + ent + ";");
      }
      i = e;
    }
    return out;
  }

  PlistNode value(int depth) {
    if (depth > kMaxPlistDepth) fail("nested deeper than 32 levels");
    if (++nodes_ > kMaxPlistNodes) fail("more than 1048576 elements");
    Tag t = open_tag();
    PlistNode n;
    n.type = t.name;
    if (t.empty) return n;
    if (t.name == "dict" || t.name == "array") {
      for (;;) {
        skip_misc();
        if (starts("</")) break;
        if (t.name == "dict") {
          Tag k = open_tag();
          if (k.name != "key") fail("dict entry without a <key>");
          PlistNode key;
          key.type = "key";
          if (!k.empty) key.text = text_until_close("key");
          if (++nodes_ > kMaxPlistNodes) fail("more than 1048576 elements");
          n.children.push_back(std::move(key));
        }
        n.children.push_back(value(depth + 1));
      }
      close_tag(t.name);
      return n;
    }
    n.text = text_until_close(t.name);
    return n;
  }

  const std::string& s_;
  const std::string& path_;
  uint64_t base_;
  size_t pos_ = 0;
  size_t nodes_ = 0;
};

}  // namespace

PlistNode parse_plist(const std::string& xml, const std::string& path, uint64_t base) {
  return Parser(xml, path, base).document();
}

std::vector<uint8_t> decode_base64(const std::string& text, const std::string& path,
                                   uint64_t offset) {
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=') {
      padding = true;
      continue;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      continue;
    } else {
      throw_corrupt(path, offset, "DMG plist <data> holds a character that is not base64");
    }
    if (padding) throw_corrupt(path, offset, "DMG plist <data> has base64 after its padding");
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  return out;
}

}  // namespace vdisk::dmg
