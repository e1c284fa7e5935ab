#include "formats/vhd/vhd_writer.h"

#include <algorithm>
#include <cstring>

#include "formats/core/child_writer.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/single_file_writer.h"
#include "formats/vhd/vhd_inplace.h"
#include "formats/vhd/vhd_layout.h"

namespace vdisk::vhd {

namespace {

constexpr uint64_t kMiB = 1 << 20;
// Azure's limits for an uploaded VHD: a fixed disk of a whole number of MiB,
// from 20 MiB to 32 TiB (the upload size is that plus the 512-byte footer).
constexpr uint64_t kAzureMin = 20 * kMiB;
constexpr uint64_t kAzureMax = 32ull << 40;
// BAT entries are 32-bit sector numbers, so a dynamic disk's file must stay
// below 2 TiB.
constexpr uint64_t kDataAlign = 4096;
constexpr uint64_t kMaxDynamicFile = uint64_t{0xFFFFFFFF} * kSectorSize;

std::array<uint8_t, 4> creator_code(const std::string& text, const std::string& path) {
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
    throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                "vhd option creator='" + text + "' must be 1 to 4 printable ASCII characters");
  }
  std::array<uint8_t, 4> code{' ', ' ', ' ', ' '};
  std::memcpy(code.data(), text.data(), text.size());
  return code;
}

// Seconds since the VHD epoch (2000-01-01T00:00:00Z) by the request's clock.
uint32_t vhd_now(Env& env) {
  int64_t now = env.now_unix() - kVhdEpoch;
  return static_cast<uint32_t>(std::clamp<int64_t>(now, 0, 0xFFFFFFFF));
}

// vdisk's version as the footer's major.minor creator version.
uint32_t creator_version() {
  unsigned major = 0, minor = 0;
  std::sscanf(VDISK_VERSION, "%u.%u", &major, &minor);
  return (major << 16) | (minor & 0xFFFF);
}

class VhdWriter final : public SingleFileWriter {
 public:
  // `parent`: a differencing disk linked to it (dynamic layout; the
  // ChildFilter in front passes on only whole blocks that differ).
  VhdWriter(const CreateRequest& req, const ParentLink* parent) {
    const std::string& path = req.path;
    const Options& o = req.options;
    const bool azure = o.get_string("target") == "azure";
    std::string sub = o.get_string("subformat");
    if (azure) {
      if (o.is_set("subformat") && sub != "fixed") {
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "vhd target=azure needs subformat=fixed: Azure accepts only fixed VHDs");
      }
      sub = "fixed";
    }
    fixed_ = sub == "fixed";

    size_ = round_size(req, kSectorSize, "VHD holds whole 512-byte sectors");
    if (azure) {
      if (size_ % kMiB != 0) {
        uint64_t up = size_ - size_ % kMiB + kMiB;
        add_note("virtual size padded from " + std::to_string(size_) + " to " + std::to_string(up) +
                 " bytes: Azure needs a whole number of MiB");
        size_ = up;
      }
      if (size_ < kAzureMin || size_ > kAzureMax) {
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "vhd target=azure: virtual size " + human_size(size_) +
                        " is outside what Azure accepts (20 MiB to 32 TiB)");
      }
    }

    Footer& f = footer_;
    f.features = kFeatureReserved;
    f.version = kFormatVersion;
    f.timestamp = vhd_now(req.environment());
    f.creator_app = creator_code(o.get_string("creator"), path);
    f.creator_version = creator_version();
    f.creator_os = kHostWindows;
    f.original_size = size_;
    f.current_size = size_;
    Geometry g = chs_geometry(size_);
    f.cylinders = g.cylinders;
    f.heads = g.heads;
    f.sectors_per_track = g.sectors_per_track;
    f.unique_id = Guid::random(req.environment());
    f.saved_state = 0;

    if (fixed_) {
      f.disk_type = uint32_t(DiskType::kFixed);
      f.data_offset = kFixedDataOffset;
    } else {
      f.disk_type = uint32_t(DiskType::kDynamic);
      f.data_offset = kFooterSize;
      block_size_ = o.get_size("block_size");
      if (block_size_ < kSectorSize || block_size_ > (1ull << 31) ||
          (block_size_ & (block_size_ - 1)) != 0) {
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "vhd option block_size=" + std::to_string(block_size_) +
                        " must be a power of two from 512 bytes to 2 GiB");
      }
      bitmap_size_ = bitmap_bytes(block_size_);
      const uint64_t blocks = div_round_up(size_, block_size_);
      const uint64_t bat_bytes = div_round_up(blocks * 4, kSectorSize) * kSectorSize;
      bat_offset_ = kFooterSize + kHeaderSize;
      next_ = bat_offset_ + bat_bytes;
      const uint64_t worst =
          next_ + blocks * (bitmap_size_ + block_size_ + kDataAlign) + kFooterSize;
      if (blocks > 0xFFFFFFFFull || worst > kMaxDynamicFile) {
        throw Error(ErrorKind::kInvalidArgument, path, std::nullopt,
                    "a " + human_size(size_) +
                        " disk is too large for a dynamic VHD (BAT offsets are 32-bit sector "
                        "numbers, about 2 TiB); use -o subformat=fixed");
      }
      if (parent) {
        // Spec "Dynamic Disk Header Format": the parent's identity and
        // locators; the locator data right after the BAT.
        f.disk_type = uint32_t(DiskType::kDifferencing);
        locator_at_ = next_;
        locator_data_ = store_parent_link(header_, *parent, locator_at_);
        next_ += locator_data_.size();
      }
      bat_.assign(static_cast<size_t>(blocks), kBatUnused);
      bitmap_.assign(static_cast<size_t>(bitmap_size_), 0xFF);
    }
    open_output(req);
  }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    check_write_range(offset, len);
    if (fixed_) {
      out_->write_at(offset, buf, len);
      return;
    }
    const auto* p = static_cast<const uint8_t*>(buf);
    while (len > 0) {
      const uint64_t block = offset / block_size_;
      const uint64_t in_block = offset % block_size_;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len, block_size_ - in_block));
      if (bat_[block] == kBatUnused) {
        // Spec: a new block is its sector bitmap followed by its data. Every
        // bit is set: the sectors this writer never fills are holes in the
        // host file and read as zero, exactly what the source had.
        // The data starts on a 4 KiB boundary of the host file (the gap
        // before the bitmap stays a hole), so host pages and guest pages line up.
        next_ = (next_ + bitmap_size_ + kDataAlign - 1) / kDataAlign * kDataAlign - bitmap_size_;
        bat_[block] = static_cast<uint32_t>(next_ / kSectorSize);
        out_->write_at(next_, bitmap_.data(), bitmap_.size());
        next_ += bitmap_size_ + block_size_;
      }
      out_->write_at(uint64_t{bat_[block]} * kSectorSize + bitmap_size_ + in_block, p, n);
      p += n;
      offset += n;
      len -= n;
    }
  }

 private:
  // The file ends with the footer: after the data (fixed) or after the last
  // block (dynamic).
  uint64_t finish_image() override {
    const auto foot = encode_footer(footer_);
    if (fixed_) {
      out_->write_at(size_, foot.data(), foot.size());
      return size_ + kFooterSize;
    } else {
      std::vector<uint8_t> bat(
          static_cast<size_t>(div_round_up(bat_.size() * 4, kSectorSize) * kSectorSize), 0xFF);
      for (size_t i = 0; i < bat_.size(); ++i) store_be32(bat.data() + i * 4, bat_[i]);
      DynamicHeader& h = header_;
      h.data_offset = kFixedDataOffset;
      h.table_offset = bat_offset_;
      h.max_table_entries = static_cast<uint32_t>(bat_.size());
      h.block_size = static_cast<uint32_t>(block_size_);
      const auto head = encode_header(h);
      // Spec: a dynamic disk carries the footer at offset 0 and at the end.
      out_->write_at(0, foot.data(), foot.size());
      out_->write_at(kFooterSize, head.data(), head.size());
      if (!bat.empty()) out_->write_at(bat_offset_, bat.data(), bat.size());
      if (!locator_data_.empty())
        out_->write_at(locator_at_, locator_data_.data(), locator_data_.size());
      out_->write_at(next_, foot.data(), foot.size());
      return next_ + kFooterSize;
    }
  }

  bool fixed_ = false;
  uint64_t size_ = 0;
  Footer footer_;
  uint64_t block_size_ = 0;
  uint64_t bitmap_size_ = 0;
  uint64_t bat_offset_ = 0;
  uint64_t next_ = 0;  // file offset of the next block
  std::vector<uint32_t> bat_;
  std::vector<uint8_t> bitmap_;
  DynamicHeader header_;
  uint64_t locator_at_ = 0;
  std::vector<uint8_t> locator_data_;
};

}  // namespace

std::vector<OptionSpec> vhd_create_options() {
  std::vector<OptionSpec> specs = {
      {"subformat",
       OptionType::kEnum,
       "dynamic",
       "dynamic (only blocks that hold data are stored) or fixed (data, then the footer)",
       {"dynamic", "fixed"}},
      {"block_size",
       OptionType::kSize,
       "2M",
       "dynamic disks: guest bytes per block (power of two)",
       {}},
      {"target",
       OptionType::kEnum,
       "generic",
       "azure: what Azure accepts (fixed, a whole number of MiB from 20 MiB to 32 TiB; padding is "
       "reported)",
       {"generic", "azure"}},
      {"creator",
       OptionType::kString,
       "win",
       "creator application code (1-4 characters, padded with spaces). 'win ' (Hyper-V) tells "
       "readers such as qemu to take the size from current_size; with other codes qemu derives a "
       "smaller size from the CHS geometry",
       {}},
  };
  for (OptionSpec& o : backing_options("a differencing disk")) specs.push_back(std::move(o));
  return specs;
}

std::unique_ptr<ImageWriter> create_vhd(const CreateRequest& req) {
  const std::string name = backing_name(req, "vhd");
  if (name.empty()) return std::make_unique<VhdWriter>(req, nullptr);
  if (req.options.get_string("subformat") == "fixed" || req.options.get_string("target") == "azure")
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "a VHD with a backing_file is a differencing disk: not subformat=fixed or "
                "target=azure");
  Backing backing = open_backing(req, name, req.options.get_string("backing_fmt"), "vhd", "VHD");
  const ParentLink link =
      parent_link(req.path, backing.layer(), name, req.environment().real_path(backing.path));
  auto inner = std::make_unique<VhdWriter>(req, &link);
  return std::make_unique<ChildFilter>(std::move(inner), backing.device,
                                       req.options.get_size("block_size"));
}

}  // namespace vdisk::vhd
