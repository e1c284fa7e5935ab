#include "formats/qcow2/qcow2_inplace.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "formats/core/endian.h"
#include "formats/core/error.h"

namespace vdisk::qcow2 {

namespace {

// One table entry (refcount table, L1) written in place.
void write_be64(UpdateFile& file, uint64_t offset, uint64_t value) {
  uint8_t e[8];
  store_be64(e, value);
  file.write_at(offset, e, sizeof e);
}

}  // namespace

RefcountEditor::RefcountEditor(UpdateFile& file, const Header& h, uint64_t next_cluster)
    : file_(file), h_(h), next_(next_cluster) {
  const uint64_t bytes = uint64_t{h.refcount_table_clusters} * h.cluster_size();
  if (bytes == 0 || bytes > kMaxRefcountTableBytes)
    throw Error(ErrorKind::kCorrupt, file.path(), kHdrRefcountClusters,
                "refcount table of " + std::to_string(bytes) + " bytes");
  std::vector<uint8_t> raw(bytes);
  file.read_at(h.refcount_table_offset, raw.data(), raw.size());
  table_.resize(bytes / 8);
  for (size_t i = 0; i < table_.size(); ++i)
    table_[i] = load_be64(&raw[i * 8]) & kRefcountTableOffsetMask;
  per_block_ = h.cluster_size() * 8 / (uint64_t{1} << h.refcount_order);
}

uint64_t RefcountEditor::allocate(uint64_t n) {
  const uint64_t first = next_;
  next_ += n;
  for (uint64_t c = first; c < first + n; ++c) add(c, 1);
  return first * h_.cluster_size();
}

std::vector<uint8_t>& RefcountEditor::block(uint64_t bi) {
  if (bi >= table_.size())
    throw Error(ErrorKind::kUnsupported, file_.path(), h_.refcount_table_offset,
                "the refcount table (" + std::to_string(table_.size()) +
                    " entries) cannot describe host cluster " + std::to_string(bi * per_block_) +
                    " and beyond: growing the refcount table is not supported");
  auto it = blocks_.find(bi);
  if (it != blocks_.end()) return it->second;
  std::vector<uint8_t> b(h_.cluster_size(), 0);
  if (table_[bi] != 0) {
    file_.read_at(table_[bi], b.data(), b.size());
    return blocks_.emplace(bi, std::move(b)).first->second;
  }
  // A new block, at the end of the file; it counts itself (it may fall in
  // its own range or in another block's).
  table_[bi] = next_++ * h_.cluster_size();
  new_entries_.push_back(bi);
  blocks_.emplace(bi, std::move(b));
  add(table_[bi] / h_.cluster_size(), 1);
  return blocks_.find(bi)->second;
}

uint64_t RefcountEditor::get(uint64_t c) {
  return load_refcount(block(c / per_block_).data(), c % per_block_, h_.refcount_order);
}

void RefcountEditor::add(uint64_t c, int delta) {
  std::vector<uint8_t>& b = block(c / per_block_);
  const uint64_t idx = c % per_block_;
  const uint64_t v = load_refcount(b.data(), idx, h_.refcount_order);
  const uint64_t max =
      h_.refcount_order == 6 ? ~uint64_t{0} : (uint64_t{1} << (1u << h_.refcount_order)) - 1;
  if ((delta < 0 && v == 0) || (delta > 0 && v == max))
    throw Error(ErrorKind::kCorrupt, file_.path(), table_[c / per_block_],
                "refcount of host cluster " + std::to_string(c) + " is " + std::to_string(v) +
                    " and cannot be " + (delta < 0 ? "lowered" : "raised"));
  store_refcount(b.data(), idx, h_.refcount_order, delta < 0 ? v - 1 : v + 1);
}

void RefcountEditor::flush() {
  for (auto& [bi, b] : blocks_) file_.write_at(table_[bi], b.data(), b.size());
  if (new_entries_.empty()) return;
  file_.sync();
  for (uint64_t bi : new_entries_) write_be64(file_, h_.refcount_table_offset + bi * 8, table_[bi]);
  new_entries_.clear();
}

namespace {

// Whole clusters written into the active layer: a cluster this layer owns
// alone (COPIED) is overwritten in place; anything else (unallocated, zero
// without storage, compressed, shared) gets a new cluster and the old
// storage is released.
class Qcow2Updater final : public ImageUpdater {
 public:
  Qcow2Updater(UpdateFile& file, const ImageMeta& meta, std::vector<uint64_t> l1)
      : file_(file),
        h_(meta.header),
        l1_(std::move(l1)),
        refs_(file, meta.header,
              align_up(file.size(), meta.header.cluster_size()) / meta.header.cluster_size()) {}

  uint64_t granularity() const override { return h_.cluster_size(); }

  void write(uint64_t offset, const void* buf, size_t len) override {
    const uint64_t cs = h_.cluster_size();
    if (offset % cs || len % cs)
      throw Error(ErrorKind::kInvalidArgument, file_.path(), offset, "unaligned in-place write");
    const auto* p = static_cast<const uint8_t*>(buf);
    for (uint64_t done = 0; done < len; done += cs) write_cluster((offset + done) / cs, p + done);
  }

  void flush() override {
    // Data is in place; now what counts it, then what points at it.
    refs_.flush();
    if (file_.size() < refs_.end_of_file()) file_.set_size(refs_.end_of_file());
    file_.sync();
    for (auto& [l1i, table] : l2_) {
      if (!dirty_l2_.count(l1i)) continue;
      file_.write_at(l1_[l1i] & kL1OffsetMask, table.data(), table.size());
    }
    dirty_l2_.clear();
    file_.sync();
    for (uint64_t l1i : dirty_l1_) write_be64(file_, h_.l1_table_offset + l1i * 8, l1_[l1i]);
    dirty_l1_.clear();
    file_.sync();
  }

  void set_parent(const std::string& name, const std::string& format, const BlockDevice*) override {
    const uint64_t cs = h_.cluster_size();
    const uint64_t room = std::min<uint64_t>(cs, 1u << 20);
    std::vector<uint8_t> c0(room);
    file_.read_at(0, c0.data(), std::min<uint64_t>(room, file_.size()));
    // Keep every header extension but the backing format's.
    std::vector<uint8_t> exts;
    uint64_t at = h_.header_length;
    while (at + 8 <= room) {
      const uint32_t type = load_be32(&c0[at]);
      const uint32_t len = load_be32(&c0[at + 4]);
      if (type == kExtEnd) break;
      const uint64_t padded = align_up(len, 8);
      if (at + 8 + padded > room)
        throw Error(ErrorKind::kCorrupt, file_.path(), at, "header extension runs past cluster 0");
      if (type != kExtBackingFormat) append_extension(exts, type, &c0[at + 8], len);
      at += 8 + padded;
    }
    if (!name.empty() && !format.empty())
      append_extension(exts, kExtBackingFormat, format.data(), format.size());
    append_extension(exts, kExtEnd, nullptr, 0);
    if (name.size() > kMaxBackingNameSize)
      throw Error(ErrorKind::kUnsupported, file_.path(), kHdrBackingSize,
                  "backing file name of " + std::to_string(name.size()) + " bytes: qcow2 allows " +
                      std::to_string(kMaxBackingNameSize));
    const uint64_t name_at = h_.header_length + exts.size();
    const uint64_t end = name_at + name.size();
    // What the old header used, cleared past the new end.
    const uint64_t old_end = std::max<uint64_t>(
        at + 8, h_.backing_file_offset ? h_.backing_file_offset + h_.backing_file_size : 0);
    if (end > room)
      throw Error(ErrorKind::kUnsupported, file_.path(), 0,
                  "the header extensions and backing file name need " + std::to_string(end) +
                      " bytes; cluster 0 has " + std::to_string(room));
    std::vector<uint8_t> out(std::max<uint64_t>(end, std::min<uint64_t>(old_end, room)), 0);
    std::memcpy(out.data(), c0.data(), h_.header_length);
    std::memcpy(out.data() + h_.header_length, exts.data(), exts.size());
    std::memcpy(out.data() + name_at, name.data(), name.size());
    store_be64(out.data() + kHdrBackingOffset, name.empty() ? 0 : name_at);
    store_be32(out.data() + kHdrBackingSize, static_cast<uint32_t>(name.size()));
    // One write of the header sector(s): the data it may expose was synced.
    file_.sync();
    file_.write_at(0, out.data(), out.size());
    file_.sync();
  }

 private:
  std::vector<uint8_t>& l2_table(uint64_t l1i) {
    auto it = l2_.find(l1i);
    if (it != l2_.end()) return it->second;
    const uint64_t cs = h_.cluster_size();
    std::vector<uint8_t> t(cs, 0);
    const uint64_t e = l1_[l1i];
    const uint64_t off = e & kL1OffsetMask;
    if (off && !(e & kOflagCopied))
      throw Error(ErrorKind::kUnsupported, file_.path(), h_.l1_table_offset + l1i * 8,
                  "L2 table " + std::to_string(l1i) + " is shared (COPIED clear)");
    if (off) {
      file_.read_at(off, t.data(), t.size());
    } else {
      l1_[l1i] = refs_.allocate(1) | kOflagCopied;
      dirty_l1_.push_back(l1i);
    }
    dirty_l2_.insert(l1i);
    return l2_.emplace(l1i, std::move(t)).first->second;
  }

  void release(uint64_t entry) {
    const uint64_t cs = h_.cluster_size();
    if (entry & kOflagCompressed) {
      const uint32_t x = compressed_offset_bits(h_.cluster_bits);
      const uint64_t start = entry & ((uint64_t{1} << x) - 1);
      const uint64_t sectors = ((entry >> x) & ((uint64_t{1} << (62 - x)) - 1)) + 1;
      const uint64_t end = (start & ~uint64_t{511}) + sectors * kCompressedSector;
      for (uint64_t c = start / cs; c * cs < end; ++c) refs_.add(c, -1);
      return;
    }
    if (entry & kL2OffsetMask) refs_.add((entry & kL2OffsetMask) / cs, -1);
  }

  void write_cluster(uint64_t g, const uint8_t* data) {
    const uint64_t cs = h_.cluster_size();
    const uint64_t l1i = g / h_.l2_entries();
    if (l1i >= l1_.size())
      throw Error(ErrorKind::kInvalidArgument, file_.path(), g * cs, "write past the L1 table");
    std::vector<uint8_t>& t = l2_table(l1i);
    uint8_t* slot = &t[(g % h_.l2_entries()) * 8];
    const uint64_t e = load_be64(slot);
    const bool owned = !(e & kOflagCompressed) && (e & kOflagCopied) && (e & kL2OffsetMask);
    uint64_t host;
    if (owned) {
      host = e & kL2OffsetMask;
    } else {
      host = refs_.allocate(1);
      release(e);
    }
    file_.write_at(host, data, cs);
    store_be64(slot, host | kOflagCopied);
    dirty_l2_.insert(l1i);
  }

  UpdateFile& file_;
  Header h_;
  std::vector<uint64_t> l1_;
  RefcountEditor refs_;
  std::map<uint64_t, std::vector<uint8_t>> l2_;
  std::set<uint64_t> dirty_l2_;
  std::vector<uint64_t> dirty_l1_;
};

}  // namespace

std::unique_ptr<ImageUpdater> update_qcow2(UpdateFile& file, const BlockDevice& layer) {
  const auto* dev = dynamic_cast<const Qcow2Device*>(&layer);
  if (!dev) throw Error(ErrorKind::kInvalidArgument, file.path(), std::nullopt, "not qcow2");
  const ImageMeta& m = dev->meta();
  const Header& h = m.header;
  auto refuse = [&](const std::string& why) {
    throw Error(ErrorKind::kUnsupported, file.path(), std::nullopt,
                "cannot change this qcow2 image in place: " + why);
  };
  if (h.incompatible & kIncompatDirty)
    refuse("it is marked dirty (refcounts may be stale): run 'qemu-img check -r all'");
  if (h.incompatible & kIncompatCorrupt) refuse("it is marked corrupt");
  if (!m.data_file.empty()) refuse("it keeps its data in an external data file");
  if (h.extended_l2()) refuse("it has extended L2 entries (subclusters)");
  if (h.crypt_method != kCryptNone) refuse("it is encrypted");
  if (!m.snapshots.empty()) refuse("it has internal snapshots, whose tables it shares");
  if (m.bitmaps || (h.autoclear & kAutoclearBitmaps)) refuse("it holds persistent dirty bitmaps");
  std::vector<uint64_t> l1(h.l1_size);
  std::vector<uint8_t> raw(uint64_t{h.l1_size} * 8);
  if (!raw.empty()) file.read_at(h.l1_table_offset, raw.data(), raw.size());
  for (size_t i = 0; i < l1.size(); ++i) l1[i] = load_be64(&raw[i * 8]);
  return std::make_unique<Qcow2Updater>(file, m, std::move(l1));
}

}  // namespace vdisk::qcow2
