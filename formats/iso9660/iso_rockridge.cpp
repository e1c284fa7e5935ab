#include "formats/iso9660/iso_rockridge.h"

#include <algorithm>
#include <set>
#include <string_view>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/iso9660/iso_layout.h"
#include "formats/iso9660/iso_names.h"

namespace vdisk::iso9660 {

namespace {

// TF stamps in RRIP 4.1.6 order; which of them the caller keeps.
Timestamp decode_tf_stamp(const uint8_t* p, bool long_form) {
  if (long_form) {
    if (auto t = decode_volume_date(p)) return *t;
    return Timestamp{};
  }
  return decode_record_date(p);
}

// Appends while `s` stays within `max` bytes; past it, sets `over` and keeps
// `s` as it was (the entry is refused by the caller, never grown).
void append_bounded(std::string& s, std::string_view piece, size_t max, bool& over) {
  if (over || piece.size() > max - s.size()) {
    over = true;
    return;
  }
  s.append(piece);
}

struct ParseState {
  bool nm_done = false;
  bool sl_done = false;
  bool sl_need_sep = false;
};

void parse_entries(const uint8_t* a, size_t len, RockRidgeEntries& out, ParseState& st,
                   std::optional<std::tuple<uint32_t, uint32_t, uint32_t>>& ce) {
  size_t pos = 0;
  while (pos + susp::kHeader <= len) {
    const uint8_t* e = a + pos;
    size_t elen = e[2];
    // SUSP 4.1: the length covers the whole entry; anything shorter than the
    // header or running past the area ends the area (padding or damage).
    if (elen < susp::kHeader || pos + elen > len) break;
    const char s0 = static_cast<char>(e[0]), s1 = static_cast<char>(e[1]);
    auto is = [&](char x, char y) { return s0 == x && s1 == y; };
    if (is('S', 'T')) break;
    if (is('S', 'P') && elen >= susp::kSpLength && e[4] == 0xBE && e[5] == 0xEF) {
      out.has_sp = true;
      out.sp_skip = e[6];
    } else if (is('C', 'E') && elen >= susp::kCeLength) {
      ce = std::make_tuple(load_le32(e + 4), load_le32(e + 12), load_le32(e + 20));
    } else if (is('E', 'R') && elen >= susp::kErFixed) {
      size_t id_len = e[4];
      if (susp::kErFixed + id_len <= elen)
        out.extensions.emplace_back(reinterpret_cast<const char*>(e + 8), id_len);
    } else if (is('P', 'X') && elen >= rr::kPxLength110) {
      out.has_px = true;
      out.mode = load_le32(e + 4);
      out.nlink = load_le32(e + 12);
      out.uid = load_le32(e + 20);
      out.gid = load_le32(e + 28);
    } else if (is('P', 'N') && elen >= rr::kPnLength) {
      out.has_pn = true;
      // RRIP 4.1.2 leaves the split of a device number to the system.
      // genisoimage (and Linux when high != 0) use high = major, low = minor;
      // libisofs stores the glibc dev_t, which for high == 0 decodes as below
      // (and equals Linux's "low >> 8, low & 0xff" for small numbers).
      uint64_t high = load_le32(e + 4), low = load_le32(e + 12);
      uint64_t major = high, minor = low;
      if (high == 0) {
        major = (low >> 8) & 0xFFF;
        minor = (low & 0xFF) | ((low >> 12) & ~uint64_t{0xFF});
      }
      out.rdev = (major << 32) | minor;
    } else if (is('N', 'M') && elen >= 5) {
      if (!st.nm_done) {
        uint8_t flags = e[4];
        out.has_nm = true;
        std::string_view piece =
            (flags & rr::kNmCurrent) ? std::string_view(".")
            : (flags & rr::kNmParent)
                ? std::string_view("..")
                : std::string_view(reinterpret_cast<const char*>(e + 5), elen - 5);
        append_bounded(out.name, piece, kMaxNameBytes, out.name_too_long);
        if (!(flags & rr::kNmContinue)) st.nm_done = true;
      }
    } else if (is('S', 'L') && elen >= 5) {
      if (!st.sl_done) {
        out.has_sl = true;
        size_t cp = 5;
        while (cp + 2 <= elen) {
          uint8_t cf = e[cp];
          size_t clen = e[cp + 1];
          if (cp + 2 + clen > elen) break;
          std::string piece;
          if (cf & rr::kSlRoot) {
            out.link_target = "/";
            st.sl_need_sep = false;
            cp += 2 + clen;
            continue;
          }
          if (cf & rr::kSlCurrent)
            piece = ".";
          else if (cf & rr::kSlParent)
            piece = "..";
          else
            piece.assign(reinterpret_cast<const char*>(e + cp + 2), clen);
          if (st.sl_need_sep)
            append_bounded(out.link_target, "/", kMaxLinkBytes, out.link_too_long);
          append_bounded(out.link_target, piece, kMaxLinkBytes, out.link_too_long);
          st.sl_need_sep = !(cf & rr::kSlContinue);
          cp += 2 + clen;
        }
        if (!(e[4] & rr::kSlContinue)) st.sl_done = true;
      }
    } else if (is('C', 'L') && elen >= rr::kClLength) {
      out.child_link = load_le32(e + 4);
    } else if (is('P', 'L') && elen >= rr::kClLength) {
      out.parent_link = load_le32(e + 4);
    } else if (is('R', 'E')) {
      out.relocated = true;
    } else if (is('T', 'F') && elen >= 5) {
      uint8_t flags = e[4];
      bool long_form = flags & rr::kTfLongForm;
      size_t stamp = long_form ? 17 : 7;
      size_t p = 5;
      const uint8_t order[] = {rr::kTfCreation,   rr::kTfModify, rr::kTfAccess,
                               rr::kTfAttributes, rr::kTfBackup, rr::kTfExpiration,
                               rr::kTfEffective};
      for (uint8_t bit : order) {
        if (!(flags & bit)) continue;
        if (p + stamp > elen) break;
        Timestamp t = decode_tf_stamp(e + p, long_form);
        if (bit == rr::kTfModify)
          out.mtime = t;
        else if (bit == rr::kTfAccess)
          out.atime = t;
        else if (bit == rr::kTfAttributes)
          out.ctime = t;
        p += stamp;
      }
    }
    pos += elen;
  }
}

void put_both32(std::string& s, uint32_t v) {
  uint8_t b[8];
  store_le32(b, v);
  store_be32(b + 4, v);
  s.append(reinterpret_cast<const char*>(b), 8);
}

std::string header(const char* sig, size_t len) {
  std::string s;
  s += sig[0];
  s += sig[1];
  s += static_cast<char>(len);
  s += static_cast<char>(1);
  return s;
}

}  // namespace

void parse_system_use(const BlockDevice& dev, const std::string& label, const uint8_t* area,
                      size_t len, uint64_t where, RockRidgeEntries& out) {
  ParseState st;
  std::optional<std::tuple<uint32_t, uint32_t, uint32_t>> ce;
  parse_entries(area, len, out, st, ce);
  std::set<uint64_t> seen;
  std::vector<uint8_t> buf;
  for (int hops = 0; ce; ++hops) {
    // The record is refused anyway: no need to read on.
    if (out.name_too_long || out.link_too_long) break;
    auto [block, offset, length] = *ce;
    ce.reset();
    uint64_t start = static_cast<uint64_t>(block) * kSectorSize + offset;
    if (!seen.insert(start).second) {
      throw Error(ErrorKind::kCorrupt, label, where,
                  "Rock Ridge continuation (CE) entries loop back to block " +
                      std::to_string(block) + " offset " + std::to_string(offset));
    }
    if (hops >= kMaxContinuationAreas) {
      throw Error(ErrorKind::kCorrupt, label, where,
                  "Rock Ridge continuation (CE) entries chain more than " +
                      std::to_string(kMaxContinuationAreas) + " areas");
    }
    if (length == 0) break;
    if (start + length > dev.size()) {
      throw Error(ErrorKind::kCorrupt, label, where,
                  "CE continuation area of " + std::to_string(length) + " bytes at block " +
                      std::to_string(block) + " offset " + std::to_string(offset) +
                      " lies outside the image");
    }
    if (length > kMaxContinuationBytes - out.continuation_bytes) {
      throw Error(ErrorKind::kCorrupt, label, where,
                  "Rock Ridge continuation (CE) areas of one record add up to more than " +
                      std::to_string(kMaxContinuationBytes) + " bytes");
    }
    out.continuation_bytes += length;
    buf.resize(length);
    dev.read(start, buf.data(), length);
    parse_entries(buf.data(), length, out, st, ce);
    where = start;
  }
}

NodeType node_type_from_mode(uint32_t mode) {
  switch (mode & rr::kIfMt) {
    case rr::kIfDir:
      return NodeType::kDirectory;
    case rr::kIfLnk:
      return NodeType::kSymlink;
    case rr::kIfChr:
      return NodeType::kCharDevice;
    case rr::kIfBlk:
      return NodeType::kBlockDevice;
    case rr::kIfIfo:
      return NodeType::kFifo;
    case rr::kIfSock:
      return NodeType::kSocket;
    default:
      return NodeType::kRegular;
  }
}

uint32_t mode_type_bits(NodeType type) {
  switch (type) {
    case NodeType::kDirectory:
      return rr::kIfDir;
    case NodeType::kSymlink:
      return rr::kIfLnk;
    case NodeType::kCharDevice:
      return rr::kIfChr;
    case NodeType::kBlockDevice:
      return rr::kIfBlk;
    case NodeType::kFifo:
      return rr::kIfIfo;
    case NodeType::kSocket:
      return rr::kIfSock;
    default:
      return rr::kIfReg;
  }
}

std::string make_sp_entry() {
  std::string s = header("SP", susp::kSpLength);
  s += static_cast<char>(0xBE);
  s += static_cast<char>(0xEF);
  s += static_cast<char>(0);
  return s;
}

std::string make_er_entry() {
  // RRIP 1.10 registration strings (RRIP 1991A, section 5.5 of SUSP).
  static const std::string id = "RRIP_1991A";
  static const std::string des =
      "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
  static const std::string src =
      "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN "
      "PRIMARY "
      "VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";
  std::string s = header("ER", susp::kErFixed + id.size() + des.size() + src.size());
  s += static_cast<char>(id.size());
  s += static_cast<char>(des.size());
  s += static_cast<char>(src.size());
  s += static_cast<char>(1);
  s += id + des + src;
  return s;
}

std::string make_ce_entry(uint32_t block, uint32_t offset, uint32_t length) {
  std::string s = header("CE", susp::kCeLength);
  put_both32(s, block);
  put_both32(s, offset);
  put_both32(s, length);
  return s;
}

std::string make_px_entry(uint32_t mode, uint32_t nlink, uint32_t uid, uint32_t gid) {
  std::string s = header("PX", rr::kPxLength110);
  put_both32(s, mode);
  put_both32(s, nlink);
  put_both32(s, uid);
  put_both32(s, gid);
  return s;
}

std::string make_pn_entry(uint64_t rdev) {
  // Small numbers as high = 0, low = major << 8 | minor: Linux and libisofs
  // both read that right; larger ones as high = major, low = minor (Linux,
  // genisoimage).
  uint64_t major = rdev >> 32, minor = rdev & 0xFFFFFFFF;
  std::string s = header("PN", rr::kPnLength);
  if (major < 4096 && minor < 256) {
    put_both32(s, 0);
    put_both32(s, static_cast<uint32_t>((major << 8) | minor));
  } else {
    put_both32(s, static_cast<uint32_t>(major));
    put_both32(s, static_cast<uint32_t>(minor));
  }
  return s;
}

std::string make_tf_entry(int64_t mtime, int64_t atime, int64_t ctime) {
  std::string s = header("TF", 5 + 3 * 7);
  s += static_cast<char>(rr::kTfModify | rr::kTfAccess | rr::kTfAttributes);
  for (int64_t t : {mtime, atime, ctime}) {
    uint8_t b[7];
    encode_record_date(t, b);
    s.append(reinterpret_cast<const char*>(b), 7);
  }
  return s;
}

std::string make_cl_entry(uint32_t lba) {
  std::string s = header("CL", rr::kClLength);
  put_both32(s, lba);
  return s;
}

std::string make_pl_entry(uint32_t lba) {
  std::string s = header("PL", rr::kClLength);
  put_both32(s, lba);
  return s;
}

std::string make_re_entry() {
  return header("RE", 4);
}

std::vector<std::string> make_nm_entries(const std::string& name) {
  std::vector<std::string> out;
  constexpr size_t kMax = 250;
  size_t pos = 0;
  do {
    size_t n = std::min(kMax, name.size() - pos);
    bool more = pos + n < name.size();
    std::string s = header("NM", 5 + n);
    s += static_cast<char>(more ? rr::kNmContinue : 0);
    s += name.substr(pos, n);
    out.push_back(std::move(s));
    pos += n;
  } while (pos < name.size());
  return out;
}

std::vector<std::string> make_sl_entries(const std::string& target) {
  // Component records (RRIP 4.1.3.1): split the target at '/', a leading '/'
  // is a ROOT component, "." and ".." are CURRENT / PARENT, and a component
  // over 248 bytes continues in the next record.
  std::vector<std::string> comps;  // encoded component records
  size_t pos = 0;
  if (!target.empty() && target[0] == '/') {
    comps.push_back(std::string{static_cast<char>(rr::kSlRoot), '\0'});
    pos = 1;
  }
  while (pos <= target.size()) {
    size_t slash = target.find('/', pos);
    std::string part =
        target.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? target.size() + 1 : slash + 1;
    if (part.empty() && pos > target.size()) break;  // trailing '/'
    if (part == ".") {
      comps.push_back(std::string{static_cast<char>(rr::kSlCurrent), '\0'});
    } else if (part == "..") {
      comps.push_back(std::string{static_cast<char>(rr::kSlParent), '\0'});
    } else {
      size_t p = 0;
      do {
        size_t n = std::min<size_t>(248, part.size() - p);
        bool more = p + n < part.size();
        std::string c;
        c += static_cast<char>(more ? rr::kSlContinue : 0);
        c += static_cast<char>(n);
        c += part.substr(p, n);
        comps.push_back(std::move(c));
        p += n;
      } while (p < part.size());
    }
  }
  std::vector<std::string> out;
  std::string body;
  auto flush = [&](bool more) {
    std::string s = header("SL", 5 + body.size());
    s += static_cast<char>(more ? rr::kSlContinue : 0);
    s += body;
    out.push_back(std::move(s));
    body.clear();
  };
  for (auto& c : comps) {
    if (5 + body.size() + c.size() > 255) flush(true);
    body += c;
  }
  flush(false);
  return out;
}

}  // namespace vdisk::iso9660
