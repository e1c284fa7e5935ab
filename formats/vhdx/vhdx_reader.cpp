#include "formats/vhdx/vhdx_reader.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/core/parent.h"
#include "formats/vhdx/vhdx_crc32c.h"

namespace vdisk::vhdx {

namespace {

// ---- headers (2.2.2) ----------------------------------------------------------

// The header at `offset`, or nullopt with `why` set.
std::optional<Header> read_header(const File& f, uint64_t offset, std::string* why) {
  std::vector<uint8_t> b(kHeaderSize);
  f.read_at(offset, b.data(), b.size());
  if (std::memcmp(b.data(), kHeaderSignature, 4) != 0) {
    *why = "no 'head' signature";
    return std::nullopt;
  }
  uint32_t stored = load_le32(b.data() + kHdrChecksum);
  uint32_t actual = crc32c_with_zero_field(b.data(), b.size(), kHdrChecksum);
  if (stored != actual) {
    *why = "checksum " + hex(stored) + " does not match the computed CRC-32C " + hex(actual);
    return std::nullopt;
  }
  return decode_header(b.data());
}

// ---- region table (2.2.3) -----------------------------------------------------

struct Region {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool found = false;
};

struct Regions {
  Region bat, metadata;
};

std::optional<Regions> read_region_table(const File& f, uint64_t offset, std::string* why) {
  const std::string& path = f.path();
  std::vector<uint8_t> b(kRegionTableSize);
  f.read_at(offset, b.data(), b.size());
  if (std::memcmp(b.data(), kRegionSignature, 4) != 0) {
    *why = "no 'regi' signature";
    return std::nullopt;
  }
  uint32_t stored = load_le32(b.data() + 4);
  uint32_t actual = crc32c_with_zero_field(b.data(), b.size(), 4);
  if (stored != actual) {
    *why = "checksum " + hex(stored) + " does not match the computed CRC-32C " + hex(actual);
    return std::nullopt;
  }
  uint32_t count = load_le32(b.data() + 8);
  if (count > kMaxRegionEntries) {
    throw Error(ErrorKind::kCorrupt, path, offset + 8,
                "region table has " + std::to_string(count) + " entries (at most 2047)");
  }
  Regions r;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t eo = kRegionHeaderSize + uint64_t{i} * kRegionEntrySize;
    const RegionEntry e = decode_region_entry(b.data() + eo);
    const Guid& g = e.guid;
    Region reg;
    reg.offset = e.file_offset;
    reg.length = e.length;
    const bool required = e.required;
    Region* slot = nullptr;
    std::string name;
    if (g == kBatRegionGuid) {
      slot = &r.bat, name = "BAT";
    } else if (g == kMetadataRegionGuid) {
      slot = &r.metadata, name = "metadata";
    } else {
      if (required) {
        throw Error(ErrorKind::kUnsupported, path, offset + eo,
                    "required region " + guid_to_string(g) + " is unknown to vdisk");
      }
      continue;
    }
    if (slot->found) {
      throw Error(ErrorKind::kCorrupt, path, offset + eo,
                  "the " + name + " region is listed twice");
    }
    if (reg.offset % kRegionAlignment || reg.offset < kHeaderSectionSize || reg.length == 0 ||
        reg.length % kRegionAlignment) {
      throw Error(
          ErrorKind::kCorrupt, path, offset + eo,
          name + " region at " + std::to_string(reg.offset) + " of " + std::to_string(reg.length) +
              " bytes is not a non-empty 1 MiB-aligned range after the 1 MiB header section");
    }
    uint64_t end = checked_add(reg.offset, reg.length, path, offset + eo, name + " region end");
    if (end > f.size()) {
      throw Error(ErrorKind::kCorrupt, path, offset + eo,
                  name + " region [" + std::to_string(reg.offset) + ", " + std::to_string(end) +
                      ") runs past the end of the " + std::to_string(f.size()) + "-byte file");
    }
    reg.found = true;
    *slot = reg;
  }
  for (auto [reg, name] : {std::pair{&r.bat, "BAT"}, std::pair{&r.metadata, "metadata"}}) {
    if (!reg->found) {
      throw Error(ErrorKind::kCorrupt, path, offset,
                  std::string("region table has no ") + name + " region");
    }
  }
  return r;
}

// ---- metadata (2.6) -------------------------------------------------------------

struct Item {
  uint64_t offset = 0;  // in the file
  uint32_t length = 0;
  bool found = false;
};

std::vector<uint8_t> read_item(const File& f, const Item& it, uint32_t want, const char* name) {
  if (want && it.length < want) {
    throw Error(ErrorKind::kCorrupt, f.path(), it.offset,
                std::string("metadata item ") + name + " is " + std::to_string(it.length) +
                    " bytes, expected " + std::to_string(want));
  }
  std::vector<uint8_t> b(want ? want : it.length);
  f.read_at(it.offset, b.data(), b.size());
  return b;
}

void read_metadata(const File& f, ImageMeta* m) {
  const std::string& path = f.path();
  if (m->metadata_length < kMetadataTableSize) {
    throw Error(ErrorKind::kCorrupt, path, m->metadata_offset,
                "metadata region is smaller than its 64 KiB table");
  }
  std::vector<uint8_t> t(kMetadataTableSize);
  f.read_at(m->metadata_offset, t.data(), t.size());
  if (std::memcmp(t.data(), kMetadataSignature, 8) != 0) {
    throw Error(ErrorKind::kCorrupt, path, m->metadata_offset,
                "metadata table has no 'metadata' signature");
  }
  uint16_t count = load_le16(t.data() + 10);
  if (count > kMaxMetadataEntries) {
    throw Error(ErrorKind::kCorrupt, path, m->metadata_offset + 10,
                "metadata table has " + std::to_string(count) + " entries (at most 2047)");
  }
  Item params, vsize, vid, lss, pss, locator;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t eo = kMetadataHeaderSize + uint64_t{i} * kMetadataEntrySize;
    const MetadataEntry e = decode_metadata_entry(t.data() + eo);
    const Guid& g = e.item_id;
    const uint32_t off = e.offset, len = e.length, flags = e.flags;
    const uint64_t at = m->metadata_offset + eo;
    if (len != 0 && (off < kMetadataTableSize || uint64_t{off} + len > m->metadata_length)) {
      throw Error(ErrorKind::kCorrupt, path, at,
                  "metadata item " + guid_to_string(g) + " at " + std::to_string(off) + " of " +
                      std::to_string(len) + " bytes lies outside the " +
                      std::to_string(m->metadata_length) + "-byte metadata region");
    }
    Item* slot = nullptr;
    if (g == kFileParametersGuid)
      slot = &params;
    else if (g == kVirtualDiskSizeGuid)
      slot = &vsize;
    else if (g == kVirtualDiskIdGuid)
      slot = &vid;
    else if (g == kLogicalSectorSizeGuid)
      slot = &lss;
    else if (g == kPhysicalSectorSizeGuid)
      slot = &pss;
    else if (g == kParentLocatorGuid)
      slot = &locator;
    if (!slot) {
      if ((flags & kMetaIsRequired) && !(flags & kMetaIsUser)) {
        throw Error(ErrorKind::kUnsupported, path, at,
                    "required metadata item " + guid_to_string(g) + " is unknown to vdisk");
      }
      continue;
    }
    if (slot->found) {
      throw Error(ErrorKind::kCorrupt, path, at,
                  "metadata item " + guid_to_string(g) + " is listed twice");
    }
    *slot = Item{m->metadata_offset + off, len, true};
  }
  for (auto [it, name] :
       {std::pair{&params, "file parameters"}, std::pair{&vsize, "virtual disk size"},
        std::pair{&lss, "logical sector size"}}) {
    if (!it->found) {
      throw Error(ErrorKind::kCorrupt, path, m->metadata_offset,
                  std::string("metadata has no ") + name + " item");
    }
  }
  auto p = read_item(f, params, 8, "file parameters");
  uint64_t block_size = load_le32(p.data());
  uint32_t pflags = load_le32(p.data() + 4);
  m->leave_blocks_allocated = pflags & kLeaveBlocksAllocated;
  m->has_parent = pflags & kHasParent;
  if (block_size < kMinBlockSize || block_size > kMaxBlockSize || (block_size & (block_size - 1))) {
    throw Error(ErrorKind::kCorrupt, path, params.offset,
                "block size " + std::to_string(block_size) +
                    " is not a power of two between 1 MiB and 256 MiB");
  }
  uint64_t virtual_size = load_le64(read_item(f, vsize, 8, "virtual disk size").data());
  uint32_t logical = load_le32(read_item(f, lss, 4, "logical sector size").data());
  if (logical != 512 && logical != 4096) {
    throw Error(ErrorKind::kCorrupt, path, lss.offset,
                "logical sector size " + std::to_string(logical) + " is neither 512 nor 4096");
  }
  if (pss.found) {
    m->physical_sector_size = load_le32(read_item(f, pss, 4, "physical sector size").data());
    if (m->physical_sector_size != 512 && m->physical_sector_size != 4096) {
      throw Error(ErrorKind::kCorrupt, path, pss.offset,
                  "physical sector size " + std::to_string(m->physical_sector_size) +
                      " is neither 512 nor 4096");
    }
  }
  if (vid.found) m->virtual_disk_id = load_guid(read_item(f, vid, 16, "virtual disk id").data());
  if (virtual_size > kMaxVirtualSize || virtual_size % logical) {
    throw Error(ErrorKind::kCorrupt, path, vsize.offset,
                "virtual disk size " + std::to_string(virtual_size) +
                    " is not a multiple of the logical sector size " + std::to_string(logical) +
                    " up to 64 TiB");
  }
  m->geometry = make_geometry(virtual_size, block_size, logical, m->has_parent);

  if (m->has_parent) {
    if (!locator.found) {
      throw Error(ErrorKind::kCorrupt, path, m->metadata_offset,
                  "file parameters say the disk has a parent, but there is no parent locator");
    }
    auto l = read_item(f, locator, 0, "parent locator");
    if (l.size() < kLocatorHeaderSize) {
      throw Error(ErrorKind::kCorrupt, path, locator.offset,
                  "parent locator is shorter than its header");
    }
    Guid type = load_guid(l.data());
    if (type != kVhdxLocatorTypeGuid) {
      throw Error(ErrorKind::kUnsupported, path, locator.offset,
                  "parent locator type " + guid_to_string(type) + " is not the VHDX locator");
    }
    uint16_t kv = load_le16(l.data() + 18);
    if (kLocatorHeaderSize + uint64_t{kv} * kLocatorEntrySize > l.size()) {
      throw Error(ErrorKind::kCorrupt, path, locator.offset + 18,
                  std::to_string(kv) + " parent locator entries do not fit in its " +
                      std::to_string(l.size()) + " bytes");
    }
    for (uint16_t i = 0; i < kv; ++i) {
      const LocatorEntry e =
          decode_locator_entry(l.data() + kLocatorHeaderSize + i * kLocatorEntrySize);
      const uint64_t ko = e.key_offset, vo = e.value_offset, kl = e.key_length, vl = e.value_length;
      if (ko + kl > l.size() || vo + vl > l.size()) {
        throw Error(ErrorKind::kCorrupt, path,
                    locator.offset + kLocatorHeaderSize + i * kLocatorEntrySize,
                    "parent locator entry " + std::to_string(i) + " points outside the item");
      }
      m->locator.emplace_back(utf16le_to_utf8(l.data() + ko, kl),
                              utf16le_to_utf8(l.data() + vo, vl));
    }
  }
}

// Bytes from guest `offset` to the end of its run of sectors with the same
// bit in a block's sector bitmap `bits` (bit 0 of byte 0 = the block's first
// sector, 2.5); `present` gets that bit.
uint64_t sector_run(const std::vector<uint8_t>& bits, uint64_t block_start, uint32_t sector_size,
                    uint64_t offset, bool* present) {
  auto bit = [&](uint64_t s) { return ((bits[s / 8] >> (s % 8)) & 1) != 0; };
  uint64_t s = (offset - block_start) / sector_size;
  *present = bit(s);
  uint64_t e = s + 1;
  while (e < bits.size() * 8 && bit(e) == *present) ++e;
  return block_start + e * sector_size - offset;
}

std::string locator_text(const ImageMeta& m) {
  std::string s;
  for (auto& [k, v] : m.locator) s += (s.empty() ? "" : ", ") + k + "=" + v;
  return s.empty() ? "(empty)" : s;
}

const std::string* locator_value(const ImageMeta& m, const std::string& key) {
  for (auto& [k, v] : m.locator) {
    if (k == key) return &v;
  }
  return nullptr;
}

// The parent's candidates (2.6.2.6.3), in the spec's order: relative_path,
// volume_path, absolute_win32_path. A Windows path names a folder on another
// machine: its file name is tried beside the child.
std::vector<ParentCandidate> parent_candidates(const ImageMeta& m) {
  std::vector<ParentCandidate> out;
  for (const char* key : {"relative_path", "volume_path", "absolute_win32_path"}) {
    const std::string* v = locator_value(m, key);
    if (!v || v->empty()) continue;
    const std::string source = std::string(key) + " '" + *v + "'";
    std::string posix = windows_path_to_posix(*v);
    if (std::string(key) == "relative_path") out.push_back({source, posix, ""});
    std::string base = path_basename(posix);
    if (!base.empty()) out.push_back({source, base, ""});
  }
  return out;
}

}  // namespace

VhdxDevice::VhdxDevice(std::shared_ptr<const File> source, std::shared_ptr<const File> replayed,
                       ImageMeta meta, std::vector<uint64_t> bat, LogReplayResult log)
    : source_(std::move(source)),
      file_(std::move(replayed)),
      meta_(std::move(meta)),
      bat_(std::move(bat)),
      log_(log) {}

std::shared_ptr<const std::vector<uint8_t>> VhdxDevice::block_bitmap(uint64_t block) const {
  {
    std::lock_guard<std::mutex> lock(bitmap_mutex_);
    auto it = bitmaps_.find(block);
    if (it != bitmaps_.end()) return it->second;
  }
  const Geometry& g = meta_.geometry;
  uint64_t sb = bat_[g.bitmap_entry(block / g.chunk_ratio)];
  uint64_t sectors = g.block_size / g.logical_sector_size;
  uint64_t first_bit = (block % g.chunk_ratio) * sectors;
  auto bits = std::make_shared<std::vector<uint8_t>>(sectors / 8);
  file_->read_at(bat_file_offset(sb) + first_bit / 8, bits->data(), bits->size());
  std::lock_guard<std::mutex> lock(bitmap_mutex_);
  // Each entry is at most 64 KiB; the cache is dropped when it grows past
  // 32 MiB so a huge differencing disk cannot make it unbounded.
  if (bitmaps_.size() * bits->size() > 32 * kMiB) bitmaps_.clear();
  return bitmaps_.emplace(block, bits).first->second;
}

void VhdxDevice::read_partial(uint64_t block, uint64_t offset, uint8_t* out, size_t len) const {
  const Geometry& g = meta_.geometry;
  auto bits = block_bitmap(block);
  const uint64_t block_start = block * g.block_size;
  const uint64_t file_base = bat_file_offset(entry(block));
  const uint32_t ss = g.logical_sector_size;
  while (len > 0) {
    bool present = false;
    uint64_t run = sector_run(*bits, block_start, ss, offset, &present);
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, run));
    if (present) {
      file_->read_at(file_base + (offset - block_start), out, n);
    } else {
      std::memset(out, 0, n);  // the parent's sectors: not stored in this layer
    }
    out += n;
    offset += n;
    len -= n;
  }
}

void VhdxDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  const uint64_t bs = meta_.geometry.block_size;
  while (len > 0) {
    uint64_t b = offset / bs;
    uint64_t in = offset % bs;
    uint64_t e = entry(b);
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, bs - in));
    if (payload_state(e) == PayloadState::kPartiallyPresent) {
      read_partial(b, offset, out, n);
    } else {
      // Runs of blocks that read alike (contiguous in the file, or all
      // zeros in this layer) are served with one request.
      enum class Run { kStored, kPartial, kZeros };
      auto kind = [&](uint64_t ent) {
        const PayloadState st = payload_state(ent);
        if (st == PayloadState::kFullyPresent) return Run::kStored;
        if (st == PayloadState::kPartiallyPresent) return Run::kPartial;
        return Run::kZeros;
      };
      const Run k = kind(e);
      uint64_t prev = e;
      for (uint64_t nb = b + 1; n < len; ++nb) {
        uint64_t ne = entry(nb);
        if (kind(ne) != k) break;
        if (k == Run::kStored && bat_file_offset(ne) != bat_file_offset(prev) + bs) break;
        n += static_cast<size_t>(std::min<uint64_t>(len - n, bs));
        prev = ne;
      }
      if (k == Run::kStored) {
        file_->read_at(bat_file_offset(e) + in, out, n);
      } else {
        std::memset(out, 0, n);
      }
    }
    out += n;
    offset += n;
    len -= n;
  }
}

Extent VhdxDevice::status_in_block(uint64_t offset, uint64_t len) const {
  const Geometry& g = meta_.geometry;
  uint64_t b = offset / g.block_size;
  switch (payload_state(entry(b))) {
    case PayloadState::kFullyPresent: {
      // A host hole inside a stored block reads as zeros (fixed images are
      // often sparse on the host): say so, so copies skip reading it.
      uint64_t foff = bat_file_offset(entry(b)) + offset % g.block_size;
      FileRange r = file_->range_status(foff, len);
      if (r.length == 0 || r.length > len) r.length = len;
      return Extent{r.length, r.hole ? ExtentType::kZero : ExtentType::kData};
    }
    case PayloadState::kZero:
      return Extent{len, ExtentType::kZero};
    case PayloadState::kNotPresent:  // differencing: the parent's block
      return Extent{len, ExtentType::kUnallocated};
    case PayloadState::kPartiallyPresent: {
      auto bits = block_bitmap(b);
      const uint64_t block_start = b * g.block_size;
      const uint32_t ss = g.logical_sector_size;
      bool present = false;
      uint64_t n = std::min(len, sector_run(*bits, block_start, ss, offset, &present));
      return Extent{n, present ? ExtentType::kData : ExtentType::kUnallocated};
    }
    default:
      // Undefined, unmapped: nothing defined is stored; reads as zeros. In a
      // differencing disk they do not fall through to the parent (only
      // NOT_PRESENT and unmarked sectors of PARTIALLY_PRESENT do, 2.5.1.1).
      return Extent{len, meta_.has_parent ? ExtentType::kZero : ExtentType::kUnallocated};
  }
}

Extent VhdxDevice::do_block_status(uint64_t offset, uint64_t len) const {
  const uint64_t bs = meta_.geometry.block_size;
  auto piece = [&](uint64_t off, uint64_t max) {
    return status_in_block(off, std::min(max, bs - off % bs));
  };
  Extent first = piece(offset, len);
  // Callers (the converter) ask about the whole rest of the disk and use one
  // chunk of the answer, so merging is bounded: a data run stops at 16 MiB,
  // any run after 4096 pieces; otherwise a large disk costs quadratic time.
  uint64_t pos = offset + first.length;
  for (int pieces = 1; pos < offset + len && pieces < 4096; ++pieces) {
    if (first.type == ExtentType::kData && first.length >= 16 * kMiB) break;
    Extent next = piece(pos, offset + len - pos);
    if (next.type != first.type || next.length == 0) break;
    first.length += next.length;
    pos += next.length;
  }
  return first;
}

ImageInfo VhdxDevice::info() const {
  const Geometry& g = meta_.geometry;
  ImageInfo info;
  info.path = source_->path();
  info.format = "vhdx";
  info.subformat = meta_.has_parent               ? "differencing"
                   : meta_.leave_blocks_allocated ? "fixed"
                                                  : "dynamic";
  info.virtual_size = g.virtual_size;
  info.actual_size = source_->allocated_on_host();
  Json& d = info.details;
  d.set("creator", meta_.creator);
  d.set("block_size", g.block_size);
  d.set("logical_sector_size", g.logical_sector_size);
  d.set("physical_sector_size", meta_.physical_sector_size);
  d.set("chunk_ratio", g.chunk_ratio);
  d.set("virtual_disk_id", guid_to_string(meta_.virtual_disk_id));
  d.set("current_header", meta_.current_header);
  d.set("header_sequence", meta_.header_sequence);
  d.set("data_write_guid", guid_to_string(meta_.data_write_guid));
  d.set("file_write_guid", guid_to_string(meta_.file_write_guid));
  Json log = Json::object();
  bool dirty = !meta_.log_guid.is_nil();
  log.set("state",
          dirty ? "dirty (not closed cleanly; log replayed in memory, file unchanged)" : "clean");
  log.set("offset", meta_.log_offset);
  log.set("length", meta_.log_length);
  if (dirty) {
    log.set("log_guid", guid_to_string(meta_.log_guid));
    log.set("entries_applied", log_.entries_applied);
    log.set("data_sectors_replayed", log_.data_sectors);
    log.set("bytes_zeroed", log_.zero_bytes);
    log.set("head_sequence", log_.head_sequence);
  }
  d.set("log", std::move(log));
  uint64_t counts[8] = {};
  for (uint64_t b = 0; b < g.data_blocks; ++b)
    counts[static_cast<uint8_t>(payload_state(entry(b)))]++;
  Json blocks = Json::object();
  blocks.set("total", g.data_blocks);
  blocks.set("fully_present", counts[static_cast<uint8_t>(PayloadState::kFullyPresent)]);
  if (meta_.has_parent)
    blocks.set("partially_present", counts[static_cast<uint8_t>(PayloadState::kPartiallyPresent)]);
  blocks.set("not_present", counts[static_cast<uint8_t>(PayloadState::kNotPresent)]);
  blocks.set("zero", counts[static_cast<uint8_t>(PayloadState::kZero)]);
  blocks.set("unmapped", counts[static_cast<uint8_t>(PayloadState::kUnmapped)]);
  blocks.set("undefined", counts[static_cast<uint8_t>(PayloadState::kUndefined)]);
  d.set("blocks", std::move(blocks));
  if (meta_.has_parent) {
    Json loc = Json::object();
    for (auto& [k, v] : meta_.locator) loc.set(k, v);
    d.set("parent_locator", std::move(loc));
  }
  return info;
}

std::shared_ptr<const ParentSpec> VhdxDevice::parent_spec() const {
  if (!meta_.has_parent) return nullptr;
  const std::string* link1 = locator_value(meta_, "parent_linkage");
  const std::string* link2 = locator_value(meta_, "parent_linkage2");
  std::vector<Guid> links;
  for (const std::string* v : {link1, link2}) {
    if (!v) continue;
    if (auto g = Guid::parse(*v)) links.push_back(*g);
  }
  auto spec = std::make_shared<ParentSpec>();
  const std::string want = link1 ? *link1 : "(none)";
  spec->child = "differencing VHDX (parent locator: " + locator_text(meta_) + ")";
  spec->offset = meta_.metadata_offset;
  spec->candidates = parent_candidates(meta_);
  spec->check = [links, want](const BlockDevice& candidate) -> ParentCheck {
    const auto* v = dynamic_cast<const VhdxDevice*>(&candidate);
    if (!v)
      return {ParentVerdict::kUnverifiable, "is " + candidate.info().format + ", not VHDX", ""};
    const Guid dw = v->meta().data_write_guid;
    if (std::find(links.begin(), links.end(), dw) == links.end()) {
      return {ParentVerdict::kMismatch,
              "has DataWriteGuid " + guid_to_string(dw) + ", not the parent_linkage " + want, ""};
    }
    return {};
  };
  return spec;
}

BlockDevicePtr open_vhdx(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string path = file->path();
  uint8_t id[kCreatorOffset + kCreatorSize] = {};
  size_t got = file->read_some(0, id, sizeof id);
  if (got < 8 || std::memcmp(id, kFileSignature, 8) != 0) {
    throw Error(ErrorKind::kNotThisFormat, path, 0, "no 'vhdxfile' signature: not a VHDX image");
  }
  if (file->size() < kHeaderSectionSize) {
    throw Error(ErrorKind::kCorrupt, path, file->size(),
                "file is " + std::to_string(file->size()) +
                    " bytes, shorter than the 1 MiB VHDX header section (truncated)");
  }
  ImageMeta m;
  m.creator = utf16le_to_utf8(id + kCreatorOffset, kCreatorSize);

  // 2.2.2: the valid header with the larger sequence number is current.
  std::string why1, why2;
  auto h1 = read_header(*file, kHeader1Offset, &why1);
  auto h2 = read_header(*file, kHeader2Offset, &why2);
  if (!h1 && !h2) {
    throw Error(ErrorKind::kCorrupt, path, kHeader1Offset,
                "neither header is valid: header 1 (offset 65536): " + why1 +
                    "; header 2 (offset 131072): " + why2);
  }
  bool use2 = h2 && (!h1 || h2->sequence > h1->sequence);
  const Header& h = use2 ? *h2 : *h1;
  const uint64_t hoff = use2 ? kHeader2Offset : kHeader1Offset;
  m.current_header = use2 ? 2 : 1;
  m.header_sequence = h.sequence;
  m.file_write_guid = h.file_write_guid;
  m.data_write_guid = h.data_write_guid;
  m.log_guid = h.log_guid;
  m.log_offset = h.log_offset;
  m.log_length = h.log_length;
  if (h.version != 1) {
    throw Error(ErrorKind::kUnsupported, path, hoff + kHdrVersion,
                "header version " + std::to_string(h.version) + " (only version 1 is defined)");
  }
  if (h.log_version != 0) {
    throw Error(ErrorKind::kUnsupported, path, hoff + kHdrLogVersion,
                "log version " + std::to_string(h.log_version) + " (only version 0 is defined)");
  }
  if (h.log_offset % kRegionAlignment || h.log_length % kRegionAlignment ||
      (h.log_length && h.log_offset < kHeaderSectionSize)) {
    throw Error(ErrorKind::kCorrupt, path, hoff + kHdrLogLength,
                "log region at " + std::to_string(h.log_offset) + " of " +
                    std::to_string(h.log_length) +
                    " bytes is not 1 MiB-aligned after the header section");
  }

  // 2.3.3: a non-zero LogGuid means entries may be pending; replay them in
  // memory and read everything else through the result.
  LogReplayResult log;
  std::shared_ptr<const File> src = file;
  if (!h.log_guid.is_nil()) {
    src = replay_log(file, h.log_offset, h.log_length, h.log_guid, &log);
  }

  std::string rwhy1, rwhy2;
  auto r = read_region_table(*src, kRegionTable1Offset, &rwhy1);
  if (!r) r = read_region_table(*src, kRegionTable2Offset, &rwhy2);
  if (!r) {
    throw Error(ErrorKind::kCorrupt, path, kRegionTable1Offset,
                "neither region table is valid: table 1 (offset 196608): " + rwhy1 +
                    "; table 2 (offset 262144): " + rwhy2);
  }
  m.bat_offset = r->bat.offset;
  m.bat_length = r->bat.length;
  m.metadata_offset = r->metadata.offset;
  m.metadata_length = r->metadata.length;
  read_metadata(*src, &m);
  const Geometry& g = m.geometry;

  // 2.5: the BAT; its byte count is bounded by the region, itself inside the file.
  uint64_t bat_bytes = checked_mul(g.total_bat_entries, 8, path, m.bat_offset, "BAT size");
  if (bat_bytes > m.bat_length) {
    throw Error(ErrorKind::kCorrupt, path, m.bat_offset,
                "the BAT needs " + std::to_string(g.total_bat_entries) + " entries (" +
                    std::to_string(bat_bytes) + " bytes) but its region is " +
                    std::to_string(m.bat_length) + " bytes");
  }
  std::vector<uint8_t> raw(static_cast<size_t>(bat_bytes));
  src->read_at(m.bat_offset, raw.data(), raw.size());
  std::vector<uint64_t> bat(static_cast<size_t>(g.total_bat_entries));
  for (size_t i = 0; i < bat.size(); ++i) bat[i] = load_le64(raw.data() + 8 * i);
  raw = {};

  const uint64_t file_size = src->size();
  // 2.5.1: payload and sector bitmap blocks hold data only. A BAT entry that
  // points into the log, the metadata region or the BAT itself would make
  // reads return (and a writer overwrite) metadata: refused, naming the
  // region. The header section is excluded by the offset checks below.
  struct Region {
    uint64_t offset, length;
    const char* name;
  };
  const Region regions[] = {{m.log_offset, m.log_length, "log"},
                            {m.metadata_offset, m.metadata_length, "metadata region"},
                            {m.bat_offset, m.bat_length, "BAT region"}};
  auto check_not_metadata = [&](uint64_t off, uint64_t len, uint64_t b, uint64_t at) {
    for (const Region& r : regions) {
      // Overlap without adding (a clean log's offset and length are only
      // checked for alignment, so their sum may wrap).
      const bool overlap = off < r.offset ? r.offset - off < len : off - r.offset < r.length;
      if (r.length && len && overlap) {
        throw Error(ErrorKind::kCorrupt, path, at,
                    "block " + std::to_string(b) + " at file offset " + std::to_string(off) +
                        " overlaps the " + r.name + " at " + std::to_string(r.offset));
      }
    }
  };
  for (uint64_t b = 0; b < g.data_blocks; ++b) {
    uint64_t idx = g.payload_entry(b);
    uint64_t e = bat[idx];
    const PayloadState state = payload_state(e);
    const uint64_t at = m.bat_offset + idx * 8;
    switch (state) {
      case PayloadState::kNotPresent:
      case PayloadState::kUndefined:
      case PayloadState::kZero:
      case PayloadState::kUnmapped:
        break;
      case PayloadState::kPartiallyPresent: {
        if (!m.has_parent) {
          throw Error(ErrorKind::kCorrupt, path, at,
                      "block " + std::to_string(b) +
                          " is partially present, which only a differencing disk may use");
        }
        uint64_t sidx = g.bitmap_entry(b / g.chunk_ratio);
        uint64_t se = bat[sidx];
        uint64_t soff = bat_file_offset(se);
        if (bitmap_state(se) != SectorBitmapState::kPresent || soff < kHeaderSectionSize ||
            soff > file_size || kSectorBitmapBlockSize > file_size - soff) {
          throw Error(ErrorKind::kCorrupt, path, m.bat_offset + sidx * 8,
                      "block " + std::to_string(b) +
                          " is partially present but its sector bitmap entry " + hex(se) +
                          " does not point to a 1 MiB block inside the file");
        }
        check_not_metadata(soff, kSectorBitmapBlockSize, b, m.bat_offset + sidx * 8);
        [[fallthrough]];
      }
      case PayloadState::kFullyPresent: {
        uint64_t off = bat_file_offset(e);
        uint64_t need = std::min(g.block_size, g.virtual_size - b * g.block_size);
        if (off < kHeaderSectionSize || off > file_size || need > file_size - off) {
          throw Error(ErrorKind::kCorrupt, path, at,
                      "block " + std::to_string(b) + " at file offset " + std::to_string(off) +
                          " lies outside the " + std::to_string(file_size) + "-byte file");
        }
        check_not_metadata(off, need, b, at);
        break;
      }
      default:
        throw Error(ErrorKind::kCorrupt, path, at,
                    "block " + std::to_string(b) + " has reserved BAT state " +
                        std::to_string(static_cast<unsigned>(state)));
    }
  }

  if (m.has_parent && !locator_value(m, "parent_linkage")) {
    throw Error(ErrorKind::kCorrupt, path, m.metadata_offset,
                "parent locator has no parent_linkage entry (" + locator_text(m) + ")");
  }
  return std::make_shared<VhdxDevice>(file, src, std::move(m), std::move(bat), log);
}

}  // namespace vdisk::vhdx
