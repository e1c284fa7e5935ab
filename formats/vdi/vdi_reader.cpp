#include "formats/vdi/vdi_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/parent.h"

namespace vdisk::vdi {

namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// A NUL-padded text field, cut at the first NUL.
std::string text_field(const uint8_t* p, size_t len) {
  const auto* end = std::find(p, p + len, uint8_t{0});
  return std::string(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(end));
}

Guid load_uuid(const uint8_t* p) {
  return Guid::decode(p, kUuidByteOrder);
}

Geometry load_geometry(const uint8_t* p) {
  return Geometry{load_le32(p), load_le32(p + 4), load_le32(p + 8), load_le32(p + 12)};
}

void store_geometry(uint8_t* p, const Geometry& g) {
  store_le32(p, g.cylinders);
  store_le32(p + 4, g.heads);
  store_le32(p + 8, g.sectors);
  store_le32(p + 12, g.sector_size);
}

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

bool has_vdi_signature(std::span<const uint8_t> head) {
  return head.size() >= kPreHeaderSize && load_le32(head.data() + kOffSignature) == kSignature;
}

Header decode_header(const std::string& path, std::span<const uint8_t> b) {
  if (b.size() < kPreHeaderSize) {
    throw Error(ErrorKind::kNotThisFormat, path, std::nullopt,
                "file of " + std::to_string(b.size()) +
                    " bytes is too small for a VDI pre-header (" + std::to_string(kPreHeaderSize) +
                    " bytes)");
  }
  uint32_t sig = load_le32(b.data() + kOffSignature);
  if (sig != kSignature) {
    throw Error(ErrorKind::kNotThisFormat, path, kOffSignature,
                "VDI signature is " + hex32(sig) + ", not " + hex32(kSignature));
  }
  Header h;
  h.file_info = text_field(b.data() + kOffFileInfo, kFileInfoSize);
  h.version = load_le32(b.data() + kOffVersion);
  if (h.version != kVersion1_1) {
    throw Error(ErrorKind::kUnsupported, path, kOffVersion,
                "VDI header version " + std::to_string(h.version >> 16) + "." +
                    std::to_string(h.version & 0xffff) + " is not supported (only 1.1)");
  }
  if (b.size() < kPreHeaderSize + kHeaderSize1) {
    throw Error(ErrorKind::kCorrupt, path, b.size(),
                "VDI header truncated: the file ends at byte " + std::to_string(b.size()) +
                    ", the 1.1 header needs " + std::to_string(kPreHeaderSize + kHeaderSize1));
  }
  const uint8_t* p = b.data();
  h.header_size = load_le32(p + kOffHeaderSize);
  if (h.header_size < kHeaderSize1) {
    throw_corrupt(path, kOffHeaderSize,
                  "VDI header size " + std::to_string(h.header_size) + " is smaller than the " +
                      std::to_string(kHeaderSize1) + " bytes of a version 1.1 header");
  }
  h.image_type = load_le32(p + kOffImageType);
  h.flags = load_le32(p + kOffImageFlags);
  h.comment = text_field(p + kOffComment, kCommentSize);
  h.blocks_offset = load_le32(p + kOffBlocksOffset);
  h.data_offset = load_le32(p + kOffDataOffset);
  h.legacy_geometry = load_geometry(p + kOffLegacyCylinders);
  h.disk_size = load_le64(p + kOffDiskSize);
  h.block_size = load_le32(p + kOffBlockSize);
  h.block_extra = load_le32(p + kOffBlockExtra);
  h.blocks = load_le32(p + kOffBlocks);
  h.blocks_allocated = load_le32(p + kOffBlocksAllocated);
  h.uuid_create = load_uuid(p + kOffUuidCreate);
  h.uuid_modify = load_uuid(p + kOffUuidModify);
  h.uuid_linkage = load_uuid(p + kOffUuidLinkage);
  h.uuid_parent_modify = load_uuid(p + kOffUuidParentModify);
  if (h.has_lchs() && b.size() >= kHeaderReadSize) {
    h.lchs_geometry = load_geometry(p + kOffLchsCylinders);
  } else {
    h.lchs_geometry = Geometry{0, 0, 0, 0};
  }
  return h;
}

void encode_header(const Header& h, std::span<uint8_t> out) {
  uint8_t* p = out.data();
  std::memcpy(p + kOffFileInfo, h.file_info.data(),
              std::min<size_t>(h.file_info.size(), kFileInfoSize - 1));
  store_le32(p + kOffSignature, kSignature);
  store_le32(p + kOffVersion, h.version);
  store_le32(p + kOffHeaderSize, h.header_size);
  store_le32(p + kOffImageType, h.image_type);
  store_le32(p + kOffImageFlags, h.flags);
  std::memcpy(p + kOffComment, h.comment.data(),
              std::min<size_t>(h.comment.size(), kCommentSize - 1));
  store_le32(p + kOffBlocksOffset, h.blocks_offset);
  store_le32(p + kOffDataOffset, h.data_offset);
  store_geometry(p + kOffLegacyCylinders, h.legacy_geometry);
  store_le32(p + kOffDummy, 0);
  store_le64(p + kOffDiskSize, h.disk_size);
  store_le32(p + kOffBlockSize, h.block_size);
  store_le32(p + kOffBlockExtra, h.block_extra);
  store_le32(p + kOffBlocks, h.blocks);
  store_le32(p + kOffBlocksAllocated, h.blocks_allocated);
  h.uuid_create.encode(p + kOffUuidCreate, kUuidByteOrder);
  h.uuid_modify.encode(p + kOffUuidModify, kUuidByteOrder);
  h.uuid_linkage.encode(p + kOffUuidLinkage, kUuidByteOrder);
  h.uuid_parent_modify.encode(p + kOffUuidParentModify, kUuidByteOrder);
  if (h.has_lchs()) store_geometry(p + kOffLchsCylinders, h.lchs_geometry);
}

// ---------------------------------------------------------------------------

VdiDevice::VdiDevice(std::shared_ptr<const File> file, Header h, std::vector<uint32_t> map)
    : file_(std::move(file)),
      h_(std::move(h)),
      map_(std::move(map)),
      stride_(uint64_t{h_.block_size} + h_.block_extra) {
  for (uint32_t e : map_) {
    if (e < kBlockZero)
      ++data_blocks_;
    else if (e == kBlockZero)
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
    // Extend the piece over following blocks of the same kind; allocated
    // blocks only while their data is contiguous in the file, so one pread
    // serves them all.
    uint64_t n = std::min<uint64_t>(len, bs - in_block);
    uint64_t next = block + 1;
    while (n < len) {
      uint32_t f = map_[next];
      bool same =
          e < kBlockZero ? (f < kBlockZero && data_pos(next) == data_pos(next - 1) + bs) : f == e;
      if (!same) break;
      n = std::min<uint64_t>(len, n + bs);
      ++next;
    }
    size_t piece = static_cast<size_t>(n);
    if (e < kBlockZero) {
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
  uint32_t e = map_[block];
  auto kind = [](uint32_t v) { return v < kBlockZero ? 0 : v == kBlockZero ? 1 : 2; };
  uint64_t n = std::min<uint64_t>(len, bs - offset % bs);
  for (uint64_t next = block + 1; n < len && kind(map_[next]) == kind(e); ++next) {
    n = std::min<uint64_t>(len, n + bs);
  }
  if (e < kBlockZero) return Extent{n, ExtentType::kData};
  if (e == kBlockZero) return Extent{n, ExtentType::kZero};
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
    if (!v) return {ParentVerdict::kUnverifiable, "is " + candidate.info().format + ", not VDI", ""};
    const Header& ph = v->header();
    if (ph.uuid_create != want) {
      return {ParentVerdict::kMismatch,
              "has UUID " + ph.uuid_create.to_string() + ", not the parent UUID " +
                  want.to_string(),
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
    if (e >= kBlockZero) continue;
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
