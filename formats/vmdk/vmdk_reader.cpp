#include "formats/vmdk/vmdk_reader.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>
#include <set>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/hex.h"
#include "formats/core/parent.h"
#include "formats/vmdk/vmdk_layout.h"
#include "formats/vmdk/vmdk_sparse_extent.h"

namespace vdisk::vmdk {

namespace {

// Largest descriptor we read: VMware's are a few hundred bytes; the bound
// keeps a mislabelled huge text file from being slurped.
constexpr uint64_t kMaxDescriptorBytes = 1 << 20;

class FlatExtent final : public ExtentReader {
 public:
  // `hides_parent`: holes in the host file are zeros of this layer, not
  // "ask the parent" (a flat extent has no unallocated state).
  FlatExtent(std::shared_ptr<const File> file, uint64_t offset, uint64_t size, bool hides_parent,
             std::string kind)
      : dev_(file, offset, size, "vmdk"),
        file_(std::move(file)),
        offset_(offset),
        hides_parent_(hides_parent),
        kind_(std::move(kind)) {}
  uint64_t size() const override { return dev_.size(); }
  const File* file() const override { return file_.get(); }
  Extent status(uint64_t offset, uint64_t len) const override {
    Extent e = dev_.block_status(offset, len);
    if (e.type == ExtentType::kUnallocated && hides_parent_) e.type = ExtentType::kZero;
    return e;
  }
  void read(uint64_t offset, uint8_t* buf, size_t len) const override {
    dev_.read(offset, buf, len);
  }
  Json describe() const override {
    Json j = Json::object();
    j.set("format", kind_);
    j.set("file_offset", offset_);
    return j;
  }

 private:
  FileDevice dev_;
  std::shared_ptr<const File> file_;
  uint64_t offset_;
  bool hides_parent_;
  std::string kind_;
};

class ZeroExtent final : public ExtentReader {
 public:
  explicit ZeroExtent(uint64_t size) : size_(size) {}
  uint64_t size() const override { return size_; }
  Extent status(uint64_t offset, uint64_t len) const override {
    return Extent{std::min(len, size_ - offset), ExtentType::kZero};
  }
  void read(uint64_t, uint8_t* buf, size_t len) const override { std::memset(buf, 0, len); }
  Json describe() const override {
    Json j = Json::object();
    j.set("format", "zero");
    return j;
  }

 private:
  uint64_t size_;
};

// Opens the file an extent line names, relative to the descriptor's folder.
std::shared_ptr<const File> open_extent_file(const OpenOptions& opts, const File& descriptor,
                                             const ExtentLine& e) {
  std::string path = resolve_sibling(opts, descriptor.path(), e.file, "extent");
  Env& env = opts.environment();
  if (!env.exists(path)) {
    throw Error(ErrorKind::kNotFound, descriptor.path(), std::nullopt,
                "extent file '" + e.file + "' not found (looked for " + path + ")");
  }
  return std::shared_ptr<const File>(env.open_read(path));
}

std::unique_ptr<ExtentReader> open_sparse_file(std::shared_ptr<const File> f,
                                               const OpenOptions& opts) {
  uint8_t hb[kSector] = {};
  if (f->read_some(0, hb, sizeof hb) < sizeof hb) {
    throw_corrupt(f->path(), 0, "file too short for a VMDK sparse extent header");
  }
  std::optional<SparseHeader> h = decode_sparse_header(hb);
  if (!h) throw_corrupt(f->path(), 0, "sparse extent has no KDMV magic");
  return open_hosted_sparse(std::move(f), *h, opts);
}

// Adds an extent's reader, checking its size against the descriptor line.
void add_part(std::vector<VmdkDevice::Part>& parts, uint64_t& pos, std::unique_ptr<ExtentReader> r,
              const ExtentLine& e, const std::string& path) {
  uint64_t want = e.sectors * kSector;
  if (r->size() < want) {
    throw_corrupt(path, 0,
                  "extent '" + e.file + "' holds " + std::to_string(r->size()) +
                      " bytes but the descriptor gives it " + std::to_string(want));
  }
  parts.push_back({pos, std::move(r)});
  pos = checked_add(pos, want, path, 0, "disk size");
}

// The bytes of host files the extents of one descriptor use. VDF 1.1 section
// "Extent Descriptions": each extent line maps the next sectors of the disk to
// its own storage; two lines whose storage overlaps would make one guest
// write appear at two guest offsets, so a descriptor that does it is damaged
// (or crafted). Several FLAT extents of one file with distinct offsets are
// legitimate (a partitionedDevice maps ranges of one physical disk) and are
// kept. A file is identified by (device, inode) so that symlinks and hard
// links to it count as the same file; by its resolved path in an Env
// without inodes.
class ExtentClaims {
 public:
  ExtentClaims(const File& descriptor, const Descriptor& d, Env& env)
      : path_(descriptor.path()), d_(d), env_(env) {
    // The descriptor's own bytes are never extent data.
    add(descriptor, 0, kWhole, kDescriptorItself);
  }

  // Extent `index` uses [start, end) of `f` (kWhole: the whole file, a sparse
  // extent's header and tables included). Throws kCorrupt on an overlap.
  void add(const File& f, uint64_t start, uint64_t end, size_t index) {
    auto& claims = by_file_[key(f)];
    auto next = claims.lower_bound(start);
    if (next != claims.end() && next->first < end) fail(f, start, end, next->second, index);
    if (next != claims.begin()) {
      auto prev = std::prev(next);
      if (prev->second.end > start) fail(f, start, end, prev->second, index);
    }
    claims.emplace(start, Claim{start, end, index});
  }

  static constexpr uint64_t kWhole = ~uint64_t{0};

 private:
  static constexpr size_t kDescriptorItself = ~size_t{0};
  struct Claim {
    uint64_t start, end;
    size_t index;
  };

  std::string key(const File& f) const {
    auto id = f.identity();
    if (id != std::pair<uint64_t, uint64_t>{0, 0})
      return "inode " + std::to_string(id.first) + ":" + std::to_string(id.second);
    try {
      return "path " + env_.real_path(f.path());
    } catch (const Error&) {
      return "path " + f.path();
    }
  }

  std::string line(size_t index) const {
    if (index < d_.extent_lines.size()) return "'" + d_.extent_lines[index].second + "'";
    return "extent " + std::to_string(index + 1);
  }
  uint64_t line_offset(size_t index) const {
    return index < d_.extent_lines.size() ? d_.extent_lines[index].first : 0;
  }

  std::string range(uint64_t start, uint64_t end) const {
    return end == kWhole ? "all of"
                         : "bytes " + std::to_string(start) + "-" + std::to_string(end) + " of";
  }

  [[noreturn]] void fail(const File& f, uint64_t start, uint64_t end, const Claim& other,
                         size_t index) const {
    if (other.index == kDescriptorItself) {
      throw_corrupt(
          path_, line_offset(index),
          "extent line " + line(index) + " names the descriptor file itself (" + f.path() + ")");
    }
    const uint64_t lo = std::max(start, other.start), hi = std::min(end, other.end);
    throw_corrupt(path_, line_offset(index),
                  "extent lines " + line(other.index) + " and " + line(index) +
                      " overlap: both use " +
                      (lo == 0 && hi == kWhole ? std::string("all of")
                       : hi == kWhole          ? "the bytes from " + std::to_string(lo) + " of"
                                               : range(lo, hi)) +
                      " " + f.path());
  }

  const std::string& path_;
  const Descriptor& d_;
  Env& env_;
  std::map<std::string, std::map<uint64_t, Claim>> by_file_;
};

std::string read_text(const File& f, uint64_t offset, uint64_t len) {
  std::string s(static_cast<size_t>(len), '\0');
  s.resize(f.read_some(offset, s.data(), s.size()));
  return s;
}

}  // namespace

VmdkDevice::VmdkDevice(std::shared_ptr<const File> main, Descriptor desc, std::string subformat,
                       std::vector<Part> parts, Json extra)
    : main_(std::move(main)),
      desc_(std::move(desc)),
      subformat_(std::move(subformat)),
      parts_(std::move(parts)),
      extra_(std::move(extra)) {
  for (size_t i = 0; i < parts_.size(); ++i) {
    size_ = parts_[i].start + desc_.extents[i].sectors * kSector;
  }
}

size_t VmdkDevice::part_at(uint64_t offset) const {
  auto it = std::upper_bound(parts_.begin(), parts_.end(), offset,
                             [](uint64_t o, const Part& p) { return o < p.start; });
  return static_cast<size_t>(it - parts_.begin()) - 1;
}

void VmdkDevice::do_read(uint64_t offset, void* buf, size_t len) const {
  auto* out = static_cast<uint8_t*>(buf);
  while (len > 0) {
    size_t i = part_at(offset);
    const Part& p = parts_[i];
    uint64_t in = offset - p.start;
    uint64_t part_len = desc_.extents[i].sectors * kSector;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, part_len - in));
    p.reader->read(in, out, n);
    offset += n, out += n, len -= n;
  }
}

Extent VmdkDevice::do_block_status(uint64_t offset, uint64_t len) const {
  size_t i = part_at(offset);
  const Part& p = parts_[i];
  uint64_t in = offset - p.start;
  uint64_t part_len = desc_.extents[i].sectors * kSector;
  return p.reader->status(in, std::min(len, part_len - in));
}

ImageInfo VmdkDevice::info() const {
  ImageInfo info;
  info.path = main_->path();
  info.format = "vmdk";
  info.subformat = subformat_;
  info.virtual_size = size_;
  std::set<std::pair<uint64_t, uint64_t>> seen;
  auto count_file = [&](const File& f) {
    auto id = f.identity();
    if (id != std::pair<uint64_t, uint64_t>{0, 0} && !seen.insert(id).second) return;
    info.actual_size += f.allocated_on_host();
  };
  count_file(*main_);
  Json& d = info.details;
  d.set("create_type", desc_.create_type);
  d.set("cid", hex_digits(desc_.cid, 8));
  if (desc_.parent_cid != kNoParentCid) d.set("parent_cid", hex_digits(desc_.parent_cid, 8));
  if (!desc_.parent_hint.empty()) d.set("parent_file_name_hint", desc_.parent_hint);
  if (auto v = desc_.ddb_value("ddb.adapterType")) d.set("adapter_type", *v);
  if (auto v = desc_.ddb_value("ddb.virtualHWVersion")) d.set("hwversion", *v);
  if (auto v = desc_.ddb_value("ddb.uuid")) d.set("uuid", *v);
  auto c = desc_.ddb_value("ddb.geometry.cylinders"), h = desc_.ddb_value("ddb.geometry.heads"),
       s = desc_.ddb_value("ddb.geometry.sectors");
  if (c && h && s) d.set("geometry", *c + "/" + *h + "/" + *s);
  // The grain size when every sparse extent agrees.
  std::optional<uint64_t> grain;
  uint64_t own_allocated = 0;
  bool all_sparse = true;
  Json extents = Json::array();
  for (size_t i = 0; i < parts_.size(); ++i) {
    const ExtentLine& e = desc_.extents[i];
    Json j = Json::object();
    j.set("access", e.access);
    j.set("type", extent_kind_name(e.kind));
    j.set("size", e.sectors * kSector);
    if (const File* f = parts_[i].reader->file()) {
      j.set("file", f->path());
      if (f != main_.get()) count_file(*f);
    }
    Json r = parts_[i].reader->describe();
    for (auto& [k, v] : r.as_object()) j.set(k, v);
    if (const Json* g = r.find("grain_size")) grain = g->as_u64();
    if (const Json* a = r.find("allocated_bytes"))
      own_allocated += a->as_u64();
    else
      all_sparse = false;
    extents.push(std::move(j));
  }
  if (grain) d.set("grain_size", *grain);
  if (all_sparse) d.set("allocated_in_this_layer", own_allocated);
  for (auto& [k, v] : extra_.as_object()) d.set(k, v);
  d.set("extents", std::move(extents));
  return info;
}

std::shared_ptr<const ParentSpec> VmdkDevice::parent_spec() const {
  const Descriptor& d = desc_;
  if (d.parent_cid == kNoParentCid && d.parent_hint.empty()) return nullptr;
  auto spec = std::make_shared<ParentSpec>();
  spec->child = "VMDK snapshot (parentCID " + hex_digits(d.parent_cid, 8) + ")";
  if (d.parent_hint.empty()) {
    spec->candidates.push_back({"the descriptor", "", "it has no parentFileNameHint"});
  } else {
    // VMware on Windows writes hints with backslashes.
    spec->candidates.push_back(
        {"parentFileNameHint '" + d.parent_hint + "'", windows_path_to_posix(d.parent_hint), ""});
  }
  // VMware writes a new CID into a disk whenever it is modified, so a
  // parentCID that no longer matches means the parent changed after the
  // snapshot was taken: worth a warning, not a refusal (VDF 1.1, "Parent
  // and Child Disks").
  spec->mismatch_is_warning = true;
  const uint32_t want = d.parent_cid;
  spec->check = [want](const BlockDevice& candidate) -> ParentCheck {
    const auto* v = dynamic_cast<const VmdkDevice*>(&candidate);
    if (!v || want == kNoParentCid || v->cid() == want) return {};
    return {ParentVerdict::kMismatch,
            "has CID " + hex_digits(v->cid(), 8) + ", not the parentCID " + hex_digits(want, 8),
            ""};
  };
  return spec;
}

int probe_vmdk(const ProbeInput& in) {
  if (in.head.size() >= 4 && load_le32(in.head.data()) == kSparseMagic) return kProbeSignature;
  if (in.head.size() >= 8 && load_le64(in.head.data()) == kSeSparseMagic) return kProbeSignature;
  if (looks_like_descriptor(in.head.data(), in.head.size())) return kProbeSignature;
  return 0;
}

BlockDevicePtr open_vmdk(std::shared_ptr<const File> file, const OpenOptions& opts) {
  const std::string& path = file->path();
  uint8_t head[kSector] = {};
  size_t got = file->read_some(0, head, sizeof head);
  Json extra = Json::object();
  std::vector<VmdkDevice::Part> parts;
  uint64_t pos = 0;

  if (got >= 4 && load_le32(head) == kSparseMagic) {
    if (got < kSector) throw_corrupt(path, got, "file too short for a VMDK sparse extent header");
    const SparseHeader h = *decode_sparse_header(head);  // the magic is checked above
    Descriptor d;
    if (h.descriptor_offset != 0 && h.descriptor_size != 0) {
      uint64_t doff = checked_mul(h.descriptor_offset, kSector, path, 28, "descriptor offset");
      uint64_t dlen = checked_mul(h.descriptor_size, kSector, path, 36, "descriptor size");
      if (dlen > kMaxDescriptorBytes || doff > file->size() || dlen > file->size() - doff) {
        throw_corrupt(path, 28,
                      "embedded descriptor (sector " + std::to_string(h.descriptor_offset) + ", " +
                          std::to_string(h.descriptor_size) + " sectors) lies outside the file");
      }
      d = parse_descriptor(read_text(*file, doff, dlen), path, doff);
      if (d.extents.size() != 1 || d.extents[0].kind != ExtentKind::kSparse) {
        throw Error(ErrorKind::kUnsupported, path, doff,
                    "embedded descriptor lists " + std::to_string(d.extents.size()) +
                        " extents; a sparse file's own descriptor must describe exactly one SPARSE "
                        "extent (itself)");
      }
      // The extent of an embedded descriptor is this very file, whatever name
      // it was created under: a renamed disk still opens, and a file that
      // happens to carry the old name is never read instead.
      if (d.extents[0].file != path_basename(path)) extra.set("created_as", d.extents[0].file);
    } else {
      // A bare extent (one piece of a twoGbMaxExtentSparse set opened alone).
      d.create_type = "sparse extent";
      d.cid = 0;
      d.extents.push_back({"RW", h.capacity, ExtentKind::kSparse, path_basename(path), 0});
      if (h.capacity == 0) throw_corrupt(path, 12, "sparse extent capacity is 0");
    }
    add_part(parts, pos, open_hosted_sparse(file, h, opts), d.extents[0], path);
    std::string sub = d.create_type;
    return std::make_shared<VmdkDevice>(file, std::move(d), sub, std::move(parts),
                                        std::move(extra));
  }

  if (got >= 8 && load_le64(head) == kSeSparseMagic) {
    auto r = open_sesparse(file, opts);
    Descriptor d;
    d.create_type = "seSparse extent";
    d.extents.push_back({"RW", r->size() / kSector, ExtentKind::kSeSparse, path_basename(path), 0});
    if (d.extents[0].sectors == 0) throw_corrupt(path, 16, "seSparse capacity is 0");
    add_part(parts, pos, std::move(r), d.extents[0], path);
    return std::make_shared<VmdkDevice>(file, std::move(d), "seSparse", std::move(parts),
                                        std::move(extra));
  }

  if (!looks_like_descriptor(head, got)) {
    throw Error(ErrorKind::kNotThisFormat, path, 0,
                "not a VMDK: no KDMV header and no text descriptor");
  }
  if (file->size() > kMaxDescriptorBytes) {
    throw_corrupt(path, 0,
                  "starts like a VMDK descriptor but is " + std::to_string(file->size()) +
                      " bytes long (a descriptor is at most 1 MiB)");
  }
  Descriptor d = parse_descriptor(read_text(*file, 0, file->size()), path, 0);
  if (d.extents.empty()) throw_corrupt(path, 0, "VMDK descriptor lists no extents");
  const bool has_parent = d.parent_cid != kNoParentCid || !d.parent_hint.empty();
  // Checked as each extent file is opened, before its tables are read: a
  // descriptor naming one big sparse file thousands of times fails at once.
  ExtentClaims claims(*file, d, opts.environment());
  for (size_t i = 0; i < d.extents.size(); ++i) {
    const ExtentLine& e = d.extents[i];
    std::unique_ptr<ExtentReader> r;
    switch (e.kind) {
      case ExtentKind::kFlat:
      case ExtentKind::kVmfs: {
        auto f = open_extent_file(opts, *file, e);
        uint64_t off = checked_mul(e.offset, kSector, path, 0, "extent offset");
        uint64_t len = e.sectors * kSector;
        claims.add(*f, off, checked_add(off, len, path, 0, "extent end"), i);
        if (off > f->size() || len > f->size() - off) {
          throw_corrupt(f->path(), f->size(),
                        "flat extent needs " + std::to_string(len) + " bytes from offset " +
                            std::to_string(off) + " but the file is " + std::to_string(f->size()) +
                            " bytes");
        }
        r = std::make_unique<FlatExtent>(f, off, len, has_parent,
                                         e.kind == ExtentKind::kFlat ? "flat" : "vmfs");
        break;
      }
      case ExtentKind::kSparse: {
        auto f = open_extent_file(opts, *file, e);
        claims.add(*f, 0, ExtentClaims::kWhole, i);
        r = open_sparse_file(f, opts);
        break;
      }
      case ExtentKind::kSeSparse: {
        auto f = open_extent_file(opts, *file, e);
        claims.add(*f, 0, ExtentClaims::kWhole, i);
        r = open_sesparse(f, opts);
        break;
      }
      case ExtentKind::kZero:
        r = std::make_unique<ZeroExtent>(e.sectors * kSector);
        break;
      default:
        throw Error(ErrorKind::kUnsupported, path, std::nullopt,
                    std::string("extent type ") + extent_kind_name(e.kind) + " ('" + e.file +
                        "') is not supported");
    }
    add_part(parts, pos, std::move(r), e, path);
  }
  std::string sub = d.create_type;
  return std::make_shared<VmdkDevice>(file, std::move(d), sub, std::move(parts), std::move(extra));
}

}  // namespace vdisk::vmdk
