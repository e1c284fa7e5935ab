#include "formats/vhd/vhd_inplace.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "formats/core/endian.h"
#include "formats/core/unicode.h"
#include "formats/vhd/vhd_reader.h"

namespace vdisk::vhd {

namespace {

// Data starts on a 4 KiB boundary of the host file, as the writer lays
// blocks out; BAT entries are 32-bit sector numbers.
constexpr uint64_t kDataAlign = 4096;
constexpr uint64_t kMaxFile = uint64_t{0xFFFFFFFF} * kSectorSize;

std::string backslashes(std::string p) {
  std::replace(p.begin(), p.end(), '/', '\\');
  return p;
}

uint64_t round_sector(uint64_t v) {
  return (v + kSectorSize - 1) / kSectorSize * kSectorSize;
}

}  // namespace

ParentLink parent_link(const std::string& child_path, const BlockDevice& parent,
                       const std::string& name, const std::string& absolute_path) {
  const auto* v = dynamic_cast<const VhdDevice*>(&parent);
  if (!v)
    throw Error(ErrorKind::kUnsupported, child_path, std::nullopt,
                "the parent " + name + " is " + parent.info().format +
                    ": a differencing VHD names its parent by a VHD's unique ID");
  ParentLink link;
  link.unique_id = v->footer().unique_id;
  const std::optional<int64_t> mtime = v->file().modified_unix();
  link.timestamp =
      mtime ? static_cast<uint32_t>(std::clamp<int64_t>(*mtime - kVhdEpoch, 0, 0xFFFFFFFF))
            : v->footer().timestamp;
  const std::string unicode = utf16_to_bytes(utf8_to_utf16(backslashes(name)), ByteOrder::kBig);
  if (unicode.size() > kHeaderParentNameSize)
    throw Error(ErrorKind::kUnsupported, child_path, kHeaderParentNameOff,
                "parent name '" + name + "' takes " + std::to_string(unicode.size()) +
                    " bytes in UTF-16; the VHD header holds " +
                    std::to_string(kHeaderParentNameSize));
  std::memcpy(link.name.data(), unicode.data(), unicode.size());
  if (name[0] != '/') {
    std::string rel = name;
    while (rel.compare(0, 2, "./") == 0) rel = rel.substr(2);
    link.relative = utf16_to_bytes(utf8_to_utf16(".\\" + backslashes(rel)), ByteOrder::kLittle);
  }
  link.absolute = utf16_to_bytes(utf8_to_utf16(backslashes(absolute_path)), ByteOrder::kLittle);
  return link;
}

std::vector<uint8_t> store_parent_link(DynamicHeader& h, const ParentLink& link, uint64_t data_at) {
  h.parent_unique_id = link.unique_id;
  h.parent_timestamp = link.timestamp;
  h.parent_name = link.name;
  h.locators = {};
  std::vector<uint8_t> data;
  size_t slot = 0;
  auto add = [&](uint32_t code, const std::string& text) {
    if (text.empty()) return;
    ParentLocator& l = h.locators[slot++];
    l.code = code;
    l.data_length = static_cast<uint32_t>(text.size());
    // Spec "Parent Locator Entry": Platform Data Space in 512-byte sectors
    // (some writers put bytes there; vdisk check accepts either).
    l.data_space = static_cast<uint32_t>(round_sector(text.size()) / kSectorSize);
    l.data_offset = data_at + data.size();
    data.insert(data.end(), text.begin(), text.end());
    data.resize(static_cast<size_t>(round_sector(data.size())), 0);
  };
  add(kPlatW2ru, link.relative);
  add(kPlatW2ku, link.absolute);
  return data;
}

namespace {

void write_be32(UpdateFile& file, uint64_t offset, uint32_t value) {
  uint8_t e[4];
  store_be32(e, value);
  file.write_at(offset, e, sizeof e);
}

class VhdUpdater final : public ImageUpdater {
 public:
  VhdUpdater(UpdateFile& file, const VhdDevice& dev)
      : file_(file),
        footer_(dev.footer()),
        fixed_(footer_.disk_type == uint32_t(DiskType::kFixed)),
        footer_at_(file.size() - kFooterSize),
        end_(footer_at_) {
    if (!fixed_) {
      header_ = dev.header();
      bat_ = dev.bat();
      bitmap_size_ = bitmap_bytes(header_.block_size);
    }
  }

  uint64_t granularity() const override { return fixed_ ? kSectorSize : header_.block_size; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    const uint64_t unit = granularity();
    if (offset % unit || len % unit)
      throw Error(ErrorKind::kInvalidArgument, file_.path(), offset, "unaligned in-place write");
    const auto* p = static_cast<const uint8_t*>(buf);
    if (fixed_) {
      if (offset < footer_.current_size)
        file_.write_at(offset, p,
                       static_cast<size_t>(std::min<uint64_t>(len, footer_.current_size - offset)));
      return;
    }
    for (uint64_t done = 0; done < len; done += unit) {
      const uint64_t b = (offset + done) / unit;
      if (b >= bat_.size())
        throw Error(ErrorKind::kInvalidArgument, file_.path(), offset + done,
                    "write past the BAT's " + std::to_string(bat_.size()) + " blocks");
      if (bat_[b] == kBatUnused) {
        const uint64_t at =
            (end_ + bitmap_size_ + kDataAlign - 1) / kDataAlign * kDataAlign - bitmap_size_;
        if (at + bitmap_size_ + unit + kFooterSize > kMaxFile)
          throw Error(ErrorKind::kUnsupported, file_.path(), at,
                      "a new block would lie past 2 TiB, beyond the BAT's 32-bit sector "
                      "offsets");
        bat_[b] = static_cast<uint32_t>(at / kSectorSize);
        end_ = at + bitmap_size_ + unit;
      }
      file_.write_at(uint64_t{bat_[b]} * kSectorSize + bitmap_size_, p + done,
                     static_cast<size_t>(unit));
      changed_.insert(b);
    }
  }

  void flush() override {
    if (fixed_ || changed_.empty()) {
      file_.sync();
      return;
    }
    // The new blocks took the old footer's place: the footer goes after
    // them (a crash before this leaves the copy at offset 0, which readers
    // fall back to).
    if (end_ != footer_at_) {
      const auto foot = encode_footer(footer_);
      file_.write_at(end_, foot.data(), foot.size());
      file_.set_size(end_ + kFooterSize);
      footer_at_ = end_;
    }
    file_.sync();
    // Every sector of a written block is now this layer's (spec "Block
    // Allocation Table and Data Blocks": a set bit means the sector holds
    // data in this file); then the BAT entries that point at new blocks.
    const std::vector<uint8_t> ones(static_cast<size_t>(bitmap_size_), 0xFF);
    for (uint64_t b : changed_)
      file_.write_at(uint64_t{bat_[b]} * kSectorSize, ones.data(), ones.size());
    file_.sync();
    for (uint64_t b : changed_) write_be32(file_, header_.table_offset + b * 4, bat_[b]);
    changed_.clear();
    file_.sync();
  }

  void set_parent(const std::string& name, const std::string& format,
                  const BlockDevice* parent) override {
    if (fixed_)
      throw Error(ErrorKind::kUnsupported, file_.path(), footer_at_ + kFooterDiskTypeOff,
                  "a fixed VHD cannot have a parent (only differencing VHDs do)");
    if (!name.empty() && !format.empty() && format != "vhd" && format != "vpc")
      throw Error(ErrorKind::kUnsupported, file_.path(), std::nullopt,
                  "the parent " + name + " is " + format +
                      ": a differencing VHD names its parent by a VHD's unique ID");
    DynamicHeader h = header_;
    Footer f = footer_;
    std::vector<uint8_t> data;
    if (name.empty()) {
      h.parent_unique_id = Guid{};
      h.parent_timestamp = 0;
      h.parent_name = {};
      h.locators = {};
      f.disk_type = uint32_t(DiskType::kDynamic);
    } else {
      if (!parent)
        throw Error(ErrorKind::kInvalidArgument, file_.path(), std::nullopt,
                    "no parent image given for " + name);
      const ParentLink link =
          parent_link(file_.path(), *parent, name, Env::posix().real_path(parent->label()));
      // The locator data goes where the footer is; the footer after it.
      data = store_parent_link(h, link, footer_at_);
      f.disk_type = uint32_t(DiskType::kDifferencing);
    }
    const auto foot = encode_footer(f);
    const auto head = encode_header(h);
    file_.sync();
    if (!data.empty()) {
      file_.write_at(footer_at_, data.data(), data.size());
      footer_at_ += data.size();
      file_.write_at(footer_at_, foot.data(), foot.size());
      file_.set_size(footer_at_ + kFooterSize);
      file_.sync();
    }
    // The header and the two footer copies name the parent; a crash between
    // them leaves the footers' disk type deciding (dynamic: the data read
    // alone; differencing: the old parent named by a valid header).
    file_.write_at(footer_.data_offset, head.data(), head.size());
    file_.write_at(footer_at_, foot.data(), foot.size());
    file_.write_at(0, foot.data(), foot.size());
    file_.sync();
    header_ = h;
    footer_ = f;
    end_ = footer_at_;
  }

 private:
  UpdateFile& file_;
  Footer footer_;
  bool fixed_;
  DynamicHeader header_;
  std::vector<uint32_t> bat_;
  uint64_t bitmap_size_ = 0;
  uint64_t footer_at_;
  uint64_t end_;  // where the next new block may start
  std::set<uint64_t> changed_;
};

}  // namespace

std::unique_ptr<ImageUpdater> update_vhd(UpdateFile& file, const BlockDevice& layer) {
  const auto* dev = dynamic_cast<const VhdDevice*>(&layer);
  if (!dev) throw Error(ErrorKind::kInvalidArgument, file.path(), std::nullopt, "not a VHD");
  // The footer in use must be the file's last whole sector: new blocks and
  // locator data are placed where it is and it moves after them.
  const uint64_t fsize = file.size();
  uint8_t raw[kFooterSize] = {};
  if (fsize >= kFooterSize) file.read_at(fsize - kFooterSize, raw, kFooterSize);
  if (fsize % kSectorSize || std::memcmp(raw, kFooterCookie, 8) != 0 ||
      load_be32(raw + kFooterChecksumOff) != vhd_checksum(raw, kFooterSize, kFooterChecksumOff))
    throw Error(ErrorKind::kUnsupported, file.path(), fsize - std::min<uint64_t>(fsize, 512),
                "cannot change this VHD in place: its footer is not the last whole sector "
                "(damaged, or a 511-byte footer); convert it first");
  return std::make_unique<VhdUpdater>(file, *dev);
}

}  // namespace vdisk::vhd
