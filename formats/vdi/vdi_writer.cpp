#include "formats/vdi/vdi_writer.h"

#include <algorithm>
#include <cstring>

#include "formats/core/block_device.h"
#include "formats/core/child_writer.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/single_file_writer.h"
#include "formats/vdi/vdi_layout.h"
#include "formats/vdi/vdi_reader.h"

namespace vdisk::vdi {

namespace {

// Guest bytes gathered before one pwrite (dynamic images).
constexpr size_t kFlushBytes = 16u << 20;
// The most blocks a VDI this writer makes may have (see VdiWriter).
constexpr uint64_t kMaxBlocks = 0x1fffffff;

uint64_t align_up(uint64_t v, uint64_t a) {
  return div_round_up(v, a) * a;
}

bool want_static(const CreateRequest& req) {
  const Options& o = req.options;
  bool sub_static = o.get_string("subformat") == "static";
  if (o.is_set("static") && o.is_set("subformat") && o.get_bool("static") != sub_static) {
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "VDI options conflict: subformat=" + o.get_string("subformat") +
                    " but static=" + (o.get_bool("static") ? "on" : "off"));
  }
  return o.is_set("static") ? o.get_bool("static") : sub_static;
}

class VdiWriter final : public SingleFileWriter {
 public:
  // `parent`: a differencing image of it (VDICore.h: uImageType DIFF,
  // uuidLinkage = the parent's uuidCreate, uuidParentModification = its
  // uuidModification); the ChildFilter in front passes on only whole blocks
  // that differ, and an all-zero one is stored as a zero block, not left
  // free (free reads the parent's).
  VdiWriter(const CreateRequest& req, const Header* parent) {
    static_ = want_static(req);
    child_ = parent != nullptr;
    size_ = round_size(req, kSectorSize, "VDI holds whole 512-byte sectors");
    const uint64_t blocks = div_round_up(size_, kDefaultBlockSize);
    // The map and data offsets are u32 fields; block numbers must stay below
    // the zero/free markers. qemu-img refuses images of more than 0x1fffffff
    // blocks (512 TiB - 1 MiB): an image other tools cannot open is not one
    // to write, so that is the limit here too.
    const uint64_t data_offset = align_up(kDataAlign + blocks * 4, kDataAlign);
    if (blocks > kMaxBlocks || data_offset > UINT32_MAX) {
      throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                  "a " + human_size(size_) + " disk is too large for VDI (at most " +
                      human_size(kMaxBlocks * kDefaultBlockSize) + ")");
    }
    h_.file_info = kOracleText;
    h_.image_type = static_cast<uint32_t>(static_ ? VdiType::kFixed : VdiType::kNormal);
    // VirtualBox aligns both the block map and the data area to 1 MiB
    // (VDI_DATA_ALIGN): the map follows the 472-byte header at 1 MiB.
    h_.blocks_offset = kDataAlign;
    h_.data_offset = static_cast<uint32_t>(data_offset);
    h_.legacy_geometry = Geometry{0, 0, 0, kSectorSize};
    h_.lchs_geometry = Geometry{0, 0, 0, kSectorSize};
    h_.disk_size = size_;
    h_.blocks = static_cast<uint32_t>(blocks);
    h_.uuid_create = Guid::random(req.environment());
    h_.uuid_modify = Guid::random(req.environment());
    if (child_) {
      h_.image_type = static_cast<uint32_t>(VdiType::kDiff);
      h_.uuid_linkage = parent->uuid_create;
      h_.uuid_parent_modify = parent->uuid_modify;
    }
    if (static_) allocated_ = h_.blocks;
    open_output(req);
  }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    if (offset > size_ || len > size_ - offset) {
      throw Error(ErrorKind::kInvalidArgument, out_->path(), offset,
                  "write past the end of the disk");
    }
    if (static_) {
      // Guest offset o lives at data_offset + o: the converter's large,
      // ordered writes go straight through.
      out_->write_at(uint64_t{h_.data_offset} + offset, buf, len);
      return;
    }
    const auto* in = static_cast<const uint8_t*>(buf);
    while (len > 0) {
      uint64_t block = offset / kDefaultBlockSize;
      uint64_t in_block = offset % kDefaultBlockSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kDefaultBlockSize - in_block));
      if (n == kDefaultBlockSize && !(open_block_ && block == cur_block_)) {
        // A whole block in one piece goes straight from the caller's buffer:
        // copying every block through pending_ cost a fifth of a raw->vdi
        // conversion.
        write_whole_block(block, in);
        in += n;
        offset += n;
        len -= n;
        continue;
      }
      if (!open_block_ || block != cur_block_) begin_block(block);
      std::memcpy(pending_.data() + pending_.size() - kDefaultBlockSize + in_block, in, n);
      in += n;
      offset += n;
      len -= n;
    }
  }

 private:
  uint64_t finish_image() override {
    if (!static_) {
      close_block();
      flush();
    }
    std::vector<uint8_t> head(kPreHeaderSize + kHeaderSize1Plus + 40, 0);  // 512 bytes
    h_.blocks_allocated = allocated_;
    encode_header(h_, head);
    out_->write_at(0, head.data(), head.size());
    if (static_) {
      for (uint32_t i = 0; i < h_.blocks; ++i) set_map_entry(i, i);
    }
    set_map_entry(h_.blocks, 0);  // the free entries up to the end, flushed
    return uint64_t{h_.data_offset} + uint64_t{allocated_} * kDefaultBlockSize;
  }

  // Dynamic images: the block being assembled is the last kDefaultBlockSize
  // bytes of pending_, which holds consecutive data blocks not yet written.
  void begin_block(uint64_t block) {
    close_block();
    if (pending_.size() + kDefaultBlockSize > kFlushBytes) flush();
    pending_.resize(pending_.size() + kDefaultBlockSize, 0);
    cur_block_ = block;
    open_block_ = true;
  }

  // Allocates the block being assembled unless every byte of it is zero.
  void close_block() {
    if (!open_block_) return;
    open_block_ = false;
    const uint8_t* data = pending_.data() + pending_.size() - kDefaultBlockSize;
    if (is_zero(data, kDefaultBlockSize)) {
      pending_.resize(pending_.size() - kDefaultBlockSize);
      if (child_) set_map_entry(cur_block_, kBlockZero);
      return;
    }
    set_map_entry(cur_block_, allocated_++);
  }

  // Allocates and writes a block given whole, unless it is all zeros; the
  // blocks still pending are written first (they precede it in the file).
  void write_whole_block(uint64_t block, const uint8_t* data) {
    close_block();
    if (is_zero(data, kDefaultBlockSize)) {
      if (child_) set_map_entry(block, kBlockZero);
      return;
    }
    flush();
    set_map_entry(block, allocated_++);
    out_->write_at(uint64_t{h_.data_offset} + uint64_t{allocated_ - 1} * kDefaultBlockSize, data,
                   kDefaultBlockSize);
  }

  // The block map is written front to back as entries become final (the
  // writer sees blocks in increasing order), a window at a time: a map held
  // whole would be 4 bytes per block of the virtual size — 4 GiB for a
  // 1000 TiB disk. Blocks skipped since the last entry are free. `block` ==
  // h_.blocks flushes the rest of the map.
  void set_map_entry(uint64_t block, uint32_t value) {
    if (block < map_done_ + map_buf_.size() / 4) {
      throw Error(ErrorKind::kInvalidArgument, out_->path(), block * kDefaultBlockSize,
                  "VDI block " + std::to_string(block) + " written after a later block");
    }
    while (map_done_ + map_buf_.size() / 4 < block) {
      map_buf_.resize(map_buf_.size() + 4);
      store_le32(map_buf_.data() + map_buf_.size() - 4, kBlockFree);
      if (map_buf_.size() >= kMapWindowBytes) flush_map();
    }
    if (block < h_.blocks) {
      map_buf_.resize(map_buf_.size() + 4);
      store_le32(map_buf_.data() + map_buf_.size() - 4, value);
    }
    if (map_buf_.size() >= kMapWindowBytes || block >= h_.blocks) flush_map();
  }

  void flush_map() {
    if (map_buf_.empty()) return;
    out_->write_at(h_.blocks_offset + map_done_ * 4, map_buf_.data(), map_buf_.size());
    map_done_ += map_buf_.size() / 4;
    map_buf_.clear();
  }

  void flush() {
    if (pending_.empty()) return;
    uint64_t first = allocated_ - pending_.size() / kDefaultBlockSize;
    out_->write_at(uint64_t{h_.data_offset} + first * kDefaultBlockSize, pending_.data(),
                   pending_.size());
    pending_.clear();
  }

  uint64_t size_ = 0;
  bool static_ = false;
  bool child_ = false;
  Header h_;
  static constexpr size_t kMapWindowBytes = 4u << 20;
  std::vector<uint8_t> map_buf_;  // entries [map_done_, map_done_ + size / 4)
  uint64_t map_done_ = 0;         // entries already in the file
  uint32_t allocated_ = 0;
  std::vector<uint8_t> pending_;
  uint64_t cur_block_ = 0;
  bool open_block_ = false;
};

}  // namespace

const std::vector<OptionSpec>& create_options() {
  static const std::vector<OptionSpec> specs = {
      {.name = "subformat",
       .type = OptionType::kEnum,
       .default_value = "dynamic",
       .help = "dynamic: blocks allocated as written, all-zero blocks left out; static: every "
               "block preallocated",
       .choices = {"dynamic", "static"}},
      {.name = "static",
       .type = OptionType::kBool,
       .default_value = "off",
       .help = "qemu-img's spelling of subformat=static",
       .choices = {}},
  };
  static const std::vector<OptionSpec> all = [] {
    std::vector<OptionSpec> v = specs;
    for (OptionSpec& o : backing_options("a differencing image")) v.push_back(std::move(o));
    return v;
  }();
  return all;
}

std::unique_ptr<ImageWriter> create_vdi(const CreateRequest& req) {
  const std::string name = backing_name(req, "vdi");
  if (name.empty()) return std::make_unique<VdiWriter>(req, nullptr);
  if (want_static(req))
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "a VDI with a backing_file is a differencing image: not subformat=static");
  Backing backing = open_backing(req, name, req.options.get_string("backing_fmt"), "vdi", "VDI");
  const auto* parent = dynamic_cast<const VdiDevice*>(&backing.layer());
  if (!parent)
    throw Error(ErrorKind::kUnsupported, backing.path, std::nullopt, "not opened as a VDI");
  auto inner = std::make_unique<VdiWriter>(req, &parent->header());
  return std::make_unique<ChildFilter>(std::move(inner), backing.device, kDefaultBlockSize);
}

}  // namespace vdisk::vdi
