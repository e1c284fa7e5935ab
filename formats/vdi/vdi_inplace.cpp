// vdi rebase and commit in place (VirtualBox's VDICore.h fields,
// vdi_layout.h): see update_vdi in vdi_reader.h.
#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "formats/core/endian.h"
#include "formats/vdi/vdi_reader.h"

namespace vdisk::vdi {

namespace {

class VdiUpdater final : public ImageUpdater {
 public:
  VdiUpdater(UpdateFile& file, const VdiDevice& dev)
      : file_(file),
        h_(dev.header()),
        map_(dev.map()),
        stride_(uint64_t{h_.block_size} + h_.block_extra) {
    // New blocks go after every data block in use (not only after
    // cBlocksAllocated of them: a map may number blocks sparsely).
    next_ = h_.blocks_allocated;
    for (uint32_t e : map_)
      if (block_kind(e) == BlockKind::kData) next_ = std::max<uint64_t>(next_, uint64_t{e} + 1);
    allocated_ = h_.blocks_allocated;
  }

  uint64_t granularity() const override { return h_.block_size; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    const uint64_t unit = h_.block_size;
    if (offset % unit || len % unit)
      throw Error(ErrorKind::kInvalidArgument, file_.path(), offset, "unaligned in-place write");
    const auto* p = static_cast<const uint8_t*>(buf);
    for (uint64_t done = 0; done < len; done += unit) {
      const uint64_t b = (offset + done) / unit;
      if (b >= map_.size())
        throw Error(ErrorKind::kInvalidArgument, file_.path(), offset + done,
                    "write past the block map's " + std::to_string(map_.size()) + " blocks");
      if (block_kind(map_[b]) != BlockKind::kData) {
        const uint64_t end = uint64_t{h_.data_offset} + (next_ + 1) * stride_;
        if (next_ >= kBlockZero || end > (uint64_t{1} << 62))
          throw Error(ErrorKind::kUnsupported, file_.path(), kOffBlocksAllocated,
                      "no block number left for a new block");
        map_[b] = static_cast<uint32_t>(next_++);
        ++allocated_;
        if (h_.block_extra) {
          const std::vector<uint8_t> extra(h_.block_extra, 0);
          file_.write_at(data_pos(b) - h_.block_extra, extra.data(), extra.size());
        }
      }
      file_.write_at(data_pos(b), p + done, static_cast<size_t>(unit));
      changed_.insert(b);
    }
  }

  void flush() override {
    file_.sync();
    for (uint64_t b : changed_) {
      uint8_t e[4];
      store_le32(e, map_[b]);
      file_.write_at(uint64_t{h_.blocks_offset} + b * 4, e, sizeof e);
    }
    if (!changed_.empty()) {
      uint8_t n[4];
      store_le32(n, static_cast<uint32_t>(allocated_));
      file_.write_at(kOffBlocksAllocated, n, sizeof n);
    }
    changed_.clear();
    file_.sync();
  }

  void set_parent(const std::string& name, const std::string& format,
                  const BlockDevice* parent) override {
    Header h = h_;
    if (name.empty()) {
      if (h.is_child()) h.image_type = static_cast<uint32_t>(VdiType::kNormal);
      h.uuid_linkage = Guid{};
      h.uuid_parent_modify = Guid{};
    } else {
      const auto* v = dynamic_cast<const VdiDevice*>(parent);
      if (!v)
        throw Error(ErrorKind::kUnsupported, file_.path(), kOffUuidLinkage,
                    "the parent " + name + " is " + (parent ? parent->info().format : format) +
                        ": a differencing VDI names its parent by a VDI's UUID");
      if (h.image_type == static_cast<uint32_t>(VdiType::kFixed))
        throw Error(ErrorKind::kUnsupported, file_.path(), kOffImageType,
                    "a fixed VDI cannot be a differencing image");
      if (v->header().uuid_create == h.uuid_create)
        throw Error(
            ErrorKind::kInvalidArgument, file_.path(), kOffUuidLinkage,
            "the parent " + name + " has this image's own UUID " + h.uuid_create.to_string());
      if (!h.is_child()) h.image_type = static_cast<uint32_t>(VdiType::kDiff);
      h.uuid_linkage = v->header().uuid_create;
      h.uuid_parent_modify = v->header().uuid_modify;
    }
    // uImageType and the two parent UUIDs, each written in place after the
    // data they expose was synced.
    uint8_t type[4];
    store_le32(type, h.image_type);
    uint8_t uuids[2 * kUuidSize];
    h.uuid_linkage.encode(uuids, kUuidByteOrder);
    h.uuid_parent_modify.encode(uuids + kUuidSize, kUuidByteOrder);
    file_.sync();
    file_.write_at(kOffUuidLinkage, uuids, sizeof uuids);
    file_.write_at(kOffImageType, type, sizeof type);
    file_.sync();
    h_ = h;
  }

 private:
  uint64_t data_pos(uint64_t b) const {
    return uint64_t{h_.data_offset} + uint64_t{map_[b]} * stride_ + h_.block_extra;
  }

  UpdateFile& file_;
  Header h_;
  std::vector<uint32_t> map_;
  uint64_t stride_;
  uint64_t next_ = 0;
  uint64_t allocated_ = 0;
  std::set<uint64_t> changed_;
};

}  // namespace

std::unique_ptr<ImageUpdater> update_vdi(UpdateFile& file, const BlockDevice& layer) {
  const auto* dev = dynamic_cast<const VdiDevice*>(&layer);
  if (!dev) throw Error(ErrorKind::kInvalidArgument, file.path(), std::nullopt, "not a VDI");
  return std::make_unique<VdiUpdater>(file, *dev);
}

}  // namespace vdisk::vdi
