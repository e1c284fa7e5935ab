#include "formats/vdi/vdi_layout.h"

#include <algorithm>
#include <cstring>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"

namespace vdisk::vdi {

namespace {

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
                "VDI signature is " + hex(sig, 8) + ", not " + hex(kSignature, 8));
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

}  // namespace vdisk::vdi
