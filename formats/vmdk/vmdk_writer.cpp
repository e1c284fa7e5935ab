#include "formats/vmdk/vmdk_writer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "formats/core/block_device.h"
#include "formats/core/child_writer.h"
#include "formats/core/cluster_feed.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/hex.h"
#include "formats/vmdk/vmdk_descriptor.h"
#include "formats/vmdk/vmdk_layout.h"
#include "formats/vmdk/vmdk_reader.h"
#include "formats/vmdk/vmdk_stream_writer.h"

namespace vdisk::vmdk {

std::vector<OptionSpec> create_options() {
  std::vector<OptionSpec> specs = {
      {"subformat",
       OptionType::kEnum,
       "monolithicSparse",
       "VMDK layout",
       {"monolithicSparse", "twoGbMaxExtentSparse", "monolithicFlat", "twoGbMaxExtentFlat",
        "streamOptimized"}},
      {"adapter_type",
       OptionType::kEnum,
       "ide",
       "virtual disk adapter (ddb.adapterType)",
       {"ide", "lsilogic", "buslogic", "legacyESX"}},
      {"hwversion",
       OptionType::kString,
       "4",
       "virtual hardware version (ddb.virtualHWVersion)",
       {}},
      {"grain_size",
       OptionType::kSize,
       "64K",
       "grain size of sparse subformats (power of two, 4K..1M)",
       {}},
      {"cid", OptionType::kString, "", "content ID, 8 hex digits (default: random)", {}},
      {"uuid", OptionType::kString, "", "ddb.uuid, 32 hex digits (default: random)", {}},
      {"embedded_name",
       OptionType::kString,
       "",
       "file name a monolithicSparse/streamOptimized file records for itself (default: the "
       "output's name, "
       "disk.vmdk on standard output)",
       {}},
  };
  for (OptionSpec& o : backing_options("a snapshot (monolithicSparse or twoGbMaxExtentSparse)"))
    specs.push_back(std::move(o));
  return specs;
}

namespace {

constexpr uint64_t kEmbeddedDescriptorSectors = 20;

// One output extent: receives guest bytes relative to its own start.
class ExtentSink {
 public:
  virtual ~ExtentSink() = default;
  virtual void write(uint64_t offset, const uint8_t* buf, size_t len) = 0;
  virtual void finish() = 0;  // writes metadata (does not commit)
};

class FlatSink final : public ExtentSink {
 public:
  FlatSink(OutputFile& out, uint64_t size) : out_(out), size_(size) {
    out_.reserve(size_);  // a file system that cannot hold it says so now
  }
  void write(uint64_t offset, const uint8_t* buf, size_t len) override {
    out_.write_at(offset, buf, len);
  }
  void finish() override { out_.set_size(size_); }

 private:
  OutputFile& out_;
  uint64_t size_;
};

// Hosted sparse extent (VDF "Hosted Sparse Extents"): header, optional
// embedded descriptor, redundant directory and tables, directory and tables,
// then grains in guest order. Every table is preallocated as VMware does;
// tables without grains stay holes in the host file.
class SparseSink final : public ExtentSink {
 public:
  // `keep_zero_grains`: a snapshot's zero grains are stored (an unallocated
  // grain would read as the parent's).
  SparseSink(OutputFile& out, uint64_t capacity_sectors, uint64_t grain_bytes,
             const std::string& descriptor, bool keep_zero_grains)
      : out_(out),
        grain_bytes_(grain_bytes),
        feed_(grain_bytes),
        descriptor_(descriptor),
        keep_zeros_(keep_zero_grains) {
    const uint64_t gsec = grain_bytes / kSector;
    ngrains_ = div_round_up(capacity_sectors, gsec);
    ntables_ = div_round_up(ngrains_, kDefaultGtes);
    const uint64_t gd_sectors = div_round_up(ntables_ * 4, kSector);
    const uint64_t gt_sectors = kDefaultGtes * 4 / kSector;
    h_.version = 1;
    h_.flags = kFlagNewlineTest | kFlagRedundantGd;
    h_.capacity = capacity_sectors;
    h_.grain_size = gsec;
    h_.descriptor_offset = descriptor.empty() ? 0 : 1;
    h_.descriptor_size = descriptor.empty() ? 0 : kEmbeddedDescriptorSectors;
    h_.num_gtes_per_gt = kDefaultGtes;
    h_.rgd_offset = 1 + h_.descriptor_size;
    rgt_start_ = h_.rgd_offset + gd_sectors;
    h_.gd_offset = rgt_start_ + ntables_ * gt_sectors;
    gt_start_ = h_.gd_offset + gd_sectors;
    h_.overhead = div_round_up(gt_start_ + ntables_ * gt_sectors, gsec) * gsec;
    next_sector_ = h_.overhead;
    if (h_.overhead > 0xffffffffull) {
      throw Error(ErrorKind::kUnsupported, out.path(), std::nullopt,
                  "disk too large for a hosted sparse extent (32-bit grain directory entries)");
    }
    gt_.assign(kDefaultGtes, 0);
    if (descriptor.size() > kEmbeddedDescriptorSectors * kSector) {
      throw Error(ErrorKind::kInvalidArgument, out.path(), std::nullopt,
                  "descriptor too long to embed");
    }
  }

  void write(uint64_t offset, const uint8_t* buf, size_t len) override {
    feed_.write(offset, buf, len,
                [&](uint64_t g, const uint8_t* p, size_t count) { put(g, p, count); });
  }

  void finish() override {
    feed_.flush([&](uint64_t g, const uint8_t* p, size_t count) { put(g, p, count); });
    close_table();
    std::vector<uint8_t> head(static_cast<size_t>((1 + h_.descriptor_size) * kSector), 0);
    encode_sparse_header(h_, head.data());
    std::memcpy(head.data() + kSector, descriptor_.data(), descriptor_.size());
    out_.write_at(0, head.data(), head.size());
    // The directories (every table preallocated, so entry t is known) are
    // written a window at a time: whole, they are 4 bytes per 32 MiB of
    // guest each — 256 MiB for a 1 PiB disk.
    const uint64_t gt_sectors = kDefaultGtes * 4 / kSector;
    constexpr uint64_t kWindow = 256 * 1024;  // entries
    std::vector<uint8_t> gd, rgd;
    for (uint64_t first = 0; first < ntables_; first += kWindow) {
      const uint64_t n = std::min(kWindow, ntables_ - first);
      gd.resize(static_cast<size_t>(n * 4));
      rgd.resize(gd.size());
      for (uint64_t i = 0; i < n; ++i) {
        store_le32(gd.data() + 4 * i, static_cast<uint32_t>(gt_start_ + (first + i) * gt_sectors));
        store_le32(rgd.data() + 4 * i,
                   static_cast<uint32_t>(rgt_start_ + (first + i) * gt_sectors));
      }
      out_.write_at(h_.gd_offset * kSector + first * 4, gd.data(), gd.size());
      out_.write_at(h_.rgd_offset * kSector + first * 4, rgd.data(), rgd.size());
    }
    out_.set_size(std::max(next_sector_, h_.overhead) * kSector);
  }

 private:
  // `count` whole grains from `p`, first one `g`: non-zero runs are written
  // with one call each, at the end of the file.
  void put(uint64_t g, const uint8_t* p, size_t count) {
    size_t i = 0;
    while (i < count) {
      if (!keep_zeros_ && is_zero(p + i * grain_bytes_, static_cast<size_t>(grain_bytes_))) {
        ++i;
        continue;
      }
      size_t j = i + 1;
      while (j < count &&
             (keep_zeros_ || !is_zero(p + j * grain_bytes_, static_cast<size_t>(grain_bytes_))))
        ++j;
      if (next_sector_ + (j - i) * (grain_bytes_ / kSector) > 0xffffffffull) {
        throw Error(ErrorKind::kUnsupported, out_.path(), next_sector_ * kSector,
                    "sparse extent would exceed the 2 TiB a 32-bit grain table entry can address");
      }
      out_.write_at(next_sector_ * kSector, p + i * grain_bytes_,
                    static_cast<size_t>((j - i) * grain_bytes_));
      for (size_t k = i; k < j; ++k) {
        set_entry(g + k, static_cast<uint32_t>(next_sector_));
        next_sector_ += grain_bytes_ / kSector;
      }
      i = j;
    }
  }

  void set_entry(uint64_t grain, uint32_t sector) {
    uint64_t t = grain / kDefaultGtes;
    if (t != cur_table_) {
      close_table();
      cur_table_ = t;
    }
    gt_[grain % kDefaultGtes] = sector;
    gt_any_ = true;
  }

  // Tables are final once the grains move past them: write both copies.
  void close_table() {
    if (!gt_any_) return;
    std::vector<uint8_t> raw(kDefaultGtes * 4);
    for (uint32_t i = 0; i < kDefaultGtes; ++i) store_le32(raw.data() + 4 * i, gt_[i]);
    const uint64_t gt_sectors = kDefaultGtes * 4 / kSector;
    out_.write_at((gt_start_ + cur_table_ * gt_sectors) * kSector, raw.data(), raw.size());
    out_.write_at((rgt_start_ + cur_table_ * gt_sectors) * kSector, raw.data(), raw.size());
    std::fill(gt_.begin(), gt_.end(), 0);
    gt_any_ = false;
  }

  OutputFile& out_;
  uint64_t grain_bytes_;
  ClusterFeed feed_;
  std::string descriptor_;
  SparseHeader h_;
  uint64_t ngrains_ = 0, ntables_ = 0;
  uint64_t rgt_start_ = 0, gt_start_ = 0;
  uint64_t next_sector_ = 0;
  uint64_t cur_table_ = ~uint64_t{0};
  std::vector<uint32_t> gt_;
  bool gt_any_ = false;
  bool keep_zeros_;
};

class StreamSink final : public ExtentSink {
 public:
  StreamSink(OutputFile& out, uint64_t capacity_sectors, uint64_t grain_bytes,
             const std::string& descriptor)
      : w_(out, capacity_sectors, grain_bytes, descriptor) {}
  void write(uint64_t offset, const uint8_t* buf, size_t len) override {
    w_.write(offset, buf, len);
  }
  void finish() override { w_.finish(); }

 private:
  StreamExtentWriter w_;
};

uint32_t parse_cid(const std::string& text, Env& env) {
  if (text.empty()) {
    uint32_t v;
    do v = env.random_u32();
    while (v == kNoParentCid);  // ffffffff means "no parent"
    return v;
  }
  if (text.size() > 8 || text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                "vmdk option cid='" + text + "' is not 1-8 hex digits");
  }
  return static_cast<uint32_t>(std::stoul(text, nullptr, 16));
}

// ddb.uuid in VMware's spelling: "60 00 c2 9b … 4e-5a 9e … 7f". VDF gives
// it no inner structure, so a random one is 16 random bytes (no RFC 4122
// version bits), which is what this writer has always produced.
std::string make_uuid(const std::string& text, Env& env) {
  std::string hex;
  if (text.empty()) {
    uint8_t bytes[16];
    env.random_bytes(bytes, sizeof bytes);
    hex = hex_bytes(bytes, sizeof bytes);
  } else {
    for (char c : text) {
      if (std::isxdigit(static_cast<unsigned char>(c)))
        hex += static_cast<char>(std::tolower(c));
      else if (c != '-' && c != ' ')
        hex = "bad";
    }
    if (hex.size() != 32) {
      throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                  "vmdk option uuid='" + text + "' is not 32 hex digits");
    }
  }
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i) out += (i == 8 ? "-" : " ");
    out += hex.substr(static_cast<size_t>(2 * i), 2);
  }
  return out;
}

// Values that go between quotes in the descriptor: no quotes, no line
// breaks, no path separators.
void check_descriptor_word(const std::string& option, const std::string& v) {
  for (char c : v) {
    if (c == '"' || c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                  "vmdk option " + option + "='" + v +
                      "' may not contain quotes, slashes or control characters");
    }
  }
}

class VmdkWriter final : public ImageWriter {
 public:
  // `parent`: a snapshot of it, recorded as `parent_name` (VDF "The
  // Descriptor File": parentCID = the parent's CID, parentFileNameHint);
  // the ChildFilter in front passes on only whole grains that differ.
  VmdkWriter(const CreateRequest& req, const VmdkDevice* parent, const std::string& parent_name)
      : env_(req.environment()), path_(req.path) {
    const std::string sub = req.options.get_string("subformat");
    subformat_ = sub;
    size_ = req.virtual_size;
    if (size_ == 0)
      throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt, "cannot make a 0-byte VMDK");
    if (size_ % kSector) {
      uint64_t up = align_down(size_, kSector) + kSector;
      if (!req.allow_resize) {
        throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                    "VMDK sizes are whole 512-byte sectors: " + std::to_string(size_) +
                        " bytes would become " + std::to_string(up) +
                        " (pass --allow-resize to accept)");
      }
      notes_.push_back("virtual size rounded up from " + std::to_string(size_) + " to " +
                       std::to_string(up) + " bytes (whole 512-byte sectors)");
      size_ = up;
    }
    grain_ = req.options.get_size("grain_size");
    if (grain_ < 4096 || grain_ > (1u << 20) || (grain_ & (grain_ - 1))) {
      throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                  "vmdk option grain_size=" + std::to_string(grain_) +
                      " is not a power of two from 4K to 1M");
    }
    const bool stream = sub == "streamOptimized";
    if (path_ == "-" && !stream) {
      throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                  "VMDK subformat " + sub +
                      " needs a seekable file; only subformat=streamOptimized can be written to "
                      "standard output");
    }

    const std::string hw = req.options.get_string("hwversion");
    if (hw.empty() || hw.size() > 4 || hw.find_first_not_of("0123456789") != std::string::npos) {
      throw Error(ErrorKind::kInvalidArgument, "", std::nullopt,
                  "vmdk option hwversion='" + hw + "' is not a number (4, 6, 7, … 21)");
    }
    Descriptor d;
    d.cid = parse_cid(req.options.get_string("cid"), env_);
    d.create_type = sub;
    if (parent) {
      d.parent_cid = parent->cid();
      d.parent_hint = parent_name;
    }
    const uint64_t sectors = size_ / kSector;
    const std::string adapter = req.options.get_string("adapter_type");
    // Geometry (VDF "The Disk Database"): IDE disks report 16 heads and 63
    // sectors per track with at most 16383 cylinders; SCSI adapters 255/63.
    const uint64_t heads = adapter == "ide" ? 16 : 255, spt = 63;
    const uint64_t cyl =
        std::min<uint64_t>(sectors / (heads * spt), adapter == "ide" ? 16383 : 65535);
    d.ddb = {{"ddb.virtualHWVersion", req.options.get_string("hwversion")},
             {"ddb.adapterType", adapter},
             {"ddb.geometry.cylinders", std::to_string(cyl)},
             {"ddb.geometry.heads", std::to_string(heads)},
             {"ddb.geometry.sectors", std::to_string(spt)},
             {"ddb.uuid", make_uuid(req.options.get_string("uuid"), env_)}};

    std::string base = path_basename(path_);
    if (path_extension(base) == "vmdk") base = base.substr(0, base.size() - 5);
    const std::string dir = path_dirname(path_);
    auto extent_path = [&](const std::string& name) { return path_join(dir, name); };

    try {
      if (sub == "monolithicSparse" || stream) {
        // Readers take a single-file VMDK's own extent to be the file itself
        // whatever name it records, so the name only documents the origin.
        std::string self = req.options.get_string("embedded_name");
        if (self.empty()) self = path_ == "-" ? "disk.vmdk" : path_basename(path_);
        check_descriptor_word("embedded_name", self);
        d.extents.push_back({"RW", sectors, ExtentKind::kSparse, self, 0});
        outs_.push_back(env_.create_output(path_, req.overwrite));
        std::string text = render_descriptor(d);
        if (stream)
          sinks_.push_back(std::make_unique<StreamSink>(*outs_[0], sectors, grain_, text));
        else
          sinks_.push_back(
              std::make_unique<SparseSink>(*outs_[0], sectors, grain_, text, parent != nullptr));
        starts_.push_back(0);
      } else {
        const bool sparse = sub == "twoGbMaxExtentSparse";
        const bool split = sub != "monolithicFlat";
        uint64_t per = split ? kTwoGbExtentSectors : sectors;
        uint64_t n = div_round_up(sectors, per);
        // VMware numbers the pieces -s001 ... -s999; each is an open output
        // until the image is complete.
        if (n > kMaxExtents) {
          throw Error(ErrorKind::kInvalidArgument, path_, std::nullopt,
                      "a " + human_size(size_) + " " + sub + " disk would need " +
                          std::to_string(n) + " extent files; at most " +
                          std::to_string(kMaxExtents) + " (" +
                          human_size(kMaxExtents * kTwoGbExtentSectors * kSector) +
                          ") are written: use monolithicSparse or streamOptimized");
        }
        for (uint64_t i = 0; i < n; ++i) {
          uint64_t len = std::min(per, sectors - i * per);
          std::string file = split ? piece_name(base, sparse, i + 1) : base + "-flat.vmdk";
          d.extents.push_back(
              {"RW", len, sparse ? ExtentKind::kSparse : ExtentKind::kFlat, file, 0});
          outs_.push_back(env_.create_output(extent_path(file), req.overwrite));
          if (sparse)
            sinks_.push_back(
                std::make_unique<SparseSink>(*outs_.back(), len, grain_, "", parent != nullptr));
          else
            sinks_.push_back(std::make_unique<FlatSink>(*outs_.back(), len * kSector));
          starts_.push_back(i * per * kSector);
        }
        descriptor_text_ = render_descriptor(d);
        descriptor_out_ = env_.create_output(path_, req.overwrite);
      }
    } catch (...) {
      abort();
      throw;
    }
  }
  ~VmdkWriter() override { abort(); }

  uint64_t virtual_size() const override { return size_; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    if (offset > size_ || len > size_ - offset) {
      throw Error(ErrorKind::kInvalidArgument, path_, offset, "write past the end of the disk");
    }
    const auto* p = static_cast<const uint8_t*>(buf);
    while (len > 0) {
      size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                     starts_.begin()) -
                 1;
      uint64_t end = i + 1 < starts_.size() ? starts_[i + 1] : size_;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, end - offset));
      sinks_[i]->write(offset - starts_[i], p, n);
      offset += n, p += n, len -= n;
    }
  }

  void finish() override {
    try {
      for (auto& s : sinks_) s->finish();
      if (descriptor_out_)
        descriptor_out_->write_at(0, descriptor_text_.data(), descriptor_text_.size());
      // Extents first, the descriptor last: it never names a missing file.
      for (auto& o : outs_) o->commit();
      if (descriptor_out_) descriptor_out_->commit();
      finished_ = true;
    } catch (...) {
      abort();
      throw;
    }
  }

  void abort() override {
    if (finished_) return;
    sinks_.clear();  // stops compression threads before their output goes
    for (auto& o : outs_) o->discard();
    if (descriptor_out_) descriptor_out_->discard();
  }

  std::vector<std::string> notes() const override { return notes_; }

  std::vector<std::string> output_files() const override {
    std::vector<std::string> files;
    if (descriptor_out_) files.push_back(descriptor_out_->path());
    for (auto& o : outs_) files.push_back(o->path());
    return files;
  }

 private:
  Env& env_;
  std::string path_;
  std::string subformat_;
  uint64_t size_ = 0;
  uint64_t grain_ = 65536;
  std::vector<std::unique_ptr<OutputFile>> outs_;
  std::vector<std::unique_ptr<ExtentSink>> sinks_;
  std::vector<uint64_t> starts_;
  std::unique_ptr<OutputFile> descriptor_out_;
  std::string descriptor_text_;
  std::vector<std::string> notes_;
  bool finished_ = false;
};

}  // namespace

std::string piece_name(const std::string& base, bool sparse, uint64_t number) {
  char name[32];
  std::snprintf(name, sizeof name, sparse ? "-s%03llu.vmdk" : "-f%03llu.vmdk",
                static_cast<unsigned long long>(number));
  return base + name;
}

void write_empty_sparse_extent(OutputFile& out, uint64_t capacity_sectors, uint64_t grain_bytes) {
  SparseSink(out, capacity_sectors, grain_bytes, "", false).finish();
}

std::unique_ptr<ImageWriter> create_vmdk(const CreateRequest& req) {
  const std::string name = backing_name(req, "vmdk");
  if (name.empty()) return std::make_unique<VmdkWriter>(req, nullptr, "");
  const std::string sub = req.options.get_string("subformat");
  if (sub != "monolithicSparse" && sub != "twoGbMaxExtentSparse")
    throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                "a VMDK snapshot (backing_file) is written as monolithicSparse or "
                "twoGbMaxExtentSparse, not " +
                    sub);
  for (char c : name)
    if (c == '"' || static_cast<unsigned char>(c) < 0x20)
      throw Error(ErrorKind::kInvalidArgument, req.path, std::nullopt,
                  "backing_file '" + name +
                      "' cannot be a parentFileNameHint (quotes or control characters)");
  Backing backing = open_backing(req, name, req.options.get_string("backing_fmt"), "vmdk", "VMDK");
  const auto* parent = dynamic_cast<const VmdkDevice*>(&backing.layer());
  if (!parent)
    throw Error(ErrorKind::kUnsupported, backing.path, std::nullopt, "not opened as a VMDK");
  auto inner = std::make_unique<VmdkWriter>(req, parent, name);
  return std::make_unique<ChildFilter>(std::move(inner), backing.device,
                                       req.options.get_size("grain_size"));
}

}  // namespace vdisk::vmdk
