#include "formats/qcow2/qcow2_writer.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

#include "formats/core/block_device.h"
#include "formats/core/cluster_feed.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/ordered_pool.h"
#include "formats/core/single_file_writer.h"
#include "formats/qcow2/qcow2_codec.h"
#include "formats/qcow2/qcow2_layout.h"

namespace vdisk::qcow2 {

std::vector<OptionSpec> create_options() {
  return {
      {"compat",
       OptionType::kEnum,
       "1.1",
       "1.1 (version 3) or 0.10 (version 2; also v3/v2)",
       {"1.1", "0.10", "v3", "v2"}},
      {"cluster_size", OptionType::kSize, "64K", "cluster size: a power of two, 512 to 2M", {}},
      {"compression",
       OptionType::kEnum,
       "none",
       "compress data clusters: zlib (deflate, as qemu-img -c) or zstd (version 3); needs a "
       "file, not standard output",
       {"none", "zlib", "zstd"}},
      {"preallocation",
       OptionType::kEnum,
       "off",
       "off; metadata: every cluster allocated, unwritten ones left as host holes; full: "
       "written with zeros",
       {"off", "metadata", "full"}},
      {"backing_file",
       OptionType::kString,
       "",
       "backing image, as the child records it (relative to the output's folder): only "
       "clusters that differ from it are stored",
       {}},
      {"backing_fmt",
       OptionType::kString,
       "",
       "format of backing_file in QEMU's names (default: the format vdisk reads it as)",
       {}},
      {"extended_l2",
       OptionType::kBool,
       "off",
       "extended L2 entries, 32 subclusters per cluster (version 3, clusters of 16K or more)",
       {}},
      {"refcount_bits",
       OptionType::kInt,
       "16",
       "refcount width: 1, 2, 4, 8, 16, 32 or 64 (version 2: 16 only)",
       {}},
  };
}

namespace {

constexpr uint64_t kNone = ~uint64_t{0};

enum class Prealloc { kOff, kMetadata, kFull };

// Everything the writers derive from the request.
struct Params {
  std::string path;
  uint32_t version = 3;
  uint32_t cluster_bits = 16;
  uint64_t cs = 65536;
  uint32_t refcount_order = 4;
  bool compress = false;
  uint8_t compression_type = kCompressionDeflate;
  Prealloc prealloc = Prealloc::kOff;
  bool extended_l2 = false;
  std::string backing_file, backing_fmt;
  uint64_t size = 0;
  uint64_t l2_entries = 0;  // per table
  uint32_t entry_bytes = 8;
  uint64_t clusters = 0;  // guest clusters
  uint64_t l1_size = 0;
  uint64_t l1_clusters = 0;
  uint64_t refcounts_per_block = 0;
  std::vector<std::string> notes;  // for the user (size rounding)
};

[[noreturn]] void refuse(const std::string& path, const std::string& msg) {
  throw Error(ErrorKind::kInvalidArgument, path, std::nullopt, msg);
}

// QEMU's name for a format vdisk names differently.
std::string qemu_format_name(const std::string& ours) {
  return ours == "vhd" ? "vpc" : ours;
}

Params make_params(const CreateRequest& req, uint64_t size) {
  Params p;
  p.path = req.path;
  const Options& o = req.options;
  const std::string compat = o.get_string("compat");
  p.version = compat == "0.10" || compat == "v2" ? 2 : 3;
  p.cs = o.get_size("cluster_size");
  if (p.cs < 512 || p.cs > (2u << 20) || (p.cs & (p.cs - 1))) {
    refuse(p.path, "qcow2 option cluster_size=" + std::to_string(p.cs) +
                       " is not a power of two from 512 to 2M");
  }
  p.cluster_bits = kMinClusterBits;
  while ((uint64_t{1} << p.cluster_bits) < p.cs) ++p.cluster_bits;
  const int64_t bits = o.get_int("refcount_bits");
  bool ok = false;
  for (uint32_t order = 0; order <= 6; ++order) {
    if (bits == (int64_t{1} << order)) p.refcount_order = order, ok = true;
  }
  if (!ok)
    refuse(p.path, "qcow2 option refcount_bits=" + std::to_string(bits) +
                       " is not 1, 2, 4, 8, 16, 32 or 64");
  if (p.version == 2 && bits != 16)
    refuse(p.path, "qcow2 compat=0.10 (version 2) has 16-bit refcounts only");
  const std::string comp = o.get_string("compression");
  p.compress = comp != "none";
  if (comp == "zstd") {
    if (p.version < 3) refuse(p.path, "qcow2 compression=zstd needs compat=1.1 (version 3)");
    p.compression_type = kCompressionZstd;
  }
  const std::string pre = o.get_string("preallocation");
  p.prealloc = pre == "metadata" ? Prealloc::kMetadata
               : pre == "full"   ? Prealloc::kFull
                                 : Prealloc::kOff;
  p.extended_l2 = o.get_bool("extended_l2");
  if (p.extended_l2) {
    if (p.version < 3) refuse(p.path, "qcow2 extended_l2 needs compat=1.1 (version 3)");
    if (p.cluster_bits < kMinExtendedL2ClusterBits)
      refuse(p.path, "qcow2 extended_l2 needs cluster_size 16K or larger");
  }
  p.backing_file = o.get_string("backing_file");
  p.backing_fmt = o.get_string("backing_fmt");
  if (p.backing_file.size() > kMaxBackingNameSize)
    refuse(p.path, "qcow2 backing_file name is longer than 1023 bytes");
  if (p.backing_file.empty() && !p.backing_fmt.empty())
    refuse(p.path, "qcow2 option backing_fmt needs backing_file");
  if (p.compress && p.prealloc != Prealloc::kOff)
    refuse(p.path, "qcow2 compression and preallocation cannot be combined");
  if (!p.backing_file.empty() && p.prealloc != Prealloc::kOff)
    refuse(p.path, "qcow2 preallocation cannot be combined with a backing file");
  p.size = size;
  p.entry_bytes = p.extended_l2 ? 16 : 8;
  p.l2_entries = p.cs / p.entry_bytes;
  p.clusters = div_round_up(size, p.cs);
  p.l1_size = div_round_up(p.clusters, p.l2_entries);
  if (p.l1_size * 8 > kMaxL1Bytes) {
    refuse(p.path, "a qcow2 image of " + std::to_string(size) + " bytes with " +
                       std::to_string(p.cs) + "-byte clusters needs an L1 table of " +
                       std::to_string(p.l1_size * 8) +
                       " bytes, beyond QEMU's 32 MiB limit; use a larger cluster_size");
  }
  p.l1_clusters = std::max<uint64_t>(1, div_round_up(p.l1_size * 8, p.cs));
  p.refcounts_per_block = p.cs * 8 >> p.refcount_order;
  return p;
}

// Cluster 0: the header, its extensions (backing format, feature names) and
// the backing file name after them ("Header extensions").
std::vector<uint8_t> header_cluster(const Params& p, uint64_t l1_off, uint64_t rt_off,
                                    uint64_t rt_clusters) {
  Header h;
  h.version = p.version;
  h.cluster_bits = p.cluster_bits;
  h.size = p.size;
  h.l1_size = static_cast<uint32_t>(p.l1_size);
  h.l1_table_offset = l1_off;
  h.refcount_table_offset = rt_off;
  h.refcount_table_clusters = static_cast<uint32_t>(rt_clusters);
  if (p.version >= 3) {
    h.header_length = kHeaderV3Length;
    h.refcount_order = p.refcount_order;
    h.compression_type = p.compression_type;
    if (p.extended_l2) h.incompatible |= kIncompatExtendedL2;
    if (p.compression_type != kCompressionDeflate) h.incompatible |= kIncompatCompression;
  }
  std::vector<uint8_t> ext;
  if (!p.backing_fmt.empty())
    append_extension(ext, kExtBackingFormat, p.backing_fmt.data(), p.backing_fmt.size());
  std::vector<uint8_t> names;
  if (p.version >= 3) {
    for (const FeatureName& f : known_feature_names()) {
      uint8_t e[kFeatureNameEntry] = {f.type, f.bit};
      std::memcpy(e + 2, f.name, std::strlen(f.name));
      names.insert(names.end(), e, e + sizeof e);
    }
  }
  // The feature name table is a courtesy: left out when a small cluster
  // leaves no room for it and the backing file name.
  const uint64_t room = h.header_length + ext.size() + 8 + names.size() + 8 + p.backing_file.size();
  if (!names.empty() && room <= p.cs)
    append_extension(ext, kExtFeatureNames, names.data(), names.size());
  append_extension(ext, kExtEnd, nullptr, 0);
  const uint64_t name_at = h.header_length + ext.size();
  if (name_at + p.backing_file.size() > p.cs) {
    refuse(p.path, "the backing file name does not fit in the " + std::to_string(p.cs) +
                       "-byte header cluster; use a larger cluster_size");
  }
  if (!p.backing_file.empty()) {
    h.backing_file_offset = name_at;
    h.backing_file_size = static_cast<uint32_t>(p.backing_file.size());
  }
  std::vector<uint8_t> c(static_cast<size_t>(p.cs), 0);
  encode_header(h, c.data());
  std::memcpy(c.data() + h.header_length, ext.data(), ext.size());
  std::memcpy(c.data() + name_at, p.backing_file.data(), p.backing_file.size());
  return c;
}

// What one guest cluster becomes.
struct Decision {
  enum Kind : uint8_t {
    kUnalloc,   // not stored: reads as zeros, or as the backing file
    kData,      // a host cluster with the guest bytes (extended L2: `bitmap` says which)
    kZeroFlag,  // v3: reads as zeros whatever the backing file holds
    kZeroData,  // a host cluster of zeros (v2 over a backing file; preallocation)
  };
  Kind kind = kUnalloc;
  uint64_t bitmap = 0;  // extended L2: allocated (bits 0-31) and zero (32-63) subclusters
};

// Decides what each guest cluster becomes, comparing with the backing image
// when there is one: a cluster equal to what the backing file shows is not
// stored; zeros over backing data are stored as zeros.
class Classifier {
 public:
  Classifier(const Params& p, BlockDevicePtr backing)
      : p_(p), backing_(std::move(backing)), buf_(static_cast<size_t>(p.cs)) {}

  // `data`: the cluster's guest bytes (p.cs of them, zero-padded past the
  // end), or null for zeros.
  Decision decide(uint64_t g, const uint8_t* data) {
    const size_t cs = static_cast<size_t>(p_.cs);
    const bool src_zero = !data || is_zero(data, cs);
    if (!backing_) {
      if (!src_zero) return {Decision::kData, all_subclusters()};
      if (p_.prealloc != Prealloc::kOff) return {Decision::kZeroData, all_subclusters()};
      return {};
    }
    const uint8_t* b = backing_cluster(g);
    if (!p_.extended_l2) {
      if (src_zero) {
        if (!b) return {};
        return {p_.version >= 3 ? Decision::kZeroFlag : Decision::kZeroData, 0};
      }
      if (b && std::memcmp(data, b, cs) == 0) return {};
      return {Decision::kData, 0};
    }
    const size_t sub = cs / kSubclusters;
    uint64_t alloc = 0, zeros = 0;
    for (uint32_t s = 0; s < kSubclusters; ++s) {
      const uint8_t* ds = data ? data + s * sub : nullptr;
      const uint8_t* bs = b ? b + s * sub : nullptr;
      const bool sz = src_zero || is_zero(ds, sub);
      const bool bz = !bs || is_zero(bs, sub);
      if (sz && bz) continue;
      if (!sz && bs && std::memcmp(ds, bs, sub) == 0) continue;
      if (sz)
        zeros |= uint64_t{1} << s;
      else
        alloc |= uint64_t{1} << s;
    }
    const uint64_t bitmap = alloc | zeros << 32;
    if (alloc) return {Decision::kData, bitmap};
    if (zeros) return {Decision::kZeroFlag, bitmap};
    return {};
  }

  // Calls fn(g, decision) for every cluster of [from, to) whose source is
  // all zeros and that must be stored anyway (over backing data, or
  // preallocated), in order. Backing ranges with no data are skipped by
  // block status, without reading.
  template <class Fn>
  void zeros(uint64_t from, uint64_t to, Fn&& fn) {
    if (!backing_) {
      if (p_.prealloc == Prealloc::kOff) return;
      for (uint64_t g = from; g < to; ++g) fn(g, Decision{Decision::kZeroData, all_subclusters()});
      return;
    }
    const uint64_t bsize = backing_->size();
    uint64_t g = from;
    while (g < to && g * p_.cs < bsize) {
      const uint64_t off = g * p_.cs;
      Extent e = backing_->block_status(off, std::min(to * p_.cs, bsize) - off);
      if (e.type != ExtentType::kData) {
        const uint64_t skip = (off + e.length) / p_.cs - g;
        if (skip > 0 || off + e.length >= bsize) {
          g += std::max<uint64_t>(skip, 1);
          continue;
        }
      }
      Decision d = decide(g, nullptr);
      if (d.kind != Decision::kUnalloc) fn(g, d);
      ++g;
    }
  }

 private:
  uint64_t all_subclusters() const { return p_.extended_l2 ? 0xffffffffull : 0; }
  // The backing image's bytes of guest cluster `g`, or null where they are
  // all zeros (or past its end).
  const uint8_t* backing_cluster(uint64_t g) {
    const uint64_t off = g * p_.cs, bsize = backing_->size();
    if (off >= bsize) return nullptr;
    const size_t n = static_cast<size_t>(std::min(p_.cs, bsize - off));
    Extent e = backing_->block_status(off, n);
    if (e.type != ExtentType::kData && e.length >= n) return nullptr;
    backing_->read(off, buf_.data(), n);
    std::memset(buf_.data() + n, 0, buf_.size() - n);
    return is_zero(buf_.data(), buf_.size()) ? nullptr : buf_.data();
  }

  const Params& p_;
  BlockDevicePtr backing_;
  std::vector<uint8_t> buf_;
};

// The L2 entry words of a decision for a cluster at host offset `host`.
std::pair<uint64_t, uint64_t> l2_words(const Decision& d, uint64_t host) {
  switch (d.kind) {
    case Decision::kData:
    case Decision::kZeroData:
      return {host | kOflagCopied, d.bitmap};
    case Decision::kZeroFlag:
      return {d.bitmap ? 0 : kOflagZero, d.bitmap};
    default:
      return {0, 0};
  }
}

// Host cluster allocation for the file writer, with exact refcounts. Hands
// out clusters (and bytes, for compressed data) in increasing order only.
// The refcount block of each span of refcounts_per_block clusters is placed
// when the first cluster of that span is handed out (just before it) and
// written once the allocation has moved past the span, so only the open
// spans' blocks are in memory. The refcount table is placed at the end.
class HostAllocator {
 public:
  HostAllocator(OutputFile& out, const Params& p) : out_(out), p_(p), max_ref_(refmax(p)) {
    // Cluster 0 is the header; span 0's block follows it.
    place_block(0, p_.cs);
    ref(0);
    ref(1);
    next_ = 2 * p_.cs;
  }

  uint64_t end() const { return next_; }

  // `n` contiguous clusters, each referenced once.
  uint64_t clusters(uint64_t n) {
    for (;;) {
      const uint64_t pos = align_up(next_);
      const uint64_t c0 = pos / p_.cs, c1 = c0 + n - 1;
      const uint64_t missing = first_missing(c0, c1);
      if (missing == kNone) {
        for (uint64_t c = c0; c <= c1; ++c) ref(c);
        next_ = pos + n * p_.cs;
        close_spans();
        return pos;
      }
      place_block(missing, pos);
      ref(c0);
      next_ = pos + p_.cs;
    }
  }

  // `len` bytes (at most one cluster) for compressed data, packed after the
  // previous ones; every host cluster the data touches is referenced once
  // more ("Compressed Clusters Descriptor": each compressed cluster counts
  // for each host cluster its sectors occupy).
  uint64_t bytes(uint64_t len) {
    for (;;) {
      const uint64_t start = next_;
      const uint64_t c0 = start / p_.cs, c1 = (start + len - 1) / p_.cs;
      const bool shared = start % p_.cs != 0;
      if (shared && refcount(c0) >= max_ref_) {  // narrow refcounts: start a fresh cluster
        next_ = align_up(next_);
        continue;
      }
      const uint64_t first_new = shared ? c0 + 1 : c0;
      const uint64_t missing = first_new <= c1 ? first_missing(first_new, c1) : kNone;
      if (missing != kNone) {
        const uint64_t pos = align_up(next_);
        place_block(missing, pos);
        ref(pos / p_.cs);
        next_ = pos + p_.cs;
        continue;
      }
      for (uint64_t c = c0; c <= c1; ++c) ref(c);
      next_ = start + len;
      close_spans();
      return start;
    }
  }

  // Places the refcount table at the end, writes it and every block still
  // open. Returns {table offset, table clusters}.
  std::pair<uint64_t, uint64_t> finish() {
    uint64_t tc = 1;
    for (;;) {
      // Room for the table and one more block it may need.
      const uint64_t end_clusters = align_up(next_) / p_.cs + tc + 1;
      const uint64_t need =
          div_round_up(div_round_up(end_clusters, p_.refcounts_per_block) * 8, p_.cs);
      if (need <= tc) break;
      tc = need;
    }
    if (tc * p_.cs > kMaxRefcountTableBytes) {
      throw Error(ErrorKind::kUnsupported, p_.path, std::nullopt,
                  "the refcount table would exceed QEMU's 8 MiB limit; use a larger cluster_size");
    }
    const uint64_t rt = clusters(tc);
    std::vector<uint8_t> table(static_cast<size_t>(tc * p_.cs), 0);
    for (size_t s = 0; s < block_pos_.size(); ++s) store_be64(table.data() + 8 * s, block_pos_[s]);
    out_.write_at(rt, table.data(), table.size());
    for (auto& [span, b] : open_) out_.write_at(b.pos, b.bytes.data(), b.bytes.size());
    open_.clear();
    next_ = align_up(next_);
    return {rt, tc};
  }

 private:
  struct Block {
    uint64_t pos;
    std::vector<uint8_t> bytes;
  };
  static uint64_t refmax(const Params& p) {
    return p.refcount_order >= 6 ? ~uint64_t{0} : (uint64_t{1} << (1u << p.refcount_order)) - 1;
  }
  uint64_t align_up(uint64_t v) const { return div_round_up(v, p_.cs) * p_.cs; }
  bool has_block(uint64_t span) const { return span < block_pos_.size() && block_pos_[span] != 0; }
  uint64_t first_missing(uint64_t c0, uint64_t c1) const {
    for (uint64_t s = c0 / p_.refcounts_per_block; s <= c1 / p_.refcounts_per_block; ++s)
      if (!has_block(s)) return s;
    return kNone;
  }
  void place_block(uint64_t span, uint64_t pos) {
    if (block_pos_.size() <= span) block_pos_.resize(span + 1, 0);
    block_pos_[span] = pos;
    open_[span] = Block{pos, std::vector<uint8_t>(static_cast<size_t>(p_.cs), 0)};
  }
  Block& block_of(uint64_t c) {
    auto it = open_.find(c / p_.refcounts_per_block);
    if (it == open_.end()) {
      throw Error(ErrorKind::kInvalidArgument, p_.path, c * p_.cs,
                  "internal error: no open refcount block for host cluster " + std::to_string(c));
    }
    return it->second;
  }
  uint64_t refcount(uint64_t c) {
    return load_refcount(block_of(c).bytes.data(), c % p_.refcounts_per_block, p_.refcount_order);
  }
  void ref(uint64_t c) {
    Block& b = block_of(c);
    const uint64_t i = c % p_.refcounts_per_block;
    const uint64_t v = load_refcount(b.bytes.data(), i, p_.refcount_order);
    store_refcount(b.bytes.data(), i, p_.refcount_order, v + 1);
  }
  // Writes the blocks of spans the allocation has moved past.
  void close_spans() {
    const uint64_t span_bytes = p_.refcounts_per_block * p_.cs;
    while (!open_.empty() && (open_.begin()->first + 1) * span_bytes <= next_) {
      Block& b = open_.begin()->second;
      out_.write_at(b.pos, b.bytes.data(), b.bytes.size());
      open_.erase(open_.begin());
    }
  }

  OutputFile& out_;
  const Params& p_;
  uint64_t max_ref_;
  uint64_t next_ = 0;
  std::map<uint64_t, Block> open_;
  std::vector<uint64_t> block_pos_;  // by span; 0: none
};

// What both writers share: the parameters, whole clusters from the guest
// stream, the write contract. put() receives `count` whole clusters from
// guest cluster `g` on, in increasing order.
class ClusterWriter : public SingleFileWriter {
 public:
  uint64_t virtual_size() const override { return p_.size; }
  void write(uint64_t offset, const void* buf, size_t len) override {
    check_write_range(offset, len);
    feed_.write(offset, static_cast<const uint8_t*>(buf), len,
                [&](uint64_t g, const uint8_t* d, size_t count) { put(g, d, count); });
  }
  // Ranges never written are zeros: nothing to do until later clusters come.
  void write_zeroes(uint64_t offset, uint64_t len) override { check_write_range(offset, len); }

 protected:
  explicit ClusterWriter(Params p) : p_(std::move(p)), feed_(p_.cs) {
    for (const std::string& n : p_.notes) add_note(n);
  }
  virtual void put(uint64_t g, const uint8_t* d, size_t count) = 0;
  // Hands on the last, partial cluster.
  void flush_feed() {
    feed_.flush([&](uint64_t g, const uint8_t* d, size_t count) { put(g, d, count); });
  }

  Params p_;

 private:
  ClusterFeed feed_;
};

// ---- a file: one pass ------------------------------------------------------------

// One cluster on its way through the compression pool.
struct CompressJob {
  uint64_t tag = 0;
  std::vector<uint8_t> in, out;
};

class FileWriter final : public ClusterWriter {
 public:
  FileWriter(const CreateRequest& req, Params p, BlockDevicePtr backing)
      : ClusterWriter(std::move(p)), cls_(p_, std::move(backing)) {
    l2_.assign(static_cast<size_t>(p_.cs), 0);
    l1_buf_.assign(static_cast<size_t>(p_.cs), 0);
    open_output(req);
    alloc_ = std::make_unique<HostAllocator>(*out_, p_);
    l1_off_ = alloc_->clusters(p_.l1_clusters);
    if (p_.compress) {
      const uint8_t type = p_.compression_type;
      pool_ = std::make_unique<OrderedPool<CompressJob>>(0, 0, [type] {
        std::shared_ptr<ClusterCompressor> c = make_compressor(type);
        return [c](CompressJob& j) {
          // An empty input is a marker keeping a zero or unallocated
          // cluster in order among the compressed ones.
          if (j.in.empty())
            j.out.clear();
          else
            c->compress(j.in.data(), j.in.size(), j.out);
        };
      });
    }
  }
  ~FileWriter() override { pool_.reset(); }

 private:
  // Compressed clusters' results, in cluster order, to deliver().
  std::function<void(const CompressJob&)> delivery() {
    return [this](const CompressJob& j) { deliver(j.tag, j.in, j.out); };
  }

 private:
  uint64_t finish_image() override {
    flush_feed();
    gap(p_.clusters);
    if (pool_) pool_->drain(delivery());
    flush_run();
    flush_append();
    close_table();
    flush_l1();
    auto [rt, tc] = alloc_->finish();
    std::vector<uint8_t> h = header_cluster(p_, l1_off_, rt, tc);
    out_->write_at(0, h.data(), h.size());
    return alloc_->end();
  }

  // Whole clusters from the feed: first the zero gap before them.
  void put(uint64_t g, const uint8_t* d, size_t count) override {
    gap(g);
    for (size_t i = 0; i < count; ++i) {
      const uint8_t* c = d + i * p_.cs;
      apply(g + i, cls_.decide(g + i, c), c);
    }
    next_cluster_ = g + count;
    flush_run();
  }

  // Clusters [next_cluster_, to) got no write: zeros in the source.
  void gap(uint64_t to) {
    if (to <= next_cluster_) return;
    flush_run();
    cls_.zeros(next_cluster_, to, [&](uint64_t g, const Decision& d) { apply(g, d, nullptr); });
    next_cluster_ = to;
  }

  void apply(uint64_t g, const Decision& d, const uint8_t* data) {
    if (d.kind == Decision::kUnalloc) return;
    if (pool_) {
      // In order with the compressed clusters around it.
      decisions_.push_back(d);
      std::unique_ptr<CompressJob> j = pool_->get();
      j->tag = g;
      if (d.kind == Decision::kData)
        j->in.assign(data, data + p_.cs);
      else
        j->in.clear();
      pool_->submit(std::move(j), delivery());
      return;
    }
    table_for(g);
    uint64_t host = 0;
    if (d.kind == Decision::kData || d.kind == Decision::kZeroData) {
      host = alloc_->clusters(1);
      if (d.kind == Decision::kData) {
        add_run(host, data);
      } else if (p_.prealloc == Prealloc::kFull) {
        flush_run();
        static const std::vector<uint8_t> zeros(2u << 20, 0);
        out_->write_at(host, zeros.data(), static_cast<size_t>(p_.cs));
      }
    }
    set_entry(g, l2_words(d, host));
  }

  // The compressed path's results, in guest order.
  void deliver(uint64_t g, const std::vector<uint8_t>& in, const std::vector<uint8_t>& out) {
    Decision d = decisions_.front();
    decisions_.pop_front();
    table_for(g);
    if (d.kind != Decision::kData) {
      uint64_t host = d.kind == Decision::kZeroData ? alloc_->clusters(1) : 0;
      set_entry(g, l2_words(d, host));
      return;
    }
    if (out.size() >= p_.cs) {
      // Incompressible: stored as a normal cluster (as QEMU does).
      const uint64_t host = alloc_->clusters(1);
      append(host, in.data(), in.size());
      set_entry(g, l2_words(Decision{Decision::kData, p_.extended_l2 ? 0xffffffffull : 0}, host));
      return;
    }
    const uint64_t off = alloc_->bytes(out.size());
    append(off, out.data(), out.size());
    const uint64_t sectors = (off + out.size() - 1) / kCompressedSector - off / kCompressedSector;
    set_entry(g, {kOflagCompressed | sectors << compressed_offset_bits(p_.cluster_bits) | off, 0});
  }

  // Uncompressed data: runs of clusters contiguous in the file and in the
  // caller's buffer go out in one write.
  void add_run(uint64_t host, const uint8_t* data) {
    if (run_len_ && host == run_host_ + run_len_ && data == run_src_ + run_len_ &&
        run_len_ < (8u << 20)) {
      run_len_ += p_.cs;
      return;
    }
    flush_run();
    run_host_ = host, run_src_ = data, run_len_ = p_.cs;
  }
  void flush_run() {
    if (!run_len_) return;
    out_->write_at(run_host_, run_src_, static_cast<size_t>(run_len_));
    run_len_ = 0;
  }
  // Compressed data: appended through a 1 MiB buffer.
  void append(uint64_t pos, const uint8_t* d, size_t n) {
    if (!abuf_.empty() && pos != abuf_pos_ + abuf_.size()) flush_append();
    if (abuf_.empty()) abuf_pos_ = pos;
    abuf_.insert(abuf_.end(), d, d + n);
    if (abuf_.size() >= (1u << 20)) flush_append();
  }
  void flush_append() {
    if (abuf_.empty()) return;
    out_->write_at(abuf_pos_, abuf_.data(), abuf_.size());
    abuf_.clear();
  }

  // The L2 table of guest cluster g is allocated before its first cluster.
  void table_for(uint64_t g) {
    const uint64_t t = g / p_.l2_entries;
    if (t == cur_table_) return;
    close_table();
    cur_table_ = t;
    l2_host_ = alloc_->clusters(1);
  }
  void set_entry(uint64_t g, std::pair<uint64_t, uint64_t> w) {
    uint8_t* e = l2_.data() + (g % p_.l2_entries) * p_.entry_bytes;
    store_be64(e, w.first);
    if (p_.extended_l2) store_be64(e + 8, w.second);
  }
  void close_table() {
    if (cur_table_ == kNone) return;
    out_->write_at(l2_host_, l2_.data(), l2_.size());
    std::fill(l2_.begin(), l2_.end(), 0);
    // L1 entries fill in increasing order: one L1 cluster in memory.
    const uint64_t per = p_.cs / 8;
    if (cur_table_ / per != l1_cluster_) {
      flush_l1();
      l1_cluster_ = cur_table_ / per;
    }
    store_be64(l1_buf_.data() + (cur_table_ % per) * 8, l2_host_ | kOflagCopied);
    l1_dirty_ = true;
    cur_table_ = kNone;
  }
  void flush_l1() {
    if (!l1_dirty_) return;
    out_->write_at(l1_off_ + l1_cluster_ * p_.cs, l1_buf_.data(), l1_buf_.size());
    std::fill(l1_buf_.begin(), l1_buf_.end(), 0);
    l1_dirty_ = false;
  }

  Classifier cls_;
  std::unique_ptr<HostAllocator> alloc_;
  uint64_t l1_off_ = 0;
  std::vector<uint8_t> l1_buf_;
  uint64_t l1_cluster_ = 0;
  bool l1_dirty_ = false;
  std::vector<uint8_t> l2_;
  uint64_t cur_table_ = kNone;
  uint64_t l2_host_ = 0;
  uint64_t next_cluster_ = 0;
  uint64_t run_host_ = 0, run_len_ = 0;
  const uint8_t* run_src_ = nullptr;
  std::vector<uint8_t> abuf_;
  uint64_t abuf_pos_ = 0;
  std::deque<Decision> decisions_;
  std::unique_ptr<OrderedPool<CompressJob>> pool_;  // last: its workers stop first
};

// ---- standard output: the layout planned first ------------------------------------

class StreamWriter final : public ClusterWriter {
 public:
  StreamWriter(const CreateRequest& req, Params p, BlockDevicePtr backing)
      : ClusterWriter(std::move(p)), has_backing_(backing != nullptr) {
    if (p_.compress) {
      refuse(p_.path,
             "compressed qcow2 cannot be written to standard output: the size of each "
             "compressed cluster is known only once it is compressed, after the tables that "
             "point to it would have to be written; write to a file");
    }
    if (p_.prealloc == Prealloc::kOff) {
      if (!req.source) {
        refuse(p_.path,
               "qcow2 to standard output plans its layout by reading the source once before "
               "the copy; a source on standard input cannot be read twice: write to a file");
      }
      plan(*req.source, Classifier(p_, std::move(backing)));
    } else {
      // Every cluster is allocated; zeros are written (a stream has no holes).
      for (uint64_t t = 0; t < p_.l1_size; ++t) {
        Table& tb = tables_[t];
        tb.kind.assign(static_cast<size_t>(p_.l2_entries), Decision::kUnalloc);
        const uint64_t n = std::min(p_.l2_entries, p_.clusters - t * p_.l2_entries);
        std::fill(tb.kind.begin(), tb.kind.begin() + n, Decision::kZeroData);
        if (p_.extended_l2) tb.bitmap.assign(static_cast<size_t>(p_.l2_entries), 0xffffffffull);
      }
    }
    layout();
    open_output(req);
    emit_metadata();
  }

 private:
  struct Table {
    std::vector<uint8_t> kind;     // Decision::Kind per entry
    std::vector<uint64_t> bitmap;  // extended L2 only
    uint64_t first_host = 0;       // index of its first allocated cluster among all
  };
  static bool allocated(uint8_t k) { return k == Decision::kData || k == Decision::kZeroData; }

  void plan(const BlockDevice& src, Classifier cls) {
    auto record = [&](uint64_t g, const Decision& d) {
      if (d.kind == Decision::kUnalloc) return;
      Table& t = tables_[g / p_.l2_entries];
      if (t.kind.empty()) {
        t.kind.assign(static_cast<size_t>(p_.l2_entries), Decision::kUnalloc);
        if (p_.extended_l2) t.bitmap.assign(static_cast<size_t>(p_.l2_entries), 0);
      }
      t.kind[g % p_.l2_entries] = d.kind;
      if (p_.extended_l2) t.bitmap[g % p_.l2_entries] = d.bitmap;
    };
    const uint64_t cs = p_.cs, size = src.size();
    const uint64_t chunk = std::max<uint64_t>(cs, 4u << 20) / cs;  // clusters per read
    std::vector<uint8_t> buf(static_cast<size_t>(chunk * cs));
    uint64_t next = 0, pos = 0;
    while (pos < size) {
      Extent e = src.block_status(pos, size - pos);
      if (e.type == ExtentType::kData) {
        const uint64_t c0 = std::max(next, pos / cs), c1 = div_round_up(pos + e.length, cs);
        cls.zeros(next, c0, record);
        for (uint64_t c = c0; c < c1; c += chunk) {
          const uint64_t n = std::min(chunk, c1 - c);
          const uint64_t bytes = std::min(n * cs, size - c * cs);
          src.read(c * cs, buf.data(), static_cast<size_t>(bytes));
          std::memset(buf.data() + bytes, 0, static_cast<size_t>(n * cs - bytes));
          for (uint64_t i = 0; i < n; ++i) record(c + i, cls.decide(c + i, buf.data() + i * cs));
        }
        next = std::max(next, c1);
      }
      pos += e.length;
    }
    cls.zeros(next, p_.clusters, record);
  }

  // qcow2-to-stdout's arrangement: header, refcount table, refcount blocks,
  // L1, L2 tables, data. Everything is referenced once.
  void layout() {
    uint64_t host = 0;
    for (auto& [t, tb] : tables_) {
      tb.first_host = host;
      for (uint8_t k : tb.kind) host += allocated(k);
    }
    data_clusters_ = host;
    const uint64_t a = 1 + p_.l1_clusters + tables_.size() + data_clusters_;
    uint64_t blocks = div_round_up(a, p_.refcounts_per_block), tc = 1;
    for (;;) {
      tc = div_round_up(blocks * 8, p_.cs);
      const uint64_t nb = div_round_up(a + blocks + tc, p_.refcounts_per_block);
      if (nb <= blocks) break;
      blocks = nb;
    }
    if (tc * p_.cs > kMaxRefcountTableBytes) {
      refuse(p_.path,
             "the refcount table would exceed QEMU's 8 MiB limit; use a larger cluster_size");
    }
    blocks_ = blocks;
    rt_clusters_ = tc;
    total_clusters_ = a + blocks + tc;
    rt_off_ = p_.cs;
    blocks_off_ = rt_off_ + tc * p_.cs;
    l1_off_ = blocks_off_ + blocks * p_.cs;
    l2_off_ = l1_off_ + p_.l1_clusters * p_.cs;
    data_off_ = l2_off_ + tables_.size() * p_.cs;
  }

  void emit_metadata() {
    const uint64_t cs = p_.cs;
    std::vector<uint8_t> c = header_cluster(p_, l1_off_, rt_off_, rt_clusters_);
    uint64_t pos = 0;
    auto put_cluster = [&] {
      out_->write_at(pos, c.data(), c.size());
      pos += cs;
      std::fill(c.begin(), c.end(), 0);
    };
    put_cluster();
    const uint64_t per = cs / 8;
    for (uint64_t i = 0; i < rt_clusters_; ++i) {
      for (uint64_t j = 0; j < per && i * per + j < blocks_; ++j)
        store_be64(c.data() + 8 * j, blocks_off_ + (i * per + j) * cs);
      put_cluster();
    }
    for (uint64_t b = 0; b < blocks_; ++b) {
      for (uint64_t j = 0; j < p_.refcounts_per_block; ++j) {
        if (b * p_.refcounts_per_block + j >= total_clusters_) break;
        store_refcount(c.data(), j, p_.refcount_order, 1);
      }
      put_cluster();
    }
    auto table = tables_.begin();
    uint64_t l2_index = 0;
    for (uint64_t i = 0; i < p_.l1_clusters; ++i) {
      for (uint64_t j = 0; j < per; ++j) {
        if (table == tables_.end() || table->first != i * per + j) continue;
        store_be64(c.data() + 8 * j, (l2_off_ + l2_index * cs) | kOflagCopied);
        ++table, ++l2_index;
      }
      put_cluster();
    }
    for (auto& [t, tb] : tables_) {
      uint64_t host = tb.first_host;
      for (uint64_t i = 0; i < p_.l2_entries; ++i) {
        const Decision d{static_cast<Decision::Kind>(tb.kind[i]),
                         p_.extended_l2 ? tb.bitmap[i] : 0};
        uint64_t off = 0;
        if (allocated(d.kind)) off = data_off_ + (host++) * cs;
        auto w = l2_words(d, off);
        store_be64(c.data() + i * p_.entry_bytes, w.first);
        if (p_.extended_l2) store_be64(c.data() + i * p_.entry_bytes + 8, w.second);
      }
      put_cluster();
    }
  }

  uint64_t finish_image() override {
    flush_feed();
    return total_clusters_ * p_.cs;
  }

  // Data in guest order: a planned cluster goes to its place; anything else
  // must be what the plan saw.
  void put(uint64_t g, const uint8_t* d, size_t count) override {
    for (size_t i = 0; i < count; ++i) {
      const uint8_t* c = d + i * p_.cs;
      const uint64_t gi = g + i;
      auto it = tables_.find(gi / p_.l2_entries);
      const uint8_t k =
          it == tables_.end() ? uint8_t{Decision::kUnalloc} : it->second.kind[gi % p_.l2_entries];
      const bool zero = is_zero(c, static_cast<size_t>(p_.cs));
      if (k == Decision::kData || (k == Decision::kZeroData && !zero)) {
        // (kZeroData with data: a preallocated cluster; zeros are the gap fill.)
        out_->write_at(data_off_ + host_index(it->second, gi) * p_.cs, c,
                       static_cast<size_t>(p_.cs));
      } else if (k != Decision::kZeroData && !has_backing_ && !zero) {
        throw Error(ErrorKind::kIo, p_.path, gi * p_.cs,
                    "the source changed since its layout was planned: guest cluster " +
                        std::to_string(gi) + " was all zeros then and holds data now");
      }
    }
  }

  // Index among all allocated clusters of guest cluster g (writes come in
  // increasing order: counted on from the previous one).
  uint64_t host_index(const Table& tb, uint64_t g) {
    const uint64_t i = g % p_.l2_entries;
    if (cursor_table_ != &tb || i < cursor_i_) {
      cursor_table_ = &tb;
      cursor_i_ = 0;
      cursor_host_ = tb.first_host;
    }
    for (; cursor_i_ < i; ++cursor_i_) cursor_host_ += allocated(tb.kind[cursor_i_]);
    return cursor_host_;
  }

  bool has_backing_;
  std::map<uint64_t, Table> tables_;
  uint64_t data_clusters_ = 0, blocks_ = 0, rt_clusters_ = 0, total_clusters_ = 0;
  uint64_t rt_off_ = 0, blocks_off_ = 0, l1_off_ = 0, l2_off_ = 0, data_off_ = 0;
  const Table* cursor_table_ = nullptr;
  uint64_t cursor_i_ = 0, cursor_host_ = 0;
};

}  // namespace

std::unique_ptr<ImageWriter> create_qcow2(const CreateRequest& req) {
  std::vector<std::string> notes;
  const uint64_t size = round_up_virtual_size(req.virtual_size, 512, req.allow_resize, req.path,
                                              "qcow2 holds whole 512-byte sectors", notes);
  Params p = make_params(req, size);
  p.notes = std::move(notes);
  BlockDevicePtr backing;
  if (!p.backing_file.empty()) {
    if (!req.open_image) refuse(req.path, "qcow2 backing_file: this caller cannot open images");
    const std::string dir = req.path == "-" ? "." : path_dirname(req.path);
    const std::string bpath =
        p.backing_file[0] == '/' ? p.backing_file : path_join(dir, p.backing_file);
    std::string ours = p.backing_fmt == "vpc" ? "vhd" : p.backing_fmt;
    backing = req.open_image(bpath, ours);
    if (p.backing_fmt.empty()) p.backing_fmt = qemu_format_name(backing->info().format);
  }
  std::unique_ptr<ImageWriter> w;
  if (req.path == "-")
    w = std::make_unique<StreamWriter>(req, std::move(p), std::move(backing));
  else
    w = std::make_unique<FileWriter>(req, std::move(p), std::move(backing));
  return w;
}

}  // namespace vdisk::qcow2
