// qcow2 consistency check (docs/interop/qcow2.rst, "Host cluster
// management"): every host cluster's refcount must equal the number of
// references to it from the header, the L1/L2 tables (active and of each
// snapshot), the refcount structures and the snapshot table. A cluster
// referenced more often than its refcount says is an error (a write through
// one reference would change what another shows); one with a refcount that
// nothing references is a leak. Also: tables inside the file and
// cluster-aligned, COPIED flags (refcount exactly 1), the corrupt flag.
#include "formats/qcow2/qcow2_check.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "formats/core/check.h"
#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/file.h"
#include "formats/core/format.h"
#include "formats/qcow2/qcow2_layout.h"

namespace vdisk::qcow2 {

namespace {

// Host clusters counted at most; beyond it (a 16 TiB file of 512-byte
// clusters) the check refuses rather than allocate gigabytes.
constexpr uint64_t kMaxCheckedClusters = uint64_t{1} << 28;

class Checker {
 public:
  Checker(const File& f, const Header& h, CheckReport& r)
      : f_(f), h_(h), r_(r), cs_(h.cluster_size()), fsize_(f.size()) {
    clusters_ = (fsize_ + cs_ - 1) / cs_;
    if (clusters_ > kMaxCheckedClusters) {
      throw Error(ErrorKind::kUnsupported, f.path(), std::nullopt,
                  "file of " + std::to_string(clusters_) + " clusters is too large to check");
    }
    used_.assign(static_cast<size_t>(clusters_), 0);
    // Each L1 walk of a consistent image reads distinct L2 tables inside the
    // file; one that names the same table again and again (hostile input)
    // would make the walk quadratic, so the entries walked are bounded.
    budget_ = (uint64_t{h.nb_snapshots} + 1) * (fsize_ / 8 + h.l2_entries());
  }

  // Counts one reference to the `bytes` at `off` (every host cluster they
  // touch), from the field at `at` named `what`. False when out of the file.
  bool reference(uint64_t off, uint64_t bytes, uint64_t at, const std::string& what,
                 bool aligned = true) {
    if (bytes == 0) return true;
    if ((aligned && off % cs_) || off >= fsize_ || bytes > fsize_ - off) {
      r_.error(f_.path(), at, what,
               "at " + std::to_string(off) + " (" + std::to_string(bytes) + " bytes) is not " +
                   (aligned ? "a cluster-aligned range " : "") + "inside the " +
                   std::to_string(fsize_) + "-byte file");
      return false;
    }
    for (uint64_t c = off / cs_; c <= (off + bytes - 1) / cs_; ++c) {
      if (used_[c] < 0xffff) ++used_[c];
    }
    return true;
  }

  // An L1 table of `entries` at `off`: its L2 tables and their clusters.
  void l1_table(uint64_t off, uint64_t entries, const std::string& owner, bool active) {
    if (entries == 0) return;
    if (entries > fsize_ / 8 + 1 || !reference(off, entries * 8, kHdrL1Offset, owner + " L1 table"))
      return;
    std::vector<uint8_t> raw(static_cast<size_t>(entries * 8));
    f_.read_at(off, raw.data(), raw.size());
    for (uint64_t i = 0; i < entries; ++i) {
      const uint64_t at = off + 8 * i;
      const uint64_t e = load_be64(raw.data() + 8 * i);
      const uint64_t l2 = e & kL1OffsetMask;
      if (e & ~(kL1OffsetMask | kOflagCopied)) {
        r_.error(f_.path(), at, owner + " L1 entry " + std::to_string(i), "reserved bits set");
      }
      if (l2 == 0) continue;
      if (!reference(l2, cs_, at, owner + " L1 entry " + std::to_string(i) + " (L2 table)"))
        continue;
      if (active) copied_.push_back({at, l2, (e & kOflagCopied) != 0, "L1 entry"});
      l2_table(l2, owner, active);
    }
  }

  void l2_table(uint64_t off, const std::string& owner, bool active) {
    if (budget_ < h_.l2_entries()) {
      throw Error(ErrorKind::kCorrupt, f_.path(), off,
                  "L2 tables are named more often than the file can hold: not checked further");
    }
    budget_ -= h_.l2_entries();
    std::vector<uint8_t> t(static_cast<size_t>(cs_));
    f_.read_at(off, t.data(), t.size());
    const uint32_t step = h_.l2_entry_bytes();
    const bool external = h_.incompatible & kIncompatDataFile;
    for (uint64_t i = 0; i < h_.l2_entries(); ++i) {
      const uint64_t at = off + i * step;
      const uint64_t e = load_be64(t.data() + i * step);
      const std::string what = owner + " L2 entry at " + std::to_string(at);
      if (e & kOflagCompressed) {
        const uint32_t bits = compressed_offset_bits(h_.cluster_bits);
        const uint64_t host = e & ((uint64_t{1} << bits) - 1);
        const uint64_t sectors = ((e & ~kOflagCompressed & ~kOflagCopied) >> bits) + 1;
        // "Compressed Clusters Descriptor": the last sector may run past
        // the end of the file (QEMU does not pad it).
        const uint64_t bytes = std::min(sectors * kCompressedSector - host % kCompressedSector,
                                        host < fsize_ ? fsize_ - host : 0);
        if (e & kOflagCopied) r_.error(f_.path(), at, what, "compressed cluster marked COPIED");
        reference(host, bytes == 0 ? 1 : bytes, at, what + " (compressed data)", false);
        continue;
      }
      const uint64_t host = e & kL2OffsetMask;
      if (e & ~(kL2OffsetMask | kOflagCopied | kOflagZero)) {
        r_.error(f_.path(), at, what, "reserved bits set");
      }
      if (host == 0 || external) continue;
      if (!reference(host, cs_, at, what + " (data cluster)")) continue;
      if (active) copied_.push_back({at, host, (e & kOflagCopied) != 0, "L2 entry"});
    }
  }

  void refcounts() {
    const uint64_t rt_bytes = uint64_t{h_.refcount_table_clusters} * cs_;
    if (!reference(h_.refcount_table_offset, rt_bytes, kHdrRefcountOffset, "refcount table")) {
      throw Error(ErrorKind::kCorrupt, f_.path(), kHdrRefcountOffset,
                  "the refcount table is not inside the file: nothing can be checked");
    }
    std::vector<uint8_t> rt(static_cast<size_t>(rt_bytes));
    f_.read_at(h_.refcount_table_offset, rt.data(), rt.size());
    const uint32_t order = h_.refcount_order;
    const uint64_t per_block = cs_ * 8 >> order;
    stored_.assign(static_cast<size_t>(clusters_), 0);
    stored_at_.assign(static_cast<size_t>(clusters_), 0);
    std::vector<uint8_t> block(static_cast<size_t>(cs_));
    for (uint64_t i = 0; i < rt_bytes / 8; ++i) {
      const uint64_t at = h_.refcount_table_offset + 8 * i;
      const uint64_t e = load_be64(rt.data() + 8 * i);
      const uint64_t off = e & kRefcountTableOffsetMask;
      if (e & ~kRefcountTableOffsetMask)
        r_.error(f_.path(), at, "refcount table entry " + std::to_string(i), "reserved bits set");
      if (off == 0) continue;
      if (!reference(off, cs_, at, "refcount table entry " + std::to_string(i) + " (block)"))
        continue;
      f_.read_at(off, block.data(), block.size());
      for (uint64_t k = 0; k < per_block; ++k) {
        const uint64_t c = i * per_block + k;
        if (c >= clusters_) break;
        stored_[c] = load_refcount(block.data(), k, order);
        stored_at_[c] = off + (k << order) / 8;
      }
    }
  }

  void snapshots() {
    if (h_.nb_snapshots == 0) return;
    if (h_.nb_snapshots > kMaxSnapshots || h_.snapshots_offset % cs_ ||
        h_.snapshots_offset >= fsize_) {
      r_.error(f_.path(), kHdrSnapshotsOffset, "snapshot table",
               std::to_string(h_.nb_snapshots) + " snapshots at " +
                   std::to_string(h_.snapshots_offset) + ": not a table inside the file");
      return;
    }
    uint64_t pos = h_.snapshots_offset;
    for (uint32_t i = 0; i < h_.nb_snapshots; ++i) {
      uint8_t e[kSnFixedSize];
      if (pos + kSnFixedSize > fsize_) {
        r_.error(f_.path(), pos, "snapshot table", "runs past the end of the file");
        return;
      }
      f_.read_at(pos, e, sizeof e);
      const uint64_t l1 = load_be64(e + kSnL1Offset);
      const uint32_t l1_size = load_be32(e + kSnL1Size);
      const uint64_t len = kSnFixedSize + uint64_t{load_be32(e + kSnExtraSize)} +
                           load_be16(e + kSnIdLength) + load_be16(e + kSnNameLength);
      snapshot_l1_.push_back({l1, l1_size});
      pos += (len + 7) / 8 * 8;
    }
    reference(h_.snapshots_offset, pos - h_.snapshots_offset, kHdrSnapshotsOffset,
              "snapshot table");
    for (size_t i = 0; i < snapshot_l1_.size(); ++i) {
      l1_table(snapshot_l1_[i].first, snapshot_l1_[i].second, "snapshot " + std::to_string(i + 1),
               false);
    }
  }

  void compare() {
    uint64_t leaked = 0;
    for (uint64_t c = 0; c < clusters_; ++c) {
      const uint64_t want = used_[c];
      const uint64_t have = stored_[c];
      if (want == have) continue;
      const std::string where = "refcount of cluster " + std::to_string(c) + " (host offset " +
                                std::to_string(c * cs_) + ")";
      if (want == 0) {
        r_.leak(f_.path(), stored_at_[c], where,
                "leaked: refcount " + std::to_string(have) + " but nothing references it", cs_);
        ++leaked;
      } else if (have < want) {
        r_.error(f_.path(), stored_at_[c], where,
                 "refcount " + std::to_string(have) + " but referenced " + std::to_string(want) +
                     " times" + (have == 0 ? " (free space in use)" : " (shared storage)"));
      } else {
        r_.error(f_.path(), stored_at_[c], where,
                 "refcount " + std::to_string(have) + " but referenced " + std::to_string(want) +
                     " times");
      }
    }
    for (const Copied& c : copied_) {
      const uint64_t rc = stored_[c.host / cs_];
      if ((rc == 1) != c.flag) {
        r_.error(f_.path(), c.at, c.what,
                 std::string("COPIED flag ") + (c.flag ? "set" : "clear") + " but refcount is " +
                     std::to_string(rc));
      }
    }
    r_.note(std::to_string(clusters_) + " host clusters of " + std::to_string(cs_) + " bytes");
  }

 private:
  struct Copied {
    uint64_t at, host;
    bool flag;
    const char* what;
  };
  const File& f_;
  const Header& h_;
  CheckReport& r_;
  uint64_t cs_, fsize_, clusters_ = 0, budget_ = 0;
  std::vector<uint16_t> used_;
  std::vector<uint64_t> stored_, stored_at_;
  std::vector<Copied> copied_;
  std::vector<std::pair<uint64_t, uint32_t>> snapshot_l1_;
};

}  // namespace

void check_qcow2(std::shared_ptr<const File> file, const OpenOptions&, CheckReport& report) {
  const std::string& path = file->path();
  uint8_t head[kHeaderV3Length] = {};
  const size_t got = file->read_some(0, head, sizeof head);
  if (got < kHeaderV2Length || std::memcmp(head, kMagic, 4) != 0)
    throw Error(ErrorKind::kNotThisFormat, path, 0, "no qcow2 header");
  const Header h = decode_header(head, got);
  if (h.version != 2 && h.version != 3)
    throw Error(ErrorKind::kUnsupported, path, kHdrVersion,
                "qcow version " + std::to_string(h.version) + " is not checked");
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    throw Error(ErrorKind::kCorrupt, path, kHdrClusterBits,
                "cluster_bits " + std::to_string(h.cluster_bits) + " is outside 9-21");
  if (h.refcount_order > 6)
    throw Error(ErrorKind::kCorrupt, path, kHdrRefcountOrder,
                "refcount_order " + std::to_string(h.refcount_order) + " is above 6");
  if (h.incompatible & kIncompatCorrupt)
    report.error(path, kHdrIncompatible, "header",
                 "QEMU marked the image corrupt (incompatible feature bit 1)");
  if (h.incompatible & kIncompatDirty)
    report.error(path, kHdrIncompatible, "header",
                 "dirty flag set: the refcounts may be stale (lazy refcounts not written back)");
  if (h.autoclear & kAutoclearBitmaps)
    report.note("persistent bitmaps present: their clusters are not counted");

  Checker c(*file, h, report);
  c.reference(0, h.cluster_size(), 0, "header");
  const uint64_t l2_span = h.l2_entries() * h.cluster_size();
  if (uint64_t{h.l1_size} < (h.size + l2_span - 1) / l2_span) {
    report.error(path, kHdrL1Size, "header",
                 "L1 table of " + std::to_string(h.l1_size) + " entries is too small for " +
                     std::to_string(h.size) + " bytes");
  }
  c.refcounts();
  c.l1_table(h.l1_table_offset, h.l1_size, "active", true);
  c.snapshots();
  c.compare();
}

}  // namespace vdisk::qcow2
