#include "formats/vhd/vhd_reader.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/core/parent.h"
#include "formats/core/unicode.h"

namespace vdisk::vhd {

namespace {

bool has_cookie(const uint8_t* p, const char (&cookie)[8]) {
  return std::memcmp(p, cookie, 8) == 0;
}

// A footer that passed its checks, or the reason it did not.
struct FooterCandidate {
  std::optional<Footer> footer;
  std::string problem;
  bool cookie = false;
};

FooterCandidate check_footer(const uint8_t* bytes, size_t len) {
  FooterCandidate c;
  if (!has_cookie(bytes, kFooterCookie)) {
    c.problem = "no VHD footer cookie 'conectix'";
    return c;
  }
  c.cookie = true;
  Footer f = decode_footer(bytes);
  uint32_t want = vhd_checksum(bytes, len, kFooterChecksumOff);
  if (f.checksum != want) {
    c.problem =
        "footer checksum " + hex(f.checksum, 8) + " does not match the computed " + hex(want, 8);
    return c;
  }
  c.footer = f;
  return c;
}

// UTF-16 (either byte order) to UTF-8, stopping at the first NUL; unpaired
// surrogates become U+FFFD.
std::string utf16_to_utf8(const uint8_t* p, size_t len, bool big_endian) {
  return vdisk::utf16_to_utf8(p, len, big_endian ? ByteOrder::kBig : ByteOrder::kLittle);
}

// "file://localhost/Users/me/base.vhd" or "file:///..." -> "/Users/me/base.vhd"
// with %XX escapes decoded (RFC 2396), as MacX locators store it.
std::string file_url_to_path(const std::string& url) {
  std::string rest = url;
  if (rest.compare(0, 7, "file://") == 0) {
    rest = rest.substr(7);
    size_t slash = rest.find('/');
    rest = slash == std::string::npos ? "" : rest.substr(slash);
  }
  std::string out;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '%' && i + 2 < rest.size() &&
        std::isxdigit(static_cast<unsigned char>(rest[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(rest[i + 2]))) {
      out += static_cast<char>(std::stoi(rest.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += rest[i];
    }
  }
  return out;
}

std::string strip_dot_slash(std::string p) {
  while (p.compare(0, 2, "./") == 0) p = p.substr(2);
  return p;
}

// The parent's candidates in the order the spec suggests trying them:
// relative locators, then absolute ones (their base name in the child's
// folder: a Windows path means nothing here; the path itself only with
// --allow-outside-paths), then the header's parent name.
std::vector<ParentCandidate> parent_candidates(const File& file, const DynamicHeader& h) {
  std::vector<ParentCandidate> out;
  struct Decoded {
    uint32_t code;
    std::string text;
    size_t index;
  };
  std::vector<Decoded> relative, absolute;
  for (size_t i = 0; i < kLocatorCount; ++i) {
    const ParentLocator& l = h.locators[i];
    if (l.code == kPlatNone) continue;
    std::string source = format_code(l.code) + " locator " + std::to_string(i + 1);
    // A path, not a blob: 64 KiB is far beyond any real one.
    if (l.data_length == 0 || l.data_length > 65536 || l.data_offset > file.size() ||
        l.data_length > file.size() - l.data_offset) {
      out.push_back({source, "",
                     "locator data (" + std::to_string(l.data_length) + " bytes at offset " +
                         std::to_string(l.data_offset) + ") lies outside the file"});
      continue;
    }
    if (l.code == kPlatMac) {
      out.push_back({source, "", "Mac OS alias records are not decoded"});
      continue;
    }
    const bool is_relative = l.code == kPlatW2ru || l.code == kPlatWi2r;
    if (!is_relative && l.code != kPlatW2ku && l.code != kPlatWi2k && l.code != kPlatMacX) {
      out.push_back({source, "", "unknown platform code"});
      continue;
    }
    std::vector<uint8_t> data(l.data_length);
    file.read_at(l.data_offset, data.data(), data.size());
    // W2ru/W2ku hold UTF-16LE; MacX holds a UTF-8 URL; the deprecated
    // Wi2r/Wi2k hold 8-bit text in the host's code page (ASCII taken as is).
    std::string text = (l.code == kPlatW2ru || l.code == kPlatW2ku)
                           ? utf16_to_utf8(data.data(), data.size(), false)
                           : std::string(data.begin(), std::find(data.begin(), data.end(), 0));
    (is_relative ? relative : absolute).push_back({l.code, text, i});
  }
  auto source_of = [](const Decoded& d) {
    return format_code(d.code) + " locator " + std::to_string(d.index + 1) + " '" + d.text + "'";
  };
  for (auto& d : relative)
    out.push_back({source_of(d), strip_dot_slash(windows_path_to_posix(d.text)), ""});
  for (auto& d : absolute) {
    std::string posix =
        d.code == kPlatMacX ? file_url_to_path(d.text) : windows_path_to_posix(d.text);
    out.push_back({source_of(d), path_basename(posix), ""});
    if (!posix.empty() && posix[0] == '/') out.push_back({source_of(d), posix, ""});
  }
  std::string name = utf16_to_utf8(h.parent_name.data(), h.parent_name.size(), true);
  if (!name.empty()) {
    out.push_back({"parent name '" + name + "' in the header",
                   path_basename(windows_path_to_posix(name)), ""});
  }
  return out;
}

}  // namespace

int probe_vhd(const ProbeInput& in) {
  // The footer is at the end (fixed disks have nothing else); 511-byte footers
  // come from Virtual PC before 2004. Dynamic disks also carry a copy at 0.
  const auto& t = in.tail;
  if (t.size() >= kFooterSize && has_cookie(t.data() + t.size() - kFooterSize, kFooterCookie)) {
    return kProbeSignature;
  }
  if (t.size() >= kOldFooterSize &&
      has_cookie(t.data() + t.size() - kOldFooterSize, kFooterCookie)) {
    return kProbeSignature;
  }
  if (in.head.size() >= kFooterSize && has_cookie(in.head.data(), kFooterCookie))
    return kProbeSignature;
  return 0;
}

BlockDevicePtr open_vhd(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string& path = file->path();
  const uint64_t fsize = file->size();
  if (fsize < kOldFooterSize) {
    throw Error(ErrorKind::kNotThisFormat, path, std::nullopt,
                "file of " + std::to_string(fsize) + " bytes is too small for a VHD footer");
  }

  // The footer at the end of the file (512 bytes, or 511 for old images).
  uint8_t tail[kFooterSize];
  uint64_t tail_off = fsize >= kFooterSize ? fsize - kFooterSize : fsize - kOldFooterSize;
  size_t tail_len = fsize >= kFooterSize ? kFooterSize : kOldFooterSize;
  file->read_at(tail_off, tail, tail_len);
  FooterCandidate end = check_footer(tail, tail_len);
  if (!end.cookie && tail_len == kFooterSize && has_cookie(tail + 1, kFooterCookie)) {
    tail_off += 1;
    tail_len = kOldFooterSize;
    end = check_footer(tail + 1, kOldFooterSize);
  }

  Footer footer;
  std::string source;
  if (end.footer) {
    footer = *end.footer;
    source = "end of file (offset " + std::to_string(tail_off) + ")";
  } else {
    // Spec: dynamic disks keep a copy of the footer at offset 0 so that a
    // damaged last sector can be recovered.
    FooterCandidate head;
    if (fsize >= kFooterSize) {
      uint8_t hb[kFooterSize];
      file->read_at(0, hb, kFooterSize);
      head = check_footer(hb, kFooterSize);
    }
    bool head_usable = head.footer && (head.footer->disk_type == uint32_t(DiskType::kDynamic) ||
                                       head.footer->disk_type == uint32_t(DiskType::kDifferencing));
    if (!head_usable) {
      if (!end.cookie && !head.cookie) {
        throw Error(ErrorKind::kNotThisFormat, path, tail_off,
                    "not a VHD: no 'conectix' footer in the last 512 bytes or at offset 0");
      }
      throw Error(ErrorKind::kCorrupt, path, end.cookie ? tail_off : 0,
                  end.cookie ? end.problem : "VHD footer copy at offset 0: " + head.problem);
    }
    footer = *head.footer;
    source = "copy at offset 0 (the footer at the end is damaged)";
    opts.warn(path + ": at offset " + std::to_string(tail_off) + ": " + end.problem +
              "; using the footer copy at offset 0");
  }

  if ((footer.version >> 16) != 1) {
    throw Error(ErrorKind::kUnsupported, path, kFooterVersionOff,
                "VHD file format version " + hex(footer.version, 8) + " is not 1.x");
  }

  const uint32_t type = footer.disk_type;
  if (type == uint32_t(DiskType::kFixed)) {
    uint64_t data_len = tail_off;
    if (!end.footer) data_len = fsize;  // unreachable: fixed disks have no copy
    if (footer.current_size > data_len) {
      throw Error(ErrorKind::kCorrupt, path, tail_off + kFooterCurrentSizeOff,
                  "fixed VHD is truncated: the footer's current size is " +
                      std::to_string(footer.current_size) + " bytes but the file holds " +
                      std::to_string(data_len) + " bytes of data");
    }
    return std::make_shared<VhdDevice>(std::move(file), footer, source);
  }
  if (type != uint32_t(DiskType::kDynamic) && type != uint32_t(DiskType::kDifferencing)) {
    throw Error(ErrorKind::kUnsupported, path, tail_off + kFooterDiskTypeOff,
                "VHD disk type " + std::to_string(type) +
                    " is not fixed (2), dynamic (3) or differencing (4)");
  }

  // Dynamic disk header.
  const uint64_t hoff = footer.data_offset;
  if (hoff > fsize || fsize - hoff < kHeaderSize) {
    throw Error(ErrorKind::kCorrupt, path, tail_off + kFooterDataOffsetOff,
                "dynamic header offset " + std::to_string(hoff) + " lies outside the " +
                    std::to_string(fsize) + "-byte file");
  }
  uint8_t hb[kHeaderSize];
  file->read_at(hoff, hb, kHeaderSize);
  if (!has_cookie(hb, kHeaderCookie)) {
    throw Error(ErrorKind::kCorrupt, path, hoff, "no dynamic header cookie 'cxsparse'");
  }
  DynamicHeader h = decode_header(hb);
  uint32_t want = vhd_checksum(hb, kHeaderSize, kHeaderChecksumOff);
  if (h.checksum != want) {
    throw Error(ErrorKind::kCorrupt, path, hoff + kHeaderChecksumOff,
                "dynamic header checksum " + hex(h.checksum, 8) + " does not match the computed " +
                    hex(want, 8));
  }
  if ((h.version >> 16) != 1) {
    throw Error(ErrorKind::kUnsupported, path, hoff + kHeaderVersionOff,
                "dynamic header version " + hex(h.version, 8) + " is not 1.x");
  }
  const uint64_t bs = h.block_size;
  if (bs < kSectorSize || (bs & (bs - 1)) != 0) {
    throw Error(ErrorKind::kCorrupt, path, hoff + kHeaderBlockSizeOff,
                "block size " + std::to_string(bs) + " is not a power of two of at least 512");
  }
  const uint64_t blocks = div_round_up(footer.current_size, bs);
  if (h.max_table_entries < blocks) {
    throw Error(ErrorKind::kCorrupt, path, hoff + kHeaderMaxEntriesOff,
                "BAT has " + std::to_string(h.max_table_entries) + " entries but the " +
                    std::to_string(footer.current_size) + "-byte disk needs " +
                    std::to_string(blocks));
  }
  const uint64_t bat_bytes = checked_mul(blocks, 4, path, hoff + kHeaderMaxEntriesOff, "BAT size");
  const uint64_t bat_end =
      checked_add(h.table_offset, bat_bytes, path, hoff + kHeaderTableOffsetOff, "BAT end");
  if (bat_end > fsize) {
    throw Error(ErrorKind::kCorrupt, path, hoff + kHeaderTableOffsetOff,
                "BAT of " + std::to_string(bat_bytes) + " bytes at offset " +
                    std::to_string(h.table_offset) + " runs past the end of the " +
                    std::to_string(fsize) + "-byte file");
  }
  std::vector<uint8_t> raw(static_cast<size_t>(bat_bytes));
  file->read_at(h.table_offset, raw.data(), raw.size());
  std::vector<uint32_t> bat(static_cast<size_t>(blocks));
  const uint64_t bmp = bitmap_bytes(bs);
  for (uint64_t i = 0; i < blocks; ++i) {
    uint32_t e = load_be32(raw.data() + i * 4);
    bat[i] = e;
    if (e == kBatUnused) continue;
    uint64_t guest_len = std::min(bs, footer.current_size - i * bs);
    uint64_t start = uint64_t{e} * kSectorSize;
    if (start > fsize || fsize - start < bmp + guest_len) {
      throw Error(ErrorKind::kCorrupt, path, h.table_offset + i * 4,
                  "BAT entry " + std::to_string(i) + " puts block data at sector " +
                      std::to_string(e) + ", past the end of the " + std::to_string(fsize) +
                      "-byte file");
    }
    // A block (its bitmap and data) must not overlap the metadata: the footer
    // copy at offset 0, the dynamic header, or the BAT (spec "Block
    // Allocation Table": blocks follow the metadata). Reads would return
    // metadata as data.
    const struct {
      uint64_t offset, length;
      const char* name;
    } meta[] = {{0, kSectorSize, "footer copy"},
                {hoff, kHeaderSize, "dynamic disk header"},
                {h.table_offset, bat_bytes, "BAT"}};
    const uint64_t len = bmp + guest_len;
    for (const auto& r : meta) {
      const bool overlap = start < r.offset ? r.offset - start < len : start - r.offset < r.length;
      if (overlap) {
        throw Error(ErrorKind::kCorrupt, path, h.table_offset + i * 4,
                    "BAT entry " + std::to_string(i) + " puts block data at sector " +
                        std::to_string(e) + ", over the " + r.name + " at offset " +
                        std::to_string(r.offset));
      }
    }
  }

  return std::make_shared<VhdDevice>(std::move(file), footer, source, h, std::move(bat));
}

VhdDevice::VhdDevice(std::shared_ptr<const File> file, Footer footer, std::string footer_source)
    : file_(std::move(file)), footer_(footer), footer_source_(std::move(footer_source)) {
  fixed_ = std::make_shared<FileDevice>(file_, 0, footer_.current_size, "vhd");
}

VhdDevice::VhdDevice(std::shared_ptr<const File> file, Footer footer, std::string footer_source,
                     DynamicHeader header, std::vector<uint32_t> bat)
    : file_(std::move(file)),
      footer_(footer),
      footer_source_(std::move(footer_source)),
      header_(header),
      bat_(std::move(bat)),
      block_size_(header.block_size),
      bitmap_size_(bitmap_bytes(header.block_size)) {}

VhdDevice::Bitmap VhdDevice::bitmap(uint64_t block) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(block);
    if (it != cache_.end()) return it->second;
  }
  auto bm = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(bitmap_size_));
  file_->read_at(uint64_t{bat_[block]} * kSectorSize, bm->data(), bm->size());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto [it, inserted] = cache_.emplace(block, bm);
  if (inserted) {
    cache_order_.push_back(block);
    if (cache_order_.size() > std::max<uint64_t>(1, kBitmapCacheBytes / bitmap_size_)) {
      cache_.erase(cache_order_.front());
      cache_order_.pop_front();
    }
  }
  return it->second;
}

std::pair<uint64_t, bool> VhdDevice::run_in_block(uint64_t block, uint64_t in_block,
                                                  uint64_t max) const {
  Bitmap bm = bitmap(block);
  const std::vector<uint8_t>& b = *bm;
  auto bit = [&](uint64_t s) { return ((b[s / 8] >> (7 - s % 8)) & 1) != 0; };
  const uint64_t end = in_block + max;
  uint64_t s = in_block / kSectorSize;
  const bool present = bit(s);
  const uint8_t full = present ? 0xFF : 0x00;
  uint64_t pos = (s + 1) * kSectorSize;
  while (pos < end) {
    uint64_t si = pos / kSectorSize;
    if (si % 8 == 0 && b[si / 8] == full) {
      pos += 8 * kSectorSize;
      continue;
    }
    if (bit(si) != present) break;
    pos += kSectorSize;
  }
  return {std::min(pos, end) - in_block, present};
}

void VhdDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  if (is_fixed()) {
    fixed_->read(offset, buf, len);
    return;
  }
  auto* out = static_cast<uint8_t*>(buf);
  while (len > 0) {
    const uint64_t block = offset / block_size_;
    const uint64_t in_block = offset % block_size_;
    const uint64_t guest_len = std::min(block_size_, size() - block * block_size_);
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, guest_len - in_block));
    if (bat_[block] == kBatUnused) {
      std::memset(out, 0, n);  // not stored in this layer
    } else {
      const uint64_t data = uint64_t{bat_[block]} * kSectorSize + bitmap_size_;
      for (size_t done = 0; done < n;) {
        auto [run, present] = run_in_block(block, in_block + done, n - done);
        if (present) {
          file_->read_at(data + in_block + done, out + done, static_cast<size_t>(run));
        } else {
          std::memset(out + done, 0, static_cast<size_t>(run));
        }
        done += static_cast<size_t>(run);
      }
    }
    out += n;
    offset += n;
    len -= n;
  }
}

Extent VhdDevice::do_block_status(uint64_t offset, uint64_t len) const {
  if (is_fixed()) return fixed_->block_status(offset, len);
  // Callers ask about the rest of the disk at every step (the converter does,
  // per chunk), so merging stops after a bounded number of blocks: data runs
  // cost a bitmap lookup per block, holes only a BAT entry.
  constexpr int kMaxDataBlocks = 32, kMaxOtherBlocks = 4096;
  Extent result{0, ExtentType::kData};
  for (int visited = 0; len > 0; ++visited) {
    if (visited >= (result.type == ExtentType::kData ? kMaxDataBlocks : kMaxOtherBlocks)) break;
    const uint64_t block = offset / block_size_;
    const uint64_t in_block = offset % block_size_;
    const uint64_t guest_len = std::min(block_size_, size() - block * block_size_);
    const uint64_t n = std::min(len, guest_len - in_block);
    Extent e;
    if (bat_[block] == kBatUnused) {
      e = Extent{n, ExtentType::kUnallocated};
    } else {
      auto [run, present] = run_in_block(block, in_block, n);
      e = Extent{run, present ? ExtentType::kData : ExtentType::kUnallocated};
    }
    if (result.length == 0) {
      result = e;
    } else if (e.type == result.type) {
      result.length += e.length;
    } else {
      break;
    }
    if (e.length < n) break;  // the type changes inside this block
    offset += e.length;
    len -= e.length;
  }
  return result;
}

ImageInfo VhdDevice::info() const {
  ImageInfo info;
  info.path = file_->path();
  info.format = "vhd";
  info.subformat = disk_type_name(footer_.disk_type);
  info.virtual_size = size();
  info.actual_size = file_->allocated_on_host();
  Json& d = info.details;
  d.set("disk_type", disk_type_name(footer_.disk_type));
  d.set("current_size", footer_.current_size);
  d.set("original_size", footer_.original_size);
  Json geo = Json::object();
  geo.set("cylinders", unsigned{footer_.cylinders});
  geo.set("heads", unsigned{footer_.heads});
  geo.set("sectors_per_track", unsigned{footer_.sectors_per_track});
  geo.set("chs_size",
          uint64_t{footer_.cylinders} * footer_.heads * footer_.sectors_per_track * kSectorSize);
  d.set("geometry", std::move(geo));
  d.set("creator_application", format_code(footer_.creator_app.data()));
  d.set("creator_version", std::to_string(footer_.creator_version >> 16) + "." +
                               std::to_string(footer_.creator_version & 0xFFFF));
  d.set("creator_host_os", format_code(footer_.creator_os));
  d.set("timestamp", format_timestamp(footer_.timestamp));
  d.set("unique_id", footer_.unique_id.to_string());
  d.set("features", hex(footer_.features, 8));
  d.set("saved_state", footer_.saved_state != 0);
  d.set("footer", footer_source_);
  if (!is_fixed()) {
    d.set("block_size", block_size_);
    d.set("bat_offset", header_.table_offset);
    d.set("bat_entries", unsigned{header_.max_table_entries});
    uint64_t used = 0;
    for (uint32_t e : bat_) used += e != kBatUnused;
    d.set("allocated_blocks", used);
  }
  if (footer_.disk_type == uint32_t(DiskType::kDifferencing)) {
    d.set("parent_name",
          utf16_to_utf8(header_.parent_name.data(), header_.parent_name.size(), true));
    d.set("parent_unique_id", header_.parent_unique_id.to_string());
    d.set("parent_timestamp", format_timestamp(header_.parent_timestamp));
    Json locs = Json::array();
    for (const ParentLocator& l : header_.locators) {
      if (l.code == kPlatNone) continue;
      Json j = Json::object();
      j.set("platform", format_code(l.code));
      j.set("data_offset", l.data_offset);
      j.set("data_length", unsigned{l.data_length});
      locs.push(std::move(j));
    }
    d.set("parent_locators", std::move(locs));
  }
  return info;
}

std::shared_ptr<const ParentSpec> VhdDevice::parent_spec() const {
  if (footer_.disk_type != uint32_t(DiskType::kDifferencing)) return nullptr;
  auto spec = std::make_shared<ParentSpec>();
  const Guid want = header_.parent_unique_id;
  spec->child = "differencing VHD (parent unique ID " + want.to_string() + ")";
  spec->offset = footer_.data_offset + kHeaderParentIdOff;
  spec->candidates = parent_candidates(*file_, header_);
  spec->check = [want](const BlockDevice& candidate) -> ParentCheck {
    const auto* v = dynamic_cast<const VhdDevice*>(&candidate);
    if (!v)
      return {ParentVerdict::kUnverifiable, "is " + candidate.info().format + ", not VHD", ""};
    if (v->footer().unique_id != want) {
      return {ParentVerdict::kMismatch,
              "has unique ID " + v->footer().unique_id.to_string() + ", not the expected " +
                  want.to_string(),
              ""};
    }
    return {};
  };
  return spec;
}

}  // namespace vdisk::vhd
