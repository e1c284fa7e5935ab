#include "formats/vdi/vdi_reader.h"

#include <algorithm>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/parent.h"

namespace vdisk::vdi {

namespace {

const char* type_name(uint32_t t) {
  switch (static_cast<VdiType>(t)) {
    case VdiType::kNormal:
      return "dynamic";
    case VdiType::kFixed:
      return "static";
    case VdiType::kUndo:
      return "undo";
    case VdiType::kDiff:
      return "differencing";
  }
  return "unknown";
}

Json geometry_json(const Geometry& g) {
  Json j = Json::object();
  j.set("cylinders", g.cylinders);
  j.set("heads", g.heads);
  j.set("sectors", g.sectors);
  j.set("sector_size", g.sector_size);
  return j;
}

}  // namespace

// ---------------------------------------------------------------------------

VdiDevice::VdiDevice(std::shared_ptr<const File> file, Header h, std::vector<uint32_t> map)
    : file_(std::move(file)),
      h_(std::move(h)),
      map_(std::move(map)),
      stride_(uint64_t{h_.block_size} + h_.block_extra) {
  for (uint32_t e : map_) {
    if (block_kind(e) == BlockKind::kData)
      ++data_blocks_;
    else if (block_kind(e) == BlockKind::kZero)
      ++zero_blocks_;
  }
}

uint64_t VdiDevice::data_pos(uint64_t block) const {
  // Validated at open: cannot overflow and lies inside the file.
  return uint64_t{h_.data_offset} + uint64_t{map_[block]} * stride_ + h_.block_extra;
}

void VdiDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  const uint64_t bs = h_.block_size;
  while (len > 0) {
    uint64_t block = offset / bs;
    uint64_t in_block = offset % bs;
    uint32_t e = map_[block];
    const bool data = block_kind(e) == BlockKind::kData;
    // Extend the piece over following blocks of the same kind; allocated
    // blocks only while their data is contiguous in the file, so one pread
    // serves them all.
    uint64_t n = std::min<uint64_t>(len, bs - in_block);
    uint64_t next = block + 1;
    while (n < len) {
      uint32_t f = map_[next];
      bool same =
          data ? (block_kind(f) == BlockKind::kData && data_pos(next) == data_pos(next - 1) + bs)
               : f == e;
      if (!same) break;
      n = std::min<uint64_t>(len, n + bs);
      ++next;
    }
    size_t piece = static_cast<size_t>(n);
    if (data) {
      file_->read_at(data_pos(block) + in_block, out, piece);
    } else {
      std::memset(out, 0, piece);  // zero block, or free: not stored in this layer
    }
    out += piece;
    offset += n;
    len -= piece;
  }
}

Extent VdiDevice::do_block_status(uint64_t offset, uint64_t len) const {
  const uint64_t bs = h_.block_size;
  uint64_t block = offset / bs;
  const BlockKind kind = block_kind(map_[block]);
  uint64_t n = std::min<uint64_t>(len, bs - offset % bs);
  for (uint64_t next = block + 1; n < len && block_kind(map_[next]) == kind; ++next) {
    n = std::min<uint64_t>(len, n + bs);
  }
  switch (kind) {
    case BlockKind::kData:
      return Extent{n, ExtentType::kData};
    case BlockKind::kZero:
      return Extent{n, ExtentType::kZero};
    case BlockKind::kFree:
      break;
  }
  return Extent{n, ExtentType::kUnallocated};  // free: the parent's, if any
}

ImageInfo VdiDevice::info() const {
  ImageInfo info;
  info.path = file_->path();
  info.format = "vdi";
  info.subformat = type_name(h_.image_type);
  info.virtual_size = h_.disk_size;
  info.actual_size = file_->allocated_on_host();
  Json& d = info.details;
  d.set("version", std::to_string(h_.version >> 16) + "." + std::to_string(h_.version & 0xffff));
  d.set("image_type",
        std::string(type_name(h_.image_type)) + " (" + std::to_string(h_.image_type) + ")");
  d.set("uuid", h_.uuid_create.to_string());
  d.set("modification_uuid", h_.uuid_modify.to_string());
  d.set("parent_uuid", h_.uuid_linkage.to_string());
  d.set("parent_modification_uuid", h_.uuid_parent_modify.to_string());
  if (!h_.comment.empty()) d.set("description", h_.comment);
  // The text ends in "\n" by convention; shown without it.
  std::string text = h_.file_info;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  d.set("pre_header", text);
  d.set("header_size", h_.header_size);
  d.set("flags", h_.flags);
  d.set("block_size", h_.block_size);
  d.set("block_extra", h_.block_extra);
  d.set("blocks_total", h_.blocks);
  d.set("blocks_allocated", data_blocks_);
  if (h_.blocks_allocated != data_blocks_) d.set("blocks_allocated_in_header", h_.blocks_allocated);
  d.set("blocks_zero", zero_blocks_);
  d.set("block_map_offset", h_.blocks_offset);
  d.set("data_offset", h_.data_offset);
  d.set("legacy_geometry", geometry_json(h_.legacy_geometry));
  if (h_.has_lchs()) d.set("lchs_geometry", geometry_json(h_.lchs_geometry));
  return info;
}

std::shared_ptr<const ParentSpec> VdiDevice::parent_spec() const {
  if (!h_.is_child()) return nullptr;
  auto spec = std::make_shared<ParentSpec>();
  const Guid want = h_.uuid_linkage, want_modify = h_.uuid_parent_modify;
  spec->child = "differencing VDI (parent UUID " + want.to_string() + ")";
  spec->offset = kOffUuidLinkage;
  // VirtualBox links a child to its parent by UUID only (the parent's path
  // lives in the VM's .vbox file): examine the .vdi files beside the child.
  spec->search_extensions = {"vdi"};
  spec->format = "vdi";
  spec->check = [want, want_modify](const BlockDevice& candidate) -> ParentCheck {
    const auto* v = dynamic_cast<const VdiDevice*>(&candidate);
    if (!v)
      return {ParentVerdict::kUnverifiable, "is " + candidate.info().format + ", not VDI", ""};
    const Header& ph = v->header();
    if (ph.uuid_create != want) {
      return {
          ParentVerdict::kMismatch,
          "has UUID " + ph.uuid_create.to_string() + ", not the parent UUID " + want.to_string(),
          ""};
    }
    ParentCheck ok;
    if (!want_modify.is_nil() && ph.uuid_modify != want_modify) {
      ok.warning = "was modified after this differencing image was made (modification UUID " +
                   ph.uuid_modify.to_string() + ", expected " + want_modify.to_string() + ")";
    }
    return ok;
  };
  return spec;
}

// ---------------------------------------------------------------------------

namespace {

// Validates every header field against the file before anything is allocated.
void validate(const std::string& path, const Header& h, uint64_t file_size) {
  if (h.image_type < 1 || h.image_type > 4) {
    throw_corrupt(path, kOffImageType,
                  "VDI image type " + std::to_string(h.image_type) +
                      " is none of 1 (normal), 2 (fixed), 3 (undo), 4 (diff)");
  }
  if (h.image_type == static_cast<uint32_t>(VdiType::kUndo)) {
    throw_unsupported(path, "VDI undo images (type 3) are not supported");
  }
  if (h.block_size < kSectorSize || (h.block_size & (h.block_size - 1)) != 0) {
    throw_corrupt(path, kOffBlockSize,
                  "VDI block size " + std::to_string(h.block_size) +
                      " is not a power of two of at least 512");
  }
  uint64_t capacity =
      checked_mul(h.blocks, h.block_size, path, kOffBlocks, "VDI block count x block size");
  if (h.disk_size > capacity) {
    throw_corrupt(path, kOffDiskSize,
                  "VDI disk size " + std::to_string(h.disk_size) + " exceeds the " +
                      std::to_string(h.blocks) + " blocks of " + std::to_string(h.block_size) +
                      " bytes the block map covers (" + std::to_string(capacity) + ")");
  }
  if (uint64_t{h.blocks_offset} < kPreHeaderSize + uint64_t{h.header_size}) {
    throw_corrupt(path, kOffBlocksOffset,
                  "VDI block map offset " + std::to_string(h.blocks_offset) +
                      " overlaps the header, which ends at " +
                      std::to_string(kPreHeaderSize + uint64_t{h.header_size}));
  }
  uint64_t map_bytes = uint64_t{h.blocks} * 4;
  uint64_t map_end =
      checked_add(h.blocks_offset, map_bytes, path, kOffBlocksOffset, "VDI block map end");
  if (map_end > file_size) {
    throw_corrupt(path, kOffBlocks,
                  "VDI block map of " + std::to_string(h.blocks) + " entries at offset " +
                      std::to_string(h.blocks_offset) + " ends at " + std::to_string(map_end) +
                      ", past the end of the " + std::to_string(file_size) + "-byte file");
  }
  if (h.data_offset < map_end && h.blocks != 0) {
    throw_corrupt(path, kOffDataOffset,
                  "VDI data offset " + std::to_string(h.data_offset) +
                      " overlaps the block map, which ends at " + std::to_string(map_end));
  }
  if (h.is_child() && h.uuid_linkage.is_nil()) {
    throw_corrupt(path, kOffUuidLinkage, "differencing VDI has a null parent UUID");
  }
  if (h.is_child() && h.uuid_linkage == h.uuid_create) {
    throw_corrupt(
        path, kOffUuidLinkage,
        "differencing VDI names itself as parent (UUID " + h.uuid_create.to_string() + ")");
  }
}

std::vector<uint32_t> read_block_map(const File& file, const Header& h) {
  const std::string& path = file.path();
  std::vector<uint8_t> raw(size_t{h.blocks} * 4);
  if (!raw.empty()) file.read_at(h.blocks_offset, raw.data(), raw.size());
  std::vector<uint32_t> map(h.blocks);
  std::vector<bool> used(h.blocks, false);
  const uint64_t stride = uint64_t{h.block_size} + h.block_extra;
  for (uint32_t i = 0; i < h.blocks; ++i) {
    uint32_t e = load_le32(raw.data() + size_t{i} * 4);
    map[i] = e;
    if (block_kind(e) != BlockKind::kData) continue;
    uint64_t at = uint64_t{h.blocks_offset} + uint64_t{i} * 4;
    if (e >= h.blocks) {
      throw_corrupt(path, at,
                    "VDI block map entry " + std::to_string(i) + " points to data block " +
                        std::to_string(e) + ", beyond the image's " + std::to_string(h.blocks) +
                        " blocks");
    }
    if (used[e]) {
      throw_corrupt(path, at,
                    "VDI block map entry " + std::to_string(i) + " reuses data block " +
                        std::to_string(e) + " of an earlier entry");
    }
    used[e] = true;
    // Only the part of the last block inside the disk has to be stored.
    uint64_t guest_start = uint64_t{i} * h.block_size;
    uint64_t needed =
        h.block_extra +
        std::min<uint64_t>(h.block_size, h.disk_size - std::min(h.disk_size, guest_start));
    uint64_t start =
        checked_add(h.data_offset, checked_mul(e, stride, path, at, "VDI data block position"),
                    path, at, "VDI data block position");
    uint64_t end = checked_add(start, needed, path, at, "VDI data block end");
    if (end > file.size()) {
      throw_corrupt(path, at,
                    "VDI block " + std::to_string(i) + " is stored at " + std::to_string(start) +
                        ".." + std::to_string(end) + ", past the end of the " +
                        std::to_string(file.size()) + "-byte file");
    }
  }
  return map;
}

}  // namespace

BlockDevicePtr open_vdi(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string& path = file->path();
  std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(file->size(), kHeaderReadSize)));
  head.resize(file->read_some(0, head.data(), head.size()));
  Header h = decode_header(path, head);
  validate(path, h, file->size());
  std::vector<uint32_t> map = read_block_map(*file, h);

  return std::make_shared<VdiDevice>(std::move(file), std::move(h), std::move(map));
}

}  // namespace vdisk::vdi
