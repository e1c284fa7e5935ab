#include "formats/vhdx/vhdx_writer.h"

#include <algorithm>
#include <cstring>

#include "formats/core/child_writer.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/single_file_writer.h"
#include "formats/vhdx/vhdx_crc32c.h"
#include "formats/vhdx/vhdx_layout.h"
#include "formats/vhdx/vhdx_reader.h"

namespace vdisk::vhdx {

namespace {

constexpr uint64_t kLogOffset = 1 * kMiB;
constexpr uint64_t kLogLength = 1 * kMiB;
constexpr uint64_t kMetadataOffset = 2 * kMiB;
constexpr uint64_t kMetadataLength = 1 * kMiB;
constexpr uint64_t kBatOffset = 3 * kMiB;
// Writes are gathered into runs of this many bytes before one pwrite.
constexpr size_t kStageBytes = 8 * kMiB;
// Pieces at least this large skip the stage.
constexpr size_t kDirectBytes = 256 * 1024;

std::string backslashes(std::string p) {
  std::replace(p.begin(), p.end(), '/', '\\');
  return p;
}

class VhdxWriter final : public SingleFileWriter {
 public:
  // `locator`: a differencing VHDX (HasParent, this Parent Locator item,
  // sector bitmap entries in the BAT left not present); the ChildFilter in
  // front passes on only whole blocks that differ, each stored fully present.
  VhdxWriter(const CreateRequest& req, const std::vector<uint8_t>* locator) {
    if (locator) locator_ = *locator;
    has_parent_ = locator != nullptr;
    const Options& o = req.options;
    env_ = &req.environment();
    fixed_ = o.get_string("subformat") == "fixed";
    full_ = o.get_string("preallocation") == "full";
    uint64_t bs = o.get_size("block_size");
    if (bs < kMinBlockSize || bs > kMaxBlockSize || (bs & (bs - 1))) {
      throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                  "vhdx block_size " + std::to_string(bs) +
                      " is not a power of two between 1 MiB and 256 MiB");
    }
    uint32_t lss = req.sector_size == 4096 ? 4096 : 512;
    if (o.is_set("logical_sector_size"))
      lss = static_cast<uint32_t>(std::stoul(o.get_string("logical_sector_size")));
    const uint64_t size =
        round_size(req, lss, "VHDX holds whole " + std::to_string(lss) + "-byte logical sectors");
    if (size > kMaxVirtualSize) {
      throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                  "virtual size " + std::to_string(size) + " exceeds the VHDX maximum of 64 TiB");
    }
    geo_ = make_geometry(size, bs, lss, has_parent_);
    bat_length_ = std::max<uint64_t>(kMiB, align_up(geo_.total_bat_entries * 8, kMiB));
    payload_start_ = kBatOffset + bat_length_;
    next_block_ = payload_start_;
    if (fixed_) {
      // Every block allocated, in order, from the start (LeaveBlocksAllocated);
      // the BAT says so in write_structures().
      next_block_ = payload_start_ + geo_.data_blocks * bs;
    }
    // Zero parts of allocated blocks stay host holes (they read as zero on
    // every host and keep the file as small as the data); only
    // preallocation=full writes every byte, for hosts that refuse sparse files.
    fill_zeros_ = full_;
    if (fixed_ && full_) cursor_ = payload_start_;
    open_output(req);
    stage_.reserve(kStageBytes);
  }

  uint64_t virtual_size() const override { return geo_.virtual_size; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    if (offset > geo_.virtual_size || len > geo_.virtual_size - offset) {
      throw Error(ErrorKind::kInvalidArgument, out_->path(), offset,
                  "write past the end of the disk");
    }
    const auto* p = static_cast<const uint8_t*>(buf);
    const uint64_t bs = geo_.block_size;
    while (len > 0) {
      uint64_t b = offset / bs;
      uint64_t in = offset % bs;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, bs - in));
      uint64_t block_file = block_offset(b);
      fill_to(block_file + in);
      emit(block_file + in, p, n);
      offset += n;
      p += n;
      len -= n;
    }
  }

 private:
  uint64_t finish_image() override {
    // The rest of the last block written (dynamic) or of the payload area
    // (fixed with full preallocation) is written as zeros.
    if (fill_zeros_) fill_to(fixed_ ? (full_ ? next_block_ : cursor_) : open_block_end_);
    flush();
    write_structures();
    return std::max(next_block_, payload_start_);
  }

  // File offset of block `b`, allocating it (dynamic) on first use. Writes
  // come in increasing order, so blocks are laid out in guest order.
  uint64_t block_offset(uint64_t b) {
    if (fixed_) return payload_start_ + b * geo_.block_size;
    if (b == cur_block_) return cur_block_file_;
    // A new block: the previous one is completed with zeros first, so an
    // allocated block never holds a host hole (Hyper-V's copy to NTFS keeps
    // it that way).
    if (open_block_end_) fill_to(open_block_end_);
    set_bat_entry(geo_.payload_entry(b), bat_entry(PayloadState::kFullyPresent, next_block_));
    cur_block_ = b;
    cur_block_file_ = next_block_;
    cursor_ = next_block_;
    next_block_ += geo_.block_size;
    open_block_end_ = next_block_;
    return cursor_;
  }

  // Writes zeros from the write cursor up to `file_offset`, when this layout
  // fills gaps (dynamic blocks; fixed with preallocation=full).
  void fill_to(uint64_t file_offset) {
    if (!fill_zeros_ || file_offset <= cursor_) {
      cursor_ = std::max(cursor_, file_offset);
      return;
    }
    static const std::vector<uint8_t> zeros(kMiB, 0);
    while (cursor_ < file_offset) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), file_offset - cursor_));
      emit(cursor_, zeros.data(), n);
    }
  }

  // Queues small pieces so contiguous runs become one large pwrite; a piece
  // that is large on its own is written straight from the caller's buffer
  // (copying it into the stage cost a sixth of a raw->vhdx conversion).
  void emit(uint64_t file_offset, const uint8_t* p, size_t n) {
    if (!stage_.empty() && file_offset != stage_off_ + stage_.size()) flush();
    if (n >= kDirectBytes || stage_.size() + n > kStageBytes) {
      flush();
      if (n >= kDirectBytes) {
        out_->write_at(file_offset, p, n);
        cursor_ = file_offset + n;
        return;
      }
    }
    if (stage_.empty()) stage_off_ = file_offset;
    stage_.insert(stage_.end(), p, p + n);
    cursor_ = file_offset + n;
  }

  void flush() {
    if (stage_.empty()) return;
    out_->write_at(stage_off_, stage_.data(), stage_.size());
    stage_.clear();
  }

  // Writes a buffer, or only its non-zero 4 KiB pieces when holes are allowed
  // (the file reads as zeros there anyway).
  void put(uint64_t file_offset, const std::vector<uint8_t>& b) {
    if (full_) {
      out_->write_at(file_offset, b.data(), b.size());
      return;
    }
    for (size_t i = 0; i < b.size();) {
      size_t n = std::min<size_t>(4096, b.size() - i);
      if (is_zero(b.data() + i, n)) {
        i += n;
        continue;
      }
      size_t j = i + n;
      while (j < b.size() && !is_zero(b.data() + j, std::min<size_t>(4096, b.size() - j))) {
        j += std::min<size_t>(4096, b.size() - j);
      }
      out_->write_at(file_offset + i, b.data() + i, j - i);
      i = j;
    }
  }

  void write_structures() {
    Env& env = *env_;
    const Guid file_write = Guid::random(env), data_write = Guid::random(env),
               disk_id = Guid::random(env);

    // 2.2.1 file type identifier.
    std::vector<uint8_t> id(64 * kKiB, 0);
    std::memcpy(id.data(), kFileSignature, 8);
    std::string creator = utf8_to_utf16le("vdisk " VDISK_VERSION);
    std::memcpy(id.data() + kCreatorOffset, creator.data(),
                std::min(creator.size(), kCreatorSize - 2));

    // 2.2.2 headers: identical but for the sequence number; the second is current.
    for (int i = 0; i < 2; ++i) {
      std::vector<uint8_t> h(64 * kKiB, 0);
      Header hdr;
      hdr.sequence = static_cast<uint64_t>(i + 1);
      hdr.file_write_guid = file_write;
      hdr.data_write_guid = data_write;
      // LogGuid stays zero: the log is empty.
      hdr.log_version = 0;
      hdr.version = 1;
      hdr.log_length = static_cast<uint32_t>(kLogLength);
      hdr.log_offset = kLogOffset;
      encode_header(hdr, h.data());
      store_checksum(h.data(), kHeaderSize, kHdrChecksum);
      put(i == 0 ? kHeader1Offset : kHeader2Offset, h);
    }
    put(kFileIdOffset, id);
    // The rest of the header section is reserved (zeros).
    if (full_)
      put(kRegionTable2Offset + kRegionTableSize,
          std::vector<uint8_t>(kHeaderSectionSize - kRegionTable2Offset - kRegionTableSize, 0));

    // 2.2.3 region tables (two identical copies).
    std::vector<uint8_t> rt(kRegionTableSize, 0);
    std::memcpy(rt.data(), kRegionSignature, 4);
    store_le32(rt.data() + 8, 2);
    auto region = [&](size_t i, const Guid& g, uint64_t off, uint64_t len) {
      encode_region_entry(RegionEntry{g, off, static_cast<uint32_t>(len), true},
                          rt.data() + kRegionHeaderSize + i * kRegionEntrySize);
    };
    region(0, kBatRegionGuid, kBatOffset, bat_length_);
    region(1, kMetadataRegionGuid, kMetadataOffset, kMetadataLength);
    store_checksum(rt.data(), rt.size(), 4);
    put(kRegionTable1Offset, rt);
    put(kRegionTable2Offset, rt);

    // 2.3 the log: empty (LogGuid zero), its region all zeros.
    if (full_) put(kLogOffset, std::vector<uint8_t>(kLogLength, 0));

    // 2.6 metadata: table, then the items from 64 KiB on.
    std::vector<uint8_t> md(full_ ? kMetadataLength : kMetadataTableSize + 64 * kKiB, 0);
    std::memcpy(md.data(), kMetadataSignature, 8);
    size_t item_off = kMetadataTableSize;
    size_t n = 0;
    auto item = [&](const Guid& g, const std::vector<uint8_t>& value, uint32_t flags) {
      encode_metadata_entry(MetadataEntry{g, static_cast<uint32_t>(item_off),
                                          static_cast<uint32_t>(value.size()), flags},
                            md.data() + kMetadataHeaderSize + n++ * kMetadataEntrySize);
      std::memcpy(md.data() + item_off, value.data(), value.size());
      item_off += align_up(value.size(), 8);
    };
    std::vector<uint8_t> v(8);
    store_le32(v.data(), static_cast<uint32_t>(geo_.block_size));
    store_le32(v.data() + 4, (fixed_ ? kLeaveBlocksAllocated : 0) | (has_parent_ ? kHasParent : 0));
    item(kFileParametersGuid, v, kMetaIsRequired);
    store_le64(v.data(), geo_.virtual_size);
    item(kVirtualDiskSizeGuid, v, kMetaIsVirtualDisk | kMetaIsRequired);
    const Guid::Bytes disk_id_bytes = disk_id.encoded(GuidByteOrder::kMixedEndian);
    item(kVirtualDiskIdGuid, std::vector<uint8_t>(disk_id_bytes.begin(), disk_id_bytes.end()),
         kMetaIsVirtualDisk | kMetaIsRequired);
    std::vector<uint8_t> s4(4);
    store_le32(s4.data(), geo_.logical_sector_size);
    item(kLogicalSectorSizeGuid, s4, kMetaIsVirtualDisk | kMetaIsRequired);
    store_le32(s4.data(), 4096);  // Hyper-V's default physical sector size
    item(kPhysicalSectorSizeGuid, s4, kMetaIsVirtualDisk | kMetaIsRequired);
    if (has_parent_) item(kParentLocatorGuid, locator_, kMetaIsRequired);
    store_le16(md.data() + 10, static_cast<uint16_t>(n));
    put(kMetadataOffset, md);

    // 2.5 the BAT (sector bitmap entries stay SB_BLOCK_NOT_PRESENT): the
    // entries of a dynamic image are already written up to its last block.
    if (fixed_) {
      for (uint64_t b = 0; b < geo_.data_blocks; ++b)
        set_bat_entry(geo_.payload_entry(b),
                      bat_entry(PayloadState::kFullyPresent, payload_start_ + b * geo_.block_size));
    }
    set_bat_entry(geo_.total_bat_entries, 0);
    const uint64_t bat_end = kBatOffset + geo_.total_bat_entries * 8;
    if (full_ && bat_end < kBatOffset + bat_length_)
      put(bat_end,
          std::vector<uint8_t>(static_cast<size_t>(kBatOffset + bat_length_ - bat_end), 0));
  }

  // The BAT is written front to back as its entries become final (writes
  // come in increasing guest order), a window at a time: held whole it is 8
  // bytes per block — 512 MiB for 64 TiB in 1 MiB blocks. Entries skipped
  // since the last one are 0 (not present). `index` == total_bat_entries
  // flushes the rest.
  void set_bat_entry(uint64_t index, uint64_t value) {
    if (index < bat_done_ + bat_buf_.size() / 8) {
      throw Error(ErrorKind::kInvalidArgument, out_->path(), std::nullopt,
                  "VHDX BAT entry " + std::to_string(index) + " set after a later one");
    }
    const uint64_t total = geo_.total_bat_entries;
    while (bat_done_ + bat_buf_.size() / 8 < std::min(index, total)) {
      bat_buf_.resize(bat_buf_.size() + 8, 0);
      if (bat_buf_.size() >= kBatWindowBytes) flush_bat();
    }
    if (index < total) {
      bat_buf_.resize(bat_buf_.size() + 8);
      store_le64(bat_buf_.data() + bat_buf_.size() - 8, value);
    }
    if (bat_buf_.size() >= kBatWindowBytes || index >= total) flush_bat();
  }

  void flush_bat() {
    if (bat_buf_.empty()) return;
    put(kBatOffset + bat_done_ * 8, bat_buf_);
    bat_done_ += bat_buf_.size() / 8;
    bat_buf_.clear();
  }

  Env* env_ = nullptr;  // the request's: GUIDs come from its random source
  bool has_parent_ = false;
  std::vector<uint8_t> locator_;
  bool fixed_ = false;
  bool full_ = false;
  Geometry geo_;
  static constexpr size_t kBatWindowBytes = 4u << 20;
  std::vector<uint8_t> bat_buf_;       // entries [bat_done_, bat_done_ + size / 8)
  uint64_t bat_done_ = 0;              // entries already in the file
  uint64_t cur_block_ = ~uint64_t{0};  // the dynamic block being written
  uint64_t cur_block_file_ = 0;
  uint64_t bat_length_ = 0;
  uint64_t payload_start_ = 0;
  uint64_t next_block_ = 0;      // file offset where the next block goes
  uint64_t open_block_end_ = 0;  // end of the last dynamic block allocated
  uint64_t cursor_ = 0;          // file offset written up to
  bool fill_zeros_ = false;
  std::vector<uint8_t> stage_;
  uint64_t stage_off_ = 0;
};

}  // namespace

std::vector<OptionSpec> create_options() {
  std::vector<OptionSpec> specs = {
      {"subformat",
       OptionType::kEnum,
       "dynamic",
       "dynamic: blocks only for data that is not all zero; fixed: every block allocated",
       {"dynamic", "fixed"}},
      {"block_size",
       OptionType::kSize,
       "32M",
       "VHDX block size, a power of two from 1M to 256M (Hyper-V uses 32M)",
       {}},
      {"logical_sector_size",
       OptionType::kEnum,
       "",
       "512 or 4096 (default: the source's logical sector size)",
       {"512", "4096"}},
      {"preallocation",
       OptionType::kEnum,
       "off",
       "full: write every byte of the host file (no sparse holes; Hyper-V refuses sparse VHDX "
       "files on NTFS)",
       {"off", "full"}},
  };
  for (OptionSpec& o : backing_options("a differencing disk")) specs.push_back(std::move(o));
  return specs;
}

std::unique_ptr<ImageWriter> create_vhdx(const CreateRequest& req) {
  if (req.path == "-") {
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "VHDX cannot be written to standard output (its BAT is written last)");
  }
  const std::string name = backing_name(req, "vhdx");
  if (name.empty()) return std::make_unique<VhdxWriter>(req, nullptr);
  if (req.options.get_string("subformat") == "fixed")
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "a VHDX with a backing_file is a differencing disk, not subformat=fixed");
  Backing backing = open_backing(req, name, req.options.get_string("backing_fmt"), "vhdx", "VHDX");
  const auto* parent = dynamic_cast<const VhdxDevice*>(&backing.layer());
  if (!parent)
    throw Error(ErrorKind::kUnsupported, backing.path, std::nullopt, "not opened as a VHDX");
  const std::vector<uint8_t> locator = parent_locator_item(
      parent->meta().data_write_guid, name, req.environment().real_path(backing.path));
  auto inner = std::make_unique<VhdxWriter>(req, &locator);
  return std::make_unique<ChildFilter>(std::move(inner), backing.device,
                                       req.options.get_size("block_size"));
}

std::vector<uint8_t> parent_locator_item(const Guid& parent_data_write_guid,
                                         const std::string& name,
                                         const std::string& absolute_path) {
  std::vector<std::pair<std::string, std::string>> kv = {
      {"parent_linkage", guid_to_string(parent_data_write_guid)},
      {"absolute_win32_path", backslashes(absolute_path)}};
  if (!name.empty() && name[0] != '/') {
    std::string rel = name;
    while (rel.compare(0, 2, "./") == 0) rel = rel.substr(2);
    kv.push_back({"relative_path", ".\\" + backslashes(rel)});
  }
  std::vector<uint8_t> out(kLocatorHeaderSize + kv.size() * kLocatorEntrySize, 0);
  store_guid(out.data(), kVhdxLocatorTypeGuid);
  store_le16(out.data() + 18, static_cast<uint16_t>(kv.size()));
  for (size_t i = 0; i < kv.size(); ++i) {
    const std::string key = utf8_to_utf16le(kv[i].first), value = utf8_to_utf16le(kv[i].second);
    if (value.size() > 0xffff)
      throw Error(ErrorKind::kUnsupported, kv[i].second, std::nullopt,
                  "too long for a VHDX parent locator value (64 KiB of UTF-16)");
    uint8_t* e = out.data() + kLocatorHeaderSize + i * kLocatorEntrySize;
    store_le32(e, static_cast<uint32_t>(out.size()));
    store_le16(e + 8, static_cast<uint16_t>(key.size()));
    out.insert(out.end(), key.begin(), key.end());
    e = out.data() + kLocatorHeaderSize + i * kLocatorEntrySize;
    store_le32(e + 4, static_cast<uint32_t>(out.size()));
    store_le16(e + 10, static_cast<uint16_t>(value.size()));
    out.insert(out.end(), value.begin(), value.end());
  }
  return out;
}

}  // namespace vdisk::vhdx
