#include "formats/vmdk/vmdk_inplace.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "formats/core/endian.h"
#include "formats/vmdk/vmdk_descriptor.h"
#include "formats/vmdk/vmdk_layout.h"
#include "formats/vmdk/vmdk_reader.h"

namespace vdisk::vmdk {

namespace {

// Sector numbers in directories and tables are 32-bit (VDF).
constexpr uint64_t kMaxSector = 0xffffffffull;

class VmdkUpdater final : public ImageUpdater {
 public:
  VmdkUpdater(UpdateFile& file, const SparseHeader& h)
      : file_(file),
        h_(h),
        grain_bytes_(h.grain_size * kSector),
        gt_bytes_(uint64_t{h.num_gtes_per_gt} * 4),
        next_sector_((file.size() + kSector - 1) / kSector) {
    const uint64_t grains = (h.capacity + h.grain_size - 1) / h.grain_size;
    const uint64_t ntables = (grains + h.num_gtes_per_gt - 1) / h.num_gtes_per_gt;
    gd_ = read_directory(h.gd_offset, ntables, 56);
    if (h.flags & kFlagRedundantGd) rgd_ = read_directory(h.rgd_offset, ntables, 48);
  }

  uint64_t granularity() const override { return grain_bytes_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    if (offset % grain_bytes_ || len % grain_bytes_)
      throw Error(ErrorKind::kInvalidArgument, file_.path(), offset, "unaligned in-place write");
    const auto* p = static_cast<const uint8_t*>(buf);
    for (uint64_t done = 0; done < len; done += grain_bytes_) {
      const uint64_t g = (offset + done) / grain_bytes_;
      if (g * h_.grain_size >= h_.capacity)
        throw Error(ErrorKind::kInvalidArgument, file_.path(), offset + done,
                    "write past the extent's capacity");
      const uint64_t t = g / h_.num_gtes_per_gt;
      Table& table = table_of(t);
      uint32_t& e = table.entries[g % h_.num_gtes_per_gt];
      if (e == kGteUnallocated || e == kGteZeroed) {
        e = static_cast<uint32_t>(take(h_.grain_size, offset + done));
        table.dirty = true;
      }
      file_.write_at(uint64_t{e} * kSector, p + done, static_cast<size_t>(grain_bytes_));
    }
  }

  void flush() override {
    file_.sync();
    std::vector<uint8_t> raw(static_cast<size_t>(gt_bytes_));
    bool any = false;
    for (auto& [t, table] : tables_) {
      if (!table.dirty) continue;
      for (size_t i = 0; i < table.entries.size(); ++i) store_le32(&raw[4 * i], table.entries[i]);
      file_.write_at(uint64_t{gd_[t]} * kSector, raw.data(), raw.size());
      if (!rgd_.empty()) file_.write_at(uint64_t{rgd_[t]} * kSector, raw.data(), raw.size());
      table.dirty = false;
      any = true;
    }
    if (!any && new_tables_.empty()) return;
    file_.sync();
    for (uint64_t t : new_tables_) {
      write_le32(h_.gd_offset * kSector + t * 4, gd_[t]);
      if (!rgd_.empty()) write_le32(h_.rgd_offset * kSector + t * 4, rgd_[t]);
    }
    new_tables_.clear();
    file_.sync();
  }

  void set_parent(const std::string& name, const std::string& format,
                  const BlockDevice* parent) override {
    const uint64_t doff = h_.descriptor_offset * kSector;
    const uint64_t dlen = h_.descriptor_size * kSector;
    std::vector<char> text(static_cast<size_t>(dlen));
    file_.read_at(doff, text.data(), text.size());
    Descriptor d = parse_descriptor(std::string(text.data(), text.size()), file_.path(), doff);
    if (name.empty()) {
      d.parent_cid = kNoParentCid;
      d.parent_hint.clear();
    } else {
      const auto* v = dynamic_cast<const VmdkDevice*>(parent);
      if (!v)
        throw Error(ErrorKind::kUnsupported, file_.path(), doff,
                    "the parent " + name + " is " + (parent ? parent->info().format : format) +
                        ": a VMDK snapshot names its parent by a VMDK's CID");
      for (char c : name)
        if (c == '"' || static_cast<unsigned char>(c) < 0x20)
          throw Error(ErrorKind::kUnsupported, file_.path(), doff,
                      "parent name '" + name + "' cannot be a parentFileNameHint");
      d.parent_cid = v->cid();
      d.parent_hint = name;
    }
    const std::string out = render_descriptor(d);
    if (out.size() > dlen)
      throw Error(ErrorKind::kUnsupported, file_.path(), doff,
                  "the descriptor naming the new parent takes " + std::to_string(out.size()) +
                      " bytes; the file reserves " + std::to_string(dlen));
    std::vector<uint8_t> sectors(static_cast<size_t>(dlen), 0);
    std::memcpy(sectors.data(), out.data(), out.size());
    file_.sync();
    file_.write_at(doff, sectors.data(), sectors.size());
    file_.sync();
  }

 private:
  struct Table {
    std::vector<uint32_t> entries;
    bool dirty = false;
  };

  std::vector<uint32_t> read_directory(uint64_t sector, uint64_t ntables, uint64_t field) {
    const uint64_t pos = sector * kSector;
    if (sector == 0 || pos > file_.size() || ntables * 4 > file_.size() - pos)
      throw Error(ErrorKind::kCorrupt, file_.path(), field,
                  "grain directory at sector " + std::to_string(sector) + " lies outside the file");
    std::vector<uint8_t> raw(static_cast<size_t>(ntables * 4));
    file_.read_at(pos, raw.data(), raw.size());
    std::vector<uint32_t> gd(static_cast<size_t>(ntables));
    for (size_t i = 0; i < gd.size(); ++i) gd[i] = load_le32(&raw[4 * i]);
    return gd;
  }

  // `sectors` fresh sectors at the end of the file; returns the first.
  uint64_t take(uint64_t sectors, uint64_t guest_offset) {
    const uint64_t first = next_sector_;
    if (first + sectors > kMaxSector)
      throw Error(ErrorKind::kUnsupported, file_.path(), guest_offset,
                  "the sparse extent would pass the 2 TiB its 32-bit sector numbers address");
    next_sector_ += sectors;
    return first;
  }

  Table& table_of(uint64_t t) {
    auto it = tables_.find(t);
    if (it != tables_.end()) return it->second;
    Table table;
    table.entries.assign(h_.num_gtes_per_gt, 0);
    const bool redundant = !rgd_.empty();
    if (gd_[t] == 0 || (redundant && rgd_[t] == 0)) {
      // No table yet: both copies taken at the end (zeros: a hole until
      // flush() writes them), the directories updated last.
      const uint64_t gt_sectors = (gt_bytes_ + kSector - 1) / kSector;
      gd_[t] = static_cast<uint32_t>(take(gt_sectors, 0));
      if (redundant) rgd_[t] = static_cast<uint32_t>(take(gt_sectors, 0));
      new_tables_.push_back(t);
      table.dirty = true;
    } else {
      const uint64_t pos = uint64_t{gd_[t]} * kSector;
      if (pos + gt_bytes_ > file_.size())
        throw Error(ErrorKind::kCorrupt, file_.path(), h_.gd_offset * kSector + t * 4,
                    "grain table " + std::to_string(t) + " lies outside the file");
      std::vector<uint8_t> raw(static_cast<size_t>(gt_bytes_));
      file_.read_at(pos, raw.data(), raw.size());
      for (size_t i = 0; i < table.entries.size(); ++i) table.entries[i] = load_le32(&raw[4 * i]);
    }
    return tables_.emplace(t, std::move(table)).first->second;
  }

  void write_le32(uint64_t at, uint32_t v) {
    uint8_t b[4];
    store_le32(b, v);
    file_.write_at(at, b, sizeof b);
  }

  UpdateFile& file_;
  SparseHeader h_;
  uint64_t grain_bytes_;
  uint64_t gt_bytes_;
  uint64_t next_sector_;
  std::vector<uint32_t> gd_, rgd_;
  std::map<uint64_t, Table> tables_;
  std::vector<uint64_t> new_tables_;
};

}  // namespace

std::unique_ptr<ImageUpdater> update_vmdk(UpdateFile& file, const BlockDevice& layer) {
  const auto* dev = dynamic_cast<const VmdkDevice*>(&layer);
  if (!dev) throw Error(ErrorKind::kInvalidArgument, file.path(), std::nullopt, "not a VMDK");
  auto refuse = [&](std::optional<uint64_t> at, const std::string& why) {
    throw Error(
        ErrorKind::kUnsupported, file.path(), at,
        "cannot change this VMDK in place: " + why + " (done for monolithicSparse files only)");
  };
  uint8_t head[kSector] = {};
  if (file.size() >= kSector) file.read_at(0, head, kSector);
  const std::optional<SparseHeader> h = decode_sparse_header(head);
  if (!h) refuse(0, "it is a descriptor file (createType " + dev->descriptor().create_type + ")");
  if (h->flags & (kFlagCompressed | kFlagMarkers) || h->gd_offset == kGdAtEnd)
    refuse(8, "it is streamOptimized (compressed grains)");
  if (h->descriptor_offset == 0 || h->descriptor_size == 0)
    refuse(28, "it is a bare sparse extent without an embedded descriptor");
  if (h->grain_size == 0 || h->num_gtes_per_gt == 0)
    refuse(20, "its grain size or table size is zero");
  return std::make_unique<VmdkUpdater>(file, *h);
}

}  // namespace vdisk::vmdk
